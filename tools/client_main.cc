// vidgen: the command-line client of vidgen-server. Submit a job, watch it with a progress bar, download the video
// (resuming a partial download and verifying its SHA-256), cancel, list.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <google/protobuf/util/json_util.h>

#include "common/error.h"
#include "common/file.h"
#include "common/sha256.h"
#include "common/tool_main.h"
#include "proto/rpc.h"
#include "tools/lora_flag.h"
#include "tools/size_flag.h"
#include "vidgen/v1/video_service.grpc.pb.h"

namespace {

using vidgen::Error;
using vidgen::ErrorCode;
namespace v1 = vidgen::v1;

struct Connection {
  std::string server = "localhost:50051", key, tls_ca;

  std::unique_ptr<v1::VideoService::Stub> Stub() const {
    return v1::VideoService::NewStub(vidgen::rpc::MakeChannel(server, tls_ca));
  }
  std::unique_ptr<grpc::ClientContext> Context() const {
    auto context = std::make_unique<grpc::ClientContext>();
    vidgen::rpc::AddBearer(*context, key);
    return context;
  }
};

std::string EnvOr(const char* name, std::string fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : std::move(fallback);
}

std::string Json(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

std::string Describe(const v1::Job& job) {
  switch (job.state()) {
    case v1::QUEUED: return fmt::format("queued, position {}", job.queue_position());
    case v1::RUNNING:
      if (job.stage() == "denoising") {
        return fmt::format("denoising step {}/{}, about {:.0f} s left", job.step(), job.total_steps(),
                           job.eta_seconds());
      }
      return job.stage();
    case v1::SUCCEEDED: return fmt::format("succeeded: {} bytes ({})", job.video_bytes(), job.message());
    case v1::FAILED: return "failed: " + job.message();
    case v1::CANCELLED: return "cancelled: " + job.message();
    default: return "unknown";
  }
}

// Follows a job to its end; a live line on a terminal, one line per change otherwise. Returns the final job.
v1::Job Watch(const Connection& connection, const std::string& job_id) {
  const bool tty = ::isatty(STDERR_FILENO);
  v1::Job job;
  for (int attempt = 0;; ++attempt) {
    auto stub = connection.Stub();
    auto context = connection.Context();
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    auto reader = stub->WatchJob(context.get(), request);
    std::string last;
    while (reader->Read(&job)) {
      std::string line = Describe(job);
      if (job.state() == v1::RUNNING && job.total_steps() > 0) {
        const int width = 30, done = width * job.step() / job.total_steps();
        line = fmt::format("[{}{}] {}", std::string(done, '#'), std::string(width - done, '.'), line);
      }
      if (tty) {
        fmt::print(stderr, "\r\033[K{}", line);
      } else if (line != last) {
        fmt::print(stderr, "{}\n", line);
      }
      last = std::move(line);
    }
    const grpc::Status status = reader->Finish();
    if (tty) fmt::print(stderr, "\n");
    if (status.ok()) return job;
    // A restarting server: follow the job again once it is back.
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE && attempt < 60) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    vidgen::rpc::ThrowStatus(status, "WatchJob");
  }
}

// Downloads into `out` through `out.part`, resuming a partial file, then checks the SHA-256 and renames.
void Download(const Connection& connection, const std::string& job_id, const std::string& out) {
  const std::string part = out + ".part";
  std::int64_t offset = std::filesystem::exists(part) ? static_cast<std::int64_t>(std::filesystem::file_size(part)) : 0;
  std::string sha256;
  std::int64_t total = -1;
  {
    std::ofstream file(part, std::ios::binary | std::ios::app);
    if (!file) throw Error(ErrorCode::kInvalidArgument, fmt::format("cannot write '{}'", part));
    auto stub = connection.Stub();
    auto context = connection.Context();
    v1::DownloadVideoRequest request;
    request.set_job_id(job_id);
    request.set_offset(offset);
    auto reader = stub->DownloadVideo(context.get(), request);
    v1::VideoChunk chunk;
    while (reader->Read(&chunk)) {
      if (chunk.offset() != offset) throw Error(ErrorCode::kDataLoss, "the server sent bytes out of order");
      file.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
      offset += static_cast<std::int64_t>(chunk.data().size());
      sha256 = chunk.sha256();
      total = chunk.total_bytes();
    }
    const grpc::Status status = reader->Finish();
    file.flush();
    if (!status.ok()) {
      // OUT_OF_RANGE: the partial file is longer than the video, so it is not a prefix of it.
      if (status.error_code() == grpc::StatusCode::OUT_OF_RANGE) std::filesystem::remove(part);
      vidgen::rpc::ThrowStatus(status, "DownloadVideo");
    }
  }
  if (total < 0) {  // the partial file was already whole: the server sent no chunk; ask for the digest
    auto stub = connection.Stub();
    auto context = connection.Context();
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    v1::Job job;
    if (const auto status = stub->GetJob(context.get(), request, &job); !status.ok()) {
      vidgen::rpc::ThrowStatus(status, "GetJob");
    }
    sha256 = job.video_sha256();
    total = job.video_bytes();
  }
  const std::string actual = vidgen::Sha256OfFile(part);
  if (offset != total || actual != sha256) {
    std::filesystem::remove(part);
    throw Error(ErrorCode::kDataLoss, fmt::format("'{}' has {} of {} bytes and SHA-256 {}, the server's is {}; "
                                                  "removed it, download again",
                                                  part, offset, total, actual, sha256));
  }
  std::filesystem::rename(part, out);
  fmt::print(stderr, "saved {} ({} bytes, sha256 {})\n", out, total, sha256);
}

void Check(const grpc::Status& status, const char* what) {
  if (!status.ok()) vidgen::rpc::ThrowStatus(status, what);
}

int ExitCode(const v1::Job& job) {
  return job.state() == v1::SUCCEEDED ? 0 : job.state() == v1::CANCELLED ? 3 : 4;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vidgen: submit video jobs to a vidgen-server, follow them, fetch the videos"};
  app.require_subcommand(1);
  Connection connection;
  connection.server = EnvOr("VIDGEN_SERVER", connection.server);
  connection.key = EnvOr("VIDGEN_API_KEY", "");
  connection.tls_ca = EnvOr("VIDGEN_TLS_CA", "");
  app.add_option("--server", connection.server, "host:port (VIDGEN_SERVER)")->capture_default_str();
  app.add_option("--key", connection.key, "API key (VIDGEN_API_KEY)");
  app.add_option("--tls-ca", connection.tls_ca, "PEM roots for TLS, or 'system' (VIDGEN_TLS_CA); empty: plaintext");

  v1::SubmitJobRequest submit;
  auto& spec = *submit.mutable_spec();
  std::string size, cache_preset, cache_guidance, cache_expansion, out;
  int cache_interval = -1, cache_order = -1, priority = 0, ulysses = 0, ring = 0, frames = 0, steps = 0, fps = 0,
      quality = 0;
  double guidance = 0, shift = 0;
  std::int64_t seed = 0;
  std::vector<std::string> loras;
  std::vector<int> timesteps;
  std::string model, prompt, negative_prompt, solver, container, codec, idempotency_key, image_file, last_image_file;
  bool wait = false, cfg_parallel = false, cache_calibrated = false;
  auto* submit_command = app.add_subcommand("submit", "queue a job and print its id");
  submit_command->add_option("--model", model, "a model from `vidgen models`")->required();
  submit_command->add_option("--prompt", prompt)->required();
  submit_command->add_option("--negative-prompt", negative_prompt);
  submit_command->add_option("--size", size, "WxH (default: the model's, else 832x480)");
  submit_command->add_option("--frames", frames, "4k+1 (default: the model's, else 81)");
  submit_command->add_option("--steps", steps, "default 50");
  submit_command->add_option("--guidance", guidance, "default 5");
  submit_command->add_option("--shift", shift, "default 5");
  submit_command->add_option("--seed", seed);
  submit_command->add_option("--image", image_file,
                             "i2v/flf2v models: the first frame (PNG or JPEG); --size is then an area");
  submit_command->add_option("--last-image", last_image_file, "flf2v models: the last frame");
  submit_command->add_option("--lora", loras, "NAME[:SCALE], a LoRA the model lists (repeat to stack)");
  submit_command->add_option("--solver", solver, "unipc, dpm++ or euler");
  submit_command->add_option("--timesteps", timesteps, "a given schedule, e.g. 1000,750,500,250 (distilled models)")
      ->delimiter(',');
  submit_command->add_option("--cache", cache_preset, "none, taylorseer-wan, fora, lite, taylorseer-cfg, ...");
  submit_command->add_option("--cache-interval", cache_interval);
  submit_command->add_option("--cache-order", cache_order);
  submit_command->add_option("--cache-guidance", cache_guidance, "separate or reuse-difference");
  submit_command->add_flag("--cache-calibrated", cache_calibrated, "scale the reused difference by the calibration");
  submit_command->add_option("--cache-expansion", cache_expansion, "taylor or newton");
  submit_command->add_option("--ulysses", ulysses);
  submit_command->add_option("--ring", ring);
  submit_command->add_flag("--cfg-parallel", cfg_parallel);
  submit_command->add_option("--container", container, "mp4 or webm");
  submit_command->add_option("--codec", codec, "h264, vp9 or av1");
  submit_command->add_option("--fps", fps);
  submit_command->add_option("--quality", quality, "CRF (lower is better)");
  submit_command->add_option("--priority", priority, "0..100, higher first");
  submit_command->add_option("--idempotency-key", idempotency_key, "repeat-safe submits");
  submit_command->add_flag("--wait", wait, "follow the job with a progress bar until it ends");
  submit_command->add_option("--out", out, "with --wait: download the video here");

  std::string job_id;
  auto* watch_command = app.add_subcommand("watch", "follow a job until it ends");
  watch_command->add_option("job", job_id)->required();
  bool json = false;
  auto* get_command = app.add_subcommand("get", "print a job");
  get_command->add_option("job", job_id)->required();
  get_command->add_flag("--json", json, "the whole job as JSON");
  auto* cancel_command = app.add_subcommand("cancel", "cancel a queued or running job");
  cancel_command->add_option("job", job_id)->required();
  auto* download_command = app.add_subcommand("download", "fetch a job's video (resumes, verifies)");
  download_command->add_option("job", job_id)->required();
  download_command->add_option("--out", out, "file to write")->required();
  std::vector<std::string> states;
  int limit = 20;
  std::string list_model;
  auto* list_command = app.add_subcommand("list", "your jobs, newest first");
  list_command->add_option("--state", states, "queued, running, succeeded, failed, cancelled");
  list_command->add_option("--model", list_model);
  list_command->add_option("--limit", limit)->capture_default_str();
  auto* models_command = app.add_subcommand("models", "the models the server serves");
  CLI11_PARSE(app, argc, argv);

  return vidgen::RunTool("vidgen", [&] {
    auto stub = connection.Stub();
    auto context = connection.Context();
    if (*submit_command) {
      spec.set_model(model);
      spec.set_prompt(prompt);
      spec.set_negative_prompt(negative_prompt);
      if (!size.empty()) {
        const auto [width, height] = vidgen::tools::ParseSizeFlag(size);
        spec.set_width(width);
        spec.set_height(height);
      }
      spec.set_frames(frames);
      spec.set_steps(steps);
      spec.set_guidance(guidance);
      spec.set_shift(shift);
      spec.set_seed(seed);
      spec.set_solver(solver);
      for (const int t : timesteps) spec.add_timesteps(t);
      constexpr std::uintmax_t kMaxImageBytes = 64 << 20;  // the server's limit decides; this bounds the read
      if (!image_file.empty()) spec.set_image(vidgen::ReadBoundedFile(image_file, "image", kMaxImageBytes));
      if (!last_image_file.empty()) {
        spec.set_last_image(vidgen::ReadBoundedFile(last_image_file, "last image", kMaxImageBytes));
      }
      for (const auto& lora : loras) {
        const auto flag = vidgen::tools::ParseLoraFlag(lora);
        auto& settings = *spec.add_loras();
        settings.set_name(flag.name);
        if (flag.scale) settings.set_scale(*flag.scale);
      }
      spec.mutable_cache()->set_preset(cache_preset);
      if (cache_interval >= 0) spec.mutable_cache()->set_interval(cache_interval);
      if (cache_order >= 0) spec.mutable_cache()->set_order(cache_order);
      if (!cache_guidance.empty()) spec.mutable_cache()->set_guidance(cache_guidance);
      if (cache_calibrated) spec.mutable_cache()->set_calibrated(true);
      if (!cache_expansion.empty()) spec.mutable_cache()->set_expansion(cache_expansion);
      spec.mutable_parallel()->set_ulysses(ulysses);
      spec.mutable_parallel()->set_ring(ring);
      spec.mutable_parallel()->set_cfg_parallel(cfg_parallel);
      spec.mutable_output()->set_container(container);
      spec.mutable_output()->set_codec(codec);
      spec.mutable_output()->set_fps(fps);
      spec.mutable_output()->set_quality(quality);
      submit.set_priority(priority);
      submit.set_idempotency_key(idempotency_key);
      v1::SubmitJobResponse response;
      Check(stub->SubmitJob(context.get(), submit, &response), "SubmitJob");
      fmt::print("{}\n", response.job_id());
      std::fflush(stdout);
      if (!wait) return 0;
      const auto job = Watch(connection, response.job_id());
      if (job.state() == v1::SUCCEEDED && !out.empty()) Download(connection, response.job_id(), out);
      return ExitCode(job);
    }
    if (*watch_command) return ExitCode(Watch(connection, job_id));
    if (*get_command || *cancel_command) {
      v1::Job job;
      if (*get_command) {
        v1::GetJobRequest request;
        request.set_job_id(job_id);
        Check(stub->GetJob(context.get(), request, &job), "GetJob");
      } else {
        v1::CancelJobRequest request;
        request.set_job_id(job_id);
        Check(stub->CancelJob(context.get(), request, &job), "CancelJob");
      }
      if (json) {
        fmt::print("{}\n", Json(job));
      } else {
        fmt::print("{}  {}  {}\n", job.id(), v1::JobState_Name(job.state()), Describe(job));
      }
      return 0;
    }
    if (*download_command) {
      Download(connection, job_id, out);
      return 0;
    }
    if (*list_command) {
      v1::ListJobsRequest request;
      for (auto state : states) {
        for (auto& c : state) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        v1::JobState value;
        if (!v1::JobState_Parse(state, &value)) {
          throw Error(ErrorCode::kInvalidArgument, fmt::format("--state '{}' is not a job state", state));
        }
        request.add_states(value);
      }
      request.set_model(list_model);
      request.set_page_size(limit);
      v1::ListJobsResponse response;
      Check(stub->ListJobs(context.get(), request, &response), "ListJobs");
      for (const auto& job : response.jobs()) {
        fmt::print("{}  {:<9}  {:<16}  {}\n", job.id(), v1::JobState_Name(job.state()), job.spec().model(),
                   Describe(job));
      }
      return 0;
    }
    if (*models_command) {
      v1::ListModelsResponse response;
      Check(stub->ListModels(context.get(), {}, &response), "ListModels");
      for (const auto& entry : response.models()) {
        const auto& d = entry.defaults();
        const auto defaults =
            entry.has_defaults() && d.width() > 0
                ? fmt::format(", made at {}x{}, {} frames unless asked", d.width(), d.height(), d.frames())
                : std::string();
        std::vector<std::string> loras;
        for (const auto& lora : entry.loras()) {
          const auto it = entry.lora_defaults().find(lora);
          const auto steps = it == entry.lora_defaults().end() ? 0 : it->second.timesteps_size();
          loras.push_back(steps > 0 ? fmt::format("{} ({} steps)", lora, steps) : lora);  // a step-distilled one
        }
        const auto lora_list = loras.empty() ? std::string() : fmt::format(", LoRAs: {}", fmt::join(loras, ", "));
        fmt::print("{}  {} {}  {} worker group(s), up to {} ranks{}{}\n", entry.name(), entry.family(),
                   entry.task().empty() ? "t2v" : entry.task(), entry.worker_groups(), entry.max_world_size(), defaults,
                   lora_list);
      }
      return 0;
    }
    return 0;
  });
}
