/* e2e-util.h - shared pieces of the e2e suites: the health authority's programs
 * (prox-authority, prox-keyserver) in a harness world, running tools and proxctl as
 * children, and calls of proxd's D-Bus API that do not depend on the generated code's
 * version of a method's signature.
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

/* Runs a program on the test bus and sim clock with `stdin_fd` (-1: none) as its standard
 * input; waits for its exit. Returns the exit status (-1 when it was killed); *out and *err
 * (optional) get what it printed. */
int e2e_run(Harness *h, const char *const *argv, int stdin_fd, char **out, char **err);
/* The same; asserts exit status 0 and returns stdout. */
char *e2e_run_ok(Harness *h, const char *const *argv);

/* Number of input arguments of org.proxd.Manager1.Report as the running daemon declares it
 * (2: code, days; 3: code, days, checkins). */
guint e2e_report_arity(HarnessDaemon *d);
/* Report(code, days[, checkins = []]) whichever signature the daemon has; `days` (at) is
 * not consumed. */
gboolean e2e_call_report(HarnessDaemon *d, const char *code, GVariant *days, guint *inserted,
                         GError **error);
/* One Sync() call; returns its result a{sv} (asserts the call itself succeeded). */
GVariant *e2e_call_sync(HarnessDaemon *d);

G_END_DECLS
