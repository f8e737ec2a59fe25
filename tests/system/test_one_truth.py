"""One daemon, one truth: the database is migd's memory, and every way it can
fail is met by stopping, saying so, and changing nothing.

A second migd on the same database refuses at once; a store write that
fails answers 500 and pauses the job it belongs to until the database can
be written; a job row that cannot be read is reported, never hides the
others, never stops the daemon.  Operators' actions take effect at once:
an abort cuts a running transfer; a rollback runs as a job that `watch`
follows to its end.  And the release binary under valgrind.
"""
import functools
import json
import os
import re
import sqlite3
import subprocess
import time

import pytest

import helpers
from helpers import home, other, state_of, submit, vm_and_cns
from migd_daemon import Migd

# This module polls every 0.1 s.
wait_for = helpers.waiter(120, step=0.1)
settle = functools.partial(helpers.settle, timeout=120, step=0.1, first_end=False)


def test_second_migd_on_the_same_database_refuses(lab, build_dir, tmp_path):
    first = Migd(lab, build_dir, tmp_path / 'a').start()
    try:
        v = lab.vms['web0']
        job_uuid = submit(first, '-i', v['uuid'], other(lab, home(lab, v['uuid'])).hostname)
        wait_for(lambda: state_of(first, job_uuid) == 'waiting', 'the first round')
        second = Migd(lab, build_dir, tmp_path / 'b')
        second.config['db'] = first.config['db']  # same database, another socket
        os.makedirs(second.workdir, exist_ok=True)
        with open(second.config_path, 'w') as f:
            json.dump(second.config, f)
        p = subprocess.run([os.path.join(str(build_dir), 'migd'), '-f', second.config_path],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 1, p
        assert 'in use by another migd (pid %d)' % first.proc.pid in p.stderr, p.stderr
        assert not os.path.exists(second.socket)
        # The first one still owns its job, untouched.
        job = first.job(job_uuid)
        assert job['state'] == 'waiting' and job['error'] is None
        assert first.ctl('abort', job_uuid).returncode == 0
        wait_for(lambda: state_of(first, job_uuid) == 'aborted', 'the abort')
    finally:
        assert first.stop() == 0


@pytest.fixture
def small_fs(tmp_path):
    """A 24 MiB tmpfs for a database that can fill up."""
    mnt = tmp_path / 'small'
    mnt.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', str(mnt)], check=True)
    yield mnt
    subprocess.run(['umount', '-l', str(mnt)], check=False)


def pauses_and_moves_nothing(lab, d, job_uuid, vm_uuid, timeout, still_s, what):
    """Waits up to timeout s for the job's activity to say it is paused (while
    what: a storage fault), prints it, then checks that nothing of the VM
    moves for still_s s."""
    paused = wait_for(lambda: (lambda j: j if 'paused' in (j['activity'] or '') else None)(
        d.job(job_uuid)), 'the job to pause', timeout)
    print('while %s: %s' % (what, paused['activity']))
    place = lab.vm_placement(vm_uuid)
    time.sleep(still_s)
    assert lab.vm_placement(vm_uuid) == place, 'something moved while %s' % what


def test_full_disk_makes_abort_answer_500_and_nothing_moves(lab, build_dir, tmp_path, small_fs):
    d = Migd(lab, build_dir, tmp_path / 'migd', incremental={'interval_s': 1})
    d.config['db'] = str(small_fs / 'migd.sqlite')
    d.start()
    filler = small_fs / 'filler'
    try:
        v = lab.vms['lx0']
        job_uuid = submit(d, '-i', v['uuid'], other(lab, home(lab, v['uuid'])).hostname)
        wait_for(lambda: state_of(d, job_uuid) == 'waiting', 'the first round')
        # The disk fills up: nothing may be written, so nothing may be done.
        subprocess.run(['dd', 'if=/dev/zero', 'of=%s' % filler, 'bs=1M'], capture_output=True)
        p = d.ctl('abort', job_uuid)
        assert p.returncode == 1, p
        assert 'DatabaseError' in p.stderr and 'nothing was changed' in p.stderr, p.stderr
        job = d.job(job_uuid)
        assert job['aborting'] is False and job['state'] == 'waiting', job
        pauses_and_moves_nothing(lab, d, job_uuid, v['uuid'], 30, 4, 'the disk is full')
        # Space is back: the abort is taken and the job rolls back.
        filler.unlink()
        assert d.ctl('abort', job_uuid).returncode == 0
        wait_for(lambda: state_of(d, job_uuid) == 'aborted', 'the abort', 120)
        src = home(lab, v['uuid'])
        assert lab.vm_placement(v['uuid'])[other(lab, src).n]['datasets'] == []
    finally:
        assert d.stop() == 0


def chattr_works(path):
    p = subprocess.run(['chattr', '+i', str(path)], capture_output=True)
    if p.returncode != 0:
        return False
    subprocess.run(['chattr', '-i', str(path)], check=True)
    return True


def test_read_only_database_pauses_the_job(lab, build_dir, tmp_path):
    probe = tmp_path / 'probe'
    probe.write_text('x')
    if not chattr_works(probe):
        pytest.skip('the test directory\'s file system has no immutable flag (chattr +i)')
    d = Migd(lab, build_dir, tmp_path / 'migd', transfer={'limit_mbps': 40}).start()
    files = [d.config['db'], d.config['db'] + '-wal']
    v = lab.vms['stopped0']
    src = home(lab, v['uuid'])
    lab.cn_run(src, 'head -c 40M /dev/urandom > /zones/%s/root/bulk.bin && sync' % v['uuid'],
               timeout=300)
    try:
        job_uuid = submit(d, v['uuid'], other(lab, src).hostname)
        wait_for(lambda: d.job(job_uuid)['progress']['bytes_sent'] > 4 << 20, 'bytes to flow')
        # The database becomes read-only (immutable: root cannot write it either).
        for f in files:
            subprocess.run(['chattr', '+i', f], check=True)
        pauses_and_moves_nothing(lab, d, job_uuid, v['uuid'], 60, 6, 'the database is read-only')
        assert d.job(job_uuid)['state'] == 'running'
        for f in files:
            subprocess.run(['chattr', '-i', f], check=True)
        wait_for(lambda: state_of(d, job_uuid) == 'switched', 'the job to go on', 300)
        assert 'paused' not in (d.job(job_uuid)['activity'] or '')
        settle(d, job_uuid)
    finally:
        for f in files:
            subprocess.run(['chattr', '-i', f], check=False)
        assert d.stop() == 0
        lab.cn_run(home(lab, v['uuid']), 'rm -f /zones/%s/root/bulk.bin' % v['uuid'])


def test_read_only_database_is_refused_at_start(lab, build_dir, tmp_path):
    d = Migd(lab, build_dir, tmp_path / 'migd')
    d.start()
    assert d.stop() == 0
    probe = tmp_path / 'probe'
    probe.write_text('x')
    if not chattr_works(probe):
        pytest.skip('the test directory\'s file system has no immutable flag (chattr +i)')
    files = [d.config['db'], d.config['db'] + '-wal']
    for f in files:
        if os.path.exists(f):
            subprocess.run(['chattr', '+i', f], check=True)
    try:
        p = subprocess.run([os.path.join(str(build_dir), 'migd'), '-f', d.config_path],
                           capture_output=True, text=True, timeout=30)
    finally:
        for f in files:
            if os.path.exists(f):
                subprocess.run(['chattr', '-i', f], check=False)
    assert p.returncode == 1, p
    assert 'cannot be written' in p.stderr, p.stderr


def test_unreadable_job_row_is_reported_and_hides_nothing(lab, build_dir, tmp_path):
    d = Migd(lab, build_dir, tmp_path / 'migd').start()
    v = lab.vms['web0']
    ok = submit(d, '-i', v['uuid'], other(lab, home(lab, v['uuid'])).hostname)
    wait_for(lambda: state_of(d, ok) == 'waiting', 'the first round')
    assert d.ctl('abort', ok).returncode == 0
    wait_for(lambda: state_of(d, ok) == 'aborted', 'the abort')
    # A second job, left unfinished, whose row then becomes unreadable.
    w = lab.vms['lx0']
    bad = submit(d, '-i', w['uuid'], other(lab, home(lab, w['uuid'])).hostname)
    wait_for(lambda: state_of(d, bad) == 'waiting', 'its first round')
    assert d.stop() == 0
    db = sqlite3.connect(d.config['db'])
    record = db.execute('SELECT record FROM jobs WHERE uuid = ?', (bad,)).fetchone()[0]
    db.execute("UPDATE jobs SET record = '{not json' WHERE uuid = ?", (bad,))
    db.commit()
    db.close()
    d.start()
    try:
        jobs = d.jobs()
        by_uuid = {j['uuid']: j for j in jobs}
        assert by_uuid[ok]['state'] == 'aborted'
        assert by_uuid[bad]['error']['code'] == 'UnreadableRecord', by_uuid[bad]
        p = d.ctl('show', '-j', bad)
        assert p.returncode == 0 and json.loads(p.stdout)['error']['code'] == 'UnreadableRecord'
        status = json.loads(d.ctl('status', '-j').stdout)
        assert status['jobs']['aborted'] >= 1, status
        assert status.get('unreadable') == 1, status
        assert 'cannot be read' in d.log_text()
        # Its VM stays busy until an operator looks; other VMs migrate as usual.
        p = d.ctl('migrate', '-n', w['uuid'], 'cn3')
        assert p.returncode == 1 and 'VmAlreadyMigrating' in p.stderr, p.stderr
        job = submit(d, v['uuid'], other(lab, home(lab, v['uuid'])).hostname)
        wait_for(lambda: state_of(d, job) == 'switched', 'another job to run', 300)
        settle(d, job)
    finally:
        assert d.stop() == 0
    # The operator repairs the row; the job is then resumed and can be aborted.
    db = sqlite3.connect(d.config['db'])
    db.execute('UPDATE jobs SET record = ? WHERE uuid = ?', (record, bad))
    db.commit()
    db.close()
    d.start()
    try:
        wait_for(lambda: state_of(d, bad) == 'waiting', 'the repaired job')
        assert d.ctl('abort', bad).returncode == 0
        wait_for(lambda: state_of(d, bad) == 'aborted', 'its abort')
    finally:
        assert d.stop() == 0


def test_abort_during_a_long_send_ends_within_10_s(lab, build_dir, tmp_path):
    d = Migd(lab, build_dir, tmp_path / 'migd', transfer={'limit_mbps': 24}).start()
    v, src, dst = vm_and_cns(lab, 'lx0')
    lab.cn_run(src, 'head -c 200M /dev/urandom > /zones/%s/root/bulk.bin && sync' % v['uuid'],
               timeout=300)
    try:
        job_uuid = submit(d, v['uuid'], dst.hostname)
        wait_for(lambda: d.job(job_uuid)['progress']['bytes_sent'] > 8 << 20, 'bytes to flow')
        t0 = time.monotonic()
        p = d.ctl('abort', job_uuid)
        assert p.returncode == 0, p.stderr
        assert d.job(job_uuid)['aborting'] is True
        job = wait_for(lambda: (lambda j: j if j['state'] == 'aborted' else None)(
            d.job(job_uuid)), 'the abort', 30, step=0.05)
        took = time.monotonic() - t0
        print('abort during a 200 MiB send at 3 MB/s: aborted after %.1f s, %d bytes sent'
              % (took, job['progress']['bytes_sent']))
        assert took < 10, took
        assert job['aborting'] is False
        place = lab.vm_placement(v['uuid'])
        assert place[dst.n]['zone_state'] is None and place[dst.n]['datasets'] == [], place
        assert place[src.n]['running'] and not place[src.n]['hidden']
        assert not any('migd-' in s for s in place[src.n]['snapshots'])
    finally:
        assert d.stop() == 0
        lab.cn_run(src, 'rm -f /zones/%s/root/bulk.bin' % v['uuid'])


def test_watch_follows_a_rollback_to_its_end(lab, build_dir, tmp_path):
    d = Migd(lab, build_dir, tmp_path / 'migd').start()
    v = lab.vms['web0']
    src = home(lab, v['uuid'])
    try:
        job_uuid = submit(d, v['uuid'], other(lab, src).hostname)
        wait_for(lambda: state_of(d, job_uuid) == 'switched', 'the switch', 300)
        assert d.ctl('rollback', job_uuid).returncode == 0
        job = d.job(job_uuid)
        assert job['state'] == 'running' and job['phase'] == 'rollback', job
        # A second action while it runs is refused, saying what is in progress.
        p = d.ctl('cleanup', job_uuid)
        assert p.returncode == 1 and 'moving back to its source' in p.stderr, p.stderr
        w = d.ctl('watch', job_uuid)
        assert w.returncode == 0, w.stderr
        assert 'rollback' in w.stdout, w.stdout
        assert 'rolled back' in w.stdout.splitlines()[-1], w.stdout
        # It exited only once the VM was back on the source.
        assert d.job(job_uuid)['state'] == 'rolled_back'
        place = lab.vm_placement(v['uuid'])
        assert place[src.n]['running'] and not place[src.n]['hidden']
        assert place[other(lab, src).n]['zone_state'] is None
    finally:
        assert d.stop() == 0


def test_release_build_under_valgrind(lab, build_dir, tmp_path):
    """The shipped binary through a migration, an abort and failures: no invalid
    access, no definite leak (valgrind; the ASan build cannot see into libuv)."""
    release = os.environ.get('MIGD_RELEASE_BUILD_DIR')
    if not release or not os.path.exists(os.path.join(release, 'migd')):
        pytest.skip('no release build (tests/run.sh makes one in build-release)')
    vlog = tmp_path / 'valgrind.log'
    d = Migd(lab, release, tmp_path / 'migd', incremental={'interval_s': 1})
    d.start(timeout=120, argv_prefix=['valgrind', '--leak-check=full',
                                      '--errors-for-leak-kinds=definite',
                                      '--log-file=%s' % vlog])
    try:
        v = lab.vms['web0']
        job = submit(d, v['uuid'], other(lab, home(lab, v['uuid'])).hostname)
        wait_for(lambda: state_of(d, job) == 'switched', 'the migration', 600)
        settle(d, job)
        w = lab.vms['lx0']
        job = submit(d, '-i', w['uuid'], other(lab, home(lab, w['uuid'])).hostname)
        wait_for(lambda: state_of(d, job) == 'waiting', 'a round', 600)
        assert d.ctl('abort', job).returncode == 0
        wait_for(lambda: state_of(d, job) == 'aborted', 'the abort', 600)
        # Failures: an API that answers 500, an unknown VM, malformed input.
        lab.api_fault('cnapi', 'GET', '^/servers', 500, count=10)
        assert d.ctl('migrate', w['uuid'], 'cn3').returncode == 1
        lab._admin('POST', '/__lab/faults/clear', name='cnapi')
        assert d.ctl('migrate', '00000000-0000-4000-8000-00000000dead').returncode == 1
        assert d.ctl('show', 'not-a-uuid').returncode == 2
    finally:
        assert d.stop(timeout=120) == 0
    text = vlog.read_text()
    summary = re.search(r'ERROR SUMMARY: (\d+) errors', text)
    definite = re.search(r'definitely lost: ([\d,]+) bytes', text)
    print('valgrind: %s; %s' % (summary.group(0) if summary else '?',
                                definite.group(0) if definite else 'no leak summary'))
    assert summary and summary.group(1) == '0', text[-4000:]
    assert definite is None or definite.group(1) == '0', text[-4000:]
