/* sync-test-util.c - static file server with faults, log capture, store builders. */
#include "sync-test-util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- static file server ---- */

typedef struct {
    char *path;
    guint status;
} Hit;

struct _FileServer {
    SoupServer *server;
    char *dir;
    guint16 port;
    char *url;
    GHashTable *faults; /* path -> FileServerFault */
    GArray *hits;       /* Hit */
    GPtrArray *hung;    /* GIOStream of FAULT_HANG requests */
    SoupMessageHeaders *last_headers;
};

static void hit_clear(gpointer p)
{
    g_free(((Hit *)p)->path);
}

static void record_hit(FileServer *fs, const char *path, guint status)
{
    Hit hit = {g_strdup(path), status};
    g_array_append_val(fs->hits, hit);
}

static char *etag_of(GBytes *content)
{
    g_autofree char *sum = g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, content);
    return g_strdup_printf("\"%.16s\"", sum);
}

/* Writes a raw response on a stolen connection, then closes it (or keeps it open). */
static void raw_answer(GIOStream *stream, const char *head, const guint8 *body, gsize len)
{
    GOutputStream *out = g_io_stream_get_output_stream(stream);
    g_output_stream_write_all(out, head, strlen(head), NULL, NULL, NULL);
    if (len > 0)
        g_output_stream_write_all(out, body, len, NULL, NULL, NULL);
    g_output_stream_flush(out, NULL, NULL);
    g_io_stream_close(stream, NULL, NULL);
}

static void on_request(SoupServer *server, SoupServerMessage *msg, const char *path,
                       GHashTable *query, gpointer user_data)
{
    FileServer *fs = user_data;
    g_clear_pointer(&fs->last_headers, soup_message_headers_unref);
    fs->last_headers = soup_message_headers_ref(soup_server_message_get_request_headers(msg));
    if (strcmp(soup_server_message_get_method(msg), "GET") != 0) {
        soup_server_message_set_status(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL);
        record_hit(fs, path, SOUP_STATUS_METHOD_NOT_ALLOWED);
        return;
    }
    if (strstr(path, "..") != NULL) {
        soup_server_message_set_status(msg, SOUP_STATUS_FORBIDDEN, NULL);
        record_hit(fs, path, SOUP_STATUS_FORBIDDEN);
        return;
    }
    FileServerFault fault = GPOINTER_TO_INT(g_hash_table_lookup(fs->faults, path));
    if (fault == FAULT_UNAVAILABLE) {
        soup_server_message_set_status(msg, SOUP_STATUS_SERVICE_UNAVAILABLE, NULL);
        soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Retry-After",
                                     "900");
        record_hit(fs, path, SOUP_STATUS_SERVICE_UNAVAILABLE);
        return;
    }
    g_autofree char *file = g_build_filename(fs->dir, path, NULL);
    g_autofree char *data = NULL;
    gsize len = 0;
    if (!g_file_get_contents(file, &data, &len, NULL)) {
        soup_server_message_set_status(msg, SOUP_STATUS_NOT_FOUND, NULL);
        record_hit(fs, path, SOUP_STATUS_NOT_FOUND);
        return;
    }
    g_autoptr(GBytes) content = g_bytes_new(data, len);
    g_autofree char *etag = etag_of(content);

    if (fault != FAULT_NONE) {
        record_hit(fs, path, 0);
        GIOStream *stream = soup_server_message_steal_connection(msg);
        if (fault == FAULT_HANG) {
            g_ptr_array_add(fs->hung, stream);
            return;
        }
        if (fault == FAULT_DIE)
            soup_server_disconnect(fs->server); /* nobody can connect any more */
        g_autofree char *head = fault == FAULT_TRUNCATE_NO_LENGTH
                                    ? g_strdup("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                                    : g_strdup_printf("HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
                                                      "Connection: close\r\n\r\n",
                                                      len);
        raw_answer(stream, head, (const guint8 *)data, len / 2);
        g_object_unref(stream);
        return;
    }

    SoupMessageHeaders *out = soup_server_message_get_response_headers(msg);
    soup_message_headers_replace(out, "ETag", etag);
    const char *inm =
        soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "If-None-Match");
    if (inm != NULL && strcmp(inm, etag) == 0) {
        soup_server_message_set_status(msg, SOUP_STATUS_NOT_MODIFIED, NULL);
        record_hit(fs, path, SOUP_STATUS_NOT_MODIFIED);
        return;
    }
    soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
    soup_server_message_set_response(
        msg, g_str_has_suffix(path, ".txt") ? "text/plain" : "application/zip", SOUP_MEMORY_COPY,
        data, len);
    record_hit(fs, path, SOUP_STATUS_OK);
}

static void listen_on(FileServer *fs, guint16 port)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GInetAddress) lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
    g_autoptr(GSocketAddress) addr = g_inet_socket_address_new(lo, port);
    g_assert_true(soup_server_listen(fs->server, addr, 0, &error));
    g_assert_no_error(error);
    GSList *uris = soup_server_get_uris(fs->server);
    g_assert_nonnull(uris);
    fs->port = (guint16)g_uri_get_port(uris->data);
    g_slist_free_full(uris, (GDestroyNotify)g_uri_unref);
}

FileServer *file_server_new(const char *dir)
{
    FileServer *fs = g_new0(FileServer, 1);
    fs->dir = g_strdup(dir);
    fs->faults = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    fs->hits = g_array_new(FALSE, FALSE, sizeof(Hit));
    g_array_set_clear_func(fs->hits, hit_clear);
    fs->hung = g_ptr_array_new_with_free_func(g_object_unref);
    fs->server = soup_server_new("server-header", NULL, NULL);
    soup_server_add_handler(fs->server, NULL, on_request, fs, NULL);
    listen_on(fs, 0);
    fs->url = g_strdup_printf("http://127.0.0.1:%u", fs->port);
    return fs;
}

void file_server_restart(FileServer *fs)
{
    listen_on(fs, fs->port);
}

void file_server_free(FileServer *fs)
{
    for (guint i = 0; i < fs->hung->len; i++)
        g_io_stream_close(fs->hung->pdata[i], NULL, NULL);
    soup_server_disconnect(fs->server);
    g_object_unref(fs->server);
    g_ptr_array_unref(fs->hung);
    g_hash_table_unref(fs->faults);
    g_array_unref(fs->hits);
    g_clear_pointer(&fs->last_headers, soup_message_headers_unref);
    g_free(fs->dir);
    g_free(fs->url);
    g_free(fs);
}

const char *file_server_url(FileServer *fs)
{
    return fs->url;
}

void file_server_set_fault(FileServer *fs, const char *path, FileServerFault fault)
{
    g_hash_table_replace(fs->faults, g_strdup(path), GINT_TO_POINTER(fault));
}

guint file_server_count(FileServer *fs, const char *path, guint status)
{
    guint n = 0;
    for (guint i = 0; i < fs->hits->len; i++) {
        const Hit *h = &g_array_index(fs->hits, Hit, i);
        if (strcmp(h->path, path) == 0 && (status == 0 || h->status == status))
            n++;
    }
    return n;
}

guint file_server_count_suffix(FileServer *fs, const char *suffix)
{
    guint n = 0;
    for (guint i = 0; i < fs->hits->len; i++) {
        if (g_str_has_suffix(g_array_index(fs->hits, Hit, i).path, suffix))
            n++;
    }
    return n;
}

void file_server_reset_counts(FileServer *fs)
{
    g_array_set_size(fs->hits, 0);
}

SoupMessageHeaders *file_server_last_headers(FileServer *fs)
{
    return fs->last_headers;
}

/* ---- log capture ---- */

static GMutex log_lock;
static GPtrArray *log_lines;

static const char *field(const GLogField *fields, gsize n, const char *key)
{
    for (gsize i = 0; i < n; i++) {
        if (strcmp(fields[i].key, key) == 0)
            return fields[i].length < 0 ? fields[i].value : NULL;
    }
    return NULL;
}

static GLogWriterOutput capture_writer(GLogLevelFlags level, const GLogField *fields, gsize n,
                                       gpointer user_data)
{
    const char *domain = field(fields, n, "GLIB_DOMAIN");
    const char *message = field(fields, n, "MESSAGE");
    gboolean ours = domain != NULL &&
                    (strcmp(domain, "proxd-sync") == 0 || strcmp(domain, "proxd-report") == 0 ||
                     strcmp(domain, "prox-detect") == 0);
    if (!ours)
        return g_log_writer_default(level, fields, n, user_data);
    /* Warnings of ours are expected in these tests (failed files): kept, not fatal. */
    if ((level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) != 0)
        return g_log_writer_default(level, fields, n, user_data);
    if ((level & G_LOG_LEVEL_DEBUG) != 0 && g_getenv("G_MESSAGES_DEBUG") == NULL)
        return G_LOG_WRITER_HANDLED;
    g_autofree char *line = g_strdup_printf("%s: %s", domain, message != NULL ? message : "");
    g_mutex_lock(&log_lock);
    g_ptr_array_add(log_lines, g_strdup(line));
    g_mutex_unlock(&log_lock);
    printf("# log %s\n", line);
    fflush(stdout);
    return G_LOG_WRITER_HANDLED;
}

void log_capture_install(void)
{
    log_lines = g_ptr_array_new_with_free_func(g_free);
    g_log_set_writer_func(capture_writer, NULL, NULL);
}

gboolean log_capture_contains(const char *first, ...)
{
    g_autoptr(GPtrArray) wanted = g_ptr_array_new();
    va_list args;
    va_start(args, first);
    for (const char *s = first; s != NULL; s = va_arg(args, const char *))
        g_ptr_array_add(wanted, (gpointer)s);
    va_end(args);
    gboolean found = FALSE;
    g_mutex_lock(&log_lock);
    for (guint i = 0; i < log_lines->len && !found; i++) {
        gboolean all = TRUE;
        for (guint j = 0; j < wanted->len && all; j++)
            all = strstr(log_lines->pdata[i], wanted->pdata[j]) != NULL;
        found = all;
    }
    g_mutex_unlock(&log_lock);
    return found;
}

void log_capture_clear(void)
{
    g_mutex_lock(&log_lock);
    g_ptr_array_set_size(log_lines, 0);
    g_mutex_unlock(&log_lock);
}

/* ---- device store ---- */

void test_random(void *buf, size_t len, void *user_data)
{
    guint8 *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = (guint8)g_test_rand_int_range(0, 256);
}

ProxTek test_tek_for_day(gint64 t)
{
    ProxTek tek;
    prox_tek_generate(&tek, prox_tek_rolling_start(t), test_random, NULL);
    return tek;
}

void test_record(ProxStore *store, gint64 start, guint minutes, const ProxTek *tek, int rssi)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(ProxSightingBatch) batch = prox_sighting_batch_new();
    uint8_t meta[PROX_METADATA_LEN];
    prox_metadata_encode(0, meta);
    for (guint m = 0; m < minutes; m++) {
        gint64 t = start + (gint64)m * 60;
        gint64 scan = 0;
        g_assert_true(prox_store_scan_begin(store, t, &scan, &error));
        ProxBroadcastId id;
        g_assert_true(prox_broadcast_id_at(tek, t + 1, meta, &id));
        prox_sighting_batch_add(batch, scan, &id.rpi, &id.aem, rssi, t + 1);
        g_assert_true(prox_store_commit_sightings(store, batch, &error));
        g_assert_true(prox_store_scan_end(store, scan, t + 4, &error));
    }
}

ProxStore *test_store_open(const char *path)
{
    g_autoptr(GError) error = NULL;
    ProxStoreOptions opts = {.fast_sync = TRUE};
    ProxStore *store = prox_store_open(path, &opts, &error);
    g_assert_no_error(error);
    return store;
}

/* ---- authority ---- */

char *test_keys_json(const ProxTek *teks, guint n)
{
    GString *s = g_string_new("{\"temporaryExposureKeys\":[");
    for (guint i = 0; i < n; i++) {
        g_autofree char *k =
            test_key_json(teks[i].key, teks[i].rolling_start, teks[i].rolling_period);
        g_string_append_printf(s, "%s%s", i > 0 ? "," : "", k);
    }
    g_string_append(s, "]}");
    return g_string_free(s, FALSE);
}

void test_wait_flag(gboolean *flag)
{
    while (!*flag)
        g_main_context_iteration(NULL, TRUE);
}
