/* proxd-sync.h - key-list sync (PROTOCOL.md §5): index.txt with If-None-Match, new files
 * only, each verified against the pinned authority keys before its keys are imported,
 * then exposure detection (prox-detect.h).
 *
 * Threads and the store: a run happens in a GTask worker thread (libcurl easy API, which
 * blocks) and uses its OWN ProxStore connection to the database file, opened at the start
 * of the run and closed at its end. ProxdSync never touches the caller's ProxStore, so the
 * daemon's main-thread connection keeps committing sightings meanwhile (sqlite WAL: one
 * writer at a time, each import is one short transaction, the busy timeout covers the
 * wait). Everything else - signals, the async callback, the schedule - happens on the
 * thread-default main context of the thread that created the ProxdSync.
 *
 * What a run does:
 *   1. GET the index with If-None-Match: <ETag of the last accepted index>. 304 means the
 *      last accepted index still holds; its files not imported yet are retried.
 *   2. Check the index (proxd_sync_index_parse(), proxd_sync_index_check()): one
 *      relative path a line, names strictly increasing (the authority names files
 *      <unix time>-<run>-<batch>.zip, so names sort by publication time), and it must not go
 *      backwards from the last accepted one:
 *        - a name that was not in the last accepted index must sort after every name any
 *          accepted index ever held (files are only ever appended), and
 *        - the names it keeps from the last accepted index must be the newest ones of
 *          that index (files only expire from the old end: a file missing while newer ones
 *          of the last index are still listed means the index went backwards or lost a
 *          file).
 *      A refused index imports nothing and changes no state.
 *   3. Each listed file not yet imported (prox_store_has_batch(source, name)): download
 *      (size cap), verify (prox_export_read_bytes() against the pinned keyring), import
 *      all its keys and its bus/venue warnings in one transaction
 *      (prox_store_import_batch_full(), duplicates skipped).
 *      A file that fails anywhere - HTTP error, truncated or oversized download, bad zip
 *      or signature - imports nothing, is logged with the reason, and is retried by the
 *      next run; the files after it are still tried. A transport failure that says the
 *      server is gone (cannot connect, timeout, cancelled) stops the run: the files
 *      imported before stay.
 *   4. Detection (prox_detect_run()) when a batch was imported since the last detection or
 *      the risk options changed (prox_detect_needed()), also after a partly failed run.
 *   5. Venue matching (proxd_venues_match(), see proxd-venues.h for what is matched when),
 *      unless disabled (proxd_sync_set_venues()); the exposures new to the store are in
 *      the result, for the daemon to signal.
 *
 * `file://` URLs work the same way (no ETag: an unchanged index simply names nothing new).
 * Proxies come from the environment as libcurl reads them (http_proxy, https_proxy,
 * no_proxy): nothing here overrides them. Redirects are followed for http(s) only.
 *
 * Schedule: the object keeps no timer. proxd_sync_get_next_attempt() says when the next
 * run is due: after a complete run, `interval` minus up to `jitter` of it; after a failed
 * one, an exponential backoff from retry_min to retry_max with equal jitter (half fixed,
 * half random), and never before a server's Retry-After. Clock and random source can be
 * injected (tests, simulation).
 */
#pragma once

#include <gio/gio.h>

#include "prox-detect.h"
#include "prox-export.h"
#include "prox-keys.h"
#include "prox-store.h"
#include "proxd-venues.h"

G_BEGIN_DECLS

/* Sync state written after a complete run (unix seconds, decimal). Same key as the
 * daemon's PROXD_SYNC_STATE_LAST_SYNC, which LastSync reads. */
#define PROXD_SYNC_LAST_SYNC_KEY "last-sync"
/* Sync state of one source: PREFIX + source URL -> the last accepted index (key file). */
#define PROXD_SYNC_INDEX_STATE_PREFIX "index:"

#define PROXD_SYNC_DEFAULT_CONNECT_TIMEOUT 15   /* s */
#define PROXD_SYNC_DEFAULT_TRANSFER_TIMEOUT 300 /* s, one file */
#define PROXD_SYNC_DEFAULT_RUN_TIMEOUT 1800     /* s, a whole run */
#define PROXD_SYNC_DEFAULT_STALL_TIMEOUT 30     /* s without a byte */
#define PROXD_SYNC_DEFAULT_MAX_INDEX_BYTES (1024 * 1024)
#define PROXD_SYNC_DEFAULT_MAX_FILE_BYTES (32 * 1024 * 1024)
#define PROXD_SYNC_DEFAULT_INTERVAL (4 * 3600) /* s between complete runs */
#define PROXD_SYNC_DEFAULT_JITTER 0.25         /* of the interval */
#define PROXD_SYNC_DEFAULT_RETRY_MIN 60        /* s, first retry after a failure */
#define PROXD_SYNC_DEFAULT_RETRY_MAX 3600      /* s, backoff cap */
/* Index lines accepted at most. */
#define PROXD_SYNC_MAX_INDEX_NAMES 100000
#define PROXD_SYNC_MAX_NAME_LEN 255

#define PROXD_SYNC_ERROR (proxd_sync_error_quark())
GQuark proxd_sync_error_quark(void);

typedef enum {
    PROXD_SYNC_ERROR_INVALID_ARGUMENT, /* bad options */
    PROXD_SYNC_ERROR_NETWORK,          /* transport: connect, timeout, truncated, protocol */
    PROXD_SYNC_ERROR_HTTP,             /* the server answered with an error status */
    PROXD_SYNC_ERROR_TOO_LARGE,        /* index or file over its size cap */
    PROXD_SYNC_ERROR_INDEX,            /* the index does not parse */
    PROXD_SYNC_ERROR_ROLLBACK,         /* the index went backwards (see above) */
    PROXD_SYNC_ERROR_VERIFY,           /* a file failed verification (prox-export) */
    PROXD_SYNC_ERROR_STORE,            /* the store failed */
    PROXD_SYNC_ERROR_INCOMPLETE,       /* the run finished, but some files failed */
} ProxdSyncError;

typedef gint64 (*ProxdSyncNowFunc)(gpointer user_data);

typedef struct {
    /* The index: ".../index.txt" (any URL whose last segment ends in ".txt"), or the
     * directory holding it (".../keys/", "index.txt" is appended). http, https or file. */
    const char *url;
    /* The device store; each run opens its own connection with store_options. */
    const char *db_path;
    ProxStoreOptions store_options;

    /* Timeouts in seconds (0 = the defaults above). */
    guint connect_timeout;
    guint transfer_timeout;
    guint run_timeout;
    guint stall_timeout;
    /* Size caps in bytes (0 = the defaults above). */
    guint64 max_index_bytes;
    guint64 max_file_bytes;

    /* Schedule (0 = the defaults above; jitter < 0 = none). */
    guint interval;
    double jitter;
    guint retry_min;
    guint retry_max;

    /* Detection: risk rule (NULL = CWA defaults), RSSI calibration confidence, matcher
     * threads (0 = one per CPU). Copied. */
    const ProxRiskParameters *risk;
    ProxCalibrationConfidence confidence;
    guint detect_threads;
} ProxdSyncOptions;

typedef enum {
    PROXD_SYNC_RUN_DEFAULT = 0,
    /* No network: only detection, when needed (risk options changed, say). */
    PROXD_SYNC_RUN_DETECT_ONLY = 1 << 0,
    /* Run detection even when prox_detect_needed() says nothing changed. */
    PROXD_SYNC_RUN_FORCE_DETECT = 1 << 1,
} ProxdSyncRunFlags;

typedef enum {
    PROXD_SYNC_PHASE_INDEX,  /* fetching and checking the index */
    PROXD_SYNC_PHASE_FILES,  /* downloading, verifying, importing files */
    PROXD_SYNC_PHASE_DETECT, /* matching and scoring */
    PROXD_SYNC_PHASE_DONE,
} ProxdSyncPhase;

const char *proxd_sync_phase_to_string(ProxdSyncPhase phase);

typedef struct {
    char *name;   /* the index line */
    char *reason; /* why nothing was imported from it */
} ProxdSyncFailure;

/* What a run did. Reference counted, immutable once returned. */
typedef struct {
    gboolean complete;     /* index accepted, every listed file imported, detection done */
    gboolean not_modified; /* the index answered 304 Not Modified */
    guint files_listed;    /* names in the (accepted) index */
    guint files_pending;   /* of those, not imported when the run started */
    guint files_imported;
    guint files_failed;       /* each with a ProxdSyncFailure in `failures` */
    guint64 keys_read;        /* keys in the files imported */
    guint64 keys_added;       /* of those, new to the store */
    guint64 bytes;            /* downloaded, index included */
    GPtrArray *failures;      /* ProxdSyncFailure */
    GError *error;            /* NULL when complete */
    gint64 retry_after;       /* seconds the server asked us to wait (0: none) */
    gint64 started, finished; /* unix seconds, the sync's clock */
    gboolean detected;        /* detection ran; `detect` is valid */
    ProxDetectResult detect;
    guint64 warnings_read;   /* bus/venue warnings in the files imported */
    guint64 warnings_added;  /* of those, new to the store */
    GArray *venue_exposures; /* ProxVenueExposure new to the store in this run; never NULL */
} ProxdSyncResult;

ProxdSyncResult *proxd_sync_result_ref(ProxdSyncResult *result);
void proxd_sync_result_unref(ProxdSyncResult *result);
GType proxd_sync_result_get_type(void);
#define PROXD_TYPE_SYNC_RESULT (proxd_sync_result_get_type())
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ProxdSyncResult, proxd_sync_result_unref)

#define PROXD_TYPE_SYNC (proxd_sync_get_type())
G_DECLARE_FINAL_TYPE(ProxdSync, proxd_sync, PROXD, SYNC, GObject)

/* Checks the options; takes `keyring` (the pinned authority keys, not empty). The sync's
 * main context is the caller's thread-default one.
 *
 * Signals (on that context):
 *   progress (guint phase, guint files_done, guint files_total, guint64 bytes): at each
 *     phase, after each file, and at most every 100 ms while bytes flow; files_total is
 *     the number of files the run will fetch, bytes the bytes downloaded so far.
 *   finished (ProxdSyncResult *result): after every run (scheduled or not), before the
 *     async callbacks. */
ProxdSync *proxd_sync_new(const ProxdSyncOptions *options, ProxExportKeyring *keyring,
                          GError **error);

/* Pinned keys from configuration entries: "PATH" for a proxd Ed25519 .pub file (pinned to
 * the key id and version it names) or "KEY_ID:VERSION:PATH" for either kind (a PEM ECDSA
 * P-256 key needs this form: a key is always pinned to an id and version). */
ProxExportKeyring *proxd_sync_keyring_load(const char *const *entries, GError **error);

/* Injected time and randomness: `now` returns unix seconds (default: wall clock),
 * `random` fills bytes (default: prox_random_system). Set before the first run. */
void proxd_sync_set_clock(ProxdSync *self, ProxdSyncNowFunc now, gpointer user_data);
void proxd_sync_set_random(ProxdSync *self, ProxRandomFunc random, gpointer user_data);

/* New risk options (configuration reload); the next run redoes detection if they differ.
 * `params` NULL = defaults. */
void proxd_sync_set_risk(ProxdSync *self, const ProxRiskParameters *params,
                         ProxCalibrationConfidence confidence);

/* Venue matching after each run: `enabled` FALSE (a beacon) skips it; `options` NULL =
 * defaults. Takes effect from the next run. Enabled with defaults until called. */
void proxd_sync_set_venues(ProxdSync *self, gboolean enabled, const ProxdVenueOptions *options);

/* The store source under which batches are recorded: the index URL. */
const char *proxd_sync_get_source(ProxdSync *self);

/* Starts a run. While one is running, further calls join it (their flags and cancellable
 * are ignored) and get its result. `cancellable` stops the run: the current transfer is
 * aborted, imported files stay. */
void proxd_sync_run_async(ProxdSync *self, ProxdSyncRunFlags flags, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data);
/* TRUE when the run was complete. *result (optional) gets the run's result in every case
 * but cancellation before the run started; on FALSE, error is the run's error. */
gboolean proxd_sync_run_finish(ProxdSync *self, GAsyncResult *res, ProxdSyncResult **result,
                               GError **error);

gboolean proxd_sync_is_running(ProxdSync *self);
/* Aborts a running run (shutdown). */
void proxd_sync_cancel(ProxdSync *self);

/* When the next scheduled run is due (unix seconds, the sync's clock). */
gint64 proxd_sync_get_next_attempt(ProxdSync *self);
/* Runs that failed in a row since the last complete one (network runs only). */
guint proxd_sync_get_failures(ProxdSync *self);

/* Backoff after `failures` (>= 1) failed runs: min(retry_max, retry_min * 2^(failures-1)),
 * of which the upper half scaled by `random01` in [0, 1]. */
gint64 proxd_sync_backoff(guint retry_min, guint retry_max, guint failures, double random01);

/* ---- index checks (exposed for tests) ---- */

/* Parses index text: lines of relative paths (letters, digits, '.', '_', '-', '/'; no
 * empty, "." or ".." segment, no segment starting with '.'), '\r' and surrounding blanks
 * and empty lines ignored, names strictly increasing. Returns the names. */
GPtrArray *proxd_sync_index_parse(const char *text, gsize len, GError **error);

/* The rollback rules against the last accepted index `previous` (NULL/empty when none)
 * and `newest_seen`, the greatest name any accepted index held (NULL when none). */
gboolean proxd_sync_index_check(GPtrArray *names, GPtrArray *previous, const char *newest_seen,
                                GError **error);

G_END_DECLS
