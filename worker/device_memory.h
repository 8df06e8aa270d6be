// A job's peak memory on its device: the CUDA caching allocator's peak of allocated bytes on a GPU (LibTorch built
// with CUDA), the process's peak resident memory on CPU.
#pragma once

#include <cstdint>

#include <c10/core/Device.h>

namespace vidgen::worker {

// Starts the device's peak again from what it holds now.
void ResetPeakMemory(const c10::Device& device);
// The peak since the last reset, in bytes; 0 where the device has no such count (a GPU build without c10_cuda).
std::int64_t PeakMemory(const c10::Device& device);

}  // namespace vidgen::worker
