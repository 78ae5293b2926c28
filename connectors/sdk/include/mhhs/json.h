// A small, allocation-frugal JSON writer used on the hot path (envelopes, DTN payloads).
//
// Parsing is left to POCO JSON (the core) or whatever a plugin prefers; writing is done here
// because it sits on the per-event path and needs nothing but string appends.
// Thread-safety: a JsonWriter is used by one thread at a time.
#ifndef MHHS_JSON_H_
#define MHHS_JSON_H_

#include <string>
#include <string_view>

namespace gw {

// Appends `s` to `out` as a JSON string literal, quotes included. Control characters are
// escaped; bytes >= 0x80 are copied as they are (callers hand in UTF-8).
inline void AppendJsonString(std::string* out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
    }
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
}

// Streaming writer: tracks commas so callers only say what comes next.
//   JsonWriter w(&out); w.BeginObject(); w.Key("a"); w.String("b"); w.EndObject();
class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(out) {}

  void BeginObject() { Sep(); out_->push_back('{'); first_ = true; }
  void EndObject() { out_->push_back('}'); first_ = false; }
  void BeginArray() { Sep(); out_->push_back('['); first_ = true; }
  void EndArray() { out_->push_back(']'); first_ = false; }
  void Key(std::string_view k) { Sep(); AppendJsonString(out_, k); out_->push_back(':'); first_ = true; }
  void String(std::string_view v) { Sep(); AppendJsonString(out_, v); }
  // Writes a string, or null when `v` is empty.
  void StringOrNull(std::string_view v) { if (v.empty()) Null(); else String(v); }
  void Null() { Sep(); out_->append("null"); }
  void Bool(bool v) { Sep(); out_->append(v ? "true" : "false"); }
  void Int(long long v) { Sep(); out_->append(std::to_string(v)); }
  // Writes already-serialized JSON text as one value.
  void Raw(std::string_view json) { Sep(); out_->append(json.data(), json.size()); }

 private:
  void Sep() {
    if (!first_) out_->push_back(',');
    first_ = false;
  }

  std::string* out_;
  bool first_ = true;
};

}  // namespace gw

#endif  // MHHS_JSON_H_
