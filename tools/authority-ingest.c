/* authority-ingest.c - storing uploads; group-committing writer thread for the key server. */
#define G_LOG_DOMAIN "prox-keyserver"

#include "authority-ingest.h"

#include "authority-venue.h"

#include <string.h>

/* Uploads stored in one transaction at most: bounds how long one commit holds the lock. */
#define INGEST_MAX_BATCH 256

static gboolean reject_for_state(AuthorityCodeState state, GError **error)
{
    switch (state) {
    case AUTHORITY_CODE_VALID:
        return TRUE;
    case AUTHORITY_CODE_UNKNOWN:
        g_set_error_literal(error, AUTHORITY_REJECT, AUTHORITY_REJECT_INVALID_CODE,
                            "code is not valid");
        break;
    case AUTHORITY_CODE_EXPIRED:
        g_set_error_literal(error, AUTHORITY_REJECT, AUTHORITY_REJECT_CODE_EXPIRED,
                            "code has expired");
        break;
    case AUTHORITY_CODE_USED:
        g_set_error_literal(error, AUTHORITY_REJECT, AUTHORITY_REJECT_CODE_USED,
                            "code has already been used");
        break;
    }
    return FALSE;
}

/* Storage failures are the server's problem, not the client's: 503, retry later. */
static gboolean unavailable(GError **error, GError *cause)
{
    g_warning("storing an upload failed: %s", cause->message);
    g_set_error_literal(error, AUTHORITY_REJECT, AUTHORITY_REJECT_UNAVAILABLE,
                        "the server cannot store keys right now; try again later");
    g_error_free(cause);
    return FALSE;
}

gboolean authority_ingest_upload(AuthorityDb *db, const AuthorityUpload *upload, gint64 now,
                                 guint *inserted, GError **error)
{
    guint checkins = 0;
    return authority_ingest_upload_full(db, upload, now, inserted, &checkins, error);
}

/* Check-ins of an upload (the field may be NULL for uploads built in code). */
static gboolean store_checkins(AuthorityDb *db, const AuthorityUpload *upload,
                               ProxReportType report_type, gint64 now, AuthorityKeySource source,
                               guint *inserted, GError **error)
{
    *inserted = 0;
    if (upload->checkins == NULL || upload->checkins->len == 0)
        return TRUE;
    return authority_checkins_insert(db, (const AuthorityCheckin *)upload->checkins->data,
                                     upload->checkins->len, report_type, now, source, inserted,
                                     error);
}

gboolean authority_ingest_upload_full(AuthorityDb *db, const AuthorityUpload *upload, gint64 now,
                                      guint *inserted, guint *checkins_inserted, GError **error)
{
    *checkins_inserted = 0;
    g_return_val_if_fail(upload->code != NULL, FALSE);
    GError *local = NULL;
    AuthorityCodeState state = AUTHORITY_CODE_UNKNOWN;
    AuthorityCodeCase code_case = {0};
    if (!authority_db_code_claim(db, upload->code, now, &state, &code_case, &local))
        return unavailable(error, local);
    if (!reject_for_state(state, error))
        return FALSE;
    guint n = upload->keys->len;
    g_autofree ProxDiagnosisKey *keys = g_memdup2(upload->keys->data, n * sizeof *keys);
    for (guint i = 0; i < n; i++) {
        keys[i].report_type = code_case.report_type;
        keys[i].has_days_since_onset = TRUE;
        keys[i].days_since_onset = authority_days_since_onset(&keys[i].tek, code_case.onset_day);
    }
    if (!authority_db_keys_insert(db, keys, n, now, AUTHORITY_KEY_SOURCE_UPLOAD, inserted,
                                  &local) ||
        !store_checkins(db, upload, code_case.report_type, now, AUTHORITY_KEY_SOURCE_UPLOAD,
                        checkins_inserted, &local))
        return unavailable(error, local);
    return TRUE;
}

gboolean authority_ingest_import(AuthorityDb *db, const AuthorityUpload *upload,
                                 ProxReportType default_type, gboolean has_onset, gint64 onset_day,
                                 gint64 now, guint *inserted, guint *checkins_inserted,
                                 GError **error)
{
    guint n = upload->keys->len;
    g_autofree ProxDiagnosisKey *keys = g_memdup2(upload->keys->data, n * sizeof *keys);
    for (guint i = 0; i < n; i++) {
        if (keys[i].report_type == PROX_REPORT_UNKNOWN)
            keys[i].report_type = default_type;
        if (!keys[i].has_days_since_onset && has_onset) {
            keys[i].has_days_since_onset = TRUE;
            keys[i].days_since_onset = authority_days_since_onset(&keys[i].tek, onset_day);
        }
    }
    if (!authority_db_exec(db, "BEGIN IMMEDIATE", error))
        return FALSE;
    if (!authority_db_keys_insert(db, keys, n, now, AUTHORITY_KEY_SOURCE_IMPORT, inserted, error) ||
        !store_checkins(db, upload, default_type, now, AUTHORITY_KEY_SOURCE_IMPORT,
                        checkins_inserted, error) ||
        !authority_db_exec(db, "COMMIT", error)) {
        sqlite3_exec(authority_db_sqlite(db), "ROLLBACK", NULL, NULL, NULL);
        return FALSE;
    }
    return TRUE;
}

/* ---- Writer thread ---- */

/* An upload (upload != NULL) or a venue count (count_done != NULL). */
typedef struct {
    AuthorityUpload *upload;
    gint64 now;
    AuthorityIngestDone done;
    AuthorityVenueCount count;
    AuthorityIngestCountDone count_done;
    gpointer user_data;
    guint inserted;
    guint checkins;
    GError *error;
} Job;

struct _AuthorityIngest {
    GAsyncQueue *queue; /* Job *, or the stop sentinel */
    GThread *thread;
    AuthorityDb *db;
    GMainContext *context;
};

static Job stop_sentinel;

static gboolean job_deliver(gpointer data)
{
    Job *job = data;
    if (job->count_done != NULL)
        job->count_done(job->error, job->user_data);
    else
        job->done(job->inserted, job->checkins, job->error, job->user_data);
    g_clear_error(&job->error);
    authority_upload_free(job->upload);
    g_free(job);
    return G_SOURCE_REMOVE;
}

static void batch_fail(GPtrArray *batch, const GError *cause)
{
    g_warning("storing uploads failed: %s", cause->message);
    for (guint i = 0; i < batch->len; i++) {
        Job *job = batch->pdata[i];
        job->inserted = 0;
        job->checkins = 0;
        g_clear_error(&job->error);
        g_set_error_literal(&job->error, AUTHORITY_REJECT, AUTHORITY_REJECT_UNAVAILABLE,
                            "the server cannot store keys right now; try again later");
    }
}

static gboolean store_count(AuthorityDb *db, const AuthorityVenueCount *count, GError **error)
{
    g_autoptr(GError) local = NULL;
    if (authority_venue_count_add(db, count, &local))
        return TRUE;
    g_warning("storing a venue count failed: %s", local->message);
    g_set_error_literal(error, AUTHORITY_REJECT, AUTHORITY_REJECT_UNAVAILABLE,
                        "the server cannot store counts right now; try again later");
    return FALSE;
}

static void batch_store(AuthorityDb *db, GPtrArray *batch)
{
    g_autoptr(GError) error = NULL;
    if (!authority_db_exec(db, "BEGIN IMMEDIATE", &error)) {
        batch_fail(batch, error);
        return;
    }
    for (guint i = 0; i < batch->len; i++) {
        Job *job = batch->pdata[i];
        if (!authority_db_exec(db, "SAVEPOINT upload", &error))
            break;
        gboolean stored;
        if (job->count_done != NULL) {
            stored = store_count(db, &job->count, &job->error);
        } else {
            stored = authority_ingest_upload_full(db, job->upload, job->now, &job->inserted,
                                                  &job->checkins, &job->error);
        }
        if (stored) {
            if (!authority_db_exec(db, "RELEASE upload", &error))
                break;
        } else {
            job->inserted = 0;
            job->checkins = 0;
            if (!authority_db_exec(db, "ROLLBACK TO upload; RELEASE upload", &error))
                break;
        }
    }
    if (error == NULL && authority_db_exec(db, "COMMIT", &error))
        return;
    sqlite3_exec(authority_db_sqlite(db), "ROLLBACK", NULL, NULL, NULL);
    batch_fail(batch, error);
}

static gpointer writer_main(gpointer data)
{
    AuthorityIngest *ingest = data;
    gboolean stop = FALSE;
    while (!stop) {
        Job *job = g_async_queue_pop(ingest->queue);
        if (job == &stop_sentinel)
            break;
        g_autoptr(GPtrArray) batch = g_ptr_array_new();
        g_ptr_array_add(batch, job);
        while (batch->len < INGEST_MAX_BATCH && (job = g_async_queue_try_pop(ingest->queue))) {
            if (job == &stop_sentinel) {
                stop = TRUE;
                break;
            }
            g_ptr_array_add(batch, job);
        }
        batch_store(ingest->db, batch);
        for (guint i = 0; i < batch->len; i++)
            g_main_context_invoke(ingest->context, job_deliver, batch->pdata[i]);
    }
    return NULL;
}

AuthorityIngest *authority_ingest_new(const char *db_path, GMainContext *context, GError **error)
{
    AuthorityDb *db = authority_db_open(db_path, error);
    if (db == NULL)
        return NULL;
    AuthorityIngest *ingest = g_new0(AuthorityIngest, 1);
    ingest->db = db;
    ingest->context = g_main_context_ref(context);
    ingest->queue = g_async_queue_new();
    ingest->thread = g_thread_new("ingest", writer_main, ingest);
    return ingest;
}

void authority_ingest_submit(AuthorityIngest *ingest, AuthorityUpload *upload, gint64 now,
                             AuthorityIngestDone done, gpointer user_data)
{
    Job *job = g_new0(Job, 1);
    job->upload = upload;
    job->now = now;
    job->done = done;
    job->user_data = user_data;
    g_async_queue_push(ingest->queue, job);
}

void authority_ingest_submit_count(AuthorityIngest *ingest, const AuthorityVenueCount *count,
                                   AuthorityIngestCountDone done, gpointer user_data)
{
    Job *job = g_new0(Job, 1);
    job->count = *count;
    job->count_done = done;
    job->user_data = user_data;
    g_async_queue_push(ingest->queue, job);
}

void authority_ingest_free(AuthorityIngest *ingest)
{
    if (ingest == NULL)
        return;
    g_async_queue_push(ingest->queue, &stop_sentinel);
    g_thread_join(ingest->thread);
    g_async_queue_unref(ingest->queue);
    authority_db_close(ingest->db);
    g_main_context_unref(ingest->context);
    g_free(ingest);
}
