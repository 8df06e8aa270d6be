#include "cache/feature_cache.h"

#include <chrono>
#include <cmath>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/bytes.h"
#include "common/error.h"

namespace vidgen::cache {
FeatureCache::FeatureCache(const CacheConfig& config, const CacheFootprint& footprint, int steps,
                           std::vector<double> sigmas)
    : config_(config), steps_(steps), sigmas_(std::move(sigmas)), shared_gates_(footprint.shared_gates) {
  config_.Validate();
  if (shared_gates_ >= 0 && footprint.branch_numels.size() != static_cast<std::size_t>(shared_gates_) + 1) {
    Fail(ErrorCode::kInternal, "a folded stack with {} shared gates keeps {} sums, not {}", shared_gates_,
         shared_gates_ + 1, footprint.branch_numels.size());
  }
  if (config_.distance == Distance::kSigma && static_cast<int>(sigmas_.size()) < steps) {
    Fail(ErrorCode::kInvalidArgument, "cache distance 'sigma' needs the sigma of each of the {} steps", steps);
  }
  std::int64_t estimate = EstimateBytes(config_, footprint);
  if (config_.budget_bytes > 0 && estimate > config_.budget_bytes) {
    CacheConfig lite = config_;
    lite.policy = Policy::kLite;
    const std::int64_t lite_estimate = EstimateBytes(lite, footprint);
    const bool fall_back = config_.over_budget == OverBudget::kFallBackToLite && config_.policy != Policy::kLite &&
                           lite_estimate <= config_.budget_bytes;
    if (!fall_back) {
      const std::string lite_hint = config_.policy != Policy::kLite && lite_estimate <= config_.budget_bytes
                                        ? fmt::format(", use lite mode ({})", ByteSize(lite_estimate))
                                        : "";
      Fail(ErrorCode::kResourceExhausted,
           "the {} cache needs {} ({} streams, order {}, {} {}), over the cache budget of {}; lower the order, "
           "store factors in bf16 or fp8{}, or use more ranks",
           PolicyName(config_.policy), ByteSize(estimate), footprint.streams, config_.order,
           config_.policy == Policy::kLite ? 1 : footprint.branch_numels.size(),
           footprint.shared_gates >= 0 ? "sums of a folded stack" : "branches", ByteSize(config_.budget_bytes),
           lite_hint);
    }
    spdlog::warn("the TaylorSeer cache needs {}, over the budget of {}: falling back to lite mode ({})",
                 ByteSize(estimate), ByteSize(config_.budget_bytes), ByteSize(lite_estimate));
    config_ = lite;
    estimate = lite_estimate;
  }
  plan_ = Plan(config_, steps);
  stats_.policy = config_.policy;
  stats_.estimated_bytes = estimate;
}

double FeatureCache::Coordinate(int step) const {
  return config_.distance == Distance::kSigma ? sigmas_[static_cast<std::size_t>(step)] : static_cast<double>(step);
}

FeatureCache::Forward FeatureCache::Begin(int step, int stream) {
  if (step < 0 || step >= steps_) Fail(ErrorCode::kInternal, "cache step {} outside 0..{}", step, steps_ - 1);
  if (unfolded_step_ >= 0) {
    Fail(ErrorCode::kInternal, "step {}'s folded stack began another forward before its FoldStack", unfolded_step_);
  }
  const bool full = plan_[static_cast<std::size_t>(step)];
  if (step != last_counted_step_) {
    (full ? stats_.full_steps : stats_.predicted_steps) += 1;
    last_counted_step_ = step;
  }
  auto& state = streams_[stream];
  if (full && (state.full_steps.empty() || state.full_steps.back() != step)) state.full_steps.push_back(step);
  if (!full && state.full_steps.empty()) {
    Fail(ErrorCode::kFailedPrecondition, "cache stream {} is asked to forecast step {} before any full step", stream,
         step);
  }
  Forward forward(this, step, stream, full);
  if (full && forward.folded()) {
    unfolded_step_ = step;
    forward.gated_sums_.resize(static_cast<std::size_t>(shared_gates_));
  }
  return forward;
}

at::Tensor FeatureCache::Forward::Branch(std::int64_t id, const std::function<at::Tensor()>& compute) {
  if (folded()) {
    Fail(ErrorCode::kInternal, "branch {} of a folded stack: a gated branch goes through GatedBranch, others nowhere",
         id);
  }
  auto& stream = cache_->streams_[stream_];
  if (!full_) return cache_->Forecast(stream, step_, id);
  auto value = compute();
  // A copy in fp32: the model may go on to write into its tensor.
  cache_->Update(stream, step_, id, value.detach().to(torch::kFloat, /*non_blocking=*/false, /*copy=*/true));
  return value;
}

void FeatureCache::Forward::RequireFoldedStep(bool full, const char* what) const {
  if (!folded() || full_ != full) {
    Fail(ErrorCode::kInternal, "{} of stream {} at step {} outside a folded stack's {} step", what, stream_, step_,
         full ? "full" : "predicted");
  }
}

void FeatureCache::Forward::RequireOneGatePerSlot(std::span<const at::Tensor> step_gates, const char* what) const {
  if (step_gates.size() != static_cast<std::size_t>(cache_->shared_gates_)) {
    Fail(ErrorCode::kInternal, "{} of stream {} at step {} with {} gates for {} shared gates", what, stream_, step_,
         step_gates.size(), cache_->shared_gates_);
  }
}

at::Tensor FeatureCache::Forward::GatedBranch(int slot, const std::function<at::Tensor()>& compute) {
  RequireFoldedStep(true, "a gated branch");
  if (slot < 0 || slot >= cache_->shared_gates_) {
    Fail(ErrorCode::kInternal, "gate slot {} of a folded stack with {} shared gates", slot, cache_->shared_gates_);
  }
  auto value = compute();
  auto& sum = gated_sums_[static_cast<std::size_t>(slot)];
  // fp32, and never aliasing the model's tensor: the first term is copied, the others added in place.
  if (sum.defined()) {
    sum.add_(value.detach());
  } else {
    sum = value.detach().to(torch::kFloat, /*non_blocking=*/false, /*copy=*/true);
    cache_->CountBytes(StoredBytes(sum.numel(), FactorDType::kFloat32));
  }
  return value;
}

void FeatureCache::Forward::FoldStack(const at::Tensor& x, const at::Tensor& out,
                                      std::span<const at::Tensor> step_gates) {
  RequireFoldedStep(true, "a stack's fold");
  RequireOneGatePerSlot(step_gates, "a stack's fold");
  const auto slots = gated_sums_.size();
  auto rest = torch::sub(out.detach().to(torch::kFloat), x.detach());  // R = out − x − Σ_s g_s ⊙ Q_s
  for (std::size_t s = 0; s < slots; ++s) {
    if (!gated_sums_[s].defined()) {
      Fail(ErrorCode::kInternal, "a folded stack's step {} added no branch under gate {}", step_, s);
    }
    rest.addcmul_(gated_sums_[s], step_gates[s], -1);
  }
  auto& stream = cache_->streams_[stream_];
  // The sums are the cache's own: they become the new factors without a copy.
  cache_->Update(stream, step_, 0, std::move(rest));
  for (std::size_t s = 0; s < slots; ++s) {
    cache_->CountBytes(-StoredBytes(gated_sums_[s].numel(), FactorDType::kFloat32));
    cache_->Update(stream, step_, static_cast<std::int64_t>(s) + 1, std::move(gated_sums_[s]));
  }
  gated_sums_.clear();
  cache_->unfolded_step_ = -1;
}

at::Tensor FeatureCache::Forward::ForecastStack(const at::Tensor& x, std::span<const at::Tensor> step_gates) {
  RequireFoldedStep(false, "a stack's forecast");
  RequireOneGatePerSlot(step_gates, "a stack's forecast");
  const auto& stream = cache_->streams_[stream_];
  auto out = torch::add(x.to(torch::kFloat), cache_->Forecast(stream, step_, 0));
  for (std::size_t s = 0; s < step_gates.size(); ++s) {
    out.addcmul_(cache_->Forecast(stream, step_, static_cast<std::int64_t>(s) + 1), step_gates[s]);
  }
  return out;
}

void FeatureCache::Update(Stream& stream, int step, std::int64_t id, at::Tensor value) {
  auto& old = stream.factors[id].terms;
  for (const auto& term : old) CountBytes(-term.bytes());
  std::vector<StoredTensor> fresh;
  auto current = std::move(value);  // read below, never written: the differences go into the old terms' storage
  fresh.push_back(StoredTensor::Store(current, config_.factor_dtype));
  // Differences need a previous full step; as the reference, none are taken during the warm-up but its last step.
  // Each old term's storage becomes the next new one: Δ^(k+1) = (Δ^k new − Δ^k old) / distance.
  const auto& full = stream.full_steps;
  if (config_.policy != Policy::kNone && full.size() >= 2 && step >= config_.warmup - 1) {
    const double distance = Coordinate(full[full.size() - 1]) - Coordinate(full[full.size() - 2]);
    for (std::size_t k = 0; k < static_cast<std::size_t>(config_.order) && k < old.size(); ++k) {
      current = old[k].BecomeDifference(current, distance);
      fresh.push_back(std::move(old[k]));
    }
  }
  for (const auto& term : fresh) CountBytes(term.bytes());
  old = std::move(fresh);
}

void FeatureCache::CountBytes(std::int64_t change) {
  bytes_ += change;
  stats_.peak_bytes = std::max(stats_.peak_bytes, bytes_);
}

int FeatureCache::TEST_TermCount(int stream, std::int64_t id) const {
  const auto s = streams_.find(stream);
  if (s == streams_.end()) return 0;
  const auto f = s->second.factors.find(id);
  return f == s->second.factors.end() ? 0 : static_cast<int>(f->second.terms.size());
}

at::Tensor FeatureCache::Forecast(const Stream& stream, int step, std::int64_t id) {
  const auto start = std::chrono::steady_clock::now();
  const auto it = stream.factors.find(id);
  if (it == stream.factors.end()) {
    Fail(ErrorCode::kFailedPrecondition, "no cached features for branch {} at step {}", id, step);
  }
  const auto& full = stream.full_steps;
  const double x = Coordinate(step) - Coordinate(full.back());
  const double d = full.size() >= 2 ? Coordinate(full.back()) - Coordinate(full[full.size() - 2]) : 0.0;
  const auto& terms = it->second.terms;
  // Σ_k c_k·Δ^k with c_k = x^k/k! (Taylor) or x(x+d)…(x+(k−1)d)/k! (Newton), summed in fp32 in one pass per term.
  const auto base = terms[0].View().to(torch::kFloat);
  at::Tensor out;
  double coefficient = 1;
  for (std::size_t k = 1; k < terms.size(); ++k) {
    const double shift = config_.expansion == Expansion::kNewton ? static_cast<double>(k - 1) * d : 0.0;
    coefficient *= (x + shift) / static_cast<double>(k);
    if (k == 1) {
      out = torch::add(base, terms[1].View(), coefficient);
    } else {
      out.add_(terms[k].View(), coefficient);
    }
  }
  // Order 0: the stored value itself for a block branch (read-only by contract: saves a copy per branch and step);
  // a copy for the model's output, which leaves the model.
  if (!out.defined()) out = id == kOutputBranch ? base.clone() : base;
  stats_.forecast_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace vidgen::cache
