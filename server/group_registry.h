// The worker groups the server knows now: registered by their leaders, kept alive by their calls, forgotten after
// a silence. They are not durable: after a server restart, leaders register again.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "vidgen/v1/worker_service.pb.h"

namespace vidgen::server {

class GroupRegistry {
 public:
  GroupRegistry(std::chrono::milliseconds silence, std::vector<v1::ServedModel> configured);

  std::string Register(const v1::RegisterGroupRequest& request);
  // The models of a live group; NOT_FOUND (so that it registers again) when the group is unknown.
  std::vector<std::string> Touch(const std::string& group_id);
  v1::ListModelsResponse ListModels();

 private:
  struct Group {
    v1::RegisterGroupRequest info;
    std::chrono::steady_clock::time_point seen;
  };
  void Forget();  // drops silent groups; needs mutex_

  std::chrono::milliseconds silence_;
  std::vector<v1::ServedModel> configured_;
  std::mutex mutex_;
  std::unordered_map<std::string, Group> groups_;
  int next_id_ = 1;
};

}  // namespace vidgen::server
