// Random-weight checkpoints in a family's released layout, for the benchmarks: a DiT of a chosen size (random
// weights of a trained model's scale) and the text encoders, tokenizers and VAE copied from a small checkpoint, so
// that a benchmark loads and runs it exactly as a user's checkpoint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "spec/spec.h"

namespace vidgen::tools {

struct SyntheticDit {
  // 0: the released value (Wan2.1-1.3B's width; HunyuanVideo's). HunyuanVideo's FFN is mlp_width_ratio × dim.
  std::int64_t dim = 0, heads = 0, ffn_dim = 0;
  // Wan: blocks; HunyuanVideo: the first third of them (at least one) double-stream, the rest single-stream, as
  // released (20 + 40).
  std::int64_t layers = 1;
  // When > 0: as many blocks as make about this many bytes of DiT weights (as released: Wan fp32, HunyuanVideo
  // bf16); HunyuanVideo then has one double block.
  std::int64_t bytes = 0;
};

// `dit` with the released values filled in for its zeros.
SyntheticDit Resolved(spec::Family family, const SyntheticDit& dit);

// The small checkpoint a family's other parts come from by default: its golden tiny checkpoint in the source tree
// (a path relative to the tree's root, where the benchmarks run).
std::filesystem::path DefaultParts(spec::Family family);

// Writes the checkpoint into `dir` (existing, empty).
void WriteSyntheticCheckpoint(const std::filesystem::path& dir, spec::Family family, const std::filesystem::path& parts,
                              const SyntheticDit& dit);

// A synthetic checkpoint in a temporary folder of its own, removed with it.
class SyntheticCheckpoint {
 public:
  SyntheticCheckpoint(spec::Family family, const SyntheticDit& dit, std::filesystem::path parts = {});
  ~SyntheticCheckpoint();
  SyntheticCheckpoint(const SyntheticCheckpoint&) = delete;
  SyntheticCheckpoint& operator=(const SyntheticCheckpoint&) = delete;
  std::string dir() const { return dir_.string(); }

 private:
  std::filesystem::path dir_;
};

}  // namespace vidgen::tools
