/* e2e-util.c - the authority's programs, children, files and D-Bus calls for the e2e and
 * venues suites. */
#define G_LOG_DOMAIN "proxd-test"

#include "e2e-util.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#define DAY 86400

/* ---- children ---- */

typedef struct {
    GSubprocess *p;
    char *out;
    char *err;
    GError *error;
    gboolean communicated;
    gboolean done;
} Communicate;

static void on_communicated(GObject *source, GAsyncResult *res, gpointer user_data)
{
    Communicate *c = user_data;
    g_subprocess_communicate_utf8_finish(G_SUBPROCESS(source), res, &c->out, &c->err, &c->error);
    c->communicated = TRUE;
}

static void on_exited(GObject *source, GAsyncResult *res, gpointer user_data)
{
    Communicate *c = user_data;
    g_subprocess_wait_finish(G_SUBPROCESS(source), res, NULL);
    c->done = TRUE;
}

static gboolean communicate_done(gpointer p)
{
    Communicate *c = p;
    return c->done && c->communicated;
}

int e2e_run(Harness *h, const char *const *argv, int stdin_fd, char **out, char **err)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocessLauncher) launcher =
        harness_launcher(h, G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
    if (stdin_fd >= 0)
        g_subprocess_launcher_take_stdin_fd(launcher, dup(stdin_fd));
    g_autoptr(GSubprocess) p = g_subprocess_launcher_spawnv(launcher, argv, &error);
    g_assert_no_error(error);
    /* The main context keeps running meanwhile: a child may be waiting for a D-Bus reply
     * that needs this process (signals to proxies, the fake). */
    Communicate c = {.p = p};
    g_subprocess_communicate_utf8_async(p, NULL, NULL, on_communicated, &c);
    g_subprocess_wait_async(p, NULL, on_exited, &c);
    g_assert_true(harness_wait(communicate_done, &c, E2E_TIMEOUT_MS));
    g_assert_no_error(c.error);
    int status = g_subprocess_get_if_exited(p) ? g_subprocess_get_exit_status(p) : -1;
    if (out != NULL)
        *out = g_steal_pointer(&c.out);
    if (err != NULL)
        *err = g_steal_pointer(&c.err);
    g_free(c.out);
    g_free(c.err);
    return status;
}

char *e2e_run_ok(Harness *h, const char *const *argv)
{
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int status = e2e_run(h, argv, -1, &out, &err);
    if (status != 0) {
        g_autofree char *cmd = g_strjoinv(" ", (char **)argv);
        g_test_message("%s exited with %d:\n%s%s", cmd, status, out, err);
        g_assert_cmpint(status, ==, 0);
    }
    return g_steal_pointer(&out);
}

int e2e_proxctl(HarnessDaemon *d, const char *const *args, char **out, char **err)
{
    g_autofree char *name_arg = g_strdup_printf("--bus-name=%s", d->bus_name);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    const char *proxctl = g_getenv("PROXCTL");
    g_assert_nonnull(proxctl);
    g_ptr_array_add(argv, (gpointer)proxctl);
    g_ptr_array_add(argv, (gpointer) "--session");
    g_ptr_array_add(argv, name_arg);
    for (guint i = 0; args[i] != NULL; i++)
        g_ptr_array_add(argv, (gpointer)args[i]);
    g_ptr_array_add(argv, NULL);
    return e2e_run(d->harness, (const char *const *)argv->pdata, -1, out, err);
}

static gboolean file_exists(gpointer p)
{
    return g_file_test(p, G_FILE_TEST_EXISTS);
}

static void on_dir_changed(GFileMonitor *monitor, GFile *file, GFile *other,
                           GFileMonitorEvent event, gpointer user_data)
{
    /* Waking the wait is enough: the condition looks at the file. */
}

static GFileMonitor *monitor_dir_of(const char *path)
{
    g_autofree char *dir_path = g_path_get_dirname(path);
    g_autoptr(GFile) dir = g_file_new_for_path(dir_path);
    g_autoptr(GError) error = NULL;
    GFileMonitor *monitor = g_file_monitor_directory(dir, G_FILE_MONITOR_NONE, NULL, &error);
    g_assert_no_error(error);
    g_signal_connect(monitor, "changed", G_CALLBACK(on_dir_changed), NULL);
    return monitor;
}

gboolean e2e_wait_file(const char *path)
{
    g_autoptr(GFileMonitor) monitor = monitor_dir_of(path);
    return harness_wait(file_exists, (gpointer)path, E2E_TIMEOUT_MS);
}

/* ---- the authority ---- */

static const char *authority_tool(void)
{
    const char *tool = g_getenv("PROX_AUTHORITY");
    g_assert_nonnull(tool);
    return tool;
}

void e2e_authority_init(E2eAuthority *a, Harness *h)
{
    memset(a, 0, sizeof *a);
    a->h = h;
    a->auth_dir = g_build_filename(h->dir, "authority", NULL);
    a->published = g_build_filename(h->dir, "published", NULL);
    a->db = g_build_filename(a->auth_dir, "authority.db", NULL);
    a->sec = g_build_filename(a->auth_dir, E2E_KEY_ID "-" E2E_KEY_VERSION ".sec", NULL);
    a->pub = g_build_filename(a->auth_dir, E2E_KEY_ID "-" E2E_KEY_VERSION ".pub", NULL);
    g_assert_cmpint(g_mkdir_with_parents(a->auth_dir, 0700), ==, 0);
    g_assert_cmpint(g_mkdir_with_parents(a->published, 0755), ==, 0);
    const char *init[] = {authority_tool(), "init-key", "--key-id",  E2E_KEY_ID, "--key-version",
                          E2E_KEY_VERSION,  "--dir",    a->auth_dir, NULL};
    g_free(e2e_run_ok(h, init));
}

static gboolean file_has_port(gpointer p)
{
    g_autofree char *text = NULL;
    return g_file_get_contents(p, &text, NULL, NULL) && g_strstrip(text)[0] != '\0';
}

void e2e_authority_start_keyserver(E2eAuthority *a, const char *const *extra_args)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *port_file = g_build_filename(a->auth_dir, "keyserver.port", NULL);
    g_autofree char *log = g_build_filename(a->h->dir, "keyserver.log", NULL);
    g_autoptr(GSubprocessLauncher) launcher =
        harness_launcher(a->h, G_SUBPROCESS_FLAGS_STDERR_MERGE);
    g_subprocess_launcher_set_stdout_file_path(launcher, log);
    g_subprocess_launcher_setenv(launcher, "G_MESSAGES_DEBUG", "prox-keyserver", TRUE);
    /* The port file appears (atomically) once the server listens. */
    g_autoptr(GFileMonitor) monitor = monitor_dir_of(port_file);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    const char *keyserver = g_getenv("PROX_KEYSERVER");
    g_assert_nonnull(keyserver);
    g_ptr_array_add(argv, (gpointer)keyserver);
    const char *base[] = {"--db", a->db, "--listen", "127.0.0.1:0", "--port-file", port_file};
    for (gsize i = 0; i < G_N_ELEMENTS(base); i++)
        g_ptr_array_add(argv, (gpointer)base[i]);
    for (gsize i = 0; extra_args != NULL && extra_args[i] != NULL; i++)
        g_ptr_array_add(argv, (gpointer)extra_args[i]);
    g_ptr_array_add(argv, NULL);
    a->keyserver = g_subprocess_launcher_spawnv(launcher, (const char *const *)argv->pdata, &error);
    g_assert_no_error(error);
    g_assert_true(harness_wait(file_has_port, port_file, E2E_TIMEOUT_MS));
    g_autofree char *port = NULL;
    g_file_get_contents(port_file, &port, NULL, &error);
    g_assert_no_error(error);
    a->upload_url = g_strdup_printf("http://127.0.0.1:%s/v1/publish", g_strstrip(port));
}

void e2e_authority_clear(E2eAuthority *a)
{
    if (a->keyserver != NULL) {
        g_subprocess_send_signal(a->keyserver, SIGTERM);
        g_subprocess_wait(a->keyserver, NULL, NULL);
        g_clear_object(&a->keyserver);
    }
    g_free(a->auth_dir);
    g_free(a->db);
    g_free(a->sec);
    g_free(a->pub);
    g_free(a->published);
    g_free(a->upload_url);
    memset(a, 0, sizeof *a);
}

char *e2e_authority_issue_code(E2eAuthority *a, const char *onset, gint64 now, const char *expires)
{
    g_autofree char *now_arg = now != 0 ? g_strdup_printf("@%" G_GINT64_FORMAT, now) : NULL;
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    const char *base[] = {authority_tool(), "issue-code", "--db",        a->db,
                          "--onset",        onset,        "--test-type", "confirmed-test"};
    for (gsize i = 0; i < G_N_ELEMENTS(base); i++)
        g_ptr_array_add(argv, (gpointer)base[i]);
    if (now_arg != NULL) {
        g_ptr_array_add(argv, (gpointer) "--now");
        g_ptr_array_add(argv, now_arg);
    }
    if (expires != NULL) {
        g_ptr_array_add(argv, (gpointer) "--expires");
        g_ptr_array_add(argv, (gpointer)expires);
    }
    g_ptr_array_add(argv, NULL);
    char *code = g_strstrip(e2e_run_ok(a->h, (const char *const *)argv->pdata));
    g_assert_cmpstr(code, !=, "");
    return code;
}

GHashTable *e2e_authority_status(E2eAuthority *a)
{
    const char *argv[] = {authority_tool(), "status", "--db", a->db, NULL};
    g_autofree char *out = e2e_run_ok(a->h, argv);
    GHashTable *status = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
    for (guint i = 0; lines[i] != NULL; i++) {
        g_auto(GStrv) pair = g_strsplit(g_strstrip(lines[i]), " ", 2);
        if (g_strv_length(pair) != 2)
            continue;
        gint64 value = g_ascii_strtoll(pair[1], NULL, 10);
        g_hash_table_insert(status, g_strdup(pair[0]), GSIZE_TO_POINTER((gsize)value));
    }
    g_assert_true(g_hash_table_contains(status, "keys_unpublished"));
    g_assert_true(g_hash_table_contains(status, "codes_used"));
    return status;
}

gint64 e2e_status_get(GHashTable *status, const char *name)
{
    gpointer value = NULL;
    g_assert_true(g_hash_table_lookup_extended(status, name, NULL, &value));
    return (gint64)GPOINTER_TO_SIZE(value);
}

GStrv e2e_authority_index(E2eAuthority *a)
{
    g_autofree char *path = g_build_filename(a->published, "index.txt", NULL);
    g_autofree char *text = NULL;
    g_autoptr(GStrvBuilder) b = g_strv_builder_new();
    if (g_file_get_contents(path, &text, NULL, NULL)) {
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
        for (guint i = 0; lines[i] != NULL; i++) {
            if (g_strstrip(lines[i])[0] != '\0')
                g_strv_builder_add(b, lines[i]);
        }
    }
    return g_strv_builder_end(b);
}

GStrv e2e_authority_lists(E2eAuthority *a)
{
    g_auto(GStrv) names = e2e_authority_index(a);
    g_autoptr(GStrvBuilder) b = g_strv_builder_new();
    for (guint i = 0; names[i] != NULL; i++) {
        if (!g_str_has_suffix(names[i], ".zip"))
            continue;
        g_autofree char *path = g_build_filename(a->published, names[i], NULL);
        g_strv_builder_add(b, path);
    }
    return g_strv_builder_end(b);
}

char *e2e_authority_device_config(E2eAuthority *a, E2eConfigFlags flags)
{
    GString *config = g_string_new(NULL);
    if ((flags & E2E_CONFIG_SYNC) != 0)
        g_string_append_printf(config,
                               "[Sync]\nURL=file://%s/index.txt\nPinnedKeys=%s\n"
                               "IntervalSeconds=86400\n",
                               a->published, a->pub);
    if ((flags & E2E_CONFIG_REPORT) != 0) {
        g_assert_nonnull(a->upload_url);
        g_string_append_printf(config, "[Report]\nURL=%s\n", a->upload_url);
    }
    return g_string_free(config, FALSE);
}

GStrv e2e_authority_publish(E2eAuthority *a, guint max_keys_per_file)
{
    g_auto(GStrv) before = e2e_authority_index(a);
    g_autofree char *max_arg =
        max_keys_per_file != 0 ? g_strdup_printf("%u", max_keys_per_file) : NULL;
    const char *argv[] = {authority_tool(),
                          "publish",
                          "--db",
                          a->db,
                          "--key",
                          a->sec,
                          "--out",
                          a->published,
                          "--min-keys",
                          "0",
                          "--padding-jitter",
                          "0",
                          "--embargo",
                          "0",
                          max_arg != NULL ? "--max-keys-per-file" : NULL,
                          max_arg,
                          NULL};
    g_free(e2e_run_ok(a->h, argv));
    g_auto(GStrv) after = e2e_authority_index(a);
    g_autoptr(GStrvBuilder) b = g_strv_builder_new();
    for (guint i = 0; after[i] != NULL; i++) {
        if (!g_strv_contains((const char *const *)before, after[i]))
            g_strv_builder_add(b, after[i]);
    }
    return g_strv_builder_end(b);
}

void e2e_authority_import_random_keys(E2eAuthority *a, guint n)
{
    g_assert_cmpuint(n, >=, 1);
    g_assert_cmpuint(n, <=, 14);
    gint64 today = (gint64)harness_sim_now(a->h) / DAY * DAY;
    GString *json = g_string_new("{\"temporaryExposureKeys\":[");
    for (guint i = 0; i < n; i++) {
        guint8 key[16];
        for (guint j = 0; j < sizeof key; j++)
            key[j] = (guint8)g_random_int_range(0, 256);
        g_autofree char *b64 = g_base64_encode(key, sizeof key);
        gint64 start = (today - (gint64)(i + 1) * DAY) / 600;
        g_string_append_printf(json,
                               "%s{\"key\":\"%s\",\"rollingStartNumber\":%" G_GINT64_FORMAT
                               ",\"rollingPeriod\":144,\"transmissionRisk\":4}",
                               i > 0 ? "," : "", b64, start);
    }
    g_string_append(json, "]}");
    g_autofree char *path = g_build_filename(a->auth_dir, "import.json", NULL);
    g_autoptr(GError) error = NULL;
    g_file_set_contents(path, json->str, -1, &error);
    g_assert_no_error(error);
    g_string_free(json, TRUE);
    const char *argv[] = {authority_tool(), "import-keys", "--db", a->db, path, NULL};
    g_free(e2e_run_ok(a->h, argv));
}

/* ---- D-Bus ---- */

typedef struct {
    GVariant *reply;
    GError *error;
    gboolean done;
} Call;

static void on_call_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
    Call *c = user_data;
    c->reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &c->error);
    c->done = TRUE;
}

static gboolean call_done(gpointer p)
{
    return ((Call *)p)->done;
}

/* Calls a Manager1 method while the main context runs (the daemon's signals reach the
 * test's proxies meanwhile). */
static GVariant *manager_call(HarnessDaemon *d, const char *method, GVariant *params,
                              const GVariantType *reply_type, GError **error)
{
    Call c = {0};
    g_dbus_connection_call(d->harness->connection, d->bus_name, "/org/proxd", "org.proxd.Manager1",
                           method, params, reply_type, G_DBUS_CALL_FLAGS_NONE, E2E_TIMEOUT_MS, NULL,
                           on_call_done, &c);
    g_assert_true(harness_wait(call_done, &c, E2E_TIMEOUT_MS + 1000));
    if (c.error != NULL)
        g_propagate_error(error, c.error);
    return c.reply;
}

gboolean e2e_call_report(HarnessDaemon *d, const char *code, GVariant *days, GVariant *checkins,
                         guint *inserted, GError **error)
{
    GVariant *none = g_variant_new_fixed_array(G_VARIANT_TYPE_INT64, NULL, 0, sizeof(gint64));
    GVariant *params = g_variant_new("(s@at@ax)", code, days, checkins != NULL ? checkins : none);
    g_autoptr(GVariant) reply = manager_call(d, "Report", params, G_VARIANT_TYPE("(u)"), error);
    if (reply == NULL)
        return FALSE;
    g_variant_get(reply, "(u)", inserted);
    return TRUE;
}

GVariant *e2e_call_sync(HarnessDaemon *d)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reply = manager_call(d, "Sync", NULL, G_VARIANT_TYPE("(a{sv})"), &error);
    g_assert_no_error(error);
    return g_variant_get_child_value(reply, 0);
}

GVariant *e2e_sync_complete(HarnessDaemon *d)
{
    for (guint attempt = 0; attempt < E2E_SYNC_ATTEMPTS; attempt++) {
        GVariant *result = e2e_call_sync(d);
        gboolean complete = FALSE;
        g_assert_true(g_variant_lookup(result, "complete", "b", &complete));
        if (complete)
            return result;
        const char *message = "";
        g_variant_lookup(result, "error", "&s", &message);
        g_test_message("%s: sync attempt %u incomplete: %s", d->name, attempt + 1, message);
        g_variant_unref(result);
    }
    g_assert_not_reached();
}
