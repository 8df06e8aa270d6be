// A golden Wan run case (wan_t2v_*, wan_taylorseer_*) as the pipeline takes it: the texts of its ids and masks
// encoded, and the sampler settings its metadata names.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

#include "models/wan/pipeline.h"
#include "tests/support/golden.h"

namespace vidgen::wan {

struct GoldenRun {
  at::Tensor context, context_null;
  dit::SamplerOptions options;
};

inline GoldenRun ReadGoldenRun(const testing::GoldenCase& golden, WanPipeline& pipeline) {
  auto encode = [&](const std::string& ids, const std::string& mask) {
    return pipeline.EncodeText({golden.Get(ids).unsqueeze(0), golden.Get(mask).unsqueeze(0)})[0];
  };
  GoldenRun run{encode("ids", "mask"), encode("neg_ids", "neg_mask"), {}};
  run.options.schedule.solver = schedulers::ParseSolver(golden.Meta("solver"));
  run.options.schedule.steps = std::stoi(golden.Meta("steps"));
  run.options.schedule.shift = std::stod(golden.Meta("shift"));
  run.options.guidance_scale = std::stod(golden.Meta("guide_scale"));
  return run;
}

}  // namespace vidgen::wan
