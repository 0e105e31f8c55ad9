/* authority-upload.h - the checks every uploaded key list passes, whether it came to the key
 * server with a one-time code or from the authority itself (prox-authority import-keys).
 *
 * The JSON form is GAEN's publish request:
 *   {"code": "ABCD-EFGH-JKLM", "temporaryExposureKeys": [
 *     {"key": BASE64(16 bytes), "rollingStartNumber": ENIN, "rollingPeriod": 1..144,
 *      "transmissionRisk": 0..8, "reportType": ..., "daysSinceOnsetOfSymptoms": -14..14}, ...]}
 * rollingPeriod defaults to 144 and transmissionRisk to 0; reportType (a GAEN name such as
 * "CONFIRMED_TEST" or its number) and daysSinceOnsetOfSymptoms are optional. Other members
 * are ignored so that devices may add padding. Keys are parsed by gaen-keys-json.c.
 *
 * proxd devices may add venue check-ins (docs/venues.md §6):
 *   "checkins": [{"locationId": "<64 hex>", "start": UNIX, "end": UNIX}, ...]
 * One bad check-in refuses the whole upload, as one bad key does.
 *
 * A rejection is a GError in AUTHORITY_REJECT whose code names the reason; each reason has a
 * stable machine name and an HTTP status for the key server's answer.
 */
#pragma once

#include "prox-types.h"

#include <stddef.h>

G_BEGIN_DECLS

#define AUTHORITY_UPLOAD_MAX_BODY ((size_t)64 * 1024)
#define AUTHORITY_UPLOAD_MAX_KEYS 30
/* Keys must start no earlier than midnight UTC this many days before today. */
#define AUTHORITY_UPLOAD_MAX_AGE_DAYS 14
/* GAEN's range of days since onset of symptoms. */
#define AUTHORITY_DSOS_MIN (-14)
#define AUTHORITY_DSOS_MAX 14
/* How far ahead of the server's clock a device's clock may be: keys reaching into the
 * interval of now + this, check-ins ending by then and counts for its hour are taken (a phone
 * reporting seconds after an interval or hour began by its own clock is not refused; the
 * publication embargo still runs on the server's clock). */
#define AUTHORITY_CLOCK_SKEW_SECONDS 300
/* Optional "checkins": at most this many, each start < end <= start + 24 h, ending no later
 * than now (+ the skew) and starting within the last AUTHORITY_UPLOAD_MAX_AGE_DAYS days. */
#define AUTHORITY_UPLOAD_MAX_CHECKINS 60
#define AUTHORITY_CHECKIN_MAX_SECONDS 86400

#define AUTHORITY_REJECT (authority_reject_quark())
GQuark authority_reject_quark(void);

typedef enum {
    AUTHORITY_REJECT_NOT_FOUND,
    AUTHORITY_REJECT_METHOD_NOT_ALLOWED,
    AUTHORITY_REJECT_UNSUPPORTED_CONTENT_TYPE,
    AUTHORITY_REJECT_BODY_TOO_LARGE,
    AUTHORITY_REJECT_RATE_LIMITED,
    AUTHORITY_REJECT_MALFORMED_JSON,
    AUTHORITY_REJECT_MISSING_CODE,
    AUTHORITY_REJECT_MISSING_KEYS,
    AUTHORITY_REJECT_NO_KEYS,
    AUTHORITY_REJECT_TOO_MANY_KEYS,
    AUTHORITY_REJECT_BAD_KEY,
    AUTHORITY_REJECT_BAD_KEY_DATA,
    AUTHORITY_REJECT_BAD_ROLLING_START,
    AUTHORITY_REJECT_BAD_ROLLING_PERIOD,
    AUTHORITY_REJECT_BAD_TRANSMISSION_RISK,
    AUTHORITY_REJECT_BAD_REPORT_TYPE,
    AUTHORITY_REJECT_BAD_DAYS_SINCE_ONSET,
    AUTHORITY_REJECT_KEY_IN_FUTURE,
    AUTHORITY_REJECT_KEY_TOO_OLD,
    AUTHORITY_REJECT_DUPLICATE_KEY,
    AUTHORITY_REJECT_INVALID_CODE,
    AUTHORITY_REJECT_CODE_EXPIRED,
    AUTHORITY_REJECT_CODE_USED,
    AUTHORITY_REJECT_BAD_CHECKINS,
    AUTHORITY_REJECT_TOO_MANY_CHECKINS,
    AUTHORITY_REJECT_BAD_CHECKIN,
    AUTHORITY_REJECT_BAD_LOCATION_ID,
    AUTHORITY_REJECT_BAD_CHECKIN_TIME,
    AUTHORITY_REJECT_CHECKIN_IN_FUTURE,
    AUTHORITY_REJECT_CHECKIN_TOO_OLD,
    AUTHORITY_REJECT_DUPLICATE_CHECKIN,
    AUTHORITY_REJECT_UNAVAILABLE, /* our fault (storage): the client may retry */
    /* POST /v1/venue-count (authority_venue_count_parse()) */
    AUTHORITY_REJECT_UNKNOWN_MEMBER,
    AUTHORITY_REJECT_BAD_LOCATION_HASH,
    AUTHORITY_REJECT_BAD_HOUR,
    AUTHORITY_REJECT_HOUR_IN_FUTURE,
    AUTHORITY_REJECT_HOUR_TOO_OLD,
} AuthorityRejectReason;

/* "code_used", ...: the "code" member of the JSON error answer. */
const char *authority_reject_name(AuthorityRejectReason reason);
guint authority_reject_http_status(AuthorityRejectReason reason);

/* The JSON error answer {"error": message, "code": name}. */
char *authority_reject_json(AuthorityRejectReason reason, const char *message);

/* A venue check-in the person chose to report (docs/venues.md §6). */
typedef struct {
    uint8_t location_id[PROX_LOCATION_ID_LEN];
    gint64 start; /* unix seconds, start < end <= start + 24 h, end <= now */
    gint64 end;
} AuthorityCheckin;

typedef struct {
    char *code;       /* normalized one-time code; NULL when the body had none */
    GArray *keys;     /* ProxDiagnosisKey; report_type is UNKNOWN and has_days_since_onset FALSE
                         where the body did not give them */
    GArray *checkins; /* AuthorityCheckin; empty (never NULL) when the body had none */
} AuthorityUpload;

void authority_upload_free(AuthorityUpload *upload);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AuthorityUpload, authority_upload_free)

/* Parses and checks a body at time `now`. With require_code a missing or malformed code is
 * rejected (MISSING_CODE / INVALID_CODE); without, a "code" member is ignored. */
AuthorityUpload *authority_upload_parse(const char *body, size_t len, gint64 now,
                                        gboolean require_code, GError **error);

/* The checks on parsed keys: count, period, the 14-day window, no duplicates. */
gboolean authority_upload_check_keys(const ProxDiagnosisKey *keys, size_t n, gint64 now,
                                     GError **error);

/* Days since onset of a key for an onset day (days since 1970-01-01, UTC), clamped to
 * GAEN's -14..14: a key from more than 14 days after onset counts as 14. */
int32_t authority_days_since_onset(const ProxTek *tek, gint64 onset_day);

/* Report types a case may carry: CONFIRMED_TEST, CONFIRMED_CLINICAL_DIAGNOSIS,
 * SELF_REPORT, RECURSIVE. Names as GAEN's ("CONFIRMED_TEST") or the CLI's
 * ("confirmed-test", "clinical", "self-report", "recursive"). */
gboolean authority_report_type_parse(const char *name, ProxReportType *out);
const char *authority_report_type_cli_name(ProxReportType type);

G_END_DECLS
