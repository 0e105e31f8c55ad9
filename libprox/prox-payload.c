/* prox-payload.c - GAEN BLE advertisement and service data codec (PROTOCOL.md §2).
 *
 * UUID spellings accepted by prox_service_data_parse: the 128-bit form
 * 0000fd6f-0000-1000-8000-00805f9b34fb in any case (what BlueZ reports), and the 16-bit
 * shorthand "fd6f" in any case (what btmon, bluetoothctl and hand-written test input use).
 * Both name exactly one UUID, so accepting the shorthand cannot let foreign data in.
 *
 * The advertisement parser only takes FD6F service data from a "Service Data - 16-bit UUID"
 * AD structure (type 0x16): GAEN mandates that encoding and every implementation uses it.
 */
#define G_LOG_DOMAIN "prox-payload"

#include "prox-payload.h"

#include <string.h>

#define AD_TYPE_FLAGS 0x01
#define AD_TYPE_UUID16_COMPLETE 0x03
#define AD_TYPE_SERVICE_DATA_UUID16 0x16
/* The Flags value the GAEN Bluetooth specification gives (PROTOCOL.md §2). */
#define AD_FLAGS_VALUE 0x1a
#define PROX_SERVICE_UUID16_SHORT "fd6f"

void prox_service_data_encode(const ProxRpi *rpi, const ProxAem *aem,
                              uint8_t out[PROX_SERVICE_DATA_LEN])
{
    memcpy(out, rpi->bytes, PROX_RPI_LEN);
    memcpy(out + PROX_RPI_LEN, aem->bytes, PROX_AEM_LEN);
}

static void split_service_data(const uint8_t *data, ProxRpi *rpi, ProxAem *aem)
{
    if (rpi != NULL)
        memcpy(rpi->bytes, data, PROX_RPI_LEN);
    if (aem != NULL)
        memcpy(aem->bytes, data + PROX_RPI_LEN, PROX_AEM_LEN);
}

gboolean prox_service_data_parse(const char *uuid, const uint8_t *data, size_t len, ProxRpi *rpi,
                                 ProxAem *aem, GError **error)
{
    g_return_val_if_fail(data != NULL || len == 0, FALSE);
    if (uuid == NULL || (g_ascii_strcasecmp(uuid, PROX_SERVICE_UUID) != 0 &&
                         g_ascii_strcasecmp(uuid, PROX_SERVICE_UUID16_SHORT) != 0)) {
        /* The UUID comes from the radio: escape it before it reaches a log. */
        g_autofree char *shown = uuid != NULL ? g_strescape(uuid, NULL) : g_strdup("(none)");
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                    "service data UUID \"%s\" is not the exposure notification service %s", shown,
                    PROX_SERVICE_UUID);
        return FALSE;
    }
    if (len != PROX_SERVICE_DATA_LEN) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                    "exposure notification service data is %zu bytes, expected %d", len,
                    PROX_SERVICE_DATA_LEN);
        return FALSE;
    }
    split_service_data(data, rpi, aem);
    return TRUE;
}

void prox_advertisement_encode(const ProxRpi *rpi, const ProxAem *aem,
                               uint8_t out[PROX_ADVERTISEMENT_LEN])
{
    uint8_t *p = out;
    *p++ = 2;
    *p++ = AD_TYPE_FLAGS;
    *p++ = AD_FLAGS_VALUE;
    *p++ = 3;
    *p++ = AD_TYPE_UUID16_COMPLETE;
    *p++ = PROX_SERVICE_UUID16 & 0xff;
    *p++ = PROX_SERVICE_UUID16 >> 8;
    *p++ = 1 + 2 + PROX_SERVICE_DATA_LEN;
    *p++ = AD_TYPE_SERVICE_DATA_UUID16;
    *p++ = PROX_SERVICE_UUID16 & 0xff;
    *p++ = PROX_SERVICE_UUID16 >> 8;
    prox_service_data_encode(rpi, aem, p);
    g_assert(p + PROX_SERVICE_DATA_LEN == out + PROX_ADVERTISEMENT_LEN);
}

gboolean prox_advertisement_parse(const uint8_t *data, size_t len, ProxRpi *rpi, ProxAem *aem,
                                  GError **error)
{
    g_return_val_if_fail(data != NULL || len == 0, FALSE);
    const uint8_t *found = NULL;
    size_t pos = 0;
    /* Each AD structure is: length L (1 byte), then L bytes of type (1 byte) and data. */
    while (pos < len) {
        size_t ad_len = data[pos];
        /* Core spec Vol 3 Part C §11: a zero length terminates the data early; what
         * follows is padding and carries no meaning. */
        if (ad_len == 0)
            break;
        if (ad_len > len - pos - 1) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                        "advertisement truncated: AD structure at offset %zu claims %zu bytes "
                        "but only %zu follow",
                        pos, ad_len, len - pos - 1);
            return FALSE;
        }
        const uint8_t *ad = data + pos + 1; /* ad[0] is the type, ad_len bytes in all */
        if (ad[0] == AD_TYPE_SERVICE_DATA_UUID16) {
            if (ad_len < 3) {
                g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                            "service data AD structure at offset %zu is too short (%zu bytes) "
                            "to hold a 16-bit UUID",
                            pos, ad_len);
                return FALSE;
            }
            uint16_t uuid16 = (uint16_t)(ad[1] | ad[2] << 8);
            if (uuid16 == PROX_SERVICE_UUID16) {
                if (found != NULL) {
                    g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                                "advertisement has more than one FD6F service data (second at "
                                "offset %zu)",
                                pos);
                    return FALSE;
                }
                if (ad_len - 3 != PROX_SERVICE_DATA_LEN) {
                    g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                                "FD6F service data at offset %zu is %zu bytes, expected %d", pos,
                                ad_len - 3, PROX_SERVICE_DATA_LEN);
                    return FALSE;
                }
                found = ad + 3;
            }
        }
        pos += 1 + ad_len;
    }
    if (found == NULL) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                    "advertisement has no FD6F (exposure notification) service data");
        return FALSE;
    }
    split_service_data(found, rpi, aem);
    return TRUE;
}
