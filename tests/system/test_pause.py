"""migctl pause|resume JOB against the lab.

A job paused in its first send: the stream is cut at once, the job rests
waiting (state and `paused` on record, through a restart of migd), and on
resume the send goes on from what the target already holds: kvm0's disk that
had arrived is not sent again (the bytes of the resumed round say so), and
the data on the target is the data of the source.  A job paused between its
rounds does no round until resumed.  What cannot be paused is refused in one
line and changes nothing.
"""
import json
import os
import re
import subprocess
import time

import conftest
import helpers

DISK_MB = 24  # random data per KVM disk: at --limit 48 (6 MB/s), 4 s each
MB = 1 << 20


# One stream at a time (transfer.streams 1): the first test pauses once a whole
# disk is on the target and the other is on its way, which streams run at
# once (the default) never leave: both disks would be halfway.
migd = conftest.migd_fixture(incremental={'interval_s': 2, 'auto_switch_bytes': 1},
                             transfer={'streams': 1})


def submitted(p):
    assert p.returncode == 0, (p.stdout, p.stderr)
    return re.search(r'[0-9a-f-]{36}', p.stdout).group(0)


def test_a_job_paused_in_its_first_send_goes_on_from_what_the_target_holds(lab, migd):
    v = lab.vms['kvm0']
    u, src, dst = v['uuid'], v['cn'], lab.cns[0]
    disks = ['zones/%s-disk0' % u, 'zones/%s-disk1' % u]
    for d in disks:
        lab.cn_run(src, 'head -c %dM /dev/urandom > /%s/bulk.bin && sync' % (DISK_MB, d),
                   timeout=300)
    mounted = ['/zones/' + u] + ['/' + d for d in disks]
    before = {m: lab.file_checksums(src, m) for m in mounted}

    job = submitted(migd.ctl('migrate', '--limit', '48', u, dst.hostname))
    # Into the second dataset of the first send: one whole disk is on the target.
    helpers.wait_job(migd, job, lambda j: j['progress']['bytes_sent'] > (DISK_MB + 6) * MB,
                     'the first send to be into its second disk', timeout=120, step=0.1)
    p = migd.ctl('pause', job)
    assert p.returncode == 0 and 'first send is cut' in p.stdout, (p.stdout, p.stderr)
    rested = helpers.wait_job(migd, job, lambda j: j['state'] == 'waiting',
                              'the paused job to rest waiting', timeout=30)
    assert rested['paused'] is True and rested['phase'] == 'sync', rested
    assert 'paused before its first send ended' in rested['activity'], rested['activity']
    assert rested['rounds'] == [], rested['rounds']
    sent_at_pause = rested['progress']['bytes_sent']
    assert sent_at_pause < 2 * DISK_MB * MB, sent_at_pause  # it was cut, not finished
    head, body = helpers.unix_get(migd.socket, '/jobs/%s/actions' % job).split(b'\r\n\r\n', 1)
    cut = [a for a in json.loads(body)['actions'] if a['error'] and 'pause' in a['error']]
    assert cut, 'the journal names the cut action'

    # Paused stays paused: nothing moves, a restart of migd keeps it.
    time.sleep(3)
    assert migd.job(job)['progress']['bytes_sent'] == sent_at_pause
    assert migd.stop() == 0
    migd.start()
    time.sleep(3)
    again = migd.job(job)
    assert (again['state'], again['paused']) == ('waiting', True), again
    assert again['progress']['bytes_sent'] == sent_at_pause
    show = migd.ctl('show', job)
    assert show.returncode == 0 and ', paused' in show.stdout, show.stdout
    p = migd.ctl('pause', job)
    assert p.returncode == 1 and 'already paused' in p.stderr, (p.returncode, p.stderr)

    p = migd.ctl('resume', job)
    assert p.returncode == 0 and 'resumed' in p.stdout, (p.stdout, p.stderr)
    done = helpers.wait_state(migd, job, ('switched', 'failed', 'aborted'), timeout=300)
    assert done['state'] == 'switched', (done.get('error'), migd.log_text()[-3000:])
    assert done['paused'] is False
    # The resumed first send did not start over: the disk that had arrived is not
    # in it (starting over would send both disks again, 2 x DISK_MB and more).
    first = done['rounds'][0]['bytes']
    assert 0 < first < int(1.5 * DISK_MB * MB), (first, sent_at_pause)
    for m in mounted:
        assert lab.file_checksums(dst, m) == before[m], m


def test_a_job_paused_between_rounds_does_no_round_until_resumed(lab, migd):
    v = lab.vms['web0']
    u, dst = v['uuid'], helpers.other(lab, v['cn'])
    job = submitted(migd.ctl('migrate', '-i', u, dst.hostname))
    helpers.wait_job(migd, job, lambda j: len(j['rounds']) >= 2, 'two rounds', timeout=120)
    p = migd.ctl('pause', '-j', job)
    assert p.returncode == 0, p.stderr
    assert '"paused": true' in p.stdout or '"paused":true' in p.stdout, p.stdout
    rested = helpers.wait_job(migd, job, lambda j: 'paused after' in (j['activity'] or ''),
                              'the round in progress to end', timeout=60)
    n = len(rested['rounds'])
    time.sleep(5)  # 2 intervals and more
    assert len(migd.job(job)['rounds']) == n, 'no round while paused'
    listed = migd.ctl('list', '-H', '-o', 'id,state,paused', 'paused=true')
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == [job[:8], 'waiting', 'true'], listed.stdout
    # finish while paused is taken, but the switch waits for the resume.
    assert migd.ctl('finish', job).returncode == 0
    time.sleep(3)
    assert migd.job(job)['state'] == 'waiting'

    assert migd.ctl('resume', job).returncode == 0
    done = helpers.wait_state(migd, job, ('switched', 'failed'), timeout=120)
    assert done['state'] == 'switched', done.get('error')
    # Past its switch a job cannot be paused: one line, exit 1, nothing changed.
    p = migd.ctl('pause', job)
    assert p.returncode == 1 and 'has not begun its switch' in p.stderr, (p.returncode, p.stderr)
    assert migd.job(job)['paused'] is False
    p = migd.ctl('resume', 'no-such-job')
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert migd.ctl('cleanup', job).returncode == 0
    helpers.wait_state(migd, job, ('succeeded', 'switched'), timeout=120)


def test_a_pause_resumed_at_once_lets_the_first_send_go_on(lab, migd):
    """pause and resume back to back while the first send runs: whether the
    cut took effect before the resume or not, the send goes on and the job
    switches; nothing is rolled back."""
    v = lab.vms['lx0']
    u, dst = v['uuid'], helpers.other(lab, helpers.home(lab, v['uuid']))
    helpers.fill(lab, helpers.home(lab, u), u, 16)
    job = submitted(migd.ctl('migrate', '--limit', '32', u, dst.hostname))
    helpers.wait_job(migd, job, lambda j: j['progress']['bytes_sent'] > 2 * MB,
                     'the first send to move bytes', timeout=120, step=0.1)
    env = dict(os.environ, MIGD_SOCKET=migd.socket)
    ctl = os.path.join(migd.build_dir, 'migctl')
    # One shell, so the two requests follow each other as closely as migctl allows.
    p = subprocess.run('%s pause %s && %s resume %s' % (ctl, job, ctl, job), shell=True,
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    done = helpers.wait_state(migd, job, ('switched', 'failed', 'aborted'), timeout=300)
    assert done['state'] == 'switched', (done.get('error'), migd.log_text()[-3000:])
    assert done['paused'] is False and not done.get('error'), done
