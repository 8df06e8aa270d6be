// FeatureCache: TaylorSeer-style forecasting of a model's cacheable branches, one cache per generation.
//
// A model computes each cacheable branch through Forward::Branch(id, compute). On a full step `compute` runs and the
// cache rebuilds that branch's Taylor factors by recursive divided differences over the last two full steps; on a
// predicted step `compute` is not run and Σ Δ^k·x^k/k! comes back. State is kept per stream (the conditional and
// unconditional CFG passes) and holds exactly what this process computed: under sequence parallelism that is its
// token shard, and nothing in the cache is ever communicated.
//
// A folded stack (Wan): when every branch enters one residual stream as h += (constant_b + g_s(t)) ⊙ F_b, with
// constant_b the block's own and g_s(t) a per-step gate shared by all blocks (or without a gate), a predicted step's
// whole stack is
//   h_out = x + Σ_k c_k (R_k + Σ_s g_s(t) ⊙ Q_{s,k}),   Q_s = Σ_{b gated by s} F_b,   R = h_out − x − Σ_s g_s ⊙ Q_s
// because the differences and the expansion are linear. The cache keeps the Taylor factors of R and of each Q_s,
// not of every branch: the same forecast (up to fp32 rounding) for 1 + shared_gates sums whatever the depth, read
// once per predicted step instead of each branch's factors and a residual update per branch. R comes from the
// stack's own output, so a full step adds only the gated branches into the sums, once each.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "cache/config.h"
#include "cache/stored_tensor.h"

namespace vidgen::cache {

struct CacheStats {
  Policy policy = Policy::kNone;  // the one in effect (after a budget fallback)
  int full_steps = 0;
  int predicted_steps = 0;
  std::int64_t estimated_bytes = 0;
  std::int64_t peak_bytes = 0;
  double forecast_seconds = 0;
};

class FeatureCache {
 public:
  // The id under which lite mode keeps the model's output.
  static constexpr std::int64_t kOutputBranch = -1;

  // `sigmas`: the scheduler's sigma per step (for Distance::kSigma). Checks the budget: over it, throws
  // Error(RESOURCE_EXHAUSTED) with the numbers, or switches to lite mode, as config.over_budget says.
  FeatureCache(const CacheConfig& config, const CacheFootprint& footprint, int steps, std::vector<double> sigmas);

  class Forward {
   public:
    bool full() const { return full_; }
    // Lite mode: the model routes its whole block stack through Branch(kOutputBranch, ...).
    bool lite() const { return cache_->config_.policy == Policy::kLite; }
    // The branch's output at this step: computed (full step, in compute's dtype) or forecast (predicted step, fp32:
    // the blocks add branches into their fp32 residual stream, and a cast back to bf16 would only lose bits). A
    // block branch's forecast may be the cache's own tensor (order 0, fp32 storage): read it, never write to it.
    at::Tensor Branch(std::int64_t id, const std::function<at::Tensor()>& compute);

    // A folded stack (the footprint's shared_gates ≥ 0) runs its blocks on full steps only. There, each branch
    // under shared gate `slot` goes through GatedBranch, which runs `compute`, adds the value into Q_slot and
    // returns it, and the stack's end hands its input and output to FoldStack, which takes R and updates the
    // factors. On predicted steps the model runs no block and takes its stack's output from ForecastStack: x + the
    // forecast sums under this step's shared gates, in fp32. step_gates[s] is g_s(t), gate s's per-step part.
    bool folded() const { return cache_->shared_gates_ >= 0 && cache_->config_.policy == Policy::kTaylorSeer; }
    at::Tensor GatedBranch(int slot, const std::function<at::Tensor()>& compute);
    void FoldStack(const at::Tensor& x, const at::Tensor& out, std::span<const at::Tensor> step_gates);
    at::Tensor ForecastStack(const at::Tensor& x, std::span<const at::Tensor> step_gates);

   private:
    friend class FeatureCache;
    Forward(FeatureCache* cache, int step, int stream, bool full)
        : cache_(cache), step_(step), stream_(stream), full_(full) {}
    void RequireFoldedStep(bool full, const char* what) const;
    void RequireOneGatePerSlot(std::span<const at::Tensor> step_gates, const char* what) const;
    FeatureCache* cache_;
    int step_, stream_;
    bool full_;
    std::vector<at::Tensor> gated_sums_;  // a folded full step's Q_s so far (one per slot), fp32
  };

  // Starts one model forward of `stream` (0: conditional, 1: unconditional) at `step`.
  Forward Begin(int step, int stream);

  const CacheConfig& config() const { return config_; }
  bool IsFull(int step) const { return plan_.at(static_cast<std::size_t>(step)); }
  const CacheStats& stats() const { return stats_; }
  std::int64_t bytes() const { return bytes_; }
  // How many Taylor factors (order + 1 once built up) a branch holds; 0 when it holds none.
  int TEST_TermCount(int stream, std::int64_t id) const;

 private:
  struct Factors {
    std::vector<StoredTensor> terms;  // F, ΔF, Δ²F, ...
  };
  struct Stream {
    std::vector<int> full_steps;              // the steps at which this stream was computed in full
    std::map<std::int64_t, Factors> factors;  // by branch id; a folded stack's by sum (0: R, 1 + s: Q_s)
  };
  double Coordinate(int step) const;
  // Rebuilds `id`'s factors from this full step's `value`: fp32, the cache's own (fp32 storage keeps it as it is).
  void Update(Stream& stream, int step, std::int64_t id, at::Tensor value);
  void CountBytes(std::int64_t change);  // what the cache holds changes by `change`
  at::Tensor Forecast(const Stream& stream, int step, std::int64_t id);

  CacheConfig config_;
  int steps_;
  std::vector<double> sigmas_;
  std::vector<bool> plan_;
  std::map<int, Stream> streams_;
  int shared_gates_;
  int unfolded_step_ = -1;  // a folded full step whose stack has not reached FoldStack yet
  std::int64_t bytes_ = 0;
  int last_counted_step_ = -1;
  CacheStats stats_;
};

}  // namespace vidgen::cache
