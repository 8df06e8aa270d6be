#include "models/dit/attention.h"

#include <torch/torch.h>

#include "models/layers/attention.h"
#include "parallel/attention.h"

namespace vidgen::dit {

at::Tensor SelfAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const TokenLayout& layout) {
  if (auto* world = layout.split_world()) return parallel::SequenceParallelAttention(*world, q, k, v, layout.lengths);
  layers::AttentionOptions options;
  options.key_lengths = layout.lengths;
  return layers::Attention(q, k, v, options);
}

std::pair<at::Tensor, at::Tensor> JointAttention(const std::array<at::Tensor, 3>& image,
                                                 const std::array<at::Tensor, 3>& text, const TokenLayout& layout,
                                                 const std::vector<std::int64_t>& text_valid) {
  const auto& [qi, ki, vi] = image;
  const auto& [qt, kt, vt] = text;
  const std::int64_t chunk = qi.size(1), text_length = qt.size(1);
  auto* world = layout.split_world();
  std::vector<at::Tensor> image_out, text_out;
  // Per sample: the texts' real lengths differ.
  for (std::int64_t b = 0; b < qi.size(0); ++b) {
    const std::int64_t n = text_valid[static_cast<std::size_t>(b)];
    auto rows = [&](const at::Tensor& t, std::int64_t from, std::int64_t to) {
      return t.slice(0, b, b + 1).slice(1, from, to);
    };
    at::Tensor image_rows, real_text;
    if (world) {
      const parallel::JointText joint{rows(qt, 0, n), rows(kt, 0, n), rows(vt, 0, n), {n}};
      auto out = parallel::SequenceParallelJointAttention(*world, rows(qi, 0, chunk), rows(ki, 0, chunk),
                                                          rows(vi, 0, chunk), {layout.lengths[static_cast<std::size_t>(b)]},
                                                          joint);
      image_rows = out.image;
      real_text = out.text;
    } else {
      const auto out = layers::Attention(torch::cat({rows(qi, 0, chunk), rows(qt, 0, n)}, 1),
                                         torch::cat({rows(ki, 0, chunk), rows(kt, 0, n)}, 1),
                                         torch::cat({rows(vi, 0, chunk), rows(vt, 0, n)}, 1));
      image_rows = out.slice(1, 0, chunk);
      real_text = out.slice(1, chunk);
    }
    image_out.push_back(image_rows);
    if (n < text_length) {
      const auto padded = layers::Attention(rows(qt, n, text_length), rows(kt, n, text_length), rows(vt, n, text_length));
      real_text = torch::cat({real_text, padded}, 1);
    }
    text_out.push_back(real_text);
  }
  return {torch::cat(image_out), torch::cat(text_out)};
}

}  // namespace vidgen::dit
