#!/usr/bin/env bash
# Runs the whole test suite: builds migd with AddressSanitizer and
# UndefinedBehaviorSanitizer and the crash campaign's kill switch (the test
# build), and a release build for the valgrind test, then runs every unit,
# system and crash-campaign test with ctest.  Extra arguments go to ctest
# (e.g. -L unit, -L system, -L crash, -R lab).  After ctest, the control
# API's fuzzers (tests/fuzz/fuzz_control.c: one connection; fuzz_conns.c:
# several at once; built with clang in build-fuzz) share MIGD_FUZZ_SECONDS
# (default 60, half each; 0 skips them); a finding fails the run and leaves
# its input in the build directory.
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
    cmake --build "$fuzz" -j"$(nproc)" --target fuzz_control fuzz_conns
    # The budget is shared: one connection first, then several at once.
    half=$(( (fuzz_s + 1) / 2 ))
    for target in fuzz_control fuzz_conns; do
        corpus=$(mktemp -d)
        cp "$top"/tests/fuzz/corpus/"${target#fuzz_}"/* "$corpus"/
        ASAN_OPTIONS=detect_leaks=1 "$fuzz/$target" -max_total_time="$half" -max_len=131072 \
            -timeout=10 -print_final_stats=1 -artifact_prefix="$fuzz/$target-" \
            -dict="$top/tests/fuzz/control.dict" "$corpus"
        rm -rf "$corpus"
    done
fi
