// Logger: the one logging interface. A named logger per component; the implementation writes
// to stderr with journald priority prefixes (`<3>` error … `<7>` debug).
// Every line about an event names the connector and the event id. The hot path logs at debug
// only, and callers check Enabled() first so a disabled level costs nothing.
// Thread-safety: all methods may be called from any thread.
#ifndef MHHS_LOGGER_H_
#define MHHS_LOGGER_H_

#include <string>

namespace gw {

enum class LogLevel : int { kError = 3, kWarning = 4, kNotice = 5, kInfo = 6, kDebug = 7 };

class Logger {
 public:
  virtual ~Logger() = default;
  virtual bool Enabled(LogLevel level) const = 0;
  virtual void Log(LogLevel level, const std::string& message) = 0;

  void Error(const std::string& m) { Log(LogLevel::kError, m); }
  void Warning(const std::string& m) { Log(LogLevel::kWarning, m); }
  void Notice(const std::string& m) { Log(LogLevel::kNotice, m); }
  void Info(const std::string& m) { Log(LogLevel::kInfo, m); }
  void Debug(const std::string& m) {
    if (Enabled(LogLevel::kDebug)) Log(LogLevel::kDebug, m);
  }
};

}  // namespace gw

#endif  // MHHS_LOGGER_H_
