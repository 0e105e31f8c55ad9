#define G_LOG_DOMAIN "fake-bluez"

#include "fake-bluez.h"

#include <stdlib.h>
#include <string.h>

#include "bluez-error.h"

/* BlueZ's RSSI_THRESHOLD: plain discovery only signals RSSI moves of at least this. */
#define RSSI_DELTA_THRESHOLD 8

static char *default_alias(FbDevice *dev)
{
    GVariant *name = fb_iface_get(dev->iface, "Name");
    char addr[18];

    if (name != NULL)
        return g_variant_dup_string(name, NULL);
    fb_bdaddr_to_string(&dev->address, addr);
    g_strdelimit(addr, ":", '-');
    return g_strdup(addr);
}

static gboolean device_set(FbIface *iface, const char *name, GVariant *value, GError **error,
                           gpointer user_data)
{
    FbDevice *dev = user_data;

    if (g_str_equal(name, "Alias") && *g_variant_get_string(value, NULL) == '\0') {
        g_autofree char *alias = default_alias(dev);

        fb_iface_set(iface, name, g_variant_new_string(alias), FB_EMIT_IF_CHANGED);
        return TRUE;
    }
    /* Alias, Trusted, Blocked: stored; none of them changes what is heard over the air. */
    fb_iface_set(iface, name, value, FB_EMIT_IF_CHANGED);
    return TRUE;
}

static void device_free(FbDevice *dev)
{
    g_object_unref(dev->iface);
    g_object_unref(dev->object);
    g_free(dev->path);
    g_free(dev);
}

static void device_remove(FbDevice *dev)
{
    FbAdapter *adapter = dev->adapter;

    g_hash_table_remove(adapter->devices, dev->path);
    g_dbus_object_manager_server_unexport(adapter->world->om, dev->path);
    device_free(dev);
}

static gboolean advert_matches_uuids(FbAdvert *advert, GPtrArray *uuids)
{
    /* Like the kernel's result filter, only the advertised UUID lists count, not the
     * UUIDs service data is keyed by. */
    for (guint i = 0; i < advert->data.service_uuids->len; i++)
        for (guint j = 0; j < uuids->len; j++)
            if (g_str_equal(advert->data.service_uuids->pdata[i], uuids->pdata[j]))
                return TRUE;
    return FALSE;
}

static int compare_strings(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* a{sv} with sorted keys, so equal content always compares equal. NULL when empty. */
static GVariant *service_data_merge(GVariant *old, GVariant *update)
{
    g_autoptr(GHashTable) entries =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_variant_unref);
    g_autoptr(GPtrArray) keys = NULL;
    GVariant *sources[] = {old, update};
    GHashTableIter hiter;
    GVariantBuilder b;
    gpointer key;

    for (guint s = 0; s < G_N_ELEMENTS(sources); s++) {
        GVariantIter iter;
        const char *uuid;
        GVariant *value;

        if (sources[s] == NULL)
            continue;
        g_variant_iter_init(&iter, sources[s]);
        while (g_variant_iter_next(&iter, "{&sv}", &uuid, &value))
            g_hash_table_replace(entries, g_strdup(uuid), value);
    }
    if (g_hash_table_size(entries) == 0)
        return NULL;
    keys = g_ptr_array_new();
    g_hash_table_iter_init(&hiter, entries);
    while (g_hash_table_iter_next(&hiter, &key, NULL))
        g_ptr_array_add(keys, key);
    g_ptr_array_sort(keys, compare_strings);
    g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
    for (guint i = 0; i < keys->len; i++)
        g_variant_builder_add(&b, "{sv}", (char *)keys->pdata[i],
                              g_hash_table_lookup(entries, keys->pdata[i]));
    return g_variant_builder_end(&b);
}

static GVariant *uuids_merge(GVariant *old, GPtrArray *update)
{
    g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func(g_free);

    if (old != NULL) {
        GVariantIter iter;
        const char *uuid;

        g_variant_iter_init(&iter, old);
        while (g_variant_iter_next(&iter, "&s", &uuid))
            g_ptr_array_add(all, g_strdup(uuid));
    }
    for (guint i = 0; i < update->len; i++)
        if (!g_ptr_array_find_with_equal_func(all, update->pdata[i], g_str_equal, NULL))
            g_ptr_array_add(all, g_strdup(update->pdata[i]));
    if (all->len == 0)
        return NULL;
    g_ptr_array_add(all, NULL);
    return g_variant_new_strv((const char *const *)all->pdata, -1);
}

static FbDevice *device_new(FbAdapter *adapter, FbAdvert *advert, const char *path)
{
    FbDevice *dev = g_new0(FbDevice, 1);
    g_autofree char *alias = NULL;
    FbIface *iface;
    char addr[18];

    dev->adapter = adapter;
    dev->path = g_strdup(path);
    dev->address = advert->address;
    dev->public_address = advert->from_public;
    iface =
        fb_iface_new(fb_world_iface_info(adapter->world, FB_DEVICE_IFACE), NULL, device_set, dev);
    dev->iface = iface;
    fb_iface_set(iface, "Address", g_variant_new_string(fb_bdaddr_to_string(&dev->address, addr)),
                 FB_EMIT_NONE);
    fb_iface_set(iface, "AddressType",
                 g_variant_new_string(dev->public_address ? "public" : "random"), FB_EMIT_NONE);
    if (advert->data.local_name != NULL)
        fb_iface_set(iface, "Name", g_variant_new_string(advert->data.local_name), FB_EMIT_NONE);
    alias = default_alias(dev);
    fb_iface_set(iface, "Alias", g_variant_new_string(alias), FB_EMIT_NONE);
    fb_iface_set(iface, "Paired", g_variant_new_boolean(FALSE), FB_EMIT_NONE);
    fb_iface_set(iface, "Bonded", g_variant_new_boolean(FALSE), FB_EMIT_NONE);
    fb_iface_set(iface, "Trusted", g_variant_new_boolean(FALSE), FB_EMIT_NONE);
    fb_iface_set(iface, "Blocked", g_variant_new_boolean(FALSE), FB_EMIT_NONE);
    fb_iface_set(iface, "LegacyPairing", g_variant_new_boolean(FALSE), FB_EMIT_NONE);
    fb_iface_set(iface, "Connected", g_variant_new_boolean(FALSE), FB_EMIT_NONE);
    fb_iface_set(iface, "Adapter", g_variant_new_object_path(adapter->path), FB_EMIT_NONE);
    fb_iface_set(iface, "ServicesResolved", g_variant_new_boolean(FALSE), FB_EMIT_NONE);
    dev->object = g_dbus_object_skeleton_new(path);
    g_dbus_object_skeleton_add_interface(dev->object, G_DBUS_INTERFACE_SKELETON(iface));
    g_hash_table_insert(adapter->devices, dev->path, dev);
    return dev;
}

gboolean fb_device_report(FbAdapter *scanner, FbAdvert *advert, int rssi, gint64 now_us)
{
    FbMergedFilter *m = &scanner->merged;
    g_autofree char *path = NULL;
    gboolean discoverable, created = FALSE;
    FbEmit emit = m->filtered ? FB_EMIT_ALWAYS : FB_EMIT_IF_CHANGED;
    GVariant *old_rssi, *value;
    FbDevice *dev;
    char addr[18];

    if (!m->active || !m->le)
        return FALSE;
    /* The kernel drops what the merged service-discovery filter excludes. */
    if (m->filtered && m->uuids != NULL && !advert_matches_uuids(advert, m->uuids))
        return FALSE;
    if (m->filtered && m->has_rssi && rssi < m->rssi)
        return FALSE;

    fb_bdaddr_to_string(&advert->address, addr);
    path = fb_bdaddr_device_path(scanner->path, &advert->address);
    dev = g_hash_table_lookup(scanner->devices, path);
    /* Without a filter, bluetoothd only creates devices for advertisers with
     * discoverable flags; a filter (or a matching Pattern) lifts that. */
    discoverable = m->filtered || fb_advert_has_flags(advert) ||
                   fb_discovery_pattern_match(scanner, addr, advert->data.local_name);
    if (dev == NULL) {
        if (!discoverable)
            return FALSE;
        dev = device_new(scanner, advert, path);
        created = TRUE;
    }
    dev->last_seen_us = now_us;
    dev->connectable = fb_advert_connectable(advert);
    if (!discoverable)
        return FALSE;

    fb_iface_hold(dev->iface);
    old_rssi = fb_iface_get(dev->iface, "RSSI");
    if (m->filtered || old_rssi == NULL ||
        abs(g_variant_get_int16(old_rssi) - rssi) >= RSSI_DELTA_THRESHOLD)
        fb_iface_set(dev->iface, "RSSI", g_variant_new_int16((gint16)rssi),
                     created ? FB_EMIT_NONE : emit);
    if (advert->data.include_tx_power)
        /* The controller's advertising TX power; the fake's radios all send at 0 dBm. */
        fb_iface_set(dev->iface, "TxPower", g_variant_new_int16(0),
                     created ? FB_EMIT_NONE : FB_EMIT_IF_CHANGED);
    value = uuids_merge(fb_iface_get(dev->iface, "UUIDs"), advert->data.service_uuids);
    if (value != NULL)
        fb_iface_set(dev->iface, "UUIDs", value, created ? FB_EMIT_NONE : FB_EMIT_IF_CHANGED);
    /* With DuplicateData the service data is replaced and signalled on every report;
     * otherwise entries are merged and only a change is signalled. */
    if (m->duplicate) {
        value = service_data_merge(NULL, advert->data.service_data);
        if (value != NULL)
            fb_iface_set(dev->iface, "ServiceData", value, created ? FB_EMIT_NONE : emit);
    } else {
        value =
            service_data_merge(fb_iface_get(dev->iface, "ServiceData"), advert->data.service_data);
        if (value != NULL)
            fb_iface_set(dev->iface, "ServiceData", value,
                         created ? FB_EMIT_NONE : FB_EMIT_IF_CHANGED);
    }
    fb_iface_release(dev->iface);
    if (created)
        g_dbus_object_manager_server_export(scanner->world->om, dev->object);
    return TRUE;
}

/* A snapshot of the adapter's devices, safe to remove from while walking it. */
static GPtrArray *device_list(FbAdapter *adapter)
{
    GPtrArray *all = g_ptr_array_new();
    GHashTableIter iter;
    gpointer value;

    g_hash_table_iter_init(&iter, adapter->devices);
    while (g_hash_table_iter_next(&iter, NULL, &value))
        g_ptr_array_add(all, value);
    return all;
}

void fb_device_expire(FbAdapter *adapter, gint64 now_us)
{
    g_autoptr(GPtrArray) expired = g_ptr_array_new();
    GHashTableIter iter;
    gpointer value;

    g_hash_table_iter_init(&iter, adapter->devices);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        FbDevice *dev = value;

        if (now_us - dev->last_seen_us >= FB_DEVICE_TIMEOUT_US)
            g_ptr_array_add(expired, dev);
    }
    for (guint i = 0; i < expired->len; i++)
        device_remove(expired->pdata[i]);
}

void fb_device_discovery_ended(FbAdapter *adapter)
{
    g_autoptr(GPtrArray) all = device_list(adapter);

    for (guint i = 0; i < all->len; i++) {
        FbDevice *dev = all->pdata[i];

        if (dev->connectable)
            /* Kept until its temporary timeout, without a current RSSI. */
            fb_iface_set(dev->iface, "RSSI", NULL, FB_EMIT_IF_CHANGED);
        else
            device_remove(dev);
    }
}

void fb_device_remove_all(FbAdapter *adapter)
{
    g_autoptr(GPtrArray) all = device_list(adapter);

    for (guint i = 0; i < all->len; i++)
        device_remove(all->pdata[i]);
}

void fb_device_remove_method(FbAdapter *adapter, GDBusMethodInvocation *invocation)
{
    const char *path = NULL;
    FbDevice *dev;

    g_variant_get(g_dbus_method_invocation_get_parameters(invocation), "(&o)", &path);
    dev = g_hash_table_lookup(adapter->devices, path);
    if (dev == NULL) {
        g_dbus_method_invocation_return_error_literal(
            invocation, FB_BLUEZ_ERROR, FB_BLUEZ_ERROR_DOES_NOT_EXIST, "Does Not Exist");
        return;
    }
    device_remove(dev);
    g_dbus_method_invocation_return_value(invocation, NULL);
}
