/* authority-venue.h - the authority's side of buses and venues (docs/venues.md §6): registered
 * QR venues, imported warnings (SAME_VEHICLE from `prox-tool beacon trace`, or VENUE), venue
 * check-ins reported with keys, the opt-in anonymous venue counts (POST /v1/venue-count), and
 * what publish signs into the key lists (export field 100).
 *
 * Warnings JSON (the file `prox-authority warning import` reads, `prox-tool beacon trace`
 * writes):
 *   {"warnings": [
 *     {"kind": "same-vehicle", "beaconKey": BASE64(16 bytes), "rollingStartIntervalNumber": N,
 *      "rollingPeriod": 1..144 (default 144), "start": UNIX, "end": UNIX,
 *      "transmissionRisk": 1..8},
 *     {"kind": "venue", "locationId": HEX(32 bytes) or "locationHash": HEX(32 bytes),
 *      "start": UNIX, "end": UNIX, "transmissionRisk": 1..8}]}
 * Strict: every field has its type and range, unknown members are errors, the window is
 * start < end <= start + 24 h, ends no later than now and within the last 14 days, and a
 * SAME_VEHICLE window overlaps its TEK's validity (prox_venue_warning_check()). A warning
 * twice in one file is an error; one already stored is skipped.
 *
 * Publish takes warnings not yet published whose window ended within keep_days: imported
 * ones (a beacon TEK only once its rolling period ended `embargo` seconds ago, as for keys:
 * while the bus still broadcasts it, publishing it would let anyone follow the bus), and
 * reported check-ins, each as a VENUE warning: the location hash, the window, and the
 * transmission risk of the reporter's test type (authority_checkin_risk()).
 */
#pragma once

#include "authority-db.h"
#include "authority-upload.h"
#include "prox-venue.h"

G_BEGIN_DECLS

#define AUTHORITY_WARNINGS_MAX 10000
#define AUTHORITY_WARNING_MAX_AGE_DAYS 14

/* ---- registered venues ---- */

typedef struct {
    gint64 id;
    char *name;
    char *address;
    ProxVenueType type;
    guint stay_minutes;
    uint8_t location_id[PROX_LOCATION_ID_LEN];
    gint64 created_at;
} AuthorityVenueRecord;

/* Inside the caller's transaction. *id = the new row's id. */
gboolean authority_venue_insert(AuthorityDb *db, const ProxVenue *venue, gint64 now, gint64 *id,
                                GError **error);
/* All registered venues, oldest first (GArray of AuthorityVenueRecord, clearing its strings). */
GArray *authority_venue_list(AuthorityDb *db, GError **error);

/* ---- warnings ---- */

/* Parses and checks a warnings file (see above) at `now`. GArray of ProxVenueWarning; errors
 * are PROX_ERROR_MALFORMED naming the warning's index and field. */
GArray *authority_warnings_parse(const char *json, size_t len, gint64 now, GError **error);

/* One transaction; *inserted counts the warnings not stored before. */
gboolean authority_warnings_import(AuthorityDb *db, const ProxVenueWarning *warnings, size_t n,
                                   gint64 now, guint *inserted, GError **error);

/* Inside the caller's transaction: stores reported check-ins with the report type of the
 * code's case (duplicates of stored ones are skipped; *inserted counts new ones). */
gboolean authority_checkins_insert(AuthorityDb *db, const AuthorityCheckin *checkins, size_t n,
                                   ProxReportType report_type, gint64 now,
                                   AuthorityKeySource source, guint *inserted, GError **error);

/* Transmission risk of a VENUE warning from a reported check-in: CWA's level for the test
 * type at standard infectiousness (confirmed test 7, clinical 5, self-report 3, recursive
 * 1; unknown counts as confirmed test). */
int32_t authority_checkin_risk(ProxReportType report_type);

/* ---- opt-in anonymous venue counts (POST /v1/venue-count) ---- */

/* A device with [Venues] ShareCounts=true sends, for each check-in,
 *   {"locationHash": "<64 hex digits, either case>", "hour": UNIX}
 * hour a multiple of 3600, not after the current hour, at most
 * AUTHORITY_VENUE_COUNT_MAX_AGE_DAYS days before it. Exactly these two members. The key
 * server adds one to the count of (location hash, hour) and stores nothing else. */
#define AUTHORITY_VENUE_COUNT_MAX_BODY ((size_t)256)
#define AUTHORITY_VENUE_COUNT_MAX_AGE_DAYS 14
#define AUTHORITY_HOUR_SECONDS 3600

typedef struct {
    uint8_t location_hash[PROX_LOCATION_HASH_LEN];
    gint64 hour; /* unix seconds, a multiple of 3600 */
    gint64 count;
} AuthorityVenueCount;

/* Parses and checks a count body at `now`: out->count is 1. Errors are AUTHORITY_REJECT
 * (body_too_large, malformed_json, unknown_member, bad_location_hash, bad_hour,
 * hour_in_future, hour_too_old). */
gboolean authority_venue_count_parse(const char *body, size_t len, gint64 now,
                                     AuthorityVenueCount *out, GError **error);

/* Inside the caller's transaction: adds count->count to (location hash, hour). */
gboolean authority_venue_count_add(AuthorityDb *db, const AuthorityVenueCount *count,
                                   GError **error);

/* Stored counts of hours >= since, by hour then location hash (GArray of
 * AuthorityVenueCount). */
GArray *authority_venue_counts_list(AuthorityDb *db, gint64 since, GError **error);

/* ---- publishing ---- */

typedef struct {
    GArray *warnings;    /* ProxVenueWarning: imported ones first, then check-ins */
    guint from_imported; /* the first from_imported come from venue_warnings */
    gint64 max_warning_id;
    gint64 max_checkin_id;
    guint n_checkins; /* rows of checkins they came from (several may give one warning) */
    /* the condition they were selected by */
    gint64 now;
    gint64 cutoff;
    gint64 tek_end_limit;
} AuthorityPendingWarnings;

void authority_pending_warnings_clear(AuthorityPendingWarnings *pending);

/* What a publish run at `now` includes. */
gboolean authority_warnings_pending(AuthorityDb *db, gint64 now, gint64 embargo, gint keep_days,
                                    AuthorityPendingWarnings *pending, GError **error);

/* Inside the caller's transaction: marks exactly the rows `pending` was read from as
 * published by run_id (an error when the rows changed meanwhile). */
gboolean authority_warnings_mark_published(AuthorityDb *db, const AuthorityPendingWarnings *pending,
                                           gint64 run_id, GError **error);

/* Inside the caller's transaction: forgets unpublished warnings and check-ins whose window
 * ended before cutoff (published ones go with their run). */
gboolean authority_warnings_retention(AuthorityDb *db, gint64 cutoff, GError **error);

G_END_DECLS
