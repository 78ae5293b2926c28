// A plugin whose registration fails: it asks for a type the gateway already has.
#include "mhhs/plugin.h"

namespace {
gw::Status Register(gw::ConnectorRegistry& registry) {
  return registry.RegisterSink("file", [](const gw::ConnectorContext&) -> gw::StatusOr<std::unique_ptr<gw::Sink>> {
    return gw::Internal("unused");
  });
}
}  // namespace

MHHS_GATEWAY_PLUGIN("refusing", "0.1", Register)
