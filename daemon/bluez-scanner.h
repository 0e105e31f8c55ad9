/* bluez-scanner.h - discovery of other devices' GAEN advertisements.
 *
 * Sets the discovery filter (Transport le, UUIDs [FD6F], DuplicateData true) and runs
 * StartDiscovery / StopDiscovery on the role's duty cycle: a person scans ScanSeconds
 * every IntervalMinSeconds..IntervalMaxSeconds (uniformly random, start to start), a
 * beacon scans continuously in scan instances of BeaconScanInstanceSeconds. Each scan
 * instance is a store scan instance; every Device1 report (InterfacesAdded, or
 * PropertiesChanged with RSSI or ServiceData) of the adapter in use is parsed with
 * libprox and added to a sighting batch, committed at the end of the scan instance and at
 * least every CommitSeconds. Per Device1 object only its last ServiceData and RSSI are
 * kept: rotating addresses make those objects come and go constantly.
 *
 * The adapter's Device1 signals arrive in batches (bluez-device-signals.h: with DuplicateData
 * every advertisement is a signal). A report belongs to the scan instance that was open when
 * it reached proxd: closing an instance first handles what is waiting.
 */
#pragma once

#include <gio/gio.h>

#include "bluez-adapter-watch.h"
#include "proxd-clock.h"
#include "proxd-config.h"
#include "prox-store.h"

G_BEGIN_DECLS

#define BLUEZ_TYPE_SCANNER (bluez_scanner_get_type())
G_DECLARE_FINAL_TYPE(BluezScanner, bluez_scanner, BLUEZ, SCANNER, GObject)

typedef struct {
    guint64 reports;        /* Device1 reports with FD6F service data, recorded */
    guint64 malformed;      /* FD6F service data that did not parse */
    guint64 outside_scan;   /* reports while no scan instance of ours was open */
    guint64 commits;        /* successful store commits */
    guint64 commit_errors;  /* failed commits (the batch is kept and retried) */
    guint64 scan_instances; /* scan instances begun */
    guint64 overflow;       /* reports dropped: the main loop fell too far behind */
} BluezScannerStats;

/* `store` is not owned and must outlive the scanner. */
BluezScanner *bluez_scanner_new(BluezAdapterWatch *watch, ProxdClock *clock, ProxdConfig *config,
                                ProxStore *store);

void bluez_scanner_start(BluezScanner *self);
/* Commits what is pending, closes the scan instance and stops discovery (synchronously,
 * bounded by a short timeout); for shutdown. */
void bluez_scanner_stop(BluezScanner *self);

/* Holds discovery off: on LE controllers with legacy advertising, bluetoothd cannot register
 * an advertisement (org.bluez.Error.Failed) or give a refreshed one a new address while
 * the controller scans. `func` is called (once, from the main loop) when no discovery
 * session of ours is running any more; the hold lasts until bluez_scanner_release().
 * Scanning resumes, in a new scan instance, when the last hold is released. */
typedef void (*BluezScannerQuietFunc)(gpointer user_data);
void bluez_scanner_hold(BluezScanner *self, BluezScannerQuietFunc func, gpointer user_data);
void bluez_scanner_release(BluezScanner *self);

/* TRUE while our discovery session runs ("scanning" property, notify). */
gboolean bluez_scanner_get_scanning(BluezScanner *self);
const BluezScannerStats *bluez_scanner_get_stats(BluezScanner *self);

/* Signal "committed": sightings or a scan instance reached the store. */

G_END_DECLS
