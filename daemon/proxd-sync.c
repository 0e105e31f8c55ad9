/* proxd-sync.c - key-list sync: index, new files, verify, import, detect (see the header
 * for the rules, the threading and the schedule). */
#define G_LOG_DOMAIN "proxd-sync"

#include "proxd-sync.h"

#include <curl/curl.h>
#include <string.h>

#define PROGRESS_INTERVAL_US (100 * G_TIME_SPAN_MILLISECOND)
#define INDEX_STATE_GROUP "index"

GQuark proxd_sync_error_quark(void)
{
    return g_quark_from_static_string("proxd-sync-error-quark");
}

const char *proxd_sync_phase_to_string(ProxdSyncPhase phase)
{
    switch (phase) {
    case PROXD_SYNC_PHASE_INDEX:
        return "index";
    case PROXD_SYNC_PHASE_FILES:
        return "files";
    case PROXD_SYNC_PHASE_DETECT:
        return "detect";
    case PROXD_SYNC_PHASE_DONE:
        return "done";
    }
    return "unknown";
}

/* ---- result ---- */

static void failure_free(gpointer p)
{
    ProxdSyncFailure *f = p;
    g_free(f->name);
    g_free(f->reason);
    g_free(f);
}

static void result_clear(gpointer p)
{
    ProxdSyncResult *r = p;
    g_clear_pointer(&r->failures, g_ptr_array_unref);
    g_clear_error(&r->error);
    prox_detect_result_clear(&r->detect);
    g_clear_pointer(&r->venue_exposures, g_array_unref);
}

static ProxdSyncResult *result_new(void)
{
    ProxdSyncResult *r = g_atomic_rc_box_new0(ProxdSyncResult);
    r->failures = g_ptr_array_new_with_free_func(failure_free);
    r->venue_exposures = g_array_new(FALSE, FALSE, sizeof(ProxVenueExposure));
    return r;
}

ProxdSyncResult *proxd_sync_result_ref(ProxdSyncResult *result)
{
    return g_atomic_rc_box_acquire(result);
}

void proxd_sync_result_unref(ProxdSyncResult *result)
{
    if (result != NULL)
        g_atomic_rc_box_release_full(result, result_clear);
}

G_DEFINE_BOXED_TYPE(ProxdSyncResult, proxd_sync_result, proxd_sync_result_ref,
                    proxd_sync_result_unref)

/* ---- index text ---- */

static gboolean segment_valid(const char *s, gsize len)
{
    /* No empty segment, and none starting with '.': rules out ".", ".." and hidden files
     * such as the publisher's .publish.lock. */
    if (len == 0 || s[0] == '.')
        return FALSE;
    for (gsize i = 0; i < len; i++) {
        if (!g_ascii_isalnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return FALSE;
    }
    return TRUE;
}

static gboolean name_valid(const char *s, gsize len)
{
    if (len == 0 || len > PROXD_SYNC_MAX_NAME_LEN)
        return FALSE;
    gsize start = 0;
    for (gsize i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            if (!segment_valid(s + start, i - start))
                return FALSE;
            start = i + 1;
        }
    }
    return TRUE;
}

GPtrArray *proxd_sync_index_parse(const char *text, gsize len, GError **error)
{
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    if (memchr(text, '\0', len) != NULL) {
        g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INDEX,
                    "The index contains a NUL byte");
        return NULL;
    }
    gsize pos = 0;
    guint line = 0;
    while (pos < len) {
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        gsize line_len = nl != NULL ? (gsize)(nl - start) : len - pos;
        pos += line_len + (nl != NULL ? 1 : 0);
        line++;
        while (line_len > 0 && g_ascii_isspace(start[line_len - 1]))
            line_len--;
        while (line_len > 0 && g_ascii_isspace(start[0])) {
            start++;
            line_len--;
        }
        if (line_len == 0)
            continue;
        if (!name_valid(start, line_len)) {
            g_autofree char *shown = g_strndup(start, MIN(line_len, 80));
            g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INDEX,
                        "Index line %u is not a file name this client accepts: \"%s\"", line,
                        g_strcanon(shown, G_CSET_a_2_z G_CSET_A_2_Z G_CSET_DIGITS "./_-:", '?'));
            return NULL;
        }
        if (names->len >= PROXD_SYNC_MAX_INDEX_NAMES) {
            g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_TOO_LARGE,
                        "The index lists more than %u files", PROXD_SYNC_MAX_INDEX_NAMES);
            return NULL;
        }
        char *name = g_strndup(start, line_len);
        if (names->len > 0 && strcmp(names->pdata[names->len - 1], name) >= 0) {
            g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INDEX,
                        "Index line %u (%s) does not sort after the line before it (%s): "
                        "files must be listed oldest first, each once",
                        line, name, (const char *)names->pdata[names->len - 1]);
            g_free(name);
            return NULL;
        }
        g_ptr_array_add(names, name);
    }
    return g_steal_pointer(&names);
}

gboolean proxd_sync_index_check(GPtrArray *names, GPtrArray *previous, const char *newest_seen,
                                GError **error)
{
    g_autoptr(GHashTable) now_listed = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < names->len; i++)
        g_hash_table_add(now_listed, names->pdata[i]);
    g_autoptr(GHashTable) before = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; previous != NULL && i < previous->len; i++)
        g_hash_table_add(before, previous->pdata[i]);

    /* Files are only appended: a name we never saw must be newer than all we saw. */
    for (guint i = 0; newest_seen != NULL && i < names->len; i++) {
        const char *name = names->pdata[i];
        if (!g_hash_table_contains(before, name) && strcmp(name, newest_seen) <= 0) {
            g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_ROLLBACK,
                        "The index went backwards: %s is new but not newer than %s, which an "
                        "earlier index already listed",
                        name, newest_seen);
            return FALSE;
        }
    }
    /* Files only expire oldest first: what stays of the previous index is its newest part. */
    const char *kept = NULL;
    for (guint i = 0; previous != NULL && i < previous->len; i++) {
        const char *name = previous->pdata[i];
        if (g_hash_table_contains(now_listed, name)) {
            kept = name;
        } else if (kept != NULL) {
            g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_ROLLBACK,
                        "The index went backwards: %s is no longer listed while the older %s "
                        "still is",
                        name, kept);
            return FALSE;
        }
    }
    return TRUE;
}

/* ---- index state (sync state of the store) ---- */

typedef struct {
    char *etag;       /* of the last accepted index; NULL when none */
    char *newest;     /* greatest name any accepted index held */
    GPtrArray *names; /* the last accepted index */
} IndexState;

static void index_state_clear(IndexState *s)
{
    g_clear_pointer(&s->etag, g_free);
    g_clear_pointer(&s->newest, g_free);
    g_clear_pointer(&s->names, g_ptr_array_unref);
}

static gboolean index_state_load(ProxStore *store, const char *source, IndexState *s,
                                 GError **error)
{
    *s = (IndexState){0};
    s->names = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *key = g_strconcat(PROXD_SYNC_INDEX_STATE_PREFIX, source, NULL);
    g_autofree char *text = NULL;
    if (!prox_store_get_sync_state(store, key, &text, error))
        return FALSE;
    if (text == NULL)
        return TRUE;
    g_autoptr(GKeyFile) kf = g_key_file_new();
    if (!g_key_file_load_from_data(kf, text, (gsize)-1, G_KEY_FILE_NONE, NULL)) {
        /* Unreadable state: start over as on a first sync (rollback protection is lost for
         * this one index; every file is still verified). */
        g_warning("sync state of %s is unreadable; starting afresh", source);
        return TRUE;
    }
    s->etag = g_key_file_get_string(kf, INDEX_STATE_GROUP, "etag", NULL);
    s->newest = g_key_file_get_string(kf, INDEX_STATE_GROUP, "newest", NULL);
    gsize n = 0;
    g_auto(GStrv) names = g_key_file_get_string_list(kf, INDEX_STATE_GROUP, "names", &n, NULL);
    for (gsize i = 0; i < n; i++)
        g_ptr_array_add(s->names, g_strdup(names[i]));
    return TRUE;
}

static gboolean index_state_save(ProxStore *store, const char *source, const IndexState *s,
                                 GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    if (s->etag != NULL)
        g_key_file_set_string(kf, INDEX_STATE_GROUP, "etag", s->etag);
    if (s->newest != NULL)
        g_key_file_set_string(kf, INDEX_STATE_GROUP, "newest", s->newest);
    g_key_file_set_string_list(kf, INDEX_STATE_GROUP, "names", (const char *const *)s->names->pdata,
                               s->names->len);
    g_autofree char *text = g_key_file_to_data(kf, NULL, NULL);
    g_autofree char *key = g_strconcat(PROXD_SYNC_INDEX_STATE_PREFIX, source, NULL);
    /* One value: the etag never outlives the index it belongs to. */
    return prox_store_set_sync_state(store, key, text, error);
}

/* ---- the object ---- */

struct _ProxdSync {
    GObject parent_instance;
    GMainContext *context;

    /* Immutable after construction: the worker reads them. */
    char *url;
    char *db_path;
    ProxStoreOptions store_options;
    guint connect_timeout, transfer_timeout, run_timeout, stall_timeout;
    guint64 max_index_bytes, max_file_bytes;
    guint interval, retry_min, retry_max;
    double jitter;
    ProxExportKeyring *keyring;

    /* Main context only; copied into each run. */
    ProxRiskParameters risk;
    ProxCalibrationConfidence confidence;
    guint detect_threads;
    gboolean venues_enabled;
    ProxdVenueOptions venues;
    ProxdSyncNowFunc now_func;
    gpointer now_data;
    ProxRandomFunc random_func;
    gpointer random_data;

    gboolean scheduled; /* next_attempt is set */
    gint64 next_attempt;
    guint failures;

    gboolean running;
    guint serial; /* of the current run: drops progress of an older one */
    GPtrArray *waiters;
    GCancellable *run_cancellable;
    GCancellable *caller_cancellable;
    gulong caller_cancel_id;
};

G_DEFINE_TYPE(ProxdSync, proxd_sync, G_TYPE_OBJECT)

enum { SIGNAL_PROGRESS, SIGNAL_FINISHED, N_SIGNALS };
static guint signals[N_SIGNALS];

static gint64 wall_clock(gpointer user_data)
{
    return g_get_real_time() / G_USEC_PER_SEC;
}

static void proxd_sync_finalize(GObject *object)
{
    ProxdSync *self = PROXD_SYNC(object);
    /* A run holds a reference: nothing runs when we get here. */
    g_clear_pointer(&self->waiters, g_ptr_array_unref);
    g_clear_object(&self->run_cancellable);
    g_clear_pointer(&self->keyring, prox_export_keyring_free);
    g_clear_pointer(&self->context, g_main_context_unref);
    g_free(self->url);
    g_free(self->db_path);
    G_OBJECT_CLASS(proxd_sync_parent_class)->finalize(object);
}

static void proxd_sync_class_init(ProxdSyncClass *klass)
{
    G_OBJECT_CLASS(klass)->finalize = proxd_sync_finalize;
    /* Before any thread exists: curl_global_init is not thread-safe on every backend. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signals[SIGNAL_PROGRESS] =
        g_signal_new("progress", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                     G_TYPE_NONE, 4, G_TYPE_UINT, G_TYPE_UINT, G_TYPE_UINT, G_TYPE_UINT64);
    signals[SIGNAL_FINISHED] =
        g_signal_new("finished", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                     G_TYPE_NONE, 1, PROXD_TYPE_SYNC_RESULT);
}

static void proxd_sync_init(ProxdSync *self)
{
    self->waiters = g_ptr_array_new_with_free_func(g_object_unref);
    self->now_func = wall_clock;
    self->random_func = prox_random_system;
    prox_risk_parameters_default(&self->risk);
    self->confidence = PROX_CALIBRATION_LOW;
    self->venues_enabled = TRUE;
}

/* The index URL for a configured URL: itself when it names a .txt file, else the
 * directory's index.txt. */
static char *index_url_for(const char *url, GError **error)
{
    g_autoptr(GError) local = NULL;
    g_autoptr(GUri) uri = g_uri_parse(url, G_URI_FLAGS_NONE, &local);
    if (uri == NULL) {
        g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INVALID_ARGUMENT,
                    "Key list URL %s: %s", url, local->message);
        return NULL;
    }
    const char *scheme = g_uri_get_scheme(uri);
    if (g_ascii_strcasecmp(scheme, "http") != 0 && g_ascii_strcasecmp(scheme, "https") != 0 &&
        g_ascii_strcasecmp(scheme, "file") != 0) {
        g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INVALID_ARGUMENT,
                    "Key list URL %s: only http, https and file URLs are supported", url);
        return NULL;
    }
    if (g_uri_get_query(uri) != NULL || g_uri_get_fragment(uri) != NULL) {
        g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INVALID_ARGUMENT,
                    "Key list URL %s: a query or fragment is not supported", url);
        return NULL;
    }
    const char *path = g_uri_get_path(uri);
    if (g_str_has_suffix(path, ".txt"))
        return g_uri_to_string(uri);
    g_autofree char *dir =
        g_str_has_suffix(path, "/") ? g_strdup(path) : g_strconcat(path, "/", NULL);
    g_autofree char *index_path = g_strconcat(dir, "index.txt", NULL);
    g_autoptr(GUri) index =
        g_uri_build(G_URI_FLAGS_NONE, g_uri_get_scheme(uri), g_uri_get_userinfo(uri),
                    g_uri_get_host(uri), g_uri_get_port(uri), index_path, NULL, NULL);
    return g_uri_to_string(index);
}

ProxdSync *proxd_sync_new(const ProxdSyncOptions *options, ProxExportKeyring *keyring,
                          GError **error)
{
    g_return_val_if_fail(options != NULL, NULL);
    g_autoptr(ProxExportKeyring) owned = keyring;
    if (options->db_path == NULL || options->url == NULL) {
        g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INVALID_ARGUMENT,
                    "The key list URL and the store path are required");
        return NULL;
    }
    if (keyring == NULL || prox_export_keyring_size(keyring) == 0) {
        g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INVALID_ARGUMENT,
                    "No authority key is pinned: key lists cannot be verified");
        return NULL;
    }
    if (options->risk != NULL && !prox_risk_parameters_validate(options->risk, error))
        return NULL;
    g_autofree char *url = index_url_for(options->url, error);
    if (url == NULL)
        return NULL;

    ProxdSync *self = g_object_new(PROXD_TYPE_SYNC, NULL);
    self->context = g_main_context_ref_thread_default();
    self->url = g_steal_pointer(&url);
    self->db_path = g_strdup(options->db_path);
    self->store_options = options->store_options;
    self->keyring = g_steal_pointer(&owned);
#define OR(v, d) ((v) != 0 ? (v) : (d))
    self->connect_timeout = OR(options->connect_timeout, PROXD_SYNC_DEFAULT_CONNECT_TIMEOUT);
    self->transfer_timeout = OR(options->transfer_timeout, PROXD_SYNC_DEFAULT_TRANSFER_TIMEOUT);
    self->run_timeout = OR(options->run_timeout, PROXD_SYNC_DEFAULT_RUN_TIMEOUT);
    self->stall_timeout = OR(options->stall_timeout, PROXD_SYNC_DEFAULT_STALL_TIMEOUT);
    self->max_index_bytes = OR(options->max_index_bytes, PROXD_SYNC_DEFAULT_MAX_INDEX_BYTES);
    self->max_file_bytes = OR(options->max_file_bytes, PROXD_SYNC_DEFAULT_MAX_FILE_BYTES);
    self->interval = OR(options->interval, PROXD_SYNC_DEFAULT_INTERVAL);
    self->retry_min = OR(options->retry_min, PROXD_SYNC_DEFAULT_RETRY_MIN);
    self->retry_max = MAX(OR(options->retry_max, PROXD_SYNC_DEFAULT_RETRY_MAX), self->retry_min);
#undef OR
    self->jitter =
        options->jitter == 0 ? PROXD_SYNC_DEFAULT_JITTER : CLAMP(options->jitter, 0.0, 1.0);
    if (options->risk != NULL)
        self->risk = *options->risk;
    self->confidence = options->confidence;
    self->detect_threads = options->detect_threads;
    return self;
}

ProxExportKeyring *proxd_sync_keyring_load(const char *const *entries, GError **error)
{
    g_autoptr(ProxExportKeyring) keyring = prox_export_keyring_new();
    for (guint i = 0; entries != NULL && entries[i] != NULL; i++) {
        const char *entry = entries[i];
        g_auto(GStrv) parts = g_strsplit(entry, ":", 3);
        gboolean pinned = g_strv_length(parts) == 3 && parts[0][0] != '\0' && parts[1][0] != '\0' &&
                          parts[2][0] != '\0';
        const char *path = pinned ? parts[2] : entry;
        if (!pinned) {
            g_autofree char *head = NULL;
            gsize len = 0;
            if (!g_file_get_contents(path, &head, &len, error))
                return NULL;
            if (g_str_has_prefix(head, "-----BEGIN")) {
                g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INVALID_ARGUMENT,
                            "%s is a PEM key: give it as KEY_ID:VERSION:%s so it is pinned to "
                            "the key id and version the authority signs with",
                            path, path);
                return NULL;
            }
        }
        if (!prox_export_keyring_add_file(keyring, pinned ? parts[0] : NULL,
                                          pinned ? parts[1] : NULL, path, error))
            return NULL;
    }
    return g_steal_pointer(&keyring);
}

void proxd_sync_set_clock(ProxdSync *self, ProxdSyncNowFunc now, gpointer user_data)
{
    g_return_if_fail(PROXD_IS_SYNC(self) && !self->running);
    self->now_func = now != NULL ? now : wall_clock;
    self->now_data = user_data;
}

void proxd_sync_set_random(ProxdSync *self, ProxRandomFunc random, gpointer user_data)
{
    g_return_if_fail(PROXD_IS_SYNC(self) && !self->running);
    self->random_func = random != NULL ? random : prox_random_system;
    self->random_data = user_data;
}

void proxd_sync_set_risk(ProxdSync *self, const ProxRiskParameters *params,
                         ProxCalibrationConfidence confidence)
{
    g_return_if_fail(PROXD_IS_SYNC(self));
    if (params != NULL)
        self->risk = *params;
    else
        prox_risk_parameters_default(&self->risk);
    self->confidence = confidence;
}

void proxd_sync_set_venues(ProxdSync *self, gboolean enabled, const ProxdVenueOptions *options)
{
    g_return_if_fail(PROXD_IS_SYNC(self));
    self->venues_enabled = enabled;
    self->venues = options != NULL ? *options : (ProxdVenueOptions){0};
}

const char *proxd_sync_get_source(ProxdSync *self)
{
    g_return_val_if_fail(PROXD_IS_SYNC(self), NULL);
    return self->url;
}

gboolean proxd_sync_is_running(ProxdSync *self)
{
    g_return_val_if_fail(PROXD_IS_SYNC(self), FALSE);
    return self->running;
}

void proxd_sync_cancel(ProxdSync *self)
{
    g_return_if_fail(PROXD_IS_SYNC(self));
    if (self->run_cancellable != NULL)
        g_cancellable_cancel(self->run_cancellable);
}

guint proxd_sync_get_failures(ProxdSync *self)
{
    g_return_val_if_fail(PROXD_IS_SYNC(self), 0);
    return self->failures;
}

/* ---- schedule ---- */

static double random01(ProxdSync *self)
{
    guint32 v = 0;
    self->random_func(&v, sizeof v, self->random_data);
    return (double)v / (double)G_MAXUINT32;
}

gint64 proxd_sync_backoff(guint retry_min, guint retry_max, guint failures, double random01)
{
    gint64 delay = MAX(retry_min, 1);
    for (guint i = 1; i < failures && delay < (gint64)retry_max; i++)
        delay *= 2;
    delay = MIN(delay, (gint64)MAX(retry_max, retry_min));
    /* Equal jitter: never sooner than half the delay, so retries stay spaced, and spread
     * over the other half, so a fleet that failed together does not retry together. */
    gint64 half = delay / 2;
    return half + (gint64)((double)(delay - half) * CLAMP(random01, 0.0, 1.0));
}

gint64 proxd_sync_get_next_attempt(ProxdSync *self)
{
    g_return_val_if_fail(PROXD_IS_SYNC(self), 0);
    if (!self->scheduled) {
        /* First run soon, but not at the same second as every device that booted with us. */
        self->next_attempt =
            self->now_func(self->now_data) + (gint64)((double)self->retry_min * random01(self));
        self->scheduled = TRUE;
    }
    return self->next_attempt;
}

static void schedule_after(ProxdSync *self, const ProxdSyncResult *r)
{
    if (r->error == NULL) {
        self->failures = 0;
        gint64 spread = (gint64)((double)self->interval * self->jitter * random01(self));
        self->next_attempt = r->finished + self->interval - spread;
    } else {
        self->failures++;
        self->next_attempt = r->finished + proxd_sync_backoff(self->retry_min, self->retry_max,
                                                              self->failures, random01(self));
        if (r->retry_after > 0)
            self->next_attempt =
                MAX(self->next_attempt, r->finished + MIN(r->retry_after, (gint64)self->retry_max));
    }
    self->scheduled = TRUE;
}

/* ---- a run (worker thread) ---- */

typedef struct {
    ProxdSync *self; /* immutable fields only, off the main context */
    ProxdSyncRunFlags flags;
    ProxRiskParameters risk;
    ProxDetectOptions detect;
    gboolean venues_enabled;
    ProxdVenueOptions venues;
    ProxdSyncNowFunc now_func;
    gpointer now_data;
    gint64 now;
    guint serial;
    GCancellable *cancellable;
    gint64 deadline_us;
    CURL *curl;
    char errbuf[CURL_ERROR_SIZE];
    ProxdSyncResult *result;

    ProxdSyncPhase phase;
    guint files_done, files_total;
    guint64 bytes_done;     /* completed transfers */
    guint64 bytes_transfer; /* the current one so far */
    gint64 last_progress_us;
} Run;

static void run_free(gpointer p)
{
    Run *run = p;
    if (run->curl != NULL)
        curl_easy_cleanup(run->curl);
    g_clear_pointer(&run->result, proxd_sync_result_unref);
    g_clear_object(&run->cancellable);
    g_clear_object(&run->self);
    g_free(run);
}

typedef struct {
    ProxdSync *self;
    guint serial;
    ProxdSyncPhase phase;
    guint files_done, files_total;
    guint64 bytes;
} ProgressMsg;

static void progress_msg_free(gpointer p)
{
    ProgressMsg *m = p;
    g_object_unref(m->self);
    g_free(m);
}

static gboolean progress_dispatch(gpointer p)
{
    ProgressMsg *m = p;
    if (m->self->running && m->serial == m->self->serial)
        g_signal_emit(m->self, signals[SIGNAL_PROGRESS], 0, (guint)m->phase, m->files_done,
                      m->files_total, m->bytes);
    return G_SOURCE_REMOVE;
}

static void progress(Run *run, gboolean force)
{
    gint64 t = g_get_monotonic_time();
    if (!force && t - run->last_progress_us < PROGRESS_INTERVAL_US)
        return;
    run->last_progress_us = t;
    ProgressMsg *m = g_new0(ProgressMsg, 1);
    m->self = g_object_ref(run->self);
    m->serial = run->serial;
    m->phase = run->phase;
    m->files_done = run->files_done;
    m->files_total = run->files_total;
    m->bytes = run->bytes_done + run->bytes_transfer;
    /* Always through a source: g_main_context_invoke() would call us right here in the
     * worker when the main context happens to be free. */
    GSource *source = g_idle_source_new();
    g_source_set_priority(source, G_PRIORITY_DEFAULT);
    g_source_set_callback(source, progress_dispatch, m, progress_msg_free);
    g_source_attach(source, run->self->context);
    g_source_unref(source);
}

typedef struct {
    Run *run;
    GByteArray *body;
    guint64 cap;
    gboolean too_large;
    char *etag;
    gint64 retry_after;
} Transfer;

static void transfer_clear(Transfer *t)
{
    g_clear_pointer(&t->body, g_byte_array_unref);
    g_clear_pointer(&t->etag, g_free);
}

static size_t on_body(char *data, size_t size, size_t n, void *user_data)
{
    Transfer *t = user_data;
    size_t len = size * n;
    if ((guint64)t->body->len + len > t->cap) {
        t->too_large = TRUE;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    g_byte_array_append(t->body, (const guint8 *)data, (guint)len);
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *user_data)
{
    Transfer *t = user_data;
    size_t len = size * n;
    g_autofree char *line = g_strndup(data, len);
    g_strstrip(line);
    if (g_str_has_prefix(line, "HTTP/")) {
        /* A new response (after a redirect or 100 Continue): forget the previous one's. */
        g_clear_pointer(&t->etag, g_free);
        t->retry_after = 0;
    } else if (g_ascii_strncasecmp(line, "ETag:", 5) == 0) {
        g_free(t->etag);
        t->etag = g_strdup(g_strchug(line + 5));
        if (t->etag[0] == '\0' || strpbrk(t->etag, "\r\n") != NULL)
            g_clear_pointer(&t->etag, g_free);
    } else if (g_ascii_strncasecmp(line, "Retry-After:", 12) == 0) {
        guint64 v = 0;
        /* Seconds only; an HTTP date is ignored (the backoff applies). */
        if (g_ascii_string_to_unsigned(g_strchug(line + 12), 10, 0, 7 * 86400, &v, NULL))
            t->retry_after = (gint64)v;
    }
    return len;
}

static int on_xferinfo(void *user_data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    Transfer *t = user_data;
    if (g_cancellable_is_cancelled(t->run->cancellable))
        return 1; /* CURLE_ABORTED_BY_CALLBACK */
    t->run->bytes_transfer = dlnow > 0 ? (guint64)dlnow : 0;
    progress(t->run, FALSE);
    return 0;
}

static gboolean is_http(const char *url)
{
    return g_ascii_strncasecmp(url, "http://", 7) == 0 ||
           g_ascii_strncasecmp(url, "https://", 8) == 0;
}

/* One GET. TRUE when a response arrived (any status, *status = 0 for file://); FALSE with
 * an error on a transport failure, *fatal when it means the server is out of reach (stop
 * the run). */
static gboolean fetch(Run *run, const char *url, const char *if_none_match, guint64 cap,
                      Transfer *t, long *status, gboolean *fatal, GError **error)
{
    ProxdSync *self = run->self;
    *fatal = FALSE;
    *status = 0;
    t->run = run;
    t->body = g_byte_array_new();
    t->cap = cap;
    run->bytes_transfer = 0;

    gint64 remaining_ms = (run->deadline_us - g_get_monotonic_time()) / 1000;
    if (remaining_ms <= 0) {
        *fatal = TRUE;
        g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_NETWORK,
                    "The sync took longer than %u s", self->run_timeout);
        return FALSE;
    }
    if (run->curl == NULL)
        run->curl = curl_easy_init();
    else
        curl_easy_reset(run->curl); /* keeps the connection cache */
    CURL *c = run->curl;
    if (c == NULL) {
        *fatal = TRUE;
        g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_NETWORK, "libcurl failed to start");
        return FALSE;
    }
    struct curl_slist *headers = NULL;
    if (if_none_match != NULL && is_http(url)) {
        g_autofree char *h = g_strdup_printf("If-None-Match: %s", if_none_match);
        headers = curl_slist_append(headers, h);
    }
    run->errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS,
                     (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS | CURLPROTO_FILE));
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)self->connect_timeout * 1000);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     (long)MIN((gint64)self->transfer_timeout * 1000, remaining_ms));
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)self->stall_timeout);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cap);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, ""); /* the index compresses well */
    curl_easy_setopt(c, CURLOPT_USERAGENT, "proxd/" PROXD_VERSION);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, run->errbuf);
    /* Proxies: CURLOPT_PROXY is deliberately not set, so libcurl takes http_proxy,
     * https_proxy and no_proxy from the environment. */

    CURLcode rc = curl_easy_perform(c);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(headers);
    curl_off_t downloaded = 0;
    curl_easy_getinfo(c, CURLINFO_SIZE_DOWNLOAD_T, &downloaded);
    run->bytes_done += downloaded > 0 ? (guint64)downloaded : 0;
    run->bytes_transfer = 0;
    run->result->bytes = run->bytes_done;

    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        return TRUE;
    }
    const char *detail = run->errbuf[0] != '\0' ? run->errbuf : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_ABORTED_BY_CALLBACK:
        *fatal = TRUE;
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "The sync was cancelled");
        return FALSE;
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
        if (t->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
            g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_TOO_LARGE,
                        "larger than the limit of %" G_GUINT64_FORMAT " bytes", cap);
            return FALSE;
        }
        break;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
        *fatal = TRUE;
        break;
    default:
        break;
    }
    g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_NETWORK, "%s (curl error %d)", detail,
                (int)rc);
    return FALSE;
}

static void add_failure(Run *run, const char *name, const char *reason)
{
    ProxdSyncFailure *f = g_new0(ProxdSyncFailure, 1);
    f->name = g_strdup(name);
    f->reason = g_strdup(reason);
    g_ptr_array_add(run->result->failures, f);
    run->result->files_failed++;
    g_warning("key list %s from %s: %s; nothing imported from it, retried at the next sync", name,
              run->self->url, reason);
}

static void set_run_error(Run *run, GError *error)
{
    if (run->result->error == NULL)
        run->result->error = error;
    else
        g_error_free(error);
}

/* Fetches and checks the index; on success *names is what to import from. */
static gboolean sync_index(Run *run, ProxStore *store, GPtrArray **names, GError **error)
{
    ProxdSync *self = run->self;
    IndexState state;
    if (!index_state_load(store, self->url, &state, error))
        return FALSE;
    Transfer t = {0};
    long status = 0;
    gboolean fatal = FALSE;
    /* An ETag only counts with the index it came with. */
    const char *etag = state.names->len > 0 || state.newest != NULL ? state.etag : NULL;
    g_autoptr(GError) local = NULL;
    g_autoptr(GPtrArray) parsed = NULL;
    gboolean ok = FALSE;
    if (!fetch(run, self->url, etag, self->max_index_bytes, &t, &status, &fatal, &local)) {
        if (g_error_matches(local, G_IO_ERROR, G_IO_ERROR_CANCELLED))
            g_propagate_error(error, g_steal_pointer(&local));
        else
            g_set_error(error, local->domain, local->code, "Index %s: %s", self->url,
                        local->message);
        goto out;
    }
    run->result->retry_after = t.retry_after;
    if (status == 304 && etag != NULL) {
        run->result->not_modified = TRUE;
        *names = g_steal_pointer(&state.names);
        ok = TRUE;
        goto out;
    }
    if (status != 200 && !(status == 0 && !is_http(self->url))) {
        g_set_error(error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_HTTP, "Index %s: HTTP status %ld",
                    self->url, status);
        goto out;
    }
    parsed = proxd_sync_index_parse((const char *)t.body->data, t.body->len, &local);
    if (parsed == NULL || !proxd_sync_index_check(parsed, state.names, state.newest, &local)) {
        g_set_error(error, local->domain, local->code, "Index %s: %s", self->url, local->message);
        goto out;
    }
    /* Accepted: remember it (with its ETag) before importing anything from it. */
    IndexState accepted = {0};
    accepted.etag = t.etag;
    accepted.names = parsed;
    accepted.newest = state.newest;
    if (parsed->len > 0 &&
        (state.newest == NULL || strcmp(parsed->pdata[parsed->len - 1], state.newest) > 0))
        accepted.newest = parsed->pdata[parsed->len - 1];
    if (!index_state_save(store, self->url, &accepted, error))
        goto out;
    *names = g_steal_pointer(&parsed);
    ok = TRUE;
out:
    transfer_clear(&t);
    index_state_clear(&state);
    return ok;
}

/* Downloads, verifies and imports one file; a failure is recorded in the result. *fatal (with
 * *fatal_error) means the run must stop: the server is out of reach or the store fails. */
static void sync_file(Run *run, ProxStore *store, const char *name, gboolean *fatal,
                      GError **fatal_error)
{
    ProxdSync *self = run->self;
    g_autoptr(GError) error = NULL;
    g_autofree char *url = g_uri_resolve_relative(self->url, name, G_URI_FLAGS_NONE, &error);
    if (url == NULL) {
        add_failure(run, name, error->message);
        return;
    }
    Transfer t = {0};
    long status = 0;
    if (!fetch(run, url, NULL, self->max_file_bytes, &t, &status, fatal, &error)) {
        add_failure(run, name, error->message);
        if (*fatal)
            g_propagate_error(fatal_error, g_steal_pointer(&error));
        transfer_clear(&t);
        return;
    }
    if (status != 200 && !(status == 0 && !is_http(url))) {
        g_autofree char *reason = g_strdup_printf("HTTP status %ld", status);
        add_failure(run, name, reason);
        transfer_clear(&t);
        return;
    }
    g_autoptr(ProxExport) export = NULL;
    gboolean verified =
        prox_export_read_bytes(t.body->data, t.body->len, self->keyring, &export, &error);
    transfer_clear(&t);
    if (!verified) {
        g_autofree char *reason = g_strdup_printf("verification failed: %s", error->message);
        add_failure(run, name, reason);
        return;
    }
    gint64 batch_id = 0;
    guint64 added = 0, revised = 0, warnings_added = 0;
    /* Revised keys (GAEN revised_keys, REVOKED) update or withdraw stored ones; the new
     * batch id makes detection re-match everything, so their windows follow. */
    if (!prox_store_import_batch_revised(
            store, self->url, name, run->now, (const ProxDiagnosisKey *)(void *)export->keys->data,
            export->keys->len, export->n_revised,
            (const ProxVenueWarning *)(void *)export->venue_warnings->data,
            export->venue_warnings->len, &batch_id, &added, &revised, &warnings_added, &error)) {
        g_autofree char *reason = g_strdup_printf("import failed: %s", error->message);
        add_failure(run, name, reason);
        /* A store that fails will fail the next file too. */
        if (error->domain == PROX_ERROR && error->code != PROX_ERROR_INVALID_ARGUMENT) {
            *fatal = TRUE;
            g_set_error(fatal_error, PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_STORE, "%s",
                        error->message);
        }
        return;
    }
    run->result->files_imported++;
    run->result->keys_read += export->keys->len;
    run->result->keys_added += added;
    run->result->warnings_read += export->venue_warnings->len;
    run->result->warnings_added += warnings_added;
    g_debug("key list %s: %u keys, %" G_GUINT64_FORMAT " new, %" G_GUINT64_FORMAT
            " revised or revoked; %u warnings, %" G_GUINT64_FORMAT " new",
            name, export->keys->len, added, revised, export->venue_warnings->len, warnings_added);
}

static void sync_venues(Run *run, ProxStore *store)
{
    if (!run->venues_enabled)
        return;
    g_autoptr(GError) error = NULL;
    if (!proxd_venues_match(store, &run->venues, PROXD_VENUES_MATCH_ALL, run->now,
                            run->result->venue_exposures, &error))
        set_run_error(run, g_error_new(PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_STORE,
                                       "Venue matching: %s", error->message));
}

static void sync_detect(Run *run, ProxStore *store)
{
    g_autoptr(GError) error = NULL;
    gboolean needed = (run->flags & PROXD_SYNC_RUN_FORCE_DETECT) != 0;
    if (!needed && !prox_detect_needed(store, &run->detect, &needed, &error)) {
        set_run_error(run, g_error_new(PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_STORE, "Detection: %s",
                                       error->message));
        return;
    }
    if (!needed)
        return;
    run->phase = PROXD_SYNC_PHASE_DETECT;
    progress(run, TRUE);
    if (!prox_detect_run(store, &run->detect, run->now, &run->result->detect, &error)) {
        prox_detect_result_clear(&run->result->detect);
        set_run_error(run, g_error_new(PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_STORE, "Detection: %s",
                                       error->message));
        return;
    }
    run->result->detected = TRUE;
}

static void run_thread(GTask *task, gpointer source_object, gpointer task_data,
                       GCancellable *cancellable)
{
    Run *run = task_data;
    ProxdSync *self = run->self;
    ProxdSyncResult *r = run->result;
    g_autoptr(GError) error = NULL;

    /* Our own connection: the caller's ProxStore belongs to its thread. */
    g_autoptr(ProxStore) store = prox_store_open(self->db_path, &self->store_options, &error);
    if (store == NULL) {
        set_run_error(run,
                      g_error_new(PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_STORE, "%s", error->message));
        goto done;
    }

    if ((run->flags & PROXD_SYNC_RUN_DETECT_ONLY) == 0) {
        run->phase = PROXD_SYNC_PHASE_INDEX;
        progress(run, TRUE);
        g_autoptr(GPtrArray) names = NULL;
        if (!sync_index(run, store, &names, &error)) {
            g_warning("%s; nothing imported", error->message);
            set_run_error(run, g_steal_pointer(&error));
        } else {
            r->files_listed = names->len;
            g_autoptr(GPtrArray) pending = g_ptr_array_new();
            for (guint i = 0; i < names->len; i++) {
                gboolean has = FALSE;
                if (!prox_store_has_batch(store, self->url, names->pdata[i], &has, &error)) {
                    set_run_error(run, g_error_new(PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_STORE, "%s",
                                                   error->message));
                    break;
                }
                if (!has)
                    g_ptr_array_add(pending, names->pdata[i]);
            }
            r->files_pending = pending->len;
            run->files_total = pending->len;
            run->phase = PROXD_SYNC_PHASE_FILES;
            progress(run, TRUE);
            /* Oldest first, so batch ids follow publication order. */
            for (guint i = 0; i < pending->len && r->error == NULL; i++) {
                gboolean fatal = FALSE;
                GError *fatal_error = NULL;
                sync_file(run, store, pending->pdata[i], &fatal, &fatal_error);
                run->files_done++;
                progress(run, TRUE);
                if (fatal) {
                    set_run_error(run, fatal_error);
                    g_warning("sync from %s stopped: %s", self->url, r->error->message);
                }
            }
        }
    }

    /* Also after a failure: what was imported gets matched. Not after a cancel (shutdown). */
    if (!g_cancellable_is_cancelled(run->cancellable)) {
        sync_detect(run, store);
        sync_venues(run, store);
    }

    if (r->error == NULL && r->files_failed > 0)
        r->error = g_error_new(PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_INCOMPLETE,
                               "%u of %u key lists failed; they are retried at the next sync",
                               r->files_failed, r->files_pending);
    r->finished = run->now_func(run->now_data);
    if (r->error == NULL && (run->flags & PROXD_SYNC_RUN_DETECT_ONLY) == 0) {
        char buf[32];
        g_snprintf(buf, sizeof buf, "%" G_GINT64_FORMAT, r->finished);
        if (!prox_store_set_sync_state(store, PROXD_SYNC_LAST_SYNC_KEY, buf, &error))
            r->error = g_error_new(PROXD_SYNC_ERROR, PROXD_SYNC_ERROR_STORE, "%s", error->message);
    }
done:
    r->complete = r->error == NULL;
    if (r->finished == 0)
        r->finished = run->now_func(run->now_data);
    g_task_return_pointer(task, proxd_sync_result_ref(r), (GDestroyNotify)proxd_sync_result_unref);
}

/* ---- async API (main context) ---- */

static void on_run_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
    ProxdSync *self = PROXD_SYNC(source);
    Run *run = g_task_get_task_data(G_TASK(res));
    g_autoptr(ProxdSyncResult) r = g_task_propagate_pointer(G_TASK(res), NULL);
    if (r == NULL) /* the thread always returns a result; keep going if it did not */
        r = proxd_sync_result_ref(run->result);

    if ((run->flags & PROXD_SYNC_RUN_DETECT_ONLY) == 0)
        schedule_after(self, r);
    if (self->caller_cancellable != NULL) {
        g_cancellable_disconnect(self->caller_cancellable, self->caller_cancel_id);
        g_clear_object(&self->caller_cancellable);
        self->caller_cancel_id = 0;
    }
    g_clear_object(&self->run_cancellable);

    if ((run->flags & PROXD_SYNC_RUN_DETECT_ONLY) != 0)
        g_message("exposure detection%s: %s", r->detected ? "" : " not needed",
                  !r->complete                          ? r->error->message
                  : r->detected && r->detect.level_rose ? "risk rose to high"
                                                        : "done");
    else if (r->complete)
        g_message("key lists from %s: %u of %u new imported, %" G_GUINT64_FORMAT
                  " new keys, %" G_GUINT64_FORMAT " new warnings%s%s",
                  self->url, r->files_imported, r->files_pending, r->keys_added, r->warnings_added,
                  r->not_modified ? " (index unchanged)" : "",
                  r->detected && r->detect.level_rose ? "; risk rose to high" : "");
    else
        g_message("key lists from %s: %u of %u new imported, %" G_GUINT64_FORMAT " new keys; %s",
                  self->url, r->files_imported, r->files_pending, r->keys_added, r->error->message);

    /* Progress of this run is over; then the result. */
    g_signal_emit(self, signals[SIGNAL_PROGRESS], 0, (guint)PROXD_SYNC_PHASE_DONE, run->files_done,
                  run->files_total, run->bytes_done);
    self->running = FALSE;
    self->serial++;
    g_signal_emit(self, signals[SIGNAL_FINISHED], 0, r);

    g_autoptr(GPtrArray) waiters = g_steal_pointer(&self->waiters);
    self->waiters = g_ptr_array_new_with_free_func(g_object_unref);
    for (guint i = 0; i < waiters->len; i++)
        g_task_return_pointer(waiters->pdata[i], proxd_sync_result_ref(r),
                              (GDestroyNotify)proxd_sync_result_unref);
}

static void on_caller_cancelled(GCancellable *cancellable, gpointer user_data)
{
    /* May run in any thread; the run's cancellable is thread-safe. */
    g_cancellable_cancel(G_CANCELLABLE(user_data));
}

void proxd_sync_run_async(ProxdSync *self, ProxdSyncRunFlags flags, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data)
{
    g_return_if_fail(PROXD_IS_SYNC(self));
    GTask *waiter = g_task_new(self, NULL, callback, user_data);
    g_task_set_source_tag(waiter, proxd_sync_run_async);
    if (self->running) {
        g_ptr_array_add(self->waiters, waiter);
        return;
    }
    if (cancellable != NULL && g_cancellable_is_cancelled(cancellable)) {
        g_task_return_new_error(waiter, G_IO_ERROR, G_IO_ERROR_CANCELLED, "The sync was cancelled");
        g_object_unref(waiter);
        return;
    }
    g_ptr_array_add(self->waiters, waiter);

    Run *run = g_new0(Run, 1);
    run->self = g_object_ref(self);
    run->flags = flags;
    run->risk = self->risk;
    run->detect.params = &run->risk;
    run->detect.confidence = self->confidence;
    run->detect.n_threads = self->detect_threads;
    run->venues_enabled = self->venues_enabled;
    run->venues = self->venues;
    run->now_func = self->now_func;
    run->now_data = self->now_data;
    run->now = self->now_func(self->now_data);
    run->serial = ++self->serial;
    run->deadline_us = g_get_monotonic_time() + (gint64)self->run_timeout * G_USEC_PER_SEC;
    run->result = result_new();
    run->result->started = run->now;
    self->run_cancellable = g_cancellable_new();
    run->cancellable = g_object_ref(self->run_cancellable);
    if (cancellable != NULL) {
        self->caller_cancellable = g_object_ref(cancellable);
        self->caller_cancel_id =
            g_cancellable_connect(cancellable, G_CALLBACK(on_caller_cancelled),
                                  g_object_ref(self->run_cancellable), g_object_unref);
    }
    self->running = TRUE;

    GTask *task = g_task_new(self, run->cancellable, on_run_done, NULL);
    g_task_set_source_tag(task, run_thread);
    g_task_set_task_data(task, run, run_free);
    /* The thread checks the cancellable itself, to return a partial result. */
    g_task_set_check_cancellable(task, FALSE);
    g_task_run_in_thread(task, run_thread);
    g_object_unref(task);
}

gboolean proxd_sync_run_finish(ProxdSync *self, GAsyncResult *res, ProxdSyncResult **result,
                               GError **error)
{
    g_return_val_if_fail(g_task_is_valid(res, self), FALSE);
    if (result != NULL)
        *result = NULL;
    g_autoptr(ProxdSyncResult) r = g_task_propagate_pointer(G_TASK(res), error);
    if (r == NULL)
        return FALSE;
    gboolean complete = r->complete;
    if (!complete && error != NULL)
        *error = g_error_copy(r->error);
    if (result != NULL)
        *result = g_steal_pointer(&r);
    return complete;
}
