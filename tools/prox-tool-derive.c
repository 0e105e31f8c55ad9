/* prox-tool-derive.c - `prox-tool derive`: the RPIs and AEMs a TEK broadcasts. */
#define G_LOG_DOMAIN "prox-tool"

#include "prox-tool.h"

#include "prox-hex.h"
#include "prox-keys.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_METADATA "40080000"

static const char derive_description[] =
    "Computes, from a Temporary Exposure Key, what a GAEN v1.2 device broadcasts in each\n"
    "10-minute interval, exactly as proxd does when advertising and when matching keys:\n"
    "\n"
    "  RPIK = HKDF-SHA256(IKM = TEK, salt = none, info = \"EN-RPIK\", 16 bytes)\n"
    "  AEMK = HKDF-SHA256(IKM = TEK, salt = none, info = \"EN-AEMK\", 16 bytes)\n"
    "  RPI  = AES-128-ECB(RPIK, \"EN-RPI\" || 6 zero bytes || ENIN as 32-bit little endian)\n"
    "  AEM  = AES-128-CTR(AEMK, counter block = RPI, METADATA)\n"
    "\n"
    "ENIN is GAEN's interval number: unix time / 600, rounded down. A device's own TEKs\n"
    "start at a multiple of 144 (00:00 UTC), but keys from key lists may start anywhere.\n"
    "\n"
    "The options in detail:\n"
    "  --tek HEX        the TEK: 32 hex digits (16 bytes), either case. Required.\n"
    "  --start ENIN     first interval number, decimal. Required.\n"
    "  --count N        number of intervals, 1..144 (default 144, one day).\n"
    "  --metadata HEX   the 4 bytes of associated metadata to encrypt, 8 hex digits\n"
    "                   (default " DEFAULT_METADATA
    ": version 1.0, TX power +8 dBm). Byte 0 is the\n"
    "                   version (0x40 = 1.0), byte 1 the TX power in dBm as a signed\n"
    "                   byte, bytes 2-3 zero. Used as given, not validated.\n"
    "\n"
    "Output: one line per interval, \"ENIN RPI AEM\": the decimal interval number, the RPI\n"
    "as 32 lowercase hex digits and the AEM as 8 lowercase hex digits, separated by single\n"
    "spaces. The TEK itself is never printed.\n"
    "\n"
    "Exit status: 0 success, 1 the output could not be written, 2 bad arguments (a\n"
    "one-line error on stderr).\n"
    "\n"
    "Example (the published GAEN test vector):\n"
    "  $ prox-tool derive --tek 75c734c6dd1a782de7a965da5eb93125 --start 2642976 --count 2\n"
    "  2642976 8be6cd371c5c891604bfbe49df845096 72033874\n"
    "  2642977 3c9a1de5dd6b02afa7fded7b570b3e56 c29211b1\n";

/* Wipes a command-line string that held key material before freeing it. */
static void free_secret_string(char *s)
{
    if (s != NULL) {
        sodium_memzero(s, strlen(s));
        g_free(s);
    }
}

/* Strict decimal: digits only, within [min, max]. */
static gboolean parse_uint(const char *text, guint64 min, guint64 max, guint64 *out)
{
    return g_ascii_string_to_unsigned(text, 10, min, max, out, NULL);
}

static int derive_run(const char *command, const char *tek_hex, const char *start_text,
                      const char *count_text, const char *metadata_hex)
{
    guint64 start;
    guint64 count = PROX_TEK_ROLLING_PERIOD;
    uint8_t metadata[PROX_METADATA_LEN];

    if (tek_hex == NULL)
        return prox_tool_usage_error(command, "--tek HEX is required");
    if (start_text == NULL)
        return prox_tool_usage_error(command, "--start ENIN is required");
    if (!parse_uint(start_text, 0, G_MAXUINT32, &start))
        return prox_tool_usage_error(command, "--start must be an interval number 0..%u",
                                     G_MAXUINT32);
    if (count_text != NULL && !parse_uint(count_text, 1, PROX_MAX_ROLLING_PERIOD, &count))
        return prox_tool_usage_error(command, "--count must be a number 1..%d",
                                     PROX_MAX_ROLLING_PERIOD);
    if (start + count - 1 > G_MAXUINT32)
        return prox_tool_usage_error(command, "--start + --count goes past interval %u",
                                     G_MAXUINT32);
    if (!prox_hex_decode(metadata_hex != NULL ? metadata_hex : DEFAULT_METADATA, metadata,
                         sizeof(metadata)))
        return prox_tool_usage_error(command, "--metadata must be 8 hex digits (4 bytes)");

    uint8_t tek[PROX_KEY_LEN];
    if (!prox_hex_decode(tek_hex, tek, sizeof(tek))) {
        sodium_memzero(tek, sizeof(tek));
        return prox_tool_usage_error(command, "--tek must be 32 hex digits (16 bytes)");
    }
    uint8_t rpik[PROX_KEY_LEN];
    uint8_t aemk[PROX_KEY_LEN];
    prox_rpik_derive(tek, rpik);
    prox_aemk_derive(tek, aemk);
    sodium_memzero(tek, sizeof(tek));

    ProxRpi rpis[PROX_MAX_ROLLING_PERIOD];
    prox_rpi_compute_range(rpik, (uint32_t)start, (uint32_t)count, rpis);
    for (guint64 i = 0; i < count; i++) {
        ProxAem aem;
        char rpi_hex[2 * PROX_RPI_LEN + 1];
        char aem_hex[2 * PROX_AEM_LEN + 1];
        prox_aem_crypt(aemk, &rpis[i], metadata, aem.bytes);
        prox_hex_encode(rpis[i].bytes, PROX_RPI_LEN, rpi_hex);
        prox_hex_encode(aem.bytes, PROX_AEM_LEN, aem_hex);
        printf("%" G_GUINT64_FORMAT " %s %s\n", start + i, rpi_hex, aem_hex);
    }
    sodium_memzero(rpik, sizeof(rpik));
    sodium_memzero(aemk, sizeof(aemk));
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "prox-tool %s: writing the output failed\n", command);
        return PROX_TOOL_EXIT_FAILURE;
    }
    return PROX_TOOL_EXIT_OK;
}

int prox_tool_derive_main(int argc, char **argv)
{
    const char *command = "derive";
    char *tek_hex = NULL;
    g_autofree char *start_text = NULL;
    g_autofree char *count_text = NULL;
    g_autofree char *metadata_hex = NULL;
    /* Numbers are taken as strings and parsed here: G_OPTION_ARG_INT has no range check
     * and cannot hold every uint32 ENIN. */
    const GOptionEntry entries[] = {
        {"tek", 't', 0, G_OPTION_ARG_STRING, &tek_hex, "Temporary Exposure Key (32 hex digits)",
         "HEX"},
        {"start", 's', 0, G_OPTION_ARG_STRING, &start_text, "First interval number (ENIN)", "ENIN"},
        {"count", 'n', 0, G_OPTION_ARG_STRING, &count_text,
         "Number of intervals, 1..144 (default 144)", "N"},
        {"metadata", 'm', 0, G_OPTION_ARG_STRING, &metadata_hex,
         "Associated metadata, 8 hex digits (default " DEFAULT_METADATA ")", "HEX"},
        {NULL},
    };

    /* --help then reads "Usage: prox-tool derive [OPTION...]". */
    g_set_prgname("prox-tool derive");
    g_autoptr(GOptionContext) context = g_option_context_new(NULL);
    g_option_context_set_summary(context,
                                 "Print the Rolling Proximity Identifier and Associated Encrypted "
                                 "Metadata of a TEK for a range of intervals.");
    g_option_context_set_description(context, derive_description);
    g_option_context_add_main_entries(context, entries, NULL);

    int status;
    if (!prox_tool_parse_options(context, command, &argc, &argv))
        status = PROX_TOOL_EXIT_USAGE;
    else if (argc > 1)
        status = prox_tool_usage_error(command, "unexpected argument '%s'", argv[1]);
    else
        status = derive_run(command, tek_hex, start_text, count_text, metadata_hex);
    free_secret_string(tek_hex);
    return status;
}
