#!/usr/bin/env bash
# Build the fuzz targets with clang (OM_MODE=fuzz: ASan+UBSan, libFuzzer)
# in build/fuzz and run each for SECONDS.  The seeds in fuzz/corpus/NAME
# are read, never written; what libFuzzer adds goes to
# build/fuzz/corpus/NAME.  A crash leaves build/fuzz/crash-NAME-*, which
# `build/release/fuzz/fuzz_NAME FILE` replays without clang.
# Usage: scripts/fuzz.sh SECONDS NAME...
set -eu
cd "$(dirname "$0")/.."
seconds=$1
shift
b=build/fuzz
# Configured every time (a second when nothing changed): a target added
# since the last run is otherwise unknown to make.
mkdir -p $b
CC=clang cmake -S . -B $b -DOM_MODE=fuzz -DOM_BUILD_TESTS=OFF \
    -DOM_BUILD_BENCH=OFF >/dev/null
targets=""
for t in "$@"; do targets="$targets fuzz_$t"; done
echo "objmem: building$targets in $b (clang, ASan+UBSan, libFuzzer)"
if ! cmake --build $b -j "$(nproc)" --target $targets > $b/build.log 2>&1
then
    tail -40 $b/build.log
    exit 1
fi
status=0
for t in "$@"; do
    mkdir -p $b/corpus/$t
    echo "objmem: fuzz_$t for ${seconds}s"
    if ! $b/fuzz/fuzz_$t -max_total_time="$seconds" -rss_limit_mb=2560 \
            -timeout=25 -print_final_stats=1 -artifact_prefix=$b/crash-$t- \
            $b/corpus/$t fuzz/corpus/$t > $b/fuzz_$t.log 2>&1; then
        echo "objmem: fuzz_$t FAILED; see $b/fuzz_$t.log and $b/crash-$t-*"
        tail -40 $b/fuzz_$t.log
        status=1
    else
        grep -E "stat::number_of_executed_units|stat::peak_rss_mb" \
            $b/fuzz_$t.log | tr '\n' ' '
        echo "corpus $(ls $b/corpus/$t | wc -l) inputs"
    fi
done
exit $status
