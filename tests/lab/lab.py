#!/usr/bin/python3
"""The migd test lab orchestrator: a Python module and a CLI.

It brings up N emulated compute nodes (cn_init.py: one mount namespace each,
with a real zfs-fuse pool and a real OpenSSH sshd on 127.0.0.(10+n)), seeds
the datacenter `lab-1` (seed.py: images, VMs with real data), starts the
emulated Triton APIs (tritonapi.py) on loopback, and tears all of it down
again.  System tests, benchmarks and the demo use the Lab class; people use

  lab.py up DIR [--cns N] [--data-mb M] [--ssh-port P] [--key-type T]
  lab.py down DIR | status DIR | exec DIR CN_N CMD | config DIR

Everything is described in docs/lab.md.
"""
import argparse
import fcntl
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET

LAB_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, LAB_DIR)
import seed  # noqa: E402

CN_INIT = os.path.join(LAB_DIR, 'cn_init.py')
# ssh-keygen arguments of the head node's identity, by key type; RSA in PEM
# form, which libssh2 reads everywhere
KEY_TYPES = {'ed25519': ['-t', 'ed25519'], 'ecdsa': ['-t', 'ecdsa', '-b', '256'],
             'rsa': ['-t', 'rsa', '-b', '3072', '-m', 'PEM']}
TRITONAPI = os.environ.get('LAB_TRITONAPI', os.path.join(LAB_DIR, 'tritonapi.py'))
CN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
API_NAMES = ('vmapi', 'cnapi', 'napi', 'imgapi')
AGENT_SYNC_TIMEOUT_S = 30


class LabError(Exception):
    """The lab could not do what was asked; the message says what to do."""


class CommandError(subprocess.CalledProcessError):
    """A failed command inside a CN; str() includes its output."""

    def __str__(self):
        return '%s\nstdout: %s\nstderr: %s' % (super().__str__(), self.stdout, self.stderr)


class CN:
    """One emulated compute node."""

    def __init__(self, n, workdir):
        self.n = n
        self.uuid = seed.cn_uuid(n)
        self.hostname = 'cn%d' % n
        self.ip = seed.cn_ip(n)
        self.dir = os.path.join(workdir, 'cn%d' % n)
        self.pid = None

    def __repr__(self):
        return '<CN %s %s %s>' % (self.hostname, self.ip, self.uuid)


def wait_until(pred, what, timeout, alive=None):
    """Poll pred() until true; fail after timeout or when alive() is false."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return
        if alive is not None and not alive():
            raise LabError('%s: the process died (see its log)' % what)
        if time.monotonic() > deadline:
            raise LabError('timed out after %ss waiting for %s' % (timeout, what))
        time.sleep(0.05)


def pid_alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def pid_is(pid, marker):
    """Is pid still the lab process whose command line contains marker?"""
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return marker.encode() in f.read()
    except OSError:
        return False


def port_free(ip, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Lab:
    """A running (or runnable) lab in workdir; see docs/lab.md."""

    def __init__(self, workdir, cns=3, ssh_port=22, data_mb=4, seed=True, key_type='ed25519',
                 accept_ssh_rsa=None):
        """key_type: the head node's identity, 'ed25519' (default), 'ecdsa' or
        'rsa'.  accept_ssh_rsa: whether the CNs' sshd accepts RSA signatures
        made with SHA-1 (`PubkeyAcceptedAlgorithms +ssh-rsa`, which libssh2
        1.10 needs for an RSA key); default: only with an RSA identity.
        False with key_type='rsa' is a stock OpenSSH 8.8+ refusing that key."""
        if key_type not in KEY_TYPES:
            raise LabError('key_type must be one of %s' % ', '.join(sorted(KEY_TYPES)))
        self.workdir = os.path.abspath(workdir)
        self.ncns = cns
        self.ssh_port = ssh_port
        self.data_mb = data_mb
        self.seed = seed
        self.key_type = key_type
        self.accept_ssh_rsa = key_type == 'rsa' if accept_ssh_rsa is None else accept_ssh_rsa
        self.pdeathsig = True  # the CLI clears it: its lab outlives the command
        self.cns = [CN(n, self.workdir) for n in range(1, cns + 1)]
        self.vms = {}
        self.identity = os.path.join(self.workdir, 'hn_id_' + key_type)
        self.known_hosts = os.path.join(self.workdir, 'known_hosts')
        self.api_urls = {}
        self.api_pid = None
        self._procs = {}  # pid -> Popen, for processes this object started
        self.timings = {}

    # ------------------------------------------------------------ up / down

    def up(self):
        """Start everything; on any failure stop what started, then raise."""
        t0 = time.monotonic()
        self.kill_leftovers()
        try:
            self._prepare_dirs()
            self._check_ports()
            self._make_keys()
            self._start_cns()
            self.timings['cns'] = time.monotonic() - t0
            self._seed_or_load()
            self.timings['seed'] = time.monotonic() - t0
            self._start_api()
            self._wait_ssh()
            self._wait_agents()
            self._write_lab_json()
        except BaseException:
            self.down()
            raise
        self.timings['up'] = time.monotonic() - t0

    def down(self):
        """Stop everything this lab started (or lab.json records); idempotent."""
        pids = [cn.pid for cn in self.cns if cn.pid] + ([self.api_pid] if self.api_pid else [])
        for pid in pids:
            self._signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for pid in pids:
            self._reap(pid, deadline)
        for cn in self.cns:
            cn.pid = None
            _unlink(os.path.join(cn.dir, 'ready'))
        self.api_pid = None
        self._procs.clear()

    def _signal(self, pid, sig):
        marker = 'tritonapi' if pid == self.api_pid else 'cn_init'
        if pid in self._procs or pid_is(pid, marker):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _reap(self, pid, deadline):
        proc = self._procs.get(pid)
        while pid_alive(pid) and time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.05)
        if pid_alive(pid) and (proc is None or proc.poll() is None):
            try:
                os.killpg(pid, signal.SIGKILL)  # its session: zfs-fuse, sshd too
            except ProcessLookupError:
                pass
        if proc is not None:
            proc.wait()

    def kill_leftovers(self):
        """Stop the processes a previous (crashed) run recorded in lab.json."""
        state = _read_json(os.path.join(self.workdir, 'lab.json'))
        if not state:
            return
        old = Lab.load(self.workdir)
        old.down()

    # ------------------------------------------------------------ steps of up

    def _prepare_dirs(self):
        os.makedirs(self.workdir, exist_ok=True)
        if self.seed:
            for name in ['images', 'dc.json', 'apis.json', 'lab.json'] + \
                    ['cn%d' % n for n in range(1, 100)]:
                path = os.path.join(self.workdir, name)
                if os.path.isdir(path):
                    shutil.rmtree(path)
                else:
                    _unlink(path)
        _unlink(os.path.join(self.workdir, 'apis.json'))
        os.makedirs(os.path.join(self.workdir, 'images'), exist_ok=True)
        for cn in self.cns:
            for sub, mode in (('etc-zones', 0o755), ('state', 0o755), ('root', 0o700),
                              ('var-tmp', 0o1777)):
                os.makedirs(os.path.join(cn.dir, sub), exist_ok=True)
                os.chmod(os.path.join(cn.dir, sub), mode)
            # no faults, agent status or resync request survive from a previous run
            for name in ('faults.json', 'agent.json', 'agent.resync'):
                _unlink(os.path.join(cn.dir, 'state', name))

    def _check_ports(self):
        for cn in self.cns:
            if not port_free(cn.ip, self.ssh_port):
                raise LabError('port %d on %s is already in use (another lab? see '
                               '`pgrep -af cn_init`); stop it or pick another port with '
                               '--ssh-port / Lab(ssh_port=...)' % (self.ssh_port, cn.ip))

    def _make_keys(self):
        if not os.path.exists(self.identity):
            _run(['ssh-keygen', '-q'] + KEY_TYPES[self.key_type] +
                 ['-N', '', '-C', 'migd-lab-headnode', '-f', self.identity])
        shutil.copy(self.identity + '.pub', os.path.join(self.workdir, 'authorized_keys'))
        lines = []
        for cn in self.cns:
            key = os.path.join(cn.dir, 'ssh_host_ed25519_key')
            if not os.path.exists(key):
                _run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', cn.hostname, '-f', key])
            with open(key + '.pub') as f:
                kind, blob = f.read().split()[:2]
            host = cn.ip if self.ssh_port == 22 else '[%s]:%d' % (cn.ip, self.ssh_port)
            lines.append('%s %s %s\n' % (host, kind, blob))
            self._write_sshd_config(cn, key)
            self._write_ssh_config(cn)
        with open(self.known_hosts, 'w') as f:
            f.writelines(lines)

    def _write_sshd_config(self, cn, host_key):
        # the lab's fixed file, and root's own ~/.ssh/authorized_keys (the CN's
        # /root, see cn_init.py), as a SmartOS sshd reads it; the signature
        # algorithms are OpenSSH's defaults (no ssh-rsa) unless the lab is
        # asked to accept ssh-rsa
        conf = ['ListenAddress %s:%d' % (cn.ip, self.ssh_port), 'HostKey ' + host_key,
                'AuthorizedKeysFile %s .ssh/authorized_keys'
                % os.path.join(self.workdir, 'authorized_keys'),
                'PermitRootLogin prohibit-password', 'PasswordAuthentication no',
                'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no',
                'MaxStartups 100:30:200',
                'MaxSessions 100', 'PidFile ' + os.path.join(cn.dir, 'sshd.pid'),
                'LogLevel ERROR', 'PrintMotd no', 'UseDNS no']
        if self.accept_ssh_rsa:
            conf.append('PubkeyAcceptedAlgorithms +ssh-rsa')
        with open(os.path.join(cn.dir, 'sshd_config'), 'w') as f:
            f.write('\n'.join(conf) + '\n')

    def _write_ssh_config(self, cn):
        """The CN's own /etc/ssh/ssh_config (cn_init.py binds it there): the
        system's, and, when the lab's sshd do not listen on 22, that port for
        the other CNs' addresses, so that `ssh root@DST_IP` run on a CN (direct
        transfer) reaches the target's sshd as it would on port 22."""
        try:
            with open('/etc/ssh/ssh_config') as f:
                system = f.read()
        except FileNotFoundError:
            system = ''
        extra = ''
        if self.ssh_port != 22:
            extra = 'Host %s\n    Port %d\n' % (' '.join(c.ip for c in self.cns), self.ssh_port)
        with open(os.path.join(cn.dir, 'ssh_config'), 'w') as f:
            f.write(extra + system)

    def _start_cns(self):
        for cn in self.cns:
            _write_json(os.path.join(cn.dir, 'state', 'sysinfo.json'), seed.sysinfo(cn.n))
            _write_json(os.path.join(cn.dir, 'state', 'lab.json'),
                        {'image_dir': os.path.join(self.workdir, 'images'), 'vmapi_url': None})
            argv = ['unshare', '-m', '--propagation', 'private', '/usr/bin/python3', CN_INIT,
                    '--cn-dir', cn.dir, '--pool-size', str(self._pool_size())]
            argv += ['--pdeathsig'] if self.pdeathsig else []
            proc = self._spawn(argv, os.path.join(cn.dir, 'init.out'))
            cn.pid = proc.pid
        for cn in self.cns:
            proc = self._procs[cn.pid]
            wait_until(lambda: os.path.exists(os.path.join(cn.dir, 'ready')),
                       '%s to start (see %s/init.log)' % (cn.hostname, cn.dir), 60,
                       alive=lambda: proc.poll() is None)

    def _pool_size(self):
        """Sparse vdev size: 64 GiB, for the space the HVM disks reserve (each
        disk's refreservation is its size, 5-10 GiB; bhyve0 reserves 20 GiB),
        on the source and again on a target, plus room for every VM's data,
        copies and snapshots several times over (a sparse file costs only
        what is written)."""
        return (64 << 30) + (int(self.data_mb * 32) << 20)

    def _spawn(self, argv, log_path):
        with open(log_path, 'ab') as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, cwd='/')
        self._procs[proc.pid] = proc
        return proc

    def _seed_or_load(self):
        dc_path = os.path.join(self.workdir, 'dc.json')
        if self.seed:
            _write_json(dc_path, self._seed())
        elif not os.path.exists(dc_path):
            _write_json(dc_path, seed.dc_state(self.ncns, [], []))
        self._vms_from_dc(_read_json(dc_path))

    def _seed(self):
        """Create images on cn1, then each CN's VMs; return the API state."""
        image_dir = os.path.join(self.workdir, 'images')
        builder = self.cns[0]
        lines = ['set -e']
        for image in seed.IMAGES:
            lines += seed.image_build_script(image, image_dir)
        self.cn_run(builder, '\n'.join(lines))
        manifests = []
        for image in seed.IMAGES:
            m = seed.image_manifest(image, os.path.join(image_dir, image['uuid'] + '.zfs'))
            _write_json(os.path.join(image_dir, image['uuid'] + '.json'), m)
            _write_json(os.path.join(builder.dir, 'state', 'imgadm', image['uuid'] + '.json'), m)
            manifests.append(m)
        specs = seed.vm_specs(self.ncns)
        procs = [self._seed_cn(cn, [v for v in specs if v['cn'] == cn.n]) for cn in self.cns]
        for cn, proc in zip(self.cns, procs):
            out, err = proc.communicate(timeout=300)
            if proc.returncode != 0:
                raise LabError('seeding %s failed: %s' % (cn.hostname, err))
        return seed.dc_state(self.ncns, self._vm_objects(specs), manifests)

    def _seed_cn(self, cn, specs):
        """Start (in the background) the script creating cn's VMs."""
        lines = ['set -e']
        for img in sorted({v['image_uuid'] for v in specs}):
            lines.append('imgadm import -q %s' % img)
        for vm in specs:
            lines += seed.vm_create_script(vm, self.data_mb, '/var/lib/lab-cn')
        return subprocess.Popen(self._nsenter(cn, '\n'.join(lines)), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd='/', env={'PATH': CN_PATH})

    def _vm_objects(self, specs):
        objs = []
        for cn in self.cns:
            mine = [v for v in specs if v['cn'] == cn.n]
            if not mine:
                continue
            out = self.cn_run(cn, '; '.join('vmadm get %s' % v['uuid'] for v in mine)).stdout
            dec, pos = json.JSONDecoder(), 0
            for vm in mine:
                obj, pos = dec.raw_decode(out, _skip_ws(out, pos))
                obj['spec'] = vm
                objs.append(obj)
        return objs

    def _vms_from_dc(self, dc):
        by_uuid = {cn.uuid: cn for cn in self.cns}
        self.vms = {}
        for vm in dc.get('vms', []):
            image = vm.get('image_uuid') or (vm.get('disks') or [{}])[0].get('image_uuid')
            self.vms[vm['alias']] = {'uuid': vm['uuid'], 'alias': vm['alias'],
                                     'brand': vm['brand'], 'cn': by_uuid.get(vm['server_uuid']),
                                     'image_uuid': image, 'state': vm['state']}

    def _start_api(self):
        ports = os.path.join(self.workdir, 'apis.json')
        argv = ['/usr/bin/python3', TRITONAPI, '--state', os.path.join(self.workdir, 'dc.json'),
                '--ports-file', ports, '--listen', '127.0.0.1']
        if self.pdeathsig:
            argv.append('--die-with-parent')
        proc = self._spawn(argv, os.path.join(self.workdir, 'tritonapi.log'))
        self.api_pid = proc.pid
        wait_until(lambda: _read_json(ports) is not None,
                   'the Triton API server (see %s/tritonapi.log)' % self.workdir, 30,
                   alive=lambda: proc.poll() is None)
        got = _read_json(ports)
        self.api_urls = {name: 'http://127.0.0.1:%d' % got[name] for name in API_NAMES}
        for cn in self.cns:
            path = os.path.join(cn.dir, 'state', 'lab.json')
            _write_json(path, dict(_read_json(path), vmapi_url=self.api_urls['vmapi']))

    def _wait_ssh(self):
        for cn in self.cns:
            def answers():
                return subprocess.run(self.ssh_argv(cn) + ['true'], stdin=subprocess.DEVNULL,
                                      capture_output=True, timeout=20).returncode == 0
            wait_until(answers, 'sshd on %s:%d' % (cn.ip, self.ssh_port), 30,
                       alive=lambda: pid_alive(cn.pid))

    def _wait_agents(self):
        """Every CN's vm-agent has compared its zones with this VMAPI (and
        found nothing to report on a freshly seeded lab)."""
        url = self.api_urls['vmapi']
        for cn in self.cns:
            path = os.path.join(cn.dir, 'state', 'agent.json')
            wait_until(lambda: (_read_json(path) or {}).get('vmapi_url') == url
                       and _read_json(path).get('synced'),
                       'the vm-agent of %s to sync (see %s/init.log)' % (cn.hostname, cn.dir),
                       AGENT_SYNC_TIMEOUT_S, alive=lambda: pid_alive(cn.pid))

    def _write_lab_json(self):
        _write_json(os.path.join(self.workdir, 'lab.json'), self.describe())

    def describe(self):
        """Everything about the running lab (what lab.json holds)."""
        return {
            'workdir': self.workdir, 'ssh_port': self.ssh_port, 'data_mb': self.data_mb,
            'cns': [{'n': c.n, 'uuid': c.uuid, 'hostname': c.hostname, 'ip': c.ip,
                     'pid': c.pid, 'dir': c.dir} for c in self.cns],
            'vms': {a: dict(v, cn=v['cn'].n if v['cn'] else None) for a, v in self.vms.items()},
            'api_urls': self.api_urls, 'api_pid': self.api_pid,
            'identity': self.identity, 'known_hosts': self.known_hosts,
            'key_type': self.key_type, 'accept_ssh_rsa': self.accept_ssh_rsa,
            'datacenter': seed.DATACENTER, 'admin_uuid': seed.ADMIN_UUID,
            'headnode_uuid': seed.HEADNODE_UUID,
        }

    @classmethod
    def load(cls, workdir):
        """A Lab object for the lab that lab.json in workdir describes."""
        state = _read_json(os.path.join(os.path.abspath(workdir), 'lab.json'))
        if state is None:
            raise LabError('no lab.json in %s: is a lab up there?' % workdir)
        lab = cls(workdir, cns=len(state['cns']), ssh_port=state['ssh_port'],
                  data_mb=state['data_mb'], seed=False,
                  key_type=state.get('key_type', 'ed25519'),
                  accept_ssh_rsa=state.get('accept_ssh_rsa'))
        for cn, rec in zip(lab.cns, state['cns']):
            cn.pid = rec['pid']
        lab.api_pid = state['api_pid']
        lab.api_urls = state['api_urls']
        lab.vms = {a: dict(v, cn=lab.cns[v['cn'] - 1] if v['cn'] else None)
                   for a, v in state['vms'].items()}
        return lab

    # ------------------------------------------------------------ using the lab

    def _nsenter(self, cn, cmd):
        if not cn.pid:
            raise LabError('%s is not running' % cn.hostname)
        return ['nsenter', '-t', str(cn.pid), '-m', '--', '/bin/sh', '-c', cmd]

    def cn_run(self, cn, cmd, input=None, check=True, timeout=60):
        """Run a shell command inside cn's namespace, as that CN would.

        Injected command faults (cn_fault, cn_throttle) are for migd's
        commands over SSH: they do not apply here."""
        p = subprocess.run(self._nsenter(cn, cmd), input=input, capture_output=True, text=True,
                           timeout=timeout, cwd='/',
                           env={'PATH': CN_PATH, 'HOME': '/root', 'LAB_NO_FAULTS': '1'})
        if check and p.returncode != 0:
            raise CommandError(p.returncode, cmd, p.stdout, p.stderr)
        return p

    def ssh_argv(self, cn):
        return ['ssh', '-i', self.identity, '-o', 'UserKnownHostsFile=' + self.known_hosts,
                '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes',
                '-o', 'IdentitiesOnly=yes', '-o', 'LogLevel=ERROR',
                '-p', str(self.ssh_port), 'root@' + cn.ip]

    def api(self, name, method, path, body=None):
        """Plain HTTP to an emulated API: (status, parsed JSON or None)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api_urls[name] + path, data=data, method=method,
                                     headers={'Content-Type': 'application/json'})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None

    def api_state(self):
        return self._admin('GET', '/__lab/state')

    def api_fault(self, name, method, path_re, status, count=1, delay_s=0, for_s=None,
                  user_agent=None):
        """Stage a fault on one API (tritonapi.py): the next `count` requests
        matching method and path regex, or, with for_s, every matching
        request for that many seconds from now; user_agent (a regex) limits
        it to some clients, e.g. '^vm-agent/' or '^(?!vm-agent/)'."""
        spec = {'method': method, 'path': path_re, 'status': status, 'count': count,
                'delay_s': delay_s}
        if for_s is not None:
            spec['for_s'] = for_s
        if user_agent is not None:
            spec['user_agent'] = user_agent
        return self._admin('POST', '/__lab/fault', spec, name)

    def api_patch(self, collection, key, merge):
        return self._admin('POST', '/__lab/patch',
                           {'collection': collection, 'key': key, 'merge': merge})

    def _admin(self, method, path, body=None, name='vmapi'):
        status, got = self.api(name, method, path, body)
        if status >= 300:
            raise LabError('%s %s on %s: %d %s' % (method, path, name, status, got))
        return got

    # ------------------------------------------------------------ CN faults

    def cn_fault(self, cn, prog, args='', count=1, exit=1, stderr='', stdout='', delay_s=0):
        """The next `count` runs (-1: until cleared) of emulated command prog
        (vmadm, zfs, ...) on cn whose arguments match regex args wait delay_s,
        then print stdout/stderr and exit with `exit` without running; with
        exit=None they only wait, then run.  See smartos.py take_fault()."""
        return self._add_cn_rule(cn, {'prog': prog, 'args': args, 'count': count,
                                      'exit': exit, 'stderr': stderr, 'stdout': stdout,
                                      'delay_s': delay_s})

    def cn_throttle(self, cn, prog, args='', bytes_per_s=1 << 20, count=-1, stream='stdout'):
        """Runs of prog on cn matching args pass their stdout (stream='stdin':
        their stdin) through at about bytes_per_s; the command itself runs
        as usual (`zfs send` is still the real zfs)."""
        if stream not in ('stdout', 'stdin') or bytes_per_s <= 0:
            raise LabError('throttle needs stream stdout or stdin and bytes_per_s > 0')
        return self._add_cn_rule(cn, {'prog': prog, 'args': args, 'count': count,
                                      'throttle_bps': int(bytes_per_s), 'stream': stream})

    def cn_zfs_features(self, cn, **features):
        """Optional zfs features cn's `zfs` front offers on top of zfs-fuse,
        as a newer illumos zfs would: send_c=True makes `zfs send -c`
        accepted (docs/lab.md).  Kept in the CN's state; False turns one
        off again."""
        unknown = set(features) - {'send_c'}
        if unknown:
            raise LabError('unknown zfs features: %s' % ', '.join(sorted(unknown)))
        path = os.path.join(cn.dir, 'state', 'features.json')
        now = _read_json(path) or {}
        now.update(features)
        _write_json(path, now)

    def cn_faults_clear(self, cn):
        with self._cn_rules(cn) as rules:
            rules.clear()

    def cn_faults_log(self, cn):
        """[{time, prog, args, rule}] for every command a rule applied to."""
        return _read_json_lines(os.path.join(cn.dir, 'state', 'faults.log'))

    def _add_cn_rule(self, cn, rule):
        if rule['count'] == 0 or rule['count'] < -1:
            raise LabError('count must be positive, or -1 for until cleared')
        re.compile(rule['args'])
        rule['id'] = next(_RULE_IDS)
        with self._cn_rules(cn) as rules:
            rules.append(rule)
        return rule['id']

    def _cn_rules(self, cn):
        return _LockedRules(os.path.join(cn.dir, 'state'))

    def agent_log(self, cn):
        """[{time, by, uuid, state, server_uuid, status | error}] for every
        PUT /vms/:uuid cn's vm-agent (or `svcadm restart vm-agent`) made."""
        return _read_json_lines(os.path.join(cn.dir, 'state', 'agent.log'))

    # ------------------------------------------------------------ invariants

    def vm_placement(self, uuid):
        """{cn.n: {zone_state, running, autoboot, hidden, datasets, snapshots}}:
        where VM uuid is, read-only, from one nsenter per CN (run in parallel).

        zone_state is 'configured', 'installed' or None (no such zone);
        hidden means the do-not-inventory attr is true; datasets are the
        filesystems of the VM (zones/UUID and children, zones/UUID-diskN,
        zones/cores/UUID), snapshots the full names of their snapshots."""
        if not UUID_RE.match(uuid):
            raise LabError('not a UUID: %r' % uuid)
        script = ('grep "^%(u)s:" /etc/zones/index; echo @@; cat /etc/zones/%(u)s.xml; '
                  'echo @@; ls /var/lib/lab-cn/running/%(u)s; echo @@; '
                  '/usr/sbin/zfs list -H -o name -t all' % {'u': uuid})
        procs = [(cn, subprocess.Popen(self._nsenter(cn, script), stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True, cwd='/'))
                 for cn in self.cns]
        return {cn.n: _placement(uuid, proc.communicate(timeout=60)[0]) for cn, proc in procs}

    def migd_config(self, workdir, **overrides):
        """A migd config (product.md) for this lab; overrides merge per section."""
        workdir = os.path.abspath(workdir)
        cfg = {
            'datacenter': seed.DATACENTER,
            'db': os.path.join(workdir, 'migd.sqlite'),
            'socket': os.path.join(workdir, 'migd.sock'),
            'log_level': 'debug',
            'apis': dict(self.api_urls),
            'ssh': {'user': 'root', 'port': self.ssh_port, 'identity': self.identity,
                    'known_hosts': self.known_hosts, 'connect_timeout_s': 10,
                    'keepalive_s': 15},
            'transfer': {'mode': 'relay', 'retries': 5, 'limit_mbps': 0},
            'incremental': {'interval_s': 60, 'auto_switch_bytes': 268435456},
            'limits': {'max_active_jobs': 4, 'max_jobs_per_cn': 2},
            # The health gate's window: short, so every migration of a running
            # VM passes through it without slowing the suite (product: 30 s).
            'health': {'min_up_s': 2},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key] = dict(cfg[key], **value)
            else:
                cfg[key] = value
        return cfg

    def snapshot_checksums(self, cn, snapshot):
        """{relative path: sha256} of the files in a snapshot (DATASET@NAME) on
        cn, whatever its dataset: a delegated dataset is zoned=on, which the
        global zone never mounts.  The snapshot is sent without its
        properties into a scratch dataset, read and destroyed."""
        if not re.match(r'^zones/[A-Za-z0-9_.:/-]+@[A-Za-z0-9_.:-]+$', snapshot):
            raise LabError('not a snapshot of the zones pool: %r' % snapshot)
        scratch = 'zones/lab-read-%s' % uuid.uuid4().hex
        self.cn_run(cn, '/usr/sbin/zfs send %s | /usr/sbin/zfs receive %s'
                    % (_sh_quote(snapshot), scratch), timeout=300)
        try:
            return self.file_checksums(cn, '/' + scratch)
        finally:
            self.cn_run(cn, 'zfs destroy -r %s' % scratch)

    def zfs_hold(self, cn, tag, snapshot):
        """Put the user hold `tag` on a snapshot (DATASET@NAME) of cn with the
        CN's `zfs hold`, as an operator or another tool would (see
        docs/lab.md "ZFS user holds"); raises CommandError if zfs refuses."""
        self.cn_run(cn, 'zfs hold %s %s' % (_sh_quote(tag), _sh_quote(snapshot)))

    def zfs_release(self, cn, tag, snapshot):
        """Release the user hold `tag` from a snapshot of cn (`zfs release`)."""
        self.cn_run(cn, 'zfs release %s %s' % (_sh_quote(tag), _sh_quote(snapshot)))

    def zfs_holds(self, cn, snapshot):
        """[tag] of the holds on a snapshot of cn, as `zfs holds -H` lists them
        (user holds, then the `.send-PID-1` of a running `send -R`/`-I`)."""
        out = self.cn_run(cn, 'zfs holds -H %s' % _sh_quote(snapshot)).stdout
        return [line.split('\t')[1] for line in out.splitlines()]

    # ------------------------------------------------------------ zone health

    def smf_maintenance(self, cn, uuid, fmri, reason='method_failed', exit_status=95,
                        description=None, at_boot=False, count=1):
        """Put SMF service fmri (svc:/NAME:INSTANCE) of zone uuid on cn into
        maintenance, so that `svcs -z uuid -x` explains it.  Now (the state
        is written into the zone dataset, so it travels with zfs send), or
        at_boot: on the zone's next `count` boots on cn (-1: every boot),
        as a start method failing on that CN would.  reason is the SMF
        aux_state: method_failed (exit_status 95 is $SMF_EXIT_ERR_FATAL, 0
        no status), fault_threshold_reached, administrative_request,
        restarting_too_quickly or none.  See docs/lab.md "Zone health"."""
        _check_uuid(uuid)
        if not FMRI_RE.match(fmri):
            raise LabError('fmri must be svc:/SERVICE:INSTANCE, not %r' % fmri)
        if reason not in SMF_REASONS:
            raise LabError('reason must be one of %s' % ', '.join(SMF_REASONS))
        _check_count(count)
        req = {'uuid': uuid, 'fmri': fmri, 'aux_state': reason, 'count': count,
               'exit_status': int(exit_status or 0), 'description': description}
        return self._lab_request(cn, dict(req, op='smf_boot' if at_boot else 'smf_set'))

    def smf_clear(self, cn, uuid, fmri=None):
        """`svcadm clear`: the service (all, without fmri) of zone uuid on cn
        back online; its at_boot knobs on cn are dropped too."""
        _check_uuid(uuid)
        return self._lab_request(cn, {'op': 'smf_clear', 'uuid': uuid, 'fmri': fmri})

    def zone_restart_after_boot(self, cn, uuid, delay_s, count=1, stays_down=False):
        """The next `count` boots (-1: every boot, a reboot loop) of zone uuid
        on cn make it reboot by itself delay_s seconds later: a new zone id
        in `zoneadm list -p`, running again (stays_down: halted for good,
        `vmadm get` says stopped).  delay_s=None removes the knob and any
        restart still to come."""
        _check_uuid(uuid)
        if delay_s is not None:
            _check_count(count)
            if not delay_s > 0:
                raise LabError('delay_s must be positive')
        return self._lab_request(cn, {'op': 'restart_rule', 'uuid': uuid, 'count': count,
                                      'delay_s': delay_s, 'stays_down': bool(stays_down)})

    def zone_id(self, cn, uuid):
        """The zone id of uuid in cn's `zoneadm list -p`, or None if not running."""
        for line in self.cn_run(cn, 'zoneadm list -p').stdout.splitlines():
            fields = line.split(':')
            if fields[1] == uuid:
                return int(fields[0])
        return None

    def _lab_request(self, cn, req):
        code = ('import sys; sys.path.insert(0, "/usr/local/sbin"); import smartos; '
                'sys.exit(smartos.lab_request())')
        p = self.cn_run(cn, 'python3 -c %s' % _sh_quote(code), input=json.dumps(req),
                        check=False)
        if p.returncode != 0:
            raise LabError('%s on %s: %s' % (req['op'], cn.hostname, p.stderr.strip()))
        return json.loads(p.stdout)

    def file_checksums(self, cn, dataset_mountpoint):
        """{relative path: sha256} of every file under a mountpoint in cn."""
        out = self.cn_run(cn, 'cd %s && find . -type f -print0 | sort -z | '
                              'xargs -0 -r sha256sum' % _sh_quote(dataset_mountpoint),
                          timeout=300).stdout
        sums = {}
        for line in out.splitlines():
            digest, path = line.split('  ', 1)
            sums[path[2:] if path.startswith('./') else path] = digest
        return sums


# ---------------------------------------------------------------- small helpers

UUID_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
_RULE_IDS = itertools.count(1)
# the SMF knobs' checks (the emulation, cn/smartos.py, has the same tables)
FMRI_RE = re.compile(r'^svc:/[A-Za-z0-9][A-Za-z0-9_.,/-]*:[A-Za-z0-9_.,-]+$')
SMF_REASONS = ('method_failed', 'fault_threshold_reached', 'administrative_request',
               'restarting_too_quickly', 'none')


def _check_uuid(u):
    if not UUID_RE.match(u or ''):
        raise LabError('not a UUID: %r' % u)


def _check_count(count):
    if count == 0 or count < -1:
        raise LabError('count must be positive, or -1 for every boot')


class _LockedRules:
    """A CN's faults.json as a list, read and written under the lock that
    the emulated commands take when they consume a rule."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, 'faults.json')
        self.lock_path = os.path.join(state_dir, '.faults.lock')

    def __enter__(self):
        self.lock = open(self.lock_path, 'a')
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        self.rules = _read_json(self.path) or []
        return self.rules

    def __exit__(self, exc_type, *_):
        try:
            if exc_type is None:
                _write_json(self.path, self.rules)
        finally:
            self.lock.close()


def _placement(uuid, out):
    """Parse vm_placement()'s per-CN output (sections split by @@ lines)."""
    index, config, running, names = (out.split('@@\n') + ['', '', '', ''])[:4]
    state = index.split(':')[1] if index.count(':') >= 2 else None
    autoboot = hidden = None
    if config.strip():
        root = ET.fromstring(config)
        autoboot = root.get('autoboot') == 'true'
        hidden = any(a.get('name') == 'do-not-inventory' and a.get('value') == 'true'
                     for a in root.iter('attr'))
    mine = re.compile(r'^zones/(%s(-disk\d+)?|cores/%s)(/[^@]*)?(@.*)?$' % (uuid, uuid))
    found = [n for n in names.split() if mine.match(n)]
    return {'zone_state': state, 'running': bool(running.strip()), 'autoboot': autoboot,
            'hidden': bool(hidden), 'datasets': [n for n in found if '@' not in n],
            'snapshots': [n for n in found if '@' in n]}


def _read_json_lines(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def _run(argv):
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


def _write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.rename(tmp, path)


def _skip_ws(text, pos):
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _sh_quote(s):
    import shlex
    return shlex.quote(s)


# ---------------------------------------------------------------- CLI

def cli_up(args):
    lab = Lab(args.dir, cns=args.cns, ssh_port=args.ssh_port, data_mb=args.data_mb,
              seed=not args.no_seed, key_type=args.key_type,
              accept_ssh_rsa=True if args.accept_ssh_rsa else None)
    lab.pdeathsig = False
    lab.up()
    print('lab up in %.1fs: %d CNs, %d VMs, APIs %s' % (
        lab.timings['up'], len(lab.cns), len(lab.vms), ' '.join(sorted(lab.api_urls.values()))))
    print('state: %s' % os.path.join(lab.workdir, 'lab.json'))


def cli_down(args):
    t0 = time.monotonic()
    Lab.load(args.dir).down()
    print('lab down in %.1fs' % (time.monotonic() - t0))


def cli_status(args):
    lab = Lab.load(args.dir)
    for cn in lab.cns:
        alive = 'up' if cn.pid and pid_alive(cn.pid) else 'DOWN'
        print('%s %s %s %s' % (cn.hostname, cn.ip, cn.uuid, alive))
        if alive == 'up':
            out = lab.cn_run(cn, 'vmadm list -p -o uuid,state,brand,alias', check=False)
            for line in out.stdout.splitlines():
                print('    ' + line)
    print('apis: %s' % json.dumps(lab.api_urls))


def cli_exec(args):
    lab = Lab.load(args.dir)
    p = lab.cn_run(lab.cns[args.cn - 1], ' '.join(args.cmd), check=False)
    sys.stdout.write(p.stdout)
    sys.stderr.write(p.stderr)
    return p.returncode


def cli_config(args):
    print(json.dumps(Lab.load(args.dir).migd_config(args.migd_dir or args.dir), indent=2))


def main(argv=None):
    ap = argparse.ArgumentParser(description='migd test lab (see docs/lab.md)')
    sub = ap.add_subparsers(dest='command', required=True)
    p = sub.add_parser('up', help='start a lab in DIR and leave it running')
    p.add_argument('dir')
    p.add_argument('--cns', type=int, default=3)
    p.add_argument('--data-mb', type=float, default=4)
    p.add_argument('--ssh-port', type=int, default=22)
    p.add_argument('--no-seed', action='store_true', help='reuse DIR\'s pools and dc.json')
    p.add_argument('--key-type', choices=sorted(KEY_TYPES), default='ed25519',
                   help='the head node identity (default ed25519)')
    p.add_argument('--accept-ssh-rsa', action='store_true',
                   help='let sshd accept SHA-1 RSA signatures (default: only with --key-type rsa)')
    p.set_defaults(func=cli_up)
    for name, func, help_ in (('down', cli_down, 'stop the lab in DIR'),
                              ('status', cli_status, 'CNs and their VMs')):
        p = sub.add_parser(name, help=help_)
        p.add_argument('dir')
        p.set_defaults(func=func)
    p = sub.add_parser('exec', help='run a shell command in CN number N')
    p.add_argument('dir')
    p.add_argument('cn', type=int)
    p.add_argument('cmd', nargs=argparse.REMAINDER)
    p.set_defaults(func=cli_exec)
    p = sub.add_parser('config', help='print a migd config for this lab')
    p.add_argument('dir')
    p.add_argument('--migd-dir', help='where migd keeps its db and socket (default: DIR)')
    p.set_defaults(func=cli_config)
    args = ap.parse_args(argv)
    try:
        return args.func(args) or 0
    except LabError as e:
        sys.stderr.write('lab: %s\n' % e)
        return 1


if __name__ == '__main__':
    sys.exit(main())
