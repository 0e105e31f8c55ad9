/* sim-ending.c - lan tests positive: code, report, publish, sync, alerts - through the
 * daemons' D-Bus API, as a phone's user interface (proxctl) drives them. */
#define G_LOG_DOMAIN "prox-sim"

#include "sim-ending.h"

#include <glib/gstdio.h>
#include <string.h>

#include "prox-risk.h"
#include "prox-store.h"

#define DAY 86400
#define KEY_ID "452"
#define KEY_VERSION "v1"
/* lan gets her result at 09:00 the day after the ride; the authority publishes at 10:00
 * and devices sync at 10:30. */
#define REPORT_AFTER_MIDNIGHT (9 * 3600)
#define PUBLISH_AFTER_REPORT 3600
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
    guint exposures;   /* ExposureDetected received */
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

typedef struct {
    gboolean owned;
} NameWait;

static void on_name_appeared(GDBusConnection *c, const char *name, const char *owner, gpointer p)
{
    ((NameWait *)p)->owned = TRUE;
}

static void on_name_vanished(GDBusConnection *c, const char *name, gpointer p)
{
    ((NameWait *)p)->owned = FALSE;
}

static gboolean name_owned(gpointer p)
{
    return ((NameWait *)p)->owned;
}

/* The ride's bus and radio are gone: a fresh bus with the world's clock restarted at
 * `morning`, and every device's proxd started again on its store, with the key server and
 * the published lists configured. There is no radio this morning (no fake-bluez): the
 * daemons report bluez-unavailable, which changes nothing for reports and syncs. */
static gboolean restart_daemons(SimWorld *world, gint64 morning, const char *upload_url,
                                const char *index_url, const char *pub, GArray *devices,
                                GError **error)
{
    /* sim_world_stop_radio() keeps the old bus address; start_bus() sets a new one. */
    g_clear_pointer(&world->bus_address, g_free);
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
        g_autofree char *name_arg = g_strdup_printf("--bus-name=%s", d->bus_name);
        g_autofree char *adapter_arg = g_strdup_printf("--adapter=hci%u", d->device->adapter);
        g_autofree char *state_arg = g_strdup_printf("--state-dir=%s", d->state_dir);
        g_autofree char *config_arg = g_strdup_printf("--config=%s", config);
        const char *argv[] = {world->tools->proxd,
                              "--session",
                              name_arg,
                              adapter_arg,
                              state_arg,
                              config_arg,
                              d->device->beacon ? "--role=beacon" : "--role=person",
                              world->verbose ? "--verbose" : NULL,
                              NULL};
        g_autofree char *log_name = g_strdup_printf("proxd-%s-morning", d->device->name);
        /* The new process replaces the ride's (both stay owned by the world). */
        d->process = sim_world_spawn(world, log_name, NULL, argv, error);
        if (d->process == NULL)
            return FALSE;
    }
    for (guint i = 0; i < devices->len; i++) {
        Device *dev = &g_array_index(devices, Device, i);
        SimDaemon *d = dev->daemon;
        NameWait w = {FALSE};
        guint id = g_bus_watch_name_on_connection(world->connection, d->bus_name,
                                                  G_BUS_NAME_WATCHER_FLAGS_NONE, on_name_appeared,
                                                  on_name_vanished, &w, NULL);
        g_autofree char *what = g_strdup_printf("waiting for %s on the bus", d->bus_name);
        gboolean ok = sim_world_wait(world, name_owned, &w, START_TIMEOUT_MS, what, error);
        g_bus_unwatch_name(id);
        if (!ok)
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

/* Input arguments of Report() as the daemon declares them: (code, days) or, with venue
 * check-ins, (code, days, checkins). */
static gboolean report_arity(SimDaemon *d, guint *n, GError **error)
{
    g_autoptr(GVariant) reply = g_dbus_connection_call_sync(
        g_dbus_proxy_get_connection(d->proxy), d->bus_name, MANAGER_PATH,
        "org.freedesktop.DBus.Introspectable", "Introspect", NULL, G_VARIANT_TYPE("(s)"),
        G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL, error);
    if (reply == NULL)
        return FALSE;
    const char *xml = NULL;
    g_variant_get(reply, "(&s)", &xml);
    g_autoptr(GDBusNodeInfo) node = g_dbus_node_info_new_for_xml(xml, error);
    if (node == NULL)
        return FALSE;
    GDBusInterfaceInfo *iface = g_dbus_node_info_lookup_interface(node, MANAGER_IFACE);
    GDBusMethodInfo *method =
        iface != NULL ? g_dbus_interface_info_lookup_method(iface, "Report") : NULL;
    if (method == NULL) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                    "%s has no " MANAGER_IFACE ".Report method", d->bus_name);
        return FALSE;
    }
    *n = 0;
    while (method->in_args != NULL && method->in_args[*n] != NULL)
        (*n)++;
    if (*n != 2 && *n != 3) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                    "Report() takes %u arguments; this prox-sim knows 2 and 3", *n);
        return FALSE;
    }
    return TRUE;
}

/* What proxctl report does: PreviewReport(), show it, then Report() with the days shown. */
static gboolean report_positive(SimWorld *world, SimDaemon *f0, const char *code, GError **error)
{
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
    /* What proxctl report shows before asking for consent: how many keys, which days. */
    g_print("  %s's phone will send %u daily key%s (", f0->device->name, n, n == 1 ? "" : "s");
    for (gsize i = 0; i < g_variant_n_children(days); i++) {
        guint64 day = 0;
        g_variant_get_child(days, i, "t", &day);
        g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc((gint64)day);
        g_autofree char *s = g_date_time_format(dt, "%Y-%m-%d");
        g_print("%s%s", i > 0 ? ", " : "", s);
    }
    g_print(")\n  and nothing else: not whom she met, not where. Today's key stays on the "
            "phone\n  until the day is over.\n");

    guint arity = 0;
    if (!report_arity(f0, &arity, error))
        return FALSE;
    /* No venue check-ins: this ending is about the bus ride's encounters. */
    GVariant *params = arity == 3
                           ? g_variant_new("(s@at@ax)", code, days,
                                           g_variant_new_fixed_array(G_VARIANT_TYPE_INT64, NULL, 0,
                                                                     sizeof(gint64)))
                           : g_variant_new("(s@at)", code, days);
    g_autoptr(GVariant) sent = call(world, f0, "Report", params, error);
    if (sent == NULL)
        return FALSE;
    guint inserted = 0;
    g_variant_get(sent, "(u)", &inserted);
    g_print("  key server: accepted, %u new key%s stored; the code is now used up\n", inserted,
            inserted == 1 ? "" : "s");
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

static void print_beacon_warning(const SimDaemon *d)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(ProxStore) store = prox_store_open(d->db_path, NULL, &error);
    g_autoptr(GArray) windows = NULL;
    if (store == NULL || !prox_store_load_exposure_windows(store, 0, &windows, &error)) {
        g_print("  %s: cannot read its exposure windows: %s\n", d->device->name, error->message);
        return;
    }
    if (windows->len == 0) {
        g_print("  %s (beacon): heard none of the published IDs\n", d->device->name);
        return;
    }
    gint64 first = G_MAXINT64, last = 0;
    for (guint i = 0; i < windows->len; i++) {
        const ProxExposureWindow *w = &g_array_index(windows, ProxExposureWindow, i);
        first = MIN(first, w->start);
        last = MAX(last, w->end);
    }
    g_autofree char *from = sim_format_clock(first);
    g_autofree char *to = sim_format_clock(last);
    g_print("  %s (beacon, no alerts of its own): carried someone who reported positive from\n"
            "      %s to %s - what a \"this bus carried an F0\" warning to riders is built on\n",
            d->device->name, from, to);
}

/* The table, from what each daemon says over D-Bus: RiskLevel after the sync (Sync()'s
 * "risk-level"), GetExposures() for the minutes, and whether ExposureDetected came. */
static gboolean print_results(SimWorld *world, const SimRide *ride, GArray *devices,
                              gboolean *passed, GError **error)
{
    *passed = TRUE;
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

static gboolean ending(SimWorld *world, const SimRide *ride, GArray *devices, gboolean *passed,
                       GError **error)
{
    const SimDevice *f0 = sim_ride_device(ride, ride->f0);
    Device *f0_dev = NULL;
    for (guint i = 0; i < devices->len; i++) {
        Device *dev = &g_array_index(devices, Device, i);
        if (dev->daemon->device == f0)
            f0_dev = dev;
    }
    g_return_val_if_fail(f0_dev != NULL, FALSE);

    gint64 ride_day = prox_risk_day_of(ride->epoch);
    gint64 report_at = ride_day + DAY + REPORT_AFTER_MIDNIGHT;
    g_autoptr(GDateTime) onset = g_date_time_new_from_unix_utc(ride_day);
    g_autofree char *onset_s = g_date_time_format(onset, "%Y-%m-%d");

    g_autofree char *auth_dir = g_build_filename(world->dir, "authority", NULL);
    g_autofree char *keys_dir = g_build_filename(world->dir, "published", NULL);
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

    g_print("  09:05  %s types the code into her phone; her proxd shows what it will send\n"
            "         (PreviewReport over D-Bus, as proxctl report does) and, once she agrees,\n"
            "         posts her keys to the key server, %s (Report)\n",
            f0->name, url);
    gboolean reported = report_positive(world, f0_dev->daemon, code, error);
    sim_world_terminate(world, server);
    if (!reported)
        return FALSE;

    g_autofree char *publish_clock = authority_clock(report_at + PUBLISH_AFTER_REPORT);
    g_autofree char *published = NULL;
    const char *publish_argv[] = {
        world->tools->authority, "publish", "--db", db, "--key", sec, "--out", keys_dir, NULL};
    if (!sim_world_run(world, publish_clock, publish_argv, &published, error))
        return FALSE;
    g_print("  10:00  the authority publishes a signed key list (prox-authority publish):\n"
            "         %s",
            published);
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
    return print_results(world, ride, devices, passed, error);
}

gboolean sim_ending_run(SimWorld *world, const SimRide *ride, gboolean *passed, GError **error)
{
    *passed = FALSE;
    g_autoptr(GArray) devices = g_array_new(FALSE, TRUE, sizeof(Device));
    g_array_set_clear_func(devices, (GDestroyNotify)device_clear);
    g_array_set_size(devices, world->daemons->len);
    for (guint i = 0; i < world->daemons->len; i++)
        g_array_index(devices, Device, i).daemon = g_ptr_array_index(world->daemons, i);

    gboolean ok = ending(world, ride, devices, passed, error);
    /* The morning's daemons commit and exit; the beacon's warning is read from its store
     * afterwards, like the ride's report. */
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
    for (guint i = 0; i < world->daemons->len; i++) {
        SimDaemon *d = g_ptr_array_index(world->daemons, i);
        if (d->device->beacon)
            print_beacon_warning(d);
    }
    return TRUE;
}
