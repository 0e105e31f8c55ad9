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
#include <signal.h>

#include "e2e-util.h"
#include "harness.h"

#define SPEED 80.0
#define DAY 86400
/* 2026-01-15 23:15 UTC. */
#define WORLD_START (HARNESS_SIM_EPOCH - 8 * 3600 + 23 * 3600 + 15 * 60)
#define NEXT_DAY (HARNESS_SIM_EPOCH - 8 * 3600 + DAY)
#define ONSET "2026-01-15"
#define KEY_ID "310"
#define KEY_VERSION "v1"
#define TIMEOUT_MS 60000
#define SYNC_ATTEMPTS 3

typedef struct {
    Harness *h;
    char *auth_dir;
    char *db;
    char *sec;
    char *pub;
    char *published;
    GSubprocess *keyserver;
} Authority;

/* Runs a tool on the test bus and sim clock; asserts exit 0; returns its stdout. */
static char *run_tool(Harness *h, const char *const *argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocessLauncher) launcher =
        harness_launcher(h, G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
    g_autoptr(GSubprocess) p = g_subprocess_launcher_spawnv(launcher, argv, &error);
    g_assert_no_error(error);
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    g_subprocess_communicate_utf8(p, NULL, NULL, &out, &err, &error);
    g_assert_no_error(error);
    if (!g_subprocess_get_if_exited(p) || g_subprocess_get_exit_status(p) != 0) {
        g_autofree char *cmd = g_strjoinv(" ", (char **)argv);
        g_test_message("%s failed:\n%s%s", cmd, out, err);
        g_assert_not_reached();
    }
    return g_steal_pointer(&out);
}

static gboolean file_has_port(gpointer p)
{
    g_autofree char *text = NULL;
    return g_file_get_contents(p, &text, NULL, NULL) && g_strstrip(text)[0] != '\0';
}

static void on_dir_changed(GFileMonitor *monitor, GFile *file, GFile *other,
                           GFileMonitorEvent event, gpointer user_data)
{
}

static void authority_setup(Authority *a, Harness *h, char **code, char **upload_url)
{
    g_autoptr(GError) error = NULL;
    a->h = h;
    a->auth_dir = g_build_filename(h->dir, "authority", NULL);
    a->published = g_build_filename(h->dir, "published", NULL);
    a->db = g_build_filename(a->auth_dir, "authority.db", NULL);
    a->sec = g_build_filename(a->auth_dir, KEY_ID "-" KEY_VERSION ".sec", NULL);
    a->pub = g_build_filename(a->auth_dir, KEY_ID "-" KEY_VERSION ".pub", NULL);
    g_assert_cmpint(g_mkdir_with_parents(a->auth_dir, 0700), ==, 0);
    g_assert_cmpint(g_mkdir_with_parents(a->published, 0755), ==, 0);

    const char *authority = g_getenv("PROX_AUTHORITY");
    g_assert_nonnull(authority);
    const char *init[] = {authority,   "init-key", "--key-id",  KEY_ID, "--key-version",
                          KEY_VERSION, "--dir",    a->auth_dir, NULL};
    g_free(run_tool(h, init));
    const char *issue[] = {authority, "issue-code",  "--db",           a->db, "--onset",
                           ONSET,     "--test-type", "confirmed-test", NULL};
    *code = g_strstrip(run_tool(h, issue));
    g_assert_cmpstr(*code, !=, "");

    g_autofree char *port_file = g_build_filename(a->auth_dir, "keyserver.port", NULL);
    g_autofree char *log = g_build_filename(h->dir, "keyserver.log", NULL);
    g_autoptr(GSubprocessLauncher) launcher = harness_launcher(h, G_SUBPROCESS_FLAGS_STDERR_MERGE);
    g_subprocess_launcher_set_stdout_file_path(launcher, log);
    /* The port file appears (atomically) once the server listens; the monitor wakes the
     * wait below. */
    g_autoptr(GFile) dir = g_file_new_for_path(a->auth_dir);
    g_autoptr(GFileMonitor) monitor =
        g_file_monitor_directory(dir, G_FILE_MONITOR_NONE, NULL, &error);
    g_assert_no_error(error);
    g_signal_connect(monitor, "changed", G_CALLBACK(on_dir_changed), NULL);
    const char *server[] = {g_getenv("PROX_KEYSERVER"),
                            "--db",
                            a->db,
                            "--listen",
                            "127.0.0.1:0",
                            "--port-file",
                            port_file,
                            NULL};
    g_assert_nonnull(server[0]);
    a->keyserver = g_subprocess_launcher_spawnv(launcher, server, &error);
    g_assert_no_error(error);
    g_assert_true(harness_wait(file_has_port, port_file, TIMEOUT_MS));
    g_autofree char *port = NULL;
    g_file_get_contents(port_file, &port, NULL, &error);
    g_assert_no_error(error);
    *upload_url = g_strdup_printf("http://127.0.0.1:%s/v1/publish", g_strstrip(port));
}

static void authority_clear(Authority *a)
{
    if (a->keyserver != NULL) {
        g_subprocess_send_signal(a->keyserver, SIGTERM);
        g_subprocess_wait(a->keyserver, NULL, NULL);
        g_clear_object(&a->keyserver);
    }
    g_free(a->auth_dir);
    g_free(a->db);
    g_free(a->sec);
    g_free(a->pub);
    g_free(a->published);
}

/* `prox-authority status`: what the key server has stored. */
static char *authority_status(Authority *a)
{
    const char *argv[] = {g_getenv("PROX_AUTHORITY"), "status", "--db", a->db, NULL};
    return run_tool(a->h, argv);
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

typedef struct {
    GVariant *result;
    GError *error;
    gboolean done;
} SyncCall;

static void on_sync_reply(GObject *source, GAsyncResult *res, gpointer p)
{
    SyncCall *c = p;
    proxd_dbus_manager1_call_sync_finish(PROXD_DBUS_MANAGER1(source), &c->result, res, &c->error);
    c->done = TRUE;
}

static gboolean call_done(gpointer p)
{
    return ((SyncCall *)p)->done;
}

/* Sync() until a run is complete: a scheduled run that started before the list was
 * published may be joined by the first call. Returns the complete run's result. */
static GVariant *sync_now(HarnessDaemon *d)
{
    for (guint attempt = 0; attempt < SYNC_ATTEMPTS; attempt++) {
        SyncCall c = {0};
        proxd_dbus_manager1_call_sync(d->proxy, G_DBUS_CALL_FLAGS_NONE, TIMEOUT_MS, NULL,
                                      on_sync_reply, &c);
        g_assert_true(harness_wait(call_done, &c, TIMEOUT_MS));
        g_assert_no_error(c.error);
        gboolean complete = FALSE;
        g_assert_true(g_variant_lookup(c.result, "complete", "b", &complete));
        if (complete)
            return c.result;
        const char *error = "";
        g_variant_lookup(c.result, "error", "&s", &error);
        g_test_message("%s: sync attempt %u incomplete: %s", d->name, attempt + 1, error);
        g_variant_unref(c.result);
    }
    g_assert_not_reached();
}

static gboolean has_encounters(gpointer p)
{
    HarnessDaemon *d = p;
    return proxd_dbus_manager1_get_encounters_today(d->proxy) > 0;
}

static void test_report_publish_sync(void)
{
    g_autoptr(Harness) h = harness_new_at("report-sync.json", SPEED, WORLD_START);
    Authority auth = {0};
    g_autofree char *code = NULL;
    g_autofree char *upload_url = NULL;
    authority_setup(&auth, h, &code, &upload_url);

    g_autofree char *a_config = g_strdup_printf("[Report]\nURL=%s\n", upload_url);
    g_autofree char *sync_config = g_strdup_printf("[Sync]\nURL=file://%s/index.txt\n"
                                                   "PinnedKeys=%s\nIntervalSeconds=86400\n",
                                                   auth.published, auth.pub);
    harness_start_fake(h);
    HarnessDaemon *a = harness_start_proxd(h, "a", 0, "person", a_config);
    HarnessDaemon *b = harness_start_proxd(h, "b", 1, "person", sync_config);
    HarnessDaemon *c = harness_start_proxd(h, "c", 2, "person", sync_config);

    ExposureWatch b_watch = {0}, c_watch = {0};
    g_signal_connect(b->proxy, "exposure-detected", G_CALLBACK(on_exposure), &b_watch);
    g_signal_connect(c->proxy, "exposure-detected", G_CALLBACK(on_exposure), &c_watch);

    /* a and b sit together from 23:15 to past midnight (45 simulated minutes). */
    g_assert_true(harness_wait(has_encounters, b, TIMEOUT_MS));
    harness_wait_sim_time(h, NEXT_DAY + 120);

    /* a reports through proxctl: preview, then the keys of the day that is over. */
    g_autofree char *before = authority_status(&auth);
    g_autofree char *name_arg = g_strdup_printf("--bus-name=%s", a->bus_name);
    const char *report[] = {g_getenv("PROXCTL"),
                            "--session",
                            name_arg,
                            "--json",
                            "report",
                            "--code",
                            code,
                            "--yes",
                            NULL};
    g_autofree char *out = run_tool(h, report);
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;
    json_parser_load_from_data(parser, out, -1, &error);
    g_assert_no_error(error);
    JsonObject *o = json_node_get_object(json_parser_get_root(parser));
    g_assert_cmpint(json_object_get_int_member(o, "keys"), >=, 1);
    g_assert_cmpint(json_object_get_int_member(o, "inserted"), >=, 1);
    g_assert_cmpint(json_object_get_int_member(o, "inserted"), ==,
                    json_object_get_int_member(o, "keys"));
    g_autofree char *after_report = authority_status(&auth);
    g_assert_cmpstr(before, !=, after_report);

    /* The same code again (D-Bus): refused as used, nothing new stored. */
    g_autoptr(GVariant) preview = NULL;
    g_assert_true(proxd_dbus_manager1_call_preview_report_sync(a->proxy, G_DBUS_CALL_FLAGS_NONE,
                                                               TIMEOUT_MS, &preview, NULL, &error));
    g_assert_no_error(error);
    g_autoptr(GVariant) days = g_variant_lookup_value(preview, "days", G_VARIANT_TYPE("at"));
    g_assert_nonnull(days);
    guint inserted = 0;
    /* Report(code, days) or, with venue check-ins, Report(code, days, checkins): whichever
     * the daemon declares. */
    g_assert_false(e2e_call_report(a, code, days, &inserted, &error));
    g_autofree char *remote = g_dbus_error_get_remote_error(error);
    g_assert_cmpstr(remote, ==, "org.proxd.Error.CodeUsed");
    g_clear_error(&error);
    g_autofree char *after_reuse = authority_status(&auth);
    g_assert_cmpstr(after_report, ==, after_reuse);

    /* The authority publishes; b and c sync. */
    const char *publish[] = {g_getenv("PROX_AUTHORITY"),
                             "publish",
                             "--db",
                             auth.db,
                             "--key",
                             auth.sec,
                             "--out",
                             auth.published,
                             "--min-keys",
                             "0",
                             "--padding-jitter",
                             "0",
                             "--embargo",
                             "0",
                             NULL};
    g_free(run_tool(h, publish));

    g_autoptr(GVariant) b_result = sync_now(b);
    g_autoptr(GVariant) c_result = sync_now(c);
    /* ExposureDetected is emitted before the Sync() reply: it has been dispatched. */
    const char *b_risk = NULL, *c_risk = NULL;
    g_assert_true(g_variant_lookup(b_result, "risk-level", "&s", &b_risk));
    g_assert_true(g_variant_lookup(c_result, "risk-level", "&s", &c_risk));
    g_assert_cmpstr(b_risk, ==, "high");
    g_assert_cmpstr(c_risk, ==, "low");
    g_assert_cmpuint(b_watch.exposures, ==, 1);
    g_assert_cmpstr(b_watch.level, ==, "high");
    g_assert_cmpuint(c_watch.exposures, ==, 0);
    g_assert_true(harness_wait_property(b, "RiskLevel", g_variant_new_string("high"), TIMEOUT_MS));
    g_assert_true(harness_wait_property(c, "RiskLevel", g_variant_new_string("low"), TIMEOUT_MS));
    g_assert_cmpuint(proxd_dbus_manager1_get_last_sync(b->proxy), >, 0);

    /* A second sync, through proxctl, finds nothing new and signals nothing again. */
    g_autofree char *b_name_arg = g_strdup_printf("--bus-name=%s", b->bus_name);
    const char *sync_argv[] = {
        g_getenv("PROXCTL"), "--session", b_name_arg, "--json", "sync", NULL};
    g_autofree char *sync_out = run_tool(h, sync_argv);
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
                               G_DBUS_CALL_FLAGS_NONE, TIMEOUT_MS, NULL, &error);
    g_assert_no_error(error);
    while (g_main_context_iteration(NULL, FALSE))
        ;
    g_assert_cmpuint(b_watch.exposures, ==, 1);

    g_signal_handlers_disconnect_by_data(b->proxy, &b_watch);
    g_signal_handlers_disconnect_by_data(c->proxy, &c_watch);
    g_free(b_watch.level);
    g_free(c_watch.level);
    harness_stop_proxd(a);
    harness_stop_proxd(b);
    harness_stop_proxd(c);
    authority_clear(&auth);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/e2e/report-publish-sync", test_report_publish_sync);
    return g_test_run();
}
