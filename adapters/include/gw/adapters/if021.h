// D0036 -> IF-021: half-hourly consumption from a DTN file as the MHHS interface message
// "UTC Settlement Period Consumption Data", one event per MPAN x MQID x settlement day.
//
// Facts (../shared/reference/FORMATS.md and the DIP API 2.1.0 schema):
//  - `sp` is the UTC end of each settlement period, "YYYY-MM-DDThh:mm:ss+00:00", with the
//    46/50-period clock-change days handled; `v` is kWh with exactly three decimals; `q` is the
//    D0036 actual/estimated flag (A or E); `e` and `arc` are null.
//  - The schema allows at most 48 periods in one consumptionPeriods array, so a 50-period day
//    is carried as two entries for the same settlementDay (48 + 2). [inferred from the schema]
//  - S1 comes from [gateway] (environment, dip_id) and [dip] (role, connection provider);
//    M0 from the MPAN: GSP group from its distributor id, distributor DIP id from [dip];
//    B044 is this data service's own DIP id; B067 from [dip] connection_type(_effective_from).
//  - senderUniqueReference is deterministic, "S-IF-021-{10 hex of SHA-256(event id)}-{role}-
//    {settlement date}-{MPAN}{MQID}", so a retry of the same event repeats it.
// Thread-safety: a mapper keeps its file's parts and reuses buffers; one thread at a time.
#ifndef GW_ADAPTERS_IF021_H_
#define GW_ADAPTERS_IF021_H_

#include <string>
#include <string_view>
#include <vector>

#include "gw/adapters/dtn_decoder.h"
#include "mhhs/connector.h"
#include "mhhs/event.h"

namespace gw::adapters {

// The GSP group ("_A".."_P") of an MPAN's 2-digit distributor id, or "" when unknown.
std::string GspGroupOfDistributor(std::string_view distributor_id);

// Writes `decimal` ("12.5", "-0.0004", "7") with exactly three decimals, rounding half away
// from zero, into `out`. False when it is not a decimal or needs more than 9 integer digits.
bool FormatDecimal3(std::string_view decimal, std::string* out);

class If021Mapper {
 public:
  explicit If021Mapper(const GatewayInfo& gateway) : gw_(gateway) {}

  // Fails, naming the key, when [gateway]/[dip] lack what IF-021 needs.
  static Status CheckSettings(const GatewayInfo& gateway);

  // Maps one D0036001 event group. On a problem with the data (a value IF-021 cannot carry, a
  // distributor with no DIP id configured) returns false and fills `error`.
  // A mapper keeps what its file's header gives, worked out for the file's first event, and
  // buffers it reuses: one mapper per file, used by one thread.
  bool Map(const DtnHeader& header, const DtnUnitView& unit, const std::string& origin, Event* out,
           DtnError* error) const;

 private:
  // What every event of one file shares.
  struct FileParts {
    std::string from_mpid, to_mpid, to_role, file_id, created;  // of the header they were made for
    std::string id_prefix, created_at, correlation_id;
    Party sender;
    std::vector<Party> recipients;
    std::string head[2];  // the payload up to senderUniqueReference: active, reactive power
    std::string middle;   // from senderTimestamp up to MPANCore's value
  };
  const FileParts& PartsOf(const DtnHeader& h) const;

  GatewayInfo gw_;
  mutable FileParts parts_;
  mutable std::vector<std::string_view> fields_[3];
  mutable std::string ref_, day_json_, value_;
};

// The flow whose files map to IF-021 events.
constexpr const char kD0036Flow[] = "D0036001";

}  // namespace gw::adapters

#endif  // GW_ADAPTERS_IF021_H_
