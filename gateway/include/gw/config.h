// Gateway configuration: the INI file (`gateway.ini`) parsed into sections, and the
// core's own sections ([gateway], [journal], [route.*]) validated into GatewayConfig.
//
// Connector sections are kept as raw ConfigSections: the core never reads their keys; each
// connector validates its own. Errors name file, line, section and key.
// Thread-safety: immutable once loaded.
#ifndef GW_CONFIG_H_
#define GW_CONFIG_H_

#include <map>
#include <string>
#include <vector>

#include "gw/journal.h"
#include "gw/security.h"
#include "mhhs/config_section.h"
#include "mhhs/connector.h"
#include "mhhs/status.h"

namespace gw {

// Splits "a, b ,c" at commas into trimmed, non-empty items.
std::vector<std::string> SplitList(const std::string& s);

// Parses INI text. `file` is used in error messages only.
// Syntax: `[section]`, `key = value`, whole-line comments starting with `;` or `#`.
// `${NAME}` in a value is replaced by environment variable NAME (an unset one is an error).
StatusOr<std::vector<ConfigSection>> ParseIni(const std::string& text, const std::string& file);

struct JournalConfig {
  std::string path;
  int64_t max_bytes = 0;        // 0: no quota
  int high_water_pct = 90;
  int low_water_pct = 80;
  int retention_days = 28;
  int prune_interval_s = 300;
  int handoff_patience_ms = 50;  // 0: sources never wait for the sinks
};

struct ConnectorConfig {
  std::string name;  // "inbox"
  std::string type;  // "file"
  ConfigSection section;
};

struct RouteConfig {
  std::string name;
  std::vector<std::string> from;  // source names
  std::vector<std::string> to;    // sink names
  int64_t expiry_s = 0;           // 0: events never expire
};

struct GatewayConfig {
  std::string file;
  GatewayInfo gateway;
  std::string log_level = "info";
  std::string log_format = "text";      // text | json
  std::string admin_listen = "127.0.0.1:9780";  // "off": no admin endpoint
  std::string admin_token_file;
  std::string plugin_dir;            // connector plugins (*.so) loaded at start
  bool plugin_dir_configured = false;  // set explicitly: then the folder must exist
  int64_t max_backlog_age_s = 0;
  int cert_warn_days = 14;
  int watchdog_stall_s = 120;
  int shutdown_timeout_s = 20;
  JournalConfig journal;
  SecurityConfig security;
  std::vector<ConnectorConfig> sources;
  std::vector<ConnectorConfig> sinks;
  std::vector<RouteConfig> routes;

  // The sinks that events from `source` are routed to, without duplicates, in config order.
  std::vector<std::string> SinksFor(const std::string& source) const;
  // The same with each sink's expiry: the shortest of the routes that reach it, or none (0)
  // when any route to it has none.
  std::vector<DeliveryTarget> TargetsFor(const std::string& source) const;
};

// Loads and validates the core sections of `path`. Does not create connectors.
// Errors: kNotFound (no file), kInvalidArgument (naming file:line and key).
StatusOr<GatewayConfig> LoadConfig(const std::string& path);
StatusOr<GatewayConfig> ParseConfig(const std::string& text, const std::string& file);

}  // namespace gw

#endif  // GW_CONFIG_H_
