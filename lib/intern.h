/*
 * intern.h: a table of strings to small ids (0, 1, ...), so that sets of
 * names become bitsets and lookups become integer compares.  The placement
 * planner interns NIC tags this way, and spread groups (spread.h).
 */
#ifndef MIG_INTERN_H
#define MIG_INTERN_H

#include <stddef.h>
#include <stdint.h>

struct mig_intern {
    char **names;    /* id -> name, owned */
    size_t n, cap;   /* ids in use, room in names */
    uint32_t *slots; /* id + 1, or 0 for an empty slot; nslots is a power of two */
    size_t nslots;
};

/* The id of name, or -1 when it was never added.  A zeroed table is empty. */
long mig_intern_find(const struct mig_intern *t, const char *name);
/* The id of name, added when new. */
long mig_intern_add(struct mig_intern *t, const char *name);
/* Frees what t holds and leaves it empty. */
void mig_intern_clear(struct mig_intern *t);

#endif
