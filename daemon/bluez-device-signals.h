/* bluez-device-signals.h - the Device1 signals of one adapter, handed over in batches.
 *
 * With DuplicateData every advertisement is a PropertiesChanged signal, and GDBus handles
 * each one on its own (a read and a wake-up of its worker thread, then an idle source and a
 * wake-up of the main loop). So the adapter's Device1 signals (PropertiesChanged,
 * InterfacesAdded, InterfacesRemoved) come through a bus connection of our own instead: the
 * kernel queues them and the main loop reads and hands them over in one batch, at most
 * 100 ms after the first of the batch arrived. Where no second connection can be opened
 * (not a unix socket) or it fails, a connection filter takes them off the main connection in
 * GDBus's worker thread, noting when each arrived, and the main loop hands those over in
 * batches too. Only bluetoothd's own signals are handed over.
 */
#pragma once

#include <gio/gio.h>

#include "proxd-clock.h"

G_BEGIN_DECLS

#define BLUEZ_TYPE_DEVICE_SIGNALS (bluez_device_signals_get_type())
G_DECLARE_FINAL_TYPE(BluezDeviceSignals, bluez_device_signals, BLUEZ, DEVICE_SIGNALS, GObject)

/* PropertiesChanged invalidated these. */
#define BLUEZ_DEVICE_INVALID_SERVICE_DATA 1u
#define BLUEZ_DEVICE_INVALID_RSSI 2u

typedef enum {
    BLUEZ_DEVICE_CHANGED, /* PropertiesChanged of Device1 */
    BLUEZ_DEVICE_ADDED,   /* InterfacesAdded with Device1 */
    BLUEZ_DEVICE_REMOVED, /* InterfacesRemoved with Device1 */
} BluezDeviceSignalKind;

/* When a signal reached proxd: its time, and the epoch (see bluez_device_signals_flush()). */
typedef struct {
    gint64 time;
    guint epoch;
} BluezDeviceArrival;

/* One Device1 signal of the followed adapter, from the main loop in arrival order. `sender`:
 * bluetoothd's unique name; `properties` a{sv}: what changed (CHANGED), Device1's (ADDED),
 * NULL (REMOVED); `invalidated`: BLUEZ_DEVICE_INVALID_* (CHANGED). */
typedef void (*BluezDeviceSignalFunc)(BluezDeviceSignalKind kind, const char *sender,
                                      const char *path, GVariant *properties, guint invalidated,
                                      const BluezDeviceArrival *arrival, gpointer user_data);

/* Opens our own connection to the bus `connection` is on, or falls back to a filter on
 * `connection`. Follows no adapter yet. */
BluezDeviceSignals *bluez_device_signals_new(GDBusConnection *connection, ProxdClock *clock,
                                             BluezDeviceSignalFunc func, gpointer user_data);

/* The devices of the adapter at `path` of the bluetoothd with unique name `owner` from now on
 * (NULL: none). What is waiting is not handed over first: call flush before. */
void bluez_device_signals_follow(BluezDeviceSignals *self, const char *owner, const char *path);

/* Hands over what is waiting now. `close_epoch`: what arrives from now on gets the next
 * epoch (a scan instance closes). */
void bluez_device_signals_flush(BluezDeviceSignals *self, gboolean close_epoch);
/* The epoch of what arrives now. */
guint bluez_device_signals_get_epoch(BluezDeviceSignals *self);
/* Reports dropped so far: the main loop fell too far behind. */
guint64 bluez_device_signals_get_dropped(BluezDeviceSignals *self);

/* For shutdown: stops taking signals off the main connection, hands over what is waiting and
 * closes our own connection. */
void bluez_device_signals_close(BluezDeviceSignals *self);

G_END_DECLS
