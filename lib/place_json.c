/*
 * place_json.c: a placement plan as JSON (mig_place_json in place.h), as
 * evacuations record it and the API answers it.
 */
#include <stdlib.h>

#include "invariant.h"
#include "place.h"
#include "util.h"

/*
 * A JSON string of s, or null for NULL.  Our messages cut names at a byte
 * count, which may split a UTF-8 character; jansson refuses such a string,
 * so then every byte outside ASCII becomes '?'.
 */
static json_t *jstr(const char *s)
{
    if (s == NULL)
        return json_null();
    json_t *j = json_string(s);
    if (j == NULL) {
        char *copy = mig_strdup(s);
        for (char *q = copy; *q != '\0'; q++)
            if ((unsigned char)*q >= 0x80)
                *q = '?';
        j = json_string(copy);
        free(copy);
    }
    return j;
}

static void set(json_t *o, const char *key, json_t *v)
{
    if (v == NULL || json_object_set_new(o, key, v) != 0)
        MIG_DIE("out of memory building the placement's %s", key);
}

json_t *mig_place_json(const struct mig_place *p)
{
    json_t *arr = json_array();
    if (arr == NULL)
        MIG_DIE("out of memory");
    for (size_t i = 0; p != NULL && i < p->nvms; i++) {
        const struct mig_place_vm *v = &p->vms[i];
        json_t *o = json_object();
        if (o == NULL)
            MIG_DIE("out of memory");
        set(o, "vm_uuid", jstr(v->uuid));
        set(o, "alias", jstr(v->alias));
        set(o, "brand", jstr(v->brand));
        set(o, "ram", json_integer(v->ram_mib));
        set(o, "disk_mib", json_integer(v->disk_mib));
        set(o, "target_uuid", jstr(v->target != NULL ? v->target->uuid : NULL));
        set(o, "target_hostname", jstr(v->target != NULL ? v->target->hostname : NULL));
        set(o, "skipped", json_boolean(v->skipped));
        set(o, "rule", jstr(v->rule));
        set(o, "why", jstr(v->why));
        if (json_array_append_new(arr, o) != 0)
            MIG_DIE("out of memory");
    }
    return arr;
}
