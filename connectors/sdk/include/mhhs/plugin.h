// Plugins: connectors built outside the gateway, as shared libraries it loads at start.
//
// A plugin is a `.so` in `[gateway] plugin_dir` (default /usr/lib/mhhs-gateway/plugins). It
// defines its entry points with one macro:
//
//   gw::Status Register(gw::ConnectorRegistry& registry) {
//     return registry.RegisterSink("webhook", &WebhookSink::Create);
//   }
//   MHHS_GATEWAY_PLUGIN("webhook-sink", "1.0.0", Register)
//
// The gateway dlopen()s the file, reads the data symbol `mhhs_gateway_plugin_abi` and refuses
// the plugin, naming the file and both numbers, unless it equals the gateway's own
// MHHS_GATEWAY_PLUGIN_ABI; only then does it call `mhhs_gateway_plugin_register`. The loader
// itself runs a library's static constructors at dlopen(), before that check: keep a plugin's
// globals trivial (no objects of SDK types at namespace scope), so that a plugin built for
// another ABI is refused cleanly. Types the
// plugin registers work exactly like the built-in `file`, `mqtt` and `sql`, which register
// through the same ConnectorRegistry.
//
// The ABI number changes whenever a type in these headers changes its layout or a virtual
// function is added, removed or reordered. The interfaces pass C++ types (std::string,
// std::function, std::vector), so a plugin must also be built with a compiler whose C++ ABI
// matches the gateway's: on Debian 12, g++ 12 (libstdc++'s new string ABI), C++17 or later.
//
// Lifetimes: the gateway keeps the library loaded until every connector made from it has
// been destroyed and the registry is gone; the factories may therefore refer to anything in
// the plugin. `mhhs_gateway_plugin_register` is called once, from the main thread, before
// any connector is created.
#ifndef MHHS_PLUGIN_H_
#define MHHS_PLUGIN_H_

#include <cstdint>
#include <exception>
#include <string>

#include "mhhs/connector.h"
#include "mhhs/status.h"

// The plugin ABI this SDK describes.
#define MHHS_GATEWAY_PLUGIN_ABI 1

// Defines the plugin's entry points. NAME and VERSION are string literals shown in the
// gateway's log; REGISTER is a function `gw::Status REGISTER(gw::ConnectorRegistry&)`
// returning an error to refuse loading (e.g. a type already taken).
#define MHHS_GATEWAY_PLUGIN(NAME, VERSION, REGISTER)                                                         \
  extern "C" __attribute__((visibility("default"))) const std::uint32_t mhhs_gateway_plugin_abi =             \
      MHHS_GATEWAY_PLUGIN_ABI;                                                                                 \
  extern "C" __attribute__((visibility("default"))) const char mhhs_gateway_plugin_name[] = NAME;            \
  extern "C" __attribute__((visibility("default"))) const char mhhs_gateway_plugin_version[] = VERSION;      \
  extern "C" __attribute__((visibility("default"))) int mhhs_gateway_plugin_register(                        \
      ::gw::ConnectorRegistry* registry, std::string* error) {                                                 \
    try {                                                                                                      \
      ::gw::Status s = REGISTER(*registry);                                                                    \
      if (s.ok()) return 0;                                                                                    \
      *error = s.ToString();                                                                                   \
    } catch (const std::exception& e) {                                                                        \
      *error = std::string("registration threw: ") + e.what();                                                \
    } catch (...) {                                                                                            \
      *error = "registration threw something that is not a std::exception";                                   \
    }                                                                                                          \
    return 1;                                                                                                  \
  }

#endif  // MHHS_PLUGIN_H_
