"""Checks the lab's emulated Triton APIs (tests/lab/tritonapi.py) against
/work/shared/spec/triton-apis.md: every call's shape, its error cases and
quirks, and the lab's own admin routes (faults, patches, request log).

Self-contained: the module fixture writes a small datacenter JSON, starts
tritonapi.py as a subprocess and always stops it; it needs no CN or other
part of the lab. Only http.client is used to talk to it.
"""

import http.client
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

LAB_DIR = pathlib.Path(__file__).resolve().parent.parent / "lab"
TRITONAPI = LAB_DIR / "tritonapi.py"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable
APIS = ("vmapi", "cnapi", "napi", "imgapi")
START_TIMEOUT_S = 15

ADMIN = "930896af-bf8c-48d4-885c-6573a94b1853"
OWNER = "5e0c0ab2-7d5c-4b31-9d67-0cd1b1a1f3a1"
HN = "44454c4c-0000-1000-8000-000000000000"
CN1 = "44454c4c-0000-1000-8000-000000000001"
CN2 = "44454c4c-0000-1000-8000-000000000002"
CN3 = "44454c4c-0000-1000-8000-000000000003"
NET_EXT = "a1b2c3d4-0000-4000-8000-00000000e001"
NET_ADMIN = "a1b2c3d4-0000-4000-8000-00000000a001"
IMG_BASE = "11111111-1111-4111-8111-111111111111"
IMG_CHILD = "22222222-2222-4222-8222-222222222222"
VM_WEB = "0a000000-0000-4000-8000-000000000001"
VM_DB = "0a000000-0000-4000-8000-000000000002"
VM_GONE = "0a000000-0000-4000-8000-000000000003"
VM_FAILED = "0a000000-0000-4000-8000-000000000004"
VM_OTHER = "0a000000-0000-4000-8000-000000000005"
VM_PUT = "0a000000-0000-4000-8000-000000000006"
VM_PATCH = "0a000000-0000-4000-8000-000000000007"
UNKNOWN = "deadbeef-dead-4bee-8eef-deadbeefdead"
MAC_WEB = "90:b8:d0:01:02:03"
MAC_DB = "90:b8:d0:0a:0b:0c"


# --- the datacenter the fixture loads ----------------------------------------


def make_server(uuid, hostname, headnode=False, reserved=False, ip="10.0.0.1"):
    return {
        "uuid": uuid, "hostname": hostname, "setup": True,
        "reserved": reserved, "status": "running", "headnode": headnode,
        "current_platform": "20240208T000000Z", "ram": 65536,
        "unreserved_ram": 40000, "unreserved_disk": 900000, "traits": {},
        "sysinfo": {
            "UUID": uuid, "Hostname": hostname, "Admin IP": ip,
            "Live Image": "20240208T000000Z", "Zpool": "zones",
            "Setup": "true", "MiB of Memory": "65536",
            "Network Interfaces": {"e0": {
                "MAC Address": "00:0c:29:00:00:%02x" % (len(hostname) + 1),
                "ip4addr": ip, "Link Status": "up",
                "NIC Names": ["admin", "external"]}},
        },
    }


def make_vm(uuid, alias, state, server, tags=None):
    vm = {
        "uuid": uuid, "alias": alias, "brand": "joyent", "state": state,
        "server_uuid": server, "owner_uuid": OWNER, "ram": 1024, "quota": 10,
        "zfs_filesystem": "zones/" + uuid, "zonepath": "/zones/" + uuid,
        "zpool": "zones", "autoboot": True,
        "create_timestamp": "2024-01-01T00:00:00.000Z",
        "image_uuid": IMG_CHILD, "internal_metadata": {}, "nics": [],
    }
    if tags is not None:
        vm["tags"] = tags
    return vm


def make_nic(mac, ip, vm, cn):
    return {"mac": mac, "ip": ip, "netmask": "255.255.255.0",
            "gateway": "192.0.2.1", "network_uuid": NET_EXT,
            "nic_tag": "external", "vlan_id": 0, "primary": True,
            "state": "running", "belongs_to_uuid": vm,
            "belongs_to_type": "zone", "owner_uuid": OWNER, "cn_uuid": cn}


def make_datacenter():
    return {
        "datacenter": "lab-1", "admin_uuid": ADMIN,
        "servers": [make_server(HN, "headnode", headnode=True),
                    make_server(CN1, "cn1", ip="10.0.0.2"),
                    make_server(CN2, "cn2", reserved=True, ip="10.0.0.3"),
                    make_server(CN3, "cn3", ip="10.0.0.4")],
        "networks": [
            {"uuid": NET_EXT, "name": "external", "subnet": "192.0.2.0/24",
             "netmask": "255.255.255.0", "gateway": "192.0.2.1",
             "nic_tag": "external", "vlan_id": 0},
            {"uuid": NET_ADMIN, "name": "admin", "subnet": "10.0.0.0/24",
             "netmask": "255.255.255.0", "gateway": "10.0.0.1",
             "nic_tag": "admin", "vlan_id": 0}],
        "ips": [
            {"ip": "192.0.2.10", "network_uuid": NET_EXT, "reserved": False,
             "free": False, "belongs_to_uuid": VM_WEB,
             "belongs_to_type": "zone", "owner_uuid": OWNER},
            {"ip": "192.0.2.20", "network_uuid": NET_EXT, "reserved": True,
             "free": False}],
        "nics": [make_nic(MAC_WEB, "192.0.2.10", VM_WEB, CN1),
                 make_nic(MAC_DB, "192.0.2.11", VM_DB, CN1)],
        "images": [
            {"v": 2, "uuid": IMG_BASE, "name": "base-64", "version": "1.0",
             "state": "active", "type": "zone-dataset", "os": "smartos",
             "files": [{"size": 1000, "sha1": "a" * 40,
                        "compression": "gzip"}]},
            {"v": 2, "uuid": IMG_CHILD, "name": "web", "version": "2.0",
             "state": "active", "type": "zone-dataset", "os": "smartos",
             "origin": IMG_BASE,
             "files": [{"size": 200, "sha1": "b" * 40,
                        "compression": "bzip2"}]}],
        "vms": [make_vm(VM_WEB, "web0", "running", CN1, {"role": "web"}),
                make_vm(VM_DB, "db0", "stopped", CN1),
                make_vm(VM_GONE, "gone0", "destroyed", CN1),
                make_vm(VM_FAILED, "broken0", "failed", CN1),
                make_vm(VM_OTHER, "other0", "running", CN2),
                make_vm(VM_PUT, "put0", "running", CN2, {"role": "put"}),
                make_vm(VM_PATCH, "patch0", "running", CN2)],
    }


# --- starting the server and talking to it -----------------------------------


def start_tritonapi(workdir, extra_args=(), parent_cmd=None):
    """Start tritonapi.py on a fresh datacenter; return (process, ports)."""
    state = workdir / "dc.json"
    ports_file = workdir / "ports.json"
    state.write_text(json.dumps(make_datacenter()))
    cmd = [PYTHON, str(TRITONAPI), "--state", str(state),
           "--ports-file", str(ports_file), "--listen", "127.0.0.1",
           "--log", str(workdir / "tritonapi.log"), *extra_args]
    proc = subprocess.Popen(parent_cmd(cmd) if parent_cmd else cmd,
                            stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ports_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            pytest.fail("tritonapi.py did not start (exit %s)" % proc.poll())
        time.sleep(0.05)
    return proc, json.loads(ports_file.read_text())


def stop_process(proc):
    """SIGTERM, then SIGKILL if needed; return the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Response:
    """A decoded answer: status, headers, raw body and its JSON."""

    def __init__(self, resp):
        self.status = resp.status
        self.headers = resp.headers
        self.raw = resp.read()
        self.will_close = resp.will_close
        self.json = json.loads(self.raw) if self.raw else None


class Apis:
    """Talks to the four emulated APIs by name."""

    def __init__(self, ports, workdir):
        self.ports = ports
        self.workdir = workdir

    def connect(self, api, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.ports[api],
                                          timeout=timeout)

    def call(self, api, method, path, body=None, raw=None):
        """One request on a new connection; body is JSON-encoded."""
        conn = self.connect(api)
        try:
            return send(conn, method, path, body, raw)
        finally:
            conn.close()

    def admin(self, api, method, path, body=None):
        resp = self.call(api, method, "/__lab/" + path, body)
        assert resp.status == 200, resp.raw
        return resp.json


def send(conn, method, path, body=None, raw=None):
    """Send one request on conn and read the whole answer."""
    payload = raw if raw is not None else (
        None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/json"} if payload else {}
    conn.request(method, path, body=payload, headers=headers)
    return Response(conn.getresponse())


@pytest.fixture(scope="module")
def apis(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tritonapi")
    proc, ports = start_tritonapi(workdir, ["--die-with-parent"])
    try:
        yield Apis(ports, workdir)
    finally:
        assert stop_process(proc) == 0


@pytest.fixture(autouse=True)
def clean_admin_state(apis):
    """Each test starts and ends with no faults and empty request logs."""
    yield
    for api in APIS:
        apis.admin(api, "POST", "faults/clear")
        apis.admin(api, "POST", "requests/clear")


def assert_error(resp, status, code, message=None):
    assert resp.status == status, resp.raw
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json["code"] == code
    assert isinstance(resp.json["message"], str)
    if message is not None:
        assert resp.json["message"] == message


def assert_invalid_field(resp, status, field):
    assert_error(resp, status, "InvalidParameters", "Invalid parameters")
    assert [e["field"] for e in resp.json["errors"]] == [field]


def uuids(items):
    return sorted(item["uuid"] for item in items)


# --- process behaviour -------------------------------------------------------


def test_ports_file_names_four_distinct_listening_ports(apis):
    assert sorted(apis.ports) == sorted(APIS)
    assert len(set(apis.ports.values())) == 4
    leftovers = [p.name for p in apis.workdir.iterdir() if ".tmp" in p.name]
    assert leftovers == []


def test_sigterm_exits_cleanly(tmp_path):
    proc, _ = start_tritonapi(tmp_path)
    assert stop_process(proc) == 0


def test_dies_with_parent(tmp_path):
    def via_parent(cmd):
        script = ("import subprocess,sys,time;"
                  "p=subprocess.Popen(sys.argv[1:]);"
                  "print(p.pid,flush=True);time.sleep(120)")
        return [PYTHON, "-c", script, *cmd]

    parent, _ = start_tritonapi(tmp_path, ["--die-with-parent"], via_parent)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while process_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(child)


def process_alive(pid):
    """Whether pid runs (a zombie counts as gone)."""
    try:
        status = pathlib.Path("/proc/%d/status" % pid).read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_request_log_lines_written(apis):
    apis.call("imgapi", "GET", "/images/" + IMG_BASE)
    # The server writes the line after it has answered: wait for it.
    want = "GET /images/%s 200" % IMG_BASE
    deadline = time.monotonic() + 10
    log = ""
    while want not in log and time.monotonic() < deadline:
        log = (apis.workdir / "tritonapi.log").read_text()
        time.sleep(0.05)
    assert "imgapi" in log and want in log


# --- VMAPI -------------------------------------------------------------------


def test_vm_get_returns_the_vm(apis):
    resp = apis.call("vmapi", "GET", "/vms/" + VM_WEB)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert int(resp.headers["Content-Length"]) == len(resp.raw)
    expected = next(vm for vm in make_datacenter()["vms"]
                    if vm["uuid"] == VM_WEB)
    assert resp.json == expected


def test_vm_get_unknown_is_404(apis):
    resp = apis.call("vmapi", "GET", "/vms/" + UNKNOWN)
    assert_error(resp, 404, "ResourceNotFound", "VM not found")


@pytest.mark.parametrize("state,expected", [
    (None, [VM_WEB, VM_DB, VM_GONE, VM_FAILED]),
    ("running", [VM_WEB]),
    ("stopped", [VM_DB]),
    ("active", [VM_WEB, VM_DB]),
    ("destroyed", [VM_GONE]),
])
def test_vm_list_by_server_and_state(apis, state, expected):
    path = "/vms?server_uuid=" + CN1
    if state:
        path += "&state=" + state
    resp = apis.call("vmapi", "GET", path)
    assert resp.status == 200
    assert isinstance(resp.json, list)
    assert uuids(resp.json) == sorted(expected)


@pytest.mark.parametrize("state", ["failed", "provisioning", "bogus", ""])
def test_vm_list_refuses_other_states(apis, state):
    resp = apis.call("vmapi", "GET", "/vms?state=" + state)
    assert_invalid_field(resp, 409, "state")


def test_vm_list_unknown_parameter_is_409_restify_shape(apis):
    resp = apis.call("vmapi", "GET", "/vms?server_uuid=%s&foo=1" % CN1)
    assert resp.status == 409
    assert resp.json == {
        "code": "InvalidParameters", "message": "Invalid parameters",
        "errors": [{"field": "foo", "code": "Invalid",
                    "message": "unsupported parameter"}]}


def test_vm_list_filters_by_owner_alias_and_uuid(apis):
    by_alias = apis.call("vmapi", "GET", "/vms?alias=db0").json
    assert uuids(by_alias) == [VM_DB]
    by_owner = apis.call("vmapi", "GET", "/vms?owner_uuid=" + OWNER).json
    assert len(by_owner) == len(make_datacenter()["vms"])
    assert apis.call("vmapi", "GET", "/vms?owner_uuid=" + ADMIN).json == []
    by_uuid = apis.call("vmapi", "GET", "/vms?uuid=" + VM_OTHER).json
    assert uuids(by_uuid) == [VM_OTHER]


def test_vm_list_limit_and_offset(apis):
    everything = apis.call("vmapi", "GET", "/vms").json
    first = apis.call("vmapi", "GET", "/vms?limit=2").json
    rest = apis.call("vmapi", "GET", "/vms?limit=1000&offset=2").json
    assert len(first) == 2
    assert first + rest == everything


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x",
                                   "offset=-1"])
def test_vm_list_limit_out_of_range_is_409(apis, query):
    resp = apis.call("vmapi", "GET", "/vms?" + query)
    assert_invalid_field(resp, 409, query.split("=")[0])


def test_vm_put_replaces_the_stored_vm(apis):
    vm = apis.call("vmapi", "GET", "/vms/" + VM_PUT).json
    assert "tags" in vm
    del vm["tags"]
    vm["server_uuid"] = CN3
    resp = apis.call("vmapi", "PUT", "/vms/" + VM_PUT, vm)
    assert resp.status == 200
    assert resp.json == vm
    stored = apis.call("vmapi", "GET", "/vms/" + VM_PUT).json
    assert stored == vm
    assert "tags" not in stored


def test_vm_put_malformed_json_is_400_and_changes_nothing(apis):
    before = apis.call("vmapi", "GET", "/vms/" + VM_WEB).json
    resp = apis.call("vmapi", "PUT", "/vms/" + VM_WEB, raw=b'{"uuid": ')
    assert_error(resp, 400, "InvalidContent")
    assert apis.call("vmapi", "GET", "/vms/" + VM_WEB).json == before


def test_vm_put_uuid_mismatch_is_409(apis):
    vm = make_vm(VM_OTHER, "other0", "running", CN3)
    resp = apis.call("vmapi", "PUT", "/vms/" + VM_WEB, vm)
    assert_invalid_field(resp, 409, "uuid")


# --- CNAPI -------------------------------------------------------------------


def test_servers_list_without_extras_hides_sysinfo_and_capacity(apis):
    resp = apis.call("cnapi", "GET", "/servers")
    assert resp.status == 200
    assert uuids(resp.json) == sorted([HN, CN1, CN2, CN3])
    for server in resp.json:
        assert "sysinfo" not in server
        assert not [k for k in server if k.startswith("unreserved_")]
        for key in ("hostname", "setup", "reserved", "status", "headnode",
                    "current_platform", "ram", "traits"):
            assert key in server


@pytest.mark.parametrize("extras,capacity,sysinfo", [
    ("capacity", True, False),
    ("sysinfo", False, True),
    ("capacity,sysinfo", True, True),
    ("sysinfo,capacity", True, True),
    ("all", True, True),
])
def test_servers_list_extras(apis, extras, capacity, sysinfo):
    resp = apis.call("cnapi", "GET", "/servers?extras=" + extras)
    assert resp.status == 200 and len(resp.json) == 4
    for server in resp.json:
        assert ("unreserved_ram" in server) == capacity
        assert ("unreserved_disk" in server) == capacity
        assert ("sysinfo" in server) == sysinfo
        if sysinfo:
            assert server["sysinfo"]["Setup"] == "true"
            assert server["sysinfo"]["MiB of Memory"] == "65536"
            assert server["sysinfo"]["UUID"] == server["uuid"]


@pytest.mark.parametrize("query,field", [
    ("bogus=1", "bogus"), ("extras=nonsense", "extras"),
    ("headnode=yes", "headnode")])
def test_servers_list_bad_query_is_409(apis, query, field):
    resp = apis.call("cnapi", "GET", "/servers?" + query)
    assert_invalid_field(resp, 409, field)


@pytest.mark.parametrize("query,expected", [
    ("headnode=true", [HN]),
    ("reserved=true", [CN2]),
    ("hostname=cn1", [CN1]),
    ("uuids=%s,%s" % (HN, CN2), [HN, CN2]),
    ("setup=false", []),
])
def test_servers_list_filters(apis, query, expected):
    resp = apis.call("cnapi", "GET", "/servers?" + query)
    assert resp.status == 200
    assert uuids(resp.json) == sorted(expected)


def test_server_get_has_everything(apis):
    resp = apis.call("cnapi", "GET", "/servers/" + CN1)
    assert resp.status == 200
    assert resp.json["unreserved_ram"] == 40000
    assert resp.json["unreserved_disk"] == 900000
    nics = resp.json["sysinfo"]["Network Interfaces"]["e0"]
    assert nics["NIC Names"] == ["admin", "external"]
    assert resp.json["sysinfo"]["Admin IP"] == "10.0.0.2"


def test_server_get_unknown_is_404(apis):
    resp = apis.call("cnapi", "GET", "/servers/" + UNKNOWN)
    assert_error(resp, 404, "ResourceNotFound", "Server not found")


def test_server_post_reserved_answers_204_without_body(apis):
    for reserved in (True, False):
        resp = apis.call("cnapi", "POST", "/servers/" + CN3,
                         {"reserved": reserved})
        assert resp.status == 204
        assert resp.raw == b""
        assert "Content-Type" not in resp.headers
        server = apis.call("cnapi", "GET", "/servers/" + CN3).json
        assert server["reserved"] is reserved


@pytest.mark.parametrize("value", ["true", 1, None])
def test_server_post_wrong_type_is_500_invalid_parameters(apis, value):
    resp = apis.call("cnapi", "POST", "/servers/" + CN3, {"reserved": value})
    assert_invalid_field(resp, 500, "reserved")
    server = apis.call("cnapi", "GET", "/servers/" + CN3).json
    assert server["reserved"] is False


def test_server_post_unknown_is_404(apis):
    resp = apis.call("cnapi", "POST", "/servers/" + UNKNOWN,
                     {"reserved": True})
    assert_error(resp, 404, "ResourceNotFound", "Server not found")


# --- NAPI --------------------------------------------------------------------


def ip_path(ip, network=NET_EXT):
    return "/networks/%s/ips/%s" % (network, ip)


def test_network_get(apis):
    resp = apis.call("napi", "GET", "/networks/" + NET_EXT)
    assert resp.status == 200
    assert resp.json["subnet"] == "192.0.2.0/24"
    assert resp.json["nic_tag"] == "external"
    missing = apis.call("napi", "GET", "/networks/" + UNKNOWN)
    assert_error(missing, 404, "ResourceNotFound")


def test_ip_with_a_record(apis):
    resp = apis.call("napi", "GET", ip_path("192.0.2.10"))
    assert resp.status == 200
    assert resp.json == {"ip": "192.0.2.10", "network_uuid": NET_EXT,
                         "reserved": False, "free": False,
                         "belongs_to_uuid": VM_WEB,
                         "belongs_to_type": "zone", "owner_uuid": OWNER}


def test_ip_reserved_unassigned_is_not_free(apis):
    resp = apis.call("napi", "GET", ip_path("192.0.2.20"))
    assert resp.json == {"ip": "192.0.2.20", "network_uuid": NET_EXT,
                         "reserved": True, "free": False}


def test_ip_never_used_is_200_free(apis):
    resp = apis.call("napi", "GET", ip_path("192.0.2.99"))
    assert resp.status == 200
    assert resp.json == {"ip": "192.0.2.99", "network_uuid": NET_EXT,
                         "reserved": False, "free": True}


@pytest.mark.parametrize("network,ip", [
    (NET_EXT, "203.0.113.5"), (NET_EXT, "10.0.0.5"),
    (UNKNOWN, "192.0.2.10")])
def test_ip_outside_network_or_unknown_network_is_404(apis, network, ip):
    resp = apis.call("napi", "GET", ip_path(ip, network))
    assert_error(resp, 404, "ResourceNotFound")


def test_ip_put_creates_then_updates(apis):
    ip = "192.0.2.50"
    created = apis.call("napi", "PUT", ip_path(ip), {"reserved": True})
    assert created.status == 200
    assert created.json == {"ip": ip, "network_uuid": NET_EXT,
                            "reserved": True, "free": False}
    assert apis.call("napi", "GET", ip_path(ip)).json == created.json
    updated = apis.call("napi", "PUT", ip_path(ip), {"reserved": False})
    assert updated.json == {"ip": ip, "network_uuid": NET_EXT,
                            "reserved": False, "free": True}
    state = apis.admin("napi", "GET", "state")
    assert [r["ip"] for r in state["ips"]].count(ip) == 1


def test_ip_put_keeps_owner_of_an_assigned_ip(apis):
    resp = apis.call("napi", "PUT", ip_path("192.0.2.10"), {"reserved": True})
    assert resp.json["belongs_to_uuid"] == VM_WEB
    assert resp.json["reserved"] is True and resp.json["free"] is False
    apis.call("napi", "PUT", ip_path("192.0.2.10"), {"reserved": False})


def test_ip_put_wrong_type_is_422(apis):
    resp = apis.call("napi", "PUT", ip_path("192.0.2.51"),
                     {"reserved": "true"})
    assert_invalid_field(resp, 422, "reserved")
    assert apis.call("napi", "GET", ip_path("192.0.2.51")).json["free"]


def test_ip_put_outside_network_is_404(apis):
    resp = apis.call("napi", "PUT", ip_path("198.51.100.1"),
                     {"reserved": True})
    assert_error(resp, 404, "ResourceNotFound")


def test_nics_of_a_vm(apis):
    resp = apis.call("napi", "GET", "/nics?belongs_to_uuid=" + VM_WEB)
    assert resp.status == 200
    assert [nic["mac"] for nic in resp.json] == [MAC_WEB]
    nic = resp.json[0]
    for key in ("ip", "network_uuid", "nic_tag", "vlan_id", "primary",
                "state", "belongs_to_uuid", "belongs_to_type", "owner_uuid",
                "cn_uuid"):
        assert key in nic
    none = apis.call("napi", "GET", "/nics?belongs_to_uuid=" + UNKNOWN)
    assert none.status == 200 and none.json == []


def test_nics_unknown_parameter_is_refused(apis):
    resp = apis.call("napi", "GET", "/nics?belongs_to_uuid=%s&x=1" % VM_WEB)
    assert_invalid_field(resp, 422, "x")


@pytest.mark.parametrize("path_mac", ["90b8d0010203", MAC_WEB])
def test_nic_get_by_mac_with_or_without_colons(apis, path_mac):
    resp = apis.call("napi", "GET", "/nics/" + path_mac)
    assert resp.status == 200
    assert resp.json["mac"] == MAC_WEB


def test_nic_put_mac_without_colons(apis):
    resp = apis.call("napi", "PUT", "/nics/90b8d00a0b0c", {"cn_uuid": CN3})
    assert resp.status == 200
    assert resp.json["mac"] == MAC_DB
    assert resp.json["cn_uuid"] == CN3
    assert resp.json["belongs_to_uuid"] == VM_DB
    stored = apis.call("napi", "GET", "/nics/90b8d00a0b0c").json
    assert stored["cn_uuid"] == CN3


@pytest.mark.parametrize("path_mac", ["90b8d0ffffff", "not-a-mac"])
def test_nic_put_unknown_is_404(apis, path_mac):
    resp = apis.call("napi", "PUT", "/nics/" + path_mac, {"cn_uuid": CN3})
    assert_error(resp, 404, "ResourceNotFound")


def test_nic_put_wrong_type_is_422(apis):
    resp = apis.call("napi", "PUT", "/nics/90b8d0010203", {"cn_uuid": 7})
    assert_invalid_field(resp, 422, "cn_uuid")


# --- IMGAPI ------------------------------------------------------------------


def test_image_get(apis):
    resp = apis.call("imgapi", "GET", "/images/" + IMG_CHILD)
    assert resp.status == 200
    assert resp.json["v"] == 2
    assert resp.json["origin"] == IMG_BASE
    assert resp.json["files"] == [{"size": 200, "sha1": "b" * 40,
                                   "compression": "bzip2"}]
    base = apis.call("imgapi", "GET", "/images/" + IMG_BASE).json
    assert "origin" not in base


def test_image_unknown_is_404(apis):
    resp = apis.call("imgapi", "GET", "/images/" + UNKNOWN)
    assert_error(resp, 404, "ResourceNotFound", "Image not found")


# --- routing and HTTP --------------------------------------------------------


@pytest.mark.parametrize("api,path", [
    ("vmapi", "/servers"), ("cnapi", "/vms"), ("napi", "/images/x"),
    ("imgapi", "/nics")])
def test_route_of_another_api_is_404(apis, api, path):
    assert_error(apis.call(api, "GET", path), 404, "ResourceNotFound")


@pytest.mark.parametrize("api,method,path", [
    ("vmapi", "DELETE", "/vms/" + VM_WEB), ("cnapi", "PUT", "/servers"),
    ("napi", "POST", "/nics/" + MAC_WEB), ("imgapi", "PUT", "/images/x")])
def test_wrong_method_is_405(apis, api, method, path):
    assert_error(apis.call(api, method, path, {}), 405, "BadMethod")


def test_keep_alive_serves_two_requests_on_one_connection(apis):
    conn = apis.connect("vmapi")
    try:
        first = send(conn, "GET", "/vms/" + VM_WEB)
        sock = conn.sock
        second = send(conn, "GET", "/vms/" + UNKNOWN)
        third = send(conn, "PUT", "/vms/" + VM_PATCH,
                     apis.call("vmapi", "GET", "/vms/" + VM_PATCH).json)
        assert (first.status, second.status, third.status) == (200, 404, 200)
        assert not first.will_close and not second.will_close
        assert conn.sock is sock
    finally:
        conn.close()


def test_expect_100_continue_is_honoured(apis):
    body = json.dumps({"reserved": False}).encode()
    with socket.create_connection(("127.0.0.1", apis.ports["cnapi"]),
                                  timeout=10) as sock:
        sock.sendall(("POST /servers/%s HTTP/1.1\r\nHost: lab\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                      % (CN3, len(body))).encode())
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100")
        sock.sendall(body)
        final = sock.recv(4096)
    assert final.startswith(b"HTTP/1.1 204")


def test_chunked_request_body_is_read(apis):
    conn = apis.connect("napi")
    try:
        conn.request("PUT", ip_path("192.0.2.60"),
                     body=iter([b'{"reserved"', b': true}']),
                     headers={"Content-Type": "application/json"},
                     encode_chunked=True)
        resp = Response(conn.getresponse())
    finally:
        conn.close()
    assert resp.status == 200 and resp.json["reserved"] is True


# --- fault injection ---------------------------------------------------------


def test_fault_503_twice_then_ok(apis):
    apis.admin("vmapi", "POST", "fault",
               {"method": "GET", "path": "^/vms/", "status": 503, "count": 2})
    statuses = []
    for _ in range(3):
        resp = apis.call("vmapi", "GET", "/vms/" + VM_WEB)
        statuses.append(resp.status)
        if resp.status == 503:
            assert resp.json == {"code": "ServiceUnavailableError",
                                 "message": "injected fault"}
    assert statuses == [503, 503, 200]


def test_fault_applies_only_to_its_api_and_method(apis):
    apis.admin("napi", "POST", "fault",
               {"method": "PUT", "path": "/nics/", "status": 500,
                "count": -1})
    assert apis.call("napi", "GET", "/nics/" + MAC_WEB).status == 200
    assert apis.call("vmapi", "GET", "/vms/" + VM_WEB).status == 200
    put = apis.call("napi", "PUT", "/nics/90b8d0010203", {"state": "running"})
    assert put.status == 500


def test_fault_path_regex_sees_the_query(apis):
    apis.admin("vmapi", "POST", "fault",
               {"path": r"state=active", "status": 503, "count": 1})
    assert apis.call("vmapi", "GET", "/vms?state=running").status == 200
    assert apis.call("vmapi", "GET", "/vms?state=active").status == 503


def test_fault_delay_then_serves_normally(apis):
    apis.admin("imgapi", "POST", "fault",
               {"path": "/images/", "status": 0, "delay_s": 0.5, "count": 1})
    started = time.monotonic()
    resp = apis.call("imgapi", "GET", "/images/" + IMG_BASE)
    assert time.monotonic() - started >= 0.5
    assert resp.status == 200 and resp.json["uuid"] == IMG_BASE
    started = time.monotonic()
    apis.call("imgapi", "GET", "/images/" + IMG_BASE)
    assert time.monotonic() - started < 0.5


def test_fault_reset_drops_the_connection(apis):
    apis.admin("cnapi", "POST", "fault",
               {"path": "/servers", "reset": True, "count": 1})
    with pytest.raises(ConnectionError):
        apis.call("cnapi", "GET", "/servers")
    assert apis.call("cnapi", "GET", "/servers").status == 200


def test_fault_forever_until_cleared(apis):
    apis.admin("vmapi", "POST", "fault",
               {"path": "", "status": 503, "count": -1})
    assert [apis.call("vmapi", "GET", "/vms").status
            for _ in range(3)] == [503, 503, 503]
    apis.admin("vmapi", "POST", "faults/clear")
    assert apis.call("vmapi", "GET", "/vms").status == 200


def test_fault_for_s_lasts_that_long_for_any_number_of_requests(apis):
    """"VMAPI answers 503 for 1.5 s": every request, then none."""
    added = time.monotonic()
    faults = apis.admin("vmapi", "POST", "fault",
                        {"path": "^/vms", "status": 503, "for_s": 1.5})["faults"]
    assert faults[0]["for_s"] == 1.5 and 0 < faults[0]["remaining_s"] <= 1.5
    statuses = []
    while time.monotonic() - added < 1.2:
        statuses.append(apis.call("vmapi", "GET", "/vms/" + VM_WEB).status)
    assert len(statuses) >= 5 and set(statuses) == {503}
    time.sleep(max(0.0, added + 1.6 - time.monotonic()))
    assert apis.call("vmapi", "GET", "/vms/" + VM_WEB).status == 200
    assert apis.admin("vmapi", "POST", "fault", {"path": "^/nothing$", "count": 1})[
        "faults"][0]["path"] == "^/nothing$"  # the expired one is gone


@pytest.mark.parametrize("for_s", [0, -1, "soon"])
def test_fault_for_s_must_be_positive_seconds(apis, for_s):
    resp = apis.call("vmapi", "POST", "/__lab/fault",
                     {"path": "", "status": 503, "for_s": for_s})
    assert resp.status == 400


def test_fault_user_agent_picks_the_clients_it_hits(apis):
    """The CNs' vm-agents send "vm-agent/..."; tests may spare or target them."""
    apis.admin("vmapi", "POST", "fault", {"method": "PUT", "path": "^/vms/",
                                          "status": 503, "count": -1,
                                          "user_agent": "^vm-agent/"})
    vm = apis.call("vmapi", "GET", "/vms/" + VM_PATCH).json
    conn = apis.connect("vmapi")
    try:
        conn.request("PUT", "/vms/" + VM_PATCH, body=json.dumps(vm).encode(),
                     headers={"Content-Type": "application/json",
                              "User-Agent": "vm-agent/lab (python) server/" + CN2})
        agent = Response(conn.getresponse())
    finally:
        conn.close()
    assert agent.status == 503
    assert apis.call("vmapi", "PUT", "/vms/" + VM_PATCH, vm).status == 200
    log = apis.admin("vmapi", "GET", "requests")
    assert [(r["status"], r["user_agent"].startswith("vm-agent/")) for r in log
            if r["method"] == "PUT"] == [(503, True), (200, False)]


def test_delayed_request_does_not_block_others(apis):
    apis.admin("vmapi", "POST", "fault",
               {"path": "state=stopped", "delay_s": 1.0, "count": 1})
    slow = {}
    thread = threading.Thread(target=lambda: slow.update(
        resp=apis.call("vmapi", "GET", "/vms?state=stopped")))
    thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    fast = apis.call("vmapi", "GET", "/vms/" + VM_WEB)
    assert fast.status == 200 and time.monotonic() - started < 0.5
    thread.join(5)
    assert slow["resp"].status == 200


def test_lab_bug_answers_500_and_server_survives(apis):
    apis.admin("napi", "POST", "patch", {"collection": "networks",
                                         "key": NET_ADMIN,
                                         "merge": {"subnet": "garbage"}})
    try:
        resp = apis.call("napi", "GET", ip_path("10.0.0.9", NET_ADMIN))
        assert_error(resp, 500, "InternalError")
    finally:
        apis.admin("napi", "POST", "patch", {"collection": "networks",
                                             "key": NET_ADMIN,
                                             "merge": {"subnet":
                                                       "10.0.0.0/24"}})
    assert apis.call("napi", "GET", ip_path("10.0.0.9", NET_ADMIN)).json[
        "free"] is True


@pytest.mark.parametrize("fault", [{"path": "("}, {"count": 0},
                                   {"status": "x"}])
def test_bad_fault_is_400(apis, fault):
    resp = apis.call("vmapi", "POST", "/__lab/fault", fault)
    assert resp.status == 400


# --- admin: state, patches, request log --------------------------------------


def test_state_on_every_port_has_the_datacenter_keys(apis):
    for api in APIS:
        state = apis.admin(api, "GET", "state")
        assert sorted(state) == sorted(make_datacenter())
        assert state["datacenter"] == "lab-1"
        assert state["admin_uuid"] == ADMIN
        assert uuids(state["servers"]) == sorted([HN, CN1, CN2, CN3])


def test_patch_merges_then_deletes(apis):
    merged = apis.admin("vmapi", "POST", "patch",
                        {"collection": "vms", "key": VM_PATCH,
                         "merge": {"state": "stopped"}})
    assert merged["state"] == "stopped" and merged["alias"] == "patch0"
    assert apis.call("vmapi", "GET", "/vms/" + VM_PATCH).json["state"] \
        == "stopped"
    apis.admin("vmapi", "POST", "patch",
               {"collection": "vms", "key": VM_PATCH, "delete": True})
    assert apis.call("vmapi", "GET", "/vms/" + VM_PATCH).status == 404


def test_patch_creates_an_ip_record(apis):
    apis.admin("napi", "POST", "patch",
               {"collection": "ips", "key": NET_EXT + "/192.0.2.77",
                "merge": {"belongs_to_uuid": VM_OTHER,
                          "belongs_to_type": "zone"}})
    resp = apis.call("napi", "GET", ip_path("192.0.2.77"))
    assert resp.json["belongs_to_uuid"] == VM_OTHER
    assert resp.json["free"] is False


def test_patch_nic_by_mac_with_colons_is_seen_by_other_ports(apis):
    apis.admin("imgapi", "POST", "patch",
               {"collection": "nics", "key": MAC_WEB,
                "merge": {"state": "stopped"}})
    assert apis.call("napi", "GET", "/nics/90b8d0010203").json["state"] \
        == "stopped"
    apis.admin("napi", "POST", "patch",
               {"collection": "nics", "key": MAC_WEB,
                "merge": {"state": "running"}})


def test_request_log_records_api_calls_only(apis):
    apis.admin("napi", "POST", "fault",
               {"path": "/ips/", "status": 503, "count": 1})
    apis.call("napi", "PUT", ip_path("192.0.2.70"), {"reserved": True})
    apis.call("napi", "PUT", ip_path("192.0.2.70"), {"reserved": True})
    apis.call("napi", "GET", "/nics?belongs_to_uuid=" + VM_WEB)
    log = apis.admin("napi", "GET", "requests")
    assert [(r["method"], r["path"], r["body"], r["status"]) for r in log] == [
        ("PUT", ip_path("192.0.2.70"), {"reserved": True}, 503),
        ("PUT", ip_path("192.0.2.70"), {"reserved": True}, 200),
        ("GET", "/nics?belongs_to_uuid=" + VM_WEB, None, 200)]
    assert apis.admin("vmapi", "GET", "requests") == []
    apis.admin("napi", "POST", "requests/clear")
    assert apis.admin("napi", "GET", "requests") == []
