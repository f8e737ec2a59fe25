"""The end of a job among other tools on a CN: an interrupted stream frees
what it held at once, a snapshot somebody else holds (a backup tool's
`zfs hold`, its concurrent send) never turns a good migration into a
failure, and what a job could not remove is a leftover it retries, not a
wait.  Through the real binaries against the lab, with the source's send
throttled so that it is still running when it is cut.
"""
import json
import os
import re
import subprocess
import time

import conftest
import helpers
from helpers import other, submit

# This module polls every 0.1 s.
wait_for = helpers.waiter(120, step=0.1)


migd = conftest.migd_fixture()


def ended(migd, job_uuid, states=('switched', 'succeeded', 'failed', 'aborted', 'rolled_back'),
          timeout=300):
    """The job once its state is one of states and it is not aborting (a
    job being aborted has not settled yet)."""
    return helpers.wait_job(migd, job_uuid, lambda j: j['state'] in states and not j.get('aborting'),
                            'job %s to end' % job_uuid, timeout, step=0.1)


def stream_processes(cn):
    """The `zfs send` / `zfs receive` processes that cn's sshd sessions run
    (the lab's CNs share the host's process table: walk sshd's descendants)."""
    listener = int(open(os.path.join(cn.dir, 'sshd.pid')).read())
    out = subprocess.run(['ps', '-e', '-o', 'pid=,ppid=,args='], capture_output=True,
                         text=True).stdout
    procs = {}
    for line in out.splitlines():
        pid, ppid, args = line.strip().split(None, 2) if len(line.split()) > 2 else (
            line.split() + [''])[:3]
        procs[int(pid)] = (int(ppid), args)

    def under(pid):
        while pid in procs and pid != 1:
            if pid == listener:
                return True
            pid = procs[pid][0]
        return False
    return [args for pid, (_, args) in procs.items()
            if under(pid) and re.search(r'zfs (send|receive|recv)', args)]


def snapshots_of(lab, cn, uuid):
    return [s for s in lab.vm_placement(uuid)[cn.n]['snapshots'] if '@migd-' in s]


def test_abort_mid_send_frees_the_stream_at_once(lab, migd):
    """An abort while the source's send runs: the job ends aborted within
    10 s, the send and the receive are gone from both CNs within 2 s of
    the abort, and the job's snapshot was destroyed at its first try."""
    v = lab.vms['web0']
    src = v['cn']
    dst = other(lab, src)
    helpers.fill(lab, v['cn'], v['uuid'], 40)
    rule = lab.cn_throttle(src, 'zfs', args=r'^send', bytes_per_s=2 << 20)
    try:
        job_uuid = submit(migd, v['uuid'], dst.hostname)
        wait_for(lambda: migd.job(job_uuid)['progress']['bytes_sent'] > 4 << 20,
                 'bytes to flow', timeout=120)
        assert stream_processes(src), 'the throttled send should still run'
        t0 = time.monotonic()
        p = migd.ctl('abort', job_uuid)
        assert p.returncode == 0, p.stderr
        gone = wait_for(lambda: (time.monotonic() - t0) if not stream_processes(src)
                        and not stream_processes(dst) else None, 'the stream to end',
                        timeout=30, step=0.05)
        job = ended(migd, job_uuid, timeout=60)
        took = time.monotonic() - t0
    finally:
        lab.cn_faults_clear(src)
    print('abort: stream gone after %.2f s, job aborted after %.2f s' % (gone, took))
    assert job['state'] == 'aborted', job
    assert gone < 2.0, gone
    assert took < 10.0, took
    assert not job.get('leftovers'), job['leftovers']
    log = migd.ctl('log', job_uuid).stdout
    assert not re.search(r'retry \d+ in', log), log
    place = lab.vm_placement(v['uuid'])
    assert not snapshots_of(lab, src, v['uuid'])
    assert place[dst.n]['zone_state'] is None and not place[dst.n]['datasets'], place
    assert place[src.n]['running']
    lab.cn_run(src, 'rm -f /zones/%s/root/bulk.bin' % v['uuid'])
    del rule


def snap_of(v, job_uuid, n):
    return 'zones/%s@migd-%s-%s' % (v['uuid'], job_uuid, n)


def hold_when_made(lab, cn, snapshot, tag='backup'):
    """Holds snapshot as soon as the job made it (a backup tool's hold)."""
    def made():
        return lab.cn_run(cn, 'zfs list -H -o name -t snapshot %s' % snapshot,
                          check=False).returncode == 0
    wait_for(made, snapshot + ' to exist', timeout=120, step=0.05)
    lab.zfs_hold(cn, tag, snapshot)


def metric(migd, name):
    out = subprocess.run(['curl', '-s', '--unix-socket', migd.socket, 'http://migd/metrics'],
                         capture_output=True, text=True).stdout
    m = re.search(r'^%s (\d+)$' % re.escape(name), out, re.M)
    assert m, out
    return int(m.group(1))


def leftovers(migd, job_uuid):
    return migd.job(job_uuid)['leftovers']


def test_held_snapshot_leaves_a_switched_job_switched(lab, migd):
    """A backup tool holds the job's first snapshot on the source: the
    cleanup cannot destroy it, and the job still ends switched, with the
    snapshot as a leftover (JSON, show, list -o, metrics); once released,
    migd's own retry removes it."""
    v = lab.vms['lx0']
    src = v['cn']
    dst = other(lab, src)
    # The first send waits 3 s: time to take the hold between snapshot and send.
    lab.cn_fault(src, 'zfs', args=r'^send -R', exit=None, delay_s=3)
    job_uuid = submit(migd, v['uuid'], dst.hostname)
    first = snap_of(v, job_uuid, 1)
    hold_when_made(lab, src, first)
    try:
        job = ended(migd, job_uuid)
        assert job['state'] == 'switched', job
        assert job['error'] is None, job['error']
        assert job['progress']['bytes_total'] == job['progress']['bytes_sent']
        [lo] = job['leftovers']
        assert (lo['cn'], lo['kind'], lo['name']) == (src.hostname, 'snapshot', first), lo
        assert 'busy' in lo['reason'] and lo['blocks'] is False, lo
        show = migd.ctl('show', job_uuid).stdout
        assert 'leftovers   snapshot %s on %s' % (first, src.hostname) in show, show
        assert '(100%)' in show, show
        listed = migd.ctl('list', '-a', '-H', '-o', 'uuid,leftovers').stdout
        assert '%s  snapshot@%s' % (job_uuid, src.hostname) in listed or \
            re.search(r'%s\s+snapshot@%s' % (job_uuid, src.hostname), listed), listed
        assert metric(migd, 'migd_leftovers') == 1
        assert 'leftover: snapshot %s' % first in migd.ctl('log', job_uuid).stdout
    finally:
        lab.zfs_release(src, 'backup', first)
    # migd's own retry (30 s after) removes it: no operator needed.
    wait_for(lambda: not leftovers(migd, job_uuid), 'the leftover to go', timeout=90, step=1)
    assert first not in lab.vm_placement(v['uuid'])[src.n]['snapshots']
    assert metric(migd, 'migd_leftovers') == 0
    assert migd.job(job_uuid)['state'] == 'switched'
    p = migd.ctl('cleanup', job_uuid)
    assert p.returncode == 0, p.stderr
    assert ended(migd, job_uuid, states=('succeeded',))['state'] == 'succeeded'


def test_held_snapshot_never_slows_an_abort(lab, migd):
    """Abort while a backup tool holds the job's snapshot: aborted within
    10 s with the snapshot as a leftover; released, `migctl cleanup`
    removes it at once."""
    v = lab.vms['web0']
    src = v['cn']
    dst = other(lab, src)
    helpers.fill(lab, v['cn'], v['uuid'], 40)
    lab.cn_throttle(src, 'zfs', args=r'^send', bytes_per_s=2 << 20)
    try:
        job_uuid = submit(migd, v['uuid'], dst.hostname)
        first = snap_of(v, job_uuid, 1)
        hold_when_made(lab, src, first)
        wait_for(lambda: migd.job(job_uuid)['progress']['bytes_sent'] > 2 << 20,
                 'bytes to flow')
        t0 = time.monotonic()
        assert migd.ctl('abort', job_uuid).returncode == 0
        job = ended(migd, job_uuid, timeout=60)
        took = time.monotonic() - t0
    finally:
        lab.cn_faults_clear(src)
    print('abort with a held snapshot: aborted after %.2f s' % took)
    assert job['state'] == 'aborted' and took < 10.0, (job, took)
    [lo] = job['leftovers']
    assert (lo['cn'], lo['kind'], lo['name']) == (src.hostname, 'snapshot', first), lo
    place = lab.vm_placement(v['uuid'])
    assert place[dst.n]['zone_state'] is None and not place[dst.n]['datasets'], place
    assert place[src.n]['running']
    lab.zfs_release(src, 'backup', first)
    p = migd.ctl('cleanup', job_uuid)
    assert p.returncode == 0, p.stderr
    assert 'retrying' in p.stdout, p.stdout
    wait_for(lambda: not leftovers(migd, job_uuid), 'the leftover to go', timeout=20)
    assert not snapshots_of(lab, src, v['uuid'])
    assert migd.job(job_uuid)['state'] == 'aborted'
    lab.cn_run(src, 'rm -f /zones/%s/root/bulk.bin' % v['uuid'])


def test_held_final_snapshot_never_fails_a_rollback(lab, migd):
    """The operator rolls a switched job back while a tool holds its final
    snapshot on the source: the VM is back, the job rolled_back, the
    snapshot a leftover that goes once released."""
    v = lab.vms['stopped0']
    src = v['cn']
    dst = other(lab, src)
    job_uuid = submit(migd, v['uuid'], dst.hostname)
    assert ended(migd, job_uuid)['state'] == 'switched'
    final = snap_of(v, job_uuid, 'final')
    lab.zfs_hold(src, 'backup', final)
    try:
        assert migd.ctl('rollback', job_uuid).returncode == 0
        job = ended(migd, job_uuid, states=('rolled_back', 'failed'))
        assert job['state'] == 'rolled_back', job
        assert [lo['name'] for lo in job['leftovers']] == [final], job['leftovers']
        assert lab.api('vmapi', 'GET', '/vms/%s' % v['uuid'])[1]['server_uuid'] == src.uuid
    finally:
        lab.zfs_release(src, 'backup', final)
    assert migd.ctl('cleanup', job_uuid).returncode == 0
    wait_for(lambda: not leftovers(migd, job_uuid), 'the leftover to go', timeout=20)
    assert not snapshots_of(lab, src, v['uuid'])


def test_a_leftover_dataset_on_the_target_refuses_a_new_migration_there(lab, migd):
    """An aborted job could not remove its copy on the target (a tool holds
    a snapshot of it): that leftover blocks a new migration of the VM to
    that CN, and the refusal says which job left it and what to do."""
    v = lab.vms['stopped0']
    src = lab.cns[[n for n, p in lab.vm_placement(v['uuid']).items()
                   if p['zone_state'] == 'installed' and not p['hidden']][0] - 1]
    dst = other(lab, src)
    job_uuid = submit(migd, '-i', v['uuid'], dst.hostname)
    wait_for(lambda: migd.job(job_uuid)['state'] == 'waiting', 'the first round', timeout=120)
    first = snap_of(v, job_uuid, 1)
    lab.zfs_hold(dst, 'backup', first)
    try:
        assert migd.ctl('abort', job_uuid).returncode == 0
        job = ended(migd, job_uuid, timeout=60)
        assert job['state'] == 'aborted', job
        [lo] = job['leftovers']
        assert (lo['cn'], lo['kind'], lo['name'], lo['blocks']) == \
            (dst.hostname, 'dataset', 'zones/%s' % v['uuid'], True), lo
        p = migd.ctl('migrate', '-n', v['uuid'], dst.hostname)
        assert p.returncode == 1, p.stdout
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert 'leftover of job %s' % job_uuid in p.stderr, p.stderr
        assert 'migctl cleanup %s' % job_uuid in p.stderr, p.stderr
    finally:
        lab.zfs_release(dst, 'backup', first)
    assert migd.ctl('cleanup', job_uuid).returncode == 0
    wait_for(lambda: not leftovers(migd, job_uuid), 'the leftover to go', timeout=20)
    assert not lab.vm_placement(v['uuid'])[dst.n]['datasets']
    p = migd.ctl('migrate', '-n', v['uuid'], dst.hostname)
    assert p.returncode == 0, p.stderr


def test_a_cut_output_is_never_parsed(lab, migd):
    """A `zfs list` whose output passes migd's 8 MiB bound is refused with a
    clear error, never parsed in part; nothing is changed."""
    v = lab.vms['web0']
    src = v['cn']
    lab.cn_fault(src, 'zfs', args=r'^list -H -p', exit=0, stdout='x' * (9 << 20), count=1)
    try:
        p = migd.ctl('migrate', '-n', v['uuid'], other(lab, src).hostname)
    finally:
        lab.cn_faults_clear(src)
    assert p.returncode == 1, p.stdout
    assert 'exceeded 8 MiB' in p.stderr and 'nothing was read from it' in p.stderr, p.stderr
    assert migd.ctl('migrate', '-n', v['uuid'], other(lab, src).hostname).returncode == 0
