// Pipeline: the running gateway. Creates every configured connector through the registry,
// runs one loop thread per source (Poll -> journal Append -> Ack) and one worker thread per
// sink (pending deliveries in journal order -> Deliver -> mark), and stops them in reverse.
//
// Sink workers keep order: a batch whose events fail transiently is retried, the failed
// events in their original order, after an exponential back-off with full jitter
// (`retry_base_ms`, `retry_max_ms`); an event the sink refuses for good, or one that reached
// `max_attempts`, becomes a dead letter with its reason and the sink goes on.
// Thread-safety: Build/Start/Stop from one controlling thread; counters from any thread.
#ifndef GW_PIPELINE_H_
#define GW_PIPELINE_H_

#include <atomic>
#include <chrono>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gw/backoff.h"
#include "gw/config.h"
#include "gw/journal.h"
#include "gw/log.h"
#include "gw/metrics.h"
#include "gw/security.h"
#include "gw/work_pool.h"
#include "mhhs/connector.h"

namespace gw {

// The registry of connector factories by type name.
class Registry : public ConnectorRegistry {
 public:
  Status RegisterSource(const std::string& type, SourceFactory factory) override;
  Status RegisterSink(const std::string& type, SinkFactory factory) override;
  // Creates a connector and rejects any key of its section that nobody read.
  StatusOr<std::unique_ptr<Source>> CreateSource(const ConnectorConfig& c, const GatewayInfo& gw, Logger& log,
                                                 Metrics* metrics = nullptr) const;
  StatusOr<std::unique_ptr<Sink>> CreateSink(const ConnectorConfig& c, const GatewayInfo& gw, Logger& log,
                                             Metrics* metrics = nullptr) const;
  // Where plugins were looked for, named when a configured type is unknown.
  void SetPluginDir(const std::string& dir) { plugin_dir_ = dir; }

 private:
  std::string plugin_dir_;
  std::map<std::string, SourceFactory> sources_;
  std::map<std::string, SinkFactory> sinks_;
};

struct SinkPolicy {
  std::chrono::milliseconds retry_base{500};
  std::chrono::milliseconds retry_max{60000};
  int max_attempts = 0;  // 0: retry transient failures for ever
  int batch = 500;       // deliveries handed to the sink at once
};

// Reads the core's own keys of a sink section (retry_base_ms, retry_max_ms, max_attempts, batch).
StatusOr<SinkPolicy> ReadSinkPolicy(const ConfigSection& section);


struct PipelineCounters {
  std::atomic<int64_t> batches_committed{0};
  std::atomic<int64_t> events_accepted{0};
  std::atomic<int64_t> events_duplicate{0};
  std::atomic<int64_t> commit_failures{0};
  std::atomic<int64_t> events_delivered{0};
  std::atomic<int64_t> delivery_failures{0};
  std::atomic<int64_t> dead_letters{0};
};

// What the admin endpoint shows about one sink.
struct SinkHealth {
  std::string name;
  bool connected = false;
};

class Pipeline {
 public:
  // `metrics` may be null (check-config); otherwise counters go there.
  Pipeline(const GatewayConfig& config, Journal* journal, const Registry& registry, MetricsRegistry* metrics = nullptr);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Creates every connector; does not start anything. With a null journal (check-config)
  // only validation happens. Errors: kInvalidArgument / kNotFound naming the section and key.
  Status Build();
  // Starts sinks, then sources. Errors: the first connector that failed to start.
  Status Start();
  // Stops sources, lets sink workers finish pending deliveries for up to `drain`, stops sinks.
  void Stop(std::chrono::milliseconds drain);

  // Applies a new configuration while running (SIGHUP): connectors whose section, or (for a
  // source) whose routes, changed are stopped and started again from the new config; new ones
  // start, removed ones stop; untouched ones keep running. The journal and undelivered events
  // are not touched. [gateway] and [journal] changes need a restart and are reported in
  // `*notes`. `next` must have been validated (a check-mode Build()). Errors: the first
  // connector that could not be created or started (the others are applied).
  Status Reload(std::unique_ptr<GatewayConfig> next, std::vector<std::string>* notes);

  // What [security] set up; null (the default) signs, verifies and checks nothing. Set before
  // Start(); it must outlive the pipeline.
  void SetSecurity(const Security* security) { security_ = security; }

  const PipelineCounters& counters() const { return counters_; }
  // The sources whose events come from the market and need their signatures verified by the
  // core (EventOrigin::kMarket, or origin = market).
  std::vector<std::string> MarketSources() const;
  std::vector<SinkHealth> Sinks() const;
  // True while every source and sink loop has made a round within `stall` (or is idle and
  // healthy): what the systemd watchdog pings on. `*why` names the wedged one.
  bool Healthy(std::chrono::seconds stall, std::string* why) const;

 private:
  struct SourceSlot {
    std::string name;
    std::unique_ptr<StderrLogger> logger;
    std::unique_ptr<Metrics> metrics;
    std::unique_ptr<Source> source;
    std::vector<DeliveryTarget> targets;
    std::thread thread;
    std::atomic<bool> stop{false};
    std::atomic<int64_t> heartbeat_ms{0};
    Counter* ingested = nullptr;
    Counter* duplicates = nullptr;
    Counter* commit_failures = nullptr;
    Counter* waited_for_sinks = nullptr;
    bool market = false;         // its events come from the market: verified, not signed
    bool authenticated = false;  // ... and the source authenticated them itself (entitlements only)
    RateLimiter rejection_log{std::chrono::seconds(10)};
    // Its appends in the journal, tied so that none commits after one that failed.
    std::shared_ptr<AppendChain> chain = std::make_shared<AppendChain>();
  };
  struct SinkSlot {
    std::string name;
    std::unique_ptr<StderrLogger> logger;
    std::unique_ptr<Metrics> metrics;
    std::unique_ptr<Sink> sink;
    SinkPolicy policy;
    std::thread thread;
    std::atomic<bool> stop{false};
    std::atomic<bool> finished{false};
    std::atomic<int64_t> heartbeat_ms{0};
    Counter* delivered = nullptr;
    Counter* failures = nullptr;
    Counter* dead = nullptr;
  };

  // A batch between Poll() and Ack(): being signed on the work pool, then committed (several
  // may be queued in the journal at once, chained; the oldest is acknowledged first). Once
  // committed, the journal may keep it a while longer for the sinks (its events, in memory).
  struct InHand {
    SourceBatch batch;
    std::vector<std::future<Status>> screening;  // signing slices on sign_pool_
    Status screen_error;                         // signing failed (collected early)
    bool submitted = false;                      // handed to the journal
    AppendResult result;
    std::future<Status> committed;
  };
  // How far Advance() may wait: kReady takes only what is finished; kOne waits until there is
  // room for one more batch; kAll settles everything in hand.
  enum class AdvanceMode { kReady, kOne, kAll };

  Status MakeSink(const ConnectorConfig& c, std::unique_ptr<SinkSlot>* out);
  Status MakeSource(const ConnectorConfig& c, std::unique_ptr<SourceSlot>* out);
  Status StartSink(SinkSlot* slot);
  Status StartSource(SourceSlot* slot);
  void StopSource(SourceSlot* slot);
  void StopSink(SinkSlot* slot, std::chrono::milliseconds drain);
  void RunSource(SourceSlot* slot);
  // Moves the batches in hand on, oldest first: submits a signed one to the journal, and
  // acknowledges a committed one to the source (all later ones fail with it).
  void Advance(SourceSlot* slot, std::deque<std::shared_ptr<InHand>>* hand, AdvanceMode mode, int* failures);
  // Acknowledges `c` to the source with its commit's verdict `s` and counts it; after a
  // failure it backs off. Returns whether it was committed.
  bool Settle(SourceSlot* slot, InHand* c, const Status& s, int* failures);
  // Before the journal: this participant's events from a local source are signed, on the work
  // pool (StartScreen), and the source thread collects the result (FinishScreen); events from
  // a market source are checked (signature, entitlements) in FinishScreen, and the failures
  // become rejections. An error (signing failed) means nothing of the batch may be journalled.
  std::vector<std::future<Status>> StartScreen(SourceSlot* slot, SourceBatch* batch);
  Status FinishScreen(SourceSlot* slot, SourceBatch* batch, std::vector<std::future<Status>>* parts);
  // Counts `batch`'s rejections by reason.
  void CountRejections(const SourceSlot& slot, const SourceBatch& batch);
  void RunSink(SinkSlot* slot);
  // How often a busy sink worker looks at its queue from the start again (see RunSink).
  static constexpr std::chrono::seconds kRescanEvery{2};
  // The longest a source is held back for the sinks before it takes a batch all the same
  // (see RunSource).
  static constexpr std::chrono::seconds kMaxHold{1};
  // Prunes the journal every prune_interval_s, and every second while above the quota.
  void RunMaintenance();
  // Sleeps up to `d`; returns early (true) when `flag` becomes set.
  bool SleepUnless(const std::atomic<bool>& flag, std::chrono::milliseconds d);

  const GatewayConfig* config_;
  std::vector<std::unique_ptr<GatewayConfig>> reloaded_;  // kept alive: connectors were made from them
  Journal* journal_;
  const Registry& registry_;
  MetricsRegistry* metrics_;
  MetricsRegistry own_metrics_;  // when none is given
  StderrLogger logger_{"pipeline"};
  mutable std::mutex slots_mu_;  // guards the two vectors for readers on other threads
  std::vector<std::unique_ptr<SourceSlot>> sources_;
  std::vector<std::unique_ptr<SinkSlot>> sinks_;
  std::atomic<bool> sources_stop_{false};
  std::atomic<bool> maintenance_stop_{false};
  std::thread maintenance_;
  std::atomic<bool> draining_{false};
  std::chrono::steady_clock::time_point drain_deadline_{};
  PipelineCounters counters_;
  const Security* security_ = nullptr;
  std::unique_ptr<WorkPool> sign_pool_;  // signs local sources' events (with [security] key)
};

// Fails when a market source would take in unverified events although [security] asks for
// signatures: the section exists, require_signatures is on, and no trust store is configured.
Status CheckSecurityCoverage(const Pipeline& pipeline, const Security& security);
// What is protected and how, one line each, for the start-up log (and warnings for what is not).
std::vector<std::string> DescribeSecurity(const Security& security, const Pipeline& pipeline);

}  // namespace gw

#endif  // GW_PIPELINE_H_
