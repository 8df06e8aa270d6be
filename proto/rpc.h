// What both ends of vidgen's gRPC calls share: channels with optional TLS, bearer credentials, and the mapping between
// vidgen::Error and grpc::Status (the codes are numbered alike).
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "common/error.h"

namespace vidgen::rpc {

// A channel to `address` (host:port); TLS when `tls_ca_file` names a PEM file of trusted roots ("system" for the
// system's roots), plaintext when empty. Messages up to `max_message_bytes` are accepted (a lease carries the
// job's images: the default is above any server's request limit).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, const std::string& tls_ca_file = "",
                                           int max_message_bytes = 64 << 20);

// Adds `authorization: Bearer <token>` to a call.
void AddBearer(grpc::ClientContext& context, const std::string& token);

// The bearer token of an incoming call, or "" when the header is missing or malformed.
std::string BearerToken(const grpc::ServerContext& context);

// The trailing metadata key that carries Error::reason().
inline constexpr const char* kReasonKey = "vidgen-reason";

grpc::Status ToStatus(const Error& error);
// The reason the server gave with a failed call, or "".
std::string Reason(const grpc::ClientContext& context);
// Throws Error with the status's code and message (and the call's reason, when `context` is given); `what` names
// the call for the message.
[[noreturn]] void ThrowStatus(const grpc::Status& status, const std::string& what,
                              const grpc::ClientContext* context = nullptr);

// Reads a whole small file (keys, tokens, certificates); throws Error(INVALID_ARGUMENT) naming it when it cannot.
std::string ReadSmallFile(const std::string& path);

// Throws Error(INVALID_ARGUMENT) naming the file unless `pem` holds at least one PEM certificate and nothing else
// that fails to parse.
void CheckCertificates(const std::string& pem, const std::string& path);
// Throws Error(INVALID_ARGUMENT) naming the files unless `cert_pem` is a certificate chain, `key_pem` a private key,
// and the key belongs to the chain's first certificate.
void CheckKeyPair(const std::string& cert_pem, const std::string& cert_path, const std::string& key_pem,
                  const std::string& key_path);

// A secret from `file` (trailing whitespace dropped) when given, else from the environment variable `env`, else "".
std::string ReadSecret(const std::string& file, const char* env);

}  // namespace vidgen::rpc
