/* test-signals.c - signals during proxd's shutdown, and proxd on LE-only controllers with
 * legacy advertising.
 *
 * Shutdown: a second SIGTERM (or a SIGHUP) does not cut it short, the pending sightings are
 * stored and the exit status is 0; a third SIGTERM forces the exit.
 *
 * To hold proxd in its shutdown long enough to signal it there, fake-bluez is stopped
 * (SIGSTOP) first: proxd's shutdown then waits for BlueZ's answers to
 * UnregisterAdvertisement and StopDiscovery (bounded by a timeout of its own). Every step
 * waits for proof in proxd's log that the previous one happened. */
#define G_LOG_DOMAIN "proxd-test"

#include <signal.h>
#include <string.h>

#include "harness.h"
#include "prox-store.h"
#include "prox-types.h"

#define TIMEOUT_MS 20000

/* A beacon that would commit only once an hour: what it hears stays pending in memory. */
static const char beacon_config[] = "[Scanning]\n"
                                    "BeaconScanInstanceSeconds=3600\n"
                                    "CommitSeconds=3600\n";

typedef struct {
    gboolean exited;
} ExitWait;

static void on_proxd_exit(GObject *source, GAsyncResult *result, gpointer user_data)
{
    g_subprocess_wait_finish(G_SUBPROCESS(source), result, NULL);
    ((ExitWait *)user_data)->exited = TRUE;
}

static gboolean exit_done(gpointer p)
{
    return ((ExitWait *)p)->exited;
}

static gboolean is_advertising(gpointer p)
{
    HarnessDaemon *d = p;
    g_autoptr(GVariant) ad = harness_fake_advertisement(d);
    return ad != NULL && proxd_dbus_manager1_get_advertising(d->proxy);
}

typedef struct {
    Harness *h;
    HarnessDaemon *alice;
    HarnessDaemon *beacon;
    char *alice_rpi;
} World;

/* alice advertises; the beacon has heard her and holds the sightings in memory. */
static void world_start(World *w)
{
    harness_start_fake(w->h);
    w->alice = harness_start_proxd(w->h, "alice", 0, "person", NULL);
    w->beacon = harness_start_proxd(w->h, "bus", 1, "beacon", beacon_config);
    g_assert_true(harness_wait(is_advertising, w->alice, TIMEOUT_MS));
    g_assert_true(harness_wait(is_advertising, w->beacon, TIMEOUT_MS));
    g_assert_true(
        harness_wait_property(w->beacon, "Scanning", g_variant_new_boolean(TRUE), TIMEOUT_MS));
    g_autoptr(GVariant) ad = harness_fake_advertisement(w->alice);
    w->alice_rpi = harness_advert_rpi_hex(ad);
    g_assert_nonnull(w->alice_rpi);

    g_assert_cmpuint(harness_wait_reports(w->h, 1, 0, 5), >=, 1);
    /* The reports reached the beacon before this call (the bus keeps the order of what
     * causes what), and it handles calls after the signals that came before them: so they
     * are in its batch now, and not yet in its store. */
    g_autoptr(GVariant) sightings = harness_sightings(w->beacon);
    g_assert_cmpuint(g_variant_n_children(sightings), ==, 0);
}

static void world_clear(World *w)
{
    g_free(w->alice_rpi);
}

/* Stops fake-bluez in its tracks: calls to BlueZ go unanswered until it continues. */
static void freeze_bluez(Harness *h, gboolean frozen)
{
    g_subprocess_send_signal(h->fake, frozen ? SIGSTOP : SIGCONT);
}

static void signal_and_wait_log(HarnessDaemon *d, int signum, const char *needle)
{
    g_subprocess_send_signal(d->process, signum);
    if (!harness_wait_file_contains(d->log_path, needle, TIMEOUT_MS)) {
        g_autofree char *log = NULL;
        g_file_get_contents(d->log_path, &log, NULL, NULL);
        g_error("no \"%s\" in %s's log after signal %d:\n%s", g_strchomp(g_strdup(needle)), d->name,
                signum, log);
    }
}

static GSubprocess *wait_exit(HarnessDaemon *d)
{
    ExitWait ew = {FALSE};
    g_subprocess_wait_async(d->process, NULL, on_proxd_exit, &ew);
    g_assert_true(harness_wait(exit_done, &ew, TIMEOUT_MS));
    /* Ours now: the harness must not signal or wait for it again. */
    return g_steal_pointer(&d->process);
}

static gboolean store_has_rpi(HarnessDaemon *d, const char *rpi_hex)
{
    g_autofree char *path = g_build_filename(d->state_dir, "proxd.db", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(ProxStore) store = prox_store_open(path, NULL, &error);
    g_assert_no_error(error);
    g_autoptr(GArray) sightings = NULL;
    g_assert_true(prox_store_load_sightings(store, 0, G_MAXINT64, &sightings, &error));
    g_assert_no_error(error);
    for (guint i = 0; i < sightings->len; i++) {
        const ProxSighting *s = &g_array_index(sightings, ProxSighting, i);
        g_autofree char *hex = harness_hex(s->rpi.bytes, PROX_RPI_LEN);
        if (g_str_equal(hex, rpi_hex))
            return TRUE;
    }
    return FALSE;
}

static void test_second_sigterm(void)
{
    g_autoptr(Harness) h = harness_new("two-devices.json", 10);
    World w = {.h = h};
    world_start(&w);

    freeze_bluez(h, TRUE);
    signal_and_wait_log(w.beacon, SIGTERM, ": stopping\n");
    /* proxd is in its shutdown now, waiting for the frozen BlueZ. */
    signal_and_wait_log(w.beacon, SIGTERM, "already stopping");
    g_subprocess_send_signal(w.beacon->process, SIGHUP);
    freeze_bluez(h, FALSE);

    g_autoptr(GSubprocess) p = wait_exit(w.beacon);
    g_autofree char *log = NULL;
    g_file_get_contents(w.beacon->log_path, &log, NULL, NULL);
    if (!g_subprocess_get_if_exited(p))
        g_printerr("%s\n", log);
    g_assert_true(g_subprocess_get_if_exited(p));
    g_assert_cmpint(g_subprocess_get_exit_status(p), ==, 0);
    g_assert_nonnull(strstr(log, ": stopped\n"));
    g_assert_null(strstr(log, "forced exit"));
    /* What was pending reached the store. */
    g_assert_true(store_has_rpi(w.beacon, w.alice_rpi));
    world_clear(&w);
}

static void test_third_sigterm_forces(void)
{
    g_autoptr(Harness) h = harness_new("two-devices.json", 10);
    World w = {.h = h};
    world_start(&w);

    freeze_bluez(h, TRUE);
    signal_and_wait_log(w.beacon, SIGTERM, ": stopping\n");
    signal_and_wait_log(w.beacon, SIGTERM, "already stopping");
    signal_and_wait_log(w.beacon, SIGTERM, "forced exit");
    g_autoptr(GSubprocess) p = wait_exit(w.beacon);
    freeze_bluez(h, FALSE);
    /* Ended by the signal's default action, before the frozen BlueZ answered. */
    g_assert_true(g_subprocess_get_if_signaled(p));
    g_assert_cmpint(g_subprocess_get_term_sig(p), ==, SIGTERM);
    world_clear(&w);
}

/* ---- legacy controllers (tests/scenarios/legacy-le.json) ----
 *
 * Such a controller refuses a new random address while it scans: bluetoothd fails
 * RegisterAdvertisement ("Failed to register advertisement") and an in-place refresh keeps
 * the old address. proxd holds its own discovery off while it registers, and rotates by
 * unregistering and registering again. */

typedef struct {
    HarnessDaemon *d;
    char *old_rpi;
    gint64 since; /* monotonic us */
} RotationWait;

static void on_fake_signal(GDBusConnection *c, const char *sender, const char *path,
                           const char *iface, const char *signal, GVariant *params, gpointer p)
{
    /* Waking the wait is enough: the condition asks the fake. */
}

/* A new RPI of d's is on the air, and d scans again after it (the hold ended). */
static gboolean rotated_and_scanning(gpointer p)
{
    RotationWait *w = p;
    return harness_new_rpi_on_air(w->d, w->old_rpi) && w->d->scanning_at > w->since &&
           proxd_dbus_manager1_get_scanning(w->d->proxy);
}

static void test_legacy_rotation(void)
{
    /* 200x: a rotation every 600-1200 simulated seconds is 3-6 s of real time. Beacons scan
     * all the time, so every registration needs the scanner held. */
    static const char beacon[] = "[Scanning]\nCommitSeconds=10\n";
    g_autoptr(Harness) h = harness_new("legacy-le.json", 200);
    harness_start_fake(h);
    guint sub = g_dbus_connection_signal_subscribe(
        h->connection, "org.proxd.FakeBluez", "org.proxd.FakeBluez1", NULL, NULL, NULL,
        G_DBUS_SIGNAL_FLAGS_NONE, on_fake_signal, NULL, NULL);
    g_autoptr(GVariant) devices = harness_fake_device(h, 1);
    const char *controller = NULL;
    g_assert_true(g_variant_lookup(devices, "Controller", "&s", &controller));
    g_assert_cmpstr(controller, ==, "le-legacy");

    HarnessDaemon *alice = harness_start_proxd(h, "alice", 0, "beacon", beacon);
    HarnessDaemon *bob = harness_start_proxd(h, "bob", 1, "beacon", beacon);
    g_assert_true(harness_wait(is_advertising, alice, TIMEOUT_MS));
    g_assert_true(harness_wait(is_advertising, bob, TIMEOUT_MS));

    for (int round = 0; round < 2; round++) {
        g_autoptr(GVariant) before = harness_fake_advertisement(bob);
        g_autofree char *address_before = NULL;
        g_assert_true(g_variant_lookup(before, "Address", "s", &address_before));
        RotationWait w = {bob, harness_advert_rpi_hex(before), g_get_monotonic_time()};
        g_assert_true(harness_wait(rotated_and_scanning, &w, TIMEOUT_MS));
        g_autoptr(GVariant) after = harness_fake_advertisement(bob);
        const char *address_after = NULL;
        guint32 kept = 1;
        g_variant_lookup(after, "Address", "&s", &address_after);
        g_variant_lookup(after, "KeptAddress", "u", &kept);
        /* A new registration, from a new address: no refresh ever kept an old one. */
        g_assert_cmpstr(address_after, !=, address_before);
        g_assert_cmpuint(kept, ==, 0);
        g_test_message("legacy rotation %d: %s -> %s, rotated and scanning again %.3f s into "
                       "the wait",
                       round, address_before, address_after,
                       (double)(bob->scanning_at - w.since) / G_USEC_PER_SEC);
        g_free(w.old_rpi);
    }
    /* And alice heard bob's identifiers while both kept scanning. */
    g_autoptr(GVariant) heard =
        harness_fake_call(h, "WaitReports", g_variant_new("(uuu)", 0, 1, 3));
    guint32 visible = 0;
    g_variant_get(heard, "(u)", &visible);
    g_assert_cmpuint(visible, >=, 1);

    /* No registration was ever refused for scanning. */
    g_autofree char *fake_log = g_strdup_printf("%s/fake-bluez-1.log", h->dir);
    g_autofree char *text = NULL;
    g_assert_true(g_file_get_contents(fake_log, &text, NULL, NULL));
    g_assert_null(strstr(text, "refused"));
    for (guint i = 0; i < h->daemons->len; i++) {
        HarnessDaemon *d = g_ptr_array_index(h->daemons, i);
        g_autofree char *log = NULL;
        g_assert_true(g_file_get_contents(d->log_path, &log, NULL, NULL));
        g_assert_null(strstr(log, "RegisterAdvertisement on"));
    }
    g_dbus_connection_signal_unsubscribe(h->connection, sub);
}

typedef struct {
    HarnessDaemon *d;
    guint64 rotation_ends;
} RotationEndsWait;

static gboolean rotation_ends_changed(gpointer p)
{
    RotationEndsWait *w = p;
    return proxd_dbus_manager1_get_current_rotation_ends(w->d->proxy) != w->rotation_ends;
}

/* bluetoothd puts a registration on the air before it answers RegisterAdvertisement. A
 * rotation in that gap must not reach bluetoothd as new data for the registration (an
 * in-place refresh, which a legacy controller sends from the old address first: both RPIs
 * on one address, seen in tests/vm on btvirt -L), but as a new registration once the first
 * one is answered. */
static void test_legacy_rotation_while_registering(void)
{
    g_autoptr(Harness) h = harness_new("legacy-le.json", 200);
    harness_start_fake(h);
    guint sub = g_dbus_connection_signal_subscribe(
        h->connection, "org.proxd.FakeBluez", "org.proxd.FakeBluez1", NULL, NULL, NULL,
        G_DBUS_SIGNAL_FLAGS_NONE, on_fake_signal, NULL, NULL);
    /* Longer than the longest rotation interval (1200 simulated s = 6 s at 200x): the first
     * rotation comes while proxd waits for the answer. */
    g_autoptr(GVariant) r1 =
        harness_fake_call(h, "SetRegisterReplyDelay", g_variant_new("(u)", 9000));

    HarnessDaemon *alice = harness_start_proxd(h, "alice", 0, "person", NULL);
    g_assert_true(harness_wait_new_rpi_on_air(alice, NULL, TIMEOUT_MS));
    g_autoptr(GVariant) first = harness_fake_advertisement(alice);
    g_autofree char *first_rpi = harness_advert_rpi_hex(first);
    g_autofree char *first_address = NULL;
    g_assert_true(g_variant_lookup(first, "Address", "s", &first_address));
    RotationEndsWait rw = {alice, proxd_dbus_manager1_get_current_rotation_ends(alice->proxy)};
    g_assert_true(harness_wait(rotation_ends_changed, &rw, TIMEOUT_MS));
    /* Rotated while the registration is still unanswered. */
    g_assert_false(proxd_dbus_manager1_get_advertising(alice->proxy));
    g_autoptr(GVariant) r2 = harness_fake_call(h, "SetRegisterReplyDelay", g_variant_new("(u)", 0));

    /* The new RPI goes on the air in a registration of its own, from a new address. */
    RotationWait w = {alice, first_rpi, 0};
    g_assert_true(harness_wait(rotated_and_scanning, &w, TIMEOUT_MS));
    g_autoptr(GVariant) after = harness_fake_advertisement(alice);
    const char *address_after = NULL;
    guint32 refreshes = 1, kept = 1;
    g_assert_true(g_variant_lookup(after, "Address", "&s", &address_after));
    g_assert_true(g_variant_lookup(after, "Refreshes", "u", &refreshes));
    g_assert_true(g_variant_lookup(after, "KeptAddress", "u", &kept));
    g_assert_cmpstr(address_after, !=, first_address);
    g_assert_cmpuint(refreshes, ==, 0);
    g_assert_cmpuint(kept, ==, 0);
    /* No registration of alice's was ever refreshed in place. */
    g_autofree char *fake_log = g_strdup_printf("%s/fake-bluez-1.log", h->dir);
    g_autofree char *text = NULL;
    g_assert_true(g_file_get_contents(fake_log, &text, NULL, NULL));
    g_assert_null(strstr(text, "refreshed in place"));
    g_dbus_connection_signal_unsubscribe(h->connection, sub);
}

/* Another program scans on the legacy adapter (a settings panel, say): proxd cannot register
 * until it stops, says why, and registers once it has. */
static void test_legacy_other_scanner(void)
{
    g_autoptr(Harness) h = harness_new("legacy-le.json", 10);
    harness_start_fake(h);
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) started = g_dbus_connection_call_sync(
        h->connection, "org.bluez", "/org/bluez/hci0", "org.bluez.Adapter1", "StartDiscovery", NULL,
        NULL, G_DBUS_CALL_FLAGS_NONE, TIMEOUT_MS, NULL, &error);
    g_assert_no_error(error);

    HarnessDaemon *alice = harness_start_proxd(h, "alice", 0, "person", NULL);
    g_assert_true(harness_wait_file_contains(alice->log_path, "Failed to register advertisement",
                                             TIMEOUT_MS));
    g_assert_false(proxd_dbus_manager1_get_advertising(alice->proxy));

    gint64 stopped_at = g_get_monotonic_time();
    g_autoptr(GVariant) stopped = g_dbus_connection_call_sync(
        h->connection, "org.bluez", "/org/bluez/hci0", "org.bluez.Adapter1", "StopDiscovery", NULL,
        NULL, G_DBUS_CALL_FLAGS_NONE, TIMEOUT_MS, NULL, &error);
    g_assert_no_error(error);
    g_assert_true(harness_wait(is_advertising, alice, TIMEOUT_MS));
    g_test_message("advertising %.3f s after the other scanner stopped",
                   (double)(alice->advertising_at - stopped_at) / G_USEC_PER_SEC);
    /* Its fast retries (every second, for the first 15) bring it back soon. */
    g_assert_cmpint(alice->advertising_at - stopped_at, <=, 5 * G_USEC_PER_SEC);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/signals/second-sigterm-keeps-shutdown-clean", test_second_sigterm);
    g_test_add_func("/signals/third-sigterm-forces-exit", test_third_sigterm_forces);
    g_test_add_func("/legacy-controller/rotation-holds-scanning", test_legacy_rotation);
    g_test_add_func("/legacy-controller/other-scanner", test_legacy_other_scanner);
    g_test_add_func("/legacy-controller/rotation-while-registering",
                    test_legacy_rotation_while_registering);
    return g_test_run();
}
