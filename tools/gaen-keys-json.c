/* gaen-keys-json.c - GAEN's JSON key form, one parser with a policy per caller. */
#define G_LOG_DOMAIN "prox-gaen-json"

#include "gaen-keys-json.h"

#include <string.h>

/* GAEN's limit of a key's transmission risk (prox-export.h has the same value; this file
 * is also built into tools that do not include it). */
#define GAEN_MAX_TRANSMISSION_RISK 8

static const char *const gaen_names[] = {
    "UNKNOWN",     "CONFIRMED_TEST", "CONFIRMED_CLINICAL_DIAGNOSIS",
    "SELF_REPORT", "RECURSIVE",      "REVOKED",
};
static const char *const cli_names[] = {
    NULL, "confirmed-test", "clinical", "self-report", "recursive", NULL,
};

const char *gaen_report_type_name(ProxReportType type)
{
    if ((guint)type < G_N_ELEMENTS(gaen_names))
        return gaen_names[type];
    return "UNKNOWN";
}

gboolean gaen_report_type_parse_case(const char *name, ProxReportType *out)
{
    for (guint t = PROX_REPORT_CONFIRMED_TEST; t <= PROX_REPORT_RECURSIVE; t++) {
        if (g_ascii_strcasecmp(name, gaen_names[t]) == 0 ||
            g_ascii_strcasecmp(name, cli_names[t]) == 0) {
            *out = (ProxReportType)t;
            return TRUE;
        }
    }
    return FALSE;
}

static void fail(GError **error, const GaenKeysJsonPolicy *policy, GaenKeysJsonProblem problem,
                 const char *format, ...) G_GNUC_PRINTF(4, 5);
static void fail(GError **error, const GaenKeysJsonPolicy *policy, GaenKeysJsonProblem problem,
                 const char *format, ...)
{
    va_list args;
    va_start(args, format);
    g_autofree char *message = g_strdup_vprintf(format, args);
    va_end(args);
    g_set_error_literal(error, policy->domain, policy->codes[problem], message);
}

gboolean gaen_key_base64_decode(const char *b64, uint8_t out[PROX_KEY_LEN])
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

static JsonNode *member(JsonObject *object, const char *field, const GaenKeysJsonPolicy *policy)
{
    JsonNode *node = json_object_get_member(object, field);
    if (node != NULL && policy->null_is_absent && JSON_NODE_HOLDS_NULL(node))
        return NULL;
    return node;
}

/* An integer member of key `index`: absent gives `fallback` unless required; present must be
 * a JSON integer in [min, max]. */
static gboolean key_int(JsonObject *object, guint index, const char *field, gboolean required,
                        gint64 fallback, gint64 min, gint64 max, const GaenKeysJsonPolicy *policy,
                        GaenKeysJsonProblem problem, gint64 *out, GError **error)
{
    JsonNode *node = member(object, field, policy);
    if (node == NULL) {
        if (required) {
            fail(error, policy, problem, "key %u: %s is missing", index, field);
            return FALSE;
        }
        *out = fallback;
        return TRUE;
    }
    if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_INT64) {
        fail(error, policy, problem, "key %u: %s is not an integer", index, field);
        return FALSE;
    }
    gint64 v = json_node_get_int(node);
    if (v < min || v > max) {
        fail(error, policy, problem,
             "key %u: %s %" G_GINT64_FORMAT " outside %" G_GINT64_FORMAT "..%" G_GINT64_FORMAT,
             index, field, v, min, max);
        return FALSE;
    }
    *out = v;
    return TRUE;
}

static gboolean key_report_type(JsonObject *object, guint index, const GaenKeysJsonPolicy *policy,
                                ProxReportType *out, GError **error)
{
    ProxReportType max = policy->allow_revoked ? PROX_REPORT_REVOKED : PROX_REPORT_RECURSIVE;
    JsonNode *node = member(object, "reportType", policy);
    if (node != NULL && JSON_NODE_HOLDS_VALUE(node) &&
        json_node_get_value_type(node) == G_TYPE_STRING) {
        const char *name = json_node_get_string(node);
        for (guint t = 0; t <= max; t++) {
            if (g_ascii_strcasecmp(name, gaen_names[t]) == 0 ||
                (policy->cli_report_names && cli_names[t] != NULL &&
                 g_ascii_strcasecmp(name, cli_names[t]) == 0)) {
                *out = (ProxReportType)t;
                return TRUE;
            }
        }
        g_autofree char *escaped = g_strescape(name, NULL);
        fail(error, policy, GAEN_KEYS_JSON_BAD_REPORT_TYPE,
             "key %u: reportType \"%.40s\" is not one of UNKNOWN, CONFIRMED_TEST, "
             "CONFIRMED_CLINICAL_DIAGNOSIS, SELF_REPORT, RECURSIVE%s",
             index, escaped, policy->allow_revoked ? ", REVOKED" : "");
        return FALSE;
    }
    gint64 v = 0;
    if (!key_int(object, index, "reportType", FALSE, PROX_REPORT_UNKNOWN, PROX_REPORT_UNKNOWN, max,
                 policy, GAEN_KEYS_JSON_BAD_REPORT_TYPE, &v, error))
        return FALSE;
    *out = (ProxReportType)v;
    return TRUE;
}

gboolean gaen_keys_json_parse_key(JsonNode *node, guint index, const GaenKeysJsonPolicy *policy,
                                  ProxDiagnosisKey *key, GError **error)
{
    static const char *const known[] = {
        "key",
        "rollingStartNumber",
        "rollingPeriod",
        "transmissionRisk",
        "reportType",
        "daysSinceOnsetOfSymptoms",
        NULL,
    };
    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        fail(error, policy, GAEN_KEYS_JSON_BAD_KEY, "key %u is not a JSON object", index);
        return FALSE;
    }
    JsonObject *object = json_node_get_object(node);
    if (policy->reject_unknown_members) {
        g_autoptr(GList) members = json_object_get_members(object);
        for (GList *m = members; m != NULL; m = m->next) {
            if (!g_strv_contains(known, m->data)) {
                g_autofree char *name = g_strescape(m->data, NULL);
                fail(error, policy, GAEN_KEYS_JSON_BAD_KEY, "key %u: unknown field \"%.40s\"",
                     index, name);
                return FALSE;
            }
        }
    }

    memset(key, 0, sizeof *key);
    JsonNode *data = member(object, "key", policy);
    if (data == NULL || !JSON_NODE_HOLDS_VALUE(data) ||
        json_node_get_value_type(data) != G_TYPE_STRING ||
        !gaen_key_base64_decode(json_node_get_string(data), key->tek.key)) {
        fail(error, policy, GAEN_KEYS_JSON_BAD_KEY_DATA,
             "key %u: key is missing or not the base64 of 16 bytes", index);
        return FALSE;
    }
    gint64 start = 0;
    gint64 period = 0;
    gint64 risk = 0;
    gint64 dsos = 0;
    if (!key_int(object, index, "rollingStartNumber", TRUE, 0, 0, G_MAXINT32, policy,
                 GAEN_KEYS_JSON_BAD_ROLLING_START, &start, error) ||
        !key_int(object, index, "rollingPeriod", FALSE, PROX_TEK_ROLLING_PERIOD, 1,
                 PROX_MAX_ROLLING_PERIOD, policy, GAEN_KEYS_JSON_BAD_ROLLING_PERIOD, &period,
                 error) ||
        !key_int(object, index, "transmissionRisk", FALSE, 0, 0, GAEN_MAX_TRANSMISSION_RISK, policy,
                 GAEN_KEYS_JSON_BAD_TRANSMISSION_RISK, &risk, error) ||
        !key_report_type(object, index, policy, &key->report_type, error) ||
        !key_int(object, index, "daysSinceOnsetOfSymptoms", FALSE, 0, policy->days_since_onset_min,
                 policy->days_since_onset_max, policy, GAEN_KEYS_JSON_BAD_DAYS_SINCE_ONSET, &dsos,
                 error))
        return FALSE;
    key->tek.rolling_start = (uint32_t)start;
    key->tek.rolling_period = (uint32_t)period;
    key->transmission_risk_level = (int32_t)risk;
    key->has_days_since_onset = member(object, "daysSinceOnsetOfSymptoms", policy) != NULL;
    key->days_since_onset = (int32_t)dsos;
    return TRUE;
}

GArray *gaen_keys_json_parse_array(JsonArray *array, const GaenKeysJsonPolicy *policy,
                                   GError **error)
{
    guint n = json_array_get_length(array);
    g_autoptr(GArray) keys = g_array_sized_new(FALSE, FALSE, sizeof(ProxDiagnosisKey), n);
    for (guint i = 0; i < n; i++) {
        ProxDiagnosisKey key;
        if (!gaen_keys_json_parse_key(json_array_get_element(array, i), i, policy, &key, error))
            return NULL;
        g_array_append_val(keys, key);
    }
    return g_steal_pointer(&keys);
}
