// Registers the built-in connector types (`file`, `mqtt`) with a registry: the same path
// plugins take, so the core has one way of creating connectors.
#ifndef GW_CONNECTORS_BUILTIN_H_
#define GW_CONNECTORS_BUILTIN_H_

#include "mhhs/connector.h"

namespace gw::connectors {

Status RegisterBuiltinConnectors(ConnectorRegistry& registry);

}  // namespace gw::connectors

#endif  // GW_CONNECTORS_BUILTIN_H_
