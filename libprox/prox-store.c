/* prox-store.c - sqlite store: schema and forward migrations, batched writes, retention.
 *
 * Durability: WAL with synchronous=FULL. In WAL mode NORMAL already survives a killed
 * process (the WAL is in the OS page cache), but an OS crash or power loss can drop the last
 * commits; FULL fsyncs the WAL on every commit, so "the call returned" means "on disk". Our
 * writes are batches every few minutes, so the extra fsync per commit is cheap (measured in
 * the durability test and reported there). ProxStoreOptions.fast_sync selects NORMAL for
 * simulators.
 */
#define G_LOG_DOMAIN "prox-store"

#include "prox-store.h"

#include "prox-venue.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <sodium.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECONDS_PER_DAY 86400
#define RETENTION_PERIOD_SECONDS 3600 /* automatic retention runs at most this often */
#define DEFAULT_KEY_CHUNK 4096
#define WINDOW_SCAN_BYTES 6 /* min, typical, LE32 seconds since last scan */

/* ---- schema ---- */

/* v1: first release. Sightings are one row per (scan instance, RPI), PROTOCOL.md §3; the RSSI
 * sum (not the mean) is stored so merges of batches stay exact. */
static const char migration_v1[] =
    "CREATE TABLE settings ("
    "  name TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE own_teks ("
    "  id INTEGER PRIMARY KEY,"
    "  key_data BLOB NOT NULL UNIQUE CHECK (length(key_data) = 16),"
    "  rolling_start INTEGER NOT NULL,"
    "  rolling_period INTEGER NOT NULL CHECK (rolling_period BETWEEN 1 AND 144),"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX own_teks_start ON own_teks (rolling_start);"
    /* AUTOINCREMENT: the daemon holds scan ids in memory; never reuse one after retention. */
    "CREATE TABLE scan_instances ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  started_at INTEGER NOT NULL,"
    "  ended_at INTEGER,"
    "  seconds_since_last_scan INTEGER NOT NULL"
    ");"
    "CREATE INDEX scan_instances_start ON scan_instances (started_at);"
    "CREATE INDEX scan_instances_open ON scan_instances (id) WHERE ended_at IS NULL;"
    "CREATE TABLE sightings ("
    "  scan_id INTEGER NOT NULL REFERENCES scan_instances (id) ON DELETE CASCADE,"
    "  rpi BLOB NOT NULL CHECK (length(rpi) = 16),"
    "  aem BLOB NOT NULL CHECK (length(aem) = 4),"
    "  first_seen INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL,"
    "  report_count INTEGER NOT NULL,"
    "  rssi_count INTEGER NOT NULL,"
    "  rssi_min INTEGER,"
    "  rssi_max INTEGER,"
    "  rssi_sum INTEGER NOT NULL,"
    "  PRIMARY KEY (scan_id, rpi)"
    ") WITHOUT ROWID;"
    "CREATE INDEX sightings_first_seen ON sightings (first_seen);"
    /* AUTOINCREMENT: batch ids are the "match only newer keys" watermark. */
    "CREATE TABLE key_batches ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  source TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  imported_at INTEGER NOT NULL,"
    "  finished INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (source, name)"
    ");"
    "CREATE TABLE diagnosis_keys ("
    "  id INTEGER PRIMARY KEY,"
    "  batch_id INTEGER NOT NULL REFERENCES key_batches (id) ON DELETE CASCADE,"
    "  key_data BLOB NOT NULL CHECK (length(key_data) = 16),"
    "  rolling_start INTEGER NOT NULL,"
    "  rolling_period INTEGER NOT NULL,"
    "  transmission_risk_level INTEGER NOT NULL,"
    "  report_type INTEGER NOT NULL,"
    "  days_since_onset INTEGER," /* NULL when the key list did not say */
    "  UNIQUE (key_data, rolling_start)"
    ");";

/* v2: matching results and sync state; indexes to stream keys batch by batch, to cascade
 * batch deletes without scanning every key, and to expire keys without a full scan. */
static const char migration_v2[] =
    "CREATE INDEX diagnosis_keys_batch ON diagnosis_keys (batch_id);"
    "CREATE INDEX diagnosis_keys_end ON diagnosis_keys (rolling_start + rolling_period);"
    "CREATE TABLE sync_state ("
    "  name TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE exposure_windows ("
    "  id INTEGER PRIMARY KEY,"
    "  key_id INTEGER NOT NULL REFERENCES diagnosis_keys (id) ON DELETE CASCADE,"
    "  day INTEGER NOT NULL,"
    "  start_time INTEGER NOT NULL,"
    "  end_time INTEGER NOT NULL,"
    "  report_type INTEGER NOT NULL,"
    "  infectiousness INTEGER NOT NULL,"
    "  calibration_confidence INTEGER NOT NULL,"
    "  transmission_risk_level INTEGER NOT NULL,"
    "  weighted_minutes REAL NOT NULL,"
    "  risk REAL NOT NULL,"
    "  scans BLOB NOT NULL" /* WINDOW_SCAN_BYTES per scan instance */
    ");"
    "CREATE INDEX exposure_windows_key ON exposure_windows (key_id);"
    "CREATE INDEX exposure_windows_day ON exposure_windows (day);";

/* v3: buses and venues (docs/venues.md). Warnings belong to their key batch like keys do.
 * `subject` is the beacon's key data (SAME_VEHICLE, with its rolling start/period) or the
 * location hash (VENUE, rolling columns 0). AUTOINCREMENT: exposures name warnings by id,
 * and a new warning must never take the id of an expired one. Exposures outlive the batch
 * (their own retention), so warning_id is not a foreign key. At most one open check-in. */
static const char migration_v3[] =
    "CREATE TABLE venue_warnings ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  batch_id INTEGER NOT NULL REFERENCES key_batches (id) ON DELETE CASCADE,"
    "  kind INTEGER NOT NULL CHECK (kind IN (1, 2)),"
    "  subject BLOB NOT NULL CHECK (length(subject) IN (16, 32)),"
    "  rolling_start INTEGER NOT NULL,"
    "  rolling_period INTEGER NOT NULL,"
    "  start_time INTEGER NOT NULL,"
    "  end_time INTEGER NOT NULL,"
    "  transmission_risk_level INTEGER NOT NULL,"
    "  UNIQUE (kind, subject, rolling_start, start_time, end_time)"
    ");"
    "CREATE INDEX venue_warnings_batch ON venue_warnings (batch_id);"
    "CREATE TABLE checkins ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  location_id BLOB NOT NULL CHECK (length(location_id) = 32),"
    "  arrived INTEGER NOT NULL,"
    "  departed INTEGER," /* NULL while checked in */
    "  planned_departure INTEGER NOT NULL,"
    "  CHECK (departed IS NULL OR departed >= arrived)"
    ");"
    "CREATE INDEX checkins_arrived ON checkins (arrived);"
    "CREATE INDEX checkins_departed ON checkins (departed);"
    "CREATE UNIQUE INDEX checkins_one_open ON checkins (departed IS NULL) WHERE departed IS NULL;"
    "CREATE TABLE venue_exposures ("
    "  id INTEGER PRIMARY KEY,"
    "  warning_id INTEGER NOT NULL UNIQUE,"
    "  kind INTEGER NOT NULL,"
    "  day INTEGER NOT NULL,"
    "  start_time INTEGER NOT NULL,"
    "  end_time INTEGER NOT NULL,"
    "  minutes INTEGER NOT NULL,"
    "  transmission_risk_level INTEGER NOT NULL,"
    "  detected_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX venue_exposures_day ON venue_exposures (day);"
    "CREATE INDEX venue_exposures_end ON venue_exposures (end_time);";

/* v4: revised and revoked keys (GAEN revised_keys, report type REVOKED). A key's row keeps
 * the batch that first stored it; revised_batch_id is the batch whose revision set its
 * current metadata (NULL: never revised), so an older revision cannot undo a newer one.
 * A revoked key stays as a tombstone with report_type REVOKED (5), invisible to matching,
 * so that a later copy cannot bring it back; it expires like any key. Keys stored revoked
 * before v4 could never count for risk (risk drops REVOKED windows): their windows go. */
static const char migration_v4[] = "ALTER TABLE diagnosis_keys ADD COLUMN revised_batch_id INTEGER;"
                                   "DELETE FROM exposure_windows WHERE key_id IN"
                                   "  (SELECT id FROM diagnosis_keys WHERE report_type = 5);";

/* migrations[i] takes the schema from version i to i + 1. Append only; never edit a step. */
static const char *const migrations[] = {
    migration_v1,
    migration_v2,
    migration_v3,
    migration_v4,
};
G_STATIC_ASSERT(G_N_ELEMENTS(migrations) == PROX_STORE_SCHEMA_VERSION);

/* ---- cached statements ---- */

typedef enum {
    STMT_SCAN_CLOSE_OPEN,
    STMT_SCAN_PREVIOUS,
    STMT_SCAN_INSERT,
    STMT_SCAN_END,
    STMT_SCANS_LOAD,
    STMT_SIGHTING_UPSERT,
    STMT_COUNT_ENCOUNTERS,
    STMT_RPIS_PER_HOUR,
    STMT_TEK_CURRENT,
    STMT_TEK_INSERT,
    STMT_TEK_CUT,
    STMT_TEKS_LOAD,
    STMT_BATCH_FIND,
    STMT_BATCH_DELETE,
    STMT_BATCH_INSERT,
    STMT_BATCH_STATE,
    STMT_BATCH_FINISH,
    STMT_BATCH_HAS,
    STMT_BATCH_LAST,
    STMT_BATCH_NEXT,
    STMT_KEY_INSERT,
    STMT_KEY_FIND,
    STMT_KEY_REVISE,
    STMT_KEYS_COUNT,
    STMT_KEYS_CHUNK,
    STMT_WINDOWS_DELETE,
    STMT_WINDOW_INSERT,
    STMT_WINDOWS_LOAD,
    STMT_SETTING_GET,
    STMT_SETTING_SET,
    STMT_SETTING_DELETE,
    STMT_SYNC_GET,
    STMT_SYNC_SET,
    STMT_SYNC_DELETE,
    STMT_EXPIRE_SCANS,
    STMT_EXPIRE_SIGHTINGS,
    STMT_EXPIRE_TEKS,
    STMT_EXPIRE_BATCHES,
    STMT_EXPIRE_KEYS,
    STMT_EXPIRE_WINDOWS,
    STMT_EXPIRE_CHECKINS,
    STMT_EXPIRE_VENUE_EXPOSURES,
    STMT_WARNING_INSERT,
    STMT_WARNINGS_LOAD,
    STMT_CHECKIN_CLOSE_OPEN,
    STMT_CHECKIN_INSERT,
    STMT_CHECKIN_OPEN,
    STMT_CHECKIN_SET_DEPARTED,
    STMT_CHECKIN_GET,
    STMT_CHECKIN_UPDATE,
    STMT_CHECKIN_DELETE,
    STMT_CHECKINS_LOAD,
    STMT_VENUE_EXPOSURE_INSERT,
    STMT_VENUE_EXPOSURE_FIND,
    STMT_VENUE_EXPOSURES_LOAD,
    STMT_TRIP_RPIS,
    N_STMTS
} StmtId;

static const char *const stmt_sql[N_STMTS] = {
    /* A scan left open by a crash ends at its last sighting. */
    [STMT_SCAN_CLOSE_OPEN] =
        "UPDATE scan_instances SET ended_at = max(started_at, coalesce("
        "  (SELECT max(last_seen) FROM sightings WHERE scan_id = scan_instances.id),"
        "  started_at)) WHERE ended_at IS NULL",
    [STMT_SCAN_PREVIOUS] = "SELECT started_at FROM scan_instances WHERE started_at <= ?1"
                           " ORDER BY started_at DESC, id DESC LIMIT 1",
    [STMT_SCAN_INSERT] = "INSERT INTO scan_instances (started_at, seconds_since_last_scan)"
                         " VALUES (?1, ?2)",
    [STMT_SCAN_END] = "UPDATE scan_instances SET ended_at = max(started_at, ?2) WHERE id = ?1",
    [STMT_SCANS_LOAD] = "SELECT id, started_at, coalesce(ended_at, started_at),"
                        " seconds_since_last_scan FROM scan_instances"
                        " WHERE started_at < ?2 AND coalesce(ended_at, started_at) >= ?1"
                        " ORDER BY started_at, id",
    /* Rows for scan instances that no longer exist (expired by retention while the daemon
     * held them in a batch) are dropped instead of failing the whole batch. */
    [STMT_SIGHTING_UPSERT] =
        "INSERT INTO sightings (scan_id, rpi, aem, first_seen, last_seen, report_count,"
        "  rssi_count, rssi_min, rssi_max, rssi_sum)"
        " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10"
        " WHERE EXISTS (SELECT 1 FROM scan_instances WHERE id = ?1)"
        " ON CONFLICT (scan_id, rpi) DO UPDATE SET"
        "  first_seen = min(first_seen, excluded.first_seen),"
        "  last_seen = max(last_seen, excluded.last_seen),"
        "  report_count = report_count + excluded.report_count,"
        "  rssi_count = rssi_count + excluded.rssi_count,"
        "  rssi_min = min(coalesce(rssi_min, excluded.rssi_min),"
        "                 coalesce(excluded.rssi_min, rssi_min)),"
        "  rssi_max = max(coalesce(rssi_max, excluded.rssi_max),"
        "                 coalesce(excluded.rssi_max, rssi_max)),"
        "  rssi_sum = rssi_sum + excluded.rssi_sum",
    [STMT_COUNT_ENCOUNTERS] = "SELECT count(DISTINCT rpi) FROM sightings"
                              " WHERE first_seen < ?2 AND last_seen >= ?1",
    [STMT_RPIS_PER_HOUR] = "SELECT hour, count(DISTINCT rpi) FROM ("
                           "  SELECT first_seen - ((first_seen % 3600) + 3600) % 3600 AS hour, rpi"
                           "  FROM sightings WHERE first_seen >= ?1 AND first_seen < ?2)"
                           " GROUP BY hour ORDER BY hour",
    [STMT_TEK_CURRENT] = "SELECT key_data, rolling_start, rolling_period FROM own_teks"
                         " WHERE rolling_start <= ?1 AND rolling_start + rolling_period > ?1"
                         " ORDER BY rolling_start DESC, id DESC LIMIT 1",
    [STMT_TEK_INSERT] = "INSERT INTO own_teks (key_data, rolling_start, rolling_period,"
                        " created_at) VALUES (?1, ?2, ?3, ?4)",
    [STMT_TEK_CUT] = "UPDATE own_teks SET rolling_period = ?2 WHERE key_data = ?1",
    [STMT_TEKS_LOAD] = "SELECT key_data, rolling_start, rolling_period FROM own_teks"
                       " WHERE rolling_start + rolling_period > ?1 ORDER BY rolling_start, id",
    [STMT_BATCH_FIND] = "SELECT id, finished FROM key_batches WHERE source = ?1 AND name = ?2",
    [STMT_BATCH_DELETE] = "DELETE FROM key_batches WHERE id = ?1",
    [STMT_BATCH_INSERT] = "INSERT INTO key_batches (source, name, imported_at) VALUES (?1, ?2, ?3)",
    [STMT_BATCH_STATE] = "SELECT finished FROM key_batches WHERE id = ?1",
    [STMT_BATCH_FINISH] = "UPDATE key_batches SET finished = 1 WHERE id = ?1",
    [STMT_BATCH_HAS] = "SELECT 1 FROM key_batches WHERE source = ?1 AND name = ?2 AND finished",
    [STMT_BATCH_LAST] = "SELECT coalesce(max(id), 0) FROM key_batches WHERE finished",
    [STMT_KEY_INSERT] = "INSERT INTO diagnosis_keys (batch_id, key_data, rolling_start,"
                        " rolling_period, transmission_risk_level, report_type, days_since_onset)"
                        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                        /* A duplicate stays with its first batch, unless that batch is
                         * unfinished: then it moves here, so restarting or abandoning the
                         * unfinished import cannot take a published key away. */
                        " ON CONFLICT (key_data, rolling_start) DO UPDATE SET"
                        "  batch_id = excluded.batch_id,"
                        "  rolling_period = excluded.rolling_period,"
                        "  transmission_risk_level = excluded.transmission_risk_level,"
                        "  report_type = excluded.report_type,"
                        "  days_since_onset = excluded.days_since_onset"
                        " WHERE NOT (SELECT finished FROM key_batches"
                        "            WHERE id = diagnosis_keys.batch_id)",
    [STMT_KEY_FIND] = "SELECT d.id, d.batch_id, b.finished, coalesce(d.revised_batch_id, 0),"
                      " d.report_type FROM diagnosis_keys d JOIN key_batches b ON b.id = d.batch_id"
                      " WHERE d.key_data = ?1 AND d.rolling_start = ?2",
    [STMT_KEY_REVISE] = "UPDATE diagnosis_keys SET transmission_risk_level = ?2, report_type = ?3,"
                        " days_since_onset = ?4, revised_batch_id = ?5 WHERE id = ?1",
    [STMT_KEYS_COUNT] = "SELECT count(*) FROM diagnosis_keys",
    [STMT_BATCH_NEXT] = "SELECT id FROM key_batches WHERE id > ?1 AND finished"
                        " ORDER BY id LIMIT 1",
    [STMT_KEYS_CHUNK] = "SELECT id, key_data, rolling_start, rolling_period,"
                        " transmission_risk_level, report_type, days_since_onset"
                        " FROM diagnosis_keys WHERE batch_id = ?1 AND id > ?2"
                        " AND report_type != 5 ORDER BY id LIMIT ?3",
    [STMT_WINDOWS_DELETE] = "DELETE FROM exposure_windows WHERE key_id = ?1",
    [STMT_WINDOW_INSERT] = "INSERT INTO exposure_windows (key_id, day, start_time, end_time,"
                           " report_type, infectiousness, calibration_confidence,"
                           " transmission_risk_level, weighted_minutes, risk, scans)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [STMT_WINDOWS_LOAD] = "SELECT key_id, day, start_time, end_time, report_type, infectiousness,"
                          " calibration_confidence, transmission_risk_level, weighted_minutes,"
                          " risk, scans"
                          " FROM exposure_windows WHERE day >= ?1 ORDER BY day, start_time, id",
    [STMT_SETTING_GET] = "SELECT value FROM settings WHERE name = ?1",
    [STMT_SETTING_SET] = "INSERT INTO settings (name, value) VALUES (?1, ?2)"
                         " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    [STMT_SETTING_DELETE] = "DELETE FROM settings WHERE name = ?1",
    [STMT_SYNC_GET] = "SELECT value FROM sync_state WHERE name = ?1",
    [STMT_SYNC_SET] = "INSERT INTO sync_state (name, value) VALUES (?1, ?2)"
                      " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    [STMT_SYNC_DELETE] = "DELETE FROM sync_state WHERE name = ?1",
    /* Cascades to the scan's sightings. */
    [STMT_EXPIRE_SCANS] = "DELETE FROM scan_instances WHERE coalesce(ended_at, started_at) < ?1",
    /* last_seen >= first_seen, so the first_seen bound only lets the index help. */
    [STMT_EXPIRE_SIGHTINGS] = "DELETE FROM sightings WHERE first_seen < ?1 AND last_seen < ?1",
    [STMT_EXPIRE_TEKS] = "DELETE FROM own_teks WHERE rolling_start + rolling_period < ?1",
    /* Cascades to the batch's keys and their windows, and its venue warnings. */
    [STMT_EXPIRE_BATCHES] = "DELETE FROM key_batches WHERE imported_at < ?1",
    [STMT_EXPIRE_KEYS] = "DELETE FROM diagnosis_keys WHERE rolling_start + rolling_period < ?1",
    [STMT_EXPIRE_WINDOWS] = "DELETE FROM exposure_windows WHERE end_time < ?1",
    /* Open check-ins are kept: they are the present. */
    [STMT_EXPIRE_CHECKINS] = "DELETE FROM checkins WHERE departed IS NOT NULL AND departed < ?1",
    [STMT_EXPIRE_VENUE_EXPOSURES] = "DELETE FROM venue_exposures WHERE end_time < ?1",
    /* Same rule as keys: a duplicate stays with its first batch unless that batch is
     * unfinished, then it moves here. */
    [STMT_WARNING_INSERT] = "INSERT INTO venue_warnings (batch_id, kind, subject, rolling_start,"
                            " rolling_period, start_time, end_time, transmission_risk_level)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                            " ON CONFLICT (kind, subject, rolling_start, start_time, end_time)"
                            " DO UPDATE SET batch_id = excluded.batch_id,"
                            "  rolling_period = excluded.rolling_period,"
                            "  transmission_risk_level = excluded.transmission_risk_level"
                            " WHERE NOT (SELECT finished FROM key_batches"
                            "            WHERE id = venue_warnings.batch_id)",
    [STMT_WARNINGS_LOAD] = "SELECT w.id, w.kind, w.subject, w.rolling_start, w.rolling_period,"
                           " w.start_time, w.end_time, w.transmission_risk_level"
                           " FROM venue_warnings w JOIN key_batches b ON b.id = w.batch_id"
                           " WHERE b.finished AND w.batch_id > ?1 ORDER BY w.batch_id, w.id",
    [STMT_CHECKIN_CLOSE_OPEN] = "UPDATE checkins SET departed = max(arrived, ?1)"
                                " WHERE departed IS NULL",
    [STMT_CHECKIN_INSERT] = "INSERT INTO checkins (location_id, arrived, planned_departure)"
                            " VALUES (?1, ?2, ?3)",
    [STMT_CHECKIN_OPEN] = "SELECT id, planned_departure FROM checkins WHERE departed IS NULL",
    [STMT_CHECKIN_SET_DEPARTED] = "UPDATE checkins SET departed = max(arrived, ?2) WHERE id = ?1",
    [STMT_CHECKIN_GET] = "SELECT arrived, departed IS NULL, planned_departure FROM checkins"
                         " WHERE id = ?1",
    [STMT_CHECKIN_UPDATE] = "UPDATE checkins SET arrived = ?2, departed = ?3,"
                            " planned_departure = ?4 WHERE id = ?1",
    [STMT_CHECKIN_DELETE] = "DELETE FROM checkins WHERE id = ?1",
    [STMT_CHECKINS_LOAD] = "SELECT id, location_id, arrived, coalesce(departed, 0),"
                           " planned_departure FROM checkins WHERE arrived >= ?1"
                           " ORDER BY arrived DESC, id DESC",
    [STMT_VENUE_EXPOSURE_INSERT] = "INSERT INTO venue_exposures (warning_id, kind, day,"
                                   " start_time, end_time, minutes, transmission_risk_level,"
                                   " detected_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                                   " ON CONFLICT (warning_id) DO NOTHING",
    [STMT_VENUE_EXPOSURE_FIND] = "SELECT id FROM venue_exposures WHERE warning_id = ?1",
    [STMT_VENUE_EXPOSURES_LOAD] = "SELECT id, warning_id, kind, day, start_time, end_time,"
                                  " minutes, transmission_risk_level, detected_at"
                                  " FROM venue_exposures WHERE day >= ?1"
                                  " ORDER BY day DESC, start_time DESC, id DESC",
    [STMT_TRIP_RPIS] = "SELECT enin, count(DISTINCT rpi) FROM ("
                       "  SELECT (first_seen - ((first_seen % 600) + 600) % 600) / 600 AS enin, rpi"
                       "  FROM sightings WHERE first_seen >= ?1 AND first_seen < ?2)"
                       " GROUP BY enin ORDER BY enin",
};

struct _ProxStore {
    sqlite3 *db;
    char *path;
    guint retention_days;
    gboolean retention_ran;
    gint64 last_retention; /* `now` of the last automatic run */
    sqlite3_stmt *stmts[N_STMTS];
};

/* ---- helpers ---- */

static gboolean set_sqlite_error(sqlite3 *db, GError **error, const char *what)
{
    g_set_error(error, PROX_ERROR, PROX_ERROR_STORE, "%s: %s", what, sqlite3_errmsg(db));
    return FALSE;
}

static gboolean exec_sql(sqlite3 *db, const char *sql, const char *what, GError **error)
{
    char *message = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &message) == SQLITE_OK)
        return TRUE;
    g_set_error(error, PROX_ERROR, PROX_ERROR_STORE, "%s: %s", what,
                message != NULL ? message : sqlite3_errmsg(db));
    sqlite3_free(message);
    return FALSE;
}

static sqlite3_stmt *stmt_get(ProxStore *store, StmtId id, GError **error)
{
    if (store->stmts[id] == NULL &&
        sqlite3_prepare_v3(store->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                           &store->stmts[id], NULL) != SQLITE_OK) {
        set_sqlite_error(store->db, error, "Preparing a store query");
        return NULL;
    }
    return store->stmts[id];
}

static void stmt_done(sqlite3_stmt *stmt)
{
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

/* Steps a statement that returns no rows and resets it. */
static gboolean stmt_exec(ProxStore *store, sqlite3_stmt *stmt, const char *what, GError **error)
{
    int rc = sqlite3_step(stmt);
    gboolean ok = rc == SQLITE_DONE || rc == SQLITE_ROW;
    if (!ok)
        set_sqlite_error(store->db, error, what);
    stmt_done(stmt);
    return ok;
}

/* One-row, one-integer query; *value untouched when there is no row. */
static gboolean stmt_query_int(ProxStore *store, sqlite3_stmt *stmt, gint64 *value, gboolean *found,
                               const char *what, GError **error)
{
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *value = sqlite3_column_int64(stmt, 0);
    if (found != NULL)
        *found = rc == SQLITE_ROW;
    gboolean ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    if (!ok)
        set_sqlite_error(store->db, error, what);
    stmt_done(stmt);
    return ok;
}

/* IMMEDIATE: take the write lock up front so a concurrent writer makes us wait (busy
 * timeout) instead of failing a read-to-write upgrade half way. */
static gboolean txn_begin(sqlite3 *db, GError **error)
{
    return exec_sql(db, "BEGIN IMMEDIATE", "Starting a store transaction", error);
}

static gboolean txn_commit(sqlite3 *db, GError **error)
{
    return exec_sql(db, "COMMIT", "Committing a store transaction", error);
}

static void txn_rollback(sqlite3 *db)
{
    /* A failed COMMIT or some errors already roll back; only roll back what is open. */
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

static gboolean txn_end(sqlite3 *db, gboolean ok, GError **error)
{
    if (ok && txn_commit(db, error))
        return TRUE;
    txn_rollback(db);
    return FALSE;
}

static gint64 ceil_div(gint64 a, gint64 b)
{
    gint64 q = a / b;
    if (a % b != 0 && (a > 0) == (b > 0))
        q++;
    return q;
}

/* ---- opening, modes, migrations ---- */

/* The store holds who-met-whom data: owner-only, whatever the umask. */
static gboolean fix_mode_fd(int fd, const char *path, GError **error)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int saved = errno;
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "Cannot stat %s: %s", path,
                    g_strerror(saved));
        return FALSE;
    }
    if (!S_ISREG(st.st_mode)) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "%s is not a regular file", path);
        return FALSE;
    }
    if ((st.st_mode & 07777) != 0600 && fchmod(fd, 0600) != 0) {
        int saved = errno;
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "Cannot make %s private: %s", path,
                    g_strerror(saved));
        return FALSE;
    }
    return TRUE;
}

/* Fixes the mode of `path`+`suffix` if it exists (sqlite's -wal/-shm companions). */
static gboolean fix_companion_mode(const char *path, const char *suffix, GError **error)
{
    g_autofree char *name = g_strconcat(path, suffix, NULL);
    int fd = open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT)
            return TRUE;
        int saved = errno;
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "Cannot open %s: %s", name,
                    g_strerror(saved));
        return FALSE;
    }
    gboolean ok = fix_mode_fd(fd, name, error);
    close(fd);
    return ok;
}

static gboolean fix_companion_modes(const char *path, GError **error)
{
    return fix_companion_mode(path, "-wal", error) && fix_companion_mode(path, "-shm", error) &&
           fix_companion_mode(path, "-journal", error);
}

static gboolean read_user_version(sqlite3 *db, int *version, GError **error)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, NULL) != SQLITE_OK)
        return set_sqlite_error(db, error, "Reading the schema version");
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *version = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    if (rc != SQLITE_ROW)
        return set_sqlite_error(db, error, "Reading the schema version");
    return TRUE;
}

static gboolean check_not_newer(int version, const char *path, GError **error)
{
    if (version > PROX_STORE_SCHEMA_VERSION) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_UNSUPPORTED,
                    "Store %s has schema version %d, newer than this proxd supports (%d); "
                    "left untouched",
                    path, version, PROX_STORE_SCHEMA_VERSION);
        return FALSE;
    }
    return TRUE;
}

/* Runs the steps from the current version up to `target` in one transaction: a crash leaves
 * the old version, never a half-migrated schema. */
static gboolean migrate(sqlite3 *db, const char *path, int target, GError **error)
{
    int version = 0;
    if (!read_user_version(db, &version, error) || !check_not_newer(version, path, error))
        return FALSE;
    if (version > target) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "Store %s has schema version %d; cannot go back to %d", path, version, target);
        return FALSE;
    }
    if (version == target)
        return TRUE;
    if (!txn_begin(db, error))
        return FALSE;
    /* Another process may have migrated between our read and the write lock. */
    gboolean ok = read_user_version(db, &version, error) && check_not_newer(version, path, error);
    int from = version;
    for (; ok && version < target; version++) {
        g_autofree char *what =
            g_strdup_printf("Migrating %s to schema version %d", path, version + 1);
        ok = exec_sql(db, migrations[version], what, error);
    }
    if (ok && version != from) {
        g_autofree char *sql = g_strdup_printf("PRAGMA user_version = %d", version);
        ok = exec_sql(db, sql, "Setting the schema version", error);
    }
    if (!txn_end(db, ok, error))
        return FALSE;
    if (version != from)
        g_debug("Migrated store from schema version %d to %d", from, version);
    return TRUE;
}

static sqlite3 *open_db(const char *path, const ProxStoreOptions *opts, int target, GError **error)
{
    if (path == NULL || *path == '\0') {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT, "No store path given");
        return NULL;
    }
    /* Create the file ourselves so it is 0600 from the first byte, umask regardless. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        int saved = errno;
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "Cannot open store %s: %s", path,
                    g_strerror(saved));
        return NULL;
    }
    gboolean ok = fix_mode_fd(fd, path, error);
    close(fd);
    if (!ok || !fix_companion_modes(path, error))
        return NULL;

    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_STORE, "Opening store %s: %s", path,
                    db != NULL ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_extended_result_codes(db, 1);
    guint busy_ms = opts != NULL && opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms
                                                              : PROX_STORE_DEFAULT_BUSY_TIMEOUT_MS;
    sqlite3_busy_timeout(db, (int)MIN(busy_ms, (guint)G_MAXINT));

    /* Refuse a newer schema before anything (journal mode included) writes to the file. */
    int version = 0;
    ok = read_user_version(db, &version, error) && check_not_newer(version, path, error);

    const char *sync = opts != NULL && opts->fast_sync ? "PRAGMA synchronous = NORMAL;"
                                                       : "PRAGMA synchronous = FULL;";
    if (ok) {
        sqlite3_stmt *stmt = NULL;
        ok = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL) == SQLITE_OK &&
             sqlite3_step(stmt) == SQLITE_ROW &&
             g_ascii_strcasecmp((const char *)sqlite3_column_text(stmt, 0), "wal") == 0;
        if (!ok)
            set_sqlite_error(db, error, "Switching the store to WAL mode");
        sqlite3_finalize(stmt);
    }
    ok = ok && exec_sql(db, sync, "Setting the store's sync mode", error);
    /* secure_delete: expired sightings must not linger in free pages, retention is a
     * privacy promise. cache_size (default 16 MiB): the unique index on random key data
     * is where imports spend their time; with sqlite's 2 MiB, importing 14 files of 70k
     * keys took 2-3x longer (page spills). A long-lived connection that only records
     * sightings asks for less (ProxStoreOptions.cache_kib). journal_size_limit: a big
     * import must not leave a big WAL behind. */
    guint cache_kib =
        opts != NULL && opts->cache_kib > 0 ? opts->cache_kib : PROX_STORE_DEFAULT_CACHE_KIB;
    g_autofree char *config_sql = g_strdup_printf("PRAGMA foreign_keys = ON;"
                                                  "PRAGMA secure_delete = ON;"
                                                  "PRAGMA cache_size = -%u;"
                                                  "PRAGMA journal_size_limit = 4194304;",
                                                  cache_kib);
    ok = ok && exec_sql(db, config_sql, "Configuring the store", error);
    ok = ok && migrate(db, path, target, error);
    ok = ok && fix_companion_modes(path, error);
    if (!ok) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

ProxStore *prox_store_open(const char *path, const ProxStoreOptions *opts, GError **error)
{
    sqlite3 *db = open_db(path, opts, PROX_STORE_SCHEMA_VERSION, error);
    if (db == NULL)
        return NULL;
    ProxStore *store = g_new0(ProxStore, 1);
    store->db = db;
    store->path = g_strdup(path);
    store->retention_days = opts != NULL && opts->retention_days > 0
                                ? opts->retention_days
                                : PROX_STORE_DEFAULT_RETENTION_DAYS;
    return store;
}

void prox_store_close(ProxStore *store)
{
    if (store == NULL)
        return;
    for (guint i = 0; i < N_STMTS; i++)
        sqlite3_finalize(store->stmts[i]);
    if (sqlite3_close(store->db) != SQLITE_OK)
        g_warning("Closing store %s: %s", store->path, sqlite3_errmsg(store->db));
    g_free(store->path);
    g_free(store);
}

gboolean prox_store_migrate_to(const char *path, int version, GError **error)
{
    if (version < 1 || version > PROX_STORE_SCHEMA_VERSION) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "Schema version %d is not between 1 and %d", version,
                    PROX_STORE_SCHEMA_VERSION);
        return FALSE;
    }
    sqlite3 *db = open_db(path, NULL, version, error);
    if (db == NULL)
        return FALSE;
    sqlite3_close(db);
    return TRUE;
}

gboolean prox_store_integrity_check(ProxStore *store, GError **error)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(store->db, "PRAGMA integrity_check", -1, &stmt, NULL) != SQLITE_OK)
        return set_sqlite_error(store->db, error, "Checking store integrity");
    int rc = sqlite3_step(stmt);
    gboolean ok = FALSE;
    if (rc == SQLITE_ROW) {
        const char *result = (const char *)sqlite3_column_text(stmt, 0);
        ok = g_strcmp0(result, "ok") == 0;
        if (!ok)
            g_set_error(error, PROX_ERROR, PROX_ERROR_STORE, "Store %s is corrupt: %s", store->path,
                        result != NULL ? result : "(no detail)");
    } else {
        set_sqlite_error(store->db, error, "Checking store integrity");
    }
    sqlite3_finalize(stmt);
    return ok;
}

/* ---- retention ---- */

static gboolean enforce_retention_locked(ProxStore *store, gint64 now, GError **error)
{
    gint64 cutoff = now - (gint64)store->retention_days * SECONDS_PER_DAY;
    /* Interval-valued rows end at (start + period) * 600; compare in intervals. A
     * diagnosis key stays while a sighting it could match (±2 h) may still be stored. */
    gint64 cutoff_enin = ceil_div(cutoff, PROX_INTERVAL_SECONDS);
    struct {
        StmtId id;
        gint64 bound;
        const char *what;
    } steps[] = {
        {STMT_EXPIRE_SCANS, cutoff, "Expiring scan instances"},
        {STMT_EXPIRE_SIGHTINGS, cutoff, "Expiring sightings"},
        {STMT_EXPIRE_TEKS, cutoff_enin, "Expiring own keys"},
        {STMT_EXPIRE_BATCHES, cutoff, "Expiring key batches"},
        {STMT_EXPIRE_KEYS, cutoff_enin - PROX_MATCH_TOLERANCE_INTERVALS, "Expiring diagnosis keys"},
        {STMT_EXPIRE_WINDOWS, cutoff, "Expiring exposure windows"},
        {STMT_EXPIRE_CHECKINS, cutoff, "Expiring check-ins"},
        {STMT_EXPIRE_VENUE_EXPOSURES, cutoff, "Expiring venue exposures"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(steps); i++) {
        sqlite3_stmt *stmt = stmt_get(store, steps[i].id, error);
        if (stmt == NULL)
            return FALSE;
        sqlite3_bind_int64(stmt, 1, steps[i].bound);
        if (!stmt_exec(store, stmt, steps[i].what, error))
            return FALSE;
        g_debug("%s: %d rows", steps[i].what, sqlite3_changes(store->db));
    }
    return TRUE;
}

gboolean prox_store_enforce_retention(ProxStore *store, gint64 now, GError **error)
{
    if (!txn_begin(store->db, error))
        return FALSE;
    gboolean ok = enforce_retention_locked(store, now, error);
    if (!txn_end(store->db, ok, error))
        return FALSE;
    store->retention_ran = TRUE;
    store->last_retention = now;
    return TRUE;
}

/* Called after a write path committed: that write's success does not depend on this. */
static void maybe_enforce_retention(ProxStore *store, gint64 now)
{
    if (store->retention_ran && now - store->last_retention < RETENTION_PERIOD_SECONDS)
        return;
    g_autoptr(GError) error = NULL;
    if (!prox_store_enforce_retention(store, now, &error))
        g_warning("Enforcing retention on %s: %s", store->path, error->message);
    /* Retry in an hour, not on every commit, if it keeps failing. */
    store->retention_ran = TRUE;
    store->last_retention = now;
}

/* ---- scan instances ---- */

static gboolean scan_begin_locked(ProxStore *store, gint64 now, gint64 *scan_id, GError **error)
{
    sqlite3_stmt *close_open = stmt_get(store, STMT_SCAN_CLOSE_OPEN, error);
    if (close_open == NULL ||
        !stmt_exec(store, close_open, "Closing an unfinished scan instance", error))
        return FALSE;

    sqlite3_stmt *prev = stmt_get(store, STMT_SCAN_PREVIOUS, error);
    if (prev == NULL)
        return FALSE;
    sqlite3_bind_int64(prev, 1, now);
    gint64 previous = 0;
    gboolean has_previous = FALSE;
    if (!stmt_query_int(store, prev, &previous, &has_previous, "Finding the previous scan instance",
                        error))
        return FALSE;

    sqlite3_stmt *insert = stmt_get(store, STMT_SCAN_INSERT, error);
    if (insert == NULL)
        return FALSE;
    sqlite3_bind_int64(insert, 1, now);
    sqlite3_bind_int64(insert, 2, has_previous ? CLAMP(now - previous, 0, G_MAXINT32) : 0);
    if (!stmt_exec(store, insert, "Starting a scan instance", error))
        return FALSE;
    *scan_id = sqlite3_last_insert_rowid(store->db);
    return TRUE;
}

gboolean prox_store_scan_begin(ProxStore *store, gint64 now, gint64 *scan_id, GError **error)
{
    if (!txn_begin(store->db, error))
        return FALSE;
    gint64 id = 0;
    gboolean ok = scan_begin_locked(store, now, &id, error);
    if (!txn_end(store->db, ok, error))
        return FALSE;
    *scan_id = id;
    maybe_enforce_retention(store, now);
    return TRUE;
}

gboolean prox_store_scan_end(ProxStore *store, gint64 scan_id, gint64 now, GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_SCAN_END, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, scan_id);
    sqlite3_bind_int64(stmt, 2, now);
    if (!stmt_exec(store, stmt, "Ending a scan instance", error))
        return FALSE;
    if (sqlite3_changes(store->db) == 0) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_NOT_FOUND, "No scan instance %" G_GINT64_FORMAT,
                    scan_id);
        return FALSE;
    }
    return TRUE;
}

gboolean prox_store_load_scan_instances(ProxStore *store, gint64 since, gint64 until, GArray **out,
                                        GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_SCANS_LOAD, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, since);
    sqlite3_bind_int64(stmt, 2, until);
    g_autoptr(GArray) scans = g_array_new(FALSE, FALSE, sizeof(ProxScanInstance));
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        ProxScanInstance scan = {
            .id = sqlite3_column_int64(stmt, 0),
            .start = sqlite3_column_int64(stmt, 1),
            .end = sqlite3_column_int64(stmt, 2),
            .seconds_since_last_scan = sqlite3_column_int(stmt, 3),
        };
        g_array_append_val(scans, scan);
    }
    stmt_done(stmt);
    if (rc != SQLITE_DONE)
        return set_sqlite_error(store->db, error, "Loading scan instances");
    *out = g_steal_pointer(&scans);
    return TRUE;
}

/* ---- sighting batches ---- */

typedef struct {
    gint64 scan_id; /* (scan_id, rpi) is the key */
    ProxRpi rpi;
    ProxAem aem;
    gint64 first_seen;
    gint64 last_seen;
    guint32 report_count;
    guint32 rssi_count;
    int rssi_min;
    int rssi_max;
    gint64 rssi_sum;
} BatchEntry;

struct _ProxSightingBatch {
    GHashTable *entries; /* BatchEntry set */
    gint64 latest_now;
};

/* Keyed SipHash: RPIs are whatever a nearby radio chooses to send, so a fixed hash would
 * let someone flood a beacon with colliding RPIs and make every batch quadratic. */
static guint batch_entry_hash(gconstpointer p)
{
    static gsize key_ready;
    static unsigned char key[crypto_shorthash_KEYBYTES];
    if (g_once_init_enter(&key_ready)) {
        prox_random_system(key, sizeof key, NULL);
        g_once_init_leave(&key_ready, 1);
    }
    const BatchEntry *entry = p;
    unsigned char in[PROX_RPI_LEN + sizeof(gint64)];
    memcpy(in, entry->rpi.bytes, PROX_RPI_LEN);
    memcpy(in + PROX_RPI_LEN, &entry->scan_id, sizeof(gint64));
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash(out, in, sizeof in, key);
    guint h;
    memcpy(&h, out, sizeof h);
    return h;
}

static gboolean batch_entry_equal(gconstpointer a, gconstpointer b)
{
    const BatchEntry *x = a;
    const BatchEntry *y = b;
    return x->scan_id == y->scan_id && memcmp(x->rpi.bytes, y->rpi.bytes, PROX_RPI_LEN) == 0;
}

ProxSightingBatch *prox_sighting_batch_new(void)
{
    ProxSightingBatch *batch = g_new0(ProxSightingBatch, 1);
    batch->entries = g_hash_table_new_full(batch_entry_hash, batch_entry_equal, g_free, NULL);
    batch->latest_now = G_MININT64;
    return batch;
}

void prox_sighting_batch_free(ProxSightingBatch *batch)
{
    if (batch == NULL)
        return;
    g_hash_table_unref(batch->entries);
    g_free(batch);
}

void prox_sighting_batch_add(ProxSightingBatch *batch, gint64 scan_id, const ProxRpi *rpi,
                             const ProxAem *aem, int rssi, gint64 now)
{
    BatchEntry probe = {.scan_id = scan_id, .rpi = *rpi};
    BatchEntry *entry = g_hash_table_lookup(batch->entries, &probe);
    if (entry == NULL) {
        entry = g_new0(BatchEntry, 1);
        entry->scan_id = scan_id;
        entry->rpi = *rpi;
        entry->aem = *aem;
        entry->first_seen = now;
        entry->last_seen = now;
        g_hash_table_add(batch->entries, entry);
    }
    entry->first_seen = MIN(entry->first_seen, now);
    entry->last_seen = MAX(entry->last_seen, now);
    entry->report_count++;
    if (rssi != PROX_RSSI_UNKNOWN) {
        if (entry->rssi_count == 0) {
            entry->rssi_min = rssi;
            entry->rssi_max = rssi;
        } else {
            entry->rssi_min = MIN(entry->rssi_min, rssi);
            entry->rssi_max = MAX(entry->rssi_max, rssi);
        }
        entry->rssi_count++;
        entry->rssi_sum += rssi;
    }
    batch->latest_now = MAX(batch->latest_now, now);
}

guint prox_sighting_batch_size(const ProxSightingBatch *batch)
{
    return g_hash_table_size(batch->entries);
}

void prox_sighting_batch_clear(ProxSightingBatch *batch)
{
    g_hash_table_remove_all(batch->entries);
    batch->latest_now = G_MININT64;
}

static gboolean upsert_entry(ProxStore *store, sqlite3_stmt *stmt, const BatchEntry *entry,
                             guint *dropped, GError **error)
{
    sqlite3_bind_int64(stmt, 1, entry->scan_id);
    sqlite3_bind_blob(stmt, 2, entry->rpi.bytes, PROX_RPI_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(stmt, 3, entry->aem.bytes, PROX_AEM_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 4, entry->first_seen);
    sqlite3_bind_int64(stmt, 5, entry->last_seen);
    sqlite3_bind_int64(stmt, 6, entry->report_count);
    sqlite3_bind_int64(stmt, 7, entry->rssi_count);
    if (entry->rssi_count > 0) {
        sqlite3_bind_int(stmt, 8, entry->rssi_min);
        sqlite3_bind_int(stmt, 9, entry->rssi_max);
    } else {
        sqlite3_bind_null(stmt, 8);
        sqlite3_bind_null(stmt, 9);
    }
    sqlite3_bind_int64(stmt, 10, entry->rssi_sum);
    if (!stmt_exec(store, stmt, "Storing sightings", error))
        return FALSE;
    if (sqlite3_changes(store->db) == 0)
        (*dropped)++;
    return TRUE;
}

gboolean prox_store_commit_sightings(ProxStore *store, ProxSightingBatch *batch, GError **error)
{
    if (g_hash_table_size(batch->entries) == 0)
        return TRUE;
    sqlite3_stmt *stmt = stmt_get(store, STMT_SIGHTING_UPSERT, error);
    if (stmt == NULL || !txn_begin(store->db, error))
        return FALSE;
    gboolean ok = TRUE;
    guint dropped = 0;
    GHashTableIter iter;
    gpointer key;
    g_hash_table_iter_init(&iter, batch->entries);
    while (ok && g_hash_table_iter_next(&iter, &key, NULL))
        ok = upsert_entry(store, stmt, key, &dropped, error);
    if (!txn_end(store->db, ok, error))
        return FALSE;
    g_debug("Committed %u sightings (%u for expired scan instances dropped)",
            g_hash_table_size(batch->entries) - dropped, dropped);
    gint64 now = batch->latest_now;
    prox_sighting_batch_clear(batch);
    maybe_enforce_retention(store, now);
    return TRUE;
}

static void read_sighting(sqlite3_stmt *stmt, ProxSighting *s)
{
    *s = (ProxSighting){0};
    if (sqlite3_column_bytes(stmt, 1) == PROX_RPI_LEN)
        memcpy(s->rpi.bytes, sqlite3_column_blob(stmt, 1), PROX_RPI_LEN);
    if (sqlite3_column_bytes(stmt, 2) == PROX_AEM_LEN)
        memcpy(s->aem.bytes, sqlite3_column_blob(stmt, 2), PROX_AEM_LEN);
    s->scan_instance_id = sqlite3_column_int64(stmt, 0);
    s->first_seen = sqlite3_column_int64(stmt, 3);
    s->last_seen = sqlite3_column_int64(stmt, 4);
    s->report_count = (uint32_t)sqlite3_column_int64(stmt, 5);
    s->rssi_count = (uint32_t)sqlite3_column_int64(stmt, 6);
    if (s->rssi_count > 0) {
        s->rssi_min = (int16_t)sqlite3_column_int(stmt, 7);
        s->rssi_max = (int16_t)sqlite3_column_int(stmt, 8);
        /* Rounded half away from zero. */
        s->rssi_mean = (int16_t)lround((double)sqlite3_column_int64(stmt, 9) / s->rssi_count);
    }
}

gboolean prox_store_foreach_sighting(ProxStore *store, gint64 since, gint64 until,
                                     ProxSightingFunc func, gpointer user_data, GError **error)
{
    /* Own statement, not a cached one: `func` may call back into the store. */
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(store->db,
                           "SELECT scan_id, rpi, aem, first_seen, last_seen, report_count,"
                           " rssi_count, rssi_min, rssi_max, rssi_sum FROM sightings"
                           " WHERE first_seen < ?2 AND last_seen >= ?1"
                           " ORDER BY first_seen, scan_id, rpi",
                           -1, &stmt, NULL) != SQLITE_OK)
        return set_sqlite_error(store->db, error, "Loading sightings");
    sqlite3_bind_int64(stmt, 1, since);
    sqlite3_bind_int64(stmt, 2, until);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        ProxSighting sighting;
        read_sighting(stmt, &sighting);
        if (!func(&sighting, user_data)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE)
        set_sqlite_error(store->db, error, "Loading sightings");
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE;
}

static gboolean append_sighting(const ProxSighting *sighting, gpointer user_data)
{
    g_array_append_val((GArray *)user_data, *sighting);
    return TRUE;
}

gboolean prox_store_load_sightings(ProxStore *store, gint64 since, gint64 until, GArray **out,
                                   GError **error)
{
    g_autoptr(GArray) sightings = g_array_new(FALSE, FALSE, sizeof(ProxSighting));
    if (!prox_store_foreach_sighting(store, since, until, append_sighting, sightings, error))
        return FALSE;
    *out = g_steal_pointer(&sightings);
    return TRUE;
}

gboolean prox_store_count_encounters(ProxStore *store, gint64 since, gint64 until, guint64 *count,
                                     GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_COUNT_ENCOUNTERS, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, since);
    sqlite3_bind_int64(stmt, 2, until);
    gint64 n = 0;
    if (!stmt_query_int(store, stmt, &n, NULL, "Counting encounters", error))
        return FALSE;
    *count = (guint64)n;
    return TRUE;
}

gboolean prox_store_count_rpis_per_hour(ProxStore *store, gint64 since, gint64 until, GArray **out,
                                        GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_RPIS_PER_HOUR, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, since);
    sqlite3_bind_int64(stmt, 2, until);
    g_autoptr(GArray) hours = g_array_new(FALSE, FALSE, sizeof(ProxHourCount));
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        ProxHourCount hour = {
            .hour = sqlite3_column_int64(stmt, 0),
            .count = (guint)sqlite3_column_int64(stmt, 1),
        };
        g_array_append_val(hours, hour);
    }
    stmt_done(stmt);
    if (rc != SQLITE_DONE)
        return set_sqlite_error(store->db, error, "Counting RPIs per hour");
    *out = g_steal_pointer(&hours);
    return TRUE;
}

/* ---- own TEKs ---- */

static gboolean read_tek(sqlite3_stmt *stmt, ProxTek *tek)
{
    if (sqlite3_column_bytes(stmt, 0) != PROX_KEY_LEN)
        return FALSE;
    memcpy(tek->key, sqlite3_column_blob(stmt, 0), PROX_KEY_LEN);
    tek->rolling_start = (uint32_t)sqlite3_column_int64(stmt, 1);
    tek->rolling_period = (uint32_t)sqlite3_column_int64(stmt, 2);
    return TRUE;
}

/* *found = FALSE when no stored TEK covers `enin`. */
static gboolean find_tek(ProxStore *store, uint32_t enin, ProxTek *out, gboolean *found,
                         GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_TEK_CURRENT, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, enin);
    int rc = sqlite3_step(stmt);
    *found = rc == SQLITE_ROW && read_tek(stmt, out);
    stmt_done(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return set_sqlite_error(store->db, error, "Looking up the current key");
    return TRUE;
}

static gboolean insert_tek_locked(ProxStore *store, const ProxTek *tek, gint64 now, GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_TEK_INSERT, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_blob(stmt, 1, tek->key, PROX_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, tek->rolling_start);
    sqlite3_bind_int64(stmt, 3, tek->rolling_period);
    sqlite3_bind_int64(stmt, 4, now);
    return stmt_exec(store, stmt, "Storing a new key", error);
}

static gboolean create_tek_locked(ProxStore *store, gint64 now, ProxRandomFunc random,
                                  void *random_data, ProxTek *out, GError **error)
{
    gboolean found = FALSE;
    /* Another connection may have created it before we took the write lock. */
    if (!find_tek(store, prox_interval_number(now), out, &found, error))
        return FALSE;
    if (found)
        return TRUE;
    ProxTek tek;
    prox_tek_generate(&tek, prox_tek_rolling_start(now), random, random_data);
    gboolean ok = insert_tek_locked(store, &tek, now, error);
    if (ok)
        *out = tek;
    sodium_memzero(&tek, sizeof tek);
    return ok;
}

static gboolean cut_tek_locked(ProxStore *store, gint64 now, ProxRandomFunc random,
                               void *random_data, ProxTek *cut, gboolean *had_key, GError **error)
{
    uint32_t enin = prox_interval_number(now);
    uint32_t day_end = prox_tek_rolling_start(now) + PROX_TEK_ROLLING_PERIOD;
    if (!find_tek(store, enin, cut, had_key, error))
        return FALSE;
    if (!*had_key)
        return TRUE;
    cut->rolling_period = enin - cut->rolling_start + 1;
    sqlite3_stmt *stmt = stmt_get(store, STMT_TEK_CUT, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_blob(stmt, 1, cut->key, PROX_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, cut->rolling_period);
    if (!stmt_exec(store, stmt, "Ending the current key", error))
        return FALSE;
    /* The successor covers the current interval too (newer keys win the lookup), so the
     * advertiser can leave the cut key at once. */
    ProxTek next;
    prox_tek_generate(&next, enin, random, random_data);
    next.rolling_period = day_end - enin;
    gboolean ok = insert_tek_locked(store, &next, now, error);
    sodium_memzero(&next, sizeof next);
    return ok;
}

gboolean prox_store_cut_current_tek(ProxStore *store, gint64 now, ProxRandomFunc random,
                                    void *random_data, ProxTek *cut, gboolean *had_key,
                                    GError **error)
{
    g_return_val_if_fail(store != NULL && random != NULL && cut != NULL && had_key != NULL, FALSE);
    *had_key = FALSE;
    if (!txn_begin(store->db, error))
        return FALSE;
    gboolean ok = cut_tek_locked(store, now, random, random_data, cut, had_key, error);
    if (!txn_end(store->db, ok, error)) {
        sodium_memzero(cut, sizeof *cut);
        *had_key = FALSE;
        return FALSE;
    }
    return TRUE;
}

gboolean prox_store_get_or_create_tek(ProxStore *store, gint64 now, ProxRandomFunc random,
                                      void *random_data, ProxTek *out, GError **error)
{
    gboolean found = FALSE;
    /* Fast path without the write lock: one key serves a whole day. */
    if (!find_tek(store, prox_interval_number(now), out, &found, error))
        return FALSE;
    if (found)
        return TRUE;
    if (!txn_begin(store->db, error))
        return FALSE;
    ProxTek tek;
    gboolean ok = create_tek_locked(store, now, random, random_data, &tek, error);
    if (!txn_end(store->db, ok, error))
        return FALSE;
    *out = tek;
    maybe_enforce_retention(store, now);
    return TRUE;
}

gboolean prox_store_load_teks(ProxStore *store, uint32_t since_enin, GArray **out, GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_TEKS_LOAD, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, since_enin);
    g_autoptr(GArray) teks = g_array_new(FALSE, FALSE, sizeof(ProxTek));
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        ProxTek tek;
        if (read_tek(stmt, &tek))
            g_array_append_val(teks, tek);
    }
    stmt_done(stmt);
    if (rc != SQLITE_DONE)
        return set_sqlite_error(store->db, error, "Loading own keys");
    *out = g_steal_pointer(&teks);
    return TRUE;
}

/* ---- diagnosis keys ---- */

static gboolean add_batch_locked(ProxStore *store, const char *source, const char *name, gint64 now,
                                 gint64 *batch_id, GError **error)
{
    sqlite3_stmt *find = stmt_get(store, STMT_BATCH_FIND, error);
    if (find == NULL)
        return FALSE;
    sqlite3_bind_text(find, 1, source, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(find, 2, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(find);
    gint64 old_id = rc == SQLITE_ROW ? sqlite3_column_int64(find, 0) : 0;
    gboolean finished = rc == SQLITE_ROW && sqlite3_column_int(find, 1) != 0;
    stmt_done(find);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return set_sqlite_error(store->db, error, "Looking up a key batch");
    if (finished) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "Key batch %s from %s was already imported", name, source);
        return FALSE;
    }
    if (old_id != 0) {
        /* Left over from an interrupted import: start again under a new id so batch ids
         * stay in import order (they are the matching watermark). */
        sqlite3_stmt *del = stmt_get(store, STMT_BATCH_DELETE, error);
        if (del == NULL)
            return FALSE;
        sqlite3_bind_int64(del, 1, old_id);
        if (!stmt_exec(store, del, "Dropping an unfinished key batch", error))
            return FALSE;
    }
    sqlite3_stmt *insert = stmt_get(store, STMT_BATCH_INSERT, error);
    if (insert == NULL)
        return FALSE;
    sqlite3_bind_text(insert, 1, source, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(insert, 2, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(insert, 3, now);
    if (!stmt_exec(store, insert, "Adding a key batch", error))
        return FALSE;
    *batch_id = sqlite3_last_insert_rowid(store->db);
    return TRUE;
}

gboolean prox_store_add_batch(ProxStore *store, const char *source, const char *name, gint64 now,
                              gint64 *batch_id, GError **error)
{
    if (!txn_begin(store->db, error))
        return FALSE;
    gint64 id = 0;
    gboolean ok = add_batch_locked(store, source, name, now, &id, error);
    if (!txn_end(store->db, ok, error))
        return FALSE;
    *batch_id = id;
    maybe_enforce_retention(store, now);
    return TRUE;
}

/* The order of UNIQUE (key_data, rolling_start): blobs compare as memcmp. Copies of one key
 * in one call: a revocation comes last, so it wins whatever order the file had. */
static int compare_key_ptrs(const void *a, const void *b)
{
    const ProxDiagnosisKey *x = *(const ProxDiagnosisKey *const *)a;
    const ProxDiagnosisKey *y = *(const ProxDiagnosisKey *const *)b;
    int c = memcmp(x->tek.key, y->tek.key, PROX_KEY_LEN);
    if (c != 0)
        return c;
    if (x->tek.rolling_start != y->tek.rolling_start)
        return x->tek.rolling_start > y->tek.rolling_start ? 1 : -1;
    return (x->report_type == PROX_REPORT_REVOKED) - (y->report_type == PROX_REPORT_REVOKED);
}

/* NOT_FOUND for an unknown batch, INVALID_ARGUMENT for a finished one. */
static gboolean check_batch_unfinished(ProxStore *store, gint64 batch_id, GError **error)
{
    sqlite3_stmt *state = stmt_get(store, STMT_BATCH_STATE, error);
    if (state == NULL)
        return FALSE;
    sqlite3_bind_int64(state, 1, batch_id);
    gint64 finished = 0;
    gboolean found = FALSE;
    if (!stmt_query_int(store, state, &finished, &found, "Looking up a key batch", error))
        return FALSE;
    if (!found) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_NOT_FOUND, "No key batch %" G_GINT64_FORMAT,
                    batch_id);
        return FALSE;
    }
    if (finished) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "Key batch %" G_GINT64_FORMAT " is already finished", batch_id);
        return FALSE;
    }
    return TRUE;
}

G_STATIC_ASSERT(PROX_REPORT_REVOKED == 5); /* spelled out in the SQL above */

typedef struct {
    guint64 added;   /* new to matching */
    guint64 revised; /* stored keys whose metadata a revision changed, or revoked */
} KeyCounts;

/* Checks every rolling period before anything is written; sorts the keys in the unique
 * index's order: keys are random, and random inserts into an index bigger than the page
 * cache cost a page read and a spill per key. The result is freed by the caller. */
static const ProxDiagnosisKey **check_and_sort_keys(const ProxDiagnosisKey *keys, gsize n_keys,
                                                    const char *what, GError **error)
{
    for (gsize i = 0; i < n_keys; i++) {
        if (keys[i].tek.rolling_period < 1 ||
            keys[i].tek.rolling_period > PROX_MAX_ROLLING_PERIOD) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                        "%s %" G_GSIZE_FORMAT " has rolling period %u", what, i,
                        keys[i].tek.rolling_period);
            return NULL;
        }
    }
    const ProxDiagnosisKey **order = g_new(const ProxDiagnosisKey *, MAX(n_keys, 1));
    for (gsize i = 0; i < n_keys; i++)
        order[i] = &keys[i];
    qsort(order, n_keys, sizeof *order, compare_key_ptrs);
    return order;
}

/* STMT_KEY_INSERT for one key; *changes = 1 when it was stored or taken over from an
 * unfinished batch, 0 when a finished batch already has it. */
static gboolean insert_key(ProxStore *store, gint64 batch_id, const ProxDiagnosisKey *key,
                           int *changes, GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_KEY_INSERT, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, batch_id);
    sqlite3_bind_blob(stmt, 2, key->tek.key, PROX_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, key->tek.rolling_start);
    sqlite3_bind_int64(stmt, 4, key->tek.rolling_period);
    sqlite3_bind_int(stmt, 5, key->transmission_risk_level);
    sqlite3_bind_int(stmt, 6, (int)key->report_type);
    if (key->has_days_since_onset)
        sqlite3_bind_int(stmt, 7, key->days_since_onset);
    else
        sqlite3_bind_null(stmt, 7);
    if (!stmt_exec(store, stmt, "Storing diagnosis keys", error))
        return FALSE;
    *changes = sqlite3_changes(store->db);
    return TRUE;
}

static gboolean delete_windows(ProxStore *store, gint64 key_id, GError **error)
{
    sqlite3_stmt *del = stmt_get(store, STMT_WINDOWS_DELETE, error);
    if (del == NULL)
        return FALSE;
    sqlite3_bind_int64(del, 1, key_id);
    return stmt_exec(store, del, "Deleting the exposure windows of a revoked key", error);
}

/* One revised key (or a plain key with report type REVOKED) of unfinished batch `batch_id`:
 * GAEN semantics, see prox_store_revise_diagnosis_keys(). */
static gboolean revise_key(ProxStore *store, gint64 batch_id, const ProxDiagnosisKey *key,
                           KeyCounts *counts, GError **error)
{
    gboolean revoke = key->report_type == PROX_REPORT_REVOKED;
    sqlite3_stmt *find = stmt_get(store, STMT_KEY_FIND, error);
    if (find == NULL)
        return FALSE;
    sqlite3_bind_blob(find, 1, key->tek.key, PROX_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(find, 2, key->tek.rolling_start);
    int rc = sqlite3_step(find);
    gint64 key_id = 0, owner = 0, revised_by = 0;
    gboolean owner_finished = FALSE, revoked = FALSE;
    if (rc == SQLITE_ROW) {
        key_id = sqlite3_column_int64(find, 0);
        owner = sqlite3_column_int64(find, 1);
        owner_finished = sqlite3_column_int(find, 2) != 0;
        revised_by = sqlite3_column_int64(find, 3);
        revoked = sqlite3_column_int(find, 4) == PROX_REPORT_REVOKED;
    }
    stmt_done(find);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return set_sqlite_error(store->db, error, "Looking up a diagnosis key");

    int changes = 0;
    if (rc == SQLITE_DONE) {
        /* Unknown: a revision is a key like any other, a revocation has nothing to do. */
        if (revoke)
            return TRUE;
        if (!insert_key(store, batch_id, key, &changes, error))
            return FALSE;
        counts->added += (guint64)changes;
        return TRUE;
    }
    if (!owner_finished) {
        /* A key of this import or of an interrupted one was never visible: it becomes this
         * batch's, with the revision's metadata, as add_diagnosis_keys() does. */
        if (!insert_key(store, batch_id, key, &changes, error))
            return FALSE;
        if (!revoke)
            counts->added += (guint64)changes;
        return !revoke || delete_windows(store, key_id, error);
    }
    /* Revocation is final; batch ids follow import order, so a smaller id is an older list. */
    if (revoked || batch_id < owner || batch_id < revised_by)
        return TRUE;
    sqlite3_stmt *update = stmt_get(store, STMT_KEY_REVISE, error);
    if (update == NULL)
        return FALSE;
    sqlite3_bind_int64(update, 1, key_id);
    sqlite3_bind_int(update, 2, key->transmission_risk_level);
    sqlite3_bind_int(update, 3, (int)key->report_type);
    if (key->has_days_since_onset)
        sqlite3_bind_int(update, 4, key->days_since_onset);
    else
        sqlite3_bind_null(update, 4);
    sqlite3_bind_int64(update, 5, batch_id);
    if (!stmt_exec(store, update, "Revising a diagnosis key", error))
        return FALSE;
    counts->revised++;
    return !revoke || delete_windows(store, key_id, error);
}

static gboolean add_keys_locked(ProxStore *store, gint64 batch_id, const ProxDiagnosisKey *keys,
                                gsize n_keys, KeyCounts *counts, GError **error)
{
    if (!check_batch_unfinished(store, batch_id, error))
        return FALSE;
    g_autofree const ProxDiagnosisKey **order =
        check_and_sort_keys(keys, n_keys, "Diagnosis key", error);
    if (order == NULL)
        return FALSE;
    KeyCounts before = *counts;
    for (gsize i = 0; i < n_keys; i++) {
        const ProxDiagnosisKey *key = order[i];
        /* A published key may come again revoked, in keys as well as in revised_keys. */
        if (key->report_type == PROX_REPORT_REVOKED) {
            if (!revise_key(store, batch_id, key, counts, error))
                return FALSE;
            continue;
        }
        int changes = 0;
        if (!insert_key(store, batch_id, key, &changes, error))
            return FALSE;
        counts->added += (guint64)changes;
    }
    g_debug("Batch %" G_GINT64_FORMAT ": %" G_GUINT64_FORMAT " of %" G_GSIZE_FORMAT
            " keys new, %" G_GUINT64_FORMAT " revoked",
            batch_id, counts->added - before.added, n_keys, counts->revised - before.revised);
    return TRUE;
}

static gboolean revise_keys_locked(ProxStore *store, gint64 batch_id, const ProxDiagnosisKey *keys,
                                   gsize n_keys, KeyCounts *counts, GError **error)
{
    if (!check_batch_unfinished(store, batch_id, error))
        return FALSE;
    g_autofree const ProxDiagnosisKey **order =
        check_and_sort_keys(keys, n_keys, "Revised diagnosis key", error);
    if (order == NULL)
        return FALSE;
    KeyCounts before = *counts;
    for (gsize i = 0; i < n_keys; i++) {
        if (!revise_key(store, batch_id, order[i], counts, error))
            return FALSE;
    }
    g_debug("Batch %" G_GINT64_FORMAT ": %" G_GSIZE_FORMAT " revised keys, %" G_GUINT64_FORMAT
            " applied, %" G_GUINT64_FORMAT " new",
            batch_id, n_keys, counts->revised - before.revised, counts->added - before.added);
    return TRUE;
}

gboolean prox_store_add_diagnosis_keys(ProxStore *store, gint64 batch_id,
                                       const ProxDiagnosisKey *keys, gsize n_keys, guint64 *added,
                                       GError **error)
{
    if (!txn_begin(store->db, error))
        return FALSE;
    KeyCounts counts = {0, 0};
    gboolean ok = add_keys_locked(store, batch_id, keys, n_keys, &counts, error);
    if (!txn_end(store->db, ok, error))
        return FALSE;
    if (added != NULL)
        *added = counts.added;
    return TRUE;
}

gboolean prox_store_revise_diagnosis_keys(ProxStore *store, gint64 batch_id,
                                          const ProxDiagnosisKey *keys, gsize n_keys,
                                          guint64 *revised, GError **error)
{
    if (!txn_begin(store->db, error))
        return FALSE;
    KeyCounts counts = {0, 0};
    gboolean ok = revise_keys_locked(store, batch_id, keys, n_keys, &counts, error);
    if (!txn_end(store->db, ok, error))
        return FALSE;
    if (revised != NULL)
        *revised = counts.revised;
    return TRUE;
}

static gboolean finish_batch_locked(ProxStore *store, gint64 batch_id, GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_BATCH_FINISH, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, batch_id);
    if (!stmt_exec(store, stmt, "Finishing a key batch", error))
        return FALSE;
    if (sqlite3_changes(store->db) == 0) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_NOT_FOUND, "No key batch %" G_GINT64_FORMAT,
                    batch_id);
        return FALSE;
    }
    return TRUE;
}

gboolean prox_store_finish_batch(ProxStore *store, gint64 batch_id, GError **error)
{
    if (!txn_begin(store->db, error))
        return FALSE;
    gboolean ok = finish_batch_locked(store, batch_id, error);
    return txn_end(store->db, ok, error);
}

gboolean prox_store_import_batch(ProxStore *store, const char *source, const char *name, gint64 now,
                                 const ProxDiagnosisKey *keys, gsize n_keys, gint64 *batch_id,
                                 guint64 *added, GError **error)
{
    return prox_store_import_batch_revised(store, source, name, now, keys, n_keys, 0, NULL, 0,
                                           batch_id, added, NULL, NULL, error);
}

gboolean prox_store_has_batch(ProxStore *store, const char *source, const char *name, gboolean *has,
                              GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_BATCH_HAS, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_text(stmt, 1, source, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 2, name, -1, SQLITE_TRANSIENT);
    gint64 one = 0;
    return stmt_query_int(store, stmt, &one, has, "Looking up a key batch", error);
}

gboolean prox_store_count_diagnosis_keys(ProxStore *store, guint64 *count, GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_KEYS_COUNT, error);
    if (stmt == NULL)
        return FALSE;
    gint64 n = 0;
    if (!stmt_query_int(store, stmt, &n, NULL, "Counting diagnosis keys", error))
        return FALSE;
    *count = (guint64)n;
    return TRUE;
}

gboolean prox_store_last_batch_id(ProxStore *store, gint64 *batch_id, GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_BATCH_LAST, error);
    if (stmt == NULL)
        return FALSE;
    *batch_id = 0;
    return stmt_query_int(store, stmt, batch_id, NULL, "Finding the last key batch", error);
}

/* Next finished batch after `after`; *batch = 0 when there is none. */
static gboolean next_finished_batch(ProxStore *store, gint64 after, gint64 *batch, GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_BATCH_NEXT, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, after);
    *batch = 0;
    return stmt_query_int(store, stmt, batch, NULL, "Finding the next key batch", error);
}

/* Appends up to `limit` keys of `batch` with id > *last_id; *rows = how many were read. */
static gboolean read_batch_keys(ProxStore *store, gint64 batch, gint64 *last_id, guint limit,
                                gint64 *ids, ProxDiagnosisKey *keys, guint *rows, GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_KEYS_CHUNK, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, batch);
    sqlite3_bind_int64(stmt, 2, *last_id);
    sqlite3_bind_int64(stmt, 3, limit);
    guint n = 0;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        ProxDiagnosisKey *key = &keys[n];
        *key = (ProxDiagnosisKey){0};
        ids[n] = sqlite3_column_int64(stmt, 0);
        *last_id = ids[n];
        /* The schema's CHECK guarantees 16 bytes; never read past a shorter blob. */
        if (sqlite3_column_bytes(stmt, 1) == PROX_KEY_LEN)
            memcpy(key->tek.key, sqlite3_column_blob(stmt, 1), PROX_KEY_LEN);
        key->tek.rolling_start = (uint32_t)sqlite3_column_int64(stmt, 2);
        key->tek.rolling_period = (uint32_t)sqlite3_column_int64(stmt, 3);
        key->transmission_risk_level = sqlite3_column_int(stmt, 4);
        key->report_type = (ProxReportType)sqlite3_column_int(stmt, 5);
        key->has_days_since_onset = sqlite3_column_type(stmt, 6) != SQLITE_NULL;
        key->days_since_onset = key->has_days_since_onset ? sqlite3_column_int(stmt, 6) : 0;
        n++;
    }
    stmt_done(stmt);
    *rows = n;
    if (rc != SQLITE_DONE)
        return set_sqlite_error(store->db, error, "Loading diagnosis keys");
    return TRUE;
}

gboolean prox_store_foreach_diagnosis_key_chunk(ProxStore *store, gint64 since_batch,
                                                guint max_chunk, ProxDiagnosisKeyChunkFunc func,
                                                gpointer user_data, GError **error)
{
    if (max_chunk == 0)
        max_chunk = DEFAULT_KEY_CHUNK;
    g_autofree gint64 *ids = g_new(gint64, max_chunk);
    g_autofree ProxDiagnosisKey *keys = g_new(ProxDiagnosisKey, max_chunk);
    gint64 batch = 0;
    gint64 last_id = G_MININT64;
    if (!next_finished_batch(store, since_batch, &batch, error))
        return FALSE;
    /* Keyset pagination (batch, then key id seeks in diagnosis_keys_batch): every chunk
     * costs the same however far in we are. Statements are reset before `func` runs, so
     * no read transaction stays open while the caller works and it may write. */
    while (batch != 0) {
        guint n = 0;
        while (batch != 0 && n < max_chunk) {
            guint rows = 0;
            if (!read_batch_keys(store, batch, &last_id, max_chunk - n, ids + n, keys + n, &rows,
                                 error))
                return FALSE;
            n += rows;
            if (n < max_chunk) {
                if (!next_finished_batch(store, batch, &batch, error))
                    return FALSE;
                last_id = G_MININT64;
            }
        }
        if (n > 0 && !func(ids, keys, n, user_data))
            return TRUE;
    }
    return TRUE;
}

typedef struct {
    ProxDiagnosisKeyFunc func;
    gpointer user_data;
} KeyForeach;

static gboolean foreach_key_chunk(const gint64 *key_ids, const ProxDiagnosisKey *keys, guint n_keys,
                                  gpointer user_data)
{
    KeyForeach *data = user_data;
    for (guint i = 0; i < n_keys; i++) {
        if (!data->func(key_ids[i], &keys[i], data->user_data))
            return FALSE;
    }
    return TRUE;
}

gboolean prox_store_foreach_diagnosis_key(ProxStore *store, gint64 since_batch,
                                          ProxDiagnosisKeyFunc func, gpointer user_data,
                                          GError **error)
{
    KeyForeach data = {func, user_data};
    return prox_store_foreach_diagnosis_key_chunk(store, since_batch, 0, foreach_key_chunk, &data,
                                                  error);
}

/* ---- exposure windows ---- */

static GBytes *encode_scans(const GArray *scans)
{
    guint n = scans != NULL ? scans->len : 0;
    guint8 *buf = g_malloc(MAX(n, 1u) * WINDOW_SCAN_BYTES);
    for (guint i = 0; i < n; i++) {
        const ProxWindowScan *scan = &g_array_index(scans, ProxWindowScan, i);
        guint8 *p = buf + i * WINDOW_SCAN_BYTES;
        guint32 seconds = (guint32)scan->seconds_since_last_scan;
        p[0] = scan->min_attenuation;
        p[1] = scan->typical_attenuation;
        p[2] = seconds & 0xff;
        p[3] = (seconds >> 8) & 0xff;
        p[4] = (seconds >> 16) & 0xff;
        p[5] = seconds >> 24;
    }
    return g_bytes_new_take(buf, n * WINDOW_SCAN_BYTES);
}

static gboolean decode_scans(const guint8 *p, gsize len, GArray *scans, GError **error)
{
    if (len % WINDOW_SCAN_BYTES != 0) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                    "Stored exposure window has %" G_GSIZE_FORMAT " bytes of scan data", len);
        return FALSE;
    }
    for (gsize off = 0; off < len; off += WINDOW_SCAN_BYTES) {
        ProxWindowScan scan = {
            .min_attenuation = p[off],
            .typical_attenuation = p[off + 1],
            .seconds_since_last_scan =
                (int32_t)((guint32)p[off + 2] | (guint32)p[off + 3] << 8 |
                          (guint32)p[off + 4] << 16 | (guint32)p[off + 5] << 24),
        };
        g_array_append_val(scans, scan);
    }
    return TRUE;
}

static gboolean save_windows_locked(ProxStore *store, gint64 key_id,
                                    const ProxExposureWindow *windows, guint n_windows,
                                    GError **error)
{
    sqlite3_stmt *del = stmt_get(store, STMT_WINDOWS_DELETE, error);
    if (del == NULL)
        return FALSE;
    sqlite3_bind_int64(del, 1, key_id);
    if (!stmt_exec(store, del, "Replacing exposure windows", error))
        return FALSE;
    sqlite3_stmt *insert = stmt_get(store, STMT_WINDOW_INSERT, error);
    if (insert == NULL)
        return FALSE;
    for (guint i = 0; i < n_windows; i++) {
        const ProxExposureWindow *w = &windows[i];
        g_autoptr(GBytes) scans = encode_scans(w->scans);
        gsize len = 0;
        const void *data = g_bytes_get_data(scans, &len);
        sqlite3_bind_int64(insert, 1, key_id);
        sqlite3_bind_int64(insert, 2, w->day);
        sqlite3_bind_int64(insert, 3, w->start);
        sqlite3_bind_int64(insert, 4, w->end);
        sqlite3_bind_int(insert, 5, (int)w->report_type);
        sqlite3_bind_int(insert, 6, (int)w->infectiousness);
        sqlite3_bind_int(insert, 7, w->calibration_confidence);
        sqlite3_bind_int(insert, 8, w->transmission_risk_level);
        sqlite3_bind_double(insert, 9, w->weighted_minutes);
        sqlite3_bind_double(insert, 10, w->risk);
        /* zeroblob for an empty list: a NULL pointer would bind SQL NULL. */
        if (len > 0)
            sqlite3_bind_blob(insert, 11, data, (int)len, SQLITE_STATIC);
        else
            sqlite3_bind_zeroblob(insert, 11, 0);
        if (!stmt_exec(store, insert, "Storing an exposure window", error))
            return FALSE;
    }
    return TRUE;
}

gboolean prox_store_save_exposure_windows(ProxStore *store, gint64 key_id,
                                          const ProxExposureWindow *windows, guint n_windows,
                                          GError **error)
{
    if (!txn_begin(store->db, error))
        return FALSE;
    gboolean ok = save_windows_locked(store, key_id, windows, n_windows, error);
    return txn_end(store->db, ok, error);
}

gboolean prox_store_load_exposure_windows(ProxStore *store, gint64 since_day, GArray **out,
                                          GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_WINDOWS_LOAD, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, since_day);
    g_autoptr(GArray) windows = g_array_new(FALSE, FALSE, sizeof(ProxExposureWindow));
    g_array_set_clear_func(windows, prox_exposure_window_clear);
    gboolean ok = TRUE;
    int rc = SQLITE_DONE;
    while (ok && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        ProxExposureWindow w;
        prox_exposure_window_init(&w);
        w.key_id = sqlite3_column_int64(stmt, 0);
        w.day = sqlite3_column_int64(stmt, 1);
        w.start = sqlite3_column_int64(stmt, 2);
        w.end = sqlite3_column_int64(stmt, 3);
        w.report_type = (ProxReportType)sqlite3_column_int(stmt, 4);
        w.infectiousness = (ProxInfectiousness)sqlite3_column_int(stmt, 5);
        w.calibration_confidence = (uint8_t)sqlite3_column_int(stmt, 6);
        w.transmission_risk_level = sqlite3_column_int(stmt, 7);
        w.weighted_minutes = sqlite3_column_double(stmt, 8);
        w.risk = sqlite3_column_double(stmt, 9);
        const guint8 *blob = sqlite3_column_blob(stmt, 10);
        ok = decode_scans(blob, (gsize)sqlite3_column_bytes(stmt, 10), w.scans, error);
        g_array_append_val(windows, w);
    }
    stmt_done(stmt);
    if (!ok)
        return FALSE;
    if (rc != SQLITE_DONE)
        return set_sqlite_error(store->db, error, "Loading exposure windows");
    *out = g_steal_pointer(&windows);
    return TRUE;
}

/* ---- buses and venues ---- */

static gboolean add_warnings_locked(ProxStore *store, gint64 batch_id,
                                    const ProxVenueWarning *warnings, gsize n_warnings,
                                    guint64 *added, GError **error)
{
    for (gsize i = 0; i < n_warnings; i++) {
        g_autofree char *what = g_strdup_printf("Venue warning %" G_GSIZE_FORMAT, i);
        if (!prox_venue_warning_check(&warnings[i], what, error))
            return FALSE;
    }
    if (!check_batch_unfinished(store, batch_id, error))
        return FALSE;
    sqlite3_stmt *stmt = stmt_get(store, STMT_WARNING_INSERT, error);
    if (stmt == NULL)
        return FALSE;
    guint64 n_added = 0;
    for (gsize i = 0; i < n_warnings; i++) {
        const ProxVenueWarning *w = &warnings[i];
        ProxVenueWarningSubject subject = prox_venue_warning_subject(w);
        sqlite3_bind_int64(stmt, 1, batch_id);
        sqlite3_bind_int(stmt, 2, (int)w->kind);
        sqlite3_bind_blob(stmt, 3, subject.subject, (int)subject.subject_len, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 4, subject.rolling_start);
        sqlite3_bind_int64(stmt, 5, subject.rolling_period);
        sqlite3_bind_int64(stmt, 6, w->start);
        sqlite3_bind_int64(stmt, 7, w->end);
        sqlite3_bind_int(stmt, 8, w->transmission_risk_level);
        if (!stmt_exec(store, stmt, "Storing venue warnings", error))
            return FALSE;
        n_added += (guint64)sqlite3_changes(store->db);
    }
    if (added != NULL)
        *added = n_added;
    g_debug("Batch %" G_GINT64_FORMAT ": %" G_GUINT64_FORMAT " of %" G_GSIZE_FORMAT
            " venue warnings new",
            batch_id, n_added, n_warnings);
    return TRUE;
}

gboolean prox_store_add_venue_warnings(ProxStore *store, gint64 batch_id,
                                       const ProxVenueWarning *warnings, gsize n_warnings,
                                       guint64 *added, GError **error)
{
    g_return_val_if_fail(warnings != NULL || n_warnings == 0, FALSE);
    if (!txn_begin(store->db, error))
        return FALSE;
    gboolean ok = add_warnings_locked(store, batch_id, warnings, n_warnings, added, error);
    return txn_end(store->db, ok, error);
}

gboolean prox_store_import_batch_full(ProxStore *store, const char *source, const char *name,
                                      gint64 now, const ProxDiagnosisKey *keys, gsize n_keys,
                                      const ProxVenueWarning *warnings, gsize n_warnings,
                                      gint64 *batch_id, guint64 *added_keys,
                                      guint64 *added_warnings, GError **error)
{
    return prox_store_import_batch_revised(store, source, name, now, keys, n_keys, 0, warnings,
                                           n_warnings, batch_id, added_keys, NULL, added_warnings,
                                           error);
}

gboolean prox_store_import_batch_revised(ProxStore *store, const char *source, const char *name,
                                         gint64 now, const ProxDiagnosisKey *keys, gsize n_keys,
                                         gsize n_revised, const ProxVenueWarning *warnings,
                                         gsize n_warnings, gint64 *batch_id, guint64 *added_keys,
                                         guint64 *revised_keys, guint64 *added_warnings,
                                         GError **error)
{
    g_return_val_if_fail(keys != NULL || n_keys == 0, FALSE);
    g_return_val_if_fail(warnings != NULL || n_warnings == 0, FALSE);
    if (n_revised > n_keys) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "%" G_GSIZE_FORMAT " revised keys out of %" G_GSIZE_FORMAT, n_revised, n_keys);
        return FALSE;
    }
    if (!txn_begin(store->db, error))
        return FALSE;
    gint64 id = 0;
    KeyCounts counts = {0, 0};
    guint64 n_warnings_added = 0;
    gsize n_plain = n_keys - n_revised;
    gboolean ok = add_batch_locked(store, source, name, now, &id, error) &&
                  add_keys_locked(store, id, keys, n_plain, &counts, error) &&
                  revise_keys_locked(store, id, keys + n_plain, n_revised, &counts, error) &&
                  add_warnings_locked(store, id, warnings, n_warnings, &n_warnings_added, error) &&
                  finish_batch_locked(store, id, error);
    if (!txn_end(store->db, ok, error))
        return FALSE;
    if (batch_id != NULL)
        *batch_id = id;
    if (added_keys != NULL)
        *added_keys = counts.added;
    if (revised_keys != NULL)
        *revised_keys = counts.revised;
    if (added_warnings != NULL)
        *added_warnings = n_warnings_added;
    maybe_enforce_retention(store, now);
    return TRUE;
}

gboolean prox_store_load_venue_warnings(ProxStore *store, gint64 since_batch, GArray **out,
                                        GArray **warning_ids, GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_WARNINGS_LOAD, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, since_batch);
    g_autoptr(GArray) warnings = g_array_new(FALSE, FALSE, sizeof(ProxVenueWarning));
    g_autoptr(GArray) ids = g_array_new(FALSE, FALSE, sizeof(gint64));
    gboolean ok = TRUE;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        ProxVenueWarning w = {0};
        gint64 id = sqlite3_column_int64(stmt, 0);
        int kind = sqlite3_column_int(stmt, 1);
        int subject_len = sqlite3_column_bytes(stmt, 2);
        if (!prox_venue_warning_set_subject(
                &w, kind, sqlite3_column_blob(stmt, 2), (size_t)subject_len,
                (uint32_t)sqlite3_column_int64(stmt, 3), (uint32_t)sqlite3_column_int64(stmt, 4))) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                        "Stored venue warning %" G_GINT64_FORMAT " has kind %d and a %d-byte "
                        "subject",
                        id, kind, subject_len);
            ok = FALSE;
            break;
        }
        w.start = sqlite3_column_int64(stmt, 5);
        w.end = sqlite3_column_int64(stmt, 6);
        w.transmission_risk_level = sqlite3_column_int(stmt, 7);
        g_array_append_val(warnings, w);
        g_array_append_val(ids, id);
    }
    stmt_done(stmt);
    if (!ok)
        return FALSE;
    if (rc != SQLITE_DONE)
        return set_sqlite_error(store->db, error, "Loading venue warnings");
    *out = g_steal_pointer(&warnings);
    if (warning_ids != NULL)
        *warning_ids = g_steal_pointer(&ids);
    return TRUE;
}

/* The open check-in, if any. */
static gboolean find_open_checkin(ProxStore *store, gint64 *id, gint64 *planned, gboolean *found,
                                  GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_CHECKIN_OPEN, error);
    if (stmt == NULL)
        return FALSE;
    int rc = sqlite3_step(stmt);
    *found = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(stmt, 0);
        *planned = sqlite3_column_int64(stmt, 1);
    }
    stmt_done(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return set_sqlite_error(store->db, error, "Looking up the open check-in");
    return TRUE;
}

static gboolean set_departed(ProxStore *store, gint64 id, gint64 departed, GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_CHECKIN_SET_DEPARTED, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, id);
    sqlite3_bind_int64(stmt, 2, departed);
    return stmt_exec(store, stmt, "Checking out", error);
}

static gboolean checkin_add_locked(ProxStore *store,
                                   const uint8_t location_id[PROX_LOCATION_ID_LEN], gint64 arrived,
                                   gint64 planned_departure, gint64 *id, GError **error)
{
    sqlite3_stmt *close_open = stmt_get(store, STMT_CHECKIN_CLOSE_OPEN, error);
    if (close_open == NULL)
        return FALSE;
    sqlite3_bind_int64(close_open, 1, arrived);
    if (!stmt_exec(store, close_open, "Closing the previous check-in", error))
        return FALSE;
    sqlite3_stmt *insert = stmt_get(store, STMT_CHECKIN_INSERT, error);
    if (insert == NULL)
        return FALSE;
    sqlite3_bind_blob(insert, 1, location_id, PROX_LOCATION_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(insert, 2, arrived);
    sqlite3_bind_int64(insert, 3, planned_departure);
    if (!stmt_exec(store, insert, "Storing a check-in", error))
        return FALSE;
    *id = sqlite3_last_insert_rowid(store->db);
    return TRUE;
}

gboolean prox_store_checkin_add(ProxStore *store, const uint8_t location_id[PROX_LOCATION_ID_LEN],
                                gint64 arrived, gint64 planned_departure, gint64 *id,
                                GError **error)
{
    g_return_val_if_fail(location_id != NULL, FALSE);
    if (arrived < 0 || planned_departure <= arrived) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "Check-in: planned departure %" G_GINT64_FORMAT
                    " is not after arrival %" G_GINT64_FORMAT,
                    planned_departure, arrived);
        return FALSE;
    }
    if (!txn_begin(store->db, error))
        return FALSE;
    gint64 new_id = 0;
    gboolean ok =
        checkin_add_locked(store, location_id, arrived, planned_departure, &new_id, error);
    if (!txn_end(store->db, ok, error))
        return FALSE;
    if (id != NULL)
        *id = new_id;
    maybe_enforce_retention(store, arrived);
    return TRUE;
}

/* at_planned: close at the planned departure, and only once it has passed. */
static gboolean checkout_locked(ProxStore *store, gint64 now, gboolean at_planned, gint64 *id,
                                gboolean *closed, GError **error)
{
    gint64 open_id = 0;
    gint64 planned = 0;
    gboolean found = FALSE;
    if (!find_open_checkin(store, &open_id, &planned, &found, error))
        return FALSE;
    *closed = FALSE;
    if (!found || (at_planned && planned > now))
        return TRUE;
    if (!set_departed(store, open_id, at_planned ? planned : now, error))
        return FALSE;
    *closed = TRUE;
    *id = open_id;
    return TRUE;
}

gboolean prox_store_checkin_checkout(ProxStore *store, gint64 now, gint64 *id, GError **error)
{
    if (!txn_begin(store->db, error))
        return FALSE;
    gint64 closed_id = 0;
    gboolean closed = FALSE;
    gboolean ok = checkout_locked(store, now, FALSE, &closed_id, &closed, error);
    if (!txn_end(store->db, ok, error))
        return FALSE;
    if (!closed) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_NOT_FOUND, "Not checked in anywhere");
        return FALSE;
    }
    if (id != NULL)
        *id = closed_id;
    maybe_enforce_retention(store, now);
    return TRUE;
}

gboolean prox_store_checkin_auto_checkout(ProxStore *store, gint64 now, gboolean *closed,
                                          GError **error)
{
    if (!txn_begin(store->db, error))
        return FALSE;
    gint64 closed_id = 0;
    gboolean did = FALSE;
    gboolean ok = checkout_locked(store, now, TRUE, &closed_id, &did, error);
    if (!txn_end(store->db, ok, error))
        return FALSE;
    if (did)
        g_debug("Checked out of check-in %" G_GINT64_FORMAT " at its planned departure", closed_id);
    if (closed != NULL)
        *closed = did;
    maybe_enforce_retention(store, now);
    return TRUE;
}

static gboolean checkin_edit_locked(ProxStore *store, gint64 id, gint64 arrived, gint64 departed,
                                    GError **error)
{
    sqlite3_stmt *get = stmt_get(store, STMT_CHECKIN_GET, error);
    if (get == NULL)
        return FALSE;
    sqlite3_bind_int64(get, 1, id);
    int rc = sqlite3_step(get);
    gint64 old_arrived = 0;
    gint64 planned = 0;
    gboolean was_open = FALSE;
    if (rc == SQLITE_ROW) {
        old_arrived = sqlite3_column_int64(get, 0);
        was_open = sqlite3_column_int(get, 1) != 0;
        planned = sqlite3_column_int64(get, 2);
    }
    stmt_done(get);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return set_sqlite_error(store->db, error, "Looking up a check-in");
    if (rc == SQLITE_DONE) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_NOT_FOUND, "No check-in %" G_GINT64_FORMAT, id);
        return FALSE;
    }
    if (departed == 0 && !was_open) {
        gint64 open_id = 0;
        gint64 open_planned = 0;
        gboolean found = FALSE;
        if (!find_open_checkin(store, &open_id, &open_planned, &found, error))
            return FALSE;
        if (found) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                        "Check-in %" G_GINT64_FORMAT
                        " cannot be reopened: check-in %" G_GINT64_FORMAT " is open",
                        id, open_id);
            return FALSE;
        }
    }
    /* Moving the arrival keeps the planned stay's length. */
    planned += arrived - old_arrived;
    sqlite3_stmt *update = stmt_get(store, STMT_CHECKIN_UPDATE, error);
    if (update == NULL)
        return FALSE;
    sqlite3_bind_int64(update, 1, id);
    sqlite3_bind_int64(update, 2, arrived);
    if (departed != 0)
        sqlite3_bind_int64(update, 3, departed);
    else
        sqlite3_bind_null(update, 3);
    sqlite3_bind_int64(update, 4, planned);
    return stmt_exec(store, update, "Correcting a check-in", error);
}

gboolean prox_store_checkin_edit(ProxStore *store, gint64 id, gint64 arrived, gint64 departed,
                                 gint64 now, GError **error)
{
    gboolean open = departed == 0;
    if (arrived < 0 || arrived > now || (!open && departed <= arrived)) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "Check-in times must be arrival < departure, arrival not in the future");
        return FALSE;
    }
    if (!open && departed > now) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                            "Check-in departure is in the future");
        return FALSE;
    }
    if (!open && departed - arrived > SECONDS_PER_DAY) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                            "A check-in lasts at most 24 hours");
        return FALSE;
    }
    if (!txn_begin(store->db, error))
        return FALSE;
    gboolean ok = checkin_edit_locked(store, id, arrived, departed, error);
    return txn_end(store->db, ok, error);
}

gboolean prox_store_checkin_delete(ProxStore *store, gint64 id, GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_CHECKIN_DELETE, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, id);
    if (!stmt_exec(store, stmt, "Deleting a check-in", error))
        return FALSE;
    if (sqlite3_changes(store->db) == 0) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_NOT_FOUND, "No check-in %" G_GINT64_FORMAT, id);
        return FALSE;
    }
    return TRUE;
}

gboolean prox_store_load_checkins(ProxStore *store, gint64 since, GArray **out, GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_CHECKINS_LOAD, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, since);
    g_autoptr(GArray) checkins = g_array_new(FALSE, FALSE, sizeof(ProxCheckIn));
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        ProxCheckIn c = {0};
        c.id = sqlite3_column_int64(stmt, 0);
        /* The schema's CHECK guarantees 32 bytes; never read past a shorter blob. */
        if (sqlite3_column_bytes(stmt, 1) == PROX_LOCATION_ID_LEN)
            memcpy(c.location_id, sqlite3_column_blob(stmt, 1), PROX_LOCATION_ID_LEN);
        c.arrived = sqlite3_column_int64(stmt, 2);
        c.departed = sqlite3_column_int64(stmt, 3);
        c.planned_departure = sqlite3_column_int64(stmt, 4);
        g_array_append_val(checkins, c);
    }
    stmt_done(stmt);
    if (rc != SQLITE_DONE)
        return set_sqlite_error(store->db, error, "Loading check-ins");
    *out = g_steal_pointer(&checkins);
    return TRUE;
}

static gboolean save_venue_exposure_locked(ProxStore *store, ProxVenueExposure *e, gboolean *is_new,
                                           GError **error)
{
    sqlite3_stmt *insert = stmt_get(store, STMT_VENUE_EXPOSURE_INSERT, error);
    if (insert == NULL)
        return FALSE;
    sqlite3_bind_int64(insert, 1, e->warning_id);
    sqlite3_bind_int(insert, 2, (int)e->kind);
    sqlite3_bind_int64(insert, 3, e->day);
    sqlite3_bind_int64(insert, 4, e->start);
    sqlite3_bind_int64(insert, 5, e->end);
    sqlite3_bind_int64(insert, 6, e->minutes);
    sqlite3_bind_int(insert, 7, e->transmission_risk_level);
    sqlite3_bind_int64(insert, 8, e->detected_at);
    if (!stmt_exec(store, insert, "Storing a venue exposure", error))
        return FALSE;
    if (sqlite3_changes(store->db) > 0) {
        *is_new = TRUE;
        e->id = sqlite3_last_insert_rowid(store->db);
        return TRUE;
    }
    *is_new = FALSE;
    sqlite3_stmt *find = stmt_get(store, STMT_VENUE_EXPOSURE_FIND, error);
    if (find == NULL)
        return FALSE;
    sqlite3_bind_int64(find, 1, e->warning_id);
    return stmt_query_int(store, find, &e->id, NULL, "Looking up a venue exposure", error);
}

gboolean prox_store_save_venue_exposure(ProxStore *store, ProxVenueExposure *exposure,
                                        gboolean *is_new, GError **error)
{
    g_return_val_if_fail(exposure != NULL, FALSE);
    if (!txn_begin(store->db, error))
        return FALSE;
    gboolean fresh = FALSE;
    gboolean ok = save_venue_exposure_locked(store, exposure, &fresh, error);
    if (!txn_end(store->db, ok, error))
        return FALSE;
    if (is_new != NULL)
        *is_new = fresh;
    return TRUE;
}

gboolean prox_store_load_venue_exposures(ProxStore *store, gint64 since_day, GArray **out,
                                         GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, STMT_VENUE_EXPOSURES_LOAD, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, since_day);
    g_autoptr(GArray) exposures = g_array_new(FALSE, FALSE, sizeof(ProxVenueExposure));
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        ProxVenueExposure e = {
            .id = sqlite3_column_int64(stmt, 0),
            .warning_id = sqlite3_column_int64(stmt, 1),
            .kind = (ProxVenueWarningKind)sqlite3_column_int(stmt, 2),
            .day = sqlite3_column_int64(stmt, 3),
            .start = sqlite3_column_int64(stmt, 4),
            .end = sqlite3_column_int64(stmt, 5),
            .minutes = (guint)sqlite3_column_int64(stmt, 6),
            .transmission_risk_level = sqlite3_column_int(stmt, 7),
            .detected_at = sqlite3_column_int64(stmt, 8),
        };
        g_array_append_val(exposures, e);
    }
    stmt_done(stmt);
    if (rc != SQLITE_DONE)
        return set_sqlite_error(store->db, error, "Loading venue exposures");
    *out = g_steal_pointer(&exposures);
    return TRUE;
}

/* ---- beacon trip log ---- */

static ProxTripInterval *trip_interval(GArray *intervals, GHashTable *index, uint32_t enin)
{
    gpointer pos = NULL;
    if (g_hash_table_lookup_extended(index, GUINT_TO_POINTER(enin), NULL, &pos))
        return &g_array_index(intervals, ProxTripInterval, GPOINTER_TO_UINT(pos));
    ProxTripInterval fresh = {.interval = enin};
    g_hash_table_insert(index, GUINT_TO_POINTER(enin), GUINT_TO_POINTER(intervals->len));
    g_array_append_val(intervals, fresh);
    return &g_array_index(intervals, ProxTripInterval, intervals->len - 1);
}

static int trip_interval_compare(gconstpointer a, gconstpointer b)
{
    const ProxTripInterval *x = a;
    const ProxTripInterval *y = b;
    return (x->interval > y->interval) - (x->interval < y->interval);
}

/* Adds the seconds of [from, to) to the intervals it covers; a zero-length (open) scan
 * still marks its interval as in service. */
static void trip_cover(GArray *intervals, GHashTable *index, gint64 from, gint64 to)
{
    uint32_t enin = prox_interval_number(from);
    for (;;) {
        gint64 begin = prox_interval_start(enin);
        gint64 covered = MIN(to, begin + PROX_INTERVAL_SECONDS) - MAX(from, begin);
        ProxTripInterval *t = trip_interval(intervals, index, enin);
        t->scan_seconds += (guint)MAX(covered, 0);
        if (begin + PROX_INTERVAL_SECONDS >= to)
            break;
        enin++;
    }
}

gboolean prox_store_load_trip_log(ProxStore *store, gint64 since, gint64 until, GArray **out,
                                  GError **error)
{
    g_autoptr(GArray) intervals = g_array_new(FALSE, FALSE, sizeof(ProxTripInterval));
    if (until <= since) {
        *out = g_steal_pointer(&intervals);
        return TRUE;
    }
    g_autoptr(GArray) scans = NULL;
    if (!prox_store_load_scan_instances(store, since, until, &scans, error))
        return FALSE;
    g_autoptr(GHashTable) index = g_hash_table_new(g_direct_hash, g_direct_equal);
    /* Scans are in start order: merge overlaps so no second is counted twice. */
    gboolean have = FALSE;
    gint64 seg_from = 0;
    gint64 seg_to = 0;
    for (guint i = 0; i < scans->len; i++) {
        const ProxScanInstance *scan = &g_array_index(scans, ProxScanInstance, i);
        gint64 from = MAX(scan->start, since);
        gint64 to = MIN(MAX(scan->end, scan->start), until);
        if (to < from)
            to = from;
        if (from >= until)
            continue;
        if (have && from <= seg_to) {
            seg_to = MAX(seg_to, to);
            continue;
        }
        if (have)
            trip_cover(intervals, index, seg_from, seg_to);
        have = TRUE;
        seg_from = from;
        seg_to = to;
    }
    if (have)
        trip_cover(intervals, index, seg_from, seg_to);

    sqlite3_stmt *stmt = stmt_get(store, STMT_TRIP_RPIS, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, since);
    sqlite3_bind_int64(stmt, 2, until);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        ProxTripInterval *t =
            trip_interval(intervals, index, (uint32_t)sqlite3_column_int64(stmt, 0));
        t->distinct_rpis = (guint)sqlite3_column_int64(stmt, 1);
    }
    stmt_done(stmt);
    if (rc != SQLITE_DONE)
        return set_sqlite_error(store->db, error, "Loading the trip log");
    g_array_sort(intervals, trip_interval_compare);
    *out = g_steal_pointer(&intervals);
    return TRUE;
}

/* ---- settings and sync state ---- */

static gboolean kv_get(ProxStore *store, StmtId id, const char *key, char **value, const char *what,
                       GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, id, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_text(stmt, 1, key, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(stmt);
    *value = rc == SQLITE_ROW ? g_strdup((const char *)sqlite3_column_text(stmt, 0)) : NULL;
    stmt_done(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return set_sqlite_error(store->db, error, what);
    return TRUE;
}

static gboolean kv_set(ProxStore *store, StmtId set_id, StmtId delete_id, const char *key,
                       const char *value, const char *what, GError **error)
{
    sqlite3_stmt *stmt = stmt_get(store, value != NULL ? set_id : delete_id, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_text(stmt, 1, key, -1, SQLITE_TRANSIENT);
    if (value != NULL)
        sqlite3_bind_text(stmt, 2, value, -1, SQLITE_TRANSIENT);
    return stmt_exec(store, stmt, what, error);
}

gboolean prox_store_get_setting(ProxStore *store, const char *key, char **value, GError **error)
{
    return kv_get(store, STMT_SETTING_GET, key, value, "Reading a setting", error);
}

gboolean prox_store_set_setting(ProxStore *store, const char *key, const char *value,
                                GError **error)
{
    return kv_set(store, STMT_SETTING_SET, STMT_SETTING_DELETE, key, value, "Storing a setting",
                  error);
}

gboolean prox_store_get_sync_state(ProxStore *store, const char *key, char **value, GError **error)
{
    return kv_get(store, STMT_SYNC_GET, key, value, "Reading sync state", error);
}

gboolean prox_store_set_sync_state(ProxStore *store, const char *key, const char *value,
                                   GError **error)
{
    return kv_set(store, STMT_SYNC_SET, STMT_SYNC_DELETE, key, value, "Storing sync state", error);
}
