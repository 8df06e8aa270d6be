#include "tools/bench_model.h"

#include "models/families.h"
#include "parallel/world.h"

namespace vidgen::tools {

void AddBenchModelOptions(CLI::App& command, BenchModel& model) {
  command.add_option("--family", model.family, "wan2.1 or hunyuanvideo")->capture_default_str();
  command.add_option("--dim", model.dit.dim, "block width (0: the family's released width)")->capture_default_str();
  command.add_option("--heads", model.dit.heads, "attention heads (0: released)")->capture_default_str();
  command.add_option("--ffn-dim", model.dit.ffn_dim, "FFN width (0: released)")->capture_default_str();
  command.add_option("--layers", model.dit.layers, "blocks (HunyuanVideo: a third of them double-stream)")
      ->capture_default_str();
  command.add_option("--parts-from", model.parts_from, "the checkpoint of the text encoders, tokenizers and VAE");
  command.add_option("--dtype", model.dtype, "fp32, bf16 or fp16")->capture_default_str();
  command.add_option("--device", model.device, "cpu or cuda[:N]")->capture_default_str();
}

std::unique_ptr<SyntheticCheckpoint> WriteBenchCheckpoint(const BenchModel& model) {
  return std::make_unique<SyntheticCheckpoint>(model.parsed_family(), model.dit, model.parts_from);
}

std::unique_ptr<VideoPipeline> LoadBenchPipeline(const BenchModel& model, const std::string& dir,
                                                 parallel::World* world) {
  PipelineOptions options;
  options.dtype = ParseModelDType(model.dtype);
  options.device = c10::Device(model.device);
  options.world = world;
  return LoadPipeline(dir, model.parsed_family(), options);
}

GenerationRequest BenchRequest(const BenchModel& model, std::int64_t latent_frames, std::int64_t latent_height,
                               std::int64_t latent_width) {
  auto request = vidgen::FamilyDefaults(model.parsed_family());
  request.prompt = "a red ball bouncing on a wooden floor";
  request.frames = 4 * (latent_frames - 1) + 1;
  request.height = 8 * latent_height;
  request.width = 8 * latent_width;
  request.seed = 1;
  return request;
}

double DitFlops(const BenchModel& model, std::int64_t tokens) {
  const auto family = model.parsed_family();
  const auto sizes = Resolved(family, model.dit);
  const double L = static_cast<double>(tokens), D = static_cast<double>(sizes.dim);
  const double F = static_cast<double>(sizes.ffn_dim), layers = static_cast<double>(sizes.layers);
  if (family == spec::Family::kWan) {
    const double T = 512;
    const double self_attention = 2 * L * 4 * D * D + 4 * L * L * D;
    // The text's keys and values are projected once per generation, not per forward.
    const double cross_attention = 2 * L * 2 * D * D + 4 * L * T * D;
    const double ffn = 2 * L * 2 * D * F;
    return layers * (self_attention + cross_attention + ffn);
  }
  // A double block's two streams and a single block both take q, k, v, the output and the MLP of every token.
  return layers * (2 * L * D * (4 * D + 2 * F) + 4 * L * L * D);
}

}  // namespace vidgen::tools
