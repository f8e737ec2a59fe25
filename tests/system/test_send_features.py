"""Compressed sends (`zfs send -c`) where both CNs' zfs know them, plain
sends where one does not, through the real binaries.

migd asks each CN in prepare (`zfs send -c` with nothing to send: an older
zfs refuses the option, a newer one only the missing snapshot), records the
answers in the job, and every round of the job then sends alike.  The
lab's zfs-fuse has no `-c`; its front offers it on a CN on request
(Lab.cn_zfs_features, docs/lab.md), so both answers are tested.
"""
import json
import re

import conftest
import helpers


migd = conftest.migd_fixture()


def sends_of(migd, job_uuid):
    """The job's `zfs send` commands of its relays, from its log (migctl log)."""
    p = migd.ctl('log', job_uuid)
    assert p.returncode == 0, p.stderr
    return re.findall(r'relay \S+: (zfs send [^>]*) ->', p.stdout)


def migrate(lab, migd, v, dst):
    """A full migration of v to dst, waited for and cleaned up: the job's JSON and sends."""
    before = lab.file_checksums(helpers.home(lab, v['uuid']), '/zones/%s/root' % v['uuid'])
    p = migd.ctl('migrate', '-w', v['uuid'], dst.hostname)
    assert p.returncode == 0, p.stderr + p.stdout
    job_uuid = re.search(r'[0-9a-f-]{36}', p.stdout).group(0)
    job = migd.job(job_uuid)
    assert job['state'] == 'switched', job
    assert lab.file_checksums(dst, '/zones/%s/root' % v['uuid']) == before
    sends = sends_of(migd, job_uuid)
    show = migd.ctl('show', job_uuid).stdout
    assert migd.ctl('cleanup', job_uuid).returncode == 0
    helpers.wait_state(migd, job_uuid, ('succeeded',))
    return job, sends, show


def test_compressed_where_both_cns_know_it(lab, migd):
    v = lab.vms['web0']
    src = helpers.home(lab, v['uuid'])
    dst = helpers.other(lab, src)
    lab.cn_zfs_features(src, send_c=True)
    lab.cn_zfs_features(dst, send_c=True)
    lab.cn_run(src, 'head -c 4M /dev/urandom > /zones/%s/root/c.bin && sync' % v['uuid'])
    job, sends, show = migrate(lab, migd, v, dst)
    assert job['send_compressed'] is True, job
    # The first round and the switch's final send: both with -c.
    assert len(sends) >= 2 and all(s.startswith('zfs send -R -c ') for s in sends), sends
    assert 'compressed sends (zfs send -c on both CNs)' in show, show


def test_plain_where_one_cn_lacks_it(lab, migd):
    v = lab.vms['web0']
    src = helpers.home(lab, v['uuid'])
    dst = helpers.other(lab, src)
    lab.cn_zfs_features(src, send_c=True)
    lab.cn_zfs_features(dst, send_c=False)  # the target's zfs is older: no -c anywhere
    lab.cn_run(src, 'head -c 4M /dev/urandom > /zones/%s/root/p.bin && sync' % v['uuid'])
    job, sends, show = migrate(lab, migd, v, dst)
    assert job['send_compressed'] is False, job
    assert len(sends) >= 2 and not any(' -c ' in s for s in sends), sends
    assert "plain sends (a CN's zfs has no send -c)" in show, show


def test_the_lab_front_answers_as_both_kinds_of_zfs(lab):
    cn = lab.cns[0]
    lab.cn_zfs_features(cn, send_c=False)
    p = lab.cn_run(cn, 'zfs send -c', check=False)
    assert p.returncode == 2 and "invalid option 'c'" in p.stderr, (p.returncode, p.stderr)
    lab.cn_zfs_features(cn, send_c=True)
    p = lab.cn_run(cn, 'zfs send -c', check=False)
    assert p.returncode == 2 and 'missing snapshot argument' in p.stderr, (p.returncode, p.stderr)
    lab.cn_zfs_features(cn, send_c=False)
    assert json.loads(open('%s/state/features.json' % cn.dir).read()) == {'send_c': False}
