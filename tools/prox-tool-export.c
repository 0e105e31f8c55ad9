/* prox-tool-export.c - `prox-tool export`: verify, dump, keygen and sign key-list files. */
#define G_LOG_DOMAIN "prox-tool"

#include "prox-tool.h"

#include "gaen-keys-json.h"
#include "prox-export.h"
#include "prox-hex.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

static const char export_usage[] =
    "Usage: prox-tool export SUBCOMMAND [OPTION...]\n"
    "\n"
    "Key-list files (\"F0 lists\") in GAEN's export format: a zip holding export.bin (the\n"
    "16-byte header \"EK Export v1\" and a protobuf TemporaryExposureKeyExport) and export.sig\n"
    "(a TEKSignatureList). The signature covers all of export.bin and is made with Ed25519\n"
    "(proxd authorities) or ECDSA P-256 SHA-256 (GAEN key servers).\n"
    "\n"
    "Subcommands:\n"
    "  verify FILE.zip --key PUBKEY   check the signature and every key; exit 0 only if valid\n"
    "  dump FILE.zip                  print metadata and one line per key (signature NOT checked)\n"
    "  keygen --key-id ID --key-version V --out PREFIX\n"
    "                                 make an Ed25519 key pair PREFIX.sec and PREFIX.pub\n"
    "  sign --key PREFIX.sec --out FILE.zip KEYS.json\n"
    "                                 write a signed key list from a JSON list of keys\n"
    "\n"
    "Run 'prox-tool export SUBCOMMAND --help' for the options of a subcommand.\n"
    "Exit status: 0 success, 1 the operation failed (the reason is printed), 2 bad arguments.\n";

/* ---- verify ---- */

static int export_verify(int argc, char **argv)
{
    const char *command = "export verify";
    g_auto(GStrv) key_paths = NULL;
    g_autofree char *key_id = NULL;
    g_autofree char *key_version = NULL;
    const GOptionEntry entries[] = {
        {"key", 'k', 0, G_OPTION_ARG_FILENAME_ARRAY, &key_paths,
         "Trusted public key: a PEM ECDSA P-256 key or a proxd Ed25519 .pub file "
         "(repeat for several)",
         "PUBKEY"},
        {"key-id", 0, 0, G_OPTION_ARG_STRING, &key_id,
         "Trust the key only for signatures naming this key id (needs --key-version)", "ID"},
        {"key-version", 0, 0, G_OPTION_ARG_STRING, &key_version,
         "Trust the key only for signatures naming this key version (needs --key-id)", "V"},
        {NULL},
    };
    g_autoptr(GOptionContext) context = prox_tool_option_context(
        command, "FILE.zip", "Verify the signature and contents of a key-list file.",
        "FILE.zip is accepted only when export.sig holds a signature that a --key verifies\n"
        "over the whole of export.bin, with that key's algorithm (Ed25519 \"1.3.101.112\" or\n"
        "ECDSA P-256 SHA-256 \"1.2.840.10045.4.3.2\"), and when every check of the contents\n"
        "passes: header, protobuf, each key (16 bytes of key data, rolling period 1..144,\n"
        "known report type, transmission risk 0..8), start <= end, and the signature's batch\n"
        "number and size equal the file's.\n"
        "\n"
        "Which signatures a key may verify:\n"
        "  - a PEM key without --key-id/--key-version: any key id and version the file names\n"
        "    (giving the key on the command line is the trust decision);\n"
        "  - a proxd Ed25519 .pub file: the key id and version written in it;\n"
        "  - with --key-id ID --key-version V: only signatures naming exactly ID and V.\n"
        "\n"
        "On success prints the signer and a summary on stdout. On failure prints the check\n"
        "that failed on stderr.\n"
        "\n"
        "Exit status: 0 valid, 1 not valid (or unreadable), 2 bad arguments.\n"
        "\n"
        "Example:\n"
        "  prox-tool export verify export.zip --key ens-public.pem --key-id some_id "
        "--key-version 1",
        entries);
    if (!prox_tool_parse_options(context, command, &argc, &argv))
        return PROX_TOOL_EXIT_USAGE;
    if (argc != 2)
        return prox_tool_usage_error(command, "expected exactly one FILE.zip");
    if (key_paths == NULL || key_paths[0] == NULL)
        return prox_tool_usage_error(command, "--key PUBKEY is required");
    if ((key_id == NULL) != (key_version == NULL))
        return prox_tool_usage_error(command, "--key-id and --key-version go together");

    g_autoptr(GError) error = NULL;
    g_autoptr(ProxExportKeyring) keyring = prox_export_keyring_new();
    for (guint i = 0; key_paths[i] != NULL; i++) {
        if (!prox_export_keyring_add_file(keyring, key_id, key_version, key_paths[i], &error))
            return prox_tool_fail(command, error);
    }
    g_autoptr(ProxExport) export = NULL;
    if (!prox_export_read(argv[1], keyring, &export, &error))
        return prox_tool_fail(command, error);

    g_autofree char *start = prox_tool_format_utc(export->start_timestamp);
    g_autofree char *end = prox_tool_format_utc(export->end_timestamp);
    /* The key id comes from the file: never let it reach the terminal raw. */
    g_autofree char *signer_id = g_strescape(export->signer_key_id, NULL);
    g_autofree char *signer_version = g_strescape(export->signer_key_version, NULL);
    printf("%s: valid, signed by %s-%s (%s); %u keys (%u revised), region \"%s\", batch %d/%d, "
           "%s .. %s\n",
           argv[1], signer_id, signer_version,
           strcmp(export->signature_algorithm, PROX_EXPORT_ALGORITHM_ED25519) == 0
               ? "Ed25519"
               : "ECDSA P-256 SHA-256",
           export->keys->len, export->n_revised, export->region, export->batch_num,
           export->batch_size, start, end);
    return PROX_TOOL_EXIT_OK;
}

/* ---- dump ---- */

static int export_dump(int argc, char **argv)
{
    const char *command = "export dump";
    const GOptionEntry entries[] = {{NULL}};
    g_autoptr(GOptionContext) context = prox_tool_option_context(
        command, "FILE.zip", "Print the metadata and keys of a key-list file.",
        "The signature is NOT checked (use 'prox-tool export verify'); every other check of\n"
        "the contents is, and a file that fails one prints nothing but the reason.\n"
        "\n"
        "Output: lines starting with '#' describe the file; then one line per key:\n"
        "  KEY_HEX ROLLING_START ROLLING_PERIOD TRANSMISSION_RISK REPORT_TYPE DAYS_SINCE_ONSET "
        "LIST\n"
        "KEY_HEX is the 16-byte key in lowercase hex, ROLLING_START an ENIntervalNumber (10-\n"
        "minute units since the epoch), REPORT_TYPE one of UNKNOWN, CONFIRMED_TEST,\n"
        "CONFIRMED_CLINICAL_DIAGNOSIS, SELF_REPORT, RECURSIVE, REVOKED, DAYS_SINCE_ONSET '-'\n"
        "when the file gives none, and LIST 'key' or 'revised' (from revised_keys).\n"
        "\n"
        "Exit status: 0 printed, 1 the file does not parse, 2 bad arguments.",
        entries);
    if (!prox_tool_parse_options(context, command, &argc, &argv))
        return PROX_TOOL_EXIT_USAGE;
    if (argc != 2)
        return prox_tool_usage_error(command, "expected exactly one FILE.zip");

    g_autoptr(GError) error = NULL;
    g_autoptr(ProxExport) export = NULL;
    if (!prox_export_read_unverified(argv[1], &export, &error))
        return prox_tool_fail(command, error);

    g_autofree char *start = prox_tool_format_utc(export->start_timestamp);
    g_autofree char *end = prox_tool_format_utc(export->end_timestamp);
    printf("# %s (signature not checked)\n", argv[1]);
    printf("# region \"%s\", batch %d/%d, start %" G_GINT64_FORMAT " (%s), end %" G_GINT64_FORMAT
           " (%s), %u keys, %u revised\n",
           export->region, export->batch_num, export->batch_size, export->start_timestamp, start,
           export->end_timestamp, end, export->keys->len, export->n_revised);
    printf("# key rolling_start rolling_period transmission_risk report_type days_since_onset "
           "list\n");
    for (guint i = 0; i < export->keys->len; i++) {
        const ProxDiagnosisKey *k = &g_array_index(export->keys, ProxDiagnosisKey, i);
        char hex[2 * PROX_KEY_LEN + 1];
        char onset[16] = "-";
        prox_hex_encode(k->tek.key, PROX_KEY_LEN, hex);
        if (k->has_days_since_onset)
            g_snprintf(onset, sizeof onset, "%d", k->days_since_onset);
        printf("%s %u %u %d %s %s %s\n", hex, k->tek.rolling_start, k->tek.rolling_period,
               k->transmission_risk_level, gaen_report_type_name(k->report_type), onset,
               prox_export_key_is_revised(export, i) ? "revised" : "key");
    }
    return PROX_TOOL_EXIT_OK;
}

/* ---- keygen ---- */

static int export_keygen(int argc, char **argv)
{
    const char *command = "export keygen";
    g_autofree char *key_id = NULL;
    g_autofree char *key_version = NULL;
    g_autofree char *prefix = NULL;
    const GOptionEntry entries[] = {
        {"key-id", 0, 0, G_OPTION_ARG_STRING, &key_id,
         "Key id that signatures will name (e.g. the region or authority)", "ID"},
        {"key-version", 0, 0, G_OPTION_ARG_STRING, &key_version,
         "Key version that signatures will name (e.g. v1)", "V"},
        {"out", 'o', 0, G_OPTION_ARG_FILENAME, &prefix, "Write PREFIX.sec and PREFIX.pub",
         "PREFIX"},
        {NULL},
    };
    g_autoptr(GOptionContext) context = prox_tool_option_context(
        command, "", "Generate an Ed25519 key pair for signing key lists.",
        "Writes two one-line text files:\n"
        "  PREFIX.sec  proxd-ed25519-secret ID V BASE64(64-byte secret key)   mode 0600\n"
        "  PREFIX.pub  proxd-ed25519-public ID V BASE64(32-byte public key)   mode 0644\n"
        "Devices pin PREFIX.pub; keep PREFIX.sec offline. Signatures made with the key name\n"
        "ID and V (SignatureInfo verification_key_id / verification_key_version). ID and V\n"
        "are printable ASCII without spaces. Existing files are never overwritten.\n"
        "\n"
        "Exit status: 0 written, 1 a file exists or cannot be written, 2 bad arguments.\n"
        "\n"
        "Example:\n"
        "  prox-tool export keygen --key-id authority --key-version v1 --out /secure/authority",
        entries);
    if (!prox_tool_parse_options(context, command, &argc, &argv))
        return PROX_TOOL_EXIT_USAGE;
    if (argc != 1)
        return prox_tool_usage_error(command, "unexpected argument '%s'", argv[1]);
    if (key_id == NULL || key_version == NULL || prefix == NULL)
        return prox_tool_usage_error(command, "--key-id, --key-version and --out are required");

    g_autoptr(GError) error = NULL;
    g_autofree char *secret_path = g_strconcat(prefix, ".sec", NULL);
    g_autofree char *public_path = g_strconcat(prefix, ".pub", NULL);
    if (!prox_export_ed25519_keygen(key_id, key_version, secret_path, public_path, &error)) {
        if (g_error_matches(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT))
            return prox_tool_usage_error(command, "%s", error->message);
        return prox_tool_fail(command, error);
    }
    printf("wrote %s (secret, mode 0600) and %s (public)\n", secret_path, public_path);
    return PROX_TOOL_EXIT_OK;
}

/* ---- sign ---- */

/* Key files: one error domain and code for every problem, any report type (REVOKED too, to
 * write test files), no member the format does not know (a typo must not be ignored). */
static const GaenKeysJsonPolicy key_file_policy = {
    .codes =
        {
            [GAEN_KEYS_JSON_BAD_KEY] = PROX_ERROR_MALFORMED,
            [GAEN_KEYS_JSON_BAD_KEY_DATA] = PROX_ERROR_MALFORMED,
            [GAEN_KEYS_JSON_BAD_ROLLING_START] = PROX_ERROR_MALFORMED,
            [GAEN_KEYS_JSON_BAD_ROLLING_PERIOD] = PROX_ERROR_MALFORMED,
            [GAEN_KEYS_JSON_BAD_TRANSMISSION_RISK] = PROX_ERROR_MALFORMED,
            [GAEN_KEYS_JSON_BAD_REPORT_TYPE] = PROX_ERROR_MALFORMED,
            [GAEN_KEYS_JSON_BAD_DAYS_SINCE_ONSET] = PROX_ERROR_MALFORMED,
        },
    .allow_revoked = TRUE,
    .reject_unknown_members = TRUE,
    .null_is_absent = FALSE,
    .cli_report_names = FALSE,
    .days_since_onset_min = G_MININT32,
    .days_since_onset_max = G_MAXINT32,
};

/* Keys from {"temporaryExposureKeys": [{"key": BASE64, "rollingStartNumber": N, ...}, ...]}
 * (the GAEN publish format, as in tests/data/gaen/ens-keys.json). Other top-level members
 * are ignored so a GAEN publish request works as is. */
static GArray *json_keys_load(const char *path, GError **error)
{
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    if (!json_parser_load_from_file(parser, path, error))
        return NULL;
    JsonNode *root = json_parser_get_root(parser);
    JsonNode *list =
        root != NULL && JSON_NODE_HOLDS_OBJECT(root)
            ? json_object_get_member(json_node_get_object(root), "temporaryExposureKeys")
            : NULL;
    if (list == NULL || !JSON_NODE_HOLDS_ARRAY(list)) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                            "expected an object with a \"temporaryExposureKeys\" array");
        return NULL;
    }
    GaenKeysJsonPolicy policy = key_file_policy;
    policy.domain = PROX_ERROR;
    return gaen_keys_json_parse_array(json_node_get_array(list), &policy, error);
}

static int export_sign(int argc, char **argv)
{
    const char *command = "export sign";
    g_autofree char *key_path = NULL;
    g_autofree char *key_id = NULL;
    g_autofree char *key_version = NULL;
    g_autofree char *out_path = NULL;
    g_autofree char *region = NULL;
    gint batch_num = 1;
    gint batch_size = 1;
    gint64 start = -1;
    gint64 end = -1;
    const GOptionEntry entries[] = {
        {"key", 'k', 0, G_OPTION_ARG_FILENAME, &key_path,
         "Signing key: a proxd Ed25519 .sec file, or a PEM ECDSA P-256 private key", "SECKEY"},
        {"key-id", 0, 0, G_OPTION_ARG_STRING, &key_id,
         "Key id to name in the signature (PEM keys only; required for them)", "ID"},
        {"key-version", 0, 0, G_OPTION_ARG_STRING, &key_version,
         "Key version to name in the signature (PEM keys only; required for them)", "V"},
        {"out", 'o', 0, G_OPTION_ARG_FILENAME, &out_path, "Write the signed zip to FILE.zip",
         "FILE.zip"},
        {"region", 0, 0, G_OPTION_ARG_STRING, &region, "Region of the list (default: none)", "R"},
        {"batch-num", 0, 0, G_OPTION_ARG_INT, &batch_num,
         "Number of this file in its batch, from 1 (default 1)", "N"},
        {"batch-size", 0, 0, G_OPTION_ARG_INT, &batch_size,
         "Number of files in the batch (default 1)", "N"},
        {"start", 0, 0, G_OPTION_ARG_INT64, &start,
         "Start of the window the list covers, UTC unix seconds (default: the earliest key "
         "start)",
         "SECONDS"},
        {"end", 0, 0, G_OPTION_ARG_INT64, &end,
         "End of the window, UTC unix seconds (default: the latest key end)", "SECONDS"},
        {NULL},
    };
    g_autoptr(GOptionContext) context = prox_tool_option_context(
        command, "KEYS.json", "Write a signed key-list file.",
        "KEYS.json is in the GAEN publish format:\n"
        "  {\"temporaryExposureKeys\": [\n"
        "    {\"key\": \"Fy/EgOWYSQw0F3YEM5sVQw==\", \"rollingStartNumber\": 2649980,\n"
        "     \"rollingPeriod\": 1, \"transmissionRisk\": 8}, ...]}\n"
        "Per key: key (base64 of 16 bytes) and rollingStartNumber (ENIntervalNumber) are\n"
        "required; rollingPeriod (1..144, default 144), transmissionRisk (0..8, default 0),\n"
        "reportType (0..5 or a name such as \"CONFIRMED_TEST\", default UNKNOWN) and\n"
        "daysSinceOnsetOfSymptoms are optional. Errors name the key's index (from 0) and field.\n"
        "\n"
        "Keys are written sorted by key data, which hides the order of uploads. The file is\n"
        "written atomically (temporary file, then rename). A secret key file must not be\n"
        "accessible by group or others.\n"
        "\n"
        "Exit status: 0 written, 1 invalid keys or a key/file error, 2 bad arguments.\n"
        "\n"
        "Example:\n"
        "  prox-tool export sign --key authority.sec --region VN --out 2020-05-22.zip "
        "keys.json",
        entries);
    if (!prox_tool_parse_options(context, command, &argc, &argv))
        return PROX_TOOL_EXIT_USAGE;
    if (argc != 2)
        return prox_tool_usage_error(command, "expected exactly one KEYS.json");
    if (key_path == NULL || out_path == NULL)
        return prox_tool_usage_error(command, "--key and --out are required");
    if ((key_id == NULL) != (key_version == NULL))
        return prox_tool_usage_error(command, "--key-id and --key-version go together");
    if (batch_size < 1 || batch_num < 1 || batch_num > batch_size)
        return prox_tool_usage_error(command, "need 1 <= --batch-num <= --batch-size");
    if ((start != -1 && start < 0) || (end != -1 && end < 0))
        return prox_tool_usage_error(command, "--start and --end must not be negative");

    g_autoptr(GError) error = NULL;
    g_autoptr(GArray) keys = json_keys_load(argv[1], &error);
    if (keys == NULL) {
        g_prefix_error(&error, "%s: ", argv[1]);
        return prox_tool_fail(command, error);
    }
    if (keys->len == 0 && (start < 0 || end < 0))
        return prox_tool_usage_error(command, "%s holds no keys: give --start and --end", argv[1]);
    gint64 first = G_MAXINT64;
    gint64 last = 0;
    for (guint i = 0; i < keys->len; i++) {
        const ProxTek *tek = &g_array_index(keys, ProxDiagnosisKey, i).tek;
        first = MIN(first, prox_interval_start(tek->rolling_start));
        last = MAX(last, prox_interval_start(tek->rolling_start + tek->rolling_period));
    }
    ProxExportMeta meta = {
        .start_timestamp = start >= 0 ? start : first,
        .end_timestamp = end >= 0 ? end : last,
        .region = region,
        .batch_num = batch_num,
        .batch_size = batch_size,
    };
    if (meta.start_timestamp > meta.end_timestamp)
        return prox_tool_usage_error(command,
                                     "start %" G_GINT64_FORMAT " is after end %" G_GINT64_FORMAT,
                                     meta.start_timestamp, meta.end_timestamp);

    g_autoptr(ProxExportSigner) signer =
        prox_export_signer_load_file(key_path, key_id, key_version, &error);
    if (signer == NULL) {
        if (g_error_matches(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT))
            return prox_tool_usage_error(command, "%s", error->message);
        return prox_tool_fail(command, error);
    }
    if (!prox_export_write(out_path, &meta, (const ProxDiagnosisKey *)keys->data, keys->len, signer,
                           &error))
        return prox_tool_fail(command, error);
    printf("wrote %s: %u keys signed by %s-%s\n", out_path, keys->len,
           prox_export_signer_key_id(signer), prox_export_signer_key_version(signer));
    return PROX_TOOL_EXIT_OK;
}

int prox_tool_export_main(int argc, char **argv)
{
    static const ProxToolSubcommand subcommands[] = {
        {"verify", export_verify},
        {"dump", export_dump},
        {"keygen", export_keygen},
        {"sign", export_sign},
    };
    return prox_tool_run_subcommand("export", export_usage, subcommands, G_N_ELEMENTS(subcommands),
                                    argc, argv);
}
