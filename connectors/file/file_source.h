// The `file` source: takes complete DTN files from an inbox directory, decodes them, and after
// the journal commit moves each one to the archive. Invalid files go to the rejected directory
// with NAME.errors.txt beside them naming each bad line and field.
//
// Discovery: inotify (IN_CLOSE_WRITE, IN_MOVED_TO) wakes the source as soon as a file lands,
// and a periodic rescan every poll_ms is the safety net (lost events, network file systems).
//
// Completeness: a file is taken once its size has not changed for `settle_ms` and its last
// record is the ZPT trailer; a file without a trailer is taken (and rejected as incomplete)
// only after its size has been stable for `incomplete_after_s`. Names starting with '.' or
// ending in `.tmp` / `.part` are ignored, so `*.tmp` + rename is always safe.
// Claiming is a rename into `DIRECTORY/.claimed/`, atomic on one file system; a file left
// there by a crash is taken again first (the journal absorbs the replay by event id).
//
// Config ([source.NAME]): directory, rejected (required), archive (required unless
// delete_after_commit = true, which removes each file once its events are committed); format = dtn;
// pattern (glob, default *); poll_ms (1000); settle_ms (1000); incomplete_after_s (300);
// mapping = dip (D0036 files become IF-021 events) | none (every flow as its generic event);
// stream_above_bytes (64 MiB), batch_events (5000).
//
// Directory fsyncs after claiming and archiving are grouped, on a thread of their own
// ("dirsync.NAME"): at most one per directory every 200 ms. A crash can undo a move not yet
// synced, which only means that the file is taken again and the journal absorbs its events by id.
//
// Large files: a file above stream_above_bytes is validated whole first (nothing is kept),
// then decoded again by a producer thread into a bounded queue and committed batch_events at
// a time, so memory stays bounded whatever the file's size. It is archived after its last
// batch commits; a crash part-way takes it again from the start and the journal absorbs the
// events it already has.
// Thread-safety: as Source (one caller thread; Stop() from any thread).
#ifndef GW_CONNECTORS_FILE_FILE_SOURCE_H_
#define GW_CONNECTORS_FILE_FILE_SOURCE_H_

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <set>
#include <memory>
#include <mutex>
#include <string>

#include <thread>

#include "gw/adapters/dtn_decoder.h"
#include "gw/fs.h"
#include "mhhs/connector.h"

namespace gw::connectors::file {

struct FileSourceOptions {
  std::string directory;
  std::string archive;       // "" with delete_after_commit
  bool delete_after_commit = false;
  std::string rejected;
  std::string pattern = "*";
  std::chrono::milliseconds poll{1000};
  std::chrono::milliseconds settle{1000};
  std::chrono::seconds incomplete_after{300};
  bool dip_mapping = true;  // mapping = dip | none
  int64_t stream_above_bytes = 64 << 20;  // larger files are validated first, then streamed
  int batch_events = 5000;                // events per committed batch of a streamed file
};

class FileSource : public Source, public PipelinedSource {
 public:
  // Reads and checks the section; loads the flow catalogue.
  static StatusOr<std::unique_ptr<Source>> Create(const ConnectorContext& ctx);

  ~FileSource() override;
  FileSource(std::string name, FileSourceOptions options, std::shared_ptr<const adapters::FlowCatalogue> catalogue,
             const GatewayInfo& gateway, Logger& logger);

  Status Start(const std::string& checkpoint) override;
  StatusOr<bool> Poll(SourceBatch* batch, std::chrono::milliseconds wait) override;
  void Ack(const SourceBatch& batch, const Status& committed) override;
  void Stop() override;
  // Three: a file is decoded while the one before is signed and the one before that commits.
  int MaxBatchesInHand() const override { return 3; }

 private:
  struct Seen {
    off_t size = -1;
    std::chrono::steady_clock::time_point since;
  };

  // Lists the inbox and queues the files that are complete, oldest first.
  void Scan();
  // Returns the next claimed file name to process, or "" when none is ready.
  std::string ClaimNext();
  // Decodes the claimed file; true with `batch` filled, false when it was rejected or is
  // being streamed (then stream_ is set).
  bool Process(const std::string& name, SourceBatch* batch);
  // Validates a large claimed file and starts streaming it; false when it was rejected.
  bool StartStream(const std::string& name, MappedFile map);
  // Fills `batch` from the stream; false when nothing is ready within `wait`.
  bool TakeFromStream(SourceBatch* batch, std::chrono::milliseconds wait);
  void EndStream();
  void Reject(const std::string& name, const std::string& errors);
  // Moves `name` out of .claimed/ into `dir`; dir_sync_ fsyncs both directories.
  StatusOr<std::string> MoveClaimed(const std::string& name, const std::string& dir);
  std::string claimed_dir() const { return options_.directory + "/.claimed"; }

  std::string name_;
  FileSourceOptions options_;
  adapters::DtnDecoder decoder_;
  GatewayInfo gateway_;
  Logger& logger_;
  std::map<std::string, Seen> seen_;
  std::set<std::string> stuck_;  // claimed files that could not be moved on; skipped until restart
  std::deque<std::string> ready_;
  std::chrono::steady_clock::time_point next_scan_{};
  uint64_t next_token_ = 1;

  // The large file being streamed, if any.
  struct Stream {
    std::string name;
    std::unique_ptr<MappedFile> map;
    std::thread producer;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Event> queue;
    bool done = false;
    bool abort = false;
    bool last_taken = false;  // the batch with last = true was handed out
    adapters::DtnResult result;
    int64_t events = 0;
  };
  std::unique_ptr<Stream> stream_;
  // Batches whose commit failed, offered again as they were, in order.
  std::deque<SourceBatch> retry_;
  size_t requeued_ = 0;  // failed batches put back since the last Poll()
  // Whole files handed out and not yet acknowledged: not claimed again meanwhile.
  std::set<std::string> in_hand_;
  // Files rejected since the last batch, handed to the core for the audit.
  std::vector<Rejection> rejections_;

  // fsyncs the directories renames went through.
  std::unique_ptr<DirSyncer> dir_sync_;

  int inotify_fd_ = -1;
  Counter* files_ingested_ = nullptr;
  Counter* files_rejected_ = nullptr;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

}  // namespace gw::connectors::file

#endif  // GW_CONNECTORS_FILE_FILE_SOURCE_H_
