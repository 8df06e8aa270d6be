// The HTTP/JSON API beside gRPC, in the style of the OpenAI videos API that other servers offer: the same store,
// keys, tenants and checks, served by cpp-httplib on threads of its own from construction to destruction. And the
// web page at "/".
//
//   POST   /v1/videos                 submit (JSON body; Idempotency-Key header)       202 + the job
//   GET    /v1/videos?status=&model=&limit=&after=                                     the tenant's jobs, newest first
//   GET    /v1/videos/{id}            the job                                          DELETE: cancel it
//   GET    /v1/videos/{id}/content    the video (Range, ETag = its SHA-256, If-None-Match)
//   GET    /v1/videos/{id}/events     server-sent events: a "snapshot" per change, then "end"
//   GET    /v1/models                 the models served, with their defaults
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "server/services.h"

namespace httplib {
class Server;
}

namespace vidgen::server {

class HttpApi {
 public:
  // Listens on `listen` ("host:port"; port 0: any free port). Throws Error(INVALID_ARGUMENT) for an address that
  // does not parse and Error(UNAVAILABLE) when it cannot be bound. `state` must outlive the API.
  HttpApi(ServerState& state, const std::string& listen);
  ~HttpApi();

  int port() const { return port_; }

 private:
  void Route();

  ServerState& state_;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace vidgen::server
