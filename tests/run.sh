#!/usr/bin/env bash
# Runs the whole test suite: builds migd with AddressSanitizer and
# UndefinedBehaviorSanitizer and the crash campaign's kill switch (the test
# build), and a release build for the valgrind test, then runs every unit,
# system and crash-campaign test with ctest.  Extra arguments go to ctest
# (e.g. -L unit, -L system, -L crash, -R lab).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/deps.sh"
[ "$(id -u)" = 0 ] || { echo "run.sh: must run as root (the lab mounts ZFS pools and binds sshd to port 22)" >&2; exit 2; }
migd_install_deps
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
cd "$build"
ctest --output-on-failure "$@"
