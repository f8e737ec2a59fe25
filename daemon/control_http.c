/*
 * control_http.c: what every part of the control API uses to read a request
 * and to answer it: the text a message may echo (UTF-8 or %XX), the JSON
 * answers and the {code, message} errors as Triton's services answer them
 * (each refusal logged at info with its rule), the checks of a request's
 * path and query, and how an engine's error maps to a status.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "control_int.h"
#include "err.h"
#include "log.h"
#include "util.h"

/* ---- text: UTF-8 and what may be echoed ---- */

/* Length of the valid UTF-8 sequence at s (len bytes left), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned ch = s[0];
    size_t n;
    uint32_t cp;
    if (ch < 0x80)
        return 1;
    if (ch < 0xc2)
        return 0; /* a continuation byte, or an overlong 2-byte form */
    if (ch < 0xe0) {
        n = 2;
        cp = ch & 0x1f;
    } else if (ch < 0xf0) {
        n = 3;
        cp = ch & 0x0f;
    } else if (ch < 0xf5) {
        n = 4;
        cp = ch & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* True when s[0..len) is UTF-8 as JSON requires it (what jansson accepts). */
static bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* Replaces each byte of s (a C string) that is not part of valid UTF-8 with '?'. */
static void utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0) {
            p[i++] = '?';
            continue;
        }
        i += n;
    }
}

/* Printable ASCII and UTF-8 as they are, other bytes as %XX (control_int.h). */
void control_echo(const char *s, size_t len, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, limit = outsz < ECHO_MAX + 4 ? outsz - 4 : ECHO_MAX;
    for (size_t i = 0; i < len;) {
        size_t n = p[i] >= 0x20 && p[i] < 0x7f ? 1 : p[i] >= 0x80 ? utf8_seq(p + i, len - i) : 0;
        size_t need = n != 0 ? n : 3;
        if (o + need > limit) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (n != 0) {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        } else {
            out[o++] = '%';
            out[o++] = hex[p[i] >> 4];
            out[o++] = hex[p[i] & 15];
            i++;
        }
    }
    out[o] = '\0';
}

/* ---- responses ---- */

const char *control_status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 417:
        return "Expectation Failed";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return status >= 500 ? "Internal Server Error" : "Bad Request";
    }
}

/* At info, or warn for migd's own failures (control_int.h). */
void control_log_refusal(h2o_iovec_t method, h2o_iovec_t path, const char *job_uuid, int status,
                         const char *code, const char *msg)
{
    char m[32], p[ECHO_MAX + 8];
    control_echo(method.base, method.base != NULL ? method.len : 0, m, sizeof(m));
    control_echo(path.base, path.base != NULL ? path.len : 0, p, sizeof(p));
    mig_log(status >= 500 && status != 503 ? MIG_LOG_WARN : MIG_LOG_INFO, job_uuid, NULL,
            "request refused: %s %s: %d %s: %s", m[0] != '\0' ? m : "-", p[0] != '\0' ? p : "-",
            status, code, msg);
}

/* Sends body (a string of len bytes) as the whole response. */
void control_respond_text(h2o_req_t *req, int status, const char *type, const char *body,
                          size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t buf = h2o_strdup(&req->pool, body, len);

    req->res.status = status;
    req->res.reason = control_status_reason(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_start_response(req, &generator);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}

/* Sends body (stolen) as JSON followed by a newline. */
void control_respond_json(h2o_req_t *req, int status, json_t *body)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    if (text == NULL) {
        /* Every string in an answer is valid UTF-8 (see control_respond_error): out of memory. */
        static const char oom[] =
            "{\"code\":\"InternalError\",\"message\":\"cannot encode the answer\"}\n";
        control_respond_text(req, 500, "application/json", oom, sizeof(oom) - 1);
        return;
    }
    size_t len = strlen(text);
    char *line = h2o_mem_alloc_pool(&req->pool, len + 1);
    memcpy(line, text, len);
    line[len] = '\n';
    free(text);
    control_respond_text(req, status, "application/json", line, len + 1);
}

/* A {code, message} answer, logged (control_int.h). */
void control_respond_error_job(h2o_req_t *req, const char *job_uuid, int status, const char *code,
                               const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(msg)) {
        /* Cut: drop the partial character the cut may have left. */
        size_t end = strlen(msg);
        size_t start = end;
        while (start > 0 && ((unsigned char)msg[start - 1] & 0xc0) == 0x80)
            start--;
        if (start > 0 && (unsigned char)msg[start - 1] >= 0xc0 &&
            utf8_seq((unsigned char *)msg + start - 1, end - start + 1) == 0)
            msg[start - 1] = '\0';
    }
    utf8_scrub(msg);
    control_log_refusal(req->method, req->path, job_uuid, status, code, msg);
    control_respond_json(req, status, json_pack("{s:s, s:s}", "code", code, "message", msg));
}

/* ---- request parsing ---- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/*
 * Percent-decodes s[0..len) ('+' is a space) into a pool string (*outlen
 * bytes); NULL when an escape is malformed.  NUL bytes are kept: callers
 * refuse them.
 */
static char *url_decode(h2o_mem_pool_t *pool, const char *s, size_t len, size_t *outlen)
{
    char *out = h2o_mem_alloc_pool(pool, len + 1), *p = out;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
                return NULL;
            *p++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *p++ = s[i] == '+' ? ' ' : s[i];
        }
    }
    *p = '\0';
    *outlen = (size_t)(p - out);
    return out;
}

/* 0 when s is UTF-8 without NUL; else -EINVAL once a 400 named what (the path, the query). */
static int check_text(h2o_req_t *req, const char *s, size_t len, const char *what)
{
    if (!utf8_valid(s, len)) {
        control_respond_error(req, 400, "InvalidArgument", "%s is not valid UTF-8", what);
        return -EINVAL;
    }
    if (memchr(s, '\0', len) != NULL) {
        control_respond_error(req, 400, "InvalidArgument", "%s holds a NUL byte", what);
        return -EINVAL;
    }
    return 0;
}

/* The path and the query must be UTF-8 without NUL (control_int.h). */
int control_check_request_text(h2o_req_t *req)
{
    if (check_text(req, req->path_normalized.base, req->path_normalized.len, "the path") != 0)
        return -EINVAL;
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *q = req->path.base + req->query_at + 1;
    size_t qlen = req->path.len - req->query_at - 1;
    size_t dlen;
    char *decoded = url_decode(&req->pool, q, qlen, &dlen);
    if (decoded == NULL) {
        control_respond_error(req, 400, "InvalidArgument",
                              "malformed query string (a bad %%-escape)");
        return -EINVAL;
    }
    /* UTF-8 split at ASCII '&' and '=' stays UTF-8: checking the whole checks each part. */
    return check_text(req, decoded, dlen, "the query string");
}

/* The query string into params, refusing names not in it (control_int.h). */
int control_parse_query(h2o_req_t *req, struct query_param *params)
{
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *q = req->path.base + req->query_at + 1;
    const char *end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp != NULL ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        const char *kend = eq != NULL ? eq : stop;
        if (kend > q) {
            size_t kl, vl;
            char *key = url_decode(&req->pool, q, (size_t)(kend - q), &kl);
            char *val = eq != NULL ? url_decode(&req->pool, eq + 1, (size_t)(stop - eq - 1), &vl)
                                   : url_decode(&req->pool, "", 0, &vl);
            if (key == NULL || val == NULL) {
                control_respond_error(req, 400, "InvalidArgument", "malformed query string");
                return -EINVAL;
            }
            struct query_param *p = params;
            while (p->name != NULL && strcmp(p->name, key) != 0)
                p++;
            if (p->name == NULL) {
                char k[ECHO_MAX + 8];
                control_echo(key, kl, k, sizeof(k));
                control_respond_error(req, 400, "InvalidArgument", "unknown query parameter \"%s\"",
                                      k);
                return -EINVAL;
            }
            p->value = val;
        }
        q = stop + 1;
    }
    return 0;
}

/* ---- engine errors as answers ---- */

/* HTTP status and code for an engine error that is not a refusal. */
int control_error_status(int err, const char **code)
{
    switch (err) {
    case -EINVAL:
    case MIG_EPARSE:
        *code = "InvalidArgument";
        return 400;
    case -ENOENT:
        *code = "ResourceNotFound";
        return 404;
    case -EBUSY:
    case -EAGAIN:
    case MIG_EHTTP:
    case MIG_ETIMEDOUT:
    case MIG_EAPI:
    case MIG_ESSH:
    case MIG_ECANCELED:
        *code = "ServiceUnavailable";
        return 503;
    default:
        *code = "InternalError";
        return 500;
    }
}

/*
 * The API a refusal is about when the API could not be reached or failed
 * (a transport failure or a 5xx); NULL when the refusal is the API's
 * considered answer (a 4xx, a malformed object) or about something else.
 * The engine's messages put the cause after "<API>: ": either "HTTP <status>
 * ..." or the transport's "<METHOD> <url>: <why>" (lib/act.c mig_res_why).
 */
const char *control_refusal_unavailable_api(const struct mig_refusal *r)
{
    static const struct {
        const char *rule, *api;
    } apis[] = {{"VmapiError", "VMAPI"},
                {"CnapiError", "CNAPI"},
                {"NapiError", "NAPI"},
                {"ImgapiError", "IMGAPI"}};
    if (r == NULL || r->rule == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(apis) / sizeof(apis[0]); i++) {
        if (strcmp(r->rule, apis[i].rule) != 0)
            continue;
        char key[16];
        snprintf(key, sizeof(key), "%s: ", apis[i].api);
        const char *why = strstr(r->message, key);
        if (why == NULL)
            return NULL;
        why += strlen(key);
        if (strncmp(why, "HTTP ", 5) == 0) {
            long status = strtol(why + 5, NULL, 10);
            return status >= 500 && status <= 599 ? apis[i].api : NULL;
        }
        return *why != '\0' ? apis[i].api : NULL;
    }
    return NULL;
}
