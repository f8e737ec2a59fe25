/*
 * json_sort.h: a stable sort of a JSON array in place.  migd sorts a few
 * dozen rows at most (a drain's CNs, an evacuation's VMs), so an insertion
 * sort does, and keeps rows that tie in the order they came.
 */
#ifndef MIG_JSON_SORT_H
#define MIG_JSON_SORT_H

#include <jansson.h>
#include <stdbool.h>

/* Sorts array a so that no item stands before one it comes after (after(x, y): x goes after y). */
void mig_json_sort(json_t *a, bool (*after)(json_t *x, json_t *y));

#endif
