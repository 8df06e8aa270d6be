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
  gnuplot-nox python3-yaml
  clang libclang-rt-14-dev
  mmdebstrap
)

# The one-node Slurm cluster of the `cluster` tests and the headless browser of the `browser` test; the tests skip
# when these cannot be installed.
optional=(slurm-wlm munge chromium chromium-driver python3-selenium)

missing_of() {
  local package status
  for package in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || echo "$package"
  done
}
mapfile -t missing < <(missing_of "${packages[@]}")
mapfile -t missing_optional < <(missing_of "${optional[@]}")
[[ ${#missing[@]} -eq 0 && ${#missing_optional[@]} -eq 0 ]] && exit 0

sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "install-deps: installing ${missing[*]}" >&2
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [[ ${#missing_optional[@]} -gt 0 ]]; then
  echo "install-deps: installing ${missing_optional[*]} (optional)" >&2
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing_optional[@]}" ||
    echo "install-deps: could not install ${missing_optional[*]}: the cluster tests will be skipped" >&2
fi
