/* e2e-util.h - shared pieces of the e2e suites: the health authority's programs
 * (prox-authority, prox-keyserver) in a harness world, running tools and proxctl as
 * children, and calls of proxd's D-Bus API made while the main context runs (the daemon's
 * signals reach the test's proxies meanwhile).
 *
 * Like the harness, nothing here sleeps: waits are on files, child exits and D-Bus replies.
 */
#pragma once

#include <gio/gio.h>

#include "harness.h"

G_BEGIN_DECLS

#define E2E_KEY_ID "310"
#define E2E_KEY_VERSION "v1"
#define E2E_TIMEOUT_MS 60000
#define E2E_SYNC_ATTEMPTS 3

typedef struct {
    Harness *h;
    char *auth_dir;
    char *db;
    char *sec;
    char *pub;
    char *published; /* the publish directory */
    GSubprocess *keyserver;
    char *upload_url; /* http://127.0.0.1:PORT/v1/publish, once the key server runs */
} E2eAuthority;

/* Creates the authority's directories and signing key in h->dir. */
void e2e_authority_init(E2eAuthority *a, Harness *h);
/* Starts prox-keyserver on 127.0.0.1:0 (with `extra_args`, NULL-terminated, may be NULL)
 * and waits for its port file. */
void e2e_authority_start_keyserver(E2eAuthority *a, const char *const *extra_args);
/* SIGTERM to the key server, waits, frees everything. */
void e2e_authority_clear(E2eAuthority *a);

/* `prox-authority issue-code` for onset day `onset` (YYYY-MM-DD); `now` (unix seconds, 0 =
 * the world's clock) and `expires` (e.g. "1h", NULL = the default) are passed on. */
char *e2e_authority_issue_code(E2eAuthority *a, const char *onset, gint64 now, const char *expires);
/* `prox-authority status`, as name -> value. */
GHashTable *e2e_authority_status(E2eAuthority *a);
gint64 e2e_status_get(GHashTable *status, const char *name);
/* `prox-authority publish` of everything stored, without padding or embargo, at most
 * `max_keys_per_file` keys a file (0 = the default). Returns the names of the files the
 * run wrote (from the index: the names that were not in it before). */
GStrv e2e_authority_publish(E2eAuthority *a, guint max_keys_per_file);
/* `prox-authority import-keys` of `n` random keys, one a day, the newest ending at the
 * start of the world's current UTC day. */
void e2e_authority_import_random_keys(E2eAuthority *a, guint n);
/* The lines of the published index.txt (empty when there is none). */
GStrv e2e_authority_index(E2eAuthority *a);
/* The published key lists (.zip), as paths, in index order. */
GStrv e2e_authority_lists(E2eAuthority *a);

typedef enum {
    E2E_CONFIG_SYNC = 1 << 0,   /* [Sync] from the publish directory, the key pinned */
    E2E_CONFIG_REPORT = 1 << 1, /* [Report] to the key server (which must be running) */
} E2eConfigFlags;

/* The proxd configuration of a device that syncs from and/or reports to `a`. */
char *e2e_authority_device_config(E2eAuthority *a, E2eConfigFlags flags);

/* Runs a program on the test bus and sim clock with `stdin_fd` (-1: none) as its standard
 * input; waits for its exit. Returns the exit status (-1 when it was killed); *out and *err
 * (optional) get what it printed. */
int e2e_run(Harness *h, const char *const *argv, int stdin_fd, char **out, char **err);
/* The same; asserts exit status 0 and returns stdout. */
char *e2e_run_ok(Harness *h, const char *const *argv);
/* `proxctl --session --bus-name=D's ARGS...` (PROXCTL) through e2e_run(). */
int e2e_proxctl(HarnessDaemon *d, const char *const *args, char **out, char **err);
/* Waits until `path` exists (a monitor on its directory wakes the wait). */
gboolean e2e_wait_file(const char *path);

/* Report(code, days, checkins) over D-Bus; `days` (at) and `checkins` (ax, NULL: none) are
 * not consumed. */
gboolean e2e_call_report(HarnessDaemon *d, const char *code, GVariant *days, GVariant *checkins,
                         guint *inserted, GError **error);
/* One Sync() call; returns its result a{sv} (asserts the call itself succeeded). */
GVariant *e2e_call_sync(HarnessDaemon *d);
/* Sync() until a run is complete (the first call may join a scheduled run that started
 * before the list was published, and fail); asserts one of E2E_SYNC_ATTEMPTS completes and
 * returns its result a{sv}. */
GVariant *e2e_sync_complete(HarnessDaemon *d);

G_END_DECLS
