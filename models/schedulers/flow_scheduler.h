// Flow-matching samplers (models.md C.3, E.4). Convention: x_σ = (1−σ)·x0 + σ·ε and the model predicts
// v = ε − x0, so x0 = x − σ·v.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace vidgen::schedulers {

enum class Solver {
  kUniPC,        // Wan's default: FlowUniPCMultistepScheduler (order 2, bh2, predict-x0, lower-order final)
  kDpmPlusPlus,  // Wan's FlowDPMSolverMultistepScheduler (dpmsolver++, order 2 midpoint, lower-order final)
  kEuler,        // x ← x + (σ_next − σ)·v (HunyuanVideo's FlowMatchDiscreteScheduler)
};

// "unipc", "dpm++", "euler"; throws Error(INVALID_ARGUMENT) naming the field 'solver' otherwise.
Solver ParseSolver(const std::string& name);
std::string SolverName(Solver solver);

struct ScheduleOptions {
  Solver solver = Solver::kUniPC;
  int steps = 50;
  double shift = 5.0;
  // Wan feeds the model int64(σ·1000); HunyuanVideo feeds σ·1000 as a float.
  bool integer_timesteps = true;
  // A given schedule (step-distilled models): training timesteps t, descending in [1, 1000], each step at
  // σ = shift·s/(1 + (shift−1)·s) with s = t/1000 instead of the evenly spaced s; `steps` must be their count.
  std::vector<double> timesteps{};
};

class FlowScheduler {
 public:
  virtual ~FlowScheduler() = default;

  // σ for every step and a final 0, rounded to fp32 as the references store them: steps + 1 values.
  const std::vector<double>& sigmas() const { return sigmas_; }
  // What the model is given at each step: steps values.
  const std::vector<double>& timesteps() const { return timesteps_; }
  int steps() const { return static_cast<int>(timesteps_.size()); }
  int step_index() const { return step_index_; }

  // Advances one step from `sample` with the model's velocity at the current step; returns the next sample.
  virtual at::Tensor Step(const at::Tensor& velocity, const at::Tensor& sample) = 0;

 protected:
  std::vector<double> sigmas_;
  std::vector<double> timesteps_;
  int step_index_ = 0;
};

// Throws Error(INVALID_ARGUMENT) naming 'steps', 'shift' or 'timesteps' when they are out of range.
std::unique_ptr<FlowScheduler> MakeFlowScheduler(const ScheduleOptions& options);

}  // namespace vidgen::schedulers
