/* Bluetooth device addresses as BlueZ shows them ("AA:BB:CC:DD:EE:FF", most significant
 * byte first) and the non-resolvable private addresses the kernel picks for broadcasts. */
#pragma once

#include <glib.h>

typedef struct {
    guint8 b[6]; /* b[0] is the most significant byte (first in the string form) */
} FbBdaddr;

/* "AA:BB:CC:DD:EE:FF" into buf (at least 18 bytes); returns buf. */
char *fb_bdaddr_to_string(const FbBdaddr *addr, char *buf);
gboolean fb_bdaddr_parse(const char *text, FbBdaddr *addr);
gboolean fb_bdaddr_equal(const FbBdaddr *a, const FbBdaddr *b);

/* A fresh non-resolvable private address: top two bits 00, the other 46 bits random and
 * neither all zero nor all one; never equal to avoid (may be NULL). */
void fb_bdaddr_random_nrpa(GRand *rng, const FbBdaddr *avoid, FbBdaddr *out);
gboolean fb_bdaddr_is_nrpa(const FbBdaddr *addr);

/* A stable public address for a simulated adapter (locally chosen OUI, name-derived). */
void fb_bdaddr_public_for(const char *name, guint index, FbBdaddr *out);

/* BlueZ's device object path: <adapter_path>/dev_AA_BB_CC_DD_EE_FF. */
char *fb_bdaddr_device_path(const char *adapter_path, const FbBdaddr *addr);
