// The transformer's weights under a different set of adapters per job: the base values of every parameter a set
// changes are kept once (on the host), and the merged values of the last few sets (on the host, in the parameters'
// dtype), so that a set used again is copied in rather than merged again; no set is the base weights, bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "models/lora/adapter.h"

namespace vidgen::lora {

class MergedSets {
 public:
  // Keeps the merged values of up to `capacity` sets besides the one in use (0: merge every change of set, and keep
  // no merged values at all).
  MergedSets(torch::nn::Module& module, std::size_t capacity);

  // Puts `set` on the module's parameters (empty: the base weights). Throws what a merge throws, with the base
  // weights back.
  void Use(const AdapterSet& set);

  const AdapterSet& current() const { return current_; }
  // How many times a set was merged rather than found kept (for tests and logs).
  std::size_t merges() const { return merges_; }
  // Host bytes of the kept merged values (the base values not counted).
  std::int64_t kept_bytes() const;

 private:
  struct Merged {
    AdapterSet set;
    std::map<std::string, at::Tensor> values;  // what the set makes of each parameter it changes: host, its dtype
  };
  void RestoreBase();
  Merged Merge(const AdapterSet& set);

  torch::nn::Module& module_;
  std::size_t capacity_;
  std::map<std::string, at::Tensor> base_;  // host copies of every parameter any set changed
  std::list<Merged> kept_;                  // most recently used first; the front is `current_` when it is set and kept
  AdapterSet current_;
  std::vector<std::string> changed_;  // the parameters `current_` changed
  std::size_t merges_ = 0;
};

}  // namespace vidgen::lora
