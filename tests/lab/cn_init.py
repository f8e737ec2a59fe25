#!/usr/bin/python3
"""Init process of one emulated compute node of the migd test lab.

Run as `unshare -m --propagation private python3 cn_init.py --cn-dir D ...`:
inside its private mount namespace it gives the CN its own zfs-fuse
(tmpfs lock/socket/cache dirs, a pool `zones` on a file vdev), its own
/zones, /etc/zones, state dir, root home (/root), /var/tmp and ssh client
configuration, the emulated SmartOS commands on /usr/local/sbin, an OpenSSH
sshd on the CN's loopback address and the CN's vm-agent (vm_agent.py; restarted if it dies, as SMF
would).  It writes CN_DIR/ready when all of that answers.  On SIGTERM it
stops the agent and sshd, exports the pool, stops zfs-fuse and exits; the
namespace and every mount in it vanish with it.  Nothing it mounts is
visible in the host namespace.
"""
import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time

LAB_DIR = os.path.dirname(os.path.abspath(__file__))
CN_BIN = os.path.join(LAB_DIR, 'cn')
VM_AGENT = os.path.join(LAB_DIR, 'vm_agent.py')
ZFS_DIRS = ('/var/lock/zfs', '/var/run/zfs', '/var/lib/zfs', '/zones')
STATE_MOUNT = '/var/lib/lab-cn'
PR_SET_PDEATHSIG = 1


def set_pdeathsig():
    """Die with SIGTERM when our parent dies (prctl survives execve)."""
    libc = ctypes.CDLL('libc.so.6', use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def sh(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def mount_private_dirs(cn_dir):
    for d in ZFS_DIRS:
        os.makedirs(d, exist_ok=True)
        sh('mount', '-t', 'tmpfs', 'tmpfs', d)
    # root's home and /var/tmp are the CN's own: `~/.ssh/authorized_keys`
    # and `/var/tmp/migd-JOB` written on one CN must not appear on another
    binds = ((os.path.join(cn_dir, 'etc-zones'), '/etc/zones'),
             (os.path.join(cn_dir, 'state'), STATE_MOUNT),
             (os.path.join(cn_dir, 'root'), '/root'),
             (os.path.join(cn_dir, 'var-tmp'), '/var/tmp'),
             (CN_BIN, '/usr/local/sbin'))
    for src, dst in binds:
        os.makedirs(src, exist_ok=True)
        os.makedirs(dst, exist_ok=True)
        sh('mount', '--bind', src, dst)
    # the ssh client's configuration on this CN (lab.py writes it: the lab's
    # sshd port for the other CNs), for `ssh root@DST_IP` of a direct transfer
    ssh_config = os.path.join(cn_dir, 'ssh_config')
    if os.path.exists(ssh_config) and os.path.exists('/etc/ssh/ssh_config'):
        sh('mount', '--bind', ssh_config, '/etc/ssh/ssh_config')
    os.makedirs('/run/sshd', exist_ok=True)


def wait_for(pred, what, timeout=20):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError('timed out waiting for ' + what)
        time.sleep(0.05)


def start_zfs(cn_dir, pool_size, log):
    zfsd = subprocess.Popen(['/usr/sbin/zfs-fuse', '--no-daemon'], stdout=log, stderr=log,
                            preexec_fn=set_pdeathsig)
    wait_for(lambda: os.path.exists('/var/run/zfs/zfs_socket'), 'zfs-fuse socket')
    vdev = os.path.join(cn_dir, 'pool.img')
    if os.path.exists(vdev):
        sh('/usr/sbin/zpool', 'import', '-d', cn_dir, 'zones')
    else:
        with open(vdev, 'wb') as f:
            f.truncate(pool_size)
        sh('/usr/sbin/zpool', 'create', '-m', '/zones', 'zones', vdev)
        sh('/usr/sbin/zfs', 'create', 'zones/cores')
    return zfsd


def start_sshd(cn_dir, log):
    conf = os.path.join(cn_dir, 'sshd_config')
    sshd = subprocess.Popen(['/usr/sbin/sshd', '-D', '-e', '-f', conf], stdout=log, stderr=log,
                            preexec_fn=set_pdeathsig)
    return sshd


def start_agent(log):
    return subprocess.Popen(['/usr/bin/python3', VM_AGENT], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log, preexec_fn=set_pdeathsig, cwd='/')


def stop(proc, timeout=10):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def export_pool(log):
    """Best effort: a clean pool file lets `lab.py up --no-seed` import it."""
    try:
        subprocess.run(['/usr/sbin/zpool', 'export', 'zones'], stdout=log, stderr=log,
                       timeout=30)
    except subprocess.TimeoutExpired:
        log.write('cn_init: zpool export timed out\n')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--cn-dir', required=True)
    ap.add_argument('--pool-size', type=int, default=2 << 30)
    ap.add_argument('--pdeathsig', action='store_true')
    args = ap.parse_args()
    if args.pdeathsig:
        set_pdeathsig()
    cn_dir = os.path.abspath(args.cn_dir)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    log = open(os.path.join(cn_dir, 'init.log'), 'a')
    zfsd = sshd = agent = None
    try:
        mount_private_dirs(cn_dir)
        zfsd = start_zfs(cn_dir, args.pool_size, log)
        sshd = start_sshd(cn_dir, log)
        agent = start_agent(log)
        with open(os.path.join(cn_dir, 'ready'), 'w') as f:
            f.write('%d\n' % os.getpid())
        while not stopping and zfsd.poll() is None and sshd.poll() is None:
            if agent.poll() is not None:
                log.write('cn_init: vm-agent exited (%s); restarting it\n' % agent.returncode)
                log.flush()
                agent = start_agent(log)
            time.sleep(0.2)
        if not stopping:
            log.write('cn_init: a child died: zfs-fuse=%s sshd=%s\n' % (zfsd.poll(), sshd.poll()))
    except Exception as e:
        log.write('cn_init: %s\n' % e)
        log.flush()
    finally:
        stop(agent)
        stop(sshd)
        if zfsd is not None and zfsd.poll() is None:
            export_pool(log)
        stop(zfsd)
    return 0


if __name__ == '__main__':
    sys.exit(main())
