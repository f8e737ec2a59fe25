/*
 * known_hosts.h: the lines of the head node's known_hosts that hold a host's
 * keys, for a direct transfer: the source CN's ssh client is given exactly
 * what the head node trusts for the target (cn-commands.md), never
 * StrictHostKeyChecking=no.
 */
#ifndef MIG_KNOWN_HOSTS_H
#define MIG_KNOWN_HOSTS_H

#include <stddef.h>

/*
 * Every key the OpenSSH known_hosts file at path holds for host (an
 * address, as the CN is reached) on port, hashed entries included, as
 * known_hosts lines "NAME TYPE KEY\n" under the name ssh looks up (host for
 * port 22, else "[host]:port") into *out (malloc'd).  0; -ENOENT when the file has no key for host; MIG_EHOSTKEY
 * when the file cannot be read; err says which in one line.
 */
int mig_known_host_lines(const char *path, const char *host, int port, char **out, char *err,
                         size_t errsz);

#endif
