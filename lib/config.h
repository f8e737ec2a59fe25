/*
 * config.h: migd's JSON configuration (product.md "Configuration").  Parsed
 * into a fresh struct, defaults filled in, validated as a whole; unknown keys
 * anywhere are an error so that typos are never silently ignored.
 */
#ifndef MIG_CONFIG_H
#define MIG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define MIG_MAX_STREAMS 8 /* transfer.streams: at most a VM's datasets (MIG_MAX_DATASETS) */

struct mig_config {
    char *datacenter;
    char *db;
    char *socket;
    int log_level; /* bunyan number */
    struct {
        char *vmapi, *cnapi, *napi, *imgapi; /* required */
    } apis;
    struct {
        char *user;
        int port;
        char *identity;
        char *known_hosts;
        int connect_timeout_s;
        int keepalive_s;
        char *ciphers; /* NULL: the adapter's default preference */
    } ssh;
    struct {
        char *mode; /* "relay" or "direct" */
        int retries;
        int limit_mbps; /* 0: no cap */
        int streams;    /* a round's datasets sent at once (1: one after the other), up to
                           MIG_MAX_STREAMS */
    } transfer;
    struct {
        int interval_s;
        int64_t auto_switch_bytes;
        int max_downtime_s; /* auto may switch once the predicted final send is this short */
        int max_rounds;     /* bound on the sync rounds */
    } incremental;
    struct {
        int max_active_jobs;
        int max_jobs_per_cn;
        int cn_mbps; /* cap in Mbit/s into or out of one CN, shared by its jobs; 0: none */
        int switches_per_cn; /* switches into or out of one CN at once */
    } limits;
    struct {
        int min_up_s;      /* the instance healthy this long on the target (phase verify) */
        char *command;     /* an operator's probe run on the head node, or NULL */
        int timeout_s;     /* bound on one run of command */
        char *on_failure;  /* "rollback" or "report" */
    } health;
    struct {
        int64_t after_s;   /* delete the source copy this long after a passed gate; 0: by hand */
    } cleanup;
    struct {
        char *spread_tag;  /* instances sharing this tag's value kept apart */
    } placement;
};

/*
 * Parses the JSON text (len bytes) into *out.  On error returns a negative
 * code and writes one line naming the key and the problem into err.
 */
int mig_config_parse(const char *text, size_t len, struct mig_config **out, char *err,
                     size_t errsz);
/* Reads and parses the file at path, as mig_config_parse. */
int mig_config_load(const char *path, struct mig_config **out, char *err, size_t errsz);
void mig_config_free(struct mig_config *cfg);

#endif
