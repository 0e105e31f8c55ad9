/* authority-ratelimit.h - per-client token buckets for the key server.
 *
 * Each client address has a bucket of `burst` tokens refilled at `rate` tokens a second; a
 * request takes one token or is refused with the time until the next one. Time is the
 * monotonic clock in microseconds, passed in. Buckets that have refilled completely carry no
 * information and are dropped, so memory follows the number of recently active clients; past
 * max_clients, the fullest buckets go first.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _AuthorityRateLimit AuthorityRateLimit;

/* rate <= 0 disables limiting. */
AuthorityRateLimit *authority_rate_limit_new(double rate, double burst, guint max_clients);
void authority_rate_limit_free(AuthorityRateLimit *limit);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AuthorityRateLimit, authority_rate_limit_free)

/* TRUE when `client` may make a request at now_us; else *retry_after_s is the wait in whole
 * seconds (at least 1). */
gboolean authority_rate_limit_take(AuthorityRateLimit *limit, const char *client, gint64 now_us,
                                   guint *retry_after_s);

/* Drops buckets that are full at now_us; returns how many remain. */
guint authority_rate_limit_prune(AuthorityRateLimit *limit, gint64 now_us);

G_END_DECLS
