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

  // A group counts as idle while one of its LeaseJob calls waits for a job: from construction to destruction.
  class Polling {
   public:
    Polling(GroupRegistry& registry, std::string group_id);
    ~Polling();
    Polling(const Polling&) = delete;
    Polling& operator=(const Polling&) = delete;

   private:
    GroupRegistry& registry_;
    std::string group_id_;
  };
  // Refuses with RESOURCE_EXHAUSTED, naming the bytes, a normalized job that no live group of its model could hold
  // in memory (spec/memory.h); a group that sent no memory profile could hold any job, and a model no group serves
  // yet admits every job.
  void Admit(const v1::JobSpec& spec);
  // Whether `group_id` should take the queued job `spec` now: not when it does not fit the group's memory, nor when
  // another idle group of its model that holds it is a better place: one whose layout the job's parallel hints ask
  // for where this group's is not, else a smaller one (fewer ranks); yes otherwise.
  bool ShouldTake(const std::string& group_id, const v1::JobSpec& spec);

 private:
  struct Group {
    v1::RegisterGroupRequest info;
    std::chrono::steady_clock::time_point seen;
    int polling = 0;  // LeaseJob calls waiting now
  };
  void Forget();  // drops silent groups; needs mutex_

  std::chrono::milliseconds silence_;
  std::vector<v1::ServedModel> configured_;
  std::mutex mutex_;
  std::unordered_map<std::string, Group> groups_;
  int next_id_ = 1;
};

}  // namespace vidgen::server
