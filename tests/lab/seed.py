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


# The overlay rule of fabric networks and the NIC tag of the underlay that
# carries them: NAPI's config overlay.overlayNicTag / underlayNicTag defaults.
OVERLAY_TAG = 'sdc_overlay'
UNDERLAY_TAG = 'sdc_underlay'
UNDERLAY_CNS = (1, 2)   # CNs with an underlay (cn3 has none: fabric NICs cannot go there)
FABRIC_VNET_ID = 4151198  # the owner's virtual network id (NAPI: per owner, 24 bits)

NETWORKS = [
    {'uuid': lab_uuid('network', 'external'), 'name': 'external', 'subnet': '192.0.2.0/24',
     'netmask': '255.255.255.0', 'gateway': '192.0.2.1', 'nic_tag': 'external', 'vlan_id': 0},
    {'uuid': lab_uuid('network', 'storage'), 'name': 'storage', 'subnet': '198.51.100.0/24',
     'netmask': '255.255.255.0', 'gateway': '198.51.100.1', 'nic_tag': 'storage', 'vlan_id': 0},
    # A fabric network as NAPI's CreateFabricNetwork answers it: nic_tag is the
    # overlay rule, and a NIC on it has nic_tag "sdc_overlay/VNET_ID".
    {'uuid': lab_uuid('network', 'web-fabric'), 'name': 'web-fabric', 'subnet': '203.0.113.0/24',
     'netmask': '255.255.255.0', 'gateway': '203.0.113.1', 'nic_tag': OVERLAY_TAG, 'vlan_id': 2,
     'fabric': True, 'vnet_id': FABRIC_VNET_ID, 'mtu': 8500, 'owner_uuid': OWNER_UUID,
     'internet_nat': False, 'gateway_provisioned': False, 'resolvers': [],
     'provision_start_ip': '203.0.113.2', 'provision_end_ip': '203.0.113.254'},
]
NET = {n['name']: n for n in NETWORKS}


def nic_tag_of(net):
    """A NIC's nic_tag on network net: NAPI's nic.serialize() writes a fabric
    NIC's tag as RULE/VNET_ID, so that the CN knows which overlay to join."""
    if net.get('fabric'):
        return '%s/%d' % (net['nic_tag'], net['vnet_id'])
    return net['nic_tag']

# name, version, IMGAPI type, os; every image is `zones/UUID@final`.
IMAGES = [
    {'name': 'base-64-lts', 'version': '23.4.0', 'type': 'zone-dataset', 'os': 'smartos'},
    {'name': 'ubuntu-22.04-lx', 'version': '20240101', 'type': 'lx-dataset', 'os': 'linux'},
    {'name': 'ubuntu-certified-22.04', 'version': '20240101', 'type': 'zvol', 'os': 'linux'},
    # a single-layer docker image (no origin), as sdc-docker imports a base layer
    {'name': 'busybox', 'version': '1.36.1', 'type': 'docker', 'os': 'linux'},
]
for _img in IMAGES:
    _img['uuid'] = lab_uuid('image', _img['name'])
IMG = {i['name']: i['uuid'] for i in IMAGES}
IMAGE_FOR_BRAND = {'joyent': IMG['base-64-lts'], 'lx': IMG['ubuntu-22.04-lx'],
                   'bhyve': IMG['ubuntu-certified-22.04'], 'kvm': IMG['ubuntu-certified-22.04']}
DISK_MIB = 10240  # a disk made from the zvol image: the image's size


def docker_metadata(name):
    """internal_metadata of a docker container as sdc-docker writes it."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    return {'docker:id': digest, 'docker:imageid': hashlib.sha256(b'busybox').hexdigest(),
            'docker:imageuuid': IMG['busybox'], 'docker:cmd': '["sh"]',
            'docker:entrypoint': '[]', 'docker:workdir': '/', 'docker:user': '',
            'docker:env': '["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]',
            'docker:tty': True, 'docker:open_stdin': True, 'docker:restartpolicy': 'no',
            'docker:logdriver': 'json-file'}

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
     'nics': [('external', '192.0.2.20', False)],
     # the boot disk from the image, and an empty data disk (no image, no origin)
     'disks': [{'image': True, 'size': DISK_MIB}, {'image': False, 'size': 5120}]},
    {'alias': 'docker0', 'cn': 2, 'brand': 'lx', 'state': 'running', 'docker': True,
     'image': IMG['busybox'], 'tags': {'sdc_docker': True},
     'internal_metadata': docker_metadata('docker0'),
     'nics': [('external', '192.0.2.21', False)]},
    {'alias': 'deleg0', 'cn': 2, 'brand': 'joyent', 'state': 'running', 'delegate_dataset': True,
     'nics': [('external', '192.0.2.22', False)]},
    {'alias': 'fabric0', 'cn': 2, 'brand': 'joyent', 'state': 'running',
     'nics': [('web-fabric', '203.0.113.10', False)]},
]
QUOTA_GIB = 10


def vm_specs(ncns):
    """The VMs that fit on `ncns` CNs, each with uuid, image, ram, owner, disks."""
    out = []
    for i, spec in enumerate(s for s in VM_SPECS if s['cn'] <= ncns):
        vm = dict(spec, uuid=lab_uuid('vm', spec['alias']))
        vm['image_uuid'] = spec.get('image', IMAGE_FOR_BRAND[spec['brand']])
        vm.setdefault('ram', 1024)
        vm.setdefault('owner', OWNER_UUID)
        vm.setdefault('tags', {})
        vm.setdefault('internal_metadata', {})
        if vm['brand'] in ('bhyve', 'kvm'):
            vm.setdefault('disks', [{'image': True, 'size': DISK_MIB}])
        vm['macs'] = ['90:b8:d0:%02x:%02x:%02x' % (vm['cn'], i + 1, k) for k in range(len(vm['nics']))]
        out.append(vm)
    return out


def disk_name(vm, k):
    """The dataset of disk k: a child of the zone dataset for bhyve, beside it for KVM."""
    return ('zones/%s/disk%d' if vm['brand'] == 'bhyve' else 'zones/%s-disk%d') % (vm['uuid'], k)


# ---------------------------------------------------------------- servers

def sysinfo(n):
    tags = ['external', 'storage'] if n == 1 else ['external']
    info = {
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
    if n in UNDERLAY_CNS:
        # A Triton CN with fabrics: a NIC tagged sdc_underlay, and on it the
        # underlay vnic sdc_underlay0 (its IP on the underlay network) that
        # lists the overlay rules it carries; DAPI and VMAPI read "Overlay Nic
        # Tags" to decide where a fabric NIC may go.
        info['Network Interfaces']['e2'] = {
            'MAC Address': '00:50:56:00:02:%02x' % n, 'ip4addr': '', 'Link Status': 'up',
            'NIC Names': [UNDERLAY_TAG]}
        info['Virtual Network Interfaces'] = {
            'sdc_underlay0': {'MAC Address': '90:b8:d0:ff:00:%02x' % n,
                              'ip4addr': '198.18.0.%d' % (10 + n), 'Link Status': 'up',
                              'Host Interface': 'e2', 'Overlay Nic Tags': [OVERLAY_TAG],
                              'VLAN': '0'}}
    return info


def headnode_sysinfo():
    info = sysinfo(0)  # no underlay: no VM goes to the head node
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
        'unreserved_disk': SERVER_DISK_MIB - sum(v['quota'] * 1024 + sum(
            d.get('size', 0) for d in v.get('disks', [])) for v in mine),
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
                  'set global-nic=%s' % nic_tag_of(n), 'set vlan-id=%d' % n['vlan_id'],
                  'add property (name=ip,value="%s")' % ip,
                  'add property (name=netmask,value="%s")' % n['netmask'],
                  'add property (name=gateway,value="%s")' % n['gateway'],
                  'add property (name=network_uuid,value="%s")' % n['uuid']]
        if 'mtu' in n:
            lines.append('add property (name=mtu,value="%d")' % n['mtu'])
        if k == 0:
            lines.append('add property (name=primary,value="true")')
        lines.append('end')
    lines += ['add capped-memory', 'set physical=%dm' % vm['ram'], 'end']
    attrs = {'alias': base64.b64encode(vm['alias'].encode()).decode(),
             'owner-uuid': vm['owner'], 'billing-id': lab_uuid('package', 'default'),
             'create-timestamp': CREATE_TIMESTAMP}
    if vm['brand'] not in ('bhyve', 'kvm'):
        attrs['dataset-uuid'] = vm['image_uuid']
    if vm.get('docker'):
        attrs['docker'] = 'true'  # VM.js: zone.attr.docker
    for k, v in attrs.items():
        lines += ['add attr', 'set name=%s' % k, 'set type=string', 'set value="%s"' % v, 'end']
    if vm.get('delegate_dataset'):
        # VM.js createDelegatedDataset(): `add dataset; set name=ZONEROOT/data; end`
        lines += ['add dataset', 'set name=zones/%s/data' % vm['uuid'], 'end']
    for k, disk in enumerate(vm.get('disks', [])):
        lines += ['add device', 'set match=/dev/zvol/rdsk/%s' % disk_name(vm, k)]
        if k == 0:
            lines.append('add property (name=boot,value="true")')
        if disk['image']:
            lines += ['add property (name=image-uuid,value="%s")' % vm['image_uuid'],
                      'add property (name=image-size,value="%d")' % disk['size']]
        lines += ['add property (name=size,value="%d")' % disk['size'],
                  'add property (name=model,value="virtio")', 'end']
    return '\n'.join(lines) + '\n'


def hvm_dataset_lines(vm):
    """The zone dataset and disks of a bhyve or KVM VM, with the space
    properties VM.js gives them.  zfs-fuse has no zvols, so a disk is a
    filesystem whose refreservation stands for the volume's (`auto`: its
    volsize, here the disk's size).  KVM: the zone dataset's quota is the VM's
    quota.  bhyve (VM.js setQuotaBhyve(), RFD 148): the zone dataset's refquota
    is the VM's quota and its refreservation 1 MiB less, and its quota and
    reservation are that plus the disks' refreservations: so a snapshot of a
    disk holding more than 1 MiB of its own data does not fit until the quota
    is raised."""
    u = vm['uuid']
    quota = QUOTA_GIB << 30
    lines = ['zfs create zones/%s' % u]
    refres = 0
    for k, disk in enumerate(vm['disks']):
        size = disk['size'] << 20
        refres += size
        origin = 'zfs clone -o refreservation=%d zones/%s@final' % (size, vm['image_uuid'])
        lines.append('%s %s' % (origin if disk['image'] else
                                'zfs create -o refreservation=%d' % size, disk_name(vm, k)))
    if vm['brand'] == 'bhyve':
        lines += ['zfs set refquota=%d zones/%s' % (quota, u),
                  'zfs set quota=%d zones/%s' % (quota + refres, u),
                  'zfs set reservation=%d zones/%s' % (quota + refres, u),
                  'zfs set refreservation=%d zones/%s' % (quota - (1 << 20), u)]
    else:
        lines.append('zfs set quota=%d zones/%s' % (quota, u))
    return lines


def vm_create_script(vm, data_mb, state_dir):
    """Shell lines run inside the VM's CN to create it for real."""
    u, img = vm['uuid'], vm['image_uuid']
    top = '/zones/%s' % u
    if vm['brand'] in ('bhyve', 'kvm'):
        lines = hvm_dataset_lines(vm)
        data_dirs = ['/' + disk_name(vm, k) for k in range(len(vm['disks']))]
    else:
        lines = ['zfs clone -o quota=%dg zones/%s@final zones/%s' % (QUOTA_GIB, img, u)]
        data_dirs = [top + '/root']
    if vm.get('delegate_dataset'):
        # what the zone keeps in its delegated dataset (written before the
        # first boot, which makes it zoned=on and so unmounted in the GZ)
        lines += ['zfs create zones/%s/data' % u,
                  'mkdir -p %s/data/db' % top,
                  'head -c %dK /dev/urandom > %s/data/db/table.bin' % (int(data_mb * 512), top),
                  'echo %s > %s/data/README' % (vm['alias'], top)]
    meta = {'customer_metadata': {}, 'internal_metadata': vm['internal_metadata']}
    cfg = '%s/seed-%s.zcfg' % (state_dir, u)
    lines += ['mkdir -p %s/config %s' % (top, ' '.join(data_dirs)),
              'echo %s > %s/config/tags.json' % (shlex.quote(json.dumps(vm['tags'])), top),
              'echo %s > %s/config/metadata.json' % (shlex.quote(json.dumps(meta)), top)]
    for k, d in enumerate(data_dirs):
        # the boot disk or zone root gets data_mb of data, a second disk half that
        lines += ['head -c %dK /dev/urandom > %s/data.bin' % (int(data_mb * 1024) >> k, d),
                  'echo %s > %s/hostname' % (vm['alias'], d)]
    lines += [
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
            nic = {'mac': mac, 'ip': ip, 'netmask': n['netmask'], 'gateway': n['gateway'],
                   'network_uuid': n['uuid'], 'nic_tag': nic_tag_of(n),
                   'vlan_id': n['vlan_id'], 'primary': k == 0, 'state': 'running',
                   'belongs_to_uuid': vm['uuid'], 'belongs_to_type': 'zone',
                   'owner_uuid': vm['owner_uuid'], 'cn_uuid': vm['server_uuid']}
            # NAPI serializes these of the network into the NIC (NET_PARAMS)
            for key in ('fabric', 'mtu', 'internet_nat', 'gateway_provisioned', 'resolvers'):
                if key in n:
                    nic[key] = n[key]
            nics.append(nic)
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
