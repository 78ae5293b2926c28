#include "gw/metrics.h"

#include <cmath>
#include <cstdio>

namespace gw {

class MetricsRegistry::Series : public Counter, public Gauge {
 public:
  void Increment(double by) override {
    double cur = value_.load();
    while (!value_.compare_exchange_weak(cur, cur + by)) {
    }
  }
  void Set(double v) override { value_.store(v); }
  double value() const { return value_.load(); }

 private:
  std::atomic<double> value_{0};
};

namespace {

std::string EscapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') { out += "\\n"; continue; }
    out.push_back(c);
  }
  return out;
}

std::string RenderLabels(const MetricsRegistry::Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ",";
    out += labels[i].first + "=\"" + EscapeLabel(labels[i].second) + "\"";
  }
  return out + "}";
}

std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

class ConnectorMetrics : public Metrics {
 public:
  ConnectorMetrics(MetricsRegistry* r, std::string connector) : r_(r), connector_(std::move(connector)) {}
  Counter& GetCounter(const std::string& name, const std::string& help) override {
    return r_->CounterFor("mhhs_gateway_" + name + "_total", help, {{"connector", connector_}});
  }
  Gauge& GetGauge(const std::string& name, const std::string& help) override {
    return r_->GaugeFor("mhhs_gateway_" + name, help, {{"connector", connector_}});
  }

 private:
  MetricsRegistry* r_;
  std::string connector_;
};

}  // namespace

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Series& MetricsRegistry::Get(const std::string& name, const std::string& help, bool counter,
                                              const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = families_[name];
  if (f.help.empty()) {
    f.help = help;
    f.counter = counter;
  }
  auto& s = f.series[RenderLabels(labels)];
  if (!s) s = std::make_unique<Series>();
  return *s;
}

Counter& MetricsRegistry::CounterFor(const std::string& name, const std::string& help, const Labels& labels) {
  return Get(name, help, true, labels);
}

Gauge& MetricsRegistry::GaugeFor(const std::string& name, const std::string& help, const Labels& labels) {
  return Get(name, help, false, labels);
}

double MetricsRegistry::Value(const std::string& name, const Labels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto f = families_.find(name);
  if (f == families_.end()) return 0;
  auto s = f->second.series.find(RenderLabels(labels));
  return s == f->second.series.end() ? 0 : s->second->value();
}

std::string MetricsRegistry::Render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + f.help + "\n";
    out += "# TYPE " + name + (f.counter ? " counter\n" : " gauge\n");
    for (const auto& [labels, s] : f.series) out += name + labels + " " + Number(s->value()) + "\n";
  }
  return out;
}

std::unique_ptr<Metrics> MetricsRegistry::ForConnector(const std::string& connector) {
  return std::make_unique<ConnectorMetrics>(this, connector);
}

}  // namespace gw
