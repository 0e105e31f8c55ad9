/* test-hex.c - prox_hex_encode / prox_hex_dup / prox_hex_decode. */
#include "prox-hex.h"

#include <string.h>

static void test_encode_known(void)
{
    const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff};
    char out[2 * sizeof(in) + 1];
    memset(out, 'X', sizeof(out));
    prox_hex_encode(in, sizeof(in), out);
    g_assert_cmpstr(out, ==, "00017f80abcdefff");
}

static void test_encode_empty(void)
{
    char out[1] = {'X'};
    prox_hex_encode((const uint8_t *)"", 0, out);
    g_assert_cmpstr(out, ==, "");
    g_autofree char *dup = prox_hex_dup(NULL, 0);
    g_assert_cmpstr(dup, ==, "");
}

static void test_dup(void)
{
    const uint8_t in[] = {0x75, 0xc7, 0x34, 0xc6};
    g_autofree char *hex = prox_hex_dup(in, sizeof(in));
    g_assert_cmpstr(hex, ==, "75c734c6");
}

/* Every byte value survives encode -> decode, and the digits are lowercase. */
static void test_round_trip_all_bytes(void)
{
    uint8_t in[256];
    for (int i = 0; i < 256; i++)
        in[i] = (uint8_t)i;
    g_autofree char *hex = prox_hex_dup(in, sizeof(in));
    g_assert_cmpuint(strlen(hex), ==, 512);
    for (size_t i = 0; i < 512; i++)
        g_assert_true(g_ascii_isdigit(hex[i]) || (hex[i] >= 'a' && hex[i] <= 'f'));
    uint8_t out[256];
    g_assert_true(prox_hex_decode(hex, out, sizeof(out)));
    g_assert_cmpmem(out, sizeof(out), in, sizeof(in));
}

static void test_decode_any_case(void)
{
    const uint8_t expected[] = {0xab, 0xcd, 0xef, 0x09};
    const char *spellings[] = {"abcdef09", "ABCDEF09", "aBcDeF09"};
    for (size_t i = 0; i < G_N_ELEMENTS(spellings); i++) {
        uint8_t out[4] = {0};
        g_assert_true(prox_hex_decode(spellings[i], out, sizeof(out)));
        g_assert_cmpmem(out, sizeof(out), expected, sizeof(expected));
    }
}

static void test_decode_empty(void)
{
    uint8_t out[1] = {0x5a};
    g_assert_true(prox_hex_decode("", out, 0));
    g_assert_cmpuint(out[0], ==, 0x5a);
    g_assert_false(prox_hex_decode("00", out, 0));
}

static void test_decode_rejects(void)
{
    const char *bad[] = {
        "abcdef0",    /* odd, one digit short */
        "abcdef",     /* one byte short */
        "abcdef0901", /* one byte long */
        "abcdef0g",   /* non-hex letter */
        "abcdef 9",   /* space */
        " abcdef09",  /* leading space, also too long */
        "abcdef0-",   /* sign */
        "0xabcdef",   /* prefix */
        "",           /* empty */
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        uint8_t out[4];
        g_test_message("input \"%s\"", bad[i]);
        g_assert_false(prox_hex_decode(bad[i], out, sizeof(out)));
    }
    uint8_t out[4];
    g_assert_false(prox_hex_decode(NULL, out, sizeof(out)));
}

/* A non-hex byte anywhere (including high-bit bytes) is rejected. */
static void test_decode_every_position(void)
{
    for (size_t pos = 0; pos < 8; pos++) {
        for (int c = 1; c < 256; c++) {
            if (g_ascii_isxdigit((char)c))
                continue;
            char hex[9] = "01234567";
            hex[pos] = (char)c;
            uint8_t out[4];
            g_assert_false(prox_hex_decode(hex, out, sizeof(out)));
        }
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/hex/encode/known", test_encode_known);
    g_test_add_func("/hex/encode/empty", test_encode_empty);
    g_test_add_func("/hex/dup", test_dup);
    g_test_add_func("/hex/round-trip", test_round_trip_all_bytes);
    g_test_add_func("/hex/decode/any-case", test_decode_any_case);
    g_test_add_func("/hex/decode/empty", test_decode_empty);
    g_test_add_func("/hex/decode/rejects", test_decode_rejects);
    g_test_add_func("/hex/decode/every-position", test_decode_every_position);
    return g_test_run();
}
