/*
 * request.c: a POST /jobs body into a struct mig_request (request.h), with
 * the API's answers for each thing that can be wrong with it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

#define ECHO_MAX 128 /* at most this much of a client's value is echoed back */

void mig_request_init(struct mig_request *req)
{
    memset(req, 0, sizeof(*req));
    req->mode = MIG_MODE_FULL;
    req->limit_mbps = -1;
    req->min_up_s = -1;
    req->cleanup_after_s = -1;
}

void mig_request_clear(struct mig_request *req)
{
    free(req->vm);
    free(req->target);
    mig_request_init(req);
}

/* The members of a body, their JSON type and whether they must be there. */
static const struct {
    const char *key;
    int type; /* JSON_STRING, JSON_TRUE (any boolean) or JSON_INTEGER */
    bool required;
} KEYS[] = {{"vm_uuid", JSON_STRING, true},
            {"target", JSON_STRING, false},
            {"mode", JSON_STRING, false},
            {"dry_run", JSON_TRUE, false},
            {"allow_older_platform", JSON_TRUE, false},
            {"cleanup_source", JSON_TRUE, false},
            {"transfer", JSON_STRING, false},
            {"limit_mbps", JSON_INTEGER, false},
            {"min_up_s", JSON_INTEGER, false},
            {"cleanup_after_s", JSON_INTEGER, false},
            {"window", JSON_STRING, false}};
enum { NKEYS = sizeof(KEYS) / sizeof(KEYS[0]) };

/* Every member known, of its type; every required one there.  0 or -EINVAL with err. */
static int check_members(json_t *body, char *err, size_t errsz)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        size_t i;
        for (i = 0; i < NKEYS && strcmp(KEYS[i].key, key) != 0; i++)
            ;
        if (i == NKEYS) {
            snprintf(err, errsz, "unknown key \"%.*s\"", ECHO_MAX, key);
            return -EINVAL;
        }
        if (json_is_null(v) && !KEYS[i].required)
            continue;
        bool ok = KEYS[i].type == JSON_STRING    ? json_is_string(v)
                  : KEYS[i].type == JSON_INTEGER ? json_is_integer(v)
                                                 : json_is_boolean(v);
        if (!ok) {
            snprintf(err, errsz, "%s must be %s", key,
                     KEYS[i].type == JSON_STRING    ? "a string"
                     : KEYS[i].type == JSON_INTEGER ? "an integer"
                                                    : "a boolean");
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < NKEYS; i++) {
        if (KEYS[i].required && json_object_get(body, KEYS[i].key) == NULL) {
            snprintf(err, errsz, "%s is required", KEYS[i].key);
            return -EINVAL;
        }
    }
    return 0;
}

int mig_request_parse(json_t *body, struct mig_request *req, char *err, size_t errsz)
{
    mig_request_clear(req);
    if (!json_is_object(body)) {
        snprintf(err, errsz, "the body must be a JSON object");
        return -EINVAL;
    }
    int rc = check_members(body, err, errsz);
    if (rc != 0)
        return rc;
    const char *vm = json_string_value(json_object_get(body, "vm_uuid"));
    const char *target = json_string_value(json_object_get(body, "target"));
    const char *mode = json_string_value(json_object_get(body, "mode"));
    const char *transfer = json_string_value(json_object_get(body, "transfer"));
    json_t *limit = json_object_get(body, "limit_mbps");
    if (mode != NULL && mig_mode_parse(mode, &req->mode) != 0) {
        snprintf(err, errsz, "mode \"%.*s\" is not full, incremental or auto", ECHO_MAX, mode);
        return -EINVAL;
    }
    if (transfer != NULL && strcmp(transfer, "relay") != 0 && strcmp(transfer, "direct") != 0) {
        snprintf(err, errsz, "transfer \"%.*s\" is not relay or direct", ECHO_MAX, transfer);
        return -EINVAL;
    }
    if (json_is_integer(limit) &&
        (json_integer_value(limit) < 0 || json_integer_value(limit) > 1000000)) {
        snprintf(err, errsz, "limit_mbps must be 0 (no cap) to 1000000 Mbit/s");
        return -EINVAL;
    }
    json_t *min_up = json_object_get(body, "min_up_s");
    if (json_is_integer(min_up) &&
        (json_integer_value(min_up) < 0 || json_integer_value(min_up) > 86400)) {
        snprintf(err, errsz, "min_up_s must be 0 (no health gate) to 86400 s");
        return -EINVAL;
    }
    req->min_up_s = json_is_integer(min_up) ? (int)json_integer_value(min_up) : -1;
    json_t *after = json_object_get(body, "cleanup_after_s");
    if (json_is_integer(after) &&
        (json_integer_value(after) < 0 || json_integer_value(after) > 366LL * 86400)) {
        snprintf(err, errsz, "cleanup_after_s must be 0 (only by hand) to 31622400 s (366 days)");
        return -EINVAL;
    }
    req->cleanup_after_s = json_is_integer(after) ? json_integer_value(after) : -1;
    const char *window = json_string_value(json_object_get(body, "window"));
    if (window != NULL) {
        char why[160];
        if (mig_window_parse(window, &req->window, why, sizeof(why)) != 0) {
            snprintf(err, errsz, "window \"%.*s\": %s", ECHO_MAX, window, why);
            return -EINVAL;
        }
    }
    req->vm = mig_strdup(vm);
    req->target = target != NULL ? mig_strdup(target) : NULL;
    snprintf(req->transfer, sizeof(req->transfer), "%s", transfer != NULL ? transfer : "");
    req->dry_run = json_is_true(json_object_get(body, "dry_run"));
    req->allow_older_platform = json_is_true(json_object_get(body, "allow_older_platform"));
    req->cleanup_source = json_is_true(json_object_get(body, "cleanup_source"));
    req->limit_mbps = json_is_integer(limit) ? (int)json_integer_value(limit) : -1;
    return 0;
}
