/* bluez-advertiser.h - our GAEN advertisement through BlueZ's LEAdvertisingManager1.
 *
 * Exports one org.bluez.LEAdvertisement1 object (Type "broadcast", ServiceUUIDs [FD6F],
 * ServiceData {FD6F: RPI || AEM}) and keeps it registered with the adapter the watch
 * picked, whenever that adapter is usable, offers LE advertising and is not discoverable.
 * The broadcast identifier rotates at the times libprox chooses (prox_rotation_next()); each
 * rotation unregisters and registers the advertisement again with the new ServiceData, so
 * it goes out from a fresh non-resolvable address and never from the old one (an in-place
 * update does that on legacy advertising controllers). Registrations happen with our
 * discovery held off (bluez_scanner_hold()). Registration is asynchronous (BlueZ reads the
 * object back before replying) and is redone after BlueZ loses it: Release, bluetoothd
 * restart, adapter replug or power cycle.
 */
#pragma once

#include <gio/gio.h>

#include "bluez-adapter-watch.h"
#include "bluez-scanner.h"
#include "proxd-clock.h"
#include "proxd-config.h"
#include "prox-store.h"

G_BEGIN_DECLS

#define BLUEZ_TYPE_ADVERTISER (bluez_advertiser_get_type())
G_DECLARE_FINAL_TYPE(BluezAdvertiser, bluez_advertiser, BLUEZ, ADVERTISER, GObject)

#define BLUEZ_ADVERTISER_OBJECT_PATH "/org/proxd/advertisement0"

/* Exports the advertisement object on `connection`; `store` (not owned, must outlive the
 * advertiser) provides the device's TEKs. Registrations and refreshes hold `scanner`'s
 * discovery off while they happen (legacy advertising cannot change the address of, or
 * register, an advertisement while the controller scans). Fails if the object cannot be
 * exported. */
BluezAdvertiser *bluez_advertiser_new(GDBusConnection *connection, BluezAdapterWatch *watch,
                                      BluezScanner *scanner, ProxdClock *clock, ProxdConfig *config,
                                      ProxStore *store, GError **error);

/* Computes the first identifier and starts following the watch. */
void bluez_advertiser_start(BluezAdvertiser *self);
/* Unregisters (synchronously, bounded by a short timeout) and stops; for shutdown. */
void bluez_advertiser_stop(BluezAdvertiser *self);
/* Takes the identifier for now from the store's current key at once, with a new address
 * (after the key in use was ended for a report). */
void bluez_advertiser_rotate_now(BluezAdvertiser *self);

/* TRUE while BlueZ holds our registration ("advertising" property, notify). */
gboolean bluez_advertiser_get_advertising(BluezAdvertiser *self);
/* Unix seconds of the next rotation, 0 when none is scheduled ("rotation-ends"). */
gint64 bluez_advertiser_get_rotation_ends(BluezAdvertiser *self);
/* Why it is not advertising, NULL while advertising or while the adapter itself is not
 * usable (the watch's reason says why) ("reason"). */
const char *bluez_advertiser_get_reason(BluezAdvertiser *self);

G_END_DECLS
