#include "server/auth.h"

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include "common/error.h"
#include "common/json.h"
#include "proto/rpc.h"

namespace vidgen::server {
namespace {

// Compares without leaking, through timing, how much of a secret matched.
bool SameSecret(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

Authenticator::Authenticator(const std::string& keys_file, std::string worker_token)
    : worker_token_(std::move(worker_token)), open_(keys_file.empty()) {
  if (worker_token_.empty()) Fail(ErrorCode::kInvalidArgument, "a worker token is required");
  if (open_) return;
  nlohmann::json keys;
  try {
    keys = ParseJson(rpc::ReadSmallFile(keys_file), fmt::format("keys file '{}'", keys_file));
    for (const auto& entry : keys) {
      const std::string key = entry.at("key"), tenant = entry.at("tenant");
      if (key.size() < 16)
        Fail(ErrorCode::kInvalidArgument, "a key of tenant '{}' is shorter than 16 characters", tenant);
      if (tenant.empty()) Fail(ErrorCode::kInvalidArgument, "a key has an empty tenant");
      if (SameSecret(key, worker_token_)) {
        Fail(ErrorCode::kInvalidArgument, "tenant '{}' has the worker token as its key", tenant);
      }
      tenants_[key] = tenant;
    }
  } catch (const nlohmann::json::exception& e) {
    Fail(ErrorCode::kInvalidArgument, "keys file '{}' is not a JSON array of {{\"tenant\", \"key\"}}: {}", keys_file,
         e.what());
  }
  if (tenants_.empty()) Fail(ErrorCode::kInvalidArgument, "keys file '{}' has no keys", keys_file);
}

std::string Authenticator::Tenant(const grpc::ServerContext& context) const {
  if (open_) return "default";
  return TenantOfKey(rpc::BearerToken(context));
}

std::string Authenticator::TenantOfKey(const std::string& key) const {
  if (open_) return "default";
  if (key.empty()) Fail(ErrorCode::kUnauthenticated, "missing 'authorization: Bearer <api key>'");
  // Keys are looked up by hash; the final comparison is constant-time.
  const auto it = tenants_.find(key);
  if (it == tenants_.end() || !SameSecret(it->first, key)) Fail(ErrorCode::kUnauthenticated, "unknown API key");
  return it->second;
}

void Authenticator::CheckWorker(const grpc::ServerContext& context) const {
  const std::string token = rpc::BearerToken(context);
  if (token.empty()) Fail(ErrorCode::kUnauthenticated, "missing 'authorization: Bearer <worker token>'");
  if (!SameSecret(token, worker_token_)) Fail(ErrorCode::kUnauthenticated, "wrong worker token");
}

}  // namespace vidgen::server
