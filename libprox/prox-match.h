/* prox-match.h - exposure matching: published keys x observed RPIs -> matched sightings.
 *
 * A matcher indexes the observed sightings once, then takes diagnosis keys in chunks of any
 * size (so key lists can be streamed, never held in memory at once), derives each key's
 * RPIs on all worker threads and looks them up.
 *
 * Rules (PROTOCOL.md §1):
 * - A key with rolling_start s and rolling_period p (1..144, any alignment) has the RPIs of
 *   intervals s .. s + p - 1. Keys with a period outside 1..144, or whose last interval
 *   would pass 2^32 - 1, are skipped (counted in ProxMatchStats.keys_invalid).
 * - A sighting heard from first_seen to last_seen matches the RPI of interval r when its RPI
 *   equals it and some moment of [first_seen, last_seen] lies in an interval within
 *   ±PROX_MATCH_TOLERANCE_INTERVALS (12) of r, i.e.
 *       ENIN(first_seen) <= r + 12  and  ENIN(last_seen) >= r - 12
 *   with ENIN(t) = floor(t / 600) (first_seen and last_seen are swapped if reversed).
 * - The AEM of a matching sighting is decrypted with the key's AEMK (derived only for
 *   matched keys); the match is dropped when the metadata's major version (top two bits of
 *   byte 0) is not 1 or the TX power (byte 1, signed dBm) is outside -50..+20.
 *
 * Results are sorted by (key_index, sighting.first_seen, sighting.rpi), ties by the order
 * keys were fed and the sightings' positions, so they are identical for any thread count.
 */
#pragma once

#include "prox-crypto-fast.h"
#include "prox-types.h"

G_BEGIN_DECLS

#define PROX_MATCH_TX_POWER_MIN (-50)
#define PROX_MATCH_TX_POWER_MAX 20

typedef struct _ProxMatcher ProxMatcher;

typedef struct {
    guint64 keys;              /* keys fed */
    guint64 keys_invalid;      /* skipped: bad rolling period or interval overflow */
    guint64 rpis;              /* RPIs derived and looked up */
    guint64 candidates;        /* RPIs that passed the filter (true and false positives) */
    guint64 rpi_hits;          /* (RPI, sighting) pairs with equal RPIs */
    guint64 rejected_window;   /* ... heard outside the ±12 interval window */
    guint64 rejected_metadata; /* ... with an AEM whose metadata version is not 1.x */
    guint64 rejected_tx_power; /* ... with a TX power outside -50..+20 dBm */
    guint64 matched;           /* matched sightings reported */
} ProxMatchStats;

/* Indexes `sightings`, which the matcher reads until it is freed (it keeps no copy: the
 * caller must neither free nor change them meanwhile). n_threads = 0 means one per online
 * CPU. `impl` chooses the crypto implementation, NULL the default
 * (prox_crypto_impl_default()). Fails (PROX_ERROR_INVALID_ARGUMENT) when `impl` is not
 * supported by this CPU or there are 2^32 - 1 sightings or more. */
ProxMatcher *prox_matcher_new(const ProxSighting *sightings, size_t n_sightings, guint n_threads,
                              const ProxCryptoImpl *impl, GError **error);
void prox_matcher_free(ProxMatcher *matcher);

guint prox_matcher_get_n_threads(const ProxMatcher *matcher);
ProxCryptoImpl prox_matcher_get_impl(const ProxMatcher *matcher);

/* Matches keys[0..n) on all threads and returns when done; key keys[i] is reported with
 * key_index first_key_index + i. Not reentrant: one feed at a time per matcher. */
void prox_matcher_feed(ProxMatcher *matcher, const ProxDiagnosisKey *keys, size_t n,
                       guint first_key_index);

/* The matches of every key fed since the matcher was created or last finished, as a sorted
 * GArray of ProxMatchedSighting (transfer full). The matcher can then be fed again. */
GArray *prox_matcher_finish(ProxMatcher *matcher);

/* Counters since the matcher was created. */
void prox_matcher_get_stats(const ProxMatcher *matcher, ProxMatchStats *stats);

/* One-shot: all keys against all sightings. NULL only when the matcher cannot be set up. */
GArray *prox_match(const ProxSighting *sightings, size_t n_sightings, const ProxDiagnosisKey *keys,
                   size_t n_keys, guint n_threads, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ProxMatcher, prox_matcher_free)

G_END_DECLS
