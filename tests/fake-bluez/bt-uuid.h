/* Bluetooth UUIDs as BlueZ's D-Bus API spells them: always the lower-case 128-bit form,
 * accepting 16- and 32-bit shorthands on input. */
#pragma once

#include <glib.h>

#define FB_UUID_STRLEN 37

/* Normalises "fd6f", "0xfd6f", "0000fd6f" or a full 128-bit UUID into out (37 bytes) and
 * returns the smallest size the UUID takes in advertising data (2, 4 or 16), or 0 if the
 * text is not a UUID. */
guint fb_uuid_normalise(const char *text, char *out);
