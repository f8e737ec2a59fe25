/*
 * fuzz_harness.c: the control server, the engine and a fake world for the
 * control API's fuzz targets (fuzz_harness.h), built with -DMIGD_FUZZ=ON
 * (clang, libFuzzer, ASan, UBSan).
 *
 * The server is the real one: control_start in front of the real engine,
 * whose submissions run the real checks (lib/submit.c: VMAPI, CNAPI, the
 * rules of lib/validate.c, zfs list and vmadm get on the CNs) through
 * ops.h's fake hook, answered here from the world of the input.  No job
 * ever runs (limits.max_active_jobs is 0, engine_resume is never called,
 * and no seeded job is switched), so a submission or an action changes
 * only the store, which fuzz_settle puts back as seeded.  The store holds
 * JOBS_SEEDED jobs (more than one slice of GET /jobs) and one unreadable
 * row.  Evacuations (evacuate.c) are stubbed: they answer by the server's
 * last character on the next tick.
 *
 * Besides the sanitizers, each answer is checked, and a violation is a
 * crash (a finding):
 *  - nothing, or HTTP/1.1 responses (a 100 Continue, then one final answer)
 *    with "connection: close", complete by Content-Length or chunked (or,
 *    to an HTTP/1.0 client, by the close);
 *  - every status >= 400 is application/json {"code": string,
 *    "message": string} (h2o's own answers included);
 *  - (by the targets) every status >= 400 logged exactly one "request
 *    refused" line, and no other answer logged one.
 */
#define _GNU_SOURCE /* memmem: the tests run on Linux */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <sqlite3.h>

#include "daemon.h"
#include "err.h"
#include "fuzz_harness.h"
#include "log.h"
#include "ops.h"
#include "util.h"

#define JOBS_SEEDED 240
/* Seeded jobs are created at 1000 + i ms; a job the input creates, now. */
#define SEED_CREATED_MAX 100000

#define VM_UUID "6a1b2c3d-1111-4222-8333-444455556666"
#define BUSY_VM "6a1b2c3d-1111-4222-8333-444455556667"
#define IMG "9d4ed5b8-ec9c-11e2-bfc9-3b3e2ea5a0c2"
#define OWNER "cc0c0b36-0f7c-4bd3-a08e-1a3a4a2c2f11"
#define PLATFORM "20240208T000000Z"

/* A VM as VMAPI returns it, that may migrate; an input's world patches it. */
static const char vm_text[] =
    "{\"uuid\": \"" VM_UUID "\", \"alias\": \"web01\", \"brand\": \"joyent\","
    " \"state\": \"running\", \"server_uuid\": \"00000000-0000-0000-0000-0000000000a1\","
    " \"owner_uuid\": \"" OWNER "\", \"ram\": 1024, \"quota\": 25,"
    " \"image_uuid\": \"" IMG "\", \"zfs_filesystem\": \"zones/" VM_UUID "\","
    " \"tags\": {}, \"internal_metadata\": {},"
    " \"nics\": [{\"mac\": \"90:b8:d0:00:00:01\", \"ip\": \"10.1.0.5\","
    " \"nic_tag\": \"external\", \"primary\": true}]}";

/* ---- the world of one input ---- */

struct world {
    json_t *vm;      /* VMAPI's object of the one VM */
    json_t *servers; /* CNAPI's servers */
    char *zfs;       /* the source's zfs list of the VM's tree */
    int vmapi_status, cnapi_status;
    bool ssh_down;      /* no CN can be reached */
    bool target_has_vm; /* vmadm get finds the VM on the target */
};

static struct world world;

/* A CNAPI server with extras=capacity,sysinfo. */
static json_t *server(int n, const char *platform, bool reserved)
{
    char uuid[40], host[8], ip[16];
    snprintf(uuid, sizeof(uuid), "00000000-0000-0000-0000-0000000000a%d", n);
    snprintf(host, sizeof(host), "cn%d", n);
    snprintf(ip, sizeof(ip), "10.99.99.1%d", n);
    return json_pack("{s:s, s:s, s:b, s:b, s:s, s:b, s:s, s:i, s:i, s:i, s:{s:s, s:s, s:s, "
                     "s:{s:{s:[s,s,s]}}}}",
                     "uuid", uuid, "hostname", host, "setup", 1, "reserved", reserved, "status",
                     "running", "headnode", 0, "current_platform", platform, "ram", 65536,
                     "unreserved_ram", 4096, "unreserved_disk", 100000, "sysinfo", "UUID", uuid,
                     "Admin IP", ip, "Live Image", platform, "Network Interfaces", "ixgbe0",
                     "NIC Names", "admin", "external", "internal");
}

static void world_default(void)
{
    json_decref(world.vm);
    json_decref(world.servers);
    free(world.zfs);
    world.vm = json_loads(vm_text, 0, NULL);
    world.servers = json_pack("[o, o, o, o]", server(1, PLATFORM, false),
                              server(2, PLATFORM, false), server(3, "20200101T000000Z", false),
                              server(4, PLATFORM, true));
    world.zfs = mig_strdup("zones/" VM_UUID "\t1000000\t900000\tzones/" IMG
                           "@final\tfilesystem\n");
    world.vmapi_status = world.cnapi_status = 200;
    world.ssh_down = world.target_has_vm = false;
}

/*
 * The world after the mark: {"vm": {...} (merged into the VM), "servers":
 * [...] (replacing CNAPI's), "zfs": "...", "vmapi_status": n,
 * "cnapi_status": n, "ssh_down": bool, "target_has_vm": bool}.
 */
size_t fuzz_world_set(const uint8_t *data, size_t size)
{
    world_default();
    const char *mark = memmem(data, size, FUZZ_WORLD_MARK, strlen(FUZZ_WORLD_MARK));
    if (mark == NULL)
        return size;
    size_t at = (size_t)(mark - (const char *)data), from = at + strlen(FUZZ_WORLD_MARK);
    json_t *w = json_loadb((const char *)data + from, size - from, 0, NULL);
    if (json_is_object(w)) {
        json_t *v;
        if (json_is_object(v = json_object_get(w, "vm")))
            json_object_update(world.vm, v);
        if (json_is_array(v = json_object_get(w, "servers"))) {
            json_decref(world.servers);
            world.servers = json_incref(v);
        }
        if (json_is_string(v = json_object_get(w, "zfs"))) {
            free(world.zfs);
            world.zfs = mig_strdup(json_string_value(v));
        }
        if (json_is_integer(v = json_object_get(w, "vmapi_status")))
            world.vmapi_status = (int)json_integer_value(v);
        if (json_is_integer(v = json_object_get(w, "cnapi_status")))
            world.cnapi_status = (int)json_integer_value(v);
        world.ssh_down = json_is_true(json_object_get(w, "ssh_down"));
        world.target_has_vm = json_is_true(json_object_get(w, "target_has_vm"));
    }
    json_decref(w);
    return at;
}

/* ---- the fake operations: answered on the next turn of the loop ---- */

struct pending {
    struct ops *o;
    struct mig_result res;
    char *out, *errout;
    json_t *json;
    struct pending *next;
};

static struct pending *pendings;
static uv_timer_t deliver_timer;

static void on_deliver(uv_timer_t *t)
{
    (void)t;
    /* Answers given while delivering (the next operation) wait for the next turn. */
    struct pending *list = pendings;
    pendings = NULL;
    while (list != NULL) {
        struct pending *p = list;
        list = p->next;
        ops_fake_deliver(p->o, &p->res, p->out, p->errout, p->json);
        free(p->out);
        free(p->errout);
        json_decref(p->json);
        free(p);
    }
}

static void answer(struct pending *p)
{
    struct pending **pp = &pendings;
    while (*pp != NULL)
        pp = &(*pp)->next;
    *pp = p;
    uv_timer_start(&deliver_timer, on_deliver, 0, 0);
}

static void answer_http(struct pending *p, const struct mig_op *op)
{
    const char *url = op->url != NULL ? op->url : "";
    const char *vm = json_string_value(json_object_get(world.vm, "uuid"));
    const char *alias = json_string_value(json_object_get(world.vm, "alias"));
    const char *by_uuid = strstr(url, "/vms/");
    const char *by_alias = strstr(url, "alias=");
    if (strcmp(op->api, "VMAPI") == 0 && by_uuid != NULL) {
        bool found = vm != NULL && strncasecmp(by_uuid + 5, vm, strlen(vm)) == 0 &&
                     by_uuid[5 + strlen(vm)] == '\0';
        p->res.http_status = found ? world.vmapi_status : 404;
        p->json = found ? json_incref(world.vm)
                        : json_pack("{s:s, s:s}", "code", "ResourceNotFound", "message", "no VM");
    } else if (strcmp(op->api, "VMAPI") == 0 && by_alias != NULL) {
        const char *want = by_alias + 6, *end = strchr(want, '&');
        size_t n = end != NULL ? (size_t)(end - want) : strlen(want);
        p->res.http_status = world.vmapi_status;
        p->json = json_array();
        if (alias != NULL && strlen(alias) == n && strncmp(alias, want, n) == 0)
            json_array_append(p->json, world.vm);
    } else if (strcmp(op->api, "CNAPI") == 0) {
        p->res.http_status = world.cnapi_status;
        p->json = json_incref(world.servers);
    } else {
        p->res.http_status = 500;
        p->json = json_pack("{s:s, s:s}", "code", "InternalError", "message", "not in the world");
    }
}

static void on_fake_run(void *arg, struct ops *o, const struct mig_op *op,
                        const struct mig_peers *peers)
{
    (void)arg;
    (void)peers;
    struct pending *p = mig_calloc(1, sizeof(*p));
    p->o = o;
    if (op->kind == MIG_OP_HTTP) {
        answer_http(p, op);
    } else if (op->kind == MIG_OP_SSH && op->cmd == NULL) {
        p->res.err = -EINVAL; /* a builder refused an argument */
    } else if (op->kind == MIG_OP_SSH && world.ssh_down) {
        p->res.err = MIG_ESSH;
        snprintf(p->res.detail, sizeof(p->res.detail), "connect: Connection refused");
    } else if (op->kind == MIG_OP_SSH && strncmp(op->cmd, "zfs list", 8) == 0) {
        p->out = mig_strdup(world.zfs);
    } else if (op->kind == MIG_OP_SSH && strncmp(op->cmd, "vmadm get", 9) == 0) {
        p->res.exit_status = world.target_has_vm ? 0 : 1;
        p->out = mig_strdup(world.target_has_vm ? "{}" : "");
        p->errout = mig_strdup(world.target_has_vm ? "" : "Could not find VM");
    } else {
        p->res.exit_status = 1;
        p->errout = mig_strdup("not in the fuzz world");
    }
    answer(p);
}

static void on_fake_cancel(void *arg, struct ops *o)
{
    (void)arg;
    for (struct pending *p = pendings; p != NULL; p = p->next) {
        if (p->o == o) {
            p->res.err = MIG_ECANCELED;
            snprintf(p->res.detail, sizeof(p->res.detail), "canceled");
        }
    }
}

static const struct ops_fake fake_ops = {on_fake_run, on_fake_cancel, NULL};

/* ---- evacuate.c, stubbed: answers by the name's last character on the next tick ---- */

struct stub_evac {
    evac_cb cb;
    void *arg;
    char outcome;
    struct stub_evac *next;
};

static struct stub_evac *evacs;
static uv_timer_t evac_timer;

static void on_evac_tick(uv_timer_t *t)
{
    (void)t;
    struct stub_evac *list = evacs;
    evacs = NULL;
    while (list != NULL) {
        struct stub_evac *v = list;
        list = v->next;
        switch (v->outcome) {
        case '1':
            v->cb(v->arg, MIG_EREFUSED, "TargetNotFound", "CNAPI has no server with that name",
                  NULL);
            break;
        case '2':
            v->cb(v->arg, MIG_EREFUSED, "CnapiError",
                  "cannot list servers from CNAPI: HTTP 503 ServiceUnavailableError: down", NULL);
            break;
        case '3':
            v->cb(v->arg, MIG_EDB, "DatabaseError", "cannot record the evacuation", NULL);
            break;
        default: {
            json_t *ev = json_pack("{s:s, s:s, s:[], s:[]}", "uuid",
                                   "00000000-0000-0000-0000-0000000000cc", "state", "plan", "plan",
                                   "attention");
            v->cb(v->arg, 0, NULL, NULL, ev);
            json_decref(ev);
        }
        }
        free(v);
    }
}

static int stub_evac(const char *name, evac_cb cb, void *arg, char *err, size_t errsz)
{
    if (name == NULL || name[0] == '\0') {
        snprintf(err, errsz, "a server is required");
        return -EINVAL;
    }
    struct stub_evac *v = mig_calloc(1, sizeof(*v));
    v->cb = cb;
    v->arg = arg;
    v->outcome = name[strlen(name) - 1];
    v->next = evacs;
    evacs = v;
    uv_timer_start(&evac_timer, on_evac_tick, 0, 0);
    return 0;
}

int evac_start(struct migd *d, json_t *body, evac_cb cb, void *arg, char *err, size_t errsz)
{
    (void)d;
    return stub_evac(json_string_value(json_object_get(body, "server")), cb, arg, err, errsz);
}

int estimate_start(struct migd *d, const char *what, evac_cb cb, void *arg, char *err,
                   size_t errsz)
{
    (void)d;
    return stub_evac(what, cb, arg, err, errsz);
}

json_t *evac_json(struct migd *d, json_t *record)
{
    (void)d;
    return json_deep_copy(record);
}

json_t *evac_list_json(struct migd *d)
{
    return mig_store_evac_list(d->store);
}

void evac_job_ended(struct migd *d, const char *evac_uuid)
{
    (void)d;
    (void)evac_uuid;
}

/* A rolling drain answers as its first CN's evacuation would. */
int rolling_start(struct migd *d, json_t *body, evac_cb cb, void *arg, char *err, size_t errsz)
{
    (void)d;
    return stub_evac(json_string_value(json_array_get(json_object_get(body, "servers"), 0)), cb,
                     arg, err, errsz);
}

int evac_pause(struct migd *d, const char *uuid, bool pause, json_t **out, char *err,
               size_t errsz)
{
    (void)d;
    (void)pause;
    *out = NULL;
    mig_errf(err, errsz, "no evacuation %s", uuid);
    return -ENOENT;
}

json_t *rolling_json(struct migd *d, const char *uuid)
{
    (void)d;
    (void)uuid;
    return NULL;
}

int evac_homecoming(struct migd *d, const char *uuid, json_t *body, evac_cb cb, void *arg, char *err,
                size_t errsz)
{
    (void)d;
    (void)body;
    (void)cb;
    (void)arg;
    mig_errf(err, errsz, "no evacuation %s", uuid);
    return -ENOENT;
}

int evac_unreserve(struct migd *d, const char *uuid, evac_cb cb, void *arg, char *err,
                   size_t errsz)
{
    (void)d;
    (void)cb;
    (void)arg;
    mig_errf(err, errsz, "no evacuation %s", uuid);
    return -ENOENT;
}


/* ---- the server, once ---- */

static uv_loop_t *loop;
static struct migd daemon_state;
static char sock_path[108];
static char work_dir[64];
static char db_path[128];
static sqlite3 *reset_db;          /* a second connection that puts the store back */
static struct mig_job *seeds[4];   /* the unfinished seeded jobs, as first saved */
static size_t nseeds;
static FILE *log_file;
static char *log_buf;
static size_t log_len;

/* Removes the socket, the database and their directory when libFuzzer exits. */
static void cleanup(void)
{
    static const char *files[] = {"migd.sock", "migd.sqlite", "migd.sqlite-wal", "migd.sqlite-shm",
                                  "migd.sqlite-journal"};
    char path[160];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", work_dir, files[i]);
        unlink(path);
    }
    rmdir(work_dir);
}

static void fatal_setup(const char *what, const char *err)
{
    fprintf(stderr, "fuzz harness: %s: %s\n", what, err);
    abort();
}

/* A job of the store: uuid from n, the given state, mode and phase. */
static struct mig_job *seed_job(int n, enum mig_job_state state, enum mig_mode mode,
                                enum mig_phase phase, const char *vm)
{
    struct mig_job *job = mig_job_new();
    snprintf(job->uuid, sizeof(job->uuid), "5eed0000-0000-4000-8000-%012d", n);
    if (vm != NULL)
        snprintf(job->vm_uuid, sizeof(job->vm_uuid), "%s", vm);
    else
        snprintf(job->vm_uuid, sizeof(job->vm_uuid), "0000aaaa-0000-4000-8000-%012d", n);
    job->vm_alias = mig_strdup("seeded");
    job->source_hostname = mig_strdup("cn1");
    job->target_hostname = mig_strdup("cn2");
    job->state = state;
    job->mode = mode;
    job->phase = phase;
    job->created = 1000 + n;
    return job;
}

/* JOBS_SEEDED jobs, the last few unfinished, and one row that cannot be read. */
static void seed_store(void)
{
    for (int n = 0; n < JOBS_SEEDED; n++) {
        struct mig_job *job;
        if (n == JOBS_SEEDED - 3)
            job = seed_job(n, MIG_JOB_QUEUED, MIG_MODE_FULL, MIG_PHASE_VALIDATE, NULL);
        else if (n == JOBS_SEEDED - 2)
            job = seed_job(n, MIG_JOB_WAITING, MIG_MODE_INCREMENTAL, MIG_PHASE_SYNC, BUSY_VM);
        else if (n == JOBS_SEEDED - 1)
            job = seed_job(n, MIG_JOB_RUNNING, MIG_MODE_INCREMENTAL, MIG_PHASE_SYNC, NULL);
        else
            job = seed_job(n, n % 7 == 0 ? MIG_JOB_FAILED : MIG_JOB_SUCCEEDED, MIG_MODE_FULL,
                           MIG_PHASE_CLEANUP, NULL);
        if (mig_store_job_save(daemon_state.store, job) != 0)
            fatal_setup("seeding", job->uuid);
        if (job->state == MIG_JOB_SUCCEEDED || job->state == MIG_JOB_FAILED)
            mig_job_free(job);
        else
            seeds[nseeds++] = job;
    }
    if (sqlite3_open(db_path, &reset_db) != SQLITE_OK)
        fatal_setup("sqlite3_open", db_path);
    sqlite3_busy_timeout(reset_db, 5000);
    if (sqlite3_exec(reset_db,
                     "INSERT INTO jobs (uuid, vm_uuid, state, phase, mode, created, updated, "
                     "record) VALUES ('5eed0000-0000-4000-8000-00000000bad0', "
                     "'0000aaaa-0000-4000-8000-00000000bad0', 'failed', 'sync', 'full', 1100, "
                     "1100, '{not json')",
                     NULL, NULL, NULL) != SQLITE_OK)
        fatal_setup("seeding", sqlite3_errmsg(reset_db));
}

uv_loop_t *fuzz_setup(void)
{
    if (loop != NULL)
        return loop;
    loop = uv_default_loop();
    signal(SIGPIPE, SIG_IGN); /* the server may close before the whole input is written */
    uv_timer_init(loop, &deliver_timer);
    uv_timer_init(loop, &evac_timer);
    snprintf(work_dir, sizeof(work_dir), "/tmp/fuzz_control.XXXXXX");
    if (mkdtemp(work_dir) == NULL)
        abort();
    atexit(cleanup);
    char err[256];
    snprintf(db_path, sizeof(db_path), "%s/migd.sqlite", work_dir);
    snprintf(sock_path, sizeof(sock_path), "%s/migd.sock", work_dir);
    static const char cfg_text[] =
        "{\"apis\": {\"vmapi\": \"http://vmapi\", \"cnapi\": \"http://cnapi\","
        " \"napi\": \"http://napi\", \"imgapi\": \"http://imgapi\"}}";
    if (mig_config_parse(cfg_text, strlen(cfg_text), &daemon_state.cfg, err, sizeof(err)) != 0)
        fatal_setup("config", err);
    /* Nothing runs: a submission or an action changes only the store. */
    daemon_state.cfg->limits.max_active_jobs = 0;
    daemon_state.loop = loop;
    daemon_state.started_ms = mig_now_ms();
    daemon_state.fake_ops = &fake_ops;
    mig_log_init("migd", MIG_LOG_FATAL, NULL); /* the store's schema steps */
    if (mig_store_open(db_path, &daemon_state.store, err, sizeof(err)) != 0)
        fatal_setup("store", err);
    seed_store();
    if (engine_new(&daemon_state, &daemon_state.engine) != 0)
        fatal_setup("engine", "engine_new failed");
    if (control_start(&daemon_state, sock_path, &daemon_state.control, err, sizeof(err)) != 0)
        fatal_setup("control", err);
    return loop;
}

/* ---- the log of an input ---- */

static size_t count(const char *hay, size_t len, const char *needle)
{
    size_t n = 0, nl = strlen(needle);
    for (size_t i = 0; i + nl <= len; i++)
        if (memcmp(hay + i, needle, nl) == 0)
            n++;
    return n;
}

void fuzz_log_begin(void)
{
    log_file = open_memstream(&log_buf, &log_len);
    mig_log_init("migd", MIG_LOG_DEBUG, log_file);
}

size_t fuzz_log_end(void)
{
    fflush(log_file);
    /* As bunyan writes it: a path that says "request refused" is escaped inside msg. */
    size_t refused = count(log_buf, log_len, "\"msg\":\"request refused: ");
    if (getenv("FUZZ_SHOW_LOG") != NULL)
        fprintf(stderr, "%.*s", (int)log_len, log_buf);
    mig_log_init("migd", MIG_LOG_DEBUG, NULL);
    fclose(log_file);
    free(log_buf);
    log_buf = NULL;
    log_len = 0;
    return refused;
}

/* ---- clients ---- */

static void on_client_io(uv_poll_t *p, int status, int events)
{
    struct fuzz_client *c = p->data;
    if (status < 0) {
        /*
         * libuv reports a socket error (the server closed with our bytes
         * unread: ECONNRESET) without reading: the answer before it is still
         * to be read.
         */
        c->shut = true;
        events = UV_READABLE;
    }
    if ((events & UV_WRITABLE) && !c->shut) {
        int e = 0;
        while (c->out_off < c->out_len) {
            ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
            if (n < 0) {
                e = errno;
                break;
            }
            c->out_off += (size_t)n;
        }
        if ((c->out_off == c->out_len && c->want_shut) || (e != 0 && e != EAGAIN && e != EINTR)) {
            shutdown(c->fd, SHUT_WR);
            c->shut = true;
        }
    }
    if (events & (UV_READABLE | UV_DISCONNECT)) {
        for (;;) {
            if (c->in_cap - c->in_len < 4096) {
                c->in_cap = c->in_cap * 2 + 8192;
                c->in = realloc(c->in, c->in_cap);
            }
            ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len - 1);
            if (n > 0) {
                c->in_len += (size_t)n;
                uv_timer_again(&c->quiet);
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                c->done = true;
            break;
        }
    }
    if (c->done)
        uv_poll_stop(p);
    else
        uv_poll_start(p, UV_READABLE | UV_DISCONNECT |
                             (!c->shut && (c->out_off < c->out_len || c->want_shut) ? UV_WRITABLE
                                                                                     : 0),
                      on_client_io);
}

/* True when the answer so far is a watch stream that has sent its first line. */
static bool watching(const struct fuzz_client *c)
{
    const char *hend = c->in != NULL ? memmem(c->in, c->in_len, "\r\n\r\n", 4) : NULL;
    if (hend == NULL)
        return false;
    size_t hlen = (size_t)(hend - c->in);
    return memmem(c->in, hlen, "application/x-ndjson", 20) != NULL &&
           memchr(hend + 4, '\n', c->in_len - hlen - 4) != NULL;
}

/*
 * Only a watch stream is left: any other answer ends by itself (a CPU
 * shared with other work may hold the loop longer than FUZZ_QUIET_MS).
 */
static void on_quiet(uv_timer_t *t)
{
    struct fuzz_client *c = t->data;
    if (c->done)
        return;
    if (!c->shut || pendings != NULL || evacs != NULL || !watching(c)) {
        uv_timer_again(t);
        return;
    }
    c->cut = true;
    fuzz_client_abandon(c);
}

void fuzz_client_open(struct fuzz_client *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        abort();
    uv_poll_init(loop, &c->poll, c->fd);
    c->poll.data = c;
    uv_timer_init(loop, &c->quiet);
    c->quiet.data = c;
    uv_update_time(loop); /* the loop's clock stood still while libFuzzer made this input */
    uv_timer_start(&c->quiet, on_quiet, FUZZ_QUIET_MS, FUZZ_QUIET_MS);
    uv_poll_start(&c->poll, UV_READABLE | UV_DISCONNECT, on_client_io);
}

void fuzz_client_write(struct fuzz_client *c, const void *bytes, size_t n)
{
    if (c->shut || c->abandoned || n == 0)
        return;
    if (c->out_len + n > c->out_cap) {
        c->out_cap = (c->out_len + n) * 2;
        c->out = realloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, bytes, n);
    c->out_len += n;
    if (!c->done)
        uv_poll_start(&c->poll, UV_READABLE | UV_DISCONNECT | UV_WRITABLE, on_client_io);
}

void fuzz_client_shut(struct fuzz_client *c)
{
    if (c->shut || c->abandoned)
        return;
    c->want_shut = true;
    if (!c->done)
        uv_poll_start(&c->poll, UV_READABLE | UV_DISCONNECT | UV_WRITABLE, on_client_io);
}

static void on_poll_closed(uv_handle_t *h)
{
    struct fuzz_client *c = h->data;
    close(c->fd);
    c->fd = -1;
}

void fuzz_client_abandon(struct fuzz_client *c)
{
    if (c->abandoned)
        return;
    c->abandoned = true;
    c->done = true;
    uv_close((uv_handle_t *)&c->poll, on_poll_closed);
}

void fuzz_client_close(struct fuzz_client *c)
{
    uv_close((uv_handle_t *)&c->quiet, NULL);
    if (!c->abandoned)
        uv_close((uv_handle_t *)&c->poll, on_poll_closed);
    c->abandoned = true;
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
}

/* ---- between inputs ---- */

static void on_walk(uv_handle_t *h, void *arg)
{
    if (h->type == UV_NAMED_PIPE && !uv_is_closing(h))
        (*(int *)arg)++;
}

static int open_pipes(void)
{
    int n = 0;
    uv_walk(loop, on_walk, &n);
    return n;
}

/* Deletes the jobs the input created and saves the unfinished seeds as they were. */
static void reset_store(void)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "DELETE FROM jobs WHERE created >= %d", SEED_CREATED_MAX);
    if (sqlite3_exec(reset_db, sql, NULL, NULL, NULL) != SQLITE_OK)
        fatal_setup("reset", sqlite3_errmsg(reset_db));
    for (size_t i = 0; i < nseeds; i++)
        if (mig_store_job_save(daemon_state.store, seeds[i]) != 0)
            fatal_setup("reset", seeds[i]->uuid);
}

/*
 * A watch whose client left is closed by migd when the job next moves (the
 * failed write); here nothing moves by itself, so the unfinished seeds are
 * made to: an abort or a finish is recorded on each (the store is put
 * back after).
 */
static void move_seeds(void)
{
    static const char *actions[] = {"abort", "finish"}; /* one of them applies to each */
    for (size_t i = 0; i < nseeds; i++) {
        for (size_t k = 0; k < sizeof(actions) / sizeof(actions[0]); k++) {
            char msg[512];
            engine_action(daemon_state.engine, seeds[i]->uuid, actions[k], msg, sizeof(msg));
        }
    }
}

void fuzz_settle(bool wrote)
{
    /* The server's only pipe between inputs is its listener; a fake answer may be on its way. */
    uint64_t start = uv_hrtime(), deadline = start + 5000000000ull;
    bool moved = false;
    for (;;) {
        uv_run(loop, UV_RUN_NOWAIT);
        bool quiet = pendings == NULL && evacs == NULL;
        if (open_pipes() <= 1 && quiet)
            break;
        if (quiet && !moved && uv_hrtime() - start > FUZZ_QUIET_MS * 1000000ull) {
            move_seeds();
            moved = wrote = true;
        }
        if (uv_hrtime() > deadline)
            fuzz_finding("the server still holds a connection 5 s after its clients left", "",
                         0);
        usleep(100);
    }
    if (wrote)
        reset_store();
}

/* ---- checking the answer ---- */

void fuzz_finding(const char *why, const char *resp, size_t len)
{
    fprintf(stderr, "fuzz_control: %s; the answer (%zu bytes):\n%.*s\n", why, len,
            (int)(len < 4000 ? len : 4000), resp);
    abort();
}

/* The value of header name in head[0..len) (case-insensitive), or NULL; *vlen its length. */
static const char *header(const char *head, size_t len, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', len);
    const char *end = head + len;
    while (p != NULL && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - line) > nl + 1 && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (v < eol && *v == ' ')
                v++;
            *vlen = (size_t)(eol - v);
            if (*vlen > 0 && v[*vlen - 1] == '\r')
                (*vlen)--;
            return v;
        }
        p = eol;
    }
    return NULL;
}

int fuzz_check_answer(const char *resp, size_t len, bool cut)
{
    if (len == 0)
        return 0; /* nothing (resp may be NULL) */
    const char *p = resp, *end = resp + len;
    for (;;) {
        if ((size_t)(end - p) < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0)
            fuzz_finding("not an HTTP/1.1 status line", resp, len);
        int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        const char *hend = NULL;
        for (const char *q = p; q + 4 <= end; q++) {
            if (memcmp(q, "\r\n\r\n", 4) == 0) {
                hend = q + 4;
                break;
            }
        }
        if (hend == NULL && cut)
            return 0;
        if (hend == NULL)
            fuzz_finding("a response head without its end", resp, len);
        size_t hlen = (size_t)(hend - p);
        if (status >= 100 && status < 200) {
            p = hend; /* 100 Continue, then the answer (none if the body never came) */
            if (p == end)
                return 0;
            continue;
        }
        size_t vl;
        const char *v = header(p, hlen, "connection", &vl);
        if (v == NULL || vl != 5 || strncasecmp(v, "close", 5) != 0)
            fuzz_finding("an answer without Connection: close", resp, len);
        const char *body = hend;
        size_t blen = (size_t)(end - hend);
        v = header(p, hlen, "content-length", &vl);
        if (cut) {
            /* Left before the end: only the head is whole. */
        } else if (v != NULL) {
            size_t cl = strtoul(v, NULL, 10);
            if (blen != cl && blen != 0) /* 0: the answer to a HEAD */
                fuzz_finding("a body that is not its Content-Length", resp, len);
        } else if ((v = header(p, hlen, "transfer-encoding", &vl)) != NULL) {
            if (vl != 7 || strncasecmp(v, "chunked", 7) != 0)
                fuzz_finding("a transfer-encoding that is not chunked", resp, len);
            if (blen < 5 || memcmp(end - 5, "0\r\n\r\n", 5) != 0)
                fuzz_finding("a chunked answer without its last chunk", resp, len);
        } /* else delimited by the close (a stream to an HTTP/1.0 client) */
        if (status >= 400) {
            v = header(p, hlen, "content-type", &vl);
            if (v == NULL || vl != 16 || strncasecmp(v, "application/json", 16) != 0)
                fuzz_finding("an error that is not application/json", resp, len);
            if (blen != 0 && !cut) {
                json_error_t jerr;
                json_t *j = json_loadb(body, blen, 0, &jerr);
                if (!json_is_object(j) || !json_is_string(json_object_get(j, "code")) ||
                    !json_is_string(json_object_get(j, "message")) || json_object_size(j) != 2)
                    fuzz_finding("an error body that is not {code, message}", resp, len);
                json_decref(j);
            }
        }
        return status;
    }
}

