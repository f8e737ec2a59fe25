#!/usr/bin/env python3
"""The downtime benchmark: where every millisecond of a switch goes.

Brings up a 3-CN lab on its own SSH port and migrates the running zone web0
back and forth between cn1 and cn2 RUNS times (default 5; each switched job
is cleaned up before the next), with a small delta (1 MiB written just
before each job).  For each run it reads the job's journal (`migctl show -v
-j`) and prints the downtime and its parts:

  remote_ms   the remote commands of the downtime window that the issue
              names: stop, final snapshot and send, attach, start
  other_ms    the other actions inside the window (each named, with its ms)
  daemon_ms   the downtime less the remote commands' own durations (the
              job's downtime_breakdown.daemon_ms when migd reports it; else
              the downtime less the window's action durations)

and ends with the medians:

  median downtime_ms=N remote_ms=N daemon_ms=N ratio=R

(ratio: downtime_ms / remote_ms).  Run as root:
tests/bench/bench_downtime.py BUILD_DIR
"""
import json
import os
import re
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'lab'))
sys.path.insert(0, os.path.join(HERE, '..', 'system'))
import lab as labmod  # noqa: E402
from migd_daemon import Migd  # noqa: E402
from helpers import waiter  # noqa: E402

wait = waiter(300, step=0.1, error=RuntimeError)

RUNS = int(os.environ.get('BENCH_RUNS', 5))
PORT = int(os.environ.get('BENCH_SSH_PORT', 2323))

# The remote commands of a switch the issue counts, by action name prefix.
REMOTE = {'stop': ('switch.stop_source',),
          'final_send': ('switch.snapshot@final', 'switch.send@final'),
          'attach': ('switch.attach_target', 'switch.show_target'),
          'start': ('switch.start_target',)}


def breakdown(job, actions):
    """(remote parts, other window actions, daemon_ms) of one switched job."""
    window = []
    inside = False
    for a in actions:
        if a['action'] == 'switch.stop_source':
            inside = True
        if inside:
            window.append(a)
        if a['action'] == 'switch.start_target':
            break
    parts = {k: sum(a['duration_ms'] or 0 for a in window
                    if any(a['action'].startswith(p) for p in prefixes))
             for k, prefixes in REMOTE.items()}
    counted = {a['action'] for a in window
               if any(a['action'].startswith(p) for ps in REMOTE.values() for p in ps)}
    others = [(a['action'], a['duration_ms'] or 0) for a in window
              if a['action'] not in counted]
    reported = job.get('downtime_breakdown') or {}
    if isinstance(reported, dict) and 'daemon_ms' in reported:
        daemon = reported['daemon_ms']
    else:
        daemon = job['downtime_ms'] - sum(a['duration_ms'] or 0 for a in window)
    return parts, others, daemon


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else 'build')
    work = tempfile.mkdtemp(prefix='migd-bench-downtime-')
    lab = labmod.Lab(os.path.join(work, 'lab'), cns=3, ssh_port=PORT, data_mb=1)
    lab.up()
    d = Migd(lab, build, os.path.join(work, 'migd'), log_level='info').start()
    rows = []
    try:
        v = lab.vms['web0']
        here = v['cn']
        for run in range(1, RUNS + 1):
            there = lab.cns[1] if here.n == 1 else lab.cns[0]
            lab.cn_run(here, 'head -c 1M /dev/urandom > /zones/%s/root/delta.bin && sync'
                       % v['uuid'])
            p = d.ctl('migrate', '-w', v['uuid'], there.hostname)
            if p.returncode != 0:
                raise RuntimeError(p.stderr + d.log_text()[-3000:])
            job_uuid = re.search(r'[0-9a-f-]{36}', p.stdout).group(0)
            shown = json.loads(d.ctl('show', '-v', '-j', job_uuid).stdout)
            parts, others, daemon = breakdown(shown, shown['actions'])
            remote = sum(parts.values())
            rows.append((shown['downtime_ms'], remote, daemon))
            print('run %d %s->%s downtime_ms=%d remote_ms=%d (stop=%d final_send=%d attach=%d '
                  'start=%d) daemon_ms=%d other=[%s]'
                  % (run, here.hostname, there.hostname, shown['downtime_ms'], remote,
                     parts['stop'], parts['final_send'], parts['attach'], parts['start'], daemon,
                     ', '.join('%s=%d' % o for o in others)))
            sys.stdout.flush()
            assert d.ctl('cleanup', job_uuid).returncode == 0
            wait(lambda: d.job(job_uuid)['state'] == 'succeeded', 'the cleanup')
            here = there
        med = [statistics.median(col) for col in zip(*rows)]
        print('median downtime_ms=%d remote_ms=%d daemon_ms=%d ratio=%.2f'
              % (med[0], med[1], med[2], med[0] / med[1] if med[1] else 0))
    finally:
        d.stop()
        lab.down()


if __name__ == '__main__':
    main()
