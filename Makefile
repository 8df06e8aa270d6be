# vidgen: `make run` and `make test` do all set-up on a fresh Debian 12 machine (they install packages with apt-get).
BUILD_DIR ?= build
ASAN_BUILD_DIR ?= build-asan
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
CTEST_FLAGS ?=
CUDA_HOME ?= /usr/local/cuda

CONFIGURE = cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

.PHONY: all deps build run test test-asan test-fuzz test-torch2 cuda-torch-headers newest-torch-check cuda-build-check \
  gpu-check-dry-run bench format clean

all: build

deps:
	./deploy/install-deps.sh

build: deps
	$(CONFIGURE)
	cmake --build $(BUILD_DIR) -j $(JOBS)

RUN_MODEL ?= assets/wan2.1-demo
RUN_OUT ?= $(BUILD_DIR)/run

# The main job: the whole service on this machine (server, a 2-rank worker group, the client) making one MP4 from
# the embedded checkpoint: the demo model, vidgen's own small Wan2.1 trained on a synthetic world by vidgen-train.
run: build
	./deploy/run-demo.sh $(BUILD_DIR) $(RUN_MODEL) $(RUN_OUT)

test: build test-asan test-fuzz test-torch2 cuda-torch-headers newest-torch-check
	$(CONFIGURE) -DVIDGEN_CUDA_TORCH_INCLUDE=$(abspath $(CUDA_TORCH_DIR))/root/usr/include
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

# The headers of a CUDA build of LibTorch 2.x (Debian trixie's libtorch-cuda-dev, unpacked, not installed): the suite
# compiles the code that only CUDA builds compile against them (cmake/vidgen.cmake, vidgen_cuda_compile_check).
CUDA_TORCH_DIR ?= $(BUILD_DIR)/cuda-libtorch
cuda-torch-headers: deps
	./deploy/debian-unpack.sh trixie "main contrib" $(CUDA_TORCH_DIR) libtorch-cuda-dev

# Every source of ours that includes LibTorch (the service's too), syntax only, against the headers of the newest
# LibTorch Debian has (forky's libtorch-dev, unpacked, not installed), as a CUDA build of it compiles them where the
# CUDA toolkit's headers are here: what a GPU machine's newer PyTorch would stop at, found on this one.
NEWEST_TORCH_DIR ?= $(BUILD_DIR)/newest-libtorch
newest-torch-check: build
	./deploy/debian-unpack.sh forky main $(NEWEST_TORCH_DIR) libtorch-dev
	python3 tools/torch_headers_check.py $(BUILD_DIR) $(NEWEST_TORCH_DIR)/root/usr/include --jobs $(JOBS) \
	  $(if $(wildcard $(CUDA_HOME)/include/nccl.h),--cuda-include $(CUDA_HOME)/include)

# The core (no gRPC, FFmpeg or SQLite) once more against LibTorch 2.x: Debian trixie's 2.6 in a trixie root under
# the build tree (deploy/debian-root.sh), with its golden, cache, parallel and unit suites.
TORCH2_DIR ?= build-torch2
TORCH2_PACKAGES = build-essential cmake pkg-config ccache libtorch-dev libgloo-dev libspdlog-dev libfmt-dev \
  libcli11-dev nlohmann-json3-dev libsentencepiece-dev libpng-dev libgtest-dev libicu-dev zlib1g-dev
test-torch2: deps
	./deploy/debian-root.sh trixie $(TORCH2_DIR)/root \
	  "cmake -S . -B $(TORCH2_DIR)/core -DCMAKE_BUILD_TYPE=Release -DVIDGEN_SERVICE=OFF && \
	   cmake --build $(TORCH2_DIR)/core -j $(JOBS) && \
	   cd $(TORCH2_DIR)/core && ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)" \
	  $(TORCH2_PACKAGES)

# The core compiled and linked (not run) against a CUDA build of LibTorch 2.6, both ways tools/gpu-check.sh builds it
# against PyTorch's on a GPU machine: Debian trixie's libtorch-cuda, unpacked under the build tree, through its CMake
# package with this machine's CUDA toolkit (core/), and from its folders as on a machine without the toolkit (folders/,
# cmake/torch_from_folders.cmake). Linked with --allow-shlib-undefined: LibTorch's own dependencies (cuDNN, cuBLAS,
# trixie's C library) are not here, so the binaries cannot run, but every reference of ours must resolve. Not part of
# `make test` (a 480 MB download and two more builds of the core); run it before a GPU session.
CUDA_BUILD_DIR ?= build-cuda
cuda-build-check: deps
	./deploy/debian-unpack.sh trixie "main contrib" $(CUDA_BUILD_DIR)/libtorch libtorch-cuda-dev libtorch-cuda-2.6
	PATH="$$PATH:$(CUDA_HOME)/bin" cmake -S . -B $(CUDA_BUILD_DIR)/core -DCMAKE_BUILD_TYPE=Release -DVIDGEN_SERVICE=OFF \
	  -DCMAKE_PREFIX_PATH=$(abspath $(CUDA_BUILD_DIR))/libtorch/root/usr/lib/x86_64-linux-gnu/cmake \
	  -DUSE_SYSTEM_NVTX=ON -Dnvtx3_dir=$(CUDA_HOME)/include \
	  -DCMAKE_PROJECT_vidgen_INCLUDE=$(abspath cmake/cuda_nvtx_shim.cmake) -DCMAKE_CUDA_FLAGS=-allow-unsupported-compiler \
	  -DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined
	cmake --build $(CUDA_BUILD_DIR)/core -j $(JOBS)
	cmake -S . -B $(CUDA_BUILD_DIR)/folders -DCMAKE_BUILD_TYPE=Release -DVIDGEN_SERVICE=OFF \
	  -DVIDGEN_TORCH_LIBRARY_DIR=$(abspath $(CUDA_BUILD_DIR))/libtorch/root/usr/lib/x86_64-linux-gnu \
	  -DVIDGEN_TORCH_INCLUDE_DIR=$(abspath $(CUDA_BUILD_DIR))/libtorch/root/usr/include \
	  -DVIDGEN_TORCH_CUDA_INCLUDE_DIRS=$(CUDA_HOME)/include -DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined
	cmake --build $(CUDA_BUILD_DIR)/folders -j $(JOBS)

# tools/gpu-check.sh up to where it needs a GPU, on a machine that has only a compiler, CMake and a LibTorch (a bare
# bookworm root with Debian's): the core builds from what `gpu-check.sh fetch` packs, and its golden and
# unit suites pass on the CPU. Not part of `make test` (a third build of the core); run it after changing the script.
GPU_DRY_RUN_DIR ?= build-gpu-dry-run
gpu-check-dry-run: deps
	./tools/gpu-check.sh fetch
	./deploy/debian-root.sh bookworm $(GPU_DRY_RUN_DIR)/root \
	  "VIDGEN_TORCH_PREFIX=/usr tools/gpu-check.sh dry-run $(GPU_DRY_RUN_DIR)/report" \
	  build-essential cmake ccache libtorch-dev libgloo-dev libopenblas0-pthread

# The parsers of untrusted checkpoint bytes once more under AddressSanitizer and UndefinedBehaviorSanitizer: a
# second, small build of the LibTorch-free format library and its tests.
test-asan: deps
	cmake -S . -B $(ASAN_BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIDGEN_SERVICE=OFF \
	  -DVIDGEN_SANITIZE=address,undefined
	cmake --build $(ASAN_BUILD_DIR) -j $(JOBS) --target io_format_test
	cd $(ASAN_BUILD_DIR) && UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --output-on-failure -L format

# The same parsers under libFuzzer (clang, with ASan and UBSan), FUZZ_SECONDS each from the seeds in fuzz/corpus/
# (the demo model's tokenizer for the sentencepiece check); a finding fails the target and leaves its input beside.
FUZZ_BUILD_DIR ?= build-fuzz
FUZZ_SECONDS ?= 20
FUZZ_TARGETS = safetensors_header zip_archive pickle sentencepiece_model
test-fuzz: deps
	cmake -S fuzz -B $(FUZZ_BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++
	cmake --build $(FUZZ_BUILD_DIR) -j $(JOBS)
	@for target in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD_DIR)/corpus/$$target $(FUZZ_BUILD_DIR)/findings/$$target; \
	  seeds=fuzz/corpus/$$target; [ -d $$seeds ] || seeds=; \
	  [ $$target = sentencepiece_model ] && seeds="$$seeds assets/wan2.1-demo/google/umt5-xxl"; \
	  echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
	  log=$(FUZZ_BUILD_DIR)/$$target.log; \
	  if ! $(FUZZ_BUILD_DIR)/$${target}_fuzzer -max_total_time=$(FUZZ_SECONDS) -max_len=300000 -timeout=10 \
	      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD_DIR)/findings/$$target/ \
	      $(FUZZ_BUILD_DIR)/corpus/$$target $$seeds > $$log 2>&1; then \
	    tail -60 $$log; echo "fuzzing $$target found a failure: $(FUZZ_BUILD_DIR)/findings/$$target/"; exit 1; \
	  fi; \
	  grep -E 'stat::(number_of_executed_units|peak_rss_mb)' $$log; \
	done

# Wan DiT speed at the 1.3B block width (two layers, about 2000 tokens), bf16, 1 and 2 threads.
bench: build
	$(BUILD_DIR)/tools/vidgen-bench dit

format:
	@command -v clang-format >/dev/null || { echo "clang-format is not installed (apt-get install clang-format)"; exit 1; }
	git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(ASAN_BUILD_DIR) $(FUZZ_BUILD_DIR) $(TORCH2_DIR) $(CUDA_BUILD_DIR)
