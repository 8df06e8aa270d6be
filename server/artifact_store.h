// Videos on disk: an upload is written under a temporary name, checked against the sender's SHA-256, made durable
// (fsync) and renamed into place, so a crash never leaves a partial file under a final name.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "common/sha256.h"
#include "server/job_store.h"

namespace vidgen::server {

class ArtifactStore {
 public:
  ArtifactStore(std::filesystem::path directory, std::int64_t max_bytes);

  class Upload {
   public:
    Upload(const Upload&) = delete;
    Upload& operator=(const Upload&) = delete;
    ~Upload();  // an unfinished upload removes its temporary file

    // RESOURCE_EXHAUSTED past the store's size limit.
    void Append(std::string_view bytes);
    // Checks the digest (DATA_LOSS on a mismatch), syncs and renames; returns the stored artifact.
    StoredArtifact Finish(const std::string& expected_sha256);

   private:
    friend class ArtifactStore;
    Upload(std::filesystem::path temporary, std::filesystem::path final_path, std::string mime_type,
           std::int64_t max_bytes);
    std::filesystem::path temporary_, final_;
    std::string mime_type_;
    std::int64_t max_bytes_, bytes_ = 0;
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file_;
    Sha256 sha_;
  };

  std::unique_ptr<Upload> Begin(const std::string& job_id, const std::string& mime_type);
  void Remove(const std::string& path);

 private:
  std::filesystem::path directory_;
  std::int64_t max_bytes_;
};

}  // namespace vidgen::server
