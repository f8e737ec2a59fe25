"""What an operator does after a switch: `migctl rollback` returns the VM to
its source with everything written on the target since the switch, and
`migctl cleanup` deletes the source copy.  Both through the real binaries
against the lab.
"""
import functools
import json

import conftest
import helpers

wait_state = functools.partial(helpers.wait_state, timeout=300, step=0.3)


migd = conftest.migd_fixture()


def switched(lab, migd, alias):
    v = lab.vms[alias]
    p = migd.ctl('migrate', '-w', v['uuid'], 'cn2')
    assert p.returncode == 0, p.stderr + migd.log_text()[-3000:]
    job = migd.jobs('vm_uuid=%s' % v['uuid'])[0]
    assert job['state'] == 'switched'
    return v, job['uuid']


def vmadm_get(lab, cn, uuid, check=True):
    p = lab.cn_run(cn, 'vmadm get %s' % uuid, check=check)
    return json.loads(p.stdout) if p.returncode == 0 else None


def test_rollback_brings_back_what_changed_on_target(lab, migd):
    v, job_uuid = switched(lab, migd, 'web0')
    src, dst = v['cn'], lab.cns[1]
    u = v['uuid']
    lab.cn_run(dst, 'echo written-after-the-switch > /zones/%s/root/after.txt && sync' % u)
    target_sums = lab.file_checksums(dst, '/zones/%s' % u)

    p = migd.ctl('rollback', job_uuid)
    assert p.returncode == 0, p.stderr
    assert 'back' in p.stdout
    job = wait_state(migd, job_uuid, ('rolled_back', 'failed'))
    assert job['state'] == 'rolled_back', (job, migd.log_text()[-3000:])
    assert job['error'] is None

    # The source holds exactly what the target held, and runs again.
    assert lab.file_checksums(src, '/zones/%s' % u) == target_sums
    assert vmadm_get(lab, src, u)['state'] == 'running'
    cfg = lab.cn_run(src, 'zonecfg -z %s export' % u).stdout
    assert 'do-not-inventory' not in cfg and 'set autoboot=true' in cfg
    # Nothing of it is left on the target.
    assert vmadm_get(lab, dst, u, check=False) is None
    assert u not in lab.cn_run(dst, 'zfs list -H -o name -t all').stdout
    # Inventory names the source again; no migration snapshot is left.
    assert lab.api('vmapi', 'GET', '/vms/%s' % u)[1]['server_uuid'] == src.uuid
    nics = lab.api('napi', 'GET', '/nics?belongs_to_uuid=%s' % u)[1]
    assert nics and all(n['cn_uuid'] == src.uuid for n in nics)
    assert 'migd-' not in lab.cn_run(src, 'zfs list -H -o name -t snapshot -r zones/%s' % u).stdout
    # A rolled-back job no longer holds the VM.
    assert migd.ctl('migrate', '-n', u, 'cn2').returncode == 0


def test_cleanup_deletes_the_source_copy(lab, migd):
    v, job_uuid = switched(lab, migd, 'lx0')
    src, dst = v['cn'], lab.cns[1]
    u = v['uuid']
    p = migd.ctl('cleanup', job_uuid)
    assert p.returncode == 0, p.stderr
    job = wait_state(migd, job_uuid, ('succeeded',), timeout=120)
    assert job['state'] == 'succeeded'
    assert vmadm_get(lab, src, u, check=False) is None
    assert u not in lab.cn_run(src, 'zfs list -H -o name -t all').stdout
    assert vmadm_get(lab, dst, u)['state'] == 'running'
    assert 'migd-' not in lab.cn_run(dst, 'zfs list -H -o name -t snapshot -r zones/%s' % u).stdout


def test_rollback_refused_unless_switched(lab, migd):
    jobs = [j for j in migd.jobs() if j['state'] == 'succeeded']
    p = migd.ctl('rollback', jobs[0]['uuid'])
    assert p.returncode == 1
    assert 'only a switched job' in p.stderr
