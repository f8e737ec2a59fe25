#!/usr/bin/env python3
"""The relay benchmark: migd's data paths against the OpenSSH pipeline and
ZFS alone.

Brings up a 3-CN lab on its own SSH port, then in one run, each path RUNS
times (default 3; medians compared):
  1. relay: writes DATA_MB (default 320) into web0 on cn1 and migrates it
     between cn1 and cn2 with the real migd (`migctl migrate -w`, each job
     cleaned up before the next), timing the first round's sends from the
     job's journal; sampling migd's RSS every 100 ms meanwhile;
  1b. direct: the same for stopped0 (filled alike) with `--transfer direct`:
     the source sends straight to the target with the job's key;
  2. pipeline: `ssh cn1 zfs send -R ... | ssh cn3 zfs receive -d zones` of the
     same data (a fresh snapshot of lx0 filled alike, to a pool without it);
  2b. ZFS alone: the same stream sent and received on cn1 (no SSH): the
     lab's physical bound;
  3. transport only: relay_bench (the same mig_ssh_relay code migd uses)
     moving `head -c 1G /dev/zero` into `cat > /dev/null`, against
     `ssh src head -c 1G /dev/zero | ssh dst 'cat > /dev/null'`.
Prints one line per measurement, and ends with the summary line
(tests/bench/README.md): `... relay/openssh=R direct/zfs=R`.  Run as root
from a build directory: tests/bench/bench_relay.py BUILD_DIR
"""
import json
import os
import re
import statistics
import subprocess
import threading
import time

from benchlab import build_dir, lab_up, migd_up
from helpers import waiter  # from tests/system, on the path benchlab set

DATA_MB = int(os.environ.get('BENCH_DATA_MB', 320))
PORT = int(os.environ.get('BENCH_SSH_PORT', 2322))
RUNS = int(os.environ.get('BENCH_RUNS', 3))
wait = waiter(300, step=0.2, error=RuntimeError)


def rss_sampler(pid, out, stop):
    while not stop.is_set():
        try:
            with open('/proc/%d/status' % pid) as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        out.append(int(line.split()[1]))
        except OSError:
            return
        time.sleep(0.1)


def send_seconds(d, job_uuid):
    """The first round's sends of a job, from its journal: first start to last end."""
    def ts(v):
        return time.mktime(time.strptime(v[:19], '%Y-%m-%dT%H:%M:%S')) + int(v[20:23]) / 1000
    acts = json.loads(d.ctl('show', '-v', '-j', job_uuid).stdout)['actions']
    sends = [a for a in acts if a['action'].startswith('sync.send@1')]
    return ts(max(a['ended'] for a in sends)) - ts(min(a['started'] for a in sends))


def timed(argv_or_shell, shell=False):
    t0 = time.monotonic()
    subprocess.run(argv_or_shell, shell=shell, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - t0


def migrate_runs(d, lab, vm, transport, runs):
    """runs migrations of vm back and forth between cn1 and cn2 (each switched
    job cleaned up before the next): [(seconds of its first round's sends,
    bytes sent)], with migd's RSS sampled meanwhile into the returned list."""
    out, rss = [], []
    here, there = 'cn1', 'cn2'
    for _ in range(runs):
        stop = threading.Event()
        th = threading.Thread(target=rss_sampler, args=(d.proc.pid, rss, stop))
        th.start()
        argv = ['migrate', '-w'] + (['--transfer', 'direct'] if transport == 'direct' else [])
        p = d.ctl(*(argv + [vm['uuid'], there]), timeout=1800)
        stop.set()
        th.join()
        assert p.returncode == 0, p.stderr
        job = d.job(re.search(r'[0-9a-f-]{36}', p.stdout).group(0))
        assert job['transfer'] == transport, job
        out.append((send_seconds(d, job['uuid']), job['progress']['bytes_sent']))
        assert d.ctl('cleanup', job['uuid']).returncode == 0
        wait(lambda: d.job(job['uuid'])['state'] == 'succeeded', 'the cleanup')
        here, there = there, here
    return out, rss


def show(name, runs):
    for i, (secs, nbytes) in enumerate(runs, 1):
        print('%-18s run %d bytes=%d seconds=%.2f rate_MBps=%.1f'
              % (name, i, nbytes, secs, nbytes / secs / 1e6))
    med = statistics.median(s for s, _ in runs)
    print('%-18s median seconds=%.2f' % (name, med))
    return med


def main():
    build = build_dir()
    work, lab = lab_up('migd-bench-', 3, PORT)
    d = None
    try:
        web, lx = lab.vms['web0'], lab.vms['lx0']
        cn1, cn2, cn3 = lab.cns
        stopped = lab.vms['stopped0']
        for v in (web, lx, stopped):
            lab.cn_run(cn1, 'head -c %dM /dev/urandom > /zones/%s/root/bulk.bin && sync'
                       % (DATA_MB, v['uuid']), timeout=600)
        # 1. migd: relay (web0) and direct (stopped0), back and forth
        d = migd_up(lab, build, work)
        relay, rss = migrate_runs(d, lab, web, 'relay', RUNS)
        relay_s = show('migd relay', relay)
        print('migd relay         max_rss_kB=%d' % max(rss))
        direct, _ = migrate_runs(d, lab, stopped, 'direct', RUNS)
        direct_s = show('migd direct', direct)
        d.stop()
        sent = statistics.median(b for _, b in relay)

        # 2. OpenSSH pipeline on the same kind of data (lx0, also DATA_MB, to cn3)
        lab.cn_run(cn3, 'imgadm import -q %s' % lx['image_uuid'])
        lab.cn_run(cn1, 'zfs snapshot -r zones/%s@bench' % lx['uuid'])
        src = ' '.join(lab.ssh_argv(cn1) + ['-c', 'aes128-ctr'])
        dst = ' '.join(lab.ssh_argv(cn3) + ['-c', 'aes128-ctr'])
        pipe = []
        for _ in range(RUNS):
            pipe.append((timed('%s zfs send -R -I zones/%s@final zones/%s@bench | '
                               '%s zfs receive -d zones'
                               % (src, lx['image_uuid'], lx['uuid'], dst), shell=True), sent))
            lab.cn_run(cn3, 'zfs destroy -r zones/%s' % lx['uuid'])
        pipe_s = show('openssh pipeline', pipe)

        # 2b. ZFS alone: the same stream, sent and received on cn1
        alone = []
        for _ in range(RUNS):
            alone.append((timed(lab._nsenter(
                cn1, 'zfs send -I zones/%s@final zones/%s@bench | zfs receive zones/benchcopy'
                % (lx['image_uuid'], lx['uuid']))), sent))
            lab.cn_run(cn1, 'zfs destroy -r zones/benchcopy')
        zfs_s = show('zfs alone', alone)

        # 3. transport only
        rb = [os.path.join(build, 'tests', 'relay_bench'), '--identity', lab.identity, '--known-hosts',
              lab.known_hosts, '--port', str(PORT)]
        out = subprocess.run(rb + [cn1.ip, 'head -c 1G /dev/zero', cn2.ip, 'cat > /dev/null'],
                             check=True, capture_output=True, text=True).stdout
        m = re.search(r'seconds=([0-9.]+).*maxrss_kB=(\d+)', out)
        transport_s, transport_rss = float(m.group(1)), int(m.group(2))
        print('migd transport     bytes=%d seconds=%.2f rate_MBps=%.1f max_rss_kB=%d'
              % (1 << 30, transport_s, (1 << 30) / transport_s / 1e6, transport_rss))
        ossh_s = timed('%s head -c 1G /dev/zero | %s "cat > /dev/null"'
                       % (' '.join(lab.ssh_argv(cn1) + ['-c', 'aes128-ctr']),
                          ' '.join(lab.ssh_argv(cn2) + ['-c', 'aes128-ctr'])), shell=True)
        print('openssh transport  bytes=%d seconds=%.2f rate_MBps=%.1f'
              % (1 << 30, ossh_s, (1 << 30) / ossh_s / 1e6))
        print('ratio transport migd/openssh = %.2f' % (ossh_s / transport_s))
        # The line to read (tests/bench/README.md): each ratio > 1 means migd is faster.
        print('summary medians of %d: relay %.2f s, openssh %.2f s, direct %.2f s, zfs alone '
              '%.2f s; relay/openssh=%.2f direct/zfs=%.2f'
              % (RUNS, relay_s, pipe_s, direct_s, zfs_s, pipe_s / relay_s, zfs_s / direct_s))
    finally:
        if d is not None:
            d.stop()  # a second stop of a stopped migd does nothing
        lab.down()


if __name__ == '__main__':
    main()
