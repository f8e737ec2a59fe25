/*
 * migctl.h: what every part of migctl shares: its exit statuses (see
 * migctl.c for what each means to an operator).
 */
#ifndef MIGCTL_MIGCTL_H
#define MIGCTL_MIGCTL_H

/* 0 success, 1 the operation failed or was refused, 2 bad usage. */
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

#endif
