#include "gw/plugins.h"

#include <dirent.h>
#include <dlfcn.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "gw/config.h"
#include "gw/pipeline.h"
#include "mhhs/plugin.h"

namespace gw {
namespace {

// Passes registrations through and notes which types a plugin added.
class RecordingRegistry : public ConnectorRegistry {
 public:
  explicit RecordingRegistry(ConnectorRegistry& inner) : inner_(inner) {}
  Status RegisterSource(const std::string& type, SourceFactory factory) override {
    GW_RETURN_IF_ERROR(inner_.RegisterSource(type, std::move(factory)));
    types.push_back("source " + type);
    return Status::Ok();
  }
  Status RegisterSink(const std::string& type, SinkFactory factory) override {
    GW_RETURN_IF_ERROR(inner_.RegisterSink(type, std::move(factory)));
    types.push_back("sink " + type);
    return Status::Ok();
  }
  std::vector<std::string> types;

 private:
  ConnectorRegistry& inner_;
};

using RegisterFn = int (*)(ConnectorRegistry*, std::string*);

}  // namespace

PluginSet::~PluginSet() {
  for (auto it = handles_.rbegin(); it != handles_.rend(); ++it) ::dlclose(*it);
}

Status PluginSet::Load(const std::string& path, ConnectorRegistry& registry) {
  ::dlerror();
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* e = ::dlerror();
    return FailedPrecondition(path + ": cannot load plugin: " + (e ? e : "unknown dlopen error"));
  }
  auto fail = [&](const std::string& why) {
    ::dlclose(h);
    return FailedPrecondition(path + ": " + why);
  };
  // The ABI number is data: it is read before any entry point is called (only the loader
  // has run the library's static constructors; mhhs/plugin.h asks plugins to keep them trivial).
  const auto* abi = static_cast<const std::uint32_t*>(::dlsym(h, "mhhs_gateway_plugin_abi"));
  if (abi == nullptr) return fail("not a gateway plugin (no mhhs_gateway_plugin_abi symbol; use MHHS_GATEWAY_PLUGIN)");
  if (*abi != MHHS_GATEWAY_PLUGIN_ABI) {
    return fail("built for plugin ABI " + std::to_string(*abi) + ", this gateway loads plugin ABI " +
                std::to_string(MHHS_GATEWAY_PLUGIN_ABI) + "; rebuild it against this gateway's mhhs-gateway-dev");
  }
  const char* name = static_cast<const char*>(::dlsym(h, "mhhs_gateway_plugin_name"));
  const char* version = static_cast<const char*>(::dlsym(h, "mhhs_gateway_plugin_version"));
  auto reg = reinterpret_cast<RegisterFn>(::dlsym(h, "mhhs_gateway_plugin_register"));
  if (reg == nullptr) return fail("not a gateway plugin (no mhhs_gateway_plugin_register symbol)");
  RecordingRegistry recording(registry);
  std::string error;
  if (reg(&recording, &error) != 0) {
    // Types it managed to register before failing stay registered and point into the library:
    // keep it loaded, but fail the start.
    handles_.push_back(h);
    return FailedPrecondition(path + ": the plugin refused to register: " + error);
  }
  handles_.push_back(h);
  loaded_.push_back(LoadedPlugin{path, name ? name : "(unnamed)", version ? version : "", std::move(recording.types)});
  return Status::Ok();
}

Status PluginSet::LoadDirectory(const std::string& dir, bool required, ConnectorRegistry& registry) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (!required && errno == ENOENT) return Status::Ok();
    return FailedPrecondition(dir + ": cannot open the plugin folder ([gateway] plugin_dir): " + std::strerror(errno));
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 3 && n.compare(n.size() - 3, 3, ".so") == 0) names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) GW_RETURN_IF_ERROR(Load(dir + "/" + n, registry));
  return Status::Ok();
}

Status LoadConfiguredPlugins(const GatewayConfig& config, PluginSet* plugins, Registry* registry) {
  registry->SetPluginDir(config.plugin_dir);
  Status s = plugins->LoadDirectory(config.plugin_dir, config.plugin_dir_configured, *registry);
  return s.ok() ? s : s.Annotate("[gateway] plugin_dir");
}

}  // namespace gw
