/* sim-ending.c - lan tests positive: code, report (with a venue check-in), publish, sync,
 * alerts; then the bus operator's trace and the same-vehicle warnings - through the daemons'
 * D-Bus API, as a phone's user interface (proxctl) drives them, and the authority's and the
 * operator's programs. */
#define G_LOG_DOMAIN "prox-sim"

#include "sim-ending.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "prox-risk.h"

#define DAY 86400
#define KEY_ID "452"
#define KEY_VERSION "v1"
/* lan gets her result at 09:00 the day after the ride; the authority publishes at 10:00
 * and devices sync at 10:30; the bus operator traces at 11:00 and the authority publishes
 * the warning at 11:10. */
#define REPORT_AFTER_MIDNIGHT (9 * 3600)
#define PUBLISH_AFTER_REPORT 3600
#define TRACE_AFTER_REPORT (2 * 3600)
#define REPUBLISH_AFTER_REPORT (2 * 3600 + 600)
/* The evening of the ride day: lan eats at a registered restaurant 18:30-19:15; one rider
 * arrives at 19:00 (15 minutes together), one at 19:10 (5 minutes). */
#define VENUE_NAME "Phở Hạnh"
#define VENUE_ADDRESS "Hai Bà Trưng, Tân Định, Quận 1"
#define VENUE_STAY "60"
#define F0_ARRIVES (18 * 3600 + 30 * 60)
#define F0_LEAVES (19 * 3600 + 15 * 60)
#define LONG_OVERLAP_MINUTES 15
#define SHORT_OVERLAP_MINUTES 5
#define VISIT_MINUTES 45
/* proxd's defaults ([Venues] MinMinutes, SameVehicleMinutes). */
#define VENUE_MIN_MINUTES 10
/* Riders aboard with lan at least this long must get a same-vehicle warning; those near the
 * 10-minute threshold may or may not (the phone counts from its scans). */
#define VEHICLE_SURE_MINUTES 15
/* How far back GetExposures()/GetVenueExposures() look: the ride day is yesterday. */
#define EXPOSURE_DAYS 14
#define SERVER_TIMEOUT_MS 20000
#define START_TIMEOUT_MS 20000
#define CALL_TIMEOUT_MS 60000
/* A Sync() call joins a run already under way: one the daemon's schedule started before the
 * list was published fails, and the next call starts a fresh run. */
#define SYNC_ATTEMPTS 4

#define MANAGER_PATH "/org/proxd"
#define MANAGER_IFACE "org.proxd.Manager1"
#define ERROR_PREFIX "org.proxd.Error."

/* ---- the morning's daemons ---- */

typedef struct {
    SimDaemon *daemon;
    gulong signal_id;
    guint exposures;       /* ExposureDetected received */
    guint venue_signals;   /* VenueExposureDetected of kind "venue" */
    guint vehicle_signals; /* ... of kind "same-vehicle" */
    gboolean high;         /* RiskLevel "high" after the first sync */
    gint64 arrived;        /* the evening's check-in, 0: none */
    gint64 departed;
    GString *progress; /* SyncProgress of the last Sync() call, as shown */
    guint last_phase;
    gboolean call_done;
    GVariant *result; /* Sync()'s a{sv} */
    GError *error;
} Device;

static void device_clear(Device *dev)
{
    if (dev->signal_id != 0 && dev->daemon->proxy != NULL)
        g_signal_handler_disconnect(dev->daemon->proxy, dev->signal_id);
    dev->signal_id = 0;
    if (dev->progress != NULL)
        g_string_free(dev->progress, TRUE);
    dev->progress = NULL;
    g_clear_pointer(&dev->result, g_variant_unref);
    g_clear_error(&dev->error);
}

static const char *phase_label(guint phase)
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

static void on_manager_signal(GDBusProxy *proxy, const char *sender, const char *signal,
                              GVariant *parameters, gpointer user_data)
{
    Device *dev = user_data;
    if (g_str_equal(signal, "ExposureDetected")) {
        dev->exposures++;
    } else if (g_str_equal(signal, "VenueExposureDetected")) {
        g_autoptr(GVariant) exposure = g_variant_get_child_value(parameters, 0);
        const char *kind = "";
        g_variant_lookup(exposure, "kind", "&s", &kind);
        if (g_str_equal(kind, "same-vehicle"))
            dev->vehicle_signals++;
        else
            dev->venue_signals++;
    } else if (g_str_equal(signal, "SyncProgress") && dev->progress != NULL) {
        guint phase, done, total;
        guint64 bytes;
        g_variant_get(parameters, "(uuut)", &phase, &done, &total, &bytes);
        /* One entry per phase (the files phase with its count). */
        if (phase != dev->last_phase || dev->progress->len == 0) {
            if (phase == 1)
                g_string_append_printf(dev->progress, "%s%s %u/%u",
                                       dev->progress->len > 0 ? " > " : "", phase_label(phase),
                                       done, total);
            else
                g_string_append_printf(dev->progress, "%s%s", dev->progress->len > 0 ? " > " : "",
                                       phase_label(phase));
        } else if (phase == 1) {
            /* The files phase moved on: show its latest count. */
            char *last = g_strrstr(dev->progress->str, "files ");
            if (last != NULL) {
                g_string_truncate(dev->progress, (gsize)(last - dev->progress->str));
                g_string_append_printf(dev->progress, "files %u/%u", done, total);
            }
        }
        dev->last_phase = phase;
    }
}

/* The ride's bus and radio are gone: a fresh bus with the world's clock restarted at
 * `morning`, and every device's proxd started again on its store, with the key server and
 * the published lists configured. There is no radio this morning (no fake-bluez): the
 * daemons report bluez-unavailable, which changes nothing for reports and syncs. */
static gboolean restart_daemons(SimWorld *world, gint64 morning, const char *upload_url,
                                const char *index_url, const char *pub, GArray *devices,
                                GError **error)
{
    if (!sim_world_start_bus(world, morning, error))
        return FALSE;
    for (guint i = 0; i < devices->len; i++) {
        Device *dev = &g_array_index(devices, Device, i);
        SimDaemon *d = dev->daemon;
        gboolean f0 = d->device->klass == SIM_DEVICE_F0;
        g_autofree char *report =
            f0 ? g_strdup_printf("[Report]\nURL=%s\n", upload_url) : g_strdup("");
        g_autofree char *text = g_strdup_printf("[Sync]\nURL=%s\nPinnedKeys=%s\n"
                                                "IntervalSeconds=86400\n%s",
                                                index_url, pub, report);
        g_autofree char *config = g_build_filename(d->state_dir, "proxd-morning.conf", NULL);
        if (!g_file_set_contents(config, text, -1, error))
            return FALSE;
        g_auto(GStrv) argv = sim_launch_proxd_argv(
            world->tools->proxd, d->bus_name, d->device->adapter, d->state_dir, config,
            d->device->beacon ? "beacon" : "person", world->verbose);
        g_autofree char *log_name = g_strdup_printf("proxd-%s-morning", d->device->name);
        /* The new process replaces the ride's (both stay owned by the world). */
        d->process = sim_world_spawn(world, log_name, NULL, (const char *const *)argv, error);
        if (d->process == NULL)
            return FALSE;
    }
    for (guint i = 0; i < devices->len; i++) {
        Device *dev = &g_array_index(devices, Device, i);
        SimDaemon *d = dev->daemon;
        if (!sim_world_wait_name(world, d->bus_name, error))
            return FALSE;
        d->proxy =
            g_dbus_proxy_new_sync(world->connection, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START, NULL,
                                  d->bus_name, MANAGER_PATH, MANAGER_IFACE, NULL, error);
        if (d->proxy == NULL)
            return FALSE;
        dev->signal_id = g_signal_connect(d->proxy, "g-signal", G_CALLBACK(on_manager_signal), dev);
    }
    return TRUE;
}

/* ---- D-Bus calls ---- */

typedef struct {
    GVariant *reply;
    GError *error;
    gboolean done;
} Call;

static void on_call_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
    Call *c = user_data;
    c->reply = g_dbus_proxy_call_finish(G_DBUS_PROXY(source), res, &c->error);
    c->done = TRUE;
}

static gboolean call_done(gpointer p)
{
    return ((Call *)p)->done;
}

/* A method call while the world's main context runs (signals keep arriving, a child that
 * dies ends the wait). */
static GVariant *call(SimWorld *world, SimDaemon *d, const char *method, GVariant *params,
                      GError **error)
{
    Call c = {0};
    g_dbus_proxy_call(d->proxy, method, params, G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL,
                      on_call_done, &c);
    g_autofree char *what = g_strdup_printf("waiting for %s's %s()", d->device->name, method);
    if (!sim_world_wait(world, call_done, &c, CALL_TIMEOUT_MS + 5000, what, error)) {
        /* The call's callback still points at `c`: let it land before returning. */
        while (!c.done)
            g_main_context_iteration(NULL, TRUE);
        g_clear_pointer(&c.reply, g_variant_unref);
        g_clear_error(&c.error);
        return NULL;
    }
    if (c.error != NULL) {
        g_dbus_error_strip_remote_error(c.error);
        g_propagate_prefixed_error(error, c.error, "%s's %s(): ", d->device->name, method);
        return NULL;
    }
    return c.reply;
}

static char *format_span(gint64 from, gint64 to)
{
    g_autofree char *a = sim_format_clock(from);
    g_autofree char *b = sim_format_clock(to);
    return g_strdup_printf("%s-%s", a, b);
}

/* What proxctl report does: PreviewReport(), show it, then Report() with the days shown and
 * the check-ins the person confirmed (here: lan confirms her one check-in). */
static gboolean report_positive(SimWorld *world, Device *f0_dev, const char *code, GError **error)
{
    SimDaemon *f0 = f0_dev->daemon;
    g_autoptr(GVariant) reply = call(world, f0, "PreviewReport", NULL, error);
    if (reply == NULL)
        return FALSE;
    g_autoptr(GVariant) preview = g_variant_get_child_value(reply, 0);
    guint n = 0;
    g_variant_lookup(preview, "keys", "u", &n);
    g_autoptr(GVariant) days = g_variant_lookup_value(preview, "days", G_VARIANT_TYPE("at"));
    if (n == 0 || days == NULL) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "%s's PreviewReport() has no keys to send", f0->device->name);
        return FALSE;
    }
    g_autoptr(GVariant) checkins =
        g_variant_lookup_value(preview, "checkins", G_VARIANT_TYPE("aa{sv}"));
    /* The evening's visit is the one check-in on offer, with the times she gave. */
    gint64 id = 0;
    guint64 arrived = 0, departed = 0;
    g_autoptr(GVariant) visit = checkins != NULL && g_variant_n_children(checkins) == 1
                                    ? g_variant_get_child_value(checkins, 0)
                                    : NULL;
    if (visit == NULL || !g_variant_lookup(visit, "id", "x", &id) ||
        !g_variant_lookup(visit, "arrived", "t", &arrived) ||
        !g_variant_lookup(visit, "departed", "t", &departed) ||
        (gint64)arrived != f0_dev->arrived || (gint64)departed != f0_dev->departed) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "%s's PreviewReport() does not offer exactly her evening's check-in",
                    f0->device->name);
        return FALSE;
    }
    /* What proxctl report shows before asking for consent: how many keys, which days, and
     * each check-in to confirm on its own. */
    g_print("  %s's phone will send %u daily key%s (", f0->device->name, n, n == 1 ? "" : "s");
    for (gsize i = 0; i < g_variant_n_children(days); i++) {
        guint64 day = 0;
        g_variant_get_child(days, i, "t", &day);
        g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc((gint64)day);
        g_autofree char *s = g_date_time_format(dt, "%Y-%m-%d");
        g_print("%s%s", i > 0 ? ", " : "", s);
    }
    g_autofree char *span = format_span((gint64)arrived, (gint64)departed);
    g_print(")\n  and, as she confirms it, her check-in of yesterday %s (a location id and\n"
            "  the times); nothing else: not whom she met, not where else she went.%s\n",
            span,
            g_variant_lookup(preview, "cut-at", "t", NULL)
                ? " Today's\n  key goes up to now: her phone switches to a new one at once, and "
                  "the server\n  publishes it only once that time is over."
                : "");

    GVariant *confirmed = g_variant_new_fixed_array(G_VARIANT_TYPE_INT64, &id, 1, sizeof id);
    g_autoptr(GVariant) sent =
        call(world, f0, "Report", g_variant_new("(s@at@ax)", code, days, confirmed), error);
    if (sent == NULL)
        return FALSE;
    guint inserted = 0;
    g_variant_get(sent, "(u)", &inserted);
    g_print("  key server: accepted, %u new key%s and 1 check-in stored; the code is now used up\n",
            inserted, inserted == 1 ? "" : "s");
    if (inserted != n) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "the key server stored %u of the %u keys sent", inserted, n);
        return FALSE;
    }
    return TRUE;
}

static void on_sync_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
    Device *dev = user_data;
    g_autoptr(GVariant) reply = g_dbus_proxy_call_finish(G_DBUS_PROXY(source), res, &dev->error);
    if (reply != NULL)
        dev->result = g_variant_get_child_value(reply, 0);
    dev->call_done = TRUE;
}

static gboolean all_synced(gpointer p)
{
    GArray *devices = p;
    for (guint i = 0; i < devices->len; i++)
        if (!g_array_index(devices, Device, i).call_done)
            return FALSE;
    return TRUE;
}

static gboolean sync_complete(const Device *dev)
{
    gboolean complete = FALSE;
    return dev->result != NULL && g_variant_lookup(dev->result, "complete", "b", &complete) &&
           complete;
}

/* Sync() on every daemon at once, again on those whose call joined a run that failed. */
static gboolean sync_all(SimWorld *world, GArray *devices, GError **error)
{
    for (guint i = 0; i < devices->len; i++)
        g_clear_pointer(&g_array_index(devices, Device, i).result, g_variant_unref);
    for (guint attempt = 0; attempt < SYNC_ATTEMPTS; attempt++) {
        gboolean started = FALSE;
        for (guint i = 0; i < devices->len; i++) {
            Device *dev = &g_array_index(devices, Device, i);
            if (sync_complete(dev))
                continue;
            g_clear_pointer(&dev->result, g_variant_unref);
            g_clear_error(&dev->error);
            if (dev->progress != NULL)
                g_string_truncate(dev->progress, 0);
            else
                dev->progress = g_string_new(NULL);
            dev->call_done = FALSE;
            g_dbus_proxy_call(dev->daemon->proxy, "Sync", NULL, G_DBUS_CALL_FLAGS_NONE,
                              CALL_TIMEOUT_MS, NULL, on_sync_done, dev);
            started = TRUE;
        }
        if (!started)
            return TRUE;
        if (!sim_world_wait(world, all_synced, devices, CALL_TIMEOUT_MS + 5000,
                            "waiting for every device's Sync()", error)) {
            while (!all_synced(devices))
                g_main_context_iteration(NULL, TRUE);
            return FALSE;
        }
        for (guint i = 0; i < devices->len; i++) {
            Device *dev = &g_array_index(devices, Device, i);
            if (dev->error != NULL) {
                g_dbus_error_strip_remote_error(dev->error);
                g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s's Sync(): %s",
                            dev->daemon->device->name, dev->error->message);
                return FALSE;
            }
        }
    }
    for (guint i = 0; i < devices->len; i++) {
        Device *dev = &g_array_index(devices, Device, i);
        if (!sync_complete(dev)) {
            const char *message = "";
            g_variant_lookup(dev->result, "error", "&s", &message);
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "%s's sync failed %u times; the last time: %s", dev->daemon->device->name,
                        SYNC_ATTEMPTS, message);
            return FALSE;
        }
    }
    return TRUE;
}

/* ---- the results ---- */

static const char *expectation(SimDeviceClass klass)
{
    switch (klass) {
    case SIM_DEVICE_CLOSE:
        return "alert";
    case SIM_DEVICE_FAR:
    case SIM_DEVICE_F0:
        return "no alert";
    case SIM_DEVICE_BEACON:
    case SIM_DEVICE_OTHER:
        break;
    }
    return "either";
}

/* The table, from what each daemon says over D-Bus: RiskLevel after the sync (Sync()'s
 * "risk-level"), GetExposures() for the minutes, and whether ExposureDetected came. */
static gboolean print_results(SimWorld *world, const SimRide *ride, GArray *devices,
                              gboolean *passed, GError **error)
{
    const SimDevice *f0 = sim_ride_device(ride, ride->f0);
    g_print("\n  %-8s %-5s %9s %9s %9s %10s  %-11s %-9s\n", "device", "seat", "from lan",
            "together", "weighted", "normalized", "risk", "expected");
    for (guint i = 0; i < devices->len; i++) {
        Device *d = &g_array_index(devices, Device, i);
        const SimDevice *dev = d->daemon->device;
        if (dev->beacon)
            continue;
        g_autoptr(GVariant) reply =
            call(world, d->daemon, "GetExposures", g_variant_new("(u)", 0u), error);
        if (reply == NULL)
            return FALSE;
        g_autoptr(GVariant) exposures = g_variant_get_child_value(reply, 0);
        double weighted = 0, normalized = 0;
        for (gsize j = 0; j < g_variant_n_children(exposures); j++) {
            g_autoptr(GVariant) day = g_variant_get_child_value(exposures, j);
            double w = 0, n = 0;
            g_variant_lookup(day, "weighted-minutes", "d", &w);
            g_variant_lookup(day, "normalized-minutes", "d", &n);
            weighted += w;
            normalized += n;
        }
        const char *risk = "unknown";
        g_variant_lookup(d->result, "risk-level", "&s", &risk);
        gboolean high = g_str_equal(risk, "high");
        d->high = high;
        /* An alert is ExposureDetected: exactly the devices at high risk got one. */
        gboolean alerted = d->exposures > 0;
        const char *expected = expectation(dev->klass);
        gboolean ok = dev->klass == SIM_DEVICE_CLOSE                                ? high
                      : dev->klass == SIM_DEVICE_FAR || dev->klass == SIM_DEVICE_F0 ? !high
                                                                                    : TRUE;
        ok = ok && alerted == high;
        *passed = *passed && ok;
        g_autofree char *dist =
            dev == f0 ? g_strdup("-") : g_strdup_printf("%.1f m", dev->distance_to_f0);
        g_autofree char *together =
            dev == f0 ? g_strdup("-")
                      : g_strdup_printf("%" G_GINT64_FORMAT " min", dev->minutes_with_f0);
        g_print("  %-8s %-5s %9s %9s %9.1f %10.1f  %-11s %-9s%s%s\n", dev->name, dev->seat, dist,
                together, weighted, normalized, high ? "HIGH: ALERT" : "low", expected,
                ok ? "" : "  <-- WRONG",
                alerted == high ? ""
                : alerted       ? " (ExposureDetected without high risk)"
                                : " (high risk but no ExposureDetected)");
    }
    g_print("\n  'weighted' = minutes near lan's IDs, each scan weighted by signal attenuation\n"
            "  (Corona-Warn-App v2 rule); 'normalized' = x her keys' transmission risk. A day\n"
            "  at >= 13 normalized minutes is high risk: proxd raised ExposureDetected on the\n"
            "  bus (prox-sim listened), and the phone's notification shell (proxctl agent)\n"
            "  shows the alert. Nobody learns who lan is.\n");
    return TRUE;
}

/* ---- venues and buses ---- */

static void print_indented(const char *text)
{
    g_autofree char *copy = g_strstrip(g_strdup(text));
    g_auto(GStrv) lines = g_strsplit(copy, "\n", -1);
    for (guint i = 0; lines[i] != NULL; i++)
        g_print("         %s\n", lines[i]);
}

/* Venue or same-vehicle exposures a device stored (GetVenueExposures()): how many of
 * `kind`, and their minutes. */
static gboolean venue_exposures(SimWorld *world, Device *dev, const char *kind, guint *count,
                                guint *minutes, GError **error)
{
    g_autoptr(GVariant) reply = call(world, dev->daemon, "GetVenueExposures",
                                     g_variant_new("(u)", (guint)EXPOSURE_DAYS), error);
    if (reply == NULL)
        return FALSE;
    g_autoptr(GVariant) list = g_variant_get_child_value(reply, 0);
    *count = 0;
    *minutes = 0;
    for (gsize i = 0; i < g_variant_n_children(list); i++) {
        g_autoptr(GVariant) e = g_variant_get_child_value(list, i);
        const char *k = "";
        guint m = 0;
        g_variant_lookup(e, "kind", "&s", &k);
        g_variant_lookup(e, "minutes", "u", &m);
        if (g_str_equal(k, kind)) {
            (*count)++;
            *minutes += m;
        }
    }
    return TRUE;
}

/* The poster: `prox-authority venue register`, as the restaurant's owner asks the health
 * authority for one. Returns the check-in URL. */
static char *register_venue(SimWorld *world, const char *clock, const char *db, const char *sec,
                            const char *poster_dir, GError **error)
{
    g_autofree char *out = NULL;
    const char *argv[] = {world->tools->authority,
                          "venue",
                          "register",
                          "--db",
                          db,
                          "--key",
                          sec,
                          "--name",
                          VENUE_NAME,
                          "--address",
                          VENUE_ADDRESS,
                          "--type",
                          "restaurant",
                          "--stay",
                          VENUE_STAY,
                          "--out",
                          poster_dir,
                          NULL};
    if (!sim_world_run(world, clock, argv, &out, error))
        return NULL;
    g_autofree char *url_path = g_build_filename(poster_dir, "url.txt", NULL);
    char *url = NULL;
    if (!g_file_get_contents(url_path, &url, NULL, error))
        return NULL;
    g_strstrip(url);
    g_print("  The restaurant %s (%s) has a check-in poster from\n"
            "  the health authority (prox-authority venue register: a signed venue descriptor\n"
            "  with a random seed; the authority records the venue, never its visitors):\n",
            VENUE_NAME, VENUE_ADDRESS);
    print_indented(out);
    g_print("         the QR code holds %.32s... (%zu characters)\n", url, strlen(url));
    return url;
}

/* CheckIn(url) as a phone's QR scanner hands it to proxd, then EditCheckIn() to the
 * evening's times (the simulation played only the ride, so the visit is entered now, as
 * `proxctl checkin-edit` corrects a check-in). Returns CheckIn()'s answer. */
static GVariant *visit(SimWorld *world, Device *dev, const char *url, gint64 arrived,
                       gint64 departed, GError **error)
{
    g_autoptr(GVariant) reply =
        call(world, dev->daemon, "CheckIn", g_variant_new("(s)", url), error);
    if (reply == NULL)
        return NULL;
    GVariant *checkin = g_variant_get_child_value(reply, 0);
    gint64 id = 0;
    g_variant_lookup(checkin, "id", "x", &id);
    g_autoptr(GVariant) edited =
        call(world, dev->daemon, "EditCheckIn",
             g_variant_new("(xtt)", id, (guint64)arrived, (guint64)departed), error);
    if (edited == NULL) {
        g_variant_unref(checkin);
        return NULL;
    }
    dev->arrived = arrived;
    dev->departed = departed;
    return checkin;
}

/* Two riders visit the restaurant too: far ones first (the venue tier is not about being
 * close on the bus), else whoever rode. */
static void choose_visitors(GArray *devices, Device **long_visit, Device **short_visit)
{
    static const SimDeviceClass order[] = {SIM_DEVICE_FAR, SIM_DEVICE_OTHER, SIM_DEVICE_CLOSE};
    *long_visit = *short_visit = NULL;
    for (guint k = 0; k < G_N_ELEMENTS(order) && *short_visit == NULL; k++) {
        for (guint i = 0; i < devices->len && *short_visit == NULL; i++) {
            Device *dev = &g_array_index(devices, Device, i);
            if (dev->daemon->device->klass != order[k])
                continue;
            if (*long_visit == NULL)
                *long_visit = dev;
            else
                *short_visit = dev;
        }
    }
}

/* Yesterday evening at the restaurant: lan, and two riders who came as she was leaving. */
static gboolean evening_visits(SimWorld *world, GArray *devices, gint64 ride_day, Device *f0,
                               const char *url, Device **long_visit, Device **short_visit,
                               GError **error)
{
    choose_visitors(devices, long_visit, short_visit);
    if (*short_visit == NULL) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "the ride needs two passengers besides %s for the check-ins",
                    f0->daemon->device->name);
        return FALSE;
    }
    gint64 f0_leaves = ride_day + F0_LEAVES;
    const struct {
        Device *dev;
        gint64 arrived;
        guint with_f0;
    } visits[] = {
        {f0, ride_day + F0_ARRIVES, 0},
        {*long_visit, f0_leaves - LONG_OVERLAP_MINUTES * 60, LONG_OVERLAP_MINUTES},
        {*short_visit, f0_leaves - SHORT_OVERLAP_MINUTES * 60, SHORT_OVERLAP_MINUTES},
    };
    for (guint i = 0; i < G_N_ELEMENTS(visits); i++) {
        g_autoptr(GVariant) checkin = visit(world, visits[i].dev, url, visits[i].arrived,
                                            visits[i].arrived + VISIT_MINUTES * 60, error);
        if (checkin == NULL)
            return FALSE;
        if (i > 0)
            continue;
        /* What the phone shows once the poster's signature verified; never stored. */
        const char *name = "", *address = "", *type = "";
        guint stay = 0;
        g_variant_lookup(checkin, "name", "&s", &name);
        g_variant_lookup(checkin, "address", "&s", &address);
        g_variant_lookup(checkin, "type", "&s", &type);
        g_variant_lookup(checkin, "stay-minutes", "u", &stay);
        g_print("  The evening of the ride, lan and two riders scanned it (CheckIn over D-Bus, as\n"
                "  proxctl checkin URL does). Her phone checked the authority's signature and\n"
                "  showed: %s, %s\n"
                "  (%s, checkout after %u min). It keeps only a location id (a hash of the\n"
                "  QR code) and the times: not the name, not the address. The simulation played\n"
                "  only the ride, so the visits are entered now and their times set (EditCheckIn,\n"
                "  as proxctl checkin-edit does):\n",
                name, address, type, stay);
    }
    for (guint i = 0; i < G_N_ELEMENTS(visits); i++) {
        g_autofree char *span =
            format_span(visits[i].arrived, visits[i].arrived + VISIT_MINUTES * 60);
        g_autofree char *with =
            i == 0 ? g_strdup("") : g_strdup_printf(" (%u min there with lan)", visits[i].with_f0);
        g_print("         %-6s %s%s\n", visits[i].dev->daemon->device->name, span, with);
    }
    return TRUE;
}

/* After the first sync: the restaurant's visitors. */
static gboolean print_venue_results(SimWorld *world, GArray *devices, Device *f0,
                                    Device *long_visit, Device *short_visit, gboolean *passed,
                                    GError **error)
{
    g_print("\n  %-8s %-12s %9s  %-24s %s\n", "device", "visit", "with lan", "venue warning",
            "expected");
    guint others = 0;
    for (guint i = 0; i < devices->len; i++) {
        Device *dev = &g_array_index(devices, Device, i);
        if (dev->daemon->device->beacon)
            continue;
        guint count = 0, minutes = 0;
        if (!venue_exposures(world, dev, "venue", &count, &minutes, error))
            return FALSE;
        gboolean consistent = count == dev->venue_signals;
        gboolean ok = TRUE;
        const char *expected = "none";
        guint with = 0;
        if (dev == f0) {
            /* Her phone knows she reported: her own visit coming back is not an alert. */
            expected = "none (reported)";
            ok = count == 0;
        } else if (dev == long_visit) {
            expected = "alert";
            with = LONG_OVERLAP_MINUTES;
            ok = count == 1 && minutes == LONG_OVERLAP_MINUTES;
        } else if (dev == short_visit) {
            expected = "none (< 10 min)";
            with = SHORT_OVERLAP_MINUTES;
            ok = count == 0;
        } else {
            ok = count == 0;
        }
        *passed = *passed && ok && consistent;
        if (dev->arrived == 0 && ok && consistent) {
            others++;
            continue;
        }
        g_autofree char *span =
            dev->arrived != 0 ? format_span(dev->arrived, dev->departed) : g_strdup("no visit");
        g_autofree char *together = dev == f0 ? g_strdup("-") : g_strdup_printf("%u min", with);
        g_autofree char *warning =
            count == 0 ? g_strdup("none") : g_strdup_printf("%u min: ALERT", minutes);
        g_print("  %-8s %-12s %9s  %-24s %s%s%s\n", dev->daemon->device->name, span, together,
                warning, expected, ok ? "" : "  <-- WRONG",
                consistent ? "" : " (VenueExposureDetected does not match GetVenueExposures)");
    }
    g_autofree char *f0_span = format_span(f0->arrived, f0->departed);
    g_print("  (the other %u phone%s no check-in there: no venue warning, as expected)\n"
            "\n  The list carries a hash of the poster's location id with lan's %s,\n"
            "  meaningless to anyone who never scanned the poster. Each phone compared it with\n"
            "  its own check-ins: %d minutes together or more is a venue warning, a tier of its\n"
            "  own (VenueExposureDetected; \"You visited a place at the same time as someone\n"
            "  who later tested positive\"). lan's phone knows she reported: her own visit\n"
            "  coming back is no alert.\n",
            others, others == 1 ? " has" : "s have", f0_span, VENUE_MIN_MINUTES);
    return TRUE;
}

/* The published key lists, as paths, from index.txt. */
static GPtrArray *published_lists(const char *keys_dir, GError **error)
{
    g_autofree char *index_path = g_build_filename(keys_dir, "index.txt", NULL);
    g_autofree char *index = NULL;
    if (!g_file_get_contents(index_path, &index, NULL, error))
        return NULL;
    GPtrArray *lists = g_ptr_array_new_with_free_func(g_free);
    g_auto(GStrv) names = g_strsplit(index, "\n", -1);
    for (guint i = 0; names[i] != NULL; i++) {
        g_strstrip(names[i]);
        if (g_str_has_suffix(names[i], ".zip"))
            g_ptr_array_add(lists, g_build_filename(keys_dir, names[i], NULL));
    }
    return lists;
}

/* prox-tool, beside prox-authority (the build tree's tools/, or the install's bindir), or
 * PROX_SIM_TOOL. */
static char *find_prox_tool(SimWorld *world, GError **error)
{
    const char *env = g_getenv("PROX_SIM_TOOL");
    g_autofree char *dir = g_path_get_dirname(world->tools->authority);
    char *path =
        env != NULL && env[0] != '\0' ? g_strdup(env) : g_build_filename(dir, "prox-tool", NULL);
    if (!g_file_test(path, G_FILE_TEST_IS_EXECUTABLE)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                    "prox-tool not found at %s (set PROX_SIM_TOOL)", path);
        g_free(path);
        return NULL;
    }
    return path;
}

/* The bus operator's trace of the published lists against the beacon's store: one window,
 * when lan was aboard. */
static gboolean trace_bus(SimWorld *world, const SimRide *ride, const SimDaemon *bus,
                          const char *keys_dir, const char *pub, const char *warnings_path,
                          const char *clock, gboolean *passed, GError **error)
{
    g_autofree char *tool = find_prox_tool(world, error);
    if (tool == NULL)
        return FALSE;
    g_autoptr(GPtrArray) lists = published_lists(keys_dir, error);
    if (lists == NULL)
        return FALSE;
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    const char *base[] = {tool,    "beacon", "trace", "--store",    bus->db_path,
                          "--key", pub,      "--out", warnings_path};
    for (gsize i = 0; i < G_N_ELEMENTS(base); i++)
        g_ptr_array_add(argv, (gpointer)base[i]);
    for (guint i = 0; i < lists->len; i++) {
        g_ptr_array_add(argv, (gpointer) "--keys");
        g_ptr_array_add(argv, g_ptr_array_index(lists, i));
    }
    g_ptr_array_add(argv, NULL);
    g_autofree char *out = NULL;
    if (!sim_world_run(world, clock, (const char *const *)argv->pdata, &out, error))
        return FALSE;
    g_print("  11:00  the bus company's operator matches the published list against what the\n"
            "         bus's beacon heard yesterday, with the same matcher as a phone\n"
            "         (prox-tool beacon trace --store bus/proxd.db --keys LIST.zip):\n");
    print_indented(out);

    g_autoptr(JsonParser) parser = json_parser_new();
    if (!json_parser_load_from_file(parser, warnings_path, error))
        return FALSE;
    JsonNode *root = json_parser_get_root(parser);
    JsonObject *o =
        root != NULL && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
    JsonArray *list = o != NULL && json_object_has_member(o, "warnings")
                          ? json_object_get_array_member(o, "warnings")
                          : NULL;
    const SimDevice *f0 = sim_ride_device(ride, ride->f0);
    gint64 boarded = ride->epoch + ride->stops[f0->board_stop].t;
    gint64 left = ride->epoch + ride->stops[f0->leave_stop].t;
    g_autofree char *aboard = format_span(boarded, left);
    if (list == NULL || json_array_get_length(list) != 1) {
        g_print("         expected one window, %s  <-- WRONG\n", aboard);
        *passed = FALSE;
        return TRUE;
    }
    JsonObject *w = json_array_get_object_element(list, 0);
    gint64 start = json_object_get_int_member_with_default(w, "start", 0);
    gint64 end = json_object_get_int_member_with_default(w, "end", 0);
    /* To the beacon's scan resolution: within a few minutes of her boarding and leaving. */
    gboolean ok = ABS(start - boarded) <= 300 && ABS(end - left) <= 300;
    *passed = *passed && ok;
    g_autofree char *window = format_span(start, end);
    g_print("         one window, %s: lan was aboard %s%s\n", window, aboard,
            ok ? "" : "  <-- WRONG");
    g_print("         The warning holds the bus's own daily key (TEK) and the window: riders'\n"
            "         phones find the bus's IDs in their own logs. Not who rode, not lan's key.\n");
    return TRUE;
}

/* After the second sync: who rode with lan. */
static gboolean print_vehicle_results(SimWorld *world, const SimRide *ride, GArray *devices,
                                      gboolean *passed, GError **error)
{
    const SimDevice *f0 = sim_ride_device(ride, ride->f0);
    g_print("\n  %-8s %-5s %9s %7s  %-8s %-14s %s\n", "device", "seat", "from lan", "aboard",
            "close", "same vehicle", "expected");
    for (guint i = 0; i < devices->len; i++) {
        Device *d = &g_array_index(devices, Device, i);
        const SimDevice *dev = d->daemon->device;
        if (dev->beacon)
            continue;
        guint count = 0, minutes = 0, venue_count = 0, venue_minutes = 0;
        if (!venue_exposures(world, d, "same-vehicle", &count, &minutes, error) ||
            !venue_exposures(world, d, "venue", &venue_count, &venue_minutes, error))
            return FALSE;
        /* One signal per stored exposure; nothing raised twice by the second sync. */
        gboolean consistent = count == d->vehicle_signals && count <= 1 &&
                              venue_count == d->venue_signals &&
                              d->exposures == (d->high ? 1u : 0u);
        gboolean ok = TRUE;
        const char *expected;
        if (dev == f0) {
            expected = "none (reported)";
            ok = count == 0;
        } else if (dev->minutes_with_f0 >= VEHICLE_SURE_MINUTES) {
            expected = "alert";
            ok = count == 1 && minutes >= VENUE_MIN_MINUTES;
        } else if (dev->minutes_with_f0 == 0) {
            expected = "none";
            ok = count == 0;
        } else {
            expected = "either";
        }
        *passed = *passed && ok && consistent;
        g_autofree char *dist =
            dev == f0 ? g_strdup("-") : g_strdup_printf("%.1f m", dev->distance_to_f0);
        g_autofree char *aboard =
            dev == f0 ? g_strdup("-")
                      : g_strdup_printf("%" G_GINT64_FORMAT " min", dev->minutes_with_f0);
        g_autofree char *vehicle =
            count == 0 ? g_strdup("none") : g_strdup_printf("%u min: ALERT", minutes);
        g_print("  %-8s %-5s %9s %7s  %-8s %-14s %s%s%s\n", dev->name, dev->seat, dist, aboard,
                dev == f0 ? "-"
                : d->high ? "HIGH"
                          : "low",
                vehicle, expected, ok ? "" : "  <-- WRONG",
                consistent ? "" : " (signals do not match the stored exposures)");
    }
    g_print("\n  'close' is the close-contact risk of 10:30. Everyone who rode with lan for %d\n"
            "  minutes or more gets a same-vehicle warning (VenueExposureDetected, \"You rode a\n"
            "  vehicle with someone who later tested positive\"), also those at the back who\n"
            "  never heard her phone; riders near the threshold may or may not ('either'). lan\n"
            "  rode from the first stop to the last, so nobody boarded after she left; a rider\n"
            "  of the bus's next trip hears it outside the window and gets nothing (the venues\n"
            "  test checks that). lan's phone heard the bus too, but it knows she reported:\n"
            "  her own ride coming back is no alert.\n",
            VENUE_MIN_MINUTES);
    return TRUE;
}

/* ---- the ending ---- */

/* An authority-side clock: simulated time `sim_start` now, running at real speed. */
static char *authority_clock(gint64 sim_start)
{
    ProxSimClock clock = {
        .real_start_us = g_get_real_time(),
        .sim_start_us = sim_start * G_USEC_PER_SEC,
        .speed = 1.0,
    };
    return prox_sim_clock_format(&clock);
}

static Device *find_device(GArray *devices, const SimDevice *device)
{
    for (guint i = 0; i < devices->len; i++) {
        Device *dev = &g_array_index(devices, Device, i);
        if (dev->daemon->device == device)
            return dev;
    }
    return NULL;
}

static gboolean publish(SimWorld *world, const char *clock, const char *db, const char *sec,
                        const char *keys_dir, char **out, GError **error)
{
    const char *argv[] = {
        world->tools->authority, "publish", "--db", db, "--key", sec, "--out", keys_dir, NULL};
    return sim_world_run(world, clock, argv, out, error);
}

static gboolean ending(SimWorld *world, const SimRide *ride, GArray *devices, gboolean *passed,
                       GError **error)
{
    const SimDevice *f0 = sim_ride_device(ride, ride->f0);
    Device *f0_dev = find_device(devices, f0);
    Device *bus_dev = find_device(devices, sim_ride_device(ride, 0));
    g_return_val_if_fail(f0_dev != NULL && bus_dev != NULL, FALSE);

    gint64 ride_day = prox_risk_day_of(ride->epoch);
    gint64 report_at = ride_day + DAY + REPORT_AFTER_MIDNIGHT;
    g_autoptr(GDateTime) onset = g_date_time_new_from_unix_utc(ride_day);
    g_autofree char *onset_s = g_date_time_format(onset, "%Y-%m-%d");

    g_autofree char *auth_dir = g_build_filename(world->dir, "authority", NULL);
    g_autofree char *keys_dir = g_build_filename(world->dir, "published", NULL);
    g_autofree char *poster_dir = g_build_filename(world->dir, "poster", NULL);
    g_autofree char *warnings_path = g_build_filename(world->dir, "bus-warnings.json", NULL);
    g_autofree char *db = g_build_filename(auth_dir, "authority.db", NULL);
    g_autofree char *sec = g_build_filename(auth_dir, KEY_ID "-" KEY_VERSION ".sec", NULL);
    g_autofree char *pub = g_build_filename(auth_dir, KEY_ID "-" KEY_VERSION ".pub", NULL);
    g_autofree char *port_file = g_build_filename(auth_dir, "keyserver.port", NULL);
    if (g_mkdir_with_parents(auth_dir, 0700) != 0 || g_mkdir_with_parents(keys_dir, 0755) != 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot create %s", auth_dir);
        return FALSE;
    }

    g_print("\n== The next morning: %s tests positive ==\n", f0->name);
    g_autofree char *clock = authority_clock(report_at);
    const char *init_argv[] = {world->tools->authority,
                               "init-key",
                               "--key-id",
                               KEY_ID,
                               "--key-version",
                               KEY_VERSION,
                               "--dir",
                               auth_dir,
                               NULL};
    if (!sim_world_run(world, clock, init_argv, NULL, error))
        return FALSE;
    g_autofree char *code = NULL;
    const char *code_argv[] = {
        world->tools->authority, "issue-code",     "--db", db, "--onset", onset_s,
        "--test-type",           "confirmed-test", NULL};
    if (!sim_world_run(world, clock, code_argv, &code, error))
        return FALSE;
    g_strstrip(code);
    g_print("  09:00  the health authority confirms the case and gives %s a one-time code:\n"
            "         %s (prox-authority issue-code; symptoms since the ride, %s)\n",
            f0->name, code, onset_s);

    const char *server_argv[] = {world->tools->keyserver, "--db",        db,        "--listen",
                                 "127.0.0.1:0",           "--port-file", port_file, NULL};
    SimProcess *server = sim_world_spawn(world, "prox-keyserver", clock, server_argv, error);
    if (server == NULL || !sim_world_wait_file(world, port_file, SERVER_TIMEOUT_MS, error))
        return FALSE;
    g_autofree char *port = NULL;
    if (!g_file_get_contents(port_file, &port, NULL, error))
        return FALSE;
    g_autofree char *url = g_strdup_printf("http://127.0.0.1:%s/v1/publish", g_strstrip(port));
    g_autofree char *index_url = g_strdup_printf("file://%s/index.txt", keys_dir);

    /* Every phone and the bus are on again this morning, each proxd on its store. */
    if (!restart_daemons(world, report_at, url, index_url, pub, devices, error))
        return FALSE;
    g_print("  09:00  every phone and the bus run proxd again (the same stores; %u daemons on\n"
            "         a new private bus, no radio needed for what follows)\n",
            devices->len);

    /* The evening before: a restaurant with a QR poster. */
    g_print("\n-- A QR check-in, the evening of the ride --\n");
    g_autofree char *venue_url = register_venue(world, clock, db, sec, poster_dir, error);
    if (venue_url == NULL)
        return FALSE;
    Device *long_visit = NULL, *short_visit = NULL;
    if (!evening_visits(world, devices, ride_day, f0_dev, venue_url, &long_visit, &short_visit,
                        error))
        return FALSE;

    g_print("\n-- The report --\n");
    g_print("  09:05  %s types the code into her phone; her proxd shows what it will send\n"
            "         (PreviewReport over D-Bus, as proxctl report does) and, once she agrees,\n"
            "         posts her keys to the key server, %s (Report)\n",
            f0->name, url);
    gboolean reported = report_positive(world, f0_dev, code, error);
    sim_world_terminate(world, server);
    if (!reported)
        return FALSE;
    g_print("  The authority learns what she sent: her daily keys and that one visit (it\n"
            "  registered the venue, so it knows the place); not whom she met.\n");

    g_autofree char *publish_clock = authority_clock(report_at + PUBLISH_AFTER_REPORT);
    g_autofree char *published = NULL;
    if (!publish(world, publish_clock, db, sec, keys_dir, &published, error))
        return FALSE;
    g_print("  10:00  the authority publishes a signed key list (prox-authority publish):\n");
    print_indented(published);
    g_print("         padding keys hide how few people reported; devices fetch %s/index.txt\n",
            keys_dir);

    g_print("  10:30  every phone and the bus sync the list (Sync over D-Bus, as proxctl sync\n"
            "         does; file:// here, https behind a CDN in real life), verify its Ed25519\n"
            "         signature, and match the keys against what they heard, on the device:\n");
    if (!sync_all(world, devices, error))
        return FALSE;
    const Device *shown = NULL;
    for (guint i = 0; i < devices->len && shown == NULL; i++) {
        const Device *dev = &g_array_index(devices, Device, i);
        if (dev->daemon->device->klass == SIM_DEVICE_CLOSE)
            shown = dev;
    }
    if (shown != NULL && shown->progress != NULL && shown->progress->len > 0)
        g_print("         %s's phone (SyncProgress): %s\n", shown->daemon->device->name,
                shown->progress->str);
    if (!print_results(world, ride, devices, passed, error))
        return FALSE;
    g_print("\n  The same sync matched the restaurant's warning against each phone's check-ins:\n");
    if (!print_venue_results(world, devices, f0_dev, long_visit, short_visit, passed, error))
        return FALSE;

    /* The bus: the operator traces, the authority publishes the warning, riders sync. */
    g_print("\n-- Same vehicle: the bus's warning --\n");
    g_autofree char *trace_clock = authority_clock(report_at + TRACE_AFTER_REPORT);
    if (!trace_bus(world, ride, bus_dev->daemon, keys_dir, pub, warnings_path, trace_clock, passed,
                   error))
        return FALSE;
    g_autofree char *republish_clock = authority_clock(report_at + REPUBLISH_AFTER_REPORT);
    const char *import_argv[] = {world->tools->authority, "warning", "import", "--db", db,
                                 warnings_path,           NULL};
    g_autofree char *imported = NULL;
    g_autofree char *republished = NULL;
    if (!sim_world_run(world, republish_clock, import_argv, &imported, error) ||
        !publish(world, republish_clock, db, sec, keys_dir, &republished, error))
        return FALSE;
    g_print("  11:10  the authority checks and stores the warning (prox-authority warning import)\n"
            "         and signs it into the next list (prox-authority publish):\n");
    print_indented(imported);
    print_indented(republished);
    g_print("  11:30  every phone syncs again and derives the bus's IDs of the window from the\n"
            "         published key, then looks for them in its own log:\n");
    if (!sync_all(world, devices, error))
        return FALSE;
    return print_vehicle_results(world, ride, devices, passed, error);
}

gboolean sim_ending_run(SimWorld *world, const SimRide *ride, gboolean *passed, GError **error)
{
    *passed = FALSE;
    g_autoptr(GArray) devices = g_array_new(FALSE, TRUE, sizeof(Device));
    g_array_set_clear_func(devices, (GDestroyNotify)device_clear);
    g_array_set_size(devices, world->daemons->len);
    for (guint i = 0; i < world->daemons->len; i++)
        g_array_index(devices, Device, i).daemon = g_ptr_array_index(world->daemons, i);

    gboolean checks = TRUE;
    gboolean ok = ending(world, ride, devices, &checks, error);
    /* The morning's daemons commit and exit. */
    for (guint i = 0; i < devices->len; i++)
        device_clear(&g_array_index(devices, Device, i));
    gboolean stopped = TRUE;
    if (world->connection != NULL) {
        g_autoptr(GError) stop_error = NULL;
        stopped = sim_world_stop_daemons(world, ok ? error : &stop_error);
        sim_world_stop_radio(world, NULL);
    }
    if (!ok || !stopped)
        return FALSE;
    *passed = checks;
    return TRUE;
}
