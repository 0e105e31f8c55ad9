/* fuzz-payload.c - libFuzzer harness for the BLE payload codec (prox-payload).
 *
 * The whole input is given to prox_advertisement_parse as a raw advertising payload and to
 * prox_service_data_parse as service data under the FD6F UUID. Beyond "no crash, no
 * out-of-bounds read" (ASan), the results are checked: a parse either fails with a
 * PROX_ERROR_MALFORMED reason or returns IDs that are really in the input.
 */
#include "prox-payload.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(gboolean condition)
{
    if (!condition)
        abort();
}

static void check_failure(GError *error)
{
    check(error != NULL && error->domain == PROX_ERROR && error->code == PROX_ERROR_MALFORMED &&
          error->message[0] != '\0');
    g_error_free(error);
}

/* A successful advertisement parse must come from a 0x16 structure carrying FD6F and
 * exactly 20 bytes that hold the returned RPI and AEM. */
static gboolean contains_service_data(const uint8_t *data, size_t size, const ProxRpi *rpi,
                                      const ProxAem *aem)
{
    uint8_t ad[4 + PROX_SERVICE_DATA_LEN] = {3 + PROX_SERVICE_DATA_LEN, 0x16,
                                             PROX_SERVICE_UUID16 & 0xff, PROX_SERVICE_UUID16 >> 8};
    prox_service_data_encode(rpi, aem, ad + 4);
    for (size_t i = 0; i + sizeof(ad) <= size; i++) {
        if (memcmp(data + i, ad, sizeof(ad)) == 0)
            return TRUE;
    }
    return FALSE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ProxRpi rpi;
    ProxAem aem;
    GError *error = NULL;

    if (prox_advertisement_parse(data, size, &rpi, &aem, &error)) {
        check(error == NULL);
        check(contains_service_data(data, size, &rpi, &aem));
        /* A canonical advertisement of what was parsed parses back to the same IDs. */
        uint8_t adv[PROX_ADVERTISEMENT_LEN];
        ProxRpi rpi2;
        ProxAem aem2;
        prox_advertisement_encode(&rpi, &aem, adv);
        check(prox_advertisement_parse(adv, sizeof(adv), &rpi2, &aem2, NULL));
        check(memcmp(&rpi, &rpi2, sizeof(rpi)) == 0 && memcmp(&aem, &aem2, sizeof(aem)) == 0);
    } else {
        check_failure(error);
        error = NULL;
    }

    if (prox_service_data_parse(PROX_SERVICE_UUID, data, size, &rpi, &aem, &error)) {
        check(error == NULL && size == PROX_SERVICE_DATA_LEN);
        check(memcmp(rpi.bytes, data, PROX_RPI_LEN) == 0);
        check(memcmp(aem.bytes, data + PROX_RPI_LEN, PROX_AEM_LEN) == 0);
    } else {
        check(size != PROX_SERVICE_DATA_LEN);
        check_failure(error);
    }
    return 0;
}
