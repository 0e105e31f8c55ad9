#define G_LOG_DOMAIN "fake-bluez"

#include "fake-bluez.h"

#include <string.h>

#include "bluez-error.h"
#include "bt-uuid.h"

/* What BlueZ's parsers look at; a PropertiesChanged of any of these refreshes the
 * advertisement. */
static const char *const parsed_properties[] = {"Type",
                                                "ServiceUUIDs",
                                                "SolicitUUIDs",
                                                "ManufacturerData",
                                                "ServiceData",
                                                "Includes",
                                                "LocalName",
                                                "Appearance",
                                                "Duration",
                                                "Timeout",
                                                "Data",
                                                "Discoverable",
                                                "DiscoverableTimeout",
                                                "SecondaryChannel",
                                                "MinInterval",
                                                "MaxInterval",
                                                "TxPower",
                                                NULL};

static void adv_data_clear(FbAdvData *d)
{
    g_clear_pointer(&d->service_uuids, g_ptr_array_unref);
    g_clear_pointer(&d->service_data, g_variant_unref);
    g_clear_pointer(&d->local_name, g_free);
    memset(d, 0, sizeof *d);
}

/* Bytes a list of UUIDs takes in advertising data: one field per UUID size. */
static guint uuid_list_len(GVariant *list, gboolean *ok)
{
    guint count[17] = {0};
    GVariantIter iter;
    const char *text;
    guint len = 0;

    g_variant_iter_init(&iter, list);
    while (g_variant_iter_next(&iter, "&s", &text)) {
        char uuid[FB_UUID_STRLEN];
        guint size = fb_uuid_normalise(text, uuid);

        if (size == 0)
            *ok = FALSE;
        count[size]++;
    }
    for (guint size = 2; size <= 16; size++)
        if (count[size] > 0)
            len += 2 + size * count[size];
    return len;
}

/* Replaces *v with the named property's value; FALSE when the property is absent. */
static gboolean take(GVariantDict *dict, const char *name, GVariant **v)
{
    g_clear_pointer(v, g_variant_unref);
    *v = g_variant_dict_lookup_value(dict, name, NULL);
    return *v != NULL;
}

static gboolean is_bytes(GVariant *v)
{
    return g_variant_is_of_type(v, G_VARIANT_TYPE_BYTESTRING);
}

/* Parses the client's LEAdvertisement1 properties like bluetoothd, including the size of
 * the resulting legacy advertising data. On failure *reason says why (for the log). */
static gboolean adv_data_parse(GVariant *props, FbAdvData *out, const char **reason)
{
    GVariantDict dict;
    g_autoptr(GVariant) v = NULL;
    guint len = 0;
    gboolean ok = TRUE;

    memset(out, 0, sizeof *out);
    out->service_uuids = g_ptr_array_new_with_free_func(g_free);
    g_variant_dict_init(&dict, props);
#define TAKE(name) take(&dict, name, &v)
#define REQUIRE(cond, why)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            *reason = why;                                                                         \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

    if (TAKE("Type")) {
        REQUIRE(g_variant_is_of_type(v, G_VARIANT_TYPE_STRING), "Type is not a string");
        REQUIRE(g_str_equal(g_variant_get_string(v, NULL), "broadcast") ||
                    g_str_equal(g_variant_get_string(v, NULL), "peripheral"),
                "Type must be \"broadcast\" or \"peripheral\"");
        out->peripheral = g_str_equal(g_variant_get_string(v, NULL), "peripheral");
    }
    if (TAKE("ServiceUUIDs")) {
        GVariantIter iter;
        const char *text;

        REQUIRE(g_variant_is_of_type(v, G_VARIANT_TYPE_STRING_ARRAY), "ServiceUUIDs: not as");
        len += uuid_list_len(v, &ok);
        REQUIRE(ok, "ServiceUUIDs: not a UUID");
        g_variant_iter_init(&iter, v);
        while (g_variant_iter_next(&iter, "&s", &text)) {
            char uuid[FB_UUID_STRLEN];

            fb_uuid_normalise(text, uuid);
            g_ptr_array_add(out->service_uuids, g_strdup(uuid));
        }
    }
    if (TAKE("SolicitUUIDs")) {
        REQUIRE(g_variant_is_of_type(v, G_VARIANT_TYPE_STRING_ARRAY), "SolicitUUIDs: not as");
        len += uuid_list_len(v, &ok);
        REQUIRE(ok, "SolicitUUIDs: not a UUID");
    }
    if (TAKE("ManufacturerData")) {
        GVariantIter iter;
        GVariant *data;
        guint16 id;

        REQUIRE(g_variant_is_of_type(v, G_VARIANT_TYPE("a{qv}")), "ManufacturerData: not a{qv}");
        g_variant_iter_init(&iter, v);
        while (g_variant_iter_loop(&iter, "{qv}", &id, &data)) {
            if (!is_bytes(data)) {
                g_variant_unref(data);
                REQUIRE(FALSE, "ManufacturerData: value is not ay");
            }
            len += 4 + (guint)g_variant_n_children(data);
        }
    }
    if (TAKE("ServiceData")) {
        GVariantBuilder b;
        GVariantIter iter;
        const char *text;
        GVariant *data;

        REQUIRE(g_variant_is_of_type(v, G_VARIANT_TYPE_VARDICT), "ServiceData: not a{sv}");
        g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
        g_variant_iter_init(&iter, v);
        while (g_variant_iter_loop(&iter, "{&sv}", &text, &data)) {
            char uuid[FB_UUID_STRLEN];
            guint size = fb_uuid_normalise(text, uuid);

            if (size == 0 || !is_bytes(data)) {
                g_variant_unref(data);
                g_variant_builder_clear(&b);
                REQUIRE(FALSE, "ServiceData: bad UUID or value not ay");
            }
            len += 2 + size + (guint)g_variant_n_children(data);
            g_variant_builder_add(&b, "{sv}", uuid, data);
        }
        out->service_data = g_variant_ref_sink(g_variant_builder_end(&b));
    }
    if (TAKE("Includes")) {
        GVariantIter iter;
        const char *inc;

        REQUIRE(g_variant_is_of_type(v, G_VARIANT_TYPE_STRING_ARRAY), "Includes: not as");
        g_variant_iter_init(&iter, v);
        /* Unknown or unsupported includes are skipped, as bluetoothd does. */
        while (g_variant_iter_next(&iter, "&s", &inc)) {
            if (g_str_equal(inc, "tx-power")) {
                out->include_tx_power = TRUE;
                len += 3;
            } else if (g_str_equal(inc, "appearance")) {
                len += 4;
            }
        }
    }
    if (TAKE("LocalName")) {
        REQUIRE(g_variant_is_of_type(v, G_VARIANT_TYPE_STRING), "LocalName: not s");
        /* Truncated to what fits, so it never makes the data too long. */
        out->local_name = g_variant_dup_string(v, NULL);
    }
    if (TAKE("Appearance")) {
        REQUIRE(g_variant_is_of_type(v, G_VARIANT_TYPE_UINT16), "Appearance: not q");
        len += 4;
    }
    if (TAKE("Duration"))
        REQUIRE(g_variant_is_of_type(v, G_VARIANT_TYPE_UINT16), "Duration: not q");
    if (TAKE("Timeout")) {
        REQUIRE(g_variant_is_of_type(v, G_VARIANT_TYPE_UINT16), "Timeout: not q");
        out->timeout = g_variant_get_uint16(v);
    }
    if (TAKE("Data")) {
        GVariantIter iter;
        GVariant *data;
        guint8 type;

        REQUIRE(g_variant_is_of_type(v, G_VARIANT_TYPE("a{yv}")), "Data: not a{yv}");
        g_variant_iter_init(&iter, v);
        while (g_variant_iter_loop(&iter, "{yv}", &type, &data)) {
            if (!is_bytes(data)) {
                g_variant_unref(data);
                REQUIRE(FALSE, "Data: value is not ay");
            }
            len += 2 + (guint)g_variant_n_children(data);
        }
    }
    if (TAKE("Discoverable")) {
        REQUIRE(g_variant_is_of_type(v, G_VARIANT_TYPE_BOOLEAN), "Discoverable: not b");
        out->discoverable = g_variant_get_boolean(v);
    }
    if (TAKE("DiscoverableTimeout"))
        REQUIRE(g_variant_is_of_type(v, G_VARIANT_TYPE_UINT16), "DiscoverableTimeout: not q");
    /* The simulated controllers do legacy advertising only: no secondary PHYs. */
    REQUIRE(!TAKE("SecondaryChannel"), "SecondaryChannel is not supported by the controller");
    /* MinInterval, MaxInterval and TxPower are ignored without --experimental. */

    /* Bluetooth Core spec: a device in broadcast mode must not set discoverable flags. */
    REQUIRE(out->peripheral || !out->discoverable, "Broadcast cannot set flags");
    /* Connectable advertisements always carry a Flags field. */
    if (out->peripheral)
        len += 3;
    REQUIRE(len <= FB_MAX_AD_LEN, "Advertising data too long");
    g_variant_dict_clear(&dict);
    return TRUE;

fail:
    g_variant_dict_clear(&dict);
    adv_data_clear(out);
    return FALSE;
#undef TAKE
#undef REQUIRE
}

gboolean fb_advert_on_air(FbAdvert *advert)
{
    return advert->registered && advert->adapter->powered;
}

gboolean fb_advert_connectable(FbAdvert *advert)
{
    /* While the adapter is discoverable the kernel makes every instance connectable. */
    return advert->data.peripheral || fb_adapter_discoverable(advert->adapter);
}

gboolean fb_advert_has_flags(FbAdvert *advert)
{
    /* Peripheral adverts get General Discoverable from bluetoothd; broadcasts get it from
     * the kernel while the adapter is discoverable. */
    return advert->data.peripheral || fb_adapter_discoverable(advert->adapter);
}

GVariant *fb_advert_describe(FbAdvert *advert)
{
    GVariantBuilder b;
    char addr[18];

    g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
    g_variant_builder_add(&b, "{sv}", "Adapter", g_variant_new_uint32(advert->adapter->index));
    g_variant_builder_add(&b, "{sv}", "Owner", g_variant_new_string(advert->owner));
    g_variant_builder_add(&b, "{sv}", "Path", g_variant_new_object_path(advert->path));
    g_variant_builder_add(&b, "{sv}", "Registered", g_variant_new_boolean(advert->registered));
    g_variant_builder_add(&b, "{sv}", "Active", g_variant_new_boolean(fb_advert_on_air(advert)));
    g_variant_builder_add(
        &b, "{sv}", "Type",
        g_variant_new_string(advert->data.peripheral ? "peripheral" : "broadcast"));
    g_variant_builder_add(&b, "{sv}", "Address",
                          g_variant_new_string(fb_bdaddr_to_string(&advert->address, addr)));
    g_variant_builder_add(&b, "{sv}", "AddressType",
                          g_variant_new_string(advert->from_public ? "public" : "random"));
    g_variant_builder_add(&b, "{sv}", "FromPublicAddress",
                          g_variant_new_boolean(advert->from_public));
    if (advert->data.service_uuids != NULL) {
        g_ptr_array_add(advert->data.service_uuids, NULL);
        g_variant_builder_add(
            &b, "{sv}", "ServiceUUIDs",
            g_variant_new_strv((const char *const *)advert->data.service_uuids->pdata, -1));
        g_ptr_array_set_size(advert->data.service_uuids, advert->data.service_uuids->len - 1);
    } else {
        g_variant_builder_add(&b, "{sv}", "ServiceUUIDs", g_variant_new_strv(NULL, 0));
    }
    g_variant_builder_add(&b, "{sv}", "ServiceData",
                          advert->data.service_data != NULL
                              ? advert->data.service_data
                              : g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0));
    g_variant_builder_add(&b, "{sv}", "Refreshes", g_variant_new_uint32(advert->refreshes));
    g_variant_builder_add(&b, "{sv}", "KeptAddress", g_variant_new_uint32(advert->kept_address));
    return g_variant_builder_end(&b);
}

static void notify_changed(FbAdvert *advert)
{
    fb_world_emit_control(advert->adapter->world, "AdvertisementChanged",
                          g_variant_new("(@a{sv})", fb_advert_describe(advert)));
}

/* A legacy controller cannot take a new random address while it scans (LE Set Random
 * Address -> Command Disallowed): the kernel keeps the one it has. */
static gboolean random_address_locked(FbAdapter *adapter)
{
    return adapter->dev->legacy_advertising && adapter->merged.active;
}

/* The kernel (re)programs the instance: with Privacy off a non-connectable one gets a fresh
 * non-resolvable private address; a connectable one uses the public address. A refresh
 * (new data) on a legacy controller sets the data while the instance is still enabled on
 * its old address and only then moves it to a new one, so the new data goes out from the
 * old address first (bluetoothd 5.66 on btvirt -L, btmon: LE Set Advertising Data, then
 * Advertise Enable off, LE Set Random Address, on); while the controller scans it keeps the
 * old address for good. */
static void reprogram(FbAdvert *advert, gboolean refresh)
{
    FbAdapter *adapter = advert->adapter;
    char addr[18];

    if (adapter->powered) {
        gboolean random = !fb_advert_connectable(advert) && !advert->from_public;

        if (refresh && random && adapter->dev->legacy_advertising) {
            advert->kept_address++;
            g_message("hci%u: advertisement %s%s refreshed in place on a legacy controller: new "
                      "data sent from the old address %s",
                      adapter->index, advert->owner, advert->path,
                      fb_bdaddr_to_string(&advert->address, addr));
        }
        if (refresh && random && random_address_locked(adapter)) {
            g_info("hci%u: the legacy controller scans: %s%s stays on %s", adapter->index,
                   advert->owner, advert->path, fb_bdaddr_to_string(&advert->address, addr));
        } else if (fb_advert_connectable(advert)) {
            advert->address = adapter->dev->address;
            advert->from_public = TRUE;
        } else {
            FbBdaddr old = advert->address;

            fb_bdaddr_random_nrpa(adapter->world->addr_rng, &old, &advert->address);
            advert->from_public = FALSE;
        }
        g_info("hci%u: advertisement %s%s now sent from %s (%s)", adapter->index, advert->owner,
               advert->path, fb_bdaddr_to_string(&advert->address, addr),
               advert->from_public ? "public" : "random");
    }
    notify_changed(advert);
}

void fb_adverts_reprogram(FbAdapter *adapter)
{
    for (guint i = 0; i < adapter->adverts->len; i++) {
        FbAdvert *advert = adapter->adverts->pdata[i];

        if (advert->registered)
            reprogram(advert, FALSE);
    }
    fb_world_kick(adapter->world);
}

void fb_adverts_notify(FbAdapter *adapter)
{
    for (guint i = 0; i < adapter->adverts->len; i++) {
        FbAdvert *advert = adapter->adverts->pdata[i];

        if (advert->registered)
            notify_changed(advert);
    }
}

static void update_instances(FbAdapter *adapter, FbEmit emit)
{
    guint n = adapter->adverts->len;

    if (adapter->adv_iface == NULL)
        return;
    fb_iface_hold(adapter->adv_iface);
    fb_iface_set(adapter->adv_iface, "SupportedInstances",
                 g_variant_new_byte((guint8)(FB_MAX_ADV_INSTANCES - n)), emit);
    fb_iface_set(adapter->adv_iface, "ActiveInstances", g_variant_new_byte((guint8)n), emit);
    fb_iface_release(adapter->adv_iface);
}

static void send_release(FbAdvert *advert)
{
    g_autoptr(GDBusMessage) msg = g_dbus_message_new_method_call(advert->owner, advert->path,
                                                                 FB_ADVERTISEMENT_IFACE, "Release");

    g_dbus_message_set_flags(msg, G_DBUS_MESSAGE_FLAGS_NO_REPLY_EXPECTED);
    g_dbus_connection_send_message(advert->adapter->world->conn, msg,
                                   G_DBUS_SEND_MESSAGE_FLAGS_NONE, NULL, NULL);
}

static void advert_remove(FbAdvert *advert, const char *reason, gboolean release)
{
    FbAdapter *adapter = advert->adapter;
    FbWorld *world = adapter->world;
    gboolean was_registered = advert->registered;

    g_info("hci%u: advertisement %s%s removed (%s)", adapter->index, advert->owner, advert->path,
           reason);
    if (release)
        send_release(advert);
    if (advert->pending != NULL) {
        g_dbus_method_invocation_return_error_literal(advert->pending, FB_BLUEZ_ERROR,
                                                      FB_BLUEZ_ERROR_FAILED,
                                                      "Failed to complete registration");
        advert->pending = NULL;
    }
    g_cancellable_cancel(advert->cancellable);
    if (advert->props_subscription != 0)
        g_dbus_connection_signal_unsubscribe(world->conn, advert->props_subscription);
    g_ptr_array_remove(adapter->adverts, advert);
    if (was_registered) {
        update_instances(adapter, FB_EMIT_ALWAYS);
        fb_world_emit_control(
            world, "AdvertisementRemoved",
            g_variant_new("(usos)", adapter->index, advert->owner, advert->path, reason));
    } else {
        update_instances(adapter, FB_EMIT_NONE);
    }
    g_object_unref(advert->cancellable);
    g_clear_pointer(&advert->props, g_variant_unref);
    adv_data_clear(&advert->data);
    g_free(advert->owner);
    g_free(advert->path);
    g_free(advert);
    fb_world_kick(world);
}

static FbAdvert *find_advert(FbAdapter *adapter, const char *owner, const char *path)
{
    for (guint i = 0; i < adapter->adverts->len; i++) {
        FbAdvert *advert = adapter->adverts->pdata[i];

        if (g_str_equal(advert->owner, owner) && g_str_equal(advert->path, path))
            return advert;
    }
    return NULL;
}

static void on_props_changed(GDBusConnection *conn, const char *sender, const char *path,
                             const char *iface, const char *signal, GVariant *params,
                             gpointer user_data)
{
    FbAdvert *advert = user_data;
    g_autoptr(GVariant) changed = NULL;
    g_autofree const char **invalidated = NULL;
    g_autoptr(GVariant) props = NULL;
    gboolean relevant = FALSE;
    GVariantDict dict;
    GVariantIter iter;
    const char *name;
    GVariant *value;
    const char *reason = NULL;
    FbAdvData data;

    if (!g_variant_is_of_type(params, G_VARIANT_TYPE("(sa{sv}as)")))
        return;
    g_variant_get(params, "(&s@a{sv}^a&s)", NULL, &changed, &invalidated);
    /* Values come from the signal itself (bluetoothd's proxy cache), not from a new
     * read-back; an invalidated property counts as removed. */
    g_variant_dict_init(&dict, advert->props);
    g_variant_iter_init(&iter, changed);
    while (g_variant_iter_loop(&iter, "{&sv}", &name, &value)) {
        g_variant_dict_insert_value(&dict, name, value);
        relevant = relevant || g_strv_contains(parsed_properties, name);
    }
    for (guint i = 0; invalidated[i] != NULL; i++) {
        g_variant_dict_remove(&dict, invalidated[i]);
        relevant = relevant || g_strv_contains(parsed_properties, invalidated[i]);
    }
    props = g_variant_ref_sink(g_variant_dict_end(&dict));
    g_variant_unref(advert->props);
    advert->props = g_steal_pointer(&props);
    if (!relevant)
        return;
    if (!adv_data_parse(advert->props, &data, &reason)) {
        /* The refresh fails and the controller keeps sending the previous data. */
        g_message("hci%u: refresh of %s%s failed: %s", advert->adapter->index, advert->owner,
                  advert->path, reason);
        return;
    }
    adv_data_clear(&advert->data);
    advert->data = data;
    advert->refreshes++;
    reprogram(advert, TRUE);
    fb_world_kick(advert->adapter->world);
}

/* ---- late replies (SetRegisterReplyDelay): a busy bluetoothd answers
 * RegisterAdvertisement a while after the kernel put the advertisement on the air ---- */

typedef struct {
    FbWorld *world;
    GDBusMethodInvocation *invocation;
    guint source;
} LateReply;

static void late_reply_send(LateReply *late)
{
    g_ptr_array_remove_fast(late->world->late_replies, late);
    g_dbus_method_invocation_return_value(late->invocation, NULL);
    g_free(late);
}

static gboolean on_late_reply(gpointer user_data)
{
    LateReply *late = user_data;
    late->source = 0;
    late_reply_send(late);
    return G_SOURCE_REMOVE;
}

static void reply_registered(FbWorld *world, GDBusMethodInvocation *invocation)
{
    LateReply *late;

    if (world->register_reply_delay_ms == 0) {
        g_dbus_method_invocation_return_value(invocation, NULL);
        return;
    }
    late = g_new0(LateReply, 1);
    late->world = world;
    late->invocation = invocation;
    late->source = g_timeout_add(world->register_reply_delay_ms, on_late_reply, late);
    g_ptr_array_add(world->late_replies, late);
}

void fb_adverts_flush_late_replies(FbWorld *world)
{
    while (world->late_replies->len > 0) {
        LateReply *late = world->late_replies->pdata[world->late_replies->len - 1];
        g_clear_handle_id(&late->source, g_source_remove);
        late_reply_send(late);
    }
}

static void on_got_props(GObject *source, GAsyncResult *result, gpointer user_data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reply =
        g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);
    FbAdvert *advert = user_data;
    FbAdapter *adapter;
    GDBusMethodInvocation *invocation;
    const char *reason = NULL;

    if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return; /* advert already gone */
    adapter = advert->adapter;
    invocation = g_steal_pointer(&advert->pending);
    if (reply != NULL) {
        advert->props = g_variant_get_child_value(reply, 0);
    } else {
        /* bluetoothd's D-Bus client treats a failed GetAll as an object without
         * properties: the registration goes ahead as an empty broadcast. */
        g_info("hci%u: reading %s%s failed (%s); registering it empty", adapter->index,
               advert->owner, advert->path, error->message);
        advert->props = g_variant_ref_sink(g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0));
    }
    if (!adv_data_parse(advert->props, &advert->data, &reason)) {
        g_message("hci%u: advertisement %s%s refused: %s", adapter->index, advert->owner,
                  advert->path, reason);
        g_dbus_method_invocation_return_error_literal(
            invocation, FB_BLUEZ_ERROR, FB_BLUEZ_ERROR_FAILED, "Failed to parse advertisement.");
        advert_remove(advert, "refused", FALSE);
        return;
    }
    if (adapter->powered && !advert->data.peripheral && !fb_adapter_discoverable(adapter) &&
        random_address_locked(adapter)) {
        /* The kernel's Add Advertising needs a new random address, which the scanning
         * legacy controller refuses; bluetoothd 5.66 answers with this (btvirt -L). */
        g_message("hci%u: advertisement %s%s refused: LE Set Random Address while scanning "
                  "(legacy controller)",
                  adapter->index, advert->owner, advert->path);
        g_dbus_method_invocation_return_error_literal(
            invocation, FB_BLUEZ_ERROR, FB_BLUEZ_ERROR_FAILED, "Failed to register advertisement");
        advert_remove(advert, "refused", FALSE);
        return;
    }
    advert->registered = TRUE;
    advert->registered_us = fb_world_now_us(adapter->world);
    advert->props_subscription = g_dbus_connection_signal_subscribe(
        adapter->world->conn, advert->owner, "org.freedesktop.DBus.Properties", "PropertiesChanged",
        advert->path, FB_ADVERTISEMENT_IFACE, G_DBUS_SIGNAL_FLAGS_NONE, on_props_changed, advert,
        NULL);
    update_instances(adapter, FB_EMIT_ALWAYS);
    reply_registered(adapter->world, invocation);
    reprogram(advert, FALSE);
    fb_world_kick(adapter->world);
}

static void register_advertisement(FbAdapter *adapter, GDBusMethodInvocation *invocation)
{
    FbWorld *world = adapter->world;
    const char *sender = g_dbus_method_invocation_get_sender(invocation);
    const char *path = NULL;
    FbAdvert *advert;

    g_variant_get(g_dbus_method_invocation_get_parameters(invocation), "(&o@a{sv})", &path, NULL);
    if (find_advert(adapter, sender, path) != NULL) {
        g_dbus_method_invocation_return_error_literal(
            invocation, FB_BLUEZ_ERROR, FB_BLUEZ_ERROR_ALREADY_EXISTS, "Already Exists");
        return;
    }
    if (adapter->adverts->len >= FB_MAX_ADV_INSTANCES) {
        g_dbus_method_invocation_return_error_literal(invocation, FB_BLUEZ_ERROR,
                                                      FB_BLUEZ_ERROR_NOT_PERMITTED,
                                                      "Maximum advertisements reached");
        return;
    }
    advert = g_new0(FbAdvert, 1);
    advert->adapter = adapter;
    advert->id = ++world->next_advert_id;
    advert->owner = g_strdup(sender);
    advert->path = g_strdup(path);
    advert->pending = invocation;
    advert->cancellable = g_cancellable_new();
    g_ptr_array_add(adapter->adverts, advert);
    update_instances(adapter, FB_EMIT_NONE);
    fb_world_watch_client(world, sender);
    /* Read the object back before answering, as bluetoothd does: a client that blocks on
     * this call without running its main loop deadlocks here, as it would with BlueZ. */
    g_dbus_connection_call(world->conn, sender, path, "org.freedesktop.DBus.Properties", "GetAll",
                           g_variant_new("(s)", FB_ADVERTISEMENT_IFACE), G_VARIANT_TYPE("(a{sv})"),
                           G_DBUS_CALL_FLAGS_NO_AUTO_START, -1, advert->cancellable, on_got_props,
                           advert);
}

static void unregister_advertisement(FbAdapter *adapter, GDBusMethodInvocation *invocation)
{
    const char *sender = g_dbus_method_invocation_get_sender(invocation);
    const char *path = NULL;
    FbAdvert *advert;

    g_variant_get(g_dbus_method_invocation_get_parameters(invocation), "(&o)", &path);
    advert = find_advert(adapter, sender, path);
    if (advert == NULL) {
        g_dbus_method_invocation_return_error_literal(
            invocation, FB_BLUEZ_ERROR, FB_BLUEZ_ERROR_DOES_NOT_EXIST, "Does Not Exist");
        return;
    }
    /* No Release(): the client asked for it. */
    advert_remove(advert, "unregistered", FALSE);
    g_dbus_method_invocation_return_value(invocation, NULL);
}

static void manager_method(FbIface *iface, GDBusMethodInvocation *invocation, gpointer user_data)
{
    FbAdapter *adapter = user_data;
    const char *method = g_dbus_method_invocation_get_method_name(invocation);

    if (g_str_equal(method, "RegisterAdvertisement"))
        register_advertisement(adapter, invocation);
    else if (g_str_equal(method, "UnregisterAdvertisement"))
        unregister_advertisement(adapter, invocation);
    else
        g_dbus_method_invocation_return_error(invocation, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD,
                                              "No such method '%s'", method);
}

static gboolean manager_appear(gpointer user_data)
{
    static const char *const includes[] = {"tx-power", "appearance", "local-name", NULL};
    FbAdapter *adapter = user_data;
    FbIface *iface;

    adapter->adv_manager_timeout = 0;
    iface = fb_iface_new(fb_world_iface_info(adapter->world, FB_ADV_MANAGER_IFACE), manager_method,
                         NULL, adapter);
    adapter->adv_iface = iface;
    update_instances(adapter, FB_EMIT_NONE);
    fb_iface_set(iface, "SupportedIncludes", g_variant_new_strv(includes, -1), FB_EMIT_NONE);
    g_dbus_object_skeleton_add_interface(adapter->object, G_DBUS_INTERFACE_SKELETON(iface));
    g_info("hci%u: LEAdvertisingManager1 ready", adapter->index);
    return G_SOURCE_REMOVE;
}

void fb_adv_manager_schedule(FbAdapter *adapter)
{
    /* bluetoothd registers the manager only after the kernel answered Read Advertising
     * Features, i.e. after Adapter1 is already on the bus. */
    adapter->adv_manager_timeout =
        g_timeout_add(adapter->world->opts.adv_manager_delay_ms, manager_appear, adapter);
}

void fb_adv_manager_remove(FbAdapter *adapter)
{
    g_clear_handle_id(&adapter->adv_manager_timeout, g_source_remove);
    while (adapter->adverts->len > 0)
        advert_remove(adapter->adverts->pdata[0], "released", TRUE);
    if (adapter->adv_iface != NULL) {
        g_dbus_object_skeleton_remove_interface(adapter->object,
                                                G_DBUS_INTERFACE_SKELETON(adapter->adv_iface));
        g_clear_object(&adapter->adv_iface);
    }
}

void fb_adverts_client_vanished(FbAdapter *adapter, const char *owner)
{
    for (guint i = adapter->adverts->len; i > 0; i--) {
        FbAdvert *advert = adapter->adverts->pdata[i - 1];

        if (g_str_equal(advert->owner, owner))
            advert_remove(advert, "disconnected", FALSE);
    }
}

void fb_adverts_tick(FbAdapter *adapter, gint64 now_us)
{
    for (guint i = adapter->adverts->len; i > 0; i--) {
        FbAdvert *advert = adapter->adverts->pdata[i - 1];

        if (advert->registered && advert->data.timeout > 0 &&
            now_us - advert->registered_us >= (gint64)advert->data.timeout * G_USEC_PER_SEC)
            advert_remove(advert, "timeout", TRUE);
    }
}

gboolean fb_adverts_need_tick(FbAdapter *adapter)
{
    for (guint i = 0; i < adapter->adverts->len; i++) {
        FbAdvert *advert = adapter->adverts->pdata[i];

        if (advert->registered && advert->data.timeout > 0)
            return TRUE;
    }
    return FALSE;
}
