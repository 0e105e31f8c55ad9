/* gaen-keys-json.h - GAEN's JSON form of temporary exposure keys, as devices upload them and
 * as tests/data/gaen/ens-keys.json holds them:
 *   {"temporaryExposureKeys": [
 *     {"key": BASE64(16 bytes), "rollingStartNumber": ENIN, "rollingPeriod": 1..144,
 *      "transmissionRisk": 0..8, "reportType": NAME or number,
 *      "daysSinceOnsetOfSymptoms": N}, ...]}
 *
 * One parser for the key server's uploads (tools/authority-upload.c) and prox-tool's key
 * files (tools/prox-tool-export.c). They differ only in policy: which error domain and codes
 * a rejection carries, whether REVOKED keys and unknown members are accepted, how null is
 * read, and the range of daysSinceOnsetOfSymptoms. Messages name the key's index (from 0)
 * and the field: "key 3: rollingPeriod 0 outside 1..144".
 *
 * rollingPeriod defaults to 144 and transmissionRisk to 0; reportType (a GAEN name such as
 * "CONFIRMED_TEST", case-insensitive, or its number) defaults to UNKNOWN;
 * daysSinceOnsetOfSymptoms is optional (has_days_since_onset says whether it was given).
 */
#pragma once

#include "prox-types.h"

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* What can be wrong with one key; the policy maps each to an error code. */
typedef enum {
    GAEN_KEYS_JSON_BAD_KEY,               /* not an object, or an unknown member */
    GAEN_KEYS_JSON_BAD_KEY_DATA,          /* "key" missing or not the base64 of 16 bytes */
    GAEN_KEYS_JSON_BAD_ROLLING_START,     /* missing, not an integer, outside 0..2^31-1 */
    GAEN_KEYS_JSON_BAD_ROLLING_PERIOD,    /* outside 1..144 */
    GAEN_KEYS_JSON_BAD_TRANSMISSION_RISK, /* outside 0..8 */
    GAEN_KEYS_JSON_BAD_REPORT_TYPE,       /* unknown name or number (REVOKED per policy) */
    GAEN_KEYS_JSON_BAD_DAYS_SINCE_ONSET,  /* outside the policy's range */
    GAEN_KEYS_JSON_N_PROBLEMS,
} GaenKeysJsonProblem;

typedef struct {
    GQuark domain;
    gint codes[GAEN_KEYS_JSON_N_PROBLEMS]; /* error code for each problem */
    gboolean allow_revoked;                /* reportType REVOKED (5) accepted */
    gboolean reject_unknown_members;       /* a member other than the six fields is an error */
    gboolean null_is_absent;               /* "field": null counts as not given */
    /* Extra report type names accepted besides GAEN's (the CLI's "confirmed-test", ...). */
    gboolean cli_report_names;
    gint64 days_since_onset_min;
    gint64 days_since_onset_max;
} GaenKeysJsonPolicy;

/* GAEN's names, indexed by ProxReportType (UNKNOWN .. REVOKED). */
const char *gaen_report_type_name(ProxReportType type);

/* The CLI's names of the report types a case may carry ("confirmed-test", "clinical",
 * "self-report", "recursive") or GAEN's names of them, case-insensitive. UNKNOWN and
 * REVOKED are not among them. */
gboolean gaen_report_type_parse_case(const char *name, ProxReportType *out);

/* Strict base64 of exactly 16 bytes: 22 alphabet characters and "==". */
gboolean gaen_key_base64_decode(const char *b64, uint8_t out[PROX_KEY_LEN]);

/* Parses key `index` (for messages) of a temporaryExposureKeys array. */
gboolean gaen_keys_json_parse_key(JsonNode *node, guint index, const GaenKeysJsonPolicy *policy,
                                  ProxDiagnosisKey *key, GError **error);

/* Parses every element of `array` (GArray of ProxDiagnosisKey, transfer full). */
GArray *gaen_keys_json_parse_array(JsonArray *array, const GaenKeysJsonPolicy *policy,
                                   GError **error);

G_END_DECLS
