# Helpers shared by every folder.

# Our own code compiles with warnings as errors; third-party headers are system headers and stay quiet.
function(vidgen_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
endfunction()

# Every target that includes <torch/torch.h> reuses one precompiled header, built by a target of its own with no
# definitions: a PCH is only valid for compilations that define at least the macros it was built with.
function(vidgen_use_torch target)
  if(NOT TARGET vidgen_torch_pch)
    file(WRITE ${PROJECT_BINARY_DIR}/torch_pch.cc "")
    add_library(vidgen_torch_pch STATIC ${PROJECT_BINARY_DIR}/torch_pch.cc)
    target_link_libraries(vidgen_torch_pch PUBLIC torch)
    target_precompile_headers(vidgen_torch_pch PRIVATE <torch/torch.h>)
    # gRPC's targets add -pthread (which defines _REENTRANT); every PCH user compiles with it, so that they match.
    target_compile_options(vidgen_torch_pch PRIVATE -pthread)
    vidgen_warnings(vidgen_torch_pch)
  endif()
  target_compile_options(${target} PRIVATE -pthread)
  target_link_libraries(${target} PUBLIC torch)
  target_precompile_headers(${target} REUSE_FROM vidgen_torch_pch)
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
