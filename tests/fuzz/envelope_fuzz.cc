// libFuzzer target: any bytes through the envelope parser; what parses must serialize and
// parse again to the same event.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gw/envelope.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto e = gw::ParseEnvelope(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!e.ok()) return 0;
  std::string again = gw::ToEnvelopeJson(*e);
  auto back = gw::ParseEnvelope(again);
  if (!back.ok() || back->id != e->id || back->payload != e->payload || back->sender.mpid != e->sender.mpid) {
    __builtin_trap();
  }
  return 0;
}
