// The `file` sink: writes events as DTN files for legacy systems on the receiving side.
//
// Events are grouped by flow, sender and recipient (IF-021 becomes D0036001); each group of a
// delivery batch becomes one file, cut at `max_records` records. With `max_age_s` the core
// holds events back (DeliveryHints::linger) until max_records events are pending or the oldest
// has waited max_age_s, so files are fuller; nothing is confirmed before its file is written. A file is written as a hidden
// temporary file, fsynced, renamed into place and the directory fsynced, so a reader never
// sees a partial file, and the events it carries are confirmed only after that. File ids are
// a persistent 10-digit sequence per sink (kept in DIRECTORY/.NAME.file-id).
//
// Config ([sink.NAME]): directory (required); name (default
// {flow}_{from_mpid}_{to_mpid}_{file_id}.uff; placeholders {flow} {from_mpid} {to_mpid}
// {file_id} {from_role} {to_role}); max_records (100000); max_age_s (0); test_flag (OPER).
// An event that has no DTN form, or whose payload does not fit its flow, is refused for good
// (dead letter naming the field).
// Thread-safety: as Sink.
#ifndef GW_CONNECTORS_FILE_FILE_SINK_H_
#define GW_CONNECTORS_FILE_FILE_SINK_H_

#include <memory>
#include <string>

#include "gw/adapters/flow_catalogue.h"
#include "mhhs/connector.h"

namespace gw::connectors::file {

struct FileSinkOptions {
  std::string directory;
  std::string name_template = "{flow}_{from_mpid}_{to_mpid}_{file_id}.uff";
  int64_t max_records = 100000;
  int64_t max_age_s = 0;  // 0: write each delivery batch at once
  std::string test_flag = "OPER";
};

class FileSink : public Sink {
 public:
  static StatusOr<std::unique_ptr<Sink>> Create(const ConnectorContext& ctx);
  FileSink(std::string name, FileSinkOptions options, std::shared_ptr<const adapters::FlowCatalogue> catalogue,
           Logger& logger);

  Status Start() override;
  std::vector<Status> Deliver(const std::vector<const Event*>& events) override;
  bool Connected() const override { return writable_; }
  DeliveryHints Hints() const override;
  void Stop() override {}

 private:
  // The next file id, persisted before use so that a crash never reuses one.
  StatusOr<std::string> NextFileId();

  std::string name_;
  FileSinkOptions options_;
  std::shared_ptr<const adapters::FlowCatalogue> catalogue_;
  Logger& logger_;
  int64_t next_id_ = 1;
  bool writable_ = false;
};

}  // namespace gw::connectors::file

#endif  // GW_CONNECTORS_FILE_FILE_SINK_H_
