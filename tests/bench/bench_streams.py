#!/usr/bin/env python3
"""A VM with several datasets: its round's streams one after the other
against at once (transfer.streams).

Brings up a 2-CN lab on its own SSH port, writes BENCH_DATA_MB (default 96)
MB into each of kvm0's two disks (kvm0: its zone dataset plus two disks
beside it, three streams a round), then migrates kvm0 between cn2 and cn1
BENCH_RUNS (default 3) times with a migd whose transfer.streams is 1 and as
many with one whose transfer.streams is 4, alternating (and each going
both ways over the runs), each switched job
cleaned up before the next.  For each job it prints the first round's sends
(first start to last end, from the job's journal) and the whole job; then
the medians and the summary line `streams4/streams1=R` (above 1: at once is
faster).  On the lab every CN shares the machine's cores, and the relay
does its ciphers on one of them, so what this shows here is mostly the
overlap of each stream's fixed costs (opening channels, starting zfs
send and receive, settling what arrived), not of their bytes.  Run as root
from a build directory: tests/bench/bench_streams.py BUILD_DIR
"""
import os
import re
import statistics
import time

from benchlab import build_dir, lab_up, migd_up
from helpers import waiter  # from tests/system, on the path benchlab set

DATA_MB = int(os.environ.get('BENCH_DATA_MB', 96))
PORT = int(os.environ.get('BENCH_SSH_PORT', 2327))
RUNS = int(os.environ.get('BENCH_RUNS', 3))
wait = waiter(600, step=0.2, error=RuntimeError)


def stamp(v):
    return time.mktime(time.strptime(v[:19], '%Y-%m-%dT%H:%M:%S')) + int(v[20:23]) / 1000


def round_one(d, job_uuid):
    """The first round's sends of a job, from its journal: first start to last end."""
    import json
    acts = json.loads(d.ctl('show', '-v', '-j', job_uuid).stdout)['actions']
    sends = [a for a in acts if a['action'].startswith('sync.send@1')]
    assert len(sends) == 3, sends
    return stamp(max(a['ended'] for a in sends)) - stamp(min(a['started'] for a in sends))


def migrate(d, vm, there):
    """One migration of vm to there, cleaned up: (first round's sends, whole job) in s."""
    t0 = time.monotonic()
    p = d.ctl('migrate', '-w', vm['uuid'], there, timeout=1800)
    took = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    uuid = re.search(r'[0-9a-f-]{36}', p.stdout).group(0)
    sends = round_one(d, uuid)
    assert d.ctl('cleanup', uuid).returncode == 0
    wait(lambda: d.job(uuid)['state'] == 'succeeded', 'the cleanup')
    return sends, took


def main():
    build = build_dir()
    work, lab = lab_up('migd-bench-', 2, PORT)
    try:
        vm = lab.vms['kvm0']
        cn2 = lab.cns[1]
        for k in (0, 1):
            lab.cn_run(cn2, 'head -c %dM /dev/urandom > /zones/%s-disk%d/bulk.bin && sync'
                       % (DATA_MB, vm['uuid'], k), timeout=600)
        daemons = {n: migd_up(lab, build, work, name='migd-streams%d' % n, transfer={'streams': n})
                   for n in (1, 4)}
        for d in daemons.values():
            d.stop()
        runs = {1: [], 4: []}
        here, there = 'cn2', 'cn1'
        for i in range(RUNS):
            # Each setting goes both ways over the runs: 1, 4, then 4, 1, ...
            for n in ((1, 4) if i % 2 == 0 else (4, 1)):
                d = daemons[n].start()
                sends, took = migrate(d, vm, there)
                d.stop()
                runs[n].append(sends)
                print('streams=%d %s -> %s first round %.2f s, job %.2f s'
                      % (n, here, there, sends, took))
                here, there = there, here
        med = {n: statistics.median(r) for n, r in runs.items()}
        print('summary medians of %d: first round of 3 streams, streams=1 %.2f s, streams=4 '
              '%.2f s; streams4/streams1=%.2f' % (RUNS, med[1], med[4], med[1] / med[4]))
    finally:
        lab.down()


if __name__ == '__main__':
    main()
