/*
 * keygen.h: a key pair made for one direct-transfer job.  ssh-keygen (on
 * the head node, as on SmartOS) writes it in OpenSSH's own format, the one
 * the source CN's ssh client reads; migd keeps it in the job's record only
 * until the job ends.
 */
#ifndef MIG_KEYGEN_H
#define MIG_KEYGEN_H

#include <stddef.h>

/*
 * A new ed25519 key pair with comment: the private key file's text into
 * priv (privsz bytes), the public key's base64 (68 characters) into pub
 * (pubsz >= 69).  Runs ssh-keygen (from PATH, or MIGD_SSH_KEYGEN) and waits
 * for it (a few milliseconds).  0, or MIG_EREMOTE with err saying why.
 */
int mig_keygen_ed25519(const char *comment, char *priv, size_t privsz, char *pub, size_t pubsz,
                       char *err, size_t errsz);

#endif
