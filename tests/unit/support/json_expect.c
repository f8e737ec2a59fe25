/* json_expect.c: the JSON member assertions json_expect.h declares. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "json_expect.h"

/* Whether o's member key is the string want; OUT: *got, the member's string or NULL. */
static bool member_is(const json_t *o, const char *key, const char *want, const char **got)
{
    *got = json_string_value(json_object_get(o, key));
    return *got != NULL && strcmp(*got, want) == 0;
}

/* Fails the test, saying which member held what instead of want. */
static void fail_member(const char *key, const char *got, const char *want)
{
    if (got == NULL)
        fail_msg("member %s: not a string, want \"%s\"", key, want);
    fail_msg("member %s: \"%s\", want \"%s\"", key, got, want);
}

void assert_json_str(const json_t *o, const char *key, const char *want)
{
    const char *got;
    if (!member_is(o, key, want, &got))
        fail_member(key, got, want);
}

void assert_json_strs(const json_t *o, ...)
{
    va_list ap;
    va_start(ap, o);
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *want = va_arg(ap, const char *), *got;
        if (!member_is(o, key, want, &got)) {
            va_end(ap);
            fail_member(key, got, want);
        }
    }
    va_end(ap);
}
