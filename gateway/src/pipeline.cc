#include "gw/pipeline.h"

#include <algorithm>
#include <deque>
#include <future>
#include <random>

namespace gw {

Status Registry::RegisterSource(const std::string& type, SourceFactory factory) {
  if (!sources_.emplace(type, std::move(factory)).second) return AlreadyExists("source type \"" + type + "\" registered twice");
  return Status::Ok();
}

Status Registry::RegisterSink(const std::string& type, SinkFactory factory) {
  if (!sinks_.emplace(type, std::move(factory)).second) return AlreadyExists("sink type \"" + type + "\" registered twice");
  return Status::Ok();
}

namespace {

template <typename Map>
std::string Known(const Map& m) {
  std::string out;
  for (const auto& kv : m) out += (out.empty() ? "" : ", ") + kv.first;
  return out;
}

template <typename T, typename Map>
StatusOr<std::unique_ptr<T>> Create(const Map& factories, const ConnectorConfig& c, const GatewayInfo& gw, Logger& log,
                                    Metrics* metrics, const char* kind, const std::string& plugin_dir) {
  auto it = factories.find(c.type);
  if (it == factories.end()) {
    return c.section.Error("type", std::string("no ") + kind + " connector of type \"" + c.type + "\" (known: " +
                                       Known(factories) + ")" +
                                       (plugin_dir.empty() ? "" : "; no plugin in " + plugin_dir + " provides it"));
  }
  ConnectorContext ctx{c.name, c.section, gw, log, metrics};
  auto made = it->second(ctx);
  if (!made.ok()) return made.status();
  GW_RETURN_IF_ERROR(c.section.CheckAllUsed());
  return std::move(made.value());
}

}  // namespace

StatusOr<std::unique_ptr<Source>> Registry::CreateSource(const ConnectorConfig& c, const GatewayInfo& gw, Logger& log,
                                                         Metrics* metrics) const {
  return Create<Source>(sources_, c, gw, log, metrics, "source", plugin_dir_);
}

StatusOr<std::unique_ptr<Sink>> Registry::CreateSink(const ConnectorConfig& c, const GatewayInfo& gw, Logger& log,
                                                     Metrics* metrics) const {
  return Create<Sink>(sinks_, c, gw, log, metrics, "sink", plugin_dir_);
}

StatusOr<SinkPolicy> ReadSinkPolicy(const ConfigSection& s) {
  SinkPolicy p;
  auto base = s.GetInt("retry_base_ms", 500, 1, 3600000);
  if (!base.ok()) return base.status();
  auto max = s.GetInt("retry_max_ms", 60000, 1, 86400000);
  if (!max.ok()) return max.status();
  auto attempts = s.GetInt("max_attempts", 0, 0, 1000000);
  if (!attempts.ok()) return attempts.status();
  auto batch = s.GetInt("batch", 500, 1, 100000);
  if (!batch.ok()) return batch.status();
  if (*max < *base) return s.Error("retry_max_ms", "must not be below retry_base_ms");
  p.retry_base = std::chrono::milliseconds(*base);
  p.retry_max = std::chrono::milliseconds(*max);
  p.max_attempts = static_cast<int>(*attempts);
  p.batch = static_cast<int>(*batch);
  return p;
}

std::chrono::milliseconds JitteredBackoff(int attempt, std::chrono::milliseconds base, std::chrono::milliseconds max) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  int shift = std::min(std::max(attempt - 1, 0), 30);
  int64_t ceiling = base.count() > (max.count() >> shift) ? max.count() : base.count() << shift;
  std::uniform_int_distribution<int64_t> d(0, std::min<int64_t>(ceiling, max.count()));
  return std::chrono::milliseconds(d(rng));
}

Pipeline::Pipeline(const GatewayConfig& config, Journal* journal, const Registry& registry, MetricsRegistry* metrics)
    : config_(&config), journal_(journal), registry_(registry), metrics_(metrics ? metrics : &own_metrics_) {}

std::vector<SinkHealth> Pipeline::Sinks() const {
  std::lock_guard<std::mutex> lock(slots_mu_);
  std::vector<SinkHealth> out;
  for (const auto& s : sinks_) out.push_back(SinkHealth{s->name, s->sink && s->sink->Connected()});
  return out;
}

bool Pipeline::Healthy(std::chrono::seconds stall, std::string* why) const {
  std::lock_guard<std::mutex> lock(slots_mu_);
  int64_t now = NowUnixMs();
  int64_t limit = static_cast<int64_t>(stall.count()) * 1000;
  for (const auto& s : sources_) {
    int64_t hb = s->heartbeat_ms.load();
    if (hb != 0 && now - hb > limit) {
      if (why) *why = "source " + s->name + " has made no progress for " + std::to_string((now - hb) / 1000) + " s";
      return false;
    }
  }
  for (const auto& s : sinks_) {
    int64_t hb = s->heartbeat_ms.load();
    if (hb != 0 && !s->finished.load() && now - hb > limit) {
      if (why) *why = "sink " + s->name + " has made no progress for " + std::to_string((now - hb) / 1000) + " s";
      return false;
    }
  }
  return true;
}

Pipeline::~Pipeline() { Stop(std::chrono::milliseconds(0)); }

std::vector<std::string> Pipeline::MarketSources() const {
  std::lock_guard<std::mutex> lock(slots_mu_);
  std::vector<std::string> out;
  for (const auto& s : sources_) if (s->market && !s->authenticated) out.push_back(s->name);
  return out;
}

Status CheckSecurityCoverage(const Pipeline& pipeline, const Security& security) {
  if (!security.config.configured || security.trust || !security.config.require_signatures) return Status::Ok();
  std::vector<std::string> market = pipeline.MarketSources();
  if (market.empty()) return Status::Ok();
  return InvalidArgument("[security]: [source." + market.front() +
                         "] receives events from the market, but neither trust_ca_file nor trust_dir is set to verify "
                         "them (or set require_signatures = false)");
}

std::vector<std::string> DescribeSecurity(const Security& security, const Pipeline& pipeline) {
  std::vector<std::string> out;
  if (!security.config.configured) {
    out.push_back("warning: no [security] section: events are neither signed nor verified, no entitlements are "
                  "checked and payloads are stored unencrypted");
    return out;
  }
  if (security.signer) {
    out.push_back("security: signing this participant's events (" + security.signer->algorithm() +
                  (security.signer->sign_batches() ? ", one signature per batch over a Merkle tree" : "") + ") as " +
                  security.participant_mpid + "; certificate valid until " + IsoUtc(security.signer->certificate_not_after()));
  } else {
    out.push_back("warning: [security] has no key: outbound events are not signed");
  }
  if (security.trust) {
    out.push_back("security: verifying market events against " +
                  std::string(security.config.trust_ca_file.empty() ? "" : "the CA bundle " + security.config.trust_ca_file + " and ") +
                  std::to_string(security.trust->pinned()) + " pinned certificate(s)" +
                  (security.config.require_signatures ? "" : "; unsigned events are let through (require_signatures = false)"));
  } else if (!pipeline.MarketSources().empty()) {
    out.push_back("warning: no trust store: events from the market are not verified");
  }
  if (security.policy) {
    out.push_back("security: entitlements from " + security.config.policy_file + " (" + std::to_string(security.policy->interfaces()) +
                  " interface(s))");
  } else {
    out.push_back("warning: [security] has no policy: entitlements are not checked");
  }
  if (security.cipher) {
    out.push_back("security: journal payloads encrypted with AES-256-GCM (key " + security.cipher->current_key_id() + ")");
  } else {
    out.push_back("warning: [security] has no journal key: payloads are stored unencrypted");
  }
  return out;
}

Status Pipeline::MakeSink(const ConnectorConfig& c, std::unique_ptr<SinkSlot>* out) {
  auto slot = std::make_unique<SinkSlot>();
  slot->name = c.name;
  slot->logger = std::make_unique<StderrLogger>("sink." + c.name);
  auto policy = ReadSinkPolicy(c.section);
  if (!policy.ok()) return policy.status();
  slot->policy = *policy;
  slot->metrics = metrics_->ForConnector(c.name);
  slot->delivered = &metrics_->CounterFor("mhhs_gateway_events_delivered_total", "Events confirmed by the far side, per sink", {{"sink", c.name}});
  slot->failures = &metrics_->CounterFor("mhhs_gateway_delivery_failures_total", "Delivery attempts that failed transiently, per sink", {{"sink", c.name}});
  slot->dead = &metrics_->CounterFor("mhhs_gateway_dead_letters_total", "Events moved to the dead-letter list, per sink", {{"sink", c.name}});
  auto sink = registry_.CreateSink(c, config_->gateway, *slot->logger, slot->metrics.get());
  if (!sink.ok()) return sink.status();
  slot->sink = std::move(sink.value());
  *out = std::move(slot);
  return Status::Ok();
}

Status Pipeline::MakeSource(const ConnectorConfig& c, std::unique_ptr<SourceSlot>* out) {
  auto slot = std::make_unique<SourceSlot>();
  slot->name = c.name;
  slot->logger = std::make_unique<StderrLogger>("source." + c.name);
  slot->metrics = metrics_->ForConnector(c.name);
  slot->ingested = &metrics_->CounterFor("mhhs_gateway_events_ingested_total", "Events accepted into the journal, per source", {{"source", c.name}});
  slot->duplicates = &metrics_->CounterFor("mhhs_gateway_events_duplicate_total", "Events already in the journal, per source", {{"source", c.name}});
  slot->commit_failures = &metrics_->CounterFor("mhhs_gateway_commit_failures_total", "Batches the journal could not commit, per source", {{"source", c.name}});
  slot->waited_for_sinks = &metrics_->CounterFor("mhhs_gateway_source_waited_for_sinks_seconds_total",
                                                 "Time a source held back new input while the sinks caught up, per source", {{"source", c.name}});
  // `origin`, a core key read before the connector checks its section: an inbox that
  // receives other participants' files is the market, and its events are verified.
  std::string origin = c.section.GetString("origin", "");
  if (!origin.empty() && origin != "market" && origin != "local") {
    return c.section.Error("origin", "must be local or market (got \"" + origin + "\")");
  }
  auto source = registry_.CreateSource(c, config_->gateway, *slot->logger, slot->metrics.get());
  if (!source.ok()) return source.status();
  slot->source = std::move(source.value());
  const EventOrigin declared = slot->source->Origin();
  slot->authenticated = declared == EventOrigin::kMarketAuthenticated;
  slot->market = origin.empty() ? declared != EventOrigin::kLocal : origin == "market";
  slot->targets = config_->TargetsFor(c.name);
  if (slot->targets.empty()) logger_.Warning("[source." + c.name + "] has no route: its events are journalled but go nowhere");
  *out = std::move(slot);
  return Status::Ok();
}

Status Pipeline::Build() {
  for (const ConnectorConfig& c : config_->sinks) {
    std::unique_ptr<SinkSlot> slot;
    GW_RETURN_IF_ERROR(MakeSink(c, &slot));
    sinks_.push_back(std::move(slot));
  }
  for (const ConnectorConfig& c : config_->sources) {
    std::unique_ptr<SourceSlot> slot;
    GW_RETURN_IF_ERROR(MakeSource(c, &slot));
    sources_.push_back(std::move(slot));
  }
  return Status::Ok();
}

Status Pipeline::StartSink(SinkSlot* slot) {
  Status st = slot->sink->Start();
  if (!st.ok()) return st.Annotate("[sink." + slot->name + "]");
  slot->thread = std::thread([this, slot] {
    NameThread("sink." + slot->name);
    RunSink(slot);
  });
  return Status::Ok();
}

Status Pipeline::StartSource(SourceSlot* slot) {
  auto cp = journal_->GetCheckpoint(slot->name);
  if (!cp.ok()) return cp.status();
  Status st = slot->source->Start(*cp);
  if (!st.ok()) return st.Annotate("[source." + slot->name + "]");
  slot->thread = std::thread([this, slot] {
    NameThread("src." + slot->name);
    RunSource(slot);
  });
  return Status::Ok();
}

Status Pipeline::Start() {
  if (journal_ == nullptr) return FailedPrecondition("pipeline built without a journal");
  if (security_ && security_->signer && !sign_pool_) {
    sign_pool_ = std::make_unique<WorkPool>(std::max(1u, std::thread::hardware_concurrency()), "sign");
  }
  for (auto& s : sinks_) GW_RETURN_IF_ERROR(StartSink(s.get()));
  maintenance_ = std::thread([this] {
    NameThread("maintenance");
    RunMaintenance();
  });
  for (auto& s : sources_) GW_RETURN_IF_ERROR(StartSource(s.get()));
  return Status::Ok();
}

void Pipeline::StopSource(SourceSlot* slot) {
  slot->stop.store(true);
  if (slot->source) slot->source->Stop();
  if (slot->thread.joinable()) slot->thread.join();
}

void Pipeline::StopSink(SinkSlot* slot, std::chrono::milliseconds drain) {
  auto deadline = std::chrono::steady_clock::now() + drain;
  while (slot->thread.joinable() && !slot->finished.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  slot->stop.store(true);
  if (slot->sink) slot->sink->Stop();
  if (slot->thread.joinable()) slot->thread.join();
}

namespace {

bool SameSection(const ConfigSection& a, const ConfigSection& b) {
  if (a.entries().size() != b.entries().size()) return false;
  for (size_t i = 0; i < a.entries().size(); ++i) {
    if (a.entries()[i].key != b.entries()[i].key || a.entries()[i].value != b.entries()[i].value) return false;
  }
  return true;
}

const ConnectorConfig* Find(const std::vector<ConnectorConfig>& v, const std::string& name) {
  for (const ConnectorConfig& c : v) if (c.name == name) return &c;
  return nullptr;
}

bool SameTargets(const std::vector<DeliveryTarget>& a, const std::vector<DeliveryTarget>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) if (a[i].sink != b[i].sink || a[i].expiry_s != b[i].expiry_s) return false;
  return true;
}

}  // namespace

Status Pipeline::Reload(std::unique_ptr<GatewayConfig> next, std::vector<std::string>* notes) {
  const GatewayConfig& old = *config_;
  const GatewayConfig& now = *next;
  auto note = [&](const std::string& n) { if (notes) notes->push_back(n); };
  const JournalConfig& oj = old.journal;
  const JournalConfig& nj = now.journal;
  if (oj.path != nj.path || oj.max_bytes != nj.max_bytes || oj.high_water_pct != nj.high_water_pct ||
      oj.low_water_pct != nj.low_water_pct || oj.retention_days != nj.retention_days ||
      oj.prune_interval_s != nj.prune_interval_s || oj.handoff_patience_ms != nj.handoff_patience_ms) {
    note("[journal] changed: takes effect after a restart");
  }
  if (old.gateway.participant_mpid != now.gateway.participant_mpid || old.gateway.environment != now.gateway.environment ||
      old.admin_listen != now.admin_listen || old.plugin_dir != now.plugin_dir) {
    note("[gateway] changed: takes effect after a restart (connectors restarted now use the new participant settings)");
  }
  const SecurityConfig& a = old.security;
  const SecurityConfig& b = now.security;
  if (a.configured != b.configured || a.key_file != b.key_file || a.certificate_file != b.certificate_file ||
      a.embed_certificate != b.embed_certificate || a.sign_batches != b.sign_batches ||
      a.trust_ca_file != b.trust_ca_file || a.trust_dir != b.trust_dir || a.require_signatures != b.require_signatures || a.policy_file != b.policy_file || a.journal_key_file != b.journal_key_file ||
      a.journal_key_credential != b.journal_key_credential || a.journal_old_key_files != b.journal_old_key_files) {
    note("[security] changed: takes effect after a restart");
  }
  // Which connectors go, which come.
  std::vector<std::string> stop_sinks, stop_sources, start_sinks, start_sources;
  for (const ConnectorConfig& c : old.sinks) {
    const ConnectorConfig* n = Find(now.sinks, c.name);
    if (!n || n->type != c.type || !SameSection(n->section, c.section)) stop_sinks.push_back(c.name);
  }
  for (const ConnectorConfig& c : now.sinks) {
    const ConnectorConfig* o = Find(old.sinks, c.name);
    if (!o || std::find(stop_sinks.begin(), stop_sinks.end(), c.name) != stop_sinks.end()) start_sinks.push_back(c.name);
  }
  for (const ConnectorConfig& c : old.sources) {
    const ConnectorConfig* n = Find(now.sources, c.name);
    if (!n || n->type != c.type || !SameSection(n->section, c.section) || !SameTargets(old.TargetsFor(c.name), now.TargetsFor(c.name))) {
      stop_sources.push_back(c.name);
    }
  }
  for (const ConnectorConfig& c : now.sources) {
    const ConnectorConfig* o = Find(old.sources, c.name);
    if (!o || std::find(stop_sources.begin(), stop_sources.end(), c.name) != stop_sources.end()) start_sources.push_back(c.name);
  }
  // Stop sources first (nothing new comes in for them), then sinks.
  std::vector<std::unique_ptr<SourceSlot>> gone_sources;
  std::vector<std::unique_ptr<SinkSlot>> gone_sinks;
  {
    std::lock_guard<std::mutex> lock(slots_mu_);
    for (auto it = sources_.begin(); it != sources_.end();) {
      if (std::find(stop_sources.begin(), stop_sources.end(), (*it)->name) != stop_sources.end()) {
        gone_sources.push_back(std::move(*it));
        it = sources_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = sinks_.begin(); it != sinks_.end();) {
      if (std::find(stop_sinks.begin(), stop_sinks.end(), (*it)->name) != stop_sinks.end()) {
        gone_sinks.push_back(std::move(*it));
        it = sinks_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& s : gone_sources) { StopSource(s.get()); note("source " + s->name + " stopped"); }
  for (auto& s : gone_sinks) { StopSink(s.get(), std::chrono::seconds(2)); note("sink " + s->name + " stopped"); }
  config_ = next.get();
  reloaded_.push_back(std::move(next));
  Status first;
  for (const std::string& name : start_sinks) {
    std::unique_ptr<SinkSlot> slot;
    Status s = MakeSink(*Find(config_->sinks, name), &slot);
    if (s.ok()) s = StartSink(slot.get());
    if (!s.ok()) {
      if (first.ok()) first = s;
      continue;
    }
    note("sink " + name + " started");
    std::lock_guard<std::mutex> lock(slots_mu_);
    sinks_.push_back(std::move(slot));
  }
  for (const std::string& name : start_sources) {
    std::unique_ptr<SourceSlot> slot;
    Status s = MakeSource(*Find(config_->sources, name), &slot);
    if (s.ok()) s = StartSource(slot.get());
    if (!s.ok()) {
      if (first.ok()) first = s;
      continue;
    }
    note("source " + name + " started");
    std::lock_guard<std::mutex> lock(slots_mu_);
    sources_.push_back(std::move(slot));
  }
  return first;
}

bool Pipeline::SleepUnless(const std::atomic<bool>& flag, std::chrono::milliseconds d) {
  auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
    if (flag.load()) return true;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(until - std::chrono::steady_clock::now(), std::chrono::milliseconds(50)));
  }
  return flag.load();
}

void Pipeline::RunSource(SourceSlot* slot) {
  Logger& log = *slot->logger;
  // A source that allows it has up to three batches in hand: one being committed by the
  // journal, one being signed on the work pool, one being decoded by the source. Only the
  // oldest is ever committing, and its verdict is heard before the next is submitted, so acks
  // stay in order and nothing is committed after a batch that failed.
  auto* pipelined = dynamic_cast<PipelinedSource*>(slot->source.get());
  const size_t depth = pipelined ? static_cast<size_t>(std::clamp(pipelined->MaxBatchesInHand(), 1, 3)) : 1;
  int failures = 0;
  RateLimiter limiter(std::chrono::seconds(10));
  bool paused = false;
  // Held back for the sinks: since when, and up to when that time is counted in the metric.
  bool held = false;
  std::chrono::steady_clock::time_point held_since, held_tick;
  std::deque<std::shared_ptr<InHand>> hand;
  while (!sources_stop_.load() && !slot->stop.load()) {
    slot->heartbeat_ms.store(NowUnixMs());
    std::string why;
    if (journal_->ShouldPause(&why)) {
      Advance(slot, &hand, AdvanceMode::kAll, &failures);
      if (!paused) log.Warning("paused: " + why);
      paused = true;
      SleepUnless(slot->stop, std::chrono::milliseconds(200));
      continue;
    }
    if (paused) log.Notice("resumed: the journal is below its low water mark");
    paused = false;
    bool took = false;
    // Sinks that keep up but have fallen behind are let catch up before more input is taken
    // (Journal::SinksBehind()); what is in hand still goes through meanwhile. Once in every
    // kMaxHold a batch is taken all the same, so that a source that must be polled to stay
    // connected (an MQTT source's keepalive) is, and a sink far slower than the sources holds
    // them back no more than that.
    bool sinks_behind = journal_->SinksBehind();
    const auto now = std::chrono::steady_clock::now();
    if (held) {
      slot->waited_for_sinks->Increment(std::chrono::duration<double>(now - held_tick).count());
      held_tick = now;
    }
    if (!sinks_behind) {
      held = false;
    } else if (!held) {
      held = true;
      held_since = held_tick = now;
    } else if (now - held_since >= kMaxHold) {
      sinks_behind = false;
      held = false;
    }
    if (sinks_behind && hand.empty()) {
      journal_->WaitForSinks(std::chrono::milliseconds(200));
      continue;
    }
    if (hand.size() < depth && !sinks_behind) {
      SourceBatch batch;
      StatusOr<bool> polled = false;
      try {
        polled = slot->source->Poll(&batch, std::chrono::milliseconds(hand.empty() ? 500 : 0));
      } catch (const std::exception& e) {
        polled = Internal(std::string("Poll threw: ") + e.what());
      }
      if (!polled.ok()) {
        Advance(slot, &hand, AdvanceMode::kAll, &failures);
        ++failures;
        uint64_t suppressed = 0;
        if (limiter.Allow(&suppressed)) {
          log.Warning(polled.status().ToString() + (suppressed ? " (" + std::to_string(suppressed) + " similar suppressed)" : ""));
        }
        SleepUnless(slot->stop, JitteredBackoff(failures, std::chrono::milliseconds(500), std::chrono::seconds(30)));
        continue;
      }
      if (*polled) {
        auto h = std::make_shared<InHand>();
        h->batch = std::move(batch);
        if (security_) h->screening = StartScreen(slot, &h->batch);
        hand.push_back(std::move(h));
        took = true;
      }
    }
    // Waits only when no more input may be taken: the hand is full, or the source had none.
    Advance(slot, &hand, took && hand.size() < depth ? AdvanceMode::kReady : AdvanceMode::kOne, &failures);
  }
  Advance(slot, &hand, AdvanceMode::kAll, &failures);
}

void Pipeline::Advance(SourceSlot* slot, std::deque<std::shared_ptr<InHand>>* hand, AdvanceMode mode, int* failures) {
  Logger& log = *slot->logger;
  auto ready = [](std::future<Status>& f) { return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready; };
  // Hands every batch still in hand back unstored, in order, once nothing works on its memory
  // any more (its signing, and the journal for one already submitted: that one fails too, its
  // chain being broken). A new chain starts for what comes next.
  auto ack = [&](const SourceBatch& batch, const Status& verdict) {
    try {
      slot->source->Ack(batch, verdict);
    } catch (const std::exception& e) {
      log.Error(std::string("Ack threw: ") + e.what());
    }
  };
  auto fail_rest = [&](const Status& why) {
    for (auto& h : *hand) {
      for (auto& f : h->screening) f.wait();
      if (h->submitted) h->committed.wait();
      ack(h->batch, why);
    }
    hand->clear();
    slot->chain = std::make_shared<AppendChain>();
  };
  bool may_wait = mode != AdvanceMode::kReady;
  for (;;) {
    // Every batch whose signing is done goes to the journal, in order: the journal may commit
    // several in one transaction (one fsync). Submission stops at the first batch not signed
    // yet, or whose signing failed: nothing after it may be committed before it.
    for (auto& h : *hand) {
      if (h->submitted) continue;
      if (!h->screen_error.ok() || slot->stop.load()) break;
      bool signed_all = true;
      for (auto& f : h->screening) signed_all = signed_all && ready(f);
      if (!signed_all) break;
      Status screened = FinishScreen(slot, &h->batch, &h->screening);
      if (!screened.ok()) {
        h->screen_error = screened;
        break;
      }
      // What the source turned away is recorded with the batch, before it is acknowledged: a
      // quarantined message must be stored before the broker forgets it.
      // The journal may keep the events once committed (they change no more), so that a sink
      // that keeps up sends them from memory instead of reading them back.
      h->committed = journal_->AppendAsync(slot->name, h->batch.events, slot->targets, h->batch.checkpoint,
                                           h->batch.rejections, &h->result, slot->chain,
                                           std::shared_ptr<const std::vector<Event>>(h, &h->batch.events));
      h->submitted = true;
    }
    if (hand->empty()) return;
    InHand& front = *hand->front();
    if (front.submitted) {
      if (!may_wait && !ready(front.committed)) return;
      const bool ok = Settle(slot, &front, front.committed.get(), failures);
      hand->pop_front();
      if (!ok) {
        fail_rest(Unavailable("not committed: the batch before it failed to commit"));
        return;
      }
      // Room for new input again: only kAll goes on waiting.
      if (mode == AdvanceMode::kOne) may_wait = false;
      continue;
    }
    if (!front.screen_error.ok()) {
      // Not signed: nothing is journalled and the source offers the input again.
      ack(front.batch, front.screen_error);
      log.Error(front.batch.unit + ": " + front.screen_error.ToString() + "; will be offered again");
      hand->pop_front();
      fail_rest(Unavailable("not committed: the batch before it could not be signed"));
      ++*failures;
      SleepUnless(slot->stop, JitteredBackoff(*failures, std::chrono::milliseconds(500), std::chrono::seconds(30)));
      return;
    }
    if (slot->stop.load()) {
      fail_rest(Cancelled("source stopping for a reload"));
      return;
    }
    if (!may_wait) return;
    for (auto& f : front.screening) f.wait();  // then the loop submits it
  }
}

bool Pipeline::Settle(SourceSlot* slot, InHand* c, const Status& s, int* failures) {
  Logger& log = *slot->logger;
  const SourceBatch& batch = c->batch;
  try {
    slot->source->Ack(batch, s);
  } catch (const std::exception& e) {
    log.Error(std::string("Ack threw: ") + e.what());
  }
  if (!s.ok()) {
    ++*failures;
    counters_.commit_failures.fetch_add(1);
    slot->commit_failures->Increment();
    log.Error(batch.unit + ": not committed, will be offered again: " + s.ToString());
    SleepUnless(slot->stop, JitteredBackoff(*failures, std::chrono::milliseconds(500), std::chrono::seconds(30)));
    return false;
  }
  *failures = 0;
  CountRejections(*slot, batch);
  if (batch.events.empty() && !batch.rejections.empty()) return true;
  const AppendResult& result = c->result;
  counters_.batches_committed.fetch_add(1);
  counters_.events_accepted.fetch_add(result.appended);
  counters_.events_duplicate.fetch_add(result.duplicates);
  slot->ingested->Increment(static_cast<double>(result.appended));
  slot->duplicates->Increment(static_cast<double>(result.duplicates));
  log.Info(batch.unit + ": " + std::to_string(result.appended) + " event(s) accepted" +
           (result.duplicates ? ", " + std::to_string(result.duplicates) + " already journalled" : ""));
  return true;
}

std::vector<std::future<Status>> Pipeline::StartScreen(SourceSlot* slot, SourceBatch* batch) {
  std::vector<std::future<Status>> parts;
  if (slot->market || !security_->signer || batch->events.empty()) return parts;
  const std::string date = IsoUtc(NowUnixMs() / 1000);
  const Security* security = security_;
  // On the pool; without one (it is made in Start()), here and now: never skipped.
  auto run = [this](std::function<Status()> task) {
    if (sign_pool_) return sign_pool_->Run(std::move(task));
    std::promise<Status> done;
    done.set_value(task());
    return done.get_future();
  };
  if (security->signer->sign_batches()) {
    // One signature for the batch: the hashing is the work, one task does it.
    parts.push_back(run([security, batch, date]() -> Status {
      std::vector<Event*> mine;
      for (Event& e : batch->events) {
        if (e.signature.empty() && e.sender.mpid == security->participant_mpid) mine.push_back(&e);
      }
      return security->signer->SignBatch(mine, date);
    }));
    return parts;
  }
  // A batch is shared out over the pool's threads in slices of at least 64 events.
  const size_t n = batch->events.size();
  const size_t slices = std::min<size_t>(sign_pool_ ? sign_pool_->size() : 1, n / 64 + 1);
  for (size_t w = 0; w < slices; ++w) {
    const size_t from = n * w / slices, to = n * (w + 1) / slices;
    parts.push_back(run([security, batch, from, to, date]() -> Status {
      const std::string& me = security->participant_mpid;
      for (size_t i = from; i < to; ++i) {
        Event& e = batch->events[i];
        if (e.signature.empty() && e.sender.mpid == me) GW_RETURN_IF_ERROR(security->signer->Sign(&e, date));
      }
      return Status::Ok();
    }));
  }
  return parts;
}

Status Pipeline::FinishScreen(SourceSlot* slot, SourceBatch* batch, std::vector<std::future<Status>>* parts) {
  Status first = Status::Ok();
  for (auto& f : *parts) {
    Status st;
    try {
      st = f.get();
    } catch (const std::exception& e) {
      st = Internal(std::string("signing threw: ") + e.what());
    }
    if (first.ok()) first = st;
  }
  parts->clear();
  if (!security_ || batch->events.empty()) return Status::Ok();
  if (!slot->market) {
    if (!first.ok()) return first.Annotate("signing");
    if (!security_->signer) return Status::Ok();
    const std::string& me = security_->participant_mpid;
    for (const Event& e : batch->events) {
      if (e.sender.mpid != me) {
        slot->logger->Warning("event " + e.id + " names sender " + e.sender.mpid + ", not this participant (" + me +
                              "): it is not signed, and receivers will quarantine it");
        break;
      }
    }
    return Status::Ok();
  }
  // From the market: nothing unverified or unentitled reaches the journal.
  std::vector<Event> kept;
  kept.reserve(batch->events.size());
  for (Event& e : batch->events) {
    std::string code;
    std::string why = security_->CheckInbound(e, &code, !slot->authenticated);
    if (why.empty()) {
      kept.push_back(std::move(e));
      continue;
    }
    // A bad signature is quarantined whole for the operator; an unentitled event is dropped
    // with its audit record.
    bool quarantine = code != "not_entitled";
    uint64_t suppressed = 0;
    if (slot->rejection_log.Allow(&suppressed)) {
      // Values from the message are cut short: they are the sender's words, not ours.
      slot->logger->Warning(std::string(quarantine ? "quarantined" : "dropped") + " event " + e.id.substr(0, 80) + " from " +
                            e.sender.mpid.substr(0, 16) + ": " + code + ": " + why.substr(0, 300) +
                            (suppressed ? " (" + std::to_string(suppressed) + " more turned away since the last line)" : ""));
    }
    batch->rejections.push_back(Rejection{e.origin, code + ": " + why + " (event " + e.id + ")",
                                          quarantine ? ToEnvelopeJson(e) : std::string(), quarantine, code});
  }
  batch->events.swap(kept);
  return Status::Ok();
}

void Pipeline::CountRejections(const SourceSlot& slot, const SourceBatch& batch) {
  for (const Rejection& r : batch.rejections) {
    metrics_->CounterFor("mhhs_gateway_inbound_rejected_total", "Input turned away before the journal, per source and reason",
                         {{"source", slot.name}, {"reason", r.code.empty() ? "rejected" : r.code}})
        .Increment();
  }
}

void Pipeline::RunSink(SinkSlot* slot) {
  Logger& log = *slot->logger;
  const SinkPolicy& policy = slot->policy;
  uint64_t generation = 0;
  int failures = 0;
  RateLimiter limiter(std::chrono::seconds(10));
  RateLimiter journal_limiter(std::chrono::seconds(10));
  const DeliveryHints hints = slot->sink->Hints();
  const int limit = hints.max_batch > 0 ? hints.max_batch : policy.batch;
  // The batch in hand. It is refetched from the journal only when empty: a batch with
  // transient failures is retried as it is, so the failed event stays ahead of the rest.
  std::vector<PendingDelivery> batch;
  // Outcomes are recorded without waiting for their commit, and the next batch is fetched
  // from after the last one taken (`cursor`) meanwhile. Whenever the worker looks again from
  // the start of the queue (when it runs dry, every few seconds, after a failed record) it
  // first waits for every record in flight, so that nothing confirmed is taken again. Looking
  // from the start is what finds events queued again behind the cursor (replay, dead-letter
  // retry, from mhhs-gatewayctl too).
  int64_t cursor = 0;
  std::deque<std::future<Status>> recording;
  auto rescan_due = std::chrono::steady_clock::now() + kRescanEvery;
  // Collects finished records (all of them when `wait`); false if any failed: its events are
  // still pending in the journal and are delivered again (at least once).
  auto settle = [&](bool wait) {
    bool ok = true;
    while (!recording.empty() &&
           (wait || recording.front().wait_for(std::chrono::seconds(0)) == std::future_status::ready)) {
      Status recorded = recording.front().get();
      recording.pop_front();
      if (!recorded.ok()) {
        ok = false;
        uint64_t suppressed = 0;
        if (journal_limiter.Allow(&suppressed)) log.Error("cannot record delivery outcomes: " + recorded.ToString());
      }
    }
    return ok;
  };
  auto rescan = [&] {
    bool ok = settle(true);
    cursor = 0;
    rescan_due = std::chrono::steady_clock::now() + kRescanEvery;
    return ok;
  };
  // After a failed record: the batch in hand is dropped and taken again from the journal.
  auto recover = [&] {
    rescan();
    batch.clear();
    SleepUnless(slot->stop, std::chrono::seconds(1));
  };
  while (!slot->stop.load()) {
    slot->heartbeat_ms.store(NowUnixMs());
    if (draining_.load() && std::chrono::steady_clock::now() >= drain_deadline_) break;
    if (!settle(false)) {
      recover();
      continue;
    }
    if (batch.empty()) {
      if (std::chrono::steady_clock::now() >= rescan_due && !rescan()) {
        recover();
        continue;
      }
      Status s = journal_->FetchPending(slot->name, limit, &batch, cursor);
      if (!s.ok()) {
        log.Error("cannot read pending deliveries: " + s.ToString());
        SleepUnless(slot->stop, std::chrono::seconds(1));
        continue;
      }
      if (batch.empty()) {
        if (cursor > 0) {
          if (!rescan()) recover();
          continue;
        }
        if (draining_.load()) break;
        journal_->WaitForAppend(&generation, std::chrono::milliseconds(500));
        continue;
      }
      // Linger: a batch that is not full waits for more until its oldest event is old enough.
      if (hints.linger.count() > 0 && static_cast<int>(batch.size()) < limit && !draining_.load()) {
        int64_t due = batch.front().accepted_at_ms + hints.linger.count();
        int64_t left = due - NowUnixMs();
        if (left > 0) {
          batch.clear();
          journal_->WaitForAppend(&generation, std::chrono::milliseconds(std::min<int64_t>(left, 500)));
          continue;
        }
      }
      cursor = batch.back().seq;
    }
    DeliveryOutcomes outcomes;
    // Expired events are dead-lettered, never delivered stale.
    int64_t now = NowUnixMs();
    std::vector<PendingDelivery> live;
    live.reserve(batch.size());
    for (PendingDelivery& d : batch) {
      std::string refused;
      if (!d.unreadable.empty()) {
        outcomes.dead.emplace_back(d.seq, "cannot read the stored event: " + d.unreadable);
        log.Error("event " + d.view().id + " dead-lettered: cannot read it from the journal: " + d.unreadable);
      } else if (d.expires_at_ms > 0 && now >= d.expires_at_ms) {
        outcomes.dead.emplace_back(d.seq, "expired: not delivered by " + FormatUnixMs(d.expires_at_ms));
        log.Warning("event " + d.view().id + " expired undelivered; dead-lettered");
      } else if (security_ && !(refused = security_->CheckOutbound(d.view())).empty()) {
        // What this participant may not send is never sent, whatever the route says.
        outcomes.dead.emplace_back(d.seq, refused);
        log.Warning("event " + d.view().id + " dead-lettered: " + refused);
      } else {
        live.push_back(std::move(d));
      }
    }
    std::vector<const Event*> events;
    events.reserve(live.size());
    for (const PendingDelivery& d : live) events.push_back(&d.view());
    std::vector<Status> results;
    if (!events.empty()) {
      try {
        results = slot->sink->Deliver(events);
      } catch (const std::exception& e) {
        results.assign(events.size(), Unavailable(std::string("Deliver threw: ") + e.what()));
      }
    }
    std::vector<PendingDelivery> again;
    bool head_taken = false;
    for (size_t i = 0; i < live.size(); ++i) {
      const Status& r = i < results.size() ? results[i] : Status(StatusCode::kInternal, "sink returned too few results");
      PendingDelivery& d = live[i];
      if (r.ok()) {
        outcomes.delivered.push_back(d.seq);
        outcomes.delivered_ids.push_back(d.view().id);
        continue;
      }
      bool permanent = r.code() == StatusCode::kInvalidArgument || r.code() == StatusCode::kDataLoss ||
                       r.code() == StatusCode::kPermissionDenied;
      if (permanent) {
        outcomes.dead.emplace_back(d.seq, r.ToString());
        log.Warning("event " + d.view().id + " dead-lettered: " + r.ToString());
        continue;
      }
      // Only the first transient failure of a batch counts as an attempt: the events behind
      // it were held back to keep order, not tried and failed.
      bool head = !head_taken;
      head_taken = true;
      if (head && policy.max_attempts > 0 && d.attempts + 1 >= policy.max_attempts) {
        outcomes.dead.emplace_back(d.seq, "max_attempts (" + std::to_string(policy.max_attempts) + ") reached: " + r.ToString());
        log.Warning("event " + d.view().id + " dead-lettered after " + std::to_string(d.attempts + 1) + " attempts: " + r.ToString());
        continue;
      }
      if (head) {
        outcomes.failed_seq = d.seq;
        outcomes.failed_error = r.ToString();
        ++d.attempts;
      }
      again.push_back(std::move(d));
    }
    counters_.events_delivered.fetch_add(static_cast<int64_t>(outcomes.delivered.size()));
    counters_.dead_letters.fetch_add(static_cast<int64_t>(outcomes.dead.size()));
    slot->delivered->Increment(static_cast<double>(outcomes.delivered.size()));
    slot->dead->Increment(static_cast<double>(outcomes.dead.size()));
    if (log.Enabled(LogLevel::kDebug) && !outcomes.delivered.empty()) {
      log.Debug(std::to_string(outcomes.delivered.size()) + " event(s) confirmed up to seq " +
                std::to_string(outcomes.delivered.back()));
    }
    const bool failed = outcomes.failed_seq != 0;
    const std::string failed_error = outcomes.failed_error;
    recording.push_back(journal_->RecordOutcomesAsync(slot->name, std::move(outcomes)));
    if (failed) {
      // The failure's attempt count and reason are in the journal before the back-off.
      if (!settle(true)) {
        recover();
        continue;
      }
    }
    batch.swap(again);
    if (batch.empty()) {
      failures = 0;
      continue;
    }
    counters_.delivery_failures.fetch_add(1);
    slot->failures->Increment();
    ++failures;
    auto wait = JitteredBackoff(failures, policy.retry_base, policy.retry_max);
    uint64_t suppressed = 0;
    if (limiter.Allow(&suppressed)) {
      log.Warning(std::to_string(batch.size()) + " event(s) from " + batch.front().view().id + " not delivered (" +
                  (failed_error.empty() ? std::string("held back") : failed_error) +
                  "); retry " + std::to_string(failures) + " in " + std::to_string(wait.count()) + " ms" +
                  (suppressed ? " (" + std::to_string(suppressed) + " similar suppressed)" : ""));
    }
    SleepUnless(slot->stop, wait);
  }
  settle(true);
  slot->finished.store(true);
}

void Pipeline::RunMaintenance() {
  // Its own copy: a reload swaps config_ and [journal] changes need a restart anyway.
  const JournalConfig settings = config_->journal;
  auto next_prune = std::chrono::steady_clock::now();
  while (!maintenance_stop_.load()) {
    bool pressure = journal_->ShouldPause(nullptr);
    if (pressure || std::chrono::steady_clock::now() >= next_prune) {
      PruneResult r;
      Status s = journal_->Prune(std::chrono::hours(24) * settings.retention_days, &r);
      if (!s.ok()) {
        logger_.Warning("pruning the journal failed: " + s.ToString());
      } else if (r.events_removed > 0) {
        logger_.Info("pruned " + std::to_string(r.events_removed) + " finished event(s) from the journal" +
                     (r.early ? " (" + std::to_string(r.early) + " before retention ran out, to get under max_bytes)" : ""));
      }
      next_prune = std::chrono::steady_clock::now() + std::chrono::seconds(settings.prune_interval_s);
    }
    SleepUnless(maintenance_stop_, pressure ? std::chrono::seconds(1) : std::chrono::seconds(5));
  }
}

void Pipeline::Stop(std::chrono::milliseconds drain) {
  sources_stop_.store(true);
  for (auto& s : sources_) {
    s->stop.store(true);
    if (s->source) s->source->Stop();
  }
  for (auto& s : sources_) {
    if (s->thread.joinable()) s->thread.join();
  }
  drain_deadline_ = std::chrono::steady_clock::now() + drain;
  draining_.store(true);
  if (journal_) journal_->WakeAll();
  // Workers leave by themselves once nothing is pending or the deadline passed; past the
  // deadline the sinks are stopped to interrupt a blocking Deliver().
  for (auto& s : sinks_) {
    // std::thread has no timed join: wait for the worker's own flag.
    while (s->thread.joinable() && !s->finished.load() && std::chrono::steady_clock::now() < drain_deadline_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    s->stop.store(true);
    if (s->sink) s->sink->Stop();
    if (s->thread.joinable()) s->thread.join();
  }
  maintenance_stop_.store(true);
  if (maintenance_.joinable()) maintenance_.join();
  if (journal_) (void)journal_->Flush();
}

}  // namespace gw
