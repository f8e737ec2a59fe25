#!/usr/bin/python3
"""The vm-agent of one emulated compute node of the migd test lab.

cn_init.py runs it inside the CN's mount namespace for the CN's whole life,
as SmartOS runs Triton's sdc-vm-agent (lib/vm-agent.js): it keeps VMAPI
told about the zones on this CN, without being asked.

  * Start (and `svcadm restart vm-agent`, which touches agent.resync):
    GET /vms?server_uuid=THIS_CN&state=active, then PUT /vms/:uuid for every
    zone whose `vmadm get` differs from VMAPI's object, and PUT VMAPI's own
    object with state and zone_state "destroyed" for every VM VMAPI places
    here that this CN does not have.  Zones with the do-not-inventory attr
    count as absent (sdc-vm-agent initialUpdate()).
  * Then, every POLL_S: when the zone index, a zone XML, the running state,
    sysinfo or a zone's config files changed (and every PERIODIC_S anyway,
    for ZFS properties), PUT each non-hidden zone whose object differs from
    what was last reported; a zone last seen unhidden that is gone is PUT
    as VMAPI last heard of it with state/zone_state "destroyed"; a zone that
    becomes hidden is no longer reported, and its deletion is not reported
    (sdc-vm-agent updateVmapiVm(), knownDniVms).
  * Every pass it also carries out the zone self-restarts a test asked for
    (smartos.apply_due_restarts(); see "Zone health" in docs/lab.md): this
    process lives as long as the CN, as zoneadmd does for a zone.
  * A failed PUT or GET (VMAPI down, slow, 5xx) is retried on a later pass,
    after 0.5 s doubling up to 4 s (sdc-vm-agent: up to 30 s); the agent
    never exits because of VMAPI.

Every PUT is logged as one JSON line in /var/lib/lab-cn/agent.log
(smartos.vmapi_put()); /var/lib/lab-cn/agent.json says whether the agent
has synced with the current VMAPI (Lab.up() waits for that).
"""
import json
import os
import signal
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cn'))
import smartos  # noqa: E402

POLL_S = 0.25
PERIODIC_S = 2.0
GET_TIMEOUT_S = 5
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 4.0  # sdc-vm-agent: 0.5 s doubling to 30 s


def load_zones():
    """({uuid: vmadm-get object} of visible zones, {uuids of hidden zones}),
    with every zone's quota and refquota from one `zfs get`."""
    zones = list(smartos.indexed_zones())
    datasets = [zone.props.get('zonepath', '/zones/' + zone.name).lstrip('/')
                for _, zone in zones]
    quotas = {}
    if datasets:
        p = smartos.run([smartos.REAL_ZFS, 'get', '-H', '-p', '-o', 'name,property,value',
                         'quota,refquota'] + datasets)
        for line in p.stdout.splitlines():
            name, prop, value = (line.split('\t') + ['', ''])[:3]
            quotas[(name, prop)] = int(value) if value.isdigit() else 0
    visible, hidden = {}, set()
    for _, zone in zones:
        if smartos.is_hidden(zone):
            hidden.add(zone.name)
        else:
            visible[zone.name] = smartos.vm_object(zone, quotas)
    return visible, hidden


def stat_key(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def fingerprint():
    """Cheap to compute, and changes whenever a zone's `vmadm get` may have
    (except ZFS properties, which the periodic pass catches)."""
    keys = [stat_key(smartos.state_path('sysinfo.json'))]
    for d in (smartos.ZONES_DIR, smartos.state_path('running')):
        try:
            names = sorted(os.listdir(d))
        except OSError:
            names = []
        keys += [(n, stat_key(os.path.join(d, n))) for n in names]
    for _, _, zonepath, _ in smartos.read_index():
        keys += [stat_key(os.path.join(zonepath, 'config', n))
                 for n in ('tags.json', 'metadata.json')]
    return tuple(keys)


class Agent:
    """What this CN last told VMAPI, and what it has seen."""

    def __init__(self):
        self.synced_url = None  # VMAPI this agent has synced with
        self.reported = {}      # uuid -> object VMAPI has from us (or had already)
        self.seen = {}          # uuid -> last object of a visible zone
        self.hidden = set()
        self.last_key = None
        self.last_full = 0.0
        self.failures = 0
        self.retry_at = 0.0

    def write_status(self, url):
        smartos.write_atomic(smartos.state_path('agent.json'), json.dumps(
            {'pid': os.getpid(), 'synced': self.synced_url is not None, 'vmapi_url': url}))

    def one_pass(self):
        url = smartos.vmapi_url()
        if not url:
            return
        if os.path.exists(smartos.state_path('agent.resync')):
            os.unlink(smartos.state_path('agent.resync'))
            self.synced_url, self.retry_at = None, 0.0
        if self.synced_url != url:
            self.synced_url = None
            self.write_status(url)
        now = time.monotonic()
        key = fingerprint()
        if now < self.retry_at or (self.synced_url and key == self.last_key
                                   and now - self.last_full < PERIODIC_S):
            return
        self.last_full = now
        visible, hidden = load_zones()
        done = self.sync(url, visible, hidden) if not self.synced_url else \
            self.report(url, visible, hidden)
        # a failure leaves last_key stale, so a later pass tries again
        self.last_key = key if done else None
        self.failures = 0 if done else self.failures + 1
        self.retry_at = 0.0 if done else now + min(
            RETRY_MAX_S, RETRY_FIRST_S * 2 ** (self.failures - 1))

    def sync(self, url, visible, hidden):
        """A starting agent: make VMAPI's view of this CN match the CN."""
        query = urllib.parse.urlencode({'server_uuid': smartos.sysinfo().get('UUID'),
                                        'state': 'active'})
        req = urllib.request.Request('%s/vms?%s' % (url, query), headers={
            'User-Agent': smartos.AGENT_USER_AGENT % smartos.sysinfo().get('UUID')})
        try:
            with urllib.request.urlopen(req, timeout=GET_TIMEOUT_S) as resp:
                known = {vm['uuid']: vm for vm in json.load(resp)}
        except Exception:  # VMAPI down or failing: try again next pass
            return False
        ok = True
        self.reported, self.seen, self.hidden = {}, dict(visible), set(hidden)
        for uuid, obj in visible.items():
            if known.get(uuid) == obj or smartos.vmapi_put(url, obj, 'vm-agent')[0]:
                self.reported[uuid] = obj
            else:
                ok = False
        for uuid, vm in known.items():
            if uuid not in visible:
                ok = smartos.vmapi_put(url, destroyed(vm), 'vm-agent')[0] and ok
        if ok:
            self.synced_url = url
            self.write_status(url)
        return ok

    def report(self, url, visible, hidden):
        """A running agent: report what changed since the last report."""
        ok = True
        for uuid in hidden:
            self.reported.pop(uuid, None)
            self.seen.pop(uuid, None)
        self.hidden = set(hidden)
        for uuid, obj in visible.items():
            self.seen[uuid] = obj
            if self.reported.get(uuid) != obj:
                if smartos.vmapi_put(url, obj, 'vm-agent')[0]:
                    self.reported[uuid] = obj
                else:
                    ok = False
        for uuid in [u for u in self.seen if u not in visible and u not in hidden]:
            if smartos.vmapi_put(url, destroyed(self.seen[uuid]), 'vm-agent')[0]:
                del self.seen[uuid]
                self.reported.pop(uuid, None)
            else:
                ok = False
        return ok


def destroyed(vm):
    return dict(vm, state='destroyed', zone_state='destroyed')


def main():
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    agent = Agent()
    while not stopping:
        try:
            # the zones' own reboots (zoneadmd's part on SmartOS): a
            # self-restart that fell due happens even if nobody looks
            smartos.apply_due_restarts()
            agent.one_pass()
        except Exception as e:  # never die: log and go on, as SMF would restart it
            sys.stderr.write('vm-agent: %s: %s\n' % (type(e).__name__, e))
            sys.stderr.flush()
        time.sleep(POLL_S)
    return 0


if __name__ == '__main__':
    sys.exit(main())
