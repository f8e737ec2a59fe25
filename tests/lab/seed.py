"""The seeded datacenter `lab-1` of the migd test lab.

Pure data and builders: which servers, networks, images and VMs exist, the
shell scripts that create the images and VMs on the emulated CNs (real ZFS
datasets with real data, zone configs through the emulated zonecfg/zoneadm/
vmadm), and the API state (dc.json) handed to the emulated Triton APIs.
docs/lab.md describes the result; lab.py runs the scripts.
"""
import hashlib
import json
import shlex
import uuid

DATACENTER = 'lab-1'
ADMIN_UUID = '930896af-bf8c-48d4-885c-6573a94b1853'
OWNER_UUID = '7a1a4b7e-63b8-4e2c-9a3c-2a0f5a8d0c11'
HEADNODE_UUID = '00000000-0000-4000-8000-000000000100'
CREATE_TIMESTAMP = '2024-01-15T10:00:00.000Z'
SERVER_RAM_MIB = 65536
SERVER_DISK_MIB = 204800
NEW_PLATFORM = '20240208T000000Z'
OLD_PLATFORM = '20230101T000000Z'


def lab_uuid(kind, name):
    """A deterministic, valid UUID for a seeded object."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, 'migd-lab/%s/%s/%s' % (DATACENTER, kind, name)))


def cn_uuid(n):
    return '00000000-0000-4000-8000-%012d' % n


def cn_ip(n):
    return '127.0.0.%d' % (10 + n)


def cn_platform(n):
    return OLD_PLATFORM if n == 3 else NEW_PLATFORM


NETWORKS = [
    {'uuid': lab_uuid('network', 'external'), 'name': 'external', 'subnet': '192.0.2.0/24',
     'netmask': '255.255.255.0', 'gateway': '192.0.2.1', 'nic_tag': 'external', 'vlan_id': 0},
    {'uuid': lab_uuid('network', 'storage'), 'name': 'storage', 'subnet': '198.51.100.0/24',
     'netmask': '255.255.255.0', 'gateway': '198.51.100.1', 'nic_tag': 'storage', 'vlan_id': 0},
]
NET = {n['name']: n for n in NETWORKS}

# name, version, IMGAPI type, os; every image is `zones/UUID@final`.
IMAGES = [
    {'name': 'base-64-lts', 'version': '23.4.0', 'type': 'zone-dataset', 'os': 'smartos'},
    {'name': 'ubuntu-22.04-lx', 'version': '20240101', 'type': 'lx-dataset', 'os': 'linux'},
    {'name': 'ubuntu-certified-22.04', 'version': '20240101', 'type': 'zvol', 'os': 'linux'},
]
for _img in IMAGES:
    _img['uuid'] = lab_uuid('image', _img['name'])
IMG = {i['name']: i['uuid'] for i in IMAGES}
IMAGE_FOR_BRAND = {'joyent': IMG['base-64-lts'], 'lx': IMG['ubuntu-22.04-lx'],
                   'bhyve': IMG['ubuntu-certified-22.04'], 'kvm': IMG['ubuntu-certified-22.04']}

# alias, cn, brand, state, NICs as (network, ip, reserved-in-NAPI-already), extras
VM_SPECS = [
    {'alias': 'web0', 'cn': 1, 'brand': 'joyent', 'state': 'running',
     'nics': [('external', '192.0.2.10', False), ('external', '192.0.2.11', True)]},
    {'alias': 'lx0', 'cn': 1, 'brand': 'lx', 'state': 'running',
     'nics': [('external', '192.0.2.12', False)]},
    {'alias': 'stopped0', 'cn': 1, 'brand': 'joyent', 'state': 'stopped',
     'nics': [('external', '192.0.2.13', False)]},
    {'alias': 'bhyve0', 'cn': 1, 'brand': 'bhyve', 'state': 'running', 'ram': 2048,
     'nics': [('external', '192.0.2.14', False)]},
    {'alias': 'core0', 'cn': 1, 'brand': 'joyent', 'state': 'running', 'owner': ADMIN_UUID,
     'tags': {'smartdc_role': 'vmapi'}, 'nics': [('external', '192.0.2.15', False)]},
    {'alias': 'nat0', 'cn': 1, 'brand': 'joyent', 'state': 'running',
     'internal_metadata': {'com.joyent:ipnat_subnet': '10.0.0.0/24'},
     'nics': [('external', '192.0.2.16', False)]},
    {'alias': 'stor0', 'cn': 1, 'brand': 'joyent', 'state': 'running',
     'nics': [('storage', '198.51.100.10', False)]},
    {'alias': 'kvm0', 'cn': 2, 'brand': 'kvm', 'state': 'running', 'ram': 2048,
     'nics': [('external', '192.0.2.20', False)]},
]
QUOTA_GIB = 10


def vm_specs(ncns):
    """The VMs that fit on `ncns` CNs, each with uuid, image, ram, owner."""
    out = []
    for i, spec in enumerate(s for s in VM_SPECS if s['cn'] <= ncns):
        vm = dict(spec, uuid=lab_uuid('vm', spec['alias']), image_uuid=IMAGE_FOR_BRAND[spec['brand']])
        vm.setdefault('ram', 1024)
        vm.setdefault('owner', OWNER_UUID)
        vm.setdefault('tags', {})
        vm.setdefault('internal_metadata', {})
        vm['macs'] = ['90:b8:d0:%02x:%02x:%02x' % (vm['cn'], i + 1, k) for k in range(len(vm['nics']))]
        out.append(vm)
    return out


# ---------------------------------------------------------------- servers

def sysinfo(n):
    tags = ['external', 'storage'] if n == 1 else ['external']
    return {
        'UUID': cn_uuid(n), 'Hostname': 'cn%d' % n, 'Admin IP': cn_ip(n),
        'Live Image': cn_platform(n), 'Zpool': 'zones', 'Setup': 'true',
        'MiB of Memory': str(SERVER_RAM_MIB), 'Datacenter Name': DATACENTER,
        'System Type': 'SunOS', 'Boot Time': '1705312800',
        'Network Interfaces': {
            'e0': {'MAC Address': '00:50:56:00:00:%02x' % n, 'ip4addr': cn_ip(n),
                   'Link Status': 'up', 'NIC Names': ['admin']},
            'e1': {'MAC Address': '00:50:56:00:01:%02x' % n, 'ip4addr': '',
                   'Link Status': 'up', 'NIC Names': tags},
        },
    }


def headnode_sysinfo():
    info = sysinfo(0)
    info.update({'UUID': HEADNODE_UUID, 'Hostname': 'headnode', 'Admin IP': '127.0.0.1',
                 'Live Image': NEW_PLATFORM})
    info['Network Interfaces']['e0']['ip4addr'] = '127.0.0.1'
    return info


def server(info, headnode, vms):
    mine = [v for v in vms if v['server_uuid'] == info['UUID']]
    return {
        'uuid': info['UUID'], 'hostname': info['Hostname'], 'datacenter': DATACENTER,
        'setup': True, 'reserved': False, 'status': 'running', 'headnode': headnode,
        'current_platform': info['Live Image'], 'boot_platform': info['Live Image'],
        'ram': SERVER_RAM_MIB,
        'unreserved_ram': SERVER_RAM_MIB - sum(v['ram'] for v in mine),
        'unreserved_disk': SERVER_DISK_MIB - sum(v['quota'] * 1024 for v in mine),
        'traits': {}, 'sysinfo': info,
    }


# ---------------------------------------------------------------- CN scripts

def image_build_script(image, image_dir):
    """Create zones/UUID@final with a few files; export it to the store."""
    u = image['uuid']
    top = '/zones/%s' % u
    files = {'disk.img': 512} if image['type'] == 'zvol' else {'root/bin/busybox': 256}
    lines = ['zfs create zones/%s' % u, 'mkdir -p %s/root/etc' % top,
             'echo %s > %s/root/etc/release' % (shlex.quote('%s %s' % (image['name'], image['version'])), top)]
    for path, kib in files.items():
        lines.append('mkdir -p $(dirname %s/%s)' % (top, path))
        lines.append('head -c %dK /dev/urandom > %s/%s' % (kib, top, path))
    lines += ['zfs snapshot zones/%s@final' % u,
              'zfs send zones/%s@final > %s/%s.zfs' % (u, image_dir, u)]
    return lines


def image_manifest(image, stream_path):
    with open(stream_path, 'rb') as f:
        data = f.read()
    return {'v': 2, 'uuid': image['uuid'], 'name': image['name'], 'version': image['version'],
            'state': 'active', 'disabled': False, 'public': True, 'owner': ADMIN_UUID,
            'type': image['type'], 'os': image['os'],
            'files': [{'size': len(data), 'sha1': hashlib.sha1(data).hexdigest(),
                       'compression': 'none'}]}


def zonecfg_script(vm):
    """What `zonecfg -z UUID -f` receives for a seeded VM."""
    import base64
    lines = ['create -b', 'set zonepath=/zones/%s' % vm['uuid'], 'set brand=%s' % vm['brand'],
             'set autoboot=%s' % ('true' if vm['state'] == 'running' else 'false'),
             'set ip-type=exclusive']
    for k, ((net, ip, _), mac) in enumerate(zip(vm['nics'], vm['macs'])):
        n = NET[net]
        lines += ['add net', 'set physical=net%d' % k, 'set mac-addr=%s' % mac,
                  'set global-nic=%s' % n['nic_tag'], 'set vlan-id=%d' % n['vlan_id'],
                  'add property (name=ip,value="%s")' % ip,
                  'add property (name=netmask,value="%s")' % n['netmask'],
                  'add property (name=gateway,value="%s")' % n['gateway'],
                  'add property (name=network_uuid,value="%s")' % n['uuid']]
        if k == 0:
            lines.append('add property (name=primary,value="true")')
        lines.append('end')
    lines += ['add capped-memory', 'set physical=%dm' % vm['ram'], 'end']
    attrs = {'alias': base64.b64encode(vm['alias'].encode()).decode(),
             'owner-uuid': vm['owner'], 'billing-id': lab_uuid('package', 'default'),
             'create-timestamp': CREATE_TIMESTAMP}
    if vm['brand'] not in ('bhyve', 'kvm'):
        attrs['dataset-uuid'] = vm['image_uuid']
    for k, v in attrs.items():
        lines += ['add attr', 'set name=%s' % k, 'set type=string', 'set value="%s"' % v, 'end']
    if vm['brand'] in ('bhyve', 'kvm'):
        lines += ['add device', 'set match=/dev/zvol/rdsk/%s' % disk0(vm),
                  'add property (name=boot,value="true")',
                  'add property (name=image-uuid,value="%s")' % vm['image_uuid'],
                  'add property (name=image-size,value="10240")',
                  'add property (name=size,value="10240")',
                  'add property (name=model,value="virtio")', 'end']
    return '\n'.join(lines) + '\n'


def disk0(vm):
    return ('zones/%s/disk0' if vm['brand'] == 'bhyve' else 'zones/%s-disk0') % vm['uuid']


def vm_create_script(vm, data_mb, state_dir):
    """Shell lines run inside the VM's CN to create it for real."""
    u, img = vm['uuid'], vm['image_uuid']
    top = '/zones/%s' % u
    if vm['brand'] in ('bhyve', 'kvm'):
        lines = ['zfs create -o quota=%dg zones/%s' % (QUOTA_GIB, u),
                 'zfs clone zones/%s@final %s' % (img, disk0(vm))]
        data_dir = '/' + disk0(vm)
    else:
        lines = ['zfs clone -o quota=%dg zones/%s@final zones/%s' % (QUOTA_GIB, img, u)]
        data_dir = top + '/root'
    meta = {'customer_metadata': {}, 'internal_metadata': vm['internal_metadata']}
    cfg = '%s/seed-%s.zcfg' % (state_dir, u)
    lines += [
        'mkdir -p %s/config %s' % (top, data_dir),
        'echo %s > %s/config/tags.json' % (shlex.quote(json.dumps(vm['tags'])), top),
        'echo %s > %s/config/metadata.json' % (shlex.quote(json.dumps(meta)), top),
        'head -c %dK /dev/urandom > %s/data.bin' % (int(data_mb * 1024), data_dir),
        'echo %s > %s/hostname' % (vm['alias'], data_dir),
        'zfs create -o quota=1000m -o compression=gzip -o mountpoint=%s/cores zones/cores/%s'
        % (top, u),
        'cat > %s <<"EOF"\n%sEOF' % (cfg, zonecfg_script(vm)),
        'zonecfg -z %s -f %s' % (u, cfg), 'rm -f %s' % cfg,
        'zoneadm -z %s attach' % u,
    ]
    if vm['state'] == 'running':
        lines.append('vmadm start %s 2>/dev/null' % u)
    return lines


# ---------------------------------------------------------------- API state

def napi_records(vms):
    nics, ips = [], []
    for vm in vms:
        spec = vm['spec']
        for k, ((net, ip, reserved), mac) in enumerate(zip(spec['nics'], spec['macs'])):
            n = NET[net]
            nics.append({'mac': mac, 'ip': ip, 'netmask': n['netmask'], 'gateway': n['gateway'],
                         'network_uuid': n['uuid'], 'nic_tag': n['nic_tag'],
                         'vlan_id': n['vlan_id'], 'primary': k == 0, 'state': 'running',
                         'belongs_to_uuid': vm['uuid'], 'belongs_to_type': 'zone',
                         'owner_uuid': vm['owner_uuid'], 'cn_uuid': vm['server_uuid']})
            ips.append({'ip': ip, 'network_uuid': n['uuid'], 'reserved': reserved,
                        'free': False, 'belongs_to_uuid': vm['uuid'],
                        'belongs_to_type': 'zone', 'owner_uuid': vm['owner_uuid']})
    return nics, ips


def dc_state(ncns, vm_objects, manifests):
    """dc.json: what the emulated VMAPI/CNAPI/NAPI/IMGAPI start with.

    vm_objects are `vmadm get` outputs (with a private 'spec' key)."""
    vms = [{k: v for k, v in o.items() if k != 'spec'} for o in vm_objects]
    servers = [server(headnode_sysinfo(), True, vms)]
    servers += [server(sysinfo(n), False, vms) for n in range(1, ncns + 1)]
    nics, ips = napi_records(vm_objects)
    return {'datacenter': DATACENTER, 'admin_uuid': ADMIN_UUID, 'servers': servers,
            'networks': NETWORKS, 'ips': ips, 'nics': nics, 'images': manifests, 'vms': vms}
