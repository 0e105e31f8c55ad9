/* prox-risk.c - exposure windows and Corona-Warn-App v2 scoring. */
#define G_LOG_DOMAIN "prox-risk"

#include "prox-risk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Weights and transmission risk values are kept in thousandths so that sums are exact:
 * one scan contributes seconds x weight_milli x trv_milli "micro weighted seconds". */
#define MILLI 1000
#define MICRO_PER_MINUTE ((gint64)60 * MILLI * MILLI)
#define MAX_WEIGHT 10.0
#define MAX_ATTENUATION 254

/* ---- parameters ---- */

/*
 * Where the defaults come from (read in corona-warn-app/cwa-server and cwa-app-ios):
 *
 * - attenuation buckets 63/73/79 dB with weights 0.8/1.0/0.1 (0 above), the filter
 *   "drop if minutes in [0, 5) at attenuation [0, 79)", the TRL filter "drop if TRL in
 *   [1, 2]", transmission-risk-level-multiplier 0.2, normalized time per window and per
 *   day high from 13, and trlEncoding (report type offsets confirmed test 6, clinical
 *   diagnosis 4, self report 2, recursive 0; infectiousness offsets standard 1, high 2):
 *   cwa-server services/distribution/src/main/resources/main-config/v2/
 *   risk-calculation-parameters.yaml.
 * - transmission risk value = TRL x multiplier, normalized time = value x weighted
 *   minutes, minutes at attenuation compared as whole minutes (integer seconds / 60),
 *   negative gaps ignored: cwa-app-ios RiskCalculationExposureWindow.swift; per-day sum,
 *   day level, overall level, most recent day and number of days per level, distinct
 *   encounters as (TRL, calibration confidence) pairs: cwa-app-ios RiskCalculation.swift.
 *   (CWA's later explicit transmission-risk-value-mapping, 3 -> 0.6 ... 8 -> 1.6, is the
 *   same table.)
 * - report type when missing = confirmed test: cwa-server main-config/v2/
 *   diagnosis-keys-data-mapping.yaml.
 * - days since onset -> infectiousness: CWA's published mapping (1 -> standard,
 *   2 -> high) only makes sense for keys its server re-encoded (TRL packed into DSOS 1/2
 *   and the report type; tests/data/risk/cwa-encoded.conf reproduces it). proxd's keys
 *   carry real onset days, so the default follows CWA's own derivation for real DSOS
 *   (cwa-server download service, tek-field-derivations.trl-from-dsos: 0 -> 8,
 *   +-1 -> 6, +-2 -> 5, +-3 -> 3, +-4 -> 1): TRL >= 6 -> high, 3..5 -> standard, and
 *   TRL 1 (which CWA's TRL filter drops anyway) -> none.
 * - days since onset missing -> standard: proxd's choice. CWA says none, which would
 *   drop every key of an asymptomatic case; CWA never published such keys.
 * - window of 30 minutes, gap cap 300 s, 14 days: GAEN ExposureWindow and PROTOCOL.md.
 */
void prox_risk_parameters_default(ProxRiskParameters *params)
{
    *params = (ProxRiskParameters){
        .window_max_seconds = 1800,
        .attenuation_thresholds_db = {63, 73, 79},
        .attenuation_weights = {0.8, 1.0, 0.1, 0.0},
        .seconds_since_last_scan_cap = 300,
        .filter_attenuation_db = 79,
        .filter_min_minutes = 5,
        .infectiousness_when_days_since_onset_missing = PROX_INFECTIOUSNESS_STANDARD,
        .report_type_when_missing = PROX_REPORT_CONFIRMED_TEST,
        .report_type_offsets = {6, 4, 2, 0},
        .infectiousness_offsets = {1, 2},
        .drop_transmission_risk_levels = (1u << 1) | (1u << 2),
        .high_risk_minutes_per_window = 13.0,
        .high_risk_minutes_per_day = 13.0,
        .lookback_days = 14,
    };
    for (int d = PROX_RISK_DSOS_MIN; d <= PROX_RISK_DSOS_MAX; d++) {
        int a = ABS(d);
        params->days_since_onset_to_infectiousness[d - PROX_RISK_DSOS_MIN] =
            a <= 1   ? PROX_INFECTIOUSNESS_HIGH
            : a <= 3 ? PROX_INFECTIOUSNESS_STANDARD
                     : PROX_INFECTIOUSNESS_NONE;
    }
    /* Written as literals rather than level * 0.2 so they are the doubles a key file
     * round trip produces. */
    static const double trv[PROX_RISK_TRL_MAX] = {0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6};
    memcpy(params->transmission_risk_values, trv, sizeof trv);
}

static gint64 to_milli(double v)
{
    return llround(v * MILLI);
}

/* Finite, within [lo, hi] and on the 0.001 grid. */
static gboolean milli_ok(double v, double lo, double hi)
{
    if (!isfinite(v) || v < lo || v > hi)
        return FALSE;
    return fabs(v * MILLI - (double)to_milli(v)) < 1e-6;
}

#define INVALID(...)                                                                               \
    do {                                                                                           \
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT, __VA_ARGS__);                  \
        return FALSE;                                                                              \
    } while (0)

gboolean prox_risk_parameters_validate(const ProxRiskParameters *p, GError **error)
{
    if (p->window_max_seconds < 60 || p->window_max_seconds > 3600)
        INVALID("risk parameter window_max_seconds: %d is outside 60..3600", p->window_max_seconds);
    for (int i = 0; i < PROX_RISK_ATTENUATION_BUCKETS - 1; i++) {
        int32_t t = p->attenuation_thresholds_db[i];
        if (t < 0 || t > MAX_ATTENUATION)
            INVALID("risk parameter attenuation_thresholds_db: %d is outside 0..%d", t,
                    MAX_ATTENUATION);
        if (i > 0 && t <= p->attenuation_thresholds_db[i - 1])
            INVALID("risk parameter attenuation_thresholds_db: thresholds must increase "
                    "(%d after %d)",
                    t, p->attenuation_thresholds_db[i - 1]);
    }
    for (int i = 0; i < PROX_RISK_ATTENUATION_BUCKETS; i++)
        if (!milli_ok(p->attenuation_weights[i], 0.0, MAX_WEIGHT))
            INVALID("risk parameter attenuation_weights: %g is not a number 0..%g with at "
                    "most 3 decimals",
                    p->attenuation_weights[i], MAX_WEIGHT);
    if (p->seconds_since_last_scan_cap < 1 || p->seconds_since_last_scan_cap > 3600)
        INVALID("risk parameter seconds_since_last_scan_cap: %d is outside 1..3600",
                p->seconds_since_last_scan_cap);
    if (p->filter_attenuation_db < 0 || p->filter_attenuation_db > MAX_ATTENUATION + 1)
        INVALID("risk parameter filter_attenuation_db: %d is outside 0..%d",
                p->filter_attenuation_db, MAX_ATTENUATION + 1);
    if (p->filter_min_minutes < 0 || p->filter_min_minutes > 60)
        INVALID("risk parameter filter_min_minutes: %d is outside 0..60", p->filter_min_minutes);
    for (int i = 0; i < PROX_RISK_DSOS_COUNT; i++) {
        ProxInfectiousness v = p->days_since_onset_to_infectiousness[i];
        if (v < PROX_INFECTIOUSNESS_NONE || v > PROX_INFECTIOUSNESS_HIGH)
            INVALID("risk parameter days_since_onset_to_infectiousness: %d (for day %d) is "
                    "not 0 (none), 1 (standard) or 2 (high)",
                    (int)v, i + PROX_RISK_DSOS_MIN);
    }
    if (p->infectiousness_when_days_since_onset_missing < PROX_INFECTIOUSNESS_NONE ||
        p->infectiousness_when_days_since_onset_missing > PROX_INFECTIOUSNESS_HIGH)
        INVALID("risk parameter infectiousness_when_days_since_onset_missing: %d is not 0 "
                "(none), 1 (standard) or 2 (high)",
                (int)p->infectiousness_when_days_since_onset_missing);
    if (p->report_type_when_missing < PROX_REPORT_CONFIRMED_TEST ||
        p->report_type_when_missing > PROX_REPORT_RECURSIVE)
        INVALID("risk parameter report_type_when_missing: %d is outside 1..4",
                (int)p->report_type_when_missing);
    int32_t max_rt = 0, max_inf = 0;
    for (int i = 0; i < PROX_RISK_N_REPORT_TYPE_OFFSETS; i++) {
        if (p->report_type_offsets[i] < 0 || p->report_type_offsets[i] > PROX_RISK_TRL_MAX - 1)
            INVALID("risk parameter report_type_offsets: %d is outside 0..%d",
                    p->report_type_offsets[i], PROX_RISK_TRL_MAX - 1);
        max_rt = MAX(max_rt, p->report_type_offsets[i]);
    }
    for (int i = 0; i < 2; i++) {
        if (p->infectiousness_offsets[i] < 1 || p->infectiousness_offsets[i] > PROX_RISK_TRL_MAX)
            INVALID("risk parameter infectiousness_offsets: %d is outside 1..%d",
                    p->infectiousness_offsets[i], PROX_RISK_TRL_MAX);
        max_inf = MAX(max_inf, p->infectiousness_offsets[i]);
    }
    /* Every combination must land on a level 1..8. */
    if (max_rt + max_inf > PROX_RISK_TRL_MAX)
        INVALID("risk parameter report_type_offsets/infectiousness_offsets: largest sum %d "
                "exceeds transmission risk level %d",
                max_rt + max_inf, PROX_RISK_TRL_MAX);
    if (p->drop_transmission_risk_levels & ~(((1u << PROX_RISK_TRL_MAX) - 1) << 1))
        INVALID("risk parameter drop_transmission_risk_levels: levels must be 1..%d",
                PROX_RISK_TRL_MAX);
    for (int i = 0; i < PROX_RISK_TRL_MAX; i++)
        if (!milli_ok(p->transmission_risk_values[i], 0.0, MAX_WEIGHT))
            INVALID("risk parameter transmission_risk_values: %g (level %d) is not a number "
                    "0..%g with at most 3 decimals",
                    p->transmission_risk_values[i], i + 1, MAX_WEIGHT);
    if (!milli_ok(p->high_risk_minutes_per_window, 0.001, 1440.0))
        INVALID("risk parameter high_risk_minutes_per_window: %g is not a number 0.001..1440 "
                "with at most 3 decimals",
                p->high_risk_minutes_per_window);
    if (!milli_ok(p->high_risk_minutes_per_day, 0.001, 1440.0))
        INVALID("risk parameter high_risk_minutes_per_day: %g is not a number 0.001..1440 "
                "with at most 3 decimals",
                p->high_risk_minutes_per_day);
    if (p->lookback_days < 1 || p->lookback_days > 14)
        INVALID("risk parameter lookback_days: %d is outside 1..14 (the retention period)",
                p->lookback_days);
    return TRUE;
}

gboolean prox_risk_parameters_equal(const ProxRiskParameters *a, const ProxRiskParameters *b)
{
    /* Field by field: padding makes memcmp unreliable. */
    if (a->window_max_seconds != b->window_max_seconds ||
        a->seconds_since_last_scan_cap != b->seconds_since_last_scan_cap ||
        a->filter_attenuation_db != b->filter_attenuation_db ||
        a->filter_min_minutes != b->filter_min_minutes ||
        a->infectiousness_when_days_since_onset_missing !=
            b->infectiousness_when_days_since_onset_missing ||
        a->report_type_when_missing != b->report_type_when_missing ||
        a->drop_transmission_risk_levels != b->drop_transmission_risk_levels ||
        a->high_risk_minutes_per_window != b->high_risk_minutes_per_window ||
        a->high_risk_minutes_per_day != b->high_risk_minutes_per_day ||
        a->lookback_days != b->lookback_days)
        return FALSE;
    if (memcmp(a->attenuation_thresholds_db, b->attenuation_thresholds_db,
               sizeof a->attenuation_thresholds_db) != 0 ||
        memcmp(a->days_since_onset_to_infectiousness, b->days_since_onset_to_infectiousness,
               sizeof a->days_since_onset_to_infectiousness) != 0 ||
        memcmp(a->report_type_offsets, b->report_type_offsets, sizeof a->report_type_offsets) !=
            0 ||
        memcmp(a->infectiousness_offsets, b->infectiousness_offsets,
               sizeof a->infectiousness_offsets) != 0)
        return FALSE;
    for (int i = 0; i < PROX_RISK_ATTENUATION_BUCKETS; i++)
        if (a->attenuation_weights[i] != b->attenuation_weights[i])
            return FALSE;
    for (int i = 0; i < PROX_RISK_TRL_MAX; i++)
        if (a->transmission_risk_values[i] != b->transmission_risk_values[i])
            return FALSE;
    return TRUE;
}

/* ---- key file ---- */

typedef enum {
    KEY_INT,
    KEY_DOUBLE,
    KEY_INT_LIST,
    KEY_DOUBLE_LIST,
    KEY_LEVEL_SET, /* list of levels, stored as a bit set; may be empty */
} KeyKind;

typedef struct {
    const char *name;
    KeyKind kind;
    size_t offset;
    guint length; /* list length (exact); 1 for scalars */
    const char *comment;
} KeyDesc;

#define F(field) offsetof(ProxRiskParameters, field)
static const KeyDesc keys[] = {
    {"window_max_seconds", KEY_INT, F(window_max_seconds), 1,
     " Exposure window length limit, seconds from its first sighting."},
    {"attenuation_thresholds_db", KEY_INT_LIST, F(attenuation_thresholds_db), 3,
     " Bucket limits (dB) for a scan's minimum attenuation: [0,a) [a,b) [b,c) [c,inf)."},
    {"attenuation_weights", KEY_DOUBLE_LIST, F(attenuation_weights), 4,
     " Weight of each bucket's seconds."},
    {"seconds_since_last_scan_cap", KEY_INT, F(seconds_since_last_scan_cap), 1,
     " A scan counts for at most this many seconds."},
    {"filter_attenuation_db", KEY_INT, F(filter_attenuation_db), 1,
     " Drop a window with fewer than filter_min_minutes whole minutes below this."},
    {"filter_min_minutes", KEY_INT, F(filter_min_minutes), 1, NULL},
    {"days_since_onset_to_infectiousness", KEY_INT_LIST, F(days_since_onset_to_infectiousness),
     PROX_RISK_DSOS_COUNT,
     " Infectiousness (0 none, 1 standard, 2 high) for days since onset -14..14."},
    {"infectiousness_when_days_since_onset_missing", KEY_INT,
     F(infectiousness_when_days_since_onset_missing), 1, NULL},
    {"report_type_when_missing", KEY_INT, F(report_type_when_missing), 1,
     " 1 confirmed test, 2 clinical diagnosis, 3 self report, 4 recursive."},
    {"report_type_offsets", KEY_INT_LIST, F(report_type_offsets), PROX_RISK_N_REPORT_TYPE_OFFSETS,
     " Transmission risk level = report type offset (confirmed test, clinical diagnosis,\n"
     " self report, recursive) + infectiousness offset (standard, high)."},
    {"infectiousness_offsets", KEY_INT_LIST, F(infectiousness_offsets), 2, NULL},
    {"drop_transmission_risk_levels", KEY_LEVEL_SET, F(drop_transmission_risk_levels), 0,
     " Windows with these transmission risk levels are dropped."},
    {"transmission_risk_values", KEY_DOUBLE_LIST, F(transmission_risk_values), PROX_RISK_TRL_MAX,
     " Multiplier of weighted minutes for transmission risk levels 1..8."},
    {"high_risk_minutes_per_window", KEY_DOUBLE, F(high_risk_minutes_per_window), 1,
     " Normalized minutes from which a window / a day is high risk."},
    {"high_risk_minutes_per_day", KEY_DOUBLE, F(high_risk_minutes_per_day), 1, NULL},
    {"lookback_days", KEY_INT, F(lookback_days), 1,
     " Days counted in the summary, today included."},
};
#undef F

/* Every int-like field above (int32_t and the enums) is 4 bytes wide. */
G_STATIC_ASSERT(sizeof(ProxInfectiousness) == sizeof(int32_t));
G_STATIC_ASSERT(sizeof(ProxReportType) == sizeof(int32_t));

static gboolean malformed(GError **error, const char *group, const char *key, const char *what)
{
    g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED, "risk parameter %s in [%s]: %s", key,
                group, what);
    return FALSE;
}

static gboolean load_key(GKeyFile *kf, const char *group, const KeyDesc *k, ProxRiskParameters *p,
                         GError **error)
{
    g_autoptr(GError) local = NULL;
    guint8 *base = (guint8 *)p + k->offset;
    gsize n = 0;

    switch (k->kind) {
    case KEY_INT: {
        int v = g_key_file_get_integer(kf, group, k->name, &local);
        if (local)
            return malformed(error, group, k->name, local->message);
        *(int32_t *)base = v;
        return TRUE;
    }
    case KEY_DOUBLE: {
        double v = g_key_file_get_double(kf, group, k->name, &local);
        if (local)
            return malformed(error, group, k->name, local->message);
        *(double *)base = v;
        return TRUE;
    }
    case KEY_INT_LIST: {
        g_autofree int *v = g_key_file_get_integer_list(kf, group, k->name, &n, &local);
        if (local)
            return malformed(error, group, k->name, local->message);
        if (n != k->length) {
            g_autofree char *msg =
                g_strdup_printf("%" G_GSIZE_FORMAT " values, expected %u", n, k->length);
            return malformed(error, group, k->name, msg);
        }
        for (gsize i = 0; i < n; i++)
            ((int32_t *)base)[i] = v[i];
        return TRUE;
    }
    case KEY_DOUBLE_LIST: {
        g_autofree double *v = g_key_file_get_double_list(kf, group, k->name, &n, &local);
        if (local)
            return malformed(error, group, k->name, local->message);
        if (n != k->length) {
            g_autofree char *msg =
                g_strdup_printf("%" G_GSIZE_FORMAT " values, expected %u", n, k->length);
            return malformed(error, group, k->name, msg);
        }
        memcpy(base, v, n * sizeof(double));
        return TRUE;
    }
    case KEY_LEVEL_SET: {
        /* An empty value means "drop none"; GKeyFile reports that as an error. */
        g_autofree char *raw = g_key_file_get_value(kf, group, k->name, NULL);
        uint32_t mask = 0;
        if (raw && *g_strstrip(raw)) {
            g_autofree int *v = g_key_file_get_integer_list(kf, group, k->name, &n, &local);
            if (local)
                return malformed(error, group, k->name, local->message);
            for (gsize i = 0; i < n; i++) {
                if (v[i] < 1 || v[i] > PROX_RISK_TRL_MAX) {
                    g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                                "risk parameter %s in [%s]: level %d is outside 1..%d", k->name,
                                group, v[i], PROX_RISK_TRL_MAX);
                    return FALSE;
                }
                mask |= 1u << v[i];
            }
        }
        *(uint32_t *)base = mask;
        return TRUE;
    }
    }
    g_assert_not_reached();
}

gboolean prox_risk_parameters_load_keyfile(GKeyFile *keyfile, const char *group,
                                           ProxRiskParameters *params, GError **error)
{
    if (!g_key_file_has_group(keyfile, group)) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_NOT_FOUND, "no [%s] group of risk parameters",
                    group);
        return FALSE;
    }
    g_auto(GStrv) names = g_key_file_get_keys(keyfile, group, NULL, NULL);
    for (char **name = names; name && *name; name++) {
        gboolean known = FALSE;
        for (gsize i = 0; i < G_N_ELEMENTS(keys) && !known; i++)
            known = strcmp(*name, keys[i].name) == 0;
        if (!known)
            return malformed(error, group, *name, "unknown key");
    }

    ProxRiskParameters p;
    prox_risk_parameters_default(&p);
    for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
        if (g_key_file_has_key(keyfile, group, keys[i].name, NULL) &&
            !load_key(keyfile, group, &keys[i], &p, error))
            return FALSE;
    }
    if (!prox_risk_parameters_validate(&p, error)) {
        g_prefix_error(error, "[%s] ", group);
        return FALSE;
    }
    *params = p;
    return TRUE;
}

/* Shortest decimal of a value on the 0.001 grid ("0.8", "13", "0.125"). */
static void append_milli(GString *s, double v)
{
    gint64 m = to_milli(v);
    g_string_append_printf(s, "%s%" G_GINT64_FORMAT, m < 0 ? "-" : "", ABS(m) / MILLI);
    gint64 frac = ABS(m) % MILLI;
    if (frac) {
        char buf[8];
        g_snprintf(buf, sizeof buf, ".%03d", (int)frac);
        for (char *e = buf + strlen(buf) - 1; *e == '0'; e--)
            *e = '\0';
        g_string_append(s, buf);
    }
}

void prox_risk_parameters_to_keyfile(const ProxRiskParameters *params, GKeyFile *keyfile,
                                     const char *group)
{
    g_key_file_remove_group(keyfile, group, NULL);
    for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
        const KeyDesc *k = &keys[i];
        const guint8 *base = (const guint8 *)params + k->offset;
        g_autoptr(GString) s = g_string_new(NULL);
        switch (k->kind) {
        case KEY_INT:
            g_string_append_printf(s, "%d", *(const int32_t *)base);
            break;
        case KEY_DOUBLE:
            append_milli(s, *(const double *)base);
            break;
        case KEY_INT_LIST:
            for (guint j = 0; j < k->length; j++)
                g_string_append_printf(s, "%d;", ((const int32_t *)base)[j]);
            break;
        case KEY_DOUBLE_LIST:
            for (guint j = 0; j < k->length; j++) {
                append_milli(s, ((const double *)base)[j]);
                g_string_append_c(s, ';');
            }
            break;
        case KEY_LEVEL_SET:
            for (int level = 1; level <= PROX_RISK_TRL_MAX; level++)
                if (*(const uint32_t *)base & (1u << level))
                    g_string_append_printf(s, "%d;", level);
            break;
        }
        g_key_file_set_value(keyfile, group, k->name, s->str);
        if (k->comment)
            g_key_file_set_comment(keyfile, group, k->name, k->comment, NULL);
    }
}

/* ---- key -> infectiousness -> transmission risk level ---- */

ProxInfectiousness prox_risk_key_infectiousness(const ProxRiskParameters *params,
                                                const ProxDiagnosisKey *key)
{
    if (!key->has_days_since_onset || key->days_since_onset < PROX_RISK_DSOS_MIN ||
        key->days_since_onset > PROX_RISK_DSOS_MAX)
        return params->infectiousness_when_days_since_onset_missing;
    return params->days_since_onset_to_infectiousness[key->days_since_onset - PROX_RISK_DSOS_MIN];
}

int32_t prox_risk_transmission_risk_level(const ProxRiskParameters *params,
                                          ProxReportType report_type,
                                          ProxInfectiousness infectiousness)
{
    if (report_type == PROX_REPORT_UNKNOWN)
        report_type = params->report_type_when_missing;
    int32_t rt;
    switch (report_type) {
    case PROX_REPORT_CONFIRMED_TEST:
        rt = params->report_type_offsets[PROX_RISK_OFFSET_CONFIRMED_TEST];
        break;
    case PROX_REPORT_CONFIRMED_CLINICAL_DIAGNOSIS:
        rt = params->report_type_offsets[PROX_RISK_OFFSET_CONFIRMED_CLINICAL_DIAGNOSIS];
        break;
    case PROX_REPORT_SELF_REPORT:
        rt = params->report_type_offsets[PROX_RISK_OFFSET_SELF_REPORT];
        break;
    case PROX_REPORT_RECURSIVE:
        rt = params->report_type_offsets[PROX_RISK_OFFSET_RECURSIVE];
        break;
    default: /* revoked, or a value no report type has */
        return 0;
    }
    switch (infectiousness) {
    case PROX_INFECTIOUSNESS_STANDARD:
        return rt + params->infectiousness_offsets[0];
    case PROX_INFECTIOUSNESS_HIGH:
        return rt + params->infectiousness_offsets[1];
    default:
        return 0;
    }
}

/* ---- scoring ---- */

gint64 prox_risk_day_of(gint64 t)
{
    gint64 q = t / PROX_SECONDS_PER_DAY;
    if (t < 0 && q * PROX_SECONDS_PER_DAY != t)
        q--;
    return q * PROX_SECONDS_PER_DAY;
}

static int bucket_of(const ProxRiskParameters *p, int attenuation)
{
    int b = 0;
    while (b < PROX_RISK_ATTENUATION_BUCKETS - 1 && attenuation >= p->attenuation_thresholds_db[b])
        b++;
    return b;
}

/* Scores and also returns the exact sums (micro weighted seconds) for aggregation. */
static gboolean score_exact(const ProxExposureWindow *w, const ProxRiskParameters *p,
                            ProxWindowScore *score, gint64 *weighted_milli,
                            gint64 *normalized_micro)
{
    gint64 wsum = 0; /* seconds x weight_milli */
    int32_t below = 0;
    guint n = w->scans ? w->scans->len : 0;

    for (guint i = 0; i < n; i++) {
        const ProxWindowScan *s = &g_array_index(w->scans, ProxWindowScan, i);
        /* CWA ignores negative gaps; GAEN-style cap on long ones. */
        int32_t sec = CLAMP(s->seconds_since_last_scan, 0, p->seconds_since_last_scan_cap);
        if (s->min_attenuation == PROX_ATTENUATION_UNKNOWN)
            continue;
        if (s->min_attenuation < p->filter_attenuation_db)
            below += sec;
        wsum += (gint64)sec * to_milli(p->attenuation_weights[bucket_of(p, s->min_attenuation)]);
    }

    int32_t trl = prox_risk_transmission_risk_level(p, w->report_type, w->infectiousness);
    gint64 trv_milli = trl >= 1 ? to_milli(p->transmission_risk_values[trl - 1]) : 0;
    gint64 norm = wsum * trv_milli;

    ProxWindowVerdict verdict = PROX_WINDOW_COUNTED;
    ProxReportType rt =
        w->report_type == PROX_REPORT_UNKNOWN ? p->report_type_when_missing : w->report_type;
    if (rt < PROX_REPORT_CONFIRMED_TEST || rt > PROX_REPORT_RECURSIVE)
        verdict = PROX_WINDOW_DROPPED_REPORT_TYPE;
    else if (w->infectiousness == PROX_INFECTIOUSNESS_NONE || trl == 0)
        verdict = PROX_WINDOW_DROPPED_INFECTIOUSNESS;
    else if (below / 60 < p->filter_min_minutes) /* whole minutes, as CWA compares */
        verdict = PROX_WINDOW_DROPPED_MINUTES;
    else if (p->drop_transmission_risk_levels & (1u << trl))
        verdict = PROX_WINDOW_DROPPED_TRL;

    *score = (ProxWindowScore){
        .verdict = verdict,
        .transmission_risk_level = trl,
        .transmission_risk_value = (double)trv_milli / MILLI,
        .seconds_below_filter = below,
        .weighted_minutes = (double)wsum / (60.0 * MILLI),
        .normalized_minutes = (double)norm / (double)MICRO_PER_MINUTE,
        .level = norm >= to_milli(p->high_risk_minutes_per_window) * 60 * MILLI
                     ? PROX_RISK_LEVEL_HIGH
                     : PROX_RISK_LEVEL_LOW,
    };
    if (weighted_milli)
        *weighted_milli = wsum;
    if (normalized_micro)
        *normalized_micro = norm;
    return verdict == PROX_WINDOW_COUNTED;
}

gboolean prox_risk_score_window(const ProxExposureWindow *window, const ProxRiskParameters *params,
                                ProxWindowScore *score)
{
    return score_exact(window, params, score, NULL, NULL);
}

/* ---- windows from matches ---- */

typedef struct {
    gint64 id;
    int32_t seconds_since_last_scan;
} ScanGap;

static int scan_gap_cmp(const void *a, const void *b)
{
    gint64 x = ((const ScanGap *)a)->id, y = ((const ScanGap *)b)->id;
    return x < y ? -1 : x > y;
}

static gint match_order(gconstpointer a, gconstpointer b, gpointer user_data)
{
    const ProxMatchedSighting *m = user_data;
    guint i = *(const guint *)a, j = *(const guint *)b;
    const ProxMatchedSighting *x = &m[i], *y = &m[j];
    if (x->key_index != y->key_index)
        return x->key_index < y->key_index ? -1 : 1;
    if (x->sighting.first_seen != y->sighting.first_seen)
        return x->sighting.first_seen < y->sighting.first_seen ? -1 : 1;
    if (x->sighting.scan_instance_id != y->sighting.scan_instance_id)
        return x->sighting.scan_instance_id < y->sighting.scan_instance_id ? -1 : 1;
    return i < j ? -1 : i > j;
}

/* Per scan of the window being built: what merging another sighting needs. */
typedef struct {
    gint64 scan_id;
    guint64 rssi_count;
    gint64 typical_sum; /* sum of rssi_count x typical attenuation */
} ScanAcc;

static uint8_t clamp_attenuation(int v)
{
    return (uint8_t)CLAMP(v, 0, MAX_ATTENUATION);
}

static void finish_window(ProxExposureWindow *w, const ProxRiskParameters *p)
{
    ProxWindowScore score;
    gboolean counted = prox_risk_score_window(w, p, &score);
    w->transmission_risk_level = score.transmission_risk_level;
    w->weighted_minutes = score.weighted_minutes;
    w->risk = counted ? score.normalized_minutes : 0.0;
}

gboolean prox_risk_windows_from_matches(const ProxMatchedSighting *matches, gsize n_matches,
                                        const ProxScanInstance *scans, gsize n_scans,
                                        ProxCalibrationConfidence confidence,
                                        const ProxRiskParameters *params, GArray **out_windows,
                                        GError **error)
{
    g_return_val_if_fail(n_matches == 0 || matches, FALSE);
    g_return_val_if_fail(n_scans == 0 || scans, FALSE);
    g_return_val_if_fail(out_windows != NULL, FALSE);

    if (!prox_risk_parameters_validate(params, error))
        return FALSE;

    g_autofree ScanGap *gaps = g_new(ScanGap, n_scans ? n_scans : 1);
    for (gsize i = 0; i < n_scans; i++)
        gaps[i] = (ScanGap){scans[i].id, scans[i].seconds_since_last_scan};
    qsort(gaps, n_scans, sizeof *gaps, scan_gap_cmp);
    for (gsize i = 1; i < n_scans; i++)
        if (gaps[i].id == gaps[i - 1].id) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                        "scan instance %" G_GINT64_FORMAT " given twice", gaps[i].id);
            return FALSE;
        }

    g_autoptr(GArray) order = g_array_sized_new(FALSE, FALSE, sizeof(guint), n_matches);
    for (guint i = 0; i < n_matches; i++)
        g_array_append_val(order, i);
    g_array_sort_with_data(order, match_order, (gpointer)matches);

    g_autoptr(GArray) windows = g_array_new(FALSE, FALSE, sizeof(ProxExposureWindow));
    g_array_set_clear_func(windows, prox_exposure_window_clear);
    g_autoptr(GArray) acc = g_array_new(FALSE, FALSE, sizeof(ScanAcc));
    ProxExposureWindow *cur = NULL;

    for (guint o = 0; o < order->len; o++) {
        const ProxMatchedSighting *m = &matches[g_array_index(order, guint, o)];
        const ProxSighting *s = &m->sighting;

        ScanGap probe = {.id = s->scan_instance_id};
        const ScanGap *gap = bsearch(&probe, gaps, n_scans, sizeof *gaps, scan_gap_cmp);
        if (!gap) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                        "a matched sighting refers to scan instance %" G_GINT64_FORMAT
                        ", which was not given",
                        s->scan_instance_id);
            return FALSE;
        }

        /* A scan already in the current window takes the sighting, wherever its time. */
        guint merge = G_MAXUINT;
        if (cur && cur->key_index == m->key_index)
            for (guint i = acc->len; i-- > 0;)
                if (g_array_index(acc, ScanAcc, i).scan_id == s->scan_instance_id) {
                    merge = i;
                    break;
                }

        if (merge == G_MAXUINT && (!cur || cur->key_index != m->key_index ||
                                   s->first_seen - cur->start >= params->window_max_seconds ||
                                   prox_risk_day_of(s->first_seen) != cur->day)) {
            if (cur)
                finish_window(cur, params);
            ProxExposureWindow w;
            prox_exposure_window_init(&w);
            w.key_index = m->key_index;
            w.day = prox_risk_day_of(s->first_seen);
            w.start = s->first_seen;
            w.end = s->last_seen;
            w.report_type = m->key.report_type;
            w.infectiousness = prox_risk_key_infectiousness(params, &m->key);
            w.calibration_confidence = (uint8_t)confidence;
            g_array_append_val(windows, w);
            cur = &g_array_index(windows, ProxExposureWindow, windows->len - 1);
            g_array_set_size(acc, 0);
        }

        int min_att = PROX_ATTENUATION_UNKNOWN;
        int typical = 0;
        if (s->rssi_count > 0) {
            min_att = clamp_attenuation(m->tx_power - s->rssi_max);
            typical = clamp_attenuation(m->tx_power - s->rssi_mean);
        }

        if (merge == G_MAXUINT) {
            ScanAcc a = {.scan_id = s->scan_instance_id,
                         .rssi_count = s->rssi_count,
                         .typical_sum = (gint64)s->rssi_count * typical};
            g_array_append_val(acc, a);
            ProxWindowScan ws = {
                .min_attenuation = (uint8_t)min_att,
                .typical_attenuation =
                    s->rssi_count > 0 ? (uint8_t)typical : PROX_ATTENUATION_UNKNOWN,
                .seconds_since_last_scan = gap->seconds_since_last_scan,
            };
            g_array_append_val(cur->scans, ws);
        } else {
            ScanAcc *a = &g_array_index(acc, ScanAcc, merge);
            ProxWindowScan *ws = &g_array_index(cur->scans, ProxWindowScan, merge);
            a->rssi_count += s->rssi_count;
            a->typical_sum += (gint64)s->rssi_count * typical;
            if (min_att < ws->min_attenuation)
                ws->min_attenuation = (uint8_t)min_att;
            if (a->rssi_count > 0)
                ws->typical_attenuation =
                    (uint8_t)((a->typical_sum + (gint64)a->rssi_count / 2) / (gint64)a->rssi_count);
        }
        cur->end = MAX(cur->end, s->last_seen);
    }
    if (cur)
        finish_window(cur, params);

    *out_windows = g_steal_pointer(&windows);
    return TRUE;
}

/* ---- daily summaries ---- */

typedef struct {
    gint64 day;
    gint64 weighted_milli;
    gint64 normalized_micro;
    ProxRiskLevel level;
    int32_t trl;
    uint8_t confidence;
} Counted;

static gint counted_cmp(gconstpointer a, gconstpointer b)
{
    gint64 x = ((const Counted *)a)->day, y = ((const Counted *)b)->day;
    return x < y ? -1 : x > y;
}

/* Bit of a (TRL, calibration confidence) pair for CWA's distinct encounters. */
static guint64 encounter_bit(const Counted *c)
{
    guint idx = (guint)c->trl * 4u + MIN(c->confidence, 3u);
    return G_GUINT64_CONSTANT(1) << idx;
}

void prox_risk_summarize(const ProxExposureWindow *windows, gsize n_windows,
                         const ProxRiskParameters *params, gint64 now, ProxRiskSummary *out)
{
    *out = (ProxRiskSummary){.level = PROX_RISK_LEVEL_LOW};
    gint64 cutoff =
        prox_risk_day_of(now) - (gint64)(params->lookback_days - 1) * PROX_SECONDS_PER_DAY;
    guint dropped = 0, old = 0;

    g_autoptr(GArray) counted = g_array_new(FALSE, FALSE, sizeof(Counted));
    for (gsize i = 0; i < n_windows; i++) {
        const ProxExposureWindow *w = &windows[i];
        if (w->day < cutoff) {
            old++;
            continue;
        }
        ProxWindowScore score;
        Counted c = {.day = w->day, .confidence = w->calibration_confidence};
        if (!score_exact(w, params, &score, &c.weighted_milli, &c.normalized_micro)) {
            dropped++;
            continue;
        }
        c.level = score.level;
        c.trl = score.transmission_risk_level;
        g_array_append_val(counted, c);
    }
    g_array_sort(counted, counted_cmp);
    g_debug("%" G_GSIZE_FORMAT " windows: %u counted, %u dropped, %u older than %d days", n_windows,
            counted->len, dropped, old, params->lookback_days);

    gint64 day_threshold = to_milli(params->high_risk_minutes_per_day) * 60 * MILLI;
    GArray *days = g_array_new(FALSE, TRUE, sizeof(ProxDailySummary));
    for (guint i = 0; i < counted->len;) {
        gint64 day = g_array_index(counted, Counted, i).day;
        gint64 wsum = 0, nsum = 0, wmax = 0, nmax = 0;
        guint64 high = 0, low = 0;
        guint n = 0;
        for (; i < counted->len && g_array_index(counted, Counted, i).day == day; i++, n++) {
            const Counted *c = &g_array_index(counted, Counted, i);
            wsum += c->weighted_milli;
            nsum += c->normalized_micro;
            wmax = MAX(wmax, c->weighted_milli);
            nmax = MAX(nmax, c->normalized_micro);
            if (c->level == PROX_RISK_LEVEL_HIGH)
                high |= encounter_bit(c);
            else
                low |= encounter_bit(c);
        }
        ProxDailySummary d = {
            .day = day,
            .n_windows = n,
            .weighted_minutes = (double)wsum / (60.0 * MILLI),
            .normalized_minutes = (double)nsum / (double)MICRO_PER_MINUTE,
            .max_window_weighted_minutes = (double)wmax / (60.0 * MILLI),
            .max_window_normalized_minutes = (double)nmax / (double)MICRO_PER_MINUTE,
            .high_risk_encounters = (guint)__builtin_popcountll(high),
            .low_risk_encounters = (guint)__builtin_popcountll(low),
            .level = nsum >= day_threshold ? PROX_RISK_LEVEL_HIGH : PROX_RISK_LEVEL_LOW,
        };
        g_array_append_val(days, d);

        out->high_risk_encounters += d.high_risk_encounters;
        out->low_risk_encounters += d.low_risk_encounters;
        if (d.level == PROX_RISK_LEVEL_HIGH) {
            out->level = PROX_RISK_LEVEL_HIGH;
            out->days_with_high_risk++;
            out->has_high_risk_day = TRUE;
            out->most_recent_high_risk_day = day; /* ascending, so the last one wins */
        } else {
            out->days_with_low_risk++;
            out->has_low_risk_day = TRUE;
            out->most_recent_low_risk_day = day;
        }
    }
    out->n_days = days->len;
    out->days = (ProxDailySummary *)g_array_free(days, FALSE);
}

void prox_risk_summary_clear(ProxRiskSummary *summary)
{
    g_clear_pointer(&summary->days, g_free);
    summary->n_days = 0;
}
