# vidgen: `make run` and `make test` do all set-up on a fresh Debian 12 machine (they install packages with apt-get).
BUILD_DIR ?= build
ASAN_BUILD_DIR ?= build-asan
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
CTEST_FLAGS ?=

CONFIGURE = cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

.PHONY: all deps build run test test-asan bench format clean

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

test: build test-asan
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

# The parsers of untrusted checkpoint bytes once more under AddressSanitizer and UndefinedBehaviorSanitizer: a
# second, small build of the LibTorch-free format library and its tests.
test-asan: deps
	cmake -S . -B $(ASAN_BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIDGEN_SERVICE=OFF \
	  -DVIDGEN_SANITIZE=address,undefined
	cmake --build $(ASAN_BUILD_DIR) -j $(JOBS) --target io_format_test
	cd $(ASAN_BUILD_DIR) && UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --output-on-failure -L format

# Wan DiT speed at the 1.3B block width (two layers, about 2000 tokens), bf16, 1 and 2 threads.
bench: build
	$(BUILD_DIR)/tools/vidgen-bench dit

format:
	@command -v clang-format >/dev/null || { echo "clang-format is not installed (apt-get install clang-format)"; exit 1; }
	git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(ASAN_BUILD_DIR)
