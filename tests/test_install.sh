#!/usr/bin/env bash
# test_install: install objmem into a temporary prefix, then build and run
# the README's example against it, through pkg-config and through
# find_package(objmem) (shared and static).  Usage: test_install.sh BUILD SRC
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
cc "$src/tests/install/demo.c" $(pkg-config --cflags --libs objmem) \
    -Wl,-rpath,"$tmp/prefix/lib" -o "$tmp/demo_pc"
"$tmp/demo_pc" | grep "Small block threshold = 512, in 32 size classes; medium up to" >/dev/null
cmake -S "$src/tests/install" -B "$tmp/consumer" \
    -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
for exe in demo_shared demo_static; do
    "$tmp/consumer/$exe" | grep "# arenas allocated current" >/dev/null
done
[ -f "$tmp/prefix/lib/libobjmem.so.0" ]
if nm -D --defined-only "$tmp/prefix/lib/libobjmem.so" | grep " omi_" >/dev/null; then
    echo "internal omi_ symbols are exported" >&2
    exit 1
fi
nm -D --defined-only "$tmp/prefix/lib/libobjmem.so" | grep " om_malloc$" >/dev/null
echo "1 passed, 0 failed"
