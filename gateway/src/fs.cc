#include "gw/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <fnmatch.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "gw/log.h"

namespace gw {
namespace {

Status Errno(const std::string& what, const std::string& path) {
  int e = errno;
  std::string msg = path + ": " + what + ": " + std::strerror(e);
  if (e == ENOSPC || e == EIO || e == EAGAIN || e == EDQUOT) return Unavailable(msg);
  if (e == EACCES || e == EPERM || e == EROFS) return PermissionDenied(msg);
  if (e == ENOENT) return NotFound(msg);
  return Internal(msg);
}

// Closes a file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { if (fd_ >= 0) ::close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { int f = fd_; fd_ = -1; return f; }

 private:
  int fd_;
};

}  // namespace

std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Status MakeDirs(const std::string& dir, mode_t mode) {
  if (dir.empty()) return InvalidArgument("empty directory name");
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return FailedPrecondition(dir + ": exists and is not a directory");
    return Status::Ok();
  }
  std::string parent = DirName(dir);
  if (parent != dir && parent != "." && parent != "/") GW_RETURN_IF_ERROR(MakeDirs(parent, mode));
  if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) return Errno("cannot create directory", dir);
  return Status::Ok();
}

Status FsyncDir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return Errno("cannot open directory", dir);
  if (::fsync(fd.get()) != 0) return Errno("fsync directory", dir);
  return Status::Ok();
}

DirSyncer::DirSyncer(std::string thread_name, std::chrono::milliseconds interval,
                     std::function<void(const Status&)> on_error)
    : interval_(interval), on_error_(std::move(on_error)) {
  thread_ = std::thread([this, name = std::move(thread_name)] {
    NameThread(name);
    Loop();
  });
}

DirSyncer::~DirSyncer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  Flush();
}

void DirSyncer::Mark(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  marked_.insert(dir);
}

void DirSyncer::Flush() {
  std::set<std::string> dirs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    dirs.swap(marked_);
  }
  std::vector<std::string> failed;
  Status first;
  for (const std::string& dir : dirs) {
    Status s = FsyncDir(dir);
    if (s.ok()) {
      synced_.fetch_add(1);
    } else {
      if (first.ok()) first = s;
      failed.push_back(dir);
    }
  }
  bool report = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    marked_.insert(failed.begin(), failed.end());
    report = !first.ok() && !failing_;
    failing_ = !first.ok();
  }
  if (report && on_error_) on_error_(first);  // outside the lock: it may log, or Mark()
}

void DirSyncer::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, interval_, [this] { return stop_; });
    if (stop_ || marked_.empty()) continue;
    lock.unlock();
    Flush();
    lock.lock();
  }
}

Status ListDir(const std::string& dir, std::vector<std::string>* names) {
  names->clear();
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return Errno("cannot list directory", dir);
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    names->emplace_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names->begin(), names->end());
  return Status::Ok();
}

StatusOr<std::string> MoveInto(const std::string& from, const std::string& to_dir, const std::string& name,
                               bool fsync_dirs) {
  std::string target = to_dir + "/" + name;
  bool linked = false;
  for (int n = 1;; ++n) {
    // renameat2(RENAME_NOREPLACE) moves atomically and never overwrites: a crash leaves the
    // file in one place or the other, never both. File systems without it get link + unlink.
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) == 0) break;
    int err = errno;
    if (err == EINVAL || err == ENOSYS) {
      if (::link(from.c_str(), target.c_str()) == 0) {
        linked = true;
        break;
      }
      err = errno;
    }
    if (err != EEXIST) {
      errno = err;
      if (err == EXDEV || err == EPERM) {
        return FailedPrecondition(from + " -> " + to_dir + ": must be on the same file system (" + std::strerror(err) + ")");
      }
      return Errno("cannot move into " + to_dir, from);
    }
    if (n > 10000) return Internal(target + ": too many files of that name");
    target = to_dir + "/" + name + "." + std::to_string(n);
  }
  // After link + unlink a crash could otherwise keep the unlink and lose the link.
  if (fsync_dirs || linked) GW_RETURN_IF_ERROR(FsyncDir(to_dir));
  if (linked && ::unlink(from.c_str()) != 0) return Errno("cannot remove after move", from);
  if (fsync_dirs) GW_RETURN_IF_ERROR(FsyncDir(DirName(from)));
  return target;
}

Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode) {
  std::string tmp = DirName(path) + "/." + BaseName(path) + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (fd.get() < 0) return Errno("cannot create", tmp);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status s = Errno("write", tmp);
      ::unlink(tmp.c_str());
      return s;
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) {
    Status s = Errno("fsync", tmp);
    ::unlink(tmp.c_str());
    return s;
  }
  ::close(fd.release());
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = Errno("rename to " + path, tmp);
    ::unlink(tmp.c_str());
    return s;
  }
  return FsyncDir(DirName(path));
}

StatusOr<std::string> ReadFile(const std::string& path) {
  auto m = MappedFile::Open(path);
  if (!m.ok()) return m.status();
  return std::string(m->view());
}

Status CheckSecretFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Errno("cannot read", path);
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return PermissionDenied(path + " is readable by group or others (mode " + mode +
                            "): a secret must be readable by the service user alone (chmod 600)");
  }
  return Status::Ok();
}

StatusOr<std::string> ReadSecretFile(const std::string& path) {
  GW_RETURN_IF_ERROR(CheckSecretFile(path));
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  std::string v = *text;
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
  return v;
}

bool GlobMatch(const std::string& pattern, const std::string& name) {
  return ::fnmatch(pattern.c_str(), name.c_str(), FNM_PERIOD) == 0;
}

StatusOr<MappedFile> MappedFile::Open(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Errno("cannot open", path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Errno("stat", path);
  if (!S_ISREG(st.st_mode)) return FailedPrecondition(path + ": not a regular file");
  if (st.st_size == 0) return MappedFile(nullptr, 0);
  void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (p == MAP_FAILED) return Errno("mmap", path);
  ::madvise(p, static_cast<size_t>(st.st_size), MADV_SEQUENTIAL);
  return MappedFile(p, static_cast<size_t>(st.st_size));
}

void MappedFile::Release(size_t offset) const {
  if (data_ == nullptr) return;
  size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  size_t len = std::min(offset, size_) / page * page;
  if (len > 0) ::madvise(data_, len, MADV_DONTNEED);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

}  // namespace gw
