/* prox-detect.h - exposure detection on a store, end to end (PROTOCOL.md §4).
 *
 * One call: the observed sightings of the last days (and their scan instances) x every
 * stored diagnosis key (streamed in chunks) -> matcher -> exposure windows (prox-risk) ->
 * saved per key -> CWA summary over the stored windows -> compared with the level the
 * previous run stored, so the caller alerts once when the risk rises.
 *
 * Every run matches all keys against all sightings: matching 100 000 keys takes tens of
 * milliseconds on the fast crypto paths, so a full run is as cheap as an incremental one
 * would be, and it cannot miss a key that an interrupted or failed run skipped. What makes
 * a run *needed* is tracked instead (prox_detect_needed()): a finished key batch newer than
 * the last run's, or other risk parameters / calibration confidence.
 *
 * Windows are rewritten only for keys whose windows changed; windows of keys that no
 * longer match anything are removed. The summary is prox_risk_summarize() over all stored
 * windows of the lookback period, as the daemon's RiskLevel property computes it.
 *
 * Bookkeeping lives in the store's settings (PROX_DETECT_SETTING_*): the level and newest
 * high-risk day of the previous run, the newest batch matched and a fingerprint of the
 * parameters. Errors are the store's (PROX_ERROR_STORE ...) or PROX_ERROR_INVALID_ARGUMENT
 * for invalid parameters or a crypto implementation this CPU lacks.
 */
#pragma once

#include "prox-crypto-fast.h"
#include "prox-risk.h"
#include "prox-store.h"

G_BEGIN_DECLS

/* Settings written by prox_detect_run(). */
#define PROX_DETECT_SETTING_LEVEL "detect-level"           /* "low" or "high" */
#define PROX_DETECT_SETTING_HIGH_DAY "detect-high-day"     /* newest high-risk day reported */
#define PROX_DETECT_SETTING_LAST_BATCH "detect-last-batch" /* newest batch id matched */
#define PROX_DETECT_SETTING_PARAMS "detect-params"         /* fingerprint of the options */

/* Days of sightings matched when ProxDetectOptions.sighting_days is 0. */
#define PROX_DETECT_DEFAULT_SIGHTING_DAYS 14

typedef struct {
    /* Risk rule; NULL = prox_risk_parameters_default(). */
    const ProxRiskParameters *params;
    /* GAEN CalibrationConfidence of this device's RSSI correction, stored in each window. */
    ProxCalibrationConfidence confidence;
    /* Matcher threads; 0 = one per online CPU. */
    guint n_threads;
    /* Crypto implementation; NULL = prox_crypto_impl_default(). */
    const ProxCryptoImpl *impl;
    /* Sightings of this many UTC days (today included) are matched; at least the
     * parameters' lookback_days. 0 = PROX_DETECT_DEFAULT_SIGHTING_DAYS. */
    guint sighting_days;
} ProxDetectOptions;

typedef struct {
    guint64 sightings; /* observed sightings matched against */
    guint64 scans;     /* scan instances loaded */
    guint64 keys;      /* diagnosis keys fed to the matcher */
    guint64 matched;   /* matched sightings */
    guint keys_with_windows;
    guint windows;        /* windows built this run */
    guint keys_rewritten; /* keys whose stored windows changed (including removals) */
    gint64 last_batch_id; /* newest finished batch when the keys were read */

    ProxRiskSummary summary; /* over all stored windows of the lookback period */

    /* What the previous run had stored. */
    gboolean has_previous;
    ProxRiskLevel previous_level;
    /* The level went from low (or no previous run) to high. */
    gboolean level_rose;
    /* The newest high-risk day is newer than every high-risk day reported before
     * (TRUE whenever level_rose is). */
    gboolean new_high_risk_day;
} ProxDetectResult;

/* Runs detection at `now` (unix seconds). `opts` may be NULL for defaults. Enforces the
 * store's retention first. *result is overwritten; clear it with
 * prox_detect_result_clear() (also after a failure). */
gboolean prox_detect_run(ProxStore *store, const ProxDetectOptions *opts, gint64 now,
                         ProxDetectResult *result, GError **error);

void prox_detect_result_clear(ProxDetectResult *result);

/* TRUE in *needed when a run would find something new: a finished batch newer than the
 * last run's, different options (fingerprint), or no run yet. Only reads the store. */
gboolean prox_detect_needed(ProxStore *store, const ProxDetectOptions *opts, gboolean *needed,
                            GError **error);

/* The fingerprint stored in PROX_DETECT_SETTING_PARAMS for `opts` (newly allocated hex). */
char *prox_detect_fingerprint(const ProxDetectOptions *opts);

G_END_DECLS
