// Sequence-parallel attention on real processes over loopback (Gloo): every layout equals one process.

#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/dit/denoise.h"
#include "models/hunyuan/loader.h"
#include "models/layers/attention.h"
#include "models/wan/pipeline.h"
#include "parallel/attention.h"
#include "parallel/world.h"
#include "tests/support/expect_error.h"
#include "tests/support/golden.h"
#include "tests/support/ranks.h"
#include "tests/wan/golden_run.h"

namespace vidgen::parallel {
namespace {

using testing::RanksOptions;
using testing::RunRanks;

// The world of a rank body: the layout from TEST_ULYSSES / TEST_RING / TEST_CFG, joined from the environment.
std::unique_ptr<World> JoinWorld(std::chrono::seconds timeout) {
  MeshOptions mesh;
  mesh.ulysses = std::atoi(std::getenv("TEST_ULYSSES"));
  mesh.ring = std::atoi(std::getenv("TEST_RING"));
  mesh.cfg = std::atoi(std::getenv("TEST_CFG"));
  Rendezvous rendezvous = RendezvousFromEnv();
  rendezvous.timeout = timeout;
  return std::make_unique<World>(rendezvous, mesh);
}

// Each rank draws the same global q, k, v (odd valid lengths, padded to the group), computes the single-process
// reference, and checks its own chunk of the parallel result and the collectives it took.
const bool kAttentionBody = testing::RegisterRankBody("sequence_attention", [] {
  torch::set_num_threads(1);
  const auto joined = JoinWorld(std::chrono::seconds(30));
  World& world = *joined;
  const int p = world.sequence().size();
  const std::vector<std::int64_t> valid = {37, 29};
  const std::int64_t padded = (37 + p - 1) / p * p;
  torch::manual_seed(1234);
  const auto q = torch::randn({2, padded, 4, 8});
  const auto k = torch::randn({2, padded, 4, 8});
  const auto v = torch::randn({2, padded, 4, 8});
  layers::AttentionOptions options;
  options.key_lengths = valid;
  const auto reference = layers::Attention(q, k, v, options);

  const std::int64_t chunk = padded / p;
  const auto mine = [&](const torch::Tensor& t) {
    return t.slice(1, world.sequence().rank() * chunk, (world.sequence().rank() + 1) * chunk);
  };
  const auto before = world.collectives();
  const auto out = SequenceParallelAttention(world, mine(q), mine(k), mine(v), valid);
  const auto taken = world.collectives() - before;
  const double error = ((out - mine(reference)).abs().max() / reference.abs().max()).item<double>();
  const int u = world.mesh().ulysses, r = world.mesh().ring;
  const std::int64_t expected = (u > 1 ? 2 : 0) + (r - 1);  // all-to-all in and out; R-1 ring hops
  // The worker group's step decisions: rank 0's word on every rank, whatever the others propose.
  const bool decided = world.Decide(world.rank() == 0) && !world.Decide(world.rank() != 0);
  std::printf("rank %d error %.3e collectives %lld decided %d\n", world.rank(), error, static_cast<long long>(taken),
              decided);
  return error < 1e-5 && taken == expected && decided ? 0 : 1;
});

// Joint image + replicated text attention (HunyuanVideo's blocks) against a dense single-process reference.
const bool kJointBody = testing::RegisterRankBody("joint_attention", [] {
  torch::set_num_threads(1);
  const auto joined = JoinWorld(std::chrono::seconds(30));
  World& world = *joined;
  const int p = world.sequence().size();
  const std::vector<std::int64_t> valid = {37, 29}, text_valid = {7, 4};
  const std::int64_t padded = (37 + p - 1) / p * p;
  torch::manual_seed(99);
  const auto q = torch::randn({2, padded, 4, 8}), k = torch::randn({2, padded, 4, 8}),
             v = torch::randn({2, padded, 4, 8});
  JointText text{torch::randn({2, 7, 4, 8}), torch::randn({2, 7, 4, 8}), torch::randn({2, 7, 4, 8}), text_valid};

  // Dense reference over [image; text] with every padded key masked.
  const auto all_q = torch::cat({q, text.q}, 1).transpose(1, 2);
  const auto all_k = torch::cat({k, text.k}, 1).transpose(1, 2);
  const auto all_v = torch::cat({v, text.v}, 1).transpose(1, 2);
  auto mask = torch::zeros({2, 1, 1, padded + 7});
  for (int b = 0; b < 2; ++b) {
    mask[b].slice(-1, valid[static_cast<std::size_t>(b)], padded).fill_(-std::numeric_limits<float>::infinity());
    mask[b].slice(-1, padded + text_valid[static_cast<std::size_t>(b)]).fill_(-std::numeric_limits<float>::infinity());
  }
  const auto reference =
      torch::matmul(torch::softmax(torch::matmul(all_q, all_k.transpose(-1, -2)) / std::sqrt(8.0) + mask, -1), all_v)
          .transpose(1, 2);

  const std::int64_t chunk = padded / p;
  const auto mine = [&](const torch::Tensor& t) {
    return t.slice(1, world.sequence().rank() * chunk, (world.sequence().rank() + 1) * chunk);
  };
  const auto before = world.collectives();
  const auto out = SequenceParallelJointAttention(world, mine(q), mine(k), mine(v), valid, text);
  const auto taken = world.collectives() - before;
  const double scale = reference.abs().max().item<double>();
  const double image_error = ((out.image - mine(reference.slice(1, 0, padded))).abs().max() / scale).item<double>();
  const double text_error = ((out.text - reference.slice(1, padded)).abs().max() / scale).item<double>();
  const int u = world.mesh().ulysses, r = world.mesh().ring;
  const std::int64_t expected = (u > 1 ? 3 : 0) + (r - 1);  // all-to-all in and out, text all-gather; ring hops
  std::printf("rank %d image error %.3e text error %.3e collectives %lld\n", world.rank(), image_error, text_error,
              static_cast<long long>(taken));
  return image_error < 1e-5 && text_error < 1e-5 && taken == expected ? 0 : 1;
});

struct Layout {
  int ulysses, ring, cfg;
};

// Runs rank body `name` on `layout`'s world size with the layout in the environment; expects every rank to pass.
void ExpectRanksPass(const std::string& name, const Layout& layout, std::chrono::seconds timeout) {
  RanksOptions options;
  options.timeout = timeout;
  options.extra_env = {{"TEST_ULYSSES", std::to_string(layout.ulysses)},
                       {"TEST_RING", std::to_string(layout.ring)},
                       {"TEST_CFG", std::to_string(layout.cfg)}};
  const auto outcome = RunRanks(name, layout.ulysses * layout.ring * layout.cfg, options);
  EXPECT_TRUE(outcome.ok()) << outcome.Summary();
}

std::string LayoutName(const ::testing::TestParamInfo<Layout>& info) {
  return fmt::format("u{}r{}c{}", info.param.ulysses, info.param.ring, info.param.cfg);
}

class SequenceAttentionTest : public ::testing::TestWithParam<Layout> {};

TEST_P(SequenceAttentionTest, EqualsOneProcess) {
  ExpectRanksPass("sequence_attention", GetParam(), std::chrono::seconds(120));
}

TEST_P(SequenceAttentionTest, JointTextEqualsOneProcess) {
  ExpectRanksPass("joint_attention", GetParam(), std::chrono::seconds(120));
}

INSTANTIATE_TEST_SUITE_P(Layouts, SequenceAttentionTest,
                         ::testing::Values(Layout{2, 1, 1}, Layout{1, 2, 1}, Layout{2, 2, 1}, Layout{1, 1, 2},
                                           Layout{2, 1, 2}, Layout{4, 1, 1}, Layout{1, 4, 1}),
                         LayoutName);

// Rank 1 dies before the collective: rank 0 must fail with a clear error, not hang. Rank 1 may leave while rank 0
// is still finishing its side of the world's last group; that is the same failure, met earlier.
const bool kDeadPeerBody = testing::RegisterRankBody("dead_peer", [] {
  Rendezvous rendezvous = RendezvousFromEnv();
  rendezvous.timeout = std::chrono::seconds(10);
  try {
    World world(rendezvous, {2, 1, 1});
    if (world.rank() == 1) std::_Exit(9);
    world.ulysses().AllToAll(torch::ones({2, 4}));
  } catch (const Error& e) {
    std::printf("rank %d: %s: %s\n", rendezvous.rank, std::string(ErrorCodeName(e.code())).c_str(), e.what());
    return e.code() == ErrorCode::kUnavailable ? 4 : 5;
  }
  return 0;
});

TEST(WorldTest, DeadPeerFailsTheCollectiveWithAClearError) {
  RanksOptions options;
  options.timeout = std::chrono::seconds(60);
  options.grace_after_failure = std::chrono::seconds(30);
  // A hung collective would end in the runner's timeout, not in rank 0's exit code 4.
  const auto outcome = RunRanks("dead_peer", 2, options);
  EXPECT_EQ(outcome.ranks[1].exit_code, 9);
  EXPECT_EQ(outcome.ranks[0].exit_code, 4) << outcome.Summary();
  EXPECT_NE(outcome.ranks[0].output.find("UNAVAILABLE"), std::string::npos) << outcome.Summary();
}

TEST(WorldTest, RejectsLayoutsThatDoNotMatchTheWorld) {
  Rendezvous rendezvous;
  rendezvous.world_size = 4;
  try {
    World world(rendezvous, {3, 1, 1});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("WORLD_SIZE 4"), std::string::npos);
  }
  ::setenv("RANK", "3", 1);
  ::setenv("WORLD_SIZE", "2", 1);
  EXPECT_FAILS(RendezvousFromEnv(), kInvalidArgument, "RANK 3 is not below WORLD_SIZE 2");
  ::setenv("WORLD_SIZE", "two", 1);
  EXPECT_FAILS(RendezvousFromEnv(), kInvalidArgument, "WORLD_SIZE='two' is not a non-negative integer");
  ::unsetenv("RANK");
  ::unsetenv("WORLD_SIZE");
}

TEST(WorldTest, SlurmVariablesAndTheRanksDevice) {
  ::setenv("SLURM_PROCID", "5", 1);
  ::setenv("SLURM_NTASKS", "8", 1);
  ::setenv("SLURM_LOCALID", "1", 1);
  const auto rendezvous = RendezvousFromEnv();
  ::unsetenv("SLURM_PROCID");
  ::unsetenv("SLURM_NTASKS");
  ::unsetenv("SLURM_LOCALID");
  EXPECT_EQ(rendezvous.rank, 5);
  EXPECT_EQ(rendezvous.world_size, 8);
  EXPECT_EQ(rendezvous.local_rank, 1);
  // A plain CUDA device means the local rank's GPU; an explicit one and the CPU stay as asked.
  EXPECT_EQ(RankDevice(c10::Device("cuda"), rendezvous), c10::Device("cuda:1"));
  EXPECT_EQ(RankDevice(c10::Device("cuda:0"), rendezvous), c10::Device("cuda:0"));
  EXPECT_EQ(RankDevice(c10::Device("cpu"), rendezvous), c10::Device("cpu"));
  EXPECT_EQ(BackendFor(c10::Device("cpu")), CommBackend::kGloo);
  EXPECT_EQ(BackendFor(c10::Device("cuda:0")), HasNccl() ? CommBackend::kNccl : CommBackend::kGloo);
}

TEST(WorldTest, NcclWithoutNcclIsAClearError) {
  if (HasNccl()) GTEST_SKIP() << "this LibTorch has NCCL";
  Rendezvous rendezvous;
  rendezvous.backend = CommBackend::kNccl;
  try {
    World world(rendezvous, {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition);
    EXPECT_NE(std::string(e.what()).find("NCCL"), std::string::npos);
  }
}

}  // namespace
}  // namespace vidgen::parallel

namespace vidgen::parallel {
namespace {

// The collectives each step of a run makes, counted from its step callback.
struct StepCollectives {
  explicit StepCollectives(World& world) : last(world.collectives()) {
    callbacks.on_step = [this, &world](const StepProgress&) {
      per_step.push_back(world.collectives() - last);
      last = world.collectives();
    };
  }
  GenerationCallbacks callbacks;
  std::vector<std::int64_t> per_step;
  std::int64_t last;
};

double RelativeError(const at::Tensor& actual, const at::Tensor& expected) {
  return ((actual - expected).abs().max() / expected.abs().max()).item<double>();
}

// One golden Wan run per rank for each task (T2V, I2V, FLF2V): single-process and parallel, uncached and cached,
// compared on every rank, with the collectives of every step recorded.
const bool kWanBody = testing::RegisterRankBody("wan", [] {
  torch::set_num_threads(1);
  const auto joined = JoinWorld(std::chrono::seconds(60));
  World& world = *joined;
  int failures = 0;
  for (const char* task : {"wan_t2v", "wan_i2v", "wan_flf2v"}) {
    const testing::GoldenCase golden(testing::GoldenCases(task).at(0));
    auto single = wan::WanPipeline::Load(golden.CheckpointDir().string());
    wan::WanLoadOptions options;
    options.world = &world;
    auto parallel = wan::WanPipeline::Load(golden.CheckpointDir().string(), options);
    auto [context, context_null, denoise] = wan::ReadGoldenRun(golden, *single);
    const wan::WanCondition condition{
        context, context_null,
        golden.Has("y") ? wan::WanImageInput{golden.Get("clip_fea"), golden.Get("y")} : wan::WanImageInput{}};
    denoise.schedule.steps = 10;

    // A calibration whose guidance difference shrinks with sigma, so that the reused difference is rescaled.
    cache::GuidanceCalibration calibration;
    calibration.sigmas = {1.0, 0.5, 0.0};
    calibration.difference_rms = {1.0, 0.7, 0.2};
    denoise.calibration = &calibration;

    for (const char* preset : {"none", "taylorseer-wan", "taylorseer-cfg-calibrated"}) {
      denoise.cache = cache::Preset(preset);
      denoise.cache.interval = 3;
      const auto reference = single->Denoise(golden.Get("noise"), condition, denoise);
      StepCollectives counter(world);
      const auto latents = parallel->Denoise(golden.Get("noise"), condition, denoise, counter.callbacks);
      const double error = RelativeError(latents, reference);
      const auto& per_step = counter.per_step;
      std::printf("rank %d %s cache %s error %.3e collectives per step %s\n", world.rank(), task, preset, error,
                  fmt::format("{}", fmt::join(per_step, " ")).c_str());
      if (!(error < 1e-5)) ++failures;
      if (denoise.cache.enabled()) {
        // Predicted steps (1, 2, 4, 5, 7, 8) attend to nothing: no collective but the CFG exchange, if any.
        const std::int64_t cfg_exchange = world.cfg().size() > 1 ? 1 : 0;
        for (const int step : {1, 2, 4, 5, 7, 8}) {
          if (per_step[static_cast<std::size_t>(step)] != cfg_exchange) ++failures;
        }
      }
    }
  }
  return failures == 0 ? 0 : 1;
});

class WanParallelTest : public ::testing::TestWithParam<Layout> {};

TEST_P(WanParallelTest, GoldenRunsOfEveryTaskEqualOneProcessUncachedAndCachedWithEitherGuidanceCache) {
  ExpectRanksPass("wan", GetParam(), std::chrono::seconds(300));
}

INSTANTIATE_TEST_SUITE_P(Layouts, WanParallelTest,
                         ::testing::Values(Layout{2, 1, 1}, Layout{1, 2, 1}, Layout{2, 2, 1}, Layout{1, 1, 2},
                                           Layout{2, 1, 2}),
                         LayoutName);

}  // namespace
}  // namespace vidgen::parallel

namespace vidgen::parallel {
namespace {

// The golden HunyuanVideo Euler run per rank: image tokens split over the sequence group, text replicated (padded
// text attending only among itself), uncached and cached, against one process.
const bool kHunyuanBody = testing::RegisterRankBody("hunyuan_t2v", [] {
  torch::set_num_threads(1);
  const auto joined = JoinWorld(std::chrono::seconds(60));
  World& world = *joined;
  const testing::GoldenCase golden(testing::GoldenCases("hunyuan_t2v").at(0));
  auto dit = hunyuan::LoadHunyuanDit(golden.CheckpointDir().string());
  const hunyuan::HunyuanText text{golden.Get("text_states"), golden.Get("text_mask"), golden.Get("text_states_2")};
  const auto denoiser = hunyuan::MakeDenoiser(dit, text, 6.0);
  dit::SamplerOptions options;
  options.schedule = {schedulers::Solver::kEuler, 8, std::stod(golden.Meta("shift")), /*integer_timesteps=*/false};

  // The golden grid (3·4·4 tokens) and one that no world size divides (3·3·5 tokens: chunks padded).
  torch::manual_seed(11);
  const std::vector<at::Tensor> noises = {golden.Get("noise"), torch::randn({golden.Get("noise").size(0), 3, 6, 10})};
  int failures = 0;
  for (const bool cached : {false, true}) {
    for (const auto& noise : noises) {
      options.cache = cached ? cache::Preset("taylorseer-hunyuan") : cache::CacheConfig{};
      options.cache.interval = 3;
      options.world = nullptr;
      const auto reference = dit::Denoise(*denoiser, dit->space(), noise, options);
      options.world = &world;
      StepCollectives counter(world);
      const auto latents = dit::Denoise(*denoiser, dit->space(), noise, options, counter.callbacks);
      const double error = RelativeError(latents, reference);
      const auto& per_step = counter.per_step;
      std::printf("rank %d cached %d error %.3e collectives per step %s\n", world.rank(), cached, error,
                  fmt::format("{}", fmt::join(per_step, " ")).c_str());
      if (!(error < 1e-5)) ++failures;
      if (per_step.at(0) == 0) ++failures;  // a full step talks
      if (cached) {
        for (const int step : {1, 2, 4, 5, 7}) {
          if (per_step[static_cast<std::size_t>(step)] != 0) ++failures;
        }
      }
    }
  }
  return failures == 0 ? 0 : 1;
});

class HunyuanParallelTest : public ::testing::TestWithParam<Layout> {};

TEST_P(HunyuanParallelTest, GoldenRunEqualsOneProcessUncachedAndCached) {
  ExpectRanksPass("hunyuan_t2v", GetParam(), std::chrono::seconds(300));
}

// The tiny model has 2 heads: Ulysses up to 2, ring for the rest.
INSTANTIATE_TEST_SUITE_P(Layouts, HunyuanParallelTest,
                         ::testing::Values(Layout{2, 1, 1}, Layout{1, 2, 1}, Layout{2, 2, 1}, Layout{1, 4, 1}),
                         LayoutName);

}  // namespace
}  // namespace vidgen::parallel
