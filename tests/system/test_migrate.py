"""Full migrations through every real layer: migctl -> migd -> SSH (libssh2)
-> emulated CNs with real ZFS, and HTTP to the emulated Triton APIs.

Each test migrates a seeded VM and then checks, on the CNs and in the APIs,
everything product.md promises about a switched job.
"""
import json
import os
import re
import time

import conftest
import helpers

DATA_MB = int(os.environ.get('MIGD_TEST_DATA_MB', 24))


migd = conftest.migd_fixture()


def vm(lab, alias):
    return lab.vms[alias]


def add_data(lab, v, mb):
    """Writes mb MiB of random data into the VM's dataset on its CN."""
    lab.cn_run(v['cn'], 'head -c %dM /dev/urandom > /zones/%s/root/bulk.bin && sync'
               % (mb, v['uuid']), timeout=300)


def zfs_names(lab, cn, dataset, kind):
    p = lab.cn_run(cn, 'zfs list -H -o name -t %s -r %s' % (kind, dataset), check=False)
    return p.stdout.split() if p.returncode == 0 else []


def vmadm_get(lab, cn, uuid):
    return json.loads(lab.cn_run(cn, 'vmadm get %s' % uuid).stdout)


def ip_flags(lab, v):
    """{ip: reserved} in NAPI for the VM's NICs."""
    flags = {}
    for nic in lab.api('vmapi', 'GET', '/vms/%s' % v['uuid'])[1]['nics']:
        status, body = lab.api('napi', 'GET', '/networks/%s/ips/%s' % (nic['network_uuid'], nic['ip']))
        assert status == 200
        flags[nic['ip']] = body['reserved']
    return flags


def migrate_and_check(lab, migd, alias, target_n):
    v = vm(lab, alias)
    src, dst = v['cn'], lab.cns[target_n - 1]
    u = v['uuid']
    got = vmadm_get(lab, src, u)
    was_running, autoboot_before = got['state'] == 'running', got['autoboot']
    if v['brand'] in ('joyent', 'joyent-minimal', 'lx'):
        add_data(lab, v, DATA_MB)
    before = lab.file_checksums(src, '/zones/%s' % u)
    flags_before = ip_flags(lab, v)

    p = migd.ctl('migrate', '-w', u, dst.hostname)
    assert p.returncode == 0, 'migrate failed: %s\n%s' % (p.stderr, migd.log_text()[-3000:])
    job_uuid = re.search(r'[0-9a-f-]{36}', p.stdout.split('\n')[0]).group(0)
    job = migd.job(job_uuid)
    assert job['state'] == 'switched', job
    assert job['vm_uuid'] == u and job['target_server_uuid'] == dst.uuid
    assert job['vm_was_running'] is was_running
    assert isinstance(job['downtime_ms'], int) and job['downtime_ms'] > 0
    # The breakdown covers the window and stops where the downtime ends: a
    # running VM's start, a stopped VM's hand-over to the target.
    window = [p['action'] for p in job['downtime_breakdown']['actions']]
    assert window[0] == 'switch.begin', window
    assert window[-1] == ('switch.start_target' if was_running else 'switch.show_target'), window
    assert job['progress']['bytes_sent'] > 0

    # Identical data on the target, file by file.
    after = lab.file_checksums(dst, '/zones/%s' % u)
    assert after == before
    # Running on the target only if it ran before; the source disabled, its datasets kept.
    assert vmadm_get(lab, dst, u)['state'] == ('running' if was_running else 'stopped')
    # Staged and attached with autoboot off, the target ends with the VM's autoboot, shown.
    dst_cfg = lab.cn_run(dst, 'zonecfg -z %s export' % u).stdout
    assert vmadm_get(lab, dst, u)['autoboot'] is (was_running or autoboot_before), dst_cfg
    assert 'do-not-inventory' not in dst_cfg
    src_cfg = lab.cn_run(src, 'zonecfg -z %s export' % u).stdout
    assert 'set autoboot=false' in src_cfg
    assert 'do-not-inventory' in src_cfg
    assert vmadm_get(lab, src, u)['state'] != 'running'
    assert 'zones/%s' % u in zfs_names(lab, src, 'zones/%s' % u, 'filesystem')
    # VMAPI names the target; every IP's reserved flag is as it was.
    assert lab.api('vmapi', 'GET', '/vms/%s' % u)[1]['server_uuid'] == dst.uuid
    assert ip_flags(lab, v) == flags_before
    # NAPI's NICs live on the target.
    nics = lab.api('napi', 'GET', '/nics?belongs_to_uuid=%s' % u)[1]
    assert nics and all(n['cn_uuid'] == dst.uuid for n in nics)
    # The cores dataset exists on the target.
    assert 'zones/cores/%s' % u in zfs_names(lab, dst, 'zones/cores/%s' % u, 'filesystem')
    # Only the final migration snapshot is left, on both sides.
    for cn in (src, dst):
        snaps = [s for s in zfs_names(lab, cn, 'zones/%s' % u, 'snapshot') if 'migd-' in s]
        assert snaps and all(s.endswith('-final') for s in snaps), (cn, snaps)
    return job


def test_running_joyent_zone(lab, migd):
    migrate_and_check(lab, migd, 'web0', 2)


def test_running_lx_zone(lab, migd):
    migrate_and_check(lab, migd, 'lx0', 2)


def test_stopped_zone_stays_stopped(lab, migd):
    job = migrate_and_check(lab, migd, 'stopped0', 2)
    assert job['vm_was_running'] is False


def test_second_migration_of_switched_vm_refused(lab, migd):
    v = vm(lab, 'web0')
    p = migd.ctl('migrate', v['uuid'], 'cn1')
    assert p.returncode == 1
    assert 'VmAlreadyMigrating' in p.stderr


def test_plan_and_journal_come_from_one_table(lab, migd):
    """The dry run prints the actions the job will take, in order, on which CN;
    show -v prints what it took, from the journal, with times."""
    v = vm(lab, 'stopped0')
    # An earlier test left it switched: its source copy goes first (migctl cleanup).
    for j in migd.jobs('vm_uuid=%s' % v['uuid'], 'state=switched'):
        assert migd.ctl('cleanup', j['uuid']).returncode == 0
        for _ in range(600):
            if migd.job(j['uuid'])['state'] == 'succeeded':
                break
            time.sleep(0.1)
    src = [cn for cn in lab.cns if cn.uuid ==
           lab.api('vmapi', 'GET', '/vms/%s' % v['uuid'])[1]['server_uuid']][0]
    dst = lab.cns[0] if src.n != 1 else lab.cns[1]
    p = migd.ctl('migrate', '-n', v['uuid'], dst.hostname)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    planned = [l.split()[0] for l in lines if re.match(r'^\s+[a-z]+\.[a-z_]+', l)]
    assert planned[0] == 'prepare.inspect_source', p.stdout
    for key in ('sync.send@1#0', 'switch.attach_target', 'switch.record_vmapi'):
        assert key in planned, p.stdout
    # A stopped VM is neither stopped nor started; attach runs on the target.
    assert 'switch.stop_source' not in planned and 'switch.start_target' not in planned
    attach = [l for l in lines if 'switch.attach_target' in l][0]
    assert dst.hostname in attach.split()
    assert planned.index('switch.disable_source') < planned.index('switch.show_target')
    # The job's journal after a real run: the same actions, each done, with times.
    p = migd.ctl('migrate', '-w', v['uuid'], dst.hostname)
    assert p.returncode == 0, p.stderr
    job_uuid = re.search(r'[0-9a-f-]{36}', p.stdout).group(0)
    shown = json.loads(migd.ctl('show', '-v', '-j', job_uuid).stdout)
    taken = [a['action'] for a in shown['actions']]
    assert [k for k in planned if k in taken] == [k for k in taken if k in planned]
    assert set(planned) <= set(taken), set(planned) - set(taken)
    for a in shown['actions']:
        assert a['status'] == 'done', a
        assert a['started'] and a['ended'] and isinstance(a['duration_ms'], int), a
    text = migd.ctl('show', '-v', job_uuid).stdout
    assert re.search(r'switch\.attach_target\s+target\s+done', text), text


def test_a_zone_changed_while_the_job_waits_is_staged_again(lab, migd):
    """The configuration check runs before the stop: a zone changed while an
    incremental job waits is restaged on the target before the downtime
    starts, and looked at once more after the stop (it did not change
    again, so nothing is restaged inside the window)."""
    v = vm(lab, 'deleg0')
    src = v['cn']
    dst = [cn for cn in lab.cns if cn.n != src.n][0]
    p = migd.ctl('migrate', '-i', v['uuid'], dst.hostname)
    assert p.returncode == 0, p.stderr
    job_uuid = re.search(r'[0-9a-f-]{36}', p.stdout).group(0)
    helpers.wait_state(migd, job_uuid, ('waiting',))
    lab.cn_run(src, "zonecfg -z %s 'add attr; set name=migd-test; set type=string; "
                    "set value=changed; end'" % v['uuid'])
    assert migd.ctl('finish', job_uuid).returncode == 0
    job = helpers.wait_state(migd, job_uuid, ('switched',))
    assert 'migd-test' in lab.cn_run(dst, 'zonecfg -z %s export' % v['uuid']).stdout
    names = [a['action'] for a in json.loads(migd.ctl('show', '-v', '-j', job_uuid).stdout)['actions']]
    assert names.index('switch.restage_target') < names.index('switch.begin'), names
    assert 'switch.recheck_config' in names and 'switch.restage_again' not in names, names
    window = [p['action'] for p in job['downtime_breakdown']['actions']]
    assert 'switch.check_config' not in window and 'switch.restage_target' not in window, window
