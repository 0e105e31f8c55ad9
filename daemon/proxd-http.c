/* proxd-http.c - the libcurl set-up shared by the daemon's uploads. */
#define G_LOG_DOMAIN "proxd-http"

#include "proxd-http.h"

#include <gio/gio.h>

void proxd_http_global_init(void)
{
    static gsize ready = 0;
    if (g_once_init_enter(&ready)) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        g_once_init_leave(&ready, 1);
    }
}

gboolean proxd_http_host_is_loopback(const char *host)
{
    g_autoptr(GInetAddress) addr = g_inet_address_new_from_string(host);
    return (addr != NULL && g_inet_address_get_is_loopback(addr)) ||
           g_ascii_strcasecmp(host, "localhost") == 0;
}

struct curl_slist *proxd_http_setup_json_post(CURL *c, const char *url, const char *body, gsize len,
                                              guint connect_timeout, guint timeout, char *errbuf)
{
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(c, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (connect_timeout != 0)
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)connect_timeout);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)timeout);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    return headers;
}

CURLcode proxd_http_perform(CURL *c, struct curl_slist *headers, long *status)
{
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    return rc;
}
