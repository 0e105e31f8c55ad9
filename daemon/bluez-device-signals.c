/* bluez-device-signals.c - an adapter's Device1 signals off the bus, in batches. */
/* The scanner's domain: these are its reports, logged as before the split. */
#define G_LOG_DOMAIN "proxd-scanner"

#include "bluez-device-signals.h"

#include <gio/gunixsocketaddress.h>
#include <string.h>
#include <unistd.h>

#include "bluez-adapter-watch.h"

#define DEVICE_IFACE "org.bluez.Device1"
#define OBJECT_MANAGER_IFACE "org.freedesktop.DBus.ObjectManager"
#define PROPERTIES_IFACE "org.freedesktop.DBus.Properties"
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

/* ---- the inbox: Device1 signals taken off the bus in GDBus's worker thread ---- */

typedef struct {
    BluezDeviceSignalKind kind;
    guint invalidated; /* BLUEZ_DEVICE_INVALID_* (CHANGED) */
    BluezDeviceArrival arrival;
    char *path;           /* the Device1 object */
    GVariant *properties; /* a{sv}: what changed (CHANGED), Device1's (ADDED) */
} Pending;

static void pending_clear(gpointer p)
{
    Pending *pending = p;
    g_free(pending->path);
    g_clear_pointer(&pending->properties, g_variant_unref);
}

/* Shared by the filter (worker thread) and the main thread; refcounted because
 * GDBus may still run the filter after g_dbus_connection_remove_filter(). */
typedef struct {
    gatomicrefcount refs;
    GMainContext *context; /* where batches are handled */
    ProxdClock *clock;
    BluezDeviceSignals *signals; /* main thread only; NULL once it is gone */

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

/* BLUEZ_DEVICE_INVALID_* for an `as` of invalidated properties. */
static guint invalidated_flags(GVariant *invalidated)
{
    guint flags = 0;
    GVariantIter iter;
    const char *name;
    g_variant_iter_init(&iter, invalidated);
    while (g_variant_iter_next(&iter, "&s", &name)) {
        if (g_str_equal(name, "ServiceData"))
            flags |= BLUEZ_DEVICE_INVALID_SERVICE_DATA;
        else if (g_str_equal(name, "RSSI"))
            flags |= BLUEZ_DEVICE_INVALID_RSSI;
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

/* Recognises a Device1 signal as our subscriptions would (PropertiesChanged,
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
        p->kind = BLUEZ_DEVICE_CHANGED;
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
        p->kind = BLUEZ_DEVICE_ADDED;
        return p->properties != NULL;
    }
    if (g_str_equal(member, "InterfacesRemoved") &&
        g_variant_is_of_type(body, G_VARIANT_TYPE("(oas)"))) {
        g_autoptr(GVariant) interfaces = NULL;
        g_variant_get(body, "(&o@as)", path, &interfaces);
        if (strv_variant_contains(interfaces, "org.bluez.Adapter1") ||
            strv_variant_contains(interfaces, "org.bluez.LEAdvertisingManager1"))
            return FALSE;
        p->kind = BLUEZ_DEVICE_REMOVED;
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
    if (p.kind == BLUEZ_DEVICE_CHANGED && inbox->pending->len >= MAX_PENDING) {
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

struct _BluezDeviceSignals {
    GObject parent_instance;

    GDBusConnection *connection;
    ProxdClock *clock;
    BluezDeviceSignalFunc func;
    gpointer user_data;

    /* The adapter followed: its object path and bluetoothd's unique name. */
    char *devices_path;
    char *devices_owner;
    BluezMatch *devices_om_match;    /* InterfacesAdded / InterfacesRemoved below it */
    BluezMatch *devices_props_match; /* PropertiesChanged of Device1 below it */

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
    guint64 overflow;         /* reports dropped so far */
};

G_DEFINE_TYPE(BluezDeviceSignals, bluez_device_signals, G_TYPE_OBJECT)

static gboolean below_adapter(BluezDeviceSignals *self, const char *path)
{
    if (self->devices_path == NULL)
        return FALSE;
    gsize n = strlen(self->devices_path);
    return strncmp(path, self->devices_path, n) == 0 && path[n] == '/';
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

static gboolean own_bus_send(BluezDeviceSignals *self, GDBusMessage *message, GError **error)
{
    gsize size;
    g_dbus_message_set_serial(message, ++self->own_serial);
    g_autofree guchar *blob =
        g_dbus_message_to_blob(message, &size, G_DBUS_CAPABILITY_FLAGS_NONE, error);
    return blob != NULL && send_all(self->own_socket, blob, size, error);
}

/* AddMatch / RemoveMatch; the reply is read with the signals (an error is logged). */
static void own_bus_match(BluezDeviceSignals *self, const char *method, const char *rule)
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
static gboolean own_bus_connect(BluezDeviceSignals *self, GError **error)
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

static void own_bus_handle(BluezDeviceSignals *self, GDBusMessage *message,
                           const BluezDeviceArrival *arrival)
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
        self->func(p.kind, self->devices_owner, path, p.properties, p.invalidated, arrival,
                   self->user_data);
    }
    pending_clear(&p);
}

static void own_bus_close(BluezDeviceSignals *self);
static void subscribe_devices(BluezDeviceSignals *self, const char *path);

/* Reads what the kernel holds for us and handles it; falls back to GDBus if the connection
 * broke. */
static void own_bus_drain(BluezDeviceSignals *self)
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

    BluezDeviceArrival arrival = {proxd_clock_now(self->clock), self->scan_epoch};
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

static void own_bus_arm(BluezDeviceSignals *self);

static gboolean on_own_bus_timer(gpointer user_data)
{
    BluezDeviceSignals *self = user_data;
    self->own_timer_id = 0;
    own_bus_drain(self);
    own_bus_arm(self);
    return G_SOURCE_REMOVE;
}

/* The first signal of a batch: read it, and what follows, DRAIN_MS from now. */
static gboolean on_own_bus_readable(GSocket *socket, GIOCondition condition, gpointer user_data)
{
    BluezDeviceSignals *self = user_data;
    g_clear_pointer(&self->own_source, g_source_unref);
    self->own_timer_id = g_timeout_add(DRAIN_MS, on_own_bus_timer, self);
    return G_SOURCE_REMOVE;
}

static void own_bus_arm(BluezDeviceSignals *self)
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

static void own_bus_close(BluezDeviceSignals *self)
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

/* ---- batches ---- */

/* Handles what the inbox holds, in arrival order. `from_source`: called by the inbox's
 * timeout (the next signal schedules another); `close_epoch`: the scan instance closes, so
 * what arrives from now on belongs to none (or to the next one, if handled once it is
 * open). */
static void drain(BluezDeviceSignals *self, gboolean from_source, gboolean close_epoch)
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
        self->overflow += overflow;
        if (!self->overflow_logged)
            g_warning("%" G_GUINT64_FORMAT " reports dropped: more than %d were waiting", overflow,
                      MAX_PENDING);
        self->overflow_logged = TRUE;
    } else if (items != NULL) {
        self->overflow_logged = FALSE;
    }
    for (guint i = 0; items != NULL && i < items->len; i++) {
        Pending *p = &g_array_index(items, Pending, i);
        self->func(p->kind, self->devices_owner, p->path, p->properties, p->invalidated,
                   &p->arrival, self->user_data);
    }
    if (items != NULL)
        g_array_unref(items);
    if (close_epoch)
        self->scan_epoch++;
}

static gboolean on_inbox_drain(gpointer user_data)
{
    Inbox *inbox = user_data;
    if (inbox->signals != NULL)
        drain(inbox->signals, TRUE, FALSE);
    return G_SOURCE_REMOVE;
}

/* A signal that arrived now, through GDBus's dispatch: the inbox did not take it. */
static BluezDeviceArrival arrival_now(BluezDeviceSignals *self)
{
    /* Whatever the inbox took arrived before it. */
    drain(self, FALSE, FALSE);
    return (BluezDeviceArrival){proxd_clock_now(self->clock), self->scan_epoch};
}

static void on_device_interfaces(GDBusConnection *connection, const char *sender,
                                 const char *object_path, const char *interface, const char *signal,
                                 GVariant *parameters, gpointer user_data)
{
    BluezDeviceSignals *self = user_data;
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
        BluezDeviceArrival arrival = arrival_now(self);
        self->func(BLUEZ_DEVICE_ADDED, sender, path, properties, 0, &arrival, self->user_data);
    } else if (g_str_equal(signal, "InterfacesRemoved") &&
               g_variant_is_of_type(parameters, G_VARIANT_TYPE("(oas)"))) {
        g_autofree const char **interfaces = NULL;
        g_variant_get(parameters, "(&o^a&s)", &path, &interfaces);
        if (g_strv_contains(interfaces, DEVICE_IFACE)) {
            BluezDeviceArrival arrival = arrival_now(self);
            self->func(BLUEZ_DEVICE_REMOVED, sender, path, NULL, 0, &arrival, self->user_data);
        }
    }
}

static void on_device_properties_changed(GDBusConnection *connection, const char *sender,
                                         const char *object_path, const char *interface,
                                         const char *signal, GVariant *parameters,
                                         gpointer user_data)
{
    BluezDeviceSignals *self = user_data;
    if (!below_adapter(self, object_path) ||
        !g_variant_is_of_type(parameters, G_VARIANT_TYPE("(sa{sv}as)")))
        return;
    const char *iface;
    g_autoptr(GVariant) changed = NULL;
    g_autoptr(GVariant) invalidated = NULL;
    g_variant_get(parameters, "(&s@a{sv}@as)", &iface, &changed, &invalidated);
    if (!g_str_equal(iface, DEVICE_IFACE))
        return;
    BluezDeviceArrival arrival = arrival_now(self);
    self->func(BLUEZ_DEVICE_CHANGED, sender, object_path, changed, invalidated_flags(invalidated),
               &arrival, self->user_data);
}

/* Bus rules for the devices of the adapter at `path` (NULL: none), on our own connection if
 * there is one. */
static void subscribe_devices(BluezDeviceSignals *self, const char *path)
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

/* ---- public ---- */

void bluez_device_signals_follow(BluezDeviceSignals *self, const char *owner, const char *path)
{
    g_return_if_fail(BLUEZ_IS_DEVICE_SIGNALS(self));
    g_free(self->devices_owner);
    self->devices_owner = g_strdup(owner);
    inbox_follow(self->inbox, self->own_socket == NULL ? self->devices_owner : NULL, path);
    subscribe_devices(self, path);
}

void bluez_device_signals_flush(BluezDeviceSignals *self, gboolean close_epoch)
{
    g_return_if_fail(BLUEZ_IS_DEVICE_SIGNALS(self));
    drain(self, FALSE, close_epoch);
}

guint bluez_device_signals_get_epoch(BluezDeviceSignals *self)
{
    g_return_val_if_fail(BLUEZ_IS_DEVICE_SIGNALS(self), 0);
    return self->scan_epoch;
}

guint64 bluez_device_signals_get_dropped(BluezDeviceSignals *self)
{
    g_return_val_if_fail(BLUEZ_IS_DEVICE_SIGNALS(self), 0);
    return self->overflow;
}

void bluez_device_signals_close(BluezDeviceSignals *self)
{
    g_return_if_fail(BLUEZ_IS_DEVICE_SIGNALS(self));
    /* Nothing taken any more: GDBus dispatches the rest, as while no adapter is followed. */
    inbox_follow(self->inbox, NULL, NULL);
    drain(self, FALSE, FALSE);
    own_bus_close(self);
}

static void bluez_device_signals_dispose(GObject *object)
{
    BluezDeviceSignals *self = BLUEZ_DEVICE_SIGNALS(object);
    if (self->filter_id != 0) {
        /* The filter may still run meanwhile; it holds its own reference to the inbox. */
        g_dbus_connection_remove_filter(self->connection, self->filter_id);
        self->filter_id = 0;
    }
    own_bus_close(self);
    if (self->inbox != NULL) {
        self->inbox->signals = NULL;
        g_clear_pointer(&self->inbox, inbox_unref);
    }
    g_clear_pointer(&self->devices_om_match, bluez_match_free);
    g_clear_pointer(&self->devices_props_match, bluez_match_free);
    g_clear_object(&self->clock);
    g_clear_object(&self->connection);
    G_OBJECT_CLASS(bluez_device_signals_parent_class)->dispose(object);
}

static void bluez_device_signals_finalize(GObject *object)
{
    BluezDeviceSignals *self = BLUEZ_DEVICE_SIGNALS(object);
    g_free(self->devices_path);
    g_free(self->devices_owner);
    G_OBJECT_CLASS(bluez_device_signals_parent_class)->finalize(object);
}

static void bluez_device_signals_class_init(BluezDeviceSignalsClass *klass)
{
    GObjectClass *object_class = G_OBJECT_CLASS(klass);
    object_class->dispose = bluez_device_signals_dispose;
    object_class->finalize = bluez_device_signals_finalize;
}

static void bluez_device_signals_init(BluezDeviceSignals *self)
{
}

BluezDeviceSignals *bluez_device_signals_new(GDBusConnection *connection, ProxdClock *clock,
                                             BluezDeviceSignalFunc func, gpointer user_data)
{
    BluezDeviceSignals *self = g_object_new(BLUEZ_TYPE_DEVICE_SIGNALS, NULL);
    self->connection = g_object_ref(connection);
    self->clock = g_object_ref(clock);
    self->func = func;
    self->user_data = user_data;
    self->inbox = inbox_new(clock);
    self->inbox->signals = self;
    self->filter_id = g_dbus_connection_add_filter(self->connection, inbox_filter,
                                                   inbox_ref(self->inbox), inbox_unref);
    g_autoptr(GError) error = NULL;
    if (own_bus_connect(self, &error))
        own_bus_arm(self);
    else
        g_message("Device1 signals come through the main bus connection: %s", error->message);
    return self;
}
