// Events -> DTN flat files: the reverse of the decoder, for legacy systems on the receiving
// side. Generic D-flow events (D0010002 …) are written back through their flow definition;
// IF-021 events become D0036001 records. File -> events -> file gives the same records.
//
// Usage: one DtnFileWriter per output file; Add() each event (same flow, sender and recipient),
// then Finish() for the file text with its ZHV header and ZPT trailer (counts computed).
// Consecutive events that share an enclosing group (D0036's 101 for several days) share its
// record. Errors name the event id and the JSON field.
// Thread-safety: a writer is used by one thread.
#ifndef GW_ADAPTERS_DTN_ENCODER_H_
#define GW_ADAPTERS_DTN_ENCODER_H_

#include <memory>
#include <string>
#include <vector>

#include "gw/adapters/flow_catalogue.h"
#include "mhhs/event.h"
#include "mhhs/status.h"

namespace gw::adapters {

struct DtnFileHeader {
  std::string file_id;     // up to 10 characters
  std::string flow;        // "D0010002"
  std::string from_role;
  std::string from_mpid;
  std::string to_role;
  std::string to_mpid;
  std::string created;     // YYYYMMDDHHMMSS (UK local)
  std::string test_flag = "OPER";
};

// The D-flow an event is written as: its own type for generic flows, D0036001 for IF-021;
// "" when the event has no DTN form.
std::string DtnFlowOf(const Event& e);

// A header for a file carrying `e` (from its sender, to its first recipient, created from its
// createdAt, file id from its correlation id when that is "{MPID}-{file id}").
DtnFileHeader DtnHeaderFor(const Event& e);

class DtnFileWriter {
 public:
  DtnFileWriter(std::shared_ptr<const FlowCatalogue> catalogue, DtnFileHeader header);

  // Appends the event's records. Errors: kInvalidArgument naming the event and field
  // (a missing or mistyped field, a flow the catalogue lacks).
  Status Add(const Event& e);
  // The complete file: ZHV, records, ZPT with group and flow counts.
  std::string Finish() const;
  size_t records() const { return records_.size(); }
  size_t events() const { return events_; }

 private:
  Status AddGeneric(const Event& e);
  Status AddIf021(const Event& e);
  // Appends a record unless it repeats the open enclosing group at `depth`.
  void Emit(int depth, bool top_level, std::string record);

  std::shared_ptr<const FlowCatalogue> catalogue_;
  DtnFileHeader header_;
  const FlowSpec* flow_ = nullptr;
  std::vector<std::string> records_;
  std::vector<std::string> open_;  // last record text per depth above the event group
  int64_t top_level_ = 0;
  size_t events_ = 0;
};

}  // namespace gw::adapters

#endif  // GW_ADAPTERS_DTN_ENCODER_H_
