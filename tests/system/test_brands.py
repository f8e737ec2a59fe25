"""Every brand of issue 7, migrated and rolled back through the real migctl
and migd against the lab (SSH by libssh2, real ZFS on the emulated CNs, the
emulated Triton APIs).

- bhyve0 (running, cn1): zones/UUID with its disk zones/UUID/disk0 below
  it, and VM.js's space properties: refquota, refreservation, and a quota
  and reservation with no room for snapshots, so the quota must be raised
  before the first snapshot and restored exactly, on both sides.

bhyve0, kvm0, docker0 and deleg0 go to cn3, which holds no image at all
(every disk's and zone's image is imported there first) and runs an older
platform (so `-D`).
- kvm0 (cn2): zones/UUID plus two disks beside it, one a clone of the
  image, one empty: both sent, both counted in progress.bytes_total; a
  round's three streams run at once (transfer.streams).
- docker0 (cn2): an lx instance with docker: true on a docker image.
- deleg0 (cn2): a delegated dataset zones/UUID/data (zoned=on).
- fabric0 (cn2): a NIC on a fabric network: refused for cn3, which has no
  underlay, migrated to cn1 which has one.

Each migration is checked byte for byte (the files, and every dataset's
final snapshot guid on both sides), then rolled back with `migctl
rollback`, which must leave the VM where and as it was.  bhyve0 then moves
once more and its source copy is removed (`migctl cleanup`), so that the
target's space properties can be checked with no job snapshot left: it
stays on cn3.
"""
import functools
import json
import os
import re
import time

import conftest
import helpers

wait_state = functools.partial(helpers.wait_state, step=0.3)

DATA_MB = int(os.environ.get('MIGD_TEST_DATA_MB', 8))
SPACE_PROPS = ('quota', 'reservation', 'refquota', 'refreservation')


migd = conftest.migd_fixture()


# ---------------------------------------------------------------- helpers

def vmadm_get(lab, cn, uuid, check=True):
    p = lab.cn_run(cn, 'vmadm get %s' % uuid, check=check)
    return json.loads(p.stdout) if p.returncode == 0 else None


def zget(lab, cn, prop, ds):
    return lab.cn_run(cn, '/usr/sbin/zfs get -H -p -o value %s %s' % (prop, ds)).stdout.strip()


def datasets(lab, cn, uuid):
    """The VM's filesystems on cn (zone dataset and children, KVM disks, cores)."""
    return lab.vm_placement(uuid)[cn.n]['datasets']


def space(lab, cn, names):
    """{dataset: {property: bytes}} of the space properties."""
    return {ds: {p: zget(lab, cn, p, ds) for p in SPACE_PROPS} for ds in names}


def final_guids(lab, cn, uuid):
    """{dataset@snap: guid} of the job's final snapshots on cn."""
    snaps = [s for s in lab.vm_placement(uuid)[cn.n]['snapshots']
             if '@migd-' in s and s.endswith('-final')]
    return {s: zget(lab, cn, 'guid', s) for s in snaps}


def migrate(lab, migd, alias, target):
    """`migctl migrate -w`; the job, switched.  cn3 runs an older platform:
    -D lets it be the target, and it is the CN that has no image yet."""
    u = lab.vms[alias]['uuid']
    older = ['-D'] if target.n == 3 else []
    p = migd.ctl('migrate', '-w', *older, u, target.hostname)
    assert p.returncode == 0, 'migrate %s to %s failed: %s\n%s' % (
        alias, target.hostname, p.stderr, migd.log_text()[-4000:])
    job = migd.job(re.search(r'[0-9a-f-]{36}', p.stdout.split('\n')[0]).group(0))
    assert job['state'] == 'switched', job
    assert job['target_server_uuid'] == target.uuid
    return job


def roll_back(lab, migd, job):
    p = migd.ctl('rollback', job['uuid'])
    assert p.returncode == 0, p.stderr
    done = wait_state(migd, job['uuid'], ('rolled_back', 'failed'))
    assert done['state'] == 'rolled_back', (done, migd.log_text()[-4000:])
    return done


def check_switched(lab, alias, src, dst, before_files, mounted):
    """What every switched job must show: the VM running on dst only,
    VMAPI and NAPI naming dst, each dataset's final snapshot the same on both
    sides, and the files (under each mountpoint in `mounted`) byte for byte."""
    u = lab.vms[alias]['uuid']
    assert vmadm_get(lab, dst, u)['state'] == 'running'
    assert vmadm_get(lab, src, u)['state'] != 'running'
    assert lab.api('vmapi', 'GET', '/vms/%s' % u)[1]['server_uuid'] == dst.uuid
    nics = lab.api('napi', 'GET', '/nics?belongs_to_uuid=%s' % u)[1]
    assert nics and all(n['cn_uuid'] == dst.uuid for n in nics), nics
    ours, theirs = final_guids(lab, src, u), final_guids(lab, dst, u)
    assert ours and ours == theirs, (ours, theirs)
    # one final snapshot per dataset of the VM (its cores dataset is not sent)
    sent = [d for d in datasets(lab, src, u) if not d.startswith('zones/cores/')]
    assert sorted(s.split('@')[0] for s in ours) == sorted(sent)
    for path in mounted:
        assert lab.file_checksums(dst, path) == before_files[path], path


def check_rolled_back(lab, alias, src, dst, before_vm, before_files, mounted):
    """The VM is back on src as it was, running, and nothing of it on dst."""
    u = lab.vms[alias]['uuid']
    after = vmadm_get(lab, src, u)
    assert after['state'] == 'running'
    same = {'state', 'zone_state', 'autoboot'}
    assert {k: v for k, v in after.items() if k not in same} == \
        {k: v for k, v in before_vm.items() if k not in same}
    assert vmadm_get(lab, dst, u, check=False) is None
    assert lab.vm_placement(u)[dst.n]['datasets'] == []
    assert lab.api('vmapi', 'GET', '/vms/%s' % u)[1]['server_uuid'] == src.uuid
    nics = lab.api('napi', 'GET', '/nics?belongs_to_uuid=%s' % u)[1]
    assert nics and all(n['cn_uuid'] == src.uuid for n in nics)
    assert not [s for s in lab.vm_placement(u)[src.n]['snapshots'] if '@migd-' in s]
    for path in mounted:
        assert lab.file_checksums(src, path) == before_files[path], path


# ---------------------------------------------------------------- bhyve

def space_while_snapshots_pinned(before, now):
    """While a job's final snapshot stays (a switched job keeps one on each
    side for the rollback), the quota must leave room for it: at least the
    original; everything else exactly as it was."""
    for ds, props in before.items():
        assert int(now[ds]['quota']) >= int(props['quota']), (ds, now[ds], props)
        assert {p: v for p, v in now[ds].items() if p != 'quota'} == \
            {p: v for p, v in props.items() if p != 'quota'}, (ds, now[ds], props)


def test_bhyve_with_its_disk_and_quota_raised_and_restored(lab, migd):
    """bhyve0 to cn3 and back (rollback), then to cn3 again and its source copy
    removed (cleanup): the space properties are exactly the seeded ones on the
    source after the rollback and on the target once the job's snapshots are
    gone.  While a final snapshot is kept the quota cannot be put back: ZFS
    refuses a quota below what is used ("size is less than current used or
    reserved space"), and the running VM's writes would fail."""
    v = lab.vms['bhyve0']
    src, dst = v['cn'], lab.cns[2]
    u = v['uuid']
    top, disk = 'zones/' + u, 'zones/%s/disk0' % u
    lab.cn_run(src, 'head -c %dM /dev/urandom > /%s/bulk.bin && sync' % (DATA_MB, disk),
               timeout=300)
    before_vm = vmadm_get(lab, src, u)
    before_space = space(lab, src, [top, disk])
    # no room for a snapshot as seeded: migd must raise the quota first
    assert int(before_space[top]['quota']) == int(before_space[top]['reservation'])
    mounted = ['/zones/%s' % u, '/' + disk]
    before_files = {m: lab.file_checksums(src, m) for m in mounted}
    assert 'bulk.bin' in before_files['/' + disk]

    job = migrate(lab, migd, 'bhyve0', dst)
    check_switched(lab, 'bhyve0', src, dst, before_files, mounted)
    assert sorted(datasets(lab, dst, u)) == sorted([top, disk, 'zones/cores/' + u])
    # the disk is still a clone of its image, imported on the target (cn3 had none)
    assert zget(lab, dst, 'origin', disk) == 'zones/%s@final' % v['image_uuid']
    space_while_snapshots_pinned(before_space, space(lab, dst, [top, disk]))
    space_while_snapshots_pinned(before_space, space(lab, src, [top, disk]))
    assert vmadm_get(lab, dst, u)['quota'] == before_vm['quota']

    roll_back(lab, migd, job)
    check_rolled_back(lab, 'bhyve0', src, dst, before_vm, before_files, mounted)
    assert space(lab, src, [top, disk]) == before_space

    # again, and this time the source copy goes: the target keeps no snapshot
    job = migrate(lab, migd, 'bhyve0', dst)
    p = migd.ctl('cleanup', job['uuid'])
    assert p.returncode == 0, p.stderr
    done = wait_state(migd, job['uuid'], ('succeeded', 'failed'))
    assert done['state'] == 'succeeded', (done, migd.log_text()[-4000:])
    assert lab.vm_placement(u)[src.n]['datasets'] == []
    assert not [s for s in lab.vm_placement(u)[dst.n]['snapshots'] if '@migd-' in s]
    assert space(lab, dst, [top, disk]) == before_space
    for path in mounted:
        assert lab.file_checksums(dst, path) == before_files[path], path
    assert vmadm_get(lab, dst, u)['state'] == 'running'


# ---------------------------------------------------------------- KVM

def test_kvm_with_two_disks(lab, migd):
    v = lab.vms['kvm0']
    src, dst = v['cn'], lab.cns[2]
    u = v['uuid']
    disks = ['zones/%s-disk0' % u, 'zones/%s-disk1' % u]
    for d in disks:
        lab.cn_run(src, 'head -c %dM /dev/urandom > /%s/bulk.bin && sync' % (DATA_MB, d),
                   timeout=300)
    before_vm = vmadm_get(lab, src, u)
    assert [d['zfs_filesystem'] for d in before_vm['disks']] == disks
    before_space = space(lab, src, ['zones/' + u] + disks)
    mounted = ['/zones/' + u] + ['/' + d for d in disks]
    before_files = {m: lab.file_checksums(src, m) for m in mounted}

    job = migrate(lab, migd, 'kvm0', dst)
    check_switched(lab, 'kvm0', src, dst, before_files, mounted)
    # the first round's three streams (the zone's dataset and both disks) ran at once,
    # and so did the switch's final ones
    acts = json.loads(migd.ctl('show', '-v', '-j', job['uuid']).stdout)['actions']
    for prefix in ('sync.send@1#', 'switch.send@final#'):
        sends = [a for a in acts if a['action'].startswith(prefix)]
        assert len(sends) == 3, sends
        assert max(a['started'] for a in sends) < min(a['ended'] for a in sends), sends
    assert sorted(datasets(lab, dst, u)) == sorted(['zones/' + u] + disks + ['zones/cores/' + u])
    assert zget(lab, dst, 'origin', disks[0]) == 'zones/%s@final' % v['image_uuid']
    assert zget(lab, dst, 'origin', disks[1]) == '-'
    assert space(lab, dst, ['zones/' + u] + disks) == before_space
    # progress counts every disk: at least the data written into each
    progress = job['progress']
    written = 2 * (DATA_MB << 20)
    assert progress['bytes_total'] >= written, progress
    assert progress['bytes_sent'] >= written, progress

    roll_back(lab, migd, job)
    check_rolled_back(lab, 'kvm0', src, dst, before_vm, before_files, mounted)


# ---------------------------------------------------------------- disks of other images

def images_on(lab, cn):
    """The image uuids installed on cn."""
    out = lab.cn_run(cn, '/usr/sbin/zfs list -H -o name -t snapshot').stdout.split()
    return {s.split('/')[1].split('@')[0] for s in out
            if s.endswith('@final') and s.count('/') == 1}


def image_missing_on(lab, cn, but=()):
    """An image of the lab's VMs (all in IMGAPI) that cn has not installed."""
    have = images_on(lab, cn)
    missing = {v['image_uuid'] for v in lab.vms.values()} - have - set(but)
    assert missing, 'every image is on %s already' % cn.hostname
    return sorted(missing)[0]


def add_disk_from_image(lab, cn, u, disk, image, size_mib):
    """Gives VM u (on cn) a disk cloned from another image's @final, as
    `vmadm update add_disks` would (the image imported first), with data
    written into it, and waits until VMAPI lists it."""
    lab.cn_run(cn, 'imgadm import -q %s' % image)
    lab.cn_run(cn, 'zfs clone zones/%s@final %s && head -c %dM /dev/urandom > /%s/bulk2.bin && sync'
               % (image, disk, DATA_MB, disk), timeout=300)
    script = ('add device\nset match=/dev/zvol/rdsk/%s\nadd property (name=image-uuid,value="%s")\n'
              'add property (name=size,value="%d")\nadd property (name=model,value="virtio")\nend\n'
              % (disk, image, size_mib))
    lab.cn_run(cn, 'zonecfg -z %s -f -' % u, input=script)

    def listed():
        vm = lab.api('vmapi', 'GET', '/vms/%s' % u)[1]
        return disk in [d.get('zfs_filesystem') for d in vm.get('disks', [])]
    deadline = time.monotonic() + 30
    while not listed():
        assert time.monotonic() < deadline, 'VMAPI never listed %s' % disk
        time.sleep(0.3)


def test_a_kvm_disk_of_another_image_is_sent_from_it(lab, migd):
    """kvm0 gets a third disk, a dataset beside its others, cloned from another
    image than its own, which the target lacks: that image is imported there
    first and the disk's first send is an incremental from it."""
    k = lab.vms['kvm0']
    u = k['uuid']
    src = [cn for cn in lab.cns if vmadm_get(lab, cn, u, check=False) is not None][0]
    dst = lab.cns[2] if src.n != 3 else lab.cns[1]
    image = image_missing_on(lab, dst, but=(k['image_uuid'],))
    disk2 = 'zones/%s-disk2' % u
    add_disk_from_image(lab, src, u, disk2, image, 256)
    before_vm = vmadm_get(lab, src, u)
    mounted = ['/zones/' + u] + ['/zones/%s-disk%d' % (u, i) for i in range(3)]
    before_files = {m: lab.file_checksums(src, m) for m in mounted}
    job = migrate(lab, migd, 'kvm0', dst)
    check_switched(lab, 'kvm0', src, dst, before_files, mounted)
    assert zget(lab, dst, 'origin', disk2) == 'zones/%s@final' % image
    # Its first send started from that image (the command as migd ran it).
    log = migd.log_text()
    assert re.search(r"zfs send -R -I '?zones/%s@final'? '?%s@migd-%s-" % (image, disk2, job['uuid']),
                     log), log[-3000:]
    roll_back(lab, migd, job)
    check_rolled_back(lab, 'kvm0', src, dst, before_vm, before_files, mounted)

    # A disk cloned from a snapshot of another disk (no image) could not be received
    # on any target: refused in one line, nothing changed.
    disk3 = 'zones/%s-disk3' % u
    lab.cn_run(src, 'zfs snapshot zones/%s-disk1@copy && zfs clone zones/%s-disk1@copy %s'
               % (u, u, disk3))
    lab.cn_run(src, 'zonecfg -z %s -f -' % u,
               input='add device\nset match=/dev/zvol/rdsk/%s\nadd property (name=size,value='
                     '"256")\nend\n' % disk3)
    deadline = time.monotonic() + 30
    while disk3 not in [d.get('zfs_filesystem') for d in
                        lab.api('vmapi', 'GET', '/vms/%s' % u)[1].get('disks', [])]:
        assert time.monotonic() < deadline, 'VMAPI never listed %s' % disk3
        time.sleep(0.3)
    state_before = lab.api_state()
    jobs_before = migd.jobs()
    p = migd.ctl('migrate', *(['-D'] if dst.n == 3 else []), u, dst.hostname)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert disk3 in p.stderr and 'a clone of no image' in p.stderr, p.stderr
    assert migd.jobs() == jobs_before
    assert lab.api_state() == state_before
    assert lab.vm_placement(u)[dst.n]['datasets'] == []


# ---------------------------------------------------------------- docker

def test_docker_instance_keeps_its_docker_flag(lab, migd):
    v = lab.vms['docker0']
    src, dst = v['cn'], lab.cns[2]
    u = v['uuid']
    lab.cn_run(src, 'head -c %dM /dev/urandom > /zones/%s/root/bulk.bin && sync' % (DATA_MB, u),
               timeout=300)
    before_vm = vmadm_get(lab, src, u)
    assert before_vm['docker'] is True
    mounted = ['/zones/' + u]
    before_files = {m: lab.file_checksums(src, m) for m in mounted}

    job = migrate(lab, migd, 'docker0', dst)
    check_switched(lab, 'docker0', src, dst, before_files, mounted)
    after = vmadm_get(lab, dst, u)
    assert after['docker'] is True and after['brand'] == 'lx'
    assert after['internal_metadata'] == before_vm['internal_metadata']
    assert after['tags'] == before_vm['tags'] == {'sdc_docker': True}
    assert after['image_uuid'] == before_vm['image_uuid']
    assert zget(lab, dst, 'origin', 'zones/' + u) == 'zones/%s@final' % v['image_uuid']
    vmapi = lab.api('vmapi', 'GET', '/vms/%s' % u)[1]
    assert vmapi['docker'] is True and vmapi['server_uuid'] == dst.uuid

    roll_back(lab, migd, job)
    check_rolled_back(lab, 'docker0', src, dst, before_vm, before_files, mounted)
    assert lab.api('vmapi', 'GET', '/vms/%s' % u)[1]['docker'] is True


# ---------------------------------------------------------------- delegated dataset

def test_delegated_dataset_moves_with_its_zone(lab, migd):
    v = lab.vms['deleg0']
    src, dst = v['cn'], lab.cns[2]
    u = v['uuid']
    data = 'zones/%s/data' % u
    before_vm = vmadm_get(lab, src, u)
    assert before_vm['datasets'] == [data]
    lab.cn_run(src, 'zfs snapshot %s@lab-before' % data)
    try:
        data_files = lab.snapshot_checksums(src, data + '@lab-before')
    finally:
        lab.cn_run(src, 'zfs destroy %s@lab-before' % data)
    assert set(data_files) == {'README', 'db/table.bin'}
    mounted = ['/zones/' + u]
    before_files = {m: lab.file_checksums(src, m) for m in mounted}

    job = migrate(lab, migd, 'deleg0', dst)
    check_switched(lab, 'deleg0', src, dst, before_files, mounted)
    assert data in datasets(lab, dst, u)
    [final] = [s for s in final_guids(lab, dst, u) if s.startswith(data + '@')]
    assert lab.snapshot_checksums(dst, final) == data_files
    # still delegated: the zone config, vmadm, and the dataset zoned as the zone uses it
    assert 'add dataset\nset name=%s\nend' % data in \
        lab.cn_run(dst, 'zonecfg -z %s export' % u).stdout
    assert vmadm_get(lab, dst, u)['datasets'] == [data]
    assert zget(lab, dst, 'zoned', data) == 'on'
    assert lab.api('vmapi', 'GET', '/vms/%s' % u)[1]['datasets'] == [data]

    roll_back(lab, migd, job)
    check_rolled_back(lab, 'deleg0', src, dst, before_vm, before_files, mounted)
    lab.cn_run(src, 'zfs snapshot %s@lab-after' % data)
    try:
        assert lab.snapshot_checksums(src, data + '@lab-after') == data_files
    finally:
        lab.cn_run(src, 'zfs destroy %s@lab-after' % data)


# ---------------------------------------------------------------- fabric NIC

def test_fabric_nic_needs_the_underlay(lab, migd):
    v = lab.vms['fabric0']
    src, no_underlay, dst = v['cn'], lab.cns[2], lab.cns[0]
    u = v['uuid']
    state_before = lab.api_state()
    cns_before = [lab.cn_run(cn, 'zfs list -H -o name -t all').stdout for cn in lab.cns]
    jobs_before = migd.jobs()
    p = migd.ctl('migrate', u, no_underlay.hostname)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    for words in ('TargetMissingUnderlay', no_underlay.hostname, 'sdc_overlay/',
                  'overlay tag sdc_overlay', 'underlay'):
        assert words in p.stderr, p.stderr
    assert lab.api_state() == state_before
    assert [lab.cn_run(cn, 'zfs list -H -o name -t all').stdout for cn in lab.cns] == cns_before
    assert migd.jobs() == jobs_before

    before_vm = vmadm_get(lab, src, u)
    nics_before = lab.api('napi', 'GET', '/nics?belongs_to_uuid=%s' % u)[1]
    mounted = ['/zones/' + u]
    before_files = {m: lab.file_checksums(src, m) for m in mounted}
    job = migrate(lab, migd, 'fabric0', dst)
    check_switched(lab, 'fabric0', src, dst, before_files, mounted)
    [nic] = lab.api('napi', 'GET', '/nics?belongs_to_uuid=%s' % u)[1]
    assert nic['cn_uuid'] == dst.uuid
    assert {k: w for k, w in nic.items() if k != 'cn_uuid'} == \
        {k: w for k, w in nics_before[0].items() if k != 'cn_uuid'}
    assert vmadm_get(lab, dst, u)['nics'] == before_vm['nics']

    roll_back(lab, migd, job)
    check_rolled_back(lab, 'fabric0', src, dst, before_vm, before_files, mounted)
    assert lab.api('napi', 'GET', '/nics?belongs_to_uuid=%s' % u)[1] == nics_before


# ---------------------------------------------------------------- bhyve disk of another image

def test_a_bhyve_disk_of_another_image_brings_it(lab, migd):
    """A disk may come from another image than the VM's (a data disk made from
    an image): every image any dataset of the VM is a clone of is imported on
    the target first.  bhyve0's second disk lies below its zone dataset, so the
    recursive stream cannot be received without its image: a target that
    cannot import it fails the job in prepare, before a byte moves; one that
    can receives the disk as a clone of it."""
    b = lab.vms['bhyve0']
    u = b['uuid']
    src = [cn for cn in lab.cns if vmadm_get(lab, cn, u, check=False) is not None][0]
    dst = lab.cns[1] if src.n != 2 else lab.cns[2]
    image = image_missing_on(lab, dst, but=(b['image_uuid'],))
    top, disk1 = 'zones/' + u, 'zones/%s/disk1' % u
    # Room for the new disk, as vmadm gives it (quota and reservation raised together).
    for prop in ('quota', 'reservation'):
        lab.cn_run(src, '/usr/sbin/zfs set %s=%d %s' % (prop, int(zget(lab, src, prop, top)) +
                                                         (256 << 20), top))
    add_disk_from_image(lab, src, u, disk1, image, 256)
    before_vm = vmadm_get(lab, src, u)
    mounted = ['/zones/%s' % u, '/zones/%s/disk0' % u, '/' + disk1]
    before_files = {m: lab.file_checksums(src, m) for m in mounted}

    # The target cannot import it: refused in prepare, nothing sent, the VM untouched.
    lab.cn_fault(dst, 'imgadm', args=r'^import .*%s' % image, count=1, exit=1,
                 stderr='imgadm import: error (ActiveImageNotFound): lab fault')
    try:
        older = ['-D'] if dst.n == 3 else []
        p = migd.ctl('migrate', '-w', *older, u, dst.hostname)
        assert p.returncode != 0, p.stdout
    finally:
        lab.cn_faults_clear(dst)
    failed = migd.job(re.search(r'[0-9a-f-]{36}', p.stdout + p.stderr).group(0))
    assert failed['state'] == 'failed', failed
    assert failed['error']['code'] == 'ImportFailed', failed['error']
    assert image in failed['error']['message'] and 'clone' in failed['error']['message']
    assert failed['progress']['bytes_sent'] == 0, failed['progress']
    assert lab.vm_placement(u)[dst.n]['datasets'] == []
    assert vmadm_get(lab, src, u)['state'] == 'running'
    assert image not in images_on(lab, dst)

    job = migrate(lab, migd, 'bhyve0', dst)
    check_switched(lab, 'bhyve0', src, dst, before_files, mounted)
    assert image in images_on(lab, dst)
    assert zget(lab, dst, 'origin', disk1) == 'zones/%s@final' % image
    assert zget(lab, dst, 'origin', 'zones/%s/disk0' % u) == 'zones/%s@final' % b['image_uuid']
    roll_back(lab, migd, job)
    check_rolled_back(lab, 'bhyve0', src, dst, before_vm, before_files, mounted)
