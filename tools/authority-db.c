/* authority-db.c - schema, connections, codes and keys of the authority's database. */
#define G_LOG_DOMAIN "prox-authority"

#include "authority-db.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "PXAU": tells our database apart from any other sqlite file. */
#define AUTHORITY_DB_APPLICATION_ID 0x50584155
#define PEPPER_CHECK_MESSAGE "prox-authority pepper check"

struct _AuthorityDb {
    sqlite3 *sqlite;
    char *path;
    GHashTable *statements; /* SQL text -> sqlite3_stmt */
    uint8_t pepper[AUTHORITY_PEPPER_LEN];
};

/* Migrations: entry i brings schema version i to i + 1. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE meta ("
    "  name TEXT PRIMARY KEY,"
    "  value BLOB NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE codes ("
    "  hash BLOB PRIMARY KEY CHECK (length(hash) = 32),"
    "  onset_day INTEGER NOT NULL,"
    "  report_type INTEGER NOT NULL CHECK (report_type BETWEEN 1 AND 4),"
    "  issued_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  used_at INTEGER"
    ") WITHOUT ROWID;"
    "CREATE TABLE publish_runs ("
    "  id INTEGER PRIMARY KEY,"
    "  created_at INTEGER NOT NULL,"
    "  start_timestamp INTEGER NOT NULL,"
    "  end_timestamp INTEGER NOT NULL,"
    "  region TEXT NOT NULL,"
    "  real_keys INTEGER NOT NULL,"
    "  padding_keys INTEGER NOT NULL"
    ");"
    "CREATE TABLE export_files ("
    "  name TEXT PRIMARY KEY,"
    "  run_id INTEGER NOT NULL REFERENCES publish_runs (id) ON DELETE CASCADE,"
    "  batch_num INTEGER NOT NULL,"
    "  batch_size INTEGER NOT NULL,"
    "  key_count INTEGER NOT NULL,"
    "  bytes INTEGER NOT NULL"
    ");"
    "CREATE INDEX export_files_run ON export_files (run_id);"
    "CREATE TABLE keys ("
    "  id INTEGER PRIMARY KEY,"
    "  key_data BLOB NOT NULL UNIQUE CHECK (length(key_data) = 16),"
    "  rolling_start INTEGER NOT NULL CHECK (rolling_start >= 0),"
    "  rolling_period INTEGER NOT NULL CHECK (rolling_period BETWEEN 1 AND 144),"
    "  transmission_risk INTEGER NOT NULL CHECK (transmission_risk BETWEEN 0 AND 8),"
    "  report_type INTEGER NOT NULL CHECK (report_type BETWEEN 0 AND 4),"
    "  days_since_onset INTEGER," /* NULL: not known */
    "  uploaded_at INTEGER NOT NULL,"
    "  source INTEGER NOT NULL,"
    "  run_id INTEGER REFERENCES publish_runs (id) ON DELETE CASCADE" /* NULL: unpublished */
    ");"
    /* publish asks for unpublished keys whose period has ended, oldest end first */
    "CREATE INDEX keys_unpublished ON keys (rolling_start + rolling_period) WHERE run_id IS NULL;"
    "CREATE INDEX keys_run ON keys (run_id) WHERE run_id IS NOT NULL;",
    /* 1 -> 2: buses and venues (docs/venues.md) */
    "CREATE TABLE venues ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  address TEXT NOT NULL,"
    "  type INTEGER NOT NULL,"
    "  stay_minutes INTEGER NOT NULL,"
    "  location_id BLOB NOT NULL UNIQUE CHECK (length(location_id) = 32),"
    "  key_id TEXT NOT NULL,"
    "  key_version TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ");"
    /* subject: the beacon's TEK (SAME_VEHICLE) or the location hash (VENUE) */
    "CREATE TABLE venue_warnings ("
    "  id INTEGER PRIMARY KEY,"
    "  kind INTEGER NOT NULL CHECK (kind IN (1, 2)),"
    "  subject BLOB NOT NULL CHECK (length(subject) IN (16, 32)),"
    "  rolling_start INTEGER NOT NULL,"
    "  rolling_period INTEGER NOT NULL,"
    "  start_ts INTEGER NOT NULL,"
    "  end_ts INTEGER NOT NULL CHECK (end_ts > start_ts),"
    "  transmission_risk INTEGER NOT NULL CHECK (transmission_risk BETWEEN 1 AND 8),"
    "  imported_at INTEGER NOT NULL,"
    "  run_id INTEGER REFERENCES publish_runs (id) ON DELETE CASCADE," /* NULL: unpublished */
    "  UNIQUE (kind, subject, start_ts, end_ts)"
    ");"
    "CREATE INDEX venue_warnings_run ON venue_warnings (run_id);"
    /* check-ins reported with keys; published as VENUE warnings */
    "CREATE TABLE checkins ("
    "  id INTEGER PRIMARY KEY,"
    "  location_id BLOB NOT NULL CHECK (length(location_id) = 32),"
    "  start_ts INTEGER NOT NULL,"
    "  end_ts INTEGER NOT NULL CHECK (end_ts > start_ts),"
    "  report_type INTEGER NOT NULL CHECK (report_type BETWEEN 0 AND 4),"
    "  uploaded_at INTEGER NOT NULL,"
    "  source INTEGER NOT NULL,"
    "  run_id INTEGER REFERENCES publish_runs (id) ON DELETE CASCADE," /* NULL: unpublished */
    "  UNIQUE (location_id, start_ts, end_ts)"
    ");"
    "CREATE INDEX checkins_run ON checkins (run_id);"
    "ALTER TABLE publish_runs ADD COLUMN warnings INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE export_files ADD COLUMN warning_count INTEGER NOT NULL DEFAULT 0;",
    /* 2 -> 3: opt-in anonymous venue counts (POST /v1/venue-count): per location hash and
     * hour, how many devices said they checked in. Nothing else, in particular nothing about
     * who sent them or when they arrived. */
    "CREATE TABLE venue_counts ("
    "  location_hash BLOB NOT NULL CHECK (length(location_hash) = 32),"
    "  hour INTEGER NOT NULL CHECK (hour % 3600 = 0),"
    "  count INTEGER NOT NULL CHECK (count > 0),"
    "  PRIMARY KEY (location_hash, hour)"
    ") WITHOUT ROWID;"
    "CREATE INDEX venue_counts_hour ON venue_counts (hour);",
};
G_STATIC_ASSERT(G_N_ELEMENTS(migrations) == AUTHORITY_DB_SCHEMA_VERSION);

gboolean authority_db_fail(AuthorityDb *db, const char *what, GError **error)
{
    g_set_error(error, PROX_ERROR, PROX_ERROR_STORE, "%s: %s", what, sqlite3_errmsg(db->sqlite));
    return FALSE;
}

sqlite3 *authority_db_sqlite(AuthorityDb *db)
{
    return db->sqlite;
}

gboolean authority_db_exec(AuthorityDb *db, const char *sql, GError **error)
{
    if (sqlite3_exec(db->sqlite, sql, NULL, NULL, NULL) != SQLITE_OK)
        return authority_db_fail(db, sql, error);
    return TRUE;
}

sqlite3_stmt *authority_db_statement(AuthorityDb *db, const char *sql, GError **error)
{
    sqlite3_stmt *stmt = g_hash_table_lookup(db->statements, sql);
    if (stmt != NULL) {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
        return stmt;
    }
    if (sqlite3_prepare_v3(db->sqlite, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) !=
        SQLITE_OK) {
        authority_db_fail(db, "preparing a statement", error);
        return NULL;
    }
    g_hash_table_insert(db->statements, g_strdup(sql), stmt);
    return stmt;
}

static gboolean query_int(AuthorityDb *db, const char *sql, gint64 *out, GError **error)
{
    sqlite3_stmt *stmt = authority_db_statement(db, sql, error);
    if (stmt == NULL)
        return FALSE;
    int rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) {
        authority_db_fail(db, sql, error);
        sqlite3_reset(stmt);
        return FALSE;
    }
    *out = sqlite3_column_int64(stmt, 0);
    sqlite3_reset(stmt);
    return TRUE;
}

/* Creates the file 0600 when missing and refuses one that others may access. */
static gboolean prepare_file(const char *path, GError **error)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
    } else if (errno != EEXIST) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot create %s: %s", path,
                    g_strerror(errno));
        return FALSE;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "%s: %s", path, g_strerror(errno));
        return FALSE;
    }
    if (!S_ISREG(st.st_mode)) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "%s is not a regular file", path);
        return FALSE;
    }
    if ((st.st_mode & S_IRWXO) != 0) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO,
                    "%s is accessible by others (mode %04o); chmod o-rwx it", path,
                    (unsigned)(st.st_mode & 07777));
        return FALSE;
    }
    return TRUE;
}

static gboolean migrate(AuthorityDb *db, GError **error)
{
    gint64 app_id = 0;
    gint64 version = 0;
    if (!query_int(db, "PRAGMA application_id", &app_id, error) ||
        !query_int(db, "PRAGMA user_version", &version, error))
        return FALSE;
    if (version == 0 && app_id == 0) {
        gint64 tables = 0;
        if (!query_int(db, "SELECT count(*) FROM sqlite_schema", &tables, error))
            return FALSE;
        if (tables != 0) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_STORE,
                        "%s is a sqlite database of something else", db->path);
            return FALSE;
        }
    } else if (app_id != AUTHORITY_DB_APPLICATION_ID) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_STORE, "%s is not a prox-authority database",
                    db->path);
        return FALSE;
    }
    if (version > AUTHORITY_DB_SCHEMA_VERSION) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_STORE,
                    "%s has schema version %" G_GINT64_FORMAT ", newer than this program's %d",
                    db->path, version, AUTHORITY_DB_SCHEMA_VERSION);
        return FALSE;
    }
    for (gint64 v = version; v < AUTHORITY_DB_SCHEMA_VERSION; v++) {
        if (!authority_db_exec(db, migrations[v], error))
            return FALSE;
    }
    if (version < AUTHORITY_DB_SCHEMA_VERSION) {
        g_autofree char *set =
            g_strdup_printf("PRAGMA application_id = %d; PRAGMA user_version = %d",
                            AUTHORITY_DB_APPLICATION_ID, AUTHORITY_DB_SCHEMA_VERSION);
        if (!authority_db_exec(db, set, error))
            return FALSE;
    }
    return TRUE;
}

static gboolean pepper_create(const char *path, uint8_t pepper[AUTHORITY_PEPPER_LEN],
                              GError **error)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot create %s: %s", path,
                    g_strerror(errno));
        return FALSE;
    }
    randombytes_buf(pepper, AUTHORITY_PEPPER_LEN);
    gboolean ok = write(fd, pepper, AUTHORITY_PEPPER_LEN) == AUTHORITY_PEPPER_LEN && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    if (!ok) {
        unlink(path);
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot write %s: %s", path,
                    g_strerror(saved));
    }
    return ok;
}

static gboolean pepper_load(const char *path, uint8_t pepper[AUTHORITY_PEPPER_LEN], GError **error)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot open %s: %s", path,
                    g_strerror(errno));
        return FALSE;
    }
    struct stat st;
    uint8_t extra = 0;
    gboolean ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IRWXO) == 0 &&
                  read(fd, pepper, AUTHORITY_PEPPER_LEN) == AUTHORITY_PEPPER_LEN &&
                  read(fd, &extra, 1) == 0;
    close(fd);
    if (!ok)
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO,
                    "%s is not a %d-byte pepper file that only its owner and group can read", path,
                    AUTHORITY_PEPPER_LEN);
    return ok;
}

/* Loads PATH.pepper, creating it with a new database, and checks it belongs to this one. */
static gboolean pepper_setup(AuthorityDb *db, GError **error)
{
    g_autofree char *path = g_strconcat(db->path, ".pepper", NULL);
    uint8_t check[crypto_generichash_BYTES];
    sqlite3_stmt *stmt =
        authority_db_statement(db, "SELECT value FROM meta WHERE name = 'pepper_check'", error);
    if (stmt == NULL)
        return FALSE;
    int rc = sqlite3_step(stmt);
    gboolean known = rc == SQLITE_ROW && sqlite3_column_bytes(stmt, 0) == (int)sizeof check;
    if (known)
        memcpy(check, sqlite3_column_blob(stmt, 0), sizeof check);
    sqlite3_reset(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return authority_db_fail(db, "reading the pepper check", error);

    gboolean exists = g_file_test(path, G_FILE_TEST_EXISTS);
    if (known && !exists) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO,
                    "%s is missing: codes in %s cannot be checked without it (restore it "
                    "from where the database came from)",
                    path, db->path);
        return FALSE;
    }
    if (exists ? !pepper_load(path, db->pepper, error) : !pepper_create(path, db->pepper, error))
        return FALSE;

    uint8_t computed[crypto_generichash_BYTES];
    crypto_generichash(computed, sizeof computed, (const unsigned char *)PEPPER_CHECK_MESSAGE,
                       strlen(PEPPER_CHECK_MESSAGE), db->pepper, AUTHORITY_PEPPER_LEN);
    if (known) {
        if (sodium_memcmp(computed, check, sizeof check) != 0) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "%s is not the pepper of %s", path,
                        db->path);
            return FALSE;
        }
        return TRUE;
    }
    stmt = authority_db_statement(db, "INSERT INTO meta (name, value) VALUES ('pepper_check', ?1)",
                                  error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_blob(stmt, 1, computed, sizeof computed, SQLITE_TRANSIENT);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE)
        return authority_db_fail(db, "storing the pepper check", error);
    return TRUE;
}

static void statement_free(gpointer stmt)
{
    sqlite3_finalize(stmt);
}

AuthorityDb *authority_db_open(const char *path, GError **error)
{
    if (sodium_init() < 0) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_IO, "libsodium failed to initialise");
        return NULL;
    }
    if (!prepare_file(path, error))
        return NULL;
    g_autoptr(AuthorityDb) db = g_new0(AuthorityDb, 1);
    db->path = g_strdup(path);
    db->statements = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, statement_free);
    if (sqlite3_open_v2(path, &db->sqlite, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_STORE, "cannot open %s: %s", path,
                    db->sqlite != NULL ? sqlite3_errmsg(db->sqlite) : "out of memory");
        return NULL;
    }
    sqlite3_extended_result_codes(db->sqlite, 1);
    sqlite3_busy_timeout(db->sqlite, 10000);
    sqlite3_stmt *stmt = authority_db_statement(db, "PRAGMA journal_mode = WAL", error);
    if (stmt == NULL)
        return NULL;
    if (sqlite3_step(stmt) != SQLITE_ROW ||
        g_ascii_strcasecmp((const char *)sqlite3_column_text(stmt, 0), "wal") != 0) {
        sqlite3_reset(stmt);
        g_set_error(error, PROX_ERROR, PROX_ERROR_STORE, "%s: cannot switch to WAL journal", path);
        return NULL;
    }
    sqlite3_reset(stmt);
    if (!authority_db_exec(db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", error))
        return NULL;
    /* One writer sets up schema and pepper; another process opening at the same time waits. */
    if (!authority_db_exec(db, "BEGIN IMMEDIATE", error))
        return NULL;
    if (!migrate(db, error) || !pepper_setup(db, error) ||
        !authority_db_exec(db, "COMMIT", error)) {
        sqlite3_exec(db->sqlite, "ROLLBACK", NULL, NULL, NULL);
        return NULL;
    }
    return g_steal_pointer(&db);
}

void authority_db_close(AuthorityDb *db)
{
    if (db == NULL)
        return;
    if (db->statements != NULL)
        g_hash_table_destroy(db->statements);
    if (db->sqlite != NULL)
        sqlite3_close(db->sqlite);
    sodium_memzero(db->pepper, sizeof db->pepper);
    g_free(db->path);
    g_free(db);
}

void authority_db_code_hash(AuthorityDb *db, const char *code,
                            uint8_t hash[AUTHORITY_CODE_HASH_LEN])
{
    authority_code_hash(code, db->pepper, hash);
}

gboolean authority_db_code_insert(AuthorityDb *db, const char *code, gint64 onset_day,
                                  ProxReportType report_type, gint64 issued_at, gint64 expires_at,
                                  GError **error)
{
    uint8_t hash[AUTHORITY_CODE_HASH_LEN];
    authority_db_code_hash(db, code, hash);
    sqlite3_stmt *stmt = authority_db_statement(
        db,
        "INSERT INTO codes (hash, onset_day, report_type, issued_at, expires_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5)",
        error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_blob(stmt, 1, hash, sizeof hash, SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 2, onset_day);
    sqlite3_bind_int(stmt, 3, report_type);
    sqlite3_bind_int64(stmt, 4, issued_at);
    sqlite3_bind_int64(stmt, 5, expires_at);
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE)
        return authority_db_fail(db, "storing the code", error);
    return TRUE;
}

gboolean authority_db_code_claim(AuthorityDb *db, const char *code, gint64 now,
                                 AuthorityCodeState *state, AuthorityCodeCase *code_case,
                                 GError **error)
{
    uint8_t hash[AUTHORITY_CODE_HASH_LEN];
    authority_db_code_hash(db, code, hash);
    sqlite3_stmt *stmt = authority_db_statement(
        db, "SELECT onset_day, report_type, expires_at, used_at FROM codes WHERE hash = ?1", error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_blob(stmt, 1, hash, sizeof hash, SQLITE_TRANSIENT);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(stmt);
        *state = AUTHORITY_CODE_UNKNOWN;
        return TRUE;
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(stmt);
        return authority_db_fail(db, "looking the code up", error);
    }
    code_case->onset_day = sqlite3_column_int64(stmt, 0);
    code_case->report_type = (ProxReportType)sqlite3_column_int(stmt, 1);
    gint64 expires_at = sqlite3_column_int64(stmt, 2);
    gboolean used = sqlite3_column_type(stmt, 3) != SQLITE_NULL;
    sqlite3_reset(stmt);
    if (used) {
        *state = AUTHORITY_CODE_USED;
        return TRUE;
    }
    if (now >= expires_at) {
        *state = AUTHORITY_CODE_EXPIRED;
        return TRUE;
    }
    stmt = authority_db_statement(
        db, "UPDATE codes SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL", error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_blob(stmt, 1, hash, sizeof hash, SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 2, now);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE)
        return authority_db_fail(db, "marking the code used", error);
    *state = sqlite3_changes(db->sqlite) == 1 ? AUTHORITY_CODE_VALID : AUTHORITY_CODE_USED;
    return TRUE;
}

gboolean authority_db_keys_insert(AuthorityDb *db, const ProxDiagnosisKey *keys, size_t n,
                                  gint64 uploaded_at, AuthorityKeySource source, guint *inserted,
                                  GError **error)
{
    *inserted = 0;
    sqlite3_stmt *stmt = authority_db_statement(
        db,
        "INSERT INTO keys (key_data, rolling_start, rolling_period, transmission_risk, "
        "report_type, days_since_onset, uploaded_at, source) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (key_data) DO NOTHING",
        error);
    if (stmt == NULL)
        return FALSE;
    for (size_t i = 0; i < n; i++) {
        const ProxDiagnosisKey *k = &keys[i];
        sqlite3_reset(stmt);
        sqlite3_bind_blob(stmt, 1, k->tek.key, PROX_KEY_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 2, k->tek.rolling_start);
        sqlite3_bind_int64(stmt, 3, k->tek.rolling_period);
        sqlite3_bind_int(stmt, 4, k->transmission_risk_level);
        sqlite3_bind_int(stmt, 5, k->report_type);
        if (k->has_days_since_onset)
            sqlite3_bind_int(stmt, 6, k->days_since_onset);
        else
            sqlite3_bind_null(stmt, 6);
        sqlite3_bind_int64(stmt, 7, uploaded_at);
        sqlite3_bind_int(stmt, 8, source);
        if (sqlite3_step(stmt) != SQLITE_DONE) {
            sqlite3_reset(stmt);
            return authority_db_fail(db, "storing a key", error);
        }
        *inserted += (guint)sqlite3_changes(db->sqlite);
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return TRUE;
}
