/*
 * output_evac.c: migctl's rendering of evacuations, their plans and
 * estimates, and rolling drains of several CNs (see output.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"

static json_int_t int_of(json_t *o, const char *key, json_int_t def)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

static const char *str_of(json_t *o, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : def;
}

void out_evacuation(FILE *f, json_t *ev)
{
    json_t *plan = json_object_get(ev, "plan");
    json_t *progress = json_object_get(ev, "progress");
    const char *state = str_of(ev, "state", "?");
    bool planned = strcmp(state, "plan") == 0;
    char size[32], window[32], sent[32], eta[32];
    size_t moving = 0, stays = 0, i;
    json_t *e;
    json_array_foreach(plan, i, e)
    {
        if (json_string_value(json_object_get(e, "target_uuid")) != NULL)
            moving++;
        else
            stays++;
    }
    out_bytes(int_of(ev, "bytes", 0), size, sizeof(size));
    out_duration(int_of(ev, "estimate_s", -1), window, sizeof(window));
    bool back = strcmp(str_of(ev, "kind", ""), "homecoming") == 0;
    if (back && planned)
        fprintf(f, "plan of the homecoming of evacuation %s: the VMs back to the CNs they left; "
                   "nothing was queued or given back\n",
                str_of(ev, "homecoming_of", "?"));
    else if (back)
        fprintf(f, "homecoming %s of evacuation %s: %s; its CNs are not reserved\n",
                str_of(ev, "uuid", "?"), str_of(ev, "homecoming_of", "?"), state);
    else if (planned)
        fprintf(f, "plan to evacuate %s (%s); nothing was queued or reserved\n",
                str_of(ev, "hostname", "?"), str_of(ev, "server_uuid", "?"));
    else
        fprintf(f, "evacuation %s of %s (%s): %s; %s%s%s\n", str_of(ev, "uuid", "?"),
                str_of(ev, "hostname", "?"), str_of(ev, "server_uuid", "?"), state,
                json_is_true(json_object_get(ev, "reserved"))
                    ? "the CN is reserved in CNAPI (once it is back: migctl evacuate --unreserve "
                    : "the CN is not reserved",
                json_is_true(json_object_get(ev, "reserved")) ? str_of(ev, "uuid", "?") : "",
                json_is_true(json_object_get(ev, "reserved")) ? ")" : "");
    fprintf(f, "%zu VMs: %zu to move (%s), %zu stay; estimated window %s with %lld at once\n",
            moving + stays, moving, size, stays, window,
            (long long)int_of(ev, "parallel", int_of(json_object_get(ev, "options"), "max_parallel", 1)));
    if (json_is_object(progress) && !planned) {
        out_bytes(int_of(progress, "bytes_sent", 0), sent, sizeof(sent));
        out_duration(int_of(progress, "eta_s", -1), eta, sizeof(eta));
        fprintf(f, "progress: %lld done, %lld moving, %lld failed; %s of %s sent; eta %s\n",
                (long long)int_of(progress, "done", 0), (long long)int_of(progress, "moving", 0),
                (long long)int_of(progress, "failed", 0), sent, size, eta);
    }
    json_t *err = json_object_get(ev, "estimate_error");
    if (json_is_number(err)) {
        char took[32];
        out_duration(int_of(ev, "took_s", -1), took, sizeof(took));
        fprintf(f, "took %s; the estimate was %s (%+.0f%%)\n", took, window,
                100.0 * json_number_value(err));
    }
    fprintf(f, "%-8s  %-16s  %-7s  %10s  %-12s  %7s  %s\n", "VM", "ALIAS", "BRAND", "SIZE",
            "TARGET", "EST", planned ? "WHY" : "STATE / WHY");
    json_array_foreach(plan, i, e)
    {
        const char *vm = str_of(e, "vm_uuid", "?");
        char *alias = out_cut(str_of(e, "alias", "-"), 16);
        char *target = out_cut(str_of(e, "target_hostname", "-"), 12);
        char est[32];
        out_bytes(int_of(e, "bytes", 0), size, sizeof(size));
        out_duration(int_of(e, "estimate_s", -1), est, sizeof(est));
        char what[300];
        const char *st = json_string_value(json_object_get(e, "state"));
        json_t *refused = json_object_get(e, "refused");
        if (st != NULL) {
            char done[32];
            out_bytes(int_of(e, "bytes_sent", 0), done, sizeof(done));
            snprintf(what, sizeof(what), "%s (%s sent)", st, done);
        } else if (json_is_object(refused)) {
            snprintf(what, sizeof(what), "not queued: %s", str_of(refused, "message", "?"));
        } else {
            snprintf(what, sizeof(what), "%s", str_of(e, "why", ""));
        }
        fprintf(f, "%-8.8s  %-16s  %-7.7s  %10s  %-12s  %7s  %s\n", vm, alias,
                str_of(e, "brand", "-"), size, target, est, what);
        free(alias);
        free(target);
    }
    json_t *attention = json_object_get(ev, "attention");
    if (json_array_size(attention) > 0) {
        fprintf(f, "needs attention:\n");
        json_array_foreach(attention, i, e)
            fprintf(f, "  %s\n", json_string_value(e) != NULL ? json_string_value(e) : "");
    }
}

void out_rolling(FILE *f, json_t *drain)
{
    const char *state = str_of(drain, "state", "?");
    bool planned = strcmp(state, "plan") == 0;
    json_t *cns = json_object_get(drain, "cns");
    json_t *p = json_object_get(drain, "progress");
    char size[32], window[32], sent[32];
    out_bytes(int_of(drain, "bytes", 0), size, sizeof(size));
    out_duration(int_of(drain, "estimate_s", -1), window, sizeof(window));
    if (planned)
        fprintf(f, "plan of a rolling evacuation of %zu CNs, %lld at once; nothing was queued or "
                   "reserved\n",
                json_array_size(cns), (long long)int_of(drain, "max_cns", 1));
    else
        fprintf(f, "rolling evacuation %s of %zu CNs, %lld at once: %s; %s%s%s\n",
                str_of(drain, "uuid", "?"), json_array_size(cns),
                (long long)int_of(drain, "max_cns", 1), state,
                json_is_true(json_object_get(drain, "reserved"))
                    ? "its CNs are reserved in CNAPI (once they are back: migctl evacuate "
                      "--unreserve "
                    : "the CNs are not reserved",
                json_is_true(json_object_get(drain, "reserved")) ? str_of(drain, "uuid", "?") : "",
                json_is_true(json_object_get(drain, "reserved")) ? ")" : "");
    fprintf(f, "%s to move; estimated %s in all\n", size, window);
    if (!planned) {
        out_bytes(int_of(p, "bytes_sent", 0), sent, sizeof(sent));
        fprintf(f, "CNs: %lld drained, %lld draining, %lld waiting their turn, %lld failed; "
                   "VMs: %lld done, %lld moving, %lld failed; %s sent\n",
                (long long)int_of(p, "cns_done", 0), (long long)int_of(p, "cns_draining", 0),
                (long long)int_of(p, "cns_queued", 0), (long long)int_of(p, "cns_failed", 0),
                (long long)int_of(p, "done", 0), (long long)int_of(p, "moving", 0),
                (long long)int_of(p, "failed", 0), sent);
    }
    fprintf(f, "%-3s  %-16s  %-8s  %10s  %8s  %8s\n", "#", "CN", "STATE", "SIZE", "STARTS",
            "EST");
    size_t i;
    json_t *ev;
    json_array_foreach(cns, i, ev)
    {
        char *host = out_cut(str_of(ev, "hostname", "?"), 16);
        char starts[32], est[32];
        out_bytes(int_of(ev, "bytes", 0), size, sizeof(size));
        out_duration(int_of(ev, "starts_after_s", -1), starts, sizeof(starts));
        out_duration(int_of(ev, "estimate_s", -1), est, sizeof(est));
        fprintf(f, "%-3zu  %-16s  %-8s  %10s  %8s  %8s\n", i + 1, host, str_of(ev, "state", "?"),
                size, planned || strcmp(str_of(ev, "state", ""), "queued") == 0 ? starts : "-",
                est);
        free(host);
    }
    json_array_foreach(cns, i, ev)
    {
        fprintf(f, "\n");
        out_evacuation(f, ev);
    }
}
