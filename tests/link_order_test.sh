#!/bin/sh
# link_order_test.sh PROGRAM...: each program that links LibTorch names libstdc++ before it among the libraries it
# needs, so that the dynamic linker binds its standard-library calls to libstdc++ and not to the copies that PyTorch's
# wheels export (CMakeLists.txt).
set -eu
for program in "$@"; do
  needed=$(readelf -d "$program" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  first_stdcxx=$(echo "$needed" | grep -n '^libstdc++' | head -1 | cut -d: -f1)
  first_torch=$(echo "$needed" | grep -n '^libtorch' | head -1 | cut -d: -f1)
  if [ -z "$first_torch" ] || [ -z "$first_stdcxx" ] || [ "$first_stdcxx" -gt "$first_torch" ]; then
    echo "$program needs, in this order:" $needed
    echo "FAIL: libstdc++ must come before LibTorch"
    exit 1
  fi
  echo "ok: $program names libstdc++ (#$first_stdcxx) before LibTorch (#$first_torch)"
done
