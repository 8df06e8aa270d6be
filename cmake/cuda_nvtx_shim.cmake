# For `make cuda-build-check`: CUDA toolkits from 12.9 ship NVTX 3 as headers only and no libnvToolsExt, but Debian's
# LibTorch 2.6 package links torch::nvtoolsext to CUDA::nvToolsExt; an empty target stands in for it there.
if(NOT TARGET CUDA::nvToolsExt)
  add_library(CUDA::nvToolsExt INTERFACE IMPORTED)
endif()
