#include "models/device_memory.h"

#include <malloc.h>

#include <algorithm>
#include <fstream>
#include <string>

#ifdef VIDGEN_CUDA_MEMORY_STATS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "common/process_memory.h"

namespace vidgen {
namespace {

#ifdef VIDGEN_CUDA_MEMORY_STATS
// LibTorch 2.5 moved the allocator's statistics to a header shared by every device's caching allocator.
#if __has_include(<c10/core/CachingDeviceAllocator.h>)
namespace allocator_stats = c10::CachingDeviceAllocator;
#else
namespace allocator_stats = c10::cuda::CUDACachingAllocator;
#endif

allocator_stats::Stat AllocatedBytes(const c10::Device& device) {
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
  return stats.allocated_bytes[static_cast<std::size_t>(allocator_stats::StatType::AGGREGATE)];
}
#endif

// The cgroup v2 limit of this process's container, or 0 when there is none ("max") or no cgroup v2.
std::int64_t CgroupLimitBytes() {
  std::ifstream limit("/sys/fs/cgroup/memory.max");
  std::int64_t bytes = 0;
  return limit >> bytes ? bytes : 0;
}

std::int64_t MachineMemoryBytes() {
  std::ifstream meminfo("/proc/meminfo");
  for (std::string key; meminfo >> key;) {
    std::int64_t kib = 0;
    if (key == "MemTotal:" && meminfo >> kib) return kib * 1024;
    meminfo.ignore(256, '\n');
  }
  return 0;
}

}  // namespace

std::int64_t CurrentMemory(const c10::Device& device) {
  if (device.is_cpu()) return ProcessStatusBytes("VmRSS");
#ifdef VIDGEN_CUDA_MEMORY_STATS
  if (device.is_cuda()) return AllocatedBytes(device).current;
#endif
  return 0;
}

void ResetPeakMemory(const c10::Device& device) {
  if (device.is_cpu()) return ResetPeakResidentBytes();
#ifdef VIDGEN_CUDA_MEMORY_STATS
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
}

std::int64_t PeakMemory(const c10::Device& device) {
  if (device.is_cpu()) return ProcessStatusBytes("VmHWM");
#ifdef VIDGEN_CUDA_MEMORY_STATS
  if (device.is_cuda()) return AllocatedBytes(device).peak;
#endif
  return 0;
}

void ReleaseFreeMemory(const c10::Device& device) {
  if (device.is_cpu()) malloc_trim(0);
#ifdef VIDGEN_CUDA_MEMORY_STATS
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
}

std::int64_t TotalMemory(const c10::Device& device) {
  if (device.is_cpu()) {
    const std::int64_t machine = MachineMemoryBytes(), cgroup = CgroupLimitBytes();
    return cgroup > 0 ? std::min(machine, cgroup) : machine;
  }
#ifdef VIDGEN_CUDA_MEMORY_STATS
  // Through LibTorch, not the CUDA runtime: nothing of ours then links the runtime itself (a PyTorch wheel's is a
  // versioned library in a wheel of its own).
  if (device.is_cuda()) return static_cast<std::int64_t>(at::cuda::getDeviceProperties(device.index())->totalGlobalMem);
#endif
  return 0;
}

}  // namespace vidgen
