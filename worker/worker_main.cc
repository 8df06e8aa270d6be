// vidgen-worker: one worker group. Rank 0 (the leader) leases jobs from vidgen-server and hands each to the group
// through the rendezvous store; every rank runs the pipeline on its share; the leader encodes, uploads and reports.
// `--nproc N` starts N local ranks (like torchrun); with RANK/WORLD_SIZE/... set, the process joins a group as one
// rank (Slurm, Kubernetes).
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/cpu_allocator.h"
#include "common/error.h"
#include "common/file.h"
#include "common/rank_launch.h"
#include "common/tool_main.h"
#include "metrics/endpoint.h"
#include "models/device_memory.h"
#include "models/families.h"
#include "parallel/launch.h"
#include "parallel/world.h"
#include "proto/rpc.h"
#include "proto/spec_proto.h"
#include "worker/group.h"
#include "worker/job.h"
#include "worker/server_link.h"

namespace {

struct Options {
  std::string server = "localhost:50051", token, tls_ca, model_dir, model_name, device = "cpu", dtype = "bf16",
              work_dir = "vidgen-worker", frames_dir, lora_dir, metrics_listen, metrics_port_file;
  int threads = 0;
  int collective_timeout_seconds = 60;
  std::int64_t device_memory = 0;
  bool memory_probe = true;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vidgen-worker: a worker group that runs vidgen-server's jobs"};
  app.set_config("--config", "", "a TOML/INI file with any of these flags");
  Options options;
  std::string token_file;
  int nproc = 1;
  bool cfg_parallel = false;
  vidgen::parallel::MeshOptions mesh;
  app.add_option("--server", options.server, "vidgen-server's host:port")->capture_default_str();
  app.add_option("--worker-token-file", token_file, "the server's worker token (or VIDGEN_WORKER_TOKEN)");
  app.add_option("--tls-ca", options.tls_ca, "PEM roots to reach a TLS server, or 'system'");
  app.add_option("--model-dir", options.model_dir,
                 "a Wan2.1 or HunyuanVideo checkpoint folder (released or diffusers layout)")
      ->required();
  app.add_option("--model-name", options.model_name, "the name jobs use (default: the folder's name)");
  std::string family_name;
  app.add_option("--family", family_name, "wan2.1 or hunyuanvideo (default: told by the folder)");
  app.add_option("--nproc", nproc, "local ranks to start (like torchrun)")->capture_default_str();
  app.add_option("--ulysses", mesh.ulysses)->capture_default_str();
  app.add_option("--ring", mesh.ring)->capture_default_str();
  app.add_flag("--cfg-parallel", cfg_parallel, "conditional and unconditional passes on two rank halves");
  app.add_option("--device", options.device, "cpu or cuda (ranks: cuda means cuda:LOCAL_RANK)")->capture_default_str();
  app.add_option("--dtype", options.dtype, "fp32, bf16 or fp16")->capture_default_str();
  app.add_option("--threads", options.threads, "intra-op threads per rank (0: cores / local ranks)");
  app.add_option("--work-dir", options.work_dir, "where videos are encoded before upload")->capture_default_str();
  app.add_option("--keep-frames", options.frames_dir, "write each job's frames before encoding here as <id>.rgb");
  app.add_option("--lora-dir", options.lora_dir, "LoRAs jobs may name: <name>.safetensors (PEFT, kohya or deltas)");
  std::size_t kept_lora_sets = 2;
  app.add_option("--lora-sets-kept", kept_lora_sets,
                 "LoRA sets kept merged on the host besides the one in use (each: the host memory of what it changes)")
      ->capture_default_str();
  app.add_option("--metrics-listen", options.metrics_listen,
                 "host:port where the leader serves Prometheus metrics at /metrics (port 0: any)");
  app.add_option("--metrics-port-file", options.metrics_port_file, "write the metrics port actually bound here");
  app.add_option("--collective-timeout", options.collective_timeout_seconds,
                 "seconds a collective waits for a peer before the group counts as broken")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--device-memory", options.device_memory,
                 "what one rank may use, e.g. 80GiB (default: the GPU's memory; on CPU the machine's or the "
                 "container's, shared by the local ranks)")
      ->transform(CLI::AsSizeValue(false));
  app.add_flag("!--no-memory-probe", options.memory_probe,
               "skip the probe jobs at start that measure what jobs need per rank (the server then admits every job "
               "and places it without regard to memory)");
  CLI11_PARSE(app, argc, argv);

  return vidgen::RunTool("vidgen-worker", [&] {
    mesh.cfg = cfg_parallel ? 2 : 1;
    if (nproc > 1 && !vidgen::parallel::IsRank()) {
      return vidgen::parallel::LaunchLocalRanks(nproc, argv, "vidgen-worker");
    }
    vidgen::TuneCpuAllocator();
    torch::NoGradGuard no_grad;
    std::unique_ptr<vidgen::parallel::World> world;
    c10::Device device(options.device);
    int local_ranks = 1;
    if (vidgen::parallel::IsRank()) {
      vidgen::FollowLauncher();
      auto rendezvous = vidgen::parallel::RendezvousFromEnv();
      if (mesh.world() == 1) mesh.ulysses = rendezvous.world_size;  // default layout: Ulysses over every rank
      device = vidgen::parallel::RankDevice(device, rendezvous);
      rendezvous.backend = vidgen::parallel::BackendFor(device);
      rendezvous.timeout = std::chrono::seconds(options.collective_timeout_seconds);
      // An idle group waits on the store for its next job: only the collectives have a timeout.
      world = std::make_unique<vidgen::parallel::World>(rendezvous, mesh);
      if (const char* local = std::getenv("LOCAL_WORLD_SIZE")) local_ranks = std::max(1, std::atoi(local));
    }
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    torch::set_num_threads(options.threads > 0 ? options.threads : std::max(1, cores / local_ranks));
    if (options.model_name.empty()) options.model_name = std::filesystem::path(options.model_dir).filename();
    if (options.model_name.empty()) {
      options.model_name = std::filesystem::path(options.model_dir).parent_path().filename();
    }

    const auto family =
        family_name.empty() ? vidgen::DetectFamily(options.model_dir) : vidgen::spec::ParseFamily(family_name);
    vidgen::PipelineOptions load;
    load.world = world.get();
    load.dtype = vidgen::ParseModelDType(options.dtype);
    load.device = device;
    const auto load_start = std::chrono::steady_clock::now();
    auto pipeline = vidgen::LoadPipeline(options.model_dir, family, load);
    const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
    const auto side_multiple = pipeline->side_multiple();
    const auto task = pipeline->task();
    std::optional<vidgen::worker::WorldConsensus> consensus;
    if (world) consensus.emplace(*world);
    vidgen::worker::GroupOptions group_options;
    group_options.work_dir = options.work_dir;
    group_options.frames_dir = options.frames_dir;
    group_options.lora_dir = options.lora_dir;
    group_options.kept_lora_sets = kept_lora_sets;
    group_options.device = device;
    const auto layout = world ? world->mesh() : vidgen::parallel::MeshOptions{};
    // Only the leader serves metrics: it sees every job whole.
    const bool leader = !world || world->rank() == 0;
    vidgen::metrics::Registry registry;
    std::optional<vidgen::worker::WorkerMetrics> metrics;
    std::optional<vidgen::metrics::Endpoint> metrics_endpoint;
    if (leader && !options.metrics_listen.empty()) {
      metrics.emplace(registry, std::string(vidgen::spec::FamilyName(family)),
                      fmt::format("ulysses{}_ring{}_cfg{}", layout.ulysses, layout.ring, layout.cfg));
      metrics->Loaded(load_seconds);
      group_options.metrics = &*metrics;
      metrics_endpoint.emplace(registry, options.metrics_listen);
      spdlog::info("metrics on port {}", metrics_endpoint->port());
      if (!options.metrics_port_file.empty())
        vidgen::WritePortFile(options.metrics_port_file, metrics_endpoint->port());
    }
    vidgen::worker::Group group(std::move(pipeline), consensus ? &*consensus : nullptr, group_options);
    if (!group.leader()) group.Follow();

    std::filesystem::create_directories(options.work_dir);
    options.token = vidgen::rpc::ReadSecret(token_file, "VIDGEN_WORKER_TOKEN");
    vidgen::worker::LinkOptions link_options{options.server, options.token, options.tls_ca, {}};
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    link_options.group.set_name(fmt::format("{}:{}", host, ::getpid()));
    link_options.group.set_world_size(world ? world->size() : 1);
    link_options.group.mutable_layout()->set_ulysses(layout.ulysses);
    link_options.group.mutable_layout()->set_ring(layout.ring);
    link_options.group.mutable_layout()->set_cfg_parallel(layout.cfg == 2);
    auto* model = link_options.group.add_models();
    model->set_name(options.model_name);
    model->set_family(std::string(vidgen::spec::FamilyName(family)));
    model->set_side_multiple(static_cast<int>(side_multiple));
    model->set_task(std::string(vidgen::spec::TaskName(task)));
    for (const auto& [name, adapter] : group.loras()) {
      model->add_loras(name);
      if (const auto defaults = vidgen::LoraDefaults(name, adapter)) {
        (*model->mutable_lora_defaults())[name] = vidgen::rpc::ToProto(*defaults);
      }
    }
    const auto checkpoint_defaults = vidgen::ReadCheckpointDefaults(options.model_dir);
    if (checkpoint_defaults) {
      *model->mutable_defaults() =
          vidgen::rpc::ToProto(*checkpoint_defaults);  // jobs without a size get the trained one
    }
    if (options.memory_probe) {
      const std::int64_t device_bytes = options.device_memory > 0
                                            ? options.device_memory
                                            : vidgen::TotalMemory(device) / (device.is_cpu() ? local_ranks : 1);
      const vidgen::spec::ModelInfo info{options.model_name, family, checkpoint_defaults,
                                         static_cast<int>(side_multiple), task};
      *model->mutable_memory() = vidgen::rpc::ToProto(group.ProbeMemory(info, device_bytes));
    }
    vidgen::worker::ServerLink link(link_options);
    spdlog::info("serving {} ({} rank(s), {}) for {}", options.model_name, world ? world->size() : 1, options.device,
                 options.server);
    group.Lead(link);
  });
}
