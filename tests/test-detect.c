/* test-detect.c - exposure detection end to end on a real store: sightings recorded from
 * known TEKs (prox-keys) at close and far range, keys imported as a batch, detection ->
 * windows per key, summary, "risk rose" reported once; reruns are idempotent.
 *
 * `-m perf` adds a measurement: import and detection with 100 000 keys.
 */
#include "prox-detect.h"
#include "prox-keys.h"
#include "prox-store.h"

#include <glib/gstdio.h>
#include <string.h>

/* 2020-05-20T18:40:00Z. Sightings are made the day before, from 10:00 UTC. */
#define NOW 1590000000
#define DAY 86400
#define YESTERDAY_10H (NOW - NOW % DAY - DAY + 10 * 3600)
#define TX_POWER 0
#define RSSI_CLOSE (-55) /* attenuation 55 dB: < 63, weight 0.8 */
#define RSSI_FAR (-85)   /* attenuation 85 dB: >= 79, weight 0 */

typedef struct {
    char *dir;
    char *path;
    ProxStore *store;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    f->dir = g_dir_make_tmp("test-detect-XXXXXX", &error);
    g_assert_no_error(error);
    f->path = g_build_filename(f->dir, "proxd.db", NULL);
    /* The measurement uses a device's durable settings; the other tests need no fsync. */
    ProxStoreOptions opts = {.fast_sync = data == NULL};
    f->store = prox_store_open(f->path, &opts, &error);
    g_assert_no_error(error);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    prox_store_close(f->store);
    const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (guint i = 0; i < G_N_ELEMENTS(suffixes); i++) {
        g_autofree char *p = g_strconcat(f->path, suffixes[i], NULL);
        g_unlink(p);
    }
    g_rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

static void seeded_random(void *buf, size_t len, void *user_data)
{
    guint8 *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = (guint8)g_test_rand_int_range(0, 256);
}

static ProxTek tek_for_day(gint64 t)
{
    ProxTek tek;
    prox_tek_generate(&tek, prox_tek_rolling_start(t), seeded_random, NULL);
    return tek;
}

static ProxDiagnosisKey diagnosis_key(const ProxTek *tek)
{
    ProxDiagnosisKey k = {0};
    k.tek = *tek;
    k.report_type = PROX_REPORT_CONFIRMED_TEST;
    return k;
}

/* Scans of 4 s every 60 s for `minutes` from `start`, each hearing every TEK in `teks`
 * (its RPI and AEM at that time) at the matching RSSI. */
static void record(ProxStore *store, gint64 start, guint minutes, const ProxTek *teks,
                   const int *rssi, guint n)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(ProxSightingBatch) batch = prox_sighting_batch_new();
    uint8_t meta[PROX_METADATA_LEN];
    prox_metadata_encode(TX_POWER, meta);
    for (guint m = 0; m < minutes; m++) {
        gint64 t = start + (gint64)m * 60;
        gint64 scan = 0;
        g_assert_true(prox_store_scan_begin(store, t, &scan, &error));
        for (guint i = 0; i < n; i++) {
            ProxBroadcastId id;
            g_assert_true(prox_broadcast_id_at(&teks[i], t + 1, meta, &id));
            prox_sighting_batch_add(batch, scan, &id.rpi, &id.aem, rssi[i], t + 1);
            prox_sighting_batch_add(batch, scan, &id.rpi, &id.aem, rssi[i], t + 3);
        }
        g_assert_true(prox_store_commit_sightings(store, batch, &error));
        g_assert_true(prox_store_scan_end(store, scan, t + 4, &error));
    }
}

static void import(ProxStore *store, const char *name, const ProxDiagnosisKey *keys, gsize n)
{
    g_autoptr(GError) error = NULL;
    gint64 batch = 0;
    guint64 added = 0;
    g_assert_true(
        prox_store_import_batch(store, "test", name, NOW, keys, n, &batch, &added, &error));
    g_assert_no_error(error);
}

/* Random keys of the last 14 days that match nothing. */
static GArray *noise_keys(guint n)
{
    GArray *keys = g_array_sized_new(FALSE, FALSE, sizeof(ProxDiagnosisKey), n);
    for (guint i = 0; i < n; i++) {
        ProxTek tek = tek_for_day(NOW - (gint64)(1 + i % 14) * DAY);
        ProxDiagnosisKey k = diagnosis_key(&tek);
        g_array_append_val(keys, k);
    }
    return keys;
}

typedef struct {
    const uint8_t *key;
    gint64 id;
} KeyIdLookup;

static gboolean find_key(gint64 key_id, const ProxDiagnosisKey *key, gpointer user_data)
{
    KeyIdLookup *l = user_data;
    if (memcmp(key->tek.key, l->key, PROX_KEY_LEN) == 0) {
        l->id = key_id;
        return FALSE;
    }
    return TRUE;
}

static gint64 key_id_of(ProxStore *store, const ProxTek *tek)
{
    g_autoptr(GError) error = NULL;
    KeyIdLookup l = {tek->key, 0};
    g_assert_true(prox_store_foreach_diagnosis_key(store, 0, find_key, &l, &error));
    g_assert_cmpint(l.id, >, 0);
    return l.id;
}

/* Sum of the stored windows' risk per key. */
static double stored_risk(ProxStore *store, gint64 key_id, guint *n_windows)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GArray) windows = NULL;
    g_assert_true(prox_store_load_exposure_windows(store, G_MININT64, &windows, &error));
    double risk = 0;
    *n_windows = 0;
    for (guint i = 0; i < windows->len; i++) {
        const ProxExposureWindow *w = &g_array_index(windows, ProxExposureWindow, i);
        if (w->key_id == key_id) {
            risk += w->risk;
            (*n_windows)++;
        }
    }
    return risk;
}

static gboolean needed(ProxStore *store, const ProxDetectOptions *opts)
{
    g_autoptr(GError) error = NULL;
    gboolean n = FALSE;
    g_assert_true(prox_detect_needed(store, opts, &n, &error));
    return n;
}

static void run(ProxStore *store, const ProxDetectOptions *opts, ProxDetectResult *r)
{
    g_autoptr(GError) error = NULL;
    gboolean ok = prox_detect_run(store, opts, NOW, r, &error);
    g_assert_no_error(error);
    g_assert_true(ok);
}

/* Close TEK for 20 minutes, far TEK the same 20 minutes: high risk from the close key
 * only; the rise is reported once; reruns change nothing. */
static void test_close_and_far(Fixture *f, gconstpointer data)
{
    ProxTek close = tek_for_day(YESTERDAY_10H);
    ProxTek far = tek_for_day(YESTERDAY_10H);
    const ProxTek teks[] = {close, far};
    const int rssi[] = {RSSI_CLOSE, RSSI_FAR};
    record(f->store, YESTERDAY_10H, 20, teks, rssi, 2);

    ProxDetectOptions opts = {.confidence = PROX_CALIBRATION_MEDIUM, .n_threads = 2};
    g_assert_true(needed(f->store, &opts)); /* never ran */

    /* No keys yet: nothing matches, level low, no rise. */
    ProxDetectResult r;
    run(f->store, &opts, &r);
    g_assert_cmpuint(r.sightings, ==, 40);
    g_assert_cmpuint(r.keys, ==, 0);
    g_assert_cmpint(r.summary.level, ==, PROX_RISK_LEVEL_LOW);
    g_assert_false(r.has_previous);
    g_assert_false(r.level_rose);
    prox_detect_result_clear(&r);
    g_assert_false(needed(f->store, &opts));

    g_autoptr(GArray) keys = noise_keys(500);
    ProxDiagnosisKey kc = diagnosis_key(&close), kf = diagnosis_key(&far);
    g_array_append_val(keys, kf);
    g_array_prepend_val(keys, kc);
    import(f->store, "batch-1", (const ProxDiagnosisKey *)(void *)keys->data, keys->len);
    g_assert_true(needed(f->store, &opts));

    run(f->store, &opts, &r);
    g_assert_cmpuint(r.keys, ==, 502);
    g_assert_cmpuint(r.matched, ==, 40); /* each sighting explained by its key */
    g_assert_cmpuint(r.keys_with_windows, ==, 2);
    g_assert_cmpint(r.summary.level, ==, PROX_RISK_LEVEL_HIGH);
    g_assert_true(r.summary.has_high_risk_day);
    g_assert_cmpint(r.summary.most_recent_high_risk_day, ==, YESTERDAY_10H - 10 * 3600);
    g_assert_cmpuint(r.summary.n_days, ==, 1);
    g_assert_cmpuint(r.summary.days[0].n_windows, ==, 1); /* the far window is dropped */
    /* 19 gaps of 60 s (the first scan has none) x 0.8 = 15.2 weighted minutes, x 1.4
     * (confirmed test, standard infectiousness) = 21.28 >= 13 */
    g_assert_cmpfloat_with_epsilon(r.summary.days[0].weighted_minutes, 15.2, 1e-9);
    g_assert_cmpfloat_with_epsilon(r.summary.days[0].normalized_minutes, 21.28, 1e-9);
    g_assert_true(r.has_previous);
    g_assert_cmpint(r.previous_level, ==, PROX_RISK_LEVEL_LOW);
    g_assert_true(r.level_rose);
    g_assert_true(r.new_high_risk_day);
    guint rewritten = r.keys_rewritten;
    g_assert_cmpuint(rewritten, ==, 2);
    prox_detect_result_clear(&r);

    guint n_close = 0, n_far = 0;
    double risk_close = stored_risk(f->store, key_id_of(f->store, &close), &n_close);
    double risk_far = stored_risk(f->store, key_id_of(f->store, &far), &n_far);
    g_assert_cmpuint(n_close, >=, 1);
    g_assert_cmpfloat(risk_close, >=, 13.0);
    g_assert_cmpuint(n_far, >=, 1); /* kept for re-scoring, but worth nothing */
    g_assert_cmpfloat(risk_far, ==, 0.0);
    g_autoptr(GError) error = NULL;
    g_autoptr(GArray) before = NULL;
    g_assert_true(prox_store_load_exposure_windows(f->store, G_MININT64, &before, &error));

    /* Rerun: same result, nothing rewritten, no second rise. */
    g_assert_false(needed(f->store, &opts));
    run(f->store, &opts, &r);
    g_assert_cmpint(r.summary.level, ==, PROX_RISK_LEVEL_HIGH);
    g_assert_cmpuint(r.keys_rewritten, ==, 0);
    g_assert_cmpint(r.previous_level, ==, PROX_RISK_LEVEL_HIGH);
    g_assert_false(r.level_rose);
    g_assert_false(r.new_high_risk_day);
    prox_detect_result_clear(&r);
    g_autoptr(GArray) after = NULL;
    g_assert_true(prox_store_load_exposure_windows(f->store, G_MININT64, &after, &error));
    g_assert_cmpuint(after->len, ==, before->len);
    for (guint i = 0; i < after->len; i++) {
        const ProxExposureWindow *a = &g_array_index(before, ProxExposureWindow, i);
        const ProxExposureWindow *b = &g_array_index(after, ProxExposureWindow, i);
        g_assert_cmpint(a->key_id, ==, b->key_id);
        g_assert_cmpint(a->start, ==, b->start);
        g_assert_cmpfloat(a->risk, ==, b->risk);
        g_assert_cmpuint(a->scans->len, ==, b->scans->len);
    }

    /* Another batch with only unrelated keys: a run is needed, finds no new rise. */
    g_autoptr(GArray) more = noise_keys(100);
    import(f->store, "batch-2", (const ProxDiagnosisKey *)(void *)more->data, more->len);
    g_assert_true(needed(f->store, &opts));
    run(f->store, &opts, &r);
    g_assert_cmpuint(r.keys, ==, 602);
    g_assert_cmpint(r.summary.level, ==, PROX_RISK_LEVEL_HIGH);
    g_assert_false(r.level_rose);
    g_assert_cmpuint(r.keys_rewritten, ==, 0);
    prox_detect_result_clear(&r);

    /* Same keys, other options: the thread count does not matter, the confidence does. */
    ProxDetectOptions one_thread = opts;
    one_thread.n_threads = 1;
    g_assert_false(needed(f->store, &one_thread));
    ProxDetectOptions other = opts;
    other.confidence = PROX_CALIBRATION_HIGH;
    g_assert_true(needed(f->store, &other));
    run(f->store, &other, &r);
    g_assert_cmpuint(r.keys_rewritten, ==, 2); /* the windows carry the confidence */
    g_assert_false(r.level_rose);
    prox_detect_result_clear(&r);
}

/* Parameters under which the exposure is low, then the defaults again: the rise is
 * reported again after the level went down. */
static void test_level_falls_and_rises(Fixture *f, gconstpointer data)
{
    ProxTek close = tek_for_day(YESTERDAY_10H);
    const int rssi[] = {RSSI_CLOSE};
    record(f->store, YESTERDAY_10H, 20, &close, rssi, 1);
    ProxDiagnosisKey k = diagnosis_key(&close);
    import(f->store, "b", &k, 1);

    ProxDetectResult r;
    run(f->store, NULL, &r);
    g_assert_true(r.level_rose);
    prox_detect_result_clear(&r);

    ProxRiskParameters strict;
    prox_risk_parameters_default(&strict);
    strict.high_risk_minutes_per_day = 100;
    strict.high_risk_minutes_per_window = 100;
    ProxDetectOptions opts = {.params = &strict};
    g_assert_true(needed(f->store, &opts));
    run(f->store, &opts, &r);
    g_assert_cmpint(r.summary.level, ==, PROX_RISK_LEVEL_LOW);
    g_assert_cmpint(r.previous_level, ==, PROX_RISK_LEVEL_HIGH);
    g_assert_false(r.level_rose);
    prox_detect_result_clear(&r);

    run(f->store, NULL, &r);
    g_assert_cmpint(r.summary.level, ==, PROX_RISK_LEVEL_HIGH);
    g_assert_true(r.level_rose);
    g_assert_true(r.new_high_risk_day);
    prox_detect_result_clear(&r);
}

/* Only far-away sightings: windows are kept but the level stays low. */
static void test_far_only(Fixture *f, gconstpointer data)
{
    ProxTek far = tek_for_day(YESTERDAY_10H);
    const int rssi[] = {RSSI_FAR};
    record(f->store, YESTERDAY_10H, 30, &far, rssi, 1);
    ProxDiagnosisKey k = diagnosis_key(&far);
    import(f->store, "b", &k, 1);
    ProxDetectResult r;
    run(f->store, NULL, &r);
    g_assert_cmpuint(r.keys_with_windows, ==, 1);
    g_assert_cmpint(r.summary.level, ==, PROX_RISK_LEVEL_LOW);
    g_assert_cmpuint(r.summary.n_days, ==, 0);
    g_assert_false(r.level_rose);
    g_assert_false(r.new_high_risk_day);
    prox_detect_result_clear(&r);
}

/* A stored window of a key that matches nothing (left by an older run) is removed; a
 * window older than the matched days is left to retention. */
static void test_stale_windows_removed(Fixture *f, gconstpointer data)
{
    ProxTek a = tek_for_day(YESTERDAY_10H);
    ProxDiagnosisKey k = diagnosis_key(&a);
    import(f->store, "b", &k, 1);
    gint64 id = key_id_of(f->store, &a);
    g_autoptr(GError) error = NULL;
    ProxExposureWindow w;
    prox_exposure_window_init(&w);
    w.day = YESTERDAY_10H - 10 * 3600;
    w.start = YESTERDAY_10H;
    w.end = YESTERDAY_10H + 600;
    w.report_type = PROX_REPORT_CONFIRMED_TEST;
    w.infectiousness = PROX_INFECTIOUSNESS_STANDARD;
    w.transmission_risk_level = 7;
    w.weighted_minutes = 20;
    w.risk = 28;
    ProxWindowScan s = {40, 40, 300};
    for (int i = 0; i < 4; i++)
        g_array_append_val(w.scans, s);
    g_assert_true(prox_store_save_exposure_windows(f->store, id, &w, 1, &error));
    prox_exposure_window_clear(&w);

    ProxDetectResult r;
    run(f->store, NULL, &r);
    g_assert_cmpuint(r.keys_rewritten, ==, 1);
    g_assert_cmpint(r.summary.level, ==, PROX_RISK_LEVEL_LOW);
    prox_detect_result_clear(&r);
    guint n = 0;
    stored_risk(f->store, id, &n);
    g_assert_cmpuint(n, ==, 0);
}

static void test_invalid_options(Fixture *f, gconstpointer data)
{
    ProxRiskParameters bad;
    prox_risk_parameters_default(&bad);
    bad.window_max_seconds = -1;
    ProxDetectOptions opts = {.params = &bad};
    ProxDetectResult r;
    g_autoptr(GError) error = NULL;
    g_assert_false(prox_detect_run(f->store, &opts, NOW, &r, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    prox_detect_result_clear(&r);
    g_assert_null(prox_detect_fingerprint(&opts));
    g_autofree char *fp = prox_detect_fingerprint(NULL);
    g_assert_cmpuint(strlen(fp), ==, 64);
}

/* -m perf: 100 000 keys in 10 batches, 20 000 sightings over 14 days. */
static void test_perf_100k(Fixture *f, gconstpointer data)
{
    if (!g_test_perf()) {
        g_test_skip("measurement: run with -m perf");
        return;
    }
    g_autoptr(GError) error = NULL;
    /* Sightings: 20 000 random RPIs, 10 per scan, over the last 14 days. */
    g_autoptr(ProxSightingBatch) batch = prox_sighting_batch_new();
    for (guint s = 0; s < 2000; s++) {
        gint64 t = NOW - 14 * DAY + (gint64)s * (14 * DAY / 2000);
        gint64 scan = 0;
        g_assert_true(prox_store_scan_begin(f->store, t, &scan, &error));
        for (guint i = 0; i < 10; i++) {
            ProxRpi rpi;
            ProxAem aem;
            seeded_random(&rpi, sizeof rpi, NULL);
            seeded_random(&aem, sizeof aem, NULL);
            prox_sighting_batch_add(batch, scan, &rpi, &aem, -60, t + 1);
        }
        g_assert_true(prox_store_commit_sightings(f->store, batch, &error));
        g_assert_true(prox_store_scan_end(f->store, scan, t + 4, &error));
    }
    ProxTek close = tek_for_day(YESTERDAY_10H);
    const int rssi[] = {RSSI_CLOSE};
    record(f->store, YESTERDAY_10H, 20, &close, rssi, 1);

    gint64 t0 = g_get_monotonic_time();
    for (guint b = 0; b < 10; b++) {
        g_autoptr(GArray) keys = noise_keys(10000);
        if (b == 9) {
            ProxDiagnosisKey k = diagnosis_key(&close);
            g_array_index(keys, ProxDiagnosisKey, 0) = k;
        }
        g_autofree char *name = g_strdup_printf("batch-%u", b);
        import(f->store, name, (const ProxDiagnosisKey *)(void *)keys->data, keys->len);
    }
    gint64 t1 = g_get_monotonic_time();
    for (guint threads = 1; threads <= 2; threads++) {
        ProxDetectOptions opts = {.n_threads = threads};
        for (int rep = 0; rep < 3; rep++) {
            ProxDetectResult r;
            gint64 a = g_get_monotonic_time();
            run(f->store, &opts, &r);
            gint64 b = g_get_monotonic_time();
            g_assert_cmpuint(r.keys, ==, 100000);
            g_assert_cmpint(r.summary.level, ==, PROX_RISK_LEVEL_HIGH);
            g_test_message("detect: %u thread(s), 100000 keys x %" G_GUINT64_FORMAT
                           " sightings: %.1f ms",
                           threads, r.sightings, (double)(b - a) / 1000.0);
            prox_detect_result_clear(&r);
        }
    }
    g_test_message("import of 100000 keys in 10 batches: %.1f ms", (double)(t1 - t0) / 1000.0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(name, fn) g_test_add(name, Fixture, NULL, fixture_setup, fn, fixture_teardown)
    ADD("/detect/close-and-far", test_close_and_far);
    ADD("/detect/level-falls-and-rises", test_level_falls_and_rises);
    ADD("/detect/far-only", test_far_only);
    ADD("/detect/stale-windows-removed", test_stale_windows_removed);
    ADD("/detect/invalid-options", test_invalid_options);
#undef ADD
    g_test_add("/detect/perf-100k", Fixture, "durable", fixture_setup, test_perf_100k,
               fixture_teardown);
    return g_test_run();
}
