// A model's cache calibration: how large classifier-free guidance's difference cond − uncond is at each sigma,
// measured along uncached runs (`vidgen-bench calibrate`) and kept in a small JSON file beside the checkpoint. The
// reused guidance difference is scaled by it, so a predicted step's guidance shrinks as the model's does.
#pragma once

#include <string>
#include <vector>

namespace vidgen::cache {

// The file's name in a checkpoint folder.
inline constexpr const char* kCalibrationFile = "vidgen_cache_calibration.json";

struct GuidanceCalibration {
  // The runs it was measured on.
  std::string solver;
  int steps = 0;
  double shift = 0, guidance = 0;
  int prompts = 0;
  // One entry per step of those runs: sigma (strictly decreasing) and the RMS of cond − uncond, mean over prompts.
  std::vector<double> sigmas, difference_rms;

  // The RMS at `sigma`, interpolated linearly in log RMS between the measured sigmas, the end values outside them.
  double DifferenceRmsAt(double sigma) const;
};

// Reads and checks a calibration file: at most 1 MiB, 2 to 10000 steps, sigmas in [0, 1] strictly decreasing, RMS
// values finite and positive. Throws Error(NOT_FOUND) when it cannot be read, Error(INVALID_ARGUMENT) naming the
// file and the field otherwise.
GuidanceCalibration LoadCalibration(const std::string& path);
// Writes it (through a temporary file and a rename); throws Error(FAILED_PRECONDITION) when it cannot.
void SaveCalibration(const GuidanceCalibration& calibration, const std::string& path);

}  // namespace vidgen::cache
