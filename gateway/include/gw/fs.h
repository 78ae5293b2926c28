// File-system helpers with the durability the journal's promise needs: atomic writes
// (temp file + fsync + rename + directory fsync), moves that never overwrite, and read-only
// memory maps for large inputs. Errors name the path and errno's text.
// Thread-safety: stateless functions; a MappedFile is immutable once open.
#ifndef GW_FS_H_
#define GW_FS_H_

#include <sys/types.h>

#include <string>
#include <string_view>
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
// the caller fsyncs them when it must (a crash may undo a move not yet synced, never split it).
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
