"""Faults from outside: a CN that drops its SSH connections in the middle
of a transfer, and Triton APIs that answer 500 or are briefly unavailable.
A failure before the switch must roll back by itself and leave the VM as it
was on the source; a refusal must change nothing.
"""
import json
import os
import signal
import subprocess
import time

import pytest

from migd_daemon import running_migd


@pytest.fixture(scope='module')
def migd(lab, build_dir, tmp_path_factory):
    # 40 Mbit/s keeps a transfer going long enough to cut it.
    yield from running_migd(lab, build_dir, tmp_path_factory.mktemp('migd'), transfer={'limit_mbps': 40})


def ip_flags(lab, uuid):
    flags = {}
    for nic in lab.api('vmapi', 'GET', '/vms/%s' % uuid)[1]['nics']:
        flags[nic['ip']] = lab.api('napi', 'GET', '/networks/%s/ips/%s'
                                   % (nic['network_uuid'], nic['ip']))[1]['reserved']
    return flags


def drop_ssh_sessions(cn):
    """Kills every SSH session process of cn's sshd, as a CN that drops connections."""
    listener = int(open(os.path.join(cn.dir, 'sshd.pid')).read())
    kids = subprocess.run(['pgrep', '-P', str(listener)], capture_output=True, text=True).stdout.split()
    for pid in kids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(kids)


def wait_for(pred, what, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError('timed out waiting for ' + what)


def test_target_drops_ssh_mid_transfer_rolls_back(lab, migd):
    v = lab.vms['lx0']
    src, dst = v['cn'], lab.cns[1]
    lab.cn_run(src, 'head -c 120M /dev/urandom > /zones/%s/root/bulk.bin && sync' % v['uuid'], timeout=300)
    flags = ip_flags(lab, v['uuid'])
    p = migd.ctl('migrate', v['uuid'], 'cn2')
    assert p.returncode == 0, p.stderr
    job_uuid = migd.jobs()[0]['uuid']
    wait_for(lambda: migd.job(job_uuid)['progress']['bytes_sent'] > 8 << 20, 'bytes to flow')
    assert drop_ssh_sessions(dst) > 0
    migd.ctl('watch', job_uuid)
    job = wait_for(lambda: (lambda j: j if j['state'] not in ('queued', 'running') else None)(migd.job(job_uuid)),
                   'the job to end')
    assert job['state'] == 'failed', job
    assert job['error']['phase'] == 'sync', job['error']
    # Rolled back: the VM runs on the source as before, nothing is left on the target.
    assert json.loads(lab.cn_run(src, 'vmadm get %s' % v['uuid']).stdout)['state'] == 'running'
    assert v['uuid'] not in lab.cn_run(dst, 'zfs list -H -o name -t all').stdout
    assert 'migd-' not in lab.cn_run(src, 'zfs list -H -o name -t snapshot -r zones/%s' % v['uuid']).stdout
    assert ip_flags(lab, v['uuid']) == flags
    assert lab.api('vmapi', 'GET', '/vms/%s' % v['uuid'])[1]['server_uuid'] == src.uuid
    # The VM can be migrated again once the CN answers.
    p = migd.ctl('migrate', '-n', v['uuid'], 'cn2')
    assert p.returncode == 0, p.stderr


def test_api_500_is_refused_and_changes_nothing(lab, migd):
    before = lab.api_state()
    jobs = migd.jobs()
    lab.api_fault('cnapi', 'GET', '^/servers', 500, count=10)
    try:
        p = migd.ctl('migrate', lab.vms['web0']['uuid'], 'cn2')
    finally:
        lab._admin('POST', '/__lab/faults/clear', name='cnapi')
    assert p.returncode == 1
    assert 'CnapiError' in p.stderr and '500' in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert lab.api_state() == before
    assert migd.jobs() == jobs


def test_api_briefly_unavailable_is_waited_for(lab, migd):
    lab._admin('POST', '/__lab/requests/clear', name='vmapi')
    lab.api_fault('vmapi', 'GET', '^/vms/', 503, count=2)
    p = migd.ctl('migrate', '-n', lab.vms['web0']['uuid'], 'cn2')
    assert p.returncode == 0, p.stderr
    reqs = lab._admin('GET', '/__lab/requests', name='vmapi')
    assert [r['status'] for r in reqs if r['path'].startswith('/vms/')][:3] == [503, 503, 200]
