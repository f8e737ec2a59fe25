#!/usr/bin/env bash
# Brings the lab up (3 emulated CNs with real ZFS and SSH, emulated Triton
# APIs), starts migd against it, migrates the running zone web0 from cn1 to
# cn2 while showing its progress, shows the result, and takes everything down.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/deps.sh"
[ "$(id -u)" = 0 ] || { echo "demo.sh: must run as root (the lab mounts ZFS pools and binds sshd to port 22)" >&2; exit 2; }
migd_install_deps
build=${MIGD_BUILD_DIR:-$top/build}
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
work=$(mktemp -d /tmp/migd-demo.XXXXXX)
lab="/usr/bin/python3 $top/tests/lab/lab.py"
cleanup() {
    [ -n "${migd_pid:-}" ] && kill "$migd_pid" 2>/dev/null && wait "$migd_pid" 2>/dev/null
    $lab down "$work/lab" >/dev/null 2>&1 || true
}
trap cleanup EXIT
echo "== bringing the lab up in $work/lab"
$lab up "$work/lab" --data-mb "${DEMO_DATA_MB:-64}"
$lab status "$work/lab"
$lab config "$work/lab" > "$work/migd.json"
"$build/migd" -n -f "$work/migd.json"
"$build/migd" -f "$work/migd.json" 2> "$work/migd.log" &
migd_pid=$!
export MIGD_SOCKET=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["socket"])' "$work/migd.json")
for _ in $(seq 100); do [ -S "$MIGD_SOCKET" ] && break; sleep 0.1; done
echo "== migctl migrate -w web0 cn2"
"$build/migctl" migrate -w web0 cn2
echo "== the job"
job=$("$build/migctl" list -a -H -o uuid | head -1)
"$build/migctl" show "$job"
echo "== cn2 now runs:"
$lab exec "$work/lab" 2 "vmadm list -p -o uuid,state,brand,alias"
echo "== migd's log is in $work/migd.log"
