/* prox-export.c - read, verify and write GAEN key-list files (PROTOCOL.md §5). */
#define G_LOG_DOMAIN "prox-export"

#include "prox-export.h"

#include "export.pb-c.h"
#include "prox-venue.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <zip.h>

#define KEY_NAME_MAX 256
/* Key files are one line; anything bigger is not one of ours. */
#define KEY_FILE_MAX ((size_t)64 * 1024)
#define ED25519_PUBLIC_MAGIC "proxd-ed25519-public"
#define ED25519_SECRET_MAGIC "proxd-ed25519-secret"
#define ED25519_SIGNATURE_LEN 64
/* Signature checks per file; real files carry one signature per key (two while rotating). */
#define MAX_VERIFY_ATTEMPTS 8
/* protobuf-c allocates per message and per repeated element; a legitimate export needs a few
 * times its size. The cap stops a file of tiny empty messages from costing gigabytes. */
#define UNPACK_BUDGET_FACTOR 16
#define UNPACK_BUDGET_SLACK ((size_t)1024 * 1024)
/* Venue warnings per list: a real list carries a few hundred at most. */
#define MAX_VENUE_WARNINGS 100000

/* ---- small helpers ---- */

static gboolean crypto_init(GError **error)
{
    if (sodium_init() < 0) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_UNSUPPORTED,
                            "libsodium failed to initialise");
        return FALSE;
    }
    return TRUE;
}

/* The reason OpenSSL gave for its last failure; clears its error queue so the failure does
 * not leak into unrelated callers. */
static const char *openssl_reason(void)
{
    unsigned long code = ERR_peek_last_error();
    const char *reason = code != 0 ? ERR_reason_error_string(code) : NULL;
    ERR_clear_error();
    return reason != NULL ? reason : "unknown OpenSSL error";
}

static gboolean key_name_valid(const char *name)
{
    size_t len = name != NULL ? strlen(name) : 0;
    if (len == 0 || len > KEY_NAME_MAX)
        return FALSE;
    for (size_t i = 0; i < len; i++) {
        if (!g_ascii_isgraph(name[i]))
            return FALSE;
    }
    return TRUE;
}

/* Both names valid, or (when allow_any) both NULL. */
static gboolean check_key_names(const char *key_id, const char *version, gboolean allow_any,
                                GError **error)
{
    if (allow_any && key_id == NULL && version == NULL)
        return TRUE;
    if (!key_name_valid(key_id) || !key_name_valid(version)) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "key id and version must both be 1..%d printable ASCII characters "
                    "without spaces",
                    KEY_NAME_MAX);
        return FALSE;
    }
    return TRUE;
}

/* Printable, escaped form of a string taken from a file, for error messages. */
static char *escaped(const char *s)
{
    return s != NULL ? g_strescape(s, NULL) : g_strdup("(none)");
}

static gboolean text_printable(const char *s)
{
    if (!g_utf8_validate(s, -1, NULL))
        return FALSE;
    for (const char *p = s; *p != '\0'; p = g_utf8_next_char(p)) {
        if (g_unichar_iscntrl(g_utf8_get_char(p)))
            return FALSE;
    }
    return TRUE;
}

/* Decodes base64 of exactly out_len bytes with canonical padding; nothing else is accepted
 * (g_base64_decode alone silently skips invalid characters). */
static gboolean base64_decode_exact(const char *b64, uint8_t *out, size_t out_len)
{
    uint8_t buf[PROX_ED25519_SECRET_KEY_LEN + 8];
    size_t len = strlen(b64);
    size_t pad = (3 - out_len % 3) % 3;

    g_assert(out_len <= PROX_ED25519_SECRET_KEY_LEN);
    if (len != (out_len + 2) / 3 * 4)
        return FALSE;
    for (size_t i = 0; i < len; i++) {
        char c = b64[i];
        if (i >= len - pad) {
            if (c != '=')
                return FALSE;
        } else if (!g_ascii_isalnum(c) && c != '+' && c != '/') {
            return FALSE;
        }
    }
    gint state = 0;
    guint save = 0;
    gsize got = g_base64_decode_step(b64, len, buf, &state, &save);
    gboolean ok = got == out_len;
    if (ok)
        memcpy(out, buf, out_len);
    sodium_memzero(buf, sizeof buf);
    return ok;
}

/* Reads a small regular file. For a secret key, refuses one that group or others can access
 * (checked on the open descriptor, so it is the file actually read). The caller wipes and
 * frees *out. */
static gboolean read_key_file(const char *path, gboolean secret, char **out, size_t *out_len,
                              GError **error)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot open %s: %s", path, g_strerror(e));
        return FALSE;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "%s is not a regular file", path);
        close(fd);
        return FALSE;
    }
    if (secret && (st.st_mode & 0077) != 0) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO,
                    "%s holds a secret key but group or others may access it (mode %04o); "
                    "chmod 600 it",
                    path, (unsigned)(st.st_mode & 07777));
        close(fd);
        return FALSE;
    }
    char *buf = g_malloc(KEY_FILE_MAX + 1);
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, KEY_FILE_MAX + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot read %s: %s", path,
                        g_strerror(e));
            goto fail;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > KEY_FILE_MAX) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                        "%s is larger than %zu bytes: not a key file", path, KEY_FILE_MAX);
            goto fail;
        }
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return TRUE;

fail:
    close(fd);
    sodium_memzero(buf, KEY_FILE_MAX + 1);
    g_free(buf);
    return FALSE;
}

static void wipe_free(char *buf, size_t len)
{
    if (buf == NULL)
        return;
    sodium_memzero(buf, len);
    g_free(buf);
}

/* ---- proxd Ed25519 key files ---- */

/* Finds the one key line of a key file (blank lines and '#' comments allowed around it) and
 * splits it in place into its four space-separated fields. */
static gboolean key_line_split(char *text, const char *magic, char *fields[4], GError **error)
{
    char *line = NULL;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        l = g_strstrip(l);
        if (l[0] == '\0' || l[0] == '#')
            continue;
        if (line != NULL) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                        "key file holds more than one key line");
            return FALSE;
        }
        line = l;
    }
    if (line == NULL) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED, "key file holds no key line");
        return FALSE;
    }
    guint n = 0;
    for (char *f = strtok_r(line, " \t", &save); f != NULL; f = strtok_r(NULL, " \t", &save)) {
        if (n == 4) {
            n++;
            break;
        }
        fields[n++] = f;
    }
    if (n != 4 || strcmp(fields[0], magic) != 0) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                    "key line is not \"%s KEY_ID VERSION BASE64\"", magic);
        return FALSE;
    }
    if (!key_name_valid(fields[1]) || !key_name_valid(fields[2])) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                    "key file has an invalid key id or version");
        return FALSE;
    }
    return TRUE;
}

/* Parses a key file's text; wipes its own copy (it may hold a secret). */
static gboolean key_file_parse(const char *text, size_t len, const char *magic, uint8_t *key,
                               size_t key_len, char **key_id, char **version, GError **error)
{
    char *copy = g_malloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    char *fields[4];
    gboolean ok = FALSE;
    if (memchr(text, '\0', len) != NULL) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED, "key file contains a NUL byte");
    } else if (key_line_split(copy, magic, fields, error)) {
        if (!base64_decode_exact(fields[3], key, key_len)) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                        "key is not the base64 of %zu bytes", key_len);
        } else {
            *key_id = g_strdup(fields[1]);
            *version = g_strdup(fields[2]);
            ok = TRUE;
        }
    }
    wipe_free(copy, len + 1);
    return ok;
}

gboolean prox_export_ed25519_public_parse(const char *text, size_t len, char **key_id,
                                          char **version,
                                          uint8_t public_key[PROX_ED25519_PUBLIC_KEY_LEN],
                                          GError **error)
{
    g_return_val_if_fail(text != NULL && key_id != NULL && version != NULL, FALSE);
    return key_file_parse(text, len, ED25519_PUBLIC_MAGIC, public_key, PROX_ED25519_PUBLIC_KEY_LEN,
                          key_id, version, error);
}

gboolean prox_export_ed25519_public_load(const char *path, char **key_id, char **version,
                                         uint8_t public_key[PROX_ED25519_PUBLIC_KEY_LEN],
                                         GError **error)
{
    char *text = NULL;
    size_t len = 0;
    if (!read_key_file(path, FALSE, &text, &len, error))
        return FALSE;
    gboolean ok = prox_export_ed25519_public_parse(text, len, key_id, version, public_key, error);
    g_free(text);
    if (!ok)
        g_prefix_error(error, "%s: ", path);
    return ok;
}

static gboolean write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return FALSE;
        data += w;
        len -= (size_t)w;
    }
    return fsync(fd) == 0;
}

static int create_exclusive(const char *path, mode_t mode, GError **error)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        int e = errno;
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot create %s: %s", path, g_strerror(e));
    }
    return fd;
}

gboolean prox_export_ed25519_keygen(const char *key_id, const char *version,
                                    const char *secret_path, const char *public_path,
                                    GError **error)
{
    g_return_val_if_fail(secret_path != NULL && public_path != NULL, FALSE);
    if (!check_key_names(key_id, version, FALSE, error) || !crypto_init(error))
        return FALSE;

    uint8_t pk[PROX_ED25519_PUBLIC_KEY_LEN];
    uint8_t *sk = sodium_malloc(PROX_ED25519_SECRET_KEY_LEN);
    if (sk == NULL) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_IO, "cannot allocate secure memory");
        return FALSE;
    }
    crypto_sign_keypair(pk, sk);
    char *sk_b64 = g_base64_encode(sk, PROX_ED25519_SECRET_KEY_LEN);
    sodium_free(sk);
    g_autofree char *pk_b64 = g_base64_encode(pk, sizeof pk);
    char *secret_line =
        g_strdup_printf(ED25519_SECRET_MAGIC " %s %s %s\n", key_id, version, sk_b64);
    g_autofree char *public_line =
        g_strdup_printf(ED25519_PUBLIC_MAGIC " %s %s %s\n", key_id, version, pk_b64);
    wipe_free(sk_b64, strlen(sk_b64));

    gboolean ok = FALSE;
    int fd_pub = -1;
    int fd_sec = create_exclusive(secret_path, 0600, error);
    if (fd_sec < 0)
        goto out;
    fd_pub = create_exclusive(public_path, 0644, error);
    if (fd_pub < 0) {
        close(fd_sec);
        unlink(secret_path);
        goto out;
    }
    gboolean written = write_all(fd_sec, secret_line, strlen(secret_line)) &&
                       write_all(fd_pub, public_line, strlen(public_line));
    int e = written ? 0 : errno;
    /* Close both whatever happens; a failed close can mean lost data. */
    if (close(fd_sec) != 0 && written) {
        e = errno;
        written = FALSE;
    }
    if (close(fd_pub) != 0 && written) {
        e = errno;
        written = FALSE;
    }
    if (!written) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot write %s / %s: %s", secret_path,
                    public_path, g_strerror(e));
        unlink(secret_path);
        unlink(public_path);
        goto out;
    }
    ok = TRUE;
out:
    wipe_free(secret_line, strlen(secret_line));
    return ok;
}

/* ---- ECDSA P-256 keys (PEM) ---- */

/* Never prompt on a terminal for a passphrase: encrypted keys are simply refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *user_data)
{
    return 0;
}

static gboolean pkey_is_p256(EVP_PKEY *pkey)
{
    char group[80];
    size_t group_len = 0;
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC)
        return FALSE;
    if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                        &group_len))
        return FALSE;
    int nid = OBJ_sn2nid(group);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(group);
    return nid == NID_X9_62_prime256v1;
}

static EVP_PKEY *pem_read_p256(const char *pem, size_t len, gboolean private_key, GError **error)
{
    if (len > INT_MAX) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_MALFORMED, "PEM input too large");
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "%s", openssl_reason());
        return NULL;
    }
    EVP_PKEY *pkey = private_key ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)
                                 : PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (pkey == NULL) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED, "not an unencrypted PEM %s key: %s",
                    private_key ? "private" : "public", openssl_reason());
        return NULL;
    }
    if (!pkey_is_p256(pkey)) {
        ERR_clear_error();
        EVP_PKEY_free(pkey);
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_UNSUPPORTED,
                            "PEM key is not an ECDSA P-256 key");
        return NULL;
    }
    return pkey;
}

/* ---- keyring ---- */

typedef struct {
    ProxExportKeyType type;
    char *key_id; /* NULL with version NULL: any key id/version */
    char *version;
    uint8_t ed25519[PROX_ED25519_PUBLIC_KEY_LEN];
    EVP_PKEY *ecdsa;
} KeyringEntry;

struct _ProxExportKeyring {
    GPtrArray *entries; /* KeyringEntry */
};

static void keyring_entry_free(gpointer data)
{
    KeyringEntry *entry = data;
    EVP_PKEY_free(entry->ecdsa);
    g_free(entry->key_id);
    g_free(entry->version);
    g_free(entry);
}

ProxExportKeyring *prox_export_keyring_new(void)
{
    ProxExportKeyring *keyring = g_new0(ProxExportKeyring, 1);
    keyring->entries = g_ptr_array_new_with_free_func(keyring_entry_free);
    return keyring;
}

void prox_export_keyring_free(ProxExportKeyring *keyring)
{
    if (keyring == NULL)
        return;
    g_ptr_array_unref(keyring->entries);
    g_free(keyring);
}

guint prox_export_keyring_size(const ProxExportKeyring *keyring)
{
    return keyring->entries->len;
}

static KeyringEntry *keyring_entry_new(ProxExportKeyType type, const char *key_id,
                                       const char *version)
{
    KeyringEntry *entry = g_new0(KeyringEntry, 1);
    entry->type = type;
    entry->key_id = g_strdup(key_id);
    entry->version = g_strdup(version);
    return entry;
}

gboolean prox_export_keyring_add_ed25519(ProxExportKeyring *keyring, const char *key_id,
                                         const char *version,
                                         const uint8_t public_key[PROX_ED25519_PUBLIC_KEY_LEN],
                                         GError **error)
{
    g_return_val_if_fail(keyring != NULL && public_key != NULL, FALSE);
    if (!check_key_names(key_id, version, TRUE, error))
        return FALSE;
    KeyringEntry *entry = keyring_entry_new(PROX_EXPORT_KEY_ED25519, key_id, version);
    memcpy(entry->ed25519, public_key, PROX_ED25519_PUBLIC_KEY_LEN);
    g_ptr_array_add(keyring->entries, entry);
    return TRUE;
}

gboolean prox_export_keyring_add_pem(ProxExportKeyring *keyring, const char *key_id,
                                     const char *version, const char *pem, size_t pem_len,
                                     GError **error)
{
    g_return_val_if_fail(keyring != NULL && pem != NULL, FALSE);
    if (!check_key_names(key_id, version, TRUE, error))
        return FALSE;
    EVP_PKEY *pkey = pem_read_p256(pem, pem_len, FALSE, error);
    if (pkey == NULL)
        return FALSE;
    KeyringEntry *entry = keyring_entry_new(PROX_EXPORT_KEY_ECDSA_P256, key_id, version);
    entry->ecdsa = pkey;
    g_ptr_array_add(keyring->entries, entry);
    return TRUE;
}

gboolean prox_export_keyring_add_pem_file(ProxExportKeyring *keyring, const char *key_id,
                                          const char *version, const char *path, GError **error)
{
    char *text = NULL;
    size_t len = 0;
    if (!read_key_file(path, FALSE, &text, &len, error))
        return FALSE;
    gboolean ok = prox_export_keyring_add_pem(keyring, key_id, version, text, len, error);
    g_free(text);
    if (!ok)
        g_prefix_error(error, "%s: ", path);
    return ok;
}

gboolean prox_export_keyring_add_file(ProxExportKeyring *keyring, const char *key_id,
                                      const char *version, const char *path, GError **error)
{
    g_return_val_if_fail(keyring != NULL && path != NULL, FALSE);
    if (!check_key_names(key_id, version, TRUE, error))
        return FALSE;
    char *text = NULL;
    size_t len = 0;
    if (!read_key_file(path, FALSE, &text, &len, error))
        return FALSE;

    gboolean ok = FALSE;
    const char *start = text;
    while (g_ascii_isspace(*start))
        start++;
    if (g_str_has_prefix(start, "-----BEGIN")) {
        ok = prox_export_keyring_add_pem(keyring, key_id, version, text, len, error);
    } else if (g_str_has_prefix(start, ED25519_PUBLIC_MAGIC)) {
        g_autofree char *file_id = NULL;
        g_autofree char *file_version = NULL;
        uint8_t pk[PROX_ED25519_PUBLIC_KEY_LEN];
        ok = prox_export_ed25519_public_parse(text, len, &file_id, &file_version, pk, error) &&
             prox_export_keyring_add_ed25519(keyring, key_id ? key_id : file_id,
                                             version ? version : file_version, pk, error);
    } else if (g_str_has_prefix(start, ED25519_SECRET_MAGIC)) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                            "this is a secret key; give its public key file instead");
    } else {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                            "neither a PEM public key nor a proxd Ed25519 public key file");
    }
    /* A secret key file handed here by mistake must not linger in memory. */
    wipe_free(text, len);
    if (!ok)
        g_prefix_error(error, "%s: ", path);
    return ok;
}

static const char *algorithm_of(ProxExportKeyType type)
{
    return type == PROX_EXPORT_KEY_ED25519 ? PROX_EXPORT_ALGORITHM_ED25519
                                           : PROX_EXPORT_ALGORITHM_ECDSA_P256_SHA256;
}

static const char *algorithm_name(ProxExportKeyType type)
{
    return type == PROX_EXPORT_KEY_ED25519 ? "Ed25519" : "ECDSA P-256";
}

static gboolean entry_verifies(const KeyringEntry *entry, const uint8_t *data, size_t len,
                               const uint8_t *sig, size_t sig_len)
{
    if (entry->type == PROX_EXPORT_KEY_ED25519) {
        return sig_len == ED25519_SIGNATURE_LEN &&
               crypto_sign_verify_detached(sig, data, len, entry->ed25519) == 0;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    gboolean ok = ctx != NULL &&
                  EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, entry->ecdsa) == 1 &&
                  EVP_DigestVerify(ctx, sig, sig_len, data, len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* ---- signers ---- */

struct _ProxExportSigner {
    ProxExportKeyType type;
    char *key_id;
    char *version;
    uint8_t *ed25519; /* sodium_malloc: guarded, locked, wiped on free */
    EVP_PKEY *ecdsa;
};

void prox_export_signer_free(ProxExportSigner *signer)
{
    if (signer == NULL)
        return;
    if (signer->ed25519 != NULL)
        sodium_free(signer->ed25519);
    EVP_PKEY_free(signer->ecdsa);
    g_free(signer->key_id);
    g_free(signer->version);
    g_free(signer);
}

const char *prox_export_signer_key_id(const ProxExportSigner *signer)
{
    return signer->key_id;
}

const char *prox_export_signer_key_version(const ProxExportSigner *signer)
{
    return signer->version;
}

ProxExportKeyType prox_export_signer_key_type(const ProxExportSigner *signer)
{
    return signer->type;
}

ProxExportSigner *
prox_export_signer_new_ed25519(const char *key_id, const char *version,
                               const uint8_t secret_key[PROX_ED25519_SECRET_KEY_LEN],
                               GError **error)
{
    g_return_val_if_fail(secret_key != NULL, NULL);
    if (!check_key_names(key_id, version, FALSE, error) || !crypto_init(error))
        return NULL;
    uint8_t *sk = sodium_malloc(PROX_ED25519_SECRET_KEY_LEN);
    uint8_t *check_sk = sodium_malloc(PROX_ED25519_SECRET_KEY_LEN);
    if (sk == NULL || check_sk == NULL) {
        if (sk != NULL)
            sodium_free(sk);
        if (check_sk != NULL)
            sodium_free(check_sk);
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_IO, "cannot allocate secure memory");
        return NULL;
    }
    memcpy(sk, secret_key, PROX_ED25519_SECRET_KEY_LEN);
    /* The second half must be the public key of the first: a mismatch would sign files
     * that verify under no published key. */
    uint8_t pk[PROX_ED25519_PUBLIC_KEY_LEN];
    crypto_sign_seed_keypair(pk, check_sk, sk);
    sodium_free(check_sk);
    if (sodium_memcmp(pk, sk + crypto_sign_SEEDBYTES, sizeof pk) != 0) {
        sodium_free(sk);
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                            "Ed25519 secret key: its public half does not match its seed");
        return NULL;
    }
    ProxExportSigner *signer = g_new0(ProxExportSigner, 1);
    signer->type = PROX_EXPORT_KEY_ED25519;
    signer->key_id = g_strdup(key_id);
    signer->version = g_strdup(version);
    signer->ed25519 = sk;
    return signer;
}

/* A signer from the text of a proxd Ed25519 secret key file. */
static ProxExportSigner *signer_from_ed25519_text(const char *text, size_t len, GError **error)
{
    ProxExportSigner *signer = NULL;
    uint8_t *sk = sodium_malloc(PROX_ED25519_SECRET_KEY_LEN);
    g_autofree char *key_id = NULL;
    g_autofree char *version = NULL;
    if (sk == NULL) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_IO, "cannot allocate secure memory");
        return NULL;
    }
    if (key_file_parse(text, len, ED25519_SECRET_MAGIC, sk, PROX_ED25519_SECRET_KEY_LEN, &key_id,
                       &version, error))
        signer = prox_export_signer_new_ed25519(key_id, version, sk, error);
    sodium_free(sk);
    return signer;
}

ProxExportSigner *prox_export_signer_load_ed25519(const char *path, GError **error)
{
    char *text = NULL;
    size_t len = 0;
    if (!crypto_init(error) || !read_key_file(path, TRUE, &text, &len, error))
        return NULL;
    ProxExportSigner *signer = signer_from_ed25519_text(text, len, error);
    wipe_free(text, len);
    if (signer == NULL)
        g_prefix_error(error, "%s: ", path);
    return signer;
}

ProxExportSigner *prox_export_signer_new_ecdsa_pem(const char *key_id, const char *version,
                                                   const char *pem, size_t pem_len, GError **error)
{
    g_return_val_if_fail(pem != NULL, NULL);
    if (!check_key_names(key_id, version, FALSE, error))
        return NULL;
    EVP_PKEY *pkey = pem_read_p256(pem, pem_len, TRUE, error);
    if (pkey == NULL)
        return NULL;
    ProxExportSigner *signer = g_new0(ProxExportSigner, 1);
    signer->type = PROX_EXPORT_KEY_ECDSA_P256;
    signer->key_id = g_strdup(key_id);
    signer->version = g_strdup(version);
    signer->ecdsa = pkey;
    return signer;
}

ProxExportSigner *prox_export_signer_load_ecdsa_pem(const char *key_id, const char *version,
                                                    const char *path, GError **error)
{
    char *text = NULL;
    size_t len = 0;
    if (!read_key_file(path, TRUE, &text, &len, error))
        return NULL;
    ProxExportSigner *signer = prox_export_signer_new_ecdsa_pem(key_id, version, text, len, error);
    wipe_free(text, len);
    if (signer == NULL)
        g_prefix_error(error, "%s: ", path);
    return signer;
}

ProxExportSigner *prox_export_signer_load_file(const char *path, const char *key_id,
                                               const char *version, GError **error)
{
    g_return_val_if_fail(path != NULL, NULL);
    char *text = NULL;
    size_t len = 0;
    if (!crypto_init(error) || !read_key_file(path, TRUE, &text, &len, error))
        return NULL;
    ProxExportSigner *signer = NULL;
    const char *start = text;
    while (g_ascii_isspace(*start))
        start++;
    if (g_str_has_prefix(start, "-----BEGIN")) {
        signer = prox_export_signer_new_ecdsa_pem(key_id, version, text, len, error);
    } else if (g_str_has_prefix(start, ED25519_SECRET_MAGIC)) {
        if (key_id != NULL || version != NULL)
            g_set_error_literal(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                                "an Ed25519 key file names its own key id and version");
        else
            signer = signer_from_ed25519_text(text, len, error);
    } else {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                            "neither a proxd Ed25519 secret key file nor a PEM private key");
    }
    wipe_free(text, len);
    if (signer == NULL)
        g_prefix_error(error, "%s: ", path);
    return signer;
}

/* Signature over data: 64 bytes for Ed25519, DER for ECDSA. */
static GBytes *signer_sign(const ProxExportSigner *signer, const uint8_t *data, size_t len,
                           GError **error)
{
    if (signer->type == PROX_EXPORT_KEY_ED25519) {
        uint8_t *sig = g_malloc(ED25519_SIGNATURE_LEN);
        crypto_sign_detached(sig, NULL, data, len, signer->ed25519);
        return g_bytes_new_take(sig, ED25519_SIGNATURE_LEN);
    }
    size_t sig_len = (size_t)EVP_PKEY_get_size(signer->ecdsa);
    uint8_t *sig = g_malloc(sig_len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    gboolean ok = ctx != NULL &&
                  EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, signer->ecdsa) == 1 &&
                  EVP_DigestSign(ctx, sig, &sig_len, data, len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_SIGNATURE, "ECDSA signing failed: %s",
                    openssl_reason());
        g_free(sig);
        return NULL;
    }
    return g_bytes_new_take(sig, sig_len);
}

GBytes *prox_export_signer_sign(const ProxExportSigner *signer, const uint8_t *msg, size_t len,
                                GError **error)
{
    g_return_val_if_fail(signer != NULL && (msg != NULL || len == 0), NULL);
    return signer_sign(signer, msg, len, error);
}

gboolean prox_export_keyring_verify(const ProxExportKeyring *keyring, const char *key_id,
                                    const char *version, const uint8_t *msg, size_t msg_len,
                                    const uint8_t *sig, size_t sig_len, GError **error)
{
    g_return_val_if_fail(
        keyring != NULL && (msg != NULL || msg_len == 0) && (sig != NULL || sig_len == 0), FALSE);
    if (!crypto_init(error))
        return FALSE;
    g_autofree char *id = escaped(key_id);
    g_autofree char *ver = escaped(version);
    gboolean pinned = FALSE;
    if (key_id != NULL && version != NULL) {
        for (guint k = 0; k < keyring->entries->len; k++) {
            const KeyringEntry *entry = g_ptr_array_index(keyring->entries, k);
            if (entry->key_id != NULL &&
                (strcmp(entry->key_id, key_id) != 0 || strcmp(entry->version, version) != 0))
                continue;
            pinned = TRUE;
            if (entry_verifies(entry, msg, msg_len, sig, sig_len))
                return TRUE;
        }
    }
    if (pinned)
        g_set_error(error, PROX_ERROR, PROX_ERROR_SIGNATURE, "signature by %s-%s does not verify",
                    id, ver);
    else
        g_set_error(error, PROX_ERROR, PROX_ERROR_SIGNATURE, "no key pinned for %s-%s", id, ver);
    return FALSE;
}

/* ---- protobuf with a memory budget ---- */

typedef struct {
    size_t used; /* cumulative: protobuf-c only frees at the end */
    size_t limit;
} UnpackBudget;

static void *budget_alloc(void *data, size_t size)
{
    UnpackBudget *budget = data;
    if (size > budget->limit - budget->used)
        return NULL; /* protobuf-c turns this into an unpack failure */
    budget->used += size;
    return malloc(size != 0 ? size : 1);
}

static void budget_free(void *data, void *pointer)
{
    free(pointer);
}

typedef struct {
    UnpackBudget budget;
    ProtobufCAllocator allocator;
} Unpacker;

static void unpacker_init(Unpacker *u, size_t input_len)
{
    u->budget.used = 0;
    u->budget.limit = input_len * UNPACK_BUDGET_FACTOR + UNPACK_BUDGET_SLACK;
    u->allocator.alloc = budget_alloc;
    u->allocator.free = budget_free;
    u->allocator.allocator_data = &u->budget;
}

/* ---- ProxExport ---- */

void prox_export_free(ProxExport *export)
{
    if (export == NULL)
        return;
    g_free(export->region);
    if (export->keys != NULL)
        g_array_unref(export->keys);
    if (export->venue_warnings != NULL)
        g_array_unref(export->venue_warnings);
    g_free(export->signer_key_id);
    g_free(export->signer_key_version);
    g_free(export->signature_algorithm);
    g_free(export);
}

gboolean prox_export_key_is_revised(const ProxExport *export, guint index)
{
    guint n = export->keys->len;
    return index < n && index >= n - export->n_revised;
}

/* The GAEN limits of one key, shared by reader and writer so we never write a file we would
 * refuse to read. `what` and `index` name the key in the message. */
static gboolean check_key_fields(const char *what, size_t index, gint64 rolling_start,
                                 gint64 rolling_period, gint64 transmission_risk,
                                 gint64 report_type, ProxError code, GError **error)
{
    if (rolling_start < 0 || rolling_start > G_MAXINT32) {
        g_set_error(error, PROX_ERROR, code,
                    "%s %zu: rolling_start_interval_number %" G_GINT64_FORMAT " outside 0..%d",
                    what, index, rolling_start, G_MAXINT32);
        return FALSE;
    }
    if (rolling_period < 1 || rolling_period > PROX_MAX_ROLLING_PERIOD) {
        g_set_error(error, PROX_ERROR, code,
                    "%s %zu: rolling_period %" G_GINT64_FORMAT " outside 1..%d", what, index,
                    rolling_period, PROX_MAX_ROLLING_PERIOD);
        return FALSE;
    }
    if (transmission_risk < 0 || transmission_risk > PROX_EXPORT_MAX_TRANSMISSION_RISK) {
        g_set_error(error, PROX_ERROR, code,
                    "%s %zu: transmission_risk_level %" G_GINT64_FORMAT " outside 0..%d", what,
                    index, transmission_risk, PROX_EXPORT_MAX_TRANSMISSION_RISK);
        return FALSE;
    }
    if (report_type < PROX_REPORT_UNKNOWN || report_type > PROX_REPORT_REVOKED) {
        g_set_error(error, PROX_ERROR, code,
                    "%s %zu: report_type %" G_GINT64_FORMAT " is not a known report type", what,
                    index, report_type);
        return FALSE;
    }
    return TRUE;
}

static gboolean key_from_message(const TemporaryExposureKey *m, const char *what, size_t index,
                                 ProxDiagnosisKey *out, GError **error)
{
    if (!m->has_key_data || m->key_data.len != PROX_KEY_LEN) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                    "%s %zu: key_data is %zu bytes, not %d", what, index,
                    m->has_key_data ? m->key_data.len : 0, PROX_KEY_LEN);
        return FALSE;
    }
    if (!m->has_rolling_start_interval_number) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                    "%s %zu: rolling_start_interval_number missing", what, index);
        return FALSE;
    }
    gint64 period = m->has_rolling_period ? m->rolling_period : PROX_TEK_ROLLING_PERIOD;
    gint64 trl = m->has_transmission_risk_level ? m->transmission_risk_level : 0;
    gint64 report_type = m->has_report_type ? (gint64)m->report_type : PROX_REPORT_UNKNOWN;
    if (!check_key_fields(what, index, m->rolling_start_interval_number, period, trl, report_type,
                          PROX_ERROR_MALFORMED, error))
        return FALSE;
    memset(out, 0, sizeof *out);
    memcpy(out->tek.key, m->key_data.data, PROX_KEY_LEN);
    out->tek.rolling_start = (uint32_t)m->rolling_start_interval_number;
    out->tek.rolling_period = (uint32_t)period;
    out->transmission_risk_level = (int32_t)trl;
    out->report_type = (ProxReportType)report_type;
    out->has_days_since_onset = m->has_days_since_onset_of_symptoms != 0;
    out->days_since_onset =
        m->has_days_since_onset_of_symptoms ? m->days_since_onset_of_symptoms : 0;
    return TRUE;
}

static gboolean check_batch(gboolean has_num, int32_t num, gboolean has_size, int32_t size,
                            ProxError code, GError **error)
{
    if (!has_num || !has_size || size < 1 || num < 1 || num > size) {
        g_set_error(error, PROX_ERROR, code,
                    "batch_num/batch_size missing or not 1 <= batch_num <= batch_size");
        return FALSE;
    }
    return TRUE;
}

/* Decodes one field-100 warning; the fields of the other kind must be absent. */
static gboolean warning_from_message(const VenueWarning *m, size_t index, ProxVenueWarning *out,
                                     GError **error)
{
    memset(out, 0, sizeof *out);
    if (!m->has_kind ||
        (m->kind != VENUE_WARNING__KIND__SAME_VEHICLE && m->kind != VENUE_WARNING__KIND__VENUE)) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                    "venue warning %zu: kind missing or unknown", index);
        return FALSE;
    }
    if (!m->has_start_timestamp || !m->has_end_timestamp ||
        m->start_timestamp > (uint64_t)G_MAXINT64 || m->end_timestamp > (uint64_t)G_MAXINT64) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                    "venue warning %zu: start or end timestamp missing or out of range", index);
        return FALSE;
    }
    if (!m->has_transmission_risk_level) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                    "venue warning %zu: transmission_risk_level missing", index);
        return FALSE;
    }
    gboolean has_beacon = m->has_beacon_key_data || m->has_beacon_rolling_start_interval_number ||
                          m->has_beacon_rolling_period;
    if (m->kind == VENUE_WARNING__KIND__SAME_VEHICLE) {
        if (m->has_location_hash || !m->has_beacon_key_data ||
            m->beacon_key_data.len != PROX_KEY_LEN ||
            !m->has_beacon_rolling_start_interval_number ||
            m->beacon_rolling_start_interval_number < 0) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                        "venue warning %zu: a same-vehicle warning needs a 16-byte beacon key "
                        "with its rolling start, and no location hash",
                        index);
            return FALSE;
        }
        out->kind = PROX_VENUE_WARNING_SAME_VEHICLE;
        memcpy(out->beacon_tek.key, m->beacon_key_data.data, PROX_KEY_LEN);
        out->beacon_tek.rolling_start = (uint32_t)m->beacon_rolling_start_interval_number;
        gint64 period =
            m->has_beacon_rolling_period ? m->beacon_rolling_period : PROX_TEK_ROLLING_PERIOD;
        /* Out-of-range periods are left for prox_venue_warning_check to name. */
        out->beacon_tek.rolling_period = period < 0 ? 0 : (uint32_t)MIN(period, G_MAXINT32);
    } else {
        if (has_beacon || !m->has_location_hash || m->location_hash.len != PROX_LOCATION_HASH_LEN) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                        "venue warning %zu: a venue warning needs a 32-byte location hash and "
                        "no beacon key",
                        index);
            return FALSE;
        }
        out->kind = PROX_VENUE_WARNING_VENUE;
        memcpy(out->location_hash, m->location_hash.data, PROX_LOCATION_HASH_LEN);
    }
    out->start = (gint64)m->start_timestamp;
    out->end = (gint64)m->end_timestamp;
    out->transmission_risk_level = m->transmission_risk_level;
    g_autofree char *what = g_strdup_printf("venue warning %zu", index);
    if (!prox_venue_warning_check(out, what, error)) {
        /* In a file it is the content that is wrong, not a caller's argument. */
        if (error != NULL && *error != NULL)
            (*error)->code = PROX_ERROR_MALFORMED;
        return FALSE;
    }
    return TRUE;
}

static ProxExport *export_from_message(const TemporaryExposureKeyExport *m, GError **error)
{
    if (!m->has_start_timestamp || !m->has_end_timestamp) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                            "export.bin lacks start_timestamp or end_timestamp");
        return NULL;
    }
    if (m->start_timestamp > (uint64_t)G_MAXINT64 || m->end_timestamp > (uint64_t)G_MAXINT64 ||
        m->start_timestamp > m->end_timestamp) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                    "start_timestamp %" PRIu64 " is after end_timestamp %" PRIu64
                    " or out of range",
                    m->start_timestamp, m->end_timestamp);
        return NULL;
    }
    if (m->region != NULL && !text_printable(m->region)) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                            "region is not printable UTF-8");
        return NULL;
    }
    if (!check_batch(m->has_batch_num, m->batch_num, m->has_batch_size, m->batch_size,
                     PROX_ERROR_MALFORMED, error)) {
        g_prefix_error(error, "export.bin: ");
        return NULL;
    }
    if (m->n_keys > G_MAXUINT - m->n_revised_keys) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_MALFORMED, "too many keys");
        return NULL;
    }

    g_autoptr(GArray) keys = g_array_sized_new(FALSE, FALSE, sizeof(ProxDiagnosisKey),
                                               (guint)(m->n_keys + m->n_revised_keys));
    for (size_t i = 0; i < m->n_keys + m->n_revised_keys; i++) {
        gboolean revised = i >= m->n_keys;
        size_t index = revised ? i - m->n_keys : i;
        const TemporaryExposureKey *km = revised ? m->revised_keys[index] : m->keys[index];
        ProxDiagnosisKey key;
        if (!key_from_message(km, revised ? "revised key" : "key", index, &key, error))
            return NULL;
        g_array_append_val(keys, key);
    }

    if (m->n_venue_warnings > MAX_VENUE_WARNINGS) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                    "export.bin holds %zu venue warnings, more than the limit of %d",
                    m->n_venue_warnings, MAX_VENUE_WARNINGS);
        return NULL;
    }
    g_autoptr(GArray) warnings =
        g_array_sized_new(FALSE, FALSE, sizeof(ProxVenueWarning), (guint)m->n_venue_warnings);
    for (size_t i = 0; i < m->n_venue_warnings; i++) {
        ProxVenueWarning warning;
        if (!warning_from_message(m->venue_warnings[i], i, &warning, error))
            return NULL;
        g_array_append_val(warnings, warning);
    }

    ProxExport *export = g_new0(ProxExport, 1);
    export->start_timestamp = (gint64)m->start_timestamp;
    export->end_timestamp = (gint64)m->end_timestamp;
    export->region = g_strdup(m->region != NULL ? m->region : "");
    export->batch_num = m->batch_num;
    export->batch_size = m->batch_size;
    export->keys = g_steal_pointer(&keys);
    export->n_revised = (guint)m->n_revised_keys;
    export->venue_warnings = g_steal_pointer(&warnings);
    return export;
}

/* Finds a signature in `list` made by a pinned key with that key's algorithm that verifies
 * over all of export.bin. Otherwise the error gives the most telling reason: a bad
 * signature by a pinned key, then an algorithm mismatch, then no pinned key at all. */
static const TEKSignature *verify_signatures(const ProxExportKeyring *keyring, const uint8_t *bin,
                                             size_t bin_len, const TEKSignatureList *list,
                                             GError **error)
{
    if (list->n_signatures == 0) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_SIGNATURE,
                            "export.sig holds no signature");
        return NULL;
    }
    g_autoptr(GString) named = g_string_new(NULL);
    g_autofree char *reason = NULL;
    int reason_rank = 0;
    int attempts = 0;
    for (size_t i = 0; i < list->n_signatures; i++) {
        const TEKSignature *s = list->signatures[i];
        const SignatureInfo *info = s->signature_info;
        if (info == NULL || info->verification_key_id == NULL ||
            info->verification_key_version == NULL || info->signature_algorithm == NULL) {
            if (reason_rank < 1) {
                g_free(reason);
                reason = g_strdup_printf("signature %zu lacks a key id, version or algorithm", i);
                reason_rank = 1;
            }
            continue;
        }
        g_autofree char *id = escaped(info->verification_key_id);
        g_autofree char *version = escaped(info->verification_key_version);
        g_autofree char *algorithm = escaped(info->signature_algorithm);
        /* export.sig may hold thousands of signatures: name only the first few. */
        if (i < 8)
            g_string_append_printf(named, "%s%s-%s", named->len ? ", " : "", id, version);
        else if (i == 8)
            g_string_append(named, ", ...");
        for (guint k = 0; k < keyring->entries->len; k++) {
            const KeyringEntry *entry = g_ptr_array_index(keyring->entries, k);
            if (entry->key_id != NULL &&
                (strcmp(entry->key_id, info->verification_key_id) != 0 ||
                 strcmp(entry->version, info->verification_key_version) != 0))
                continue;
            if (strcmp(info->signature_algorithm, algorithm_of(entry->type)) != 0) {
                if (reason_rank < 2) {
                    g_free(reason);
                    reason = g_strdup_printf(
                        "signature by %s-%s uses algorithm %s, but the pinned key is %s (%s)", id,
                        version, algorithm, algorithm_name(entry->type), algorithm_of(entry->type));
                    reason_rank = 2;
                }
                continue;
            }
            /* Each attempt hashes all of export.bin (up to 64 MiB): a file stuffed with bad
             * signatures naming a pinned key must not cost minutes of CPU. */
            if (attempts == MAX_VERIFY_ATTEMPTS) {
                g_set_error(error, PROX_ERROR, PROX_ERROR_SIGNATURE,
                            "more than %d signatures by pinned keys fail to verify",
                            MAX_VERIFY_ATTEMPTS);
                return NULL;
            }
            attempts++;
            if (s->has_signature &&
                entry_verifies(entry, bin, bin_len, s->signature.data, s->signature.len))
                return s;
            if (reason_rank < 3) {
                g_free(reason);
                reason = g_strdup_printf("signature by %s-%s (%s) does not verify over export.bin",
                                         id, version, algorithm_name(entry->type));
                reason_rank = 3;
            }
        }
    }
    if (reason_rank < 2) {
        g_free(reason);
        reason = g_strdup_printf("no signature by a pinned key (export.sig names: %s)",
                                 named->len ? named->str : "none");
    }
    g_set_error_literal(error, PROX_ERROR, PROX_ERROR_SIGNATURE, reason);
    return NULL;
}

/* Checks and decodes export.bin (and, with a keyring, export.sig). The signature is checked
 * before export.bin's protobuf is parsed, so unauthenticated bulk data never reaches the
 * parser on the import path. */
static ProxExport *export_parse(const uint8_t *bin, size_t bin_len, const uint8_t *sig,
                                size_t sig_len, const ProxExportKeyring *keyring, GError **error)
{
    if (bin_len < PROX_EXPORT_HEADER_LEN ||
        memcmp(bin, PROX_EXPORT_HEADER, PROX_EXPORT_HEADER_LEN) != 0) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                            "export.bin does not start with the header \"EK Export v1\" "
                            "padded with spaces to 16 bytes");
        return NULL;
    }

    ProxExport *export = NULL;
    TEKSignatureList *list = NULL;
    TemporaryExposureKeyExport *message = NULL;
    const TEKSignature *used = NULL;
    Unpacker sig_unpacker;
    Unpacker bin_unpacker;

    if (keyring != NULL) {
        if (!crypto_init(error))
            return NULL;
        unpacker_init(&sig_unpacker, sig_len);
        list = teksignature_list__unpack(&sig_unpacker.allocator, sig_len, sig);
        if (list == NULL) {
            g_set_error_literal(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                                "export.sig does not parse as a TEKSignatureList");
            goto out;
        }
        used = verify_signatures(keyring, bin, bin_len, list, error);
        if (used == NULL)
            goto out;
    }

    unpacker_init(&bin_unpacker, bin_len);
    message = temporary_exposure_key_export__unpack(
        &bin_unpacker.allocator, bin_len - PROX_EXPORT_HEADER_LEN, bin + PROX_EXPORT_HEADER_LEN);
    if (message == NULL) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                            "export.bin does not parse as a TemporaryExposureKeyExport");
        goto out;
    }
    export = export_from_message(message, error);
    if (export == NULL || used == NULL)
        goto out;

    if (!used->has_batch_num || !used->has_batch_size || used->batch_num != export->batch_num ||
        used->batch_size != export->batch_size) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_SIGNATURE,
                    "the signature's batch %d/%d does not match export.bin's batch %d/%d",
                    used->has_batch_num ? used->batch_num : 0,
                    used->has_batch_size ? used->batch_size : 0, export->batch_num,
                    export->batch_size);
        g_clear_pointer(&export, prox_export_free);
        goto out;
    }
    export->signer_key_id = g_strdup(used->signature_info->verification_key_id);
    export->signer_key_version = g_strdup(used->signature_info->verification_key_version);
    export->signature_algorithm = g_strdup(used->signature_info->signature_algorithm);

out:
    if (message != NULL)
        temporary_exposure_key_export__free_unpacked(message, &bin_unpacker.allocator);
    if (list != NULL)
        teksignature_list__free_unpacked(list, &sig_unpacker.allocator);
    return export;
}

/* ---- zip container ---- */

static zip_t *zip_open_bytes(const uint8_t *data, size_t len, GError **error)
{
    zip_error_t zerr;
    zip_error_init(&zerr);
    zip_source_t *src = zip_source_buffer_create(len != 0 ? data : NULL, len, 0, &zerr);
    zip_t *za = src != NULL ? zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &zerr) : NULL;
    if (za == NULL) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "not a readable zip: %s",
                    zip_error_strerror(&zerr));
        if (src != NULL)
            zip_source_free(src);
    }
    zip_error_fini(&zerr);
    return za;
}

static zip_t *zip_open_path(const char *path, GError **error)
{
    int code = 0;
    zip_t *za = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (za == NULL) {
        zip_error_t zerr;
        zip_error_init_with_code(&zerr, code);
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot open as a zip: %s",
                    zip_error_strerror(&zerr));
        zip_error_fini(&zerr);
    }
    return za;
}

/* Reads entry `name`, which must occur exactly once, refusing (before allocating) one whose
 * declared size exceeds `max`, and checking that the data is exactly the declared size. */
static GBytes *zip_read_entry(zip_t *za, const char *name, size_t max, GError **error)
{
    zip_int64_t n = zip_get_num_entries(za, 0);
    zip_int64_t index = -1;
    for (zip_int64_t i = 0; i < n; i++) {
        const char *entry_name = zip_get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        if (entry_name == NULL || strcmp(entry_name, name) != 0)
            continue;
        if (index >= 0) {
            /* Two entries of one name could be read differently by different tools. */
            g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "zip holds %s more than once", name);
            return NULL;
        }
        index = i;
    }
    if (index < 0) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "zip has no %s", name);
        return NULL;
    }
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(za, (zip_uint64_t)index, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE)) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot stat %s: %s", name, zip_strerror(za));
        return NULL;
    }
    if (st.size > max) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO,
                    "%s is %" PRIu64 " bytes, more than the limit of %zu", name, (uint64_t)st.size,
                    max);
        return NULL;
    }
    zip_file_t *zf = zip_fopen_index(za, (zip_uint64_t)index, 0);
    if (zf == NULL) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot open %s: %s", name, zip_strerror(za));
        return NULL;
    }
    size_t size = (size_t)st.size;
    /* One byte of room to notice data beyond the declared size; reading to the end also
     * makes libzip check the CRC. */
    uint8_t *buf = g_malloc(size + 1);
    size_t got = 0;
    gboolean ok = TRUE;
    for (;;) {
        zip_int64_t r = zip_fread(zf, buf + got, size + 1 - got);
        if (r < 0) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot read %s: %s", name,
                        zip_file_strerror(zf));
            ok = FALSE;
            break;
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got > size) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_IO,
                        "%s holds more data than its declared %zu bytes", name, size);
            ok = FALSE;
            break;
        }
    }
    if (ok && got != size) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "%s is %zu bytes, not its declared %zu", name,
                    got, size);
        ok = FALSE;
    }
    zip_fclose(zf);
    if (!ok) {
        g_free(buf);
        return NULL;
    }
    return g_bytes_new_take(buf, size);
}

/* keyring NULL: unverified, export.sig is not read. Consumes za. */
static gboolean export_read_zip(zip_t *za, const ProxExportKeyring *keyring, ProxExport **out,
                                GError **error)
{
    g_autoptr(GBytes) bin = zip_read_entry(za, PROX_EXPORT_BIN_NAME, PROX_EXPORT_BIN_MAX, error);
    g_autoptr(GBytes) sig = NULL;
    if (bin != NULL && keyring != NULL)
        sig = zip_read_entry(za, PROX_EXPORT_SIG_NAME, PROX_EXPORT_SIG_MAX, error);
    zip_discard(za);
    if (bin == NULL || (keyring != NULL && sig == NULL))
        return FALSE;

    size_t bin_len = 0;
    size_t sig_len = 0;
    const uint8_t *bin_data = g_bytes_get_data(bin, &bin_len);
    const uint8_t *sig_data = sig != NULL ? g_bytes_get_data(sig, &sig_len) : NULL;
    *out = export_parse(bin_data, bin_len, sig_data, sig_len, keyring, error);
    return *out != NULL;
}

gboolean prox_export_read(const char *zip_path, const ProxExportKeyring *keyring, ProxExport **out,
                          GError **error)
{
    g_return_val_if_fail(zip_path != NULL && keyring != NULL && out != NULL, FALSE);
    *out = NULL;
    zip_t *za = zip_open_path(zip_path, error);
    gboolean ok = za != NULL && export_read_zip(za, keyring, out, error);
    if (!ok)
        g_prefix_error(error, "%s: ", zip_path);
    return ok;
}

gboolean prox_export_read_bytes(const uint8_t *zip, size_t len, const ProxExportKeyring *keyring,
                                ProxExport **out, GError **error)
{
    g_return_val_if_fail((zip != NULL || len == 0) && keyring != NULL && out != NULL, FALSE);
    *out = NULL;
    zip_t *za = zip_open_bytes(zip, len, error);
    return za != NULL && export_read_zip(za, keyring, out, error);
}

gboolean prox_export_read_entries(const uint8_t *bin, size_t bin_len, const uint8_t *sig,
                                  size_t sig_len, const ProxExportKeyring *keyring,
                                  ProxExport **out, GError **error)
{
    g_return_val_if_fail((bin != NULL || bin_len == 0) && (sig != NULL || sig_len == 0) &&
                             keyring != NULL && out != NULL,
                         FALSE);
    *out = NULL;
    if (bin_len > PROX_EXPORT_BIN_MAX || sig_len > PROX_EXPORT_SIG_MAX) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO,
                    "export.bin or export.sig is over its limit of %zu / %zu bytes",
                    PROX_EXPORT_BIN_MAX, PROX_EXPORT_SIG_MAX);
        return FALSE;
    }
    *out = export_parse(bin, bin_len, sig, sig_len, keyring, error);
    return *out != NULL;
}

gboolean prox_export_read_unverified(const char *zip_path, ProxExport **out, GError **error)
{
    g_return_val_if_fail(zip_path != NULL && out != NULL, FALSE);
    *out = NULL;
    zip_t *za = zip_open_path(zip_path, error);
    gboolean ok = za != NULL && export_read_zip(za, NULL, out, error);
    if (!ok)
        g_prefix_error(error, "%s: ", zip_path);
    return ok;
}

gboolean prox_export_read_bytes_unverified(const uint8_t *zip, size_t len, ProxExport **out,
                                           GError **error)
{
    g_return_val_if_fail((zip != NULL || len == 0) && out != NULL, FALSE);
    *out = NULL;
    zip_t *za = zip_open_bytes(zip, len, error);
    return za != NULL && export_read_zip(za, NULL, out, error);
}

/* ---- writing ---- */

static gboolean zip_add_bytes(zip_t *za, const char *name, const uint8_t *data, size_t len)
{
    zip_source_t *src = zip_source_buffer(za, len != 0 ? data : NULL, len, 0);
    if (src == NULL)
        return FALSE;
    zip_int64_t index = zip_file_add(za, name, src, ZIP_FL_ENC_UTF_8);
    if (index < 0) {
        zip_source_free(src);
        return FALSE;
    }
    /* A fixed time (1980-01-01) makes the same content give the same file. */
    return zip_set_file_compression(za, (zip_uint64_t)index, ZIP_CM_DEFLATE, 0) == 0 &&
           zip_file_set_dostime(za, (zip_uint64_t)index, 0, (1 << 5) | 1, 0) == 0;
}

GBytes *prox_export_pack(const uint8_t *bin, size_t bin_len, const uint8_t *sig, size_t sig_len,
                         GError **error)
{
    g_return_val_if_fail(bin != NULL || bin_len == 0, NULL);
    zip_error_t zerr;
    zip_error_init(&zerr);
    GBytes *result = NULL;
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &zerr);
    zip_t *za = src != NULL ? zip_open_from_source(src, ZIP_TRUNCATE, &zerr) : NULL;
    if (za == NULL) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot create a zip: %s",
                    zip_error_strerror(&zerr));
        if (src != NULL)
            zip_source_free(src);
        zip_error_fini(&zerr);
        return NULL;
    }
    zip_error_fini(&zerr);
    /* Keep the in-memory source alive past zip_close() to read the result back. */
    zip_source_keep(src);

    if (!zip_add_bytes(za, PROX_EXPORT_BIN_NAME, bin, bin_len) ||
        (sig != NULL && !zip_add_bytes(za, PROX_EXPORT_SIG_NAME, sig, sig_len))) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot add to the zip: %s",
                    zip_strerror(za));
        zip_discard(za);
        zip_source_free(src);
        return NULL;
    }
    if (zip_close(za) != 0) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot write the zip: %s", zip_strerror(za));
        zip_discard(za);
        zip_source_free(src);
        return NULL;
    }

    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_source_stat(src, &st) == 0 && (st.valid & ZIP_STAT_SIZE) && zip_source_open(src) == 0) {
        uint8_t *buf = g_malloc(st.size != 0 ? st.size : 1);
        zip_int64_t r = zip_source_read(src, buf, st.size);
        zip_source_close(src);
        if (r >= 0 && (zip_uint64_t)r == st.size)
            result = g_bytes_new_take(buf, st.size);
        else
            g_free(buf);
    }
    if (result == NULL)
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot read back the zip: %s",
                    zip_error_strerror(zip_source_error(src)));
    zip_source_free(src);
    return result;
}

static int key_compare(const void *a, const void *b)
{
    const ProxDiagnosisKey *ka = a;
    const ProxDiagnosisKey *kb = b;
    int c = memcmp(ka->tek.key, kb->tek.key, PROX_KEY_LEN);
    if (c != 0)
        return c;
    /* Ties (a re-uploaded key) ordered by content so output never depends on input order. */
    if (ka->tek.rolling_start != kb->tek.rolling_start)
        return ka->tek.rolling_start < kb->tek.rolling_start ? -1 : 1;
    if (ka->tek.rolling_period != kb->tek.rolling_period)
        return ka->tek.rolling_period < kb->tek.rolling_period ? -1 : 1;
    if (ka->report_type != kb->report_type)
        return ka->report_type < kb->report_type ? -1 : 1;
    if (ka->transmission_risk_level != kb->transmission_risk_level)
        return ka->transmission_risk_level < kb->transmission_risk_level ? -1 : 1;
    if (ka->has_days_since_onset != kb->has_days_since_onset)
        return ka->has_days_since_onset ? 1 : -1;
    if (ka->days_since_onset != kb->days_since_onset)
        return ka->days_since_onset < kb->days_since_onset ? -1 : 1;
    return 0;
}

static gboolean check_meta(const ProxExportMeta *meta, GError **error)
{
    if (meta->start_timestamp < 0 || meta->start_timestamp > meta->end_timestamp) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "start %" G_GINT64_FORMAT " and end %" G_GINT64_FORMAT
                    " are not 0 <= start <= end",
                    meta->start_timestamp, meta->end_timestamp);
        return FALSE;
    }
    if (meta->region != NULL && !text_printable(meta->region)) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                            "region is not printable UTF-8");
        return FALSE;
    }
    return check_batch(TRUE, meta->batch_num, TRUE, meta->batch_size, PROX_ERROR_INVALID_ARGUMENT,
                       error);
}

static int cmp_int64(gint64 a, gint64 b)
{
    return (a > b) - (a < b);
}

/* Content order over the fields a warning's kind writes: output never depends on input
 * order (which would reveal the order of reports). */
static int warning_compare(const void *a, const void *b)
{
    const ProxVenueWarning *x = a;
    const ProxVenueWarning *y = b;
    int c = cmp_int64(x->kind, y->kind);
    if (c != 0)
        return c;
    if (x->kind == PROX_VENUE_WARNING_SAME_VEHICLE) {
        c = memcmp(x->beacon_tek.key, y->beacon_tek.key, PROX_KEY_LEN);
        if (c == 0)
            c = cmp_int64(x->beacon_tek.rolling_start, y->beacon_tek.rolling_start);
        if (c == 0)
            c = cmp_int64(x->beacon_tek.rolling_period, y->beacon_tek.rolling_period);
    } else {
        c = memcmp(x->location_hash, y->location_hash, PROX_LOCATION_HASH_LEN);
    }
    if (c == 0)
        c = cmp_int64(x->start, y->start);
    if (c == 0)
        c = cmp_int64(x->end, y->end);
    if (c == 0)
        c = cmp_int64(x->transmission_risk_level, y->transmission_risk_level);
    return c;
}

static void warning_to_message(const ProxVenueWarning *w, VenueWarning *m)
{
    venue_warning__init(m);
    m->has_kind = TRUE;
    if (w->kind == PROX_VENUE_WARNING_SAME_VEHICLE) {
        m->kind = VENUE_WARNING__KIND__SAME_VEHICLE;
        m->has_beacon_key_data = TRUE;
        m->beacon_key_data.len = PROX_KEY_LEN;
        m->beacon_key_data.data = (uint8_t *)w->beacon_tek.key;
        m->has_beacon_rolling_start_interval_number = TRUE;
        m->beacon_rolling_start_interval_number = (int32_t)w->beacon_tek.rolling_start;
        m->has_beacon_rolling_period = TRUE;
        m->beacon_rolling_period = (int32_t)w->beacon_tek.rolling_period;
    } else {
        m->kind = VENUE_WARNING__KIND__VENUE;
        m->has_location_hash = TRUE;
        m->location_hash.len = PROX_LOCATION_HASH_LEN;
        m->location_hash.data = (uint8_t *)w->location_hash;
    }
    m->has_start_timestamp = TRUE;
    m->start_timestamp = (uint64_t)w->start;
    m->has_end_timestamp = TRUE;
    m->end_timestamp = (uint64_t)w->end;
    m->has_transmission_risk_level = TRUE;
    m->transmission_risk_level = w->transmission_risk_level;
}

GBytes *prox_export_build(const ProxExportMeta *meta, const ProxDiagnosisKey *keys, size_t n,
                          const ProxExportSigner *signer, GError **error)
{
    return prox_export_build_full(meta, keys, n, NULL, 0, signer, error);
}

GBytes *prox_export_build_full(const ProxExportMeta *meta, const ProxDiagnosisKey *keys, size_t n,
                               const ProxVenueWarning *warnings, size_t n_warnings,
                               const ProxExportSigner *signer, GError **error)
{
    g_return_val_if_fail(meta != NULL && signer != NULL && (keys != NULL || n == 0) &&
                             (warnings != NULL || n_warnings == 0),
                         NULL);
    if (!check_meta(meta, error))
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const ProxDiagnosisKey *k = &keys[i];
        if (!check_key_fields("key", i, k->tek.rolling_start, k->tek.rolling_period,
                              k->transmission_risk_level, k->report_type,
                              PROX_ERROR_INVALID_ARGUMENT, error))
            return NULL;
    }
    if (n_warnings > MAX_VENUE_WARNINGS) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "%zu venue warnings are more than a list may hold (%d)", n_warnings,
                    MAX_VENUE_WARNINGS);
        return NULL;
    }
    for (size_t i = 0; i < n_warnings; i++) {
        g_autofree char *what = g_strdup_printf("venue warning %zu", i);
        if (!prox_venue_warning_check(&warnings[i], what, error))
            return NULL;
    }
    ProxVenueWarning *sorted_warnings = g_memdup2(warnings, n_warnings * sizeof *warnings);
    if (n_warnings > 1)
        qsort(sorted_warnings, n_warnings, sizeof *sorted_warnings, warning_compare);
    VenueWarning *warning_messages = g_new(VenueWarning, n_warnings);
    VenueWarning **warning_pointers = g_new(VenueWarning *, n_warnings);
    for (size_t i = 0; i < n_warnings; i++) {
        warning_to_message(&sorted_warnings[i], &warning_messages[i]);
        warning_pointers[i] = &warning_messages[i];
    }

    ProxDiagnosisKey *sorted = g_memdup2(keys, n * sizeof *keys);
    if (n > 1)
        qsort(sorted, n, sizeof *sorted, key_compare);
    TemporaryExposureKey *key_messages = g_new(TemporaryExposureKey, n);
    TemporaryExposureKey **key_pointers = g_new(TemporaryExposureKey *, n);
    for (size_t i = 0; i < n; i++) {
        TemporaryExposureKey *m = &key_messages[i];
        const ProxDiagnosisKey *k = &sorted[i];
        temporary_exposure_key__init(m);
        m->has_key_data = TRUE;
        m->key_data.len = PROX_KEY_LEN;
        m->key_data.data = (uint8_t *)k->tek.key;
        m->has_rolling_start_interval_number = TRUE;
        m->rolling_start_interval_number = (int32_t)k->tek.rolling_start;
        m->has_rolling_period = TRUE;
        m->rolling_period = (int32_t)k->tek.rolling_period;
        /* Absent reads back as 0 / UNKNOWN, so only non-defaults are written. */
        m->has_transmission_risk_level = k->transmission_risk_level != 0;
        m->transmission_risk_level = k->transmission_risk_level;
        m->has_report_type = k->report_type != PROX_REPORT_UNKNOWN;
        m->report_type = (TemporaryExposureKey__ReportType)k->report_type;
        m->has_days_since_onset_of_symptoms = k->has_days_since_onset;
        m->days_since_onset_of_symptoms = k->days_since_onset;
        key_pointers[i] = m;
    }

    SignatureInfo info = SIGNATURE_INFO__INIT;
    info.verification_key_id = signer->key_id;
    info.verification_key_version = signer->version;
    info.signature_algorithm = (char *)algorithm_of(signer->type);
    SignatureInfo *infos[] = {&info};

    TemporaryExposureKeyExport message = TEMPORARY_EXPOSURE_KEY_EXPORT__INIT;
    message.has_start_timestamp = TRUE;
    message.start_timestamp = (uint64_t)meta->start_timestamp;
    message.has_end_timestamp = TRUE;
    message.end_timestamp = (uint64_t)meta->end_timestamp;
    message.region = meta->region != NULL && meta->region[0] != '\0' ? (char *)meta->region : NULL;
    message.has_batch_num = TRUE;
    message.batch_num = meta->batch_num;
    message.has_batch_size = TRUE;
    message.batch_size = meta->batch_size;
    message.n_signature_infos = 1;
    message.signature_infos = infos;
    message.n_keys = n;
    message.keys = key_pointers;
    message.n_venue_warnings = n_warnings;
    message.venue_warnings = warning_pointers;

    GBytes *zip = NULL;
    GBytes *signature = NULL;
    uint8_t *bin = NULL;
    uint8_t *sig_bin = NULL;
    size_t body_len = temporary_exposure_key_export__get_packed_size(&message);
    if (body_len > PROX_EXPORT_BIN_MAX - PROX_EXPORT_HEADER_LEN) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "%zu keys make export.bin larger than the limit of %zu bytes", n,
                    PROX_EXPORT_BIN_MAX);
        goto out;
    }
    size_t bin_len = PROX_EXPORT_HEADER_LEN + body_len;
    bin = g_malloc(bin_len);
    memcpy(bin, PROX_EXPORT_HEADER, PROX_EXPORT_HEADER_LEN);
    temporary_exposure_key_export__pack(&message, bin + PROX_EXPORT_HEADER_LEN);

    signature = signer_sign(signer, bin, bin_len, error);
    if (signature == NULL)
        goto out;
    TEKSignature tek_signature = TEKSIGNATURE__INIT;
    tek_signature.signature_info = &info;
    tek_signature.has_batch_num = TRUE;
    tek_signature.batch_num = meta->batch_num;
    tek_signature.has_batch_size = TRUE;
    tek_signature.batch_size = meta->batch_size;
    tek_signature.has_signature = TRUE;
    tek_signature.signature.data =
        (uint8_t *)g_bytes_get_data(signature, &tek_signature.signature.len);
    TEKSignature *signatures[] = {&tek_signature};
    TEKSignatureList list = TEKSIGNATURE_LIST__INIT;
    list.n_signatures = 1;
    list.signatures = signatures;
    size_t sig_len = teksignature_list__get_packed_size(&list);
    sig_bin = g_malloc(sig_len);
    teksignature_list__pack(&list, sig_bin);

    zip = prox_export_pack(bin, bin_len, sig_bin, sig_len, error);

out:
    g_free(sig_bin);
    g_free(bin);
    if (signature != NULL)
        g_bytes_unref(signature);
    g_free(key_pointers);
    g_free(key_messages);
    g_free(sorted);
    g_free(warning_pointers);
    g_free(warning_messages);
    g_free(sorted_warnings);
    return zip;
}

gboolean prox_export_write(const char *zip_path, const ProxExportMeta *meta,
                           const ProxDiagnosisKey *keys, size_t n, const ProxExportSigner *signer,
                           GError **error)
{
    g_return_val_if_fail(zip_path != NULL, FALSE);
    g_autoptr(GBytes) zip = prox_export_build(meta, keys, n, signer, error);
    if (zip == NULL)
        return FALSE;
    size_t len = 0;
    const char *data = g_bytes_get_data(zip, &len);
    g_autoptr(GError) local = NULL;
    /* Temporary file in the same directory, fsync, rename: readers never see half a file. */
    if (!g_file_set_contents_full(zip_path, data, (gssize)len, G_FILE_SET_CONTENTS_CONSISTENT, 0644,
                                  &local)) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "%s", local->message);
        return FALSE;
    }
    return TRUE;
}
