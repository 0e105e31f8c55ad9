/* authority-code.c - generating, normalizing and hashing one-time codes. */
#define G_LOG_DOMAIN "prox-authority"

#include "authority-code.h"

#include <sodium.h>
#include <string.h>

G_STATIC_ASSERT(sizeof(AUTHORITY_CODE_ALPHABET) - 1 == 32);

void authority_code_generate(char buf[AUTHORITY_CODE_LEN + 1])
{
    uint8_t random[AUTHORITY_CODE_LEN];
    randombytes_buf(random, sizeof random);
    /* 256 is a multiple of 32, so the low 5 bits are uniform. */
    for (size_t i = 0; i < AUTHORITY_CODE_LEN; i++)
        buf[i] = AUTHORITY_CODE_ALPHABET[random[i] & 31];
    buf[AUTHORITY_CODE_LEN] = '\0';
    sodium_memzero(random, sizeof random);
}

void authority_code_format(const char *code, char buf[AUTHORITY_CODE_DISPLAY_LEN + 1])
{
    size_t o = 0;
    for (size_t i = 0; i < AUTHORITY_CODE_LEN; i++) {
        if (i > 0 && i % 4 == 0)
            buf[o++] = '-';
        buf[o++] = code[i];
    }
    buf[o] = '\0';
}

gboolean authority_code_normalize(const char *input, char out[AUTHORITY_CODE_LEN + 1])
{
    size_t n = 0;
    for (const char *p = input; *p != '\0'; p++) {
        if (*p == '-' || *p == ' ')
            continue;
        char c = g_ascii_toupper(*p);
        if (c == '\0' || strchr(AUTHORITY_CODE_ALPHABET, c) == NULL || n == AUTHORITY_CODE_LEN)
            return FALSE;
        out[n++] = c;
    }
    out[n] = '\0';
    return n == AUTHORITY_CODE_LEN;
}

void authority_code_hash(const char *code, const uint8_t pepper[AUTHORITY_PEPPER_LEN],
                         uint8_t hash[AUTHORITY_CODE_HASH_LEN])
{
    crypto_generichash(hash, AUTHORITY_CODE_HASH_LEN, (const unsigned char *)code, strlen(code),
                       pepper, AUTHORITY_PEPPER_LEN);
}
