#!/usr/bin/env python3
"""The downtime benchmark: where every millisecond of a switch goes, and
how it compares with the same switch done by hand.

Brings up a 3-CN lab on its own SSH port and migrates the running zone web0
back and forth between cn1 and cn2 RUNS times (default 5; each switched job
is cleaned up before the next), with a small delta (1 MiB written just
before each job).  For each run it reads the job's journal (`migctl show -v
-j`) and prints the downtime and its parts:

  remote_ms   the remote commands of the downtime window that the issue
              names: stop, final snapshot and send, attach, start (migd
              attaches the staged zone, hidden and autoboot off, before
              the stop: its attach is 0 unless the zone changed in the
              window and was staged and attached again there)
  other_ms    the other actions inside the window (each named, with its ms)
  daemon_ms   the downtime less the remote commands' own durations (the
              job's downtime_breakdown.daemon_ms when migd reports it; else
              the downtime less the window's action durations)

Then, in the same lab, with migd stopped, the hand floor: RUNS migrations
of web0 between the same two CNs (alternating, from where migd left it) as
an operator with a good shell would do them, following the manual
procedure of the Triton docs, every command run from this host over an
OpenSSH ControlMaster connection to its CN opened beforehand (cipher
aes128-ctr, as bench_relay's OpenSSH pipeline).  Per run N from A to B:

  untimed, the zone running on A (the same 1 MiB delta written first):
    A: zfs snapshot -r zones/UUID@hand-N-a
    A: zfs send -R -I zones/IMAGE@final zones/UUID@hand-N-a  |  B: zfs receive -d zones
       (a full `zfs send -R` when the zone is no clone of an image B holds)
    A: zonecfg -z UUID export  |  B: zonecfg -z UUID -f -
    B: zfs create -o quota=1000m -o compression=gzip
              -o mountpoint=/zones/UUID/cores zones/cores/UUID
  timed (the downtime): exactly five commands, from just before the stop
  to the end of the start (time.monotonic()):
    A: vmadm stop UUID
    A: zfs snapshot -r zones/UUID@hand-N-b
    A: zfs send -R -I @hand-N-a zones/UUID@hand-N-b  |  B: zfs receive -F -d zones
    B: zoneadm -z UUID attach
    B: vmadm start UUID
  untimed, so that the next run finds the lab as migd's cleanup leaves it:
    A's copy flagged do-not-inventory (so A's vm-agent does not report the
    VM destroyed), detached, deleted, its datasets destroyed; the hand
    snapshots destroyed on B; VMAPI PUT of B's `vmadm get` and NAPI
    cn_uuid=B on the VM's NICs, as migd records a switch.

It prints one line per migd run, one per hand run (`hand run N A->B
downtime_ms=N (stop=N final_send=N attach=N start=N)`: final_send is the
snapshot and the send), the medians of the migd runs:

  median downtime_ms=N remote_ms=N daemon_ms=N ratio=R

(ratio: downtime_ms / remote_ms), and one summary line (how to read it:
tests/bench/README.md):

  summary medians of 5: migd downtime D ms (migd's own O ms), hand H ms; downtime/hand=R

(migd's own: the median daemon_ms; downtime/hand: median migd downtime over
median hand downtime; below 1 migd's switch is the shorter).  Run as root:
tests/bench/bench_downtime.py BUILD_DIR
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

from benchlab import build_dir, lab_up, migd_up
from helpers import waiter  # from tests/system, on the path benchlab set

wait = waiter(300, step=0.1, error=RuntimeError)

RUNS = int(os.environ.get('BENCH_RUNS', 5))
PORT = int(os.environ.get('BENCH_SSH_PORT', 2323))

# The remote commands of a switch the issue counts, by action name prefix.
REMOTE = {'stop': ('switch.stop_source',),
          'final_send': ('switch.snapshot@final', 'switch.send@final'),
          'attach': ('switch.attach_target', 'switch.attach_again', 'switch.show_target'),
          'start': ('switch.start_target',)}


def breakdown(job, actions):
    """(remote parts, other window actions, daemon_ms) of one switched job."""
    window = []
    inside = False
    for a in actions:
        if a['action'] == 'switch.stop_source':
            inside = True
        if inside:
            window.append(a)
        if a['action'] == 'switch.start_target':
            break
    parts = {k: sum(a['duration_ms'] or 0 for a in window
                    if any(a['action'].startswith(p) for p in prefixes))
             for k, prefixes in REMOTE.items()}
    counted = {a['action'] for a in window
               if any(a['action'].startswith(p) for ps in REMOTE.values() for p in ps)}
    others = [(a['action'], a['duration_ms'] or 0) for a in window
              if a['action'] not in counted]
    reported = job.get('downtime_breakdown') or {}
    if isinstance(reported, dict) and 'daemon_ms' in reported:
        daemon = reported['daemon_ms']
    else:
        daemon = job['downtime_ms'] - sum(a['duration_ms'] or 0 for a in window)
    return parts, others, daemon


def migd_runs(lab, d, here):
    """RUNS migd migrations of web0, starting on CN here: ([(downtime_ms,
    remote_ms, daemon_ms)], the CN web0 ends on)."""
    v = lab.vms['web0']
    rows = []
    for run in range(1, RUNS + 1):
        there = lab.cns[1] if here.n == 1 else lab.cns[0]
        lab.cn_run(here, 'head -c 1M /dev/urandom > /zones/%s/root/delta.bin && sync'
                   % v['uuid'])
        p = d.ctl('migrate', '-w', v['uuid'], there.hostname)
        if p.returncode != 0:
            raise RuntimeError(p.stderr + d.log_text()[-3000:])
        job_uuid = re.search(r'[0-9a-f-]{36}', p.stdout).group(0)
        shown = json.loads(d.ctl('show', '-v', '-j', job_uuid).stdout)
        parts, others, daemon = breakdown(shown, shown['actions'])
        remote = sum(parts.values())
        rows.append((shown['downtime_ms'], remote, daemon))
        print('run %d %s->%s downtime_ms=%d remote_ms=%d (stop=%d final_send=%d attach=%d '
              'start=%d) daemon_ms=%d other=[%s]'
              % (run, here.hostname, there.hostname, shown['downtime_ms'], remote,
                 parts['stop'], parts['final_send'], parts['attach'], parts['start'], daemon,
                 ', '.join('%s=%d' % o for o in others)))
        sys.stdout.flush()
        assert d.ctl('cleanup', job_uuid).returncode == 0
        wait(lambda: d.job(job_uuid)['state'] == 'succeeded', 'the cleanup')
        here = there
    return rows, here


class Shell:
    """An operator's shell on this host: one OpenSSH ControlMaster connection
    per CN, opened once, every command a new session over it (no handshake,
    no authentication in the timed window)."""

    def __init__(self, lab, ctl_dir):
        self.lab = lab
        self.ctl_dir = ctl_dir
        os.makedirs(ctl_dir, mode=0o700, exist_ok=True)

    def argv(self, cn):
        base = self.lab.ssh_argv(cn)  # ends with the destination, root@IP
        # The cipher is chosen when the master connects; its sessions share it.
        return base[:-1] + ['-o', 'ControlMaster=auto',
                            '-o', 'ControlPath=%s/%%h' % self.ctl_dir,
                            '-o', 'ControlPersist=300', '-c', 'aes128-ctr', base[-1]]

    def open(self, cn):
        # The first command starts the master, which stays in the
        # background (ControlPersist); its stdio must not be our pipes.
        subprocess.run(self.argv(cn) + ['true'], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        self.check(cn)

    def check(self, cn):
        """Fails unless cn's master connection is up."""
        p = subprocess.run(self.argv(cn)[:-1] + ['-O', 'check', self.argv(cn)[-1]],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError('no ControlMaster for %s: %s' % (cn.hostname, p.stderr))

    def close(self, cn):
        subprocess.run(self.argv(cn)[:-1] + ['-O', 'exit', self.argv(cn)[-1]],
                       stdin=subprocess.DEVNULL, capture_output=True)

    def run(self, cn, cmd, input=None):
        """cmd on cn, which must succeed; its stdout."""
        p = subprocess.run(self.argv(cn) + [cmd], input=input, capture_output=True, text=True,
                           timeout=300, stdin=None if input is not None else subprocess.DEVNULL)
        if p.returncode != 0:
            raise RuntimeError('%s on %s: exit %d: %s' % (cmd, cn.hostname, p.returncode,
                                                          p.stderr.strip()))
        return p.stdout

    def pipe(self, src, send_cmd, dst, recv_cmd):
        """`ssh src send_cmd | ssh dst recv_cmd`; both must succeed."""
        send = subprocess.Popen(self.argv(src) + [send_cmd], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        recv = subprocess.run(self.argv(dst) + [recv_cmd], stdin=send.stdout,
                              capture_output=True, text=True, timeout=300)
        send.stdout.close()
        send_err = send.stderr.read().decode()
        if send.wait() != 0 or recv.returncode != 0:
            raise RuntimeError('%s on %s | %s on %s: exit %d, %d: %s %s'
                               % (send_cmd, src.hostname, recv_cmd, dst.hostname,
                                  send.returncode, recv.returncode, send_err.strip(),
                                  recv.stderr.strip()))


def first_copy_source(sh, src, dst, u):
    """What the untimed first send starts from: `-I ORIGIN` when the zone is
    a clone of an image snapshot the target holds too, else '' (a full
    `send -R`)."""
    origin = sh.run(src, 'zfs get -H -o value origin zones/%s' % u).strip()
    if origin == '-':
        return ''
    p = subprocess.run(sh.argv(dst) + ['zfs list -H -o name %s' % origin],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    return '-I %s ' % origin if p.returncode == 0 else ''


def hand_run(lab, sh, n, src, dst):
    """One hand migration of web0 from src to dst: {downtime, stop,
    final_send, attach, start} in ms."""
    u = lab.vms['web0']['uuid']
    a, b = 'hand-%d-a' % n, 'hand-%d-b' % n
    # Untimed preparation, the zone running: the same delta as a migd run,
    # the first copy, the zone staged on the target and its cores dataset
    # (after the receive: it is mounted inside the zone's dataset).
    lab.cn_run(src, 'head -c 1M /dev/urandom > /zones/%s/root/delta.bin && sync' % u)
    sh.run(src, 'zfs snapshot -r zones/%s@%s' % (u, a))
    sh.pipe(src, 'zfs send -R %szones/%s@%s' % (first_copy_source(sh, src, dst, u), u, a),
            dst, 'zfs receive -d zones')
    sh.run(dst, 'zonecfg -z %s -f -' % u, input=sh.run(src, 'zonecfg -z %s export' % u))
    sh.run(dst, 'zfs create -o quota=1000m -o compression=gzip -o mountpoint=/zones/%s/cores '
                'zones/cores/%s' % (u, u))
    for cn in (src, dst):
        sh.check(cn)

    # The downtime: five commands; t holds the time after each.
    t = [time.monotonic()]
    sh.run(src, 'vmadm stop %s' % u)
    t.append(time.monotonic())
    sh.run(src, 'zfs snapshot -r zones/%s@%s' % (u, b))
    sh.pipe(src, 'zfs send -R -I @%s zones/%s@%s' % (a, u, b), dst, 'zfs receive -F -d zones')
    t.append(time.monotonic())
    sh.run(dst, 'zoneadm -z %s attach' % u)
    t.append(time.monotonic())
    sh.run(dst, 'vmadm start %s' % u)
    t.append(time.monotonic())
    # the downtime, and its parts named as migd's remote parts
    ms = dict(zip(('downtime', 'stop', 'final_send', 'attach', 'start'),
                  [(t[-1] - t[0]) * 1000] + [(t[i + 1] - t[i]) * 1000 for i in range(4)]))

    # Untimed: the source's copy goes, as migd's cleanup removes it.  First
    # the do-not-inventory flag, which the source's vm-agent must see before
    # the zone vanishes, or it reports the VM to VMAPI as destroyed (it polls
    # every 0.25 s; migd flags at the switch and deletes much later).
    sh.run(src, "zonecfg -z %s 'add attr; set name=do-not-inventory; set type=string; "
                "set value=true; end'" % u)
    flagged = time.monotonic()
    for snap in (a, b):
        sh.run(dst, 'zfs destroy -r zones/%s@%s' % (u, snap))
    # Record the switch as migd does: VMAPI gets the target's vmadm get (the
    # target's vm-agent reports it too, but the source's report of the stop
    # may land after it), NAPI the NICs' new CN.
    vm = json.loads(sh.run(dst, 'vmadm get %s' % u))
    status, _ = lab.api('vmapi', 'PUT', '/vms/' + u, vm)
    if status != 200:
        raise RuntimeError('VMAPI PUT /vms/%s: %d' % (u, status))
    for nic in vm.get('nics', []):
        status, _ = lab.api('napi', 'PUT', '/nics/' + nic['mac'].replace(':', ''),
                            {'cn_uuid': dst.uuid})
        if status != 200:
            raise RuntimeError('NAPI PUT /nics/%s: %d' % (nic['mac'], status))
    time.sleep(max(0.0, flagged + 1.0 - time.monotonic()))
    # The lab's zonecfg deletes only a detached zone (cn-commands.md); the
    # cores dataset is mounted inside the zone's, so it goes first.
    sh.run(src, 'zoneadm -z %s detach' % u)
    sh.run(src, 'zonecfg -z %s delete -F' % u)
    sh.run(src, 'zfs destroy -r zones/cores/%s' % u)
    sh.run(src, 'zfs destroy -r zones/%s' % u)
    return ms


def hand_runs(lab, work, here):
    """RUNS hand migrations of web0, starting on CN here: [downtime_ms]."""
    u = lab.vms['web0']['uuid']
    sh = Shell(lab, os.path.join(work, 'ssh'))
    rows = []
    started = time.time()  # agent.log's clock
    try:
        for cn in lab.cns[:2]:
            sh.open(cn)
        for run in range(1, RUNS + 1):
            there = lab.cns[1] if here.n == 1 else lab.cns[0]
            ms = hand_run(lab, sh, run, here, there)
            rows.append(ms['downtime'])
            print('hand run %d %s->%s downtime_ms=%d (stop=%d final_send=%d attach=%d start=%d)'
                  % (run, here.hostname, there.hostname, ms['downtime'], ms['stop'],
                     ms['final_send'], ms['attach'], ms['start']))
            sys.stdout.flush()
            # The lab as migd's cleanup leaves it: the VM on one CN only,
            # running, and VMAPI naming that CN.
            placed = {n: p for n, p in lab.vm_placement(u).items() if p['zone_state']}
            if list(placed) != [there.n] or not placed[there.n]['running']:
                raise RuntimeError('after hand run %d: %s' % (run, placed))
            here = there
        _, vm = lab.api('vmapi', 'GET', '/vms/' + u)
        if vm['server_uuid'] != here.uuid or vm['state'] != 'running':
            raise RuntimeError('VMAPI after the hand runs: %s on %s'
                               % (vm['state'], vm['server_uuid']))
        gone = [e for cn in lab.cns[:2] for e in lab.agent_log(cn)
                if e['uuid'] == u and e.get('state') == 'destroyed' and e['time'] >= started]
        if gone:
            raise RuntimeError('a vm-agent reported web0 destroyed: %s' % gone)
    finally:
        for cn in lab.cns[:2]:
            sh.close(cn)
    return rows


def main():
    build = build_dir()
    work, lab = lab_up('migd-bench-downtime-', 3, PORT)
    d = migd_up(lab, build, work)
    try:
        rows, here = migd_runs(lab, d, lab.vms['web0']['cn'])
        d.stop()  # idle from here on; the hand runs need no migd
        hand = hand_runs(lab, work, here)
        med = [statistics.median(col) for col in zip(*rows)]
        print('median downtime_ms=%d remote_ms=%d daemon_ms=%d ratio=%.2f'
              % (med[0], med[1], med[2], med[0] / med[1] if med[1] else 0))
        hand_ms = statistics.median(hand)
        # The line to read (tests/bench/README.md): below 1, migd's switch
        # is shorter than the same switch done by hand.
        print("summary medians of %d: migd downtime %d ms (migd's own %d ms), hand %d ms; "
              'downtime/hand=%.2f' % (RUNS, med[0], med[2], hand_ms, med[0] / hand_ms))
    finally:
        d.stop()  # a second stop of a stopped migd does nothing
        lab.down()


if __name__ == '__main__':
    main()
