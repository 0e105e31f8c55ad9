/* prox-export.h - signed key lists in GAEN's export container (PROTOCOL.md §5).
 *
 * A key list is a zip holding export.bin (16-byte header "EK Export v1" + spaces, then a
 * protobuf TemporaryExposureKeyExport) and export.sig (protobuf TEKSignatureList). The
 * signature covers all of export.bin and is checked against public keys pinned by key id
 * and version: Ed25519 (our authority's default) or ECDSA P-256 SHA-256 (GAEN servers).
 *
 * Every reader either returns a complete, verified ProxExport or nothing: a list that fails
 * any check imports no key. Errors are in PROX_ERROR: IO (zip container), MALFORMED (the
 * content), SIGNATURE (no trusted signature), INVALID_ARGUMENT (caller's input).
 */
#pragma once

#include "prox-types.h"

#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

#define PROX_EXPORT_HEADER "EK Export v1    "
#define PROX_EXPORT_HEADER_LEN 16
#define PROX_EXPORT_BIN_NAME "export.bin"
#define PROX_EXPORT_SIG_NAME "export.sig"
/* Entries larger than this are rejected before anything is allocated for them. */
#define PROX_EXPORT_BIN_MAX ((size_t)64 * 1024 * 1024)
#define PROX_EXPORT_SIG_MAX ((size_t)64 * 1024)

#define PROX_EXPORT_ALGORITHM_ED25519 "1.3.101.112"
#define PROX_EXPORT_ALGORITHM_ECDSA_P256_SHA256 "1.2.840.10045.4.3.2"

#define PROX_ED25519_PUBLIC_KEY_LEN 32
#define PROX_ED25519_SECRET_KEY_LEN 64 /* libsodium layout: seed || public key */

/* GAEN limits of a published key. */
#define PROX_EXPORT_MAX_TRANSMISSION_RISK 8

typedef enum {
    PROX_EXPORT_KEY_ED25519,
    PROX_EXPORT_KEY_ECDSA_P256,
} ProxExportKeyType;

/* A key list as read. */
typedef struct {
    gint64 start_timestamp; /* UTC unix seconds, start <= end */
    gint64 end_timestamp;
    char *region;      /* never NULL; "" when the file names none */
    int32_t batch_num; /* 1 <= batch_num <= batch_size */
    int32_t batch_size;
    GArray *keys;    /* ProxDiagnosisKey: the file's keys, then its revised keys */
    guint n_revised; /* the last n_revised entries of keys are revised keys */
    /* proxd extension (field 100, docs/venues.md): ProxVenueWarning, validated like keys
     * (a list with one bad warning is rejected whole). Empty, never NULL, for GAEN files. */
    GArray *venue_warnings;
    /* The signature that verified (key id and version as named by the file). All NULL
     * when read by prox_export_read_unverified(). */
    char *signer_key_id;
    char *signer_key_version;
    char *signature_algorithm;
} ProxExport;

void prox_export_free(ProxExport *export);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ProxExport, prox_export_free)

/* TRUE when keys[index] came from the file's revised_keys. */
gboolean prox_export_key_is_revised(const ProxExport *export, guint index);

/* ---- Trusted public keys ---- */

typedef struct _ProxExportKeyring ProxExportKeyring;

ProxExportKeyring *prox_export_keyring_new(void);
void prox_export_keyring_free(ProxExportKeyring *keyring);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ProxExportKeyring, prox_export_keyring_free)

/* Pins a key for signatures whose SignatureInfo names exactly this key id and version
 * (printable ASCII without spaces). Passing NULL for both trusts the key whatever id and
 * version a file names: only for a key the user gave explicitly (prox-tool --key). */
gboolean prox_export_keyring_add_ed25519(ProxExportKeyring *keyring, const char *key_id,
                                         const char *version,
                                         const uint8_t public_key[PROX_ED25519_PUBLIC_KEY_LEN],
                                         GError **error);

/* ECDSA P-256 public key as a PEM SubjectPublicKeyInfo ("BEGIN PUBLIC KEY"). Any other key
 * type or curve is rejected. */
gboolean prox_export_keyring_add_pem(ProxExportKeyring *keyring, const char *key_id,
                                     const char *version, const char *pem, size_t pem_len,
                                     GError **error);
gboolean prox_export_keyring_add_pem_file(ProxExportKeyring *keyring, const char *key_id,
                                          const char *version, const char *path, GError **error);

/* Adds the key in `path`, recognised by content: a PEM ECDSA P-256 public key (pinned to
 * key_id/version; NULL/NULL = any), or a proxd Ed25519 public key file (pinned to the id
 * and version the file names, unless key_id/version are given). */
gboolean prox_export_keyring_add_file(ProxExportKeyring *keyring, const char *key_id,
                                      const char *version, const char *path, GError **error);

guint prox_export_keyring_size(const ProxExportKeyring *keyring);

/* ---- proxd Ed25519 key files ----
 * One line each:
 *   proxd-ed25519-public <key_id> <version> <base64 of the 32-byte public key>
 *   proxd-ed25519-secret <key_id> <version> <base64 of the 64-byte secret key>
 * The secret key file is written with mode 0600 and refused when group or others may
 * read or write it. */

/* Generates a key pair and writes secret_path (0600) and public_path (0644). Refuses to
 * overwrite an existing file; leaves neither file behind on failure. */
gboolean prox_export_ed25519_keygen(const char *key_id, const char *version,
                                    const char *secret_path, const char *public_path,
                                    GError **error);

/* Parses a public key file's text; *key_id and *version are newly allocated. */
gboolean prox_export_ed25519_public_parse(const char *text, size_t len, char **key_id,
                                          char **version,
                                          uint8_t public_key[PROX_ED25519_PUBLIC_KEY_LEN],
                                          GError **error);
gboolean prox_export_ed25519_public_load(const char *path, char **key_id, char **version,
                                         uint8_t public_key[PROX_ED25519_PUBLIC_KEY_LEN],
                                         GError **error);

/* ---- Signers ---- */

typedef struct _ProxExportSigner ProxExportSigner;

/* Ed25519 from a libsodium 64-byte secret key (seed || public key; the halves must agree). */
ProxExportSigner *
prox_export_signer_new_ed25519(const char *key_id, const char *version,
                               const uint8_t secret_key[PROX_ED25519_SECRET_KEY_LEN],
                               GError **error);
/* Ed25519 from a proxd secret key file (key id and version from the file). */
ProxExportSigner *prox_export_signer_load_ed25519(const char *path, GError **error);
/* ECDSA P-256 SHA-256 from an unencrypted PEM private key. */
ProxExportSigner *prox_export_signer_new_ecdsa_pem(const char *key_id, const char *version,
                                                   const char *pem, size_t pem_len, GError **error);
ProxExportSigner *prox_export_signer_load_ecdsa_pem(const char *key_id, const char *version,
                                                    const char *path, GError **error);
/* Recognised by content: a proxd Ed25519 secret key file (key_id and version must be NULL:
 * the file names them) or an unencrypted PEM ECDSA P-256 private key (key_id and version
 * required). Either must not be accessible by group or others. */
ProxExportSigner *prox_export_signer_load_file(const char *path, const char *key_id,
                                               const char *version, GError **error);
void prox_export_signer_free(ProxExportSigner *signer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ProxExportSigner, prox_export_signer_free)

const char *prox_export_signer_key_id(const ProxExportSigner *signer);
const char *prox_export_signer_key_version(const ProxExportSigner *signer);
ProxExportKeyType prox_export_signer_key_type(const ProxExportSigner *signer);

/* Raw signatures with the same keys, for other signed objects (venue QR payloads,
 * docs/venues.md): the signer signs `msg`; the keyring checks `sig` against the key pinned
 * for key_id/version (PROX_ERROR_SIGNATURE when none is pinned or it does not verify).
 * Ed25519 signatures are the 64 raw bytes; ECDSA ones DER. */
GBytes *prox_export_signer_sign(const ProxExportSigner *signer, const uint8_t *msg, size_t len,
                                GError **error);
gboolean prox_export_keyring_verify(const ProxExportKeyring *keyring, const char *key_id,
                                    const char *version, const uint8_t *msg, size_t msg_len,
                                    const uint8_t *sig, size_t sig_len, GError **error);

/* ---- Reading ---- */

/* Reads and verifies a key list. On success *out holds every key of the file; on any
 * failure *out is left NULL and error names the check that failed. */
gboolean prox_export_read(const char *zip_path, const ProxExportKeyring *keyring, ProxExport **out,
                          GError **error);
gboolean prox_export_read_bytes(const uint8_t *zip, size_t len, const ProxExportKeyring *keyring,
                                ProxExport **out, GError **error);

/* The checks of prox_export_read() on export.bin and export.sig already taken out of their
 * zip (size limits included). */
gboolean prox_export_read_entries(const uint8_t *bin, size_t bin_len, const uint8_t *sig,
                                  size_t sig_len, const ProxExportKeyring *keyring,
                                  ProxExport **out, GError **error);

/* Every check of prox_export_read() except the signature (export.sig is not even looked
 * at): for inspecting a file (prox-tool export dump), never for importing keys. */
gboolean prox_export_read_unverified(const char *zip_path, ProxExport **out, GError **error);
gboolean prox_export_read_bytes_unverified(const uint8_t *zip, size_t len, ProxExport **out,
                                           GError **error);

/* ---- Writing ---- */

typedef struct {
    gint64 start_timestamp; /* UTC unix seconds, 0 <= start <= end */
    gint64 end_timestamp;
    const char *region; /* NULL or "" for none */
    int32_t batch_num;  /* 1 <= batch_num <= batch_size */
    int32_t batch_size;
} ProxExportMeta;

/* The signed zip in memory. Keys are validated as a reader would (errors name the caller's
 * key index) and written sorted by key data, which hides the order of uploads. */
GBytes *prox_export_build(const ProxExportMeta *meta, const ProxDiagnosisKey *keys, size_t n,
                          const ProxExportSigner *signer, GError **error);

/* prox_export_build() plus venue warnings (export field 100; validated as a reader would,
 * written sorted). n_warnings may be 0; n may be 0 when there are warnings. */
GBytes *prox_export_build_full(const ProxExportMeta *meta, const ProxDiagnosisKey *keys, size_t n,
                               const ProxVenueWarning *warnings, size_t n_warnings,
                               const ProxExportSigner *signer, GError **error);

/* prox_export_build() written to zip_path atomically (temporary file in the same
 * directory, then rename). */
gboolean prox_export_write(const char *zip_path, const ProxExportMeta *meta,
                           const ProxDiagnosisKey *keys, size_t n, const ProxExportSigner *signer,
                           GError **error);

/* A zip holding exactly export.bin and export.sig with the given bytes, unchecked: the
 * container step of prox_export_build(), for tests and fuzzing. sig may be NULL to leave
 * export.sig out. */
GBytes *prox_export_pack(const uint8_t *bin, size_t bin_len, const uint8_t *sig, size_t sig_len,
                         GError **error);

G_END_DECLS
