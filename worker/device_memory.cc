#include "worker/device_memory.h"

#ifdef VIDGEN_CUDA_MEMORY_STATS
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "common/process_memory.h"

namespace vidgen::worker {

void ResetPeakMemory(const c10::Device& device) {
  if (device.is_cpu()) return ResetPeakResidentBytes();
#ifdef VIDGEN_CUDA_MEMORY_STATS
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
}

std::int64_t PeakMemory(const c10::Device& device) {
  if (device.is_cpu()) return ProcessStatusBytes("VmHWM");
#ifdef VIDGEN_CUDA_MEMORY_STATS
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return stats.allocated_bytes[static_cast<std::size_t>(c10::cuda::CUDACachingAllocator::StatType::AGGREGATE)].peak;
  }
#endif
  return 0;
}

}  // namespace vidgen::worker
