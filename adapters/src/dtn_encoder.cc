#include "gw/adapters/dtn_encoder.h"

#include <Poco/JSON/Parser.h>

#include "gw/adapters/if021.h"

namespace gw::adapters {
namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;

Status Bad(const Event& e, const std::string& what) {
  return InvalidArgument("event " + e.id + ": " + what);
}

StatusOr<Object::Ptr> ParsePayload(const Event& e) {
  try {
    Poco::JSON::Parser parser;
    Poco::Dynamic::Var v = parser.parse(e.payload);
    Object::Ptr o = v.extract<Object::Ptr>();
    if (!o) return Bad(e, "payload is not a JSON object");
    return o;
  } catch (const Poco::Exception& x) {
    return Bad(e, "payload is not valid JSON: " + x.displayText());
  } catch (const std::exception& x) {
    return Bad(e, std::string("payload is not a JSON object: ") + x.what());
  }
}

// The DTN text of one field from its JSON value (string or null).
Status FieldText(const Event& e, const Object& o, const FieldSpec& f, const std::string& group, std::string* out) {
  out->clear();
  if (!o.has(f.name) || o.isNull(f.name)) {
    if (f.mandatory) return Bad(e, group + " " + f.name + ": missing");
    return Status::Ok();
  }
  std::string v;
  try {
    v = o.get(f.name).convert<std::string>();
  } catch (const Poco::Exception&) {
    return Bad(e, group + " " + f.name + ": not a string");
  }
  if (f.type == FieldType::kDate) {
    if (v.size() != 10 || v[4] != '-' || v[7] != '-') return Bad(e, group + " " + f.name + ": expected YYYY-MM-DD (" + v + ")");
    *out = v.substr(0, 4) + v.substr(5, 2) + v.substr(8, 2);
  } else if (f.type == FieldType::kDateTime) {
    if (v.size() != 19 || v[10] != 'T') return Bad(e, group + " " + f.name + ": expected YYYY-MM-DDThh:mm:ss (" + v + ")");
    *out = v.substr(0, 4) + v.substr(5, 2) + v.substr(8, 2) + v.substr(11, 2) + v.substr(14, 2) + v.substr(17, 2);
  } else {
    if (v.find_first_of("|\r\n") != std::string::npos) return Bad(e, group + " " + f.name + ": '|' or a line break cannot be carried");
    *out = v;
  }
  return Status::Ok();
}

Status RecordOf(const Event& e, const Object& o, const GroupSpec& g, std::string* record) {
  *record = g.code + "|";
  std::string v;
  for (const FieldSpec& f : g.fields) {
    GW_RETURN_IF_ERROR(FieldText(e, o, f, g.code, &v));
    record->append(v).push_back('|');
  }
  return Status::Ok();
}

}  // namespace

std::string DtnFlowOf(const Event& e) {
  if (e.type == "IF-021") return kD0036Flow;
  if (e.type.size() == 8 && e.type[0] == 'D') return e.type;
  return "";
}

DtnFileHeader DtnHeaderFor(const Event& e) {
  DtnFileHeader h;
  h.flow = DtnFlowOf(e);
  h.from_mpid = e.sender.mpid;
  // IF-021 comes from a data service; in DTN terms that is the HH data collector.
  h.from_role = e.type == "IF-021" ? "C" : e.sender.role;
  if (!e.recipients.empty()) {
    h.to_mpid = e.recipients.front().mpid;
    h.to_role = e.recipients.front().role;
  }
  std::string digits;
  for (char c : e.created_at.substr(0, 19)) if (c >= '0' && c <= '9') digits.push_back(c);
  h.created = digits.size() == 14 ? digits : "19700101000000";
  std::string prefix = e.sender.mpid + "-";
  if (e.correlation_id.rfind(prefix, 0) == 0 && e.correlation_id.size() > prefix.size() &&
      e.correlation_id.size() - prefix.size() <= 10) {
    h.file_id = e.correlation_id.substr(prefix.size());
  }
  return h;
}

DtnFileWriter::DtnFileWriter(std::shared_ptr<const FlowCatalogue> catalogue, DtnFileHeader header)
    : catalogue_(std::move(catalogue)), header_(std::move(header)) {
  flow_ = catalogue_->Find(header_.flow);
}

void DtnFileWriter::Emit(int depth, bool top_level, std::string record) {
  if (depth >= 0) {
    if (static_cast<int>(open_.size()) > depth && open_[depth] == record) return;
    open_.resize(depth + 1);
    open_[depth] = record;
  }
  if (top_level) ++top_level_;
  records_.push_back(std::move(record));
}

Status DtnFileWriter::Add(const Event& e) {
  if (flow_ == nullptr) return Bad(e, "no flow " + header_.flow + " in the catalogue");
  if (DtnFlowOf(e) != header_.flow) return Bad(e, "type " + e.type + " does not belong in a " + header_.flow + " file");
  Status s = e.type == "IF-021" ? AddIf021(e) : AddGeneric(e);
  if (s.ok()) ++events_;
  return s;
}

Status DtnFileWriter::AddGeneric(const Event& e) {
  auto parsed = ParsePayload(e);
  if (!parsed.ok()) return parsed.status();
  const Object& root = **parsed;
  const GroupSpec& eg = flow_->groups[flow_->event_group];
  // The enclosing groups' fields sit flat in the event object, outermost first.
  std::vector<int> chain;
  for (int g = eg.parent; g >= 0; g = flow_->groups[g].parent) chain.insert(chain.begin(), g);
  std::string rec;
  for (size_t d = 0; d < chain.size(); ++d) {
    GW_RETURN_IF_ERROR(RecordOf(e, root, flow_->groups[chain[d]], &rec));
    Emit(static_cast<int>(d), d == 0, rec);
  }
  // The event group and its descendants, depth first.
  std::function<Status(const Object&, int)> walk = [&](const Object& o, int gi) -> Status {
    const GroupSpec& g = flow_->groups[gi];
    std::string r;
    GW_RETURN_IF_ERROR(RecordOf(e, o, g, &r));
    if (gi == flow_->event_group) {
      open_.resize(chain.size());  // a new event group closes nothing above it
      if (chain.empty()) ++top_level_;
      records_.push_back(std::move(r));
    } else {
      records_.push_back(std::move(r));
    }
    for (int c : g.children) {
      const GroupSpec& cg = flow_->groups[c];
      if (!o.has(cg.name) || o.isNull(cg.name)) {
        if (cg.min > 0) return Bad(e, cg.name + ": missing (group " + cg.code + ")");
        continue;
      }
      Array::Ptr arr = o.getArray(cg.name);
      if (!arr) return Bad(e, cg.name + ": not an array");
      for (size_t i = 0; i < arr->size(); ++i) {
        Object::Ptr child = arr->getObject(static_cast<unsigned>(i));
        if (!child) return Bad(e, cg.name + "[" + std::to_string(i) + "]: not an object");
        GW_RETURN_IF_ERROR(walk(*child, c));
      }
    }
    return Status::Ok();
  };
  return walk(root, flow_->event_group);
}

Status DtnFileWriter::AddIf021(const Event& e) {
  auto parsed = ParsePayload(e);
  if (!parsed.ok()) return parsed.status();
  try {
    Object::Ptr cb = (*parsed)->getObject("CommonBlock");
    Object::Ptr custom = (*parsed)->getObject("CustomBlock");
    if (!cb || !custom) return Bad(e, "IF-021 payload needs CommonBlock and CustomBlock");
    Object::Ptr m0 = cb->getObject("M0");
    Object::Ptr b900 = custom->getObject("B900");
    if (!m0 || !b900) return Bad(e, "IF-021 payload needs CommonBlock.M0 and CustomBlock.B900");
    std::string mpan = m0->getValue<std::string>("MPANCore");
    Object::Ptr mq = b900->getObject("MQID");
    if (!mq) return Bad(e, "CustomBlock.B900.MQID: missing");
    std::string mqid = mq->getValue<std::string>("measurementQuantityID");
    // 101: the supplier is the file's recipient (the participant receiving the data).
    Emit(0, true, "101|" + mpan + "|" + mqid + "|" + header_.to_mpid + "|");
    Array::Ptr days = b900->getArray("settlementDayConsumptionPeriods");
    if (!days) return Bad(e, "CustomBlock.B900.settlementDayConsumptionPeriods: missing");
    std::string last_day;
    for (size_t i = 0; i < days->size(); ++i) {
      Object::Ptr day = days->getObject(static_cast<unsigned>(i));
      if (!day) return Bad(e, "settlementDayConsumptionPeriods[" + std::to_string(i) + "]: not an object");
      std::string date = day->getObject("settlementDay")->getValue<std::string>("settlementDayDate");
      if (date.size() < 10) return Bad(e, "settlementDayDate: expected a date-time (" + date + ")");
      std::string d8 = date.substr(0, 4) + date.substr(5, 2) + date.substr(8, 2);
      // A day split over several entries (50 periods) is one 102 group.
      if (d8 != last_day) records_.push_back("102|" + d8 + "|");
      last_day = d8;
      Array::Ptr periods = day->getArray("consumptionPeriods");
      if (!periods) return Bad(e, "consumptionPeriods: missing");
      for (size_t k = 0; k < periods->size(); ++k) {
        Object::Ptr p = periods->getObject(static_cast<unsigned>(k));
        std::string q = p->getValue<std::string>("q");
        std::string v = p->getValue<std::string>("v");
        // D0036 knows only actual (A) and estimated (E).
        records_.push_back("103|" + std::string(q.rfind("A", 0) == 0 ? "A" : "E") + "|" + v + "|");
      }
    }
  } catch (const Poco::Exception& x) {
    return Bad(e, "IF-021 payload: " + x.displayText());
  } catch (const std::exception& x) {
    return Bad(e, std::string("IF-021 payload: ") + x.what());
  }
  return Status::Ok();
}

std::string DtnFileWriter::Finish() const {
  std::string out;
  size_t bytes = 128;
  for (const std::string& r : records_) bytes += r.size() + 1;
  out.reserve(bytes);
  out += "ZHV|" + header_.file_id + "|" + header_.flow + "|" + header_.from_role + "|" + header_.from_mpid + "|" +
         header_.to_role + "|" + header_.to_mpid + "|" + header_.created + "||||" + header_.test_flag + "|\n";
  for (const std::string& r : records_) {
    out += r;
    out.push_back('\n');
  }
  out += "ZPT|" + header_.file_id + "|" + std::to_string(records_.size()) + "||" + std::to_string(top_level_) + "|" +
         header_.created + "|\n";
  return out;
}

}  // namespace gw::adapters
