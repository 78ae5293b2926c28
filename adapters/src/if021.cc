#include "gw/adapters/if021.h"

#include "gw/security.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "gw/adapters/uk_time.h"
#include "mhhs/json.h"

namespace gw::adapters {
namespace {

int Num(std::string_view s, size_t pos, size_t len) {
  int v = 0;
  for (size_t i = pos; i < pos + len; ++i) v = v * 10 + (s[i] - '0');
  return v;
}

void Put2(char* p, int v) { p[0] = static_cast<char>('0' + v / 10); p[1] = static_cast<char>('0' + v % 10); }

// Appends "YYYY-MM-DDThh:mm:ss+00:00" for UTC instants, working the calendar date out once
// per day: a settlement day's periods are 48 instants over at most two UTC dates.
class UtcStamps {
 public:
  void Append(int64_t t, std::string* out) {
    Set(t);
    out->append(b_, sizeof b_);
  }
  // The same, written at `w`; returns the end.
  char* Write(int64_t t, char* w) {
    Set(t);
    std::memcpy(w, b_, sizeof b_);
    return w + sizeof b_;
  }
  static constexpr size_t kSize = 25;

 private:
  void Set(int64_t t) {
    const int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    if (days != days_) {
      int y, m, d;
      CivilFromDays(days, &y, &m, &d);
      Put2(b_, y / 100); Put2(b_ + 2, y % 100); b_[4] = '-'; Put2(b_ + 5, m); b_[7] = '-'; Put2(b_ + 8, d);
      b_[10] = 'T'; b_[13] = ':'; b_[16] = ':';
      std::memcpy(b_ + 19, "+00:00", 6);
      days_ = days;
    }
    const int secs = static_cast<int>(t - days * 86400);
    Put2(b_ + 11, secs / 3600); Put2(b_ + 14, secs / 60 % 60); Put2(b_ + 17, secs % 60);
  }

  int64_t days_ = INT64_MIN;
  char b_[25];
};

// Appends one stamp (the file's creation time).
void AppendUtc(int64_t t, std::string* out) { UtcStamps().Append(t, out); }

std::string Hex10(const std::string& s) { return Sha256Hex(s).substr(0, 10); }

}  // namespace

std::string GspGroupOfDistributor(std::string_view id) {
  // Public: the 14 GSP groups and their distribution areas.
  static const struct { const char* dist; const char* gsp; } kMap[] = {
      {"10", "_A"}, {"11", "_B"}, {"12", "_C"}, {"13", "_D"}, {"14", "_E"}, {"15", "_F"}, {"16", "_G"},
      {"17", "_P"}, {"18", "_N"}, {"19", "_J"}, {"20", "_H"}, {"21", "_K"}, {"22", "_L"}, {"23", "_M"}};
  for (const auto& e : kMap) if (id == e.dist) return e.gsp;
  return "";
}

bool FormatDecimal3(std::string_view v, std::string* out) {
  // The usual D0036 form already is the IF-021 form: 1 to 9 digits without a needless leading
  // zero, a point, 3 digits.
  if (v.size() >= 5 && v.size() <= 13 && v[v.size() - 4] == '.' && (v[0] != '0' || v.size() == 5)) {
    bool plain = true;
    for (size_t i = 0; i < v.size(); ++i) plain = plain && (i == v.size() - 4 || (v[i] >= '0' && v[i] <= '9'));
    if (plain) {
      out->assign(v);
      return true;
    }
  }
  bool neg = false;
  if (!v.empty() && (v[0] == '-' || v[0] == '+')) { neg = v[0] == '-'; v.remove_prefix(1); }
  size_t dot = v.find('.');
  std::string_view ip = v.substr(0, dot);
  std::string_view fp = dot == std::string_view::npos ? std::string_view() : v.substr(dot + 1);
  if (ip.empty() && fp.empty()) return false;
  for (char c : ip) if (c < '0' || c > '9') return false;
  for (char c : fp) if (c < '0' || c > '9') return false;
  while (ip.size() > 1 && ip[0] == '0') ip.remove_prefix(1);
  // Digits of the value scaled by 1000, as a string, then rounded on the 4th decimal.
  std::string digits(ip.empty() ? "0" : std::string(ip));
  for (size_t i = 0; i < 3; ++i) digits.push_back(i < fp.size() ? fp[i] : '0');
  bool round_up = fp.size() > 3 && fp[3] >= '5';
  if (round_up) {
    int i = static_cast<int>(digits.size()) - 1;
    while (i >= 0 && digits[i] == '9') digits[i--] = '0';
    if (i < 0) digits.insert(digits.begin(), '1'); else ++digits[i];
  }
  std::string intpart = digits.substr(0, digits.size() - 3);
  while (intpart.size() > 1 && intpart[0] == '0') intpart.erase(0, 1);
  if (intpart.size() > 9) return false;
  bool zero = intpart == "0" && digits.compare(digits.size() - 3, 3, "000") == 0;
  out->clear();
  if (neg && !zero) out->push_back('-');
  out->append(intpart).push_back('.');
  out->append(digits, digits.size() - 3, 3);
  return true;
}

Status If021Mapper::CheckSettings(const GatewayInfo& gw) {
  if (gw.dip_id.empty()) return InvalidArgument("[gateway] dip_id: is required to map D0036 to IF-021 (10 digits)");
  if (gw.dip.role.empty()) return InvalidArgument("[dip] role: is required to map D0036 to IF-021 (e.g. SDS, ADS, UMSDS)");
  return Status::Ok();
}

const If021Mapper::FileParts& If021Mapper::PartsOf(const DtnHeader& h) const {
  FileParts& f = parts_;
  if (f.file_id == h.file_id && f.created == h.created && f.from_mpid == h.from_mpid && f.to_mpid == h.to_mpid &&
      f.to_role == h.to_role && !f.middle.empty()) {
    return f;
  }
  f.middle.clear();  // not valid again until all is worked out
  f.id_prefix = h.from_mpid + "-" + h.file_id + "-";
  f.sender = Party{h.from_mpid, gw_.dip.role, gw_.dip_id};
  f.recipients = {Party{h.to_mpid, h.to_role, ""}};
  const int cy = Num(h.created, 0, 4), cmo = Num(h.created, 4, 2), cd = Num(h.created, 6, 2);
  const int ch = Num(h.created, 8, 2), cmi = Num(h.created, 10, 2), cs = Num(h.created, 12, 2);
  f.created_at = UkLocalToIsoOffset(cy, cmo, cd, ch, cmi, cs);
  f.correlation_id = h.from_mpid + "-" + h.file_id;
  for (int reactive = 0; reactive < 2; ++reactive) {
    std::string& b = f.head[reactive];
    b.assign(R"({"CommonBlock":{"S0":{"interfaceID":"IF-021","schemaVersion":"011","eventCode":)");
    AppendJsonString(&b, reactive ? "[ReactivePower]" : "[ActivePower]");
    b.append(R"(},"S1":{"environmentTag":)");
    AppendJsonString(&b, gw_.environment);
    b.append(R"(,"subText":null,"senderUniqueReference":)");
  }
  std::string& m = f.middle;
  m.assign(R"(,"senderTimestamp":")");
  // The file's creation time in UTC: deterministic, so the same file gives the same bytes.
  const int64_t created_local = DaysFromCivil(cy, cmo, cd) * 86400 + ch * 3600 + cmi * 60 + cs;
  AppendUtc(IsBst(created_local - 3600) ? created_local - 3600 : created_local, &m);
  m.append(R"(","senderDIPID":)");
  AppendJsonString(&m, gw_.dip_id);
  m.append(R"(,"senderRoleID":)");
  AppendJsonString(&m, gw_.dip.role);
  m.append(R"(,"senderCorrelationID":)");
  AppendJsonString(&m, f.correlation_id);
  m.append(R"(,"DIPConnectionProviderID":)");
  if (gw_.dip.connection_provider_id.empty()) m.append("null"); else AppendJsonString(&m, gw_.dip.connection_provider_id);
  m.append(R"(},"M0":{"MPANCore":)");
  f.from_mpid = h.from_mpid;
  f.to_mpid = h.to_mpid;
  f.to_role = h.to_role;
  f.file_id = h.file_id;
  f.created = h.created;
  return f;
}

bool If021Mapper::Map(const DtnHeader& h, const DtnUnitView& unit, const std::string& origin, Event* out,
                      DtnError* error) const {
  std::vector<std::string_view>& f101 = fields_[0];
  std::vector<std::string_view>& f102 = fields_[1];
  std::vector<std::string_view>& f103 = fields_[2];
  if (unit.ancestors.size() != 1 || unit.records.empty() || !SplitDtnRecord(unit.ancestors[0], &f101) ||
      f101.size() != 4 || !SplitDtnRecord(unit.records[0].text, &f102) || f102.size() != 2) {
    *error = DtnError{unit.line, "102: D0036 layout does not match the IF-021 mapping (101 -> 102 -> 103)"};
    return false;
  }
  std::string_view mpan = f101[1], mqid = f101[2], date = f102[1];
  std::string dist(mpan.substr(0, 2));
  std::string gsp = GspGroupOfDistributor(dist);
  if (gsp.empty()) {
    *error = DtnError{unit.line - 1, "101 mpanCore: distributor id " + dist + " has no GSP group (" + std::string(mpan) + ")"};
    return false;
  }
  auto dip = gw_.dip.distributor_dip_ids.find(dist);
  const std::string& distributor_dip = dip != gw_.dip.distributor_dip_ids.end() ? dip->second : gw_.dip.default_distributor_dip_id;
  if (distributor_dip.empty()) {
    *error = DtnError{unit.line - 1, "101 mpanCore: no distributor DIP id configured for distributor " + dist +
                                         " ([dip] distributor_dip_id." + dist + " or distributor_dip_id)"};
    return false;
  }
  const int y = Num(date, 0, 4), mo = Num(date, 4, 2), d = Num(date, 6, 2);
  const int64_t day_start = UkMidnightUtc(y, mo, d);
  const FileParts& file = PartsOf(h);
  const bool active = mqid == "AI" || mqid == "AE";

  out->id.assign(file.id_prefix).append(std::to_string(unit.index));
  out->type = "IF-021";
  out->event_code = active ? "[ActivePower]" : "[ReactivePower]";
  out->sender = file.sender;
  out->recipients = file.recipients;
  out->created_at = file.created_at;
  out->correlation_id = file.correlation_id;
  out->origin.assign(origin).append(1, ':').append(std::to_string(unit.line));

  // The periods are written straight into the payload, sized for the longest each can be:
  // appending their dozen pieces one by one cost more than working them out. A period is 69
  // bytes and its value and flag; those come from its record's text less "103" and three bars,
  // and formatting adds at most 4 characters to a value ("1" is "1.000").
  static constexpr std::string_view kSp = R"({"sp":")", kV = R"(","v":")", kQ = R"(","q":")",
                                    kTail = R"(","e":null,"arc":null})", kNextDay = "]},";
  std::string& day_json = day_json_;  // what opens each settlement day's periods
  day_json.assign(R"({"settlementDay":{"settlementDayDate":")");
  day_json.append(date.substr(0, 4)).push_back('-');
  day_json.append(date.substr(4, 2)).push_back('-');
  day_json.append(date.substr(6, 2)).append(R"(T00:00:00+00:00","periodDuration":30},"consumptionPeriods":[)");
  const size_t periods = unit.records.size() - 1;
  size_t room = (periods / 48 + 1) * (kNextDay.size() + day_json.size());
  for (size_t i = 0; i < periods; ++i) {
    room += 1 + kSp.size() + UtcStamps::kSize + kV.size() + kQ.size() + kTail.size() +
            std::max<size_t>(unit.records[i + 1].text.size(), 6) - 6 + 4;
  }
  std::string& p = out->payload;
  p.clear();
  // About 830 bytes of blocks before the periods: one allocation.
  p.reserve(1024 + room);
  p.append(file.head[active ? 0 : 1]);
  std::string& ref = ref_;
  ref.assign("S-IF-021-").append(Hex10(out->id)).append(1, '-').append(gw_.dip.role).append(1, '-');
  ref.append(date).append(1, '-').append(mpan).append(mqid);
  AppendJsonString(&p, ref);
  p.append(file.middle);
  AppendJsonString(&p, mpan);
  p.append(R"(,"distributorDIPID":)");
  AppendJsonString(&p, distributor_dip);
  p.append(R"(,"GSPGroupID":")").append(gsp);
  p.append(R"("}},"CustomBlock":{"B044":{"issuingDataServiceDIPID":)");
  AppendJsonString(&p, gw_.dip_id);
  p.append(R"(},"B067":{"connectionTypeIndicator":")").append(gw_.dip.connection_type);
  p.append(R"(","connectionTypeEffectiveFromDate":")");
  if (gw_.dip.connection_type_from.empty()) {
    p.append(date.substr(0, 4)).push_back('-');
    p.append(date.substr(4, 2)).push_back('-');
    p.append(date.substr(6, 2));
  } else {
    p.append(gw_.dip.connection_type_from);
  }
  p.append(R"(T00:00:00+00:00"},"B900":{"MQID":{"measurementQuantityID":")").append(mqid);
  p.append(R"("},"settlementDayConsumptionPeriods":[)");
  std::string& v = value_;
  UtcStamps stamps;
  auto put = [](char* w, std::string_view s) {
    std::memcpy(w, s.data(), s.size());
    return w + s.size();
  };
  const size_t start = p.size();
  p.resize(start + room);
  char* w = p.data() + start;
  for (size_t i = 0; i < periods; ++i) {
    const DtnUnitView::Record& rec = unit.records[i + 1];
    if (!SplitDtnRecord(rec.text, &f103) || f103.size() != 3) {
      *error = DtnError{rec.line, "103: expected 2 fields"};
      return false;
    }
    if (!FormatDecimal3(f103[2], &v)) {
      *error = DtnError{rec.line, "103 consumption: IF-021 carries at most 9 integer digits (" + std::string(f103[2]) + ")"};
      return false;
    }
    // Never past the end, whatever the records hold: the bound above is checked, not trusted.
    // (The longest values are within it: If021Test.ValuesOfEveryWidthAreWrittenWhole.)
    const size_t need = kNextDay.size() + day_json.size() + 1 + kSp.size() + UtcStamps::kSize + kV.size() + v.size() +
                        kQ.size() + f103[1].size() + kTail.size();
    if (static_cast<size_t>(p.data() + p.size() - w) < need) {
      const size_t at = static_cast<size_t>(w - p.data());
      p.resize(p.size() + need * (periods - i));
      w = p.data() + at;
    }
    if (i % 48 == 0) {
      if (i) w = put(w, kNextDay);
      w = put(w, day_json);
    } else {
      *w++ = ',';
    }
    w = put(w, kSp);
    w = stamps.Write(day_start + static_cast<int64_t>(i + 1) * 1800, w);
    w = put(w, kV);
    w = put(w, v);
    w = put(w, kQ);
    w = put(w, f103[1]);
    w = put(w, kTail);
  }
  p.resize(static_cast<size_t>(w - p.data()));
  p.append("]}]}}}");
  return true;
}

}  // namespace gw::adapters
