/* keyserver-load.c - upload load generator for prox-keyserver (a benchmark, not a test).
 *
 * Issues --uploads one-time codes straight into the server's database, then POSTs one
 * GAEN upload per code (--keys keys each, the last days' keys as a device would send them)
 * over --concurrency keep-alive connections with libcurl multi, and reports uploads/s and
 * errors. Every upload must answer 200 {"inserted":K}; anything else counts as an error.
 *
 *   keyserver-load --db DB --url http://127.0.0.1:PORT/v1/publish --now @T
 *                  [--uploads 5000] [--concurrency 32] [--keys 14]
 * The server must run with the same --now and with rate limiting off (--rate 0).
 */
#define G_LOG_DOMAIN "keyserver-load"

#include "authority-clock.h"
#include "authority-db.h"

#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    CURL *easy;
    GString *response;
    guint upload;
    gint64 started_us;
} Slot;

static size_t on_write(char *data, size_t size, size_t n, void *user_data)
{
    g_string_append_len(user_data, data, (gssize)(size * n));
    return size * n;
}

static char *upload_body(const char *code, guint keys, gint64 today)
{
    GString *s = g_string_new(NULL);
    g_string_append_printf(s, "{\"code\":\"%s\",\"temporaryExposureKeys\":[", code);
    for (guint k = 0; k < keys; k++) {
        uint8_t key[16];
        randombytes_buf(key, sizeof key);
        g_autofree char *b64 = g_base64_encode(key, sizeof key);
        /* one key a day, ending yesterday */
        gint64 start = (today - keys + k) * 144;
        g_string_append_printf(s,
                               "%s{\"key\":\"%s\",\"rollingStartNumber\":%" G_GINT64_FORMAT
                               ",\"rollingPeriod\":144,\"transmissionRisk\":%u}",
                               k ? "," : "", b64, start, 1 + k % 8);
    }
    g_string_append(s, "]}");
    return g_string_free(s, FALSE);
}

/* One fresh code per upload, and the upload's body. */
static GPtrArray *issue_codes(const char *db_path, guint uploads, guint keys, gint64 now,
                              GError **error)
{
    g_autoptr(AuthorityDb) db = authority_db_open(db_path, error);
    if (db == NULL || !authority_db_exec(db, "BEGIN IMMEDIATE", error))
        return NULL;
    gint64 today = now / 86400;
    g_autoptr(GPtrArray) bodies = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < uploads; i++) {
        char code[AUTHORITY_CODE_LEN + 1];
        authority_code_generate(code);
        if (!authority_db_code_insert(db, code, today - 3, PROX_REPORT_CONFIRMED_TEST, now,
                                      now + 86400, error))
            return NULL;
        g_ptr_array_add(bodies, upload_body(code, keys, today));
    }
    if (!authority_db_exec(db, "COMMIT", error))
        return NULL;
    return g_steal_pointer(&bodies);
}

static int compare_gint64(gconstpointer a, gconstpointer b)
{
    gint64 x = *(const gint64 *)a;
    gint64 y = *(const gint64 *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    g_autofree char *db_path = NULL;
    g_autofree char *url = NULL;
    g_autofree char *now_text = NULL;
    gint uploads = 5000;
    gint concurrency = 32;
    gint keys = 14;
    const GOptionEntry entries[] = {
        {"db", 0, 0, G_OPTION_ARG_FILENAME, &db_path, "The server's database", "DB"},
        {"url", 0, 0, G_OPTION_ARG_STRING, &url, "Upload URL", "URL"},
        {"now", 0, 0, G_OPTION_ARG_STRING, &now_text, "The server's --now", "TIME"},
        {"uploads", 0, 0, G_OPTION_ARG_INT, &uploads, "Uploads to send (default 5000)", "N"},
        {"concurrency", 0, 0, G_OPTION_ARG_INT, &concurrency,
         "Connections in parallel (default 32)", "N"},
        {"keys", 0, 0, G_OPTION_ARG_INT, &keys, "Keys per upload, 1..14 (default 14)", "N"},
        {NULL},
    };
    g_autoptr(GOptionContext) context = g_option_context_new(NULL);
    g_option_context_set_summary(context, "Upload load generator for prox-keyserver.");
    g_option_context_add_main_entries(context, entries, NULL);
    g_autoptr(GError) error = NULL;
    gint64 now = 0;
    if (!g_option_context_parse(context, &argc, &argv, &error) || db_path == NULL || url == NULL ||
        now_text == NULL || uploads < 1 || concurrency < 1 || keys < 1 || keys > 14 ||
        !authority_clock_parse_time(now_text, &now, &error)) {
        fprintf(stderr, "keyserver-load: %s\n",
                error != NULL ? error->message : "--db, --url and --now are required");
        return 2;
    }
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return 1;

    /* Codes go straight into the database: issuing them is not what is measured. */
    g_autoptr(GPtrArray) bodies = issue_codes(db_path, (guint)uploads, (guint)keys, now, &error);
    if (bodies == NULL) {
        fprintf(stderr, "keyserver-load: %s\n", error->message);
        return 1;
    }

    g_autofree char *expected = g_strdup_printf("{\"inserted\":%d}", keys);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:");
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)concurrency);
    g_autofree Slot *slots = g_new0(Slot, concurrency);
    g_autoptr(GArray) latencies = g_array_sized_new(FALSE, FALSE, sizeof(gint64), uploads);
    guint next = 0;
    guint done = 0;
    guint errors = 0;
    gint64 t0 = g_get_monotonic_time();
    for (gint i = 0; i < concurrency; i++) {
        slots[i].easy = curl_easy_init();
        slots[i].response = g_string_new(NULL);
        curl_easy_setopt(slots[i].easy, CURLOPT_URL, url);
        curl_easy_setopt(slots[i].easy, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(slots[i].easy, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(slots[i].easy, CURLOPT_WRITEDATA, slots[i].response);
        curl_easy_setopt(slots[i].easy, CURLOPT_PRIVATE, &slots[i]);
        curl_easy_setopt(slots[i].easy, CURLOPT_TIMEOUT, 30L);
    }
    /* Stack of idle slots. */
    g_autofree gint *idle = g_new(gint, concurrency);
    gint n_idle = concurrency;
    for (gint i = 0; i < concurrency; i++)
        idle[i] = i;
    while (done < (guint)uploads) {
        while (next < (guint)uploads && n_idle > 0) {
            Slot *slot = &slots[idle[--n_idle]];
            g_string_truncate(slot->response, 0);
            slot->upload = next;
            slot->started_us = g_get_monotonic_time();
            curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDS, bodies->pdata[next]);
            curl_multi_add_handle(multi, slot->easy);
            next++;
        }
        int running = 0;
        curl_multi_poll(multi, NULL, 0, 100, NULL);
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left = 0;
        while ((m = curl_multi_info_read(multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            Slot *slot = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&slot);
            long status = 0;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            gint64 latency = g_get_monotonic_time() - slot->started_us;
            g_array_append_val(latencies, latency);
            if (m->data.result != CURLE_OK || status != 200 ||
                strcmp(slot->response->str, expected) != 0) {
                if (errors < 5)
                    fprintf(stderr, "upload %u: %s, HTTP %ld, %s\n", slot->upload,
                            curl_easy_strerror(m->data.result), status, slot->response->str);
                errors++;
            }
            curl_multi_remove_handle(multi, m->easy_handle);
            done++;
            idle[n_idle++] = (gint)(slot - slots);
        }
    }
    double seconds = (double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC;
    g_array_sort(latencies, compare_gint64);
    gint64 p50 = g_array_index(latencies, gint64, latencies->len / 2);
    gint64 p99 = g_array_index(latencies, gint64, latencies->len * 99 / 100);
    printf("uploads %d keys/upload %d concurrency %d seconds %.3f uploads/s %.0f errors %u "
           "latency_p50_ms %.2f latency_p99_ms %.2f\n",
           uploads, keys, concurrency, seconds, uploads / seconds, errors, p50 / 1000.0,
           p99 / 1000.0);
    for (gint i = 0; i < concurrency; i++) {
        curl_easy_cleanup(slots[i].easy);
        g_string_free(slots[i].response, TRUE);
    }
    curl_multi_cleanup(multi);
    curl_slist_free_all(headers);
    curl_global_cleanup();
    return errors == 0 ? 0 : 1;
}
