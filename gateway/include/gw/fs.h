// File-system helpers with the durability the journal's promise needs: atomic writes
// (temp file + fsync + rename + directory fsync), moves that never overwrite, and read-only
// memory maps for large inputs. Errors name the path and errno's text.
// Thread-safety: stateless functions; a MappedFile is immutable once open.
#ifndef GW_FS_H_
#define GW_FS_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "mhhs/status.h"

namespace gw {

// Creates `dir` and its missing parents with `mode`. OK when it exists already.
Status MakeDirs(const std::string& dir, mode_t mode = 0750);
// fsyncs a directory so that renames into it are durable.
Status FsyncDir(const std::string& dir);
// Names of the entries of `dir` (no "." or ".."), sorted.
Status ListDir(const std::string& dir, std::vector<std::string>* names);
// Renames `from` to `to_dir/name`, or `to_dir/name.N` when that exists; never overwrites.
// Returns the final path. Both directories are fsynced, unless `fsync_dirs` is false: then
// the caller fsyncs them when it must (a DirSyncer): a crash may undo a rename not yet synced,
// never split it. On file systems without renameat2(RENAME_NOREPLACE) the move is link +
// unlink, and the target directory is fsynced between the two whatever `fsync_dirs` says.
StatusOr<std::string> MoveInto(const std::string& from, const std::string& to_dir, const std::string& name,
                               bool fsync_dirs = true);
// Writes `data` to `path` atomically and durably.
Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode = 0640);
// Reads a whole (small) file.
StatusOr<std::string> ReadFile(const std::string& path);
// The directory part of `path` ("." when none).
std::string DirName(const std::string& path);
std::string BaseName(const std::string& path);
// Fails (kPermissionDenied) when a secret file (private key, password, token) can be read
// by group or others, naming the path and its mode; kNotFound when it does not exist.
Status CheckSecretFile(const std::string& path);

// Reads a secret (password, token) from a file after CheckSecretFile(); trailing line breaks
// are dropped.
StatusOr<std::string> ReadSecretFile(const std::string& path);

// Shell-style glob match ('*', '?') of `name` against `pattern`.
bool GlobMatch(const std::string& pattern, const std::string& name);

// Fsyncs directories after renames, off the caller's thread: Mark() records a directory and a
// thread of its own fsyncs the marked ones every `interval`. A directory whose fsync failed
// stays marked and is tried again; `on_error` hears of the first failure of a run of them.
// The destructor fsyncs what is still marked.
// Thread-safety: Mark() from any thread.
class DirSyncer {
 public:
  DirSyncer(std::string thread_name, std::chrono::milliseconds interval, std::function<void(const Status&)> on_error);
  ~DirSyncer();
  DirSyncer(const DirSyncer&) = delete;
  DirSyncer& operator=(const DirSyncer&) = delete;
  void Mark(const std::string& dir);
  // fsyncs every marked directory now, on the caller's thread.
  void Flush();
  // Directories fsynced so far (for tests).
  int64_t synced() const { return synced_.load(); }

 private:
  void Loop();
  const std::chrono::milliseconds interval_;
  const std::function<void(const Status&)> on_error_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> marked_;
  bool failing_ = false;
  bool stop_ = false;
  std::atomic<int64_t> synced_{0};
  std::thread thread_;
};

// A read-only map of a whole file. An empty file maps to an empty view.
class MappedFile {
 public:
  static StatusOr<MappedFile> Open(const std::string& path);
  MappedFile(MappedFile&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr; o.size_ = 0; }
  MappedFile& operator=(MappedFile&&) = delete;
  MappedFile(const MappedFile&) = delete;
  ~MappedFile();
  std::string_view view() const { return std::string_view(static_cast<const char*>(data_), size_); }
  // Lets the kernel drop the pages before `offset` from this process's memory; reading them
  // again is still valid (they come back from the file).
  void Release(size_t offset) const;

 private:
  MappedFile(void* data, size_t size) : data_(data), size_(size) {}
  void* data_;
  size_t size_;
};

}  // namespace gw

#endif  // GW_FS_H_
