// The model the benchmarks run: a random-weight DiT of a chosen size in a family's released layout, written as a
// synthetic checkpoint (tools/synthetic_checkpoint.h) and loaded as a user's checkpoint, on a chosen device and
// dtype; and the request that runs it at a chosen latent size.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "models/generation.h"
#include "spec/spec.h"
#include "tools/synthetic_checkpoint.h"

namespace vidgen::parallel {
class World;
}

namespace vidgen::tools {

struct BenchModel {
  std::string family = "wan2.1";
  SyntheticDit dit;
  std::string parts_from;  // the small checkpoint of the text encoders and VAE (default: the family's golden one)
  std::string dtype = "bf16", device = "cpu";

  spec::Family parsed_family() const { return spec::ParseFamily(family); }
  static BenchModel WithLayers(std::int64_t layers) {
    BenchModel model;
    model.dit.layers = layers;
    return model;
  }
};

// --family, --dim, --heads, --ffn-dim, --layers, --parts-from, --dtype, --device.
void AddBenchModelOptions(CLI::App& command, BenchModel& model);

// Writes the model's checkpoint (removed with the returned object).
std::unique_ptr<SyntheticCheckpoint> WriteBenchCheckpoint(const BenchModel& model);
std::unique_ptr<VideoPipeline> LoadBenchPipeline(const BenchModel& model, const std::string& dir,
                                                 parallel::World* world = nullptr);

// The family's defaults at latents [T, h, w] (frames 4(T−1)+1, sides 8h × 8w), a fixed prompt and seed.
GenerationRequest BenchRequest(const BenchModel& model, std::int64_t latent_frames, std::int64_t latent_height,
                               std::int64_t latent_width);

// Forward FLOPs of the DiT's blocks (matrix products and attention) for `tokens` video tokens: models.md G's
// accounting, Wan with its 512 text slots in cross-attention, HunyuanVideo over the video tokens alone.
double DitFlops(const BenchModel& model, std::int64_t tokens);

}  // namespace vidgen::tools
