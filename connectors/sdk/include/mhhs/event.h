// Event: one immutable statement of fact carried by the gateway (DESIGN.md, "Event").
//
// An event's `id` is stable: the same input always gives the same id, so a replay after a
// crash, or a file dropped twice, is absorbed by the journal's dedupe. `payload` is JSON text;
// for IF-xxx types it is a DIP payload that validates against the DIP API schema.
// On the MQTT backbone one event is one message: the envelope written by ToEnvelopeJson().
// Thread-safety: a value type.
#ifndef MHHS_EVENT_H_
#define MHHS_EVENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "mhhs/json.h"

namespace gw {

// A market participant: MPID (4 upper-case letters), DTN role code or DIP role, DIP id.
struct Party {
  std::string mpid;
  std::string role;
  std::string dip_id;  // empty when unknown

  bool operator==(const Party& o) const { return mpid == o.mpid && role == o.role && dip_id == o.dip_id; }
};

struct Event {
  std::string id;              // stable, unique per journal
  std::string type;            // "D0010002", "D0036001", "IF-021"
  std::string event_code;      // DIP event code such as "[ActivePower]"; empty for D-flows
  Party sender;
  std::vector<Party> recipients;
  std::string created_at;      // ISO-8601 with offset, "2026-03-02T15:31:51+00:00"
  std::string correlation_id;  // empty when none
  std::string payload;         // JSON text
  std::string signature;       // JSON object text, or empty when unsigned
  std::string origin;          // where it came from, for the trace: "inbox:FILE:LINE"
};

// The envelope schema version written into every message.
constexpr int kEnvelopeVersion = 1;

// Appends the event's JSON envelope to `out`: the exact bytes published on the backbone.
// `payload` and `signature` are embedded as JSON text without re-parsing.
inline void AppendEnvelopeJson(const Event& e, std::string* out) {
  JsonWriter w(out);
  w.BeginObject();
  w.Key("v"); w.Int(kEnvelopeVersion);
  w.Key("id"); w.String(e.id);
  w.Key("type"); w.String(e.type);
  if (!e.event_code.empty()) { w.Key("eventCode"); w.String(e.event_code); }
  w.Key("sender");
  w.BeginObject();
  w.Key("mpid"); w.String(e.sender.mpid);
  w.Key("role"); w.String(e.sender.role);
  if (!e.sender.dip_id.empty()) { w.Key("dipId"); w.String(e.sender.dip_id); }
  w.EndObject();
  w.Key("recipients");
  w.BeginArray();
  for (const Party& r : e.recipients) {
    w.BeginObject();
    w.Key("mpid"); w.String(r.mpid);
    w.Key("role"); w.String(r.role);
    if (!r.dip_id.empty()) { w.Key("dipId"); w.String(r.dip_id); }
    w.EndObject();
  }
  w.EndArray();
  w.Key("createdAt"); w.String(e.created_at);
  w.Key("correlationId"); w.StringOrNull(e.correlation_id);
  w.Key("payload"); w.Raw(e.payload.empty() ? std::string_view("null") : std::string_view(e.payload));
  if (!e.signature.empty()) { w.Key("signature"); w.Raw(e.signature); }
  w.EndObject();
}

inline std::string ToEnvelopeJson(const Event& e) {
  std::string out;
  out.reserve(e.payload.size() + 256);
  AppendEnvelopeJson(e, &out);
  return out;
}

}  // namespace gw

#endif  // MHHS_EVENT_H_
