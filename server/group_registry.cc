#include "server/group_registry.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "common/bytes.h"
#include "common/error.h"
#include "proto/spec_proto.h"
#include "spec/memory.h"
#include "spec/spec.h"

namespace vidgen::server {

GroupRegistry::GroupRegistry(std::chrono::milliseconds silence, std::vector<v1::ServedModel> configured)
    : silence_(silence), configured_(std::move(configured)) {}

std::string GroupRegistry::Register(const v1::RegisterGroupRequest& request) {
  if (request.models().empty()) Fail(ErrorCode::kInvalidArgument, "a worker group must serve at least one model");
  for (const auto& model : request.models()) {
    if (model.name().empty() || model.name().size() > 200) {
      Fail(ErrorCode::kInvalidArgument, "a served model's name must have 1 to 200 bytes");
    }
    if (model.side_multiple() < 0 || model.side_multiple() > 1024) {
      Fail(ErrorCode::kInvalidArgument, "model '{}': side_multiple {} is out of range", model.name(),
           model.side_multiple());
    }
    if (!model.task().empty()) spec::ParseTask(model.task());
    if (!model.family().empty()) spec::ParseFamily(model.family());
    if (model.loras_size() > 1000)
      Fail(ErrorCode::kInvalidArgument, "model '{}' lists {} LoRAs", model.name(), model.loras_size());
    for (const auto& lora : model.loras()) {
      if (lora.empty() || lora.size() > 200) {
        Fail(ErrorCode::kInvalidArgument, "model '{}': a LoRA's name must have 1 to 200 bytes", model.name());
      }
    }
    if (model.has_memory()) spec::Validate(rpc::FromProto(model.memory()));
    for (const auto& [lora, defaults] : model.lora_defaults()) {
      if (std::find(model.loras().begin(), model.loras().end(), lora) == model.loras().end()) {
        Fail(ErrorCode::kInvalidArgument, "model '{}': defaults for a LoRA it does not list ('{}')", model.name(),
             lora.substr(0, 200));
      }
    }
  }
  if (request.world_size() < 1 || request.world_size() > 65536) {
    Fail(ErrorCode::kInvalidArgument, "world_size {} is out of range", request.world_size());
  }
  v1::RegisterGroupRequest info = request;
  auto& layout = *info.mutable_layout();
  if (!request.has_layout()) layout.set_ulysses(request.world_size());  // a group that does not say: Ulysses over all
  if (layout.ulysses() == 0) layout.set_ulysses(1);                     // unset degrees are 1
  if (layout.ring() == 0) layout.set_ring(1);
  const std::int64_t world = std::int64_t{layout.ulysses()} * layout.ring() * (layout.cfg_parallel() ? 2 : 1);
  if (layout.ulysses() < 1 || layout.ring() < 1 || world != request.world_size()) {
    Fail(ErrorCode::kInvalidArgument, "layout ulysses {} × ring {} × cfg {} is not the world size {}", layout.ulysses(),
         layout.ring(), layout.cfg_parallel() ? 2 : 1, request.world_size());
  }
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const std::string id =
      fmt::format("group-{}-{}", next_id_++, std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
  groups_[id] = {std::move(info), std::chrono::steady_clock::now()};
  return id;
}

std::vector<std::string> GroupRegistry::Touch(const std::string& group_id) {
  std::lock_guard lock(mutex_);
  Forget();
  const auto it = groups_.find(group_id);
  if (it == groups_.end()) {
    throw Error(ErrorCode::kNotFound, fmt::format("worker group '{}' is not registered", group_id.substr(0, 100)),
                std::string(kReasonUnknownGroup));
  }
  it->second.seen = std::chrono::steady_clock::now();
  std::vector<std::string> names;
  for (const auto& model : it->second.info.models()) names.push_back(model.name());
  return names;
}

v1::ListModelsResponse GroupRegistry::ListModels() {
  std::lock_guard lock(mutex_);
  Forget();
  std::map<std::string, v1::Model> models;
  for (const auto& served : configured_) {
    auto& model = models[served.name()];
    model.set_name(served.name());
    model.set_family(served.family());
  }
  for (const auto& [id, group] : groups_) {
    for (const auto& served : group.info.models()) {
      auto& model = models[served.name()];
      model.set_name(served.name());
      if (model.family().empty()) model.set_family(served.family());
      if (!model.has_defaults() && served.has_defaults()) *model.mutable_defaults() = served.defaults();
      if (model.side_multiple() == 0) model.set_side_multiple(served.side_multiple());
      if (model.task().empty()) model.set_task(served.task());
      // A job may name only what every group serving the model can apply.
      if (model.worker_groups() == 0) {
        model.mutable_loras()->CopyFrom(served.loras());
      } else {
        auto& loras = *model.mutable_loras();
        loras.erase(std::remove_if(loras.begin(), loras.end(),
                                   [&](const std::string& lora) {
                                     return std::find(served.loras().begin(), served.loras().end(), lora) ==
                                            served.loras().end();
                                   }),
                    loras.end());
      }
      for (const auto& [lora, defaults] : served.lora_defaults())
        model.mutable_lora_defaults()->insert({lora, defaults});
      model.set_worker_groups(model.worker_groups() + 1);
      model.set_max_world_size(std::max(model.max_world_size(), group.info.world_size()));
    }
  }
  v1::ListModelsResponse response;
  for (auto& [name, model] : models) *response.add_models() = std::move(model);
  return response;
}

GroupRegistry::Polling::Polling(GroupRegistry& registry, std::string group_id)
    : registry_(registry), group_id_(std::move(group_id)) {
  std::lock_guard lock(registry_.mutex_);
  if (const auto it = registry_.groups_.find(group_id_); it != registry_.groups_.end()) ++it->second.polling;
}

GroupRegistry::Polling::~Polling() {
  std::lock_guard lock(registry_.mutex_);
  if (const auto it = registry_.groups_.find(group_id_); it != registry_.groups_.end()) --it->second.polling;
}

namespace {

const v1::ServedModel* Served(const v1::RegisterGroupRequest& group, const std::string& model) {
  const auto it = std::find_if(group.models().begin(), group.models().end(),
                               [&](const v1::ServedModel& served) { return served.name() == model; });
  return it == group.models().end() ? nullptr : &*it;
}

// Hints of 0 (and no CFG parallel) ask for nothing.
bool Fits(const v1::ParallelHints& hints, const v1::ParallelHints& layout) {
  return (hints.ulysses() == 0 || hints.ulysses() == layout.ulysses()) &&
         (hints.ring() == 0 || hints.ring() == layout.ring()) && (!hints.cfg_parallel() || layout.cfg_parallel());
}

// A normalized job's peak on one rank of `group`, which serves its model; none when the group sent no profile (the
// spec, images and all, is converted only then).
std::optional<spec::MemoryEstimate> Estimate(const v1::RegisterGroupRequest& group, const v1::ServedModel& served,
                                             const v1::JobSpec& spec) {
  if (!served.has_memory()) return std::nullopt;
  spec::ModelInfo model;
  model.family = spec::ParseFamily(served.family().empty() ? "wan2.1" : served.family());
  if (served.side_multiple() > 0) model.side_multiple = served.side_multiple();
  const spec::ParallelRequest layout{group.layout().ulysses(), group.layout().ring(), group.layout().cfg_parallel()};
  return spec::EstimateJobMemory(rpc::FromProto(served.memory()), layout, rpc::FromProto(spec), model);
}

bool Holds(const v1::RegisterGroupRequest& group, const v1::ServedModel& served, const v1::JobSpec& spec) {
  const auto estimate = Estimate(group, served, spec);
  return !estimate || estimate->peak() <= served.memory().device_bytes();
}

}  // namespace

void GroupRegistry::Admit(const v1::JobSpec& spec) {
  std::lock_guard lock(mutex_);
  Forget();
  // The group closest to holding it names the numbers.
  std::optional<spec::MemoryEstimate> closest;
  const v1::RegisterGroupRequest* closest_group = nullptr;
  std::int64_t closest_device_bytes = 0;
  const auto ratio = [](std::int64_t need, std::int64_t have) {
    return static_cast<double>(need) / static_cast<double>(std::max<std::int64_t>(have, 1));
  };
  for (const auto& [id, group] : groups_) {
    const auto* served = Served(group.info, spec.model());
    if (!served) continue;
    const auto estimate = Estimate(group.info, *served, spec);
    const std::int64_t device_bytes = served->memory().device_bytes();
    if (!estimate || estimate->peak() <= device_bytes) return;
    if (!closest || ratio(estimate->peak(), device_bytes) < ratio(closest->peak(), closest_device_bytes)) {
      closest = estimate;
      closest_group = &group.info;
      closest_device_bytes = device_bytes;
    }
  }
  if (!closest) return;
  Fail(ErrorCode::kResourceExhausted,
       "the job needs {} per rank on the group that comes closest ('{}', {} rank(s), {} per rank); no worker group of "
       "model '{}' can hold it: lower the size, frames or cache order, or serve the model on more ranks or larger "
       "devices",
       closest->Describe(), closest_group->name().substr(0, 100), closest_group->world_size(),
       ByteSize(closest_device_bytes), spec.model());
}

bool GroupRegistry::ShouldTake(const std::string& group_id, const v1::JobSpec& spec) {
  std::lock_guard lock(mutex_);
  const auto self = groups_.find(group_id);
  if (self == groups_.end()) return true;
  const auto* served = Served(self->second.info, spec.model());
  if (served && !Holds(self->second.info, *served, spec)) return false;
  // Lower is better: layouts the hints ask for first, then fewer ranks.
  const auto rank = [&](const v1::RegisterGroupRequest& group) {
    return std::pair{!Fits(spec.parallel(), group.layout()), group.world_size()};
  };
  return std::none_of(groups_.begin(), groups_.end(), [&](const auto& entry) {
    const auto& [id, group] = entry;
    const auto* other = Served(group.info, spec.model());
    return id != group_id && group.polling > 0 && other && Holds(group.info, *other, spec) &&
           rank(group.info) < rank(self->second.info);
  });
}

void GroupRegistry::Forget() {
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(groups_, [&](const auto& entry) { return now - entry.second.seen > silence_; });
}

}  // namespace vidgen::server
