/* test-radio.c - proxd daemons in the fake radio world: they hear each other, rotate their
 * identifiers and addresses together, and record what the world's ground truth says they
 * heard. */
#define G_LOG_DOMAIN "proxd-test"

#include <json-glib/json-glib.h>
#include <math.h>

#include "harness.h"
#include "prox-keys.h"
#include "prox-payload.h"
#include "prox-store.h"

#define TIMEOUT_MS 20000
#define TX_POWER 4

/* Person scans of 20 s every 40-60 s (simulated), commits every 10 s. */
static const char person_config[] = "[Advertising]\n"
                                    "TxPower=4\n"
                                    "[Scanning]\n"
                                    "ScanSeconds=20\n"
                                    "IntervalMinSeconds=40\n"
                                    "IntervalMaxSeconds=60\n"
                                    "CommitSeconds=10\n";

static const char beacon_config[] = "[Advertising]\n"
                                    "TxPower=4\n"
                                    "[Scanning]\n"
                                    "BeaconScanInstanceSeconds=30\n"
                                    "CommitSeconds=10\n";

/* ---- helpers ---- */

static ProxStore *open_store(HarnessDaemon *d)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *path = g_build_filename(d->state_dir, "proxd.db", NULL);
    ProxStore *store = prox_store_open(path, NULL, &error);
    g_assert_no_error(error);
    return store;
}

typedef struct {
    HarnessDaemon *d;
} Active;

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
    HarnessDaemon *listener;
    HarnessDaemon *speaker;
    gint16 rssi_min, rssi_max, rssi_mean;
    guint32 reports;
} HeardWait;

/* TRUE when the listener's store holds the speaker's current RPI. */
static gboolean heard_current(gpointer p)
{
    HeardWait *w = p;
    if (proxd_dbus_manager1_get_encounters_today(w->listener->proxy) == 0)
        return FALSE;
    g_autoptr(GVariant) ad = harness_fake_advertisement(w->speaker);
    if (ad == NULL)
        return FALSE;
    g_autofree char *rpi = harness_advert_rpi_hex(ad);
    g_autoptr(GVariant) sightings = harness_sightings(w->listener);
    GVariantIter iter;
    GVariant *rpi_v, *aem_v;
    guint64 first, last;
    guint32 reports;
    gint16 rmin, rmax, rmean;
    g_variant_iter_init(&iter, sightings);
    while (g_variant_iter_loop(&iter, "(@ay@ayttunnn)", &rpi_v, &aem_v, &first, &last, &reports,
                               &rmin, &rmax, &rmean)) {
        gsize len;
        const guint8 *bytes = g_variant_get_fixed_array(rpi_v, &len, 1);
        g_autofree char *hex = harness_hex(bytes, len);
        if (g_strcmp0(hex, rpi) == 0) {
            w->rssi_min = rmin;
            w->rssi_max = rmax;
            w->rssi_mean = rmean;
            w->reports = reports;
            return TRUE;
        }
    }
    return FALSE;
}

/* The model's mean RSSI for the two-devices scenario: -59 dBm at 1 m, exponent 2.0,
 * 1.5 m apart, noise sigma 2 dB. */
static void assert_plausible_rssi(const HeardWait *w)
{
    double expected = -59.0 - 20.0 * log10(1.5);
    g_assert_cmpuint(w->reports, >=, 1);
    g_assert_cmpint(w->rssi_mean, !=, PROX_RSSI_UNKNOWN);
    g_assert_cmpfloat(fabs(w->rssi_mean - expected), <=, 8.0);
    g_assert_cmpint(w->rssi_min, <=, w->rssi_mean);
    g_assert_cmpint(w->rssi_max, >=, w->rssi_mean);
    g_assert_cmpfloat(fabs(w->rssi_min - expected), <=, 14.0);
    g_assert_cmpfloat(fabs(w->rssi_max - expected), <=, 14.0);
}

/* Finds the own TEK of `speaker` that produced `rpi` and decrypts the AEM: the metadata
 * must carry the configured TX power. */
static void assert_rpi_from_tek(ProxStore *speaker_store, const ProxSighting *s)
{
    g_autoptr(GArray) teks = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_store_load_teks(speaker_store, 0, &teks, &error));
    g_assert_no_error(error);
    for (guint i = 0; i < teks->len; i++) {
        const ProxTek *tek = &g_array_index(teks, ProxTek, i);
        uint8_t rpik[PROX_KEY_LEN], aemk[PROX_KEY_LEN];
        ProxRpi rpis[PROX_TEK_ROLLING_PERIOD];
        prox_rpik_derive(tek->key, rpik);
        prox_rpi_compute_range(rpik, tek->rolling_start, tek->rolling_period, rpis);
        for (guint j = 0; j < tek->rolling_period; j++) {
            if (memcmp(rpis[j].bytes, s->rpi.bytes, PROX_RPI_LEN) != 0)
                continue;
            uint8_t metadata[PROX_METADATA_LEN];
            int8_t tx_power;
            prox_aemk_derive(tek->key, aemk);
            prox_aem_crypt(aemk, &s->rpi, s->aem.bytes, metadata);
            g_assert_true(prox_metadata_decode(metadata, &tx_power));
            g_assert_cmpint(tx_power, ==, TX_POWER);
            /* Heard while that interval's identifier was on the air (rotation keeps an RPI
             * up to 20 minutes, i.e. into the next two intervals). */
            gint64 interval_start = prox_interval_start(tek->rolling_start + j);
            g_assert_cmpint(s->first_seen, >=, interval_start);
            g_assert_cmpint(s->first_seen, <, interval_start + 3 * PROX_INTERVAL_SECONDS);
            return;
        }
    }
    g_error("RPI heard is not derived from any of the speaker's TEKs");
}

/* ---- tests ---- */

static void test_two_devices(void)
{
    g_autoptr(Harness) h = harness_new("two-devices.json", 20);
    harness_start_fake(h);
    HarnessDaemon *alice = harness_start_proxd(h, "alice", 0, "person", person_config);
    HarnessDaemon *bob = harness_start_proxd(h, "bob", 1, "person", person_config);

    g_assert_true(harness_wait(is_advertising, alice, TIMEOUT_MS));
    g_assert_true(harness_wait(is_advertising, bob, TIMEOUT_MS));
    g_assert_cmpstr(proxd_dbus_manager1_get_state(alice->proxy), ==, "active");
    g_assert_cmpstr(proxd_dbus_manager1_get_adapter(alice->proxy), ==, "hci0");
    g_assert_cmpstr(proxd_dbus_manager1_get_role(bob->proxy), ==, "person");

    /* The advertisement as the radio world sees it: broadcast from a random address. */
    g_autoptr(GVariant) ad = harness_fake_advertisement(alice);
    const char *address_type = NULL;
    gboolean from_public = TRUE;
    g_assert_true(g_variant_lookup(ad, "AddressType", "&s", &address_type));
    g_assert_cmpstr(address_type, ==, "random");
    g_assert_true(g_variant_lookup(ad, "FromPublicAddress", "b", &from_public));
    g_assert_false(from_public);

    HeardWait bob_hears = {.listener = bob, .speaker = alice};
    HeardWait alice_hears = {.listener = alice, .speaker = bob};
    g_assert_true(harness_wait(heard_current, &bob_hears, TIMEOUT_MS));
    g_assert_true(harness_wait(heard_current, &alice_hears, TIMEOUT_MS));
    assert_plausible_rssi(&bob_hears);
    assert_plausible_rssi(&alice_hears);
    g_assert_cmpuint(proxd_dbus_manager1_get_encounters14_days(bob->proxy), >=, 1);

    /* Offline check of the stores: the RPI bob heard comes from alice's own TEK, and its
     * AEM decrypts to alice's configured TX power. */
    harness_stop_proxd(alice);
    harness_stop_proxd(bob);
    g_autoptr(ProxStore) alice_store = open_store(alice);
    g_autoptr(ProxStore) bob_store = open_store(bob);
    g_autoptr(GArray) heard = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_store_load_sightings(bob_store, 0, G_MAXINT64, &heard, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(heard->len, >=, 1);
    for (guint i = 0; i < heard->len; i++)
        assert_rpi_from_tek(alice_store, &g_array_index(heard, ProxSighting, i));
}

typedef struct {
    HarnessDaemon *d;
    guint64 initial;
} RotationWait;

static gboolean rotation_ends_changed(gpointer p)
{
    RotationWait *w = p;
    guint64 now = proxd_dbus_manager1_get_current_rotation_ends(w->d->proxy);
    return now != 0 && now != w->initial;
}

/* From the world's record of every report: each address alice sent from carried one RPI
 * only, i.e. no report links two of her identifiers. Returns the number of addresses. */
static guint assert_addresses_unlinkable(const char *truth_path, const char *from)
{
    g_autofree char *text = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(g_file_get_contents(truth_path, &text, NULL, &error));
    g_autoptr(GHashTable) rpi_of = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    g_autoptr(JsonParser) parser = json_parser_new();
    for (guint i = 0; lines[i] != NULL; i++) {
        if (lines[i][0] == '\0')
            continue;
        g_assert_true(json_parser_load_from_data(parser, lines[i], -1, &error));
        JsonObject *o = json_node_get_object(json_parser_get_root(parser));
        if (g_strcmp0(json_object_get_string_member(o, "from"), from) != 0)
            continue;
        const char *address = json_object_get_string_member(o, "address");
        JsonObject *sd = json_object_get_object_member(o, "service_data");
        const char *data = json_object_get_string_member_with_default(sd, PROX_SERVICE_UUID, "");
        g_assert_cmpstr(json_object_get_string_member(o, "address_type"), ==, "random");
        const char *known = g_hash_table_lookup(rpi_of, address);
        if (known == NULL)
            g_hash_table_insert(rpi_of, g_strdup(address), g_strndup(data, 2 * PROX_RPI_LEN));
        else if (strncmp(known, data, 2 * PROX_RPI_LEN) != 0)
            g_error("%s sent RPIs %s and %.32s from the same address %s", from, known, data,
                    address);
    }
    return g_hash_table_size(rpi_of);
}

static void test_rotation(void)
{
    /* 200x: a rotation every 600-1200 simulated seconds is 3-6 s of real time. A beacon
     * (bob) listens all the time, so the world records everything alice sends. */
    g_autoptr(Harness) h = harness_new("two-devices.json", 200);
    harness_start_fake(h);
    HarnessDaemon *alice = harness_start_proxd(h, "alice", 0, "beacon", person_config);
    HarnessDaemon *bob = harness_start_proxd(h, "bob", 1, "beacon", person_config);
    g_assert_true(harness_wait(is_advertising, alice, TIMEOUT_MS));
    g_assert_true(harness_wait(is_advertising, bob, TIMEOUT_MS));

    for (int round = 0; round < 2; round++) {
        g_autoptr(GVariant) before = harness_fake_advertisement(alice);
        g_assert_nonnull(before);
        g_autofree char *rpi_before = harness_advert_rpi_hex(before);
        g_autofree char *address_before = NULL;
        g_variant_lookup(before, "Address", "s", &address_before);
        g_assert_nonnull(rpi_before);

        RotationWait w = {alice, proxd_dbus_manager1_get_current_rotation_ends(alice->proxy)};
        g_assert_cmpuint(w.initial, >, 0);
        double sim_now = harness_sim_now(h);
        g_assert_cmpfloat((double)w.initial, >=, sim_now - 1);
        g_assert_cmpfloat((double)w.initial, <=, sim_now + 1200 + 1);
        g_assert_true(harness_wait(rotation_ends_changed, &w, TIMEOUT_MS));

        guint64 next = proxd_dbus_manager1_get_current_rotation_ends(alice->proxy);
        g_assert_cmpuint(next - w.initial, >=, 600);
        g_assert_cmpuint(next - w.initial, <=, 1200);

        /* The new RPI goes out from a new random address. */
        g_assert_true(harness_wait_new_rpi_on_air(alice, rpi_before, TIMEOUT_MS));
        g_autoptr(GVariant) after = harness_fake_advertisement(alice);
        const char *address_after = NULL;
        gboolean from_public = TRUE;
        g_variant_lookup(after, "Address", "&s", &address_after);
        g_variant_lookup(after, "FromPublicAddress", "b", &from_public);
        g_assert_cmpstr(address_after, !=, address_before);
        g_assert_false(from_public);
        g_test_message("rotation %d: %s -> %s", round, address_before, address_after);
    }

    /* Let bob hear the last identifier too, then read the world's record. */
    g_autoptr(GVariant) heard =
        harness_fake_call(h, "WaitReports", g_variant_new("(uuu)", 1, 0, 3));
    harness_stop_proxd(alice);
    harness_stop_proxd(bob);
    harness_stop_fake(h);
    g_assert_cmpuint(assert_addresses_unlinkable(h->truth_path, "alice"), >=, 3);
}

/* ---- ground truth ---- */

typedef struct {
    double first, last; /* simulated unix seconds */
    guint visible;
    int rssi_min, rssi_max;
    char *from;
} Truth;

static void truth_free(Truth *t)
{
    g_free(t->from);
    g_free(t);
}

/* Key "<to_adapter>/<rpi hex>" -> Truth, from the fake's JSON-lines log of what went over
 * the air and was passed on to D-Bus. */
static GHashTable *load_truth(const char *path)
{
    g_autofree char *text = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(g_file_get_contents(path, &text, NULL, &error));
    GHashTable *truth =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)truth_free);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    g_autoptr(JsonParser) parser = json_parser_new();
    for (guint i = 0; lines[i] != NULL; i++) {
        if (lines[i][0] == '\0')
            continue;
        g_assert_true(json_parser_load_from_data(parser, lines[i], -1, &error));
        JsonObject *o = json_node_get_object(json_parser_get_root(parser));
        if (!json_object_get_boolean_member(o, "visible"))
            continue;
        JsonObject *sd = json_object_get_object_member(o, "service_data");
        const char *data = json_object_get_string_member_with_default(sd, PROX_SERVICE_UUID, "");
        if (strlen(data) < 2 * PROX_RPI_LEN)
            continue;
        g_autofree char *rpi = g_strndup(data, 2 * PROX_RPI_LEN);
        char *key =
            g_strdup_printf("%u/%s", (guint)json_object_get_int_member(o, "to_adapter"), rpi);
        double t = json_object_get_double_member(o, "t");
        int rssi = (int)json_object_get_int_member(o, "rssi");
        Truth *tr = g_hash_table_lookup(truth, key);
        if (tr == NULL) {
            tr = g_new0(Truth, 1);
            tr->first = t;
            tr->rssi_min = tr->rssi_max = rssi;
            tr->from = g_strdup(json_object_get_string_member(o, "from"));
            g_hash_table_insert(truth, key, tr);
        } else {
            g_free(key);
        }
        tr->first = MIN(tr->first, t);
        tr->last = MAX(tr->last, t);
        tr->rssi_min = MIN(tr->rssi_min, rssi);
        tr->rssi_max = MAX(tr->rssi_max, rssi);
        tr->visible++;
    }
    return truth;
}

/* Every sighting in the store was really heard, at those times, with RSSIs in the range the
 * world produced; every identifier the world delivered well inside one of the daemon's scan
 * instances is in the store. Returns the names of the devices heard. */
static GHashTable *check_against_truth(HarnessDaemon *d, GHashTable *truth)
{
    g_autoptr(ProxStore) store = open_store(d);
    g_autoptr(GArray) sightings = NULL;
    g_autoptr(GArray) scans = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_store_load_sightings(store, 0, G_MAXINT64, &sightings, &error));
    g_assert_true(prox_store_load_scan_instances(store, 0, G_MAXINT64, &scans, &error));
    g_assert_no_error(error);
    GHashTable *heard_from = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr(GHashTable) stored = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

    g_test_message("%s: %u sightings in %u scan instances", d->name, sightings->len, scans->len);
    for (guint i = 0; i < sightings->len; i++) {
        const ProxSighting *s = &g_array_index(sightings, ProxSighting, i);
        g_autofree char *rpi = harness_hex(s->rpi.bytes, PROX_RPI_LEN);
        g_autofree char *key = g_strdup_printf("%u/%s", d->adapter, rpi);
        Truth *t = g_hash_table_lookup(truth, key);
        if (t == NULL)
            g_error("%s stored %s, which the world never delivered to it", d->name, rpi);
        g_assert_cmpint(s->first_seen, >=, (gint64)floor(t->first) - 1);
        g_assert_cmpint(s->last_seen, <=, (gint64)ceil(t->last) + 1);
        g_assert_cmpuint(s->report_count, <=, t->visible);
        if (s->rssi_count > 0) {
            g_assert_cmpint(s->rssi_min, >=, t->rssi_min);
            g_assert_cmpint(s->rssi_max, <=, t->rssi_max);
        }
        g_hash_table_add(heard_from, g_strdup(t->from));
        g_hash_table_add(stored, g_steal_pointer(&key));
    }

    /* Completeness: a delivery more than 2 s inside a scan instance must have been kept. */
    g_autofree char *prefix = g_strdup_printf("%u/", d->adapter);
    GHashTableIter iter;
    gpointer key, value;
    g_hash_table_iter_init(&iter, truth);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        const Truth *t = value;
        if (!g_str_has_prefix(key, prefix) || g_hash_table_contains(stored, key))
            continue;
        for (guint i = 0; i < scans->len; i++) {
            const ProxScanInstance *si = &g_array_index(scans, ProxScanInstance, i);
            gboolean inside_first = t->first > si->start + 2 && t->first < si->end - 2;
            gboolean inside_last = t->last > si->start + 2 && t->last < si->end - 2;
            if (inside_first || inside_last)
                g_error("%s missed %s (from %s, heard %.1f..%.1f) during scan %" G_GINT64_FORMAT
                        "..%" G_GINT64_FORMAT,
                        d->name, (const char *)key, t->from, t->first, t->last, si->start, si->end);
        }
    }
    return heard_from;
}

static void test_ground_truth(void)
{
    /* walk-past: a door beacon, carol walking past it, dave waiting 3 m away then leaving;
     * 150 simulated seconds at 10x. */
    g_autoptr(Harness) h = harness_new("walk-past.json", 10);
    harness_start_fake(h);
    HarnessDaemon *door = harness_start_proxd(h, "door", 0, "beacon", beacon_config);
    HarnessDaemon *carol = harness_start_proxd(h, "carol", 1, "person", person_config);
    HarnessDaemon *dave = harness_start_proxd(h, "dave", 2, "person", person_config);
    HarnessDaemon *all[] = {door, carol, dave};
    for (guint i = 0; i < G_N_ELEMENTS(all); i++)
        g_assert_true(harness_wait(is_advertising, all[i], TIMEOUT_MS));

    harness_wait_sim_time(h, HARNESS_SIM_EPOCH + 160);

    /* The beacon counts occupancy per hour: carol and dave, at least one identifier each. */
    g_autoptr(GVariant) hours = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(proxd_dbus_manager1_call_get_encounters_sync(
        door->proxy, 1, G_DBUS_CALL_FLAGS_NONE, 10000, &hours, NULL, &error));
    g_assert_no_error(error);
    guint64 hour;
    guint32 encounters, scans, max_encounters = 0;
    GVariantIter iter;
    g_variant_iter_init(&iter, hours);
    while (g_variant_iter_next(&iter, "(tuu)", &hour, &encounters, &scans))
        max_encounters = MAX(max_encounters, encounters);
    g_assert_cmpuint(max_encounters, >=, 2);

    /* SIGTERM commits what is pending; the fake writes the rest of its log on exit. */
    for (guint i = 0; i < G_N_ELEMENTS(all); i++)
        harness_stop_proxd(all[i]);
    harness_stop_fake(h);

    g_autoptr(GHashTable) truth = load_truth(h->truth_path);
    g_assert_cmpuint(g_hash_table_size(truth), >, 0);
    g_autoptr(GHashTable) door_heard = check_against_truth(door, truth);
    g_autoptr(GHashTable) carol_heard = check_against_truth(carol, truth);
    g_autoptr(GHashTable) dave_heard = check_against_truth(dave, truth);

    /* Who was near whom: the door heard both passers-by, each of them heard the door. */
    g_assert_true(g_hash_table_contains(door_heard, "carol"));
    g_assert_true(g_hash_table_contains(door_heard, "dave"));
    g_assert_true(g_hash_table_contains(carol_heard, "door"));
    g_assert_true(g_hash_table_contains(dave_heard, "door"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/radio/two-devices-hear-each-other", test_two_devices);
    g_test_add_func("/radio/rotation-changes-rpi-and-address", test_rotation);
    g_test_add_func("/radio/sightings-match-ground-truth", test_ground_truth);
    return g_test_run();
}
