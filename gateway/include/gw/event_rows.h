// A batch of events in memory, readable from SQL as the table-valued function
// gw_event_rows(?), so that the journal writes a whole batch into its events table with one
// INSERT ... SELECT instead of a statement per event.
//
//   auto st = db.Prepare("INSERT INTO events(id, payload) SELECT id, payload FROM gw_event_rows(?)");
//   std::vector<EventRow> rows = ...;
//   (*st)->BindPointer(1, &rows, kEventRowsPointer);
//
// Columns: id, type, event_code, sender_mpid, sender_role, sender_dip_id, recipients,
// created_at, correlation_id, payload, signature, origin; the rowid is the index in the vector.
// The rows come out in the vector's order (ORDER BY rowid is free), and SQLite reads their bytes where they are (no copy until it builds the record), so
// the vector and everything its rows point at must outlive the statement's step. Bound to
// anything but a `const std::vector<EventRow>*` of that pointer type, the table is empty.
#ifndef GW_EVENT_ROWS_H_
#define GW_EVENT_ROWS_H_

#include <sqlite3.h>

#include <string_view>
#include <vector>

#include "mhhs/event.h"
#include "mhhs/status.h"

namespace gw {

struct EventRow {
  const Event* event;
  std::string_view payload;     // what is stored: the sealed payload, or the event's own
  std::string_view signature;   // what is stored: with its certificate split off
  std::string_view recipients;  // encoded as the journal stores them
};

// The pointer type sqlite3_bind_pointer() must name for gw_event_rows() to read the rows.
inline constexpr const char kEventRowsPointer[] = "gw-event-rows";

// Makes gw_event_rows() available on `db`.
Status RegisterEventRows(sqlite3* db);

}  // namespace gw

#endif  // GW_EVENT_ROWS_H_
