/* json_sort.c: a stable sort of a JSON array in place (json_sort.h). */
#include "json_sort.h"

void mig_json_sort(json_t *a, bool (*after)(json_t *x, json_t *y))
{
    size_t n = json_array_size(a);
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0; j--) {
            json_t *x = json_array_get(a, j - 1), *y = json_array_get(a, j);
            if (!after(x, y))
                break;
            /* x keeps a reference across the two sets: the first drops the array's. */
            json_incref(x);
            json_array_set(a, j - 1, y);
            json_array_set_new(a, j, x);
        }
    }
}
