"""Evacuating a CN (`migctl evacuate`), through the real binaries against a
4-CN lab (cn3 runs an older platform, so the targets are cn2 and cn4).

cn1 holds seven VMs of mixed brands: web0 (joyent), lx0 (lx, made too
large for any target by raising its RAM in VMAPI), stopped0 (joyent,
stopped), bhyve0, core0 (a core zone), nat0 (a NAT zone) and stor0 (a NIC
on the `storage` tag that only cn1 has).  The evacuation moves web0,
stopped0 and bhyve0 with --max-parallel 2 while an unrelated job moves
kvm0 from cn2 to cn3, and the checks come from the records: every job's
started..finished interval, the VMs' data on their new CNs, CNAPI's
reservation, the evacuation's own report.
"""
import datetime
import json

import conftest
import helpers
from helpers import home, unix_get

wait_for = helpers.waiter(600, step=0.5)

PLACED = {'web0', 'stopped0', 'bhyve0'}
STAYS = {'lx0': 'RAM', 'core0': 'core', 'nat0': 'NAT', 'stor0': 'storage'}
MAX_JOBS_PER_CN = 2


lab = conftest.four_cn_lab
migd = conftest.migd_fixture(limits={'max_active_jobs': 4, 'max_jobs_per_cn': MAX_JOBS_PER_CN})


def evacuate(migd, *args):
    p = migd.ctl('evacuate', '-j', *args)
    assert p.returncode in (0, 1), 'evacuate: %d %s' % (p.returncode, p.stderr)
    return p.returncode, json.loads(p.stdout)


def reserved(lab, cn):
    return lab.api('cnapi', 'GET', '/servers/%s' % cn.uuid)[1]['reserved']


def most_at_once(intervals):
    """The largest number of [start, end] intervals that overlap at one instant."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
                   key=lambda x: (x[0], x[1]))
    now = most = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def ms(iso):
    return datetime.datetime.strptime(iso, '%Y-%m-%dT%H:%M:%S.%fZ').replace(
        tzinfo=datetime.timezone.utc).timestamp() * 1000


def interval(job):
    """started..finished: the time the job held its slot (finished is when it came to rest)."""
    assert job['started'] and job['finished'], job
    start, end = ms(job['started']), ms(job['finished'])
    assert end >= start, job
    return start, end


def test_estimate_of_a_vm_and_of_a_cn(lab, migd):
    cn1 = lab.cns[0]
    p = migd.ctl('estimate', '-j', 'web0')
    assert p.returncode == 0, p.stderr
    one = json.loads(p.stdout)
    [entry] = one['plan']
    assert entry['alias'] == 'web0' and entry['bytes'] > 0 and entry['estimate_s'] > 0
    assert one['hostname'] == cn1.hostname
    p = migd.ctl('estimate', '-j', cn1.hostname)
    assert p.returncode == 0, p.stderr
    whole = json.loads(p.stdout)
    assert {e['alias'] for e in whole['plan']} == PLACED | set(STAYS) | {'lx0'}
    assert whole['estimate_s'] >= entry['estimate_s']
    # An estimate records nothing and reserves nothing.
    assert migd.jobs() == [] and not reserved(lab, cn1)
    p = migd.ctl('estimate', 'nosuchthing')
    assert p.returncode == 1 and p.stderr.count('\n') == 1, p.stderr


def test_evacuate_a_cn_to_two_targets(lab, migd):
    cn1, cn2, cn4 = lab.cns[0], lab.cns[1], lab.cns[3]
    vms = {a: lab.vms[a] for a in PLACED | set(STAYS)}
    sums = {a: lab.file_checksums(cn1, '/zones/%s' % vms[a]['uuid']) for a in PLACED}
    big = vms['lx0']
    ram_before = lab.api('vmapi', 'GET', '/vms/%s' % big['uuid'])[1]['ram']
    lab.api_patch('vms', big['uuid'], {'ram': 4 << 20})  # 4 TiB: no CN has that
    try:
        # -n: the plan only; nothing queued, nothing reserved.
        rc, plan = evacuate(migd, '-n', '--to', '%s,%s' % (cn2.hostname, cn4.hostname),
                            '--max-parallel', '2', cn1.hostname)
        assert plan['state'] == 'plan' and migd.jobs() == [] and not reserved(lab, cn1)

        # An unrelated job runs beside the evacuation, out of cn2 (a possible
        # target) into cn3 (-D: an older platform).  Not into cn4: the plan
        # puts every VM on cn4 (the most free RAM), and a job holding one of
        # cn4's two slots made "two at once" depend on how long it ran.
        cn3 = lab.cns[2]
        p = migd.ctl('migrate', '-D', lab.vms['kvm0']['uuid'], cn3.hostname)
        assert p.returncode == 0, p.stderr

        rc, ev = evacuate(migd, '--to', '%s,%s' % (cn2.hostname, cn4.hostname),
                          '--max-parallel', '2', '--cleanup-after', '2h', cn1.hostname)
        assert rc == 1, 'skipped VMs need a human: exit 1'
        assert ev['options']['cleanup_after_s'] == 7200, ev['options']
        by_alias = {e['alias']: e for e in ev['plan']}
        assert set(by_alias) == PLACED | set(STAYS), by_alias.keys()
        for alias in PLACED:
            e = by_alias[alias]
            assert e['target_uuid'] in (cn2.uuid, cn4.uuid), e
            assert e['job_uuid'] and e['bytes'] > 0 and e['estimate_s'] > 0, e
        for alias, word in STAYS.items():
            e = by_alias[alias]
            assert e['target_uuid'] is None and e.get('job_uuid') is None, e
            assert word.lower() in e['why'].lower(), e
            assert any(alias in line for line in ev['attention']), ev['attention']
        assert reserved(lab, cn1)
        print('\nevacuation plan: %s' % json.dumps(
            [(e['alias'], e.get('target_hostname'), e['bytes'], e['estimate_s'], e['why'])
             for e in ev['plan']]))
        print('estimated window: %d s for %d bytes' % (ev['estimate_s'], ev['bytes']))

        # Run again at once: the same evacuation, nothing queued twice.
        jobs_before = migd.jobs()
        rc2, again = evacuate(migd, '--to', cn2.hostname, cn1.hostname)
        assert rc2 == 1 and again['uuid'] == ev['uuid']
        assert len(migd.jobs()) == len(jobs_before) == len(PLACED) + 1

        # Every job ends.
        def all_ended():
            js = migd.jobs()
            return js if all(j['state'] not in ('queued', 'running') for j in js) else None
        jobs = wait_for(all_ended, 'every job to end')
        mine = [j for j in jobs if j.get('evacuation') == ev['uuid']]
        assert len(mine) == len(PLACED)
        for j in jobs:
            assert j['state'] == 'switched', (j['vm_alias'], j['error'])
            # The evacuation's --cleanup-after reached its jobs, not the unrelated one.
            assert (j['cleanup_at'] is not None) == (j.get('evacuation') == ev['uuid']), j
        for alias in PLACED:
            e = by_alias[alias]
            dst = home(lab, vms[alias]['uuid'])
            assert dst.uuid == e['target_uuid']
            assert lab.file_checksums(dst, '/zones/%s' % vms[alias]['uuid']) == sums[alias]
            vm = lab.api('vmapi', 'GET', '/vms/%s' % vms[alias]['uuid'])[1]
            assert vm['server_uuid'] == dst.uuid
        for alias in STAYS:
            assert home(lab, vms[alias]['uuid']).n == 1

        # The limits, from the job records' times.
        spans = [interval(migd.job(j['uuid'])) for j in mine]
        assert most_at_once(spans) <= 2, spans
        assert most_at_once(spans) == 2, 'two jobs never ran together: %s' % spans
        every = [migd.job(j['uuid']) for j in jobs]
        for cn in lab.cns:
            on_cn = [interval(j) for j in every
                     if cn.uuid in (j['source_server_uuid'], j['target_server_uuid'])]
            assert most_at_once(on_cn) <= MAX_JOBS_PER_CN, (cn.hostname, on_cn)

        # The evacuation's report: done, with the skipped VMs and the estimate's error.
        def ended():
            _, r = evacuate(migd, cn1.hostname)
            return r if r['state'] != 'running' else None
        done = wait_for(ended, 'the evacuation to end', timeout=60)
        assert done['uuid'] == ev['uuid'] and done['state'] == 'done', done
        assert done['progress']['done'] == len(PLACED) and done['progress']['failed'] == 0
        assert isinstance(done['estimate_error'], float)
        print('evacuation took %d s, estimated %d s (error %+.0f%%)'
              % (done['took_s'], done['estimate_s'], 100 * done['estimate_error']))
        # And run once more after it ended: nothing new to move, its report again.
        rc3, last = evacuate(migd, cn1.hostname)
        assert rc3 == 1 and last['uuid'] == ev['uuid']
        assert len(migd.jobs()) == len(jobs)

        metrics = migd_metrics(migd)
        assert 'migd_evacuations{state="done"} 1' in metrics, metrics
    finally:
        lab.api_patch('vms', big['uuid'], {'ram': ram_before})


def migd_metrics(migd):
    return unix_get(migd.socket, '/metrics').decode()


def test_bad_evacuations_change_nothing(lab, migd):
    before = migd.jobs()
    for args, rc in ((['nosuchcn'], 1), (['--max-parallel', '0', 'cn2'], 2),
                     (['--to'], 2), ([], 2)):
        p = migd.ctl('evacuate', *args)
        assert p.returncode == rc, (args, p.returncode, p.stderr)
        assert p.stderr.strip() and p.stderr.count('\n') == 1, (args, p.stderr)
    assert migd.jobs() == before
    assert not reserved(lab, lab.cns[1])
