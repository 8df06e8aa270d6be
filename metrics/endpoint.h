// A registry's metrics served over HTTP (GET /metrics, for Prometheus to scrape) by cpp-httplib on threads of its
// own, from construction to destruction.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "metrics/registry.h"

namespace httplib {
class Server;
}

namespace vidgen::metrics {

class Endpoint {
 public:
  // Listens on `listen` ("host:port"; port 0: any free port). Throws Error(INVALID_ARGUMENT) for an address that
  // does not parse and Error(UNAVAILABLE) when it cannot be bound. `registry` must outlive the endpoint.
  Endpoint(Registry& registry, const std::string& listen);
  ~Endpoint();

  int port() const { return port_; }

 private:
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace vidgen::metrics
