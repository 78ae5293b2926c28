// mhhs-gatewayd: the gateway daemon. Runs in the foreground (never forks), logs to stderr with
// journald priority prefixes, and under systemd tells the manager when it is ready.
//
// Exit codes (sysexits): 0 clean stop; 64 bad usage; 78 bad configuration; 74 journal I/O
// error; 69 a connector could not start.
#include <signal.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <sysexits.h>

#include <boost/program_options.hpp>
#include <iostream>

#include "gw/admin.h"
#include "gw/config.h"
#include "gw/fs.h"
#include "gw/connectors/builtin.h"
#include "gw/journal.h"
#include "gw/log.h"
#include "gw/pipeline.h"
#include "gw/plugins.h"

namespace po = boost::program_options;

namespace {

int Fail(gw::Logger& log, int code, const std::string& msg) {
  log.Error(msg);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // Journal, archived files and error reports hold market data: group-readable at most,
  // whatever the caller's umask (systemd sets UMask=0027 too).
  ::umask(027);
  gw::StderrLogger log("mhhs-gatewayd");
  po::options_description opts("Usage: mhhs-gatewayd --config FILE [options]\n\nOptions");
  opts.add_options()
      ("config,c", po::value<std::string>()->default_value("/etc/mhhs-gateway/gateway.ini"), "configuration file")
      ("check-config", "validate the configuration and every connector section, then exit")
      ("log-level", po::value<std::string>(), "override [gateway] log_level: error, warning, notice, info, debug")
      ("log-json", "write log lines as JSON objects")
      ("shutdown-timeout", po::value<int>(), "seconds to let in-flight deliveries finish on SIGTERM (default: [gateway] shutdown_timeout_s, 20)")
      ("version", "print the version and exit")
      ("help,h", "print this help and exit");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mhhs-gatewayd: " << e.what() << " (see --help)\n";
    return EX_CONFIG;
  }
  if (vm.count("help")) {
    std::cout << opts << "\nCarries DTN files and database rows to and from the MHHS MQTT backbone.\n"
                 "Signals: SIGTERM/SIGINT stop (draining in-flight deliveries); SIGHUP re-reads the\n"
                 "configuration and restarts only the connectors whose sections changed.\n"
                 "See mhhs-gatewayctl --help for operations, and docs/ for the guides.\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "mhhs-gatewayd " << GW_VERSION << "\n";
    return 0;
  }

  std::string path = vm["config"].as<std::string>();
  auto config = gw::LoadConfig(path);
  if (!config.ok()) return Fail(log, EX_CONFIG, config.status().message());
  std::string level = vm.count("log-level") ? vm["log-level"].as<std::string>() : config->log_level;
  auto parsed_level = gw::ParseLogLevel(level);
  if (!parsed_level.ok()) return Fail(log, EX_CONFIG, "--log-level: " + parsed_level.status().message());
  gw::SetLogLevel(*parsed_level);
  if (vm.count("log-json") || config->log_format == "json") gw::SetLogJson(true);

  // Plugins first: the set outlives the registry and every connector made from its factories.
  gw::PluginSet plugins;
  gw::Registry registry;
  gw::Status reg = gw::connectors::RegisterBuiltinConnectors(registry);
  if (!reg.ok()) return Fail(log, EX_SOFTWARE, reg.ToString());
  reg = gw::LoadConfiguredPlugins(*config, &plugins, &registry);
  if (!reg.ok()) return Fail(log, EX_CONFIG, reg.message());
  for (const gw::LoadedPlugin& p : plugins.loaded()) {
    std::string types;
    for (const std::string& t : p.types) types += (types.empty() ? "" : ", ") + t;
    log.Notice("plugin " + p.name + " " + p.version + " loaded from " + p.path + ": " + (types.empty() ? "no connector types" : types));
  }

  // Keys, certificates, trust store, policy and the journal key: a key readable by others,
  // or one that does not fit its certificate, stops the start here.
  auto security = gw::LoadSecurity(config->security, config->gateway);
  if (!security.ok()) return Fail(log, EX_CONFIG, security.status().message());

  if (vm.count("check-config")) {
    gw::Pipeline check(*config, nullptr, registry);
    gw::Status s = check.Build();
    if (s.ok()) s = gw::CheckSecurityCoverage(check, **security);
    if (!s.ok()) return Fail(log, EX_CONFIG, s.message());
    std::cout << path << ": configuration OK (" << config->sources.size() << " source(s), " << config->sinks.size()
              << " sink(s), " << config->routes.size() << " route(s))\n";
    return 0;
  }

  // Signals are taken synchronously by the main thread; every other thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  gw::JournalOptions jopts;
  jopts.path = config->journal.path;
  jopts.max_bytes = config->journal.max_bytes;
  jopts.high_water_pct = config->journal.high_water_pct;
  jopts.low_water_pct = config->journal.low_water_pct;
  jopts.cipher = (*security)->cipher;
  jopts.handoff_patience = std::chrono::milliseconds(config->journal.handoff_patience_ms);
  auto journal = gw::Journal::Open(jopts);
  if (!journal.ok()) return Fail(log, EX_IOERR, journal.status().message());

  gw::MetricsRegistry metrics;
  gw::Pipeline pipeline(*config, journal->get(), registry, &metrics);
  gw::Status s = pipeline.Build();
  if (s.ok()) s = gw::CheckSecurityCoverage(pipeline, **security);
  if (!s.ok()) return Fail(log, EX_CONFIG, s.message());
  pipeline.SetSecurity(security->get());
  for (const std::string& line : gw::DescribeSecurity(**security, pipeline)) {
    if (line.rfind("warning: ", 0) == 0) log.Warning(line.substr(9));
    else log.Notice(line);
  }

  gw::AdminOptions admin_opts;
  admin_opts.listen = config->admin_listen == "off" ? "" : config->admin_listen;
  if (!config->admin_token_file.empty()) {
    auto token = gw::ReadSecretFile(config->admin_token_file);
    if (!token.ok()) return Fail(log, EX_CONFIG, "[gateway] admin_token_file: " + token.status().message());
    admin_opts.token = *token;
  }
  admin_opts.max_backlog_age_s = config->max_backlog_age_s;
  admin_opts.cert_warn_days = config->cert_warn_days;
  admin_opts.cert_files = gw::ConfiguredCertificates(*config);
  admin_opts.version = GW_VERSION;
  gw::AdminServer admin(admin_opts, *config, &pipeline, journal->get(), &metrics);

  s = pipeline.Start();
  if (!s.ok()) {
    pipeline.Stop(std::chrono::milliseconds(0));
    return Fail(log, EX_UNAVAILABLE, s.message());
  }
  s = admin.Start();
  if (!s.ok()) {
    pipeline.Stop(std::chrono::milliseconds(0));
    return Fail(log, EX_UNAVAILABLE, s.message());
  }
  log.Notice("started: participant " + config->gateway.participant_mpid + " (" + config->gateway.participant_role + "), " +
             std::to_string(config->sources.size()) + " source(s), " + std::to_string(config->sinks.size()) +
             " sink(s), journal " + config->journal.path +
             (admin_opts.listen.empty() ? "" : ", admin http://" + admin_opts.listen + "/"));
  sd_notify(0, "READY=1\nSTATUS=running");

  // The watchdog is fed only while every source and sink loop makes progress: a wedged sink
  // worker stops the pings and systemd restarts the service.
  uint64_t watchdog_usec = 0;
  bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  auto tick = watchdog ? std::chrono::microseconds(watchdog_usec / 3) : std::chrono::microseconds(2000000);
  bool wedged = false;
  for (;;) {
    timespec ts{static_cast<time_t>(tick.count() / 1000000), static_cast<long>(tick.count() % 1000000) * 1000};
    int sig = sigtimedwait(&signals, nullptr, &ts);
    if (sig < 0) {
      std::string why;
      bool healthy = pipeline.Healthy(std::chrono::seconds(config->watchdog_stall_s), &why);
      if (healthy) {
        if (wedged) log.Notice("pipeline making progress again; watchdog pings resumed");
        wedged = false;
        const gw::PipelineCounters& c = pipeline.counters();
        std::string status = "STATUS=" + std::to_string(c.events_accepted.load()) + " accepted, " +
                             std::to_string(c.events_delivered.load()) + " delivered, " +
                             std::to_string(c.dead_letters.load()) + " dead-lettered";
        if (watchdog) status += "\nWATCHDOG=1";
        sd_notify(0, status.c_str());
      } else if (!wedged) {
        wedged = true;
        log.Error("watchdog pings stopped: " + why);
        sd_notify(0, ("STATUS=wedged: " + why).c_str());
      }
      continue;
    }
    if (sig == SIGHUP) {
      // Re-read the file; an invalid one is logged and the running configuration kept.
      sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
      auto next = gw::LoadConfig(path);
      gw::Status checked = next.ok() ? gw::Status::Ok() : next.status();
      if (checked.ok()) {
        gw::Pipeline check(*next, nullptr, registry);
        checked = check.Build();
        // The running security settings stay until a restart; a new market source must not
        // slip in unverified meanwhile.
        if (checked.ok()) checked = gw::CheckSecurityCoverage(check, **security);
      }
      if (!checked.ok()) {
        log.Error("reload refused, the running configuration stays: " + checked.message());
      } else {
        std::vector<std::string> notes;
        gw::Status applied = pipeline.Reload(std::make_unique<gw::GatewayConfig>(std::move(next.value())), &notes);
        std::string summary;
        for (const auto& n : notes) summary += (summary.empty() ? "" : "; ") + n;
        log.Notice("configuration reloaded" + (summary.empty() ? std::string(": nothing changed") : ": " + summary));
        if (!applied.ok()) log.Error("reload: " + applied.message());
      }
      sd_notify(0, "READY=1\nSTATUS=running");
      continue;
    }
    log.Notice(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", stopping");
    break;
  }
  sd_notify(0, "STOPPING=1");
  admin.Stop();
  int drain = vm.count("shutdown-timeout") ? vm["shutdown-timeout"].as<int>() : config->shutdown_timeout_s;
  pipeline.Stop(std::chrono::seconds(drain));
  const gw::PipelineCounters& c = pipeline.counters();
  log.Notice("stopped: " + std::to_string(c.events_accepted.load()) + " event(s) accepted, " +
             std::to_string(c.events_delivered.load()) + " delivered, " + std::to_string(c.dead_letters.load()) +
             " dead-lettered in this run");
  log.Info("journal: sinks took " + std::to_string((*journal)->EventsFromMemory()) +
           " event(s) from memory and read " + std::to_string((*journal)->EventsReadBack()) + " back");
  return 0;
}
