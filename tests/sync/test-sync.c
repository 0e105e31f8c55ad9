/* test-sync.c - key-list sync against real signed lists: prox-authority publishes into a
 * temporary directory, served over HTTP by a static file server with ETags and injectable
 * faults (sync-test-util.c) and read through file://. The device store has sightings of one
 * published key at close range, so a sync that imports it must raise the risk.
 *
 * Nothing waits for time: every step waits for the sync's own completion callback on the
 * main context, which also runs the file server.
 */
#include "proxd-manager.h"
#include "proxd-sync.h"
#include "sync-test-util.h"

#include <string.h>

/* The device's clock: an hour after the authority's last publication below. */
#define DEVICE_NOW (TEST_NOW + 3600)
#define YESTERDAY_10H (TEST_NOW - TEST_NOW % DAY - DAY + 10 * 3600)

typedef struct {
    char *dir;
    char *db;        /* authority database */
    char *sec;       /* signing key */
    char *pub;       /* pinned public key */
    char *out;       /* publish directory */
    char *device_db; /* the device store */
    ProxStore *store;
    FileServer *server;
    gint64 publish_now;
    GPtrArray *files; /* names, in publication order */
    GPtrArray *keys;  /* GArray of ProxTek per published file */
    ProxTek close_tek;
    gint64 device_now;
} Fixture;

static void publish(Fixture *f, const ProxTek *teks, guint n)
{
    g_autofree char *json = test_keys_json(teks, n);
    g_autofree char *path = g_build_filename(f->dir, "keys.json", NULL);
    g_assert_true(g_file_set_contents(path, json, -1, NULL));
    g_autofree char *err = NULL;
    g_assert_cmpint(
        test_authority(NULL, &err, "import-keys", "--db", f->db, "--now", TEST_NOW_ARG, path, NULL),
        ==, 0);
    g_autofree char *now = g_strdup_printf("@%" G_GINT64_FORMAT, f->publish_now);
    f->publish_now += 60;
    g_free(g_steal_pointer(&err));
    g_assert_cmpint(test_authority(NULL, &err, "publish", "--db", f->db, "--key", f->sec, "--out",
                                   f->out, "--min-keys", "0", "--padding-jitter", "0", "--embargo",
                                   "0", "--now", now, NULL),
                    ==, 0);
    g_autofree char *index_path = g_build_filename(f->out, "index.txt", NULL);
    g_autofree char *index = NULL;
    g_assert_true(g_file_get_contents(index_path, &index, NULL, NULL));
    g_auto(GStrv) lines = g_strsplit(g_strstrip(index), "\n", -1);
    guint n_lines = g_strv_length(lines);
    g_assert_cmpuint(n_lines, ==, f->files->len + 1);
    g_ptr_array_add(f->files, g_strdup(lines[n_lines - 1]));
    GArray *k = g_array_new(FALSE, FALSE, sizeof(ProxTek));
    g_array_append_vals(k, teks, n);
    g_ptr_array_add(f->keys, k);
}

/* Two fresh keys of the days before today (the first file also gets the close key). */
static void publish_random(Fixture *f, const ProxTek *extra)
{
    ProxTek teks[3];
    guint n = 0;
    if (extra != NULL)
        teks[n++] = *extra;
    teks[n++] = test_tek_for_day(TEST_NOW - 2 * DAY);
    teks[n++] = test_tek_for_day(TEST_NOW - 3 * DAY);
    publish(f, teks, n);
}

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->dir = test_tmpdir_new();
    f->db = g_build_filename(f->dir, "authority.db", NULL);
    g_autofree char *keydir = g_build_filename(f->dir, "authority-keys", NULL);
    f->sec = g_build_filename(keydir, "310-v1.sec", NULL);
    f->pub = g_build_filename(keydir, "310-v1.pub", NULL);
    f->out = g_build_filename(f->dir, "pub", NULL);
    f->device_db = g_build_filename(f->dir, "device.db", NULL);
    g_assert_cmpint(test_authority(NULL, NULL, "init-key", "--key-id", "310", "--key-version", "v1",
                                   "--dir", keydir, NULL),
                    ==, 0);
    f->files = g_ptr_array_new_with_free_func(g_free);
    f->keys = g_ptr_array_new_with_free_func((GDestroyNotify)g_array_unref);
    f->publish_now = TEST_NOW - 600;
    f->device_now = DEVICE_NOW;

    f->close_tek = test_tek_for_day(YESTERDAY_10H);
    publish_random(f, &f->close_tek);
    publish_random(f, NULL);
    publish_random(f, NULL);

    f->store = test_store_open(f->device_db);
    test_record(f->store, YESTERDAY_10H, 20, &f->close_tek, -55);
    f->server = file_server_new(f->out);
    log_capture_clear();
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    file_server_free(f->server);
    prox_store_close(f->store);
    test_tmpdir_free(f->dir);
    g_free(f->db);
    g_free(f->sec);
    g_free(f->pub);
    g_free(f->out);
    g_free(f->device_db);
    g_ptr_array_unref(f->files);
    g_ptr_array_unref(f->keys);
}

static gint64 fixture_clock(gpointer user_data)
{
    return ((Fixture *)user_data)->device_now;
}

static ProxdSync *make_sync_with(Fixture *f, const char *url, const ProxdSyncOptions *extra)
{
    ProxdSyncOptions opts = extra != NULL ? *extra : (ProxdSyncOptions){0};
    opts.url = url;
    opts.db_path = f->device_db;
    opts.store_options.fast_sync = TRUE;
    opts.detect_threads = 2;
    const char *entries[] = {f->pub, NULL};
    g_autoptr(GError) error = NULL;
    ProxExportKeyring *keyring = proxd_sync_keyring_load(entries, &error);
    g_assert_no_error(error);
    ProxdSync *sync = proxd_sync_new(&opts, keyring, &error);
    g_assert_no_error(error);
    proxd_sync_set_clock(sync, fixture_clock, f);
    proxd_sync_set_random(sync, test_random, NULL);
    return sync;
}

static char *http_index(Fixture *f)
{
    return g_strdup_printf("%s/index.txt", file_server_url(f->server));
}

static ProxdSync *make_sync(Fixture *f)
{
    g_autofree char *url = http_index(f);
    return make_sync_with(f, url, NULL);
}

typedef struct {
    gboolean done;
    gboolean complete;
    ProxdSyncResult *result;
    GError *error;
} Wait;

static void on_sync_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
    Wait *w = user_data;
    w->complete = proxd_sync_run_finish(PROXD_SYNC(source), res, &w->result, &w->error);
    w->done = TRUE;
}

/* Runs a sync to its end; returns its result (complete or not). */
static ProxdSyncResult *run_sync(ProxdSync *sync, ProxdSyncRunFlags flags, gboolean *complete,
                                 GError **error)
{
    Wait w = {0};
    proxd_sync_run_async(sync, flags, NULL, on_sync_done, &w);
    test_wait_flag(&w.done);
    g_assert_false(proxd_sync_is_running(sync));
    g_assert_nonnull(w.result);
    g_assert_cmpint(w.complete, ==, w.result->complete);
    g_assert_true(w.complete == (w.error == NULL));
    if (complete != NULL)
        *complete = w.complete;
    if (error != NULL)
        *error = w.error;
    else
        g_clear_error(&w.error);
    return w.result;
}

static ProxdSyncResult *run_ok(ProxdSync *sync)
{
    g_autoptr(GError) error = NULL;
    gboolean complete = FALSE;
    ProxdSyncResult *r = run_sync(sync, PROXD_SYNC_RUN_DEFAULT, &complete, &error);
    g_assert_no_error(error);
    g_assert_true(complete);
    return r;
}

static gboolean imported(Fixture *f, ProxdSync *sync, guint file)
{
    g_autoptr(GError) error = NULL;
    gboolean has = FALSE;
    g_assert_true(prox_store_has_batch(f->store, proxd_sync_get_source(sync), f->files->pdata[file],
                                       &has, &error));
    return has;
}

static guint64 stored_keys(Fixture *f)
{
    g_autoptr(GError) error = NULL;
    guint64 n = 0;
    g_assert_true(prox_store_count_diagnosis_keys(f->store, &n, &error));
    return n;
}

static guint keys_in(Fixture *f, guint file)
{
    return ((GArray *)f->keys->pdata[file])->len;
}

static char *zip_path(Fixture *f, guint file)
{
    return g_build_filename(f->out, f->files->pdata[file], NULL);
}

static char *url_path(Fixture *f, guint file)
{
    return g_strconcat("/", (const char *)f->files->pdata[file], NULL);
}

static void write_index(Fixture *f, const char *const *names)
{
    g_autoptr(GString) s = g_string_new(NULL);
    for (guint i = 0; names[i] != NULL; i++)
        g_string_append_printf(s, "%s\n", names[i]);
    g_autofree char *path = g_build_filename(f->out, "index.txt", NULL);
    g_assert_true(g_file_set_contents(path, s->str, -1, NULL));
}

static gint64 last_sync_state(Fixture *f)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *v = NULL;
    g_assert_true(prox_store_get_sync_state(f->store, PROXD_SYNC_LAST_SYNC_KEY, &v, &error));
    if (v == NULL)
        return 0;
    return g_ascii_strtoll(v, NULL, 10);
}

/* ---- progress ---- */

typedef struct {
    guint phase, done, total;
    guint64 bytes;
} Progress;

static void on_progress(ProxdSync *sync, guint phase, guint done, guint total, guint64 bytes,
                        gpointer user_data)
{
    Progress p = {phase, done, total, bytes};
    g_array_append_val((GArray *)user_data, p);
}

static void on_finished(ProxdSync *sync, ProxdSyncResult *result, gpointer user_data)
{
    g_assert_nonnull(result);
    (*(guint *)user_data)++;
}

/* ---- tests ---- */

/* Everything new is imported and matched: high risk, reported once; the second sync is a
 * 304 that downloads nothing; a new file is then fetched alone. */
static void test_http_import(Fixture *f, gconstpointer data)
{
    g_autoptr(ProxdSync) sync = make_sync(f);
    g_assert_cmpstr(PROXD_SYNC_LAST_SYNC_KEY, ==, PROXD_SYNC_STATE_LAST_SYNC);
    g_autoptr(GArray) progress = g_array_new(FALSE, FALSE, sizeof(Progress));
    g_signal_connect(sync, "progress", G_CALLBACK(on_progress), progress);
    guint finished = 0;
    g_signal_connect(sync, "finished", G_CALLBACK(on_finished), &finished);

    g_autoptr(ProxdSyncResult) r = run_ok(sync);
    g_assert_cmpuint(finished, ==, 1);
    g_assert_false(r->not_modified);
    g_assert_cmpuint(r->files_listed, ==, 3);
    g_assert_cmpuint(r->files_pending, ==, 3);
    g_assert_cmpuint(r->files_imported, ==, 3);
    g_assert_cmpuint(r->files_failed, ==, 0);
    g_assert_cmpuint(r->keys_read, ==, 7);
    g_assert_cmpuint(r->keys_added, ==, 7);
    g_assert_cmpuint(r->bytes, >, 0);
    g_assert_cmpint(r->started, ==, DEVICE_NOW);
    g_assert_true(r->detected);
    g_assert_cmpuint(r->detect.keys, ==, 7);
    g_assert_cmpint(r->detect.summary.level, ==, PROX_RISK_LEVEL_HIGH);
    g_assert_true(r->detect.level_rose);
    g_assert_cmpuint(stored_keys(f), ==, 7);
    g_assert_cmpint(last_sync_state(f), ==, DEVICE_NOW);
    g_assert_cmpuint(file_server_count(f->server, "/index.txt", 200), ==, 1);
    g_assert_cmpuint(file_server_count_suffix(f->server, ".zip"), ==, 3);
    /* Scheduled for the interval minus jitter. */
    g_assert_cmpint(proxd_sync_get_next_attempt(sync), >,
                    DEVICE_NOW + PROXD_SYNC_DEFAULT_INTERVAL * (1 - PROXD_SYNC_DEFAULT_JITTER) - 1);
    g_assert_cmpint(proxd_sync_get_next_attempt(sync), <=,
                    DEVICE_NOW + PROXD_SYNC_DEFAULT_INTERVAL);

    /* Progress: index, files 0..3 of 3, done; bytes never go down. */
    g_assert_cmpuint(progress->len, >=, 5);
    const Progress *first = &g_array_index(progress, Progress, 0);
    const Progress *last = &g_array_index(progress, Progress, progress->len - 1);
    g_assert_cmpuint(first->phase, ==, PROXD_SYNC_PHASE_INDEX);
    g_assert_cmpuint(last->phase, ==, PROXD_SYNC_PHASE_DONE);
    g_assert_cmpuint(last->done, ==, 3);
    g_assert_cmpuint(last->total, ==, 3);
    g_assert_cmpuint(last->bytes, ==, r->bytes);
    gboolean saw_detect = FALSE;
    for (guint i = 1; i < progress->len; i++) {
        const Progress *a = &g_array_index(progress, Progress, i - 1);
        const Progress *b = &g_array_index(progress, Progress, i);
        g_assert_cmpuint(b->bytes, >=, a->bytes);
        g_assert_cmpuint(b->done, >=, a->done);
        saw_detect |= b->phase == PROXD_SYNC_PHASE_DETECT;
    }
    g_assert_true(saw_detect);

    /* Again: 304, nothing downloaded, nothing to detect, no second alert. */
    file_server_reset_counts(f->server);
    f->device_now += 60;
    g_autoptr(ProxdSyncResult) again = run_ok(sync);
    g_assert_true(again->not_modified);
    g_assert_cmpuint(again->files_listed, ==, 3);
    g_assert_cmpuint(again->files_pending, ==, 0);
    g_assert_cmpuint(again->keys_added, ==, 0);
    g_assert_false(again->detected);
    g_assert_cmpuint(file_server_count(f->server, "/index.txt", 304), ==, 1);
    g_assert_cmpuint(file_server_count_suffix(f->server, ".zip"), ==, 0);
    g_assert_cmpint(last_sync_state(f), ==, DEVICE_NOW + 60);

    /* A new publication: only its file is fetched; detection runs, no new rise. */
    publish_random(f, NULL);
    file_server_reset_counts(f->server);
    g_autoptr(ProxdSyncResult) more = run_ok(sync);
    g_assert_false(more->not_modified);
    g_assert_cmpuint(more->files_pending, ==, 1);
    g_assert_cmpuint(more->keys_added, ==, 2);
    g_assert_cmpuint(file_server_count(f->server, "/index.txt", 200), ==, 1);
    g_assert_cmpuint(file_server_count_suffix(f->server, ".zip"), ==, 1);
    g_assert_true(more->detected);
    g_assert_false(more->detect.level_rose);
    g_assert_cmpint(more->detect.summary.level, ==, PROX_RISK_LEVEL_HIGH);
}

/* The same over file:// (air-gapped copy of the publish directory), given as the directory. */
static void test_file_url(Fixture *f, gconstpointer data)
{
    g_autofree char *dir_uri = g_filename_to_uri(f->out, NULL, NULL);
    g_autofree char *url = g_strconcat(dir_uri, "/", NULL);
    g_autofree char *index = g_strconcat(dir_uri, "/index.txt", NULL);
    g_autoptr(ProxdSync) sync = make_sync_with(f, url, NULL);
    g_assert_cmpstr(proxd_sync_get_source(sync), ==, index);

    g_autoptr(ProxdSyncResult) r = run_ok(sync);
    g_assert_cmpuint(r->files_imported, ==, 3);
    g_assert_cmpuint(r->keys_added, ==, 7);
    g_assert_true(r->detect.level_rose);
    g_assert_cmpuint(file_server_count_suffix(f->server, ""), ==, 0); /* not over HTTP */

    g_autoptr(ProxdSyncResult) again = run_ok(sync);
    g_assert_false(again->not_modified); /* no ETag for files: the index is read again */
    g_assert_cmpuint(again->files_pending, ==, 0);
    g_assert_cmpuint(again->keys_added, ==, 0);
    g_assert_false(again->detected);
    g_assert_cmpuint(stored_keys(f), ==, 7);
}

/* One byte flipped in the middle file: nothing from it, the others imported, the reason
 * logged; once the file is intact again the next sync (a 304) retries it. */
static void test_tampered(Fixture *f, gconstpointer data)
{
    g_autofree char *path = zip_path(f, 1);
    g_autofree char *original = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(path, &original, &len, NULL));
    g_autofree char *tampered = g_memdup2(original, len);
    tampered[len / 2] ^= 0x01;
    g_assert_true(g_file_set_contents(path, tampered, (gssize)len, NULL));

    g_autoptr(ProxdSync) sync = make_sync(f);
    g_autoptr(GError) error = NULL;
    gboolean complete = TRUE;
    g_autoptr(ProxdSyncResult) r = run_sync(sync, 0, &complete, &error);
    g_assert_false(complete);
    g_assert_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INCOMPLETE);
    g_assert_cmpuint(r->files_imported, ==, 2);
    g_assert_cmpuint(r->files_failed, ==, 1);
    const ProxdSyncFailure *fail = r->failures->pdata[0];
    g_assert_cmpstr(fail->name, ==, f->files->pdata[1]);
    g_assert_nonnull(strstr(fail->reason, "verification failed"));
    g_assert_true(imported(f, sync, 0));
    g_assert_false(imported(f, sync, 1));
    g_assert_true(imported(f, sync, 2));
    g_assert_cmpuint(stored_keys(f), ==, 7 - keys_in(f, 1));
    g_assert_true(
        log_capture_contains(f->files->pdata[1], "verification failed", "nothing imported", NULL));
    g_assert_true(r->detected); /* what did arrive is matched */
    g_assert_true(r->detect.level_rose);
    g_assert_cmpuint(proxd_sync_get_failures(sync), ==, 1);

    g_assert_true(g_file_set_contents(path, original, (gssize)len, NULL));
    file_server_reset_counts(f->server);
    g_autoptr(ProxdSyncResult) again = run_ok(sync);
    g_assert_true(again->not_modified);
    g_assert_cmpuint(again->files_pending, ==, 1);
    g_assert_cmpuint(again->files_imported, ==, 1);
    g_assert_cmpuint(again->keys_added, ==, keys_in(f, 1));
    g_autofree char *file1 = url_path(f, 1);
    g_assert_cmpuint(file_server_count(f->server, file1, 200), ==, 1);
    g_assert_cmpuint(stored_keys(f), ==, 7);
    g_assert_cmpuint(proxd_sync_get_failures(sync), ==, 0);
}

/* A well-formed list signed by a key that is not the pinned one (same key id and version). */
static void test_wrong_signer(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *sec = g_build_filename(f->dir, "impostor.sec", NULL);
    g_autofree char *pub = g_build_filename(f->dir, "impostor.pub", NULL);
    g_assert_true(prox_export_ed25519_keygen("310", "v1", sec, pub, &error));
    g_autoptr(ProxExportSigner) signer = prox_export_signer_load_ed25519(sec, &error);
    g_assert_no_error(error);
    ProxDiagnosisKey keys[2] = {0};
    for (guint i = 0; i < 2; i++) {
        keys[i].tek = test_tek_for_day(TEST_NOW - DAY);
        keys[i].report_type = PROX_REPORT_CONFIRMED_TEST;
    }
    ProxExportMeta meta = {TEST_NOW - 2 * DAY, TEST_NOW, "", 1, 1};
    const char *name = "1599999999-99999999-0001.zip";
    g_autofree char *path = g_build_filename(f->out, name, NULL);
    g_assert_true(prox_export_write(path, &meta, keys, 2, signer, &error));
    g_assert_no_error(error);
    const char *names[] = {f->files->pdata[0], f->files->pdata[1], f->files->pdata[2], name, NULL};
    write_index(f, names);

    g_autoptr(ProxdSync) sync = make_sync(f);
    gboolean complete = TRUE;
    g_autoptr(ProxdSyncResult) r = run_sync(sync, 0, &complete, NULL);
    g_assert_false(complete);
    g_assert_cmpuint(r->files_imported, ==, 3);
    g_assert_cmpuint(r->files_failed, ==, 1);
    const ProxdSyncFailure *fail = r->failures->pdata[0];
    g_assert_cmpstr(fail->name, ==, name);
    g_assert_nonnull(strstr(fail->reason, "verification failed"));
    g_assert_cmpuint(stored_keys(f), ==, 7);
    g_assert_true(log_capture_contains(name, "verification failed", NULL));
}

/* A later list that revokes the close key (GAEN REVOKED): the key stops matching, its
 * exposure windows go, and the risk falls back to low. */
static void test_revoked(Fixture *f, gconstpointer data)
{
    g_autoptr(ProxdSync) sync = make_sync(f);
    g_autoptr(ProxdSyncResult) first = run_ok(sync);
    g_assert_cmpint(first->detect.summary.level, ==, PROX_RISK_LEVEL_HIGH);

    g_autoptr(GError) error = NULL;
    g_autoptr(ProxExportSigner) signer = prox_export_signer_load_ed25519(f->sec, &error);
    g_assert_no_error(error);
    ProxDiagnosisKey revoked = {.tek = f->close_tek, .report_type = PROX_REPORT_REVOKED};
    ProxExportMeta meta = {TEST_NOW - 2 * DAY, TEST_NOW, "", 1, 1};
    const char *name = "9999999999-00000000-0001.zip";
    g_autofree char *path = g_build_filename(f->out, name, NULL);
    g_assert_true(prox_export_write(path, &meta, &revoked, 1, signer, &error));
    g_assert_no_error(error);
    const char *names[] = {f->files->pdata[0], f->files->pdata[1], f->files->pdata[2], name, NULL};
    write_index(f, names);

    f->device_now += 60;
    g_autoptr(ProxdSyncResult) r = run_ok(sync);
    g_assert_cmpuint(r->files_imported, ==, 1);
    g_assert_cmpuint(r->keys_added, ==, 0);
    g_assert_true(r->detected);
    g_assert_cmpint(r->detect.summary.level, ==, PROX_RISK_LEVEL_LOW);
    g_autoptr(GArray) windows = NULL;
    g_assert_true(prox_store_load_exposure_windows(f->store, 0, &windows, &error));
    g_assert_cmpuint(windows->len, ==, 0);
}

/* A download cut short, with or without a Content-Length: nothing imported from it, the
 * next sync retries it. */
static void test_truncated(Fixture *f, gconstpointer data)
{
    FileServerFault fault = GPOINTER_TO_INT(data);
    g_autofree char *file1 = url_path(f, 1);
    file_server_set_fault(f->server, file1, fault);
    g_autoptr(ProxdSync) sync = make_sync(f);
    g_autoptr(GError) error = NULL;
    gboolean complete = TRUE;
    g_autoptr(ProxdSyncResult) r = run_sync(sync, 0, &complete, &error);
    g_assert_false(complete);
    g_assert_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INCOMPLETE);
    g_assert_cmpuint(r->files_imported, ==, 2);
    g_assert_cmpuint(r->files_failed, ==, 1);
    const ProxdSyncFailure *fail = r->failures->pdata[0];
    g_assert_cmpstr(fail->name, ==, f->files->pdata[1]);
    if (fault == FAULT_TRUNCATE) /* curl sees the missing bytes */
        g_assert_nonnull(strstr(fail->reason, "curl error 18"));
    else /* the connection just ended: the zip is incomplete */
        g_assert_nonnull(strstr(fail->reason, "verification failed"));
    g_assert_false(imported(f, sync, 1));
    g_assert_cmpuint(stored_keys(f), ==, 7 - keys_in(f, 1));
    g_assert_true(log_capture_contains(f->files->pdata[1], fail->reason, NULL));

    file_server_set_fault(f->server, file1, FAULT_NONE);
    g_autoptr(ProxdSyncResult) again = run_ok(sync);
    g_assert_cmpuint(again->files_imported, ==, 1);
    g_assert_true(imported(f, sync, 1));
    g_assert_cmpuint(stored_keys(f), ==, 7);
}

static void assert_refused(ProxdSync *sync, gint code)
{
    g_autoptr(GError) error = NULL;
    gboolean complete = TRUE;
    g_autoptr(ProxdSyncResult) r = run_sync(sync, 0, &complete, &error);
    g_assert_false(complete);
    g_assert_error(error, PROXD_SYNC_ERROR, code);
    g_assert_cmpuint(r->files_pending, ==, 0);
    g_assert_cmpuint(r->files_imported, ==, 0);
    g_assert_cmpuint(r->keys_added, ==, 0);
}

/* Indexes that go backwards are refused and change nothing; the oldest files may expire. */
static void test_rollback(Fixture *f, gconstpointer data)
{
    g_autoptr(ProxdSync) sync = make_sync(f);
    g_autoptr(ProxdSyncResult) r = run_ok(sync);
    g_assert_cmpuint(r->files_imported, ==, 3);
    const char *f0 = f->files->pdata[0], *f1 = f->files->pdata[1], *f2 = f->files->pdata[2];

    /* A stale copy without the newest file. */
    const char *stale[] = {f0, f1, NULL};
    write_index(f, stale);
    assert_refused(sync, PROXD_SYNC_ERROR_ROLLBACK);
    g_assert_true(log_capture_contains("went backwards", f2, NULL));

    /* A file missing from the middle. */
    const char *hole[] = {f0, f2, NULL};
    write_index(f, hole);
    assert_refused(sync, PROXD_SYNC_ERROR_ROLLBACK);

    /* A correctly signed file that appears between two files already listed. */
    g_autofree char *inserted = g_strdup(f1);
    inserted[strlen(inserted) - 4] = '\0';
    g_autofree char *inserted_name = g_strconcat(inserted, "a.zip", NULL);
    g_autofree char *src = zip_path(f, 1);
    g_autofree char *dst = g_build_filename(f->out, inserted_name, NULL);
    g_autofree char *bytes = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(src, &bytes, &len, NULL));
    g_assert_true(g_file_set_contents(dst, bytes, (gssize)len, NULL));
    const char *sneaked[] = {f0, f1, inserted_name, f2, NULL};
    write_index(f, sneaked);
    file_server_reset_counts(f->server);
    assert_refused(sync, PROXD_SYNC_ERROR_ROLLBACK);
    g_assert_cmpuint(file_server_count_suffix(f->server, ".zip"), ==, 0);
    gboolean has = TRUE;
    g_assert_true(
        prox_store_has_batch(f->store, proxd_sync_get_source(sync), inserted_name, &has, NULL));
    g_assert_false(has);

    /* Names that are not plain relative paths. */
    const char *up[] = {f0, f1, f2, "../../etc/passwd.zip", NULL};
    write_index(f, up);
    assert_refused(sync, PROXD_SYNC_ERROR_INDEX);
    const char *absolute[] = {"http://evil.example/x.zip", NULL};
    write_index(f, absolute);
    assert_refused(sync, PROXD_SYNC_ERROR_INDEX);
    const char *unsorted[] = {f1, f0, f2, NULL};
    write_index(f, unsorted);
    assert_refused(sync, PROXD_SYNC_ERROR_INDEX);

    /* None of that changed the state: the original index is still "not modified". */
    const char *original[] = {f0, f1, f2, NULL};
    write_index(f, original);
    g_autoptr(ProxdSyncResult) same = run_ok(sync);
    g_assert_true(same->not_modified);

    /* The oldest file expiring is fine; it coming back afterwards is not. */
    const char *expired[] = {f1, f2, NULL};
    write_index(f, expired);
    g_autoptr(ProxdSyncResult) shorter = run_ok(sync);
    g_assert_false(shorter->not_modified);
    g_assert_cmpuint(shorter->files_listed, ==, 2);
    write_index(f, original);
    assert_refused(sync, PROXD_SYNC_ERROR_ROLLBACK);
}

/* An index naming a file the server does not have: that file fails, the rest is imported. */
static void test_missing_file(Fixture *f, gconstpointer data)
{
    const char *names[] = {f->files->pdata[0], f->files->pdata[1], f->files->pdata[2],
                           "1599999999-99999999-0001.zip", NULL};
    write_index(f, names);
    g_autoptr(ProxdSync) sync = make_sync(f);
    gboolean complete = TRUE;
    g_autoptr(ProxdSyncResult) r = run_sync(sync, 0, &complete, NULL);
    g_assert_false(complete);
    g_assert_cmpuint(r->files_imported, ==, 3);
    g_assert_cmpuint(r->files_failed, ==, 1);
    g_assert_cmpstr(((ProxdSyncFailure *)r->failures->pdata[0])->reason, ==, "HTTP status 404");
    g_assert_cmpuint(stored_keys(f), ==, 7);
}

/* The server dies while sending the second file: the first stays imported and is matched,
 * the run stops, and the next run after the server is back imports the rest. */
static void test_server_down(Fixture *f, gconstpointer data)
{
    g_autofree char *file1 = url_path(f, 1);
    file_server_set_fault(f->server, file1, FAULT_DIE);
    ProxdSyncOptions opts = {.retry_min = 60, .retry_max = 3600};
    g_autofree char *url = http_index(f);
    g_autoptr(ProxdSync) sync = make_sync_with(f, url, &opts);
    g_autoptr(GError) error = NULL;
    gboolean complete = TRUE;
    g_autoptr(ProxdSyncResult) r = run_sync(sync, 0, &complete, &error);
    g_assert_false(complete);
    g_assert_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_NETWORK);
    g_assert_cmpuint(r->files_pending, ==, 3);
    g_assert_cmpuint(r->files_imported, ==, 1);
    g_assert_cmpuint(r->files_failed, ==, 2); /* the cut file, and the one that found no server */
    g_assert_true(imported(f, sync, 0));
    g_assert_false(imported(f, sync, 1));
    g_assert_false(imported(f, sync, 2));
    g_assert_cmpuint(stored_keys(f), ==, keys_in(f, 0));
    g_assert_true(log_capture_contains("stopped", NULL));
    g_assert_true(r->detected);
    g_assert_true(r->detect.level_rose);
    g_assert_cmpint(last_sync_state(f), ==, 0);
    /* Retried after 30..60 s. */
    g_assert_cmpuint(proxd_sync_get_failures(sync), ==, 1);
    g_assert_cmpint(proxd_sync_get_next_attempt(sync), >=, DEVICE_NOW + 30);
    g_assert_cmpint(proxd_sync_get_next_attempt(sync), <=, DEVICE_NOW + 60);

    file_server_set_fault(f->server, file1, FAULT_NONE);
    file_server_restart(f->server);
    f->device_now += 60;
    g_autoptr(ProxdSyncResult) again = run_ok(sync);
    g_assert_true(again->not_modified);
    g_assert_cmpuint(again->files_imported, ==, 2);
    g_assert_cmpuint(stored_keys(f), ==, 7);
    g_assert_false(again->detect.level_rose); /* already reported */
    g_assert_cmpint(last_sync_state(f), ==, DEVICE_NOW + 60);
}

/* Size caps: on the index (nothing happens) and on files (each fails, nothing imported). */
static void test_size_caps(Fixture *f, gconstpointer data)
{
    g_autofree char *url = http_index(f);
    gboolean complete = TRUE;
    ProxdSyncOptions small_index = {.max_index_bytes = 16};
    g_autoptr(ProxdSync) sync1 = make_sync_with(f, url, &small_index);
    g_autoptr(GError) error = NULL;
    g_autoptr(ProxdSyncResult) r1 = run_sync(sync1, 0, &complete, &error);
    g_assert_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_TOO_LARGE);
    g_assert_cmpuint(r1->files_pending, ==, 0);
    g_assert_cmpuint(file_server_count_suffix(f->server, ".zip"), ==, 0);

    ProxdSyncOptions small_files = {.max_file_bytes = 64};
    g_autoptr(ProxdSync) sync = make_sync_with(f, url, &small_files);
    g_autoptr(ProxdSyncResult) r = run_sync(sync, 0, &complete, NULL);
    g_assert_false(complete);
    g_assert_cmpuint(r->files_failed, ==, 3);
    g_assert_nonnull(strstr(((ProxdSyncFailure *)r->failures->pdata[0])->reason, "limit of 64"));
    g_assert_cmpuint(stored_keys(f), ==, 0);
}

static void fill_byte(void *buf, size_t len, void *user_data)
{
    memset(buf, *(guint8 *)user_data, len);
}

/* Backoff doubles from retry_min to retry_max with equal jitter, Retry-After is honoured,
 * success schedules the interval minus jitter. Time and randomness are injected. */
static void test_schedule(Fixture *f, gconstpointer data)
{
    g_assert_cmpint(proxd_sync_backoff(60, 600, 1, 1.0), ==, 60);
    g_assert_cmpint(proxd_sync_backoff(60, 600, 1, 0.0), ==, 30);
    g_assert_cmpint(proxd_sync_backoff(60, 600, 2, 1.0), ==, 120);
    g_assert_cmpint(proxd_sync_backoff(60, 600, 4, 0.5), ==, 360);
    g_assert_cmpint(proxd_sync_backoff(60, 600, 5, 1.0), ==, 600);
    g_assert_cmpint(proxd_sync_backoff(60, 600, 1000, 1.0), ==, 600);

    ProxdSyncOptions opts = {.retry_min = 60, .retry_max = 600, .interval = 3600, .jitter = 0.5};
    g_autofree char *missing = g_build_filename(f->dir, "nowhere", NULL);
    g_autofree char *missing_uri = g_filename_to_uri(missing, NULL, NULL);
    g_autofree char *url = g_strconcat(missing_uri, "/index.txt", NULL);
    g_autoptr(ProxdSync) sync = make_sync_with(f, url, &opts);
    guint8 byte = 0xff;
    proxd_sync_set_random(sync, fill_byte, &byte);
    g_assert_cmpint(proxd_sync_get_next_attempt(sync), ==, DEVICE_NOW + 60);

    const gint64 full[] = {60, 120, 240, 480, 600, 600};
    for (guint i = 0; i < G_N_ELEMENTS(full); i++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(ProxdSyncResult) r = run_sync(sync, 0, NULL, &error);
        g_assert_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_NETWORK);
        g_assert_cmpuint(proxd_sync_get_failures(sync), ==, i + 1);
        g_assert_cmpint(proxd_sync_get_next_attempt(sync), ==, f->device_now + full[i]);
        f->device_now += full[i];
    }
    byte = 0;
    g_autoptr(ProxdSyncResult) r = run_sync(sync, 0, NULL, NULL);
    g_assert_cmpint(proxd_sync_get_next_attempt(sync), ==, f->device_now + 300);

    /* Retry-After: 900 from the server, capped at retry_max. */
    g_autofree char *http = http_index(f);
    g_autoptr(ProxdSync) busy = make_sync_with(f, http, &opts);
    proxd_sync_set_random(busy, fill_byte, &byte);
    file_server_set_fault(f->server, "/index.txt", FAULT_UNAVAILABLE);
    g_autoptr(GError) error = NULL;
    g_autoptr(ProxdSyncResult) r503 = run_sync(busy, 0, NULL, &error);
    g_assert_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_HTTP);
    g_assert_cmpint(r503->retry_after, ==, 900);
    g_assert_cmpint(proxd_sync_get_next_attempt(busy), ==, f->device_now + 600);

    /* Success: the interval minus up to half of it. */
    file_server_set_fault(f->server, "/index.txt", FAULT_NONE);
    byte = 0xff;
    g_autoptr(ProxdSyncResult) ok = run_ok(busy);
    g_assert_cmpuint(proxd_sync_get_failures(busy), ==, 0);
    g_assert_cmpint(proxd_sync_get_next_attempt(busy), ==, f->device_now + 1800);
    byte = 0;
    g_autoptr(ProxdSyncResult) ok2 = run_ok(busy);
    g_assert_cmpint(proxd_sync_get_next_attempt(busy), ==, f->device_now + 3600);
}

/* A second request while a run is in progress joins it: one download, one result. */
static void test_join(Fixture *f, gconstpointer data)
{
    g_autoptr(ProxdSync) sync = make_sync(f);
    guint finished = 0;
    g_signal_connect(sync, "finished", G_CALLBACK(on_finished), &finished);
    Wait a = {0}, b = {0};
    proxd_sync_run_async(sync, 0, NULL, on_sync_done, &a);
    g_assert_true(proxd_sync_is_running(sync));
    proxd_sync_run_async(sync, 0, NULL, on_sync_done, &b);
    test_wait_flag(&a.done);
    test_wait_flag(&b.done);
    g_assert_true(a.complete && b.complete);
    g_assert_true(a.result == b.result);
    g_assert_cmpuint(finished, ==, 1);
    g_assert_cmpuint(file_server_count(f->server, "/index.txt", 0), ==, 1);
    g_assert_cmpuint(file_server_count_suffix(f->server, ".zip"), ==, 3);
    proxd_sync_result_unref(a.result);
    proxd_sync_result_unref(b.result);
}

typedef struct {
    GCancellable *cancellable;
    guint at_files_done;
} CancelAt;

static void cancel_on_progress(ProxdSync *sync, guint phase, guint done, guint total, guint64 bytes,
                               gpointer user_data)
{
    CancelAt *c = user_data;
    if (phase == PROXD_SYNC_PHASE_FILES && done == c->at_files_done)
        g_cancellable_cancel(c->cancellable);
}

/* Cancelled before it starts: no run at all. Cancelled while a download hangs: the first
 * file stays, nothing after it, no detection. */
static void test_cancel(Fixture *f, gconstpointer data)
{
    g_autoptr(ProxdSync) sync = make_sync(f);
    g_autoptr(GCancellable) early = g_cancellable_new();
    g_cancellable_cancel(early);
    Wait w = {0};
    proxd_sync_run_async(sync, 0, early, on_sync_done, &w);
    test_wait_flag(&w.done);
    g_assert_false(w.complete);
    g_assert_null(w.result);
    g_assert_error(w.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
    g_clear_error(&w.error);
    g_assert_cmpuint(file_server_count(f->server, "/index.txt", 0), ==, 0);

    g_autofree char *file1 = url_path(f, 1);
    file_server_set_fault(f->server, file1, FAULT_HANG);
    g_autoptr(GCancellable) cancellable = g_cancellable_new();
    CancelAt at = {cancellable, 1};
    g_signal_connect(sync, "progress", G_CALLBACK(cancel_on_progress), &at);
    Wait w2 = {0};
    proxd_sync_run_async(sync, 0, cancellable, on_sync_done, &w2);
    test_wait_flag(&w2.done);
    g_assert_false(w2.complete);
    g_assert_error(w2.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
    g_assert_true(imported(f, sync, 0));
    g_assert_false(imported(f, sync, 1));
    g_assert_false(imported(f, sync, 2));
    g_assert_false(w2.result->detected);
    g_clear_error(&w2.error);
    proxd_sync_result_unref(w2.result);
}

/* New risk parameters: a detection-only run re-scores without touching the network. */
static void test_detect_only(Fixture *f, gconstpointer data)
{
    g_autoptr(ProxdSync) sync = make_sync(f);
    g_autoptr(ProxdSyncResult) r = run_ok(sync);
    g_assert_cmpint(r->detect.summary.level, ==, PROX_RISK_LEVEL_HIGH);
    gint64 next = proxd_sync_get_next_attempt(sync);
    file_server_reset_counts(f->server);

    g_autoptr(ProxdSyncResult) unchanged = run_sync(sync, PROXD_SYNC_RUN_DETECT_ONLY, NULL, NULL);
    g_assert_true(unchanged->complete);
    g_assert_false(unchanged->detected); /* nothing changed */

    ProxRiskParameters strict;
    prox_risk_parameters_default(&strict);
    strict.high_risk_minutes_per_day = 100;
    strict.high_risk_minutes_per_window = 100;
    proxd_sync_set_risk(sync, &strict, PROX_CALIBRATION_LOW);
    f->device_now += 600;
    g_autoptr(ProxdSyncResult) d = run_sync(sync, PROXD_SYNC_RUN_DETECT_ONLY, NULL, NULL);
    g_assert_true(d->complete);
    g_assert_true(d->detected);
    g_assert_cmpint(d->detect.summary.level, ==, PROX_RISK_LEVEL_LOW);
    g_assert_cmpuint(file_server_count_suffix(f->server, ""), ==, 0);
    g_assert_cmpint(proxd_sync_get_next_attempt(sync), ==, next);
    g_assert_cmpint(last_sync_state(f), ==, DEVICE_NOW);
}

/* http_proxy from the environment is used: the key server's host does not even resolve,
 * only the proxy (our file server) can answer. Run in a subprocess, whose environment is
 * changed before it has any thread (setenv is not thread-safe). */
static void test_proxy_env(Fixture *f, gconstpointer data)
{
    if (!g_test_subprocess()) {
        g_test_trap_subprocess(NULL, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
        g_test_trap_assert_passed();
        g_test_trap_assert_stdout("*http://keys.invalid/index.txt: 3 of 3 new imported*");
        return;
    }
    const char *vars[] = {"no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"};
    for (guint i = 0; i < G_N_ELEMENTS(vars); i++)
        g_unsetenv(vars[i]);
    g_setenv("http_proxy", file_server_url(f->server), TRUE);

    g_autoptr(ProxdSync) sync = make_sync_with(f, "http://keys.invalid/index.txt", NULL);
    g_autoptr(ProxdSyncResult) r = run_ok(sync);
    g_assert_cmpuint(r->files_imported, ==, 3);
    g_assert_cmpuint(file_server_count(f->server, "/index.txt", 200), ==, 1);
    g_assert_cmpstr(soup_message_headers_get_one(file_server_last_headers(f->server), "Host"), ==,
                    "keys.invalid");
}

/* -m perf: one published file of 100 000 keys (the authority's default file size), synced
 * over loopback HTTP into a store with 14 days of sightings: download, verify, import and
 * detection timed; then a detection-only rerun. */
static void test_perf(Fixture *f, gconstpointer data)
{
    if (!g_test_perf()) {
        g_test_skip("measurement: run with -m perf");
        return;
    }
    const guint n_keys = 100000;
    g_autoptr(GError) error = NULL;
    g_autofree char *big = g_build_filename(f->dir, "big", NULL);
    g_assert_cmpint(g_mkdir(big, 0700), ==, 0);
    g_autoptr(ProxExportSigner) signer = prox_export_signer_load_ed25519(f->sec, &error);
    g_assert_no_error(error);
    g_autofree ProxDiagnosisKey *keys = g_new0(ProxDiagnosisKey, n_keys);
    for (guint i = 0; i < n_keys; i++) {
        keys[i].tek = test_tek_for_day(TEST_NOW - (gint64)(1 + i % 14) * DAY);
        keys[i].report_type = PROX_REPORT_CONFIRMED_TEST;
    }
    keys[0].tek = f->close_tek;
    ProxExportMeta meta = {TEST_NOW - 15 * DAY, TEST_NOW, "", 1, 1};
    const char *name = "1590000000-00000001-0001.zip";
    g_autofree char *zip = g_build_filename(big, name, NULL);
    g_assert_true(prox_export_write(zip, &meta, keys, n_keys, signer, &error));
    g_autofree char *index = g_build_filename(big, "index.txt", NULL);
    g_autofree char *index_text = g_strconcat(name, "\n", NULL);
    g_assert_true(g_file_set_contents(index, index_text, -1, NULL));

    /* 14 days of a person's sightings: 10 RPIs heard every 4 minutes. */
    g_autoptr(ProxSightingBatch) batch = prox_sighting_batch_new();
    for (gint64 t = TEST_NOW - 14 * DAY; t < TEST_NOW; t += 240) {
        gint64 scan = 0;
        g_assert_true(prox_store_scan_begin(f->store, t, &scan, &error));
        for (guint i = 0; i < 10; i++) {
            ProxRpi rpi;
            ProxAem aem;
            test_random(&rpi, sizeof rpi, NULL);
            test_random(&aem, sizeof aem, NULL);
            prox_sighting_batch_add(batch, scan, &rpi, &aem, -70, t + 1);
        }
        g_assert_true(prox_store_commit_sightings(f->store, batch, &error));
        g_assert_true(prox_store_scan_end(f->store, scan, t + 4, &error));
    }

    FileServer *server = file_server_new(big);
    g_autofree char *url = g_strdup_printf("%s/index.txt", file_server_url(server));
    ProxdSyncOptions opts = {0};
    opts.store_options.fast_sync = FALSE; /* a device's durable store */
    g_autoptr(ProxdSync) sync = make_sync_with(f, url, &opts);
    gint64 t0 = g_get_monotonic_time();
    g_autoptr(ProxdSyncResult) r = run_ok(sync);
    gint64 t1 = g_get_monotonic_time();
    g_assert_cmpuint(r->keys_added, ==, n_keys);
    g_assert_true(r->detect.level_rose);
    g_test_message("sync of %u keys: %.0f ms in all, %" G_GUINT64_FORMAT " bytes (%.2f per key), "
                   "detection over %" G_GUINT64_FORMAT " sightings",
                   n_keys, (double)(t1 - t0) / 1000.0, r->bytes, (double)r->bytes / n_keys,
                   r->detect.sightings);
    for (int rep = 0; rep < 3; rep++) {
        gint64 a = g_get_monotonic_time();
        g_autoptr(ProxdSyncResult) d =
            run_sync(sync, PROXD_SYNC_RUN_DETECT_ONLY | PROXD_SYNC_RUN_FORCE_DETECT, NULL, NULL);
        gint64 b = g_get_monotonic_time();
        g_assert_true(d->detected);
        g_test_message("detection only, %" G_GUINT64_FORMAT " keys: %.0f ms", d->detect.keys,
                       (double)(b - a) / 1000.0);
    }
    file_server_free(server);
}

/* ---- units without a server ---- */

static GPtrArray *names_of(const char *const *names)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; names[i] != NULL; i++)
        g_ptr_array_add(a, g_strdup(names[i]));
    return a;
}

static void test_index_parse(void)
{
    g_autoptr(GError) error = NULL;
    const char *text = "  a.zip\r\n\nb/c-1_2.zip\n\t\nd.zip";
    g_autoptr(GPtrArray) names = proxd_sync_index_parse(text, strlen(text), &error);
    g_assert_no_error(error);
    g_assert_cmpuint(names->len, ==, 3);
    g_assert_cmpstr(names->pdata[1], ==, "b/c-1_2.zip");
    g_autoptr(GPtrArray) empty = proxd_sync_index_parse("", 0, &error);
    g_assert_cmpuint(empty->len, ==, 0);

    const char *bad[] = {"../a.zip",  "a/../b.zip",   "/a.zip",       "a//b.zip",
                         ".hidden",   "a/.b",         "a b.zip",      "http://x/a.zip",
                         "a.zip?x=1", "b.zip\na.zip", "a.zip\na.zip", "\xc3\xa9.zip"};
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_clear_error(&error);
        g_assert_null(proxd_sync_index_parse(bad[i], strlen(bad[i]), &error));
        g_assert_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INDEX);
    }
    g_clear_error(&error);
    g_assert_null(proxd_sync_index_parse("a\0b", 3, &error));
    g_assert_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INDEX);
}

static gboolean check(const char *const *n, const char *const *p, const char *newest)
{
    g_autoptr(GPtrArray) names = names_of(n);
    g_autoptr(GPtrArray) prev = names_of(p);
    g_autoptr(GError) error = NULL;
    gboolean ok = proxd_sync_index_check(names, prev, newest, &error);
    if (!ok)
        g_assert_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_ROLLBACK);
    return ok;
}

static void test_index_check(void)
{
    const char *none[] = {NULL};
    const char *abc[] = {"a", "b", "c", NULL};
    const char *abcd[] = {"a", "b", "c", "d", NULL};
    const char *bcd[] = {"b", "c", "d", NULL};
    const char *ab[] = {"a", "b", NULL};
    const char *ac[] = {"a", "c", NULL};
    const char *d[] = {"d", NULL};
    const char *b[] = {"b", NULL};
    const char *abbc[] = {"a", "b", "bb", "c", NULL};
    g_assert_true(check(abc, none, NULL)); /* first index */
    g_assert_true(check(abc, abc, "c"));   /* unchanged */
    g_assert_true(check(abcd, abc, "c"));  /* appended */
    g_assert_true(check(bcd, abc, "c"));   /* oldest expired, one appended */
    g_assert_true(check(d, abc, "c"));     /* all expired, one new */
    g_assert_true(check(none, abc, "c"));  /* all expired */
    g_assert_false(check(ab, abc, "c"));   /* newest vanished */
    g_assert_false(check(ac, abc, "c"));   /* hole */
    g_assert_false(check(abbc, abc, "c")); /* inserted before the newest */
    g_assert_false(check(b, none, "c"));   /* after everything expired: an old name back */
    g_assert_true(check(d, none, "c"));
}

static void test_options(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = test_tmpdir_new();
    g_autofree char *pem_path =
        g_build_filename(g_getenv("PROX_TESTDATA"), "gaen", "ens-public.pem", NULL);
    const char *bare[] = {pem_path, NULL};
    g_assert_null(proxd_sync_keyring_load(bare, &error));
    g_assert_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
    g_autofree char *pinned = g_strconcat("310:v1:", pem_path, NULL);
    const char *ok[] = {pinned, NULL};
    g_autoptr(ProxExportKeyring) keyring = proxd_sync_keyring_load(ok, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(prox_export_keyring_size(keyring), ==, 1);
    const char *missing[] = {"/nonexistent/key.pub", NULL};
    g_assert_null(proxd_sync_keyring_load(missing, &error));
    g_clear_error(&error);

    ProxdSyncOptions opts = {.url = "ftp://example.org/index.txt", .db_path = "x.db"};
    g_assert_null(proxd_sync_new(&opts, proxd_sync_keyring_load(ok, NULL), &error));
    g_assert_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
    opts.url = "https://example.org/keys";
    g_assert_null(proxd_sync_new(&opts, prox_export_keyring_new(), &error));
    g_assert_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
    g_autoptr(ProxdSync) sync = proxd_sync_new(&opts, proxd_sync_keyring_load(ok, NULL), &error);
    g_assert_no_error(error);
    g_assert_cmpstr(proxd_sync_get_source(sync), ==, "https://example.org/keys/index.txt");
    test_tmpdir_free(g_steal_pointer(&dir));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    log_capture_install();
    g_test_add_func("/sync/index/parse", test_index_parse);
    g_test_add_func("/sync/index/check", test_index_check);
    g_test_add_func("/sync/options", test_options);
#define ADD(name, fn, data) g_test_add(name, Fixture, data, fixture_setup, fn, fixture_teardown)
    ADD("/sync/http/import-then-not-modified", test_http_import, NULL);
    ADD("/sync/file-url", test_file_url, NULL);
    ADD("/sync/tampered", test_tampered, NULL);
    ADD("/sync/revoked", test_revoked, NULL);
    ADD("/sync/wrong-signer", test_wrong_signer, NULL);
    ADD("/sync/truncated/content-length", test_truncated, GINT_TO_POINTER(FAULT_TRUNCATE));
    ADD("/sync/truncated/connection-close", test_truncated,
        GINT_TO_POINTER(FAULT_TRUNCATE_NO_LENGTH));
    ADD("/sync/rollback", test_rollback, NULL);
    ADD("/sync/missing-file", test_missing_file, NULL);
    ADD("/sync/server-down", test_server_down, NULL);
    ADD("/sync/size-caps", test_size_caps, NULL);
    ADD("/sync/schedule", test_schedule, NULL);
    ADD("/sync/join", test_join, NULL);
    ADD("/sync/cancel", test_cancel, NULL);
    ADD("/sync/detect-only", test_detect_only, NULL);
    ADD("/sync/proxy-env", test_proxy_env, NULL);
    ADD("/sync/perf/100k-keys", test_perf, NULL);
#undef ADD
    return g_test_run();
}
