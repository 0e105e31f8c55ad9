/* test-recovery.c - proxd recovers from everything BlueZ and the user do to the adapter:
 * bluetoothd restarting, the adapter being unplugged and plugged in again, powered off and
 * on, blocked by rfkill; it pauses advertising while the adapter is discoverable; SIGTERM
 * keeps the sightings of an unfinished scan. */
#define G_LOG_DOMAIN "proxd-test"

#include <signal.h>
#include <string.h>

#include "harness.h"
#include "prox-store.h"
#include "prox-types.h"

#define TIMEOUT_MS 20000
/* Everything must be back within 2 s of the adapter being usable again. */
#define RECOVERY_US (2 * G_USEC_PER_SEC)

/* Person scans of 10 s every 100-120 s (simulated): at 10x a scan is 1 s of real time, so
 * only the scan started by the recovery itself falls into the 2 s window. */
static const char person_config[] = "[Scanning]\n"
                                    "ScanSeconds=10\n"
                                    "IntervalMinSeconds=100\n"
                                    "IntervalMaxSeconds=120\n";

static gboolean is_advertising(gpointer p)
{
    HarnessDaemon *d = p;
    g_autoptr(GVariant) ad = harness_fake_advertisement(d);
    gboolean active = FALSE;
    if (ad != NULL)
        g_variant_lookup(ad, "Active", "b", &active);
    return proxd_dbus_manager1_get_advertising(d->proxy) && active;
}

typedef struct {
    HarnessDaemon *d;
    gint64 since; /* monotonic us */
} Recovery;

/* Advertising (registered and on air in the world) and a discovery session started, both
 * after `since`. */
static gboolean recovered(gpointer p)
{
    Recovery *r = p;
    return r->d->advertising_at >= r->since && r->d->scanning_at >= r->since &&
           is_advertising(r->d);
}

static void assert_recovers(HarnessDaemon *d, gint64 since, const char *what)
{
    Recovery r = {d, since};
    g_assert_true(harness_wait(recovered, &r, TIMEOUT_MS));
    gint64 done = MAX(d->advertising_at, d->scanning_at);
    g_test_message("%s: advertising after %.3f s, scanning after %.3f s", what,
                   (double)(d->advertising_at - since) / G_USEC_PER_SEC,
                   (double)(d->scanning_at - since) / G_USEC_PER_SEC);
    g_assert_cmpint(done - since, <=, RECOVERY_US);
    g_assert_cmpstr(proxd_dbus_manager1_get_state(d->proxy), ==, "active");
}

static void assert_idle(HarnessDaemon *d, const char *state)
{
    g_assert_true(harness_wait_property(d, "State", g_variant_new_string(state), TIMEOUT_MS));
    g_assert_true(
        harness_wait_property(d, "Advertising", g_variant_new_boolean(FALSE), TIMEOUT_MS));
    g_assert_true(harness_wait_property(d, "Scanning", g_variant_new_boolean(FALSE), TIMEOUT_MS));
    g_test_message("%s: %s", state, proxd_dbus_manager1_get_state_reason(d->proxy));
}

static HarnessDaemon *start_alice(Harness *h)
{
    harness_start_fake(h);
    HarnessDaemon *alice = harness_start_proxd(h, "alice", 0, "person", person_config);
    g_assert_true(harness_wait(is_advertising, alice, TIMEOUT_MS));
    return alice;
}

static void test_bluetoothd_restart(void)
{
    g_autoptr(Harness) h = harness_new("two-devices.json", 10);
    HarnessDaemon *alice = start_alice(h);

    for (int round = 0; round < 2; round++) {
        harness_stop_fake(h);
        assert_idle(alice, "bluez-unavailable");
        g_assert_true(strstr(proxd_dbus_manager1_get_state_reason(alice->proxy), "bluetoothd") !=
                      NULL);

        /* The fake's adapters reappear with the advertising manager 100 ms later, as
         * bluetoothd's do; measured from before the process starts. */
        gint64 since = g_get_monotonic_time();
        harness_start_fake(h);
        assert_recovers(alice, since, "bluetoothd restart");
    }
}

static void test_unplug_replug(void)
{
    g_autoptr(Harness) h = harness_new("two-devices.json", 10);
    HarnessDaemon *alice = start_alice(h);

    g_autoptr(GVariant) r1 = harness_fake_call(h, "RemoveAdapter", g_variant_new("(u)", 0));
    assert_idle(alice, "no-adapter");
    g_assert_true(strstr(proxd_dbus_manager1_get_state_reason(alice->proxy), "hci0") != NULL);
    g_assert_cmpstr(proxd_dbus_manager1_get_adapter(alice->proxy), ==, "");

    gint64 since = g_get_monotonic_time();
    g_autoptr(GVariant) r2 = harness_fake_call(h, "AddAdapter", g_variant_new("(u)", 0));
    assert_recovers(alice, since, "replug");
    g_assert_cmpstr(proxd_dbus_manager1_get_adapter(alice->proxy), ==, "hci0");
}

static void test_power_and_rfkill(void)
{
    g_autoptr(Harness) h = harness_new("two-devices.json", 10);
    HarnessDaemon *alice = start_alice(h);

    g_autoptr(GVariant) r1 = harness_fake_call(h, "SetPowered", g_variant_new("(ub)", 0, FALSE));
    assert_idle(alice, "powered-off");
    gint64 since = g_get_monotonic_time();
    g_autoptr(GVariant) r2 = harness_fake_call(h, "SetPowered", g_variant_new("(ub)", 0, TRUE));
    assert_recovers(alice, since, "power on");

    /* rfkill powers the adapter off. Stock bluetoothd 5.66 has no PowerState (it is
     * experimental), so without sysfs the adapter just reads as powered off. */
    g_autoptr(GVariant) r3 = harness_fake_call(h, "SetBlocked", g_variant_new("(ub)", 0, TRUE));
    g_assert_true(
        harness_wait_property(alice, "Advertising", g_variant_new_boolean(FALSE), TIMEOUT_MS));
    g_assert_true(
        harness_wait_property(alice, "Scanning", g_variant_new_boolean(FALSE), TIMEOUT_MS));
    const char *state = proxd_dbus_manager1_get_state(alice->proxy);
    g_assert_true(g_str_equal(state, "blocked") || g_str_equal(state, "powered-off"));
    g_autoptr(GVariant) r4 = harness_fake_call(h, "SetBlocked", g_variant_new("(ub)", 0, FALSE));
    since = g_get_monotonic_time();
    g_autoptr(GVariant) r5 = harness_fake_call(h, "SetPowered", g_variant_new("(ub)", 0, TRUE));
    assert_recovers(alice, since, "unblock + power on");
}

static void set_discoverable(Harness *h, gboolean discoverable)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reply = g_dbus_connection_call_sync(
        h->connection, "org.bluez", "/org/bluez/hci0", "org.freedesktop.DBus.Properties", "Set",
        g_variant_new("(ssv)", "org.bluez.Adapter1", "Discoverable",
                      g_variant_new_boolean(discoverable)),
        NULL, G_DBUS_CALL_FLAGS_NONE, 10000, NULL, &error);
    g_assert_no_error(error);
}

static gboolean not_on_air(gpointer p)
{
    HarnessDaemon *d = p;
    g_autoptr(GVariant) ad = harness_fake_advertisement(d);
    return ad == NULL && !proxd_dbus_manager1_get_advertising(d->proxy);
}

typedef struct {
    HarnessDaemon *d;
    gint64 bound;
} RotationBound;

static gboolean rotates_by(gpointer p)
{
    RotationBound *rb = p;
    guint64 ends = proxd_dbus_manager1_get_current_rotation_ends(rb->d->proxy);
    return ends != 0 && ends <= (guint64)rb->bound;
}

static void test_discoverable_pauses_advertising(void)
{
    g_autoptr(Harness) h = harness_new("two-devices.json", 10);
    HarnessDaemon *alice = start_alice(h);

    set_discoverable(h, TRUE);
    g_assert_true(harness_wait(not_on_air, alice, TIMEOUT_MS));
    const char *reason = proxd_dbus_manager1_get_state_reason(alice->proxy);
    g_test_message("discoverable: %s", reason);
    g_assert_true(strstr(reason, "discoverable") != NULL);
    /* Scanning carries on; only the advertisement would leak the public address. */
    g_assert_cmpstr(proxd_dbus_manager1_get_state(alice->proxy), ==, "active");
    /* The kernel may have sent the current RPI from the public address before the pause:
     * it is replaced at the next interval boundary, not 10-20 minutes later. */
    RotationBound rb = {alice,
                        prox_interval_start(prox_interval_number((gint64)harness_sim_now(h)) + 1)};
    g_assert_true(harness_wait(rotates_by, &rb, TIMEOUT_MS));

    gint64 since = g_get_monotonic_time();
    set_discoverable(h, FALSE);
    g_assert_true(harness_wait(is_advertising, alice, TIMEOUT_MS));
    g_assert_cmpint(alice->advertising_at - since, <=, RECOVERY_US);
    g_autoptr(GVariant) ad = harness_fake_advertisement(alice);
    gboolean from_public = TRUE;
    g_assert_true(g_variant_lookup(ad, "FromPublicAddress", "b", &from_public));
    g_assert_false(from_public);
}

static void test_sigterm_keeps_pending_sightings(void)
{
    /* A beacon that would commit only once an hour: everything it heard is pending in
     * memory when SIGTERM arrives. */
    static const char beacon_config[] = "[Scanning]\n"
                                        "BeaconScanInstanceSeconds=3600\n"
                                        "CommitSeconds=3600\n";
    g_autoptr(Harness) h = harness_new("two-devices.json", 10);
    HarnessDaemon *alice = start_alice(h);
    HarnessDaemon *bus = harness_start_proxd(h, "bus", 1, "beacon", beacon_config);
    g_assert_true(harness_wait_property(bus, "Scanning", g_variant_new_boolean(TRUE), TIMEOUT_MS));

    /* Wait until the world delivered some of alice's reports to the beacon's adapter. */
    g_assert_cmpuint(harness_wait_reports(h, 1, 0, 5), >=, 1);
    g_autoptr(GVariant) ad = harness_fake_advertisement(alice);
    g_autofree char *alice_rpi = harness_advert_rpi_hex(ad);
    g_assert_cmpuint(proxd_dbus_manager1_get_encounters_today(bus->proxy), ==, 0);

    harness_stop_proxd(bus);

    g_autofree char *path = g_build_filename(bus->state_dir, "proxd.db", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(ProxStore) store = prox_store_open(path, NULL, &error);
    g_assert_no_error(error);
    g_autoptr(GArray) sightings = NULL;
    g_autoptr(GArray) scans = NULL;
    g_assert_true(prox_store_load_sightings(store, 0, G_MAXINT64, &sightings, &error));
    g_assert_true(prox_store_load_scan_instances(store, 0, G_MAXINT64, &scans, &error));
    g_assert_no_error(error);
    gboolean found = FALSE;
    for (guint i = 0; i < sightings->len; i++) {
        const ProxSighting *s = &g_array_index(sightings, ProxSighting, i);
        g_autofree char *hex = harness_hex(s->rpi.bytes, PROX_RPI_LEN);
        found = found || g_str_equal(hex, alice_rpi);
    }
    g_assert_true(found);
    /* The scan instance was closed at shutdown, not left open. */
    g_assert_cmpuint(scans->len, ==, 1);
    const ProxScanInstance *si = &g_array_index(scans, ProxScanInstance, 0);
    g_assert_cmpint(si->end, >, si->start);
}

typedef struct {
    HarnessDaemon *d;
    gboolean want;
    gint64 since; /* monotonic us; with want TRUE: Scanning became true after it */
} ScanWait;

static gboolean scanning_is(gpointer p)
{
    ScanWait *w = p;
    gboolean scanning = proxd_dbus_manager1_get_scanning(w->d->proxy);
    return w->want ? scanning && w->d->scanning_at > w->since : !scanning;
}

/* Waits for Scanning to turn on after now, then off; returns the simulated seconds between
 * and sets *started (may be NULL) to the simulated time it turned on. */
static double next_scan_duration(Harness *h, HarnessDaemon *d, guint timeout_ms, double *start)
{
    ScanWait on = {d, TRUE, g_get_monotonic_time()};
    g_assert_true(harness_wait(scanning_is, &on, timeout_ms));
    double started = harness_sim_now(h);
    if (start != NULL)
        *start = started;
    ScanWait off = {d, FALSE, 0};
    g_assert_true(harness_wait(scanning_is, &off, timeout_ms));
    return harness_sim_now(h) - started;
}

/* A bluetoothd too busy to answer StartDiscovery until after the scan window should have
 * ended (fake-bluez stopped with SIGSTOP): the scan still lasts ScanSeconds once discovery
 * runs, instead of being cut to nothing. Windows every 40 s exactly, so the third one's
 * opening is known from the second's. */
static void test_slow_start_keeps_full_scan(void)
{
    static const char config[] = "[Scanning]\n"
                                 "ScanSeconds=10\n"
                                 "IntervalMinSeconds=40\n"
                                 "IntervalMaxSeconds=40\n";
    g_autoptr(Harness) h = harness_new("two-devices.json", 5);
    harness_start_fake(h);
    HarnessDaemon *alice = harness_start_proxd(h, "alice", 0, "person", config);

    next_scan_duration(h, alice, TIMEOUT_MS,
                       NULL); /* the first: opened before the adapter was known */
    ScanWait second = {alice, TRUE, g_get_monotonic_time()};
    g_assert_true(harness_wait(scanning_is, &second, TIMEOUT_MS));
    double open2 = harness_sim_now(h);
    ScanWait idle = {alice, FALSE, 0};
    g_assert_true(harness_wait(scanning_is, &idle, TIMEOUT_MS));

    /* bluetoothd hangs from before the third window (open2 + 40) until 15 s into it: past
     * the 10 s the scan should last, within the 10 s grace proxd gives a slow start. */
    harness_wait_sim_time(h, open2 + 30);
    g_subprocess_send_signal(h->fake, SIGSTOP);
    harness_wait_sim_time(h, open2 + 40 + 15);
    g_subprocess_send_signal(h->fake, SIGCONT);

    double started = 0;
    double duration = next_scan_duration(h, alice, TIMEOUT_MS, &started);
    g_test_message("scan after the hang: from %.1f s into the window, %.1f simulated s",
                   started - (open2 + 40), duration);
    /* The third window's scan, once bluetoothd answered (not the fourth's, at open2 + 80). */
    g_assert_cmpfloat(started, <, open2 + 40 + 25);
    g_assert_cmpfloat(duration, >=, 10 - 1);
    harness_stop_proxd(alice);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/recovery/bluetoothd-restart", test_bluetoothd_restart);
    g_test_add_func("/recovery/unplug-replug", test_unplug_replug);
    g_test_add_func("/recovery/power-and-rfkill", test_power_and_rfkill);
    g_test_add_func("/recovery/discoverable-pauses-advertising",
                    test_discoverable_pauses_advertising);
    g_test_add_func("/recovery/slow-start-keeps-full-scan", test_slow_start_keeps_full_scan);
    g_test_add_func("/recovery/sigterm-keeps-pending-sightings",
                    test_sigterm_keeps_pending_sightings);
    return g_test_run();
}
