#!/usr/bin/env bash
# Installs the Debian 12 packages that vidgen's build and tests need. Idempotent: when every package is already
# installed it returns at once without touching apt.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache
  libtorch-dev libopenblas0-pthread libgloo-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev libcpp-httplib-dev
  libspdlog-dev libfmt-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev ffmpeg
  libsqlite3-dev libssl-dev libcli11-dev nlohmann-json3-dev libsentencepiece-dev
  libpng-dev libgtest-dev libicu-dev zlib1g-dev
  gnuplot-nox
  clang libclang-rt-14-dev
  mmdebstrap
)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
