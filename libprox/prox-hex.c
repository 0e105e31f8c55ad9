/* prox-hex.c - lowercase hex encoding of byte strings. */
#include "prox-hex.h"

#include <string.h>

static const char hex_digits[] = "0123456789abcdef";

void prox_hex_encode(const uint8_t *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex_digits[in[i] >> 4];
        out[2 * i + 1] = hex_digits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

char *prox_hex_dup(const uint8_t *in, size_t len)
{
    char *out = g_malloc(2 * len + 1);
    prox_hex_encode(in, len, out);
    return out;
}

gboolean prox_hex_decode(const char *hex, uint8_t *out, size_t len)
{
    if (hex == NULL || strlen(hex) != 2 * len)
        return FALSE;
    for (size_t i = 0; i < len; i++) {
        int hi = g_ascii_xdigit_value(hex[2 * i]);
        int lo = g_ascii_xdigit_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return FALSE;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return TRUE;
}
