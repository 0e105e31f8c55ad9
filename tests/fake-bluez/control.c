#define G_LOG_DOMAIN "fake-bluez"

#include "fake-bluez.h"

#include <math.h>

#include "bluez-error.h"

#define CONTROL_ERROR "org.proxd.FakeBluez1.Error"

typedef struct {
    guint scanner, advertiser;
    guint remaining, visible;
    GDBusMethodInvocation *invocation;
} FbReportWait;

static FbAdapter *adapter_or_error(FbWorld *world, guint index, GDBusMethodInvocation *invocation)
{
    FbAdapter *adapter = fb_world_find_adapter(world, index);

    if (adapter == NULL)
        g_dbus_method_invocation_return_dbus_error(invocation, CONTROL_ERROR ".NoSuchAdapter",
                                                   "No such adapter");
    return adapter;
}

static void add_adapter(FbWorld *world, GDBusMethodInvocation *invocation, GVariant *params)
{
    FbSimDevice *dev;
    guint index;

    g_variant_get(params, "(u)", &index);
    if (index > 1023) {
        g_dbus_method_invocation_return_dbus_error(invocation, CONTROL_ERROR ".InvalidArgs",
                                                   "Adapter index must be 0..1023");
        return;
    }
    if (fb_world_find_adapter(world, index) != NULL) {
        g_dbus_method_invocation_return_dbus_error(invocation, CONTROL_ERROR ".Exists",
                                                   "Adapter is already plugged in");
        return;
    }
    dev = fb_scenario_find_adapter(world->scenario, index);
    if (dev == NULL)
        dev = fb_scenario_add_bare(world->scenario, index);
    /* A replugged controller comes back powered (BlueZ's AutoEnable), unless the scenario
     * says this device starts off. */
    fb_adapter_new(world, dev);
    g_dbus_method_invocation_return_value(invocation, NULL);
}

static void remove_adapter(FbWorld *world, GDBusMethodInvocation *invocation, GVariant *params)
{
    FbAdapter *adapter;
    guint index;

    g_variant_get(params, "(u)", &index);
    adapter = adapter_or_error(world, index, invocation);
    if (adapter == NULL)
        return;
    fb_adapter_remove(adapter);
    g_dbus_method_invocation_return_value(invocation, NULL);
}

static void set_powered(FbWorld *world, GDBusMethodInvocation *invocation, GVariant *params)
{
    FbAdapter *adapter;
    gboolean powered;
    guint index;

    g_variant_get(params, "(ub)", &index, &powered);
    adapter = adapter_or_error(world, index, invocation);
    if (adapter == NULL)
        return;
    if (powered && adapter->blocked) {
        g_dbus_method_invocation_return_error_literal(
            invocation, FB_BLUEZ_ERROR, FB_BLUEZ_ERROR_BLOCKED, "Blocked through rfkill");
        return;
    }
    fb_adapter_set_powered(adapter, powered);
    g_dbus_method_invocation_return_value(invocation, NULL);
}

static void set_blocked(FbWorld *world, GDBusMethodInvocation *invocation, GVariant *params)
{
    FbAdapter *adapter;
    gboolean blocked;
    guint index;

    g_variant_get(params, "(ub)", &index, &blocked);
    adapter = adapter_or_error(world, index, invocation);
    if (adapter == NULL)
        return;
    fb_adapter_set_blocked(adapter, blocked);
    g_dbus_method_invocation_return_value(invocation, NULL);
}

static FbSimDevice *find_device(FbWorld *world, const char *name)
{
    FbSimDevice *dev = fb_scenario_find_name(world->scenario, name);
    guint64 index;

    if (dev == NULL && g_str_has_prefix(name, "hci") &&
        g_ascii_string_to_unsigned(name + 3, 10, 0, 1023, &index, NULL))
        dev = fb_scenario_find_adapter(world->scenario, (guint)index);
    return dev;
}

static void set_position(FbWorld *world, GDBusMethodInvocation *invocation, GVariant *params)
{
    const char *name;
    FbSimDevice *dev;
    double x, y;

    g_variant_get(params, "(&sdd)", &name, &x, &y);
    dev = find_device(world, name);
    if (dev == NULL) {
        g_dbus_method_invocation_return_dbus_error(invocation, CONTROL_ERROR ".NoSuchDevice",
                                                   "No such device");
        return;
    }
    if (!isfinite(x) || !isfinite(y)) {
        g_dbus_method_invocation_return_dbus_error(invocation, CONTROL_ERROR ".InvalidArgs",
                                                   "Position must be finite");
        return;
    }
    dev->pinned = TRUE;
    dev->pin_x = x;
    dev->pin_y = y;
    g_dbus_method_invocation_return_value(invocation, NULL);
}

static void list_advertisements(FbWorld *world, GDBusMethodInvocation *invocation)
{
    GVariantBuilder b;

    g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
    for (guint i = 0; i < world->adapters->len; i++) {
        FbAdapter *adapter = world->adapters->pdata[i];

        for (guint j = 0; j < adapter->adverts->len; j++)
            g_variant_builder_add_value(&b, fb_advert_describe(adapter->adverts->pdata[j]));
    }
    g_dbus_method_invocation_return_value(invocation, g_variant_new("(aa{sv})", &b));
}

static void list_devices(FbWorld *world, GDBusMethodInvocation *invocation)
{
    double t = fb_world_scenario_time(world, fb_world_now_us(world));
    GVariantBuilder b;

    g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
    for (guint i = 0; i < world->scenario->devices->len; i++) {
        FbSimDevice *dev = world->scenario->devices->pdata[i];
        FbAdapter *adapter = fb_world_find_adapter(world, dev->adapter);
        GVariantBuilder d;
        char addr[18];
        double x, y;

        fb_sim_device_position(dev, t, &x, &y);
        g_variant_builder_init(&d, G_VARIANT_TYPE_VARDICT);
        g_variant_builder_add(&d, "{sv}", "Name", g_variant_new_string(dev->name));
        g_variant_builder_add(&d, "{sv}", "Adapter", g_variant_new_uint32(dev->adapter));
        g_variant_builder_add(&d, "{sv}", "Role", g_variant_new_string(dev->role));
        g_variant_builder_add(&d, "{sv}", "X", g_variant_new_double(x));
        g_variant_builder_add(&d, "{sv}", "Y", g_variant_new_double(y));
        g_variant_builder_add(&d, "{sv}", "Present", g_variant_new_boolean(adapter != NULL));
        g_variant_builder_add(&d, "{sv}", "Powered",
                              g_variant_new_boolean(adapter != NULL && adapter->powered));
        g_variant_builder_add(
            &d, "{sv}", "Discoverable",
            g_variant_new_boolean(adapter != NULL && fb_adapter_discoverable(adapter)));
        g_variant_builder_add(&d, "{sv}", "Discovering",
                              g_variant_new_boolean(adapter != NULL && adapter->merged.active));
        g_variant_builder_add(&d, "{sv}", "Address",
                              g_variant_new_string(fb_bdaddr_to_string(&dev->address, addr)));
        g_variant_builder_add(&d, "{sv}", "Controller",
                              g_variant_new_string(dev->legacy_advertising ? "le-legacy" : "dual"));
        g_variant_builder_add_value(&b, g_variant_builder_end(&d));
    }
    g_dbus_method_invocation_return_value(invocation, g_variant_new("(aa{sv})", &b));
}

static void wait_reports(FbWorld *world, GDBusMethodInvocation *invocation, GVariant *params)
{
    FbReportWait *wait = g_new0(FbReportWait, 1);

    g_variant_get(params, "(uuu)", &wait->scanner, &wait->advertiser, &wait->remaining);
    if (wait->remaining == 0) {
        g_free(wait);
        g_dbus_method_invocation_return_value(invocation, g_variant_new("(u)", 0));
        return;
    }
    wait->invocation = invocation;
    world->report_waits = g_list_append(world->report_waits, wait);
}

void fb_control_report_delivered(FbWorld *world, guint scanner, guint advertiser, gboolean visible)
{
    GList *l = world->report_waits;

    while (l != NULL) {
        FbReportWait *wait = l->data;
        GList *next = l->next;

        if (wait->scanner == scanner && wait->advertiser == advertiser) {
            wait->visible += visible ? 1 : 0;
            if (--wait->remaining == 0) {
                g_dbus_method_invocation_return_value(wait->invocation,
                                                      g_variant_new("(u)", wait->visible));
                world->report_waits = g_list_delete_link(world->report_waits, l);
                g_free(wait);
            }
        }
        l = next;
    }
}

void fb_control_fail_waits(FbWorld *world)
{
    for (GList *l = world->report_waits; l != NULL; l = l->next) {
        FbReportWait *wait = l->data;

        g_dbus_method_invocation_return_dbus_error(wait->invocation, CONTROL_ERROR ".Quitting",
                                                   "The fake is shutting down");
        g_free(wait);
    }
    g_clear_pointer(&world->report_waits, g_list_free);
}

static gboolean quit_idle(gpointer user_data)
{
    fb_world_shutdown(user_data);
    return G_SOURCE_REMOVE;
}

static void control_method(GDBusConnection *conn, const char *sender, const char *path,
                           const char *iface, const char *method, GVariant *params,
                           GDBusMethodInvocation *invocation, gpointer user_data)
{
    FbWorld *world = user_data;

    if (world->shutting_down) {
        g_dbus_method_invocation_return_dbus_error(invocation, CONTROL_ERROR ".Quitting",
                                                   "The fake is shutting down");
    } else if (g_str_equal(method, "AddAdapter")) {
        add_adapter(world, invocation, params);
    } else if (g_str_equal(method, "RemoveAdapter")) {
        remove_adapter(world, invocation, params);
    } else if (g_str_equal(method, "SetPowered")) {
        set_powered(world, invocation, params);
    } else if (g_str_equal(method, "SetBlocked")) {
        set_blocked(world, invocation, params);
    } else if (g_str_equal(method, "SetPosition")) {
        set_position(world, invocation, params);
    } else if (g_str_equal(method, "ListAdvertisements")) {
        list_advertisements(world, invocation);
    } else if (g_str_equal(method, "ListDevices")) {
        list_devices(world, invocation);
    } else if (g_str_equal(method, "GetSimTime")) {
        g_dbus_method_invocation_return_value(
            invocation, g_variant_new("(d)", prox_sim_clock_now(&world->clock)));
    } else if (g_str_equal(method, "SetRegisterReplyDelay")) {
        g_variant_get(params, "(u)", &world->register_reply_delay_ms);
        g_dbus_method_invocation_return_value(invocation, NULL);
    } else if (g_str_equal(method, "WaitReports")) {
        wait_reports(world, invocation, params);
    } else if (g_str_equal(method, "Quit")) {
        g_dbus_method_invocation_return_value(invocation, NULL);
        g_idle_add(quit_idle, world);
    } else {
        g_dbus_method_invocation_return_error(invocation, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD,
                                              "No such method '%s'", method);
    }
}

gboolean fb_control_register(FbWorld *world, GError **error)
{
    static const GDBusInterfaceVTable vtable = {.method_call = control_method};

    world->control_registration = g_dbus_connection_register_object(
        world->conn, FB_CONTROL_PATH,
        g_dbus_node_info_lookup_interface(world->control_node, FB_CONTROL_IFACE), &vtable, world,
        NULL, error);
    return world->control_registration != 0;
}
