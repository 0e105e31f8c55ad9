#define G_LOG_DOMAIN "fake-bluez"

#include "fake-bluez.h"

#include "bluez-error.h"

/* BlueZ's main.conf default. */
#define DEFAULT_DISCOVERABLE_TIMEOUT 180

static void adapter_method(FbIface *iface, GDBusMethodInvocation *invocation, gpointer user_data)
{
    FbAdapter *adapter = user_data;
    const char *method = g_dbus_method_invocation_get_method_name(invocation);

    if (g_str_equal(method, "StartDiscovery"))
        fb_discovery_start(adapter, invocation);
    else if (g_str_equal(method, "StopDiscovery"))
        fb_discovery_stop(adapter, invocation);
    else if (g_str_equal(method, "SetDiscoveryFilter"))
        fb_discovery_set_filter(adapter, invocation);
    else if (g_str_equal(method, "GetDiscoveryFilters"))
        fb_discovery_get_filters(adapter, invocation);
    else if (g_str_equal(method, "RemoveDevice"))
        fb_device_remove_method(adapter, invocation);
    else
        g_dbus_method_invocation_return_error(invocation, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD,
                                              "No such method '%s'", method);
}

static void start_discoverable_timer(FbAdapter *adapter)
{
    guint32 timeout = g_variant_get_uint32(fb_iface_get(adapter->iface, "DiscoverableTimeout"));

    adapter->discoverable_until_us =
        timeout > 0 ? fb_world_now_us(adapter->world) + (gint64)timeout * G_USEC_PER_SEC : 0;
}

static gboolean adapter_set(FbIface *iface, const char *name, GVariant *value, GError **error,
                            gpointer user_data)
{
    FbAdapter *adapter = user_data;

    if (g_str_equal(name, "Powered")) {
        if (g_variant_get_boolean(value) && adapter->blocked) {
            g_set_error_literal(error, FB_BLUEZ_ERROR, FB_BLUEZ_ERROR_BLOCKED,
                                "Blocked through rfkill");
            return FALSE;
        }
        fb_adapter_set_powered(adapter, g_variant_get_boolean(value));
    } else if (g_str_equal(name, "Discoverable")) {
        if (!adapter->powered) {
            g_set_error_literal(error, FB_BLUEZ_ERROR, FB_BLUEZ_ERROR_NOT_READY,
                                "Resource Not Ready");
            return FALSE;
        }
        adapter->user_discoverable = g_variant_get_boolean(value);
        if (adapter->user_discoverable)
            start_discoverable_timer(adapter);
        else
            adapter->discoverable_until_us = 0;
        fb_adapter_update_discoverable(adapter);
    } else if (g_str_equal(name, "DiscoverableTimeout")) {
        fb_iface_set(iface, name, value, FB_EMIT_IF_CHANGED);
        if (adapter->user_discoverable)
            start_discoverable_timer(adapter);
    } else if (g_str_equal(name, "Alias")) {
        const char *alias = g_variant_get_string(value, NULL);

        /* An empty alias means "the system name" again. */
        fb_iface_set(iface, name, *alias ? value : g_variant_new_string(adapter->dev->name),
                     FB_EMIT_IF_CHANGED);
    } else {
        /* Pairable, PairableTimeout: stored; they do not touch the radio world. */
        fb_iface_set(iface, name, value, FB_EMIT_IF_CHANGED);
    }
    fb_world_kick(adapter->world);
    return TRUE;
}

FbAdapter *fb_adapter_new(FbWorld *world, FbSimDevice *dev)
{
    static const char *const uuids[] = {"00001800-0000-1000-8000-00805f9b34fb",
                                        "00001801-0000-1000-8000-00805f9b34fb",
                                        "0000180a-0000-1000-8000-00805f9b34fb", NULL};
    static const char *const roles[] = {"central", "peripheral", NULL};
    FbAdapter *adapter = g_new0(FbAdapter, 1);
    char addr[18];
    FbIface *iface;
    guint pos;

    adapter->world = world;
    adapter->index = dev->adapter;
    adapter->dev = dev;
    adapter->path = g_strdup_printf("/org/bluez/hci%u", dev->adapter);
    adapter->powered = dev->powered;
    adapter->clients = g_ptr_array_new();
    adapter->devices = g_hash_table_new(g_str_hash, g_str_equal);
    adapter->adverts = g_ptr_array_new();

    iface = fb_iface_new(fb_world_iface_info(world, FB_ADAPTER_IFACE), adapter_method, adapter_set,
                         adapter);
    adapter->iface = iface;
    fb_iface_set(iface, "Address", g_variant_new_string(fb_bdaddr_to_string(&dev->address, addr)),
                 FB_EMIT_NONE);
    fb_iface_set(iface, "AddressType", g_variant_new_string("public"), FB_EMIT_NONE);
    fb_iface_set(iface, "Name", g_variant_new_string(dev->name), FB_EMIT_NONE);
    fb_iface_set(iface, "Alias", g_variant_new_string(dev->name), FB_EMIT_NONE);
    fb_iface_set(iface, "Class", g_variant_new_uint32(0), FB_EMIT_NONE);
    fb_iface_set(iface, "Powered", g_variant_new_boolean(adapter->powered), FB_EMIT_NONE);
    fb_iface_set(iface, "Discoverable", g_variant_new_boolean(FALSE), FB_EMIT_NONE);
    fb_iface_set(iface, "DiscoverableTimeout", g_variant_new_uint32(DEFAULT_DISCOVERABLE_TIMEOUT),
                 FB_EMIT_NONE);
    fb_iface_set(iface, "Pairable", g_variant_new_boolean(TRUE), FB_EMIT_NONE);
    fb_iface_set(iface, "PairableTimeout", g_variant_new_uint32(0), FB_EMIT_NONE);
    fb_iface_set(iface, "Discovering", g_variant_new_boolean(FALSE), FB_EMIT_NONE);
    fb_iface_set(iface, "UUIDs", g_variant_new_strv(uuids, -1), FB_EMIT_NONE);
    fb_iface_set(iface, "Modalias", g_variant_new_string("usb:v1D6Bp0246d0542"), FB_EMIT_NONE);
    fb_iface_set(iface, "Roles", g_variant_new_strv(roles, -1), FB_EMIT_NONE);

    adapter->object = g_dbus_object_skeleton_new(adapter->path);
    g_dbus_object_skeleton_add_interface(adapter->object, G_DBUS_INTERFACE_SKELETON(iface));
    g_dbus_object_manager_server_export(world->om, adapter->object);

    for (pos = 0; pos < world->adapters->len; pos++) {
        FbAdapter *other = world->adapters->pdata[pos];

        if (other->index > adapter->index)
            break;
    }
    g_ptr_array_insert(world->adapters, (gint)pos, adapter);
    g_info("hci%u (%s, %s) plugged in, %s", adapter->index, dev->name, addr,
           adapter->powered ? "powered" : "off");
    fb_adv_manager_schedule(adapter);
    fb_world_kick(world);
    return adapter;
}

void fb_adapter_remove(FbAdapter *adapter)
{
    FbWorld *world = adapter->world;

    g_info("hci%u unplugged", adapter->index);
    fb_adv_manager_remove(adapter);
    fb_device_remove_all(adapter);
    fb_discovery_free_all(adapter);
    g_dbus_object_manager_server_unexport(world->om, adapter->path);
    g_ptr_array_remove(world->adapters, adapter);

    g_ptr_array_unref(adapter->clients);
    g_hash_table_unref(adapter->devices);
    g_ptr_array_unref(adapter->adverts);
    g_object_unref(adapter->iface);
    g_object_unref(adapter->object);
    g_free(adapter->path);
    g_free(adapter);
    fb_world_kick(world);
}

gboolean fb_adapter_discoverable(FbAdapter *adapter)
{
    return g_variant_get_boolean(fb_iface_get(adapter->iface, "Discoverable"));
}

/* Returns whether the effective Discoverable changed. */
static gboolean apply_discoverable(FbAdapter *adapter)
{
    gboolean was = fb_adapter_discoverable(adapter);
    /* A discovery filter with Discoverable=true makes the adapter discoverable while it
     * discovers, exactly like the settings switch does. */
    gboolean now = adapter->powered && (adapter->user_discoverable ||
                                        (adapter->merged.active && adapter->merged.discoverable));

    fb_iface_set(adapter->iface, "Discoverable", g_variant_new_boolean(now), FB_EMIT_IF_CHANGED);
    return was != now;
}

void fb_adapter_update_discoverable(FbAdapter *adapter)
{
    /* The kernel sets every advertising instance up again: broadcasts go connectable from
     * the public address while discoverable, and get a fresh random address after. */
    if (apply_discoverable(adapter))
        fb_adverts_reprogram(adapter);
}

void fb_adapter_set_powered(FbAdapter *adapter, gboolean powered)
{
    if (adapter->powered == powered)
        return;
    g_info("hci%u powered %s", adapter->index, powered ? "on" : "off");
    adapter->powered = powered;
    fb_iface_hold(adapter->iface);
    if (!powered) {
        fb_discovery_clear(adapter);
        /* With a discoverable timeout the kernel forgets discoverable on power off;
         * without one the setting survives the power cycle. */
        if (g_variant_get_uint32(fb_iface_get(adapter->iface, "DiscoverableTimeout")) != 0) {
            adapter->user_discoverable = FALSE;
            adapter->discoverable_until_us = 0;
        }
    }
    fb_iface_set(adapter->iface, "Powered", g_variant_new_boolean(powered), FB_EMIT_IF_CHANGED);
    apply_discoverable(adapter);
    fb_iface_release(adapter->iface);
    if (powered)
        fb_adverts_reprogram(adapter);
    else
        fb_adverts_notify(adapter);
    fb_world_kick(adapter->world);
}

void fb_adapter_set_blocked(FbAdapter *adapter, gboolean blocked)
{
    adapter->blocked = blocked;
    if (blocked)
        fb_adapter_set_powered(adapter, FALSE);
}

void fb_adapter_tick(FbAdapter *adapter, gint64 now_us)
{
    if (adapter->discoverable_until_us != 0 && now_us >= adapter->discoverable_until_us) {
        adapter->user_discoverable = FALSE;
        adapter->discoverable_until_us = 0;
        fb_adapter_update_discoverable(adapter);
    }
    fb_device_expire(adapter, now_us);
    fb_adverts_tick(adapter, now_us);
}

gboolean fb_adapter_needs_tick(FbAdapter *adapter)
{
    return adapter->discoverable_until_us != 0 || g_hash_table_size(adapter->devices) > 0 ||
           adapter->merged.active || fb_adverts_need_tick(adapter);
}
