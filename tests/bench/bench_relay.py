#!/usr/bin/env python3
"""The relay benchmark: migd's data paths against the OpenSSH pipeline and
ZFS alone.

Brings up a 3-CN lab on its own SSH port, then in one run:
  1. relay: writes DATA_MB (default 320) into web0 on cn1 and migrates it
     to cn2 with the real migd (`migctl migrate -w`), timing the job's sync
     phase from its log; sampling migd's RSS every 100 ms meanwhile;
  1b. direct: the same for stopped0 (filled alike) with `--transfer direct`:
     the source sends straight to the target with the job's key;
  2. pipeline: `ssh cn1 zfs send -R ... | ssh cn2 zfs receive -d zones` of the
     same data (a fresh snapshot of lx0 filled alike, to a pool without it);
  2b. ZFS alone: the same stream sent and received on cn1 (no SSH): the
     lab's physical bound;
  3. transport only: relay_bench (the same mig_ssh_relay code migd uses)
     moving `head -c 1G /dev/zero` into `cat > /dev/null`, against
     `ssh src head -c 1G /dev/zero | ssh dst 'cat > /dev/null'`.
Prints one line per measurement and the ratios.  Run as root from a build
directory: tests/bench/bench_relay.py BUILD_DIR
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'lab'))
sys.path.insert(0, os.path.join(HERE, '..', 'system'))
import lab as labmod  # noqa: E402
from migd_daemon import Migd  # noqa: E402

DATA_MB = int(os.environ.get('BENCH_DATA_MB', 320))
PORT = int(os.environ.get('BENCH_SSH_PORT', 2322))


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


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else 'build')
    work = tempfile.mkdtemp(prefix='migd-bench-')
    lab = labmod.Lab(os.path.join(work, 'lab'), cns=3, ssh_port=PORT, data_mb=1)
    lab.up()
    d = None
    try:
        web, lx = lab.vms['web0'], lab.vms['lx0']
        cn1, cn2, cn3 = lab.cns
        stopped = lab.vms['stopped0']
        for v in (web, lx, stopped):
            lab.cn_run(cn1, 'head -c %dM /dev/urandom > /zones/%s/root/bulk.bin && sync'
                       % (DATA_MB, v['uuid']), timeout=600)
        # 1. migd
        d = Migd(lab, build, os.path.join(work, 'migd'), log_level='info').start()
        rss, stop = [], threading.Event()
        th = threading.Thread(target=rss_sampler, args=(d.proc.pid, rss, stop))
        th.start()
        p = d.ctl('migrate', '-w', web['uuid'], 'cn2', timeout=1800)
        stop.set()
        th.join()
        assert p.returncode == 0, p.stderr
        job = d.jobs()[0]
        sent = job['progress']['bytes_sent']
        migd_s = send_seconds(d, job['uuid'])
        print('migd     relay     bytes=%d seconds=%.2f rate_MBps=%.1f max_rss_kB=%d'
              % (sent, migd_s, sent / migd_s / 1e6, max(rss)))

        # 1b. direct, the same way
        p = d.ctl('migrate', '-w', '--transfer', 'direct', stopped['uuid'], 'cn2', timeout=1800)
        assert p.returncode == 0, p.stderr
        djob = d.job(re.search(r'[0-9a-f-]{36}', p.stdout).group(0))
        assert djob['transfer'] == 'direct', djob
        direct_s = send_seconds(d, djob['uuid'])
        dsent = djob['progress']['bytes_sent']
        print('migd     direct    bytes=%d seconds=%.2f rate_MBps=%.1f'
              % (dsent, direct_s, sent / direct_s / 1e6))
        d.stop()

        # 2. OpenSSH pipeline on the same kind of data (lx0, also DATA_MB, to cn3)
        lab.cn_run(cn3, 'imgadm import -q %s' % lx['image_uuid'])
        lab.cn_run(cn1, 'zfs snapshot -r zones/%s@bench' % lx['uuid'])
        src = ' '.join(lab.ssh_argv(cn1) + ['-c', 'aes128-ctr'])
        dst = ' '.join(lab.ssh_argv(cn3) + ['-c', 'aes128-ctr'])
        pipe_s = timed('%s zfs send -R -I zones/%s@final zones/%s@bench | %s zfs receive -d zones'
                       % (src, lx['image_uuid'], lx['uuid'], dst), shell=True)
        print('openssh  pipeline  bytes~%d seconds=%.2f rate_MBps=%.1f'
              % (sent, pipe_s, sent / pipe_s / 1e6))
        print('ratio migd/openssh (zfs) = %.2f' % (pipe_s / migd_s))

        # 2b. ZFS alone: the same stream, sent and received on cn1
        zfs_s = timed(lab._nsenter(cn1, 'zfs send -I zones/%s@final zones/%s@bench | '
                                        'zfs receive zones/benchcopy' % (lx['image_uuid'], lx['uuid'])))
        print('zfs      alone     bytes~%d seconds=%.2f rate_MBps=%.1f'
              % (sent, zfs_s, sent / zfs_s / 1e6))
        print('ratio direct/relay = %.2f (time: relay %.2f s, direct %.2f s)'
              % (migd_s / direct_s, migd_s, direct_s))
        print('ratio direct/zfs-alone = %.2f' % (zfs_s / direct_s))

        # 3. transport only
        rb = [os.path.join(build, 'tests', 'relay_bench'), '--identity', lab.identity, '--known-hosts',
              lab.known_hosts, '--port', str(PORT)]
        out = subprocess.run(rb + [cn1.ip, 'head -c 1G /dev/zero', cn2.ip, 'cat > /dev/null'],
                             check=True, capture_output=True, text=True).stdout
        m = re.search(r'seconds=([0-9.]+).*maxrss_kB=(\d+)', out)
        relay_s, relay_rss = float(m.group(1)), int(m.group(2))
        print('migd     transport bytes=%d seconds=%.2f rate_MBps=%.1f max_rss_kB=%d'
              % (1 << 30, relay_s, (1 << 30) / relay_s / 1e6, relay_rss))
        ossh_s = timed('%s head -c 1G /dev/zero | %s "cat > /dev/null"'
                       % (' '.join(lab.ssh_argv(cn1) + ['-c', 'aes128-ctr']),
                          ' '.join(lab.ssh_argv(cn2) + ['-c', 'aes128-ctr'])), shell=True)
        print('openssh  transport bytes=%d seconds=%.2f rate_MBps=%.1f'
              % (1 << 30, ossh_s, (1 << 30) / ossh_s / 1e6))
        print('ratio migd/openssh (transport) = %.2f' % (ossh_s / relay_s))
    finally:
        if d is not None:
            d.stop()  # a second stop of a stopped migd does nothing
        lab.down()


if __name__ == '__main__':
    main()
