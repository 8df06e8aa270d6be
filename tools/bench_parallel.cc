// vidgen-bench parallel: sequence and CFG parallelism on local ranks against one process, cached and uncached.
#include "tools/bench_parallel.h"

#include <chrono>
#include <cstdlib>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "cache/config.h"
#include "models/wan/pipeline.h"
#include "parallel/world.h"
#include "tools/bench_model.h"
#include "parallel/launch.h"

namespace vidgen::tools {
namespace {

constexpr const char* kConfigVariable = "VIDGEN_BENCH_PARALLEL_RUN";  // set for the ranks of one measurement
constexpr const char* kOutVariable = "VIDGEN_BENCH_PARALLEL_OUT";

struct Run {
  std::string layout;
  int ulysses = 1, ring = 1, cfg = 1;
  int threads = 1;  // per rank
  bool cached = false;
  int world() const { return ulysses * ring * cfg; }
};

nlohmann::json ToJson(const Run& run) {
  return {{"layout", run.layout}, {"ulysses", run.ulysses}, {"ring", run.ring},
          {"cfg", run.cfg},       {"threads", run.threads}, {"cached", run.cached}};
}

Run FromJson(const nlohmann::json& json) {
  return {json.at("layout"), json.at("ulysses"), json.at("ring"),
          json.at("cfg"),    json.at("threads"), json.at("cached")};
}

// One rank of one measurement: the same random DiT on every rank (same seed), one warm-up step, then the timed run.
int MeasureAsRank(const ParallelBenchOptions& options, const Run& run) {
  torch::NoGradGuard no_grad;
  torch::set_num_threads(run.threads);
  std::unique_ptr<parallel::World> world;
  if (run.world() > 1) {
    world = std::make_unique<parallel::World>(parallel::RendezvousFromEnv(),
                                              parallel::MeshOptions{run.ulysses, run.ring, run.cfg});
  }
  auto pipeline = MakeBenchPipeline(options.model, world.get());
  const auto& config = pipeline->dit()->config();

  const auto contexts = pipeline->EncodeText(pipeline->tokenizer().Encode({"a red ball bouncing", "blurry"}));
  const auto noise = torch::randn({config.in_dim, options.latent_frames, options.latent_height, options.latent_width});
  dit::SamplerOptions denoise;
  denoise.schedule = {schedulers::Solver::kUniPC, 1, 5.0, true};
  denoise.guidance_scale = 5.0;
  pipeline->Denoise(noise, contexts[0], contexts[1], denoise);  // warm-up
  denoise.schedule.steps = options.steps;
  if (run.cached) denoise.cache = cache::Preset("taylorseer-wan");
  const auto start = std::chrono::steady_clock::now();
  pipeline->Denoise(noise, contexts[0], contexts[1], denoise);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double collective_seconds = world ? static_cast<double>(world->collective_micros()) / 1e6 : 0.0;
  if (!world || world->rank() == 0) {
    std::ofstream(std::getenv(kOutVariable))
        << nlohmann::json{{"seconds", seconds}, {"collective_seconds", collective_seconds}};
  }
  return 0;
}

double Measure(const Run& run, char** argv) {
  const std::string out = fmt::format("/tmp/vidgen-bench-parallel-{}.json", ::getpid());
  ::setenv(kConfigVariable, ToJson(run).dump().c_str(), 1);
  ::setenv(kOutVariable, out.c_str(), 1);
  const int code = parallel::LaunchLocalRanks(run.world(), argv, "vidgen-bench parallel");
  ::unsetenv(kConfigVariable);
  if (code != 0) throw std::runtime_error(fmt::format("the {} run failed (exit {})", run.layout, code));
  nlohmann::json result;
  std::ifstream(out) >> result;
  std::remove(out.c_str());
  fmt::print(stderr, "  {} world {} threads/rank {} {}: {:.2f} s, {:.2f} s in collectives (rank 0)\n", run.layout,
             run.world(), run.threads, run.cached ? "cached" : "uncached", result.at("seconds").get<double>(),
             result.at("collective_seconds").get<double>());
  return result.at("seconds").get<double>();
}

}  // namespace

bool IsParallelBenchRank() {
  return std::getenv(kConfigVariable) != nullptr;
}

int RunParallelBenchRank(const ParallelBenchOptions& options) {
  return MeasureAsRank(options, FromJson(nlohmann::json::parse(std::getenv(kConfigVariable))));
}

int RunParallelBench(const ParallelBenchOptions& options, char** argv) {
  const int world = 2;
  const double base = Measure({"single", 1, 1, 1, 1, false}, argv);
  const double threaded = Measure({"single", 1, 1, 1, world, false}, argv);
  const double cached_base = Measure({"single", 1, 1, 1, 1, true}, argv);
  const double cached_threaded = Measure({"single", 1, 1, 1, world, true}, argv);

  nlohmann::json report = nlohmann::json::array();
  report.push_back({{"layout", "single"},
                    {"world", 1},
                    {"cached", false},
                    {"seconds", base},
                    {"speedup", 1.0},
                    {"efficiency", 1.0},
                    {"vs_threads", base / threaded}});
  report.push_back({{"layout", "single"},
                    {"world", 1},
                    {"cached", true},
                    {"seconds", cached_base},
                    {"speedup", 1.0},
                    {"efficiency", 1.0},
                    {"vs_threads", cached_base / cached_threaded}});
  double best_uncached = 0, best_cached = 0;
  for (const bool cached : {false, true}) {
    for (const Run& layout :
         {Run{"ulysses2", 2, 1, 1, 1, cached}, Run{"ring2", 1, 2, 1, 1, cached}, Run{"cfg2", 1, 1, 2, 1, cached}}) {
      const double seconds = Measure(layout, argv);
      const double reference = cached ? cached_base : base;
      const double speedup = reference / seconds;
      (cached ? best_cached : best_uncached) = std::max(cached ? best_cached : best_uncached, speedup);
      report.push_back({{"layout", layout.layout},
                        {"world", layout.world()},
                        {"cached", cached},
                        {"seconds", seconds},
                        {"speedup", speedup},
                        {"efficiency", speedup / layout.world()},
                        {"vs_threads", (cached ? cached_threaded : threaded) / seconds}});
    }
  }
  // The two multipliers together: uncached world 1 against the best cached world 2, and the product of the cache
  // speed-up at world 1 with the best uncached parallel speed-up, each measured on its own.
  const double combined = base / (cached_base / best_cached);
  const double product = (base / cached_base) * best_uncached;
  report.push_back({{"combined_speedup", combined}, {"product", product}, {"ratio", combined / product}});
  if (options.json) {
    fmt::print("{}\n", report.dump(2));
    return 0;
  }
  for (const auto& row : report) {
    if (row.contains("layout")) {
      fmt::print("{:<9} world {} {:<8} {:6.2f} s  speedup {:.2f}  efficiency {:.2f}  vs threads {:.2f}\n",
                 row["layout"].get<std::string>(), row["world"].get<int>(),
                 row["cached"].get<bool>() ? "cached" : "uncached", row["seconds"].get<double>(),
                 row["speedup"].get<double>(), row["efficiency"].get<double>(), row["vs_threads"].get<double>());
    } else {
      fmt::print("combined speedup {:.2f}, product {:.2f} (ratio {:.2f})\n", row["combined_speedup"].get<double>(),
                 row["product"].get<double>(), row["ratio"].get<double>());
    }
  }
  return 0;
}

}  // namespace vidgen::tools
