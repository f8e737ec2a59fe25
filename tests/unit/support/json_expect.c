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

/* Fails the test at file:line, saying which member held what instead of want. */
static void fail_member(const char *file, int line, const char *key, const char *got,
                        const char *want)
{
    if (got == NULL)
        print_error("member %s: not a string, want \"%s\"\n", key, want);
    else
        print_error("member %s: \"%s\", want \"%s\"\n", key, got, want);
    _fail(file, line);
}

void json_expect_str(const char *file, int line, const json_t *o, const char *key,
                     const char *want)
{
    const char *got;
    if (!member_is(o, key, want, &got))
        fail_member(file, line, key, got, want);
}

void json_expect_strs(const char *file, int line, const json_t *o, ...)
{
    va_list ap;
    va_start(ap, o);
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *want = va_arg(ap, const char *), *got;
        if (!member_is(o, key, want, &got)) {
            va_end(ap);
            fail_member(file, line, key, got, want);
        }
    }
    va_end(ap);
}
