/* sim-ending.c - lan tests positive: code, report, publish, sync, alerts. */
#define G_LOG_DOMAIN "prox-sim"

#include "sim-ending.h"

#include <glib/gstdio.h>
#include <string.h>

#include "proxd-report.h"
#include "proxd-sync.h"
#include "prox-risk.h"
#include "prox-store.h"

#define DAY 86400
#define KEY_ID "452"
#define KEY_VERSION "v1"
/* lan gets her result at 09:00 the day after the ride; the authority publishes at 10:00
 * and devices sync at 10:30. */
#define REPORT_AFTER_MIDNIGHT (9 * 3600)
#define PUBLISH_AFTER_REPORT 3600
#define SYNC_AFTER_REPORT 5400
#define SERVER_TIMEOUT_MS 20000
#define SYNC_TIMEOUT_MS 60000

typedef struct {
    SimDaemon *daemon;
    ProxdSync *sync;
    gboolean done;
    gboolean complete;
    ProxdSyncResult *result;
    GError *error;
} DeviceSync;

static gint64 sync_clock(gpointer user_data)
{
    return *(gint64 *)user_data;
}

static void on_sync_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
    DeviceSync *s = user_data;
    s->complete = proxd_sync_run_finish(PROXD_SYNC(source), res, &s->result, &s->error);
    s->done = TRUE;
}

static gboolean all_synced(gpointer p)
{
    GArray *syncs = p;
    for (guint i = 0; i < syncs->len; i++)
        if (!g_array_index(syncs, DeviceSync, i).done)
            return FALSE;
    return TRUE;
}

static void device_sync_clear(DeviceSync *s)
{
    if (s->sync != NULL && proxd_sync_is_running(s->sync))
        proxd_sync_cancel(s->sync);
    g_clear_object(&s->sync);
    g_clear_pointer(&s->result, proxd_sync_result_unref);
    g_clear_error(&s->error);
}

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

static gboolean report_positive(SimWorld *world, const SimDaemon *f0, const char *code,
                                const char *url, gint64 now, GError **error)
{
    g_autoptr(ProxStore) store = prox_store_open(f0->db_path, NULL, error);
    if (store == NULL)
        return FALSE;
    g_autoptr(ProxdReport) report = proxd_report_new(store, now, error);
    if (report == NULL)
        return FALSE;
    /* What proxctl report shows before asking for consent: how many keys, which days. */
    guint n = proxd_report_get_n_keys(report);
    g_print("  %s's phone will send %u daily key%s (", f0->device->name, n, n == 1 ? "" : "s");
    for (guint i = 0; i < n; i++) {
        guint32 start, period;
        proxd_report_get_key_period(report, i, &start, &period);
        g_autoptr(GDateTime) day = g_date_time_new_from_unix_utc((gint64)start * 600);
        g_autofree char *s = g_date_time_format(day, "%Y-%m-%d");
        g_print("%s%s", i > 0 ? ", " : "", s);
    }
    g_print(")\n  and nothing else: not whom she met, not where. Today's key stays on the "
            "phone\n  until the day is over.\n");
    ProxdReportOptions options = {.url = url, .timeout = 30};
    guint inserted = 0;
    if (!proxd_report_send(report, code, &options, NULL, &inserted, error))
        return FALSE;
    g_print("  key server: accepted, %u new key%s stored; the code is now used up\n", inserted,
            inserted == 1 ? "" : "s");
    return TRUE;
}

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

static gboolean print_results(const SimRide *ride, GArray *syncs)
{
    gboolean passed = TRUE;
    const SimDevice *f0 = sim_ride_device(ride, ride->f0);
    g_print("\n  %-8s %-5s %9s %9s %9s %10s  %-11s %-9s\n", "device", "seat", "from lan",
            "together", "weighted", "normalized", "risk", "expected");
    for (guint i = 0; i < syncs->len; i++) {
        DeviceSync *s = &g_array_index(syncs, DeviceSync, i);
        const SimDevice *dev = s->daemon->device;
        if (dev->beacon)
            continue;
        const ProxDetectResult *r = &s->result->detect;
        double weighted = 0, normalized = 0;
        for (guint j = 0; j < r->summary.n_days; j++) {
            weighted += r->summary.days[j].weighted_minutes;
            normalized += r->summary.days[j].normalized_minutes;
        }
        gboolean high = r->summary.level == PROX_RISK_LEVEL_HIGH;
        const char *expected = expectation(dev->klass);
        gboolean ok = dev->klass == SIM_DEVICE_CLOSE                                ? high
                      : dev->klass == SIM_DEVICE_FAR || dev->klass == SIM_DEVICE_F0 ? !high
                                                                                    : TRUE;
        passed = passed && ok;
        g_autofree char *dist =
            dev == f0 ? g_strdup("-") : g_strdup_printf("%.1f m", dev->distance_to_f0);
        g_autofree char *together =
            dev == f0 ? g_strdup("-")
                      : g_strdup_printf("%" G_GINT64_FORMAT " min", dev->minutes_with_f0);
        g_print("  %-8s %-5s %9s %9s %9.1f %10.1f  %-11s %-9s%s\n", dev->name, dev->seat, dist,
                together, weighted, normalized, high ? "HIGH: ALERT" : "low", expected,
                ok ? "" : "  <-- WRONG");
    }
    g_print("\n  'weighted' = minutes near lan's IDs, each scan weighted by signal attenuation\n"
            "  (Corona-Warn-App v2 rule); 'normalized' = x her keys' transmission risk. A day\n"
            "  at >= 13 normalized minutes is high risk: proxd raises ExposureDetected, and the\n"
            "  phone's notification shell shows the alert. Nobody learns who lan is.\n");
    return passed;
}

gboolean sim_ending_run(SimWorld *world, const SimRide *ride, gboolean *passed, GError **error)
{
    *passed = FALSE;
    const SimDevice *f0 = sim_ride_device(ride, ride->f0);
    SimDaemon *f0_daemon = NULL;
    for (guint i = 0; i < world->daemons->len; i++) {
        SimDaemon *d = g_ptr_array_index(world->daemons, i);
        if (d->device == f0)
            f0_daemon = d;
    }
    g_return_val_if_fail(f0_daemon != NULL, FALSE);

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
    /* prox-sim runs proxd's report code (daemon/proxd-report.c) on her store directly:
     * the same code proxd's Report method (proxctl report) runs. */
    g_print("  09:05  %s types the code into her phone; proxd's report code posts her keys\n"
            "         to the key server, %s\n",
            f0->name, url);
    /* The report is read from her store as her proxd would, after the ride day is over. */
    gboolean reported = report_positive(world, f0_daemon, code, url, report_at + 300, error);
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

    g_print("  10:30  every phone and the bus sync the list (proxd's sync code on each store;\n"
            "         file:// here, https behind a CDN in real life), verify its Ed25519\n"
            "         signature, and match the keys against what they heard, on the device:\n");
    g_autofree char *index_url = g_strdup_printf("file://%s/index.txt", keys_dir);
    gint64 sync_at = report_at + SYNC_AFTER_REPORT;
    g_autoptr(GArray) syncs = g_array_new(FALSE, TRUE, sizeof(DeviceSync));
    g_array_set_clear_func(syncs, (GDestroyNotify)device_sync_clear);
    g_array_set_size(syncs, world->daemons->len);
    for (guint i = 0; i < world->daemons->len; i++) {
        DeviceSync *s = &g_array_index(syncs, DeviceSync, i);
        s->daemon = g_ptr_array_index(world->daemons, i);
        const char *entries[] = {pub, NULL};
        ProxExportKeyring *keyring = proxd_sync_keyring_load(entries, error);
        if (keyring == NULL)
            return FALSE;
        ProxdSyncOptions options = {
            .url = index_url,
            .db_path = s->daemon->db_path,
            .confidence = PROX_CALIBRATION_LOW, /* proxd's default CalibrationConfidence */
            .detect_threads = 1,
            .jitter = -1,
        };
        s->sync = proxd_sync_new(&options, keyring, error);
        if (s->sync == NULL)
            return FALSE;
        proxd_sync_set_clock(s->sync, sync_clock, &sync_at);
        proxd_sync_run_async(s->sync, PROXD_SYNC_RUN_DEFAULT, NULL, on_sync_done, s);
    }
    if (!sim_world_wait(world, all_synced, syncs, SYNC_TIMEOUT_MS, "devices synced", error))
        return FALSE;
    for (guint i = 0; i < syncs->len; i++) {
        DeviceSync *s = &g_array_index(syncs, DeviceSync, i);
        if (!s->complete || s->result == NULL || !s->result->detected) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s's sync failed: %s",
                        s->daemon->device->name,
                        s->error != NULL ? s->error->message : "no detection run");
            return FALSE;
        }
    }
    *passed = print_results(ride, syncs);
    for (guint i = 0; i < syncs->len; i++) {
        DeviceSync *s = &g_array_index(syncs, DeviceSync, i);
        if (s->daemon->device->beacon)
            print_beacon_warning(s->daemon);
    }
    return TRUE;
}
