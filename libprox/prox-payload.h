/* prox-payload.h - the GAEN BLE advertisement (PROTOCOL.md §2) and its service data. */
#pragma once

#include "prox-types.h"

#include <stddef.h>

G_BEGIN_DECLS

#define PROX_SERVICE_UUID16 0xFD6F
#define PROX_SERVICE_UUID "0000fd6f-0000-1000-8000-00805f9b34fb"
#define PROX_SERVICE_DATA_LEN (PROX_RPI_LEN + PROX_AEM_LEN) /* 20 */
#define PROX_ADVERTISEMENT_LEN 31

/* 20-byte service data: RPI || AEM. */
void prox_service_data_encode(const ProxRpi *rpi, const ProxAem *aem,
                              uint8_t out[PROX_SERVICE_DATA_LEN]);

/* Parses service data received under `uuid` (as BlueZ reports it: 128-bit string form,
 * any case; the 16-bit shorthand "fd6f", any case, is accepted too). Fails with
 * PROX_ERROR_MALFORMED and a reason for a wrong UUID or length.
 * Never reads past data[len - 1]. */
gboolean prox_service_data_parse(const char *uuid, const uint8_t *data, size_t len, ProxRpi *rpi,
                                 ProxAem *aem, GError **error);

/* Full 31-byte legacy advertising payload:
 * 02 01 1a | 03 03 6f fd | 17 16 6f fd <RPI 16><AEM 4>. */
void prox_advertisement_encode(const ProxRpi *rpi, const ProxAem *aem,
                               uint8_t out[PROX_ADVERTISEMENT_LEN]);

/* Parses a raw advertising payload (a sequence of AD structures) and extracts the
 * FD6F service data. Tolerates other AD structures in any order, rejects truncated
 * structures, a missing or duplicate FD6F service data, or a wrong length. */
gboolean prox_advertisement_parse(const uint8_t *data, size_t len, ProxRpi *rpi, ProxAem *aem,
                                  GError **error);

G_END_DECLS
