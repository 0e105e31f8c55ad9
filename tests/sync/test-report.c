/* test-report.c - reporting a positive test: which keys are selected (last 14 days, the key
 * in use cut short after the current interval), the preview, the exact upload, and the real
 * prox-keyserver storing them (checked in its database) or refusing a reused, unknown or expired
 * code with its reason.
 */
#include "proxd-report.h"
#include "sync-test-util.h"

#include <json-glib/json-glib.h>
#include <sqlite3.h>
#include <string.h>

#define TODAY_MIDNIGHT (TEST_NOW - TEST_NOW % DAY)
/* TEST_NOW is 18:40 UTC, the start of interval 112 of the day: today's key is sent covering
 * intervals 0..112. */
#define TODAY_CUT_PERIOD 113

typedef struct {
    char *dir;
    char *db;
    char *device_db;
    ProxStore *store;
    GArray *teks; /* ProxTek created, index d = days before today */
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->dir = test_tmpdir_new();
    f->db = g_build_filename(f->dir, "authority.db", NULL);
    f->device_db = g_build_filename(f->dir, "device.db", NULL);
    f->store = test_store_open(f->device_db);
    f->teks = g_array_new(FALSE, FALSE, sizeof(ProxTek));
    /* A key for each of the last 17 days, today's included, as the daemon makes them. */
    for (gint64 d = 0; d <= 16; d++) {
        g_autoptr(GError) error = NULL;
        ProxTek tek;
        g_assert_true(prox_store_get_or_create_tek(f->store, TEST_NOW - d * DAY, test_random, NULL,
                                                   &tek, &error));
        g_array_append_val(f->teks, tek);
    }
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    prox_store_close(f->store);
    test_tmpdir_free(f->dir);
    g_free(f->db);
    g_free(f->device_db);
    g_array_unref(f->teks);
}

static const ProxTek *tek_days_ago(Fixture *f, guint d)
{
    return &g_array_index(f->teks, ProxTek, d);
}

/* Today's key as a report at TEST_NOW sends it. */
static ProxTek today_cut(Fixture *f)
{
    ProxTek tek = *tek_days_ago(f, 0);
    tek.rolling_period = TODAY_CUT_PERIOD;
    return tek;
}

/* "HEX:start:period" of the keys in the authority database, ordered by start. */
static GPtrArray *server_keys(const char *db)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    sqlite3 *sqlite = NULL;
    g_assert_cmpint(sqlite3_open_v2(db, &sqlite, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
    sqlite3_busy_timeout(sqlite, 10000);
    sqlite3_stmt *stmt = NULL;
    g_assert_cmpint(sqlite3_prepare_v2(sqlite,
                                       "SELECT hex(key_data), rolling_start, rolling_period "
                                       "FROM keys ORDER BY rolling_start",
                                       -1, &stmt, NULL),
                    ==, SQLITE_OK);
    while (sqlite3_step(stmt) == SQLITE_ROW)
        g_ptr_array_add(out, g_strdup_printf("%s:%lld:%lld", sqlite3_column_text(stmt, 0),
                                             (long long)sqlite3_column_int64(stmt, 1),
                                             (long long)sqlite3_column_int64(stmt, 2)));
    sqlite3_finalize(stmt);
    sqlite3_close(sqlite);
    return out;
}

static char *tek_row(const ProxTek *tek)
{
    g_autofree char *hex = g_malloc(2 * PROX_KEY_LEN + 1);
    for (guint i = 0; i < PROX_KEY_LEN; i++)
        g_snprintf(hex + 2 * i, 3, "%02X", tek->key[i]);
    return g_strdup_printf("%s:%u:%u", hex, tek->rolling_start, tek->rolling_period);
}

typedef struct {
    gboolean done;
    gboolean ok;
    guint inserted;
    GError *error;
} Wait;

static void on_sent(GObject *source, GAsyncResult *res, gpointer user_data)
{
    Wait *w = user_data;
    w->ok = proxd_report_send_finish(res, &w->inserted, &w->error);
    w->done = TRUE;
}

/* Sends a report made at TEST_NOW; returns TRUE on success, else *error. */
static gboolean send_report(Fixture *f, const char *url, const char *code, guint *inserted,
                            GError **error)
{
    g_autoptr(GError) local = NULL;
    ProxdReport *report = proxd_report_new(f->store, TEST_NOW, &local);
    g_assert_no_error(local);
    ProxdReportOptions opts = {.url = url, .timeout = 30};
    Wait w = {0};
    proxd_report_send_async(report, code, &opts, NULL, on_sent, &w);
    test_wait_flag(&w.done);
    if (inserted != NULL)
        *inserted = w.inserted;
    if (w.error != NULL)
        g_propagate_error(error, w.error);
    return w.ok;
}

/* ---- selection and preview ---- */

static void test_selection(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(ProxdReport) report = proxd_report_new(f->store, TEST_NOW, &error);
    g_assert_no_error(error);
    /* Days 1..14 before today whole, today's up to the current interval; 15 and 16 are too
     * old. */
    g_assert_cmpuint(proxd_report_get_n_keys(report), ==, 15);
    for (guint i = 0; i < 15; i++) {
        guint32 start = 0, period = 0;
        proxd_report_get_key_period(report, i, &start, &period);
        const ProxTek *expect = tek_days_ago(f, 14 - i);
        g_assert_cmpuint(start, ==, expect->rolling_start);
        g_assert_cmpuint(period, ==, i < 14 ? 144 : TODAY_CUT_PERIOD);
    }
    g_assert_cmpint(proxd_report_get_cut_at(report), ==, TEST_NOW + 600);

    g_autoptr(GVariant) preview = g_variant_ref_sink(proxd_report_preview(report));
    guint32 n = 0;
    guint64 first = 0, last = 0;
    guint32 bytes = 0;
    g_assert_true(g_variant_lookup(preview, "keys", "u", &n));
    g_assert_true(g_variant_lookup(preview, "first-day", "t", &first));
    g_assert_true(g_variant_lookup(preview, "last-day", "t", &last));
    g_assert_true(g_variant_lookup(preview, "bytes", "u", &bytes));
    g_assert_cmpuint(n, ==, 15);
    g_assert_cmpuint(first, ==, TODAY_MIDNIGHT - 14 * DAY);
    g_assert_cmpuint(last, ==, TODAY_MIDNIGHT);
    guint64 cut_at = 0;
    g_assert_true(g_variant_lookup(preview, "cut-at", "t", &cut_at));
    g_assert_cmpuint(cut_at, ==, TEST_NOW + 600);
    g_assert_cmpuint(bytes, ==, PROXD_REPORT_BODY_SIZE);
    g_autoptr(GVariant) days = g_variant_lookup_value(preview, "days", G_VARIANT_TYPE("at"));
    gsize n_days = 0;
    const guint64 *d = g_variant_get_fixed_array(days, &n_days, sizeof(guint64));
    g_assert_cmpuint(n_days, ==, 15);
    g_assert_true(proxd_report_matches(report, (const gint64 *)d, n_days));
    g_assert_false(proxd_report_matches(report, (const gint64 *)d, n_days - 1));
    gint64 shifted[15];
    for (guint i = 0; i < 15; i++)
        shifted[i] = (gint64)d[i] + DAY;
    g_assert_false(proxd_report_matches(report, shifted, 15));

    /* Five minutes after midnight, before the new day's key exists: yesterday's key is in
     * whole and nothing is cut; the oldest day moved out. */
    g_autoptr(ProxdReport) after = proxd_report_new(f->store, TODAY_MIDNIGHT + DAY + 300, &error);
    g_assert_cmpuint(proxd_report_get_n_keys(after), ==, 14);
    g_assert_cmpint(proxd_report_get_cut_at(after), ==, 0);
    guint32 start = 0, period = 0;
    proxd_report_get_key_period(after, 13, &start, &period);
    g_assert_cmpuint(start, ==, tek_days_ago(f, 0)->rolling_start);
    g_assert_cmpuint(period, ==, 144);
    proxd_report_get_key_period(after, 0, &start, &period);
    g_assert_cmpuint(start, ==, tek_days_ago(f, 13)->rolling_start);

    /* In the day's last interval the key in use is whole, but still the one in use. */
    g_autoptr(ProxdReport) before = proxd_report_new(f->store, TODAY_MIDNIGHT + DAY - 1, &error);
    g_assert_cmpuint(proxd_report_get_n_keys(before), ==, 15);
    proxd_report_get_key_period(before, 14, &start, &period);
    g_assert_cmpuint(start, ==, tek_days_ago(f, 0)->rolling_start);
    g_assert_cmpuint(period, ==, 144);
    g_assert_cmpint(proxd_report_get_cut_at(before), ==, TODAY_MIDNIGHT + DAY);
}

/* After the store ended the key in use (the daemon does before it sends), a report in the
 * same interval sends the ended key as it is and its successor up to now; nothing of a key
 * that starts later (a clock set back). */
static void test_selection_after_cut(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    ProxTek cut, next;
    gboolean had = FALSE;
    g_assert_true(
        prox_store_cut_current_tek(f->store, TEST_NOW, test_random, NULL, &cut, &had, &error));
    g_assert_true(had);
    ProxTek expect_cut = today_cut(f);
    g_assert_cmpmem(&cut, sizeof cut, &expect_cut, sizeof expect_cut);
    g_assert_true(
        prox_store_get_or_create_tek(f->store, TEST_NOW, test_random, NULL, &next, &error));

    g_autoptr(ProxdReport) report = proxd_report_new(f->store, TEST_NOW + 60, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(proxd_report_get_n_keys(report), ==, 16);
    guint32 start = 0, period = 0;
    proxd_report_get_key_period(report, 14, &start, &period);
    g_assert_cmpuint(start, ==, cut.rolling_start);
    g_assert_cmpuint(period, ==, TODAY_CUT_PERIOD);
    proxd_report_get_key_period(report, 15, &start, &period);
    g_assert_cmpuint(start, ==, next.rolling_start);
    g_assert_cmpuint(period, ==, 1);

    /* Seen from an earlier interval, the successor has not started: left out. */
    g_autoptr(ProxdReport) earlier = proxd_report_new(f->store, TEST_NOW - 600, &error);
    g_assert_cmpuint(proxd_report_get_n_keys(earlier), ==, 15);
    proxd_report_get_key_period(earlier, 14, &start, &period);
    g_assert_cmpuint(start, ==, cut.rolling_start);
    g_assert_cmpuint(period, ==, TODAY_CUT_PERIOD - 1);
}

static void test_no_keys(Fixture *f, gconstpointer data)
{
    g_autofree char *path = g_build_filename(f->dir, "new.db", NULL);
    ProxStore *store = test_store_open(path);
    g_autoptr(GError) error = NULL;
    /* A device that never broadcast: its first key is made only when it advertises. */
    g_autoptr(ProxdReport) report = proxd_report_new(store, TEST_NOW, &error);
    g_assert_cmpuint(proxd_report_get_n_keys(report), ==, 0);
    g_assert_cmpint(proxd_report_get_cut_at(report), ==, 0);
    g_autoptr(GVariant) preview = g_variant_ref_sink(proxd_report_preview(report));
    g_assert_false(g_variant_lookup(preview, "first-day", "t", NULL));
    ProxdReportOptions opts = {.url = "http://127.0.0.1:1/v1/publish"};
    g_assert_false(proxd_report_send(report, "AAAA-BBBB-CCCC", &opts, NULL, NULL, &error));
    g_assert_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_NO_KEYS);
    prox_store_close(store);
}

/* The body: exactly code, the keys and padding, always the same size. */
static void test_body(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(ProxdReport) report = proxd_report_new(f->store, TEST_NOW, &error);
    g_autoptr(GBytes) body = proxd_report_build_body(report, " K7QM-2XRP-9DWT\n", &error);
    g_assert_no_error(error);
    gsize len = 0;
    const char *data_ = g_bytes_get_data(body, &len);
    g_assert_cmpuint(len, ==, PROXD_REPORT_BODY_SIZE);
    g_autoptr(JsonParser) parser = json_parser_new();
    g_assert_true(json_parser_load_from_data(parser, data_, (gssize)len, NULL));
    JsonObject *obj = json_node_get_object(json_parser_get_root(parser));
    g_assert_cmpuint(json_object_get_size(obj), ==, 3);
    g_assert_cmpstr(json_object_get_string_member(obj, "code"), ==, "K7QM-2XRP-9DWT");
    g_assert_true(json_object_has_member(obj, "padding"));
    JsonArray *keys = json_object_get_array_member(obj, "temporaryExposureKeys");
    g_assert_cmpuint(json_array_get_length(keys), ==, 15);
    for (guint i = 0; i < 15; i++) {
        JsonObject *k = json_array_get_object_element(keys, i);
        g_assert_cmpuint(json_object_get_size(k), ==, 4);
        const ProxTek *expect = tek_days_ago(f, 14 - i);
        gsize klen = 0;
        g_autofree guchar *raw = g_base64_decode(json_object_get_string_member(k, "key"), &klen);
        g_assert_cmpmem(raw, klen, expect->key, PROX_KEY_LEN);
        g_assert_cmpint(json_object_get_int_member(k, "rollingStartNumber"), ==,
                        expect->rolling_start);
        g_assert_cmpint(json_object_get_int_member(k, "rollingPeriod"), ==,
                        i < 14 ? 144 : TODAY_CUT_PERIOD);
        g_assert_cmpint(json_object_get_int_member(k, "transmissionRisk"), ==, 0);
    }

    const char *bad_codes[] = {"", "   ", "K7QM\x01", NULL};
    for (guint i = 0; bad_codes[i] != NULL; i++) {
        g_clear_error(&error);
        g_assert_null(proxd_report_build_body(report, bad_codes[i], &error));
        g_assert_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_INVALID_ARGUMENT);
    }
    g_autofree char *long_code = g_strnfill(PROXD_REPORT_MAX_CODE_LEN + 1, 'A');
    g_clear_error(&error);
    g_assert_null(proxd_report_build_body(report, long_code, &error));
}

static void test_url_policy(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(ProxdReport) report = proxd_report_new(f->store, TEST_NOW, &error);
    const char *refused[] = {"http://keys.example.org/v1/publish", "ftp://127.0.0.1/x",
                             "file:///tmp/x", "not a url", NULL};
    for (guint i = 0; refused[i] != NULL; i++) {
        ProxdReportOptions opts = {.url = refused[i]};
        g_clear_error(&error);
        g_assert_false(proxd_report_send(report, "AAAA-BBBB-CCCC", &opts, NULL, NULL, &error));
        g_assert_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_INVALID_ARGUMENT);
    }
    /* Nothing listens on port 1. */
    ProxdReportOptions closed = {.url = "http://127.0.0.1:1/v1/publish"};
    g_clear_error(&error);
    g_assert_false(proxd_report_send(report, "AAAA-BBBB-CCCC", &closed, NULL, NULL, &error));
    g_assert_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_NETWORK);
}

/* ---- what goes over the wire ---- */

typedef struct {
    guint status;
    const char *answer;
    const char *content_type;
    SoupMessageHeaders *headers;
    GBytes *body;
} Capture;

static void on_capture(SoupServer *server, SoupServerMessage *msg, const char *path,
                       GHashTable *query, gpointer user_data)
{
    Capture *c = user_data;
    g_clear_pointer(&c->headers, soup_message_headers_unref);
    g_clear_pointer(&c->body, g_bytes_unref);
    c->headers = soup_message_headers_ref(soup_server_message_get_request_headers(msg));
    c->body = soup_message_body_flatten(soup_server_message_get_request_body(msg));
    soup_server_message_set_status(msg, c->status, NULL);
    soup_server_message_set_response(msg, c->content_type, SOUP_MEMORY_COPY, c->answer,
                                     strlen(c->answer));
}

static SoupServer *capture_server(Capture *c, char **url)
{
    SoupServer *server = soup_server_new(NULL, NULL);
    soup_server_add_handler(server, NULL, on_capture, c, NULL);
    g_autoptr(GError) error = NULL;
    g_assert_true(soup_server_listen_local(server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error));
    GSList *uris = soup_server_get_uris(server);
    *url = g_strdup_printf("http://127.0.0.1:%d/v1/publish", g_uri_get_port(uris->data));
    g_slist_free_full(uris, (GDestroyNotify)g_uri_unref);
    return server;
}

static void test_wire(Fixture *f, gconstpointer data)
{
    Capture c = {200, "{\"inserted\":15}", "application/json", NULL, NULL};
    g_autofree char *url = NULL;
    g_autoptr(SoupServer) server = capture_server(&c, &url);
    guint inserted = 0;
    g_autoptr(GError) error = NULL;
    g_assert_true(send_report(f, url, "K7QM-2XRP-9DWT", &inserted, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(inserted, ==, 15);
    /* Only what the upload needs: no User-Agent, cookies or anything naming the device. */
    g_assert_cmpstr(soup_message_headers_get_one(c.headers, "Content-Type"), ==,
                    "application/json");
    g_assert_null(soup_message_headers_get_one(c.headers, "User-Agent"));
    g_assert_null(soup_message_headers_get_one(c.headers, "Cookie"));
    g_assert_null(soup_message_headers_get_one(c.headers, "Expect"));
    SoupMessageHeadersIter iter;
    soup_message_headers_iter_init(&iter, c.headers);
    const char *name = NULL, *value = NULL;
    while (soup_message_headers_iter_next(&iter, &name, &value)) {
        const char *allowed[] = {"Host", "Accept", "Content-Type", "Content-Length", NULL};
        g_assert_true(g_strv_contains(allowed, name));
    }
    g_assert_cmpuint(g_bytes_get_size(c.body), ==, PROXD_REPORT_BODY_SIZE);

    /* Answers the client must make sense of. */
    const struct {
        guint status;
        const char *answer;
        ProxdReportError code;
    } cases[] = {
        {503, "{\"error\":\"storage failed\",\"code\":\"unavailable\"}",
         PROXD_REPORT_ERROR_UNAVAILABLE},
        {500, "<html>oops</html>", PROXD_REPORT_ERROR_UNAVAILABLE},
        {429, "{\"error\":\"slow down\",\"code\":\"rate_limited\"}",
         PROXD_REPORT_ERROR_RATE_LIMITED},
        {400, "{\"error\":\"key 3 too old\",\"code\":\"key_too_old\"}",
         PROXD_REPORT_ERROR_REJECTED},
        {400, "not json", PROXD_REPORT_ERROR_PROTOCOL},
        {200, "{\"accepted\":true}", PROXD_REPORT_ERROR_PROTOCOL},
        {302, "", PROXD_REPORT_ERROR_PROTOCOL},
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        c.status = cases[i].status;
        c.answer = cases[i].answer;
        g_clear_error(&error);
        g_assert_false(send_report(f, url, "K7QM-2XRP-9DWT", NULL, &error));
        g_assert_error(error, PROXD_REPORT_ERROR, (gint)cases[i].code);
    }
    g_clear_pointer(&c.headers, soup_message_headers_unref);
    g_clear_pointer(&c.body, g_bytes_unref);
}

/* ---- check-ins (docs/venues.md §6) ---- */

static gint64 add_checkin(Fixture *f, guint8 fill, gint64 arrived, gint64 departed)
{
    g_autoptr(GError) error = NULL;
    uint8_t loc[PROX_LOCATION_ID_LEN];
    memset(loc, fill, sizeof loc);
    gint64 id = 0;
    g_assert_true(prox_store_checkin_add(f->store, loc, arrived, arrived + 4 * 3600, &id, &error));
    g_assert_no_error(error);
    if (departed != 0) {
        g_assert_true(prox_store_checkin_checkout(f->store, departed, NULL, &error));
        g_assert_no_error(error);
    }
    return id;
}

/* "checkins" of a body: "HEX:start:end" per entry; NULL when the member is absent. */
static GPtrArray *body_checkins(GBytes *body)
{
    gsize len = 0;
    const char *text = g_bytes_get_data(body, &len);
    g_assert_cmpuint(len, ==, PROXD_REPORT_BODY_SIZE);
    g_autoptr(JsonParser) parser = json_parser_new();
    g_assert_true(json_parser_load_from_data(parser, text, (gssize)len, NULL));
    JsonObject *obj = json_node_get_object(json_parser_get_root(parser));
    if (!json_object_has_member(obj, "checkins")) {
        g_assert_cmpuint(json_object_get_size(obj), ==, 3);
        return NULL;
    }
    g_assert_cmpuint(json_object_get_size(obj), ==, 4);
    JsonArray *a = json_object_get_array_member(obj, "checkins");
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *c = json_array_get_object_element(a, i);
        g_assert_cmpuint(json_object_get_size(c), ==, 3);
        g_ptr_array_add(out, g_strdup_printf("%s:%" G_GINT64_FORMAT ":%" G_GINT64_FORMAT,
                                             json_object_get_string_member(c, "locationId"),
                                             json_object_get_int_member(c, "start"),
                                             json_object_get_int_member(c, "end")));
    }
    return out;
}

static char *expected_row(guint8 fill, gint64 start, gint64 end)
{
    g_autofree char *hex = g_strnfill(2 * PROX_LOCATION_ID_LEN, 'x');
    for (guint i = 0; i < PROX_LOCATION_ID_LEN; i++)
        g_snprintf(hex + 2 * i, 3, "%02x", fill);
    return g_strdup_printf("%s:%" G_GINT64_FORMAT ":%" G_GINT64_FORMAT, hex, start, end);
}

/* Closed check-ins of the last 14 days are offered, none is sent unless selected, and the
 * body carries exactly the ones selected, at the same padded size. */
static void test_checkins(Fixture *f, gconstpointer data)
{
    gint64 a_start = TODAY_MIDNIGHT - 3 * DAY + 10 * 3600, a_end = a_start + 3600;
    gint64 b_start = TODAY_MIDNIGHT - DAY + 18 * 3600, b_end = b_start + 5400;
    /* Older than 14 days (less the margin): not offered. */
    add_checkin(f, 0xcc, TEST_NOW - 14 * DAY + 1800, TEST_NOW - 14 * DAY + 3000);
    gint64 a = add_checkin(f, 0xaa, a_start, a_end);
    gint64 b = add_checkin(f, 0xbb, b_start, b_end);
    /* Still open: not offered. */
    gint64 open = add_checkin(f, 0xdd, TEST_NOW - 600, 0);

    g_autoptr(GError) error = NULL;
    g_autoptr(ProxdReport) report = proxd_report_new(f->store, TEST_NOW, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(proxd_report_get_n_checkins(report), ==, 2);
    g_assert_cmpint(proxd_report_get_checkin(report, 0)->id, ==, a);
    g_assert_cmpint(proxd_report_get_checkin(report, 1)->id, ==, b);
    g_assert_cmpuint(proxd_report_get_n_selected_checkins(report), ==, 0);

    g_autoptr(GVariant) preview = g_variant_ref_sink(proxd_report_preview(report));
    g_autoptr(GVariant) offered =
        g_variant_lookup_value(preview, "checkins", G_VARIANT_TYPE("aa{sv}"));
    g_assert_nonnull(offered);
    g_assert_cmpuint(g_variant_n_children(offered), ==, 2);
    g_autoptr(GVariant) first = g_variant_get_child_value(offered, 0);
    gint64 id = 0;
    guint64 arrived = 0, departed = 0;
    g_assert_true(g_variant_lookup(first, "id", "x", &id));
    g_assert_true(g_variant_lookup(first, "arrived", "t", &arrived));
    g_assert_true(g_variant_lookup(first, "departed", "t", &departed));
    g_assert_cmpint(id, ==, a);
    g_assert_cmpuint(arrived, ==, (guint64)a_start);
    g_assert_cmpuint(departed, ==, (guint64)a_end);
    g_assert_cmpuint(g_variant_n_children(first), ==, 3); /* never the location id */

    /* None selected: no "checkins" member at all. */
    g_autoptr(GBytes) none = proxd_report_build_body(report, "K7QM-2XRP-9DWT", &error);
    g_assert_no_error(error);
    g_assert_null(body_checkins(none));

    const gint64 only_b[] = {b};
    g_assert_true(proxd_report_select_checkins(report, only_b, 1, &error));
    g_assert_no_error(error);
    g_autoptr(GBytes) body_b = proxd_report_build_body(report, "K7QM-2XRP-9DWT", &error);
    g_autoptr(GPtrArray) rows_b = body_checkins(body_b);
    g_assert_cmpuint(rows_b->len, ==, 1);
    g_autofree char *expect_b = expected_row(0xbb, b_start, b_end);
    g_assert_cmpstr(rows_b->pdata[0], ==, expect_b);

    /* Refused selections leave the previous one. */
    const gint64 unknown[] = {open};
    g_assert_false(proxd_report_select_checkins(report, unknown, 1, &error));
    g_assert_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_CHANGED);
    g_clear_error(&error);
    const gint64 twice[] = {a, a};
    g_assert_false(proxd_report_select_checkins(report, twice, 2, &error));
    g_assert_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_CHANGED);
    g_clear_error(&error);
    g_assert_cmpuint(proxd_report_get_n_selected_checkins(report), ==, 1);

    /* Both, over the wire: exactly those two, oldest first. */
    const gint64 both[] = {b, a};
    g_assert_true(proxd_report_select_checkins(report, both, 2, &error));
    Capture c = {200, "{\"inserted\":14}", "application/json", NULL, NULL};
    g_autofree char *url = NULL;
    g_autoptr(SoupServer) server = capture_server(&c, &url);
    ProxdReportOptions opts = {.url = url, .timeout = 30};
    Wait w = {0};
    proxd_report_send_async(g_steal_pointer(&report), "K7QM-2XRP-9DWT", &opts, NULL, on_sent, &w);
    test_wait_flag(&w.done);
    g_assert_no_error(w.error);
    g_assert_true(w.ok);
    g_autoptr(GPtrArray) sent = body_checkins(c.body);
    g_assert_cmpuint(sent->len, ==, 2);
    g_autofree char *expect_a = expected_row(0xaa, a_start, a_end);
    g_assert_cmpstr(sent->pdata[0], ==, expect_a);
    g_assert_cmpstr(sent->pdata[1], ==, expect_b);
    g_clear_pointer(&c.headers, soup_message_headers_unref);
    g_clear_pointer(&c.body, g_bytes_unref);
}

/* ---- the real key server ---- */

static void test_keyserver(Fixture *f, gconstpointer data)
{
    g_autofree char *code = test_issue_code(f->db, NULL, NULL);
    TestServer *server =
        test_server_start(f->dir, f->db, "--now", TEST_NOW_ARG, "--rate", "0", NULL);
    g_autofree char *url = g_strconcat(server->url, "/v1/publish", NULL);

    guint inserted = 0;
    g_autoptr(GError) error = NULL;
    g_assert_true(send_report(f, url, code, &inserted, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(inserted, ==, 15);
    g_assert_true(log_capture_contains("report accepted", NULL));
    g_assert_false(log_capture_contains(code, NULL)); /* the code is never logged */

    /* Exactly the keys of days 1..14 before today, as they are in the device store, and
     * today's up to the current interval (the server takes it; it publishes it once over). */
    g_autoptr(GPtrArray) rows = server_keys(f->db);
    g_assert_cmpuint(rows->len, ==, 15);
    for (guint i = 0; i < 14; i++) {
        g_autofree char *expect = tek_row(tek_days_ago(f, 14 - i));
        g_assert_cmpstr(rows->pdata[i], ==, expect);
    }
    ProxTek cut = today_cut(f);
    g_autofree char *today = tek_row(&cut);
    g_assert_cmpstr(rows->pdata[14], ==, today);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM codes WHERE used_at IS NOT NULL"), ==,
                    1);

    /* The same code again: refused with the server's reason, nothing more stored. */
    g_clear_error(&error);
    g_assert_false(send_report(f, url, code, NULL, &error));
    g_assert_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_CODE_USED);
    g_assert_nonnull(strstr(error->message, "code_used"));
    g_assert_nonnull(strstr(error->message, "409"));
    g_test_message("reused code: %s", error->message);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM keys"), ==, 15);

    /* A code the server never issued. */
    g_clear_error(&error);
    g_assert_false(send_report(f, url, "2345-6789-ABCD", NULL, &error));
    g_assert_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_INVALID_CODE);

    /* An expired code (issued two hours earlier for one hour). */
    g_autofree char *expired = test_issue_code(f->db, "@1589992800", "1h");
    g_clear_error(&error);
    g_assert_false(send_report(f, url, expired, NULL, &error));
    g_assert_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_CODE_EXPIRED);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM keys"), ==, 15);

    g_assert_cmpint(test_server_stop(server), ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    log_capture_install();
#define ADD(name, fn) g_test_add(name, Fixture, NULL, fixture_setup, fn, fixture_teardown)
    ADD("/report/selection", test_selection);
    ADD("/report/selection-after-cut", test_selection_after_cut);
    ADD("/report/no-keys", test_no_keys);
    ADD("/report/body", test_body);
    ADD("/report/url-policy", test_url_policy);
    ADD("/report/wire", test_wire);
    ADD("/report/checkins", test_checkins);
    ADD("/report/keyserver", test_keyserver);
#undef ADD
    return g_test_run();
}
