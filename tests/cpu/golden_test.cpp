// The CPU backend in fp32 numerics against transformers' DeepseekV4ForCausalLM (fp32) on the
// committed fixtures of tools/gen_reference.py: both checkpoint layouts, three call patterns.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/npy.h"
#include "cpu/chunked_run.h"
#include "model/model_source.h"

namespace dsv4::cpu {
namespace {

namespace fs = std::filesystem;

constexpr double kRelativeBound = 1e-4;

const fs::path kGoldenDir = fs::path(DSV4_TEST_DATA_DIR) / "golden";

struct GoldenCase {
  std::string fixture;  // folder under tests/data/golden
  std::string layout;   // "hf" (transformers-saved) or "official"
  std::string pattern;  // "prefill", "decode" or "chunks"
};

void PrintTo(const GoldenCase& c, std::ostream* os) {
  *os << c.fixture << "/" << c.layout << "/" << c.pattern;
}

std::string case_name(const testing::TestParamInfo<GoldenCase>& param) {
  return param.param.fixture + "_" + param.param.layout + "_" + param.param.pattern;
}

std::vector<GoldenCase> all_cases() {
  std::vector<GoldenCase> cases;
  if (!fs::exists(kGoldenDir)) return cases;
  std::vector<std::string> fixtures;
  for (const auto& entry : fs::directory_iterator(kGoldenDir)) {
    if (fs::exists(entry.path() / "case.json")) fixtures.push_back(entry.path().filename());
  }
  std::sort(fixtures.begin(), fixtures.end());
  for (const std::string& fixture : fixtures) {
    for (const char* layout : {"hf", "official"}) {
      for (const char* pattern : {"prefill", "decode", "chunks"}) {
        cases.push_back({fixture, layout, pattern});
      }
    }
  }
  return cases;
}

// Chunk sizes of each call pattern: one prefill; prefill of all but the last id, then decode;
// the fixture's two chunks, then decode.
std::vector<int32_t> pattern_chunks(const std::string& pattern, const nlohmann::json& spec,
                                    size_t n_ids) {
  if (pattern == "prefill") return {int32_t(n_ids)};
  if (pattern == "decode") return {int32_t(n_ids - 1)};
  return spec.at("chunks").get<std::vector<int32_t>>();
}

const LoadedModel& cached_model(const fs::path& dir) {
  static std::map<std::string, LoadedModel> models;
  auto it = models.find(dir.string());
  if (it == models.end()) it = models.emplace(dir.string(), load_model(dir.string())).first;
  return it->second;
}

class GoldenFixture : public testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenFixture, Fp32LogitsMatchTransformers) {
  const GoldenCase& c = GetParam();
  const fs::path dir = kGoldenDir / c.fixture;
  std::ifstream spec_file(dir / "case.json");
  const nlohmann::json spec = nlohmann::json::parse(spec_file);
  const auto ids = spec.at("ids").get<std::vector<int32_t>>();
  const NpyArray expected = read_npy(dir / (c.layout + "_" + c.pattern + ".npy"));
  ASSERT_EQ(expected.shape.size(), 2u);
  ASSERT_EQ(expected.shape[0], int64_t(ids.size()));

  const LoadedModel& loaded = cached_model(dir / c.layout);
  Model model(loaded.config, loaded.weights, Numerics::kFp32);
  const std::vector<float> logits =
      run_chunked(model, ids, pattern_chunks(c.pattern, spec, ids.size()));
  const auto vocab = size_t(expected.shape[1]);
  ASSERT_EQ(logits.size(), expected.data.size());

  double worst = 0.0;
  size_t worst_position = 0;
  for (size_t p = 0; p < ids.size(); ++p) {
    double diff = 0.0, norm = 0.0;
    for (size_t v = 0; v < vocab; ++v) {
      const double e = expected.data[p * vocab + v];
      const double d = logits[p * vocab + v] - e;
      diff += d * d;
      norm += e * e;
    }
    const double relative = std::sqrt(diff / norm);
    if (relative > worst) {
      worst = relative;
      worst_position = p;
    }
  }
  EXPECT_LE(worst, kRelativeBound) << "worst relative L2 error " << worst << " at position "
                                   << worst_position << " of " << ids.size();
}

TEST(GoldenFixtures, AtLeastTwoConfigsAreCommitted) {
  EXPECT_GE(all_cases().size(), 2u * 6u) << "no fixtures under " << kGoldenDir;
}

INSTANTIATE_TEST_SUITE_P(Transformers, GoldenFixture, testing::ValuesIn(all_cases()), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenFixture);

}  // namespace
}  // namespace dsv4::cpu
