/*
 * ssh_session.c: one connection of the SSH adapter (see ssh_int.h).  Each
 * session owns one non-blocking socket and one uv_poll_t; the poll callback
 * is the only place that drives I/O on that session: it steps the
 * connect/handshake/host key/auth machine, then every operation (exec or
 * relay) that uses the session, until none makes progress, then polls for
 * the directions libssh2 said it was blocked on.  A relay uses two sessions
 * and is stepped when either socket is ready, since a write on one may
 * depend on a read on the other.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh2.h>

#include "err.h"
#include "log.h"
#include "ssh.h"
#include "ssh_int.h"
#include "util.h"

#define MAX_PASSES 4 /* dispatch passes before yielding to the loop */

static void on_session_poll(uv_poll_t *h, int status, int events);

/* Records the directions the last libssh2 call blocked on. */
void ssh_sess_want(struct session *s)
{
    int dirs = libssh2_session_block_directions(s->ssh);
    int ev = 0;
    if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
        ev |= UV_READABLE;
    if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
        ev |= UV_WRITABLE;
    /* Nothing reported (e.g. another channel's packet is half sent): the
     * socket becoming writable is what lets that packet, and us, go on. */
    s->want |= ev ? ev : UV_WRITABLE;
}

/* Hands a channel to its session, which frees it without blocking. */
void ssh_sess_bury(struct session *s, LIBSSH2_CHANNEL *ch)
{
    if (ch == NULL || s->st == S_DEAD)
        return; /* a dead session frees its channels with itself */
    s->zombies = mig_grow(s->zombies, s->nzombies, &s->zcap, 4, sizeof(*s->zombies));
    s->zombies[s->nzombies++] = ch;
    s->kick = true;
    ssh_pool_kick(s->pool);
}

static void sess_close_cb_free(struct session *s)
{
    if (s->ssh != NULL) {
        /* The socket is already shut down: nothing below can block long. */
        libssh2_session_set_blocking(s->ssh, 1);
        libssh2_session_free(s->ssh);
    }
    if (s->fd >= 0)
        close(s->fd);
    free(s->zombies);
    free(s->host);
    free(s);
}

static void on_session_closed(uv_handle_t *h)
{
    struct session *s = h->data;
    struct mig_ssh_pool *pool = s->pool;
    sess_close_cb_free(s);
    pool->handles--;
    ssh_pool_maybe_free(pool);
}

/*
 * Kills s: every operation on it ends with err (detail names the host), it
 * leaves the pool (the next operation reconnects) and its handle closes.
 */
void ssh_sess_fail(struct session *s, int err, const char *detail)
{
    struct mig_ssh_pool *pool = s->pool;
    if (s->st == S_DEAD)
        return;
    bool was_up = s->st == S_READY || s->st == S_AUTH;
    if (s->st == S_READY && err != MIG_ECANCELED && strcmp(detail, "session retired") != 0)
        log_warn("ssh: session to %s failed: %s", s->host, detail);
    s->st = S_DEAD;
    MIG_LIST_UNLINK(&pool->sessions, s, next);
    for (struct op *op = pool->ops; op; op = op->next) {
        if (op->finished || (op->s[0] != s && op->s[1] != s))
            continue;
        snprintf(op->detail, sizeof(op->detail), "%s", detail);
        ssh_op_finish(op, err);
    }
    if (was_up && err != MIG_ECANCELED) {
        /* Best effort, never blocking: the peer may be gone. */
        libssh2_session_disconnect(s->ssh, "migd closing");
    }
    if (s->fd >= 0)
        shutdown(s->fd, SHUT_RDWR);
    uv_close((uv_handle_t *)&s->poll, on_session_closed);
}

void ssh_sess_update_poll(struct session *s)
{
    if (s->st == S_DEAD)
        return;
    int ev = s->want;
    if (!s->peer_closed)
        ev |= UV_DISCONNECT;
    if (ev == s->poll_events)
        return;
    s->poll_events = ev;
    if (ev == 0)
        uv_poll_stop(&s->poll);
    else
        uv_poll_start(&s->poll, ev, on_session_poll);
}

/* Builds the host key method preference from the key types known_hosts has for host. */
static void sess_hostkey_prefs(struct session *s, LIBSSH2_KNOWNHOSTS *kh)
{
    struct mig_ssh_pool *pool = s->pool;
    char plain[300], bracketed[320];
    snprintf(plain, sizeof(plain), "%s", s->host);
    snprintf(bracketed, sizeof(bracketed), "[%s]:%d", s->host, pool->opts.port);
    const char *want = pool->opts.port == 22 ? plain : bracketed;
    bool ed = false, e256 = false, e384 = false, e521 = false, rsa = false;
    struct libssh2_knownhost *prev = NULL, *e;

    while (libssh2_knownhost_get(kh, &e, prev) == 0) {
        prev = e;
        if (e->name == NULL)
            continue; /* hashed entry: cannot tell which host it is for */
        bool match = false;
        /* name may be a comma-separated list */
        const char *p = e->name;
        size_t wl = strlen(want);
        while (*p) {
            const char *end = strchr(p, ',');
            size_t l = end ? (size_t)(end - p) : strlen(p);
            if (l == wl && strncmp(p, want, l) == 0)
                match = true;
            p += l;
            if (*p == ',')
                p++;
        }
        if (!match)
            continue;
        switch (e->typemask & LIBSSH2_KNOWNHOST_KEY_MASK) {
        case LIBSSH2_KNOWNHOST_KEY_ED25519: ed = true; break;
        case LIBSSH2_KNOWNHOST_KEY_ECDSA_256: e256 = true; break;
        case LIBSSH2_KNOWNHOST_KEY_ECDSA_384: e384 = true; break;
        case LIBSSH2_KNOWNHOST_KEY_ECDSA_521: e521 = true; break;
        case LIBSSH2_KNOWNHOST_KEY_SSHRSA: rsa = true; break;
        default: break;
        }
    }
    char prefs[256] = "";
    if (ed)
        strcat(prefs, "ssh-ed25519,");
    if (e256)
        strcat(prefs, "ecdsa-sha2-nistp256,");
    if (e384)
        strcat(prefs, "ecdsa-sha2-nistp384,");
    if (e521)
        strcat(prefs, "ecdsa-sha2-nistp521,");
    if (rsa)
        strcat(prefs, "rsa-sha2-512,rsa-sha2-256,ssh-rsa,");
    size_t l = strlen(prefs);
    if (l > 0) {
        prefs[l - 1] = '\0';
        libssh2_session_method_pref(s->ssh, LIBSSH2_METHOD_HOSTKEY, prefs);
    }
}

/* Sets the cipher preference: opts->ciphers, or the default filtered to what libssh2 has. */
static void sess_cipher_prefs(struct session *s)
{
    const char *want = s->pool->opts.ciphers;
    if (want != NULL) {
        libssh2_session_method_pref(s->ssh, LIBSSH2_METHOD_CRYPT_CS, want);
        libssh2_session_method_pref(s->ssh, LIBSSH2_METHOD_CRYPT_SC, want);
        return;
    }
    static const char *const defaults[] = {"aes128-gcm@openssh.com", "aes128-ctr"};
    const char **algs = NULL;
    int n = libssh2_session_supported_algs(s->ssh, LIBSSH2_METHOD_CRYPT_CS, &algs);
    char prefs[128] = "";
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        for (int j = 0; j < n; j++) {
            if (strcmp(algs[j], defaults[i]) == 0) {
                if (prefs[0])
                    strcat(prefs, ",");
                strcat(prefs, defaults[i]);
                break;
            }
        }
    }
    if (n > 0)
        libssh2_free(s->ssh, algs);
    if (prefs[0]) {
        libssh2_session_method_pref(s->ssh, LIBSSH2_METHOD_CRYPT_CS, prefs);
        libssh2_session_method_pref(s->ssh, LIBSSH2_METHOD_CRYPT_SC, prefs);
    }
}

/* Checks the server's host key against known_hosts.  Returns 0 or MIG_EHOSTKEY (detail set). */
static int sess_check_hostkey(struct session *s, char *detail, size_t dsz)
{
    struct mig_ssh_pool *pool = s->pool;
    size_t klen = 0;
    int ktype = 0;
    const char *key = libssh2_session_hostkey(s->ssh, &klen, &ktype);
    if (key == NULL) {
        snprintf(detail, dsz, "%s: no host key received", s->host);
        return MIG_EHOSTKEY;
    }
    int kbit;
    switch (ktype) {
    case LIBSSH2_HOSTKEY_TYPE_RSA: kbit = LIBSSH2_KNOWNHOST_KEY_SSHRSA; break;
    case LIBSSH2_HOSTKEY_TYPE_DSS: kbit = LIBSSH2_KNOWNHOST_KEY_SSHDSS; break;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: kbit = LIBSSH2_KNOWNHOST_KEY_ECDSA_256; break;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: kbit = LIBSSH2_KNOWNHOST_KEY_ECDSA_384; break;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: kbit = LIBSSH2_KNOWNHOST_KEY_ECDSA_521; break;
    case LIBSSH2_HOSTKEY_TYPE_ED25519: kbit = LIBSSH2_KNOWNHOST_KEY_ED25519; break;
    default:
        snprintf(detail, dsz, "%s: host key of unknown type %d", s->host, ktype);
        return MIG_EHOSTKEY;
    }
    LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s->ssh);
    if (kh == NULL) {
        snprintf(detail, dsz, "%s: cannot initialise known hosts", s->host);
        return MIG_EHOSTKEY;
    }
    int rc = libssh2_knownhost_readfile(kh, pool->opts.known_hosts, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
    if (rc < 0) {
        libssh2_knownhost_free(kh);
        snprintf(detail, dsz, "%s: cannot read known_hosts file %s", s->host,
                 pool->opts.known_hosts);
        return MIG_EHOSTKEY;
    }
    struct libssh2_knownhost *found = NULL;
    rc = libssh2_knownhost_checkp(kh, s->host, pool->opts.port == 22 ? -1 : pool->opts.port,
                                  key, klen,
                                  LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | kbit,
                                  &found);
    libssh2_knownhost_free(kh);
    switch (rc) {
    case LIBSSH2_KNOWNHOST_CHECK_MATCH:
        return 0;
    case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
        snprintf(detail, dsz,
                 "%s: host key does NOT match the one in %s (key changed or impersonation)",
                 s->host, pool->opts.known_hosts);
        return MIG_EHOSTKEY;
    case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
        snprintf(detail, dsz, "%s: host (port %d) not found in %s with its key type", s->host,
                 pool->opts.port, pool->opts.known_hosts);
        return MIG_EHOSTKEY;
    default:
        snprintf(detail, dsz, "%s: host key check failed", s->host);
        return MIG_EHOSTKEY;
    }
}

/* Session-level work: connect, handshake, auth, then freeing buried channels.
 * Returns false when the session died. */
static bool sess_step(struct session *s)
{
    struct mig_ssh_pool *pool = s->pool;
    char detail[256];
    int rc;

    if (s->pending_err != 0) {
        ssh_sess_fail(s, s->pending_err, s->pending_detail);
        return false;
    }
    switch (s->st) {
    case S_CONNECT: {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (soerr == EINPROGRESS || soerr == EALREADY) {
            s->want |= UV_WRITABLE;
            return true;
        }
        if (soerr != 0) {
            snprintf(detail, sizeof(detail), "%s:%d: connect: %s", s->host, pool->opts.port,
                     strerror(soerr));
            ssh_sess_fail(s, MIG_ESSH, detail);
            return false;
        }
        /* Connected only if the socket has a peer. */
        struct sockaddr_storage ss;
        socklen_t al = sizeof(ss);
        if (getpeername(s->fd, (struct sockaddr *)&ss, &al) < 0) {
            s->want |= UV_WRITABLE;
            return true;
        }
        s->st = S_HANDSHAKE;
    }
        /* fall through */
    case S_HANDSHAKE:
        rc = libssh2_session_handshake(s->ssh, s->fd);
        if (ssh_would_block(rc)) {
            ssh_sess_want(s);
            return true;
        }
        if (rc < 0) {
            char *msg = NULL;
            libssh2_session_last_error(s->ssh, &msg, NULL, 0);
            snprintf(detail, sizeof(detail), "%s:%d: SSH handshake failed: %s", s->host,
                     pool->opts.port, msg ? msg : "?");
            ssh_sess_fail(s, MIG_ESSH, detail);
            return false;
        }
        rc = sess_check_hostkey(s, detail, sizeof(detail));
        if (rc < 0) {
            ssh_sess_fail(s, rc, detail);
            return false;
        }
        s->st = S_AUTH;
        /* fall through */
    case S_AUTH: {
        char *pub = mig_asprintf("%s.pub", pool->opts.identity);
        bool have_pub = access(pub, R_OK) == 0;
        rc = libssh2_userauth_publickey_fromfile_ex(s->ssh, pool->opts.user,
                                                    (unsigned)strlen(pool->opts.user),
                                                    have_pub ? pub : NULL, pool->opts.identity,
                                                    NULL);
        free(pub);
        if (ssh_would_block(rc)) {
            ssh_sess_want(s);
            return true;
        }
        if (rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED || rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED) {
            ssh_auth_refused(s->host, pool->opts.user, pool->opts.identity, detail, sizeof(detail));
            ssh_sess_fail(s, MIG_ESSH, detail);
            return false;
        }
        if (rc < 0) {
            char *msg = NULL;
            libssh2_session_last_error(s->ssh, &msg, NULL, 0);
            snprintf(detail, sizeof(detail), "%s: authentication as %s with %s failed: %s",
                     s->host, pool->opts.user, pool->opts.identity, msg ? msg : "?");
            ssh_sess_fail(s, MIG_ESSH, detail);
            return false;
        }
        s->st = S_READY;
        s->deadline_ms = 0;
        if (pool->opts.keepalive_s > 0)
            libssh2_keepalive_config(s->ssh, 0, (unsigned)pool->opts.keepalive_s);
        log_debug("ssh: session to %s:%d ready", s->host, pool->opts.port);
    }
        /* fall through */
    case S_READY:
        while (s->nzombies > 0) {
            rc = libssh2_channel_free(s->zombies[s->nzombies - 1]);
            if (ssh_would_block(rc)) {
                ssh_sess_want(s);
                break;
            }
            s->nzombies--;
        }
        return true;
    case S_DEAD:
        return false;
    }
    return false;
}

/*
 * Steps the session and every operation using it until nothing progresses,
 * then polls for what the blocked calls need.
 */
void ssh_sess_dispatch(struct session *s)
{
    struct mig_ssh_pool *pool = s->pool;

    ssh_pool_enter(pool);
    s->want = 0;
    if (sess_step(s)) {
        int pass;
        bool progress = true;
        for (pass = 0; pass < MAX_PASSES && progress && s->st != S_DEAD; pass++) {
            progress = false;
            for (struct op *op = pool->ops; op; op = op->next) {
                if (op->finished || (op->s[0] != s && op->s[1] != s))
                    continue;
                if (ssh_op_step(op) > 0)
                    progress = true;
                if (s->st == S_DEAD)
                    break;
                /* The other session of a relay may now want something else. */
                struct session *o = op->s[0] == s ? op->s[1] : op->s[0];
                if (o != s && o != NULL)
                    ssh_sess_update_poll(o);
            }
            if (s->st == S_READY && s->nzombies > 0)
                sess_step(s);
        }
        if (progress && s->st != S_DEAD) {
            /* Still moving: come back after other handles had their turn. */
            s->kick = true;
            ssh_pool_kick(pool);
        }
        ssh_sess_update_poll(s);
    }
    ssh_pool_leave(pool);
}

static void on_session_poll(uv_poll_t *h, int status, int events)
{
    struct session *s = h->data;
    struct mig_ssh_pool *pool = s->pool;

    ssh_pool_enter(pool);
    if (status < 0) {
        char detail[200];
        snprintf(detail, sizeof(detail), "%s: socket error: %s", s->host, uv_strerror(status));
        ssh_sess_fail(s, MIG_ESSH, detail);
    } else {
        if (events & UV_DISCONNECT)
            s->peer_closed = true;
        ssh_sess_dispatch(s);
        if (s->peer_closed && s->st != S_DEAD) {
            bool used = false;
            for (struct op *op = pool->ops; op && !used; op = op->next)
                used = !op->finished && (op->s[0] == s || op->s[1] == s);
            if (!used) {
                char detail[200];
                snprintf(detail, sizeof(detail), "%s: connection closed by the host", s->host);
                ssh_sess_fail(s, MIG_ESSH, detail);
            } else {
                /* Ops still reading will see the end of the connection. */
                s->reusable = false;
            }
        }
    }
    ssh_pool_leave(pool);
}

/* The address of host on the pool's port into ss; 0 or a one-line failure in detail. */
static int sess_address(struct mig_ssh_pool *pool, const char *host, struct sockaddr_storage *ss,
                        socklen_t *sl, char *detail, size_t dsz)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)pool->opts.port);
        *sl = sizeof(*sin);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)pool->opts.port);
        *sl = sizeof(*sin6);
        return 0;
    }
    /* Names are rare here (CNs are reached by admin IP); this blocks briefly. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int grc = getaddrinfo(host, NULL, &hints, &ai);
    if (grc != 0) {
        snprintf(detail, dsz, "%s: cannot resolve: %s", host, gai_strerror(grc));
        return MIG_ESSH;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sl = ai->ai_addrlen;
    if (ss->ss_family == AF_INET)
        sin->sin_port = htons((uint16_t)pool->opts.port);
    else
        sin6->sin6_port = htons((uint16_t)pool->opts.port);
    freeaddrinfo(ai);
    return 0;
}

/*
 * Finds the reusable session to host for owner or starts connecting a new
 * one.  owner NULL: the session shared by every short command to the host.
 * A stream gets a connection of its own owner's (see mig_ssh_relay): OpenSSH
 * keeps a session whose command still runs after its channel is closed, so
 * only closing the connection ends an interrupted `zfs send` at once.
 * Returns NULL when no socket or handle can be had (too many open files):
 * *err and detail say why; the operation fails, migd goes on.
 */
struct session *ssh_sess_get(struct mig_ssh_pool *pool, const char *host, void *owner, int *err,
                             char *detail, size_t dsz)
{
    for (struct session *s = pool->sessions; s; s = s->next)
        if (s->reusable && s->owner == owner && strcmp(s->host, host) == 0)
            return s;

    struct sockaddr_storage ss;
    socklen_t sl = 0;
    int rc = sess_address(pool, host, &ss, &sl, detail, dsz);
    if (rc != 0) {
        *err = rc;
        return NULL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = -errno;
        snprintf(detail, dsz, "%s: socket: %s", host, strerror(errno));
        return NULL;
    }
    struct session *s = mig_calloc(1, sizeof(*s));
    s->pool = pool;
    s->fd = fd;
    s->ssh = libssh2_session_init_ex(NULL, NULL, NULL, s);
    rc = s->ssh == NULL ? -ENOMEM : uv_poll_init(pool->loop, &s->poll, fd);
    if (rc != 0) {
        if (s->ssh != NULL)
            libssh2_session_free(s->ssh);
        close(fd);
        free(s);
        *err = rc;
        snprintf(detail, dsz, "%s: %s", host, mig_strerror(rc));
        return NULL;
    }
    /* The poll handle exists for the whole life of the session: closing it frees s. */
    s->poll.data = s;
    pool->handles++;
    s->host = mig_strdup(host);
    s->st = S_CONNECT;
    s->reusable = true;
    s->owner = owner;
    s->deadline_ms = pool->opts.connect_timeout_s > 0
                         ? ssh_now_ms(pool) + (int64_t)pool->opts.connect_timeout_s * 1000
                         : 0;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
        s->pending_err = MIG_ESSH;
        snprintf(s->pending_detail, sizeof(s->pending_detail), "%s:%d: connect: %s", host,
                 pool->opts.port, strerror(errno));
    }
    libssh2_session_set_blocking(s->ssh, 0);
    sess_cipher_prefs(s);
    if (s->pending_err == 0) {
        LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s->ssh);
        if (kh != NULL) {
            if (libssh2_knownhost_readfile(kh, pool->opts.known_hosts,
                                           LIBSSH2_KNOWNHOST_FILE_OPENSSH) >= 0)
                sess_hostkey_prefs(s, kh);
            libssh2_knownhost_free(kh);
        }
    }
    s->want = UV_WRITABLE;
    s->next = pool->sessions;
    pool->sessions = s;
    if (s->pending_err != 0) {
        s->kick = true;
        ssh_pool_kick(pool);
    } else {
        ssh_sess_update_poll(s);
    }
    return s;
}

/* ---- the tick's session work ---- */

/* Retires an owner's stream session that no stream used for STREAM_IDLE_MS. */
static void stream_session_idle(struct mig_ssh_pool *pool, struct session *s, int64_t now)
{
    for (struct op *op = pool->ops; op; op = op->next) {
        if (!op->finished && (op->s[0] == s || op->s[1] == s)) {
            s->idle_since_ms = 0;
            return;
        }
    }
    if (s->idle_since_ms == 0)
        s->idle_since_ms = now;
    else if (now - s->idle_since_ms >= STREAM_IDLE_MS)
        s->reusable = false; /* the pool's reaper closes it */
}

void ssh_sess_tick_stream_idle(struct mig_ssh_pool *pool, int64_t now)
{
    for (struct session *s = pool->sessions; s; s = s->next)
        if (s->owner != NULL && s->reusable)
            stream_session_idle(pool, s, now);
}

void ssh_sess_tick_connect(struct mig_ssh_pool *pool, int64_t now)
{
    for (struct session *s = pool->sessions, *next; s; s = next) {
        next = s->next; /* a failed session leaves the list */
        if (s->st != S_READY && s->deadline_ms != 0 && now >= s->deadline_ms) {
            char detail[200];
            snprintf(detail, sizeof(detail), "%s:%d: connect timed out after %d s", s->host,
                     pool->opts.port, pool->opts.connect_timeout_s);
            ssh_sess_fail(s, MIG_ETIMEDOUT, detail);
        }
    }
}

void ssh_sess_tick_keepalive(struct mig_ssh_pool *pool)
{
    if (pool->opts.keepalive_s <= 0)
        return;
    for (struct session *s = pool->sessions; s; s = s->next) {
        if (s->st != S_READY)
            continue;
        int next_s = 0;
        int rc = libssh2_keepalive_send(s->ssh, &next_s);
        if (ssh_would_block(rc)) {
            ssh_sess_want(s);
            ssh_sess_update_poll(s);
        }
    }
}
