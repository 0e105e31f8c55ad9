/* authority-publish.c - signed key lists, padding, retention and index.txt. */
#define G_LOG_DOMAIN "prox-authority"

#include "authority-publish.h"

#include "authority-fs.h"
#include "authority-venue.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY_SECONDS 86400

void authority_publish_options_init(AuthorityPublishOptions *options)
{
    memset(options, 0, sizeof *options);
    options->min_keys = AUTHORITY_PUBLISH_DEFAULT_MIN_KEYS;
    options->padding_jitter = AUTHORITY_PUBLISH_DEFAULT_PADDING_JITTER;
    options->keep_days = AUTHORITY_PUBLISH_DEFAULT_KEEP_DAYS;
    options->embargo = AUTHORITY_PUBLISH_DEFAULT_EMBARGO;
    options->max_keys_per_file = AUTHORITY_PUBLISH_DEFAULT_MAX_KEYS_PER_FILE;
}

void authority_publish_options_clear(AuthorityPublishOptions *options)
{
    g_clear_pointer(&options->region, g_free);
}

GOptionEntry *authority_publish_option_entries(AuthorityPublishOptions *options)
{
    const GOptionEntry entries[] = {
        {"min-keys", 0, 0, G_OPTION_ARG_INT, &options->min_keys,
         "Pad each run's files with random keys up to N keys (default 1000)", "N"},
        {"padding-jitter", 0, 0, G_OPTION_ARG_INT, &options->padding_jitter,
         "Pad to a random 0..N keys more than --min-keys (default 100)", "N"},
        {"keep-days", 0, 0, G_OPTION_ARG_INT, &options->keep_days,
         "Delete files (and their keys) older than DAYS (default 14)", "DAYS"},
        {"embargo", 0, 0, G_OPTION_ARG_INT64, &options->embargo,
         "Publish a key only SECONDS after its rolling period ended (default 1200)", "SECONDS"},
        {"max-keys-per-file", 0, 0, G_OPTION_ARG_INT, &options->max_keys_per_file,
         "Split a run into files of at most N keys (default 100000)", "N"},
        {"region", 0, 0, G_OPTION_ARG_STRING, &options->region,
         "Region named in the files (default none)", "REGION"},
        {NULL},
    };
    return g_memdup2(entries, sizeof entries);
}

gboolean authority_publish_options_check(const AuthorityPublishOptions *options, GError **error)
{
    const char *bad = NULL;
    if (options->min_keys < 0 || options->min_keys > 10000000)
        bad = "--min-keys must be 0..10000000";
    else if (options->padding_jitter < 0 || options->padding_jitter > 1000000)
        bad = "--padding-jitter must be 0..1000000";
    else if (options->keep_days < 1 || options->keep_days > 365)
        bad = "--keep-days must be 1..365";
    else if (options->embargo < 0 || options->embargo > 7 * DAY_SECONDS)
        bad = "--embargo must be 0..604800 seconds";
    else if (options->max_keys_per_file < 1 || options->max_keys_per_file > 1000000)
        bad = "--max-keys-per-file must be 1..1000000";
    if (bad != NULL) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT, bad);
        return FALSE;
    }
    return TRUE;
}

/* "DDDDDDDDDD-DDDDDDDD-DDDD.zip", optionally followed by a ".XXXXXX" temporary suffix. */
gboolean authority_publish_is_export_name(const char *name, gboolean *temporary)
{
    static const char shape[] = "0000000000-00000000-0000.zip";
    size_t len = strlen(name);
    size_t base = sizeof shape - 1;
    if (len != base && len != base + 7)
        return FALSE;
    for (size_t i = 0; i < base; i++) {
        if (shape[i] == '0' ? !g_ascii_isdigit(name[i]) : name[i] != shape[i])
            return FALSE;
    }
    if (len == base + 7) {
        if (name[base] != '.')
            return FALSE;
        for (size_t i = base + 1; i < len; i++) {
            if (!g_ascii_isalnum(name[i]))
                return FALSE;
        }
    }
    if (temporary != NULL)
        *temporary = len != base;
    return TRUE;
}

static gboolean query_int(AuthorityDb *db, const char *sql, gint64 *out, GError **error)
{
    sqlite3_stmt *stmt = authority_db_statement(db, sql, error);
    if (stmt == NULL)
        return FALSE;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(stmt, 0);
    sqlite3_reset(stmt);
    if (rc != SQLITE_ROW)
        return authority_db_fail(db, sql, error);
    return TRUE;
}

/* Step 2: forget what is older than the retention window. */
static gboolean retention(AuthorityDb *db, const AuthorityPublishOptions *options, gint64 now,
                          GError **error)
{
    gint64 cutoff = now - (gint64)options->keep_days * DAY_SECONDS;
    gint64 cutoff_interval =
        (gint64)prox_interval_number(now) - (gint64)options->keep_days * PROX_TEK_ROLLING_PERIOD;
    static const char *const sql[] = {
        /* keys and export_files of the run go by ON DELETE CASCADE */
        "DELETE FROM publish_runs WHERE created_at < ?1",
        "DELETE FROM keys WHERE run_id IS NULL AND rolling_start + rolling_period <= ?2",
        "DELETE FROM codes WHERE expires_at < ?1",
    };
    if (!authority_db_exec(db, "BEGIN IMMEDIATE", error))
        return FALSE;
    for (size_t i = 0; i < G_N_ELEMENTS(sql); i++) {
        sqlite3_stmt *stmt = authority_db_statement(db, sql[i], error);
        if (stmt == NULL)
            goto fail;
        if (sqlite3_bind_parameter_count(stmt) >= 1)
            sqlite3_bind_int64(stmt, 1, cutoff);
        if (sqlite3_bind_parameter_count(stmt) >= 2)
            sqlite3_bind_int64(stmt, 2, cutoff_interval);
        int rc = sqlite3_step(stmt);
        sqlite3_reset(stmt);
        if (rc != SQLITE_DONE) {
            authority_db_fail(db, "applying retention", error);
            goto fail;
        }
    }
    if (!authority_warnings_retention(db, cutoff, error))
        goto fail;
    if (authority_db_exec(db, "COMMIT", error))
        return TRUE;
fail:
    sqlite3_exec(authority_db_sqlite(db), "ROLLBACK", NULL, NULL, NULL);
    return FALSE;
}

typedef struct {
    GArray *keys;        /* ProxDiagnosisKey */
    gint64 max_id;       /* largest row id among them */
    gint64 end_interval; /* the condition they were selected by */
    gint64 first_upload;
} Pending;

/* Step 3: unpublished keys that ended at least `embargo` seconds before now. */
static gboolean pending_load(AuthorityDb *db, gint64 now, gint64 embargo, Pending *pending,
                             GError **error)
{
    gint64 limit = now - embargo;
    /* start + period <= floor(limit / 600) <=> the key's end time <= limit */
    gint64 end_interval = limit >= 0 ? limit / PROX_INTERVAL_SECONDS : -1;
    sqlite3_stmt *stmt = authority_db_statement(
        db,
        "SELECT id, key_data, rolling_start, rolling_period, transmission_risk, report_type, "
        "days_since_onset, uploaded_at FROM keys "
        "WHERE run_id IS NULL AND rolling_start + rolling_period <= ?1 ORDER BY id",
        error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, end_interval);
    pending->keys = g_array_new(FALSE, FALSE, sizeof(ProxDiagnosisKey));
    pending->end_interval = end_interval;
    pending->max_id = 0;
    pending->first_upload = now;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        ProxDiagnosisKey k = {0};
        gint64 id = sqlite3_column_int64(stmt, 0);
        if (sqlite3_column_bytes(stmt, 1) != PROX_KEY_LEN) {
            sqlite3_reset(stmt);
            g_set_error(error, PROX_ERROR, PROX_ERROR_STORE,
                        "key row %" G_GINT64_FORMAT " has key data of the wrong length", id);
            return FALSE;
        }
        memcpy(k.tek.key, sqlite3_column_blob(stmt, 1), PROX_KEY_LEN);
        k.tek.rolling_start = (uint32_t)sqlite3_column_int64(stmt, 2);
        k.tek.rolling_period = (uint32_t)sqlite3_column_int64(stmt, 3);
        k.transmission_risk_level = sqlite3_column_int(stmt, 4);
        k.report_type = (ProxReportType)sqlite3_column_int(stmt, 5);
        k.has_days_since_onset = sqlite3_column_type(stmt, 6) != SQLITE_NULL;
        k.days_since_onset = k.has_days_since_onset ? sqlite3_column_int(stmt, 6) : 0;
        pending->first_upload = MIN(pending->first_upload, sqlite3_column_int64(stmt, 7));
        g_array_append_val(pending->keys, k);
        pending->max_id = MAX(pending->max_id, id);
    }
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE)
        return authority_db_fail(db, "reading unpublished keys", error);
    return TRUE;
}

/* Uniform in [0, n) from 64 random bits: the modulo bias is below n / 2^64 (2^-40 for ten
 * million keys), which no observer of a key list can measure. */
static guint random_below(uint64_t r, guint n)
{
    return (guint)(r % n);
}

/* Real keys plus fake ones, shuffled. A fake copies every field but the key data from a real
 * key of the same run (as GAEN's reference server does), so no field tells it apart. The
 * random numbers come from one ChaCha20 stream with a fresh random seed: a million
 * getrandom() calls would cost more than the whole rest of publishing. */
static GArray *padded_keys(const GArray *real, guint min_keys, guint jitter, guint *padding)
{
    guint n = real->len;
    guint target = min_keys + (jitter > 0 ? randombytes_uniform(jitter + 1) : 0);
    /* Fakes copy a real key's fields: a run with warnings only has none to copy (and no
     * reporter's key count to hide). */
    *padding = n > 0 && n < target ? target - n : 0;
    guint total = n + *padding;
    GArray *all = g_array_sized_new(FALSE, FALSE, sizeof(ProxDiagnosisKey), total);
    g_array_append_vals(all, real->data, n);

    uint8_t seed[randombytes_SEEDBYTES];
    randombytes_buf(seed, sizeof seed);
    /* one number per fake (its template) and one per shuffle step */
    size_t n_random = (size_t)*padding + total;
    uint64_t *random = g_new(uint64_t, n_random);
    randombytes_buf_deterministic(random, n_random * sizeof *random, seed);
    sodium_memzero(seed, sizeof seed);
    const uint64_t *r = random;

    for (guint i = 0; i < *padding; i++) {
        ProxDiagnosisKey fake = g_array_index(real, ProxDiagnosisKey, random_below(*r++, n));
        g_array_append_val(all, fake);
    }
    if (*padding > 0) {
        g_autofree uint8_t *data = g_malloc((size_t)*padding * PROX_KEY_LEN);
        randombytes_buf(data, (size_t)*padding * PROX_KEY_LEN);
        for (guint i = 0; i < *padding; i++)
            memcpy(g_array_index(all, ProxDiagnosisKey, n + i).tek.key, data + i * PROX_KEY_LEN,
                   PROX_KEY_LEN);
    }
    /* Files hold keys sorted by key data, but which file a key lands in must not say when it
     * was uploaded or whether it is fake. */
    for (guint i = total; i > 1; i--) {
        guint j = random_below(*r++, i);
        ProxDiagnosisKey t = g_array_index(all, ProxDiagnosisKey, i - 1);
        g_array_index(all, ProxDiagnosisKey, i - 1) = g_array_index(all, ProxDiagnosisKey, j);
        g_array_index(all, ProxDiagnosisKey, j) = t;
    }
    g_free(random);
    return all;
}

typedef struct {
    char *name;
    int32_t batch_num;
    guint keys;
    guint warnings;
    gint64 bytes;
} WrittenFile;

static void written_file_clear(gpointer data)
{
    g_free(((WrittenFile *)data)->name);
}

/* Steps 3-4 for a non-empty set of pending keys. */
static gboolean publish_run(AuthorityDb *db, const char *out_dir,
                            const AuthorityPublishOptions *options, const ProxExportSigner *signer,
                            gint64 now, Pending *pending, AuthorityPendingWarnings *warnings,
                            AuthorityPublishResult *result, GError **error)
{
    gint64 run_id = 0;
    if (!query_int(db, "SELECT coalesce(max(id), 0) + 1 FROM publish_runs", &run_id, error))
        return FALSE;
    guint padding = 0;
    g_autoptr(GArray) all = padded_keys(pending->keys, (guint)options->min_keys,
                                        (guint)options->padding_jitter, &padding);
    guint per_file = (guint)options->max_keys_per_file;
    /* A run with warnings only still writes one file. */
    guint n_files = MAX((all->len + per_file - 1) / per_file, 1);
    guint n_warnings = warnings->warnings->len;
    if (n_files > AUTHORITY_PUBLISH_MAX_FILES_PER_RUN) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "%u keys need %u files of %u keys; at most %d files per run", all->len, n_files,
                    per_file, AUTHORITY_PUBLISH_MAX_FILES_PER_RUN);
        return FALSE;
    }

    g_autoptr(GArray) written = g_array_new(FALSE, TRUE, sizeof(WrittenFile));
    g_array_set_clear_func(written, written_file_clear);
    for (guint b = 0; b < n_files; b++) {
        guint first = b * per_file;
        guint count = first < all->len ? MIN(per_file, all->len - first) : 0;
        ProxExportMeta meta = {
            .start_timestamp = MIN(pending->first_upload, now),
            .end_timestamp = now,
            .region = options->region,
            .batch_num = (int32_t)b + 1,
            .batch_size = (int32_t)n_files,
        };
        /* Warnings go into the run's first file: devices read every file of the index. */
        guint file_warnings = b == 0 ? n_warnings : 0;
        WrittenFile file = {
            .name = g_strdup_printf("%010" G_GINT64_FORMAT "-%08" G_GINT64_FORMAT "-%04u.zip", now,
                                    run_id, b + 1),
            .batch_num = meta.batch_num,
            .keys = count,
            .warnings = file_warnings,
        };
        g_autofree char *path = g_build_filename(out_dir, file.name, NULL);
        g_array_append_val(written, file);
        const ProxDiagnosisKey *file_keys =
            count > 0 ? &g_array_index(all, ProxDiagnosisKey, first) : NULL;
        if (file_warnings == 0) {
            if (!prox_export_write(path, &meta, file_keys, count, signer, error))
                goto fail;
        } else {
            g_autoptr(GBytes) zip = prox_export_build_full(
                &meta, file_keys, count, (const ProxVenueWarning *)warnings->warnings->data,
                file_warnings, signer, error);
            gsize zip_len = 0;
            const char *zip_data = zip != NULL ? g_bytes_get_data(zip, &zip_len) : NULL;
            if (zip == NULL || !authority_write_file_atomic(path, zip_data, zip_len, 0644, error))
                goto fail;
        }
        struct stat st;
        if (stat(path, &st) != 0) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "%s: %s", path, g_strerror(errno));
            goto fail;
        }
        g_array_index(written, WrittenFile, b).bytes = st.st_size;
    }
    if (!authority_fsync_dir(out_dir, error))
        goto fail;

    if (!authority_db_exec(db, "BEGIN IMMEDIATE", error))
        goto fail;
    sqlite3_stmt *stmt = authority_db_statement(
        db,
        "INSERT INTO publish_runs (id, created_at, start_timestamp, end_timestamp, region, "
        "real_keys, padding_keys, warnings) VALUES (?1, ?2, ?3, ?2, ?4, ?5, ?6, ?7)",
        error);
    if (stmt == NULL)
        goto rollback;
    sqlite3_bind_int64(stmt, 1, run_id);
    sqlite3_bind_int64(stmt, 2, now);
    sqlite3_bind_int64(stmt, 3, MIN(pending->first_upload, now));
    sqlite3_bind_text(stmt, 4, options->region != NULL ? options->region : "", -1,
                      SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 5, pending->keys->len);
    sqlite3_bind_int64(stmt, 6, padding);
    sqlite3_bind_int64(stmt, 7, n_warnings);
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) {
        authority_db_fail(db, "recording the run", error);
        goto rollback;
    }
    stmt = authority_db_statement(db,
                                  "INSERT INTO export_files (name, run_id, batch_num, batch_size, "
                                  "key_count, bytes, warning_count) "
                                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                                  error);
    if (stmt == NULL)
        goto rollback;
    for (guint b = 0; b < written->len; b++) {
        const WrittenFile *f = &g_array_index(written, WrittenFile, b);
        sqlite3_reset(stmt);
        sqlite3_bind_text(stmt, 1, f->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 2, run_id);
        sqlite3_bind_int(stmt, 3, f->batch_num);
        sqlite3_bind_int(stmt, 4, (int)n_files);
        sqlite3_bind_int64(stmt, 5, f->keys);
        sqlite3_bind_int64(stmt, 6, f->bytes);
        sqlite3_bind_int64(stmt, 7, f->warnings);
        if (sqlite3_step(stmt) != SQLITE_DONE) {
            sqlite3_reset(stmt);
            authority_db_fail(db, "recording a file", error);
            goto rollback;
        }
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    /* Exactly the keys read in pending_load(): same condition, and no later row (a new row
     * gets an id above every existing one, and only publish, under its lock, changes run_id).
     * The count proves it; a mismatch rolls everything back. */
    stmt = authority_db_statement(db,
                                  "UPDATE keys SET run_id = ?1 WHERE run_id IS NULL AND "
                                  "rolling_start + rolling_period <= ?2 AND id <= ?3",
                                  error);
    if (stmt == NULL)
        goto rollback;
    sqlite3_bind_int64(stmt, 1, run_id);
    sqlite3_bind_int64(stmt, 2, pending->end_interval);
    sqlite3_bind_int64(stmt, 3, pending->max_id);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) {
        authority_db_fail(db, "marking keys published", error);
        goto rollback;
    }
    if ((guint)sqlite3_changes(authority_db_sqlite(db)) != pending->keys->len) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_STORE,
                    "keys changed while publishing (%d marked, %u written); nothing published",
                    sqlite3_changes(authority_db_sqlite(db)), pending->keys->len);
        goto rollback;
    }
    if (!authority_warnings_mark_published(db, warnings, run_id, error))
        goto rollback;
    if (!authority_db_exec(db, "COMMIT", error))
        goto rollback;
    result->files_written = written->len;
    result->warnings = n_warnings;
    result->real_keys = pending->keys->len;
    result->padding_keys = padding;
    return TRUE;

rollback:
    sqlite3_exec(authority_db_sqlite(db), "ROLLBACK", NULL, NULL, NULL);
fail:
    /* Not in any index; removing them now saves the next run's sweep the work. */
    for (guint b = 0; b < written->len; b++) {
        g_autofree char *path =
            g_build_filename(out_dir, g_array_index(written, WrittenFile, b).name, NULL);
        unlink(path);
    }
    return FALSE;
}

/* Step 5: index.txt from the database, oldest first. *names gets the set of named files. */
static gboolean index_update(AuthorityDb *db, const char *out_dir, GHashTable *names,
                             gboolean *written, GError **error)
{
    *written = FALSE;
    sqlite3_stmt *stmt = authority_db_statement(
        db,
        "SELECT f.name FROM export_files f JOIN publish_runs r ON r.id = f.run_id "
        "ORDER BY r.created_at, r.id, f.batch_num",
        error);
    if (stmt == NULL)
        return FALSE;
    g_autoptr(GString) text = g_string_new(NULL);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(stmt, 0);
        g_autofree char *path = g_build_filename(out_dir, name, NULL);
        struct stat st;
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_IO,
                        "%s is recorded as published but missing from %s (was the database "
                        "used with another publish directory?)",
                        name, out_dir);
            sqlite3_reset(stmt); /* invalidates name */
            return FALSE;
        }
        g_hash_table_add(names, g_strdup(name));
        g_string_append(text, name);
        g_string_append_c(text, '\n');
    }
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE)
        return authority_db_fail(db, "listing published files", error);

    g_autofree char *index_path = g_build_filename(out_dir, AUTHORITY_INDEX_NAME, NULL);
    g_autofree char *current = NULL;
    gsize current_len = 0;
    if (g_file_get_contents(index_path, &current, &current_len, NULL) && current_len == text->len &&
        memcmp(current, text->str, text->len) == 0)
        return TRUE;
    if (!authority_write_file_atomic(index_path, text->str, text->len, 0644, error))
        return FALSE;
    *written = TRUE;
    return TRUE;
}

/* Step 6: files the index does not name, and temporary files of interrupted writes. */
static gboolean sweep(const char *out_dir, GHashTable *names, guint *removed, GError **error)
{
    g_autoptr(GDir) dir = g_dir_open(out_dir, 0, error);
    if (dir == NULL)
        return FALSE;
    const char *name;
    *removed = 0;
    gboolean changed = FALSE;
    while ((name = g_dir_read_name(dir)) != NULL) {
        gboolean temporary = FALSE;
        gboolean ours = authority_publish_is_export_name(name, &temporary);
        gboolean index_temp = g_str_has_prefix(name, AUTHORITY_INDEX_NAME ".") &&
                              strlen(name) == strlen(AUTHORITY_INDEX_NAME) + 7;
        if (!(ours && (temporary || !g_hash_table_contains(names, name))) && !index_temp)
            continue;
        g_autofree char *path = g_build_filename(out_dir, name, NULL);
        if (unlink(path) != 0 && errno != ENOENT) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot remove %s: %s", path,
                        g_strerror(errno));
            return FALSE;
        }
        changed = TRUE;
        if (ours && !temporary)
            (*removed)++;
    }
    return !changed || authority_fsync_dir(out_dir, error);
}

gboolean authority_publish(AuthorityDb *db, const char *out_dir,
                           const AuthorityPublishOptions *options, const ProxExportSigner *signer,
                           gint64 now, AuthorityPublishResult *result, GError **error)
{
    memset(result, 0, sizeof *result);
    if (!authority_publish_options_check(options, error))
        return FALSE;
    if (g_mkdir_with_parents(out_dir, 0755) != 0) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot create %s: %s", out_dir,
                    g_strerror(errno));
        return FALSE;
    }
    g_autofree char *lock_path = g_build_filename(out_dir, AUTHORITY_LOCK_NAME, NULL);
    int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock < 0 || flock(lock, LOCK_EX) != 0) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot lock %s: %s", lock_path,
                    g_strerror(errno));
        if (lock >= 0)
            close(lock);
        return FALSE;
    }

    gboolean ok = FALSE;
    Pending pending = {0};
    AuthorityPendingWarnings warnings = {0};
    g_autoptr(GHashTable) names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    gint64 last_run = 0;
    if (!query_int(db, "SELECT coalesce(max(created_at), 0) FROM publish_runs", &last_run, error))
        goto out;
    if (now < last_run) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "now (%" G_GINT64_FORMAT ") is before the last publish run (%" G_GINT64_FORMAT
                    "): refusing to publish files that would sort before published ones",
                    now, last_run);
        goto out;
    }
    if (!retention(db, options, now, error) ||
        !pending_load(db, now, options->embargo, &pending, error) ||
        !authority_warnings_pending(db, now, options->embargo, options->keep_days, &warnings,
                                    error))
        goto out;
    if ((pending.keys->len > 0 || warnings.warnings->len > 0) &&
        !publish_run(db, out_dir, options, signer, now, &pending, &warnings, result, error))
        goto out;
    if (!index_update(db, out_dir, names, &result->index_written, error) ||
        !sweep(out_dir, names, &result->files_removed, error))
        goto out;
    ok = TRUE;
out:
    if (pending.keys != NULL)
        g_array_unref(pending.keys);
    authority_pending_warnings_clear(&warnings);
    close(lock); /* releases the lock */
    return ok;
}
