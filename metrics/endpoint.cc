#include "metrics/endpoint.h"

#include <httplib.h>

#include "common/error.h"
#include "common/host_port.h"

namespace vidgen::metrics {
namespace {

constexpr const char* kExpositionType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

Endpoint::Endpoint(Registry& registry, const std::string& listen) : server_(std::make_unique<httplib::Server>()) {
  const auto [host, port] = ParseHostPort(listen, "metrics address");
  // A scrape sends no body; slow or idle clients are cut rather than holding a thread.
  server_->set_payload_max_length(64 << 10);
  server_->set_read_timeout(5, 0);
  server_->set_write_timeout(5, 0);
  server_->set_keep_alive_timeout(5);
  server_->Get("/metrics", [&registry](const httplib::Request&, httplib::Response& response) {
    response.set_content(registry.Render(), kExpositionType);
  });
  port_ = port == 0 ? server_->bind_to_any_port(host) : (server_->bind_to_port(host, port) ? port : -1);
  if (port_ <= 0) Fail(ErrorCode::kUnavailable, "cannot serve metrics on {}: is the address in use?", listen);
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

Endpoint::~Endpoint() {
  server_->stop();
  thread_.join();
}

}  // namespace vidgen::metrics
