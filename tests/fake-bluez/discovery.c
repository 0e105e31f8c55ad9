#define G_LOG_DOMAIN "fake-bluez"

#include "fake-bluez.h"

#include <string.h>

#include "bluez-error.h"
#include "bt-uuid.h"

/* BlueZ's PATHLOSS_MAX. */
#define PATHLOSS_MAX 137

static void filter_free(FbFilter *filter)
{
    if (filter == NULL)
        return;
    g_ptr_array_unref(filter->uuids);
    g_free(filter->pattern);
    g_free(filter);
}

static void client_free(FbDiscoveryClient *client)
{
    filter_free(client->filter);
    g_free(client->owner);
    g_free(client);
}

static FbDiscoveryClient *find_client(FbAdapter *adapter, const char *owner)
{
    for (guint i = 0; i < adapter->clients->len; i++) {
        FbDiscoveryClient *c = adapter->clients->pdata[i];

        if (g_str_equal(c->owner, owner))
            return c;
    }
    return NULL;
}

static void drop_client(FbAdapter *adapter, FbDiscoveryClient *client)
{
    g_ptr_array_remove(adapter->clients, client);
    client_free(client);
}

static void add_unique(GPtrArray *set, const char *uuid)
{
    for (guint i = 0; i < set->len; i++)
        if (g_str_equal(set->pdata[i], uuid))
            return;
    g_ptr_array_add(set, g_strdup(uuid));
}

/* Recomputes what bluetoothd would ask the kernel for, and the Discovering property. */
static void update_merged(FbAdapter *adapter)
{
    FbMergedFilter *m = &adapter->merged;
    gboolean regular = FALSE, any_uuidless = FALSE, rssi_unbounded = FALSE;
    gboolean was_active = m->active;

    if (m->uuids != NULL)
        g_ptr_array_unref(m->uuids);
    memset(m, 0, sizeof *m);
    m->uuids = g_ptr_array_new_with_free_func(g_free);
    m->rssi = G_MAXINT16;
    for (guint i = 0; i < adapter->clients->len; i++) {
        FbDiscoveryClient *c = adapter->clients->pdata[i];

        if (!c->discovering)
            continue;
        m->active = TRUE;
        if (c->filter == NULL) {
            regular = TRUE;
            continue;
        }
        m->filtered = TRUE;
        m->le = m->le || (c->filter->transport & FB_TRANSPORT_LE);
        m->duplicate = m->duplicate || c->filter->duplicate;
        m->discoverable = m->discoverable || c->filter->discoverable;
        /* The kernel can only apply an RSSI floor everyone asked for; pathloss needs the
         * advertised TX power, so it is filtered in userspace, i.e. not by the kernel. */
        if (c->filter->has_rssi)
            m->rssi = MIN(m->rssi, c->filter->rssi);
        else
            rssi_unbounded = TRUE;
        if (c->filter->uuids->len == 0)
            any_uuidless = TRUE;
        for (guint u = 0; u < c->filter->uuids->len; u++)
            add_unique(m->uuids, c->filter->uuids->pdata[u]);
    }
    m->has_rssi = m->filtered && !rssi_unbounded && !regular;
    if (regular) {
        /* A plain StartDiscovery client next to filtered ones clears the whole kernel
         * filter: everything is reported (the adapter is dual-mode, so "auto" has LE). */
        m->le = TRUE;
        any_uuidless = TRUE;
    }
    if (any_uuidless || !m->filtered) {
        g_ptr_array_unref(m->uuids);
        m->uuids = NULL;
    }
    if (was_active != m->active) {
        fb_iface_set(adapter->iface, "Discovering", g_variant_new_boolean(m->active),
                     FB_EMIT_IF_CHANGED);
        if (!m->active)
            fb_device_discovery_ended(adapter);
    }
    fb_adapter_update_discoverable(adapter);
    fb_world_kick(adapter->world);
}

static gboolean parse_filter_entry(const char *key, GVariant *value, FbFilter *f)
{
    if (g_str_equal(key, "UUIDs")) {
        GVariantIter iter;
        const char *text;

        if (!g_variant_is_of_type(value, G_VARIANT_TYPE_STRING_ARRAY))
            return FALSE;
        g_variant_iter_init(&iter, value);
        while (g_variant_iter_next(&iter, "&s", &text)) {
            char uuid[FB_UUID_STRLEN];

            if (fb_uuid_normalise(text, uuid) == 0)
                return FALSE;
            add_unique(f->uuids, uuid);
        }
    } else if (g_str_equal(key, "RSSI")) {
        if (!g_variant_is_of_type(value, G_VARIANT_TYPE_INT16))
            return FALSE;
        f->rssi = g_variant_get_int16(value);
        f->has_rssi = TRUE;
        if (f->rssi > 20 || f->rssi < -127)
            return FALSE;
    } else if (g_str_equal(key, "Pathloss")) {
        if (!g_variant_is_of_type(value, G_VARIANT_TYPE_UINT16))
            return FALSE;
        f->pathloss = g_variant_get_uint16(value);
        f->has_pathloss = TRUE;
        if (f->pathloss > PATHLOSS_MAX)
            return FALSE;
    } else if (g_str_equal(key, "Transport")) {
        const char *t;

        if (!g_variant_is_of_type(value, G_VARIANT_TYPE_STRING))
            return FALSE;
        t = g_variant_get_string(value, NULL);
        if (g_str_equal(t, "le"))
            f->transport = FB_TRANSPORT_LE;
        else if (g_str_equal(t, "bredr"))
            f->transport = FB_TRANSPORT_BREDR;
        else if (!g_str_equal(t, "auto"))
            return FALSE;
    } else if (g_str_equal(key, "DuplicateData")) {
        if (!g_variant_is_of_type(value, G_VARIANT_TYPE_BOOLEAN))
            return FALSE;
        f->duplicate = g_variant_get_boolean(value);
    } else if (g_str_equal(key, "Discoverable")) {
        if (!g_variant_is_of_type(value, G_VARIANT_TYPE_BOOLEAN))
            return FALSE;
        f->discoverable = g_variant_get_boolean(value);
    } else if (g_str_equal(key, "Pattern")) {
        if (!g_variant_is_of_type(value, G_VARIANT_TYPE_STRING))
            return FALSE;
        g_free(f->pattern);
        f->pattern = g_variant_dup_string(value, NULL);
    } else {
        return FALSE;
    }
    return TRUE;
}

/* NULL filter with TRUE: the client cleared its filter (empty dict). */
static gboolean parse_filter(GVariant *dict, FbFilter **out)
{
    FbFilter *f;
    GVariantIter iter;
    const char *key;
    GVariant *value;

    *out = NULL;
    if (g_variant_n_children(dict) == 0)
        return TRUE;
    f = g_new0(FbFilter, 1);
    f->uuids = g_ptr_array_new_with_free_func(g_free);
    /* Defaults as in BlueZ's code (DuplicateData false, whatever the doc says). */
    f->transport = FB_TRANSPORT_LE | FB_TRANSPORT_BREDR;
    g_variant_iter_init(&iter, dict);
    while (g_variant_iter_loop(&iter, "{&sv}", &key, &value)) {
        if (!parse_filter_entry(key, value, f)) {
            g_variant_unref(value);
            filter_free(f);
            return FALSE;
        }
    }
    if (f->has_rssi && f->has_pathloss) {
        filter_free(f);
        return FALSE;
    }
    *out = f;
    return TRUE;
}

void fb_discovery_set_filter(FbAdapter *adapter, GDBusMethodInvocation *invocation)
{
    const char *sender = g_dbus_method_invocation_get_sender(invocation);
    GVariant *params = g_dbus_method_invocation_get_parameters(invocation);
    g_autoptr(GVariant) dict = g_variant_get_child_value(params, 0);
    FbDiscoveryClient *client;
    FbFilter *filter;

    if (!adapter->powered) {
        fb_return_not_ready(invocation);
        return;
    }
    if (!parse_filter(dict, &filter)) {
        fb_return_invalid_args(invocation);
        return;
    }
    client = find_client(adapter, sender);
    if (client != NULL) {
        filter_free(client->filter);
        client->filter = filter;
        if (client->discovering)
            update_merged(adapter);
        else if (filter == NULL)
            drop_client(adapter, client); /* pre-set filter removed */
    } else if (filter != NULL) {
        /* A filter set before StartDiscovery is kept for that sender. */
        client = g_new0(FbDiscoveryClient, 1);
        client->owner = g_strdup(sender);
        client->filter = filter;
        g_ptr_array_add(adapter->clients, client);
        fb_world_watch_client(adapter->world, sender);
    }
    g_dbus_method_invocation_return_value(invocation, NULL);
}

void fb_discovery_start(FbAdapter *adapter, GDBusMethodInvocation *invocation)
{
    const char *sender = g_dbus_method_invocation_get_sender(invocation);
    FbDiscoveryClient *client;

    if (!adapter->powered) {
        fb_return_not_ready(invocation);
        return;
    }
    client = find_client(adapter, sender);
    if (client != NULL && client->discovering) {
        g_dbus_method_invocation_return_error_literal(invocation, FB_BLUEZ_ERROR,
                                                      FB_BLUEZ_ERROR_IN_PROGRESS,
                                                      "Operation already in progress");
        return;
    }
    if (client == NULL) {
        client = g_new0(FbDiscoveryClient, 1);
        client->owner = g_strdup(sender);
        g_ptr_array_add(adapter->clients, client);
        fb_world_watch_client(adapter->world, sender);
    }
    client->discovering = TRUE;
    /* bluetoothd answers once the kernel started scanning, then signals Discovering. */
    g_dbus_method_invocation_return_value(invocation, NULL);
    update_merged(adapter);
}

void fb_discovery_stop(FbAdapter *adapter, GDBusMethodInvocation *invocation)
{
    const char *sender = g_dbus_method_invocation_get_sender(invocation);
    FbDiscoveryClient *client;

    if (!adapter->powered) {
        fb_return_not_ready(invocation);
        return;
    }
    client = find_client(adapter, sender);
    if (client == NULL || !client->discovering) {
        g_dbus_method_invocation_return_error_literal(
            invocation, FB_BLUEZ_ERROR, FB_BLUEZ_ERROR_FAILED, "No discovery started");
        return;
    }
    client->discovering = FALSE;
    /* The filter stays with the sender for its next StartDiscovery. */
    if (client->filter == NULL)
        drop_client(adapter, client);
    update_merged(adapter);
    g_dbus_method_invocation_return_value(invocation, NULL);
}

void fb_discovery_get_filters(FbAdapter *adapter, GDBusMethodInvocation *invocation)
{
    static const char *const names[] = {"UUIDs",         "RSSI",         "Pathloss", "Transport",
                                        "DuplicateData", "Discoverable", "Pattern",  NULL};

    g_dbus_method_invocation_return_value(invocation, g_variant_new("(^as)", (char **)names));
}

void fb_discovery_client_vanished(FbAdapter *adapter, const char *owner)
{
    FbDiscoveryClient *client = find_client(adapter, owner);

    if (client == NULL)
        return;
    g_info("hci%u: discovery client %s left the bus", adapter->index, owner);
    drop_client(adapter, client);
    update_merged(adapter);
}

void fb_discovery_clear(FbAdapter *adapter)
{
    /* Power off ends every session and forgets every pre-set filter. */
    while (adapter->clients->len > 0)
        drop_client(adapter, adapter->clients->pdata[adapter->clients->len - 1]);
    update_merged(adapter);
}

void fb_discovery_free_all(FbAdapter *adapter)
{
    while (adapter->clients->len > 0)
        drop_client(adapter, adapter->clients->pdata[adapter->clients->len - 1]);
    if (adapter->merged.uuids != NULL)
        g_ptr_array_unref(adapter->merged.uuids);
    memset(&adapter->merged, 0, sizeof adapter->merged);
}

gboolean fb_discovery_pattern_match(FbAdapter *adapter, const char *address, const char *name)
{
    for (guint i = 0; i < adapter->clients->len; i++) {
        FbDiscoveryClient *c = adapter->clients->pdata[i];

        if (!c->discovering || c->filter == NULL || c->filter->pattern == NULL)
            continue;
        if (*c->filter->pattern == '\0' || g_str_has_prefix(address, c->filter->pattern) ||
            (name != NULL && g_str_has_prefix(name, c->filter->pattern)))
            return TRUE;
    }
    return FALSE;
}
