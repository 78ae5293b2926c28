// Source and Sink: the two kinds of connector, and the registry their factories live in.
//
// A Source turns something outside into events plus a checkpoint. The core's source loop calls
// Poll(), appends the batch's events and checkpoint to the journal in one fsync'd transaction,
// and only then calls Ack(): that is when the source may release its input (archive a file,
// advance a watermark, PUBACK a message). A crash before Ack() makes the source offer the same
// input again; stable event ids make the replay harmless.
//
// A Sink receives events in journal order and confirms each one only after the far side has
// confirmed it (PUBACK, fsync + rename, SQL commit).
//
// Built-in connectors and plugins register through the same ConnectorRegistry.
// Thread-safety: the core calls one Source from one thread, and one Sink from one thread;
// Stop() may be called from another thread to interrupt a blocking Poll() or Deliver().
#ifndef MHHS_CONNECTOR_H_
#define MHHS_CONNECTOR_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mhhs/config_section.h"
#include "mhhs/event.h"
#include "mhhs/logger.h"
#include "mhhs/metrics.h"
#include "mhhs/status.h"

namespace gw {

// What the participant needs to speak DIP messages, from `[dip]`.
struct DipSettings {
  std::string role;                    // senderRoleID: SDS, ADS, UMSDS, SUP, LDSO, ...
  std::string connection_provider_id;  // DIPConnectionProviderID, 10 digits, or "" (null)
  std::string connection_type = "W";   // B067 connectionTypeIndicator: W L H E U
  std::string connection_type_from;    // B067 effective-from date YYYY-MM-DD; "" = the settlement day
  std::map<std::string, std::string> distributor_dip_ids;  // MPAN distributor id "10".."23" -> DIP id
  std::string default_distributor_dip_id;                  // when the MPAN's distributor is not listed
};

// The participant this gateway speaks for, from `[gateway]`.
struct GatewayInfo {
  std::string participant_mpid;  // e.g. "UDMS"
  std::string participant_role;  // DTN role code, e.g. "D"
  std::string environment;       // e.g. "SIT"
  std::string dip_id;            // 10 digits, empty when not configured
  std::string flow_dir;          // the flow catalogue directory
  DipSettings dip;
};

// What a factory receives. All references outlive the connector.
struct ConnectorContext {
  std::string name;               // "inbox" for [source.inbox]
  const ConfigSection& config;    // its own section; unread keys are rejected after creation
  const GatewayInfo& gateway;
  Logger& logger;                 // named after the connector
  Metrics* metrics = nullptr;     // its counters and gauges on /metrics; use MetricsOf()
};

// The context's metrics, or handles that count nothing when there are none (tools, tests).
inline Metrics& MetricsOf(const ConnectorContext& ctx) {
  class Null : public Metrics, public Counter, public Gauge {
   public:
    Counter& GetCounter(const std::string&, const std::string&) override { return *this; }
    Gauge& GetGauge(const std::string&, const std::string&) override { return *this; }
    void Increment(double) override {}
    void Set(double) override {}
  };
  static Null null;
  return ctx.metrics ? *ctx.metrics : null;
}

// Input a source turned away, recorded in the audit chain (and, for a quarantined message,
// kept whole for `mhhs-gatewayctl quarantine`).
struct Rejection {
  std::string unit;         // a file name, or the topic a message came on
  std::string reason;
  std::string raw;          // the message itself, when quarantined
  bool quarantine = false;
  // A short class of the reason, the `reason` label of mhhs_gateway_inbound_rejected_total:
  // "malformed", "oversized", "too_deep", ... ("" counts as "rejected").
  std::string code;
};

// Where a source's events come from. The core signs events from this participant's own
// systems (kLocal) with the participant's key, and verifies events from the market (kMarket)
// against the trust store and the entitlement policy before they reach the journal; an event
// that fails is quarantined or dropped, with an audit record, and never delivered.
// kMarketAuthenticated: from the market, but the source has already authenticated its input
// itself (the DIP's signed webhook requests): the core checks entitlements only.
enum class EventOrigin { kLocal, kMarket, kMarketAuthenticated };

// One unit of input that is committed atomically.
struct SourceBatch {
  std::vector<Event> events;
  std::string checkpoint;  // stored with the events in the same transaction; "" keeps the old one
  std::string unit;        // what the batch came from, for logs and the trace (a file name)
  uint64_t token = 0;      // the source's own, handed back in Ack()
  bool last = true;        // false when more batches of the same unit follow (a large file)
  std::vector<Rejection> rejections;  // what the source turned away since the last batch
};

class Source {
 public:
  virtual ~Source() = default;

  // Prepares the source. `checkpoint` is the last one committed ("" on first run).
  // Errors: kInvalidArgument / kFailedPrecondition (bad directory, unreachable host).
  virtual Status Start(const std::string& checkpoint) = 0;

  // Waits at most `wait` for input. Returns true with `batch` filled, false when there was
  // nothing to take, or an error (kUnavailable: the core retries after a back-off).
  // The core does not call Poll() again before it has called Ack() for the previous batch
  // (unless the source is also a PipelinedSource, below).
  virtual StatusOr<bool> Poll(SourceBatch* batch, std::chrono::milliseconds wait) = 0;

  // The journal's verdict on `batch`. OK: durable, release the input. Not OK: nothing was
  // stored; keep the input so that it is offered again.
  virtual void Ack(const SourceBatch& batch, const Status& committed) = 0;

  // Stops the source; a blocking Poll() returns soon after. Called once.
  virtual void Stop() = 0;

  // Where its events come from (see EventOrigin). A source that reads the market backbone or
  // the DIP returns kMarket.
  virtual EventOrigin Origin() const { return EventOrigin::kLocal; }
};

// Optional, for a source that can take its next input while the journal commits the last:
// derive from it as well as from Source. The core then polls and screens (signs) batch N+1
// while batch N is being committed, which overlaps decoding with the fsync.
// The contract it loosens: Poll() may be called again before Ack() of the previous batch, with
// at most MaxBatchesInHand() batches unacknowledged at a time. What stays: Ack() comes for
// every batch, in the order Poll() returned them; and once a batch fails to commit, every
// later batch already in hand is acknowledged with an error too, without being committed, so
// a checkpoint never moves past input that was not stored. A source that opts in must not
// hand out the same input twice while it is in hand (e.g. a file source skips files it has
// claimed but not yet archived).
class PipelinedSource {
 public:
  virtual ~PipelinedSource() = default;
  // At least 1 (1 is the plain Source contract).
  virtual int MaxBatchesInHand() const = 0;
};

// How a sink wants its batches: at most `max_batch` events (0: the core's `batch` key), and
// the core may wait up to `linger` after the oldest pending event was accepted for more to
// arrive before delivering a batch that is not full (0: deliver at once). A file sink uses this
// to cut files by size or age.
struct DeliveryHints {
  int max_batch = 0;
  std::chrono::milliseconds linger{0};
};

class Sink {
 public:
  virtual ~Sink() = default;

  // Batching wishes; called once after Start().
  virtual DeliveryHints Hints() const { return DeliveryHints(); }

  // Connects or prepares. May return OK while the far side is still unreachable, if Deliver()
  // will report kUnavailable until it is.
  virtual Status Start() = 0;

  // Delivers `events` in order and returns one Status per event, in the same order, once the
  // far side confirmed or refused each. OK: confirmed. kUnavailable / kDeadlineExceeded:
  // transient, the core retries later with back-off. kInvalidArgument / kDataLoss: the event
  // itself can never be delivered; it is dead-lettered with the message as its reason.
  // A sink keeps journal order by attempting nothing new after its first transient failure in
  // a batch (report the rest kUnavailable); events it already had in flight may still be
  // confirmed, and then the failed event reaches the far side after them.
  // The pointers are valid until Deliver() returns.
  virtual std::vector<Status> Deliver(const std::vector<const Event*>& events) = 0;

  // True when the sink believes the far side is reachable (for /readyz).
  virtual bool Connected() const = 0;

  // Stops the sink; a blocking Deliver() returns soon after, its unconfirmed events transient.
  virtual void Stop() = 0;
};

using SourceFactory = std::function<StatusOr<std::unique_ptr<Source>>(const ConnectorContext&)>;
using SinkFactory = std::function<StatusOr<std::unique_ptr<Sink>>(const ConnectorContext&)>;

// Factories by connector type name (`file`, `mqtt`, …).
class ConnectorRegistry {
 public:
  virtual ~ConnectorRegistry() = default;
  // Fails with kAlreadyExists when the type is taken.
  virtual Status RegisterSource(const std::string& type, SourceFactory factory) = 0;
  virtual Status RegisterSink(const std::string& type, SinkFactory factory) = 0;
};

}  // namespace gw

#endif  // MHHS_CONNECTOR_H_
