#!/usr/bin/env python3
"""The doctor benchmark: how long `migctl doctor` takes to check a
datacenter, against the issue's target (4 CNs, 100 instances, under 10 s).

Brings up a 4-CN lab on its own SSH port with the seed's VMs and enough
extra joyent zones (bulk0..) to make BENCH_VMS instances (default 100),
spread over the four CNs, plus BENCH_SNAPS migd snapshots of a job migd
never had (default 40, so the report has findings to build), then runs
`migctl doctor -j` BENCH_RUNS times (default 3).  The doctor's cost grows
with the CNs (five SSH commands each, eight CNs at once) and the VMAPI
pages, not with the instances: the second figure shows it, from a run on
one CN.

It prints, per run, the wall time of migctl and the doctor's own took_ms,
then one summary line:

  doctor cns=4 vms=N findings=F median_ms=M target_ms=10000 ratio=M/10000

Run as root: tests/bench/bench_doctor.py BUILD_DIR
"""
import json
import os
import statistics
import time
import uuid as uuidlib

from benchlab import build_dir, labmod, lab_up, migd_up
from helpers import home  # from tests/system, on the path benchlab set

NVMS = int(os.environ.get('BENCH_VMS', 100))
NSNAPS = int(os.environ.get('BENCH_SNAPS', 40))
RUNS = int(os.environ.get('BENCH_RUNS', 3))
PORT = int(os.environ.get('BENCH_SSH_PORT', 2326))
CNS = 4
TARGET_MS = 10000


def add_vms():
    """Bulk zones on the four CNs, round robin, until there are NVMS in all."""
    extra = max(0, NVMS - len(labmod.seed.VM_SPECS))
    for i in range(extra):
        labmod.seed.VM_SPECS.append({'alias': 'bulk%d' % i, 'cn': 1 + i % CNS,
                                     'brand': 'joyent', 'state': 'running',
                                     'nics': [('external', '192.0.2.%d' % (100 + i % 150),
                                               False)]})
    return len(labmod.seed.VM_SPECS)


def doctor(d, *cns):
    t0 = time.monotonic()
    p = d.ctl('doctor', '-j', *cns)
    wall = (time.monotonic() - t0) * 1000
    if p.returncode not in (0, 1):
        raise RuntimeError(p.stderr)
    return wall, json.loads(p.stdout)


def main():
    build = build_dir()
    nvms = add_vms()
    t0 = time.monotonic()
    work, lab = lab_up('migd-bench-doctor-', CNS, PORT)
    print('lab: %d CNs, %d VMs up in %.0f s' % (CNS, nvms, time.monotonic() - t0))
    d = migd_up(lab, build, work)
    try:
        ghost = str(uuidlib.uuid4())
        bulk = [v for a, v in lab.vms.items() if a.startswith('bulk')][:NSNAPS]
        for i, v in enumerate(bulk):
            lab.cn_run(home(lab, v['uuid']), 'zfs snapshot zones/%s@migd-%s-%d'
                       % (v['uuid'], ghost, i))
        walls, took = [], []
        for k in range(RUNS):
            wall, rep = doctor(d)
            walls.append(wall)
            took.append(rep['took_ms'])
            print('run %d: %d CNs, %d VMs, %d findings: migctl %.0f ms, doctor took_ms %d'
                  % (k + 1, len(rep['checked']), rep['vms'], len(rep['findings']), wall,
                     rep['took_ms']))
        one_wall, one = doctor(d, lab.cns[0].hostname)
        print('one CN (%s): migctl %.0f ms, doctor took_ms %d'
              % (lab.cns[0].hostname, one_wall, one['took_ms']))
        med = statistics.median(walls)
        print('doctor cns=%d vms=%d findings=%d median_ms=%.0f target_ms=%d ratio=%.2f'
              % (len(rep['checked']), rep['vms'], len(rep['findings']), med, TARGET_MS,
                 med / TARGET_MS))
    finally:
        d.stop()
        lab.down()


if __name__ == '__main__':
    main()
