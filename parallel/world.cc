#include "parallel/world.h"

#include <cstdlib>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

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

void Wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    Fail(ErrorCode::kUnavailable, "{} failed (a peer left or timed out): {}", what, e.what());
  }
}

}  // namespace

Rendezvous RendezvousFromEnv() {
  Rendezvous rendezvous;
  rendezvous.rank = EnvInt("RANK", "SLURM_PROCID", 0);
  rendezvous.world_size = EnvInt("WORLD_SIZE", "SLURM_NTASKS", 1);
  if (const auto addr = Env("MASTER_ADDR"); !addr.empty()) rendezvous.master_addr = addr;
  rendezvous.master_port = EnvInt("MASTER_PORT", nullptr, rendezvous.master_port);
  if (rendezvous.world_size < 1 || rendezvous.rank >= rendezvous.world_size) {
    Fail(ErrorCode::kInvalidArgument, "RANK {} is not below WORLD_SIZE {}", rendezvous.rank, rendezvous.world_size);
  }
  return rendezvous;
}

Group::Group(c10::intrusive_ptr<c10d::ProcessGroup> group, std::vector<int> members, int rank,
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
  Wait(group_->alltoall_base(out, in, equal_splits, equal_splits), "all-to-all");
  return out.view(input.scalar_type()).view(input.sizes());
}

at::Tensor Group::AllGather(const at::Tensor& input) {
  if (size() == 1) return input.unsqueeze(0);
  const auto timer = Count();
  std::vector<at::Tensor> in = {Bytes(input)};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int i = 0; i < size(); ++i) out[0].push_back(torch::empty_like(in[0]));
  Wait(group_->allgather(out, in), "all-gather");
  std::vector<at::Tensor> slices;
  for (auto& bytes : out[0]) slices.push_back(bytes.view(input.scalar_type()).view(input.sizes()));
  return torch::stack(slices);
}

at::Tensor Group::RingShift(const at::Tensor& to_next) {
  if (size() == 1) return to_next;
  const auto timer = Count();
  std::vector<at::Tensor> send = {Bytes(to_next)};
  std::vector<at::Tensor> recv = {torch::empty_like(send[0])};
  // Post the receive first: Gloo's send completes once the peer has posted its receive.
  auto received = group_->recv(recv, (rank_ + size() - 1) % size(), /*tag=*/0);
  auto sent = group_->send(send, (rank_ + 1) % size(), /*tag=*/0);
  Wait(sent, "ring send");
  Wait(received, "ring receive");
  return recv[0].view(to_next.scalar_type()).view(to_next.sizes());
}

World::World(const Rendezvous& rendezvous, const MeshOptions& mesh)
    : rank_(rendezvous.rank),
      mesh_(mesh),
      master_addr_(rendezvous.master_addr),
      timeout_(rendezvous.timeout),
      counter_(std::make_shared<std::atomic<std::int64_t>>(0)),
      micros_(std::make_shared<std::atomic<std::int64_t>>(0)) {
  if (mesh.ulysses < 1 || mesh.ring < 1 || mesh.cfg < 1 || mesh.cfg > 2 || mesh.world() != rendezvous.world_size) {
    Fail(ErrorCode::kInvalidArgument,
         "parallel layout cfg {} × ring {} × ulysses {} = {} does not match WORLD_SIZE {} (cfg is 1 or 2)", mesh.cfg,
         mesh.ring, mesh.ulysses, mesh.world(), rendezvous.world_size);
  }
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(rendezvous.master_port);
  options.isServer = rendezvous.rank == 0;
  options.numWorkers = rendezvous.world_size;
  options.timeout = rendezvous.timeout;
  try {
    store_ = c10::make_intrusive<c10d::TCPStore>(rendezvous.master_addr, options);
  } catch (const std::exception& e) {
    Fail(ErrorCode::kUnavailable, "rank {} cannot rendezvous at {}:{} within {} ms: {}", rendezvous.rank,
         rendezvous.master_addr, rendezvous.master_port, rendezvous.timeout.count(), e.what());
  }

  const int u = mesh.ulysses, r = mesh.ring;
  const int u_index = rank_ % u, r_index = (rank_ / u) % r, c_index = rank_ / (u * r);
  std::vector<int> ulysses, ring, sequence, cfg;
  for (int i = 0; i < u; ++i) ulysses.push_back((c_index * r + r_index) * u + i);
  for (int i = 0; i < r; ++i) ring.push_back((c_index * r + i) * u + u_index);
  for (int i = 0; i < u * r; ++i) sequence.push_back(c_index * r * u + i);
  for (int i = 0; i < mesh.cfg; ++i) cfg.push_back((i * r + r_index) * u + u_index);
  ulysses_ = MakeGroup("ulysses", ulysses);
  ring_ = MakeGroup("ring", ring);
  sequence_ = MakeGroup("sequence", sequence);
  cfg_ = MakeGroup("cfg", cfg);
}

World::~World() = default;

std::unique_ptr<Group> World::MakeGroup(const std::string& name, std::vector<int> members) {
  const int local = static_cast<int>(std::find(members.begin(), members.end(), rank_) - members.begin());
  if (members.size() == 1) {
    return std::make_unique<Group>(c10::intrusive_ptr<c10d::ProcessGroup>(), std::move(members), 0, counter_, micros_);
  }
  // Each group of each kind gets its own key space in the store, named after its first member.
  auto store = c10::make_intrusive<c10d::PrefixStore>(fmt::format("{}/{}", name, members.front()), store_);
  auto options = c10d::ProcessGroupGloo::Options::create(timeout_);
  // A loopback master means a single-machine group: keep all traffic on loopback.
  options->devices.push_back(master_addr_.starts_with("127.") || master_addr_ == "localhost"
                                 ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                 : c10d::ProcessGroupGloo::createDefaultDevice());
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  try {
    group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, local, static_cast<int>(members.size()), options);
  } catch (const std::exception& e) {
    Fail(ErrorCode::kUnavailable, "rank {} cannot form its {} group {}: {}", rank_, name, fmt::join(members, ","),
         e.what());
  }
  return std::make_unique<Group>(std::move(group), std::move(members), local, counter_, micros_);
}

}  // namespace vidgen::parallel
