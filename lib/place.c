/*
 * place.c: the placement planner (place.h).  The servers are read from JSON
 * once into compact arrays (free RAM and disk as integers, NIC tags as
 * bitsets of interned ids); the rules that depend only on the CN and the
 * source (not the source, not the head node, set up, running, not
 * reserved, platform) are decided once per CN by mig_validate_target
 * itself; each VM is then a scan of integers over the eligible CNs, with no
 * JSON in the loop: O(VMs x CNs) compares, O(VMs + CNs) JSON reads.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "intern.h"
#include "invariant.h"
#include "place.h"
#include "spread.h"
#include "util.h"
#include "validate.h"

/* ---- tag sets as bitsets of interned ids (intern.h) ---------------------- */

static void bit_set(uint64_t *words, long id)
{
    words[id / 64] |= UINT64_C(1) << (id % 64);
}

static bool bit_get(const uint64_t *words, long id)
{
    return (words[id / 64] >> (id % 64)) & 1;
}

/* True when have holds every bit of need. */
static bool bits_cover(const uint64_t *have, const uint64_t *need, size_t nwords)
{
    for (size_t w = 0; w < nwords; w++)
        if ((need[w] & ~have[w]) != 0)
            return false;
    return true;
}

/* ---- small helpers ---------------------------------------------------------- */

static const char *str_member(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* One line, owned: formatted, cut at 511 bytes, control characters made spaces. */
static char *say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *say(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    for (char *p = buf; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    return mig_strdup(buf);
}

/* MiB as GiB for messages: "52 GiB", or "1.5 GiB" when not whole. */
static const char *gib(int64_t mib, char *buf, size_t size)
{
    if (mib % 1024 == 0)
        snprintf(buf, size, "%lld GiB", (long long)(mib / 1024));
    else
        snprintf(buf, size, "%.1f GiB", (double)mib / 1024.0);
    return buf;
}

/* "alias (uuid)" or "uuid", as validate.c names a VM. */
static const char *vm_label(const struct mig_place_vm *v, char *buf, size_t size)
{
    if (v->alias != NULL && v->alias[0] != '\0')
        snprintf(buf, size, "%.64s (%s)", v->alias, v->uuid);
    else
        snprintf(buf, size, "%s", v->uuid);
    return buf;
}

/* vm.ram in MiB, read as mig_validate_target reads it. */
static int64_t vm_ram_mib(json_t *vm)
{
    json_t *ram = json_object_get(vm, "ram");
    return json_is_number(ram) ? (int64_t)json_number_value(ram) : 0;
}

/*
 * The VM's disk need in MiB, counted exactly as submit.c counts it for the
 * job's own check (quota GiB plus every disk's size), so that a VM this plan
 * places is not refused by its job for a different sum.
 */
static int64_t vm_disk_mib(json_t *vm)
{
    int64_t mib = json_integer_value(json_object_get(vm, "quota")) * 1024;
    size_t i;
    json_t *disk;
    json_array_foreach(json_object_get(vm, "disks"), i, disk)
    {
        mib += json_integer_value(json_object_get(disk, "size"));
    }
    return mib;
}

/* ---- reading the input ------------------------------------------------------ */

/* A server while it is read; sorted into the plan's order. */
struct cn_in {
    json_t *json;     /* borrowed */
    const char *uuid; /* borrowed from json */
    const char *key;  /* the tie-break: hostname, else uuid */
    size_t index;     /* in the input: the last tie-break, so any sort is stable */
};

static int cmp_cn(const void *a, const void *b)
{
    const struct cn_in *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c == 0)
        c = strcmp(x->uuid, y->uuid);
    if (c == 0)
        c = x->index < y->index ? -1 : x->index > y->index;
    return c;
}

/* A VM while it is read. */
struct vm_in {
    json_t *json;     /* borrowed */
    const char *uuid; /* borrowed, "" when absent */
    int64_t ram, disk;
    size_t index;
};

/*
 * The placement order: largest RAM first, then largest disk, then uuid.
 * Largest first packs better than smallest first: a 96 GiB VM placed after a
 * hundred small ones may find every CN's free RAM nibbled below 96 GiB,
 * while the small ones still fit in what the large one leaves.  The order in
 * which the scheduler later runs the jobs does not matter: the plan has
 * counted every VM against its target before any job runs.
 */
static int cmp_vm(const void *a, const void *b)
{
    const struct vm_in *x = a, *y = b;
    if (x->ram != y->ram)
        return x->ram > y->ram ? -1 : 1;
    if (x->disk != y->disk)
        return x->disk > y->disk ? -1 : 1;
    int c = strcmp(x->uuid, y->uuid);
    if (c == 0)
        c = x->index < y->index ? -1 : x->index > y->index;
    return c;
}

/* The working state of one mig_place_plan call. */
struct planner {
    struct mig_place *p;
    const struct mig_place_opts *opts;
    struct cn_in *in;   /* ncns servers, in the plan's order */
    bool *in_scope;     /* per CN: opts->to names it (all true without to) */
    struct mig_intern tags; /* every NIC tag any server has */
    size_t nwords;      /* uint64_t words per tag set */
    uint64_t *have;     /* ncns * nwords: each CN's tags */

    /* The eligible CNs, in the plan's order, as the hot arrays the scan reads. */
    size_t nelig;
    size_t *elig_cn;     /* index into p->cns */
    int64_t *elig_ram;   /* free RAM, less what the plan put there */
    int64_t *elig_disk;  /* free disk, likewise */
    uint64_t *elig_tags; /* nelig * nwords */
    uint64_t *elig_any;  /* nwords: union of the eligible CNs' tags */
    uint64_t *need;      /* nwords: the VM being placed */

    /* placement.spread_tag: who runs where, and per CN the group member it runs (for one VM). */
    struct mig_spread spread;
    const char **mate_on; /* ncns */

    /* Why a VM finds no eligible CN at all: the same for every VM. */
    const char *none_rule;
    char *none_why;
};

/* The CN named by key (uuid, any case, or hostname), or -1. */
static long find_cn(const struct planner *pl, const char *key)
{
    for (size_t i = 0; i < pl->p->ncns; i++) {
        const struct mig_place_cn *c = &pl->p->cns[i];
        if (strcasecmp(c->uuid, key) == 0 || strcmp(c->hostname, key) == 0)
            return (long)i;
    }
    return -1;
}

/* Reads the servers into p->cns (sorted) and their NIC tags into bitsets. */
static void read_servers(struct planner *pl, json_t *servers)
{
    struct mig_place *p = pl->p;
    size_t n = json_array_size(servers);
    pl->in = mig_calloc(n, sizeof(*pl->in));
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(servers, i);
        const char *uuid = str_member(s, "uuid");
        if (uuid == NULL) /* not a server anyone could name or move to */
            continue;
        const char *host = str_member(s, "hostname");
        struct cn_in *c = &pl->in[p->ncns++];
        c->json = s;
        c->uuid = uuid;
        c->key = host != NULL && host[0] != '\0' ? host : uuid;
        c->index = i;
    }
    qsort(pl->in, p->ncns, sizeof(*pl->in), cmp_cn);

    p->cns = mig_calloc(p->ncns, sizeof(*p->cns));
    json_t **tags = mig_calloc(p->ncns, sizeof(*tags));
    for (size_t i = 0; i < p->ncns; i++) {
        struct mig_place_cn *c = &p->cns[i];
        c->uuid = mig_strdup(pl->in[i].uuid);
        c->hostname = mig_strdup(pl->in[i].key);
        c->ram_free_mib =
            (int64_t)json_number_value(json_object_get(pl->in[i].json, "unreserved_ram"));
        c->disk_free_mib =
            (int64_t)json_number_value(json_object_get(pl->in[i].json, "unreserved_disk"));
        /*
         * validate.h decides what a CN's tags are (interfaces and aggregations)
         * and which overlays its underlay carries; an overlay is interned as
         * "RULE/", which no NIC tag can be (see tag_key()).
         */
        tags[i] = mig_server_nic_tags(pl->in[i].json);
        json_t *overlays = mig_server_overlay_tags(pl->in[i].json);
        size_t k;
        json_t *t;
        json_array_foreach(overlays, k, t)
        {
            json_array_append_new(tags[i], json_sprintf("%s/", json_string_value(t)));
        }
        json_decref(overlays);
        json_array_foreach(tags[i], k, t)
        {
            mig_intern_add(&pl->tags, json_string_value(t));
        }
    }
    pl->nwords = pl->tags.n / 64 + 1;
    pl->have = mig_calloc(p->ncns * pl->nwords, sizeof(*pl->have));
    for (size_t i = 0; i < p->ncns; i++) {
        size_t k;
        json_t *t;
        json_array_foreach(tags[i], k, t)
        {
            bit_set(pl->have + i * pl->nwords, mig_intern_find(&pl->tags, json_string_value(t)));
        }
        json_decref(tags[i]);
    }
    free(tags);
}

/* The source CN: opts->source, else the first VM's server_uuid.  Fills p->source. */
static int find_source(struct planner *pl, json_t *vms, struct mig_refusal *r)
{
    const char *key = pl->opts->source;
    if (key == NULL) {
        size_t i;
        json_t *vm;
        json_array_foreach(vms, i, vm)
        {
            if ((key = str_member(vm, "server_uuid")) != NULL)
                break;
        }
        if (key == NULL) {
            if (json_array_size(vms) == 0)
                return 0; /* nothing to move, nothing to say */
            return mig_refuse(r, MIG_PLACE_RULE_SOURCE_UNKNOWN,
                              "no source CN: none was given and no VM has a server_uuid; name the "
                              "CN to evacuate");
        }
    }
    long i = find_cn(pl, key);
    if (i < 0)
        return mig_refuse(r, MIG_PLACE_RULE_SOURCE_UNKNOWN,
                          "source CN %.64s is not among CNAPI's servers; check the CN uuid or "
                          "hostname",
                          key);
    pl->p->source = &pl->p->cns[i];
    return 0;
}

/* Marks the CNs that opts->to names; every CN when it names none. */
static int mark_scope(struct planner *pl, struct mig_refusal *r)
{
    pl->in_scope = mig_calloc(pl->p->ncns, sizeof(*pl->in_scope));
    for (size_t i = 0; i < pl->p->ncns; i++)
        pl->in_scope[i] = pl->opts->nto == 0;
    for (size_t k = 0; k < pl->opts->nto; k++) {
        const char *key = pl->opts->to[k];
        long i = key != NULL ? find_cn(pl, key) : -1;
        if (i < 0)
            return mig_refuse(r, MIG_RULE_TARGET_UNKNOWN,
                              "target CN %.64s is not among CNAPI's servers; check the CN uuid or "
                              "hostname in the target list",
                              key != NULL ? key : "(null)");
        pl->in_scope[i] = true;
    }
    return 0;
}

/*
 * A VM that needs nothing, for mig_validate_target to judge a CN on the rules
 * that do not depend on the VM: its RAM and disk needs are far below zero so
 * that only a CN that reports no capacity at all fails them (a CN whose
 * unreserved values are merely low is judged per VM, against the running
 * totals), and it has no NIC.
 */
#define PROBE_NEED_MIB (-((int64_t)1 << 50))

/* True when opts->avoid names the CN (by uuid, any case, or hostname). */
static bool avoided(const struct planner *pl, const struct mig_place_cn *c)
{
    size_t i;
    json_t *u;
    json_array_foreach(pl->opts->avoid, i, u)
    {
        const char *name = json_string_value(u);
        if (name != NULL && (strcasecmp(name, c->uuid) == 0 || strcmp(name, c->hostname) == 0))
            return true;
    }
    return false;
}

/* Where the members of each spread group run now, from opts->others. */
static void read_spread(struct planner *pl)
{
    mig_spread_init(&pl->spread, pl->opts->spread_tag);
    pl->mate_on = mig_calloc(pl->p->ncns, sizeof(*pl->mate_on));
    if (pl->spread.tag == NULL)
        return;
    size_t i;
    json_t *vm;
    json_array_foreach(pl->opts->others, i, vm)
    {
        const char *on = str_member(vm, "server_uuid");
        const char *who = str_member(vm, "alias");
        if (who == NULL || who[0] == '\0')
            who = str_member(vm, "uuid");
        long g = on != NULL && who != NULL ? mig_spread_group(&pl->spread, vm) : -1;
        long c = g >= 0 ? find_cn(pl, on) : -1;
        if (c >= 0)
            mig_spread_add(&pl->spread, g, (size_t)c, who);
    }
}

/* Decides which CNs may receive VMs of this plan, and why the others may not. */
static void judge_cns(struct planner *pl)
{
    struct mig_place *p = pl->p;
    json_t *probe = json_pack("{s:s, s:I}", "uuid", "", "ram", (json_int_t)PROBE_NEED_MIB);
    if (probe == NULL)
        MIG_DIE("out of memory");
    json_t *src = pl->in[p->source - p->cns].json;
    pl->elig_cn = mig_calloc(p->ncns, sizeof(*pl->elig_cn));
    for (size_t i = 0; i < p->ncns; i++) {
        struct mig_place_cn *c = &p->cns[i];
        struct mig_refusal r;
        if (!pl->in_scope[i]) {
            c->rule = MIG_PLACE_RULE_NOT_IN_TO;
            c->why = say("%s is not in the target list", c->hostname);
            continue;
        }
        bool ok = mig_validate_target(probe, src, pl->in[i].json, PROBE_NEED_MIB,
                                      pl->opts->allow_older_platform, &r) == 0;
        if ((ok || strcmp(r.rule, MIG_RULE_TARGET_SAME) != 0) && avoided(pl, c)) {
            c->rule = MIG_PLACE_RULE_EVACUATING;
            c->why = say("%s is being evacuated (an unfinished evacuation drains it)", c->hostname);
            continue;
        }
        if (ok) {
            c->eligible = true;
            pl->elig_cn[pl->nelig++] = i;
            continue;
        }
        c->rule = r.rule;
        if (strcmp(r.rule, MIG_RULE_TARGET_SAME) == 0)
            c->why = say("%s is the source CN", c->hostname);
        else if (strcmp(r.rule, MIG_RULE_RAM) == 0 || strcmp(r.rule, MIG_RULE_DISK) == 0)
            c->why = say("target %s reports no %s (CNAPI capacity missing); retry when CNAPI "
                         "has it",
                         c->hostname,
                         strcmp(r.rule, MIG_RULE_RAM) == 0 ? "unreserved_ram" : "unreserved_disk");
        else
            c->why = say("%s", r.message);
    }
    json_decref(probe);

    pl->elig_ram = mig_calloc(pl->nelig, sizeof(*pl->elig_ram));
    pl->elig_disk = mig_calloc(pl->nelig, sizeof(*pl->elig_disk));
    pl->elig_tags = mig_calloc(pl->nelig * pl->nwords, sizeof(*pl->elig_tags));
    pl->elig_any = mig_calloc(pl->nwords, sizeof(*pl->elig_any));
    pl->need = mig_calloc(pl->nwords, sizeof(*pl->need));
    for (size_t k = 0; k < pl->nelig; k++) {
        size_t i = pl->elig_cn[k];
        pl->elig_ram[k] = p->cns[i].ram_free_mib;
        pl->elig_disk[k] = p->cns[i].disk_free_mib;
        for (size_t w = 0; w < pl->nwords; w++) {
            pl->elig_tags[k * pl->nwords + w] = pl->have[i * pl->nwords + w];
            pl->elig_any[w] |= pl->have[i * pl->nwords + w];
        }
    }
}

/*
 * Why no CN is eligible, said once for every VM: the excluded candidates
 * (the source only when it is the one candidate), one with its full reason,
 * several as "hostname Rule"; the rule is theirs when they share one.
 */
static void explain_none(struct planner *pl)
{
    struct mig_place *p = pl->p;
    size_t n = 0, only = 0;
    const char *rule = NULL;
    bool same = true;
    for (int pass = 0; pass < 2 && n == 0; pass++) {
        for (size_t i = 0; i < p->ncns; i++) {
            bool is_src = &p->cns[i] == p->source;
            if (!pl->in_scope[i] || p->cns[i].eligible || is_src != (pass == 1))
                continue;
            if (n == 0) {
                only = i;
                rule = p->cns[i].rule;
            } else if (strcmp(rule, p->cns[i].rule) != 0) {
                same = false;
            }
            n++;
        }
    }
    if (n == 0) { /* the caller knows better: only called when no CN is eligible */
        pl->none_rule = MIG_PLACE_RULE_NO_TARGET;
        pl->none_why = say("no target CN to consider");
        return;
    }
    pl->none_rule = same ? rule : MIG_PLACE_RULE_NO_TARGET;
    if (n == 1) {
        pl->none_why = say("no eligible target CN: %s", p->cns[only].why);
        return;
    }
    char buf[400];
    size_t len = (size_t)snprintf(buf, sizeof(buf), "no eligible target CN among %zu:", n);
    size_t shown = 0;
    for (size_t i = 0; i < p->ncns && len < sizeof(buf); i++) {
        const struct mig_place_cn *c = &p->cns[i];
        if (!pl->in_scope[i] || c->eligible || c == p->source)
            continue;
        if (len + strlen(c->hostname) + strlen(c->rule) + 24 >= sizeof(buf))
            break;
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s %s %s", shown > 0 ? "," : "",
                                c->hostname, c->rule);
        shown++;
    }
    if (shown < n && len < sizeof(buf))
        snprintf(buf + len, sizeof(buf) - len, " and %zu more", n - shown);
    pl->none_why = say("%s", buf);
}

/* ---- placing ------------------------------------------------------------------ */

/* The VM's NIC tags, distinct, in NIC order, joined by ", " into buf. */
static const char *vm_tags(json_t *vm, char *buf, size_t size)
{
    size_t i, len = 0;
    json_t *nic;
    buf[0] = '\0';
    json_array_foreach(json_object_get(vm, "nics"), i, nic)
    {
        const char *tag = str_member(nic, "nic_tag");
        if (tag == NULL)
            continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) {
            const char *prev =
                str_member(json_array_get(json_object_get(vm, "nics"), j), "nic_tag");
            seen = prev != NULL && strcmp(prev, tag) == 0;
        }
        if (!seen && len < size)
            len += (size_t)snprintf(buf + len, size - len, "%s%s", len > 0 ? ", " : "", tag);
    }
    return buf;
}

/*
 * What a CN must have for a NIC with this tag, as a key of the tag table:
 * the tag itself, or for a fabric NIC ("RULE/VNET_ID") "RULE/", the overlay
 * its underlay must carry (mig_validate_target's rule).  Written to buf when
 * it is not tag itself.
 */
static const char *tag_key(const char *tag, char *buf, size_t size)
{
    char rule[128];
    if (!mig_nic_tag_overlay(tag, rule, sizeof(rule)))
        return tag;
    snprintf(buf, size, "%s/", rule);
    return buf;
}

/*
 * Fills pl->need with the VM's tags.  Returns NULL, or the first tag that no
 * server of the datacenter has.
 */
static const char *vm_need(struct planner *pl, json_t *vm)
{
    memset(pl->need, 0, pl->nwords * sizeof(*pl->need));
    size_t i;
    json_t *nic;
    json_array_foreach(json_object_get(vm, "nics"), i, nic)
    {
        const char *tag = str_member(nic, "nic_tag");
        if (tag == NULL)
            continue;
        char key[160];
        long id = mig_intern_find(&pl->tags, tag_key(tag, key, sizeof(key)));
        if (id < 0)
            return tag;
        bit_set(pl->need, id);
    }
    return NULL;
}

/* The first of the VM's tags that no eligible CN has, or NULL. */
static const char *tag_not_eligible(struct planner *pl, json_t *vm)
{
    size_t i;
    json_t *nic;
    json_array_foreach(json_object_get(vm, "nics"), i, nic)
    {
        const char *tag = str_member(nic, "nic_tag");
        char key[160];
        if (tag != NULL &&
            !bit_get(pl->elig_any, mig_intern_find(&pl->tags, tag_key(tag, key, sizeof(key)))))
            return tag;
    }
    return NULL;
}

/*
 * The refusal of a VM because of tag, which no CN (anywhere "no CN", else "no
 * eligible target CN") has: the NIC tag rule, or for a fabric NIC the
 * underlay rule, with what is missing.
 */
static void refuse_tag(struct mig_place_vm *v, const char *who, const char *tag)
{
    char label[160], rule[128];
    vm_label(v, label, sizeof(label));
    if (mig_nic_tag_overlay(tag, rule, sizeof(rule))) {
        v->rule = MIG_RULE_UNDERLAY;
        v->why = say("%s has an underlay carrying overlay tag %s, which the fabric NIC %s of VM "
                     "%s needs",
                     who, rule, tag, label);
    } else {
        v->rule = MIG_RULE_NIC_TAG;
        v->why = say("%s has NIC tag %s, which VM %s uses", who, tag, label);
    }
}

/* " (after N VMs of this plan)" when the plan already put some on c. */
static const char *planned_note(const struct mig_place_cn *c, char *buf, size_t size)
{
    buf[0] = '\0';
    if (c->nplanned > 0)
        snprintf(buf, size, " (after %zu VM%s of this plan)", c->nplanned,
                 c->nplanned == 1 ? "" : "s");
    return buf;
}

/*
 * The CNs a VM's spread group keeps it from, for its reason: "another
 * role=db of its owner: cn1 (db0), cn2 (db2) and 1 more".
 */
static void spread_note(struct planner *pl, json_t *vm, const size_t *cn, size_t n, char *buf,
                        size_t size)
{
    char value[64];
    size_t len = (size_t)snprintf(buf, size, "another %s=%s of its owner:", pl->spread.tag,
                                  mig_spread_value(&pl->spread, vm, value, sizeof(value)));
    long group = mig_spread_group(&pl->spread, vm);
    const struct mig_spread_group *mates = mig_spread_members(&pl->spread, group);
    for (size_t k = 0; k < n && k < 3 && len < size; k++) {
        const char *who = "?";
        for (size_t m = 0; m < mates->n; m++)
            if (mates->m[m].cn == cn[k]) {
                who = mates->m[m].who;
                break;
            }
        len += (size_t)snprintf(buf + len, size - len, "%s %s (%.40s)", k > 0 ? "," : "",
                                pl->p->cns[cn[k]].hostname, who);
    }
    if (n > 3 && len < size)
        snprintf(buf + len, size - len, " and %zu more", n - 3);
}

/* Places one VM that may migrate: a target, or the rule that stops it. */
static void place_vm(struct planner *pl, struct mig_place_vm *v, json_t *vm)
{
    struct mig_place *p = pl->p;
    char label[160], tags[256], a[32], b[32], note[64];
    if (pl->nelig == 0) {
        v->rule = pl->none_rule;
        v->why = mig_strdup(pl->none_why);
        return;
    }
    const char *unknown = vm_need(pl, vm);
    if (unknown != NULL) {
        refuse_tag(v, "no CN", unknown);
        return;
    }

    /*
     * One pass over the eligible CNs (in hostname, uuid order): the best
     * target, and on the way what the refusal would name.  A strict ">"
     * keeps the first of equals: that is the tie-break.
     */
    const size_t nw = pl->nwords;
    long best = -1, max_ram = -1, max_disk = -1;
    size_t ntags = 0, nram = 0, nfit = 0, ties = 0, napart = 0, apart[3];
    long group = mig_spread_group(&pl->spread, vm);
    const struct mig_spread_group *mates = mig_spread_members(&pl->spread, group);
    for (size_t m = 0; m < mates->n; m++)
        pl->mate_on[mates->m[m].cn] = mates->m[m].who;
    for (size_t k = 0; k < pl->nelig; k++) {
        if (!bits_cover(pl->elig_tags + k * nw, pl->need, nw))
            continue;
        ntags++;
        if (max_ram < 0 || pl->elig_ram[k] > pl->elig_ram[max_ram])
            max_ram = (long)k;
        if (pl->elig_ram[k] < v->ram_mib)
            continue;
        nram++;
        if (max_disk < 0 || pl->elig_disk[k] > pl->elig_disk[max_disk])
            max_disk = (long)k;
        if (pl->elig_disk[k] < v->disk_mib)
            continue;
        if (pl->mate_on[pl->elig_cn[k]] != NULL) { /* it fits, but runs one of its group */
            if (napart < 3)
                apart[napart] = pl->elig_cn[k];
            napart++;
            continue;
        }
        nfit++;
        if (best < 0 || pl->elig_ram[k] > pl->elig_ram[best]) {
            best = (long)k;
            ties = 0;
        } else if (pl->elig_ram[k] == pl->elig_ram[best]) {
            ties++;
        }
    }

    for (size_t m = 0; m < mates->n; m++)
        pl->mate_on[mates->m[m].cn] = NULL;
    char spread[200] = "";
    if (napart > 0)
        spread_note(pl, vm, apart, napart, spread, sizeof(spread));

    if (ntags == 0) {
        const char *missing = tag_not_eligible(pl, vm);
        if (missing != NULL) {
            refuse_tag(v, "no eligible target CN", missing);
            return;
        }
        v->rule = MIG_RULE_NIC_TAG;
        v->why = say("no eligible target CN has all the NIC tags of VM %s: %s",
                     vm_label(v, label, sizeof(label)), vm_tags(vm, tags, sizeof(tags)));
        return;
    }
    if (nram == 0) {
        /* When some eligible CN lacks the tags, say that the search was among those with them. */
        const struct mig_place_cn *c = &p->cns[pl->elig_cn[max_ram]];
        char with[300] = "";
        if (ntags < pl->nelig)
            snprintf(with, sizeof(with), " on a CN with its NIC tags (%s)",
                     vm_tags(vm, tags, sizeof(tags)));
        v->rule = MIG_RULE_RAM;
        v->why = say("needs %s RAM, the most free%s is %s on %s%s", gib(v->ram_mib, a, sizeof(a)),
                     with, gib(pl->elig_ram[max_ram], b, sizeof(b)), c->hostname,
                     planned_note(c, note, sizeof(note)));
        return;
    }
    if (nfit == 0 && napart == 0) {
        const struct mig_place_cn *c = &p->cns[pl->elig_cn[max_disk]];
        v->rule = MIG_RULE_DISK;
        v->why = say("needs %s disk, the most free on a CN with room for its RAM is %s on %s%s",
                     gib(v->disk_mib, a, sizeof(a)), gib(pl->elig_disk[max_disk], b, sizeof(b)),
                     c->hostname, planned_note(c, note, sizeof(note)));
        return;
    }

    if (nfit == 0) { /* napart > 0: only its group keeps it from a CN */
        v->rule = MIG_PLACE_RULE_SPREAD;
        v->why = say("VM %s stays: every CN that fits runs %s", vm_label(v, label, sizeof(label)),
                     spread);
        return;
    }

    struct mig_place_cn *c = &p->cns[pl->elig_cn[best]];
    mig_spread_add(&pl->spread, group, pl->elig_cn[best],
                   v->alias != NULL && v->alias[0] != '\0' ? v->alias : v->uuid);
    pl->elig_ram[best] -= v->ram_mib;
    pl->elig_disk[best] -= v->disk_mib;
    c->ram_free_mib -= v->ram_mib;
    c->disk_free_mib -= v->disk_mib;
    c->ram_planned_mib += v->ram_mib;
    c->disk_planned_mib += v->disk_mib;
    c->nplanned++;
    v->target = c;
    char tie[64] = "";
    if (ties > 0)
        snprintf(tie, sizeof(tie), ", tied with %zu other%s, first by hostname", ties,
                 ties == 1 ? "" : "s");
    vm_tags(vm, tags, sizeof(tags));
    const char *has = tags[0] != '\0' ? "has NIC tags " : "needs no NIC tag";
    char away[220] = "";
    if (napart > 0)
        snprintf(away, sizeof(away), "; not beside %s", spread);
    if (nfit == 1)
        v->why = say("the only CN that fits: %s RAM free after placement; %s%s%s",
                     gib(c->ram_free_mib, a, sizeof(a)), has, tags, away);
    else
        v->why = say("most free RAM after placement: %s, the best of %zu CNs that fit%s; %s%s%s",
                     gib(c->ram_free_mib, a, sizeof(a)), nfit, tie, has, tags, away);
}

/* Decides one VM: skipped by a VM rule or for being elsewhere, or placed. */
static void decide_vm(struct planner *pl, struct mig_place_vm *v, json_t *vm)
{
    struct mig_refusal r;
    char label[160];
    if (mig_validate_vm(vm, pl->opts->admin_uuid, &r) != 0) {
        v->skipped = true;
        v->rule = r.rule;
        v->why = say("%s", r.message);
        return;
    }
    const char *on = str_member(vm, "server_uuid");
    if (on != NULL && strcasecmp(on, pl->p->source->uuid) != 0) {
        long i = find_cn(pl, on);
        v->skipped = true;
        v->rule = MIG_PLACE_RULE_NOT_ON_SOURCE;
        v->why = say("VM %s is on CN %s, not on the source %s; plan it from the CN it is on",
                     vm_label(v, label, sizeof(label)), i >= 0 ? pl->p->cns[i].hostname : on,
                     pl->p->source->hostname);
        return;
    }
    place_vm(pl, v, vm);
}

static void planner_clear(struct planner *pl)
{
    free(pl->in);
    free(pl->in_scope);
    mig_intern_clear(&pl->tags);
    free(pl->have);
    free(pl->elig_cn);
    free(pl->elig_ram);
    free(pl->elig_disk);
    free(pl->elig_tags);
    free(pl->elig_any);
    free(pl->need);
    free(pl->none_why);
    free(pl->mate_on);
    mig_spread_clear(&pl->spread);
}

int mig_place_plan(json_t *servers, json_t *vms, const struct mig_place_opts *opts,
                   struct mig_place **out, struct mig_refusal *r)
{
    static const struct mig_place_opts defaults;
    *out = NULL;
    if (!json_is_array(servers) || !json_is_array(vms))
        return MIG_EPARSE;
    struct planner pl = {.opts = opts != NULL ? opts : &defaults};
    struct mig_place *p = pl.p = mig_calloc(1, sizeof(*p));
    read_servers(&pl, servers);
    int rc = find_source(&pl, vms, r);
    if (rc == 0)
        rc = mark_scope(&pl, r);
    if (rc < 0 || p->source == NULL) { /* refused, or no VM: an empty plan */
        planner_clear(&pl);
        if (rc < 0) {
            mig_place_free(p);
            return rc;
        }
        *out = p;
        return 0;
    }
    judge_cns(&pl);
    read_spread(&pl);
    if (pl.nelig == 0)
        explain_none(&pl);

    size_t n = json_array_size(vms);
    struct vm_in *in = mig_calloc(n, sizeof(*in));
    for (size_t i = 0; i < n; i++) {
        json_t *vm = json_array_get(vms, i);
        const char *uuid = str_member(vm, "uuid");
        in[i] = (struct vm_in){.json = vm,
                               .uuid = uuid != NULL ? uuid : "",
                               .ram = vm_ram_mib(vm),
                               .disk = vm_disk_mib(vm),
                               .index = i};
    }
    qsort(in, n, sizeof(*in), cmp_vm);

    p->vms = mig_calloc(n, sizeof(*p->vms));
    p->nvms = n;
    for (size_t i = 0; i < n; i++) {
        struct mig_place_vm *v = &p->vms[i];
        v->uuid = mig_strdup(in[i].uuid);
        v->alias = mig_strdup(str_member(in[i].json, "alias"));
        v->brand = mig_strdup(str_member(in[i].json, "brand"));
        v->ram_mib = in[i].ram;
        v->disk_mib = in[i].disk;
        decide_vm(&pl, v, in[i].json);
        if (v->target != NULL)
            p->nplaced++;
        else if (v->skipped)
            p->nskipped++;
        else
            p->nunplaced++;
    }
    free(in);
    planner_clear(&pl);
    *out = p;
    return 0;
}

void mig_place_free(struct mig_place *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->ncns; i++) {
        free(p->cns[i].uuid);
        free(p->cns[i].hostname);
        free(p->cns[i].why);
    }
    for (size_t i = 0; i < p->nvms; i++) {
        free(p->vms[i].uuid);
        free(p->vms[i].alias);
        free(p->vms[i].brand);
        free(p->vms[i].why);
    }
    free(p->cns);
    free(p->vms);
    free(p);
}
