#include "cache/guidance.h"

#include <ATen/TensorOperators.h>

#include "common/error.h"

namespace vidgen::cache {

void ReusedGuidance::Remember(int step, at::Tensor difference) {
  difference_ = std::move(difference);
  step_ = step;
}

at::Tensor ReusedGuidance::At(int step) const {
  if (step_ < 0) Fail(ErrorCode::kFailedPrecondition, "no guidance difference to reuse at step {}", step);
  if (!calibration_) return difference_;
  const double scale = calibration_->DifferenceRmsAt(sigmas_.at(static_cast<std::size_t>(step))) /
                       calibration_->DifferenceRmsAt(sigmas_.at(static_cast<std::size_t>(step_)));
  return difference_ * scale;
}

}  // namespace vidgen::cache
