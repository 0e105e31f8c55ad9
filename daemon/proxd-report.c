/* proxd-report.c - the positive-test upload: key selection, preview, JSON body, POST. */
#define G_LOG_DOMAIN "proxd-report"

#include "proxd-report.h"

#include "proxd-http.h"

#include "prox-keys.h"
#include "prox-risk.h"

#include <curl/curl.h>
#include <json-glib/json-glib.h>
#include <sodium.h>
#include <string.h>

GQuark proxd_report_error_quark(void)
{
    return g_quark_from_static_string("proxd-report-error-quark");
}

struct _ProxdReport {
    GArray *teks;     /* ProxTek, oldest first; wiped on free */
    gint64 cut_at;    /* 0, or the end of the current interval: the last key is the one in
                       * use, as prox_store_cut_current_tek() ends it */
    GArray *checkins; /* ProxCheckIn offered, oldest first; wiped on free */
    GArray *selected; /* gboolean per check-in: confirmed to be sent */
};

static gint64 day_of_interval(uint32_t enin)
{
    return prox_risk_day_of(prox_interval_start(enin));
}

static int tek_cmp(gconstpointer a, gconstpointer b)
{
    const ProxTek *x = a, *y = b;
    if (x->rolling_start != y->rolling_start)
        return x->rolling_start < y->rolling_start ? -1 : 1;
    return 0;
}

ProxdReport *proxd_report_new(ProxStore *store, gint64 now, GError **error)
{
    g_return_val_if_fail(store != NULL, NULL);
    uint32_t now_enin = prox_interval_number(now);
    uint32_t today = prox_tek_rolling_start(now);
    uint32_t min_start = today >= PROXD_REPORT_DAYS * PROX_TEK_ROLLING_PERIOD
                             ? today - PROXD_REPORT_DAYS * PROX_TEK_ROLLING_PERIOD
                             : 0;
    g_autoptr(GArray) stored = NULL;
    g_autoptr(GError) local = NULL;
    if (!prox_store_load_teks(store, min_start, &stored, &local)) {
        g_set_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_STORE, "%s", local->message);
        return NULL;
    }
    ProxdReport *report = g_new0(ProxdReport, 1);
    report->teks = g_array_new(FALSE, FALSE, sizeof(ProxTek));
    for (guint i = 0; i < stored->len; i++) {
        ProxTek tek = g_array_index(stored, ProxTek, i);
        if (tek.rolling_start < min_start)
            continue;
        /* The key in use goes as the report ends it (same-day release): up to the current
         * interval, while the device moves on to a new key; the server publishes it once
         * that is over. Keys that are over go as they are. */
        if (prox_tek_covers(&tek, now_enin)) {
            tek.rolling_period = now_enin - tek.rolling_start + 1;
            report->cut_at = prox_interval_start(now_enin + 1);
        } else if (tek.rolling_start > now_enin) {
            continue; /* starts later (the clock was set back): never broadcast yet */
        }
        g_array_append_val(report->teks, tek);
        sodium_memzero(&tek, sizeof tek);
    }
    sodium_memzero(stored->data, (size_t)stored->len * sizeof(ProxTek));
    g_array_sort(report->teks, tek_cmp);
    if (report->teks->len > PROXD_REPORT_MAX_KEYS) {
        guint drop = report->teks->len - PROXD_REPORT_MAX_KEYS;
        sodium_memzero(report->teks->data, (size_t)drop * sizeof(ProxTek));
        g_array_remove_range(report->teks, 0, drop); /* keep the newest */
    }

    report->checkins = g_array_new(FALSE, FALSE, sizeof(ProxCheckIn));
    report->selected = g_array_new(FALSE, TRUE, sizeof(gboolean));
    g_autoptr(GArray) checkins = NULL;
    gint64 since = now - (gint64)PROXD_REPORT_DAYS * 86400 + PROXD_REPORT_CHECKIN_MARGIN;
    if (!prox_store_load_checkins(store, since, &checkins, &local)) {
        proxd_report_free(report);
        g_set_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_STORE, "%s", local->message);
        return NULL;
    }
    /* Newest first from the store: closed ones only, the newest PROXD_REPORT_MAX_CHECKINS,
     * then oldest first like the keys. */
    for (guint i = 0; i < checkins->len && report->checkins->len < PROXD_REPORT_MAX_CHECKINS; i++) {
        const ProxCheckIn *c = &g_array_index(checkins, ProxCheckIn, i);
        if (c->departed > c->arrived && c->departed <= now && c->arrived >= since)
            g_array_prepend_val(report->checkins, *c);
    }
    sodium_memzero(checkins->data, (size_t)checkins->len * sizeof(ProxCheckIn));
    g_array_set_size(report->selected, report->checkins->len);
    return report;
}

void proxd_report_free(ProxdReport *report)
{
    if (report == NULL)
        return;
    sodium_memzero(report->teks->data, (size_t)report->teks->len * sizeof(ProxTek));
    g_array_unref(report->teks);
    if (report->checkins != NULL) {
        sodium_memzero(report->checkins->data, (size_t)report->checkins->len * sizeof(ProxCheckIn));
        g_array_unref(report->checkins);
    }
    if (report->selected != NULL)
        g_array_unref(report->selected);
    g_free(report);
}

guint proxd_report_get_n_checkins(const ProxdReport *report)
{
    return report->checkins->len;
}

const ProxCheckIn *proxd_report_get_checkin(const ProxdReport *report, guint i)
{
    g_return_val_if_fail(i < report->checkins->len, NULL);
    return &g_array_index(report->checkins, ProxCheckIn, i);
}

gboolean proxd_report_select_checkins(ProxdReport *report, const gint64 *ids, gsize n_ids,
                                      GError **error)
{
    g_autoptr(GArray) chosen = g_array_new(FALSE, TRUE, sizeof(gboolean));
    g_array_set_size(chosen, report->checkins->len);
    for (gsize k = 0; k < n_ids; k++) {
        gboolean found = FALSE;
        for (guint i = 0; i < report->checkins->len && !found; i++) {
            if (g_array_index(report->checkins, ProxCheckIn, i).id != ids[k])
                continue;
            found = TRUE;
            if (g_array_index(chosen, gboolean, i)) {
                g_set_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_CHANGED,
                            "Check-in %" G_GINT64_FORMAT " is listed twice", ids[k]);
                return FALSE;
            }
            g_array_index(chosen, gboolean, i) = TRUE;
        }
        if (!found) {
            g_set_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_CHANGED,
                        "Check-in %" G_GINT64_FORMAT
                        " is not among the check-ins this report can send (closed, of the last "
                        "%d days); preview again",
                        ids[k], PROXD_REPORT_DAYS);
            return FALSE;
        }
    }
    g_array_unref(report->selected);
    report->selected = g_steal_pointer(&chosen);
    return TRUE;
}

guint proxd_report_get_n_selected_checkins(const ProxdReport *report)
{
    guint n = 0;
    for (guint i = 0; i < report->selected->len; i++)
        n += g_array_index(report->selected, gboolean, i) ? 1 : 0;
    return n;
}

guint proxd_report_get_n_keys(const ProxdReport *report)
{
    return report->teks->len;
}

gint64 proxd_report_get_cut_at(const ProxdReport *report)
{
    return report->cut_at;
}

void proxd_report_get_key_period(const ProxdReport *report, guint i, guint32 *rolling_start,
                                 guint32 *rolling_period)
{
    g_return_if_fail(i < report->teks->len);
    const ProxTek *tek = &g_array_index(report->teks, ProxTek, i);
    *rolling_start = tek->rolling_start;
    *rolling_period = tek->rolling_period;
}

gboolean proxd_report_matches(const ProxdReport *report, const gint64 *days, gsize n_days)
{
    if (n_days != report->teks->len)
        return FALSE;
    for (gsize i = 0; i < n_days; i++) {
        if (day_of_interval(g_array_index(report->teks, ProxTek, i).rolling_start) != days[i])
            return FALSE;
    }
    return TRUE;
}

/* ---- body ---- */

static void wipe_free(gpointer p)
{
    char *s = p;
    sodium_memzero(s, strlen(s));
    g_free(s);
}

static char *trimmed_code(const char *code, GError **error)
{
    g_autofree char *c = g_strstrip(g_strdup(code != NULL ? code : ""));
    gsize len = strlen(c);
    gboolean ok = len > 0 && len <= PROXD_REPORT_MAX_CODE_LEN;
    for (gsize i = 0; ok && i < len; i++)
        ok = g_ascii_isprint(c[i]);
    if (!ok) {
        sodium_memzero(c, len);
        g_set_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_INVALID_ARGUMENT,
                    "The code must be 1 to %d printable characters", PROXD_REPORT_MAX_CODE_LEN);
        return NULL;
    }
    return g_steal_pointer(&c);
}

static char *body_json(const ProxdReport *report, const char *code, const char *padding)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "code");
    json_builder_add_string_value(b, code);
    json_builder_set_member_name(b, "temporaryExposureKeys");
    json_builder_begin_array(b);
    for (guint i = 0; i < report->teks->len; i++) {
        const ProxTek *tek = &g_array_index(report->teks, ProxTek, i);
        g_autofree char *key = g_base64_encode(tek->key, PROX_KEY_LEN);
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "key");
        json_builder_add_string_value(b, key);
        json_builder_set_member_name(b, "rollingStartNumber");
        json_builder_add_int_value(b, tek->rolling_start);
        json_builder_set_member_name(b, "rollingPeriod");
        json_builder_add_int_value(b, tek->rolling_period);
        /* Deprecated by GAEN; the authority derives the risk from the code's test type
         * and onset date. */
        json_builder_set_member_name(b, "transmissionRisk");
        json_builder_add_int_value(b, 0);
        json_builder_end_object(b);
        sodium_memzero(key, strlen(key));
    }
    json_builder_end_array(b);
    if (proxd_report_get_n_selected_checkins(report) > 0) {
        json_builder_set_member_name(b, "checkins");
        json_builder_begin_array(b);
        for (guint i = 0; i < report->checkins->len; i++) {
            if (!g_array_index(report->selected, gboolean, i))
                continue;
            const ProxCheckIn *c = &g_array_index(report->checkins, ProxCheckIn, i);
            char hex[2 * PROX_LOCATION_ID_LEN + 1];
            for (guint j = 0; j < PROX_LOCATION_ID_LEN; j++)
                g_snprintf(hex + 2 * j, 3, "%02x", c->location_id[j]);
            json_builder_begin_object(b);
            json_builder_set_member_name(b, "locationId");
            json_builder_add_string_value(b, hex);
            json_builder_set_member_name(b, "start");
            json_builder_add_int_value(b, c->arrived);
            json_builder_set_member_name(b, "end");
            json_builder_add_int_value(b, c->departed);
            json_builder_end_object(b);
            sodium_memzero(hex, sizeof hex);
        }
        json_builder_end_array(b);
    }
    if (padding != NULL) {
        json_builder_set_member_name(b, "padding");
        json_builder_add_string_value(b, padding);
    }
    json_builder_end_object(b);
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    g_autoptr(JsonGenerator) gen = json_generator_new();
    json_generator_set_root(gen, root);
    return json_generator_to_data(gen, NULL);
}

GBytes *proxd_report_build_body(const ProxdReport *report, const char *code, GError **error)
{
    g_return_val_if_fail(report != NULL, NULL);
    char *c = trimmed_code(code, error);
    if (c == NULL)
        return NULL;
    char *plain = body_json(report, c, "");
    gsize base = strlen(plain); /* with an empty padding member */
    wipe_free(plain);
    gsize pad = base < PROXD_REPORT_BODY_SIZE ? PROXD_REPORT_BODY_SIZE - base : 0;
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    g_autofree char *padding = g_malloc(pad + 1);
    for (gsize i = 0; i < pad; i++)
        padding[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
    padding[pad] = '\0';
    char *body = body_json(report, c, padding);
    wipe_free(c);
    gsize len = strlen(body);
    return g_bytes_new_with_free_func(body, len, wipe_free, body);
}

GVariant *proxd_report_preview(const ProxdReport *report)
{
    GVariantDict dict;
    g_variant_dict_init(&dict, NULL);
    guint n = report->teks->len;
    g_variant_dict_insert(&dict, "keys", "u", n);
    GVariantBuilder days;
    g_variant_builder_init(&days, G_VARIANT_TYPE("at"));
    for (guint i = 0; i < n; i++)
        g_variant_builder_add(
            &days, "t",
            (guint64)day_of_interval(g_array_index(report->teks, ProxTek, i).rolling_start));
    g_variant_dict_insert_value(&dict, "days", g_variant_builder_end(&days));
    if (report->cut_at != 0)
        g_variant_dict_insert(&dict, "cut-at", "t", (guint64)report->cut_at);
    if (n > 0) {
        g_variant_dict_insert(
            &dict, "first-day", "t",
            (guint64)day_of_interval(g_array_index(report->teks, ProxTek, 0).rolling_start));
        g_variant_dict_insert(
            &dict, "last-day", "t",
            (guint64)day_of_interval(g_array_index(report->teks, ProxTek, n - 1).rolling_start));
    }
    GVariantBuilder checkins;
    g_variant_builder_init(&checkins, G_VARIANT_TYPE("aa{sv}"));
    for (guint i = 0; i < report->checkins->len; i++) {
        const ProxCheckIn *c = &g_array_index(report->checkins, ProxCheckIn, i);
        GVariantDict entry;
        g_variant_dict_init(&entry, NULL);
        g_variant_dict_insert(&entry, "id", "x", c->id);
        g_variant_dict_insert(&entry, "arrived", "t", (guint64)MAX(c->arrived, 0));
        g_variant_dict_insert(&entry, "departed", "t", (guint64)MAX(c->departed, 0));
        g_variant_builder_add_value(&checkins, g_variant_dict_end(&entry));
    }
    g_variant_dict_insert_value(&dict, "checkins", g_variant_builder_end(&checkins));
    /* Every body has the same size (padding): say so without building one. */
    g_variant_dict_insert(&dict, "bytes", "u", (guint32)PROXD_REPORT_BODY_SIZE);
    return g_variant_dict_end(&dict);
}

/* ---- POST ---- */

static gboolean url_allowed(const char *url, gboolean allow_http, GError **error)
{
    g_autoptr(GUri) uri = g_uri_parse(url != NULL ? url : "", G_URI_FLAGS_NONE, NULL);
    const char *scheme = uri != NULL ? g_uri_get_scheme(uri) : NULL;
    if (scheme == NULL || g_uri_get_host(uri) == NULL ||
        (g_ascii_strcasecmp(scheme, "https") != 0 && g_ascii_strcasecmp(scheme, "http") != 0)) {
        g_set_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_INVALID_ARGUMENT,
                    "The key server URL must be an https URL");
        return FALSE;
    }
    if (g_ascii_strcasecmp(scheme, "http") == 0 && !allow_http) {
        /* The code and keys cross the network only encrypted; loopback (a local TLS
         * proxy, tests) is not the network. */
        const char *host = g_uri_get_host(uri);
        if (!proxd_http_host_is_loopback(host)) {
            g_set_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_INVALID_ARGUMENT,
                        "Refusing to send a report over plain http to %s: use https", host);
            return FALSE;
        }
    }
    return TRUE;
}

typedef struct {
    GByteArray *body;
    gboolean too_large;
    GCancellable *cancellable;
    char *retry_after;
} Answer;

static size_t on_answer(char *data, size_t size, size_t n, void *user_data)
{
    Answer *a = user_data;
    size_t len = size * n;
    if ((gsize)a->body->len + len > PROXD_REPORT_MAX_ANSWER) {
        a->too_large = TRUE;
        return 0;
    }
    g_byte_array_append(a->body, (const guint8 *)data, (guint)len);
    return len;
}

static size_t on_answer_header(char *data, size_t size, size_t n, void *user_data)
{
    Answer *a = user_data;
    size_t len = size * n;
    if (len > 12 && g_ascii_strncasecmp(data, "Retry-After:", 12) == 0) {
        g_free(a->retry_after);
        a->retry_after = g_strstrip(g_strndup(data + 12, len - 12));
        if (!g_str_is_ascii(a->retry_after) || strlen(a->retry_after) > 40)
            g_clear_pointer(&a->retry_after, g_free);
    }
    return len;
}

static int on_answer_progress(void *user_data, curl_off_t dltotal, curl_off_t dlnow,
                              curl_off_t ultotal, curl_off_t ulnow)
{
    Answer *a = user_data;
    return g_cancellable_is_cancelled(a->cancellable) ? 1 : 0;
}

/* The server's text, made safe to show: printable ASCII, bounded. */
static char *shown(const char *s)
{
    g_autofree char *copy = g_strndup(s != NULL ? s : "", 200);
    for (char *p = copy; *p != '\0'; p++) {
        if (!g_ascii_isprint(*p))
            *p = '?';
    }
    return g_steal_pointer(&copy);
}

static ProxdReportError error_for(long status, const char *reason)
{
    if (g_strcmp0(reason, "invalid_code") == 0)
        return PROXD_REPORT_ERROR_INVALID_CODE;
    if (g_strcmp0(reason, "code_used") == 0)
        return PROXD_REPORT_ERROR_CODE_USED;
    if (g_strcmp0(reason, "code_expired") == 0)
        return PROXD_REPORT_ERROR_CODE_EXPIRED;
    if (status == 429 || g_strcmp0(reason, "rate_limited") == 0)
        return PROXD_REPORT_ERROR_RATE_LIMITED;
    if (status >= 500)
        return PROXD_REPORT_ERROR_UNAVAILABLE;
    return PROXD_REPORT_ERROR_REJECTED;
}

static gboolean parse_answer(long status, const Answer *a, guint *inserted, GError **error)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *obj = NULL;
    if (a->body->len > 0 &&
        json_parser_load_from_data(parser, (const char *)a->body->data, a->body->len, NULL)) {
        JsonNode *root = json_parser_get_root(parser);
        if (root != NULL && JSON_NODE_HOLDS_OBJECT(root))
            obj = json_node_get_object(root);
    }
    if (status == 200) {
        JsonNode *n = obj != NULL ? json_object_get_member(obj, "inserted") : NULL;
        if (n == NULL || json_node_get_value_type(n) != G_TYPE_INT64 || json_node_get_int(n) < 0 ||
            json_node_get_int(n) > G_MAXUINT) {
            g_set_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_PROTOCOL,
                        "The key server accepted the report but its answer has no count");
            return FALSE;
        }
        if (inserted != NULL)
            *inserted = (guint)json_node_get_int(n);
        return TRUE;
    }
    const char *message = NULL, *reason = NULL;
    if (obj != NULL) {
        JsonNode *m = json_object_get_member(obj, "error");
        JsonNode *c = json_object_get_member(obj, "code");
        if (m != NULL && json_node_get_value_type(m) == G_TYPE_STRING)
            message = json_node_get_string(m);
        if (c != NULL && json_node_get_value_type(c) == G_TYPE_STRING)
            reason = json_node_get_string(c);
    }
    if (status < 400 || (reason == NULL && status < 500 && status != 429)) {
        g_set_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_PROTOCOL,
                    "Unexpected answer from the key server: HTTP status %ld", status);
        return FALSE;
    }
    g_autofree char *m = shown(message != NULL ? message : "no reason given");
    g_autofree char *r = shown(reason != NULL ? reason : "none");
    g_autofree char *retry =
        a->retry_after != NULL ? g_strdup_printf("; retry after %s s", a->retry_after) : NULL;
    g_set_error(error, PROXD_REPORT_ERROR, error_for(status, reason),
                "The key server refused the report: %s (%s, HTTP %ld)%s", m, r, status,
                retry != NULL ? retry : "");
    return FALSE;
}

gboolean proxd_report_send(const ProxdReport *report, const char *code,
                           const ProxdReportOptions *options, GCancellable *cancellable,
                           guint *inserted, GError **error)
{
    g_return_val_if_fail(report != NULL && options != NULL, FALSE);
    if (!url_allowed(options->url, options->allow_http, error))
        return FALSE;
    if (report->teks->len == 0) {
        g_set_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_NO_KEYS,
                    "There is no key to report: this device has not broadcast in the last "
                    "14 days");
        return FALSE;
    }
    g_autoptr(GBytes) body = proxd_report_build_body(report, code, error);
    if (body == NULL)
        return FALSE;
    proxd_http_global_init();

    CURL *c = curl_easy_init();
    if (c == NULL) {
        g_set_error(error, PROXD_REPORT_ERROR, PROXD_REPORT_ERROR_NETWORK,
                    "libcurl failed to start");
        return FALSE;
    }
    Answer a = {g_byte_array_new(), FALSE, cancellable, NULL};
    gsize len = 0;
    const char *data = g_bytes_get_data(body, &len);
    char errbuf[CURL_ERROR_SIZE] = "";
    guint connect_timeout = options->connect_timeout != 0 ? options->connect_timeout
                                                          : PROXD_REPORT_DEFAULT_CONNECT_TIMEOUT;
    guint timeout = options->timeout != 0 ? options->timeout : PROXD_REPORT_DEFAULT_TIMEOUT;
    struct curl_slist *headers =
        proxd_http_setup_json_post(c, options->url, data, len, connect_timeout, timeout, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_answer_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &a);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_answer_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &a);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);

    g_info("sending a report of %u keys and %u check-ins to %s", report->teks->len,
           proxd_report_get_n_selected_checkins(report), options->url);
    long status = 0;
    CURLcode rc = proxd_http_perform(c, headers, &status);

    gboolean ok = FALSE;
    g_autoptr(GError) local = NULL;
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        g_set_error(&local, G_IO_ERROR, G_IO_ERROR_CANCELLED, "The report was cancelled");
    } else if (rc != CURLE_OK) {
        g_set_error(&local, PROXD_REPORT_ERROR,
                    a.too_large ? PROXD_REPORT_ERROR_PROTOCOL : PROXD_REPORT_ERROR_NETWORK,
                    "Could not reach the key server: %s",
                    a.too_large ? "its answer is too large"
                                : (errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc)));
    } else {
        ok = parse_answer(status, &a, inserted, &local);
    }
    /* The server's answers never echo the code or keys. */
    if (ok)
        g_message("report accepted by %s", options->url);
    else
        g_message("report to %s failed: %s", options->url, local->message);
    if (local != NULL)
        g_propagate_error(error, g_steal_pointer(&local));
    g_byte_array_unref(a.body);
    g_free(a.retry_after);
    return ok;
}

/* ---- async ---- */

typedef struct {
    ProxdReport *report;
    char *code;
    char *url;
    ProxdReportOptions options;
} SendData;

static void send_data_free(gpointer p)
{
    SendData *d = p;
    proxd_report_free(d->report);
    if (d->code != NULL)
        wipe_free(d->code);
    g_free(d->url);
    g_free(d);
}

static void send_thread(GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
    SendData *d = task_data;
    guint inserted = 0;
    GError *error = NULL;
    if (proxd_report_send(d->report, d->code, &d->options, cancellable, &inserted, &error))
        g_task_return_int(task, inserted);
    else
        g_task_return_error(task, error);
}

void proxd_report_send_async(ProxdReport *report, const char *code,
                             const ProxdReportOptions *options, GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data)
{
    g_return_if_fail(report != NULL && options != NULL);
    proxd_http_global_init();
    SendData *d = g_new0(SendData, 1);
    d->report = report;
    d->code = g_strdup(code != NULL ? code : "");
    d->url = g_strdup(options->url);
    d->options = *options;
    d->options.url = d->url;
    GTask *task = g_task_new(NULL, cancellable, callback, user_data);
    g_task_set_source_tag(task, proxd_report_send_async);
    g_task_set_task_data(task, d, send_data_free);
    g_task_run_in_thread(task, send_thread);
    g_object_unref(task);
}

gboolean proxd_report_send_finish(GAsyncResult *result, guint *inserted, GError **error)
{
    g_return_val_if_fail(g_task_is_valid(result, NULL), FALSE);
    gssize n = g_task_propagate_int(G_TASK(result), error);
    if (n < 0)
        return FALSE;
    if (inserted != NULL)
        *inserted = (guint)n;
    return TRUE;
}
