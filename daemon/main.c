/*
 * main.c: migd's entry point.  Parses the command line, loads and checks the
 * configuration, opens the store, removes the job keys a crash left, creates
 * the long-lived pieces on one libuv loop (HTTP client, SSH pool, engine,
 * control API), and on SIGINT or SIGTERM takes them down in order and waits
 * until every handle is closed.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "err.h"
#include "keygen.h"
#include "log.h"
#include "util.h"

#define MIGD_DEFAULT_CONFIG "/opt/smartdc/migd/etc/migd.json"

/* The daemon and what main needs to take it down. */
struct migd_main {
    struct migd d;
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    int pieces_open; /* control, ssh pool, http client: each reports when closed */
    bool stopping;
    int exit_status;
    int job_log_level; /* job log records below this level are not stored */
    int lock_fd;       /* the database's lock: held (open) for the daemon's life */
};

static const char usage_text[] =
    "usage: migd [-n] [-d] [-f CONFIG]\n"
    "       migd -h | -V\n"
    "\n"
    "Migrates instances between the compute nodes of a Triton datacenter.\n"
    "\n"
    "  -f CONFIG   configuration file (default: $MIGD_CONFIG, else\n"
    "              " MIGD_DEFAULT_CONFIG ")\n"
    "  -n          check the configuration, print \"configuration OK\" and exit\n"
    "  -d          log at the debug level, whatever log_level says\n"
    "  -h, --help  print this help and exit\n"
    "  -V          print the version and exit\n"
    "\n"
    "Environment: MIGD_CONFIG names the configuration file when -f does not;\n"
    "MIGD_SOCKET names the control socket instead of the configuration's \"socket\".\n"
    "Exit status: 0 after an orderly shutdown (SIGINT, SIGTERM) or a good check,\n"
    "1 when the daemon cannot start or the configuration is wrong, 2 on bad usage.\n";

static void on_job_log(void *arg, int level, const char *job_uuid, const char *msg)
{
    struct migd_main *m = arg;
    if (level < m->job_log_level || m->d.store == NULL)
        return;
    /* A failure is not logged: that would recurse into this sink. */
    (void)mig_store_log_append(m->d.store, job_uuid, level, msg);
}

static void on_piece_closed(void *arg)
{
    struct migd_main *m = arg;
    if (--m->pieces_open > 0)
        return;
    /* Everything is down: the signal handles were kept for a forced exit until now. */
    uv_close((uv_handle_t *)&m->sigint, NULL);
    uv_close((uv_handle_t *)&m->sigterm, NULL);
}

/* Takes the pieces down in order; the loop ends once all their handles are closed. */
static void migd_shutdown(struct migd_main *m)
{
    struct migd *d = &m->d;
    struct control *c = d->control;
    struct mig_ssh_pool *ssh = d->ssh;
    struct mig_http *http = d->http;
    m->stopping = true;
    /*
     * One count per piece that is there to close, and one held here until
     * each was asked to: the signals stay open until the last piece closed.
     */
    m->pieces_open = 1 + (c != NULL) + (ssh != NULL) + (http != NULL);
    d->control = NULL;
    if (c != NULL)
        control_stop(c, on_piece_closed, m);
    evac_cancel_all(d);
    rolling_cancel_all(d);
    evac_unreserve_cancel_all(d);
    evac_homecoming_cancel_all(d);
    if (d->engine != NULL) {
        engine_free(d->engine);
        d->engine = NULL;
    }
    d->ssh = NULL;
    if (ssh != NULL)
        mig_ssh_pool_close(ssh, on_piece_closed, m);
    d->http = NULL;
    if (http != NULL)
        mig_http_close(http, on_piece_closed, m);
    on_piece_closed(m); /* the count held here */
}

static void on_signal(uv_signal_t *handle, int signum)
{
    struct migd_main *m = handle->data;
    if (m->stopping) {
        mig_log(MIG_LOG_FATAL, NULL, NULL, "signal %d during shutdown: exiting now", signum);
        exit(1);
    }
    log_info("migd stopping (signal %d)", signum);
    migd_shutdown(m);
}

/* Creates every piece after the store; 0 or a negative code (logged). */
static int migd_start(struct migd_main *m, const char *socket_path)
{
    struct migd *d = &m->d;
    struct mig_config *cfg = d->cfg;
    char err[512] = "";
    int rc = mig_http_new(d->loop, &d->http);
    if (rc != 0) {
        mig_log(MIG_LOG_FATAL, NULL, NULL, "cannot create the HTTP client: %s", mig_strerror(rc));
        return rc;
    }
    struct mig_ssh_opts opts = {
        .user = cfg->ssh.user,
        .port = cfg->ssh.port,
        .identity = cfg->ssh.identity,
        .known_hosts = cfg->ssh.known_hosts,
        .connect_timeout_s = cfg->ssh.connect_timeout_s,
        .keepalive_s = cfg->ssh.keepalive_s,
        .ciphers = cfg->ssh.ciphers,
        .host_limit_bytes_s = (uint64_t)cfg->limits.cn_mbps * 1000000 / 8,
    };
    rc = mig_ssh_pool_new(d->loop, &opts, &d->ssh);
    if (rc != 0) {
        mig_log(MIG_LOG_FATAL, NULL, NULL, "cannot create the SSH pool: %s", mig_strerror(rc));
        return rc;
    }
    rc = engine_new(d, &d->engine);
    if (rc != 0) {
        mig_log(MIG_LOG_FATAL, NULL, NULL, "cannot start the job engine: %s", mig_strerror(rc));
        return rc;
    }
    /* The socket is claimed before any job moves: a daemon that cannot serve does not act. */
    rc = control_start(d, socket_path, &d->control, err, sizeof(err));
    if (rc != 0) {
        mig_log(MIG_LOG_FATAL, NULL, NULL, "cannot serve the control API: %s", err);
        return rc;
    }
    evac_resume(d);
    rolling_resume(d);
    engine_resume(d->engine);
    return 0;
}

/*
 * Checks that the files the configuration names can be used: the SSH
 * identity and known_hosts readable, the socket's and the database's
 * directories there.  NULL when all is well, else the key at fault with a
 * line in err.
 */
static const char *check_files(const struct mig_config *cfg, const char *socket_path, char *err,
                               size_t errsz)
{
    const struct {
        const char *key, *path;
        bool dir; /* the path's directory must exist, not the path */
    } files[] = {{"ssh.identity", cfg->ssh.identity, false},
                 {"ssh.known_hosts", cfg->ssh.known_hosts, false},
                 {"socket", socket_path, true},
                 {"db", cfg->db, true}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char dir[1024];
        const char *p = files[i].path;
        if (files[i].dir) {
            const char *slash = strrchr(p, '/');
            snprintf(dir, sizeof(dir), "%.*s", slash == NULL ? 1 : slash == p ? 1 : (int)(slash - p),
                     slash == NULL ? "." : p);
            p = dir;
        }
        if (access(p, files[i].dir ? (X_OK | W_OK) : R_OK) != 0) {
            mig_errf(err, errsz, "%s: %s%s: %s", files[i].key,
                     files[i].dir ? "the directory " : "", p, strerror(errno));
            return files[i].key;
        }
    }
    return NULL;
}

/*
 * Makes the direct transfer's key pairs in the database's directory, which
 * this daemon alone uses while it holds the database's lock, and removes
 * the key directories a crash left there: a private key must not outlive
 * its job.  Called with the lock held, before any job resumes.
 */
static void keys_start(const char *db_path)
{
    char dir[1024];
    const char *slash = strrchr(db_path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s", slash == db_path ? 1 : (int)(slash - db_path), db_path);
    if (mig_keygen_set_dir(dir) != 0) {
        log_warn("the database's directory %s is too long for job keys: they are made in /tmp",
                 dir);
        return;
    }
    int n = mig_keygen_sweep(dir);
    if (n < 0)
        log_warn("cannot look for job key directories left in %s: %s", dir, strerror(-n));
    else if (n > 0)
        log_info("removed %d job key director%s left by a crash in %s", n, n == 1 ? "y" : "ies",
                 dir);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0}};
    const char *config_path = NULL;
    bool check_only = false, debug = false;
    int ch;
    opterr = 0; /* one line of ours instead of getopt's */
    while ((ch = getopt_long(argc, argv, "+:df:hnV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            debug = true;
            break;
        case 'f':
            config_path = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case 'n':
            check_only = true;
            break;
        case 'V':
#ifdef MIGD_CRASH_POINTS
            printf("migd %s (test build: crash points)\n", MIGD_VERSION);
#else
            printf("migd %s\n", MIGD_VERSION);
#endif
            return 0;
        case ':':
            fprintf(stderr,
                    "migd: option -%c needs an argument; usage: migd [-n] [-d] [-f CONFIG]\n",
                    optopt);
            return 2;
        default:
            if (optopt != 0)
                fprintf(stderr, "migd: unknown option -%c; usage: migd [-n] [-d] [-f CONFIG]\n",
                        optopt);
            else
                fprintf(stderr, "migd: unknown option %s; usage: migd [-n] [-d] [-f CONFIG]\n",
                        argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "migd: unexpected argument \"%s\"; usage: migd [-n] [-d] [-f CONFIG]\n",
                argv[optind]);
        return 2;
    }
    if (config_path == NULL)
        config_path = getenv("MIGD_CONFIG");
    if (config_path == NULL || config_path[0] == '\0')
        config_path = MIGD_DEFAULT_CONFIG;

    static struct migd_main m;
    char err[512] = "";
    int rc = mig_config_load(config_path, &m.d.cfg, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "migd: %s\n", err[0] != '\0' ? err : mig_strerror(rc));
        return 1;
    }
    if (check_only) {
        /* What start would need: the SSH files readable, a directory for the socket. */
        const char *sock = getenv("MIGD_SOCKET");
        if (sock == NULL || sock[0] == '\0')
            sock = m.d.cfg->socket;
        const char *bad = check_files(m.d.cfg, sock, err, sizeof(err));
        mig_config_free(m.d.cfg);
        if (bad != NULL) {
            fprintf(stderr, "migd: %s\n", err);
            return 1;
        }
        printf("configuration OK\n");
        return 0;
    }
    struct mig_config *cfg = m.d.cfg;
    const char *socket_path = getenv("MIGD_SOCKET");
    if (socket_path == NULL || socket_path[0] == '\0')
        socket_path = cfg->socket;

    /* A client that hangs up must not kill the daemon in the middle of a write. */
    signal(SIGPIPE, SIG_IGN);
    int level = debug ? MIG_LOG_DEBUG : cfg->log_level;
    mig_log_init("migd", level, NULL);
    m.job_log_level = level < MIG_LOG_INFO ? level : MIG_LOG_INFO;

    /* One daemon, one truth: the lock is taken before anything is read or resumed. */
    long holder = 0;
    rc = mig_store_lock(cfg->db, &m.lock_fd, &holder, err, sizeof(err));
    if (rc != 0) {
        mig_log(MIG_LOG_FATAL, NULL, NULL, "%s", err[0] != '\0' ? err : mig_strerror(rc));
        fprintf(stderr, "migd: %s\n", err[0] != '\0' ? err : mig_strerror(rc));
        mig_config_free(cfg);
        return 1;
    }
    rc = mig_store_open(cfg->db, &m.d.store, err, sizeof(err));
    if (rc != 0) {
        mig_log(MIG_LOG_FATAL, NULL, NULL, "cannot open the database %s: %s", cfg->db,
                err[0] != '\0' ? err : mig_strerror(rc));
        mig_config_free(cfg);
        return 1;
    }
    mig_log_set_sink(on_job_log, &m);
    keys_start(cfg->db);

    rc = uv_loop_init(&m.loop);
    if (rc != 0) {
        mig_log(MIG_LOG_FATAL, NULL, NULL, "uv_loop_init: %s", uv_strerror(rc));
        return 1;
    }
    m.d.loop = &m.loop;
    m.d.started_ms = mig_now_ms();
    uv_signal_init(&m.loop, &m.sigint);
    uv_signal_init(&m.loop, &m.sigterm);
    m.sigint.data = m.sigterm.data = &m;
    uv_signal_start(&m.sigint, on_signal, SIGINT);
    uv_signal_start(&m.sigterm, on_signal, SIGTERM);

    if (migd_start(&m, socket_path) != 0) {
        m.exit_status = 1;
        migd_shutdown(&m);
    } else {
        log_info("migd started: version %s, socket %s, database %s (schema %d)", MIGD_VERSION,
                 socket_path, cfg->db, mig_store_version(m.d.store));
    }

    uv_run(&m.loop, UV_RUN_DEFAULT);

    mig_log_set_sink(NULL, NULL);
    mig_store_close(m.d.store);
    m.d.store = NULL;
    rc = uv_loop_close(&m.loop);
    if (rc != 0) {
        mig_log(MIG_LOG_ERROR, NULL, NULL, "handles still open at exit: %s", uv_strerror(rc));
        m.exit_status = 1;
    } else if (m.exit_status == 0) {
        log_info("migd stopped");
    }
    mig_config_free(cfg);
    close(m.lock_fd);
    return m.exit_status;
}
