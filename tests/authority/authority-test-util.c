/* authority-test-util.c - process, HTTP and database helpers for the authority tests. */
#include "authority-test-util.h"

#include <curl/curl.h>
#include <errno.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>

char *test_tmpdir_new(void)
{
    g_autoptr(GError) error = NULL;
    char *dir = g_dir_make_tmp("prox-authority-test-XXXXXX", &error);
    g_assert_no_error(error);
    return dir;
}

static void remove_tree(const char *path)
{
    GDir *dir = g_dir_open(path, 0, NULL);
    if (dir != NULL) {
        const char *name;
        while ((name = g_dir_read_name(dir)) != NULL) {
            g_autofree char *child = g_build_filename(path, name, NULL);
            if (g_file_test(child, G_FILE_TEST_IS_DIR) &&
                !g_file_test(child, G_FILE_TEST_IS_SYMLINK))
                remove_tree(child);
            else
                g_unlink(child);
        }
        g_dir_close(dir);
    }
    g_rmdir(path);
}

void test_tmpdir_free(char *dir)
{
    if (dir == NULL)
        return;
    remove_tree(dir);
    g_free(dir);
}

int test_run(const char *const *argv, char **out, char **err)
{
    g_autoptr(GError) error = NULL;
    int status = 0;
    g_autofree char *o = NULL;
    g_autofree char *e = NULL;
    g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &o, &e, &status, &error);
    g_assert_no_error(error);
    if (out != NULL)
        *out = g_steal_pointer(&o);
    if (err != NULL)
        *err = g_steal_pointer(&e);
    else if (e != NULL && e[0] != '\0')
        g_test_message("stderr: %s", e);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return -1;
}

static const char *binary(const char *env)
{
    const char *path = g_getenv(env);
    if (path == NULL)
        g_error("%s is not set (run the tests through meson)", env);
    return path;
}

/* Runs the program named by environment variable `env` with the arguments in `args`. */
static int run_binary(const char *env, char **out, char **err, va_list args)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_ptr_array_add(argv, (gpointer)binary(env));
    const char *arg;
    while ((arg = va_arg(args, const char *)) != NULL)
        g_ptr_array_add(argv, (gpointer)arg);
    g_ptr_array_add(argv, NULL);
    return test_run((const char *const *)argv->pdata, out, err);
}

int test_authority(char **out, char **err, ...)
{
    va_list args;
    va_start(args, err);
    int status = run_binary("PROX_AUTHORITY", out, err, args);
    va_end(args);
    return status;
}

int test_prox_tool(char **out, char **err, ...)
{
    va_list args;
    va_start(args, err);
    int status = run_binary("PROX_TOOL", out, err, args);
    va_end(args);
    return status;
}

void test_authority_fixture_setup(TestAuthorityFixture *f, gconstpointer data)
{
    f->dir = test_tmpdir_new();
    f->db = g_build_filename(f->dir, "authority.db", NULL);
    f->out = g_build_filename(f->dir, "pub", NULL);
    g_autofree char *keydir = g_build_filename(f->dir, "keys", NULL);
    f->sec = g_build_filename(keydir, "310-v1.sec", NULL);
    f->pub = g_build_filename(keydir, "310-v1.pub", NULL);
    g_assert_cmpint(test_authority(NULL, NULL, "init-key", "--key-id", "310", "--key-version", "v1",
                                   "--dir", keydir, NULL),
                    ==, 0);
    f->keyring = prox_export_keyring_new();
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_export_keyring_add_file(f->keyring, "310", "v1", f->pub, &error));
}

void test_authority_fixture_teardown(TestAuthorityFixture *f, gconstpointer data)
{
    prox_export_keyring_free(f->keyring);
    g_free(f->db);
    g_free(f->out);
    g_free(f->sec);
    g_free(f->pub);
    test_tmpdir_free(f->dir);
}

TestServer *test_server_start(const char *dir, const char *db, ...)
{
    TestServer *server = g_new0(TestServer, 1);
    server->port_file = g_build_filename(dir, "keyserver.port", NULL);
    g_unlink(server->port_file);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_ptr_array_add(argv, (gpointer)binary("PROX_KEYSERVER"));
    g_ptr_array_add(argv, (gpointer) "--db");
    g_ptr_array_add(argv, (gpointer)db);
    g_ptr_array_add(argv, (gpointer) "--listen");
    g_ptr_array_add(argv, (gpointer) "127.0.0.1:0");
    g_ptr_array_add(argv, (gpointer) "--port-file");
    g_ptr_array_add(argv, server->port_file);
    va_list args;
    va_start(args, db);
    const char *arg;
    while ((arg = va_arg(args, const char *)) != NULL)
        g_ptr_array_add(argv, (gpointer)arg);
    va_end(args);
    g_ptr_array_add(argv, NULL);
    g_autoptr(GError) error = NULL;
    g_spawn_async(NULL, (char **)argv->pdata, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                  &server->pid, &error);
    g_assert_no_error(error);
    /* The server writes the port file atomically once it listens: wait for it (or for the
     * server to die), never for a fixed time. */
    for (int i = 0; i < 2000; i++) {
        g_autofree char *text = NULL;
        if (g_file_get_contents(server->port_file, &text, NULL, NULL)) {
            guint64 port = 0;
            g_assert_true(g_ascii_string_to_unsigned(g_strstrip(text), 10, 1, 65535, &port, NULL));
            server->port = (guint16)port;
            server->url = g_strdup_printf("http://127.0.0.1:%u", server->port);
            return server;
        }
        int status = 0;
        if (waitpid(server->pid, &status, WNOHANG) == server->pid)
            g_error("prox-keyserver exited before listening (status %d)", status);
        g_usleep(5000);
    }
    g_error("prox-keyserver did not write %s within 10 s", server->port_file);
}

int test_server_stop(TestServer *server)
{
    kill(server->pid, SIGTERM);
    int status = 0;
    while (waitpid(server->pid, &status, 0) < 0 && errno == EINTR)
        ;
    g_spawn_close_pid(server->pid);
    /* A clean exit removes the port file. */
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        g_assert_false(g_file_test(server->port_file, G_FILE_TEST_EXISTS));
    g_free(server->port_file);
    g_free(server->url);
    g_free(server);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static size_t on_write(char *data, size_t size, size_t n, void *user_data)
{
    g_string_append_len(user_data, data, (gssize)(size * n));
    return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *user_data)
{
    char **retry_after = user_data;
    size_t len = size * n;
    if (retry_after != NULL && len > 12 && g_ascii_strncasecmp(data, "Retry-After:", 12) == 0) {
        g_free(*retry_after);
        *retry_after = g_strstrip(g_strndup(data + 12, len - 12));
    }
    return len;
}

static long http(const char *method, const char *url, const char *content_type, const char *data,
                 size_t len, gboolean chunked, char **body, char **retry_after)
{
    CURL *curl = curl_easy_init();
    g_assert_nonnull(curl);
    g_autoptr(GString) response = g_string_new(NULL);
    struct curl_slist *headers = NULL;
    if (content_type != NULL) {
        g_autofree char *h = g_strdup_printf("Content-Type: %s", content_type);
        headers = curl_slist_append(headers, h);
    }
    if (chunked)
        headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (data != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, data);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, response);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    if (retry_after != NULL)
        *retry_after = NULL;
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, retry_after);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (body != NULL)
        *body = g_strdup(response->str);
    return status;
}

long test_http(const char *method, const char *url, const char *content_type, const char *data,
               size_t len, char **body, char **retry_after)
{
    return http(method, url, content_type, data, len, FALSE, body, retry_after);
}

long test_http_chunked(const char *url, const char *content_type, const char *data, size_t len,
                       char **body)
{
    return http("POST", url, content_type, data, len, TRUE, body, NULL);
}

static JsonObject *parse_object(JsonParser *parser, const char *body)
{
    if (body == NULL || !json_parser_load_from_data(parser, body, -1, NULL))
        return NULL;
    JsonNode *root = json_parser_get_root(parser);
    return root != NULL && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
}

char *test_json_reason(const char *body)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *object = parse_object(parser, body);
    if (object == NULL || !json_object_has_member(object, "code") ||
        !json_object_has_member(object, "error"))
        return NULL;
    return g_strdup(json_object_get_string_member(object, "code"));
}

gint64 test_json_int(const char *body, const char *name)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *object = parse_object(parser, body);
    if (object == NULL || !json_object_has_member(object, name))
        return -1;
    return json_object_get_int_member(object, name);
}

gint64 test_db_int(const char *db, const char *sql)
{
    sqlite3 *sqlite = NULL;
    g_assert_cmpint(sqlite3_open_v2(db, &sqlite, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
    sqlite3_busy_timeout(sqlite, 10000);
    sqlite3_stmt *stmt = NULL;
    g_assert_cmpint(sqlite3_prepare_v2(sqlite, sql, -1, &stmt, NULL), ==, SQLITE_OK);
    g_assert_cmpint(sqlite3_step(stmt), ==, SQLITE_ROW);
    gint64 v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(sqlite);
    return v;
}

char *test_key_json(const uint8_t key[PROX_KEY_LEN], uint32_t start, uint32_t period)
{
    g_autofree char *b64 = g_base64_encode(key, PROX_KEY_LEN);
    return g_strdup_printf("{\"key\":\"%s\",\"rollingStartNumber\":%u,\"rollingPeriod\":%u,"
                           "\"transmissionRisk\":4}",
                           b64, start, period);
}

char *test_upload_body(const char *code, guint n, uint8_t *keys_out)
{
    g_assert_cmpint(sodium_init(), >=, 0);
    GString *s = g_string_new(NULL);
    g_string_append_printf(s, "{\"code\":\"%s\",\"temporaryExposureKeys\":[", code);
    for (guint i = 0; i < n; i++) {
        uint8_t key[PROX_KEY_LEN];
        randombytes_buf(key, sizeof key);
        if (keys_out != NULL)
            memcpy(keys_out + i * PROX_KEY_LEN, key, PROX_KEY_LEN);
        /* One key a day, the last one ending at the start of today. */
        g_autofree char *k = test_key_json(key, TEST_TODAY_START - (n - i) * 144, 144);
        g_string_append_printf(s, "%s%s", i ? "," : "", k);
    }
    g_string_append(s, "]}");
    return g_string_free(s, FALSE);
}

char *test_issue_code(const char *db, const char *now, const char *expires)
{
    g_autofree char *out = NULL;
    int status =
        test_authority(&out, NULL, "issue-code", "--db", db, "--onset", "2020-05-17", "--test-type",
                       "confirmed-test", "--now", now != NULL ? now : TEST_NOW_ARG, "--expires",
                       expires != NULL ? expires : "24h", NULL);
    g_assert_cmpint(status, ==, 0);
    return g_strdup(g_strstrip(out));
}
