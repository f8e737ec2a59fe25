/*
 * spread.h: placement.spread_tag's groups.  Instances of one owner that
 * share a value of the tag (e.g. tags.role = "db") form a group; the
 * planner never puts two members of a group on one CN.  This records which
 * CNs already run a member (from VMAPI's list of every active VM, then from
 * the plan's own choices) and names them for the plan's reasons.  Pure.
 */
#ifndef MIG_SPREAD_H
#define MIG_SPREAD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "intern.h"

struct mig_spread_member {
    size_t cn; /* the caller's index of the CN that runs it */
    char *who; /* its alias, else its uuid; owned */
};

struct mig_spread_group {
    struct mig_spread_member *m;
    size_t n, cap;
};

struct mig_spread {
    const char *tag;              /* borrowed; NULL or "": no spreading */
    struct mig_intern keys;       /* "owner value" -> group id */
    struct mig_spread_group *groups;
    size_t cap;
};

/* Starts empty; tag is borrowed (NULL or "": every VM is in no group). */
void mig_spread_init(struct mig_spread *s, const char *tag);
void mig_spread_clear(struct mig_spread *s);

/*
 * The value of the tag on vm as text (a string as is, a number or boolean
 * written out) into buf; NULL when vm has no such tag or it is not a
 * scalar.
 */
const char *mig_spread_value(const struct mig_spread *s, json_t *vm, char *buf, size_t size);

/* The group of vm (its owner_uuid and tag value), made when new; -1 when it has none. */
long mig_spread_group(struct mig_spread *s, json_t *vm);

/* Records that a member of group (who: its alias or uuid) runs on cn. */
void mig_spread_add(struct mig_spread *s, long group, size_t cn, const char *who);

/* The members of group, in the order they were added; empty for -1. */
const struct mig_spread_group *mig_spread_members(const struct mig_spread *s, long group);

#endif
