/* proxctl - status, encounters and exposures of a running proxd, venue check-ins, key-list
 * sync and positive-test reports, and the desktop agent that turns proxd's ExposureDetected
 * and VenueExposureDetected signals into notifications. Talks to proxd over D-Bus
 * (org.proxd.Manager1 on the system bus, or the session bus with --session).
 *
 * Every command that calls a method goes through call_proxd(): one call, the D-Bus error
 * turned into one line on stderr, and exit status 1; commands only unpack and print.
 */
#define G_LOG_DOMAIN "proxctl"

#include <gio/gio.h>
#include <glib-unix.h>
#include <json-glib/json-glib.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proxd-dbus-generated.h"

#define PROXD_DEFAULT_BUS_NAME "org.proxd"
#define PROXD_OBJECT_PATH "/org/proxd"
#define NOTIFICATIONS_NAME "org.freedesktop.Notifications"
#define NOTIFICATIONS_PATH "/org/freedesktop/Notifications"
#define NOTIFICATIONS_IFACE "org.freedesktop.Notifications"
#define CALL_TIMEOUT_MS 25000
/* The agent's texts (docs/venues.md §5). */
#define TEXT_SAME_VEHICLE "You rode a vehicle with someone who later tested positive"
#define TEXT_VENUE "You visited a place at the same time as someone who later tested positive"

enum {
    EXIT_OK = 0,
    EXIT_FAILURE_ = 1, /* proxd not running, call failed, request refused */
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
    gboolean no_checkins;
    char *arrived;
    char *departed;
    const char *arg; /* the command's operand: URL or check-in id */
} Options;

/* A command's context: its options and a proxy of a running proxd. */
typedef struct {
    const Options *opts;
    ProxdDbusManager1 *proxd;
} Ctx;

static const char summary[] =
    "proxctl queries and controls proxd, the Bluetooth LE exposure notification service.";

static const char description[] =
    "Commands:\n"
    "  status         what proxd is doing: state and why, adapter, advertising, scanning,\n"
    "                 encounter counts, last key-list sync, risk level, check-in\n"
    "  encounters     distinct identifiers heard per hour (--days, default 1); the\n"
    "                 identifiers themselves only with --debug (root or the proxd group)\n"
    "  exposures      days on which close contact with reported cases was found, and, as a\n"
    "                 tier of its own, venue and bus (same-vehicle) exposures (--days,\n"
    "                 default 14; the venue tier needs root or the proxd group)\n"
    "  sync           download the new key lists now, with progress, and check them for\n"
    "                 exposures; exit 0 only when complete\n"
    "  report         report a positive test: --code CODE (from the health authority).\n"
    "                 Shows exactly what will be sent, then asks about each recent check-in\n"
    "                 on its own (y/N: only those you confirm are sent), then for the whole\n"
    "                 report. --yes sends without asking, with every check-in;\n"
    "                 --no-checkins sends none\n"
    "  checkin URL    check in at a venue from its QR code (proxd://checkin/v1/...): prints\n"
    "                 the venue's name, address and default stay, and when proxd will check\n"
    "                 out by itself. Only a location id and the times are stored. A code not\n"
    "                 signed by a known health authority is refused with the reason\n"
    "  checkout       leave the venue now\n"
    "  checkins       recent check-ins (--days, default 14): id, times and the first digits\n"
    "                 of the location id\n"
    "  checkin-edit ID [--arrived TIME] [--departed TIME]\n"
    "                 correct the times of a check-in; TIME is HH:MM (local time, on the\n"
    "                 day of the arrival; a departure before the arrival means the next\n"
    "                 day) or unix seconds. Arrival before departure, departure not in the\n"
    "                 future, at most 24 hours\n"
    "  checkin-delete ID\n"
    "                 forget a check-in\n"
    "  agent          stay running in the user session and show a desktop notification\n"
    "                 (org.freedesktop.Notifications) whenever proxd reports an exposure,\n"
    "                 close contact or venue/bus\n"
    "\n"
    "sync, report, encounters --debug and the check-in commands need root or membership in\n"
    "the proxd group: check-ins are private. An identifier changes every 10 to 20 minutes,\n"
    "so encounter counts are device-intervals, not people.\n"
    "\n"
    "Examples:\n"
    "  proxctl checkin 'proxd://checkin/v1/CiQKB0Jha2VyeRIK...'\n"
    "  proxctl checkin-edit 12 --arrived 09:15 --departed 10:40\n"
    "  proxctl report --code K7QM-2XRP-9DWT\n"
    "\n"
    "Environment: PROXD_BUS=session is the same as --session; PROXD_BUS_NAME is the\n"
    "default of --bus-name.\n"
    "\n"
    "Exit status: 0 on success, 1 when proxd is not running or a request failed or was\n"
    "refused (the reason is printed on one line), 2 for invalid arguments.";

/* ---- formatting ---- */

static char *format_time(gint64 t)
{
    if (t <= 0)
        return g_strdup("never");
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local(t);
    return dt != NULL ? g_date_time_format(dt, "%Y-%m-%d %H:%M:%S") : g_strdup("?");
}

static char *format_minute(gint64 t)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local(t);
    return dt != NULL ? g_date_time_format(dt, "%Y-%m-%d %H:%M") : g_strdup("?");
}

static char *format_hm(gint64 t)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local(t);
    return dt != NULL ? g_date_time_format(dt, "%H:%M") : g_strdup("?");
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

static void json_add_string(JsonBuilder *b, const char *member, const char *value)
{
    json_builder_set_member_name(b, member);
    json_builder_add_string_value(b, value != NULL ? value : "");
}

static void json_add_int(JsonBuilder *b, const char *member, gint64 value)
{
    json_builder_set_member_name(b, member);
    json_builder_add_int_value(b, value);
}

/* The members of an a{sv} dictionary but those in `skip`: names with '_' for '-',
 * `time_keys` as ISO 8601 UTC (null for 0), integers, strings, booleans and doubles as
 * such. */
static void json_add_dict(JsonBuilder *b, GVariant *dict, const char *const *time_keys,
                          const char *const *skip)
{
    GVariantIter iter;
    const char *key;
    GVariant *value;
    g_variant_iter_init(&iter, dict);
    while (g_variant_iter_next(&iter, "{&sv}", &key, &value)) {
        if (skip != NULL && g_strv_contains(skip, key)) {
            g_variant_unref(value);
            continue;
        }
        g_autofree char *name = g_strdelimit(g_strdup(key), "-", '_');
        if (time_keys != NULL && g_strv_contains(time_keys, key) &&
            g_variant_is_of_type(value, G_VARIANT_TYPE_UINT64)) {
            json_add_time(b, name, (gint64)g_variant_get_uint64(value));
        } else {
            json_builder_set_member_name(b, name);
            json_builder_add_value(b, json_gvariant_serialize(value));
        }
        g_variant_unref(value);
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

static guint64 dict_time(GVariant *dict, const char *key)
{
    guint64 t = 0;
    g_variant_lookup(dict, key, "t", &t);
    return t;
}

/* ---- talking to proxd ---- */

/* A proxy for proxd, or NULL with a message on stderr explaining why there is none. */
static ProxdDbusManager1 *connect_proxd(const Options *opts)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GDBusConnection) connection =
        g_bus_get_sync(opts->session ? G_BUS_TYPE_SESSION : G_BUS_TYPE_SYSTEM, NULL, &error);
    if (connection == NULL) {
        g_printerr("proxctl: cannot connect to the %s bus: %s\n", bus_label(opts), error->message);
        return NULL;
    }
    /* Requests never start proxd through bus activation. */
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
    return g_steal_pointer(&proxy);
}

static gboolean is_access_denied(const char *remote)
{
    return g_strcmp0(remote, "org.freedesktop.DBus.Error.AccessDenied") == 0;
}

/* One line on stderr for a failed call: "proxctl: WHAT: why". */
static void print_call_error(const char *what, GError *error)
{
    g_autofree char *remote = g_dbus_error_get_remote_error(error);
    g_dbus_error_strip_remote_error(error);
    if (is_access_denied(remote))
        g_printerr("proxctl: %s: permission denied; this needs root or membership in the "
                   "proxd group\n",
                   what);
    else if (g_strcmp0(remote, "org.freedesktop.DBus.Error.ServiceUnknown") == 0 ||
             g_strcmp0(remote, "org.freedesktop.DBus.Error.NameHasNoOwner") == 0)
        g_printerr("proxctl: %s: proxd stopped while we were asking\n", what);
    else if (g_strcmp0(remote, "org.freedesktop.DBus.Error.UnknownMethod") == 0)
        g_printerr("proxctl: %s: the running proxd does not support this; is it older than "
                   "proxctl?\n",
                   what);
    else if (g_strcmp0(remote, "org.freedesktop.DBus.Error.NoReply") == 0 ||
             g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
        g_printerr("proxctl: %s: proxd did not answer in time\n", what);
    else
        g_printerr("proxctl: %s: %s\n", what, error->message);
}

/* Calls `method` with `args` (floating, may be NULL) and returns the reply's single value
 * (a reply of several values: the tuple; of none: the empty tuple). On failure returns
 * NULL: with `error` NULL the reason is printed (print_call_error), else it is given back. */
static GVariant *call_proxd_full(Ctx *c, const char *what, const char *method, GVariant *args,
                                 int timeout_ms, GError **error)
{
    g_autoptr(GError) local = NULL;
    g_autoptr(GVariant) reply = g_dbus_proxy_call_sync(
        G_DBUS_PROXY(c->proxd), method, args, G_DBUS_CALL_FLAGS_NONE, timeout_ms, NULL, &local);
    if (reply == NULL) {
        if (error != NULL)
            g_propagate_error(error, g_steal_pointer(&local));
        else
            print_call_error(what, local);
        return NULL;
    }
    if (g_variant_n_children(reply) == 1)
        return g_variant_get_child_value(reply, 0);
    return g_steal_pointer(&reply);
}

static GVariant *call_proxd(Ctx *c, const char *what, const char *method, GVariant *args)
{
    return call_proxd_full(c, what, method, args, CALL_TIMEOUT_MS, NULL);
}

static const char *risk_explanation(const char *level)
{
    if (g_strcmp0(level, "high") == 0)
        return "high: you were close to someone who reported a positive test";
    if (g_strcmp0(level, "low") == 0)
        return "low: no relevant exposure found";
    return "unknown: no key list has been checked yet";
}

static guint days_or(const Options *opts, guint fallback)
{
    return opts->days > 0 ? (guint)opts->days : fallback;
}

/* ---- status ---- */

static int cmd_status(Ctx *c)
{
    ProxdDbusManager1 *proxd = c->proxd;
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
    gboolean checked_in = proxd_dbus_manager1_get_checked_in(proxd);
    gint64 checkout_at = (gint64)proxd_dbus_manager1_get_check_out_at(proxd);
    guint venue_exposures = proxd_dbus_manager1_get_venue_exposures(proxd);

    if (state == NULL) {
        g_printerr("proxctl: proxd at %s does not publish its status\n", c->opts->bus_name);
        return EXIT_FAILURE_;
    }
    if (c->opts->json) {
        g_autoptr(JsonBuilder) b = json_builder_new();
        json_builder_begin_object(b);
        json_add_string(b, "state", state);
        json_add_string(b, "state_reason", reason);
        json_add_string(b, "role", role);
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
        json_add_int(b, "encounters_today", today);
        json_add_int(b, "encounters_14_days", days14);
        json_add_time(b, "last_sync", last_sync);
        json_add_string(b, "risk_level", risk != NULL ? risk : "unknown");
        json_builder_set_member_name(b, "checked_in");
        json_builder_add_boolean_value(b, checked_in);
        json_add_time(b, "check_out_at", checkout_at);
        json_add_int(b, "venue_exposures", venue_exposures);
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
    if (checked_in) {
        g_autofree char *at = format_minute(checkout_at);
        g_print("  Checked in:   yes, automatic checkout at %s\n", at);
    } else {
        g_print("  Checked in:   no\n");
    }
    g_print("  Venue/bus:    %u exposure%s in the last 14 days\n", venue_exposures,
            venue_exposures == 1 ? "" : "s");
    return EXIT_OK;
}

/* ---- encounters ---- */

static int print_sightings(Ctx *c, guint days, JsonBuilder *b)
{
    g_autoptr(GVariant) sightings =
        call_proxd(c, "identifiers", "GetSightings", g_variant_new("(u)", days));
    if (sightings == NULL)
        return EXIT_FAILURE_;
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
            json_add_string(b, "rpi", rpi_hex);
            json_add_string(b, "aem", aem_hex);
            json_add_time(b, "first_seen", (gint64)first);
            json_add_time(b, "last_seen", (gint64)last);
            json_add_int(b, "reports", reports);
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

static int cmd_encounters(Ctx *c)
{
    guint days = days_or(c->opts, 1);
    g_autoptr(GVariant) counts =
        call_proxd(c, "encounters", "GetEncounters", g_variant_new("(u)", days));
    if (counts == NULL)
        return EXIT_FAILURE_;
    g_autoptr(JsonBuilder) b = c->opts->json ? json_builder_new() : NULL;

    if (b != NULL) {
        json_builder_begin_object(b);
        json_add_int(b, "days", days);
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
        if (b != NULL) {
            json_builder_begin_object(b);
            json_add_time(b, "hour", (gint64)hour);
            json_add_int(b, "encounters", encounters);
            json_add_int(b, "scans", scans);
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
    if (c->opts->debug)
        status = print_sightings(c, days, b);
    if (b != NULL) {
        json_builder_end_object(b);
        if (status == EXIT_OK)
            print_json(b);
    }
    return status;
}

/* ---- exposures ---- */

static const char *venue_text(const char *kind)
{
    return g_strcmp0(kind, "same-vehicle") == 0 ? TEXT_SAME_VEHICLE : TEXT_VENUE;
}

/* The venue and bus tier: details when allowed, else the count anyone may read. */
static void print_venue_tier(Ctx *c, guint days, JsonBuilder *b)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) list = call_proxd_full(c, "venue exposures", "GetVenueExposures",
                                               g_variant_new("(u)", days), CALL_TIMEOUT_MS, &error);
    guint count = proxd_dbus_manager1_get_venue_exposures(c->proxd);
    if (list == NULL) {
        g_autofree char *remote = g_dbus_error_get_remote_error(error);
        if (!is_access_denied(remote)) {
            print_call_error("venue exposures", error);
        } else if (b == NULL) {
            g_print("\nVenue and bus exposures: %u in the last 14 days (details need root or "
                    "the proxd group)\n",
                    count);
        }
        if (b != NULL) {
            json_add_int(b, "venue_exposure_count", count);
            json_builder_set_member_name(b, "venue_exposures");
            json_builder_add_null_value(b);
        }
        return;
    }
    static const char *const time_keys[] = {"day", "start", "end", "detected-at", NULL};
    guint n = (guint)g_variant_n_children(list);
    if (b != NULL) {
        json_add_int(b, "venue_exposure_count", n);
        json_builder_set_member_name(b, "venue_exposures");
        json_builder_begin_array(b);
    } else {
        g_print("\nVenue and bus exposures (separate from close contact):\n");
    }
    for (guint i = 0; i < n; i++) {
        g_autoptr(GVariant) e = g_variant_get_child_value(list, i);
        if (b != NULL) {
            json_builder_begin_object(b);
            json_add_dict(b, e, time_keys, NULL);
            json_builder_end_object(b);
            continue;
        }
        const char *kind = "venue";
        guint32 minutes = 0;
        g_variant_lookup(e, "kind", "&s", &kind);
        g_variant_lookup(e, "minutes", "u", &minutes);
        g_autofree char *day = format_day((gint64)dict_time(e, "day"));
        g_autofree char *start = format_hm((gint64)dict_time(e, "start"));
        g_autofree char *end = format_hm((gint64)dict_time(e, "end"));
        g_print("  %s  %-12s %s-%s  %3u min  %s\n", day, kind, start, end, minutes,
                venue_text(kind));
    }
    if (b != NULL)
        json_builder_end_array(b);
    else if (n == 0)
        g_print("  none in the last %u days\n", days);
}

static int cmd_exposures(Ctx *c)
{
    guint days = days_or(c->opts, 14);
    g_autoptr(GVariant) exposures =
        call_proxd(c, "exposures", "GetExposures", g_variant_new("(u)", days));
    if (exposures == NULL)
        return EXIT_FAILURE_;
    const char *risk = proxd_dbus_manager1_get_risk_level(c->proxd);
    gint64 last_sync = (gint64)proxd_dbus_manager1_get_last_sync(c->proxd);
    g_autoptr(JsonBuilder) b = c->opts->json ? json_builder_new() : NULL;

    if (b != NULL) {
        json_builder_begin_object(b);
        json_add_string(b, "risk_level", risk != NULL ? risk : "unknown");
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
        guint64 day = dict_time(day_v, "day");
        const char *level = "low";
        guint32 windows = 0;
        double weighted = 0;
        g_variant_lookup(day_v, "level", "&s", &level);
        g_variant_lookup(day_v, "windows", "u", &windows);
        g_variant_lookup(day_v, "weighted-minutes", "d", &weighted);
        if (b != NULL) {
            json_builder_begin_object(b);
            g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc((gint64)day);
            g_autofree char *date = dt != NULL ? g_date_time_format(dt, "%Y-%m-%d") : g_strdup("");
            static const char *const skip[] = {"day", NULL};
            json_add_string(b, "day", date);
            json_add_dict(b, day_v, NULL, skip);
            json_builder_end_object(b);
        } else {
            g_autofree char *date = format_day((gint64)day);
            g_print("  %s  %-4s risk  %u exposure window%s, %.1f weighted minutes\n", date, level,
                    windows, windows == 1 ? "" : "s", weighted);
        }
    }
    if (b != NULL)
        json_builder_end_array(b);
    else if (n == 0)
        g_print("No close-contact exposures found in the last %u days.\n", days);

    print_venue_tier(c, days, b);
    if (b != NULL) {
        json_builder_end_object(b);
        print_json(b);
    }
    return EXIT_OK;
}

/* ---- check-ins ---- */

static int cmd_checkin(Ctx *c)
{
    g_autoptr(GVariant) r = call_proxd(c, "checkin", "CheckIn", g_variant_new("(s)", c->opts->arg));
    if (r == NULL)
        return EXIT_FAILURE_;
    if (c->opts->json) {
        static const char *const time_keys[] = {"arrived", "planned-departure", NULL};
        g_autoptr(JsonBuilder) b = json_builder_new();
        json_builder_begin_object(b);
        json_add_dict(b, r, time_keys, NULL);
        json_builder_end_object(b);
        print_json(b);
        return EXIT_OK;
    }
    const char *name = "", *address = "", *type = "other";
    guint32 stay = 0;
    gint64 id = 0;
    g_variant_lookup(r, "name", "&s", &name);
    g_variant_lookup(r, "address", "&s", &address);
    g_variant_lookup(r, "type", "&s", &type);
    g_variant_lookup(r, "stay-minutes", "u", &stay);
    g_variant_lookup(r, "id", "x", &id);
    g_autofree char *planned = format_minute((gint64)dict_time(r, "planned-departure"));
    g_print("Checked in at %s\n", name);
    if (address[0] != '\0')
        g_print("  %s\n", address);
    g_print("  Type: %s; default stay %u minutes\n", type, stay);
    g_print("  Automatic checkout at %s ('proxctl checkout' to leave earlier)\n", planned);
    g_print("  Check-in %" G_GINT64_FORMAT ": only the location id and the times are stored\n", id);
    return EXIT_OK;
}

static int cmd_checkout(Ctx *c)
{
    g_autoptr(GVariant) r = call_proxd(c, "checkout", "CheckOut", NULL);
    if (r == NULL)
        return EXIT_FAILURE_;
    gint64 id = g_variant_get_int64(r);
    if (c->opts->json) {
        g_autoptr(JsonBuilder) b = json_builder_new();
        json_builder_begin_object(b);
        json_add_int(b, "id", id);
        json_builder_end_object(b);
        print_json(b);
    } else {
        g_print("Checked out (check-in %" G_GINT64_FORMAT ").\n", id);
    }
    return EXIT_OK;
}

static GVariant *get_checkins(Ctx *c, guint days)
{
    return call_proxd(c, "checkins", "GetCheckIns", g_variant_new("(u)", days));
}

static int cmd_checkins(Ctx *c)
{
    guint days = days_or(c->opts, 14);
    g_autoptr(GVariant) list = get_checkins(c, days);
    if (list == NULL)
        return EXIT_FAILURE_;
    guint n = (guint)g_variant_n_children(list);
    if (c->opts->json) {
        static const char *const time_keys[] = {"arrived", "departed", "planned-departure", NULL};
        g_autoptr(JsonBuilder) b = json_builder_new();
        json_builder_begin_object(b);
        json_add_int(b, "days", days);
        json_builder_set_member_name(b, "checkins");
        json_builder_begin_array(b);
        for (guint i = 0; i < n; i++) {
            g_autoptr(GVariant) e = g_variant_get_child_value(list, i);
            json_builder_begin_object(b);
            json_add_dict(b, e, time_keys, NULL);
            json_builder_end_object(b);
        }
        json_builder_end_array(b);
        json_builder_end_object(b);
        print_json(b);
        return EXIT_OK;
    }
    if (n == 0) {
        g_print("No check-ins in the last %u days.\n", days);
        return EXIT_OK;
    }
    g_print("Check-ins, last %u days (newest first):\n", days);
    g_print("  %5s  %-16s  %-30s  %s\n", "ID", "arrived", "departed", "location");
    for (guint i = 0; i < n; i++) {
        g_autoptr(GVariant) e = g_variant_get_child_value(list, i);
        gint64 id = 0;
        const char *location = "";
        g_variant_lookup(e, "id", "x", &id);
        g_variant_lookup(e, "location", "&s", &location);
        gint64 departed = (gint64)dict_time(e, "departed");
        g_autofree char *arrived_s = format_minute((gint64)dict_time(e, "arrived"));
        g_autofree char *departed_s = NULL;
        if (departed > 0) {
            departed_s = format_minute(departed);
        } else {
            g_autofree char *planned = format_hm((gint64)dict_time(e, "planned-departure"));
            departed_s = g_strdup_printf("open, checkout at %s", planned);
        }
        g_print("  %5" G_GINT64_FORMAT "  %-16s  %-30s  %s\n", id, arrived_s, departed_s, location);
    }
    return EXIT_OK;
}

static gboolean parse_id(const char *s, gint64 *id)
{
    return s != NULL && g_ascii_string_to_signed(s, 10, 1, G_MAXINT64, id, NULL);
}

/* TIME of checkin-edit: unix seconds, or HH:MM local time on the day of `day_of`. */
static gboolean parse_time(const char *s, gint64 day_of, gint64 *out)
{
    guint64 v = 0;
    if (strchr(s, ':') == NULL) {
        if (!g_ascii_string_to_unsigned(s, 10, 1, G_MAXINT64 / 2, &v, NULL))
            return FALSE;
        *out = (gint64)v;
        return TRUE;
    }
    g_auto(GStrv) parts = g_strsplit(s, ":", -1);
    guint64 h = 0, m = 0;
    if (g_strv_length(parts) != 2 || !g_ascii_string_to_unsigned(parts[0], 10, 0, 23, &h, NULL) ||
        !g_ascii_string_to_unsigned(parts[1], 10, 0, 59, &m, NULL) || strlen(parts[1]) != 2)
        return FALSE;
    g_autoptr(GDateTime) day = g_date_time_new_from_unix_local(day_of);
    if (day == NULL)
        return FALSE;
    g_autoptr(GDateTime) t =
        g_date_time_new_local(g_date_time_get_year(day), g_date_time_get_month(day),
                              g_date_time_get_day_of_month(day), (gint)h, (gint)m, 0);
    if (t == NULL)
        return FALSE;
    *out = g_date_time_to_unix(t);
    return TRUE;
}

static int cmd_checkin_edit(Ctx *c)
{
    const Options *opts = c->opts;
    gint64 id = 0;
    if (!parse_id(opts->arg, &id)) {
        g_printerr("proxctl: checkin-edit: '%s' is not a check-in id (see proxctl checkins)\n",
                   opts->arg);
        return EXIT_USAGE;
    }
    if (opts->arrived == NULL && opts->departed == NULL) {
        g_printerr("proxctl: checkin-edit: give --arrived and/or --departed\n");
        return EXIT_USAGE;
    }
    g_autoptr(GVariant) list = get_checkins(c, 0);
    if (list == NULL)
        return EXIT_FAILURE_;
    g_autoptr(GVariant) current = NULL;
    for (gsize i = 0; i < g_variant_n_children(list) && current == NULL; i++) {
        g_autoptr(GVariant) e = g_variant_get_child_value(list, i);
        gint64 e_id = 0;
        if (g_variant_lookup(e, "id", "x", &e_id) && e_id == id)
            current = g_steal_pointer(&e);
    }
    if (current == NULL) {
        g_printerr(
            "proxctl: checkin-edit: no check-in %" G_GINT64_FORMAT " (see proxctl checkins)\n", id);
        return EXIT_FAILURE_;
    }
    gint64 arrived = (gint64)dict_time(current, "arrived");
    gint64 departed = (gint64)dict_time(current, "departed");
    if (opts->arrived != NULL && !parse_time(opts->arrived, arrived, &arrived)) {
        g_printerr("proxctl: checkin-edit: --arrived=%s: expected HH:MM or unix seconds\n",
                   opts->arrived);
        return EXIT_USAGE;
    }
    if (opts->departed != NULL) {
        if (!parse_time(opts->departed, arrived, &departed)) {
            g_printerr("proxctl: checkin-edit: --departed=%s: expected HH:MM or unix seconds\n",
                       opts->departed);
            return EXIT_USAGE;
        }
        /* HH:MM before the arrival: past midnight. */
        if (strchr(opts->departed, ':') != NULL && departed <= arrived)
            departed += 86400;
    }
    g_autoptr(GVariant) r =
        call_proxd(c, "checkin-edit", "EditCheckIn",
                   g_variant_new("(xtt)", id, (guint64)arrived, (guint64)MAX(departed, 0)));
    if (r == NULL)
        return EXIT_FAILURE_;
    g_autofree char *a = format_minute(arrived);
    g_autofree char *d = departed > 0 ? format_minute(departed) : g_strdup("still open");
    if (!opts->json)
        g_print("Check-in %" G_GINT64_FORMAT ": arrived %s, departed %s.\n", id, a, d);
    return EXIT_OK;
}

static int cmd_checkin_delete(Ctx *c)
{
    gint64 id = 0;
    if (!parse_id(c->opts->arg, &id)) {
        g_printerr("proxctl: checkin-delete: '%s' is not a check-in id (see proxctl checkins)\n",
                   c->opts->arg);
        return EXIT_USAGE;
    }
    g_autoptr(GVariant) r =
        call_proxd(c, "checkin-delete", "DeleteCheckIn", g_variant_new("(x)", id));
    if (r == NULL)
        return EXIT_FAILURE_;
    if (!c->opts->json)
        g_print("Check-in %" G_GINT64_FORMAT " deleted.\n", id);
    return EXIT_OK;
}

/* ---- agent ---- */

typedef struct {
    GMainLoop *loop;
    GDBusConnection *notify_bus;
} Agent;

static void notify(Agent *agent, const char *title, const char *body)
{
    GVariantBuilder hints;
    g_variant_builder_init(&hints, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&hints, "{sv}", "urgency", g_variant_new_byte(2)); /* critical */
    g_variant_builder_add(&hints, "{sv}", "category", g_variant_new_string("proxd.exposure"));
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reply = g_dbus_connection_call_sync(
        agent->notify_bus, NOTIFICATIONS_NAME, NOTIFICATIONS_PATH, NOTIFICATIONS_IFACE, "Notify",
        g_variant_new("(susssasa{sv}i)", "proxd", 0, "dialog-warning", title, body, NULL, &hints,
                      0),
        G_VARIANT_TYPE("(u)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
    if (reply == NULL) {
        g_dbus_error_strip_remote_error(error);
        g_warning("cannot show the notification \"%s\": %s", title, error->message);
        return;
    }
    g_message("notified: %s", title);
}

static char *long_day(gint64 day)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(day);
    g_autofree char *date =
        dt != NULL ? g_date_time_format(dt, "%A %e %B") : g_strdup("a recent day");
    return g_strdup(g_strstrip(date));
}

static void on_exposure_detected(ProxdDbusManager1 *proxd, GVariant *exposure, gpointer user_data)
{
    Agent *agent = user_data;
    double weighted = 0;
    g_variant_lookup(exposure, "weighted-minutes", "d", &weighted);
    g_autofree char *date = long_day((gint64)dict_time(exposure, "day"));
    g_autofree char *body = g_strdup_printf(
        "On %s you were close to someone who has since reported a positive test (about %.0f "
        "minutes at close range). Please follow your health authority's advice. Run "
        "'proxctl exposures' for details.",
        date, weighted);
    notify(agent, "Possible exposure", body);
}

static void on_venue_exposure_detected(ProxdDbusManager1 *proxd, GVariant *exposure,
                                       gpointer user_data)
{
    Agent *agent = user_data;
    const char *kind = "venue";
    guint32 minutes = 0;
    g_variant_lookup(exposure, "kind", "&s", &kind);
    g_variant_lookup(exposure, "minutes", "u", &minutes);
    g_autofree char *date = long_day((gint64)dict_time(exposure, "day"));
    g_autofree char *start = format_hm((gint64)dict_time(exposure, "start"));
    g_autofree char *end = format_hm((gint64)dict_time(exposure, "end"));
    g_autofree char *body =
        g_strdup_printf("%s: on %s, %s to %s (%u minutes). Please follow your health "
                        "authority's advice. Run 'proxctl exposures' for details.",
                        venue_text(kind), date, start, end, minutes);
    notify(agent, venue_text(kind), body);
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
    g_signal_connect(proxd, "venue-exposure-detected", G_CALLBACK(on_venue_exposure_detected),
                     &agent);
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

static int cmd_sync(Ctx *c)
{
    /* Asynchronous, unlike call_proxd(): progress signals arrive while it runs. */
    g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
    SyncWait w = {.loop = loop, .json = c->opts->json};
    gulong id = g_signal_connect(c->proxd, "sync-progress", G_CALLBACK(on_sync_progress), &w);
    if (!c->opts->json)
        g_print("Syncing key lists...\n");
    proxd_dbus_manager1_call_sync(c->proxd, G_DBUS_CALL_FLAGS_NONE, G_MAXINT, NULL, on_sync_reply,
                                  &w);
    g_main_loop_run(loop);
    g_signal_handler_disconnect(c->proxd, id);
    if (w.result == NULL) {
        print_call_error("sync", w.error);
        g_error_free(w.error);
        return EXIT_FAILURE_;
    }
    g_autoptr(GVariant) result = w.result;
    gboolean complete = FALSE, not_modified = FALSE;
    guint32 imported = 0, failed = 0, venue_exposures = 0;
    guint64 added = 0, warnings = 0;
    const char *error = "", *risk = "unknown";
    g_variant_lookup(result, "complete", "b", &complete);
    g_variant_lookup(result, "not-modified", "b", &not_modified);
    g_variant_lookup(result, "files-imported", "u", &imported);
    g_variant_lookup(result, "files-failed", "u", &failed);
    g_variant_lookup(result, "keys-added", "t", &added);
    g_variant_lookup(result, "warnings-added", "t", &warnings);
    g_variant_lookup(result, "venue-exposures", "u", &venue_exposures);
    g_variant_lookup(result, "error", "&s", &error);
    g_variant_lookup(result, "risk-level", "&s", &risk);
    g_autoptr(GVariant) failures =
        g_variant_lookup_value(result, "failures", G_VARIANT_TYPE("a(ss)"));

    if (c->opts->json) {
        g_autoptr(JsonBuilder) b = json_builder_new();
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "complete");
        json_builder_add_boolean_value(b, complete);
        json_builder_set_member_name(b, "not_modified");
        json_builder_add_boolean_value(b, not_modified);
        json_add_int(b, "files_imported", imported);
        json_add_int(b, "files_failed", failed);
        json_add_int(b, "keys_added", (gint64)MIN(added, (guint64)G_MAXINT64));
        json_add_int(b, "warnings_added", (gint64)MIN(warnings, (guint64)G_MAXINT64));
        json_add_int(b, "venue_exposures", venue_exposures);
        json_builder_set_member_name(b, "failures");
        json_builder_begin_array(b);
        for (gsize i = 0; failures != NULL && i < g_variant_n_children(failures); i++) {
            const char *name, *reason;
            g_variant_get_child(failures, i, "(&s&s)", &name, &reason);
            json_builder_begin_object(b);
            json_add_string(b, "name", name);
            json_add_string(b, "reason", reason);
            json_builder_end_object(b);
        }
        json_builder_end_array(b);
        json_builder_set_member_name(b, "error");
        if (error[0] != '\0')
            json_builder_add_string_value(b, error);
        else
            json_builder_add_null_value(b);
        json_add_string(b, "risk_level", risk);
        json_builder_end_object(b);
        print_json(b);
    } else {
        if (not_modified)
            g_print("The key list has not changed since the last sync.\n");
        g_print("Files imported: %u, failed: %u; new keys: %" G_GUINT64_FORMAT
                ", new bus/venue warnings: %" G_GUINT64_FORMAT "\n",
                imported, failed, added, warnings);
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
        if (venue_exposures > 0)
            g_print("New venue/bus exposures: %u ('proxctl exposures' for details)\n",
                    venue_exposures);
    }
    return complete ? EXIT_OK : EXIT_FAILURE_;
}

/* ---- report ---- */

static gboolean ask(const char *question)
{
    g_print("%s [y/N] ", question);
    fflush(stdout);
    char line[64];
    if (fgets(line, sizeof line, stdin) == NULL)
        return FALSE;
    g_strstrip(line);
    return g_ascii_strcasecmp(line, "y") == 0 || g_ascii_strcasecmp(line, "yes") == 0;
}

static void json_add_days(JsonBuilder *b, const guint64 *days, gsize n)
{
    json_builder_set_member_name(b, "days");
    json_builder_begin_array(b);
    for (gsize i = 0; i < n; i++) {
        g_autofree char *d = format_day((gint64)days[i]);
        json_builder_add_string_value(b, d);
    }
    json_builder_end_array(b);
}

static void json_add_checkins(JsonBuilder *b, GVariant *offered, GArray *chosen)
{
    json_builder_set_member_name(b, "checkins");
    json_builder_begin_array(b);
    for (gsize i = 0; i < g_variant_n_children(offered); i++) {
        g_autoptr(GVariant) e = g_variant_get_child_value(offered, i);
        gint64 id = 0;
        g_variant_lookup(e, "id", "x", &id);
        gboolean sent = FALSE;
        for (guint k = 0; chosen != NULL && k < chosen->len; k++)
            sent = sent || g_array_index(chosen, gint64, k) == id;
        json_builder_begin_object(b);
        json_add_int(b, "id", id);
        json_add_time(b, "arrived", (gint64)dict_time(e, "arrived"));
        json_add_time(b, "departed", (gint64)dict_time(e, "departed"));
        json_builder_set_member_name(b, "sent");
        json_builder_add_boolean_value(b, sent);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
}

static char *describe_checkin(GVariant *e)
{
    gint64 arrived = (gint64)dict_time(e, "arrived");
    gint64 departed = (gint64)dict_time(e, "departed");
    g_autofree char *a = format_minute(arrived);
    g_autofree char *d = format_hm(departed);
    return g_strdup_printf("%s to %s", a, d);
}

/* Which offered check-ins go with the report: all (--yes), none (--no-checkins), or each
 * one the person confirms. */
static GArray *choose_checkins(const Options *opts, GVariant *offered)
{
    GArray *chosen = g_array_new(FALSE, FALSE, sizeof(gint64));
    gsize n = g_variant_n_children(offered);
    if (n == 0 || opts->no_checkins)
        return chosen;
    if (!opts->json && !opts->yes)
        g_print("\nYour check-ins of the last 14 days. Each is sent only if you say yes; it\n"
                "tells the health authority the place (its location id) and the times, so\n"
                "that others who were there can be warned:\n");
    for (gsize i = 0; i < n; i++) {
        g_autoptr(GVariant) e = g_variant_get_child_value(offered, i);
        gint64 id = 0;
        g_variant_lookup(e, "id", "x", &id);
        g_autofree char *when = describe_checkin(e);
        gboolean include = opts->yes;
        if (!opts->yes) {
            g_autofree char *q =
                g_strdup_printf("  Include check-in %" G_GINT64_FORMAT ", %s?", id, when);
            include = ask(q);
        } else if (!opts->json) {
            g_print("  check-in %" G_GINT64_FORMAT ", %s\n", id, when);
        }
        if (include)
            g_array_append_val(chosen, id);
    }
    return chosen;
}

static int cmd_report(Ctx *c)
{
    const Options *opts = c->opts;
    g_autoptr(GVariant) preview = call_proxd(c, "report", "PreviewReport", NULL);
    if (preview == NULL)
        return EXIT_FAILURE_;
    guint32 keys = 0;
    const char *url = "";
    g_variant_lookup(preview, "keys", "u", &keys);
    g_variant_lookup(preview, "url", "&s", &url);
    g_autoptr(GVariant) days = g_variant_lookup_value(preview, "days", G_VARIANT_TYPE("at"));
    if (days == NULL)
        days = g_variant_ref_sink(
            g_variant_new_fixed_array(G_VARIANT_TYPE_UINT64, NULL, 0, sizeof(guint64)));
    g_autoptr(GVariant) offered =
        g_variant_lookup_value(preview, "checkins", G_VARIANT_TYPE("aa{sv}"));
    if (offered == NULL)
        offered = g_variant_ref_sink(g_variant_new_array(G_VARIANT_TYPE("a{sv}"), NULL, 0));
    gsize n_days = 0;
    const guint64 *day_values = g_variant_get_fixed_array(days, &n_days, sizeof(guint64));

    if (opts->json) {
        /* With --yes the one JSON object at the end says what was sent. */
        if (!opts->yes) {
            g_autoptr(JsonBuilder) b = json_builder_new();
            json_builder_begin_object(b);
            json_add_int(b, "keys", keys);
            json_add_string(b, "url", url);
            json_add_days(b, day_values, n_days);
            json_add_checkins(b, offered, NULL);
            json_builder_end_object(b);
            print_json(b);
        }
    } else {
        guint64 cut_at = 0;
        gboolean cut = g_variant_lookup(preview, "cut-at", "t", &cut_at);
        g_print("This sends to %s:\n", url);
        g_print("  the one-time code you entered, and %u temporary exposure key%s (random\n"
                "  numbers this device broadcast, one per day), for these days (UTC):\n",
                keys, keys == 1 ? "" : "s");
        for (gsize i = 0; i < n_days; i++) {
            g_autofree char *d = format_day((gint64)day_values[i]);
            g_print("    %s%s\n", d, cut && i + 1 == n_days ? " (today, up to now)" : "");
        }
        g_print("  No name, no device identity.\n");
        if (cut)
            g_print("  This device switches to a new key at once; the server publishes today's\n"
                    "  only after it has ended.\n");
    }
    if (keys == 0) {
        g_printerr("proxctl: report: no keys to send (this device has not broadcast in the "
                   "last 14 days)\n");
        return EXIT_FAILURE_;
    }
    g_autoptr(GArray) chosen = choose_checkins(opts, offered);
    if (!opts->json && g_variant_n_children(offered) > 0)
        g_print("  %u of %u check-in%s will be sent.\n", chosen->len,
                (guint)g_variant_n_children(offered),
                g_variant_n_children(offered) == 1 ? "" : "s");
    if (!opts->yes && !ask("Send this to the key server?")) {
        g_print("Nothing was sent.\n");
        return EXIT_FAILURE_;
    }
    g_autoptr(GVariant) r =
        call_proxd_full(c, "report", "Report",
                        g_variant_new("(s@at@ax)", opts->code, days,
                                      g_variant_new_fixed_array(G_VARIANT_TYPE_INT64, chosen->data,
                                                                chosen->len, sizeof(gint64))),
                        G_MAXINT, NULL);
    if (r == NULL)
        return EXIT_FAILURE_;
    guint32 inserted = g_variant_get_uint32(r);
    if (opts->json) {
        g_autoptr(JsonBuilder) b = json_builder_new();
        json_builder_begin_object(b);
        json_add_int(b, "keys", keys);
        json_add_string(b, "url", url);
        json_add_days(b, day_values, n_days);
        json_add_checkins(b, offered, chosen);
        json_add_int(b, "inserted", inserted);
        json_builder_end_object(b);
        print_json(b);
    } else {
        g_print("Sent. The key server stored %u new key%s", inserted, inserted == 1 ? "" : "s");
        if (chosen->len > 0)
            g_print(" and received %u check-in%s", chosen->len, chosen->len == 1 ? "" : "s");
        g_print(". Thank you for reporting.\n");
    }
    return EXIT_OK;
}

/* ---- main ---- */

typedef struct {
    const char *name;
    int (*run)(Ctx *c);
    gboolean takes_arg;
    const char *arg_name;
} Command;

static const Command commands[] = {
    {"status", cmd_status, FALSE, NULL},
    {"encounters", cmd_encounters, FALSE, NULL},
    {"exposures", cmd_exposures, FALSE, NULL},
    {"sync", cmd_sync, FALSE, NULL},
    {"report", cmd_report, FALSE, NULL},
    {"checkin", cmd_checkin, TRUE, "URL"},
    {"checkout", cmd_checkout, FALSE, NULL},
    {"checkins", cmd_checkins, FALSE, NULL},
    {"checkin-edit", cmd_checkin_edit, TRUE, "ID"},
    {"checkin-delete", cmd_checkin_delete, TRUE, "ID"},
};

static int usage(const char *message)
{
    g_printerr("proxctl: %s\nTry 'proxctl --help'.\n", message);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    Options opts = {0};
    g_autofree char *bus_name = NULL;
    g_autofree char *code = NULL;
    g_autofree char *arrived = NULL;
    g_autofree char *departed = NULL;
    g_autoptr(GError) error = NULL;

    setlocale(LC_ALL, "");

    const GOptionEntry entries[] = {
        {"json", 'j', 0, G_OPTION_ARG_NONE, &opts.json, "Print JSON instead of text", NULL},
        {"debug", 'd', 0, G_OPTION_ARG_NONE, &opts.debug,
         "encounters: also list the identifiers heard (root or the proxd group)", NULL},
        {"days", 0, 0, G_OPTION_ARG_INT, &opts.days,
         "encounters, exposures, checkins: how many days back to look", "N"},
        {"code", 0, 0, G_OPTION_ARG_STRING, &code,
         "report: the one-time code from the health authority", "CODE"},
        {"yes", 'y', 0, G_OPTION_ARG_NONE, &opts.yes,
         "report: send without asking, with every check-in offered (scripts)", NULL},
        {"no-checkins", 0, 0, G_OPTION_ARG_NONE, &opts.no_checkins,
         "report: send no check-in, without asking about them", NULL},
        {"arrived", 0, 0, G_OPTION_ARG_STRING, &arrived,
         "checkin-edit: the corrected arrival, HH:MM or unix seconds", "TIME"},
        {"departed", 0, 0, G_OPTION_ARG_STRING, &departed,
         "checkin-edit: the corrected departure, HH:MM or unix seconds", "TIME"},
        {"session", 0, 0, G_OPTION_ARG_NONE, &opts.session,
         "Talk to a proxd on the session bus (tests, simulations)", NULL},
        {"bus-name", 0, 0, G_OPTION_ARG_STRING, &bus_name,
         "Bus name of the proxd to talk to (default " PROXD_DEFAULT_BUS_NAME ")", "NAME"},
        {NULL},
    };
    g_autoptr(GOptionContext) context = g_option_context_new("COMMAND [URL|ID]");
    g_option_context_set_summary(context, summary);
    g_option_context_add_main_entries(context, entries, NULL);
    g_option_context_set_description(context, description);
    if (!g_option_context_parse(context, &argc, &argv, &error))
        return usage(error->message);
    if (argc < 2)
        return usage("missing command");
    if (opts.days < 0 || opts.days > 3650)
        return usage("--days must be between 1 and 3650");
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
    opts.arrived = arrived;
    opts.departed = departed;

    const char *command = argv[1];
    if (g_str_equal(command, "agent")) {
        if (argc > 2)
            return usage("agent takes no argument");
        if (opts.json)
            return usage("agent has no --json output");
        return cmd_agent(&opts);
    }
    const Command *cmd = NULL;
    for (guint i = 0; i < G_N_ELEMENTS(commands) && cmd == NULL; i++) {
        if (g_str_equal(command, commands[i].name))
            cmd = &commands[i];
    }
    if (cmd == NULL) {
        g_autofree char *m = g_strdup_printf("unknown command '%s'", command);
        return usage(m);
    }
    if (cmd->takes_arg && argc != 3) {
        g_autofree char *m = g_strdup_printf("%s needs exactly one %s", cmd->name, cmd->arg_name);
        return usage(m);
    }
    if (!cmd->takes_arg && argc > 2) {
        g_autofree char *m = g_strdup_printf("%s takes no argument ('%s')", cmd->name, argv[2]);
        return usage(m);
    }
    opts.arg = cmd->takes_arg ? argv[2] : NULL;
    if (cmd->run == cmd_report) {
        if (opts.code == NULL || g_strstrip(opts.code)[0] == '\0') {
            g_printerr("proxctl: report needs --code CODE (the code the health authority "
                       "gave)\n");
            return EXIT_USAGE;
        }
        if (!opts.yes && !isatty(STDIN_FILENO)) {
            g_printerr("proxctl: report: not asking for confirmation without a terminal; add "
                       "--yes to send without asking (with --no-checkins to send no "
                       "check-in)\n");
            return EXIT_USAGE;
        }
    }

    g_autoptr(ProxdDbusManager1) proxd = connect_proxd(&opts);
    if (proxd == NULL)
        return EXIT_FAILURE_;
    Ctx ctx = {.opts = &opts, .proxd = proxd};
    return cmd->run(&ctx);
}
