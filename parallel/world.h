// A group of ranks joined through c10d (Gloo, or NCCL for CUDA tensors), arranged as a mesh of CFG × ring ×
// Ulysses degrees. Ulysses groups are adjacent ranks, ring groups stride over them (as xDiT), and the sequence
// group of a CFG half is its ring × Ulysses ranks, whose token chunks are in rank order.
//
// Collectives go only through Group, which counts them, so tests can prove that a step made none.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/util/intrusive_ptr.h>
#include <torch/version.h>

// The c10d class that runs one backend's collectives: ProcessGroup before LibTorch 2.0, Backend since.
namespace c10d {
class Store;
class Work;
#if TORCH_VERSION_MAJOR >= 2
class Backend;
using CollectiveBackend = Backend;
#else
class ProcessGroup;
using CollectiveBackend = ProcessGroup;
#endif
}  // namespace c10d

namespace vidgen::parallel {

// Gloo moves tensors of any device through host sockets; NCCL moves CUDA tensors between GPUs.
enum class CommBackend { kGloo, kNccl };

// True when this build's LibTorch has ProcessGroupNCCL (CUDA builds of PyTorch).
bool HasNccl();
// NCCL for CUDA devices when the build has it, else Gloo.
CommBackend BackendFor(const c10::Device& device);

struct Rendezvous {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // rank among this machine's processes: picks the GPU
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  CommBackend backend = CommBackend::kGloo;
};

// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (torchrun's names; SLURM_PROCID, SLURM_NTASKS and
// SLURM_LOCALID when those are absent). Throws Error(INVALID_ARGUMENT) naming a missing or malformed variable.
Rendezvous RendezvousFromEnv();

// The device a rank computes on: a CUDA device without an index becomes cuda:LOCAL_RANK, as under torchrun.
c10::Device RankDevice(const c10::Device& requested, const Rendezvous& rendezvous);

struct MeshOptions {
  int ulysses = 1;
  int ring = 1;
  int cfg = 1;
  int world() const { return ulysses * ring * cfg; }
};

// Ranks of one collective group; collectives over its members, each counted once.
class Group {
 public:
  Group(c10::intrusive_ptr<c10d::CollectiveBackend> group, std::vector<int> members, int rank,
        std::shared_ptr<std::atomic<std::int64_t>> counter, std::shared_ptr<std::atomic<std::int64_t>> micros);
  ~Group();

  int rank() const { return rank_; }  // within the group
  int size() const { return static_cast<int>(members_.size()); }
  const std::vector<int>& members() const { return members_; }  // world ranks, in group order

  // input: [size, ...]; slice i goes to member i. Returns [size, ...] with slice i from member i.
  at::Tensor AllToAll(const at::Tensor& input);
  // Returns [size, ...input.shape] with slice i from member i.
  at::Tensor AllGather(const at::Tensor& input);
  // Member `root`'s `input` on every member.
  at::Tensor Broadcast(const at::Tensor& input, int root);

  // One ring hop in flight: `to_next` goes to member rank+1 while what member rank-1 sent (both cyclic) arrives,
  // so the caller can compute meanwhile. Wait() returns the received tensor; the hop must be waited for.
  class Shift {
   public:
    Shift(Shift&&) noexcept;
    ~Shift();
    at::Tensor Wait();

   private:
    friend class Group;
    Shift(Group& group, at::Tensor sent, at::Tensor received, at::Tensor shape_of);
    Group* group_;
    at::Tensor sent_, received_, shape_of_;  // byte views kept alive until the transfer is done
    std::vector<c10::intrusive_ptr<c10d::Work>> work_;
  };
  Shift StartRingShift(const at::Tensor& to_next);

 private:
  // Counts one collective and times it until the returned guard dies.
  struct Timer {
    std::atomic<std::int64_t>* micros;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    ~Timer() {
      micros->fetch_add(
          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count());
    }
  };
  Timer Time() { return Timer{micros_.get()}; }
  Timer Count() {
    counter_->fetch_add(1);
    return Time();
  }

  c10::intrusive_ptr<c10d::CollectiveBackend> group_;
  std::vector<int> members_;
  int rank_;
  std::shared_ptr<std::atomic<std::int64_t>> counter_;
  std::shared_ptr<std::atomic<std::int64_t>> micros_;
};

class World {
 public:
  // Joins the group described by `rendezvous` (rank 0 hosts the TCP store) and builds the mesh's subgroups. Throws
  // Error(INVALID_ARGUMENT) when the degrees do not multiply to the world size, and Error(UNAVAILABLE) naming the
  // address when peers do not arrive within the timeout.
  World(const Rendezvous& rendezvous, const MeshOptions& mesh);
  ~World();

  int rank() const { return rank_; }
  int size() const { return mesh_.world(); }
  const MeshOptions& mesh() const { return mesh_; }

  Group& ulysses() { return *ulysses_; }
  Group& ring() { return *ring_; }
  Group& sequence() { return *sequence_; }  // ring × Ulysses ranks of this CFG half, chunk order = group order
  Group& cfg() { return *cfg_; }

  // A control channel beside the collectives, through the rendezvous store (not counted as collectives): one rank
  // publishes a small value under a key, the others wait for it. Await returns nullopt when `timeout` passes first,
  // and throws Error(UNAVAILABLE) when the store's host (rank 0) is gone.
  void Publish(const std::string& key, const std::string& value);
  std::optional<std::string> Await(const std::string& key, std::chrono::milliseconds timeout);
  void Forget(const std::string& key);
  // Rank 0's `value` on every rank, as one byte broadcast over the whole world (no polling): every rank calls it at
  // the same point, as with any collective. Throws Error(UNAVAILABLE) when a peer is gone.
  bool Decide(bool value);

  // Collectives issued by this rank so far, over all groups.
  std::int64_t collectives() const { return counter_->load(); }
  // Wall time this rank spent in them (transfers and waiting for peers), in microseconds.
  std::int64_t collective_micros() const { return micros_->load(); }

 private:
  std::unique_ptr<Group> MakeGroup(const std::string& name, std::vector<int> members);

  int rank_;
  CommBackend backend_;
  MeshOptions mesh_;
  std::string master_addr_;
  std::chrono::milliseconds timeout_;
  c10::Device control_device_;  // of Decide's byte: the rank's GPU under NCCL
  c10::intrusive_ptr<c10d::Store> store_;
  std::shared_ptr<std::atomic<std::int64_t>> counter_;
  std::shared_ptr<std::atomic<std::int64_t>> micros_;
  std::unique_ptr<Group> ulysses_, ring_, sequence_, cfg_, all_;
};

}  // namespace vidgen::parallel
