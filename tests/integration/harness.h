/* harness.h - integration test harness: a private dbus-daemon, the fake BlueZ radio world
 * (tests/fake-bluez) and real proxd processes, all on a shared simulated clock.
 *
 * Nothing here sleeps: every wait iterates the main context until a D-Bus signal, a
 * property change or a file makes a condition true, with a timeout that only bounds
 * failures.
 */
#pragma once

#include <gio/gio.h>

#include "proxd-dbus-generated.h"

G_BEGIN_DECLS

/* Simulated unix time at which every test world starts: 2026-01-15 08:00:00 UTC. */
#define HARNESS_SIM_EPOCH 1768464000

typedef struct Harness Harness;

typedef struct {
    Harness *harness;
    char *name;     /* scenario device name, e.g. "alice" */
    guint adapter;  /* hci<adapter> */
    char *bus_name; /* org.proxd.<name> */
    char *state_dir;
    char *log_path;
    char *config_path;
    GSubprocess *process;
    ProxdDbusManager1 *proxy; /* follows the name across restarts */
    /* Monotonic time (us) of the last PropertiesChanged that set Advertising / Scanning to
     * true, 0 before any: transitions are caught even when they flip back at once. */
    gint64 advertising_at;
    gint64 scanning_at;
} HarnessDaemon;

struct Harness {
    GSubprocess *bus;  /* a private dbus-daemon */
    char *bus_address; /* given to every child as DBUS_SESSION_BUS_ADDRESS */
    GDBusConnection *connection;
    char *dir; /* per-test temporary directory, removed unless the test failed */
    char *scenario_path;
    char *truth_path;
    char *sim_clock; /* PROX_SIM_CLOCK value shared by every process */
    double speed;
    GSubprocess *fake;
    guint fake_starts;
    gboolean no_truth_log; /* set before starting the fake: no ground-truth log */
    GPtrArray *daemons;    /* HarnessDaemon */
};

/* Starts a private bus and prepares a world for `scenario` (a file name in
 * tests/scenarios/) running `speed` times faster than real time. */
Harness *harness_new(const char *scenario, double speed);
/* The same, with the world starting at simulated unix time `sim_start`. */
Harness *harness_new_at(const char *scenario, double speed, gint64 sim_start);
/* Stops every process (SIGTERM, then waits), prints their logs if the test failed, and
 * tears the bus down. */
void harness_free(Harness *h);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Harness, harness_free)

/* Starts fake-bluez and waits for it to own org.bluez. */
void harness_start_fake(Harness *h);
/* The same, with more fake-bluez options (NULL-terminated, e.g. --max-report-rate 50). */
void harness_start_fake_args(Harness *h, const char *const *extra_args);
/* Stops fake-bluez the way bluetoothd exits (SIGTERM) and waits until org.bluez is gone. */
void harness_stop_fake(Harness *h);

/* A launcher for a child on the test bus (DBUS_SESSION_BUS_ADDRESS, PROX_SIM_CLOCK, TZ set;
 * killed if the test program dies). */
GSubprocessLauncher *harness_launcher(Harness *h, GSubprocessFlags flags);

/* Starts proxd for scenario device `name` on hci<adapter> in `role` (NULL: whatever the
 * configuration says), with `config` (key file text, may be NULL) written to its
 * configuration file. Waits until it owns its bus name. */
HarnessDaemon *harness_start_proxd(Harness *h, const char *name, guint adapter, const char *role,
                                   const char *config);
/* SIGTERM; waits for the exit and asserts status 0. */
void harness_stop_proxd(HarnessDaemon *d);

/* Simulated unix seconds now. */
double harness_sim_now(Harness *h);

typedef gboolean (*HarnessCondition)(gpointer user_data);
/* Iterates the default main context until `cond` holds; FALSE after timeout_ms. */
gboolean harness_wait(HarnessCondition cond, gpointer user_data, guint timeout_ms);
/* Waits until the daemon's cached property `property` equals `value` (consumed). */
gboolean harness_wait_property(HarnessDaemon *d, const char *property, GVariant *value,
                               guint timeout_ms);

/* Waits until the file at `path` contains `needle` (a GFileMonitor wakes the wait). */
gboolean harness_wait_file_contains(const char *path, const char *needle, guint timeout_ms);
/* Waits until the simulated clock reaches `sim_time` (unix seconds): the scenario's
 * timeline has played out up to there. */
void harness_wait_sim_time(Harness *h, double sim_time);

/* Calls a method of the fake's control interface (org.proxd.FakeBluez1); asserts success. */
GVariant *harness_fake_call(Harness *h, const char *method, GVariant *parameters);
/* The fake's registration record of `d`'s advertisement (ListAdvertisements entry whose
 * Owner is d's unique name and which is still registered), or NULL. */
GVariant *harness_fake_advertisement(HarnessDaemon *d);
/* The fake's ListDevices entry for hci<adapter>, or NULL. */
GVariant *harness_fake_device(Harness *h, guint adapter);

/* The 16-byte RPI in an advertisement record's ServiceData, as lower-case hex. */
char *harness_advert_rpi_hex(GVariant *advert);
/* A finished proxctl run: exit status, stdout, stderr. */
typedef struct {
    int status;
    char *out;
    char *err;
} HarnessRun;
void harness_run_clear(HarnessRun *r);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(HarnessRun, harness_run_clear)
/* Runs `proxctl --session --bus-name=BUS` with the arguments (NULL-terminated) to its end. */
void harness_proxctl(HarnessRun *r, Harness *h, const char *bus_name, ...) G_GNUC_NULL_TERMINATED;

/* The fake's WaitReports (count more over-the-air reports from hci<advertiser> at
 * hci<scanner>), with the main context running meanwhile so the daemons' signals keep
 * arriving; returns how many of them reached D-Bus. */
guint harness_wait_reports(Harness *h, guint scanner, guint advertiser, guint count);
/* Whether d's registration is on the air in the fake with an RPI other than old_rpi (NULL:
 * any). */
gboolean harness_new_rpi_on_air(HarnessDaemon *d, const char *old_rpi);
/* Waits for harness_new_rpi_on_air(), woken by the fake's AdvertisementChanged signals. */
gboolean harness_wait_new_rpi_on_air(HarnessDaemon *d, const char *old_rpi, guint timeout_ms);

/* Sightings from d's GetSightings over all time: a(ayayttunnn). */
GVariant *harness_sightings(HarnessDaemon *d);

char *harness_hex(const guint8 *bytes, gsize len);
/* rm -r */
void harness_remove_tree(const char *path);

/* dbus-daemon configuration of a system-like bus (Debian's system.conf defaults), listening
 * in `listen_dir` and including `policy_file` (e.g. dbus/org.proxd.conf). */
char *harness_system_bus_conf(const char *listen_dir, const char *policy_file);

G_END_DECLS
