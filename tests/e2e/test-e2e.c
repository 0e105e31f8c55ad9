/* test-e2e.c - key distribution end to end, on loopback: three proxd in the fake radio world
 * (a and b 1.5 m apart, c 10 m away), the authority's key server and tools, a report with
 * a one-time code through proxctl, a signed key list published to a directory, a sync on
 * b and c through D-Bus: b gets a high-risk ExposureDetected, c does not.
 *
 * The world starts at 23:15 UTC, so the day of the encounter is over (a's key of that day
 * can be reported) after 45 simulated minutes. Nothing sleeps: every wait is on a D-Bus
 * signal, a property, a method reply, a child process or a file.
 */
#define G_LOG_DOMAIN "proxd-test"

#include <json-glib/json-glib.h>
#include <sqlite3.h>
#include <string.h>

#include "e2e-util.h"
#include "harness.h"
#include "prox-keys.h"

#define SPEED 80.0
#define DAY 86400
/* 2026-01-15 23:15 UTC. */
#define WORLD_START (HARNESS_SIM_EPOCH - 8 * 3600 + 23 * 3600 + 15 * 60)
/* 2026-01-15 10:02 UTC: the same-day report. */
#define MORNING_START (HARNESS_SIM_EPOCH - 8 * 3600 + 10 * 3600 + 2 * 60)
#define NEXT_DAY (HARNESS_SIM_EPOCH - 8 * 3600 + DAY)
#define ONSET "2026-01-15"

/* What the key server has stored: the keys (published or not) and the codes used. */
static gint64 stored_keys(E2eAuthority *a)
{
    g_autoptr(GHashTable) s = e2e_authority_status(a);
    return e2e_status_get(s, "keys_unpublished") + e2e_status_get(s, "keys_published");
}

static gint64 codes_used(E2eAuthority *a)
{
    g_autoptr(GHashTable) s = e2e_authority_status(a);
    return e2e_status_get(s, "codes_used");
}

typedef struct {
    guint exposures;
    gchar *level;
} ExposureWatch;

static void on_exposure(ProxdDbusManager1 *proxy, GVariant *exposure, gpointer p)
{
    ExposureWatch *w = p;
    w->exposures++;
    g_free(w->level);
    w->level = NULL;
    g_variant_lookup(exposure, "level", "s", &w->level);
}

/* The authority with its key server and a code for ONSET, the fake world, and a (reports),
 * b and c (sync) started in it. */
typedef struct {
    E2eAuthority auth;
    char *code;
    HarnessDaemon *a, *b, *c;
} World;

static void world_start(World *w, Harness *h)
{
    e2e_authority_init(&w->auth, h);
    w->code = e2e_authority_issue_code(&w->auth, ONSET, 0, NULL);
    e2e_authority_start_keyserver(&w->auth, NULL);
    g_autofree char *a_config = e2e_authority_device_config(&w->auth, E2E_CONFIG_REPORT);
    g_autofree char *sync_config = e2e_authority_device_config(&w->auth, E2E_CONFIG_SYNC);
    harness_start_fake(h);
    w->a = harness_start_proxd(h, "a", 0, "person", a_config);
    w->b = harness_start_proxd(h, "b", 1, "person", sync_config);
    w->c = harness_start_proxd(h, "c", 2, "person", sync_config);
}

static void world_stop(World *w)
{
    harness_stop_proxd(w->a);
    harness_stop_proxd(w->b);
    harness_stop_proxd(w->c);
    e2e_authority_clear(&w->auth);
    g_free(w->code);
}

/* A complete sync on d through D-Bus ends with this risk level. */
static void sync_expect_risk(HarnessDaemon *d, const char *level)
{
    g_autoptr(GVariant) result = e2e_sync_complete(d);
    const char *risk = NULL;
    g_assert_true(g_variant_lookup(result, "risk-level", "&s", &risk));
    g_assert_cmpstr(risk, ==, level);
}

static gboolean has_encounters(gpointer p)
{
    HarnessDaemon *d = p;
    return proxd_dbus_manager1_get_encounters_today(d->proxy) > 0;
}

static void test_report_publish_sync(void)
{
    g_autoptr(Harness) h = harness_new_at("report-sync.json", SPEED, WORLD_START);
    World w;
    world_start(&w, h);
    HarnessDaemon *a = w.a, *b = w.b, *c = w.c;

    ExposureWatch b_watch = {0}, c_watch = {0};
    g_signal_connect(b->proxy, "exposure-detected", G_CALLBACK(on_exposure), &b_watch);
    g_signal_connect(c->proxy, "exposure-detected", G_CALLBACK(on_exposure), &c_watch);

    /* a and b sit together from 23:15 to past midnight (45 simulated minutes). */
    g_assert_true(harness_wait(has_encounters, b, E2E_TIMEOUT_MS));
    harness_wait_sim_time(h, NEXT_DAY + 120);

    /* a reports through proxctl: preview, then the keys of the day that is over. */
    gint64 keys_before = stored_keys(&w.auth);
    const char *report[] = {"--json", "report", "--code", w.code, "--yes", NULL};
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int status = e2e_proxctl(a, report, &out, &err);
    if (status != 0)
        g_test_message("proxctl report: %s%s", out, err);
    g_assert_cmpint(status, ==, 0);
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;
    json_parser_load_from_data(parser, out, -1, &error);
    g_assert_no_error(error);
    JsonObject *o = json_node_get_object(json_parser_get_root(parser));
    g_assert_cmpint(json_object_get_int_member(o, "keys"), >=, 1);
    g_assert_cmpint(json_object_get_int_member(o, "inserted"), >=, 1);
    g_assert_cmpint(json_object_get_int_member(o, "inserted"), ==,
                    json_object_get_int_member(o, "keys"));
    gint64 keys_after_report = stored_keys(&w.auth);
    gint64 codes_after_report = codes_used(&w.auth);
    g_assert_cmpint(keys_after_report, ==, keys_before + json_object_get_int_member(o, "inserted"));
    g_assert_cmpint(codes_after_report, ==, 1);

    /* The same code again (D-Bus): refused as used, nothing new stored. */
    g_autoptr(GVariant) preview = NULL;
    g_assert_true(proxd_dbus_manager1_call_preview_report_sync(
        a->proxy, G_DBUS_CALL_FLAGS_NONE, E2E_TIMEOUT_MS, &preview, NULL, &error));
    g_assert_no_error(error);
    g_autoptr(GVariant) days = g_variant_lookup_value(preview, "days", G_VARIANT_TYPE("at"));
    g_assert_nonnull(days);
    guint inserted = 0;
    g_assert_false(e2e_call_report(a, w.code, days, NULL, &inserted, &error));
    g_autofree char *remote = g_dbus_error_get_remote_error(error);
    g_assert_cmpstr(remote, ==, "org.proxd.Error.CodeUsed");
    g_clear_error(&error);
    g_assert_cmpint(stored_keys(&w.auth), ==, keys_after_report);
    g_assert_cmpint(codes_used(&w.auth), ==, codes_after_report);

    /* The authority publishes; b and c sync. */
    g_auto(GStrv) lists = e2e_authority_publish(&w.auth, 0);
    g_assert_cmpuint(g_strv_length(lists), >=, 1);

    /* ExposureDetected is emitted before the Sync() reply: it has been dispatched. */
    sync_expect_risk(b, "high");
    sync_expect_risk(c, "low");
    g_assert_cmpuint(b_watch.exposures, ==, 1);
    g_assert_cmpstr(b_watch.level, ==, "high");
    g_assert_cmpuint(c_watch.exposures, ==, 0);
    g_assert_true(
        harness_wait_property(b, "RiskLevel", g_variant_new_string("high"), E2E_TIMEOUT_MS));
    g_assert_true(
        harness_wait_property(c, "RiskLevel", g_variant_new_string("low"), E2E_TIMEOUT_MS));
    g_assert_cmpuint(proxd_dbus_manager1_get_last_sync(b->proxy), >, 0);

    /* A second sync, through proxctl, finds nothing new and signals nothing again. */
    const char *sync_argv[] = {"--json", "sync", NULL};
    g_autofree char *sync_out = NULL;
    g_assert_cmpint(e2e_proxctl(b, sync_argv, &sync_out, NULL), ==, 0);
    g_autoptr(JsonParser) sync_parser = json_parser_new();
    json_parser_load_from_data(sync_parser, sync_out, -1, &error);
    g_assert_no_error(error);
    JsonObject *so = json_node_get_object(json_parser_get_root(sync_parser));
    g_assert_true(json_object_get_boolean_member(so, "complete"));
    g_assert_cmpint(json_object_get_int_member(so, "files_imported"), ==, 0);
    g_assert_cmpstr(json_object_get_string_member(so, "risk_level"), ==, "high");
    /* Anything b emitted before that reply has been dispatched by now. */
    g_autoptr(GVariant) ping =
        g_dbus_proxy_call_sync(G_DBUS_PROXY(b->proxy), "org.freedesktop.DBus.Peer.Ping", NULL,
                               G_DBUS_CALL_FLAGS_NONE, E2E_TIMEOUT_MS, NULL, &error);
    g_assert_no_error(error);
    while (g_main_context_iteration(NULL, FALSE))
        ;
    g_assert_cmpuint(b_watch.exposures, ==, 1);

    g_signal_handlers_disconnect_by_data(b->proxy, &b_watch);
    g_signal_handlers_disconnect_by_data(c->proxy, &c_watch);
    g_free(b_watch.level);
    g_free(c_watch.level);
    world_stop(&w);
}

/* The keys the key server stored: hex RPIs of every interval each covers. */
static GHashTable *server_rpis(E2eAuthority *a, guint *n_keys, guint32 *last_end)
{
    GHashTable *rpis = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    g_assert_cmpint(sqlite3_open_v2(a->db, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
    sqlite3_busy_timeout(db, E2E_TIMEOUT_MS);
    g_assert_cmpint(sqlite3_prepare_v2(db,
                                       "SELECT key_data, rolling_start, rolling_period FROM keys",
                                       -1, &stmt, NULL),
                    ==, SQLITE_OK);
    *n_keys = 0;
    *last_end = 0;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        uint8_t rpik[PROX_KEY_LEN];
        guint32 start = (guint32)sqlite3_column_int64(stmt, 1);
        guint32 period = (guint32)sqlite3_column_int64(stmt, 2);
        g_assert_cmpint(sqlite3_column_bytes(stmt, 0), ==, PROX_KEY_LEN);
        prox_rpik_derive(sqlite3_column_blob(stmt, 0), rpik);
        for (guint32 i = 0; i < period; i++) {
            ProxRpi rpi;
            prox_rpi_compute(rpik, start + i, &rpi);
            g_hash_table_add(rpis, harness_hex(rpi.bytes, sizeof rpi.bytes));
        }
        (*n_keys)++;
        *last_end = MAX(*last_end, start + period);
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rpis;
}

/* Same-day release: a reports in the morning of the day a and b met. The report carries the
 * key in use up to the current interval; a broadcasts from a new key at once; the key is
 * published only once its last interval is over, and then b is warned about that morning. */
static void test_same_day_report(void)
{
    g_autoptr(Harness) h = harness_new_at("report-sync.json", SPEED, MORNING_START);
    World w;
    world_start(&w, h);
    HarnessDaemon *a = w.a, *b = w.b, *c = w.c;

    /* a and b sit together for 40 minutes. */
    g_assert_true(harness_wait(has_encounters, b, E2E_TIMEOUT_MS));
    harness_wait_sim_time(h, MORNING_START + 40 * 60);
    g_autoptr(GVariant) before = harness_fake_advertisement(a);
    g_assert_nonnull(before);
    g_autofree char *rpi_before = harness_advert_rpi_hex(before);

    const char *report[] = {"--json", "report", "--code", w.code, "--yes", NULL};
    g_autofree char *out = NULL, *err = NULL;
    int status = e2e_proxctl(a, report, &out, &err);
    if (status != 0)
        g_test_message("proxctl report: %s%s", out, err);
    g_assert_cmpint(status, ==, 0);
    double reported_at = harness_sim_now(h);

    /* The server has today's key, ending with the interval of the report. */
    guint n_keys = 0;
    guint32 end = 0;
    g_autoptr(GHashTable) reported = server_rpis(&w.auth, &n_keys, &end);
    g_assert_cmpuint(n_keys, ==, 1);
    g_assert_cmpuint(end, ==, prox_interval_number((gint64)reported_at) + 1);
    g_assert_true(g_hash_table_contains(reported, rpi_before));

    /* a left that key at once: a new identifier, not one of the reported key's. */
    g_assert_true(harness_wait_new_rpi_on_air(a, rpi_before, E2E_TIMEOUT_MS));
    g_autoptr(GVariant) after = harness_fake_advertisement(a);
    g_autofree char *rpi_after = harness_advert_rpi_hex(after);
    g_assert_false(g_hash_table_contains(reported, rpi_after));
    g_assert_cmpfloat(harness_sim_now(h) - reported_at, <, 300);

    /* Not published while its last interval lasts... */
    g_auto(GStrv) early = e2e_authority_publish(&w.auth, 0);
    g_assert_cmpuint(g_strv_length(early), ==, 0);
    /* ...and published once it is over: b is warned of the morning, c is not. */
    harness_wait_sim_time(h, (double)prox_interval_start(end) + 1);
    g_auto(GStrv) lists = e2e_authority_publish(&w.auth, 0);
    g_assert_cmpuint(g_strv_length(lists), ==, 1);
    sync_expect_risk(b, "high");
    sync_expect_risk(c, "low");

    world_stop(&w);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/e2e/report-publish-sync", test_report_publish_sync);
    g_test_add_func("/e2e/same-day-report", test_same_day_report);
    return g_test_run();
}
