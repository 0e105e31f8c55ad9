/* prox-hex.h - lowercase hex encoding of byte strings. */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

/* Writes 2*len lowercase hex digits and a NUL into out (size >= 2*len + 1). */
void prox_hex_encode(const uint8_t *in, size_t len, char *out);

/* Newly allocated lowercase hex string of in. */
char *prox_hex_dup(const uint8_t *in, size_t len);

/* Decodes exactly 2*len hex digits (either case) from a NUL-terminated string into out.
 * Returns FALSE, leaving out unspecified, when hex has another length or a non-hex digit. */
gboolean prox_hex_decode(const char *hex, uint8_t *out, size_t len);

G_END_DECLS
