/*
 * cn_direct.c: the commands of direct transfer (cn.h, cn-commands.md
 * "Direct transfer"): the job's authorized_keys line and its forced
 * command, the locked edits that add and remove that line on the target,
 * the job's directory /var/tmp/migd-JOB on the source, and the send that
 * pipes into ssh with only the job's files.  Every argument is checked and
 * quoted as in cn.c.
 */
#include <errno.h>
#include <string.h>

#include "cn.h"
#include "cn_int.h"
#include "util.h"

/* An IPv4 or IPv6 address as CNAPI gives an admin IP: hex digits, '.', ':'. */
static bool ip_char(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F') ||
           ch == '.' || ch == ':';
}

static bool ip_valid(const char *s)
{
    return cn_token_valid(s, 45, ip_char) && (strchr(s, '.') != NULL || strchr(s, ':') != NULL);
}

/* The base64 of an ssh-ed25519 public key blob: 68 characters. */
static bool b64_char(char ch)
{
    return cn_alnum(ch) || ch == '+' || ch == '/' || ch == '=';
}

static bool ed25519_key_valid(const char *s)
{
    return s != NULL && strlen(s) == 68 && strncmp(s, "AAAAC3NzaC1lZDI1NTE5", 20) == 0 &&
           cn_token_valid(s, 68, b64_char);
}

/* A user name for ssh: [a-z_][a-z0-9_-]*, as useradd allows. */
/* A cipher, or ssh's comma-separated list of them in order of preference. */
static bool cipher_char(char ch)
{
    return cn_prop_char(ch) || ch == ',';
}

static bool user_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

/* "zfs receive -u -F DS": the one command the job's key runs (cn.h). */
int mig_direct_receive(const char *dataset, char *out, size_t outsz)
{
    if (!mig_dataset_valid(dataset) || cn_pool_valid(dataset))
        return -EINVAL;
    int n = snprintf(out, outsz, "zfs receive -u -F %s", dataset);
    return n > 0 && (size_t)n < outsz ? 0 : -ENAMETOOLONG;
}

/*
 * The forced command: the client's command must be exactly one of the job's
 * receives, and then that literal command runs (never the client's text).
 * Dataset names are [A-Za-z0-9/._:-] (mig_dataset_valid): nothing in them is
 * special to a shell, nor to the quotes of the authorized_keys option.
 */
static int forced_command(const struct mig_direct_key *k, char *out, size_t outsz)
{
    size_t len = 0;
    int n = snprintf(out, outsz, "case $SSH_ORIGINAL_COMMAND in");
    for (int i = 0; n > 0 && (size_t)n < outsz - len && i < k->ndatasets; i++) {
        char recv[300];
        len += (size_t)n;
        if (mig_direct_receive(k->datasets[i], recv, sizeof(recv)) != 0)
            return -EINVAL;
        n = snprintf(out + len, outsz - len, " '%s') exec %s;;", recv, recv);
    }
    if (n > 0 && (size_t)n < outsz - len) {
        len += (size_t)n;
        n = snprintf(out + len, outsz - len, " *) echo migd: refused >&2; exit 1;; esac");
    }
    return n > 0 && (size_t)n < outsz - len ? 0 : -ENAMETOOLONG;
}

int mig_direct_key_line(const struct mig_direct_key *k, char *out, size_t outsz)
{
    char cmd[4096];
    if (!mig_uuid_valid(k->job_uuid) || !ip_valid(k->src_ip) ||
        !ed25519_key_valid(k->pubkey_b64) || k->ndatasets < 1 ||
        k->ndatasets > MIG_DIRECT_MAX_DATASETS || k->datasets == NULL)
        return -EINVAL;
    int rc = forced_command(k, cmd, sizeof(cmd));
    if (rc != 0)
        return rc;
    int n = snprintf(out, outsz,
                     "restrict,from=\"%s\",command=\"%s\",no-pty,no-port-forwarding,"
                     "no-agent-forwarding,no-X11-forwarding ssh-ed25519 %s migd-job-%s",
                     k->src_ip, cmd, k->pubkey_b64, k->job_uuid);
    return n > 0 && (size_t)n < outsz ? 0 : -ENAMETOOLONG;
}

/*
 * The start of every edit of authorized_keys: the file, a temporary copy
 * next to it (so the mv is a rename within one directory), and the CN's
 * lock.  The lock is a directory (mkdir is atomic everywhere; illumos has
 * no flock(1)) holding the pid of the shell that holds it.  A waiter
 * polls every 0.1 s (illumos' sleep takes fractions, see sleep(1)) for
 * about 30 s; a lock whose holder is dead, or that held no pid for 5 s
 * (its holder died before writing it), is moved aside and removed.  The
 * EXIT trap releases the lock and the copy on every way out.
 */
#define AK_BEGIN                                                                                   \
    "umask 077; LC_ALL=C; export LC_ALL; d=\"$HOME/.ssh\"; f=\"$d/authorized_keys\"; "             \
    "L=\"$d/.migd-lock\"; t=\"$f.migd-$$\"; "                                                      \
    "[ -d \"$d\" ] || mkdir -m 700 \"$d\" || exit 1; n=0; e=0; "                                   \
    "until mkdir \"$L\" 2>/dev/null; do p=$(cat \"$L/pid\" 2>/dev/null); n=$((n+1)); "            \
    "if [ -n \"$p\" ]; then e=0; else e=$((e+1)); fi; "                                            \
    "if { [ -n \"$p\" ] && ! kill -0 \"$p\" 2>/dev/null; } || [ $e -gt 50 ]; then "               \
    "mv \"$L\" \"$L.$$\" 2>/dev/null && rm -rf \"$L.$$\"; e=0; fi; "                               \
    "[ $n -le 300 ] || { echo \"migd: $L is held by ${p:-nobody}\" >&2; exit 1; }; "              \
    "sleep 0.1 2>/dev/null || sleep 1; done; "                                                     \
    "trap 'rm -rf \"$L\" \"$t\"' EXIT; trap 'exit 1' HUP INT TERM; echo $$ > \"$L/pid\"; "

/* Builds AK_BEGIN, l='LINE', then body: the line in $l, never expanded again. */
static char *ak_command(const struct mig_direct_key *k, const char *body)
{
    char line[4608], q[CMD_MAX];
    if (mig_direct_key_line(k, line, sizeof(line)) != 0)
        return NULL;
    q[0] = '\0';
    if (mig_shell_quote_append(q, sizeof(q), line) < 0)
        return NULL;
    return mig_asprintf(AK_BEGIN "l=%s; %s", q, body);
}

/*
 * Adds the line once: a copy of the file, a newline first when its last
 * byte is not one ($(...) drops a trailing newline, so a non-empty
 * tail -c 1 means another byte), the line unless present, mv, and a count
 * of exactly 1 in the file afterwards.
 */
char *mig_cmd_authorize_key(const struct mig_direct_key *k)
{
    return ak_command(
        k, "if [ -f \"$f\" ]; then cp \"$f\" \"$t\" || exit 1; else : > \"$t\" || exit 1; fi; "
           "if [ -s \"$t\" ] && [ -n \"$(tail -c 1 \"$t\")\" ]; then echo >> \"$t\" || exit 1; fi; "
           "[ \"$(grep -c -x -F -e \"$l\" \"$t\")\" -gt 0 ] || printf '%s\\n' \"$l\" >> \"$t\" || "
           "exit 1; mv \"$t\" \"$f\" || exit 1; c=$(grep -c -x -F -e \"$l\" \"$f\"); "
           "[ \"$c\" = 1 ] || { echo \"migd: the job's line is in $f ${c:-?} times\" >&2; exit 1; }");
}

/*
 * Removes the line: grep -v -x -F keeps every line that is not exactly it;
 * the copy must hold all lines but those (grep -c '' counts a last line
 * without its newline too), else the file stays as it is and the command
 * fails; a count of 0 in the file afterwards.
 */
char *mig_cmd_unauthorize_key(const struct mig_direct_key *k)
{
    return ak_command(
        k, "[ -f \"$f\" ] || exit 0; k=$(grep -c -x -F -e \"$l\" \"$f\"); "
           "if [ \"${k:-0}\" -gt 0 ]; then a=$(grep -c '' \"$f\"); "
           "grep -v -x -F -e \"$l\" \"$f\" > \"$t\"; [ $? -le 1 ] || exit 1; "
           "[ \"$(grep -c '' \"$t\")\" -eq $((a - k)) ] || "
           "{ echo \"migd: $f would lose other lines; left as it is\" >&2; exit 1; }; "
           "mv \"$t\" \"$f\" || exit 1; fi; c=$(grep -c -x -F -e \"$l\" \"$f\"); "
           "[ \"$c\" = 0 ] || { echo \"migd: the job's line is still in $f\" >&2; exit 1; }");
}

/*
 * Removes every line of job_uuid's key, whatever the rest of the line
 * (migctl doctor --fix: the key itself is gone with the job): the lines
 * that end in " migd-job-JOB", under the same lock and with the same
 * checks as mig_cmd_unauthorize_key.
 */
char *mig_cmd_unauthorize_job(const char *job_uuid)
{
    if (!mig_uuid_valid(job_uuid))
        return NULL;
    return mig_asprintf(
        AK_BEGIN "p=' migd-job-%s$'; [ -f \"$f\" ] || exit 0; k=$(grep -c -e \"$p\" \"$f\"); "
                 "if [ \"${k:-0}\" -gt 0 ]; then a=$(grep -c '' \"$f\"); "
                 "grep -v -e \"$p\" \"$f\" > \"$t\"; [ $? -le 1 ] || exit 1; "
                 "[ \"$(grep -c '' \"$t\")\" -eq $((a - k)) ] || "
                 "{ echo \"migd: $f would lose other lines; left as it is\" >&2; exit 1; }; "
                 "mv \"$t\" \"$f\" || exit 1; fi; c=$(grep -c -e \"$p\" \"$f\"); "
                 "[ \"$c\" = 0 ] || { echo \"migd: the job's line is still in $f\" >&2; exit 1; }",
        job_uuid);
}

/* "mkdir -m 700 /var/tmp/migd-JOB" */
char *mig_cmd_job_dir_create(const char *job_uuid)
{
    struct cmd c = {0};
    cn_cmd_lit(&c, "mkdir -m 700");
    cn_cmd_argf(&c, mig_uuid_valid(job_uuid), "/var/tmp/migd-%s", job_uuid);
    return cn_cmd_done(&c);
}

/* "umask 077 && cat > '/var/tmp/migd-JOB/NAME'": the file comes on stdin. */
char *mig_cmd_job_file_write(const char *job_uuid, const char *name)
{
    struct cmd c = {0};
    bool ok = mig_uuid_valid(job_uuid) && name != NULL &&
              (strcmp(name, "id") == 0 || strcmp(name, "known_hosts") == 0);
    cn_cmd_lit(&c, "umask 077 && cat >");
    cn_cmd_argf(&c, ok, "/var/tmp/migd-%s/%s", ok ? job_uuid : "", ok ? name : "");
    return cn_cmd_done(&c);
}

/* "rm -rf '/var/tmp/migd-JOB'" */
char *mig_cmd_job_dir_remove(const char *job_uuid)
{
    struct cmd c = {0};
    cn_cmd_lit(&c, "rm -rf");
    cn_cmd_argf(&c, mig_uuid_valid(job_uuid), "/var/tmp/migd-%s", job_uuid);
    return cn_cmd_done(&c);
}

/*
 * "zfs send -R -v [-I 'FROM'] 'DS@SNAP' | ssh -F /dev/null -T -b 'SRC_IP'
 *  -i '/var/tmp/migd-JOB/id' -o IdentitiesOnly=yes -o GlobalKnownHostsFile=/dev/null
 *  -o 'UserKnownHostsFile=/var/tmp/migd-JOB/known_hosts' -o StrictHostKeyChecking=yes
 *  -o BatchMode=yes [-p PORT] [-c CIPHER] 'USER@DST_IP' 'zfs receive -u -F DS'"
 * -F /dev/null: none of the source's ssh_config (a Host block could add
 * identities, a ProxyCommand, other known_hosts); only the job's key and
 * the host keys the head node wrote.
 */
char *mig_cmd_zfs_send_direct(const struct mig_direct_send *d)
{
    struct cmd c = {0};
    char recv[300];
    bool job_ok = mig_uuid_valid(d->job_uuid);
    cn_cmd_lit(&c, d->compressed ? "zfs send -R -c -v" : "zfs send -R -v");
    if (d->from != NULL) {
        cn_cmd_lit(&c, "-I");
        cn_cmd_arg(&c, d->from, cn_from_snapshot_valid(d->from));
    }
    bool ok = mig_dataset_valid(d->dataset) && mig_snapname_valid(d->snap);
    cn_cmd_argf(&c, ok, "%s@%s", ok ? d->dataset : "", ok ? d->snap : "");
    cn_cmd_lit(&c, "| ssh -F /dev/null -T -b");
    cn_cmd_arg(&c, d->src_ip, ip_valid(d->src_ip));
    cn_cmd_lit(&c, "-i");
    cn_cmd_argf(&c, job_ok, "/var/tmp/migd-%s/id", job_ok ? d->job_uuid : "");
    cn_cmd_lit(&c, "-o IdentitiesOnly=yes -o GlobalKnownHostsFile=/dev/null -o");
    cn_cmd_argf(&c, job_ok, "UserKnownHostsFile=/var/tmp/migd-%s/known_hosts",
                job_ok ? d->job_uuid : "");
    cn_cmd_lit(&c, "-o StrictHostKeyChecking=yes -o BatchMode=yes");
    if (d->port != 22) {
        char port[16];
        snprintf(port, sizeof(port), "%d", d->port);
        cn_cmd_lit(&c, "-p");
        cn_cmd_arg(&c, port, d->port > 0 && d->port < 65536);
    }
    if (d->cipher != NULL) {
        cn_cmd_lit(&c, "-c");
        cn_cmd_arg(&c, d->cipher, cn_token_valid(d->cipher, 96, cipher_char));
    }
    bool dst_ok = ip_valid(d->dst_ip) && cn_token_valid(d->user, 32, user_char);
    cn_cmd_argf(&c, dst_ok, "%s@%s", dst_ok ? d->user : "", dst_ok ? d->dst_ip : "");
    cn_cmd_arg(&c, recv, mig_direct_receive(d->dataset, recv, sizeof(recv)) == 0);
    return cn_cmd_done(&c);
}
