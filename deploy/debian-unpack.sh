#!/usr/bin/env bash
# Packages of another Debian suite, downloaded from Debian's archive and unpacked (not installed: their files only,
# e.g. headers to compile against) into DIR/root. apt's state for that suite lives in DIR/apt; the system's apt setup
# is not touched. Idempotent: returns at once when DIR/root already holds these packages.
#   debian-unpack.sh SUITE COMPONENTS DIR PACKAGE...     e.g. debian-unpack.sh trixie "main contrib" DIR libfoo-dev
set -euo pipefail

suite=$1
components=$2
dir=$3
shift 3
packages=("$@")
wanted="$suite $components ${packages[*]}"

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[[ "$(cat "$dir/root/.vidgen-packages" 2>/dev/null)" == "$wanted" ]] && exit 0

apt_dir=$dir/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite $components" \
  >"$apt_dir/sources.list"
apt=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$apt_dir/lists"
     -o "Dir::Cache=$apt_dir/cache" -o APT::Sandbox::User=root)
echo "debian-unpack: ${packages[*]} from Debian $suite into $dir/root" >&2
apt-get "${apt[@]}" update -q >/dev/null
rm -f "$apt_dir"/debs/*.deb
(cd "$apt_dir/debs" && apt-get "${apt[@]}" download "${packages[@]}")

rm -rf "$dir/root" && mkdir -p "$dir/root"
for deb in "$apt_dir"/debs/*.deb; do dpkg -x "$deb" "$dir/root"; done
echo "$wanted" >"$dir/root/.vidgen-packages"
