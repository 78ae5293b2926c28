// ConfigSection: one `[source.NAME]`, `[sink.NAME]` or other section of gateway.ini.
//
// The core hands each connector its own section and never reads its keys itself. The
// connector asks for what it needs; every key it reads is marked used, and after the factory
// returns the core rejects any key nobody read, naming file, line and key. Every accessor's
// error names the file, line, section and key, so a bad config is one clear line.
// Thread-safety: read-only after loading; the `used` marks are only touched during start-up.
#ifndef MHHS_CONFIG_SECTION_H_
#define MHHS_CONFIG_SECTION_H_

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "mhhs/status.h"

namespace gw {

class ConfigSection {
 public:
  struct Entry {
    std::string key;
    std::string value;
    int line = 0;
    mutable bool used = false;
  };

  ConfigSection() = default;
  ConfigSection(std::string file, std::string name, int line)
      : file_(std::move(file)), name_(std::move(name)), line_(line) {}

  const std::string& name() const { return name_; }
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  const std::vector<Entry>& entries() const { return entries_; }

  void Add(std::string key, std::string value, int line) {
    entries_.push_back(Entry{std::move(key), std::move(value), line, false});
  }

  // The last entry for `key` (later lines override earlier ones), marked used; or nullptr.
  const Entry* Find(const std::string& key) const {
    const Entry* found = nullptr;
    for (const Entry& e : entries_) {
      if (e.key == key) { e.used = true; found = &e; }
    }
    return found;
  }

  bool Has(const std::string& key) const { return Find(key) != nullptr; }

  // "FILE:LINE: [NAME] KEY" for the key if present, else "FILE:LINE: [NAME]".
  std::string Where(const std::string& key) const {
    const Entry* e = nullptr;
    for (const Entry& x : entries_) if (x.key == key) e = &x;
    std::string where = file_ + ":" + std::to_string(e ? e->line : line_) + ": [" + name_ + "]";
    if (!key.empty()) where += " " + key;
    return where;
  }

  // An InvalidArgument naming this key: "FILE:LINE: [NAME] KEY: what".
  Status Error(const std::string& key, const std::string& what) const {
    return InvalidArgument(Where(key) + ": " + what);
  }

  // The value of a key that must be present and non-empty.
  StatusOr<std::string> GetRequired(const std::string& key) const {
    const Entry* e = Find(key);
    if (e == nullptr || e->value.empty()) return Error(key, "is required");
    return e->value;
  }

  std::string GetString(const std::string& key, const std::string& def) const {
    const Entry* e = Find(key);
    return e ? e->value : def;
  }

  StatusOr<int64_t> GetInt(const std::string& key, int64_t def, int64_t min, int64_t max) const {
    const Entry* e = Find(key);
    if (e == nullptr) return def;
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(e->value.c_str(), &end, 10);
    if (e->value.empty() || *end != '\0' || errno != 0) {
      return Error(key, "must be a whole number (got \"" + e->value + "\")");
    }
    if (v < min || v > max) {
      return Error(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                            " (got " + e->value + ")");
    }
    return static_cast<int64_t>(v);
  }

  StatusOr<bool> GetBool(const std::string& key, bool def) const {
    const Entry* e = Find(key);
    if (e == nullptr) return def;
    const std::string& v = e->value;
    if (v == "true" || v == "yes" || v == "on" || v == "1") return true;
    if (v == "false" || v == "no" || v == "off" || v == "0") return false;
    return Error(key, "must be true or false (got \"" + v + "\")");
  }

  // Fails naming the first key nobody read: a misspelt or unsupported key.
  Status CheckAllUsed() const {
    for (const Entry& e : entries_) {
      if (!e.used) {
        return InvalidArgument(file_ + ":" + std::to_string(e.line) + ": [" + name_ + "] " + e.key +
                               ": unknown key");
      }
    }
    return Status::Ok();
  }

 private:
  std::string file_;
  std::string name_;
  int line_ = 0;
  std::vector<Entry> entries_;
};

}  // namespace gw

#endif  // MHHS_CONFIG_SECTION_H_
