#include "gw/adapters/dtn_events.h"

#include "gw/adapters/if021.h"
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

DtnResult DecodeDtnEvents(const DtnDecoder& decoder, std::string_view content, const std::string& origin,
                          const DtnEventOptions& options, const std::function<void(Event&&)>& on_event) {
  // Units only complete after a valid ZHV, so the peeked header is the decoder's header.
  DtnHeader header;
  bool have_header = PeekDtnHeader(content, &header);
  bool if021 = options.dip_mapping && have_header && header.flow == kD0036Flow;
  if (!if021) {
    return decoder.Decode(content, [&](DtnUnit&& u) { on_event(MakeDtnEvent(header, std::move(u), origin)); },
                          options.hooks);
  }
  GatewayInfo none;
  If021Mapper mapper(options.gateway ? *options.gateway : none);
  Status settings = If021Mapper::CheckSettings(options.gateway ? *options.gateway : none);
  std::vector<DtnError> mapping_errors;
  Event e;
  DtnResult r = decoder.DecodeViews(content, [&](const DtnUnitView& v) {
    if (!settings.ok() || !mapping_errors.empty()) return;
    DtnError err;
    if (mapper.Map(header, v, origin, &e, &err)) on_event(std::move(e));
    else mapping_errors.push_back(std::move(err));
  }, options.hooks);
  if (!settings.ok() && r.ok()) r.errors.push_back(DtnError{0, "D0036 -> IF-021: " + settings.message()});
  for (DtnError& err : mapping_errors) {
    if (r.errors.size() < DtnDecoder::kMaxErrors) r.errors.push_back(std::move(err));
  }
  return r;
}

DtnResult DecodeDtnToEvents(const DtnDecoder& decoder, std::string_view content, const std::string& origin,
                            const DtnEventOptions& options, std::vector<Event>* events) {
  events->clear();
  DtnResult r = DecodeDtnEvents(decoder, content, origin, options, [&](Event&& e) { events->push_back(std::move(e)); });
  if (!r.ok()) events->clear();
  return r;
}

}  // namespace gw::adapters
