"""After the switch: the health gate (product.md "health", phase verify)
and the cleanup timer.  The gate,
through the real binaries against the lab: a VM that stays up passes and
only then is the job switched; a zone that restarts by itself, a service
that is newly in maintenance on the target, or an operator's probe that
fails rolls the job back by itself (rolled_back, HealthCheckFailed, the VM
on its source as before); `health.on_failure: report` keeps the switch and
says why; a migd killed during the gate resumes it where it was.  The
cleanup timer (`--cleanup-after`, `cleanup.after_s`) deletes the source copy
once the gate passed and the time is up, never before, survives a restart,
and `migctl cleanup --cancel-timer` keeps the copy.
"""
import time
import contextlib
import os
import stat

import conftest
import helpers
from helpers import home, other, settle, submit, vm_and_cns
from migd_daemon import running_migd

wait_for = helpers.waiter(120, step=0.1)

MIN_UP = 4  # the window of these tests' migd: long enough to restart a zone in it


@contextlib.contextmanager
def a_migd(lab, build_dir, workdir, **health):
    gen = running_migd(lab, build_dir, str(workdir), health=dict({'min_up_s': MIN_UP}, **health))
    d = next(gen)
    try:
        yield d
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)


migd = conftest.migd_fixture(health={'min_up_s': MIN_UP})


def ended(migd, job_uuid, timeout=300):
    return helpers.ended(migd, job_uuid, timeout, step=0.1)


def vmapi_server(lab, uuid):
    return lab.api('vmapi', 'GET', '/vms/%s' % uuid)[1]['server_uuid']


def checks_of(job):
    return {c['name']: c for c in job['health']['checks']}


def test_a_vm_that_stays_up_passes_the_gate_then_is_switched(lab, migd):
    v, src, dst = vm_and_cns(lab, 'web0')
    job_uuid = submit(migd, v['uuid'], dst.hostname)
    # The VM runs on the target while the gate watches it: running, phase verify.
    job = wait_for(lambda: (lambda j: j if j['phase'] == 'verify' else None)(
        migd.job(job_uuid)), 'the gate')
    assert job['state'] == 'running', job
    assert lab.vm_placement(v['uuid'])[dst.n]['running']
    job = ended(migd, job_uuid)
    assert job['state'] == 'switched', job
    h = job['health']
    assert h['state'] == 'passed' and h['min_up_s'] == MIN_UP and h['failure'] is None, h
    checks = checks_of(job)
    assert set(checks) == {'running', 'zone_id', 'smf'}, checks  # no health.command set
    assert all(c['ok'] for c in checks.values()), checks
    assert checks['zone_id']['detail'].startswith('zone id '), checks
    # The window ran: the last look came at least min_up_s after the first.
    assert job['downtime_ms'] < MIN_UP * 1000, job  # the gate is not downtime
    show = migd.ctl('show', job_uuid).stdout
    assert 'health      passed, %d s up wanted' % MIN_UP in show, show
    assert 'ok   zone_id' in show, show
    settle(migd, job_uuid)


def test_a_zone_that_restarts_on_the_target_rolls_back_by_itself(lab, migd):
    v, src, dst = vm_and_cns(lab, 'lx0')
    # Its first boot on the target restarts it 1 s later: a new zone id inside the window.
    lab.zone_restart_after_boot(dst, v['uuid'], delay_s=1)
    try:
        job_uuid = submit(migd, v['uuid'], dst.hostname)
        job = ended(migd, job_uuid)
    finally:
        lab.zone_restart_after_boot(dst, v['uuid'], None)
    assert job['state'] == 'rolled_back', job
    assert job['error']['code'] == 'HealthCheckFailed', job['error']
    assert 'zone_id' in job['error']['message'] and 'restarted' in job['error']['message'], job
    assert job['health']['state'] == 'failed', job['health']
    assert checks_of(job)['zone_id']['ok'] is False
    # Back on its source, running, in the inventory; nothing left on the target.
    assert home(lab, v['uuid']) == src
    place = lab.vm_placement(v['uuid'])
    assert place[src.n]['running'] and place[dst.n]['zone_state'] is None, place
    assert place[dst.n]['datasets'] == [], place[dst.n]
    assert vmapi_server(lab, v['uuid']) == src.uuid
    assert job['rollback_downtime_ms'] is not None
    show = migd.ctl('show', job_uuid).stdout
    assert 'FAIL zone_id' in show and 'HealthCheckFailed' in show, show


def test_a_vm_that_stays_down_on_the_target_runs_again_on_its_source(lab, migd):
    v, src, dst = vm_and_cns(lab, 'web0')
    # It halts for good 1 s after its boot on the target: vmadm get says stopped.
    lab.zone_restart_after_boot(dst, v['uuid'], delay_s=1, stays_down=True)
    try:
        job_uuid = submit(migd, v['uuid'], dst.hostname)
        job = ended(migd, job_uuid)
    finally:
        lab.zone_restart_after_boot(dst, v['uuid'], None)
    assert job['state'] == 'rolled_back' and job['error']['code'] == 'HealthCheckFailed', job
    assert checks_of(job)['running']['ok'] is False or checks_of(job)['zone_id']['ok'] is False
    # The rollback started it on the source, where it ran before the job.
    assert home(lab, v['uuid']) == src
    assert lab.vm_placement(v['uuid'])[src.n]['running']
    vm = lab.api('vmapi', 'GET', '/vms/%s' % v['uuid'])[1]
    assert vm['server_uuid'] == src.uuid and vm['state'] == 'running', vm


def test_only_a_service_newly_in_maintenance_fails_the_gate(lab, migd):
    v, src, dst = vm_and_cns(lab, 'web0')
    old = 'svc:/site/legacy:default'
    new = 'svc:/network/http:apache'
    # Broken on the source before the job: the baseline; it travels with the data.
    lab.smf_maintenance(src, v['uuid'], old)
    try:
        job_uuid = submit(migd, v['uuid'], dst.hostname)
        job = ended(migd, job_uuid)
        assert job['state'] == 'switched', job
        smf = checks_of(job)['smf']
        assert smf['ok'] and old in smf['detail'], smf
        settle(migd, job_uuid)
        # Now a service that fails to start on the new CN only.
        src, dst = dst, src
        lab.smf_maintenance(dst, v['uuid'], new, at_boot=True)
        job_uuid = submit(migd, v['uuid'], dst.hostname)
        job = ended(migd, job_uuid)
        assert job['state'] == 'rolled_back', job
        assert job['error']['code'] == 'HealthCheckFailed'
        assert new in job['error']['message'] and old not in job['error']['message'], job['error']
        assert home(lab, v['uuid']) == src
    finally:
        lab.smf_clear(src, v['uuid'])
        lab.smf_clear(dst, v['uuid'])


def test_a_failing_health_command_rolls_back_and_a_passing_one_is_run_with_the_job(
        lab, build_dir, tmp_path):
    seen = tmp_path / 'seen'
    probe = tmp_path / 'probe.sh'
    # The operator's probe: records what it was told, fails while tmp/fail exists.
    probe.write_text('#!/bin/sh\necho "$MIGD_JOB $MIGD_VM_UUID $MIGD_SOURCE $MIGD_TARGET" >> %s\n'
                     'if [ -e %s ]; then echo "GET /health: 503"; exit 3; fi\necho fine\n'
                     % (seen, tmp_path / 'fail'))
    probe.chmod(probe.stat().st_mode | stat.S_IXUSR)
    v = lab.vms['web0']
    with a_migd(lab, build_dir, tmp_path / 'migd', command=str(probe), timeout_s=20) as d:
        src = home(lab, v['uuid'])
        dst = other(lab, src)
        (tmp_path / 'fail').touch()
        job_uuid = submit(d, v['uuid'], dst.hostname)
        job = ended(d, job_uuid)
        assert job['state'] == 'rolled_back', job
        assert job['error']['code'] == 'HealthCheckFailed'
        assert 'exit 3: GET /health: 503' in job['error']['message'], job['error']
        assert home(lab, v['uuid']) == src
        # It ran once the window was over, with the job in its environment.
        assert seen.read_text().split() == [job_uuid, v['uuid'], src.hostname, dst.hostname]
        os.unlink(tmp_path / 'fail')
        job_uuid = submit(d, v['uuid'], dst.hostname)
        job = ended(d, job_uuid)
        assert job['state'] == 'switched', job
        assert checks_of(job)['command']['ok'] and checks_of(job)['command']['detail'] == \
            'exit 0: fine', job['health']
        settle(d, job_uuid)


def test_report_keeps_the_switch_and_the_source_copy(lab, build_dir, tmp_path):
    v = lab.vms['lx0']
    with a_migd(lab, build_dir, tmp_path / 'migd', on_failure='report') as d:
        src = home(lab, v['uuid'])
        dst = other(lab, src)
        lab.zone_restart_after_boot(dst, v['uuid'], delay_s=1)
        try:
            job_uuid = submit(d, '--cleanup-source', v['uuid'], dst.hostname)
            job = ended(d, job_uuid)
        finally:
            lab.zone_restart_after_boot(dst, v['uuid'], None)
        # Switched, with the failure in health, no error; the source copy is NOT deleted.
        assert job['state'] == 'switched' and job['error'] is None, job
        assert job['health']['state'] == 'failed' and 'restarted' in job['health']['failure']
        place = lab.vm_placement(v['uuid'])
        assert place[src.n]['zone_state'] == 'installed' and place[src.n]['hidden'], place[src.n]
        # The operator decides: back to the source.
        assert d.ctl('rollback', job_uuid).returncode == 0
        job = helpers.wait_state(d, job_uuid, ('rolled_back', 'switched', 'failed'))
        assert job['state'] == 'rolled_back', job
        assert home(lab, v['uuid']) == src


def test_a_migd_killed_during_the_gate_resumes_it_where_it_was(lab, build_dir, tmp_path):
    v = lab.vms['web0']
    with a_migd(lab, build_dir, tmp_path / 'migd', min_up_s=8) as d:
        src = home(lab, v['uuid'])
        dst = other(lab, src)
        job_uuid = submit(d, v['uuid'], dst.hostname)
        job = wait_for(lambda: (lambda j: j if j['phase'] == 'verify' and j['health']
                                and j['health']['since'] else None)(d.job(job_uuid)), 'the gate')
        since = job['health']['since']
        d.kill()
        d.start()
        job = ended(d, job_uuid)
        assert job['state'] == 'switched', job
        # The same window, the same zone: the gate went on, it did not start again.
        assert job['health']['state'] == 'passed' and job['health']['since'] == since, job
        settle(d, job_uuid)


def test_the_timer_deletes_the_source_copy_after_the_gate_not_before(lab, migd):
    v, src, dst = vm_and_cns(lab, 'web0')
    job_uuid = submit(migd, '--cleanup-after', '3s', v['uuid'], dst.hostname)
    job = wait_for(lambda: (lambda j: j if j['phase'] == 'verify' else None)(
        migd.job(job_uuid)), 'the gate')
    assert job['cleanup_at'] is None, job  # not armed before the gate passed
    job = ended(migd, job_uuid)
    assert job['state'] == 'switched' and job['cleanup_at'] is not None, job
    assert job['cleanup_at'] > job['finished'], job
    listed = migd.ctl('list', '-a', '-H', '-o', 'id,cleanup_at').stdout
    assert '%s %s' % (job_uuid[:8], job['cleanup_at']) in ' '.join(listed.split()), listed
    place = lab.vm_placement(v['uuid'])
    assert place[src.n]['zone_state'] == 'installed' and place[src.n]['hidden'], place[src.n]
    job = helpers.wait_state(migd, job_uuid, ('succeeded', 'failed'), timeout=120, step=0.2)
    assert job['state'] == 'succeeded' and job['cleanup_at'] is None, job
    place = lab.vm_placement(v['uuid'])
    assert place[src.n]['zone_state'] is None and place[src.n]['datasets'] == [], place[src.n]
    assert home(lab, v['uuid']) == dst


def test_the_timer_survives_a_restart_and_cancel_timer_keeps_the_copy(lab, build_dir, tmp_path):
    web, lx = lab.vms['web0'], lab.vms['lx0']
    with a_migd(lab, build_dir, tmp_path / 'migd') as d:
        d.stop()
        d.config['cleanup'] = {'after_s': 6}  # the configuration's timer, for every job
        d.start()
        src = home(lab, web['uuid'])
        kept_src = home(lab, lx['uuid'])
        a = submit(d, web['uuid'], other(lab, src).hostname)
        b = submit(d, lx['uuid'], other(lab, kept_src).hostname)
        ja, jb = ended(d, a), ended(d, b)
        b_switched = time.monotonic()
        assert ja['state'] == 'switched' and ja['cleanup_at'] is not None, ja
        assert jb['state'] == 'switched' and jb['cleanup_at'] is not None, jb
        p = d.ctl('cleanup', '--cancel-timer', b)
        assert p.returncode == 0 and 'cleanup timer canceled' in p.stdout, p
        assert d.job(b)['cleanup_at'] is None
        p = d.ctl('cleanup', '--cancel-timer', b)
        assert p.returncode == 1 and 'no cleanup timer' in p.stderr, p
        # Killed before the time is up: the timer is on record.
        d.kill()
        d.start()
        ja = helpers.wait_state(d, a, ('succeeded', 'failed'), timeout=120, step=0.2)
        assert ja['state'] == 'succeeded', ja
        assert lab.vm_placement(web['uuid'])[src.n]['zone_state'] is None
        # The canceled one is still switched, its source copy kept, after its time.
        time.sleep(max(0.0, b_switched + 8 - time.monotonic()))
        jb = d.job(b)
        assert jb['state'] == 'switched' and jb['cleanup_at'] is None, jb
        assert lab.vm_placement(lx['uuid'])[kept_src.n]['zone_state'] == 'installed'
        settle(d, b)
