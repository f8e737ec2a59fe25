"""migctl doctor: what migrations left behind, found on the lab's CNs by
the real binaries: nothing on a clean lab; then leftovers planted by hand
(a migd snapshot of a job migd does not know, a direct transfer's key line
and key directory of an ended job, VMAPI naming the wrong CN) and the
source copy a switched job keeps, each on one line with its fix.  Exit 0
when nothing needs a human, 1 when something does; read-only without
--fix, which fixes what cannot lose data and leaves the rest (a held
snapshot, any zone) for a human.
"""
import json
import uuid as uuidlib

import conftest
import helpers
from helpers import home, other, settle, submit, vm_and_cns


migd = conftest.migd_fixture()


def doctor(migd, *args):
    p = migd.ctl('doctor', '-j', *args)
    assert p.returncode in (0, 1), p
    return p.returncode, json.loads(p.stdout)


def test_a_clean_lab_has_nothing_to_report(lab, migd):
    rc, rep = doctor(migd)
    assert sorted(rep['checked']) == sorted(cn.hostname for cn in lab.cns), rep
    assert rep['findings'] == [] and rc == 0, rep
    print('doctor of %d CNs, %d VMs: %d ms' % (len(rep['checked']), rep['vms'], rep['took_ms']))
    p = migd.ctl('doctor')
    assert p.returncode == 0 and 'nothing found' in p.stdout, p


def test_planted_leftovers_are_found_with_their_fix(lab, migd):
    web = lab.vms['web0']
    src = home(lab, web['uuid'])
    ghost = str(uuidlib.uuid4())  # a job migd never had
    snap = 'zones/%s@migd-%s-1' % (web['uuid'], ghost)
    lab.cn_run(src, 'zfs snapshot %s' % snap)
    cn3 = lab.cns[2]
    lab.cn_run(cn3, "mkdir -p -m 700 ~/.ssh && printf '%%s\\n' 'ssh-ed25519 AAAA migd-job-%s' "
               ">> ~/.ssh/authorized_keys && mkdir -p -m 700 /var/tmp/migd-%s" % (ghost, ghost))
    try:
        rc, rep = doctor(migd)
        assert rc == 1, rep
        by_kind = {}
        for f in rep['findings']:
            by_kind.setdefault(f['kind'], []).append(f)
        s = by_kind['snapshot'][0]
        assert s['cn'] == src.hostname and s['name'] == snap and s['severity'] == 'warning', s
        assert 'migd does not know' in s['what'] and s['fix'].startswith('zfs destroy %s' % snap)
        k = by_kind['authorized_key'][0]
        assert k['cn'] == cn3.hostname and ghost in k['fix'], k
        d = by_kind['key_dir'][0]
        assert d['fix'] == 'rm -rf /var/tmp/migd-%s (on %s)' % (ghost, cn3.hostname), d
        # Only the CN asked for.
        rc, rep = doctor(migd, cn3.hostname)
        assert rep['checked'] == [cn3.hostname] and {f['cn'] for f in rep['findings']} == \
            {cn3.hostname}, rep
        # The text form: one line each, then its fix.
        p = migd.ctl('doctor', src.hostname)
        assert p.returncode == 1 and ('warning   %s' % src.hostname) in p.stdout, p
        assert '          fix: zfs destroy %s' % snap in p.stdout, p.stdout
        # Read-only: all of it is still there.
        assert snap in lab.vm_placement(web['uuid'])[src.n]['snapshots']
    finally:
        lab.cn_run(src, 'zfs destroy %s' % snap)
        lab.cn_run(cn3, "grep -v ' migd-job-%s$' ~/.ssh/authorized_keys > ~/.ssh/ak.tmp; "
                   "mv ~/.ssh/ak.tmp ~/.ssh/authorized_keys; rm -rf /var/tmp/migd-%s"
                   % (ghost, ghost))
    rc, rep = doctor(migd)
    assert rc == 0 and rep['findings'] == [], rep


def test_a_kept_copy_is_info_and_a_wrong_vmapi_is_a_warning(lab, migd):
    v, src, dst = vm_and_cns(lab, 'lx0')
    job = submit(migd, v['uuid'], dst.hostname)
    assert helpers.ended(migd, job)['state'] == 'switched'
    rc, rep = doctor(migd)
    kept = [f for f in rep['findings'] if f['kind'] == 'zone']
    assert len(kept) == 1 and kept[0]['severity'] == 'info' and kept[0]['job'] == job, rep
    assert kept[0]['cn'] == src.hostname and 'migctl cleanup %s' % job in kept[0]['fix'], kept
    assert rc == 0, 'a kept copy needs no human yet'
    settle(migd, job)
    # VMAPI names the wrong CN for a VM that runs: its agent must report it again.
    before = lab.api('vmapi', 'GET', '/vms/%s' % v['uuid'])[1]['server_uuid']
    wrong = other(lab, dst)
    lab.api_patch('vms', v['uuid'], {'server_uuid': wrong.uuid})
    try:
        rc, rep = doctor(migd)
        f = [x for x in rep['findings'] if x['kind'] == 'vmapi_server']
        assert rc == 1 and len(f) == 1 and f[0]['cn'] == dst.hostname, rep
        assert f[0]['fix'] == 'svcadm restart vm-agent (on %s): its agent reports it' \
            % dst.hostname, f
        # --fix restarts that CN's agent, which puts VMAPI right.
        rc, rep = doctor(migd, '--fix', dst.hostname)
        assert rc == 0 and rep['fixed'] == 1, rep
        helpers.wait_for(lambda: lab.api('vmapi', 'GET', '/vms/%s' % v['uuid'])[1]
                         ['server_uuid'] == dst.uuid, 'VMAPI to name %s again' % dst.hostname, 60)
    finally:
        lab.api_patch('vms', v['uuid'], {'server_uuid': before})


def test_an_ip_an_ended_job_left_reserved(lab, migd):
    """A job found the VM's IP unreserved and reserved it for the move; if
    NAPI still has it reserved once the job ended, the doctor names the IP
    and the job, and --fix gives it back (PUT reserved=false)."""
    v = lab.vms['lx0']
    jobs = [j for j in migd.jobs() if j['vm_uuid'] == v['uuid'] and j['state'] == 'succeeded']
    assert jobs, 'test_a_kept_copy_is_info_and_a_wrong_vmapi_is_a_warning moved lx0 first'
    job = jobs[0]['uuid']
    nic = lab.api('napi', 'GET', '/nics?belongs_to_uuid=%s' % v['uuid'])[1][0]
    path = '/networks/%s/ips/%s' % (nic['network_uuid'], nic['ip'])
    assert lab.api('napi', 'GET', path)[1]['reserved'] is False
    lab.api('napi', 'PUT', path, {'reserved': True})
    try:
        rc, rep = doctor(migd)
        f = [x for x in rep['findings'] if x['kind'] == 'ip_reserved']
        assert rc == 1 and len(f) == 1 and rep['ips'] >= 1, rep
        assert f[0]['job'] == job and f[0]['vm_uuid'] == v['uuid'] and f[0]['fixable'], f
        assert f[0]['name'] == '%s (network %s)' % (nic['ip'], nic['network_uuid']), f
        rc, rep = doctor(migd, '--fix')
        assert rc == 0 and rep['fixed'] == 1, rep
        assert lab.api('napi', 'GET', path)[1]['reserved'] is False
        rc, rep = doctor(migd)
        assert rc == 0 and rep['findings'] == [], rep
    finally:
        lab.api('napi', 'PUT', path, {'reserved': False})


def test_a_jobs_held_snapshot_is_found_once_the_job_ended(lab, migd):
    """A backup tool holds a job's first snapshot: the job ends with it as a
    leftover.  While the job is switched the doctor leaves it to the job;
    once the job ended, it reports the snapshot as held, naming the job, and
    --fix leaves it; released, nothing is left to find."""
    v, src, dst = vm_and_cns(lab, 'stopped0')
    lab.cn_fault(src, 'zfs', args=r'^send -R', exit=None, delay_s=3)  # time to take the hold
    job = submit(migd, v['uuid'], dst.hostname)
    first = 'zones/%s@migd-%s-1' % (v['uuid'], job)
    helpers.wait_for(lambda: lab.cn_run(src, 'zfs list -H -o name -t snapshot %s' % first,
                                        check=False).returncode == 0, first, 120, step=0.05)
    lab.zfs_hold(src, 'backup', first)
    try:
        assert helpers.ended(migd, job)['state'] == 'switched'
        rc, rep = doctor(migd)
        assert [f for f in rep['findings'] if 'snapshot' in f['kind']] == [], rep
        p = migd.ctl('cleanup', job)
        assert p.returncode == 0, p.stderr
        j = helpers.ended(migd, job)
        assert j['state'] == 'succeeded' and j['leftovers'], j
        rc, rep = doctor(migd)
        # The hold also keeps the source dataset (a leftover the job retries), and with it the
        # job's final snapshot: a plain one, which --fix may destroy.
        hs = [f for f in rep['findings'] if f['kind'] == 'held_snapshot']
        assert len(hs) == 1 and all(f['job'] == job for f in rep['findings']
                                    if f['kind'] == 'snapshot'), (rep, j['leftovers'])
        [h] = hs
        assert (h['kind'], h['cn'], h['name'], h['job']) == \
            ('held_snapshot', src.hostname, first, job), h
        assert 'ended succeeded' in h['what'] and rc == 1, h
        rc, rep = doctor(migd, '--fix', src.hostname)
        assert rep['left'] >= 1 and not [f for f in rep['findings'] if
                                         f['kind'] == 'held_snapshot' and f.get('fixed')], rep
        assert first in lab.vm_placement(v['uuid'])[src.n]['snapshots']
    finally:
        lab.cn_faults_clear(src)
        lab.zfs_release(src, 'backup', first)
    rc, rep = doctor(migd, '--fix', src.hostname)
    rc, rep = doctor(migd)
    assert rc == 0 and rep['findings'] == [], rep


def test_a_cn_without_a_usable_admin_ip_is_reported_not_visited(lab, migd):
    """Its visit ends before it starts; when it is the last CN's, the doctor's
    run once went on reading itself after its answer freed it (a crash)."""
    cn = lab.cns[-1]
    sysinfo = lab.api('cnapi', 'GET', '/servers/%s' % cn.uuid)[1]['sysinfo']
    lab.api_patch('servers', cn.uuid, {'sysinfo': dict(sysinfo, **{'Admin IP': 'no;ip'})})
    try:
        for args in ((cn.hostname,), ()):
            rc, rep = doctor(migd, *args)
            mine = [f for f in rep['findings'] if f['cn'] == cn.hostname]
            assert rc == 1 and [f['kind'] for f in mine] == ['unreachable'], rep
            assert 'no usable admin IP' in mine[0]['what'] and mine[0]['severity'] == 'warning', mine
    finally:
        lab.api_patch('servers', cn.uuid, {'sysinfo': sysinfo})
    rc, rep = doctor(migd)
    assert rc == 0 and rep['findings'] == [], rep


def test_bad_names_change_nothing(lab, migd):
    p = migd.ctl('doctor', 'no-such-cn')
    assert p.returncode == 1 and 'ServerNotFound' in p.stderr, p
    assert p.stderr.count('\n') == 1, p.stderr
    p = migd.ctl('doctor', "cn1;reboot")
    assert p.returncode == 2 and 'is not a CN' in p.stderr, p
    p = migd.ctl('doctor', '--fix', 'no-such-cn')
    assert p.returncode == 1 and 'ServerNotFound' in p.stderr, p


def test_fix_removes_what_cannot_lose_data_and_leaves_the_rest(lab, migd):
    web = lab.vms['web0']
    src = home(lab, web['uuid'])
    ghost = str(uuidlib.uuid4())
    snap = 'zones/%s@migd-%s-1' % (web['uuid'], ghost)
    held = 'zones/%s@migd-%s-2' % (web['uuid'], ghost)
    lab.cn_run(src, 'zfs snapshot %s && zfs snapshot %s' % (snap, held))
    lab.zfs_hold(src, 'backup', held)
    cn3 = lab.cns[2]
    lab.cn_run(cn3, "mkdir -p -m 700 ~/.ssh && printf '%%s\\n' 'ssh-ed25519 AAAA migd-job-%s' "
               ">> ~/.ssh/authorized_keys && mkdir -p -m 700 /var/tmp/migd-%s" % (ghost, ghost))
    keys_before = lab.cn_run(cn3, 'cat ~/.ssh/authorized_keys').stdout
    try:
        p = migd.ctl('doctor', '--fix')
        assert p.returncode == 1, p  # the held snapshot is left
        assert '--fix: 3 fixed; 1 left for a human' in p.stdout, p.stdout
        # A hold is another tool's promise: reported with how to see its tags, never released.
        rc, rep = doctor(migd)
        h = [f for f in rep['findings'] if f['kind'] == 'held_snapshot']
        assert rc == 1 and len(h) == 1 and h[0]['name'] == held and not h[0]['fixable'], rep
        assert h[0]['fix'].startswith('zfs holds -H %s (on %s)' % (held, src.hostname)), h
        assert '1 user hold(s)' in h[0]['what'], h
        snaps = lab.vm_placement(web['uuid'])[src.n]['snapshots']
        assert snap not in snaps and held in snaps, snaps
        # Only the job's line went; every other line of the file is as it was.
        after = lab.cn_run(cn3, 'cat ~/.ssh/authorized_keys').stdout
        assert after == ''.join(l + '\n' for l in keys_before.splitlines()
                                if not l.endswith('migd-job-' + ghost)), after
        assert lab.cn_run(cn3, 'test -e /var/tmp/migd-%s' % ghost, check=False).returncode != 0
        lab.cn_run(src, 'zfs release backup %s' % held)
        rc, rep = doctor(migd, '--fix')
        assert rc == 0 and rep['fixed'] == 1 and rep['left'] == 0, rep
        rc, rep = doctor(migd)
        assert rc == 0 and rep['findings'] == [], rep
    finally:
        lab.cn_run(src, 'zfs release backup %s; zfs destroy %s; zfs destroy %s'
                   % (held, held, snap), check=False)
