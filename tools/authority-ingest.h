/* authority-ingest.h - storing checked uploads, and the key server's writer thread.
 *
 * An upload with a code takes its report type and days since onset from the code's case (the
 * authority's word, not the device's), consumes the code and stores the keys in one
 * transaction: either all of it happens or none. The key server hands uploads to a writer
 * thread that stores everything queued in one transaction with one savepoint per upload
 * ("group commit"): a rejected upload rolls back to its savepoint, and one fsync acknowledges
 * many uploads, which is what lets synchronous=FULL keep up with hundreds of uploads a second.
 * Opt-in venue counts go through the same writer (one savepoint each).
 */
#pragma once

#include "authority-db.h"
#include "authority-upload.h"
#include "authority-venue.h"

G_BEGIN_DECLS

/* Inside the caller's transaction (or savepoint): claims the code and stores the keys. A
 * code that is unknown, expired or used is an AUTHORITY_REJECT error; the caller must then
 * roll back. */
gboolean authority_ingest_upload(AuthorityDb *db, const AuthorityUpload *upload, gint64 now,
                                 guint *inserted, GError **error);
/* The same; *checkins_inserted counts the upload's venue check-ins not stored before (they
 * are stored with the code's report type, published as VENUE warnings). */
gboolean authority_ingest_upload_full(AuthorityDb *db, const AuthorityUpload *upload, gint64 now,
                                      guint *inserted, guint *checkins_inserted, GError **error);

/* The authority's own keys (and check-ins, if the file has any), in a transaction of their
 * own. A key's reportType defaults to default_type; its days since onset, when absent, is
 * computed from onset_day if has_onset. Check-ins get default_type. */
gboolean authority_ingest_import(AuthorityDb *db, const AuthorityUpload *upload,
                                 ProxReportType default_type, gboolean has_onset, gint64 onset_day,
                                 gint64 now, guint *inserted, guint *checkins_inserted,
                                 GError **error);

typedef struct _AuthorityIngest AuthorityIngest;

/* Called in the GMainContext given to authority_ingest_new(), once per submitted upload:
 * error is NULL on success, else an AUTHORITY_REJECT error. inserted counts new keys,
 * checkins new check-ins. */
typedef void (*AuthorityIngestDone)(guint inserted, guint checkins, const GError *error,
                                    gpointer user_data);

/* Starts the writer thread with its own connection to the database at db_path. */
AuthorityIngest *authority_ingest_new(const char *db_path, GMainContext *context, GError **error);

/* Queues a checked upload (taking it) received at `now`. */
void authority_ingest_submit(AuthorityIngest *ingest, AuthorityUpload *upload, gint64 now,
                             AuthorityIngestDone done, gpointer user_data);

/* Called like AuthorityIngestDone, once per submitted venue count. */
typedef void (*AuthorityIngestCountDone)(const GError *error, gpointer user_data);

/* Queues a checked venue count (POST /v1/venue-count): the writer adds it to the stored count
 * of its (location hash, hour) in the same group commit as uploads. */
void authority_ingest_submit_count(AuthorityIngest *ingest, const AuthorityVenueCount *count,
                                   AuthorityIngestCountDone done, gpointer user_data);

/* Stores everything queued, stops the thread and closes its connection. The done callbacks of
 * the last uploads are dispatched by the main context afterwards. */
void authority_ingest_free(AuthorityIngest *ingest);

G_END_DECLS
