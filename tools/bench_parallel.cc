// vidgen-bench parallel: sequence and CFG parallelism on local ranks against one process, cached and uncached.
#include "tools/bench_parallel.h"

#include <cstdlib>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "cache/config.h"
#include "parallel/launch.h"
#include "parallel/world.h"
#include "tools/bench_model.h"

namespace vidgen::tools {
namespace {

constexpr const char* kConfigVariable = "VIDGEN_BENCH_PARALLEL_RUN";  // set for the ranks of one measurement
constexpr const char* kOutVariable = "VIDGEN_BENCH_PARALLEL_OUT";

struct Run {
  std::string layout;
  int ulysses = 1, ring = 1, cfg = 1;
  int threads = 1;  // per rank
  bool cached = false;
  std::string model_dir;  // the synthetic checkpoint every rank loads
  int world() const { return ulysses * ring * cfg; }
};

nlohmann::json ToJson(const Run& run) {
  return {{"layout", run.layout},   {"ulysses", run.ulysses}, {"ring", run.ring},          {"cfg", run.cfg},
          {"threads", run.threads}, {"cached", run.cached},   {"model_dir", run.model_dir}};
}

Run FromJson(const nlohmann::json& json) {
  return {json.at("layout"),  json.at("ulysses"), json.at("ring"),     json.at("cfg"),
          json.at("threads"), json.at("cached"),  json.at("model_dir")};
}

// One rank of one measurement: every rank loads the same checkpoint; one warm-up step, then the timed run.
int MeasureAsRank(const ParallelBenchOptions& options, const Run& run) {
  torch::NoGradGuard no_grad;
  torch::set_num_threads(run.threads);
  auto model = options.model;
  std::unique_ptr<parallel::World> world;
  if (run.world() > 1) {
    auto rendezvous = parallel::RendezvousFromEnv();
    const auto device = parallel::RankDevice(c10::Device(model.device), rendezvous);
    rendezvous.backend = parallel::BackendFor(device);
    model.device = device.str();
    world = std::make_unique<parallel::World>(rendezvous, parallel::MeshOptions{run.ulysses, run.ring, run.cfg});
  }
  const auto pipeline = LoadBenchPipeline(model, run.model_dir, world.get());
  auto request = BenchRequest(model, options.latent_frames, options.latent_height, options.latent_width);
  request.steps = 1;
  pipeline->Generate(request, {});  // warm-up
  request.steps = options.steps;
  const bool wan = model.parsed_family() == spec::Family::kWan;
  if (run.cached) request.cache = cache::Preset(wan ? "taylorseer-wan" : "taylorseer-hunyuan");
  const double seconds = pipeline->Generate(request, {}).stats.stage_seconds.at("denoise");
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
  const auto checkpoint = WriteBenchCheckpoint(options.model);
  const std::string dir = checkpoint->dir();
  const double base = Measure({"single", 1, 1, 1, 1, false, dir}, argv);
  const double threaded = Measure({"single", 1, 1, 1, world, false, dir}, argv);
  const double cached_base = Measure({"single", 1, 1, 1, 1, true, dir}, argv);
  const double cached_threaded = Measure({"single", 1, 1, 1, world, true, dir}, argv);

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
    for (const Run& layout : {Run{"ulysses2", 2, 1, 1, 1, cached, dir}, Run{"ring2", 1, 2, 1, 1, cached, dir},
                              Run{"cfg2", 1, 1, 2, 1, cached, dir}}) {
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
