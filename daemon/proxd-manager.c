/* proxd-manager.c - org.proxd.Manager1: state, counts, risk and the BlueZ components. */
#define G_LOG_DOMAIN "proxd-manager"

#include "proxd-manager.h"

#include "bluez-adapter-watch.h"
#include "bluez-advertiser.h"
#include "bluez-scanner.h"
#include "prox-risk.h"

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

    gboolean started;
    gboolean stopping;
    guint refresh_id;
    guint hourly_id;
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

static gboolean on_refresh_idle(gpointer user_data)
{
    ProxdManager *self = user_data;
    self->refresh_id = 0;
    proxd_manager_refresh_counts(self);
    proxd_manager_refresh_risk(self);
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

static void on_config_changed(ProxdConfig *config, gpointer user_data)
{
    ProxdManager *self = user_data;
    const ProxdSettings *settings = proxd_config_get(config);
    proxd_dbus_manager1_set_role(as_iface(self), proxd_role_to_string(settings->role));
    bluez_adapter_watch_set_wanted(self->watch, settings->adapter);
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

static void proxd_manager_iface_init(ProxdDbusManager1Iface *iface)
{
    iface->handle_get_encounters = handle_get_encounters;
    iface->handle_get_exposures = handle_get_exposures;
    iface->handle_get_sightings = handle_get_sightings;
}

/* ---- life cycle ---- */

void proxd_manager_start(ProxdManager *self)
{
    g_return_if_fail(PROXD_IS_MANAGER(self));
    if (self->started)
        return;
    self->started = TRUE;
    proxd_manager_refresh_counts(self);
    proxd_manager_refresh_risk(self);
    schedule_hourly(self);
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
    g_clear_handle_id(&self->refresh_id, g_source_remove);
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
}

ProxdManager *proxd_manager_new(GDBusConnection *connection, ProxdConfig *config, ProxdClock *clock,
                                ProxStore *store, GError **error)
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

    g_signal_connect(self->watch, "changed", G_CALLBACK(on_watch_changed), self);
    g_signal_connect(self->advertiser, "notify", G_CALLBACK(on_component_changed), self);
    g_signal_connect(self->scanner, "notify::scanning", G_CALLBACK(on_component_changed), self);
    g_signal_connect(self->scanner, "committed", G_CALLBACK(on_committed), self);
    g_signal_connect(config, "changed", G_CALLBACK(on_config_changed), self);
    return g_steal_pointer(&self);
}
