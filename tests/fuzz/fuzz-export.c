/* fuzz-export.c - libFuzzer harness for key-list files (prox-export).
 *
 * The first input byte picks what the rest is, so each layer gets fuzzed on its own:
 *   0: a whole zip                      -> prox_export_read_bytes (+ _unverified)
 *   1: export.bin, signed here with the pinned fuzz key, so the protobuf parser, the key
 *      checks and the batch check behind a valid signature are reached
 *                                       -> prox_export_read_entries
 *   2: export.sig next to a fixed valid export.bin -> prox_export_read_entries
 * A read must either return a complete, valid export or nothing; anything else aborts.
 */
#include "prox-export.h"

#include "export.pb-c.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#define FUZZ_KEY_ID "fuzz"
#define FUZZ_KEY_VERSION "v1"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The published GAEN sample's key, so the sample seed verifies in mode 0. */
static const char sample_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEml59itec9qzwVojreLXdPNRsUWzf\n"
    "YHc1cKvIIi6/H56AJS/kZEYQnfDpxrgyGhdAm+pNN2GAJ3XdnQZ1Sk4amg==\n"
    "-----END PUBLIC KEY-----\n";

static ProxExportKeyring *keyring;
static uint8_t secret_key[PROX_ED25519_SECRET_KEY_LEN];
static GBytes *fixed_bin;

static void check(gboolean condition)
{
    if (!condition)
        abort();
}

/* export.bin of a small valid list signed by the fuzz key. */
static GBytes *make_fixed_bin(void)
{
    static const ProxDiagnosisKey keys[] = {
        {{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 2650000, 144},
         5,
         PROX_REPORT_CONFIRMED_TEST,
         TRUE,
         -2},
    };
    static const ProxExportMeta meta = {1590000000, 1590086400, "VN", 1, 1};
    ProxExportSigner *signer =
        prox_export_signer_new_ed25519(FUZZ_KEY_ID, FUZZ_KEY_VERSION, secret_key, NULL);
    check(signer != NULL);
    GBytes *zip = prox_export_build(&meta, keys, G_N_ELEMENTS(keys), signer, NULL);
    check(zip != NULL);
    prox_export_signer_free(signer);

    gsize len = 0;
    const void *zip_data = g_bytes_get_data(zip, &len);
    zip_source_t *src = zip_source_buffer_create(zip_data, len, 0, NULL);
    zip_t *za = zip_open_from_source(src, ZIP_RDONLY, NULL);
    check(za != NULL);
    zip_stat_t st;
    check(zip_stat(za, PROX_EXPORT_BIN_NAME, 0, &st) == 0);
    zip_file_t *zf = zip_fopen(za, PROX_EXPORT_BIN_NAME, 0);
    uint8_t *bin = g_malloc(st.size);
    check(zf != NULL && zip_fread(zf, bin, st.size) == (zip_int64_t)st.size);
    zip_fclose(zf);
    zip_discard(za);
    g_bytes_unref(zip);
    return g_bytes_new_take(bin, st.size);
}

int LLVMFuzzerInitialize(int *argc, char **argv[])
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    uint8_t public_key[PROX_ED25519_PUBLIC_KEY_LEN];
    check(sodium_init() >= 0);
    memset(seed, 0x42, sizeof seed);
    crypto_sign_seed_keypair(public_key, secret_key, seed);
    keyring = prox_export_keyring_new();
    check(
        prox_export_keyring_add_ed25519(keyring, FUZZ_KEY_ID, FUZZ_KEY_VERSION, public_key, NULL));
    check(
        prox_export_keyring_add_pem(keyring, "some_id", "1", sample_pem, strlen(sample_pem), NULL));
    fixed_bin = make_fixed_bin();
    return 0;
}

/* A TEKSignatureList with one Ed25519 signature by the fuzz key over bin, batch 1/1. */
static uint8_t *sign_bin(const uint8_t *bin, size_t bin_len, size_t *sig_len)
{
    uint8_t signature[crypto_sign_BYTES];
    crypto_sign_detached(signature, NULL, bin, bin_len, secret_key);
    SignatureInfo info = SIGNATURE_INFO__INIT;
    info.verification_key_id = (char *)FUZZ_KEY_ID;
    info.verification_key_version = (char *)FUZZ_KEY_VERSION;
    info.signature_algorithm = (char *)PROX_EXPORT_ALGORITHM_ED25519;
    TEKSignature sig = TEKSIGNATURE__INIT;
    sig.signature_info = &info;
    sig.has_batch_num = TRUE;
    sig.batch_num = 1;
    sig.has_batch_size = TRUE;
    sig.batch_size = 1;
    sig.has_signature = TRUE;
    sig.signature.data = signature;
    sig.signature.len = sizeof signature;
    TEKSignature *sigs[] = {&sig};
    TEKSignatureList list = TEKSIGNATURE_LIST__INIT;
    list.n_signatures = 1;
    list.signatures = sigs;
    *sig_len = teksignature_list__get_packed_size(&list);
    uint8_t *out = g_malloc(*sig_len + 1);
    teksignature_list__pack(&list, out);
    return out;
}

/* Whatever a reader returns must be complete and within GAEN's limits. */
static void check_result(gboolean ok, ProxExport *export, GError *error, gboolean verified)
{
    if (!ok) {
        check(export == NULL && error != NULL && error->message != NULL);
        g_error_free(error);
        return;
    }
    check(export != NULL && error == NULL);
    check(export->start_timestamp >= 0 && export->start_timestamp <= export->end_timestamp);
    check(export->batch_num >= 1 && export->batch_num <= export->batch_size);
    check(export->region != NULL && export->n_revised <= export->keys->len);
    check(verified == (export->signer_key_id != NULL));
    for (guint i = 0; i < export->keys->len; i++) {
        const ProxDiagnosisKey *k = &g_array_index(export->keys, ProxDiagnosisKey, i);
        check(k->tek.rolling_period >= 1 && k->tek.rolling_period <= PROX_MAX_ROLLING_PERIOD);
        check(k->tek.rolling_start <= G_MAXINT32);
        check(k->transmission_risk_level >= 0 &&
              k->transmission_risk_level <= PROX_EXPORT_MAX_TRANSMISSION_RISK);
        check(k->report_type >= PROX_REPORT_UNKNOWN && k->report_type <= PROX_REPORT_REVOKED);
    }
    prox_export_free(export);
}

static void read_zip(const uint8_t *zip, size_t len)
{
    ProxExport *export = NULL;
    GError *error = NULL;
    gboolean ok = prox_export_read_bytes(zip, len, keyring, &export, &error);
    check_result(ok, export, error, TRUE);

    export = NULL;
    error = NULL;
    ok = prox_export_read_bytes_unverified(zip, len, &export, &error);
    check_result(ok, export, error, FALSE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0] % 3;
    data++;
    size--;

    if (mode == 0) {
        read_zip(data, size);
        return 0;
    }
    /* Modes 1 and 2 skip the zip (mode 0 covers it): several times the executions. */
    const uint8_t *bin = data;
    size_t bin_len = size;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    if (mode == 1) {
        sig = sign_bin(bin, bin_len, &sig_len);
    } else {
        bin = g_bytes_get_data(fixed_bin, &bin_len);
        sig = g_memdup2(data, size);
        sig_len = size;
    }
    ProxExport *export = NULL;
    GError *error = NULL;
    gboolean ok = prox_export_read_entries(bin, bin_len, sig, sig_len, keyring, &export, &error);
    check_result(ok, export, error, TRUE);
    g_free(sig);
    return 0;
}
