#define G_LOG_DOMAIN "fake-bluez"

#include "fake-bluez.h"

#include <math.h>

#include "fake-bluez-resources.h"
#include "radio.h"

/* A scanner-advertisement pair's report schedule. */
typedef struct {
    gint64 key;
    gint64 next_us; /* sim time of the next report */
    guint64 generation;
} FbLink;

/* After a stall, at most this many overdue reports per pair are delivered at once. */
#define MAX_CATCH_UP 16

FbWorld *fb_world_new(const FbOptions *opts, const ProxSimClock *clock, FbScenario *scenario,
                      GError **error)
{
    g_autoptr(GBytes) bluez_xml = NULL;
    g_autoptr(GBytes) control_xml = NULL;
    FbWorld *world = g_new0(FbWorld, 1);
    guint32 seed[2] = {(guint32)opts->seed, (guint32)(opts->seed >> 32)};

    world->opts = *opts;
    world->opts.bus_address = g_strdup(opts->bus_address);
    world->opts.scenario_path = g_strdup(opts->scenario_path);
    world->opts.truth_log_path = g_strdup(opts->truth_log_path);
    world->clock = *clock;
    world->scenario = scenario;
    world->adapters = g_ptr_array_new();
    world->late_replies = g_ptr_array_new();
    world->clients = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    world->links = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, g_free);
    world->noise_rng = g_rand_new_with_seed_array(seed, G_N_ELEMENTS(seed));
    /* Addresses differ on every run (like a real kernel), so a restarted fake never reuses
     * the previous run's addresses. */
    world->addr_rng = g_rand_new();
    world->loop = g_main_loop_new(NULL, FALSE);

    /* Looked up through the generated accessor so a static link keeps the resource. */
    bluez_xml = g_resource_lookup_data(fake_bluez_get_resource(),
                                       "/org/proxd/fake-bluez/org.bluez.xml", 0, error);
    if (bluez_xml == NULL)
        goto fail;
    control_xml = g_resource_lookup_data(
        fake_bluez_get_resource(), "/org/proxd/fake-bluez/org.proxd.FakeBluez1.xml", 0, error);
    if (control_xml == NULL)
        goto fail;
    world->bluez_node = g_dbus_node_info_new_for_xml(g_bytes_get_data(bluez_xml, NULL), error);
    if (world->bluez_node == NULL)
        goto fail;
    world->control_node = g_dbus_node_info_new_for_xml(g_bytes_get_data(control_xml, NULL), error);
    if (world->control_node == NULL)
        goto fail;
    if (opts->truth_log_path != NULL) {
        world->truth = fb_truth_log_open(opts->truth_log_path, error);
        if (world->truth == NULL)
            goto fail;
    }
    return world;

fail:
    fb_world_free(world);
    return NULL;
}

gint64 fb_world_now_us(FbWorld *world)
{
    return prox_sim_clock_now_us(&world->clock);
}

double fb_world_scenario_time(FbWorld *world, gint64 sim_us)
{
    return (double)(sim_us - world->clock.sim_start_us) / G_USEC_PER_SEC;
}

GDBusInterfaceInfo *fb_world_iface_info(FbWorld *world, const char *name)
{
    return g_dbus_node_info_lookup_interface(world->bluez_node, name);
}

FbAdapter *fb_world_find_adapter(FbWorld *world, guint index)
{
    for (guint i = 0; i < world->adapters->len; i++) {
        FbAdapter *adapter = world->adapters->pdata[i];

        if (adapter->index == index)
            return adapter;
    }
    return NULL;
}

void fb_world_emit_control(FbWorld *world, const char *member, GVariant *parameters)
{
    g_variant_ref_sink(parameters);
    if (world->conn != NULL)
        g_dbus_connection_emit_signal(world->conn, NULL, FB_CONTROL_PATH, FB_CONTROL_IFACE, member,
                                      parameters, NULL);
    g_variant_unref(parameters);
}

/* --- clients ------------------------------------------------------------------------------ */

static void on_client_vanished(GDBusConnection *conn, const char *name, gpointer user_data)
{
    FbWorld *world = user_data;
    gpointer key, watch;

    for (guint i = 0; i < world->adapters->len; i++) {
        FbAdapter *adapter = world->adapters->pdata[i];

        fb_discovery_client_vanished(adapter, name);
        fb_adverts_client_vanished(adapter, name);
    }
    if (g_hash_table_steal_extended(world->clients, name, &key, &watch)) {
        g_bus_unwatch_name(GPOINTER_TO_UINT(watch));
        g_free(key);
    }
}

void fb_world_watch_client(FbWorld *world, const char *owner)
{
    guint watch;

    if (g_hash_table_contains(world->clients, owner))
        return;
    /* Unique names are never reused, so one watch per sender for the fake's lifetime. */
    watch = g_bus_watch_name_on_connection(world->conn, owner, G_BUS_NAME_WATCHER_FLAGS_NONE, NULL,
                                           on_client_vanished, world, NULL);
    g_hash_table_insert(world->clients, g_strdup(owner), GUINT_TO_POINTER(watch));
}

/* --- the radio ---------------------------------------------------------------------------- */

/* Simulated time between two reports of one advertisement at one scanner: the advertising
 * interval, thinned so no pair exceeds max_report_rate per real second, but never more than
 * one simulated second apart. */
static gint64 report_interval_us(FbWorld *world)
{
    double adv = world->scenario->advertising_interval * G_USEC_PER_SEC;
    double thinned = world->clock.speed * G_USEC_PER_SEC / world->opts.max_report_rate;
    double ceiling = MAX(adv, (double)G_USEC_PER_SEC);

    return (gint64)MIN(MAX(adv, thinned), ceiling);
}

static guint tick_ms(FbWorld *world)
{
    guint ms = prox_sim_clock_real_ms(&world->clock, report_interval_us(world)) / 2;

    return CLAMP(ms, 10u, 100u);
}

static void deliver(FbWorld *world, FbAdapter *scanner, FbAdapter *advertiser, FbAdvert *advert,
                    gint64 t_us)
{
    double t = fb_world_scenario_time(world, t_us);
    double sx, sy, ax, ay, distance;
    gboolean visible;
    int rssi;

    fb_sim_device_position(scanner->dev, t, &sx, &sy);
    fb_sim_device_position(advertiser->dev, t, &ax, &ay);
    distance = hypot(sx - ax, sy - ay);
    if (!fb_radio_sample(advertiser->dev, scanner->dev, distance, world->scenario->min_rssi,
                         world->noise_rng, &rssi))
        return;
    visible = fb_device_report(scanner, advert, rssi, t_us);
    if (world->truth != NULL) {
        char addr[18];
        FbTruthReport r = {
            .t = (double)t_us / G_USEC_PER_SEC,
            .from = advertiser->dev->name,
            .to = scanner->dev->name,
            .from_adapter = advertiser->index,
            .to_adapter = scanner->index,
            .address = fb_bdaddr_to_string(&advert->address, addr),
            .address_type = advert->from_public ? "public" : "random",
            .rssi = rssi,
            .distance = distance,
            .service_data = advert->data.service_data != NULL
                                ? advert->data.service_data
                                : g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0),
            .visible = visible,
        };

        g_variant_ref_sink(r.service_data);
        fb_truth_log_report(world->truth, &r);
        g_variant_unref(r.service_data);
    }
    fb_control_report_delivered(world, scanner->index, advertiser->index, visible);
}

static void run_links(FbWorld *world, FbAdapter *scanner, gint64 now_us, guint64 generation)
{
    gint64 interval = report_interval_us(world);

    for (guint a = 0; a < world->adapters->len; a++) {
        FbAdapter *advertiser = world->adapters->pdata[a];

        if (advertiser == scanner || !advertiser->powered)
            continue;
        for (guint i = 0; i < advertiser->adverts->len; i++) {
            FbAdvert *advert = advertiser->adverts->pdata[i];
            gint64 key = (gint64)((guint64)scanner->index << 48 | advert->id);
            FbLink *link;
            guint n = 0;

            if (!fb_advert_on_air(advert))
                continue;
            link = g_hash_table_lookup(world->links, &key);
            if (link == NULL) {
                link = g_new0(FbLink, 1);
                link->key = key;
                /* Scanners pick up a running advertiser at a random point of its cycle. */
                link->next_us = now_us + (gint64)(g_rand_double(world->noise_rng) * interval);
                g_hash_table_insert(world->links, &link->key, link);
            }
            link->generation = generation;
            while (link->next_us <= now_us) {
                if (n++ == MAX_CATCH_UP) {
                    link->next_us = now_us + interval;
                    break;
                }
                deliver(world, scanner, advertiser, advert, link->next_us);
                /* ±10 % like advDelay and channel hopping; keeps pairs from locking step. */
                link->next_us +=
                    (gint64)((double)interval * g_rand_double_range(world->noise_rng, 0.9, 1.1));
            }
        }
    }
}

static gboolean world_needs_tick(FbWorld *world)
{
    for (guint i = 0; i < world->adapters->len; i++)
        if (fb_adapter_needs_tick(world->adapters->pdata[i]))
            return TRUE;
    return FALSE;
}

static gboolean on_tick(gpointer user_data)
{
    FbWorld *world = user_data;
    guint64 generation = ++world->tick_generation;
    gint64 now = fb_world_now_us(world);
    GHashTableIter iter;
    gpointer value;

    for (guint i = 0; i < world->adapters->len; i++) {
        FbAdapter *scanner = world->adapters->pdata[i];

        if (scanner->powered && scanner->merged.active)
            run_links(world, scanner, now, generation);
    }
    /* Pairs that stopped (scanner idle, advertisement gone) start afresh next time. */
    g_hash_table_iter_init(&iter, world->links);
    while (g_hash_table_iter_next(&iter, NULL, &value))
        if (((FbLink *)value)->generation != generation)
            g_hash_table_iter_remove(&iter);
    for (guint i = world->adapters->len; i > 0; i--)
        fb_adapter_tick(world->adapters->pdata[i - 1], now);
    if (world->truth != NULL)
        fb_truth_log_flush(world->truth);
    if (world->shutting_down || !world_needs_tick(world)) {
        world->tick_source = 0;
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

void fb_world_kick(FbWorld *world)
{
    if (world->tick_source != 0 || world->shutting_down || !world_needs_tick(world))
        return;
    world->tick_source = g_timeout_add(tick_ms(world), on_tick, world);
}

/* --- life cycle --------------------------------------------------------------------------- */

static void on_control_acquired(GDBusConnection *conn, const char *name, gpointer user_data)
{
    g_message("ready: %s and %s on the bus", FB_BLUEZ_NAME, FB_CONTROL_NAME);
}

static void on_name_lost(GDBusConnection *conn, const char *name, gpointer user_data)
{
    FbWorld *world = user_data;

    if (world->shutting_down)
        return;
    g_printerr("fake-bluez: cannot own %s (already taken, or the bus went away)\n", name);
    world->exit_status = 1;
    fb_world_shutdown(world);
}

static gboolean plug_initial_adapters(gpointer user_data)
{
    FbWorld *world = user_data;

    for (guint i = 0; i < world->scenario->devices->len; i++) {
        FbSimDevice *dev = world->scenario->devices->pdata[i];

        if (dev->present)
            fb_adapter_new(world, dev);
    }
    world->control_name_id = g_bus_own_name_on_connection(
        world->conn, FB_CONTROL_NAME, G_BUS_NAME_OWNER_FLAGS_DO_NOT_QUEUE, on_control_acquired,
        on_name_lost, world, NULL);
    return G_SOURCE_REMOVE;
}

static void on_bluez_acquired(GDBusConnection *conn, const char *name, gpointer user_data)
{
    /* Like bluetoothd, own the name first and announce adapters once the kernel listed
     * them: a client can see org.bluez with no adapter yet. */
    g_idle_add(plug_initial_adapters, user_data);
}

static void on_closed(GDBusConnection *conn, gboolean remote_peer_vanished, GError *error,
                      gpointer user_data)
{
    FbWorld *world = user_data;

    if (world->shutting_down)
        return;
    g_printerr("fake-bluez: the bus connection closed\n");
    world->exit_status = 1;
    g_main_loop_quit(world->loop);
}

gboolean fb_world_start(FbWorld *world, GError **error)
{
    if (world->opts.bus_address != NULL)
        world->conn = g_dbus_connection_new_for_address_sync(
            world->opts.bus_address,
            G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
            NULL, NULL, error);
    else
        world->conn = g_bus_get_sync(G_BUS_TYPE_SESSION, NULL, error);
    if (world->conn == NULL)
        return FALSE;
    g_dbus_connection_set_exit_on_close(world->conn, FALSE);
    g_signal_connect(world->conn, "closed", G_CALLBACK(on_closed), world);
    world->om = g_dbus_object_manager_server_new("/");
    g_dbus_object_manager_server_set_connection(world->om, world->conn);
    if (!fb_control_register(world, error))
        return FALSE;
    world->bluez_name_id = g_bus_own_name_on_connection(
        world->conn, FB_BLUEZ_NAME, G_BUS_NAME_OWNER_FLAGS_DO_NOT_QUEUE, on_bluez_acquired,
        on_name_lost, world, NULL);
    return TRUE;
}

int fb_world_run(FbWorld *world)
{
    g_main_loop_run(world->loop);
    return world->exit_status;
}

void fb_world_shutdown(FbWorld *world)
{
    if (world->shutting_down)
        return;
    /* As bluetoothd on SIGTERM: power the adapters down, then remove them, which calls
     * Release() on every registered advertisement. */
    for (guint i = 0; i < world->adapters->len; i++)
        fb_adapter_set_powered(world->adapters->pdata[i], FALSE);
    world->shutting_down = TRUE;
    fb_adverts_flush_late_replies(world);
    while (world->adapters->len > 0)
        fb_adapter_remove(world->adapters->pdata[world->adapters->len - 1]);
    fb_control_fail_waits(world);
    g_clear_handle_id(&world->tick_source, g_source_remove);
    g_clear_handle_id(&world->control_name_id, g_bus_unown_name);
    g_clear_handle_id(&world->bluez_name_id, g_bus_unown_name);
    if (world->conn != NULL && !g_dbus_connection_is_closed(world->conn))
        g_dbus_connection_flush_sync(world->conn, NULL, NULL);
    g_main_loop_quit(world->loop);
}

void fb_world_free(FbWorld *world)
{
    GHashTableIter iter;
    gpointer watch;

    if (world == NULL)
        return;
    while (world->adapters->len > 0)
        fb_adapter_remove(world->adapters->pdata[world->adapters->len - 1]);
    if (world->late_replies != NULL) {
        fb_adverts_flush_late_replies(world);
        g_ptr_array_unref(world->late_replies);
    }
    g_clear_handle_id(&world->tick_source, g_source_remove);
    g_clear_handle_id(&world->control_name_id, g_bus_unown_name);
    g_clear_handle_id(&world->bluez_name_id, g_bus_unown_name);
    g_hash_table_iter_init(&iter, world->clients);
    while (g_hash_table_iter_next(&iter, NULL, &watch))
        g_bus_unwatch_name(GPOINTER_TO_UINT(watch));
    if (world->control_registration != 0)
        g_dbus_connection_unregister_object(world->conn, world->control_registration);
    g_clear_object(&world->om);
    if (world->conn != NULL)
        g_signal_handlers_disconnect_by_data(world->conn, world);
    g_clear_object(&world->conn);
    g_hash_table_unref(world->clients);
    g_hash_table_unref(world->links);
    g_ptr_array_unref(world->adapters);
    g_rand_free(world->noise_rng);
    g_rand_free(world->addr_rng);
    fb_truth_log_close(world->truth);
    g_clear_pointer(&world->bluez_node, g_dbus_node_info_unref);
    g_clear_pointer(&world->control_node, g_dbus_node_info_unref);
    g_main_loop_unref(world->loop);
    fb_scenario_free(world->scenario);
    g_free(world->opts.bus_address);
    g_free(world->opts.scenario_path);
    g_free(world->opts.truth_log_path);
    g_free(world);
}
