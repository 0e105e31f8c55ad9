/* test-risk.c - exposure windows and CWA v2 scoring on hand-worked scenarios.
 *
 * Unless a test says otherwise, parameters are the defaults: buckets [0,63) 0.8,
 * [63,73) 1.0, [73,79) 0.1, [79,inf) 0; gap cap 300 s; windows of 30 min; drop a window
 * with < 5 whole minutes below 79 dB or TRL 1-2; normalized = weighted x TRL x 0.2;
 * high risk from 13 normalized minutes.
 *
 * Every sighting is heard with TX power +8 dBm, so attenuation a means rssi_max = 8 - a.
 * The key most tests use is a clinical diagnosis without onset day: infectiousness
 * standard, TRL 4 + 1 = 5, transmission risk value 1.0, so its normalized minutes equal
 * its weighted minutes.
 */
#include "prox-risk.h"

#include <string.h>

#define DAY (86400)
/* 2020-11-11 00:00:00 UTC */
#define D0 ((gint64)1605052800)
#define TX 8

typedef struct {
    GArray *matches; /* ProxMatchedSighting */
    GArray *scans;   /* ProxScanInstance */
    gint64 next_scan_id;
} World;

static void world_init(World *w)
{
    w->matches = g_array_new(FALSE, TRUE, sizeof(ProxMatchedSighting));
    w->scans = g_array_new(FALSE, TRUE, sizeof(ProxScanInstance));
    w->next_scan_id = 1;
}

static void world_clear(World *w)
{
    g_array_unref(w->matches);
    g_array_unref(w->scans);
}

static ProxDiagnosisKey make_key(ProxReportType type, gboolean has_dsos, int32_t dsos)
{
    ProxDiagnosisKey k = {0};
    k.tek.rolling_period = 144;
    k.report_type = type;
    k.has_days_since_onset = has_dsos;
    k.days_since_onset = dsos;
    return k;
}

/* TRL 5 (clinical diagnosis, no onset day): transmission risk value 1.0. */
static ProxDiagnosisKey key_trl5(void)
{
    return make_key(PROX_REPORT_CONFIRMED_CLINICAL_DIAGNOSIS, FALSE, 0);
}

static gint64 add_scan(World *w, gint64 start, int32_t gap)
{
    ProxScanInstance s = {
        .id = w->next_scan_id++, .start = start, .end = start + 4, .seconds_since_last_scan = gap};
    g_array_append_val(w->scans, s);
    return s.id;
}

static void add_sighting(World *w, guint key_index, const ProxDiagnosisKey *key, gint64 scan_id,
                         gint64 t, int8_t tx, int rssi_max, int rssi_mean, uint32_t rssi_count,
                         uint32_t rpi_interval)
{
    ProxMatchedSighting m = {0};
    m.key_index = key_index;
    m.key = *key;
    m.sighting.scan_instance_id = scan_id;
    m.sighting.first_seen = t;
    m.sighting.last_seen = t + 2;
    m.sighting.report_count = rssi_count ? rssi_count : 1;
    m.sighting.rssi_count = rssi_count;
    m.sighting.rssi_min = (int16_t)(rssi_max - 5);
    m.sighting.rssi_max = (int16_t)rssi_max;
    m.sighting.rssi_mean = (int16_t)rssi_mean;
    m.rpi_interval = rpi_interval;
    m.tx_power = tx;
    /* metadata as the matcher decrypted it: v1.0, TX power */
    m.metadata[0] = 0x40;
    m.metadata[1] = (uint8_t)tx;
    g_array_append_val(w->matches, m);
}

/* A scan at `t` with gap `gap` in which key `key_index` was heard at attenuation `att`. */
static void hear(World *w, guint key_index, const ProxDiagnosisKey *key, gint64 t, int32_t gap,
                 int att)
{
    gint64 id = add_scan(w, t, gap);
    add_sighting(w, key_index, key, id, t, TX, TX - att, TX - att - 2, 3, prox_interval_number(t));
}

static GArray *build(World *w, const ProxRiskParameters *p)
{
    g_autoptr(GError) error = NULL;
    GArray *windows = NULL;
    g_assert_true(prox_risk_windows_from_matches(
        (const ProxMatchedSighting *)w->matches->data, w->matches->len,
        (const ProxScanInstance *)w->scans->data, w->scans->len, PROX_CALIBRATION_MEDIUM, p,
        &windows, &error));
    g_assert_no_error(error);
    g_assert_nonnull(windows);
    return windows;
}

static ProxExposureWindow *win(GArray *windows, guint i)
{
    g_assert_cmpuint(i, <, windows->len);
    return &g_array_index(windows, ProxExposureWindow, i);
}

static ProxWindowScan *scan_of(ProxExposureWindow *w, guint i)
{
    g_assert_cmpuint(i, <, w->scans->len);
    return &g_array_index(w->scans, ProxWindowScan, i);
}

/* Builds the one window of `w` under the defaults and scores it. */
static gboolean score_single(World *w, ProxWindowScore *score)
{
    ProxRiskParameters p;
    prox_risk_parameters_default(&p);
    g_autoptr(GArray) windows = build(w, &p);
    g_assert_cmpuint(windows->len, ==, 1);
    return prox_risk_score_window(win(windows, 0), &p, score);
}

/* ---- parameters and the key -> TRL mapping ---- */

static void test_defaults(void)
{
    ProxRiskParameters p;
    g_autoptr(GError) error = NULL;
    prox_risk_parameters_default(&p);
    g_assert_true(prox_risk_parameters_validate(&p, &error));
    g_assert_no_error(error);
    g_assert_cmpint(p.attenuation_thresholds_db[0], ==, 63);
    g_assert_cmpint(p.attenuation_thresholds_db[1], ==, 73);
    g_assert_cmpint(p.attenuation_thresholds_db[2], ==, 79);
    g_assert_cmpfloat(p.attenuation_weights[0], ==, 0.8);
    g_assert_cmpfloat(p.attenuation_weights[3], ==, 0.0);
    g_assert_cmpint(p.seconds_since_last_scan_cap, ==, 300);
    g_assert_cmpint(p.window_max_seconds, ==, 1800);
    g_assert_cmpfloat(p.high_risk_minutes_per_day, ==, 13.0);
    g_assert_cmpint(p.lookback_days, ==, 14);

    /* trlEncoding: report type offset + infectiousness offset (standard 1, high 2). */
    static const struct {
        ProxReportType type;
        int32_t standard, high;
    } trl[] = {
        {PROX_REPORT_CONFIRMED_TEST, 7, 8}, {PROX_REPORT_CONFIRMED_CLINICAL_DIAGNOSIS, 5, 6},
        {PROX_REPORT_SELF_REPORT, 3, 4},    {PROX_REPORT_RECURSIVE, 1, 2},
        {PROX_REPORT_UNKNOWN, 7, 8}, /* report type when missing: confirmed test */
        {PROX_REPORT_REVOKED, 0, 0},
    };
    for (gsize i = 0; i < G_N_ELEMENTS(trl); i++) {
        g_assert_cmpint(
            prox_risk_transmission_risk_level(&p, trl[i].type, PROX_INFECTIOUSNESS_STANDARD), ==,
            trl[i].standard);
        g_assert_cmpint(
            prox_risk_transmission_risk_level(&p, trl[i].type, PROX_INFECTIOUSNESS_HIGH), ==,
            trl[i].high);
        g_assert_cmpint(
            prox_risk_transmission_risk_level(&p, trl[i].type, PROX_INFECTIOUSNESS_NONE), ==, 0);
    }

    /* Days since onset: 0 and +-1 high, +-2..3 standard, +-4 and beyond none; no day (or a
     * day outside -14..14) standard. */
    static const struct {
        gboolean has;
        int32_t dsos;
        ProxInfectiousness inf;
    } dsos[] = {
        {TRUE, 0, PROX_INFECTIOUSNESS_HIGH},      {TRUE, -1, PROX_INFECTIOUSNESS_HIGH},
        {TRUE, 1, PROX_INFECTIOUSNESS_HIGH},      {TRUE, -2, PROX_INFECTIOUSNESS_STANDARD},
        {TRUE, 3, PROX_INFECTIOUSNESS_STANDARD},  {TRUE, -3, PROX_INFECTIOUSNESS_STANDARD},
        {TRUE, 4, PROX_INFECTIOUSNESS_NONE},      {TRUE, -4, PROX_INFECTIOUSNESS_NONE},
        {TRUE, 14, PROX_INFECTIOUSNESS_NONE},     {TRUE, -14, PROX_INFECTIOUSNESS_NONE},
        {FALSE, 0, PROX_INFECTIOUSNESS_STANDARD}, {TRUE, 20, PROX_INFECTIOUSNESS_STANDARD},
    };
    for (gsize i = 0; i < G_N_ELEMENTS(dsos); i++) {
        ProxDiagnosisKey k = make_key(PROX_REPORT_CONFIRMED_TEST, dsos[i].has, dsos[i].dsos);
        g_assert_cmpint(prox_risk_key_infectiousness(&p, &k), ==, dsos[i].inf);
    }
}

/* ---- the 13-minute threshold ---- */

/* Three scans at 65 dB (weight 1.0), TRL 5 (value 1.0):
 *   gaps 300 + 300 + 180 = 780 s -> 13.0 weighted = 13.0 normalized -> high;
 *   gaps 300 + 300 + 174 = 774 s -> 12.9 -> low.
 * Both have >= 5 min below 79 dB, so both count. */
static void threshold_case(int32_t last_gap, double expect, ProxRiskLevel level)
{
    World w;
    world_init(&w);
    ProxDiagnosisKey k = key_trl5();
    gint64 t = D0 + 10 * 3600;
    hear(&w, 0, &k, t, 300, 65);
    hear(&w, 0, &k, t + 300, 300, 65);
    hear(&w, 0, &k, t + 600, last_gap, 65);

    ProxRiskParameters p;
    prox_risk_parameters_default(&p);
    g_autoptr(GArray) windows = build(&w, &p);
    g_assert_cmpuint(windows->len, ==, 1);
    ProxWindowScore s;
    g_assert_true(prox_risk_score_window(win(windows, 0), &p, &s));
    g_assert_cmpint(s.transmission_risk_level, ==, 5);
    g_assert_cmpfloat(s.transmission_risk_value, ==, 1.0);
    g_assert_cmpfloat_with_epsilon(s.weighted_minutes, expect, 1e-9);
    g_assert_cmpfloat_with_epsilon(s.normalized_minutes, expect, 1e-9);
    g_assert_cmpint(s.level, ==, level);

    ProxRiskSummary sum;
    prox_risk_summarize(win(windows, 0), 1, &p, t + 3600, &sum);
    g_assert_cmpuint(sum.n_days, ==, 1);
    g_assert_cmpint(sum.days[0].level, ==, level);
    g_assert_cmpint(sum.level, ==, level);
    g_assert_cmpint(sum.has_high_risk_day, ==, level == PROX_RISK_LEVEL_HIGH);
    prox_risk_summary_clear(&sum);
    world_clear(&w);
}

static void test_threshold(void)
{
    threshold_case(180, 13.0, PROX_RISK_LEVEL_HIGH);
    threshold_case(174, 12.9, PROX_RISK_LEVEL_LOW);
}

/* ---- attenuation bucket edges ---- */

/* Two scans at 62 dB (600 s x 0.8 = 8.0 weighted minutes) plus one 300 s scan at the edge
 * attenuation:
 *   62 -> +300 x 0.8 = 4.0 -> 12.0      63 -> +300 x 1.0 = 5.0 -> 13.0
 *   72 -> +5.0 -> 13.0                  73 -> +300 x 0.1 = 0.5 -> 8.5
 *   78 -> +0.5 -> 8.5                   79 -> +0 -> 8.0
 * and the time below 79 dB is 900 s up to 78 dB, 600 s at 79 dB. */
static void test_bucket_edges(void)
{
    static const struct {
        int att;
        double weighted;
        int32_t below;
    } cases[] = {
        {62, 12.0, 900}, {63, 13.0, 900}, {72, 13.0, 900},
        {73, 8.5, 900},  {78, 8.5, 900},  {79, 8.0, 600},
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        World w;
        world_init(&w);
        ProxDiagnosisKey k = key_trl5();
        gint64 t = D0 + 8 * 3600;
        hear(&w, 0, &k, t, 300, 62);
        hear(&w, 0, &k, t + 300, 300, 62);
        hear(&w, 0, &k, t + 600, 300, cases[i].att);
        ProxWindowScore s;
        g_assert_true(score_single(&w, &s));
        g_assert_cmpfloat_with_epsilon(s.weighted_minutes, cases[i].weighted, 1e-9);
        g_assert_cmpint(s.seconds_below_filter, ==, cases[i].below);
        world_clear(&w);
    }

    /* The filter edge on its own: 5 minutes at 78 dB count (0.5 weighted minutes), 15
     * minutes at 79 dB are no time below 79 dB at all. */
    World w;
    world_init(&w);
    ProxDiagnosisKey k = key_trl5();
    hear(&w, 0, &k, D0 + 3600, 300, 78);
    ProxWindowScore s;
    g_assert_true(score_single(&w, &s));
    g_assert_cmpfloat_with_epsilon(s.weighted_minutes, 0.5, 1e-9);
    world_clear(&w);

    world_init(&w);
    for (int i = 0; i < 3; i++)
        hear(&w, 0, &k, D0 + 3600 + 300 * i, 300, 79);
    g_assert_false(score_single(&w, &s));
    g_assert_cmpint(s.verdict, ==, PROX_WINDOW_DROPPED_MINUTES);
    g_assert_cmpint(s.seconds_below_filter, ==, 0);
    world_clear(&w);
}

/* ---- minimum 5 minutes below 79 dB ---- */

/* Scans at 65 dB with gaps 240 + 59 = 299 s = 4 min 59 s: 4 whole minutes -> dropped;
 * 240 + 60 = 300 s = 5:00 -> counted, 5.0 weighted minutes, low risk. */
static void test_min_minutes(void)
{
    ProxDiagnosisKey k = key_trl5();
    for (int last = 59; last <= 60; last++) {
        World w;
        world_init(&w);
        hear(&w, 0, &k, D0 + 7200, 240, 65);
        hear(&w, 0, &k, D0 + 7200 + 240, last, 65);
        ProxWindowScore s;
        gboolean counted = score_single(&w, &s);
        g_assert_cmpint(s.seconds_below_filter, ==, 240 + last);
        if (last == 59) {
            g_assert_false(counted);
            g_assert_cmpint(s.verdict, ==, PROX_WINDOW_DROPPED_MINUTES);
        } else {
            g_assert_true(counted);
            g_assert_cmpfloat_with_epsilon(s.weighted_minutes, 5.0, 1e-9);
            g_assert_cmpint(s.level, ==, PROX_RISK_LEVEL_LOW);
        }
        world_clear(&w);
    }

    /* The gap cap: one scan 1000 s after the previous one counts 300 s (5:00, kept); a
     * negative gap (clock step) counts 0 s. */
    World w;
    world_init(&w);
    hear(&w, 0, &k, D0 + 7200, 1000, 65);
    ProxWindowScore s;
    g_assert_true(score_single(&w, &s));
    g_assert_cmpfloat_with_epsilon(s.weighted_minutes, 5.0, 1e-9);
    world_clear(&w);

    world_init(&w);
    hear(&w, 0, &k, D0 + 7200, 300, 65);
    hear(&w, 0, &k, D0 + 7500, -50, 65);
    g_assert_true(score_single(&w, &s));
    g_assert_cmpfloat_with_epsilon(s.weighted_minutes, 5.0, 1e-9);
    world_clear(&w);
}

/* ---- grouping ---- */

/* Key 0 heard at T, T+600, T+1200, T+1799: one window (all < 1800 s after T); at
 * T+1800 a new window starts. Key 1 heard at T+900, in between, has its own window.
 * The result does not depend on the order the matches come in. */
static void test_window_split(void)
{
    ProxRiskParameters p;
    prox_risk_parameters_default(&p);
    ProxDiagnosisKey k0 = key_trl5();
    ProxDiagnosisKey k1 = make_key(PROX_REPORT_CONFIRMED_TEST, TRUE, 0);
    gint64 t = D0 + 12 * 3600;
    static const gint64 offsets[] = {0, 600, 1200, 1799, 1800};

    for (int reversed = 0; reversed <= 1; reversed++) {
        World w;
        world_init(&w);
        for (gsize i = 0; i < G_N_ELEMENTS(offsets); i++) {
            gsize j = reversed ? G_N_ELEMENTS(offsets) - 1 - i : i;
            hear(&w, 0, &k0, t + offsets[j], 300, 60);
        }
        hear(&w, 1, &k1, t + 900, 300, 60);
        g_autoptr(GArray) windows = build(&w, &p);
        g_assert_cmpuint(windows->len, ==, 3);

        ProxExposureWindow *a = win(windows, 0), *b = win(windows, 1), *c = win(windows, 2);
        g_assert_cmpuint(a->key_index, ==, 0);
        g_assert_cmpuint(a->scans->len, ==, 4);
        g_assert_cmpint(a->start, ==, t);
        g_assert_cmpint(a->end, ==, t + 1799 + 2);
        g_assert_cmpint(a->day, ==, D0);
        g_assert_cmpuint(b->key_index, ==, 0);
        g_assert_cmpuint(b->scans->len, ==, 1);
        g_assert_cmpint(b->start, ==, t + 1800);
        g_assert_cmpuint(c->key_index, ==, 1);
        g_assert_cmpuint(c->scans->len, ==, 1);
        g_assert_cmpint(c->report_type, ==, PROX_REPORT_CONFIRMED_TEST);
        g_assert_cmpint(c->infectiousness, ==, PROX_INFECTIOUSNESS_HIGH);
        g_assert_cmpint(c->transmission_risk_level, ==, 8);
        g_assert_cmpint(c->calibration_confidence, ==, PROX_CALIBRATION_MEDIUM);
        g_assert_cmpint(c->key_id, ==, 0);

        /* Stored scores: window a = 4 x 300 s x 0.8 = 16.0 weighted minutes, TRL 5. */
        g_assert_cmpint(a->transmission_risk_level, ==, 5);
        g_assert_cmpfloat_with_epsilon(a->weighted_minutes, 16.0, 1e-9);
        g_assert_cmpfloat_with_epsilon(a->risk, 16.0, 1e-9);
        /* Window b has 5 minutes: counted, 4.0 weighted. Window c: 4.0 x 1.6 = 6.4. */
        g_assert_cmpfloat_with_epsilon(b->risk, 4.0, 1e-9);
        g_assert_cmpfloat_with_epsilon(c->risk, 6.4, 1e-9);
        world_clear(&w);
    }
}

/* A window never crosses UTC midnight: 23:50 and 00:05 are two windows, one per day. */
static void test_midnight_split(void)
{
    ProxRiskParameters p;
    prox_risk_parameters_default(&p);
    World w;
    world_init(&w);
    ProxDiagnosisKey k = key_trl5();
    hear(&w, 0, &k, D0 + DAY - 600, 300, 60);
    hear(&w, 0, &k, D0 + DAY + 300, 300, 60);
    g_autoptr(GArray) windows = build(&w, &p);
    g_assert_cmpuint(windows->len, ==, 2);
    g_assert_cmpint(win(windows, 0)->day, ==, D0);
    g_assert_cmpint(win(windows, 1)->day, ==, D0 + DAY);
    world_clear(&w);
}

/* The matcher accepts a sighting within 12 intervals (2 h) of its RPI's interval and
 * rejects 13; risk takes its output as given and places each sighting by when it was
 * heard, never by the RPI's interval:
 *   RPI interval i = ENIN(T) with T = D0 + 23:00. Heard at T (interval i) and at
 *   start(i) + 11 x 600 = D0+1 day 00:50 (2 h - 1 interval): two windows (110 minutes
 *   apart), the second on day D0+1 although its RPI belongs to day D0.
 * Feeding the same sightings with rpi_interval = ENIN(heard) or ENIN(heard) - 13 (2 h + 1
 * interval, which the matcher would have rejected) gives the same windows. */
static void test_rpi_tolerance(void)
{
    ProxRiskParameters p;
    prox_risk_parameters_default(&p);
    ProxDiagnosisKey k = key_trl5();
    gint64 t = D0 + 23 * 3600;
    uint32_t i_rpi = prox_interval_number(t);
    gint64 late = prox_interval_start(i_rpi) + 11 * 600;
    g_assert_cmpint(late, ==, D0 + DAY + 50 * 60);

    GArray *results[3];
    for (int variant = 0; variant < 3; variant++) {
        World w;
        world_init(&w);
        gint64 s1 = add_scan(&w, t, 300), s2 = add_scan(&w, late, 300);
        uint32_t late_interval = variant == 0   ? i_rpi
                                 : variant == 1 ? prox_interval_number(late)
                                                : prox_interval_number(late) - 13;
        add_sighting(&w, 0, &k, s1, t, TX, TX - 60, TX - 62, 3, i_rpi);
        add_sighting(&w, 0, &k, s2, late, TX, TX - 60, TX - 62, 3, late_interval);
        results[variant] = build(&w, &p);
        world_clear(&w);
    }
    GArray *r = results[0];
    g_assert_cmpuint(r->len, ==, 2);
    g_assert_cmpint(win(r, 0)->day, ==, D0);
    g_assert_cmpint(win(r, 0)->start, ==, t);
    g_assert_cmpint(win(r, 1)->day, ==, D0 + DAY);
    g_assert_cmpint(win(r, 1)->start, ==, late);
    for (int variant = 1; variant < 3; variant++) {
        GArray *o = results[variant];
        g_assert_cmpuint(o->len, ==, r->len);
        for (guint i = 0; i < r->len; i++) {
            g_assert_cmpint(win(o, i)->day, ==, win(r, i)->day);
            g_assert_cmpint(win(o, i)->start, ==, win(r, i)->start);
            g_assert_cmpint(win(o, i)->end, ==, win(r, i)->end);
            g_assert_cmpuint(win(o, i)->scans->len, ==, win(r, i)->scans->len);
            g_assert_cmpfloat(win(o, i)->weighted_minutes, ==, win(r, i)->weighted_minutes);
        }
    }
    for (int variant = 0; variant < 3; variant++)
        g_array_unref(results[variant]);
}

/* ---- attenuation ---- */

/* TX power -20 dBm, RSSI max -5 / mean -10 dBm (an outlier the matcher would reject for a
 * TX power that low, or a miscalibrated phone): attenuations -15 / -10 clamp to 0, which
 * is the [0, 63) bucket: 3 x 300 s x 0.8 = 12.0 weighted minutes. */
static void test_attenuation_clamp(void)
{
    World w;
    world_init(&w);
    ProxDiagnosisKey k = key_trl5();
    for (int i = 0; i < 3; i++) {
        gint64 t = D0 + 3600 + 300 * i;
        gint64 id = add_scan(&w, t, 300);
        add_sighting(&w, 0, &k, id, t, -20, -5, -10, 4, prox_interval_number(t));
    }
    ProxRiskParameters p;
    prox_risk_parameters_default(&p);
    g_autoptr(GArray) windows = build(&w, &p);
    g_assert_cmpuint(windows->len, ==, 1);
    ProxExposureWindow *x = win(windows, 0);
    for (guint i = 0; i < x->scans->len; i++) {
        g_assert_cmpuint(scan_of(x, i)->min_attenuation, ==, 0);
        g_assert_cmpuint(scan_of(x, i)->typical_attenuation, ==, 0);
    }
    ProxWindowScore s;
    g_assert_true(prox_risk_score_window(x, &p, &s));
    g_assert_cmpfloat_with_epsilon(s.weighted_minutes, 12.0, 1e-9);
    world_clear(&w);
}

/* RSSI never known (rssi_count 0): the scan stays in the window with unknown attenuation,
 * weighs nothing and is no time below 79 dB, so three such scans (900 s) are dropped.
 * In a scan where the key was also heard with an RSSI (the RPI changed during the scan),
 * the known values win. */
static void test_unknown_rssi(void)
{
    ProxRiskParameters p;
    prox_risk_parameters_default(&p);
    ProxDiagnosisKey k = key_trl5();
    World w;
    world_init(&w);
    for (int i = 0; i < 3; i++) {
        gint64 t = D0 + 3600 + 300 * i;
        gint64 id = add_scan(&w, t, 300);
        add_sighting(&w, 0, &k, id, t, TX, 0, 0, 0, prox_interval_number(t));
    }
    g_autoptr(GArray) windows = build(&w, &p);
    g_assert_cmpuint(windows->len, ==, 1);
    ProxExposureWindow *x = win(windows, 0);
    g_assert_cmpuint(x->scans->len, ==, 3);
    g_assert_cmpuint(scan_of(x, 0)->min_attenuation, ==, PROX_ATTENUATION_UNKNOWN);
    g_assert_cmpuint(scan_of(x, 0)->typical_attenuation, ==, PROX_ATTENUATION_UNKNOWN);
    ProxWindowScore s;
    g_assert_false(prox_risk_score_window(x, &p, &s));
    g_assert_cmpint(s.verdict, ==, PROX_WINDOW_DROPPED_MINUTES);
    g_assert_cmpfloat(s.weighted_minutes, ==, 0.0);

    /* Even a parameter set weighing >= 79 dB does not weigh unknown scans. */
    ProxRiskParameters q = p;
    q.attenuation_weights[3] = 1.0;
    q.filter_min_minutes = 0;
    g_assert_true(prox_risk_score_window(x, &q, &s));
    g_assert_cmpfloat(s.weighted_minutes, ==, 0.0);
    world_clear(&w);

    world_init(&w);
    gint64 id = add_scan(&w, D0 + 3600, 300);
    add_sighting(&w, 0, &k, id, D0 + 3600, TX, 0, 0, 0, 0);
    add_sighting(&w, 0, &k, id, D0 + 3601, TX, TX - 70, TX - 72, 2, 0);
    g_autoptr(GArray) merged = build(&w, &p);
    g_assert_cmpuint(merged->len, ==, 1);
    g_assert_cmpuint(win(merged, 0)->scans->len, ==, 1);
    g_assert_cmpuint(scan_of(win(merged, 0), 0)->min_attenuation, ==, 70);
    g_assert_cmpuint(scan_of(win(merged, 0), 0)->typical_attenuation, ==, 72);
    world_clear(&w);
}

/* Two sightings of one key in one scan (RPI rotated mid-scan) are one scan instance of the
 * window, its gap counted once:
 *   RPI a: rssi max -60, mean -62, 3 reports -> attenuation 68, typical 70
 *   RPI b: rssi max -55, mean -55, 1 report  -> attenuation 63, typical 63
 *   min attenuation 63; typical (3 x 70 + 1 x 63) / 4 = 68.25 -> 68; 300 s x 1.0 = 5.0. */
static void test_merge_same_scan(void)
{
    ProxRiskParameters p;
    prox_risk_parameters_default(&p);
    ProxDiagnosisKey k = key_trl5();
    World w;
    world_init(&w);
    gint64 id = add_scan(&w, D0 + 3600, 300);
    add_sighting(&w, 0, &k, id, D0 + 3600, TX, TX - 68, TX - 70, 3, 0);
    add_sighting(&w, 0, &k, id, D0 + 3602, TX, TX - 63, TX - 63, 1, 0);
    g_autoptr(GArray) windows = build(&w, &p);
    g_assert_cmpuint(windows->len, ==, 1);
    ProxExposureWindow *x = win(windows, 0);
    g_assert_cmpuint(x->scans->len, ==, 1);
    g_assert_cmpuint(scan_of(x, 0)->min_attenuation, ==, 63);
    g_assert_cmpuint(scan_of(x, 0)->typical_attenuation, ==, 68);
    g_assert_cmpint(scan_of(x, 0)->seconds_since_last_scan, ==, 300);
    g_assert_cmpfloat_with_epsilon(x->weighted_minutes, 5.0, 1e-9);
    world_clear(&w);
}

/* ---- transmission risk ---- */

/* 20 minutes (4 x 300 s) at 60 dB: 4 x 300 x 0.8 / 60 = 16.0 weighted minutes.
 *   recursive, onset day 0 (high):    TRL 0 + 2 = 2 -> dropped
 *   recursive, no onset day (std):    TRL 0 + 1 = 1 -> dropped
 *   self report, onset day 0:         TRL 2 + 2 = 4 -> 16.0 x 0.8 = 12.8 -> low
 *   confirmed test, onset day -1:     TRL 6 + 2 = 8 -> 16.0 x 1.6 = 25.6 -> high
 *   unknown report type, onset +2:    as confirmed test, TRL 6 + 1 = 7 -> 22.4
 *   confirmed test, onset day 7:      infectiousness none -> dropped
 *   revoked:                          dropped */
static void test_trl(void)
{
    static const struct {
        ProxReportType type;
        gboolean has;
        int32_t dsos;
        ProxWindowVerdict verdict;
        int32_t trl;
        double normalized;
    } cases[] = {
        {PROX_REPORT_RECURSIVE, TRUE, 0, PROX_WINDOW_DROPPED_TRL, 2, 16.0 * 0.4},
        {PROX_REPORT_RECURSIVE, FALSE, 0, PROX_WINDOW_DROPPED_TRL, 1, 16.0 * 0.2},
        {PROX_REPORT_SELF_REPORT, TRUE, 0, PROX_WINDOW_COUNTED, 4, 12.8},
        {PROX_REPORT_CONFIRMED_TEST, TRUE, -1, PROX_WINDOW_COUNTED, 8, 25.6},
        {PROX_REPORT_UNKNOWN, TRUE, 2, PROX_WINDOW_COUNTED, 7, 22.4},
        {PROX_REPORT_CONFIRMED_TEST, TRUE, 7, PROX_WINDOW_DROPPED_INFECTIOUSNESS, 0, 0.0},
        {PROX_REPORT_REVOKED, TRUE, 0, PROX_WINDOW_DROPPED_REPORT_TYPE, 0, 0.0},
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        World w;
        world_init(&w);
        ProxDiagnosisKey k = make_key(cases[i].type, cases[i].has, cases[i].dsos);
        for (int j = 0; j < 4; j++)
            hear(&w, 0, &k, D0 + 3600 + 300 * j, 300, 60);
        ProxWindowScore s;
        gboolean counted = score_single(&w, &s);
        g_assert_cmpint(counted, ==, cases[i].verdict == PROX_WINDOW_COUNTED);
        g_assert_cmpint(s.verdict, ==, cases[i].verdict);
        g_assert_cmpint(s.transmission_risk_level, ==, cases[i].trl);
        g_assert_cmpfloat_with_epsilon(s.weighted_minutes, 16.0, 1e-9);
        g_assert_cmpfloat_with_epsilon(s.normalized_minutes, cases[i].normalized, 1e-9);
        if (counted)
            g_assert_cmpint(s.level, ==,
                            cases[i].normalized >= 13.0 ? PROX_RISK_LEVEL_HIGH
                                                        : PROX_RISK_LEVEL_LOW);
        world_clear(&w);
    }
}

/* ---- summaries ---- */

/* A window of key `key_index` at `t`: `n` scans of 300 s at 65 dB (weight 1.0) = 5n
 * weighted minutes (5n normalized with the TRL 5 key). */
static void hear_minutes(World *w, guint key_index, const ProxDiagnosisKey *k, gint64 t, int n)
{
    for (int i = 0; i < n; i++)
        hear(w, key_index, k, t + 300 * i, 300, 65);
}

/* now = D0 + 12:00 (day D).
 *   D-3: key 0, 15 minutes         -> window 15.0, day 15.0 high
 *   D-2: key 1 recursive, 25 min   -> TRL 1, dropped: no day
 *   D-1: key 2, 10 minutes         -> day 10.0 low
 *   D:   keys 3 and 4, 10 min each -> windows 10.0 and 10.0, each low; day 20.0 high
 * Overall high; most recent high day D; 2 high days, 1 low day (D-1). Encounters: D-3 one
 * high (TRL 5, medium); D two low windows with the same (TRL, confidence): 1 distinct. */
static void test_summary_multiday(void)
{
    ProxRiskParameters p;
    prox_risk_parameters_default(&p);
    ProxDiagnosisKey k = key_trl5();
    ProxDiagnosisKey rec = make_key(PROX_REPORT_RECURSIVE, FALSE, 0);
    gint64 d = D0 + 10 * DAY;
    World w;
    world_init(&w);
    hear_minutes(&w, 0, &k, d - 3 * DAY + 9 * 3600, 3);
    hear_minutes(&w, 1, &rec, d - 2 * DAY + 9 * 3600, 5);
    hear_minutes(&w, 2, &k, d - DAY + 9 * 3600, 2);
    hear_minutes(&w, 3, &k, d + 8 * 3600, 2);
    hear_minutes(&w, 4, &k, d + 9 * 3600, 2);
    g_autoptr(GArray) windows = build(&w, &p);
    g_assert_cmpuint(windows->len, ==, 5);

    ProxRiskSummary s;
    prox_risk_summarize((const ProxExposureWindow *)windows->data, windows->len, &p, d + 12 * 3600,
                        &s);
    g_assert_cmpint(s.level, ==, PROX_RISK_LEVEL_HIGH);
    g_assert_true(s.has_high_risk_day);
    g_assert_cmpint(s.most_recent_high_risk_day, ==, d);
    g_assert_true(s.has_low_risk_day);
    g_assert_cmpint(s.most_recent_low_risk_day, ==, d - DAY);
    g_assert_cmpuint(s.days_with_high_risk, ==, 2);
    g_assert_cmpuint(s.days_with_low_risk, ==, 1);
    g_assert_cmpuint(s.high_risk_encounters, ==, 1);
    g_assert_cmpuint(s.low_risk_encounters, ==, 2);
    g_assert_cmpuint(s.n_days, ==, 3);

    const ProxDailySummary *a = &s.days[0], *b = &s.days[1], *c = &s.days[2];
    g_assert_cmpint(a->day, ==, d - 3 * DAY);
    g_assert_cmpuint(a->n_windows, ==, 1);
    g_assert_cmpfloat_with_epsilon(a->weighted_minutes, 15.0, 1e-9);
    g_assert_cmpfloat_with_epsilon(a->normalized_minutes, 15.0, 1e-9);
    g_assert_cmpfloat_with_epsilon(a->max_window_normalized_minutes, 15.0, 1e-9);
    g_assert_cmpint(a->level, ==, PROX_RISK_LEVEL_HIGH);
    g_assert_cmpuint(a->high_risk_encounters, ==, 1);
    g_assert_cmpuint(a->low_risk_encounters, ==, 0);

    g_assert_cmpint(b->day, ==, d - DAY);
    g_assert_cmpfloat_with_epsilon(b->normalized_minutes, 10.0, 1e-9);
    g_assert_cmpint(b->level, ==, PROX_RISK_LEVEL_LOW);

    g_assert_cmpint(c->day, ==, d);
    g_assert_cmpuint(c->n_windows, ==, 2);
    g_assert_cmpfloat_with_epsilon(c->weighted_minutes, 20.0, 1e-9);
    g_assert_cmpfloat_with_epsilon(c->normalized_minutes, 20.0, 1e-9);
    g_assert_cmpfloat_with_epsilon(c->max_window_weighted_minutes, 10.0, 1e-9);
    g_assert_cmpfloat_with_epsilon(c->max_window_normalized_minutes, 10.0, 1e-9);
    g_assert_cmpint(c->level, ==, PROX_RISK_LEVEL_HIGH);
    g_assert_cmpuint(c->high_risk_encounters, ==, 0);
    g_assert_cmpuint(c->low_risk_encounters, ==, 1);
    prox_risk_summary_clear(&s);
    g_assert_null(s.days);

    /* The same raw windows re-scored under other parameters: with days high only from
     * 20.5 normalized minutes, neither D-3 (15.0) nor D (20.0) is high any more. */
    ProxRiskParameters q = p;
    q.high_risk_minutes_per_day = 20.5;
    g_assert_true(prox_risk_parameters_validate(&q, NULL));
    prox_risk_summarize((const ProxExposureWindow *)windows->data, windows->len, &q, d + 12 * 3600,
                        &s);
    g_assert_cmpint(s.level, ==, PROX_RISK_LEVEL_LOW);
    g_assert_false(s.has_high_risk_day);
    g_assert_cmpuint(s.days_with_low_risk, ==, 3);
    g_assert_cmpint(s.most_recent_low_risk_day, ==, d);
    prox_risk_summary_clear(&s);
    world_clear(&w);
}

/* Lookback of 14 days, today included: now = D + 05:00. A high window on D-13 counts, one
 * on D-14 does not. One day later, D-13 has fallen out too. With lookback_days 1 only
 * today counts. No windows: low, no days. */
static void test_lookback(void)
{
    ProxRiskParameters p;
    prox_risk_parameters_default(&p);
    ProxDiagnosisKey k = key_trl5();
    gint64 d = D0 + 20 * DAY;
    World w;
    world_init(&w);
    hear_minutes(&w, 0, &k, d - 14 * DAY + 20 * 3600, 3);
    hear_minutes(&w, 1, &k, d - 13 * DAY + 1 * 3600, 3);
    hear_minutes(&w, 2, &k, d + 1 * 3600, 3);
    g_autoptr(GArray) windows = build(&w, &p);
    g_assert_cmpuint(windows->len, ==, 3);
    const ProxExposureWindow *ws = (const ProxExposureWindow *)windows->data;

    ProxRiskSummary s;
    prox_risk_summarize(ws, 2, &p, d + 5 * 3600, &s);
    g_assert_cmpuint(s.n_days, ==, 1);
    g_assert_cmpint(s.days[0].day, ==, d - 13 * DAY);
    g_assert_cmpint(s.most_recent_high_risk_day, ==, d - 13 * DAY);
    g_assert_cmpuint(s.days_with_high_risk, ==, 1);
    prox_risk_summary_clear(&s);

    prox_risk_summarize(ws, 2, &p, d + DAY, &s);
    g_assert_cmpuint(s.n_days, ==, 0);
    g_assert_cmpint(s.level, ==, PROX_RISK_LEVEL_LOW);
    g_assert_false(s.has_high_risk_day);
    g_assert_false(s.has_low_risk_day);
    prox_risk_summary_clear(&s);

    ProxRiskParameters q = p;
    q.lookback_days = 1;
    prox_risk_summarize(ws, 3, &q, d + 23 * 3600, &s);
    g_assert_cmpuint(s.n_days, ==, 1);
    g_assert_cmpint(s.most_recent_high_risk_day, ==, d);
    prox_risk_summary_clear(&s);

    prox_risk_summarize(NULL, 0, &p, d, &s);
    g_assert_cmpuint(s.n_days, ==, 0);
    g_assert_cmpint(s.level, ==, PROX_RISK_LEVEL_LOW);
    prox_risk_summary_clear(&s);
    world_clear(&w);
}

/* ---- bad input ---- */

static void test_bad_scans(void)
{
    ProxRiskParameters p;
    prox_risk_parameters_default(&p);
    ProxDiagnosisKey k = key_trl5();
    World w;
    world_init(&w);
    hear(&w, 0, &k, D0, 300, 60);
    GArray *windows = NULL;
    g_autoptr(GError) error = NULL;

    /* The sighting's scan instance is not given. */
    g_assert_false(prox_risk_windows_from_matches((const ProxMatchedSighting *)w.matches->data, 1,
                                                  NULL, 0, PROX_CALIBRATION_LOW, &p, &windows,
                                                  &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull(strstr(error->message, "scan instance 1"));
    g_assert_null(windows);
    g_clear_error(&error);

    /* The same scan instance twice. */
    ProxScanInstance twice[2] = {g_array_index(w.scans, ProxScanInstance, 0),
                                 g_array_index(w.scans, ProxScanInstance, 0)};
    g_assert_false(prox_risk_windows_from_matches((const ProxMatchedSighting *)w.matches->data, 1,
                                                  twice, 2, PROX_CALIBRATION_LOW, &p, &windows,
                                                  &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_assert_null(windows);

    /* Nothing matched: no windows. */
    g_clear_error(&error);
    g_assert_true(prox_risk_windows_from_matches(NULL, 0, NULL, 0, PROX_CALIBRATION_LOW, &p,
                                                 &windows, &error));
    g_assert_cmpuint(windows->len, ==, 0);
    g_array_unref(windows);
    world_clear(&w);
}

/* ---- key files ---- */

static void test_keyfile_bad(void)
{
    static const struct {
        const char *text;
        int code;
        const char *key;
    } cases[] = {
        {"[risk]\nattenuation_thresholds_db=63;60;79\n", PROX_ERROR_INVALID_ARGUMENT,
         "attenuation_thresholds_db"},
        {"[risk]\nattenuation_thresholds_db=63;73\n", PROX_ERROR_MALFORMED,
         "attenuation_thresholds_db"},
        {"[risk]\nattenuation_weights=0.8;1.0;0.1234;0\n", PROX_ERROR_INVALID_ARGUMENT,
         "attenuation_weights"},
        {"[risk]\nattenuation_weights=0.8;-1;0.1;0\n", PROX_ERROR_INVALID_ARGUMENT,
         "attenuation_weights"},
        {"[risk]\nattenuation_weights=0.8;one;0.1;0\n", PROX_ERROR_MALFORMED,
         "attenuation_weights"},
        {"[risk]\nseconds_since_last_scan_cap=0\n", PROX_ERROR_INVALID_ARGUMENT,
         "seconds_since_last_scan_cap"},
        {"[risk]\nwindow_max_seconds=abc\n", PROX_ERROR_MALFORMED, "window_max_seconds"},
        {"[risk]\nwindow_max_seconds=7200\n", PROX_ERROR_INVALID_ARGUMENT, "window_max_seconds"},
        {"[risk]\nfilter_min_minutes=-1\n", PROX_ERROR_INVALID_ARGUMENT, "filter_min_minutes"},
        {"[risk]\ndays_since_onset_to_infectiousness=1;2;1\n", PROX_ERROR_MALFORMED,
         "days_since_onset_to_infectiousness"},
        {"[risk]\ndays_since_onset_to_infectiousness=0;0;0;0;0;0;0;0;0;0;0;0;0;0;3;0;0;0;0;0;"
         "0;0;0;0;0;0;0;0;0\n",
         PROX_ERROR_INVALID_ARGUMENT, "days_since_onset_to_infectiousness"},
        {"[risk]\ninfectiousness_when_days_since_onset_missing=5\n", PROX_ERROR_INVALID_ARGUMENT,
         "infectiousness_when_days_since_onset_missing"},
        {"[risk]\nreport_type_when_missing=5\n", PROX_ERROR_INVALID_ARGUMENT,
         "report_type_when_missing"},
        {"[risk]\nreport_type_offsets=7;4;2;0\n", PROX_ERROR_INVALID_ARGUMENT,
         "report_type_offsets"},
        {"[risk]\ninfectiousness_offsets=0;2\n", PROX_ERROR_INVALID_ARGUMENT,
         "infectiousness_offsets"},
        {"[risk]\ndrop_transmission_risk_levels=1;9\n", PROX_ERROR_INVALID_ARGUMENT,
         "drop_transmission_risk_levels"},
        {"[risk]\ntransmission_risk_values=0.2;0.4;0.6;0.8;1;1.2;1.4\n", PROX_ERROR_MALFORMED,
         "transmission_risk_values"},
        {"[risk]\nhigh_risk_minutes_per_day=0\n", PROX_ERROR_INVALID_ARGUMENT,
         "high_risk_minutes_per_day"},
        {"[risk]\nhigh_risk_minutes_per_window=nan\n", PROX_ERROR_INVALID_ARGUMENT,
         "high_risk_minutes_per_window"},
        {"[risk]\nlookback_days=15\n", PROX_ERROR_INVALID_ARGUMENT, "lookback_days"},
        {"[risk]\nhigh_risk_minutes=13\n", PROX_ERROR_MALFORMED, "high_risk_minutes"},
        {"[other]\nlookback_days=14\n", PROX_ERROR_NOT_FOUND, "[risk]"},
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(GError) error = NULL;
        g_assert_true(g_key_file_load_from_data(kf, cases[i].text, -1, G_KEY_FILE_NONE, NULL));
        ProxRiskParameters p, before;
        prox_risk_parameters_default(&p);
        p.lookback_days = 7; /* untouched on failure */
        before = p;
        g_test_message("case %s", cases[i].text);
        g_assert_false(prox_risk_parameters_load_keyfile(kf, "risk", &p, &error));
        g_assert_error(error, PROX_ERROR, cases[i].code);
        g_assert_nonnull(strstr(error->message, cases[i].key));
        g_assert_true(prox_risk_parameters_equal(&p, &before));
    }
}

static void roundtrip(const ProxRiskParameters *p)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    prox_risk_parameters_to_keyfile(p, kf, "risk");
    g_autofree char *text = g_key_file_to_data(kf, NULL, NULL);
    g_autoptr(GKeyFile) again = g_key_file_new();
    g_autoptr(GError) error = NULL;
    g_assert_true(g_key_file_load_from_data(again, text, -1, G_KEY_FILE_KEEP_COMMENTS, &error));
    g_assert_no_error(error);
    ProxRiskParameters q;
    g_assert_true(prox_risk_parameters_load_keyfile(again, "risk", &q, &error));
    g_assert_no_error(error);
    g_assert_true(prox_risk_parameters_equal(p, &q));
}

static void test_keyfile_roundtrip(void)
{
    ProxRiskParameters p;
    prox_risk_parameters_default(&p);
    roundtrip(&p);

    /* The default file reads like a config file. */
    g_autoptr(GKeyFile) kf = g_key_file_new();
    prox_risk_parameters_to_keyfile(&p, kf, "risk");
    g_autofree char *text = g_key_file_to_data(kf, NULL, NULL);
    g_assert_nonnull(strstr(text, "attenuation_thresholds_db=63;73;79;"));
    g_assert_nonnull(strstr(text, "attenuation_weights=0.8;1;0.1;0;"));
    g_assert_nonnull(strstr(text, "drop_transmission_risk_levels=1;2;"));
    g_assert_nonnull(strstr(text, "transmission_risk_values=0.2;0.4;0.6;0.8;1;1.2;1.4;1.6;"));
    g_assert_nonnull(strstr(text, "high_risk_minutes_per_day=13\n"));

    ProxRiskParameters q = p;
    q.window_max_seconds = 900;
    q.attenuation_thresholds_db[0] = 55;
    q.attenuation_thresholds_db[1] = 63;
    q.attenuation_thresholds_db[2] = 73;
    q.attenuation_weights[0] = 1.0;
    q.attenuation_weights[1] = 0.5;
    q.attenuation_weights[2] = 0.125;
    q.seconds_since_last_scan_cap = 240;
    q.filter_attenuation_db = 73;
    q.filter_min_minutes = 10;
    q.days_since_onset_to_infectiousness[0] = PROX_INFECTIOUSNESS_HIGH;
    q.infectiousness_when_days_since_onset_missing = PROX_INFECTIOUSNESS_NONE;
    q.report_type_when_missing = PROX_REPORT_SELF_REPORT;
    q.report_type_offsets[0] = 5;
    q.drop_transmission_risk_levels = 0;
    q.transmission_risk_values[7] = 2.5;
    q.high_risk_minutes_per_window = 15.5;
    q.high_risk_minutes_per_day = 15.25;
    q.lookback_days = 10;
    g_assert_true(prox_risk_parameters_validate(&q, NULL));
    g_assert_false(prox_risk_parameters_equal(&p, &q));
    roundtrip(&q);

    /* An empty group is the defaults. */
    g_autoptr(GKeyFile) empty = g_key_file_new();
    g_assert_true(g_key_file_load_from_data(empty, "[risk]\n", -1, G_KEY_FILE_NONE, NULL));
    ProxRiskParameters r;
    memset(&r, 0, sizeof r);
    g_assert_true(prox_risk_parameters_load_keyfile(empty, "risk", &r, NULL));
    g_assert_true(prox_risk_parameters_equal(&p, &r));
}

/* tests/data/risk/cwa-encoded.conf decodes keys the way CWA's app does for its server's
 * encoding (trl-to-dsos / trl-to-rt): TRL 8 = (confirmed test, DSOS 2) -> 6 + 2;
 * TRL 5 = (clinical diagnosis, DSOS 1) -> 4 + 1; TRL 3 = (self report, DSOS 1) -> 2 + 1;
 * TRL 1 = (recursive, DSOS 1) -> 0 + 1, dropped. No DSOS -> infectiousness none. */
static void test_keyfile_cwa_encoded(void)
{
    const char *dir = g_getenv("PROX_TESTDATA");
    g_autofree char *path =
        dir ? g_build_filename(dir, "risk", "cwa-encoded.conf", NULL)
            : g_test_build_filename(G_TEST_DIST, "data", "risk", "cwa-encoded.conf", NULL);
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) error = NULL;
    g_assert_true(g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &error));
    g_assert_no_error(error);
    ProxRiskParameters p;
    g_assert_true(prox_risk_parameters_load_keyfile(kf, "risk", &p, &error));
    g_assert_no_error(error);

    static const struct {
        ProxReportType type;
        int32_t dsos;
        int32_t trl;
    } cases[] = {
        {PROX_REPORT_CONFIRMED_TEST, 2, 8},
        {PROX_REPORT_CONFIRMED_TEST, 1, 7},
        {PROX_REPORT_CONFIRMED_CLINICAL_DIAGNOSIS, 1, 5},
        {PROX_REPORT_SELF_REPORT, 1, 3},
        {PROX_REPORT_RECURSIVE, 1, 1},
        {PROX_REPORT_CONFIRMED_TEST, 0, 0},
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        ProxDiagnosisKey k = make_key(cases[i].type, TRUE, cases[i].dsos);
        g_assert_cmpint(prox_risk_transmission_risk_level(&p, cases[i].type,
                                                          prox_risk_key_infectiousness(&p, &k)),
                        ==, cases[i].trl);
    }
    ProxDiagnosisKey none = make_key(PROX_REPORT_CONFIRMED_TEST, FALSE, 0);
    g_assert_cmpint(prox_risk_key_infectiousness(&p, &none), ==, PROX_INFECTIOUSNESS_NONE);
    g_assert_true(p.drop_transmission_risk_levels & (1u << 1));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/risk/defaults", test_defaults);
    g_test_add_func("/risk/threshold-13", test_threshold);
    g_test_add_func("/risk/bucket-edges", test_bucket_edges);
    g_test_add_func("/risk/min-minutes", test_min_minutes);
    g_test_add_func("/risk/window-split", test_window_split);
    g_test_add_func("/risk/midnight-split", test_midnight_split);
    g_test_add_func("/risk/rpi-tolerance", test_rpi_tolerance);
    g_test_add_func("/risk/attenuation-clamp", test_attenuation_clamp);
    g_test_add_func("/risk/unknown-rssi", test_unknown_rssi);
    g_test_add_func("/risk/merge-same-scan", test_merge_same_scan);
    g_test_add_func("/risk/trl", test_trl);
    g_test_add_func("/risk/summary-multiday", test_summary_multiday);
    g_test_add_func("/risk/lookback", test_lookback);
    g_test_add_func("/risk/bad-scans", test_bad_scans);
    g_test_add_func("/risk/keyfile-bad", test_keyfile_bad);
    g_test_add_func("/risk/keyfile-roundtrip", test_keyfile_roundtrip);
    g_test_add_func("/risk/keyfile-cwa-encoded", test_keyfile_cwa_encoded);
    return g_test_run();
}
