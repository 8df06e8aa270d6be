// vidgen-server: the public VideoService and the internal WorkerService over a durable SQLite job queue.
#include <csignal>
#include <filesystem>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/file.h"
#include "common/tool_main.h"
#include "metrics/endpoint.h"
#include "proto/rpc.h"
#include "server/data_dir_lock.h"
#include "server/http_api.h"
#include "server/janitor.h"
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
    if (!model.family().empty()) vidgen::spec::ParseFamily(model.family());  // refuses an unknown family
    models.push_back(model);
  }
  return models;
}

// Half a TLS configuration is refused, and a certificate or key that does not parse or does not match is named.
std::shared_ptr<grpc::ServerCredentials> Credentials(const std::string& cert_file, const std::string& key_file) {
  if (cert_file.empty() != key_file.empty()) {
    throw vidgen::Error(vidgen::ErrorCode::kInvalidArgument,
                        "TLS needs both --tls-cert and --tls-key (given: only " +
                            std::string(cert_file.empty() ? "--tls-key" : "--tls-cert") + ")");
  }
  if (cert_file.empty()) return grpc::InsecureServerCredentials();
  const auto cert = vidgen::rpc::ReadSmallFile(cert_file), key = vidgen::rpc::ReadSmallFile(key_file);
  vidgen::rpc::CheckKeyPair(cert, cert_file, key, key_file);
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({key, cert});
  return grpc::SslServerCredentials(options);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vidgen-server: video generation jobs over gRPC, kept in a durable queue"};
  app.set_config("--config", "", "a TOML/INI file with any of these flags");
  std::string listen = "0.0.0.0:50051", data_dir = "vidgen-data", keys_file, worker_token_file, tls_cert, tls_key,
              port_file, metrics_listen, metrics_port_file, http_listen, http_port_file;
  std::vector<std::string> models;
  int max_queue = 1000, max_attempts = 3, lease_seconds = 30, heartbeat_seconds = 5, max_request_mib = 8;
  int max_streams = 64, stall_seconds = 60, max_uploads = 8, max_threads = 1024, busy_timeout_ms = 10000;
  double retention_hours = 72;
  std::int64_t max_video_mib = 4096;
  vidgen::spec::Limits limits;
  app.add_option("--listen", listen, "host:port to serve on (port 0: any free port)")->capture_default_str();
  app.add_option("--port-file", port_file, "write the port actually bound to this file");
  app.add_option("--metrics-listen", metrics_listen, "host:port serving Prometheus metrics at /metrics (port 0: any)");
  app.add_option("--metrics-port-file", metrics_port_file, "write the metrics port actually bound to this file");
  app.add_option("--http-listen", http_listen,
                 "host:port serving the HTTP/JSON API (/v1/videos) and the web page at / (port 0: any)");
  app.add_option("--http-port-file", http_port_file, "write the HTTP port actually bound to this file");
  app.add_option("--data-dir", data_dir, "job store (jobs.db) and videos; one server per folder")
      ->capture_default_str();
  app.add_option("--keys-file", keys_file, "JSON [{\"tenant\": ..., \"key\": ...}]; without it, one open tenant");
  app.add_option("--worker-token-file", worker_token_file, "the token worker groups present (or VIDGEN_WORKER_TOKEN)");
  app.add_option("--tls-cert", tls_cert, "PEM certificate chain: serve TLS (with --tls-key)");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert");
  app.add_option("--model", models, "a model to accept jobs for before any worker serves it: name[:family]");
  app.add_option("--max-queue", max_queue, "queued jobs beyond which SubmitJob is refused")
      ->check(CLI::Range(1, 10'000'000))
      ->capture_default_str();
  app.add_option("--max-attempts", max_attempts, "leases a job may lose before it fails")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--lease-seconds", lease_seconds, "a lease lapses after this silence")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--heartbeat-seconds", heartbeat_seconds, "how often groups report (below --lease-seconds)")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--retention-hours", retention_hours, "videos are deleted this long after their job ended")
      ->check(CLI::Range(0.001, 1e6))
      ->capture_default_str();
  app.add_option("--max-request-mib", max_request_mib, "largest gRPC message accepted")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--max-video-mib", max_video_mib, "largest video accepted from a worker")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20))
      ->capture_default_str();
  app.add_option("--max-prompt-bytes", limits.max_prompt_bytes)->check(CLI::Range(1, 1 << 20))->capture_default_str();
  app.add_option("--max-image-bytes", limits.max_image_bytes, "limit on each image a job brings")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 30))
      ->capture_default_str();
  // Workers decode images up to the default: the server may only lower it.
  app.add_option("--max-image-pixels", limits.max_image_pixels, "limit on each image's width × height")
      ->check(CLI::Range(std::int64_t{1}, vidgen::spec::Limits{}.max_image_pixels))
      ->capture_default_str();
  app.add_option("--max-pixel-frames", limits.max_pixel_frames, "limit on width × height × frames")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--max-steps", limits.max_steps)->check(CLI::Range(1, 1000))->capture_default_str();
  app.add_option("--max-streams-per-tenant", max_streams, "open WatchJob and DownloadVideo streams per tenant")
      ->check(CLI::Range(1, 100'000))
      ->capture_default_str();
  app.add_option("--stream-stall-seconds", stall_seconds, "a stream whose reader stops reading this long is cut")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--max-uploads", max_uploads, "video uploads in flight at once")
      ->check(CLI::Range(1, 10'000))
      ->capture_default_str();
  app.add_option("--max-threads", max_threads, "threads serving calls")
      ->check(CLI::Range(8, 100'000))
      ->capture_default_str();
  app.add_option("--store-busy-ms", busy_timeout_ms, "how long the store waits for a lock held from outside")
      ->check(CLI::Range(0, 600'000))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  return vidgen::RunTool("vidgen-server", [&] {
    if (heartbeat_seconds >= lease_seconds) {
      throw vidgen::Error(
          vidgen::ErrorCode::kInvalidArgument,
          fmt::format("--heartbeat-seconds {} must be below --lease-seconds {}", heartbeat_seconds, lease_seconds));
    }
    const std::string worker_token = vidgen::rpc::ReadSecret(worker_token_file, "VIDGEN_WORKER_TOKEN");
    if (worker_token.empty()) {
      throw vidgen::Error(vidgen::ErrorCode::kInvalidArgument,
                          "give the worker token with --worker-token-file or VIDGEN_WORKER_TOKEN");
    }
    const auto credentials = Credentials(tls_cert, tls_key);
    if (keys_file.empty()) spdlog::warn("no --keys-file: every client is the tenant 'default'");

    std::filesystem::create_directories(data_dir);
    const vidgen::server::DataDirLock lock(data_dir);
    const vidgen::server::SystemClock clock;
    vidgen::server::StoreLimits store_limits;
    store_limits.max_queued = max_queue;
    store_limits.max_attempts = max_attempts;
    store_limits.lease = std::chrono::seconds(lease_seconds);
    store_limits.busy_timeout = std::chrono::milliseconds(busy_timeout_ms);
    vidgen::server::JobStore jobs(data_dir + "/jobs.db", store_limits, clock);
    vidgen::server::ArtifactStore artifacts(data_dir + "/videos", max_video_mib << 20);
    vidgen::server::GroupRegistry groups(std::chrono::seconds(3 * lease_seconds), ParseModels(models));
    const vidgen::server::Authenticator auth(keys_file, worker_token);
    vidgen::server::StreamRegistry streams(max_streams, std::chrono::seconds(stall_seconds), max_uploads);
    vidgen::metrics::Registry registry;
    vidgen::server::ServerMetrics metrics(registry, jobs, groups, clock);
    vidgen::server::ServerState state{jobs,
                                      artifacts,
                                      groups,
                                      auth,
                                      streams,
                                      metrics,
                                      limits,
                                      std::chrono::seconds(heartbeat_seconds),
                                      max_request_mib << 20};
    vidgen::server::VideoServiceImpl video_service(state);
    vidgen::server::WorkerServiceImpl worker_service(state);

    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(listen, credentials, &port);
    builder.SetMaxReceiveMessageSize(max_request_mib << 20);
    builder.SetMaxSendMessageSize(64 << 20);  // downloads send chunks of at most 4 MiB, whatever clients may send
    builder.SetResourceQuota(grpc::ResourceQuota("vidgen-server").SetMaxThreads(max_threads));
    builder.RegisterService(&video_service);
    builder.RegisterService(&worker_service);
    const auto server = builder.BuildAndStart();
    if (!server || port == 0) {
      throw vidgen::Error(vidgen::ErrorCode::kUnavailable, fmt::format("cannot listen on {}: is the address in use, "
                                                                       "or not this machine's?",
                                                                       listen));
    }
    auto* health = server->GetHealthCheckService();
    const auto set_health = [health](bool serving) {
      for (const char* service : {"", "vidgen.v1.VideoService", "vidgen.v1.WorkerService"}) {
        health->SetServingStatus(service, serving);
      }
    };
    set_health(true);
    std::optional<vidgen::server::HttpApi> http;
    if (!http_listen.empty()) {
      http.emplace(state, http_listen);
      spdlog::info("HTTP API and web page on port {}", http->port());
      if (!http_port_file.empty()) vidgen::WritePortFile(http_port_file, http->port());
    }
    std::optional<vidgen::metrics::Endpoint> metrics_endpoint;
    if (!metrics_listen.empty()) {
      metrics_endpoint.emplace(registry, metrics_listen);
      spdlog::info("metrics on port {}", metrics_endpoint->port());
      if (!metrics_port_file.empty()) vidgen::WritePortFile(metrics_port_file, metrics_endpoint->port());
    }
    if (!port_file.empty()) vidgen::WritePortFile(port_file, port);
    spdlog::info("vidgen-server on port {} ({}), data in {}", port, tls_cert.empty() ? "plaintext" : "TLS", data_dir);

    std::signal(SIGINT, RequestStop);
    std::signal(SIGTERM, RequestStop);
    vidgen::server::Janitor janitor(jobs, artifacts, streams, metrics, clock,
                                    std::chrono::milliseconds(static_cast<std::int64_t>(retention_hours * 3'600'000)),
                                    set_health);
    while (!stop_requested) {
      const auto pause = janitor.Tick();
      for (auto waited = std::chrono::milliseconds(0); waited < pause && !stop_requested;
           waited += std::chrono::milliseconds(50)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    spdlog::info("stopping");
    health->Shutdown();    // NOT_SERVING from now on
    jobs.events().Stop();  // watches and lease polls return
    streams.Stop();        // and every stream still writing is cancelled
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    return 0;
  });
}
