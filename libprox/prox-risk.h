/* prox-risk.h - exposure windows and their scoring (PROTOCOL.md §4).
 *
 * The rule is Corona-Warn-App v2's exposure-window risk calculation on top of GAEN's
 * ExposureWindow model:
 *
 *   1. Matched sightings of one key are grouped into windows of at most 30 minutes; each
 *      window keeps one ProxWindowScan per scan instance (min/typical attenuation and the
 *      raw gap since the previous scan).  The key's days since onset are turned into an
 *      infectiousness when the window is built (GAEN's DiagnosisKeysDataMapping).
 *   2. Scoring a window: seconds since last scan (capped) weighted by the bucket of the
 *      scan's minimum attenuation, summed into weighted minutes; the window is dropped
 *      when it has fewer than 5 whole minutes below 79 dB, or when its transmission risk
 *      level (report type offset + infectiousness offset) is 1 or 2; normalized minutes =
 *      weighted minutes x the transmission risk value of its level.
 *   3. Per UTC day, the normalized minutes of its windows are summed; a day is high risk
 *      at >= 13.  Only the last 14 days count.
 *
 * Sources of the defaults are in prox-risk.c next to prox_risk_parameters_default().
 * Weighted minutes are accumulated in exact integer units (weights and transmission risk
 * values are limited to three decimals, as CWA's parameter spec does), so a threshold
 * compare such as 12.9 vs 13.0 minutes never depends on floating-point rounding.
 */
#pragma once

#include "prox-exposure.h"
#include "prox-types.h"

G_BEGIN_DECLS

/* GAEN days since onset of symptoms range covered by the infectiousness mapping. */
#define PROX_RISK_DSOS_MIN (-14)
#define PROX_RISK_DSOS_MAX 14
#define PROX_RISK_DSOS_COUNT (PROX_RISK_DSOS_MAX - PROX_RISK_DSOS_MIN + 1)
/* CWA's transmission risk levels are 1..8. */
#define PROX_RISK_TRL_MAX 8
#define PROX_RISK_ATTENUATION_BUCKETS 4
/* ProxWindowScan attenuation of a scan in which the RSSI was never known. */
#define PROX_ATTENUATION_UNKNOWN 255
#define PROX_SECONDS_PER_DAY 86400

/* GAEN CalibrationConfidence of the scanning device's RSSI correction. */
typedef enum {
    PROX_CALIBRATION_LOWEST = 0,
    PROX_CALIBRATION_LOW = 1,
    PROX_CALIBRATION_MEDIUM = 2,
    PROX_CALIBRATION_HIGH = 3,
} ProxCalibrationConfidence;

/* CWA's risk levels (same numbers as its RiskLevel enum). */
typedef enum {
    PROX_RISK_LEVEL_LOW = 1,
    PROX_RISK_LEVEL_HIGH = 2,
} ProxRiskLevel;

/* Index into report_type_offsets. */
enum {
    PROX_RISK_OFFSET_CONFIRMED_TEST = 0,
    PROX_RISK_OFFSET_CONFIRMED_CLINICAL_DIAGNOSIS = 1,
    PROX_RISK_OFFSET_SELF_REPORT = 2,
    PROX_RISK_OFFSET_RECURSIVE = 3,
    PROX_RISK_N_REPORT_TYPE_OFFSETS = 4,
};

/* Every parameter of the rule. Field names are also the key file's key names.
 * Doubles are on a 0.001 grid (validated). */
typedef struct {
    /* Windows: a window spans at most this many seconds from its first sighting. */
    int32_t window_max_seconds; /* 1800 */

    /* Buckets by a scan's minimum attenuation: [0, t0) [t0, t1) [t1, t2) [t2, inf). */
    int32_t attenuation_thresholds_db[PROX_RISK_ATTENUATION_BUCKETS - 1]; /* 63 73 79 */
    double attenuation_weights[PROX_RISK_ATTENUATION_BUCKETS];            /* .8 1 .1 0 */
    int32_t seconds_since_last_scan_cap;                                  /* 300 */

    /* Drop a window with fewer than filter_min_minutes whole minutes of scans whose
     * minimum attenuation is below filter_attenuation_db. */
    int32_t filter_attenuation_db; /* 79 */
    int32_t filter_min_minutes;    /* 5 */

    /* Key -> infectiousness (applied when windows are built). Index dsos - DSOS_MIN; a
     * key without days since onset, or outside -14..14, gets the "missing" value. */
    ProxInfectiousness days_since_onset_to_infectiousness[PROX_RISK_DSOS_COUNT];
    ProxInfectiousness infectiousness_when_days_since_onset_missing;

    /* (report type, infectiousness) -> transmission risk level (CWA trlEncoding). */
    ProxReportType report_type_when_missing;                      /* used for PROX_REPORT_UNKNOWN */
    int32_t report_type_offsets[PROX_RISK_N_REPORT_TYPE_OFFSETS]; /* 6 4 2 0 */
    int32_t infectiousness_offsets[2];                            /* standard 1, high 2 */
    /* Bit n set: windows with transmission risk level n are dropped. */
    uint32_t drop_transmission_risk_levels; /* levels 1 and 2 */
    /* Transmission risk value of levels 1..8 (index level - 1): the multiplier that
     * turns weighted minutes into normalized minutes. */
    double transmission_risk_values[PROX_RISK_TRL_MAX]; /* 0.2 x level */

    /* Levels, in normalized minutes: a window / a day is high risk at >= these. */
    double high_risk_minutes_per_window; /* 13 */
    double high_risk_minutes_per_day;    /* 13 */
    /* Days counted by prox_risk_summarize(): the day of `now` and the ones before it. */
    int32_t lookback_days; /* 14 */
} ProxRiskParameters;

/* CWA v2 defaults (see prox-risk.c for where each comes from). */
void prox_risk_parameters_default(ProxRiskParameters *params);

/* Range checks; the message names the offending key. PROX_ERROR_INVALID_ARGUMENT. */
gboolean prox_risk_parameters_validate(const ProxRiskParameters *params, GError **error);

gboolean prox_risk_parameters_equal(const ProxRiskParameters *a, const ProxRiskParameters *b);

/* Reads `group` of `keyfile` over the defaults: absent keys keep their default, an
 * unknown key, an unparsable value, a wrong list length or a value out of range is an
 * error naming the key (PROX_ERROR_MALFORMED for syntax, PROX_ERROR_INVALID_ARGUMENT for
 * ranges, PROX_ERROR_NOT_FOUND for a missing group). *params is written only on
 * success. */
gboolean prox_risk_parameters_load_keyfile(GKeyFile *keyfile, const char *group,
                                           ProxRiskParameters *params, GError **error);

/* Writes every parameter of valid `params` into `group` (replacing what was there),
 * with a short comment per key; loading it back gives equal parameters. */
void prox_risk_parameters_to_keyfile(const ProxRiskParameters *params, GKeyFile *keyfile,
                                     const char *group);

/* GAEN DiagnosisKeysDataMapping: the infectiousness of `key`. */
ProxInfectiousness prox_risk_key_infectiousness(const ProxRiskParameters *params,
                                                const ProxDiagnosisKey *key);

/* CWA trlEncoding: report type offset + infectiousness offset, 1..8; 0 when there is
 * none (revoked key, infectiousness none). PROX_REPORT_UNKNOWN counts as
 * report_type_when_missing. */
int32_t prox_risk_transmission_risk_level(const ProxRiskParameters *params,
                                          ProxReportType report_type,
                                          ProxInfectiousness infectiousness);

/* Builds exposure windows from the matcher's output.
 *
 * `matches` may come in any order (the matcher gives key, then time); they are grouped
 * by key_index and, within a key, by first_seen: a window starts at its first sighting
 * and takes the following ones while they are less than window_max_seconds after that
 * and on the same UTC day (a window's minutes count for one day only). Sightings of the
 * same scan instance (the key's RPI changed during one scan) merge into one
 * ProxWindowScan and never split across windows. The matcher's verdicts (±2 h
 * tolerance, TX power range) are taken as given.
 *
 * Per scan: min attenuation = tx_power - rssi_max, typical = tx_power - rssi_mean (mean
 * over the merged sightings' reports), both clamped to 0..254; seconds_since_last_scan
 * is the scan instance's raw gap (scoring caps it). A scan without any known RSSI
 * (rssi_count == 0) keeps PROX_ATTENUATION_UNKNOWN: it is in the window, but weighs
 * nothing and is not time below the filter attenuation, whatever the parameters say.
 *
 * `scans` must hold every scan instance the sightings refer to (any order, unique ids);
 * a missing or duplicate one is PROX_ERROR_INVALID_ARGUMENT and nothing is returned.
 *
 * Each window gets key_index, day, start (first first_seen), end (last last_seen), the
 * key's published report type, its infectiousness under `params`, calibration
 * `confidence`, and - as scored under `params` - transmission_risk_level,
 * weighted_minutes and risk (= normalized minutes, 0 when the window is dropped).
 * key_id is left 0 for the caller. *out_windows is a new GArray of ProxExposureWindow,
 * ordered by key_index then start, with prox_exposure_window_clear as clear func. */
gboolean prox_risk_windows_from_matches(const ProxMatchedSighting *matches, gsize n_matches,
                                        const ProxScanInstance *scans, gsize n_scans,
                                        ProxCalibrationConfidence confidence,
                                        const ProxRiskParameters *params, GArray **out_windows,
                                        GError **error);

typedef enum {
    PROX_WINDOW_COUNTED = 0,
    PROX_WINDOW_DROPPED_REPORT_TYPE,    /* revoked key */
    PROX_WINDOW_DROPPED_INFECTIOUSNESS, /* infectiousness none */
    PROX_WINDOW_DROPPED_MINUTES,        /* too little time below filter_attenuation_db */
    PROX_WINDOW_DROPPED_TRL,            /* level in drop_transmission_risk_levels */
} ProxWindowVerdict;

typedef struct {
    ProxWindowVerdict verdict;       /* the first rule, in the order above, that drops it */
    int32_t transmission_risk_level; /* 0 when none */
    double transmission_risk_value;
    int32_t seconds_below_filter; /* capped seconds of scans below filter_attenuation_db */
    double weighted_minutes;      /* sum(capped seconds x bucket weight) / 60 */
    double normalized_minutes;    /* weighted_minutes x transmission_risk_value */
    ProxRiskLevel level;          /* normalized_minutes vs high_risk_minutes_per_window */
} ProxWindowScore;

/* Scores a (stored) window under valid `params`. The window's report type and
 * infectiousness are used as stored (its transmission_risk_level, weighted_minutes and
 * risk fields are ignored and recomputed), so windows can be re-scored whenever the
 * parameters change. Returns TRUE when the window counts (verdict COUNTED). */
gboolean prox_risk_score_window(const ProxExposureWindow *window, const ProxRiskParameters *params,
                                ProxWindowScore *score);

/* One UTC day with at least one counted window. */
typedef struct {
    gint64 day; /* unix seconds of its UTC midnight */
    guint n_windows;
    double weighted_minutes;              /* sum over its counted windows */
    double normalized_minutes;            /* sum; compared with high_risk_minutes_per_day */
    double max_window_weighted_minutes;   /* largest single window */
    double max_window_normalized_minutes; /* largest single window */
    /* CWA "minimum distinct encounters": distinct (transmission risk level, calibration
     * confidence) pairs among the day's windows at high / low window risk level. */
    guint high_risk_encounters;
    guint low_risk_encounters;
    ProxRiskLevel level;
} ProxDailySummary;

typedef struct {
    ProxRiskLevel level; /* high when any day is high */
    gboolean has_high_risk_day;
    gint64 most_recent_high_risk_day; /* valid when has_high_risk_day */
    gboolean has_low_risk_day;
    gint64 most_recent_low_risk_day; /* valid when has_low_risk_day */
    guint days_with_high_risk;
    guint days_with_low_risk;
    guint high_risk_encounters; /* sums of the days' counts */
    guint low_risk_encounters;
    guint n_days;
    ProxDailySummary *days; /* ascending by day; freed by prox_risk_summary_clear() */
} ProxRiskSummary;

/* CWA's aggregation of `windows` under valid `params`: only windows whose day is within
 * lookback_days of the day of `now` (that day included) count; a window dated after
 * `now` (clock set back) still counts. With no counted window the level is low and
 * n_days is 0. *out is overwritten (clear it first if it held a summary). */
void prox_risk_summarize(const ProxExposureWindow *windows, gsize n_windows,
                         const ProxRiskParameters *params, gint64 now, ProxRiskSummary *out);

void prox_risk_summary_clear(ProxRiskSummary *summary);

/* Unix seconds of the UTC midnight starting the day of `t` (floor, also for t < 0). */
gint64 prox_risk_day_of(gint64 t);

G_END_DECLS
