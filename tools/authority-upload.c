/* authority-upload.c - parsing and checking uploaded key lists. */
#define G_LOG_DOMAIN "prox-authority"

#include "authority-upload.h"

#include "authority-code.h"
#include "prox-export.h"

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
    [AUTHORITY_REJECT_UNAVAILABLE] = {"unavailable", 503},
};

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
    g_free(upload);
}

static const char *const gaen_report_names[] = {
    "UNKNOWN", "CONFIRMED_TEST", "CONFIRMED_CLINICAL_DIAGNOSIS", "SELF_REPORT", "RECURSIVE",
};
static const char *const cli_report_names[] = {
    NULL, "confirmed-test", "clinical", "self-report", "recursive",
};

gboolean authority_report_type_parse(const char *name, ProxReportType *out)
{
    for (guint t = PROX_REPORT_CONFIRMED_TEST; t <= PROX_REPORT_RECURSIVE; t++) {
        if (g_ascii_strcasecmp(name, gaen_report_names[t]) == 0 ||
            g_ascii_strcasecmp(name, cli_report_names[t]) == 0) {
            *out = (ProxReportType)t;
            return TRUE;
        }
    }
    return FALSE;
}

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

/* Strict base64 of exactly 16 bytes: 22 alphabet characters and "==". */
static gboolean key_base64_decode(const char *b64, uint8_t out[PROX_KEY_LEN])
{
    if (strlen(b64) != 24 || strcmp(b64 + 22, "==") != 0)
        return FALSE;
    for (size_t i = 0; i < 22; i++) {
        if (!g_ascii_isalnum(b64[i]) && b64[i] != '+' && b64[i] != '/')
            return FALSE;
    }
    gsize len = 0;
    g_autofree guchar *data = g_base64_decode(b64, &len);
    if (len != PROX_KEY_LEN)
        return FALSE;
    memcpy(out, data, PROX_KEY_LEN);
    return TRUE;
}

/* An integer member of key `index`: absent gives `fallback` unless required; present must be
 * a JSON integer in [min, max]. `reason` is the rejection for a bad value. */
static gboolean key_int(JsonObject *object, guint index, const char *field, gboolean required,
                        gint64 fallback, gint64 min, gint64 max, AuthorityRejectReason reason,
                        gint64 *out, GError **error)
{
    JsonNode *node = json_object_get_member(object, field);
    if (node == NULL || JSON_NODE_HOLDS_NULL(node)) {
        if (required) {
            g_set_error(error, AUTHORITY_REJECT, reason, "key %u: %s is missing", index, field);
            return FALSE;
        }
        *out = fallback;
        return TRUE;
    }
    if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_INT64) {
        g_set_error(error, AUTHORITY_REJECT, reason, "key %u: %s is not an integer", index, field);
        return FALSE;
    }
    gint64 v = json_node_get_int(node);
    if (v < min || v > max) {
        g_set_error(error, AUTHORITY_REJECT, reason,
                    "key %u: %s %" G_GINT64_FORMAT " is outside %" G_GINT64_FORMAT
                    "..%" G_GINT64_FORMAT,
                    index, field, v, min, max);
        return FALSE;
    }
    *out = v;
    return TRUE;
}

static gboolean key_report_type(JsonObject *object, guint index, ProxReportType *out,
                                GError **error)
{
    JsonNode *node = json_object_get_member(object, "reportType");
    if (node != NULL && JSON_NODE_HOLDS_VALUE(node) &&
        json_node_get_value_type(node) == G_TYPE_STRING) {
        const char *name = json_node_get_string(node);
        if (g_ascii_strcasecmp(name, "UNKNOWN") == 0) {
            *out = PROX_REPORT_UNKNOWN;
            return TRUE;
        }
        if (!authority_report_type_parse(name, out)) {
            g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_BAD_REPORT_TYPE,
                        "key %u: reportType is not one of UNKNOWN, CONFIRMED_TEST, "
                        "CONFIRMED_CLINICAL_DIAGNOSIS, SELF_REPORT, RECURSIVE",
                        index);
            return FALSE;
        }
        return TRUE;
    }
    /* REVOKED is left out: revising published keys is not supported. */
    gint64 v = 0;
    if (!key_int(object, index, "reportType", FALSE, PROX_REPORT_UNKNOWN, PROX_REPORT_UNKNOWN,
                 PROX_REPORT_RECURSIVE, AUTHORITY_REJECT_BAD_REPORT_TYPE, &v, error))
        return FALSE;
    *out = (ProxReportType)v;
    return TRUE;
}

static gboolean key_parse(JsonNode *node, guint index, ProxDiagnosisKey *key, GError **error)
{
    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_BAD_KEY,
                    "key %u is not a JSON object", index);
        return FALSE;
    }
    JsonObject *object = json_node_get_object(node);
    memset(key, 0, sizeof *key);
    JsonNode *data = json_object_get_member(object, "key");
    if (data == NULL || !JSON_NODE_HOLDS_VALUE(data) ||
        json_node_get_value_type(data) != G_TYPE_STRING ||
        !key_base64_decode(json_node_get_string(data), key->tek.key)) {
        g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_BAD_KEY_DATA,
                    "key %u: key is missing or not the base64 of 16 bytes", index);
        return FALSE;
    }
    gint64 start = 0;
    gint64 period = 0;
    gint64 risk = 0;
    gint64 dsos = 0;
    if (!key_int(object, index, "rollingStartNumber", TRUE, 0, 0, G_MAXINT32,
                 AUTHORITY_REJECT_BAD_ROLLING_START, &start, error) ||
        !key_int(object, index, "rollingPeriod", FALSE, PROX_TEK_ROLLING_PERIOD, 1,
                 PROX_MAX_ROLLING_PERIOD, AUTHORITY_REJECT_BAD_ROLLING_PERIOD, &period, error) ||
        !key_int(object, index, "transmissionRisk", FALSE, 0, 0, PROX_EXPORT_MAX_TRANSMISSION_RISK,
                 AUTHORITY_REJECT_BAD_TRANSMISSION_RISK, &risk, error) ||
        !key_report_type(object, index, &key->report_type, error) ||
        !key_int(object, index, "daysSinceOnsetOfSymptoms", FALSE, 0, AUTHORITY_DSOS_MIN,
                 AUTHORITY_DSOS_MAX, AUTHORITY_REJECT_BAD_DAYS_SINCE_ONSET, &dsos, error))
        return FALSE;
    key->tek.rolling_start = (uint32_t)start;
    key->tek.rolling_period = (uint32_t)period;
    key->transmission_risk_level = (int32_t)risk;
    JsonNode *dsos_node = json_object_get_member(object, "daysSinceOnsetOfSymptoms");
    key->has_days_since_onset = dsos_node != NULL && !JSON_NODE_HOLDS_NULL(dsos_node);
    key->days_since_onset = (int32_t)dsos;
    return TRUE;
}

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
         * upload) but never a later one. */
        if ((gint64)tek->rolling_start + tek->rolling_period > now_interval + 1) {
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
    upload->keys = g_array_sized_new(FALSE, FALSE, sizeof(ProxDiagnosisKey), n);
    for (guint i = 0; i < n; i++) {
        ProxDiagnosisKey key;
        if (!key_parse(json_array_get_element(array, i), i, &key, error))
            return NULL;
        g_array_append_val(upload->keys, key);
    }
    if (!authority_upload_check_keys((const ProxDiagnosisKey *)upload->keys->data, n, now, error))
        return NULL;
    return g_steal_pointer(&upload);
}
