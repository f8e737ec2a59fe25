"""Checks the lab's emulated compute nodes against cn-commands.md.

Every command and flag migd may run on a CN is run here the way migd runs it
(over real SSH with host keys checked, or inside the CN's namespace), and its
output format, exit status and state changes are asserted, error cases
included.  Tests that change a CN use their own scratch zones and datasets
on cn3 (or put seeded VMs back as they found them).
"""
import json
import re
import subprocess
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
    assert lab.cn_run(lab.cns[2], 'sysinfo').stdout.count('20230101T000000Z') == 1


def test_zpool_list_parsable_bytes(lab):
    out = ssh(lab, lab.cns[0], 'zpool list -H -p -o name,size,free zones').stdout
    name, size, free = out.rstrip('\n').split('\t')
    assert name == 'zones'
    assert int(size) > int(free) > 100 << 20


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


def test_seeded_special_vms(lab):
    core = json.loads(lab.cn_run(lab.cns[0], 'vmadm get %s' % lab.vms['core0']['uuid']).stdout)
    assert core['tags']['smartdc_role'] == 'vmapi'
    assert core['owner_uuid'] == lab.api_state()['admin_uuid']
    nat = json.loads(lab.cn_run(lab.cns[0], 'vmadm get %s' % lab.vms['nat0']['uuid']).stdout)
    assert 'com.joyent:ipnat_subnet' in nat['internal_metadata']
    web = json.loads(lab.cn_run(lab.cns[0], 'vmadm get %s' % lab.vms['web0']['uuid']).stdout)
    assert len(web['nics']) == 2 and web['nics'][0]['primary'] is True


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
    cn = lab.cns[2]
    u = scratch_zone(lab, cn)
    cfg = lab.cn_run(cn, 'zonecfg -z %s export' % u).stdout
    p = lab.cn_run(cn, 'cat > /tmp/again && zonecfg -z %s -f /tmp/again' % u, input=cfg,
                   check=False)
    assert p.returncode == 1 and 'already exists' in p.stderr
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
        send = subprocess.Popen(lab.ssh_argv(src) + ['zfs send -v -p %s' % snap],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        recv = subprocess.run(lab.ssh_argv(dst) + ['zfs receive -u -F %s' % target],
                              stdin=send.stdout, capture_output=True, text=True)
        send.stdout.close()
        assert send.wait() == 0 and recv.returncode == 0, recv.stderr
        assert zget(lab, dst, 'mounted', target) == 'no'
        assert zget(lab, dst, 'referenced', target) == zget(lab, src, 'referenced', snap)
    finally:
        lab.cn_run(src, 'zfs destroy %s' % snap)
        lab.cn_run(dst, 'zfs destroy -r %s' % target, check=False)


def test_zfs_unsupported_resumable_flags_fail(lab):
    """migd detects missing features: receive -s must fail, not be ignored."""
    p = ssh(lab, lab.cns[2], 'zfs receive -s -d zones < /dev/null')
    assert p.returncode != 0


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
