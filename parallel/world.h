// A group of ranks joined through c10d (Gloo on CPU, NCCL on CUDA builds), arranged as a mesh of CFG × ring ×
// Ulysses degrees. Ulysses groups are adjacent ranks, ring groups stride over them (as xDiT), and the sequence
// group of a CFG half is its ring × Ulysses ranks, whose token chunks are in rank order.
//
// Collectives go only through Group, which counts them, so tests can prove that a step made none.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/util/intrusive_ptr.h>

namespace c10d {
class ProcessGroup;
class Store;
}  // namespace c10d

namespace vidgen::parallel {

struct Rendezvous {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
};

// RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (torchrun's and Slurm launchers' names; SLURM_PROCID and SLURM_NTASKS
// when RANK and WORLD_SIZE are absent). Throws Error(INVALID_ARGUMENT) naming a missing or malformed variable.
Rendezvous RendezvousFromEnv();

struct MeshOptions {
  int ulysses = 1;
  int ring = 1;
  int cfg = 1;
  int world() const { return ulysses * ring * cfg; }
};

// Ranks of one collective group; blocking collectives over its members, each counted once.
class Group {
 public:
  Group(c10::intrusive_ptr<c10d::ProcessGroup> group, std::vector<int> members, int rank,
        std::shared_ptr<std::atomic<std::int64_t>> counter, std::shared_ptr<std::atomic<std::int64_t>> micros);

  int rank() const { return rank_; }  // within the group
  int size() const { return static_cast<int>(members_.size()); }
  const std::vector<int>& members() const { return members_; }  // world ranks, in group order

  // input: [size, ...]; slice i goes to member i. Returns [size, ...] with slice i from member i.
  at::Tensor AllToAll(const at::Tensor& input);
  // Returns [size, ...input.shape] with slice i from member i.
  at::Tensor AllGather(const at::Tensor& input);
  // Sends `to_next` to member rank+1 and returns what member rank-1 sent (both cyclic): one ring hop.
  at::Tensor RingShift(const at::Tensor& to_next);

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
  Timer Count() {
    counter_->fetch_add(1);
    return Timer{micros_.get()};
  }

  c10::intrusive_ptr<c10d::ProcessGroup> group_;
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

  // Collectives issued by this rank so far, over all groups.
  std::int64_t collectives() const { return counter_->load(); }
  // Wall time this rank spent in them (transfers and waiting for peers), in microseconds.
  std::int64_t collective_micros() const { return micros_->load(); }

 private:
  std::unique_ptr<Group> MakeGroup(const std::string& name, std::vector<int> members);

  int rank_;
  MeshOptions mesh_;
  std::string master_addr_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  std::shared_ptr<std::atomic<std::int64_t>> counter_;
  std::shared_ptr<std::atomic<std::int64_t>> micros_;
  std::unique_ptr<Group> ulysses_, ring_, sequence_, cfg_;
};

}  // namespace vidgen::parallel
