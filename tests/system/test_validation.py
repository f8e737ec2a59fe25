"""Every validation rule of product.md step 1, through the real migctl and
migd against the lab: each refusal exits 1, names its rule, and changes
nothing in the APIs, on the CNs, or in migd's job list.  Also proves that a
VM alias holding shell metacharacters never reaches a remote shell.
"""
import copy
import json
import os
import shutil
import uuid

import pytest

import conftest
from migd_daemon import Migd


# A long interval keeps an incremental job in sync for the busy-VM test.
migd = conftest.migd_fixture(incremental={'interval_s': 3600})


def cn_snapshot(lab):
    """What the CNs hold: datasets and zone states."""
    out = []
    for cn in lab.cns:
        out.append(lab.cn_run(cn, 'zfs list -H -o name -t all; vmadm list -p -o uuid,state').stdout)
    return out


def refused(lab, migd, rule, *args):
    state_before = lab.api_state()
    cns_before = cn_snapshot(lab)
    jobs_before = migd.jobs()
    p = migd.ctl('migrate', *args)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert rule in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr  # one line
    assert lab.api_state() == state_before
    assert cn_snapshot(lab) == cns_before
    assert migd.jobs() == jobs_before
    return p.stderr


def test_malformed_vm(lab, migd):
    refused(lab, migd, 'InvalidVmUuid', 'web0;id', 'cn2')


def test_unknown_vm(lab, migd):
    refused(lab, migd, 'VmNotFound', str(uuid.uuid4()), 'cn2')


def test_unknown_target(lab, migd):
    refused(lab, migd, 'TargetNotFound', lab.vms['web0']['uuid'], 'cn99')


def test_target_is_source(lab, migd):
    refused(lab, migd, 'TargetIsSource', lab.vms['web0']['uuid'], 'cn1')


def test_core_zone(lab, migd):
    refused(lab, migd, 'CoreZone', lab.vms['core0']['uuid'], 'cn2')


def test_nat_zone(lab, migd):
    refused(lab, migd, 'NatZone', lab.vms['nat0']['uuid'], 'cn2')


def test_missing_nic_tag(lab, migd):
    refused(lab, migd, 'TargetMissingNicTag', lab.vms['stor0']['uuid'], 'cn2')


def server(lab, n):
    return lab.api('cnapi', 'GET', '/servers/%s' % lab.cns[n - 1].uuid)[1]


@pytest.mark.parametrize('field,rule', [('unreserved_ram', 'TargetInsufficientRam'),
                                        ('unreserved_disk', 'TargetInsufficientDisk')])
def test_capacity(lab, migd, field, rule):
    keep = server(lab, 2)[field]
    lab.api_patch('servers', lab.cns[1].uuid, {field: 1})
    try:
        refused(lab, migd, rule, lab.vms['web0']['uuid'], 'cn2')
    finally:
        lab.api_patch('servers', lab.cns[1].uuid, {field: keep})


def foreign_record(lab, of, other):
    """(field, new value, the foreign dataset) for VM `of`: a record that names
    a dataset of VM `other`, beside or instead of one of its own."""
    vm = lab.api('vmapi', 'GET', '/vms/%s' % lab.vms[of]['uuid'])[1]
    o = lab.vms[other]['uuid']
    if vm.get('disks'):
        disks = copy.deepcopy(vm['disks'])
        disks[-1]['zfs_filesystem'] = 'zones/%s/data' % o
        return 'disks', disks, 'zones/%s/data' % o
    return 'datasets', vm['datasets'] + ['zones/%s-disk0' % o], 'zones/%s-disk0' % o


@pytest.mark.parametrize('of,other', [('kvm0', 'deleg0'), ('deleg0', 'kvm0')])
def test_dataset_of_another_vm_is_refused(lab, migd, of, other):
    """A VMAPI record naming another VM's dataset (a KVM disk pointing at
    deleg0's delegated dataset, a delegated dataset that is kvm0's disk) would
    get it copied and later destroyed on the source: refused, nothing changes."""
    u = lab.vms[of]['uuid']
    field, value, foreign = foreign_record(lab, of, other)
    keep = lab.api('vmapi', 'GET', '/vms/%s' % u)[1][field]
    lab.api_patch('vms', u, {field: value})
    try:
        msg = refused(lab, migd, 'ForeignDataset', u, 'cn1')
        assert foreign in msg and u in msg, msg
    finally:
        lab.api_patch('vms', u, {field: keep})


def test_older_platform_refused_then_allowed_with_D(lab, migd):
    refused(lab, migd, 'TargetPlatformOlder', lab.vms['web0']['uuid'], 'cn3')
    p = migd.ctl('migrate', '-n', '-D', lab.vms['web0']['uuid'], 'cn3')
    assert p.returncode == 0, p.stderr
    assert 'cn3' in p.stdout
    assert migd.jobs() == []  # a dry run creates no job


def test_unreachable_cn(lab, migd):
    s = server(lab, 2)
    sysinfo = copy.deepcopy(s['sysinfo'])
    sysinfo['Admin IP'] = '127.0.0.99'  # nothing listens there
    lab.api_patch('servers', s['uuid'], {'sysinfo': sysinfo})
    try:
        refused(lab, migd, 'CnUnreachable', lab.vms['web0']['uuid'], 'cn2')
    finally:
        lab.api_patch('servers', s['uuid'], {'sysinfo': s['sysinfo']})


def test_host_key_mismatch(lab, build_dir, tmp_path):
    # known_hosts where cn2's entry carries cn3's key.
    lines = open(lab.known_hosts).read().splitlines()
    keys = {l.split()[0]: l.split(None, 1)[1] for l in lines if l.strip()}
    ip2, ip3 = [l.split()[0] for l in lines if l.strip()][1:3]
    bad = tmp_path / 'known_hosts'
    bad.write_text('\n'.join('%s %s' % (h, keys[ip3] if h == ip2 else k) for h, k in keys.items()) + '\n')
    d = Migd(lab, build_dir, tmp_path / 'migd', ssh={'known_hosts': str(bad)}).start()
    try:
        refused(lab, d, 'HostKeyMismatch', lab.vms['web0']['uuid'], 'cn2')
    finally:
        assert d.stop() == 0


def test_busy_vm_then_abort_rolls_back(lab, migd):
    v = lab.vms['stopped0']
    p = migd.ctl('migrate', '-i', v['uuid'], 'cn2')
    assert p.returncode == 0, p.stderr
    job = migd.jobs()[0]
    # Wait until the first full send is done and the job waits for finish.
    p = migd.ctl('watch', job['uuid'])
    assert migd.job(job['uuid'])['state'] == 'waiting', migd.log_text()[-3000:]
    msg = refused(lab, migd, 'VmAlreadyMigrating', v['uuid'], 'cn3')
    assert job['uuid'] in msg
    p = migd.ctl('abort', job['uuid'])
    assert p.returncode == 0, p.stderr
    p = migd.ctl('watch', job['uuid'])
    final = migd.job(job['uuid'])
    assert final['state'] == 'aborted', final
    # Nothing of the VM is left on cn2; the source is untouched.
    assert v['uuid'] not in lab.cn_run(lab.cns[1], 'zfs list -H -o name -t all').stdout
    snaps = lab.cn_run(v['cn'], 'zfs list -H -o name -t snapshot -r zones/%s' % v['uuid']).stdout
    assert 'migd-' not in snaps


def test_shell_metacharacters_never_reach_a_shell(lab, migd):
    v = lab.vms['web0']
    marker = '/tmp/migd-pwned-%s' % uuid.uuid4().hex
    evil = 'x$(touch %s); touch %s `touch %s`' % (marker, marker, marker)
    vmobj = lab.api('vmapi', 'GET', '/vms/%s' % v['uuid'])[1]
    vmobj['alias'] = evil
    vmobj['hostname'] = evil
    assert lab.api('vmapi', 'PUT', '/vms/%s' % v['uuid'], vmobj)[0] == 200
    p = migd.ctl('migrate', '-w', v['uuid'], 'cn2')
    assert p.returncode == 0, p.stderr + migd.log_text()[-3000:]
    # The CNs share /tmp with the head node in the lab: no shell ran the alias.
    assert not os.path.exists(marker)
    job = migd.jobs(v['uuid'] and 'vm_uuid=%s' % v['uuid'])[0]
    assert job['vm_alias'] == evil and job['state'] == 'switched'
    refused(lab, migd, 'InvalidVmUuid', evil, 'cn3')
