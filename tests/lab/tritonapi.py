#!/usr/bin/python3
"""The lab's emulated Triton head-node APIs: VMAPI, CNAPI, NAPI and IMGAPI.

It serves exactly the subset of calls that /work/shared/spec/triton-apis.md
lets migd rely on, with the real services' shapes and quirks, from one
in-memory datacenter loaded from a JSON file. Each API listens on its own
ephemeral port; every port also answers the lab's admin routes under
/__lab/ (state dump, fault injection, state patches, request log) so tests
can stage failures and prove which calls a client made.

A fault (POST /__lab/fault) is {method?, path (regex, searched in the path
with its query), status (0: answer normally after the delay), delay_s,
reset (drop the connection), body?, user_agent? (regex the User-Agent must
match, e.g. "^(?!vm-agent/)" to spare the CNs' agents)} and lasts either
`count` matching requests (-1: until cleared) or, with `for_s`, every
matching request for that many seconds after it was added.  Each logged
request records its user_agent (the CNs' vm-agents send "vm-agent/...").

Usage:
  tritonapi.py --state DC_JSON --ports-file OUT_JSON [--listen 127.0.0.1]
               [--log FILE] [--die-with-parent]

Python 3.11 standard library only.
"""

import argparse
import ctypes
import ipaddress
import json
import logging
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_NAMES = ("vmapi", "cnapi", "napi", "imgapi")
COLLECTIONS = ("servers", "vms", "nics", "ips", "networks", "images")
MAX_BODY_BYTES = 64 * 1024 * 1024
VM_LIST_MAX = 1000
VM_STATE_FILTERS = ("running", "stopped", "active", "destroyed")
SERVER_EXTRAS = {
    "capacity": ("unreserved_ram", "unreserved_disk"),
    "sysinfo": ("sysinfo",),
}
SERVER_EXTRA_KEYS = ("sysinfo", "unreserved_ram", "unreserved_disk")
PR_SET_PDEATHSIG = 1

log = logging.getLogger("tritonapi")


# --- errors ------------------------------------------------------------------


class ApiError(Exception):
    """A restify-style error answer: status, {code, message[, errors]}."""

    def __init__(self, status, code, message, errors=None):
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "message": message}
        if errors is not None:
            self.body["errors"] = errors


def not_found(message):
    return ApiError(404, "ResourceNotFound", message)


def invalid_params(status, errors):
    """InvalidParameters with an errors list (VMAPI/CNAPI 409, NAPI 422)."""
    return ApiError(status, "InvalidParameters", "Invalid parameters", errors)


def field_error(field, message, code="Invalid"):
    return {"field": field, "code": code, "message": message}


def check_query(query, allowed, status=409):
    """Refuse any query parameter not in allowed, as restify validators do."""
    unknown = [name for name in query if name not in allowed]
    if unknown:
        raise invalid_params(status, [
            field_error(name, "unsupported parameter") for name in unknown])


def query_bool(query, name, status=409):
    """The boolean query parameter name ("true"/"false"), or None if absent."""
    if name not in query:
        return None
    value = query[name]
    if value not in ("true", "false"):
        raise invalid_params(status, [field_error(name, "must be a boolean")])
    return value == "true"


def query_int(query, name, default, low, high):
    """The integer query parameter name within [low, high] (VMAPI: 409)."""
    if name not in query:
        return default
    try:
        value = int(query[name])
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise invalid_params(409, [field_error(
            name, "must be an integer between %d and %d" % (low, high))])
    return value


# --- the datacenter state ----------------------------------------------------


def mac_key(text):
    """A MAC's 12 lowercase hex digits (path forms with or without colons)."""
    digits = text.replace(":", "").replace("-", "").lower()
    if not re.fullmatch(r"[0-9a-f]{12}", digits):
        return None
    return digits


def ip_key(network_uuid, ip):
    return "%s/%s" % (network_uuid, ip)


def ip_is_free(record):
    """NAPI's `free`: neither reserved nor assigned to anything."""
    return not record.get("reserved") and not record.get("belongs_to_uuid")


class Datacenter:
    """One datacenter's objects, each collection a dict keyed by identity.

    Keys: servers, vms, networks, images by uuid; nics by mac_key(); ips by
    "network_uuid/ip". Callers hold Lab.lock while touching it.
    """

    def __init__(self, dc):
        self.datacenter = dc.get("datacenter", "lab-1")
        self.admin_uuid = dc.get("admin_uuid")
        self.tables = {name: {} for name in COLLECTIONS}
        for name in COLLECTIONS:
            for obj in dc.get(name, []):
                self.tables[name][self.key_of(name, obj)] = obj

    @staticmethod
    def key_of(collection, obj):
        if collection == "nics":
            return mac_key(obj["mac"])
        if collection == "ips":
            return ip_key(obj["network_uuid"], obj["ip"])
        return obj["uuid"]

    @staticmethod
    def normalize_key(collection, key):
        """An admin-supplied key in the form the tables use, or None."""
        if collection == "nics":
            return mac_key(key)
        return key

    def dump(self):
        """The whole state, in the same shape as the DC_JSON input."""
        out = {"datacenter": self.datacenter, "admin_uuid": self.admin_uuid}
        for name in COLLECTIONS:
            out[name] = list(self.tables[name].values())
        out["ips"] = [dict(ip, free=ip_is_free(ip)) for ip in out["ips"]]
        return out


# --- per-API runtime: faults and request log ---------------------------------


class Fault:
    """A staged misbehaviour for the next `count` matching requests, or,
    with `for_s`, for every matching request during that many seconds from
    when it was added (a service that is down for a while)."""

    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise ApiError(400, "InvalidContent", "fault must be an object")
        try:
            self.method = spec.get("method")
            self.pattern = re.compile(spec.get("path", ""))
            self.status = int(spec.get("status", 0))
            self.count = int(spec.get("count", 1))
            self.delay_s = float(spec.get("delay_s", 0))
            self.for_s = (None if spec.get("for_s") is None
                          else float(spec["for_s"]))
            self.user_agent = (None if spec.get("user_agent") is None
                               else re.compile(spec["user_agent"]))
        except (re.error, TypeError, ValueError) as err:
            raise ApiError(400, "InvalidContent", "bad fault: %s" % err)
        if self.for_s is not None:
            if not self.for_s > 0:
                raise ApiError(400, "InvalidContent",
                               "for_s must be a positive number of seconds")
            self.count = -1  # any number of requests until it expires
            self.until = time.monotonic() + self.for_s
        elif self.count == 0 or self.count < -1:
            raise ApiError(400, "InvalidContent",
                           "count must be positive, or -1 for forever")
        self.reset = bool(spec.get("reset", False))
        self.body = spec.get("body")

    def expired(self, now):
        return self.for_s is not None and now >= self.until

    def matches(self, method, raw_path, user_agent=""):
        if self.method and self.method.upper() != method:
            return False
        if self.user_agent and not self.user_agent.search(user_agent or ""):
            return False
        return self.pattern.search(raw_path) is not None

    def error_body(self):
        if self.body is not None:
            return self.body
        if self.status >= 500:
            return {"code": "ServiceUnavailableError",
                    "message": "injected fault"}
        return {"code": "InjectedFault", "message": "injected fault"}

    def describe(self):
        out = {"method": self.method, "path": self.pattern.pattern,
               "status": self.status, "count": self.count,
               "delay_s": self.delay_s, "reset": self.reset}
        if self.for_s is not None:
            out["for_s"] = self.for_s
            out["remaining_s"] = round(max(0.0, self.until - time.monotonic()), 3)
        if self.user_agent is not None:
            out["user_agent"] = self.user_agent.pattern
        return out


class ApiRuntime:
    """One API's routes plus its own faults and request log."""

    def __init__(self, name, routes):
        self.name = name
        self.routes = routes
        self.faults = []
        self.requests = []

    def take_fault(self, method, raw_path, user_agent=""):
        """Consume one use of the first fault matching; None if none does."""
        now = time.monotonic()
        self.faults[:] = [f for f in self.faults if not f.expired(now)]
        for fault in self.faults:
            if fault.matches(method, raw_path, user_agent):
                if fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                return fault
        return None


# --- requests and routing ----------------------------------------------------


class Request:
    """What a handler sees: method, path, query, parameters, body."""

    def __init__(self, method, raw_path, body, user_agent=""):
        self.method = method
        self.raw_path = raw_path
        self.user_agent = user_agent
        parts = urllib.parse.urlsplit(raw_path)
        self.path = parts.path
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(
            parts.query, keep_blank_values=True).items()}
        self.body = body
        self.params = {}

    def json(self):
        """The body as a JSON object ({} when empty); 400 when it is not."""
        if not self.body:
            return {}
        try:
            value = json.loads(self.body)
        except ValueError as err:
            raise ApiError(400, "InvalidContent", "Invalid JSON: %s" % err)
        if not isinstance(value, dict):
            raise ApiError(400, "InvalidContent",
                           "body must be a JSON object")
        return value

    def logged_body(self):
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return self.body.decode("utf-8", "replace")


class Reply:
    """A handler's answer; body None means no body at all (204)."""

    def __init__(self, status, body=None):
        self.status = status
        self.body = body


def route(method, pattern, handler):
    return (method, re.compile("^" + pattern + "$"), handler)


def dispatch(routes, lab, req):
    """Find the route for req and run its handler; raise ApiError if none."""
    allowed = []
    for method, regex, handler in routes:
        match = regex.match(req.path)
        if not match:
            continue
        if method != req.method and not (method == "GET"
                                         and req.method == "HEAD"):
            allowed.append(method)
            continue
        req.params = {k: urllib.parse.unquote(v)
                      for k, v in match.groupdict().items()}
        return handler(lab, req)
    if allowed:
        raise ApiError(405, "BadMethod", "%s is not allowed" % req.method)
    raise not_found("%s does not exist" % req.path)


# --- VMAPI -------------------------------------------------------------------


def vm_matches_state(vm, wanted):
    state = vm.get("state")
    if wanted == "active":
        return state not in ("destroyed", "failed")
    return state == wanted


def find_row(lab, table, key, message):
    """The row of table under key, or the API's 404 with message."""
    row = lab.dc.tables[table].get(key)
    if row is None:
        raise not_found(message)
    return row


def vmapi_get_vm(lab, req):
    return Reply(200, find_row(lab, "vms", req.params["uuid"], "VM not found"))


def vmapi_list_filters(query):
    """The (field, predicate) filters of a GET /vms query."""
    check_query(query, ("server_uuid", "state", "owner_uuid", "alias",
                        "uuid", "uuids", "limit", "offset"))
    if "state" in query and query["state"] not in VM_STATE_FILTERS:
        raise invalid_params(409, [field_error(
            "state", "must be one of: " + ", ".join(VM_STATE_FILTERS))])
    filters = []
    for field in ("server_uuid", "owner_uuid", "alias", "uuid"):
        if field in query:
            filters.append(lambda vm, f=field: vm.get(f) == query[f])
    if "uuids" in query:
        uuids = set(query["uuids"].split(","))
        filters.append(lambda vm: vm.get("uuid") in uuids)
    if "state" in query:
        filters.append(lambda vm: vm_matches_state(vm, query["state"]))
    return filters


def vmapi_list_vms(lab, req):
    filters = vmapi_list_filters(req.query)
    limit = query_int(req.query, "limit", VM_LIST_MAX, 1, VM_LIST_MAX)
    offset = query_int(req.query, "offset", 0, 0, sys.maxsize)
    found = [vm for vm in lab.dc.tables["vms"].values()
             if all(f(vm) for f in filters)]
    return Reply(200, found[offset:offset + limit])


def vmapi_put_vm(lab, req):
    vm = req.json()
    uuid = req.params["uuid"]
    if vm.get("uuid", uuid) != uuid:
        raise invalid_params(409, [field_error(
            "uuid", "does not match the VM in the path")])
    vm["uuid"] = uuid
    lab.dc.tables["vms"][uuid] = vm
    return Reply(200, vm)


VMAPI_ROUTES = [
    route("GET", r"/vms", vmapi_list_vms),
    route("GET", r"/vms/(?P<uuid>[^/]+)", vmapi_get_vm),
    route("PUT", r"/vms/(?P<uuid>[^/]+)", vmapi_put_vm),
]


# --- CNAPI -------------------------------------------------------------------


def server_extras(query):
    """The set of server keys that `extras` adds to a listing."""
    if "extras" not in query:
        return set()
    keys = set()
    for extra in filter(None, query["extras"].split(",")):
        if extra == "all":
            keys.update(SERVER_EXTRA_KEYS)
        elif extra in SERVER_EXTRAS:
            keys.update(SERVER_EXTRAS[extra])
        else:
            raise invalid_params(409, [field_error(
                "extras", "unsupported extra: %s" % extra)])
    return keys


def server_summary(server, extras):
    return {k: v for k, v in server.items()
            if k not in SERVER_EXTRA_KEYS or k in extras}


def server_list_filters(query):
    """The predicates of a GET /servers query."""
    check_query(query, ("extras", "hostname", "uuids", "headnode",
                        "reserved", "setup"))
    filters = []
    if "hostname" in query:
        filters.append(lambda s: s.get("hostname") == query["hostname"])
    if "uuids" in query:
        uuids = set(query["uuids"].split(","))
        filters.append(lambda s: s.get("uuid") in uuids)
    for field in ("headnode", "reserved", "setup"):
        wanted = query_bool(query, field)
        if wanted is not None:
            filters.append(
                lambda s, f=field, w=wanted: bool(s.get(f)) == w)
    return filters


def cnapi_list_servers(lab, req):
    filters = server_list_filters(req.query)
    extras = server_extras(req.query)
    return Reply(200, [server_summary(s, extras)
                       for s in lab.dc.tables["servers"].values()
                       if all(f(s) for f in filters)])


def cnapi_find_server(lab, uuid):
    return find_row(lab, "servers", uuid, "Server not found")


def cnapi_get_server(lab, req):
    return Reply(200, cnapi_find_server(lab, req.params["uuid"]))


def cnapi_update_server(lab, req):
    """POST /servers/:uuid: only `reserved` (a boolean) is modelled.

    The real CNAPI answers a parameter of the wrong type with a 500
    InvalidParameters; the lab does the same, and treats any other field
    the same way so that a client cannot rely on unmodelled behaviour.
    """
    server = cnapi_find_server(lab, req.params["uuid"])
    body = req.json()
    errors = []
    for field, value in body.items():
        if field != "reserved":
            errors.append(field_error(field, "unsupported parameter"))
        elif not isinstance(value, bool):
            errors.append(field_error(field, "must be a boolean value"))
    if errors:
        raise invalid_params(500, errors)
    server.update(body)
    return Reply(204)


CNAPI_ROUTES = [
    route("GET", r"/servers", cnapi_list_servers),
    route("GET", r"/servers/(?P<uuid>[^/]+)", cnapi_get_server),
    route("POST", r"/servers/(?P<uuid>[^/]+)", cnapi_update_server),
]


# --- NAPI --------------------------------------------------------------------
# Real NAPI answers every parameter error with 422 InvalidParameters.

NAPI_PARAM_STATUS = 422
IP_OPTIONAL_FIELDS = ("belongs_to_uuid", "belongs_to_type", "owner_uuid")
NIC_UPDATABLE = {"cn_uuid": str, "state": str, "primary": bool,
                 "belongs_to_uuid": str, "belongs_to_type": str,
                 "owner_uuid": str}
NIC_FILTERS = ("belongs_to_uuid", "belongs_to_type", "owner_uuid", "cn_uuid",
               "network_uuid", "nic_tag")


def napi_find_network(lab, uuid):
    return find_row(lab, "networks", uuid, "network not found")


def napi_ip_in_network(network, text):
    """The canonical form of IP text when it lies in network's subnet."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise invalid_params(NAPI_PARAM_STATUS, [field_error(
            "ip", "invalid IP address", "InvalidParameter")])
    if addr not in ipaddress.ip_network(network["subnet"], strict=False):
        raise not_found("IP is not in the network")
    return str(addr)


def serialize_ip(record):
    """An IP as NAPI shows it; `free` is derived, never stored."""
    out = {"ip": record["ip"], "network_uuid": record["network_uuid"],
           "reserved": bool(record.get("reserved", False))}
    out["free"] = ip_is_free(record)
    for field in IP_OPTIONAL_FIELDS:
        if record.get(field) is not None:
            out[field] = record[field]
    return out


def napi_get_network(lab, req):
    return Reply(200, napi_find_network(lab, req.params["uuid"]))


def napi_get_ip(lab, req):
    network = napi_find_network(lab, req.params["uuid"])
    ip = napi_ip_in_network(network, req.params["ip"])
    record = lab.dc.tables["ips"].get(ip_key(network["uuid"], ip))
    if record is None:
        record = {"ip": ip, "network_uuid": network["uuid"]}
    return Reply(200, serialize_ip(record))


def validate_ip_update(body):
    errors = []
    for field, value in body.items():
        if field in ("reserved", "unassign"):
            ok = isinstance(value, bool)
        elif field in IP_OPTIONAL_FIELDS:
            ok = isinstance(value, str)
        else:
            errors.append(field_error(field, "unsupported parameter",
                                      "UnknownParameters"))
            continue
        if not ok:
            errors.append(field_error(field, "invalid type",
                                      "InvalidParameter"))
    if errors:
        raise invalid_params(NAPI_PARAM_STATUS, errors)


def napi_put_ip(lab, req):
    """Create or update an IP record; `unassign: true` drops belongs_to_*."""
    network = napi_find_network(lab, req.params["uuid"])
    ip = napi_ip_in_network(network, req.params["ip"])
    body = req.json()
    validate_ip_update(body)
    key = ip_key(network["uuid"], ip)
    record = lab.dc.tables["ips"].setdefault(
        key, {"ip": ip, "network_uuid": network["uuid"], "reserved": False})
    if body.pop("unassign", False):
        for field in IP_OPTIONAL_FIELDS:
            record.pop(field, None)
    record.update(body)
    record["free"] = ip_is_free(record)
    return Reply(200, serialize_ip(record))


def napi_list_nics(lab, req):
    check_query(req.query, NIC_FILTERS, NAPI_PARAM_STATUS)
    return Reply(200, [nic for nic in lab.dc.tables["nics"].values()
                       if all(nic.get(f) == v for f, v in req.query.items())])


def napi_find_nic(lab, path_mac):
    return find_row(lab, "nics", mac_key(path_mac) or "", "nic not found")


def napi_get_nic(lab, req):
    return Reply(200, napi_find_nic(lab, req.params["mac"]))


def napi_put_nic(lab, req):
    nic = napi_find_nic(lab, req.params["mac"])
    body = req.json()
    errors = []
    for field, value in body.items():
        kind = NIC_UPDATABLE.get(field)
        if kind is None:
            errors.append(field_error(field, "unsupported parameter",
                                      "UnknownParameters"))
        elif not isinstance(value, kind):
            errors.append(field_error(field, "invalid type",
                                      "InvalidParameter"))
    if errors:
        raise invalid_params(NAPI_PARAM_STATUS, errors)
    nic.update(body)
    return Reply(200, nic)


NAPI_ROUTES = [
    route("GET", r"/networks/(?P<uuid>[^/]+)", napi_get_network),
    route("GET", r"/networks/(?P<uuid>[^/]+)/ips/(?P<ip>[^/]+)", napi_get_ip),
    route("PUT", r"/networks/(?P<uuid>[^/]+)/ips/(?P<ip>[^/]+)", napi_put_ip),
    route("GET", r"/nics", napi_list_nics),
    route("GET", r"/nics/(?P<mac>[^/]+)", napi_get_nic),
    route("PUT", r"/nics/(?P<mac>[^/]+)", napi_put_nic),
]


# --- IMGAPI ------------------------------------------------------------------


def imgapi_get_image(lab, req):
    return Reply(200, find_row(lab, "images", req.params["uuid"], "Image not found"))


IMGAPI_ROUTES = [
    route("GET", r"/images/(?P<uuid>[^/]+)", imgapi_get_image),
]


# --- admin routes (every port) -----------------------------------------------


def lab_state(lab, req):
    return Reply(200, lab.dc.dump())


def lab_add_fault(lab, req):
    fault = Fault(req.json())
    req.runtime.faults.append(fault)
    return Reply(200, {"faults": [f.describe() for f in req.runtime.faults]})


def lab_clear_faults(lab, req):
    req.runtime.faults.clear()
    return Reply(200, {"faults": []})


def lab_patch(lab, req):
    """Shallow-merge into (creating if missing) or delete one object."""
    body = req.json()
    collection, key = body.get("collection"), body.get("key")
    if collection not in COLLECTIONS or not isinstance(key, str):
        raise ApiError(400, "InvalidContent",
                       "need collection (one of %s) and key" % (COLLECTIONS,))
    table = lab.dc.tables[collection]
    tkey = Datacenter.normalize_key(collection, key)
    if tkey is None:
        raise ApiError(400, "InvalidContent", "bad key %r" % key)
    if body.get("delete"):
        if table.pop(tkey, None) is None:
            raise not_found("no %s %s" % (collection, key))
        return Reply(200, {"deleted": key})
    obj = table.get(tkey) or new_object(collection, key)
    obj.update(body.get("merge") or {})
    table[tkey] = obj
    return Reply(200, obj)


def new_object(collection, key):
    if collection == "ips":
        network_uuid, _, ip = key.partition("/")
        return {"ip": ip, "network_uuid": network_uuid, "reserved": False,
                "free": True}
    if collection == "nics":
        return {"mac": key}
    return {"uuid": key}


def lab_requests(lab, req):
    return Reply(200, req.runtime.requests)


def lab_clear_requests(lab, req):
    req.runtime.requests.clear()
    return Reply(200, [])


ADMIN_ROUTES = [
    route("GET", r"/__lab/state", lab_state),
    route("POST", r"/__lab/fault", lab_add_fault),
    route("POST", r"/__lab/faults/clear", lab_clear_faults),
    route("POST", r"/__lab/patch", lab_patch),
    route("GET", r"/__lab/requests", lab_requests),
    route("POST", r"/__lab/requests/clear", lab_clear_requests),
]


# --- the lab: shared state behind one lock -----------------------------------


class Lab:
    """The shared datacenter and the four APIs' runtimes, behind one lock."""

    def __init__(self, dc):
        self.lock = threading.Lock()
        self.dc = Datacenter(dc)
        routes = dict(zip(API_NAMES, (VMAPI_ROUTES, CNAPI_ROUTES,
                                      NAPI_ROUTES, IMGAPI_ROUTES)))
        self.runtimes = {name: ApiRuntime(name, routes[name])
                         for name in API_NAMES}

    def admit(self, runtime, req):
        """Log an API request; return (fault or None, its log entry)."""
        entry = {"method": req.method, "path": req.raw_path,
                 "body": req.logged_body(), "time": time.time(),
                 "status": None, "user_agent": req.user_agent}
        with self.lock:
            runtime.requests.append(entry)
            return runtime.take_fault(req.method, req.raw_path,
                                      req.user_agent), entry

    def answer(self, runtime, req):
        """Run req against runtime; return (status, encoded body or None)."""
        is_admin = req.path.startswith("/__lab/")
        routes = ADMIN_ROUTES if is_admin else runtime.routes
        req.runtime = runtime
        with self.lock:
            try:
                reply = dispatch(routes, self, req)
            except ApiError as err:
                reply = Reply(err.status, err.body)
            except Exception:  # a lab bug: answer as restify would
                log.exception("%s %s failed", req.method, req.raw_path)
                reply = Reply(500, {"code": "InternalError",
                                    "message": "Internal error"})
            if reply.body is None:
                return reply.status, None
            return reply.status, json.dumps(reply.body).encode()


# --- HTTP plumbing -----------------------------------------------------------


class LabHandler(BaseHTTPRequestHandler):
    """One HTTP/1.1 connection to one API; keep-alive as restify does."""

    protocol_version = "HTTP/1.1"

    def do_ANY(self):
        started = time.monotonic()
        status = self.serve()
        log.info("%s %s %s %s %s %.1fms", self.server.runtime.name,
                 self.client_address[0], self.command, self.path, status,
                 (time.monotonic() - started) * 1000)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = do_ANY
    do_OPTIONS = do_ANY

    def serve(self):
        """Answer one request; return its status ("reset" when dropped)."""
        lab, runtime = self.server.lab, self.server.runtime
        try:
            body = self.read_body()
        except ValueError as err:
            self.close_connection = True
            return self.send_json(400, json.dumps(
                {"code": "BadRequest", "message": str(err)}).encode())
        req = Request(self.command, self.path, body,
                      self.headers.get("User-Agent", ""))
        entry = None
        if not req.path.startswith("/__lab/"):
            fault, entry = lab.admit(runtime, req)
            if fault is not None:
                status = self.apply_fault(fault, entry)
                if status is not None:
                    return status
        status, payload = lab.answer(runtime, req)
        if entry is not None:
            entry["status"] = status
        return self.send_json(status, payload)

    def apply_fault(self, fault, entry):
        """Delay, then drop or fail the request; None to serve it normally.
        The log entry gets its status before the client can see the answer,
        so a test that reads the log right after it never finds it unset."""
        if fault.delay_s > 0:
            time.sleep(fault.delay_s)
        if fault.reset:
            entry["status"] = "reset"
            self.drop_connection()
            return "reset"
        if fault.status > 0:
            entry["status"] = fault.status
            return self.send_json(fault.status,
                                  json.dumps(fault.error_body()).encode())
        return None

    def drop_connection(self):
        """Close the socket with a TCP RST and no answer at all."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.connection.close()

    def read_body(self):
        """The request body, by Content-Length or chunked; b"" if none."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY_BYTES:
            raise ValueError("bad Content-Length")
        return self.rfile.read(length)

    def read_chunked(self):
        chunks, total = [], 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            total += size
            if total > MAX_BODY_BYTES:
                raise ValueError("body too large")
            if size == 0:
                break
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():
            pass
        return b"".join(chunks)

    def send_json(self, status, payload):
        """Send status with a JSON payload (None: no body, as for 204)."""
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload is not None and self.command != "HEAD":
            self.wfile.write(payload)
        return status

    def version_string(self):
        return "lab-" + self.server.runtime.name

    def log_message(self, fmt, *args):
        pass  # do_ANY writes one line per request instead


class ApiServer(ThreadingHTTPServer):
    """A threading HTTP server bound to one API's runtime."""

    daemon_threads = True

    def __init__(self, address, lab, runtime):
        self.lab = lab
        self.runtime = runtime
        super().__init__(address, LabHandler)


# --- process lifecycle -------------------------------------------------------


def die_with_parent():
    """Ask the kernel to SIGTERM us when the parent process exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getppid()
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d",
                    ctypes.get_errno())
    if os.getppid() != parent:
        sys.exit(0)


def write_ports(path, servers):
    ports = {name: srv.server_address[1] for name, srv in servers.items()}
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(ports, f)
    os.replace(tmp, path)
    return ports


def setup_logging(path):
    handler = logging.FileHandler(path) if path else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--state", required=True, help="datacenter JSON to load")
    p.add_argument("--ports-file", required=True,
                   help="where to write {api: port} once listening")
    p.add_argument("--listen", default="127.0.0.1", help="address to bind")
    p.add_argument("--log", help="request log file (default: stderr)")
    p.add_argument("--die-with-parent", action="store_true",
                   help="exit when the parent process dies")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    setup_logging(args.log)
    if args.die_with_parent:
        die_with_parent()
    with open(args.state) as f:
        lab = Lab(json.load(f))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    servers = {name: ApiServer((args.listen, 0), lab, lab.runtimes[name])
               for name in API_NAMES}
    threads = [threading.Thread(target=srv.serve_forever, args=(0.1,),
                                name=name, daemon=True)
               for name, srv in servers.items()]
    for t in threads:
        t.start()
    log.info("listening %s", write_ports(args.ports_file, servers))
    while not stop.wait(0.2):
        pass
    for srv in servers.values():
        srv.shutdown()
        srv.server_close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
