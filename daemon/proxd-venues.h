/* proxd-venues.h - the device side of buses and venues (docs/venues.md §3, §5): matching the
 * warnings of the key lists against the device's check-ins and sightings, the D-Bus forms of
 * check-ins and venue exposures, and the opt-in anonymous venue counts.
 *
 * When matching runs (the choice docs/venues.md §5 leaves open):
 *   - Venue warnings are matched against ALL stored check-ins at every sync and again
 *     whenever a check-in's times change on the device (checkout, automatic checkout,
 *     edit, a new check-in closing the previous one). Both sets are small (days of
 *     retention), and the store keeps one exposure per warning, so matching again is
 *     idempotent: a check-in made or corrected after its warning arrived is still matched.
 *   - Same-vehicle warnings are matched once, in the sync that imported them: sightings
 *     only ever describe the past, so everything a warning's window can match is already
 *     stored when the warning arrives. The sync state PROXD_VENUES_VEHICLE_BATCH_KEY
 *     remembers the newest batch whose warnings were matched; a failed matching run leaves
 *     it, so the next sync tries again.
 */
#pragma once

#include <gio/gio.h>

#include "prox-store.h"
#include "prox-venue.h"

G_BEGIN_DECLS

/* Sync state: the newest batch id whose same-vehicle warnings were matched (decimal). */
#define PROXD_VENUES_VEHICLE_BATCH_KEY "venue-vehicle-batch"
/* Store setting: unix time of this device's last accepted positive report (decimal).
 * Exposures that ended before it are not recorded: they are the person's own check-ins and
 * rides coming back as warnings, or moot for a confirmed case. */
#define PROXD_VENUES_REPORTED_AT_KEY "reported-positive-at"
/* Hex digits of a location id shown to the user (GetCheckIns "location"). */
#define PROXD_VENUES_LOCATION_PREFIX_HEX 8
/* Scan instances this long before a warning's window are loaded for the first scan's gap. */
#define PROXD_VENUES_SCAN_LOOKBEHIND 3600

typedef struct {
    guint min_minutes;          /* venue overlap; 0 = PROX_VENUE_DEFAULT_MIN_MINUTES */
    guint same_vehicle_minutes; /* time together; 0 = PROX_VENUE_DEFAULT_MIN_MINUTES */
} ProxdVenueOptions;

typedef enum {
    PROXD_VENUES_MATCH_CHECKINS = 1 << 0, /* every venue warning vs every check-in */
    PROXD_VENUES_MATCH_VEHICLES = 1 << 1, /* same-vehicle warnings of new batches */
} ProxdVenuesMatchFlags;

#define PROXD_VENUES_MATCH_ALL (PROXD_VENUES_MATCH_CHECKINS | PROXD_VENUES_MATCH_VEHICLES)

/* Matches stored warnings as described above at `now` and saves the exposures. Appends the
 * ones new to the store to `new_exposures` (ProxVenueExposure, ids set). Errors are the
 * store's (PROX_ERROR); exposures saved before an error stay saved (and are appended). */
gboolean proxd_venues_match(ProxStore *store, const ProxdVenueOptions *options,
                            ProxdVenuesMatchFlags flags, gint64 now, GArray *new_exposures,
                            GError **error);

/* Number of stored exposures whose day is within the `days` days up to `now`'s. */
gboolean proxd_venues_count_exposures(ProxStore *store, gint64 now, guint days, guint *count,
                                      GError **error);

/* "same-vehicle" or "venue". */
const char *proxd_venue_exposure_kind_to_string(ProxVenueWarningKind kind);

/* VenueExposureDetected's a{sv}: kind, day, start, end, minutes. Floating. */
GVariant *proxd_venue_exposure_to_signal(const ProxVenueExposure *exposure);
/* GetVenueExposures() entry: the signal's keys plus id, transmission-risk, detected-at. */
GVariant *proxd_venue_exposure_to_variant(const ProxVenueExposure *exposure);
/* GetCheckIns() entry: id, arrived, departed, planned-departure, location (prefix). */
GVariant *proxd_checkin_to_variant(const ProxCheckIn *checkin);

/* ---- opt-in venue counts ([Venues] ShareCounts) ---- */

/* The count endpoint on the key server of `report_url`: its scheme, host and port, and its
 * path with the last segment replaced by "venue-count" (/v1/publish -> /v1/venue-count). NULL with
 * an error for a URL the report itself would refuse (not https, except to a loopback address). */
char *proxd_venues_count_url(const char *report_url, GError **error);

/* The count body: {"locationHash": "<64 hex>", "hour": <unix s, multiple of 3600>}. */
char *proxd_venues_count_body(const uint8_t location_hash[PROX_LOCATION_HASH_LEN], gint64 hour);

/* POSTs the count for a check-in at `arrived` in a worker thread; failures are logged (the
 * count is a courtesy: nothing retries it) and `callback` (may be NULL) gets the outcome
 * through g_task_propagate_boolean(). */
void proxd_venues_share_count_async(const char *count_url,
                                    const uint8_t location_id[PROX_LOCATION_ID_LEN], gint64 arrived,
                                    GCancellable *cancellable, GAsyncReadyCallback callback,
                                    gpointer user_data);

G_END_DECLS
