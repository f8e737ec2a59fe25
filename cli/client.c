/*
 * client.c: migctl's HTTP client of migd's control socket: libcurl's easy
 * interface over the Unix socket, the paging of GET /jobs, and the
 * one-line reports of transport failures and error answers (see client.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "migctl.h"
#include "output.h"
#include "util.h"

static const char *client_socket_path;

void client_init(const char *socket_path)
{
    client_socket_path = socket_path;
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void client_cleanup(void)
{
    curl_global_cleanup();
}

const char *client_socket(void)
{
    return client_socket_path;
}

size_t client_on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct client_buffer *b = arg;
    size_t n = size * nmemb;
    char *grown = realloc(b->data, b->len + n + 1);
    if (grown == NULL)
        return 0;
    b->data = grown;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

CURL *client_handle(const char *method, const char *path, char *errbuf)
{
    CURL *h = curl_easy_init();
    if (h == NULL) {
        out_fail("cannot initialise libcurl");
        exit(EXIT_FAILED);
    }
    char *url = mig_asprintf("http://localhost%s", path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    free(url);
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, client_socket_path);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "migctl/" MIGD_VERSION);
    errbuf[0] = '\0';
    return h;
}

void client_report_curl_error(CURL *h, CURLcode rc, const char *errbuf)
{
    long oserr = 0;
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
    if (rc == CURLE_COULDNT_CONNECT) {
        const char *why = oserr != 0 ? strerror((int)oserr) : curl_easy_strerror(rc);
        out_fail("cannot connect to migd at %s: %s (%s)", client_socket_path, why,
                 oserr == EACCES ? "run migctl as root" : "is migd running?");
    } else {
        out_fail("request to migd at %s failed: %s", client_socket_path,
                 errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
    }
}

void client_report_api_error(long status, json_t *body)
{
    const char *code = json_string_value(json_object_get(body, "code"));
    const char *msg = json_string_value(json_object_get(body, "message"));
    if (code != NULL && msg != NULL)
        out_fail("%s: %s", code, msg);
    else if (msg != NULL)
        out_fail("%s", msg);
    else
        out_fail("migd answered HTTP %ld", status);
}

int client_request(const char *method, const char *path, json_t *body, long *status, json_t **out)
{
    char errbuf[CURL_ERROR_SIZE];
    CURL *h = client_handle(method, path, errbuf);
    struct client_buffer resp = {NULL, 0};
    struct curl_slist *headers = NULL;
    char *text = NULL;
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, client_on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 600L);
    CURLcode rc = curl_easy_perform(h);
    int ret = EXIT_FAILED;
    if (rc != CURLE_OK) {
        client_report_curl_error(h, rc, errbuf);
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        json_t *j = resp.data != NULL ? json_loadb(resp.data, resp.len, 0, NULL) : NULL;
        *out = j != NULL ? j : json_null();
        ret = EXIT_OK;
    }
    free(resp.data);
    free(text);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return ret;
}

int client_call(const char *method, const char *path, json_t *body, json_t **out)
{
    long status = 0;
    json_t *j = NULL;
    if (client_request(method, path, body, &status, &j) != EXIT_OK)
        return EXIT_FAILED;
    if (status >= 200 && status < 300) {
        *out = j;
        return EXIT_OK;
    }
    client_report_api_error(status, j);
    json_decref(j);
    return EXIT_FAILED;
}

int client_fetch_jobs(const char *query, json_t **out)
{
    enum { PAGE = 1000 };
    json_t *all = json_array(), *seen = json_object(); /* seen: uuids listed */
    for (long offset = 0;; offset += PAGE) {
        char *path = mig_asprintf("/jobs?limit=%d&offset=%ld%s%s", PAGE, offset,
                                  query[0] != '\0' ? "&" : "", query[0] != '\0' ? query + 1 : "");
        json_t *page = NULL;
        int ret = client_call("GET", path, NULL, &page);
        free(path);
        if (ret == EXIT_OK && !json_is_array(page)) {
            out_fail("migd answered something that is not a list of jobs");
            ret = EXIT_FAILED;
        }
        if (ret != EXIT_OK) {
            json_decref(page);
            json_decref(all);
            json_decref(seen);
            return ret;
        }
        size_t i, n = json_array_size(page);
        json_t *job;
        json_array_foreach(page, i, job)
        {
            const char *u = json_string_value(json_object_get(job, "uuid"));
            if (u != NULL && json_object_get(seen, u) != NULL)
                continue;
            if (u != NULL)
                json_object_set_new(seen, u, json_true());
            json_array_append(all, job);
        }
        json_decref(page);
        /* Unreadable rows come with the first page only: a short page is the last. */
        if (n < PAGE)
            break;
    }
    json_decref(seen);
    *out = all;
    return EXIT_OK;
}
