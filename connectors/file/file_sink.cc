#include "connectors/file/file_sink.h"

#include <unistd.h>

#include <cstdio>
#include <map>

#include "gw/adapters/dtn_encoder.h"
#include "gw/fs.h"

namespace gw::connectors::file {
namespace {

std::string Expand(const std::string& tmpl, const adapters::DtnFileHeader& h) {
  std::string out;
  for (size_t i = 0; i < tmpl.size();) {
    if (tmpl[i] != '{') {
      out.push_back(tmpl[i++]);
      continue;
    }
    size_t close = tmpl.find('}', i);
    std::string key = tmpl.substr(i + 1, close - i - 1);
    if (key == "flow") out += h.flow;
    else if (key == "from_mpid") out += h.from_mpid;
    else if (key == "to_mpid") out += h.to_mpid;
    else if (key == "from_role") out += h.from_role;
    else if (key == "to_role") out += h.to_role;
    else if (key == "file_id") out += h.file_id;
    i = close + 1;
  }
  return out;
}

}  // namespace

StatusOr<std::unique_ptr<Sink>> FileSink::Create(const ConnectorContext& ctx) {
  const ConfigSection& c = ctx.config;
  FileSinkOptions o;
  auto dir = c.GetRequired("directory");
  if (!dir.ok()) return dir.status();
  o.directory = *dir;
  o.name_template = c.GetString("name", o.name_template);
  for (size_t i = o.name_template.find('{'); i != std::string::npos; i = o.name_template.find('{', i + 1)) {
    size_t close = o.name_template.find('}', i);
    if (close == std::string::npos) return c.Error("name", "unclosed '{'");
    std::string key = o.name_template.substr(i + 1, close - i - 1);
    if (key != "flow" && key != "from_mpid" && key != "to_mpid" && key != "from_role" && key != "to_role" && key != "file_id") {
      return c.Error("name", "unknown placeholder {" + key + "} (flow, from_mpid, to_mpid, from_role, to_role, file_id)");
    }
  }
  if (o.name_template.find("{file_id}") == std::string::npos) return c.Error("name", "must contain {file_id} so names never repeat");
  if (o.name_template.find('/') != std::string::npos) return c.Error("name", "must be a file name, not a path");
  auto max = c.GetInt("max_records", 100000, 1, int64_t{1} << 40);
  if (!max.ok()) return max.status();
  o.max_records = *max;
  auto age = c.GetInt("max_age_s", 0, 0, 86400 * 7);
  if (!age.ok()) return age.status();
  o.max_age_s = *age;
  o.test_flag = c.GetString("test_flag", "OPER");
  std::string flow_dir = ctx.gateway.flow_dir.empty() ? adapters::DefaultFlowDir() : ctx.gateway.flow_dir;
  auto cat = adapters::FlowCatalogue::LoadDirectory(flow_dir);
  if (!cat.ok()) return cat.status();
  return std::unique_ptr<Sink>(new FileSink(ctx.name, std::move(o), std::move(cat.value()), ctx.logger));
}

FileSink::FileSink(std::string name, FileSinkOptions options, std::shared_ptr<const adapters::FlowCatalogue> catalogue,
                   Logger& logger)
    : name_(std::move(name)), options_(std::move(options)), catalogue_(std::move(catalogue)), logger_(logger) {}

DeliveryHints FileSink::Hints() const {
  DeliveryHints h;
  if (options_.max_age_s > 0) {
    h.max_batch = static_cast<int>(std::min<int64_t>(options_.max_records, 1000000));
    h.linger = std::chrono::seconds(options_.max_age_s);
  }
  return h;
}

Status FileSink::Start() {
  Status s = MakeDirs(options_.directory);
  if (!s.ok()) return FailedPrecondition(s.message());
  if (::access(options_.directory.c_str(), W_OK) != 0) return FailedPrecondition(options_.directory + ": not writable by the gateway");
  auto seq = ReadFile(options_.directory + "/." + name_ + ".file-id");
  if (seq.ok() && !seq->empty()) next_id_ = std::strtoll(seq->c_str(), nullptr, 10);
  writable_ = true;
  return Status::Ok();
}

StatusOr<std::string> FileSink::NextFileId() {
  int64_t id = next_id_;
  GW_RETURN_IF_ERROR(WriteFileAtomic(options_.directory + "/." + name_ + ".file-id", std::to_string(id + 1) + "\n"));
  next_id_ = id + 1;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%010lld", static_cast<long long>(id % 10000000000LL));
  return std::string(buf);
}

std::vector<Status> FileSink::Deliver(const std::vector<const Event*>& events) {
  std::vector<Status> results(events.size());
  // Groups in first-seen order: flow, sender, recipient.
  std::vector<std::pair<std::string, std::vector<size_t>>> groups;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < events.size(); ++i) {
    const Event& e = *events[i];
    adapters::DtnFileHeader h = adapters::DtnHeaderFor(e);
    if (h.flow.empty()) {
      results[i] = InvalidArgument("event type " + e.type + " has no DTN form for a file sink");
      continue;
    }
    std::string key = h.flow + "|" + h.from_mpid + "|" + h.from_role + "|" + h.to_mpid + "|" + h.to_role;
    auto it = index.find(key);
    if (it == index.end()) {
      index[key] = groups.size();
      groups.emplace_back(key, std::vector<size_t>{i});
    } else {
      groups[it->second].second.push_back(i);
    }
  }
  for (const auto& [key, members] : groups) {
    size_t next = 0;
    while (next < members.size()) {
      adapters::DtnFileHeader h = adapters::DtnHeaderFor(*events[members[next]]);
      h.test_flag = options_.test_flag;
      auto id = NextFileId();
      if (!id.ok()) {
        for (size_t k = next; k < members.size(); ++k) results[members[k]] = id.status();
        writable_ = false;
        break;
      }
      h.file_id = *id;
      adapters::DtnFileWriter w(catalogue_, h);
      std::vector<size_t> in_file;
      for (; next < members.size(); ++next) {
        if (!in_file.empty() && static_cast<int64_t>(w.records()) >= options_.max_records) break;
        size_t i = members[next];
        Status s = w.Add(*events[i]);
        if (!s.ok()) {
          results[i] = s;  // this event only: dead letter
          continue;
        }
        in_file.push_back(i);
      }
      if (in_file.empty()) continue;
      std::string path = options_.directory + "/" + Expand(options_.name_template, h);
      Status s = WriteFileAtomic(path, w.Finish());
      writable_ = s.ok();
      for (size_t i : in_file) results[i] = s.ok() ? Status::Ok() : Unavailable(s.message());
      if (s.ok()) logger_.Info("wrote " + path + ": " + std::to_string(in_file.size()) + " event(s), " + std::to_string(w.records()) + " records");
      else logger_.Error("cannot write " + path + ": " + s.message());
    }
  }
  return results;
}

}  // namespace gw::connectors::file
