#!/usr/bin/env bash
# The GPU check: builds the core (models, cache, parallel, tools; no service) against the LibTorch inside the
# machine's PyTorch, runs the golden suites on CUDA and the benchmarks at real block widths on CUDA, and writes every
# report (JSON, logs) to one folder. Meant for a GPU machine that reaches no package registry:
#
#   tools/gpu-check.sh fetch          here: downloads the core's build dependencies as Debian 12's .debs and packs
#                                     what a build needs of them into build-gpu-deps/deps.tar.xz (carry that folder
#                                     to the GPU machine)
#   tools/gpu-check.sh run [OUT]      there: unpacks it, builds, tests, measures; reports in OUT (default: $OUT,
#                                     else build-gpu/report)
#   tools/gpu-check.sh dry-run [OUT]  what `run` does before it needs a GPU (unpack, build, the golden suites on the
#                                     CPU; no benchmarks), for a bare machine with only a compiler, CMake and a
#                                     LibTorch (`make gpu-check-dry-run` runs it in a bare Debian root)
#
# VIDGEN_TORCH_PREFIX: LibTorch's CMake prefix (default: the one inside python3's torch). On a GPU it ends within
# VIDGEN_GPU_CHECK_SECONDS (below; the build is most of it, each benchmark is bounded by its sizes). With the CUDA
# toolkit (nvcc on PATH, in $CUDA_HOME or in /usr/local/cuda) it builds through PyTorch's CMake package; without it (a
# machine with only a driver and pip's PyTorch) that package cannot configure, and LibTorch comes from the wheel's
# folders instead (cmake/torch_from_folders.cmake), the CUDA headers from the nvidia-* wheels PyTorch depends on; so it
# does too where the package fails to configure. The build keeps going past a file that fails: what built still runs.
set -euo pipefail
cd "$(dirname "$0")/.."

DEPS_DIR=build-gpu-deps
BUILD_DIR=build-gpu
MULTIARCH=usr/lib/x86_64-linux-gnu
# The device tool stops a command at 600 s. Within this many seconds from the start the GPU run ends: the suites are
# stopped 3 minutes before it, benchmarks not begun by then are skipped (and named in the log), and one still running
# is stopped, so the reports of what ran still come back.
BUDGET_SECONDS=${VIDGEN_GPU_CHECK_SECONDS:-540}
# What the core's CMake finds besides LibTorch, and what its binaries load at run time.
PACKAGES=(libfmt-dev libfmt9 libspdlog-dev libspdlog1.10 nlohmann-json3-dev libcli11-dev libicu-dev libicu72
          zlib1g-dev libpng-dev libpng16-16 libsentencepiece-dev libsentencepiece0 libprotobuf-lite32 libgtest-dev
          libgmock-dev pkgconf pkgconf-bin libpkgconf3)

# The device tool carries at most 64 MiB, the source tree (about 52) included, and the .debs are 23 MB, most of it
# ICU's static libraries: the archive keeps only what a build and its binaries use (about 11 MB).
fetch() {
  local unpacked=$DEPS_DIR/unpacked
  rm -rf "$DEPS_DIR"
  deploy/debian-unpack.sh bookworm main "$unpacked" "${PACKAGES[@]}"
  local staging=$unpacked/root
  # GTest's CMake targets name its static libraries, so those stay; ICU's tools and their libraries go.
  find "$staging" -name '*.a' ! -name 'libgtest*' ! -name 'libgmock*' -delete
  rm -rf "$staging"/usr/share/{doc,man,lintian,icu} "$staging"/usr/bin/icu* "$staging/$MULTIARCH/icu" \
    "$staging/$MULTIARCH"/libicu{io,test,tu}.so* "$staging/.vidgen-packages"
  tar -C "$staging" -cf - . | xz -9e -T0 >"$DEPS_DIR/deps.tar.xz"
  rm -rf "$unpacked"
  local tree archive
  # A tracked file deleted from the work tree does not travel either.
  tree=$(git ls-files -z | { xargs -0 stat -c %s 2>/dev/null || true; } | awk '{ sum += $1 } END { print sum }')
  archive=$(stat -c %s "$DEPS_DIR/deps.tar.xz")
  echo "gpu-check: the source tree ($((tree >> 20)) MiB) and deps.tar.xz ($((archive >> 20)) MiB) travel"
  if ((tree + archive > 64 << 20)); then
    echo "gpu-check: that is over the 64 MiB the device tool carries" >&2
    exit 1
  fi
}

# Whether LibTorch comes from the wheel's folders rather than its CMake package: on CUDA, from python3's PyTorch, with
# no CUDA toolkit for the package to probe.
torch_from_folders() {
  [ "$1" = cuda ] && [ -z "${VIDGEN_TORCH_PREFIX:-}" ] && ! command -v nvcc >/dev/null
}

# The include folders of the nvidia-* wheels next to PyTorch's (CUDA runtime, cuBLAS, NCCL, ...), ;-separated.
wheel_cuda_includes() {
  python3 -c 'import glob, os, nvidia
print(";".join(sorted(d for p in nvidia.__path__ for d in glob.glob(os.path.join(p, "*", "include")))))' 2>/dev/null
}

# in_folders "A;B;C" FILE: whether one of the folders holds FILE.
in_folders() {
  local dirs dir
  IFS=';' read -ra dirs <<<"$1"
  for dir in "${dirs[@]}"; do [ -f "$dir/$2" ] && return 0; done
  return 1
}

# Fails at once, naming everything missing, rather than minutes into the build.
preflight() {
  local device=$1 missing=()
  for tool in cmake c++ tar xz; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  command -v make >/dev/null || command -v ninja >/dev/null || missing+=("make or ninja")
  if command -v c++ >/dev/null && ! echo 'static_assert(__cplusplus >= 202002L);' |
    c++ -std=c++20 -fsyntax-only -x c++ - 2>/dev/null; then
    missing+=("a C++20 compiler (c++ is $(c++ --version | head -1))")
  fi
  [ -n "${VIDGEN_TORCH_PREFIX:-}" ] || python3 -c 'import torch' 2>/dev/null ||
    missing+=("python3 with torch (or VIDGEN_TORCH_PREFIX)")
  if [ "$device" = cuda ]; then
    python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null ||
      missing+=("a PyTorch that sees a GPU")
    if torch_from_folders "$device"; then
      local includes header
      includes=$(wheel_cuda_includes)
      for header in cuda_runtime_api.h nccl.h; do
        in_folders "$includes" "$header" ||
          missing+=("nvcc (the CUDA toolkit: PATH, CUDA_HOME or /usr/local/cuda), or $header in the nvidia-* wheels")
      done
    elif ! command -v nvcc >/dev/null; then
      missing+=("nvcc (the CUDA toolkit: PATH, CUDA_HOME or /usr/local/cuda), for VIDGEN_TORCH_PREFIX's package")
    fi
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    printf 'gpu-check: missing: %s\n' "${missing[@]}" >&2
    exit 2
  fi
}

# The build tool, and its flag that keeps going past a failed step: make where there is one, else Ninja.
if command -v make >/dev/null; then
  GENERATOR='Unix Makefiles' KEEP_GOING=(-k)
else
  GENERATOR=Ninja KEEP_GOING=(-k 0)
fi

# The core's build folder, $BUILD_DIR/core, from scratch. Warnings stay warnings: a PyTorch newer than any tested here
# may deprecate what the core calls, and that should not cost the GPU machine's time.
configure() {
  rm -rf "$BUILD_DIR/core"
  cmake -G "$GENERATOR" -S . -B "$BUILD_DIR/core" -DCMAKE_BUILD_TYPE=Release -DVIDGEN_SERVICE=OFF -DVIDGEN_WERROR=OFF \
    "$@"
}

# configure_from_package DEVICE TORCH_PREFIX DEPS CUDA_HOME: through LibTorch's CMake package.
configure_from_package() {
  local device=$1 torch_prefix=$2 deps=$3 cuda_home=$4 flags=()
  if [ "$device" = cuda ]; then
    # PyTorch's package enables CUDA and probes nvcc with the host compiler; the core compiles no CUDA, so a host
    # compiler newer than this nvcc knows must not stop the check.
    flags+=(-DCMAKE_CUDA_FLAGS=-allow-unsupported-compiler)
    # PyTorch's CMake package looks for NVTX 3's headers under the including project unless told to look in the
    # system: the CUDA toolkit ships them, and so does PyTorch's nvidia-nvtx wheel.
    local nvtx
    for nvtx in "$cuda_home/include" "$(dirname "$(command -v nvcc)")/../include" \
      "$(python3 -c 'import nvidia.nvtx, os; print(os.path.dirname(nvidia.nvtx.__file__))' 2>/dev/null)/include"; do
      if [ -d "$nvtx/nvtx3" ]; then
        flags+=(-DUSE_SYSTEM_NVTX=ON "-Dnvtx3_dir=$(cd "$nvtx" && pwd)")
        break
      fi
    done
    # LibTorch's CUDA headers include some that CUDA toolkits need not ship (c10d's NCCL header includes nccl.h, which
    # none does): the nvidia-* wheels that PyTorch runs with have them, searched after everything else.
    local includes
    includes=$(wheel_cuda_includes)
    [ -z "$includes" ] || flags+=("-DCMAKE_CXX_FLAGS=-idirafter ${includes//;/ -idirafter }")
  fi
  configure "${flags[@]}" -DCMAKE_PREFIX_PATH="$torch_prefix;$deps/usr;$deps/$MULTIARCH/cmake"
}

# configure_from_folders TORCH_DIR DEPS CUDA_INCLUDES: LibTorch from the folders of PyTorch in TORCH_DIR, its CUDA
# headers from CUDA_INCLUDES (;-separated). Linked with --allow-shlib-undefined: LibTorch's own libraries (cuDNN,
# cuBLAS, ...) are found at run time through its run path, not necessarily by the linker.
configure_from_folders() {
  local torch_dir=$1 deps=$2 cuda_includes=$3
  # The C++11 string ABI: checked in run.
  configure -DVIDGEN_TORCH_LIBRARY_DIR="$torch_dir/lib" -DVIDGEN_TORCH_INCLUDE_DIR="$torch_dir/include" \
    -DVIDGEN_TORCH_CUDA_INCLUDE_DIRS="$cuda_includes" -DVIDGEN_TORCH_CXX11_ABI=1 \
    -DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined -DCMAKE_PREFIX_PATH="$deps/usr;$deps/$MULTIARCH/cmake"
}

# run DEVICE [OUT]: everything on DEVICE (cuda: with the benchmarks; cpu: the dry run, without them).
run() {
  local device=$1 out=${2:-${OUT:-$BUILD_DIR/report}}
  mkdir -p "$out" "$BUILD_DIR"
  out=$(cd "$out" && pwd)
  exec > >(tee "$out/gpu-check.log") 2>&1
  local start=$SECONDS

  local cuda_home=${CUDA_HOME:-/usr/local/cuda}
  if ! command -v nvcc >/dev/null && [ -x "$cuda_home/bin/nvcc" ]; then export PATH="$cuda_home/bin:$PATH"; fi
  preflight "$device"

  # The build dependencies, unpacked into a prefix of their own.
  local prefix="$PWD/$BUILD_DIR/deps"
  if [ -f "$DEPS_DIR/deps.tar.xz" ]; then
    rm -rf "$prefix" && mkdir -p "$prefix"
    tar -xJf "$DEPS_DIR/deps.tar.xz" -C "$prefix"
  fi
  export LD_LIBRARY_PATH="$prefix/$MULTIARCH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PATH="$PATH:$prefix/usr/bin"  # pkg-config where the machine has none
  # The .pc files say /usr: the sysroot points their paths into the prefix.
  export PKG_CONFIG_LIBDIR="$prefix/$MULTIARCH/pkgconfig:$prefix/usr/share/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$prefix"

  # LibTorch, from PyTorch unless given. Debian's libraries use the C++11 string ABI; a PyTorch built with the old
  # one cannot link against them.
  local torch_prefix=${VIDGEN_TORCH_PREFIX:-} torch_dir=""
  if [ -z "$torch_prefix" ]; then
    torch_dir=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')
    torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
    if [ "$(python3 -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')" != 1 ]; then
      echo "gpu-check: this PyTorch uses the pre-C++11 string ABI; the core's Debian dependencies need the C++11 one" >&2
      exit 2
    fi
    python3 -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda)' | tee "$out/machine.txt"
  fi
  if [ "$device" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$out/machine.txt" || true
    { cmake --version | head -1; c++ --version | head -1; nvcc --version 2>/dev/null | tail -1; echo "$(nproc) cores"; } \
      >>"$out/machine.txt" || true
    # What else a wheel's LibTorch carries that our programs may meet: the copies of libstdc++ it exports (which they
    # must not bind to, CMakeLists.txt) and the third-party headers beside its own.
    if [ -n "$torch_dir" ]; then
      local entries
      nm -D --defined-only "$torch_dir/lib/libtorch_cpu.so" 2>/dev/null | grep -c ' _ZNSt10filesystem' |
        sed 's/^/std::filesystem symbols libtorch_cpu.so exports: /' >>"$out/machine.txt" || true
      entries=("$torch_dir"/include/*)
      echo "torch/include holds: ${entries[*]##*/}" >>"$out/machine.txt"
    fi
  fi

  echo "== build ($((SECONDS - start)) s)"
  local status=0
  if torch_from_folders "$device"; then
    echo "gpu-check: no CUDA toolkit: LibTorch from the wheel's folders, the CUDA headers from the nvidia-* wheels"
    configure_from_folders "$torch_dir" "$prefix" "$(wheel_cuda_includes)"
  elif ! configure_from_package "$device" "$torch_prefix" "$prefix" "$cuda_home"; then
    # One GPU call must not end at a configure step of PyTorch's that never ran here: the folders need no probe.
    if [ "$device" != cuda ] || [ -z "$torch_dir" ]; then exit 1; fi
    echo "gpu-check: PyTorch's CMake package did not configure; LibTorch from the wheel's folders instead"
    status=1
    configure_from_folders "$torch_dir" "$prefix" "$(wheel_cuda_includes);$cuda_home/include"
  fi
  # Kept going past a file that does not compile: what did build is still tested and measured.
  cmake --build "$BUILD_DIR/core" -j "$(nproc)" -- "${KEEP_GOING[@]}" || {
    status=1
    echo "gpu-check: the build failed (kept going: what built runs below)"
  }

  echo "== golden and unit suites on $device ($((SECONDS - start)) s)"
  local limit=()
  # On the GPU the suites stop in time to leave the benchmarks 3 minutes of the budget (ctest's --stop-time does not
  # stop a test already running).
  local suites_seconds=$((BUDGET_SECONDS - 180 - SECONDS))
  [ "$device" = cuda ] && limit=(timeout --kill-after=10 "$((suites_seconds > 1 ? suites_seconds : 1))")
  (cd "$BUILD_DIR/core" && VIDGEN_TEST_DEVICE=$device "${limit[@]}" ctest --output-on-failure -j 4 -L 'golden|unit' \
    --output-junit "$out/ctest.xml") || status=1
  backtraces "$device" "$out/gpu-check.log" "$cuda_home"

  if [ "$device" = cuda ]; then
    echo "== benchmarks on CUDA ($((SECONDS - start)) s)"
    benchmarks "$out" || status=1
  fi
  echo "== done in $((SECONDS - start)) s, status $status; reports in $out"
  return $status
}

# backtraces DEVICE LOG CUDA_HOME: each test that crashed (at most 3), run again under a debugger for its backtrace,
# which ctest does not give: gdb, else the CUDA toolkit's cuda-gdb (it debugs host code too). Within the suites' time.
backtraces() {
  local device=$1 log=$2 debugger test
  debugger=$(command -v gdb || command -v cuda-gdb || command -v "$3/bin/cuda-gdb") || return 0
  for test in $(sed -n 's/.*Test *#[0-9]*: \([A-Za-z0-9_]*\) \.*\*\*\*Exception.*/\1/p' "$log" | sort -u | head -3); do
    ((SECONDS + 60 < BUDGET_SECONDS - 180)) || [ "$device" != cuda ] || return 0
    echo "== backtrace of $test"
    (cd "$BUILD_DIR/core/tests" && VIDGEN_TEST_DEVICE=$device timeout 60 "$debugger" -batch -ex run -ex 'bt 30' \
      --args "./$test") 2>&1 | tail -50 || true
  done
}

# Every benchmark's JSON report, gathered into OUT/benchmarks.json (one object, keyed by run): the device tool brings
# back at most 8 files of a run.
benchmarks() {
  local out=$1 status=0 reports="$BUILD_DIR/benchmarks"
  local bench="$BUILD_DIR/core/tools/vidgen-bench"
  rm -rf "$reports" && mkdir -p "$reports"
  local wan13=(--family wan2.1) wan14=(--family wan2.1 --dim 5120 --heads 40 --ffn-dim 13824)
  local hunyuan=(--family hunyuanvideo)
  # Wan at 480p, 81 frames (21 × 60 × 104 latents, 32760 tokens); HunyuanVideo at 544×960, 65 frames (17 × 68 × 120
  # latents, 34680 tokens); a few blocks each, at the released widths (Wan 1.3B and 14B, HunyuanVideo 13B).
  bench_json() {
    local name=$1
    shift
    if ((SECONDS >= BUDGET_SECONDS)); then
      echo "gpu-check: $name skipped: ${SECONDS} s in, past the budget of ${BUDGET_SECONDS} s"
      status=1
      return
    fi
    timeout "$((BUDGET_SECONDS - SECONDS))" "$bench" "$@" --json >"$reports/$name.json" || status=1
  }
  # The most telling first.
  bench_json dit-wan1.3b dit "${wan13[@]}" --layers 4 --device cuda --threads 1 --latent-frames 21 --latent-height 60 --latent-width 104
  bench_json cache-wan1.3b cache "${wan13[@]}" --layers 4 --device cuda --steps 20 --frames 81 --height 480 --width 832
  bench_json dit-hunyuan dit "${hunyuan[@]}" --layers 3 --device cuda --threads 1 --latent-frames 17 --latent-height 68 --latent-width 120
  bench_json load-wan load --family wan2.1 --synthetic-gib 4 --device cuda
  bench_json dit-wan14b dit "${wan14[@]}" --layers 2 --device cuda --threads 1 --latent-frames 21 --latent-height 60 --latent-width 104
  bench_json cache-hunyuan cache "${hunyuan[@]}" --layers 3 --device cuda --steps 20 --frames 65 --height 544 --width 960
  bench_json load-hunyuan load --family hunyuanvideo --synthetic-gib 4 --device cuda
  if [ "$(python3 -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
    bench_json parallel-wan1.3b parallel "${wan13[@]}" --layers 4 --device cuda --steps 10 \
      --latent-frames 21 --latent-height 60 --latent-width 104
  fi
  # A run that failed part-way leaves what it printed, kept as text.
  python3 - "$reports"/*.json >"$out/benchmarks.json" <<'PY' || status=1
import json, os, sys
def report(path):
    text = open(path).read()
    try:
        return json.loads(text)
    except ValueError:
        return {"unparsed_output": text}
print(json.dumps({os.path.basename(p)[:-len(".json")]: report(p) for p in sys.argv[1:] if os.path.exists(p)},
                 indent=1))
PY
  return $status
}

case "${1:-}" in
  fetch) fetch ;;
  run) shift; run cuda "$@" ;;
  dry-run) shift; run cpu "$@" ;;
  *) echo "usage: $0 fetch | run [OUT] | dry-run [OUT]" >&2; exit 2 ;;
esac
