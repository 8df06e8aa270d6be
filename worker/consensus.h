// How the ranks of a worker group agree on what to run: rank 0 publishes small values under keys, the others await
// them (the jobs), and all decide together on rank 0's yes or no (stop before a step). Over the group's rendezvous
// store and collectives in a real group; in memory for tests of the loop.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace vidgen::parallel {
class World;
}

namespace vidgen::worker {

class Consensus {
 public:
  virtual ~Consensus() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual void Publish(const std::string& key, const std::string& value) = 0;
  // nullopt when `timeout` passes first.
  virtual std::optional<std::string> Await(const std::string& key, std::chrono::milliseconds timeout) = 0;
  virtual void Forget(const std::string& key) = 0;
  // Rank 0's `value` on every rank; every rank calls it at the same point. Throws Error(UNAVAILABLE) when the group
  // broke.
  virtual bool Decide(bool value) = 0;
};

// The world's store (parallel::World::Publish/Await/Forget) and its broadcast (World::Decide). Not owned; must
// outlive this.
class WorldConsensus final : public Consensus {
 public:
  explicit WorldConsensus(parallel::World& world) : world_(world) {}
  int rank() const override;
  int size() const override;
  void Publish(const std::string& key, const std::string& value) override;
  std::optional<std::string> Await(const std::string& key, std::chrono::milliseconds timeout) override;
  void Forget(const std::string& key) override;
  bool Decide(bool value) override;

 private:
  parallel::World& world_;
};

}  // namespace vidgen::worker
