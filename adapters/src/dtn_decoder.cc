#include "gw/adapters/dtn_decoder.h"

#include <algorithm>
#include <cstring>

#include "gw/adapters/uk_time.h"
#include "mhhs/json.h"

namespace gw::adapters {
namespace {

constexpr size_t kZhvFields = 11;
constexpr size_t kZptFields = 5;

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) if (c < '0' || c > '9') return false;
  return true;
}

int Num(std::string_view s, size_t pos, size_t len) {
  int v = 0;
  for (size_t i = pos; i < pos + len; ++i) v = v * 10 + (s[i] - '0');
  return v;
}

bool ValidDate(std::string_view v) {
  return v.size() == 8 && AllDigits(v) && IsValidDate(Num(v, 0, 4), Num(v, 4, 2), Num(v, 6, 2));
}

bool ValidDateTime(std::string_view v) {
  return v.size() == 14 && AllDigits(v) && IsValidDate(Num(v, 0, 4), Num(v, 4, 2), Num(v, 6, 2)) &&
         Num(v, 8, 2) < 24 && Num(v, 10, 2) < 60 && Num(v, 12, 2) < 60;
}

bool IsUpperMpid(std::string_view v) {
  return v.size() == 4 && std::all_of(v.begin(), v.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

constexpr const char kTooLong[] = "too long";
constexpr const char kDigitCount[] = "wrong digit count";

// Returns the reason a value breaks its field spec, or nullptr when it is fine.
const char* CheckField(const FieldSpec& f, std::string_view v) {
  if (v.empty()) return f.mandatory ? "mandatory field is empty" : nullptr;
  if (static_cast<int>(v.size()) > f.length) return kTooLong;
  switch (f.type) {
    case FieldType::kText:
      return nullptr;
    case FieldType::kDigits:
      if (static_cast<int>(v.size()) != f.length || !AllDigits(v)) return kDigitCount;
      return nullptr;
    case FieldType::kInteger: {
      std::string_view d = v[0] == '-' ? v.substr(1) : v;
      return AllDigits(d) ? nullptr : "not an integer";
    }
    case FieldType::kDecimal: {
      std::string_view d = v[0] == '-' ? v.substr(1) : v;
      size_t dot = d.find('.');
      if (dot == std::string_view::npos) return AllDigits(d) ? nullptr : "not a decimal number";
      if (!AllDigits(d.substr(0, dot)) || !AllDigits(d.substr(dot + 1))) return "not a decimal number";
      return nullptr;
    }
    case FieldType::kDate:
      return ValidDate(v) ? nullptr : "not a valid date YYYYMMDD";
    case FieldType::kDateTime:
      return ValidDateTime(v) ? nullptr : "not a valid date-time YYYYMMDDHHMMSS";
    case FieldType::kEnum:
      for (const std::string& e : f.values) if (v == e) return nullptr;
      return "not one of the allowed values";
  }
  return nullptr;
}

// Parses a non-negative count of at most 18 digits.
bool ParseCount(std::string_view s, int64_t* out) {
  if (!AllDigits(s) || s.size() > 18) return false;
  int64_t v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  *out = v;
  return true;
}

void AppendFieldJson(const FieldSpec& f, std::string_view v, std::string* out) {
  AppendJsonString(out, f.name);
  out->push_back(':');
  if (v.empty()) {
    out->append("null");
    return;
  }
  if (f.type == FieldType::kDate) {
    char b[16];
    std::memcpy(b, v.data(), 4); b[4] = '-'; std::memcpy(b + 5, v.data() + 4, 2); b[7] = '-';
    std::memcpy(b + 8, v.data() + 6, 2);
    AppendJsonString(out, std::string_view(b, 10));
  } else if (f.type == FieldType::kDateTime) {
    char b[24];
    std::memcpy(b, v.data(), 4); b[4] = '-'; std::memcpy(b + 5, v.data() + 4, 2); b[7] = '-';
    std::memcpy(b + 8, v.data() + 6, 2); b[10] = 'T'; std::memcpy(b + 11, v.data() + 8, 2); b[13] = ':';
    std::memcpy(b + 14, v.data() + 10, 2); b[16] = ':'; std::memcpy(b + 17, v.data() + 12, 2);
    AppendJsonString(out, std::string_view(b, 19));
  } else {
    AppendJsonString(out, v);
  }
}

}  // namespace

bool SplitDtnRecord(std::string_view line, std::vector<std::string_view>* out) {
  out->clear();
  if (line.empty() || line.back() != '|') return false;
  // Records are short ("103|A|1.966|"): one pass over the bytes beats a memchr per field.
  const char* p = line.data();
  const char* const end = p + line.size() - 1;  // the closing '|'
  const char* field = p;
  for (; p < end; ++p) {
    if (*p == '|') {
      out->emplace_back(field, static_cast<size_t>(p - field));
      field = p + 1;
    }
  }
  out->emplace_back(field, static_cast<size_t>(end - field));
  return true;
}

namespace {

bool SplitRecord(std::string_view line, std::vector<std::string_view>* out) { return SplitDtnRecord(line, out); }

class Run {
 public:
  Run(const FlowCatalogue& cat, const std::function<void(DtnUnit&&)>& on_unit,
      const std::function<void(const DtnUnitView&)>& on_view, const DtnDecodeHooks& hooks, DtnResult* r)
      : cat_(cat), on_unit_(on_unit), on_view_(on_view), hooks_(hooks), r_(r) {}

  void Go(std::string_view content);

 private:
  struct Level {
    int group = -1;
    int line = 0;
    std::string_view record;           // the whole line, for checks on close
    std::vector<int> child_counts;     // by group index
    int open_array = -1;               // child group whose JSON array is open
    std::string fragment;              // "k":v,... for ancestors of the event group
  };

  void Error(int line, std::string msg) {
    if (r_->errors.size() >= DtnDecoder::kMaxErrors) {
      r_->errors_truncated = true;
      return;
    }
    r_->errors.push_back(DtnError{line, std::move(msg)});
  }
  void FieldError(int line, std::string_view group, const std::string& field, const char* why, std::string_view v) {
    std::string m;
    m.reserve(64);
    m.append(group).append(" ").append(field).append(": ").append(why).append(" (").append(v).append(")");
    Error(line, std::move(m));
  }

  bool Header(int line, const std::vector<std::string_view>& f);
  void Trailer(int line, const std::vector<std::string_view>& f);
  void Record(int line, std::string_view text, const std::vector<std::string_view>& f);
  void Push(int g, int line, std::string_view text, const std::vector<std::string_view>& f);
  void PopTo(int depth);  // pops levels deeper than `depth` (-1 pops all)
  bool Emitting() const { return on_unit_ && r_->errors.empty(); }
  bool Viewing() const { return on_view_ && r_->errors.empty(); }

  const FlowCatalogue& cat_;
  const std::function<void(DtnUnit&&)>& on_unit_;
  const std::function<void(const DtnUnitView&)>& on_view_;
  const DtnDecodeHooks& hooks_;
  DtnUnitView view_;
  bool in_view_ = false;
  DtnResult* r_;
  const FlowSpec* flow_ = nullptr;
  std::vector<Level> levels_;
  int top_ = -1;                 // deepest open level
  std::vector<int> top_counts_;  // top-level group counts for the file
  int64_t top_level_total_ = 0;
  std::string payload_;
  DtnUnit unit_;
  bool in_unit_ = false;
  std::vector<std::string_view> scratch_;
};

bool Run::Header(int line, const std::vector<std::string_view>& f) {
  if (f.size() - 1 != kZhvFields) {
    Error(line, "ZHV: expected " + std::to_string(kZhvFields) + " fields, found " + std::to_string(f.size() - 1));
    return false;
  }
  DtnHeader& h = r_->header;
  h.file_id = std::string(f[1]);
  h.flow = std::string(f[2]);
  h.from_role = std::string(f[3]);
  h.from_mpid = std::string(f[4]);
  h.to_role = std::string(f[5]);
  h.to_mpid = std::string(f[6]);
  h.created = std::string(f[7]);
  h.sending_app = std::string(f[8]);
  h.receiving_app = std::string(f[9]);
  h.broadcast = std::string(f[10]);
  h.test_flag = std::string(f[11]);
  if (h.file_id.empty() || h.file_id.size() > 10) FieldError(line, "ZHV", "fileId", "must be 1 to 10 characters", f[1]);
  if (h.from_role.size() != 1) FieldError(line, "ZHV", "fromRole", "must be one role letter", f[3]);
  if (!IsUpperMpid(h.from_mpid)) FieldError(line, "ZHV", "fromMpid", "must be 4 upper-case letters", f[4]);
  if (h.to_role.size() != 1) FieldError(line, "ZHV", "toRole", "must be one role letter", f[5]);
  if (!IsUpperMpid(h.to_mpid)) FieldError(line, "ZHV", "toMpid", "must be 4 upper-case letters", f[6]);
  if (!ValidDateTime(h.created)) FieldError(line, "ZHV", "created", "not a valid date-time YYYYMMDDHHMMSS", f[7]);
  flow_ = cat_.Find(h.flow);
  if (flow_ == nullptr) {
    FieldError(line, "ZHV", "flow", "unknown flow and version (the catalogue has none such)", f[2]);
    return false;
  }
  r_->flow = flow_;
  int max_depth = 0;
  for (const GroupSpec& g : flow_->groups) max_depth = std::max(max_depth, g.depth);
  levels_.assign(max_depth + 1, Level());
  for (Level& l : levels_) l.child_counts.assign(flow_->groups.size(), 0);
  top_counts_.assign(flow_->groups.size(), 0);
  return true;
}

void Run::Trailer(int line, const std::vector<std::string_view>& f) {
  if (f.size() - 1 != kZptFields) {
    Error(line, "ZPT: expected " + std::to_string(kZptFields) + " fields, found " + std::to_string(f.size() - 1));
    return;
  }
  if (f[1] != r_->header.file_id) FieldError(line, "ZPT", "fileId", ("does not match the header's " + r_->header.file_id).c_str(), f[1]);
  int64_t n = -1;
  if (!ParseCount(f[2], &n) || n != r_->records) {
    FieldError(line, "ZPT", "groupCount", ("does not match the " + std::to_string(r_->records) + " records in the file").c_str(), f[2]);
  }
  n = -1;
  if (!ParseCount(f[4], &n) || n != top_level_total_) {
    FieldError(line, "ZPT", "flowCount", ("does not match the " + std::to_string(top_level_total_) + " top-level groups in the file").c_str(), f[4]);
  }
  if (!f[5].empty() && !ValidDateTime(f[5])) FieldError(line, "ZPT", "completed", "not a valid date-time YYYYMMDDHHMMSS", f[5]);
}

void Run::PopTo(int depth) {
  while (top_ > depth) {
    Level& l = levels_[top_];
    const GroupSpec& g = flow_->groups[l.group];
    for (int c : g.children) {
      const GroupSpec& cg = flow_->groups[c];
      int n = l.child_counts[c];
      if (!cg.periods_of.empty()) {
        // The parent's date field gives the expected count.
        SplitRecord(l.record, &scratch_);
        for (size_t i = 0; i < g.fields.size() && i + 1 < scratch_.size(); ++i) {
          if (g.fields[i].name != cg.periods_of || !ValidDate(scratch_[i + 1])) continue;
          std::string_view d = scratch_[i + 1];
          int want = SettlementPeriods(Num(d, 0, 4), Num(d, 4, 2), Num(d, 6, 2));
          if (n != want) {
            Error(l.line, g.code + " " + cg.periods_of + ": settlement day has " + std::to_string(want) +
                              " periods but " + std::to_string(n) + " " + cg.code + " records follow (" +
                              std::string(d) + ")");
          }
        }
      } else if (n < cg.min) {
        Error(l.line, g.code + ": needs at least " + std::to_string(cg.min) + " " + cg.code + " record(s) beneath it, found " + std::to_string(n));
      }
    }
    if (in_view_ && l.group == flow_->event_group) {
      in_view_ = false;
      if (Viewing()) on_view_(view_);
    }
    if (in_unit_ && g.depth >= flow_->groups[flow_->event_group].depth) {
      if (l.open_array != -1) payload_.push_back(']');
      payload_.push_back('}');
      if (l.group == flow_->event_group) {
        in_unit_ = false;
        if (Emitting()) {
          unit_.payload = std::move(payload_);
          on_unit_(std::move(unit_));
          payload_.clear();
        }
      }
    }
    std::fill(l.child_counts.begin(), l.child_counts.end(), 0);
    l.open_array = -1;
    --top_;
  }
}

void Run::Push(int gi, int line, std::string_view text, const std::vector<std::string_view>& f) {
  const GroupSpec& g = flow_->groups[gi];
  const int eg_depth = flow_->groups[flow_->event_group].depth;
  Level& l = levels_[g.depth];
  l.group = gi;
  l.line = line;
  l.record = text;
  top_ = g.depth;
  if (gi == flow_->event_group) ++r_->units;
  if (Viewing()) {
    if (gi == flow_->event_group) {
      view_.index = static_cast<int>(r_->units);
      view_.line = line;
      view_.ancestors.clear();
      for (int d = 0; d < g.depth; ++d) view_.ancestors.push_back(levels_[d].record);
      view_.records.clear();
      in_view_ = true;
    }
    if (in_view_ && g.depth >= eg_depth) view_.records.push_back(DtnUnitView::Record{gi, line, text});
  }
  if (!Emitting()) return;
  if (g.depth < eg_depth) {
    l.fragment.clear();
    for (size_t i = 0; i < g.fields.size(); ++i) {
      if (i) l.fragment.push_back(',');
      AppendFieldJson(g.fields[i], f[i + 1], &l.fragment);
    }
    return;
  }
  if (gi == flow_->event_group) {
    payload_.clear();
    payload_.push_back('{');
    for (int d = 0; d < g.depth; ++d) {
      payload_.append(levels_[d].fragment);
      payload_.push_back(',');
    }
    unit_ = DtnUnit();
    unit_.index = static_cast<int>(r_->units);
    unit_.line = line;
    in_unit_ = true;
  } else {
    if (!in_unit_) return;
    Level& parent = levels_[g.depth - 1];
    if (parent.open_array != gi) {
      if (parent.open_array != -1) payload_.push_back(']');
      payload_.push_back(',');
      AppendJsonString(&payload_, g.name);
      payload_.append(":[");
      parent.open_array = gi;
    } else {
      payload_.push_back(',');
    }
    payload_.push_back('{');
  }
  for (size_t i = 0; i < g.fields.size(); ++i) {
    if (i) payload_.push_back(',');
    AppendFieldJson(g.fields[i], f[i + 1], &payload_);
  }
}

void Run::Record(int line, std::string_view text, const std::vector<std::string_view>& f) {
  ++r_->records;
  int gi = flow_->FindGroup(f[0]);
  if (gi < 0) {
    Error(line, std::string(f[0]) + ": not a group of flow " + flow_->id);
    return;
  }
  const GroupSpec& g = flow_->groups[gi];
  if (f.size() - 1 != g.fields.size()) {
    Error(line, g.code + ": expected " + std::to_string(g.fields.size()) + " fields, found " + std::to_string(f.size() - 1));
    return;
  }
  for (size_t i = 0; i < g.fields.size(); ++i) {
    const char* why = CheckField(g.fields[i], f[i + 1]);
    if (why == nullptr) continue;
    const FieldSpec& spec = g.fields[i];
    std::string reason = why == kTooLong    ? "longer than " + std::to_string(spec.length) + " characters"
                         : why == kDigitCount ? "expected exactly " + std::to_string(spec.length) + " digits"
                                              : std::string(why);
    if (spec.type == FieldType::kEnum && why != kTooLong) {
      reason += " (";
      for (size_t k = 0; k < spec.values.size(); ++k) reason += (k ? " " : "") + spec.values[k];
      reason += ")";
    }
    FieldError(line, g.code, spec.name, reason.c_str(), f[i + 1]);
  }
  if (g.parent < 0) {
    PopTo(-1);
    ++top_counts_[gi];
    ++top_level_total_;
    if (g.max >= 0 && top_counts_[gi] > g.max) Error(line, g.code + ": more than " + std::to_string(g.max) + " in one file");
  } else {
    int pd = g.depth - 1;
    if (top_ < pd || levels_[pd].group != g.parent) {
      std::string after = top_ >= 0 ? flow_->groups[levels_[top_].group].code : std::string("ZHV");
      Error(line, g.code + ": must follow a " + flow_->groups[g.parent].code + " record (found after " + after + ")");
      return;
    }
    PopTo(pd);
    int n = ++levels_[pd].child_counts[gi];
    if (g.max >= 0 && n > g.max && g.periods_of.empty()) {
      Error(line, g.code + ": more than " + std::to_string(g.max) + " beneath one " + flow_->groups[g.parent].code);
    }
  }
  Push(gi, line, text, f);
}

void Run::Go(std::string_view content) {
  if (content.size() >= 3 && std::memcmp(content.data(), "\xEF\xBB\xBF", 3) == 0) content.remove_prefix(3);
  if (content.empty()) {
    Error(0, "empty file");
    return;
  }
  // NUL bytes are looked for line by line below, not in a pass of their own, so that a large
  // mapped file is read once, front to back, and its pages can be released behind the decoder.
  std::vector<std::string_view> fields;
  fields.reserve(16);
  size_t pos = 0;
  int line = 0;
  bool have_header = false, have_trailer = false;
  constexpr size_t kProgressEvery = 16 << 20;
  size_t next_progress = kProgressEvery;
  while (pos < content.size()) {
    if (pos >= next_progress && hooks_.progress) {
      hooks_.progress(pos);
      next_progress = pos + kProgressEvery;
    }
    size_t nl = content.find('\n', pos);
    std::string_view text = content.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? content.size() : nl + 1;
    ++line;
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (text.empty()) {
      if (pos >= content.size()) break;  // final newline
      Error(line, "empty line");
      continue;
    }
    auto bad = std::find_if(text.begin(), text.end(), [](char c) {
      return static_cast<unsigned char>(c) >= 0x80 || (static_cast<unsigned char>(c) < 0x20 && c != '\t');
    });
    if (bad != text.end() && *bad == '\0') {
      Error(line, "binary file (contains NUL bytes); a DTN file is text");
      return;
    }
    if (bad != text.end()) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(*bad));
      Error(line, std::string("non-ASCII or control byte ") + hex + " at column " + std::to_string(bad - text.begin() + 1));
      continue;
    }
    if (have_trailer) {
      Error(line, "record after the ZPT trailer");
      break;
    }
    if (!SplitRecord(text, &fields)) {
      Error(line, std::string(text.substr(0, 3)) + ": record must end with '|'");
      if (!have_header) return;
      continue;
    }
    if (!have_header) {
      if (fields[0] != "ZHV") {
        Error(line, "file must start with a ZHV header record (found " + std::string(fields[0]) + ")");
        return;
      }
      if (!Header(line, fields)) return;
      have_header = true;
      continue;
    }
    if (fields[0] == "ZHV") {
      Error(line, "ZHV: a second header record");
      continue;
    }
    if (fields[0] == "ZPT") {
      PopTo(-1);
      have_trailer = true;
      Trailer(line, fields);
      continue;
    }
    Record(line, text, fields);
  }
  if (!have_header) {
    Error(0, "no ZHV header record");
    return;
  }
  if (!have_trailer) {
    PopTo(-1);
    Error(line, "missing ZPT trailer record: the file is incomplete");
  }
  for (size_t gi = 0; gi < flow_->groups.size(); ++gi) {
    const GroupSpec& g = flow_->groups[gi];
    if (g.parent < 0 && top_counts_[gi] < g.min) {
      Error(0, g.code + ": the file needs at least " + std::to_string(g.min) + ", found " + std::to_string(top_counts_[gi]));
    }
  }
}

}  // namespace

DtnResult DtnDecoder::Decode(std::string_view content, const std::function<void(DtnUnit&&)>& on_unit,
                             const DtnDecodeHooks& hooks) const {
  DtnResult result;
  std::function<void(const DtnUnitView&)> none;
  Run run(*catalogue_, on_unit, none, hooks, &result);
  run.Go(content);
  return result;
}

DtnResult DtnDecoder::DecodeViews(std::string_view content, const std::function<void(const DtnUnitView&)>& on_view,
                                  const DtnDecodeHooks& hooks) const {
  DtnResult result;
  std::function<void(DtnUnit&&)> none;
  Run run(*catalogue_, none, on_view, hooks, &result);
  run.Go(content);
  return result;
}

bool PeekDtnHeader(std::string_view content, DtnHeader* header) {
  if (content.size() >= 3 && std::memcmp(content.data(), "\xEF\xBB\xBF", 3) == 0) content.remove_prefix(3);
  std::string_view line = content.substr(0, content.find('\n'));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::vector<std::string_view> f;
  if (!SplitRecord(line, &f) || f[0] != "ZHV" || f.size() != kZhvFields + 1) return false;
  header->file_id = std::string(f[1]);
  header->flow = std::string(f[2]);
  header->from_role = std::string(f[3]);
  header->from_mpid = std::string(f[4]);
  header->to_role = std::string(f[5]);
  header->to_mpid = std::string(f[6]);
  header->created = std::string(f[7]);
  header->sending_app = std::string(f[8]);
  header->receiving_app = std::string(f[9]);
  header->broadcast = std::string(f[10]);
  header->test_flag = std::string(f[11]);
  return true;
}

std::string FormatDtnErrors(const std::string& file, const DtnResult& result) {
  std::string out;
  for (const DtnError& e : result.errors) {
    out += file + ":" + std::to_string(e.line) + ": " + e.message + "\n";
  }
  if (result.errors_truncated) {
    out += file + ": more errors were found; only the first " + std::to_string(DtnDecoder::kMaxErrors) + " are listed\n";
  }
  return out;
}

}  // namespace gw::adapters
