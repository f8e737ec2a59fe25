/*
 * client.h: migctl's HTTP client of migd's control socket (libcurl over
 * the Unix socket) and the one-line reports of what went wrong: the
 * transport, or an error answer.  Functions return migctl's exit statuses
 * (migctl.h) and report their failures themselves.
 */
#ifndef MIGCTL_CLIENT_H
#define MIGCTL_CLIENT_H

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>

/*
 * Starts libcurl and sets the socket every request goes to (borrowed: it
 * must outlive the client).  Call once, before any other client_ function.
 */
void client_init(const char *socket_path);
/* Ends libcurl; no client_ function may be called after. */
void client_cleanup(void);
/* The socket path given to client_init (for status and messages). */
const char *client_socket(void);

/* A growing body: data is NUL-terminated, malloc'd, NULL while empty. */
struct client_buffer {
    char *data;
    size_t len;
};

/*
 * A CURLOPT_WRITEFUNCTION that appends to the struct client_buffer in
 * arg.  Returns nmemb * size, or 0 when memory ran out (libcurl then stops).
 */
size_t client_on_body(char *ptr, size_t size, size_t nmemb, void *arg);

/*
 * A new curl handle for method and path on migd's socket, with errbuf
 * (CURL_ERROR_SIZE bytes, cleared) as its error buffer; the caller owns it
 * (curl_easy_cleanup).  Exits migctl with status 1 when libcurl cannot make
 * one.
 */
CURL *client_handle(const char *method, const char *path, char *errbuf);

/* Reports a transport failure of handle h (rc, and errbuf as it was filled) on one line. */
void client_report_curl_error(CURL *h, CURLcode rc, const char *errbuf);
/* Reports an HTTP error answer: "CODE: message" from the JSON body when there is one. */
void client_report_api_error(long status, json_t *body);

/*
 * Calls the API, with body as JSON when not NULL.  Returns EXIT_OK once
 * migd answered, whatever the status: the status in *status, the body in
 * *out (a new reference; JSON null when it is not JSON).  A transport
 * failure is reported: EXIT_FAILED.
 */
int client_request(const char *method, const char *path, json_t *body, long *status, json_t **out);

/*
 * Calls the API.  On a 2xx answer returns EXIT_OK with the parsed body in
 * *out (a new reference; JSON null when the body is not JSON); otherwise
 * reports the error and returns EXIT_FAILED.
 */
int client_call(const char *method, const char *path, json_t *body, json_t **out);

/*
 * GET /jobs with query ("" or "?..."), every page of it: the array in *out
 * (new reference).  migd pages as Triton's APIs do (limit, offset); a job
 * that a new one pushes onto the next page is listed once.  Returns as
 * client_call.
 */
int client_fetch_jobs(const char *query, json_t **out);

#endif
