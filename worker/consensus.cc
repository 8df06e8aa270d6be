#include "worker/consensus.h"

#include "parallel/world.h"

namespace vidgen::worker {

int WorldConsensus::rank() const {
  return world_.rank();
}

int WorldConsensus::size() const {
  return world_.size();
}

void WorldConsensus::Publish(const std::string& key, const std::string& value) {
  world_.Publish(key, value);
}

std::optional<std::string> WorldConsensus::Await(const std::string& key, std::chrono::milliseconds timeout) {
  return world_.Await(key, timeout);
}

void WorldConsensus::Forget(const std::string& key) {
  world_.Forget(key);
}

bool WorldConsensus::Decide(bool value) {
  return world_.Decide(value);
}

}  // namespace vidgen::worker
