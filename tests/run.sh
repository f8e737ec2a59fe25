#!/usr/bin/env bash
# Runs the whole test suite: builds migd with AddressSanitizer and
# UndefinedBehaviorSanitizer and the crash campaign's kill switch (the test
# build), and a release build for the valgrind test, then runs every unit,
# system and crash-campaign test with ctest.  Extra arguments go to ctest
# (e.g. -L unit, -L system, -L crash, -R lab).  After ctest, the control
# API's fuzzer (tests/fuzz/fuzz_control.c, built with clang in
# build-fuzz) runs for MIGD_FUZZ_SECONDS (default 60; 0 skips it); a
# finding fails the run and leaves its input in the build directory.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/deps.sh"
[ "$(id -u)" = 0 ] || { echo "run.sh: must run as root (the lab mounts ZFS pools and binds sshd to port 22)" >&2; exit 2; }
fuzz_s=${MIGD_FUZZ_SECONDS:-60}
if [ "$fuzz_s" != 0 ]; then migd_install_deps $MIGD_FUZZ_DEPS; else migd_install_deps; fi
build=${MIGD_BUILD_DIR:-$top/build-asan}
cmake -S "$top" -B "$build" -DMIGD_SANITIZE=ON -DMIGD_CRASH_POINTS=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j"$(nproc)"
# valgrind runs the release binary (no sanitizer, no kill switch), as shipped.
release=${MIGD_RELEASE_BUILD_DIR:-$top/build-release}
cmake -S "$top" -B "$release" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$release" -j"$(nproc)" --target migd migctl
export MIGD_RELEASE_BUILD_DIR=$release
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Leaks of libraries migd uses, not migd's own: see the file.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp}
cd "$build"
ctest --output-on-failure "$@"
if [ "$fuzz_s" != 0 ]; then
    fuzz=${MIGD_FUZZ_BUILD_DIR:-$top/build-fuzz}
    cmake -S "$top" -B "$fuzz" -DCMAKE_C_COMPILER=clang -DMIGD_FUZZ=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$fuzz" -j"$(nproc)" --target fuzz_control
    corpus=$(mktemp -d)
    cp "$top"/tests/fuzz/corpus/control/* "$corpus"/
    ASAN_OPTIONS=detect_leaks=1 "$fuzz/fuzz_control" -max_total_time="$fuzz_s" -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$fuzz/" -dict="$top/tests/fuzz/control.dict" \
        "$corpus"
    rm -rf "$corpus"
fi
