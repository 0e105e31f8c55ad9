/* prox-detect.c - exposure detection on a store: sightings x diagnosis keys -> windows ->
 * summary, with the bookkeeping that makes "the risk rose" fire once. */
#define G_LOG_DOMAIN "prox-detect"

#include "prox-detect.h"

#include "prox-match.h"

#include <string.h>

/* Keys per matcher feed: big enough to keep every thread busy, small enough to bound the
 * memory of one chunk (~3 MB). */
#define DETECT_CHUNK 65536

typedef struct {
    ProxRiskParameters params;
    ProxCalibrationConfidence confidence;
    guint n_threads;
    const ProxCryptoImpl *impl;
    guint sighting_days;
} Resolved;

static gboolean resolve(const ProxDetectOptions *opts, Resolved *r, GError **error)
{
    *r = (Resolved){0};
    if (opts != NULL && opts->params != NULL)
        r->params = *opts->params;
    else
        prox_risk_parameters_default(&r->params);
    if (!prox_risk_parameters_validate(&r->params, error))
        return FALSE;
    r->confidence = opts != NULL ? opts->confidence : PROX_CALIBRATION_LOW;
    if (r->confidence < PROX_CALIBRATION_LOWEST || r->confidence > PROX_CALIBRATION_HIGH) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "Calibration confidence %d is outside 0..3", (int)r->confidence);
        return FALSE;
    }
    r->n_threads = opts != NULL ? opts->n_threads : 0;
    r->impl = opts != NULL ? opts->impl : NULL;
    guint days = opts != NULL && opts->sighting_days > 0 ? opts->sighting_days
                                                         : PROX_DETECT_DEFAULT_SIGHTING_DAYS;
    /* The summary looks back lookback_days: never match fewer days than it counts. */
    r->sighting_days = MAX(days, (guint)r->params.lookback_days);
    return TRUE;
}

static char *fingerprint_resolved(const Resolved *r)
{
    /* The key file text is the canonical form of the parameters (prox-risk round-trips
     * it exactly); confidence and days change the windows too. Threads and crypto path
     * do not change results and are left out. */
    g_autoptr(GKeyFile) kf = g_key_file_new();
    prox_risk_parameters_to_keyfile(&r->params, kf, "Risk");
    g_key_file_set_integer(kf, "Detect", "confidence", (int)r->confidence);
    g_key_file_set_uint64(kf, "Detect", "sighting_days", r->sighting_days);
    gsize len = 0;
    g_autofree char *text = g_key_file_to_data(kf, &len, NULL);
    return g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)text, len);
}

char *prox_detect_fingerprint(const ProxDetectOptions *opts)
{
    Resolved r;
    if (!resolve(opts, &r, NULL))
        return NULL;
    return fingerprint_resolved(&r);
}

static gboolean get_int_setting(ProxStore *store, const char *key, gboolean *has, gint64 *value,
                                GError **error)
{
    g_autofree char *s = NULL;
    *has = FALSE;
    *value = 0;
    if (!prox_store_get_setting(store, key, &s, error))
        return FALSE;
    if (s != NULL && g_ascii_string_to_signed(s, 10, G_MININT64, G_MAXINT64, value, NULL))
        *has = TRUE;
    return TRUE;
}

static gboolean set_int_setting(ProxStore *store, const char *key, gint64 value, GError **error)
{
    char buf[32];
    g_snprintf(buf, sizeof buf, "%" G_GINT64_FORMAT, value);
    return prox_store_set_setting(store, key, buf, error);
}

gboolean prox_detect_needed(ProxStore *store, const ProxDetectOptions *opts, gboolean *needed,
                            GError **error)
{
    g_return_val_if_fail(store != NULL && needed != NULL, FALSE);
    Resolved r;
    if (!resolve(opts, &r, error))
        return FALSE;
    gint64 last_batch = 0, done_batch = 0;
    gboolean has_done = FALSE;
    g_autofree char *stored_fp = NULL;
    if (!prox_store_last_batch_id(store, &last_batch, error) ||
        !get_int_setting(store, PROX_DETECT_SETTING_LAST_BATCH, &has_done, &done_batch, error) ||
        !prox_store_get_setting(store, PROX_DETECT_SETTING_PARAMS, &stored_fp, error))
        return FALSE;
    g_autofree char *fp = fingerprint_resolved(&r);
    *needed =
        !has_done || stored_fp == NULL || strcmp(fp, stored_fp) != 0 || last_batch > done_batch;
    return TRUE;
}

/* ---- matching ---- */

typedef struct {
    ProxMatcher *matcher;
    GArray *key_ids; /* gint64, indexed by key_index */
} Feed;

static gboolean on_key_chunk(const gint64 *key_ids, const ProxDiagnosisKey *keys, guint n_keys,
                             gpointer user_data)
{
    Feed *feed = user_data;
    guint first = feed->key_ids->len;
    g_array_append_vals(feed->key_ids, key_ids, n_keys);
    prox_matcher_feed(feed->matcher, keys, n_keys, first);
    return TRUE;
}

/* ---- windows per key ---- */

static gboolean window_equal(const ProxExposureWindow *a, const ProxExposureWindow *b)
{
    if (a->day != b->day || a->start != b->start || a->end != b->end ||
        a->report_type != b->report_type || a->infectiousness != b->infectiousness ||
        a->transmission_risk_level != b->transmission_risk_level ||
        a->calibration_confidence != b->calibration_confidence ||
        a->weighted_minutes != b->weighted_minutes || a->risk != b->risk)
        return FALSE;
    guint na = a->scans != NULL ? a->scans->len : 0;
    guint nb = b->scans != NULL ? b->scans->len : 0;
    if (na != nb)
        return FALSE;
    for (guint i = 0; i < na; i++) {
        const ProxWindowScan *sa = &g_array_index(a->scans, ProxWindowScan, i);
        const ProxWindowScan *sb = &g_array_index(b->scans, ProxWindowScan, i);
        if (sa->min_attenuation != sb->min_attenuation ||
            sa->typical_attenuation != sb->typical_attenuation ||
            sa->seconds_since_last_scan != sb->seconds_since_last_scan)
            return FALSE;
    }
    return TRUE;
}

static int window_ptr_cmp(gconstpointer pa, gconstpointer pb)
{
    const ProxExposureWindow *a = *(const ProxExposureWindow *const *)pa;
    const ProxExposureWindow *b = *(const ProxExposureWindow *const *)pb;
    if (a->key_id != b->key_id)
        return a->key_id < b->key_id ? -1 : 1;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    if (a->end != b->end)
        return a->end < b->end ? -1 : 1;
    return 0;
}

/* Pointers to the windows of `array`, sorted by (key_id, start, end). */
static GPtrArray *sorted_ptrs(GArray *array)
{
    GPtrArray *ptrs = g_ptr_array_sized_new(array->len);
    for (guint i = 0; i < array->len; i++)
        g_ptr_array_add(ptrs, &g_array_index(array, ProxExposureWindow, i));
    g_ptr_array_sort(ptrs, window_ptr_cmp);
    return ptrs;
}

/* [*pos, end) = the run of windows of one key in sorted `ptrs` starting at *pos. */
static guint key_run_end(GPtrArray *ptrs, guint pos)
{
    gint64 key = ((ProxExposureWindow *)ptrs->pdata[pos])->key_id;
    guint end = pos + 1;
    while (end < ptrs->len && ((ProxExposureWindow *)ptrs->pdata[end])->key_id == key)
        end++;
    return end;
}

/* Saves, for key `key_id`, its stored windows before `range_start` (which this run did
 * not recompute) followed by `fresh`. */
static gboolean save_key(ProxStore *store, gint64 key_id, GPtrArray *stored, guint s_begin,
                         guint s_end, gint64 range_start, GPtrArray *fresh, guint f_begin,
                         guint f_end, GError **error)
{
    g_autoptr(GArray) out = g_array_new(FALSE, FALSE, sizeof(ProxExposureWindow));
    for (guint i = s_begin; i < s_end; i++) {
        const ProxExposureWindow *w = stored->pdata[i];
        if (w->day < range_start)
            g_array_append_val(out, *w); /* shallow: scans stay owned by `stored` */
    }
    for (guint i = f_begin; i < f_end; i++)
        g_array_append_val(out, *(const ProxExposureWindow *)fresh->pdata[i]);
    return prox_store_save_exposure_windows(
        store, key_id, (const ProxExposureWindow *)(void *)out->data, out->len, error);
}

/* Brings the stored windows of every key in line with `fresh` (this run's windows of days
 * >= range_start): rewrites keys whose windows differ, clears keys that no longer match. */
static gboolean reconcile_windows(ProxStore *store, GArray *fresh_windows, gint64 range_start,
                                  guint *rewritten, GError **error)
{
    g_autoptr(GArray) stored_windows = NULL;
    if (!prox_store_load_exposure_windows(store, G_MININT64, &stored_windows, error))
        return FALSE;
    g_autoptr(GPtrArray) stored = sorted_ptrs(stored_windows);
    g_autoptr(GPtrArray) fresh = sorted_ptrs(fresh_windows);
    guint si = 0, fi = 0;
    *rewritten = 0;
    while (si < stored->len || fi < fresh->len) {
        gint64 skey =
            si < stored->len ? ((ProxExposureWindow *)stored->pdata[si])->key_id : G_MAXINT64;
        gint64 fkey =
            fi < fresh->len ? ((ProxExposureWindow *)fresh->pdata[fi])->key_id : G_MAXINT64;
        gint64 key = MIN(skey, fkey);
        guint s_end = skey == key ? key_run_end(stored, si) : si;
        guint f_end = fkey == key ? key_run_end(fresh, fi) : fi;

        /* Compare the stored windows of the recomputed range with the fresh ones. */
        gboolean same = TRUE;
        guint f = fi;
        for (guint s = si; s < s_end && same; s++) {
            const ProxExposureWindow *w = stored->pdata[s];
            if (w->day < range_start)
                continue;
            same = f < f_end && window_equal(w, fresh->pdata[f]);
            f++;
        }
        if (same && f != f_end)
            same = FALSE;
        if (!same) {
            if (!save_key(store, key, stored, si, s_end, range_start, fresh, fi, f_end, error))
                return FALSE;
            (*rewritten)++;
        }
        si = s_end;
        fi = f_end;
    }
    return TRUE;
}

/* ---- run ---- */

void prox_detect_result_clear(ProxDetectResult *result)
{
    if (result == NULL)
        return;
    prox_risk_summary_clear(&result->summary);
    *result = (ProxDetectResult){0};
}

static gboolean match_and_save(ProxStore *store, const Resolved *r, gint64 range_start,
                               ProxDetectResult *result, GError **error)
{
    g_autoptr(GArray) sightings = NULL;
    g_autoptr(GArray) scans = NULL;
    if (!prox_store_load_sightings(store, range_start, G_MAXINT64, &sightings, error))
        return FALSE;
    /* A sighting at the range's start may belong to a scan that began the day before. */
    if (!prox_store_load_scan_instances(store, range_start - PROX_SECONDS_PER_DAY, G_MAXINT64,
                                        &scans, error))
        return FALSE;
    result->sightings = sightings->len;
    result->scans = scans->len;
    if (!prox_store_last_batch_id(store, &result->last_batch_id, error))
        return FALSE;

    g_autoptr(GArray) windows = NULL;
    if (sightings->len > 0) {
        g_autoptr(ProxMatcher) matcher =
            prox_matcher_new((const ProxSighting *)(void *)sightings->data, sightings->len,
                             r->n_threads, r->impl, error);
        if (matcher == NULL)
            return FALSE;
        g_autoptr(GArray) key_ids = g_array_new(FALSE, FALSE, sizeof(gint64));
        Feed feed = {matcher, key_ids};
        if (!prox_store_foreach_diagnosis_key_chunk(store, 0, DETECT_CHUNK, on_key_chunk, &feed,
                                                    error))
            return FALSE;
        g_autoptr(GArray) matches = prox_matcher_finish(matcher);
        result->keys = key_ids->len;
        result->matched = matches->len;
        if (!prox_risk_windows_from_matches((const ProxMatchedSighting *)(void *)matches->data,
                                            matches->len,
                                            (const ProxScanInstance *)(void *)scans->data,
                                            scans->len, r->confidence, &r->params, &windows, error))
            return FALSE;
        guint last_index = G_MAXUINT;
        for (guint i = 0; i < windows->len; i++) {
            ProxExposureWindow *w = &g_array_index(windows, ProxExposureWindow, i);
            w->key_id = g_array_index(key_ids, gint64, w->key_index);
            if (w->key_index != last_index)
                result->keys_with_windows++;
            last_index = w->key_index;
        }
    } else {
        windows = g_array_new(FALSE, FALSE, sizeof(ProxExposureWindow));
        g_array_set_clear_func(windows, prox_exposure_window_clear);
    }
    result->windows = windows->len;
    return reconcile_windows(store, windows, range_start, &result->keys_rewritten, error);
}

static gboolean update_level(ProxStore *store, ProxDetectResult *result, GError **error)
{
    g_autofree char *level_s = NULL;
    gboolean has_day = FALSE;
    gint64 day = 0;
    if (!prox_store_get_setting(store, PROX_DETECT_SETTING_LEVEL, &level_s, error) ||
        !get_int_setting(store, PROX_DETECT_SETTING_HIGH_DAY, &has_day, &day, error))
        return FALSE;
    const ProxRiskSummary *s = &result->summary;
    result->has_previous = level_s != NULL;
    result->previous_level =
        g_strcmp0(level_s, "high") == 0 ? PROX_RISK_LEVEL_HIGH : PROX_RISK_LEVEL_LOW;
    result->level_rose = s->level == PROX_RISK_LEVEL_HIGH &&
                         (!result->has_previous || result->previous_level != PROX_RISK_LEVEL_HIGH);
    result->new_high_risk_day =
        result->level_rose ||
        (s->has_high_risk_day && (!has_day || s->most_recent_high_risk_day > day));

    const char *level = s->level == PROX_RISK_LEVEL_HIGH ? "high" : "low";
    if (g_strcmp0(level_s, level) != 0 &&
        !prox_store_set_setting(store, PROX_DETECT_SETTING_LEVEL, level, error))
        return FALSE;
    if (s->has_high_risk_day && (!has_day || s->most_recent_high_risk_day > day) &&
        !set_int_setting(store, PROX_DETECT_SETTING_HIGH_DAY, s->most_recent_high_risk_day, error))
        return FALSE;
    return TRUE;
}

gboolean prox_detect_run(ProxStore *store, const ProxDetectOptions *opts, gint64 now,
                         ProxDetectResult *result, GError **error)
{
    g_return_val_if_fail(store != NULL && result != NULL, FALSE);
    *result = (ProxDetectResult){0};
    Resolved r;
    if (!resolve(opts, &r, error))
        return FALSE;
    if (!prox_store_enforce_retention(store, now, error))
        return FALSE;

    /* Days [range_start, today]: sighting_days days, plus the one before them, which
     * retention (now - 14 days) only partly removed; older windows are left alone. */
    gint64 range_start = prox_risk_day_of(now) - (gint64)r.sighting_days * PROX_SECONDS_PER_DAY;
    if (!match_and_save(store, &r, range_start, result, error))
        return FALSE;

    g_autoptr(GArray) stored = NULL;
    if (!prox_store_load_exposure_windows(store, range_start, &stored, error))
        return FALSE;
    prox_risk_summarize((const ProxExposureWindow *)(void *)stored->data, stored->len, &r.params,
                        now, &result->summary);
    if (!update_level(store, result, error))
        return FALSE;

    /* Last: a run that failed before here is redone by the next prox_detect_needed(). */
    g_autofree char *fp = fingerprint_resolved(&r);
    if (!set_int_setting(store, PROX_DETECT_SETTING_LAST_BATCH, result->last_batch_id, error) ||
        !prox_store_set_setting(store, PROX_DETECT_SETTING_PARAMS, fp, error))
        return FALSE;
    g_debug("detection: %" G_GUINT64_FORMAT " keys x %" G_GUINT64_FORMAT
            " sightings, %u windows, %u keys rewritten, level %s",
            result->keys, result->sightings, result->windows, result->keys_rewritten,
            result->summary.level == PROX_RISK_LEVEL_HIGH ? "high" : "low");
    return TRUE;
}
