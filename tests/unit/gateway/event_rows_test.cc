#include "gw/event_rows.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "gw/sqlite.h"
#include "tests/support/test_support.h"

namespace gw {
namespace {

class EventRowsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Db::Open(dir_ / "rows.db", true, false);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(db.value());
    ASSERT_TRUE(RegisterEventRows(db_->raw()).ok());
  }
  // Each row of `sql` (which reads gw_event_rows(?1)) as its `columns` joined by '|'.
  std::vector<std::string> Query(const std::string& sql, const std::vector<EventRow>* rows, int columns) {
    std::vector<std::string> out;
    auto st = db_->Prepare(sql);
    EXPECT_TRUE(st.ok()) << st.status().ToString();
    if (!st.ok()) return out;
    (*st)->BindPointer(1, rows, kEventRowsPointer);
    for (;;) {
      auto row = (*st)->Step();
      EXPECT_TRUE(row.ok()) << row.status().ToString();
      if (!row.ok() || !*row) break;
      std::string line;
      for (int c = 0; c < columns; ++c) line += (c ? "|" : "") + (*st)->Text(c);
      out.push_back(line);
    }
    (*st)->Reset();
    return out;
  }

  gw::testing::TempDir dir_;
  std::unique_ptr<Db> db_;
};

Event MakeEvent(const std::string& id) {
  Event e;
  e.id = id;
  e.type = "IF-021";
  e.event_code = "[ActivePower]";
  e.sender = Party{"UDMS", "SDS", "1009012345"};
  e.created_at = "2026-07-16T06:00:00+01:00";
  e.correlation_id = "UDMS-1";
  e.payload = "{\"id\":\"" + id + "\"}";
  e.origin = "inbox:f.uff:" + id;
  return e;
}

// The rows come out in the vector's order, each column from its event or the row's own
// views, with the rowid as the index.
TEST_F(EventRowsTest, TheBatchReadsBackInOrderColumnByColumn) {
  std::vector<Event> events{MakeEvent("a"), MakeEvent("b")};
  const std::string sig_a = "{\"v\":\"a\"}", sealed_b = "sealed-b", recipients = "X:MRCY:";
  std::vector<EventRow> rows{{&events[0], events[0].payload, sig_a, recipients},
                             {&events[1], sealed_b, "", recipients}};
  EXPECT_EQ(Query("SELECT rowid, id, type, event_code, sender_mpid, sender_role, sender_dip_id, recipients, "
                  "created_at, correlation_id, payload, signature, origin FROM gw_event_rows(?1) ORDER BY rowid",
                  &rows, 13),
            (std::vector<std::string>{
                R"(0|a|IF-021|[ActivePower]|UDMS|SDS|1009012345|X:MRCY:|2026-07-16T06:00:00+01:00|UDMS-1|{"id":"a"}|{"v":"a"}|inbox:f.uff:a)",
                R"(1|b|IF-021|[ActivePower]|UDMS|SDS|1009012345|X:MRCY:|2026-07-16T06:00:00+01:00|UDMS-1|sealed-b||inbox:f.uff:b)"}));
}

// An empty value is empty text, never NULL, even from a view with no bytes behind it: the
// journal's columns are NOT NULL, and INSERT OR IGNORE would skip such a row as a duplicate.
TEST_F(EventRowsTest, AnEmptyValueIsEmptyTextNotNull) {
  std::vector<Event> events{MakeEvent("a")};
  std::vector<EventRow> rows{{&events[0], std::string_view(), std::string_view(), std::string_view()}};
  EXPECT_EQ(Query("SELECT typeof(payload), typeof(signature), typeof(recipients) FROM gw_event_rows(?1)", &rows, 3),
            (std::vector<std::string>{"blob|text|text"}));
}

// Bound to anything but the rows (no pointer, or one of another type), the table is empty.
TEST_F(EventRowsTest, WithoutItsRowsTheTableIsEmpty) {
  EXPECT_TRUE(Query("SELECT id FROM gw_event_rows(?1)", nullptr, 1).empty());
  auto st = db_->Prepare("SELECT id FROM gw_event_rows(?1)");
  ASSERT_TRUE(st.ok());
  std::vector<EventRow> rows;
  (*st)->BindPointer(1, &rows, "something-else");
  auto row = (*st)->Step();
  ASSERT_TRUE(row.ok());
  EXPECT_FALSE(*row);
  (*st)->Reset();
}

}  // namespace
}  // namespace gw
