/* test-export.c - key-list files: the GAEN sample, tampering, round trips, limits, prox-tool. */
#include "prox-export.h"
#include "prox-hex.h"
#include "prox-venue.h"

#include "export.pb-c.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zip.h>

#define SAMPLE_ZIP "ens-testExport-2-records-1-of-1.zip"
#define TEST_KEY_ID "test-authority"
#define TEST_KEY_VERSION "v1"

/* ---- helpers ---- */

static char *gaen_path(const char *name)
{
    const char *dir = g_getenv("PROX_TESTDATA");
    g_assert_nonnull(dir);
    return g_build_filename(dir, "gaen", name, NULL);
}

static GBytes *file_bytes(const char *path)
{
    char *data = NULL;
    gsize len = 0;
    g_autoptr(GError) error = NULL;
    g_assert_true(g_file_get_contents(path, &data, &len, &error));
    g_assert_no_error(error);
    return g_bytes_new_take(data, len);
}

static GBytes *sample_zip(void)
{
    g_autofree char *path = gaen_path(SAMPLE_ZIP);
    return file_bytes(path);
}

/* One entry of a zip, read with libzip directly (independent of the code under test). */
static GBytes *unzip_entry(GBytes *zip, const char *name)
{
    zip_error_t zerr;
    zip_error_init(&zerr);
    gsize len = 0;
    const void *data = g_bytes_get_data(zip, &len);
    zip_source_t *src = zip_source_buffer_create(data, len, 0, &zerr);
    g_assert_nonnull(src);
    zip_t *za = zip_open_from_source(src, ZIP_RDONLY, &zerr);
    g_assert_nonnull(za);
    zip_stat_t st;
    g_assert_cmpint(zip_stat(za, name, 0, &st), ==, 0);
    zip_file_t *zf = zip_fopen(za, name, 0);
    g_assert_nonnull(zf);
    guint8 *buf = g_malloc(st.size + 1);
    g_assert_cmpint(zip_fread(zf, buf, st.size), ==, (zip_int64_t)st.size);
    zip_fclose(zf);
    zip_discard(za);
    zip_error_fini(&zerr);
    return g_bytes_new_take(buf, st.size);
}

static GBytes *pack(GBytes *bin, GBytes *sig)
{
    g_autoptr(GError) error = NULL;
    gsize bin_len = 0;
    gsize sig_len = 0;
    const guint8 *bin_data = g_bytes_get_data(bin, &bin_len);
    const guint8 *sig_data = sig != NULL ? g_bytes_get_data(sig, &sig_len) : NULL;
    GBytes *zip = prox_export_pack(bin_data, bin_len, sig_data, sig_len, &error);
    g_assert_no_error(error);
    g_assert_nonnull(zip);
    return zip;
}

static ProxExportKeyring *sample_keyring(void)
{
    ProxExportKeyring *keyring = prox_export_keyring_new();
    g_autofree char *pem = gaen_path("ens-public.pem");
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_export_keyring_add_pem_file(keyring, "some_id", "1", pem, &error));
    g_assert_no_error(error);
    return keyring;
}

static ProxExport *read_ok(GBytes *zip, const ProxExportKeyring *keyring)
{
    ProxExport *export = NULL;
    g_autoptr(GError) error = NULL;
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(zip, &len);
    gboolean ok = prox_export_read_bytes(data, len, keyring, &export, &error);
    g_assert_no_error(error);
    g_assert_true(ok);
    g_assert_nonnull(export);
    return export;
}

/* Reading fails with `code` and a message containing `needle` (NULL: any message), and
 * returns no export. */
static void assert_read_fails(GBytes *zip, const ProxExportKeyring *keyring, gint code,
                              const char *needle)
{
    ProxExport *export = (ProxExport *)0x1; /* must be reset to NULL */
    g_autoptr(GError) error = NULL;
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(zip, &len);
    gboolean ok = keyring != NULL ? prox_export_read_bytes(data, len, keyring, &export, &error)
                                  : prox_export_read_bytes_unverified(data, len, &export, &error);
    g_assert_false(ok);
    g_assert_null(export);
    g_assert_nonnull(error);
    if (code >= 0)
        g_assert_error(error, PROX_ERROR, code);
    if (needle != NULL && strstr(error->message, needle) == NULL)
        g_error("error \"%s\" does not mention \"%s\"", error->message, needle);
}

static const ProxDiagnosisKey *key_at(const ProxExport *export, guint i)
{
    return &g_array_index(export->keys, ProxDiagnosisKey, i);
}

/* A fixed Ed25519 key pair, so failures reproduce. */
static void test_ed25519_keypair(guint8 pk[PROX_ED25519_PUBLIC_KEY_LEN],
                                 guint8 sk[PROX_ED25519_SECRET_KEY_LEN])
{
    guint8 seed[crypto_sign_SEEDBYTES];
    for (size_t i = 0; i < sizeof seed; i++)
        seed[i] = (guint8)(0xa0 + i);
    g_assert_cmpint(sodium_init(), >=, 0);
    crypto_sign_seed_keypair(pk, sk, seed);
}

static ProxExportKeyring *test_ed25519_keyring(void)
{
    guint8 pk[PROX_ED25519_PUBLIC_KEY_LEN];
    guint8 sk[PROX_ED25519_SECRET_KEY_LEN];
    test_ed25519_keypair(pk, sk);
    ProxExportKeyring *keyring = prox_export_keyring_new();
    g_assert_true(
        prox_export_keyring_add_ed25519(keyring, TEST_KEY_ID, TEST_KEY_VERSION, pk, NULL));
    return keyring;
}

static ProxExportSigner *test_ed25519_signer(void)
{
    guint8 pk[PROX_ED25519_PUBLIC_KEY_LEN];
    guint8 sk[PROX_ED25519_SECRET_KEY_LEN];
    test_ed25519_keypair(pk, sk);
    g_autoptr(GError) error = NULL;
    ProxExportSigner *signer =
        prox_export_signer_new_ed25519(TEST_KEY_ID, TEST_KEY_VERSION, sk, &error);
    g_assert_no_error(error);
    return signer;
}

/* A fresh P-256 key pair as PEM (private, public). */
static void ecdsa_keypair_pem(const char *curve, char **private_pem, char **public_pem)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    g_assert_nonnull(pkey);
    BIO *priv = BIO_new(BIO_s_mem());
    BIO *pub = BIO_new(BIO_s_mem());
    g_assert_true(PEM_write_bio_PrivateKey(priv, pkey, NULL, NULL, 0, NULL, NULL));
    g_assert_true(PEM_write_bio_PUBKEY(pub, pkey));
    char *p = NULL;
    long n = BIO_get_mem_data(priv, &p);
    *private_pem = g_strndup(p, (gsize)n);
    n = BIO_get_mem_data(pub, &p);
    *public_pem = g_strndup(p, (gsize)n);
    BIO_free(priv);
    BIO_free(pub);
    EVP_PKEY_free(pkey);
}

/* ---- crafting files with the generated protobuf code ---- */

static GBytes *export_bin_from(const TemporaryExposureKeyExport *m)
{
    gsize len = temporary_exposure_key_export__get_packed_size(m);
    guint8 *buf = g_malloc(PROX_EXPORT_HEADER_LEN + len);
    memcpy(buf, PROX_EXPORT_HEADER, PROX_EXPORT_HEADER_LEN);
    temporary_exposure_key_export__pack(m, buf + PROX_EXPORT_HEADER_LEN);
    return g_bytes_new_take(buf, PROX_EXPORT_HEADER_LEN + len);
}

typedef struct {
    const char *key_id;
    const char *version;
    const char *algorithm;
    gboolean has_batch;
    int32_t batch_num;
    int32_t batch_size;
    gboolean corrupt; /* sign, then flip a signature bit */
} SigSpec;

static const SigSpec good_sig = {
    TEST_KEY_ID, TEST_KEY_VERSION, PROX_EXPORT_ALGORITHM_ED25519, TRUE, 1, 1, FALSE};

/* export.sig with one TEKSignature per spec, each an Ed25519 signature over bin by the test
 * key (whatever algorithm the spec names). */
static GBytes *export_sig_for(GBytes *bin, const SigSpec *specs, guint n)
{
    guint8 pk[PROX_ED25519_PUBLIC_KEY_LEN];
    guint8 sk[PROX_ED25519_SECRET_KEY_LEN];
    test_ed25519_keypair(pk, sk);
    gsize bin_len = 0;
    const guint8 *bin_data = g_bytes_get_data(bin, &bin_len);

    SignatureInfo *infos = g_new(SignatureInfo, n);
    TEKSignature *sigs = g_new(TEKSignature, n);
    TEKSignature **ptrs = g_new(TEKSignature *, n);
    guint8(*raw)[64] = g_malloc(64 * (gsize)n);
    for (guint i = 0; i < n; i++) {
        signature_info__init(&infos[i]);
        infos[i].verification_key_id = (char *)specs[i].key_id;
        infos[i].verification_key_version = (char *)specs[i].version;
        infos[i].signature_algorithm = (char *)specs[i].algorithm;
        teksignature__init(&sigs[i]);
        sigs[i].signature_info = &infos[i];
        sigs[i].has_batch_num = specs[i].has_batch;
        sigs[i].batch_num = specs[i].batch_num;
        sigs[i].has_batch_size = specs[i].has_batch;
        sigs[i].batch_size = specs[i].batch_size;
        crypto_sign_detached(raw[i], NULL, bin_data, bin_len, sk);
        if (specs[i].corrupt)
            raw[i][10] ^= 0x04;
        sigs[i].has_signature = TRUE;
        sigs[i].signature.data = raw[i];
        sigs[i].signature.len = 64;
        ptrs[i] = &sigs[i];
    }
    TEKSignatureList list = TEKSIGNATURE_LIST__INIT;
    list.n_signatures = n;
    list.signatures = ptrs;
    gsize len = teksignature_list__get_packed_size(&list);
    guint8 *buf = g_malloc(len != 0 ? len : 1);
    teksignature_list__pack(&list, buf);
    g_free(raw);
    g_free(ptrs);
    g_free(sigs);
    g_free(infos);
    return g_bytes_new_take(buf, len);
}

/* An export message with a valid frame (timestamps, region, batch 1/1) and `n` keys
 * pointing into `keys` (which the caller fills). */
static void export_message_init(TemporaryExposureKeyExport *m, TemporaryExposureKey **ptrs,
                                TemporaryExposureKey *keys, guint n)
{
    temporary_exposure_key_export__init(m);
    m->has_start_timestamp = TRUE;
    m->start_timestamp = 1590159600;
    m->has_end_timestamp = TRUE;
    m->end_timestamp = 1590246000;
    m->region = (char *)"VN";
    m->has_batch_num = TRUE;
    m->batch_num = 1;
    m->has_batch_size = TRUE;
    m->batch_size = 1;
    for (guint i = 0; i < n; i++)
        ptrs[i] = &keys[i];
    m->n_keys = n;
    m->keys = ptrs;
}

static guint8 key_bytes[4][PROX_KEY_LEN];

static void key_message_init(TemporaryExposureKey *k, guint which)
{
    temporary_exposure_key__init(k);
    for (guint i = 0; i < PROX_KEY_LEN; i++)
        key_bytes[which][i] = (guint8)(which * 16 + i);
    k->has_key_data = TRUE;
    k->key_data.data = key_bytes[which];
    k->key_data.len = PROX_KEY_LEN;
    k->has_rolling_start_interval_number = TRUE;
    k->rolling_start_interval_number = 2650000 + (int32_t)which * 144;
}

/* The message signed correctly by the test key, zipped. */
static GBytes *signed_zip(const TemporaryExposureKeyExport *m)
{
    g_autoptr(GBytes) bin = export_bin_from(m);
    g_autoptr(GBytes) sig = export_sig_for(bin, &good_sig, 1);
    return pack(bin, sig);
}

/* ---- the published GAEN sample ---- */

typedef struct {
    guint8 key[PROX_KEY_LEN];
    gint64 start;
    gint64 period;
    gint64 risk;
} JsonKey;

static GArray *sample_json_keys(void)
{
    g_autofree char *path = gaen_path("ens-keys.json");
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;
    g_assert_true(json_parser_load_from_file(parser, path, &error));
    JsonObject *root = json_node_get_object(json_parser_get_root(parser));
    JsonArray *list = json_object_get_array_member(root, "temporaryExposureKeys");
    GArray *keys = g_array_new(FALSE, TRUE, sizeof(JsonKey));
    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonObject *o = json_array_get_object_element(list, i);
        JsonKey k;
        gsize len = 0;
        g_autofree guchar *raw = g_base64_decode(json_object_get_string_member(o, "key"), &len);
        g_assert_cmpuint(len, ==, PROX_KEY_LEN);
        memcpy(k.key, raw, PROX_KEY_LEN);
        k.start = json_object_get_int_member(o, "rollingStartNumber");
        k.period = json_object_get_int_member(o, "rollingPeriod");
        k.risk = json_object_get_int_member(o, "transmissionRisk");
        g_array_append_val(keys, k);
    }
    g_assert_cmpuint(keys->len, ==, 2);
    return keys;
}

static void assert_sample_keys(const ProxExport *export)
{
    g_autoptr(GArray) expected = sample_json_keys();
    g_assert_cmpuint(export->keys->len, ==, expected->len);
    g_assert_cmpuint(export->n_revised, ==, 0);
    for (guint i = 0; i < expected->len; i++) {
        const JsonKey *want = &g_array_index(expected, JsonKey, i);
        guint found = 0;
        for (guint j = 0; j < export->keys->len; j++) {
            const ProxDiagnosisKey *got = key_at(export, j);
            if (memcmp(got->tek.key, want->key, PROX_KEY_LEN) != 0)
                continue;
            found++;
            g_assert_cmpint(got->tek.rolling_start, ==, want->start);
            g_assert_cmpint(got->tek.rolling_period, ==, want->period);
            g_assert_cmpint(got->transmission_risk_level, ==, want->risk);
            g_assert_cmpint(got->report_type, ==, PROX_REPORT_UNKNOWN);
            g_assert_false(got->has_days_since_onset);
            g_assert_false(prox_export_key_is_revised(export, j));
        }
        g_assert_cmpuint(found, ==, 1);
    }
}

static void test_sample_verifies(void)
{
    g_autoptr(ProxExportKeyring) keyring = sample_keyring();
    g_autofree char *path = gaen_path(SAMPLE_ZIP);
    g_autoptr(ProxExport) export = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_export_read(path, keyring, &export, &error));
    g_assert_no_error(error);

    g_assert_cmpstr(export->signer_key_id, ==, "some_id");
    g_assert_cmpstr(export->signer_key_version, ==, "1");
    g_assert_cmpstr(export->signature_algorithm, ==, PROX_EXPORT_ALGORITHM_ECDSA_P256_SHA256);
    g_assert_cmpstr(export->region, ==, "US");
    g_assert_cmpint(export->start_timestamp, ==, 1590159600); /* 2020-05-22T15:00Z */
    g_assert_cmpint(export->end_timestamp, ==, 1590246000);   /* 2020-05-23T15:00Z */
    g_assert_cmpint(export->batch_num, ==, 1);
    g_assert_cmpint(export->batch_size, ==, 1);
    /* Rolling periods 1 and 114 are real published values (PROTOCOL.md §1). */
    assert_sample_keys(export);

    /* The same from memory, and without the signature check. */
    g_autoptr(GBytes) zip = sample_zip();
    g_autoptr(ProxExport) from_bytes = read_ok(zip, keyring);
    assert_sample_keys(from_bytes);
    g_autoptr(ProxExport) unverified = NULL;
    g_assert_true(prox_export_read_unverified(path, &unverified, &error));
    g_assert_no_error(error);
    assert_sample_keys(unverified);
    g_assert_null(unverified->signer_key_id);
    g_assert_null(unverified->signature_algorithm);
}

static void test_sample_sha256(void)
{
    g_autofree char *vectors_path = gaen_path("VECTORS.md");
    g_autoptr(GBytes) vectors = file_bytes(vectors_path);
    g_autoptr(GRegex) regex =
        g_regex_new("sha256\\(export\\.bin\\) =\\s*([0-9a-f]{64})", 0, 0, NULL);
    g_autoptr(GMatchInfo) match = NULL;
    g_assert_true(g_regex_match(regex, g_bytes_get_data(vectors, NULL), 0, &match));
    g_autofree char *expected = g_match_info_fetch(match, 1);

    g_autoptr(GBytes) zip = sample_zip();
    g_autoptr(GBytes) bin = unzip_entry(zip, "export.bin");
    g_autofree char *digest = g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, bin);
    g_assert_cmpstr(digest, ==, expected);
}

/* Every single changed byte of export.bin or export.sig, rezipped, must fail with no keys. */
static void test_sample_every_flipped_byte_fails(void)
{
    g_autoptr(ProxExportKeyring) keyring = sample_keyring();
    g_autoptr(GBytes) zip = sample_zip();
    g_autoptr(GBytes) bin = unzip_entry(zip, "export.bin");
    g_autoptr(GBytes) sig = unzip_entry(zip, "export.sig");

    /* The rezipped original verifies: failures below come from the flip alone. */
    g_autoptr(GBytes) rezipped = pack(bin, sig);
    g_autoptr(ProxExport) export = read_ok(rezipped, keyring);
    g_assert_cmpuint(export->keys->len, ==, 2);

    static const guint8 masks[] = {0xff, 0x01, 0x80};
    guint tried = 0;
    for (guint which = 0; which < 2; which++) {
        GBytes *target = which == 0 ? bin : sig;
        gsize len = 0;
        const guint8 *data = g_bytes_get_data(target, &len);
        for (gsize pos = 0; pos < len; pos++) {
            for (guint m = 0; m < G_N_ELEMENTS(masks); m++) {
                guint8 *copy = g_memdup2(data, len);
                copy[pos] ^= masks[m];
                g_autoptr(GBytes) flipped = g_bytes_new_take(copy, len);
                g_autoptr(GBytes) flipped_zip =
                    which == 0 ? pack(flipped, sig) : pack(bin, flipped);
                assert_read_fails(flipped_zip, keyring, -1, NULL);
                tried++;
            }
        }
    }
    g_assert_cmpuint(tried, ==, (135 + 115) * G_N_ELEMENTS(masks));
}

static void test_sample_wrong_keys(void)
{
    g_autoptr(GBytes) zip = sample_zip();
    g_autofree char *pem_path = gaen_path("ens-public.pem");
    g_autoptr(GBytes) pem = file_bytes(pem_path);
    gsize pem_len = 0;
    const char *pem_data = g_bytes_get_data(pem, &pem_len);

    /* Another P-256 key under the right id and version. */
    g_autofree char *other_private = NULL;
    g_autofree char *other_public = NULL;
    ecdsa_keypair_pem("P-256", &other_private, &other_public);
    g_autoptr(ProxExportKeyring) wrong = prox_export_keyring_new();
    g_assert_true(prox_export_keyring_add_pem(wrong, "some_id", "1", other_public,
                                              strlen(other_public), NULL));
    assert_read_fails(zip, wrong, PROX_ERROR_SIGNATURE, "does not verify");

    /* The right key under another id or version. */
    g_autoptr(ProxExportKeyring) other_id = prox_export_keyring_new();
    g_assert_true(prox_export_keyring_add_pem(other_id, "other_id", "1", pem_data, pem_len, NULL));
    assert_read_fails(zip, other_id, PROX_ERROR_SIGNATURE, "no signature by a pinned key");
    g_autoptr(ProxExportKeyring) other_version = prox_export_keyring_new();
    g_assert_true(
        prox_export_keyring_add_pem(other_version, "some_id", "2", pem_data, pem_len, NULL));
    assert_read_fails(zip, other_version, PROX_ERROR_SIGNATURE, "some_id-1");

    /* An Ed25519 key pinned under the sample's id: the algorithm does not match. */
    g_autoptr(ProxExportKeyring) ed = prox_export_keyring_new();
    guint8 pk[PROX_ED25519_PUBLIC_KEY_LEN];
    guint8 sk[PROX_ED25519_SECRET_KEY_LEN];
    test_ed25519_keypair(pk, sk);
    g_assert_true(prox_export_keyring_add_ed25519(ed, "some_id", "1", pk, NULL));
    assert_read_fails(zip, ed, PROX_ERROR_SIGNATURE, "algorithm");

    /* No key at all. */
    g_autoptr(ProxExportKeyring) empty = prox_export_keyring_new();
    assert_read_fails(zip, empty, PROX_ERROR_SIGNATURE, "no signature by a pinned key");

    /* A key trusted for any id/version verifies; the export names the file's id. */
    g_autoptr(ProxExportKeyring) any = prox_export_keyring_new();
    g_assert_true(prox_export_keyring_add_pem(any, NULL, NULL, pem_data, pem_len, NULL));
    g_autoptr(ProxExport) export = read_ok(zip, any);
    g_assert_cmpstr(export->signer_key_id, ==, "some_id");
    g_assert_cmpstr(export->signer_key_version, ==, "1");

    /* A wrong key first, the right one after it: any trusted valid signature suffices. */
    g_autoptr(ProxExportKeyring) both = prox_export_keyring_new();
    g_assert_true(prox_export_keyring_add_pem(both, "some_id", "1", other_public,
                                              strlen(other_public), NULL));
    g_assert_true(prox_export_keyring_add_pem(both, "some_id", "1", pem_data, pem_len, NULL));
    g_autoptr(ProxExport) export2 = read_ok(zip, both);
    g_assert_cmpuint(export2->keys->len, ==, 2);
}

/* ---- round trips ---- */

static const ProxDiagnosisKey round_trip_keys[] = {
    {{{0xf0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, 2650032, 144},
     6,
     PROX_REPORT_CONFIRMED_TEST,
     TRUE,
     -3},
    {{{0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, 2649980, 1},
     8,
     PROX_REPORT_UNKNOWN,
     FALSE,
     0},
    {{{0x80, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, 2649866, 114},
     0,
     PROX_REPORT_SELF_REPORT,
     TRUE,
     0},
    {{{0x00, 0xff, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, 0, 144},
     1,
     PROX_REPORT_REVOKED,
     TRUE,
     14},
};

static const ProxExportMeta round_trip_meta = {1589846400, 1589932800, "VN", 2, 3};

static void assert_round_trip(const ProxExport *export)
{
    gsize n = G_N_ELEMENTS(round_trip_keys);
    g_assert_cmpuint(export->keys->len, ==, n);
    g_assert_cmpint(export->start_timestamp, ==, round_trip_meta.start_timestamp);
    g_assert_cmpint(export->end_timestamp, ==, round_trip_meta.end_timestamp);
    g_assert_cmpstr(export->region, ==, "VN");
    g_assert_cmpint(export->batch_num, ==, 2);
    g_assert_cmpint(export->batch_size, ==, 3);
    for (guint i = 0; i < n; i++) {
        const ProxDiagnosisKey *got = key_at(export, i);
        /* Written sorted by key data. */
        if (i > 0)
            g_assert_cmpint(memcmp(key_at(export, i - 1)->tek.key, got->tek.key, PROX_KEY_LEN), <,
                            0);
        const ProxDiagnosisKey *want = NULL;
        for (guint j = 0; j < n; j++) {
            if (memcmp(round_trip_keys[j].tek.key, got->tek.key, PROX_KEY_LEN) == 0)
                want = &round_trip_keys[j];
        }
        g_assert_nonnull(want);
        g_assert_cmpuint(got->tek.rolling_start, ==, want->tek.rolling_start);
        g_assert_cmpuint(got->tek.rolling_period, ==, want->tek.rolling_period);
        g_assert_cmpint(got->transmission_risk_level, ==, want->transmission_risk_level);
        g_assert_cmpint(got->report_type, ==, want->report_type);
        g_assert_cmpint(got->has_days_since_onset, ==, want->has_days_since_onset);
        g_assert_cmpint(got->days_since_onset, ==, want->days_since_onset);
    }
}

static void test_round_trip_ed25519(void)
{
    g_autoptr(ProxExportSigner) signer = test_ed25519_signer();
    g_autoptr(ProxExportKeyring) keyring = test_ed25519_keyring();
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = g_dir_make_tmp("test-export-XXXXXX", &error);
    g_assert_no_error(error);
    g_autofree char *path = g_build_filename(dir, "batch.zip", NULL);

    g_assert_true(prox_export_write(path, &round_trip_meta, round_trip_keys,
                                    G_N_ELEMENTS(round_trip_keys), signer, &error));
    g_assert_no_error(error);
    g_autoptr(ProxExport) export = NULL;
    g_assert_true(prox_export_read(path, keyring, &export, &error));
    g_assert_no_error(error);
    assert_round_trip(export);
    g_assert_cmpstr(export->signer_key_id, ==, TEST_KEY_ID);
    g_assert_cmpstr(export->signer_key_version, ==, TEST_KEY_VERSION);
    g_assert_cmpstr(export->signature_algorithm, ==, PROX_EXPORT_ALGORITHM_ED25519);

    /* Ed25519 and a fixed zip time: the same input gives the same file. */
    g_autoptr(GBytes) on_disk = file_bytes(path);
    g_autoptr(GBytes) again = prox_export_build(&round_trip_meta, round_trip_keys,
                                                G_N_ELEMENTS(round_trip_keys), signer, &error);
    g_assert_no_error(error);
    g_assert_true(g_bytes_equal(on_disk, again));

    /* The sample's ECDSA key does not accept it. */
    g_autoptr(ProxExportKeyring) sample = sample_keyring();
    assert_read_fails(on_disk, sample, PROX_ERROR_SIGNATURE, NULL);

    /* Overwriting goes through a rename: the old file is replaced whole. */
    g_assert_true(prox_export_write(path, &round_trip_meta, round_trip_keys, 1, signer, &error));
    g_assert_no_error(error);
    g_autoptr(ProxExport) one = NULL;
    g_assert_true(prox_export_read(path, keyring, &one, &error));
    g_assert_cmpuint(one->keys->len, ==, 1);

    /* An empty list is valid too. */
    g_autoptr(GBytes) empty = prox_export_build(&round_trip_meta, NULL, 0, signer, &error);
    g_assert_no_error(error);
    g_autoptr(ProxExport) none = read_ok(empty, keyring);
    g_assert_cmpuint(none->keys->len, ==, 0);

    g_assert_cmpint(g_unlink(path), ==, 0);
    g_assert_cmpint(g_rmdir(dir), ==, 0);
}

static void test_round_trip_ecdsa(void)
{
    g_autofree char *private_pem = NULL;
    g_autofree char *public_pem = NULL;
    ecdsa_keypair_pem("P-256", &private_pem, &public_pem);
    g_autoptr(GError) error = NULL;
    g_autoptr(ProxExportSigner) signer =
        prox_export_signer_new_ecdsa_pem("310", "v2", private_pem, strlen(private_pem), &error);
    g_assert_no_error(error);
    g_assert_cmpint(prox_export_signer_key_type(signer), ==, PROX_EXPORT_KEY_ECDSA_P256);
    g_autoptr(ProxExportKeyring) keyring = prox_export_keyring_new();
    g_assert_true(
        prox_export_keyring_add_pem(keyring, "310", "v2", public_pem, strlen(public_pem), &error));

    g_autoptr(GBytes) zip = prox_export_build(&round_trip_meta, round_trip_keys,
                                              G_N_ELEMENTS(round_trip_keys), signer, &error);
    g_assert_no_error(error);
    g_autoptr(ProxExport) export = read_ok(zip, keyring);
    assert_round_trip(export);
    g_assert_cmpstr(export->signature_algorithm, ==, PROX_EXPORT_ALGORITHM_ECDSA_P256_SHA256);
    g_assert_cmpstr(export->signer_key_id, ==, "310");

    /* An Ed25519 key under the same id does not accept an ECDSA signature. */
    g_autoptr(ProxExportKeyring) ed = prox_export_keyring_new();
    guint8 pk[PROX_ED25519_PUBLIC_KEY_LEN];
    guint8 sk[PROX_ED25519_SECRET_KEY_LEN];
    test_ed25519_keypair(pk, sk);
    g_assert_true(prox_export_keyring_add_ed25519(ed, "310", "v2", pk, NULL));
    assert_read_fails(zip, ed, PROX_ERROR_SIGNATURE, "algorithm");
}

static void test_writer_rejects(void)
{
    g_autoptr(ProxExportSigner) signer = test_ed25519_signer();
    ProxDiagnosisKey keys[2] = {round_trip_keys[0], round_trip_keys[1]};
    g_autoptr(GError) error = NULL;
    GBytes *zip;

    keys[1].tek.rolling_period = 0;
    zip = prox_export_build(&round_trip_meta, keys, 2, signer, &error);
    g_assert_null(zip);
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull(strstr(error->message, "key 1: rolling_period"));
    g_clear_error(&error);

    keys[1] = round_trip_keys[1];
    keys[0].transmission_risk_level = 9;
    zip = prox_export_build(&round_trip_meta, keys, 2, signer, &error);
    g_assert_null(zip);
    g_assert_nonnull(strstr(error->message, "key 0: transmission_risk_level"));
    g_clear_error(&error);

    keys[0] = round_trip_keys[0];
    keys[0].report_type = (ProxReportType)6;
    zip = prox_export_build(&round_trip_meta, keys, 2, signer, &error);
    g_assert_null(zip);
    g_assert_nonnull(strstr(error->message, "key 0: report_type"));
    g_clear_error(&error);

    ProxExportMeta meta = round_trip_meta;
    meta.start_timestamp = meta.end_timestamp + 1;
    zip = prox_export_build(&meta, round_trip_keys, 1, signer, &error);
    g_assert_null(zip);
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);

    meta = round_trip_meta;
    meta.batch_num = 4;
    zip = prox_export_build(&meta, round_trip_keys, 1, signer, &error);
    g_assert_null(zip);
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);

    /* A failed write leaves no file behind. */
    g_autofree char *dir = g_dir_make_tmp("test-export-XXXXXX", &error);
    g_autofree char *path = g_build_filename(dir, "x.zip", NULL);
    g_assert_false(prox_export_write(path, &meta, round_trip_keys, 1, signer, &error));
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    g_clear_error(&error);
    g_assert_cmpint(g_rmdir(dir), ==, 0);
}

/* ---- content checks, on files signed correctly so that only the content is at fault ---- */

static void test_default_rolling_period_and_revised(void)
{
    g_autoptr(ProxExportKeyring) keyring = test_ed25519_keyring();
    TemporaryExposureKey keys[3];
    TemporaryExposureKey *ptrs[3];
    for (guint i = 0; i < 3; i++)
        key_message_init(&keys[i], i);
    TemporaryExposureKeyExport m;
    export_message_init(&m, ptrs, keys, 2);
    keys[0].has_rolling_period = TRUE;
    keys[0].rolling_period = 1;
    /* keys[1] has no rolling_period: GAEN's default is 144. */
    keys[2].has_rolling_period = TRUE;
    keys[2].rolling_period = 114;
    keys[2].has_report_type = TRUE;
    keys[2].report_type = TEMPORARY_EXPOSURE_KEY__REPORT_TYPE__REVOKED;
    ptrs[2] = &keys[2];
    m.n_revised_keys = 1;
    m.revised_keys = &ptrs[2];

    g_autoptr(GBytes) zip = signed_zip(&m);
    g_autoptr(ProxExport) export = read_ok(zip, keyring);
    g_assert_cmpuint(export->keys->len, ==, 3);
    g_assert_cmpuint(export->n_revised, ==, 1);
    g_assert_cmpuint(key_at(export, 0)->tek.rolling_period, ==, 1);
    g_assert_cmpuint(key_at(export, 1)->tek.rolling_period, ==, 144);
    g_assert_cmpuint(key_at(export, 2)->tek.rolling_period, ==, 114);
    g_assert_cmpint(key_at(export, 2)->report_type, ==, PROX_REPORT_REVOKED);
    g_assert_false(prox_export_key_is_revised(export, 0));
    g_assert_false(prox_export_key_is_revised(export, 1));
    g_assert_true(prox_export_key_is_revised(export, 2));
    g_assert_false(prox_export_key_is_revised(export, 3));
    g_assert_cmpmem(key_at(export, 2)->tek.key, PROX_KEY_LEN, key_bytes[2], PROX_KEY_LEN);
}

typedef void (*MessageMutator)(TemporaryExposureKeyExport *m, TemporaryExposureKey *keys);

static void mutate_key_15_bytes(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    k[1].key_data.len = 15;
}
static void mutate_key_17_bytes(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    static guint8 long_key[17];
    k[1].key_data.data = long_key;
    k[1].key_data.len = 17;
}
static void mutate_key_missing(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    k[1].has_key_data = FALSE;
}
static void mutate_period_0(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    k[1].has_rolling_period = TRUE;
    k[1].rolling_period = 0;
}
static void mutate_period_145(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    k[1].has_rolling_period = TRUE;
    k[1].rolling_period = 145;
}
static void mutate_start_negative(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    k[1].rolling_start_interval_number = -1;
}
static void mutate_start_missing(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    k[1].has_rolling_start_interval_number = FALSE;
}
static void mutate_report_type(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    k[1].has_report_type = TRUE;
    k[1].report_type = (TemporaryExposureKey__ReportType)6;
}
static void mutate_risk_9(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    k[1].has_transmission_risk_level = TRUE;
    k[1].transmission_risk_level = 9;
}
static void mutate_risk_negative(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    k[1].has_transmission_risk_level = TRUE;
    k[1].transmission_risk_level = -1;
}
static void mutate_revised_invalid(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    static TemporaryExposureKey *revised[1];
    revised[0] = &k[2];
    k[2].has_rolling_period = TRUE;
    k[2].rolling_period = 200;
    m->n_revised_keys = 1;
    m->revised_keys = revised;
}
static void mutate_start_after_end(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    m->start_timestamp = m->end_timestamp + 1;
}
static void mutate_no_end(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    m->has_end_timestamp = FALSE;
}
static void mutate_timestamp_huge(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    m->end_timestamp = G_MAXUINT64;
}
static void mutate_batch_0(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    m->batch_num = 0;
}
static void mutate_batch_over(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    m->batch_num = 2;
}
static void mutate_no_batch(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    m->has_batch_size = FALSE;
}
static void mutate_region_control(TemporaryExposureKeyExport *m, TemporaryExposureKey *k)
{
    m->region = (char *)"V\033[2JN";
}

static void test_invalid_content(void)
{
    static const struct {
        MessageMutator mutate;
        const char *needle;
    } cases[] = {
        {mutate_key_15_bytes, "key 1: key_data is 15 bytes"},
        {mutate_key_17_bytes, "key 1: key_data is 17 bytes"},
        {mutate_key_missing, "key 1: key_data is 0 bytes"},
        {mutate_period_0, "key 1: rolling_period 0"},
        {mutate_period_145, "key 1: rolling_period 145"},
        {mutate_start_negative, "key 1: rolling_start_interval_number -1"},
        {mutate_start_missing, "key 1: rolling_start_interval_number missing"},
        {mutate_report_type, "key 1: report_type 6"},
        {mutate_risk_9, "key 1: transmission_risk_level 9"},
        {mutate_risk_negative, "key 1: transmission_risk_level -1"},
        {mutate_revised_invalid, "revised key 0: rolling_period 200"},
        {mutate_start_after_end, "is after end_timestamp"},
        {mutate_no_end, "lacks start_timestamp or end_timestamp"},
        {mutate_timestamp_huge, "out of range"},
        {mutate_batch_0, "batch_num"},
        {mutate_batch_over, "batch_num"},
        {mutate_no_batch, "batch_num"},
        {mutate_region_control, "region"},
    };
    g_autoptr(ProxExportKeyring) keyring = test_ed25519_keyring();
    for (guint c = 0; c < G_N_ELEMENTS(cases); c++) {
        TemporaryExposureKey keys[3];
        TemporaryExposureKey *ptrs[3];
        for (guint i = 0; i < 3; i++)
            key_message_init(&keys[i], i);
        TemporaryExposureKeyExport m;
        export_message_init(&m, ptrs, keys, 2);
        cases[c].mutate(&m, keys);
        g_autoptr(GBytes) zip = signed_zip(&m);
        /* Signed by the trusted key and still refused, with or without the signature check. */
        assert_read_fails(zip, keyring, PROX_ERROR_MALFORMED, cases[c].needle);
        assert_read_fails(zip, NULL, PROX_ERROR_MALFORMED, cases[c].needle);
    }
}

static void test_signature_list_checks(void)
{
    g_autoptr(ProxExportKeyring) keyring = test_ed25519_keyring();
    TemporaryExposureKey keys[2];
    TemporaryExposureKey *ptrs[2];
    for (guint i = 0; i < 2; i++)
        key_message_init(&keys[i], i);
    TemporaryExposureKeyExport m;
    export_message_init(&m, ptrs, keys, 2);
    g_autoptr(GBytes) bin = export_bin_from(&m);

    struct {
        SigSpec specs[2];
        guint n;
        gint code; /* -1: verifies */
        const char *needle;
    } cases[] = {
        {{good_sig}, 1, -1, NULL},
        {{{TEST_KEY_ID, TEST_KEY_VERSION, PROX_EXPORT_ALGORITHM_ED25519, TRUE, 2, 3, FALSE}},
         1,
         PROX_ERROR_SIGNATURE,
         "batch 2/3 does not match"},
        {{{TEST_KEY_ID, TEST_KEY_VERSION, PROX_EXPORT_ALGORITHM_ED25519, FALSE, 0, 0, FALSE}},
         1,
         PROX_ERROR_SIGNATURE,
         "batch"},
        {{{TEST_KEY_ID, TEST_KEY_VERSION, PROX_EXPORT_ALGORITHM_ED25519, TRUE, 1, 1, TRUE}},
         1,
         PROX_ERROR_SIGNATURE,
         "does not verify"},
        {{{TEST_KEY_ID, TEST_KEY_VERSION, PROX_EXPORT_ALGORITHM_ECDSA_P256_SHA256, TRUE, 1, 1,
           FALSE}},
         1,
         PROX_ERROR_SIGNATURE,
         "algorithm"},
        {{{TEST_KEY_ID, TEST_KEY_VERSION, "1.2.3", TRUE, 1, 1, FALSE}},
         1,
         PROX_ERROR_SIGNATURE,
         "algorithm"},
        {{{"someone", TEST_KEY_VERSION, PROX_EXPORT_ALGORITHM_ED25519, TRUE, 1, 1, FALSE}},
         1,
         PROX_ERROR_SIGNATURE,
         "no signature by a pinned key (export.sig names: someone-v1)"},
        {{{NULL, TEST_KEY_VERSION, PROX_EXPORT_ALGORITHM_ED25519, TRUE, 1, 1, FALSE}},
         1,
         PROX_ERROR_SIGNATURE,
         "no signature"},
        {{}, 0, PROX_ERROR_SIGNATURE, "holds no signature"},
        /* An untrusted or broken signature next to a valid trusted one does not matter. */
        {{{"someone", "v9", PROX_EXPORT_ALGORITHM_ED25519, TRUE, 1, 1, FALSE}, good_sig},
         2,
         -1,
         NULL},
        {{{TEST_KEY_ID, TEST_KEY_VERSION, PROX_EXPORT_ALGORITHM_ED25519, TRUE, 1, 1, TRUE},
          good_sig},
         2,
         -1,
         NULL},
    };
    for (guint c = 0; c < G_N_ELEMENTS(cases); c++) {
        g_autoptr(GBytes) sig = export_sig_for(bin, cases[c].specs, cases[c].n);
        g_autoptr(GBytes) zip = pack(bin, sig);
        if (cases[c].code < 0) {
            g_autoptr(ProxExport) export = read_ok(zip, keyring);
            g_assert_cmpuint(export->keys->len, ==, 2);
        } else {
            assert_read_fails(zip, keyring, cases[c].code, cases[c].needle);
        }
    }

    /* Many bad signatures naming the pinned key: checking stops before the good one. */
    SigSpec many[10];
    for (guint i = 0; i < 9; i++) {
        many[i] = good_sig;
        many[i].corrupt = TRUE;
    }
    many[9] = good_sig;
    g_autoptr(GBytes) many_sig = export_sig_for(bin, many, 10);
    g_autoptr(GBytes) many_zip = pack(bin, many_sig);
    assert_read_fails(many_zip, keyring, PROX_ERROR_SIGNATURE, "more than 8 signatures");
    g_autoptr(GBytes) eight_sig = export_sig_for(bin, many + 2, 8);
    g_autoptr(GBytes) eight_zip = pack(bin, eight_sig);
    g_autoptr(ProxExport) eighth = read_ok(eight_zip, keyring);
    g_assert_cmpuint(eighth->keys->len, ==, 2);

    /* export.sig that is not a protobuf. */
    g_autoptr(GBytes) junk = g_bytes_new_static("\xff\xff\xff", 3);
    g_autoptr(GBytes) junk_zip = pack(bin, junk);
    assert_read_fails(junk_zip, keyring, PROX_ERROR_MALFORMED, "export.sig does not parse");

    /* A valid signature over bytes that are not a protobuf after the header. */
    guint8 garbage[PROX_EXPORT_HEADER_LEN + 4];
    memcpy(garbage, PROX_EXPORT_HEADER, PROX_EXPORT_HEADER_LEN);
    memcpy(garbage + PROX_EXPORT_HEADER_LEN, "\x0a\xff\xff\x01", 4);
    g_autoptr(GBytes) garbage_bin = g_bytes_new(garbage, sizeof garbage);
    g_autoptr(GBytes) garbage_sig = export_sig_for(garbage_bin, &good_sig, 1);
    g_autoptr(GBytes) garbage_zip = pack(garbage_bin, garbage_sig);
    assert_read_fails(garbage_zip, keyring, PROX_ERROR_MALFORMED, "export.bin does not parse");
}

static void test_header(void)
{
    g_autoptr(ProxExportKeyring) keyring = test_ed25519_keyring();
    TemporaryExposureKey keys[1];
    TemporaryExposureKey *ptrs[1];
    key_message_init(&keys[0], 0);
    TemporaryExposureKeyExport m;
    export_message_init(&m, ptrs, keys, 1);
    g_autoptr(GBytes) bin = export_bin_from(&m);
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(bin, &len);

    static const char *const bad_headers[] = {
        "EK Export v2    ",
        "EK Export v1\0\0\0\0",
        "ek export v1    ",
        "EK Export v1   \t",
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad_headers); i++) {
        guint8 *copy = g_memdup2(data, len);
        memcpy(copy, bad_headers[i], PROX_EXPORT_HEADER_LEN);
        g_autoptr(GBytes) bad = g_bytes_new_take(copy, len);
        g_autoptr(GBytes) sig = export_sig_for(bad, &good_sig, 1);
        g_autoptr(GBytes) zip = pack(bad, sig);
        assert_read_fails(zip, keyring, PROX_ERROR_MALFORMED, "header");
        assert_read_fails(zip, NULL, PROX_ERROR_MALFORMED, "header");
    }
    /* Shorter than the header, including empty. */
    for (gsize n = 0; n < PROX_EXPORT_HEADER_LEN; n++) {
        g_autoptr(GBytes) shortened = g_bytes_new(PROX_EXPORT_HEADER, n);
        g_autoptr(GBytes) sig = export_sig_for(shortened, &good_sig, 1);
        g_autoptr(GBytes) zip = pack(shortened, sig);
        assert_read_fails(zip, keyring, PROX_ERROR_MALFORMED, "header");
    }
}

/* protobuf-c allocates per element: a file of empty key messages must not cost gigabytes,
 * while a large list of minimal real keys still reads. */
static void test_unpack_budget(void)
{
    gsize n_empty = 1024 * 1024;
    gsize len = PROX_EXPORT_HEADER_LEN + 2 * n_empty;
    guint8 *bin = g_malloc(len);
    memcpy(bin, PROX_EXPORT_HEADER, PROX_EXPORT_HEADER_LEN);
    for (gsize i = 0; i < n_empty; i++) {
        bin[PROX_EXPORT_HEADER_LEN + 2 * i] = 0x3a; /* field 7 (keys), length-delimited */
        bin[PROX_EXPORT_HEADER_LEN + 2 * i + 1] = 0x00;
    }
    g_autoptr(GBytes) empty_keys = g_bytes_new_take(bin, len);
    g_autoptr(GBytes) zip = pack(empty_keys, NULL);
    assert_read_fails(zip, NULL, PROX_ERROR_MALFORMED, "export.bin does not parse");

    /* 50 000 keys with only key data and rolling start (about 26 bytes each). */
    guint n = 50000;
    TemporaryExposureKey *keys = g_new(TemporaryExposureKey, n);
    TemporaryExposureKey **ptrs = g_new(TemporaryExposureKey *, n);
    guint8 *key_data = g_malloc((gsize)n * PROX_KEY_LEN);
    for (guint i = 0; i < n; i++) {
        temporary_exposure_key__init(&keys[i]);
        memset(key_data + (gsize)i * PROX_KEY_LEN, (int)(i & 0xff), PROX_KEY_LEN);
        keys[i].has_key_data = TRUE;
        keys[i].key_data.data = key_data + (gsize)i * PROX_KEY_LEN;
        keys[i].key_data.len = PROX_KEY_LEN;
        keys[i].has_rolling_start_interval_number = TRUE;
        keys[i].rolling_start_interval_number = 2650000;
    }
    TemporaryExposureKeyExport m;
    export_message_init(&m, ptrs, keys, n);
    g_autoptr(ProxExportKeyring) keyring = test_ed25519_keyring();
    g_autoptr(GBytes) big = signed_zip(&m);
    g_autoptr(ProxExport) export = read_ok(big, keyring);
    g_assert_cmpuint(export->keys->len, ==, n);
    g_assert_cmpuint(key_at(export, n - 1)->tek.rolling_period, ==, 144);
    g_free(key_data);
    g_free(ptrs);
    g_free(keys);
}

/* ---- the zip container ---- */

/* Offsets of the uncompressed-size fields of `name` in a zip we wrote ourselves (local
 * header at 22, central directory entry at 24). */
static void patch_uncompressed_size(guint8 *zip, gsize len, const char *name, guint32 size)
{
    gsize name_len = strlen(name);
    guint patched = 0;
    for (gsize i = 0; i + 46 + name_len <= len; i++) {
        gsize field = 0;
        gsize name_at = 0;
        if (memcmp(zip + i, "PK\x03\x04", 4) == 0) {
            field = i + 22;
            name_at = i + 30;
        } else if (memcmp(zip + i, "PK\x01\x02", 4) == 0) {
            field = i + 24;
            name_at = i + 46;
        } else {
            continue;
        }
        if (memcmp(zip + name_at, name, name_len) != 0)
            continue;
        guint32 le = GUINT32_TO_LE(size);
        memcpy(zip + field, &le, 4);
        patched++;
    }
    g_assert_cmpuint(patched, ==, 2);
}

static void test_container(void)
{
    g_autoptr(ProxExportKeyring) keyring = sample_keyring();
    g_autoptr(GBytes) zip = sample_zip();
    gsize zip_len = 0;
    const guint8 *zip_data = g_bytes_get_data(zip, &zip_len);

    /* Every truncation of the sample fails. */
    for (gsize n = 0; n < zip_len; n++) {
        g_autoptr(GBytes) truncated = g_bytes_new(zip_data, n);
        assert_read_fails(truncated, keyring, -1, NULL);
    }
    /* Not a zip. */
    g_autoptr(GBytes) text = g_bytes_new_static("EK Export v1    hello", 21);
    assert_read_fails(text, keyring, PROX_ERROR_IO, "zip");
    g_autofree char *missing_path = gaen_path("no-such-file.zip");
    g_autoptr(ProxExport) none = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_false(prox_export_read(missing_path, keyring, &none, &error));
    g_assert_null(none);
    g_assert_error(error, PROX_ERROR, PROX_ERROR_IO);
    g_assert_nonnull(strstr(error->message, "no-such-file.zip"));
    g_clear_error(&error);

    g_autoptr(GBytes) bin = unzip_entry(zip, "export.bin");
    g_autoptr(GBytes) sig = unzip_entry(zip, "export.sig");

    /* export.sig missing: unverifiable, yet dump can still read it. */
    g_autoptr(GBytes) no_sig = pack(bin, NULL);
    assert_read_fails(no_sig, keyring, PROX_ERROR_IO, "zip has no export.sig");
    g_autoptr(ProxExport) dumped = NULL;
    gsize no_sig_len = 0;
    const guint8 *no_sig_data = g_bytes_get_data(no_sig, &no_sig_len);
    g_assert_true(prox_export_read_bytes_unverified(no_sig_data, no_sig_len, &dumped, NULL));
    g_assert_cmpuint(dumped->keys->len, ==, 2);

    /* export.bin missing: a zip of export.sig alone (renamed in the raw bytes). */
    g_autoptr(GBytes) two = pack(sig, sig);
    gsize two_len = g_bytes_get_size(two);
    guint8 *renamed = g_memdup2(g_bytes_get_data(two, NULL), two_len);
    for (gsize i = 0; i + 10 <= two_len; i++) {
        if (memcmp(renamed + i, "export.bin", 10) == 0)
            memcpy(renamed + i, "export.xyz", 10);
    }
    g_autoptr(GBytes) no_bin = g_bytes_new_take(renamed, two_len);
    assert_read_fails(no_bin, keyring, PROX_ERROR_IO, "zip has no export.bin");

    /* Two entries named export.bin: refused, whichever one a reader would pick. */
    g_autoptr(GBytes) pair = pack(bin, bin);
    gsize pair_len = g_bytes_get_size(pair);
    guint8 *dup = g_memdup2(g_bytes_get_data(pair, NULL), pair_len);
    for (gsize i = 0; i + 10 <= pair_len; i++) {
        if (memcmp(dup + i, "export.sig", 10) == 0)
            memcpy(dup + i, "export.bin", 10);
    }
    g_autoptr(GBytes) duplicated = g_bytes_new_take(dup, pair_len);
    assert_read_fails(duplicated, keyring, PROX_ERROR_IO, NULL);

    /* A declared size over the limit is refused before anything is read or allocated. */
    g_autoptr(GBytes) good = pack(bin, sig);
    gsize good_len = 0;
    const guint8 *good_data = g_bytes_get_data(good, &good_len);
    guint8 *huge = g_memdup2(good_data, good_len);
    patch_uncompressed_size(huge, good_len, "export.bin", 0x7fffffff);
    g_autoptr(GBytes) huge_zip = g_bytes_new_take(huge, good_len);
    assert_read_fails(huge_zip, keyring, PROX_ERROR_IO, "more than the limit of 67108864");

    /* A declared size below the real one: the extra data is noticed. */
    guint8 *lying = g_memdup2(good_data, good_len);
    patch_uncompressed_size(lying, good_len, "export.bin", (guint32)g_bytes_get_size(bin) - 1);
    g_autoptr(GBytes) lying_zip = g_bytes_new_take(lying, good_len);
    assert_read_fails(lying_zip, keyring, PROX_ERROR_IO, "export.bin");

    /* A real export.sig one byte over its limit. */
    gsize big_len = PROX_EXPORT_SIG_MAX + 1;
    g_autoptr(GBytes) big_sig = g_bytes_new_take(g_malloc0(big_len), big_len);
    g_autoptr(GBytes) big_zip = pack(bin, big_sig);
    assert_read_fails(big_zip, keyring, PROX_ERROR_IO, "export.sig is 65537 bytes");

    g_autoptr(ProxExport) export = read_ok(good, keyring);
    g_assert_cmpuint(export->keys->len, ==, 2);

    /* The entries without their zip: same checks, same limits. */
    gsize bin_len = 0;
    gsize sig_len = 0;
    const guint8 *bin_data = g_bytes_get_data(bin, &bin_len);
    const guint8 *sig_data = g_bytes_get_data(sig, &sig_len);
    g_autoptr(ProxExport) entries = NULL;
    g_assert_true(
        prox_export_read_entries(bin_data, bin_len, sig_data, sig_len, keyring, &entries, &error));
    g_assert_no_error(error);
    assert_sample_keys(entries);
    ProxExport *refused = NULL;
    g_assert_false(prox_export_read_entries(bin_data, bin_len, g_bytes_get_data(big_sig, NULL),
                                            big_len, keyring, &refused, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_IO);
    g_assert_null(refused);
    g_clear_error(&error);
    g_assert_false(prox_export_read_entries(bin_data, bin_len - 1, sig_data, sig_len, keyring,
                                            &refused, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_SIGNATURE);
    g_assert_null(refused);
}

/* ---- key files ---- */

static void write_text(const char *path, const char *text, int mode)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(
        g_file_set_contents_full(path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, mode, &error));
    g_assert_no_error(error);
    g_assert_cmpint(g_chmod(path, mode), ==, 0);
}

static void test_key_files(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = g_dir_make_tmp("test-export-XXXXXX", &error);
    g_autofree char *sec = g_build_filename(dir, "auth.sec", NULL);
    g_autofree char *pub = g_build_filename(dir, "auth.pub", NULL);

    g_assert_true(prox_export_ed25519_keygen("authority", "v1", sec, pub, &error));
    g_assert_no_error(error);
    GStatBuf st;
    g_assert_cmpint(g_stat(sec, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 0777, ==, 0600);

    g_autofree char *key_id = NULL;
    g_autofree char *version = NULL;
    guint8 pk[PROX_ED25519_PUBLIC_KEY_LEN];
    g_assert_true(prox_export_ed25519_public_load(pub, &key_id, &version, pk, &error));
    g_assert_cmpstr(key_id, ==, "authority");
    g_assert_cmpstr(version, ==, "v1");

    g_autoptr(ProxExportSigner) signer = prox_export_signer_load_ed25519(sec, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(prox_export_signer_key_id(signer), ==, "authority");
    g_autoptr(ProxExportSigner) signer2 = prox_export_signer_load_file(sec, NULL, NULL, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(prox_export_signer_key_version(signer2), ==, "v1");
    g_assert_cmpint(prox_export_signer_key_type(signer2), ==, prox_export_signer_key_type(signer));

    /* The public file pins its own id and version. */
    g_autoptr(ProxExportKeyring) keyring = prox_export_keyring_new();
    g_assert_true(prox_export_keyring_add_file(keyring, NULL, NULL, pub, &error));
    g_autoptr(GBytes) zip = prox_export_build(&round_trip_meta, round_trip_keys, 2, signer, &error);
    g_assert_no_error(error);
    g_autoptr(ProxExport) export = read_ok(zip, keyring);
    g_assert_cmpstr(export->signer_key_id, ==, "authority");
    g_autoptr(ProxExportKeyring) renamed = prox_export_keyring_new();
    g_assert_true(prox_export_keyring_add_file(renamed, "other", "v1", pub, &error));
    assert_read_fails(zip, renamed, PROX_ERROR_SIGNATURE, "no signature by a pinned key");

    /* Never overwrite: the existing pair stays intact. */
    g_assert_false(prox_export_ed25519_keygen("authority", "v2", sec, pub, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_IO);
    g_clear_error(&error);
    g_autoptr(ProxExportSigner) still = prox_export_signer_load_ed25519(sec, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(prox_export_signer_key_version(still), ==, "v1");
    g_autofree char *pub2 = g_build_filename(dir, "new.pub", NULL);
    g_assert_false(prox_export_ed25519_keygen("authority", "v2", sec, pub2, &error));
    g_assert_false(g_file_test(pub2, G_FILE_TEST_EXISTS));
    g_clear_error(&error);
    g_assert_false(prox_export_ed25519_keygen("has space", "v2", sec, pub2, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);

    /* A secret key readable by others is refused. */
    g_assert_cmpint(g_chmod(sec, 0640), ==, 0);
    g_assert_null(prox_export_signer_load_ed25519(sec, &error));
    g_assert_nonnull(strstr(error->message, "chmod 600"));
    g_clear_error(&error);
    g_assert_cmpint(g_chmod(sec, 0600), ==, 0);

    /* A secret key given where a public one is expected. */
    g_assert_false(prox_export_keyring_add_file(keyring, NULL, NULL, sec, &error));
    g_assert_nonnull(strstr(error->message, "secret key"));
    g_clear_error(&error);

    /* Malformed public key files. */
    g_autofree char *bad = g_build_filename(dir, "bad.pub", NULL);
    static const char *const bad_texts[] = {
        "",
        "proxd-ed25519-public a v1\n",
        "proxd-ed25519-public a v1 AAAA\n",
        "proxd-ed25519-secret a v1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "proxd-ed25519-public a v1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
        "proxd-ed25519-public a v1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA*=\n",
        "proxd-ed25519-public a v1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= extra\n",
        /* two key lines in one file */
        ("proxd-ed25519-public a v1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
         "proxd-ed25519-public b v1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"),
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad_texts); i++) {
        write_text(bad, bad_texts[i], 0644);
        g_autofree char *id = NULL;
        g_autofree char *ver = NULL;
        g_assert_false(prox_export_ed25519_public_load(bad, &id, &ver, pk, &error));
        g_assert_nonnull(error);
        g_clear_error(&error);
        g_assert_false(prox_export_keyring_add_file(keyring, NULL, NULL, bad, &error));
        g_clear_error(&error);
    }
    /* Comments and blank lines around the key line are fine. */
    write_text(bad,
               "# authority key\n\nproxd-ed25519-public a v1 "
               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n",
               0644);
    g_autofree char *id = NULL;
    g_autofree char *ver = NULL;
    gboolean loaded = prox_export_ed25519_public_load(bad, &id, &ver, pk, &error);
    g_assert_no_error(error);
    g_assert_true(loaded);
    g_assert_cmpstr(id, ==, "a");

    /* A secret key whose halves disagree. */
    guint8 sk[PROX_ED25519_SECRET_KEY_LEN];
    test_ed25519_keypair(pk, sk);
    sk[40] ^= 1;
    g_assert_null(prox_export_signer_new_ed25519("a", "v1", sk, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_MALFORMED);
    g_clear_error(&error);

    /* PEM: P-384, junk, and a private key where a public one belongs are refused. */
    g_autofree char *p384_private = NULL;
    g_autofree char *p384_public = NULL;
    ecdsa_keypair_pem("P-384", &p384_private, &p384_public);
    g_assert_false(
        prox_export_keyring_add_pem(keyring, "a", "1", p384_public, strlen(p384_public), &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_UNSUPPORTED);
    g_clear_error(&error);
    g_assert_null(
        prox_export_signer_new_ecdsa_pem("a", "1", p384_private, strlen(p384_private), &error));
    g_clear_error(&error);
    g_assert_false(prox_export_keyring_add_pem(keyring, "a", "1", "junk", 4, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_MALFORMED);
    g_clear_error(&error);
    g_autofree char *p256_private = NULL;
    g_autofree char *p256_public = NULL;
    ecdsa_keypair_pem("P-256", &p256_private, &p256_public);
    g_assert_false(
        prox_export_keyring_add_pem(keyring, "a", "1", p256_private, strlen(p256_private), &error));
    g_clear_error(&error);
    /* Only one of id and version is not a valid pin. */
    g_assert_false(
        prox_export_keyring_add_pem(keyring, "a", NULL, p256_public, strlen(p256_public), &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);

    /* PEM private key files: mode checked, id and version required. */
    g_autofree char *pem_sec = g_build_filename(dir, "ecdsa.pem", NULL);
    write_text(pem_sec, p256_private, 0600);
    g_assert_null(prox_export_signer_load_file(pem_sec, NULL, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
    g_autoptr(ProxExportSigner) ecdsa = prox_export_signer_load_file(pem_sec, "e", "1", &error);
    g_assert_no_error(error);
    g_assert_cmpint(prox_export_signer_key_type(ecdsa), ==, PROX_EXPORT_KEY_ECDSA_P256);
    g_assert_null(prox_export_signer_load_file(sec, "x", "1", &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);

    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    for (const char *name; (name = g_dir_read_name(d)) != NULL;) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_assert_cmpint(g_unlink(path), ==, 0);
    }
    g_assert_cmpint(g_rmdir(dir), ==, 0);
}

/* ---- prox-tool export ---- */

/* Runs $PROX_TOOL with args (NULL-terminated); returns its exit status. */
static int run_toolv(const char *const *args, char **out, char **err)
{
    const char *tool = g_getenv("PROX_TOOL");
    g_assert_nonnull(tool);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_ptr_array_add(argv, (char *)tool);
    for (guint i = 0; args[i] != NULL; i++)
        g_ptr_array_add(argv, (char *)args[i]);
    g_ptr_array_add(argv, NULL);
    int status = 0;
    g_autoptr(GError) error = NULL;
    g_autofree char *stdout_text = NULL;
    g_autofree char *stderr_text = NULL;
    g_assert_true(g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                               &stdout_text, &stderr_text, &status, &error));
    g_assert_no_error(error);
    g_assert_true(WIFEXITED(status));
    if (out != NULL)
        *out = g_steal_pointer(&stdout_text);
    if (err != NULL)
        *err = g_steal_pointer(&stderr_text);
    return WEXITSTATUS(status);
}

static int run_tool(char **out, char **err, const char *first, ...)
{
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL; a = va_arg(ap, const char *))
        g_ptr_array_add(args, (char *)a);
    va_end(ap);
    g_ptr_array_add(args, NULL);
    return run_toolv((const char *const *)args->pdata, out, err);
}

static guint count_lines(const char *text)
{
    guint n = 0;
    for (const char *p = text; *p != '\0'; p++)
        n += *p == '\n';
    return n;
}

static void test_tool(void)
{
    if (g_getenv("PROX_TOOL") == NULL) {
        g_test_skip("PROX_TOOL not set");
        return;
    }
    g_autofree char *sample = gaen_path(SAMPLE_ZIP);
    g_autofree char *pem = gaen_path("ens-public.pem");
    g_autofree char *json = gaen_path("ens-keys.json");
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = g_dir_make_tmp("test-export-XXXXXX", &error);
    g_autofree char *prefix = g_build_filename(dir, "auth", NULL);
    g_autofree char *sec = g_build_filename(dir, "auth.sec", NULL);
    g_autofree char *pub = g_build_filename(dir, "auth.pub", NULL);
    g_autofree char *zip = g_build_filename(dir, "list.zip", NULL);
    char *out = NULL;
    char *err = NULL;

    /* The published sample. */
    g_assert_cmpint(run_tool(&out, NULL, "export", "verify", sample, "--key", pem, NULL), ==, 0);
    g_assert_nonnull(strstr(out, "signed by some_id-1"));
    g_free(out);
    g_assert_cmpint(run_tool(NULL, NULL, "export", "verify", sample, "--key", pem, "--key-id",
                             "some_id", "--key-version", "1", NULL),
                    ==, 0);
    g_assert_cmpint(run_tool(NULL, &err, "export", "verify", sample, "--key", pem, "--key-id",
                             "some_id", "--key-version", "2", NULL),
                    ==, 1);
    g_assert_nonnull(strstr(err, "no signature by a pinned key"));
    g_free(err);

    /* keygen, sign, verify, dump. */
    g_assert_cmpint(run_tool(NULL, NULL, "export", "keygen", "--key-id", "authority",
                             "--key-version", "v1", "--out", prefix, NULL),
                    ==, 0);
    g_assert_true(g_file_test(sec, G_FILE_TEST_IS_REGULAR));
    g_assert_true(g_file_test(pub, G_FILE_TEST_IS_REGULAR));
    g_assert_cmpint(run_tool(NULL, &err, "export", "keygen", "--key-id", "authority",
                             "--key-version", "v1", "--out", prefix, NULL),
                    ==, 1);
    g_free(err);
    g_assert_cmpint(run_tool(NULL, NULL, "export", "sign", "--key", sec, "--out", zip, "--region",
                             "VN", json, NULL),
                    ==, 0);
    g_assert_cmpint(run_tool(&out, NULL, "export", "verify", zip, "--key", pub, NULL), ==, 0);
    g_assert_nonnull(strstr(out, "signed by authority-v1 (Ed25519)"));
    g_free(out);
    g_assert_cmpint(run_tool(NULL, &err, "export", "verify", zip, "--key", pem, NULL), ==, 1);
    g_assert_nonnull(strstr(err, "algorithm"));
    g_free(err);

    g_assert_cmpint(run_tool(&out, NULL, "export", "dump", zip, NULL), ==, 0);
    g_autoptr(GArray) expected = sample_json_keys();
    g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
    g_free(out);
    guint key_lines = 0;
    for (guint i = 0; lines[i] != NULL; i++) {
        if (lines[i][0] == '#' || lines[i][0] == '\0')
            continue;
        key_lines++;
        gboolean known = FALSE;
        for (guint k = 0; k < expected->len; k++) {
            const JsonKey *want = &g_array_index(expected, JsonKey, k);
            g_autofree char *hex = prox_hex_dup(want->key, PROX_KEY_LEN);
            g_autofree char *line = g_strdup_printf("%s %" G_GINT64_FORMAT " %" G_GINT64_FORMAT
                                                    " %" G_GINT64_FORMAT " UNKNOWN - key",
                                                    hex, want->start, want->period, want->risk);
            known |= strcmp(lines[i], line) == 0;
        }
        g_assert_true(known);
    }
    g_assert_cmpuint(key_lines, ==, expected->len);
    g_assert_cmpint(run_tool(&out, NULL, "export", "dump", sample, NULL), ==, 0);
    g_assert_nonnull(strstr(out, "\n172fc480e598490c34177604339b1543 2649980 1 8 UNKNOWN - key\n"));
    g_assert_nonnull(
        strstr(out, "\n2b63053ac483238de176169e861f3dcd 2649866 114 1 UNKNOWN - key\n"));
    g_free(out);

    /* ECDSA signing through the tool. */
    g_autofree char *p256_private = NULL;
    g_autofree char *p256_public = NULL;
    ecdsa_keypair_pem("P-256", &p256_private, &p256_public);
    g_autofree char *ec_sec = g_build_filename(dir, "ec.key", NULL);
    g_autofree char *ec_pub = g_build_filename(dir, "ec.pem", NULL);
    g_autofree char *ec_zip = g_build_filename(dir, "ec.zip", NULL);
    write_text(ec_sec, p256_private, 0600);
    write_text(ec_pub, p256_public, 0644);
    g_assert_cmpint(
        run_tool(NULL, &err, "export", "sign", "--key", ec_sec, "--out", ec_zip, json, NULL), ==,
        2); /* a PEM key needs --key-id/--key-version */
    g_free(err);
    g_assert_cmpint(run_tool(NULL, NULL, "export", "sign", "--key", ec_sec, "--key-id", "310",
                             "--key-version", "v1", "--batch-num", "2", "--batch-size", "2",
                             "--start", "100", "--end", "200", "--out", ec_zip, json, NULL),
                    ==, 0);
    g_assert_cmpint(run_tool(&out, NULL, "export", "verify", ec_zip, "--key", ec_pub, NULL), ==, 0);
    g_assert_nonnull(strstr(out, "signed by 310-v1 (ECDSA P-256 SHA-256)"));
    g_assert_nonnull(strstr(out, "batch 2/2"));
    g_free(out);

    /* Invalid keys: the error names the key index and field; nothing is written. */
    g_autofree char *bad_json = g_build_filename(dir, "bad.json", NULL);
    g_autofree char *bad_zip = g_build_filename(dir, "bad.zip", NULL);
    static const struct {
        const char *json;
        const char *needle;
    } bad_keys[] = {
        {"{\"temporaryExposureKeys\": [{\"key\": \"Fy/EgOWYSQw0F3YEM5sVQw==\", "
         "\"rollingStartNumber\": 1}, {\"key\": \"K2MFOsSDI43hdhaehh89zQ==\", "
         "\"rollingStartNumber\": 2, \"rollingPeriod\": 0}]}",
         "key 1: rollingPeriod 0 outside 1..144"},
        {"{\"temporaryExposureKeys\": [{\"key\": \"Fy/EgOWYSQw0F3YEM5sV\", "
         "\"rollingStartNumber\": 1}]}",
         "key 0: key is missing or not the base64 of 16 bytes"},
        {"{\"temporaryExposureKeys\": [{\"key\": \"Fy/EgOWYSQw0F3YEM5sVQw==\"}]}",
         "key 0: rollingStartNumber is missing"},
        {"{\"temporaryExposureKeys\": [{\"key\": \"Fy/EgOWYSQw0F3YEM5sVQw==\", "
         "\"rollingStartNumber\": 1, \"transmissionRisk\": 9}]}",
         "key 0: transmissionRisk 9"},
        {"{\"temporaryExposureKeys\": [{\"key\": \"Fy/EgOWYSQw0F3YEM5sVQw==\", "
         "\"rollingStartNumber\": 1.5}]}",
         "key 0: rollingStartNumber is not an integer"},
        {"{\"temporaryExposureKeys\": [{\"key\": \"Fy/EgOWYSQw0F3YEM5sVQw==\", "
         "\"rollingStartNumber\": 1, \"reportType\": \"POSITIVE\"}]}",
         "key 0: reportType"},
        {"{\"temporaryExposureKeys\": [{\"key\": \"Fy/EgOWYSQw0F3YEM5sVQw==\", "
         "\"rollingStartNumber\": 1, \"rollingperiod\": 1}]}",
         "key 0: unknown field \"rollingperiod\""},
        {"{\"keys\": []}", "temporaryExposureKeys"},
        {"{\"temporaryExposureKeys\": [", "bad.json"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad_keys); i++) {
        write_text(bad_json, bad_keys[i].json, 0644);
        g_assert_cmpint(
            run_tool(NULL, &err, "export", "sign", "--key", sec, "--out", bad_zip, bad_json, NULL),
            ==, 1);
        if (strstr(err, bad_keys[i].needle) == NULL)
            g_error("sign error \"%s\" does not mention \"%s\"", err, bad_keys[i].needle);
        g_assert_cmpuint(count_lines(err), ==, 1);
        g_free(err);
        g_assert_false(g_file_test(bad_zip, G_FILE_TEST_EXISTS));
    }

    /* Bad arguments: one line on stderr, exit 2. */
    static const char *const usage_cases[][6] = {
        {"export", NULL},
        {"export", "frobnicate", NULL},
        {"export", "verify", NULL},
        {"export", "verify", "a.zip", NULL},
        {"export", "verify", "a.zip", "--bogus", NULL},
        {"export", "dump", NULL},
        {"export", "keygen", "--key-id", "a", NULL},
        {"export", "sign", "--batch-num", "x", NULL},
    };
    for (guint i = 0; i < G_N_ELEMENTS(usage_cases); i++) {
        g_assert_cmpint(run_toolv(usage_cases[i], NULL, &err), ==, 2);
        g_assert_cmpuint(count_lines(err), ==, 1);
        g_free(err);
    }
    g_assert_cmpint(
        run_tool(NULL, &err, "export", "verify", sample, "--key", pem, "--key-id", "some_id", NULL),
        ==, 2);
    g_free(err);

    /* --help on every level. */
    static const char *const help_cases[] = {"verify", "dump", "keygen", "sign"};
    g_assert_cmpint(run_tool(&out, NULL, "export", "--help", NULL), ==, 0);
    g_assert_nonnull(strstr(out, "Subcommands"));
    g_free(out);
    for (guint i = 0; i < G_N_ELEMENTS(help_cases); i++) {
        g_assert_cmpint(run_tool(&out, NULL, "export", help_cases[i], "--help", NULL), ==, 0);
        g_assert_nonnull(strstr(out, "Exit status"));
        g_free(out);
    }

    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    for (const char *name; (name = g_dir_read_name(d)) != NULL;) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_assert_cmpint(g_unlink(path), ==, 0);
    }
    g_assert_cmpint(g_rmdir(dir), ==, 0);
}

/* ---- venue warnings (field 100, docs/venues.md §4) ---- */

static ProxVenueWarning test_warning(guint which)
{
    ProxVenueWarning w = {0};
    /* Beacon TEK of 2020-05-23 (ENIN 2650464), windows that day. */
    const gint64 day = (gint64)2650464 * PROX_INTERVAL_SECONDS;
    if (which % 2 == 0) {
        w.kind = PROX_VENUE_WARNING_SAME_VEHICLE;
        for (guint i = 0; i < PROX_KEY_LEN; i++)
            w.beacon_tek.key[i] = (guint8)(0x40 + which * 3 + i);
        w.beacon_tek.rolling_start = 2650464;
        w.beacon_tek.rolling_period = 144;
    } else {
        w.kind = PROX_VENUE_WARNING_VENUE;
        for (guint i = 0; i < PROX_LOCATION_HASH_LEN; i++)
            w.location_hash[i] = (guint8)(0x90 - which * 5 + i);
    }
    w.start = day + 3600 * (gint64)(which + 1);
    w.end = w.start + 1800;
    w.transmission_risk_level = (int32_t)(which % 8) + 1;
    return w;
}

static gboolean warning_equal(const ProxVenueWarning *a, const ProxVenueWarning *b)
{
    return a->kind == b->kind && a->start == b->start && a->end == b->end &&
           a->transmission_risk_level == b->transmission_risk_level &&
           memcmp(&a->beacon_tek, &b->beacon_tek, sizeof a->beacon_tek) == 0 &&
           memcmp(a->location_hash, b->location_hash, sizeof a->location_hash) == 0;
}

static void test_venue_round_trip(void)
{
    g_autoptr(ProxExportSigner) signer = test_ed25519_signer();
    g_autoptr(ProxExportKeyring) keyring = test_ed25519_keyring();
    g_autoptr(GError) error = NULL;
    ProxVenueWarning warnings[5];
    for (guint i = 0; i < G_N_ELEMENTS(warnings); i++)
        warnings[i] = test_warning(i);

    g_autoptr(GBytes) zip =
        prox_export_build_full(&round_trip_meta, round_trip_keys, G_N_ELEMENTS(round_trip_keys),
                               warnings, G_N_ELEMENTS(warnings), signer, &error);
    g_assert_no_error(error);
    g_autoptr(ProxExport) export = read_ok(zip, keyring);
    assert_round_trip(export);
    g_assert_nonnull(export->venue_warnings);
    g_assert_cmpuint(export->venue_warnings->len, ==, G_N_ELEMENTS(warnings));
    /* Every warning came back exactly, in a content order (kind first). */
    for (guint i = 0; i < G_N_ELEMENTS(warnings); i++) {
        guint found = 0;
        for (guint j = 0; j < export->venue_warnings->len; j++)
            found += warning_equal(&warnings[i],
                                   &g_array_index(export->venue_warnings, ProxVenueWarning, j));
        g_assert_cmpuint(found, ==, 1);
    }
    for (guint j = 1; j < export->venue_warnings->len; j++)
        g_assert_cmpint(g_array_index(export->venue_warnings, ProxVenueWarning, j - 1).kind, <=,
                        g_array_index(export->venue_warnings, ProxVenueWarning, j).kind);
    /* A venue warning reads back without beacon fields, and vice versa. */
    const ProxVenueWarning *last =
        &g_array_index(export->venue_warnings, ProxVenueWarning, export->venue_warnings->len - 1);
    g_assert_cmpint(last->kind, ==, PROX_VENUE_WARNING_VENUE);
    g_assert_cmpuint(last->beacon_tek.rolling_period, ==, 0);

    /* Input order does not show in the output. */
    ProxVenueWarning reversed[G_N_ELEMENTS(warnings)];
    for (guint i = 0; i < G_N_ELEMENTS(warnings); i++)
        reversed[i] = warnings[G_N_ELEMENTS(warnings) - 1 - i];
    g_autoptr(GBytes) again =
        prox_export_build_full(&round_trip_meta, round_trip_keys, G_N_ELEMENTS(round_trip_keys),
                               reversed, G_N_ELEMENTS(reversed), signer, &error);
    g_assert_no_error(error);
    g_assert_true(g_bytes_equal(zip, again));

    /* Warnings without keys; no warnings at all reads as an empty array. */
    g_autoptr(GBytes) only =
        prox_export_build_full(&round_trip_meta, NULL, 0, warnings, 1, signer, &error);
    g_assert_no_error(error);
    g_autoptr(ProxExport) only_export = read_ok(only, keyring);
    g_assert_cmpuint(only_export->keys->len, ==, 0);
    g_assert_cmpuint(only_export->venue_warnings->len, ==, 1);
    g_autoptr(GBytes) plain = prox_export_build(&round_trip_meta, round_trip_keys,
                                                G_N_ELEMENTS(round_trip_keys), signer, &error);
    g_autoptr(GBytes) plain_full = prox_export_build_full(
        &round_trip_meta, round_trip_keys, G_N_ELEMENTS(round_trip_keys), NULL, 0, signer, &error);
    g_assert_true(g_bytes_equal(plain, plain_full));
    g_autoptr(ProxExport) plain_export = read_ok(plain, keyring);
    g_assert_nonnull(plain_export->venue_warnings);
    g_assert_cmpuint(plain_export->venue_warnings->len, ==, 0);

    /* The GAEN sample has none (and a non-NULL array), verified or not. */
    g_autoptr(ProxExportKeyring) sample = sample_keyring();
    g_autoptr(GBytes) sample_bytes = sample_zip();
    g_autoptr(ProxExport) gaen = read_ok(sample_bytes, sample);
    g_assert_nonnull(gaen->venue_warnings);
    g_assert_cmpuint(gaen->venue_warnings->len, ==, 0);
    g_autoptr(ProxExport) gaen_unverified = NULL;
    gsize sample_len = 0;
    const guint8 *sample_data = g_bytes_get_data(sample_bytes, &sample_len);
    g_assert_true(
        prox_export_read_bytes_unverified(sample_data, sample_len, &gaen_unverified, &error));
    g_assert_nonnull(gaen_unverified->venue_warnings);
    g_assert_cmpuint(gaen_unverified->venue_warnings->len, ==, 0);
}

/* The signature covers field 100: a changed warning byte fails it. */
static void test_venue_tampered(void)
{
    g_autoptr(ProxExportSigner) signer = test_ed25519_signer();
    g_autoptr(ProxExportKeyring) keyring = test_ed25519_keyring();
    g_autoptr(GError) error = NULL;
    ProxVenueWarning w = test_warning(1);
    g_autoptr(GBytes) zip =
        prox_export_build_full(&round_trip_meta, NULL, 0, &w, 1, signer, &error);
    g_assert_no_error(error);
    g_autoptr(GBytes) bin = unzip_entry(zip, "export.bin");
    g_autoptr(GBytes) sig = unzip_entry(zip, "export.sig");
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(bin, &len);
    /* Find the location hash and the risk level in the bytes. */
    const guint8 *hash = memmem(data, len, w.location_hash, sizeof w.location_hash);
    g_assert_nonnull(hash);
    gsize at = (gsize)(hash - data);
    for (gsize pos = at; pos < len; pos++) {
        g_autofree guint8 *copy = g_memdup2(data, len);
        copy[pos] ^= 0x01;
        g_autoptr(GBytes) flipped = g_bytes_new_take(g_steal_pointer(&copy), len);
        g_autoptr(GBytes) flipped_zip = pack(flipped, sig);
        assert_read_fails(flipped_zip, keyring, -1, NULL);
        if (pos < at + sizeof w.location_hash)
            assert_read_fails(flipped_zip, keyring, PROX_ERROR_SIGNATURE, NULL);
    }
    /* Unverified inspection sees the changed hash: the rejection above is the signature. */
    g_autofree guint8 *copy = g_memdup2(data, len);
    copy[at] ^= 0x01;
    g_autoptr(GBytes) flipped = g_bytes_new_take(g_steal_pointer(&copy), len);
    g_autoptr(GBytes) flipped_zip = pack(flipped, sig);
    g_autoptr(ProxExport) unverified = NULL;
    gsize zlen = 0;
    const guint8 *zdata = g_bytes_get_data(flipped_zip, &zlen);
    g_assert_true(prox_export_read_bytes_unverified(zdata, zlen, &unverified, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(unverified->venue_warnings->len, ==, 1);
    g_assert_cmpuint(
        g_array_index(unverified->venue_warnings, ProxVenueWarning, 0).location_hash[0], ==,
        w.location_hash[0] ^ 0x01);
}

typedef void (*WarningMutation)(VenueWarning *m);

static guint8 warning_key[PROX_KEY_LEN] = {0x51, 0x52};
static guint8 warning_hash[33] = {0x61, 0x62};

static void warning_message_init(VenueWarning *m, gboolean vehicle)
{
    venue_warning__init(m);
    m->has_kind = TRUE;
    if (vehicle) {
        m->kind = VENUE_WARNING__KIND__SAME_VEHICLE;
        m->has_beacon_key_data = TRUE;
        m->beacon_key_data.data = warning_key;
        m->beacon_key_data.len = PROX_KEY_LEN;
        m->has_beacon_rolling_start_interval_number = TRUE;
        m->beacon_rolling_start_interval_number = 2650464;
    } else {
        m->kind = VENUE_WARNING__KIND__VENUE;
        m->has_location_hash = TRUE;
        m->location_hash.data = warning_hash;
        m->location_hash.len = PROX_LOCATION_HASH_LEN;
    }
    m->has_start_timestamp = TRUE;
    m->start_timestamp = (uint64_t)2650464 * 600 + 7200;
    m->has_end_timestamp = TRUE;
    m->end_timestamp = m->start_timestamp + 1800;
    m->has_transmission_risk_level = TRUE;
    m->transmission_risk_level = 3;
}

static void wm_risk_0(VenueWarning *m)
{
    m->transmission_risk_level = 0;
}
static void wm_risk_9(VenueWarning *m)
{
    m->transmission_risk_level = 9;
}
static void wm_no_risk(VenueWarning *m)
{
    m->has_transmission_risk_level = FALSE;
}
static void wm_end_is_start(VenueWarning *m)
{
    m->end_timestamp = m->start_timestamp;
}
static void wm_end_before_start(VenueWarning *m)
{
    m->end_timestamp = m->start_timestamp - 1;
}
static void wm_over_24h(VenueWarning *m)
{
    m->end_timestamp = m->start_timestamp + 86401;
}
static void wm_no_start(VenueWarning *m)
{
    m->has_start_timestamp = FALSE;
}
static void wm_huge_end(VenueWarning *m)
{
    m->end_timestamp = UINT64_MAX;
}
static void wm_period_0(VenueWarning *m)
{
    m->has_beacon_rolling_period = TRUE;
    m->beacon_rolling_period = 0;
}
static void wm_period_145(VenueWarning *m)
{
    m->has_beacon_rolling_period = TRUE;
    m->beacon_rolling_period = 145;
}
static void wm_period_negative(VenueWarning *m)
{
    m->has_beacon_rolling_period = TRUE;
    m->beacon_rolling_period = -1;
}
static void wm_start_negative(VenueWarning *m)
{
    m->beacon_rolling_start_interval_number = -5;
}
static void wm_no_rolling_start(VenueWarning *m)
{
    m->has_beacon_rolling_start_interval_number = FALSE;
}
static void wm_outside_tek(VenueWarning *m)
{
    m->beacon_rolling_start_interval_number = 2650464 + 144;
}
static void wm_key_15(VenueWarning *m)
{
    m->beacon_key_data.len = 15;
}
static void wm_vehicle_with_hash(VenueWarning *m)
{
    m->has_location_hash = TRUE;
    m->location_hash.data = warning_hash;
    m->location_hash.len = PROX_LOCATION_HASH_LEN;
}
static void wm_kind_unknown(VenueWarning *m)
{
    m->kind = VENUE_WARNING__KIND__UNKNOWN_KIND;
}
static void wm_kind_3(VenueWarning *m)
{
    m->kind = (VenueWarning__Kind)3;
}
static void wm_no_kind(VenueWarning *m)
{
    m->has_kind = FALSE;
}
static void wm_hash_31(VenueWarning *m)
{
    m->location_hash.len = 31;
}
static void wm_hash_33(VenueWarning *m)
{
    m->location_hash.len = 33;
}
static void wm_venue_with_key(VenueWarning *m)
{
    m->has_beacon_key_data = TRUE;
    m->beacon_key_data.data = warning_key;
    m->beacon_key_data.len = PROX_KEY_LEN;
}

/* One invalid warning rejects the whole list, keys included. */
static void test_venue_invalid(void)
{
    g_autoptr(ProxExportKeyring) keyring = test_ed25519_keyring();
    struct {
        const char *name;
        gboolean vehicle;
        WarningMutation mutate;
    } cases[] = {
        {"risk 0", FALSE, wm_risk_0},
        {"risk 9", TRUE, wm_risk_9},
        {"no risk", FALSE, wm_no_risk},
        {"end == start", FALSE, wm_end_is_start},
        {"end < start", TRUE, wm_end_before_start},
        {"over 24 h", FALSE, wm_over_24h},
        {"no start", FALSE, wm_no_start},
        {"huge end", FALSE, wm_huge_end},
        {"period 0", TRUE, wm_period_0},
        {"period 145", TRUE, wm_period_145},
        {"period -1", TRUE, wm_period_negative},
        {"rolling start negative", TRUE, wm_start_negative},
        {"no rolling start", TRUE, wm_no_rolling_start},
        {"window outside the TEK", TRUE, wm_outside_tek},
        {"key 15 bytes", TRUE, wm_key_15},
        {"vehicle with a hash", TRUE, wm_vehicle_with_hash},
        {"kind unknown", FALSE, wm_kind_unknown},
        {"kind 3", FALSE, wm_kind_3},
        {"no kind", TRUE, wm_no_kind},
        {"hash 31 bytes", FALSE, wm_hash_31},
        {"hash 33 bytes", FALSE, wm_hash_33},
        {"venue with a key", FALSE, wm_venue_with_key},
    };
    TemporaryExposureKey keys[1];
    TemporaryExposureKey *key_ptrs[1];
    key_message_init(&keys[0], 0);
    for (gint c = -1; c < (gint)G_N_ELEMENTS(cases); c++) {
        TemporaryExposureKeyExport m;
        export_message_init(&m, key_ptrs, keys, 1);
        /* A good warning of each kind, then the mutated one. */
        VenueWarning w[3];
        VenueWarning *w_ptrs[3] = {&w[0], &w[1], &w[2]};
        warning_message_init(&w[0], TRUE);
        warning_message_init(&w[1], FALSE);
        warning_message_init(&w[2], c >= 0 ? cases[c].vehicle : TRUE);
        if (c >= 0)
            cases[c].mutate(&w[2]);
        m.n_venue_warnings = 3;
        m.venue_warnings = w_ptrs;
        g_autoptr(GBytes) zip = signed_zip(&m);
        if (c < 0) {
            /* The frame itself is fine: each failure below is its mutation. */
            g_autoptr(ProxExport) export = read_ok(zip, keyring);
            g_assert_cmpuint(export->venue_warnings->len, ==, 3);
            g_assert_cmpuint(export->keys->len, ==, 1);
            const ProxVenueWarning *v = &g_array_index(export->venue_warnings, ProxVenueWarning, 0);
            g_assert_cmpint(v->kind, ==, PROX_VENUE_WARNING_SAME_VEHICLE);
            g_assert_cmpuint(v->beacon_tek.rolling_period, ==, 144); /* proto default */
            g_assert_cmpuint(v->beacon_tek.rolling_start, ==, 2650464);
            g_assert_cmpint(v->transmission_risk_level, ==, 3);
            continue;
        }
        if (g_test_verbose())
            g_printerr("invalid warning: %s\n", cases[c].name);
        assert_read_fails(zip, keyring, PROX_ERROR_MALFORMED, "venue warning 2");
        assert_read_fails(zip, NULL, PROX_ERROR_MALFORMED, "venue warning 2");
    }
}

static void test_venue_writer_rejects(void)
{
    g_autoptr(ProxExportSigner) signer = test_ed25519_signer();
    ProxVenueWarning bad[6];
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++)
        bad[i] = test_warning(i);
    bad[0].transmission_risk_level = 0;
    bad[1].end = bad[1].start;
    bad[2].beacon_tek.rolling_period = 145;
    bad[3].end = bad[3].start + 86401;
    bad[4].start = bad[4].end = 0;
    bad[5].kind = (ProxVenueWarningKind)7;
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        ProxVenueWarning list[2] = {test_warning(7), bad[i]};
        g_autoptr(GError) error = NULL;
        g_autoptr(GBytes) zip =
            prox_export_build_full(&round_trip_meta, NULL, 0, list, 2, signer, &error);
        g_assert_null(zip);
        g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
        g_assert_nonnull(strstr(error->message, "venue warning 1"));
    }
}

static void test_raw_sign_verify(void)
{
    g_autoptr(ProxExportSigner) signer = test_ed25519_signer();
    g_autoptr(ProxExportKeyring) keyring = test_ed25519_keyring();
    g_autoptr(GError) error = NULL;
    const guint8 msg[] = "a venue descriptor";
    g_autoptr(GBytes) sig = prox_export_signer_sign(signer, msg, sizeof msg, &error);
    g_assert_no_error(error);
    gsize sig_len = 0;
    const guint8 *sig_data = g_bytes_get_data(sig, &sig_len);
    g_assert_cmpuint(sig_len, ==, 64);
    g_assert_true(prox_export_keyring_verify(keyring, TEST_KEY_ID, TEST_KEY_VERSION, msg,
                                             sizeof msg, sig_data, sig_len, &error));
    g_assert_no_error(error);
    /* Independent check with libsodium. */
    guint8 pk[PROX_ED25519_PUBLIC_KEY_LEN];
    guint8 sk[PROX_ED25519_SECRET_KEY_LEN];
    test_ed25519_keypair(pk, sk);
    g_assert_cmpint(crypto_sign_verify_detached(sig_data, msg, sizeof msg, pk), ==, 0);

    g_assert_false(prox_export_keyring_verify(keyring, TEST_KEY_ID, TEST_KEY_VERSION, msg,
                                              sizeof msg - 1, sig_data, sig_len, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_SIGNATURE);
    g_clear_error(&error);
    g_assert_false(prox_export_keyring_verify(keyring, TEST_KEY_ID, TEST_KEY_VERSION, msg,
                                              sizeof msg, sig_data, sig_len - 1, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_SIGNATURE);
    g_clear_error(&error);
    g_assert_false(prox_export_keyring_verify(keyring, "other", TEST_KEY_VERSION, msg, sizeof msg,
                                              sig_data, sig_len, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_SIGNATURE);
    g_assert_nonnull(strstr(error->message, "no key pinned"));
    g_clear_error(&error);
    g_assert_false(prox_export_keyring_verify(keyring, NULL, NULL, msg, sizeof msg, sig_data,
                                              sig_len, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_SIGNATURE);
    g_clear_error(&error);

    /* ECDSA: DER signatures, checked against a pinned PEM key. */
    g_autofree char *private_pem = NULL;
    g_autofree char *public_pem = NULL;
    ecdsa_keypair_pem("P-256", &private_pem, &public_pem);
    g_autoptr(ProxExportSigner) ecdsa =
        prox_export_signer_new_ecdsa_pem("ec", "1", private_pem, strlen(private_pem), &error);
    g_assert_no_error(error);
    g_autoptr(GBytes) ec_sig = prox_export_signer_sign(ecdsa, msg, sizeof msg, &error);
    g_assert_no_error(error);
    g_autoptr(ProxExportKeyring) ec_ring = prox_export_keyring_new();
    g_assert_true(
        prox_export_keyring_add_pem(ec_ring, "ec", "1", public_pem, strlen(public_pem), &error));
    gsize ec_len = 0;
    const guint8 *ec_data = g_bytes_get_data(ec_sig, &ec_len);
    g_assert_true(
        prox_export_keyring_verify(ec_ring, "ec", "1", msg, sizeof msg, ec_data, ec_len, &error));
    g_assert_no_error(error);
    g_assert_false(prox_export_keyring_verify(ec_ring, "ec", "1", msg, sizeof msg - 1, ec_data,
                                              ec_len, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_SIGNATURE);
    g_clear_error(&error);
    /* The Ed25519 signature does not pass the ECDSA key, nor the reverse. */
    g_assert_false(
        prox_export_keyring_verify(ec_ring, "ec", "1", msg, sizeof msg, sig_data, sig_len, &error));
    g_clear_error(&error);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/export/sample/verifies", test_sample_verifies);
    g_test_add_func("/export/sample/sha256", test_sample_sha256);
    g_test_add_func("/export/sample/every-flipped-byte-fails",
                    test_sample_every_flipped_byte_fails);
    g_test_add_func("/export/sample/wrong-keys", test_sample_wrong_keys);
    g_test_add_func("/export/round-trip/ed25519", test_round_trip_ed25519);
    g_test_add_func("/export/round-trip/ecdsa", test_round_trip_ecdsa);
    g_test_add_func("/export/writer/rejects", test_writer_rejects);
    g_test_add_func("/export/content/default-period-and-revised",
                    test_default_rolling_period_and_revised);
    g_test_add_func("/export/content/invalid", test_invalid_content);
    g_test_add_func("/export/content/signature-list", test_signature_list_checks);
    g_test_add_func("/export/content/header", test_header);
    g_test_add_func("/export/content/unpack-budget", test_unpack_budget);
    g_test_add_func("/export/container", test_container);
    g_test_add_func("/export/key-files", test_key_files);
    g_test_add_func("/export/tool", test_tool);
    g_test_add_func("/export/venue/round-trip", test_venue_round_trip);
    g_test_add_func("/export/venue/tampered", test_venue_tampered);
    g_test_add_func("/export/venue/invalid", test_venue_invalid);
    g_test_add_func("/export/venue/writer-rejects", test_venue_writer_rejects);
    g_test_add_func("/export/venue/raw-sign-verify", test_raw_sign_verify);
    return g_test_run();
}
