// Flow-matching samplers: the reference's schedules, and exactness on a straight flow.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/schedulers/flow_scheduler.h"
#include "tests/support/expect_error.h"

namespace vidgen::schedulers {
namespace {

TEST(FlowSchedulerTest, UniPCScheduleMatchesTheReference) {
  // models.md C.3: 50 steps, shift 5.
  const auto scheduler = MakeFlowScheduler({Solver::kUniPC, 50, 5.0, true});
  const auto& t = scheduler->timesteps();
  ASSERT_EQ(t.size(), 50u);
  EXPECT_EQ(t[0], 999);
  EXPECT_EQ(t[1], 995);
  EXPECT_EQ(t[2], 991);
  EXPECT_EQ(t[47], 241);
  EXPECT_EQ(t[48], 172);
  EXPECT_EQ(t[49], 92);
  EXPECT_NEAR(scheduler->sigmas()[0], 0.99980, 1e-5);
  EXPECT_EQ(scheduler->sigmas().back(), 0.0);
}

TEST(FlowSchedulerTest, DpmAndEulerStartAtSigmaOne) {
  for (const auto solver : {Solver::kDpmPlusPlus, Solver::kEuler}) {
    const auto scheduler = MakeFlowScheduler({solver, 10, 3.0, true});
    EXPECT_EQ(scheduler->sigmas().front(), 1.0) << SolverName(solver);
    EXPECT_EQ(scheduler->sigmas().size(), 11u);
    EXPECT_EQ(scheduler->timesteps().front(), 1000);
  }
  const auto hunyuan = MakeFlowScheduler({Solver::kEuler, 5, 7.0, /*integer_timesteps=*/false});
  EXPECT_NEAR(hunyuan->timesteps()[1], 1000 * 7 * 0.8 / (1 + 6 * 0.8), 1e-3);
}

// With the exact velocity of a straight path x_σ = (1−σ)·x0 + σ·ε, every solver lands on x0.
TEST(FlowSchedulerTest, EverySolverIsExactOnAStraightFlow) {
  torch::manual_seed(3);
  const auto x0 = torch::randn({1, 4, 2, 3, 3});
  const auto noise = torch::randn({1, 4, 2, 3, 3});
  for (const auto solver : {Solver::kUniPC, Solver::kDpmPlusPlus, Solver::kEuler}) {
    for (const int steps : {1, 2, 7, 20}) {
      auto scheduler = MakeFlowScheduler({solver, steps, 5.0, true});
      auto x = (1 - scheduler->sigmas()[0]) * x0 + scheduler->sigmas()[0] * noise;
      for (int i = 0; i < steps; ++i) x = scheduler->Step(noise - x0, x);
      EXPECT_LT((x - x0).abs().max().item<double>(), 1e-5) << SolverName(solver) << " " << steps;
      EXPECT_EQ(scheduler->step_index(), steps);
    }
  }
}

// A distilled model's given schedule: σ = shift(t/1000) at each given t, a final 0, Euler between them.
TEST(FlowSchedulerTest, AGivenScheduleStepsAtItsShiftedTimesteps) {
  const std::vector<double> given = {1000, 750, 500, 250};
  const auto scheduler = MakeFlowScheduler({Solver::kEuler, 4, 5.0, true, given});
  ASSERT_EQ(scheduler->steps(), 4);
  for (std::size_t i = 0; i < given.size(); ++i) {
    const double s = given[i] / 1000, sigma = 5 * s / (1 + 4 * s);
    EXPECT_NEAR(scheduler->sigmas()[i], sigma, 1e-7) << i;
    EXPECT_EQ(scheduler->timesteps()[i], std::trunc(sigma * 1000)) << i;
  }
  EXPECT_EQ(scheduler->sigmas().back(), 0.0);
  // On a straight flow (constant velocity) Euler lands on x0 whatever the schedule.
  const auto x0 = torch::randn({2, 3}), noise = torch::randn({2, 3});
  auto x = noise.clone();
  for (int i = 0; i < 4; ++i) x = scheduler->Step(noise - x0, x);
  EXPECT_TRUE(torch::allclose(x, x0, 1e-5, 1e-5));

  EXPECT_FAILS(MakeFlowScheduler({Solver::kEuler, 3, 5.0, true, given}), kInvalidArgument, "'timesteps'");
  EXPECT_FAILS(MakeFlowScheduler({Solver::kEuler, 2, 5.0, true, {500, 750}}), kInvalidArgument, "'timesteps'");
}

TEST(FlowSchedulerTest, RejectsBadOptions) {
  EXPECT_FAILS(ParseSolver("ddim"), kInvalidArgument, "'solver': 'ddim'");
  try {
    MakeFlowScheduler({Solver::kUniPC, 0, 5.0, true});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("'steps'"), std::string::npos);
  }
  EXPECT_FAILS(MakeFlowScheduler({Solver::kEuler, 10, -1.0, true}), kInvalidArgument, "'shift': -1");
}

}  // namespace
}  // namespace vidgen::schedulers
