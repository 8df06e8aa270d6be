// The multi-rank test helper: environment, exit codes, output, timeouts and fail-fast.
#include "tests/support/ranks.h"

#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>

namespace vidgen::testing {
namespace {

int EnvInt(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::atoi(value) : -1;
}

const bool kReportEnv = RegisterRankBody("report_env", [] {
  std::printf("rank=%d world=%d port=%d addr=%s extra=%s\n", EnvInt("RANK"), EnvInt("WORLD_SIZE"),
              EnvInt("MASTER_PORT"), std::getenv("MASTER_ADDR"), std::getenv("VIDGEN_TEST_EXTRA"));
  return 0;
});

const bool kRankOneFails = RegisterRankBody("rank_one_fails", [] {
  if (EnvInt("RANK") == 1) {
    std::fprintf(stderr, "rank 1 gives up\n");
    return 7;
  }
  std::this_thread::sleep_for(std::chrono::minutes(5));  // as if stuck in a collective with the dead rank
  return 0;
});

const bool kHangs = RegisterRankBody("hangs", [] {
  std::this_thread::sleep_for(std::chrono::minutes(5));
  return 0;
});

const bool kThrows = RegisterRankBody("throws", []() -> int { throw std::runtime_error("boom"); });

TEST(RanksTest, EachRankGetsItsEnvironment) {
  RanksOptions options;
  options.extra_env["VIDGEN_TEST_EXTRA"] = "yes";
  const auto outcome = RunRanks("report_env", 3, options);
  ASSERT_TRUE(outcome.ok()) << outcome.Summary();
  ASSERT_EQ(outcome.ranks.size(), 3u);
  for (int rank = 0; rank < 3; ++rank) {
    EXPECT_EQ(outcome.ranks[rank].output, "rank=" + std::to_string(rank) + " world=3 port=" +
                                              std::to_string(outcome.master_port) + " addr=127.0.0.1 extra=yes\n");
  }
}

TEST(RanksTest, FailingRankIsReportedAndTheOthersAreStopped) {
  RanksOptions options;
  options.grace_after_failure = std::chrono::milliseconds(200);
  const auto outcome = RunRanks("rank_one_fails", 2, options);
  EXPECT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.ranks[1].exit_code, 7);
  EXPECT_EQ(outcome.ranks[1].output, "rank 1 gives up\n");
  EXPECT_TRUE(outcome.ranks[0].killed_after_failure);
  EXPECT_NE(outcome.Summary().find("rank 1: exit 7"), std::string::npos) << outcome.Summary();
}

TEST(RanksTest, HangingRanksAreKilledAtTheDeadline) {
  RanksOptions options;
  options.timeout = std::chrono::milliseconds(300);
  const auto outcome = RunRanks("hangs", 2, options);
  EXPECT_FALSE(outcome.ok());
  EXPECT_TRUE(outcome.ranks[0].timed_out);
  EXPECT_TRUE(outcome.ranks[1].timed_out);
}

TEST(RanksTest, ExceptionsBecomeAFailedRankWithTheirMessage) {
  const auto outcome = RunRanks("throws", 1);
  EXPECT_EQ(outcome.ranks[0].exit_code, 3);
  EXPECT_NE(outcome.ranks[0].output.find("boom"), std::string::npos);
}

}  // namespace
}  // namespace vidgen::testing
