// The stderr logger: one line per message, a journald priority prefix (`<6>`), the component
// name, then the text. Under systemd, journald reads the prefix as the priority.
// Optional JSON lines for log shippers. Repeated messages can be rate-limited by the caller
// with RateLimiter.
// Thread-safety: all methods are thread-safe; lines are written whole.
#ifndef GW_LOG_H_
#define GW_LOG_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "mhhs/logger.h"
#include "mhhs/status.h"

namespace gw {

// Parses "error" | "warning" | "notice" | "info" | "debug".
StatusOr<LogLevel> ParseLogLevel(const std::string& name);

// Process-wide settings shared by every named logger.
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
void SetLogJson(bool json);

// A logger that prefixes each line with its component name.
class StderrLogger : public Logger {
 public:
  explicit StderrLogger(std::string component) : component_(std::move(component)) {}
  bool Enabled(LogLevel level) const override;
  void Log(LogLevel level, const std::string& message) override;

 private:
  std::string component_;
};

// Lets through at most one message per `interval`; counts the ones held back.
// Names the calling thread (top, perf, /proc/PID/task/*/comm): at most 15 characters are kept.
void NameThread(const std::string& name);

class RateLimiter {
 public:
  explicit RateLimiter(std::chrono::milliseconds interval) : interval_(interval) {}
  // True when a message may be logged now; `*suppressed` is how many were held back since.
  bool Allow(uint64_t* suppressed);

 private:
  std::mutex mu_;
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_{};
  uint64_t suppressed_ = 0;
};

}  // namespace gw

#endif  // GW_LOG_H_
