/* fuzz-venue.c - libFuzzer harness for venue QR codes (prox_venue_parse_url).
 *
 * The first input byte picks what the rest is, so each layer gets fuzzed on its own:
 *   0: the URL text                     -> parsed without a keyring and with one holding
 *                                          the fuzz key
 *   1: a serialized SignedVenue, base64url-encoded and prefixed here, so the protobuf and
 *      canonical-encoding checks are reached without having to produce valid base64
 *   2: a serialized VenueDescriptor, signed here with the fuzz key, so the field checks
 *      and the verification behind a valid signature are reached
 * Every input is parsed both ways. A parse must either return a complete, valid venue or
 * nothing; with a keyring the venue is verified, without it never; what verifies also
 * parses without the keyring, to the same venue; a correctly signed descriptor naming the
 * fuzz key must verify. Anything else aborts.
 *
 * Seeds: FUZZ_VENUE_WRITE_SEEDS=<dir> ./fuzz-venue writes the seed corpus (venues made with
 * prox_venue_create, in each of the three forms) into <dir> and exits; corpus-venue/ holds
 * its output.
 */
#include "prox-venue.h"

#include "venue.pb-c.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_KEY_ID "fuzz"
#define FUZZ_KEY_VERSION "v1"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ProxExportKeyring *keyring;
static ProxExportSigner *signer;

static void check(gboolean condition)
{
    if (!condition)
        abort();
}

static ProxExportSigner *make_signer(const char *key_id, uint8_t seed_byte,
                                     uint8_t public_key[PROX_ED25519_PUBLIC_KEY_LEN])
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    uint8_t secret_key[PROX_ED25519_SECRET_KEY_LEN];
    memset(seed, seed_byte, sizeof seed);
    crypto_sign_seed_keypair(public_key, secret_key, seed);
    ProxExportSigner *s =
        prox_export_signer_new_ed25519(key_id, FUZZ_KEY_VERSION, secret_key, NULL);
    check(s != NULL);
    sodium_memzero(secret_key, sizeof secret_key);
    return s;
}

/* URL of `payload` (a SignedVenue): prefix + unpadded base64url. */
static char *url_of(const uint8_t *payload, size_t len)
{
    size_t b64_size = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *b64 = g_malloc(b64_size);
    sodium_bin2base64(b64, b64_size, payload, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *url = g_strconcat(PROX_VENUE_URL_PREFIX, b64, NULL);
    g_free(b64);
    return url;
}

/* SignedVenue { descriptor, Ed25519 signature by the fuzz key }, serialized. */
static uint8_t *sign_descriptor(const uint8_t *desc, size_t desc_len, size_t *out_len)
{
    size_t domain_len = strlen(PROX_VENUE_SIG_DOMAIN);
    size_t msg_len = domain_len + 1 + desc_len;
    uint8_t *msg = g_malloc(msg_len);
    memcpy(msg, PROX_VENUE_SIG_DOMAIN, domain_len);
    msg[domain_len] = 0;
    if (desc_len > 0)
        memcpy(msg + domain_len + 1, desc, desc_len);
    GBytes *sig = prox_export_signer_sign(signer, msg, msg_len, NULL);
    check(sig != NULL);
    g_free(msg);

    SignedVenue sv = SIGNED_VENUE__INIT;
    sv.has_descriptor = TRUE;
    sv.descriptor.data = (uint8_t *)desc;
    sv.descriptor.len = desc_len;
    sv.has_signature = TRUE;
    sv.signature.data = (uint8_t *)g_bytes_get_data(sig, &sv.signature.len);
    *out_len = signed_venue__get_packed_size(&sv);
    uint8_t *out = g_malloc(*out_len + 1);
    signed_venue__pack(&sv, out);
    g_bytes_unref(sig);
    return out;
}

/* A returned venue is complete and within the documented limits. */
static void check_venue(const ProxVenue *v, gboolean verified)
{
    check(v != NULL && v->verified == verified);
    check(v->name != NULL && v->address != NULL && v->key_id != NULL && v->key_version != NULL);
    size_t name_len = strlen(v->name), address_len = strlen(v->address);
    check(name_len >= 1 && name_len <= PROX_VENUE_NAME_MAX);
    check(address_len <= PROX_VENUE_ADDRESS_MAX);
    check(g_utf8_validate(v->name, -1, NULL) && g_utf8_validate(v->address, -1, NULL));
    check(prox_venue_type_to_string(v->type) != NULL);
    check(v->default_stay_minutes >= PROX_VENUE_STAY_MIN_MINUTES &&
          v->default_stay_minutes <= PROX_VENUE_STAY_MAX_MINUTES);
    check(*v->key_id != '\0' && *v->key_version != '\0');
}

/* Parses `url` (NUL-terminated, allocated to its exact size so ASan sees any over-read)
 * both ways. `signed_here`: the descriptor was signed with the fuzz key by this harness. */
static void parse_both(const char *url, gboolean signed_here)
{
    ProxVenue *plain = NULL, *checked = NULL;
    GError *error = NULL;
    gboolean plain_ok = prox_venue_parse_url(url, NULL, &plain, &error);
    if (plain_ok) {
        check(error == NULL);
        check_venue(plain, FALSE);
    } else {
        check(plain == NULL && error != NULL && error->domain == PROX_ERROR);
        g_clear_error(&error);
    }

    gboolean checked_ok = prox_venue_parse_url(url, keyring, &checked, &error);
    if (checked_ok) {
        check(error == NULL && plain_ok);
        check_venue(checked, TRUE);
        check(strcmp(checked->name, plain->name) == 0);
        check(strcmp(checked->address, plain->address) == 0);
        check(checked->type == plain->type &&
              checked->default_stay_minutes == plain->default_stay_minutes);
        check(memcmp(checked->seed, plain->seed, PROX_VENUE_SEED_LEN) == 0);
        check(memcmp(checked->location_id, plain->location_id, PROX_LOCATION_ID_LEN) == 0);
        check(strcmp(checked->key_id, FUZZ_KEY_ID) == 0 &&
              strcmp(checked->key_version, FUZZ_KEY_VERSION) == 0);
    } else {
        check(checked == NULL && error != NULL && error->domain == PROX_ERROR);
        /* What parses and names the fuzz key verifies when it was signed with it. */
        if (signed_here && plain_ok && strcmp(plain->key_id, FUZZ_KEY_ID) == 0 &&
            strcmp(plain->key_version, FUZZ_KEY_VERSION) == 0)
            abort();
        if (plain_ok)
            check(error->code == PROX_ERROR_SIGNATURE);
        g_clear_error(&error);
    }
    prox_venue_free(plain);
    prox_venue_free(checked);
}

/* ---- seed corpus ---- */

static void write_seed(const char *dir, const char *name, uint8_t mode, const void *data,
                       size_t len)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autofree uint8_t *bytes = g_malloc(len + 1);
    bytes[0] = mode;
    memcpy(bytes + 1, data, len);
    GError *error = NULL;
    if (!g_file_set_contents(path, (const char *)bytes, (gssize)(len + 1), &error)) {
        fprintf(stderr, "%s\n", error->message);
        exit(1);
    }
}

/* Decodes a URL made by prox_venue_create back to its SignedVenue bytes. */
static uint8_t *payload_of(const char *url, size_t *len)
{
    const char *b64 = url + strlen(PROX_VENUE_URL_PREFIX);
    uint8_t *payload = g_malloc(strlen(b64) + 1);
    check(sodium_base642bin(payload, strlen(b64) + 1, b64, strlen(b64), NULL, len, NULL,
                            sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0);
    return payload;
}

static void write_seeds(const char *dir)
{
    static const struct {
        const char *name;
        const char *address;
        ProxVenueType type;
        guint stay;
        gboolean other_key; /* signed by a key the harness's keyring does not hold */
    } venues[] = {
        {"Chợ Bến Thành", "Lê Lợi, Quận 1, TP. Hồ Chí Minh", PROX_VENUE_TYPE_MARKET, 90, FALSE},
        {"Bus 03 stop", "", PROX_VENUE_TYPE_BUS_STOP, 5, FALSE},
        {"X", NULL, PROX_VENUE_TYPE_EVENT, 1440, FALSE},
        {"Phòng khám Hoà Bình — khu A, phòng chờ 14", "12 Nguyễn Trãi", PROX_VENUE_TYPE_HEALTHCARE,
         30, FALSE},
        {"Café", "1 Main St", PROX_VENUE_TYPE_RESTAURANT, 60, TRUE},
    };
    g_mkdir_with_parents(dir, 0755);
    uint8_t other_public[PROX_ED25519_PUBLIC_KEY_LEN];
    ProxExportSigner *other = make_signer("other", 0x17, other_public);
    for (guint i = 0; i < G_N_ELEMENTS(venues); i++) {
        char *url = NULL;
        GError *error = NULL;
        if (!prox_venue_create(venues[i].name, venues[i].address, venues[i].type, venues[i].stay,
                               venues[i].other_key ? other : signer, &url, NULL, &error)) {
            fprintf(stderr, "venue %u: %s\n", i, error->message);
            exit(1);
        }
        char name[32];
        g_snprintf(name, sizeof name, "url-%u", i);
        write_seed(dir, name, 0, url, strlen(url));
        size_t payload_len = 0;
        g_autofree uint8_t *payload = payload_of(url, &payload_len);
        g_snprintf(name, sizeof name, "signed-%u", i);
        write_seed(dir, name, 1, payload, payload_len);
        SignedVenue *sv = signed_venue__unpack(NULL, payload_len, payload);
        check(sv != NULL && sv->has_descriptor);
        g_snprintf(name, sizeof name, "descriptor-%u", i);
        write_seed(dir, name, 2, sv->descriptor.data, sv->descriptor.len);
        signed_venue__free_unpacked(sv, NULL);
        g_free(url);
    }
    prox_export_signer_free(other);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    check(sodium_init() >= 0);
    uint8_t public_key[PROX_ED25519_PUBLIC_KEY_LEN];
    signer = make_signer(FUZZ_KEY_ID, 0x42, public_key);
    keyring = prox_export_keyring_new();
    check(
        prox_export_keyring_add_ed25519(keyring, FUZZ_KEY_ID, FUZZ_KEY_VERSION, public_key, NULL));
    const char *seeds = g_getenv("FUZZ_VENUE_WRITE_SEEDS");
    if (seeds != NULL) {
        write_seeds(seeds);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0] % 3;
    data++;
    size--;

    char *url = NULL;
    if (mode == 0) {
        /* Exactly size + 1 bytes; an embedded NUL just ends the URL early. */
        url = g_malloc(size + 1);
        memcpy(url, data, size);
        url[size] = '\0';
    } else if (mode == 1) {
        url = url_of(data, size);
    } else {
        size_t payload_len = 0;
        uint8_t *payload = sign_descriptor(data, size, &payload_len);
        url = url_of(payload, payload_len);
        g_free(payload);
    }
    parse_both(url, mode == 2);
    g_free(url);
    return 0;
}
