"""Checks the lab's own life cycle: up, down, the CLI, crash leftovers.

A lab must leave nothing behind (no zfs-fuse, sshd, API server, no mount in
the host namespace), refuse clearly when its addresses are taken, and a new
`up` in the same directory must clean up after a lab that was never taken
down.  These tests use their own small labs on a non-default SSH port so
they never collide with the session lab.
"""
import json
import os
import socket
import subprocess
import sys

import pytest

import lab as labmod

def free_port():
    """A port free on 127.0.0.11, so these labs never meet another lab."""
    with socket.socket() as s:
        s.bind(('127.0.0.11', 0))
        return s.getsockname()[1]


PORT = free_port()
LAB_PY = os.path.join(os.path.dirname(labmod.__file__), 'lab.py')


LAB_MOUNTS = ('/zones', '/etc/zones', '/var/lib/lab-cn', '/usr/local/sbin', '/var/lock/zfs',
              '/var/run/zfs', '/run/zfs', '/var/lib/zfs')


def host_mounts():
    """Mounts in the host namespace where a CN mounts things (none expected)."""
    with open('/proc/self/mountinfo') as f:
        targets = [line.split()[4] for line in f]
    return [t for t in targets if t.startswith(LAB_MOUNTS)]


def lab_processes(pids):
    return [p for p in pids if labmod.pid_alive(p)]


def recorded_pids(workdir):
    with open(os.path.join(workdir, 'lab.json')) as f:
        state = json.load(f)
    return [c['pid'] for c in state['cns']] + [state['api_pid']]


def test_up_down_leaves_nothing(tmp_path):
    mounts_before = host_mounts()
    lab = labmod.Lab(str(tmp_path), cns=1, ssh_port=PORT, data_mb=0.1)
    try:
        lab.up()
        pids = recorded_pids(str(tmp_path))
        assert len(lab_processes(pids)) == 2
        p = subprocess.run(lab.ssh_argv(lab.cns[0]) + ['vmadm list -p -o alias'],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and 'web0' in p.stdout.split()
        inner = lab.cn_run(lab.cns[0], 'findmnt -n -o TARGET /zones').stdout.strip()
        assert inner == '/zones'
    finally:
        lab.down()
    assert lab_processes(pids) == []
    assert host_mounts() == mounts_before == []
    lab.down()  # twice is fine


def test_busy_address_is_refused_with_advice(tmp_path):
    first = labmod.Lab(str(tmp_path / 'a'), cns=1, ssh_port=PORT, data_mb=0.1, seed=True)
    second = labmod.Lab(str(tmp_path / 'b'), cns=1, ssh_port=PORT, data_mb=0.1)
    try:
        first.up()
        with pytest.raises(labmod.LabError, match='--ssh-port'):
            second.up()
        assert first.cn_run(first.cns[0], 'vmadm list -p -o alias').returncode == 0
    finally:
        second.down()
        first.down()


def test_cli_up_then_up_again_kills_leftovers(tmp_path):
    d = str(tmp_path)
    cli = [sys.executable, LAB_PY]
    args = ['--cns', '1', '--ssh-port', str(PORT), '--data-mb', '0.1']
    p = subprocess.run(cli + ['up', d] + args, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    old = recorded_pids(d)
    try:
        status = subprocess.run(cli + ['status', d], capture_output=True, text=True, timeout=60)
        assert 'cn1 127.0.0.11' in status.stdout and ':running:joyent:web0' in status.stdout
        config = json.loads(subprocess.run(cli + ['config', d], capture_output=True,
                                           text=True, timeout=60).stdout)
        assert config['ssh']['port'] == PORT and set(config['apis']) == {
            'vmapi', 'cnapi', 'napi', 'imgapi'}
        ex = subprocess.run(cli + ['exec', d, '1', 'sysinfo'], capture_output=True, text=True)
        assert json.loads(ex.stdout)['Hostname'] == 'cn1'
        # a "crashed" orchestrator: the lab is still up; up again must replace it
        p = subprocess.run(cli + ['up', d] + args, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert lab_processes(old) == []
    finally:
        subprocess.run(cli + ['down', d], capture_output=True, timeout=120)
    assert lab_processes(old + recorded_pids(d)) == []
