/* prox-keys.c - GAEN v1.2 key schedule on OpenSSL (reference implementation).
 *
 * The functions return void because, with valid arguments, HKDF and AES only fail when
 * OpenSSL itself is unusable (no default provider, out of memory). Carrying on would mean
 * broadcasting or matching garbage, so such a failure aborts like a GLib allocation failure.
 */
#define G_LOG_DOMAIN "prox-keys"

#include "prox-keys.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <sodium.h>
#include <string.h>

/* The RPI range is encrypted straight into the caller's array. */
G_STATIC_ASSERT(sizeof(ProxRpi) == PROX_RPI_LEN);

#define HKDF_SALT_LEN 32 /* SHA-256 output size: RFC 5869's "not provided" salt */
#define RPI_PREFIX "EN-RPI"
#define RPI_PREFIX_LEN 6

static G_NORETURN void crypto_fail(const char *what)
{
    char reason[256];
    unsigned long code = ERR_get_error();
    if (code != 0)
        ERR_error_string_n(code, reason, sizeof(reason));
    else
        g_strlcpy(reason, "no OpenSSL error queued", sizeof(reason));
    g_error("%s failed: %s", what, reason);
}

/* Algorithm fetches are costly in OpenSSL 3: do each once per process. */
typedef struct {
    EVP_KDF *hkdf;
    EVP_CIPHER *aes_ecb;
    EVP_CIPHER *aes_ctr;
} CryptoAlgorithms;

static const CryptoAlgorithms *algorithms(void)
{
    static CryptoAlgorithms algs;
    static gsize initialized = 0;
    if (g_once_init_enter(&initialized)) {
        algs.hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
        if (algs.hkdf == NULL)
            crypto_fail("fetching HKDF");
        algs.aes_ecb = EVP_CIPHER_fetch(NULL, "AES-128-ECB", NULL);
        if (algs.aes_ecb == NULL)
            crypto_fail("fetching AES-128-ECB");
        algs.aes_ctr = EVP_CIPHER_fetch(NULL, "AES-128-CTR", NULL);
        if (algs.aes_ctr == NULL)
            crypto_fail("fetching AES-128-CTR");
        g_once_init_leave(&initialized, 1);
    }
    return &algs;
}

void prox_random_system(void *buf, size_t len, void *user_data)
{
    static gsize initialized = 0;
    if (g_once_init_enter(&initialized)) {
        /* 1 = already initialised elsewhere in the process, which is fine. */
        if (sodium_init() < 0)
            g_error("libsodium initialisation failed: no usable random source");
        g_once_init_leave(&initialized, 1);
    }
    randombytes_buf(buf, len);
}

uint32_t prox_tek_rolling_start(gint64 now)
{
    uint32_t enin = prox_interval_number(now);
    return enin - enin % PROX_TEK_ROLLING_PERIOD;
}

void prox_tek_generate(ProxTek *tek, uint32_t rolling_start, ProxRandomFunc random,
                       void *random_data)
{
    g_return_if_fail(tek != NULL && random != NULL);
    random(tek->key, sizeof(tek->key), random_data);
    tek->rolling_start = rolling_start;
    tek->rolling_period = PROX_TEK_ROLLING_PERIOD;
}

gboolean prox_tek_covers(const ProxTek *tek, uint32_t enin)
{
    g_return_val_if_fail(tek != NULL, FALSE);
    /* Unsigned difference: no overflow near UINT32_MAX. */
    return enin >= tek->rolling_start && enin - tek->rolling_start < tek->rolling_period;
}

static void hkdf_derive(const uint8_t tek[PROX_KEY_LEN], const char *info,
                        uint8_t out[PROX_KEY_LEN])
{
    /* OpenSSL runs HMAC with an empty key when no salt is set, which RFC 5869 makes
     * equal to a zero salt of hash length; spelling the zeros out avoids depending on
     * how a provider treats an absent salt. */
    static const uint8_t salt[HKDF_SALT_LEN] = {0};
    EVP_KDF_CTX *kctx = EVP_KDF_CTX_new((EVP_KDF *)algorithms()->hkdf);
    if (kctx == NULL)
        crypto_fail("HKDF context");
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)tek, PROX_KEY_LEN),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, sizeof(salt)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info)),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_KDF_derive(kctx, out, PROX_KEY_LEN, params) != 1)
        crypto_fail("HKDF-SHA256");
    /* Frees (and cleanses) the copy of the TEK and the PRK inside the context. */
    EVP_KDF_CTX_free(kctx);
}

void prox_rpik_derive(const uint8_t tek[PROX_KEY_LEN], uint8_t rpik[PROX_KEY_LEN])
{
    hkdf_derive(tek, "EN-RPIK", rpik);
}

void prox_aemk_derive(const uint8_t tek[PROX_KEY_LEN], uint8_t aemk[PROX_KEY_LEN])
{
    hkdf_derive(tek, "EN-AEMK", aemk);
}

static void padded_data(uint32_t enin, uint8_t block[PROX_RPI_LEN])
{
    memcpy(block, RPI_PREFIX, RPI_PREFIX_LEN);
    memset(block + RPI_PREFIX_LEN, 0, 6);
    block[12] = (uint8_t)enin;
    block[13] = (uint8_t)(enin >> 8);
    block[14] = (uint8_t)(enin >> 16);
    block[15] = (uint8_t)(enin >> 24);
}

/* Encrypts whole blocks with one context; in and out may be the same buffer. */
static void aes_crypt(const EVP_CIPHER *cipher, const uint8_t key[PROX_KEY_LEN], const uint8_t *iv,
                      const uint8_t *in, size_t len, uint8_t *out, const char *what)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int out_len = 0;
    if (ctx == NULL || EVP_EncryptInit_ex2(ctx, cipher, key, iv, NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx, 0) != 1 ||
        EVP_EncryptUpdate(ctx, out, &out_len, in, (int)len) != 1 || (size_t)out_len != len)
        crypto_fail(what);
    /* Frees the expanded key schedule too. */
    EVP_CIPHER_CTX_free(ctx);
}

void prox_rpi_compute(const uint8_t rpik[PROX_KEY_LEN], uint32_t enin, ProxRpi *rpi)
{
    uint8_t block[PROX_RPI_LEN];
    padded_data(enin, block);
    aes_crypt(algorithms()->aes_ecb, rpik, NULL, block, sizeof(block), rpi->bytes, "AES-128-ECB");
}

void prox_rpi_compute_range(const uint8_t rpik[PROX_KEY_LEN], uint32_t start, uint32_t count,
                            ProxRpi *rpis)
{
    g_return_if_fail(count <= PROX_MAX_ROLLING_PERIOD);
    if (count == 0)
        return;
    /* Lay out every padded-data block in the output array and encrypt it in place:
     * one key schedule, one EVP call for the whole range. */
    for (uint32_t i = 0; i < count; i++)
        padded_data(start + i, rpis[i].bytes);
    aes_crypt(algorithms()->aes_ecb, rpik, NULL, (const uint8_t *)rpis,
              (size_t)count * PROX_RPI_LEN, (uint8_t *)rpis, "AES-128-ECB");
}

void prox_aem_crypt(const uint8_t aemk[PROX_KEY_LEN], const ProxRpi *rpi,
                    const uint8_t in[PROX_AEM_LEN], uint8_t out[PROX_AEM_LEN])
{
    aes_crypt(algorithms()->aes_ctr, aemk, rpi->bytes, in, PROX_AEM_LEN, out, "AES-128-CTR");
}

void prox_metadata_encode(int8_t tx_power_dbm, uint8_t metadata[PROX_METADATA_LEN])
{
    metadata[0] = PROX_METADATA_VERSION_1_0;
    metadata[1] = (uint8_t)tx_power_dbm;
    metadata[2] = 0;
    metadata[3] = 0;
}

gboolean prox_metadata_decode(const uint8_t metadata[PROX_METADATA_LEN], int8_t *tx_power_dbm)
{
    /* Minor versions (bits 5-4) are compatible by definition; only the major one gates. */
    if ((metadata[0] >> 6) != 1)
        return FALSE;
    if (tx_power_dbm != NULL)
        *tx_power_dbm = (int8_t)metadata[1];
    return TRUE;
}

gboolean prox_broadcast_id_at(const ProxTek *tek, gint64 now,
                              const uint8_t metadata[PROX_METADATA_LEN], ProxBroadcastId *out)
{
    g_return_val_if_fail(tek != NULL && metadata != NULL && out != NULL, FALSE);
    uint32_t enin = prox_interval_number(now);
    if (now < 0 || !prox_tek_covers(tek, enin))
        return FALSE;

    uint8_t rpik[PROX_KEY_LEN];
    uint8_t aemk[PROX_KEY_LEN];
    prox_rpik_derive(tek->key, rpik);
    prox_aemk_derive(tek->key, aemk);
    out->enin = enin;
    prox_rpi_compute(rpik, enin, &out->rpi);
    prox_aem_crypt(aemk, &out->rpi, metadata, out->aem.bytes);
    sodium_memzero(rpik, sizeof(rpik));
    sodium_memzero(aemk, sizeof(aemk));
    return TRUE;
}

/* The window has 601 whole seconds. A 32-bit draw is split into 601 equal buckets of
 * BUCKET values each (so no modulo bias); the ROTATION_REJECT values left over are
 * redrawn. They sit in the middle of the range so that the mapping stays monotonic and
 * both extremes (0 -> +600 s, all-ones -> +1200 s) are accepted. */
#define ROTATION_CHOICES (PROX_ROTATION_MAX_SECONDS - PROX_ROTATION_MIN_SECONDS + 1)
#define ROTATION_BUCKET ((uint32_t)(((uint64_t)1 << 32) / ROTATION_CHOICES))
#define ROTATION_REJECT ((uint32_t)(((uint64_t)1 << 32) % ROTATION_CHOICES))
#define ROTATION_REJECT_START ((ROTATION_CHOICES / 2) * ROTATION_BUCKET)
/* A working source is rejected with probability 128 / 2^32 per draw, so this many in a
 * row means it is stuck; a rotation time is still due, so use the last draw anyway. */
#define ROTATION_MAX_DRAWS 16

gint64 prox_rotation_next(gint64 last_rotation, ProxRandomFunc random, void *random_data)
{
    g_return_val_if_fail(random != NULL, last_rotation + PROX_ROTATION_MIN_SECONDS);
    uint32_t r = 0;
    for (int draw = 0; draw < ROTATION_MAX_DRAWS; draw++) {
        uint8_t bytes[4];
        random(bytes, sizeof(bytes), random_data);
        /* Little-endian on every host, so a scripted source gives the same times. */
        r = (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 |
            (uint32_t)bytes[3] << 24;
        if (r < ROTATION_REJECT_START || r - ROTATION_REJECT_START >= ROTATION_REJECT)
            break;
        if (draw == ROTATION_MAX_DRAWS - 1)
            g_warning("random source returned %d rejected values in a row; it is not random",
                      ROTATION_MAX_DRAWS);
    }
    uint32_t choice;
    if (r < ROTATION_REJECT_START)
        choice = r / ROTATION_BUCKET;
    else if (r - ROTATION_REJECT_START >= ROTATION_REJECT)
        choice = (r - ROTATION_REJECT) / ROTATION_BUCKET;
    else
        choice = ROTATION_CHOICES / 2; /* stuck source: middle of the window */
    return last_rotation + PROX_ROTATION_MIN_SECONDS + choice;
}
