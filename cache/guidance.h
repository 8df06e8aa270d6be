// The guidance difference that GuidanceCache::kReuseDifference carries from a full step to the predicted steps
// after it: cond − uncond as the full step computed it (this process's shard of it), scaled at a predicted step by
// how the calibrated size of the difference changed since. No collectives: the scale is a function of the two
// steps' sigmas and the calibration alone.
#pragma once

#include <vector>

#include <ATen/core/Tensor.h>

#include "cache/calibration.h"

namespace vidgen::cache {

class ReusedGuidance {
 public:
  // `sigmas`: the scheduler's, one per step. `calibration`: null for plain reuse; not owned.
  ReusedGuidance(std::vector<double> sigmas, const GuidanceCalibration* calibration)
      : sigmas_(std::move(sigmas)), calibration_(calibration) {}

  // A full step's cond − uncond.
  void Remember(int step, at::Tensor difference);
  // The difference to guide a predicted step with. Throws Error(FAILED_PRECONDITION) before any full step.
  at::Tensor At(int step) const;

 private:
  std::vector<double> sigmas_;
  const GuidanceCalibration* calibration_;
  at::Tensor difference_;
  int step_ = -1;
};

}  // namespace vidgen::cache
