/*
 * unit.h: what the unit tests would otherwise each write again: a main() that
 * runs the file's cmocka tests as one group, the count of a table's cases, and
 * a file written in one call.
 */
#ifndef MIGD_TEST_UNIT_H
#define MIGD_TEST_UNIT_H

/*
 * Defines main(): runs the tests given after group_setup and group_teardown
 * (cmocka_unit_test(...) entries, in order) as one cmocka group, calling
 * group_setup before the first and group_teardown after the last (either may
 * be NULL), and returns cmocka's count of failed tests.  Include <cmocka.h>
 * first.
 */
#define UNIT_TEST_MAIN(group_setup, group_teardown, ...)                                           \
    int main(void)                                                                                 \
    {                                                                                              \
        const struct CMUnitTest tests[] = {__VA_ARGS__};                                           \
        return cmocka_run_group_tests(tests, group_setup, group_teardown);                         \
    }

/* The number of elements of the array a (an array, not a pointer). */
#define UNIT_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Writes the printf-style text to path, replacing what it held (created
 * 0666 & ~umask); fails the test, naming path, when it cannot.
 */
void unit_write_file(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
