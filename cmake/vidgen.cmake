# Helpers shared by every folder.

# Our own code compiles with warnings as errors; third-party headers are system headers and stay quiet.
function(vidgen_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
endfunction()

# A target that includes <torch/torch.h> uses one shared precompiled header. The first such target builds it and
# the others reuse it, which needs identical compile flags: keep LibTorch targets' options alike.
function(vidgen_use_torch target)
  target_link_libraries(${target} PUBLIC torch)
  get_property(pch_owner GLOBAL PROPERTY VIDGEN_TORCH_PCH_OWNER)
  if(NOT pch_owner)
    target_precompile_headers(${target} PRIVATE <torch/torch.h>)
    set_property(GLOBAL PROPERTY VIDGEN_TORCH_PCH_OWNER ${target})
  else()
    target_precompile_headers(${target} REUSE_FROM ${pch_owner})
  endif()
endfunction()

# vidgen_add_test(name SOURCES a.cc b.cc LIBS lib... LABELS unit golden ...)
# One GoogleTest executable registered with ctest as one test, run from the build folder.
function(vidgen_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE vidgen_test_main ${ARG_LIBS})
  vidgen_warnings(${name})
  add_test(NAME ${name} COMMAND ${name})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
endfunction()
