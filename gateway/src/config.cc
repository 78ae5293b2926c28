#include "gw/config.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "gw/fs.h"

namespace gw {
namespace {

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}


bool IsUpperAlpha(const std::string& s, size_t n) {
  return s.size() == n && std::all_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

bool IsDigits(const std::string& s, size_t n) {
  return s.size() == n && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool ValidName(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// Replaces each ${NAME} in `value` with the environment variable NAME.
Status ExpandEnv(const std::string& where, std::string* value) {
  size_t pos = 0;
  while ((pos = value->find("${", pos)) != std::string::npos) {
    size_t end = value->find('}', pos + 2);
    if (end == std::string::npos) return InvalidArgument(where + "unclosed ${ in value");
    std::string name = value->substr(pos + 2, end - pos - 2);
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return InvalidArgument(where + "environment variable " + name + " is not set");
    value->replace(pos, end - pos + 1, v);
    pos += std::strlen(v);
  }
  return Status::Ok();
}

}  // namespace

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, ',')) {
    item = Trim(item);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

StatusOr<std::vector<ConfigSection>> ParseIni(const std::string& text, const std::string& file) {
  std::vector<ConfigSection> sections;
  std::set<std::string> seen;
  std::istringstream in(text);
  std::string raw;
  int line_no = 0;
  while (std::getline(in, raw)) {
    ++line_no;
    std::string line = Trim(raw);
    if (line.empty() || line[0] == ';' || line[0] == '#') continue;
    std::string where = file + ":" + std::to_string(line_no) + ": ";
    if (line[0] == '[') {
      if (line.back() != ']') return InvalidArgument(where + "section header must end with ']'");
      std::string name = Trim(line.substr(1, line.size() - 2));
      if (name.empty()) return InvalidArgument(where + "empty section name");
      if (!seen.insert(name).second) return InvalidArgument(where + "[" + name + "] appears twice");
      sections.emplace_back(file, name, line_no);
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string::npos) return InvalidArgument(where + "expected 'key = value' (got \"" + line + "\")");
    if (sections.empty()) return InvalidArgument(where + "key outside any [section]");
    std::string key = Trim(line.substr(0, eq));
    if (key.empty()) return InvalidArgument(where + "empty key");
    std::string value = Trim(line.substr(eq + 1));
    GW_RETURN_IF_ERROR(ExpandEnv(where + "[" + sections.back().name() + "] " + key + ": ", &value));
    sections.back().Add(key, std::move(value), line_no);
  }
  return sections;
}

std::vector<std::string> GatewayConfig::SinksFor(const std::string& source) const {
  std::vector<std::string> out;
  for (const RouteConfig& r : routes) {
    if (std::find(r.from.begin(), r.from.end(), source) == r.from.end()) continue;
    for (const std::string& s : r.to) {
      if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
    }
  }
  return out;
}

std::vector<DeliveryTarget> GatewayConfig::TargetsFor(const std::string& source) const {
  std::vector<DeliveryTarget> out;
  for (const std::string& sink : SinksFor(source)) {
    DeliveryTarget t{sink, -1};
    for (const RouteConfig& r : routes) {
      if (std::find(r.from.begin(), r.from.end(), source) == r.from.end()) continue;
      if (std::find(r.to.begin(), r.to.end(), sink) == r.to.end()) continue;
      if (r.expiry_s == 0) t.expiry_s = 0;
      else if (t.expiry_s == -1 || (t.expiry_s > 0 && r.expiry_s < t.expiry_s)) t.expiry_s = r.expiry_s;
    }
    if (t.expiry_s < 0) t.expiry_s = 0;
    out.push_back(t);
  }
  return out;
}

StatusOr<GatewayConfig> ParseConfig(const std::string& text, const std::string& file) {
  auto parsed = ParseIni(text, file);
  if (!parsed.ok()) return parsed.status();
  GatewayConfig cfg;
  cfg.file = file;
  bool have_gateway = false, have_journal = false;

  for (ConfigSection& sec : parsed.value()) {
    const std::string& name = sec.name();
    if (name == "gateway") {
      have_gateway = true;
      auto mpid = sec.GetRequired("participant_mpid");
      if (!mpid.ok()) return mpid.status();
      if (!IsUpperAlpha(*mpid, 4)) return sec.Error("participant_mpid", "must be 4 upper-case letters (got \"" + *mpid + "\")");
      auto role = sec.GetRequired("participant_role");
      if (!role.ok()) return role.status();
      if (role->size() != 1 || !std::isupper(static_cast<unsigned char>((*role)[0]))) {
        return sec.Error("participant_role", "must be one upper-case DTN role letter (got \"" + *role + "\")");
      }
      auto env = sec.GetRequired("environment");
      if (!env.ok()) return env.status();
      static const std::set<std::string> kEnvs = {"PRD", "SITB", "SIT", "UIT", "DEV", "PPE", "TST"};
      if (!kEnvs.count(*env)) return sec.Error("environment", "must be one of PRD, SITB, SIT, UIT, DEV, PPE, TST (got \"" + *env + "\")");
      cfg.gateway.participant_mpid = *mpid;
      cfg.gateway.participant_role = *role;
      cfg.gateway.environment = *env;
      cfg.gateway.dip_id = sec.GetString("dip_id", "");
      if (!cfg.gateway.dip_id.empty() && !IsDigits(cfg.gateway.dip_id, 10)) {
        return sec.Error("dip_id", "must be 10 digits (got \"" + cfg.gateway.dip_id + "\")");
      }
      cfg.gateway.flow_dir = sec.GetString("flow_dir", "");
      cfg.log_level = sec.GetString("log_level", "info");
      static const std::set<std::string> kLevels = {"error", "warning", "notice", "info", "debug"};
      if (!kLevels.count(cfg.log_level)) return sec.Error("log_level", "must be error, warning, notice, info or debug (got \"" + cfg.log_level + "\")");
      cfg.log_format = sec.GetString("log_format", "text");
      if (cfg.log_format != "text" && cfg.log_format != "json") return sec.Error("log_format", "must be text or json");
      cfg.admin_listen = sec.GetString("admin_listen", cfg.admin_listen);
      if (cfg.admin_listen != "off" && cfg.admin_listen.rfind("127.", 0) != 0 && cfg.admin_listen.rfind("[::1]", 0) != 0 &&
          cfg.admin_listen.rfind("localhost:", 0) != 0) {
        return sec.Error("admin_listen", "must be a loopback address such as 127.0.0.1:9780, or off (got \"" + cfg.admin_listen + "\")");
      }
      cfg.admin_token_file = sec.GetString("admin_token_file", "");
      cfg.plugin_dir_configured = sec.Has("plugin_dir");
      cfg.plugin_dir = sec.GetString("plugin_dir", GW_PLUGIN_DIR_DEFAULT);
      auto backlog = sec.GetInt("max_backlog_age_s", 0, 0, 86400 * 30);
      if (!backlog.ok()) return backlog.status();
      cfg.max_backlog_age_s = *backlog;
      auto warn = sec.GetInt("cert_warn_days", 14, 0, 3650);
      if (!warn.ok()) return warn.status();
      cfg.cert_warn_days = static_cast<int>(*warn);
      auto stall = sec.GetInt("watchdog_stall_s", 120, 5, 86400);
      if (!stall.ok()) return stall.status();
      cfg.watchdog_stall_s = static_cast<int>(*stall);
      auto drain = sec.GetInt("shutdown_timeout_s", 20, 0, 3600);
      if (!drain.ok()) return drain.status();
      cfg.shutdown_timeout_s = static_cast<int>(*drain);
      GW_RETURN_IF_ERROR(sec.CheckAllUsed());
    } else if (name == "dip") {
      DipSettings& d = cfg.gateway.dip;
      d.role = sec.GetString("role", "");
      static const std::set<std::string> kRoles = {"SUP", "SDS", "ADS", "UMSDS", "REGS", "LDSO", "MDS", "LSS", "ISD", "MOP", "UMSO", "VAS", "ECOES", "CSS", "DCC"};
      if (!d.role.empty() && !kRoles.count(d.role)) return sec.Error("role", "not a DIP role (SUP, SDS, ADS, UMSDS, LDSO, MDS, LSS, REGS, ...) (got \"" + d.role + "\")");
      d.connection_provider_id = sec.GetString("connection_provider_id", "");
      if (!d.connection_provider_id.empty() && !IsDigits(d.connection_provider_id, 10)) return sec.Error("connection_provider_id", "must be 10 digits");
      d.connection_type = sec.GetString("connection_type", "W");
      static const std::set<std::string> kTypes = {"W", "L", "H", "E", "U"};
      if (!kTypes.count(d.connection_type)) return sec.Error("connection_type", "must be W, L, H, E or U (got \"" + d.connection_type + "\")");
      d.connection_type_from = sec.GetString("connection_type_effective_from", "");
      if (!d.connection_type_from.empty() &&
          (d.connection_type_from.size() != 10 || d.connection_type_from[4] != '-' || d.connection_type_from[7] != '-')) {
        return sec.Error("connection_type_effective_from", "must be a date YYYY-MM-DD (got \"" + d.connection_type_from + "\")");
      }
      d.default_distributor_dip_id = sec.GetString("distributor_dip_id", "");
      if (!d.default_distributor_dip_id.empty() && !IsDigits(d.default_distributor_dip_id, 10)) return sec.Error("distributor_dip_id", "must be 10 digits");
      for (const ConfigSection::Entry& e : sec.entries()) {
        if (e.key.rfind("distributor_dip_id.", 0) != 0) continue;
        e.used = true;
        std::string dist = e.key.substr(19);
        if (!IsDigits(dist, 2)) return sec.Error(e.key, "the suffix must be a 2-digit distributor id, e.g. distributor_dip_id.10");
        if (!IsDigits(e.value, 10)) return sec.Error(e.key, "must be 10 digits (got \"" + e.value + "\")");
        d.distributor_dip_ids[dist] = e.value;
      }
      GW_RETURN_IF_ERROR(sec.CheckAllUsed());
    } else if (name == "security") {
      SecurityConfig& c = cfg.security;
      c.configured = true;
      // Paths are taken relative to the config file's folder.
      const std::string base = DirName(file);
      auto path = [&](const char* key) {
        std::string v = sec.GetString(key, "");
        return v.empty() || v[0] == '/' ? v : base + "/" + v;
      };
      c.key_file = path("key");
      c.certificate_file = path("certificate");
      if (c.key_file.empty() != c.certificate_file.empty()) {
        return sec.Error(c.key_file.empty() ? "certificate" : "key", "key and certificate go together (signing needs both)");
      }
      auto embed = sec.GetBool("embed_certificate", true);
      if (!embed.ok()) return embed.status();
      c.embed_certificate = *embed;
      auto batches = sec.GetBool("sign_batches", false);
      if (!batches.ok()) return batches.status();
      c.sign_batches = *batches;
      c.trust_ca_file = path("trust_ca_file");
      c.trust_dir = path("trust_dir");
      auto require = sec.GetBool("require_signatures", true);
      if (!require.ok()) return require.status();
      c.require_signatures = *require;
      c.policy_file = path("policy");
      auto age = sec.GetInt("max_signature_age_days", -1, 0, 3650);
      if (!age.ok()) return age.status();
      c.max_signature_age_s = *age < 0 ? -1 : *age * 86400;
      c.journal_key_file = path("journal_key_file");
      c.journal_key_credential = sec.GetString("journal_key_credential", "");
      if (!c.journal_key_file.empty() && !c.journal_key_credential.empty()) {
        return sec.Error("journal_key_credential", "give journal_key_file or journal_key_credential, not both");
      }
      if (c.journal_key_credential.find('/') != std::string::npos) {
        return sec.Error("journal_key_credential", "is a credential name, not a path (got \"" + c.journal_key_credential + "\")");
      }
      for (const std::string& old : SplitList(sec.GetString("journal_old_key_files", ""))) {
        c.journal_old_key_files.push_back(old[0] == '/' ? old : base + "/" + old);
      }
      GW_RETURN_IF_ERROR(sec.CheckAllUsed());
    } else if (name == "journal") {
      have_journal = true;
      auto path = sec.GetRequired("path");
      if (!path.ok()) return path.status();
      cfg.journal.path = *path;
      auto max_bytes = sec.GetInt("max_bytes", 0, 0, int64_t{1} << 50);
      if (!max_bytes.ok()) return max_bytes.status();
      auto high = sec.GetInt("high_water_pct", 90, 2, 100);
      if (!high.ok()) return high.status();
      auto low = sec.GetInt("low_water_pct", 80, 1, 99);
      if (!low.ok()) return low.status();
      if (*low >= *high) return sec.Error("low_water_pct", "must be below high_water_pct");
      auto retention = sec.GetInt("retention_days", 28, 0, 3650);
      if (!retention.ok()) return retention.status();
      auto prune = sec.GetInt("prune_interval_s", 300, 1, 86400);
      if (!prune.ok()) return prune.status();
      auto patience = sec.GetInt("handoff_patience_ms", 50, 0, 10000);
      if (!patience.ok()) return patience.status();
      cfg.journal.max_bytes = *max_bytes;
      cfg.journal.high_water_pct = static_cast<int>(*high);
      cfg.journal.low_water_pct = static_cast<int>(*low);
      cfg.journal.retention_days = static_cast<int>(*retention);
      cfg.journal.prune_interval_s = static_cast<int>(*prune);
      cfg.journal.handoff_patience_ms = static_cast<int>(*patience);
      GW_RETURN_IF_ERROR(sec.CheckAllUsed());
    } else if (name.rfind("source.", 0) == 0 || name.rfind("sink.", 0) == 0) {
      bool is_source = name[1] == 'o';
      ConnectorConfig cc;
      cc.name = name.substr(name.find('.') + 1);
      if (!ValidName(cc.name)) return InvalidArgument(sec.Where("") + ": connector names use letters, digits, '_' and '-'");
      auto type = sec.GetRequired("type");
      if (!type.ok()) return type.status();
      cc.type = *type;
      cc.section = sec;
      (is_source ? cfg.sources : cfg.sinks).push_back(std::move(cc));
    } else if (name.rfind("route.", 0) == 0) {
      RouteConfig r;
      r.name = name.substr(6);
      auto from = sec.GetRequired("from");
      if (!from.ok()) return from.status();
      auto to = sec.GetRequired("to");
      if (!to.ok()) return to.status();
      r.from = SplitList(*from);
      r.to = SplitList(*to);
      auto expiry = sec.GetInt("expiry_s", 0, 0, int64_t{10} * 365 * 86400);
      if (!expiry.ok()) return expiry.status();
      r.expiry_s = *expiry;
      GW_RETURN_IF_ERROR(sec.CheckAllUsed());
      cfg.routes.push_back(std::move(r));
    } else {
      return InvalidArgument(sec.Where("") + ": unknown section (expected gateway, dip, journal, security, source.NAME, sink.NAME or route.NAME)");
    }
  }
  if (!have_gateway) return InvalidArgument(file + ": missing [gateway] section");
  // By default a signature may be as old as the journal remembers event ids for dedupe.
  if (cfg.security.max_signature_age_s < 0) cfg.security.max_signature_age_s = int64_t{cfg.journal.retention_days} * 86400;
  if (!have_journal) return InvalidArgument(file + ": missing [journal] section");

  // Routes must name connectors that exist.
  auto has = [](const std::vector<ConnectorConfig>& v, const std::string& n) {
    return std::any_of(v.begin(), v.end(), [&](const ConnectorConfig& c) { return c.name == n; });
  };
  for (const ConfigSection& sec : parsed.value()) {
    if (sec.name().rfind("route.", 0) != 0) continue;
    const RouteConfig& r = *std::find_if(cfg.routes.begin(), cfg.routes.end(),
                                         [&](const RouteConfig& x) { return "route." + x.name == sec.name(); });
    for (const std::string& s : r.from) {
      if (!has(cfg.sources, s)) return sec.Error("from", "no [source." + s + "] section");
    }
    for (const std::string& s : r.to) {
      if (!has(cfg.sinks, s)) return sec.Error("to", "no [sink." + s + "] section");
    }
  }
  return cfg;
}

StatusOr<GatewayConfig> LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot open config file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfig(ss.str(), path);
}

}  // namespace gw
