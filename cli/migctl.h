/*
 * migctl.h: what every part of migctl shares: its exit statuses (see
 * migctl.c for what each means to an operator).
 */
#ifndef MIGCTL_MIGCTL_H
#define MIGCTL_MIGCTL_H

/* 0 success, 1 the operation failed or was refused, 2 bad usage. */
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

/* -j output: one JSON text, pretty (show, status) or on one line (list, log). */
void print_json(json_t *j, bool one_line);

/*
 * An answer of migd: as -j prints it (print_json, pretty), or for people:
 * human(stdout, an out_escaped copy of j).  j stays the caller's.
 */
void print_answer(json_t *j, bool json, void (*human)(FILE *f, json_t *esc));

/* The commands in files of their own (cmd_NAME.c). */
int cmd_migrate(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_evacuate(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
/*
 * POST /jobs/UUID?action=ACTION for a resolved job (resolve.h; the
 * reference is taken); prints migd's sentence.  An exit status.
 */
int post_action(json_t *job, const char *action);
/* An evacuation, a drain, its plan or an estimate: as JSON, or for people. */
void print_evacuation(json_t *ev, bool json);
/*
 * Asks migd (method, path, no body) for an evacuation, a drain or an
 * estimate and prints the answer as print_evacuation.  Returns as
 * client_call.
 */
int call_evacuation(const char *method, const char *path, bool json);

/* Long options' keys, one range per command file. */
enum { OPT_CLEANUP_SOURCE = 256, OPT_TRANSFER, OPT_LIMIT, OPT_MIN_UP, OPT_CLEANUP_AFTER,
       OPT_CANCEL_TIMER, OPT_FIX, OPT_WINDOW };

#endif
