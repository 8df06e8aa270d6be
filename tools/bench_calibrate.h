// vidgen-bench calibrate: uncached runs of a Wan checkpoint measure how large classifier-free guidance's
// difference cond − uncond is at each step, and write the cache calibration (cache/calibration.h) beside the
// checkpoint, for the "taylorseer-cfg-calibrated" preset.
#pragma once

#include <string>

namespace vidgen::tools {

struct CalibrateOptions {
  std::string model_dir;
  std::string out;           // default: the checkpoint's kCalibrationFile
  std::string prompts_file;  // one prompt per line; empty: the demo world's training prompts (demo models)
  int prompts = 8;           // how many of them to run
  int steps = 50;
  double guidance = 5.0, shift = 5.0;
  std::string solver = "unipc";
  int width = 0, height = 0, frames = 0;  // 0: the checkpoint's defaults for jobs, else Wan's (832×480, 81)
  int threads = 0;
};

int RunCalibrate(const CalibrateOptions& options);

}  // namespace vidgen::tools
