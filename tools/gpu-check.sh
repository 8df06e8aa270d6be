#!/usr/bin/env bash
# The GPU check: builds the core (models, cache, parallel, tools; no service) against the LibTorch inside the
# machine's PyTorch, runs the golden suites on CUDA and the benchmarks at real block widths on CUDA, and writes every
# report (JSON, logs) to one folder. Meant for a GPU machine that reaches no package registry:
#
#   tools/gpu-check.sh fetch        here (Debian 12): downloads the core's build dependencies as .debs into
#                                   build-gpu-deps/ (carry that folder to the GPU machine)
#   tools/gpu-check.sh run [OUT]    there: unpacks them, builds, tests, measures; reports in OUT (default: $OUT,
#                                   else build-gpu/report)
#
# Budget: about 10 minutes on one H100 (the build is most of it; each benchmark is bounded by its sizes). Needs what
# PyTorch's CMake package needs for CUDA (the CUDA toolkit's headers and nvcc).
set -euo pipefail
cd "$(dirname "$0")/.."

DEPS_DIR=build-gpu-deps
BUILD_DIR=build-gpu
# What the core's CMake finds besides LibTorch, and what its binaries load at run time.
PACKAGES=(libfmt-dev libfmt9 libspdlog-dev libspdlog1.10 nlohmann-json3-dev libcli11-dev libicu-dev libicu72
          zlib1g-dev libsentencepiece-dev libsentencepiece0 libprotobuf-lite32 libgtest-dev libgmock-dev)

fetch() {
  mkdir -p "$DEPS_DIR/debs"
  (cd "$DEPS_DIR/debs" && apt-get download "${PACKAGES[@]}")
  du -sh "$DEPS_DIR"
}

run() {
  local out=${1:-${OUT:-$BUILD_DIR/report}}
  mkdir -p "$out" "$BUILD_DIR"
  out=$(cd "$out" && pwd)
  exec > >(tee "$out/gpu-check.log") 2>&1
  local start=$SECONDS

  # The build dependencies, unpacked into a prefix of their own.
  local prefix="$PWD/$BUILD_DIR/deps"
  if [ -d "$DEPS_DIR/debs" ]; then
    rm -rf "$prefix" && mkdir -p "$prefix"
    for deb in "$DEPS_DIR"/debs/*.deb; do dpkg -x "$deb" "$prefix"; done
  fi
  local multiarch=usr/lib/x86_64-linux-gnu
  export LD_LIBRARY_PATH="$prefix/$multiarch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # The .pc files say /usr: the sysroot points their paths into the prefix.
  export PKG_CONFIG_LIBDIR="$prefix/$multiarch/pkgconfig:$prefix/usr/share/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$prefix"

  # LibTorch from PyTorch. Debian's libraries use the C++11 string ABI; a PyTorch built with the old one cannot link
  # against them.
  local torch_prefix abi
  torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  abi=$(python3 -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
  python3 -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name(0))' \
    | tee "$out/machine.txt"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$out/machine.txt" || true
  if [ "$abi" != 1 ]; then
    echo "gpu-check: this PyTorch uses the pre-C++11 string ABI; the core's Debian dependencies need the C++11 one" >&2
    exit 2
  fi

  echo "== build ($((SECONDS - start)) s)"
  cmake -S . -B "$BUILD_DIR/core" -DCMAKE_BUILD_TYPE=Release -DVIDGEN_SERVICE=OFF \
    -DCMAKE_PREFIX_PATH="$torch_prefix;$prefix/usr;$prefix/$multiarch/cmake"
  cmake --build "$BUILD_DIR/core" -j "$(nproc)"

  echo "== golden suites on CUDA ($((SECONDS - start)) s)"
  local status=0
  (cd "$BUILD_DIR/core" && VIDGEN_TEST_DEVICE=cuda ctest --output-on-failure -j 4 -L 'golden|unit' \
    --output-junit "$out/ctest.xml") || status=1

  echo "== benchmarks on CUDA ($((SECONDS - start)) s)"
  local bench="$BUILD_DIR/core/tools/vidgen-bench"
  local wan13=(--family wan2.1) wan14=(--family wan2.1 --dim 5120 --heads 40 --ffn-dim 13824)
  local hunyuan=(--family hunyuanvideo)
  # Wan at 480p, 81 frames (21 × 60 × 104 latents, 32760 tokens); HunyuanVideo at 544×960, 65 frames (17 × 68 × 120
  # latents, 34680 tokens); a few blocks each, at the released widths (Wan 1.3B and 14B, HunyuanVideo 13B).
  bench_json() { local name=$1; shift; "$bench" "$@" --json >"$out/$name.json" || status=1; }
  bench_json dit-wan1.3b dit "${wan13[@]}" --layers 4 --device cuda --threads 1 --latent-frames 21 --latent-height 60 --latent-width 104
  bench_json dit-wan14b dit "${wan14[@]}" --layers 2 --device cuda --threads 1 --latent-frames 21 --latent-height 60 --latent-width 104
  bench_json dit-hunyuan dit "${hunyuan[@]}" --layers 3 --device cuda --threads 1 --latent-frames 17 --latent-height 68 --latent-width 120
  bench_json cache-wan1.3b cache "${wan13[@]}" --layers 4 --device cuda --steps 20 --frames 81 --height 480 --width 832
  bench_json cache-hunyuan cache "${hunyuan[@]}" --layers 3 --device cuda --steps 20 --frames 65 --height 544 --width 960
  bench_json load-wan load --family wan2.1 --synthetic-gib 4 --device cuda
  bench_json load-hunyuan load --family hunyuanvideo --synthetic-gib 4 --device cuda
  if [ "$(python3 -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
    bench_json parallel-wan1.3b parallel "${wan13[@]}" --layers 4 --device cuda --steps 10 \
      --latent-frames 21 --latent-height 60 --latent-width 104
  fi
  echo "== done in $((SECONDS - start)) s, status $status; reports in $out"
  return $status
}

case "${1:-}" in
  fetch) fetch ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 fetch | run [OUT]" >&2; exit 2 ;;
esac
