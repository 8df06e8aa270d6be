// What both ends of vidgen's gRPC calls share: channels with optional TLS, bearer credentials, and the mapping between
// vidgen::Error and grpc::Status (the codes are numbered alike).
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "common/error.h"

namespace vidgen::rpc {

// A channel to `address` (host:port); TLS when `tls_ca_file` names a PEM file of trusted roots ("system" for the
// system's roots), plaintext when empty. Messages up to `max_message_bytes` are accepted.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, const std::string& tls_ca_file = "",
                                           int max_message_bytes = 8 << 20);

// Adds `authorization: Bearer <token>` to a call.
void AddBearer(grpc::ClientContext& context, const std::string& token);

// The bearer token of an incoming call, or "" when the header is missing or malformed.
std::string BearerToken(const grpc::ServerContext& context);

grpc::Status ToStatus(const Error& error);
// Throws Error with the status's code and message; `what` names the call for the message.
[[noreturn]] void ThrowStatus(const grpc::Status& status, const std::string& what);

// Reads a whole small file (keys, tokens, certificates); throws Error(INVALID_ARGUMENT) naming it when it cannot.
std::string ReadSmallFile(const std::string& path);

// A secret from `file` (trailing whitespace dropped) when given, else from the environment variable `env`, else "".
std::string ReadSecret(const std::string& file, const char* env);

}  // namespace vidgen::rpc
