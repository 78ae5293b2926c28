#include "gw/envelope.h"

#include <cstdint>
#include <cstring>
#include <unordered_set>
#include <vector>

namespace gw {
namespace {

// A strict JSON scanner (RFC 8259) that validates and records the spans of the top-level
// object's members. Strings are decoded only where the envelope needs their value.
class Scanner {
 public:
  Scanner(std::string_view s, int max_depth) : s_(s), max_depth_(max_depth) {}

  struct Member {
    std::string key;
    size_t begin = 0, end = 0;  // the value's span
    char kind = 0;              // '"' string, '{' object, '[' array, 'n' null, 't'/'f' bool, '0' number
  };

  Status ParseTop(std::vector<Member>* members) {
    std::unordered_set<std::string> seen;
    Ws();
    if (!Eat('{')) return Err("not a JSON object");
    Ws();
    if (Eat('}')) return End();
    for (;;) {
      Ws();
      Member m;
      if (Peek() != '"') return Err("expected a member name");
      GW_RETURN_IF_ERROR(String(&m.key));
      Ws();
      if (!Eat(':')) return Err("expected ':' after \"" + m.key + "\"");
      Ws();
      m.begin = pos_;
      m.kind = Kind(Peek());
      GW_RETURN_IF_ERROR(Value(1));
      m.end = pos_;
      if (!seen.insert(m.key).second) return Err("member \"" + m.key + "\" appears twice");
      members->push_back(std::move(m));
      Ws();
      if (Eat(',')) continue;
      if (Eat('}')) return End();
      return Err("expected ',' or '}'");
    }
  }

  // Decodes the string literal at `begin` into `out`.
  Status StringAt(size_t begin, std::string* out) {
    pos_ = begin;
    return String(out);
  }

 private:
  static char Kind(char c) {
    if (c == '"' || c == '{' || c == '[' || c == 'n' || c == 't' || c == 'f') return c;
    return '0';
  }
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool Eat(char c) {
    if (Peek() != c || pos_ >= s_.size()) return false;
    ++pos_;
    return true;
  }
  void Ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  Status Err(const std::string& what) const {
    return InvalidArgument("envelope: " + what + " at byte " + std::to_string(pos_));
  }
  Status End() {
    Ws();
    if (pos_ != s_.size()) return Err("trailing bytes after the object");
    return Status::Ok();
  }
  Status Literal(const char* lit) {
    size_t n = std::strlen(lit);
    if (s_.substr(pos_, n) != lit) return Err("invalid literal");
    pos_ += n;
    return Status::Ok();
  }
  Status Number() {
    size_t start = pos_;
    Eat('-');
    if (Peek() == '0') {
      ++pos_;
    } else if (Peek() >= '1' && Peek() <= '9') {
      while (Peek() >= '0' && Peek() <= '9') ++pos_;
    } else {
      return Err("invalid value");
    }
    if (Eat('.')) {
      if (!(Peek() >= '0' && Peek() <= '9')) return Err("invalid number");
      while (Peek() >= '0' && Peek() <= '9') ++pos_;
    }
    if (Peek() == 'e' || Peek() == 'E') {
      ++pos_;
      if (Peek() == '+' || Peek() == '-') ++pos_;
      if (!(Peek() >= '0' && Peek() <= '9')) return Err("invalid number");
      while (Peek() >= '0' && Peek() <= '9') ++pos_;
    }
    if (pos_ - start > 64) return Err("number too long");
    return Status::Ok();
  }
  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  static void Utf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  // Parses a string literal; appends its decoded text to `out` when given.
  Status String(std::string* out) {
    if (!Eat('"')) return Err("expected a string");
    if (out) out->clear();
    for (;;) {
      if (pos_ >= s_.size()) return Err("unterminated string");
      unsigned char c = static_cast<unsigned char>(s_[pos_++]);
      if (c == '"') return Status::Ok();
      if (c < 0x20) return Err("control character in a string");
      if (c != '\\') {
        // Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF.
        int extra = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (extra < 0 || (extra == 1 && c < 0xC2) || c > 0xF4) return Err("invalid UTF-8");
        if (out) out->push_back(static_cast<char>(c));
        for (int i = 0; i < extra; ++i) {
          if (pos_ >= s_.size() || (static_cast<unsigned char>(s_[pos_]) & 0xC0) != 0x80) return Err("invalid UTF-8");
          if (i == 0) {
            unsigned char c1 = static_cast<unsigned char>(s_[pos_]);
            if ((c == 0xE0 && c1 < 0xA0) || (c == 0xF0 && c1 < 0x90)) return Err("invalid UTF-8 (overlong form)");
            if (c == 0xED && c1 >= 0xA0) return Err("invalid UTF-8 (surrogate)");
            if (c == 0xF4 && c1 >= 0x90) return Err("invalid UTF-8 (beyond U+10FFFF)");
          }
          if (out) out->push_back(s_[pos_]);
          ++pos_;
        }
        continue;
      }
      if (pos_ >= s_.size()) return Err("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"': case '\\': case '/': if (out) out->push_back(e); break;
        case 'b': if (out) out->push_back('\b'); break;
        case 'f': if (out) out->push_back('\f'); break;
        case 'n': if (out) out->push_back('\n'); break;
        case 'r': if (out) out->push_back('\r'); break;
        case 't': if (out) out->push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          for (int i = 0; i < 4; ++i) {
            int h = pos_ < s_.size() ? Hex(s_[pos_]) : -1;
            if (h < 0) return Err("invalid \\u escape");
            cp = cp * 16 + static_cast<uint32_t>(h);
            ++pos_;
          }
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.substr(pos_, 2) != "\\u") return Err("lone surrogate");
            pos_ += 2;
            uint32_t lo = 0;
            for (int i = 0; i < 4; ++i) {
              int h = pos_ < s_.size() ? Hex(s_[pos_]) : -1;
              if (h < 0) return Err("invalid \\u escape");
              lo = lo * 16 + static_cast<uint32_t>(h);
              ++pos_;
            }
            if (lo < 0xDC00 || lo > 0xDFFF) return Err("lone surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return Err("lone surrogate");
          }
          if (out) Utf8(cp, out);
          break;
        }
        default:
          return Err("invalid escape");
      }
    }
  }
  Status Value(int depth) {
    if (depth > max_depth_) return Err("nested deeper than " + std::to_string(max_depth_));
    switch (Peek()) {
      case '"': return String(nullptr);
      case 'n': return Literal("null");
      case 't': return Literal("true");
      case 'f': return Literal("false");
      case '{': {
        ++pos_;
        Ws();
        if (Eat('}')) return Status::Ok();
        for (;;) {
          Ws();
          GW_RETURN_IF_ERROR(String(nullptr));
          Ws();
          if (!Eat(':')) return Err("expected ':'");
          Ws();
          GW_RETURN_IF_ERROR(Value(depth + 1));
          Ws();
          if (Eat(',')) continue;
          if (Eat('}')) return Status::Ok();
          return Err("expected ',' or '}'");
        }
      }
      case '[': {
        ++pos_;
        Ws();
        if (Eat(']')) return Status::Ok();
        for (;;) {
          Ws();
          GW_RETURN_IF_ERROR(Value(depth + 1));
          Ws();
          if (Eat(',')) continue;
          if (Eat(']')) return Status::Ok();
          return Err("expected ',' or ']'");
        }
      }
      default:
        return Number();
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
  int max_depth_;
};

Status ParseParty(Scanner& sc, std::string_view json, const Scanner::Member& m, const std::string& where, Party* p) {
  if (m.kind != '{') return InvalidArgument("envelope " + where + ": must be an object");
  std::string_view body = json.substr(m.begin, m.end - m.begin);
  Scanner inner(body, 4);
  std::vector<Scanner::Member> ms;
  GW_RETURN_IF_ERROR(inner.ParseTop(&ms));
  for (const auto& x : ms) {
    std::string* target = x.key == "mpid" ? &p->mpid : x.key == "role" ? &p->role : x.key == "dipId" ? &p->dip_id : nullptr;
    if (target == nullptr) continue;
    if (x.kind != '"') return InvalidArgument("envelope " + where + "." + x.key + ": must be a string");
    GW_RETURN_IF_ERROR(inner.StringAt(x.begin, target));
  }
  if (p->mpid.empty()) return InvalidArgument("envelope " + where + ".mpid: missing");
  (void)sc;
  return Status::Ok();
}

}  // namespace

StatusOr<Event> ParseEnvelope(std::string_view json, const EnvelopeLimits& limits) {
  if (json.size() > limits.max_bytes) {
    return InvalidArgument("envelope: " + std::to_string(json.size()) + " bytes, more than the limit of " +
                           std::to_string(limits.max_bytes));
  }
  Scanner sc(json, limits.max_depth);
  std::vector<Scanner::Member> members;
  GW_RETURN_IF_ERROR(sc.ParseTop(&members));
  Event e;
  bool have_sender = false;
  for (const auto& m : members) {
    auto str = [&](std::string* out) -> Status {
      if (m.kind == 'n' && (m.key == "correlationId" || m.key == "eventCode")) return Status::Ok();
      if (m.kind != '"') return InvalidArgument("envelope " + m.key + ": must be a string");
      return sc.StringAt(m.begin, out);
    };
    if (m.key == "v") {
      if (json.substr(m.begin, m.end - m.begin) != "1") {
        return InvalidArgument("envelope v: unsupported envelope version " + std::string(json.substr(m.begin, m.end - m.begin)));
      }
    } else if (m.key == "id") {
      GW_RETURN_IF_ERROR(str(&e.id));
    } else if (m.key == "type") {
      GW_RETURN_IF_ERROR(str(&e.type));
    } else if (m.key == "eventCode") {
      GW_RETURN_IF_ERROR(str(&e.event_code));
    } else if (m.key == "createdAt") {
      GW_RETURN_IF_ERROR(str(&e.created_at));
    } else if (m.key == "correlationId") {
      GW_RETURN_IF_ERROR(str(&e.correlation_id));
    } else if (m.key == "sender") {
      GW_RETURN_IF_ERROR(ParseParty(sc, json, m, "sender", &e.sender));
      have_sender = true;
    } else if (m.key == "recipients") {
      if (m.kind != '[') return InvalidArgument("envelope recipients: must be an array");
      // Each element is an object; scan them by wrapping in a synthetic object.
      std::string_view body = json.substr(m.begin + 1, m.end - m.begin - 2);
      size_t i = 0;
      int depth = 0;
      size_t start = std::string::npos;
      bool in_str = false, esc = false;
      for (size_t k = 0; k < body.size(); ++k) {
        char c = body[k];
        if (in_str) {
          if (esc) esc = false;
          else if (c == '\\') esc = true;
          else if (c == '"') in_str = false;
          continue;
        }
        if (c == '"') {
          if (depth == 0) return InvalidArgument("envelope recipients[" + std::to_string(i) + "]: must be an object");
          in_str = true;
        } else if (c == '{') { if (depth++ == 0) start = k; }
        else if (c == '}' && --depth == 0) {
          Scanner::Member pm;
          pm.kind = '{';
          pm.begin = m.begin + 1 + start;
          pm.end = m.begin + 1 + k + 1;
          Party p;
          GW_RETURN_IF_ERROR(ParseParty(sc, json, pm, "recipients[" + std::to_string(i++) + "]", &p));
          e.recipients.push_back(std::move(p));
        } else if (depth == 0 && c != ',' && c != ' ' && c != '\n' && c != '\t' && c != '\r') {
          return InvalidArgument("envelope recipients[" + std::to_string(i) + "]: must be an object");
        }
      }
    } else if (m.key == "payload") {
      if (m.kind != '{' && m.kind != '[') return InvalidArgument("envelope payload: must be a JSON object or array");
      e.payload.assign(json.substr(m.begin, m.end - m.begin));
    } else if (m.key == "signature") {
      if (m.kind != '{') return InvalidArgument("envelope signature: must be an object");
      e.signature.assign(json.substr(m.begin, m.end - m.begin));
    }
    // Unknown members are ignored: later envelope additions stay readable.
  }
  if (e.id.empty()) return InvalidArgument("envelope id: missing");
  if (e.id.size() > 200) return InvalidArgument("envelope id: longer than 200 characters");
  if (e.type.empty()) return InvalidArgument("envelope type: missing");
  if (!have_sender) return InvalidArgument("envelope sender: missing");
  if (e.payload.empty()) return InvalidArgument("envelope payload: missing");
  return e;
}

std::string EnvelopeErrorCode(const Status& error) {
  const std::string& m = error.message();
  auto has = [&](const char* what) { return m.find(what) != std::string::npos; };
  if (has("nested deeper than")) return "too_deep";
  if (has("more than the limit")) return "oversized";
  if (has("unsupported envelope version")) return "unsupported_version";
  if (has(": missing")) return "missing_field";
  if (has(": must be")) return "wrong_type";
  return "malformed";
}

}  // namespace gw
