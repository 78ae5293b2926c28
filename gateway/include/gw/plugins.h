// Loading connector plugins (mhhs/plugin.h) from a folder at start.
//
// PluginSet owns the loaded libraries: it must be declared before, and so outlive, the
// Registry the plugins register into and every connector made from it (their code lives in
// the libraries). Thread-safety: load from one thread before the pipeline starts.
#ifndef GW_PLUGINS_H_
#define GW_PLUGINS_H_

#include <string>
#include <vector>

#include "mhhs/connector.h"
#include "mhhs/status.h"

namespace gw {

struct LoadedPlugin {
  std::string path;
  std::string name;
  std::string version;
  std::vector<std::string> types;  // "sink webhook", "source csv"
};

class PluginSet {
 public:
  PluginSet() = default;
  ~PluginSet();  // unloads, newest first
  PluginSet(const PluginSet&) = delete;
  PluginSet& operator=(const PluginSet&) = delete;

  // Loads every `*.so` in `dir`, in name order. A missing folder is an error only when
  // `required`. Errors (kFailedPrecondition, naming the file): not loadable, not a gateway
  // plugin, built for another plugin ABI (naming both numbers), or its registration failed.
  Status LoadDirectory(const std::string& dir, bool required, ConnectorRegistry& registry);
  // Loads one plugin file.
  Status Load(const std::string& path, ConnectorRegistry& registry);

  const std::vector<LoadedPlugin>& loaded() const { return loaded_; }

 private:
  std::vector<LoadedPlugin> loaded_;
  std::vector<void*> handles_;
};

class Registry;
struct GatewayConfig;

// Loads the plugins in `config`'s plugin_dir into `registry` (which then names that folder
// when a configured type is unknown). The default folder may be missing; a configured one not.
Status LoadConfiguredPlugins(const GatewayConfig& config, PluginSet* plugins, Registry* registry);

}  // namespace gw

#endif  // GW_PLUGINS_H_
