"""GET /metrics and the database's secrets, through the real migd against
the lab: after a real migration (a running zone, incremental, direct
transfer) the Prometheus text passes `promtool check metrics` with nothing
to say, and carries the migration's bytes, downtime and duration.  On the
way: a database file left 0644 is made 0600 at start (with its -wal and
-shm), a job key directory a crash left beside the database is removed at
start, and the direct job's private key, present in the database files
while the job waits, is in neither the database nor its WAL once the job
has forgotten it.
"""
import json
import os
import re
import sqlite3
import stat
import subprocess

import pytest

from helpers import unix_get, wait_state
from migd_daemon import Migd, serving

PROMTOOL = '/usr/bin/promtool'


@pytest.fixture(scope='module')
def migd(lab, build_dir, tmp_path_factory):
    d = Migd(lab, build_dir, tmp_path_factory.mktemp('migd'), incremental={'interval_s': 3600})
    db = d.config['db']
    # What an older migd, a restore or a crash left: a world-readable database
    # and a job key directory, private key and all.
    open(db, 'wb').close()
    os.chmod(db, 0o644)
    left = os.path.join(os.path.dirname(db), 'migd-key.Crash1')
    os.mkdir(left, 0o700)
    with open(os.path.join(left, 'id'), 'w') as f:
        f.write('-----BEGIN OPENSSH PRIVATE KEY-----\nleft by a crash\n')
    d.left_key_dir = left
    d.start()
    yield from serving(d)


def get_metrics(migd):
    head, _, body = unix_get(migd.socket, '/metrics', timeout=30).partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 200'), head
    return body.decode()


def db_bytes(db):
    """The database file and its WAL, as they are on disk."""
    out = b''
    for suffix in ('', '-wal'):
        try:
            with open(db + suffix, 'rb') as f:
                out += f.read()
        except FileNotFoundError:
            pass
    return out


def stored_key(db, job):
    """The job's private key as its stored record holds it ('' when none)."""
    conn = sqlite3.connect('file:%s?mode=ro' % db, uri=True)
    try:
        rec = json.loads(conn.execute('SELECT record FROM jobs WHERE uuid = ?',
                                      (job,)).fetchone()[0])
    finally:
        conn.close()

    def find(o):
        if isinstance(o, dict):
            if o.get('direct_key'):
                return o['direct_key']
            return next((k for k in map(find, o.values()) if k), '')
        if isinstance(o, list):
            return next((k for k in map(find, o) if k), '')
        return ''
    return find(rec)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_start_makes_files_private_and_removes_left_keys(migd):
    db = migd.config['db']
    for suffix in ('', '-wal', '-shm'):
        assert mode(db + suffix) == 0o600, (suffix, oct(mode(db + suffix)))
    assert not os.path.exists(migd.left_key_dir)
    assert 'migd-key.Crash1: a job key directory left by a crash' in migd.log_text()


def test_metrics_pass_promtool_after_a_direct_migration(lab, migd):
    v = lab.vms['web0']
    server = lab.api('vmapi', 'GET', '/vms/%s' % v['uuid'])[1]['server_uuid']
    dst = [cn for cn in lab.cns if cn.uuid != server][0]
    src = [cn for cn in lab.cns if cn.uuid == server][0]
    # A direct stream's bytes are counted from zfs send -v's lines, printed once
    # a second (none for the last part of a second, as illumos): the first send
    # is held to 1 MiB/s so that it lasts seconds, not a fraction of one.
    lab.cn_throttle(src, 'zfs', args=r'^send -R', bytes_per_s=1 << 20, count=1, stream='stdout')
    try:
        p = migd.ctl('migrate', '-i', '--transfer', 'direct', v['uuid'], dst.hostname)
        assert p.returncode == 0, p.stderr
        job = re.search(r'[0-9a-f-]{36}', p.stdout).group(0)
        wait_state(migd, job, ('waiting',))
    finally:
        lab.cn_faults_clear(src)

    # While the job waits its key is in its record, so in the files: the search sees it.
    db = migd.config['db']
    key = stored_key(db, job)
    assert 'BEGIN OPENSSH PRIVATE KEY' in key
    body = max(key.splitlines(), key=len).encode()
    assert len(body) >= 60 and body in db_bytes(db)

    p = migd.ctl('finish', job)
    assert p.returncode == 0, p.stderr
    j = wait_state(migd, job, ('switched', 'failed', 'aborted'))
    assert j['state'] == 'switched', j
    assert stored_key(db, job) == ''
    data = db_bytes(db)
    assert body not in data
    assert b'BEGIN OPENSSH PRIVATE KEY' not in data
    assert 'its private key was wiped from the database' in migd.log_text()
    for suffix in ('', '-wal', '-shm'):
        if os.path.exists(db + suffix):
            assert mode(db + suffix) == 0o600, suffix

    text = get_metrics(migd)
    # The migration counted, under the renamed metrics, in base units.
    sent = [int(n) for n in re.findall(r'^migd_bytes_sent_total\{source="[^"]*",target="%s"\} (\d+)$'
                                       % re.escape(dst.hostname), text, re.M)]
    measured = sum(r['bytes'] for r in j['rounds'])
    assert sent and sent[0] >= measured > 0, (j['rounds'], text)
    assert re.search(r'^migd_jobs\{state="switched"\} 1$', text, re.M), text
    down = re.search(r'^migd_downtime_seconds_count (\d+)$', text, re.M)
    assert down and int(down.group(1)) >= 1, text
    down_sum = float(re.search(r'^migd_downtime_seconds_sum (\S+)$', text, re.M).group(1))
    assert abs(down_sum - j['downtime_ms'] / 1000) < 0.01, (down_sum, j['downtime_ms'])
    # Buckets in seconds: the downtime's first is half a second, the duration's ten seconds.
    assert re.search(r'^migd_downtime_seconds_bucket\{le="0.5"\} \d+$', text, re.M), text
    assert re.search(r'^migd_job_duration_seconds_bucket\{le="10"\} \d+$', text, re.M), text
    assert re.search(r'^# TYPE migd_transfer_rate_bytes_per_second gauge$', text, re.M), text
    for old in ('migd_downtime_ms', 'migd_job_duration_ms', 'migd_bytes_sent{',
                'migd_transfer_rate_bytes '):
        assert old not in text, old

    p = subprocess.run([PROMTOOL, 'check', 'metrics'], input=text, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and p.stdout == '' and p.stderr == '', (
        'promtool check metrics: exit %d\n%s%s\n%s' % (p.returncode, p.stdout, p.stderr, text))
