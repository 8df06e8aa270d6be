#include "parallel/world.h"

#include <cstdlib>
#include <numeric>
#include <thread>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>  // the collective backend and its Work
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>
#include <torch/version.h>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
// PyTorch's wheels build Gloo into LibTorch but ship none of the Gloo headers that ProcessGroupGloo.hpp includes:
// against them, CPU groups cannot be formed from C++ (CUDA ones use NCCL).
#if defined(USE_C10D_GLOO) && __has_include(<gloo/algorithm.h>)
#define VIDGEN_HAS_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

#include "common/error.h"

namespace vidgen::parallel {
namespace {

std::string Env(const char* name, const char* fallback = nullptr) {
  if (const char* value = std::getenv(name); value && *value) return value;
  if (fallback) {
    if (const char* value = std::getenv(fallback); value && *value) return value;
  }
  return "";
}

int EnvInt(const char* name, const char* fallback, int default_value) {
  const std::string text = Env(name, fallback);
  if (text.empty()) return default_value;
  try {
    std::size_t used = 0;
    const int value = std::stoi(text, &used);
    if (used == text.size() && value >= 0) return value;
  } catch (const std::exception&) {
  }
  Fail(ErrorCode::kInvalidArgument, "environment variable {}='{}' is not a non-negative integer", name, text);
}

// Collectives move bytes: every dtype travels, whatever the backend supports.
at::Tensor Bytes(const at::Tensor& t) {
  return t.contiguous().view(torch::kUInt8);
}

void WaitFor(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    Fail(ErrorCode::kUnavailable, "{} failed (a peer left or timed out): {}", what, e.what());
  }
}

}  // namespace

bool HasNccl() {
#ifdef USE_C10D_NCCL
  return true;
#else
  return false;
#endif
}

CommBackend BackendFor(const c10::Device& device) {
  return device.is_cuda() && HasNccl() ? CommBackend::kNccl : CommBackend::kGloo;
}

Rendezvous RendezvousFromEnv() {
  Rendezvous rendezvous;
  rendezvous.rank = EnvInt("RANK", "SLURM_PROCID", 0);
  rendezvous.world_size = EnvInt("WORLD_SIZE", "SLURM_NTASKS", 1);
  rendezvous.local_rank = EnvInt("LOCAL_RANK", "SLURM_LOCALID", 0);
  if (const auto addr = Env("MASTER_ADDR"); !addr.empty()) rendezvous.master_addr = addr;
  rendezvous.master_port = EnvInt("MASTER_PORT", nullptr, rendezvous.master_port);
  if (rendezvous.world_size < 1 || rendezvous.rank >= rendezvous.world_size) {
    Fail(ErrorCode::kInvalidArgument, "RANK {} is not below WORLD_SIZE {}", rendezvous.rank, rendezvous.world_size);
  }
  return rendezvous;
}

c10::Device RankDevice(const c10::Device& requested, const Rendezvous& rendezvous) {
  if (!requested.is_cuda() || requested.has_index()) return requested;
  return {c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(rendezvous.local_rank)};
}

Group::Group(c10::intrusive_ptr<c10d::CollectiveBackend> group, std::vector<int> members, int rank,
             std::shared_ptr<std::atomic<std::int64_t>> counter, std::shared_ptr<std::atomic<std::int64_t>> micros)
    : group_(std::move(group)),
      members_(std::move(members)),
      rank_(rank),
      counter_(std::move(counter)),
      micros_(std::move(micros)) {}

at::Tensor Group::AllToAll(const at::Tensor& input) {
  TORCH_CHECK(input.size(0) == size(), "AllToAll expects ", size(), " slices, got ", input.sizes());
  if (size() == 1) return input;
  const auto timer = Count();
  auto in = Bytes(input);
  auto out = torch::empty_like(in);
  std::vector<std::int64_t> equal_splits;
  WaitFor(group_->alltoall_base(out, in, equal_splits, equal_splits), "all-to-all");
  return out.view(input.scalar_type()).view(input.sizes());
}

at::Tensor Group::AllGather(const at::Tensor& input) {
  if (size() == 1) return input.unsqueeze(0);
  const auto timer = Count();
  std::vector<at::Tensor> in = {Bytes(input)};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int i = 0; i < size(); ++i) out[0].push_back(torch::empty_like(in[0]));
  WaitFor(group_->allgather(out, in), "all-gather");
  std::vector<at::Tensor> slices;
  for (auto& bytes : out[0]) slices.push_back(bytes.view(input.scalar_type()).view(input.sizes()));
  return torch::stack(slices);
}

at::Tensor Group::Broadcast(const at::Tensor& input, int root) {
  if (size() == 1) return input;
  const auto timer = Count();
  std::vector<at::Tensor> tensors = {input.clone()};
  c10d::BroadcastOptions options;
  options.rootRank = root;
  WaitFor(group_->broadcast(tensors, options), "broadcast");
  return tensors[0];
}

Group::~Group() = default;

Group::Shift Group::StartRingShift(const at::Tensor& to_next) {
  if (size() == 1) return Shift(*this, {}, to_next, to_next);
  counter_->fetch_add(1);
  std::vector<at::Tensor> send = {Bytes(to_next)};
  std::vector<at::Tensor> recv = {torch::empty_like(send[0])};
  Shift shift(*this, send[0], recv[0], to_next);
  // Even members send first, odd ones receive first: a pair that shares one NCCL stream never waits on itself, and
  // Gloo, which posts both at once, does not mind.
  const int next = (rank_ + 1) % size(), previous = (rank_ + size() - 1) % size();
  if (rank_ % 2 == 0) {
    shift.work_.push_back(group_->send(send, next, /*tag=*/0));
    shift.work_.push_back(group_->recv(recv, previous, /*tag=*/0));
  } else {
    shift.work_.push_back(group_->recv(recv, previous, /*tag=*/0));
    shift.work_.push_back(group_->send(send, next, /*tag=*/0));
  }
  return shift;
}

Group::Shift::Shift(Group& group, at::Tensor sent, at::Tensor received, at::Tensor shape_of)
    : group_(&group), sent_(std::move(sent)), received_(std::move(received)), shape_of_(std::move(shape_of)) {}

Group::Shift::Shift(Shift&&) noexcept = default;

// A hop dropped without Wait() (an exception on the way) still finishes before its buffers go.
Group::Shift::~Shift() {
  for (auto& work : work_) {
    try {
      if (work) work->wait();
    } catch (const std::exception&) {
    }
  }
}

at::Tensor Group::Shift::Wait() {
  if (!sent_.defined()) return received_;
  const auto timer = group_->Time();
  for (auto& work : work_) {
    WaitFor(work, "ring shift");
    work.reset();
  }
  return received_.view(shape_of_.scalar_type()).view(shape_of_.sizes());
}

World::World(const Rendezvous& rendezvous, const MeshOptions& mesh)
    : rank_(rendezvous.rank),
      backend_(rendezvous.backend),
      mesh_(mesh),
      master_addr_(rendezvous.master_addr),
      timeout_(rendezvous.timeout),
      control_device_(rendezvous.backend == CommBackend::kNccl
                          ? c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(rendezvous.local_rank))
                          : c10::Device(c10::DeviceType::CPU)),
      counter_(std::make_shared<std::atomic<std::int64_t>>(0)),
      micros_(std::make_shared<std::atomic<std::int64_t>>(0)) {
  if (mesh.ulysses < 1 || mesh.ring < 1 || mesh.cfg < 1 || mesh.cfg > 2 || mesh.world() != rendezvous.world_size) {
    Fail(ErrorCode::kInvalidArgument,
         "parallel layout cfg {} × ring {} × ulysses {} = {} does not match WORLD_SIZE {} (cfg is 1 or 2)", mesh.cfg,
         mesh.ring, mesh.ulysses, mesh.world(), rendezvous.world_size);
  }
  if (backend_ == CommBackend::kNccl && !HasNccl()) {
    Fail(ErrorCode::kFailedPrecondition, "the NCCL backend was asked for, but this build's LibTorch has no NCCL");
  }
#ifndef VIDGEN_HAS_GLOO
  if (backend_ == CommBackend::kGloo && rendezvous.world_size > 1) {
    Fail(ErrorCode::kFailedPrecondition,
         "{} ranks on the CPU need Gloo, whose headers this build's LibTorch lacks (a PyTorch wheel's): build against "
         "a LibTorch that has them (Debian's, or PyTorch's LibTorch download) or run the ranks on GPUs",
         rendezvous.world_size);
  }
#endif
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(rendezvous.master_port);
  options.isServer = rendezvous.rank == 0;
  options.numWorkers = rendezvous.world_size;
  options.timeout = rendezvous.timeout;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  // The store's own socket server, not libuv (the default since 2.4): builds without libuv (Debian's) refuse it, and
  // a group's few ranks do not need it.
  options.useLibUV = false;
#endif
  try {
    store_ = c10::make_intrusive<c10d::TCPStore>(rendezvous.master_addr, options);
  } catch (const std::exception& e) {
    Fail(ErrorCode::kUnavailable, "rank {} cannot rendezvous at {}:{} within {} ms: {}", rendezvous.rank,
         rendezvous.master_addr, rendezvous.master_port, rendezvous.timeout.count(), e.what());
  }

  const int u = mesh.ulysses, r = mesh.ring;
  const int u_index = rank_ % u, r_index = (rank_ / u) % r, c_index = rank_ / (u * r);
  std::vector<int> ulysses, ring, sequence, cfg, all(static_cast<std::size_t>(mesh.world()));
  std::iota(all.begin(), all.end(), 0);
  for (int i = 0; i < u; ++i) ulysses.push_back((c_index * r + r_index) * u + i);
  for (int i = 0; i < r; ++i) ring.push_back((c_index * r + i) * u + u_index);
  for (int i = 0; i < u * r; ++i) sequence.push_back(c_index * r * u + i);
  for (int i = 0; i < mesh.cfg; ++i) cfg.push_back((i * r + r_index) * u + u_index);
  ulysses_ = MakeGroup("ulysses", ulysses);
  ring_ = MakeGroup("ring", ring);
  sequence_ = MakeGroup("sequence", sequence);
  cfg_ = MakeGroup("cfg", cfg);
  all_ = MakeGroup("all", all);
}

bool World::Decide(bool value) {
  const auto byte =
      torch::full({1}, value ? 1 : 0, torch::TensorOptions().dtype(torch::kUInt8).device(control_device_));
  return all_->Broadcast(byte, 0).item<std::uint8_t>() != 0;
}

World::~World() = default;

void World::Publish(const std::string& key, const std::string& value) {
  try {
    store_->set("control/" + key, std::vector<std::uint8_t>(value.begin(), value.end()));
  } catch (const std::exception& e) {
    Fail(ErrorCode::kUnavailable, "rank {} cannot publish '{}': {}", rank_, key, e.what());
  }
}

std::optional<std::string> World::Await(const std::string& key, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  try {
    // check() never blocks, so a lapsed wait is told apart from a lost store.
    while (!store_->check({"control/" + key})) {
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(pause);
      // Quick while a reply is due (a step's decision), gentle on the store during a long wait (an idle group).
      const auto waited = std::chrono::steady_clock::now() - (deadline - timeout);
      pause = std::min(pause * 2, std::chrono::milliseconds(waited < std::chrono::seconds(1) ? 20 : 200));
    }
    const auto bytes = store_->get("control/" + key);
    return std::string(bytes.begin(), bytes.end());
  } catch (const std::exception& e) {
    Fail(ErrorCode::kUnavailable, "rank {} lost the group's store at {} (rank 0 gone?): {}", rank_, master_addr_,
         e.what());
  }
}

void World::Forget(const std::string& key) {
  try {
    store_->deleteKey("control/" + key);
  } catch (const std::exception&) {
  }
}

std::unique_ptr<Group> World::MakeGroup(const std::string& name, std::vector<int> members) {
  const int local = static_cast<int>(std::find(members.begin(), members.end(), rank_) - members.begin());
  if (members.size() == 1) {
    return std::make_unique<Group>(c10::intrusive_ptr<c10d::CollectiveBackend>(), std::move(members), 0, counter_,
                                   micros_);
  }
  // Each group of each kind gets its own key space in the store, named after its first member.
  auto store = c10::make_intrusive<c10d::PrefixStore>(fmt::format("{}/{}", name, members.front()), store_);
  [[maybe_unused]] const int size = static_cast<int>(members.size());  // unused where neither backend is
  c10::intrusive_ptr<c10d::CollectiveBackend> group;
  try {
#ifdef USE_C10D_NCCL
    if (backend_ == CommBackend::kNccl) {
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout_;
      group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, local, size, options);
    }
#endif
#ifdef VIDGEN_HAS_GLOO
    if (!group) {
      auto options = c10d::ProcessGroupGloo::Options::create(timeout_);
      // A loopback master means a single-machine group: keep all traffic on loopback.
      options->devices.push_back(master_addr_.starts_with("127.") || master_addr_ == "localhost"
                                     ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                     : c10d::ProcessGroupGloo::createDefaultDevice());
      group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, local, size, options);
    }
#endif
  } catch (const std::exception& e) {
    Fail(ErrorCode::kUnavailable, "rank {} cannot form its {} group {}: {}", rank_, name, fmt::join(members, ","),
         e.what());
  }
  return std::make_unique<Group>(std::move(group), std::move(members), local, counter_, micros_);
}

}  // namespace vidgen::parallel
