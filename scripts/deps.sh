#!/usr/bin/env bash
# Install the Debian packages the build needs, only when they are missing.
# Usage: scripts/deps.sh [test|bench|fuzz]
set -eu
# chromium: test_preload opens the flame graph page in it (headless).
# valgrind, heaptrack, libc-devtools (memusage): test_debug checks that
# each sees every block under it.  gdb: test_gc reads the static probes.
# g++: test_preload traces a C++ program.
want="cmake gcc g++ make pkg-config libcmocka-dev chromium libdw1 valgrind"
want="$want heaptrack libc-devtools gdb"
if [ "${1:-test}" = fuzz ]; then
    want="cmake clang make"             # libFuzzer comes with clang
elif [ "${1:-test}" = bench ]; then
    want="$want libmimalloc-dev libjemalloc-dev libgoogle-perftools-dev"
    want="$want python3-dev"
fi
missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "objmem: installing Debian packages:$missing"
if [ "$(id -u)" != 0 ]; then
    echo "objmem: not root; install them with: sudo apt-get install$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $missing >/dev/null
echo "objmem: packages installed"
