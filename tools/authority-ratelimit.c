/* authority-ratelimit.c - token buckets in a GHashTable keyed by client address. */
#define G_LOG_DOMAIN "prox-keyserver"

#include "authority-ratelimit.h"

#include <math.h>

typedef struct {
    double tokens;
    gint64 updated_us;
} Bucket;

struct _AuthorityRateLimit {
    double rate;
    double burst;
    guint max_clients;
    GHashTable *buckets; /* client -> Bucket */
};

AuthorityRateLimit *authority_rate_limit_new(double rate, double burst, guint max_clients)
{
    AuthorityRateLimit *limit = g_new0(AuthorityRateLimit, 1);
    limit->rate = rate;
    limit->burst = MAX(burst, 1.0);
    limit->max_clients = MAX(max_clients, 1);
    limit->buckets = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    return limit;
}

void authority_rate_limit_free(AuthorityRateLimit *limit)
{
    if (limit == NULL)
        return;
    g_hash_table_destroy(limit->buckets);
    g_free(limit);
}

static void refill(const AuthorityRateLimit *limit, Bucket *b, gint64 now_us)
{
    if (now_us > b->updated_us) {
        b->tokens = MIN(limit->burst, b->tokens + limit->rate * (double)(now_us - b->updated_us) /
                                                      G_USEC_PER_SEC);
        b->updated_us = now_us;
    }
}

guint authority_rate_limit_prune(AuthorityRateLimit *limit, gint64 now_us)
{
    GHashTableIter iter;
    gpointer value;
    g_hash_table_iter_init(&iter, limit->buckets);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        Bucket *b = value;
        refill(limit, b, now_us);
        if (b->tokens >= limit->burst)
            g_hash_table_iter_remove(&iter);
    }
    return g_hash_table_size(limit->buckets);
}

/* Past max_clients even after pruning: evict the buckets with most tokens (least recent
 * pressure) until there is room, so an address flood cannot grow memory without bound. */
static void make_room(AuthorityRateLimit *limit, gint64 now_us)
{
    if (authority_rate_limit_prune(limit, now_us) < limit->max_clients)
        return;
    double threshold = limit->burst / 2;
    while (g_hash_table_size(limit->buckets) >= limit->max_clients) {
        GHashTableIter iter;
        gpointer value;
        g_hash_table_iter_init(&iter, limit->buckets);
        while (g_hash_table_iter_next(&iter, NULL, &value)) {
            if (((Bucket *)value)->tokens >= threshold)
                g_hash_table_iter_remove(&iter);
        }
        threshold /= 2;
        if (threshold < 1e-3) {
            g_hash_table_remove_all(limit->buckets);
            break;
        }
    }
}

gboolean authority_rate_limit_take(AuthorityRateLimit *limit, const char *client, gint64 now_us,
                                   guint *retry_after_s)
{
    if (limit->rate <= 0)
        return TRUE;
    Bucket *b = g_hash_table_lookup(limit->buckets, client);
    if (b == NULL) {
        if (g_hash_table_size(limit->buckets) >= limit->max_clients)
            make_room(limit, now_us);
        b = g_new(Bucket, 1);
        b->tokens = limit->burst;
        b->updated_us = now_us;
        g_hash_table_insert(limit->buckets, g_strdup(client), b);
    }
    refill(limit, b, now_us);
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return TRUE;
    }
    double wait = ceil((1.0 - b->tokens) / limit->rate);
    *retry_after_s = (guint)CLAMP(wait, 1.0, 86400.0);
    return FALSE;
}
