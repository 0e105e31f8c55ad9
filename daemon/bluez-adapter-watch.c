/* bluez-adapter-watch.c - follows org.bluez and picks the adapter proxd uses. */
#define G_LOG_DOMAIN "proxd-adapter"

#include "bluez-adapter-watch.h"

#include <string.h>

#define BLUEZ_NAME "org.bluez"
#define ADAPTER_IFACE "org.bluez.Adapter1"
#define ADV_MANAGER_IFACE "org.bluez.LEAdvertisingManager1"
/* Retry creating the object manager client (only fails if the bus connection does). */
#define CREATE_RETRY_SECONDS 2

struct _BluezAdapterWatch {
    GObject parent_instance;

    GDBusConnection *connection;
    char *wanted;
    GCancellable *cancellable;
    GDBusObjectManager *manager;
    guint create_retry_id;
    guint evaluate_id;
    gboolean started;

    /* The adapter in use and what we last told listeners. */
    GDBusObject *object;
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

static gboolean object_usable(GDBusObject *object)
{
    g_autoptr(GDBusInterface) iface = g_dbus_object_get_interface(object, ADAPTER_IFACE);
    return iface != NULL && bluez_adapter1_get_powered(BLUEZ_ADAPTER1(iface));
}

/* The adapter object to use now, or NULL. */
static GDBusObject *choose_adapter(BluezAdapterWatch *self)
{
    GList *objects = g_dbus_object_manager_get_objects(self->manager);
    GDBusObject *best = NULL;
    gboolean best_usable = FALSE;
    guint best_index = G_MAXUINT;
    gboolean keep_current = FALSE;

    for (GList *l = objects; l != NULL; l = l->next) {
        GDBusObject *object = l->data;
        g_autoptr(GDBusInterface) iface = g_dbus_object_get_interface(object, ADAPTER_IFACE);
        if (iface == NULL)
            continue;
        const char *name = path_basename(g_dbus_object_get_object_path(object));
        if (self->wanted != NULL) {
            if (g_str_equal(name, self->wanted)) {
                best = object;
                break;
            }
            continue;
        }
        gboolean usable = object_usable(object);
        if (object == self->object && usable) {
            keep_current = TRUE;
            break;
        }
        guint index = adapter_index(name);
        if (best == NULL || (usable && !best_usable) ||
            (usable == best_usable && index < best_index)) {
            best = object;
            best_usable = usable;
            best_index = index;
        }
    }
    if (keep_current)
        best = self->object;
    if (best != NULL)
        g_object_ref(best);
    g_list_free_full(objects, g_object_unref);
    return best;
}

static void set_adapter(BluezAdapterWatch *self, GDBusObject *object)
{
    if (object == self->object)
        return;
    g_clear_object(&self->object);
    g_clear_object(&self->adapter);
    g_clear_pointer(&self->name, g_free);
    g_clear_pointer(&self->path, g_free);
    if (object == NULL)
        return;
    self->object = g_object_ref(object);
    self->adapter = BLUEZ_ADAPTER1(g_dbus_object_get_interface(object, ADAPTER_IFACE));
    self->path = g_strdup(g_dbus_object_get_object_path(object));
    self->name = g_strdup(path_basename(self->path));
}

/* Recomputes everything; emits "changed" and logs when something differs. */
static void evaluate(BluezAdapterWatch *self)
{
    BluezAdapterState state = BLUEZ_ADAPTER_STATE_STARTING;
    g_autofree char *reason = NULL;
    g_autoptr(GDBusObject) object = NULL;
    g_autoptr(GDBusInterface) adv = NULL;
    gboolean discoverable = FALSE;

    if (!self->started || self->manager == NULL) {
        state = BLUEZ_ADAPTER_STATE_STARTING;
        reason = g_strdup("connecting to BlueZ");
    } else {
        g_autofree char *owner = g_dbus_object_manager_client_get_name_owner(
            G_DBUS_OBJECT_MANAGER_CLIENT(self->manager));
        if (owner == NULL) {
            state = BLUEZ_ADAPTER_STATE_UNAVAILABLE;
            reason = g_strdup("bluetoothd is not running (nobody owns org.bluez on the bus)");
        } else {
            object = choose_adapter(self);
            if (object == NULL) {
                state = BLUEZ_ADAPTER_STATE_NO_ADAPTER;
                reason = self->wanted != NULL
                             ? g_strdup_printf("Bluetooth adapter %s is not present", self->wanted)
                             : g_strdup("no Bluetooth adapter is present");
            }
        }
    }

    gboolean adapter_changed = object != self->object;
    set_adapter(self, object);
    if (self->adapter != NULL) {
        BluezAdapter1 *adapter = self->adapter;
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
        adv = g_dbus_object_get_interface(self->object, ADV_MANAGER_IFACE);
    }

    BluezLeAdvertisingManager1 *adv_manager =
        adv != NULL ? BLUEZ_LE_ADVERTISING_MANAGER1(adv) : NULL;
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

/* BlueZ events are evaluated once the object manager has finished applying them (it emits
 * interface-removed before the interface leaves the object), and a burst of them (bluetoothd
 * exiting removes everything at once) is evaluated once. */
static void queue_evaluate(BluezAdapterWatch *self)
{
    if (self->evaluate_id == 0)
        self->evaluate_id = g_idle_add(on_evaluate_idle, self);
}

static gboolean object_is_adapter(GDBusObject *object)
{
    g_autoptr(GDBusInterface) iface = g_dbus_object_get_interface(object, ADAPTER_IFACE);
    return iface != NULL;
}

static void on_object_added_or_removed(GDBusObjectManager *manager, GDBusObject *object,
                                       gpointer user_data)
{
    BluezAdapterWatch *self = user_data;
    /* Device objects come and go all the time; only adapters (or our own object) matter. */
    if (object == self->object || object_is_adapter(object))
        queue_evaluate(self);
}

static void on_interface_added_or_removed(GDBusObjectManager *manager, GDBusObject *object,
                                          GDBusInterface *interface, gpointer user_data)
{
    BluezAdapterWatch *self = user_data;
    /* Interfaces not in our XML (GattManager1, Media1 ...) have no interface info. */
    const char *name = g_dbus_proxy_get_interface_name(G_DBUS_PROXY(interface));
    if (g_str_equal(name, ADAPTER_IFACE) || g_str_equal(name, ADV_MANAGER_IFACE))
        queue_evaluate(self);
}

static void
on_interface_properties_changed(GDBusObjectManagerClient *manager, GDBusObjectProxy *object_proxy,
                                GDBusProxy *interface_proxy, GVariant *changed_properties,
                                const char *const *invalidated_properties, gpointer user_data)
{
    BluezAdapterWatch *self = user_data;
    if (g_str_equal(g_dbus_proxy_get_interface_name(interface_proxy), ADAPTER_IFACE))
        queue_evaluate(self);
}

static void on_name_owner_changed(GObject *object, GParamSpec *pspec, gpointer user_data)
{
    BluezAdapterWatch *self = user_data;
    g_autofree char *owner =
        g_dbus_object_manager_client_get_name_owner(G_DBUS_OBJECT_MANAGER_CLIENT(object));
    if (owner != NULL)
        g_info("org.bluez is now owned by %s", owner);
    queue_evaluate(self);
}

static void create_manager(BluezAdapterWatch *self);

static gboolean on_create_retry(gpointer user_data)
{
    BluezAdapterWatch *self = user_data;
    self->create_retry_id = 0;
    create_manager(self);
    return G_SOURCE_REMOVE;
}

static void on_manager_created(GObject *source, GAsyncResult *result, gpointer user_data)
{
    g_autoptr(GError) error = NULL;
    GDBusObjectManager *manager = bluez_object_manager_client_new_finish(result, &error);
    if (manager == NULL) {
        if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
            return;
        BluezAdapterWatch *self = user_data;
        g_warning("cannot follow org.bluez: %s (retrying in %d s)", error->message,
                  CREATE_RETRY_SECONDS);
        self->create_retry_id = g_timeout_add_seconds(CREATE_RETRY_SECONDS, on_create_retry, self);
        return;
    }
    BluezAdapterWatch *self = user_data;
    self->manager = manager;
    g_signal_connect_object(manager, "object-added", G_CALLBACK(on_object_added_or_removed), self,
                            0);
    g_signal_connect_object(manager, "object-removed", G_CALLBACK(on_object_added_or_removed), self,
                            0);
    g_signal_connect_object(manager, "interface-added", G_CALLBACK(on_interface_added_or_removed),
                            self, 0);
    g_signal_connect_object(manager, "interface-removed", G_CALLBACK(on_interface_added_or_removed),
                            self, 0);
    g_signal_connect_object(manager, "interface-proxy-properties-changed",
                            G_CALLBACK(on_interface_properties_changed), self, 0);
    g_signal_connect_object(manager, "notify::name-owner", G_CALLBACK(on_name_owner_changed), self,
                            0);
    evaluate(self);
}

static void create_manager(BluezAdapterWatch *self)
{
    /* Do not auto-start bluetoothd: whether Bluetooth runs is the system's decision; we
     * follow it when it appears. */
    bluez_object_manager_client_new(self->connection,
                                    G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_DO_NOT_AUTO_START,
                                    BLUEZ_NAME, "/", self->cancellable, on_manager_created, self);
}

void bluez_adapter_watch_start(BluezAdapterWatch *self)
{
    g_return_if_fail(BLUEZ_IS_ADAPTER_WATCH(self));
    if (self->started)
        return;
    self->started = TRUE;
    create_manager(self);
}

void bluez_adapter_watch_stop(BluezAdapterWatch *self)
{
    g_return_if_fail(BLUEZ_IS_ADAPTER_WATCH(self));
    self->started = FALSE;
    g_cancellable_cancel(self->cancellable);
    g_clear_handle_id(&self->create_retry_id, g_source_remove);
    g_clear_handle_id(&self->evaluate_id, g_source_remove);
    if (self->manager != NULL) {
        g_signal_handlers_disconnect_by_data(self->manager, self);
        g_clear_object(&self->manager);
    }
}

void bluez_adapter_watch_set_wanted(BluezAdapterWatch *self, const char *wanted)
{
    g_return_if_fail(BLUEZ_IS_ADAPTER_WATCH(self));
    if (g_strcmp0(wanted, self->wanted) == 0)
        return;
    g_free(self->wanted);
    self->wanted = g_strdup(wanted);
    g_message("adapter selection: %s", wanted != NULL ? wanted : "any");
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

GDBusObjectManager *bluez_adapter_watch_get_object_manager(BluezAdapterWatch *self)
{
    g_return_val_if_fail(BLUEZ_IS_ADAPTER_WATCH(self), NULL);
    return self->manager;
}

static void bluez_adapter_watch_dispose(GObject *object)
{
    BluezAdapterWatch *self = BLUEZ_ADAPTER_WATCH(object);
    g_cancellable_cancel(self->cancellable);
    g_clear_handle_id(&self->create_retry_id, g_source_remove);
    g_clear_handle_id(&self->evaluate_id, g_source_remove);
    if (self->manager != NULL) {
        g_signal_handlers_disconnect_by_data(self->manager, self);
        g_clear_object(&self->manager);
    }
    set_adapter(self, NULL);
    g_clear_object(&self->adv_manager);
    g_clear_object(&self->cancellable);
    g_clear_object(&self->connection);
    G_OBJECT_CLASS(bluez_adapter_watch_parent_class)->dispose(object);
}

static void bluez_adapter_watch_finalize(GObject *object)
{
    BluezAdapterWatch *self = BLUEZ_ADAPTER_WATCH(object);
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
    self->cancellable = g_cancellable_new();
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
