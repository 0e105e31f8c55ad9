/* proxctl - status, encounters and exposures of a running proxd, and the desktop agent that
 * turns proxd's ExposureDetected signal into a notification. Talks to proxd over D-Bus
 * (org.proxd.Manager1 on the system bus, or the session bus with --session).
 */
#define G_LOG_DOMAIN "proxctl"

#include <gio/gio.h>
#include <glib-unix.h>
#include <json-glib/json-glib.h>
#include <locale.h>
#include <stdio.h>
#include <unistd.h>

#include "proxd-dbus-generated.h"

#define PROXD_DEFAULT_BUS_NAME "org.proxd"
#define PROXD_OBJECT_PATH "/org/proxd"
#define NOTIFICATIONS_NAME "org.freedesktop.Notifications"
#define NOTIFICATIONS_PATH "/org/freedesktop/Notifications"
#define NOTIFICATIONS_IFACE "org.freedesktop.Notifications"

enum {
    EXIT_OK = 0,
    EXIT_FAILURE_ = 1, /* proxd not running, call failed */
    EXIT_USAGE = 2,
};

typedef struct {
    gboolean session;
    char *bus_name;
    gboolean json;
    gboolean debug;
    int days;
    char *code;
    gboolean yes;
} Options;

static const char description[] =
    "Commands:\n"
    "  status       what proxd is doing: state and why, adapter, advertising, scanning,\n"
    "               encounter counts, last key-list sync, risk level\n"
    "  encounters   distinct identifiers heard per hour (--days, default 1); identifiers\n"
    "               themselves only with --debug (root or the proxd group)\n"
    "  exposures    days on which exposures to reported cases were found (--days, default 14)\n"
    "  sync         download the new key lists now, with progress, and check them for\n"
    "               exposures (root or the proxd group); exit 0 only when complete\n"
    "  report       report a positive test: --code CODE (from the health authority); shows\n"
    "               exactly what will be sent and asks for confirmation unless --yes\n"
    "               (root or the proxd group)\n"
    "  agent        stay running in the user session and show a desktop notification\n"
    "               (org.freedesktop.Notifications) whenever proxd reports an exposure\n"
    "\n"
    "An identifier changes every 10 to 20 minutes, so counts are device-intervals, not\n"
    "people.\n"
    "\n"
    "Environment: PROXD_BUS=session is the same as --session; PROXD_BUS_NAME is the\n"
    "default of --bus-name.\n"
    "\n"
    "Exit status: 0 on success, 1 when proxd is not running or a request failed, 2 for\n"
    "invalid arguments.";

/* ---- helpers ---- */

static char *format_time(gint64 t)
{
    if (t <= 0)
        return g_strdup("never");
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local(t);
    return dt != NULL ? g_date_time_format(dt, "%Y-%m-%d %H:%M:%S") : g_strdup("?");
}

static char *format_day(gint64 t)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(t);
    return dt != NULL ? g_date_time_format(dt, "%a %Y-%m-%d") : g_strdup("?");
}

static char *iso_time(gint64 t)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(t);
    return dt != NULL ? g_date_time_format_iso8601(dt) : g_strdup("");
}

static void json_add_time(JsonBuilder *b, const char *member, gint64 t)
{
    json_builder_set_member_name(b, member);
    if (t <= 0) {
        json_builder_add_null_value(b);
    } else {
        g_autofree char *iso = iso_time(t);
        json_builder_add_string_value(b, iso);
    }
}

static void print_json(JsonBuilder *b)
{
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    g_autoptr(JsonGenerator) gen = json_generator_new();
    json_generator_set_pretty(gen, TRUE);
    json_generator_set_root(gen, root);
    g_autofree char *text = json_generator_to_data(gen, NULL);
    g_print("%s\n", text);
}

static char *hex(const guint8 *bytes, gsize len)
{
    GString *s = g_string_sized_new(len * 2);
    for (gsize i = 0; i < len; i++)
        g_string_append_printf(s, "%02x", bytes[i]);
    return g_string_free(s, FALSE);
}

static const char *bus_label(const Options *opts)
{
    return opts->session ? "session" : "system";
}

/* A proxy for proxd, or NULL with a message on stderr explaining why there is none. */
static ProxdDbusManager1 *connect_proxd(const Options *opts, GDBusConnection **out_connection)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GDBusConnection) connection =
        g_bus_get_sync(opts->session ? G_BUS_TYPE_SESSION : G_BUS_TYPE_SYSTEM, NULL, &error);
    if (connection == NULL) {
        g_printerr("proxctl: cannot connect to the %s bus: %s\n", bus_label(opts), error->message);
        return NULL;
    }
    /* Status requests never start proxd through bus activation. */
    g_autoptr(ProxdDbusManager1) proxy =
        proxd_dbus_manager1_proxy_new_sync(connection, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START,
                                           opts->bus_name, PROXD_OBJECT_PATH, NULL, &error);
    if (proxy == NULL) {
        g_printerr("proxctl: cannot reach proxd: %s\n", error->message);
        return NULL;
    }
    g_autofree char *owner = g_dbus_proxy_get_name_owner(G_DBUS_PROXY(proxy));
    if (owner == NULL) {
        g_printerr("proxctl: proxd is not running (nobody owns %s on the %s bus).\n",
                   opts->bus_name, bus_label(opts));
        if (!opts->session)
            g_printerr("Start it with: systemctl start proxd\n");
        return NULL;
    }
    if (out_connection != NULL)
        *out_connection = g_steal_pointer(&connection);
    return g_steal_pointer(&proxy);
}

static void print_call_error(const char *what, GError *error)
{
    g_autofree char *remote = g_dbus_error_get_remote_error(error);
    g_dbus_error_strip_remote_error(error);
    if (g_strcmp0(remote, "org.freedesktop.DBus.Error.AccessDenied") == 0)
        g_printerr("proxctl: %s: permission denied; this needs root or membership in the "
                   "proxd group\n",
                   what);
    else if (g_strcmp0(remote, "org.freedesktop.DBus.Error.ServiceUnknown") == 0 ||
             g_strcmp0(remote, "org.freedesktop.DBus.Error.NameHasNoOwner") == 0)
        g_printerr("proxctl: %s: proxd stopped while we were asking\n", what);
    else
        g_printerr("proxctl: %s: %s\n", what, error->message);
}

static const char *risk_explanation(const char *level)
{
    if (g_strcmp0(level, "high") == 0)
        return "high: you were close to someone who reported a positive test";
    if (g_strcmp0(level, "low") == 0)
        return "low: no relevant exposure found";
    return "unknown: no key list has been checked yet";
}

/* ---- status ---- */

static int cmd_status(const Options *opts)
{
    g_autoptr(ProxdDbusManager1) proxd = connect_proxd(opts, NULL);
    if (proxd == NULL)
        return EXIT_FAILURE_;

    const char *state = proxd_dbus_manager1_get_state(proxd);
    const char *reason = proxd_dbus_manager1_get_state_reason(proxd);
    const char *role = proxd_dbus_manager1_get_role(proxd);
    const char *adapter = proxd_dbus_manager1_get_adapter(proxd);
    gboolean advertising = proxd_dbus_manager1_get_advertising(proxd);
    gboolean scanning = proxd_dbus_manager1_get_scanning(proxd);
    gint64 rotation = (gint64)proxd_dbus_manager1_get_current_rotation_ends(proxd);
    guint today = proxd_dbus_manager1_get_encounters_today(proxd);
    guint days14 = proxd_dbus_manager1_get_encounters14_days(proxd);
    gint64 last_sync = (gint64)proxd_dbus_manager1_get_last_sync(proxd);
    const char *risk = proxd_dbus_manager1_get_risk_level(proxd);

    if (state == NULL) {
        g_printerr("proxctl: proxd at %s does not publish its status\n", opts->bus_name);
        return EXIT_FAILURE_;
    }
    if (opts->json) {
        g_autoptr(JsonBuilder) b = json_builder_new();
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "state");
        json_builder_add_string_value(b, state);
        json_builder_set_member_name(b, "state_reason");
        json_builder_add_string_value(b, reason != NULL ? reason : "");
        json_builder_set_member_name(b, "role");
        json_builder_add_string_value(b, role != NULL ? role : "");
        json_builder_set_member_name(b, "adapter");
        if (adapter != NULL && adapter[0] != '\0')
            json_builder_add_string_value(b, adapter);
        else
            json_builder_add_null_value(b);
        json_builder_set_member_name(b, "advertising");
        json_builder_add_boolean_value(b, advertising);
        json_builder_set_member_name(b, "scanning");
        json_builder_add_boolean_value(b, scanning);
        json_add_time(b, "current_rotation_ends", rotation);
        json_builder_set_member_name(b, "encounters_today");
        json_builder_add_int_value(b, today);
        json_builder_set_member_name(b, "encounters_14_days");
        json_builder_add_int_value(b, days14);
        json_add_time(b, "last_sync", last_sync);
        json_builder_set_member_name(b, "risk_level");
        json_builder_add_string_value(b, risk != NULL ? risk : "unknown");
        json_builder_end_object(b);
        print_json(b);
        return EXIT_OK;
    }

    g_autofree char *rotation_s = format_time(rotation);
    g_autofree char *sync_s = format_time(last_sync);
    g_print("proxd: %s\n  %s\n", state, reason != NULL ? reason : "");
    g_print("  Role:         %s\n", role);
    g_print("  Adapter:      %s\n", adapter != NULL && adapter[0] != '\0' ? adapter : "none");
    if (advertising)
        g_print("  Advertising:  yes, identifier and address change at %s\n", rotation_s);
    else
        g_print("  Advertising:  no\n");
    g_print("  Scanning:     %s\n", scanning ? "yes" : "no (between scans or idle)");
    g_print("  Encounters:   %u today, %u in the last 14 days\n", today, days14);
    g_print("  Key list:     last synced %s\n", sync_s);
    g_print("  Risk:         %s\n", risk_explanation(risk));
    return EXIT_OK;
}

/* ---- encounters ---- */

static int print_sightings(const Options *opts, ProxdDbusManager1 *proxd, guint days,
                           JsonBuilder *b)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) sightings = NULL;
    if (!proxd_dbus_manager1_call_get_sightings_sync(proxd, days, G_DBUS_CALL_FLAGS_NONE, -1,
                                                     &sightings, NULL, &error)) {
        print_call_error("identifiers", error);
        return EXIT_FAILURE_;
    }
    if (b != NULL) {
        json_builder_set_member_name(b, "sightings");
        json_builder_begin_array(b);
    } else {
        g_print("\nIdentifiers heard (RSSI in dBm; 127 = unknown):\n");
        g_print("  %-32s %-8s %-19s %-19s %7s %5s %5s %5s\n", "RPI", "AEM", "first seen",
                "last seen", "reports", "min", "mean", "max");
    }
    GVariantIter iter;
    g_variant_iter_init(&iter, sightings);
    GVariant *rpi_v = NULL, *aem_v = NULL; /* owned by g_variant_iter_loop() */
    guint64 first, last;
    guint32 reports;
    gint16 rmin, rmax, rmean;
    while (g_variant_iter_loop(&iter, "(@ay@ayttunnn)", &rpi_v, &aem_v, &first, &last, &reports,
                               &rmin, &rmax, &rmean)) {
        gsize rpi_len, aem_len;
        const guint8 *rpi = g_variant_get_fixed_array(rpi_v, &rpi_len, 1);
        const guint8 *aem = g_variant_get_fixed_array(aem_v, &aem_len, 1);
        g_autofree char *rpi_hex = hex(rpi, rpi_len);
        g_autofree char *aem_hex = hex(aem, aem_len);
        if (b != NULL) {
            json_builder_begin_object(b);
            json_builder_set_member_name(b, "rpi");
            json_builder_add_string_value(b, rpi_hex);
            json_builder_set_member_name(b, "aem");
            json_builder_add_string_value(b, aem_hex);
            json_add_time(b, "first_seen", (gint64)first);
            json_add_time(b, "last_seen", (gint64)last);
            json_builder_set_member_name(b, "reports");
            json_builder_add_int_value(b, reports);
            const char *names[] = {"rssi_min", "rssi_mean", "rssi_max"};
            gint16 values[] = {rmin, rmean, rmax};
            for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
                json_builder_set_member_name(b, names[i]);
                if (values[i] == 127)
                    json_builder_add_null_value(b);
                else
                    json_builder_add_int_value(b, values[i]);
            }
            json_builder_end_object(b);
        } else {
            g_autofree char *f = format_time((gint64)first);
            g_autofree char *l = format_time((gint64)last);
            g_print("  %-32s %-8s %-19s %-19s %7u %5d %5d %5d\n", rpi_hex, aem_hex, f, l, reports,
                    rmin, rmean, rmax);
        }
    }
    if (b != NULL)
        json_builder_end_array(b);
    return EXIT_OK;
}

static int cmd_encounters(const Options *opts)
{
    g_autoptr(ProxdDbusManager1) proxd = connect_proxd(opts, NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) counts = NULL;
    guint days = opts->days > 0 ? (guint)opts->days : 1;

    if (proxd == NULL)
        return EXIT_FAILURE_;
    if (!proxd_dbus_manager1_call_get_encounters_sync(proxd, days, G_DBUS_CALL_FLAGS_NONE, -1,
                                                      &counts, NULL, &error)) {
        print_call_error("encounters", error);
        return EXIT_FAILURE_;
    }
    g_autoptr(JsonBuilder) b = opts->json ? json_builder_new() : NULL;
    guint64 total_scans = 0;

    if (b != NULL) {
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "days");
        json_builder_add_int_value(b, days);
        json_builder_set_member_name(b, "hours");
        json_builder_begin_array(b);
    } else {
        g_print("Identifiers heard per hour, last %u day%s:\n", days, days == 1 ? "" : "s");
    }
    GVariantIter iter;
    guint64 hour;
    guint32 encounters, scans;
    guint rows = 0;
    g_variant_iter_init(&iter, counts);
    while (g_variant_iter_next(&iter, "(tuu)", &hour, &encounters, &scans)) {
        rows++;
        total_scans += scans;
        if (b != NULL) {
            json_builder_begin_object(b);
            json_add_time(b, "hour", (gint64)hour);
            json_builder_set_member_name(b, "encounters");
            json_builder_add_int_value(b, encounters);
            json_builder_set_member_name(b, "scans");
            json_builder_add_int_value(b, scans);
            json_builder_end_object(b);
        } else {
            g_autofree char *when = format_time((gint64)hour);
            g_print("  %.16s  %5u identifier%s  %4u scan%s\n", when, encounters,
                    encounters == 1 ? " " : "s", scans, scans == 1 ? "" : "s");
        }
    }
    if (b != NULL)
        json_builder_end_array(b);
    else if (rows == 0)
        g_print("  nothing heard and no scans in that period\n");

    int status = EXIT_OK;
    if (opts->debug)
        status = print_sightings(opts, proxd, days, b);
    if (b != NULL) {
        json_builder_end_object(b);
        if (status == EXIT_OK)
            print_json(b);
    }
    return status;
}

/* ---- exposures ---- */

static int cmd_exposures(const Options *opts)
{
    g_autoptr(ProxdDbusManager1) proxd = connect_proxd(opts, NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) exposures = NULL;
    guint days = opts->days > 0 ? (guint)opts->days : 14;

    if (proxd == NULL)
        return EXIT_FAILURE_;
    if (!proxd_dbus_manager1_call_get_exposures_sync(proxd, days, G_DBUS_CALL_FLAGS_NONE, -1,
                                                     &exposures, NULL, &error)) {
        print_call_error("exposures", error);
        return EXIT_FAILURE_;
    }
    const char *risk = proxd_dbus_manager1_get_risk_level(proxd);
    gint64 last_sync = (gint64)proxd_dbus_manager1_get_last_sync(proxd);
    g_autoptr(JsonBuilder) b = opts->json ? json_builder_new() : NULL;

    if (b != NULL) {
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "risk_level");
        json_builder_add_string_value(b, risk != NULL ? risk : "unknown");
        json_add_time(b, "last_sync", last_sync);
        json_builder_set_member_name(b, "days");
        json_builder_begin_array(b);
    } else {
        g_autofree char *sync_s = format_time(last_sync);
        g_print("Risk: %s\nKey list last synced: %s\n", risk_explanation(risk), sync_s);
    }
    guint n = (guint)g_variant_n_children(exposures);
    for (guint i = 0; i < n; i++) {
        g_autoptr(GVariant) day_v = g_variant_get_child_value(exposures, i);
        GVariantDict dict;
        g_variant_dict_init(&dict, day_v);
        guint64 day = 0;
        const char *level = "low";
        guint32 windows = 0, high_enc = 0, low_enc = 0;
        double weighted = 0, normalized = 0;
        g_variant_dict_lookup(&dict, "day", "t", &day);
        g_variant_dict_lookup(&dict, "level", "&s", &level);
        g_variant_dict_lookup(&dict, "windows", "u", &windows);
        g_variant_dict_lookup(&dict, "weighted-minutes", "d", &weighted);
        g_variant_dict_lookup(&dict, "normalized-minutes", "d", &normalized);
        g_variant_dict_lookup(&dict, "high-risk-encounters", "u", &high_enc);
        g_variant_dict_lookup(&dict, "low-risk-encounters", "u", &low_enc);
        if (b != NULL) {
            json_builder_begin_object(b);
            g_autofree char *date = NULL;
            g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc((gint64)day);
            date = dt != NULL ? g_date_time_format(dt, "%Y-%m-%d") : g_strdup("");
            json_builder_set_member_name(b, "day");
            json_builder_add_string_value(b, date);
            json_builder_set_member_name(b, "level");
            json_builder_add_string_value(b, level);
            json_builder_set_member_name(b, "windows");
            json_builder_add_int_value(b, windows);
            json_builder_set_member_name(b, "weighted_minutes");
            json_builder_add_double_value(b, weighted);
            json_builder_set_member_name(b, "normalized_minutes");
            json_builder_add_double_value(b, normalized);
            json_builder_set_member_name(b, "high_risk_encounters");
            json_builder_add_int_value(b, high_enc);
            json_builder_set_member_name(b, "low_risk_encounters");
            json_builder_add_int_value(b, low_enc);
            json_builder_end_object(b);
        } else {
            g_autofree char *date = format_day((gint64)day);
            g_print("  %s  %-4s risk  %u exposure window%s, %.1f weighted minutes\n", date, level,
                    windows, windows == 1 ? "" : "s", weighted);
        }
        g_variant_dict_clear(&dict);
    }
    if (b != NULL) {
        json_builder_end_array(b);
        json_builder_end_object(b);
        print_json(b);
    } else if (n == 0) {
        g_print("No exposures found in the last %u days.\n", days);
    }
    return EXIT_OK;
}

/* ---- agent ---- */

typedef struct {
    GMainLoop *loop;
    GDBusConnection *notify_bus;
} Agent;

static void notify(Agent *agent, const char *summary, const char *body)
{
    GVariantBuilder hints;
    g_variant_builder_init(&hints, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&hints, "{sv}", "urgency", g_variant_new_byte(2)); /* critical */
    g_variant_builder_add(&hints, "{sv}", "category", g_variant_new_string("proxd.exposure"));
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reply = g_dbus_connection_call_sync(
        agent->notify_bus, NOTIFICATIONS_NAME, NOTIFICATIONS_PATH, NOTIFICATIONS_IFACE, "Notify",
        g_variant_new("(susssasa{sv}i)", "proxd", 0, "dialog-warning", summary, body, NULL, &hints,
                      0),
        G_VARIANT_TYPE("(u)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
    if (reply == NULL) {
        g_dbus_error_strip_remote_error(error);
        g_warning("cannot show the notification \"%s\": %s", summary, error->message);
        return;
    }
    g_message("notified: %s", summary);
}

static void on_exposure_detected(ProxdDbusManager1 *proxd, GVariant *exposure, gpointer user_data)
{
    Agent *agent = user_data;
    guint64 day = 0;
    double weighted = 0;
    g_variant_lookup(exposure, "day", "t", &day);
    g_variant_lookup(exposure, "weighted-minutes", "d", &weighted);
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc((gint64)day);
    g_autofree char *date =
        dt != NULL ? g_date_time_format(dt, "%A %e %B") : g_strdup("a recent day");
    g_autofree char *body = g_strdup_printf(
        "On %s you were close to someone who has since reported a positive test (about %.0f "
        "minutes at close range). Please follow your health authority's advice. Run "
        "'proxctl exposures' for details.",
        g_strstrip(date), weighted);
    notify(agent, "Possible exposure", body);
}

static gboolean on_agent_quit(gpointer user_data)
{
    Agent *agent = user_data;
    g_main_loop_quit(agent->loop);
    return G_SOURCE_CONTINUE;
}

static void on_owner_changed(GObject *object, GParamSpec *pspec, gpointer user_data)
{
    g_autofree char *owner = g_dbus_proxy_get_name_owner(G_DBUS_PROXY(object));
    if (owner != NULL)
        g_message("proxd is running (%s)", owner);
    else
        g_message("proxd is not running; waiting for it");
}

static int cmd_agent(const Options *opts)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GDBusConnection) proxd_bus =
        g_bus_get_sync(opts->session ? G_BUS_TYPE_SESSION : G_BUS_TYPE_SYSTEM, NULL, &error);
    if (proxd_bus == NULL) {
        g_printerr("proxctl: cannot connect to the %s bus: %s\n", bus_label(opts), error->message);
        return EXIT_FAILURE_;
    }
    g_autoptr(GDBusConnection) notify_bus = g_bus_get_sync(G_BUS_TYPE_SESSION, NULL, &error);
    if (notify_bus == NULL) {
        g_printerr("proxctl: agent: cannot connect to the session bus for notifications: %s\n",
                   error->message);
        return EXIT_FAILURE_;
    }
    /* Follows proxd across restarts: the proxy tracks the name's owner. */
    g_autoptr(ProxdDbusManager1) proxd =
        proxd_dbus_manager1_proxy_new_sync(proxd_bus, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START,
                                           opts->bus_name, PROXD_OBJECT_PATH, NULL, &error);
    if (proxd == NULL) {
        g_printerr("proxctl: agent: %s\n", error->message);
        return EXIT_FAILURE_;
    }
    g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
    Agent agent = {.loop = loop, .notify_bus = notify_bus};

    g_signal_connect(proxd, "exposure-detected", G_CALLBACK(on_exposure_detected), &agent);
    g_signal_connect(proxd, "notify::g-name-owner", G_CALLBACK(on_owner_changed), &agent);
    on_owner_changed(G_OBJECT(proxd), NULL, &agent);

    /* An exposure signalled while no session was running is not lost: say so at login. */
    if (g_strcmp0(proxd_dbus_manager1_get_risk_level(proxd), "high") == 0)
        notify(&agent, "Exposure risk is high",
               "proxd found a high-risk exposure in the last 14 days. Run 'proxctl exposures' "
               "for details and follow your health authority's advice.");

    guint term_id = g_unix_signal_add(SIGTERM, on_agent_quit, &agent);
    guint int_id = g_unix_signal_add(SIGINT, on_agent_quit, &agent);
    g_message("agent: listening for exposures from %s on the %s bus", opts->bus_name,
              bus_label(opts));
    g_main_loop_run(loop);
    g_source_remove(term_id);
    g_source_remove(int_id);
    return EXIT_OK;
}

/* ---- sync ---- */

typedef struct {
    GMainLoop *loop;
    GVariant *result;
    GError *error;
    gboolean json;
} SyncWait;

static const char *phase_name(guint phase)
{
    switch (phase) {
    case 0:
        return "index";
    case 1:
        return "files";
    case 2:
        return "matching";
    case 3:
        return "done";
    default:
        return "?";
    }
}

static void on_sync_progress(ProxdDbusManager1 *proxd, guint phase, guint files_done,
                             guint files_total, guint64 bytes, gpointer user_data)
{
    SyncWait *w = user_data;
    if (w->json)
        return;
    g_print("  %-8s %u/%u files, %" G_GUINT64_FORMAT " bytes\n", phase_name(phase), files_done,
            files_total, bytes);
}

static void on_sync_reply(GObject *source, GAsyncResult *res, gpointer user_data)
{
    SyncWait *w = user_data;
    proxd_dbus_manager1_call_sync_finish(PROXD_DBUS_MANAGER1(source), &w->result, res, &w->error);
    g_main_loop_quit(w->loop);
}

static int cmd_sync(const Options *opts)
{
    g_autoptr(ProxdDbusManager1) proxd = connect_proxd(opts, NULL);
    if (proxd == NULL)
        return EXIT_FAILURE_;
    g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
    SyncWait w = {.loop = loop, .json = opts->json};
    gulong id = g_signal_connect(proxd, "sync-progress", G_CALLBACK(on_sync_progress), &w);
    if (!opts->json)
        g_print("Syncing key lists...\n");
    proxd_dbus_manager1_call_sync(proxd, G_DBUS_CALL_FLAGS_NONE, G_MAXINT, NULL, on_sync_reply, &w);
    g_main_loop_run(loop);
    g_signal_handler_disconnect(proxd, id);
    if (w.result == NULL) {
        print_call_error("sync", w.error);
        g_error_free(w.error);
        return EXIT_FAILURE_;
    }
    g_autoptr(GVariant) result = w.result;
    GVariantDict dict;
    g_variant_dict_init(&dict, result);
    gboolean complete = FALSE, not_modified = FALSE;
    guint imported = 0, failed = 0;
    guint64 added = 0;
    const char *error = "", *risk = "unknown";
    g_variant_dict_lookup(&dict, "complete", "b", &complete);
    g_variant_dict_lookup(&dict, "not-modified", "b", &not_modified);
    g_variant_dict_lookup(&dict, "files-imported", "u", &imported);
    g_variant_dict_lookup(&dict, "files-failed", "u", &failed);
    g_variant_dict_lookup(&dict, "keys-added", "t", &added);
    g_variant_dict_lookup(&dict, "error", "&s", &error);
    g_variant_dict_lookup(&dict, "risk-level", "&s", &risk);
    g_autoptr(GVariant) failures =
        g_variant_dict_lookup_value(&dict, "failures", G_VARIANT_TYPE("a(ss)"));

    if (opts->json) {
        g_autoptr(JsonBuilder) b = json_builder_new();
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "complete");
        json_builder_add_boolean_value(b, complete);
        json_builder_set_member_name(b, "not_modified");
        json_builder_add_boolean_value(b, not_modified);
        json_builder_set_member_name(b, "files_imported");
        json_builder_add_int_value(b, imported);
        json_builder_set_member_name(b, "files_failed");
        json_builder_add_int_value(b, failed);
        json_builder_set_member_name(b, "keys_added");
        json_builder_add_int_value(b, (gint64)MIN(added, (guint64)G_MAXINT64));
        json_builder_set_member_name(b, "failures");
        json_builder_begin_array(b);
        for (gsize i = 0; failures != NULL && i < g_variant_n_children(failures); i++) {
            const char *name, *reason;
            g_variant_get_child(failures, i, "(&s&s)", &name, &reason);
            json_builder_begin_object(b);
            json_builder_set_member_name(b, "name");
            json_builder_add_string_value(b, name);
            json_builder_set_member_name(b, "reason");
            json_builder_add_string_value(b, reason);
            json_builder_end_object(b);
        }
        json_builder_end_array(b);
        json_builder_set_member_name(b, "error");
        if (error[0] != '\0')
            json_builder_add_string_value(b, error);
        else
            json_builder_add_null_value(b);
        json_builder_set_member_name(b, "risk_level");
        json_builder_add_string_value(b, risk);
        json_builder_end_object(b);
        print_json(b);
    } else {
        if (not_modified)
            g_print("The key list has not changed since the last sync.\n");
        g_print("Files imported: %u, failed: %u; new keys: %" G_GUINT64_FORMAT "\n", imported,
                failed, added);
        for (gsize i = 0; failures != NULL && i < g_variant_n_children(failures); i++) {
            const char *name, *reason;
            g_variant_get_child(failures, i, "(&s&s)", &name, &reason);
            g_print("  failed: %s: %s\n", name, reason);
        }
        if (complete)
            g_print("Sync complete.\n");
        else
            g_print("Sync incomplete: %s\n", error[0] != '\0' ? error : "unknown error");
        g_print("Risk: %s\n", risk_explanation(risk));
    }
    g_variant_dict_clear(&dict);
    return complete ? EXIT_OK : EXIT_FAILURE_;
}

/* ---- report ---- */

static gboolean ask_confirmation(void)
{
    g_print("Send these keys to the key server? [y/N] ");
    fflush(stdout);
    char line[64];
    if (fgets(line, sizeof line, stdin) == NULL)
        return FALSE;
    g_strstrip(line);
    return g_ascii_strcasecmp(line, "y") == 0 || g_ascii_strcasecmp(line, "yes") == 0;
}

static int cmd_report(const Options *opts)
{
    if (opts->code == NULL || g_strstrip(opts->code)[0] == '\0') {
        g_printerr("proxctl: report needs --code CODE (the code the health authority gave)\n");
        return EXIT_USAGE;
    }
    if (!opts->yes && !isatty(STDIN_FILENO)) {
        g_printerr("proxctl: report: not asking for confirmation without a terminal; add --yes "
                   "to send without asking\n");
        return EXIT_USAGE;
    }
    g_autoptr(ProxdDbusManager1) proxd = connect_proxd(opts, NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) preview = NULL;
    if (proxd == NULL)
        return EXIT_FAILURE_;
    if (!proxd_dbus_manager1_call_preview_report_sync(proxd, G_DBUS_CALL_FLAGS_NONE, -1, &preview,
                                                      NULL, &error)) {
        print_call_error("report", error);
        return EXIT_FAILURE_;
    }
    GVariantDict dict;
    g_variant_dict_init(&dict, preview);
    guint keys = 0;
    const char *url = "";
    g_variant_dict_lookup(&dict, "keys", "u", &keys);
    g_variant_dict_lookup(&dict, "url", "&s", &url);
    g_autoptr(GVariant) days = g_variant_dict_lookup_value(&dict, "days", G_VARIANT_TYPE("at"));
    if (days == NULL)
        days = g_variant_ref_sink(
            g_variant_new_fixed_array(G_VARIANT_TYPE_UINT64, NULL, 0, sizeof(guint64)));
    gsize n_days = 0;
    const guint64 *day_values = g_variant_get_fixed_array(days, &n_days, sizeof(guint64));

    if (opts->json) {
        /* With --yes the one JSON object at the end says what was sent. */
        if (!opts->yes) {
            g_autoptr(JsonBuilder) b = json_builder_new();
            json_builder_begin_object(b);
            json_builder_set_member_name(b, "keys");
            json_builder_add_int_value(b, keys);
            json_builder_set_member_name(b, "url");
            json_builder_add_string_value(b, url);
            json_builder_set_member_name(b, "days");
            json_builder_begin_array(b);
            for (gsize i = 0; i < n_days; i++) {
                g_autofree char *d = format_day((gint64)day_values[i]);
                json_builder_add_string_value(b, d);
            }
            json_builder_end_array(b);
            json_builder_end_object(b);
            print_json(b);
        }
    } else {
        g_print("This sends to %s:\n", url);
        g_print("  the one-time code you entered, and %u temporary exposure key%s (random\n"
                "  numbers this device broadcast, one per day), for these days (UTC):\n",
                keys, keys == 1 ? "" : "s");
        for (gsize i = 0; i < n_days; i++) {
            g_autofree char *d = format_day((gint64)day_values[i]);
            g_print("    %s\n", d);
        }
        g_print("  Nothing else: no name, no location, no device identity. Today's key is\n"
                "  sent only after the day is over.\n");
    }
    g_variant_dict_clear(&dict);
    if (keys == 0) {
        g_printerr("proxctl: report: no keys to send yet (a key can be sent once its day is "
                   "over)\n");
        return EXIT_FAILURE_;
    }
    if (!opts->yes && !ask_confirmation()) {
        g_print("Nothing was sent.\n");
        return EXIT_FAILURE_;
    }
    guint inserted = 0;
    if (!proxd_dbus_manager1_call_report_sync(proxd, opts->code, days, G_DBUS_CALL_FLAGS_NONE,
                                              G_MAXINT, &inserted, NULL, &error)) {
        print_call_error("report", error);
        return EXIT_FAILURE_;
    }
    if (opts->json) {
        g_autoptr(JsonBuilder) b = json_builder_new();
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "keys");
        json_builder_add_int_value(b, keys);
        json_builder_set_member_name(b, "url");
        json_builder_add_string_value(b, url);
        json_builder_set_member_name(b, "days");
        json_builder_begin_array(b);
        for (gsize i = 0; i < n_days; i++) {
            g_autofree char *d = format_day((gint64)day_values[i]);
            json_builder_add_string_value(b, d);
        }
        json_builder_end_array(b);
        json_builder_set_member_name(b, "inserted");
        json_builder_add_int_value(b, inserted);
        json_builder_end_object(b);
        print_json(b);
    } else {
        g_print("Sent. The key server stored %u new key%s. Thank you for reporting.\n", inserted,
                inserted == 1 ? "" : "s");
    }
    return EXIT_OK;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    Options opts = {0};
    g_autofree char *bus_name = NULL;
    g_autofree char *code = NULL;
    g_autoptr(GError) error = NULL;

    setlocale(LC_ALL, "");

    const GOptionEntry entries[] = {
        {"json", 'j', 0, G_OPTION_ARG_NONE, &opts.json, "Print JSON instead of text", NULL},
        {"debug", 'd', 0, G_OPTION_ARG_NONE, &opts.debug,
         "encounters: also list the identifiers heard (root or the proxd group)", NULL},
        {"days", 0, 0, G_OPTION_ARG_INT, &opts.days,
         "encounters / exposures: how many days back to look", "N"},
        {"code", 0, 0, G_OPTION_ARG_STRING, &code,
         "report: the one-time code from the health authority", "CODE"},
        {"yes", 'y', 0, G_OPTION_ARG_NONE, &opts.yes,
         "report: send without asking for confirmation (scripts)", NULL},
        {"session", 0, 0, G_OPTION_ARG_NONE, &opts.session,
         "Talk to a proxd on the session bus (tests, simulations)", NULL},
        {"bus-name", 0, 0, G_OPTION_ARG_STRING, &bus_name,
         "Bus name of the proxd to talk to (default " PROXD_DEFAULT_BUS_NAME ")", "NAME"},
        {NULL},
    };
    g_autoptr(GOptionContext) context =
        g_option_context_new("COMMAND - control and query proxd (status, encounters, exposures, "
                             "sync, report, agent)");
    g_option_context_add_main_entries(context, entries, NULL);
    g_option_context_set_description(context, description);
    if (!g_option_context_parse(context, &argc, &argv, &error)) {
        g_printerr("proxctl: %s\nTry 'proxctl --help'.\n", error->message);
        return EXIT_USAGE;
    }
    if (argc != 2) {
        g_printerr("proxctl: %s\nTry 'proxctl --help'.\n",
                   argc < 2 ? "missing command" : "too many arguments");
        return EXIT_USAGE;
    }
    if (opts.days < 0 || opts.days > 3650) {
        g_printerr("proxctl: --days must be between 1 and 3650\n");
        return EXIT_USAGE;
    }
    if (!opts.session && g_strcmp0(g_getenv("PROXD_BUS"), "session") == 0)
        opts.session = TRUE;
    if (bus_name == NULL && g_getenv("PROXD_BUS_NAME") != NULL &&
        g_getenv("PROXD_BUS_NAME")[0] != '\0')
        bus_name = g_strdup(g_getenv("PROXD_BUS_NAME"));
    opts.bus_name = bus_name != NULL ? bus_name : (char *)PROXD_DEFAULT_BUS_NAME;
    if (!g_dbus_is_name(opts.bus_name) || g_dbus_is_unique_name(opts.bus_name)) {
        g_printerr("proxctl: --bus-name=%s is not a valid well-known bus name\n", opts.bus_name);
        return EXIT_USAGE;
    }

    opts.code = code;

    const char *command = argv[1];
    if (g_str_equal(command, "status"))
        return cmd_status(&opts);
    if (g_str_equal(command, "encounters"))
        return cmd_encounters(&opts);
    if (g_str_equal(command, "exposures"))
        return cmd_exposures(&opts);
    if (g_str_equal(command, "sync"))
        return cmd_sync(&opts);
    if (g_str_equal(command, "report"))
        return cmd_report(&opts);
    if (g_str_equal(command, "agent")) {
        if (opts.json) {
            g_printerr("proxctl: agent has no --json output\n");
            return EXIT_USAGE;
        }
        return cmd_agent(&opts);
    }
    g_printerr("proxctl: unknown command '%s'\nTry 'proxctl --help'.\n", command);
    return EXIT_USAGE;
}
