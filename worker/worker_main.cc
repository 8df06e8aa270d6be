// vidgen-worker: one worker group. Rank 0 (the leader) leases jobs from vidgen-server and hands each to the group
// through the rendezvous store; every rank runs the pipeline on its share; the leader encodes, uploads and reports.
// `--nproc N` starts N local ranks (like torchrun); with RANK/WORLD_SIZE/... set, the process joins a group as one
// rank (Slurm, Kubernetes).
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/cpu_allocator.h"
#include "common/error.h"
#include "common/tool_main.h"
#include "common/rank_launch.h"
#include "models/families.h"
#include "models/wan/config.h"
#include "parallel/launch.h"
#include "parallel/world.h"
#include "proto/rpc.h"
#include "proto/spec_proto.h"
#include "worker/job.h"
#include "worker/server_link.h"

namespace {

using vidgen::Error;
using vidgen::ErrorCode;
namespace v1 = vidgen::v1;

struct Options {
  std::string server = "localhost:50051", token, tls_ca, model_dir, model_name, device = "cpu", dtype = "bf16",
              work_dir = "vidgen-worker";
  int threads = 0;
  int collective_timeout_seconds = 60;
};

// Jobs go from the leader to the group under "job/<n>"; before step k of job n the leader publishes whether to stop
// under "step/<n>/<k>", so every rank stops at the same step.
std::string JobKey(std::int64_t n) {
  return "job/" + std::to_string(n);
}
std::string StepKey(std::int64_t n, int k) {
  return "step/" + std::to_string(n) + "/" + std::to_string(k);
}

class Group {
 public:
  Group(const Options& options, vidgen::parallel::World* world, std::unique_ptr<vidgen::VideoPipeline> pipeline)
      : options_(options), world_(world), pipeline_(std::move(pipeline)) {}

  bool leader() const { return !world_ || world_->rank() == 0; }

  // Followers: run every job the leader publishes, until the leader's store goes away.
  [[noreturn]] void Follow() {
    for (std::int64_t n = 0;; ++n) {
      std::optional<std::string> bytes;
      while (!(bytes = world_->Await(JobKey(n), std::chrono::hours(1)))) {
      }
      v1::JobSpec spec;
      spec.ParseFromString(*bytes);
      try {
        Generate(n, spec, nullptr);
      } catch (const Error& e) {
        if (e.code() == ErrorCode::kUnavailable) throw;  // the group is broken
        spdlog::info("rank {}: job {} ended: {}", world_->rank(), n, e.what());
      }
    }
  }

  // The leader: lease, run, report, forever.
  [[noreturn]] void Lead(vidgen::worker::ServerLink& link) {
    for (std::int64_t n = 0;; ++n) {
      std::optional<v1::LeaseJobResponse> lease;
      while (!(lease = link.Lease(std::chrono::seconds(10)))) {
      }
      if (world_ && n > 0) ForgetJob(n - 1);
      RunLeased(link, n, *lease);
    }
  }

 private:
  // Every rank: the pipeline over job n; the leader's reporter (when given) carries progress and cancel.
  vidgen::GenerationResult Generate(std::int64_t n, const v1::JobSpec& spec, vidgen::worker::Reporter* reporter) {
    const auto request = vidgen::worker::ToGenerationRequest(spec);
    vidgen::GenerationCallbacks callbacks;
    int k = 0;
    callbacks.cancelled = [&] {
      const int step = k++;
      if (!world_) return reporter->cancelled();
      if (leader()) {
        const bool stop = reporter->cancelled();
        world_->Publish(StepKey(n, step), stop ? "1" : "0");
        return stop;
      }
      const auto decision = world_->Await(StepKey(n, step), std::chrono::minutes(30));
      if (!decision) vidgen::Fail(ErrorCode::kUnavailable, "the leader did not decide step {} of job {}", step, n);
      return *decision == "1";
    };
    if (reporter) {
      callbacks.on_step = [&](const vidgen::StepProgress& progress) {
        const double eta = progress.seconds / progress.step * (progress.total - progress.step);
        reporter->Update(progress.step == progress.total ? "decoding" : "denoising", progress.step, progress.total,
                         eta);
      };
    }
    return pipeline_->Generate(request, callbacks);
  }

  void RunLeased(vidgen::worker::ServerLink& link, std::int64_t n, const v1::LeaseJobResponse& lease) {
    const std::string& id = lease.job_id();
    spdlog::info("job {} (attempt {}): {}x{}, {} frames, {} steps, cache {}", id, lease.attempt(),
                 lease.spec().width(), lease.spec().height(), lease.spec().frames(), lease.spec().steps(),
                 lease.spec().cache().preset());
    v1::FailJobRequest failure;
    failure.set_job_id(id);
    failure.set_lease_id(lease.lease_id());
    bool group_broken = false;
    {
      vidgen::worker::Reporter reporter(link, id, lease.lease_id());
      try {
        if (world_) world_->Publish(JobKey(n), lease.spec().SerializeAsString());
        const auto start = std::chrono::steady_clock::now();
        const auto result = Generate(n, lease.spec(), &reporter);
        reporter.Update("encoding_video");
        const auto video = Encode(id, lease.spec().output(), result.frames);
        reporter.Update("uploading");
        const std::string mime = lease.spec().output().container() == "webm" ? "video/webm" : "video/mp4";
        link.Upload(id, lease.lease_id(), video, mime);
        std::filesystem::remove(video);
        v1::CompleteJobRequest done;
        done.set_job_id(id);
        done.set_lease_id(lease.lease_id());
        done.set_full_steps(result.stats.full_steps);
        done.set_predicted_steps(result.stats.predicted_steps);
        done.set_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        link.Complete(done);
        spdlog::info("job {} done in {:.1f} s", id, done.seconds());
        return;
      } catch (const Error& e) {
        if (reporter.lease_lost()) {
          spdlog::warn("job {}: the lease was lost; dropped", id);
          return;
        }
        failure.set_message(e.what());
        failure.set_cancelled(e.code() == ErrorCode::kCancelled);
        group_broken = e.code() == ErrorCode::kUnavailable;
        failure.set_retryable(group_broken);
      } catch (const std::exception& e) {
        failure.set_message(std::string("internal error: ") + e.what());
      }
    }
    spdlog::warn("job {} {}: {}", id, failure.cancelled() ? "cancelled" : "failed", failure.message());
    try {
      link.Fail(failure);
    } catch (const Error& e) {
      spdlog::warn("job {}: could not report the failure: {}", id, e.what());
    }
    if (group_broken) vidgen::Fail(ErrorCode::kUnavailable, "the worker group is broken: {}", failure.message());
  }

  std::string Encode(const std::string& id, const v1::OutputSettings& output, const at::Tensor& frames) {
    const auto options = vidgen::worker::ToVideoOptions(output);
    const auto contiguous = frames.to(torch::kCPU).contiguous();
    const auto* data = contiguous.data_ptr<std::uint8_t>();
    const std::vector<std::uint8_t> rgb(data, data + contiguous.numel());
    const std::string path = fmt::format("{}/{}.{}", options_.work_dir, id, options.container);
    vidgen::worker::EncodeVideo(rgb, static_cast<int>(frames.size(0)), static_cast<int>(frames.size(1)),
                                static_cast<int>(frames.size(2)), options, path);
    return path;
  }

  void ForgetJob(std::int64_t n) {
    world_->Forget(JobKey(n));
    for (int k = 0; k < 1000 && world_->Await(StepKey(n, k), std::chrono::milliseconds(0)); ++k) {
      world_->Forget(StepKey(n, k));
    }
  }

  const Options& options_;
  vidgen::parallel::World* world_;
  std::unique_ptr<vidgen::VideoPipeline> pipeline_;
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
  app.add_option("--model-dir", options.model_dir, "a Wan2.1 or HunyuanVideo checkpoint folder (released or diffusers layout)")
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
  app.add_option("--collective-timeout", options.collective_timeout_seconds,
                 "seconds a collective waits for a peer before the group counts as broken")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
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

    const auto family = family_name.empty() ? vidgen::DetectFamily(options.model_dir) : vidgen::spec::ParseFamily(family_name);
    vidgen::PipelineOptions load;
    load.world = world.get();
    load.dtype = vidgen::ParseModelDType(options.dtype);
    load.device = device;
    auto pipeline = vidgen::LoadPipeline(options.model_dir, family, load);
    const auto side_multiple = pipeline->side_multiple();
    Group group(options, world.get(), std::move(pipeline));
    if (!group.leader()) group.Follow();

    std::filesystem::create_directories(options.work_dir);
    options.token = vidgen::rpc::ReadSecret(token_file, "VIDGEN_WORKER_TOKEN");
    vidgen::worker::LinkOptions link_options{options.server, options.token, options.tls_ca, {}};
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    link_options.group.set_name(fmt::format("{}:{}", host, ::getpid()));
    link_options.group.set_world_size(world ? world->size() : 1);
    auto* model = link_options.group.add_models();
    model->set_name(options.model_name);
    model->set_family(std::string(vidgen::spec::FamilyName(family)));
    model->set_side_multiple(static_cast<int>(side_multiple));
    if (const auto defaults = vidgen::worker::ReadCheckpointDefaults(options.model_dir)) {
      *model->mutable_defaults() = vidgen::rpc::ToProto(*defaults);  // jobs that leave size unset get the trained one
    }
    vidgen::worker::ServerLink link(link_options);
    spdlog::info("serving {} ({} rank(s), {}) for {}", options.model_name, world ? world->size() : 1, options.device,
                 options.server);
    group.Lead(link);
  });
}
