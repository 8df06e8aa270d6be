#include "models/schedulers/flow_scheduler.h"

#include <cmath>
#include <deque>

#include <torch/torch.h>

#include "common/error.h"

namespace vidgen::schedulers {
namespace {

double Fp32(double x) {
  return static_cast<double>(static_cast<float>(x));
}

double Shifted(double sigma, double shift) {
  return shift * sigma / (1 + (shift - 1) * sigma);
}

// numpy.linspace(start, stop, count)
std::vector<double> Linspace(double start, double stop, int count) {
  std::vector<double> values(static_cast<std::size_t>(count));
  const double step = count > 1 ? (stop - start) / (count - 1) : 0;
  for (int i = 0; i < count; ++i) values[static_cast<std::size_t>(i)] = start + i * step;
  if (count > 1) values.back() = stop;
  return values;
}

// λ(σ) = log(α) − log(σ) with α = 1 − σ: the half log-SNR that DPM-Solver and UniPC step in.
double Lambda(double sigma) {
  return std::log(1 - sigma) - std::log(sigma);
}

// The schedule of every solver: σ = shift·s/(1 + (shift−1)·s) for s = linspace(start, 0, steps + 1), without its
// last point (or s = t/1000 of the given timesteps), then a final 0. Wan truncates σ·1000 computed in float64;
// HunyuanVideo computes σ·1000 in fp32.
void ShiftedSchedule(double start, const ScheduleOptions& options, std::vector<double>& sigmas,
                     std::vector<double>& timesteps) {
  std::vector<double> base;
  for (const double t : options.timesteps) base.push_back(t / 1000.0);
  if (base.empty()) {
    base = Linspace(start, 0.0, options.steps + 1);
    base.pop_back();
  }
  for (const double s : base) {
    const double sigma = Shifted(s, options.shift);
    timesteps.push_back(options.integer_timesteps ? std::trunc(sigma * 1000.0) : Fp32(sigma) * 1000.0);
    sigmas.push_back(Fp32(sigma));
  }
  sigmas.push_back(0.0);
}

// The x0 predictions of the last two steps, oldest first.
class RecentOutputs {
 public:
  void Push(at::Tensor x0) {
    outputs_.push_back(std::move(x0));
    if (outputs_.size() > 2) outputs_.pop_front();
  }
  const at::Tensor& newest() const { return outputs_.back(); }
  const at::Tensor& previous() const { return outputs_.front(); }
  std::size_t size() const { return outputs_.size(); }

 private:
  std::deque<at::Tensor> outputs_;
};

class UniPCScheduler final : public FlowScheduler {
 public:
  explicit UniPCScheduler(const ScheduleOptions& options) {
    // The reference builds σ_max from its 1000-step training table in fp32: 1 − 1/1000 rounded.
    ShiftedSchedule(Fp32(1.0 - 1.0 / 1000.0), options, sigmas_, timesteps_);
  }

  at::Tensor Step(const at::Tensor& velocity, const at::Tensor& sample) override {
    const int i = step_index_;
    const auto x0 = sample - sigmas_[i] * velocity;
    auto x = sample;
    if (i > 0) x = Correct(x0);
    outputs_.Push(x0);
    // Order 1 on the first and the last step, 2 in between.
    order_ = std::min({2, steps() - i, warm_steps_ + 1});
    last_sample_ = x;
    auto next = Predict(x);
    warm_steps_ = std::min(warm_steps_ + 1, 2);
    ++step_index_;
    return next;
  }

 private:
  // The UniP predictor (bh2): from σ_i to σ_{i+1} with x0 at i (and i−1 for order 2).
  at::Tensor Predict(const at::Tensor& x) const {
    const int i = step_index_;
    const double sigma_t = sigmas_[i + 1], sigma_s0 = sigmas_[i];
    const double alpha_t = 1 - sigma_t;
    const double h = Lambda(sigma_t) - Lambda(sigma_s0);
    const double h_phi_1 = std::expm1(-h);
    const double b_h = h_phi_1;
    const auto& m0 = outputs_.newest();
    auto x_t = (sigma_t / sigma_s0) * x - (alpha_t * h_phi_1) * m0;
    if (order_ == 2) {
      const double rk = (Lambda(sigmas_[i - 1]) - Lambda(sigma_s0)) / h;
      const auto d1 = (outputs_.previous() - m0) / rk;
      x_t = x_t - (alpha_t * b_h) * (0.5 * d1);
    }
    return x_t;
  }

  // The UniC corrector: recomputes the sample at σ_i from the previous one with the new x0 (model_t) as well,
  // at the previous step's order.
  at::Tensor Correct(const at::Tensor& model_t) const {
    const int i = step_index_;
    const double sigma_t = sigmas_[i], sigma_s0 = sigmas_[i - 1];
    const double alpha_t = 1 - sigma_t;
    const double h = Lambda(sigma_t) - Lambda(sigma_s0);
    const double hh = -h;
    const double h_phi_1 = std::expm1(hh);
    const double b_h = h_phi_1;
    const auto& m0 = outputs_.newest();
    auto x_t = (sigma_t / sigma_s0) * last_sample_ - (alpha_t * h_phi_1) * m0;
    const auto d1_t = model_t - m0;
    if (order_ == 1) return x_t - (alpha_t * b_h) * (0.5 * d1_t);

    // Order 2: solve [[1, 1], [r, 1]]·ρ = b with b_k = h·φ_k(h)·k!/B(h).
    const double rk = (Lambda(sigmas_[i - 2]) - Lambda(sigma_s0)) / h;
    const double phi_2 = h_phi_1 / hh - 1;
    const double phi_3 = phi_2 / hh - 0.5;
    const double b1 = phi_2 / b_h, b2 = phi_3 * 2 / b_h;
    const double det = 1 - rk;
    const double rho0 = (b1 - b2) / det;
    const double rho1 = (b2 - rk * b1) / det;
    const auto d1 = (outputs_.previous() - m0) / rk;
    return x_t - (alpha_t * b_h) * (rho0 * d1 + rho1 * d1_t);
  }

  RecentOutputs outputs_;
  at::Tensor last_sample_;
  int order_ = 1;
  int warm_steps_ = 0;
};

class DpmSolverScheduler final : public FlowScheduler {
 public:
  explicit DpmSolverScheduler(const ScheduleOptions& options) { ShiftedSchedule(1.0, options, sigmas_, timesteps_); }

  at::Tensor Step(const at::Tensor& velocity, const at::Tensor& sample) override {
    const int i = step_index_;
    const auto x0 = sample - sigmas_[i] * velocity;
    outputs_.Push(x0);
    const double sigma_t = sigmas_[i + 1], sigma_s0 = sigmas_[i];
    const double alpha_t = 1 - sigma_t;
    const double h = Lambda(sigma_t) - Lambda(sigma_s0);
    const double phi = alpha_t * (std::exp(-h) - 1.0);
    auto next = (sigma_t / sigma_s0) * sample - phi * x0;
    // Second order (midpoint) once two outputs exist, except on the last step, which ends at σ = 0.
    const bool last = i == steps() - 1;
    if (outputs_.size() == 2 && !last) {
      const double r0 = (Lambda(sigma_s0) - Lambda(sigmas_[i - 1])) / h;
      next = next - 0.5 * phi * ((1.0 / r0) * (x0 - outputs_.previous()));
    }
    ++step_index_;
    return next;
  }

 private:
  RecentOutputs outputs_;
};

class EulerScheduler final : public FlowScheduler {
 public:
  explicit EulerScheduler(const ScheduleOptions& options) { ShiftedSchedule(1.0, options, sigmas_, timesteps_); }

  at::Tensor Step(const at::Tensor& velocity, const at::Tensor& sample) override {
    const int i = step_index_++;
    return sample + (sigmas_[i + 1] - sigmas_[i]) * velocity;
  }
};

}  // namespace

Solver ParseSolver(const std::string& name) {
  if (name == "unipc") return Solver::kUniPC;
  if (name == "dpm++" || name == "dpmpp") return Solver::kDpmPlusPlus;
  if (name == "euler") return Solver::kEuler;
  Fail(ErrorCode::kInvalidArgument, "invalid value for 'solver': '{}', expected unipc, dpm++ or euler", name);
}

std::string SolverName(Solver solver) {
  switch (solver) {
    case Solver::kUniPC: return "unipc";
    case Solver::kDpmPlusPlus: return "dpm++";
    case Solver::kEuler: return "euler";
  }
  return "unknown";
}

std::unique_ptr<FlowScheduler> MakeFlowScheduler(const ScheduleOptions& options) {
  if (options.steps < 1 || options.steps > 1000) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for 'steps': {}, expected 1 to 1000", options.steps);
  }
  if (!(options.shift > 0) || !std::isfinite(options.shift)) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for 'shift': {}, expected a positive number", options.shift);
  }
  if (!options.timesteps.empty()) {
    const auto& t = options.timesteps;
    bool descending = true;
    for (std::size_t i = 1; i < t.size(); ++i) descending = descending && t[i] < t[i - 1];
    if (static_cast<int>(t.size()) != options.steps || !descending || !(t.front() <= 1000) || !(t.back() >= 1)) {
      Fail(ErrorCode::kInvalidArgument,
           "invalid value for 'timesteps': {} values for {} steps, expected one a step, descending in [1, 1000]",
           t.size(), options.steps);
    }
  }
  switch (options.solver) {
    case Solver::kUniPC: return std::make_unique<UniPCScheduler>(options);
    case Solver::kDpmPlusPlus: return std::make_unique<DpmSolverScheduler>(options);
    case Solver::kEuler: return std::make_unique<EulerScheduler>(options);
  }
  Fail(ErrorCode::kInvalidArgument, "unknown solver");
}

}  // namespace vidgen::schedulers
