#include "models/hunyuan/sampler.h"

#include <torch/torch.h>

#include "models/dit/denoise.h"

namespace vidgen::hunyuan {
namespace {

// HunyuanVideo's transformer over one generation: one pass a step, the guidance embedded in the model.
class HunyuanDenoiser final : public dit::Denoiser {
 public:
  HunyuanDenoiser(HunyuanDit& dit, const HunyuanText& text, double embedded_guidance) : dit_(dit) {
    input_.text_states = text.states.unsqueeze(0).to(device());
    input_.text_mask = text.mask.unsqueeze(0).to(device());
    input_.text_states_2 = text.pooled.unsqueeze(0).to(device());
    input_.guidance = torch::full({1}, EmbeddedGuidanceValue(embedded_guidance, dit->patch->weight.scalar_type()),
                                  torch::TensorOptions().dtype(torch::kFloat).device(device()));
  }

  c10::Device device() const override { return dit_->patch->weight.device(); }

  void Prepare(const dit::Shard& shard, const dit::Grid& grid) override {
    layout_ = dit_->Layout(shard, grid, input_.text_mask);
  }

  cache::CacheFootprint Footprint(std::int64_t batch, int streams) const override {
    return dit_->Footprint(batch, layout_.image.shard.chunk, input_.text_states.size(1), streams);
  }

  at::Tensor Predict(const at::Tensor& tokens, double timestep, std::span<const dit::Condition>,
                     cache::FeatureCache::Forward* cache) override {
    input_.tokens = tokens.unsqueeze(0);
    input_.timesteps = torch::full({1}, timestep, torch::TensorOptions().dtype(torch::kFloat).device(device()));
    return dit_->ForwardTokens(input_, layout_, cache);
  }

 private:
  HunyuanDit& dit_;
  HunyuanTokenInput input_;
  HunyuanLayout layout_;
};

}  // namespace

std::unique_ptr<dit::Denoiser> MakeDenoiser(HunyuanDit& dit, const HunyuanText& text, double embedded_guidance) {
  return std::make_unique<HunyuanDenoiser>(dit, text, embedded_guidance);
}

double EmbeddedGuidanceValue(double embedded_guidance, c10::ScalarType dtype) {
  return (torch::full({1}, embedded_guidance, torch::TensorOptions().dtype(dtype)) * 1000.0).item<double>();
}

at::Tensor Denoise(HunyuanDit& dit, const at::Tensor& noise, const HunyuanText& text,
                   const HunyuanDenoiseOptions& options, const GenerationCallbacks& callbacks,
                   const HunyuanStepObserver& observer, GenerationStats* stats) {
  torch::NoGradGuard no_grad;
  HunyuanDenoiser denoiser(dit, text, options.embedded_guidance);
  dit::SamplerOptions sampler;
  sampler.schedule = options.schedule;
  sampler.cache = options.cache;
  sampler.world = options.world;
  return dit::Denoise(denoiser, dit->space(), noise, sampler, callbacks, observer, stats);
}

}  // namespace vidgen::hunyuan
