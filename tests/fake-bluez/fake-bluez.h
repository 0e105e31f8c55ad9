/* Internal types of the fake BlueZ radio world, shared by its source files.
 *   world.c        buses, names, clients, the simulation tick and report delivery
 *   adapter.c      org.bluez.Adapter1 objects: power, discoverable, plug and unplug
 *   discovery.c    discovery sessions and filters per D-Bus sender, merged like BlueZ
 *   device.c       org.bluez.Device1 objects a scanning adapter creates, updates, expires
 *   advertising.c  org.bluez.LEAdvertisingManager1 and the registered advertisements
 *   control.c      org.proxd.FakeBluez1, the test and demo control interface */
#pragma once

#include <gio/gio.h>

#include "bdaddr.h"
#include "fb-iface.h"
#include "scenario.h"
#include "prox-sim-clock.h"
#include "truth-log.h"

#define FB_BLUEZ_NAME "org.bluez"
#define FB_CONTROL_NAME "org.proxd.FakeBluez"
#define FB_CONTROL_PATH "/org/proxd/FakeBluez"
#define FB_CONTROL_IFACE "org.proxd.FakeBluez1"
#define FB_ADAPTER_IFACE "org.bluez.Adapter1"
#define FB_ADV_MANAGER_IFACE "org.bluez.LEAdvertisingManager1"
#define FB_ADVERTISEMENT_IFACE "org.bluez.LEAdvertisement1"
#define FB_DEVICE_IFACE "org.bluez.Device1"

/* bluetoothd's TemporaryTimeout default: a found device goes 30 s after it was last seen. */
#define FB_DEVICE_TIMEOUT_US (30 * G_USEC_PER_SEC)
/* What a typical controller reports through MGMT Read Advertising Features. */
#define FB_MAX_ADV_INSTANCES 5
/* Legacy advertising data. */
#define FB_MAX_AD_LEN 31

typedef struct FbWorld FbWorld;
typedef struct FbAdapter FbAdapter;
typedef struct FbAdvert FbAdvert;
typedef struct FbDevice FbDevice;

typedef struct {
    char *bus_address;          /* NULL: the session bus */
    char *scenario_path;        /* NULL: no devices until AddAdapter */
    char *truth_log_path;       /* NULL: no ground-truth log */
    guint64 seed;               /* radio noise */
    guint adv_manager_delay_ms; /* LEAdvertisingManager1 appears this long after Adapter1 */
    double max_report_rate;     /* reports per advertisement per scanner per real second */
} FbOptions;

/* One client's discovery filter as SetDiscoveryFilter parsed it. */
typedef struct {
    GPtrArray *uuids; /* normalised 128-bit strings; empty = any */
    gboolean has_rssi;
    gint16 rssi;
    gboolean has_pathloss;
    guint16 pathloss;
    guint transport; /* FB_TRANSPORT_* bits */
    gboolean duplicate;
    gboolean discoverable;
    char *pattern; /* NULL: none */
} FbFilter;

#define FB_TRANSPORT_LE 1u
#define FB_TRANSPORT_BREDR 2u

typedef struct {
    char *owner;      /* unique bus name */
    FbFilter *filter; /* NULL: plain StartDiscovery */
    gboolean discovering;
} FbDiscoveryClient;

/* The union of the discovering clients' filters, as bluetoothd hands it to the kernel. */
typedef struct {
    gboolean active;   /* someone is discovering */
    gboolean filtered; /* at least one discovering client has a filter */
    gboolean le;       /* LE scanning is part of it */
    GPtrArray *uuids;  /* NULL: report every UUID */
    gboolean has_rssi; /* kernel-side RSSI threshold */
    gint16 rssi;
    gboolean duplicate;    /* some filter asked for DuplicateData */
    gboolean discoverable; /* some filter asked for Discoverable */
} FbMergedFilter;

struct FbAdapter {
    FbWorld *world;
    guint index;
    FbSimDevice *dev; /* owned by the scenario */
    char *path;
    GDBusObjectSkeleton *object;
    FbIface *iface;
    FbIface *adv_iface; /* NULL until the advertising manager has appeared */
    guint adv_manager_timeout;
    gboolean powered;
    gboolean blocked;
    gboolean user_discoverable;   /* Discoverable set through the property */
    gint64 discoverable_until_us; /* sim time, 0 = no timeout running */
    GPtrArray *clients;           /* FbDiscoveryClient */
    FbMergedFilter merged;
    GHashTable *devices; /* object path -> FbDevice */
    GPtrArray *adverts;  /* FbAdvert, registration order */
};

/* The parts of an advertisement that reach the air. */
typedef struct {
    gboolean peripheral;
    gboolean discoverable; /* the Discoverable property (refused for broadcast) */
    GPtrArray *service_uuids;
    GVariant *service_data; /* a{sv}: normalised uuid -> ay */
    char *local_name;       /* NULL: none */
    gboolean include_tx_power;
    guint16 timeout; /* seconds, 0 = none */
} FbAdvData;

struct FbAdvert {
    FbAdapter *adapter;
    guint64 id;
    char *owner;
    char *path;
    GDBusMethodInvocation *pending; /* RegisterAdvertisement waiting for GetAll */
    GCancellable *cancellable;
    gboolean registered;
    guint props_subscription;
    GVariant *props; /* the client's properties as last read (a{sv}) */
    FbAdvData data;
    FbBdaddr address;
    gboolean from_public;
    guint refreshes;
    guint kept_address;   /* refreshes whose new data went out from the old address */
    gint64 registered_us; /* sim time */
};

struct FbDevice {
    FbAdapter *adapter;
    char *path;
    FbBdaddr address;
    gboolean public_address;
    gboolean connectable;
    GDBusObjectSkeleton *object;
    FbIface *iface;
    gint64 last_seen_us;
};

struct FbWorld {
    FbOptions opts;
    GMainLoop *loop;
    GDBusConnection *conn;
    GDBusObjectManagerServer *om;
    GDBusNodeInfo *bluez_node;
    GDBusNodeInfo *control_node;
    ProxSimClock clock;
    FbScenario *scenario;
    GPtrArray *adapters; /* FbAdapter, ascending index */
    GHashTable *clients; /* unique name -> watch id */
    GHashTable *links;   /* scanner/advert pair -> report schedule */
    GRand *noise_rng;
    GRand *addr_rng;
    FbTruthLog *truth;
    GList *report_waits;
    guint tick_source;
    guint64 tick_generation;
    guint64 next_advert_id;
    guint bluez_name_id;
    guint control_name_id;
    guint control_registration;
    gboolean shutting_down;
    int exit_status;
    guint register_reply_delay_ms; /* SetRegisterReplyDelay: a busy bluetoothd */
    GPtrArray *late_replies;       /* RegisterAdvertisement replies not sent yet */
};

/* world.c */
FbWorld *fb_world_new(const FbOptions *opts, const ProxSimClock *clock, FbScenario *scenario,
                      GError **error);
gboolean fb_world_start(FbWorld *world, GError **error);
int fb_world_run(FbWorld *world);
void fb_world_shutdown(FbWorld *world);
void fb_world_free(FbWorld *world);
gint64 fb_world_now_us(FbWorld *world);
double fb_world_scenario_time(FbWorld *world, gint64 sim_us);
/* Something changed that may need the simulation tick running. */
void fb_world_kick(FbWorld *world);
/* Cleans up a sender's sessions and registrations when it leaves the bus. */
void fb_world_watch_client(FbWorld *world, const char *owner);
FbAdapter *fb_world_find_adapter(FbWorld *world, guint index);
GDBusInterfaceInfo *fb_world_iface_info(FbWorld *world, const char *name);
void fb_world_emit_control(FbWorld *world, const char *member, GVariant *parameters);

/* adapter.c */
FbAdapter *fb_adapter_new(FbWorld *world, FbSimDevice *dev);
void fb_adapter_remove(FbAdapter *adapter); /* unplug: releases and frees */
void fb_adapter_set_powered(FbAdapter *adapter, gboolean powered);
void fb_adapter_set_blocked(FbAdapter *adapter, gboolean blocked);
gboolean fb_adapter_discoverable(FbAdapter *adapter);
void fb_adapter_update_discoverable(FbAdapter *adapter);
void fb_adapter_tick(FbAdapter *adapter, gint64 now_us);
gboolean fb_adapter_needs_tick(FbAdapter *adapter);

/* discovery.c */
void fb_discovery_start(FbAdapter *adapter, GDBusMethodInvocation *invocation);
void fb_discovery_stop(FbAdapter *adapter, GDBusMethodInvocation *invocation);
void fb_discovery_set_filter(FbAdapter *adapter, GDBusMethodInvocation *invocation);
void fb_discovery_get_filters(FbAdapter *adapter, GDBusMethodInvocation *invocation);
void fb_discovery_client_vanished(FbAdapter *adapter, const char *owner);
void fb_discovery_clear(FbAdapter *adapter); /* power off / unplug: every session ends */
gboolean fb_discovery_pattern_match(FbAdapter *adapter, const char *address, const char *name);
void fb_discovery_free_all(FbAdapter *adapter);

/* device.c */
gboolean fb_device_report(FbAdapter *scanner, FbAdvert *advert, int rssi, gint64 now_us);
void fb_device_expire(FbAdapter *adapter, gint64 now_us);
/* Discovery ended: BlueZ drops the temporary devices that are not connectable. */
void fb_device_discovery_ended(FbAdapter *adapter);
void fb_device_remove_all(FbAdapter *adapter);
void fb_device_remove_method(FbAdapter *adapter, GDBusMethodInvocation *invocation);

/* advertising.c */
void fb_adv_manager_schedule(FbAdapter *adapter);
void fb_adv_manager_remove(FbAdapter *adapter); /* Release()s every registration */
void fb_adverts_client_vanished(FbAdapter *adapter, const char *owner);
/* The kernel set the instances up again (power on, discoverable changed). */
void fb_adverts_reprogram(FbAdapter *adapter);
/* On-air state changed without new addresses (power off). */
void fb_adverts_notify(FbAdapter *adapter);
gboolean fb_advert_on_air(FbAdvert *advert);
gboolean fb_advert_has_flags(FbAdvert *advert);
gboolean fb_advert_connectable(FbAdvert *advert);
void fb_adverts_tick(FbAdapter *adapter, gint64 now_us);
gboolean fb_adverts_need_tick(FbAdapter *adapter);
GVariant *fb_advert_describe(FbAdvert *advert);
/* Sends every delayed RegisterAdvertisement reply now (shutdown). */
void fb_adverts_flush_late_replies(FbWorld *world);

/* control.c */
gboolean fb_control_register(FbWorld *world, GError **error);
void fb_control_report_delivered(FbWorld *world, guint scanner, guint advertiser, gboolean visible);
void fb_control_fail_waits(FbWorld *world);
