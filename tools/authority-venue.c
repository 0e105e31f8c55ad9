/* authority-venue.c - registered venues, imported warnings, reported check-ins, and the
 * warnings a publish run signs into the key lists. */
#define G_LOG_DOMAIN "prox-authority"

#include "authority-venue.h"

#include "gaen-keys-json.h"
#include "prox-hex.h"
#include "prox-risk.h"

#include <json-glib/json-glib.h>
#include <string.h>

#define DAY_SECONDS 86400

/* ---- registered venues ---- */

gboolean authority_venue_insert(AuthorityDb *db, const ProxVenue *venue, gint64 now, gint64 *id,
                                GError **error)
{
    sqlite3_stmt *stmt = authority_db_statement(
        db,
        "INSERT INTO venues (name, address, type, stay_minutes, location_id, key_id, "
        "key_version, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_text(stmt, 1, venue->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, venue->address, -1, SQLITE_STATIC);
    sqlite3_bind_int(stmt, 3, (int)venue->type);
    sqlite3_bind_int(stmt, 4, (int)venue->default_stay_minutes);
    sqlite3_bind_blob(stmt, 5, venue->location_id, PROX_LOCATION_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 6, venue->key_id != NULL ? venue->key_id : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 7, venue->key_version != NULL ? venue->key_version : "", -1,
                      SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 8, now);
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_DONE)
        return authority_db_fail(db, "recording the venue", error);
    *id = sqlite3_last_insert_rowid(authority_db_sqlite(db));
    return TRUE;
}

static void venue_record_clear(gpointer data)
{
    AuthorityVenueRecord *r = data;
    g_free(r->name);
    g_free(r->address);
}

GArray *authority_venue_list(AuthorityDb *db, GError **error)
{
    sqlite3_stmt *stmt = authority_db_statement(
        db,
        "SELECT id, name, address, type, stay_minutes, location_id, created_at FROM venues "
        "ORDER BY id",
        error);
    if (stmt == NULL)
        return NULL;
    g_autoptr(GArray) list = g_array_new(FALSE, TRUE, sizeof(AuthorityVenueRecord));
    g_array_set_clear_func(list, venue_record_clear);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        AuthorityVenueRecord r = {0};
        r.id = sqlite3_column_int64(stmt, 0);
        r.name = g_strdup((const char *)sqlite3_column_text(stmt, 1));
        r.address = g_strdup((const char *)sqlite3_column_text(stmt, 2));
        r.type = (ProxVenueType)sqlite3_column_int(stmt, 3);
        r.stay_minutes = (guint)sqlite3_column_int(stmt, 4);
        if (sqlite3_column_bytes(stmt, 5) == PROX_LOCATION_ID_LEN)
            memcpy(r.location_id, sqlite3_column_blob(stmt, 5), PROX_LOCATION_ID_LEN);
        r.created_at = sqlite3_column_int64(stmt, 6);
        g_array_append_val(list, r);
    }
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) {
        authority_db_fail(db, "listing venues", error);
        return NULL;
    }
    return g_steal_pointer(&list);
}

/* ---- warnings JSON ---- */

static gboolean bad(GError **error, guint index, const char *format, ...) G_GNUC_PRINTF(3, 4);
static gboolean bad(GError **error, guint index, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    g_autofree char *message = g_strdup_vprintf(format, args);
    va_end(args);
    g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED, "warning %u: %s", index, message);
    return FALSE;
}

static gboolean warning_int(JsonObject *object, guint index, const char *field, gboolean required,
                            gint64 fallback, gint64 min, gint64 max, gint64 *out, GError **error)
{
    JsonNode *node = json_object_get_member(object, field);
    if (node == NULL) {
        if (required)
            return bad(error, index, "%s is missing", field);
        *out = fallback;
        return TRUE;
    }
    if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_INT64)
        return bad(error, index, "%s is not an integer", field);
    gint64 v = json_node_get_int(node);
    if (v < min || v > max)
        return bad(error, index,
                   "%s %" G_GINT64_FORMAT " outside %" G_GINT64_FORMAT "..%" G_GINT64_FORMAT, field,
                   v, min, max);
    *out = v;
    return TRUE;
}

static const char *warning_string(JsonObject *object, const char *field)
{
    JsonNode *node = json_object_get_member(object, field);
    if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
        json_node_get_value_type(node) != G_TYPE_STRING)
        return NULL;
    return json_node_get_string(node);
}

static gboolean warning_hex32(JsonObject *object, guint index, const char *field, uint8_t out[32],
                              GError **error)
{
    const char *hex = warning_string(object, field);
    if (hex == NULL || strlen(hex) != 64 || !prox_hex_decode(hex, out, 32))
        return bad(error, index, "%s is not 64 hex digits", field);
    return TRUE;
}

static gboolean warning_parse(JsonNode *node, guint index, gint64 now, ProxVenueWarning *w,
                              GError **error)
{
    static const char *const vehicle_members[] = {
        "kind",  "beaconKey", "rollingStartIntervalNumber", "rollingPeriod",
        "start", "end",       "transmissionRisk",           NULL,
    };
    static const char *const venue_members[] = {
        "kind", "locationId", "locationHash", "start", "end", "transmissionRisk", NULL,
    };
    if (!JSON_NODE_HOLDS_OBJECT(node))
        return bad(error, index, "not a JSON object");
    JsonObject *object = json_node_get_object(node);
    memset(w, 0, sizeof *w);
    const char *kind = warning_string(object, "kind");
    if (kind == NULL)
        return bad(error, index, "kind is missing or not a string");
    const char *const *known;
    if (strcmp(kind, "same-vehicle") == 0) {
        w->kind = PROX_VENUE_WARNING_SAME_VEHICLE;
        known = vehicle_members;
    } else if (strcmp(kind, "venue") == 0) {
        w->kind = PROX_VENUE_WARNING_VENUE;
        known = venue_members;
    } else {
        g_autofree char *escaped = g_strescape(kind, NULL);
        return bad(error, index, "kind \"%.40s\" is not \"same-vehicle\" or \"venue\"", escaped);
    }
    g_autoptr(GList) members = json_object_get_members(object);
    for (GList *m = members; m != NULL; m = m->next) {
        if (!g_strv_contains(known, m->data)) {
            g_autofree char *escaped = g_strescape(m->data, NULL);
            return bad(error, index, "unknown field \"%.40s\" for kind %s", escaped, kind);
        }
    }

    if (w->kind == PROX_VENUE_WARNING_SAME_VEHICLE) {
        const char *b64 = warning_string(object, "beaconKey");
        if (b64 == NULL || !gaen_key_base64_decode(b64, w->beacon_tek.key))
            return bad(error, index, "beaconKey is missing or not the base64 of 16 bytes");
        gint64 start = 0;
        gint64 period = 0;
        if (!warning_int(object, index, "rollingStartIntervalNumber", TRUE, 0, 0, G_MAXINT32,
                         &start, error) ||
            !warning_int(object, index, "rollingPeriod", FALSE, PROX_TEK_ROLLING_PERIOD, 1,
                         PROX_MAX_ROLLING_PERIOD, &period, error))
            return FALSE;
        w->beacon_tek.rolling_start = (uint32_t)start;
        w->beacon_tek.rolling_period = (uint32_t)period;
    } else {
        gboolean has_id = json_object_has_member(object, "locationId");
        gboolean has_hash = json_object_has_member(object, "locationHash");
        if (has_id == has_hash)
            return bad(error, index, "give exactly one of locationId and locationHash");
        if (has_id) {
            uint8_t id[PROX_LOCATION_ID_LEN];
            if (!warning_hex32(object, index, "locationId", id, error))
                return FALSE;
            prox_venue_location_hash(id, w->location_hash);
        } else if (!warning_hex32(object, index, "locationHash", w->location_hash, error)) {
            return FALSE;
        }
    }
    gint64 risk = 0;
    if (!warning_int(object, index, "start", TRUE, 0, 0, G_MAXINT64, &w->start, error) ||
        !warning_int(object, index, "end", TRUE, 0, 0, G_MAXINT64, &w->end, error) ||
        !warning_int(object, index, "transmissionRisk", TRUE, 0, 1, 8, &risk, error))
        return FALSE;
    w->transmission_risk_level = (int32_t)risk;
    g_autofree char *what = g_strdup_printf("warning %u", index);
    g_autoptr(GError) local = NULL;
    if (!prox_venue_warning_check(w, what, &local)) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_MALFORMED, local->message);
        return FALSE;
    }
    if (w->end > now)
        return bad(error, index,
                   "ends in the future (%" G_GINT64_FORMAT " > now %" G_GINT64_FORMAT ")", w->end,
                   now);
    if (w->end < now - (gint64)AUTHORITY_WARNING_MAX_AGE_DAYS * DAY_SECONDS)
        return bad(error, index,
                   "ended more than %d days ago: devices no longer keep what it would match",
                   AUTHORITY_WARNING_MAX_AGE_DAYS);
    return TRUE;
}

static gboolean warnings_same(const ProxVenueWarning *a, const ProxVenueWarning *b)
{
    if (a->kind != b->kind || a->start != b->start || a->end != b->end)
        return FALSE;
    if (a->kind == PROX_VENUE_WARNING_SAME_VEHICLE)
        return memcmp(a->beacon_tek.key, b->beacon_tek.key, PROX_KEY_LEN) == 0;
    return memcmp(a->location_hash, b->location_hash, PROX_LOCATION_HASH_LEN) == 0;
}

GArray *authority_warnings_parse(const char *json, size_t len, gint64 now, GError **error)
{
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    g_autoptr(GError) local = NULL;
    if (len == 0 || memchr(json, '\0', len) != NULL ||
        !json_parser_load_from_data(parser, json, (gssize)len, &local)) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED, "not valid JSON%s%s",
                    local != NULL ? ": " : "", local != NULL ? local->message : "");
        return NULL;
    }
    JsonNode *root = json_parser_get_root(parser);
    if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_MALFORMED, "not a JSON object");
        return NULL;
    }
    JsonObject *object = json_node_get_object(root);
    g_autoptr(GList) members = json_object_get_members(object);
    for (GList *m = members; m != NULL; m = m->next) {
        if (strcmp(m->data, "warnings") != 0) {
            g_autofree char *escaped = g_strescape(m->data, NULL);
            g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                        "unknown top-level field \"%.40s\" (expected only \"warnings\")", escaped);
            return NULL;
        }
    }
    JsonNode *list = json_object_get_member(object, "warnings");
    if (list == NULL || !JSON_NODE_HOLDS_ARRAY(list)) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                            "\"warnings\" is missing or not an array");
        return NULL;
    }
    JsonArray *array = json_node_get_array(list);
    guint n = json_array_get_length(array);
    if (n == 0 || n > AUTHORITY_WARNINGS_MAX) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                    "\"warnings\" holds %u warnings; expected 1..%d", n, AUTHORITY_WARNINGS_MAX);
        return NULL;
    }
    g_autoptr(GArray) warnings = g_array_sized_new(FALSE, FALSE, sizeof(ProxVenueWarning), n);
    for (guint i = 0; i < n; i++) {
        ProxVenueWarning w;
        if (!warning_parse(json_array_get_element(array, i), i, now, &w, error))
            return NULL;
        for (guint j = 0; j < warnings->len; j++) {
            if (warnings_same(&g_array_index(warnings, ProxVenueWarning, j), &w)) {
                g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                            "warnings %u and %u are the same", j, i);
                return NULL;
            }
        }
        g_array_append_val(warnings, w);
    }
    return g_steal_pointer(&warnings);
}

gboolean authority_warnings_import(AuthorityDb *db, const ProxVenueWarning *warnings, size_t n,
                                   gint64 now, guint *inserted, GError **error)
{
    *inserted = 0;
    if (!authority_db_exec(db, "BEGIN IMMEDIATE", error))
        return FALSE;
    sqlite3_stmt *stmt = authority_db_statement(
        db,
        "INSERT INTO venue_warnings (kind, subject, rolling_start, rolling_period, start_ts, "
        "end_ts, transmission_risk, imported_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
        "ON CONFLICT (kind, subject, start_ts, end_ts) DO NOTHING",
        error);
    if (stmt == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const ProxVenueWarning *w = &warnings[i];
        ProxVenueWarningSubject subject = prox_venue_warning_subject(w);
        sqlite3_reset(stmt);
        sqlite3_bind_int(stmt, 1, (int)w->kind);
        sqlite3_bind_blob(stmt, 2, subject.subject, (int)subject.subject_len, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 3, subject.rolling_start);
        sqlite3_bind_int64(stmt, 4, subject.rolling_period);
        sqlite3_bind_int64(stmt, 5, w->start);
        sqlite3_bind_int64(stmt, 6, w->end);
        sqlite3_bind_int(stmt, 7, w->transmission_risk_level);
        sqlite3_bind_int64(stmt, 8, now);
        if (sqlite3_step(stmt) != SQLITE_DONE) {
            sqlite3_reset(stmt);
            authority_db_fail(db, "storing a warning", error);
            goto fail;
        }
        *inserted += (guint)sqlite3_changes(authority_db_sqlite(db));
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (authority_db_exec(db, "COMMIT", error))
        return TRUE;
fail:
    sqlite3_exec(authority_db_sqlite(db), "ROLLBACK", NULL, NULL, NULL);
    *inserted = 0;
    return FALSE;
}

/* ---- reported check-ins ---- */

gboolean authority_checkins_insert(AuthorityDb *db, const AuthorityCheckin *checkins, size_t n,
                                   ProxReportType report_type, gint64 now,
                                   AuthorityKeySource source, guint *inserted, GError **error)
{
    *inserted = 0;
    if (n == 0)
        return TRUE;
    sqlite3_stmt *stmt = authority_db_statement(
        db,
        "INSERT INTO checkins (location_id, start_ts, end_ts, report_type, uploaded_at, source) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (location_id, start_ts, end_ts) DO NOTHING",
        error);
    if (stmt == NULL)
        return FALSE;
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(stmt);
        sqlite3_bind_blob(stmt, 1, checkins[i].location_id, PROX_LOCATION_ID_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 2, checkins[i].start);
        sqlite3_bind_int64(stmt, 3, checkins[i].end);
        sqlite3_bind_int(stmt, 4, (int)report_type);
        sqlite3_bind_int64(stmt, 5, now);
        sqlite3_bind_int(stmt, 6, (int)source);
        if (sqlite3_step(stmt) != SQLITE_DONE) {
            sqlite3_reset(stmt);
            return authority_db_fail(db, "storing a check-in", error);
        }
        *inserted += (guint)sqlite3_changes(authority_db_sqlite(db));
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return TRUE;
}

int32_t authority_checkin_risk(ProxReportType report_type)
{
    ProxRiskParameters params;
    prox_risk_parameters_default(&params);
    if (report_type == PROX_REPORT_UNKNOWN || report_type > PROX_REPORT_RECURSIVE)
        report_type = PROX_REPORT_CONFIRMED_TEST;
    int32_t risk =
        prox_risk_transmission_risk_level(&params, report_type, PROX_INFECTIOUSNESS_STANDARD);
    return CLAMP(risk, 1, PROX_EXPORT_MAX_TRANSMISSION_RISK);
}

/* ---- opt-in anonymous venue counts ---- */

static gboolean count_reject(GError **error, AuthorityRejectReason reason, const char *message)
{
    g_set_error_literal(error, AUTHORITY_REJECT, reason, message);
    return FALSE;
}

gboolean authority_venue_count_parse(const char *body, size_t len, gint64 now,
                                     AuthorityVenueCount *out, GError **error)
{
    memset(out, 0, sizeof *out);
    if (len > AUTHORITY_VENUE_COUNT_MAX_BODY) {
        g_set_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_BODY_TOO_LARGE,
                    "body of %zu bytes is larger than %zu", len, AUTHORITY_VENUE_COUNT_MAX_BODY);
        return FALSE;
    }
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    if (len == 0 || memchr(body, '\0', len) != NULL ||
        !json_parser_load_from_data(parser, body, (gssize)len, NULL))
        return count_reject(error, AUTHORITY_REJECT_MALFORMED_JSON, "body is not valid JSON");
    JsonNode *root = json_parser_get_root(parser);
    if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root))
        return count_reject(error, AUTHORITY_REJECT_MALFORMED_JSON, "body is not a JSON object");
    JsonObject *object = json_node_get_object(root);
    g_autoptr(GList) members = json_object_get_members(object);
    for (GList *m = members; m != NULL; m = m->next) {
        if (strcmp(m->data, "locationHash") != 0 && strcmp(m->data, "hour") != 0)
            return count_reject(error, AUTHORITY_REJECT_UNKNOWN_MEMBER,
                                "only \"locationHash\" and \"hour\" are accepted");
    }

    JsonNode *node = json_object_get_member(object, "locationHash");
    const char *hex = node != NULL && JSON_NODE_HOLDS_VALUE(node) &&
                              json_node_get_value_type(node) == G_TYPE_STRING
                          ? json_node_get_string(node)
                          : NULL;
    if (hex == NULL || strlen(hex) != 2 * PROX_LOCATION_HASH_LEN ||
        !prox_hex_decode(hex, out->location_hash, PROX_LOCATION_HASH_LEN))
        return count_reject(error, AUTHORITY_REJECT_BAD_LOCATION_HASH,
                            "locationHash is missing or not 64 hex digits");

    node = json_object_get_member(object, "hour");
    if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
        json_node_get_value_type(node) != G_TYPE_INT64)
        return count_reject(error, AUTHORITY_REJECT_BAD_HOUR,
                            "hour is missing or not an integer (unix seconds)");
    gint64 hour = json_node_get_int(node);
    if (hour % AUTHORITY_HOUR_SECONDS != 0)
        return count_reject(error, AUTHORITY_REJECT_BAD_HOUR,
                            "hour is not a multiple of 3600 (the start of an hour)");
    /* The current hour counts (a check-in just now, by a clock up to the skew ahead); a
     * later one not. */
    gint64 current =
        now - (now % AUTHORITY_HOUR_SECONDS + AUTHORITY_HOUR_SECONDS) % AUTHORITY_HOUR_SECONDS;
    gint64 ahead = now + AUTHORITY_CLOCK_SKEW_SECONDS;
    gint64 latest =
        ahead - (ahead % AUTHORITY_HOUR_SECONDS + AUTHORITY_HOUR_SECONDS) % AUTHORITY_HOUR_SECONDS;
    if (hour > latest)
        return count_reject(error, AUTHORITY_REJECT_HOUR_IN_FUTURE, "hour is in the future");
    if (hour < current - (gint64)AUTHORITY_VENUE_COUNT_MAX_AGE_DAYS * DAY_SECONDS)
        return count_reject(error, AUTHORITY_REJECT_HOUR_TOO_OLD, "hour is more than 14 days ago");
    out->hour = hour;
    out->count = 1;
    return TRUE;
}

gboolean authority_venue_count_add(AuthorityDb *db, const AuthorityVenueCount *count,
                                   GError **error)
{
    sqlite3_stmt *stmt = authority_db_statement(
        db,
        "INSERT INTO venue_counts (location_hash, hour, count) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (location_hash, hour) DO UPDATE SET count = count + excluded.count",
        error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_blob(stmt, 1, count->location_hash, PROX_LOCATION_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, count->hour);
    sqlite3_bind_int64(stmt, 3, count->count);
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_DONE)
        return authority_db_fail(db, "storing a venue count", error);
    return TRUE;
}

GArray *authority_venue_counts_list(AuthorityDb *db, gint64 since, GError **error)
{
    sqlite3_stmt *stmt = authority_db_statement(db,
                                                "SELECT location_hash, hour, count FROM "
                                                "venue_counts WHERE hour >= ?1 "
                                                "ORDER BY hour, location_hash",
                                                error);
    if (stmt == NULL)
        return NULL;
    sqlite3_bind_int64(stmt, 1, since);
    g_autoptr(GArray) list = g_array_new(FALSE, TRUE, sizeof(AuthorityVenueCount));
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        AuthorityVenueCount c = {0};
        if (sqlite3_column_bytes(stmt, 0) != PROX_LOCATION_HASH_LEN) {
            sqlite3_reset(stmt);
            g_set_error_literal(error, PROX_ERROR, PROX_ERROR_STORE,
                                "a venue count has a location hash of the wrong length");
            return NULL;
        }
        memcpy(c.location_hash, sqlite3_column_blob(stmt, 0), PROX_LOCATION_HASH_LEN);
        c.hour = sqlite3_column_int64(stmt, 1);
        c.count = sqlite3_column_int64(stmt, 2);
        g_array_append_val(list, c);
    }
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) {
        authority_db_fail(db, "listing venue counts", error);
        return NULL;
    }
    return g_steal_pointer(&list);
}

/* ---- publishing ---- */

void authority_pending_warnings_clear(AuthorityPendingWarnings *pending)
{
    g_clear_pointer(&pending->warnings, g_array_unref);
}

#define PENDING_WARNINGS_WHERE                                                                     \
    "run_id IS NULL AND end_ts >= ?1 AND end_ts <= ?2 AND "                                        \
    "(kind = 2 OR rolling_start + rolling_period <= ?3)"
#define PENDING_CHECKINS_WHERE "run_id IS NULL AND end_ts >= ?1 AND end_ts <= ?2"

static gboolean contains_warning(const GArray *warnings, const ProxVenueWarning *w)
{
    for (guint i = 0; i < warnings->len; i++) {
        if (warnings_same(&g_array_index(warnings, ProxVenueWarning, i), w))
            return TRUE;
    }
    return FALSE;
}

gboolean authority_warnings_pending(AuthorityDb *db, gint64 now, gint64 embargo, gint keep_days,
                                    AuthorityPendingWarnings *pending, GError **error)
{
    memset(pending, 0, sizeof *pending);
    pending->warnings = g_array_new(FALSE, TRUE, sizeof(ProxVenueWarning));
    pending->now = now;
    pending->cutoff = now - (gint64)keep_days * DAY_SECONDS;
    gint64 limit = now - embargo;
    pending->tek_end_limit = limit >= 0 ? limit / PROX_INTERVAL_SECONDS : -1;

    sqlite3_stmt *stmt = authority_db_statement(
        db,
        "SELECT id, kind, subject, rolling_start, rolling_period, start_ts, end_ts, "
        "transmission_risk FROM venue_warnings WHERE " PENDING_WARNINGS_WHERE " ORDER BY id",
        error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, pending->cutoff);
    sqlite3_bind_int64(stmt, 2, now);
    sqlite3_bind_int64(stmt, 3, pending->tek_end_limit);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        ProxVenueWarning w = {0};
        gint64 id = sqlite3_column_int64(stmt, 0);
        if (!prox_venue_warning_set_subject(
                &w, sqlite3_column_int(stmt, 1), sqlite3_column_blob(stmt, 2),
                (size_t)sqlite3_column_bytes(stmt, 2), (uint32_t)sqlite3_column_int64(stmt, 3),
                (uint32_t)sqlite3_column_int64(stmt, 4))) {
            sqlite3_reset(stmt);
            g_set_error(error, PROX_ERROR, PROX_ERROR_STORE,
                        "warning row %" G_GINT64_FORMAT " has a subject of the wrong length", id);
            return FALSE;
        }
        w.start = sqlite3_column_int64(stmt, 5);
        w.end = sqlite3_column_int64(stmt, 6);
        w.transmission_risk_level = sqlite3_column_int(stmt, 7);
        g_array_append_val(pending->warnings, w);
        pending->max_warning_id = MAX(pending->max_warning_id, id);
    }
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE)
        return authority_db_fail(db, "reading unpublished warnings", error);
    pending->from_imported = pending->warnings->len;

    stmt = authority_db_statement(db,
                                  "SELECT id, location_id, start_ts, end_ts, report_type FROM "
                                  "checkins WHERE " PENDING_CHECKINS_WHERE " ORDER BY id",
                                  error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, pending->cutoff);
    sqlite3_bind_int64(stmt, 2, now);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        ProxVenueWarning w = {0};
        gint64 id = sqlite3_column_int64(stmt, 0);
        if (sqlite3_column_bytes(stmt, 1) != PROX_LOCATION_ID_LEN) {
            sqlite3_reset(stmt);
            g_set_error(error, PROX_ERROR, PROX_ERROR_STORE,
                        "check-in row %" G_GINT64_FORMAT " has a location id of the wrong length",
                        id);
            return FALSE;
        }
        w.kind = PROX_VENUE_WARNING_VENUE;
        prox_venue_location_hash(sqlite3_column_blob(stmt, 1), w.location_hash);
        w.start = sqlite3_column_int64(stmt, 2);
        w.end = sqlite3_column_int64(stmt, 3);
        w.transmission_risk_level =
            authority_checkin_risk((ProxReportType)sqlite3_column_int(stmt, 4));
        pending->n_checkins++;
        pending->max_checkin_id = MAX(pending->max_checkin_id, id);
        /* An imported warning may say the same already. */
        if (!contains_warning(pending->warnings, &w))
            g_array_append_val(pending->warnings, w);
    }
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE)
        return authority_db_fail(db, "reading unpublished check-ins", error);
    return TRUE;
}

static gboolean mark(AuthorityDb *db, const char *sql, const AuthorityPendingWarnings *pending,
                     gint64 run_id, gint64 max_id, guint expected, GError **error)
{
    sqlite3_stmt *stmt = authority_db_statement(db, sql, error);
    if (stmt == NULL)
        return FALSE;
    sqlite3_bind_int64(stmt, 1, pending->cutoff);
    sqlite3_bind_int64(stmt, 2, pending->now);
    if (sqlite3_bind_parameter_count(stmt) == 5)
        sqlite3_bind_int64(stmt, 3, pending->tek_end_limit);
    int n = sqlite3_bind_parameter_count(stmt);
    sqlite3_bind_int64(stmt, n - 1, run_id);
    sqlite3_bind_int64(stmt, n, max_id);
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE)
        return authority_db_fail(db, "marking warnings published", error);
    guint changed = (guint)sqlite3_changes(authority_db_sqlite(db));
    if (changed != expected) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_STORE,
                    "warnings changed while publishing (%u marked, %u read); nothing published",
                    changed, expected);
        return FALSE;
    }
    return TRUE;
}

gboolean authority_warnings_mark_published(AuthorityDb *db, const AuthorityPendingWarnings *pending,
                                           gint64 run_id, GError **error)
{
    return mark(db,
                "UPDATE venue_warnings SET run_id = ?4 WHERE " PENDING_WARNINGS_WHERE
                " AND id <= ?5",
                pending, run_id, pending->max_warning_id, pending->from_imported, error) &&
           mark(db, "UPDATE checkins SET run_id = ?3 WHERE " PENDING_CHECKINS_WHERE " AND id <= ?4",
                pending, run_id, pending->max_checkin_id, pending->n_checkins, error);
}

gboolean authority_warnings_retention(AuthorityDb *db, gint64 cutoff, GError **error)
{
    static const char *const sql[] = {
        "DELETE FROM venue_warnings WHERE run_id IS NULL AND end_ts < ?1",
        "DELETE FROM checkins WHERE run_id IS NULL AND end_ts < ?1",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(sql); i++) {
        sqlite3_stmt *stmt = authority_db_statement(db, sql[i], error);
        if (stmt == NULL)
            return FALSE;
        sqlite3_bind_int64(stmt, 1, cutoff);
        int rc = sqlite3_step(stmt);
        sqlite3_reset(stmt);
        if (rc != SQLITE_DONE)
            return authority_db_fail(db, "applying retention to warnings", error);
    }
    return TRUE;
}
