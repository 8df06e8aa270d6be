#!/usr/bin/env bash
# LibTorch 2.x for the core's second build, from Debian's archive: trixie's libtorch-dev 2.6 needs trixie's C
# library, so it lives in a trixie root made by mmdebstrap in ROOT (the system's apt setup is not touched). Runs
# COMMAND there with the source tree at /src and a ccache of its own kept outside the tree.
#   torch2-root.sh ROOT COMMAND
set -euo pipefail

root=$1
command=$2
source=$(cd "$(dirname "$0")/.." && pwd)
packages=(
  build-essential cmake pkg-config ccache
  libtorch-dev libgloo-dev
  libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev libsentencepiece-dev
  libpng-dev libgtest-dev libicu-dev zlib1g-dev
)
wanted="trixie ${packages[*]}"

sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)

mkdir -p "$(dirname "$root")"
root=$(cd "$(dirname "$root")" && pwd)/$(basename "$root")
if [[ "$(cat "$root/.vidgen-packages" 2>/dev/null)" != "$wanted" ]]; then
  echo "torch2-root: making a Debian trixie root with LibTorch 2.x in $root" >&2
  "${sudo[@]}" rm -rf "$root"
  include=$(IFS=,; echo "${packages[*]}")
  "${sudo[@]}" mmdebstrap --quiet --variant=apt --mode=root --include="$include" trixie "$root" \
    http://deb.debian.org/debian
  echo "$wanted" | "${sudo[@]}" tee "$root/.vidgen-packages" >/dev/null
fi

ccache_dir=${VIDGEN_TORCH2_CCACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vidgen-torch2-ccache}
mkdir -p "$ccache_dir"
"${sudo[@]}" mkdir -p "$root/src" "$root/ccache"
# A mount namespace of its own: the mounts end with the command.
"${sudo[@]}" unshare --mount --propagation private sh -c '
  set -e
  root=$1 source=$2 ccache_dir=$3 command=$4
  mount --bind "$source" "$root/src"
  mount --bind "$ccache_dir" "$root/ccache"
  mount -t proc proc "$root/proc"
  mount --bind /dev "$root/dev"
  exec chroot "$root" /usr/bin/env CCACHE_DIR=/ccache HOME=/root /bin/sh -c "cd /src && $command"
' sh "$root" "$source" "$ccache_dir" "$command"
