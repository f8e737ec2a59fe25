/*
 * json_expect.h: assertions on the members of a JSON object (the API's and
 * the record's JSON), each failure naming the member and what it held.
 */
#ifndef MIGD_TEST_JSON_EXPECT_H
#define MIGD_TEST_JSON_EXPECT_H

#include <jansson.h>

/*
 * Fails the test, naming key, unless the object o has a member key that is
 * the string want.
 */
void assert_json_str(const json_t *o, const char *key, const char *want);

/*
 * assert_json_str(o, key, want) for each key, want pair of the list, which
 * ends with a NULL key: assert_json_strs(o, "state", "queued", NULL).
 */
void assert_json_strs(const json_t *o, ...);

#endif
