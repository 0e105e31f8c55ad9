/* prox-venue.h - buses and venues (docs/venues.md): signed venue QR payloads, location ids
 * and their published hashes, and matching warnings against what a device recorded.
 *
 * Pure functions: no store, no clock. Errors are PROX_ERROR: MALFORMED (payload or URL does
 * not parse), SIGNATURE (not signed by a pinned authority key), INVALID_ARGUMENT.
 */
#pragma once

#include "prox-export.h"
#include "prox-types.h"

G_BEGIN_DECLS

/* URL scheme and prefix of a venue QR code: "proxd://checkin/v1/" + base64url (no padding)
 * of a serialized SignedVenue. */
#define PROX_VENUE_URL_PREFIX "proxd://checkin/v1/"
#define PROX_VENUE_SEED_LEN 16
#define PROX_VENUE_NAME_MAX 64 /* bytes of UTF-8 */
#define PROX_VENUE_ADDRESS_MAX 96
#define PROX_VENUE_STAY_MIN_MINUTES 5
#define PROX_VENUE_STAY_MAX_MINUTES 1440
/* A URL longer than this is rejected before decoding (QR version <= 15 at level M). */
#define PROX_VENUE_URL_MAX 400

/* Domain-separation prefixes (each followed by one 0x00 byte). */
#define PROX_VENUE_SIG_DOMAIN "PROXD-VENUE-SIG-V1"
#define PROX_VENUE_LOCATION_DOMAIN "PROXD-VENUE-LOCATION-V1"
#define PROX_VENUE_WARNING_DOMAIN "PROXD-VENUE-WARNING-V1"

typedef enum {
    PROX_VENUE_TYPE_OTHER = 0,
    PROX_VENUE_TYPE_SHOP = 1,
    PROX_VENUE_TYPE_OFFICE = 2,
    PROX_VENUE_TYPE_SCHOOL = 3,
    PROX_VENUE_TYPE_MARKET = 4,
    PROX_VENUE_TYPE_BUS_STOP = 5,
    PROX_VENUE_TYPE_RESTAURANT = 6,
    PROX_VENUE_TYPE_WORSHIP = 7,
    PROX_VENUE_TYPE_HEALTHCARE = 8,
    PROX_VENUE_TYPE_EVENT = 9,
} ProxVenueType;

/* "shop", "bus-stop", ...; NULL for an unknown value. */
const char *prox_venue_type_to_string(ProxVenueType type);
/* FALSE for an unknown name. */
gboolean prox_venue_type_from_string(const char *name, ProxVenueType *type);

typedef struct {
    char *name;    /* never NULL */
    char *address; /* never NULL, may be "" */
    ProxVenueType type;
    guint default_stay_minutes;
    uint8_t seed[PROX_VENUE_SEED_LEN];
    char *key_id; /* the signing authority key, as named in the payload */
    char *key_version;
    /* Derived when parsed or signed: */
    uint8_t location_id[PROX_LOCATION_ID_LEN];
    gboolean verified; /* the signature checked against a pinned key */
} ProxVenue;

void prox_venue_free(ProxVenue *venue);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ProxVenue, prox_venue_free)

/* Registers a venue: a fresh random seed (libsodium), the descriptor signed by `signer`
 * (Ed25519 only). Validates name/address lengths (UTF-8), the type and the stay.
 * *url = the QR payload URL; *venue (may be NULL) = the parsed result, verified. */
gboolean prox_venue_create(const char *name, const char *address, ProxVenueType type,
                           guint default_stay_minutes, const ProxExportSigner *signer, char **url,
                           ProxVenue **venue, GError **error);

/* Parses a QR payload URL. With a keyring, the signature must verify against the key
 * pinned for the payload's key id/version (else PROX_ERROR_SIGNATURE, "not signed by a
 * known health authority"); with keyring NULL the result has verified = FALSE (inspection
 * only, never for check-in). Never reads past the input; rejects anything over
 * PROX_VENUE_URL_MAX, any trailing data, any field out of range. */
gboolean prox_venue_parse_url(const char *url, const ProxExportKeyring *keyring, ProxVenue **out,
                              GError **error);

/* SHA-256(PROX_VENUE_WARNING_DOMAIN 0x00 || location_id): what warnings publish. */
void prox_venue_location_hash(const uint8_t location_id[PROX_LOCATION_ID_LEN],
                              uint8_t out[PROX_LOCATION_HASH_LEN]);

/* Validates a warning as readers and writers do: kind known; SAME_VEHICLE with a rolling
 * period 1..144 and a window that overlaps the TEK's validity; start < end <= start + 24 h;
 * risk 1..8. `what` names it in the message ("warning 3"). */
gboolean prox_venue_warning_check(const ProxVenueWarning *warning, const char *what,
                                  GError **error);

/* The row form the device store and the authority database both keep a warning in, besides
 * its kind, times and risk level: the subject (the beacon TEK's key for SAME_VEHICLE, the
 * location hash for VENUE) and the beacon key's period (0, 0 for a venue). */
typedef struct {
    const uint8_t *subject; /* points into the warning */
    size_t subject_len;
    uint32_t rolling_start;
    uint32_t rolling_period;
} ProxVenueWarningSubject;

ProxVenueWarningSubject prox_venue_warning_subject(const ProxVenueWarning *warning);
/* Sets kind and subject from a stored row; FALSE (nothing usable) when the kind is unknown or
 * the subject's length is not the kind's. */
gboolean prox_venue_warning_set_subject(ProxVenueWarning *warning, int kind, const void *subject,
                                        size_t subject_len, uint32_t rolling_start,
                                        uint32_t rolling_period);

/* ---- matching ---- */

#define PROX_VENUE_DEFAULT_MIN_MINUTES 10
/* A scan's credit towards time together: its gap since the previous scan, capped. */
#define PROX_VENUE_SCAN_CREDIT_CAP_SECONDS 300

/* Venue: each check-in overlapping a VENUE warning (location hash equal) by at least
 * min_minutes gives one exposure (start/end = the overlap; an open check-in counts up to
 * `now`). Appends ProxVenueExposure (id 0, warning_id from warning_ids[i], detected_at now)
 * to `out`. */
void prox_venue_match_checkins(const ProxCheckIn *checkins, guint n_checkins,
                               const ProxVenueWarning *warnings, const gint64 *warning_ids,
                               guint n_warnings, guint min_minutes, gint64 now,
                               GArray *out /* ProxVenueExposure */);

/* Same vehicle: derives the beacon's RPIs for the intervals of `warning`'s window (±1
 * interval for clock skew), finds the sightings of them whose time lies in the window, and
 * computes time together = last - first such scan instance start, plus the first one's
 * credit (its seconds_since_last_scan, capped at PROX_VENUE_SCAN_CREDIT_CAP_SECONDS and at
 * the time since the window's start). At least min_minutes → TRUE and *out filled
 * (warning_id and detected_at as given). `scans` are the device's scan instances covering
 * the window (for the gaps). */
gboolean prox_venue_match_same_vehicle(const ProxVenueWarning *warning, gint64 warning_id,
                                       const ProxSighting *sightings, guint n_sightings,
                                       const ProxScanInstance *scans, guint n_scans,
                                       guint min_minutes, gint64 now, ProxVenueExposure *out);

G_END_DECLS
