"""Direct transfer (`--transfer direct`, cn-commands.md "Direct transfer"):
the source sends straight to the target with a key made for the job.

Through the real binaries against the lab, whose CNs each have their own
root home (the sshd reads that home's authorized_keys) and /var/tmp: a
running zone migrated directly with its progress counted from zfs send -v,
byte for byte, and then no key anywhere; an aborted direct job, a failed
one and one whose target the head node does not know leave no key either.
What a source sends is confined: a stream whose dataset carries a child
with a `mountpoint` outside the zone's tree is received (into the job's
dataset only, unmounted) and refused, the target's pool as it was; the
job's key runs the receives of the job's datasets and refuses any other.
The crash campaign (unit test_executor and the lab's) kills direct jobs at
every journal point.
"""
import json
import os
import shlex
import shutil
import uuid

import conftest
from helpers import fail_receives, submit, wait_state, while_active
from migd_daemon import Migd

DATA_MB = 40


migd = conftest.migd_fixture(transfer={'mode': 'direct', 'retries': 1, 'limit_mbps': 0},
                             incremental={'interval_s': 1})


def home_of(lab, uuid):
    server = lab.api('vmapi', 'GET', '/vms/%s' % uuid)[1]['server_uuid']
    return [cn for cn in lab.cns if cn.uuid == server][0]


def keys_left(lab):
    """Every trace of a job key on every CN: authorized_keys lines, /var/tmp dirs."""
    left = []
    for cn in lab.cns:
        ak = lab.cn_run(cn, 'cat /root/.ssh/authorized_keys 2>/dev/null; true').stdout
        left += ['%s authorized_keys: %s' % (cn.hostname, l) for l in ak.splitlines()
                 if 'migd-job-' in l]
        tmp = lab.cn_run(cn, 'ls -d /var/tmp/migd-* 2>/dev/null; true').stdout
        left += ['%s: %s' % (cn.hostname, d) for d in tmp.split()]
    return left


def test_running_zone_directly_with_its_progress_and_no_key_left(lab, migd):
    v = lab.vms['web0']
    src = home_of(lab, v['uuid'])
    dst = lab.cns[1] if src.n != 2 else lab.cns[0]
    lab.cn_run(src, 'head -c %dM /dev/urandom > /zones/%s/root/bulk.bin && sync'
               % (DATA_MB, v['uuid']), timeout=300)
    before = lab.file_checksums(src, '/zones/%s' % v['uuid'])
    # At 8 MB/s the first send takes ~5 s: zfs send -v prints a line a second.
    lab.cn_throttle(src, 'zfs', args=r'^send -R', bytes_per_s=8 << 20, count=1)
    try:
        job = submit(migd, v['uuid'], dst.hostname)
        seen = [j['progress']['bytes_sent'] for j in while_active(migd, job)
                if j['phase'] == 'sync']
    finally:
        lab.cn_faults_clear(src)
    j = migd.job(job)
    assert j['state'] == 'switched', j
    assert j['transfer'] == 'direct'
    # Bytes counted while they moved, from the source's progress lines, never back.
    moving = [b for b in seen if 0 < b < (DATA_MB << 20)]
    assert moving, 'no progress while the stream ran: %s' % seen[:50]
    assert seen == sorted(seen)
    assert j['progress']['bytes_sent'] >= (DATA_MB - 8) << 20, j['progress']
    assert lab.file_checksums(dst, '/zones/%s' % v['uuid']) == before
    # The journal made the key and took it away again, on both CNs.
    acts = [a['action'] for a in json.loads(migd.ctl('show', '-v', '-j', job).stdout)['actions']]
    for a in ('prepare.direct_key', 'prepare.direct_target', 'prepare.direct_source',
              'cleanup.direct_source', 'cleanup.direct_target', 'cleanup.direct_key'):
        assert a in acts, acts
    assert keys_left(lab) == []
    # The stream went from the source straight to the target: the source ran ssh.
    assert any('| ssh -F /dev/null -T -b' in l and src.ip in l
               for l in migd.log_text().splitlines())


def test_aborted_direct_job_leaves_no_key(lab, migd):
    v = lab.vms['stopped0']
    src = home_of(lab, v['uuid'])
    dst = lab.cns[1] if src.n != 2 else lab.cns[0]
    job = submit(migd, '-i', v['uuid'], dst.hostname)
    wait_state(migd, job, ('waiting',))
    assert keys_left(lab) != [], 'a waiting direct job holds its key on both CNs'
    p = migd.ctl('abort', job)
    assert p.returncode == 0, p.stderr
    j = wait_state(migd, job, ('aborted', 'failed'))
    assert j['state'] == 'aborted', j
    assert keys_left(lab) == []


def test_failed_direct_job_leaves_no_key(lab, migd):
    v = lab.vms['lx0']
    src = home_of(lab, v['uuid'])
    dst = lab.cns[1] if src.n != 2 else lab.cns[0]
    # Every receive on the target fails (the forced command of the job's key runs it).
    fail_receives(lab, dst, -1)
    try:
        job = submit(migd, v['uuid'], dst.hostname)
        j = wait_state(migd, job, ('failed', 'aborted', 'switched'))
    finally:
        lab.cn_faults_clear(dst)
    assert j['state'] == 'failed', j
    assert 'checksum mismatch' in j['error']['message'], j['error']
    assert keys_left(lab) == []
    assert home_of(lab, v['uuid']) == src


def test_target_unknown_to_the_head_node_is_refused(lab, build_dir, tmp_path):
    """A head node whose known_hosts lacks the target: refused before any key is made."""
    v = lab.vms['lx0']
    src = home_of(lab, v['uuid'])
    dst = lab.cns[1] if src.n != 2 else lab.cns[0]
    kh = str(tmp_path / 'known_hosts')
    with open(lab.known_hosts) as f, open(kh, 'w') as out:
        out.writelines(l for l in f if not l.startswith(('%s ' % dst.ip, '[%s]' % dst.ip)))
    d = Migd(lab, build_dir, tmp_path / 'migd', transfer={'mode': 'direct'},
             ssh=dict(lab.migd_config(str(tmp_path))['ssh'], known_hosts=kh)).start()
    try:
        p = d.ctl('migrate', v['uuid'], dst.hostname)
        assert p.returncode == 1, p.stdout
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert 'HostKey' in p.stderr or 'host key' in p.stderr, p.stderr
        assert d.jobs() == []
    finally:
        assert d.stop() == 0
    assert keys_left(lab) == []
    shutil.rmtree(str(tmp_path / 'migd'), ignore_errors=True)
    assert os.path.exists(kh)


def pool_listing(lab, cn):
    return lab.cn_run(cn, 'zfs list -H -o name,mountpoint -r zones').stdout


def mounted_at(lab, cn, path):
    """The filesystems mounted at path on cn (zfs's view and the kernel's)."""
    zfs = [l for l in lab.cn_run(cn, 'zfs list -H -o mountpoint,mounted').stdout.splitlines()
           if l == '%s\tyes' % path]
    kernel = [l for l in lab.cn_run(cn, 'cat /proc/self/mounts').stdout.splitlines()
              if l.split()[1] == path]
    return zfs + kernel


def test_a_stream_mounting_outside_the_zone_is_refused(lab, migd):
    """The source's dataset has a child whose mountpoint points out of the
    zone's tree (what a compromised source could put in its stream): the
    target receives it with the command migd builds (into the job's dataset,
    -u), finds the mountpoint, mounts nothing and refuses; the rollback
    leaves the target's pool exactly as it was."""
    v = lab.vms['stopped0']
    src = home_of(lab, v['uuid'])
    dst = lab.cns[1] if src.n != 2 else lab.cns[0]
    evil = 'zones/%s/evil' % v['uuid']
    path = '/zones/evil-%s' % uuid.uuid4()
    lab.cn_run(src, 'zfs create -o mountpoint=%s %s' % (path, evil))
    try:
        before = pool_listing(lab, dst)
        job = submit(migd, v['uuid'], dst.hostname)
        j = wait_state(migd, job, ('failed', 'aborted', 'switched'))
        log = migd.log_text()
    finally:
        lab.cn_run(src, 'zfs destroy -r %s' % evil)
    assert j['state'] == 'failed', j
    assert j['error']['code'] == 'ReceiveRefused', j['error']
    assert path in j['error']['message'] and evil.split('/', 1)[1] in j['error']['message']
    # Through the real receive: the explicit destination, nothing mounted by it.
    assert "'zfs receive -u -F zones/%s'" % v['uuid'] in log
    assert mounted_at(lab, dst, path) == []
    assert pool_listing(lab, dst) == before
    assert keys_left(lab) == []
    assert home_of(lab, v['uuid']) == src


def test_the_job_key_runs_the_job_receives_only(lab, migd):
    """While a direct job waits, its key (as migd authorized it on the target)
    and its files on the source run `zfs receive -u -F` of the job's own
    dataset only: a receive into another dataset, a -d receive into the
    pool, or any other command are refused before zfs runs, and the target's
    pool does not change."""
    v = lab.vms['stopped0']  # lx0 keeps a snapshot the failed job above could not remove
    src = home_of(lab, v['uuid'])
    dst = lab.cns[1] if src.n != 2 else lab.cns[0]
    craft = 'zones/craft%d' % uuid.uuid4().int
    path = '/zones/evil-%s' % uuid.uuid4()
    lab.cn_run(src, 'zfs create {c} && zfs create -o mountpoint={p} {c}/evil && '
                    'zfs snapshot -r {c}@s'.format(c=craft, p=path))
    job = submit(migd, '-i', v['uuid'], dst.hostname)
    try:
        wait_state(migd, job, ('waiting',))
        before = pool_listing(lab, dst)
        tmp = '/var/tmp/migd-%s' % job
        client = ('ssh -F /dev/null -T -b {src} -i {tmp}/id -o IdentitiesOnly=yes '
                  '-o GlobalKnownHostsFile=/dev/null -o UserKnownHostsFile={tmp}/known_hosts '
                  '-o StrictHostKeyChecking=yes -o BatchMode=yes -p {port} root@{dst}').format(
                      src=src.ip, tmp=tmp, port=lab.ssh_port, dst=dst.ip)
        for remote in ('zfs receive -u -F %s' % craft, 'zfs receive -F -d zones',
                       'zfs receive -u -F zones/%s-disk0' % v['uuid'],
                       'zfs receive -u -F zones/%s; touch /var/tmp/x' % v['uuid'],
                       'touch /var/tmp/not-forced'):
            p = lab.cn_run(src, 'zfs send -R %s@s | %s %s' % (craft, client, shlex.quote(remote)),
                           check=False)
            assert p.returncode != 0, remote
            assert 'migd: refused' in p.stderr, (remote, p.stderr)
        assert lab.cn_run(dst, 'ls /var/tmp/x /var/tmp/not-forced', check=False).returncode != 0
        assert mounted_at(lab, dst, path) == []
        assert pool_listing(lab, dst) == before
    finally:
        p = migd.ctl('abort', job)
        lab.cn_run(src, 'zfs destroy -r %s' % craft)
    assert p.returncode == 0, p.stderr
    j = wait_state(migd, job, ('aborted', 'failed'))
    assert j['state'] == 'aborted', (j, migd.ctl('show', '-v', job).stdout)
    assert keys_left(lab) == []
    assert home_of(lab, v['uuid']) == src
