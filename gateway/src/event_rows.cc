#include "gw/event_rows.h"

#include <new>
#include <string>

namespace gw {
namespace {

enum Column {
  kId, kType, kEventCode, kSenderMpid, kSenderRole, kSenderDipId, kRecipients, kCreatedAt,
  kCorrelationId, kPayload, kSignature, kOrigin, kRows  // kRows: the hidden argument
};

struct Cursor {
  sqlite3_vtab_cursor base;  // first, so that SQLite's pointer is ours
  const std::vector<EventRow>* rows = nullptr;
  size_t at = 0;
};

int Connect(sqlite3* db, void*, int, const char* const*, sqlite3_vtab** out, char**) {
  int rc = sqlite3_declare_vtab(db,
                                "CREATE TABLE x(id, type, event_code, sender_mpid, sender_role, sender_dip_id, "
                                "recipients, created_at, correlation_id, payload, signature, origin, rows HIDDEN)");
  if (rc != SQLITE_OK) return rc;
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);  // not from triggers or views
  auto* vtab = static_cast<sqlite3_vtab*>(sqlite3_malloc(sizeof(sqlite3_vtab)));
  if (vtab == nullptr) return SQLITE_NOMEM;
  *vtab = sqlite3_vtab{};
  *out = vtab;
  return SQLITE_OK;
}

int Disconnect(sqlite3_vtab* vtab) {
  sqlite3_free(vtab);
  return SQLITE_OK;
}

// Only a scan with the rows given: gw_event_rows(?). It goes in the vector's order, which is
// the rowid's, so an ORDER BY rowid costs nothing.
int BestIndex(sqlite3_vtab*, sqlite3_index_info* info) {
  if (info->nOrderBy == 1 && info->aOrderBy[0].iColumn == -1 && !info->aOrderBy[0].desc) info->orderByConsumed = 1;
  for (int i = 0; i < info->nConstraint; ++i) {
    const auto& c = info->aConstraint[i];
    if (c.iColumn != kRows || c.op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
    if (!c.usable) return SQLITE_CONSTRAINT;
    info->aConstraintUsage[i].argvIndex = 1;
    info->aConstraintUsage[i].omit = 1;
    info->estimatedCost = 1;
    return SQLITE_OK;
  }
  return SQLITE_CONSTRAINT;
}

int Open(sqlite3_vtab*, sqlite3_vtab_cursor** out) {
  auto* cursor = new (std::nothrow) Cursor();
  if (cursor == nullptr) return SQLITE_NOMEM;
  *out = &cursor->base;
  return SQLITE_OK;
}

int Close(sqlite3_vtab_cursor* base) {
  delete reinterpret_cast<Cursor*>(base);
  return SQLITE_OK;
}

int Filter(sqlite3_vtab_cursor* base, int, const char*, int argc, sqlite3_value** argv) {
  auto* cursor = reinterpret_cast<Cursor*>(base);
  cursor->rows = argc > 0 ? static_cast<const std::vector<EventRow>*>(sqlite3_value_pointer(argv[0], kEventRowsPointer))
                          : nullptr;
  cursor->at = 0;
  return SQLITE_OK;
}

int Next(sqlite3_vtab_cursor* base) {
  ++reinterpret_cast<Cursor*>(base)->at;
  return SQLITE_OK;
}

int Eof(sqlite3_vtab_cursor* base) {
  const auto* cursor = reinterpret_cast<Cursor*>(base);
  return cursor->rows == nullptr || cursor->at >= cursor->rows->size();
}

// Empty text stays text: a null pointer would make it NULL, which the NOT NULL columns refuse
// and INSERT OR IGNORE would skip as if a duplicate.
void Text(sqlite3_context* ctx, std::string_view v) {
  sqlite3_result_text(ctx, v.empty() ? "" : v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}

int ColumnValue(sqlite3_vtab_cursor* base, sqlite3_context* ctx, int column) {
  const auto* cursor = reinterpret_cast<Cursor*>(base);
  const EventRow& row = (*cursor->rows)[cursor->at];
  const Event& e = *row.event;
  switch (column) {
    case kId: Text(ctx, e.id); break;
    case kType: Text(ctx, e.type); break;
    case kEventCode: Text(ctx, e.event_code); break;
    case kSenderMpid: Text(ctx, e.sender.mpid); break;
    case kSenderRole: Text(ctx, e.sender.role); break;
    case kSenderDipId: Text(ctx, e.sender.dip_id); break;
    case kRecipients: Text(ctx, row.recipients); break;
    case kCreatedAt: Text(ctx, e.created_at); break;
    case kCorrelationId: Text(ctx, e.correlation_id); break;
    case kPayload:
      sqlite3_result_blob(ctx, row.payload.empty() ? "" : row.payload.data(), static_cast<int>(row.payload.size()),
                          SQLITE_STATIC);
      break;
    case kSignature: Text(ctx, row.signature); break;
    case kOrigin: Text(ctx, e.origin); break;
    default: sqlite3_result_null(ctx); break;
  }
  return SQLITE_OK;
}

int Rowid(sqlite3_vtab_cursor* base, sqlite3_int64* rowid) {
  *rowid = static_cast<sqlite3_int64>(reinterpret_cast<Cursor*>(base)->at);
  return SQLITE_OK;
}

// Eponymous only (no xCreate): usable as gw_event_rows(?) without CREATE VIRTUAL TABLE. Set
// field by field, so that the members later SQLite versions add stay null.
sqlite3_module MakeModule() {
  sqlite3_module m{};
  m.xConnect = Connect;
  m.xBestIndex = BestIndex;
  m.xDisconnect = Disconnect;
  m.xOpen = Open;
  m.xClose = Close;
  m.xFilter = Filter;
  m.xNext = Next;
  m.xEof = Eof;
  m.xColumn = ColumnValue;
  m.xRowid = Rowid;
  return m;
}

const sqlite3_module kModule = MakeModule();

}  // namespace

Status RegisterEventRows(sqlite3* db) {
  int rc = sqlite3_create_module(db, "gw_event_rows", &kModule, nullptr);
  if (rc != SQLITE_OK) {
    return Status(StatusCode::kInternal, std::string("cannot register gw_event_rows: ") + sqlite3_errstr(rc));
  }
  return Status::Ok();
}

}  // namespace gw
