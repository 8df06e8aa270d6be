#include "models/dit/pipeline.h"

#include <chrono>

#include <torch/torch.h>

namespace vidgen::dit {

GenerationResult Pipeline::Generate(const GenerationRequest& given, const GenerationCallbacks& callbacks) {
  Validate(given);
  const auto request = Sized(given);
  torch::NoGradGuard no_grad;
  if (!loras_) loras_ = std::make_unique<lora::MergedSets>(Transformer(), kept_lora_sets_);
  loras_->Use(request.loras);
  GenerationResult result;
  auto& stats = result.stats;
  auto timed = [&](const char* stage, auto&& run) {
    const auto start = std::chrono::steady_clock::now();
    auto out = run();
    stats.stage_seconds[stage] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return out;
  };
  const auto model = timed("encode_text", [&] { return Condition(request); });
  const auto latents = timed("denoise", [&] {
    return Denoise(*model, space(), Noise(request), Sampler(request), callbacks, nullptr, &stats);
  });
  result.frames = timed("decode", [&] { return ToVideoFrames(Decode(latents)).cpu(); });
  return result;
}

lora::Adapter Pipeline::ReadLora(const std::string& path) {
  return lora::ReadAdapter(path, Transformer(), TransformerAliases());
}

std::vector<at::Tensor> Pipeline::weights() const {
  std::vector<at::Tensor> tensors;
  for (const auto* module : Modules()) {
    for (const auto& tensor : module->parameters()) tensors.push_back(tensor);
    for (const auto& tensor : module->buffers()) tensors.push_back(tensor);
  }
  return tensors;
}

}  // namespace vidgen::dit
