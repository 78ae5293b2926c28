// DTN flat-file decoder: validates a whole file against its flow definition and turns each
// event group (one MPAN in D0010, one MPAN x MQID x day in D0036) into a JSON payload.
//
// Pure: no I/O. The input is the file's bytes (which may be a memory map); errors carry the
// line number and read "GROUP FIELD: reason (value)"; the caller adds the file name. At most
// kMaxErrors are collected. A UTF-8 BOM and CRLF line ends are accepted; other non-ASCII bytes,
// NUL bytes, a missing trailer or an empty file are errors.
// Thread-safety: a DtnDecoder holds no mutable state; Decode() may run on many threads.
#ifndef GW_ADAPTERS_DTN_DECODER_H_
#define GW_ADAPTERS_DTN_DECODER_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gw/adapters/flow_catalogue.h"

namespace gw::adapters {

struct DtnHeader {
  std::string file_id;
  std::string flow;  // flow + version, "D0010002"
  std::string from_role;
  std::string from_mpid;
  std::string to_role;
  std::string to_mpid;
  std::string created;  // YYYYMMDDHHMMSS, UK local time
  std::string sending_app;
  std::string receiving_app;
  std::string broadcast;
  std::string test_flag;
};

struct DtnError {
  int line = 0;          // 1-based; 0 for the whole file
  std::string message;   // "030 readingDateTime: not a valid date-time (20160231000000)"
};

// One decoded event group.
struct DtnUnit {
  int index = 0;          // 1-based position of the event group in the file
  int line = 0;           // line of the event group's record
  std::string payload;    // JSON object
};

// One event group as raw records, for mappers that build their own payload (D0036 -> IF-021).
// The views point into the decoded content and are valid during the callback only.
struct DtnUnitView {
  int index = 0;                           // 1-based position of the event group in the file
  int line = 0;                            // line of the event group's record
  std::vector<std::string_view> ancestors; // record text of each enclosing group, outermost first
  struct Record {
    int group = 0;                         // index into FlowSpec::groups
    int line = 0;
    std::string_view text;                 // the whole record, "103|A|0.250|"
  };
  std::vector<Record> records;             // the event group's record first, then its descendants
};

struct DtnResult {
  DtnHeader header;
  const FlowSpec* flow = nullptr;  // null when the header names no known flow
  std::vector<DtnError> errors;
  bool errors_truncated = false;   // more than kMaxErrors were found
  int64_t records = 0;             // records between ZHV and ZPT
  int64_t units = 0;               // event groups seen
  bool ok() const { return errors.empty(); }
};

// Optional observers of a decode run.
struct DtnDecodeHooks {
  // Called about every 16 MiB with the byte offset reached (for releasing mapped pages).
  std::function<void(size_t)> progress;
};

class DtnDecoder {
 public:
  static constexpr size_t kMaxErrors = 100;

  explicit DtnDecoder(std::shared_ptr<const FlowCatalogue> catalogue) : catalogue_(std::move(catalogue)) {}

  // Validates `content`. When `on_unit` is set, also builds each event group's payload and
  // hands it over as soon as the group is complete; once an error is found no more units are
  // handed over, so a caller that needs all-or-nothing collects them and checks ok() at the end.
  DtnResult Decode(std::string_view content, const std::function<void(DtnUnit&&)>& on_unit,
                   const DtnDecodeHooks& hooks = DtnDecodeHooks()) const;

  // The same validation, handing each complete event group over as raw records instead of
  // JSON (no payload is built). Same all-or-nothing rule as above.
  DtnResult DecodeViews(std::string_view content, const std::function<void(const DtnUnitView&)>& on_view,
                        const DtnDecodeHooks& hooks = DtnDecodeHooks()) const;

  const FlowCatalogue& catalogue() const { return *catalogue_; }

 private:
  std::shared_ptr<const FlowCatalogue> catalogue_;
};

// Splits a record "A|B|C|" into {"A","B","C"}; false when it lacks the closing '|'.
bool SplitDtnRecord(std::string_view line, std::vector<std::string_view>* out);

// Reads only the ZHV record of `content` (no validation beyond its shape); false if absent.
bool PeekDtnHeader(std::string_view content, DtnHeader* header);

// "FILE:LINE: message" for each error, one per line, plus a note when truncated.
std::string FormatDtnErrors(const std::string& file, const DtnResult& result);

}  // namespace gw::adapters

#endif  // GW_ADAPTERS_DTN_DECODER_H_
