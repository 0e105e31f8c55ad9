/* prox-keys.h - GAEN v1.2 key schedule: TEK, RPIK/AEMK, RPI, AEM, metadata, rotation.
 *
 * Reference implementation on OpenSSL (HKDF, AES-128-ECB/CTR). Matching uses the
 * faster derivation in prox-crypto-fast.h, tested against this one.
 */
#pragma once

#include "prox-types.h"

#include <stddef.h>

G_BEGIN_DECLS

#define PROX_METADATA_VERSION_1_0 0x40
#define PROX_ROTATION_MIN_SECONDS 600
#define PROX_ROTATION_MAX_SECONDS 1200

/* Source of random bytes; injected so tests and the simulator are deterministic. */
typedef void (*ProxRandomFunc)(void *buf, size_t len, void *user_data);

/* libsodium randombytes_buf; user_data ignored. */
void prox_random_system(void *buf, size_t len, void *user_data);

/* ENIN at which the TEK valid at unix time `now` starts (a multiple of 144). */
uint32_t prox_tek_rolling_start(gint64 now);

/* Fills a fresh TEK valid for [rolling_start, rolling_start + 144). */
void prox_tek_generate(ProxTek *tek, uint32_t rolling_start, ProxRandomFunc random,
                       void *random_data);

/* TRUE when `tek` is valid for interval `enin`. */
gboolean prox_tek_covers(const ProxTek *tek, uint32_t enin);

/* HKDF-SHA256(IKM = tek, salt = none, info = "EN-RPIK" / "EN-AEMK", L = 16). */
void prox_rpik_derive(const uint8_t tek[PROX_KEY_LEN], uint8_t rpik[PROX_KEY_LEN]);
void prox_aemk_derive(const uint8_t tek[PROX_KEY_LEN], uint8_t aemk[PROX_KEY_LEN]);

/* RPI_j = AES-128-ECB(RPIK, "EN-RPI" || 0^6 || LE32(enin)). */
void prox_rpi_compute(const uint8_t rpik[PROX_KEY_LEN], uint32_t enin, ProxRpi *rpi);
/* RPIs for [start, start + count), count <= 144, one AES context for all. */
void prox_rpi_compute_range(const uint8_t rpik[PROX_KEY_LEN], uint32_t start, uint32_t count,
                            ProxRpi *rpis);

/* AEM = AES-128-CTR(AEMK, counter block = RPI, metadata). Decryption is the same operation. */
void prox_aem_crypt(const uint8_t aemk[PROX_KEY_LEN], const ProxRpi *rpi,
                    const uint8_t in[PROX_AEM_LEN], uint8_t out[PROX_AEM_LEN]);

/* Metadata v1.0: {0x40, tx_power (signed dBm), 0, 0}. */
void prox_metadata_encode(int8_t tx_power_dbm, uint8_t metadata[PROX_METADATA_LEN]);
/* Returns FALSE when the major version (top two bits of byte 0) is not 1. */
gboolean prox_metadata_decode(const uint8_t metadata[PROX_METADATA_LEN], int8_t *tx_power_dbm);

/* What a device broadcasts during one interval. */
typedef struct {
    uint32_t enin;
    ProxRpi rpi;
    ProxAem aem;
} ProxBroadcastId;

/* RPI and AEM for `tek` at unix time `now`. FALSE (and *out untouched) when the TEK
 * does not cover now's interval. */
gboolean prox_broadcast_id_at(const ProxTek *tek, gint64 now,
                              const uint8_t metadata[PROX_METADATA_LEN], ProxBroadcastId *out);

/* Time of the next RPI/address rotation: uniformly random in
 * [last_rotation + 600 s, last_rotation + 1200 s]. */
gint64 prox_rotation_next(gint64 last_rotation, ProxRandomFunc random, void *random_data);

G_END_DECLS
