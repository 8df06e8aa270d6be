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

# The main job. Until the generation pipeline lands, it inspects the embedded tiny Wan2.1 checkpoint with the same
# loaders that will read the real weights.
run: build
	@echo "vidgen: reading the embedded Wan2.1 checkpoint (tests/data/golden/wan2.1-t2v-tiny) with vidgen-inspect;"
	@echo "        video generation joins 'make run' when the pipeline lands."
	$(BUILD_DIR)/tools/vidgen-inspect tests/data/golden/wan2.1-t2v-tiny

test: build test-asan
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

# The parsers of untrusted checkpoint bytes once more under AddressSanitizer and UndefinedBehaviorSanitizer: a
# second, small build of the LibTorch-free format library and its tests.
test-asan: deps
	cmake -S . -B $(ASAN_BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIDGEN_SERVICE=OFF \
	  -DVIDGEN_SANITIZE=address,undefined
	cmake --build $(ASAN_BUILD_DIR) -j $(JOBS) --target io_format_test
	cd $(ASAN_BUILD_DIR) && UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --output-on-failure -L format

bench: build
	@echo "vidgen-bench arrives with the model and cache issues."

format:
	@command -v clang-format >/dev/null || { echo "clang-format is not installed (apt-get install clang-format)"; exit 1; }
	git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(ASAN_BUILD_DIR)
