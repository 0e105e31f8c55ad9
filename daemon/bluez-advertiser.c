/* bluez-advertiser.c - exports, registers and rotates our LEAdvertisement1. */
#define G_LOG_DOMAIN "proxd-advertiser"

#include "bluez-advertiser.h"

#include <sodium.h>

#include "prox-keys.h"
#include "prox-payload.h"

/* Retry a failed registration after 1, 2, 4 ... at most 60 s; any change reported by the
 * adapter watch retries at once. */
#define RETRY_MIN_SECONDS 1
#define RETRY_MAX_SECONDS 60
/* Retry every second this many times first: after bluetoothd dies while discovering, the
 * kernel keeps scanning for up to 10.24 s and registration fails until it stops. */
#define FAST_RETRIES 15
#define STOP_TIMEOUT_MS 1000

typedef enum {
    REG_NONE,
    REG_PENDING, /* RegisterAdvertisement in flight */
    REG_DONE,
} RegState;

struct _BluezAdvertiser {
    GObject parent_instance;

    GDBusConnection *connection;
    BluezAdapterWatch *watch;
    ProxdClock *clock;
    ProxdConfig *config;
    ProxStore *store;
    BluezScanner *scanner;
    BluezLeAdvertisement1 *skeleton;
    gboolean started;
    gboolean stopping;

    RegState reg;
    BluezLeAdvertisingManager1 *reg_manager; /* the manager of reg (PENDING or DONE) */
    guint retry_id;
    guint retry_seconds;
    guint retry_count;
    guint update_id;

    gboolean have_id;
    GVariant *service_data;   /* the current identifier, a{sv}, not yet on the skeleton while
                               * a refresh waits for discovery to stop */
    gboolean refresh_pending; /* a re-registration for new data is under way */
    gint64 rotation_ends;     /* unix seconds */
    guint rotation_id;

    gboolean advertising;
    char *reason;
};

G_DEFINE_TYPE(BluezAdvertiser, bluez_advertiser, G_TYPE_OBJECT)

enum {
    PROP_0,
    PROP_ADVERTISING,
    PROP_ROTATION_ENDS,
    PROP_REASON,
    N_PROPS,
};
static GParamSpec *props[N_PROPS];

static void update(BluezAdvertiser *self);
static void rotate(BluezAdvertiser *self);
static BluezLeAdvertisingManager1 *wanted_manager(BluezAdvertiser *self, char **why);

static void set_advertising(BluezAdvertiser *self, gboolean advertising)
{
    if (self->advertising == advertising)
        return;
    self->advertising = advertising;
    g_object_notify_by_pspec(G_OBJECT(self), props[PROP_ADVERTISING]);
}

static void set_reason(BluezAdvertiser *self, const char *reason)
{
    if (g_strcmp0(self->reason, reason) == 0)
        return;
    g_free(self->reason);
    self->reason = g_strdup(reason);
    if (reason != NULL)
        g_message("not advertising: %s", reason);
    g_object_notify_by_pspec(G_OBJECT(self), props[PROP_REASON]);
}

/* ---- the identifier ---- */

static void on_rotation_timer(gpointer user_data)
{
    BluezAdvertiser *self = user_data;
    self->rotation_id = 0;
    rotate(self);
}

/* Puts self->service_data on the skeleton (PropertiesChanged goes out now, not from an idle). */
static void publish_service_data(BluezAdvertiser *self)
{
    bluez_le_advertisement1_set_service_data(self->skeleton, self->service_data);
    g_dbus_interface_skeleton_flush(G_DBUS_INTERFACE_SKELETON(self->skeleton));
}

/* The same, but not while a registration is under way: bluetoothd may have read the object
 * and put it on the air already, and would take the change as an in-place refresh (the new
 * identifier from the old address on legacy controllers); on_register_reply re-registers
 * with it instead, and a registration not sent yet publishes the newest data itself. */
static void apply_service_data(BluezAdvertiser *self)
{
    if (self->reg != REG_PENDING)
        publish_service_data(self);
}

/* Whether bluetoothd has (or is reading) other data than the newest identifier's. */
static gboolean service_data_stale(BluezAdvertiser *self)
{
    GVariant *published = bluez_le_advertisement1_get_service_data(self->skeleton);
    if (self->service_data == NULL)
        return FALSE;
    return published == NULL || !g_variant_equal(published, self->service_data);
}

static void refresh(BluezAdvertiser *self);

/* Derives the identifier for now from the TEK covering now and puts it on the air,
 * together with a fresh address (see refresh()). */
static void rotate(BluezAdvertiser *self)
{
    const ProxdSettings *settings = proxd_config_get(self->config);
    gint64 now = proxd_clock_now(self->clock);
    g_autoptr(GError) error = NULL;
    ProxTek tek = {0};
    uint8_t metadata[PROX_METADATA_LEN];
    ProxBroadcastId id;

    g_clear_handle_id(&self->rotation_id, g_source_remove);

    prox_metadata_encode((int8_t)settings->tx_power, metadata);
    if (!prox_store_get_or_create_tek(self->store, now, prox_random_system, NULL, &tek, &error) ||
        !prox_broadcast_id_at(&tek, now, metadata, &id)) {
        g_warning("cannot derive the broadcast identifier: %s",
                  error != NULL ? error->message : "the TEK does not cover now");
        self->have_id = FALSE;
        /* Try again in a minute: the store may recover (disk full, lock). */
        self->rotation_ends = now + 60;
    } else {
        uint8_t data[PROX_SERVICE_DATA_LEN];
        prox_service_data_encode(&id.rpi, &id.aem, data);

        GVariantBuilder sd;
        g_variant_builder_init(&sd, G_VARIANT_TYPE("a{sv}"));
        g_variant_builder_add(
            &sd, "{sv}", PROX_SERVICE_UUID,
            g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, data, sizeof data, sizeof(uint8_t)));
        g_clear_pointer(&self->service_data, g_variant_unref);
        self->service_data = g_variant_ref_sink(g_variant_builder_end(&sd));
        refresh(self);
        self->have_id = TRUE;
        self->rotation_ends = prox_rotation_next(now, prox_random_system, NULL);
        g_debug("new broadcast identifier (interval %u), next rotation in %" G_GINT64_FORMAT " s",
                id.enin, self->rotation_ends - now);
    }
    sodium_memzero(&tek, sizeof tek);
    self->rotation_id = proxd_clock_call_at(self->clock, self->rotation_ends * G_USEC_PER_SEC,
                                            on_rotation_timer, self);
    g_object_notify_by_pspec(G_OBJECT(self), props[PROP_ROTATION_ENDS]);
    update(self);
}

/* The kernel made the advertisement connectable and sent it from the public address before
 * we could withdraw it: the current RPI is linked to the device now. Rotate at the next
 * interval boundary (the first moment a different RPI exists) rather than 10-20 minutes
 * after the last rotation. */
static void rotate_soon(BluezAdvertiser *self)
{
    gint64 now = proxd_clock_now(self->clock);
    gint64 boundary = prox_interval_start(prox_interval_number(now) + 1);
    if (self->rotation_ends != 0 && boundary >= self->rotation_ends)
        return;
    g_message("identifier exposed with the public address: rotating at the next interval");
    g_clear_handle_id(&self->rotation_id, g_source_remove);
    self->rotation_ends = boundary;
    self->rotation_id =
        proxd_clock_call_at(self->clock, boundary * G_USEC_PER_SEC, on_rotation_timer, self);
    g_object_notify_by_pspec(G_OBJECT(self), props[PROP_ROTATION_ENDS]);
}

/* ---- registration ---- */

typedef struct {
    BluezAdvertiser *self; /* strong ref */
    BluezLeAdvertisingManager1 *manager;
} CallData;

static void call_data_free(CallData *data)
{
    g_object_unref(data->self);
    g_object_unref(data->manager);
    g_free(data);
}

static CallData *call_data_new(BluezAdvertiser *self, BluezLeAdvertisingManager1 *manager)
{
    CallData *data = g_new0(CallData, 1);
    data->self = g_object_ref(self);
    data->manager = g_object_ref(manager);
    return data;
}

static gboolean on_retry(gpointer user_data)
{
    BluezAdvertiser *self = user_data;
    self->retry_id = 0;
    update(self);
    return G_SOURCE_REMOVE;
}

static void schedule_retry(BluezAdvertiser *self)
{
    g_clear_handle_id(&self->retry_id, g_source_remove);
    self->retry_id = g_timeout_add_seconds(self->retry_seconds, on_retry, self);
    self->retry_seconds = ++self->retry_count < FAST_RETRIES
                              ? RETRY_MIN_SECONDS
                              : MIN(self->retry_seconds * 2, RETRY_MAX_SECONDS);
}

static void on_register_reply(GObject *source, GAsyncResult *result, gpointer user_data)
{
    CallData *data = user_data;
    BluezAdvertiser *self = data->self;
    g_autoptr(GError) error = NULL;
    gboolean ok = bluez_le_advertising_manager1_call_register_advertisement_finish(
        BLUEZ_LE_ADVERTISING_MANAGER1(source), result, &error);
    bluez_scanner_release(self->scanner);

    if (self->reg != REG_PENDING || self->reg_manager != data->manager) {
        /* That manager is gone (bluetoothd restarted, adapter unplugged) and took the
         * registration with it. */
        call_data_free(data);
        return;
    }
    if (!ok) {
        g_autofree char *remote = g_dbus_error_get_remote_error(error);
        if (g_strcmp0(remote, "org.bluez.Error.AlreadyExists") == 0) {
            ok = TRUE;
        } else {
            g_dbus_error_strip_remote_error(error);
            g_warning("RegisterAdvertisement on %s failed: %s%s%s (retrying in %u s)",
                      bluez_adapter_watch_get_name(self->watch), error->message,
                      remote != NULL ? " / " : "", remote != NULL ? remote : "",
                      self->retry_seconds);
        }
    }
    if (ok) {
        self->reg = REG_DONE;
        self->retry_seconds = RETRY_MIN_SECONDS;
        self->retry_count = 0;
        g_message("advertising on %s", bluez_adapter_watch_get_name(self->watch));
        if (service_data_stale(self)) {
            /* Rotated while bluetoothd was registering: the new identifier goes out in a
             * registration of its own. */
            g_debug("identifier rotated during the registration: registering again");
            refresh(self);
        }
    } else {
        self->reg = REG_NONE;
        g_clear_object(&self->reg_manager);
        schedule_retry(self);
    }
    call_data_free(data);
    update(self);
}

static void on_quiet_for_register(gpointer user_data)
{
    CallData *data = user_data;
    BluezAdvertiser *self = data->self;

    if (self->reg != REG_PENDING || self->reg_manager != data->manager ||
        wanted_manager(self, NULL) != data->manager) {
        /* Things changed while discovery was stopping (discoverable, adapter gone). */
        if (self->reg == REG_PENDING && self->reg_manager == data->manager) {
            self->reg = REG_NONE;
            g_clear_object(&self->reg_manager);
        }
        bluez_scanner_release(self->scanner);
        call_data_free(data);
        update(self);
        return;
    }
    publish_service_data(self);
    /* Asynchronous: bluetoothd calls back into this process (Properties.GetAll on the
     * advertisement) before it replies. */
    bluez_le_advertising_manager1_call_register_advertisement(
        data->manager, BLUEZ_ADVERTISER_OBJECT_PATH,
        g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0), G_DBUS_CALL_FLAGS_NONE, -1, NULL,
        on_register_reply, data);
}

/* Registers with discovery held off: on controllers with legacy advertising bluetoothd
 * fails RegisterAdvertisement (org.bluez.Error.Failed) while the controller scans. */
static void do_register(BluezAdvertiser *self, BluezLeAdvertisingManager1 *manager)
{
    self->reg = REG_PENDING;
    g_set_object(&self->reg_manager, manager);
    bluez_scanner_hold(self->scanner, on_quiet_for_register, call_data_new(self, manager));
}

static void on_unregister_reply(GObject *source, GAsyncResult *result, gpointer user_data)
{
    CallData *data = user_data;
    g_autoptr(GError) error = NULL;
    if (!bluez_le_advertising_manager1_call_unregister_advertisement_finish(
            BLUEZ_LE_ADVERTISING_MANAGER1(source), result, &error)) {
        g_dbus_error_strip_remote_error(error);
        g_debug("UnregisterAdvertisement: %s", error->message);
    }
    call_data_free(data);
}

static void do_unregister(BluezAdvertiser *self)
{
    BluezLeAdvertisingManager1 *manager = self->reg_manager;
    bluez_le_advertising_manager1_call_unregister_advertisement(
        manager, BLUEZ_ADVERTISER_OBJECT_PATH, G_DBUS_CALL_FLAGS_NONE, -1, NULL,
        on_unregister_reply, call_data_new(self, manager));
    self->reg = REG_NONE;
    g_clear_object(&self->reg_manager);
}

/* ---- rotation ---- */

static void on_rotation_unregistered(GObject *source, GAsyncResult *result, gpointer user_data)
{
    CallData *data = user_data;
    BluezAdvertiser *self = data->self;
    g_autoptr(GError) error = NULL;
    if (!bluez_le_advertising_manager1_call_unregister_advertisement_finish(
            BLUEZ_LE_ADVERTISING_MANAGER1(source), result, &error)) {
        g_dbus_error_strip_remote_error(error);
        g_debug("UnregisterAdvertisement for rotation: %s", error->message);
    }
    if (self->reg == REG_DONE && self->reg_manager == data->manager) {
        self->reg = REG_NONE;
        g_clear_object(&self->reg_manager);
    }
    apply_service_data(self);
    /* Registers again (taking its own hold) before this hold ends, so discovery does not
     * restart in between. */
    update(self);
    self->refresh_pending = FALSE;
    bluez_scanner_release(self->scanner);
    call_data_free(data);
}

static void on_quiet_for_rotation(gpointer user_data)
{
    CallData *data = user_data;
    BluezAdvertiser *self = data->self;

    if (self->reg != REG_DONE || self->reg_manager != data->manager || self->stopping) {
        /* Lost meanwhile: the next registration carries the new data anyway. */
        apply_service_data(self);
        self->refresh_pending = FALSE;
        bluez_scanner_release(self->scanner);
        call_data_free(data);
        update(self);
        return;
    }
    bluez_le_advertising_manager1_call_unregister_advertisement(
        data->manager, BLUEZ_ADVERTISER_OBJECT_PATH, G_DBUS_CALL_FLAGS_NONE, -1, NULL,
        on_rotation_unregistered, data);
}

/* New data for a registered advertisement goes out by unregistering and registering again,
 * with our discovery held off: a new registration starts from a fresh non-resolvable
 * address on every controller, while an in-place update (PropertiesChanged) on a legacy
 * advertising controller sends the new data from the old address first (the kernel sets
 * the data before it re-enables advertising with the new address; seen with bluetoothd 5.66
 * in tests/vm), which links the two identifiers. An unregistered advertisement just keeps
 * the data for its next registration. */
static void refresh(BluezAdvertiser *self)
{
    if (self->reg != REG_DONE || self->stopping) {
        apply_service_data(self);
        return;
    }
    if (self->refresh_pending)
        return; /* the re-registration under way takes the newest data */
    self->refresh_pending = TRUE;
    bluez_scanner_hold(self->scanner, on_quiet_for_rotation,
                       call_data_new(self, self->reg_manager));
}

/* The advertising manager to be registered with now, or NULL with *why (may be NULL: the
 * adapter watch's reason says it all) saying why not. */
static BluezLeAdvertisingManager1 *wanted_manager(BluezAdvertiser *self, char **why_out)
{
    const ProxdSettings *settings = proxd_config_get(self->config);
    BluezAdapterState state = bluez_adapter_watch_get_state(self->watch);
    BluezLeAdvertisingManager1 *manager = bluez_adapter_watch_get_advertising_manager(self->watch);
    const char *name = bluez_adapter_watch_get_name(self->watch);
    g_autofree char *why = NULL;
    gboolean want = FALSE;

    if (!self->started || self->stopping)
        why = g_strdup("proxd is stopping");
    else if (!settings->advertise)
        why = g_strdup("advertising is disabled in the configuration ([Advertising] Enabled)");
    else if (state != BLUEZ_ADAPTER_STATE_USABLE)
        why = NULL; /* the adapter watch's reason says it all */
    else if (manager == NULL)
        why =
            g_strdup_printf("adapter %s offers no LE advertising (no LEAdvertisingManager1)", name);
    else if (bluez_adapter_watch_get_discoverable(self->watch))
        why = g_strdup_printf("paused while adapter %s is discoverable: the kernel would make "
                              "the advertisement connectable and send it from the public address",
                              name);
    else if (!self->have_id)
        why = g_strdup("no broadcast identifier (the store cannot provide a key)");
    else
        want = TRUE;
    if (why_out != NULL)
        *why_out = g_steal_pointer(&why);
    return want ? manager : NULL;
}

/* Brings the registration in line with what the adapter allows. */
static void update(BluezAdvertiser *self)
{
    BluezLeAdvertisingManager1 *manager = bluez_adapter_watch_get_advertising_manager(self->watch);
    g_autofree char *why = NULL;
    gboolean want = wanted_manager(self, &why) != NULL;

    if (self->reg != REG_NONE && self->reg_manager != manager) {
        /* bluetoothd restarted or the adapter went away: it lost our registration. */
        self->reg = REG_NONE;
        g_clear_object(&self->reg_manager);
    }
    if (self->reg == REG_DONE && !want) {
        do_unregister(self);
        if (bluez_adapter_watch_get_discoverable(self->watch))
            rotate_soon(self);
    } else if (self->reg == REG_NONE && want && self->retry_id == 0)
        do_register(self, manager);

    set_advertising(self, self->reg == REG_DONE);
    set_reason(self, want ? NULL : why);
}

static gboolean on_update_idle(gpointer user_data)
{
    BluezAdvertiser *self = user_data;
    self->update_id = 0;
    update(self);
    return G_SOURCE_REMOVE;
}

static void on_watch_changed(BluezAdapterWatch *watch, gpointer user_data)
{
    BluezAdvertiser *self = user_data;
    /* Something changed: whatever failed before may work now. */
    g_clear_handle_id(&self->retry_id, g_source_remove);
    self->retry_seconds = RETRY_MIN_SECONDS;
    self->retry_count = 0;
    update(self);
}

static void on_config_changed(ProxdConfig *config, gpointer user_data)
{
    /* TX power applies from the next rotation; Enabled at once. */
    update(user_data);
}

static gboolean on_handle_release(BluezLeAdvertisement1 *skeleton,
                                  GDBusMethodInvocation *invocation, gpointer user_data)
{
    BluezAdvertiser *self = user_data;
    const char *sender = g_dbus_method_invocation_get_sender(invocation);

    g_message("BlueZ (%s) released the advertisement", sender);
    if (self->reg == REG_DONE) {
        self->reg = REG_NONE;
        g_clear_object(&self->reg_manager);
    }
    bluez_le_advertisement1_complete_release(skeleton, invocation);
    /* Re-register once the adapter watch has seen whatever caused the release. */
    if (self->update_id == 0)
        self->update_id = g_idle_add(on_update_idle, self);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- public ---- */

void bluez_advertiser_start(BluezAdvertiser *self)
{
    g_return_if_fail(BLUEZ_IS_ADVERTISER(self));
    if (self->started)
        return;
    self->started = TRUE;
    g_signal_connect_object(self->watch, "changed", G_CALLBACK(on_watch_changed), self, 0);
    g_signal_connect_object(self->config, "changed", G_CALLBACK(on_config_changed), self, 0);
    rotate(self);
}

void bluez_advertiser_stop(BluezAdvertiser *self)
{
    g_return_if_fail(BLUEZ_IS_ADVERTISER(self));
    if (self->stopping)
        return;
    self->stopping = TRUE;
    g_clear_handle_id(&self->rotation_id, g_source_remove);
    g_clear_handle_id(&self->retry_id, g_source_remove);
    g_clear_handle_id(&self->update_id, g_source_remove);
    if (self->reg != REG_NONE && self->reg_manager != NULL) {
        g_autoptr(GError) error = NULL;
        if (!bluez_le_advertising_manager1_call_unregister_advertisement_sync(
                self->reg_manager, BLUEZ_ADVERTISER_OBJECT_PATH, G_DBUS_CALL_FLAGS_NONE,
                STOP_TIMEOUT_MS, NULL, &error)) {
            g_dbus_error_strip_remote_error(error);
            g_debug("UnregisterAdvertisement at shutdown: %s", error->message);
        }
    }
    self->reg = REG_NONE;
    g_clear_object(&self->reg_manager);
    self->rotation_ends = 0;
    g_object_notify_by_pspec(G_OBJECT(self), props[PROP_ROTATION_ENDS]);
    set_advertising(self, FALSE);
    g_dbus_interface_skeleton_unexport(G_DBUS_INTERFACE_SKELETON(self->skeleton));
}

void bluez_advertiser_rotate_now(BluezAdvertiser *self)
{
    g_return_if_fail(BLUEZ_IS_ADVERTISER(self));
    if (self->started && !self->stopping)
        rotate(self);
}

gboolean bluez_advertiser_get_advertising(BluezAdvertiser *self)
{
    g_return_val_if_fail(BLUEZ_IS_ADVERTISER(self), FALSE);
    return self->advertising;
}

gint64 bluez_advertiser_get_rotation_ends(BluezAdvertiser *self)
{
    g_return_val_if_fail(BLUEZ_IS_ADVERTISER(self), 0);
    return self->rotation_ends;
}

const char *bluez_advertiser_get_reason(BluezAdvertiser *self)
{
    g_return_val_if_fail(BLUEZ_IS_ADVERTISER(self), NULL);
    return self->reason;
}

static void bluez_advertiser_get_property(GObject *object, guint prop_id, GValue *value,
                                          GParamSpec *pspec)
{
    BluezAdvertiser *self = BLUEZ_ADVERTISER(object);
    switch (prop_id) {
    case PROP_ADVERTISING:
        g_value_set_boolean(value, self->advertising);
        break;
    case PROP_ROTATION_ENDS:
        g_value_set_int64(value, self->rotation_ends);
        break;
    case PROP_REASON:
        g_value_set_string(value, self->reason);
        break;
    default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    }
}

static void bluez_advertiser_dispose(GObject *object)
{
    BluezAdvertiser *self = BLUEZ_ADVERTISER(object);
    g_clear_handle_id(&self->rotation_id, g_source_remove);
    g_clear_handle_id(&self->retry_id, g_source_remove);
    g_clear_handle_id(&self->update_id, g_source_remove);
    if (self->skeleton != NULL) {
        g_signal_handlers_disconnect_by_data(self->skeleton, self);
        if (g_dbus_interface_skeleton_get_connection(G_DBUS_INTERFACE_SKELETON(self->skeleton)))
            g_dbus_interface_skeleton_unexport(G_DBUS_INTERFACE_SKELETON(self->skeleton));
        g_clear_object(&self->skeleton);
    }
    g_clear_object(&self->reg_manager);
    g_clear_pointer(&self->service_data, g_variant_unref);
    g_clear_object(&self->scanner);
    g_clear_object(&self->watch);
    g_clear_object(&self->clock);
    g_clear_object(&self->config);
    g_clear_object(&self->connection);
    G_OBJECT_CLASS(bluez_advertiser_parent_class)->dispose(object);
}

static void bluez_advertiser_finalize(GObject *object)
{
    BluezAdvertiser *self = BLUEZ_ADVERTISER(object);
    g_free(self->reason);
    G_OBJECT_CLASS(bluez_advertiser_parent_class)->finalize(object);
}

static void bluez_advertiser_class_init(BluezAdvertiserClass *klass)
{
    GObjectClass *object_class = G_OBJECT_CLASS(klass);
    object_class->get_property = bluez_advertiser_get_property;
    object_class->dispose = bluez_advertiser_dispose;
    object_class->finalize = bluez_advertiser_finalize;

    props[PROP_ADVERTISING] =
        g_param_spec_boolean("advertising", NULL, NULL, FALSE,
                             G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
    props[PROP_ROTATION_ENDS] =
        g_param_spec_int64("rotation-ends", NULL, NULL, 0, G_MAXINT64, 0,
                           G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
    props[PROP_REASON] =
        g_param_spec_string("reason", NULL, NULL, NULL,
                            G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
    g_object_class_install_properties(object_class, N_PROPS, props);
}

static void bluez_advertiser_init(BluezAdvertiser *self)
{
    self->retry_seconds = RETRY_MIN_SECONDS;
    self->retry_count = 0;
}

BluezAdvertiser *bluez_advertiser_new(GDBusConnection *connection, BluezAdapterWatch *watch,
                                      BluezScanner *scanner, ProxdClock *clock, ProxdConfig *config,
                                      ProxStore *store, GError **error)
{
    g_autoptr(BluezAdvertiser) self = g_object_new(BLUEZ_TYPE_ADVERTISER, NULL);
    self->connection = g_object_ref(connection);
    self->watch = g_object_ref(watch);
    self->scanner = g_object_ref(scanner);
    self->clock = g_object_ref(clock);
    self->config = g_object_ref(config);
    self->store = store;

    /* Broadcast = non-connectable, no Discoverable property (BlueZ refuses flags on it). */
    const char *const uuids[] = {PROX_SERVICE_UUID, NULL};
    self->skeleton = bluez_le_advertisement1_skeleton_new();
    bluez_le_advertisement1_set_type_(self->skeleton, "broadcast");
    bluez_le_advertisement1_set_service_uuids(self->skeleton, uuids);
    bluez_le_advertisement1_set_service_data(self->skeleton,
                                             g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0));
    g_signal_connect(self->skeleton, "handle-release", G_CALLBACK(on_handle_release), self);
    if (!g_dbus_interface_skeleton_export(G_DBUS_INTERFACE_SKELETON(self->skeleton), connection,
                                          BLUEZ_ADVERTISER_OBJECT_PATH, error))
        return NULL;
    return g_steal_pointer(&self);
}
