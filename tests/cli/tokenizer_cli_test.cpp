// tokenize / detokenize / generate --prompt as a user calls them, on the bundled tokenizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "cli_runner.h"

namespace {

const std::string kTokenizer = (std::filesystem::path(DSV4_TEST_DATA_DIR) / ".." / ".." / "assets" /
                                "tokenizer" / "deepseek-v3")
                                   .string();

TEST(TokenizeCommand, PrintsCommaSeparatedIdsWithoutBos) {
  const Result result = run_dsv4("tokenize --tokenizer " + kTokenizer + " 'Hello, world'", true);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "19923,14,2058\n");
}

TEST(DetokenizeCommand, RoundTripsTheTokenizedText) {
  const Result result =
      run_dsv4("detokenize --tokenizer " + kTokenizer + " --ids 19923,14,2058", true);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "Hello, world\n");
}

TEST(DetokenizeCommand, UnknownTokenIdIsAnErrorNamingIt) {
  const Result result = run_dsv4("detokenize --tokenizer " + kTokenizer + " --ids 5,999999");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("token id 999999"), std::string::npos) << result.output;
}

TEST(TokenizeCommand, MissingTokenizerFileIsAnErrorNamingThePath) {
  const Result result = run_dsv4("tokenize --tokenizer /no/such/tokenizer.json hi");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("/no/such/tokenizer.json"), std::string::npos) << result.output;
}

TEST(GenerateCommand, PromptTextStreamsTextFromTheBundledTokenizer) {
  const Result result =
      run_dsv4("generate --model synthetic:tiny --prompt 'Hello' --max-tokens 5", true);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_FALSE(result.output.empty());
  EXPECT_EQ(result.output.back(), '\n');
}

}  // namespace
