// The flow catalogue: DTN flow layouts as data (config/flows/*.flow), so that a corrected or
// added layout is a data change, not a code change.
//
// A flow has groups in a hierarchy (parent, cardinality per parent) and each group has typed
// fields. The decoder (dtn_decoder.h) validates files against these definitions and builds
// events; the encoder writes files back from events.
// Thread-safety: immutable after loading; share freely.
#ifndef GW_ADAPTERS_FLOW_CATALOGUE_H_
#define GW_ADAPTERS_FLOW_CATALOGUE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mhhs/status.h"

namespace gw::adapters {

enum class FieldType { kText, kDigits, kInteger, kDecimal, kDate, kDateTime, kEnum };

struct FieldSpec {
  std::string name;  // JSON key
  FieldType type = FieldType::kText;
  int length = 0;    // max characters (exact for kDigits); fixed for dates
  bool mandatory = false;
  std::vector<std::string> values;  // kEnum
};

struct GroupSpec {
  std::string code;    // "026"
  std::string name;    // JSON key: the object for the event group, the array for children
  int parent = -1;     // index into FlowSpec::groups, -1 for top level
  int depth = 0;       // 0 for top level
  int min = 0;         // per parent instance (per file for top level)
  int max = -1;        // -1 for unbounded
  // When set, the number of instances under one parent must equal the settlement periods of
  // the UK day in this date field of the parent (46, 48 or 50).
  std::string periods_of;
  std::vector<FieldSpec> fields;
  std::vector<int> children;  // indexes of the groups whose parent this is
};

struct FlowSpec {
  std::string id;    // "D0010002"
  std::string name;
  int event_group = -1;
  std::vector<GroupSpec> groups;

  // The index of group `code`, or -1.
  int FindGroup(std::string_view code) const;
};

class FlowCatalogue {
 public:
  // Loads every *.flow file in `dir`. Errors name the file, line and key.
  static StatusOr<std::shared_ptr<const FlowCatalogue>> LoadDirectory(const std::string& dir);
  // Parses one flow definition from text; `file` is used in messages.
  static StatusOr<FlowSpec> ParseFlow(const std::string& text, const std::string& file);

  // The flow with id `id` ("D0010002"), or nullptr.
  const FlowSpec* Find(std::string_view id) const;
  std::vector<std::string> Ids() const;
  void Add(FlowSpec spec);

 private:
  std::map<std::string, FlowSpec, std::less<>> flows_;
};

// Where the catalogue is looked for when `[gateway] flow_dir` is not set: the installed
// share directory, else config/flows beside the source tree (development builds).
std::string DefaultFlowDir();

}  // namespace gw::adapters

#endif  // GW_ADAPTERS_FLOW_CATALOGUE_H_
