/*
 * config.c: reads migd's JSON configuration (see config.h).  The accepted
 * keys are one table, walked recursively: a key the table does not name is an
 * error with its full path, and each value is checked for type and range
 * before it is stored in a fresh struct that starts from the defaults.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "invariant.h"
#include "log.h"
#include "util.h"

#define CONFIG_MAX_BYTES (1024 * 1024)

enum kind {
    K_OBJECT,   /* nested keys in sub */
    K_STRING,   /* non-empty string */
    K_CIPHERS,  /* optional: comma-separated algorithm names, or null */
    K_URL,      /* required http:// or https:// URL */
    K_INT,      /* int in [min, max] */
    K_INT64,    /* int64_t in [min, max] */
    K_LEVEL,    /* log level name, stored as its bunyan number */
    K_TRANSFER, /* "relay" or "direct" */
    K_OPT_STRING, /* a non-empty string, or null */
    K_ON_FAILURE, /* "rollback" or "report" */
};

struct key {
    const char *name; /* NULL ends a table */
    enum kind kind;
    size_t off; /* of the member in struct mig_config */
    int64_t min, max;
    const struct key *sub;
};

#define OFF(m) offsetof(struct mig_config, m)
/* The rows of the tables: a value without a range, an integer in [lo, hi], an object, the end. */
#define KEY(name, kind, m) {name, kind, OFF(m), 0, 0, NULL}
#define RANGE(name, kind, m, lo, hi) {name, kind, OFF(m), lo, hi, NULL}
#define OBJECT(name, keys) {name, K_OBJECT, 0, 0, 0, keys}
#define END_KEYS {NULL, 0, 0, 0, 0, NULL}

static const struct key apis_keys[] = {
    KEY("vmapi", K_URL, apis.vmapi),
    KEY("cnapi", K_URL, apis.cnapi),
    KEY("napi", K_URL, apis.napi),
    KEY("imgapi", K_URL, apis.imgapi),
    END_KEYS,
};

static const struct key ssh_keys[] = {
    KEY("user", K_STRING, ssh.user),
    RANGE("port", K_INT, ssh.port, 1, 65535),
    KEY("identity", K_STRING, ssh.identity),
    KEY("known_hosts", K_STRING, ssh.known_hosts),
    RANGE("connect_timeout_s", K_INT, ssh.connect_timeout_s, 1, 3600),
    RANGE("keepalive_s", K_INT, ssh.keepalive_s, 0, 3600), /* 0: no keepalive */
    KEY("ciphers", K_CIPHERS, ssh.ciphers),
    END_KEYS,
};

static const struct key transfer_keys[] = {
    KEY("mode", K_TRANSFER, transfer.mode),
    RANGE("retries", K_INT, transfer.retries, 0, 100),
    RANGE("limit_mbps", K_INT, transfer.limit_mbps, 0, 1000000),
    RANGE("streams", K_INT, transfer.streams, 1, MIG_MAX_STREAMS),
    END_KEYS,
};

static const struct key incremental_keys[] = {
    RANGE("interval_s", K_INT, incremental.interval_s, 1, 86400),
    RANGE("auto_switch_bytes", K_INT64, incremental.auto_switch_bytes, 1, INT64_MAX),
    RANGE("max_downtime_s", K_INT, incremental.max_downtime_s, 1, 86400),
    RANGE("max_rounds", K_INT, incremental.max_rounds, 1, 10000),
    END_KEYS,
};

static const struct key limits_keys[] = {
    RANGE("max_active_jobs", K_INT, limits.max_active_jobs, 1, 1000),
    RANGE("max_jobs_per_cn", K_INT, limits.max_jobs_per_cn, 1, 1000),
    RANGE("cn_mbps", K_INT, limits.cn_mbps, 0, 1000000),
    RANGE("switches_per_cn", K_INT, limits.switches_per_cn, 1, 1000),
    END_KEYS,
};

static const struct key health_keys[] = {
    RANGE("min_up_s", K_INT, health.min_up_s, 0, 86400),
    KEY("command", K_OPT_STRING, health.command),
    RANGE("timeout_s", K_INT, health.timeout_s, 1, 3600),
    KEY("on_failure", K_ON_FAILURE, health.on_failure),
    END_KEYS,
};

static const struct key cleanup_keys[] = {
    RANGE("after_s", K_INT64, cleanup.after_s, 0, 366LL * 86400),
    END_KEYS,
};

static const struct key placement_keys[] = {
    KEY("spread_tag", K_OPT_STRING, placement.spread_tag),
    END_KEYS,
};

static const struct key top_keys[] = {
    KEY("datacenter", K_STRING, datacenter),
    KEY("db", K_STRING, db),
    KEY("socket", K_STRING, socket),
    KEY("log_level", K_LEVEL, log_level),
    OBJECT("apis", apis_keys),
    OBJECT("ssh", ssh_keys),
    OBJECT("transfer", transfer_keys),
    OBJECT("incremental", incremental_keys),
    OBJECT("limits", limits_keys),
    OBJECT("health", health_keys),
    OBJECT("cleanup", cleanup_keys),
    OBJECT("placement", placement_keys),
    END_KEYS,
};


/* A fresh config holding every default of product.md (API URLs: none). */
static struct mig_config *config_defaults(void)
{
    struct mig_config *c = mig_calloc(1, sizeof(*c));
    *c = (struct mig_config){
        .log_level = MIG_LOG_INFO,
        .ssh = {.port = 22, .connect_timeout_s = 10, .keepalive_s = 15},
        .transfer = {.retries = 5, .limit_mbps = 0, .streams = 4},
        .incremental = {.interval_s = 60,
                        .auto_switch_bytes = 268435456,
                        .max_downtime_s = 10,
                        .max_rounds = 20},
        .limits = {.max_active_jobs = 4, .max_jobs_per_cn = 2, .switches_per_cn = 1},
        .health = {.min_up_s = 30, .timeout_s = 60},
    };
    /* The strings, each the config's own (mig_config_free frees them). */
    c->datacenter = mig_strdup("triton");
    c->db = mig_strdup("/var/db/migd/migd.sqlite");
    c->socket = mig_strdup("/var/run/migd.sock");
    c->ssh.user = mig_strdup("root");
    c->ssh.identity = mig_strdup("/root/.ssh/sdc.id_rsa");
    c->ssh.known_hosts = mig_strdup("/var/db/migd/known_hosts");
    c->transfer.mode = mig_strdup("relay");
    c->health.on_failure = mig_strdup("rollback");
    return c;
}

/* True when s has no control characters (a value must fit on one log line). */
static bool printable(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    }
    return true;
}

/* An http:// or https:// URL with a host and no spaces or control characters. */
static bool url_valid(const char *s)
{
    const char *rest;
    if (strncmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        rest = s + 8;
    else
        return false;
    if (*rest == '\0' || *rest == '/' || *rest == ':')
        return false;
    return printable(s) && strchr(s, ' ') == NULL;
}

/* Algorithm names as libssh2 takes them: [A-Za-z0-9@._+-], comma-separated. */
static bool ciphers_valid(const char *s)
{
    if (*s == '\0' || *s == ',' || s[strlen(s) - 1] == ',' || strstr(s, ",,") != NULL)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@._+-,") ==
           strlen(s);
}

/* Replaces the string member at p with a copy of v. */
static void set_string(char **p, const char *v)
{
    free(*p);
    *p = mig_strdup(v);
}

/* Where s is one of two words: stores it at p, else names both in err. */
static int take_word(const char *s, const char *a, const char *b, char **p, const char *path,
                     char *err, size_t errsz)
{
    if (s == NULL || (strcmp(s, a) != 0 && strcmp(s, b) != 0)) {
        mig_errf(err, errsz, "\"%s\" must be \"%s\" or \"%s\"", path, a, b);
        return -EINVAL;
    }
    set_string(p, s);
    return 0;
}

/* The full name of key name inside prefix ("" at the top), as errors show it. */
static void key_path(char *path, size_t size, const char *prefix, const char *name)
{
    if (*prefix != '\0')
        snprintf(path, size, "%s.%s", prefix, name);
    else
        snprintf(path, size, "%s", name);
}

static int walk(json_t *obj, const struct key *keys, const char *prefix, struct mig_config *c,
                char *err, size_t errsz);

/* Checks and stores one value v (never NULL) of key k whose full name is path. */
static int take(json_t *v, const struct key *k, const char *path, struct mig_config *c, char *err,
                size_t errsz)
{
    char *base = (char *)c;
    char **str = (char **)(base + k->off);
    const char *s = json_string_value(v);
    /* null is how a file says "none" for the optional strings. */
    if (json_is_null(v) && (k->kind == K_CIPHERS || k->kind == K_OPT_STRING)) {
        set_string(str, NULL);
        return 0;
    }
    switch (k->kind) {
    case K_OBJECT:
        if (!json_is_object(v)) {
            mig_errf(err, errsz, "\"%s\" must be an object", path);
            return -EINVAL;
        }
        return walk(v, k->sub, path, c, err, errsz);
    case K_STRING:
    case K_OPT_STRING: /* its null was taken above */
        if (s == NULL || *s == '\0' || !printable(s)) {
            mig_errf(err, errsz, "\"%s\" must be a non-empty string%s", path,
                     k->kind == K_OPT_STRING ? " or null" : "");
            return -EINVAL;
        }
        set_string(str, s);
        return 0;
    case K_CIPHERS:
        if (s == NULL || !ciphers_valid(s)) {
            mig_errf(err, errsz,
                    "\"%s\" must be a comma-separated list of algorithm names (or null)", path);
            return -EINVAL;
        }
        set_string(str, s);
        return 0;
    case K_URL:
        if (s == NULL || !url_valid(s)) {
            mig_errf(err, errsz, "\"%s\" must be an http:// or https:// URL", path);
            return -EINVAL;
        }
        /* Callers append "/vms" and the like: keep no trailing slash. */
        char *url = mig_strdup(s);
        for (size_t n = strlen(url); n > 0 && url[n - 1] == '/'; n--)
            url[n - 1] = '\0';
        free(*str);
        *str = url;
        return 0;
    case K_INT:
    case K_INT64: {
        json_int_t n = json_integer_value(v);
        if (!json_is_integer(v) || n < k->min || n > k->max) {
            if (k->max == INT64_MAX)
                mig_errf(err, errsz, "\"%s\" must be an integer of at least %" PRId64, path, k->min);
            else
                mig_errf(err, errsz, "\"%s\" must be an integer between %" PRId64 " and %" PRId64,
                        path, k->min, k->max);
            return -EINVAL;
        }
        if (k->kind == K_INT)
            *(int *)(base + k->off) = (int)n;
        else
            *(int64_t *)(base + k->off) = (int64_t)n;
        return 0;
    }
    case K_LEVEL: {
        int level;
        if (s == NULL || mig_log_level_parse(s, &level) != 0) {
            mig_errf(err, errsz,
                    "\"%s\" must be one of \"trace\", \"debug\", \"info\", \"warn\", \"error\", "
                    "\"fatal\"",
                    path);
            return -EINVAL;
        }
        *(int *)(base + k->off) = level;
        return 0;
    }
    case K_ON_FAILURE:
        return take_word(s, "rollback", "report", str, path, err, errsz);
    case K_TRANSFER:
        return take_word(s, "relay", "direct", str, path, err, errsz);
    }
    MIG_DIE("config key \"%s\" has no kind the reader knows", path);
}

/*
 * Checks obj against the table keys: unknown members first (so a typo is
 * reported as such, not as the missing key it was meant to be), then each
 * known key present; absent objects are walked as empty so that their
 * required members are named.
 */
static int walk(json_t *obj, const struct key *keys, const char *prefix, struct mig_config *c,
                char *err, size_t errsz)
{
    char path[256];
    const char *name;
    json_t *v;
    json_object_foreach(obj, name, v)
    {
        const struct key *k = keys;
        while (k->name != NULL && strcmp(k->name, name) != 0)
            k++;
        if (k->name == NULL) {
            key_path(path, sizeof(path), prefix, name);
            /* A key may hold quotes or newlines: quote it as JSON does, on one line. */
            json_t *js = json_string(path);
            char *quoted = js != NULL ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
            mig_errf(err, errsz, "unknown key %s", quoted != NULL ? quoted : "(not UTF-8)");
            free(quoted);
            json_decref(js);
            return -EINVAL;
        }
    }
    for (const struct key *k = keys; k->name != NULL; k++) {
        key_path(path, sizeof(path), prefix, k->name);
        v = json_object_get(obj, k->name);
        int rc;
        if (v != NULL) {
            rc = take(v, k, path, c, err, errsz);
        } else if (k->kind == K_OBJECT) {
            json_t *empty = json_object();
            rc = walk(empty, k->sub, path, c, err, errsz);
            json_decref(empty);
        } else if (k->kind == K_URL) {
            mig_errf(err, errsz, "missing required key \"%s\"", path);
            rc = -EINVAL;
        } else {
            rc = 0; /* the default stays */
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

int mig_config_parse(const char *text, size_t len, struct mig_config **out, char *err, size_t errsz)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        mig_errf(err, errsz, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
                jerr.text);
        return MIG_EPARSE;
    }
    if (!json_is_object(root)) {
        mig_errf(err, errsz, "the configuration must be a JSON object");
        json_decref(root);
        return -EINVAL;
    }
    struct mig_config *c = config_defaults();
    int rc = walk(root, top_keys, "", c, err, errsz);
    json_decref(root);
    if (rc != 0) {
        mig_config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int mig_config_load(const char *path, struct mig_config **out, char *err, size_t errsz)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        int e = errno;
        mig_errf(err, errsz, "cannot read configuration %s: %s", path, strerror(e));
        return -e;
    }
    char *buf = mig_malloc(CONFIG_MAX_BYTES + 1);
    size_t n = fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
    int rc = 0;
    if (ferror(f)) {
        rc = -EIO;
        mig_errf(err, errsz, "cannot read configuration %s: %s", path, strerror(EIO));
    } else if (n > CONFIG_MAX_BYTES) {
        rc = -EFBIG;
        mig_errf(err, errsz, "configuration %s is larger than %d bytes", path, CONFIG_MAX_BYTES);
    }
    fclose(f);
    if (rc == 0) {
        char why[512] = "";
        rc = mig_config_parse(buf, n, out, why, sizeof(why));
        if (rc != 0)
            mig_errf(err, errsz, "%s: %s", path, why);
    }
    free(buf);
    return rc;
}

/* The kinds whose member is a malloc'd string (char *), NULL when unset. */
static bool kind_is_string(enum kind kind)
{
    return kind != K_OBJECT && kind != K_INT && kind != K_INT64 && kind != K_LEVEL;
}

/* Frees the string members keys name: the table is the one list of what c holds. */
static void free_strings(struct mig_config *c, const struct key *keys)
{
    for (const struct key *k = keys; k->name != NULL; k++) {
        if (k->kind == K_OBJECT)
            free_strings(c, k->sub);
        else if (kind_is_string(k->kind))
            free(*(char **)((char *)c + k->off));
    }
}

void mig_config_free(struct mig_config *cfg)
{
    if (cfg == NULL)
        return;
    free_strings(cfg, top_keys);
    free(cfg);
}
