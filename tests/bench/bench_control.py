#!/usr/bin/env python3
"""The control API benchmark: latency with 20,000 jobs stored, during a migration.

Brings up a 3-CN lab on its own SSH port and a migd, and:
  1. migrates stopped0 to cn2 and cleans it up, to have a job record as migd
     writes it; stops migd and stores JOBS (default 20,000) copies of that
     row as finished jobs (new job and VM uuids, created one ms apart)
     straight into migd's SQLite database; starts migd again;
  2. writes DATA_MB (default 160) into web0 and throttles `zfs send` on every
     CN to RATE_MIB (default 4) MiB/s, as a link would;
  3. idle: migrates web0 to the other CN (`migctl migrate -w`) with nothing
     else asking migd, and cleans it up;
  4. loaded: migrates web0 back and, until it switches, measures
     GET /ping, `migctl list` (the binary, default page) and its GET /jobs,
     every page of GET /jobs?all=true (limit 1000, offset, until a page is
     short: what `migctl list -a` fetches; timed here in Python over the Unix
     socket) and GET /metrics: first each call alone, in turn (ALONE_S,
     default 15 s), then together: /ping and /metrics asked by two other
     processes every 50 and 100 ms while `migctl list` and list -a run.
Prints p50 and p99 of each (targets: p99 under 50 ms for each but list -a;
/ping's p99 in the together section under 10 ms, on a line of its own)
and the two migrations' rates (the first round's bytes over its duration;
target: the loaded one within 10% of the idle one).  A benchmark: it prints
numbers and does not judge them.  Run as root: tests/bench/bench_control.py BUILD_DIR
"""
import json
import multiprocessing
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid as uuidlib

from benchlab import build_dir, lab_up, migd_up
from helpers import home, waiter  # from tests/system, on the path benchlab set

wait = waiter(600, step=0.1, error=RuntimeError)

JOBS = int(os.environ.get('BENCH_JOBS', 20000))
DATA_MB = int(os.environ.get('BENCH_DATA_MB', 160))
ALONE_S = float(os.environ.get('BENCH_ALONE_S', 15))
RATE_MIB = float(os.environ.get('BENCH_RATE_MIB', 4))
PORT = int(os.environ.get('BENCH_SSH_PORT', 2324))
PAGE = 1000


def get(sock_path, path):
    """GET path on a new connection: (status, body bytes, seconds)."""
    t = time.monotonic()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    s.sendall(b'GET %s HTTP/1.1\r\nHost: migd\r\n\r\n' % path.encode())
    chunks = []
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        chunks.append(b)
    s.close()
    took = time.monotonic() - t
    raw = b''.join(chunks)
    head, _, body = raw.partition(b'\r\n\r\n')
    if b'\r\ntransfer-encoding: chunked' in head.lower():
        body = dechunk(body)
    return int(head.split(b' ', 2)[1]), body, took


def dechunk(body):
    """The payload of a chunked body (a page of GET /jobs is sent in slices)."""
    out = []
    while True:
        size, _, body = body.partition(b'\r\n')
        n = int(size.split(b';')[0] or b'0', 16)
        if n == 0:
            return b''.join(out)
        out.append(body[:n])
        body = body[n + 2:]


def list_all(sock_path):
    """Every page of GET /jobs?all=true: (jobs, pages, bytes, seconds)."""
    t = time.monotonic()
    jobs, pages, size, offset = 0, 0, 0, 0
    while True:
        status, body, _ = get(sock_path, '/jobs?all=true&limit=%d&offset=%d' % (PAGE, offset))
        if status != 200:
            raise RuntimeError('GET /jobs: %d %s' % (status, body[:200]))
        page = json.loads(body)
        jobs += len(page)
        pages += 1
        size += len(body)
        if len(page) < PAGE:
            return jobs, pages, size, time.monotonic() - t
        offset += PAGE


def sampler(sock_path, path, interval, stop, out):
    """In its own process (no GIL shared with the lists): GET path every interval s."""
    lat = []
    while not stop.is_set():
        status, _, took = get(sock_path, path)
        lat.append(took if status == 200 else float('inf'))
        time.sleep(interval)
    out.put(lat)


def migrate(d, vm_uuid, target, wait_done=True):
    args = ['migrate'] + (['-w'] if wait_done else []) + [vm_uuid, target]
    p = d.ctl(*args)
    if p.returncode != 0:
        raise RuntimeError('migctl %s: %s\n%s' % (' '.join(args), p.stderr, d.log_text()[-3000:]))
    return re.search(r'[0-9a-f-]{36}', p.stdout).group(0)


def cleanup(d, job_uuid):
    p = d.ctl('cleanup', job_uuid)
    if p.returncode != 0:
        raise RuntimeError('migctl cleanup: ' + p.stderr)
    wait(lambda: d.job(job_uuid)['state'] == 'succeeded', 'the cleanup of ' + job_uuid)


def store_jobs(db, model_uuid, n):
    """Stores n finished jobs shaped as model_uuid's row; returns the record's size."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    row = dict(con.execute('SELECT * FROM jobs WHERE uuid = ?', (model_uuid,)).fetchone())
    record = json.loads(row['record'])
    cols = list(row)
    sql = 'INSERT INTO jobs (%s) VALUES (%s)' % (', '.join(cols), ', '.join('?' * len(cols)))
    base = row['created'] - n - 1000
    rows = []
    for i in range(n):
        job, vm = str(uuidlib.uuid4()), str(uuidlib.uuid4())
        record['uuid'], record['vm_uuid'] = job, vm
        r = dict(row, uuid=job, vm_uuid=vm, created=base + i, updated=base + i,
                 record=json.dumps(record, separators=(',', ':')))
        rows.append([r[c] for c in cols])
    with con:
        con.executemany(sql, rows)
    con.close()
    return len(row['record'])


def first_round_rate(job):
    """Bytes per second of the job's first send, from its rounds (else its progress)."""
    rounds = job.get('rounds') or []
    if rounds and rounds[0].get('duration_ms'):
        return rounds[0]['bytes'] * 1000.0 / rounds[0]['duration_ms'], rounds[0]['bytes']
    p = job['progress']
    return p.get('rate_bytes_s') or 0, p.get('bytes_total') or 0


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main():
    build = build_dir()
    work, lab = lab_up('migd-bench-control-', 3, PORT)
    d = migd_up(lab, build, work, incremental={'interval_s': 3600})
    try:
        # 1. A record as migd writes it, then JOBS of them.
        small = lab.vms['stopped0']['uuid']
        model = migrate(d, small, 'cn2')
        cleanup(d, model)
        assert d.stop() == 0
        size = store_jobs(d.config['db'], model, JOBS)
        t = time.monotonic()
        d.start(timeout=120)
        print('stored %d finished jobs (records of %d bytes, as job %s); migd answered %.2f s '
              'after start' % (JOBS, size, model, time.monotonic() - t))
        sys.stdout.flush()

        # 2. A VM with data and a link of RATE_MIB.
        v = lab.vms['web0']
        src = home(lab, v['uuid'])
        lab.cn_run(src, 'head -c %dM /dev/urandom > /zones/%s/root/bench.bin && sync'
                   % (DATA_MB, v['uuid']), timeout=600)
        for cn in lab.cns:
            lab.cn_throttle(cn, 'zfs', args=r'^send', bytes_per_s=int(RATE_MIB * (1 << 20)))

        # 3. Idle.
        there = lab.cns[1] if src.n == 1 else lab.cns[0]
        job = migrate(d, v['uuid'], there.hostname)
        idle_rate, idle_bytes = first_round_rate(d.job(job))
        cleanup(d, job)
        print('idle:   %s -> %s: first send %d bytes at %.2f MiB/s'
              % (src.hostname, there.hostname, idle_bytes, idle_rate / (1 << 20)))
        sys.stdout.flush()

        # 4. Loaded: the same VM back, with the API asked all the time.
        job = migrate(d, v['uuid'], src.hostname, wait_done=False)
        ctl = os.path.join(build, 'migctl')
        env = dict(os.environ, MIGD_SOCKET=d.socket)

        def moving():
            return d.job(job)['state'] in ('queued', 'running')

        def ctl_list():
            t = time.monotonic()
            p = subprocess.run([ctl, 'list'], env=env, capture_output=True)
            if p.returncode != 0:
                raise RuntimeError('migctl list: ' + p.stderr.decode())
            return time.monotonic() - t

        alone = {k: [] for k in ('ping', 'metrics', 'page', 'list', 'all')}
        listed = None
        t0 = time.monotonic()
        n = 0
        while moving() and time.monotonic() - t0 < ALONE_S:
            alone['ping'].append(get(d.socket, '/ping')[2])
            alone['metrics'].append(get(d.socket, '/metrics')[2])
            alone['page'].append(get(d.socket, '/jobs?limit=%d&offset=0' % PAGE)[2])
            alone['list'].append(ctl_list())
            if n % 4 == 0:
                listed = list_all(d.socket)
                alone['all'].append(listed[3])
            n += 1
        together = {k: [] for k in ('list', 'all')}
        stop = multiprocessing.Event()
        outs = [multiprocessing.Queue(), multiprocessing.Queue()]
        procs = [multiprocessing.Process(target=sampler, args=(d.socket, path, every, stop, q))
                 for path, every, q in (('/ping', 0.05, outs[0]), ('/metrics', 0.1, outs[1]))]
        for p in procs:
            p.start()
        while moving():
            together['list'].append(ctl_list())
            listed = list_all(d.socket)
            together['all'].append(listed[3])
        stop.set()
        together['ping'], together['metrics'] = outs[0].get(), outs[1].get()
        for p in procs:
            p.join()
        final = wait(lambda: (lambda j: j if j['state'] not in ('queued', 'running')
                              else None)(d.job(job)), 'the loaded migration')
        loaded_rate, loaded_bytes = first_round_rate(final)
        print('loaded: %s -> %s: first send %d bytes at %.2f MiB/s (%s); %.1f%% of idle '
              '(target: within 10%%)'
              % (there.hostname, src.hostname, loaded_bytes, loaded_rate / (1 << 20),
                 final['state'], 100.0 * loaded_rate / idle_rate if idle_rate else 0))
        names = [('ping', 'GET /ping', True), ('list', 'migctl list', True),
                 ('page', '  its GET /jobs?limit=%d&offset=0' % PAGE, True),
                 ('all', 'migctl list -a: %d pages, %d jobs, %.1f MB' % (
                     listed[1], listed[0], listed[2] / 1e6), False),
                 ('metrics', 'GET /metrics', True)]
        for title, got in (('each alone, in turn', alone),
                           ('together: /ping and /metrics while migctl list and list -a run',
                            together)):
            print(title + ':')
            for key, name, target in names:
                values = got.get(key) or []
                if not values:
                    continue
                print('  %-44s n=%-4d p50=%8.1f ms  p99=%8.1f ms%s'
                      % (name, len(values), statistics.median(values) * 1000,
                         pct(values, 99) * 1000, '  (target p99 < 50 ms)' if target else ''))
        ping = together.get('ping') or []
        if ping:
            print('GET /ping while migctl list and list -a page %d jobs: p99 = %.1f ms '
                  '(target: p99 < 10 ms), max = %.1f ms, n = %d'
                  % (JOBS, pct(ping, 99) * 1000, max(ping) * 1000, len(ping)))
    finally:
        d.stop()
        lab.down()


if __name__ == '__main__':
    main()
