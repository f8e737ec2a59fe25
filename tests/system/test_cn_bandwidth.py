"""limits.cn_mbps: the bytes per second leaving or entering one CN, shared
by every job on it at that moment (one token bucket per CN in the relay).

Two jobs move two VMs out of cn1 at the same time, one to cn2 and one to
cn3 (so only the source is shared); the sum of their rates, sampled from
the jobs' progress while both send, stays within 10% of the cap, and each
gets a fair share of it.
"""
import re
import time

import pytest

from migd_daemon import running_migd

CAP_MBPS = 40                      # 5 MB/s for the whole of cn1
CAP_BYTES_S = CAP_MBPS * 1000000 / 8
DATA_MB = 40                       # per VM: ~8 s each at half the cap


@pytest.fixture(scope='module')
def migd(lab, build_dir, tmp_path_factory):
    yield from running_migd(lab, build_dir, tmp_path_factory.mktemp('migd'),
                            limits={'max_active_jobs': 4, 'max_jobs_per_cn': 4,
                                    'cn_mbps': CAP_MBPS})


def test_two_jobs_out_of_one_cn_share_its_cap(lab, migd):
    cn1, cn2, cn3 = lab.cns
    web, lx = lab.vms['web0'], lab.vms['lx0']
    for v in (web, lx):
        lab.cn_run(cn1, 'head -c %dM /dev/urandom > /zones/%s/root/bulk.bin && sync'
                   % (DATA_MB, v['uuid']), timeout=300)
    jobs = []
    for v, dst in ((web, cn2), (lx, cn3)):
        args = ['migrate', v['uuid'], dst.hostname]
        if dst is cn3:
            args.insert(1, '-D')  # cn3 runs an older platform
        p = migd.ctl(*args)
        assert p.returncode == 0, p.stderr
        jobs.append(re.search(r'[0-9a-f-]{36}', p.stdout).group(0))

    def sample():
        out = []
        for j in jobs:
            job = migd.job(j)
            out.append((job['state'], job['phase'], job['progress']['bytes_sent']))
        return time.monotonic(), out

    # Samples while both jobs are in their first sync and have bytes moving.
    samples = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        t, s = sample()
        if all(state in ('switched', 'failed', 'rolled_back') for state, _, _ in s):
            break
        if all(phase == 'sync' and sent > 0 for _, phase, sent in s):
            samples.append((t, [sent for _, _, sent in s]))
        time.sleep(0.5)
    for j in jobs:
        assert migd.job(j)['state'] == 'switched', migd.job(j)

    # The longest stretch where both kept sending (each sample grew on both).
    assert len(samples) >= 6, 'both jobs sent together for only %d samples' % len(samples)
    first, last = samples[0], samples[-1]
    for k in range(len(samples) - 1, 0, -1):
        if all(b > a for a, b in zip(samples[k - 1][1], samples[k][1])):
            last = samples[k]
            break
    dt = last[0] - first[0]
    each = [(b - a) / dt for a, b in zip(first[1], last[1])]
    total = sum(each)
    print('\ncap %.1f MB/s; together %.2f MB/s over %.1f s (%.0f%% of the cap); each %s MB/s'
          % (CAP_BYTES_S / 1e6, total / 1e6, dt, 100 * total / CAP_BYTES_S,
             ['%.2f' % (r / 1e6) for r in each]))
    assert total <= CAP_BYTES_S * 1.10, 'the CN cap was exceeded'
    assert total >= CAP_BYTES_S * 0.70, 'the cap was far from used: the buckets starve'
    assert min(each) >= 0.3 * total, 'one job took the share of the other: %s' % each
