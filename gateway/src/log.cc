#include "gw/log.h"

#include <pthread.h>

#include <cstdio>
#include <ctime>

#include "mhhs/json.h"

namespace gw {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<bool> g_json{false};
std::mutex g_write_mu;

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kError: return "error";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kNotice: return "notice";
    case LogLevel::kInfo: return "info";
    case LogLevel::kDebug: return "debug";
  }
  return "info";
}

}  // namespace

StatusOr<LogLevel> ParseLogLevel(const std::string& name) {
  for (LogLevel l : {LogLevel::kError, LogLevel::kWarning, LogLevel::kNotice, LogLevel::kInfo, LogLevel::kDebug}) {
    if (name == LevelName(l)) return l;
  }
  return InvalidArgument("unknown log level \"" + name + "\"");
}

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load()); }
void SetLogJson(bool json) { g_json.store(json); }

bool StderrLogger::Enabled(LogLevel level) const { return static_cast<int>(level) <= g_level.load(); }

void StderrLogger::Log(LogLevel level, const std::string& message) {
  if (!Enabled(level)) return;
  std::string line;
  line.reserve(message.size() + component_.size() + 64);
  if (g_json.load()) {
    char ts[32];
    std::time_t now = std::time(nullptr);
    std::tm tm;
    gmtime_r(&now, &tm);
    std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    JsonWriter w(&line);
    w.BeginObject();
    w.Key("ts"); w.String(ts);
    w.Key("level"); w.String(LevelName(level));
    w.Key("component"); w.String(component_);
    w.Key("msg"); w.String(message);
    w.EndObject();
  } else {
    line += '<';
    line += static_cast<char>('0' + static_cast<int>(level));
    line += '>';
    line += component_;
    line += ": ";
    // One message is one line: a line break or other control character inside it (a value
    // from hostile input, say) is escaped, so it cannot forge a line of its own.
    for (char c : message) {
      unsigned char u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f) {
        static const char* kHex = "0123456789abcdef";
        line += "\\x";
        line += kHex[u >> 4];
        line += kHex[u & 15];
      } else {
        line += c;
      }
    }
  }
  line += '\n';
  std::lock_guard<std::mutex> lock(g_write_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

void NameThread(const std::string& name) { pthread_setname_np(pthread_self(), name.substr(0, 15).c_str()); }

bool RateLimiter::Allow(uint64_t* suppressed) {
  std::lock_guard<std::mutex> lock(mu_);
  auto now = std::chrono::steady_clock::now();
  if (last_.time_since_epoch().count() != 0 && now - last_ < interval_) {
    ++suppressed_;
    return false;
  }
  last_ = now;
  *suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

}  // namespace gw
