// The dsv4 command line as users and scripts call it: exact spellings, outputs, and one-line
// errors naming the culprit.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_runner.h"
#include "core/npy.h"

namespace {

namespace fs = std::filesystem;

fs::path temp_file(const std::string& name) {
  return fs::temp_directory_path() / ("dsv4_cli_test_" + std::to_string(getpid()) + "_" + name);
}

const fs::path kFixture = fs::path(DSV4_TEST_DATA_DIR) / "golden" / "csa_hca_yarn";

TEST(LogitsCommand, WritesTransformersMatchingLogitsForAChunkedCallPattern) {
  std::ifstream spec_file(kFixture / "case.json");
  const auto spec = nlohmann::json::parse(spec_file);
  std::string ids;
  for (int id : spec.at("ids")) {
    if (!ids.empty()) ids.push_back(',');
    ids.append(std::to_string(id));
  }
  const fs::path out = temp_file("logits.npy");
  const Result result =
      run_dsv4("logits --model " + (kFixture / "official").string() + " --ids " + ids +
               " --chunks 13,29 --numerics fp32 --backend cpu --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const dsv4::NpyArray got = dsv4::read_npy(out);
  const dsv4::NpyArray expected = dsv4::read_npy(kFixture / "official_chunks.npy");
  ASSERT_EQ(got.shape, expected.shape);
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < got.data.size(); ++i) {
    diff += std::pow(double(got.data[i]) - double(expected.data[i]), 2);
    norm += std::pow(double(expected.data[i]), 2);
  }
  EXPECT_LT(std::sqrt(diff / norm), 1e-4);
  fs::remove(out);
}

TEST(LogitsCommand, MissingModelDirectoryIsAOneLineErrorNamingIt) {
  const Result result = run_dsv4("logits --model /no/such/model --ids 1,2 --out /tmp/x.npy");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("/no/such/model"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find('\n'), result.output.size() - 1) << result.output;
}

TEST(LogitsCommand, MalformedIdListNamesTheArgument) {
  const Result result = run_dsv4("logits --model synthetic:tiny --ids 1,x,3 --out /tmp/x.npy");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("--ids: '1,x,3' is not a comma-separated list of integers"),
            std::string::npos)
      << result.output;
}

TEST(LogitsCommand, ChunksLongerThanTheIdsAreRejected) {
  const Result result =
      run_dsv4("logits --model synthetic:tiny --ids 1,2,3 --chunks 2,2 --out /tmp/x.npy");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("--chunks: the chunks hold 4 ids but there are only 3"),
            std::string::npos)
      << result.output;
}

TEST(LogitsCommand, UnknownNumericsModeIsRejected) {
  const Result result =
      run_dsv4("logits --model synthetic:tiny --ids 1 --numerics fp16 --out /tmp/x.npy");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("--numerics: unknown mode 'fp16'"), std::string::npos)
      << result.output;
}

TEST(GenerateCommand, GreedyDecodingPrintsOneIdPerLineAndIsReproducible) {
  const std::string args = "generate --model synthetic:tiny --ids 0,100,200 --max-tokens 4";
  const Result first = run_dsv4(args, true), second = run_dsv4(args, true);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  int lines = 0;
  for (char c : first.output) lines += c == '\n';
  EXPECT_EQ(lines, 4) << first.output;
  EXPECT_EQ(first.output, second.output);
}

TEST(GenerateCommand, SaysTheWeightsAreRandomAndReportsSpeed) {
  const Result result = run_dsv4("generate --model synthetic:tiny --ids 0,100 --max-tokens 2");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("RANDOM weights"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("tok/s"), std::string::npos) << result.output;
}

TEST(GenerateCommand, BackendCudaWithoutAGpuSaysSoInOneLine) {
  const Result result = run_dsv4("generate --model synthetic:tiny --ids 1 --backend cuda");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("--backend cuda:"), std::string::npos) << result.output;
}

TEST(InspectCommand, DescribesTheLayerSchedule) {
  const Result result = run_dsv4("inspect --model " + (kFixture / "hf").string());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("layers"), std::string::npos) << result.output;
}

}  // namespace
