// Parsing the backbone envelope (mhhs/event.h writes it) back into an Event.
//
// The payload and signature are kept as the exact bytes received (signatures cover the exact
// payload bytes), located by a strict scanner; every other field is checked for its type.
// Errors name the field. Limits guard against hostile input: nesting depth, total size.
// Thread-safety: pure functions.
#ifndef GW_ENVELOPE_H_
#define GW_ENVELOPE_H_

#include <string>
#include <string_view>

#include "mhhs/event.h"
#include "mhhs/status.h"

namespace gw {

struct EnvelopeLimits {
  size_t max_bytes = 16 << 20;
  int max_depth = 64;
};

// Parses one envelope. Errors: kInvalidArgument "envelope FIELD: reason" (malformed JSON,
// wrong type, missing id/type/sender, unsupported version, too deep, too large).
StatusOr<Event> ParseEnvelope(std::string_view json, const EnvelopeLimits& limits = EnvelopeLimits());

// The class of a ParseEnvelope() error, the `reason` label on /metrics: too_deep, oversized,
// unsupported_version, missing_field, wrong_type or malformed.
std::string EnvelopeErrorCode(const Status& error);

}  // namespace gw

#endif  // GW_ENVELOPE_H_
