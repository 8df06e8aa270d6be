#include "proto/rpc.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace vidgen::rpc {

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, const std::string& tls_ca_file,
                                           int max_message_bytes) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(max_message_bytes);
  arguments.SetMaxSendMessageSize(max_message_bytes);
  // Reconnect quickly after a server restart instead of backing off for up to two minutes.
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (tls_ca_file.empty()) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions options;
    if (tls_ca_file != "system") options.pem_root_certs = ReadSmallFile(tls_ca_file);
    credentials = grpc::SslCredentials(options);
  }
  return grpc::CreateCustomChannel(address, credentials, arguments);
}

void AddBearer(grpc::ClientContext& context, const std::string& token) {
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
}

std::string BearerToken(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  const auto it = metadata.find("authorization");
  if (it == metadata.end()) return "";
  const std::string value(it->second.data(), it->second.size());
  constexpr std::string_view kScheme = "Bearer ";
  return value.starts_with(kScheme) ? value.substr(kScheme.size()) : "";
}

grpc::Status ToStatus(const Error& error) {
  return {static_cast<grpc::StatusCode>(error.code()), error.what()};
}

void ThrowStatus(const grpc::Status& status, const std::string& what) {
  throw Error(static_cast<ErrorCode>(status.error_code()),
              fmt::format("{}: {} ({})", what, status.error_message(),
                          ErrorCodeName(static_cast<ErrorCode>(status.error_code()))));
}

std::string ReadSmallFile(const std::string& path) {
  constexpr std::streamoff kMaxBytes = 1 << 20;  // keys, tokens and certificates are a few KB
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) Fail(ErrorCode::kInvalidArgument, "cannot read '{}'", path);
  if (in.tellg() > kMaxBytes) {
    Fail(ErrorCode::kInvalidArgument, "'{}' is {} bytes; a key, token or certificate file is at most {}", path,
         static_cast<std::int64_t>(in.tellg()), kMaxBytes);
  }
  in.seekg(0);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

std::string ReadSecret(const std::string& file, const char* env) {
  if (file.empty()) {
    const char* value = std::getenv(env);
    return value ? value : "";
  }
  std::string secret = ReadSmallFile(file);
  while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back()))) secret.pop_back();
  return secret;
}

}  // namespace vidgen::rpc
