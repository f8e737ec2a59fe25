"""Maintenance windows (`migrate --window HH:MM-HH:MM[,TZ]`): copies run at
any time, the switch only inside the window.  A job ready before it rests
`waiting` with its window in the JSON, `show` and the activity, keeps
syncing every incremental.interval_s, and switches once the window opens,
not before.  Bad windows are usage errors that change nothing.
"""
import datetime
import json
import subprocess
import time

import conftest
import helpers
from helpers import home, other, settle, submit, vm_and_cns

INTERVAL_S = 4


migd = conftest.migd_fixture(incremental={'interval_s': INTERVAL_S}, health={'min_up_s': 0})


def test_the_switch_waits_for_its_window(lab, migd):
    v, src, dst = vm_and_cns(lab, 'web0')
    now = datetime.datetime.now(datetime.timezone.utc)
    # The next minute at least 30 s away: the copy ends well before it.
    opens = (now + datetime.timedelta(seconds=90)).replace(second=0, microsecond=0)
    spec = helpers.window_from(opens, 3, tz_offset_h=5)
    job = submit(migd, '--window', spec, v['uuid'], dst.hostname)

    def waiting():
        j = migd.job(job)
        return j if j['state'] == 'waiting' else None
    j = helpers.wait_for(waiting, 'the job to rest waiting', 120)
    assert time.time() < opens.timestamp(), 'the copy ended after the window opened: retry'
    w = j['window']
    assert (w['opens'], w['tz'], w['open']) == (spec[:5], 'Etc/GMT-5', False), w
    assert w['next_open'] == opens.strftime('%Y-%m-%dT%H:%M:%S.000Z'), w
    assert 'waits for its window %s' % spec in j['activity'], j['activity']
    assert j['phase'] == 'sync', j
    show = migd.ctl('show', job).stdout
    assert 'window      %s-%s Etc/GMT-5: the switch only inside it; opens' % (
        spec[:5], spec[6:11]) in show, show
    # It keeps syncing while it waits.
    rounds = len(j['rounds'])
    helpers.wait_for(lambda: len(migd.job(job)['rounds']) > rounds, 'another round',
                     INTERVAL_S * 10)
    # Still syncing, not switching, right up to the opening.
    while time.time() < opens.timestamp() - 2:
        j = migd.job(job)
        assert (j['state'], j['phase']) == ('waiting', 'sync'), j
        time.sleep(0.5)
    end = helpers.wait_for(lambda: (lambda j: j if j['state'] not in (
        'queued', 'running', 'waiting') else None)(migd.job(job)), 'the switch', 300)
    assert end['state'] == 'switched' and end['window']['open'], end
    assert len(end['rounds']) >= 3, end['rounds']
    settle(migd, job)


def test_bad_windows_are_usage_errors(lab, migd):
    v = lab.vms['lx0']
    before = len(migd.jobs())
    for bad, why in (('25:00-01:00', 'HH:MM-HH:MM'), ('10:00-10:00', 'empty'),
                     ('10:00-11:00,Mars/Olympus', 'time zone'),
                     ('10:00-11:00,Europe/Berlin;reboot', 'time zone')):
        p = migd.ctl('migrate', '--window', bad, v['uuid'])
        assert p.returncode == 2 and why in p.stderr, (bad, p)
        assert p.stderr.count('\n') == 1, p.stderr
    # The API says the same, and queues nothing.
    p = subprocess.run(['curl', '-s', '--unix-socket', migd.socket, '-X', 'POST',
                        '-H', 'Content-Type: application/json', '-w', '\n%{http_code}',
                        '-d', json.dumps({'vm_uuid': v['uuid'], 'window': '10:00'}),
                        'http://migd/jobs'], capture_output=True, text=True)
    body, status = p.stdout.rsplit('\n', 1)
    assert status == '400' and 'window' in json.loads(body)['message'], p.stdout
    assert len(migd.jobs()) == before


def test_an_evacuation_passes_its_window_to_its_jobs(lab, migd):
    """The window is one of the evacuation's options (kept across re-runs,
    given to every job it queues); a bad one is refused before anything."""
    cn = lab.cns[1]
    p = migd.ctl('evacuate', '-n', '-j', '--window', '01:00-03:00,Europe/Berlin', cn.hostname)
    assert p.returncode in (0, 1), p.stderr
    ev = json.loads(p.stdout)
    assert ev['options']['window'] == '01:00-03:00,Europe/Berlin', ev['options']
    p = migd.ctl('evacuate', '-n', '--window', '01:00-03:00,Nowhere/Else', cn.hostname)
    assert p.returncode == 2 and 'time zone' in p.stderr, p


def phase_times(migd, job):
    """{phase: time it was entered} from the job's log."""
    p = migd.ctl('log', '-j', job)
    assert p.returncode == 0, p.stderr
    out = {}
    for line in p.stdout.splitlines():
        rec = json.loads(line)
        if rec.get('msg', '').startswith('phase '):
            out.setdefault(rec['msg'][6:], rec['time'])
    return out


def test_switches_out_of_one_cn_take_turns(lab, migd):
    """limits.switches_per_cn (1 here, the default): two jobs off one CN copy
    at once but switch one after the other."""
    a, b = lab.vms['lx0'], lab.vms['stopped0']
    src = home(lab, a['uuid'])
    assert home(lab, b['uuid']) == src
    dst = other(lab, src)
    # The first attach on the target takes 5 s: the other job is ready meanwhile.
    lab.cn_fault(dst, 'zoneadm', args='attach', exit=None, delay_s=5)
    try:
        jobs = [submit(migd, v['uuid'], dst.hostname) for v in (a, b)]
        ends = [helpers.ended(migd, j) for j in jobs]
    finally:
        lab.cn_faults_clear(dst)
    assert [e['state'] for e in ends] == ['switched', 'switched'], ends
    spans = sorted((t['switch'], t['cleanup']) for t in (phase_times(migd, j) for j in jobs))
    assert spans[0][1] <= spans[1][0], 'the switches overlapped: %s' % spans
    waited = [j for j in jobs if 'the switch waits for job' in migd.ctl('log', j).stdout]
    assert len(waited) == 1, "one job waited for the other's switch"
    for j in jobs:
        settle(migd, j)


def test_a_window_that_closes_mid_queue(lab, migd):
    """Three jobs off one CN in a window that closes about 40 s after they
    are submitted; each switch takes 20 s (a slow attach on the target) and
    they switch one at a time (limits.switches_per_cn 1).  The first switches
    inside the window; no switch starts after it closes; the one still
    waiting then says, in its activity and its log, that it waits for the
    next day's opening."""
    a, b, c = lab.vms['web0'], lab.vms['lx0'], lab.vms['stopped0']
    src = home(lab, a['uuid'])
    assert home(lab, b['uuid']) == src and home(lab, c['uuid']) == src
    dst = other(lab, src)
    now = datetime.datetime.now(datetime.timezone.utc)
    closes = (now + datetime.timedelta(seconds=95)).replace(second=0, microsecond=0)
    if (closes - now).total_seconds() > 45:
        time.sleep((closes - now).total_seconds() - 45)  # 35-45 s left at the submission
    opens = closes - datetime.timedelta(minutes=10)
    spec = helpers.window_from(opens, 10)
    lab.cn_fault(dst, 'zoneadm', args='attach', count=-1, exit=None, delay_s=20)
    try:
        jobs = [submit(migd, '--window', spec, v['uuid'], dst.hostname) for v in (a, b, c)]
        helpers.wait_for(lambda: time.time() > closes.timestamp() + 3, 'the window to close',
                         120)
        now_jobs = [migd.job(j) for j in jobs]
        resting = [j for j in now_jobs if j['state'] == 'waiting']
        assert resting, 'all three switched before the window closed: %s' % [
            (j['state'], j['phase']) for j in now_jobs]
        tomorrow = (opens + datetime.timedelta(days=1)).strftime('%Y-%m-%dT%H:%M:%S.000Z')
        for j in resting:
            assert j['phase'] == 'sync' and j['window']['next_open'] == tomorrow, j['window']
            # Between its rounds (it keeps doing them), its activity says when it switches.
            helpers.wait_job(migd, j['uuid'],
                             lambda x: 'opens %s' % tomorrow in (x['activity'] or ''),
                             'the activity to name the next opening', INTERVAL_S * 5)
            log = migd.ctl('log', j['uuid']).stdout.splitlines()
            told = [line for line in log if 'waits for its window %s' % spec in line and
                    'opens %s' % tomorrow in line]
            assert told, log
            # Each wait is told once, though the job does rounds meanwhile: a line
            # repeats only after another wait came between.
            waits = [line.split(' ', 2)[2] for line in log if 'the switch waits' in line]
            assert all(a != b for a, b in zip(waits, waits[1:])), waits
        ends = [helpers.wait_job(migd, j, lambda x: x['state'] != 'running' and
                                 x['phase'] != 'switch', 'the switch in flight to end', 120)
                for j in jobs]
    finally:
        lab.cn_faults_clear(dst)
    switched = [e for e in ends if e['state'] == 'switched']
    assert switched, 'no switch inside the window'
    for e in switched:
        assert phase_times(migd, e['uuid'])['switch'] < closes.strftime('%Y-%m-%dT%H:%M:%S'), \
            'a switch started after the window closed'
    assert [e['state'] for e in ends].count('waiting') == len(resting)
    for e in ends:
        if e['state'] == 'waiting':
            assert migd.ctl('abort', e['uuid']).returncode == 0
            helpers.wait_state(migd, e['uuid'], ('aborted',))
        else:
            settle(migd, e['uuid'])
