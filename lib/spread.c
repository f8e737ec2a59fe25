/*
 * spread.c: placement.spread_tag's groups (spread.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spread.h"
#include "util.h"

void mig_spread_init(struct mig_spread *s, const char *tag)
{
    memset(s, 0, sizeof(*s));
    s->tag = tag != NULL && tag[0] != '\0' ? tag : NULL;
}

void mig_spread_clear(struct mig_spread *s)
{
    for (size_t g = 0; g < s->keys.n; g++) {
        for (size_t k = 0; k < s->groups[g].n; k++)
            free(s->groups[g].m[k].who);
        free(s->groups[g].m);
    }
    free(s->groups);
    mig_intern_clear(&s->keys);
    s->groups = NULL;
    s->cap = 0;
}

const char *mig_spread_value(const struct mig_spread *s, json_t *vm, char *buf, size_t size)
{
    if (s->tag == NULL)
        return NULL;
    json_t *v = json_object_get(json_object_get(vm, "tags"), s->tag);
    if (json_is_string(v))
        snprintf(buf, size, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, size, "%g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, size, "%s", json_is_true(v) ? "true" : "false");
    else
        return NULL;
    return buf;
}

long mig_spread_group(struct mig_spread *s, json_t *vm)
{
    char value[256], key[320];
    const char *owner = json_string_value(json_object_get(vm, "owner_uuid"));
    if (owner == NULL || mig_spread_value(s, vm, value, sizeof(value)) == NULL)
        return -1;
    /* A newline cannot be in a uuid: owner and value cannot run into each other. */
    snprintf(key, sizeof(key), "%.64s\n%s", owner, value);
    long g = mig_intern_add(&s->keys, key);
    if ((size_t)g >= s->cap) {
        size_t cap = s->cap == 0 ? 16 : 2 * s->cap;
        s->groups = mig_realloc(s->groups, cap * sizeof(*s->groups));
        memset(s->groups + s->cap, 0, (cap - s->cap) * sizeof(*s->groups));
        s->cap = cap;
    }
    return g;
}

void mig_spread_add(struct mig_spread *s, long group, size_t cn, const char *who)
{
    if (group < 0 || (size_t)group >= s->keys.n)
        return;
    struct mig_spread_group *g = &s->groups[group];
    for (size_t k = 0; k < g->n; k++)
        if (g->m[k].cn == cn && strcmp(g->m[k].who, who) == 0)
            return; /* listed twice (a VM in VMAPI's list and in the plan) */
    if (g->n == g->cap) {
        g->cap = g->cap == 0 ? 4 : 2 * g->cap;
        g->m = mig_realloc(g->m, g->cap * sizeof(*g->m));
    }
    g->m[g->n++] = (struct mig_spread_member){.cn = cn, .who = mig_strdup(who)};
}

const struct mig_spread_group *mig_spread_members(const struct mig_spread *s, long group)
{
    static const struct mig_spread_group none;
    if (group < 0 || (size_t)group >= s->keys.n)
        return &none;
    return &s->groups[group];
}
