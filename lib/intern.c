/*
 * intern.c: strings to small ids (intern.h), by open addressing.
 */
#include <stdlib.h>
#include <string.h>

#include "intern.h"
#include "util.h"

/* FNV-1a: the names are short and few, anything even will do. */
static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The slot where name is, or the empty slot where it would go. */
static size_t slot_of(const struct mig_intern *t, const char *name)
{
    size_t mask = t->nslots - 1;
    size_t i = hash_str(name) & mask;
    while (t->slots[i] != 0 && strcmp(t->names[t->slots[i] - 1], name) != 0)
        i = (i + 1) & mask;
    return i;
}

long mig_intern_find(const struct mig_intern *t, const char *name)
{
    if (t->nslots == 0)
        return -1;
    uint32_t v = t->slots[slot_of(t, name)];
    return v == 0 ? -1 : (long)v - 1;
}

long mig_intern_add(struct mig_intern *t, const char *name)
{
    long id = mig_intern_find(t, name);
    if (id >= 0)
        return id;
    if (2 * (t->n + 1) > t->nslots) { /* keep the table at most half full */
        size_t nslots = t->nslots == 0 ? 16 : 2 * t->nslots;
        free(t->slots);
        t->slots = mig_calloc(nslots, sizeof(*t->slots));
        t->nslots = nslots;
        for (size_t k = 0; k < t->n; k++)
            t->slots[slot_of(t, t->names[k])] = (uint32_t)k + 1;
    }
    if (t->n == t->cap) {
        t->cap = t->cap == 0 ? 16 : 2 * t->cap;
        t->names = mig_realloc(t->names, t->cap * sizeof(*t->names));
    }
    t->names[t->n] = mig_strdup(name);
    t->slots[slot_of(t, name)] = (uint32_t)t->n + 1;
    return (long)t->n++;
}

void mig_intern_clear(struct mig_intern *t)
{
    for (size_t k = 0; k < t->n; k++)
        free(t->names[k]);
    free(t->names);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}
