#define G_LOG_DOMAIN "fake-bluez"

#include "bdaddr.h"

#include <stdio.h>
#include <string.h>

char *fb_bdaddr_to_string(const FbBdaddr *addr, char *buf)
{
    snprintf(buf, 18, "%02X:%02X:%02X:%02X:%02X:%02X", addr->b[0], addr->b[1], addr->b[2],
             addr->b[3], addr->b[4], addr->b[5]);
    return buf;
}

gboolean fb_bdaddr_parse(const char *text, FbBdaddr *addr)
{
    if (strlen(text) != 17)
        return FALSE;
    for (int i = 0; i < 6; i++) {
        int hi = g_ascii_xdigit_value(text[i * 3]);
        int lo = g_ascii_xdigit_value(text[i * 3 + 1]);

        if (hi < 0 || lo < 0 || (i < 5 && text[i * 3 + 2] != ':'))
            return FALSE;
        addr->b[i] = (guint8)(hi << 4 | lo);
    }
    return TRUE;
}

gboolean fb_bdaddr_equal(const FbBdaddr *a, const FbBdaddr *b)
{
    return memcmp(a->b, b->b, 6) == 0;
}

gboolean fb_bdaddr_is_nrpa(const FbBdaddr *addr)
{
    gboolean all_zero = (addr->b[0] & 0x3f) == 0;
    gboolean all_one = (addr->b[0] & 0x3f) == 0x3f;

    if ((addr->b[0] & 0xc0) != 0)
        return FALSE;
    for (int i = 1; i < 6; i++) {
        all_zero = all_zero && addr->b[i] == 0;
        all_one = all_one && addr->b[i] == 0xff;
    }
    return !all_zero && !all_one;
}

void fb_bdaddr_random_nrpa(GRand *rng, const FbBdaddr *avoid, FbBdaddr *out)
{
    do {
        for (int i = 0; i < 6; i++)
            out->b[i] = (guint8)g_rand_int_range(rng, 0, 256);
        out->b[0] &= 0x3f;
    } while (!fb_bdaddr_is_nrpa(out) || (avoid != NULL && fb_bdaddr_equal(out, avoid)));
}

void fb_bdaddr_public_for(const char *name, guint index, FbBdaddr *out)
{
    /* FNV-1a of the name keeps an adapter's public address across fake restarts. */
    guint32 h = 2166136261u;

    for (const char *p = name; *p; p++)
        h = (h ^ (guint8)*p) * 16777619u;
    out->b[0] = 0x00;
    out->b[1] = 0x1b;
    out->b[2] = 0xdc;
    out->b[3] = (guint8)(h >> 8);
    out->b[4] = (guint8)(h >> 16);
    out->b[5] = (guint8)index;
}

char *fb_bdaddr_device_path(const char *adapter_path, const FbBdaddr *addr)
{
    return g_strdup_printf("%s/dev_%02X_%02X_%02X_%02X_%02X_%02X", adapter_path, addr->b[0],
                           addr->b[1], addr->b[2], addr->b[3], addr->b[4], addr->b[5]);
}
