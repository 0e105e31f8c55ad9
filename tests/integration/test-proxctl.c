/* test-proxctl.c - proxctl against real proxd processes: errors when proxd is not running,
 * status and encounters (text and JSON, identifiers only with --debug), exposures, and the
 * agent turning ExposureDetected into a desktop notification. */
#define G_LOG_DOMAIN "proxd-test"

#include <json-glib/json-glib.h>
#include <signal.h>
#include <string.h>

#include "harness.h"
#include "prox-risk.h"
#include "prox-store.h"

#define TIMEOUT_MS 20000

static const char person_config[] = "[Scanning]\n"
                                    "ScanSeconds=20\n"
                                    "IntervalMinSeconds=40\n"
                                    "IntervalMaxSeconds=60\n"
                                    "CommitSeconds=10\n";

static JsonObject *parse_object(JsonParser *parser, const char *text)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(json_parser_load_from_data(parser, text, -1, &error));
    g_assert_no_error(error);
    JsonNode *root = json_parser_get_root(parser);
    g_assert_true(JSON_NODE_HOLDS_OBJECT(root));
    return json_node_get_object(root);
}

static gboolean is_advertising(gpointer p)
{
    HarnessDaemon *d = p;
    return proxd_dbus_manager1_get_advertising(d->proxy);
}

static gboolean heard_something(gpointer p)
{
    HarnessDaemon *d = p;
    return proxd_dbus_manager1_get_encounters_today(d->proxy) > 0;
}

/* ---- tests ---- */

static void test_not_running(void)
{
    g_autoptr(Harness) h = harness_new("two-devices.json", 1);
    g_auto(HarnessRun) r = {0};
    harness_proxctl(&r, h, "org.proxd.nobody", "status", NULL);
    g_assert_cmpint(r.status, ==, 1);
    g_assert_true(strstr(r.err, "not running") != NULL);
    g_assert_true(strstr(r.err, "org.proxd.nobody") != NULL);
    g_assert_cmpstr(r.out, ==, "");

    g_auto(HarnessRun) usage = {0};
    harness_proxctl(&usage, h, "org.proxd.nobody", "frobnicate", NULL);
    g_assert_cmpint(usage.status, ==, 2);
}

static void test_status_and_encounters(void)
{
    g_autoptr(Harness) h = harness_new("two-devices.json", 20);
    harness_start_fake(h);
    HarnessDaemon *alice = harness_start_proxd(h, "alice", 0, "person", person_config);
    HarnessDaemon *bob = harness_start_proxd(h, "bob", 1, "person", person_config);
    g_assert_true(harness_wait(is_advertising, alice, TIMEOUT_MS));
    g_assert_true(harness_wait(heard_something, bob, TIMEOUT_MS));
    g_autoptr(JsonParser) parser = json_parser_new();

    g_auto(HarnessRun) text = {0};
    harness_proxctl(&text, h, bob->bus_name, "status", NULL);
    g_assert_cmpint(text.status, ==, 0);
    g_test_message("%s", text.out);
    g_assert_true(g_str_has_prefix(text.out, "proxd: active\n"));
    g_assert_true(strstr(text.out, "Adapter:      hci1") != NULL);

    g_auto(HarnessRun) json = {0};
    harness_proxctl(&json, h, bob->bus_name, "status", "--json", NULL);
    g_assert_cmpint(json.status, ==, 0);
    JsonObject *status = parse_object(parser, json.out);
    g_assert_cmpstr(json_object_get_string_member(status, "state"), ==, "active");
    g_assert_cmpstr(json_object_get_string_member(status, "role"), ==, "person");
    g_assert_cmpstr(json_object_get_string_member(status, "adapter"), ==, "hci1");
    g_assert_true(json_object_get_boolean_member(status, "advertising"));
    g_assert_cmpint(json_object_get_int_member(status, "encounters_today"), >=, 1);
    g_assert_true(json_object_get_null_member(status, "last_sync"));
    g_assert_cmpstr(json_object_get_string_member(status, "risk_level"), ==, "unknown");

    /* Counts only, no identifiers, without --debug. */
    g_auto(HarnessRun) enc = {0};
    harness_proxctl(&enc, h, bob->bus_name, "encounters", "--json", NULL);
    g_assert_cmpint(enc.status, ==, 0);
    JsonObject *counts = parse_object(parser, enc.out);
    g_assert_false(json_object_has_member(counts, "sightings"));
    JsonArray *rows = json_object_get_array_member(counts, "hours");
    g_assert_cmpuint(json_array_get_length(rows), >=, 1);
    gint64 total = 0;
    for (guint i = 0; i < json_array_get_length(rows); i++)
        total += json_object_get_int_member(json_array_get_object_element(rows, i), "encounters");
    g_assert_cmpint(total, >=, 1);

    g_autoptr(GVariant) ad = harness_fake_advertisement(alice);
    g_autofree char *alice_rpi = harness_advert_rpi_hex(ad);
    g_auto(HarnessRun) plain = {0};
    harness_proxctl(&plain, h, bob->bus_name, "encounters", NULL);
    g_assert_cmpint(plain.status, ==, 0);
    g_assert_null(strstr(plain.out, alice_rpi));

    /* --debug lists the identifiers (the test bus lets everyone call GetSightings; the
     * system bus policy restricts it to root and the proxd group). */
    g_auto(HarnessRun) debug = {0};
    harness_proxctl(&debug, h, bob->bus_name, "encounters", "--json", "--debug", NULL);
    g_assert_cmpint(debug.status, ==, 0);
    JsonObject *dbg = parse_object(parser, debug.out);
    JsonArray *sightings = json_object_get_array_member(dbg, "sightings");
    gboolean found = FALSE;
    for (guint i = 0; i < json_array_get_length(sightings); i++) {
        JsonObject *s = json_array_get_object_element(sightings, i);
        found = found || g_str_equal(json_object_get_string_member(s, "rpi"), alice_rpi);
    }
    g_assert_true(found);
}

/* ---- agent: a notification server in this process ---- */

static const char notifications_xml[] =
    "<node><interface name='org.freedesktop.Notifications'>"
    "<method name='Notify'><arg type='s' direction='in'/><arg type='u' direction='in'/>"
    "<arg type='s' direction='in'/><arg type='s' direction='in'/><arg type='s' direction='in'/>"
    "<arg type='as' direction='in'/><arg type='a{sv}' direction='in'/>"
    "<arg type='i' direction='in'/><arg type='u' direction='out'/></method>"
    "</interface></node>";

typedef struct {
    GPtrArray *summaries;
    GPtrArray *bodies;
    guint8 urgency;
} Notifications;

static void on_notify(GDBusConnection *connection, const char *sender, const char *path,
                      const char *iface, const char *method, GVariant *params,
                      GDBusMethodInvocation *invocation, gpointer user_data)
{
    Notifications *n = user_data;
    const char *app, *icon, *summary, *body;
    guint32 replaces;
    gint32 timeout;
    g_autoptr(GVariant) actions = NULL, hints = NULL;
    g_variant_get(params, "(&su&s&s&s@as@a{sv}i)", &app, &replaces, &icon, &summary, &body,
                  &actions, &hints, &timeout);
    g_variant_lookup(hints, "urgency", "y", &n->urgency);
    g_ptr_array_add(n->summaries, g_strdup(summary));
    g_ptr_array_add(n->bodies, g_strdup(body));
    g_dbus_method_invocation_return_value(invocation, g_variant_new("(u)", n->summaries->len));
}

static gboolean notified(gpointer p)
{
    return ((Notifications *)p)->summaries->len > 0;
}

static gboolean risk_high(gpointer p)
{
    HarnessDaemon *d = p;
    return g_strcmp0(proxd_dbus_manager1_get_risk_level(d->proxy), "high") == 0;
}

static gboolean first_key_id(gint64 key_id, const ProxDiagnosisKey *key, gpointer user_data)
{
    *(gint64 *)user_data = key_id;
    return FALSE;
}

/* A high-risk exposure window today, as the matching step would store it: five scans of
 * 300 s at 50 dB attenuation from a key with a confirmed test. */
static void store_exposure(HarnessDaemon *d, gint64 now)
{
    g_autofree char *path = g_build_filename(d->state_dir, "proxd.db", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(ProxStore) store = prox_store_open(path, NULL, &error);
    g_assert_no_error(error);

    ProxDiagnosisKey key = {0};
    memset(key.tek.key, 0x5a, sizeof key.tek.key);
    key.tek.rolling_start = prox_interval_number(prox_risk_day_of(now));
    key.tek.rolling_period = PROX_TEK_ROLLING_PERIOD;
    key.report_type = PROX_REPORT_CONFIRMED_TEST;
    key.has_days_since_onset = TRUE;
    key.days_since_onset = 0;
    gint64 batch_id = 0;
    guint64 added = 0;
    g_assert_true(
        prox_store_import_batch(store, "test", "batch-1", now, &key, 1, &batch_id, &added, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(added, ==, 1);

    gint64 key_id = 0;
    g_assert_true(prox_store_foreach_diagnosis_key(store, 0, first_key_id, &key_id, &error));
    g_assert_no_error(error);
    g_assert_cmpint(key_id, >, 0);

    ProxExposureWindow window;
    prox_exposure_window_init(&window);
    window.day = prox_risk_day_of(now);
    window.start = MAX(window.day, now - 1800);
    window.end = window.start + 1500;
    window.report_type = PROX_REPORT_CONFIRMED_TEST;
    window.infectiousness = PROX_INFECTIOUSNESS_STANDARD;
    window.calibration_confidence = PROX_CALIBRATION_LOW;
    for (int i = 0; i < 5; i++) {
        ProxWindowScan scan = {
            .min_attenuation = 50, .typical_attenuation = 55, .seconds_since_last_scan = 300};
        g_array_append_val(window.scans, scan);
    }
    g_assert_true(prox_store_save_exposure_windows(store, key_id, &window, 1, &error));
    g_assert_no_error(error);
    prox_exposure_window_clear(&window);
}

static void test_agent_notifies(void)
{
    g_autoptr(Harness) h = harness_new("two-devices.json", 20);
    harness_start_fake(h);
    HarnessDaemon *alice = harness_start_proxd(h, "alice", 0, "person", person_config);
    g_assert_true(harness_wait(is_advertising, alice, TIMEOUT_MS));

    Notifications n = {g_ptr_array_new_with_free_func(g_free),
                       g_ptr_array_new_with_free_func(g_free), 0};
    g_autoptr(GError) error = NULL;
    g_autoptr(GDBusNodeInfo) info = g_dbus_node_info_new_for_xml(notifications_xml, &error);
    g_assert_no_error(error);
    static const GDBusInterfaceVTable vtable = {on_notify, NULL, NULL, {0}};
    guint reg = g_dbus_connection_register_object(h->connection, "/org/freedesktop/Notifications",
                                                  info->interfaces[0], &vtable, &n, NULL, &error);
    g_assert_no_error(error);
    guint own = g_bus_own_name_on_connection(h->connection, "org.freedesktop.Notifications",
                                             G_BUS_NAME_OWNER_FLAGS_NONE, NULL, NULL, NULL, NULL);

    /* The agent, and proof it listens (its log line comes after it subscribed). */
    g_autofree char *agent_log = g_build_filename(h->dir, "agent.log", NULL);
    g_autofree char *name_arg = g_strdup_printf("--bus-name=%s", alice->bus_name);
    g_autoptr(GSubprocessLauncher) launcher = harness_launcher(h, G_SUBPROCESS_FLAGS_STDERR_MERGE);
    g_subprocess_launcher_set_stdout_file_path(launcher, agent_log);
    g_subprocess_launcher_setenv(launcher, "G_MESSAGES_DEBUG", "proxctl", TRUE);
    g_autoptr(GSubprocess) agent = g_subprocess_launcher_spawn(
        launcher, &error, g_getenv("PROXCTL"), "--session", name_arg, "agent", NULL);
    g_assert_no_error(error);
    g_assert_true(harness_wait_file_contains(agent_log, "agent: listening", TIMEOUT_MS));
    g_assert_cmpuint(n.summaries->len, ==, 0); /* risk was not high at start */

    store_exposure(alice, (gint64)harness_sim_now(h));
    /* proxd re-scores after its next commit and signals the new high-risk day. */
    g_assert_true(harness_wait(risk_high, alice, TIMEOUT_MS));
    g_assert_true(harness_wait(notified, &n, TIMEOUT_MS));
    g_assert_cmpstr(g_ptr_array_index(n.summaries, 0), ==, "Possible exposure");
    g_assert_cmpuint(n.urgency, ==, 2);
    g_test_message("notification: %s", (char *)g_ptr_array_index(n.bodies, 0));

    g_auto(HarnessRun) exp = {0};
    harness_proxctl(&exp, h, alice->bus_name, "exposures", "--json", NULL);
    g_assert_cmpint(exp.status, ==, 0);
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *o = parse_object(parser, exp.out);
    g_assert_cmpstr(json_object_get_string_member(o, "risk_level"), ==, "high");
    JsonArray *days = json_object_get_array_member(o, "days");
    g_assert_cmpuint(json_array_get_length(days), ==, 1);
    JsonObject *day = json_array_get_object_element(days, 0);
    g_assert_cmpstr(json_object_get_string_member(day, "level"), ==, "high");
    g_assert_cmpint(json_object_get_int_member(day, "windows"), ==, 1);

    g_subprocess_send_signal(agent, SIGTERM);
    g_assert_true(g_subprocess_wait(agent, NULL, &error));
    g_assert_true(g_subprocess_get_if_exited(agent));
    g_assert_cmpint(g_subprocess_get_exit_status(agent), ==, 0);

    /* Signalled once per day: proxd remembers the day it signalled, across restarts. */
    harness_stop_proxd(alice);
    g_autofree char *path = g_build_filename(alice->state_dir, "proxd.db", NULL);
    g_autoptr(ProxStore) store = prox_store_open(path, NULL, &error);
    g_assert_no_error(error);
    g_autofree char *notified_day = NULL;
    g_assert_true(prox_store_get_setting(store, "exposure-notified-day", &notified_day, &error));
    g_autofree char *expected_day =
        g_strdup_printf("%" G_GINT64_FORMAT, prox_risk_day_of((gint64)harness_sim_now(h)));
    g_assert_cmpstr(notified_day, ==, expected_day);
    g_bus_unown_name(own);
    g_dbus_connection_unregister_object(h->connection, reg);
    g_ptr_array_unref(n.summaries);
    g_ptr_array_unref(n.bodies);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/proxctl/not-running", test_not_running);
    g_test_add_func("/proxctl/status-and-encounters", test_status_and_encounters);
    g_test_add_func("/proxctl/agent-notifies-exposure", test_agent_notifies);
    return g_test_run();
}
