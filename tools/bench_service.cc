#include "tools/bench_service.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/process_memory.h"
#include "common/rank_launch.h"
#include "vidgen/v1/video_service.grpc.pb.h"

extern char** environ;

namespace vidgen::tools {
namespace {

namespace fs = std::filesystem;
constexpr const char* kKey = "bench-key-0123456789abcdef";

// vidgen-server on a loopback port in `dir`, killed when this goes.
class ServerProcess {
 public:
  ServerProcess(const std::string& binary, const std::string& dir, int max_queue) : port_(FreeLoopbackPort()) {
    std::ofstream(dir + "/keys.json") << fmt::format(R"([{{"tenant": "bench", "key": "{}"}}])", kKey);
    std::ofstream(dir + "/worker.token") << "bench-worker-token\n";
    std::vector<std::string> args = {binary,
                                     "--listen",
                                     address(),
                                     "--data-dir",
                                     dir + "/data",
                                     "--keys-file",
                                     dir + "/keys.json",
                                     "--worker-token-file",
                                     dir + "/worker.token",
                                     "--model",
                                     "bench:wan2.1",
                                     "--max-queue",
                                     std::to_string(max_queue)};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string log = dir + "/server.log";
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) Fail(ErrorCode::kNotFound, "cannot start '{}': {}", binary, std::strerror(rc));
  }
  ~ServerProcess() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  std::string address() const { return fmt::format("127.0.0.1:{}", port_); }
  pid_t pid() const { return pid_; }

 private:
  int port_;
  pid_t pid_ = -1;
};

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization", std::string("Bearer ") + kKey);
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return context;
}

double Percentile(std::vector<double> sorted, double q) {
  std::sort(sorted.begin(), sorted.end());
  const auto index = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size()))) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

}  // namespace

int RunServiceBench(const ServiceBenchOptions& options) {
  if (options.concurrency < 1 || options.rounds < 1 || options.channels < 1) {
    Fail(ErrorCode::kInvalidArgument, "--concurrency, --rounds and --channels must be positive");
  }
  std::string binary = options.server_bin;
  if (binary.empty()) binary = (fs::canonical("/proc/self/exe").parent_path().parent_path() / "server/vidgen-server");
  const fs::path dir = fs::temp_directory_path() / fmt::format("vidgen-bench-service-{}", ::getpid());
  fs::create_directories(dir);
  const int submits = options.concurrency * options.rounds;
  std::vector<double> latencies(static_cast<std::size_t>(submits));
  std::int64_t rss_before = 0, rss_after = 0, peak = 0;
  double seconds = 0;
  int failed = 0;
  std::string first_error;
  {
    ServerProcess server(binary, dir.string(), submits + 1);
    std::vector<std::shared_ptr<grpc::Channel>> channels;
    for (int i = 0; i < options.channels; ++i) {
      grpc::ChannelArguments arguments;
      arguments.SetInt("grpc.channel_id", i);  // distinct arguments: a connection each, not one shared
      channels.push_back(grpc::CreateCustomChannel(server.address(), grpc::InsecureChannelCredentials(), arguments));
    }
    // Ready when ListModels answers.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    auto stub = v1::VideoService::NewStub(channels[0]);
    while (true) {
      v1::ListModelsResponse models;
      if (stub->ListModels(Context().get(), {}, &models).ok()) break;
      if (std::chrono::steady_clock::now() > deadline) {
        Fail(ErrorCode::kUnavailable, "vidgen-server did not answer (log: {}/server.log)", dir.string());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    rss_before = ProcessStatusBytes("VmRSS", std::to_string(server.pid()));
    std::mutex mutex;
    std::barrier start(options.concurrency);
    std::vector<std::thread> clients;
    const auto begin = std::chrono::steady_clock::now();
    for (int c = 0; c < options.concurrency; ++c) {
      clients.emplace_back([&, c] {
        auto client = v1::VideoService::NewStub(channels[static_cast<std::size_t>(c % options.channels)]);
        for (int round = 0; round < options.rounds; ++round) {
          start.arrive_and_wait();  // every thread's submit of a round leaves at once
          v1::SubmitJobRequest request;
          request.mutable_spec()->set_model("bench");
          request.mutable_spec()->set_prompt(fmt::format("a red ball, client {} round {}", c, round));
          v1::SubmitJobResponse response;
          const auto sent = std::chrono::steady_clock::now();
          const auto status = client->SubmitJob(Context().get(), request, &response);
          latencies[static_cast<std::size_t>(round * options.concurrency + c)] =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
          if (!status.ok()) {
            std::lock_guard lock(mutex);
            if (failed++ == 0) first_error = status.error_message();
          }
        }
      });
    }
    for (auto& client : clients) client.join();
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    rss_after = ProcessStatusBytes("VmRSS", std::to_string(server.pid()));
    peak = ProcessStatusBytes("VmHWM", std::to_string(server.pid()));
  }
  fs::remove_all(dir);
  if (failed > 0) Fail(ErrorCode::kInternal, "{} of {} submits failed; the first: {}", failed, submits, first_error);
  const nlohmann::json report = {{"benchmark", "service"},
                                 {"concurrency", options.concurrency},
                                 {"rounds", options.rounds},
                                 {"submits", submits},
                                 {"submit_p50_ms", 1000 * Percentile(latencies, 0.50)},
                                 {"submit_p99_ms", 1000 * Percentile(latencies, 0.99)},
                                 {"submit_max_ms", 1000 * Percentile(latencies, 1.0)},
                                 {"submits_per_second", submits / seconds},
                                 {"server_rss_before_bytes", rss_before},
                                 {"server_rss_after_bytes", rss_after},
                                 {"server_peak_rss_bytes", peak}};
  if (options.json) {
    fmt::print("{}\n", report.dump(2));
  } else {
    fmt::print(
        "{} submits, {} at once: p50 {:.1f} ms, p99 {:.1f} ms, max {:.1f} ms, {:.0f}/s; server RSS {:.1f} → "
        "{:.1f} MiB (peak {:.1f})\n",
        submits, options.concurrency, report["submit_p50_ms"].get<double>(), report["submit_p99_ms"].get<double>(),
        report["submit_max_ms"].get<double>(), report["submits_per_second"].get<double>(), rss_before / 1048576.0,
        rss_after / 1048576.0, peak / 1048576.0);
  }
  return 0;
}

}  // namespace vidgen::tools
