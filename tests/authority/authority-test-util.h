/* authority-test-util.h - helpers for the 'authority' suite: temporary directories, running
 * prox-authority, starting prox-keyserver on a free loopback port, HTTP via libcurl, and
 * looking into the authority database. */
#pragma once

#include "prox-export.h"
#include "prox-types.h"

#include <glib.h>
#include <glib/gstdio.h>

G_BEGIN_DECLS

/* 2020-05-20T18:40:00Z, interval 2650000; the day's first interval is 2649888. */
#define TEST_NOW 1590000000
#define TEST_NOW_ARG "@1590000000"
#define TEST_TODAY_START 2649888u

/* A fresh directory under the test's temporary dir; removed by test_tmpdir_free(). */
char *test_tmpdir_new(void);
void test_tmpdir_free(char *dir);

/* Runs argv (NULL-terminated) and returns its exit status; stdout/stderr optional. */
int test_run(const char *const *argv, char **out, char **err);
/* Runs prox-authority with the given arguments (NULL-terminated). */
int test_authority(char **out, char **err, ...) G_GNUC_NULL_TERMINATED;
/* Runs prox-tool with the given arguments (NULL-terminated). */
int test_prox_tool(char **out, char **err, ...) G_GNUC_NULL_TERMINATED;

/* The authority's files in a fresh directory: its database, publish directory ("pub"), a
 * signing key made by `prox-authority init-key` (id 310, version v1) and a keyring pinning
 * that key's public half. */
typedef struct {
    char *dir;
    char *db;
    char *sec;
    char *pub;
    char *out;
    ProxExportKeyring *keyring;
} TestAuthorityFixture;
void test_authority_fixture_setup(TestAuthorityFixture *f, gconstpointer data);
void test_authority_fixture_teardown(TestAuthorityFixture *f, gconstpointer data);

/* A prox-keyserver listening on 127.0.0.1:<port>. */
typedef struct {
    GPid pid;
    guint16 port;
    char *port_file;
    char *url; /* http://127.0.0.1:PORT */
} TestServer;

/* Starts prox-keyserver --db DB --listen 127.0.0.1:0 --port-file ... plus extra arguments
 * (NULL-terminated) and waits for the port file. */
TestServer *test_server_start(const char *dir, const char *db, ...) G_GNUC_NULL_TERMINATED;
/* SIGTERM, waits for exit; returns the exit status (-1 when killed by a signal). */
int test_server_stop(TestServer *server);

/* HTTP: returns the status (0 on transport failure); *body gets the answer and
 * *retry_after the Retry-After header (both optional). content_type and data may be NULL. */
long test_http(const char *method, const char *url, const char *content_type, const char *data,
               size_t len, char **body, char **retry_after);
/* The same with the body sent chunked (no Content-Length). */
long test_http_chunked(const char *url, const char *content_type, const char *data, size_t len,
                       char **body);

/* The "code" member of a JSON error answer (newly allocated), or NULL. */
char *test_json_reason(const char *body);
/* The integer member `name` of a JSON object, or -1. */
gint64 test_json_int(const char *body, const char *name);

/* SELECT returning one integer, on the database at path. */
gint64 test_db_int(const char *db, const char *sql);

/* A key as GAEN JSON. */
char *test_key_json(const uint8_t key[PROX_KEY_LEN], uint32_t start, uint32_t period);

/* Body of an upload: code plus n keys ending yesterday (fresh random key data). keys_out
 * (optional) receives the key data, n * 16 bytes. */
char *test_upload_body(const char *code, guint n, uint8_t *keys_out);

/* Issues a code through prox-authority (--now TEST_NOW unless `now` given). */
char *test_issue_code(const char *db, const char *now, const char *expires);

G_END_DECLS
