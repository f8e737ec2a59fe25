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
 * Where key pairs are made from now on: a private directory
 * "migd-key.XXXXXX" (mkdtemp, 0700) inside dir, removed before each key's
 * return (default: /tmp).  migd sets it at start to its database's
 * directory, which only it uses (it holds the database's lock), so that a
 * start can tell its own leftovers from another process's.  Call it before
 * any key is made (it is not synchronized).  0, or -ENAMETOOLONG.
 */
int mig_keygen_set_dir(const char *dir);
/*
 * Removes the key directories a crash left in dir (NULL: the directory set
 * above): entries named "migd-key." and 6 letters or digits that are
 * directories (a symbolic link is not followed) owned by this user; their
 * files are unlinked, then the directory removed.  Logs each one removed
 * (info) and each one that cannot be (warning).  Returns how many were
 * removed, or a negative errno when dir cannot be read.
 */
int mig_keygen_sweep(const char *dir);

/*
 * A new ed25519 key pair with comment: the private key file's text into
 * priv (privsz bytes), the public key's base64 (68 characters) into pub
 * (pubsz >= 69).  Runs ssh-keygen (from PATH, or MIGD_SSH_KEYGEN) and waits
 * for it (a few milliseconds).  0, or MIG_EREMOTE with err saying why.
 */
int mig_keygen_ed25519(const char *comment, char *priv, size_t privsz, char *pub, size_t pubsz,
                       char *err, size_t errsz);

#endif
