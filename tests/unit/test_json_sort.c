/*
 * test_json_sort.c: the stable sort of a JSON array (lib/json_sort.c) that
 * orders a drain's CNs and an evacuation's plan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "json_sort.h"
#include "unit.h"

/* By "n" alone: rows that tie must keep their order ("tag" tells them apart). */
static bool bigger_n(json_t *x, json_t *y)
{
    return json_integer_value(json_object_get(x, "n")) >
           json_integer_value(json_object_get(y, "n"));
}

static void test_sorts_and_keeps_ties(void **state)
{
    (void)state;
    json_t *a =
        json_loads("[{\"n\":3,\"tag\":\"a\"},{\"n\":1,\"tag\":\"b\"},{\"n\":3,\"tag\":\"c\"},"
                   "{\"n\":2,\"tag\":\"d\"},{\"n\":1,\"tag\":\"e\"}]",
                   0, NULL);
    assert_non_null(a);
    mig_json_sort(a, bigger_n);
    const char *want = "bedac";
    assert_int_equal(json_array_size(a), 5);
    for (size_t i = 0; i < 5; i++) {
        const char *tag = json_string_value(json_object_get(json_array_get(a, i), "tag"));
        assert_non_null(tag);
        assert_int_equal(tag[0], want[i]);
    }
    json_decref(a);
}

static void test_empty_and_one(void **state)
{
    (void)state;
    json_t *a = json_array();
    mig_json_sort(a, bigger_n);
    assert_int_equal(json_array_size(a), 0);
    json_array_append_new(a, json_pack("{s:i}", "n", 7));
    mig_json_sort(a, bigger_n);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(a, 0), "n")), 7);
    json_decref(a);
}

UNIT_TEST_MAIN(NULL, NULL,
               cmocka_unit_test(test_sorts_and_keeps_ties),
               cmocka_unit_test(test_empty_and_one))
