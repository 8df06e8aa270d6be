// CLIP's vision tower as Wan's image-to-video models use it (open-clip XLM-RoBERTa ViT-H/14, models.md): patches
// and a class token with learned positions, a pre-norm, pre-norm blocks (one fused q/k/v product, GELU MLP), and the
// features of every block but the last ("use_31_block"). Parameter names are the released checkpoint's
// `visual.*`; the text tower, the last block, `post_norm` and `head` are never loaded.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "models/dit/layers.h"
#include "models/layers/layers.h"

namespace vidgen::encoders {

struct ClipVisionConfig {
  std::int64_t image_size = 224, patch_size = 14;
  std::int64_t dim = 1280, heads = 16, mlp_dim = 5120;
  std::int64_t layers = 31;  // the blocks that run: the checkpoint's but its last
  double eps = 1e-5;
  std::int64_t tokens() const { return 1 + (image_size / patch_size) * (image_size / patch_size); }
};

// "attn": to_qkv, proj.
struct ClipVisionAttentionImpl : torch::nn::Module {
  ClipVisionAttentionImpl(std::int64_t dim, std::int64_t heads);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Linear to_qkv{nullptr}, proj{nullptr};
  std::int64_t heads;
};
TORCH_MODULE(ClipVisionAttention);

struct ClipVisionBlockImpl : torch::nn::Module {
  explicit ClipVisionBlockImpl(const ClipVisionConfig& config);
  at::Tensor forward(const at::Tensor& x);
  layers::AffineLayerNorm norm1{nullptr}, norm2{nullptr};
  ClipVisionAttention attn{nullptr};
  dit::Mlp mlp{nullptr};
};
TORCH_MODULE(ClipVisionBlock);

class ClipVisionEncoderImpl : public torch::nn::Module {
 public:
  explicit ClipVisionEncoderImpl(const ClipVisionConfig& config);
  // image [3, H, W] in [-1, 1], any size -> the tower's input [3, S, S]: bicubic to S×S (align_corners false, no
  // antialias), back to [0, 1], then CLIP's mean and std.
  at::Tensor Preprocess(const at::Tensor& image) const;
  // pixel values [B, 3, S, S] -> features [B, tokens, dim] fp32: the class token first, then the patches row-major.
  at::Tensor Forward(const at::Tensor& pixel_values);
  // The pre-norm's output and each block's, for tests; empty unless set.
  std::function<void(const std::string& name, const at::Tensor& value)> trace;
  const ClipVisionConfig& config() const { return config_; }

  // "visual." + patch_embedding, cls_embedding, pos_embedding, pre_norm, transformer
  torch::nn::Conv2d patch_embedding{nullptr};
  at::Tensor cls_embedding, pos_embedding;
  layers::AffineLayerNorm pre_norm{nullptr};
  torch::nn::ModuleList transformer;

 private:
  ClipVisionConfig config_;
};
TORCH_MODULE(ClipVisionEncoder);

// Loads the vision tower of a released CLIP file (a torch.save archive of the whole XLM-RoBERTa CLIP). Sizes come
// from the weights; the head count from `clip_config.json` beside the file ("vision_heads") when there is one, else
// ViT-H/14's 16. Throws Error naming the file or tensor that does not fit.
ClipVisionEncoder LoadClipVisionEncoder(const std::string& path, c10::ScalarType dtype, c10::Device device);
// Loads the diffusers layout's `image_encoder/` (transformers' CLIPVisionModel: config.json, model*.safetensors),
// whose hidden_states[-2] are the same features. Throws Error naming the file or tensor that does not fit.
ClipVisionEncoder LoadDiffusersClipVisionEncoder(const std::string& dir, c10::ScalarType dtype, c10::Device device);

}  // namespace vidgen::encoders
