"""Helpers shared by the system tests (tests/system) and the benches (tests/bench).

Written once so that every test waits, submits and finds a VM the same way.
Plain Python, no pytest: the bench scripts import it too (they put
tests/system on sys.path).  Where the copies this replaced differed (poll
step, default timeout, exception type), the difference is a parameter, so
each caller keeps what it had.
"""
import datetime
import re
import socket
import time

# A job/VM uuid as migctl prints it.
UUID = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')

# A job that is neither of these has come to a stop (ended, switched, waiting).
ACTIVE_STATES = ('queued', 'running')


def wait_for(pred, what, timeout=120, step=0.2, error=AssertionError):
    """Polls pred() every step seconds until it returns something true, and
    returns that; raises error('timed out waiting for ' + what) once timeout
    seconds have passed.  Benches pass error=RuntimeError (they run without
    pytest, and a failed wait there is not a test assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise error('timed out waiting for ' + what)


def waiter(timeout, step=0.2, error=AssertionError):
    """A wait_for(pred, what, timeout=..., step=...) whose defaults are these:
    a module binds its own once (e.g. `wait_for = waiter(600, step=0.5)`)."""
    def wait(pred, what, timeout=timeout, step=step):
        return wait_for(pred, what, timeout, step, error)
    return wait


def wait_job(migd, job_uuid, ok, what, timeout=300, step=0.2):
    """Polls job job_uuid (migctl show -j) until ok(job) is true; returns the
    job.  Fails as wait_for does."""
    return wait_for(lambda: (lambda j: j if ok(j) else None)(migd.job(job_uuid)),
                    what, timeout, step)


def ended(migd, job_uuid, timeout=300, step=0.2):
    """The job once it is neither queued nor running (it may be waiting,
    switched or ended); fails after timeout seconds."""
    return wait_job(migd, job_uuid, lambda j: j['state'] not in ACTIVE_STATES,
                    'job %s to end' % job_uuid, timeout, step)


def while_active(migd, job_uuid, timeout=300, step=0.2):
    """Yields the job (migctl show -j) every step seconds while it is queued
    or running, for timeout seconds at the most; the caller checks how it
    ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = migd.job(job_uuid)
        if job['state'] not in ACTIVE_STATES:
            return
        yield job
        time.sleep(step)


def wait_state(migd, job_uuid, states, timeout=600, step=0.2):
    """The job once its state is one of states; after timeout seconds fails
    with the job as it then is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = migd.job(job_uuid)
        if job['state'] in states:
            return job
        time.sleep(step)
    raise AssertionError('job %s never reached %s: %s' % (job_uuid, states, migd.job(job_uuid)))


def state_of(migd, job_uuid):
    """The job's state now."""
    return migd.job(job_uuid)['state']


def submit(migd, *args):
    """`migctl migrate ARGS`, which must succeed; the new job's uuid."""
    p = migd.ctl('migrate', *args)
    assert p.returncode == 0, p.stderr
    return UUID.search(p.stdout).group(0)


def settle(migd, job_uuid, timeout=300, step=0.2, first_end=True):
    """`migctl cleanup` of a switched job, which deletes the source copy: the
    VM lives on one CN and is free again.  The cleanup must succeed.  With
    first_end, the first state the job stops in (see ended) must be
    succeeded; without, the job is polled until it is succeeded, for
    timeout seconds."""
    p = migd.ctl('cleanup', job_uuid)
    assert p.returncode == 0, p.stderr
    if first_end:
        assert ended(migd, job_uuid, timeout, step)['state'] == 'succeeded'
    else:
        wait_for(lambda: state_of(migd, job_uuid) == 'succeeded', 'the cleanup', timeout, step)


def home(lab, vm_uuid):
    """The CN that holds the VM (attached, not flagged do-not-inventory);
    fails unless exactly one CN does."""
    held = [n for n, p in lab.vm_placement(vm_uuid).items()
            if p['zone_state'] == 'installed' and not p['hidden']]
    assert len(held) == 1, lab.vm_placement(vm_uuid)
    return lab.cns[held[0] - 1]


def other(lab, cn):
    """A CN that is not cn: cn2 for cn1, else cn1."""
    return lab.cns[1] if cn.n == 1 else lab.cns[0]


def vm_and_cns(lab, alias):
    """The lab's VM alias, the CN that holds it (home) and another CN (other):
    where most tests start a migration from and to."""
    v = lab.vms[alias]
    src = home(lab, v['uuid'])
    return v, src, other(lab, src)


def fail_receives(lab, cn, count):
    """Makes cn's next count zfs receives (-1: every one) exit 1 with a checksum
    mismatch: the receive failure the tests provoke on a target."""
    lab.cn_fault(cn, 'zfs', args=r'^receive', count=count, exit=1,
                 stderr='cannot receive new filesystem stream: checksum mismatch')


def fill(lab, cn, vm_uuid, mb, name='bulk.bin', timeout=300):
    """Writes mb MiB of random data to /NAME in the VM's root on cn, synced."""
    lab.cn_run(cn, 'head -c %dM /dev/urandom > /zones/%s/root/%s && sync'
               % (mb, vm_uuid, name), timeout=timeout)


def window_from(start, minutes, tz_offset_h=0):
    """HH:MM-HH:MM opening at start (a UTC datetime on a minute), in a zone
    tz_offset_h hours east of UTC (Etc/GMT-N is N hours east)."""
    local = start + datetime.timedelta(hours=tz_offset_h)
    end = local + datetime.timedelta(minutes=minutes)
    spec = '%02d:%02d-%02d:%02d' % (local.hour, local.minute, end.hour, end.minute)
    return spec + (',Etc/GMT-%d' % tz_offset_h if tz_offset_h else '')


def retries_logged(migd, job_uuid):
    """The lines of the job's log (migctl log) that report a retry."""
    p = migd.ctl('log', job_uuid)
    assert p.returncode == 0, p.stderr
    return [line for line in p.stdout.splitlines() if re.search(r'retry \d+ in', line)]


def unix_get(sock_path, path, timeout=None):
    """GET path from migd's socket on a new connection that migd closes after
    the answer; the raw answer (head and body) as bytes.  timeout: seconds
    for the socket (None: block)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(b'GET %s HTTP/1.1\r\nHost: migd\r\nConnection: close\r\n\r\n' % path.encode())
        out = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()
