#!/usr/bin/env python3
"""Where a relay's time goes: a perf profile of the transport alone.

Brings up a 2-CN lab on its own SSH port and runs relay_bench (the same
mig_ssh_relay code migd uses) moving `head -c SIZE /dev/zero` from cn1 into
`cat > /dev/null` on cn2, under `perf record -a --call-graph dwarf`
(every CPU; the stacks unwound from .eh_frame, since Debian's libssh2 and
libcrypto keep no frame pointers), so that the CNs' sshd and the head node's relay are seen together:
on the lab they share the machine's cores, as they do not in a datacenter.

Prints the relay's rate, then three tables:
  - CPU by process (the relay, each sshd, head, cat, the rest);
  - the relay's own CPU by concern (decrypting and encrypting, MACs, the
    kernel's socket work, copying, libuv, migd's own code);
  - the relay's hottest leaf functions;
  - the relay's CPU by path: the named frames of migd, libuv and libssh2
    from the loop down (a flame graph in text; the rest of a stack is
    libcrypto's unnamed assembler or the kernel);
and writes the relay's folded stacks (`a;b;c COUNT`, the input of any
flame graph tool) to WORK/relay.folded.  Run as root from a build directory:
tests/bench/profile_relay.py BUILD_DIR [SIZE_MB] (default 1024).
"""
import collections
import os
import re
import subprocess
import sys

from benchlab import build_dir, lab_up

PORT = 2236
SIZE_MB = int(sys.argv[2]) if len(sys.argv) > 2 else 1024

# The relay's frames by concern: the first pattern that matches a leaf wins.
CONCERNS = [
    ('cipher', re.compile(r'aes|gcm|chacha|poly1305|EVP_(Encrypt|Decrypt|Cipher)|'
                          r'_gcry_cipher|ossl_.*cipher|ctr128', re.I)),
    ('mac', re.compile(r'hmac|sha(1|256|512)|_gcry_md|umac|EVP_Digest', re.I)),
    ('copy', re.compile(r'memcpy|memmove|copy_user|copy_to_user|copy_from_user|rep_movs', re.I)),
    ('kernel net', re.compile(r'tcp_|ip_|skb|sock|__sys_(send|recv)|inet_|loopback|net_|'
                              r'__netif|dev_queue', re.I)),
    ('kernel other', re.compile(r'^\[kernel|entry_SYSCALL|syscall|do_syscall|schedule|'
                                r'futex|epoll|ep_poll|__x64_|_raw_spin|finish_task', re.I)),
    ('libuv', re.compile(r'^uv_|uv__', re.I)),
    ('libssh2', re.compile(r'libssh2|_libssh2', re.I)),
    ('migd', re.compile(r'^mig_|relay|bucket|pump|chan_|on_tick|ssh_', re.I)),
    ('malloc', re.compile(r'malloc|free|realloc|calloc|_int_', re.I)),
]

# The frames a path shows: migd's, libuv's loop and libssh2's entry points.
NAMED = re.compile(r'^(uv_run|on_|mig_|relay_|pump|chan_|libssh2_channel_)')


def concern(leaf, dso):
    for name, pat in CONCERNS:
        if pat.search(leaf):
            return name
    if 'kernel' in dso:
        return 'kernel other'
    if 'libcrypto' in dso or 'libgcrypt' in dso:
        return 'cipher'
    return 'other (%s)' % os.path.basename(dso.strip('()')) if dso else 'other'


def parse_samples(text):
    """perf script's samples: (comm, [(symbol, dso) leaf first])."""
    samples, head, frames = [], None, []
    for line in text.splitlines() + ['']:
        if not line.strip():
            if head is not None:
                samples.append((head, frames))
            head, frames = None, []
        elif not line[0].isspace():
            head = line.split()[0]
        else:
            parts = line.strip().split(None, 1)
            rest = parts[1] if len(parts) > 1 else '[unknown]'
            m = re.match(r'(.*?)\s+(\([^)]*\))$', rest)
            sym, dso = (m.group(1), m.group(2)) if m else (rest, '')
            sym = re.sub(r'\+0x[0-9a-f]+$', '', sym)
            frames.append((sym, dso))
    return samples


def table(title, counter, total, top=12):
    print(title)
    for name, n in counter.most_common(top):
        print('  %6.1f%%  %s' % (100.0 * n / total, name))


def main():
    build = build_dir()
    work, lab = lab_up('migd-prof-', 2, PORT)
    try:
        cn1, cn2 = lab.cns
        data = os.path.join(work, 'perf.data')
        rb = [os.path.join(build, 'tests', 'relay_bench'), '--identity', lab.identity,
              '--known-hosts', lab.known_hosts, '--port', str(PORT),
              cn1.ip, 'head -c %dM /dev/zero' % SIZE_MB, cn2.ip, 'cat > /dev/null']
        out = subprocess.run(['perf', 'record', '-q', '-a', '--call-graph', 'dwarf,8192',
                              '-F', '199', '-o', data, '--'] + rb,
                             check=True, capture_output=True, text=True).stdout
        print(out.strip().splitlines()[-1])
        text = subprocess.run(['perf', 'script', '-i', data, '-F', 'comm,ip,sym,dso'],
                              check=True, capture_output=True, text=True).stdout
    finally:
        lab.down()
    samples = parse_samples(text)
    by_comm = collections.Counter(c for c, _ in samples)
    table('CPU by process (%d samples on every CPU, idle included):' % len(samples),
          by_comm, len(samples))
    relay = [f for c, f in samples if c.startswith('relay_bench') and f]
    if not relay:
        sys.exit('no sample of relay_bench: is perf allowed here?')
    by_concern = collections.Counter(concern(f[0][0], f[0][1]) for f in relay)
    table('relay_bench by concern (%d samples):' % len(relay), by_concern, len(relay))
    paths = collections.Counter(
        ' > '.join(s for s, _ in reversed(f) if NAMED.match(s)) or '(no named frame)'
        for f in relay)
    table('relay_bench by path:', paths, len(relay), top=10)
    leaves = collections.Counter('%s %s' % f[0] for f in relay)
    table('relay_bench hottest leaves:', leaves, len(relay), top=15)
    folded = collections.Counter(';'.join(s for s, _ in reversed(f)) for f in relay)
    path = os.path.join(work, 'relay.folded')
    with open(path, 'w') as fh:
        for stack, n in folded.most_common():
            fh.write('%s %d\n' % (stack, n))
    print('folded stacks: %s' % path)


if __name__ == '__main__':
    main()
