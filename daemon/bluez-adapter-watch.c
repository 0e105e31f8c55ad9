/* bluez-adapter-watch.c - follows org.bluez and picks the adapter proxd uses. */
#define G_LOG_DOMAIN "proxd-adapter"

#include "bluez-adapter-watch.h"

#include <string.h>

#define BLUEZ_NAME "org.bluez"
#define BLUEZ_PATH_PREFIX "/org/bluez/"
#define OBJECT_MANAGER_IFACE "org.freedesktop.DBus.ObjectManager"
#define PROPERTIES_IFACE "org.freedesktop.DBus.Properties"
#define ADAPTER_IFACE "org.bluez.Adapter1"
#define ADV_MANAGER_IFACE "org.bluez.LEAdvertisingManager1"
/* Retry GetManagedObjects (fails only if bluetoothd is going away or overloaded). */
#define SYNC_RETRY_SECONDS 1
#define PROXY_FLAGS                                                                                \
    (G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES | G_DBUS_PROXY_FLAGS_DO_NOT_CONNECT_SIGNALS |       \
     G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START)

/* ---- bus matches ---- */

struct _BluezMatch {
    GDBusConnection *connection;
    char *rule;
    guint subscription;
};

static void on_match_reply(GObject *source, GAsyncResult *result, gpointer user_data)
{
    g_autofree char *rule = user_data;
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reply =
        g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);
    if (reply == NULL && !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CLOSED)) {
        g_dbus_error_strip_remote_error(error);
        g_warning("bus match %s: %s", rule, error->message);
    }
}

static void bus_match_call(GDBusConnection *connection, const char *method, const char *rule)
{
    if (g_dbus_connection_is_closed(connection))
        return;
    g_dbus_connection_call(connection, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                           "org.freedesktop.DBus", method, g_variant_new("(s)", rule), NULL,
                           G_DBUS_CALL_FLAGS_NONE, -1, NULL, on_match_reply, g_strdup(rule));
}

BluezMatch *bluez_match_new(GDBusConnection *connection, const char *rule, const char *interface,
                            const char *member, const char *arg0, GDBusSignalCallback callback,
                            gpointer user_data)
{
    g_return_val_if_fail(G_IS_DBUS_CONNECTION(connection), NULL);
    BluezMatch *m = g_new0(BluezMatch, 1);
    m->connection = g_object_ref(connection);
    m->rule = g_strdup(rule);
    /* GDBus dispatches what arrives by sender, interface, member and a string arg0 (so
     * another subscription's signals are not even handed to `callback`); the bus, told by
     * our own rule, sends only what the rule matches. Messages on a connection keep their order,
     * so the rule is in place before any call made after this one reaches BlueZ. */
    m->subscription = g_dbus_connection_signal_subscribe(
        connection, BLUEZ_NAME, interface, member, NULL, arg0, G_DBUS_SIGNAL_FLAGS_NO_MATCH_RULE,
        callback, user_data, NULL);
    bus_match_call(connection, "AddMatch", rule);
    return m;
}

void bluez_match_free(BluezMatch *m)
{
    if (m == NULL)
        return;
    g_dbus_connection_signal_unsubscribe(m->connection, m->subscription);
    bus_match_call(m->connection, "RemoveMatch", m->rule);
    g_object_unref(m->connection);
    g_free(m->rule);
    g_free(m);
}

/* ---- the adapter objects of org.bluez ---- */

/* What we know of one adapter object: its interfaces as proxies (no D-Bus traffic of their
 * own: properties come from InterfacesAdded / GetManagedObjects and our PropertiesChanged
 * subscription). */
typedef struct {
    BluezAdapter1 *adapter;                  /* NULL: no Adapter1 */
    BluezLeAdvertisingManager1 *adv_manager; /* NULL: no LEAdvertisingManager1 */
} AdapterObject;

static void adapter_object_free(AdapterObject *o)
{
    g_clear_object(&o->adapter);
    g_clear_object(&o->adv_manager);
    g_free(o);
}

struct _BluezAdapterWatch {
    GObject parent_instance;

    GDBusConnection *connection;
    char *wanted;
    gboolean started;
    guint evaluate_id;

    /* org.bluez on the bus. */
    guint name_watch_id;
    gboolean name_known; /* the watcher has reported at least once */
    char *owner;         /* unique name of bluetoothd, NULL when none */
    gboolean synced;     /* `objects` holds what owner's GetManagedObjects said, and since */
    GCancellable *sync_cancellable;
    guint sync_retry_id;
    BluezMatch *om_match;    /* InterfacesAdded / InterfacesRemoved of adapters */
    BluezMatch *props_match; /* PropertiesChanged of Adapter1 */
    GHashTable *objects;     /* object path -> AdapterObject */

    /* The adapter in use and what we last told listeners. */
    BluezAdapter1 *adapter;
    BluezLeAdvertisingManager1 *adv_manager;
    BluezAdapterState state;
    gboolean discoverable;
    char *name;
    char *path;
    char *reason;
};

G_DEFINE_TYPE(BluezAdapterWatch, bluez_adapter_watch, G_TYPE_OBJECT)

enum {
    SIGNAL_CHANGED,
    N_SIGNALS,
};
static guint signals[N_SIGNALS];

const char *bluez_adapter_state_to_string(BluezAdapterState state)
{
    switch (state) {
    case BLUEZ_ADAPTER_STATE_STARTING:
        return "starting";
    case BLUEZ_ADAPTER_STATE_UNAVAILABLE:
        return "bluez-unavailable";
    case BLUEZ_ADAPTER_STATE_NO_ADAPTER:
        return "no-adapter";
    case BLUEZ_ADAPTER_STATE_POWERED_OFF:
        return "powered-off";
    case BLUEZ_ADAPTER_STATE_BLOCKED:
        return "blocked";
    case BLUEZ_ADAPTER_STATE_USABLE:
        return "active";
    }
    return "starting";
}

static const char *path_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

/* hciN -> N, G_MAXUINT when not of that form. */
static guint adapter_index(const char *name)
{
    guint64 v;
    if (!g_str_has_prefix(name, "hci") ||
        !g_ascii_string_to_unsigned(name + 3, 10, 0, G_MAXUINT - 1, &v, NULL))
        return G_MAXUINT;
    return (guint)v;
}

/* rfkill state from sysfs, for a bluetoothd without the (experimental) PowerState. */
static gboolean sysfs_rfkill_blocked(const char *name)
{
    g_autofree char *dir_path = g_build_filename("/sys/class/bluetooth", name, NULL);
    g_autoptr(GDir) dir = g_dir_open(dir_path, 0, NULL);
    if (dir == NULL)
        return FALSE;
    const char *entry;
    while ((entry = g_dir_read_name(dir)) != NULL) {
        if (!g_str_has_prefix(entry, "rfkill"))
            continue;
        static const char *const files[] = {"soft", "hard"};
        for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
            g_autofree char *file = g_build_filename(dir_path, entry, files[i], NULL);
            g_autofree char *contents = NULL;
            if (g_file_get_contents(file, &contents, NULL, NULL) && contents[0] == '1')
                return TRUE;
        }
    }
    return FALSE;
}

/* The object path of the wanted adapter, NULL for any. */
static char *wanted_path(BluezAdapterWatch *self)
{
    return self->wanted != NULL ? g_strconcat(BLUEZ_PATH_PREFIX, self->wanted, NULL) : NULL;
}

/* The adapter to use now, or NULL (borrowed). */
static BluezAdapter1 *choose_adapter(BluezAdapterWatch *self)
{
    BluezAdapter1 *best = NULL;
    gboolean best_usable = FALSE;
    guint best_index = G_MAXUINT;
    GHashTableIter iter;
    const char *path;
    AdapterObject *o;

    g_hash_table_iter_init(&iter, self->objects);
    while (g_hash_table_iter_next(&iter, (gpointer *)&path, (gpointer *)&o)) {
        if (o->adapter == NULL)
            continue;
        const char *name = path_basename(path);
        if (self->wanted != NULL) {
            if (g_str_equal(name, self->wanted))
                return o->adapter;
            continue;
        }
        gboolean usable = bluez_adapter1_get_powered(o->adapter);
        if (o->adapter == self->adapter && usable)
            return o->adapter; /* stay with it while it is usable */
        guint index = adapter_index(name);
        if (best == NULL || (usable && !best_usable) ||
            (usable == best_usable && index < best_index)) {
            best = o->adapter;
            best_usable = usable;
            best_index = index;
        }
    }
    return best;
}

static void set_adapter(BluezAdapterWatch *self, BluezAdapter1 *adapter)
{
    if (adapter == self->adapter)
        return;
    g_clear_object(&self->adapter);
    g_clear_pointer(&self->name, g_free);
    g_clear_pointer(&self->path, g_free);
    if (adapter == NULL)
        return;
    self->adapter = g_object_ref(adapter);
    self->path = g_strdup(g_dbus_proxy_get_object_path(G_DBUS_PROXY(adapter)));
    self->name = g_strdup(path_basename(self->path));
}

/* Recomputes everything; emits "changed" and logs when something differs. */
static void evaluate(BluezAdapterWatch *self)
{
    BluezAdapterState state = BLUEZ_ADAPTER_STATE_STARTING;
    g_autofree char *reason = NULL;
    BluezAdapter1 *adapter = NULL;
    BluezLeAdvertisingManager1 *adv_manager = NULL;
    gboolean discoverable = FALSE;

    if (!self->started || !self->name_known) {
        state = BLUEZ_ADAPTER_STATE_STARTING;
        reason = g_strdup("connecting to BlueZ");
    } else if (self->owner == NULL) {
        state = BLUEZ_ADAPTER_STATE_UNAVAILABLE;
        reason = g_strdup("bluetoothd is not running (nobody owns org.bluez on the bus)");
    } else if (!self->synced) {
        /* bluetoothd (re)appeared and its objects are being read: nothing to say yet. */
        return;
    } else {
        adapter = choose_adapter(self);
        if (adapter == NULL) {
            state = BLUEZ_ADAPTER_STATE_NO_ADAPTER;
            reason = self->wanted != NULL
                         ? g_strdup_printf("Bluetooth adapter %s is not present", self->wanted)
                         : g_strdup("no Bluetooth adapter is present");
        }
    }

    gboolean adapter_changed = adapter != self->adapter;
    set_adapter(self, adapter);
    if (self->adapter != NULL) {
        if (bluez_adapter1_get_powered(adapter)) {
            state = BLUEZ_ADAPTER_STATE_USABLE;
            reason = g_strdup_printf("adapter %s is powered on", self->name);
        } else if (g_strcmp0(bluez_adapter1_get_power_state(adapter), "off-blocked") == 0 ||
                   sysfs_rfkill_blocked(self->name)) {
            state = BLUEZ_ADAPTER_STATE_BLOCKED;
            reason = g_strdup_printf(
                "adapter %s is blocked by rfkill (airplane mode or a radio kill switch)",
                self->name);
        } else {
            state = BLUEZ_ADAPTER_STATE_POWERED_OFF;
            reason = g_strdup_printf("adapter %s is powered off", self->name);
        }
        discoverable = bluez_adapter1_get_discoverable(adapter);
        AdapterObject *o = g_hash_table_lookup(self->objects, self->path);
        adv_manager = o != NULL ? o->adv_manager : NULL;
    }

    gboolean changed = adapter_changed || state != self->state ||
                       discoverable != self->discoverable || adv_manager != self->adv_manager ||
                       g_strcmp0(reason, self->reason) != 0;
    if (!changed)
        return;

    if (state != self->state || g_strcmp0(reason, self->reason) != 0)
        g_message("%s", reason);
    if (self->adapter != NULL && adv_manager != self->adv_manager) {
        if (adv_manager != NULL)
            g_info("adapter %s offers LE advertising", self->name);
        else if (state == BLUEZ_ADAPTER_STATE_USABLE)
            g_info("adapter %s offers no LE advertising manager (yet)", self->name);
    }
    self->state = state;
    self->discoverable = discoverable;
    g_set_object(&self->adv_manager, adv_manager);
    g_free(self->reason);
    self->reason = g_steal_pointer(&reason);
    g_signal_emit(self, signals[SIGNAL_CHANGED], 0);
}

static gboolean on_evaluate_idle(gpointer user_data)
{
    BluezAdapterWatch *self = user_data;
    self->evaluate_id = 0;
    evaluate(self);
    return G_SOURCE_REMOVE;
}

/* A burst of BlueZ events (bluetoothd exiting removes everything at once) is evaluated
 * once. */
static void queue_evaluate(BluezAdapterWatch *self)
{
    if (self->evaluate_id == 0)
        self->evaluate_id = g_idle_add(on_evaluate_idle, self);
}

/* ---- following org.bluez ---- */

static void set_cached_properties(GDBusProxy *proxy, GVariant *properties)
{
    GVariantIter iter;
    const char *name;
    GVariant *value;
    g_variant_iter_init(&iter, properties);
    while (g_variant_iter_next(&iter, "{&sv}", &name, &value)) {
        g_dbus_proxy_set_cached_property(proxy, name, value);
        g_variant_unref(value);
    }
}

/* Interfaces (a{sa{sv}}) of the object at `path` appeared: TRUE if any matters here. A
 * new proxy each time: a replugged adapter or a new bluetoothd is a new adapter object. */
static gboolean add_interfaces(BluezAdapterWatch *self, const char *path, GVariant *interfaces)
{
    GVariantIter iter;
    const char *iface;
    GVariant *properties;
    gboolean relevant = FALSE;
    g_autofree char *wanted = wanted_path(self);

    if (wanted != NULL && !g_str_equal(path, wanted))
        return FALSE;
    g_variant_iter_init(&iter, interfaces);
    while (g_variant_iter_next(&iter, "{&s@a{sv}}", &iface, &properties)) {
        gboolean is_adapter = g_str_equal(iface, ADAPTER_IFACE);
        if (is_adapter || g_str_equal(iface, ADV_MANAGER_IFACE)) {
            AdapterObject *o = g_hash_table_lookup(self->objects, path);
            if (o == NULL) {
                o = g_new0(AdapterObject, 1);
                g_hash_table_insert(self->objects, g_strdup(path), o);
            }
            g_autoptr(GError) error = NULL;
            GDBusProxy *proxy =
                is_adapter ? G_DBUS_PROXY(bluez_adapter1_proxy_new_sync(
                                 self->connection, PROXY_FLAGS, self->owner, path, NULL, &error))
                           : G_DBUS_PROXY(bluez_le_advertising_manager1_proxy_new_sync(
                                 self->connection, PROXY_FLAGS, self->owner, path, NULL, &error));
            if (proxy == NULL) {
                g_warning("%s on %s: %s", iface, path, error->message);
            } else {
                set_cached_properties(proxy, properties);
                if (is_adapter) {
                    g_clear_object(&o->adapter);
                    o->adapter = BLUEZ_ADAPTER1(proxy);
                } else {
                    g_clear_object(&o->adv_manager);
                    o->adv_manager = BLUEZ_LE_ADVERTISING_MANAGER1(proxy);
                }
                relevant = TRUE;
            }
        }
        g_variant_unref(properties);
    }
    return relevant;
}

static gboolean remove_interfaces(BluezAdapterWatch *self, const char *path,
                                  const char *const *interfaces)
{
    AdapterObject *o = g_hash_table_lookup(self->objects, path);
    if (o == NULL)
        return FALSE;
    gboolean relevant = FALSE;
    for (guint i = 0; interfaces[i] != NULL; i++) {
        if (g_str_equal(interfaces[i], ADAPTER_IFACE) && o->adapter != NULL) {
            g_clear_object(&o->adapter);
            relevant = TRUE;
        } else if (g_str_equal(interfaces[i], ADV_MANAGER_IFACE) && o->adv_manager != NULL) {
            g_clear_object(&o->adv_manager);
            relevant = TRUE;
        }
    }
    if (o->adapter == NULL && o->adv_manager == NULL)
        g_hash_table_remove(self->objects, path);
    return relevant;
}

static gboolean from_owner(BluezAdapterWatch *self, const char *sender)
{
    /* Signals of a bluetoothd that is gone, or from before GetManagedObjects answered (the
     * answer includes what they said), are stale. */
    return self->synced && g_strcmp0(sender, self->owner) == 0;
}

static void on_object_manager_signal(GDBusConnection *connection, const char *sender,
                                     const char *object_path, const char *interface,
                                     const char *signal, GVariant *parameters, gpointer user_data)
{
    BluezAdapterWatch *self = user_data;
    if (!from_owner(self, sender) || !g_str_equal(object_path, "/"))
        return;
    const char *path;
    if (g_str_equal(signal, "InterfacesAdded") &&
        g_variant_is_of_type(parameters, G_VARIANT_TYPE("(oa{sa{sv}})"))) {
        g_autoptr(GVariant) interfaces = NULL;
        g_variant_get(parameters, "(&o@a{sa{sv}})", &path, &interfaces);
        if (add_interfaces(self, path, interfaces))
            queue_evaluate(self);
    } else if (g_str_equal(signal, "InterfacesRemoved") &&
               g_variant_is_of_type(parameters, G_VARIANT_TYPE("(oas)"))) {
        g_autofree const char **interfaces = NULL;
        g_variant_get(parameters, "(&o^a&s)", &path, &interfaces);
        if (remove_interfaces(self, path, interfaces))
            queue_evaluate(self);
    }
}

static void on_properties_signal(GDBusConnection *connection, const char *sender,
                                 const char *object_path, const char *interface, const char *signal,
                                 GVariant *parameters, gpointer user_data)
{
    BluezAdapterWatch *self = user_data;
    if (!from_owner(self, sender) ||
        !g_variant_is_of_type(parameters, G_VARIANT_TYPE("(sa{sv}as)")))
        return;
    const char *iface;
    g_autoptr(GVariant) changed = NULL;
    g_autofree const char **invalidated = NULL;
    g_variant_get(parameters, "(&s@a{sv}^a&s)", &iface, &changed, &invalidated);
    AdapterObject *o = g_hash_table_lookup(self->objects, object_path);
    if (!g_str_equal(iface, ADAPTER_IFACE) || o == NULL || o->adapter == NULL)
        return;
    /* As GDBusObjectManagerClient does: update the cache, then tell the proxy's listeners
     * (the generated class turns this into notify::property). */
    GDBusProxy *proxy = G_DBUS_PROXY(o->adapter);
    set_cached_properties(proxy, changed);
    for (guint i = 0; invalidated[i] != NULL; i++)
        g_dbus_proxy_set_cached_property(proxy, invalidated[i], NULL);
    g_signal_emit_by_name(proxy, "g-properties-changed", changed, invalidated);
    queue_evaluate(self);
}

/* Bus rules for what the watch needs: adapters appearing and leaving, and their Adapter1
 * properties; with a wanted adapter, that one only. Device1 objects never reach us through
 * these: the scanner follows those of the adapter in use only. */
static void subscribe(BluezAdapterWatch *self)
{
    g_clear_pointer(&self->om_match, bluez_match_free);
    g_clear_pointer(&self->props_match, bluez_match_free);
    g_autofree char *path = wanted_path(self);
    g_autofree char *om_rule = NULL;
    if (path != NULL) {
        /* arg0path: the adapter object itself (not its devices, which are below it). */
        om_rule = g_strdup_printf("type='signal',sender='" BLUEZ_NAME "',path='/',"
                                  "interface='" OBJECT_MANAGER_IFACE "',arg0path='%s'",
                                  path);
    } else {
        /* Any adapter may become the one: every object's interfaces (no match rule can tell
         * an adapter's path from a device's; a machine has one bluetoothd and usually one
         * adapter, so this costs little outside simulations, which name their adapter). */
        om_rule = g_strdup("type='signal',sender='" BLUEZ_NAME "',path='/',"
                           "interface='" OBJECT_MANAGER_IFACE "'");
    }
    g_autofree char *props_rule = g_strdup_printf(
        "type='signal',sender='" BLUEZ_NAME "',interface='" PROPERTIES_IFACE "',"
        "member='PropertiesChanged',arg0='" ADAPTER_IFACE "'%s%s%s",
        path != NULL ? ",path='" : "", path != NULL ? path : "", path != NULL ? "'" : "");
    self->om_match = bluez_match_new(self->connection, om_rule, OBJECT_MANAGER_IFACE, NULL, NULL,
                                     on_object_manager_signal, self);
    self->props_match =
        bluez_match_new(self->connection, props_rule, PROPERTIES_IFACE, "PropertiesChanged",
                        ADAPTER_IFACE, on_properties_signal, self);
}

static void sync_objects(BluezAdapterWatch *self);

static gboolean on_sync_retry(gpointer user_data)
{
    BluezAdapterWatch *self = user_data;
    self->sync_retry_id = 0;
    sync_objects(self);
    return G_SOURCE_REMOVE;
}

static void on_managed_objects(GObject *source, GAsyncResult *result, gpointer user_data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reply =
        g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);
    if (reply == NULL && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;
    BluezAdapterWatch *self = user_data;
    g_clear_object(&self->sync_cancellable);
    if (reply == NULL) {
        g_dbus_error_strip_remote_error(error);
        g_warning("cannot read BlueZ's objects: %s (retrying in %d s)", error->message,
                  SYNC_RETRY_SECONDS);
        self->sync_retry_id = g_timeout_add_seconds(SYNC_RETRY_SECONDS, on_sync_retry, self);
        return;
    }
    g_hash_table_remove_all(self->objects);
    g_autoptr(GVariant) objects = g_variant_get_child_value(reply, 0);
    GVariantIter iter;
    const char *path;
    GVariant *interfaces;
    g_variant_iter_init(&iter, objects);
    while (g_variant_iter_next(&iter, "{&o@a{sa{sv}}}", &path, &interfaces)) {
        add_interfaces(self, path, interfaces);
        g_variant_unref(interfaces);
    }
    self->synced = TRUE;
    evaluate(self);
}

/* Reads every object of the current owner (all at once, as an object manager client does):
 * at start, when bluetoothd (re)appears and when the wanted adapter changes. */
static void sync_objects(BluezAdapterWatch *self)
{
    g_clear_handle_id(&self->sync_retry_id, g_source_remove);
    if (self->sync_cancellable != NULL) {
        g_cancellable_cancel(self->sync_cancellable);
        g_clear_object(&self->sync_cancellable);
    }
    if (self->owner == NULL)
        return;
    self->sync_cancellable = g_cancellable_new();
    g_dbus_connection_call(self->connection, self->owner, "/", OBJECT_MANAGER_IFACE,
                           "GetManagedObjects", NULL, G_VARIANT_TYPE("(a{oa{sa{sv}}})"),
                           G_DBUS_CALL_FLAGS_NO_AUTO_START, -1, self->sync_cancellable,
                           on_managed_objects, self);
}

static void forget_objects(BluezAdapterWatch *self)
{
    self->synced = FALSE;
    g_clear_handle_id(&self->sync_retry_id, g_source_remove);
    if (self->sync_cancellable != NULL) {
        g_cancellable_cancel(self->sync_cancellable);
        g_clear_object(&self->sync_cancellable);
    }
    g_hash_table_remove_all(self->objects);
}

static void on_name_appeared(GDBusConnection *connection, const char *name, const char *owner,
                             gpointer user_data)
{
    BluezAdapterWatch *self = user_data;
    self->name_known = TRUE;
    if (g_strcmp0(owner, self->owner) == 0)
        return;
    g_info("org.bluez is now owned by %s", owner);
    forget_objects(self);
    g_free(self->owner);
    self->owner = g_strdup(owner);
    sync_objects(self);
    queue_evaluate(self);
}

static void on_name_vanished(GDBusConnection *connection, const char *name, gpointer user_data)
{
    BluezAdapterWatch *self = user_data;
    self->name_known = TRUE;
    /* bluetoothd exited: everything it exported went with it. */
    forget_objects(self);
    g_clear_pointer(&self->owner, g_free);
    queue_evaluate(self);
}

void bluez_adapter_watch_start(BluezAdapterWatch *self)
{
    g_return_if_fail(BLUEZ_IS_ADAPTER_WATCH(self));
    if (self->started)
        return;
    self->started = TRUE;
    subscribe(self);
    /* Do not auto-start bluetoothd: whether Bluetooth runs is the system's decision; we
     * follow it when it appears. */
    self->name_watch_id =
        g_bus_watch_name_on_connection(self->connection, BLUEZ_NAME, G_BUS_NAME_WATCHER_FLAGS_NONE,
                                       on_name_appeared, on_name_vanished, self, NULL);
}

void bluez_adapter_watch_stop(BluezAdapterWatch *self)
{
    g_return_if_fail(BLUEZ_IS_ADAPTER_WATCH(self));
    self->started = FALSE;
    g_clear_handle_id(&self->name_watch_id, g_bus_unwatch_name);
    g_clear_handle_id(&self->evaluate_id, g_source_remove);
    g_clear_pointer(&self->om_match, bluez_match_free);
    g_clear_pointer(&self->props_match, bluez_match_free);
    forget_objects(self);
    g_clear_pointer(&self->owner, g_free);
    self->name_known = FALSE;
}

void bluez_adapter_watch_set_wanted(BluezAdapterWatch *self, const char *wanted)
{
    g_return_if_fail(BLUEZ_IS_ADAPTER_WATCH(self));
    if (g_strcmp0(wanted, self->wanted) == 0)
        return;
    g_free(self->wanted);
    self->wanted = g_strdup(wanted);
    g_message("adapter selection: %s", wanted != NULL ? wanted : "any");
    if (self->started) {
        /* Other rules, and objects we did not keep: read them again. */
        subscribe(self);
        sync_objects(self);
    }
    evaluate(self);
}

BluezAdapterState bluez_adapter_watch_get_state(BluezAdapterWatch *self)
{
    g_return_val_if_fail(BLUEZ_IS_ADAPTER_WATCH(self), BLUEZ_ADAPTER_STATE_STARTING);
    return self->state;
}

const char *bluez_adapter_watch_get_reason(BluezAdapterWatch *self)
{
    g_return_val_if_fail(BLUEZ_IS_ADAPTER_WATCH(self), NULL);
    return self->reason;
}

const char *bluez_adapter_watch_get_name(BluezAdapterWatch *self)
{
    g_return_val_if_fail(BLUEZ_IS_ADAPTER_WATCH(self), NULL);
    return self->name;
}

const char *bluez_adapter_watch_get_path(BluezAdapterWatch *self)
{
    g_return_val_if_fail(BLUEZ_IS_ADAPTER_WATCH(self), NULL);
    return self->path;
}

BluezAdapter1 *bluez_adapter_watch_get_adapter(BluezAdapterWatch *self)
{
    g_return_val_if_fail(BLUEZ_IS_ADAPTER_WATCH(self), NULL);
    return self->adapter;
}

BluezLeAdvertisingManager1 *bluez_adapter_watch_get_advertising_manager(BluezAdapterWatch *self)
{
    g_return_val_if_fail(BLUEZ_IS_ADAPTER_WATCH(self), NULL);
    return self->adv_manager;
}

gboolean bluez_adapter_watch_get_discoverable(BluezAdapterWatch *self)
{
    g_return_val_if_fail(BLUEZ_IS_ADAPTER_WATCH(self), FALSE);
    return self->discoverable;
}

GDBusConnection *bluez_adapter_watch_get_connection(BluezAdapterWatch *self)
{
    g_return_val_if_fail(BLUEZ_IS_ADAPTER_WATCH(self), NULL);
    return self->connection;
}

static void bluez_adapter_watch_dispose(GObject *object)
{
    BluezAdapterWatch *self = BLUEZ_ADAPTER_WATCH(object);
    g_clear_handle_id(&self->name_watch_id, g_bus_unwatch_name);
    g_clear_handle_id(&self->evaluate_id, g_source_remove);
    g_clear_pointer(&self->om_match, bluez_match_free);
    g_clear_pointer(&self->props_match, bluez_match_free);
    forget_objects(self);
    set_adapter(self, NULL);
    g_clear_object(&self->adv_manager);
    g_clear_object(&self->connection);
    G_OBJECT_CLASS(bluez_adapter_watch_parent_class)->dispose(object);
}

static void bluez_adapter_watch_finalize(GObject *object)
{
    BluezAdapterWatch *self = BLUEZ_ADAPTER_WATCH(object);
    g_hash_table_unref(self->objects);
    g_free(self->owner);
    g_free(self->wanted);
    g_free(self->reason);
    G_OBJECT_CLASS(bluez_adapter_watch_parent_class)->finalize(object);
}

static void bluez_adapter_watch_class_init(BluezAdapterWatchClass *klass)
{
    GObjectClass *object_class = G_OBJECT_CLASS(klass);
    object_class->dispose = bluez_adapter_watch_dispose;
    object_class->finalize = bluez_adapter_watch_finalize;

    /* State, adapter object, advertising manager, Discoverable or the reason changed. */
    signals[SIGNAL_CHANGED] = g_signal_new("changed", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST,
                                           0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void bluez_adapter_watch_init(BluezAdapterWatch *self)
{
    self->objects =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)adapter_object_free);
    self->state = BLUEZ_ADAPTER_STATE_STARTING;
    self->reason = g_strdup("connecting to BlueZ");
}

BluezAdapterWatch *bluez_adapter_watch_new(GDBusConnection *connection, const char *wanted)
{
    g_return_val_if_fail(G_IS_DBUS_CONNECTION(connection), NULL);
    BluezAdapterWatch *self = g_object_new(BLUEZ_TYPE_ADAPTER_WATCH, NULL);
    self->connection = g_object_ref(connection);
    self->wanted = g_strdup(wanted);
    return self;
}
