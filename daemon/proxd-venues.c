/* proxd-venues.c - venue and same-vehicle matching on the device, their D-Bus forms, and the
 * opt-in venue count upload (see the header for when matching runs). */
#define G_LOG_DOMAIN "proxd-venues"

#include "proxd-venues.h"

#include "prox-risk.h"

#include "proxd-http.h"

#include <json-glib/json-glib.h>
#include <string.h>

#define COUNT_NAME "venue-count" /* beside the [Report] URL's last path segment */
#define COUNT_TIMEOUT 30         /* s */

static guint or_default(guint minutes)
{
    return minutes != 0 ? minutes : PROX_VENUE_DEFAULT_MIN_MINUTES;
}

/* When this device reported a positive test (0: never). Warnings about the time before it
 * are the person's own visits and rides, or moot for a confirmed case: not alerted. */
static gboolean load_reported_at(ProxStore *store, gint64 *reported_at, GError **error)
{
    g_autofree char *value = NULL;
    *reported_at = 0;
    if (!prox_store_get_setting(store, PROXD_VENUES_REPORTED_AT_KEY, &value, error))
        return FALSE;
    if (value != NULL)
        *reported_at = g_ascii_strtoll(value, NULL, 10);
    return TRUE;
}

static gboolean save_all(ProxStore *store, GArray *found, GArray *new_exposures, GError **error)
{
    gint64 reported_at = 0;
    if (!load_reported_at(store, &reported_at, error))
        return FALSE;
    for (guint i = 0; i < found->len; i++) {
        ProxVenueExposure *e = &g_array_index(found, ProxVenueExposure, i);
        gboolean is_new = FALSE;
        if (e->end <= reported_at) {
            g_debug("%s exposure before our own positive report: not alerted",
                    proxd_venue_exposure_kind_to_string(e->kind));
            continue;
        }
        if (!prox_store_save_venue_exposure(store, e, &is_new, error))
            return FALSE;
        if (is_new) {
            g_array_append_val(new_exposures, *e);
            g_debug("new %s exposure: %u minutes from %" G_GINT64_FORMAT,
                    proxd_venue_exposure_kind_to_string(e->kind), e->minutes, e->start);
        }
    }
    return TRUE;
}

static gboolean match_checkins(ProxStore *store, const ProxdVenueOptions *options, gint64 now,
                               GArray *new_exposures, GError **error)
{
    g_autoptr(GArray) warnings = NULL;
    g_autoptr(GArray) ids = NULL;
    if (!prox_store_load_venue_warnings(store, 0, &warnings, &ids, error))
        return FALSE;
    /* Only the venue kind; same-vehicle warnings are not about check-ins. */
    g_autoptr(GArray) venue = g_array_new(FALSE, FALSE, sizeof(ProxVenueWarning));
    g_autoptr(GArray) venue_ids = g_array_new(FALSE, FALSE, sizeof(gint64));
    for (guint i = 0; i < warnings->len; i++) {
        const ProxVenueWarning *w = &g_array_index(warnings, ProxVenueWarning, i);
        if (w->kind != PROX_VENUE_WARNING_VENUE)
            continue;
        g_array_append_val(venue, *w);
        g_array_append_val(venue_ids, g_array_index(ids, gint64, i));
    }
    if (venue->len == 0)
        return TRUE;
    g_autoptr(GArray) checkins = NULL;
    if (!prox_store_load_checkins(store, 0, &checkins, error))
        return FALSE;
    if (checkins->len == 0)
        return TRUE;
    g_autoptr(GArray) found = g_array_new(FALSE, FALSE, sizeof(ProxVenueExposure));
    prox_venue_match_checkins((const ProxCheckIn *)(void *)checkins->data, checkins->len,
                              (const ProxVenueWarning *)(void *)venue->data,
                              (const gint64 *)(void *)venue_ids->data, venue->len,
                              or_default(options->min_minutes), now, found);
    return save_all(store, found, new_exposures, error);
}

static gboolean read_vehicle_batch(ProxStore *store, gint64 *batch, GError **error)
{
    g_autofree char *value = NULL;
    *batch = 0;
    if (!prox_store_get_sync_state(store, PROXD_VENUES_VEHICLE_BATCH_KEY, &value, error))
        return FALSE;
    if (value != NULL && !g_ascii_string_to_signed(value, 10, 0, G_MAXINT64, batch, NULL))
        *batch = 0; /* unreadable: match everything again (idempotent) */
    return TRUE;
}

static gboolean match_vehicles(ProxStore *store, const ProxdVenueOptions *options, gint64 now,
                               GArray *new_exposures, GError **error)
{
    gint64 since_batch = 0, last_batch = 0;
    if (!read_vehicle_batch(store, &since_batch, error) ||
        !prox_store_last_batch_id(store, &last_batch, error))
        return FALSE;
    if (last_batch <= since_batch)
        return TRUE;
    g_autoptr(GArray) warnings = NULL;
    g_autoptr(GArray) ids = NULL;
    if (!prox_store_load_venue_warnings(store, since_batch, &warnings, &ids, error))
        return FALSE;
    g_autoptr(GArray) found = g_array_new(FALSE, FALSE, sizeof(ProxVenueExposure));
    for (guint i = 0; i < warnings->len; i++) {
        const ProxVenueWarning *w = &g_array_index(warnings, ProxVenueWarning, i);
        if (w->kind != PROX_VENUE_WARNING_SAME_VEHICLE)
            continue;
        g_autoptr(GArray) sightings = NULL;
        g_autoptr(GArray) scans = NULL;
        /* The matcher keeps only sightings inside the window; a margin of one interval on
         * each side lets it see the ones that straddle an edge. */
        if (!prox_store_load_sightings(store, w->start - PROX_INTERVAL_SECONDS,
                                       w->end + PROX_INTERVAL_SECONDS, &sightings, error) ||
            !prox_store_load_scan_instances(store, w->start - PROXD_VENUES_SCAN_LOOKBEHIND,
                                            w->end + 1, &scans, error))
            return FALSE;
        if (sightings->len == 0)
            continue;
        ProxVenueExposure e = {0};
        if (prox_venue_match_same_vehicle(
                w, g_array_index(ids, gint64, i), (const ProxSighting *)(void *)sightings->data,
                sightings->len, (const ProxScanInstance *)(void *)scans->data, scans->len,
                or_default(options->same_vehicle_minutes), now, &e))
            g_array_append_val(found, e);
    }
    if (!save_all(store, found, new_exposures, error))
        return FALSE;
    char buf[32];
    g_snprintf(buf, sizeof buf, "%" G_GINT64_FORMAT, last_batch);
    return prox_store_set_sync_state(store, PROXD_VENUES_VEHICLE_BATCH_KEY, buf, error);
}

gboolean proxd_venues_match(ProxStore *store, const ProxdVenueOptions *options,
                            ProxdVenuesMatchFlags flags, gint64 now, GArray *new_exposures,
                            GError **error)
{
    g_return_val_if_fail(store != NULL && options != NULL && new_exposures != NULL, FALSE);
    if ((flags & PROXD_VENUES_MATCH_VEHICLES) != 0 &&
        !match_vehicles(store, options, now, new_exposures, error))
        return FALSE;
    if ((flags & PROXD_VENUES_MATCH_CHECKINS) != 0 &&
        !match_checkins(store, options, now, new_exposures, error))
        return FALSE;
    return TRUE;
}

gboolean proxd_venues_count_exposures(ProxStore *store, gint64 now, guint days, guint *count,
                                      GError **error)
{
    gint64 since_day = prox_risk_day_of(now) - (gint64)(MAX(days, 1) - 1) * 86400;
    g_autoptr(GArray) exposures = NULL;
    if (!prox_store_load_venue_exposures(store, since_day, &exposures, error))
        return FALSE;
    *count = exposures->len;
    return TRUE;
}

/* ---- D-Bus forms ---- */

const char *proxd_venue_exposure_kind_to_string(ProxVenueWarningKind kind)
{
    return kind == PROX_VENUE_WARNING_SAME_VEHICLE ? "same-vehicle" : "venue";
}

static void insert_exposure(GVariantDict *dict, const ProxVenueExposure *e)
{
    g_variant_dict_insert(dict, "kind", "s", proxd_venue_exposure_kind_to_string(e->kind));
    g_variant_dict_insert(dict, "day", "t", (guint64)MAX(e->day, 0));
    g_variant_dict_insert(dict, "start", "t", (guint64)MAX(e->start, 0));
    g_variant_dict_insert(dict, "end", "t", (guint64)MAX(e->end, 0));
    g_variant_dict_insert(dict, "minutes", "u", e->minutes);
}

GVariant *proxd_venue_exposure_to_signal(const ProxVenueExposure *exposure)
{
    GVariantDict dict;
    g_variant_dict_init(&dict, NULL);
    insert_exposure(&dict, exposure);
    return g_variant_dict_end(&dict);
}

GVariant *proxd_venue_exposure_to_variant(const ProxVenueExposure *exposure)
{
    GVariantDict dict;
    g_variant_dict_init(&dict, NULL);
    insert_exposure(&dict, exposure);
    g_variant_dict_insert(&dict, "id", "x", exposure->id);
    g_variant_dict_insert(&dict, "transmission-risk", "i", exposure->transmission_risk_level);
    g_variant_dict_insert(&dict, "detected-at", "t", (guint64)MAX(exposure->detected_at, 0));
    return g_variant_dict_end(&dict);
}

GVariant *proxd_checkin_to_variant(const ProxCheckIn *checkin)
{
    char prefix[PROXD_VENUES_LOCATION_PREFIX_HEX + 1];
    for (guint i = 0; i < PROXD_VENUES_LOCATION_PREFIX_HEX / 2; i++)
        g_snprintf(prefix + 2 * i, 3, "%02x", checkin->location_id[i]);
    GVariantDict dict;
    g_variant_dict_init(&dict, NULL);
    g_variant_dict_insert(&dict, "id", "x", checkin->id);
    g_variant_dict_insert(&dict, "arrived", "t", (guint64)MAX(checkin->arrived, 0));
    g_variant_dict_insert(&dict, "departed", "t", (guint64)MAX(checkin->departed, 0));
    g_variant_dict_insert(&dict, "planned-departure", "t",
                          (guint64)MAX(checkin->planned_departure, 0));
    g_variant_dict_insert(&dict, "location", "s", prefix);
    return g_variant_dict_end(&dict);
}

/* ---- opt-in venue counts ---- */

char *proxd_venues_count_url(const char *report_url, GError **error)
{
    g_autoptr(GUri) uri = g_uri_parse(report_url != NULL ? report_url : "", G_URI_FLAGS_NONE, NULL);
    const char *scheme = uri != NULL ? g_uri_get_scheme(uri) : NULL;
    const char *host = uri != NULL ? g_uri_get_host(uri) : NULL;
    if (scheme == NULL || host == NULL ||
        (g_ascii_strcasecmp(scheme, "https") != 0 && g_ascii_strcasecmp(scheme, "http") != 0)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "venue counts need an https [Report] URL");
        return NULL;
    }
    if (g_ascii_strcasecmp(scheme, "http") == 0) {
        if (!proxd_http_host_is_loopback(host)) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                        "venue counts are not sent over plain http to %s: use https", host);
            return NULL;
        }
    }
    /* The count endpoint sits beside the upload one, so a key server behind a path prefix
     * (https://host/prox/v1/publish) gets its counts at /prox/v1/venue-count. */
    const char *path = g_uri_get_path(uri);
    const char *slash = strrchr(path, '/');
    g_autofree char *dir = slash != NULL ? g_strndup(path, (gsize)(slash - path)) : g_strdup("");
    g_autofree char *count_path = g_strconcat(dir, "/" COUNT_NAME, NULL);
    g_autoptr(GUri) count = g_uri_build(G_URI_FLAGS_NONE, scheme, NULL, host, g_uri_get_port(uri),
                                        count_path, NULL, NULL);
    return g_uri_to_string(count);
}

char *proxd_venues_count_body(const uint8_t location_hash[PROX_LOCATION_HASH_LEN], gint64 hour)
{
    char hex[2 * PROX_LOCATION_HASH_LEN + 1];
    for (guint i = 0; i < PROX_LOCATION_HASH_LEN; i++)
        g_snprintf(hex + 2 * i, 3, "%02x", location_hash[i]);
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "locationHash");
    json_builder_add_string_value(b, hex);
    json_builder_set_member_name(b, "hour");
    json_builder_add_int_value(b, hour - (hour % 3600 + 3600) % 3600);
    json_builder_end_object(b);
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    g_autoptr(JsonGenerator) gen = json_generator_new();
    json_generator_set_root(gen, root);
    return json_generator_to_data(gen, NULL);
}

typedef struct {
    char *url;
    char *body;
} CountData;

static void count_data_free(gpointer p)
{
    CountData *d = p;
    g_free(d->url);
    g_free(d->body);
    g_free(d);
}

static size_t discard_answer(char *data, size_t size, size_t n, void *user_data)
{
    return size * n;
}

static void count_thread(GTask *task, gpointer source, gpointer task_data,
                         GCancellable *cancellable)
{
    CountData *d = task_data;
    CURL *c = curl_easy_init();
    if (c == NULL) {
        g_task_return_new_error(task, G_IO_ERROR, G_IO_ERROR_FAILED, "libcurl failed to start");
        return;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers =
        proxd_http_setup_json_post(c, d->url, d->body, strlen(d->body), 0, COUNT_TIMEOUT, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_answer);
    long status = 0;
    CURLcode rc = proxd_http_perform(c, headers, &status);
    if (rc != CURLE_OK)
        g_task_return_new_error(task, G_IO_ERROR, G_IO_ERROR_FAILED, "%s",
                                errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
    else if (status < 200 || status > 299)
        g_task_return_new_error(task, G_IO_ERROR, G_IO_ERROR_FAILED, "HTTP status %ld", status);
    else
        g_task_return_boolean(task, TRUE);
}

static void on_count_sent(GObject *source, GAsyncResult *res, gpointer user_data)
{
    g_autoptr(GError) error = NULL;
    if (!g_task_propagate_boolean(G_TASK(res), &error))
        g_warning("venue count not sent: %s", error->message);
    else
        g_debug("venue count sent");
}

void proxd_venues_share_count_async(const char *count_url,
                                    const uint8_t location_id[PROX_LOCATION_ID_LEN], gint64 arrived,
                                    GCancellable *cancellable, GAsyncReadyCallback callback,
                                    gpointer user_data)
{
    proxd_http_global_init();
    uint8_t hash[PROX_LOCATION_HASH_LEN];
    prox_venue_location_hash(location_id, hash);
    CountData *d = g_new0(CountData, 1);
    d->url = g_strdup(count_url);
    d->body = proxd_venues_count_body(hash, arrived);
    GTask *task =
        g_task_new(NULL, cancellable, callback != NULL ? callback : on_count_sent, user_data);
    g_task_set_source_tag(task, proxd_venues_share_count_async);
    g_task_set_task_data(task, d, count_data_free);
    g_task_run_in_thread(task, count_thread);
    g_object_unref(task);
}
