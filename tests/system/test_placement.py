"""Placement keeps promises (placement.spread_tag, CNs being drained),
through the real binaries against a 4-CN lab (cn3 runs an older platform,
so the targets of cn1's VMs are cn2 and cn4).

web0 and stopped0 on cn1 and kvm0 on cn2 are tagged role=web by one owner:
a plan never puts two of them on one CN, and names the conflict when it
must leave one behind.  While an evacuation drains cn2, no plan (of an
evacuation, or of a migration without a target) puts a VM on cn2; once it
ends, cn2 is a target again.
"""
import json

import conftest
import helpers

wait_for = helpers.waiter(600, step=0.5)
TAGGED = ('web0', 'stopped0', 'kvm0')


lab = conftest.four_cn_lab
migd = conftest.migd_fixture(placement={'spread_tag': 'role'})


def ctl_json(migd, *args):
    p = migd.ctl(*args)
    assert p.returncode in (0, 1), '%s: %d %s' % (args, p.returncode, p.stderr)
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None


def tag(lab, alias, role):
    vm = lab.api('vmapi', 'GET', '/vms/%s' % lab.vms[alias]['uuid'])[1]
    tags = dict(vm.get('tags') or {})
    if role is None:
        tags.pop('role', None)
    else:
        tags['role'] = role
    lab.api_patch('vms', vm['uuid'], {'tags': tags})


def test_spread_tag_keeps_a_group_apart_and_names_the_conflict(lab, migd):
    cn1, cn2, cn4 = lab.cns[0], lab.cns[1], lab.cns[3]
    to = '%s,%s' % (cn2.hostname, cn4.hostname)
    # Untagged, both web VMs go where most RAM is free: one CN.
    _, plain = ctl_json(migd, 'evacuate', '-n', '-j', '--to', to, cn1.hostname)
    plain = {e['alias']: e for e in plain['plan']}
    assert plain['web0']['target_uuid'] == plain['stopped0']['target_uuid'] is not None, plain

    for alias in TAGGED:
        tag(lab, alias, 'web')
    try:
        _, ev = ctl_json(migd, 'evacuate', '-n', '-j', '--to', to, cn1.hostname)
        plan = {e['alias']: e for e in ev['plan']}
        web = [plan['web0'], plan['stopped0']]
        placed = [e for e in web if e['target_uuid'] is not None]
        stays = [e for e in web if e['target_uuid'] is None]
        # cn2 runs kvm0 (role=web): the first goes to cn4, the second has nowhere apart.
        assert [e['target_uuid'] for e in placed] == [cn4.uuid], web
        assert 'not beside another role=web of its owner: %s (kvm0)' % cn2.hostname \
            in placed[0]['why'], placed[0]
        assert len(stays) == 1 and stays[0]['rule'] == 'SpreadConflict', web
        assert '%s (kvm0)' % cn2.hostname in stays[0]['why'], stays[0]
        assert '%s (%s)' % (cn4.hostname, placed[0]['alias']) in stays[0]['why'], stays[0]
        print('\nspread: %s -> %s; %s stays: %s' % (placed[0]['alias'],
              placed[0]['target_hostname'], stays[0]['alias'], stays[0]['why']))
        # The plain text says it too, for the operator who reads it.
        p = migd.ctl('evacuate', '-n', '--to', to, cn1.hostname)
        assert 'SpreadConflict' in p.stdout or 'runs another role=web' in p.stdout, p.stdout
    finally:
        for alias in TAGGED:
            tag(lab, alias, None)


def test_no_plan_puts_a_vm_on_a_cn_being_drained(lab, migd):
    cn1, cn2, cn4 = lab.cns[0], lab.cns[1], lab.cns[3]
    # cn2 as the only target: bhyve0 goes there while nothing drains it.
    _, before = ctl_json(migd, 'evacuate', '-n', '-j', '--to', cn2.hostname, cn1.hostname)
    assert {e['alias']: e for e in before['plan']}['bhyve0']['target_uuid'] == cn2.uuid

    # Drain cn2 (not reserved in CNAPI, so only the evacuation keeps VMs off
    # it); incremental, one job at a time: it runs until aborted.
    rc, drain = ctl_json(migd, 'evacuate', '-j', '-i', '--no-reserve', '--max-parallel', '1',
                         cn2.hostname)
    assert drain['state'] == 'running', drain
    jobs = [e['job_uuid'] for e in drain['plan'] if e.get('job_uuid')]
    assert jobs, drain['plan']
    try:
        _, during = ctl_json(migd, 'evacuate', '-n', '-j', '--to', cn2.hostname, cn1.hostname)
        for e in during['plan']:
            assert e['target_uuid'] is None, e
        bhyve = {e['alias']: e for e in during['plan']}['bhyve0']
        assert bhyve['rule'] == 'TargetBeingEvacuated', bhyve
        assert 'being evacuated' in bhyve['why'], bhyve

        # A migration without a target is placed by the same rules: with cn4
        # reserved, the only other candidate is cn2, which is being drained.
        lab.api('cnapi', 'POST', '/servers/%s' % cn4.uuid, {'reserved': True})
        try:
            p = migd.ctl('migrate', '-n', lab.vms['web0']['uuid'])
            assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
            assert 'being evacuated' in p.stderr or 'TargetBeingEvacuated' in p.stderr, p.stderr
            assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        finally:
            lab.api('cnapi', 'POST', '/servers/%s' % cn4.uuid, {'reserved': False})
        p = migd.ctl('migrate', '-n', '-j', lab.vms['web0']['uuid'])
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)['plan']['target'] not in (cn2.hostname, ''), p.stdout
    finally:
        for j in jobs:
            migd.ctl('abort', j)
        for j in jobs:
            helpers.wait_state(migd, j, ('aborted', 'rolled_back', 'failed'))

    def drained_ended():
        # By its uuid: `evacuate CN` again would queue the aborted VMs anew.
        raw = helpers.unix_get(migd.socket, '/evacuations/%s' % drain['uuid'])
        r = json.loads(raw.split(b'\r\n\r\n', 1)[1])
        return r if r['state'] != 'running' else None
    wait_for(drained_ended, 'the evacuation of cn2 to end', timeout=120)
    _, after = ctl_json(migd, 'evacuate', '-n', '-j', '--to', cn2.hostname, cn1.hostname)
    bhyve = {e['alias']: e for e in after['plan']}['bhyve0']
    assert bhyve['target_uuid'] == cn2.uuid, (bhyve['rule'], bhyve['why'])
