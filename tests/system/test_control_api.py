"""The control API under hostile and heavy use (issue 9), through the real
migd against the lab, with raw bytes on its Unix socket: a path or query
that is not UTF-8 is 400 InvalidArgument; every error, h2o's own included
(a malformed request, a body over 64 KiB), is {code, message} JSON and is
logged at info with its rule; 300 parallel submissions against a slow VMAPI
get 503 with Retry-After beyond the queue, while /ping stays quick, migd
keeps descriptors to spare and no VM gets two jobs; a watcher that never
reads does not grow migd's memory; an API that cannot be reached or fails
is 503 naming it; too many connections are answered 503, not starved; a
page of GET /jobs is sent in slices (the bytes of the page in one piece) and
a client that leaves in the middle of one costs nothing.
"""
import json
import os
import re
import socket
import sqlite3
import threading
import time
import uuid as uuidlib

import pytest

import helpers
from migd_daemon import Migd, serving

wait_for = helpers.waiter(300)

# Every lab API client but the CNs' vm-agents (they must keep working).
NOT_AGENTS = '^(?!vm-agent/)'


@pytest.fixture(scope='module')
def migd(lab, build_dir, tmp_path_factory):
    # A long interval keeps an incremental job waiting for finish after its first round;
    # a descriptor limit as common as 1024 makes "fds to spare" mean something.
    d = Migd(lab, build_dir, tmp_path_factory.mktemp('migd'), incremental={'interval_s': 3600})
    # In the ASan build, a small quarantine keeps freed memory from counting as RSS.
    asan = os.environ.get('ASAN_OPTIONS', '')
    d.start(argv_prefix=('prlimit', '--nofile=1024:1024', '--'),
            env={'ASAN_OPTIONS': (asan + ':' if asan else '') + 'quarantine_size_mb=4'})
    yield from serving(d)


# ---- raw HTTP on the socket ------------------------------------------------

class Answer:
    def __init__(self, raw):
        self.raw = raw
        head, _, self.body = raw.partition(b'\r\n\r\n')
        lines = head.split(b'\r\n')
        self.status = int(lines[0].split()[1]) if lines[0].startswith(b'HTTP/1.1 ') else None
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b':')
            self.headers[name.strip().lower().decode()] = value.strip().decode()

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return 'Answer(%r)' % self.raw[:600]


def exchange(sock_path, data, timeout=60, shut=True):
    """Sends data on a new connection and reads until migd closes it."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass  # migd answered before reading it all (a body over the limit)
    out = b''
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except ConnectionResetError:
        pass  # closed with our unread bytes in its queue: the answer came first
    s.close()
    return Answer(out)


def request(method, path, body=None, headers=()):
    """The bytes of one HTTP/1.1 request; path is bytes, sent as they are."""
    head = [method.encode() + b' ' + path + b' HTTP/1.1', b'Host: migd']
    head += [h.encode() for h in headers]
    if body is not None:
        head.append(b'Content-Length: %d' % len(body))
    return b'\r\n'.join(head) + b'\r\n\r\n' + (body or b'')


def call(migd, method, path, body=None, headers=(), timeout=60):
    if isinstance(path, str):
        path = path.encode()
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    return exchange(migd.socket, request(method, path, body, headers), timeout)


def assert_error(ans, status, code, message):
    """ans is exactly {code, message} JSON with that status (message: str or regex)."""
    assert ans.status == status, ans
    assert ans.headers.get('content-type') == 'application/json', ans
    assert ans.headers.get('connection') == 'close', ans
    got = ans.json()
    assert sorted(got) == ['code', 'message'], got
    assert got['code'] == code, got
    if isinstance(message, str):
        assert got['message'] == message, got
    else:
        assert message.fullmatch(got['message']), got
    return got


def log_records(migd):
    out = []
    for line in migd.log_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def refusal_logged(migd, msg):
    """The bunyan record of a refused request, exactly msg, at info."""
    def find():
        return [r for r in log_records(migd) if r.get('msg') == msg]
    deadline = time.monotonic() + 10
    while not find() and time.monotonic() < deadline:
        time.sleep(0.1)
    recs = find()
    assert recs, 'no log line %r in:\n%s' % (msg, '\n'.join(
        r['msg'] for r in log_records(migd) if 'refused' in r.get('msg', ''))[-3000:])
    assert recs[-1]['level'] == 30, recs[-1]
    return recs[-1]


def fds(pid):
    try:
        return len(os.listdir('/proc/%d/fd' % pid))
    except FileNotFoundError:
        return 0


def fd_limit(pid):
    for line in open('/proc/%d/limits' % pid):
        if line.startswith('Max open files'):
            return int(line.split()[3])
    raise AssertionError('no Max open files in /proc/%d/limits' % pid)


def rss_kib(pid):
    for line in open('/proc/%d/status' % pid):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
    raise AssertionError('no VmRSS')


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def clear_api_faults(lab, name):
    lab._admin('POST', '/__lab/faults/clear', None, name)


# ---- 1. UTF-8 ----------------------------------------------------------------

@pytest.mark.parametrize('path', [b'/jobs/\xff\xfe', b'/jobs/%ff%fe', b'/ping\xc3', b'/%ed%a0%80'])
def test_path_that_is_not_utf8_is_400_json(migd, path):
    ans = call(migd, 'GET', path)
    assert_error(ans, 400, 'InvalidArgument', 'the path is not valid UTF-8')


@pytest.mark.parametrize('query', [b'state=%ff', b'state=\xff\xfe', b'vm_uuid=%c3%28',
                                   b'%f0%28%8c%bc=1'])
def test_query_that_is_not_utf8_is_400_json(migd, query):
    for path in (b'/jobs?', b'/ping?'):
        ans = call(migd, 'GET', path + query)
        assert_error(ans, 400, 'InvalidArgument', 'the query string is not valid UTF-8')


def test_utf8_is_echoed_as_utf8(migd):
    ans = call(migd, 'GET', '/jobs/caf%C3%A9')
    assert_error(ans, 400, 'InvalidArgument', '"caf\u00e9" is not a job UUID')
    ans = call(migd, 'GET', '/jobs?st%C3%A4te=1')
    assert_error(ans, 400, 'InvalidArgument', 'unknown query parameter "st\u00e4te"')


def test_a_nul_byte_is_400(migd):
    assert_error(call(migd, 'GET', '/ping%00x'), 400, 'InvalidArgument',
                 'the path holds a NUL byte')


# ---- h2o's own answers, as JSON ----------------------------------------------

def test_body_over_64k_is_413_json_and_creates_nothing(migd):
    before = migd.jobs()
    big = json.dumps({'vm_uuid': 'x' * 70000}).encode()
    ans = call(migd, 'POST', '/jobs', big, ['Content-Type: application/json'])
    assert_error(ans, 413, 'RequestEntityTooLarge', 'the body is larger than 65536 bytes (64 KiB)')
    # The same as a chunked body: h2o finds out as it reads.
    chunks = b''.join(b'%x\r\n%s\r\n' % (8192, b' ' * 8192) for _ in range(10)) + b'0\r\n\r\n'
    ans = exchange(migd.socket, request('POST', b'/jobs', None,
                                        ['Transfer-Encoding: chunked']) + chunks)
    assert_error(ans, 413, 'RequestEntityTooLarge', 'the body is larger than 65536 bytes (64 KiB)')
    assert migd.jobs() == before
    refusal_logged(migd, 'request refused: POST /jobs: 413 RequestEntityTooLarge: '
                         'the body is larger than 65536 bytes (64 KiB)')


@pytest.mark.parametrize('raw,message', [
    (b'GARBAGE\x01 / HTTP/1.1\r\n\r\n', 'malformed request: not an HTTP/1.x request head'),
    (b'GET /ping HTTP/1.1\r\nHost: migd\r\nno colon here\r\n\r\n',
     'malformed request: not an HTTP/1.x request head'),
    (b'GET /ping HTTP/9.9\r\n\r\n', 'malformed request: not an HTTP/1.x request head'),
    (b'GET /ping HTTP/1.1\r\nX-Big: ' + b'a' * 500000 + b'\r\n\r\n',
     'malformed request: the request head is longer than 417792 bytes'),
    (b'POST /jobs HTTP/1.1\r\nHost: migd\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
     'malformed request: broken chunked-encoding'),
    (b'POST /jobs HTTP/1.1\r\nHost: migd\r\nContent-Length: -3\r\n\r\n',
     'malformed request: broken content-length header'),
    (b'POST /jobs HTTP/1.1\r\nHost: migd\r\nTransfer-Encoding: gzip\r\n\r\n',
     'malformed request: unknown transfer-encoding'),
], ids=['garbage', 'header-without-colon', 'http-9.9', 'head-over-417792-bytes',
        'broken-chunks', 'negative-content-length', 'gzip-transfer-encoding'])
def test_malformed_http_is_400_json(migd, raw, message):
    assert_error(exchange(migd.socket, raw), 400, 'BadRequest', message)


def test_other_errors_of_every_path_are_json(migd):
    ans = call(migd, 'GET', '/nothing/here')
    assert_error(ans, 404, 'ResourceNotFound', '/nothing/here does not exist')
    ans = call(migd, 'DELETE', '/ping')
    assert_error(ans, 405, 'BadMethod', 'DELETE is not allowed on /ping (allowed: GET, HEAD)')
    assert ans.headers['allow'] == 'GET, HEAD'
    ans = call(migd, 'POST', '/jobs', b'{}', ['Expect: teapot'])
    assert_error(ans, 417, 'ExpectationFailed', 'unknown expectation')
    ans = call(migd, 'POST', '/jobs', b'{"vm_uuid": ')
    assert_error(ans, 400, 'InvalidContent', re.compile(r'the body must be a JSON object: .+'))


def test_one_request_per_connection(migd):
    """A second request on the connection is never read (every head is checked first)."""
    ans = exchange(migd.socket, request('GET', b'/ping') + b'GARBAGE\x01\r\n\r\n')
    assert ans.status == 200 and ans.headers['connection'] == 'close', ans
    assert ans.body.count(b'HTTP/1.1') == 0, ans


def test_refusals_are_logged_at_info_with_the_rule(migd, lab):
    call(migd, 'GET', b'/jobs?state=%ff')
    refusal_logged(migd, 'request refused: GET /jobs?state=%ff: 400 InvalidArgument: '
                         'the query string is not valid UTF-8')
    call(migd, 'GET', b'/jobs/\xff')
    refusal_logged(migd, 'request refused: GET /jobs/%FF: 400 InvalidArgument: '
                         'the path is not valid UTF-8')
    exchange(migd.socket, b'GARBAGE\x01 / HTTP/1.1\r\n\r\n')
    refusal_logged(migd, 'request refused: - -: 400 BadRequest: '
                         'malformed request: not an HTTP/1.x request head')
    v = lab.vms['core0']
    ans = call(migd, 'POST', '/jobs', {'vm_uuid': v['uuid'], 'target': 'cn2'})
    got = assert_error(ans, 409, 'CoreZone', re.compile('.+'))
    refusal_logged(migd, 'request refused: POST /jobs: 409 CoreZone: ' + got['message'])


# ---- 2. bounded submissions ----------------------------------------------------

def test_300_parallel_submissions_against_a_slow_vmapi(migd, lab):
    v = lab.vms['stopped0']
    jobs_before = migd.jobs()
    pid = migd.proc.pid
    limit = fd_limit(pid)
    fds_idle = fds(pid)
    lab.api_fault('vmapi', 'GET', '^/vms/', 0, count=-1, delay_s=2, user_agent=NOT_AGENTS)
    answers = [None] * 300
    pings, peak = [], [fds_idle]
    done = threading.Event()
    body = json.dumps({'vm_uuid': v['uuid'], 'target': 'cn2', 'mode': 'incremental'}).encode()

    def submit(i):
        answers[i] = exchange(migd.socket, request('POST', b'/jobs', body), timeout=600)

    def ping():
        while not done.is_set():
            t = time.monotonic()
            ans = exchange(migd.socket, request('GET', b'/ping'), timeout=30)
            pings.append((time.monotonic() - t, ans.status))
            time.sleep(0.02)

    def sample():
        while not done.is_set():
            peak.append(fds(pid))
            time.sleep(0.02)

    watchers = [threading.Thread(target=ping), threading.Thread(target=sample)]
    for t in watchers:
        t.start()
    try:
        time.sleep(0.3)
        threads = [threading.Thread(target=submit, args=(i,)) for i in range(300)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
    finally:
        done.set()
        for t in watchers:
            t.join()
        clear_api_faults(lab, 'vmapi')

    statuses = {}
    for a in answers:
        statuses[a.status] = statuses.get(a.status, 0) + 1
    assert set(statuses) <= {201, 409, 503}, statuses
    # 16 checked at once and 64 waiting: the rest are told to come back.
    busy = [a for a in answers if a.status == 503]
    assert len(busy) >= 300 - 16 - 64 - 5, statuses
    for a in busy:
        got = assert_error(a, 503, 'ServiceUnavailable', re.compile(
            r'too many submissions at once \(16 being checked, \d+ waiting\); retry in (\d+) s'))
        after = int(a.headers['retry-after'])
        assert 1 <= after <= 60 and got['message'].endswith('retry in %d s' % after), a
    # One job for the VM, whoever came first; the others are told it is busy.
    created = [a.json() for a in answers if a.status == 201]
    assert len(created) == 1, statuses
    for a in answers:
        if a.status == 409:
            assert_error(a, 409, 'VmAlreadyMigrating', re.compile(
                r'VM %s already has unfinished job %s.*' % (v['uuid'], created[0]['uuid'])))
    jobs_after = migd.jobs()
    new = [j for j in jobs_after if j['uuid'] not in {k['uuid'] for k in jobs_before}]
    assert [j['uuid'] for j in new] == [created[0]['uuid']], new
    # /ping kept answering at once, and descriptors were never short.
    lat = [t for t, _ in pings]
    assert pings and all(s == 200 for _, s in pings), pings[:20]
    print('ping during 300 submissions: n=%d p50=%.1f ms p99=%.1f ms max=%.1f ms; '
          'fds idle=%d peak=%d limit=%d; answers %s' % (
              len(lat), percentile(lat, 50) * 1000, percentile(lat, 99) * 1000,
              max(lat) * 1000, fds_idle, max(peak), limit, statuses))
    assert percentile(lat, 99) < 0.25, sorted(lat)[-10:]
    assert max(peak) < limit * 3 // 4, (max(peak), limit)
    # The job goes on as any other: abort it and let it end.
    p = migd.ctl('abort', created[0]['uuid'])
    assert p.returncode == 0, p.stderr
    wait_for(lambda: migd.job(created[0]['uuid'])['state'] in ('aborted', 'rolled_back',
                                                                'failed'), 'the abort')


def test_too_many_connections_are_answered_503(lab, build_dir, tmp_path):
    """With 64 descriptors migd takes 32 connections; the next ones get a JSON 503."""
    d = Migd(lab, build_dir, tmp_path / 'migd').start(argv_prefix=('prlimit', '--nofile=64:64',
                                                                    '--'))
    held = []
    try:
        for _ in range(32):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.socket)
            held.append(s)
        time.sleep(0.5)
        ans = exchange(d.socket, request('GET', b'/ping'))
        assert_error(ans, 503, 'ServiceUnavailable', 'too many connections (32); retry in 1 s')
        assert ans.headers['retry-after'] == '1'
        for s in held:
            s.close()
        held = []
        ans = wait_for(lambda: (lambda a: a if a.status == 200 else None)(
            exchange(d.socket, request('GET', b'/ping'))), 'a connection again', 30)
        assert ans.json()['pid'] == d.proc.pid
    finally:
        for s in held:
            s.close()
        assert d.stop() == 0
        assert d.sanitizer_reports() == []


# ---- 3. a watcher that does not read ------------------------------------------

def test_watchers_that_never_read_keep_rss_bounded(migd, lab):
    """100 watchers that never read a job whose progress changes 4 times a second for a
    minute: migd keeps at most one line per watcher, so its memory does not follow."""
    v = lab.vms['web0']
    src = next(cn for cn in lab.cns
               if lab.vm_placement(v['uuid'])[cn.n]['zone_state'] == 'installed'
               and not lab.vm_placement(v['uuid'])[cn.n]['hidden'])
    dst = lab.cns[1] if src.n == 1 else lab.cns[0]
    lab.cn_run(src, 'head -c 60M /dev/urandom > /zones/%s/root/watch.bin && sync' % v['uuid'],
               timeout=300)
    lab.cn_throttle(src, 'zfs', args=r'^send', bytes_per_s=1 << 20)
    try:
        ans = call(migd, 'POST', '/jobs', {'vm_uuid': v['uuid'], 'target': dst.hostname})
        assert ans.status == 201, ans
        job = ans.json()['uuid']
        wait_for(lambda: migd.job(job)['progress']['bytes_sent'] > 0, 'the send to start')
        pid = migd.proc.pid
        # One watcher that reads counts what the others are sent.
        lines, reader_done = [], threading.Event()

        def read_all():
            ans = exchange(migd.socket, request('GET', b'/jobs/%s/watch' % job.encode()),
                           timeout=None, shut=False)
            lines.extend(l for l in ans.raw.split(b'\n') if l.startswith(b'{'))
            reader_done.set()

        reader = threading.Thread(target=read_all)
        reader.start()
        silent = []
        for _ in range(100):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(migd.socket)
            s.sendall(request('GET', b'/jobs/%s/watch' % job.encode()))
            silent.append(s)
        time.sleep(2)
        before = rss_kib(pid)
        final = wait_for(lambda: (lambda j: j if j['state'] not in ('queued', 'running')
                                  else None)(migd.job(job)), 'the job to end', 600)
        reader.join(60)
        after = rss_kib(pid)
        sent = sum(len(l) + 1 for l in lines)
        print('watchers: %d lines (%d KiB) to each of 100 silent watchers; RSS %d -> %d KiB '
              '(+%d KiB)' % (len(lines), sent // 1024, before, after, after - before))
        assert final['state'] == 'switched', final
        # Without a bound, the 100 silent watchers would hold what the kernel could not take.
        # The kernel takes about 100 lines per socket; an unbounded buffer held the rest of
        # 280 lines in each watcher (+19 MB measured before the bound, +0.4 MB after).
        assert len(lines) >= 200, len(lines)
        assert after - before < 8 * 1024, (before, after)
        for s in silent:
            s.close()
    finally:
        lab.cn_faults_clear(src)
        lab.cn_run(src, 'rm -f /zones/%s/root/watch.bin' % v['uuid'], check=False)


# ---- 4. an API that cannot be reached ------------------------------------------

def test_unreachable_vmapi_is_503_naming_vmapi(lab, build_dir, tmp_path):
    v = lab.vms['web0']
    d = Migd(lab, build_dir, tmp_path / 'migd',
             apis=dict(lab.api_urls, vmapi='http://127.0.0.1:1')).start()
    try:
        ans = call(d, 'POST', '/jobs', {'vm_uuid': v['uuid'], 'target': 'cn2'}, timeout=120)
        got = assert_error(ans, 503, 'ServiceUnavailable', re.compile(
            r'VMAPI is unavailable \(VmapiError\): cannot read VM %s from VMAPI: GET '
            r'http://127\.0\.0\.1:1/vms/%s: .+' % (v['uuid'], v['uuid'])))
        assert d.jobs() == []
        refusal_logged(d, 'request refused: POST /jobs: 503 ServiceUnavailable: ' + got['message'])
    finally:
        assert d.stop() == 0
        assert d.sanitizer_reports() == []


def submit_under_api_fault(migd, lab, v, api, path, status, count):
    """POST /jobs for VM v to cn2 while api answers migd's GETs of path (a
    regex) with status, count times (-1: every time); the answer."""
    lab.api_fault(api, 'GET', path, status, count=count, user_agent=NOT_AGENTS)
    try:
        return call(migd, 'POST', '/jobs', {'vm_uuid': v['uuid'], 'target': 'cn2'}, timeout=120)
    finally:
        clear_api_faults(lab, api)


def test_api_answering_5xx_is_503_naming_it_and_4xx_stays_409(migd, lab):
    v = lab.vms['lx0']
    before = migd.jobs()
    ans = submit_under_api_fault(migd, lab, v, 'cnapi', '^/servers', 503, -1)
    assert_error(ans, 503, 'ServiceUnavailable', re.compile(
        r'CNAPI is unavailable \(CnapiError\): cannot list servers from CNAPI: HTTP 503 '
        r'ServiceUnavailableError: injected fault.*'))
    ans = submit_under_api_fault(migd, lab, v, 'vmapi', '^/vms/', 500, -1)
    assert_error(ans, 503, 'ServiceUnavailable', re.compile(
        r'VMAPI is unavailable \(VmapiError\): cannot read VM %s from VMAPI: HTTP 500 .*' % v['uuid']))
    # An API's considered answer (a 4xx) is a refusal by its rule, as before.
    ans = submit_under_api_fault(migd, lab, v, 'vmapi', '^/vms/', 400, 1)
    assert_error(ans, 409, 'VmapiError', re.compile(
        r'cannot read VM %s from VMAPI: HTTP 400 InjectedFault: injected fault' % v['uuid']))
    assert migd.jobs() == before


# ---- GET /jobs in slices ---------------------------------------------------

def dechunk(body):
    """The payload of a chunked body, and its number of chunks; fails on a cut one."""
    out, n = b'', 0
    while True:
        size_line, sep, body = body.partition(b'\r\n')
        assert sep, 'a chunked body cut short'
        size = int(size_line.split(b';')[0], 16)
        if size == 0:
            assert body == b'\r\n', body[:100]
            return out, n
        out += body[:size]
        assert body[size:size + 2] == b'\r\n', body[size:size + 10]
        body = body[size + 2:]
        n += 1


def test_a_page_of_jobs_goes_in_slices_and_a_client_may_leave(lab, build_dir, tmp_path):
    d = Migd(lab, build_dir, tmp_path / 'pages').start()
    assert d.stop() == 0
    db = sqlite3.connect(d.config['db'])
    made = []
    for n in range(350):
        u, vm = str(uuidlib.uuid4()), str(uuidlib.uuid4())
        rec = {'uuid': u, 'vm_uuid': vm, 'vm_alias': 'vm%d' % n, 'state': 'succeeded',
               'phase': 'cleanup', 'mode': 'full', 'brand': 'joyent', 'created_ms': 1000 + n,
               'source_hostname': 'cn1', 'target_hostname': 'cn2', 'transfer': 'relay',
               'progress': {'bytes_sent': n, 'bytes_total': 350}}
        db.execute('INSERT INTO jobs (uuid, vm_uuid, state, phase, mode, created, updated, record)'
                   ' VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                   (u, vm, 'succeeded', 'cleanup', 'full', 1000 + n, 1000 + n, json.dumps(rec)))
        made.append(u)
    # A row that cannot be read, in the middle: listed at the end of the first page.
    bad = str(uuidlib.uuid4())
    db.execute('INSERT INTO jobs (uuid, vm_uuid, state, phase, mode, created, updated, record)'
               ' VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
               (bad, str(uuidlib.uuid4()), 'failed', 'sync', 'full', 1100, 1100, '{not json'))
    db.commit()
    db.close()
    d.start()
    try:
        # The store's order: by creation, then insertion (the bad row after made[100]).
        order = made[:101] + [bad] + made[101:]
        for query, offset, limit in (('all=true', 0, 1000), ('all=true&limit=150', 0, 150),
                                     ('all=true&limit=100', 0, 100),
                                     ('all=true&limit=250&offset=100', 100, 250),
                                     ('all=true&offset=340', 340, 1000),
                                     ('all=true&offset=400', 400, 1000)):
            ans = call(d, 'GET', '/jobs?' + query)
            assert ans.status == 200 and ans.headers['content-type'] == 'application/json', ans
            assert ans.headers.get('transfer-encoding') == 'chunked', ans
            body, chunks = dechunk(ans.body)
            assert body.endswith(b']\n') and b'\n' not in body[:-1], body[-200:]
            page = json.loads(body)
            want = [u for u in order[offset:offset + limit] if u != bad]
            want += [bad] if offset == 0 else []
            assert [j['uuid'] for j in page] == want, query
            if offset == 0:
                assert page[-1]['error']['code'] == 'UnreadableRecord', page[-1]
            # One chunk per slice of at most 100 rows of the store (and at least one).
            rows = min(limit, max(0, len(order) - offset))
            assert max(1, (rows + 99) // 100) <= chunks <= max(1, (rows + 9) // 10), (query, chunks)
            # The bytes of the page in one piece: HEAD says its length.
            head = call(d, 'HEAD', '/jobs?' + query)
            assert head.status == 200 and int(head.headers['content-length']) == len(body), head
        page = json.loads(dechunk(call(d, 'GET', '/jobs?state=failed').body)[0])
        assert [j['uuid'] for j in page] == [bad], page
        # Clients that leave in the middle of a page: migd frees it and answers the next one.
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.socket)
            s.sendall(request('GET', b'/jobs?all=true'))
            assert s.recv(200)
            s.close()
        for _ in range(5):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.socket)
            s.sendall(request('GET', b'/jobs?all=true'))
            s.close()  # before any answer
        ans = call(d, 'GET', '/ping')
        assert ans.status == 200 and ans.json()['jobs']['succeeded'] == 350, ans
        body, _ = dechunk(call(d, 'GET', '/jobs?all=true&limit=1000').body)
        assert len(json.loads(body)) == 351
        # A stop in the middle of pages ends them and exits cleanly.
        held = []
        for _ in range(5):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.socket)
            s.sendall(request('GET', b'/jobs?all=true'))
            held.append(s)
    finally:
        rc = d.stop()
        for s in locals().get('held', []):
            s.close()
    assert rc == 0, d.log_text()[-3000:]
    assert d.sanitizer_reports() == []
