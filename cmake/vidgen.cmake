# Helpers shared by every folder.

# Our own code compiles with warnings as errors (VIDGEN_WERROR); third-party headers are system headers and stay quiet.
function(vidgen_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra $<$<BOOL:${VIDGEN_WERROR}>:-Werror>)
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

# vidgen_grpc_library(target ROOT dir PROTOS a.proto ...): protobuf messages and gRPC stubs of .proto files under ROOT,
# compiled into a static library whose headers are included as "<path under ROOT>.pb.h".
function(vidgen_grpc_library target)
  cmake_parse_arguments(ARG "" "ROOT" "PROTOS" ${ARGN})
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/${target}_generated)
  set(generated)
  foreach(proto ${ARG_PROTOS})
    string(REGEX REPLACE "\\.proto$" "" stem ${proto})
    set(out ${out_dir}/${stem})
    list(APPEND generated ${out}.pb.cc ${out}.grpc.pb.cc)
    add_custom_command(
      OUTPUT ${out}.pb.cc ${out}.pb.h ${out}.grpc.pb.cc ${out}.grpc.pb.h
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
      COMMAND protobuf::protoc --proto_path=${ARG_ROOT} --cpp_out=${out_dir} --grpc_out=${out_dir}
              --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin> ${proto}
      DEPENDS ${ARG_ROOT}/${proto} protobuf::protoc gRPC::grpc_cpp_plugin
      WORKING_DIRECTORY ${ARG_ROOT}
      COMMENT "protoc ${proto}")
  endforeach()
  add_library(${target} ${generated})
  # Generated code is not held to our warning flags.
  target_include_directories(${target} SYSTEM PUBLIC ${out_dir})
  target_link_libraries(${target} PUBLIC protobuf::libprotobuf gRPC::grpc++)
endfunction()

# vidgen_cuda_compile_check(name SOURCE file DEFINES ... [UNDEFINES ...]): the blocks of FILE that only a CUDA build of
# LibTorch compiles (under DEFINES, without UNDEFINES), compiled anyway as tests, syntax only, where the CUDA toolkit's
# headers are: `name_compiles`
# against this build's LibTorch (the header that only CUDA builds generate stubbed), and `name_compiles_cuda_libtorch`
# against VIDGEN_CUDA_TORCH_INCLUDE, the headers of a CUDA build of LibTorch 2.x (`make test` unpacks Debian trixie's
# libtorch-cuda-dev there), where given. A build against a CUDA LibTorch compiles them for real instead.
set(VIDGEN_CUDA_TORCH_INCLUDE "" CACHE PATH "Headers of a CUDA build of LibTorch to compile the CUDA-only code against")
find_path(VIDGEN_CUDA_INCLUDE NAMES cuda_runtime_api.h PATHS /usr/local/cuda/include)
function(vidgen_cuda_compile_check name)
  cmake_parse_arguments(ARG "" "SOURCE" "DEFINES;UNDEFINES" ${ARGN})
  if(NOT VIDGEN_TESTS OR TORCH_CUDA_LIBRARIES OR NOT VIDGEN_CUDA_INCLUDE OR NOT EXISTS ${VIDGEN_CUDA_INCLUDE}/nccl.h)
    return()
  endif()
  list(TRANSFORM ARG_DEFINES PREPEND -D OUTPUT_VARIABLE defines)
  list(TRANSFORM ARG_UNDEFINES PREPEND -U OUTPUT_VARIABLE undefines)  # last: after every definition
  set(compile ${CMAKE_CXX_COMPILER} -std=c++20 -fsyntax-only -Wall -Wextra -Werror ${defines} -I${PROJECT_SOURCE_DIR})
  set(fmt_dirs "-I$<JOIN:$<TARGET_PROPERTY:fmt::fmt,INTERFACE_INCLUDE_DIRECTORIES>,;-I>")
  set(source ${CMAKE_CURRENT_SOURCE_DIR}/${ARG_SOURCE})

  set(stub ${PROJECT_BINARY_DIR}/cuda_compile_check)
  file(WRITE ${stub}/c10/cuda/impl/cuda_cmake_macros.h "#pragma once\n")
  # LibTorch's folders after the compiler's own (they may include /usr/include, which -isystem would reorder), as
  # system folders.
  add_test(NAME ${name}_compiles
           COMMAND ${compile} "${fmt_dirs}" "-D$<JOIN:$<TARGET_PROPERTY:torch,INTERFACE_COMPILE_DEFINITIONS>,;-D>"
                   -I${stub} "-idirafter$<JOIN:$<TARGET_PROPERTY:torch,INTERFACE_INCLUDE_DIRECTORIES>,;-idirafter>"
                   -isystem${VIDGEN_CUDA_INCLUDE} ${undefines} ${source}
           COMMAND_EXPAND_LISTS)
  set_tests_properties(${name}_compiles PROPERTIES LABELS unit)

  if(VIDGEN_CUDA_TORCH_INCLUDE)
    # What a CUDA LibTorch 2.x's CMake package defines for c10d's headers (through torch_cpu and torch_cuda).
    add_test(NAME ${name}_compiles_cuda_libtorch
             COMMAND ${compile} "${fmt_dirs}" -DUSE_DISTRIBUTED -DUSE_C10D_GLOO -DUSE_C10D_NCCL
                     -isystem${VIDGEN_CUDA_TORCH_INCLUDE} -isystem${VIDGEN_CUDA_TORCH_INCLUDE}/torch/csrc/api/include
                     -isystem${VIDGEN_CUDA_INCLUDE} ${undefines} ${source}
             COMMAND_EXPAND_LISTS)
    set_tests_properties(${name}_compiles_cuda_libtorch PROPERTIES LABELS unit)
  endif()
endfunction()
