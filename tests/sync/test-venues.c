/* test-venues.c - bus and venue warnings through the device's key-list sync (docs/venues.md
 * §4, §5): signed lists carrying warnings are served over HTTP, imported with their keys and
 * matched against the store's check-ins and sightings. What a run finds new is what proxd
 * signals with VenueExposureDetected (one signal per entry of the result's
 * venue_exposures, in the form proxd_venue_exposure_to_signal() builds).
 *
 *   - a VENUE warning overlapping a check-in by 15 minutes: an exposure of 15 minutes;
 *     by 5 minutes: none (MinMinutes 10);
 *   - a SAME_VEHICLE warning whose beacon TEK's RPIs the device heard for 20 minutes: an
 *     exposure; one whose beacon was never heard: none;
 *   - each once: a second sync finds nothing new;
 *   - a check-in made after its warning was imported is matched at the next sync;
 *   - a beacon (venue matching disabled) matches nothing.
 */
#include "proxd-sync.h"
#include "proxd-venues.h"
#include "sync-test-util.h"

#include <string.h>

#define DEVICE_NOW (TEST_NOW + 3600)
#define T_VENUE_A (TEST_NOW - 6 * 3600) /* check-in at A: 60 minutes */
#define T_VENUE_B (TEST_NOW - 4 * 3600) /* check-in at B: 60 minutes */
#define T_BUS (TEST_NOW - 9 * 3600)     /* on the bus: 20 minutes */
#define T_VENUE_C (TEST_NOW - 2 * 3600) /* check-in at C, recorded after the sync */

typedef struct {
    char *dir;
    char *sec;
    char *pub;
    char *out;
    char *device_db;
    ProxStore *store;
    FileServer *server;
    ProxExportSigner *signer;
    GString *index;
    guint files;
    uint8_t loc_a[PROX_LOCATION_ID_LEN], loc_b[PROX_LOCATION_ID_LEN], loc_c[PROX_LOCATION_ID_LEN];
    ProxTek bus_tek;
    ProxTek unheard_tek;
} Fixture;

static void checkin(Fixture *f, const uint8_t *loc, gint64 arrived, guint minutes)
{
    g_autoptr(GError) error = NULL;
    gint64 id = 0;
    g_assert_true(prox_store_checkin_add(f->store, loc, arrived, arrived + 3600 * 2, &id, &error));
    g_assert_no_error(error);
    g_assert_true(
        prox_store_checkin_checkout(f->store, arrived + (gint64)minutes * 60, NULL, &error));
    g_assert_no_error(error);
}

static ProxVenueWarning venue_warning(const uint8_t *loc, gint64 start, gint64 end)
{
    ProxVenueWarning w = {
        .kind = PROX_VENUE_WARNING_VENUE, .start = start, .end = end, .transmission_risk_level = 5};
    prox_venue_location_hash(loc, w.location_hash);
    return w;
}

static ProxVenueWarning vehicle_warning(const ProxTek *tek, gint64 start, gint64 end)
{
    ProxVenueWarning w = {.kind = PROX_VENUE_WARNING_SAME_VEHICLE,
                          .beacon_tek = *tek,
                          .start = start,
                          .end = end,
                          .transmission_risk_level = 6};
    return w;
}

/* Signs a list of one key and `n` warnings into the publish directory and lists it. */
static void publish(Fixture *f, const ProxVenueWarning *warnings, guint n)
{
    g_autoptr(GError) error = NULL;
    ProxDiagnosisKey key = {0};
    key.tek = test_tek_for_day(TEST_NOW - 2 * DAY);
    key.transmission_risk_level = 5;
    key.report_type = PROX_REPORT_CONFIRMED_TEST;
    ProxExportMeta meta = {.start_timestamp = TEST_NOW - DAY,
                           .end_timestamp = TEST_NOW,
                           .region = "CH",
                           .batch_num = 1,
                           .batch_size = 1};
    g_autoptr(GBytes) zip = prox_export_build_full(&meta, &key, 1, warnings, n, f->signer, &error);
    g_assert_no_error(error);
    g_autofree char *name = g_strdup_printf("%d-venues-%u.zip", TEST_NOW, ++f->files);
    g_autofree char *path = g_build_filename(f->out, name, NULL);
    gsize len = 0;
    const char *data = g_bytes_get_data(zip, &len);
    g_assert_true(g_file_set_contents(path, data, (gssize)len, &error));
    g_string_append_printf(f->index, "%s\n", name);
    g_autofree char *index = g_build_filename(f->out, "index.txt", NULL);
    g_assert_true(g_file_set_contents(index, f->index->str, -1, &error));
}

static void fixture_setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    f->dir = test_tmpdir_new();
    f->sec = g_build_filename(f->dir, "310-v1.sec", NULL);
    f->pub = g_build_filename(f->dir, "310-v1.pub", NULL);
    f->out = g_build_filename(f->dir, "pub", NULL);
    f->device_db = g_build_filename(f->dir, "device.db", NULL);
    g_assert_cmpint(g_mkdir(f->out, 0755), ==, 0);
    g_assert_true(prox_export_ed25519_keygen("310", "v1", f->sec, f->pub, &error));
    g_assert_no_error(error);
    f->signer = prox_export_signer_load_ed25519(f->sec, &error);
    g_assert_no_error(error);
    f->index = g_string_new(NULL);
    memset(f->loc_a, 0xa1, sizeof f->loc_a);
    memset(f->loc_b, 0xb2, sizeof f->loc_b);
    memset(f->loc_c, 0xc3, sizeof f->loc_c);
    f->bus_tek = test_tek_for_day(T_BUS);
    f->unheard_tek = test_tek_for_day(T_BUS);

    f->store = test_store_open(f->device_db);
    checkin(f, f->loc_a, T_VENUE_A, 60);
    checkin(f, f->loc_b, T_VENUE_B, 60);
    /* Heard the bus beacon every minute for 20 minutes, at a distance. */
    test_record(f->store, T_BUS, 20, &f->bus_tek, -75);
    f->server = file_server_new(f->out);
    log_capture_clear();
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    file_server_free(f->server);
    prox_store_close(f->store);
    prox_export_signer_free(f->signer);
    test_tmpdir_free(f->dir);
    g_free(f->sec);
    g_free(f->pub);
    g_free(f->out);
    g_free(f->device_db);
    g_string_free(f->index, TRUE);
}

static gint64 device_clock(gpointer user_data)
{
    return DEVICE_NOW;
}

static ProxdSync *make_sync(Fixture *f)
{
    g_autofree char *url = g_strdup_printf("%s/index.txt", file_server_url(f->server));
    ProxdSyncOptions opts = {.url = url, .db_path = f->device_db, .detect_threads = 2};
    opts.store_options.fast_sync = TRUE;
    const char *entries[] = {f->pub, NULL};
    g_autoptr(GError) error = NULL;
    ProxExportKeyring *keyring = proxd_sync_keyring_load(entries, &error);
    g_assert_no_error(error);
    ProxdSync *sync = proxd_sync_new(&opts, keyring, &error);
    g_assert_no_error(error);
    proxd_sync_set_clock(sync, device_clock, NULL);
    proxd_sync_set_random(sync, test_random, NULL);
    return sync;
}

typedef struct {
    gboolean done;
    ProxdSyncResult *result;
} Wait;

static void on_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
    Wait *w = user_data;
    g_autoptr(GError) error = NULL;
    g_assert_true(proxd_sync_run_finish(PROXD_SYNC(source), res, &w->result, &error));
    g_assert_no_error(error);
    w->done = TRUE;
}

static ProxdSyncResult *run_ok(ProxdSync *sync)
{
    Wait w = {0};
    proxd_sync_run_async(sync, PROXD_SYNC_RUN_DEFAULT, NULL, on_done, &w);
    test_wait_flag(&w.done);
    g_assert_true(w.result->complete);
    return w.result;
}

static const ProxVenueExposure *find_kind(ProxdSyncResult *r, ProxVenueWarningKind kind)
{
    for (guint i = 0; i < r->venue_exposures->len; i++) {
        const ProxVenueExposure *e = &g_array_index(r->venue_exposures, ProxVenueExposure, i);
        if (e->kind == kind)
            return e;
    }
    return NULL;
}

static void publish_all(Fixture *f)
{
    ProxVenueWarning w[] = {
        /* A: present [0, 60 min], warning from 45 min: 15 minutes together. */
        venue_warning(f->loc_a, T_VENUE_A + 45 * 60, T_VENUE_A + 3 * 3600),
        /* B: present [0, 60 min], warning from 55 min: 5 minutes, under MinMinutes. */
        venue_warning(f->loc_b, T_VENUE_B + 55 * 60, T_VENUE_B + 3 * 3600),
        /* The bus the device heard, and one it never heard. */
        vehicle_warning(&f->bus_tek, T_BUS - 5 * 60, T_BUS + 40 * 60),
        vehicle_warning(&f->unheard_tek, T_BUS - 5 * 60, T_BUS + 40 * 60),
        /* C: the device checks in there only after this list was imported. */
        venue_warning(f->loc_c, T_VENUE_C, T_VENUE_C + 3600),
    };
    publish(f, w, G_N_ELEMENTS(w));
}

static void test_match(Fixture *f, gconstpointer data)
{
    publish_all(f);
    g_autoptr(ProxdSync) sync = make_sync(f);
    g_autoptr(ProxdSyncResult) r = run_ok(sync);
    g_assert_cmpuint(r->files_imported, ==, 1);
    g_assert_cmpuint(r->warnings_read, ==, 5);
    g_assert_cmpuint(r->warnings_added, ==, 5);
    g_assert_cmpuint(r->venue_exposures->len, ==, 2);

    const ProxVenueExposure *venue = find_kind(r, PROX_VENUE_WARNING_VENUE);
    g_assert_nonnull(venue);
    g_assert_cmpint(venue->start, ==, T_VENUE_A + 45 * 60);
    g_assert_cmpint(venue->end, ==, T_VENUE_A + 60 * 60);
    g_assert_cmpuint(venue->minutes, ==, 15);
    g_assert_cmpint(venue->transmission_risk_level, ==, 5);
    g_assert_cmpint(venue->id, >, 0);

    const ProxVenueExposure *bus = find_kind(r, PROX_VENUE_WARNING_SAME_VEHICLE);
    g_assert_nonnull(bus);
    g_assert_cmpuint(bus->minutes, >=, 19);
    g_assert_cmpuint(bus->minutes, <=, 25);
    g_assert_cmpint(bus->start, >=, T_BUS - 5 * 60);
    g_assert_cmpint(bus->end, <=, T_BUS + 21 * 60);

    /* The signal proxd emits for it. */
    g_autoptr(GVariant) signal = g_variant_ref_sink(proxd_venue_exposure_to_signal(venue));
    const char *kind = NULL;
    guint32 minutes = 0;
    guint64 day = 0, start = 0;
    g_assert_true(g_variant_lookup(signal, "kind", "&s", &kind));
    g_assert_true(g_variant_lookup(signal, "minutes", "u", &minutes));
    g_assert_true(g_variant_lookup(signal, "day", "t", &day));
    g_assert_true(g_variant_lookup(signal, "start", "t", &start));
    g_assert_true(g_variant_lookup(signal, "end", "t", NULL));
    g_assert_cmpstr(kind, ==, "venue");
    g_assert_cmpuint(minutes, ==, 15);
    g_assert_cmpuint(day, ==, (guint64)((T_VENUE_A + 45 * 60) / DAY * DAY));
    g_assert_cmpuint(start, ==, (guint64)(T_VENUE_A + 45 * 60));
    g_autoptr(GVariant) bus_signal = g_variant_ref_sink(proxd_venue_exposure_to_signal(bus));
    g_assert_true(g_variant_lookup(bus_signal, "kind", "&s", &kind));
    g_assert_cmpstr(kind, ==, "same-vehicle");

    g_autoptr(GError) error = NULL;
    guint count = 0;
    g_assert_true(proxd_venues_count_exposures(f->store, DEVICE_NOW, 14, &count, &error));
    g_assert_cmpuint(count, ==, 2);

    /* Once per warning. */
    g_autoptr(ProxdSyncResult) again = run_ok(sync);
    g_assert_cmpuint(again->warnings_added, ==, 0);
    g_assert_cmpuint(again->venue_exposures->len, ==, 0);

    /* A check-in recorded after its warning arrived (edited in afterwards, say): the next
     * sync matches it, though no list is new. */
    checkin(f, f->loc_c, T_VENUE_C - 30 * 60, 45);
    g_autoptr(ProxdSyncResult) later = run_ok(sync);
    g_assert_cmpuint(later->files_imported, ==, 0);
    g_assert_cmpuint(later->venue_exposures->len, ==, 1);
    const ProxVenueExposure *c = &g_array_index(later->venue_exposures, ProxVenueExposure, 0);
    g_assert_cmpint(c->kind, ==, PROX_VENUE_WARNING_VENUE);
    g_assert_cmpuint(c->minutes, ==, 15);
    g_assert_true(proxd_venues_count_exposures(f->store, DEVICE_NOW, 14, &count, &error));
    g_assert_cmpuint(count, ==, 3);
}

/* After this device reported a positive test, warnings about the time before the report
 * (its own visits and rides coming back) are not recorded; later ones still are. */
static void test_own_report(Fixture *f, gconstpointer data)
{
    publish_all(f);
    g_autoptr(GError) error = NULL;
    /* Reported after the bus ride (it ends by T_BUS + 21 min), before the visit to A. */
    g_autofree char *at = g_strdup_printf("%" G_GINT64_FORMAT, (gint64)(T_BUS + 30 * 60));
    g_assert_true(prox_store_set_setting(f->store, PROXD_VENUES_REPORTED_AT_KEY, at, &error));
    g_assert_no_error(error);
    g_autoptr(ProxdSync) sync = make_sync(f);
    g_autoptr(ProxdSyncResult) r = run_ok(sync);
    g_assert_cmpuint(r->warnings_added, ==, 5);
    g_assert_cmpuint(r->venue_exposures->len, ==, 1);
    g_assert_null(find_kind(r, PROX_VENUE_WARNING_SAME_VEHICLE));
    g_assert_nonnull(find_kind(r, PROX_VENUE_WARNING_VENUE));
}

/* A stricter MinMinutes drops the 15-minute overlap; a beacon matches nothing. */
static void test_options(Fixture *f, gconstpointer data)
{
    publish_all(f);
    g_autoptr(ProxdSync) sync = make_sync(f);
    proxd_sync_set_venues(sync, FALSE, NULL);
    g_autoptr(ProxdSyncResult) beacon = run_ok(sync);
    g_assert_cmpuint(beacon->warnings_added, ==, 5);
    g_assert_cmpuint(beacon->venue_exposures->len, ==, 0);

    ProxdVenueOptions strict = {.min_minutes = 20, .same_vehicle_minutes = 30};
    proxd_sync_set_venues(sync, TRUE, &strict);
    g_autoptr(ProxdSyncResult) r = run_ok(sync);
    g_assert_cmpuint(r->venue_exposures->len, ==, 0);

    ProxdVenueOptions defaults = {0};
    proxd_sync_set_venues(sync, TRUE, &defaults);
    g_autoptr(ProxdSyncResult) r2 = run_ok(sync);
    /* The beacon run skipped matching, so the strict run was the one to match the bus
     * warnings (once: too little time together); venue warnings are matched at every run,
     * and now the 15 minutes at A count. */
    g_assert_cmpuint(r2->venue_exposures->len, ==, 1);
    g_assert_cmpint(g_array_index(r2->venue_exposures, ProxVenueExposure, 0).kind, ==,
                    PROX_VENUE_WARNING_VENUE);
}

/* The D-Bus forms of check-ins and the count upload body carry nothing more than they say. */
static void test_forms(void)
{
    ProxCheckIn c = {.id = 7, .arrived = 100, .departed = 200, .planned_departure = 300};
    memset(c.location_id, 0xab, sizeof c.location_id);
    g_autoptr(GVariant) v = g_variant_ref_sink(proxd_checkin_to_variant(&c));
    g_assert_cmpuint(g_variant_n_children(v), ==, 5);
    const char *location = NULL;
    g_assert_true(g_variant_lookup(v, "location", "&s", &location));
    g_assert_cmpstr(location, ==, "abababab");

    uint8_t hash[PROX_LOCATION_HASH_LEN];
    memset(hash, 0x01, sizeof hash);
    g_autofree char *body = proxd_venues_count_body(hash, 7200 + 59);
    g_assert_cmpstr(body, ==,
                    "{\"locationHash\":\"0101010101010101010101010101010101010101010101010101010101"
                    "010101\",\"hour\":7200}");
    g_autoptr(GError) error = NULL;
    g_autofree char *url =
        proxd_venues_count_url("https://keys.example.org:8443/v1/publish", &error);
    g_assert_no_error(error);
    g_assert_cmpstr(url, ==, "https://keys.example.org:8443/v1/venue-count");
    g_assert_null(proxd_venues_count_url("http://keys.example.org/v1/publish", &error));
    g_clear_error(&error);
    g_autofree char *local = proxd_venues_count_url("http://127.0.0.1:9000/v1/publish", &error);
    g_assert_cmpstr(local, ==, "http://127.0.0.1:9000/v1/venue-count");
    /* Behind a reverse proxy's path prefix, the count goes beside the upload. */
    g_autofree char *prefixed =
        proxd_venues_count_url("https://health.example.org/prox/v1/publish", &error);
    g_assert_no_error(error);
    g_assert_cmpstr(prefixed, ==, "https://health.example.org/prox/v1/venue-count");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    log_capture_install();
    g_test_add_func("/venues/forms", test_forms);
    g_test_add("/venues/match", Fixture, NULL, fixture_setup, test_match, fixture_teardown);
    g_test_add("/venues/own-report", Fixture, NULL, fixture_setup, test_own_report,
               fixture_teardown);
    g_test_add("/venues/options", Fixture, NULL, fixture_setup, test_options, fixture_teardown);
    return g_test_run();
}
