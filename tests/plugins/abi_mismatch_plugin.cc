// A plugin that claims the next plugin ABI: the gateway must refuse it without calling it.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "mhhs/plugin.h"

extern "C" __attribute__((visibility("default"))) const std::uint32_t mhhs_gateway_plugin_abi = MHHS_GATEWAY_PLUGIN_ABI + 1;
extern "C" __attribute__((visibility("default"))) const char mhhs_gateway_plugin_name[] = "from-the-future";
extern "C" __attribute__((visibility("default"))) const char mhhs_gateway_plugin_version[] = "9.0";
extern "C" __attribute__((visibility("default"))) int mhhs_gateway_plugin_register(gw::ConnectorRegistry*, std::string*) {
  std::abort();  // never reached: the ABI check comes first
}
