#include "gw/adapters/dtn_events.h"

#include "gw/adapters/uk_time.h"

namespace gw::adapters {
namespace {

std::string CreatedAt(const std::string& c) {
  if (c.size() != 14) return "";
  auto n = [&](size_t p, size_t l) { return std::stoi(c.substr(p, l)); };
  return UkLocalToIsoOffset(n(0, 4), n(4, 2), n(6, 2), n(8, 2), n(10, 2), n(12, 2));
}

}  // namespace

Event MakeDtnEvent(const DtnHeader& h, DtnUnit&& unit, const std::string& origin) {
  Event e;
  e.id = h.from_mpid + "-" + h.file_id + "-" + std::to_string(unit.index);
  e.type = h.flow;
  e.sender.mpid = h.from_mpid;
  e.sender.role = h.from_role;
  e.recipients.push_back(Party{h.to_mpid, h.to_role, ""});
  e.created_at = CreatedAt(h.created);
  e.correlation_id = h.from_mpid + "-" + h.file_id;
  e.payload = std::move(unit.payload);
  e.origin = origin + ":" + std::to_string(unit.line);
  return e;
}

DtnResult DecodeDtnToEvents(const DtnDecoder& decoder, std::string_view content,
                            const std::string& origin, std::vector<Event>* events) {
  std::vector<DtnUnit> units;
  DtnResult r = decoder.Decode(content, [&](DtnUnit&& u) { units.push_back(std::move(u)); });
  events->clear();
  if (!r.ok()) return r;
  events->reserve(units.size());
  for (DtnUnit& u : units) events->push_back(MakeDtnEvent(r.header, std::move(u), origin));
  return r;
}

}  // namespace gw::adapters
