// A device's memory: the CUDA caching allocator's allocated bytes on a GPU (LibTorch built with CUDA), the process's
// resident memory on CPU.
#pragma once

#include <cstdint>

#include <c10/core/Device.h>

namespace vidgen {

// What the process holds on the device now, in bytes; 0 where the device has no such count (a GPU build without
// c10_cuda).
std::int64_t CurrentMemory(const c10::Device& device);
// Starts the device's peak again from what it holds now.
void ResetPeakMemory(const c10::Device& device);
// The peak since the last reset, in bytes; 0 where the device has no such count.
std::int64_t PeakMemory(const c10::Device& device);
// Gives what the allocator keeps free back to the system (glibc's heap on CPU, the caching allocator's blocks on a
// GPU), so that the next peak is measured from what is in use.
void ReleaseFreeMemory(const c10::Device& device);
// What the device has in all: a GPU's memory; on CPU the machine's, or the cgroup's limit when lower (a container).
std::int64_t TotalMemory(const c10::Device& device);

}  // namespace vidgen
