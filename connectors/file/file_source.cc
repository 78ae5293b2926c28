#include "connectors/file/file_source.h"

#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "gw/adapters/dtn_events.h"
#include "gw/adapters/if021.h"
#include "gw/fs.h"

namespace gw::connectors::file {
namespace {

// True when the last non-empty line of the file at `path` is a ZPT trailer record.
bool EndsWithTrailer(const std::string& path, off_t size) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  const off_t tail = std::min<off_t>(size, 512);
  std::string buf(static_cast<size_t>(tail), '\0');
  bool ok = fseeko(f, size - tail, SEEK_SET) == 0 && std::fread(buf.data(), 1, buf.size(), f) == buf.size();
  std::fclose(f);
  if (!ok) return false;
  while (!buf.empty() && (buf.back() == '\n' || buf.back() == '\r')) buf.pop_back();
  size_t nl = buf.find_last_of('\n');
  std::string last = nl == std::string::npos ? buf : buf.substr(nl + 1);
  return last.rfind("ZPT|", 0) == 0 && last.back() == '|';
}

bool Ignored(const std::string& name) {
  auto ends = [&](const char* suf) {
    size_t n = std::strlen(suf);
    return name.size() >= n && name.compare(name.size() - n, n, suf) == 0;
  };
  return name.empty() || name[0] == '.' || ends(".tmp") || ends(".part") || ends(".errors.txt");
}

}  // namespace

StatusOr<std::unique_ptr<Source>> FileSource::Create(const ConnectorContext& ctx) {
  const ConfigSection& c = ctx.config;
  FileSourceOptions o;
  auto dir = c.GetRequired("directory");
  if (!dir.ok()) return dir.status();
  auto del = c.GetBool("delete_after_commit", false);
  if (!del.ok()) return del.status();
  o.delete_after_commit = *del;
  if (!o.delete_after_commit) {
    auto archive = c.GetRequired("archive");
    if (!archive.ok()) return c.Error("archive", "is required (or set delete_after_commit = true)");
    o.archive = *archive;
  } else if (c.Has("archive")) {
    return c.Error("archive", "cannot go with delete_after_commit = true");
  }
  auto rejected = c.GetRequired("rejected");
  if (!rejected.ok()) return rejected.status();
  o.directory = *dir;
  o.rejected = *rejected;
  std::string format = c.GetString("format", "dtn");
  if (format != "dtn") return c.Error("format", "only \"dtn\" is supported (got \"" + format + "\")");
  o.pattern = c.GetString("pattern", "*");
  auto poll = c.GetInt("poll_ms", 1000, 10, 3600000);
  if (!poll.ok()) return poll.status();
  auto settle = c.GetInt("settle_ms", 1000, 0, 3600000);
  if (!settle.ok()) return settle.status();
  auto incomplete = c.GetInt("incomplete_after_s", 300, 1, 86400 * 7);
  if (!incomplete.ok()) return incomplete.status();
  o.poll = std::chrono::milliseconds(*poll);
  o.settle = std::chrono::milliseconds(*settle);
  o.incomplete_after = std::chrono::seconds(*incomplete);
  std::string mapping = c.GetString("mapping", "dip");
  if (mapping != "dip" && mapping != "none") return c.Error("mapping", "must be dip or none (got \"" + mapping + "\")");
  o.dip_mapping = mapping == "dip";
  auto stream_above = c.GetInt("stream_above_bytes", 64 << 20, 1024, int64_t{1} << 40);
  if (!stream_above.ok()) return stream_above.status();
  auto batch_events = c.GetInt("batch_events", 5000, 1, 1000000);
  if (!batch_events.ok()) return batch_events.status();
  o.stream_above_bytes = *stream_above;
  o.batch_events = static_cast<int>(*batch_events);
  // Without [gateway] dip_id and [dip] role a D0036 file is rejected with an errors.txt that
  // says so; other flows need neither, so nothing is said at start.
  if (o.directory == o.archive || o.directory == o.rejected) {
    return c.Error("archive", "archive and rejected must differ from directory");
  }
  std::string flow_dir = ctx.gateway.flow_dir.empty() ? adapters::DefaultFlowDir() : ctx.gateway.flow_dir;
  auto cat = adapters::FlowCatalogue::LoadDirectory(flow_dir);
  if (!cat.ok()) return cat.status();
  auto* src = new FileSource(ctx.name, std::move(o), std::move(cat.value()), ctx.gateway, ctx.logger);
  src->files_ingested_ = &MetricsOf(ctx).GetCounter("files_ingested", "DTN files whose events were committed");
  src->files_rejected_ = &MetricsOf(ctx).GetCounter("files_rejected", "DTN files moved to the rejected directory");
  return std::unique_ptr<Source>(src);
}

FileSource::FileSource(std::string name, FileSourceOptions options,
                       std::shared_ptr<const adapters::FlowCatalogue> catalogue, const GatewayInfo& gateway,
                       Logger& logger)
    : name_(std::move(name)), options_(std::move(options)), decoder_(std::move(catalogue)), gateway_(gateway),
      logger_(logger),
      dir_sync_(std::make_unique<DirSyncer>("dirsync." + name_, std::chrono::milliseconds(200), [this](const Status& s) {
        logger_.Error(s.message() + " (renames into it are not yet durable; tried again every 200 ms)");
      })) {}

Status FileSource::Start(const std::string& checkpoint) {
  for (const std::string& d : {options_.directory, options_.archive, options_.rejected, claimed_dir()}) {
    if (d.empty()) continue;
    Status s = MakeDirs(d);
    if (!s.ok()) return FailedPrecondition(s.message());
    if (::access(d.c_str(), W_OK) != 0) return FailedPrecondition(d + ": not writable by the gateway");
  }
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ >= 0 && inotify_add_watch(inotify_fd_, options_.directory.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
    logger_.Warning(options_.directory + ": no inotify watch (" + std::strerror(errno) + "); rescanning every " +
                    std::to_string(options_.poll.count()) + " ms only");
    ::close(inotify_fd_);
    inotify_fd_ = -1;
  }
  std::vector<std::string> left;
  GW_RETURN_IF_ERROR(ListDir(claimed_dir(), &left));
  if (!left.empty()) {
    logger_.Notice(std::to_string(left.size()) + " file(s) claimed before a restart will be taken again first");
  }
  return Status::Ok();
}

void FileSource::Scan() {
  auto now = std::chrono::steady_clock::now();
  next_scan_ = now + options_.poll;
  std::vector<std::string> names;
  Status s = ListDir(options_.directory, &names);
  if (!s.ok()) {
    logger_.Warning(s.message());
    return;
  }
  struct Candidate { std::string name; time_t mtime; };
  std::vector<Candidate> ready;
  std::map<std::string, Seen> still;
  bool waiting = false;
  for (const std::string& n : names) {
    if (Ignored(n) || !GlobMatch(options_.pattern, n)) continue;
    std::string path = options_.directory + "/" + n;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    Seen& seen = still[n];
    auto it = seen_.find(n);
    if (it != seen_.end() && it->second.size == st.st_size) {
      seen = it->second;
    } else {
      seen.size = st.st_size;
      seen.since = now;
    }
    auto stable_for = now - seen.since;
    if (stable_for >= options_.settle &&
        (stable_for >= options_.incomplete_after || EndsWithTrailer(path, st.st_size))) {
      ready.push_back(Candidate{n, st.st_mtime});
    } else {
      waiting = true;
    }
  }
  seen_.swap(still);
  std::sort(ready.begin(), ready.end(), [](const Candidate& a, const Candidate& b) {
    return a.mtime != b.mtime ? a.mtime < b.mtime : a.name < b.name;
  });
  for (Candidate& c : ready) ready_.push_back(std::move(c.name));
  // A file still settling is looked at again as soon as it may be ready.
  if (waiting) next_scan_ = std::min(next_scan_, now + std::max(options_.settle, std::chrono::milliseconds(10)));
}

std::string FileSource::ClaimNext() {
  // Files claimed before a crash or a failed commit come first, in name order.
  std::vector<std::string> names;
  if (ListDir(claimed_dir(), &names).ok()) {
    for (const std::string& n : names) {
      if (!Ignored(n) && !stuck_.count(n) && !in_hand_.count(n)) return n;
    }
  }
  if (ready_.empty() && std::chrono::steady_clock::now() >= next_scan_) Scan();
  while (!ready_.empty()) {
    std::string name = std::move(ready_.front());
    ready_.pop_front();
    std::string from = options_.directory + "/" + name;
    std::string to = claimed_dir() + "/" + name;
    struct stat st;
    if (::stat(to.c_str(), &st) == 0) continue;  // same name still being processed
    if (::rename(from.c_str(), to.c_str()) == 0) {
      seen_.erase(name);
      dir_sync_->Mark(options_.directory);
      dir_sync_->Mark(claimed_dir());
      return name;
    }
    // ENOENT: another gateway instance took it first.
  }
  return "";
}

void FileSource::Reject(const std::string& name, const std::string& errors) {
  if (files_rejected_) files_rejected_->Increment();
  rejections_.push_back(Rejection{name, errors.substr(0, errors.find('\n')), "", false, "invalid_file"});
  auto moved = MoveInto(claimed_dir() + "/" + name, options_.rejected, name);
  if (!moved.ok()) {
    // Left in .claimed/ and set aside until a restart, so that it does not block the others.
    stuck_.insert(name);
    logger_.Error("cannot move " + name + " to rejected (left in .claimed/ until a restart): " + moved.status().message());
    return;
  }
  Status s = WriteFileAtomic(*moved + ".errors.txt", errors);
  if (!s.ok()) logger_.Error("cannot write errors for " + name + ": " + s.message());
}

FileSource::~FileSource() {
  EndStream();
  dir_sync_.reset();  // fsyncs what is still marked
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
}

StatusOr<std::string> FileSource::MoveClaimed(const std::string& name, const std::string& dir) {
  auto moved = MoveInto(claimed_dir() + "/" + name, dir, name, /*fsync_dirs=*/false);
  if (moved.ok()) {
    dir_sync_->Mark(dir);
    dir_sync_->Mark(claimed_dir());
  }
  return moved;
}

bool FileSource::Process(const std::string& name, SourceBatch* batch) {
  std::string path = claimed_dir() + "/" + name;
  auto mapped = MappedFile::Open(path);
  if (!mapped.ok()) {
    logger_.Error(mapped.status().message());
    Reject(name, name + ": " + mapped.status().message() + "\n");
    return false;
  }
  if (static_cast<int64_t>(mapped->view().size()) > options_.stream_above_bytes) {
    // Batches come from the stream (Poll takes them); nothing to hand over here.
    StartStream(name, std::move(mapped.value()));
    return false;
  }
  std::vector<Event> events;
  adapters::DtnEventOptions opts;
  opts.dip_mapping = options_.dip_mapping;
  opts.gateway = &gateway_;
  adapters::DtnResult r = adapters::DecodeDtnToEvents(decoder_, mapped->view(), name_ + ":" + name, opts, &events);
  if (!r.ok()) {
    std::string errors = adapters::FormatDtnErrors(name, r);
    logger_.Warning("rejected " + name + ": " + std::to_string(r.errors.size()) + (r.errors_truncated ? "+" : "") +
                    " error(s), first: " + errors.substr(0, errors.find('\n')));
    Reject(name, errors);
    return false;
  }
  batch->events = std::move(events);
  batch->unit = name;
  batch->checkpoint = name + " " + r.header.from_mpid + "-" + r.header.file_id;
  batch->token = next_token_++;
  batch->last = true;
  in_hand_.insert(name);
  return true;
}

bool FileSource::StartStream(const std::string& name, MappedFile map) {
  auto owned = std::make_unique<MappedFile>(std::move(map));
  const MappedFile* m = owned.get();
  adapters::DtnEventOptions opts;
  opts.dip_mapping = options_.dip_mapping;
  opts.gateway = &gateway_;
  opts.hooks.progress = [m](size_t offset) { m->Release(offset > (1 << 20) ? offset - (1 << 20) : 0); };
  logger_.Info(name + ": " + std::to_string(m->view().size() >> 20) + " MiB, validating before streaming it");
  // Pass 1: everything the second pass will do, keeping nothing, so the file is accepted or
  // rejected whole before any of it is committed.
  int64_t events = 0;
  adapters::DtnResult r = adapters::DecodeDtnEvents(decoder_, m->view(), name_ + ":" + name, opts,
                                                    [&](Event&&) { ++events; });
  m->Release(m->view().size());
  if (!r.ok()) {
    std::string errors = adapters::FormatDtnErrors(name, r);
    logger_.Warning("rejected " + name + ": " + std::to_string(r.errors.size()) + (r.errors_truncated ? "+" : "") +
                    " error(s), first: " + errors.substr(0, errors.find('\n')));
    owned.reset();
    Reject(name, errors);
    return false;
  }
  logger_.Info(name + ": valid, " + std::to_string(events) + " event(s); streaming in batches of " +
               std::to_string(options_.batch_events));
  stream_ = std::make_unique<Stream>();
  Stream* st = stream_.get();
  st->name = name;
  st->map = std::move(owned);
  st->events = events;
  const size_t cap = static_cast<size_t>(options_.batch_events);
  st->producer = std::thread([this, st, opts, cap]() {
    adapters::DtnResult res = adapters::DecodeDtnEvents(
        decoder_, st->map->view(), name_ + ":" + st->name, opts, [&](Event&& e) {
          std::unique_lock<std::mutex> lock(st->mu);
          st->cv.wait(lock, [&] { return st->queue.size() < cap || st->abort; });
          if (st->abort) return;
          st->queue.push_back(std::move(e));
          st->cv.notify_all();
        });
    std::lock_guard<std::mutex> lock(st->mu);
    st->result = std::move(res);
    st->done = true;
    st->cv.notify_all();
  });
  return true;
}

bool FileSource::TakeFromStream(SourceBatch* batch, std::chrono::milliseconds wait) {
  Stream* st = stream_.get();
  std::unique_lock<std::mutex> lock(st->mu);
  if (st->last_taken) return false;  // all of it is in hand; the stream ends with its Ack
  const size_t want = static_cast<size_t>(options_.batch_events);
  st->cv.wait_for(lock, wait, [&] { return st->queue.size() >= want || st->done; });
  if (st->queue.empty() && !st->done) return false;
  // Asked not to wait (the core has other batches in hand): only a full batch, or the last.
  if (wait.count() == 0 && st->queue.size() < want && !st->done) return false;
  batch->events.clear();
  size_t n = std::min(want, st->queue.size());
  batch->events.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    batch->events.push_back(std::move(st->queue.front()));
    st->queue.pop_front();
  }
  st->cv.notify_all();
  batch->unit = st->name;
  batch->token = next_token_++;
  batch->last = st->done && st->queue.empty();
  st->last_taken = batch->last;
  batch->checkpoint = batch->last ? st->name + " done" : "";
  if (batch->last && !st->result.ok()) {
    // Pass 1 accepted the file, so this means the file changed under us or memory failed.
    logger_.Error(st->name + ": second pass found errors the first did not; the events committed so far stay: " +
                  st->result.errors[0].message);
  }
  return true;
}

void FileSource::EndStream() {
  if (!stream_) return;
  {
    std::lock_guard<std::mutex> lock(stream_->mu);
    stream_->abort = true;
  }
  stream_->cv.notify_all();
  if (stream_->producer.joinable()) stream_->producer.join();
  stream_.reset();
}

StatusOr<bool> FileSource::Poll(SourceBatch* batch, std::chrono::milliseconds wait) {
  requeued_ = 0;
  if (!retry_.empty()) {
    *batch = std::move(retry_.front());
    retry_.pop_front();
    if (stream_ && batch->last && stream_->name == batch->unit) {
      std::lock_guard<std::mutex> lock(stream_->mu);
      stream_->last_taken = true;
    }
    return true;
  }
  auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return false;
    }
    if (stream_) return TakeFromStream(batch, wait);
    std::string name = ClaimNext();
    if (!name.empty()) {
      if (Process(name, batch)) {
        batch->rejections.swap(rejections_);
        return true;
      }
      if (stream_) return TakeFromStream(batch, wait);
      continue;  // rejected; look for the next one
    }
    if (!rejections_.empty()) {
      // Only rejections: a batch without events, so that the audit records them now.
      batch->events.clear();
      batch->rejections.swap(rejections_);
      batch->unit = std::to_string(batch->rejections.size()) + " rejected file(s)";
      batch->token = next_token_++;
      batch->last = false;
      return true;
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    auto nap = std::min<std::chrono::steady_clock::duration>(
        {deadline - now, std::max(next_scan_ - now, std::chrono::steady_clock::duration(std::chrono::milliseconds(20))),
         std::chrono::milliseconds(100)});
    if (inotify_fd_ >= 0) {
      // A new or renamed file ends the nap at once and triggers a scan.
      pollfd p{inotify_fd_, POLLIN, 0};
      int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(nap).count());
      if (::poll(&p, 1, ms) > 0) {
        char buf[4096];
        while (::read(inotify_fd_, buf, sizeof buf) > 0) {
        }
        if (ready_.empty()) next_scan_ = std::chrono::steady_clock::now();
      }
    } else {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, nap, [this] { return stopping_; });
    }
  }
}

void FileSource::Ack(const SourceBatch& batch, const Status& committed) {
  if (!committed.ok()) {
    // A streamed batch is offered again as it was; a whole file stays in .claimed/ and is
    // decoded again on the next Poll(). Rejections it carried go with the next batch.
    if (stream_ && stream_->name == batch.unit) {
      // Ahead of any failed batch not yet offered again: the batches in hand are older than
      // those, and the verdicts on them come in order.
      retry_.insert(retry_.begin() + static_cast<std::ptrdiff_t>(requeued_++), batch);
      if (batch.last) {
        std::lock_guard<std::mutex> lock(stream_->mu);
        stream_->last_taken = false;
      }
    } else {
      in_hand_.erase(batch.unit);
      rejections_.insert(rejections_.begin(), batch.rejections.begin(), batch.rejections.end());
    }
    return;
  }
  if (!batch.last) return;
  in_hand_.erase(batch.unit);
  if (stream_ && stream_->name == batch.unit) {
    bool second_pass_ok = stream_->result.ok();
    std::string errors = second_pass_ok ? "" : adapters::FormatDtnErrors(batch.unit, stream_->result);
    EndStream();
    if (!second_pass_ok) {
      // The first pass accepted it but the second did not (the file changed under us): what
      // was committed stays; the file goes to rejected with the errors, not to the archive.
      Reject(batch.unit, errors);
      return;
    }
  }
  if (files_ingested_) files_ingested_->Increment();
  if (options_.delete_after_commit) {
    std::string path = claimed_dir() + "/" + batch.unit;
    if (::unlink(path.c_str()) != 0) logger_.Error("cannot delete " + path + ": " + std::strerror(errno));
    else dir_sync_->Mark(claimed_dir());
    return;
  }
  auto moved = MoveClaimed(batch.unit, options_.archive);
  if (!moved.ok()) {
    // Its events are committed; taking it again would only repeat them. Set it aside.
    stuck_.insert(batch.unit);
    logger_.Error("cannot archive " + batch.unit + " (left in .claimed/ until a restart): " + moved.status().message());
  }
}

void FileSource::Stop() {
  // stream_ belongs to the source thread: it is not touched here. A waiting Poll() returns
  // within its wait and then sees stopping_.
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = true;
  cv_.notify_all();
}

}  // namespace gw::connectors::file
