#!/usr/bin/python3
"""Emulated SmartOS commands for the migd test lab's compute nodes.

One script, dispatched on the name it is called by (vmadm, zoneadm, zonecfg,
imgadm, sysinfo, svcadm, svcs, the `zfs`/`zpool` fronts that translate illumos
flags for zfs-fuse, and a `sed` front that parses options as illumos' sed).  It follows /work/shared/spec/cn-commands.md and keeps
all state where a SmartOS CN keeps it:

  /etc/zones/index, /etc/zones/UUID.xml   zone configuration (illumos format)
  /zones/UUID/config/{tags,metadata}.json  tags and metadata (in the dataset)
  ZFS properties (quota)                   read from the real zfs-fuse pool
  /var/lib/lab-cn/                         sysinfo.json, running/ (runtime),
                                           imgadm/ manifests, lab.json (CN
                                           settings: image store, VMAPI URL),
                                           agent.log (PUTs to VMAPI),
                                           faults.json (injected faults),
                                           smf-boot.json, zone-restarts.json
                                           (zone health knobs)
  /zones/UUID/root/etc/svc/lab-smf.json    the zone's SMF services not
                                           online (in the dataset)

so `vmadm get` is derived, never stored: copying the zone config and the
datasets to another CN and attaching reproduces the same VM there.  Where
SmartOS is strict, so is this (zonecfg's input modes and refusals, a running
zone's datasets being busy), with the messages of the real sources.
See docs/lab.md for what is emulated, every zfs translation, and the faults
a test can inject (take_fault()).
"""
import base64
import errno
import fcntl
import getopt
import json
import os
import re
import stat
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

ZONES_DIR = os.environ.get('LAB_ZONES_DIR', '/etc/zones')
STATE_DIR = os.environ.get('LAB_CN_STATE', '/var/lib/lab-cn')
REAL_ZFS = '/usr/sbin/zfs'
REAL_ZPOOL = '/usr/sbin/zpool'
POOL = 'zones'
UUID_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
HVM_BRANDS = ('bhyve', 'kvm')
# zonecfg resource type -> XML element (illumos zonecfg.dtd names)
RES_XML = {'net': 'network', 'attr': 'attr', 'device': 'device', 'fs': 'filesystem',
           'dataset': 'dataset', 'capped-memory': 'mcap', 'rctl': 'rctl'}
XML_RES = {v: k for k, v in RES_XML.items()}


class Fail(Exception):
    """A command failure: message for stderr and the exit status."""

    def __init__(self, msg, code=1):
        super().__init__(msg)
        self.code = code


# ---------------------------------------------------------------- helpers

def state_path(*parts):
    return os.path.join(STATE_DIR, *parts)


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def write_atomic(path, text):
    tmp = '%s.tmp.%d' % (path, os.getpid())
    with open(tmp, 'w') as f:
        f.write(text)
    os.rename(tmp, path)


def run(argv, check=False):
    """Run a command, capture text output."""
    p = subprocess.run(argv, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise Fail(p.stderr.strip() or '%s failed' % argv[0], p.returncode)
    return p


def zfs_exists(name):
    return run([REAL_ZFS, 'list', '-H', '-o', 'name', name]).returncode == 0


def zfs_mount(name):
    """Mount a filesystem if it is not mounted (like zoneadm/zone boot)."""
    p = run([REAL_ZFS, 'get', '-H', '-o', 'value', 'mounted', name])
    if p.stdout.strip() == 'no':
        run([REAL_ZFS, 'mount', name])


def sysinfo():
    return read_json(state_path('sysinfo.json'), {})


class CNLock:
    """Serialises commands that change the CN's zone or image state, as the
    real zones framework does; readers need no lock (files change by rename)."""

    def __enter__(self):
        self.f = open(state_path('.lock'), 'a')
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.f.close()


# ---------------------------------------------------------------- zone config model

class Zone:
    """A zone configuration: global properties plus a list of resources.

    A resource is {'type': str, 'props': {k: v}, 'properties': {k: v}};
    'properties' holds `add property (name=..,value=..)` pairs (net-attr in
    XML)."""

    def __init__(self, name):
        self.name = name
        self.props = {}
        self.resources = []

    def attrs(self):
        return {r['props'].get('name'): r['props'].get('value')
                for r in self.resources if r['type'] == 'attr'}

    def of_type(self, rtype):
        return [r for r in self.resources if r['type'] == rtype]

    def set_attr(self, name, value):
        for r in self.of_type('attr'):
            if r['props'].get('name') == name:
                r['props']['value'] = value
                return
        self.resources.append({'type': 'attr', 'properties': {},
                               'props': {'name': name, 'type': 'string', 'value': value}})


def mem_to_bytes(text):
    m = re.match(r'^(\d+(?:\.\d+)?)([kmgt]?)b?$', text.strip().lower())
    if not m:
        raise Fail('zonecfg: invalid memory size: %s' % text)
    mult = {'': 1, 'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30, 't': 1 << 40}[m.group(2)]
    return int(float(m.group(1)) * mult)


def zone_to_xml(zone):
    root = ET.Element('zone', {'name': zone.name})
    for k, v in zone.props.items():
        root.set(k, v)
    for r in zone.resources:
        attrs = dict(r['props'])
        if r['type'] == 'capped-memory' and 'physical' in attrs:
            attrs = {'physcap': str(mem_to_bytes(attrs.pop('physical'))), **attrs}
        el = ET.SubElement(root, RES_XML.get(r['type'], r['type']), attrs)
        for k, v in r['properties'].items():
            ET.SubElement(el, 'net-attr', {'name': k, 'value': v})
    ET.indent(root)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<!DOCTYPE zone PUBLIC "-//Sun Microsystems Inc//DTD Zones//EN" '
            '"file:///usr/share/lib/xml/dtd/zonecfg.dtd.1">\n'
            + ET.tostring(root, encoding='unicode') + '\n')


def zone_from_xml(text):
    root = ET.fromstring(text)
    zone = Zone(root.get('name'))
    zone.props = {k: v for k, v in root.attrib.items() if k != 'name'}
    for el in root:
        rtype = XML_RES.get(el.tag, el.tag)
        props = dict(el.attrib)
        if rtype == 'capped-memory' and 'physcap' in props:
            props = {'physical': '%dm' % (int(props.pop('physcap')) >> 20), **props}
        properties = {c.get('name'): c.get('value') for c in el if c.tag == 'net-attr'}
        zone.resources.append({'type': rtype, 'props': props, 'properties': properties})
    return zone


# ---------------------------------------------------------------- /etc/zones store

def read_index():
    """Return [(name, state, zonepath, uuid)] for the non-global zones."""
    out = []
    try:
        with open(os.path.join(ZONES_DIR, 'index')) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith('#'):
                    continue
                parts = line.split(':')
                if parts[0] == 'global' or len(parts) < 3:
                    continue
                out.append((parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else ''))
    except FileNotFoundError:
        pass
    return out


def write_index(entries):
    lines = ['# DO NOT EDIT: this file is automatically generated by zonecfg(8)',
             'global:installed:/']
    lines += [':'.join(e) for e in entries]
    write_atomic(os.path.join(ZONES_DIR, 'index'), '\n'.join(lines) + '\n')


def zone_state(name):
    for e in read_index():
        if e[0] == name:
            return e[1]
    return None


def set_zone_state(name, state, zonepath=None):
    entries = read_index()
    for i, e in enumerate(entries):
        if e[0] == name:
            entries[i] = (name, state, zonepath or e[2], e[3] or name)
            break
    else:
        entries.append((name, state, zonepath or '/zones/' + name, name))
    write_index(entries)


def indexed_zones():
    """(index entry, Zone) for every zone in the index whose XML is readable."""
    for entry in read_index():
        try:
            zone = load_zone(entry[0])
        except ET.ParseError:
            zone = None
        if zone is not None:
            yield entry, zone


def load_zone(name):
    path = os.path.join(ZONES_DIR, name + '.xml')
    if zone_state(name) is None or not os.path.exists(path):
        return None
    with open(path) as f:
        return zone_from_xml(f.read())


def save_zone(zone):
    write_atomic(os.path.join(ZONES_DIR, zone.name + '.xml'), zone_to_xml(zone))
    if zone_state(zone.name) is None:
        set_zone_state(zone.name, 'configured', zone.props.get('zonepath'))


def delete_zone(name):
    write_index([e for e in read_index() if e[0] != name])
    try:
        os.unlink(os.path.join(ZONES_DIR, name + '.xml'))
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------- runtime state

def running_zones():
    """{uuid: zoneid} of the zones this CN is 'running'."""
    d = state_path('running')
    if not os.path.isdir(d):
        return {}
    out = {}
    for name in os.listdir(d):
        with open(os.path.join(d, name)) as f:
            out[name] = int(f.read().strip() or 0)
    return out


def set_running(name, running):
    d = state_path('running')
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, name)
    if not running:
        if os.path.exists(path):
            os.unlink(path)
        return
    nxt = read_json(state_path('next_zoneid'), 1)
    write_atomic(state_path('next_zoneid'), str(nxt + 1))
    write_atomic(path, str(nxt))


def vm_state(name, index_state):
    if index_state == 'installed':
        return 'running' if name in running_zones() else 'stopped'
    return index_state  # configured, incomplete


# ---------------------------------------------------------------- zonecfg language
#
# Modelled on illumos usr/src/cmd/zonecfg/zonecfg.c.  Input comes in one of
# three modes, as there: subcommands on the command line
# (one_command_at_a_time(): every command runs, even after one failed),
# `-f FILE` (cmd_file(): the first error ends the input, and messages carry
# "On line N of FILE:") and `-f -` or no subcommand at all (stdin, read like
# interactive input: errors do not end it).  At the end (cleanup()): a
# resource scope still open means "Resource incomplete." and nothing is
# saved; otherwise whatever changed is committed even when a command failed,
# and the exit status is 1 (Z_ERR) when anything failed.

class ZonecfgExit(Fail):
    """An error after which illumos zonecfg exits at once (exit(Z_ERR))."""


def split_commands(script):
    """[(line number, command)]: split on newlines and ';' outside double quotes."""
    cmds, cur, quoted, line, first = [], [], False, 1, 1
    for ch in script:
        if ch == '"':
            quoted = not quoted
        if ch in ';\n' and not quoted:
            cmds.append((first, ''.join(cur).strip()))
            cur = []
        else:
            cur.append(ch)
        if ch == '\n':
            line += 1
        if not cur:
            first = line
    cmds.append((first, ''.join(cur).strip()))
    return [(n, c) for n, c in cmds if c and not c.startswith('#')]


def unquote(v):
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] == '"':
        return re.sub(r'\\(.)', r'\1', v[1:-1])
    return v


def quote(v):
    if re.match(r'^[A-Za-z0-9._/:,@+-]*$', v) and v:
        return v
    return '"%s"' % v.replace('\\', '\\\\').replace('"', '\\"')


def parse_pairs(text):
    return {k: unquote(v) for k, v in
            re.findall(r'([\w-]+)=("(?:[^"\\]|\\.)*"|[^,\s)]*)', text)}


def attr_problems(props):
    """end_func()'s checks of an attr resource (zonecfg.c end_check_reqd(),
    validate_attr_name(), validate_attr_type_val()), as its messages."""
    out = ['%s not specified' % k for k in ('name', 'type', 'value') if not props.get(k)]
    name, kind, value = props.get('name', ''), props.get('type', ''), props.get('value', '')
    if not name[:1].isalnum():
        out.append('Invalid attr name %s: must start with an alpha-numeric character.' % name)
    elif not re.match(r'^[A-Za-z0-9.-]*$', name[1:]):
        out.append("Invalid attr name %s: can only contain alpha-numeric characters, "
                   "plus '-' and '.'." % name)
    valid = {'boolean': value in ('true', 'false'), 'int': re.match(r'^-?\d+$', value),
             'uint': re.match(r'^\d+$', value), 'string': True}
    if kind not in valid:
        out.append("invalid attr type '%s'" % kind)
    elif not valid[kind]:
        out.append('invalid attr value for type=%s' % kind)
    return out


class ZonecfgSession:
    """Applies zonecfg subcommands to one zone (None when it does not exist).

    Like illumos, a command's failure is raised as Fail and the caller
    decides whether input goes on; `dirty` is illumos' need_to_commit."""

    def __init__(self, name, zone):
        self.name = name
        self.zone = zone
        self.scope = None  # resource being added/selected
        self.scope_new = False
        self.deleted = False
        self.dirty = False

    def need_zone(self):
        if self.zone is None:
            raise Fail('%s: No such zone configured' % self.name)

    def apply(self, cmd):
        words = cmd.split(None, 1)
        verb, rest = words[0], (words[1] if len(words) > 1 else '')
        handler = getattr(self, 'cmd_' + verb.replace('-', '_'), None)
        if handler is None:
            raise Fail('zonecfg: %s: unknown or unsupported command: %s' % (self.name, cmd))
        handler(rest.strip())

    def scope_usage(self, verb):
        raise Fail('The %s command only makes sense in the %s scope.'
                   % (verb, 'global' if self.scope is not None else 'resource'))

    def cmd_create(self, rest):
        """check_if_zone_already_exists(): an installed zone is never
        recreated; without -F an existing one cannot be (no terminal to ask)."""
        if self.scope is not None:
            self.scope_usage('create')
        if self.zone is not None and not self.deleted:
            if zone_state(self.name) != 'configured':
                # illumos prints this and carries on with the old configuration;
                # every later `add` then collides: the lab stops here instead
                raise ZonecfgExit('Zone %s already installed; create not allowed.' % self.name)
            if '-F' not in rest.split():
                raise ZonecfgExit('Zone exists, input not from terminal and -F not specified:\n'
                                  'create command ignored, exiting.')
            sys.stdout.write('Zone %s already exists; overwriting.\n' % self.name)
        self.zone = Zone(self.name)
        self.zone.props['zonepath'] = '/zones/' + self.name
        self.deleted = False
        self.dirty = True

    def cmd_set(self, rest):
        self.need_zone()
        k, _, v = rest.partition('=')
        target = self.scope['props'] if self.scope else self.zone.props
        target[k.strip()] = unquote(v)
        self.dirty = self.dirty or self.scope is None

    def cmd_clear(self, rest):
        self.need_zone()
        (self.scope['props'] if self.scope else self.zone.props).pop(rest.strip(), None)
        self.dirty = self.dirty or self.scope is None

    def cmd_add(self, rest):
        self.need_zone()
        if self.scope is not None:
            m = re.match(r'^property\s*\((.*)\)$', rest)
            if not m:
                raise Fail('zonecfg: %s: cannot add %s inside a resource' % (self.name, rest))
            pairs = parse_pairs(m.group(1))
            self.scope['properties'][pairs.get('name')] = pairs.get('value', '')
            return
        self.scope = {'type': rest.split()[0], 'props': {}, 'properties': {}}
        self.scope_new = True

    def matching(self, rest):
        rtype, _, sel = rest.partition(' ')
        want = parse_pairs(sel)
        return [r for r in self.zone.of_type(rtype)
                if all(r['props'].get(k) == v for k, v in want.items())]

    def lookup(self, verb, rest):
        """The one resource `rest` names (zonecfg_lookup_*()), or z_cmd_rt_perror()."""
        found = self.matching(rest)
        if len(found) != 1:
            why = 'No such resource with that id' if not found else 'Insufficient specification'
            raise Fail('%s %s: %s' % (verb, rest.split()[0], why))
        return found[0]

    def cmd_select(self, rest):
        self.need_zone()
        if self.scope is not None:
            self.scope_usage('select')
        self.scope, self.scope_new = self.lookup('select', rest), False

    def cmd_remove(self, rest):
        self.need_zone()
        force = rest.startswith('-F')
        rest = re.sub(r'^-F\s+', '', rest)
        if '=' in rest:
            found = [self.lookup('remove', rest)]
        else:
            found = self.matching(rest)
            if not found:
                raise Fail('remove %s: No such resource with that id' % rest.split()[0])
            if len(found) > 1 and not force:
                raise Fail('There are multiple instances of this resource.  Either qualify the '
                           'resource to\nremove a single instance or use the -F option to '
                           'remove all instances.')
        self.zone.resources = [r for r in self.zone.resources if r not in found]
        self.dirty = True

    def cmd_cancel(self, rest):
        if self.scope is None:
            self.scope_usage('cancel')
        self.scope = None

    def cmd_end(self, rest):
        """end_func(): check the resource; an added attr may not repeat a name."""
        if self.scope is None:
            self.scope_usage('end')
        if self.scope['type'] == 'attr':
            problems = attr_problems(self.scope['props'])
            if problems:
                raise Fail('\n'.join(problems))
            name = self.scope['props']['name']
            if self.scope_new and name in self.zone.attrs():
                raise Fail("An attr resource with the name '%s' already exists." % name)
        if self.scope_new:
            self.zone.resources.append(self.scope)
        self.scope = None
        self.dirty = True

    def cmd_delete(self, rest):
        """delete_func() + zonecfg_destroy().  Without -F there is no terminal
        to confirm on.  A zone beyond `installed` (running) is refused as
        illumos does; an installed one is refused by the lab's contract
        (cn-commands.md): illumos itself lets `delete -F` remove it."""
        if '-F' not in rest.split():
            raise ZonecfgExit('Input not from terminal and -F not specified:\n'
                              'delete command ignored, exiting.')
        self.need_zone()
        if self.name in running_zones():
            raise Fail('%s: Zone state is invalid for the requested operation' % self.name)
        if zone_state(self.name) == 'installed':
            raise Fail('Zone %s not in configured state; delete not allowed.' % self.name)
        self.deleted = True
        self.zone = None
        self.dirty = False

    def cmd_commit(self, rest):
        pass

    cmd_verify = cmd_exit = cmd_commit

    def cmd_export(self, rest):
        self.need_zone()
        sys.stdout.write(export_zone(self.zone))

    def run(self, script, mode, source=None):
        """Run a script; commit as cleanup() does; raise Fail with every message."""
        errors = []
        for lineno, cmd in split_commands(script):
            try:
                self.apply(cmd)
            except ZonecfgExit as e:
                raise Fail(where(mode, source, lineno) + str(e))
            except Fail as e:
                errors.append(where(mode, source, lineno) + str(e))
                if mode == 'file':
                    break
        tail = []
        if self.scope is not None:
            if mode == 'file' and errors and self.dirty:
                # the bail-out commits, and verify_func() refuses the open scope
                tail = ['resource specification incomplete', 'Zone %s failed to verify' % self.name,
                        '%s: Insufficient specification' % self.name, 'Configuration not saved.']
            elif not (mode == 'file' and errors):
                tail = ['Resource incomplete.']
        elif self.dirty and self.zone is not None:
            save_zone(self.zone)
        if self.deleted:
            delete_zone(self.name)
        if errors or tail:
            raise Fail('\n'.join(errors + tail))


def where(mode, source, lineno):
    """zerr()'s line prefix in command-file mode."""
    if mode == 'file':
        return 'On line %d of %s:\n' % (lineno, source)
    if mode == 'stdin':
        return 'On line %d:\n' % lineno
    return ''


def export_zone(zone):
    lines = ['create -b']
    for k, v in zone.props.items():
        lines.append('set %s=%s' % (k, quote(v)))
    for r in zone.resources:
        lines.append('add ' + r['type'])
        for k, v in r['props'].items():
            lines.append('set %s=%s' % (k, quote(v)))
        for k, v in r['properties'].items():
            lines.append('add property (name=%s,value="%s")' % (k, v))
        lines.append('end')
    return '\n'.join(lines) + '\n'


def read_command_file(path):
    """cmd_file(): FILE must be a regular file, or `-` for stdin.  Anything
    else (`/dev/stdin` when stdin is a pipe, a fifo, a directory) is refused
    after opening it, as illumos does."""
    if path == '-':
        return sys.stdin.read()
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise Fail('could not open file %s: %s' % (path, os.strerror(e.errno)))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Fail('%s is not a regular file.' % path)
        with os.fdopen(os.dup(fd)) as f:
            return f.read()
    finally:
        os.close(fd)


def zonecfg_main(args):
    if len(args) < 2 or args[0] != '-z':
        raise Fail('usage: zonecfg -z zonename [-f file | subcommand...]', 2)
    name, rest = args[1], args[2:]
    check_uuid(name, 'zonecfg')
    if rest[:1] == ['-f']:
        if len(rest) != 2:
            raise Fail('usage: zonecfg -z zonename -f file', 2)
        mode = 'stdin' if rest[1] == '-' else 'file'
        script = read_command_file(rest[1])
    elif rest:
        mode, script = 'cmdline', ' '.join(rest)
    else:
        mode, script = 'interactive', sys.stdin.read()
    ZonecfgSession(name, load_zone(name)).run(script, mode, rest[1] if mode == 'file' else None)


def check_uuid(name, prog):
    if not UUID_RE.match(name):
        raise Fail('%s: %s: invalid zone name' % (prog, name))


# ---------------------------------------------------------------- vmadm

def zone_datasets(zone):
    """The VM's datasets: zonepath dataset, for HVM the disks', and the
    datasets delegated to it (zonecfg `dataset` resources)."""
    ds = [zone.props.get('zonepath', '/zones/' + zone.name).lstrip('/')]
    for d in disk_resources(zone):
        ds.append(d['zfs_filesystem'])
    return ds + delegated_datasets(zone)


def delegated_datasets(zone):
    """The names of the zone's `dataset` resources (vmadm's `datasets`)."""
    return [r['props'].get('name') for r in zone.of_type('dataset') if r['props'].get('name')]


def quota_property(zone):
    """The ZFS property vmadm reports as `quota`: the zone dataset's quota,
    but its refquota for bhyve (vmadm(8), VM.js setQuotaBhyve())."""
    return 'refquota' if zone.props.get('brand') == 'bhyve' else 'quota'


def disk_resources(zone):
    out = []
    for r in zone.of_type('device'):
        match = r['props'].get('match', '')
        fs = re.sub(r'^/dev/zvol/r?dsk/', '', match)
        p = r['properties']
        disk = {'path': match, 'zfs_filesystem': fs, 'zpool': POOL,
                'boot': p.get('boot') == 'true', 'media': p.get('media', 'disk'),
                'model': p.get('model', 'virtio'), 'size': int(p.get('size', 0))}
        if p.get('image-uuid'):  # a disk made empty (a data disk) has neither
            disk['image_uuid'] = p['image-uuid']
            disk['image_size'] = int(p.get('image-size', 0))
        out.append(disk)
    return out


def zfs_quota_gib(dataset, prop='quota'):
    p = run([REAL_ZFS, 'get', '-H', '-p', '-o', 'value', prop, dataset])
    if p.returncode != 0:
        return 0
    return int(p.stdout.strip() or 0) >> 30


def vm_nics(zone):
    nics = []
    for r in zone.of_type('net'):
        pr, p = r['props'], r['properties']
        nic = {'interface': pr.get('physical'), 'mac': pr.get('mac-addr'),
               'nic_tag': pr.get('global-nic'), 'vlan_id': int(pr.get('vlan-id', 0)),
               'ip': p.get('ip'), 'netmask': p.get('netmask'), 'gateway': p.get('gateway'),
               'network_uuid': p.get('network_uuid')}
        if p.get('mtu', '').isdigit():
            nic['mtu'] = int(p['mtu'])
        if p.get('primary') == 'true':
            nic['primary'] = True
        nics.append(nic)
    return nics


def config_json(zonepath, name, default):
    return read_json(os.path.join(zonepath, 'config', name), default)


def vm_object(zone, quotas=None):
    """`vmadm get`: derived from the zone config, datasets and runtime.

    quotas: {(dataset, property): bytes} of `quota` and `refquota` when the
    caller (the vm-agent) read them all with one `zfs get`; otherwise this
    zone's quota is read alone."""
    a = zone.attrs()
    zonepath = zone.props.get('zonepath', '/zones/' + zone.name)
    brand = zone.props.get('brand', 'joyent')
    mem = zone.of_type('capped-memory')
    ram = mem_to_bytes(mem[0]['props']['physical']) >> 20 if mem else 0
    meta = config_json(zonepath, 'metadata.json', {})
    obj = {
        'uuid': zone.name, 'zonename': zone.name,
        'alias': base64.b64decode(a['alias']).decode() if a.get('alias') else None,
        'autoboot': zone.props.get('autoboot') == 'true', 'brand': brand,
        'billing_id': a.get('billing-id'), 'owner_uuid': a.get('owner-uuid'),
        'create_timestamp': a.get('create-timestamp'),
        'state': vm_state(zone.name, zone_state(zone.name)),
        'zone_state': zone_state(zone.name),
        'zonepath': zonepath, 'zfs_filesystem': zonepath.lstrip('/'), 'zpool': POOL,
        'server_uuid': sysinfo().get('UUID'),
        'ram': ram, 'max_physical_memory': ram,
        'quota': (zfs_quota_gib(zonepath.lstrip('/'), quota_property(zone)) if quotas is None
                  else quotas.get((zonepath.lstrip('/'), quota_property(zone)), 0) >> 30),
        'nics': vm_nics(zone),
        'tags': config_json(zonepath, 'tags.json', {}),
        'customer_metadata': meta.get('customer_metadata', {}),
        'internal_metadata': meta.get('internal_metadata', {}),
    }
    if brand in HVM_BRANDS:
        obj['disks'] = disk_resources(zone)
    else:
        obj['image_uuid'] = a.get('dataset-uuid')
    if 'docker' in a:  # proptable.js: zone.attr.docker, utils.fixBoolean
        obj['docker'] = a['docker'] == 'true'
    if delegated_datasets(zone):
        # VM.js loads `datasets` from the zone's dataset resources; the
        # `delegate_dataset` flag is a creation payload key, never in `vmadm get`
        obj['datasets'] = delegated_datasets(zone)
    if a.get('do-not-inventory'):
        obj['do_not_inventory'] = a.get('do-not-inventory') == 'true'
    return obj


def need_vm(uuid, verb):
    zone = load_zone(uuid) if UUID_RE.match(uuid or '') else None
    if zone is None:
        raise Fail('Failed to %s VM %s: No such zone configured' % (verb, uuid))
    return zone


def vm_type(brand):
    return {'lx': 'LX', 'kvm': 'KVM', 'bhyve': 'BHYV'}.get(brand, 'OS')


def list_row(zone, index_state):
    name = zone.name
    a = zone.attrs()
    mem = zone.of_type('capped-memory')
    return {'uuid': name, 'state': vm_state(name, index_state),
            'brand': zone.props.get('brand', ''), 'type': vm_type(zone.props.get('brand')),
            'alias': base64.b64decode(a['alias']).decode() if a.get('alias') else '',
            'ram': str(mem_to_bytes(mem[0]['props']['physical']) >> 20) if mem else '0',
            'zonepath': zone.props.get('zonepath', ''),
            'autoboot': zone.props.get('autoboot', '')}


def vmadm_list(args):
    fields, parsable, header = ['uuid', 'type', 'ram', 'state', 'alias'], False, True
    i = 0
    while i < len(args):
        if args[i] == '-o':
            fields, i = args[i + 1].split(','), i + 1
        elif args[i] == '-p':
            parsable = True
        elif args[i] == '-H':
            header = False
        else:
            raise Fail('vmadm list: unsupported argument %s' % args[i], 2)
        i += 1
    rows = []
    for (name, st, _, _), zone in sorted(indexed_zones(), key=lambda e: e[0]):
        row = list_row(zone, st)
        rows.append([str(row.get(f) if f in row else vm_object(zone).get(f, ''))
                     for f in fields])
    if parsable:
        for r in rows:
            print(':'.join(r))
        return
    table = ([[f.upper() for f in fields]] if header else []) + rows
    widths = [max(len(r[c]) for r in table) for c in range(len(fields))] if table else []
    for r in table:
        print('  '.join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def vmadm_start(uuid):
    zone = need_vm(uuid, 'start')
    st = vm_state(uuid, zone_state(uuid))
    if st == 'running':
        raise Fail('Unable to start VM %s: VM is already running' % uuid)
    if st != 'stopped':
        raise Fail('Unable to start VM %s: VM is in state %s (not installed)' % (uuid, st))
    for ds in zone_datasets(zone):
        if not zfs_exists(ds):
            raise Fail('Unable to start VM %s: dataset %s does not exist' % (uuid, ds))
    delegated = delegated_datasets(zone)
    for ds in zone_datasets(zone):
        # the zone root, and the disks (zvols on SmartOS, open once the VM
        # runs; filesystems here, mounted so that their files can be read)
        if ds not in delegated:
            zfs_mount(ds)
    for ds in delegated:
        # zoneadmd's validate_datasets() at boot: a delegated dataset is
        # zoned=on from then on (the global zone no longer mounts it)
        if run([REAL_ZFS, 'get', '-H', '-o', 'value', 'zoned', ds]).stdout.strip() != 'on':
            run([REAL_ZFS, 'set', 'zoned=on', ds], check=True)
    zone.props['autoboot'] = 'true'
    save_zone(zone)
    set_running(uuid, True)
    zone_booted(zone)
    sys.stderr.write('Successfully started VM %s\n' % uuid)


def vmadm_stop(args):
    force = '-F' in args
    uuids = [a for a in args if a != '-F']
    if len(uuids) != 1:
        raise Fail('usage: vmadm stop <uuid> [-F]', 2)
    uuid = uuids[0]
    zone = need_vm(uuid, 'stop')
    # VM.js stop()/halt() set autoboot=false before they find the VM stopped
    zone.props['autoboot'] = 'false'
    save_zone(zone)
    if uuid not in running_zones() and not force:
        raise Fail('Unable to stop VM %s: VM is already not running' % uuid)
    set_running(uuid, False)
    sys.stderr.write('Successfully completed stop for VM %s\n' % uuid)


def vmadm_main(args):
    if not args:
        raise Fail('usage: vmadm <get|list|start|stop> ...', 2)
    cmd, rest = args[0], args[1:]
    if cmd == 'get' and len(rest) == 1:
        print(json.dumps(vm_object(need_vm(rest[0], 'get')), indent=2, sort_keys=True))
    elif cmd == 'list':
        vmadm_list(rest)
    elif cmd == 'start' and len(rest) == 1:
        vmadm_start(rest[0])
    elif cmd == 'stop':
        vmadm_stop(rest)
    else:
        raise Fail('vmadm: unsupported command: %s' % ' '.join(args), 2)


# ---------------------------------------------------------------- zoneadm

def zoneadm_list(flags):
    if 'p' not in flags:
        raise Fail('zoneadm list: the lab supports only -p output', 2)
    running = running_zones()
    rows = []
    for (name, st, zonepath, uuid), zone in indexed_zones():
        if 'c' not in flags and st != 'installed':
            continue
        zid = str(running[name]) if st == 'installed' and name in running else '-'
        state = 'running' if zid != '-' else st
        if 'c' not in flags and 'i' not in flags and state != 'running':
            continue
        rows.append([zid, name, state, zonepath, uuid or name,
                     zone.props.get('brand', ''), zone.props.get('ip-type', 'exclusive')])
    if 'c' not in flags and 'i' not in flags:
        # running zones only: illumos prints the kernel's zone list
        # (zoneadm.c fetch_zents()), where a zone that booted later, or
        # rebooted, comes later: zone id order
        rows.sort(key=lambda r: int(r[0]))
    print('0:global:running:/::liveimg:shared')
    for row in rows:
        print(':'.join(row))


def zoneadm_attach(name):
    zone = load_zone(name)
    if zone is None:
        raise Fail('zoneadm: %s: No such zone configured' % name)
    st = zone_state(name)
    if st != 'configured':
        raise Fail("zoneadm: zone '%s': must be configured before attach (state: %s)." % (name, st))
    for ds in zone_datasets(zone):
        if not zfs_exists(ds):
            raise Fail("zoneadm: zone '%s': ERROR: dataset %s does not exist; "
                       "cannot attach." % (name, ds))
    zfs_mount(zone_datasets(zone)[0])
    set_zone_state(name, 'installed')


def zoneadm_detach(name):
    if load_zone(name) is None:
        raise Fail('zoneadm: %s: No such zone configured' % name)
    if name in running_zones():
        raise Fail("zoneadm: zone '%s': must be halted before detach." % name)
    if zone_state(name) != 'installed':
        raise Fail("zoneadm: zone '%s': must be installed before detach." % name)
    set_zone_state(name, 'configured')


def zoneadm_main(args):
    if args[:1] == ['list']:
        flags = ''.join(a.lstrip('-') for a in args[1:])
        return zoneadm_list(flags)
    if len(args) >= 3 and args[0] == '-z':
        name, cmd = args[1], args[2]
        check_uuid(name, 'zoneadm')
        if cmd == 'attach':
            return zoneadm_attach(name)
        if cmd == 'detach':
            return zoneadm_detach(name)
        if cmd == 'boot':
            return vmadm_start(name)
        if cmd == 'halt':
            return vmadm_stop([name, '-F'])
    raise Fail('zoneadm: unsupported command: %s' % ' '.join(args), 2)


# ---------------------------------------------------------------- zone health
#
# What migd's health gate looks at after a switch: `svcs -z UUID -x` (the
# zone's SMF services in maintenance) and the zone id of `zoneadm list -p`
# (a zone that rebooted by itself has a new one).
#
# SMF state lives where SmartOS keeps a zone's SMF repository: inside the
# zone (its repository is ZONEPATH/root/etc/svc/repository.db), so in the
# zone dataset, and it travels with `zfs send` like everything else in the
# zone: a service in maintenance on the source is in maintenance on the
# target.  The lab's stand-in is ZONEPATH/root/etc/svc/lab-smf.json,
# {fmri: {state, aux_state, since, exit_status, description}}.
#
# Test knobs on this CN (state dir, not in the dataset, as they describe
# this machine):
#   smf-boot.json      {uuid: [{fmri, aux_state, exit_status, description,
#                      count}]}: the zone's next `count` boots here (-1:
#                      every boot) put the service into maintenance, as a
#                      start method failing on this CN would
#   zone-restarts.json {"rules": {uuid: {delay_s, stays_down, count}},
#                      "due": {uuid: {at, zoneid, stays_down}}}: the next
#                      `count` boots (-1: every boot, so a reboot loop) make
#                      the zone reboot by itself delay_s later (a new zone
#                      id), or halt for good with stays_down
# The vm-agent (always running, dies with the CN) carries out due restarts
# every pass, and so does every vmadm/zoneadm/svcs before it answers
# (apply_due_restarts()).  Tests set the knobs with lab_request().

SMF_BRANDS = ('joyent', 'joyent-minimal')
SMF_MSG_BASE = 'http://illumos.org/msg/'
SMF_EXIT_ERR_FATAL, SMF_EXIT_ERR_CONFIG = 95, 96
STARTD = 'svc:/system/svc/restarter:default'
FMRI_RE = re.compile(r'^svc:/[A-Za-z0-9][A-Za-z0-9_.,/-]*:[A-Za-z0-9_.,-]+$')
# aux_state -> (Reason line, diagnosis code), from illumos
# usr/src/cmd/svc/svcs/explain.c print_reasons(); method failures are
# worded by smf_method_reason()
SMF_REASONS = {
    'administrative_request': ('Maintenance requested by an administrator.', 'SMF-8000-63'),
    'restarting_too_quickly': ('Restarting too quickly.', 'SMF-8000-L5'),
    'none': ('Restarter %s gave no explanation.' % STARTD, 'SMF-8000-9C'),
    'method_failed': (None, None),
    'fault_threshold_reached': (None, None),
}


def smf_repository(zone):
    """The lab's stand-in for the zone's SMF repository (in its dataset)."""
    return os.path.join(zone.props.get('zonepath', '/zones/' + zone.name),
                        'root', 'etc', 'svc', 'lab-smf.json')


def smf_faulted(zone):
    """{fmri: service} of the zone's services not online."""
    return read_json(smf_repository(zone), {}) or {}


def smf_write(zone, services):
    path = smf_repository(zone)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomic(path, json.dumps(services, indent=2, sort_keys=True))


def smf_method_reason(svc):
    """explain.c print_method_failure(): the start method's exit status."""
    status, repeated = svc.get('exit_status'), svc.get('aux_state') == 'fault_threshold_reached'
    if not status:
        return ('Method failed repeatedly.' if repeated else 'Method failed.'), 'SMF-8000-8Q'
    how = {SMF_EXIT_ERR_FATAL: 'exited with $SMF_EXIT_ERR_FATAL',
           SMF_EXIT_ERR_CONFIG: 'exited with $SMF_EXIT_ERR_CONFIG'}.get(
               status, 'exited with status %d' % status)
    if repeated:
        return 'Start method failed repeatedly, last %s.' % how, 'SMF-8000-KS'
    return 'Start method %s.' % how, 'SMF-8000-KS'


def smf_log_name(fmri):
    """svc.startd's log file of an instance: svc:/a/b:i -> a-b:i.log."""
    return fmri[len('svc:/'):].replace('/', '-') + '.log'


def smf_explain(zone, fmri, svc):
    """One `svcs -x` paragraph (explain.c print_service()) of a service in
    maintenance; the zone's root prefixes the log path, as svcs -z does."""
    reason, code = SMF_REASONS.get(svc.get('aux_state'), ('Unknown.', 'SMF-8000-AR'))
    if reason is None:
        reason, code = smf_method_reason(svc)
    since = time.strftime('%a %b %e %H:%M:%S %Y', time.localtime(svc.get('since', 0)))
    root = os.path.join(zone.props.get('zonepath', '/zones/' + zone.name), 'root')
    return ['%s (%s)' % (fmri, svc.get('description') or '?'),
            '  Zone: %s' % zone.name,
            ' State: maintenance since %s' % since,
            'Reason: %s' % reason,
            '   See: %s%s' % (SMF_MSG_BASE, code),
            '   See: %s/var/svc/log/%s' % (root, smf_log_name(fmri)),
            'Impact: This service is not running.']


def svcs_args(args):
    """The zone of `svcs -z ZONE -x` (getopt as svcs.c; -v allowed)."""
    try:
        opts, operands = getopt.getopt(args, 'vxz:')
    except getopt.GetoptError as e:
        raise Fail('svcs: %s' % e, 2)
    opts = dict(opts)
    if '-z' not in opts or '-x' not in opts or operands:
        raise Fail('svcs: the lab supports only svcs -z ZONE -x', 2)
    return opts['-z']


def svcs_main(args):
    """`svcs -z ZONE -x`: as svcs.c main() with libscf's zone handle: an
    unknown zone cannot be decorated ("invalid zone"); a zone without a
    running svc.configd (not running, or a brand without SMF: lx, bhyve,
    kvm) has no repository door to bind to; otherwise explain() prints a
    paragraph per service in maintenance (degraded ones are running:
    explain.c determine_causes() never lists them without operands)."""
    name = svcs_args(args)
    if name == 'global':
        return
    zone = load_zone(name) if UUID_RE.match(name) else None
    if zone is None:
        raise Fail("svcs: invalid zone '%s'" % name)
    if name not in running_zones() or zone.props.get('brand') not in SMF_BRANDS:
        raise Fail('svcs: Could not bind to repository server for zone %s: '
                   'repository server unavailable' % name)
    faulted = smf_faulted(zone)
    paragraphs = [smf_explain(zone, fmri, svc) for fmri, svc in sorted(faulted.items())
                  if svc.get('state') == 'maintenance']
    if paragraphs:
        print('\n\n'.join('\n'.join(p) for p in paragraphs))


def zone_booted(zone):
    """A zone just booted on this CN: apply this CN's boot knobs to it."""
    boots = read_json(state_path('smf-boot.json'), {}) or {}
    rules = boots.get(zone.name, [])
    if rules:
        services = smf_faulted(zone)
        for rule in rules:
            services[rule['fmri']] = {
                'state': 'maintenance', 'aux_state': rule['aux_state'], 'since': time.time(),
                'exit_status': rule.get('exit_status'), 'description': rule.get('description')}
        smf_write(zone, services)
        boots[zone.name] = used_once(rules)
        write_atomic(state_path('smf-boot.json'), json.dumps(boots))
    restarts = read_json(state_path('zone-restarts.json'), {}) or {}
    rule = restarts.get('rules', {}).get(zone.name)
    if rule:
        restarts.setdefault('due', {})[zone.name] = {
            'at': time.time() + rule['delay_s'], 'zoneid': running_zones()[zone.name],
            'stays_down': rule['stays_down']}
        left = used_once([rule])
        if left:
            restarts['rules'][zone.name] = left[0]
        else:
            del restarts['rules'][zone.name]
        write_atomic(state_path('zone-restarts.json'), json.dumps(restarts))


def used_once(rules):
    """Rules with one use consumed (count -1: never used up)."""
    out = []
    for rule in rules:
        if rule['count'] == -1 or rule['count'] > 1:
            out.append(dict(rule, count=rule['count'] - (rule['count'] > 0)))
    return out


def apply_due_restarts():
    """Reboot (or halt, stays_down) every zone whose self-restart is due and
    that still runs with the zone id it booted with.  Takes the CN lock:
    never call it with the lock held."""
    path = state_path('zone-restarts.json')
    due = (read_json(path, {}) or {}).get('due', {})
    if not any(d['at'] <= time.time() for d in due.values()):
        return
    with CNLock():
        restarts = read_json(path, {}) or {}
        running = running_zones()
        for name, d in sorted(restarts.get('due', {}).items()):
            if d['at'] > time.time():
                continue
            del restarts['due'][name]
            write_atomic(path, json.dumps(restarts))
            if running.get(name) != d['zoneid']:
                continue  # stopped or restarted meanwhile: nothing to do
            set_running(name, False)
            if not d['stays_down']:
                set_running(name, True)  # a reboot: a new zone id
                zone = load_zone(name)
                if zone is not None:
                    zone_booted(zone)
                restarts = read_json(path, {}) or {}


def lab_request():
    """The lab's knobs (Lab.smf_maintenance() ...): one JSON request on
    stdin, carried out under the CN lock; prints a JSON answer."""
    req = json.load(sys.stdin)
    try:
        with CNLock():
            answer = LAB_OPS[req['op']](req)
    except Fail as e:
        sys.stderr.write(str(e) + '\n')
        return e.code
    print(json.dumps(answer, sort_keys=True))
    return 0


def lab_smf_set(req):
    zone = load_zone(req['uuid'])
    if zone is None:
        raise Fail('no zone %s on this CN' % req['uuid'])
    if not os.path.isdir(os.path.join(zone.props.get('zonepath', ''), 'root')):
        raise Fail('the zone root of %s is not mounted on this CN' % req['uuid'])
    services = smf_faulted(zone)
    services[req['fmri']] = {'state': 'maintenance', 'aux_state': req['aux_state'],
                             'since': time.time(), 'exit_status': req.get('exit_status'),
                             'description': req.get('description')}
    smf_write(zone, services)
    return services


def lab_smf_boot(req):
    boots = read_json(state_path('smf-boot.json'), {}) or {}
    boots.setdefault(req['uuid'], []).append(
        {k: req.get(k) for k in ('fmri', 'aux_state', 'exit_status', 'description', 'count')})
    write_atomic(state_path('smf-boot.json'), json.dumps(boots))
    return boots[req['uuid']]


def lab_smf_clear(req):
    """`svcadm clear` of one service (or all): also forgets boot knobs."""
    boots = read_json(state_path('smf-boot.json'), {}) or {}
    kept = [r for r in boots.pop(req['uuid'], []) if req.get('fmri') not in (None, r['fmri'])]
    if kept:
        boots[req['uuid']] = kept
    write_atomic(state_path('smf-boot.json'), json.dumps(boots))
    zone = load_zone(req['uuid'])
    if zone is None or not os.path.exists(smf_repository(zone)):
        return {}
    services = {f: s for f, s in smf_faulted(zone).items() if req.get('fmri') not in (None, f)}
    smf_write(zone, services)
    return services


def lab_restart_rule(req):
    restarts = read_json(state_path('zone-restarts.json'), {}) or {}
    rules = restarts.setdefault('rules', {})
    if req.get('delay_s') is None:
        rules.pop(req['uuid'], None)
        restarts.setdefault('due', {}).pop(req['uuid'], None)
    else:
        rules[req['uuid']] = {k: req[k] for k in ('delay_s', 'stays_down', 'count')}
    write_atomic(state_path('zone-restarts.json'), json.dumps(restarts))
    return restarts


LAB_OPS = {'smf_set': lab_smf_set, 'smf_boot': lab_smf_boot, 'smf_clear': lab_smf_clear,
           'restart_rule': lab_restart_rule}


# ---------------------------------------------------------------- imgadm

def image_installed(uuid):
    return (os.path.exists(state_path('imgadm', uuid + '.json'))
            and zfs_exists('%s/%s@final' % (POOL, uuid)))


def imgadm_get(uuid):
    if not image_installed(uuid):
        raise Fail('imgadm get: error (ImageNotInstalled): image "%s" was not found '
                   'on zpool "%s"' % (uuid, POOL), 3)
    manifest = read_json(state_path('imgadm', uuid + '.json'))
    print(json.dumps({'manifest': manifest, 'zpool': POOL}, indent=2))


def imgadm_import(uuid, quiet):
    if image_installed(uuid):
        if not quiet:
            print('Image %s is already installed, skipping' % uuid)
        return
    store = read_json(state_path('lab.json'), {}).get('image_dir', '')
    stream = os.path.join(store, uuid + '.zfs')
    manifest = read_json(os.path.join(store, uuid + '.json'))
    if manifest is None or not os.path.exists(stream):
        raise Fail('imgadm import: error (ActiveImageNotFound): an active image "%s" '
                   'was not found in image sources' % uuid)
    if not zfs_exists('%s/%s' % (POOL, uuid)):
        with open(stream, 'rb') as f:
            p = subprocess.run([REAL_ZFS, 'receive', '%s/%s' % (POOL, uuid)], stdin=f,
                               capture_output=True, text=True)
        if p.returncode != 0:
            raise Fail('imgadm import: error: zfs receive failed: ' + p.stderr.strip())
    os.makedirs(state_path('imgadm'), exist_ok=True)
    write_atomic(state_path('imgadm', uuid + '.json'), json.dumps(manifest))
    if not quiet:
        print('Imported image %s (%s@%s)' % (uuid, manifest.get('name'),
                                             manifest.get('version')))


def imgadm_main(args):
    quiet = '-q' in args
    args = [a for a in args if a != '-q']
    if len(args) == 2 and args[0] in ('get', 'import'):
        if not UUID_RE.match(args[1]):
            raise Fail('imgadm %s: error (InvalidUUID): invalid uuid: "%s"' % (args[0], args[1]), 1)
        if args[0] == 'get':
            return imgadm_get(args[1])
        return imgadm_import(args[1], quiet)
    raise Fail('imgadm: unsupported command: %s' % ' '.join(args), 2)


# ---------------------------------------------------------------- svcadm (vm-agent)
#
# The CN's vm-agent runs all the time (tests/lab/vm_agent.py, started by
# cn_init.py); it and `svcadm restart vm-agent` report with vmapi_put().

AGENT_USER_AGENT = 'vm-agent/lab (python) server/%s'
PUT_TIMEOUT_S = 5


def vmapi_url():
    return read_json(state_path('lab.json'), {}).get('vmapi_url')


def is_hidden(zone):
    """do-not-inventory: the CN's agent acts as if the zone did not exist."""
    return zone.attrs().get('do-not-inventory') == 'true'


def vmapi_put(url, obj, by):
    """PUT /vms/:uuid as Triton's vm-agent does; log it in agent.log.

    Returns (True, None) on a 2xx, else (False, why)."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request(
        '%s/vms/%s' % (url, obj['uuid']), method='PUT', data=json.dumps(obj).encode(),
        headers={'Content-Type': 'application/json',
                 'User-Agent': AGENT_USER_AGENT % sysinfo().get('UUID')})
    entry = {'time': round(time.time(), 3), 'by': by, 'uuid': obj['uuid'],
             'state': obj.get('state'), 'server_uuid': obj.get('server_uuid')}
    try:
        with urllib.request.urlopen(req, timeout=PUT_TIMEOUT_S) as resp:
            entry['status'] = resp.status
    except urllib.error.HTTPError as e:
        entry['status'], entry['error'] = e.code, 'HTTP %d' % e.code
    except Exception as e:  # down, refused, timed out: the agent retries later
        entry['error'] = str(e) or type(e).__name__
    with open(state_path('agent.log'), 'a') as log:
        log.write(json.dumps(entry, sort_keys=True) + '\n')
    return 'error' not in entry, entry.get('error')


def vm_agent_report():
    """`svcadm restart vm-agent`: report every inventoried zone now, then have
    the running agent start over (it re-reads VMAPI as a restarted agent does)."""
    url = vmapi_url()
    for (name, _, _, _), zone in indexed_zones():
        if is_hidden(zone):
            continue
        ok, why = vmapi_put(url, vm_object(zone), 'svcadm')
        if not ok:  # the real agent retries later; svcadm itself succeeded
            sys.stderr.write('vm-agent: report of %s failed: %s\n' % (name, why))
    write_atomic(state_path('agent.resync'), '')


def svcadm_main(args):
    if len(args) == 2 and args[0] == 'restart' and re.search(r'(^|/)vm-agent(:default)?$', args[1]):
        return vm_agent_report()
    raise Fail("svcadm: Pattern '%s' doesn't match any instances" % ' '.join(args[1:]))


# ---------------------------------------------------------------- zfs / zpool fronts

ARG_LETTERS = {'list': 'odtsS', 'get': 'ods', 'send': 'iI', 'receive': 'o', 'recv': 'o',
               'destroy': '', 'zpool-list': 'o'}


def parse_opts(args, arg_letters):
    """getopt-style split: (boolean letters, [(letter, value)], operands)."""
    bools, valued, i = [], [], 0
    while i < len(args) and args[i].startswith('-') and len(args[i]) > 1:
        word, j = args[i], 1
        while j < len(word):
            if word[j] in arg_letters:
                if j + 1 < len(word):
                    valued.append((word[j], word[j + 1:]))
                elif i + 1 < len(args):
                    valued.append((word[j], args[i + 1]))
                    i += 1
                break
            bools.append(word[j])
            j += 1
        i += 1
    return bools, valued, args[i:]


def unparse_opts(bools, valued, operands):
    out = ['-' + ''.join(bools)] if bools else []
    for letter, value in valued:
        out += ['-' + letter, value]
    return out + operands


def without_flag(args, letter, arg_letters):
    """(was the boolean flag present, args without it)."""
    bools, valued, operands = parse_opts(args, arg_letters)
    return letter in bools, unparse_opts([b for b in bools if b != letter], valued, operands)


def front_zfs(args):
    """Translate the illumos zfs syntax of cn-commands.md for zfs-fuse."""
    sub, rest = (args[0], args[1:]) if args else ('', [])
    letters = ARG_LETTERS.get(sub, '')
    if sub == 'list':
        had_p, rest = without_flag(rest, 'p', letters)
        if had_p:
            return zfs_list_p(rest)
    if sub == 'get':
        bad = [p for p in get_props(rest) if p.startswith('written@')]
        if bad:
            raise Fail("bad property list: invalid property '%s'" % bad[0], 2)
    if sub == 'send':
        rest = send_c_front(rest, letters)
        had_v, rest_v = without_flag(rest, 'v', letters)
        register_send(rest_v)
        if had_v:
            return zfs_send_v(rest_v)
        os.execv(REAL_ZFS, [REAL_ZFS, 'send'] + rest_v)
    if sub in ('receive', 'recv'):
        had_u, rest_u = without_flag(rest, 'u', letters)
        if had_u:
            return zfs_receive_u(rest_u)
    if sub == 'destroy':
        return zfs_destroy(rest)
    if sub == 'mount' and rest and not rest[0].startswith('-'):
        return front_zfs_mount(rest)
    if sub in ('hold', 'release'):
        return zfs_hold_release(sub, rest)
    if sub == 'holds':
        return zfs_holds(rest)
    os.execv(REAL_ZFS, [REAL_ZFS] + args)


def send_c_front(args, letters):
    """`zfs send -c` on a CN whose zfs the lab says knows it (features.json
    `send_c`, set by Lab.cn_zfs_features): zfs-fuse cannot compress a
    stream, so the front drops `-c` and sends it as it is (a receiver of a
    compressed stream takes a plain one too); with nothing to send it
    answers as such an illumos zfs does.  Otherwise `-c` stays, and
    zfs-fuse refuses it as an older illumos zfs does (`invalid option 'c'`)."""
    if not (read_json(state_path('features.json'), {}) or {}).get('send_c'):
        return args
    had_c, rest = without_flag(args, 'c', letters)
    if had_c and not parse_opts(rest, letters)[2]:
        raise Fail('missing snapshot argument\nusage:\n\tsend [-DnPpRvLec] '
                   '[-[iI] snapshot] <snapshot>', 2)
    return rest


def nicenum(n):
    """A size as illumos' zfs prints it: 512, 1K, 4.50K, 12.3M, 100G."""
    units = 'KMGTPE'
    if n < 1024:
        return '%d' % n
    u, v = 0, n / 1024.0
    while v >= 1024 and u + 1 < len(units):
        u, v = u + 1, v / 1024.0
    if n % (1 << (10 * (u + 1))) == 0:
        return '%d%s' % (v, units[u])
    return ('%.2f%s' if v < 10 else '%.1f%s' if v < 100 else '%.0f%s') % (v, units[u])


def zfs_send_v(args):
    """`zfs send -v`: zfs-fuse prints no progress, so the front runs the real
    send and, as illumos does, writes the header and then once a second
    `HH:MM:SS<TAB>SIZE<TAB>DS@SNAP` (the bytes sent so far) on stderr.  Like
    illumos, nothing is printed for the last part of a second.  The header
    waits for the stream's first bytes: a send the real zfs refuses (an option
    zfs-fuse lacks) prints its refusal alone, as illumos does for a bad flag."""
    snap = parse_opts(args, ARG_LETTERS['send'])[2][-1]
    child = subprocess.Popen([REAL_ZFS, 'send'] + args, stdout=subprocess.PIPE)
    last = [time.monotonic()]
    header = [False]

    def progress(sent):
        if not header[0]:
            header[0] = True
            sys.stderr.write('TIME        SENT   SNAPSHOT\n')
            sys.stderr.flush()
        now = time.monotonic()
        if now - last[0] >= 1:
            last[0] = now
            sys.stderr.write('%s\t%s\t%s\n' % (time.strftime('%H:%M:%S'), nicenum(sent), snap))
            sys.stderr.flush()
    try:
        copy_chunks(child.stdout.fileno(), sys.stdout.fileno(), 1 << 20, progress)
    except BrokenPipeError:
        pass
    child.stdout.close()
    rc = end_child(child)
    if rc != 0:
        sys.exit(rc)


def get_props(args):
    _, _, operands = parse_opts(args, ARG_LETTERS['get'])
    return operands[0].split(',') if operands else []


def zfs_list_p(args):
    """`zfs list -p`: names from the real list, exact values from `zfs get -p`."""
    bools, valued, operands = parse_opts(args, ARG_LETTERS['list'])
    cols = ['name', 'used', 'available', 'referenced', 'mountpoint']
    for letter, value in valued:
        if letter == 'o':
            cols = value.split(',')
    scripted = 'H' in bools
    list_args = unparse_opts([b for b in bools if b != 'H'] + ['H'],
                             [v for v in valued if v[0] != 'o'] + [('o', 'name')], operands)
    p = run([REAL_ZFS, 'list'] + list_args)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        sys.exit(p.returncode)
    names = p.stdout.split()
    props = [c for c in cols if c != 'name']
    values = zfs_get_exact(props, names) if names and props else {}
    rows = [[n if c == 'name' else values.get((n, c), '-') for c in cols] for n in names]
    if not scripted:
        rows.insert(0, [c.upper() for c in cols])
    for r in rows:
        print('\t'.join(r))


def zfs_get_exact(props, names):
    """{(dataset, property): exact value} via one `zfs get -H -p` call."""
    alias = {'avail': 'available', 'refer': 'referenced', 'refer.': 'referenced'}
    real = [alias.get(c, c) for c in props]
    p = run([REAL_ZFS, 'get', '-H', '-p', '-o', 'name,property,value', ','.join(real)] + names)
    got = {}
    for line in p.stdout.splitlines():
        n, prop, val = line.split('\t', 2)
        got[(n, prop)] = val
    return {(n, c): got.get((n, r), '-') for n in names for c, r in zip(props, real)}


def mounted_filesystems():
    p = run([REAL_ZFS, 'list', '-H', '-o', 'name,mounted', '-t', 'filesystem'])
    return {l.split('\t')[0] for l in p.stdout.splitlines() if l.endswith('\tyes')}


def front_zfs_mount(args):
    """`zfs mount FS`: zfs-fuse unmounts a filesystem it receives into where
    illumos receives online and leaves it mounted; mounting it again then
    meets the directory its child mount (the cores dataset) made, which
    illumos never sees.  Only then the mounts inside it step aside while it
    mounts, and come back on top of it, as they were."""
    p = run([REAL_ZFS, 'mount'] + args)
    if p.returncode != 0 and 'directory is not empty' in p.stderr:
        q = run([REAL_ZFS, 'get', '-H', '-o', 'value', 'mountpoint', args[-1]])
        top = q.stdout.strip().rstrip('/')
        lst = run([REAL_ZFS, 'list', '-H', '-o', 'name,mountpoint,mounted', '-t', 'filesystem'])
        inside = [l.split('\t')[0] for l in lst.stdout.splitlines()
                  if l.endswith('\tyes') and top and l.split('\t')[1].startswith(top + '/')]
        for name in sorted(inside, reverse=True):
            run([REAL_ZFS, 'unmount', name])
        # What is left are the empty directories those mounts were made on.
        for root, dirs, files in os.walk(top or '/nonexistent', topdown=False):
            for d in dirs:
                try:
                    os.rmdir(os.path.join(root, d))
                except OSError:
                    pass
        p = run([REAL_ZFS, 'mount'] + args)
        for name in sorted(inside):
            run([REAL_ZFS, 'mount', name])
    sys.stdout.write(p.stdout)
    sys.stderr.write(p.stderr)
    sys.exit(p.returncode)


def zfs_receive_u(args):
    """`receive -u`: receive (zfs-fuse mounts), then unmount what it mounted.

    migd receives as `zfs receive -u -F DATASET` (an explicit destination,
    which zfs-fuse takes as illumos does: the stream's top dataset becomes
    DATASET, its children land below it) and mounts only after checking the
    mountpoints received.  Where this differs from illumos: zfs-fuse has no
    -u, so for a moment what arrived is mounted where its `mountpoint` says,
    inside this CN's mount namespace (its directory is made and stays);
    illumos mounts nothing.  What a test can see afterwards is the same:
    nothing of the stream mounted, the properties as received.

    The child zfs reads the stream straight from our stdin: no copy here."""
    before = mounted_filesystems()
    p = subprocess.run([REAL_ZFS, 'receive'] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    rc = p.returncode
    err = [l for l in p.stderr.splitlines() if l.strip()]
    # zfs-fuse remounts a filesystem it received into and says so when that
    # fails (its directory holds another mount: the cores dataset); the
    # stream itself is in.  illumos receives into a mounted filesystem
    # online and, with -u, mounts nothing: no such failure exists there.
    if rc != 0 and err and all(l.startswith('cannot mount ') for l in err):
        rc, err = 0, []
    sys.stdout.write(p.stdout)
    for line in err:
        sys.stderr.write(line + '\n')
    if rc == 0:
        after = mounted_filesystems()
        for name in sorted(after - before, reverse=True):
            run([REAL_ZFS, 'unmount', name])
        # What was mounted before stays mounted, as illumos' online receive
        # leaves it (over the directory a child mount made, if need be).
        for name in sorted(before - after):
            if run([REAL_ZFS, 'mount', name]).returncode != 0:
                run([REAL_ZFS, 'mount', '-O', name])
    sys.exit(rc)


def busy_datasets():
    """What a running zone holds (illumos: mounted in use, or open zvols):
    its zonepath dataset, its disks and its cores dataset, with children."""
    busy = set()
    for name in running_zones():
        zone = load_zone(name)
        if zone is not None:
            busy.update(zone_datasets(zone))
            busy.add('%s/cores/%s' % (POOL, name))
    return busy


def destroyed_by(target, bools):
    """The filesystems `zfs destroy [-r|-R] target` would destroy, deepest
    first; None when zfs will refuse on its own (no such dataset, children)."""
    p = run([REAL_ZFS, 'list', '-H', '-o', 'name', '-r', '-t', 'filesystem,volume', target])
    names = p.stdout.split()
    if p.returncode != 0 or (len(names) > 1 and not {'r', 'R'} & set(bools)):
        return None
    if 'R' in bools:  # and every clone of their snapshots, with its children
        p = run([REAL_ZFS, 'list', '-H', '-o', 'name,origin', '-t', 'filesystem,volume'])
        origin = {n: o.split('@')[0] for n, o in
                  (line.split('\t') for line in p.stdout.splitlines())}
        doomed, grown = set(names), True
        while grown:
            clones = {n for n, o in origin.items() if o in doomed and n not in doomed}
            doomed |= {n for n in origin for c in clones if n == c or n.startswith(c + '/')}
            grown = bool(clones)
        names = list(doomed)
    return sorted(set(names), reverse=True)


def refuse_busy(target, bools):
    """A running zone's datasets cannot be destroyed (snapshots can)."""
    busy = busy_datasets()
    if not busy:
        return
    for name in destroyed_by(target, bools) or []:
        if any(name == b or name.startswith(b + '/') for b in busy):
            raise Fail("cannot destroy '%s': dataset is busy" % name)


def zfs_destroy(args):
    """illumos unmounts before destroying; zfs-fuse answers 'busy' instead."""
    bools, _, operands = parse_opts(args, ARG_LETTERS['destroy'])
    target = operands[-1] if operands else ''
    if target:
        refuse_held(target, bools)
    if target and '@' not in target:
        refuse_busy(target, bools)
        p = run([REAL_ZFS, 'list', '-H', '-o', 'name,mounted', '-r', '-t', 'filesystem', target])
        for line in sorted(p.stdout.splitlines(), reverse=True):
            if line.endswith('\tyes'):
                run([REAL_ZFS, 'unmount', line.split('\t')[0]])
    for attempt in range(20):
        p = run([REAL_ZFS, 'destroy'] + args)
        if 'dataset is busy' not in p.stderr or attempt == 19:
            break
        time.sleep(0.1)  # FUSE releases the unmounted fs asynchronously
    sys.stdout.write(p.stdout)
    sys.stderr.write(p.stderr)
    sys.exit(p.returncode)


# ---------------------------------------------------------------- user holds
# zfs-fuse keeps real user holds (`zfs hold`/`release` work, a held snapshot
# is not destroyed, `userrefs` counts them) but its `zfs holds` needs a
# Python module it lacks, and it does not protect a snapshot a running send
# reads.  So the front records each hold's tag and time in holds.json
# ({snapshot: {guid, tags: {tag: epoch}}}; the guid tells a snapshot made
# again under the same name), each running send in sends/PID, and answers
# `holds` and the destroy refusals itself, with illumos' messages
# (usr/src/cmd/zfs/zfs_main.c, usr/src/lib/libzfs/common/libzfs_dataset.c).

class HoldsLock(CNLock):
    """Serialises changes to holds.json (hold and release read-modify-write)."""

    def __enter__(self):
        self.f = open(state_path('.holds.lock'), 'a')
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self


def snapshot_guids(names, prop='guid'):
    """{snapshot: its guid (or another property)} of those that exist."""
    if not names:
        return {}
    p = run([REAL_ZFS, 'get', '-H', '-p', '-o', 'name,value', prop] + list(names))
    return dict(line.split('\t', 1) for line in p.stdout.splitlines())


def same_named_snapshots(snapshot, recursive):
    """snapshot, and with -r every descendant's snapshot of that name."""
    if not recursive:
        return [snapshot]
    ds, name = snapshot.split('@', 1)
    p = run([REAL_ZFS, 'list', '-H', '-o', 'name', '-t', 'snapshot', '-r', ds])
    return [n for n in p.stdout.split() if n.endswith('@' + name)] or [snapshot]


HOLD_MESSAGES = {'hold': (r"^cannot hold '([^']*)': ", r"cannot hold snapshot '\1': "),
                 'release': (r"^cannot release '[^']*' from '([^']*)': ",
                             r"cannot release hold from snapshot '\1': ")}


def zfs_hold_release(sub, args):
    """`zfs hold|release [-r] TAG SNAP...`: the real one, with illumos' words
    (zfs-fuse says `cannot hold 'S': ...`, `cannot release 'T' from 'S': ...`)
    and the tag recorded for `zfs holds`.  `release -r` releases the tag from
    the snapshots that have it, as illumos' zfs_release_one() picks them
    (zfs-fuse refuses all when the named snapshot lacks it)."""
    bools, _, operands = parse_opts(args, '')
    if len(operands) < 2:
        os.execv(REAL_ZFS, [REAL_ZFS, sub] + args)
    tag, failed = operands[0], False
    with HoldsLock():
        holds = read_json(state_path('holds.json'), {})
        for snap in operands[1:]:
            names = same_named_snapshots(snap, 'r' in bools) if '@' in snap else [snap]
            if sub == 'release' and len(names) > 1:  # only those that have it
                names = [n for n in names if tag in holds.get(n, {}).get('tags', {})] or [snap]
            flags = ['-r'] if 'r' in bools and sub == 'hold' else []  # zfs-fuse's release -r fails
            for name in names if sub == 'release' else [snap]:
                p = run([REAL_ZFS, sub] + flags + [tag, name])
                pattern, repl = HOLD_MESSAGES[sub]
                sys.stderr.write(re.sub(pattern, repl, p.stderr, flags=re.M))
                failed = failed or p.returncode != 0
            if p.returncode != 0:
                continue
            for name, guid in snapshot_guids(names).items():
                entry = holds.get(name)
                if entry is None or entry['guid'] != guid:
                    entry = holds[name] = {'guid': guid, 'tags': {}}
                if sub == 'hold':
                    entry['tags'].setdefault(tag, int(time.time()))
                else:
                    entry['tags'].pop(tag, None)
                if not entry['tags']:
                    del holds[name]
        write_atomic(state_path('holds.json'), json.dumps(holds))
    sys.exit(1 if failed else 0)


def holds_of(snapshots):
    """{snapshot: [(tag, epoch)]}: the user holds recorded and the temporary
    `.send-PID-1` holds of running `send -R`/`-I`, as illumos lists them."""
    holds = read_json(state_path('holds.json'), {})
    guids = snapshot_guids(snapshots)
    refs = snapshot_guids(snapshots, 'userrefs')  # zfs-fuse's own count has the last word
    sending = sends_in_progress()
    out = {}
    for name in snapshots:
        entry = holds.get(name)
        tags = (entry['tags'].items() if entry and entry['guid'] == guids.get(name)
                and refs.get(name, '0') != '0' else [])
        temp = [(t, when) for t, when in sending.get(name, []) if t]
        out[name] = sorted(tags, key=lambda kv: (kv[1], kv[0])) + temp
    return out


def zfs_holds(args):
    """`zfs holds [-rH] SNAP...` (zfs_do_holds()): `NAME<TAB>TAG<TAB>TIMESTAMP`
    with -H, else padded columns under a header; a snapshot without holds
    prints nothing; a missing one `cannot open 'S': dataset does not exist`
    and exit 1; when no snapshot was found, `no datasets available`."""
    bools, _, operands = parse_opts(args, '')
    if not operands:
        raise Fail('usage:\n\tholds [-rH] <snapshot> ...', 2)
    found, errors = [], 0
    for snap in operands:
        if '@' not in snap:
            sys.stderr.write("'%s' is not a snapshot\n" % snap)
            errors += 1
            continue
        names = same_named_snapshots(snap, 'r' in bools)
        existing = snapshot_guids(names)
        if not existing:
            sys.stderr.write("cannot open '%s': dataset does not exist\n"
                             % (snap.split('@')[0] if 'r' in bools else snap))
            errors += 1
        found += [n for n in names if n in existing and n not in found]
    rows = [(n, tag, time.strftime('%a %b %e %k:%M %Y', time.localtime(when)))
            for n, tags in holds_of(found).items() for tag, when in tags]
    if 'H' in bools:
        for row in rows:
            print('\t'.join(row))
    else:
        nw = max([len(n) for n in found] + [0])
        tw = max([len(r[1]) for r in rows] + [0])
        for name, tag, when in [('NAME', 'TAG', 'TIMESTAMP')] + rows:
            print('%-*s  %-*s  %s' % (nw, name, tw, tag, when))
    if not found:
        print('no datasets available')
    sys.exit(1 if errors else 0)


# ---------------------------------------------------------------- sends' holds
# illumos' `zfs send` keeps the snapshot it sends long-held
# (dsl_dataset_long_hold() in dmu_send), and libzfs' `send -R`/`-I` puts a
# temporary user hold `.send-PID-1` on every snapshot of the stream for the
# whole send (zfs_send(), libzfs_sendrecv.c): while it runs, destroying one
# of them is EBUSY.  The front writes sends/PID before it becomes (execv) or
# starts the real send; the record counts while that process lives.

def register_send(args):
    bools, valued, operands = parse_opts(args, ARG_LETTERS['send'])
    if not operands or '@' not in operands[-1]:
        return
    snaps, tag = sent_snapshots(bools, dict(valued), operands[-1])
    os.makedirs(state_path('sends'), exist_ok=True)
    write_atomic(state_path('sends', str(os.getpid())),
                 json.dumps({'snapshots': snaps, 'tag': tag, 'time': int(time.time())}))


def sent_snapshots(bools, valued, to):
    """(the snapshots a send holds, its temporary hold tag or None): the one
    sent, or for -R/-I every snapshot from the -i/-I one (or the first)
    through `to`, in `to`'s dataset (-I) or its whole subtree (-R)."""
    if 'R' not in bools and 'I' not in valued:
        return [to], None
    ds = to.split('@')[0]
    # `get -p`, not `list`: list prints a txg past 999 as "1.07K".
    p = run([REAL_ZFS, 'get', '-H', '-p', '-o', 'name,value', 'createtxg']
            + (['-r'] if 'R' in bools else ['-d', '1']) + [ds])
    txg = dict((n, int(t)) for n, t in (line.split('\t') for line in p.stdout.splitlines())
               if '@' in n)
    frm = valued.get('I') or valued.get('i')
    if frm and frm.startswith('@'):
        frm = ds + frm
    if to not in txg:
        return [to], None
    low = txg.get(frm, 0) if frm else 0
    return ([n for n, t in txg.items() if low <= t <= txg[to]],
            '.send-%d-1' % os.getpid())


def send_running(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return b'send' in f.read().split(b'\0')
    except (FileNotFoundError, ProcessLookupError):
        return False


def sends_in_progress():
    """{snapshot: [(temporary tag or None, epoch)]} of the running sends;
    records of ended ones are removed."""
    out = {}
    try:
        pids = os.listdir(state_path('sends'))
    except FileNotFoundError:
        return out
    for name in pids:
        path = state_path('sends', name)
        if not name.isdigit():
            continue
        if not send_running(int(name)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            continue
        rec = read_json(path, {})
        for snap in rec.get('snapshots', []):
            out.setdefault(snap, []).append((rec.get('tag'), rec.get('time', 0)))
    return out


def doomed_snapshots(target, bools):
    """[(snapshot, userrefs)] that `zfs destroy [-r|-R] target` would destroy;
    [] when zfs refuses on its own (no such dataset, children without -r)."""
    if '@' in target:
        ds, name = target.split('@', 1)
        argv = ['-r', ds] if 'r' in bools else [target]
        keep = lambda n: n.endswith('@' + name)
    else:
        if not {'r', 'R'} & set(bools):
            return []
        datasets = set(destroyed_by(target, bools) or [])
        argv = ['-r', target] if 'R' not in bools else []
        keep = lambda n: n.split('@')[0] in datasets
    p = run([REAL_ZFS, 'list', '-H', '-o', 'name,userrefs', '-t', 'snapshot'] + argv)
    return [(n, int(r)) for n, r in (line.split('\t') for line in p.stdout.splitlines())
            if keep(n)]


def refuse_held(target, bools):
    """illumos destroys the snapshots first, all or none (lzc_destroy_snaps()):
    one held (a user hold, unless -d defers it) or read by a running send makes
    every such snapshot a line `cannot destroy snapshot S: dataset is busy`
    (zfs_destroy_snaps_nvl()), exit 1, and nothing is destroyed."""
    sending = sends_in_progress()
    busy = [n for n, refs in doomed_snapshots(target, bools)
            if (refs > 0 and 'd' not in bools) or n in sending]
    if busy:
        raise Fail('\n'.join('cannot destroy snapshot %s: dataset is busy' % n for n in busy))


def size_to_bytes(text):
    m = re.match(r'^([\d.]+)([KMGTPE]?)$', text)
    if not m:
        return text
    return str(int(float(m.group(1)) * (1024 ** ' KMGTPE'.index(m.group(2) or ' '))))


def front_zpool(args):
    """`zpool list -p`: zfs-fuse has no -p; convert its rounded sizes."""
    had_p, rest = without_flag(args[1:], 'p', ARG_LETTERS['zpool-list'])
    if args[:1] != ['list'] or not had_p:
        os.execv(REAL_ZPOOL, [REAL_ZPOOL] + args)
    p = run([REAL_ZPOOL, 'list'] + rest)
    sys.stderr.write(p.stderr)
    for line in p.stdout.splitlines():
        print('\t'.join(size_to_bytes(f) for f in line.split('\t')))
    sys.exit(p.returncode)


# ---------------------------------------------------------------- sed
#
# The CN's /usr/bin/sed is illumos' (usr/src/cmd/sed/main.c, derived from
# FreeBSD's): getopt "EI:ae:f:i:lnr", so -i and -I TAKE the backup extension
# as their argument, the next word.  `sed -i '/x/d' FILE` (GNU's in-place
# edit) there reads '/x/d' as the extension and FILE as the script: it fails
# to compile it (exit 1) and changes nothing; cn-commands.md therefore edits
# through a temp file and mv.  This front parses the options as illumos does
# and runs GNU sed (/bin/sed) with their GNU equivalents: -E/-r -E, -n, -e,
# -f, -l (line buffered) -u, -a (delayed w files) nothing, -i EXT / -I EXT
# --in-place=EXT (EXT '' : no backup).  The script language is GNU's.

REAL_SED = '/bin/sed'
SED_USAGE = ('usage: sed script [-Ealn] [-i extension] [file ...]\n'
             '       sed [-Ealn] [-i extension] [-e script] ... [-f script_file] ... [file ...]')


def sed_getopt(args, optstring):
    """POSIX getopt(3): [(letter, value or None)], operands; Fail as illumos'
    getopt and usage() do on an unknown option or a missing argument."""
    opts, i = [], 0
    while i < len(args):
        word = args[i]
        if word == '--':
            i += 1
            break
        if not word.startswith('-') or word == '-':
            break
        j = 1
        while j < len(word):
            letter = word[j]
            at = optstring.find(letter)
            if at < 0 or letter == ':':
                raise Fail('sed: illegal option -- %s\n%s' % (letter, SED_USAGE))
            if optstring[at + 1:at + 2] == ':':
                if j + 1 < len(word):
                    opts.append((letter, word[j + 1:]))
                elif i + 1 < len(args):
                    i += 1
                    opts.append((letter, args[i]))
                else:
                    raise Fail('sed: option requires an argument -- %s\n%s'
                               % (letter, SED_USAGE))
                break
            opts.append((letter, None))
            j += 1
        i += 1
    return opts, args[i:]


def sed_main(args):
    opts, operands = sed_getopt(args, 'EI:ae:f:i:lnr')
    gnu, inplace, scripted = [], None, False
    for letter, value in opts:
        if letter in 'Er':
            gnu.append('-E')
        elif letter in 'nef':
            gnu += ['-' + letter] + ([value] if value is not None else [])
            scripted = scripted or letter in 'ef'
        elif letter == 'l':
            gnu.append('-u')
        elif letter in 'iI':
            inplace = value
    if not scripted and operands:
        gnu += ['-e', operands[0]]
        operands = operands[1:]
    if inplace is not None:
        if not operands:
            # illumos compiles the script first, then refuses stdin
            p = subprocess.run(['sed', '-n'] + gnu, executable=REAL_SED,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True)
            if p.returncode != 0:
                raise Fail(p.stderr.rstrip('\n'))
            raise Fail('sed: -I or -i may not be used with stdin')
        gnu.insert(0, '--in-place=' + inplace)
    rc = subprocess.call(['sed'] + gnu + ['--'] + operands, executable=REAL_SED)
    sys.exit(1 if rc else 0)


# ---------------------------------------------------------------- injected faults
#
# /var/lib/lab-cn/faults.json holds rules that the lab (Lab.cn_fault,
# Lab.cn_throttle) writes for migd's fault tests: [{prog, args (a regex
# searched in the arguments joined by spaces), count (-1: until cleared),
# delay_s, and either exit/stdout/stderr (fail without running the command),
# or throttle_bps/stream (run it with stdout or stdin flowing at that rate),
# or neither (only the delay)}].  The first matching rule is used; each use
# is logged to faults.log.  Commands the lab runs itself set LAB_NO_FAULTS.

def take_fault(prog, args):
    """The first rule matching this command, one of its uses consumed."""
    path = state_path('faults.json')
    if os.environ.get('LAB_NO_FAULTS') or not os.path.exists(path):
        return None
    line = ' '.join(args)
    with open(state_path('.faults.lock'), 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rules = read_json(path, [])
        for rule in rules:
            if rule.get('prog') in (None, prog) and re.search(rule.get('args') or '', line):
                if rule.get('count', 1) > 0:
                    rule['count'] = rule.get('count', 1) - 1
                    if rule['count'] == 0:
                        rules.remove(rule)
                    write_atomic(path, json.dumps(rules))
                break
        else:
            return None
    with open(state_path('faults.log'), 'a') as log:
        log.write(json.dumps({'time': round(time.time(), 3), 'prog': prog, 'args': args,
                              'rule': rule.get('id')}) + '\n')
    return rule


def apply_fault(rule):
    """Delay, then fail or throttle; return only when the command should run."""
    time.sleep(float(rule.get('delay_s') or 0))
    if rule.get('throttle_bps'):
        sys.exit(run_throttled(int(rule['throttle_bps']), rule.get('stream', 'stdout')))
    if rule.get('exit') is not None:
        for stream, text in ((sys.stdout, rule.get('stdout')), (sys.stderr, rule.get('stderr'))):
            if text:
                stream.write(text if text.endswith('\n') else text + '\n')
        sys.exit(int(rule['exit']))


def run_throttled(bps, stream):
    """Run this very command again (faults off) as a child and pass its
    stdout (or our stdin) through at about bps bytes a second.  `zfs send`
    still execs the real zfs in the child; only the pipe is slowed down."""
    env = dict(os.environ, LAB_NO_FAULTS='1')
    if stream == 'stdin':
        child = subprocess.Popen(sys.argv, stdin=subprocess.PIPE, env=env)
        src, dst = sys.stdin.fileno(), child.stdin.fileno()
    else:
        child = subprocess.Popen(sys.argv, stdout=subprocess.PIPE, env=env)
        src, dst = child.stdout.fileno(), sys.stdout.fileno()
    try:
        pump(src, dst, bps)
    except BrokenPipeError:
        pass
    finally:
        (child.stdin if stream == 'stdin' else child.stdout).close()
    return end_child(child)


def end_child(child):
    """Wait for a child whose pipe we closed: it ends by itself on EPIPE (or
    EOF), as a `zfs send` whose reader went away does on illumos.  Never
    SIGKILL a zfs-fuse `zfs send` at once: killed in the middle of its ioctl,
    it leaves the send's temporary hold on the snapshot for good ("dataset
    is busy" long after the send is gone), which illumos never does (its
    holds go with the process's cleanup fd).  A kill only if it hangs."""
    try:
        return child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.wait()


def pump(src, dst, bps):
    """Copy src to dst, sleeping so that the average rate stays at bps."""
    started = time.monotonic()

    def keep_pace(sent):
        ahead = sent / bps - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    copy_chunks(src, dst, max(1024, min(1 << 20, bps // 20)), keep_pace)


def copy_chunks(src, dst, chunk, each):
    """Copy src to dst until EOF, calling each(bytes so far) after every chunk.

    The fronts that count a stream (send -v, throttles) sit in a path that on
    illumos has no extra hop, so the copy must cost next to nothing: the
    bytes move pipe to fd in the kernel (splice; src is a pipe), through a
    pipe grown to the chunk so that the writer is not woken every 64 KiB.
    Where splice cannot serve (neither end a pipe), a plain copy."""
    try:
        fcntl.fcntl(src, getattr(fcntl, 'F_SETPIPE_SZ', 1031), max(chunk, 1 << 16))
    except OSError:
        pass
    sent = 0
    spliced = hasattr(os, 'splice')
    while True:
        if spliced:
            try:
                n = os.splice(src, dst, chunk)
            except OSError as e:
                if e.errno != errno.EINVAL or sent:
                    raise
                spliced = False
                continue
        else:
            data = os.read(src, chunk)
            view = memoryview(data)
            while view:
                view = view[os.write(dst, view):]
            n = len(data)
        if not n:
            return
        sent += n
        each(sent)


# ---------------------------------------------------------------- dispatch

def sysinfo_main(args):
    print(json.dumps(sysinfo(), indent=2))


COMMANDS = {'vmadm': vmadm_main, 'zoneadm': zoneadm_main, 'zonecfg': zonecfg_main,
            'imgadm': imgadm_main, 'svcadm': svcadm_main, 'sysinfo': sysinfo_main,
            'svcs': svcs_main, 'zfs': front_zfs, 'zpool': front_zpool, 'sed': sed_main}


LOCKED = ('zonecfg', 'zoneadm')


def main():
    prog = os.path.basename(sys.argv[0])
    if prog not in COMMANDS:
        sys.stderr.write('smartos.py: call me as one of %s\n' % ', '.join(sorted(COMMANDS)))
        return 2
    try:
        rule = take_fault(prog, sys.argv[1:])
        if rule is not None:
            apply_fault(rule)
        if prog in ('vmadm', 'zoneadm', 'svcs'):
            # a self-restart that fell due is seen by every command that
            # looks at running zones, even before the agent carried it out
            apply_due_restarts()
        if prog in LOCKED or sys.argv[1:2] in (['start'], ['stop'], ['import']):
            with CNLock():
                COMMANDS[prog](sys.argv[1:])
        else:
            COMMANDS[prog](sys.argv[1:])
    except Fail as e:
        sys.stderr.write(str(e) + '\n')
        return e.code
    except BrokenPipeError:
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
