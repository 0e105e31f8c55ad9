/* test-payload.c - GAEN advertisement and service data codec.
 *
 * Inputs are copied into heap blocks of exactly their length, so a read past the end is
 * caught by ASan / valgrind when the tests run under them.
 */
#include "prox-payload.h"

#include <string.h>

static const ProxRpi test_rpi = {{0x8b, 0xe6, 0xcd, 0x37, 0x1c, 0x5c, 0x89, 0x16, 0x04, 0xbf, 0xbe,
                                  0x49, 0xdf, 0x84, 0x50, 0x96}};
static const ProxAem test_aem = {{0x72, 0x03, 0x38, 0x74}};

/* PROTOCOL.md §2 byte for byte. */
static const uint8_t expected_adv[PROX_ADVERTISEMENT_LEN] = {
    0x02, 0x01, 0x1a, 0x03, 0x03, 0x6f, 0xfd, 0x17, 0x16, 0x6f, 0xfd, 0x8b, 0xe6, 0xcd, 0x37, 0x1c,
    0x5c, 0x89, 0x16, 0x04, 0xbf, 0xbe, 0x49, 0xdf, 0x84, 0x50, 0x96, 0x72, 0x03, 0x38, 0x74,
};

static uint8_t *exact_copy(const uint8_t *data, size_t len)
{
    /* g_malloc(0) returns NULL; keep a valid pointer for the zero-length case. */
    uint8_t *copy = g_malloc(len > 0 ? len : 1);
    if (len > 0)
        memcpy(copy, data, len);
    return copy;
}

/* Parses data[0..len) from an exact-size copy; on failure checks the error and that the
 * outputs were left alone. */
static gboolean parse_adv(const uint8_t *data, size_t len, ProxRpi *rpi, ProxAem *aem,
                          char **reason)
{
    g_autofree uint8_t *copy = exact_copy(data, len);
    g_autoptr(GError) error = NULL;
    ProxRpi r;
    ProxAem a;
    memset(&r, 0x5a, sizeof(r));
    memset(&a, 0x5a, sizeof(a));
    gboolean ok = prox_advertisement_parse(copy, len, &r, &a, &error);
    if (ok) {
        g_assert_no_error(error);
        if (rpi != NULL)
            *rpi = r;
        if (aem != NULL)
            *aem = a;
    } else {
        g_assert_error(error, PROX_ERROR, PROX_ERROR_MALFORMED);
        g_assert_cmpuint(strlen(error->message), >, 10);
        for (size_t i = 0; i < sizeof(r.bytes); i++)
            g_assert_cmpuint(r.bytes[i], ==, 0x5a);
        for (size_t i = 0; i < sizeof(a.bytes); i++)
            g_assert_cmpuint(a.bytes[i], ==, 0x5a);
        if (reason != NULL)
            *reason = g_strdup(error->message);
    }
    return ok;
}

static void assert_adv_rejected(const uint8_t *data, size_t len, const char *reason_part)
{
    g_autofree char *reason = NULL;
    g_assert_false(parse_adv(data, len, NULL, NULL, &reason));
    g_test_message("rejected: %s", reason);
    g_assert_nonnull(strstr(reason, reason_part));
}

static void assert_adv_parses_to_test_ids(const uint8_t *data, size_t len)
{
    ProxRpi rpi;
    ProxAem aem;
    g_autofree char *reason = NULL;
    gboolean ok = parse_adv(data, len, &rpi, &aem, &reason);
    if (!ok)
        g_error("unexpected rejection: %s", reason);
    g_assert_cmpmem(rpi.bytes, PROX_RPI_LEN, test_rpi.bytes, PROX_RPI_LEN);
    g_assert_cmpmem(aem.bytes, PROX_AEM_LEN, test_aem.bytes, PROX_AEM_LEN);
}

/* ---- service data ---- */

static void test_service_data_round_trip(void)
{
    uint8_t sd[PROX_SERVICE_DATA_LEN];
    prox_service_data_encode(&test_rpi, &test_aem, sd);
    g_assert_cmpmem(sd, PROX_RPI_LEN, test_rpi.bytes, PROX_RPI_LEN);
    g_assert_cmpmem(sd + PROX_RPI_LEN, PROX_AEM_LEN, test_aem.bytes, PROX_AEM_LEN);

    const char *uuids[] = {
        PROX_SERVICE_UUID,
        "0000FD6F-0000-1000-8000-00805F9B34FB",
        "0000fD6f-0000-1000-8000-00805F9b34Fb",
        "fd6f",
        "FD6F",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(uuids); i++) {
        g_autofree uint8_t *copy = exact_copy(sd, sizeof(sd));
        g_autoptr(GError) error = NULL;
        ProxRpi rpi;
        ProxAem aem;
        g_assert_true(prox_service_data_parse(uuids[i], copy, sizeof(sd), &rpi, &aem, &error));
        g_assert_no_error(error);
        g_assert_cmpmem(rpi.bytes, PROX_RPI_LEN, test_rpi.bytes, PROX_RPI_LEN);
        g_assert_cmpmem(aem.bytes, PROX_AEM_LEN, test_aem.bytes, PROX_AEM_LEN);
    }
    /* Outputs are optional. */
    g_assert_true(prox_service_data_parse(PROX_SERVICE_UUID, sd, sizeof(sd), NULL, NULL, NULL));
}

static void test_service_data_wrong_uuid(void)
{
    uint8_t sd[PROX_SERVICE_DATA_LEN];
    prox_service_data_encode(&test_rpi, &test_aem, sd);
    const char *uuids[] = {
        NULL,
        "",
        "0000fd6e-0000-1000-8000-00805f9b34fb", /* a neighbour */
        "0000fd6f-0000-1000-8000-00805f9b34fc", /* not the Bluetooth base UUID */
        "0000fd6f-0000-1000-8000-00805f9b34fb ",
        " 0000fd6f-0000-1000-8000-00805f9b34fb",
        "0000fd6f00001000800000805f9b34fb", /* no dashes */
        "{0000fd6f-0000-1000-8000-00805f9b34fb}",
        "0000fd6f", /* 32-bit form: not a spelling BlueZ uses */
        "0xfd6f",
        "fd6",
        "fd6f0",
        "6ffd",                                 /* byte order as on air */
        "0000feaa-0000-1000-8000-00805f9b34fb", /* Eddystone */
        "0000fd6f-0000-1000-8000-00805f9b34fb\n",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(uuids); i++) {
        g_autoptr(GError) error = NULL;
        ProxRpi rpi;
        memset(&rpi, 0x33, sizeof(rpi));
        g_assert_false(prox_service_data_parse(uuids[i], sd, sizeof(sd), &rpi, NULL, &error));
        g_assert_error(error, PROX_ERROR, PROX_ERROR_MALFORMED);
        g_test_message("uuid %zu: %s", i, error->message);
        g_assert_nonnull(strstr(error->message, "UUID"));
        /* Control characters from the radio never reach the message raw. */
        g_assert_null(strchr(error->message, '\n'));
        g_assert_cmpuint(rpi.bytes[0], ==, 0x33);
    }
    /* No GError requested: still fails cleanly. */
    g_assert_false(prox_service_data_parse("fd6e", sd, sizeof(sd), NULL, NULL, NULL));
}

static void test_service_data_wrong_length(void)
{
    uint8_t big[64] = {0};
    const size_t lengths[] = {0, 1, 16, 19, 21, 24, 64};
    for (size_t i = 0; i < G_N_ELEMENTS(lengths); i++) {
        g_autofree uint8_t *copy = exact_copy(big, lengths[i]);
        g_autoptr(GError) error = NULL;
        ProxAem aem;
        memset(&aem, 0x33, sizeof(aem));
        g_assert_false(
            prox_service_data_parse(PROX_SERVICE_UUID, copy, lengths[i], NULL, &aem, &error));
        g_assert_error(error, PROX_ERROR, PROX_ERROR_MALFORMED);
        g_assert_nonnull(strstr(error->message, "expected 20"));
        g_assert_cmpuint(aem.bytes[0], ==, 0x33);
    }
    g_autoptr(GError) error = NULL;
    g_assert_false(prox_service_data_parse(PROX_SERVICE_UUID, NULL, 0, NULL, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_MALFORMED);
}

/* ---- advertisement ---- */

static void test_advertisement_encode(void)
{
    uint8_t adv[PROX_ADVERTISEMENT_LEN + 1];
    adv[PROX_ADVERTISEMENT_LEN] = 0xcc;
    prox_advertisement_encode(&test_rpi, &test_aem, adv);
    g_assert_cmpmem(adv, PROX_ADVERTISEMENT_LEN, expected_adv, sizeof(expected_adv));
    g_assert_cmpuint(adv[PROX_ADVERTISEMENT_LEN], ==, 0xcc);
}

static void test_advertisement_round_trip(void)
{
    GRand *rand = g_rand_new_with_seed(7);
    for (int i = 0; i < 1000; i++) {
        ProxRpi rpi;
        ProxAem aem;
        for (size_t b = 0; b < PROX_RPI_LEN; b++)
            rpi.bytes[b] = (uint8_t)g_rand_int(rand);
        for (size_t b = 0; b < PROX_AEM_LEN; b++)
            aem.bytes[b] = (uint8_t)g_rand_int(rand);
        uint8_t adv[PROX_ADVERTISEMENT_LEN];
        prox_advertisement_encode(&rpi, &aem, adv);
        ProxRpi rpi2;
        ProxAem aem2;
        g_assert_true(parse_adv(adv, sizeof(adv), &rpi2, &aem2, NULL));
        g_assert_cmpmem(rpi2.bytes, PROX_RPI_LEN, rpi.bytes, PROX_RPI_LEN);
        g_assert_cmpmem(aem2.bytes, PROX_AEM_LEN, aem.bytes, PROX_AEM_LEN);
    }
    g_rand_free(rand);
    /* Outputs are optional. */
    g_assert_true(prox_advertisement_parse(expected_adv, sizeof(expected_adv), NULL, NULL, NULL));
}

/* Builds an advertisement from AD structures given as (length-prefixed) byte strings. */
static GByteArray *adv_new(void)
{
    return g_byte_array_new();
}

static void adv_add(GByteArray *adv, const uint8_t *ad, size_t len)
{
    g_byte_array_append(adv, ad, (guint)len);
}

static void adv_add_fd6f(GByteArray *adv)
{
    uint8_t sd[4 + PROX_SERVICE_DATA_LEN] = {0x17, 0x16, 0x6f, 0xfd};
    prox_service_data_encode(&test_rpi, &test_aem, sd + 4);
    adv_add(adv, sd, sizeof(sd));
}

static const uint8_t ad_flags[] = {0x02, 0x01, 0x1a};
static const uint8_t ad_uuids[] = {0x03, 0x03, 0x6f, 0xfd};
static const uint8_t ad_name[] = {0x05, 0x09, 'p', 'r', 'o', 'x'};
static const uint8_t ad_manufacturer[] = {0x06, 0xff, 0x4c, 0x00, 0x10, 0x02, 0x0b};
/* Service data of another 16-bit UUID (Eddystone, 0xFEAA). */
static const uint8_t ad_other_sd[] = {0x05, 0x16, 0xaa, 0xfe, 0x10, 0x00};
/* 128-bit-UUID service data whose UUID is FD6F's: not GAEN's encoding, ignored. */
static const uint8_t ad_sd128[] = {0x13, 0x21, 0xfb, 0x34, 0x9b, 0x5f, 0x80, 0x00, 0x00, 0x80,
                                   0x00, 0x10, 0x00, 0x00, 0x6f, 0xfd, 0x00, 0x00, 0xaa, 0xbb};

static void test_advertisement_other_structures(void)
{
    /* FD6F first, then everything else. */
    g_autoptr(GByteArray) a = adv_new();
    adv_add_fd6f(a);
    adv_add(a, ad_manufacturer, sizeof(ad_manufacturer));
    adv_add(a, ad_flags, sizeof(ad_flags));
    assert_adv_parses_to_test_ids(a->data, a->len);

    /* Lots of neighbours on both sides, in an extended-advertising-sized payload. */
    g_autoptr(GByteArray) b = adv_new();
    adv_add(b, ad_name, sizeof(ad_name));
    adv_add(b, ad_other_sd, sizeof(ad_other_sd));
    adv_add(b, ad_sd128, sizeof(ad_sd128));
    adv_add(b, ad_uuids, sizeof(ad_uuids));
    adv_add_fd6f(b);
    adv_add(b, ad_other_sd, sizeof(ad_other_sd));
    adv_add(b, ad_manufacturer, sizeof(ad_manufacturer));
    g_assert_cmpuint(b->len, >, PROX_ADVERTISEMENT_LEN);
    assert_adv_parses_to_test_ids(b->data, b->len);

    /* Only FD6F service data, nothing else. */
    g_autoptr(GByteArray) c = adv_new();
    adv_add_fd6f(c);
    assert_adv_parses_to_test_ids(c->data, c->len);

    /* An AD structure with only a type byte is well-formed. */
    g_autoptr(GByteArray) d = adv_new();
    const uint8_t type_only[] = {0x01, 0x08};
    adv_add(d, type_only, sizeof(type_only));
    adv_add_fd6f(d);
    adv_add(d, type_only, sizeof(type_only));
    assert_adv_parses_to_test_ids(d->data, d->len);
}

/* A zero length octet ends the data: what follows is padding, whatever it holds. */
static void test_advertisement_early_termination(void)
{
    g_autoptr(GByteArray) a = adv_new();
    adv_add(a, expected_adv, sizeof(expected_adv));
    const uint8_t padding[] = {0x00, 0x00, 0x00, 0x00};
    adv_add(a, padding, sizeof(padding));
    assert_adv_parses_to_test_ids(a->data, a->len);

    /* Garbage after the terminator is not parsed: not even a truncated "structure". */
    g_autoptr(GByteArray) b = adv_new();
    adv_add(b, expected_adv, sizeof(expected_adv));
    const uint8_t junk[] = {0x00, 0xff, 0x16, 0x6f, 0xfd};
    adv_add(b, junk, sizeof(junk));
    assert_adv_parses_to_test_ids(b->data, b->len);

    /* Nor is a second FD6F service data after the terminator. */
    g_autoptr(GByteArray) c = adv_new();
    adv_add_fd6f(c);
    const uint8_t zero = 0;
    adv_add(c, &zero, 1);
    adv_add_fd6f(c);
    assert_adv_parses_to_test_ids(c->data, c->len);

    /* The FD6F service data is after the terminator: it does not count. */
    g_autoptr(GByteArray) d = adv_new();
    adv_add(d, ad_flags, sizeof(ad_flags));
    adv_add(d, &zero, 1);
    adv_add_fd6f(d);
    assert_adv_rejected(d->data, d->len, "no FD6F");

    /* All-zero payload (a controller's empty 31 bytes). */
    const uint8_t zeros[PROX_ADVERTISEMENT_LEN] = {0};
    assert_adv_rejected(zeros, sizeof(zeros), "no FD6F");
}

static void test_advertisement_missing(void)
{
    assert_adv_rejected(NULL, 0, "no FD6F");

    g_autoptr(GByteArray) a = adv_new();
    adv_add(a, ad_flags, sizeof(ad_flags));
    adv_add(a, ad_uuids, sizeof(ad_uuids));
    adv_add(a, ad_other_sd, sizeof(ad_other_sd));
    adv_add(a, ad_sd128, sizeof(ad_sd128));
    assert_adv_rejected(a->data, a->len, "no FD6F");

    /* FD6F under "Service Data - 32-bit UUID" (0x20) is not GAEN's encoding. */
    g_autoptr(GByteArray) b = adv_new();
    uint8_t sd32[6 + PROX_SERVICE_DATA_LEN] = {0x19, 0x20, 0x6f, 0xfd, 0x00, 0x00};
    adv_add(b, sd32, sizeof(sd32));
    assert_adv_rejected(b->data, b->len, "no FD6F");

    /* Byte-swapped UUID (0x6FFD). */
    uint8_t swapped[sizeof(expected_adv)];
    memcpy(swapped, expected_adv, sizeof(swapped));
    swapped[9] = 0xfd;
    swapped[10] = 0x6f;
    assert_adv_rejected(swapped, sizeof(swapped), "no FD6F");
}

static void test_advertisement_duplicate(void)
{
    g_autoptr(GByteArray) a = adv_new();
    adv_add_fd6f(a);
    adv_add_fd6f(a);
    assert_adv_rejected(a->data, a->len, "more than one FD6F");

    /* Even when the second one has another length. */
    g_autoptr(GByteArray) b = adv_new();
    adv_add_fd6f(b);
    adv_add(b, ad_flags, sizeof(ad_flags));
    const uint8_t short_sd[] = {0x04, 0x16, 0x6f, 0xfd, 0x01};
    adv_add(b, short_sd, sizeof(short_sd));
    assert_adv_rejected(b->data, b->len, "more than one FD6F");
}

static void test_advertisement_wrong_length(void)
{
    for (size_t data_len = 0; data_len <= 30; data_len++) {
        if (data_len == PROX_SERVICE_DATA_LEN)
            continue;
        g_autoptr(GByteArray) a = adv_new();
        adv_add(a, ad_flags, sizeof(ad_flags));
        uint8_t sd[4 + 30] = {(uint8_t)(3 + data_len), 0x16, 0x6f, 0xfd};
        adv_add(a, sd, 4 + data_len);
        assert_adv_rejected(a->data, a->len, "expected 20");
    }
}

/* A service data structure too short to carry its UUID is malformed. */
static void test_advertisement_short_service_data(void)
{
    const uint8_t one[] = {0x01, 0x16};
    const uint8_t two[] = {0x02, 0x16, 0x6f};
    for (int i = 0; i < 2; i++) {
        g_autoptr(GByteArray) a = adv_new();
        adv_add_fd6f(a);
        if (i == 0)
            adv_add(a, one, sizeof(one));
        else
            adv_add(a, two, sizeof(two));
        assert_adv_rejected(a->data, a->len, "too short");
    }
}

/* Every proper prefix of a valid advertisement is rejected (the FD6F structure comes last,
 * so each cut either truncates a structure or drops it), and none is read past its end. */
static void test_advertisement_truncations(void)
{
    for (size_t len = 0; len < sizeof(expected_adv); len++) {
        g_autofree char *reason = NULL;
        g_assert_false(parse_adv(expected_adv, len, NULL, NULL, &reason));
        g_test_message("%zu bytes: %s", len, reason);
        /* Cuts at a structure boundary leave a well-formed but incomplete payload. */
        gboolean boundary = len == 0 || len == 3 || len == 7;
        g_assert_nonnull(strstr(reason, boundary ? "no FD6F" : "truncated"));
    }
    /* The same with FD6F first and other structures after it. */
    g_autoptr(GByteArray) a = adv_new();
    adv_add_fd6f(a);
    adv_add(a, ad_name, sizeof(ad_name));
    adv_add(a, ad_manufacturer, sizeof(ad_manufacturer));
    for (size_t len = 0; len < a->len; len++) {
        gboolean boundary = len == 24 || len == 24 + sizeof(ad_name);
        if (boundary) {
            assert_adv_parses_to_test_ids(a->data, len);
            continue;
        }
        assert_adv_rejected(a->data, len, len == 0 ? "no FD6F" : "truncated");
    }
    assert_adv_parses_to_test_ids(a->data, a->len);
}

/* Random byte changes and random inputs: no crash, no read out of bounds, and any
 * success is backed by an FD6F structure actually in the input. */
static void check_random_input(const uint8_t *data, size_t len)
{
    ProxRpi rpi;
    ProxAem aem;
    if (!parse_adv(data, len, &rpi, &aem, NULL))
        return;
    gboolean found = FALSE;
    for (size_t i = 0; i + 4 + PROX_SERVICE_DATA_LEN <= len && !found; i++) {
        found = data[i] == 0x17 && data[i + 1] == 0x16 && data[i + 2] == 0x6f &&
                data[i + 3] == 0xfd && memcmp(data + i + 4, rpi.bytes, PROX_RPI_LEN) == 0 &&
                memcmp(data + i + 4 + PROX_RPI_LEN, aem.bytes, PROX_AEM_LEN) == 0;
    }
    g_assert_true(found);
}

static void test_advertisement_random_flips(void)
{
    GRand *rand = g_rand_new_with_seed(g_test_rand_int());
    for (int i = 0; i < 200000; i++) {
        uint8_t adv[PROX_ADVERTISEMENT_LEN];
        memcpy(adv, expected_adv, sizeof(adv));
        int flips = g_rand_int_range(rand, 1, 4);
        for (int f = 0; f < flips; f++) {
            int pos = g_rand_int_range(rand, 0, sizeof(adv));
            if (g_rand_boolean(rand))
                adv[pos] ^= (uint8_t)(1u << g_rand_int_range(rand, 0, 8));
            else
                adv[pos] = (uint8_t)g_rand_int(rand);
        }
        check_random_input(adv, sizeof(adv));
    }
    for (int i = 0; i < 50000; i++) {
        uint8_t buf[64];
        size_t len = (size_t)g_rand_int_range(rand, 0, sizeof(buf) + 1);
        for (size_t b = 0; b < len; b++)
            buf[b] = (uint8_t)g_rand_int(rand);
        /* Plant the FD6F header now and then so the accepting path is exercised too. */
        if (len >= 24 && g_rand_boolean(rand)) {
            size_t at = (size_t)g_rand_int_range(rand, 0, (gint32)(len - 24) + 1);
            buf[at] = 0x17;
            buf[at + 1] = 0x16;
            buf[at + 2] = 0x6f;
            buf[at + 3] = 0xfd;
        }
        check_random_input(buf, len);
    }
    g_rand_free(rand);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/payload/service-data/round-trip", test_service_data_round_trip);
    g_test_add_func("/payload/service-data/wrong-uuid", test_service_data_wrong_uuid);
    g_test_add_func("/payload/service-data/wrong-length", test_service_data_wrong_length);
    g_test_add_func("/payload/advertisement/encode", test_advertisement_encode);
    g_test_add_func("/payload/advertisement/round-trip", test_advertisement_round_trip);
    g_test_add_func("/payload/advertisement/other-structures", test_advertisement_other_structures);
    g_test_add_func("/payload/advertisement/early-termination",
                    test_advertisement_early_termination);
    g_test_add_func("/payload/advertisement/missing", test_advertisement_missing);
    g_test_add_func("/payload/advertisement/duplicate", test_advertisement_duplicate);
    g_test_add_func("/payload/advertisement/wrong-length", test_advertisement_wrong_length);
    g_test_add_func("/payload/advertisement/short-service-data",
                    test_advertisement_short_service_data);
    g_test_add_func("/payload/advertisement/truncations", test_advertisement_truncations);
    g_test_add_func("/payload/advertisement/random-flips", test_advertisement_random_flips);
    return g_test_run();
}
