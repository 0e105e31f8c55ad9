/* bluez-adapter-watch.h - which BlueZ adapter proxd uses and whether it is usable.
 *
 * Follows org.bluez through a GDBusObjectManagerClient on "/": bluetoothd starting,
 * exiting and coming back (all objects removed, then added again), adapters plugged in
 * and out, powered on and off, blocked by rfkill, LEAdvertisingManager1 appearing after
 * Adapter1, and Adapter1.Discoverable. Emits "changed" whenever any of that changes;
 * the advertiser and the scanner re-evaluate what they should be doing on each emission.
 */
#pragma once

#include <gio/gio.h>

#include "bluez-generated.h"

G_BEGIN_DECLS

typedef enum {
    BLUEZ_ADAPTER_STATE_STARTING,    /* object manager not created yet */
    BLUEZ_ADAPTER_STATE_UNAVAILABLE, /* org.bluez has no owner */
    BLUEZ_ADAPTER_STATE_NO_ADAPTER,  /* no (wanted) adapter object */
    BLUEZ_ADAPTER_STATE_POWERED_OFF,
    BLUEZ_ADAPTER_STATE_BLOCKED, /* rfkill */
    BLUEZ_ADAPTER_STATE_USABLE,  /* present and powered */
} BluezAdapterState;

const char *bluez_adapter_state_to_string(BluezAdapterState state);

#define BLUEZ_TYPE_ADAPTER_WATCH (bluez_adapter_watch_get_type())
G_DECLARE_FINAL_TYPE(BluezAdapterWatch, bluez_adapter_watch, BLUEZ, ADAPTER_WATCH, GObject)

/* `wanted` = adapter name ("hci0") or NULL for any (a powered one first, then the lowest
 * index; stays with an adapter while it is usable). Nothing happens before _start(). */
BluezAdapterWatch *bluez_adapter_watch_new(GDBusConnection *connection, const char *wanted);

/* Creates the object manager client (asynchronously) and starts following org.bluez. */
void bluez_adapter_watch_start(BluezAdapterWatch *self);
/* Stops following: drops the adapter and ignores further BlueZ events. */
void bluez_adapter_watch_stop(BluezAdapterWatch *self);

/* Changes the wanted adapter (configuration reload). */
void bluez_adapter_watch_set_wanted(BluezAdapterWatch *self, const char *wanted);

BluezAdapterState bluez_adapter_watch_get_state(BluezAdapterWatch *self);
/* One sentence for logs and the D-Bus StateReason property. */
const char *bluez_adapter_watch_get_reason(BluezAdapterWatch *self);
/* "hci0" of the adapter in use, NULL when none. */
const char *bluez_adapter_watch_get_name(BluezAdapterWatch *self);
/* The adapter's object path, NULL when none. */
const char *bluez_adapter_watch_get_path(BluezAdapterWatch *self);
/* The adapter in use (any power state), NULL when none. A new proxy object means a new
 * bluetoothd instance or a replugged adapter: sessions held with the old one are gone. */
BluezAdapter1 *bluez_adapter_watch_get_adapter(BluezAdapterWatch *self);
/* Its LEAdvertisingManager1, NULL while absent. */
BluezLeAdvertisingManager1 *bluez_adapter_watch_get_advertising_manager(BluezAdapterWatch *self);
gboolean bluez_adapter_watch_get_discoverable(BluezAdapterWatch *self);
/* The object manager client (NULL before it is created): the scanner follows Device1
 * objects through it. */
GDBusObjectManager *bluez_adapter_watch_get_object_manager(BluezAdapterWatch *self);

G_END_DECLS
