// Who is calling: API keys map to tenants (from a JSON keys file), and one separate token admits worker groups.
#pragma once

#include <string>
#include <unordered_map>

#include <grpcpp/server_context.h>

namespace vidgen::server {

class Authenticator {
 public:
  // `keys_file`: JSON [{"tenant": "acme", "key": "..."}, ...]; `worker_token`: the token of WorkerService calls.
  // Empty keys file: every public call is the tenant "default" (for a single-user development server only).
  // Throws Error(INVALID_ARGUMENT) naming a malformed file.
  Authenticator(const std::string& keys_file, std::string worker_token);

  // The tenant of a VideoService call; UNAUTHENTICATED when the key is missing or unknown.
  std::string Tenant(const grpc::ServerContext& context) const;
  // The tenant of an API key (from any transport: HTTP's Authorization header); UNAUTHENTICATED when it is empty
  // or unknown.
  std::string TenantOfKey(const std::string& key) const;
  // UNAUTHENTICATED unless the call carries the worker token.
  void CheckWorker(const grpc::ServerContext& context) const;

 private:
  std::unordered_map<std::string, std::string> tenants_;  // key -> tenant
  std::string worker_token_;
  bool open_ = false;
};

}  // namespace vidgen::server
