/* test-crypto-fast.c - every RPIK/RPI implementation this CPU supports against the GAEN
 * test vectors and against OpenSSL's own HKDF and AES on random keys and intervals.
 *
 * The OpenSSL reference is computed here with EVP directly (EVP_PKEY_HKDF, AES-128-ECB),
 * independent of prox-keys.c; the reference key schedule of prox-keys.h is checked too. Random
 * inputs come from g_test_rand_*: rerun a failure with the seed printed in the TAP output (--seed).
 */
#include "prox-crypto-fast.h"
#include "prox-keys.h"

#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <string.h>

#define VEC_START 2642976u

static const char *const vec_tek = "75c734c6dd1a782de7a965da5eb93125";
static const char *const vec_rpik = "185ad91db69ec7dd048960f1f3ba6175";
static const char *const vec_aemk = "d57c46af7a1d83965b9bed8bd152936a";

static const struct {
    uint32_t enin;
    const char *rpi;
    const char *aem;
} vec_ids[] = {
    {2642976, "8be6cd371c5c891604bfbe49df845096", "72033874"},
    {2642977, "3c9a1de5dd6b02afa7fded7b570b3e56", "c29211b1"},
    {2642978, "243ffe9a3b08bded3094bac8630bb8ad", "6adfad03"},
    {2642979, "dfc3ed265e97d0eabb630e168b4214ed", "f1e2f80b"},
    {2642980, "b3b85a69ebaec78db739852d1f34e0fa", "5668c474"},
    {2642981, "298abd6fdad29efbf0f85a63956cf188", "f7b97e84"},
    {2642982, "105e8221dd603d25b94aba0c3cc8dee1", "eeabfdc7"},
    {2642983, "9888ca7e6738ec4bc6e420b20f878b3a", "9f84a9a6"},
    {2642984, "8694a79ae99671be3f18aaf6b090657a", "c11acb4d"},
    {2642985, "b8cde28ad20d1cd2fdd7369dc0c6f7c8", "1f8d53de"},
    {2643119, "f431b62ecf443102ce4ed0407de54bd4", "1215e57e"},
};

static void unhex(const char *hex, uint8_t *out, size_t len)
{
    g_assert_cmpuint(strlen(hex), ==, 2 * len);
    for (size_t i = 0; i < len; i++) {
        int hi = g_ascii_xdigit_value(hex[2 * i]), lo = g_ascii_xdigit_value(hex[2 * i + 1]);
        g_assert_true(hi >= 0 && lo >= 0);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
}

static void assert_bytes(const uint8_t *got, const char *want_hex, size_t len)
{
    uint8_t want[32];
    unhex(want_hex, want, len);
    g_assert_cmpmem(got, len, want, len);
}

/* ---- OpenSSL reference ---- */

static void ref_hkdf(const uint8_t tek[16], const char *info, uint8_t out[16])
{
    static const uint8_t zero_salt[32];
    size_t len = 16;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    g_assert_nonnull(ctx);
    g_assert_cmpint(EVP_PKEY_derive_init(ctx), ==, 1);
    g_assert_cmpint(EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()), ==, 1);
    g_assert_cmpint(EVP_PKEY_CTX_set1_hkdf_salt(ctx, zero_salt, sizeof zero_salt), ==, 1);
    g_assert_cmpint(EVP_PKEY_CTX_set1_hkdf_key(ctx, tek, 16), ==, 1);
    g_assert_cmpint(
        EVP_PKEY_CTX_add1_hkdf_info(ctx, (const unsigned char *)info, (int)strlen(info)), ==, 1);
    g_assert_cmpint(EVP_PKEY_derive(ctx, out, &len), ==, 1);
    g_assert_cmpuint(len, ==, 16);
    EVP_PKEY_CTX_free(ctx);
}

static void ref_aes_block(const uint8_t key[16], const uint8_t in[16], uint8_t out[16])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0;
    g_assert_cmpint(EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), NULL, key, NULL), ==, 1);
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    g_assert_cmpint(EVP_EncryptUpdate(ctx, out, &len, in, 16), ==, 1);
    g_assert_cmpint(len, ==, 16);
    EVP_CIPHER_CTX_free(ctx);
}

static void ref_rpi(const uint8_t rpik[16], uint32_t enin, uint8_t out[16])
{
    uint8_t pt[16] = {'E', 'N', '-', 'R', 'P', 'I'};
    pt[12] = (uint8_t)enin;
    pt[13] = (uint8_t)(enin >> 8);
    pt[14] = (uint8_t)(enin >> 16);
    pt[15] = (uint8_t)(enin >> 24);
    ref_aes_block(rpik, pt, out);
}

/* ---- implementations under test ---- */

static GPtrArray *supported_impls(void)
{
    GPtrArray *impls = g_ptr_array_new_with_free_func(g_free);
    for (int s = 0; s < PROX_SHA_N_IMPLS; s++) {
        for (int a = 0; a < PROX_AES_N_IMPLS; a++) {
            ProxCryptoImpl impl = {(ProxShaImpl)s, (ProxAesImpl)a};
            if (prox_crypto_impl_supported(impl))
                g_ptr_array_add(impls, g_memdup2(&impl, sizeof impl));
            else
                g_test_message("not supported here: SHA-256 %s, AES %s",
                               prox_crypto_sha_name(impl.sha), prox_crypto_aes_name(impl.aes));
        }
    }
    return impls;
}

static void test_vectors(void)
{
    g_autoptr(GPtrArray) impls = supported_impls();
    uint8_t tek[16];
    unhex(vec_tek, tek, 16);
    for (guint n = 0; n < impls->len; n++) {
        ProxCryptoImpl impl = *(ProxCryptoImpl *)impls->pdata[n];
        g_test_message("SHA-256 %s, AES %s", prox_crypto_sha_name(impl.sha),
                       prox_crypto_aes_name(impl.aes));
        ProxRpiDeriver *d = prox_rpi_deriver_new(impl);
        g_assert_nonnull(d);
        g_assert_cmpint(prox_rpi_deriver_impl(d).sha, ==, impl.sha);
        g_assert_cmpint(prox_rpi_deriver_impl(d).aes, ==, impl.aes);

        uint8_t rpik[16], aemk[16];
        prox_rpi_deriver_rpiks(d, (const uint8_t(*)[16])tek, 1, (uint8_t(*)[16])rpik);
        assert_bytes(rpik, vec_rpik, 16);
        prox_crypto_rpik(impl.sha, tek, rpik);
        assert_bytes(rpik, vec_rpik, 16);
        prox_crypto_aemk(impl.sha, tek, aemk);
        assert_bytes(aemk, vec_aemk, 16);

        ProxRpi rpis[PROX_MAX_ROLLING_PERIOD];
        prox_rpi_deriver_rpis(d, rpik, VEC_START, PROX_MAX_ROLLING_PERIOD, rpis);
        for (gsize i = 0; i < G_N_ELEMENTS(vec_ids); i++) {
            const ProxRpi *rpi = &rpis[vec_ids[i].enin - VEC_START];
            assert_bytes(rpi->bytes, vec_ids[i].rpi, 16);
            uint8_t aem[4], meta[4];
            unhex(vec_ids[i].aem, aem, 4);
            prox_rpi_deriver_aem(d, aemk, rpi, aem, meta);
            assert_bytes(meta, "40080000", 4);
            /* CTR mode: the same operation encrypts. */
            prox_rpi_deriver_aem(d, aemk, rpi, meta, aem);
            assert_bytes(aem, vec_ids[i].aem, 4);
        }
        /* A single interval in the middle of the day. */
        prox_rpi_deriver_rpis(d, rpik, 2643119, 1, rpis);
        assert_bytes(rpis[0].bytes, "f431b62ecf443102ce4ed0407de54bd4", 16);
        prox_rpi_deriver_free(d);
    }
}

/* Random TEKs in batches of every size around the SIMD group widths, random intervals
 * and counts (including the wrap of the 32-bit interval number), against OpenSSL. */
static void test_random_vs_openssl(void)
{
    g_autoptr(GPtrArray) impls = supported_impls();
    const guint n_keys = g_test_slow() ? 20000 : 3000;
    uint8_t(*teks)[16] = g_malloc((gsize)n_keys * 16);
    uint8_t(*want)[16] = g_malloc((gsize)n_keys * 16);
    uint8_t(*got)[16] = g_malloc((gsize)(n_keys + 1) * 16);
    for (guint i = 0; i < n_keys; i++) {
        for (int b = 0; b < 16; b++)
            teks[i][b] = (uint8_t)g_test_rand_int_range(0, 256);
        ref_hkdf(teks[i], "EN-RPIK", want[i]);
    }
    for (guint n = 0; n < impls->len; n++) {
        ProxCryptoImpl impl = *(ProxCryptoImpl *)impls->pdata[n];
        g_test_message("SHA-256 %s, AES %s", prox_crypto_sha_name(impl.sha),
                       prox_crypto_aes_name(impl.aes));
        ProxRpiDeriver *d = prox_rpi_deriver_new(impl);
        g_assert_nonnull(d);

        /* Batches of 1..40 keys: full and partial groups of 4 and 16. */
        guint at = 0, size = 1;
        while (at < n_keys) {
            guint batch = MIN(size, n_keys - at);
            memset(got[at + batch], 0xa5, 16);
            prox_rpi_deriver_rpiks(d, (const uint8_t(*)[16])teks[at], batch, got + at);
            g_assert_cmpmem(got[at], batch * 16, want[at], batch * 16);
            /* Nothing written past the batch. */
            for (int b = 0; b < 16; b++)
                g_assert_cmpuint(got[at + batch][b], ==, 0xa5);
            at += batch;
            size = size % 40 + 1;
        }

        ProxRpi rpis[PROX_MAX_ROLLING_PERIOD + 1];
        for (guint i = 0; i < n_keys; i += 7) {
            uint32_t start = g_test_rand_int_range(0, 8) == 0
                                 ? G_MAXUINT32 - (uint32_t)g_test_rand_int_range(0, 150)
                                 : (uint32_t)g_test_rand_int();
            uint32_t count = (uint32_t)g_test_rand_int_range(1, PROX_MAX_ROLLING_PERIOD + 1);
            memset(rpis, 0x5a, sizeof rpis);
            prox_rpi_deriver_rpis(d, want[i], start, count, rpis);
            for (uint32_t j = 0; j < count; j++) {
                uint8_t ref[16];
                ref_rpi(want[i], start + j, ref);
                g_assert_cmpmem(rpis[j].bytes, 16, ref, 16);
            }
            if (i % 49 == 0) {
                /* The reference implementation of prox-keys.h agrees. */
                uint8_t rpik[16];
                ProxRpi ref_range[PROX_MAX_ROLLING_PERIOD];
                prox_rpik_derive(teks[i], rpik);
                g_assert_cmpmem(rpik, 16, want[i], 16);
                prox_rpi_compute_range(want[i], start, count, ref_range);
                g_assert_cmpmem(rpis, count * sizeof(ProxRpi), ref_range, count * sizeof(ProxRpi));
            }
            /* Exactly count RPIs written. */
            for (uint32_t j = count; j <= PROX_MAX_ROLLING_PERIOD; j++) {
                for (int b = 0; b < 16; b++)
                    g_assert_cmpuint(rpis[j].bytes[b], ==, 0x5a);
            }

            /* AEM: AES-128-CTR of the first 4 bytes with counter block = RPI. */
            uint8_t aemk[16], ref_aemk[16], in[4], out[4], ks[16];
            prox_crypto_aemk(impl.sha, teks[i], aemk);
            ref_hkdf(teks[i], "EN-AEMK", ref_aemk);
            g_assert_cmpmem(aemk, 16, ref_aemk, 16);
            for (int b = 0; b < 4; b++)
                in[b] = (uint8_t)g_test_rand_int_range(0, 256);
            prox_rpi_deriver_aem(d, aemk, &rpis[0], in, out);
            ref_aes_block(ref_aemk, rpis[0].bytes, ks);
            for (int b = 0; b < 4; b++)
                g_assert_cmpuint(out[b], ==, in[b] ^ ks[b]);
        }
        prox_rpi_deriver_free(d);
    }
    g_free(teks);
    g_free(want);
    g_free(got);
}

static void test_single_key(void)
{
    for (int s = 0; s < PROX_SHA_N_IMPLS; s++) {
        for (int i = 0; i < 300; i++) {
            uint8_t tek[16], got[16], want[16];
            for (int b = 0; b < 16; b++)
                tek[b] = (uint8_t)g_test_rand_int_range(0, 256);
            prox_crypto_rpik((ProxShaImpl)s, tek, got);
            ref_hkdf(tek, "EN-RPIK", want);
            g_assert_cmpmem(got, 16, want, 16);
            prox_crypto_aemk((ProxShaImpl)s, tek, got);
            ref_hkdf(tek, "EN-AEMK", want);
            g_assert_cmpmem(got, 16, want, 16);
        }
    }
}

static void test_paths(void)
{
    ProxCryptoImpl def = prox_crypto_impl_default();
    g_assert_true(prox_crypto_impl_supported(def));
    g_test_message("default: SHA-256 %s, AES %s", prox_crypto_sha_name(def.sha),
                   prox_crypto_aes_name(def.aes));

    ProxCryptoImpl impl;
    g_assert_true(prox_crypto_path_impl(PROX_CRYPTO_PATH_PORTABLE, &impl));
    g_assert_cmpint(impl.sha, ==, PROX_SHA_PORTABLE);
    g_assert_cmpint(impl.aes, ==, PROX_AES_PORTABLE);
    for (int p = 0; p < PROX_CRYPTO_N_PATHS; p++) {
        ProxCryptoPath parsed;
        g_assert_true(
            prox_crypto_path_from_name(prox_crypto_path_name((ProxCryptoPath)p), &parsed));
        g_assert_cmpint(parsed, ==, p);
        if (prox_crypto_path_impl((ProxCryptoPath)p, &impl))
            g_assert_true(prox_crypto_impl_supported(impl));
    }
    ProxCryptoPath parsed;
    g_assert_false(prox_crypto_path_from_name("avx9000", &parsed));
    g_assert_false(prox_crypto_path_from_name(NULL, &parsed));

    /* An unsupported implementation gives no deriver. */
    for (int a = 0; a < PROX_AES_N_IMPLS; a++) {
        ProxCryptoImpl x = {PROX_SHA_PORTABLE, (ProxAesImpl)a};
        ProxRpiDeriver *d = prox_rpi_deriver_new(x);
        g_assert_true((d != NULL) == prox_crypto_aes_supported(x.aes));
        prox_rpi_deriver_free(d);
    }
}

/* PROX_CRYPTO_PATH forces a path; the choice is made once per process, so each case
 * runs in a subprocess that sets the variable before the first call. */
static void test_env_override(void)
{
    if (g_test_subprocess()) {
        const char *path = g_getenv("PROX_TEST_PATH");
        g_log_set_always_fatal(G_LOG_FATAL_MASK);
        g_setenv("PROX_CRYPTO_PATH", path, TRUE);
        ProxCryptoPath p;
        ProxCryptoImpl want, got = prox_crypto_impl_default();
        if (prox_crypto_path_from_name(path, &p) && prox_crypto_path_impl(p, &want)) {
            g_assert_cmpint(got.sha, ==, want.sha);
            g_assert_cmpint(got.aes, ==, want.aes);
        } else {
            /* Unknown or unsupported: a warning, and the default stays usable. */
            g_assert_true(prox_crypto_impl_supported(got));
        }
        return;
    }
    const char *cases[] = {"portable", "aesni", "vaes", "bogus"};
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_setenv("PROX_TEST_PATH", cases[i], TRUE);
        g_test_trap_subprocess(NULL, 0, 0);
        ProxCryptoPath p;
        ProxCryptoImpl impl;
        gboolean ok = prox_crypto_path_from_name(cases[i], &p) && prox_crypto_path_impl(p, &impl);
        g_test_trap_assert_passed();
        if (!ok)
            g_test_trap_assert_stderr("*PROX_CRYPTO_PATH*");
    }
    g_unsetenv("PROX_TEST_PATH");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/crypto-fast/vectors", test_vectors);
    g_test_add_func("/crypto-fast/random-vs-openssl", test_random_vs_openssl);
    g_test_add_func("/crypto-fast/single-key", test_single_key);
    g_test_add_func("/crypto-fast/paths", test_paths);
    g_test_add_func("/crypto-fast/env-override", test_env_override);
    return g_test_run();
}
