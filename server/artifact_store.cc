#include "server/artifact_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "common/error.h"

namespace vidgen::server {
namespace {

void SyncDirectory(const std::filesystem::path& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

ArtifactStore::ArtifactStore(std::filesystem::path directory, std::int64_t max_bytes)
    : directory_(std::move(directory)), max_bytes_(max_bytes) {
  std::error_code error;
  std::filesystem::create_directories(directory_ / "incoming", error);
  if (error) Fail(ErrorCode::kUnavailable, "cannot create the artifact folder '{}': {}", directory_.string(), error.message());
  // Uploads cut short by a crash leave only temporary files behind.
  for (const auto& entry : std::filesystem::directory_iterator(directory_ / "incoming", error)) {
    std::filesystem::remove(entry.path(), error);
  }
}

std::unique_ptr<ArtifactStore::Upload> ArtifactStore::Begin(const std::string& job_id, const std::string& mime_type) {
  static thread_local std::mt19937_64 generator(std::random_device{}());
  const std::string extension = mime_type == "video/webm" ? ".webm" : ".mp4";
  // Each upload gets a name of its own: a stale upload of an earlier lease never replaces the current video.
  const std::string name = fmt::format("{}.{:016x}", job_id, generator());
  return std::unique_ptr<Upload>(new Upload(directory_ / "incoming" / (name + ".part"),
                                            directory_ / (name + extension), mime_type, max_bytes_));
}

void ArtifactStore::Remove(const std::string& path) {
  std::error_code error;
  std::filesystem::remove(path, error);
}

ArtifactStore::Upload::Upload(std::filesystem::path temporary, std::filesystem::path final_path, std::string mime_type,
                              std::int64_t max_bytes)
    : temporary_(std::move(temporary)),
      final_(std::move(final_path)),
      mime_type_(std::move(mime_type)),
      max_bytes_(max_bytes),
      file_(std::fopen(temporary_.c_str(), "wb"), &std::fclose) {
  if (!file_) Fail(ErrorCode::kUnavailable, "cannot write '{}': {}", temporary_.string(), std::strerror(errno));
}

ArtifactStore::Upload::~Upload() {
  if (!temporary_.empty()) {
    file_.reset();
    std::error_code error;
    std::filesystem::remove(temporary_, error);
  }
}

void ArtifactStore::Upload::Append(std::string_view bytes) {
  bytes_ += static_cast<std::int64_t>(bytes.size());
  if (bytes_ > max_bytes_) Fail(ErrorCode::kResourceExhausted, "the video exceeds this server's {} bytes", max_bytes_);
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_.get()) != bytes.size()) {
    Fail(ErrorCode::kUnavailable, "cannot write '{}': {}", temporary_.string(), std::strerror(errno));
  }
  sha_.Update(bytes);
}

StoredArtifact ArtifactStore::Upload::Finish(const std::string& expected_sha256) {
  const std::string digest = sha_.HexDigest();
  if (expected_sha256 != digest) {
    Fail(ErrorCode::kDataLoss, "the upload's SHA-256 is {} but the sender announced '{}'", digest, expected_sha256);
  }
  if (std::fflush(file_.get()) != 0 || ::fsync(::fileno(file_.get())) != 0) {
    Fail(ErrorCode::kUnavailable, "cannot sync '{}': {}", temporary_.string(), std::strerror(errno));
  }
  file_.reset();
  std::error_code error;
  std::filesystem::rename(temporary_, final_, error);
  if (error) Fail(ErrorCode::kUnavailable, "cannot rename to '{}': {}", final_.string(), error.message());
  SyncDirectory(final_.parent_path());
  temporary_.clear();
  return {final_.string(), digest, mime_type_, bytes_};
}

}  // namespace vidgen::server
