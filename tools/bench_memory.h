// vidgen-bench memory: where a job's peak resident memory comes from on CPU. Loads a checkpoint, runs one request
// and reads the process's peak (VmHWM) at the stage boundaries the pipeline reports: text encoding with the first
// step, the rest of denoising, decoding; each above what the process held once loaded. With the service's allocator
// tuning (freed buffers stay in the heap), a later stage's reading is the larger of its own peak and what the heap
// kept from the stages before. `--estimate` first runs the worker's memory probes (as vidgen-worker does at start)
// and prints the server's estimate for the job beside what it measured.
#pragma once

#include <string>

namespace vidgen::tools {

struct MemoryBenchOptions {
  std::string model_dir;
  std::string size;  // WIDTHxHEIGHT; default: the checkpoint's, else the family's
  int frames = 0, steps = 4;
  std::string cache = "none", dtype = "fp32";
  int threads = 0;
  bool json = false;
  bool estimate = false;
};

int RunMemoryBench(const MemoryBenchOptions& options);

}  // namespace vidgen::tools
