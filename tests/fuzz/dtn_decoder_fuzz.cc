// libFuzzer target: any bytes through the DTN decoder, both as generic events and through the
// D0036 -> IF-021 mapping, and the events back into a DTN file. No crash, no leak, no UB.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gw/adapters/dtn_encoder.h"
#include "gw/adapters/dtn_events.h"

namespace {

const std::shared_ptr<const gw::adapters::FlowCatalogue>& Catalogue() {
  static auto cat = [] {
    auto c = gw::adapters::FlowCatalogue::LoadDirectory(GW_FUZZ_FLOW_DIR);
    if (!c.ok()) __builtin_trap();
    return *c;
  }();
  return cat;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view content(reinterpret_cast<const char*>(data), size);
  gw::adapters::DtnDecoder decoder(Catalogue());
  gw::GatewayInfo g;
  g.environment = "SIT";
  g.dip_id = "1009012345";
  g.dip.role = "SDS";
  g.dip.default_distributor_dip_id = "2509012345";
  for (bool dip : {false, true}) {
    gw::adapters::DtnEventOptions opts;
    opts.dip_mapping = dip;
    opts.gateway = &g;
    std::vector<gw::Event> events;
    gw::adapters::DtnResult r = gw::adapters::DecodeDtnToEvents(decoder, content, "fuzz", opts, &events);
    if (r.ok() && !events.empty()) {
      gw::adapters::DtnFileWriter w(Catalogue(), gw::adapters::DtnHeaderFor(events[0]));
      for (const gw::Event& e : events) (void)w.Add(e);
      (void)w.Finish();
    }
  }
  return 0;
}
