"""Checks the lab's emulated compute nodes against cn-commands.md.

Every command and flag migd may run on a CN is run here the way migd runs it
(over real SSH with host keys checked, or inside the CN's namespace), and its
output format, exit status and state changes are asserted, error cases
included.  Tests that change a CN use their own scratch zones and datasets
on cn3 (or put seeded VMs back as they found them).  The CNs' vm-agents run
all along: scratch zones show up in VMAPI (and are marked destroyed when
deleted) unless they carry the do-not-inventory attr.
"""
import json
import os
import re
import subprocess
import time
import uuid

import pytest

UUID_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
VM_KEYS = {'uuid', 'alias', 'brand', 'state', 'zonepath', 'zfs_filesystem', 'quota', 'ram',
           'nics', 'autoboot', 'create_timestamp', 'server_uuid', 'owner_uuid'}


def ssh(lab, cn, cmd, input=None):
    return subprocess.run(lab.ssh_argv(cn) + [cmd], input=input, capture_output=True,
                          text=True, timeout=120)


def scratch_zone(lab, cn, brand='joyent'):
    """Configure (only) a new zone on cn from a seeded VM's export."""
    src = lab.vms['web0']
    cfg = lab.cn_run(src['cn'], 'zonecfg -z %s export' % src['uuid']).stdout
    u = str(uuid.uuid4())
    cfg = cfg.replace(src['uuid'], u).replace('set brand=joyent', 'set brand=' + brand)
    lab.cn_run(cn, 'cat > /tmp/%s.zcfg && zonecfg -z %s -f /tmp/%s.zcfg' % (u, u, u), input=cfg)
    return u


def scratch_config(lab, of='web0'):
    """f(u): a seeded VM's `zonecfg export` with u in place of its UUID."""
    src = lab.vms[of]
    cfg = lab.cn_run(src['cn'], 'zonecfg -z %s export' % src['uuid']).stdout
    return lambda u: cfg.replace(src['uuid'], u)


def wait_for(pred, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, 'timed out waiting for ' + what
        time.sleep(0.1)


def send_receive(lab, src, dst, send_cmd, recv_cmd, send_stderr=None):
    """Pipes send_cmd on src into recv_cmd on dst, each over ssh (as migd's
    relay does); asserts both exit 0.  send_stderr: the send's stderr (Popen's)."""
    send = subprocess.Popen(lab.ssh_argv(src) + [send_cmd], stdout=subprocess.PIPE,
                            stderr=send_stderr)
    recv = subprocess.run(lab.ssh_argv(dst) + [recv_cmd], stdin=send.stdout,
                          capture_output=True, text=True)
    send.stdout.close()
    assert send.wait() == 0 and recv.returncode == 0, recv.stderr


def zone_line(lab, cn, u):
    for line in lab.cn_run(cn, 'zoneadm list -pc').stdout.splitlines():
        if line.split(':')[1] == u:
            return line.split(':')
    return None


# ---------------------------------------------------------------- facts about a CN

def test_sysinfo_over_ssh_describes_the_cn(lab):
    for cn in lab.cns:
        p = ssh(lab, cn, 'sysinfo')
        assert p.returncode == 0, p.stderr
        info = json.loads(p.stdout)
        assert info['UUID'] == cn.uuid and info['Hostname'] == cn.hostname
        assert info['Admin IP'] == cn.ip and info['Zpool'] == 'zones'
        assert re.match(r'^\d{8}T\d{6}Z$', info['Live Image'])
        tags = set()
        for nic in info['Network Interfaces'].values():
            tags.update(nic['NIC Names'])
        assert {'admin', 'external'} <= tags
        # cn1 and cn2 have an underlay (NIC tag sdc_underlay, and the vnic on it
        # that carries the sdc_overlay fabrics), cn3 none
        overlays = [t for v in info.get('Virtual Network Interfaces', {}).values()
                    for t in v.get('Overlay Nic Tags', [])]
        if cn.n in (1, 2):
            assert 'sdc_underlay' in tags and overlays == ['sdc_overlay'], info
            vnic = info['Virtual Network Interfaces']['sdc_underlay0']
            assert 'sdc_underlay' in info['Network Interfaces'][vnic['Host Interface']]['NIC Names']
        else:
            assert 'sdc_underlay' not in tags and overlays == [], info
    assert lab.cn_run(lab.cns[2], 'sysinfo').stdout.count('20230101T000000Z') == 1


def test_zpool_list_parsable_bytes(lab):
    out = ssh(lab, lab.cns[0], 'zpool list -H -p -o name,size,free zones').stdout
    name, size, free = out.rstrip('\n').split('\t')
    assert name == 'zones'
    # zfs-fuse prints 3 significant digits (docs/lab.md): a 64 GiB pool whose
    # use is below 0.1 GiB shows free == size
    assert int(size) >= int(free) > 100 << 20
    assert abs(int(size) - lab._pool_size()) <= lab._pool_size() // 200


def test_imgadm_get_installed_and_not_installed(lab):
    img = lab.vms['web0']['image_uuid']
    p = ssh(lab, lab.cns[0], 'imgadm get %s' % img)
    assert p.returncode == 0
    got = json.loads(p.stdout)
    assert got['manifest']['uuid'] == img and got['zpool'] == 'zones'
    assert got['manifest']['type'] == 'zone-dataset'
    missing = lab.vms['lx0']['image_uuid']
    p = ssh(lab, lab.cns[2], 'imgadm get %s' % missing)
    assert p.returncode == 3
    assert 'ImageNotInstalled' in p.stderr and p.stdout == ''


def test_imgadm_import_installs_final_snapshot_and_is_idempotent(lab):
    cn, img = lab.cns[2], lab.vms['web0']['image_uuid']
    for _ in range(2):
        p = ssh(lab, cn, 'imgadm import -q %s' % img)
        assert p.returncode == 0, p.stderr
    snaps = lab.cn_run(cn, 'zfs list -H -o name -t snapshot -d 1 zones/%s' % img).stdout
    assert snaps.split() == ['zones/%s@final' % img]
    assert ssh(lab, cn, 'imgadm get %s' % img).returncode == 0


def test_imgadm_import_of_unknown_image_fails(lab):
    p = ssh(lab, lab.cns[2], 'imgadm import -q %s' % uuid.uuid4())
    assert p.returncode == 1 and 'ActiveImageNotFound' in p.stderr


# ---------------------------------------------------------------- instances

def test_vmadm_get_has_the_documented_fields(lab):
    for alias, vm in lab.vms.items():
        p = ssh(lab, vm['cn'], 'vmadm get %s' % vm['uuid'])
        assert p.returncode == 0, p.stderr
        got = json.loads(p.stdout)
        assert VM_KEYS <= set(got), alias
        assert got['uuid'] == vm['uuid'] and got['alias'] == alias
        assert got['zfs_filesystem'] == 'zones/' + vm['uuid']
        assert got['zonepath'] == '/zones/' + vm['uuid']
        assert got['server_uuid'] == vm['cn'].uuid and got['quota'] == 10
        assert got['state'] == vm['state']
        if got['brand'] in ('bhyve', 'kvm'):
            assert got['disks'][0]['image_uuid'] == vm['image_uuid']
            assert 'image_uuid' not in got
        else:
            assert got['image_uuid'] == vm['image_uuid']


def test_vmadm_get_matches_what_vmapi_was_seeded_with(lab):
    state = lab.api_state()
    vm = lab.vms['web0']
    vmapi = next(v for v in state['vms'] if v['uuid'] == vm['uuid'])
    local = json.loads(lab.cn_run(vm['cn'], 'vmadm get %s' % vm['uuid']).stdout)
    assert local == vmapi


def test_seeded_lab_agents_find_vmapi_up_to_date(lab):
    """The agents started with the CNs and synced during `up`: VMAPI already
    held every seeded VM exactly as its CN reports it, so nothing was PUT."""
    state = {v['uuid']: v for v in lab.api_state()['vms']}
    for alias, vm in lab.vms.items():
        assert state[vm['uuid']] == json.loads(
            lab.cn_run(vm['cn'], 'vmadm get %s' % vm['uuid']).stdout), alias
    for cn in lab.cns:
        agent = json.load(open(os.path.join(cn.dir, 'state', 'agent.json')))
        assert agent['synced'] and agent['vmapi_url'] == lab.api_urls['vmapi']
        assert [e for e in lab.agent_log(cn) if e['uuid'] in state] == []


def test_seeded_special_vms(lab):
    core = json.loads(lab.cn_run(lab.cns[0], 'vmadm get %s' % lab.vms['core0']['uuid']).stdout)
    assert core['tags']['smartdc_role'] == 'vmapi'
    assert core['owner_uuid'] == lab.api_state()['admin_uuid']
    nat = json.loads(lab.cn_run(lab.cns[0], 'vmadm get %s' % lab.vms['nat0']['uuid']).stdout)
    assert 'com.joyent:ipnat_subnet' in nat['internal_metadata']
    web = json.loads(lab.cn_run(lab.cns[0], 'vmadm get %s' % lab.vms['web0']['uuid']).stdout)
    assert len(web['nics']) == 2 and web['nics'][0]['primary'] is True


def vmadm_get(lab, alias):
    vm = lab.vms[alias]
    return json.loads(lab.cn_run(vm['cn'], 'vmadm get %s' % vm['uuid']).stdout)


def test_seeded_brands_cn1_unchanged_and_the_new_ones_on_cn2(lab):
    """cn1 keeps exactly its seven VMs (an evacuation test counts on them);
    the brands of issue 7 live on cn2."""
    on = {n: sorted(a for a, v in lab.vms.items() if v['cn'].n == n) for n in (1, 2, 3)}
    assert on[1] == sorted(['web0', 'lx0', 'stopped0', 'bhyve0', 'core0', 'nat0', 'stor0'])
    assert on[2] == sorted(['kvm0', 'docker0', 'deleg0', 'fabric0'])
    assert on[3] == []


def test_seeded_kvm_has_two_disks_beside_its_zone_dataset(lab):
    vm = lab.vms['kvm0']
    got = vmadm_get(lab, 'kvm0')
    u = vm['uuid']
    assert [d['zfs_filesystem'] for d in got['disks']] == ['zones/%s-disk0' % u,
                                                          'zones/%s-disk1' % u]
    boot, data = got['disks']
    assert boot['boot'] is True and boot['image_uuid'] == vm['image_uuid']
    # an empty data disk has no image (vmadm shows no image_uuid) and no origin
    assert data['boot'] is False and 'image_uuid' not in data and data['size'] == 5120
    assert zget(lab, vm['cn'], 'origin', 'zones/%s-disk0' % u) == 'zones/%s@final' % vm['image_uuid']
    assert zget(lab, vm['cn'], 'origin', 'zones/%s-disk1' % u) == '-'
    # a zvol reserves its size: the disk filesystems do (refreservation)
    for d in got['disks']:
        assert int(zget(lab, vm['cn'], 'refreservation', d['zfs_filesystem'])) == d['size'] << 20
    assert int(zget(lab, vm['cn'], 'quota', 'zones/' + u)) == 10 << 30
    for d in got['disks']:
        assert lab.cn_run(vm['cn'], 'cat /%s/hostname' % d['zfs_filesystem']).stdout == 'kvm0\n'


def test_seeded_bhyve_has_the_space_properties_vmadm_sets(lab):
    """VM.js setQuotaBhyve() (RFD 148): refquota is the VM's quota and the
    refreservation 1 MiB less; quota = reservation = that plus the disks'
    refreservation.  So there is no room for a snapshot of a disk that holds
    data of its own, as on a real CN: the quota must be raised first."""
    vm = lab.vms['bhyve0']
    cn, u = vm['cn'], vm['uuid']
    top, disk = 'zones/' + u, 'zones/%s/disk0' % u
    got = vmadm_get(lab, 'bhyve0')
    quota = zget(lab, cn, 'quota', top)
    assert got['quota'] == 10 and got['disks'][0]['zfs_filesystem'] == disk
    assert zget(lab, cn, 'origin', disk) == 'zones/%s@final' % vm['image_uuid']
    disk_res = int(zget(lab, cn, 'refreservation', disk))
    assert disk_res == got['disks'][0]['size'] << 20
    assert int(zget(lab, cn, 'refquota', top)) == 10 << 30
    assert int(zget(lab, cn, 'refreservation', top)) == (10 << 30) - (1 << 20)
    assert int(zget(lab, cn, 'quota', top)) == int(zget(lab, cn, 'reservation', top)) == \
        (10 << 30) + disk_res
    p = ssh(lab, cn, 'zfs snapshot -r %s@labquota' % top)
    try:
        assert p.returncode == 1
        assert "cannot create snapshot '%s@labquota': out of space" % disk in p.stderr
        assert lab.cn_run(cn, 'zfs list -H -o name -t snapshot -r %s' % top).stdout == ''
        # raised by what the disk's own data needs, the snapshot fits
        need = int(zget(lab, cn, 'referenced', disk))
        lab.cn_run(cn, 'zfs set quota=%d %s' % (int(quota) + need, top))
        p = ssh(lab, cn, 'zfs snapshot -r %s@labquota' % top)
        assert p.returncode == 0, p.stderr
    finally:
        lab.cn_run(cn, 'zfs destroy -r %s@labquota' % top, check=False)
        lab.cn_run(cn, 'zfs set quota=%s %s' % (quota, top))
    assert zget(lab, cn, 'quota', top) == quota


def test_seeded_docker_instance(lab):
    got = vmadm_get(lab, 'docker0')
    assert got['brand'] == 'lx' and got['docker'] is True
    assert got['image_uuid'] == lab.vms['docker0']['image_uuid']
    assert re.match(r'^[0-9a-f]{64}$', got['internal_metadata']['docker:id'])
    assert got['internal_metadata']['docker:imageuuid'] == got['image_uuid']
    assert got['tags'] == {'sdc_docker': True}
    image = lab.api('imgapi', 'GET', '/images/%s' % got['image_uuid'])[1]
    assert image['type'] == 'docker'
    assert lab.api('vmapi', 'GET', '/vms/%s' % got['uuid'])[1]['docker'] is True
    # no other VM says docker at all
    assert 'docker' not in vmadm_get(lab, 'lx0')


def test_seeded_delegated_dataset(lab):
    """VM.js: a `dataset` resource named ZONEROOT/data; vmadm shows it as
    `datasets` (delegate_dataset is a creation payload key only); booted, it
    is zoned=on, so the global zone does not mount it."""
    vm = lab.vms['deleg0']
    cn, u = vm['cn'], vm['uuid']
    got = vmadm_get(lab, 'deleg0')
    assert got['datasets'] == ['zones/%s/data' % u] and 'delegate_dataset' not in got
    assert 'datasets' not in vmadm_get(lab, 'web0')
    assert lab.api('vmapi', 'GET', '/vms/%s' % u)[1]['datasets'] == got['datasets']
    export = lab.cn_run(cn, 'zonecfg -z %s export' % u).stdout
    assert 'add dataset\nset name=zones/%s/data\nend' % u in export
    assert zget(lab, cn, 'zoned', 'zones/%s/data' % u) == 'on'
    assert zget(lab, cn, 'mounted', 'zones/%s/data' % u) == 'no'
    lab.cn_run(cn, 'zfs snapshot zones/%s/data@labread' % u)
    try:
        files = lab.snapshot_checksums(cn, 'zones/%s/data@labread' % u)
    finally:
        lab.cn_run(cn, 'zfs destroy zones/%s/data@labread' % u)
    assert set(files) == {'README', 'db/table.bin'}
    # a zone whose delegated dataset is missing does not attach
    k = str(uuid.uuid4())
    cfg = export.replace(u, k)
    lab.cn_run(lab.cns[2], 'cat > /tmp/{k}.zcfg && zonecfg -z {k} -f /tmp/{k}.zcfg && '
                           'zfs create zones/{k}'.format(k=k), input=cfg)
    try:
        p = ssh(lab, lab.cns[2], 'zoneadm -z %s attach' % k)
        assert p.returncode == 1 and 'dataset zones/%s/data does not exist' % k in p.stderr
    finally:
        lab.cn_run(lab.cns[2], 'zonecfg -z %s delete -F; zfs destroy -r zones/%s' % (k, k))


def test_seeded_fabric_nic(lab):
    """NAPI writes a fabric NIC's tag as RULE/VNET_ID; the VM, VMAPI and NAPI agree."""
    vm = lab.vms['fabric0']
    got = vmadm_get(lab, 'fabric0')
    [nic] = got['nics']
    status, net = lab.api('napi', 'GET', '/networks/%s' % nic['network_uuid'])
    assert status == 200 and net['fabric'] is True and net['nic_tag'] == 'sdc_overlay'
    assert nic['nic_tag'] == 'sdc_overlay/%d' % net['vnet_id']
    assert nic['vlan_id'] == net['vlan_id'] == 2 and nic['mtu'] == net['mtu'] == 8500
    status, nics = lab.api('napi', 'GET', '/nics?belongs_to_uuid=%s' % vm['uuid'])
    assert status == 200 and len(nics) == 1
    assert nics[0]['nic_tag'] == nic['nic_tag'] and nics[0]['fabric'] is True
    assert nics[0]['cn_uuid'] == vm['cn'].uuid and nics[0]['mac'] == nic['mac']
    assert lab.api('vmapi', 'GET', '/vms/%s' % vm['uuid'])[1]['nics'] == got['nics']


def test_vmadm_get_unknown_vm_exits_1_with_message(lab):
    u = str(uuid.uuid4())
    p = ssh(lab, lab.cns[0], 'vmadm get %s' % u)
    assert p.returncode == 1 and p.stdout == ''
    assert u in p.stderr and 'No such zone' in p.stderr


def test_vmadm_list_parsable(lab):
    cn = lab.cns[0]
    out = ssh(lab, cn, 'vmadm list -p -o uuid,state,brand,alias').stdout
    rows = {line.split(':')[3]: line.split(':') for line in out.splitlines()}
    mine = {a: v for a, v in lab.vms.items() if v['cn'] is cn}
    for alias, vm in mine.items():
        assert rows[alias] == [vm['uuid'], vm['state'], vm['brand'], alias]


def test_vmadm_stop_and_start(lab):
    cn, u = lab.cns[0], lab.vms['stopped0']['uuid']
    p = ssh(lab, cn, 'vmadm stop %s' % u)
    assert p.returncode == 1, 'stopping a stopped VM without -F is an error'
    try:
        assert ssh(lab, cn, 'vmadm start %s' % u).returncode == 0
        got = json.loads(ssh(lab, cn, 'vmadm get %s' % u).stdout)
        assert got['state'] == 'running' and got['autoboot'] is True
        line = zone_line(lab, cn, u)
        assert line[2] == 'running' and line[0].isdigit()
        assert ssh(lab, cn, 'vmadm start %s' % u).returncode == 1
    finally:
        assert ssh(lab, cn, 'vmadm stop -F %s' % u).returncode == 0
    got = json.loads(ssh(lab, cn, 'vmadm get %s' % u).stdout)
    assert got['state'] == 'stopped' and got['autoboot'] is False
    assert zone_line(lab, cn, u)[:3] == ['-', u, 'installed']


def test_vmadm_start_of_running_and_stop_of_stopped_fail(lab):
    """cn-commands.md: exit 1, "already running" / "not running".  (SmartOS's
    own vmadm has exited 0 here since OS-2061/OS-1962; see docs/lab.md.)"""
    cn, u = lab.cns[0], lab.vms['web0']['uuid']
    p = ssh(lab, cn, 'vmadm start %s' % u)
    assert (p.returncode, p.stdout, p.stderr) == (
        1, '', 'Unable to start VM %s: VM is already running\n' % u)
    u = lab.vms['stopped0']['uuid']
    p = ssh(lab, cn, 'vmadm stop %s' % u)
    assert (p.returncode, p.stdout, p.stderr) == (
        1, '', 'Unable to stop VM %s: VM is already not running\n' % u)
    # VM.js sets autoboot=false before it finds the VM stopped
    assert json.loads(lab.cn_run(cn, 'vmadm get %s' % u).stdout)['autoboot'] is False


def test_zoneadm_list_format(lab):
    out = ssh(lab, lab.cns[0], 'zoneadm list -pc').stdout.splitlines()
    assert out[0] == '0:global:running:/::liveimg:shared'
    for line in out[1:]:
        f = line.split(':')
        assert len(f) == 7
        assert UUID_RE.match(f[1]) and f[4] == f[1] and f[3] == '/zones/' + f[1]
        assert f[2] in ('running', 'installed', 'configured')
        assert (f[0] != '-') == (f[2] == 'running')
        assert f[6] == 'exclusive'


def test_zonecfg_export_import_attach_detach_delete(lab):
    cn = lab.cns[2]
    u = scratch_zone(lab, cn)
    assert zone_line(lab, cn, u)[2] == 'configured'
    got = json.loads(lab.cn_run(cn, 'vmadm get %s' % u).stdout)
    assert got['state'] == 'configured' and got['alias'] == 'web0'
    p = ssh(lab, cn, 'zoneadm -z %s attach' % u)
    assert p.returncode != 0 and 'does not exist' in p.stderr
    assert zone_line(lab, cn, u)[2] == 'configured'
    assert ssh(lab, cn, 'vmadm start %s' % u).returncode == 1
    lab.cn_run(cn, 'zfs create zones/%s' % u)
    assert ssh(lab, cn, 'zoneadm -z %s attach' % u).returncode == 0
    assert zone_line(lab, cn, u)[2] == 'installed'
    assert ssh(lab, cn, 'zoneadm -z %s attach' % u).returncode != 0
    assert ssh(lab, cn, 'zoneadm -z %s detach' % u).returncode == 0
    assert zone_line(lab, cn, u)[2] == 'configured'
    assert ssh(lab, cn, 'zonecfg -z %s delete -F' % u).returncode == 0
    assert zone_line(lab, cn, u) is None
    assert ssh(lab, cn, 'vmadm get %s' % u).returncode == 1
    assert u not in lab.cn_run(cn, 'cat /etc/zones/index').stdout
    lab.cn_run(cn, 'zfs destroy -r zones/%s' % u)


def test_zonecfg_create_over_existing_zone_is_refused(lab):
    """illumos check_if_zone_already_exists(): no terminal to ask on."""
    cn = lab.cns[2]
    u = scratch_zone(lab, cn)
    cfg = lab.cn_run(cn, 'zonecfg -z %s export' % u).stdout
    p = lab.cn_run(cn, 'cat > /tmp/again && zonecfg -z %s -f /tmp/again' % u, input=cfg,
                   check=False)
    assert p.returncode == 1
    assert p.stderr == ('On line 1 of /tmp/again:\nZone exists, input not from terminal and '
                        '-F not specified:\ncreate command ignored, exiting.\n')
    lab.cn_run(cn, 'zfs create zones/%s && zoneadm -z %s attach' % (u, u))
    p = lab.cn_run(cn, "zonecfg -z %s 'create -F'" % u, check=False)
    assert (p.returncode, p.stderr) == (1, 'Zone %s already installed; create not allowed.\n' % u)
    assert zone_line(lab, cn, u)[2] == 'installed'
    lab.cn_run(cn, 'zoneadm -z %s detach && zonecfg -z %s delete -F && zfs destroy -r zones/%s'
               % (u, u, u))


def test_zonecfg_f_takes_only_a_regular_file_or_stdin(lab):
    """illumos cmd_file(): `-f /dev/stdin` over SSH is a pipe, so it is refused."""
    cn = lab.cns[2]
    u, cfg = str(uuid.uuid4()), scratch_config(lab)
    for arg, setup in (('/dev/stdin', ''), ('/tmp', ''),
                       ('/tmp/fifo-%s' % u, 'mkfifo /tmp/fifo-{u}; (cat > /tmp/fifo-{u} &); ')):
        p = ssh(lab, cn, setup.format(u=u) + 'zonecfg -z %s -f %s' % (u, arg), input=cfg(u))
        assert (p.returncode, p.stderr) == (1, '%s is not a regular file.\n' % arg)
        assert zone_line(lab, cn, u) is None
    p = ssh(lab, cn, 'zonecfg -z %s -f /nonexistent' % u)
    assert (p.returncode, p.stderr) == (
        1, 'could not open file /nonexistent: No such file or directory\n')
    p = ssh(lab, cn, 'zonecfg -z %s -f -' % u, input=cfg(u))
    assert p.returncode == 0, p.stderr
    assert zone_line(lab, cn, u)[2] == 'configured'
    lab.cn_run(cn, 'zonecfg -z %s delete -F; rm -f /tmp/fifo-%s' % (u, u))


def test_zonecfg_delete_only_in_the_configured_state(lab):
    cn = lab.cns[2]
    u = scratch_zone(lab, cn)
    p = ssh(lab, cn, 'zonecfg -z %s delete' % u)
    assert (p.returncode, p.stderr) == (1, 'Input not from terminal and -F not specified:\n'
                                           'delete command ignored, exiting.\n')
    lab.cn_run(cn, 'zfs create zones/%s && zoneadm -z %s attach' % (u, u))
    p = ssh(lab, cn, 'zonecfg -z %s delete -F' % u)
    assert (p.returncode, p.stderr) == (
        1, 'Zone %s not in configured state; delete not allowed.\n' % u)
    assert zone_line(lab, cn, u)[2] == 'installed'
    lab.cn_run(cn, 'vmadm start %s' % u)
    p = ssh(lab, cn, 'zonecfg -z %s delete -F' % u)
    assert (p.returncode, p.stderr) == (
        1, '%s: Zone state is invalid for the requested operation\n' % u)
    lab.cn_run(cn, 'vmadm stop -F %s && zoneadm -z %s detach' % (u, u))
    assert ssh(lab, cn, 'zonecfg -z %s delete -F' % u).returncode == 0
    assert zone_line(lab, cn, u) is None
    lab.cn_run(cn, 'zfs destroy -r zones/%s' % u)


def test_zonecfg_second_attr_of_a_name_is_refused_and_changes_nothing(lab):
    """illumos end_func(): "An attr resource with the name '%s' already exists."
    and, from the command line, cleanup()'s "Resource incomplete."; no commit."""
    cn = lab.cns[2]
    u = scratch_zone(lab, cn)
    add = 'add attr; set name=do-not-inventory; set type=string; set value=true; end'
    assert ssh(lab, cn, "zonecfg -z %s '%s'" % (u, add)).returncode == 0
    before = lab.cn_run(cn, 'cat /etc/zones/%s.xml' % u).stdout
    p = ssh(lab, cn, "zonecfg -z %s 'set autoboot=false; %s'" % (u, add))
    assert (p.returncode, p.stderr) == (1, "An attr resource with the name 'do-not-inventory' "
                                           "already exists.\nResource incomplete.\n")
    p = lab.cn_run(cn, 'printf "%%s\\n" %s > /tmp/%s.dup && zonecfg -z %s -f /tmp/%s.dup'
                   % (' '.join("'%s'" % c.strip() for c in add.split(';')), u, u, u), check=False)
    assert (p.returncode, p.stderr) == (1, "On line 5 of /tmp/%s.dup:\nAn attr resource with "
                                           "the name 'do-not-inventory' already exists.\n" % u)
    p = ssh(lab, cn, "zonecfg -z %s 'remove attr name=no-such-attr'" % u)
    assert (p.returncode, p.stderr) == (1, 'remove attr: No such resource with that id\n')
    assert lab.cn_run(cn, 'cat /etc/zones/%s.xml' % u).stdout == before
    p = ssh(lab, cn, "zonecfg -z %s 'add attr; set name=x'" % u)
    assert (p.returncode, p.stderr) == (1, 'Resource incomplete.\n')
    assert lab.cn_run(cn, 'cat /etc/zones/%s.xml' % u).stdout == before
    lab.cn_run(cn, 'zonecfg -z %s delete -F' % u)


def test_zonecfg_subcommands_autoboot_and_do_not_inventory(lab):
    cn = lab.cns[2]
    u = scratch_zone(lab, cn)
    assert ssh(lab, cn, "zonecfg -z %s 'set autoboot=false'" % u).returncode == 0
    cmd = 'add attr; set name=do-not-inventory; set type=string; set value=true; end'
    assert ssh(lab, cn, "zonecfg -z %s '%s'" % (u, cmd)).returncode == 0
    got = json.loads(lab.cn_run(cn, 'vmadm get %s' % u).stdout)
    assert got['autoboot'] is False and got['do_not_inventory'] is True
    export = lab.cn_run(cn, 'zonecfg -z %s export' % u).stdout
    assert 'set autoboot=false' in export
    assert 'set name=do-not-inventory\nset type=string\nset value=true\nend' in export
    xml = lab.cn_run(cn, 'cat /etc/zones/%s.xml' % u).stdout
    assert 'name="do-not-inventory"' in xml and 'autoboot="false"' in xml
    assert ssh(lab, cn, "zonecfg -z %s 'set autoboot=true'" % u).returncode == 0
    assert json.loads(lab.cn_run(cn, 'vmadm get %s' % u).stdout)['autoboot'] is True
    lab.cn_run(cn, 'zonecfg -z %s delete -F' % u)


def test_zonecfg_on_unknown_zone_fails(lab):
    p = ssh(lab, lab.cns[2], "zonecfg -z %s 'set autoboot=false'" % uuid.uuid4())
    assert p.returncode == 1 and 'No such zone configured' in p.stderr


def test_zone_xml_edited_with_mv_is_honoured(lab):
    cn = lab.cns[2]
    u = scratch_zone(lab, cn)
    lab.cn_run(cn, "sed 's/autoboot=\"true\"/autoboot=\"false\"/' /etc/zones/{u}.xml > /tmp/{u}.x"
                   " && mv /tmp/{u}.x /etc/zones/{u}.xml".format(u=u))
    assert json.loads(lab.cn_run(cn, 'vmadm get %s' % u).stdout)['autoboot'] is False
    lab.cn_run(cn, 'zonecfg -z %s delete -F' % u)


def test_svcadm_restart_vm_agent_reports_to_vmapi(lab):
    cn, vm = lab.cns[0], lab.vms['web0']
    hidden = lab.vms['stopped0']
    lab.api_patch('vms', vm['uuid'], {'alias': 'renamed-by-test'})
    lab.api_patch('vms', hidden['uuid'], {'alias': 'hidden-by-test'})
    cmd = 'add attr; set name=do-not-inventory; set type=string; set value=true; end'
    lab.cn_run(cn, "zonecfg -z %s '%s'" % (hidden['uuid'], cmd))
    try:
        assert ssh(lab, cn, 'svcadm restart vm-agent').returncode == 0
        status, got = lab.api('vmapi', 'GET', '/vms/' + vm['uuid'])
        assert status == 200 and got['alias'] == 'web0' and got['server_uuid'] == cn.uuid
        status, got = lab.api('vmapi', 'GET', '/vms/' + hidden['uuid'])
        assert got['alias'] == 'hidden-by-test'
    finally:
        lab.cn_run(cn, "zonecfg -z %s 'remove attr name=do-not-inventory'" % hidden['uuid'])
        lab.api_patch('vms', hidden['uuid'], {'alias': 'stopped0'})
    assert ssh(lab, cn, 'svcadm restart no-such-service').returncode == 1


# ---------------------------------------------------------------- the zfs front

def zget(lab, cn, prop, ds):
    return lab.cn_run(cn, '/usr/sbin/zfs get -H -p -o value %s %s' % (prop, ds)).stdout.strip()


def test_zfs_list_p_gives_exact_bytes(lab):
    vm = lab.vms['bhyve0']
    out = ssh(lab, vm['cn'], 'zfs list -H -p -o name,used,referenced,origin,type '
                             '-r -t filesystem,volume zones/%s' % vm['uuid']).stdout
    rows = [line.split('\t') for line in out.splitlines()]
    assert [r[0] for r in rows] == ['zones/%s' % vm['uuid'], 'zones/%s/disk0' % vm['uuid']]
    for name, used, refer, origin, kind in rows:
        assert used == zget(lab, vm['cn'], 'used', name)
        assert refer == zget(lab, vm['cn'], 'referenced', name) and int(refer) > 0
        assert kind == 'filesystem'
    assert rows[0][3] == '-'
    assert rows[1][3] == 'zones/%s@final' % vm['image_uuid']


def test_zfs_snapshots_listed_oldest_first(lab):
    cn = lab.cns[2]
    ds = 'zones/snaporder%d' % uuid.uuid4().int
    lab.cn_run(cn, 'zfs create %s' % ds)
    for name in ('zz', 'aa', 'mm'):
        lab.cn_run(cn, 'zfs snapshot -r %s@%s' % (ds, name))
    out = ssh(lab, cn, 'zfs list -H -o name -t snapshot -d 1 %s' % ds).stdout
    assert out.split() == ['%s@zz' % ds, '%s@aa' % ds, '%s@mm' % ds]
    assert ssh(lab, cn, 'zfs destroy %s@aa' % ds).returncode == 0
    assert ssh(lab, cn, 'zfs destroy -r %s' % ds).returncode == 0


def test_zfs_get_set_quota(lab):
    cn = lab.cns[2]
    ds = 'zones/quota%d' % uuid.uuid4().int
    lab.cn_run(cn, 'zfs create %s' % ds)
    assert ssh(lab, cn, 'zfs get -H -p -o value quota %s' % ds).stdout == '0\n'
    assert ssh(lab, cn, 'zfs set quota=2g %s' % ds).returncode == 0
    assert ssh(lab, cn, 'zfs get -H -p -o value quota %s' % ds).stdout == '%d\n' % (2 << 30)
    assert ssh(lab, cn, 'zfs get -H -p -o value refquota %s' % ds).stdout == '0\n'
    lab.cn_run(cn, 'zfs destroy -r %s' % ds)


def test_zfs_get_written_is_unsupported_like_an_old_zfs(lab):
    vm = lab.vms['web0']
    p = ssh(lab, vm['cn'], 'zfs get -H -p -o value written@final zones/%s' % vm['uuid'])
    assert p.returncode == 2 and p.stdout == ''
    assert p.stderr == "bad property list: invalid property 'written@final'\n"


def test_zfs_destroy_unmounts_first(lab):
    cn = lab.cns[2]
    ds = 'zones/busy%d' % uuid.uuid4().int
    lab.cn_run(cn, 'zfs create %s && zfs create %s/child && echo x > /%s/child/f' % (ds, ds, ds))
    assert zget(lab, cn, 'mounted', ds + '/child') == 'yes'
    p = ssh(lab, cn, 'zfs destroy -r %s' % ds)
    assert p.returncode == 0, p.stderr
    assert lab.cn_run(cn, 'zfs list %s' % ds, check=False).returncode != 0


def test_zfs_send_v_and_receive_u_translate(lab):
    """send -v is accepted (progress dropped), receive -u leaves it unmounted."""
    src, dst = lab.cns[0], lab.cns[2]
    vm = lab.vms['stopped0']
    snap = 'zones/%s@frontcheck' % vm['uuid']
    lab.cn_run(src, 'zfs snapshot -r %s' % snap)
    target = 'zones/recvu%d' % uuid.uuid4().int
    try:
        send_receive(lab, src, dst, 'zfs send -v -p %s' % snap, 'zfs receive -u -F %s' % target,
                     send_stderr=subprocess.PIPE)
        assert zget(lab, dst, 'mounted', target) == 'no'
        assert zget(lab, dst, 'referenced', target) == zget(lab, src, 'referenced', snap)
    finally:
        lab.cn_run(src, 'zfs destroy %s' % snap)
        lab.cn_run(dst, 'zfs destroy -r %s' % target, check=False)


def test_zfs_unsupported_resumable_flags_fail(lab):
    """migd detects missing features: they must fail as an older illumos zfs
    fails (exit 2, its usage text after the first line), never be ignored."""
    vm = lab.vms['stopped0']
    ds = 'zones/%s' % vm['uuid']
    for cmd, first in (('zfs receive -s -d zones < /dev/null', "invalid option 's'"),
                       ('zfs send -t 1-abcdef-0123', "invalid option 't'"),
                       ('zfs send -c %s@final' % ds, "invalid option 'c'"),
                       ('zfs send -nvP %s@final' % ds, "invalid option 'n'"),
                       ('zfs get -H -p -o value receive_resume_token %s' % ds,
                        "bad property list: invalid property 'receive_resume_token'")):
        p = ssh(lab, vm['cn'], cmd)
        assert p.returncode == 2 and p.stdout == '', cmd
        assert p.stderr.splitlines()[0] == first, cmd


def test_zfs_get_guid_of_a_snapshot_survives_send(lab):
    src, dst = lab.cns[0], lab.cns[2]
    vm = lab.vms['stopped0']
    snap = 'zones/%s@guidcheck' % vm['uuid']
    target = 'zones/guid%d' % uuid.uuid4().int
    lab.cn_run(src, 'zfs snapshot %s' % snap)
    try:
        p = ssh(lab, src, 'zfs get -H -p -o value guid %s' % snap)
        assert p.returncode == 0 and re.match(r'^\d+\n$', p.stdout), p.stderr
        send_receive(lab, src, dst, 'zfs send %s' % snap, 'zfs receive -u %s' % target)
        got = ssh(lab, dst, 'zfs get -H -p -o value guid %s@guidcheck' % target).stdout
        assert got == p.stdout
    finally:
        lab.cn_run(src, 'zfs destroy %s' % snap)
        lab.cn_run(dst, 'zfs destroy -r %s' % target, check=False)


def running_scratch(lab, cn, of='web0', base=False):
    """A zone made from a seeded VM's config, with its datasets (its zone
    dataset a clone of zones/base-U@s when base), attached and started."""
    u = str(uuid.uuid4())
    lab.cn_run(cn, 'cat > /tmp/{u}.zcfg && zonecfg -z {u} -f /tmp/{u}.zcfg'.format(u=u),
               input=scratch_config(lab, of)(u))
    zone = ('zfs create zones/base-{u} && zfs snapshot zones/base-{u}@s && '
            'zfs clone zones/base-{u}@s zones/{u}' if base else 'zfs create zones/{u}')
    disks = ' && zfs create zones/{u}-disk0 && zfs create zones/{u}-disk1' if of == 'kvm0' else ''
    lab.cn_run(cn, (zone + disks + ' && zfs create zones/cores/{u} && zoneadm -z {u} attach'
                    ' && vmadm start {u}').format(u=u))
    return u


def test_zfs_destroy_of_a_running_zones_datasets_is_busy(lab):
    """illumos: the running zone holds them.  Snapshots may still go."""
    cn = lab.cns[2]
    u = running_scratch(lab, cn, base=True)
    k = running_scratch(lab, cn, of='kvm0')
    busy = "cannot destroy '%s': dataset is busy\n"
    for cmd, name in (('zfs destroy zones/%s' % u, 'zones/%s' % u),
                      ('zfs destroy -r zones/cores/%s' % u, 'zones/cores/%s' % u),
                      ('zfs destroy -R zones/base-%s' % u, 'zones/%s' % u),
                      ('zfs destroy zones/%s-disk0' % k, 'zones/%s-disk0' % k)):
        p = ssh(lab, cn, cmd)
        assert (p.returncode, p.stderr) == (1, busy % name), cmd
    p = ssh(lab, cn, 'zfs destroy -r zones/cores')
    assert p.returncode == 1 and re.match(busy % r'zones/cores/[-0-9a-f]+', p.stderr)
    p = ssh(lab, cn, 'zfs snapshot zones/%s@s1 && zfs destroy zones/%s@s1' % (u, u))
    assert p.returncode == 0, p.stderr
    names = lab.cn_run(cn, 'zfs list -H -o name').stdout.split()
    for name in ('zones/%s' % u, 'zones/cores/%s' % u, 'zones/base-%s' % u,
                 'zones/%s-disk0' % k, 'zones/cores/%s' % k):
        assert name in names
    for z in (u, k):
        lab.cn_run(cn, 'vmadm stop -F {z} && zoneadm -z {z} detach && zonecfg -z {z} delete -F'
                   .format(z=z))
    p = ssh(lab, cn, 'zfs destroy -R zones/base-{u} && zfs destroy zones/cores/{u} && '
                     'zfs destroy zones/{k} && zfs destroy zones/{k}-disk0 && '
                     'zfs destroy zones/{k}-disk1 && zfs destroy zones/cores/{k}'.format(u=u, k=k))
    assert p.returncode == 0, p.stderr


HOLD_TIME = r'\w{3} \w{3} [ \d]\d [ \d]\d:\d\d \d{4}'


def test_zfs_hold_makes_destroy_busy_until_released(lab):
    """illumos: a held snapshot is EBUSY to destroy, alone or under -r/-R,
    and nothing is destroyed; `zfs holds -H` lists NAME, TAG, TIMESTAMP."""
    cn = lab.cns[2]
    ds = 'zones/hold%d' % uuid.uuid4().int
    snap, child = ds + '@s1', ds + '/c@s1'
    busy = 'cannot destroy snapshot %s: dataset is busy\n'
    lab.cn_run(cn, 'zfs create {d} && zfs create {d}/c && zfs snapshot -r {d}@s1'.format(d=ds))
    try:
        p = ssh(lab, cn, 'zfs hold migd-job-1 ' + snap)
        assert (p.returncode, p.stdout, p.stderr) == (0, '', '')
        p = ssh(lab, cn, 'zfs destroy ' + snap)
        assert (p.returncode, p.stderr) == (1, busy % snap)
        p = ssh(lab, cn, 'zfs holds -H ' + snap)
        assert p.returncode == 0 and re.match(r'^%s\tmigd-job-1\t%s\n$' % (snap, HOLD_TIME),
                                              p.stdout), p.stdout
        p = ssh(lab, cn, 'zfs hold migd-job-1 ' + snap)
        assert (p.returncode, p.stderr) == (
            1, "cannot hold snapshot '%s': tag already exists on this dataset\n" % snap)
        lab.zfs_hold(cn, 'other', child)
        assert lab.zfs_holds(cn, child) == ['other']
        for cmd in ('zfs destroy -r ' + ds, 'zfs destroy -R ' + ds):
            p = ssh(lab, cn, cmd)
            assert (p.returncode, p.stderr) == (1, busy % snap + busy % child), cmd
        assert lab.cn_run(cn, 'zfs list -H -o name -t all -r ' + ds).stdout.split() == [
            ds, snap, ds + '/c', child]
        lab.zfs_release(cn, 'other', child)
        p = ssh(lab, cn, 'zfs release migd-job-1 ' + snap)
        assert (p.returncode, p.stdout, p.stderr) == (0, '', '')
        p = ssh(lab, cn, 'zfs holds -H ' + snap)
        assert (p.returncode, p.stdout, p.stderr) == (0, '', '')
        p = ssh(lab, cn, 'zfs release migd-job-1 ' + snap)
        assert (p.returncode, p.stderr) == (
            1, "cannot release hold from snapshot '%s': no such tag on this dataset\n" % snap)
        p = ssh(lab, cn, 'zfs holds -H %s@gone' % ds)
        assert (p.returncode, p.stdout, p.stderr) == (
            1, 'no datasets available\n', "cannot open '%s@gone': dataset does not exist\n" % ds)
        p = ssh(lab, cn, 'zfs release migd-job-1 %s@gone' % ds)
        assert (p.returncode, p.stderr) == (
            1, "cannot release hold from snapshot '%s@gone': dataset does not exist\n" % ds)
        p = ssh(lab, cn, 'zfs destroy %s && zfs destroy -r %s' % (snap, ds))
        assert (p.returncode, p.stderr) == (0, '')
        assert lab.cn_run(cn, 'zfs list ' + ds, check=False).returncode == 1
    finally:
        lab.cn_run(cn, 'zfs release other {c}; zfs release migd-job-1 {s}; zfs destroy -r {d}'
                   .format(c=child, s=snap, d=ds), check=False)


def test_zfs_destroy_is_busy_while_a_send_of_the_snapshot_runs(lab):
    """illumos' send long-holds its snapshot (and `send -R`/`-I` puts a
    temporary `.send-PID-1` hold on every snapshot of its stream); zfs-fuse
    alone lets the destroy through, so the front refuses it."""
    cn = lab.cns[2]
    ds = 'zones/sendhold%d' % uuid.uuid4().int
    lab.cn_run(cn, 'zfs create {d} && head -c 4M /dev/urandom > /{d}/f && zfs snapshot {d}@s1 '
                   '&& zfs snapshot {d}@s2'.format(d=ds))
    busy = 'cannot destroy snapshot %s: dataset is busy\n'
    procs = []

    def slow_send(flags, snap):
        """A send whose reader waits for `go`: it runs until the test lets it."""
        go = '/var/tmp/go-%s' % uuid.uuid4().hex
        proc = subprocess.Popen(lab.ssh_argv(cn) + [
            'zfs send %s %s | (while [ ! -e %s ]; do sleep 0.1; done; cat >/dev/null)'
            % (flags, snap, go)])
        proc.go = lambda: lab.cn_run(cn, 'touch %s' % go) and proc.wait(timeout=60)
        procs.append(proc)
        # zfs-fuse's zfs cuts its own argv at the '@': match the dataset only
        wait_for(lambda: lab.cn_run(cn, 'pgrep -f "^/usr/sbin/zfs send .*%s"' % ds,
                                    check=False).returncode == 0, 'the send to start')
        return proc
    try:
        proc = slow_send('', ds + '@s1')
        for cmd, out in (('zfs destroy %s@s1' % ds, busy % (ds + '@s1')),
                         ('zfs destroy -r ' + ds, busy % (ds + '@s1'))):
            p = ssh(lab, cn, cmd)
            assert (p.returncode, p.stderr) == (1, out), cmd
        assert lab.zfs_holds(cn, ds + '@s1') == []  # a long hold is no user hold
        assert proc.go() == 0
        proc = slow_send('-R', ds + '@s2')
        p = ssh(lab, cn, 'zfs holds -H %s@s1 %s@s2' % (ds, ds))
        tags = re.findall(r'^%s@s([12])\t(\.send-\d+-1)\t%s$' % (ds, HOLD_TIME), p.stdout, re.M)
        assert p.returncode == 0 and [n for n, _ in tags] == ['1', '2'], p.stdout
        assert tags[0][1] == tags[1][1]
        p = ssh(lab, cn, 'zfs destroy %s@s1' % ds)
        assert (p.returncode, p.stderr) == (1, busy % (ds + '@s1'))
        assert proc.go() == 0
        assert lab.zfs_holds(cn, ds + '@s2') == []
        p = ssh(lab, cn, 'zfs destroy %s@s1 && zfs destroy -r %s' % (ds, ds))
        assert (p.returncode, p.stderr) == (0, '')
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.go()
        lab.cn_run(cn, 'zfs destroy -r ' + ds, check=False)


def test_cores_dataset_creation(lab):
    cn = lab.cns[2]
    u = str(uuid.uuid4())
    lab.cn_run(cn, 'zfs create zones/%s' % u)
    p = ssh(lab, cn, 'zfs create -o quota=1000m -o compression=gzip -o mountpoint=/zones/%s/cores'
                     ' zones/cores/%s' % (u, u))
    assert p.returncode == 0, p.stderr
    assert zget(lab, cn, 'quota', 'zones/cores/' + u) == str(1000 << 20)
    assert zget(lab, cn, 'compression', 'zones/cores/' + u) == 'gzip'
    assert zget(lab, cn, 'mountpoint', 'zones/cores/' + u) == '/zones/%s/cores' % u
    lab.cn_run(cn, 'zfs destroy zones/cores/%s && zfs destroy -r zones/%s' % (u, u))


# ---------------------------------------------------------------- the Lab's API helpers

def test_lab_api_helpers_reach_the_emulated_apis(lab):
    u = lab.vms['web0']['uuid']
    lab.api_fault('vmapi', 'GET', '^/vms/%s$' % u, 503, count=1)
    assert lab.api('vmapi', 'GET', '/vms/' + u)[0] == 503
    status, got = lab.api('vmapi', 'GET', '/vms/' + u)
    assert status == 200 and got['alias'] == 'web0'
    status, servers = lab.api('cnapi', 'GET', '/servers?extras=capacity,sysinfo')
    by_uuid = {s['uuid']: s for s in servers}
    for cn in lab.cns:
        assert by_uuid[cn.uuid]['sysinfo']['Admin IP'] == cn.ip
    config = lab.migd_config('/tmp/x', transfer={'mode': 'direct'})
    assert config['transfer'] == {'mode': 'direct', 'retries': 5, 'limit_mbps': 0}
    assert config['apis'] == lab.api_urls and config['ssh']['identity'] == lab.identity


# ---------------------------------------------------------------- the vm-agent

def vmapi_vm(lab, u):
    status, got = lab.api('vmapi', 'GET', '/vms/' + u)
    return got if status == 200 else None


def agent_puts(lab, cn, u):
    return [e for e in lab.agent_log(cn) if e['uuid'] == u and e['by'] == 'vm-agent']


def test_vm_agent_reports_a_new_zone_then_its_deletion(lab):
    cn = lab.cns[2]
    u = scratch_zone(lab, cn)
    wait_for(lambda: vmapi_vm(lab, u), 'VMAPI to hear of the zone', 5)
    got = vmapi_vm(lab, u)
    assert got == json.loads(lab.cn_run(cn, 'vmadm get %s' % u).stdout)
    assert got['server_uuid'] == cn.uuid and got['state'] == 'configured'
    assert ssh(lab, cn, "zonecfg -z %s 'set autoboot=false'" % u).returncode == 0
    wait_for(lambda: vmapi_vm(lab, u)['autoboot'] is False, 'the change to be reported', 5)
    lab.cn_run(cn, 'zonecfg -z %s delete -F' % u)
    wait_for(lambda: vmapi_vm(lab, u)['state'] == 'destroyed', 'the deletion', 5)
    got = vmapi_vm(lab, u)
    assert got['zone_state'] == 'destroyed' and got['server_uuid'] == cn.uuid
    assert [e['status'] for e in agent_puts(lab, cn, u)] == [200, 200, 200]


def test_vm_agent_ignores_a_hidden_zone_and_its_deletion(lab):
    cn = lab.cns[2]
    u = str(uuid.uuid4())
    cfg = scratch_config(lab)(u) + ('add attr\nset name=do-not-inventory\nset type=string\n'
                                     'set value=true\nend\n')
    lab.cn_run(cn, 'cat > /tmp/%s.zcfg && zonecfg -z %s -f /tmp/%s.zcfg' % (u, u, u), input=cfg)
    v = lab.vms['stopped0']  # a reported zone that becomes hidden is no longer reported
    reported = len(agent_puts(lab, v['cn'], v['uuid']))
    hide = 'add attr; set name=do-not-inventory; set type=string; set value=true; end'
    lab.cn_run(v['cn'], "zonecfg -z %s '%s'" % (v['uuid'], hide))
    try:
        lab.cn_run(v['cn'], "zonecfg -z %s 'set autoboot=true'" % v['uuid'])
        time.sleep(1)  # four agent passes
        lab.cn_run(cn, 'zonecfg -z %s delete -F' % u)
        time.sleep(1)
        assert vmapi_vm(lab, u) is None and agent_puts(lab, cn, u) == []
        assert vmapi_vm(lab, v['uuid'])['autoboot'] is False
        assert len(agent_puts(lab, v['cn'], v['uuid'])) == reported
    finally:
        lab.cn_run(v['cn'], "zonecfg -z %s 'set autoboot=false; remove attr "
                            "name=do-not-inventory'" % v['uuid'])
    # unhidden, it is reported again (and VMAPI equals the CN once more)
    wait_for(lambda: len(agent_puts(lab, v['cn'], v['uuid'])) > reported, 'the unhidden zone', 5)
    assert vmapi_vm(lab, v['uuid']) == json.loads(
        lab.cn_run(v['cn'], 'vmadm get %s' % v['uuid']).stdout)


def test_vm_agent_is_quiet_while_nothing_changes(lab):
    before = [len(lab.agent_log(cn)) for cn in lab.cns]
    time.sleep(2.5)  # more than a periodic full pass (vm_agent.PERIODIC_S)
    assert [len(lab.agent_log(cn)) for cn in lab.cns] == before


def test_vm_agent_retries_while_vmapi_is_down(lab):
    cn = lab.cns[2]
    pid = (json.load(open(os.path.join(cn.dir, 'state', 'agent.json'))))['pid']
    lab.api_fault('vmapi', 'PUT', '^/vms/', 503, for_s=1.5, user_agent='^vm-agent/')
    u = scratch_zone(lab, cn)
    wait_for(lambda: vmapi_vm(lab, u), 'VMAPI to come back and hear of the zone', 10)
    puts = agent_puts(lab, cn, u)
    assert puts[0]['status'] == 503 and puts[-1]['status'] == 200
    assert json.load(open(os.path.join(cn.dir, 'state', 'agent.json')))['pid'] == pid
    lab.cn_run(cn, 'zonecfg -z %s delete -F' % u)


# ---------------------------------------------------------------- each CN's own home

def test_each_cn_has_its_own_home_and_var_tmp(lab, tmp_path):
    """A key in cn2's ~/.ssh/authorized_keys (written as migd's direct mode
    does) lets its holder into cn2 only; /var/tmp files stay on their CN."""
    cn1, cn2 = lab.cns[0], lab.cns[1]
    key = str(tmp_path / 'id')
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'lab-home-test',
                    '-f', key], check=True)
    line = open(key + '.pub').read().strip()
    assert ssh(lab, cn2, 'echo ~').stdout == '/root\n'
    p = ssh(lab, cn2, "mkdir -p -m 700 ~/.ssh && printf '%%s\\n' '%s' >> ~/.ssh/authorized_keys"
            % line)
    assert p.returncode == 0, p.stderr
    argv = lab.ssh_argv(cn1)
    argv[argv.index(lab.identity)] = key
    try:
        for cn, want in ((cn2, 0), (cn1, 255)):
            p = subprocess.run(argv[:-1] + ['root@' + cn.ip, 'hostname; sysinfo'],
                               capture_output=True, text=True, timeout=60)
            assert p.returncode == want, (cn.hostname, p.stderr)
        assert lab.cn_run(cn1, 'test -e /root/.ssh/authorized_keys', check=False).returncode
    finally:
        lab.cn_run(cn2, "sed '/ lab-home-test$/d' ~/.ssh/authorized_keys > ~/.ssh/ak.tmp && "
                        "mv ~/.ssh/ak.tmp ~/.ssh/authorized_keys")
    name = '/var/tmp/lab-test-%s' % uuid.uuid4()
    assert ssh(lab, cn1, 'mkdir -m 700 %s && echo x > %s/id' % (name, name)).returncode == 0
    assert ssh(lab, cn1, 'cat %s/id' % name).stdout == 'x\n'
    assert ssh(lab, cn2, 'ls %s' % name).returncode != 0
    assert not os.path.exists(name)
    lab.cn_run(cn1, 'rm -rf %s' % name)


def test_sed_parses_options_as_illumos_does(lab):
    """illumos sed: -i takes the backup extension as its argument, so GNU's
    `sed -i SCRIPT FILE` fails there and leaves FILE alone; cn-commands.md
    removes a line through a temp file and mv."""
    cn = lab.cns[1]
    f = '/var/tmp/sed-%s' % uuid.uuid4()
    lab.cn_run(cn, "printf 'a\\nb migd-job-X\\nc\\n' > %s" % f)
    try:
        p = ssh(lab, cn, "sed -i '/ migd-job-X$/d' %s" % f)
        assert p.returncode == 1 and p.stderr.startswith('sed: '), p.stderr
        assert lab.cn_run(cn, 'cat %s' % f).stdout == 'a\nb migd-job-X\nc\n'
        p = ssh(lab, cn, 'sed -i')
        assert (p.returncode, p.stderr.splitlines()[0]) == (
            1, 'sed: option requires an argument -- i')
        p = ssh(lab, cn, "echo x | sed -i '' 1d")
        assert (p.returncode, p.stderr) == (1, 'sed: -I or -i may not be used with stdin\n')
        # -i with an explicit (empty) extension is illumos' in-place edit
        p = ssh(lab, cn, "sed -i '' '/ migd-job-X$/d' %s" % f)
        assert p.returncode == 0, p.stderr
        assert lab.cn_run(cn, 'cat %s' % f).stdout == 'a\nc\n'
        # and the portable way: a temp file and mv
        p = ssh(lab, cn, "sed '/^a$/d' {f} > {f}.tmp && mv {f}.tmp {f}".format(f=f))
        assert p.returncode == 0 and lab.cn_run(cn, 'cat %s' % f).stdout == 'c\n'
        assert ssh(lab, cn, "printf 'q\\n' | sed -n 's/q/r/p'").stdout == 'r\n'
    finally:
        lab.cn_run(cn, 'rm -f %s %s.tmp' % (f, f))


def direct_key(lab, tmp_path, job):
    """A one-job ed25519 key as migd makes it: (private key text, public key)."""
    key = str(tmp_path / ('id-' + job))
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', key],
                   check=True)
    kind, blob = open(key + '.pub').read().split()[:2]
    return open(key).read(), '%s %s' % (kind, blob)


def known_host_lines(lab, cn):
    host = cn.ip if lab.ssh_port == 22 else '[%s]:%d' % (cn.ip, lab.ssh_port)
    return ''.join(line for line in open(lab.known_hosts) if line.split()[0] == host)


def test_direct_transfer_from_cn_to_cn(lab, tmp_path):
    """cn-commands.md "Direct transfer", as migd runs it: the key line on the
    target, the key and known_hosts on the source, `zfs send | ssh` from the
    source's admin IP, received by the forced command in the target's own
    namespace; the key works from its `from=` address only, runs only its
    command, and is gone once its line is removed; a host key the source
    does not know is refused."""
    src, dst, other = lab.cns[0], lab.cns[1], lab.cns[2]
    job = str(uuid.uuid4())
    private, public = direct_key(lab, tmp_path, job)
    opts = ',no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding'
    line = 'from="%s",command="zfs receive -F -d zones"%s %s migd-job-%s' % (src.ip, opts,
                                                                                 public, job)
    ds = 'zones/direct%d' % uuid.uuid4().int
    tmp = '/var/tmp/migd-%s' % job
    client = ('ssh -T -b {ip} -i {tmp}/id -o UserKnownHostsFile={tmp}/known_hosts '
              '-o StrictHostKeyChecking=yes -o BatchMode=yes root@{dst}')
    try:
        p = ssh(lab, dst, "mkdir -p -m 700 ~/.ssh && printf '%%s\\n' '%s' >> "
                          "~/.ssh/authorized_keys" % line)
        assert p.returncode == 0, p.stderr
        for cn in (src, other):
            p = ssh(lab, cn, 'mkdir -m 700 {t} && cat > {t}/id && chmod 600 {t}/id'.format(t=tmp),
                    input=private)
            assert p.returncode == 0, p.stderr
            p = ssh(lab, cn, 'cat > %s/known_hosts' % tmp, input=known_host_lines(lab, dst))
            assert p.returncode == 0, p.stderr
        lab.cn_run(src, 'zfs create {d} && head -c 300K /dev/urandom > /{d}/f && '
                        'zfs snapshot {d}@s1'.format(d=ds))
        send = 'zfs send %s@s1 | ' % ds + client

        # from the source's admin IP: received on the target, by the forced command
        p = ssh(lab, src, send.format(ip=src.ip, tmp=tmp, dst=dst.ip))
        assert p.returncode == 0, p.stderr
        assert (lab.cn_run(dst, 'sha256sum /%s/f' % ds).stdout.split()[0] ==
                lab.cn_run(src, 'sha256sum /%s/f' % ds).stdout.split()[0])
        assert zget(lab, dst, 'guid', ds + '@s1') == zget(lab, src, 'guid', ds + '@s1')
        # the key is honoured from the address its from= names, nowhere else
        lab.cn_run(dst, 'zfs destroy -r %s' % ds)
        for cn, ip in ((other, other.ip), (src, other.ip)):
            p = ssh(lab, cn, send.format(ip=ip, tmp=tmp, dst=dst.ip))
            assert p.returncode != 0 and 'Permission denied' in p.stderr, (cn.hostname, p.stderr)
        assert lab.cn_run(dst, 'zfs list %s' % ds, check=False).returncode == 1
        # whatever the client asks for, the forced command runs
        p = ssh(lab, src, (client + " 'touch /var/tmp/not-forced' < /dev/null").format(
            ip=src.ip, tmp=tmp, dst=dst.ip))
        assert lab.cn_run(dst, 'test -e /var/tmp/not-forced', check=False).returncode == 1
        # a target whose host key the source's known_hosts lacks is refused
        p = ssh(lab, src, 'cat > %s/known_hosts' % tmp, input=known_host_lines(lab, other))
        p = ssh(lab, src, send.format(ip=src.ip, tmp=tmp, dst=dst.ip))
        assert p.returncode != 0 and 'Host key verification failed' in p.stderr, p.stderr
        p = ssh(lab, src, 'cat > %s/known_hosts' % tmp, input=known_host_lines(lab, dst))
        # removed through a temp file and mv (sed -i is not illumos'), the key is gone
        p = ssh(lab, dst, "sed '/ migd-job-%s$/d' ~/.ssh/authorized_keys > "
                          "~/.ssh/authorized_keys.%s && mv ~/.ssh/authorized_keys.%s "
                          "~/.ssh/authorized_keys" % (job, job, job))
        assert p.returncode == 0, p.stderr
        assert job not in lab.cn_run(dst, 'cat ~/.ssh/authorized_keys').stdout
        p = ssh(lab, src, send.format(ip=src.ip, tmp=tmp, dst=dst.ip))
        assert p.returncode != 0 and 'Permission denied' in p.stderr, p.stderr
        # the job's files live on the CNs that got them only
        assert ssh(lab, dst, 'test -e %s' % tmp).returncode == 1
        assert ssh(lab, src, 'rm -rf %s' % tmp).returncode == 0
        assert ssh(lab, other, 'test -e %s/id' % tmp).returncode == 0
    finally:
        for cn in (src, other):
            lab.cn_run(cn, 'rm -rf %s' % tmp)
        lab.cn_run(src, 'zfs destroy -r %s' % ds, check=False)
        lab.cn_run(dst, 'zfs destroy -r %s' % ds, check=False)
        lab.cn_run(dst, "grep -v ' migd-job-%s$' ~/.ssh/authorized_keys > ~/.ssh/ak.tmp; "
                        "mv ~/.ssh/ak.tmp ~/.ssh/authorized_keys" % job, check=False)


# ---------------------------------------------------------------- injected command faults

def test_cn_fault_fails_a_command_count_times(lab):
    cn = lab.cns[2]
    lab.cn_fault(cn, 'zfs', r'^list', count=2, exit=1, stderr='cannot open: injected')
    try:
        for _ in range(2):
            p = ssh(lab, cn, 'zfs list -H -o name zones')
            assert (p.returncode, p.stdout, p.stderr) == (1, '', 'cannot open: injected\n')
        assert lab.cn_run(cn, 'zfs list -H -o name zones').stdout == 'zones\n'
        assert ssh(lab, cn, 'zfs get -H -o value name zones').returncode == 0
        assert ssh(lab, cn, 'zfs list -H -o name zones').stdout == 'zones\n'
        lab.cn_fault(cn, 'vmadm', r'^list', count=-1, exit=3, stdout='partial')
        for _ in range(3):
            p = ssh(lab, cn, 'vmadm list -p')
            assert (p.returncode, p.stdout) == (3, 'partial\n')
        lab.cn_faults_clear(cn)
        assert ssh(lab, cn, 'vmadm list -p').returncode == 0
        lab.cn_fault(cn, 'sysinfo', count=1, exit=None, delay_s=1)
        started = time.monotonic()
        p = ssh(lab, cn, 'sysinfo')
        assert p.returncode == 0 and time.monotonic() - started >= 1
        assert json.loads(p.stdout)['UUID'] == cn.uuid
        used = [e['prog'] for e in lab.cn_faults_log(cn)[-6:]]
        assert used == ['zfs'] * 2 + ['vmadm'] * 3 + ['sysinfo']
    finally:
        lab.cn_faults_clear(cn)


def test_cn_throttle_slows_zfs_send_to_the_rate(lab):
    cn = lab.cns[2]
    ds = 'zones/throttle%d' % uuid.uuid4().int
    lab.cn_run(cn, 'zfs create {d} && head -c 2M /dev/urandom > /{d}/f && zfs snapshot {d}@s'
               .format(d=ds))
    try:
        full = int(ssh(lab, cn, 'zfs send %s@s | wc -c' % ds).stdout)
        rate = full // 2
        lab.cn_throttle(cn, 'zfs', r'^send', bytes_per_s=rate)
        started = time.monotonic()
        p = ssh(lab, cn, 'zfs send %s@s | zfs receive %s-copy' % (ds, ds))
        took = time.monotonic() - started
        assert p.returncode == 0, p.stderr
        assert 1.8 <= took < 6, took
        assert (lab.cn_run(cn, 'sha256sum /%s/f /%s-copy/f' % (ds, ds)).stdout.split()[::2]
                == [lab.cn_run(cn, 'sha256sum /%s/f' % ds).stdout.split()[0]] * 2)
        lab.cn_faults_clear(cn)
        started = time.monotonic()
        assert int(ssh(lab, cn, 'zfs send %s@s | wc -c' % ds).stdout) == full
        assert time.monotonic() - started < 1.8
        lab.cn_throttle(cn, 'zfs', r'^receive', bytes_per_s=rate, stream='stdin')
        started = time.monotonic()
        p = ssh(lab, cn, 'zfs send %s@s | zfs receive %s-copy2' % (ds, ds))
        assert p.returncode == 0 and 1.8 <= time.monotonic() - started < 6, p.stderr
    finally:
        lab.cn_faults_clear(cn)
        lab.cn_run(cn, 'zfs destroy -r %s; zfs destroy -r %s-copy; zfs destroy -r %s-copy2'
                   % (ds, ds, ds), check=False)


# ---------------------------------------------------------------- invariant helper

def test_vm_placement_says_where_a_vm_is(lab):
    web, kvm, stopped = lab.vms['web0'], lab.vms['kvm0'], lab.vms['stopped0']
    lab.cn_run(web['cn'], 'zfs snapshot -r zones/%s@place' % web['uuid'])
    try:
        got = lab.vm_placement(web['uuid'])
    finally:
        lab.cn_run(web['cn'], 'zfs destroy -r zones/%s@place' % web['uuid'])
    u = web['uuid']
    assert got[1] == {'zone_state': 'installed', 'running': True, 'autoboot': True,
                      'hidden': False, 'datasets': ['zones/%s' % u, 'zones/cores/%s' % u],
                      'snapshots': ['zones/%s@place' % u]}
    empty = {'zone_state': None, 'running': False, 'autoboot': None, 'hidden': False,
             'datasets': [], 'snapshots': []}
    assert got[2] == got[3] == empty
    k = kvm['uuid']
    got = lab.vm_placement(k)
    assert sorted(got[2]['datasets']) == sorted(['zones/%s' % k, 'zones/%s-disk0' % k,
                                                 'zones/%s-disk1' % k, 'zones/cores/%s' % k])
    assert got[1] == got[3] == empty
    got = lab.vm_placement(stopped['uuid'])[1]
    assert (got['running'], got['autoboot'], got['zone_state']) == (False, False, 'installed')
    started = time.monotonic()
    for _ in range(10):
        lab.vm_placement(u)
    assert (time.monotonic() - started) / 10 < 0.5


# ---------------------------------------------------------------- zone health (issue 15)

def drop_scratch(lab, cn, u):
    """Stop, detach, delete a running_scratch() zone and its datasets."""
    lab.zone_restart_after_boot(cn, u, None)
    lab.smf_clear(cn, u)
    lab.cn_run(cn, 'vmadm stop -F {u}; zoneadm -z {u} detach; zonecfg -z {u} delete -F; '
                   'zfs destroy -r zones/{u}; zfs destroy zones/cores/{u}'.format(u=u),
               check=False)


def test_zoneadm_list_p_shows_running_zones_only_with_their_ids(lab):
    """illumos zoneadm.c zone_print_list(RUNNING): the global zone, then the
    kernel's running zones (zone id order), zoneid:zonename:state:zonepath:
    uuid:brand:ip-type; the ids are those of `zoneadm list -pc`."""
    cn = lab.cns[0]
    p = ssh(lab, cn, 'zoneadm list -p')
    assert p.returncode == 0 and p.stderr == ''
    lines = p.stdout.splitlines()
    assert lines[0] == '0:global:running:/::liveimg:shared'
    rows = [line.split(':') for line in lines[1:]]
    running = {v['uuid'] for v in lab.vms.values() if v['cn'] is cn and v['state'] == 'running'}
    assert {r[1] for r in rows} == running and len(rows) == len(running)
    assert lab.vms['stopped0']['uuid'] not in p.stdout
    for r in rows:
        assert len(r) == 7 and r[2] == 'running' and r[3] == '/zones/' + r[1] and r[4] == r[1]
    ids = [int(r[0]) for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and min(ids) > 0
    assert {r[1]: r[0] for r in rows} == {
        z[1]: z[0] for z in (zone_line(lab, cn, u) for u in running)}


def test_zone_restart_after_boot_changes_the_zone_id(lab):
    """A zone that reboots by itself a few seconds after boot: running
    again with a new zone id; with stays_down it ends stopped (and VMAPI
    hears of it); a restart due for a boot that was ended by hand does not
    hit the next boot."""
    cn = lab.cns[2]
    u = running_scratch(lab, cn)
    try:
        lab.cn_run(cn, 'vmadm stop %s' % u)
        lab.zone_restart_after_boot(cn, u, 1.5)
        assert ssh(lab, cn, 'vmadm start %s' % u).returncode == 0
        booted = time.monotonic()
        first = lab.zone_id(cn, u)
        assert first is not None
        wait_for(lambda: lab.zone_id(cn, u) != first, 'the self-restart', timeout=10)
        assert time.monotonic() - booted >= 1.4
        second = lab.zone_id(cn, u)
        assert second is not None and second > first
        assert json.loads(ssh(lab, cn, 'vmadm get %s' % u).stdout)['state'] == 'running'
        time.sleep(2)  # count=1: the reboot was the knob's only one
        assert lab.zone_id(cn, u) == second

        # a boot ended by hand before its restart fell due: the next boot keeps its id
        lab.zone_restart_after_boot(cn, u, 1.0)
        lab.cn_run(cn, 'vmadm stop %s && vmadm start %s && vmadm stop %s && vmadm start %s'
                   % (u, u, u, u))
        third = lab.zone_id(cn, u)
        time.sleep(1.8)
        assert lab.zone_id(cn, u) == third

        lab.zone_restart_after_boot(cn, u, 1.0, stays_down=True)
        lab.cn_run(cn, 'vmadm stop %s && vmadm start %s' % (u, u))
        wait_for(lambda: lab.zone_id(cn, u) is None, 'the zone going down', timeout=10)
        got = json.loads(ssh(lab, cn, 'vmadm get %s' % u).stdout)
        assert got['state'] == 'stopped' and got['autoboot'] is True
        wait_for(lambda: (vmapi_vm(lab, u) or {}).get('state') == 'stopped',
                 'VMAPI hearing of it')
    finally:
        drop_scratch(lab, cn, u)


SMF_SINCE = r'\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}'


def test_svcs_x_explains_services_in_maintenance(lab):
    """illumos svcs -x (explain.c print_service()): nothing while all is
    well; a paragraph per service in maintenance, blank lines between, in
    FMRI order; `svcadm clear` (smf_clear) brings them back."""
    cn = lab.cns[2]
    u = running_scratch(lab, cn)
    try:
        lab.cn_run(cn, 'mkdir -p /zones/%s/root' % u)
        p = ssh(lab, cn, 'svcs -z %s -x' % u)
        assert (p.returncode, p.stdout, p.stderr) == (0, '', '')
        lab.smf_maintenance(cn, u, 'svc:/network/http:apache', description='Apache 2 HTTP server')
        lab.smf_maintenance(cn, u, 'svc:/application/app:default',
                            reason='administrative_request')
        p = ssh(lab, cn, 'svcs -z %s -x' % u)
        assert p.returncode == 0 and p.stderr == '', p.stderr
        expected = (
            r'svc:/application/app:default \(\?\)\n'
            r'  Zone: {u}\n'
            r' State: maintenance since {t}\n'
            r'Reason: Maintenance requested by an administrator\.\n'
            r'   See: http://illumos\.org/msg/SMF-8000-63\n'
            r'   See: /zones/{u}/root/var/svc/log/application-app:default\.log\n'
            r'Impact: This service is not running\.\n'
            r'\n'
            r'svc:/network/http:apache \(Apache 2 HTTP server\)\n'
            r'  Zone: {u}\n'
            r' State: maintenance since {t}\n'
            r'Reason: Start method exited with \$SMF_EXIT_ERR_FATAL\.\n'
            r'   See: http://illumos\.org/msg/SMF-8000-KS\n'
            r'   See: /zones/{u}/root/var/svc/log/network-http:apache\.log\n'
            r'Impact: This service is not running\.\n').format(u=u, t=SMF_SINCE)
        assert re.fullmatch(expected, p.stdout), p.stdout
        # the state is in the zone dataset, as SMF's repository is (raises if not)
        lab.cn_run(cn, 'test -f /zones/%s/root/etc/svc/lab-smf.json' % u)
        lab.smf_clear(cn, u, 'svc:/application/app:default')
        p = ssh(lab, cn, 'svcs -z %s -x' % u)
        assert p.stdout.splitlines()[0] == 'svc:/network/http:apache (Apache 2 HTTP server)'
        assert 'application' not in p.stdout
        lab.smf_clear(cn, u)
        assert ssh(lab, cn, 'svcs -z %s -x' % u).stdout == ''
    finally:
        drop_scratch(lab, cn, u)


def test_svcs_x_maintenance_at_boot_and_method_reasons(lab):
    """An at_boot knob puts the service in maintenance when the zone boots
    on that CN, not before; the method failure wording of explain.c."""
    cn = lab.cns[2]
    u = running_scratch(lab, cn)
    try:
        lab.cn_run(cn, 'mkdir -p /zones/%s/root' % u)
        lab.smf_maintenance(cn, u, 'svc:/site/db:default', exit_status=1, at_boot=True)
        lab.smf_maintenance(cn, u, 'svc:/site/web:default', exit_status=96, at_boot=True)
        assert ssh(lab, cn, 'svcs -z %s -x' % u).stdout == ''
        lab.cn_run(cn, 'vmadm stop %s && vmadm start %s' % (u, u))
        out = ssh(lab, cn, 'svcs -z %s -x' % u).stdout
        reasons = [line for line in out.splitlines() if line.startswith('Reason: ')]
        assert reasons == ['Reason: Start method exited with status 1.',
                           'Reason: Start method exited with $SMF_EXIT_ERR_CONFIG.']
        lab.smf_clear(cn, u)
        lab.cn_run(cn, 'vmadm stop %s && vmadm start %s' % (u, u))  # count=1: used up
        assert ssh(lab, cn, 'svcs -z %s -x' % u).stdout == ''
    finally:
        drop_scratch(lab, cn, u)


def test_svcs_x_maintenance_travels_with_the_zone_dataset(lab):
    """SmartOS keeps a zone's SMF repository in the zone: zfs send carries a
    service in maintenance to the target, where svcs shows it after boot."""
    src, dst = lab.cns[2], lab.cns[1]
    u = running_scratch(lab, src)
    try:
        lab.cn_run(src, 'mkdir -p /zones/%s/root' % u)
        lab.smf_maintenance(src, u, 'svc:/network/http:apache')
        lab.cn_run(src, 'vmadm stop %s && zfs snapshot zones/%s@move' % (u, u))
        send_receive(lab, src, dst, 'zfs send zones/%s@move' % u, 'zfs receive -u zones/%s' % u)
        lab.cn_run(dst, 'cat > /tmp/{u}.zcfg && zonecfg -z {u} -f /tmp/{u}.zcfg && '
                        'zfs create zones/cores/{u} && zoneadm -z {u} attach && vmadm start {u}'
                   .format(u=u), input=scratch_config(lab)(u))
        p = ssh(lab, dst, 'svcs -z %s -x' % u)
        assert p.returncode == 0
        assert p.stdout.splitlines()[:2] == ['svc:/network/http:apache (?)', '  Zone: ' + u]
    finally:
        drop_scratch(lab, dst, u)
        drop_scratch(lab, src, u)


def test_svcs_z_of_a_zone_without_a_repository_fails_as_illumos(lab):
    """svcs.c main(): an unknown zone cannot be decorated (`invalid zone`);
    a zone without a running svc.configd (stopped, or lx/bhyve/kvm: no SMF)
    has no door to bind to; both exit 1.  Other forms are not emulated."""
    cn = lab.cns[2]
    u = running_scratch(lab, cn)
    x = running_scratch(lab, cn, of='lx0')
    try:
        nobody = str(uuid.uuid4())
        unbound = 'svcs: Could not bind to repository server for zone %s: ' \
                  'repository server unavailable\n'
        lab.cn_run(cn, 'vmadm stop %s' % u)
        for zone, err in ((nobody, "svcs: invalid zone '%s'\n" % nobody),
                          (u, unbound % u), (x, unbound % x)):
            p = ssh(lab, cn, 'svcs -z %s -x' % zone)
            assert (p.returncode, p.stdout, p.stderr) == (1, '', err)
        for bhyve in ('bhyve0',):
            vm = lab.vms[bhyve]
            p = ssh(lab, vm['cn'], 'svcs -z %s -x' % vm['uuid'])
            assert (p.returncode, p.stderr) == (1, unbound % vm['uuid'])
        p = ssh(lab, cn, 'svcs -x')
        assert p.returncode == 2 and p.stdout == ''
    finally:
        drop_scratch(lab, cn, u)
        drop_scratch(lab, cn, x)
