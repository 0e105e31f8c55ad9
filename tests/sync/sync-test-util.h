/* sync-test-util.h - helpers of the 'sync' suite: a static file server with ETags and
 * injectable faults (libsoup, on the test's main context), log capture, and device-store
 * builders (sightings heard from a known TEK). prox-authority and prox-keyserver are run
 * through tests/authority/authority-test-util.h. */
#pragma once

#include "authority-test-util.h"
#include "prox-keys.h"
#include "prox-store.h"

#include <gio/gio.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

#define DAY 86400

/* ---- static file server ---- */

typedef enum {
    FAULT_NONE,
    /* Content-Length of the whole file, then half of it, then the connection closes. */
    FAULT_TRUNCATE,
    /* No Content-Length, half of the file, then the connection closes. */
    FAULT_TRUNCATE_NO_LENGTH,
    /* The server stops listening, sends half of the file and closes: down mid-download. */
    FAULT_DIE,
    /* Never answers (until the server is freed). */
    FAULT_HANG,
    /* 503 with Retry-After: 900. */
    FAULT_UNAVAILABLE,
} FileServerFault;

typedef struct _FileServer FileServer;

/* Serves `dir` on 127.0.0.1:<free port>, GET only, strong ETags (SHA-256 of the content)
 * with If-None-Match -> 304. Runs on the thread-default main context. */
FileServer *file_server_new(const char *dir);
void file_server_free(FileServer *server);
/* http://127.0.0.1:PORT (no trailing slash). */
const char *file_server_url(FileServer *server);
/* Applies `fault` to every request of `path` ("/index.txt") until changed. */
void file_server_set_fault(FileServer *server, const char *path, FileServerFault fault);
/* Listens again on the same port after FAULT_DIE. */
void file_server_restart(FileServer *server);
/* Requests of `path` answered with `status` (0: any status) since the last reset; faults
 * that cut the answer count as status 0. */
guint file_server_count(FileServer *server, const char *path, guint status);
/* Requests of any path ending in `suffix` (e.g. ".zip"). */
guint file_server_count_suffix(FileServer *server, const char *suffix);
void file_server_reset_counts(FileServer *server);
/* The last request's headers (for checks of what a client sends). */
SoupMessageHeaders *file_server_last_headers(FileServer *server);

/* ---- log capture ---- */

/* Installs a log writer that keeps every message of the proxd-sync, proxd-report and
 * prox-detect domains (they are also printed as TAP comments) and passes the others on. */
void log_capture_install(void);
/* TRUE when a captured message contains all the given substrings (NULL-terminated). */
gboolean log_capture_contains(const char *first, ...) G_GNUC_NULL_TERMINATED;
void log_capture_clear(void);

/* ---- device store ---- */

/* Deterministic random (g_test_rand). */
void test_random(void *buf, size_t len, void *user_data);
/* A TEK for the day of `t`. */
ProxTek test_tek_for_day(gint64 t);
/* Scans of 4 s every 60 s for `minutes` from `start`, hearing `tek` at `rssi` dBm
 * (TX power 0 dBm in the AEM). */
void test_record(ProxStore *store, gint64 start, guint minutes, const ProxTek *tek, int rssi);
ProxStore *test_store_open(const char *path);

/* ---- authority ---- */

/* KEYS.json of GAEN's upload form for `teks`. */
char *test_keys_json(const ProxTek *teks, guint n);

/* Waits on the thread-default main context until *flag is set. */
void test_wait_flag(gboolean *flag);

G_END_DECLS
