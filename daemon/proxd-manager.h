/* proxd-manager.h - the org.proxd.Manager1 object: owns the BlueZ side (adapter watch,
 * advertiser, scanner) and publishes what they do, plus counts and risk from the store.
 */
#pragma once

#include <gio/gio.h>

#include "proxd-clock.h"
#include "proxd-config.h"
#include "proxd-dbus-generated.h"
#include "proxd-sync.h"
#include "prox-store.h"

G_BEGIN_DECLS

#define PROXD_MANAGER_OBJECT_PATH "/org/proxd"
/* Sync state key the key-list sync writes on success (unix seconds, decimal). */
#define PROXD_SYNC_STATE_LAST_SYNC "last-sync"
/* Setting: UTC midnight (unix seconds) of the newest high-risk day already signalled. */
#define PROXD_SETTING_NOTIFIED_DAY "exposure-notified-day"

#define PROXD_TYPE_MANAGER (proxd_manager_get_type())
G_DECLARE_FINAL_TYPE(ProxdManager, proxd_manager, PROXD, MANAGER, ProxdDbusManager1Skeleton)

/* `store` is not owned and must outlive the manager. Exports the advertisement object on
 * `connection` (fails if that path is taken); nothing talks to BlueZ before _start().
 * `sync` (NULL: no key-list sync configured) is referenced; the manager schedules its runs
 * from _start() on, serves Sync() and relays its progress; the caller cancels it at
 * shutdown. */
ProxdManager *proxd_manager_new(GDBusConnection *connection, ProxdConfig *config, ProxdClock *clock,
                                ProxStore *store, ProxdSync *sync, GError **error);

/* Starts following BlueZ, advertising and scanning. */
/* Fills the properties from the store (counts, risk, the open check-in, closing one whose
 * planned departure passed while proxd was not running). Called before the bus name is
 * owned, so no client ever reads the defaults. */
void proxd_manager_load(ProxdManager *self);
void proxd_manager_start(ProxdManager *self);
/* Commits pending sightings, unregisters the advertisement, stops discovery. */
void proxd_manager_shutdown(ProxdManager *self);

/* Re-reads encounter counts and LastSync from the store. */
void proxd_manager_refresh_counts(ProxdManager *self);
/* Re-scores the stored exposure windows: RiskLevel, and ExposureDetected for each new
 * high-risk day (person role). The matching step calls it after saving windows. */
void proxd_manager_refresh_risk(ProxdManager *self);

G_END_DECLS
