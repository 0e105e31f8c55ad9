/* test-e2e-failures.c - the bad paths of key distribution end to end, with the real
 * processes: prox-keyserver and prox-authority, proxd in the fake radio world on a private
 * bus, proxctl as the user runs it, and a static web server (e2e-static-server, in the role
 * of nginx or a CDN) in front of the publish directory.
 *
 * /e2e/failures/report: a reports with a wrong, an expired and a reused code (proxctl's
 *   message and exit status; the key server stores nothing: prox-authority status), answers
 *   "n" and then "y" to proxctl report's question on a terminal (a pty), and malformed,
 *   oversized and mistyped bodies go straight to the key server (libcurl): a 4xx with a
 *   JSON reason, nothing stored, the code still usable.
 * /e2e/failures/sync: b syncs over HTTP while the list goes wrong: proxctl sync's progress
 *   display; a tampered file (a bit flipped inside export.bin, zip rebuilt) imports nothing,
 *   is named with its reason in Sync's result and proxd's log, and the next good publish
 *   still imports; an index that goes backwards is refused and loses nothing; a file the
 *   index names but the server does not have (404) fails alone; the server killed in the
 *   middle of a download fails the sync with a clear error, and after a restart the retry
 *   imports every remaining file exactly once.
 *
 * Nothing sleeps: waits are on D-Bus replies and signals, files (GFileMonitor), child
 * exits and, in the report world only, the simulated clock reaching midnight.
 */
#define G_LOG_DOMAIN "proxd-test"

#include <curl/curl.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

#include "e2e-util.h"
#include "prox-export.h"

#define DAY 86400
/* The report world: 2026-01-15 23:50 UTC at 80x, so the day of a's first key is over
 * after 10 simulated minutes (7.5 s). */
#define REPORT_SPEED 80.0
#define REPORT_START (HARNESS_SIM_EPOCH - 8 * 3600 + 23 * 3600 + 50 * 60)
#define NEXT_DAY (HARNESS_SIM_EPOCH - 8 * 3600 + DAY)
#define ONSET "2026-01-15"
/* The sync world runs at real speed: proxd's own retry after a failed run (30 to 60
 * simulated seconds later) then never interferes with the runs the test starts. */
#define SYNC_SPEED 1.0
/* The key server's body cap (docs/keyserver.md). */
#define BODY_CAP 65536

/* ---- small helpers ---- */

static void assert_contains(const char *haystack, const char *needle)
{
    if (haystack == NULL || strstr(haystack, needle) == NULL) {
        g_test_message("expected \"%s\" in:\n%s", needle, haystack != NULL ? haystack : "(null)");
        g_assert_nonnull(strstr(haystack != NULL ? haystack : "", needle));
    }
}

/* The counts that must not move when a request is refused. */
typedef struct {
    gint64 keys; /* published and unpublished */
    gint64 codes_used;
    gint64 codes_usable;
} ServerCounts;

static ServerCounts server_counts(E2eAuthority *a)
{
    g_autoptr(GHashTable) s = e2e_authority_status(a);
    ServerCounts c = {
        .keys = e2e_status_get(s, "keys_unpublished") + e2e_status_get(s, "keys_published"),
        .codes_used = e2e_status_get(s, "codes_used"),
        .codes_usable = e2e_status_get(s, "codes_usable"),
    };
    return c;
}

static void assert_counts_equal(ServerCounts a, ServerCounts b)
{
    g_assert_cmpint(a.keys, ==, b.keys);
    g_assert_cmpint(a.codes_used, ==, b.codes_used);
    g_assert_cmpint(a.codes_usable, ==, b.codes_usable);
}

static char *day_string(gint64 t, const char *format)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(t);
    return g_date_time_format(dt, format);
}

/* ---- proxctl report ---- */

/* proxctl report --yes with `code`: exit status, stdout, stderr. */
static int proxctl_report_yes(HarnessDaemon *d, const char *code, char **out, char **err)
{
    const char *args[] = {"report", "--code", code, "--yes", NULL};
    return e2e_proxctl(d, args, out, err);
}

typedef struct {
    GInputStream *stream;
    GString *text;
    char buf[4096];
    gboolean eof;
} Reader;

static void on_read(GObject *source, GAsyncResult *res, gpointer user_data)
{
    Reader *r = user_data;
    gssize n = g_input_stream_read_finish(G_INPUT_STREAM(source), res, NULL);
    if (n <= 0) {
        r->eof = TRUE;
        return;
    }
    g_string_append_len(r->text, r->buf, n);
    g_input_stream_read_async(r->stream, r->buf, sizeof r->buf, G_PRIORITY_DEFAULT, NULL, on_read,
                              r);
}

static gboolean reader_has_prompt(gpointer p)
{
    Reader *r = p;
    return r->eof || strstr(r->text->str, "[y/N] ") != NULL;
}

typedef struct {
    Reader *reader;
    gboolean exited;
} ChildWait;

static void on_child_exited(GObject *source, GAsyncResult *res, gpointer user_data)
{
    g_subprocess_wait_finish(G_SUBPROCESS(source), res, NULL);
    ((ChildWait *)user_data)->exited = TRUE;
}

static gboolean child_finished(gpointer p)
{
    ChildWait *w = p;
    return w->exited && w->reader->eof;
}

/* proxctl report without --yes, its standard input a terminal (proxctl refuses to ask
 * without one): waits for the question, answers `answer`. Returns the exit status; *out
 * gets everything it printed (stdout and stderr). */
static int proxctl_report_interactive(Harness *h, HarnessDaemon *d, const char *code,
                                      const char *answer, char **out)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    g_assert_cmpint(master, >=, 0);
    g_assert_cmpint(grantpt(master), ==, 0);
    g_assert_cmpint(unlockpt(master), ==, 0);
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    g_assert_cmpint(slave, >=, 0);

    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocessLauncher) launcher =
        harness_launcher(h, G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE);
    g_subprocess_launcher_take_stdin_fd(launcher, slave);
    g_autofree char *name = g_strdup_printf("--bus-name=%s", d->bus_name);
    const char *argv[] = {g_getenv("PROXCTL"), "--session", name, "report", "--code", code, NULL};
    g_autoptr(GSubprocess) p = g_subprocess_launcher_spawnv(launcher, argv, &error);
    g_assert_no_error(error);
    g_clear_object(&launcher); /* closes our copy of the slave */

    Reader r = {.stream = g_subprocess_get_stdout_pipe(p), .text = g_string_new(NULL)};
    g_input_stream_read_async(r.stream, r.buf, sizeof r.buf, G_PRIORITY_DEFAULT, NULL, on_read, &r);
    ChildWait w = {.reader = &r};
    g_subprocess_wait_async(p, NULL, on_child_exited, &w);

    /* Nothing is sent before the answer: the question comes after the preview. */
    g_assert_true(harness_wait(reader_has_prompt, &r, E2E_TIMEOUT_MS));
    g_assert_false(r.eof);
    g_autofree char *line = g_strdup_printf("%s\n", answer);
    g_assert_cmpint(write(master, line, strlen(line)), ==, (gssize)strlen(line));
    g_assert_true(harness_wait(child_finished, &w, E2E_TIMEOUT_MS));
    close(master);
    *out = g_string_free(r.text, FALSE);
    return g_subprocess_get_if_exited(p) ? g_subprocess_get_exit_status(p) : -1;
}

/* ---- straight to the key server ---- */

typedef struct {
    long status;
    char *content_type;
    char *reason;  /* the JSON answer's "code" */
    char *message; /* its "error" */
} Answer;

static void answer_clear(Answer *a)
{
    g_free(a->content_type);
    g_free(a->reason);
    g_free(a->message);
}

static size_t on_body(char *data, size_t size, size_t n, void *user_data)
{
    g_string_append_len(user_data, data, (gssize)(size * n));
    return size * n;
}

typedef struct {
    const char *data;
    size_t len;
    size_t pos;
} Upload;

static size_t on_upload(char *buf, size_t size, size_t n, void *user_data)
{
    Upload *u = user_data;
    size_t want = MIN(size * n, u->len - u->pos);
    memcpy(buf, u->data + u->pos, want);
    u->pos += want;
    return want;
}

/* POSTs `body` to the key server (chunked: without Content-Length) and parses the JSON
 * refusal. The key server answers on its own thread pool, so a blocking call is fine. */
static Answer post(const char *url, const char *content_type, const char *body, size_t len,
                   gboolean chunked)
{
    CURL *c = curl_easy_init();
    g_assert_nonnull(c);
    g_autoptr(GString) answer = g_string_new(NULL);
    struct curl_slist *headers = NULL;
    g_autofree char *type_header = g_strdup_printf("Content-Type: %s", content_type);
    headers = curl_slist_append(headers, type_header);
    headers = curl_slist_append(headers, "Expect:");
    if (chunked)
        headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
    Upload u = {body, len, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    if (chunked) {
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_upload);
        curl_easy_setopt(c, CURLOPT_READDATA, &u);
    } else {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, answer);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    /* A server that refuses a body it has not read may close before the upload ends;
     * what matters is that it answered. */
    g_assert_true(rc == CURLE_OK || rc == CURLE_SEND_ERROR);
    Answer a = {0};
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    a.content_type = g_strdup(ct);
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);

    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;
    if (!json_parser_load_from_data(parser, answer->str, (gssize)answer->len, &error)) {
        g_test_message("not JSON (HTTP %ld): %s", a.status, answer->str);
        g_assert_no_error(error);
    }
    JsonNode *root = json_parser_get_root(parser);
    g_assert_true(JSON_NODE_HOLDS_OBJECT(root));
    JsonObject *o = json_node_get_object(root);
    if (json_object_has_member(o, "code"))
        a.reason = g_strdup(json_object_get_string_member(o, "code"));
    if (json_object_has_member(o, "error"))
        a.message = g_strdup(json_object_get_string_member(o, "error"));
    return a;
}

static void assert_refused(const char *url, const char *content_type, const char *body, size_t len,
                           gboolean chunked, long status, const char *reason)
{
    Answer a = post(url, content_type, body, len, chunked);
    g_test_message("POST %zu bytes%s as %s: HTTP %ld %s (%s)", len, chunked ? " chunked" : "",
                   content_type, a.status, a.reason, a.message);
    g_assert_cmpint(a.status, ==, status);
    g_assert_nonnull(a.content_type);
    g_assert_true(g_str_has_prefix(a.content_type, "application/json"));
    g_assert_cmpstr(a.reason, ==, reason);
    g_assert_nonnull(a.message);
    g_assert_cmpstr(a.message, !=, "");
    answer_clear(&a);
}

/* The report would hold the key of a day that is over and the key in use (the new day's,
 * made at the first rotation after midnight): from then on only Report() calls change the
 * keys (each ends the key in use, even when the server then refuses the code). */
static gboolean has_report_keys(gpointer p)
{
    HarnessDaemon *d = p;
    g_autoptr(GVariant) preview = NULL;
    if (!proxd_dbus_manager1_call_preview_report_sync(d->proxy, G_DBUS_CALL_FLAGS_NONE,
                                                      E2E_TIMEOUT_MS, &preview, NULL, NULL))
        return FALSE;
    guint keys = 0;
    g_variant_lookup(preview, "keys", "u", &keys);
    return keys > 1 && g_variant_lookup(preview, "cut-at", "t", NULL);
}

static void test_report_failures(void)
{
    g_autoptr(Harness) h = harness_new_at("report-sync.json", REPORT_SPEED, REPORT_START);
    E2eAuthority auth;
    e2e_authority_init(&auth, h);
    /* No rate limit: this test makes more uploads than the default burst allows. */
    const char *keyserver_args[] = {"--rate", "0", NULL};
    e2e_authority_start_keyserver(&auth, keyserver_args);
    g_autofree char *code = e2e_authority_issue_code(&auth, ONSET, 0, NULL);

    g_autofree char *config = g_strdup_printf("[Report]\nURL=%s\n", auth.upload_url);
    harness_start_fake(h);
    HarnessDaemon *a = harness_start_proxd(h, "a", 0, "person", config);
    /* a's key of 2026-01-15 may be reported once that day is over. */
    harness_wait_sim_time(h, NEXT_DAY + 60);
    g_assert_true(harness_wait(has_report_keys, a, E2E_TIMEOUT_MS));
    g_autoptr(GError) error = NULL;

    ServerCounts before = server_counts(&auth);
    g_assert_cmpint(before.codes_usable, ==, 1);

    /* A wrong code: one character off. */
    g_autofree char *wrong = g_strdup(code);
    wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
    g_autofree char *out = NULL, *err = NULL;
    g_assert_cmpint(proxctl_report_yes(a, wrong, &out, &err), ==, 1);
    assert_contains(err, "proxctl: report: ");
    assert_contains(err, "invalid_code");
    assert_counts_equal(server_counts(&auth), before);
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    /* An expired code: issued two days ago, valid for an hour. */
    gint64 two_days_ago = (gint64)harness_sim_now(h) - 2 * DAY;
    g_autofree char *old_onset = day_string(two_days_ago, "%Y-%m-%d");
    g_autofree char *expired = e2e_authority_issue_code(&auth, old_onset, two_days_ago, "1h");
    ServerCounts with_expired = server_counts(&auth);
    g_assert_cmpint(with_expired.codes_usable, ==, before.codes_usable);
    g_assert_cmpint(proxctl_report_yes(a, expired, &out, &err), ==, 1);
    assert_contains(err, "proxctl: report: ");
    assert_contains(err, "code_expired");
    assert_counts_equal(server_counts(&auth), with_expired);
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    /* What the next report holds (the refused ones ended the key in use each time). */
    g_autoptr(GVariant) preview = NULL;
    g_assert_true(proxd_dbus_manager1_call_preview_report_sync(
        a->proxy, G_DBUS_CALL_FLAGS_NONE, E2E_TIMEOUT_MS, &preview, NULL, &error));
    g_assert_no_error(error);
    guint n_keys = 0;
    g_assert_true(g_variant_lookup(preview, "keys", "u", &n_keys));
    g_autoptr(GVariant) days = g_variant_lookup_value(preview, "days", G_VARIANT_TYPE("at"));
    g_assert_nonnull(days);
    g_assert_cmpuint(g_variant_n_children(days), ==, n_keys);

    /* The question on a terminal: it shows the key count and the days first; "n" sends
     * nothing. */
    g_autofree char *url_line = g_strdup_printf("This sends to %s:", auth.upload_url);
    g_autofree char *count_line =
        g_strdup_printf("and %u temporary exposure key%s", n_keys, n_keys == 1 ? "" : "s");
    g_assert_cmpint(proxctl_report_interactive(h, a, code, "n", &out), ==, 1);
    assert_contains(out, url_line);
    assert_contains(out, count_line);
    for (gsize i = 0; i < g_variant_n_children(days); i++) {
        guint64 day = 0;
        g_variant_get_child(days, i, "t", &day);
        g_autofree char *shown = day_string((gint64)day, "    %a %Y-%m-%d\n");
        assert_contains(out, shown);
        /* Before the question. */
        g_assert_true(strstr(out, shown) < strstr(out, "[y/N]"));
    }
    assert_contains(out, " to the key server? [y/N] ");
    assert_contains(out, "Nothing was sent.");
    assert_counts_equal(server_counts(&auth), with_expired);
    g_clear_pointer(&out, g_free);

    /* "y" sends them. */
    g_assert_cmpint(proxctl_report_interactive(h, a, code, "y", &out), ==, 0);
    assert_contains(out, count_line);
    g_autofree char *sent_line = g_strdup_printf("Sent. The key server stored %u new key", n_keys);
    assert_contains(out, sent_line);
    ServerCounts reported = server_counts(&auth);
    g_assert_cmpint(reported.keys, ==, with_expired.keys + n_keys);
    g_assert_cmpint(reported.codes_used, ==, with_expired.codes_used + 1);
    g_assert_cmpint(reported.codes_usable, ==, with_expired.codes_usable - 1);
    g_clear_pointer(&out, g_free);

    /* The same code again. */
    g_assert_cmpint(proxctl_report_yes(a, code, &out, &err), ==, 1);
    assert_contains(err, "proxctl: report: ");
    assert_contains(err, "code_used");
    assert_counts_equal(server_counts(&auth), reported);
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    /* Bodies no device sends, straight at the key server: each a 4xx with a JSON reason,
     * nothing stored, and a code that came with one stays usable. */
    g_autofree char *fresh = e2e_authority_issue_code(&auth, ONSET, 0, NULL);
    ServerCounts with_fresh = server_counts(&auth);
    g_assert_cmpint(with_fresh.codes_usable, ==, reported.codes_usable + 1);
    gint64 yesterday = ((gint64)harness_sim_now(h) / DAY - 1) * DAY / 600;
    g_autofree char *malformed =
        g_strdup_printf("{\"code\":\"%s\",\"temporaryExposureKeys\":[{\"key\":", fresh);
    assert_refused(auth.upload_url, "application/json", malformed, strlen(malformed), FALSE, 400,
                   "malformed_json");
    /* A key of 15 bytes. */
    g_autofree char *short_key = g_strdup_printf(
        "{\"code\":\"%s\",\"temporaryExposureKeys\":[{\"key\":\"AAAAAAAAAAAAAAAAAAAA\","
        "\"rollingStartNumber\":%" G_GINT64_FORMAT ",\"rollingPeriod\":144}]}",
        fresh, yesterday);
    assert_refused(auth.upload_url, "application/json", short_key, strlen(short_key), FALSE, 400,
                   "bad_key_data");
    g_autofree char *no_keys =
        g_strdup_printf("{\"code\":\"%s\",\"temporaryExposureKeys\":[]}", fresh);
    assert_refused(auth.upload_url, "application/json", no_keys, strlen(no_keys), FALSE, 400,
                   "no_keys");
    assert_refused(auth.upload_url, "text/plain", no_keys, strlen(no_keys), FALSE, 415,
                   "unsupported_content_type");
    /* Over the cap: a valid upload padded past 64 KiB, with and without Content-Length. */
    g_autofree char *key_b64 = g_base64_encode((const guchar *)"0123456789abcdef", 16);
    GString *big = g_string_new(NULL);
    g_string_append_printf(big,
                           "{\"code\":\"%s\",\"temporaryExposureKeys\":[{\"key\":\"%s\","
                           "\"rollingStartNumber\":%" G_GINT64_FORMAT
                           ",\"rollingPeriod\":144}],\"padding\":\"",
                           fresh, key_b64, yesterday);
    while (big->len < BODY_CAP + 1000)
        g_string_append_c(big, 'x');
    g_string_append(big, "\"}");
    assert_refused(auth.upload_url, "application/json", big->str, big->len, FALSE, 413,
                   "body_too_large");
    assert_refused(auth.upload_url, "application/json", big->str, big->len, TRUE, 413,
                   "body_too_large");
    g_string_free(big, TRUE);
    assert_counts_equal(server_counts(&auth), with_fresh);

    harness_stop_proxd(a);
    e2e_authority_clear(&auth);
}

/* ---- the sync world ---- */

typedef struct {
    Harness *h;
    E2eAuthority auth;
    char *server_dir;
    char *port_file;
    char *marker;
    guint port;
    GSubprocess *server;
    HarnessDaemon *b;
    ProxExportKeyring *keyring;
} SyncWorld;

/* Starts the web server on the world's port (any free one the first time), optionally
 * stalling half-way through `stall`. */
static void server_start(SyncWorld *w, const char *stall)
{
    g_assert_null(w->server);
    g_autoptr(GError) error = NULL;
    g_unlink(w->port_file);
    g_unlink(w->marker);
    g_autofree char *log = g_build_filename(w->h->dir, "static-server.log", NULL);
    g_autoptr(GSubprocessLauncher) launcher =
        harness_launcher(w->h, G_SUBPROCESS_FLAGS_STDERR_MERGE);
    g_subprocess_launcher_set_stdout_file_path(launcher, log);
    g_autofree char *port = g_strdup_printf("%u", w->port);
    const char *argv[] = {g_getenv("E2E_STATIC_SERVER"),
                          "--root",
                          w->auth.published,
                          "--listen",
                          port,
                          "--port-file",
                          w->port_file,
                          stall != NULL ? "--stall" : NULL,
                          stall,
                          "--stall-marker",
                          w->marker,
                          NULL};
    g_assert_nonnull(argv[0]);
    w->server = g_subprocess_launcher_spawnv(launcher, argv, &error);
    g_assert_no_error(error);
    g_assert_true(e2e_wait_file(w->port_file));
    g_autofree char *text = NULL;
    g_file_get_contents(w->port_file, &text, NULL, &error);
    g_assert_no_error(error);
    guint bound = (guint)g_ascii_strtoull(text, NULL, 10);
    g_assert_cmpuint(bound, >, 0);
    if (w->port != 0)
        g_assert_cmpuint(bound, ==, w->port);
    w->port = bound;
}

typedef struct {
    gboolean exited;
} Exit;

static void on_server_exited(GObject *source, GAsyncResult *res, gpointer user_data)
{
    g_subprocess_wait_finish(G_SUBPROCESS(source), res, NULL);
    ((Exit *)user_data)->exited = TRUE;
}

static gboolean has_exited(gpointer p)
{
    return ((Exit *)p)->exited;
}

/* kill = TRUE: SIGKILL, the way a machine or a process dies; else SIGTERM. */
static void server_stop(SyncWorld *w, gboolean kill)
{
    if (w->server == NULL)
        return;
    Exit e = {FALSE};
    g_subprocess_wait_async(w->server, NULL, on_server_exited, &e);
    if (kill)
        g_subprocess_force_exit(w->server);
    else
        g_subprocess_send_signal(w->server, SIGTERM);
    g_assert_true(harness_wait(has_exited, &e, E2E_TIMEOUT_MS));
    g_clear_object(&w->server);
}

static char *published_path(SyncWorld *w, const char *name)
{
    return g_build_filename(w->auth.published, name, NULL);
}

static guint file_keys(SyncWorld *w, const char *name)
{
    g_autofree char *path = published_path(w, name);
    g_autoptr(ProxExport) export = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_export_read(path, w->keyring, &export, &error));
    g_assert_no_error(error);
    return export->keys->len;
}

typedef struct {
    gboolean complete;
    guint imported;
    guint failed;
    guint64 keys_added;
    char *error;
    GVariant *failures; /* a(ss) */
    char *risk;
} SyncResult;

static void sync_result_clear(SyncResult *r)
{
    g_free(r->error);
    g_free(r->risk);
    g_clear_pointer(&r->failures, g_variant_unref);
}

static SyncResult parse_sync(GVariant *v)
{
    SyncResult r = {0};
    g_assert_true(g_variant_lookup(v, "complete", "b", &r.complete));
    g_assert_true(g_variant_lookup(v, "files-imported", "u", &r.imported));
    g_assert_true(g_variant_lookup(v, "files-failed", "u", &r.failed));
    g_assert_true(g_variant_lookup(v, "keys-added", "t", &r.keys_added));
    g_assert_true(g_variant_lookup(v, "error", "s", &r.error));
    g_assert_true(g_variant_lookup(v, "risk-level", "s", &r.risk));
    r.failures = g_variant_lookup_value(v, "failures", G_VARIANT_TYPE("a(ss)"));
    g_assert_nonnull(r.failures);
    g_assert_cmpuint(g_variant_n_children(r.failures), ==, r.failed);
    g_test_message("sync: complete %d, imported %u, failed %u, keys added %" G_GUINT64_FORMAT
                   ", error \"%s\"",
                   r.complete, r.imported, r.failed, r.keys_added, r.error);
    for (gsize i = 0; i < g_variant_n_children(r.failures); i++) {
        const char *name = NULL, *reason = NULL;
        g_variant_get_child(r.failures, i, "(&s&s)", &name, &reason);
        g_test_message("  failed: %s: %s", name, reason);
    }
    return r;
}

static SyncResult sync_once(SyncWorld *w)
{
    g_autoptr(GVariant) v = e2e_call_sync(w->b);
    return parse_sync(v);
}

/* The reason Sync gave for `name`, or NULL when it names no such file. */
static const char *failure_reason(const SyncResult *r, const char *name)
{
    for (gsize i = 0; i < g_variant_n_children(r->failures); i++) {
        const char *n = NULL, *reason = NULL;
        g_variant_get_child(r->failures, i, "(&s&s)", &n, &reason);
        if (g_str_equal(n, name))
            return reason;
    }
    return NULL;
}

static void write_file(const char *path, const void *data, gsize len)
{
    g_autoptr(GError) error = NULL;
    /* Atomically, as a web server's directory is updated. */
    g_file_set_contents(path, data, (gssize)len, &error);
    g_assert_no_error(error);
}

static GBytes *read_file(const char *path)
{
    g_autoptr(GError) error = NULL;
    char *data = NULL;
    gsize len = 0;
    g_file_get_contents(path, &data, &len, &error);
    g_assert_no_error(error);
    return g_bytes_new_take(data, len);
}

static GBytes *zip_entry(zip_t *zip, const char *name)
{
    zip_stat_t st;
    g_assert_cmpint(zip_stat(zip, name, 0, &st), ==, 0);
    zip_file_t *f = zip_fopen(zip, name, 0);
    g_assert_nonnull(f);
    guint8 *data = g_malloc(st.size);
    g_assert_cmpint(zip_fread(f, data, st.size), ==, (zip_int64_t)st.size);
    zip_fclose(f);
    return g_bytes_new_take(data, st.size);
}

/* The file as a tampering mirror would serve it: one bit of a key's data flipped inside
 * export.bin (the protobuf still parses, only the signature no longer holds), then zipped
 * again with the original export.sig. */
static void tamper(SyncWorld *w, const char *name)
{
    g_autofree char *path = published_path(w, name);
    g_autoptr(GBytes) original = read_file(path);
    g_autoptr(ProxExport) export = NULL;
    g_autoptr(GError) error = NULL;
    gsize len = 0;
    const guint8 *zip_data = g_bytes_get_data(original, &len);
    g_assert_true(prox_export_read_bytes_unverified(zip_data, len, &export, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(export->keys->len, >, 0);
    const ProxDiagnosisKey *key = &g_array_index(export->keys, ProxDiagnosisKey, 0);

    zip_error_t zerr;
    zip_error_init(&zerr);
    zip_source_t *src = zip_source_buffer_create(zip_data, len, 0, &zerr);
    g_assert_nonnull(src);
    zip_t *zip = zip_open_from_source(src, ZIP_RDONLY, &zerr);
    g_assert_nonnull(zip);
    g_autoptr(GBytes) bin = zip_entry(zip, PROX_EXPORT_BIN_NAME);
    g_autoptr(GBytes) sig = zip_entry(zip, PROX_EXPORT_SIG_NAME);
    zip_close(zip);
    zip_error_fini(&zerr);

    gsize bin_len = 0, sig_len = 0;
    guint8 *tampered = g_memdup2(g_bytes_get_data(bin, &bin_len), g_bytes_get_size(bin));
    guint8 *at = memmem(tampered, bin_len, key->tek.key, sizeof key->tek.key);
    g_assert_nonnull(at);
    at[7] ^= 0x01;
    g_autoptr(GBytes) packed = prox_export_pack(tampered, bin_len, g_bytes_get_data(sig, &sig_len),
                                                g_bytes_get_size(sig), &error);
    g_assert_no_error(error);
    g_free(tampered);
    /* Still a well-formed list, only no longer the one the authority signed. */
    gsize packed_len = 0;
    const guint8 *packed_data = g_bytes_get_data(packed, &packed_len);
    g_autoptr(ProxExport) unverified = NULL;
    g_assert_true(prox_export_read_bytes_unverified(packed_data, packed_len, &unverified, NULL));
    g_autoptr(ProxExport) verified = NULL;
    g_assert_false(prox_export_read_bytes(packed_data, packed_len, w->keyring, &verified, NULL));
    write_file(path, packed_data, packed_len);
}

static void write_index(SyncWorld *w, const char *const *names)
{
    g_autofree char *path = published_path(w, "index.txt");
    g_autofree char *joined = g_strjoinv("\n", (char **)names);
    g_autofree char *text = g_strconcat(joined, "\n", NULL);
    write_file(path, text, strlen(text));
}

typedef struct {
    GVariant *result;
    GError *error;
    gboolean done;
} SyncCall;

static void on_sync_reply(GObject *source, GAsyncResult *res, gpointer user_data)
{
    SyncCall *c = user_data;
    proxd_dbus_manager1_call_sync_finish(PROXD_DBUS_MANAGER1(source), &c->result, res, &c->error);
    c->done = TRUE;
}

static gboolean sync_call_done(gpointer p)
{
    return ((SyncCall *)p)->done;
}

static void test_sync_failures(void)
{
    SyncWorld w = {0};
    g_autoptr(Harness) h = harness_new_at("report-sync.json", SYNC_SPEED, HARNESS_SIM_EPOCH);
    w.h = h;
    e2e_authority_init(&w.auth, h);
    w.server_dir = g_build_filename(h->dir, "www", NULL);
    g_assert_cmpint(g_mkdir_with_parents(w.server_dir, 0700), ==, 0);
    w.port_file = g_build_filename(w.server_dir, "port", NULL);
    w.marker = g_build_filename(w.server_dir, "stalled", NULL);
    w.keyring = prox_export_keyring_new();
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_export_keyring_add_file(w.keyring, NULL, NULL, w.auth.pub, &error));
    g_assert_no_error(error);
    server_start(&w, NULL);

    /* A first list is out before b starts: its first scheduled run, whenever it comes,
     * finds a valid index. */
    e2e_authority_import_random_keys(&w.auth, 3);
    g_auto(GStrv) first = e2e_authority_publish(&w.auth, 0);
    g_assert_cmpuint(g_strv_length(first), ==, 1);

    g_autofree char *config =
        g_strdup_printf("[Sync]\nURL=http://127.0.0.1:%u/index.txt\nPinnedKeys=%s\n"
                        "IntervalSeconds=86400\n",
                        w.port, w.auth.pub);
    harness_start_fake(h);
    w.b = harness_start_proxd(h, "b", 1, "person", config);

    /* A complete run (it may join the first scheduled one): from here on the schedule is a
     * day away, and every run is the test's. */
    gboolean complete = FALSE;
    for (guint i = 0; i < E2E_SYNC_ATTEMPTS && !complete; i++) {
        SyncResult r = sync_once(&w);
        complete = r.complete;
        sync_result_clear(&r);
    }
    g_assert_true(complete);

    /* proxctl sync: the progress display, then the summary. */
    {
        e2e_authority_import_random_keys(&w.auth, 2);
        g_auto(GStrv) names = e2e_authority_publish(&w.auth, 0);
        g_assert_cmpuint(g_strv_length(names), ==, 1);
        const char *args[] = {"sync", NULL};
        g_autofree char *out = NULL, *err = NULL;
        int status = e2e_proxctl(w.b, args, &out, &err);
        g_test_message("proxctl sync:\n%s%s", out, err);
        g_assert_cmpint(status, ==, 0);
        const char *lines[] = {
            "Syncing key lists...\n",
            "  index    0/0 files, ",
            "  files    0/1 files, ",
            "  files    1/1 files, ",
            "  matching 1/1 files, ",
            "  done     1/1 files, ",
            "Files imported: 1, failed: 0; new keys: 2",
            "Sync complete.\n",
            "Risk: low: no relevant exposure found\n",
        };
        const char *pos = out;
        for (gsize i = 0; i < G_N_ELEMENTS(lines); i++) {
            const char *found = strstr(pos, lines[i]);
            if (found == NULL)
                g_test_message("missing after the previous line: \"%s\"", lines[i]);
            g_assert_nonnull(found);
            pos = found + strlen(lines[i]);
        }
        g_assert_cmpstr(err, ==, "");
    }

    /* A tampered list imports nothing and is named with its reason; the next good one is
     * imported all the same; once the file is whole again it is imported too. */
    {
        e2e_authority_import_random_keys(&w.auth, 2);
        g_auto(GStrv) bad = e2e_authority_publish(&w.auth, 0);
        g_assert_cmpuint(g_strv_length(bad), ==, 1);
        g_autofree char *bad_path = published_path(&w, bad[0]);
        g_autoptr(GBytes) original = read_file(bad_path);
        tamper(&w, bad[0]);

        SyncResult r = sync_once(&w);
        g_assert_false(r.complete);
        g_assert_cmpuint(r.imported, ==, 0);
        g_assert_cmpuint(r.failed, ==, 1);
        g_assert_cmpuint(r.keys_added, ==, 0);
        const char *reason = failure_reason(&r, bad[0]);
        g_assert_nonnull(reason);
        assert_contains(reason, "verification failed");
        g_assert_cmpstr(r.error, !=, "");
        sync_result_clear(&r);
        /* proxd's log names the file and the reason too. */
        g_autofree char *logged = g_strdup_printf("key list %s from ", bad[0]);
        g_assert_true(harness_wait_file_contains(w.b->log_path, logged, E2E_TIMEOUT_MS));
        g_autofree char *log = NULL;
        g_assert_true(g_file_get_contents(w.b->log_path, &log, NULL, NULL));
        assert_contains(strstr(log, logged), "verification failed");

        e2e_authority_import_random_keys(&w.auth, 2);
        g_auto(GStrv) good = e2e_authority_publish(&w.auth, 0);
        g_assert_cmpuint(g_strv_length(good), ==, 1);
        r = sync_once(&w);
        g_assert_false(r.complete);
        g_assert_cmpuint(r.imported, ==, 1);
        g_assert_cmpuint(r.keys_added, ==, file_keys(&w, good[0]));
        g_assert_cmpuint(r.failed, ==, 1);
        g_assert_nonnull(failure_reason(&r, bad[0]));
        sync_result_clear(&r);

        write_file(bad_path, g_bytes_get_data(original, NULL), g_bytes_get_size(original));
        r = sync_once(&w);
        g_assert_true(r.complete);
        g_assert_cmpuint(r.imported, ==, 1);
        g_assert_cmpuint(r.keys_added, ==, file_keys(&w, bad[0]));
        g_assert_cmpuint(r.failed, ==, 0);
        sync_result_clear(&r);
    }

    /* An index that goes backwards is refused, and nothing imported before is lost. */
    {
        g_auto(GStrv) index = e2e_authority_index(&w.auth);
        guint n = g_strv_length(index);
        g_assert_cmpuint(n, >=, 3);
        /* The newest file gone while older ones stay. */
        g_autofree char *newest = index[n - 1];
        index[n - 1] = NULL;
        write_index(&w, (const char *const *)index);
        SyncResult r = sync_once(&w);
        g_assert_false(r.complete);
        g_assert_cmpuint(r.imported, ==, 0);
        g_assert_cmpuint(r.failed, ==, 0);
        assert_contains(r.error, "went backwards");
        sync_result_clear(&r);
        /* A new file that sorts before files already seen. */
        index[n - 1] = g_steal_pointer(&newest);
        g_autoptr(GStrvBuilder) b = g_strv_builder_new();
        g_strv_builder_add(b, "0000000001-00000001-0001.zip");
        g_strv_builder_addv(b, (const char **)index);
        g_auto(GStrv) older = g_strv_builder_end(b);
        write_index(&w, (const char *const *)older);
        r = sync_once(&w);
        g_assert_false(r.complete);
        g_assert_cmpuint(r.imported, ==, 0);
        assert_contains(r.error, "went backwards");
        sync_result_clear(&r);
        /* The real index again: everything it lists is still imported. */
        write_index(&w, (const char *const *)index);
        r = sync_once(&w);
        g_assert_true(r.complete);
        g_assert_cmpuint(r.imported, ==, 0);
        g_assert_cmpuint(r.keys_added, ==, 0);
        sync_result_clear(&r);
    }

    /* A file the index names but the server does not have: it fails alone. */
    {
        e2e_authority_import_random_keys(&w.auth, 2);
        g_auto(GStrv) names = e2e_authority_publish(&w.auth, 1);
        g_assert_cmpuint(g_strv_length(names), ==, 2);
        g_autofree char *missing = published_path(&w, names[0]);
        g_autoptr(GBytes) saved = read_file(missing);
        guint missing_keys = file_keys(&w, names[0]);
        g_assert_cmpint(g_unlink(missing), ==, 0);
        SyncResult r = sync_once(&w);
        g_assert_false(r.complete);
        g_assert_cmpuint(r.failed, ==, 1);
        const char *reason = failure_reason(&r, names[0]);
        g_assert_nonnull(reason);
        assert_contains(reason, "404");
        g_assert_cmpuint(r.imported, ==, 1);
        g_assert_cmpuint(r.keys_added, ==, file_keys(&w, names[1]));
        sync_result_clear(&r);
        write_file(missing, g_bytes_get_data(saved, NULL), g_bytes_get_size(saved));
        r = sync_once(&w);
        g_assert_true(r.complete);
        g_assert_cmpuint(r.imported, ==, 1);
        g_assert_cmpuint(r.keys_added, ==, missing_keys);
        sync_result_clear(&r);
    }

    /* The server dies in the middle of a download; after a restart the retry imports every
     * file that was not imported, once. */
    {
        e2e_authority_import_random_keys(&w.auth, 3);
        g_auto(GStrv) names = e2e_authority_publish(&w.auth, 1);
        g_assert_cmpuint(g_strv_length(names), ==, 3);
        guint keys[3];
        for (guint i = 0; i < 3; i++)
            keys[i] = file_keys(&w, names[i]);
        server_stop(&w, FALSE);
        server_start(&w, names[1]);

        SyncCall call = {0};
        proxd_dbus_manager1_call_sync(w.b->proxy, G_DBUS_CALL_FLAGS_NONE, E2E_TIMEOUT_MS, NULL,
                                      on_sync_reply, &call);
        /* Half of the second file is on its way: the server goes down. */
        g_assert_true(e2e_wait_file(w.marker));
        server_stop(&w, TRUE);
        g_assert_true(harness_wait(sync_call_done, &call, E2E_TIMEOUT_MS));
        g_assert_no_error(call.error);
        SyncResult r = parse_sync(call.result);
        g_variant_unref(call.result);
        g_assert_false(r.complete);
        g_assert_cmpuint(r.imported, ==, 1);
        g_assert_cmpuint(r.keys_added, ==, keys[0]);
        /* The half-sent file fails on the transport, and so does the next one: refused
         * (the run stops there) or reset while the dying server's listener still took
         * it (the run goes on to the end of the list). Nothing after the first file was
         * imported. */
        g_assert_cmpuint(r.failed, ==, 2);
        for (guint i = 1; i < 3; i++) {
            const char *reason = failure_reason(&r, names[i]);
            g_assert_nonnull(reason);
            assert_contains(reason, "curl error");
        }
        g_assert_cmpstr(r.error, !=, "");
        sync_result_clear(&r);

        server_start(&w, NULL);
        r = sync_once(&w);
        g_assert_true(r.complete);
        g_assert_cmpuint(r.imported, ==, 2);
        g_assert_cmpuint(r.keys_added, ==, keys[1] + keys[2]);
        sync_result_clear(&r);
        r = sync_once(&w);
        g_assert_true(r.complete);
        g_assert_cmpuint(r.imported, ==, 0);
        g_assert_cmpuint(r.keys_added, ==, 0);
        sync_result_clear(&r);
    }

    harness_stop_proxd(w.b);
    server_stop(&w, FALSE);
    prox_export_keyring_free(w.keyring);
    g_free(w.server_dir);
    g_free(w.port_file);
    g_free(w.marker);
    e2e_authority_clear(&w.auth);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    g_test_add_func("/e2e/failures/report", test_report_failures);
    g_test_add_func("/e2e/failures/sync", test_sync_failures);
    int status = g_test_run();
    curl_global_cleanup();
    return status;
}
