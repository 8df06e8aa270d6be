#include "models/dit/pipeline.h"

#include <chrono>

#include <torch/torch.h>

namespace vidgen::dit {

GenerationResult Pipeline::Generate(const GenerationRequest& given, const GenerationCallbacks& callbacks) {
  Validate(given);
  const auto request = Sized(given);
  torch::NoGradGuard no_grad;
  UseLoras(request.loras);
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

void Pipeline::UseLoras(const std::vector<std::pair<const lora::Adapter*, double>>& loras) {
  if (loras == applied_set_) return;
  applied_.reset();  // the base weights back
  applied_set_.clear();
  if (loras.empty()) return;
  applied_ = std::make_unique<lora::AppliedAdapters>(Transformer(), loras);
  applied_set_ = loras;
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
