#!/usr/bin/env bash
# A Debian root for a build against other libraries than this machine's, made by mmdebstrap from Debian's archive in
# ROOT (the system's apt setup is not touched): trixie for LibTorch 2.6 (it needs trixie's C library), or a bare
# bookworm with little more than a compiler, CMake and a LibTorch for tools/gpu-check.sh's dry run. Runs COMMAND there
# with the source tree at /src and a ccache kept outside the tree (shared by the roots).
#   debian-root.sh SUITE ROOT COMMAND PACKAGE...
set -euo pipefail

suite=$1
root=$2
command=$3
shift 3
packages=("$@")
source=$(cd "$(dirname "$0")/.." && pwd)
wanted="$suite ${packages[*]}"

sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)

mkdir -p "$(dirname "$root")"
root=$(cd "$(dirname "$root")" && pwd)/$(basename "$root")
if [[ "$(cat "$root/.vidgen-packages" 2>/dev/null)" != "$wanted" ]]; then
  echo "debian-root: making a Debian $suite root in $root" >&2
  "${sudo[@]}" rm -rf "$root"
  include=$(IFS=,; echo "${packages[*]}")
  # Testing's Release files expire within days of being signed; a mirror that lags behind serves them expired. The
  # signature is still checked.
  "${sudo[@]}" mmdebstrap --quiet --variant=apt --mode=root --include="$include" \
    --aptopt='Acquire::Check-Valid-Until "false"' "$suite" "$root" http://deb.debian.org/debian
  echo "$wanted" | "${sudo[@]}" tee "$root/.vidgen-packages" >/dev/null
fi

ccache_dir=${VIDGEN_ROOT_CCACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vidgen-torch2-ccache}
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
