/*
 * job_fixture.h: what the job tests share (test_job.c, test_job_record.c):
 * the members their "every member set" jobs set alike, one comparison of two
 * jobs member by member, and the record's text written and read back.
 */
#ifndef MIGD_TEST_JOB_FIXTURE_H
#define MIGD_TEST_JOB_FIXTURE_H

#include "job.h"

/*
 * Sets on job the members both tests' full jobs give the same values (vm,
 * CNs, progress, times, flags, round log, downtime breakdown, and the ctx's
 * addresses, datasets, first NIC and switch state); each test then sets the
 * members its own fixture gives values of its own (uuid, alias, brand, mode,
 * state, error, images, ...).
 */
void job_fixture_fill(struct mig_job *job);

/* Every member of the two jobs is the same (ctx included); NULL strings compare as pointers. */
void assert_jobs_equal(const struct mig_job *a, const struct mig_job *b);

/* Every member of the two leftovers is the same. */
void assert_leftovers_equal(const struct mig_leftover *x, const struct mig_leftover *y);

/* The record's text, as the store writes it (json_dumps JSON_COMPACT). */
char *record_text(const struct mig_job *job);

/* A job loaded from a record's text; fails the test when it does not load. */
struct mig_job *record_load(const char *text);

/*
 * The job job's record text loads back to, after checking that it equals job
 * member by member (assert_jobs_equal); the caller frees it.
 */
struct mig_job *record_round_trip(const struct mig_job *job);

#endif
