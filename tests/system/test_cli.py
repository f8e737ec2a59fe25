"""migctl as operators and their scripts meet it (issue 9), through the real
binaries against the lab: long options matched whole and refused by their
own name; jobs named by a prefix of their UUID or by their VM, ambiguity
listing the candidates; list's input checked (exit 2 naming the valid
fields) and its output fit for scripts (-j one object per line honouring -o,
-p) and for an 80-column terminal; watch on a pipe (timestamped, a few
lines) and on a terminal (one line redrawn, Ctrl-C leaves the job running);
progress that tells the truth; every string from the API escaped; log
levels.
"""
import functools
import json
import os
import re
import shlex
import sqlite3
import subprocess
import threading
import time
import uuid as uuidlib

import pytest

import conftest
import helpers
from helpers import (UUID, ended, fail_receives, fill, home, other, settle, state_of, submit,
                     vm_and_cns, wait_for)
from migd_daemon import Migd

STAMP = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ')
MIGRATE_USAGE = ('usage: migctl migrate [-i | -a] [-n] [-D] [-w] [-j] [--cleanup-source] '
                 '[--transfer relay|direct] [--limit MBITS] [--min-up DURATION] '
                 '[--cleanup-after DURATION] [--window HH:MM-HH:MM[,TZ]] VM [TARGET_CN]')
LIST_USAGE = 'usage: migctl list [-a] [-l] [-H] [-p] [-o FIELDS] [-s SORT] [-j] [KEY=VALUE ...]'
FIELDS = ('id, uuid, vm_uuid, vm_alias, brand, state, phase, mode, aborting, paused, activity, progress, '
          'progress.bytes_sent, progress.bytes_total, progress.rate_bytes_s, progress.eta_s, '
          'progress.increments, source, target, source_hostname, target_hostname, '
          'source_server_uuid, target_server_uuid, transfer, limit_mbps, cleanup_source, '
          'vm_was_running, downtime_ms, rollback_downtime_ms, created, started, finished, '
          'error.code, error.message, error.phase, leftovers, cleanup_at, health.state')


# A long interval keeps an incremental job waiting for finish after its first round.
migd = conftest.migd_fixture(incremental={'interval_s': 3600})

# ---- helpers -------------------------------------------------------------

wait_state = functools.partial(helpers.wait_state, timeout=300)


def abort_and_wait(migd, job_uuid):
    p = migd.ctl('abort', job_uuid)
    assert p.returncode == 0, p.stderr
    assert wait_state(migd, job_uuid, ('aborted', 'failed'))['state'] == 'aborted'


def ctl_bytes(migd, *args):
    """migctl with stdout and stderr as bytes, exactly as a terminal would get them."""
    env = dict(os.environ, MIGD_SOCKET=migd.socket)
    return subprocess.run([os.path.join(migd.build_dir, 'migctl')] + [str(a) for a in args],
                          env=env, capture_output=True, timeout=600, stdin=subprocess.DEVNULL)


def unfill(lab, vm_uuid):
    lab.cn_run(home(lab, vm_uuid), 'rm -f /zones/%s/root/bulk.bin' % vm_uuid)


def slow_job(lab, migd, vm_uuid, mb=24, bps=1 << 20):
    """A full job of vm_uuid that sends mb MiB at about bps: (job uuid, source CN, target CN)."""
    src = home(lab, vm_uuid)
    dst = other(lab, src)
    fill(lab, src, vm_uuid, mb)
    lab.cn_throttle(src, 'zfs', args=r'^send', bytes_per_s=bps)
    return submit(migd, vm_uuid, dst.hostname), src, dst


# ---- long options --------------------------------------------------------

def test_mistyped_long_option_is_usage_and_creates_no_job(lab, migd):
    v = lab.vms['web0']
    before = migd.jobs()
    for typo, near in (('--cleanup', 'cleanup-source'), ('--cleanup-sourc', 'cleanup-source'),
                       ('--trans', 'transfer'), ('--lim', 'limit')):
        p = migd.ctl('migrate', typo, v['uuid'], 'cn2')
        assert (p.returncode, p.stdout) == (2, ''), p
        assert p.stderr == 'migctl: migrate: unknown option %s (did you mean --%s?); %s\n' % (
            typo, near, MIGRATE_USAGE), p.stderr
    p = migd.ctl('migrate', '--bogus', v['uuid'], 'cn2')
    assert (p.returncode, p.stderr) == (
        2, 'migctl: migrate: unknown option --bogus; %s\n' % MIGRATE_USAGE), p
    assert migd.jobs() == before


def test_flag_given_a_value_is_refused_by_its_name(lab, migd):
    v = lab.vms['web0']
    before = migd.jobs()
    p = migd.ctl('migrate', '--cleanup-source=yes', v['uuid'], 'cn2')
    assert (p.returncode, p.stdout) == (2, ''), p
    assert p.stderr == ('migctl: migrate: option --cleanup-source takes no value; %s\n'
                        % MIGRATE_USAGE), p.stderr
    for args, what in ((['--transfer=sideways'], '--transfer is relay or direct, not "sideways"'),
                       (['--limit', '-1'], '--limit takes Mbit/s from 0 (no cap) to 1000000, '
                                           'not "-1"'),
                       (['--limit'], 'option --limit needs an argument')):
        p = migd.ctl('migrate', v['uuid'], 'cn2', *args)
        assert p.returncode == 2 and p.stderr == 'migctl: migrate: %s; %s\n' % (what, MIGRATE_USAGE), p
    assert migd.jobs() == before


def test_dry_run_plan_shows_what_the_flags_do_to_data(lab, migd):
    v, _, dst = vm_and_cns(lab, 'lx0')
    before = migd.jobs()
    p = migd.ctl('migrate', '-n', v['uuid'], dst.hostname)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == 'dry run: lx0 can be migrated; nothing was changed'
    assert '  mode      full: one send while the VM runs, then the switch' in lines
    assert '  transfer  relay, no cap' in lines
    assert ('  source    kept after the switch until "migctl cleanup" ("migctl rollback" '
            'returns to it)') in lines
    data = [l for l in lines if l.startswith('  data ')]
    assert len(data) == 1 and re.match(r'^  data      [\d.]+ (KiB|MiB|GiB), about \d+:\d\d$',
                                       data[0]), data
    assert not any(l.lstrip().startswith('{') for l in lines), p.stdout  # text, not JSON

    p = migd.ctl('migrate', '-n', '--cleanup-source', '--limit=16', '--transfer', 'relay',
                 v['uuid'], dst.hostname)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert '  transfer  relay, at most 16 Mbit/s' in lines, p.stdout
    assert '  source    DELETED once the VM runs on the target (--cleanup-source)' in lines
    assert re.search(r'^  data      .* at the limit of 16 Mbit/s$', p.stdout, re.M), p.stdout
    # -j: the answer as JSON, the asked flags in it.
    p = migd.ctl('migrate', '-n', '-j', '-i', '--cleanup-source', '--limit', '16', v['uuid'],
                 dst.hostname)
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)['plan']
    assert (plan['mode'], plan['cleanup_source'], plan['limit_mbps']) == ('incremental', True, 16)
    assert migd.jobs() == before  # dry runs create no job


# ---- naming jobs ---------------------------------------------------------

def test_finish_show_and_cleanup_by_alias_prefix_and_vm_uuid(lab, migd):
    v, _, dst = vm_and_cns(lab, 'stopped0')
    job = submit(migd, '-i', v['uuid'], dst.hostname)
    wait_for(lambda: state_of(migd, job) == 'waiting', 'the first round')
    for name in (job[:8], job[:13], v['uuid'], 'stopped0', job):
        p = migd.ctl('show', name)
        assert p.returncode == 0, (name, p.stderr)
        assert p.stdout.splitlines()[0] == 'job         %s' % job, p.stdout
        p = migd.ctl('show', '-j', name)
        assert json.loads(p.stdout)['uuid'] == job
    # list: short ids by default, full ones with -l or -o uuid.
    p = migd.ctl('list', '-H', 'vm_uuid=%s' % v['uuid'])
    assert p.stdout.split()[0] == job[:8], p.stdout
    p = migd.ctl('list', '-l', '-H', 'vm_uuid=%s' % v['uuid'])
    assert p.stdout.split()[0] == job, p.stdout
    p = migd.ctl('list', '-H', '-o', 'uuid', 'vm_uuid=%s' % v['uuid'])
    assert p.stdout == job + '\n', p.stdout

    p = migd.ctl('finish', 'stopped0')
    assert p.returncode == 0, p.stderr
    assert job in p.stdout, p.stdout
    assert ended(migd, job)['state'] == 'switched'
    p = migd.ctl('cleanup', job[:8])
    assert p.returncode == 0, p.stderr
    assert ended(migd, job)['state'] == 'succeeded'
    # The VM has no unfinished job now: naming it lists its jobs.
    p = migd.ctl('show', 'stopped0')
    assert (p.returncode, p.stdout) == (2, ''), p
    assert p.stderr == ('migctl: show: VM stopped0 has no unfinished job; its jobs: %s '
                        '(VM stopped0, succeeded); name one by its UUID\n' % job), p.stderr
    p = migd.ctl('show', job[:8])
    assert p.returncode == 0 and 'state       succeeded (phase cleanup)' in p.stdout, p


def test_abort_by_vm_uuid(lab, migd):
    v, _, dst = vm_and_cns(lab, 'stopped0')
    job = submit(migd, '-i', v['uuid'], dst.hostname)
    wait_for(lambda: state_of(migd, job) == 'waiting', 'the first round')
    p = migd.ctl('abort', v['uuid'])
    assert p.returncode == 0, p.stderr
    assert job in p.stdout, p.stdout
    assert wait_state(migd, job, ('aborted', 'failed'))['state'] == 'aborted'


def test_nothing_named_and_too_short(lab, migd):
    p = migd.ctl('show', 'no-such-vm')
    assert (p.returncode, p.stdout) == (2, ''), p
    assert p.stderr == ('migctl: show: no job matches "no-such-vm": JOB is a job UUID, 8 or more '
                        'of its first characters, or a VM (UUID or alias) with one unfinished '
                        'job; "migctl list -a" lists the jobs\n'), p.stderr
    p = migd.ctl('abort', 'd08cf5')
    assert p.returncode == 2 and p.stderr == (
        'migctl: abort: "d08cf5" is too short to name a job: give 8 or more characters of its '
        'UUID\n'), p
    p = migd.ctl('abort', str(uuidlib.uuid4()))
    assert p.returncode == 2 and 'no job matches' in p.stderr, p


def test_alias_shared_by_two_vms_is_ambiguous(lab, migd):
    a, b = lab.vms['web0'], lab.vms['lx0']
    jobs = []
    try:
        for v in (a, b):
            lab.api_patch('vms', v['uuid'], {'alias': 'twin'})
        for v in (a, b):
            jobs.append(submit(migd, '-i', v['uuid'], other(lab, home(lab, v['uuid'])).hostname))
        for j in jobs:
            wait_for(lambda: state_of(migd, j) == 'waiting', 'the first round')
        for cmd in ('show', 'abort', 'finish', 'watch', 'log'):
            p = migd.ctl(cmd, 'twin')
            assert (p.returncode, p.stdout) == (2, ''), p
            line = p.stderr.splitlines()
            assert len(line) == 1, p.stderr
            assert line[0].startswith('migctl: %s: "twin" is ambiguous: it names 2 jobs: ' % cmd)
            assert line[0].endswith('; name one by its UUID')
            for j in jobs:
                assert '%s (VM twin, waiting)' % j in line[0], line
        assert [state_of(migd, j) for j in jobs] == ['waiting', 'waiting']  # nothing was done
    finally:
        for j in jobs:
            abort_and_wait(migd, j)
        for v in (a, b):
            lab.api_patch('vms', v['uuid'], {'alias': v['alias']})


def insert_job(db, uuid, alias, state, **extra):
    """A job row as migd stores it (only finished or switched: nothing to resume)."""
    now = int(time.time() * 1000)
    vm = extra.pop('vm_uuid', str(uuidlib.uuid4()))
    rec = {'uuid': uuid, 'vm_uuid': vm, 'vm_alias': alias, 'state': state, 'phase': 'cleanup',
           'mode': 'full', 'brand': 'joyent', 'transfer': 'relay', 'created_ms': now,
           'source_hostname': 'cn1', 'target_hostname': 'cn2',
           'progress': {'bytes_sent': 97, 'bytes_total': 100, 'rate_bytes_s': 0,
                        'eta_s': 12, 'increments': 0}}
    rec.update(extra)
    db.execute('INSERT INTO jobs (uuid, vm_uuid, state, phase, mode, created, updated, record) '
               'VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
               (uuid, vm, state, rec['phase'], 'full', now, now, json.dumps(rec)))


@pytest.fixture
def stored(lab, build_dir, tmp_path):
    """A migd of its own whose database holds jobs sharing a prefix, and jobs with long names."""
    d = Migd(lab, build_dir, tmp_path / 'stored').start()
    assert d.stop() == 0
    db = sqlite3.connect(d.config['db'])
    insert_job(db, 'd08cf549-1111-4000-8000-000000000001', 'alpha', 'succeeded')
    insert_job(db, 'd08cf549-2222-4000-8000-000000000002', 'beta', 'failed', phase='sync',
               error={'code': 'SendFailed', 'phase': 'sync',
                      'message': 'zfs send on cn1 exited 1: cannot send: broken pipe'})
    insert_job(db, 'bbbbbbbb-3333-4000-8000-000000000003',
               'a-very-long-alias-for-a-vm-that-runs-in-production', 'switched',
               source_hostname='cn-ams3-rack12-unit14', target_hostname='cn-ams3-rack19-unit02')
    db.commit()
    db.close()
    d.start()
    yield d
    assert d.stop() == 0


def test_ambiguous_prefix_lists_the_candidates(stored):
    for cmd in ('show', 'abort', 'cleanup', 'rollback', 'log'):
        p = stored.ctl(cmd, 'd08cf549')
        assert (p.returncode, p.stdout) == (2, ''), p
        line = p.stderr.rstrip('\n')
        assert '\n' not in line, p.stderr
        assert line.startswith('migctl: %s: "d08cf549" is ambiguous: it names 2 jobs: ' % cmd), line
        assert 'd08cf549-1111-4000-8000-000000000001 (VM alpha, succeeded)' in line
        assert 'd08cf549-2222-4000-8000-000000000002 (VM beta, failed)' in line
    p = stored.ctl('show', 'd08cf549-2')
    assert p.returncode == 0 and p.stdout.startswith(
        'job         d08cf549-2222-4000-8000-000000000002\n'), p
    # The short ids of list are the first 8 characters, whatever they share.
    p = stored.ctl('list', '-a', '-H', '-o', 'id')
    assert sorted(p.stdout.split()) == ['bbbbbbbb', 'd08cf549', 'd08cf549'], p.stdout


def test_default_list_fits_80_columns(stored, migd):
    for d in (stored, migd):
        p = d.ctl('list', '-a')
        assert p.returncode == 0, p.stderr
        assert p.stdout.splitlines()[0].split() == ['ID', 'VM_ALIAS', 'STATE', 'PHASE', 'PROGRESS',
                                                    'SOURCE', 'TARGET'], p.stdout
        for line in p.stdout.splitlines():
            assert len(line) <= 80, line
    p = stored.ctl('list', '-a', 'state=switched')
    row = p.stdout.splitlines()[1].split()
    assert row[0] == 'bbbbbbbb' and row[1].endswith('...') and row[5].endswith('...'), p.stdout
    # -l and -o show values whole.
    p = stored.ctl('list', '-l', '-H')
    assert p.stdout.split()[:2] == ['bbbbbbbb-3333-4000-8000-000000000003',
                                    'a-very-long-alias-for-a-vm-that-runs-in-production'], p.stdout
    p = stored.ctl('list', '-H', '-o', 'source,target')
    assert p.stdout.split() == ['cn-ams3-rack12-unit14', 'cn-ams3-rack19-unit02'], p.stdout


def test_list_a_follows_the_pages(lab, build_dir, tmp_path):
    """migd pages GET /jobs (1000 a page): list -a, -j and naming a job see every job."""
    d = Migd(lab, build_dir, tmp_path / 'pages').start()
    assert d.stop() == 0
    db = sqlite3.connect(d.config['db'])
    made = ['%08x-0000-4000-8000-%012x' % (n, n) for n in range(2500)]
    for u in made:
        insert_job(db, u, 'vm%d' % int(u[:8], 16), 'succeeded')
    db.commit()
    db.close()
    d.start()
    try:
        p = d.ctl('list', '-a', '-H', '-o', 'uuid')
        assert p.returncode == 0, p.stderr
        assert sorted(p.stdout.split()) == made
        p = d.ctl('list', '-a', '-j', '-o', 'uuid')
        assert sorted(json.loads(l)['uuid'] for l in p.stdout.splitlines()) == made
        p = d.ctl('list', 'state=succeeded', '-H', '-o', 'id')
        assert len(p.stdout.split()) == 2500
        p = d.ctl('show', made[-1][:8])  # on the last page
        assert p.returncode == 0 and p.stdout.startswith('job         %s\n' % made[-1]), p
    finally:
        assert d.stop() == 0


# ---- list's input and output ---------------------------------------------

def test_list_refuses_unknown_fields_sort_keys_filters_and_states(migd):
    cases = [
        (['-o', 'id,bogus'], 'unknown field "bogus" in -o; valid fields: %s' % FIELDS),
        (['-s', 'bogus'], 'unknown sort key "bogus" in -s; valid sort keys: %s (\'-\' before a '
                          'key: descending)' % FIELDS),
        (['-s', '-created,-bogus'], 'unknown sort key "bogus" in -s; valid sort keys: %s (\'-\' '
                                    'before a key: descending)' % FIELDS),
        (['foo=bar'], 'unknown filter key "foo"; valid keys: %s' % FIELDS),
        (['-a', 'state=bogus'], 'state "bogus" is not a value it shows; valid: queued, running, '
                                'waiting, switched, succeeded, failed, aborted, rolled_back'),
        (['mode=fast'], 'mode "fast" is not a value it shows; valid: full, incremental, auto'),
        (['state'], '"state" is not a KEY=VALUE filter'),
    ]
    for args, what in cases:
        p = migd.ctl('list', *args)
        assert (p.returncode, p.stdout) == (2, ''), (args, p)
        assert p.stderr == 'migctl: list: %s; %s\n' % (what, LIST_USAGE), (args, p.stderr)


@pytest.fixture(scope='module')
def finished(lab, migd):
    """A succeeded job and an aborted one, for the tests that list finished jobs."""
    v = lab.vms['kvm0']
    done = submit(migd, v['uuid'], other(lab, home(lab, v['uuid'])).hostname)
    assert ended(migd, done)['state'] == 'switched'
    settle(migd, done)
    w = lab.vms['stopped0']
    gone = submit(migd, '-i', w['uuid'], other(lab, home(lab, w['uuid'])).hostname)
    wait_for(lambda: state_of(migd, gone) == 'waiting', 'the first round')
    abort_and_wait(migd, gone)
    return {'succeeded': done, 'aborted': gone}


def test_state_filters_with_and_without_a(migd, finished):
    for args in ([], ['-a']):
        for state, job in finished.items():
            p = migd.ctl('list', '-H', '-o', 'uuid,state', *(args + ['state=%s' % state]))
            assert p.returncode == 0, p.stderr
            rows = [l.split() for l in p.stdout.splitlines()]
            assert [job, state] in rows, (args, state, p.stdout)
            assert all(r[1] == state for r in rows), p.stdout
    # Without -a and without a state filter: unfinished jobs only.
    p = migd.ctl('list', '-H', '-o', 'uuid')
    assert finished['succeeded'] not in p.stdout and finished['aborted'] not in p.stdout
    p = migd.ctl('list', '-a', '-H', '-o', 'uuid')
    assert finished['succeeded'] in p.stdout and finished['aborted'] in p.stdout


def test_list_j_one_object_per_line_honouring_o(migd, finished):
    p = migd.ctl('list', '-a', '-j')
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) >= 2
    jobs = [json.loads(l) for l in lines]
    assert all(isinstance(j, dict) and UUID.fullmatch(j['uuid']) for j in jobs)
    assert {finished['succeeded'], finished['aborted']} <= {j['uuid'] for j in jobs}
    p = migd.ctl('list', '-a', '-j', '-o', 'id,state,progress.eta_s,error.code', '-s', 'created')
    assert p.returncode == 0, p.stderr
    for line in p.stdout.splitlines():
        j = json.loads(line)
        assert set(j) == {'id', 'state', 'progress', 'error'}, j
        assert set(j['progress']) == {'eta_s'} and len(j['id']) == 8, j
        assert set(j['error']) == {'code'}, j


def test_list_p_is_parsable(migd, finished):
    p = migd.ctl('list', '-a', '-p', '-o', 'uuid,state,created', 'state=succeeded')
    assert p.returncode == 0, p.stderr
    rows = [re.split(r'(?<!\\):', l) for l in p.stdout.splitlines()]
    assert all(len(r) == 3 for r in rows), p.stdout  # no header; ':' in times escaped
    mine = [r for r in rows if r[0] == finished['succeeded']]
    assert len(mine) == 1 and mine[0][1] == 'succeeded'
    assert mine[0][2].replace('\\:', ':') == migd.job(finished['succeeded'])['created']


# ---- progress, errors, logs ----------------------------------------------

def test_succeeded_job_shows_100_percent_and_no_eta(migd, finished):
    job = finished['succeeded']
    p = migd.ctl('show', job)
    assert re.search(r'^progress    [\d.]+ \S+ of [\d.]+ \S+ \(100%\), \d+ increments?$',
                     p.stdout, re.M), p.stdout
    assert 'ETA' not in p.stdout
    p = migd.ctl('list', '-a', '-H', '-o', 'id,progress', 'uuid=%s' % job)
    assert p.stdout.split() == [job[:8], '100%'], p.stdout


def test_succeeded_job_json_has_eta_null(migd, finished):
    """migd's side of issue 9 ("ETA null when done"): the JSON that show -j prints as it is."""
    shown = migd.job(finished['succeeded'])
    assert shown['state'] == 'succeeded'
    assert shown['progress']['eta_s'] is None, shown['progress']


def test_error_message_shown_once(stored):
    p = stored.ctl('show', 'd08cf549-2222')
    assert p.returncode == 0, p.stderr
    assert p.stdout.count('broken pipe') == 1, p.stdout
    assert ('error       SendFailed: zfs send on cn1 exited 1: cannot send: broken pipe '
            '(phase sync)\n') in p.stdout, p.stdout
    assert 'state       failed (phase sync)\n' in p.stdout


def test_log_filters_by_level(lab, migd):
    v, _, dst = vm_and_cns(lab, 'lx0')
    fail_receives(lab, dst, 1)
    try:
        job = submit(migd, v['uuid'], dst.hostname)
        assert ended(migd, job)['state'] == 'switched'
    finally:
        lab.cn_faults_clear(dst)
    level = re.compile(r'^\S+ (TRACE|DEBUG|INFO |WARN |ERROR|FATAL) ')
    every = migd.ctl('log', '-l', 'trace', job).stdout.splitlines()
    assert every and all(level.match(l) for l in every), every
    by = {}
    for l in every:
        by.setdefault(level.match(l).group(1).strip(), []).append(l)
    assert by.get('DEBUG') and by.get('INFO') and by.get('WARN'), sorted(by)
    p = migd.ctl('log', job)  # info and above by default
    assert p.stdout.splitlines() == [l for l in every if not re.match(r'^\S+ (TRACE|DEBUG)', l)]
    p = migd.ctl('log', '-l', 'warn', job[:8])
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [l for l in every if re.match(r'^\S+ (WARN |ERROR|FATAL)', l)]
    assert any('checksum mismatch' in l and 'retry 1 in' in l for l in p.stdout.splitlines())
    p = migd.ctl('log', '-j', '-l', 'warn', job)
    recs = [json.loads(l) for l in p.stdout.splitlines()]
    assert recs and all(r['level'] >= 40 for r in recs), recs
    p = migd.ctl('log', '-l', 'loud', job)
    assert p.returncode == 2 and p.stderr == (
        'migctl: log: unknown level "loud" for -l; valid levels: trace, debug, info, warn, '
        'error, fatal; usage: migctl log [-l LEVEL] [-j] JOB\n'), p
    settle(migd, job)


# ---- escaping ------------------------------------------------------------

def test_alias_with_escape_sequence_is_shown_escaped(lab, migd):
    v = lab.vms['web0']
    evil = '\x1b[31mred\x1b]0;owned\x07'
    shown = b'\\x1b[31mred\\x1b]0;owned\\x07'
    dst = other(lab, home(lab, v['uuid']))
    lab.api_patch('vms', v['uuid'], {'alias': evil})
    job = None
    try:
        p = ctl_bytes(migd, 'migrate', '-n', v['uuid'], dst.hostname)
        assert p.returncode == 0, p.stderr
        assert b'\x1b' not in p.stdout and b'\x07' not in p.stdout
        assert p.stdout.startswith(b'dry run: ' + shown + b' can be migrated'), p.stdout
        p = ctl_bytes(migd, 'migrate', '-i', v['uuid'], dst.hostname)
        assert p.returncode == 0 and b'\x1b' not in p.stdout and shown in p.stdout, p
        job = UUID.search(p.stdout.decode()).group(0)
        wait_for(lambda: state_of(migd, job) == 'waiting', 'the first round')
        for args in (['show', job[:8]], ['show', '-v', job], ['list'], ['list', '-p'],
                     ['list', '-o', 'vm_alias,activity'], ['log', '-l', 'trace', job],
                     ['show', evil]):
            p = ctl_bytes(migd, *args)
            assert p.returncode == 0, (args, p.stderr)
            assert b'\x1b' not in p.stdout + p.stderr, (args, p.stdout)
            assert b'\x07' not in p.stdout + p.stderr, (args, p.stdout)
        assert shown in ctl_bytes(migd, 'show', job).stdout
        # JSON escapes its own; a script gets the alias back exactly.
        p = ctl_bytes(migd, 'list', '-j', '-o', 'uuid,vm_alias')
        assert b'\x1b' not in p.stdout
        assert {'uuid': job, 'vm_alias': evil} in [json.loads(l) for l in p.stdout.splitlines()]
        assert json.loads(ctl_bytes(migd, 'show', '-j', job).stdout)['vm_alias'] == evil
    finally:
        if job is not None:
            abort_and_wait(migd, job)
        lab.api_patch('vms', v['uuid'], {'alias': v['alias']})


# ---- watch ---------------------------------------------------------------

def test_piped_watch_of_a_30s_job_prints_few_stamped_lines(lab, migd):
    v = lab.vms['lx0']
    job, src, dst = slow_job(lab, migd, v['uuid'], mb=24)
    try:
        t0 = time.monotonic()
        p = migd.ctl('watch', job)
        took = time.monotonic() - t0
    finally:
        lab.cn_faults_clear(src)
        unfill(lab, v['uuid'])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    print('%d lines in %.0f s:\n%s' % (len(lines), took, p.stdout))
    assert took > 20, took  # it was a long job
    assert 3 <= len(lines) < 20, p.stdout
    assert all(STAMP.match(l) for l in lines), p.stdout
    # At most one progress line every 10 s: lines of the same phase and round are 10 s apart.
    stamps = [(time.strptime(l[:20], '%Y-%m-%dT%H:%M:%SZ'), l[21:]) for l in lines]
    syncs = [time.mktime(t) for t, rest in stamps if rest.startswith('sync ')]
    assert all(b - a >= 9 for a, b in zip(syncs, syncs[1:])), p.stdout
    sync = [rest for _, rest in stamps if rest.startswith('sync ')]
    assert sync and re.match(r'^sync     [\d.]+ \S+ / [\d.]+ \S+  \d+%  [\d.]+ \S+/s  ETA '
                             r'(\d+:\d\d|-)  inc 0', sync[0]), p.stdout
    assert lines[-1][21:] == ('job %s switched: the VM runs on %s; "migctl cleanup %s" deletes the '
                              'source copy, "migctl rollback %s" moves it back'
                              % (job, dst.hostname, job, job)), lines[-1]
    assert not any(re.search(r'^switch .*/s', l[21:]) for l in lines), p.stdout  # no rate
    settle(migd, job)


def test_watch_of_a_waiting_job_ends_at_once(lab, migd):
    """A job waiting for finish ends the watch (exit 0), also when it already waited."""
    v = lab.vms['stopped0']
    job = submit(migd, '-i', v['uuid'], other(lab, home(lab, v['uuid'])).hostname)
    try:
        p = migd.ctl('watch', job, timeout=300)  # from running to waiting
        assert p.returncode == 0, p.stderr
        assert p.stdout.splitlines()[-1][21:] == (
            'job %s is in sync: "migctl finish %s" switches it' % (job, job)), p.stdout
        p = migd.ctl('watch', job[:8], timeout=20)  # waiting already
        assert p.returncode == 0, p.stderr
        assert len(p.stdout.splitlines()) == 2 and STAMP.match(p.stdout), p.stdout
    finally:
        abort_and_wait(migd, job)


class Terminal:
    """migctl on a pseudo-terminal (script(1)), its output collected as it comes."""

    def __init__(self, migd, *args):
        cmd = 'MIGD_SOCKET=%s exec %s %s' % (
            shlex.quote(migd.socket), shlex.quote(os.path.join(migd.build_dir, 'migctl')),
            ' '.join(shlex.quote(a) for a in args))
        self.proc = subprocess.Popen(['script', '-qfec', cmd, '/dev/null'], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.out = bytearray()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                return
            with self.lock:
                self.out += chunk

    def output(self):
        with self.lock:
            return bytes(self.out)

    def type(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def wait(self, timeout):
        rc = self.proc.wait(timeout)
        self.reader.join(5)
        return rc


def test_watch_on_a_terminal_redraws_one_line_and_ctrl_c_leaves_the_job(lab, migd):
    v = lab.vms['web0']
    job, src, dst = slow_job(lab, migd, v['uuid'], mb=24)
    term = None
    try:
        wait_for(lambda: migd.job(job)['phase'] == 'sync', 'the sync')
        term = Terminal(migd, 'watch', job[:8])
        wait_for(lambda: term.output().count(b'\r\x1b[K') >= 4, 'the line to be redrawn', 60)
        term.type(b'\x03')  # Ctrl-C, through the terminal's line discipline
        rc = term.wait(15)
        out = term.output()
        print(repr(out[-600:]))
        # Ended as SIGINT ends a program: script(1) reports 128 + 2.
        assert rc == 130, (rc, out[-600:])
        before, _, after = out.partition(b'migctl: watch interrupted')
        assert after, out
        # One line, redrawn in place: carriage returns, and one newline only once it stopped.
        assert before.count(b'\r\x1b[K') >= 4 and before.count(b'\n') == 1, before
        assert before.endswith(b'\n'), before
        assert b'^C' not in before.rsplit(b'\r\x1b[K', 1)[1], before  # the echoed ^C wiped
        assert after.startswith(b': the job goes on; "migctl watch %s" to follow it again\r\n'
                                % job.encode()), after
        # The job goes on.
        assert migd.job(job)['state'] == 'running'
    finally:
        if term is not None and term.proc.poll() is None:
            term.proc.kill()
        lab.cn_faults_clear(src)
    job_final = ended(migd, job, 600)
    unfill(lab, v['uuid'])
    assert job_final['state'] == 'switched', job_final
    settle(migd, job)
