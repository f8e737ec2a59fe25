/*
 * json_expect.h: assertions on the members of a JSON object (the API's and
 * the record's JSON), each failure naming the member and what it held.
 */
#ifndef MIGD_TEST_JSON_EXPECT_H
#define MIGD_TEST_JSON_EXPECT_H

#include <jansson.h>

/*
 * Fails the test at the caller's line, naming key, unless the object o has a
 * member key that is the string want.
 */
#define assert_json_str(o, key, want) json_expect_str(__FILE__, __LINE__, o, key, want)

/*
 * assert_json_str(o, key, want) for each key, want pair of the list, which
 * ends with a NULL key: assert_json_strs(o, "state", "queued", NULL).
 */
#define assert_json_strs(o, ...) json_expect_strs(__FILE__, __LINE__, o, __VA_ARGS__)

/* What the two macros call, with the caller's file and line. */
void json_expect_str(const char *file, int line, const json_t *o, const char *key,
                     const char *want);
void json_expect_strs(const char *file, int line, const json_t *o, ...);

#endif
