"""The head node's SSH identity, whatever its key type, through the real
migd and migctl against small labs of their own (two CNs each).

Each lab is up alone (they share the CN addresses): the labs of the working
keys come and go with their test, then the RSA lab with a stock sshd serves
the refusal tests.

Debian 12's libssh2 1.10 signs with an RSA key only as `ssh-rsa` (SHA-1),
which OpenSSH 8.8 and later refuse unless `PubkeyAcceptedAlgorithms
+ssh-rsa`; ed25519 and ECDSA keys work with a stock sshd.  A refused key
must say what happened and what to do, in one line, and change nothing.
"""
import json
import os
import re
import subprocess

import pytest

import conftest
import lab as labmod
from migd_daemon import running_migd

DATA_MB = 1


def small_lab(request, tmp_path_factory, **kwargs):
    return conftest.start_lab(tmp_path_factory, request, cns=2, data_mb=DATA_MB, **kwargs)


def world(lab):
    """Everything a refused migration must leave as it was: the APIs, and on
    every CN its datasets, snapshots and zones."""
    cns = [lab.cn_run(cn, 'zfs list -H -o name -t all; vmadm list -p -o uuid,state,alias').stdout
           for cn in lab.cns]
    return lab.api_state(), cns


def migrate(lab, migd, alias, target):
    v = lab.vms[alias]
    p = migd.ctl('migrate', '-w', v['uuid'], target.hostname)
    return p


def migrated(lab, migd, alias):
    """Migrates alias from cn1 to cn2 and checks it arrived, byte for byte."""
    v = lab.vms[alias]
    src, dst = lab.cns[0], lab.cns[1]
    before = lab.file_checksums(src, '/zones/%s' % v['uuid'])
    p = migrate(lab, migd, alias, dst)
    assert p.returncode == 0, '%s\n%s' % (p.stderr, migd.log_text()[-3000:])
    job = migd.job(re.search(r'[0-9a-f-]{36}', p.stdout).group(0))
    assert job['state'] == 'switched', job
    assert lab.file_checksums(dst, '/zones/%s' % v['uuid']) == before
    assert lab.api('vmapi', 'GET', '/vms/%s' % v['uuid'])[1]['server_uuid'] == dst.uuid
    assert json.loads(lab.cn_run(dst, 'vmadm get %s' % v['uuid']).stdout)['state'] == 'running'
    return job


def identity_type(lab):
    with open(lab.identity + '.pub') as f:
        return f.read().split()[0]


# ---------------------------------------------------------------- keys that work

@pytest.mark.parametrize('key_type,accept_ssh_rsa', [('rsa', True), ('ecdsa', False),
                                                     ('ed25519', False)])
def test_migration_with_identity(key_type, accept_ssh_rsa, request, tmp_path_factory,
                                 build_dir):
    """RSA with an sshd that allows ssh-rsa (the lab's `key_type='rsa'`),
    ECDSA and ed25519 with a stock sshd: a migration works."""
    lab = small_lab(request, tmp_path_factory, key_type=key_type)
    assert lab.accept_ssh_rsa is accept_ssh_rsa
    sshd = open(os.path.join(lab.cns[0].dir, 'sshd_config')).read()
    assert ('PubkeyAcceptedAlgorithms +ssh-rsa' in sshd) is accept_ssh_rsa
    assert identity_type(lab) == {'rsa': 'ssh-rsa', 'ecdsa': 'ecdsa-sha2-nistp256',
                                  'ed25519': 'ssh-ed25519'}[key_type]
    gen = running_migd(lab, build_dir, tmp_path_factory.mktemp('migd'))
    migd = next(gen)
    try:
        migrated(lab, migd, 'web0')
    finally:
        next(gen, None)


# ---------------------------------------------------------------- RSA, stock sshd

@pytest.fixture(scope='module')
def rsa_stock_lab(request, tmp_path_factory):
    return small_lab(request, tmp_path_factory, key_type='rsa', accept_ssh_rsa=False)


def test_default_lab_identity_is_ed25519_and_sshd_is_stock(tmp_path):
    lab = labmod.Lab(str(tmp_path), cns=1)
    assert lab.key_type == 'ed25519' and lab.identity.endswith('hn_id_ed25519')
    assert lab.accept_ssh_rsa is False
    rsa = labmod.Lab(str(tmp_path), cns=1, key_type='rsa')
    assert rsa.accept_ssh_rsa is True and rsa.identity.endswith('hn_id_rsa')


def test_rsa_identity_refused_by_a_stock_sshd_says_why_and_changes_nothing(
        rsa_stock_lab, build_dir, tmp_path_factory):
    lab = rsa_stock_lab
    assert identity_type(lab) == 'ssh-rsa'
    sshd = open(os.path.join(lab.cns[0].dir, 'sshd_config')).read()
    assert 'ssh-rsa' not in sshd
    # OpenSSH's own client signs with rsa-sha2-512: the key itself is fine
    p = subprocess.run(lab.ssh_argv(lab.cns[0]) + ['true'], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    gen = running_migd(lab, build_dir, tmp_path_factory.mktemp('migd'))
    migd = next(gen)
    try:
        before = world(lab)
        jobs_before = migd.jobs()
        p = migrate(lab, migd, 'web0', lab.cns[1])
        assert p.returncode == 1, (p.stdout, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        for words in ('public key refused', 'ssh-rsa (SHA-1)', 'OpenSSH 8.8',
                      'use an ed25519 key', 'rsa-sha2 (1.11+)'):
            assert words in p.stderr, p.stderr
        assert world(lab) == before
        # the job, if one was recorded, ended without touching anything
        for j in migd.jobs():
            if j not in jobs_before:
                assert j['state'] in ('failed', 'rolled_back', 'aborted'), j
                assert 'ssh-rsa (SHA-1)' in j['error']['message'], j
    finally:
        next(gen, None)


def test_identity_without_its_pub_file_is_recognised_by_its_header(
        rsa_stock_lab, build_dir, tmp_path_factory):
    """The type is read from the private key's PEM header when IDENTITY.pub
    is missing (libssh2 then derives the public key itself)."""
    lab = rsa_stock_lab
    work = tmp_path_factory.mktemp('nopub')
    key = str(work / 'sdc.id_rsa')
    with open(lab.identity) as src, open(key, 'w') as dst:
        dst.write(src.read())
    os.chmod(key, 0o600)
    gen = running_migd(lab, build_dir, work, ssh={'identity': key})
    migd = next(gen)
    try:
        before = world(lab)
        p = migrate(lab, migd, 'web0', lab.cns[1])
        assert p.returncode == 1 and 'ssh-rsa (SHA-1)' in p.stderr, p.stderr
        assert world(lab) == before
    finally:
        next(gen, None)


def test_a_key_the_cn_does_not_know_says_so(rsa_stock_lab, build_dir, tmp_path_factory):
    """Any other refusal: the CN's authorized_keys does not accept the key."""
    lab = rsa_stock_lab
    work = tmp_path_factory.mktemp('stranger')
    key = str(work / 'id_ed25519')
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', key], check=True)
    gen = running_migd(lab, build_dir, work, ssh={'identity': key})
    migd = next(gen)
    try:
        before = world(lab)
        p = migrate(lab, migd, 'web0', lab.cns[1])
        assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert "the CN does not accept root's ssh-ed25519 key" in p.stderr, p.stderr
        assert 'authorized_keys' in p.stderr and 'SHA-1' not in p.stderr, p.stderr
        assert world(lab) == before
    finally:
        next(gen, None)
