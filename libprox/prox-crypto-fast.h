/* prox-crypto-fast.h - the matcher's hot crypto: RPIK derivation and RPI generation.
 *
 * Matching derives, for every published key, RPIK = HKDF-SHA256(TEK, no salt, "EN-RPIK")
 * and up to 144 RPIs (AES-128-ECB of "EN-RPI" || 0^6 || LE32(ENIN)). This module does
 * that as fast as the CPU allows and gives the same bytes as the reference in
 * prox-keys.h on every path:
 *
 *   SHA-256 (HKDF):  portable C | SHA-NI, 4 keys interleaved | AVX-512, 16 keys in the
 *                    lanes of a register, two such groups interleaved
 *   AES-128:         OpenSSL EVP | AES-NI (128-bit) | VAES (512-bit, 4 blocks an instruction)
 *
 * HKDF with the fixed zero salt costs 6 SHA-256 compressions a key: the states after
 * the zero-key HMAC pads are computed once, the constant "EN-RPIK" block's message
 * schedule too. The best supported implementation is picked once at run time; the
 * environment variable PROX_CRYPTO_PATH=portable|aesni|vaes forces a path and
 * PROX_CRYPTO_SHA=portable|shani|avx512 a SHA-256 implementation (tests, benchmarks).
 */
#pragma once

#include "prox-types.h"

#include <stddef.h>

G_BEGIN_DECLS

typedef enum {
    PROX_SHA_PORTABLE, /* plain C compression function: any CPU */
    PROX_SHA_SHANI,    /* x86 SHA extensions, 4 independent keys interleaved */
    PROX_SHA_AVX512,   /* AVX-512F/BW/VL, 16 keys one per 32-bit lane, 2 groups interleaved */
    PROX_SHA_N_IMPLS,
} ProxShaImpl;

typedef enum {
    PROX_AES_PORTABLE, /* OpenSSL EVP AES-128-ECB: any CPU */
    PROX_AES_AESNI,    /* AES-NI, 8 blocks in flight */
    PROX_AES_VAES,     /* VAES + AVX-512, 4 blocks a zmm register, 24 blocks in flight */
    PROX_AES_N_IMPLS,
} ProxAesImpl;

typedef struct {
    ProxShaImpl sha;
    ProxAesImpl aes;
} ProxCryptoImpl;

/* Named paths of PROX_CRYPTO_PATH: "portable" = {portable, portable}, "aesni" = {SHA-NI
 * when the CPU has it else portable, AES-NI}, "vaes" = {AVX-512, VAES}. */
typedef enum {
    PROX_CRYPTO_PATH_PORTABLE,
    PROX_CRYPTO_PATH_AESNI,
    PROX_CRYPTO_PATH_VAES,
    PROX_CRYPTO_N_PATHS,
} ProxCryptoPath;

gboolean prox_crypto_sha_supported(ProxShaImpl sha);
gboolean prox_crypto_aes_supported(ProxAesImpl aes);
gboolean prox_crypto_impl_supported(ProxCryptoImpl impl);
const char *prox_crypto_sha_name(ProxShaImpl sha);
const char *prox_crypto_aes_name(ProxAesImpl aes);

/* The implementations of a named path on this CPU; FALSE when the CPU lacks it. */
gboolean prox_crypto_path_impl(ProxCryptoPath path, ProxCryptoImpl *impl);
const char *prox_crypto_path_name(ProxCryptoPath path);
/* Parses "portable", "aesni", "vaes". */
gboolean prox_crypto_path_from_name(const char *name, ProxCryptoPath *path);

/* The fastest supported implementation, unless PROX_CRYPTO_PATH / PROX_CRYPTO_SHA name
 * another (an unknown or unsupported name is ignored with a warning). Decided once. */
ProxCryptoImpl prox_crypto_impl_default(void);

/* HKDF-SHA256(IKM = tek, salt = none, info = "EN-RPIK" / "EN-AEMK", L = 16) for one key,
 * with the implementation's SHA-256 (portable C when it only works on key groups). */
void prox_crypto_rpik(ProxShaImpl sha, const uint8_t tek[PROX_KEY_LEN], uint8_t rpik[PROX_KEY_LEN]);
void prox_crypto_aemk(ProxShaImpl sha, const uint8_t tek[PROX_KEY_LEN], uint8_t aemk[PROX_KEY_LEN]);

/* Per-thread derivation state (the portable AES path keeps an OpenSSL context). */
typedef struct _ProxRpiDeriver ProxRpiDeriver;

/* NULL when `impl` is not supported on this CPU. */
ProxRpiDeriver *prox_rpi_deriver_new(ProxCryptoImpl impl);
void prox_rpi_deriver_free(ProxRpiDeriver *deriver);
ProxCryptoImpl prox_rpi_deriver_impl(const ProxRpiDeriver *deriver);

/* Keys per call at which prox_rpi_deriver_rpiks() runs at full speed (any n works). */
#define PROX_RPI_DERIVER_BATCH 32

/* RPIKs of n TEKs: rpiks[i] = HKDF(teks[i], "EN-RPIK"). */
void prox_rpi_deriver_rpiks(ProxRpiDeriver *deriver, const uint8_t (*teks)[PROX_KEY_LEN], size_t n,
                            uint8_t (*rpiks)[PROX_KEY_LEN]);

/* rpis[j] = RPI of interval start + j for j < count (1..144); writes exactly count RPIs.
 * Interval numbers wrap modulo 2^32 as GAEN's uint32 encoding does. */
void prox_rpi_deriver_rpis(ProxRpiDeriver *deriver, const uint8_t rpik[PROX_KEY_LEN],
                           uint32_t start, uint32_t count, ProxRpi *rpis);

/* AES-128-CTR(aemk, counter block = rpi) of 4 bytes: decrypts (or encrypts) an AEM. */
void prox_rpi_deriver_aem(ProxRpiDeriver *deriver, const uint8_t aemk[PROX_KEY_LEN],
                          const ProxRpi *rpi, const uint8_t in[PROX_AEM_LEN],
                          uint8_t out[PROX_AEM_LEN]);

G_END_DECLS
