// Golden files: each tests/data/golden/NAME.uff is decoded (D0036 mapped to IF-021) and the
// result compared with NAME.expected: the error lines of an invalid file, or the envelopes of
// a valid one, exactly as mhhs-gatewayctl check-file / convert print them.
// GW_UPDATE_GOLDEN=1 rewrites the .expected files (review the diff before committing).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "gw/adapters/dtn_events.h"
#include "tests/support/test_support.h"

namespace gw::adapters {
namespace {

namespace fs = std::filesystem;

std::string GoldenDir() { return gw::testing::SourceDir() + "/tests/data/golden"; }

std::string Render(const std::string& name, const std::string& content) {
  static auto cat = *FlowCatalogue::LoadDirectory(gw::testing::SourceDir() + "/config/flows");
  DtnDecoder decoder(cat);
  GatewayInfo g;
  g.environment = "SIT";
  g.dip_id = "1009012345";
  g.dip.role = "SDS";
  g.dip.default_distributor_dip_id = "2509012345";
  DtnEventOptions opts;
  opts.gateway = &g;
  std::vector<Event> events;
  DtnResult r = DecodeDtnToEvents(decoder, content, "inbox:" + name, opts, &events);
  if (!r.ok()) return FormatDtnErrors(name, r);
  std::string out;
  for (const Event& e : events) {
    AppendEnvelopeJson(e, &out);
    out.push_back('\n');
  }
  return out;
}

TEST(GoldenTest, EveryFileGivesItsExpectedOutput) {
  bool update = std::getenv("GW_UPDATE_GOLDEN") != nullptr;
  int checked = 0;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(GoldenDir())) {
    if (e.path().extension() == ".uff") names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    std::string got = Render(name, gw::testing::ReadFileOrEmpty(GoldenDir() + "/" + name));
    std::string expected_path = GoldenDir() + "/" + name.substr(0, name.size() - 4) + ".expected";
    if (update) gw::testing::WriteFile(expected_path, got);
    std::string want = gw::testing::ReadFileOrEmpty(expected_path);
    EXPECT_EQ(got, want) << name;
    bool invalid = name.rfind("invalid_", 0) == 0;
    EXPECT_EQ(got.rfind("{", 0) != 0, invalid) << name << ": valid_ files must give events, invalid_ files errors";
    ++checked;
  }
  EXPECT_GE(checked, 15);
}

}  // namespace
}  // namespace gw::adapters
