#include "proto/rpc.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

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
    if (tls_ca_file != "system") {
      options.pem_root_certs = ReadSmallFile(tls_ca_file);
      CheckCertificates(options.pem_root_certs, tls_ca_file);
    }
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

std::string Reason(const grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  const auto it = trailers.find(kReasonKey);
  return it == trailers.end() ? "" : std::string(it->second.data(), it->second.size());
}

void ThrowStatus(const grpc::Status& status, const std::string& what, const grpc::ClientContext* context) {
  throw Error(static_cast<ErrorCode>(status.error_code()),
              fmt::format("{}: {} ({})", what, status.error_message(),
                          ErrorCodeName(static_cast<ErrorCode>(status.error_code()))),
              context ? Reason(*context) : "");
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

namespace {

using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;

Bio MemoryBio(const std::string& bytes) {
  return Bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())), &BIO_free);
}

// The first of OpenSSL's queued errors, as text, and the queue emptied.
std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no PEM block in it";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

}  // namespace

void CheckCertificates(const std::string& pem, const std::string& path) {
  const auto bio = MemoryBio(pem);
  int count = 0;
  while (X509* certificate = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    X509_free(certificate);
    ++count;
  }
  // Reading stops at the end (PEM_R_NO_START_LINE) or at a block that does not parse.
  const bool at_end = ERR_GET_REASON(ERR_peek_last_error()) == PEM_R_NO_START_LINE;
  if (!at_end) {
    Fail(ErrorCode::kInvalidArgument, "TLS certificate file '{}' has a certificate that does not parse: {}", path,
         OpenSslError());
  }
  ERR_clear_error();
  if (count == 0) Fail(ErrorCode::kInvalidArgument, "TLS certificate file '{}' holds no PEM certificate", path);
}

void CheckKeyPair(const std::string& cert_pem, const std::string& cert_path, const std::string& key_pem,
                  const std::string& key_path) {
  CheckCertificates(cert_pem, cert_path);
  const auto cert_bio = MemoryBio(cert_pem);
  std::unique_ptr<X509, decltype(&X509_free)> certificate(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr),
                                                          &X509_free);
  const auto key_bio = MemoryBio(key_pem);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (!key) {
    Fail(ErrorCode::kInvalidArgument, "TLS key file '{}' holds no PEM private key: {}", key_path, OpenSslError());
  }
  if (X509_check_private_key(certificate.get(), key.get()) != 1) {
    ERR_clear_error();
    Fail(ErrorCode::kInvalidArgument, "the private key in '{}' does not belong to the certificate in '{}'", key_path,
         cert_path);
  }
}

}  // namespace vidgen::rpc
