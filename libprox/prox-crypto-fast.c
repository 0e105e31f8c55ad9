/* prox-crypto-fast.c - RPIK/RPI derivation for matching: portable C + OpenSSL, and x86
 * SHA-NI / AVX-512 / AES-NI / VAES paths chosen at run time (see prox-crypto-fast.h).
 *
 * Every x86 function carries its own target attribute, so the library is built for the
 * baseline ISA and a path runs only after CPUID said the CPU (and the OS, for AVX-512
 * state) supports it.
 */
#define G_LOG_DOMAIN "prox-crypto"

#include "prox-crypto-fast.h"

#include <openssl/evp.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PROX_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* ---------- SHA-256 and the precomputed zero-salt HKDF pieces ---------- */

static const uint32_t sha256_k[64] __attribute__((aligned(64))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static const uint32_t sha256_iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

/* HMAC message lengths in bits, counting the 64-byte pad block in front. */
#define LEN_TEK_BITS ((64 + PROX_KEY_LEN) * 8)
#define LEN_DIGEST_BITS ((64 + 32) * 8)
#define LEN_INFO_BITS ((64 + 8) * 8)

typedef struct {
    /* States after compressing the HMAC pads of the all-zero 32-byte salt. */
    uint32_t zero_ipad[8];
    uint32_t zero_opad[8];
    /* HKDF-Expand's only block, info || 0x01 || padding: message words and, since the
     * block is constant, its whole schedule with the round constants added. */
    uint32_t info_w[2][16];
    uint32_t info_wk[2][64] __attribute__((aligned(64)));
} HkdfConstants;

enum { INFO_RPIK, INFO_AEMK };

static HkdfConstants hkdf;

static inline uint32_t ror32(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha256_schedule(uint32_t w[64])
{
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = ror32(w[t - 15], 7) ^ ror32(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = ror32(w[t - 2], 17) ^ ror32(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
}

/* Compression with W_t + K_t given for all 64 rounds. */
static void sha256_rounds_c(uint32_t s[8], const uint32_t wk[64])
{
    uint32_t a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
    for (int t = 0; t < 64; t++) {
        uint32_t t1 =
            h + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) + wk[t];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s[0] += a;
    s[1] += b;
    s[2] += c;
    s[3] += d;
    s[4] += e;
    s[5] += f;
    s[6] += g;
    s[7] += h;
}

/* One SHA-256 compression of 16 big-endian message words already loaded as integers. */
static void sha256_compress_c(uint32_t s[8], const uint32_t m[16])
{
    uint32_t w[64];
    memcpy(w, m, 16 * sizeof(uint32_t));
    sha256_schedule(w);
    for (int t = 0; t < 64; t++)
        w[t] += sha256_k[t];
    sha256_rounds_c(s, w);
}

static void hkdf_constants_init(void)
{
    uint32_t w[64];
    memcpy(hkdf.zero_ipad, sha256_iv, sizeof hkdf.zero_ipad);
    for (int i = 0; i < 16; i++)
        w[i] = 0x36363636;
    sha256_compress_c(hkdf.zero_ipad, w);
    memcpy(hkdf.zero_opad, sha256_iv, sizeof hkdf.zero_opad);
    for (int i = 0; i < 16; i++)
        w[i] = 0x5c5c5c5c;
    sha256_compress_c(hkdf.zero_opad, w);

    /* "EN-RPIK" / "EN-AEMK", then the counter byte 0x01, then SHA-256 padding. */
    static const uint32_t info_words[2][2] = {{0x454e2d52, 0x50494b01}, {0x454e2d41, 0x454d4b01}};
    for (int k = 0; k < 2; k++) {
        memset(hkdf.info_w[k], 0, sizeof hkdf.info_w[k]);
        hkdf.info_w[k][0] = info_words[k][0];
        hkdf.info_w[k][1] = info_words[k][1];
        hkdf.info_w[k][2] = 0x80000000;
        hkdf.info_w[k][15] = LEN_INFO_BITS;
        memcpy(w, hkdf.info_w[k], 16 * sizeof(uint32_t));
        sha256_schedule(w);
        for (int t = 0; t < 64; t++)
            hkdf.info_wk[k][t] = w[t] + sha256_k[t];
    }
}

static void hkdf_constants_ensure(void)
{
    static gsize done = 0;
    if (g_once_init_enter(&done)) {
        hkdf_constants_init();
        g_once_init_leave(&done, 1);
    }
}

static inline uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* HKDF-SHA256(tek, zero salt, info, 16) in 6 compressions:
 *   PRK  = H(opad0 || H(ipad0 || tek))              2 (pads precomputed)
 *   OKM  = H(PRK^opad || H(PRK^ipad || info || 1))   4 */
static void hkdf16_c(const uint8_t tek[PROX_KEY_LEN], int info, uint8_t out[PROX_KEY_LEN])
{
    uint32_t w[16], inner[8], prk[8], a[8], b[8];

    memcpy(inner, hkdf.zero_ipad, sizeof inner);
    memset(w, 0, sizeof w);
    for (int i = 0; i < 4; i++)
        w[i] = load_be32(tek + 4 * i);
    w[4] = 0x80000000;
    w[15] = LEN_TEK_BITS;
    sha256_compress_c(inner, w);

    memcpy(prk, hkdf.zero_opad, sizeof prk);
    memset(w, 0, sizeof w);
    memcpy(w, inner, sizeof inner);
    w[8] = 0x80000000;
    w[15] = LEN_DIGEST_BITS;
    sha256_compress_c(prk, w);

    memcpy(a, sha256_iv, sizeof a);
    for (int i = 0; i < 16; i++)
        w[i] = (i < 8 ? prk[i] : 0) ^ 0x36363636;
    sha256_compress_c(a, w);
    memcpy(b, sha256_iv, sizeof b);
    for (int i = 0; i < 16; i++)
        w[i] = (i < 8 ? prk[i] : 0) ^ 0x5c5c5c5c;
    sha256_compress_c(b, w);

    sha256_rounds_c(a, hkdf.info_wk[info]);

    memset(w, 0, sizeof w);
    memcpy(w, a, sizeof a);
    w[8] = 0x80000000;
    w[15] = LEN_DIGEST_BITS;
    sha256_compress_c(b, w);
    for (int i = 0; i < 4; i++)
        store_be32(out + 4 * i, b[i]);
}

/* ---------- x86: CPU features ---------- */

enum {
    CPU_AESNI = 1 << 0,  /* AES-NI + SSSE3 + SSE4.1 */
    CPU_SHANI = 1 << 1,  /* SHA + SSSE3 + SSE4.1 */
    CPU_AVX512 = 1 << 2, /* AVX-512 F/BW/VL with OS-enabled zmm state */
    CPU_VAES = 1 << 3,   /* VAES on top of CPU_AVX512 and CPU_AESNI */
};

static unsigned cpu_features(void)
{
    static gsize cached = 0;
    if (g_once_init_enter(&cached)) {
        unsigned f = 0;
#ifdef PROX_X86
        unsigned a, b, c, d;
        if (__get_cpuid(1, &a, &b, &c, &d)) {
            gboolean ssse3_41 = (c & (1u << 9)) && (c & (1u << 19));
            gboolean osxsave = (c & (1u << 27)) != 0;
            if (ssse3_41 && (c & (1u << 25)))
                f |= CPU_AESNI;
            unsigned a7 = 0, b7 = 0, c7 = 0, d7 = 0;
            if (__get_cpuid_count(7, 0, &a7, &b7, &c7, &d7)) {
                if (ssse3_41 && (b7 & (1u << 29)))
                    f |= CPU_SHANI;
                if (osxsave) {
                    unsigned lo, hi;
                    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
                    /* XMM, YMM, opmask, ZMM_Hi256, Hi16_ZMM state enabled by the OS. */
                    gboolean os_zmm = (lo & 0xe6) == 0xe6;
                    gboolean avx512 = (b7 & (1u << 16)) && (b7 & (1u << 30)) && (b7 & (1u << 31));
                    if (os_zmm && avx512) {
                        f |= CPU_AVX512;
                        if ((c7 & (1u << 9)) && (f & CPU_AESNI))
                            f |= CPU_VAES;
                    }
                }
            }
        }
#endif
        /* Bit 31 marks "computed" so that a CPU without any feature still caches. */
        g_once_init_leave(&cached, (gsize)(f | (1u << 31)));
    }
    return (unsigned)cached & ~(1u << 31);
}

gboolean prox_crypto_sha_supported(ProxShaImpl sha)
{
    switch (sha) {
    case PROX_SHA_PORTABLE:
        return TRUE;
    case PROX_SHA_SHANI:
        return (cpu_features() & CPU_SHANI) != 0;
    case PROX_SHA_AVX512:
        return (cpu_features() & CPU_AVX512) != 0;
    default:
        return FALSE;
    }
}

gboolean prox_crypto_aes_supported(ProxAesImpl aes)
{
    switch (aes) {
    case PROX_AES_PORTABLE:
        return TRUE;
    case PROX_AES_AESNI:
        return (cpu_features() & CPU_AESNI) != 0;
    case PROX_AES_VAES:
        return (cpu_features() & CPU_VAES) != 0;
    default:
        return FALSE;
    }
}

gboolean prox_crypto_impl_supported(ProxCryptoImpl impl)
{
    return prox_crypto_sha_supported(impl.sha) && prox_crypto_aes_supported(impl.aes);
}

const char *prox_crypto_sha_name(ProxShaImpl sha)
{
    static const char *const names[] = {"portable", "shani", "avx512"};
    return (unsigned)sha < G_N_ELEMENTS(names) ? names[sha] : "invalid";
}

const char *prox_crypto_aes_name(ProxAesImpl aes)
{
    static const char *const names[] = {"portable", "aesni", "vaes"};
    return (unsigned)aes < G_N_ELEMENTS(names) ? names[aes] : "invalid";
}

static const char *const path_names[] = {"portable", "aesni", "vaes"};

const char *prox_crypto_path_name(ProxCryptoPath path)
{
    return (unsigned)path < G_N_ELEMENTS(path_names) ? path_names[path] : "invalid";
}

gboolean prox_crypto_path_from_name(const char *name, ProxCryptoPath *path)
{
    for (unsigned i = 0; i < G_N_ELEMENTS(path_names); i++) {
        if (g_strcmp0(name, path_names[i]) == 0) {
            *path = (ProxCryptoPath)i;
            return TRUE;
        }
    }
    return FALSE;
}

gboolean prox_crypto_path_impl(ProxCryptoPath path, ProxCryptoImpl *impl)
{
    ProxCryptoImpl r;
    switch (path) {
    case PROX_CRYPTO_PATH_PORTABLE:
        r = (ProxCryptoImpl){PROX_SHA_PORTABLE, PROX_AES_PORTABLE};
        break;
    case PROX_CRYPTO_PATH_AESNI:
        r = (ProxCryptoImpl){prox_crypto_sha_supported(PROX_SHA_SHANI) ? PROX_SHA_SHANI
                                                                       : PROX_SHA_PORTABLE,
                             PROX_AES_AESNI};
        break;
    case PROX_CRYPTO_PATH_VAES:
        r = (ProxCryptoImpl){PROX_SHA_AVX512, PROX_AES_VAES};
        break;
    default:
        return FALSE;
    }
    if (!prox_crypto_impl_supported(r))
        return FALSE;
    *impl = r;
    return TRUE;
}

ProxCryptoImpl prox_crypto_impl_default(void)
{
    static gsize done = 0;
    static ProxCryptoImpl chosen;
    if (g_once_init_enter(&done)) {
        ProxCryptoImpl impl = {PROX_SHA_PORTABLE, PROX_AES_PORTABLE};
        /* Measured on Zen 5: AVX-512 x16 SHA-256 beats SHA-NI x4 by ~1.4x; VAES beats
         * AES-NI by ~3.5x; both beat the portable path by an order of magnitude. */
        for (int p = PROX_CRYPTO_N_PATHS - 1; p >= 0; p--) {
            if (prox_crypto_path_impl((ProxCryptoPath)p, &impl))
                break;
        }
        if (impl.sha == PROX_SHA_PORTABLE && prox_crypto_sha_supported(PROX_SHA_SHANI))
            impl.sha = PROX_SHA_SHANI;

        const char *env = g_getenv("PROX_CRYPTO_PATH");
        if (env != NULL && *env != '\0') {
            ProxCryptoPath path;
            ProxCryptoImpl forced;
            if (!prox_crypto_path_from_name(env, &path))
                g_warning("PROX_CRYPTO_PATH=%s: unknown path (portable, aesni, vaes)", env);
            else if (!prox_crypto_path_impl(path, &forced))
                g_warning("PROX_CRYPTO_PATH=%s: not supported by this CPU", env);
            else
                impl = forced;
        }
        env = g_getenv("PROX_CRYPTO_SHA");
        if (env != NULL && *env != '\0') {
            int found = -1;
            for (int s = 0; s < PROX_SHA_N_IMPLS; s++) {
                if (strcmp(env, prox_crypto_sha_name((ProxShaImpl)s)) == 0)
                    found = s;
            }
            if (found < 0)
                g_warning("PROX_CRYPTO_SHA=%s: unknown (portable, shani, avx512)", env);
            else if (!prox_crypto_sha_supported((ProxShaImpl)found))
                g_warning("PROX_CRYPTO_SHA=%s: not supported by this CPU", env);
            else
                impl.sha = (ProxShaImpl)found;
        }
        chosen = impl;
        g_debug("crypto path: SHA-256 %s, AES %s", prox_crypto_sha_name(impl.sha),
                prox_crypto_aes_name(impl.aes));
        g_once_init_leave(&done, 1);
    }
    return chosen;
}

#ifdef PROX_X86

/* ---------- x86: SHA-NI ---------- */

#define T_SHANI __attribute__((target("sha,sse4.1,ssse3")))
/* Keys interleaved: SHA256RNDS2 has a long latency; 4 independent streams keep the unit
 * busy (measured 1 : 2 : 4 streams = 290 : 160 : 130 ns a key on Zen 5). */
#define SHANI_LANES 4

/* The SHA-NI state is two registers, ABEF and CDGH (A in the top dword). */
static ALWAYS_INLINE T_SHANI void shani_state_load(const uint32_t h[8], __m128i *abef,
                                                   __m128i *cdgh)
{
    __m128i dcba = _mm_loadu_si128((const __m128i *)h);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)(h + 4));
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xb1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1b);
    *abef = _mm_alignr_epi8(cdab, efgh, 8);
    *cdgh = _mm_blend_epi16(efgh, cdab, 0xf0);
}

/* State -> the digest as message words (H0..H3, H4..H7): big-endian digest bytes read
 * back as words are the state words themselves, so no byte swapping is needed. */
static ALWAYS_INLINE T_SHANI void shani_state_words(__m128i abef, __m128i cdgh, __m128i *w0,
                                                    __m128i *w1)
{
    __m128i feba = _mm_shuffle_epi32(abef, 0x1b);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xb1);
    *w0 = _mm_blend_epi16(feba, dchg, 0xf0);
    *w1 = _mm_alignr_epi8(dchg, feba, 8);
}

/* n independent compressions; m[l] holds lane l's 16 message words, overwritten. */
static ALWAYS_INLINE T_SHANI void shani_compress(int n, __m128i *abef, __m128i *cdgh,
                                                 __m128i (*m)[4])
{
    __m128i save_abef[SHANI_LANES], save_cdgh[SHANI_LANES];
    for (int l = 0; l < n; l++) {
        save_abef[l] = abef[l];
        save_cdgh[l] = cdgh[l];
    }
#pragma GCC unroll 16
    for (int q = 0; q < 16; q++) {
        const __m128i k = _mm_load_si128((const __m128i *)(sha256_k + 4 * q));
#pragma GCC unroll 4
        for (int l = 0; l < n; l++) {
            if (q >= 4) {
                __m128i x = _mm_sha256msg1_epu32(m[l][q & 3], m[l][(q + 1) & 3]);
                x = _mm_add_epi32(x, _mm_alignr_epi8(m[l][(q + 3) & 3], m[l][(q + 2) & 3], 4));
                m[l][q & 3] = _mm_sha256msg2_epu32(x, m[l][(q + 3) & 3]);
            }
            __m128i wk = _mm_add_epi32(m[l][q & 3], k);
            cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], wk);
            abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_shuffle_epi32(wk, 0x0e));
        }
    }
    for (int l = 0; l < n; l++) {
        abef[l] = _mm_add_epi32(abef[l], save_abef[l]);
        cdgh[l] = _mm_add_epi32(cdgh[l], save_cdgh[l]);
    }
}

/* n compressions of the same constant block given as W+K. */
static ALWAYS_INLINE T_SHANI void shani_compress_wk(int n, __m128i *abef, __m128i *cdgh,
                                                    const uint32_t *wk)
{
    __m128i save_abef[SHANI_LANES], save_cdgh[SHANI_LANES];
    for (int l = 0; l < n; l++) {
        save_abef[l] = abef[l];
        save_cdgh[l] = cdgh[l];
    }
#pragma GCC unroll 16
    for (int q = 0; q < 16; q++) {
        const __m128i lo = _mm_load_si128((const __m128i *)(wk + 4 * q));
        const __m128i hi = _mm_shuffle_epi32(lo, 0x0e);
#pragma GCC unroll 4
        for (int l = 0; l < n; l++) {
            cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], lo);
            abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], hi);
        }
    }
    for (int l = 0; l < n; l++) {
        abef[l] = _mm_add_epi32(abef[l], save_abef[l]);
        cdgh[l] = _mm_add_epi32(cdgh[l], save_cdgh[l]);
    }
}

static ALWAYS_INLINE T_SHANI void shani_hkdf16(int n, const uint8_t *teks, int info, uint8_t *out)
{
    const __m128i bswap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
    const __m128i pad = _mm_set_epi32(0, 0, 0, (int)0x80000000);
    const __m128i len_tek = _mm_set_epi32(LEN_TEK_BITS, 0, 0, 0);
    const __m128i len_digest = _mm_set_epi32(LEN_DIGEST_BITS, 0, 0, 0);
    const __m128i x36 = _mm_set1_epi32(0x36363636), x5c = _mm_set1_epi32(0x5c5c5c5c);
    __m128i ipad_abef, ipad_cdgh, opad_abef, opad_cdgh, iv_abef, iv_cdgh;
    shani_state_load(hkdf.zero_ipad, &ipad_abef, &ipad_cdgh);
    shani_state_load(hkdf.zero_opad, &opad_abef, &opad_cdgh);
    shani_state_load(sha256_iv, &iv_abef, &iv_cdgh);

    __m128i abef[SHANI_LANES], cdgh[SHANI_LANES], m[SHANI_LANES][4];
    __m128i babef[SHANI_LANES], bcdgh[SHANI_LANES], bm[SHANI_LANES][4];

    for (int l = 0; l < n; l++) {
        abef[l] = ipad_abef;
        cdgh[l] = ipad_cdgh;
        m[l][0] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(teks + 16 * l)), bswap);
        m[l][1] = pad;
        m[l][2] = _mm_setzero_si128();
        m[l][3] = len_tek;
    }
    shani_compress(n, abef, cdgh, m);

    for (int l = 0; l < n; l++) {
        shani_state_words(abef[l], cdgh[l], &m[l][0], &m[l][1]);
        m[l][2] = pad;
        m[l][3] = len_digest;
        abef[l] = opad_abef;
        cdgh[l] = opad_cdgh;
    }
    shani_compress(n, abef, cdgh, m);

    for (int l = 0; l < n; l++) {
        __m128i w0, w1;
        shani_state_words(abef[l], cdgh[l], &w0, &w1);
        m[l][0] = _mm_xor_si128(w0, x36);
        m[l][1] = _mm_xor_si128(w1, x36);
        m[l][2] = x36;
        m[l][3] = x36;
        bm[l][0] = _mm_xor_si128(w0, x5c);
        bm[l][1] = _mm_xor_si128(w1, x5c);
        bm[l][2] = x5c;
        bm[l][3] = x5c;
        abef[l] = babef[l] = iv_abef;
        cdgh[l] = bcdgh[l] = iv_cdgh;
    }
    shani_compress(n, abef, cdgh, m);
    shani_compress(n, babef, bcdgh, bm);
    shani_compress_wk(n, abef, cdgh, hkdf.info_wk[info]);

    for (int l = 0; l < n; l++) {
        shani_state_words(abef[l], cdgh[l], &bm[l][0], &bm[l][1]);
        bm[l][2] = pad;
        bm[l][3] = len_digest;
    }
    shani_compress(n, babef, bcdgh, bm);
    for (int l = 0; l < n; l++) {
        __m128i w0, w1;
        shani_state_words(babef[l], bcdgh[l], &w0, &w1);
        _mm_storeu_si128((__m128i *)(out + 16 * l), _mm_shuffle_epi8(w0, bswap));
    }
}

static __attribute__((noinline)) T_SHANI void shani_hkdf16_x4(const uint8_t *teks, int info,
                                                              uint8_t *out)
{
    shani_hkdf16(SHANI_LANES, teks, info, out);
}

static __attribute__((noinline)) T_SHANI void shani_hkdf16_x1(const uint8_t *teks, int info,
                                                              uint8_t *out)
{
    shani_hkdf16(1, teks, info, out);
}

/* ---------- x86: AVX-512, 16 keys in the 32-bit lanes of zmm registers ---------- */

#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define X16_LANES 16

/* One 16-lane stream is latency-bound (each round waits for the previous one); two
 * independent streams interleaved fill the vector units: 256 -> 147 ns a 16-lane
 * compression on Zen 5 (three or four spill registers and are slower again). */

#define X16_ROR(x, n) _mm512_ror_epi32((x), (n))

/* Message word t plus K_t; for t >= 16 the schedule is extended in place in W. */
#define X16_WK(W, t)                                                                               \
    __extension__({                                                                                \
        if ((t) >= 16) {                                                                           \
            __m512i w15_ = (W)[((t) + 1) & 15], w2_ = (W)[((t) + 14) & 15];                        \
            __m512i sg0_ = _mm512_ternarylogic_epi32(X16_ROR(w15_, 7), X16_ROR(w15_, 18),          \
                                                     _mm512_srli_epi32(w15_, 3), 0x96);            \
            __m512i sg1_ = _mm512_ternarylogic_epi32(X16_ROR(w2_, 17), X16_ROR(w2_, 19),           \
                                                     _mm512_srli_epi32(w2_, 10), 0x96);            \
            (W)[(t)&15] = _mm512_add_epi32(_mm512_add_epi32((W)[(t)&15], sg0_),                    \
                                           _mm512_add_epi32((W)[((t) + 9) & 15], sg1_));           \
        }                                                                                          \
        _mm512_add_epi32((W)[(t)&15], _mm512_set1_epi32((int)sha256_k[(t)]));                      \
    })

/* Round t on state S[8] with rotating roles: round t's `a` is S[-t & 7], and the new `a`
 * and `e` overwrite the old `h` and `d`, so no register moves are needed. */
#define X16_ROUND(S, t, wk)                                                                        \
    do {                                                                                           \
        __m512i wk_ = (wk);                                                                        \
        __m512i a_ = (S)[(64 - (t)) & 7], b_ = (S)[(65 - (t)) & 7], c_ = (S)[(66 - (t)) & 7];      \
        __m512i d_ = (S)[(67 - (t)) & 7], e_ = (S)[(68 - (t)) & 7], f_ = (S)[(69 - (t)) & 7];      \
        __m512i g_ = (S)[(70 - (t)) & 7], h_ = (S)[(71 - (t)) & 7];                                \
        __m512i s1_ =                                                                              \
            _mm512_ternarylogic_epi32(X16_ROR(e_, 6), X16_ROR(e_, 11), X16_ROR(e_, 25), 0x96);     \
        __m512i ch_ = _mm512_ternarylogic_epi32(e_, f_, g_, 0xca);                                 \
        __m512i t1_ = _mm512_add_epi32(_mm512_add_epi32(h_, s1_), _mm512_add_epi32(ch_, wk_));     \
        __m512i s0_ =                                                                              \
            _mm512_ternarylogic_epi32(X16_ROR(a_, 2), X16_ROR(a_, 13), X16_ROR(a_, 22), 0x96);     \
        __m512i maj_ = _mm512_ternarylogic_epi32(a_, b_, c_, 0xe8);                                \
        (S)[(67 - (t)) & 7] = _mm512_add_epi32(d_, t1_);                                           \
        (S)[(71 - (t)) & 7] = _mm512_add_epi32(t1_, _mm512_add_epi32(s0_, maj_));                  \
    } while (0)

static ALWAYS_INLINE T_AVX512 void x16_feed_forward(__m512i *s, const __m512i *work)
{
    for (int i = 0; i < 8; i++)
        s[i] = _mm512_add_epi32(s[i], work[i]);
}

/* s = compress(s, w); w is overwritten by its schedule. */
static __attribute__((noinline)) T_AVX512 void x16_compress(__m512i *s, __m512i *w)
{
    __m512i x[8];
    memcpy(x, s, sizeof x);
#pragma GCC unroll 64
    for (int t = 0; t < 64; t++)
        X16_ROUND(x, t, X16_WK(w, t));
    x16_feed_forward(s, x);
}

/* Two independent compressions, interleaved round by round. */
static __attribute__((noinline)) T_AVX512 void x16_compress2(__m512i *s, __m512i *w, __m512i *s2,
                                                             __m512i *w2)
{
    __m512i x[8], y[8];
    memcpy(x, s, sizeof x);
    memcpy(y, s2, sizeof y);
#pragma GCC unroll 64
    for (int t = 0; t < 64; t++) {
        X16_ROUND(x, t, X16_WK(w, t));
        X16_ROUND(y, t, X16_WK(w2, t));
    }
    x16_feed_forward(s, x);
    x16_feed_forward(s2, y);
}

/* Compression of the constant info block, given as W+K (no schedule work). */
static __attribute__((noinline)) T_AVX512 void x16_compress_wk(__m512i *s, const uint32_t *wk)
{
    __m512i x[8];
    memcpy(x, s, sizeof x);
#pragma GCC unroll 64
    for (int t = 0; t < 64; t++)
        X16_ROUND(x, t, _mm512_set1_epi32((int)wk[t]));
    x16_feed_forward(s, x);
}

static __attribute__((noinline)) T_AVX512 void x16_compress_wk2(__m512i *s, __m512i *s2,
                                                                const uint32_t *wk)
{
    __m512i x[8], y[8];
    memcpy(x, s, sizeof x);
    memcpy(y, s2, sizeof y);
#pragma GCC unroll 64
    for (int t = 0; t < 64; t++) {
        const __m512i k = _mm512_set1_epi32((int)wk[t]);
        X16_ROUND(x, t, k);
        X16_ROUND(y, t, k);
    }
    x16_feed_forward(s, x);
    x16_feed_forward(s2, y);
}

/* The HKDF of 16 keys, one per lane; see hkdf16_c() for the six compressions. */
typedef struct {
    __m512i w[16], v[16]; /* message schedules of the inner and the outer chain */
    __m512i inner[8], prk[8], a[8], b[8];
} X16Hkdf;

static ALWAYS_INLINE T_AVX512 __m512i x16_bswap(__m512i x)
{
    const __m512i bswap =
        _mm512_broadcast_i32x4(_mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3));
    return _mm512_shuffle_epi8(x, bswap);
}

/* 16 keys of 4 words in 4 registers, key-major <-> 4 registers each holding one word of
 * the 16 keys: D, a 4x4 dword transpose of each register (keys 4j..4j+3 as rows), and C, a
 * 4x4 transpose of the 128-bit chunks across the registers. In: D then C; out: C then D.
 * Gathers and (on AMD, very slow) scatters cost more. */
static ALWAYS_INLINE T_AVX512 void x16_transpose_dwords(__m512i r[4])
{
    const __m512i idx = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    for (int j = 0; j < 4; j++)
        r[j] = _mm512_permutexvar_epi32(idx, r[j]);
}

static ALWAYS_INLINE T_AVX512 void x16_transpose_chunks(__m512i r[4])
{
    __m512i q0 = _mm512_shuffle_i32x4(r[0], r[1], _MM_SHUFFLE(1, 0, 1, 0));
    __m512i q1 = _mm512_shuffle_i32x4(r[0], r[1], _MM_SHUFFLE(3, 2, 3, 2));
    __m512i q2 = _mm512_shuffle_i32x4(r[2], r[3], _MM_SHUFFLE(1, 0, 1, 0));
    __m512i q3 = _mm512_shuffle_i32x4(r[2], r[3], _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm512_shuffle_i32x4(q0, q2, _MM_SHUFFLE(2, 0, 2, 0));
    r[1] = _mm512_shuffle_i32x4(q0, q2, _MM_SHUFFLE(3, 1, 3, 1));
    r[2] = _mm512_shuffle_i32x4(q1, q3, _MM_SHUFFLE(2, 0, 2, 0));
    r[3] = _mm512_shuffle_i32x4(q1, q3, _MM_SHUFFLE(3, 1, 3, 1));
}

/* w = digest || 0x80 || 0... || length of a 64-byte pad block + 32 bytes. */
static ALWAYS_INLINE T_AVX512 void x16_digest_block(__m512i *w, const __m512i *digest)
{
    for (int i = 0; i < 8; i++)
        w[i] = digest[i];
    w[8] = _mm512_set1_epi32((int)0x80000000);
    for (int i = 9; i < 15; i++)
        w[i] = _mm512_setzero_si512();
    w[15] = _mm512_set1_epi32(LEN_DIGEST_BITS);
}

/* Before c1: the TEKs (16 bytes apart) as message words, the zero-salt ipad state. */
static ALWAYS_INLINE T_AVX512 void x16_start(X16Hkdf *h, const uint8_t *teks)
{
    __m512i r[4];
    for (int j = 0; j < 4; j++)
        r[j] = _mm512_loadu_si512(teks + 64 * j);
    x16_transpose_dwords(r);
    x16_transpose_chunks(r);
    for (int i = 0; i < 4; i++)
        h->w[i] = x16_bswap(r[i]);
    h->w[4] = _mm512_set1_epi32((int)0x80000000);
    for (int i = 5; i < 15; i++)
        h->w[i] = _mm512_setzero_si512();
    h->w[15] = _mm512_set1_epi32(LEN_TEK_BITS);
    for (int i = 0; i < 8; i++)
        h->inner[i] = _mm512_set1_epi32((int)hkdf.zero_ipad[i]);
}

/* Before c2: PRK = compress(opad state, inner digest). */
static ALWAYS_INLINE T_AVX512 void x16_after_c1(X16Hkdf *h)
{
    x16_digest_block(h->w, h->inner);
    for (int i = 0; i < 8; i++)
        h->prk[i] = _mm512_set1_epi32((int)hkdf.zero_opad[i]);
}

/* Before c3/c4: the HMAC pads of the PRK as key. */
static ALWAYS_INLINE T_AVX512 void x16_after_c2(X16Hkdf *h)
{
    const __m512i x36 = _mm512_set1_epi32(0x36363636), x5c = _mm512_set1_epi32(0x5c5c5c5c);
    for (int i = 0; i < 16; i++) {
        h->w[i] = i < 8 ? _mm512_xor_si512(h->prk[i], x36) : x36;
        h->v[i] = i < 8 ? _mm512_xor_si512(h->prk[i], x5c) : x5c;
    }
    for (int i = 0; i < 8; i++)
        h->a[i] = h->b[i] = _mm512_set1_epi32((int)sha256_iv[i]);
}

/* After c6: the first 16 bytes of each lane's digest, big-endian, 16 bytes apart. */
static ALWAYS_INLINE T_AVX512 void x16_finish(X16Hkdf *h, uint8_t *out)
{
    __m512i r[4];
    for (int i = 0; i < 4; i++)
        r[i] = x16_bswap(h->b[i]);
    x16_transpose_chunks(r);
    x16_transpose_dwords(r);
    for (int j = 0; j < 4; j++)
        _mm512_storeu_si512(out + 64 * j, r[j]);
}

/* HKDF of 16 TEKs: c3 || c4 interleaved, the rest one stream. */
static __attribute__((noinline)) T_AVX512 void x16_hkdf16(const uint8_t *teks, int info,
                                                          uint8_t *out)
{
    X16Hkdf h;
    x16_start(&h, teks);
    x16_compress(h.inner, h.w);
    x16_after_c1(&h);
    x16_compress(h.prk, h.w);
    x16_after_c2(&h);
    x16_compress2(h.a, h.w, h.b, h.v);
    x16_compress_wk(h.a, hkdf.info_wk[info]);
    x16_digest_block(h.v, h.a);
    x16_compress(h.b, h.v);
    x16_finish(&h, out);
}

/* HKDF of 32 TEKs as two groups of 16 interleaved at every step. */
static __attribute__((noinline)) T_AVX512 void x16_hkdf32(const uint8_t *teks, int info,
                                                          uint8_t *out)
{
    X16Hkdf g[2];
    x16_start(&g[0], teks);
    x16_start(&g[1], teks + 16 * X16_LANES);
    x16_compress2(g[0].inner, g[0].w, g[1].inner, g[1].w);
    x16_after_c1(&g[0]);
    x16_after_c1(&g[1]);
    x16_compress2(g[0].prk, g[0].w, g[1].prk, g[1].w);
    x16_after_c2(&g[0]);
    x16_after_c2(&g[1]);
    x16_compress2(g[0].a, g[0].w, g[0].b, g[0].v);
    x16_compress2(g[1].a, g[1].w, g[1].b, g[1].v);
    x16_compress_wk2(g[0].a, g[1].a, hkdf.info_wk[info]);
    x16_digest_block(g[0].v, g[0].a);
    x16_digest_block(g[1].v, g[1].a);
    x16_compress2(g[0].b, g[0].v, g[1].b, g[1].v);
    x16_finish(&g[0], out);
    x16_finish(&g[1], out + 16 * X16_LANES);
}

/* ---------- x86: AES-NI and VAES ---------- */

#define T_AESNI __attribute__((target("aes,sse4.1,ssse3")))
#define T_VAES __attribute__((target("aes,vaes,sse4.1,ssse3,avx512f,avx512bw,avx512vl")))

static ALWAYS_INLINE T_AESNI __m128i aes_expand_step(__m128i key, __m128i assist)
{
    assist = _mm_shuffle_epi32(assist, 0xff);
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    return _mm_xor_si128(key, assist);
}

#define AES_EXPAND(rk, i, rcon)                                                                    \
    rk[i] = aes_expand_step(rk[i - 1], _mm_aeskeygenassist_si128(rk[i - 1], rcon))

static ALWAYS_INLINE T_AESNI void aes128_expand(const uint8_t key[16], __m128i rk[11])
{
    rk[0] = _mm_loadu_si128((const __m128i *)key);
    AES_EXPAND(rk, 1, 0x01);
    AES_EXPAND(rk, 2, 0x02);
    AES_EXPAND(rk, 3, 0x04);
    AES_EXPAND(rk, 4, 0x08);
    AES_EXPAND(rk, 5, 0x10);
    AES_EXPAND(rk, 6, 0x20);
    AES_EXPAND(rk, 7, 0x40);
    AES_EXPAND(rk, 8, 0x80);
    AES_EXPAND(rk, 9, 0x1b);
    AES_EXPAND(rk, 10, 0x36);
}

static ALWAYS_INLINE T_AESNI __m128i aes128_block(const __m128i rk[11], __m128i x)
{
    x = _mm_xor_si128(x, rk[0]);
    for (int r = 1; r < 10; r++)
        x = _mm_aesenc_si128(x, rk[r]);
    return _mm_aesenclast_si128(x, rk[10]);
}

/* "EN-RPI" || 0^6, the constant part of every RPI plaintext; the last 4 bytes are the
 * little-endian interval number, i.e. the top dword of the block. */
static const uint8_t rpi_prefix[16] __attribute__((aligned(16))) = {'E', 'N', '-', 'R', 'P', 'I'};

#define AESNI_GROUP 8

static __attribute__((noinline)) T_AESNI void aesni_rpis(const uint8_t rpik[16], uint32_t start,
                                                         uint32_t count, ProxRpi *rpis)
{
    __m128i rk[11];
    aes128_expand(rpik, rk);
    /* Round 0 (xor with rk[0]) folded into the plaintext prefix; the counter dword is
     * xored in per block. */
    const __m128i base = _mm_xor_si128(_mm_load_si128((const __m128i *)rpi_prefix), rk[0]);
    const __m128i one = _mm_set_epi32(1, 0, 0, 0);
    __m128i ctr = _mm_set_epi32((int)start, 0, 0, 0);
    uint32_t j = 0;
    for (; j + AESNI_GROUP <= count; j += AESNI_GROUP) {
        __m128i x[AESNI_GROUP];
#pragma GCC unroll 8
        for (int i = 0; i < AESNI_GROUP; i++) {
            x[i] = _mm_xor_si128(base, ctr);
            ctr = _mm_add_epi32(ctr, one);
        }
#pragma GCC unroll 9
        for (int r = 1; r < 10; r++) {
#pragma GCC unroll 8
            for (int i = 0; i < AESNI_GROUP; i++)
                x[i] = _mm_aesenc_si128(x[i], rk[r]);
        }
#pragma GCC unroll 8
        for (int i = 0; i < AESNI_GROUP; i++)
            _mm_storeu_si128((__m128i *)rpis[j + i].bytes, _mm_aesenclast_si128(x[i], rk[10]));
    }
    for (; j < count; j++) {
        __m128i x = _mm_xor_si128(base, ctr);
        ctr = _mm_add_epi32(ctr, one);
        for (int r = 1; r < 10; r++)
            x = _mm_aesenc_si128(x, rk[r]);
        _mm_storeu_si128((__m128i *)rpis[j].bytes, _mm_aesenclast_si128(x, rk[10]));
    }
}

static __attribute__((noinline)) T_AESNI void aesni_ctr4(const uint8_t key[16], const uint8_t *ctr,
                                                         const uint8_t in[4], uint8_t out[4])
{
    __m128i rk[11];
    aes128_expand(key, rk);
    uint8_t ks[16];
    _mm_storeu_si128((__m128i *)ks, aes128_block(rk, _mm_loadu_si128((const __m128i *)ctr)));
    for (int i = 0; i < 4; i++)
        out[i] = in[i] ^ ks[i];
}

/* zmm registers per group: 6 x 4 blocks in flight cover the VAES latency (measured 6, 9,
 * 12 and 18 within noise of each other on Zen 5). */
#define VAES_GROUP 6

static __attribute__((noinline)) T_VAES void vaes_rpis(const uint8_t rpik[16], uint32_t start,
                                                       uint32_t count, ProxRpi *rpis)
{
    __m128i rk128[11];
    aes128_expand(rpik, rk128);
    __m512i rk[11];
    for (int r = 0; r < 11; r++)
        rk[r] = _mm512_broadcast_i32x4(rk128[r]);
    const __m512i base = _mm512_xor_si512(
        _mm512_broadcast_i32x4(_mm_load_si128((const __m128i *)rpi_prefix)), rk[0]);
    /* Block i of a register holds interval start + i in its top dword. */
    __m512i ctr =
        _mm512_maskz_add_epi32(0x8888, _mm512_set1_epi32((int)start),
                               _mm512_set_epi32(3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0));
    const __m512i four = _mm512_maskz_set1_epi32(0x8888, 4);
    uint8_t *out = (uint8_t *)rpis;
    const uint32_t nz = (count + 3) / 4;
    uint32_t z = 0;
    for (; z + VAES_GROUP <= nz; z += VAES_GROUP) {
        __m512i x[VAES_GROUP];
#pragma GCC unroll 6
        for (int i = 0; i < VAES_GROUP; i++) {
            x[i] = _mm512_xor_si512(base, ctr);
            ctr = _mm512_add_epi32(ctr, four);
        }
#pragma GCC unroll 9
        for (int r = 1; r < 10; r++) {
#pragma GCC unroll 6
            for (int i = 0; i < VAES_GROUP; i++)
                x[i] = _mm512_aesenc_epi128(x[i], rk[r]);
        }
        if (4 * (z + VAES_GROUP) <= count) {
#pragma GCC unroll 6
            for (int i = 0; i < VAES_GROUP; i++)
                _mm512_storeu_si512(out + 64 * (z + i), _mm512_aesenclast_epi128(x[i], rk[10]));
        } else {
            for (int i = 0; i < VAES_GROUP; i++) {
                uint32_t left = count - 4 * (z + i);
                __mmask8 keep = left >= 4 ? 0xff : (__mmask8)((1u << (2 * left)) - 1);
                _mm512_mask_storeu_epi64(out + 64 * (z + i), keep,
                                         _mm512_aesenclast_epi128(x[i], rk[10]));
            }
        }
    }
    for (; z < nz; z++) {
        __m512i x = _mm512_xor_si512(base, ctr);
        ctr = _mm512_add_epi32(ctr, four);
        for (int r = 1; r < 10; r++)
            x = _mm512_aesenc_epi128(x, rk[r]);
        uint32_t left = count - 4 * z;
        __mmask8 keep = left >= 4 ? 0xff : (__mmask8)((1u << (2 * left)) - 1);
        _mm512_mask_storeu_epi64(out + 64 * z, keep, _mm512_aesenclast_epi128(x, rk[10]));
    }
}

#endif /* PROX_X86 */

/* ---------- single keys ---------- */

static void hkdf16_one(ProxShaImpl sha, const uint8_t tek[PROX_KEY_LEN], int info,
                       uint8_t out[PROX_KEY_LEN])
{
    hkdf_constants_ensure();
#ifdef PROX_X86
    if (sha != PROX_SHA_PORTABLE && prox_crypto_sha_supported(PROX_SHA_SHANI)) {
        shani_hkdf16_x1(tek, info, out);
        return;
    }
#endif
    (void)sha;
    hkdf16_c(tek, info, out);
}

void prox_crypto_rpik(ProxShaImpl sha, const uint8_t tek[PROX_KEY_LEN], uint8_t rpik[PROX_KEY_LEN])
{
    hkdf16_one(sha, tek, INFO_RPIK, rpik);
}

void prox_crypto_aemk(ProxShaImpl sha, const uint8_t tek[PROX_KEY_LEN], uint8_t aemk[PROX_KEY_LEN])
{
    hkdf16_one(sha, tek, INFO_AEMK, aemk);
}

/* ---------- the deriver ---------- */

struct _ProxRpiDeriver {
    ProxCryptoImpl impl;
    EVP_CIPHER_CTX *ecb; /* portable AES only */
    uint8_t plaintext[PROX_MAX_ROLLING_PERIOD][16];
};

ProxRpiDeriver *prox_rpi_deriver_new(ProxCryptoImpl impl)
{
    if (!prox_crypto_impl_supported(impl))
        return NULL;
    hkdf_constants_ensure();
    ProxRpiDeriver *d = g_new0(ProxRpiDeriver, 1);
    d->impl = impl;
    if (impl.aes == PROX_AES_PORTABLE) {
        static const uint8_t zero_key[16];
        d->ecb = EVP_CIPHER_CTX_new();
        if (d->ecb == NULL ||
            EVP_EncryptInit_ex(d->ecb, EVP_aes_128_ecb(), NULL, zero_key, NULL) != 1)
            g_error("OpenSSL: cannot set up AES-128-ECB");
        EVP_CIPHER_CTX_set_padding(d->ecb, 0);
        for (int j = 0; j < PROX_MAX_ROLLING_PERIOD; j++)
            memcpy(d->plaintext[j], rpi_prefix, 16);
    }
    return d;
}

void prox_rpi_deriver_free(ProxRpiDeriver *d)
{
    if (d == NULL)
        return;
    EVP_CIPHER_CTX_free(d->ecb);
    g_free(d);
}

ProxCryptoImpl prox_rpi_deriver_impl(const ProxRpiDeriver *d)
{
    return d->impl;
}

void prox_rpi_deriver_rpiks(ProxRpiDeriver *d, const uint8_t (*teks)[PROX_KEY_LEN], size_t n,
                            uint8_t (*rpiks)[PROX_KEY_LEN])
{
    size_t i = 0;
#ifdef PROX_X86
    if (d->impl.sha == PROX_SHA_AVX512) {
        for (; i + 2 * X16_LANES <= n; i += 2 * X16_LANES)
            x16_hkdf32(teks[i], INFO_RPIK, rpiks[i]);
        for (; i + X16_LANES <= n; i += X16_LANES)
            x16_hkdf16(teks[i], INFO_RPIK, rpiks[i]);
    } else if (d->impl.sha == PROX_SHA_SHANI) {
        for (; i + SHANI_LANES <= n; i += SHANI_LANES)
            shani_hkdf16_x4(teks[i], INFO_RPIK, rpiks[i]);
    }
    if (i < n && d->impl.sha != PROX_SHA_PORTABLE) {
        /* A partial group runs on a padded copy: the unused lanes derive zeros. */
        uint8_t in[X16_LANES][PROX_KEY_LEN] = {{0}}, out[X16_LANES][PROX_KEY_LEN];
        memcpy(in, teks[i], (n - i) * PROX_KEY_LEN);
        if (d->impl.sha == PROX_SHA_AVX512)
            x16_hkdf16(in[0], INFO_RPIK, out[0]);
        else
            for (size_t l = 0; l < n - i; l += SHANI_LANES)
                shani_hkdf16_x4(in[l], INFO_RPIK, out[l]);
        memcpy(rpiks[i], out, (n - i) * PROX_KEY_LEN);
        return;
    }
#endif
    for (; i < n; i++)
        hkdf16_c(teks[i], INFO_RPIK, rpiks[i]);
}

static void evp_ecb(EVP_CIPHER_CTX *ecb, const uint8_t key[16], const uint8_t *in, size_t len,
                    uint8_t *out)
{
    int outl = 0;
    if (EVP_EncryptInit_ex(ecb, NULL, NULL, key, NULL) != 1 ||
        EVP_EncryptUpdate(ecb, out, &outl, in, (int)len) != 1 || (size_t)outl != len)
        g_error("OpenSSL: AES-128-ECB failed");
}

void prox_rpi_deriver_rpis(ProxRpiDeriver *d, const uint8_t rpik[PROX_KEY_LEN], uint32_t start,
                           uint32_t count, ProxRpi *rpis)
{
    g_return_if_fail(count >= 1 && count <= PROX_MAX_ROLLING_PERIOD);
    switch (d->impl.aes) {
#ifdef PROX_X86
    case PROX_AES_VAES:
        vaes_rpis(rpik, start, count, rpis);
        return;
    case PROX_AES_AESNI:
        aesni_rpis(rpik, start, count, rpis);
        return;
#endif
    default:
        for (uint32_t j = 0; j < count; j++) {
            uint32_t enin = GUINT32_TO_LE(start + j);
            memcpy(d->plaintext[j] + 12, &enin, 4);
        }
        evp_ecb(d->ecb, rpik, d->plaintext[0], (size_t)count * 16, rpis[0].bytes);
        return;
    }
}

void prox_rpi_deriver_aem(ProxRpiDeriver *d, const uint8_t aemk[PROX_KEY_LEN], const ProxRpi *rpi,
                          const uint8_t in[PROX_AEM_LEN], uint8_t out[PROX_AEM_LEN])
{
#ifdef PROX_X86
    if (d->impl.aes != PROX_AES_PORTABLE) {
        aesni_ctr4(aemk, rpi->bytes, in, out);
        return;
    }
#endif
    /* CTR keystream block 0 is AES(key, counter block): one ECB block is enough for 4 bytes. */
    uint8_t ks[16];
    evp_ecb(d->ecb, aemk, rpi->bytes, 16, ks);
    for (int i = 0; i < PROX_AEM_LEN; i++)
        out[i] = in[i] ^ ks[i];
}
