/* proxd-manager.c - org.proxd.Manager1: state, counts, risk, the BlueZ components, key-list
 * sync and reports, and venue check-ins (docs/venues.md §3, §5). */
#define G_LOG_DOMAIN "proxd-manager"

#include "proxd-manager.h"

#include "bluez-adapter-watch.h"
#include "bluez-advertiser.h"
#include "bluez-scanner.h"
#include "prox-risk.h"
#include "prox-venue.h"
#include "proxd-report.h"
#include "proxd-venues.h"

#include <sodium.h>

#define SECONDS_PER_HOUR 3600
#define MAX_SIGHTINGS_RETURNED 100000
#define DEFAULT_DAYS 14

struct _ProxdManager {
    ProxdDbusManager1Skeleton parent_instance;

    GDBusConnection *connection;
    ProxdConfig *config;
    ProxdClock *clock;
    ProxStore *store;

    BluezAdapterWatch *watch;
    BluezAdvertiser *advertiser;
    BluezScanner *scanner;

    ProxdSync *sync; /* NULL: no [Sync] URL */
    guint sync_id;   /* the next scheduled run */
    gboolean reporting;

    gboolean started;
    GArray *startup_exposures; /* ProxVenueExposure found by _load(), signalled by _start() */
    gboolean stopping;
    guint refresh_id;
    guint hourly_id;

    /* Venue check-ins: QR codes verify against the pinned authority keys ([Sync]
     * PinnedKeys); NULL with the reason when none could be loaded. */
    ProxExportKeyring *venue_keyring;
    char *venue_keyring_error;
    guint checkout_id; /* automatic checkout of the open check-in */
    GCancellable *cancellable;
};

static void proxd_manager_iface_init(ProxdDbusManager1Iface *iface);

G_DEFINE_TYPE_WITH_CODE(ProxdManager, proxd_manager, PROXD_DBUS_TYPE_MANAGER1_SKELETON,
                        G_IMPLEMENT_INTERFACE(PROXD_DBUS_TYPE_MANAGER1, proxd_manager_iface_init))

static ProxdDbusManager1 *as_iface(ProxdManager *self)
{
    return PROXD_DBUS_MANAGER1(self);
}

/* ---- State / StateReason / Adapter / Advertising ---- */

static void update_state(ProxdManager *self)
{
    ProxdDbusManager1 *iface = as_iface(self);
    const char *state;
    g_autofree char *reason = NULL;

    if (self->stopping) {
        state = "stopping";
        reason = g_strdup("proxd is shutting down");
    } else {
        BluezAdapterState adapter_state = bluez_adapter_watch_get_state(self->watch);
        const char *adv_reason = bluez_advertiser_get_reason(self->advertiser);
        state = bluez_adapter_state_to_string(adapter_state);
        if (adapter_state == BLUEZ_ADAPTER_STATE_USABLE && adv_reason != NULL)
            reason = g_strdup_printf("%s; not advertising: %s",
                                     bluez_adapter_watch_get_reason(self->watch), adv_reason);
        else
            reason = g_strdup(bluez_adapter_watch_get_reason(self->watch));
    }
    const char *name = bluez_adapter_watch_get_name(self->watch);

    /* Setters only emit PropertiesChanged for real changes. */
    proxd_dbus_manager1_set_state(iface, state);
    proxd_dbus_manager1_set_state_reason(iface, reason);
    proxd_dbus_manager1_set_adapter(iface, name != NULL ? name : "");
    proxd_dbus_manager1_set_advertising(iface, bluez_advertiser_get_advertising(self->advertiser));
    proxd_dbus_manager1_set_scanning(iface, bluez_scanner_get_scanning(self->scanner));
    proxd_dbus_manager1_set_current_rotation_ends(
        iface, (guint64)MAX(bluez_advertiser_get_rotation_ends(self->advertiser), 0));
}

static void on_component_changed(GObject *object, GParamSpec *pspec, gpointer user_data)
{
    update_state(user_data);
}

static void on_watch_changed(BluezAdapterWatch *watch, gpointer user_data)
{
    update_state(user_data);
}

/* ---- counts ---- */

static gint64 local_midnight(gint64 now)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local(now);
    if (dt == NULL)
        return now - now % 86400;
    g_autoptr(GDateTime) midnight =
        g_date_time_new_local(g_date_time_get_year(dt), g_date_time_get_month(dt),
                              g_date_time_get_day_of_month(dt), 0, 0, 0);
    return midnight != NULL ? g_date_time_to_unix(midnight) : now - now % 86400;
}

static gint64 last_sync(ProxdManager *self)
{
    g_autofree char *value = NULL;
    g_autoptr(GError) error = NULL;
    gint64 t = 0;
    if (!prox_store_get_sync_state(self->store, PROXD_SYNC_STATE_LAST_SYNC, &value, &error)) {
        g_warning("cannot read the last sync time: %s", error->message);
        return 0;
    }
    if (value != NULL && !g_ascii_string_to_signed(value, 10, 0, G_MAXINT64, &t, NULL))
        t = 0;
    return t;
}

void proxd_manager_refresh_counts(ProxdManager *self)
{
    g_return_if_fail(PROXD_IS_MANAGER(self));
    ProxdDbusManager1 *iface = as_iface(self);
    gint64 now = proxd_clock_now(self->clock);
    guint64 today = 0, days14 = 0;
    g_autoptr(GError) error = NULL;

    if (!prox_store_count_encounters(self->store, local_midnight(now), now + 1, &today, &error) ||
        !prox_store_count_encounters(self->store, now - 14 * 86400, now + 1, &days14, &error)) {
        g_warning("cannot count encounters: %s", error->message);
        return;
    }
    proxd_dbus_manager1_set_encounters_today(iface, (guint)MIN(today, G_MAXUINT));
    proxd_dbus_manager1_set_encounters14_days(iface, (guint)MIN(days14, G_MAXUINT));
    proxd_dbus_manager1_set_last_sync(iface, (guint64)last_sync(self));
}

/* ---- risk ---- */

static gboolean load_windows(ProxdManager *self, gint64 now, guint days, GArray **windows,
                             GError **error)
{
    gint64 since_day = prox_risk_day_of(now) - (gint64)(days - 1) * PROX_SECONDS_PER_DAY;
    return prox_store_load_exposure_windows(self->store, since_day, windows, error);
}

static GVariant *day_summary_to_variant(const ProxDailySummary *day)
{
    GVariantDict dict;
    g_variant_dict_init(&dict, NULL);
    g_variant_dict_insert(&dict, "day", "t", (guint64)day->day);
    g_variant_dict_insert(&dict, "level", "s", day->level == PROX_RISK_LEVEL_HIGH ? "high" : "low");
    g_variant_dict_insert(&dict, "windows", "u", day->n_windows);
    g_variant_dict_insert(&dict, "weighted-minutes", "d", day->weighted_minutes);
    g_variant_dict_insert(&dict, "normalized-minutes", "d", day->normalized_minutes);
    g_variant_dict_insert(&dict, "high-risk-encounters", "u", day->high_risk_encounters);
    g_variant_dict_insert(&dict, "low-risk-encounters", "u", day->low_risk_encounters);
    return g_variant_dict_end(&dict);
}

void proxd_manager_refresh_risk(ProxdManager *self)
{
    g_return_if_fail(PROXD_IS_MANAGER(self));
    const ProxdSettings *settings = proxd_config_get(self->config);
    gint64 now = proxd_clock_now(self->clock);
    g_autoptr(GArray) windows = NULL;
    g_autoptr(GError) error = NULL;

    if (!load_windows(self, now, (guint)settings->risk.lookback_days, &windows, &error)) {
        g_warning("cannot load exposure windows: %s", error->message);
        return;
    }
    ProxRiskSummary summary;
    prox_risk_summarize((const ProxExposureWindow *)(void *)windows->data, windows->len,
                        &settings->risk, now, &summary);

    const char *level;
    if (summary.level == PROX_RISK_LEVEL_HIGH)
        level = "high";
    else if (windows->len == 0 && last_sync(self) == 0)
        level = "unknown";
    else
        level = "low";
    proxd_dbus_manager1_set_risk_level(as_iface(self), level);

    if (settings->role == PROXD_ROLE_PERSON && summary.has_high_risk_day) {
        g_autofree char *notified_s = NULL;
        gint64 notified = G_MININT64;
        if (!prox_store_get_setting(self->store, PROXD_SETTING_NOTIFIED_DAY, &notified_s, &error)) {
            g_warning("cannot read the last signalled exposure: %s", error->message);
            prox_risk_summary_clear(&summary);
            return;
        }
        if (notified_s != NULL &&
            !g_ascii_string_to_signed(notified_s, 10, G_MININT64, G_MAXINT64, &notified, NULL))
            notified = G_MININT64;
        gint64 newest = notified;
        for (guint i = 0; i < summary.n_days; i++) {
            const ProxDailySummary *day = &summary.days[i];
            if (day->level != PROX_RISK_LEVEL_HIGH || day->day <= notified)
                continue;
            g_message("exposure detected: high risk on the day starting %" G_GINT64_FORMAT,
                      day->day);
            proxd_dbus_manager1_emit_exposure_detected(as_iface(self), day_summary_to_variant(day));
            newest = MAX(newest, day->day);
        }
        if (newest != notified) {
            g_autofree char *s = g_strdup_printf("%" G_GINT64_FORMAT, newest);
            if (!prox_store_set_setting(self->store, PROXD_SETTING_NOTIFIED_DAY, s, &error))
                g_warning("cannot remember the signalled exposure: %s", error->message);
        }
    }
    prox_risk_summary_clear(&summary);
}

static void refresh_venue_count(ProxdManager *self);

static gboolean on_refresh_idle(gpointer user_data)
{
    ProxdManager *self = user_data;
    self->refresh_id = 0;
    proxd_manager_refresh_counts(self);
    proxd_manager_refresh_risk(self);
    refresh_venue_count(self);
    return G_SOURCE_REMOVE;
}

static void queue_refresh(ProxdManager *self)
{
    if (self->refresh_id == 0)
        self->refresh_id = g_idle_add(on_refresh_idle, self);
}

static void on_committed(BluezScanner *scanner, gpointer user_data)
{
    queue_refresh(user_data);
}

static void schedule_hourly(ProxdManager *self);

static void on_hourly(gpointer user_data)
{
    ProxdManager *self = user_data;
    self->hourly_id = 0;
    /* Counts age (midnight, the 14-day edge) even when nothing is heard. */
    queue_refresh(self);
    schedule_hourly(self);
}

static void schedule_hourly(ProxdManager *self)
{
    gint64 now = proxd_clock_now(self->clock);
    gint64 next = (now / SECONDS_PER_HOUR + 1) * SECONDS_PER_HOUR;
    self->hourly_id = proxd_clock_call_at(self->clock, next * G_USEC_PER_SEC, on_hourly, self);
}

static ProxdVenueOptions venue_options(ProxdManager *self)
{
    const ProxdSettings *settings = proxd_config_get(self->config);
    return (ProxdVenueOptions){.min_minutes = settings->venue_min_minutes,
                               .same_vehicle_minutes = settings->venue_same_vehicle_minutes};
}

static gboolean is_person(ProxdManager *self)
{
    return proxd_config_get(self->config)->role == PROXD_ROLE_PERSON;
}

static void configure_sync_venues(ProxdManager *self)
{
    if (self->sync == NULL)
        return;
    ProxdVenueOptions options = venue_options(self);
    /* Alerts are for people; a beacon has no check-ins and rides no bus. */
    proxd_sync_set_venues(self->sync, is_person(self), &options);
}

static void refresh_checkin(ProxdManager *self);

static void on_config_changed(ProxdConfig *config, gpointer user_data)
{
    ProxdManager *self = user_data;
    const ProxdSettings *settings = proxd_config_get(config);
    proxd_dbus_manager1_set_role(as_iface(self), proxd_role_to_string(settings->role));
    bluez_adapter_watch_set_wanted(self->watch, settings->adapter);
    if (self->sync != NULL)
        proxd_sync_set_risk(self->sync, &settings->risk, settings->calibration_confidence);
    configure_sync_venues(self);
    if (self->started && !self->stopping)
        refresh_checkin(self);
    queue_refresh(self);
}

/* ---- methods ---- */

static guint clamp_days(ProxdManager *self, guint days)
{
    guint max = MAX(DEFAULT_DAYS, proxd_config_get(self->config)->retention_days);
    if (days == 0)
        return DEFAULT_DAYS;
    return MIN(days, max);
}

static void return_store_error(GDBusMethodInvocation *invocation, GError *error)
{
    g_dbus_method_invocation_return_error(invocation, G_DBUS_ERROR, G_DBUS_ERROR_FAILED,
                                          "store: %s", error->message);
}

typedef struct {
    gint64 hour;
    guint encounters;
    guint scans;
} HourRow;

static gint compare_hour_rows(gconstpointer a, gconstpointer b)
{
    const HourRow *x = a, *y = b;
    return (x->hour > y->hour) - (x->hour < y->hour);
}

static gboolean handle_get_encounters(ProxdDbusManager1 *object, GDBusMethodInvocation *invocation,
                                      guint days)
{
    ProxdManager *self = PROXD_MANAGER(object);
    gint64 now = proxd_clock_now(self->clock);
    gint64 since = now - (gint64)clamp_days(self, days) * 86400;
    g_autoptr(GArray) hours = NULL;
    g_autoptr(GArray) scans = NULL;
    g_autoptr(GError) error = NULL;

    if (!prox_store_count_rpis_per_hour(self->store, since, now + 1, &hours, &error) ||
        !prox_store_load_scan_instances(self->store, since, now + 1, &scans, &error)) {
        return_store_error(invocation, error);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }

    g_autoptr(GHashTable) rows = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, g_free);
    for (guint i = 0; i < hours->len; i++) {
        const ProxHourCount *hc = &g_array_index(hours, ProxHourCount, i);
        HourRow *row = g_new0(HourRow, 1);
        row->hour = hc->hour;
        row->encounters = hc->count;
        g_hash_table_replace(rows, &row->hour, row);
    }
    for (guint i = 0; i < scans->len; i++) {
        const ProxScanInstance *si = &g_array_index(scans, ProxScanInstance, i);
        if (si->start < since)
            continue;
        gint64 hour =
            si->start - (si->start % SECONDS_PER_HOUR + SECONDS_PER_HOUR) % SECONDS_PER_HOUR;
        HourRow *row = g_hash_table_lookup(rows, &hour);
        if (row == NULL) {
            row = g_new0(HourRow, 1);
            row->hour = hour;
            g_hash_table_replace(rows, &row->hour, row);
        }
        row->scans++;
    }

    g_autoptr(GArray) sorted =
        g_array_sized_new(FALSE, FALSE, sizeof(HourRow), g_hash_table_size(rows));
    GHashTableIter iter;
    gpointer value;
    g_hash_table_iter_init(&iter, rows);
    while (g_hash_table_iter_next(&iter, NULL, &value))
        g_array_append_val(sorted, *(HourRow *)value);
    g_array_sort(sorted, compare_hour_rows);

    GVariantBuilder b;
    g_variant_builder_init(&b, G_VARIANT_TYPE("a(tuu)"));
    for (guint i = 0; i < sorted->len; i++) {
        const HourRow *row = &g_array_index(sorted, HourRow, i);
        g_variant_builder_add(&b, "(tuu)", (guint64)row->hour, row->encounters, row->scans);
    }
    proxd_dbus_manager1_complete_get_encounters(object, invocation, g_variant_builder_end(&b));
    return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean handle_get_exposures(ProxdDbusManager1 *object, GDBusMethodInvocation *invocation,
                                     guint days)
{
    ProxdManager *self = PROXD_MANAGER(object);
    gint64 now = proxd_clock_now(self->clock);
    guint n_days = clamp_days(self, days);
    g_autoptr(GArray) windows = NULL;
    g_autoptr(GError) error = NULL;

    if (!load_windows(self, now, n_days, &windows, &error)) {
        return_store_error(invocation, error);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    ProxRiskParameters params = proxd_config_get(self->config)->risk;
    params.lookback_days = (int32_t)n_days;
    ProxRiskSummary summary;
    prox_risk_summarize((const ProxExposureWindow *)(void *)windows->data, windows->len, &params,
                        now, &summary);

    GVariantBuilder b;
    g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
    for (guint i = 0; i < summary.n_days; i++)
        g_variant_builder_add_value(&b, day_summary_to_variant(&summary.days[i]));
    prox_risk_summary_clear(&summary);
    proxd_dbus_manager1_complete_get_exposures(object, invocation, g_variant_builder_end(&b));
    return G_DBUS_METHOD_INVOCATION_HANDLED;
}

typedef struct {
    GVariantBuilder *builder;
    guint count;
} SightingsCollect;

static gboolean collect_sighting(const ProxSighting *s, gpointer user_data)
{
    SightingsCollect *c = user_data;
    gboolean known = s->rssi_count > 0;
    g_variant_builder_add(
        c->builder, "(@ay@ayttunnn)",
        g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, s->rpi.bytes, PROX_RPI_LEN, 1),
        g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, s->aem.bytes, PROX_AEM_LEN, 1),
        (guint64)s->first_seen, (guint64)s->last_seen, s->report_count,
        (gint16)(known ? s->rssi_min : PROX_RSSI_UNKNOWN),
        (gint16)(known ? s->rssi_max : PROX_RSSI_UNKNOWN),
        (gint16)(known ? s->rssi_mean : PROX_RSSI_UNKNOWN));
    return ++c->count < MAX_SIGHTINGS_RETURNED;
}

static gboolean handle_get_sightings(ProxdDbusManager1 *object, GDBusMethodInvocation *invocation,
                                     guint days)
{
    ProxdManager *self = PROXD_MANAGER(object);
    gint64 now = proxd_clock_now(self->clock);
    gint64 since = now - (gint64)clamp_days(self, days) * 86400;
    g_autoptr(GError) error = NULL;

    GVariantBuilder b;
    g_variant_builder_init(&b, G_VARIANT_TYPE("a(ayayttunnn)"));
    SightingsCollect collect = {&b, 0};
    if (!prox_store_foreach_sighting(self->store, since, now + 1, collect_sighting, &collect,
                                     &error)) {
        g_variant_builder_clear(&b);
        return_store_error(invocation, error);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    proxd_dbus_manager1_complete_get_sightings(object, invocation, g_variant_builder_end(&b));
    return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- key-list sync ---- */

#define PROXD_ERROR_PREFIX "org.proxd.Error."

static void return_proxd_error(GDBusMethodInvocation *invocation, const char *name,
                               const char *message)
{
    g_autofree char *full = g_strconcat(PROXD_ERROR_PREFIX, name, NULL);
    g_dbus_method_invocation_return_dbus_error(invocation, full, message);
}

static void schedule_sync(ProxdManager *self);

static void on_sync_due(gpointer user_data)
{
    ProxdManager *self = user_data;
    self->sync_id = 0;
    if (self->stopping)
        return;
    if (!proxd_sync_is_running(self->sync))
        proxd_sync_run_async(self->sync, PROXD_SYNC_RUN_DEFAULT, NULL, NULL, NULL);
}

static void schedule_sync(ProxdManager *self)
{
    if (self->sync == NULL || !self->started || self->stopping)
        return;
    g_clear_handle_id(&self->sync_id, g_source_remove);
    gint64 next = proxd_sync_get_next_attempt(self->sync);
    gint64 now = proxd_clock_now(self->clock);
    g_debug("next key-list sync in %" G_GINT64_FORMAT " s", MAX(next - now, 0));
    self->sync_id =
        proxd_clock_call_at(self->clock, MAX(next, now) * G_USEC_PER_SEC, on_sync_due, self);
}

static void on_sync_progress(ProxdSync *sync, guint phase, guint files_done, guint files_total,
                             guint64 bytes, gpointer user_data)
{
    ProxdManager *self = user_data;
    proxd_dbus_manager1_emit_sync_progress(as_iface(self), phase, files_done, files_total, bytes);
}

static void emit_venue_exposures(ProxdManager *self, GArray *exposures);

static void on_sync_finished(ProxdSync *sync, ProxdSyncResult *result, gpointer user_data)
{
    ProxdManager *self = user_data;
    /* Before the Sync() reply, like ExposureDetected: a caller sees both. */
    emit_venue_exposures(self, result->venue_exposures);
    if (result->complete)
        g_message("key-list sync: %u files imported, %" G_GUINT64_FORMAT " new keys",
                  result->files_imported, result->keys_added);
    else
        g_warning("key-list sync incomplete (%u files imported, %u failed): %s",
                  result->files_imported, result->files_failed,
                  result->error != NULL ? result->error->message : "unknown error");
    proxd_manager_refresh_counts(self);
    proxd_manager_refresh_risk(self);
    schedule_sync(self);
}

static GVariant *sync_result_to_variant(ProxdManager *self, const ProxdSyncResult *result,
                                        const GError *error)
{
    GVariantDict dict;
    g_variant_dict_init(&dict, NULL);
    GVariantBuilder failures;
    g_variant_builder_init(&failures, G_VARIANT_TYPE("a(ss)"));
    if (result != NULL) {
        g_variant_dict_insert(&dict, "complete", "b", result->complete);
        g_variant_dict_insert(&dict, "not-modified", "b", result->not_modified);
        g_variant_dict_insert(&dict, "files-imported", "u", result->files_imported);
        g_variant_dict_insert(&dict, "files-failed", "u", result->files_failed);
        g_variant_dict_insert(&dict, "keys-added", "t", result->keys_added);
        g_variant_dict_insert(&dict, "warnings-added", "t", result->warnings_added);
        g_variant_dict_insert(&dict, "venue-exposures", "u",
                              result->venue_exposures != NULL ? result->venue_exposures->len : 0u);
        for (guint i = 0; result->failures != NULL && i < result->failures->len; i++) {
            const ProxdSyncFailure *f = g_ptr_array_index(result->failures, i);
            g_variant_builder_add(&failures, "(ss)", f->name, f->reason);
        }
    } else {
        g_variant_dict_insert(&dict, "complete", "b", FALSE);
        g_variant_dict_insert(&dict, "not-modified", "b", FALSE);
        g_variant_dict_insert(&dict, "files-imported", "u", 0u);
        g_variant_dict_insert(&dict, "files-failed", "u", 0u);
        g_variant_dict_insert(&dict, "keys-added", "t", (guint64)0);
        g_variant_dict_insert(&dict, "warnings-added", "t", (guint64)0);
        g_variant_dict_insert(&dict, "venue-exposures", "u", 0u);
    }
    g_variant_dict_insert_value(&dict, "failures", g_variant_builder_end(&failures));
    g_variant_dict_insert(&dict, "error", "s", error != NULL ? error->message : "");
    g_variant_dict_insert(&dict, "risk-level", "s",
                          proxd_dbus_manager1_get_risk_level(as_iface(self)));
    return g_variant_dict_end(&dict);
}

typedef struct {
    ProxdManager *self;
    GDBusMethodInvocation *invocation;
} SyncCall;

static void on_sync_call_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
    SyncCall *call = user_data;
    g_autoptr(ProxdSyncResult) result = NULL;
    g_autoptr(GError) error = NULL;
    proxd_sync_run_finish(PROXD_SYNC(source), res, &result, &error);
    proxd_dbus_manager1_complete_sync(as_iface(call->self), call->invocation,
                                      sync_result_to_variant(call->self, result, error));
    g_object_unref(call->self);
    g_free(call);
}

static gboolean handle_sync(ProxdDbusManager1 *object, GDBusMethodInvocation *invocation)
{
    ProxdManager *self = PROXD_MANAGER(object);
    if (self->sync == NULL) {
        return_proxd_error(invocation, "NotConfigured",
                           "key-list sync is not configured ([Sync] URL)");
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    if (self->stopping) {
        return_proxd_error(invocation, "Busy", "proxd is shutting down");
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    SyncCall *call = g_new0(SyncCall, 1);
    call->self = g_object_ref(self);
    call->invocation = invocation;
    proxd_sync_run_async(self->sync, PROXD_SYNC_RUN_DEFAULT, NULL, on_sync_call_done, call);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- reporting a positive test ---- */

static gboolean handle_preview_report(ProxdDbusManager1 *object, GDBusMethodInvocation *invocation)
{
    ProxdManager *self = PROXD_MANAGER(object);
    const char *url = proxd_config_get(self->config)->report_url;
    g_autoptr(GError) error = NULL;
    if (url == NULL) {
        return_proxd_error(invocation, "NotConfigured",
                           "reporting is not configured ([Report] URL)");
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    g_autoptr(ProxdReport) report =
        proxd_report_new(self->store, proxd_clock_now(self->clock), &error);
    if (report == NULL) {
        return_store_error(invocation, error);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    g_autoptr(GVariant) preview = g_variant_ref_sink(proxd_report_preview(report));
    GVariantDict dict;
    g_variant_dict_init(&dict, preview);
    g_variant_dict_insert(&dict, "url", "s", url);
    proxd_dbus_manager1_complete_preview_report(object, invocation, g_variant_dict_end(&dict));
    return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static const char *report_error_name(const GError *error)
{
    if (error->domain != PROXD_REPORT_ERROR)
        return "Failed";
    switch ((ProxdReportError)error->code) {
    case PROXD_REPORT_ERROR_INVALID_ARGUMENT:
    case PROXD_REPORT_ERROR_INVALID_CODE:
        return "InvalidCode";
    case PROXD_REPORT_ERROR_NO_KEYS:
        return "NoKeys";
    case PROXD_REPORT_ERROR_CHANGED:
        return "ReportChanged";
    case PROXD_REPORT_ERROR_CODE_USED:
        return "CodeUsed";
    case PROXD_REPORT_ERROR_CODE_EXPIRED:
        return "CodeExpired";
    case PROXD_REPORT_ERROR_RATE_LIMITED:
        return "RateLimited";
    case PROXD_REPORT_ERROR_REJECTED:
        return "Rejected";
    case PROXD_REPORT_ERROR_UNAVAILABLE:
        return "Unavailable";
    case PROXD_REPORT_ERROR_NETWORK:
        return "Network";
    case PROXD_REPORT_ERROR_PROTOCOL:
        return "Protocol";
    case PROXD_REPORT_ERROR_STORE:
        return "Failed";
    }
    return "Failed";
}

typedef struct {
    ProxdManager *self;
    GDBusMethodInvocation *invocation;
} ReportCall;

static void on_report_sent(GObject *source, GAsyncResult *res, gpointer user_data)
{
    ReportCall *call = user_data;
    ProxdManager *self = call->self;
    guint inserted = 0;
    g_autoptr(GError) error = NULL;
    self->reporting = FALSE;
    if (proxd_report_send_finish(res, &inserted, &error)) {
        g_message("positive test reported: the key server took %u new keys", inserted);
        g_autofree char *now = g_strdup_printf("%" G_GINT64_FORMAT, proxd_clock_now(self->clock));
        g_autoptr(GError) store_error = NULL;
        if (!prox_store_set_setting(self->store, PROXD_VENUES_REPORTED_AT_KEY, now, &store_error))
            g_warning("cannot record the report's time (own venue warnings may alert): %s",
                      store_error->message);
        proxd_dbus_manager1_complete_report(as_iface(self), call->invocation, inserted);
    } else {
        /* The message never holds the code (proxd-report.h). */
        g_warning("report failed: %s", error->message);
        return_proxd_error(call->invocation, report_error_name(error), error->message);
    }
    g_object_unref(self);
    g_free(call);
}

/* Same-day release: the report sends the key in use up to the current interval, so the
 * device stops broadcasting it now (a new key and, with the rotation, a new address) rather
 * than letting anyone who hears it later link it to a published key. Done before the upload:
 * if that fails, the device just has a new key. */
static gboolean end_key_in_use(ProxdManager *self, gint64 now, GError **error)
{
    ProxTek cut;
    gboolean had_key = FALSE;
    g_autoptr(GError) local = NULL;
    if (!prox_store_cut_current_tek(self->store, now, prox_random_system, NULL, &cut, &had_key,
                                    &local)) {
        g_set_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_STORE,
                    "cannot end the key in use, nothing was sent: %s", local->message);
        return FALSE;
    }
    sodium_memzero(&cut, sizeof cut);
    g_message("the key in use ends with this report: broadcasting a new one");
    bluez_advertiser_rotate_now(self->advertiser);
    return TRUE;
}

static gboolean handle_report(ProxdDbusManager1 *object, GDBusMethodInvocation *invocation,
                              const char *code, GVariant *days, GVariant *checkins)
{
    ProxdManager *self = PROXD_MANAGER(object);
    const char *url = proxd_config_get(self->config)->report_url;
    g_autoptr(GError) error = NULL;
    if (url == NULL) {
        return_proxd_error(invocation, "NotConfigured",
                           "reporting is not configured ([Report] URL)");
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    if (self->reporting) {
        return_proxd_error(invocation, "Busy", "a report is being sent already");
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    gint64 now = proxd_clock_now(self->clock);
    g_autoptr(ProxdReport) report = proxd_report_new(self->store, now, &error);
    if (report == NULL) {
        return_store_error(invocation, error);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    gsize n_days = 0;
    const guint64 *day_values = g_variant_get_fixed_array(days, &n_days, sizeof(guint64));
    if (!proxd_report_matches(report, (const gint64 *)day_values, n_days)) {
        return_proxd_error(invocation, "ReportChanged",
                           "the keys to send are no longer those previewed; preview again");
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    gsize n_checkins = 0;
    const gint64 *checkin_ids = g_variant_get_fixed_array(checkins, &n_checkins, sizeof(gint64));
    if (!proxd_report_select_checkins(report, checkin_ids, n_checkins, &error)) {
        return_proxd_error(invocation, "ReportChanged", error->message);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    if (proxd_report_get_n_keys(report) == 0) {
        return_proxd_error(invocation, "NoKeys", "no keys to report yet");
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    if (proxd_report_get_cut_at(report) != 0 && !end_key_in_use(self, now, &error)) {
        return_proxd_error(invocation, "Failed", error->message);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    ProxdReportOptions options = {.url = url};
    ReportCall *call = g_new0(ReportCall, 1);
    call->self = g_object_ref(self);
    call->invocation = invocation;
    self->reporting = TRUE;
    g_message("reporting %u keys and %u check-ins to %s", proxd_report_get_n_keys(report),
              proxd_report_get_n_selected_checkins(report), url);
    proxd_report_send_async(g_steal_pointer(&report), code, &options, NULL, on_report_sent, call);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- venue check-ins (docs/venues.md §3, §5) ---- */

static void refresh_venue_count(ProxdManager *self)
{
    guint count = 0;
    g_autoptr(GError) error = NULL;
    if (!proxd_venues_count_exposures(self->store, proxd_clock_now(self->clock), DEFAULT_DAYS,
                                      &count, &error)) {
        g_warning("cannot count venue exposures: %s", error->message);
        return;
    }
    proxd_dbus_manager1_set_venue_exposures(as_iface(self), count);
}

static void emit_venue_exposures(ProxdManager *self, GArray *exposures)
{
    if (exposures == NULL || exposures->len == 0)
        return;
    if (!self->started) {
        /* Found while loading, before the name is owned: nobody would get the signal. */
        g_array_append_vals(self->startup_exposures, exposures->data, exposures->len);
        refresh_venue_count(self);
        return;
    }
    if (is_person(self)) {
        for (guint i = 0; i < exposures->len; i++) {
            const ProxVenueExposure *e = &g_array_index(exposures, ProxVenueExposure, i);
            g_message(
                "venue exposure detected: %s, %u minutes on the day starting %" G_GINT64_FORMAT,
                proxd_venue_exposure_kind_to_string(e->kind), e->minutes, e->day);
            proxd_dbus_manager1_emit_venue_exposure_detected(as_iface(self),
                                                             proxd_venue_exposure_to_signal(e));
        }
    }
    refresh_venue_count(self);
}

/* Venue warnings already stored against the check-ins as they are now (a check-in closed
 * or corrected after its warning arrived). */
static void match_checkins_now(ProxdManager *self)
{
    ProxdVenueOptions options = venue_options(self);
    g_autoptr(GArray) found = g_array_new(FALSE, FALSE, sizeof(ProxVenueExposure));
    g_autoptr(GError) error = NULL;
    if (!proxd_venues_match(self->store, &options, PROXD_VENUES_MATCH_CHECKINS,
                            proxd_clock_now(self->clock), found, &error))
        g_warning("venue matching after a check-in change failed: %s", error->message);
    emit_venue_exposures(self, found);
}

static gboolean find_open_checkin(ProxdManager *self, ProxCheckIn *open, gboolean *found,
                                  GError **error)
{
    g_autoptr(GArray) checkins = NULL;
    *found = FALSE;
    if (!prox_store_load_checkins(self->store, 0, &checkins, error))
        return FALSE;
    for (guint i = 0; i < checkins->len; i++) {
        const ProxCheckIn *c = &g_array_index(checkins, ProxCheckIn, i);
        if (c->departed == 0) {
            *open = *c;
            *found = TRUE;
            break;
        }
    }
    return TRUE;
}

static gboolean find_checkin(ProxdManager *self, gint64 id, ProxCheckIn *out, gboolean *found,
                             GError **error)
{
    g_autoptr(GArray) checkins = NULL;
    *found = FALSE;
    if (!prox_store_load_checkins(self->store, 0, &checkins, error))
        return FALSE;
    for (guint i = 0; i < checkins->len; i++) {
        if (g_array_index(checkins, ProxCheckIn, i).id == id) {
            *out = g_array_index(checkins, ProxCheckIn, i);
            *found = TRUE;
            break;
        }
    }
    return TRUE;
}

static void on_checkout_due(gpointer user_data)
{
    ProxdManager *self = user_data;
    self->checkout_id = 0;
    refresh_checkin(self);
}

/* CheckedIn / CheckOutAt from the store; checks out automatically when the planned
 * departure has passed (also at startup) and arms the timer for the next one. */
static void refresh_checkin(ProxdManager *self)
{
    ProxdDbusManager1 *iface = as_iface(self);
    gint64 now = proxd_clock_now(self->clock);
    g_autoptr(GError) error = NULL;
    g_clear_handle_id(&self->checkout_id, g_source_remove);

    gboolean closed = FALSE;
    if (!prox_store_checkin_auto_checkout(self->store, now, &closed, &error)) {
        g_warning("automatic checkout failed: %s", error->message);
        g_clear_error(&error);
    } else if (closed) {
        g_message("checked out automatically at the planned departure");
        match_checkins_now(self);
    }
    ProxCheckIn open = {0};
    gboolean found = FALSE;
    if (!find_open_checkin(self, &open, &found, &error)) {
        g_warning("cannot read the check-ins: %s", error->message);
        return;
    }
    proxd_dbus_manager1_set_checked_in(iface, found);
    proxd_dbus_manager1_set_check_out_at(iface,
                                         found ? (guint64)MAX(open.planned_departure, 0) : 0);
    if (found && !self->stopping)
        self->checkout_id = proxd_clock_call_at(
            self->clock, open.planned_departure * G_USEC_PER_SEC, on_checkout_due, self);
}

/* Check-ins and venue alerts are a person's (docs/venues.md): a bus or a venue's own
 * beacon has no use for them. */
static gboolean refuse_unless_person(ProxdManager *self, GDBusMethodInvocation *invocation)
{
    if (is_person(self))
        return FALSE;
    return_proxd_error(invocation, "WrongRole",
                       "check-ins are for the person role; this proxd runs as a beacon");
    return TRUE;
}

static void return_checkin_store_error(GDBusMethodInvocation *invocation, GError *error)
{
    if (g_error_matches(error, PROX_ERROR, PROX_ERROR_NOT_FOUND))
        return_proxd_error(invocation, "NotFound", error->message);
    else if (g_error_matches(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT))
        return_proxd_error(invocation, "InvalidArgument", error->message);
    else
        return_store_error(invocation, error);
}

static void share_count(ProxdManager *self, const ProxVenue *venue, gint64 arrived)
{
    const ProxdSettings *settings = proxd_config_get(self->config);
    if (!settings->venue_share_counts)
        return;
    g_autoptr(GError) error = NULL;
    g_autofree char *url = proxd_venues_count_url(settings->report_url, &error);
    if (url == NULL) {
        g_warning("[Venues] ShareCounts: %s", error->message);
        return;
    }
    proxd_venues_share_count_async(url, venue->location_id, arrived, self->cancellable, NULL, NULL);
}

static gboolean handle_check_in(ProxdDbusManager1 *object, GDBusMethodInvocation *invocation,
                                const char *url)
{
    ProxdManager *self = PROXD_MANAGER(object);
    g_autoptr(GError) error = NULL;
    if (refuse_unless_person(self, invocation))
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    if (self->venue_keyring == NULL) {
        return_proxd_error(invocation, "NotConfigured", self->venue_keyring_error);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    g_autoptr(ProxVenue) venue = NULL;
    if (!prox_venue_parse_url(url, self->venue_keyring, &venue, &error)) {
        g_message("check-in refused: %s", error->message);
        return_proxd_error(invocation, "InvalidVenue", error->message);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    if (!venue->verified) {
        return_proxd_error(invocation, "InvalidVenue", "not signed by a known health authority");
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    gint64 now = proxd_clock_now(self->clock);
    gint64 planned = now + (gint64)venue->default_stay_minutes * 60;
    gint64 id = 0;
    if (!prox_store_checkin_add(self->store, venue->location_id, now, planned, &id, &error)) {
        return_checkin_store_error(invocation, error);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    /* Neither the name nor the location id is logged: where someone goes is theirs. */
    g_message("checked in (check-in %" G_GINT64_FORMAT "), automatic checkout in %u minutes", id,
              venue->default_stay_minutes);
    share_count(self, venue, now);

    const char *type = prox_venue_type_to_string(venue->type);
    GVariantDict dict;
    g_variant_dict_init(&dict, NULL);
    g_variant_dict_insert(&dict, "id", "x", id);
    g_variant_dict_insert(&dict, "name", "s", venue->name);
    g_variant_dict_insert(&dict, "address", "s", venue->address);
    g_variant_dict_insert(&dict, "type", "s", type != NULL ? type : "other");
    g_variant_dict_insert(&dict, "stay-minutes", "u", venue->default_stay_minutes);
    g_variant_dict_insert(&dict, "arrived", "t", (guint64)now);
    g_variant_dict_insert(&dict, "planned-departure", "t", (guint64)planned);
    proxd_dbus_manager1_complete_check_in(object, invocation, g_variant_dict_end(&dict));
    /* A check-in left open elsewhere was closed now: its times are final. */
    refresh_checkin(self);
    match_checkins_now(self);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean handle_check_out(ProxdDbusManager1 *object, GDBusMethodInvocation *invocation)
{
    ProxdManager *self = PROXD_MANAGER(object);
    g_autoptr(GError) error = NULL;
    if (refuse_unless_person(self, invocation))
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    gint64 id = 0;
    if (!prox_store_checkin_checkout(self->store, proxd_clock_now(self->clock), &id, &error)) {
        if (g_error_matches(error, PROX_ERROR, PROX_ERROR_NOT_FOUND))
            return_proxd_error(invocation, "NotCheckedIn", "not checked in anywhere");
        else
            return_store_error(invocation, error);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    g_message("checked out (check-in %" G_GINT64_FORMAT ")", id);
    proxd_dbus_manager1_complete_check_out(object, invocation, id);
    refresh_checkin(self);
    match_checkins_now(self);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* The rules of docs/venues.md §3, checked here so the message says which one broke. */
static const char *edit_refusal(const ProxCheckIn *current, gint64 arrived, gint64 departed,
                                gint64 now)
{
    if (arrived <= 0)
        return "the arrival time is missing";
    if (arrived > now)
        return "the arrival cannot be in the future";
    if (departed == 0 && current->departed != 0)
        return "a closed check-in needs a departure time";
    if (departed == 0)
        return now - arrived > PROX_VENUE_STAY_MAX_MINUTES * 60
                   ? "a check-in lasts at most 24 hours: give the departure time"
                   : NULL;
    if (departed <= arrived)
        return "the departure must be after the arrival";
    if (departed > now)
        return "the departure cannot be in the future";
    if (departed - arrived > PROX_VENUE_STAY_MAX_MINUTES * 60)
        return "a check-in lasts at most 24 hours";
    return NULL;
}

static gboolean handle_edit_check_in(ProxdDbusManager1 *object, GDBusMethodInvocation *invocation,
                                     gint64 id, guint64 arrived, guint64 departed)
{
    ProxdManager *self = PROXD_MANAGER(object);
    g_autoptr(GError) error = NULL;
    if (refuse_unless_person(self, invocation))
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    ProxCheckIn current = {0};
    gboolean found = FALSE;
    if (!find_checkin(self, id, &current, &found, &error)) {
        return_store_error(invocation, error);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    if (!found) {
        return_proxd_error(invocation, "NotFound", "no such check-in");
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    gint64 now = proxd_clock_now(self->clock);
    if (arrived > G_MAXINT64 / 2 || departed > G_MAXINT64 / 2) {
        return_proxd_error(invocation, "InvalidArgument", "time out of range");
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    const char *refusal = edit_refusal(&current, (gint64)arrived, (gint64)departed, now);
    if (refusal != NULL) {
        return_proxd_error(invocation, "InvalidArgument", refusal);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    if (!prox_store_checkin_edit(self->store, id, (gint64)arrived, (gint64)departed, now, &error)) {
        return_checkin_store_error(invocation, error);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    g_message("check-in %" G_GINT64_FORMAT " corrected", id);
    proxd_dbus_manager1_complete_edit_check_in(object, invocation);
    refresh_checkin(self);
    match_checkins_now(self);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean handle_delete_check_in(ProxdDbusManager1 *object, GDBusMethodInvocation *invocation,
                                       gint64 id)
{
    ProxdManager *self = PROXD_MANAGER(object);
    g_autoptr(GError) error = NULL;
    if (refuse_unless_person(self, invocation))
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    if (!prox_store_checkin_delete(self->store, id, &error)) {
        return_checkin_store_error(invocation, error);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    g_message("check-in %" G_GINT64_FORMAT " deleted", id);
    proxd_dbus_manager1_complete_delete_check_in(object, invocation);
    refresh_checkin(self);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean handle_get_check_ins(ProxdDbusManager1 *object, GDBusMethodInvocation *invocation,
                                     guint days)
{
    ProxdManager *self = PROXD_MANAGER(object);
    gint64 since = proxd_clock_now(self->clock) - (gint64)clamp_days(self, days) * 86400;
    g_autoptr(GArray) checkins = NULL;
    g_autoptr(GError) error = NULL;
    if (!prox_store_load_checkins(self->store, since, &checkins, &error)) {
        return_store_error(invocation, error);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    GVariantBuilder b;
    g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
    for (guint i = 0; i < checkins->len; i++)
        g_variant_builder_add_value(
            &b, proxd_checkin_to_variant(&g_array_index(checkins, ProxCheckIn, i)));
    proxd_dbus_manager1_complete_get_check_ins(object, invocation, g_variant_builder_end(&b));
    return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean handle_get_venue_exposures(ProxdDbusManager1 *object,
                                           GDBusMethodInvocation *invocation, guint days)
{
    ProxdManager *self = PROXD_MANAGER(object);
    gint64 now = proxd_clock_now(self->clock);
    gint64 since_day = prox_risk_day_of(now) - (gint64)(clamp_days(self, days) - 1) * 86400;
    g_autoptr(GArray) exposures = NULL;
    g_autoptr(GError) error = NULL;
    if (!prox_store_load_venue_exposures(self->store, since_day, &exposures, &error)) {
        return_store_error(invocation, error);
        return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
    GVariantBuilder b;
    g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
    for (guint i = 0; i < exposures->len; i++)
        g_variant_builder_add_value(
            &b, proxd_venue_exposure_to_variant(&g_array_index(exposures, ProxVenueExposure, i)));
    proxd_dbus_manager1_complete_get_venue_exposures(object, invocation, g_variant_builder_end(&b));
    return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void proxd_manager_iface_init(ProxdDbusManager1Iface *iface)
{
    iface->handle_get_encounters = handle_get_encounters;
    iface->handle_get_exposures = handle_get_exposures;
    iface->handle_get_sightings = handle_get_sightings;
    iface->handle_sync = handle_sync;
    iface->handle_preview_report = handle_preview_report;
    iface->handle_report = handle_report;
    iface->handle_check_in = handle_check_in;
    iface->handle_check_out = handle_check_out;
    iface->handle_edit_check_in = handle_edit_check_in;
    iface->handle_delete_check_in = handle_delete_check_in;
    iface->handle_get_check_ins = handle_get_check_ins;
    iface->handle_get_venue_exposures = handle_get_venue_exposures;
}

/* ---- life cycle ---- */

void proxd_manager_load(ProxdManager *self)
{
    g_return_if_fail(PROXD_IS_MANAGER(self));
    proxd_manager_refresh_counts(self);
    proxd_manager_refresh_risk(self);
    refresh_venue_count(self);
    /* A planned departure that passed while proxd was not running checks out now. */
    refresh_checkin(self);
}

void proxd_manager_start(ProxdManager *self)
{
    g_return_if_fail(PROXD_IS_MANAGER(self));
    if (self->started)
        return;
    self->started = TRUE;
    emit_venue_exposures(self, self->startup_exposures);
    g_array_set_size(self->startup_exposures, 0);
    schedule_hourly(self);
    schedule_sync(self);
    bluez_advertiser_start(self->advertiser);
    bluez_scanner_start(self->scanner);
    bluez_adapter_watch_start(self->watch);
    update_state(self);
}

void proxd_manager_shutdown(ProxdManager *self)
{
    g_return_if_fail(PROXD_IS_MANAGER(self));
    if (self->stopping)
        return;
    self->stopping = TRUE;
    g_clear_handle_id(&self->hourly_id, g_source_remove);
    g_clear_handle_id(&self->sync_id, g_source_remove);
    g_clear_handle_id(&self->refresh_id, g_source_remove);
    g_clear_handle_id(&self->checkout_id, g_source_remove);
    g_cancellable_cancel(self->cancellable);
    /* Advertiser first, while it can still unregister; the scanner's stop then ends the
     * holds the advertiser may still have pending. */
    bluez_advertiser_stop(self->advertiser);
    bluez_scanner_stop(self->scanner);
    bluez_adapter_watch_stop(self->watch);
    update_state(self);
    g_dbus_interface_skeleton_flush(G_DBUS_INTERFACE_SKELETON(self));
}

static void proxd_manager_dispose(GObject *object)
{
    ProxdManager *self = PROXD_MANAGER(object);
    g_clear_handle_id(&self->hourly_id, g_source_remove);
    g_clear_handle_id(&self->refresh_id, g_source_remove);
    g_clear_handle_id(&self->sync_id, g_source_remove);
    g_clear_handle_id(&self->checkout_id, g_source_remove);
    g_clear_pointer(&self->startup_exposures, g_array_unref);
    if (self->cancellable != NULL)
        g_cancellable_cancel(self->cancellable);
    g_clear_object(&self->cancellable);
    g_clear_pointer(&self->venue_keyring, prox_export_keyring_free);
    g_clear_pointer(&self->venue_keyring_error, g_free);
    if (self->sync != NULL)
        g_signal_handlers_disconnect_by_data(self->sync, self);
    g_clear_object(&self->sync);
    if (self->scanner != NULL)
        g_signal_handlers_disconnect_by_data(self->scanner, self);
    if (self->advertiser != NULL)
        g_signal_handlers_disconnect_by_data(self->advertiser, self);
    if (self->watch != NULL)
        g_signal_handlers_disconnect_by_data(self->watch, self);
    if (self->config != NULL)
        g_signal_handlers_disconnect_by_data(self->config, self);
    g_clear_object(&self->scanner);
    g_clear_object(&self->advertiser);
    g_clear_object(&self->watch);
    g_clear_object(&self->clock);
    g_clear_object(&self->config);
    g_clear_object(&self->connection);
    G_OBJECT_CLASS(proxd_manager_parent_class)->dispose(object);
}

static void proxd_manager_class_init(ProxdManagerClass *klass)
{
    GObjectClass *object_class = G_OBJECT_CLASS(klass);
    object_class->dispose = proxd_manager_dispose;
}

static void proxd_manager_init(ProxdManager *self)
{
    self->cancellable = g_cancellable_new();
    self->startup_exposures = g_array_new(FALSE, FALSE, sizeof(ProxVenueExposure));
}

/* The authority keys venue QR codes must verify against: the key lists' ([Sync] PinnedKeys).
 * Without them check-ins are refused with the reason, the rest of proxd runs. */
static void load_venue_keyring(ProxdManager *self, const ProxdSettings *settings)
{
    g_autoptr(GError) error = NULL;
    if (settings->sync_pinned_keys == NULL || settings->sync_pinned_keys[0] == NULL) {
        self->venue_keyring_error =
            g_strdup("no health authority key is pinned ([Sync] PinnedKeys): venue codes cannot be "
                     "verified");
        return;
    }
    self->venue_keyring =
        proxd_sync_keyring_load((const char *const *)settings->sync_pinned_keys, &error);
    if (self->venue_keyring == NULL) {
        self->venue_keyring_error = g_strdup_printf(
            "the pinned authority keys cannot be loaded ([Sync] PinnedKeys): %s", error->message);
        g_warning("check-ins disabled: %s", self->venue_keyring_error);
    }
}

ProxdManager *proxd_manager_new(GDBusConnection *connection, ProxdConfig *config, ProxdClock *clock,
                                ProxStore *store, ProxdSync *sync, GError **error)
{
    g_autoptr(ProxdManager) self = g_object_new(PROXD_TYPE_MANAGER, NULL);
    const ProxdSettings *settings = proxd_config_get(config);
    ProxdDbusManager1 *iface = as_iface(self);

    self->connection = g_object_ref(connection);
    self->config = g_object_ref(config);
    self->clock = g_object_ref(clock);
    self->store = store;

    self->watch = bluez_adapter_watch_new(connection, settings->adapter);
    self->scanner = bluez_scanner_new(self->watch, clock, config, store);
    self->advertiser =
        bluez_advertiser_new(connection, self->watch, self->scanner, clock, config, store, error);
    if (self->advertiser == NULL)
        return NULL;

    proxd_dbus_manager1_set_state(iface, "starting");
    proxd_dbus_manager1_set_state_reason(iface, "connecting to BlueZ");
    proxd_dbus_manager1_set_role(iface, proxd_role_to_string(settings->role));
    proxd_dbus_manager1_set_adapter(iface, "");
    proxd_dbus_manager1_set_risk_level(iface, "unknown");
    proxd_dbus_manager1_set_checked_in(iface, FALSE);
    proxd_dbus_manager1_set_check_out_at(iface, 0);
    proxd_dbus_manager1_set_venue_exposures(iface, 0);
    load_venue_keyring(self, settings);

    g_signal_connect(self->watch, "changed", G_CALLBACK(on_watch_changed), self);
    g_signal_connect(self->advertiser, "notify", G_CALLBACK(on_component_changed), self);
    g_signal_connect(self->scanner, "notify::scanning", G_CALLBACK(on_component_changed), self);
    g_signal_connect(self->scanner, "committed", G_CALLBACK(on_committed), self);
    g_signal_connect(config, "changed", G_CALLBACK(on_config_changed), self);
    if (sync != NULL) {
        self->sync = g_object_ref(sync);
        g_signal_connect(sync, "progress", G_CALLBACK(on_sync_progress), self);
        g_signal_connect(sync, "finished", G_CALLBACK(on_sync_finished), self);
        configure_sync_venues(self);
    }
    return g_steal_pointer(&self);
}
