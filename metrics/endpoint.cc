#include "metrics/endpoint.h"

#include <httplib.h>

#include <charconv>

#include "common/error.h"

namespace vidgen::metrics {
namespace {

constexpr const char* kExpositionType = "text/plain; version=0.0.4; charset=utf-8";

std::pair<std::string, int> HostAndPort(const std::string& listen) {
  const auto colon = listen.rfind(':');
  int port = -1;
  if (colon != std::string::npos) {
    const char* end = listen.data() + listen.size();
    const auto [last, error] = std::from_chars(listen.data() + colon + 1, end, port);
    if (error != std::errc() || last != end) port = -1;
  }
  if (colon == std::string::npos || colon == 0 || port < 0 || port > 65535) {
    Fail(ErrorCode::kInvalidArgument, "metrics address '{}' is not host:port", listen.substr(0, 100));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return {host, port};
}

}  // namespace

Endpoint::Endpoint(Registry& registry, const std::string& listen) : server_(std::make_unique<httplib::Server>()) {
  const auto [host, port] = HostAndPort(listen);
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
