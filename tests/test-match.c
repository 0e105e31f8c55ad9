/* test-match.c - exposure matching: every rule of PROTOCOL.md §1 on hand-built cases, and a
 * property test comparing the matcher (every crypto path this CPU supports, 1, 2, 3 and 8
 * threads, keys fed in random chunks) with a straightforward reference written here:
 * OpenSSL EVP for each RPI, a linear scan of the sightings.
 *
 * Planted sightings are made with the reference key schedule (prox-keys.h). Random inputs
 * come from g_test_rand_*: rerun a failure with the seed printed in the TAP output.
 */
#include "prox-keys.h"
#include "prox-match.h"

#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <string.h>

/* 2020-05-20T00:00:00Z, a multiple of 144. */
#define BASE_ENIN 2649744u
#define ISEC(enin) ((gint64)(enin)*PROX_INTERVAL_SECONDS)

/* ---------- helpers: keys and sightings ---------- */

static ProxDiagnosisKey make_key(const uint8_t tek[16], uint32_t start, uint32_t period)
{
    ProxDiagnosisKey k;
    memset(&k, 0, sizeof k);
    memcpy(k.tek.key, tek, 16);
    k.tek.rolling_start = start;
    k.tek.rolling_period = period;
    k.transmission_risk_level = 4;
    k.report_type = PROX_REPORT_CONFIRMED_TEST;
    return k;
}

static ProxDiagnosisKey random_key(uint32_t start, uint32_t period)
{
    uint8_t tek[16];
    for (int i = 0; i < 16; i++)
        tek[i] = (uint8_t)g_test_rand_int_range(0, 256);
    return make_key(tek, start, period);
}

static void random_bytes(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)g_test_rand_int_range(0, 256);
}

/* A sighting of `key`'s RPI for `interval` heard at first..last, its AEM carrying
 * metadata {version, tx, 0, 0}. */
static ProxSighting heard(const ProxDiagnosisKey *key, uint32_t interval, gint64 first, gint64 last,
                          uint8_t version, int8_t tx)
{
    ProxSighting s;
    memset(&s, 0, sizeof s);
    uint8_t rpik[16], aemk[16], meta[4];
    prox_rpik_derive(key->tek.key, rpik);
    prox_aemk_derive(key->tek.key, aemk);
    prox_rpi_compute(rpik, interval, &s.rpi);
    prox_metadata_encode(tx, meta);
    meta[0] = version;
    prox_aem_crypt(aemk, &s.rpi, meta, s.aem.bytes);
    s.first_seen = first;
    s.last_seen = last;
    s.scan_instance_id = g_test_rand_int_range(1, 1000000);
    s.report_count = 3;
    s.rssi_count = 3;
    s.rssi_min = -70;
    s.rssi_max = -60;
    s.rssi_mean = -65;
    return s;
}

static ProxSighting noise(gint64 t)
{
    ProxSighting s;
    memset(&s, 0, sizeof s);
    random_bytes(s.rpi.bytes, 16);
    random_bytes(s.aem.bytes, 4);
    s.first_seen = t;
    s.last_seen = t + 4;
    s.scan_instance_id = g_test_rand_int_range(1, 1000000);
    s.report_count = 1;
    return s;
}

static gboolean same_sighting(const ProxSighting *a, const ProxSighting *b)
{
    return memcmp(a->rpi.bytes, b->rpi.bytes, 16) == 0 &&
           memcmp(a->aem.bytes, b->aem.bytes, 4) == 0 &&
           a->scan_instance_id == b->scan_instance_id && a->first_seen == b->first_seen &&
           a->last_seen == b->last_seen && a->report_count == b->report_count &&
           a->rssi_count == b->rssi_count && a->rssi_min == b->rssi_min &&
           a->rssi_max == b->rssi_max && a->rssi_mean == b->rssi_mean;
}

static gboolean same_key(const ProxDiagnosisKey *a, const ProxDiagnosisKey *b)
{
    return memcmp(a->tek.key, b->tek.key, 16) == 0 &&
           a->tek.rolling_start == b->tek.rolling_start &&
           a->tek.rolling_period == b->tek.rolling_period &&
           a->transmission_risk_level == b->transmission_risk_level &&
           a->report_type == b->report_type && a->has_days_since_onset == b->has_days_since_onset &&
           a->days_since_onset == b->days_since_onset;
}

static GPtrArray *supported_impls(void)
{
    GPtrArray *impls = g_ptr_array_new_with_free_func(g_free);
    for (int p = 0; p < PROX_CRYPTO_N_PATHS; p++) {
        ProxCryptoImpl impl;
        if (prox_crypto_path_impl((ProxCryptoPath)p, &impl))
            g_ptr_array_add(impls, g_memdup2(&impl, sizeof impl));
        else
            g_test_message("path %s not supported here", prox_crypto_path_name((ProxCryptoPath)p));
    }
    return impls;
}

/* Matches with the default implementation on `threads` threads, keys fed in one go. */
static GArray *match_all(const ProxSighting *s, size_t ns, const ProxDiagnosisKey *keys, size_t nk,
                         guint threads, ProxMatchStats *stats)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(ProxMatcher) m = prox_matcher_new(s, ns, threads, NULL, &error);
    g_assert_no_error(error);
    prox_matcher_feed(m, keys, nk, 0);
    GArray *r = prox_matcher_finish(m);
    if (stats != NULL)
        prox_matcher_get_stats(m, stats);
    return r;
}

#define RESULT(r, i) (&g_array_index((r), ProxMatchedSighting, (i)))

/* ---------- the reference matcher ---------- */

typedef struct {
    ProxMatchedSighting m;
    guint64 seq;
    size_t sighting;
} RefMatch;

static void evp_hkdf(const uint8_t tek[16], const char *info, uint8_t out[16])
{
    static const uint8_t zero_salt[32];
    size_t len = 16;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    g_assert_cmpint(EVP_PKEY_derive_init(ctx), ==, 1);
    g_assert_cmpint(EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()), ==, 1);
    g_assert_cmpint(EVP_PKEY_CTX_set1_hkdf_salt(ctx, zero_salt, 32), ==, 1);
    g_assert_cmpint(EVP_PKEY_CTX_set1_hkdf_key(ctx, tek, 16), ==, 1);
    g_assert_cmpint(
        EVP_PKEY_CTX_add1_hkdf_info(ctx, (const unsigned char *)info, (int)strlen(info)), ==, 1);
    g_assert_cmpint(EVP_PKEY_derive(ctx, out, &len), ==, 1);
    EVP_PKEY_CTX_free(ctx);
}

static void evp_crypt(const EVP_CIPHER *cipher, const uint8_t key[16], const uint8_t *iv,
                      const uint8_t *in, int len, uint8_t *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int outl = 0;
    g_assert_cmpint(EVP_EncryptInit_ex(ctx, cipher, NULL, key, iv), ==, 1);
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    g_assert_cmpint(EVP_EncryptUpdate(ctx, out, &outl, in, len), ==, 1);
    g_assert_cmpint(outl, ==, len);
    EVP_CIPHER_CTX_free(ctx);
}

static gint64 floor_div600(gint64 t)
{
    return t >= 0 ? t / 600 : -((-t + 599) / 600);
}

static int compare_ref(const void *a, const void *b)
{
    const RefMatch *x = a, *y = b;
    if (x->m.key_index != y->m.key_index)
        return x->m.key_index < y->m.key_index ? -1 : 1;
    if (x->m.sighting.first_seen != y->m.sighting.first_seen)
        return x->m.sighting.first_seen < y->m.sighting.first_seen ? -1 : 1;
    int c = memcmp(x->m.sighting.rpi.bytes, y->m.sighting.rpi.bytes, 16);
    if (c != 0)
        return c;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return x->sighting < y->sighting ? -1 : x->sighting > y->sighting;
}

typedef struct {
    guint64 rpi_hits, rejected_window, rejected_metadata, rejected_tx_power;
} RefCounts;

/* PROTOCOL.md §1 spelled out as plainly as possible. */
static GArray *reference_match(const ProxSighting *s, size_t ns, const ProxDiagnosisKey *keys,
                               size_t nk, RefCounts *counts)
{
    memset(counts, 0, sizeof *counts);
    GArray *found = g_array_new(FALSE, TRUE, sizeof(RefMatch));
    for (size_t k = 0; k < nk; k++) {
        const ProxTek *tek = &keys[k].tek;
        if (tek->rolling_period < 1 || tek->rolling_period > 144 ||
            (guint64)tek->rolling_start + tek->rolling_period > (guint64)G_MAXUINT32 + 1)
            continue;
        uint8_t rpik[16], aemk[16];
        evp_hkdf(tek->key, "EN-RPIK", rpik);
        evp_hkdf(tek->key, "EN-AEMK", aemk);
        for (uint32_t j = 0; j < tek->rolling_period; j++) {
            uint32_t r = tek->rolling_start + j;
            uint8_t block[16] = {'E', 'N', '-', 'R', 'P', 'I'}, rpi[16];
            block[12] = (uint8_t)r;
            block[13] = (uint8_t)(r >> 8);
            block[14] = (uint8_t)(r >> 16);
            block[15] = (uint8_t)(r >> 24);
            evp_crypt(EVP_aes_128_ecb(), rpik, NULL, block, 16, rpi);
            for (size_t i = 0; i < ns; i++) {
                if (memcmp(s[i].rpi.bytes, rpi, 16) != 0)
                    continue;
                counts->rpi_hits++;
                gint64 lo = floor_div600(MIN(s[i].first_seen, s[i].last_seen));
                gint64 hi = floor_div600(MAX(s[i].first_seen, s[i].last_seen));
                if (lo > (gint64)r + 12 || hi < (gint64)r - 12) {
                    counts->rejected_window++;
                    continue;
                }
                uint8_t meta[4];
                evp_crypt(EVP_aes_128_ctr(), aemk, rpi, s[i].aem.bytes, 4, meta);
                int8_t tx = (int8_t)meta[1];
                if ((meta[0] & 0xc0) != 0x40) {
                    counts->rejected_metadata++;
                    continue;
                }
                if (tx < -50 || tx > 20) {
                    counts->rejected_tx_power++;
                    continue;
                }
                RefMatch rm;
                memset(&rm, 0, sizeof rm);
                rm.m.key_index = (guint)k;
                rm.m.key = keys[k];
                rm.m.sighting = s[i];
                rm.m.rpi_interval = r;
                memcpy(rm.m.metadata, meta, 4);
                rm.m.tx_power = tx;
                rm.seq = k;
                rm.sighting = i;
                g_array_append_val(found, rm);
            }
        }
    }
    qsort(found->data, found->len, sizeof(RefMatch), compare_ref);
    return found;
}

static void assert_same_as_reference(GArray *got, GArray *want, const char *what)
{
    if (got->len != want->len)
        g_error("%s: %u matches, reference has %u", what, got->len, want->len);
    for (guint i = 0; i < got->len; i++) {
        const ProxMatchedSighting *g = RESULT(got, i);
        const ProxMatchedSighting *w = &g_array_index(want, RefMatch, i).m;
        if (g->key_index != w->key_index || !same_key(&g->key, &w->key) ||
            !same_sighting(&g->sighting, &w->sighting) || g->rpi_interval != w->rpi_interval ||
            g->tx_power != w->tx_power || memcmp(g->metadata, w->metadata, 4) != 0)
            g_error("%s: match %u differs from the reference (key %u/%u, interval %u/%u)", what, i,
                    g->key_index, w->key_index, g->rpi_interval, w->rpi_interval);
    }
}

/* ---------- the property test ---------- */

typedef struct {
    GArray *keys;     /* ProxDiagnosisKey */
    GArray *observed; /* ProxSighting */
} Workload;

static const int deltas[] = {-14, -13, -12, -11, -1, 0, 1, 11, 12, 13, 14};
static const int tx_edges[] = {-60, -51, -50, -49, 0, 8, 19, 20, 21, 30, 127, -128};
static const uint8_t versions[] = {0x40, 0x40, 0x40, 0x40, 0x50, 0x7f, 0x00, 0x80, 0xc0, 0x3f};

static void workload_make(Workload *w, guint n_keys, guint n_noise, guint n_planted)
{
    w->keys = g_array_new(FALSE, TRUE, sizeof(ProxDiagnosisKey));
    w->observed = g_array_new(FALSE, TRUE, sizeof(ProxSighting));
    for (guint i = 0; i < n_keys; i++) {
        uint32_t period, start;
        int kind = g_test_rand_int_range(0, 100);
        if (kind < 35)
            period = 144;
        else if (kind < 95)
            period = (uint32_t)g_test_rand_int_range(1, 145);
        else
            period = (uint32_t[]){0, 145, 1000, 144}[g_test_rand_int_range(0, 4)];
        start = BASE_ENIN + (uint32_t)g_test_rand_int_range(0, 20 * 144);
        if (g_test_rand_int_range(0, 100) < 40)
            start -= start % 144;
        if (kind >= 98)
            start = G_MAXUINT32 - (uint32_t)g_test_rand_int_range(0, 100); /* overflows */
        ProxDiagnosisKey key = random_key(start, period);
        key.transmission_risk_level = g_test_rand_int_range(0, 9);
        key.report_type = (ProxReportType)g_test_rand_int_range(0, 6);
        key.has_days_since_onset = g_test_rand_bit();
        key.days_since_onset = g_test_rand_int_range(-14, 15);
        if (i > 0 && g_test_rand_int_range(0, 100) < 3) {
            /* The same TEK published twice (e.g. a revised key). */
            key = g_array_index(w->keys, ProxDiagnosisKey, g_test_rand_int_range(0, (gint32)i));
        }
        g_array_append_val(w->keys, key);
    }
    for (guint i = 0; i < n_noise; i++) {
        ProxSighting s = noise(ISEC(BASE_ENIN) + g_test_rand_int_range(0, 21 * 86400));
        g_array_append_val(w->observed, s);
    }
    for (guint p = 0; p < n_planted; p++) {
        const ProxDiagnosisKey *key =
            &g_array_index(w->keys, ProxDiagnosisKey, g_test_rand_int_range(0, (gint32)n_keys));
        uint32_t period = MAX(key->tek.rolling_period, 1);
        /* Mostly inside the key's range, sometimes one interval before or after it. */
        int64_t j = g_test_rand_int_range(0, 10) == 0 ? (g_test_rand_bit() ? -1 : (int64_t)period)
                                                      : g_test_rand_int_range(0, (gint32)period);
        uint32_t interval = key->tek.rolling_start + (uint32_t)j;
        int delta = g_test_rand_bit() ? deltas[g_test_rand_int_range(0, G_N_ELEMENTS(deltas))]
                                      : g_test_rand_int_range(-20, 21);
        gint64 at = ISEC((gint64)interval + delta);
        gint64 first = at + (g_test_rand_bit() ? g_test_rand_int_range(0, 600)
                                               : (g_test_rand_bit() ? 0 : 599));
        gint64 last = first + (g_test_rand_int_range(0, 4) == 0 ? g_test_rand_int_range(0, 1900)
                                                                : g_test_rand_int_range(0, 10));
        if (g_test_rand_int_range(0, 20) == 0) {
            gint64 t = first; /* reversed: the matcher orders them */
            first = last;
            last = t;
        }
        int8_t tx =
            (int8_t)(g_test_rand_bit() ? tx_edges[g_test_rand_int_range(0, G_N_ELEMENTS(tx_edges))]
                                       : g_test_rand_int_range(-50, 21));
        uint8_t version = versions[g_test_rand_int_range(0, G_N_ELEMENTS(versions))];
        ProxSighting s = heard(key, interval, first, last, version, tx);
        g_array_append_val(w->observed, s);
        if (g_test_rand_int_range(0, 8) == 0) {
            /* Heard again in another scan, possibly outside the window. */
            s.first_seen += 600 * g_test_rand_int_range(-15, 16);
            s.last_seen = s.first_seen + 3;
            s.scan_instance_id++;
            g_array_append_val(w->observed, s);
        }
        if (g_test_rand_int_range(0, 8) == 0) {
            /* Same first 8 bytes, different RPI: passes the filter, not the lookup. */
            ProxSighting near = s;
            near.rpi.bytes[8 + g_test_rand_int_range(0, 8)] ^= 1;
            g_array_append_val(w->observed, near);
        }
    }
    /* Shuffle the observed set. */
    for (guint i = w->observed->len; i > 1; i--) {
        guint j = (guint)g_test_rand_int_range(0, (gint32)i);
        ProxSighting t = g_array_index(w->observed, ProxSighting, i - 1);
        g_array_index(w->observed, ProxSighting, i - 1) =
            g_array_index(w->observed, ProxSighting, j);
        g_array_index(w->observed, ProxSighting, j) = t;
    }
}

static void workload_clear(Workload *w)
{
    g_array_unref(w->keys);
    g_array_unref(w->observed);
}

static void test_property(void)
{
    g_autoptr(GPtrArray) impls = supported_impls();
    const guint threads[] = {1, 2, 3, 8};
    const int rounds = g_test_slow() ? 40 : 8;
    for (int round = 0; round < rounds; round++) {
        Workload w;
        guint n_keys = (guint)g_test_rand_int_range(1, 700);
        workload_make(&w, n_keys, (guint)g_test_rand_int_range(0, 1500),
                      (guint)g_test_rand_int_range(0, 300));
        const ProxSighting *obs = (const ProxSighting *)w.observed->data;
        const ProxDiagnosisKey *keys = (const ProxDiagnosisKey *)w.keys->data;
        RefCounts counts;
        g_autoptr(GArray) want = reference_match(obs, w.observed->len, keys, w.keys->len, &counts);
        g_test_message("round %d: %u keys, %u sightings, %u reference matches", round, w.keys->len,
                       w.observed->len, want->len);
        for (guint n = 0; n < impls->len; n++) {
            const ProxCryptoImpl *impl = impls->pdata[n];
            for (gsize t = 0; t < G_N_ELEMENTS(threads); t++) {
                g_autoptr(GError) error = NULL;
                g_autoptr(ProxMatcher) m =
                    prox_matcher_new(obs, w.observed->len, threads[t], impl, &error);
                g_assert_no_error(error);
                g_assert_cmpuint(prox_matcher_get_n_threads(m), ==, threads[t]);
                /* Keys streamed in random chunks, including empty and single-key ones. */
                guint at = 0;
                while (at < w.keys->len) {
                    guint chunk = (guint)g_test_rand_int_range(0, 3) == 0
                                      ? (guint)g_test_rand_int_range(0, 3)
                                      : (guint)g_test_rand_int_range(1, 700);
                    chunk = MIN(chunk, w.keys->len - at);
                    prox_matcher_feed(m, keys + at, chunk, at);
                    at += chunk;
                }
                g_autoptr(GArray) got = prox_matcher_finish(m);
                g_autofree char *what = g_strdup_printf(
                    "round %d, SHA-256 %s, AES %s, %u threads", round,
                    prox_crypto_sha_name(impl->sha), prox_crypto_aes_name(impl->aes), threads[t]);
                assert_same_as_reference(got, want, what);
                ProxMatchStats st;
                prox_matcher_get_stats(m, &st);
                g_assert_cmpuint(st.keys, ==, w.keys->len);
                g_assert_cmpuint(st.matched, ==, want->len);
                /* The same (key, interval, sighting) RPI hits and rejections, too: a stray
                 * hit could otherwise hide behind the AEM checks. */
                g_assert_cmpuint(st.rpi_hits, ==, counts.rpi_hits);
                g_assert_cmpuint(st.rejected_window, ==, counts.rejected_window);
                g_assert_cmpuint(st.rejected_metadata, ==, counts.rejected_metadata);
                g_assert_cmpuint(st.rejected_tx_power, ==, counts.rejected_tx_power);
                g_assert_cmpuint(st.candidates, >=, st.matched);
            }
        }
        workload_clear(&w);
    }
}

/* ---------- rules, one by one ---------- */

static const uint8_t vec_tek[16] = {0x75, 0xc7, 0x34, 0xc6, 0xdd, 0x1a, 0x78, 0x2d,
                                    0xe7, 0xa9, 0x65, 0xda, 0x5e, 0xb9, 0x31, 0x25};

/* The GAEN test vector: the RPI and AEM of interval 2642976, as broadcast. */
static void test_gaen_vector(void)
{
    ProxDiagnosisKey key = make_key(vec_tek, 2642976, 144);
    ProxSighting s;
    memset(&s, 0, sizeof s);
    static const uint8_t rpi[16] = {0x8b, 0xe6, 0xcd, 0x37, 0x1c, 0x5c, 0x89, 0x16,
                                    0x04, 0xbf, 0xbe, 0x49, 0xdf, 0x84, 0x50, 0x96};
    static const uint8_t aem[4] = {0x72, 0x03, 0x38, 0x74};
    memcpy(s.rpi.bytes, rpi, 16);
    memcpy(s.aem.bytes, aem, 4);
    s.first_seen = 1585785600 + 30;
    s.last_seen = s.first_seen + 5;
    g_autoptr(GPtrArray) impls = supported_impls();
    for (guint n = 0; n < impls->len; n++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(ProxMatcher) m = prox_matcher_new(&s, 1, 1, impls->pdata[n], &error);
        g_assert_no_error(error);
        prox_matcher_feed(m, &key, 1, 7);
        g_autoptr(GArray) r = prox_matcher_finish(m);
        g_assert_cmpuint(r->len, ==, 1);
        g_assert_cmpuint(RESULT(r, 0)->key_index, ==, 7);
        g_assert_cmpuint(RESULT(r, 0)->rpi_interval, ==, 2642976);
        g_assert_cmpint(RESULT(r, 0)->tx_power, ==, 8);
        static const uint8_t meta[4] = {0x40, 0x08, 0x00, 0x00};
        g_assert_cmpmem(RESULT(r, 0)->metadata, 4, meta, 4);
        g_assert_true(same_key(&RESULT(r, 0)->key, &key));
        g_assert_true(same_sighting(&RESULT(r, 0)->sighting, &s));
    }
}

/* ±12 intervals match, ±13 do not; a sighting spanning into the window matches. */
static void test_window_edges(void)
{
    ProxDiagnosisKey key = random_key(BASE_ENIN, 144);
    const uint32_t r = BASE_ENIN + 70;
    struct {
        gint64 first, last;
        gboolean match;
    } cases[] = {
        {ISEC(r), ISEC(r) + 5, TRUE},
        {ISEC(r + 12), ISEC(r + 12), TRUE},          /* start of +12 */
        {ISEC(r + 13) - 1, ISEC(r + 13) - 1, TRUE},  /* last second of +12 */
        {ISEC(r + 13), ISEC(r + 13) + 10, FALSE},    /* +13 */
        {ISEC(r - 12), ISEC(r - 12), TRUE},          /* -12 */
        {ISEC(r - 12) - 1, ISEC(r - 12) - 1, FALSE}, /* last second of -13 */
        {ISEC(r - 14), ISEC(r - 12) + 3, TRUE},      /* heard from -14 into -12 */
        {ISEC(r - 14), ISEC(r - 12) - 1, FALSE},     /* -14 .. -13 */
        {ISEC(r + 12) + 3, ISEC(r - 20), TRUE},      /* reversed span reaching +12 */
        {ISEC(r + 13), ISEC(r + 14), FALSE},
        {ISEC(r - 20), ISEC(r + 20), TRUE}, /* spans the whole window */
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        ProxSighting s = heard(&key, r, cases[i].first, cases[i].last, 0x40, 0);
        ProxMatchStats st;
        g_autoptr(GArray) res = match_all(&s, 1, &key, 1, 1, &st);
        g_test_message("case %zu", i);
        g_assert_cmpuint(res->len, ==, cases[i].match ? 1 : 0);
        g_assert_cmpuint(st.rpi_hits, ==, 1);
        g_assert_cmpuint(st.rejected_window, ==, cases[i].match ? 0 : 1);
    }
}

/* TX power -50..+20 accepted, outside rejected; metadata major version must be 1. */
static void test_metadata_checks(void)
{
    ProxDiagnosisKey key = random_key(BASE_ENIN, 144);
    struct {
        uint8_t version;
        int8_t tx;
        gboolean match;
    } cases[] = {
        {0x40, -50, TRUE}, {0x40, 20, TRUE},    {0x40, -51, FALSE}, {0x40, 21, FALSE},
        {0x40, 0, TRUE},   {0x40, -128, FALSE}, {0x40, 127, FALSE}, {0x50, 8, TRUE},
        {0x7f, 8, TRUE},   {0x00, 8, FALSE},    {0x80, 8, FALSE},   {0xc0, 8, FALSE},
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        ProxSighting s = heard(&key, BASE_ENIN + 5, ISEC(BASE_ENIN + 5), ISEC(BASE_ENIN + 5) + 2,
                               cases[i].version, cases[i].tx);
        ProxMatchStats st;
        g_autoptr(GArray) res = match_all(&s, 1, &key, 1, 0, &st);
        g_test_message("case %zu: version %02x tx %d", i, cases[i].version, cases[i].tx);
        g_assert_cmpuint(res->len, ==, cases[i].match ? 1 : 0);
        if (cases[i].match) {
            g_assert_cmpint(RESULT(res, 0)->tx_power, ==, cases[i].tx);
            g_assert_cmpuint(RESULT(res, 0)->metadata[0], ==, cases[i].version);
        } else if ((cases[i].version >> 6) != 1) {
            g_assert_cmpuint(st.rejected_metadata, ==, 1);
        } else {
            g_assert_cmpuint(st.rejected_tx_power, ==, 1);
        }
    }
}

/* Keys of period 1 and 114 (as in the GAEN sample export) and unaligned keys: RPIs only
 * for [start, start + period). */
static void test_periods_and_alignment(void)
{
    const struct {
        uint32_t start, period;
    } keys_def[] = {{2649980, 1}, {2649866, 114}, {BASE_ENIN + 37, 144}, {BASE_ENIN + 5, 17}};
    for (gsize k = 0; k < G_N_ELEMENTS(keys_def); k++) {
        ProxDiagnosisKey key = random_key(keys_def[k].start, keys_def[k].period);
        uint32_t s0 = keys_def[k].start, p = keys_def[k].period;
        ProxSighting obs[4] = {
            heard(&key, s0, ISEC(s0), ISEC(s0) + 1, 0x40, 1),                     /* first */
            heard(&key, s0 + p - 1, ISEC(s0 + p - 1), ISEC(s0 + p - 1), 0x40, 2), /* last */
            heard(&key, s0 - 1, ISEC(s0 - 1), ISEC(s0 - 1), 0x40, 3),             /* before */
            heard(&key, s0 + p, ISEC(s0 + p), ISEC(s0 + p), 0x40, 4),             /* after */
        };
        g_autoptr(GArray) res = match_all(obs, 4, &key, 1, 2, NULL);
        /* With period 1 the first and the last interval are the same one. */
        g_assert_cmpuint(res->len, ==, 2);
        g_assert_cmpuint(RESULT(res, 0)->rpi_interval, ==, s0);
        g_assert_cmpint(RESULT(res, 0)->tx_power, ==, 1);
        g_assert_cmpuint(RESULT(res, 1)->rpi_interval, ==, s0 + p - 1);
        g_assert_cmpint(RESULT(res, 1)->tx_power, ==, 2);
    }
}

/* A short key right after a long one on the same worker must not see the long key's RPIs
 * left over in the buffer (offset 9: in the same 16-RPI probe step as the short key's 5). */
static void test_short_after_long(void)
{
    ProxDiagnosisKey keys[2] = {random_key(BASE_ENIN, 144), random_key(BASE_ENIN, 5)};
    ProxSighting s =
        heard(&keys[0], BASE_ENIN + 9, ISEC(BASE_ENIN + 9), ISEC(BASE_ENIN + 9), 0x40, 0);
    g_autoptr(GPtrArray) impls = supported_impls();
    for (guint n = 0; n < impls->len; n++) {
        g_autoptr(ProxMatcher) m = prox_matcher_new(&s, 1, 1, impls->pdata[n], NULL);
        prox_matcher_feed(m, keys, 2, 0);
        g_autoptr(GArray) r = prox_matcher_finish(m);
        g_assert_cmpuint(r->len, ==, 1);
        g_assert_cmpuint(RESULT(r, 0)->key_index, ==, 0);
        /* Not even looked up for the short key (its AEM check would hide it). */
        ProxMatchStats st;
        prox_matcher_get_stats(m, &st);
        g_assert_cmpuint(st.rpis, ==, 149);
        g_assert_cmpuint(st.rpi_hits, ==, 1);
    }
}

static void test_invalid_keys(void)
{
    ProxDiagnosisKey good = random_key(BASE_ENIN, 144);
    ProxDiagnosisKey keys[5] = {
        random_key(BASE_ENIN, 0),
        random_key(BASE_ENIN, 145),
        random_key(G_MAXUINT32 - 10, 12), /* last interval would be 2^32 */
        random_key(G_MAXUINT32 - 10, 11), /* last interval 2^32 - 1: valid */
        good,
    };
    ProxSighting obs[3] = {
        heard(&keys[0], BASE_ENIN, ISEC(BASE_ENIN), ISEC(BASE_ENIN), 0x40, 0),
        heard(&keys[3], G_MAXUINT32, ISEC(G_MAXUINT32), ISEC(G_MAXUINT32), 0x40, 0),
        heard(&good, BASE_ENIN + 3, ISEC(BASE_ENIN + 3), ISEC(BASE_ENIN + 3), 0x40, 0),
    };
    ProxMatchStats st;
    g_autoptr(GArray) r = match_all(obs, 3, keys, 5, 2, &st);
    g_assert_cmpuint(st.keys, ==, 5);
    g_assert_cmpuint(st.keys_invalid, ==, 3);
    g_assert_cmpuint(r->len, ==, 2);
    g_assert_cmpuint(RESULT(r, 0)->key_index, ==, 3);
    g_assert_cmpuint(RESULT(r, 0)->rpi_interval, ==, G_MAXUINT32);
    g_assert_cmpuint(RESULT(r, 1)->key_index, ==, 4);
}

/* One key heard in several scans: all its sightings, ordered by first_seen; the order of
 * keys in the output is their key_index, whatever the feeding order. */
static void test_ordering_and_streaming(void)
{
    ProxDiagnosisKey keys[3] = {random_key(BASE_ENIN, 144), random_key(BASE_ENIN + 144, 144),
                                random_key(BASE_ENIN + 3, 60)};
    GArray *obs = g_array_new(FALSE, TRUE, sizeof(ProxSighting));
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 6; i++) {
            uint32_t r = keys[k].tek.rolling_start + (uint32_t)(50 - 7 * i);
            ProxSighting s = heard(&keys[k], r, ISEC(r) + 60 * i, ISEC(r) + 60 * i + 4, 0x40, 0);
            g_array_append_val(obs, s);
        }
    }
    for (int i = 0; i < 500; i++) {
        ProxSighting s = noise(ISEC(BASE_ENIN) + i);
        g_array_append_val(obs, s);
    }
    const ProxSighting *o = (const ProxSighting *)obs->data;
    g_autoptr(GArray) once = match_all(o, obs->len, keys, 3, 1, NULL);
    g_assert_cmpuint(once->len, ==, 18);
    for (guint i = 0; i < once->len; i++) {
        g_assert_cmpuint(RESULT(once, i)->key_index, ==, i / 6);
        if (i % 6 > 0)
            g_assert_cmpint(RESULT(once, i - 1)->sighting.first_seen, <,
                            RESULT(once, i)->sighting.first_seen);
    }

    /* Fed backwards one key at a time, on 3 threads: same result. */
    g_autoptr(ProxMatcher) m = prox_matcher_new(o, obs->len, 3, NULL, NULL);
    for (int k = 2; k >= 0; k--)
        prox_matcher_feed(m, &keys[k], 1, (guint)k);
    g_autoptr(GArray) streamed = prox_matcher_finish(m);
    g_assert_cmpuint(streamed->len, ==, once->len);
    for (guint i = 0; i < once->len; i++) {
        g_assert_cmpuint(RESULT(streamed, i)->key_index, ==, RESULT(once, i)->key_index);
        g_assert_true(same_sighting(&RESULT(streamed, i)->sighting, &RESULT(once, i)->sighting));
    }
    /* finish() starts over. */
    g_autoptr(GArray) empty = prox_matcher_finish(m);
    g_assert_cmpuint(empty->len, ==, 0);
    prox_matcher_feed(m, keys, 1, 40);
    g_autoptr(GArray) again = prox_matcher_finish(m);
    g_assert_cmpuint(again->len, ==, 6);
    g_assert_cmpuint(RESULT(again, 0)->key_index, ==, 40);

    /* The one-shot helper. */
    g_autoptr(GError) error = NULL;
    g_autoptr(GArray) helper = prox_match(o, obs->len, keys, 3, 0, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(helper->len, ==, 18);
    g_array_unref(obs);
}

/* Observed RPIs crafted to share a filter word and an index bucket (same first 8 bytes)
 * or to repeat one RPI many times: every true match is still found. */
static void test_crafted_observed(void)
{
    ProxDiagnosisKey key = random_key(BASE_ENIN, 144);
    GArray *obs = g_array_new(FALSE, TRUE, sizeof(ProxSighting));
    ProxSighting real =
        heard(&key, BASE_ENIN + 9, ISEC(BASE_ENIN + 9), ISEC(BASE_ENIN + 9), 0x40, 5);
    for (int i = 0; i < 5000; i++) {
        ProxSighting s = real;
        random_bytes(s.rpi.bytes + 8, 8);
        g_array_append_val(obs, s);
    }
    for (int i = 0; i < 300; i++) {
        ProxSighting s = real;
        s.scan_instance_id = i;
        s.first_seen += i;
        g_array_append_val(obs, s);
    }
    ProxMatchStats st;
    g_autoptr(GArray) r = match_all((const ProxSighting *)obs->data, obs->len, &key, 1, 2, &st);
    g_assert_cmpuint(r->len, ==, 300);
    for (guint i = 0; i < r->len; i++)
        g_assert_cmpint(RESULT(r, i)->sighting.scan_instance_id, ==, i);
    g_array_unref(obs);
}

static void test_empty(void)
{
    ProxDiagnosisKey key = random_key(BASE_ENIN, 144);
    ProxSighting s = noise(ISEC(BASE_ENIN));
    ProxMatchStats st;
    g_autoptr(GArray) a = match_all(NULL, 0, &key, 1, 2, &st);
    g_assert_cmpuint(a->len, ==, 0);
    g_assert_cmpuint(st.rpis, ==, 144);
    g_autoptr(GArray) b = match_all(&s, 1, NULL, 0, 2, &st);
    g_assert_cmpuint(b->len, ==, 0);
    g_assert_cmpuint(st.keys, ==, 0);
}

static void test_unsupported_impl(void)
{
    for (int a = 0; a < PROX_AES_N_IMPLS; a++) {
        ProxCryptoImpl impl = {PROX_SHA_PORTABLE, (ProxAesImpl)a};
        g_autoptr(GError) error = NULL;
        g_autoptr(ProxMatcher) m = prox_matcher_new(NULL, 0, 1, &impl, &error);
        if (prox_crypto_impl_supported(impl)) {
            g_assert_no_error(error);
            g_assert_nonnull(m);
            g_assert_cmpint(prox_matcher_get_impl(m).aes, ==, a);
        } else {
            g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
            g_assert_null(m);
        }
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/match/gaen-vector", test_gaen_vector);
    g_test_add_func("/match/window-edges", test_window_edges);
    g_test_add_func("/match/metadata-checks", test_metadata_checks);
    g_test_add_func("/match/periods-and-alignment", test_periods_and_alignment);
    g_test_add_func("/match/short-after-long", test_short_after_long);
    g_test_add_func("/match/invalid-keys", test_invalid_keys);
    g_test_add_func("/match/ordering-and-streaming", test_ordering_and_streaming);
    g_test_add_func("/match/crafted-observed", test_crafted_observed);
    g_test_add_func("/match/empty", test_empty);
    g_test_add_func("/match/unsupported-impl", test_unsupported_impl);
    g_test_add_func("/match/property", test_property);
    return g_test_run();
}
