/* bluez-scanner.c - discovery duty cycle and Device1 reports -> sighting batches. */
#define G_LOG_DOMAIN "proxd-scanner"

#include "bluez-scanner.h"

#include "bluez-device-signals.h"

#include "prox-keys.h"
#include "prox-payload.h"

#define DEVICE_IFACE "org.bluez.Device1"
#define PROPERTIES_IFACE "org.freedesktop.DBus.Properties"
/* Device1 objects remembered (properties of the adapter's devices); BlueZ removes them 30 s
 * after they were last seen, so this is only reached if removals were lost. */
#define MAX_DEVICES 20000
#define RETRY_MIN_SECONDS 1
#define RETRY_MAX_SECONDS 60
/* Retry every second this many times first: after bluetoothd dies while discovering, the
 * kernel keeps scanning for up to 10.24 s and registration fails until it stops. */
#define FAST_RETRIES 15
/* An active session of ours while Adapter1.Discovering stays false this long means
 * bluetoothd is not scanning for us (e.g. the controller was still busy with the discovery of
 * a bluetoothd that died): the session is restarted. */
#define DISCOVERING_GRACE_SECONDS 3
#define STOP_TIMEOUT_MS 1000
/* A person's window lasts ScanSeconds from when discovery is actually running; if bluetoothd
 * is slow to start it, the window waits this much longer before giving up on the cycle. */
#define WINDOW_START_GRACE_SECONDS 10
/* Commit early when a batch holds this many (RPI, scan) pairs (a crowded bus stop). */
#define BATCH_COMMIT_SIZE 4096
/* If the store keeps failing, stop growing the batch here (new RPIs are dropped). */
#define BATCH_MAX_SIZE 200000

typedef enum {
    SESSION_NONE,
    SESSION_STARTING, /* SetDiscoveryFilter / StartDiscovery in flight */
    SESSION_ACTIVE,
    SESSION_STOPPING, /* StopDiscovery in flight */
} SessionState;

struct _BluezScanner {
    GObject parent_instance;

    BluezAdapterWatch *watch;
    ProxdClock *clock;
    ProxdConfig *config;
    ProxStore *store;
    gboolean started;
    gboolean stopping;

    /* The Device1 objects of the adapter in use: their last ServiceData and RSSI (what a
     * report without ServiceData refers to), from `signals`, which hands over this
     * adapter's devices only. */
    GDBusConnection *connection;
    BluezDeviceSignals *signals;
    BluezAdapter1 *devices_adapter; /* the adapter object they belong to */
    GHashTable *devices;            /* object path -> Device */
    guint devices_generation;

    /* The last usable adapter the watch reported (identity only). */
    BluezAdapter1 *usable_adapter;

    /* The discovery session. */
    SessionState session;
    BluezAdapter1 *session_adapter;
    gulong discovering_handler; /* notify::discovering on session_adapter */
    guint discovering_check_id; /* grace period for Adapter1.Discovering */
    guint session_serial;
    guint retry_id;
    guint retry_seconds;
    guint retry_count;

    /* Holds (bluez_scanner_hold()): no session while hold_count > 0. */
    guint hold_count;
    GQueue quiet_waiters; /* QuietWaiter */
    guint quiet_id;

    /* Duty cycle. */
    ProxdRole role;
    gboolean window_open;
    guint window_timer_id;
    gint64 next_window_us;

    /* The open scan instance. */
    gboolean scan_open;
    gint64 scan_id;
    guint instance_timer_id;
    guint commit_timer_id;
    ProxSightingBatch *batch;
    gboolean batch_full_logged;

    gboolean scanning;
    BluezScannerStats stats;
};

G_DEFINE_TYPE(BluezScanner, bluez_scanner, G_TYPE_OBJECT)

enum {
    PROP_0,
    PROP_SCANNING,
    N_PROPS,
};
static GParamSpec *props[N_PROPS];

enum {
    SIGNAL_COMMITTED,
    N_SIGNALS,
};
static guint signals[N_SIGNALS];

static void update(BluezScanner *self);
static void open_window(BluezScanner *self);
static void extend_window(BluezScanner *self);

static void set_scanning(BluezScanner *self, gboolean scanning)
{
    if (self->scanning == scanning)
        return;
    self->scanning = scanning;
    g_object_notify_by_pspec(G_OBJECT(self), props[PROP_SCANNING]);
}

/* ---- store ---- */

static gboolean commit(BluezScanner *self)
{
    g_autoptr(GError) error = NULL;
    if (prox_sighting_batch_size(self->batch) == 0)
        return TRUE;
    if (!prox_store_commit_sightings(self->store, self->batch, &error)) {
        self->stats.commit_errors++;
        g_warning("cannot store sightings (kept for the next attempt): %s", error->message);
        return FALSE;
    }
    self->stats.commits++;
    self->batch_full_logged = FALSE;
    g_signal_emit(self, signals[SIGNAL_COMMITTED], 0);
    return TRUE;
}

/* Handles the Device1 signals waiting. `close_epoch`: the scan instance closes, so what
 * arrives from now on belongs to none (or to the next one, if handled once it is open). */
static void drain(BluezScanner *self, gboolean close_epoch)
{
    if (self->signals != NULL) /* NULL: disposed */
        bluez_device_signals_flush(self->signals, close_epoch);
}

static void on_commit_timer(gpointer user_data);

static void schedule_commit(BluezScanner *self)
{
    const ProxdSettings *settings = proxd_config_get(self->config);
    g_clear_handle_id(&self->commit_timer_id, g_source_remove);
    self->commit_timer_id = proxd_clock_call_after(
        self->clock, (gint64)settings->commit_seconds * G_USEC_PER_SEC, on_commit_timer, self);
}

static void on_commit_timer(gpointer user_data)
{
    BluezScanner *self = user_data;
    self->commit_timer_id = 0;
    drain(self, FALSE);
    commit(self);
    if (self->scan_open)
        schedule_commit(self);
}

static void on_instance_timer(gpointer user_data);

static void begin_scan_instance(BluezScanner *self)
{
    const ProxdSettings *settings = proxd_config_get(self->config);
    g_autoptr(GError) error = NULL;
    gint64 now = proxd_clock_now(self->clock);

    if (!prox_store_scan_begin(self->store, now, &self->scan_id, &error)) {
        g_warning("cannot start a scan instance, reports are not recorded: %s", error->message);
        return;
    }
    self->scan_open = TRUE;
    self->stats.scan_instances++;
    g_debug("scan instance %" G_GINT64_FORMAT " started", self->scan_id);
    schedule_commit(self);
    if (self->role == PROXD_ROLE_BEACON) {
        self->instance_timer_id = proxd_clock_call_after(
            self->clock, (gint64)settings->beacon_instance_seconds * G_USEC_PER_SEC,
            on_instance_timer, self);
    }
}

static void end_scan_instance(BluezScanner *self)
{
    g_autoptr(GError) error = NULL;

    g_clear_handle_id(&self->instance_timer_id, g_source_remove);
    g_clear_handle_id(&self->commit_timer_id, g_source_remove);
    if (!self->scan_open)
        return;
    /* What arrived while the instance was open belongs to it, handled or not yet; what
     * arrives from now on does not. */
    drain(self, TRUE);
    self->scan_open = FALSE;
    commit(self);
    if (!prox_store_scan_end(self->store, self->scan_id, proxd_clock_now(self->clock), &error))
        g_warning("cannot close scan instance %" G_GINT64_FORMAT ": %s", self->scan_id,
                  error->message);
    else
        g_signal_emit(self, signals[SIGNAL_COMMITTED], 0);
    g_debug("scan instance %" G_GINT64_FORMAT " ended", self->scan_id);
}

/* Beacon: one continuous discovery session, cut into scan instances. */
static void on_instance_timer(gpointer user_data)
{
    BluezScanner *self = user_data;
    self->instance_timer_id = 0;
    end_scan_instance(self);
    if (self->session == SESSION_ACTIVE)
        begin_scan_instance(self);
}

/* ---- radio reports ---- */

typedef struct {
    GVariant *service_data; /* a{sv}, NULL when unknown */
    GVariant *rssi;         /* n, NULL when unknown */
    gboolean fetched;       /* asked for its properties once already */
} Device;

static void device_free(Device *d)
{
    g_clear_pointer(&d->service_data, g_variant_unref);
    g_clear_pointer(&d->rssi, g_variant_unref);
    g_free(d);
}

/* One Device1 report: the device's service data and RSSI as last signalled. */
static void handle_report(BluezScanner *self, const char *path, Device *device,
                          const BluezDeviceArrival *arrival)
{
    const ProxdSettings *settings = proxd_config_get(self->config);

    if (!self->scan_open || self->signals == NULL ||
        arrival->epoch != bluez_device_signals_get_epoch(self->signals)) {
        self->stats.outside_scan++;
        return;
    }
    GVariant *service_data = device->service_data;
    if (service_data == NULL || !g_variant_is_of_type(service_data, G_VARIANT_TYPE("a{sv}")))
        return;

    g_autoptr(GVariant) entry = NULL;
    GVariantIter iter;
    const char *uuid;
    GVariant *value;
    g_variant_iter_init(&iter, service_data);
    while (g_variant_iter_next(&iter, "{&sv}", &uuid, &value)) {
        if (g_ascii_strcasecmp(uuid, PROX_SERVICE_UUID) == 0) {
            entry = value;
            break;
        }
        g_variant_unref(value);
    }
    if (entry == NULL)
        return; /* matched the filter by its UUID list only, or another client's filter */

    const uint8_t *bytes = NULL;
    gsize len = 0;
    if (g_variant_is_of_type(entry, G_VARIANT_TYPE_BYTESTRING))
        bytes = g_variant_get_fixed_array(entry, &len, sizeof(uint8_t));
    ProxRpi rpi;
    ProxAem aem;
    g_autoptr(GError) error = NULL;
    if (bytes == NULL ||
        !prox_service_data_parse(PROX_SERVICE_UUID, bytes, len, &rpi, &aem, &error)) {
        self->stats.malformed++;
        g_debug("%s: unusable FD6F service data: %s", path,
                error != NULL ? error->message : "not a byte array");
        return;
    }

    int rssi = PROX_RSSI_UNKNOWN;
    if (device->rssi != NULL && g_variant_is_of_type(device->rssi, G_VARIANT_TYPE_INT16))
        rssi = g_variant_get_int16(device->rssi);
    if (rssi != PROX_RSSI_UNKNOWN)
        rssi = CLAMP(rssi + settings->rssi_correction, -127, PROX_RSSI_UNKNOWN - 1);

    guint before = prox_sighting_batch_size(self->batch);
    if (before >= BATCH_MAX_SIZE) {
        if (!self->batch_full_logged)
            g_warning("sighting batch full (%u pending, store failing): dropping reports", before);
        self->batch_full_logged = TRUE;
        return;
    }
    prox_sighting_batch_add(self->batch, self->scan_id, &rpi, &aem, rssi, arrival->time);
    self->stats.reports++;
    if (prox_sighting_batch_size(self->batch) >= BATCH_COMMIT_SIZE && before < BATCH_COMMIT_SIZE)
        commit(self);
}

/* Takes what `properties` (a{sv}) says about ServiceData and RSSI; TRUE if it said anything
 * about either (a report). */
static gboolean device_update(Device *device, GVariant *properties)
{
    GVariant *service_data =
        g_variant_lookup_value(properties, "ServiceData", G_VARIANT_TYPE("a{sv}"));
    GVariant *rssi = g_variant_lookup_value(properties, "RSSI", G_VARIANT_TYPE_INT16);
    if (service_data != NULL) {
        g_clear_pointer(&device->service_data, g_variant_unref);
        device->service_data = service_data;
    }
    if (rssi != NULL) {
        g_clear_pointer(&device->rssi, g_variant_unref);
        device->rssi = rssi;
    }
    return service_data != NULL || rssi != NULL;
}

static Device *device_lookup_or_add(BluezScanner *self, const char *path)
{
    Device *device = g_hash_table_lookup(self->devices, path);
    if (device != NULL)
        return device;
    if (g_hash_table_size(self->devices) >= MAX_DEVICES) {
        g_warning("%u Device1 objects remembered: forgetting them all", MAX_DEVICES);
        g_hash_table_remove_all(self->devices);
    }
    device = g_new0(Device, 1);
    g_hash_table_insert(self->devices, g_strdup(path), device);
    return device;
}

typedef struct {
    BluezScanner *self; /* strong ref */
    guint generation;
    char *path;
    BluezDeviceArrival arrival; /* of the report that asked */
} FetchData;

static void on_device_properties(GObject *source, GAsyncResult *result, gpointer user_data)
{
    FetchData *data = user_data;
    BluezScanner *self = data->self;
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reply =
        g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);
    Device *device = data->generation == self->devices_generation
                         ? g_hash_table_lookup(self->devices, data->path)
                         : NULL;
    if (reply == NULL) {
        g_dbus_error_strip_remote_error(error);
        g_debug("%s: cannot read its properties: %s", data->path, error->message);
    } else if (device != NULL) {
        g_autoptr(GVariant) properties = g_variant_get_child_value(reply, 0);
        /* What signals said meanwhile is newer than this answer. */
        if (device->service_data == NULL)
            device->service_data =
                g_variant_lookup_value(properties, "ServiceData", G_VARIANT_TYPE("a{sv}"));
        if (device->rssi == NULL)
            device->rssi = g_variant_lookup_value(properties, "RSSI", G_VARIANT_TYPE_INT16);
        handle_report(self, data->path, device, &data->arrival);
    }
    g_object_unref(data->self);
    g_free(data->path);
    g_free(data);
}

/* A report for a device whose ServiceData we never saw (it appeared before we followed the
 * adapter, e.g. found by another client's discovery before proxd started): read it once. */
static void fetch_device(BluezScanner *self, const char *sender, const char *path, Device *device,
                         const BluezDeviceArrival *arrival)
{
    device->fetched = TRUE;
    FetchData *data = g_new0(FetchData, 1);
    data->self = g_object_ref(self);
    data->generation = self->devices_generation;
    data->path = g_strdup(path);
    data->arrival = *arrival;
    g_dbus_connection_call(self->connection, sender, path, PROPERTIES_IFACE, "GetAll",
                           g_variant_new("(s)", DEVICE_IFACE), G_VARIANT_TYPE("(a{sv})"),
                           G_DBUS_CALL_FLAGS_NO_AUTO_START, -1, NULL, on_device_properties, data);
}

/* InterfacesAdded with Device1 `properties` (a{sv}) below the adapter. */
static void device_added(BluezScanner *self, const char *path, GVariant *properties,
                         const BluezDeviceArrival *arrival)
{
    /* A new object (a new address): everything BlueZ knows of it is here. */
    g_hash_table_remove(self->devices, path);
    Device *device = device_lookup_or_add(self, path);
    device->fetched = TRUE;
    device_update(device, properties);
    handle_report(self, path, device, arrival);
}

/* PropertiesChanged of Device1 below the adapter: `changed` a{sv}, `invalidated`
 * BLUEZ_DEVICE_INVALID_*. */
static void device_changed(BluezScanner *self, const char *sender, const char *path,
                           GVariant *changed, guint invalidated, const BluezDeviceArrival *arrival)
{
    Device *device = device_lookup_or_add(self, path);
    if (invalidated & BLUEZ_DEVICE_INVALID_SERVICE_DATA)
        g_clear_pointer(&device->service_data, g_variant_unref);
    if (invalidated & BLUEZ_DEVICE_INVALID_RSSI)
        g_clear_pointer(&device->rssi, g_variant_unref);
    if (!device_update(device, changed))
        return; /* not a report (Alias, Connected ...) */
    if (device->service_data == NULL && !device->fetched)
        fetch_device(self, sender, path, device, arrival);
    else
        handle_report(self, path, device, arrival);
}

/* A Device1 signal of the adapter in use, in arrival order. */
static void on_device_signal(BluezDeviceSignalKind kind, const char *sender, const char *path,
                             GVariant *properties, guint invalidated,
                             const BluezDeviceArrival *arrival, gpointer user_data)
{
    BluezScanner *self = user_data;
    switch (kind) {
    case BLUEZ_DEVICE_CHANGED:
        device_changed(self, sender, path, properties, invalidated, arrival);
        break;
    case BLUEZ_DEVICE_ADDED:
        device_added(self, path, properties, arrival);
        break;
    case BLUEZ_DEVICE_REMOVED:
        g_hash_table_remove(self->devices, path);
        break;
    }
}

/* Follows the Device1 objects of the adapter the watch uses. A new adapter object (a new
 * bluetoothd, a replugged adapter) starts from nothing: its devices are new objects. */
static void follow_devices(BluezScanner *self)
{
    BluezAdapter1 *adapter = bluez_adapter_watch_get_adapter(self->watch);
    if (adapter == self->devices_adapter)
        return;
    /* What the old adapter's devices said, before they are forgotten. */
    drain(self, FALSE);
    g_set_object(&self->devices_adapter, adapter);
    g_hash_table_remove_all(self->devices);
    self->devices_generation++;

    const char *path = adapter != NULL ? g_dbus_proxy_get_object_path(G_DBUS_PROXY(adapter)) : NULL;
    /* The adapter proxies of the watch are made for bluetoothd's unique name. */
    const char *owner = adapter != NULL ? g_dbus_proxy_get_name(G_DBUS_PROXY(adapter)) : NULL;
    bluez_device_signals_follow(self->signals, owner, path);
}

/* ---- is bluetoothd really discovering? ---- */

static void stop_session(BluezScanner *self);

static gboolean on_discovering_timeout(gpointer user_data)
{
    BluezScanner *self = user_data;
    self->discovering_check_id = 0;
    if (self->session == SESSION_ACTIVE && !bluez_adapter1_get_discovering(self->session_adapter)) {
        g_message("bluetoothd reports no discovery on %s although ours was started; "
                  "restarting it",
                  bluez_adapter_watch_get_name(self->watch));
        stop_session(self);
    }
    return G_SOURCE_REMOVE;
}

static void check_discovering(BluezScanner *self)
{
    if (self->session == SESSION_ACTIVE && self->session_adapter != NULL &&
        !bluez_adapter1_get_discovering(self->session_adapter)) {
        if (self->discovering_check_id == 0)
            self->discovering_check_id =
                g_timeout_add_seconds(DISCOVERING_GRACE_SECONDS, on_discovering_timeout, self);
    } else {
        g_clear_handle_id(&self->discovering_check_id, g_source_remove);
    }
}

static void on_discovering_changed(GObject *object, GParamSpec *pspec, gpointer user_data)
{
    check_discovering(user_data);
}

static void set_session_adapter(BluezScanner *self, BluezAdapter1 *adapter)
{
    if (self->session_adapter == adapter)
        return;
    if (self->session_adapter != NULL) {
        g_clear_signal_handler(&self->discovering_handler, self->session_adapter);
        g_clear_object(&self->session_adapter);
    }
    g_clear_handle_id(&self->discovering_check_id, g_source_remove);
    if (adapter == NULL)
        return;
    self->session_adapter = g_object_ref(adapter);
    self->discovering_handler =
        g_signal_connect(adapter, "notify::discovering", G_CALLBACK(on_discovering_changed), self);
}

/* ---- discovery session ---- */

typedef struct {
    BluezScanner *self; /* strong ref */
    guint serial;
} CallData;

static CallData *call_data_new(BluezScanner *self)
{
    CallData *data = g_new0(CallData, 1);
    data->self = g_object_ref(self);
    data->serial = self->session_serial;
    return data;
}

static void call_data_free(CallData *data)
{
    g_object_unref(data->self);
    g_free(data);
}

static gboolean on_retry(gpointer user_data)
{
    BluezScanner *self = user_data;
    self->retry_id = 0;
    update(self);
    return G_SOURCE_REMOVE;
}

static void session_failed(BluezScanner *self, const char *what, GError *error)
{
    g_autofree char *remote = g_dbus_error_get_remote_error(error);
    g_dbus_error_strip_remote_error(error);
    g_warning("%s on %s failed: %s%s%s (retrying in %u s)", what,
              bluez_adapter_watch_get_name(self->watch), error->message,
              remote != NULL ? " / " : "", remote != NULL ? remote : "", self->retry_seconds);
    self->session = SESSION_NONE;
    set_session_adapter(self, NULL);
    g_clear_handle_id(&self->retry_id, g_source_remove);
    self->retry_id = g_timeout_add_seconds(self->retry_seconds, on_retry, self);
    self->retry_seconds = ++self->retry_count < FAST_RETRIES
                              ? RETRY_MIN_SECONDS
                              : MIN(self->retry_seconds * 2, RETRY_MAX_SECONDS);
    update(self);
}

static void on_start_discovery_reply(GObject *source, GAsyncResult *result, gpointer user_data)
{
    CallData *data = user_data;
    BluezScanner *self = data->self;
    g_autoptr(GError) error = NULL;
    gboolean ok =
        bluez_adapter1_call_start_discovery_finish(BLUEZ_ADAPTER1(source), result, &error);

    if (data->serial != self->session_serial || self->session != SESSION_STARTING) {
        call_data_free(data);
        return;
    }
    if (!ok) {
        g_autofree char *remote = g_dbus_error_get_remote_error(error);
        /* Our session is already running (e.g. bluetoothd kept it across a filter change). */
        ok = g_strcmp0(remote, "org.bluez.Error.InProgress") == 0;
    }
    if (!ok) {
        session_failed(self, "StartDiscovery", error);
        call_data_free(data);
        return;
    }
    self->session = SESSION_ACTIVE;
    self->retry_seconds = RETRY_MIN_SECONDS;
    self->retry_count = 0;
    g_info("scanning on %s", bluez_adapter_watch_get_name(self->watch));
    extend_window(self);
    begin_scan_instance(self);
    call_data_free(data);
    update(self);
}

static void on_set_filter_reply(GObject *source, GAsyncResult *result, gpointer user_data)
{
    CallData *data = user_data;
    BluezScanner *self = data->self;
    g_autoptr(GError) error = NULL;
    gboolean ok =
        bluez_adapter1_call_set_discovery_filter_finish(BLUEZ_ADAPTER1(source), result, &error);

    if (data->serial != self->session_serial || self->session != SESSION_STARTING) {
        call_data_free(data);
        return;
    }
    if (!ok) {
        session_failed(self, "SetDiscoveryFilter", error);
        call_data_free(data);
        return;
    }
    bluez_adapter1_call_start_discovery(self->session_adapter, G_DBUS_CALL_FLAGS_NONE, -1, NULL,
                                        on_start_discovery_reply, data);
}

static GVariant *discovery_filter(void)
{
    const char *const uuids[] = {PROX_SERVICE_UUID, NULL};
    GVariantBuilder b;
    g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
    /* LE only; GAEN devices only; every report, not only changed data. Without a filter
     * bluetoothd ignores advertisers without discoverable flags, i.e. all of them. */
    g_variant_builder_add(&b, "{sv}", "Transport", g_variant_new_string("le"));
    g_variant_builder_add(&b, "{sv}", "UUIDs", g_variant_new_strv(uuids, -1));
    g_variant_builder_add(&b, "{sv}", "DuplicateData", g_variant_new_boolean(TRUE));
    return g_variant_builder_end(&b);
}

static void start_session(BluezScanner *self, BluezAdapter1 *adapter)
{
    self->session = SESSION_STARTING;
    self->session_serial++;
    set_session_adapter(self, adapter);
    bluez_adapter1_call_set_discovery_filter(adapter, discovery_filter(), G_DBUS_CALL_FLAGS_NONE,
                                             -1, NULL, on_set_filter_reply, call_data_new(self));
}

/* ---- holds: the advertiser needs our discovery stopped ---- */

typedef struct {
    BluezScannerQuietFunc func;
    gpointer user_data;
} QuietWaiter;

static gboolean on_quiet_idle(gpointer user_data)
{
    BluezScanner *self = user_data;
    self->quiet_id = 0;
    /* Still quiet? A waiter queued meanwhile keeps its hold, so nothing restarted. */
    if (self->session != SESSION_NONE)
        return G_SOURCE_REMOVE;
    while (!g_queue_is_empty(&self->quiet_waiters)) {
        QuietWaiter *w = g_queue_pop_head(&self->quiet_waiters);
        w->func(w->user_data);
        g_free(w);
    }
    return G_SOURCE_REMOVE;
}

/* Calls the waiters (from an idle: they may call back into the scanner) once no session of
 * ours is running or being started or stopped. */
static void notify_quiet(BluezScanner *self)
{
    if (self->session == SESSION_NONE && !g_queue_is_empty(&self->quiet_waiters) &&
        self->quiet_id == 0)
        self->quiet_id = g_idle_add(on_quiet_idle, self);
}

void bluez_scanner_hold(BluezScanner *self, BluezScannerQuietFunc func, gpointer user_data)
{
    g_return_if_fail(BLUEZ_IS_SCANNER(self));
    g_return_if_fail(func != NULL);
    QuietWaiter *w = g_new0(QuietWaiter, 1);
    w->func = func;
    w->user_data = user_data;
    self->hold_count++;
    g_debug("scanning held (%u)", self->hold_count);
    g_queue_push_tail(&self->quiet_waiters, w);
    update(self);
}

void bluez_scanner_release(BluezScanner *self)
{
    g_return_if_fail(BLUEZ_IS_SCANNER(self));
    g_return_if_fail(self->hold_count > 0);
    self->hold_count--;
    g_debug("scanning released (%u)", self->hold_count);
    update(self);
}

/* ---- stopping ---- */

static void on_stop_discovery_reply(GObject *source, GAsyncResult *result, gpointer user_data)
{
    CallData *data = user_data;
    BluezScanner *self = data->self;
    g_autoptr(GError) error = NULL;
    if (!bluez_adapter1_call_stop_discovery_finish(BLUEZ_ADAPTER1(source), result, &error)) {
        g_dbus_error_strip_remote_error(error);
        g_debug("StopDiscovery: %s", error->message);
    }
    if (data->serial == self->session_serial && self->session == SESSION_STOPPING) {
        self->session = SESSION_NONE;
        set_session_adapter(self, NULL);
        update(self);
    }
    call_data_free(data);
}

static void stop_session(BluezScanner *self)
{
    end_scan_instance(self);
    self->session_serial++;
    self->session = SESSION_STOPPING;
    /* Done when bluetoothd has answered: only then is the controller's scan off. */
    bluez_adapter1_call_stop_discovery(self->session_adapter, G_DBUS_CALL_FLAGS_NONE, -1, NULL,
                                       on_stop_discovery_reply, call_data_new(self));
    g_debug("scan ended");
}

/* The session a lost adapter took with it: nothing to stop on the BlueZ side. */
static void drop_session(BluezScanner *self)
{
    end_scan_instance(self);
    self->session = SESSION_NONE;
    self->session_serial++;
    set_session_adapter(self, NULL);
}

static void update(BluezScanner *self)
{
    BluezAdapter1 *usable = NULL;
    if (bluez_adapter_watch_get_state(self->watch) == BLUEZ_ADAPTER_STATE_USABLE)
        usable = bluez_adapter_watch_get_adapter(self->watch);

    if (self->session != SESSION_NONE && self->session_adapter != usable)
        drop_session(self);

    gboolean want = self->started && !self->stopping && usable != NULL && self->window_open &&
                    self->hold_count == 0;
    if (want && self->session == SESSION_NONE && self->retry_id == 0)
        start_session(self, usable);
    else if (!want && self->session == SESSION_ACTIVE)
        stop_session(self);
    /* !want while STARTING: the reply sees ACTIVE && !want and stops. STOPPING: the reply
     * comes back here. */

    set_scanning(self, self->session == SESSION_ACTIVE);
    check_discovering(self);
    notify_quiet(self);
}

/* ---- duty cycle ---- */

static guint32 random_between(guint32 lo, guint32 hi)
{
    guint32 r;
    prox_random_system(&r, sizeof r, NULL);
    return hi > lo ? lo + r % (hi - lo + 1) : lo;
}

static void on_window_start(gpointer user_data);

static void on_window_end(gpointer user_data)
{
    BluezScanner *self = user_data;
    self->window_timer_id = 0;
    self->window_open = FALSE;
    g_debug("scan window closed");
    self->window_timer_id =
        proxd_clock_call_at(self->clock, self->next_window_us, on_window_start, self);
    update(self);
}

static void on_window_start(gpointer user_data)
{
    BluezScanner *self = user_data;
    self->window_timer_id = 0;
    open_window(self);
}

/* Person: a scan window opens now and lasts ScanSeconds once discovery runs (extend_window);
 * the next one starts 3-5 minutes (IntervalMin..MaxSeconds) after this one opened. Beacon:
 * the window never closes. */
static void open_window(BluezScanner *self)
{
    const ProxdSettings *settings = proxd_config_get(self->config);
    gint64 now = proxd_clock_now_us(self->clock);

    g_clear_handle_id(&self->window_timer_id, g_source_remove);
    self->window_open = TRUE;
    g_debug("scan window open");
    if (self->role == PROXD_ROLE_PERSON) {
        guint32 interval = random_between(settings->scan_interval_min, settings->scan_interval_max);
        gint64 give_up =
            now + (gint64)(settings->scan_seconds + WINDOW_START_GRACE_SECONDS) * G_USEC_PER_SEC;
        self->next_window_us = now + (gint64)interval * G_USEC_PER_SEC;
        self->window_timer_id = proxd_clock_call_at(self->clock, MIN(give_up, self->next_window_us),
                                                    on_window_end, self);
    }
    update(self);
}

/* Discovery is running: the person's window closes ScanSeconds from now, so a slow
 * SetDiscoveryFilter/StartDiscovery (busy bluetoothd, a retry mid-window) never shortens the
 * time actually spent listening. Never past the next window's start. */
static void extend_window(BluezScanner *self)
{
    if (self->role != PROXD_ROLE_PERSON || !self->window_open)
        return;
    gint64 now = proxd_clock_now_us(self->clock);
    gint64 end = now + (gint64)proxd_config_get(self->config)->scan_seconds * G_USEC_PER_SEC;
    g_clear_handle_id(&self->window_timer_id, g_source_remove);
    self->window_timer_id =
        proxd_clock_call_at(self->clock, MIN(end, self->next_window_us), on_window_end, self);
}

static void on_watch_changed(BluezAdapterWatch *watch, gpointer user_data)
{
    BluezScanner *self = user_data;
    BluezAdapter1 *usable = NULL;
    if (bluez_adapter_watch_get_state(watch) == BLUEZ_ADAPTER_STATE_USABLE)
        usable = bluez_adapter_watch_get_adapter(watch);
    gboolean newly_usable = usable != NULL && usable != self->usable_adapter;
    g_set_object(&self->usable_adapter, usable);

    follow_devices(self);
    g_clear_handle_id(&self->retry_id, g_source_remove);
    self->retry_seconds = RETRY_MIN_SECONDS;
    self->retry_count = 0;
    /* The adapter became usable (power, replug, bluetoothd restart): scan now rather than
     * at the next window, so the gap it caused ends at once. */
    if (newly_usable && !self->window_open && self->started && !self->stopping)
        open_window(self);
    else
        update(self);
}

static void on_config_changed(ProxdConfig *config, gpointer user_data)
{
    BluezScanner *self = user_data;
    const ProxdSettings *settings = proxd_config_get(config);
    if (settings->role != self->role) {
        g_message("role changed to %s", proxd_role_to_string(settings->role));
        end_scan_instance(self);
        self->role = settings->role;
        open_window(self);
        if (self->session == SESSION_ACTIVE)
            begin_scan_instance(self);
    }
}

/* ---- public ---- */

void bluez_scanner_start(BluezScanner *self)
{
    g_return_if_fail(BLUEZ_IS_SCANNER(self));
    if (self->started)
        return;
    self->started = TRUE;
    self->role = proxd_config_get(self->config)->role;
    g_signal_connect_object(self->watch, "changed", G_CALLBACK(on_watch_changed), self, 0);
    g_signal_connect_object(self->config, "changed", G_CALLBACK(on_config_changed), self, 0);
    follow_devices(self);
    open_window(self);
}

void bluez_scanner_stop(BluezScanner *self)
{
    g_return_if_fail(BLUEZ_IS_SCANNER(self));
    if (self->stopping)
        return;
    self->stopping = TRUE;
    g_clear_handle_id(&self->window_timer_id, g_source_remove);
    g_clear_handle_id(&self->retry_id, g_source_remove);
    end_scan_instance(self);
    /* Nothing recorded any more. */
    bluez_device_signals_close(self->signals);
    if (self->session == SESSION_ACTIVE && self->session_adapter != NULL) {
        g_autoptr(GError) error = NULL;
        if (!bluez_adapter1_call_stop_discovery_sync(self->session_adapter, G_DBUS_CALL_FLAGS_NONE,
                                                     STOP_TIMEOUT_MS, NULL, &error)) {
            g_dbus_error_strip_remote_error(error);
            g_debug("StopDiscovery at shutdown: %s", error->message);
        }
    }
    self->session = SESSION_NONE;
    self->session_serial++;
    set_session_adapter(self, NULL);
    set_scanning(self, FALSE);
    /* Whoever waits for quiet hears it now: the main loop may not run again. */
    g_clear_handle_id(&self->quiet_id, g_source_remove);
    on_quiet_idle(self);
}

gboolean bluez_scanner_get_scanning(BluezScanner *self)
{
    g_return_val_if_fail(BLUEZ_IS_SCANNER(self), FALSE);
    return self->scanning;
}

const BluezScannerStats *bluez_scanner_get_stats(BluezScanner *self)
{
    g_return_val_if_fail(BLUEZ_IS_SCANNER(self), NULL);
    if (self->signals != NULL)
        self->stats.overflow = bluez_device_signals_get_dropped(self->signals);
    return &self->stats;
}

static void bluez_scanner_get_property(GObject *object, guint prop_id, GValue *value,
                                       GParamSpec *pspec)
{
    BluezScanner *self = BLUEZ_SCANNER(object);
    switch (prop_id) {
    case PROP_SCANNING:
        g_value_set_boolean(value, self->scanning);
        break;
    default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    }
}

static void bluez_scanner_dispose(GObject *object)
{
    BluezScanner *self = BLUEZ_SCANNER(object);
    g_clear_handle_id(&self->window_timer_id, g_source_remove);
    g_clear_handle_id(&self->retry_id, g_source_remove);
    g_clear_handle_id(&self->instance_timer_id, g_source_remove);
    g_clear_handle_id(&self->commit_timer_id, g_source_remove);
    g_clear_handle_id(&self->quiet_id, g_source_remove);
    g_queue_clear_full(&self->quiet_waiters, g_free);
    g_clear_object(&self->signals);
    g_clear_object(&self->devices_adapter);
    set_session_adapter(self, NULL);
    g_clear_object(&self->usable_adapter);
    g_clear_object(&self->watch);
    g_clear_object(&self->clock);
    g_clear_object(&self->config);
    g_clear_object(&self->connection);
    G_OBJECT_CLASS(bluez_scanner_parent_class)->dispose(object);
}

static void bluez_scanner_finalize(GObject *object)
{
    BluezScanner *self = BLUEZ_SCANNER(object);
    g_hash_table_unref(self->devices);
    g_clear_pointer(&self->batch, prox_sighting_batch_free);
    G_OBJECT_CLASS(bluez_scanner_parent_class)->finalize(object);
}

static void bluez_scanner_class_init(BluezScannerClass *klass)
{
    GObjectClass *object_class = G_OBJECT_CLASS(klass);
    object_class->get_property = bluez_scanner_get_property;
    object_class->dispose = bluez_scanner_dispose;
    object_class->finalize = bluez_scanner_finalize;

    props[PROP_SCANNING] =
        g_param_spec_boolean("scanning", NULL, NULL, FALSE,
                             G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
    g_object_class_install_properties(object_class, N_PROPS, props);

    signals[SIGNAL_COMMITTED] =
        g_signal_new("committed", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                     G_TYPE_NONE, 0);
}

static void bluez_scanner_init(BluezScanner *self)
{
    self->retry_seconds = RETRY_MIN_SECONDS;
    self->retry_count = 0;
    self->batch = prox_sighting_batch_new();
    self->devices =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)device_free);
}

BluezScanner *bluez_scanner_new(BluezAdapterWatch *watch, ProxdClock *clock, ProxdConfig *config,
                                ProxStore *store)
{
    BluezScanner *self = g_object_new(BLUEZ_TYPE_SCANNER, NULL);
    self->watch = g_object_ref(watch);
    self->connection = g_object_ref(bluez_adapter_watch_get_connection(watch));
    self->clock = g_object_ref(clock);
    self->config = g_object_ref(config);
    self->store = store;
    self->signals = bluez_device_signals_new(self->connection, clock, on_device_signal, self);
    return self;
}
