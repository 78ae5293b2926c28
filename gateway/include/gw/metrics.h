// The metrics registry behind /metrics: counter and gauge families with labels, rendered in
// the Prometheus text exposition format. Connectors get a Metrics handle bound to their name.
// Thread-safety: all methods are thread-safe; values are atomics.
#ifndef GW_METRICS_H_
#define GW_METRICS_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mhhs/metrics.h"

namespace gw {

class MetricsRegistry {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // The series `name` with `labels` (created on first use). `name` is the full metric name.
  Counter& CounterFor(const std::string& name, const std::string& help, const Labels& labels);
  Gauge& GaugeFor(const std::string& name, const std::string& help, const Labels& labels);
  double Value(const std::string& name, const Labels& labels) const;

  // Every family in the Prometheus text format, sorted by name.
  std::string Render() const;

  // A handle for one connector: adds connector="NAME" and the mhhs_gateway_ prefix.
  std::unique_ptr<Metrics> ForConnector(const std::string& connector);

 private:
  class Series;
  struct Family {
    std::string help;
    bool counter = true;
    std::map<std::string, std::unique_ptr<Series>> series;  // by rendered label set
  };
  Series& Get(const std::string& name, const std::string& help, bool counter, const Labels& labels);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
};

}  // namespace gw

#endif  // GW_METRICS_H_
