// vidgen-server: the public VideoService and the internal WorkerService over a durable SQLite job queue.
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/tool_main.h"
#include "proto/rpc.h"
#include "server/services.h"

namespace {

std::atomic<bool> stop_requested{false};

void RequestStop(int) {
  stop_requested = true;
}

std::vector<vidgen::v1::ServedModel> ParseModels(const std::vector<std::string>& specs) {
  std::vector<vidgen::v1::ServedModel> models;
  for (const auto& spec : specs) {
    vidgen::v1::ServedModel model;
    const auto colon = spec.find(':');
    model.set_name(spec.substr(0, colon));
    model.set_family(colon == std::string::npos ? "" : spec.substr(colon + 1));
    models.push_back(model);
  }
  return models;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vidgen-server: video generation jobs over gRPC, kept in a durable queue"};
  app.set_config("--config", "", "a TOML/INI file with any of these flags");
  std::string listen = "0.0.0.0:50051", data_dir = "vidgen-data", keys_file, worker_token_file, tls_cert, tls_key,
              port_file;
  std::vector<std::string> models;
  int max_queue = 1000, max_attempts = 3, lease_seconds = 30, heartbeat_seconds = 5, max_request_mib = 8;
  double retention_hours = 72;
  std::int64_t max_video_mib = 4096;
  vidgen::server::SpecLimits limits;
  app.add_option("--listen", listen, "host:port to serve on (port 0: any free port)")->capture_default_str();
  app.add_option("--port-file", port_file, "write the port actually bound to this file");
  app.add_option("--data-dir", data_dir, "job store (jobs.db) and videos")->capture_default_str();
  app.add_option("--keys-file", keys_file, "JSON [{\"tenant\": ..., \"key\": ...}]; without it, one open tenant");
  app.add_option("--worker-token-file", worker_token_file, "the token worker groups present (or VIDGEN_WORKER_TOKEN)");
  app.add_option("--tls-cert", tls_cert, "PEM certificate chain: serve TLS");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert");
  app.add_option("--model", models, "a model to accept jobs for before any worker serves it: name[:family]");
  app.add_option("--max-queue", max_queue, "queued jobs beyond which SubmitJob is refused")->capture_default_str();
  app.add_option("--max-attempts", max_attempts, "leases a job may lose before it fails")->capture_default_str();
  app.add_option("--lease-seconds", lease_seconds, "a lease lapses after this silence")->capture_default_str();
  app.add_option("--heartbeat-seconds", heartbeat_seconds, "how often groups report")->capture_default_str();
  app.add_option("--retention-hours", retention_hours, "videos are deleted this long after their job ended")
      ->capture_default_str();
  app.add_option("--max-request-mib", max_request_mib, "largest gRPC message accepted")->capture_default_str();
  app.add_option("--max-video-mib", max_video_mib, "largest video accepted from a worker")->capture_default_str();
  app.add_option("--max-prompt-bytes", limits.max_prompt_bytes)->capture_default_str();
  app.add_option("--max-pixel-frames", limits.max_pixel_frames, "limit on width × height × frames")
      ->capture_default_str();
  app.add_option("--max-steps", limits.max_steps)->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  return vidgen::RunTool("vidgen-server", [&] {
    const std::string worker_token = vidgen::rpc::ReadSecret(worker_token_file, "VIDGEN_WORKER_TOKEN");
    if (worker_token.empty()) {
      throw vidgen::Error(vidgen::ErrorCode::kInvalidArgument,
                          "give the worker token with --worker-token-file or VIDGEN_WORKER_TOKEN");
    }
    if (keys_file.empty()) spdlog::warn("no --keys-file: every client is the tenant 'default'");

    std::filesystem::create_directories(data_dir);
    vidgen::server::StoreLimits store_limits;
    store_limits.max_queued = max_queue;
    store_limits.max_attempts = max_attempts;
    store_limits.lease = std::chrono::seconds(lease_seconds);
    vidgen::server::JobStore jobs(data_dir + "/jobs.db", store_limits);
    vidgen::server::ArtifactStore artifacts(data_dir + "/videos", max_video_mib << 20);
    vidgen::server::GroupRegistry groups(std::chrono::seconds(3 * lease_seconds), ParseModels(models));
    const vidgen::server::Authenticator auth(keys_file, worker_token);
    vidgen::server::ServerState state{jobs, artifacts, groups, auth, limits, std::chrono::seconds(heartbeat_seconds)};
    vidgen::server::VideoServiceImpl video_service(state);
    vidgen::server::WorkerServiceImpl worker_service(state);

    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
    if (!tls_cert.empty()) {
      grpc::SslServerCredentialsOptions options;
      options.pem_key_cert_pairs.push_back({vidgen::rpc::ReadSmallFile(tls_key), vidgen::rpc::ReadSmallFile(tls_cert)});
      credentials = grpc::SslServerCredentials(options);
    }
    int port = 0;
    builder.AddListeningPort(listen, credentials, &port);
    builder.SetMaxReceiveMessageSize(max_request_mib << 20);
    builder.SetMaxSendMessageSize(max_request_mib << 20);
    builder.RegisterService(&video_service);
    builder.RegisterService(&worker_service);
    const auto server = builder.BuildAndStart();
    if (!server || port == 0) throw vidgen::Error(vidgen::ErrorCode::kUnavailable, "cannot listen on " + listen);
    auto* health = server->GetHealthCheckService();
    for (const char* service : {"", "vidgen.v1.VideoService", "vidgen.v1.WorkerService"}) {
      health->SetServingStatus(service, true);
    }
    if (!port_file.empty()) {
      std::ofstream(port_file + ".tmp") << port << "\n";
      std::filesystem::rename(port_file + ".tmp", port_file);
    }
    spdlog::info("vidgen-server on port {} ({}), data in {}", port, tls_cert.empty() ? "plaintext" : "TLS", data_dir);

    std::signal(SIGINT, RequestStop);
    std::signal(SIGTERM, RequestStop);
    // The janitor: lapsed leases every second, expired videos every minute.
    auto last_retention = std::chrono::steady_clock::now() - std::chrono::hours(1);
    while (!stop_requested) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      if (const int lapsed = jobs.ExpireLeases()) spdlog::warn("{} lease(s) lapsed", lapsed);
      if (std::chrono::steady_clock::now() - last_retention > std::chrono::minutes(1)) {
        last_retention = std::chrono::steady_clock::now();
        const auto cutoff = std::chrono::system_clock::now() -
                            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                std::chrono::duration<double, std::ratio<3600>>(retention_hours));
        for (const auto& path : jobs.ExpireArtifacts(cutoff)) artifacts.Remove(path);
      }
    }
    spdlog::info("stopping");
    health->Shutdown();  // NOT_SERVING from now on, while calls in flight finish
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    return 0;
  });
}
