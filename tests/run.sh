#!/usr/bin/env bash
# Runs the whole test suite: builds migd with AddressSanitizer and
# UndefinedBehaviorSanitizer, then runs every unit and system test with ctest.
# Extra arguments go to ctest (e.g. -L unit, -R lab).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/deps.sh"
[ "$(id -u)" = 0 ] || { echo "run.sh: must run as root (the lab mounts ZFS pools and binds sshd to port 22)" >&2; exit 2; }
migd_install_deps
build=${MIGD_BUILD_DIR:-$top/build-asan}
cmake -S "$top" -B "$build" -DMIGD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j"$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
ctest --output-on-failure "$@"
