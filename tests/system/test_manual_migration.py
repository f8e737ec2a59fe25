"""The documented manual migration of a zone, done through the lab by hand.

From the head node (this host), with OpenSSH and checked host keys, it runs
the procedure of the Triton operator guide (seeds lines 470-600): export the
zone config on the source and import it on the target, install the origin
image on the target, snapshot, send the datasets incrementally from the
image's @final, write more data, stop, send the last increment, create the
cores dataset, attach and start on the target.  Then it checks that every
file on the target equals the source byte for byte and that vmadm on the
target shows the same VM, running.  This proves the lab supports what migd
will automate; afterwards it puts the lab back as it was.
"""
import json
import subprocess

import pytest

# alias, target CN number, where the VM's own data lives relative to /
CASES = [('web0', 2), ('lx0', 3), ('kvm0', 3)]
MORE_DATA_KIB = 2048


def ssh(lab, cn, cmd, input=None, check=True):
    p = subprocess.run(lab.ssh_argv(cn) + [cmd], input=input, capture_output=True, text=True,
                       timeout=300)
    if check:
        assert p.returncode == 0, '%s on %s: %s' % (cmd, cn.hostname, p.stderr)
    return p


def ssh_pipe(lab, src, send_cmd, dst, recv_cmd):
    """`ssh src send_cmd | ssh dst recv_cmd`, both must succeed."""
    send = subprocess.Popen(lab.ssh_argv(src) + [send_cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    recv = subprocess.run(lab.ssh_argv(dst) + [recv_cmd], stdin=send.stdout,
                          capture_output=True, text=True, timeout=300)
    send.stdout.close()
    send_err = send.stderr.read().decode()
    assert send.wait() == 0, send_err
    assert recv.returncode == 0, recv.stderr


def top_datasets(vm):
    """What must be sent: the zone dataset, and for KVM its disks beside it
    (kvm0 has two: a clone of the image, and an empty data disk)."""
    u = vm['uuid']
    return ['zones/' + u] + (['zones/%s-disk0' % u, 'zones/%s-disk1' % u]
                             if vm['brand'] == 'kvm' else [])


def vm_get(lab, cn, u):
    return json.loads(ssh(lab, cn, 'vmadm get ' + u).stdout)


def snapshots(lab, cn, ds):
    out = ssh(lab, cn, 'zfs list -H -o name -t snapshot -r %s' % ds).stdout
    return sorted(out.split())


def migrate_by_hand(lab, vm, dst):
    src, u = vm['cn'], vm['uuid']
    cfg = ssh(lab, src, 'zonecfg -z %s export' % u).stdout
    ssh(lab, dst, 'cat > /var/tmp/%s.zcfg' % u, input=cfg)
    ssh(lab, dst, 'zonecfg -z %s -f /var/tmp/%s.zcfg' % (u, u))
    assert ':%s:configured:' % u in ssh(lab, dst, 'zoneadm list -pc').stdout
    ssh(lab, dst, 'imgadm import -q %s' % vm['image_uuid'])
    for ds in top_datasets(vm):
        ssh(lab, src, 'zfs snapshot -r %s@m1' % ds)
        origin = ssh(lab, src, 'zfs get -H -o value origin %s' % ds).stdout.strip()
        base = '-I %s ' % origin if origin != '-' else ''
        # a clone is sent incrementally from its image's @final (imported above)
        ssh_pipe(lab, src, 'zfs send -R %s%s@m1' % (base, ds), dst, 'zfs receive -d zones')
    data_dir = '/' + top_datasets(vm)[-1] + ('/root' if vm['brand'] in ('joyent', 'lx') else '')
    ssh(lab, src, 'head -c %dK /dev/urandom > %s/written-after-m1.bin' % (MORE_DATA_KIB, data_dir))
    ssh(lab, src, 'vmadm stop %s' % u)
    for ds in top_datasets(vm):
        ssh(lab, src, 'zfs snapshot -r %s@m2' % ds)
        ssh_pipe(lab, src, 'zfs send -R -I @m1 %s@m2' % ds, dst, 'zfs receive -d -F zones')
    ssh(lab, dst, 'zfs create -o quota=1000m -o compression=gzip -o mountpoint=/zones/%s/cores '
                  'zones/cores/%s' % (u, u))
    ssh(lab, src, "zonecfg -z %s 'set autoboot=false'" % u)
    ssh(lab, src, "zonecfg -z %s 'add attr; set name=do-not-inventory; set type=string; "
                  "set value=true; end'" % u)
    ssh(lab, dst, 'zoneadm -z %s attach' % u)
    ssh(lab, dst, 'vmadm start %s' % u)


def put_back(lab, vm, dst):
    """Undo the migration so later tests find the seeded lab."""
    src, u = vm['cn'], vm['uuid']
    ssh(lab, dst, 'vmadm stop -F %s' % u, check=False)
    ssh(lab, dst, 'zoneadm -z %s detach' % u, check=False)
    ssh(lab, dst, 'zonecfg -z %s delete -F' % u, check=False)
    ssh(lab, dst, 'zfs destroy -r zones/cores/%s' % u, check=False)
    for ds in top_datasets(vm):
        ssh(lab, dst, 'zfs destroy -r %s' % ds, check=False)
        for snap in ('m1', 'm2'):
            ssh(lab, src, 'zfs destroy -r %s@%s' % (ds, snap), check=False)
    ssh(lab, src, "zonecfg -z %s 'remove attr name=do-not-inventory'" % u, check=False)
    if vm['state'] == 'running':
        ssh(lab, src, 'vmadm start %s' % u, check=False)


@pytest.mark.parametrize('alias,target', CASES)
def test_manual_migration(lab, alias, target):
    vm = lab.vms[alias]
    src, dst = vm['cn'], lab.cns[target - 1]
    assert vm['state'] == 'running' and src is not dst
    before = vm_get(lab, src, vm['uuid'])
    # every disk beside the zone dataset is sent (a bhyve disk is below it: -R)
    assert [d['zfs_filesystem'] for d in before.get('disks', [])
            if not d['zfs_filesystem'].startswith('zones/%s/' % vm['uuid'])] == \
        top_datasets(vm)[1:]
    try:
        migrate_by_hand(lab, vm, dst)
        after = vm_get(lab, dst, vm['uuid'])
        assert after['state'] == 'running' and after['server_uuid'] == dst.uuid
        assert vm_get(lab, src, vm['uuid'])['state'] == 'stopped'
        same = {'state', 'server_uuid', 'autoboot', 'zone_state'}
        assert {k: v for k, v in after.items() if k not in same} == \
            {k: v for k, v in before.items() if k not in same}
        for ds in top_datasets(vm):
            assert snapshots(lab, dst, ds) == snapshots(lab, src, ds)
            theirs = lab.file_checksums(src, '/' + ds)
            ours = lab.file_checksums(dst, '/' + ds)
            assert ours == theirs
        everything = {p for ds in top_datasets(vm) for p in lab.file_checksums(dst, '/' + ds)}
        assert any(p.endswith('written-after-m1.bin') for p in everything)
        assert any(p.endswith('data.bin') for p in everything)
    finally:
        put_back(lab, vm, dst)
    assert vm_get(lab, src, vm['uuid'])['state'] == 'running'
    assert ssh(lab, dst, 'vmadm get %s' % vm['uuid'], check=False).returncode == 1

