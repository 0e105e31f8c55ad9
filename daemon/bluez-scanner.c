/* bluez-scanner.c - discovery duty cycle and Device1 reports -> sighting batches. */
#define G_LOG_DOMAIN "proxd-scanner"

#include "bluez-scanner.h"

#include <gio/gunixsocketaddress.h>
#include <string.h>
#include <unistd.h>

#include "prox-keys.h"
#include "prox-payload.h"

#define DEVICE_IFACE "org.bluez.Device1"
#define OBJECT_MANAGER_IFACE "org.freedesktop.DBus.ObjectManager"
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
/* Device1 signals are handled in batches, this long (real time) after the first of a batch
 * arrived: the main loop wakes once per batch rather than once per advertisement. */
#define DRAIN_MS 100
/* Reports waiting beyond this are dropped: the main loop is stuck (e.g. a slow disk) and
 * memory must not grow with the radio's report rate. */
#define MAX_PENDING 100000
/* Our own connection for Device1 signals: handshake timeout, and how much one batch reads
 * (in chunks of OWN_BUS_CHUNK) before handling it. */
#define OWN_BUS_TIMEOUT_SECONDS 5
#define OWN_BUS_CHUNK 65536
#define OWN_BUS_MAX_READ (4 * 1024 * 1024)
/* PropertiesChanged invalidated these. */
#define INVALID_SERVICE_DATA 1u
#define INVALID_RSSI 2u

/* ---- the inbox: Device1 signals taken off the bus in GDBus's worker thread ---- */

typedef enum {
    PENDING_CHANGED, /* PropertiesChanged of Device1 */
    PENDING_ADDED,   /* InterfacesAdded with Device1 */
    PENDING_REMOVED, /* InterfacesRemoved with Device1 */
} PendingKind;

/* When a report arrived: its time, and the inbox epoch (which scan instance it belongs
 * to). */
typedef struct {
    gint64 time;
    guint epoch;
} Arrival;

typedef struct {
    PendingKind kind;
    guint invalidated; /* INVALID_* (CHANGED) */
    Arrival arrival;
    char *path;           /* the Device1 object */
    GVariant *properties; /* a{sv}: what changed (CHANGED), Device1's (ADDED) */
} Pending;

static void pending_clear(gpointer p)
{
    Pending *pending = p;
    g_free(pending->path);
    g_clear_pointer(&pending->properties, g_variant_unref);
}

/* Shared by the filter (worker thread) and the scanner (main thread); refcounted because
 * GDBus may still run the filter after g_dbus_connection_remove_filter(). */
typedef struct {
    gatomicrefcount refs;
    GMainContext *context; /* the scanner's, where batches are handled */
    ProxdClock *clock;
    BluezScanner *scanner; /* main thread only; NULL once the scanner is gone */

    GMutex lock; /* for everything below */
    char *owner; /* bluetoothd's unique name; NULL: take nothing */
    char *path;  /* the adapter whose devices we take */
    gsize path_len;
    guint epoch;     /* bumped (by the main thread) when a scan instance closes */
    GArray *pending; /* Pending, in arrival order */
    gboolean drain_scheduled;
    guint64 overflow;
} Inbox;

static Inbox *inbox_new(ProxdClock *clock)
{
    Inbox *inbox = g_new0(Inbox, 1);
    g_atomic_ref_count_init(&inbox->refs);
    inbox->context = g_main_context_ref_thread_default();
    inbox->clock = g_object_ref(clock);
    g_mutex_init(&inbox->lock);
    inbox->pending = g_array_new(FALSE, FALSE, sizeof(Pending));
    g_array_set_clear_func(inbox->pending, pending_clear);
    return inbox;
}

static Inbox *inbox_ref(Inbox *inbox)
{
    g_atomic_ref_count_inc(&inbox->refs);
    return inbox;
}

static void inbox_unref(gpointer p)
{
    Inbox *inbox = p;
    if (!g_atomic_ref_count_dec(&inbox->refs))
        return;
    g_array_unref(inbox->pending);
    g_mutex_clear(&inbox->lock);
    g_free(inbox->owner);
    g_free(inbox->path);
    g_object_unref(inbox->clock);
    g_main_context_unref(inbox->context);
    g_free(inbox);
}

/* Main thread: take the devices of the adapter at `path` from `owner` from now on (NULL:
 * none). */
static void inbox_follow(Inbox *inbox, const char *owner, const char *path)
{
    g_mutex_lock(&inbox->lock);
    g_free(inbox->owner);
    g_free(inbox->path);
    inbox->owner = owner != NULL && path != NULL ? g_strdup(owner) : NULL;
    inbox->path = inbox->owner != NULL ? g_strdup(path) : NULL;
    inbox->path_len = inbox->path != NULL ? strlen(inbox->path) : 0;
    g_mutex_unlock(&inbox->lock);
}

/* INVALID_* for an `as` of invalidated properties. */
static guint invalidated_flags(GVariant *invalidated)
{
    guint flags = 0;
    GVariantIter iter;
    const char *name;
    g_variant_iter_init(&iter, invalidated);
    while (g_variant_iter_next(&iter, "&s", &name)) {
        if (g_str_equal(name, "ServiceData"))
            flags |= INVALID_SERVICE_DATA;
        else if (g_str_equal(name, "RSSI"))
            flags |= INVALID_RSSI;
    }
    return flags;
}

static gboolean strv_variant_contains(GVariant *strv, const char *str)
{
    GVariantIter iter;
    const char *s;
    g_variant_iter_init(&iter, strv);
    while (g_variant_iter_next(&iter, "&s", &s))
        if (g_str_equal(s, str))
            return TRUE;
    return FALSE;
}

static gboolean on_inbox_drain(gpointer user_data);

/* Recognises a Device1 signal as the scanner's subscriptions would (PropertiesChanged,
 * InterfacesAdded, InterfacesRemoved), into `p` and its object path; FALSE for anything
 * else. */
static gboolean parse_device_signal(GDBusMessage *message, Pending *p, const char **path)
{
    const char *interface = g_dbus_message_get_interface(message);
    const char *member = g_dbus_message_get_member(message);
    GVariant *body = g_dbus_message_get_body(message);
    if (interface == NULL || member == NULL || body == NULL)
        return FALSE;

    if (g_str_equal(member, "PropertiesChanged") && g_str_equal(interface, PROPERTIES_IFACE)) {
        if (!g_variant_is_of_type(body, G_VARIANT_TYPE("(sa{sv}as)")))
            return FALSE;
        const char *iface;
        g_autoptr(GVariant) invalidated = NULL;
        g_variant_get(body, "(&s@a{sv}@as)", &iface, &p->properties, &invalidated);
        if (!g_str_equal(iface, DEVICE_IFACE)) {
            g_clear_pointer(&p->properties, g_variant_unref);
            return FALSE;
        }
        p->kind = PENDING_CHANGED;
        p->invalidated = invalidated_flags(invalidated);
        *path = g_dbus_message_get_path(message);
        return *path != NULL;
    }
    if (!g_str_equal(interface, OBJECT_MANAGER_IFACE) ||
        g_strcmp0(g_dbus_message_get_path(message), "/") != 0)
        return FALSE;
    if (g_str_equal(member, "InterfacesAdded") &&
        g_variant_is_of_type(body, G_VARIANT_TYPE("(oa{sa{sv}})"))) {
        g_autoptr(GVariant) interfaces = NULL;
        g_variant_get(body, "(&o@a{sa{sv}})", path, &interfaces);
        /* The adapter watch follows Adapter1 and LEAdvertisingManager1 objects through the
         * same signal: never take one that announces those. */
        g_autoptr(GVariant) adapter =
            g_variant_lookup_value(interfaces, "org.bluez.Adapter1", NULL);
        g_autoptr(GVariant) manager =
            g_variant_lookup_value(interfaces, "org.bluez.LEAdvertisingManager1", NULL);
        if (adapter != NULL || manager != NULL)
            return FALSE;
        p->properties = g_variant_lookup_value(interfaces, DEVICE_IFACE, G_VARIANT_TYPE("a{sv}"));
        p->kind = PENDING_ADDED;
        return p->properties != NULL;
    }
    if (g_str_equal(member, "InterfacesRemoved") &&
        g_variant_is_of_type(body, G_VARIANT_TYPE("(oas)"))) {
        g_autoptr(GVariant) interfaces = NULL;
        g_variant_get(body, "(&o@as)", path, &interfaces);
        if (strv_variant_contains(interfaces, "org.bluez.Adapter1") ||
            strv_variant_contains(interfaces, "org.bluez.LEAdvertisingManager1"))
            return FALSE;
        p->kind = PENDING_REMOVED;
        return strv_variant_contains(interfaces, DEVICE_IFACE);
    }
    return FALSE;
}

/* GDBus worker thread, for every message proxd receives. The scanner is the only consumer
 * of Device1 signals on this connection (the adapter watch's subscriptions are for
 * Adapter1 and LEAdvertisingManager1, and the watch's proxies do not connect signals), so
 * the ones it takes are dropped: GLib then neither queues an idle source per signal nor
 * wakes the main loop. Anything it does not take (another sender, another adapter, while
 * not following one) goes through GDBus's dispatch to the same handlers as before. */
static GDBusMessage *inbox_filter(GDBusConnection *connection, GDBusMessage *message,
                                  gboolean incoming, gpointer user_data)
{
    Inbox *inbox = user_data;
    if (!incoming || g_dbus_message_get_message_type(message) != G_DBUS_MESSAGE_TYPE_SIGNAL)
        return message;
    const char *sender = g_dbus_message_get_sender(message);
    const char *path = NULL;
    Pending p = {0};
    if (sender == NULL || !parse_device_signal(message, &p, &path)) {
        pending_clear(&p);
        return message;
    }

    g_mutex_lock(&inbox->lock);
    /* Only bluetoothd's own signals: a unicast signal from another client must not make up
     * sightings. */
    gboolean ours = inbox->owner != NULL && g_str_equal(sender, inbox->owner) &&
                    strncmp(path, inbox->path, inbox->path_len) == 0 &&
                    path[inbox->path_len] == '/';
    if (!ours) {
        g_mutex_unlock(&inbox->lock);
        pending_clear(&p);
        return message;
    }
    gboolean schedule = FALSE;
    if (p.kind == PENDING_CHANGED && inbox->pending->len >= MAX_PENDING) {
        inbox->overflow++;
        pending_clear(&p);
    } else {
        p.path = g_strdup(path);
        p.arrival.time = proxd_clock_now(inbox->clock);
        p.arrival.epoch = inbox->epoch;
        g_array_append_val(inbox->pending, p);
        schedule = !inbox->drain_scheduled;
        inbox->drain_scheduled = TRUE;
    }
    g_mutex_unlock(&inbox->lock);

    if (schedule) {
        GSource *source = g_timeout_source_new(DRAIN_MS);
        g_source_set_static_name(source, "proxd-scanner-inbox");
        g_source_set_callback(source, on_inbox_drain, inbox_ref(inbox), inbox_unref);
        g_source_attach(source, inbox->context);
        g_source_unref(source);
    }
    g_object_unref(message);
    return NULL;
}

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
     * report without ServiceData refers to), through bus rules that let through this
     * adapter's devices only. */
    GDBusConnection *connection;
    BluezAdapter1 *devices_adapter;  /* the adapter object they belong to */
    char *devices_path;              /* its object path */
    BluezMatch *devices_om_match;    /* InterfacesAdded / InterfacesRemoved below it */
    BluezMatch *devices_props_match; /* PropertiesChanged of Device1 below it */
    GHashTable *devices;             /* object path -> Device */
    guint devices_generation;
    char *devices_owner; /* unique name of the bluetoothd they belong to */

    /* Device1 signals taken off the bus by inbox_filter (filter_id). */
    Inbox *inbox;
    guint filter_id;
    guint scan_epoch; /* inbox->epoch as the main thread last set it */
    /* Or, instead, a bus connection of our own (see own_bus_drain()). */
    GSocket *own_socket;
    GByteArray *own_in; /* read, not handled yet */
    guint32 own_serial;
    GSource *own_source;      /* readable: a batch begins */
    guint own_timer_id;       /* DRAIN_MS later: the batch is read */
    char **own_rules;         /* our match rules on it */
    gboolean overflow_logged; /* since the inbox last kept up */

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

static void drain(BluezScanner *self, gboolean from_source, gboolean close_epoch);
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
    drain(self, FALSE, FALSE);
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
    drain(self, FALSE, TRUE);
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
                          const Arrival *arrival)
{
    const ProxdSettings *settings = proxd_config_get(self->config);

    if (!self->scan_open || arrival->epoch != self->scan_epoch) {
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

static gboolean below_adapter(BluezScanner *self, const char *path)
{
    if (self->devices_path == NULL)
        return FALSE;
    gsize n = strlen(self->devices_path);
    return strncmp(path, self->devices_path, n) == 0 && path[n] == '/';
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
    Arrival arrival; /* of the report that asked */
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
                         const Arrival *arrival)
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
                         const Arrival *arrival)
{
    /* A new object (a new address): everything BlueZ knows of it is here. */
    g_hash_table_remove(self->devices, path);
    Device *device = device_lookup_or_add(self, path);
    device->fetched = TRUE;
    device_update(device, properties);
    handle_report(self, path, device, arrival);
}

/* PropertiesChanged of Device1 below the adapter: `changed` a{sv}, `invalidated` INVALID_*. */
static void device_changed(BluezScanner *self, const char *sender, const char *path,
                           GVariant *changed, guint invalidated, const Arrival *arrival)
{
    Device *device = device_lookup_or_add(self, path);
    if (invalidated & INVALID_SERVICE_DATA)
        g_clear_pointer(&device->service_data, g_variant_unref);
    if (invalidated & INVALID_RSSI)
        g_clear_pointer(&device->rssi, g_variant_unref);
    if (!device_update(device, changed))
        return; /* not a report (Alias, Connected ...) */
    if (device->service_data == NULL && !device->fetched)
        fetch_device(self, sender, path, device, arrival);
    else
        handle_report(self, path, device, arrival);
}

/* ---- a bus connection of our own for the adapter's Device1 signals ---- */

/* GDBus reads every message in its worker thread with its own poll, reads and hand-offs
 * even when a filter drops it; at 1,000 reports/s that is most of proxd's CPU. On a
 * connection of our own the kernel queues the signals and the main loop reads them in one
 * go, once per DRAIN_MS. The GDBus path (inbox_filter) remains for buses we cannot open a
 * second connection to, or if this one fails. */

static gboolean send_all(GSocket *socket, const guint8 *data, gsize size, GError **error)
{
    while (size > 0) {
        gssize n = g_socket_send_with_blocking(socket, (const char *)data, size, TRUE, NULL, error);
        if (n <= 0)
            return FALSE;
        data += n;
        size -= (gsize)n;
    }
    return TRUE;
}

static gboolean own_bus_send(BluezScanner *self, GDBusMessage *message, GError **error)
{
    gsize size;
    g_dbus_message_set_serial(message, ++self->own_serial);
    g_autofree guchar *blob =
        g_dbus_message_to_blob(message, &size, G_DBUS_CAPABILITY_FLAGS_NONE, error);
    return blob != NULL && send_all(self->own_socket, blob, size, error);
}

/* AddMatch / RemoveMatch; the reply is read with the signals (an error is logged). */
static void own_bus_match(BluezScanner *self, const char *method, const char *rule)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GDBusMessage) m = g_dbus_message_new_method_call(
        "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", method);
    g_dbus_message_set_body(m, g_variant_new("(s)", rule));
    if (!own_bus_send(self, m, &error))
        g_warning("%s on our device signal connection: %s", method, error->message);
}

/* Connects to the bus `connection` is on (a unix socket) and says Hello; the reply and
 * NameAcquired are read and ignored with the signals. */
static gboolean own_bus_connect(BluezScanner *self, GError **error)
{
    GIOStream *stream = g_dbus_connection_get_stream(self->connection);
    if (g_dbus_connection_get_unique_name(self->connection) == NULL) {
        g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "not a message bus");
        return FALSE;
    }
    if (!G_IS_SOCKET_CONNECTION(stream)) {
        g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "not a socket");
        return FALSE;
    }
    g_autoptr(GSocketAddress) address =
        g_socket_connection_get_remote_address(G_SOCKET_CONNECTION(stream), error);
    if (address == NULL)
        return FALSE;
    if (!G_IS_UNIX_SOCKET_ADDRESS(address)) {
        g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "not a unix socket");
        return FALSE;
    }
    g_autoptr(GSocket) socket =
        g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, error);
    if (socket == NULL)
        return FALSE;
    g_socket_set_timeout(socket, OWN_BUS_TIMEOUT_SECONDS);
    if (!g_socket_connect(socket, address, NULL, error))
        return FALSE;

    /* SASL EXTERNAL: the bus checks the uid against the socket's credentials. */
    g_autofree char *uid = g_strdup_printf("%u", (guint)getuid());
    g_autoptr(GString) auth = g_string_new_len("\0AUTH EXTERNAL ", 15);
    for (const char *c = uid; *c != '\0'; c++)
        g_string_append_printf(auth, "%02x", (guint)(guchar)*c);
    g_string_append(auth, "\r\n");
    if (!send_all(socket, (const guint8 *)auth->str, auth->len, error))
        return FALSE;
    char line[512];
    gsize len = 0;
    while (len < 2 || line[len - 2] != '\r' || line[len - 1] != '\n') {
        if (len == sizeof line - 1) {
            g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "bad SASL reply");
            return FALSE;
        }
        /* One byte at a time: nothing may be read past the line. */
        gssize n = g_socket_receive(socket, line + len, 1, NULL, error);
        if (n <= 0) {
            if (n == 0)
                g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_CLOSED, "closed during SASL");
            return FALSE;
        }
        len++;
    }
    line[len] = '\0';
    if (!g_str_has_prefix(line, "OK ")) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED, "SASL: %s", g_strchomp(line));
        return FALSE;
    }
    if (!send_all(socket, (const guint8 *)"BEGIN\r\n", 7, error))
        return FALSE;
    /* A timeout would also end the readable source (and all I/O) after a quiet spell. */
    g_socket_set_timeout(socket, 0);
    self->own_socket = g_steal_pointer(&socket);
    g_autoptr(GDBusMessage) hello = g_dbus_message_new_method_call(
        "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello");
    if (!own_bus_send(self, hello, error)) {
        g_clear_object(&self->own_socket);
        return FALSE;
    }
    self->own_in = g_byte_array_new();
    return TRUE;
}

static void own_bus_handle(BluezScanner *self, GDBusMessage *message, const Arrival *arrival)
{
    GDBusMessageType type = g_dbus_message_get_message_type(message);
    if (type == G_DBUS_MESSAGE_TYPE_ERROR) {
        g_warning("our device signal connection: %s", g_dbus_message_get_error_name(message));
        return;
    }
    if (type != G_DBUS_MESSAGE_TYPE_SIGNAL)
        return;
    Pending p = {0};
    const char *path = NULL;
    /* Only bluetoothd's own signals: a unicast signal from another client must not make up
     * sightings. */
    if (parse_device_signal(message, &p, &path) && below_adapter(self, path) &&
        g_strcmp0(g_dbus_message_get_sender(message), self->devices_owner) == 0) {
        switch (p.kind) {
        case PENDING_CHANGED:
            device_changed(self, self->devices_owner, path, p.properties, p.invalidated, arrival);
            break;
        case PENDING_ADDED:
            device_added(self, path, p.properties, arrival);
            break;
        case PENDING_REMOVED:
            g_hash_table_remove(self->devices, path);
            break;
        }
    }
    pending_clear(&p);
}

static void own_bus_close(BluezScanner *self);
static void subscribe_devices(BluezScanner *self, const char *path);

/* Reads what the kernel holds for us and handles it; falls back to GDBus if the connection
 * broke. */
static void own_bus_drain(BluezScanner *self)
{
    g_autoptr(GError) error = NULL;
    gboolean ok = TRUE;
    GByteArray *in = self->own_in;
    for (gsize total = 0; total < OWN_BUS_MAX_READ;) {
        guint old = in->len;
        g_byte_array_set_size(in, old + OWN_BUS_CHUNK);
        gssize n = g_socket_receive_with_blocking(self->own_socket, (char *)in->data + old,
                                                  OWN_BUS_CHUNK, FALSE, NULL, &error);
        g_byte_array_set_size(in, old + (guint)MAX(n, 0));
        if (n < 0 && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
            g_clear_error(&error);
            break;
        }
        if (n <= 0) {
            ok = FALSE;
            break;
        }
        total += (gsize)n;
    }

    Arrival arrival = {proxd_clock_now(self->clock), self->scan_epoch};
    gsize off = 0;
    while (ok && in->len - off >= 16) {
        gssize need = g_dbus_message_bytes_needed(in->data + off, 16, &error);
        if (need < 16) {
            ok = FALSE;
            break;
        }
        if (in->len - off < (gsize)need)
            break;
        g_autoptr(GError) parse_error = NULL;
        g_autoptr(GDBusMessage) message = g_dbus_message_new_from_blob(
            in->data + off, (gsize)need, G_DBUS_CAPABILITY_FLAGS_NONE, &parse_error);
        off += (gsize)need;
        if (message != NULL)
            own_bus_handle(self, message, &arrival);
        else
            g_debug("unreadable message on our device signal connection: %s", parse_error->message);
    }
    g_byte_array_remove_range(in, 0, (guint)off);
    if (!ok) {
        g_warning("our device signal connection failed (%s); using the main connection",
                  error != NULL ? error->message : "closed");
        own_bus_close(self);
        g_autofree char *path = g_steal_pointer(&self->devices_path);
        inbox_follow(self->inbox, self->devices_owner, path);
        subscribe_devices(self, path);
    }
}

static void own_bus_arm(BluezScanner *self);

static gboolean on_own_bus_timer(gpointer user_data)
{
    BluezScanner *self = user_data;
    self->own_timer_id = 0;
    own_bus_drain(self);
    own_bus_arm(self);
    return G_SOURCE_REMOVE;
}

/* The first signal of a batch: read it, and what follows, DRAIN_MS from now. */
static gboolean on_own_bus_readable(GSocket *socket, GIOCondition condition, gpointer user_data)
{
    BluezScanner *self = user_data;
    g_clear_pointer(&self->own_source, g_source_unref);
    self->own_timer_id = g_timeout_add(DRAIN_MS, on_own_bus_timer, self);
    return G_SOURCE_REMOVE;
}

static void own_bus_arm(BluezScanner *self)
{
    if (self->own_socket == NULL || self->own_source != NULL || self->own_timer_id != 0)
        return;
    self->own_source =
        g_socket_create_source(self->own_socket, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
    g_source_set_static_name(self->own_source, "proxd-scanner-devices");
    g_source_set_callback(self->own_source, (GSourceFunc)(void (*)(void))on_own_bus_readable, self,
                          NULL);
    g_source_attach(self->own_source, self->inbox->context);
}

static void own_bus_close(BluezScanner *self)
{
    if (self->own_source != NULL) {
        g_source_destroy(self->own_source);
        g_clear_pointer(&self->own_source, g_source_unref);
    }
    g_clear_handle_id(&self->own_timer_id, g_source_remove);
    if (self->own_socket != NULL) {
        g_socket_close(self->own_socket, NULL);
        g_clear_object(&self->own_socket);
    }
    g_clear_pointer(&self->own_in, g_byte_array_unref);
    g_clear_pointer(&self->own_rules, g_strfreev);
}

/* Handles what the inbox holds, in arrival order. `from_source`: called by the inbox's
 * timeout (the next signal schedules another); `close_epoch`: the scan instance closes, so
 * what arrives from now on belongs to none (or to the next one, if handled once it is
 * open). */
static void drain(BluezScanner *self, gboolean from_source, gboolean close_epoch)
{
    Inbox *inbox = self->inbox;
    if (inbox == NULL)
        return; /* disposed */
    if (self->own_socket != NULL)
        own_bus_drain(self);
    g_mutex_lock(&inbox->lock);
    if (from_source)
        inbox->drain_scheduled = FALSE;
    if (close_epoch)
        inbox->epoch++;
    guint64 overflow = inbox->overflow;
    inbox->overflow = 0;
    GArray *items = NULL;
    if (inbox->pending->len > 0) {
        items = inbox->pending;
        inbox->pending = g_array_sized_new(FALSE, FALSE, sizeof(Pending), items->len);
        g_array_set_clear_func(inbox->pending, pending_clear);
    }
    g_mutex_unlock(&inbox->lock);

    if (overflow > 0) {
        self->stats.overflow += overflow;
        if (!self->overflow_logged)
            g_warning("%" G_GUINT64_FORMAT " reports dropped: more than %d were waiting", overflow,
                      MAX_PENDING);
        self->overflow_logged = TRUE;
    } else if (items != NULL) {
        self->overflow_logged = FALSE;
    }
    for (guint i = 0; items != NULL && i < items->len; i++) {
        Pending *p = &g_array_index(items, Pending, i);
        switch (p->kind) {
        case PENDING_CHANGED:
            device_changed(self, self->devices_owner, p->path, p->properties, p->invalidated,
                           &p->arrival);
            break;
        case PENDING_ADDED:
            device_added(self, p->path, p->properties, &p->arrival);
            break;
        case PENDING_REMOVED:
            g_hash_table_remove(self->devices, p->path);
            break;
        }
    }
    if (items != NULL)
        g_array_unref(items);
    if (close_epoch)
        self->scan_epoch++;
}

static gboolean on_inbox_drain(gpointer user_data)
{
    Inbox *inbox = user_data;
    if (inbox->scanner != NULL)
        drain(inbox->scanner, TRUE, FALSE);
    return G_SOURCE_REMOVE;
}

/* A signal that arrived now, through GDBus's dispatch: the inbox did not take it. */
static Arrival arrival_now(BluezScanner *self)
{
    /* Whatever the inbox took arrived before it. */
    drain(self, FALSE, FALSE);
    return (Arrival){proxd_clock_now(self->clock), self->scan_epoch};
}

static void on_device_interfaces(GDBusConnection *connection, const char *sender,
                                 const char *object_path, const char *interface, const char *signal,
                                 GVariant *parameters, gpointer user_data)
{
    BluezScanner *self = user_data;
    const char *path;
    if (!g_str_equal(object_path, "/"))
        return;
    if (g_str_equal(signal, "InterfacesAdded") &&
        g_variant_is_of_type(parameters, G_VARIANT_TYPE("(oa{sa{sv}})"))) {
        g_autoptr(GVariant) interfaces = NULL;
        g_variant_get(parameters, "(&o@a{sa{sv}})", &path, &interfaces);
        g_autoptr(GVariant) properties =
            g_variant_lookup_value(interfaces, DEVICE_IFACE, G_VARIANT_TYPE("a{sv}"));
        if (properties == NULL || !below_adapter(self, path))
            return;
        Arrival arrival = arrival_now(self);
        device_added(self, path, properties, &arrival);
    } else if (g_str_equal(signal, "InterfacesRemoved") &&
               g_variant_is_of_type(parameters, G_VARIANT_TYPE("(oas)"))) {
        g_autofree const char **interfaces = NULL;
        g_variant_get(parameters, "(&o^a&s)", &path, &interfaces);
        if (g_strv_contains(interfaces, DEVICE_IFACE)) {
            arrival_now(self);
            g_hash_table_remove(self->devices, path);
        }
    }
}

static void on_device_properties_changed(GDBusConnection *connection, const char *sender,
                                         const char *object_path, const char *interface,
                                         const char *signal, GVariant *parameters,
                                         gpointer user_data)
{
    BluezScanner *self = user_data;
    if (!below_adapter(self, object_path) ||
        !g_variant_is_of_type(parameters, G_VARIANT_TYPE("(sa{sv}as)")))
        return;
    const char *iface;
    g_autoptr(GVariant) changed = NULL;
    g_autoptr(GVariant) invalidated = NULL;
    g_variant_get(parameters, "(&s@a{sv}@as)", &iface, &changed, &invalidated);
    if (!g_str_equal(iface, DEVICE_IFACE))
        return;
    Arrival arrival = arrival_now(self);
    device_changed(self, sender, object_path, changed, invalidated_flags(invalidated), &arrival);
}

/* Follows the Device1 objects of the adapter the watch uses. A new adapter object (a new
 * bluetoothd, a replugged adapter) starts from nothing: its devices are new objects. */
static void follow_devices(BluezScanner *self)
{
    BluezAdapter1 *adapter = bluez_adapter_watch_get_adapter(self->watch);
    if (adapter == self->devices_adapter)
        return;
    /* What the old adapter's devices said, before they are forgotten. */
    drain(self, FALSE, FALSE);
    g_set_object(&self->devices_adapter, adapter);
    g_hash_table_remove_all(self->devices);
    self->devices_generation++;

    const char *path = adapter != NULL ? g_dbus_proxy_get_object_path(G_DBUS_PROXY(adapter)) : NULL;
    /* The adapter proxies of the watch are made for bluetoothd's unique name. */
    g_free(self->devices_owner);
    self->devices_owner =
        adapter != NULL ? g_strdup(g_dbus_proxy_get_name(G_DBUS_PROXY(adapter))) : NULL;
    inbox_follow(self->inbox, self->own_socket == NULL ? self->devices_owner : NULL, path);
    subscribe_devices(self, path);
}

/* Bus rules for the devices of the adapter at `path` (NULL: none), on our own connection if
 * there is one. */
static void subscribe_devices(BluezScanner *self, const char *path)
{
    if (g_strcmp0(path, self->devices_path) == 0)
        return; /* the same rules still apply */
    g_clear_pointer(&self->devices_om_match, bluez_match_free);
    g_clear_pointer(&self->devices_props_match, bluez_match_free);
    for (guint i = 0; self->own_socket != NULL && self->own_rules != NULL && self->own_rules[i];
         i++)
        own_bus_match(self, "RemoveMatch", self->own_rules[i]);
    g_clear_pointer(&self->own_rules, g_strfreev);
    g_free(self->devices_path);
    self->devices_path = g_strdup(path);
    if (path == NULL)
        return;
    /* Only this adapter's devices: arg0path with a trailing slash matches the objects below
     * the adapter, path_namespace the adapter and what is below it. */
    g_autofree char *om_rule =
        g_strdup_printf("type='signal',sender='org.bluez',path='/',"
                        "interface='" OBJECT_MANAGER_IFACE "',arg0path='%s/'",
                        path);
    g_autofree char *props_rule =
        g_strdup_printf("type='signal',sender='org.bluez',interface='" PROPERTIES_IFACE "',"
                        "member='PropertiesChanged',path_namespace='%s',arg0='" DEVICE_IFACE "'",
                        path);
    if (self->own_socket != NULL) {
        own_bus_match(self, "AddMatch", om_rule);
        own_bus_match(self, "AddMatch", props_rule);
        self->own_rules = g_strdupv((char *[]){om_rule, props_rule, NULL});
        return;
    }
    self->devices_om_match = bluez_match_new(self->connection, om_rule, OBJECT_MANAGER_IFACE, NULL,
                                             NULL, on_device_interfaces, self);
    self->devices_props_match =
        bluez_match_new(self->connection, props_rule, PROPERTIES_IFACE, "PropertiesChanged",
                        DEVICE_IFACE, on_device_properties_changed, self);
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
    /* Nothing recorded any more: GDBus dispatches the rest, as while no adapter is used. */
    inbox_follow(self->inbox, NULL, NULL);
    drain(self, FALSE, FALSE);
    own_bus_close(self);
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
    if (self->filter_id != 0) {
        /* The filter may still run meanwhile; it holds its own reference to the inbox. */
        g_dbus_connection_remove_filter(self->connection, self->filter_id);
        self->filter_id = 0;
    }
    own_bus_close(self);
    if (self->inbox != NULL) {
        self->inbox->scanner = NULL;
        g_clear_pointer(&self->inbox, inbox_unref);
    }
    g_clear_pointer(&self->devices_om_match, bluez_match_free);
    g_clear_pointer(&self->devices_props_match, bluez_match_free);
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
    g_free(self->devices_path);
    g_free(self->devices_owner);
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
    self->inbox = inbox_new(clock);
    self->inbox->scanner = self;
    self->filter_id = g_dbus_connection_add_filter(self->connection, inbox_filter,
                                                   inbox_ref(self->inbox), inbox_unref);
    g_autoptr(GError) error = NULL;
    if (own_bus_connect(self, &error))
        own_bus_arm(self);
    else
        g_message("Device1 signals come through the main bus connection: %s", error->message);
    return self;
}
