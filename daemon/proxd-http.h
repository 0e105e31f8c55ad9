/* proxd-http.h - the libcurl set-up shared by the daemon's uploads (positive-test report,
 * venue counts): a JSON POST to the configured server and nowhere else. */
#pragma once

#include <curl/curl.h>
#include <glib.h>

G_BEGIN_DECLS

/* curl's globals, set up once on the caller's thread, never first in a worker (not
 * thread-safe with every TLS backend). Call before starting the worker. */
void proxd_http_global_init(void);

/* Whether HOST (of an http URL) is this machine: a loopback address or "localhost". Plain http
 * is allowed only there (a local TLS proxy, tests): loopback is not the network. */
gboolean proxd_http_host_is_loopback(const char *host);

/* Sets C up to POST BODY (LEN bytes, not copied: it must outlive the transfer) to URL as
 * Content-Type: application/json, with no 100-continue round trip: http and https only, no
 * redirects (the data goes to the configured server or nowhere), no signals (the transfer
 * runs in a worker thread), CONNECT_TIMEOUT (0: libcurl's default) and TIMEOUT seconds,
 * and ERRBUF (CURL_ERROR_SIZE bytes) for libcurl's message. Proxies come from the
 * environment (libcurl's default); no User-Agent, no cookies. The caller adds the answer's
 * callbacks. Returns the header list, to free with curl_slist_free_all() after
 * curl_easy_cleanup(). */
struct curl_slist *proxd_http_setup_json_post(CURL *c, const char *url, const char *body, gsize len,
                                              guint connect_timeout, guint timeout, char *errbuf);

/* Runs the transfer set up on C, then frees C and HEADERS (from
 * proxd_http_setup_json_post()). STATUS gets the HTTP status, 0 when the transfer failed. */
CURLcode proxd_http_perform(CURL *c, struct curl_slist *headers, long *status);

G_END_DECLS
