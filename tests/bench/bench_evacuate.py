#!/usr/bin/env python3
"""The evacuation benchmark: how long emptying a CN takes, against the least
it could take, and against what migd estimated beforehand.

Brings up a 3-CN lab on its own SSH port with N extra joyent zones on cn3
(bench0.., BENCH_VMS, default 6) holding BENCH_MB of data each (default
300), and two calibration zones (cal1, cal2).  Every stream is capped at
BENCH_STREAM_MBPS (transfer.limit_mbps, default 80 Mbit/s = 10 MB/s): the
lab's CNs share the test machine's two cores, so uncapped parallel streams
would measure the CPU, not the scheduler; a cap stands for the per-stream
limit of a real admin network.

1. Calibration: cal1 moves cn3 -> cn1 and cal2 cn3 -> cn2 (full jobs), so
   migd has measured each pair's rate and the fixed part of a job.  The
   single-stream rate is the calibration jobs' first round: bytes / time.
2. `migctl estimate cn3` prints the window migd expects.
3. `migctl evacuate --to cn1,cn2 --max-parallel P cn3` (P = BENCH_PARALLEL,
   default 2); the wall time from the evacuation's start to the last job
   switched is the actual time.

It prints

  lower_bound_s = data bytes / (single-stream rate * P)
  ratio         = actual / lower_bound          (target <= 1.2)
  estimate_error = (actual - estimate) / estimate (target within 25%)

Run as root: tests/bench/bench_evacuate.py BUILD_DIR

With `spacing` after BUILD_DIR it measures limits.switches_per_cn instead:
a 4-CN lab with SPACING_VMS (6) running zones of SPACING_MB (20) on cn4,
evacuated to cn1 with --max-parallel 3 and switches_per_cn 6 (no spacing:
the three copies end together and switch together), rolled back, then
evacuated again with switches_per_cn 1 (the default: one switch into or
out of a CN at once).  It prints every job's downtime in each run, the longest, and when
the last switch ended:

  spacing=off downtime_ms=[...] longest_ms=N last_switch_s=S
  spacing=on  downtime_ms=[...] longest_ms=N last_switch_s=S
"""
import datetime
import json
import os
import re
import sys
import tempfile
import time

from benchlab import build_dir, labmod, lab_up, migd_up, new_lab
import helpers  # from tests/system, on the path benchlab set

wait = helpers.waiter(1800, step=0.5, error=RuntimeError)

NVMS = int(os.environ.get('BENCH_VMS', 6))
DATA_MB = int(os.environ.get('BENCH_MB', 300))
CAL_MB = int(os.environ.get('BENCH_CAL_MB', 100))
STREAM_MBPS = int(os.environ.get('BENCH_STREAM_MBPS', 80))
PARALLEL = int(os.environ.get('BENCH_PARALLEL', 2))
PORT = int(os.environ.get('BENCH_SSH_PORT', 2325))


def add_vms():
    """The bench's zones on cn3, in the seed's table (before the lab is seeded)."""
    names = ['cal1', 'cal2'] + ['bench%d' % i for i in range(NVMS)]
    for i, name in enumerate(names):
        labmod.seed.VM_SPECS.append({'alias': name, 'cn': 3, 'brand': 'joyent',
                                     'state': 'running',
                                     'nics': [('external', '192.0.2.%d' % (60 + i), False)]})
    return names


def ms(iso):
    return datetime.datetime.strptime(iso, '%Y-%m-%dT%H:%M:%S.%fZ').replace(
        tzinfo=datetime.timezone.utc).timestamp() * 1000


def main():
    build = build_dir()
    work = tempfile.mkdtemp(prefix='migd-bench-evacuate-')
    add_vms()
    lab = new_lab(work, 3, PORT)
    size = lab._pool_size()
    lab._pool_size = lambda: size + (NVMS * DATA_MB * 3 << 20)
    lab.up()
    d = migd_up(lab, build, work,
                transfer={'mode': 'relay', 'retries': 5, 'limit_mbps': STREAM_MBPS},
                limits={'max_active_jobs': 8, 'max_jobs_per_cn': 8})
    try:
        cn1, cn2, cn3 = lab.cns
        for i in range(NVMS):
            helpers.fill(lab, cn3, lab.vms['bench%d' % i]['uuid'], DATA_MB, timeout=900)
        rates = []
        for alias, dst in (('cal1', cn1), ('cal2', cn2)):
            helpers.fill(lab, cn3, lab.vms[alias]['uuid'], CAL_MB, timeout=900)
            p = d.ctl('migrate', '-w', lab.vms[alias]['uuid'], dst.hostname)
            if p.returncode != 0:
                raise RuntimeError(p.stderr + d.log_text()[-3000:])
            job = d.job(re.search(r'[0-9a-f-]{36}', p.stdout).group(0))
            r1 = job['rounds'][0]
            rates.append(r1['bytes'] * 1000 / r1['duration_ms'])
            took = (ms(job['finished']) - ms(job['started'])) / 1000
            print('calibration %s -> %s: %d bytes, first round %d ms (%.2f MB/s), job %.1f s'
                  % (alias, dst.hostname, r1['bytes'], r1['duration_ms'], rates[-1] / 1e6, took))
        single = sum(rates) / len(rates)

        p = d.ctl('estimate', '-j', cn3.hostname)
        if p.returncode != 0:
            raise RuntimeError(p.stderr)
        est = json.loads(p.stdout)
        t0 = time.time() * 1000
        p = d.ctl('evacuate', '-j', '--to', '%s,%s' % (cn1.hostname, cn2.hostname),
                  '--max-parallel', str(PARALLEL), cn3.hostname)
        if p.returncode not in (0, 1):
            raise RuntimeError(p.stderr)
        ev = json.loads(p.stdout)
        for e in ev['plan']:
            print('plan %-8s %-6s %12d bytes -> %-8s %4s s  %s'
                  % (e['alias'], e['brand'], e['bytes'], e.get('target_hostname') or '-',
                     e['estimate_s'] if e['estimate_s'] is not None else '-', e['why']))
        jobs = [e['job_uuid'] for e in ev['plan'] if e.get('job_uuid')]

        def ended():
            js = [d.job(j) for j in jobs]
            return js if all(j['state'] not in ('queued', 'running') for j in js) else None
        done = wait(ended, 'the evacuation')
        bad = [j for j in done if j['state'] != 'switched']
        if bad:
            raise RuntimeError('jobs did not switch: %s' % bad)
        actual = (max(ms(j['finished']) for j in done) - t0) / 1000
        data = sum(j['progress']['bytes_sent'] for j in done)
        lower = data / (single * PARALLEL)
        record = wait(lambda: (lambda r: r if r['state'] != 'running' else None)(
            json.loads(d.ctl('evacuate', '-j', cn3.hostname).stdout)), 'the record', 60)
        print('vms=%d data_bytes=%d stream_cap_MBps=%.2f single_stream_MBps=%.2f parallel=%d'
              % (len(jobs), data, STREAM_MBPS / 8, single / 1e6, PARALLEL))
        print('actual_s=%.1f lower_bound_s=%.1f ratio=%.2f' % (actual, lower, actual / lower))
        print('estimate_s=%d (estimate cn3: %d) actual_s=%.1f estimate_error=%+.0f%% '
              '(migd recorded %+.0f%%)'
              % (ev['estimate_s'], est['estimate_s'], actual,
                 100 * (actual - ev['estimate_s']) / ev['estimate_s'],
                 100 * (record.get('estimate_error') or 0)))
    finally:
        d.stop()
        lab.down()


SPACING_VMS = int(os.environ.get('SPACING_VMS', 6))
SPACING_MB = int(os.environ.get('SPACING_MB', 20))


def spacing_run(lab, build, work, name, per_cn, src, dst, back):
    """Evacuates src to dst (--max-parallel 3) with switches_per_cn per_cn,
    then (back) rolls every job back; the downtimes, sorted."""
    d = migd_up(lab, build, work, 'migd-' + name,
                transfer={'mode': 'relay', 'retries': 5, 'limit_mbps': STREAM_MBPS},
                limits={'max_active_jobs': 8, 'max_jobs_per_cn': 8, 'switches_per_cn': per_cn},
                health={'min_up_s': 0})
    try:
        t0 = time.time() * 1000
        p = d.ctl('evacuate', '-j', '--no-reserve', '--to', dst.hostname, '--max-parallel', '3',
                  src.hostname)
        if p.returncode not in (0, 1):
            raise RuntimeError(p.stderr)
        jobs = [e['job_uuid'] for e in json.loads(p.stdout)['plan'] if e.get('job_uuid')]

        def ended():
            js = [d.job(j) for j in jobs]
            return js if all(j['state'] not in ('queued', 'running', 'waiting')
                             for j in js) else None
        done = wait(ended, 'the evacuation of %s' % src.hostname)
        if any(j['state'] != 'switched' for j in done):
            raise RuntimeError('jobs did not switch: %s' % [j.get('error') for j in done])
        for j in done if back else ():  # home again, for the next run
            d.ctl('rollback', j['uuid'])
        wait(lambda: not back or all(d.job(j)['state'] == 'rolled_back' for j in jobs),
             'the rollbacks')
        downtimes = sorted(j['downtime_ms'] for j in done)
        last = (max(ms(j['finished']) for j in done) - t0) / 1000
        print('spacing=%-3s switches_per_cn=%d downtime_ms=%s longest_ms=%d last_switch_s=%.1f'
              % (name, per_cn, downtimes, downtimes[-1], last))
        return downtimes
    finally:
        d.stop()


def spacing(build):
    for i in range(SPACING_VMS):
        labmod.seed.VM_SPECS.append({'alias': 'space%d' % i, 'cn': 4, 'brand': 'joyent',
                                     'state': 'running',
                                     'nics': [('external', '192.0.2.%d' % (80 + i), False)]})
    work, lab = lab_up('migd-bench-spacing-', 4, PORT)
    try:
        cn1, cn4 = lab.cns[0], lab.cns[3]
        for i in range(SPACING_VMS):
            helpers.fill(lab, cn4, lab.vms['space%d' % i]['uuid'], SPACING_MB, timeout=900)
        off = spacing_run(lab, build, work, 'off', SPACING_VMS, cn4, cn1, back=True)
        on = spacing_run(lab, build, work, 'on', 1, cn4, cn1, back=False)
        print('vms=%d data_mb=%d max_parallel=3 longest_ms off=%d on=%d'
              % (SPACING_VMS, SPACING_MB, off[-1], on[-1]))
    finally:
        lab.down()


if __name__ == '__main__':
    if len(sys.argv) > 2 and sys.argv[2] == 'spacing':
        spacing(os.path.abspath(sys.argv[1]))
    else:
        main()
