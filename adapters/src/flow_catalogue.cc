#include "gw/adapters/flow_catalogue.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "gw/config.h"

namespace gw::adapters {
namespace {

std::vector<std::string> Words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

StatusOr<FieldSpec> ParseField(const ConfigSection& sec, const ConfigSection::Entry& e) {
  auto err = [&](const std::string& what) {
    return InvalidArgument(sec.file() + ":" + std::to_string(e.line) + ": [" + sec.name() + "] field: " + what);
  };
  std::vector<std::string> w = Words(e.value);
  if (w.size() < 3) return err("expected 'name TYPE [LEN] M|O [values...]' (got \"" + e.value + "\")");
  FieldSpec f;
  f.name = w[0];
  const std::string& t = w[1];
  size_t next = 2;
  auto take_len = [&]() -> Status {
    if (next >= w.size()) return err("type " + t + " needs a length");
    char* end = nullptr;
    long n = std::strtol(w[next].c_str(), &end, 10);
    if (*end != '\0' || n <= 0 || n > 1000) return err("bad length \"" + w[next] + "\"");
    f.length = static_cast<int>(n);
    ++next;
    return Status::Ok();
  };
  if (t == "text") { f.type = FieldType::kText; GW_RETURN_IF_ERROR(take_len()); }
  else if (t == "digits") { f.type = FieldType::kDigits; GW_RETURN_IF_ERROR(take_len()); }
  else if (t == "integer") { f.type = FieldType::kInteger; GW_RETURN_IF_ERROR(take_len()); }
  else if (t == "decimal") { f.type = FieldType::kDecimal; GW_RETURN_IF_ERROR(take_len()); }
  else if (t == "enum") { f.type = FieldType::kEnum; GW_RETURN_IF_ERROR(take_len()); }
  else if (t == "date") { f.type = FieldType::kDate; f.length = 8; }
  else if (t == "datetime") { f.type = FieldType::kDateTime; f.length = 14; }
  else return err("unknown type \"" + t + "\" (text, digits, integer, decimal, date, datetime, enum)");
  if (next >= w.size() || (w[next] != "M" && w[next] != "O")) return err("expected M or O after the type");
  f.mandatory = w[next] == "M";
  ++next;
  for (; next < w.size(); ++next) f.values.push_back(w[next]);
  if (f.type == FieldType::kEnum && f.values.empty()) return err("enum needs its values");
  if (f.type != FieldType::kEnum && !f.values.empty()) return err("only enum fields take values");
  for (const std::string& v : f.values) {
    if (static_cast<int>(v.size()) > f.length) return err("enum value \"" + v + "\" longer than its length");
  }
  return f;
}

}  // namespace

int FlowSpec::FindGroup(std::string_view code) const {
  for (size_t i = 0; i < groups.size(); ++i) {
    if (groups[i].code == code) return static_cast<int>(i);
  }
  return -1;
}

StatusOr<FlowSpec> FlowCatalogue::ParseFlow(const std::string& text, const std::string& file) {
  auto sections = ParseIni(text, file);
  if (!sections.ok()) return sections.status();
  FlowSpec spec;
  std::string event_group;
  std::vector<std::pair<std::string, const ConfigSection*>> parents;
  for (const ConfigSection& sec : *sections) {
    if (sec.name() == "flow") {
      auto id = sec.GetRequired("id");
      if (!id.ok()) return id.status();
      if (id->size() != 8) return sec.Error("id", "must be flow + version, 8 characters (got \"" + *id + "\")");
      spec.id = *id;
      spec.name = sec.GetString("name", "");
      auto eg = sec.GetRequired("event_group");
      if (!eg.ok()) return eg.status();
      event_group = *eg;
      GW_RETURN_IF_ERROR(sec.CheckAllUsed());
    } else if (sec.name().rfind("group.", 0) == 0) {
      GroupSpec g;
      g.code = sec.name().substr(6);
      if (g.code.size() != 3) return InvalidArgument(sec.Where("") + ": group codes have 3 characters");
      auto name = sec.GetRequired("name");
      if (!name.ok()) return name.status();
      g.name = *name;
      auto min = sec.GetInt("min", 0, 0, 1000000);
      if (!min.ok()) return min.status();
      g.min = static_cast<int>(*min);
      std::string max = sec.GetString("max", "*");
      if (max == "*") {
        g.max = -1;
      } else {
        auto m = sec.GetInt("max", 0, 1, 1000000);
        if (!m.ok()) return m.status();
        g.max = static_cast<int>(*m);
        if (g.max < g.min) return sec.Error("max", "is below min");
      }
      g.periods_of = sec.GetString("periods_of", "");
      for (const ConfigSection::Entry& e : sec.entries()) {
        if (e.key != "field") continue;
        e.used = true;
        auto f = ParseField(sec, e);
        if (!f.ok()) return f.status();
        g.fields.push_back(std::move(*f));
      }
      if (g.fields.empty()) return InvalidArgument(sec.Where("") + ": a group needs at least one field");
      parents.emplace_back(sec.GetString("parent", ""), &sec);
      GW_RETURN_IF_ERROR(sec.CheckAllUsed());
      if (spec.FindGroup(g.code) >= 0) return InvalidArgument(sec.Where("") + ": group defined twice");
      spec.groups.push_back(std::move(g));
    } else {
      return InvalidArgument(sec.Where("") + ": unknown section (expected [flow] or [group.CODE])");
    }
  }
  if (spec.id.empty()) return InvalidArgument(file + ": missing [flow] section");
  if (spec.groups.empty()) return InvalidArgument(file + ": no [group.CODE] sections");
  for (size_t i = 0; i < spec.groups.size(); ++i) {
    const std::string& p = parents[i].first;
    if (p.empty()) continue;
    int pi = spec.FindGroup(p);
    if (pi < 0) return parents[i].second->Error("parent", "no group " + p);
    if (pi >= static_cast<int>(i)) return parents[i].second->Error("parent", "a parent must be defined before its children");
    spec.groups[i].parent = pi;
    spec.groups[i].depth = spec.groups[pi].depth + 1;
    spec.groups[pi].children.push_back(static_cast<int>(i));
  }
  for (size_t i = 0; i < spec.groups.size(); ++i) {
    const GroupSpec& g = spec.groups[i];
    if (g.periods_of.empty()) continue;
    bool found = false;
    if (g.parent >= 0) {
      for (const FieldSpec& f : spec.groups[g.parent].fields) {
        found |= f.name == g.periods_of && f.type == FieldType::kDate;
      }
    }
    if (!found) return parents[i].second->Error("periods_of", "must name a date field of the parent group");
  }
  spec.event_group = spec.FindGroup(event_group);
  if (spec.event_group < 0) return InvalidArgument(file + ": [flow] event_group: no group " + event_group);
  return spec;
}

StatusOr<std::shared_ptr<const FlowCatalogue>> FlowCatalogue::LoadDirectory(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return NotFound(dir + ": cannot open flow catalogue directory");
  std::vector<std::string> names;
  while (dirent* ent = readdir(d)) {
    std::string n = ent->d_name;
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".flow") == 0) names.push_back(n);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  auto cat = std::make_shared<FlowCatalogue>();
  for (const std::string& n : names) {
    std::string path = dir + "/" + n;
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    auto spec = ParseFlow(ss.str(), path);
    if (!spec.ok()) return spec.status();
    if (cat->Find(spec->id)) return InvalidArgument(path + ": flow " + spec->id + " is defined twice");
    cat->Add(std::move(*spec));
  }
  if (names.empty()) return NotFound(dir + ": no *.flow files in the flow catalogue directory");
  return std::shared_ptr<const FlowCatalogue>(std::move(cat));
}

const FlowSpec* FlowCatalogue::Find(std::string_view id) const {
  auto it = flows_.find(id);
  return it == flows_.end() ? nullptr : &it->second;
}

std::vector<std::string> FlowCatalogue::Ids() const {
  std::vector<std::string> out;
  for (const auto& kv : flows_) out.push_back(kv.first);
  return out;
}

void FlowCatalogue::Add(FlowSpec spec) { std::string id = spec.id; flows_.emplace(id, std::move(spec)); }

std::string DefaultFlowDir() {
  // A build from the source tree prefers the tree's own catalogue (GW_FLOW_DIR_SOURCE is empty
  // in packaged builds), so a development binary never reads an older installed copy.
  struct stat st;
  const char* source = GW_FLOW_DIR_SOURCE;
  if (source[0] != '\0' && ::stat(source, &st) == 0) return source;
  return GW_FLOW_DIR_INSTALLED;
}

}  // namespace gw::adapters
