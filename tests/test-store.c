/* test-store.c - unit tests of the sqlite store (prox-store.h). */
#include "prox-store.h"
#include "prox-venue.h"

#include <glib/gstdio.h>
#include <math.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define T0 ((gint64)1700006400) /* 2023-11-15 00:00:00 UTC: a day and interval boundary */
#define DAY ((gint64)86400)

typedef struct {
    char *dir;
    char *path;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    GError *error = NULL;
    f->dir = g_dir_make_tmp("test-store-XXXXXX", &error);
    g_assert_no_error(error);
    f->path = g_build_filename(f->dir, "prox.db", NULL);
}

static void remove_tree(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    if (d == NULL)
        return;
    const char *name;
    while ((name = g_dir_read_name(d)) != NULL) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_DIR) && !g_file_test(p, G_FILE_TEST_IS_SYMLINK))
            remove_tree(p);
        else
            g_unlink(p);
    }
    g_dir_close(d);
    g_rmdir(dir);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    remove_tree(f->dir);
    g_free(f->dir);
    g_free(f->path);
}

static ProxStore *open_store(const char *path, guint retention_days)
{
    GError *error = NULL;
    ProxStoreOptions opts = {.retention_days = retention_days, .fast_sync = TRUE};
    ProxStore *store = prox_store_open(path, &opts, &error);
    g_assert_no_error(error);
    g_assert_nonnull(store);
    return store;
}

static ProxRpi make_rpi(guint seed)
{
    ProxRpi rpi;
    for (guint i = 0; i < PROX_RPI_LEN; i++)
        rpi.bytes[i] = (uint8_t)(seed * 31u + i * 7u + (seed >> 8));
    return rpi;
}

static ProxAem make_aem(guint seed)
{
    ProxAem aem = {{(uint8_t)seed, (uint8_t)(seed >> 8), 0xa5, 0x5a}};
    return aem;
}

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    g_assert_cmpint(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), ==, SQLITE_OK);
    return db;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
    char *message = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &message);
    if (rc != SQLITE_OK)
        g_error("%s: %s", sql, message);
}

static gint64 raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    g_assert_cmpint(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
    g_assert_cmpint(sqlite3_step(stmt), ==, SQLITE_ROW);
    gint64 v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

static int file_mode(const char *path)
{
    struct stat st;
    g_assert_cmpint(g_stat(path, &st), ==, 0);
    return st.st_mode & 07777;
}

/* ---- opening ---- */

static void test_open_mode(Fixture *f, gconstpointer data)
{
    mode_t old = umask(0); /* the most permissive umask: the store must not rely on it */
    ProxStore *store = open_store(f->path, 0);
    umask(old);
    g_autofree char *wal = g_strconcat(f->path, "-wal", NULL);
    g_autofree char *shm = g_strconcat(f->path, "-shm", NULL);
    g_assert_cmpint(file_mode(f->path), ==, 0600);
    g_assert_cmpint(file_mode(wal), ==, 0600);
    g_assert_cmpint(file_mode(shm), ==, 0600);
    GError *error = NULL;
    g_assert_true(prox_store_integrity_check(store, &error));
    g_assert_no_error(error);
    prox_store_close(store);

    /* An existing store (and companions) with loose modes is tightened on open. */
    g_assert_cmpint(g_chmod(f->path, 0644), ==, 0);
    g_assert_true(g_file_set_contents(wal, "", 0, NULL));
    g_assert_cmpint(g_chmod(wal, 0666), ==, 0);
    store = open_store(f->path, 0);
    g_assert_cmpint(file_mode(f->path), ==, 0600);
    g_assert_cmpint(file_mode(wal), ==, 0600);
    prox_store_close(store);
}

static void test_open_errors(Fixture *f, gconstpointer data)
{
    GError *error = NULL;
    g_autofree char *missing = g_build_filename(f->dir, "no-such-dir", "prox.db", NULL);
    g_assert_null(prox_store_open(missing, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_IO);
    g_assert_nonnull(strstr(error->message, missing));
    g_clear_error(&error);

    g_assert_null(prox_store_open(f->dir, NULL, &error)); /* a directory */
    g_assert_error(error, PROX_ERROR, PROX_ERROR_IO);
    g_clear_error(&error);

    g_assert_null(prox_store_open("", NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);

    g_autofree char *junk = g_build_filename(f->dir, "junk.db", NULL);
    g_autofree char *garbage = g_strnfill(4096, 'x');
    g_assert_true(g_file_set_contents(junk, garbage, -1, NULL));
    g_assert_null(prox_store_open(junk, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_STORE);
    g_assert_nonnull(strstr(error->message, "not a database"));
    g_clear_error(&error);
}

static void test_open_newer_schema(Fixture *f, gconstpointer data)
{
    prox_store_close(open_store(f->path, 0));
    sqlite3 *db = raw_open(f->path);
    raw_exec(db, "PRAGMA user_version = 99; INSERT INTO settings VALUES ('a', 'b')");
    sqlite3_close(db);
    gsize len_before = 0, len_after = 0;
    g_autofree char *before = NULL, *after = NULL;
    g_assert_true(g_file_get_contents(f->path, &before, &len_before, NULL));

    GError *error = NULL;
    g_assert_null(prox_store_open(f->path, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_UNSUPPORTED);
    g_assert_nonnull(strstr(error->message, "99"));
    g_clear_error(&error);
    g_assert_false(prox_store_migrate_to(f->path, 1, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_UNSUPPORTED);
    g_clear_error(&error);

    g_assert_true(g_file_get_contents(f->path, &after, &len_after, NULL));
    g_assert_cmpmem(before, len_before, after, len_after);
    db = raw_open(f->path);
    g_assert_cmpint(raw_int(db, "PRAGMA user_version"), ==, 99);
    sqlite3_close(db);
}

static gboolean collect_key(gint64 key_id, const ProxDiagnosisKey *key, gpointer user_data)
{
    g_array_append_val((GArray *)user_data, *key);
    return TRUE;
}

static void test_migrate_from_v1(Fixture *f, gconstpointer data)
{
    GError *error = NULL;
    g_assert_true(prox_store_migrate_to(f->path, 1, &error));
    g_assert_no_error(error);

    /* Data as the first release wrote it. */
    sqlite3 *db = raw_open(f->path);
    g_assert_cmpint(raw_int(db, "PRAGMA user_version"), ==, 1);
    g_assert_cmpint(
        raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'exposure_windows'"), ==, 0);
    raw_exec(db,
             "INSERT INTO settings VALUES ('tx_power', '-8');"
             "INSERT INTO own_teks (key_data, rolling_start, rolling_period, created_at)"
             " VALUES (zeroblob(16), 2833344, 144, 1700006400);"
             "INSERT INTO scan_instances (started_at, ended_at, seconds_since_last_scan)"
             " VALUES (1700006400, 1700006404, 0);"
             "INSERT INTO sightings VALUES (1, x'000102030405060708090a0b0c0d0e0f', x'01020304',"
             " 1700006401, 1700006403, 3, 2, -70, -60, -130);"
             "INSERT INTO key_batches (source, name, imported_at, finished)"
             " VALUES ('https://keys.example', 'batch-1.zip', 1700006400, 1);"
             "INSERT INTO diagnosis_keys (batch_id, key_data, rolling_start, rolling_period,"
             " transmission_risk_level, report_type, days_since_onset)"
             " VALUES (1, x'ffeeddccbbaa99887766554433221100', 2833200, 144, 6, 1, 3);");
    sqlite3_close(db);

    ProxStore *store = open_store(f->path, 0);
    g_autofree char *value = NULL;
    g_assert_true(prox_store_get_setting(store, "tx_power", &value, &error));
    g_assert_cmpstr(value, ==, "-8");

    g_autoptr(GArray) sightings = NULL;
    g_assert_true(prox_store_load_sightings(store, 0, G_MAXINT64, &sightings, &error));
    g_assert_cmpuint(sightings->len, ==, 1);
    ProxSighting *s = &g_array_index(sightings, ProxSighting, 0);
    g_assert_cmpint(s->scan_instance_id, ==, 1);
    g_assert_cmpuint(s->rpi.bytes[15], ==, 0x0f);
    g_assert_cmpuint(s->aem.bytes[3], ==, 0x04);
    g_assert_cmpuint(s->report_count, ==, 3);
    g_assert_cmpuint(s->rssi_count, ==, 2);
    g_assert_cmpint(s->rssi_min, ==, -70);
    g_assert_cmpint(s->rssi_max, ==, -60);
    g_assert_cmpint(s->rssi_mean, ==, -65);

    g_autoptr(GArray) teks = NULL;
    g_assert_true(prox_store_load_teks(store, 0, &teks, &error));
    g_assert_cmpuint(teks->len, ==, 1);
    g_assert_cmpuint(g_array_index(teks, ProxTek, 0).rolling_start, ==, 2833344);

    gboolean has = FALSE;
    g_assert_true(prox_store_has_batch(store, "https://keys.example", "batch-1.zip", &has, &error));
    g_assert_true(has);
    g_autoptr(GArray) keys = g_array_new(FALSE, FALSE, sizeof(ProxDiagnosisKey));
    g_assert_true(prox_store_foreach_diagnosis_key(store, 0, collect_key, keys, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(keys->len, ==, 1);
    ProxDiagnosisKey *k = &g_array_index(keys, ProxDiagnosisKey, 0);
    g_assert_cmpuint(k->tek.key[0], ==, 0xff);
    g_assert_cmpint(k->transmission_risk_level, ==, 6);
    g_assert_cmpint(k->report_type, ==, PROX_REPORT_CONFIRMED_TEST);
    g_assert_true(k->has_days_since_onset);
    g_assert_cmpint(k->days_since_onset, ==, 3);

    /* What v2 added works on the migrated store. */
    g_assert_true(prox_store_set_sync_state(store, "etag", "\"abc\"", &error));
    ProxExposureWindow w;
    prox_exposure_window_init(&w);
    w.day = T0;
    g_assert_true(prox_store_save_exposure_windows(store, 1, &w, 1, &error));
    g_assert_no_error(error);
    prox_exposure_window_clear(&w);
    prox_store_close(store);

    db = raw_open(f->path);
    g_assert_cmpint(raw_int(db, "PRAGMA user_version"), ==, PROX_STORE_SCHEMA_VERSION);
    sqlite3_close(db);

    /* No going back, and no such versions. */
    g_assert_false(prox_store_migrate_to(f->path, 1, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
    g_assert_false(prox_store_migrate_to(f->path, PROX_STORE_SCHEMA_VERSION + 1, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
}

/* ---- sightings ---- */

/* Reference aggregation, straight from PROTOCOL.md §3. */
typedef struct {
    gint64 scan_id;
    guint rpi_seed;
    guint aem_seed; /* first received */
    gint64 first, last;
    guint reports, rssi_count;
    int min, max;
    gint64 sum;
} Expected;

static void expect_report(GArray *expected, gint64 scan_id, guint rpi_seed, guint aem_seed,
                          int rssi, gint64 now)
{
    Expected *e = NULL;
    for (guint i = 0; i < expected->len; i++) {
        Expected *x = &g_array_index(expected, Expected, i);
        if (x->scan_id == scan_id && x->rpi_seed == rpi_seed)
            e = x;
    }
    if (e == NULL) {
        Expected fresh = {scan_id, rpi_seed, aem_seed, now, now, 0, 0, 0, 0, 0};
        g_array_append_val(expected, fresh);
        e = &g_array_index(expected, Expected, expected->len - 1);
    }
    e->first = MIN(e->first, now);
    e->last = MAX(e->last, now);
    e->reports++;
    if (rssi != PROX_RSSI_UNKNOWN) {
        e->min = e->rssi_count == 0 ? rssi : MIN(e->min, rssi);
        e->max = e->rssi_count == 0 ? rssi : MAX(e->max, rssi);
        e->rssi_count++;
        e->sum += rssi;
    }
}

static void report(ProxSightingBatch *batch, GArray *expected, gint64 scan_id, guint rpi_seed,
                   guint aem_seed, int rssi, gint64 now)
{
    ProxRpi rpi = make_rpi(rpi_seed);
    ProxAem aem = make_aem(aem_seed);
    prox_sighting_batch_add(batch, scan_id, &rpi, &aem, rssi, now);
    expect_report(expected, scan_id, rpi_seed, aem_seed, rssi, now);
}

static void check_sightings(ProxStore *store, GArray *expected)
{
    GError *error = NULL;
    g_autoptr(GArray) got = NULL;
    g_assert_true(prox_store_load_sightings(store, G_MININT64, G_MAXINT64, &got, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(got->len, ==, expected->len);
    for (guint i = 0; i < expected->len; i++) {
        Expected *e = &g_array_index(expected, Expected, i);
        ProxRpi rpi = make_rpi(e->rpi_seed);
        ProxAem aem = make_aem(e->aem_seed);
        ProxSighting *s = NULL;
        for (guint j = 0; j < got->len; j++) {
            ProxSighting *c = &g_array_index(got, ProxSighting, j);
            if (c->scan_instance_id == e->scan_id && memcmp(c->rpi.bytes, rpi.bytes, 16) == 0)
                s = c;
        }
        g_assert_nonnull(s);
        g_assert_cmpmem(s->aem.bytes, 4, aem.bytes, 4);
        g_assert_cmpint(s->first_seen, ==, e->first);
        g_assert_cmpint(s->last_seen, ==, e->last);
        g_assert_cmpuint(s->report_count, ==, e->reports);
        g_assert_cmpuint(s->rssi_count, ==, e->rssi_count);
        if (e->rssi_count > 0) {
            g_assert_cmpint(s->rssi_min, ==, e->min);
            g_assert_cmpint(s->rssi_max, ==, e->max);
            g_assert_cmpint(s->rssi_mean, ==, (int)lround((double)e->sum / e->rssi_count));
        }
    }
    /* Ordered by first_seen. */
    for (guint j = 1; j < got->len; j++)
        g_assert_cmpint(g_array_index(got, ProxSighting, j - 1).first_seen, <=,
                        g_array_index(got, ProxSighting, j).first_seen);
}

static void test_sightings_aggregate(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    gint64 s1 = 0, s2 = 0;
    g_assert_true(prox_store_scan_begin(store, T0, &s1, &error));
    g_assert_true(prox_store_scan_begin(store, T0 + 240, &s2, &error));
    g_assert_no_error(error);

    g_autoptr(GArray) expected = g_array_new(FALSE, FALSE, sizeof(Expected));
    g_autoptr(ProxSightingBatch) batch = prox_sighting_batch_new();
    report(batch, expected, s1, 1, 10, -60, T0 + 1);
    report(batch, expected, s1, 1, 11, -70, T0 + 2); /* later AEM: first one is kept */
    report(batch, expected, s1, 1, 10, PROX_RSSI_UNKNOWN, T0 + 3);
    report(batch, expected, s1, 1, 10, -61, T0 + 4);
    report(batch, expected, s1, 2, 20, PROX_RSSI_UNKNOWN, T0 + 2); /* RSSI never known */
    report(batch, expected, s2, 1, 12, -55, T0 + 241);             /* same RPI, next scan */
    g_assert_cmpuint(prox_sighting_batch_size(batch), ==, 3);
    g_assert_true(prox_store_commit_sightings(store, batch, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(prox_sighting_batch_size(batch), ==, 0);

    /* Exact values for the first row: min -70, max -60, mean (-60-70-61)/3 = -63.67 -> -64. */
    g_autoptr(GArray) got = NULL;
    g_assert_true(prox_store_load_sightings(store, T0, T0 + 5, &got, &error));
    g_assert_cmpuint(got->len, ==, 2);
    ProxSighting *a = &g_array_index(got, ProxSighting, 0);
    g_assert_cmpint(a->first_seen, ==, T0 + 1);
    g_assert_cmpint(a->last_seen, ==, T0 + 4);
    g_assert_cmpuint(a->report_count, ==, 4);
    g_assert_cmpuint(a->rssi_count, ==, 3);
    g_assert_cmpint(a->rssi_min, ==, -70);
    g_assert_cmpint(a->rssi_max, ==, -60);
    g_assert_cmpint(a->rssi_mean, ==, -64);
    ProxAem aem10 = make_aem(10);
    g_assert_cmpmem(a->aem.bytes, 4, aem10.bytes, 4);
    ProxSighting *b = &g_array_index(got, ProxSighting, 1);
    g_assert_cmpuint(b->report_count, ==, 1);
    g_assert_cmpuint(b->rssi_count, ==, 0);

    /* Second batch merges into the stored rows: an earlier report moves first_seen back,
     * RPI 2 gets its first known RSSI, RPI 1 in s2 gets only unknown ones. */
    report(batch, expected, s1, 1, 13, -80, T0);
    report(batch, expected, s1, 1, 13, -50, T0 + 5);
    report(batch, expected, s1, 2, 21, -40, T0 + 3);
    report(batch, expected, s2, 1, 14, PROX_RSSI_UNKNOWN, T0 + 242);
    /* The helper recorded later AEMs for new rows only; stored rows keep their first. */
    g_assert_true(prox_store_commit_sightings(store, batch, &error));
    g_assert_no_error(error);
    check_sightings(store, expected);

    g_clear_pointer(&got, g_array_unref);
    g_assert_true(prox_store_load_sightings(store, T0, T0 + 1, &got, &error));
    g_assert_cmpuint(got->len, ==, 1); /* rows seen during [T0, T0 + 1) */
    a = &g_array_index(got, ProxSighting, 0);
    g_assert_cmpint(a->rssi_min, ==, -80);
    g_assert_cmpint(a->rssi_max, ==, -50);
    g_assert_cmpint(a->rssi_mean, ==, -64); /* (-60-70-61-80-50)/5 = -64.2 */
    g_assert_cmpmem(a->aem.bytes, 4, aem10.bytes, 4);
    g_clear_pointer(&got, g_array_unref);
    g_assert_true(prox_store_load_sightings(store, T0 + 6, T0 + 241, &got, &error));
    g_assert_cmpuint(got->len, ==, 0);

    /* An empty batch commits nothing and succeeds. */
    g_assert_true(prox_store_commit_sightings(store, batch, &error));
    prox_store_close(store);
}

static void test_sightings_rounding(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    gint64 s = 0;
    g_assert_true(prox_store_scan_begin(store, T0, &s, &error));
    g_autoptr(ProxSightingBatch) batch = prox_sighting_batch_new();
    ProxRpi rpi = make_rpi(5);
    ProxAem aem = make_aem(5);
    /* -60.5 rounds away from zero to -61, across two commits. */
    prox_sighting_batch_add(batch, s, &rpi, &aem, -60, T0);
    g_assert_true(prox_store_commit_sightings(store, batch, &error));
    prox_sighting_batch_add(batch, s, &rpi, &aem, -61, T0 + 1);
    g_assert_true(prox_store_commit_sightings(store, batch, &error));
    g_assert_no_error(error);
    g_autoptr(GArray) got = NULL;
    g_assert_true(prox_store_load_sightings(store, T0, T0 + 2, &got, &error));
    g_assert_cmpuint(got->len, ==, 1);
    g_assert_cmpint(g_array_index(got, ProxSighting, 0).rssi_mean, ==, -61);
    prox_store_close(store);
}

static void test_sightings_random_merges(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    g_autoptr(GRand) rand = g_rand_new_with_seed(4242);
    gint64 scans[4];
    for (guint i = 0; i < G_N_ELEMENTS(scans); i++)
        g_assert_true(prox_store_scan_begin(store, T0 + i * 200, &scans[i], &error));
    g_autoptr(GArray) expected = g_array_new(FALSE, FALSE, sizeof(Expected));
    g_autoptr(ProxSightingBatch) batch = prox_sighting_batch_new();
    for (guint n = 0; n < 2000; n++) {
        guint scan = g_rand_int_range(rand, 0, G_N_ELEMENTS(scans));
        guint rpi_seed = g_rand_int_range(rand, 0, 12);
        int rssi = g_rand_int_range(rand, 0, 5) == 0 ? PROX_RSSI_UNKNOWN
                                                     : g_rand_int_range(rand, -110, -20);
        gint64 now = T0 + scan * 200 + g_rand_int_range(rand, 0, 10);
        /* Same AEM per RPI, as a real device sends within one interval. */
        report(batch, expected, scans[scan], rpi_seed, rpi_seed, rssi, now);
        if (g_rand_int_range(rand, 0, 150) == 0)
            g_assert_true(prox_store_commit_sightings(store, batch, &error));
    }
    g_assert_true(prox_store_commit_sightings(store, batch, &error));
    g_assert_no_error(error);
    check_sightings(store, expected);
    prox_store_close(store);
}

static void test_sightings_unknown_scan(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    gint64 s = 0;
    g_assert_true(prox_store_scan_begin(store, T0, &s, &error));
    g_autoptr(ProxSightingBatch) batch = prox_sighting_batch_new();
    ProxRpi rpi = make_rpi(1);
    ProxAem aem = make_aem(1);
    prox_sighting_batch_add(batch, s, &rpi, &aem, -50, T0);
    prox_sighting_batch_add(batch, s + 1000, &rpi, &aem, -50, T0); /* never begun */
    g_assert_true(prox_store_commit_sightings(store, batch, &error));
    g_assert_no_error(error);
    g_autoptr(GArray) got = NULL;
    g_assert_true(prox_store_load_sightings(store, T0, T0 + 1, &got, &error));
    g_assert_cmpuint(got->len, ==, 1);
    g_assert_cmpint(g_array_index(got, ProxSighting, 0).scan_instance_id, ==, s);
    prox_store_close(store);
}

static void test_scan_instances(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    gint64 a = 0, b = 0, c = 0;
    g_assert_true(prox_store_scan_begin(store, T0, &a, &error));
    g_assert_true(prox_store_scan_end(store, a, T0 + 4, &error));
    g_assert_true(prox_store_scan_begin(store, T0 + 245, &b, &error));
    /* b is left open (daemon crash); its last sighting is at T0 + 247. */
    g_autoptr(ProxSightingBatch) batch = prox_sighting_batch_new();
    ProxRpi rpi = make_rpi(1);
    ProxAem aem = make_aem(1);
    prox_sighting_batch_add(batch, b, &rpi, &aem, -50, T0 + 247);
    g_assert_true(prox_store_commit_sightings(store, batch, &error));
    g_assert_true(prox_store_scan_begin(store, T0 + 4000, &c, &error));
    g_assert_no_error(error);
    g_assert_cmpint(a, <, b);
    g_assert_cmpint(b, <, c);

    g_autoptr(GArray) scans = NULL;
    g_assert_true(prox_store_load_scan_instances(store, G_MININT64, G_MAXINT64, &scans, &error));
    g_assert_cmpuint(scans->len, ==, 3);
    ProxScanInstance *sa = &g_array_index(scans, ProxScanInstance, 0);
    ProxScanInstance *sb = &g_array_index(scans, ProxScanInstance, 1);
    ProxScanInstance *sc = &g_array_index(scans, ProxScanInstance, 2);
    g_assert_cmpint(sa->id, ==, a);
    g_assert_cmpint(sa->start, ==, T0);
    g_assert_cmpint(sa->end, ==, T0 + 4);
    g_assert_cmpint(sa->seconds_since_last_scan, ==, 0); /* no previous scan */
    g_assert_cmpint(sb->end, ==, T0 + 247);              /* closed at its last sighting */
    g_assert_cmpint(sb->seconds_since_last_scan, ==, 245);
    g_assert_cmpint(sc->seconds_since_last_scan, ==, 3755); /* raw, not capped */
    g_assert_cmpint(sc->end, ==, sc->start);                /* still open */

    g_clear_pointer(&scans, g_array_unref);
    g_assert_true(prox_store_load_scan_instances(store, T0 + 4, T0 + 246, &scans, &error));
    g_assert_cmpuint(scans->len, ==, 2);
    g_clear_pointer(&scans, g_array_unref);
    g_assert_true(prox_store_load_scan_instances(store, T0 + 5, T0 + 245, &scans, &error));
    g_assert_cmpuint(scans->len, ==, 0);

    /* Ending before the start clamps; an unknown id is an error. */
    g_assert_true(prox_store_scan_end(store, c, T0, &error));
    g_assert_false(prox_store_scan_end(store, c + 1, T0, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_NOT_FOUND);
    g_clear_error(&error);
    prox_store_close(store);
}

static void test_counts(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    g_autoptr(ProxSightingBatch) batch = prox_sighting_batch_new();
    ProxAem aem = make_aem(0);
    /* Hour 0: RPIs 1, 2 (RPI 1 in two scans); hour 1: RPIs 2, 3; day 2: RPI 4. */
    const struct {
        gint64 t;
        guint rpis[2];
    } scans[] = {
        {T0 + 10, {1, 2}}, {T0 + 250, {1, 1}}, {T0 + 3600, {2, 3}}, {T0 + DAY + 5, {4, 4}}};
    for (guint i = 0; i < G_N_ELEMENTS(scans); i++) {
        gint64 id = 0;
        g_assert_true(prox_store_scan_begin(store, scans[i].t, &id, &error));
        for (guint j = 0; j < 2; j++) {
            ProxRpi rpi = make_rpi(scans[i].rpis[j]);
            prox_sighting_batch_add(batch, id, &rpi, &aem, -60, scans[i].t + j);
        }
    }
    g_assert_true(prox_store_commit_sightings(store, batch, &error));
    g_assert_no_error(error);

    guint64 n = 0;
    g_assert_true(prox_store_count_encounters(store, T0, T0 + DAY, &n, &error));
    g_assert_cmpuint(n, ==, 3);
    g_assert_true(prox_store_count_encounters(store, T0 - 14 * DAY, T0 + 2 * DAY, &n, &error));
    g_assert_cmpuint(n, ==, 4);
    g_assert_true(prox_store_count_encounters(store, T0 + 3600, T0 + 3601, &n, &error));
    g_assert_cmpuint(n, ==, 1); /* RPI 3 is first seen at T0 + 3601 */
    g_assert_true(prox_store_count_encounters(store, T0 + 3600, T0 + 3602, &n, &error));
    g_assert_cmpuint(n, ==, 2);
    g_assert_true(prox_store_count_encounters(store, T0 + 2 * DAY, T0 + 3 * DAY, &n, &error));
    g_assert_cmpuint(n, ==, 0);

    g_autoptr(GArray) hours = NULL;
    g_assert_true(prox_store_count_rpis_per_hour(store, T0, T0 + 2 * DAY, &hours, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(hours->len, ==, 3);
    ProxHourCount *h = (ProxHourCount *)hours->data;
    g_assert_cmpint(h[0].hour, ==, T0);
    g_assert_cmpuint(h[0].count, ==, 2);
    g_assert_cmpint(h[1].hour, ==, T0 + 3600);
    g_assert_cmpuint(h[1].count, ==, 2);
    g_assert_cmpint(h[2].hour, ==, T0 + DAY);
    g_assert_cmpuint(h[2].count, ==, 1);
    prox_store_close(store);
}

/* ---- own TEKs ---- */

static void counter_random(void *buf, size_t len, void *user_data)
{
    guint *counter = user_data;
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(*counter + i);
    (*counter)++;
}

static void test_teks(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    guint counter = 1;
    ProxTek a, b, c;
    g_assert_true(
        prox_store_get_or_create_tek(store, T0 + 100, counter_random, &counter, &a, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(a.rolling_start, ==, prox_interval_number(T0));
    g_assert_cmpuint(a.rolling_start % PROX_TEK_ROLLING_PERIOD, ==, 0);
    g_assert_cmpuint(a.rolling_period, ==, PROX_TEK_ROLLING_PERIOD);
    guint counter_after_a = counter;
    g_assert_true(
        prox_store_get_or_create_tek(store, T0 + DAY - 1, counter_random, &counter, &b, &error));
    g_assert_cmpmem(&a, sizeof a, &b, sizeof b); /* same day: same key, no new randomness */
    g_assert_cmpuint(counter, ==, counter_after_a);
    g_assert_true(
        prox_store_get_or_create_tek(store, T0 + DAY, counter_random, &counter, &c, &error));
    g_assert_cmpuint(c.rolling_start, ==, a.rolling_start + PROX_TEK_ROLLING_PERIOD);
    g_assert_false(memcmp(a.key, c.key, PROX_KEY_LEN) == 0);

    /* Survives reopening. */
    prox_store_close(store);
    store = open_store(f->path, 0);
    ProxTek again;
    g_assert_true(
        prox_store_get_or_create_tek(store, T0 + 5, counter_random, &counter, &again, &error));
    g_assert_cmpmem(&a, sizeof a, &again, sizeof again);

    g_autoptr(GArray) teks = NULL;
    g_assert_true(prox_store_load_teks(store, 0, &teks, &error));
    g_assert_cmpuint(teks->len, ==, 2);
    g_assert_cmpmem(&g_array_index(teks, ProxTek, 0), sizeof a, &a, sizeof a);
    g_assert_cmpmem(&g_array_index(teks, ProxTek, 1), sizeof c, &c, sizeof c);
    g_clear_pointer(&teks, g_array_unref);
    /* The first key is valid up to (not including) the second's start. */
    g_assert_true(prox_store_load_teks(store, c.rolling_start - 1, &teks, &error));
    g_assert_cmpuint(teks->len, ==, 2);
    g_clear_pointer(&teks, g_array_unref);
    g_assert_true(prox_store_load_teks(store, c.rolling_start, &teks, &error));
    g_assert_cmpuint(teks->len, ==, 1);
    g_assert_cmpuint(g_array_index(teks, ProxTek, 0).rolling_start, ==, c.rolling_start);
    prox_store_close(store);
}

/* Same-day release: the key in use ends with the current interval, a fresh one takes over
 * from the current interval to the end of the day, and a second cut in the same interval
 * ends that one too. */
static void test_teks_cut(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    guint counter = 1;
    ProxTek day, cut, next, cut2, next2;
    gboolean had = TRUE;
    gint64 t = T0 + 3 * 3600 + 25 * 60; /* interval 20 of the day (03:20-03:30) */
    uint32_t enin = prox_interval_number(t);

    /* Nothing to cut before the first key exists. */
    g_assert_true(
        prox_store_cut_current_tek(store, t, counter_random, &counter, &cut, &had, &error));
    g_assert_no_error(error);
    g_assert_false(had);

    g_assert_true(prox_store_get_or_create_tek(store, T0, counter_random, &counter, &day, &error));
    g_assert_true(
        prox_store_cut_current_tek(store, t, counter_random, &counter, &cut, &had, &error));
    g_assert_no_error(error);
    g_assert_true(had);
    g_assert_cmpmem(cut.key, PROX_KEY_LEN, day.key, PROX_KEY_LEN);
    g_assert_cmpuint(cut.rolling_start, ==, day.rolling_start);
    g_assert_cmpuint(cut.rolling_period, ==, enin - day.rolling_start + 1);
    g_assert_cmpuint(cut.rolling_period, ==, 21);

    /* From now on the successor is current, to the end of the day, and nothing else. */
    g_assert_true(prox_store_get_or_create_tek(store, t, counter_random, &counter, &next, &error));
    g_assert_false(memcmp(next.key, day.key, PROX_KEY_LEN) == 0);
    g_assert_cmpuint(next.rolling_start, ==, enin);
    g_assert_cmpuint(next.rolling_start + next.rolling_period, ==,
                     day.rolling_start + PROX_TEK_ROLLING_PERIOD);
    g_assert_true(prox_store_get_or_create_tek(store, T0 + DAY - 1, counter_random, &counter,
                                               &next2, &error));
    g_assert_cmpmem(&next2, sizeof next2, &next, sizeof next);

    /* The cut key is stored cut: a report later today sends it as ended. */
    g_autoptr(GArray) teks = NULL;
    g_assert_true(prox_store_load_teks(store, 0, &teks, &error));
    g_assert_cmpuint(teks->len, ==, 2);
    g_assert_cmpmem(&g_array_index(teks, ProxTek, 0), sizeof cut, &cut, sizeof cut);
    g_assert_cmpmem(&g_array_index(teks, ProxTek, 1), sizeof next, &next, sizeof next);

    /* Reported twice in one interval: the successor ends after one interval too. */
    g_assert_true(
        prox_store_cut_current_tek(store, t + 60, counter_random, &counter, &cut2, &had, &error));
    g_assert_true(had);
    g_assert_cmpmem(cut2.key, PROX_KEY_LEN, next.key, PROX_KEY_LEN);
    g_assert_cmpuint(cut2.rolling_start, ==, enin);
    g_assert_cmpuint(cut2.rolling_period, ==, 1);
    g_assert_true(
        prox_store_get_or_create_tek(store, t + 120, counter_random, &counter, &next2, &error));
    g_assert_false(memcmp(next2.key, next.key, PROX_KEY_LEN) == 0);
    g_assert_cmpuint(next2.rolling_start, ==, enin);

    /* The last interval of the day: the successor covers just that one. */
    gint64 last = T0 + DAY - 30;
    g_assert_true(
        prox_store_cut_current_tek(store, last, counter_random, &counter, &cut2, &had, &error));
    g_assert_true(
        prox_store_get_or_create_tek(store, last, counter_random, &counter, &next2, &error));
    g_assert_cmpuint(next2.rolling_start, ==, prox_interval_number(last));
    g_assert_cmpuint(next2.rolling_period, ==, 1);
    prox_store_close(store);
}

/* ---- diagnosis keys ---- */

static ProxDiagnosisKey make_key(guint seed, uint32_t rolling_start)
{
    ProxDiagnosisKey key = {0};
    for (guint i = 0; i < PROX_KEY_LEN; i++)
        key.tek.key[i] = i < 4 ? (uint8_t)(seed >> (8 * i)) : (uint8_t)(seed * 13u + i * 7u);
    key.tek.rolling_start = rolling_start;
    key.tek.rolling_period = 144;
    key.transmission_risk_level = (int32_t)(seed % 8);
    key.report_type = (ProxReportType)(seed % 6);
    key.has_days_since_onset = seed % 2 == 0;
    key.days_since_onset = key.has_days_since_onset ? (int32_t)(seed % 29) - 14 : 0;
    return key;
}

typedef struct {
    GArray *ids;
    GArray *keys;
    guint stop_after; /* 0 = never */
} Collected;

static gboolean collect_chunk(const gint64 *ids, const ProxDiagnosisKey *keys, guint n,
                              gpointer user_data)
{
    Collected *c = user_data;
    g_assert_cmpuint(n, >, 0);
    g_array_append_vals(c->ids, ids, n);
    g_array_append_vals(c->keys, keys, n);
    return c->stop_after == 0 || c->keys->len < c->stop_after;
}

static void collected_init(Collected *c)
{
    c->ids = g_array_new(FALSE, FALSE, sizeof(gint64));
    c->keys = g_array_new(FALSE, FALSE, sizeof(ProxDiagnosisKey));
    c->stop_after = 0;
}

static void collected_clear(Collected *c)
{
    g_array_unref(c->ids);
    g_array_unref(c->keys);
}

static void assert_key_equal(const ProxDiagnosisKey *a, const ProxDiagnosisKey *b)
{
    g_assert_cmpmem(a->tek.key, PROX_KEY_LEN, b->tek.key, PROX_KEY_LEN);
    g_assert_cmpuint(a->tek.rolling_start, ==, b->tek.rolling_start);
    g_assert_cmpuint(a->tek.rolling_period, ==, b->tek.rolling_period);
    g_assert_cmpint(a->transmission_risk_level, ==, b->transmission_risk_level);
    g_assert_cmpint(a->report_type, ==, b->report_type);
    g_assert_cmpint(a->has_days_since_onset, ==, b->has_days_since_onset);
    g_assert_cmpint(a->days_since_onset, ==, b->days_since_onset);
}

/* keys[start, start + n) are `want` in some order. */
static void assert_keys_are(GArray *keys, guint start, const ProxDiagnosisKey *const *want, guint n)
{
    g_assert_cmpuint(keys->len, >=, start + n);
    for (guint i = 0; i < n; i++) {
        const ProxDiagnosisKey *found = NULL;
        for (guint j = start; j < start + n; j++) {
            const ProxDiagnosisKey *k = &g_array_index(keys, ProxDiagnosisKey, j);
            if (memcmp(k->tek.key, want[i]->tek.key, PROX_KEY_LEN) == 0 &&
                k->tek.rolling_start == want[i]->tek.rolling_start)
                found = k;
        }
        g_assert_nonnull(found);
        assert_key_equal(found, want[i]);
    }
}

static void test_diagnosis_keys(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    uint32_t rs = prox_interval_number(T0) - 144;
    ProxDiagnosisKey first[] = {make_key(1, rs), make_key(2, rs), make_key(3, rs - 144)};
    ProxDiagnosisKey second[] = {
        make_key(2, rs),       /* duplicate of first[1] */
        make_key(3, rs - 144), /* duplicate of first[2] */
        make_key(4, rs),
        make_key(1, rs - 144), /* same key_data as first[0], other day: not a duplicate */
    };
    gint64 b1 = 0, b2 = 0;
    guint64 added = 0;
    g_assert_true(
        prox_store_import_batch(store, "srv", "b1.zip", T0, first, 3, &b1, &added, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(added, ==, 3);
    g_assert_true(
        prox_store_import_batch(store, "srv", "b2.zip", T0 + 60, second, 4, &b2, &added, &error));
    g_assert_cmpuint(added, ==, 2);
    g_assert_cmpint(b2, >, b1);
    guint64 count = 0;
    g_assert_true(prox_store_count_diagnosis_keys(store, &count, &error));
    g_assert_cmpuint(count, ==, 5);

    gboolean has = FALSE;
    g_assert_true(prox_store_has_batch(store, "srv", "b1.zip", &has, &error));
    g_assert_true(has);
    g_assert_true(prox_store_has_batch(store, "other", "b1.zip", &has, &error));
    g_assert_false(has);
    gint64 last = 0;
    g_assert_true(prox_store_last_batch_id(store, &last, &error));
    g_assert_cmpint(last, ==, b2);

    /* Importing the same file again is refused and changes nothing. */
    g_assert_false(
        prox_store_import_batch(store, "srv", "b1.zip", T0, first, 3, NULL, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);

    /* Batch by batch (any order inside one); metadata round-trips; ids unique. */
    Collected c;
    collected_init(&c);
    g_assert_true(prox_store_foreach_diagnosis_key_chunk(store, 0, 2, collect_chunk, &c, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(c.keys->len, ==, 5);
    const ProxDiagnosisKey *want_b1[] = {&first[0], &first[1], &first[2]};
    const ProxDiagnosisKey *want_b2[] = {&second[2], &second[3]};
    assert_keys_are(c.keys, 0, want_b1, 3);
    assert_keys_are(c.keys, 3, want_b2, 2);
    for (guint i = 1; i < 5; i++)
        g_assert_cmpint(g_array_index(c.ids, gint64, i - 1), !=, g_array_index(c.ids, gint64, i));
    collected_clear(&c);

    /* since_batch: only the second batch's new keys. */
    collected_init(&c);
    g_assert_true(prox_store_foreach_diagnosis_key_chunk(store, b1, 0, collect_chunk, &c, &error));
    assert_keys_are(c.keys, 0, want_b2, 2);
    g_assert_cmpuint(c.keys->len, ==, 2);
    collected_clear(&c);

    /* Stopping early is not an error. */
    collected_init(&c);
    c.stop_after = 3;
    g_assert_true(prox_store_foreach_diagnosis_key_chunk(store, 0, 1, collect_chunk, &c, &error));
    g_assert_cmpuint(c.keys->len, ==, 3);
    collected_clear(&c);

    /* A bad key fails the whole call; the batch keeps what it had. */
    gint64 b3 = 0;
    g_assert_true(prox_store_add_batch(store, "srv", "b3.zip", T0, &b3, &error));
    ProxDiagnosisKey bad[] = {make_key(7, rs), make_key(8, rs)};
    bad[1].tek.rolling_period = 145;
    g_assert_false(prox_store_add_diagnosis_keys(store, b3, bad, 2, &added, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
    g_assert_true(prox_store_count_diagnosis_keys(store, &count, &error));
    g_assert_cmpuint(count, ==, 5);

    /* An unfinished batch is invisible to matching and not "imported". */
    g_assert_true(prox_store_add_diagnosis_keys(store, b3, bad, 1, &added, &error));
    g_assert_cmpuint(added, ==, 1);
    g_assert_true(prox_store_has_batch(store, "srv", "b3.zip", &has, &error));
    g_assert_false(has);
    collected_init(&c);
    g_assert_true(prox_store_foreach_diagnosis_key_chunk(store, b2, 0, collect_chunk, &c, &error));
    g_assert_cmpuint(c.keys->len, ==, 0);
    collected_clear(&c);
    g_assert_true(prox_store_last_batch_id(store, &last, &error));
    g_assert_cmpint(last, ==, b2);

    /* A finished import carrying a key of the unfinished batch takes it over. */
    gint64 b4 = 0;
    g_assert_true(prox_store_import_batch(store, "srv", "b4.zip", T0, bad, 1, &b4, &added, &error));
    g_assert_cmpuint(added, ==, 1);
    collected_init(&c);
    g_assert_true(prox_store_foreach_diagnosis_key_chunk(store, b2, 0, collect_chunk, &c, &error));
    g_assert_cmpuint(c.keys->len, ==, 1);
    assert_key_equal(&g_array_index(c.keys, ProxDiagnosisKey, 0), &bad[0]);
    collected_clear(&c);

    /* Restarting the interrupted import drops the partial one and gets a fresh id; the
     * key taken over stays. */
    gint64 b3_again = 0;
    g_assert_true(prox_store_add_batch(store, "srv", "b3.zip", T0 + 120, &b3_again, &error));
    g_assert_cmpint(b3_again, >, b4);
    g_assert_true(prox_store_count_diagnosis_keys(store, &count, &error));
    g_assert_cmpuint(count, ==, 6);
    g_assert_true(prox_store_add_diagnosis_keys(store, b3_again, bad, 1, &added, &error));
    g_assert_cmpuint(added, ==, 0);
    g_assert_true(prox_store_finish_batch(store, b3_again, &error));
    g_assert_no_error(error);
    g_assert_true(prox_store_has_batch(store, "srv", "b3.zip", &has, &error));
    g_assert_true(has);
    g_assert_false(prox_store_add_diagnosis_keys(store, b3_again, bad, 1, &added, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
    g_assert_false(prox_store_add_diagnosis_keys(store, 9999, bad, 1, &added, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_NOT_FOUND);
    g_clear_error(&error);
    g_assert_false(prox_store_finish_batch(store, 9999, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_NOT_FOUND);
    g_clear_error(&error);
    prox_store_close(store);
}

typedef struct {
    ProxStore *store;
    guint seen;
    gint64 last_id;
} WriteWhileIterating;

/* Matching saves windows while it streams keys: the store must allow it. */
static gboolean save_while_iterating(gint64 key_id, const ProxDiagnosisKey *key, gpointer data)
{
    WriteWhileIterating *w = data;
    g_assert_cmpint(key_id, >, w->last_id);
    w->last_id = key_id;
    if (w->seen % 1000 == 0) {
        ProxExposureWindow window;
        prox_exposure_window_init(&window);
        window.day = T0;
        GError *error = NULL;
        g_assert_true(prox_store_save_exposure_windows(w->store, key_id, &window, 1, &error));
        g_assert_no_error(error);
        prox_exposure_window_clear(&window);
    }
    w->seen++;
    return TRUE;
}

static void test_diagnosis_keys_many(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    const guint n = 20000;
    g_autofree ProxDiagnosisKey *keys = g_new(ProxDiagnosisKey, n);
    guint n_live = 0; /* one in six is REVOKED: not stored (nothing to revoke) */
    for (guint i = 0; i < n; i++) {
        keys[i] = make_key(i, prox_interval_number(T0) - 144 * (i % 14 + 1));
        n_live += keys[i].report_type != PROX_REPORT_REVOKED;
    }
    g_assert_cmpuint(n_live, <, n);
    guint64 added = 0;
    gint64 t = g_get_monotonic_time();
    g_assert_true(
        prox_store_import_batch(store, "srv", "big.zip", T0, keys, n, NULL, &added, &error));
    g_assert_no_error(error);
    g_test_message("imported %u keys in %.1f ms", n, (g_get_monotonic_time() - t) / 1000.0);
    g_assert_cmpuint(added, ==, n_live);
    WriteWhileIterating w = {store, 0, 0};
    t = g_get_monotonic_time();
    g_assert_true(prox_store_foreach_diagnosis_key(store, 0, save_while_iterating, &w, &error));
    g_test_message("streamed %u keys in %.1f ms", n, (g_get_monotonic_time() - t) / 1000.0);
    g_assert_no_error(error);
    g_assert_cmpuint(w.seen, ==, n_live);
    g_autoptr(GArray) windows = NULL;
    g_assert_true(prox_store_load_exposure_windows(store, 0, &windows, &error));
    g_assert_cmpuint(windows->len, ==, (n_live + 999) / 1000);
    prox_store_close(store);
}

/* ---- exposure windows ---- */

static void make_window(ProxExposureWindow *w, gint64 day, guint n_scans)
{
    prox_exposure_window_init(w);
    w->day = day;
    w->start = day + 3600;
    w->end = day + 3600 + 25 * 60;
    w->report_type = PROX_REPORT_CONFIRMED_TEST;
    w->infectiousness = PROX_INFECTIOUSNESS_HIGH;
    w->calibration_confidence = 2;
    w->transmission_risk_level = 7;
    w->weighted_minutes = 12.75;
    w->risk = 17.85;
    for (guint i = 0; i < n_scans; i++) {
        ProxWindowScan scan = {(uint8_t)(50 + i), (uint8_t)(60 + i), (int32_t)(240 + i)};
        g_array_append_val(w->scans, scan);
    }
}

static void assert_window_equal(const ProxExposureWindow *a, const ProxExposureWindow *b)
{
    g_assert_cmpint(a->day, ==, b->day);
    g_assert_cmpint(a->start, ==, b->start);
    g_assert_cmpint(a->end, ==, b->end);
    g_assert_cmpint(a->report_type, ==, b->report_type);
    g_assert_cmpint(a->infectiousness, ==, b->infectiousness);
    g_assert_cmpuint(a->calibration_confidence, ==, b->calibration_confidence);
    g_assert_cmpint(a->transmission_risk_level, ==, b->transmission_risk_level);
    g_assert_cmpfloat(a->weighted_minutes, ==, b->weighted_minutes);
    g_assert_cmpfloat(a->risk, ==, b->risk);
    g_assert_cmpuint(a->scans->len, ==, b->scans->len);
    for (guint i = 0; i < a->scans->len; i++) { /* field by field: the struct has padding */
        const ProxWindowScan *x = &g_array_index(a->scans, ProxWindowScan, i);
        const ProxWindowScan *y = &g_array_index(b->scans, ProxWindowScan, i);
        g_assert_cmpuint(x->min_attenuation, ==, y->min_attenuation);
        g_assert_cmpuint(x->typical_attenuation, ==, y->typical_attenuation);
        g_assert_cmpint(x->seconds_since_last_scan, ==, y->seconds_since_last_scan);
    }
}

static void test_exposure_windows(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    ProxDiagnosisKey keys[] = {make_key(1, prox_interval_number(T0)),
                               make_key(2, prox_interval_number(T0))};
    g_assert_true(prox_store_import_batch(store, "srv", "b.zip", T0, keys, 2, NULL, NULL, &error));
    Collected c;
    collected_init(&c);
    g_assert_true(prox_store_foreach_diagnosis_key_chunk(store, 0, 0, collect_chunk, &c, &error));
    gint64 k1 = g_array_index(c.ids, gint64, 0);
    gint64 k2 = g_array_index(c.ids, gint64, 1);
    collected_clear(&c);

    ProxExposureWindow w[3];
    make_window(&w[0], T0, 6);
    make_window(&w[1], T0 - DAY, 0); /* no scans: still round-trips */
    make_window(&w[2], T0 + DAY, 2);
    ProxWindowScan odd = {255, 0, -1}; /* unknown attenuation, negative raw gap */
    g_array_append_val(w[2].scans, odd);
    g_assert_true(prox_store_save_exposure_windows(store, k1, w, 2, &error));
    g_assert_true(prox_store_save_exposure_windows(store, k2, &w[2], 1, &error));
    g_assert_no_error(error);

    g_autoptr(GArray) got = NULL;
    g_assert_true(prox_store_load_exposure_windows(store, 0, &got, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(got->len, ==, 3);
    ProxExposureWindow *g = (ProxExposureWindow *)got->data;
    assert_window_equal(&g[0], &w[1]);
    assert_window_equal(&g[1], &w[0]);
    assert_window_equal(&g[2], &w[2]);
    g_assert_cmpint(g[0].key_id, ==, k1);
    g_assert_cmpint(g[2].key_id, ==, k2);
    g_clear_pointer(&got, g_array_unref);
    g_assert_true(prox_store_load_exposure_windows(store, T0, &got, &error));
    g_assert_cmpuint(got->len, ==, 2);
    g_clear_pointer(&got, g_array_unref);

    /* Save replaces the key's windows; other keys' stay. */
    g_assert_true(prox_store_save_exposure_windows(store, k1, &w[0], 1, &error));
    g_assert_true(prox_store_load_exposure_windows(store, 0, &got, &error));
    g_assert_cmpuint(got->len, ==, 2);
    g_clear_pointer(&got, g_array_unref);
    g_assert_true(prox_store_save_exposure_windows(store, k1, NULL, 0, &error));
    g_assert_true(prox_store_load_exposure_windows(store, 0, &got, &error));
    g_assert_cmpuint(got->len, ==, 1);
    g_assert_cmpint(g_array_index(got, ProxExposureWindow, 0).key_id, ==, k2);
    g_clear_pointer(&got, g_array_unref);

    /* Windows must belong to a stored key. */
    g_assert_false(prox_store_save_exposure_windows(store, k2 + 100, w, 1, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_STORE);
    g_clear_error(&error);
    for (guint i = 0; i < 3; i++)
        prox_exposure_window_clear(&w[i]);
    prox_store_close(store);
}

/* ---- settings and sync state ---- */

static void test_key_values(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    char *v = NULL;
    g_assert_true(prox_store_get_setting(store, "x", &v, &error));
    g_assert_null(v);
    g_assert_true(prox_store_set_setting(store, "x", "1", &error));
    g_assert_true(prox_store_set_setting(store, "x", "2", &error));
    g_assert_true(prox_store_set_sync_state(store, "x", "etag", &error));
    g_assert_true(prox_store_get_setting(store, "x", &v, &error));
    g_assert_cmpstr(v, ==, "2");
    g_free(v);
    g_assert_true(prox_store_get_sync_state(store, "x", &v, &error));
    g_assert_cmpstr(v, ==, "etag"); /* separate namespaces */
    g_free(v);
    g_assert_true(prox_store_set_setting(store, "x", NULL, &error));
    g_assert_true(prox_store_get_setting(store, "x", &v, &error));
    g_assert_null(v);
    g_assert_true(prox_store_get_sync_state(store, "x", &v, &error));
    g_assert_cmpstr(v, ==, "etag");
    g_free(v);
    g_assert_true(prox_store_set_sync_state(store, "x", "", &error));
    g_assert_true(prox_store_get_sync_state(store, "x", &v, &error));
    g_assert_cmpstr(v, ==, "");
    g_free(v);
    g_assert_no_error(error);
    prox_store_close(store);
}

/* ---- retention ---- */

static gint64 add_scan_with_sighting(ProxStore *store, gint64 start, gint64 end, gint64 seen,
                                     guint rpi_seed)
{
    GError *error = NULL;
    gint64 id = 0;
    g_assert_true(prox_store_scan_begin(store, start, &id, &error));
    g_autoptr(ProxSightingBatch) batch = prox_sighting_batch_new();
    ProxRpi rpi = make_rpi(rpi_seed);
    ProxAem aem = make_aem(rpi_seed);
    prox_sighting_batch_add(batch, id, &rpi, &aem, -60, seen);
    g_assert_true(prox_store_commit_sightings(store, batch, &error));
    g_assert_true(prox_store_scan_end(store, id, end, &error));
    g_assert_no_error(error);
    return id;
}

static guint count_sightings(ProxStore *store)
{
    g_autoptr(GArray) got = NULL;
    g_assert_true(prox_store_load_sightings(store, G_MININT64, G_MAXINT64, &got, NULL));
    return got->len;
}

static guint count_scans(ProxStore *store)
{
    g_autoptr(GArray) got = NULL;
    g_assert_true(prox_store_load_scan_instances(store, G_MININT64, G_MAXINT64, &got, NULL));
    return got->len;
}

static void test_retention_edges(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    const gint64 now = T0 + 20 * DAY;
    const gint64 cutoff = now - 14 * DAY; /* a UTC midnight */
    const uint32_t cutoff_enin = prox_interval_number(cutoff);

    /* Scan instances by end (cascading to their sightings), sightings by last_seen. */
    add_scan_with_sighting(store, cutoff - 10, cutoff - 1, cutoff - 5, 1); /* gone */
    add_scan_with_sighting(store, cutoff - 10, cutoff, cutoff - 5, 2);     /* scan kept */
    add_scan_with_sighting(store, cutoff - 10, cutoff + 9, cutoff, 3);     /* kept */
    g_assert_cmpuint(count_sightings(store), ==, 3);
    g_assert_cmpuint(count_scans(store), ==, 3);

    /* Own TEKs by the end of their validity. */
    guint counter = 0;
    ProxTek tek;
    g_assert_true(prox_store_get_or_create_tek(store, cutoff - DAY, counter_random, &counter, &tek,
                                               &error)); /* ends at cutoff: kept */
    g_assert_true(prox_store_get_or_create_tek(store, cutoff - 2 * DAY, counter_random, &counter,
                                               &tek, &error)); /* ends a day earlier: gone */

    /* Diagnosis keys by end + 2 h; batches by import time. */
    ProxDiagnosisKey keys[] = {
        make_key(1, cutoff_enin - 12 - 144), /* end + 2 h == cutoff: kept */
        make_key(2, cutoff_enin - 13 - 144), /* 10 minutes earlier: gone */
    };
    g_assert_true(
        prox_store_import_batch(store, "srv", "recent.zip", cutoff, keys, 2, NULL, NULL, &error));
    ProxDiagnosisKey old_key = make_key(3, cutoff_enin);
    g_assert_true(prox_store_import_batch(store, "srv", "old.zip", cutoff - 1, &old_key, 1, NULL,
                                          NULL, &error)); /* batch gone, with its key */
    g_assert_no_error(error);

    /* Exposure windows by end. */
    Collected c;
    collected_init(&c);
    g_assert_true(prox_store_foreach_diagnosis_key_chunk(store, 0, 0, collect_chunk, &c, &error));
    gint64 kept_key = g_array_index(c.ids, gint64, 0);
    collected_clear(&c);
    ProxExposureWindow w[2];
    make_window(&w[0], cutoff - DAY, 1);
    w[0].end = cutoff; /* kept */
    make_window(&w[1], cutoff - DAY, 1);
    w[1].end = cutoff - 1; /* gone */
    g_assert_true(prox_store_save_exposure_windows(store, kept_key, w, 2, &error));
    prox_exposure_window_clear(&w[0]);
    prox_exposure_window_clear(&w[1]);

    g_assert_true(prox_store_enforce_retention(store, now, &error));
    g_assert_no_error(error);

    g_autoptr(GArray) sightings = NULL;
    g_assert_true(prox_store_load_sightings(store, G_MININT64, G_MAXINT64, &sightings, &error));
    g_assert_cmpuint(sightings->len, ==, 1);
    ProxRpi rpi3 = make_rpi(3);
    g_assert_cmpmem(g_array_index(sightings, ProxSighting, 0).rpi.bytes, 16, rpi3.bytes, 16);
    g_assert_cmpuint(count_scans(store), ==, 2);

    g_autoptr(GArray) teks = NULL;
    g_assert_true(prox_store_load_teks(store, 0, &teks, &error));
    g_assert_cmpuint(teks->len, ==, 1);
    g_assert_cmpuint(g_array_index(teks, ProxTek, 0).rolling_start, ==, cutoff_enin - 144);

    collected_init(&c);
    g_assert_true(prox_store_foreach_diagnosis_key_chunk(store, 0, 0, collect_chunk, &c, &error));
    g_assert_cmpuint(c.keys->len, ==, 1);
    assert_key_equal(&g_array_index(c.keys, ProxDiagnosisKey, 0), &keys[0]);
    collected_clear(&c);
    gboolean has = TRUE;
    g_assert_true(prox_store_has_batch(store, "srv", "old.zip", &has, &error));
    g_assert_false(has);
    g_assert_true(prox_store_has_batch(store, "srv", "recent.zip", &has, &error));
    g_assert_true(has);

    g_autoptr(GArray) windows = NULL;
    g_assert_true(prox_store_load_exposure_windows(store, G_MININT64, &windows, &error));
    g_assert_cmpuint(windows->len, ==, 1);
    g_assert_cmpint(g_array_index(windows, ProxExposureWindow, 0).end, ==, cutoff);

    /* One second later, the boundary rows go too. */
    g_assert_true(prox_store_enforce_retention(store, now + 1, &error));
    g_assert_cmpuint(count_sightings(store), ==, 0);
    g_assert_cmpuint(count_scans(store), ==, 1); /* ends at cutoff + 9 */
    g_clear_pointer(&teks, g_array_unref);
    g_assert_true(prox_store_load_teks(store, 0, &teks, &error));
    g_assert_cmpuint(teks->len, ==, 0);
    guint64 n_keys = 1;
    g_assert_true(prox_store_count_diagnosis_keys(store, &n_keys, &error));
    g_assert_cmpuint(n_keys, ==, 0);
    g_clear_pointer(&windows, g_array_unref);
    g_assert_true(prox_store_load_exposure_windows(store, G_MININT64, &windows, &error));
    g_assert_cmpuint(windows->len, ==, 0);
    prox_store_close(store);
}

static void test_retention_longer(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 30); /* a beacon keeping 30 days */
    GError *error = NULL;
    add_scan_with_sighting(store, T0, T0 + 10, T0 + 5, 1);
    g_assert_true(prox_store_enforce_retention(store, T0 + 29 * DAY, &error));
    g_assert_cmpuint(count_sightings(store), ==, 1);
    g_assert_true(prox_store_enforce_retention(store, T0 + 30 * DAY + 11, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(count_sightings(store), ==, 0);
    prox_store_close(store);
}

static void test_retention_automatic(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    add_scan_with_sighting(store, T0, T0 + 10, T0 + 5, 1);
    g_assert_cmpuint(count_sightings(store), ==, 1);

    /* A commit 15 days later expires it without an explicit call. */
    const gint64 later = T0 + 15 * DAY;
    add_scan_with_sighting(store, later, later + 10, later + 5, 2);
    g_assert_cmpuint(count_sightings(store), ==, 1);
    g_assert_cmpuint(count_scans(store), ==, 1);

    /* Within the hour it does not run again (cheap commits): stale data written now stays
     * until a commit at least an hour after the last run. */
    add_scan_with_sighting(store, T0, T0 + 10, T0 + 5, 3);
    add_scan_with_sighting(store, later + 3599, later + 3599, later + 3599, 4);
    g_assert_cmpuint(count_sightings(store), ==, 3);
    add_scan_with_sighting(store, later + 3600, later + 3600, later + 3600, 5);
    g_assert_cmpuint(count_sightings(store), ==, 3); /* 2, 4, 5 */
    g_autoptr(GArray) got = NULL;
    g_assert_true(prox_store_load_sightings(store, T0, T0 + DAY, &got, &error));
    g_assert_cmpuint(got->len, ==, 0);
    g_assert_no_error(error);
    prox_store_close(store);
}

/* ---- buses and venues (schema v3) ---- */

static void test_migrate_from_v2(Fixture *f, gconstpointer data)
{
    GError *error = NULL;
    g_assert_true(prox_store_migrate_to(f->path, 2, &error));
    g_assert_no_error(error);
    sqlite3 *db = raw_open(f->path);
    g_assert_cmpint(raw_int(db, "PRAGMA user_version"), ==, 2);
    g_assert_cmpint(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'venue_warnings'"),
                    ==, 0);
    /* Data as v2 wrote it. */
    raw_exec(db, "INSERT INTO settings VALUES ('tx_power', '-8');"
                 "INSERT INTO sync_state VALUES ('etag', 'x');"
                 "INSERT INTO key_batches (source, name, imported_at, finished)"
                 " VALUES ('https://keys.example', 'batch-1.zip', 1700006400, 1);"
                 "INSERT INTO diagnosis_keys (batch_id, key_data, rolling_start, rolling_period,"
                 " transmission_risk_level, report_type, days_since_onset)"
                 " VALUES (1, x'ffeeddccbbaa99887766554433221100', 2833200, 144, 6, 1, 3);");
    sqlite3_close(db);

    ProxStore *store = open_store(f->path, 0);
    g_autofree char *value = NULL;
    g_assert_true(prox_store_get_sync_state(store, "etag", &value, &error));
    g_assert_cmpstr(value, ==, "x");
    guint64 n_keys = 0;
    g_assert_true(prox_store_count_diagnosis_keys(store, &n_keys, &error));
    g_assert_cmpuint(n_keys, ==, 1);
    gint64 last = 0;
    g_assert_true(prox_store_last_batch_id(store, &last, &error));
    g_assert_cmpint(last, ==, 1);

    /* What v3 added works on the migrated store. */
    guint8 location[PROX_LOCATION_ID_LEN] = {9};
    gint64 checkin_id = 0;
    g_assert_true(prox_store_checkin_add(store, location, T0, T0 + 3600, &checkin_id, &error));
    g_assert_no_error(error);
    ProxVenueWarning w = {.kind = PROX_VENUE_WARNING_VENUE,
                          .start = T0,
                          .end = T0 + 600,
                          .transmission_risk_level = 2};
    gint64 batch = 0;
    guint64 added = 0;
    g_assert_true(prox_store_import_batch_full(store, "s", "b2", T0, NULL, 0, &w, 1, &batch, NULL,
                                               &added, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(added, ==, 1);
    ProxVenueExposure e = {.warning_id = 1, .kind = PROX_VENUE_WARNING_VENUE, .day = T0};
    gboolean is_new = FALSE;
    g_assert_true(prox_store_save_venue_exposure(store, &e, &is_new, &error));
    g_assert_true(is_new);
    g_assert_true(prox_store_integrity_check(store, &error));
    prox_store_close(store);

    db = raw_open(f->path);
    g_assert_cmpint(raw_int(db, "PRAGMA user_version"), ==, PROX_STORE_SCHEMA_VERSION);
    g_assert_cmpint(raw_int(db, "SELECT count(*) FROM pragma_foreign_key_check"), ==, 0);
    sqlite3_close(db);
    g_assert_false(prox_store_migrate_to(f->path, 2, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
}

static ProxVenueWarning make_venue_warning(guint seed, gint64 start)
{
    ProxVenueWarning w = {.kind = PROX_VENUE_WARNING_VENUE,
                          .start = start,
                          .end = start + 1800,
                          .transmission_risk_level = 1 + (int32_t)(seed % 8)};
    for (guint i = 0; i < PROX_LOCATION_HASH_LEN; i++)
        w.location_hash[i] = (guint8)(seed * 13u + i);
    return w;
}

static ProxVenueWarning make_vehicle_warning(guint seed, gint64 start)
{
    ProxVenueWarning w = {.kind = PROX_VENUE_WARNING_SAME_VEHICLE,
                          .start = start,
                          .end = start + 1800,
                          .transmission_risk_level = 1 + (int32_t)(seed % 8)};
    for (guint i = 0; i < PROX_KEY_LEN; i++)
        w.beacon_tek.key[i] = (guint8)(seed * 17u + i);
    w.beacon_tek.rolling_start = prox_tek_rolling_start(start);
    w.beacon_tek.rolling_period = 144;
    return w;
}

static GArray *load_warnings(ProxStore *store, gint64 since, GArray **ids)
{
    GArray *out = NULL;
    GError *error = NULL;
    g_assert_true(prox_store_load_venue_warnings(store, since, &out, ids, &error));
    g_assert_no_error(error);
    return out;
}

static void assert_warning_equal(const ProxVenueWarning *a, const ProxVenueWarning *b)
{
    g_assert_cmpint(a->kind, ==, b->kind);
    g_assert_cmpint(a->start, ==, b->start);
    g_assert_cmpint(a->end, ==, b->end);
    g_assert_cmpint(a->transmission_risk_level, ==, b->transmission_risk_level);
    if (a->kind == PROX_VENUE_WARNING_SAME_VEHICLE) {
        g_assert_cmpmem(a->beacon_tek.key, PROX_KEY_LEN, b->beacon_tek.key, PROX_KEY_LEN);
        g_assert_cmpuint(a->beacon_tek.rolling_start, ==, b->beacon_tek.rolling_start);
        g_assert_cmpuint(a->beacon_tek.rolling_period, ==, b->beacon_tek.rolling_period);
    } else {
        g_assert_cmpmem(a->location_hash, 32, b->location_hash, 32);
    }
}

static void test_venue_warnings(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    ProxVenueWarning ws[] = {make_venue_warning(1, T0), make_vehicle_warning(2, T0 + 3600),
                             make_venue_warning(3, T0 + 7200)};

    /* Added to an unfinished batch: invisible until it is finished. */
    gint64 b1 = 0;
    g_assert_true(prox_store_add_batch(store, "s", "one", T0, &b1, &error));
    guint64 added = 0;
    g_assert_true(prox_store_add_venue_warnings(store, b1, ws, 2, &added, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(added, ==, 2);
    g_autoptr(GArray) none = load_warnings(store, 0, NULL);
    g_assert_cmpuint(none->len, ==, 0);
    g_assert_true(prox_store_finish_batch(store, b1, &error));
    g_autoptr(GArray) ids = NULL;
    g_autoptr(GArray) two = load_warnings(store, 0, &ids);
    g_assert_cmpuint(two->len, ==, 2);
    g_assert_cmpuint(ids->len, ==, 2);
    assert_warning_equal(&g_array_index(two, ProxVenueWarning, 0), &ws[0]);
    assert_warning_equal(&g_array_index(two, ProxVenueWarning, 1), &ws[1]);
    g_assert_cmpint(g_array_index(ids, gint64, 0), <, g_array_index(ids, gint64, 1));
    /* A finished batch takes no more. */
    g_assert_false(prox_store_add_venue_warnings(store, b1, &ws[2], 1, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
    g_assert_false(prox_store_add_venue_warnings(store, 999, &ws[2], 1, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_NOT_FOUND);
    g_clear_error(&error);

    /* A second list repeating both plus a new one: only the new one is added. */
    gint64 b2 = 0;
    guint64 added_keys = 9;
    g_assert_true(prox_store_import_batch_full(store, "s", "two", T0 + 60, NULL, 0, ws, 3, &b2,
                                               &added_keys, &added, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(added, ==, 1);
    g_assert_cmpuint(added_keys, ==, 0);
    g_autoptr(GArray) since_b1 = load_warnings(store, b1, NULL);
    g_assert_cmpuint(since_b1->len, ==, 1);
    assert_warning_equal(&g_array_index(since_b1, ProxVenueWarning, 0), &ws[2]);
    /* Same location, another window: a different warning. */
    ProxVenueWarning later = make_venue_warning(1, T0 + DAY);
    gint64 b3 = 0;
    g_assert_true(prox_store_import_batch_full(store, "s", "three", T0 + 120, NULL, 0, &later, 1,
                                               &b3, NULL, &added, &error));
    g_assert_cmpuint(added, ==, 1);

    /* An invalid warning adds nothing (and names itself); the batch is not imported. */
    ProxVenueWarning bad[] = {make_venue_warning(5, T0), make_venue_warning(6, T0)};
    bad[1].transmission_risk_level = 0;
    g_assert_false(prox_store_import_batch_full(store, "s", "bad", T0 + 180, NULL, 0, bad, 2, NULL,
                                                NULL, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull(strstr(error->message, "1"));
    g_clear_error(&error);
    gboolean has = TRUE;
    g_assert_true(prox_store_has_batch(store, "s", "bad", &has, &error));
    g_assert_false(has);
    g_autoptr(GArray) all = load_warnings(store, 0, NULL);
    g_assert_cmpuint(all->len, ==, 4);

    /* Deleted with their batch (retention of batches by import time). */
    g_assert_true(prox_store_enforce_retention(store, T0 + 60 + 14 * DAY, &error));
    g_autoptr(GArray) after = load_warnings(store, 0, NULL);
    g_assert_cmpuint(after->len, ==, 2); /* b1 (imported at T0) went, with its two */
    g_assert_true(prox_store_enforce_retention(store, T0 + 121 + 14 * DAY, &error));
    g_autoptr(GArray) gone = load_warnings(store, 0, NULL);
    g_assert_cmpuint(gone->len, ==, 0);
    sqlite3 *db = raw_open(f->path);
    g_assert_cmpint(raw_int(db, "SELECT count(*) FROM venue_warnings"), ==, 0);
    sqlite3_close(db);

    /* An interrupted import (unfinished batch) is dropped with its warnings when restarted;
     * a new warning never reuses an old id. */
    gint64 b4 = 0;
    g_assert_true(prox_store_add_batch(store, "s", "four", T0 + 15 * DAY, &b4, &error));
    g_assert_true(prox_store_add_venue_warnings(store, b4, ws, 3, &added, &error));
    g_assert_cmpuint(added, ==, 3);
    gint64 b5 = 0;
    g_assert_true(prox_store_add_batch(store, "s", "four", T0 + 15 * DAY, &b5, &error));
    g_assert_cmpint(b5, >, b4);
    db = raw_open(f->path);
    g_assert_cmpint(raw_int(db, "SELECT count(*) FROM venue_warnings"), ==, 0);
    sqlite3_close(db);
    g_assert_true(prox_store_add_venue_warnings(store, b5, ws, 1, &added, &error));
    g_assert_true(prox_store_finish_batch(store, b5, &error));
    g_autoptr(GArray) new_ids = NULL;
    g_autoptr(GArray) last = load_warnings(store, 0, &new_ids);
    g_assert_cmpuint(last->len, ==, 1);
    g_assert_cmpint(g_array_index(new_ids, gint64, 0), >, 7);
    g_assert_no_error(error);
    prox_store_close(store);
}

static GArray *load_checkins(ProxStore *store)
{
    GArray *out = NULL;
    GError *error = NULL;
    g_assert_true(prox_store_load_checkins(store, G_MININT64, &out, &error));
    g_assert_no_error(error);
    return out;
}

static void test_checkins(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    guint8 a[PROX_LOCATION_ID_LEN], b[PROX_LOCATION_ID_LEN];
    memset(a, 0xaa, sizeof a);
    memset(b, 0xbb, sizeof b);
    const gint64 t = T0 + 9 * 3600;

    g_assert_false(prox_store_checkin_add(store, a, t, t, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
    g_assert_false(prox_store_checkin_checkout(store, t, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_NOT_FOUND);
    g_clear_error(&error);

    gint64 id1 = 0;
    g_assert_true(prox_store_checkin_add(store, a, t, t + 3600, &id1, &error));
    g_assert_no_error(error);
    g_autoptr(GArray) one = load_checkins(store);
    g_assert_cmpuint(one->len, ==, 1);
    ProxCheckIn *c = &g_array_index(one, ProxCheckIn, 0);
    g_assert_cmpint(c->id, ==, id1);
    g_assert_cmpmem(c->location_id, 32, a, 32);
    g_assert_cmpint(c->arrived, ==, t);
    g_assert_cmpint(c->departed, ==, 0);
    g_assert_cmpint(c->planned_departure, ==, t + 3600);

    /* Not yet time to check out automatically. */
    gboolean closed = TRUE;
    g_assert_true(prox_store_checkin_auto_checkout(store, t + 3599, &closed, &error));
    g_assert_false(closed);
    /* Checking in elsewhere closes the open one at the new arrival: one open at a time. */
    gint64 id2 = 0;
    g_assert_true(prox_store_checkin_add(store, b, t + 1200, t + 1200 + 1800, &id2, &error));
    g_autoptr(GArray) two = load_checkins(store);
    g_assert_cmpuint(two->len, ==, 2);
    g_assert_cmpint(g_array_index(two, ProxCheckIn, 0).id, ==, id2); /* newest first */
    g_assert_cmpint(g_array_index(two, ProxCheckIn, 0).departed, ==, 0);
    g_assert_cmpint(g_array_index(two, ProxCheckIn, 1).departed, ==, t + 1200);
    /* The schema itself refuses a second open one. */
    sqlite3 *db = raw_open(f->path);
    g_assert_cmpint(sqlite3_exec(db,
                                 "INSERT INTO checkins (location_id, arrived, planned_departure)"
                                 " VALUES (zeroblob(32), 1, 2)",
                                 NULL, NULL, NULL),
                    !=, SQLITE_OK);
    sqlite3_close(db);

    /* Automatic checkout at the planned departure, once it has passed. */
    g_assert_true(prox_store_checkin_auto_checkout(store, t + 3000 + 5, &closed, &error));
    g_assert_true(closed);
    g_assert_true(prox_store_checkin_auto_checkout(store, t + 4000, &closed, &error));
    g_assert_false(closed);
    g_autoptr(GArray) closed_list = load_checkins(store);
    g_assert_cmpint(g_array_index(closed_list, ProxCheckIn, 0).departed, ==, t + 3000);

    /* Manual checkout. */
    gint64 id3 = 0;
    g_assert_true(prox_store_checkin_add(store, a, t + 5000, t + 9000, &id3, &error));
    gint64 out_id = 0;
    g_assert_true(prox_store_checkin_checkout(store, t + 5600, &out_id, &error));
    g_assert_cmpint(out_id, ==, id3);
    g_assert_false(prox_store_checkin_checkout(store, t + 5700, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_NOT_FOUND);
    g_clear_error(&error);

    /* Editing: the rules of docs/venues.md §3. */
    const gint64 now = t + 7200;
    struct {
        gint64 arrived, departed;
    } bad[] = {
        {t + 100, t + 100}, /* departure == arrival */
        {t + 100, t + 50},  /* before */
        {t + 100, now + 1}, /* in the future */
        {now + 10, 0},      /* arrival in the future */
        {t - DAY, t + 1},   /* over 24 h */
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_false(
            prox_store_checkin_edit(store, id1, bad[i].arrived, bad[i].departed, now, &error));
        g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
        g_clear_error(&error);
    }
    g_assert_false(prox_store_checkin_edit(store, 12345, t, t + 60, now, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_NOT_FOUND);
    g_clear_error(&error);
    g_assert_true(prox_store_checkin_edit(store, id1, t - 600, t + 900, now, &error));
    g_assert_no_error(error);
    g_assert_true(prox_store_checkin_edit(store, id2, t + 1200, t + 1200 + DAY, t + 2 * DAY,
                                          &error)); /* exactly 24 h */
    g_autoptr(GArray) edited = load_checkins(store);
    for (guint i = 0; i < edited->len; i++) {
        ProxCheckIn *e = &g_array_index(edited, ProxCheckIn, i);
        if (e->id == id1) {
            g_assert_cmpint(e->arrived, ==, t - 600);
            g_assert_cmpint(e->departed, ==, t + 900);
            g_assert_cmpint(e->planned_departure, ==, t + 3000); /* stay length kept */
        }
    }
    /* Reopening one is allowed only while none is open. */
    g_assert_true(prox_store_checkin_edit(store, id3, t + 5000, 0, now, &error));
    g_assert_false(prox_store_checkin_edit(store, id1, t - 600, 0, now, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);

    /* Delete. */
    g_assert_true(prox_store_checkin_delete(store, id2, &error));
    g_assert_false(prox_store_checkin_delete(store, id2, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_NOT_FOUND);
    g_clear_error(&error);
    g_autoptr(GArray) left = load_checkins(store);
    g_assert_cmpuint(left->len, ==, 2);
    g_autoptr(GArray) recent = NULL;
    g_assert_true(prox_store_load_checkins(store, t, &recent, &error));
    g_assert_cmpuint(recent->len, ==, 1); /* id1 now arrives before t */
    g_assert_cmpint(g_array_index(recent, ProxCheckIn, 0).id, ==, id3);

    /* Retention by departure; the open one stays however old. */
    g_assert_true(prox_store_enforce_retention(store, t + 900 + 14 * DAY, &error));
    g_autoptr(GArray) kept = load_checkins(store);
    g_assert_cmpuint(kept->len, ==, 2);
    g_assert_true(prox_store_enforce_retention(store, t + 901 + 14 * DAY, &error));
    g_autoptr(GArray) open_only = load_checkins(store);
    g_assert_cmpuint(open_only->len, ==, 1);
    g_assert_cmpint(g_array_index(open_only, ProxCheckIn, 0).id, ==, id3);
    g_assert_true(prox_store_enforce_retention(store, t + 100 * DAY, &error));
    g_autoptr(GArray) still = load_checkins(store);
    g_assert_cmpuint(still->len, ==, 1);
    g_assert_no_error(error);
    prox_store_close(store);
}

static void test_venue_exposures(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    ProxVenueExposure e1 = {.warning_id = 5,
                            .kind = PROX_VENUE_WARNING_VENUE,
                            .day = T0,
                            .start = T0 + 3600,
                            .end = T0 + 4500,
                            .minutes = 15,
                            .transmission_risk_level = 4,
                            .detected_at = T0 + DAY};
    gboolean is_new = FALSE;
    g_assert_true(prox_store_save_venue_exposure(store, &e1, &is_new, &error));
    g_assert_no_error(error);
    g_assert_true(is_new);
    g_assert_cmpint(e1.id, >, 0);
    /* The same warning again (a later sync): not added, id of the stored one. */
    ProxVenueExposure again = e1;
    again.id = 0;
    again.minutes = 99;
    g_assert_true(prox_store_save_venue_exposure(store, &again, &is_new, &error));
    g_assert_false(is_new);
    g_assert_cmpint(again.id, ==, e1.id);
    ProxVenueExposure e2 = {.warning_id = 6,
                            .kind = PROX_VENUE_WARNING_SAME_VEHICLE,
                            .day = T0 + DAY,
                            .start = T0 + DAY + 60,
                            .end = T0 + DAY + 1860,
                            .minutes = 30,
                            .transmission_risk_level = 2,
                            .detected_at = T0 + 2 * DAY};
    g_assert_true(prox_store_save_venue_exposure(store, &e2, &is_new, &error));
    g_assert_true(is_new);
    g_assert_cmpint(e2.id, !=, e1.id);

    g_autoptr(GArray) all = NULL;
    g_assert_true(prox_store_load_venue_exposures(store, 0, &all, &error));
    g_assert_cmpuint(all->len, ==, 2);
    ProxVenueExposure *got = &g_array_index(all, ProxVenueExposure, 0); /* newest first */
    g_assert_cmpint(got->id, ==, e2.id);
    g_assert_cmpint(got->warning_id, ==, 6);
    g_assert_cmpint(got->kind, ==, PROX_VENUE_WARNING_SAME_VEHICLE);
    g_assert_cmpint(got->day, ==, T0 + DAY);
    g_assert_cmpint(got->start, ==, T0 + DAY + 60);
    g_assert_cmpint(got->end, ==, T0 + DAY + 1860);
    g_assert_cmpuint(got->minutes, ==, 30);
    g_assert_cmpint(got->transmission_risk_level, ==, 2);
    g_assert_cmpint(got->detected_at, ==, T0 + 2 * DAY);
    g_assert_cmpuint(g_array_index(all, ProxVenueExposure, 1).minutes, ==, 15); /* first kept */
    g_autoptr(GArray) recent = NULL;
    g_assert_true(prox_store_load_venue_exposures(store, T0 + DAY, &recent, &error));
    g_assert_cmpuint(recent->len, ==, 1);

    /* Retention by end. */
    g_assert_true(prox_store_enforce_retention(store, T0 + 4500 + 14 * DAY, &error));
    g_autoptr(GArray) kept = NULL;
    g_assert_true(prox_store_load_venue_exposures(store, 0, &kept, &error));
    g_assert_cmpuint(kept->len, ==, 2);
    g_assert_true(prox_store_enforce_retention(store, T0 + 4501 + 14 * DAY, &error));
    g_autoptr(GArray) one = NULL;
    g_assert_true(prox_store_load_venue_exposures(store, 0, &one, &error));
    g_assert_cmpuint(one->len, ==, 1);
    g_assert_cmpint(g_array_index(one, ProxVenueExposure, 0).warning_id, ==, 6);
    g_assert_no_error(error);
    prox_store_close(store);
}

static void add_beacon_scan(ProxStore *store, gint64 start, gint64 end, const guint *rpis, guint n,
                            gint64 seen)
{
    GError *error = NULL;
    gint64 id = 0;
    g_assert_true(prox_store_scan_begin(store, start, &id, &error));
    g_autoptr(ProxSightingBatch) batch = prox_sighting_batch_new();
    for (guint i = 0; i < n; i++) {
        ProxRpi rpi = make_rpi(rpis[i]);
        ProxAem aem = make_aem(rpis[i]);
        prox_sighting_batch_add(batch, id, &rpi, &aem, -60, seen);
    }
    g_assert_true(prox_store_commit_sightings(store, batch, &error));
    if (end >= 0)
        g_assert_true(prox_store_scan_end(store, id, end, &error));
    g_assert_no_error(error);
}

static void test_trip_log(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 30);
    GError *error = NULL;
    const gint64 t = T0 + 6 * 3600; /* an interval boundary */
    const guint e = prox_interval_number(t);
    /* Interval e: two scans, RPIs {1,2} and {2,3}: 3 distinct, 2 x 60 s scanning. */
    const guint r1[] = {1, 2}, r2[] = {2, 3};
    add_beacon_scan(store, t + 10, t + 70, r1, 2, t + 20);
    add_beacon_scan(store, t + 300, t + 360, r2, 2, t + 310);
    /* Interval e+1: nothing heard, but in service (one scan across the boundary into e+2:
     * 100 s in e+1, 50 s in e+2). */
    add_beacon_scan(store, t + 1100, t + 1250, NULL, 0, t + 1100);
    /* Interval e+2 also hears RPI 3 (counted there again: a new interval). */
    const guint r3[] = {3};
    add_beacon_scan(store, t + 1300, t + 1310, r3, 1, t + 1305);
    /* Out of service for e+3..e+5; e+6 has an open scan (crash), which still counts. */
    add_beacon_scan(store, t + 6 * 600 + 5, -1, NULL, 0, t + 6 * 600 + 5);

    g_autoptr(GArray) log = NULL;
    g_assert_true(prox_store_load_trip_log(store, t, t + 7 * 600, &log, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(log->len, ==, 4);
    ProxTripInterval *i0 = &g_array_index(log, ProxTripInterval, 0);
    g_assert_cmpuint(i0->interval, ==, e);
    g_assert_cmpuint(i0->distinct_rpis, ==, 3);
    g_assert_cmpuint(i0->scan_seconds, ==, 120);
    ProxTripInterval *i1 = &g_array_index(log, ProxTripInterval, 1);
    g_assert_cmpuint(i1->interval, ==, e + 1);
    g_assert_cmpuint(i1->distinct_rpis, ==, 0);
    g_assert_cmpuint(i1->scan_seconds, ==, 100);
    ProxTripInterval *i2 = &g_array_index(log, ProxTripInterval, 2);
    g_assert_cmpuint(i2->interval, ==, e + 2);
    g_assert_cmpuint(i2->distinct_rpis, ==, 1);
    g_assert_cmpuint(i2->scan_seconds, ==, 60);
    ProxTripInterval *i3 = &g_array_index(log, ProxTripInterval, 3);
    g_assert_cmpuint(i3->interval, ==, e + 6);
    g_assert_cmpuint(i3->distinct_rpis, ==, 0);

    /* A narrower range clips: only e+1 and e+2, with e+2's scanning cut at the end. */
    g_autoptr(GArray) part = NULL;
    g_assert_true(prox_store_load_trip_log(store, t + 600, t + 1210, &part, &error));
    g_assert_cmpuint(part->len, ==, 2);
    g_assert_cmpuint(g_array_index(part, ProxTripInterval, 0).interval, ==, e + 1);
    g_assert_cmpuint(g_array_index(part, ProxTripInterval, 1).interval, ==, e + 2);
    g_assert_cmpuint(g_array_index(part, ProxTripInterval, 1).scan_seconds, ==, 10);
    g_assert_cmpuint(g_array_index(part, ProxTripInterval, 1).distinct_rpis, ==, 0);
    g_autoptr(GArray) empty = NULL;
    g_assert_true(prox_store_load_trip_log(store, t + DAY, t + 2 * DAY, &empty, &error));
    g_assert_cmpuint(empty->len, ==, 0);
    g_assert_no_error(error);
    prox_store_close(store);
}

/* ---- revised and revoked keys (schema v4) ---- */

static ProxDiagnosisKey make_revision(const ProxDiagnosisKey *key, ProxReportType type, int32_t trl,
                                      gboolean has_dso, int32_t dso)
{
    ProxDiagnosisKey r = *key;
    r.report_type = type;
    r.transmission_risk_level = trl;
    r.has_days_since_onset = has_dso;
    r.days_since_onset = has_dso ? dso : 0;
    return r;
}

/* The keys matching sees (finished batches, revoked ones left out), with their ids. */
static void visible_keys(ProxStore *store, gint64 since_batch, Collected *c)
{
    GError *error = NULL;
    collected_init(c);
    g_assert_true(
        prox_store_foreach_diagnosis_key_chunk(store, since_batch, 0, collect_chunk, c, &error));
    g_assert_no_error(error);
}

/* Index of `key` (by key data and rolling start) in c->keys, -1 when absent. */
static int find_visible(const Collected *c, const ProxDiagnosisKey *key)
{
    for (guint i = 0; i < c->keys->len; i++) {
        const ProxDiagnosisKey *k = &g_array_index(c->keys, ProxDiagnosisKey, i);
        if (memcmp(k->tek.key, key->tek.key, PROX_KEY_LEN) == 0 &&
            k->tek.rolling_start == key->tek.rolling_start)
            return (int)i;
    }
    return -1;
}

static gint64 visible_key_id(ProxStore *store, const ProxDiagnosisKey *key)
{
    Collected c;
    visible_keys(store, 0, &c);
    int i = find_visible(&c, key);
    g_assert_cmpint(i, >=, 0);
    gint64 id = g_array_index(c.ids, gint64, i);
    collected_clear(&c);
    return id;
}

static gboolean key_is_visible(ProxStore *store, const ProxDiagnosisKey *key)
{
    Collected c;
    visible_keys(store, 0, &c);
    gboolean found = find_visible(&c, key) >= 0;
    collected_clear(&c);
    return found;
}

/* Number of stored windows of key `key_id`. */
static guint count_windows(ProxStore *store, gint64 key_id)
{
    GError *error = NULL;
    g_autoptr(GArray) windows = NULL;
    g_assert_true(prox_store_load_exposure_windows(store, G_MININT64, &windows, &error));
    g_assert_no_error(error);
    guint n = 0;
    for (guint i = 0; i < windows->len; i++)
        n += g_array_index(windows, ProxExposureWindow, i).key_id == key_id;
    return n;
}

static void save_two_windows(ProxStore *store, gint64 key_id)
{
    GError *error = NULL;
    ProxExposureWindow w[2];
    make_window(&w[0], T0, 2);
    make_window(&w[1], T0 + DAY, 1);
    g_assert_true(prox_store_save_exposure_windows(store, key_id, w, 2, &error));
    g_assert_no_error(error);
    prox_exposure_window_clear(&w[0]);
    prox_exposure_window_clear(&w[1]);
}

static guint64 stored_key_count(ProxStore *store)
{
    GError *error = NULL;
    guint64 count = 0;
    g_assert_true(prox_store_count_diagnosis_keys(store, &count, &error));
    g_assert_no_error(error);
    return count;
}

static void test_keys_revise_metadata(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    uint32_t rs = prox_interval_number(T0) - 144;
    ProxDiagnosisKey a =
        make_revision((ProxDiagnosisKey[]){make_key(1, rs)}, PROX_REPORT_SELF_REPORT, 2, TRUE, 5);
    ProxDiagnosisKey b = make_revision((ProxDiagnosisKey[]){make_key(2, rs)},
                                       PROX_REPORT_CONFIRMED_TEST, 4, FALSE, 0);
    ProxDiagnosisKey first[] = {a, b};
    gint64 b1 = 0;
    g_assert_true(prox_store_import_batch(store, "srv", "b1.zip", T0, first, 2, &b1, NULL, &error));
    g_assert_no_error(error);
    gint64 a_id = visible_key_id(store, &a);

    /* The next list revises a (self report -> confirmed, onset known) and brings c, a key
     * we never had, in its revised_keys: stored as a new key. */
    ProxDiagnosisKey c = make_key(3, rs);
    c.report_type = PROX_REPORT_CONFIRMED_CLINICAL_DIAGNOSIS;
    ProxDiagnosisKey a2 = make_revision(&a, PROX_REPORT_CONFIRMED_TEST, 6, TRUE, -1);
    gint64 b2 = 0;
    guint64 revised = 99, added = 99;
    g_assert_true(prox_store_add_batch(store, "srv", "b2.zip", T0 + 60, &b2, &error));
    ProxDiagnosisKey revisions[] = {c, a2};
    g_assert_true(prox_store_revise_diagnosis_keys(store, b2, revisions, 2, &revised, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(revised, ==, 1);
    g_assert_true(prox_store_finish_batch(store, b2, &error));

    Collected all;
    visible_keys(store, 0, &all);
    g_assert_cmpuint(all.keys->len, ==, 3);
    int ia = find_visible(&all, &a);
    g_assert_cmpint(ia, >=, 0);
    assert_key_equal(&g_array_index(all.keys, ProxDiagnosisKey, ia), &a2);
    g_assert_cmpint(g_array_index(all.ids, gint64, ia), ==, a_id); /* same row, same windows */
    assert_key_equal(&g_array_index(all.keys, ProxDiagnosisKey, find_visible(&all, &b)), &b);
    assert_key_equal(&g_array_index(all.keys, ProxDiagnosisKey, find_visible(&all, &c)), &c);
    collected_clear(&all);
    /* a keeps its batch: only c is new after b1. */
    Collected newer;
    visible_keys(store, b1, &newer);
    g_assert_cmpuint(newer.keys->len, ==, 1);
    g_assert_cmpint(find_visible(&newer, &c), ==, 0);
    collected_clear(&newer);
    g_assert_cmpuint(stored_key_count(store), ==, 3);

    /* The same in one call, as a ProxExport reads: keys, then revised keys. b is revised
     * again (onset now unknown -> known), a's revision is repeated (no change), one key is
     * plain new. */
    ProxDiagnosisKey d = make_key(4, rs);
    d.report_type = PROX_REPORT_CONFIRMED_TEST;
    ProxDiagnosisKey b3 = make_revision(&b, PROX_REPORT_CONFIRMED_TEST, 7, TRUE, 0);
    ProxDiagnosisKey file[] = {d, b3, a2};
    gint64 id3 = 0;
    g_assert_true(prox_store_import_batch_revised(store, "srv", "b3.zip", T0 + 120, file, 3, 2,
                                                  NULL, 0, &id3, &added, &revised, NULL, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(added, ==, 1);
    g_assert_cmpuint(revised, ==, 2);
    visible_keys(store, 0, &all);
    g_assert_cmpuint(all.keys->len, ==, 4);
    assert_key_equal(&g_array_index(all.keys, ProxDiagnosisKey, find_visible(&all, &b)), &b3);
    assert_key_equal(&g_array_index(all.keys, ProxDiagnosisKey, find_visible(&all, &a)), &a2);
    collected_clear(&all);

    /* A plain (not revised) copy of a stored key still changes nothing. */
    ProxDiagnosisKey plain = make_revision(&a, PROX_REPORT_RECURSIVE, 1, FALSE, 0);
    g_assert_true(
        prox_store_import_batch(store, "srv", "b4.zip", T0 + 180, &plain, 1, NULL, &added, &error));
    g_assert_cmpuint(added, ==, 0);
    visible_keys(store, 0, &all);
    assert_key_equal(&g_array_index(all.keys, ProxDiagnosisKey, find_visible(&all, &a)), &a2);
    collected_clear(&all);

    /* Errors as add_diagnosis_keys: unknown or finished batch, bad rolling period (and
     * nothing of that call is applied), n_revised > n_keys. */
    g_assert_false(prox_store_revise_diagnosis_keys(store, 9999, &a2, 1, &revised, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_NOT_FOUND);
    g_clear_error(&error);
    g_assert_false(prox_store_revise_diagnosis_keys(store, b2, &a2, 1, &revised, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
    gint64 b5 = 0;
    g_assert_true(prox_store_add_batch(store, "srv", "b5.zip", T0 + 240, &b5, &error));
    ProxDiagnosisKey bad[] = {make_revision(&a, PROX_REPORT_REVOKED, 0, FALSE, 0), b3};
    bad[1].tek.rolling_period = 0;
    g_assert_false(prox_store_revise_diagnosis_keys(store, b5, bad, 2, &revised, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
    g_assert_true(key_is_visible(store, &a));
    g_assert_false(prox_store_import_batch_revised(store, "srv", "b6.zip", T0, file, 1, 2, NULL, 0,
                                                   NULL, NULL, NULL, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
    gboolean has = TRUE;
    g_assert_true(prox_store_has_batch(store, "srv", "b6.zip", &has, &error));
    g_assert_false(has);
    prox_store_close(store);
}

static void test_keys_revoke(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    uint32_t rs = prox_interval_number(T0) - 144;
    ProxDiagnosisKey keys[3];
    for (guint i = 0; i < 3; i++) {
        keys[i] = make_key(10 + i, rs);
        keys[i].report_type = PROX_REPORT_CONFIRMED_TEST;
    }
    g_assert_true(prox_store_import_batch(store, "srv", "b1.zip", T0, keys, 3, NULL, NULL, &error));
    g_assert_no_error(error);
    gint64 ids[3];
    for (guint i = 0; i < 3; i++) {
        ids[i] = visible_key_id(store, &keys[i]);
        save_two_windows(store, ids[i]);
    }

    /* Revoked in revised_keys: gone from matching, its windows deleted, the others kept. */
    ProxDiagnosisKey revoke0 = make_revision(&keys[0], PROX_REPORT_REVOKED, 0, FALSE, 0);
    guint64 added = 99, revised = 99;
    g_assert_true(prox_store_import_batch_revised(store, "srv", "b2.zip", T0 + 60, &revoke0, 1, 1,
                                                  NULL, 0, NULL, &added, &revised, NULL, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(added, ==, 0);
    g_assert_cmpuint(revised, ==, 1);
    g_assert_false(key_is_visible(store, &keys[0]));
    g_assert_true(key_is_visible(store, &keys[1]));
    g_assert_cmpuint(count_windows(store, ids[0]), ==, 0);
    g_assert_cmpuint(count_windows(store, ids[1]), ==, 2);
    g_assert_cmpuint(count_windows(store, ids[2]), ==, 2);

    /* Revoked as a plain key of a later list (and in the separate-calls API). */
    ProxDiagnosisKey revoke1 = make_revision(&keys[1], PROX_REPORT_REVOKED, 0, FALSE, 0);
    gint64 b3 = 0;
    g_assert_true(prox_store_add_batch(store, "srv", "b3.zip", T0 + 120, &b3, &error));
    g_assert_true(prox_store_add_diagnosis_keys(store, b3, &revoke1, 1, &added, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(added, ==, 0);
    /* Applied when the call returns, like any revision. */
    g_assert_false(key_is_visible(store, &keys[1]));
    g_assert_cmpuint(count_windows(store, ids[1]), ==, 0);
    g_assert_true(prox_store_finish_batch(store, b3, &error));
    g_assert_cmpuint(count_windows(store, ids[2]), ==, 2);

    /* Revocation is final: a later copy, or a later revision, does not bring it back. */
    ProxDiagnosisKey back = make_revision(&keys[0], PROX_REPORT_CONFIRMED_TEST, 5, TRUE, 1);
    g_assert_true(prox_store_import_batch_revised(store, "srv", "b4.zip", T0 + 180,
                                                  (ProxDiagnosisKey[]){back, back}, 2, 1, NULL, 0,
                                                  NULL, &added, &revised, NULL, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(added, ==, 0);
    g_assert_cmpuint(revised, ==, 0);
    g_assert_false(key_is_visible(store, &keys[0]));

    /* Revoked keys stay stored (as tombstones) until retention. */
    g_assert_cmpuint(stored_key_count(store), ==, 3);
    Collected c;
    visible_keys(store, 0, &c);
    g_assert_cmpuint(c.keys->len, ==, 1);
    collected_clear(&c);
    g_assert_true(prox_store_enforce_retention(store, T0 + 20 * DAY, &error));
    g_assert_cmpuint(stored_key_count(store), ==, 0);
    g_assert_true(prox_store_integrity_check(store, &error));
    prox_store_close(store);
}

static void test_keys_revise_older_ignored(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    uint32_t rs = prox_interval_number(T0) - 144;
    ProxDiagnosisKey a =
        make_revision((ProxDiagnosisKey[]){make_key(21, rs)}, PROX_REPORT_SELF_REPORT, 2, FALSE, 0);
    g_assert_true(prox_store_import_batch(store, "srv", "b1.zip", T0, &a, 1, NULL, NULL, &error));
    /* An import started before the next list but finished after it: its batch is older. */
    gint64 old_batch = 0;
    g_assert_true(prox_store_add_batch(store, "srv", "slow.zip", T0, &old_batch, &error));
    ProxDiagnosisKey a_new = make_revision(&a, PROX_REPORT_CONFIRMED_TEST, 6, TRUE, 2);
    ProxDiagnosisKey k = make_key(22, rs);
    k.report_type = PROX_REPORT_CONFIRMED_TEST;
    gint64 newer = 0;
    guint64 revised = 0;
    g_assert_true(prox_store_import_batch_revised(store, "srv", "b3.zip", T0 + 60,
                                                  (ProxDiagnosisKey[]){k, a_new}, 2, 1, NULL, 0,
                                                  &newer, NULL, &revised, NULL, &error));
    g_assert_cmpuint(revised, ==, 1);
    g_assert_cmpint(newer, >, old_batch);

    /* The older list's revisions lose: of a key revised since, of a key stored since (even
     * revoking it), and its plain revocation too. */
    ProxDiagnosisKey a_old = make_revision(&a, PROX_REPORT_RECURSIVE, 1, FALSE, 0);
    ProxDiagnosisKey k_revoked = make_revision(&k, PROX_REPORT_REVOKED, 0, FALSE, 0);
    ProxDiagnosisKey old_revisions[] = {a_old, k_revoked};
    g_assert_true(
        prox_store_revise_diagnosis_keys(store, old_batch, old_revisions, 2, &revised, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(revised, ==, 0);
    g_assert_true(prox_store_add_diagnosis_keys(store, old_batch, &k_revoked, 1, NULL, &error));
    g_assert_true(prox_store_finish_batch(store, old_batch, &error));
    g_assert_no_error(error);

    Collected c;
    visible_keys(store, 0, &c);
    g_assert_cmpuint(c.keys->len, ==, 2);
    assert_key_equal(&g_array_index(c.keys, ProxDiagnosisKey, find_visible(&c, &a)), &a_new);
    assert_key_equal(&g_array_index(c.keys, ProxDiagnosisKey, find_visible(&c, &k)), &k);
    collected_clear(&c);

    /* A newer one wins again. */
    ProxDiagnosisKey a_last = make_revision(&a, PROX_REPORT_CONFIRMED_TEST, 8, TRUE, 0);
    g_assert_true(prox_store_import_batch_revised(store, "srv", "b4.zip", T0 + 120, &a_last, 1, 1,
                                                  NULL, 0, NULL, NULL, &revised, NULL, &error));
    g_assert_cmpuint(revised, ==, 1);
    visible_keys(store, 0, &c);
    assert_key_equal(&g_array_index(c.keys, ProxDiagnosisKey, find_visible(&c, &a)), &a_last);
    collected_clear(&c);
    prox_store_close(store);
}

static void test_keys_revoke_unknown(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    uint32_t rs = prox_interval_number(T0) - 144;
    ProxDiagnosisKey known = make_key(31, rs);
    known.report_type = PROX_REPORT_CONFIRMED_TEST;
    ProxDiagnosisKey u1 =
        make_revision((ProxDiagnosisKey[]){make_key(32, rs)}, PROX_REPORT_REVOKED, 0, FALSE, 0);
    ProxDiagnosisKey u2 =
        make_revision((ProxDiagnosisKey[]){make_key(33, rs)}, PROX_REPORT_REVOKED, 0, FALSE, 0);
    /* Plain u1 and revised u2: neither revokes anything, neither is stored. */
    guint64 added = 0, revised = 0;
    g_assert_true(prox_store_import_batch_revised(store, "srv", "b1.zip", T0,
                                                  (ProxDiagnosisKey[]){known, u1, u2}, 3, 1, NULL,
                                                  0, NULL, &added, &revised, NULL, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(added, ==, 1);
    g_assert_cmpuint(revised, ==, 0);
    g_assert_cmpuint(stored_key_count(store), ==, 1);
    sqlite3 *db = raw_open(f->path);
    g_assert_cmpint(raw_int(db, "SELECT count(*) FROM diagnosis_keys WHERE report_type = 5"), ==,
                    0);
    sqlite3_close(db);

    /* Nothing was kept of them: a later list can publish u1 as a key. */
    ProxDiagnosisKey u1_key = make_revision(&u1, PROX_REPORT_CONFIRMED_TEST, 4, FALSE, 0);
    g_assert_true(
        prox_store_import_batch(store, "srv", "b2.zip", T0 + 60, &u1_key, 1, NULL, &added, &error));
    g_assert_cmpuint(added, ==, 1);
    g_assert_true(key_is_visible(store, &u1));

    /* A file listing a key and its revocation: the revocation wins, whatever the order. */
    ProxDiagnosisKey v = make_key(34, rs);
    v.report_type = PROX_REPORT_CONFIRMED_TEST;
    ProxDiagnosisKey v_revoked = make_revision(&v, PROX_REPORT_REVOKED, 0, FALSE, 0);
    g_assert_true(prox_store_import_batch(store, "srv", "b3.zip", T0 + 120,
                                          (ProxDiagnosisKey[]){v_revoked, v}, 2, NULL, &added,
                                          &error));
    g_assert_false(key_is_visible(store, &v));
    ProxDiagnosisKey w = make_key(35, rs);
    w.report_type = PROX_REPORT_CONFIRMED_TEST;
    ProxDiagnosisKey w_revoked = make_revision(&w, PROX_REPORT_REVOKED, 0, FALSE, 0);
    g_assert_true(prox_store_import_batch_revised(store, "srv", "b4.zip", T0 + 180,
                                                  (ProxDiagnosisKey[]){w, w_revoked}, 2, 1, NULL, 0,
                                                  NULL, &added, NULL, NULL, &error));
    g_assert_cmpuint(added, ==, 1);
    g_assert_false(key_is_visible(store, &w));
    prox_store_close(store);
}

/* One call is one transaction: a revision that fails half way leaves nothing of itself. */
static void test_keys_revise_atomic(Fixture *f, gconstpointer data)
{
    ProxStore *store = open_store(f->path, 0);
    GError *error = NULL;
    uint32_t rs = prox_interval_number(T0) - 144;
    ProxDiagnosisKey keys[2] = {make_key(41, rs), make_key(42, rs)};
    keys[0].report_type = keys[1].report_type = PROX_REPORT_CONFIRMED_TEST;
    /* Sorted by key data, keys[0] is revised first. */
    g_assert_cmpint(memcmp(keys[0].tek.key, keys[1].tek.key, PROX_KEY_LEN), <, 0);
    g_assert_true(prox_store_import_batch(store, "srv", "b1.zip", T0, keys, 2, NULL, NULL, &error));
    gint64 id0 = visible_key_id(store, &keys[0]);
    save_two_windows(store, id0);

    /* The second update fails inside sqlite, after the first key was revoked. */
    sqlite3 *db = raw_open(f->path);
    raw_exec(db, "CREATE TRIGGER fail_revision BEFORE UPDATE ON diagnosis_keys"
                 " WHEN NEW.transmission_risk_level = 99 BEGIN SELECT RAISE(ABORT, 'boom'); END");
    sqlite3_close(db);
    ProxDiagnosisKey file[] = {make_revision(&keys[0], PROX_REPORT_REVOKED, 0, FALSE, 0),
                               make_revision(&keys[1], PROX_REPORT_CONFIRMED_TEST, 99, FALSE, 0)};
    gint64 b2 = 0;
    guint64 revised = 77;
    g_assert_true(prox_store_add_batch(store, "srv", "b2.zip", T0 + 60, &b2, &error));
    g_assert_false(prox_store_revise_diagnosis_keys(store, b2, file, 2, &revised, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_STORE);
    g_clear_error(&error);
    g_assert_cmpuint(revised, ==, 77);
    g_assert_false(prox_store_import_batch_revised(store, "srv", "b3.zip", T0 + 60, file, 2, 2,
                                                   NULL, 0, NULL, NULL, NULL, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_STORE);
    g_clear_error(&error);
    g_assert_true(key_is_visible(store, &keys[0]));
    g_assert_cmpuint(count_windows(store, id0), ==, 2);
    gboolean has = TRUE;
    g_assert_true(prox_store_has_batch(store, "srv", "b3.zip", &has, &error));
    g_assert_false(has);
    prox_store_close(store);
}

static void test_migrate_from_v3(Fixture *f, gconstpointer data)
{
    GError *error = NULL;
    g_assert_true(prox_store_migrate_to(f->path, 3, &error));
    g_assert_no_error(error);
    sqlite3 *db = raw_open(f->path);
    g_assert_cmpint(raw_int(db, "PRAGMA user_version"), ==, 3);
    g_assert_cmpint(raw_int(db, "SELECT count(*) FROM pragma_table_info('diagnosis_keys')"
                                " WHERE name = 'revised_batch_id'"),
                    ==, 0);
    /* Data as v3 wrote it: two keys (one stored revoked, from a list that carried it as a
     * plain key), a window each, a venue warning, a check-in. */
    raw_exec(db, "INSERT INTO settings VALUES ('tx_power', '-8');"
                 "INSERT INTO key_batches (source, name, imported_at, finished)"
                 " VALUES ('https://keys.example', 'batch-1.zip', 1700006400, 1);"
                 "INSERT INTO diagnosis_keys (batch_id, key_data, rolling_start, rolling_period,"
                 " transmission_risk_level, report_type, days_since_onset) VALUES"
                 " (1, x'ffeeddccbbaa99887766554433221100', 2833200, 144, 6, 1, 3),"
                 " (1, x'00112233445566778899aabbccddeeff', 2833200, 144, 0, 5, NULL);"
                 "INSERT INTO exposure_windows (key_id, day, start_time, end_time, report_type,"
                 " infectiousness, calibration_confidence, transmission_risk_level,"
                 " weighted_minutes, risk, scans) VALUES"
                 " (1, 1700006400, 1700010000, 1700011800, 1, 2, 1, 6, 15.5, 3.25, x''),"
                 " (2, 1700006400, 1700010000, 1700011800, 5, 2, 1, 0, 15.5, 0.0, x'');"
                 "INSERT INTO venue_warnings (batch_id, kind, subject, rolling_start,"
                 " rolling_period, start_time, end_time, transmission_risk_level)"
                 " VALUES (1, 2, zeroblob(32), 0, 0, 1700006400, 1700008200, 3);"
                 "INSERT INTO checkins (location_id, arrived, departed, planned_departure)"
                 " VALUES (zeroblob(32), 1700006400, 1700007000, 1700010000);");
    sqlite3_close(db);

    ProxStore *store = open_store(f->path, 0);
    g_autofree char *value = NULL;
    g_assert_true(prox_store_get_setting(store, "tx_power", &value, &error));
    g_assert_cmpstr(value, ==, "-8");
    g_assert_cmpuint(stored_key_count(store), ==, 2);
    Collected c;
    visible_keys(store, 0, &c);
    g_assert_cmpuint(c.keys->len, ==, 1);
    ProxDiagnosisKey *k = &g_array_index(c.keys, ProxDiagnosisKey, 0);
    g_assert_cmpuint(k->tek.key[0], ==, 0xff);
    g_assert_cmpint(k->transmission_risk_level, ==, 6);
    g_assert_cmpint(k->report_type, ==, PROX_REPORT_CONFIRMED_TEST);
    g_assert_true(k->has_days_since_onset);
    g_assert_cmpint(k->days_since_onset, ==, 3);
    ProxDiagnosisKey key = *k;
    collected_clear(&c);
    /* The live key's window is kept as it was; the revoked key's is gone. */
    g_autoptr(GArray) windows = NULL;
    g_assert_true(prox_store_load_exposure_windows(store, G_MININT64, &windows, &error));
    g_assert_cmpuint(windows->len, ==, 1);
    ProxExposureWindow *w = &g_array_index(windows, ProxExposureWindow, 0);
    g_assert_cmpint(w->key_id, ==, 1);
    g_assert_cmpfloat(w->weighted_minutes, ==, 15.5);
    g_assert_cmpfloat(w->risk, ==, 3.25);
    g_autoptr(GArray) warnings = load_warnings(store, 0, NULL);
    g_assert_cmpuint(warnings->len, ==, 1);
    g_autoptr(GArray) checkins = NULL;
    g_assert_true(prox_store_load_checkins(store, 0, &checkins, &error));
    g_assert_cmpuint(checkins->len, ==, 1);
    g_assert_cmpint(g_array_index(checkins, ProxCheckIn, 0).departed, ==, 1700007000);

    /* What v4 added works on the migrated store: revise, then revoke the migrated key. */
    ProxDiagnosisKey rev = make_revision(&key, PROX_REPORT_CONFIRMED_TEST, 7, FALSE, 0);
    guint64 revised = 0;
    g_assert_true(prox_store_import_batch_revised(store, "https://keys.example", "batch-2.zip", T0,
                                                  &rev, 1, 1, NULL, 0, NULL, NULL, &revised, NULL,
                                                  &error));
    g_assert_no_error(error);
    g_assert_cmpuint(revised, ==, 1);
    visible_keys(store, 0, &c);
    assert_key_equal(&g_array_index(c.keys, ProxDiagnosisKey, 0), &rev);
    collected_clear(&c);
    ProxDiagnosisKey gone = make_revision(&key, PROX_REPORT_REVOKED, 0, FALSE, 0);
    g_assert_true(prox_store_import_batch_revised(store, "https://keys.example", "batch-3.zip", T0,
                                                  &gone, 1, 1, NULL, 0, NULL, NULL, &revised, NULL,
                                                  &error));
    g_assert_cmpuint(revised, ==, 1);
    g_assert_false(key_is_visible(store, &key));
    g_assert_cmpuint(count_windows(store, 1), ==, 0);
    g_assert_true(prox_store_integrity_check(store, &error));
    prox_store_close(store);

    db = raw_open(f->path);
    g_assert_cmpint(raw_int(db, "PRAGMA user_version"), ==, 4);
    g_assert_cmpint(raw_int(db, "SELECT revised_batch_id FROM diagnosis_keys WHERE id = 1"), ==, 3);
    g_assert_cmpint(raw_int(db, "SELECT count(*) FROM pragma_foreign_key_check"), ==, 0);
    sqlite3_close(db);
    g_assert_false(prox_store_migrate_to(f->path, 3, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
}

/* ---- import speed (only with -m perf) ---- */

static double cpu_seconds(void)
{
    struct rusage ru;
    g_assert_cmpint(getrusage(RUSAGE_SELF, &ru), ==, 0);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Imports PROX_STORE_PERF_KEYS (default 1 000 000) random keys as one batch into a new
 * store opened with the daemon's defaults (synchronous FULL, 16 MiB cache), then as many
 * again into the same store (the unique index is then twice the size), and reports both
 * times: tests/test-store -m perf -p /store/perf/import (in a build directory). */
static void test_perf_import(Fixture *f, gconstpointer data)
{
    if (!g_test_perf()) {
        g_test_skip("a timing: run with -m perf");
        return;
    }
    const char *env = g_getenv("PROX_STORE_PERF_KEYS");
    guint n = env != NULL ? (guint)g_ascii_strtoull(env, NULL, 10) : 1000000;
    g_assert_cmpuint(n, >, 0);
    g_autofree ProxDiagnosisKey *keys = g_new0(ProxDiagnosisKey, n);
    GRand *rand = g_rand_new_with_seed(1234);
    uint32_t rs = prox_interval_number(T0) - 144 * 14;
    for (guint i = 0; i < n; i++) {
        for (guint j = 0; j < PROX_KEY_LEN; j += 4) {
            guint32 r = g_rand_int(rand);
            memcpy(keys[i].tek.key + j, &r, 4);
        }
        keys[i].tek.rolling_start = rs + 144 * (i % 14);
        keys[i].tek.rolling_period = 144;
        keys[i].report_type = PROX_REPORT_CONFIRMED_TEST;
        keys[i].transmission_risk_level = 4;
    }
    GError *error = NULL;
    ProxStore *store = prox_store_open(f->path, NULL, &error);
    g_assert_no_error(error);
    for (guint round = 0; round < 2; round++) {
        if (round == 1) {
            for (guint i = 0; i < n; i++)
                keys[i].tek.key[0] ^= 0x5a; /* new keys, same distribution */
        }
        char name[16];
        g_snprintf(name, sizeof name, "perf-%u.zip", round);
        guint64 added = 0;
        double cpu = cpu_seconds();
        gint64 t = g_get_monotonic_time();
        g_assert_true(
            prox_store_import_batch(store, "perf", name, T0, keys, n, NULL, &added, &error));
        double seconds = (g_get_monotonic_time() - t) / 1e6;
        cpu = cpu_seconds() - cpu;
        g_assert_no_error(error);
        g_assert_cmpuint(added, ==, n);
        g_test_minimized_result(seconds, "import %u keys into a store of %u: %.2f s", n, round * n,
                                seconds);
        g_printerr("import %u keys into a store of %u: %.2f s wall, %.2f s cpu (user+sys)\n", n,
                   round * n, seconds, cpu);
    }
    prox_store_close(store);
    g_rand_free(rand);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add("/store/" path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
    ADD("open/mode", test_open_mode);
    ADD("open/errors", test_open_errors);
    ADD("open/newer-schema", test_open_newer_schema);
    ADD("open/migrate-from-v1", test_migrate_from_v1);
    ADD("sightings/aggregate", test_sightings_aggregate);
    ADD("sightings/rounding", test_sightings_rounding);
    ADD("sightings/random-merges", test_sightings_random_merges);
    ADD("sightings/unknown-scan", test_sightings_unknown_scan);
    ADD("sightings/scan-instances", test_scan_instances);
    ADD("sightings/counts", test_counts);
    ADD("teks", test_teks);
    ADD("teks-cut", test_teks_cut);
    ADD("keys/dedup-and-batches", test_diagnosis_keys);
    ADD("keys/many", test_diagnosis_keys_many);
    ADD("windows", test_exposure_windows);
    ADD("key-values", test_key_values);
    ADD("retention/edges", test_retention_edges);
    ADD("retention/longer", test_retention_longer);
    ADD("retention/automatic", test_retention_automatic);
    ADD("open/migrate-from-v2", test_migrate_from_v2);
    ADD("venues/warnings", test_venue_warnings);
    ADD("venues/checkins", test_checkins);
    ADD("venues/exposures", test_venue_exposures);
    ADD("venues/trip-log", test_trip_log);
    ADD("keys/revise-metadata", test_keys_revise_metadata);
    ADD("keys/revoke", test_keys_revoke);
    ADD("keys/revise-older-ignored", test_keys_revise_older_ignored);
    ADD("keys/revoke-unknown", test_keys_revoke_unknown);
    ADD("keys/revise-atomic", test_keys_revise_atomic);
    ADD("open/migrate-from-v3", test_migrate_from_v3);
    ADD("perf/import", test_perf_import);
#undef ADD
    return g_test_run();
}
