// Metrics handles a connector receives: counters and gauges that appear on the gateway's
// /metrics endpoint (Prometheus text format) with the label connector="NAME" added.
// Thread-safety: handles may be used from any thread; they live as long as the gateway.
#ifndef MHHS_METRICS_H_
#define MHHS_METRICS_H_

#include <string>

namespace gw {

class Counter {
 public:
  virtual ~Counter() = default;
  virtual void Increment(double by = 1) = 0;
};

class Gauge {
 public:
  virtual ~Gauge() = default;
  virtual void Set(double value) = 0;
};

class Metrics {
 public:
  virtual ~Metrics() = default;
  // The counter `mhhs_gateway_NAME_total` for this connector (created on first use; the same
  // handle for the same name). `name` is lower_snake_case without the _total suffix.
  virtual Counter& GetCounter(const std::string& name, const std::string& help) = 0;
  // The gauge `mhhs_gateway_NAME` for this connector.
  virtual Gauge& GetGauge(const std::string& name, const std::string& help) = 0;
};

}  // namespace gw

#endif  // MHHS_METRICS_H_
