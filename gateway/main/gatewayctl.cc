// mhhs-gatewayctl: everything an operator does with a gateway, from the command line.
// Human tables by default, --json for scripts. Exit codes: 0 success; 1 the thing checked is
// bad (invalid file, not found); 64 bad usage; 78 bad configuration; 74 journal error.
#include <sysexits.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>

#include "gw/adapters/dtn_encoder.h"
#include "gw/adapters/dtn_events.h"
#include "gw/envelope.h"
#include "gw/config.h"
#include "gw/connectors/builtin.h"
#include "gw/fs.h"
#include "gw/journal.h"
#include "gw/pipeline.h"
#include "gw/plugins.h"
#include "mhhs/json.h"

namespace po = boost::program_options;

namespace {

constexpr const char* kUsage =
    "Usage: mhhs-gatewayctl [--config FILE] [--json] COMMAND [ARGS...]\n"
    "\n"
    "Commands:\n"
    "  status                      events in the journal and queue depth per sink\n"
    "  queue                       the same, per sink only\n"
    "  dead-letters list [SINK]    events a sink refused for good, with the reason\n"
    "  dead-letters retry ID       queue a dead letter again (ID: seq or event id)\n"
    "  dead-letters drop ID        give up on a dead letter for good\n"
    "  trace EVENT_ID              an event's life: accepted, routed, attempts, confirmed, dead-lettered\n"
    "  audit verify                check the hash chain; exit 1 naming the first broken entry\n"
    "  audit export [--from T] [--to T]  the audit entries as JSON Lines, for a regulator\n"
    "  quarantine list | show ID   inbound messages that were not valid, with the reason\n"
    "  replay --from T [--to T] [--type TYPE] --sink NAME\n"
    "                              queue journalled events again for a sink (T: 2026-11-26,\n"
    "                              2026-11-26T14:00:00Z or unix seconds; accepted-at time)\n"
    "  verify [FILE]               check envelopes (JSON Lines; default stdin) as the daemon checks\n"
    "                              market events: signature, trust store, entitlements\n"
    "  check-config                validate the configuration and every connector section\n"
    "  check-file FILE...          validate DTN files; exit 1 when any is invalid\n"
    "  convert [--sign] FILE       print a DTN file's events as JSON Lines envelopes (--sign: signed\n"
    "                              with [security] key, as the daemon publishes them)\n"
    "  convert --to-dtn FILE.jsonl write envelopes (JSON Lines) back as one DTN file\n"
    "\n"
    "COMMAND --help shows the command's own help.\n";

struct Ctx {
  std::string config_path;
  bool json = false;
  std::string flow_dir;
  bool dip_mapping = true;
  bool sign = false;
};

std::string Iso(int64_t ms) { return gw::FormatUnixMs(ms); }

// Parses 2026-11-26, 2026-11-26T14:00:00Z (or +00:00) or unix seconds into unix ms.
bool ParseTime(const std::string& s, int64_t* ms) {
  if (!s.empty() && std::all_of(s.begin(), s.end(), ::isdigit)) {
    *ms = std::stoll(s) * 1000;
    return true;
  }
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) {
    tm = std::tm{};
    end = strptime(s.c_str(), "%Y-%m-%d", &tm);
    if (end == nullptr || *end != '\0') return false;
  } else if (*end != '\0' && std::string(end) != "Z" && std::string(end) != "+00:00") {
    return false;
  }
  *ms = static_cast<int64_t>(timegm(&tm)) * 1000;
  return true;
}

int Err(int code, const std::string& msg) {
  std::cerr << "mhhs-gatewayctl: " << msg << "\n";
  return code;
}

// Opens the journal named by the config, read-only unless `write`.
gw::StatusOr<std::unique_ptr<gw::Journal>> OpenJournal(const Ctx& ctx, bool write) {
  auto cfg = gw::LoadConfig(ctx.config_path);
  if (!cfg.ok()) return cfg.status();
  gw::JournalOptions o;
  o.path = cfg->journal.path;
  o.read_only = !write;
  // A command's few writes would not pay for writing the WAL out, and would hold the daemon's
  // commits back while doing it.
  o.preallocate_wal = false;
  // Payloads are shown only to a user who can read the journal key; others see the rest.
  auto cipher = gw::PayloadCipher::Load(cfg->security);
  if (cipher.ok()) {
    o.cipher = *cipher;
  } else {
    std::cerr << "mhhs-gatewayctl: note: encrypted payloads cannot be shown: " << cipher.status().message() << "\n";
  }
  return gw::Journal::Open(o);
}

std::string FlowDir(const Ctx& ctx) {
  if (!ctx.flow_dir.empty()) return ctx.flow_dir;
  auto cfg = gw::LoadConfig(ctx.config_path);
  if (cfg.ok() && !cfg->gateway.flow_dir.empty()) return cfg->gateway.flow_dir;
  return gw::adapters::DefaultFlowDir();
}

int CmdStatus(const Ctx& ctx, bool with_totals) {
  auto j = OpenJournal(ctx, false);
  if (!j.ok()) return Err(EX_IOERR, j.status().message());
  std::vector<gw::SinkQueueStats> stats;
  gw::Status s = (*j)->QueueStats(&stats);
  if (!s.ok()) return Err(EX_IOERR, s.message());
  auto total = (*j)->CountEvents();
  if (!total.ok()) return Err(EX_IOERR, total.status().message());
  std::vector<std::pair<std::string, int64_t>> keys;
  if (with_totals) {
    s = (*j)->PayloadKeys(&keys);
    if (!s.ok()) return Err(EX_IOERR, s.message());
  }
  if (ctx.json) {
    std::string out;
    gw::JsonWriter w(&out);
    w.BeginObject();
    w.Key("journal"); w.String((*j)->path());
    w.Key("events"); w.Int(*total);
    if (with_totals) {
      w.Key("payloadKeys");
      w.BeginObject();
      for (const auto& [k, n] : keys) { w.Key(k); w.Int(n); }
      w.EndObject();
    }
    w.Key("sinks");
    w.BeginArray();
    for (const auto& q : stats) {
      w.BeginObject();
      w.Key("sink"); w.String(q.sink);
      w.Key("pending"); w.Int(q.pending);
      w.Key("delivered"); w.Int(q.delivered);
      w.Key("deadLetters"); w.Int(q.dead);
      w.Key("oldestPendingAcceptedAt"); if (q.oldest_pending_ms) w.String(Iso(q.oldest_pending_ms)); else w.Null();
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    std::cout << out << "\n";
    return 0;
  }
  if (with_totals) {
    std::cout << "journal " << (*j)->path() << ": " << *total << " event(s)";
    std::string by_key;
    for (const auto& [k, n] : keys) by_key += (by_key.empty() ? "" : ", ") + std::to_string(n) + (k == "plaintext" ? " unencrypted" : " under key " + k);
    std::cout << (by_key.empty() ? "" : " (payloads: " + by_key + ")") << "\n\n";
  }
  std::printf("%-20s %10s %12s %8s  %s\n", "SINK", "PENDING", "DELIVERED", "DEAD", "OLDEST PENDING");
  for (const auto& q : stats) {
    std::printf("%-20s %10lld %12lld %8lld  %s\n", q.sink.c_str(), static_cast<long long>(q.pending),
                static_cast<long long>(q.delivered), static_cast<long long>(q.dead), Iso(q.oldest_pending_ms).c_str());
  }
  return 0;
}

int CmdDeadLetters(const Ctx& ctx, const std::vector<std::string>& args) {
  std::string verb = args.empty() ? "list" : args[0];
  if (verb == "--help" || verb == "-h") {
    std::cout << "Usage: mhhs-gatewayctl dead-letters list [SINK] | retry ID [--sink SINK] | drop ID [--sink SINK]\n"
                 "ID is the journal sequence number shown by 'list', or the event id.\n";
    return 0;
  }
  if (verb == "list") {
    auto j = OpenJournal(ctx, false);
    if (!j.ok()) return Err(EX_IOERR, j.status().message());
    std::vector<gw::DeadLetter> dl;
    gw::Status s = (*j)->ListDeadLetters(args.size() > 1 ? args[1] : "", &dl);
    if (!s.ok()) return Err(EX_IOERR, s.message());
    if (ctx.json) {
      for (const auto& d : dl) {
        std::string out;
        gw::JsonWriter w(&out);
        w.BeginObject();
        w.Key("seq"); w.Int(d.seq);
        w.Key("sink"); w.String(d.sink);
        w.Key("eventId"); w.String(d.event_id);
        w.Key("type"); w.String(d.type);
        w.Key("attempts"); w.Int(d.attempts);
        w.Key("at"); w.String(Iso(d.at_ms));
        w.Key("reason"); w.String(d.reason);
        w.EndObject();
        std::cout << out << "\n";
      }
      return 0;
    }
    std::printf("%-8s %-14s %-28s %-10s %8s  %-20s %s\n", "SEQ", "SINK", "EVENT", "TYPE", "ATTEMPTS", "AT", "REASON");
    for (const auto& d : dl) {
      std::printf("%-8lld %-14s %-28s %-10s %8d  %-20s %s\n", static_cast<long long>(d.seq), d.sink.c_str(),
                  d.event_id.c_str(), d.type.c_str(), d.attempts, Iso(d.at_ms).c_str(), d.reason.c_str());
    }
    std::cout << dl.size() << " dead letter(s)\n";
    return 0;
  }
  if (verb == "retry" || verb == "drop") {
    if (args.size() < 2) return Err(EX_USAGE, "dead-letters " + verb + " needs an ID (see dead-letters list)");
    std::string sink;
    for (size_t i = 2; i + 1 < args.size(); ++i) if (args[i] == "--sink") sink = args[i + 1];
    auto j = OpenJournal(ctx, true);
    if (!j.ok()) return Err(EX_IOERR, j.status().message());
    std::vector<gw::DeadLetter> dl;
    gw::Status s = (*j)->ListDeadLetters(sink, &dl);
    if (!s.ok()) return Err(EX_IOERR, s.message());
    int done = 0;
    for (const auto& d : dl) {
      if (std::to_string(d.seq) != args[1] && d.event_id != args[1]) continue;
      s = verb == "retry" ? (*j)->RetryDeadLetter(d.sink, d.seq) : (*j)->DropDeadLetter(d.sink, d.seq);
      if (!s.ok()) return Err(1, s.message());
      std::cout << (verb == "retry" ? "queued again: " : "dropped: ") << d.event_id << " for sink " << d.sink << "\n";
      ++done;
    }
    if (done == 0) return Err(1, "no dead letter " + args[1] + (sink.empty() ? "" : " for sink " + sink));
    return 0;
  }
  return Err(EX_USAGE, "dead-letters: unknown action \"" + verb + "\" (list, retry, drop)");
}

int CmdTrace(const Ctx& ctx, const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "Usage: mhhs-gatewayctl trace EVENT_ID\n"
                 "Shows when the event was accepted and from where, which sinks it was routed to, every\n"
                 "failed attempt, when each sink confirmed it, and any dead letter, retry or replay.\n";
    return args.empty() ? EX_USAGE : 0;
  }
  auto j = OpenJournal(ctx, false);
  if (!j.ok()) return Err(EX_IOERR, j.status().message());
  gw::EventTrace t;
  gw::Status s = (*j)->Trace(args[0], &t);
  if (s.code() == gw::StatusCode::kNotFound) return Err(1, s.message());
  if (!s.ok()) return Err(EX_IOERR, s.message());
  if (ctx.json) {
    std::string out;
    gw::JsonWriter w(&out);
    w.BeginObject();
    w.Key("seq"); w.Int(t.seq);
    w.Key("event"); w.Raw(gw::ToEnvelopeJson(t.event));
    w.Key("trace");
    w.BeginArray();
    for (const auto& e : t.entries) {
      w.BeginObject();
      w.Key("at"); w.String(Iso(e.at_ms));
      w.Key("what"); w.String(e.what);
      w.Key("sink"); w.StringOrNull(e.sink);
      w.Key("detail"); w.String(e.detail);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    std::cout << out << "\n";
    return 0;
  }
  const gw::Event& e = t.event;
  std::cout << "event " << e.id << " (seq " << t.seq << "): " << e.type << " from " << e.sender.mpid << " ("
            << e.sender.role << ")";
  for (const auto& r : e.recipients) std::cout << " to " << r.mpid << " (" << r.role << ")";
  std::cout << ", created " << e.created_at << "\n";
  for (const auto& x : t.entries) {
    std::printf("  %-24s  %-15s %-14s %s\n", Iso(x.at_ms).c_str(), x.what.c_str(), x.sink.c_str(), x.detail.c_str());
  }
  return 0;
}

int CmdVerify(const Ctx& ctx, const std::vector<std::string>& args) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    std::cout << "Usage: mhhs-gatewayctl verify [FILE]\n"
                 "Reads envelopes, one per line (FILE, or standard input), and checks each as the daemon checks\n"
                 "an event from the market: its signature and certificate against [security] trust_ca_file /\n"
                 "trust_dir, then the entitlements of [security] policy. Prints ID: ok, or ID: REASON: why.\n"
                 "Exit 0 when every envelope passes, 1 otherwise.\n";
    return 0;
  }
  auto cfg = gw::LoadConfig(ctx.config_path);
  if (!cfg.ok()) return Err(EX_CONFIG, cfg.status().message());
  gw::SecurityConfig sc = cfg->security;
  sc.journal_key_file.clear();  // not needed here, and maybe not readable by this user
  sc.journal_key_credential.clear();
  sc.journal_old_key_files.clear();
  sc.key_file.clear();
  sc.certificate_file.clear();
  auto sec = gw::LoadSecurity(sc, cfg->gateway);
  if (!sec.ok()) return Err(EX_CONFIG, sec.status().message());
  if (!(*sec)->trust) return Err(EX_CONFIG, ctx.config_path + ": [security] has no trust_ca_file or trust_dir to verify against");
  std::ifstream file;
  if (!args.empty() && args[0] != "-") {
    file.open(args[0]);
    if (!file) return Err(EX_NOINPUT, args[0] + ": cannot open");
  }
  std::istream& in = file.is_open() ? static_cast<std::istream&>(file) : std::cin;
  std::string line;
  int n = 0, bad = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    auto e = gw::ParseEnvelope(line);
    std::string code, why;
    if (!e.ok()) {
      code = gw::EnvelopeErrorCode(e.status());
      why = e.status().message();
    } else {
      why = (*sec)->CheckInbound(*e, &code);
    }
    std::string where = args.empty() ? "line " + std::to_string(n) : args[0] + ":" + std::to_string(n);
    std::string id = e.ok() ? e->id : where;
    if (why.empty()) {
      std::cout << id << ": ok\n";
    } else {
      ++bad;
      std::cout << id << ": " << code << ": " << why << "\n";
    }
  }
  return bad == 0 ? 0 : 1;
}

int CmdReplay(const Ctx& ctx, const std::vector<std::string>& args) {
  gw::ReplayFilter f;
  bool have_from = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::cout << "Usage: mhhs-gatewayctl replay --from T [--to T] [--type TYPE] --sink NAME\n"
                   "Queues again, for sink NAME, every journalled event accepted in [from, to) (of TYPE).\n"
                   "Events still pending stay as they are; delivered, dead-lettered and dropped ones are queued.\n"
                   "T: 2026-11-26, 2026-11-26T14:00:00Z or unix seconds (UTC).\n";
      return 0;
    }
    if (i + 1 >= args.size()) return Err(EX_USAGE, "replay: " + a + " needs a value (see replay --help)");
    const std::string& v = args[++i];
    if (a == "--from") {
      if (!ParseTime(v, &f.from_ms)) return Err(EX_USAGE, "replay --from: cannot read time \"" + v + "\"");
      have_from = true;
    } else if (a == "--to") {
      if (!ParseTime(v, &f.to_ms)) return Err(EX_USAGE, "replay --to: cannot read time \"" + v + "\"");
    } else if (a == "--type") {
      f.type = v;
    } else if (a == "--sink") {
      f.sink = v;
    } else {
      return Err(EX_USAGE, "replay: unknown option " + a);
    }
  }
  if (!have_from || f.sink.empty()) return Err(EX_USAGE, "replay needs --from and --sink (see replay --help)");
  auto cfg = gw::LoadConfig(ctx.config_path);
  if (!cfg.ok()) return Err(EX_CONFIG, cfg.status().message());
  bool known = std::any_of(cfg->sinks.begin(), cfg->sinks.end(), [&](const gw::ConnectorConfig& c) { return c.name == f.sink; });
  if (!known) return Err(EX_USAGE, "replay --sink: no [sink." + f.sink + "] in " + ctx.config_path);
  auto j = OpenJournal(ctx, true);
  if (!j.ok()) return Err(EX_IOERR, j.status().message());
  auto n = (*j)->Replay(f);
  if (!n.ok()) return Err(EX_IOERR, n.status().message());
  std::cout << "queued " << *n << " event(s) again for sink " << f.sink << "\n";
  return 0;
}

int CmdAudit(const Ctx& ctx, const std::vector<std::string>& args) {
  std::string verb = args.empty() ? "" : args[0];
  if (verb.empty() || verb == "--help" || verb == "-h") {
    std::cout << "Usage: mhhs-gatewayctl audit verify\n"
                 "       mhhs-gatewayctl audit export [--from T] [--to T]\n"
                 "Every accepted, delivered, dead-lettered, rejected and quarantined event, and every operator\n"
                 "action, is in an entry that carries the SHA-256 of the entry before it (the events of one\n"
                 "accepted or delivered batch share an entry that lists them in its detail). verify recomputes the\n"
                 "chain (exit 0 intact, 1 naming the first entry that was edited, removed or reordered);\n"
                 "export writes entries as JSON Lines. T: 2026-11-26, 2026-11-26T14:00:00Z or unix seconds.\n";
    return verb.empty() ? EX_USAGE : 0;
  }
  int64_t from = 0, to = 0;
  for (size_t i = 1; i + 1 < args.size(); i += 2) {
    int64_t* target = args[i] == "--from" ? &from : args[i] == "--to" ? &to : nullptr;
    if (target == nullptr) return Err(EX_USAGE, "audit: unknown option " + args[i]);
    if (!ParseTime(args[i + 1], target)) return Err(EX_USAGE, "audit " + args[i] + ": cannot read time \"" + args[i + 1] + "\"");
  }
  auto j = OpenJournal(ctx, false);
  if (!j.ok()) return Err(EX_IOERR, j.status().message());
  std::vector<gw::AuditEntry> entries;
  gw::Status s = (*j)->ReadAudit(verb == "verify" ? 0 : from, verb == "verify" ? 0 : to, &entries);
  if (!s.ok()) return Err(EX_IOERR, s.message());
  if (verb == "verify") {
    int64_t anchor_id = 0;
    std::string prev;
    s = (*j)->AuditAnchor(&anchor_id, &prev);
    if (!s.ok()) return Err(EX_IOERR, s.message());
    int64_t expected_id = anchor_id + 1;
    for (const gw::AuditEntry& e : entries) {
      if (e.id != expected_id) {
        return Err(1, "audit chain broken at entry " + std::to_string(expected_id) + ": missing (next present is " +
                          std::to_string(e.id) + ")");
      }
      if (e.prev != prev) {
        return Err(1, "audit chain broken at entry " + std::to_string(e.id) +
                          ": it does not follow the entry before it (removed or reordered)");
      }
      if (gw::Journal::AuditHash(e) != e.hash) {
        return Err(1, "audit chain broken at entry " + std::to_string(e.id) + ": its content does not match its hash (edited)");
      }
      prev = e.hash;
      ++expected_id;
    }
    std::cout << "audit chain intact: " << entries.size() << " entries" << (entries.empty() ? "" : ", last hash " + prev)
              << (anchor_id ? " (entries 1-" + std::to_string(anchor_id) + " were pruned with their events)" : "") << "\n";
    return 0;
  }
  if (verb == "export") {
    std::string line;
    for (const gw::AuditEntry& e : entries) {
      line.clear();
      gw::JsonWriter w(&line);
      w.BeginObject();
      w.Key("id"); w.Int(e.id);
      w.Key("at"); w.String(Iso(e.at_ms));
      w.Key("what"); w.String(e.what);
      w.Key("eventId"); w.StringOrNull(e.event_id);
      w.Key("subject"); w.String(e.subject);
      w.Key("detail"); w.String(e.detail);
      w.Key("prev"); w.String(e.prev);
      w.Key("hash"); w.String(e.hash);
      w.EndObject();
      line.push_back('\n');
      std::fwrite(line.data(), 1, line.size(), stdout);
    }
    return 0;
  }
  return Err(EX_USAGE, "audit: unknown action \"" + verb + "\" (verify, export)");
}

int CmdQuarantine(const Ctx& ctx, const std::vector<std::string>& args) {
  std::string verb = args.empty() ? "list" : args[0];
  if (verb == "--help" || verb == "-h") {
    std::cout << "Usage: mhhs-gatewayctl quarantine list | show ID\n"
                 "Inbound messages that were not valid events, kept whole with the reason; never delivered.\n";
    return 0;
  }
  auto j = OpenJournal(ctx, false);
  if (!j.ok()) return Err(EX_IOERR, j.status().message());
  std::vector<gw::QuarantinedMessage> q;
  gw::Status s = (*j)->ListQuarantine(&q, verb == "show" || ctx.json);
  if (!s.ok()) return Err(EX_IOERR, s.message());
  if (verb == "show") {
    if (args.size() < 2) return Err(EX_USAGE, "quarantine show needs an ID (see quarantine list)");
    for (const auto& m : q) {
      if (std::to_string(m.id) != args[1]) continue;
      std::cout << "id " << m.id << " at " << Iso(m.at_ms) << " from " << m.source << " on " << m.origin << "\nreason: "
                << m.reason << "\n\n" << m.raw << "\n";
      return 0;
    }
    return Err(1, "no quarantined message " + args[1]);
  }
  if (verb != "list") return Err(EX_USAGE, "quarantine: unknown action \"" + verb + "\" (list, show)");
  if (ctx.json) {
    for (const auto& m : q) {
      std::string line;
      gw::JsonWriter w(&line);
      w.BeginObject();
      w.Key("id"); w.Int(m.id);
      w.Key("at"); w.String(Iso(m.at_ms));
      w.Key("source"); w.String(m.source);
      w.Key("origin"); w.String(m.origin);
      w.Key("reason"); w.String(m.reason);
      w.Key("bytes"); w.Int(static_cast<long long>(m.raw.size()));
      w.EndObject();
      std::cout << line << "\n";
    }
    return 0;
  }
  std::printf("%-6s %-24s %-12s %-30s %s\n", "ID", "AT", "SOURCE", "ORIGIN", "REASON");
  for (const auto& m : q) {
    std::printf("%-6lld %-24s %-12s %-30s %s\n", static_cast<long long>(m.id), Iso(m.at_ms).c_str(), m.source.c_str(),
                m.origin.c_str(), m.reason.substr(0, 100).c_str());
  }
  std::cout << q.size() << " quarantined message(s)\n";
  return 0;
}

int CmdCheckConfig(const Ctx& ctx) {
  auto cfg = gw::LoadConfig(ctx.config_path);
  if (!cfg.ok()) return Err(EX_CONFIG, cfg.status().message());
  gw::PluginSet plugins;
  gw::Registry registry;
  gw::Status s = gw::connectors::RegisterBuiltinConnectors(registry);
  if (s.ok()) s = gw::LoadConfiguredPlugins(*cfg, &plugins, &registry);
  if (s.ok()) {
    gw::Pipeline p(*cfg, nullptr, registry);
    s = p.Build();
    if (s.ok()) {
      // The keys, certificates, trust store, policy and journal key, as the daemon loads them.
      auto sec = gw::LoadSecurity(cfg->security, cfg->gateway);
      s = sec.ok() ? gw::CheckSecurityCoverage(p, **sec) : sec.status();
    }
  }
  if (!s.ok()) return Err(EX_CONFIG, s.message());
  std::cout << ctx.config_path << ": configuration OK\n";
  return 0;
}

int CmdToDtn(const Ctx& ctx, const std::string& path) {
  auto cat = gw::adapters::FlowCatalogue::LoadDirectory(FlowDir(ctx));
  if (!cat.ok()) return Err(EX_CONFIG, cat.status().message());
  auto text = gw::ReadFile(path);
  if (!text.ok()) return Err(1, text.status().message());
  std::unique_ptr<gw::adapters::DtnFileWriter> writer;
  gw::adapters::DtnFileHeader header;
  size_t line_no = 0, start = 0;
  const std::string& t = *text;
  while (start < t.size()) {
    size_t nl = t.find('\n', start);
    std::string_view line(t.data() + start, (nl == std::string::npos ? t.size() : nl) - start);
    start = nl == std::string::npos ? t.size() : nl + 1;
    ++line_no;
    if (line.empty()) continue;
    auto e = gw::ParseEnvelope(line);
    if (!e.ok()) return Err(1, path + ":" + std::to_string(line_no) + ": " + e.status().message());
    gw::adapters::DtnFileHeader h = gw::adapters::DtnHeaderFor(*e);
    if (h.flow.empty()) return Err(1, path + ":" + std::to_string(line_no) + ": event type " + e->type + " has no DTN form");
    if (!writer) {
      header = h;
      if (header.file_id.empty()) header.file_id = "0000000001";
      writer = std::make_unique<gw::adapters::DtnFileWriter>(*cat, header);
    } else if (h.flow != header.flow || h.from_mpid != header.from_mpid || h.to_mpid != header.to_mpid) {
      return Err(1, path + ":" + std::to_string(line_no) + ": one file takes one flow, sender and recipient (" + h.flow + " " +
                        h.from_mpid + " -> " + h.to_mpid + " after " + header.flow + " " + header.from_mpid + " -> " +
                        header.to_mpid + ")");
    }
    gw::Status s = writer->Add(*e);
    if (!s.ok()) return Err(1, path + ":" + std::to_string(line_no) + ": " + s.message());
  }
  if (!writer) return Err(1, path + ": no events");
  std::string out = writer->Finish();
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int CmdCheckFiles(const Ctx& ctx, const std::vector<std::string>& files, bool convert) {
  if (convert && files.size() == 2 && files[0] == "--to-dtn") return CmdToDtn(ctx, files[1]);
  if (files.empty() || files[0] == "--help" || files[0] == "-h") {
    std::cout << (convert ? "Usage: mhhs-gatewayctl [--mapping dip|none] convert [--sign] FILE...\n"
                            "       mhhs-gatewayctl convert --to-dtn EVENTS.jsonl\n"
                            "Prints each event as the JSON envelope published on the backbone, one per line;\n"
                            "with --to-dtn, writes envelopes back as one DTN file (IF-021 as D0036).\n"
                          : "Usage: mhhs-gatewayctl check-file FILE...\nValidates DTN files against the flow catalogue; prints FILE:LINE: GROUP FIELD: reason (value).\n");
    return files.empty() ? EX_USAGE : 0;
  }
  auto cat = gw::adapters::FlowCatalogue::LoadDirectory(FlowDir(ctx));
  if (!cat.ok()) return Err(EX_CONFIG, cat.status().message());
  gw::adapters::DtnDecoder decoder(*cat);
  // The participant settings (for D0036 -> IF-021) come from --config when it can be read.
  gw::GatewayInfo gateway;
  auto cfg = gw::LoadConfig(ctx.config_path);
  if (cfg.ok()) gateway = cfg->gateway;
  gw::adapters::DtnEventOptions opts;
  opts.dip_mapping = ctx.dip_mapping;
  opts.gateway = &gateway;
  // With --sign, convert signs as the daemon would with [security] key: the exact messages
  // it would publish.
  std::unique_ptr<gw::EventSigner> signer;
  if (convert && ctx.sign) {
    if (!cfg.ok()) return Err(EX_CONFIG, cfg.status().message());
    if (cfg->security.key_file.empty()) return Err(EX_CONFIG, ctx.config_path + ": convert --sign needs [security] key and certificate");
    auto s = gw::EventSigner::Load(cfg->security, gateway.participant_mpid);
    if (!s.ok()) return Err(EX_CONFIG, s.status().message());
    signer = std::move(s.value());
  }
  const std::string date = gw::IsoUtc(std::time(nullptr));
  int bad = 0;
  for (const std::string& f : files) {
    auto m = gw::MappedFile::Open(f);
    if (!m.ok()) {
      std::cerr << m.status().message() << "\n";
      ++bad;
      continue;
    }
    std::vector<gw::Event> events;
    gw::adapters::DtnResult r = gw::adapters::DecodeDtnToEvents(decoder, m->view(), "file:" + gw::BaseName(f), opts, &events);
    if (!r.ok()) {
      std::cerr << gw::adapters::FormatDtnErrors(f, r);
      ++bad;
      continue;
    }
    if (convert) {
      std::string line;
      if (signer && signer->sign_batches()) {
        // As the daemon does with sign_batches: the file's events under one signature.
        std::vector<gw::Event*> mine;
        for (gw::Event& e : events) {
          if (e.sender.mpid == gateway.participant_mpid) mine.push_back(&e);
        }
        gw::Status st = signer->SignBatch(mine, date);
        if (!st.ok()) return Err(EX_SOFTWARE, st.message());
      }
      for (gw::Event& e : events) {
        line.clear();
        if (signer && !signer->sign_batches() && e.sender.mpid == gateway.participant_mpid) {
          gw::Status st = signer->Sign(&e, date);
          if (!st.ok()) return Err(EX_SOFTWARE, st.message());
        }
        gw::AppendEnvelopeJson(e, &line);
        line.push_back('\n');
        std::fwrite(line.data(), 1, line.size(), stdout);
      }
    } else {
      std::cout << f << ": OK, " << r.header.flow << " from " << r.header.from_mpid << " (" << r.header.from_role
                << ") to " << r.header.to_mpid << ", " << r.records << " records, " << events.size() << " event(s)\n";
    }
  }
  return bad ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description global("Options");
  global.add_options()
      ("config,c", po::value<std::string>()->default_value("/etc/mhhs-gateway/gateway.ini"), "configuration file")
      ("json", "machine-readable output")
      ("flow-dir", po::value<std::string>(), "flow catalogue directory (default: [gateway] flow_dir, else the installed one)")
      ("mapping", po::value<std::string>()->default_value("dip"), "check-file/convert: dip (D0036 as IF-021) or none")
      ("version", "print the version and exit")
      ("help,h", "print this help");
  po::options_description hidden;
  hidden.add_options()("command", po::value<std::string>())("args", po::value<std::vector<std::string>>());
  po::positional_options_description pos;
  pos.add("command", 1).add("args", -1);
  po::options_description all;
  all.add(global).add(hidden);
  po::variables_map vm;
  try {
    po::parsed_options parsed = po::command_line_parser(argc, argv).options(all).positional(pos).allow_unregistered().run();
    po::store(parsed, vm);
    po::notify(vm);
    // Unregistered options after the command (e.g. "--sink", "--help") belong to the command.
    auto extra = po::collect_unrecognized(parsed.options, po::include_positional);
    if (vm.count("command")) {
      std::vector<std::string> args;
      bool after = false;
      for (const std::string& a : extra) {
        if (!after && a == vm["command"].as<std::string>()) { after = true; continue; }
        if (after) args.push_back(a);
        else return Err(EX_USAGE, "unknown option " + a + " (see --help)");
      }
      vm.erase("args");
      vm.insert({"args", po::variable_value(args, false)});
    } else if (!extra.empty()) {
      return Err(EX_USAGE, "unknown option " + extra[0] + " (see --help)");
    }
  } catch (const po::error& e) {
    return Err(EX_USAGE, std::string(e.what()) + " (see --help)");
  }
  if (vm.count("version")) {
    std::cout << "mhhs-gatewayctl " << GW_VERSION << "\n";
    return 0;
  }
  if (vm.count("help") || !vm.count("command")) {
    std::cout << kUsage << "\n" << global;
    return vm.count("help") ? 0 : EX_USAGE;
  }
  Ctx ctx;
  ctx.config_path = vm["config"].as<std::string>();
  ctx.json = vm.count("json") > 0;
  if (vm.count("flow-dir")) ctx.flow_dir = vm["flow-dir"].as<std::string>();
  std::string mapping = vm["mapping"].as<std::string>();
  if (mapping != "dip" && mapping != "none") return Err(EX_USAGE, "--mapping must be dip or none");
  ctx.dip_mapping = mapping == "dip";
  std::string cmd = vm["command"].as<std::string>();
  std::vector<std::string> args = vm.count("args") ? vm["args"].as<std::vector<std::string>>() : std::vector<std::string>{};
  bool help = !args.empty() && (args[0] == "--help" || args[0] == "-h");
  if (cmd == "status" || cmd == "queue") {
    if (help) { std::cout << "Usage: mhhs-gatewayctl [--json] " << cmd << "\nQueue depth, delivered and dead letters per sink, from the journal.\n"; return 0; }
    return CmdStatus(ctx, cmd == "status");
  }
  if (cmd == "dead-letters") return CmdDeadLetters(ctx, args);
  if (cmd == "check-config") {
    if (help) { std::cout << "Usage: mhhs-gatewayctl --config FILE check-config\n"; return 0; }
    return CmdCheckConfig(ctx);
  }
  if (cmd == "trace") return CmdTrace(ctx, args);
  if (cmd == "audit") return CmdAudit(ctx, args);
  if (cmd == "quarantine") return CmdQuarantine(ctx, args);
  if (cmd == "replay") return CmdReplay(ctx, args);
  if (cmd == "verify") return CmdVerify(ctx, args);
  if (cmd == "check-file") return CmdCheckFiles(ctx, args, false);
  if (cmd == "convert") {
    std::vector<std::string> files;
    for (const std::string& a : args) {
      if (a == "--sign") ctx.sign = true;
      else files.push_back(a);
    }
    return CmdCheckFiles(ctx, files, true);
  }
  return Err(EX_USAGE, "unknown command \"" + cmd + "\" (see --help)");
}
