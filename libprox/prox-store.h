/* prox-store.h - the sqlite store of every role: sightings, scan instances, own TEKs,
 * diagnosis keys and their batches, exposure windows, sync state and settings.
 *
 * One ProxStore is one sqlite connection: not thread-safe, open one per thread. Writes are
 * batched, one transaction per call; a call that returned TRUE is durable (synchronous=FULL
 * in WAL mode, see prox-store.c). Retention (default 14 days) is enforced by the store:
 * explicitly with prox_store_enforce_retention() and automatically, at most once per hour of
 * `now`, by the calls that take a time. Time is always passed in (unix seconds).
 *
 * Errors are PROX_ERROR: PROX_ERROR_STORE (sqlite failed; message says what we were doing
 * and sqlite's reason), PROX_ERROR_IO (the file cannot be created/opened), PROX_ERROR_UNSUPPORTED
 * (database written by a newer proxd), PROX_ERROR_NOT_FOUND, PROX_ERROR_INVALID_ARGUMENT,
 * PROX_ERROR_MALFORMED (stored data does not decode).
 */
#pragma once

#include "prox-exposure.h"
#include "prox-keys.h"
#include "prox-types.h"

G_BEGIN_DECLS

#define PROX_STORE_DEFAULT_RETENTION_DAYS 14
#define PROX_STORE_DEFAULT_BUSY_TIMEOUT_MS 5000
#define PROX_STORE_DEFAULT_CACHE_KIB 16384
/* Schema version this code writes (PRAGMA user_version). */
#define PROX_STORE_SCHEMA_VERSION 4

typedef struct _ProxStore ProxStore;

typedef struct {
    guint retention_days;  /* 0 = PROX_STORE_DEFAULT_RETENTION_DAYS; beacons may keep longer */
    guint busy_timeout_ms; /* 0 = PROX_STORE_DEFAULT_BUSY_TIMEOUT_MS */
    /* synchronous=NORMAL instead of FULL: commits survive a process crash but not an OS
     * crash or power loss. For simulators and benchmarks, never for a real device. */
    gboolean fast_sync;
    /* sqlite page cache in KiB; 0 = PROX_STORE_DEFAULT_CACHE_KIB, sized for big imports. */
    guint cache_kib;
} ProxStoreOptions;

/* Opens (creating it, mode 0600, if needed) and migrates the database at `path`.
 * `opts` may be NULL for defaults. A database from a newer schema is refused, untouched. */
ProxStore *prox_store_open(const char *path, const ProxStoreOptions *opts, GError **error);
void prox_store_close(ProxStore *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ProxStore, prox_store_close)

/* Test hook: creates the database at `path` (or migrates an existing older one) up to
 * schema `version` exactly (1..PROX_STORE_SCHEMA_VERSION) and closes it. */
gboolean prox_store_migrate_to(const char *path, int version, GError **error);

/* PRAGMA integrity_check; FALSE with sqlite's first complaint when it is not "ok". */
gboolean prox_store_integrity_check(ProxStore *store, GError **error);

/* ---- scan instances and sightings ---- */

/* Starts a scan instance at `now`. Its seconds_since_last_scan is the raw gap since the
 * start of the previous scan instance (0 when there is none); risk scoring caps it.
 * A previous scan left open (crash) is closed at its last sighting. */
gboolean prox_store_scan_begin(ProxStore *store, gint64 now, gint64 *scan_id, GError **error);
gboolean prox_store_scan_end(ProxStore *store, gint64 scan_id, gint64 now, GError **error);

/* In-memory aggregation of radio reports per (RPI, scan instance), flushed to the store by
 * prox_store_commit_sightings(). */
typedef struct _ProxSightingBatch ProxSightingBatch;

ProxSightingBatch *prox_sighting_batch_new(void);
void prox_sighting_batch_free(ProxSightingBatch *batch);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ProxSightingBatch, prox_sighting_batch_free)
/* One radio report. `rssi` after calibration; PROX_RSSI_UNKNOWN counts as a report but not
 * in the RSSI fields. The AEM kept is the first one received for the (RPI, scan). */
void prox_sighting_batch_add(ProxSightingBatch *batch, gint64 scan_id, const ProxRpi *rpi,
                             const ProxAem *aem, int rssi, gint64 now);
/* Number of distinct (RPI, scan instance) pairs pending. */
guint prox_sighting_batch_size(const ProxSightingBatch *batch);
void prox_sighting_batch_clear(ProxSightingBatch *batch);

/* Writes the batch in one transaction, merging with rows already stored (first/last seen,
 * counts, min/max/mean RSSI combine exactly), then clears it. On error nothing is written
 * and the batch is kept so the caller can retry. Rows of scan instances that do not exist
 * (any more: expired by retention while held in memory) are dropped, not an error. */
gboolean prox_store_commit_sightings(ProxStore *store, ProxSightingBatch *batch, GError **error);

/* Sightings seen during [since, until) (first_seen < until and last_seen >= since), in
 * first_seen order. rssi_mean is the mean of the known RSSIs rounded half away from zero;
 * rssi_min/max/mean are 0 when rssi_count is 0. */
gboolean prox_store_load_sightings(ProxStore *store, gint64 since, gint64 until,
                                   GArray **out /* ProxSighting */, GError **error);
/* Same, streamed row by row so a beacon's log need not fit in memory. Return FALSE from
 * `func` to stop early (not an error). `func` may read from the store; batch writes until
 * after the walk. */
typedef gboolean (*ProxSightingFunc)(const ProxSighting *sighting, gpointer user_data);
gboolean prox_store_foreach_sighting(ProxStore *store, gint64 since, gint64 until,
                                     ProxSightingFunc func, gpointer user_data, GError **error);
/* Scan instances overlapping [since, until), in start order; an open scan has end = start. */
gboolean prox_store_load_scan_instances(ProxStore *store, gint64 since, gint64 until,
                                        GArray **out /* ProxScanInstance */, GError **error);

/* Distinct RPIs seen during [since, until) (an RPI is one device for 10-20 minutes). */
gboolean prox_store_count_encounters(ProxStore *store, gint64 since, gint64 until, guint64 *count,
                                     GError **error);

/* Distinct RPIs per UTC hour for beacon occupancy, counting each sighting in the hour of
 * its first_seen, for first_seen in [since, until); only hours with sightings. */
typedef struct {
    gint64 hour; /* unix seconds, multiple of 3600 */
    guint count;
} ProxHourCount;
gboolean prox_store_count_rpis_per_hour(ProxStore *store, gint64 since, gint64 until,
                                        GArray **out /* ProxHourCount */, GError **error);

/* ---- own TEKs ---- */

/* The TEK covering now's interval, creating (prox_tek_generate) and storing one if none. */
gboolean prox_store_get_or_create_tek(ProxStore *store, gint64 now, ProxRandomFunc random,
                                      void *random_data, ProxTek *out, GError **error);
/* Same-day release, when a positive test is reported: ends the TEK covering now with the
 * current interval and stores a fresh one from the current interval to the end of the day
 * (it wins the lookup above from now on). The reported key is then never broadcast again
 * and its period is over once the key server publishes it. *cut is the key as ended;
 * *had_key is FALSE when no key covered now (nothing to end). */
gboolean prox_store_cut_current_tek(ProxStore *store, gint64 now, ProxRandomFunc random,
                                    void *random_data, ProxTek *cut, gboolean *had_key,
                                    GError **error);
/* Own TEKs still valid at or after interval `since_enin`, oldest first (for reporting). */
gboolean prox_store_load_teks(ProxStore *store, uint32_t since_enin, GArray **out /* ProxTek */,
                              GError **error);

/* ---- diagnosis keys ---- */

/* Key lists. Simplest: prox_store_import_batch(). For lists too big to hold at once:
 * add_batch, add_diagnosis_keys (any number of calls), finish_batch. Keys of an unfinished
 * batch are invisible to matching, to has_batch and to last_batch_id; import one batch at
 * a time so batch ids follow import order.
 *
 * Registers batch file `name` from `source` (server name or URL). An unfinished batch of
 * the same source and name (interrupted import) is dropped and the import starts afresh
 * under a new id; PROX_ERROR_INVALID_ARGUMENT if it was already finished. */
gboolean prox_store_add_batch(ProxStore *store, const char *source, const char *name, gint64 now,
                              gint64 *batch_id, GError **error);
/* Adds keys to an unfinished batch in one transaction, skipping keys already stored by a
 * finished batch (same key_data and rolling_start; the first batch's metadata wins).
 * Except: a key with report_type PROX_REPORT_REVOKED is a revision (see
 * prox_store_revise_diagnosis_keys): it revokes the stored key, and is not stored when
 * there is none. `added` (may be NULL) = keys that were new to matching. A key with a rolling
 * period outside 1..144 fails the call (INVALID_ARGUMENT), an unknown batch is NOT_FOUND. */
gboolean prox_store_add_diagnosis_keys(ProxStore *store, gint64 batch_id,
                                       const ProxDiagnosisKey *keys, gsize n_keys, guint64 *added,
                                       GError **error);
/* Adds revised keys (GAEN export revised_keys, ProxExport's last n_revised keys) to an
 * unfinished batch in one transaction. For a key already stored by a finished batch (same
 * key_data and rolling_start), the revision's transmission_risk_level, report_type and
 * days_since_onset replace the stored ones when this batch is newer (higher id: ids follow
 * import order) than the batch that stored the key and than the batch of its last
 * revision; a revision from an older batch is ignored. rolling_period and the key's batch
 * (retention, the since_batch watermark) stay. A revision with report_type
 * PROX_REPORT_REVOKED revokes the key: prox_store_foreach_diagnosis_key*() no longer
 * return it and its exposure windows are deleted (so risk summed over stored windows
 * drops it). Revocation is final: later copies and revisions of the key are ignored; the
 * revoked key stays stored (and counted by count_diagnosis_keys) until retention removes
 * it. A revision of a key not stored yet is stored as a new key of this batch, as
 * add_diagnosis_keys() would, unless it is REVOKED (then nothing is stored). A revision of
 * a key held by an unfinished batch (an interrupted import, or this batch's own keys)
 * applies as add_diagnosis_keys() would: the key becomes this batch's, revised.
 * Revisions of stored keys are visible as soon as the call returns, before the batch is
 * finished; a restarted import applies them again, to the same effect. `revised` (may be
 * NULL) = stored keys this call revised or revoked (new keys are not counted). Errors as
 * add_diagnosis_keys(). */
gboolean prox_store_revise_diagnosis_keys(ProxStore *store, gint64 batch_id,
                                          const ProxDiagnosisKey *keys, gsize n_keys,
                                          guint64 *revised, GError **error);
/* Marks a batch completely imported: from now on prox_store_has_batch() is TRUE. */
gboolean prox_store_finish_batch(ProxStore *store, gint64 batch_id, GError **error);
/* add_batch + add_diagnosis_keys + finish_batch in one transaction: a crash never leaves a
 * half-imported file that looks imported. */
gboolean prox_store_import_batch(ProxStore *store, const char *source, const char *name, gint64 now,
                                 const ProxDiagnosisKey *keys, gsize n_keys, gint64 *batch_id,
                                 guint64 *added, GError **error);
/* TRUE when that file was completely imported (and not yet expired). */
gboolean prox_store_has_batch(ProxStore *store, const char *source, const char *name, gboolean *has,
                              GError **error);
gboolean prox_store_count_diagnosis_keys(ProxStore *store, guint64 *count, GError **error);

/* Streams the keys of finished batches with id > since_batch (0 = all), revoked keys
 * left out (the metadata is the latest revision's), batch by batch
 * (inside a batch in no particular order), in chunks of at most `max_chunk` keys (0 =
 * 4096): memory stays bounded for any count. `key_ids` are the store's ids (for exposure
 * windows). Return FALSE to stop early (not an error). The callback may write to the
 * store: no statement is active while it runs. */
typedef gboolean (*ProxDiagnosisKeyChunkFunc)(const gint64 *key_ids, const ProxDiagnosisKey *keys,
                                              guint n_keys, gpointer user_data);
gboolean prox_store_foreach_diagnosis_key_chunk(ProxStore *store, gint64 since_batch,
                                                guint max_chunk, ProxDiagnosisKeyChunkFunc func,
                                                gpointer user_data, GError **error);
/* Same, one key at a time. */
typedef gboolean (*ProxDiagnosisKeyFunc)(gint64 key_id, const ProxDiagnosisKey *key,
                                         gpointer user_data);
gboolean prox_store_foreach_diagnosis_key(ProxStore *store, gint64 since_batch,
                                          ProxDiagnosisKeyFunc func, gpointer user_data,
                                          GError **error);
/* Highest finished batch id (0 when none): remember it to match only newer keys next time. */
gboolean prox_store_last_batch_id(ProxStore *store, gint64 *batch_id, GError **error);

/* ---- exposure windows ---- */

/* Replaces all windows of diagnosis key `key_id` with `windows` (n may be 0), one
 * transaction. Each window's key_id field is ignored on save and set on load; key_index
 * (a position in one matching run) is not stored and loads as 0. */
gboolean prox_store_save_exposure_windows(ProxStore *store, gint64 key_id,
                                          const ProxExposureWindow *windows, guint n_windows,
                                          GError **error);
/* Windows with day >= since_day, ordered by day then start. The array frees each window's
 * scans (clear func set). */
gboolean prox_store_load_exposure_windows(ProxStore *store, gint64 since_day,
                                          GArray **out /* ProxExposureWindow */, GError **error);

/* ---- buses and venues (schema v3, docs/venues.md) ---- */

/* Warnings come with key lists: adds them to an unfinished batch (one transaction),
 * skipping ones already stored (same kind, TEK or location hash, start, end). Invisible
 * until the batch is finished; deleted with it. Each is checked with
 * prox_venue_warning_check() (INVALID_ARGUMENT names the bad one; nothing is added). */
gboolean prox_store_add_venue_warnings(ProxStore *store, gint64 batch_id,
                                       const ProxVenueWarning *warnings, gsize n_warnings,
                                       guint64 *added, GError **error);
/* prox_store_import_batch() that also adds warnings, in the same transaction. */
gboolean prox_store_import_batch_full(ProxStore *store, const char *source, const char *name,
                                      gint64 now, const ProxDiagnosisKey *keys, gsize n_keys,
                                      const ProxVenueWarning *warnings, gsize n_warnings,
                                      gint64 *batch_id, guint64 *added_keys,
                                      guint64 *added_warnings, GError **error);
/* One key list as read (ProxExport) in one transaction: add_batch, the first n_keys -
 * n_revised keys as add_diagnosis_keys(), the last n_revised as
 * prox_store_revise_diagnosis_keys(), the warnings, finish_batch. n_revised <= n_keys
 * (else INVALID_ARGUMENT); keys may be NULL when n_keys is 0, warnings when n_warnings is
 * 0. added_keys = new keys (plain or revised), revised_keys = stored keys revised or
 * revoked; every out pointer may be NULL. import_batch and import_batch_full are this
 * call with n_revised 0. */
gboolean prox_store_import_batch_revised(ProxStore *store, const char *source, const char *name,
                                         gint64 now, const ProxDiagnosisKey *keys, gsize n_keys,
                                         gsize n_revised, const ProxVenueWarning *warnings,
                                         gsize n_warnings, gint64 *batch_id, guint64 *added_keys,
                                         guint64 *revised_keys, guint64 *added_warnings,
                                         GError **error);
/* Warnings of finished batches with id > since_batch, in store order; warning_ids (may be
 * NULL) receives the matching gint64 store ids. */
gboolean prox_store_load_venue_warnings(ProxStore *store, gint64 since_batch,
                                        GArray **out /* ProxVenueWarning */,
                                        GArray **warning_ids /* gint64 */, GError **error);

/* Check-ins. Only one is open at a time: checking in closes an open one at `arrived`
 * (a phone that missed the checkout). planned_departure > arrived. */
gboolean prox_store_checkin_add(ProxStore *store, const uint8_t location_id[PROX_LOCATION_ID_LEN],
                                gint64 arrived, gint64 planned_departure, gint64 *id,
                                GError **error);
/* Closes the open check-in at `now` (NOT_FOUND when none is open); *id may be NULL. */
gboolean prox_store_checkin_checkout(ProxStore *store, gint64 now, gint64 *id, GError **error);
/* Closes an open check-in whose planned_departure <= now, at its planned departure;
 * *closed (may be NULL) = whether one was. */
gboolean prox_store_checkin_auto_checkout(ProxStore *store, gint64 now, gboolean *closed,
                                          GError **error);
/* Corrects times: arrived < departed (departed 0 keeps it open), at most 24 h; a departure
 * in the future is refused (INVALID_ARGUMENT). NOT_FOUND for an unknown id. */
gboolean prox_store_checkin_edit(ProxStore *store, gint64 id, gint64 arrived, gint64 departed,
                                 gint64 now, GError **error);
gboolean prox_store_checkin_delete(ProxStore *store, gint64 id, GError **error);
/* Check-ins that arrived at or after `since`, newest first. */
gboolean prox_store_load_checkins(ProxStore *store, gint64 since, GArray **out /* ProxCheckIn */,
                                  GError **error);

/* Records an exposure; a second one for the same warning is not added (*is_new FALSE,
 * exposure->id set to the stored one). */
gboolean prox_store_save_venue_exposure(ProxStore *store, ProxVenueExposure *exposure,
                                        gboolean *is_new, GError **error);
/* Exposures with day >= since_day, newest first. */
gboolean prox_store_load_venue_exposures(ProxStore *store, gint64 since_day,
                                         GArray **out /* ProxVenueExposure */, GError **error);

/* Beacon trip log: per 10-minute interval in [since, until), whether the beacon was
 * scanning (any scan instance overlapping it) and how many distinct RPIs it heard (by
 * first_seen). Only intervals in service. */
typedef struct {
    uint32_t interval; /* ENIN */
    guint distinct_rpis;
    guint scan_seconds; /* seconds of the interval covered by scan instances */
} ProxTripInterval;
gboolean prox_store_load_trip_log(ProxStore *store, gint64 since, gint64 until,
                                  GArray **out /* ProxTripInterval */, GError **error);

/* ---- sync state and settings (string key/value) ---- */

/* *value = newly allocated string, or NULL when the key is not set. */
gboolean prox_store_get_setting(ProxStore *store, const char *key, char **value, GError **error);
/* value NULL deletes the key. */
gboolean prox_store_set_setting(ProxStore *store, const char *key, const char *value,
                                GError **error);
gboolean prox_store_get_sync_state(ProxStore *store, const char *key, char **value, GError **error);
gboolean prox_store_set_sync_state(ProxStore *store, const char *key, const char *value,
                                   GError **error);

/* ---- retention ---- */

/* Deletes what is older than the retention period before `now` (cutoff = now -
 * retention_days * 86400; a row whose time equals the cutoff is kept): sightings by
 * last_seen, scan instances by end, own TEKs and diagnosis keys by the end of their
 * validity (diagnosis keys plus the ±2 h match tolerance), batches by import time,
 * exposure windows by end; check-ins by departure (open ones are kept), venue warnings with
 * their batch, venue exposures by end. */
gboolean prox_store_enforce_retention(ProxStore *store, gint64 now, GError **error);

G_END_DECLS
