#define G_LOG_DOMAIN "fake-bluez"

#include "bt-uuid.h"

#include <string.h>

/* The Bluetooth base UUID after the first 8 hex digits. */
static const char base_tail[] = "-0000-1000-8000-00805f9b34fb";

static gboolean all_xdigits(const char *s, gsize n)
{
    for (gsize i = 0; i < n; i++)
        if (!g_ascii_isxdigit(s[i]))
            return FALSE;
    return TRUE;
}

guint fb_uuid_normalise(const char *text, char *out)
{
    gsize len;

    if (g_str_has_prefix(text, "0x") || g_str_has_prefix(text, "0X"))
        text += 2;
    len = strlen(text);
    if ((len == 4 || len == 8) && all_xdigits(text, len)) {
        char *p = out;

        if (len == 4) {
            memcpy(p, "0000", 4);
            p += 4;
        }
        memcpy(p, text, len);
        memcpy(p + len, base_tail, sizeof base_tail);
    } else if (len == 36) {
        for (gsize i = 0; i < 36; i++) {
            gboolean dash = i == 8 || i == 13 || i == 18 || i == 23;

            if (dash ? text[i] != '-' : !g_ascii_isxdigit(text[i]))
                return 0;
        }
        memcpy(out, text, 37);
    } else {
        return 0;
    }
    for (char *p = out; *p; p++)
        *p = g_ascii_tolower(*p);
    if (strcmp(out + 8, base_tail) != 0)
        return 16;
    return strncmp(out, "0000", 4) == 0 ? 2 : 4;
}
