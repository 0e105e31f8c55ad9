/* bluez-adapter-watch.h - which BlueZ adapter proxd uses and whether it is usable.
 *
 * Follows org.bluez as an object manager client of "/" would, but with bus match rules
 * that let through adapters only: bluetoothd starting, exiting and coming back (its
 * objects are read again with GetManagedObjects), adapters plugged in and out, powered on
 * and off, blocked by rfkill, LEAdvertisingManager1 appearing after Adapter1, and
 * Adapter1.Discoverable. With a wanted adapter only that adapter's signals reach proxd.
 * Device1 objects never come through here (GDBusObjectManagerClient would subscribe to
 * every signal of org.bluez, so on a bus with many adapters every proxd would receive
 * every adapter's reports): the scanner follows the devices of the adapter in use.
 * Emits "changed" whenever any of that changes; the advertiser and the scanner
 * re-evaluate what they should be doing on each emission.
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
/* The bus connection it follows org.bluez on. */
GDBusConnection *bluez_adapter_watch_get_connection(BluezAdapterWatch *self);

/* A signal subscription of ours for org.bluez with a bus match rule we write ourselves:
 * path_namespace, and arg0path on object-path arguments (InterfacesAdded), which
 * g_dbus_connection_signal_subscribe() cannot express. The callback gets every signal of
 * org.bluez with `interface`, `member` and string argument `arg0` (NULL = any) that reaches
 * this connection, through this rule or another: it must filter by path itself. */
typedef struct _BluezMatch BluezMatch;
BluezMatch *bluez_match_new(GDBusConnection *connection, const char *rule, const char *interface,
                            const char *member, const char *arg0, GDBusSignalCallback callback,
                            gpointer user_data);
/* Unsubscribes and removes the rule from the bus. */
void bluez_match_free(BluezMatch *match);

G_END_DECLS
