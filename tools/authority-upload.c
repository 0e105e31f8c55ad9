/* authority-upload.c - parsing and checking uploaded key lists. */
#define G_LOG_DOMAIN "prox-authority"

#include "authority-upload.h"

#include "authority-code.h"
#include "gaen-keys-json.h"
#include "prox-export.h"
#include "prox-hex.h"

#include <json-glib/json-glib.h>
#include <string.h>

G_DEFINE_QUARK(authority - reject - quark, authority_reject)

typedef struct {
    const char *name;
    guint status;
} RejectInfo;

/* Indexed by AuthorityRejectReason. */
static const RejectInfo reject_info[] = {
    [AUTHORITY_REJECT_NOT_FOUND] = {"not_found", 404},
    [AUTHORITY_REJECT_METHOD_NOT_ALLOWED] = {"method_not_allowed", 405},
    [AUTHORITY_REJECT_UNSUPPORTED_CONTENT_TYPE] = {"unsupported_content_type", 415},
    [AUTHORITY_REJECT_BODY_TOO_LARGE] = {"body_too_large", 413},
    [AUTHORITY_REJECT_RATE_LIMITED] = {"rate_limited", 429},
    [AUTHORITY_REJECT_MALFORMED_JSON] = {"malformed_json", 400},
    [AUTHORITY_REJECT_MISSING_CODE] = {"missing_code", 400},
    [AUTHORITY_REJECT_MISSING_KEYS] = {"missing_keys", 400},
    [AUTHORITY_REJECT_NO_KEYS] = {"no_keys", 400},
    [AUTHORITY_REJECT_TOO_MANY_KEYS] = {"too_many_keys", 400},
    [AUTHORITY_REJECT_BAD_KEY] = {"bad_key", 400},
    [AUTHORITY_REJECT_BAD_KEY_DATA] = {"bad_key_data", 400},
    [AUTHORITY_REJECT_BAD_ROLLING_START] = {"bad_rolling_start", 400},
    [AUTHORITY_REJECT_BAD_ROLLING_PERIOD] = {"bad_rolling_period", 400},
    [AUTHORITY_REJECT_BAD_TRANSMISSION_RISK] = {"bad_transmission_risk", 400},
    [AUTHORITY_REJECT_BAD_REPORT_TYPE] = {"bad_report_type", 400},
    [AUTHORITY_REJECT_BAD_DAYS_SINCE_ONSET] = {"bad_days_since_onset", 400},
    [AUTHORITY_REJECT_KEY_IN_FUTURE] = {"key_in_future", 400},
    [AUTHORITY_REJECT_KEY_TOO_OLD] = {"key_too_old", 400},
    [AUTHORITY_REJECT_DUPLICATE_KEY] = {"duplicate_key", 400},
    [AUTHORITY_REJECT_INVALID_CODE] = {"invalid_code", 403},
    [AUTHORITY_REJECT_CODE_EXPIRED] = {"code_expired", 410},
    [AUTHORITY_REJECT_CODE_USED] = {"code_used", 409},
    [AUTHORITY_REJECT_BAD_CHECKINS] = {"bad_checkins", 400},
    [AUTHORITY_REJECT_TOO_MANY_CHECKINS] = {"too_many_checkins", 400},
    [AUTHORITY_REJECT_BAD_CHECKIN] = {"bad_checkin", 400},
    [AUTHORITY_REJECT_BAD_LOCATION_ID] = {"bad_location_id", 400},
    [AUTHORITY_REJECT_BAD_CHECKIN_TIME] = {"bad_checkin_time", 400},
    [AUTHORITY_REJECT_CHECKIN_IN_FUTURE] = {"checkin_in_future", 400},
    [AUTHORITY_REJECT_CHECKIN_TOO_OLD] = {"checkin_too_old", 400},
    [AUTHORITY_REJECT_DUPLICATE_CHECKIN] = {"duplicate_checkin", 400},
    [AUTHORITY_REJECT_UNAVAILABLE] = {"unavailable", 503},
    [AUTHORITY_REJECT_UNKNOWN_MEMBER] = {"unknown_member", 400},
    [AUTHORITY_REJECT_BAD_LOCATION_HASH] = {"bad_location_hash", 400},
    [AUTHORITY_REJECT_BAD_HOUR] = {"bad_hour", 400},
    [AUTHORITY_REJECT_HOUR_IN_FUTURE] = {"hour_in_future", 400},
    [AUTHORITY_REJECT_HOUR_TOO_OLD] = {"hour_too_old", 400},
};
G_STATIC_ASSERT(G_N_ELEMENTS(reject_info) == AUTHORITY_REJECT_HOUR_TOO_OLD + 1);

const char *authority_reject_name(AuthorityRejectReason reason)
{
    g_return_val_if_fail((size_t)reason < G_N_ELEMENTS(reject_info), "unavailable");
    return reject_info[reason].name;
}

guint authority_reject_http_status(AuthorityRejectReason reason)
{
    g_return_val_if_fail((size_t)reason < G_N_ELEMENTS(reject_info), 503);
    return reject_info[reason].status;
}

char *authority_reject_json(AuthorityRejectReason reason, const char *message)
{
    g_autoptr(JsonBuilder) builder = json_builder_new_immutable();
    json_builder_begin_object(builder);
    json_builder_set_member_name(builder, "error");
    json_builder_add_string_value(builder, message);
    json_builder_set_member_name(builder, "code");
    json_builder_add_string_value(builder, authority_reject_name(reason));
    json_builder_end_object(builder);
    g_autoptr(JsonNode) root = json_builder_get_root(builder);
    return json_to_string(root, FALSE);
}

void authority_upload_free(AuthorityUpload *upload)
{
    if (upload == NULL)
        return;
    g_free(upload->code);
    if (upload->keys != NULL)
        g_array_unref(upload->keys);
    if (upload->checkins != NULL)
        g_array_unref(upload->checkins);
    g_free(upload);
}

gboolean authority_report_type_parse(const char *name, ProxReportType *out)
{
    return gaen_report_type_parse_case(name, out);
}

static const char *const cli_report_names[] = {
    NULL, "confirmed-test", "clinical", "self-report", "recursive",
};

const char *authority_report_type_cli_name(ProxReportType type)
{
    if (type >= PROX_REPORT_CONFIRMED_TEST && type <= PROX_REPORT_RECURSIVE)
        return cli_report_names[type];
    return "unknown";
}

int32_t authority_days_since_onset(const ProxTek *tek, gint64 onset_day)
{
    gint64 key_day = tek->rolling_start / PROX_TEK_ROLLING_PERIOD;
    return (int32_t)CLAMP(key_day - onset_day, AUTHORITY_DSOS_MIN, AUTHORITY_DSOS_MAX);
}

/* Uploads: every problem has its own reason; members other than the key's fields are
 * ignored (devices pad); REVOKED is left out (revising published keys is not supported). */
static const GaenKeysJsonPolicy upload_policy = {
    .codes =
        {
            [GAEN_KEYS_JSON_BAD_KEY] = AUTHORITY_REJECT_BAD_KEY,
            [GAEN_KEYS_JSON_BAD_KEY_DATA] = AUTHORITY_REJECT_BAD_KEY_DATA,
            [GAEN_KEYS_JSON_BAD_ROLLING_START] = AUTHORITY_REJECT_BAD_ROLLING_START,
            [GAEN_KEYS_JSON_BAD_ROLLING_PERIOD] = AUTHORITY_REJECT_BAD_ROLLING_PERIOD,
            [GAEN_KEYS_JSON_BAD_TRANSMISSION_RISK] = AUTHORITY_REJECT_BAD_TRANSMISSION_RISK,
            [GAEN_KEYS_JSON_BAD_REPORT_TYPE] = AUTHORITY_REJECT_BAD_REPORT_TYPE,
            [GAEN_KEYS_JSON_BAD_DAYS_SINCE_ONSET] = AUTHORITY_REJECT_BAD_DAYS_SINCE_ONSET,
        },
    .allow_revoked = FALSE,
    .reject_unknown_members = FALSE,
    .null_is_absent = TRUE,
    .cli_report_names = TRUE,
    .days_since_onset_min = AUTHORITY_DSOS_MIN,
    .days_since_onset_max = AUTHORITY_DSOS_MAX,
};

gboolean authority_upload_check_keys(const ProxDiagnosisKey *keys, size_t n, gint64 now,
                                     GError **error)
{
    if (n == 0) {
        g_set_error_literal(error, AUTHORITY_REJECT, AUTHORITY_REJECT_NO_KEYS,
                            "temporaryExposureKeys is empty");
        return FALSE;
    }
    if (n > AUTHORITY_UPLOAD_MAX_KEYS) {
        g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_TOO_MANY_KEYS,
                    "%zu keys; at most %d are accepted", n, AUTHORITY_UPLOAD_MAX_KEYS);
        return FALSE;
    }
    gint64 now_interval = prox_interval_number(now);
    gint64 device_interval = prox_interval_number(now + AUTHORITY_CLOCK_SKEW_SECONDS);
    gint64 today_start = (now_interval / PROX_TEK_ROLLING_PERIOD) * PROX_TEK_ROLLING_PERIOD;
    gint64 min_start =
        today_start - (gint64)AUTHORITY_UPLOAD_MAX_AGE_DAYS * PROX_TEK_ROLLING_PERIOD;
    for (size_t i = 0; i < n; i++) {
        const ProxTek *tek = &keys[i].tek;
        if (tek->rolling_period < 1 || tek->rolling_period > PROX_MAX_ROLLING_PERIOD) {
            g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_BAD_ROLLING_PERIOD,
                        "key %zu: rollingPeriod %u is outside 1..%d", i, tek->rolling_period,
                        PROX_MAX_ROLLING_PERIOD);
            return FALSE;
        }
        /* A key may cover the current interval (a device's key of today, cut short at the
         * upload; by a clock up to the skew ahead) but never a later one. */
        if ((gint64)tek->rolling_start + tek->rolling_period > device_interval + 1) {
            g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_KEY_IN_FUTURE,
                        "key %zu: valid until interval %" G_GINT64_FORMAT
                        ", after the current interval %" G_GINT64_FORMAT,
                        i, (gint64)tek->rolling_start + tek->rolling_period - 1, now_interval);
            return FALSE;
        }
        if ((gint64)tek->rolling_start < min_start) {
            g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_KEY_TOO_OLD,
                        "key %zu: starts more than %d days ago", i, AUTHORITY_UPLOAD_MAX_AGE_DAYS);
            return FALSE;
        }
        for (size_t j = 0; j < i; j++) {
            if (memcmp(keys[j].tek.key, tek->key, PROX_KEY_LEN) == 0) {
                g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_DUPLICATE_KEY,
                            "keys %zu and %zu are the same key", j, i);
                return FALSE;
            }
        }
    }
    return TRUE;
}

/* ---- Check-ins (docs/venues.md §6) ---- */

static gboolean checkin_time(JsonObject *object, guint index, const char *field, gint64 *out,
                             GError **error)
{
    JsonNode *node = json_object_get_member(object, field);
    if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
        json_node_get_value_type(node) != G_TYPE_INT64) {
        g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_BAD_CHECKIN_TIME,
                    "checkin %u: %s is missing or not an integer (unix seconds)", index, field);
        return FALSE;
    }
    *out = json_node_get_int(node);
    return TRUE;
}

static gboolean checkin_parse(JsonNode *node, guint index, gint64 now, AuthorityCheckin *checkin,
                              GError **error)
{
    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_BAD_CHECKIN,
                    "checkin %u is not a JSON object", index);
        return FALSE;
    }
    JsonObject *object = json_node_get_object(node);
    JsonNode *id = json_object_get_member(object, "locationId");
    const char *hex =
        id != NULL && JSON_NODE_HOLDS_VALUE(id) && json_node_get_value_type(id) == G_TYPE_STRING
            ? json_node_get_string(id)
            : NULL;
    if (hex == NULL || strlen(hex) != 2 * PROX_LOCATION_ID_LEN ||
        !prox_hex_decode(hex, checkin->location_id, PROX_LOCATION_ID_LEN)) {
        g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_BAD_LOCATION_ID,
                    "checkin %u: locationId is missing or not %d hex digits", index,
                    2 * PROX_LOCATION_ID_LEN);
        return FALSE;
    }
    if (!checkin_time(object, index, "start", &checkin->start, error) ||
        !checkin_time(object, index, "end", &checkin->end, error))
        return FALSE;
    if (checkin->start >= checkin->end ||
        checkin->end - checkin->start > AUTHORITY_CHECKIN_MAX_SECONDS) {
        g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_BAD_CHECKIN_TIME,
                    "checkin %u: needs start < end <= start + %d s", index,
                    AUTHORITY_CHECKIN_MAX_SECONDS);
        return FALSE;
    }
    if (checkin->end > now + AUTHORITY_CLOCK_SKEW_SECONDS) {
        g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_CHECKIN_IN_FUTURE,
                    "checkin %u: ends in the future", index);
        return FALSE;
    }
    if (checkin->start < now - (gint64)AUTHORITY_UPLOAD_MAX_AGE_DAYS * 86400) {
        g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_CHECKIN_TOO_OLD,
                    "checkin %u: starts more than %d days ago", index,
                    AUTHORITY_UPLOAD_MAX_AGE_DAYS);
        return FALSE;
    }
    return TRUE;
}

/* The optional "checkins" member: an empty array when absent (or null). */
static GArray *checkins_parse(JsonObject *object, gint64 now, GError **error)
{
    g_autoptr(GArray) checkins = g_array_new(FALSE, FALSE, sizeof(AuthorityCheckin));
    JsonNode *list = json_object_get_member(object, "checkins");
    if (list == NULL || JSON_NODE_HOLDS_NULL(list))
        return g_steal_pointer(&checkins);
    if (!JSON_NODE_HOLDS_ARRAY(list)) {
        g_set_error_literal(error, AUTHORITY_REJECT, AUTHORITY_REJECT_BAD_CHECKINS,
                            "checkins is not an array");
        return NULL;
    }
    JsonArray *array = json_node_get_array(list);
    guint n = json_array_get_length(array);
    if (n > AUTHORITY_UPLOAD_MAX_CHECKINS) {
        g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_TOO_MANY_CHECKINS,
                    "%u checkins; at most %d are accepted", n, AUTHORITY_UPLOAD_MAX_CHECKINS);
        return NULL;
    }
    for (guint i = 0; i < n; i++) {
        AuthorityCheckin c;
        if (!checkin_parse(json_array_get_element(array, i), i, now, &c, error))
            return NULL;
        for (guint j = 0; j < checkins->len; j++) {
            const AuthorityCheckin *o = &g_array_index(checkins, AuthorityCheckin, j);
            if (o->start == c.start && o->end == c.end &&
                memcmp(o->location_id, c.location_id, PROX_LOCATION_ID_LEN) == 0) {
                g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_DUPLICATE_CHECKIN,
                            "checkins %u and %u are the same", j, i);
                return NULL;
            }
        }
        g_array_append_val(checkins, c);
    }
    return g_steal_pointer(&checkins);
}

AuthorityUpload *authority_upload_parse(const char *body, size_t len, gint64 now,
                                        gboolean require_code, GError **error)
{
    if (len > AUTHORITY_UPLOAD_MAX_BODY) {
        g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_BODY_TOO_LARGE,
                    "body of %zu bytes is larger than %zu", len, AUTHORITY_UPLOAD_MAX_BODY);
        return NULL;
    }
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    g_autoptr(GError) local = NULL;
    if (len == 0 || memchr(body, '\0', len) != NULL ||
        !json_parser_load_from_data(parser, body, (gssize)len, &local)) {
        g_set_error_literal(error, AUTHORITY_REJECT, AUTHORITY_REJECT_MALFORMED_JSON,
                            "body is not valid JSON");
        return NULL;
    }
    JsonNode *root = json_parser_get_root(parser);
    if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
        g_set_error_literal(error, AUTHORITY_REJECT, AUTHORITY_REJECT_MALFORMED_JSON,
                            "body is not a JSON object");
        return NULL;
    }
    JsonObject *object = json_node_get_object(root);

    g_autoptr(AuthorityUpload) upload = g_new0(AuthorityUpload, 1);
    if (require_code) {
        JsonNode *code = json_object_get_member(object, "code");
        if (code == NULL || !JSON_NODE_HOLDS_VALUE(code) ||
            json_node_get_value_type(code) != G_TYPE_STRING) {
            g_set_error_literal(error, AUTHORITY_REJECT, AUTHORITY_REJECT_MISSING_CODE,
                                "code is missing or not a string");
            return NULL;
        }
        upload->code = g_malloc(AUTHORITY_CODE_LEN + 1);
        if (!authority_code_normalize(json_node_get_string(code), upload->code)) {
            g_set_error_literal(error, AUTHORITY_REJECT, AUTHORITY_REJECT_INVALID_CODE,
                                "code is not valid");
            return NULL;
        }
    }

    JsonNode *list = json_object_get_member(object, "temporaryExposureKeys");
    if (list == NULL || !JSON_NODE_HOLDS_ARRAY(list)) {
        g_set_error_literal(error, AUTHORITY_REJECT, AUTHORITY_REJECT_MISSING_KEYS,
                            "temporaryExposureKeys is missing or not an array");
        return NULL;
    }
    JsonArray *array = json_node_get_array(list);
    guint n = json_array_get_length(array);
    /* Count first: parsing thousands of keys only to refuse them would be wasted work. */
    if (n == 0 || n > AUTHORITY_UPLOAD_MAX_KEYS) {
        if (!authority_upload_check_keys(NULL, n, now, error))
            return NULL;
    }
    GaenKeysJsonPolicy policy = upload_policy;
    policy.domain = AUTHORITY_REJECT;
    upload->keys = gaen_keys_json_parse_array(array, &policy, error);
    if (upload->keys == NULL)
        return NULL;
    if (!authority_upload_check_keys((const ProxDiagnosisKey *)upload->keys->data, n, now, error))
        return NULL;
    upload->checkins = checkins_parse(object, now, error);
    if (upload->checkins == NULL)
        return NULL;
    return g_steal_pointer(&upload);
}
