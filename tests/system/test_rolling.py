"""A rolling drain (migctl evacuate CN CN --max-cns N) through the real
binaries against a 4-CN lab (cn3 runs an older platform, so the only
target of cn1's and cn2's VMs is cn4).

cn1 and cn2 are drained together, one at a time: both are reserved in CNAPI
from the first minute, no VM of cn1 lands on cn2 (which is drained next),
cn2 waits its turn in state queued, and a re-run from cron queues nothing
new and reports the progress.
"""
import datetime
import json
import sqlite3
import time

import conftest
import helpers

wait_for = helpers.waiter(900, step=0.5)


lab = conftest.four_cn_lab
migd = conftest.migd_fixture()


def ctl_json(migd, *args):
    p = migd.ctl(*args)
    assert p.returncode in (0, 1), '%s: %d %s' % (args, p.returncode, p.stderr)
    return p.returncode, json.loads(p.stdout)


def drain_of(migd, uuid):
    raw = helpers.unix_get(migd.socket, '/evacuations/%s' % uuid)
    return json.loads(raw.split(b'\r\n\r\n', 1)[1])


def clean_up_switched(migd, keep=()):
    """migctl cleanup of every switched job (the source copies go), but keep's VMs'."""
    for job in migd.jobs():
        if job['state'] == 'switched' and job['vm_uuid'] not in keep:
            p = migd.ctl('cleanup', job['uuid'])
            assert p.returncode == 0, p.stderr
            helpers.wait_state(migd, job['uuid'], ('succeeded',))


def turns_offline(migd, drain):
    """(state, replan) of each CN of the drain, in its order, read from migd's
    database while migd is down."""
    with sqlite3.connect(migd.config['db']) as db:
        evs = [json.loads(row[0]) for row in db.execute('SELECT record FROM evacuations')]
    mine = sorted((e for e in evs if (e.get('rolling') or {}).get('uuid') == drain),
                  key=lambda e: e['rolling']['index'])
    return [(e['state'], bool(e.get('replan'))) for e in mine]


def moved(cn_evac):
    return [e for e in cn_evac['plan'] if e.get('target_uuid')]


def test_rolling_drain_of_two_cns_one_at_a_time(lab, migd, tmp_path):
    cn1, cn2, cn4 = lab.cns[0], lab.cns[1], lab.cns[3]
    cns = tmp_path / 'cns'
    cns.write_text('# tonight\n%s\n\n%s   # then this one\n' % (cn1.hostname, cn2.hostname))

    # The plan: both CNs, in order, none a target of the other; cn2 starts
    # when cn1 is expected to end, and the whole is the sum of the two.
    rc, plan = ctl_json(migd, 'evacuate', '-n', '-j', '--max-cns', '1', '--cns-from', str(cns))
    assert plan['rolling'] is True and plan['state'] == 'plan', plan
    assert [c['server_uuid'] for c in plan['cns']] == [cn1.uuid, cn2.uuid], plan
    for c in plan['cns']:
        assert moved(c), c['plan']
        for e in moved(c):
            assert e['target_uuid'] == cn4.uuid, e
    first, second = plan['cns']
    assert first['starts_after_s'] == 0 and second['starts_after_s'] == first['estimate_s']
    assert plan['estimate_s'] == first['estimate_s'] + second['estimate_s'], plan
    text = migd.ctl('evacuate', '-n', '--max-cns', '1', cn1.hostname, cn2.hostname).stdout
    assert 'plan of a rolling evacuation of 2 CNs, 1 at once' in text, text
    print('\n' + text)

    jobs_before = len(migd.jobs())
    rc, drain = ctl_json(migd, 'evacuate', '-j', '--max-cns', '1', cn1.hostname, cn2.hostname)
    assert rc == 1 and drain['state'] == 'running', drain  # 1: still draining
    uuid = drain['uuid']
    assert [c['state'] for c in drain['cns']] == ['running', 'queued'], drain
    # Every CN of the set is reserved from the first minute.
    for cn in (cn1, cn2):
        assert lab.api('cnapi', 'GET', '/servers/%s' % cn.uuid)[1]['reserved'] is True, cn
    try:
        # cn2 alone is refused while it waits its turn in the drain.
        p = migd.ctl('evacuate', cn2.hostname)
        assert p.returncode == 1 and 'waits its turn' in p.stderr, (p.returncode, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        # A CN of the drain in another set is refused, and nothing changes.
        p = migd.ctl('evacuate', '--max-cns', '1', cn2.hostname, lab.cns[2].hostname)
        assert p.returncode == 1 and 'being evacuated already' in p.stderr, p.stderr
        # A drain still running keeps its CNs reserved.
        p = migd.ctl('evacuate', '--unreserve', uuid)
        assert p.returncode == 1 and 'still being evacuated' in p.stderr, (p.returncode, p.stderr)
        assert lab.api('cnapi', 'GET', '/servers/%s' % cn1.uuid)[1]['reserved'] is True

        # Never two CNs at once; the re-run from cron queues nothing new.
        seen = []

        def ended():
            d = drain_of(migd, uuid)
            states = [c['state'] for c in d['cns']]
            seen.append(states)
            assert states.count('running') <= 1, states
            return d if d['state'] != 'running' else None
        rc, again = ctl_json(migd, 'evacuate', '-j', '--max-cns', '1', cn1.hostname, cn2.hostname)
        assert again['uuid'] == uuid, again
        final = wait_for(ended, 'the rolling drain to end')
        # Drained, the CNs stay reserved (down for their maintenance) until the
        # operator gives them back.
        for cn in (cn1, cn2):
            assert lab.api('cnapi', 'GET', '/servers/%s' % cn.uuid)[1]['reserved'] is True, cn
        rc, back = ctl_json(migd, 'evacuate', '-j', '--unreserve', uuid)
        assert rc == 0 and [c['reserved'] for c in back['cns']] == [False, False], back
        for cn in (cn1, cn2):
            assert lab.api('cnapi', 'GET', '/servers/%s' % cn.uuid)[1]['reserved'] is False, cn
        p = migd.ctl('evacuate', '--unreserve', 'cn1')
        assert p.returncode == 2 and 'evacuation (or drain) UUID' in p.stderr, p.stderr
    finally:
        for cn in (cn1, cn2):
            lab.api('cnapi', 'POST', '/servers/%s' % cn.uuid, {'reserved': False})
    assert final['state'] == 'done', final['attention']
    assert ['done', 'running'] in seen, seen  # cn2's turn, seen while it drained
    assert [c['state'] for c in final['cns']] == ['done', 'done'], final
    # Each VM moved once: no VM of cn1 went to cn2 and on again.
    jobs = migd.jobs()
    queued = sum(len(moved(c)) for c in final['cns'])
    assert len(jobs) - jobs_before == queued, (len(jobs), jobs_before, queued)
    for c in final['cns']:
        for e in moved(c):
            assert e['state'] in ('switched', 'succeeded'), e
            vm = lab.api('vmapi', 'GET', '/vms/%s' % e['vm_uuid'])[1]
            assert vm['server_uuid'] == cn4.uuid, (e['alias'], vm['server_uuid'])
    # cn2's turn began when cn1's ended, with a plan made then.
    assert final['cns'][1]['started_ms'] >= final['cns'][0]['finished_ms'], final['cns']
    p = migd.ctl('evacuate', '--max-cns', '1', cn1.hostname, cn2.hostname)
    assert 'rolling evacuation %s of 2 CNs, 1 at once: done' % uuid in p.stdout, p.stdout
    print(p.stdout)


CRASH_EXIT = 99  # a test build's migd at its MIGD_CRASH_AT point


def test_a_drain_killed_mid_way_resumes_from_the_store(lab, migd):
    # The first test left every VM that moves on cn4, each by a job that
    # rests switched (its source copy kept).  All but web0's are cleaned up;
    # then cn4 and cn2 are drained: their VMs go to cn1 (cn4, drained first,
    # is no target of cn2's until the whole drain ends), but web0, whose job
    # has not ended, is not taken for one of the drain's and stays, saying why.
    # migd is killed three times: by SIGKILL while cn4's jobs run, then (the
    # crash campaign's points) between the two CNs: once cn4's turn ended
    # before cn2's is on record, and once it is on record before its plan.
    cn1, cn2, cn4 = lab.cns[0], lab.cns[1], lab.cns[3]
    web0 = lab.vms['web0']['uuid']
    clean_up_switched(migd, keep=(web0,))
    jobs_before = len(migd.jobs())
    rc, drain = ctl_json(migd, 'evacuate', '-j', '--max-cns', '1', '--no-reserve',
                         cn4.hostname, cn2.hostname)
    uuid = drain['uuid']
    assert [c['state'] for c in drain['cns']] == ['running', 'queued'], drain
    wait_for(lambda: drain_of(migd, uuid)['progress']['moving'] > 0, 'cn4 to be draining')
    migd.kill()  # SIGKILL: no goodbye
    migd.start(env={'MIGD_CRASH_AT': 'rolling.turn:before-start'})
    assert migd.wait_exit(600) == CRASH_EXIT, migd.log_text()[-3000:]
    # Between the two CNs: cn4's turn is over, cn2's not on record.
    assert turns_offline(migd, uuid) == [('failed', False), ('queued', False)]
    migd.start(env={'MIGD_CRASH_AT': 'rolling.turn:after-start'}, wait=False)
    assert migd.wait_exit(60) == CRASH_EXIT, migd.log_text()[-3000:]
    # cn2's turn on record, its plan not made: the restart plans it.
    assert turns_offline(migd, uuid) == [('failed', False), ('running', True)]
    migd.start()
    final = wait_for(lambda: (lambda d: d if d['state'] != 'running' else None)(
        drain_of(migd, uuid)), 'the resumed drain to end')
    assert final['state'] == 'failed', final
    assert [c['state'] for c in final['cns']] == ['failed', 'done'], final
    busy = [line for line in final['attention'] if 'web0' in line]
    assert len(busy) == 1 and 'clean it up' in busy[0], final['attention']
    everything = [e for c in final['cns'] for e in moved(c) if e['vm_uuid'] != web0]
    assert len(everything) == 7, final
    for e in everything:
        assert e['target_uuid'] == cn1.uuid and e['state'] in ('switched', 'succeeded'), e
        vm = lab.api('vmapi', 'GET', '/vms/%s' % e['vm_uuid'])[1]
        assert vm['server_uuid'] == cn1.uuid, (e['alias'], vm['server_uuid'])
    assert lab.api('vmapi', 'GET', '/vms/%s' % web0)[1]['server_uuid'] == cn4.uuid
    # Each VM once, though migd was killed while its jobs ran.
    assert len(migd.jobs()) - jobs_before == 7


def test_pause_and_resume_an_evacuation_across_a_restart(lab, migd):
    # cn1 holds the VMs the previous test moved there; one job at a time.
    cn1 = lab.cns[0]
    clean_up_switched(migd)
    rc, ev = ctl_json(migd, 'evacuate', '-j', '--no-reserve', '--max-parallel', '1', cn1.hostname)
    uuid = ev['uuid']
    jobs = [e['job_uuid'] for e in ev['plan'] if e.get('job_uuid')]
    assert len(jobs) >= 3, ev['plan']
    p = migd.ctl('pause', uuid)
    assert p.returncode == 0 and ': paused;' in p.stdout, (p.returncode, p.stdout, p.stderr)

    def states():
        return {j: migd.job(j) for j in jobs}

    # The job that had started copies on and rests waiting; the rest do not start.
    def resting():
        now = states()
        held = [j for j in now.values() if j['state'] == 'waiting' and
                'paused with evacuation' in (j.get('activity') or '')]
        return now if held else None
    now = wait_for(resting, 'a job of the paused evacuation to rest waiting', timeout=120)
    assert all(j['state'] in ('queued', 'waiting') for j in now.values()), now
    queued = [j for j in now.values() if j['state'] == 'queued']
    assert queued and all('is paused' in (j.get('activity') or '') for j in queued), queued

    # A restart keeps the pause: state paused, nothing switches.
    assert migd.stop() == 0
    migd.start()
    assert drain_of(migd, uuid)['state'] == 'paused'
    rounds_before = {j: len(s.get('rounds') or []) for j, s in states().items()}
    time.sleep(4)
    after = states()
    assert all(j['state'] in ('queued', 'waiting') for j in after.values()), after
    # A job resting paused still does its rounds (here every incremental.interval_s).
    assert all(len(after[j].get('rounds') or []) >= rounds_before[j] for j in jobs)

    p = migd.ctl('resume', uuid)
    assert p.returncode == 0 and ': running;' in p.stdout, (p.returncode, p.stdout, p.stderr)
    final = wait_for(lambda: (lambda d: d if d['state'] not in ('running', 'paused') else None)(
        drain_of(migd, uuid)), 'the resumed evacuation to end')
    assert final['state'] == 'done', final['attention']
    for j in jobs:
        assert migd.job(j)['state'] in ('switched', 'succeeded'), migd.job(j)
    # An ended evacuation cannot be paused: a one-line refusal, exit 1.
    p = migd.ctl('pause', uuid)
    assert p.returncode == 1 and 'has ended' in p.stderr, (p.returncode, p.stderr)
    # What names neither an evacuation nor a job is a usage error, as for every JOB.
    p = migd.ctl('pause', 'not-a-uuid')
    assert p.returncode == 2 and 'no job matches "not-a-uuid"' in p.stderr, (p.returncode, p.stderr)


def test_return_home_after_an_evacuation(lab, migd):
    """migctl evacuate --return EVAC after the evacuation of cn1 (the test
    before): its CNs are given back, and the VMs it moved that still run
    where it put them go back to cn1, with a plan first (-n), inside the
    window asked.  One VM whose job still keeps its copy on cn1 (switched)
    goes home by that job's rollback, which waits for the window too; one
    moved since by someone else stays, named.  migd is killed while the
    rollback waits."""
    cn1 = lab.cns[0]
    evacs = json.loads(helpers.unix_get(migd.socket, '/evacuations').split(b'\r\n\r\n', 1)[1])
    ev = max((e for e in evacs if e['server_uuid'] == cn1.uuid and not e.get('rolling')
              and e.get('kind') != 'homecoming'), key=lambda e: e['created_ms'])
    assert ev['state'] == 'done', ev['state']
    left = [e for e in ev['plan'] if e.get('job_uuid')]
    assert len(left) >= 3, ev['plan']
    # A plain zone is moved on by hand (fabric0, say, needs an underlay cn4 lacks).
    moved_since = [e for e in left if e['alias'] in ('lx0', 'stopped0', 'web0')][0]
    others = [e for e in left if e is not moved_since]
    kept, home = others[0], others[1:]
    clean_up_switched(migd, keep=(kept['vm_uuid'],))
    # Someone moves one of them on, by hand.
    now_on = lab.api('vmapi', 'GET', '/vms/%s' % moved_since['vm_uuid'])[1]['server_uuid']
    elsewhere = [cn for cn in (lab.cns[1], lab.cns[3]) if cn.uuid != now_on][0]
    p = migd.ctl('migrate', '-w', moved_since['vm_uuid'], elsewhere.hostname)
    assert p.returncode == 0, p.stderr
    clean_up_switched(migd, keep=(kept['vm_uuid'],))
    lab.api('cnapi', 'POST', '/servers/%s' % cn1.uuid, {'reserved': True})
    jobs_before = len(migd.jobs())

    rc, plan = ctl_json(migd, 'evacuate', '-n', '-j', '--return', ev['uuid'])
    assert plan['state'] == 'plan' and plan['kind'] == 'homecoming', plan
    by_vm = {e['vm_uuid']: e for e in plan['plan']}
    assert all(by_vm[e['vm_uuid']]['target_uuid'] == cn1.uuid for e in home), plan['plan']
    k = by_vm[kept['vm_uuid']]
    assert (k['target_uuid'], k['by'], k['job_uuid']) == (cn1.uuid, 'rollback', kept['job_uuid'])
    assert 'by the rollback of job %s' % kept['job_uuid'] in k['why'], k
    assert by_vm[moved_since['vm_uuid']]['target_uuid'] is None
    assert 'moved since by someone else' in by_vm[moved_since['vm_uuid']]['why']
    assert elsewhere.hostname in by_vm[moved_since['vm_uuid']]['why']
    assert len(migd.jobs()) == jobs_before  # a plan queues nothing
    assert lab.api('cnapi', 'GET', '/servers/%s' % cn1.uuid)[1]['reserved'] is True

    now = datetime.datetime.now(datetime.timezone.utc)
    opens = (now + datetime.timedelta(seconds=75)).replace(second=0, microsecond=0)
    spec = helpers.window_from(opens, 5)
    p = migd.ctl('evacuate', '-j', '--max-parallel', '2', '--window', spec,
                 '--return', ev['uuid'])
    assert p.returncode in (0, 1) and p.stdout, (p.returncode, p.stderr)
    back = json.loads(p.stdout)
    assert back['kind'] == 'homecoming' and back['homecoming_of'] == ev['uuid'], back
    assert lab.api('cnapi', 'GET', '/servers/%s' % cn1.uuid)[1]['reserved'] is False
    # Before the window, the rollback waits (said on its plan entry: for the
    # window, or for a lane the copies waiting for it hold), the job at rest.
    entry = lambda: [e for e in drain_of(migd, back['uuid'])['plan']
                     if e['vm_uuid'] == kept['vm_uuid']][0]
    waits = wait_for(lambda: entry().get('waits'), 'the rollback to say it waits', 60)
    assert ('waits for its window' in waits or
            "waits for the homecoming's --max-parallel 2: 2 running" in waits), waits
    # Killed while it waits: the restart takes the waiting rollback up again.
    migd.kill()
    migd.start()
    while time.time() < opens.timestamp() - 2:
        assert migd.job(kept['job_uuid'])['state'] == 'switched'
        time.sleep(0.5)
    final = wait_for(lambda: (lambda d: d if d['state'] not in ('running', 'paused') else None)(
        drain_of(migd, back['uuid'])), 'the homecoming to end')
    assert final['state'] == 'done', final['attention']
    # Rolled back inside the window, followed by the homecoming.
    j = migd.job(kept['job_uuid'])
    assert (j['state'], j['evacuation']) == ('rolled_back', back['uuid']), j
    ended = datetime.datetime.strptime(j['finished'], '%Y-%m-%dT%H:%M:%S.%fZ')
    assert ended.replace(tzinfo=datetime.timezone.utc) >= opens, (j['finished'], spec)
    vm = lab.api('vmapi', 'GET', '/vms/%s' % kept['vm_uuid'])[1]
    assert vm['server_uuid'] == cn1.uuid, vm['server_uuid']
    assert 'waits' not in entry()
    # The evacuation that moved it still counts it as moved (it left, then came home).
    assert drain_of(migd, ev['uuid'])['progress']['failed'] == 0
    for e in home:
        vm = lab.api('vmapi', 'GET', '/vms/%s' % e['vm_uuid'])[1]
        assert vm['server_uuid'] == cn1.uuid, (e['alias'], vm['server_uuid'])
    assert lab.api('vmapi', 'GET', '/vms/%s' % moved_since['vm_uuid'])[1]['server_uuid'] == \
        elsewhere.uuid
    assert len(migd.jobs()) - jobs_before == len(home)
    # Asked again (cron): the return on record, nothing queued anew.
    rc, again = ctl_json(migd, 'evacuate', '-j', '--return', ev['uuid'])
    assert again['uuid'] == back['uuid'] and len(migd.jobs()) - jobs_before == len(home)
    text = migd.ctl('evacuate', '--return', ev['uuid']).stdout
    assert 'homecoming %s of evacuation %s: done' % (back['uuid'], ev['uuid']) in text, text
    p = migd.ctl('evacuate', '--return', 'cn1')
    assert p.returncode == 2, p.stderr
