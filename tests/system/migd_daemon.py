"""Runs the real migd binary against a lab, and migctl against that migd.

Used by the system tests through their `migd` fixtures (conftest.migd_fixture,
or running_migd and serving themselves).  The daemon's stderr (bunyan JSON)
goes to a file; at a fixture's teardown, serving checks that the daemon
exited 0 on SIGTERM and that no sanitizer reported anything.
"""
import json
import os
import signal
import subprocess
import time


def running_migd(lab, build_dir, workdir, **overrides):
    """Generator for pytest fixtures: a started Migd, then on teardown the
    checks every test module wants (see serving)."""
    yield from serving(Migd(lab, build_dir, workdir, **overrides).start())


def serving(d):
    """Generator for pytest fixtures: the started Migd d, then on teardown the
    checks every test module wants: exit 0 on SIGTERM, no sanitizer report."""
    yield d
    rc = d.stop()
    assert rc == 0, 'migd exited %s on SIGTERM; log:\n%s' % (rc, d.log_text()[-4000:])
    assert d.sanitizer_reports() == []


class Migd:
    def __init__(self, lab, build_dir, workdir, **overrides):
        self.lab = lab
        self.build_dir = str(build_dir)
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.config = lab.migd_config(self.workdir, **overrides)
        self.config_path = os.path.join(self.workdir, 'migd.json')
        self.log_path = os.path.join(self.workdir, 'migd.log')
        self.proc = None

    @property
    def socket(self):
        return self.config['socket']

    def start(self, timeout=20, env=None, argv_prefix=(), wait=True):
        """Starts migd (env: extra environment, e.g. MIGD_CRASH_AT; argv_prefix: a
        wrapper such as valgrind) and, with wait, waits until it answers."""
        with open(self.config_path, 'w') as f:
            json.dump(self.config, f, indent=2)
        self.log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(list(argv_prefix) +
                                     [os.path.join(self.build_dir, 'migd'), '-f', self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     env=dict(os.environ, **(env or {})))
        if not wait:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('migd exited with %d; log:\n%s' % (self.proc.returncode, self.log_text()))
            if os.path.exists(self.socket) and self.ctl('status').returncode == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError('migd did not answer on %s; log:\n%s' % (self.socket, self.log_text()))

    def stop(self, timeout=30):
        """SIGTERM; returns the exit status (the caller asserts it)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def wait_exit(self, timeout):
        """The exit status once migd has exited, or None while it runs."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.log.close()
        return rc

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def sanitizer_reports(self):
        text = self.log_text()
        return [line for line in text.splitlines()
                if 'AddressSanitizer' in line or 'runtime error:' in line
                or 'LeakSanitizer' in line]

    def ctl(self, *args, timeout=600):
        env = dict(os.environ, MIGD_SOCKET=self.socket)
        return subprocess.run([os.path.join(self.build_dir, 'migctl')] + [str(a) for a in args],
                              env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def job(self, uuid):
        p = self.ctl('show', uuid, '-j')
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def jobs(self, *args):
        """Every job (list -a -j prints one JSON object per line)."""
        p = self.ctl('list', '-a', '-j', *args)
        assert p.returncode == 0, p.stderr
        return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
