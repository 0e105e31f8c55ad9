/* authority-db.h - the health authority's sqlite database, shared by prox-authority and
 * prox-keyserver (the device's store is prox-store.h; this is a different schema).
 *
 * Tables: codes (keyed hashes of one-time codes, their onset day, report type, expiry and
 * use), keys (uploaded and imported keys, with the publish run that published them),
 * publish_runs and export_files (what publish has written); since schema 2 also venues
 * (registered QR venues), venue_warnings (imported bus/venue warnings) and checkins (venue
 * check-ins reported with keys), see authority-venue.h; since schema 3 venue_counts (the
 * opt-in anonymous per-venue hourly check-in counts: location hash, hour, count). Keys are never
 * linked to the code they came with: the authority knows who got which code, and must not learn
 * whose keys are whose.
 *
 * The file is created mode 0600 and refused when others may access it; WAL journal,
 * synchronous=FULL (an acknowledged upload survives a power cut), foreign keys on, a busy
 * timeout so both tools can share it, and a schema version with migrations. The pepper that
 * keys code hashes is in PATH.pepper (0600), outside the database, so a copy of the database
 * alone cannot be used to test code guesses; the database remembers a check value of it and
 * refuses a wrong or missing pepper.
 *
 * One AuthorityDb is used by one thread at a time. Errors are PROX_ERROR_STORE (sqlite),
 * PROX_ERROR_IO (files) or PROX_ERROR_INVALID_ARGUMENT.
 */
#pragma once

#include "authority-code.h"
#include "prox-types.h"

#include <sqlite3.h>

G_BEGIN_DECLS

#define AUTHORITY_DB_SCHEMA_VERSION 3

typedef struct _AuthorityDb AuthorityDb;

/* Opens the database at path, creating it (and its pepper) when it does not exist. */
AuthorityDb *authority_db_open(const char *path, GError **error);
void authority_db_close(AuthorityDb *db);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AuthorityDb, authority_db_close)

sqlite3 *authority_db_sqlite(AuthorityDb *db);

/* Runs SQL without results ("BEGIN IMMEDIATE", "SAVEPOINT s", ...). */
gboolean authority_db_exec(AuthorityDb *db, const char *sql, GError **error);
/* A cached prepared statement (reset, bindings cleared): valid until the db is closed. */
sqlite3_stmt *authority_db_statement(AuthorityDb *db, const char *sql, GError **error);
/* Sets error from sqlite's last message: "<what>: <message>". Returns FALSE. */
gboolean authority_db_fail(AuthorityDb *db, const char *what, GError **error);

/* ---- One-time codes ---- */

void authority_db_code_hash(AuthorityDb *db, const char *code,
                            uint8_t hash[AUTHORITY_CODE_HASH_LEN]);

/* Stores a new code (normalized) with its case's onset day (days since 1970-01-01 UTC) and
 * report type. */
gboolean authority_db_code_insert(AuthorityDb *db, const char *code, gint64 onset_day,
                                  ProxReportType report_type, gint64 issued_at, gint64 expires_at,
                                  GError **error);

typedef enum {
    AUTHORITY_CODE_VALID,
    AUTHORITY_CODE_UNKNOWN,
    AUTHORITY_CODE_EXPIRED,
    AUTHORITY_CODE_USED,
} AuthorityCodeState;

typedef struct {
    gint64 onset_day;
    ProxReportType report_type;
} AuthorityCodeCase;

/* Inside the caller's transaction: looks the code up and, when it is valid at `now`, marks
 * it used and fills *code_case. *state says which. */
gboolean authority_db_code_claim(AuthorityDb *db, const char *code, gint64 now,
                                 AuthorityCodeState *state, AuthorityCodeCase *code_case,
                                 GError **error);

/* ---- Keys ---- */

typedef enum {
    AUTHORITY_KEY_SOURCE_UPLOAD = 0, /* a device, with a one-time code */
    AUTHORITY_KEY_SOURCE_IMPORT = 1, /* the authority (prox-authority import-keys) */
} AuthorityKeySource;

/* Inside the caller's transaction. A key whose key data is already stored is skipped (a case
 * that reports twice, or an import of keys that were uploaded): *inserted counts new keys. */
gboolean authority_db_keys_insert(AuthorityDb *db, const ProxDiagnosisKey *keys, size_t n,
                                  gint64 uploaded_at, AuthorityKeySource source, guint *inserted,
                                  GError **error);

G_END_DECLS
