# LibTorch from its folders, without its CMake package: for a machine where a CUDA LibTorch's package cannot configure.
# That package enables CUDA and probes nvcc and the whole CUDA toolkit, where a PyTorch wheel brings only the libraries
# and headers it runs with (its own, and the nvidia-* wheels'). We compile no CUDA, so the folders are enough:
#   VIDGEN_TORCH_INCLUDE_DIR       LibTorch's headers (a wheel's torch/include)
#   VIDGEN_TORCH_LIBRARY_DIR       its libraries (a wheel's torch/lib)
#   VIDGEN_TORCH_CUDA_INCLUDE_DIRS the CUDA headers its CUDA headers include (runtime, cuBLAS, NCCL, ...)
#   VIDGEN_TORCH_CXX11_ABI         the string ABI it was built with (1 unless told otherwise)
# Defines what the package would for us: the targets torch and, for a CUDA build, c10_cuda; TORCH_CUDA_LIBRARIES;
# c10d's definitions.
set(VIDGEN_TORCH_INCLUDE_DIR "" CACHE PATH "The headers of the LibTorch in VIDGEN_TORCH_LIBRARY_DIR")
set(VIDGEN_TORCH_CUDA_INCLUDE_DIRS "" CACHE STRING "The CUDA headers that LibTorch's CUDA headers include")
set(VIDGEN_TORCH_CXX11_ABI 1 CACHE STRING "The C++ string ABI of the LibTorch in VIDGEN_TORCH_LIBRARY_DIR (0 or 1)")

function(vidgen_torch_library var name)
  find_library(${var} ${name} PATHS ${VIDGEN_TORCH_LIBRARY_DIR} NO_DEFAULT_PATH ${ARGN})
endfunction()
vidgen_torch_library(VIDGEN_LIBTORCH torch REQUIRED)
vidgen_torch_library(VIDGEN_LIBTORCH_CPU torch_cpu REQUIRED)
vidgen_torch_library(VIDGEN_LIBC10 c10 REQUIRED)
vidgen_torch_library(VIDGEN_LIBTORCH_CUDA torch_cuda)
vidgen_torch_library(VIDGEN_LIBC10_CUDA c10_cuda)
if(NOT EXISTS ${VIDGEN_TORCH_INCLUDE_DIR}/torch/csrc/api/include/torch/torch.h)
  message(FATAL_ERROR "VIDGEN_TORCH_INCLUDE_DIR (${VIDGEN_TORCH_INCLUDE_DIR}) holds no LibTorch headers")
endif()

add_library(torch INTERFACE IMPORTED)
target_include_directories(torch INTERFACE ${VIDGEN_TORCH_INCLUDE_DIR}
                                           ${VIDGEN_TORCH_INCLUDE_DIR}/torch/csrc/api/include)
target_compile_definitions(torch INTERFACE USE_DISTRIBUTED USE_C10D_GLOO
                                           _GLIBCXX_USE_CXX11_ABI=${VIDGEN_TORCH_CXX11_ABI})
# Kept even where nothing of ours calls into them, as the package keeps them: they register the kernels and backends.
target_link_libraries(torch INTERFACE ${VIDGEN_LIBTORCH} "-Wl,--no-as-needed,${VIDGEN_LIBTORCH_CPU},--as-needed"
                                      ${VIDGEN_LIBC10})

if(VIDGEN_LIBTORCH_CUDA AND VIDGEN_LIBC10_CUDA)
  add_library(c10_cuda SHARED IMPORTED)
  set_target_properties(c10_cuda PROPERTIES IMPORTED_LOCATION ${VIDGEN_LIBC10_CUDA})
  target_include_directories(torch INTERFACE ${VIDGEN_TORCH_CUDA_INCLUDE_DIRS})
  target_compile_definitions(torch INTERFACE USE_C10D_NCCL)
  target_link_libraries(torch INTERFACE "-Wl,--no-as-needed,${VIDGEN_LIBTORCH_CUDA},--as-needed" c10_cuda)
  set(TORCH_CUDA_LIBRARIES ${VIDGEN_LIBTORCH_CUDA} ${VIDGEN_LIBC10_CUDA})
endif()
message(STATUS "LibTorch from ${VIDGEN_TORCH_LIBRARY_DIR}, without its CMake package (CUDA: ${VIDGEN_LIBTORCH_CUDA})")
