/* test-venue.c - venue QR codes, location hashes, warning checks and matching (prox-venue.h). */
#include "prox-hex.h"
#include "prox-keys.h"
#include "prox-venue.h"

#include "venue.pb-c.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <string.h>

#define KEY_ID "test-authority"
#define KEY_VERSION "v1"
#define DAY ((gint64)86400)
#define T0 ((gint64)1700006400) /* 2023-11-15 00:00:00 UTC: a day and interval boundary */

/* ---- helpers ---- */

static void keypair(guint8 seed_byte, guint8 pk[PROX_ED25519_PUBLIC_KEY_LEN],
                    guint8 sk[PROX_ED25519_SECRET_KEY_LEN])
{
    guint8 seed[crypto_sign_SEEDBYTES];
    memset(seed, seed_byte, sizeof seed);
    g_assert_cmpint(sodium_init(), >=, 0);
    crypto_sign_seed_keypair(pk, sk, seed);
}

static ProxExportSigner *signer_new(guint8 seed_byte, const char *id, const char *version)
{
    guint8 pk[PROX_ED25519_PUBLIC_KEY_LEN];
    guint8 sk[PROX_ED25519_SECRET_KEY_LEN];
    keypair(seed_byte, pk, sk);
    g_autoptr(GError) error = NULL;
    ProxExportSigner *signer = prox_export_signer_new_ed25519(id, version, sk, &error);
    g_assert_no_error(error);
    sodium_memzero(sk, sizeof sk);
    return signer;
}

static ProxExportKeyring *keyring_new(guint8 seed_byte, const char *id, const char *version)
{
    guint8 pk[PROX_ED25519_PUBLIC_KEY_LEN];
    guint8 sk[PROX_ED25519_SECRET_KEY_LEN];
    keypair(seed_byte, pk, sk);
    ProxExportKeyring *keyring = prox_export_keyring_new();
    g_assert_true(prox_export_keyring_add_ed25519(keyring, id, version, pk, NULL));
    return keyring;
}

static char *create_url(const ProxExportSigner *signer, const char *name, const char *address,
                        ProxVenue **venue)
{
    char *url = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(
        prox_venue_create(name, address, PROX_VENUE_TYPE_SHOP, 60, signer, &url, venue, &error));
    g_assert_no_error(error);
    g_assert_nonnull(url);
    return url;
}

/* Payload bytes of a URL, decoded independently of the code under test (GLib base64). */
static GBytes *url_payload(const char *url)
{
    g_assert_true(g_str_has_prefix(url, PROX_VENUE_URL_PREFIX));
    GString *b64 = g_string_new(url + strlen(PROX_VENUE_URL_PREFIX));
    for (gsize i = 0; i < b64->len; i++) {
        if (b64->str[i] == '-')
            b64->str[i] = '+';
        else if (b64->str[i] == '_')
            b64->str[i] = '/';
        g_assert_true(g_ascii_isalnum(b64->str[i]) || b64->str[i] == '+' || b64->str[i] == '/');
    }
    while (b64->len % 4 != 0)
        g_string_append_c(b64, '=');
    gsize len = 0;
    guint8 *data = g_base64_decode(b64->str, &len);
    g_string_free(b64, TRUE);
    return g_bytes_new_take(data, len);
}

/* The URL of arbitrary payload bytes. */
static char *payload_url(const guint8 *data, gsize len)
{
    g_autofree char *b64 = g_base64_encode(data, len);
    GString *url = g_string_new(PROX_VENUE_URL_PREFIX);
    for (const char *p = b64; *p != '\0' && *p != '='; p++)
        g_string_append_c(url, *p == '+' ? '-' : *p == '/' ? '_' : *p);
    return g_string_free(url, FALSE);
}

static void sha256_domain(const char *domain, const guint8 *data, gsize len, guint8 out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int out_len = 0;
    const guint8 zero = 0;
    g_assert_nonnull(ctx);
    g_assert_cmpint(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), ==, 1);
    g_assert_cmpint(EVP_DigestUpdate(ctx, domain, strlen(domain)), ==, 1);
    g_assert_cmpint(EVP_DigestUpdate(ctx, &zero, 1), ==, 1);
    g_assert_cmpint(EVP_DigestUpdate(ctx, data, len), ==, 1);
    g_assert_cmpint(EVP_DigestFinal_ex(ctx, out, &out_len), ==, 1);
    g_assert_cmpuint(out_len, ==, 32);
    EVP_MD_CTX_free(ctx);
}

static void assert_parse_fails(const char *url, const ProxExportKeyring *keyring, gint code)
{
    ProxVenue *venue = (ProxVenue *)0x1; /* must be reset to NULL */
    g_autoptr(GError) error = NULL;
    g_assert_false(prox_venue_parse_url(url, keyring, &venue, &error));
    g_assert_null(venue);
    g_assert_nonnull(error);
    if (code >= 0 && !g_error_matches(error, PROX_ERROR, code))
        g_error("parsing %s: expected code %d, got %d: %s", url, code, error->code, error->message);
}

/* A descriptor packed, signed by `signer` (domain-separated) and wrapped into a URL. Lets
 * tests produce correctly signed payloads with invalid content. */
static char *sign_descriptor_bytes(const ProxExportSigner *signer, const guint8 *desc,
                                   gsize desc_len, const guint8 *extra, gsize extra_len)
{
    GByteArray *msg = g_byte_array_new();
    g_byte_array_append(msg, (const guint8 *)PROX_VENUE_SIG_DOMAIN,
                        strlen(PROX_VENUE_SIG_DOMAIN) + 1);
    g_byte_array_append(msg, desc, (guint)desc_len);
    g_autoptr(GError) error = NULL;
    g_autoptr(GBytes) sig = prox_export_signer_sign(signer, msg->data, msg->len, &error);
    g_assert_no_error(error);
    g_byte_array_unref(msg);
    SignedVenue sv = SIGNED_VENUE__INIT;
    sv.has_descriptor = TRUE;
    sv.descriptor.data = (guint8 *)desc;
    sv.descriptor.len = desc_len;
    sv.has_signature = TRUE;
    sv.signature.data = (guint8 *)g_bytes_get_data(sig, &sv.signature.len);
    gsize len = signed_venue__get_packed_size(&sv);
    guint8 *buf = g_malloc(len + extra_len);
    signed_venue__pack(&sv, buf);
    if (extra_len > 0)
        memcpy(buf + len, extra, extra_len);
    char *url = payload_url(buf, len + extra_len);
    g_free(buf);
    return url;
}

static void descriptor_init(VenueDescriptor *d, guint8 seed[PROX_VENUE_SEED_LEN])
{
    venue_descriptor__init(d);
    memset(seed, 0x5c, PROX_VENUE_SEED_LEN);
    d->has_version = TRUE;
    d->version = 1;
    d->name = (char *)"Bakery";
    d->address = (char *)"1 Main St";
    d->has_type = TRUE;
    d->type = VENUE_DESCRIPTOR__TYPE__SHOP;
    d->has_default_stay_minutes = TRUE;
    d->default_stay_minutes = 30;
    d->has_seed = TRUE;
    d->seed.data = seed;
    d->seed.len = PROX_VENUE_SEED_LEN;
    d->key_id = (char *)KEY_ID;
    d->key_version = (char *)KEY_VERSION;
}

static char *sign_descriptor(const ProxExportSigner *signer, const VenueDescriptor *d)
{
    gsize len = venue_descriptor__get_packed_size(d);
    g_autofree guint8 *buf = g_malloc(len);
    venue_descriptor__pack(d, buf);
    return sign_descriptor_bytes(signer, buf, len, NULL, 0);
}

/* ---- types ---- */

static void test_types(void)
{
    static const char *const names[] = {"other",    "shop",       "office",  "school",     "market",
                                        "bus-stop", "restaurant", "worship", "healthcare", "event"};
    for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
        g_assert_cmpstr(prox_venue_type_to_string((ProxVenueType)i), ==, names[i]);
        ProxVenueType type = (ProxVenueType)99;
        g_assert_true(prox_venue_type_from_string(names[i], &type));
        g_assert_cmpint(type, ==, (int)i);
    }
    g_assert_null(prox_venue_type_to_string((ProxVenueType)10));
    g_assert_null(prox_venue_type_to_string((ProxVenueType)-1));
    ProxVenueType type = PROX_VENUE_TYPE_EVENT;
    g_assert_false(prox_venue_type_from_string("Shop", &type));
    g_assert_false(prox_venue_type_from_string("bus_stop", &type));
    g_assert_false(prox_venue_type_from_string("", &type));
    g_assert_false(prox_venue_type_from_string(NULL, &type));
    g_assert_cmpint(type, ==, PROX_VENUE_TYPE_EVENT);
}

/* ---- create and parse ---- */

static void test_round_trip(void)
{
    g_autoptr(ProxExportSigner) signer = signer_new(1, KEY_ID, KEY_VERSION);
    g_autoptr(ProxExportKeyring) keyring = keyring_new(1, KEY_ID, KEY_VERSION);
    /* 40-byte name, 60-byte address: the size docs/venues.md budgets for. */
    const char *name = "Phở Hà Nội — Nhà hàng số 1 (Quận 1)";
    const char *address = "123 Nguyễn Huệ, Phường Bến Nghé, Quận 1, TP.HCM";
    g_autoptr(ProxVenue) created = NULL;
    g_autofree char *url = create_url(signer, name, address, &created);
    g_assert_true(g_str_has_prefix(url, PROX_VENUE_URL_PREFIX));
    g_assert_cmpuint(strlen(url), <=, PROX_VENUE_URL_MAX);
    g_assert_null(strchr(url, '='));
    g_assert_true(created->verified);

    g_autoptr(ProxVenue) venue = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_venue_parse_url(url, keyring, &venue, &error));
    g_assert_no_error(error);
    g_assert_true(venue->verified);
    g_assert_cmpstr(venue->name, ==, name);
    g_assert_cmpstr(venue->address, ==, address);
    g_assert_cmpint(venue->type, ==, PROX_VENUE_TYPE_SHOP);
    g_assert_cmpuint(venue->default_stay_minutes, ==, 60);
    g_assert_cmpstr(venue->key_id, ==, KEY_ID);
    g_assert_cmpstr(venue->key_version, ==, KEY_VERSION);
    g_assert_cmpmem(venue->seed, PROX_VENUE_SEED_LEN, created->seed, PROX_VENUE_SEED_LEN);
    g_assert_cmpmem(venue->location_id, PROX_LOCATION_ID_LEN, created->location_id,
                    PROX_LOCATION_ID_LEN);

    /* The location id is SHA-256 over the domain, 0x00 and the descriptor bytes as carried. */
    g_autoptr(GBytes) payload = url_payload(url);
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(payload, &len);
    SignedVenue *sv = signed_venue__unpack(NULL, len, data);
    g_assert_nonnull(sv);
    guint8 expected[32];
    sha256_domain(PROX_VENUE_LOCATION_DOMAIN, sv->descriptor.data, sv->descriptor.len, expected);
    g_assert_cmpmem(venue->location_id, 32, expected, 32);
    /* And the signature is Ed25519 over the domain-separated descriptor. */
    guint8 pk[PROX_ED25519_PUBLIC_KEY_LEN];
    guint8 sk[PROX_ED25519_SECRET_KEY_LEN];
    keypair(1, pk, sk);
    GByteArray *msg = g_byte_array_new();
    g_byte_array_append(msg, (const guint8 *)PROX_VENUE_SIG_DOMAIN,
                        strlen(PROX_VENUE_SIG_DOMAIN) + 1);
    g_byte_array_append(msg, sv->descriptor.data, (guint)sv->descriptor.len);
    g_assert_cmpuint(sv->signature.len, ==, 64);
    g_assert_cmpint(crypto_sign_verify_detached(sv->signature.data, msg->data, msg->len, pk), ==,
                    0);
    g_byte_array_unref(msg);
    signed_venue__free_unpacked(sv, NULL);

    /* Without a keyring: readable, but never verified. */
    g_autoptr(ProxVenue) inspected = NULL;
    g_assert_true(prox_venue_parse_url(url, NULL, &inspected, &error));
    g_assert_no_error(error);
    g_assert_false(inspected->verified);
    g_assert_cmpmem(inspected->location_id, 32, venue->location_id, 32);

    /* A key pinned for any id verifies too. */
    g_autoptr(ProxExportKeyring) any = prox_export_keyring_new();
    g_assert_true(prox_export_keyring_add_ed25519(any, NULL, NULL, pk, NULL));
    g_autoptr(ProxVenue) via_any = NULL;
    g_assert_true(prox_venue_parse_url(url, any, &via_any, &error));
    g_assert_true(via_any->verified);

    /* Two registrations of the same venue are different venues (fresh seed). */
    g_autoptr(ProxVenue) second = NULL;
    g_autofree char *url2 = create_url(signer, name, address, &second);
    g_assert_cmpstr(url, !=, url2);
    g_assert_true(memcmp(second->location_id, created->location_id, 32) != 0);

    /* Empty address and the extreme stays. */
    g_autofree char *url3 = NULL;
    g_assert_true(
        prox_venue_create("X", NULL, PROX_VENUE_TYPE_EVENT, 5, signer, &url3, NULL, &error));
    g_autoptr(ProxVenue) v3 = NULL;
    g_assert_true(prox_venue_parse_url(url3, keyring, &v3, &error));
    g_assert_cmpstr(v3->address, ==, "");
    g_assert_cmpuint(v3->default_stay_minutes, ==, 5);
    g_assert_cmpint(v3->type, ==, PROX_VENUE_TYPE_EVENT);
}

static void test_unpinned_signer(void)
{
    g_autoptr(ProxExportKeyring) keyring = keyring_new(1, KEY_ID, KEY_VERSION);
    /* Another key claiming the pinned id and version. */
    g_autoptr(ProxExportSigner) impostor = signer_new(2, KEY_ID, KEY_VERSION);
    g_autofree char *forged = create_url(impostor, "Bakery", "", NULL);
    assert_parse_fails(forged, keyring, PROX_ERROR_SIGNATURE);
    g_autoptr(ProxVenue) venue = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_false(prox_venue_parse_url(forged, keyring, &venue, &error));
    g_assert_nonnull(strstr(error->message, "not signed by a known health authority"));
    g_clear_error(&error);

    /* The right key under an id that is not pinned. */
    g_autoptr(ProxExportSigner) other_id = signer_new(1, "other-authority", KEY_VERSION);
    g_autofree char *url = create_url(other_id, "Bakery", "", NULL);
    assert_parse_fails(url, keyring, PROX_ERROR_SIGNATURE);
    g_autoptr(ProxExportSigner) other_version = signer_new(1, KEY_ID, "v2");
    g_autofree char *url_v2 = create_url(other_version, "Bakery", "", NULL);
    assert_parse_fails(url_v2, keyring, PROX_ERROR_SIGNATURE);
    /* An empty keyring trusts nothing. */
    g_autoptr(ProxExportKeyring) empty = prox_export_keyring_new();
    assert_parse_fails(url, empty, PROX_ERROR_SIGNATURE);
}

static void test_create_rejects(void)
{
    g_autoptr(ProxExportSigner) signer = signer_new(1, KEY_ID, KEY_VERSION);
    g_autofree char *name65 = g_strnfill(65, 'n');
    g_autofree char *name64 = g_strnfill(64, 'n');
    g_autofree char *address97 = g_strnfill(97, 'a');
    g_autofree char *address96 = g_strnfill(96, 'a');
    struct {
        const char *name;
        const char *address;
        int type;
        guint stay;
    } bad[] = {
        {"", "", PROX_VENUE_TYPE_SHOP, 60},
        {name65, "", PROX_VENUE_TYPE_SHOP, 60},
        {"ok", address97, PROX_VENUE_TYPE_SHOP, 60},
        {"bad \xff utf8", "", PROX_VENUE_TYPE_SHOP, 60},
        {"ok", "bad \xc3", PROX_VENUE_TYPE_SHOP, 60},
        {"new\nline", "", PROX_VENUE_TYPE_SHOP, 60},
        {"ok", "", 10, 60},
        {"ok", "", -1, 60},
        {"ok", "", PROX_VENUE_TYPE_SHOP, 4},
        {"ok", "", PROX_VENUE_TYPE_SHOP, 1441},
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        char *url = (char *)0x1;
        ProxVenue *venue = (ProxVenue *)0x1;
        g_autoptr(GError) error = NULL;
        g_assert_false(prox_venue_create(bad[i].name, bad[i].address, (ProxVenueType)bad[i].type,
                                         bad[i].stay, signer, &url, &venue, &error));
        g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
        g_assert_null(url);
        g_assert_null(venue);
    }
    /* The limits themselves are fine, and still fit the URL limit. */
    g_autofree char *url = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_venue_create(name64, address96, PROX_VENUE_TYPE_OTHER, 1440, signer, &url,
                                    NULL, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(strlen(url), <=, PROX_VENUE_URL_MAX);

    /* A key id so long the URL would pass the limit is refused, not printed. */
    g_autofree char *long_id = g_strnfill(120, 'k');
    g_autoptr(ProxExportSigner) long_signer = signer_new(1, long_id, KEY_VERSION);
    g_autofree char *too_long = NULL;
    g_assert_false(prox_venue_create(name64, address96, PROX_VENUE_TYPE_OTHER, 60, long_signer,
                                     &too_long, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_assert_null(too_long);
    g_clear_error(&error);

    /* ECDSA keys do not sign venue codes. */
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    g_assert_nonnull(pkey);
    BIO *bio = BIO_new(BIO_s_mem());
    g_assert_true(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL));
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);
    g_autoptr(ProxExportSigner) ecdsa =
        prox_export_signer_new_ecdsa_pem(KEY_ID, KEY_VERSION, pem, (gsize)pem_len, &error);
    g_assert_no_error(error);
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    g_autofree char *ecdsa_url = NULL;
    g_assert_false(
        prox_venue_create("ok", "", PROX_VENUE_TYPE_SHOP, 60, ecdsa, &ecdsa_url, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
}

/* Every truncation of the payload is refused; every single changed character or byte is
 * refused or fails the signature. Never accepted. */
static void test_truncations_and_flips(void)
{
    g_autoptr(ProxExportSigner) signer = signer_new(1, KEY_ID, KEY_VERSION);
    g_autoptr(ProxExportKeyring) keyring = keyring_new(1, KEY_ID, KEY_VERSION);
    g_autofree char *url = create_url(signer, "Bakery on the corner", "1 Main St", NULL);
    gsize url_len = strlen(url);
    gsize prefix_len = strlen(PROX_VENUE_URL_PREFIX);
    guint tried = 0;

    /* Truncated URLs, without and with a keyring. */
    for (gsize cut = 0; cut < url_len; cut++) {
        g_autofree char *truncated = g_strndup(url, cut);
        assert_parse_fails(truncated, keyring, -1);
        assert_parse_fails(truncated, NULL, -1);
        tried++;
    }

    /* Each character of the base64 changed to each other URL-safe character, or to an
     * invalid one. */
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. ";
    for (gsize pos = prefix_len; pos < url_len; pos++) {
        for (const char *c = alphabet; *c != '\0'; c++) {
            if (*c == url[pos])
                continue;
            g_autofree char *changed = g_strdup(url);
            changed[pos] = *c;
            ProxVenue *venue = NULL;
            g_autoptr(GError) error = NULL;
            g_assert_false(prox_venue_parse_url(changed, keyring, &venue, &error));
            g_assert_null(venue);
            g_assert_true(g_error_matches(error, PROX_ERROR, PROX_ERROR_MALFORMED) ||
                          g_error_matches(error, PROX_ERROR, PROX_ERROR_SIGNATURE) ||
                          g_error_matches(error, PROX_ERROR, PROX_ERROR_UNSUPPORTED));
            tried++;
        }
    }

    /* Each payload byte flipped (three masks) and each truncation of the payload bytes,
     * re-encoded canonically. */
    g_autoptr(GBytes) payload = url_payload(url);
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(payload, &len);
    static const guint8 masks[] = {0x01, 0x80, 0xff};
    guint signature_failures = 0;
    for (gsize pos = 0; pos < len; pos++) {
        for (guint m = 0; m < G_N_ELEMENTS(masks); m++) {
            g_autofree guint8 *copy = g_memdup2(data, len);
            copy[pos] ^= masks[m];
            g_autofree char *changed = payload_url(copy, len);
            ProxVenue *venue = NULL;
            g_autoptr(GError) error = NULL;
            g_assert_false(prox_venue_parse_url(changed, keyring, &venue, &error));
            g_assert_null(venue);
            if (g_error_matches(error, PROX_ERROR, PROX_ERROR_SIGNATURE))
                signature_failures++;
            else
                g_assert_true(g_error_matches(error, PROX_ERROR, PROX_ERROR_MALFORMED) ||
                              g_error_matches(error, PROX_ERROR, PROX_ERROR_UNSUPPORTED));
            tried++;
        }
    }
    /* Flips inside the name, seed and signature parse fine and only the signature catches
     * them: the check really ran. */
    g_assert_cmpuint(signature_failures, >, 64 * 3);
    for (gsize cut = 0; cut < len; cut++) {
        g_autofree char *truncated = payload_url(data, cut);
        assert_parse_fails(truncated, keyring, -1);
        assert_parse_fails(truncated, NULL, -1);
        tried++;
    }
    g_assert_cmpuint(tried, >, 1000);
}

static void test_url_rejects(void)
{
    g_autoptr(ProxExportSigner) signer = signer_new(1, KEY_ID, KEY_VERSION);
    g_autoptr(ProxExportKeyring) keyring = keyring_new(1, KEY_ID, KEY_VERSION);
    g_autofree char *url = create_url(signer, "Bakery", "1 Main St", NULL);
    const char *b64 = url + strlen(PROX_VENUE_URL_PREFIX);
    g_autoptr(ProxVenue) ok = NULL;
    g_assert_true(prox_venue_parse_url(url, keyring, &ok, NULL));

    /* Wrong prefixes. */
    const char *prefixes[] = {"proxd://checkin/v2/", "PROXD://checkin/v1/", "proxd://checkin/v1",
                              "https://checkin/v1/", "proxd:/checkin/v1/",  " proxd://checkin/v1/"};
    for (guint i = 0; i < G_N_ELEMENTS(prefixes); i++) {
        g_autofree char *bad = g_strconcat(prefixes[i], b64, NULL);
        assert_parse_fails(bad, keyring, PROX_ERROR_MALFORMED);
    }
    /* Padding, standard-alphabet characters, whitespace, trailing characters. */
    const char *suffixes[] = {"=", "==", " ", "\n", "A", "AA", "AAA", "AAAA", "?x=1", "#"};
    for (guint i = 0; i < G_N_ELEMENTS(suffixes); i++) {
        g_autofree char *bad = g_strconcat(url, suffixes[i], NULL);
        assert_parse_fails(bad, keyring, PROX_ERROR_MALFORMED);
    }
    assert_parse_fails(PROX_VENUE_URL_PREFIX, keyring, PROX_ERROR_MALFORMED);
    assert_parse_fails("", keyring, PROX_ERROR_MALFORMED);

    /* Over-long: refused before decoding, even with a valid code in front. */
    g_autofree char *filler = g_strnfill(PROX_VENUE_URL_MAX + 1 - strlen(url), 'A');
    g_autofree char *too_long = g_strconcat(url, filler, NULL);
    g_assert_cmpuint(strlen(too_long), ==, PROX_VENUE_URL_MAX + 1);
    assert_parse_fails(too_long, keyring, PROX_ERROR_MALFORMED);
    g_autofree char *huge = g_strnfill(100000, 'A');
    g_autofree char *huge_url = g_strconcat(PROX_VENUE_URL_PREFIX, huge, NULL);
    assert_parse_fails(huge_url, NULL, PROX_ERROR_MALFORMED);

    /* Valid payload plus trailing bytes (still valid protobuf framing or not). */
    g_autoptr(GBytes) payload = url_payload(url);
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(payload, &len);
    const guint8 trailers[][3] = {{0x00}, {0x18, 0x01}, {0x12, 0x00}, {0x0a, 0x00}};
    const gsize trailer_lens[] = {1, 2, 2, 2};
    for (guint i = 0; i < G_N_ELEMENTS(trailers); i++) {
        g_autofree guint8 *copy = g_malloc(len + 3);
        memcpy(copy, data, len);
        memcpy(copy + len, trailers[i], trailer_lens[i]);
        g_autofree char *bad = payload_url(copy, len + trailer_lens[i]);
        assert_parse_fails(bad, keyring, -1);
        assert_parse_fails(bad, NULL, -1);
    }
}

/* Correctly signed, but the content is out of range or not canonical. */
static void test_signed_but_invalid(void)
{
    g_autoptr(ProxExportSigner) signer = signer_new(1, KEY_ID, KEY_VERSION);
    g_autoptr(ProxExportKeyring) keyring = keyring_new(1, KEY_ID, KEY_VERSION);
    guint8 seed[PROX_VENUE_SEED_LEN];
    VenueDescriptor d;

    /* The baseline crafted descriptor is accepted. */
    descriptor_init(&d, seed);
    g_autofree char *good = sign_descriptor(signer, &d);
    g_autoptr(ProxVenue) venue = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_venue_parse_url(good, keyring, &venue, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(venue->name, ==, "Bakery");
    g_assert_cmpuint(venue->default_stay_minutes, ==, 30);

    struct {
        const char *what;
        gint code;
    } cases[] = {
        {"version 2", PROX_ERROR_UNSUPPORTED},       {"no version", PROX_ERROR_UNSUPPORTED},
        {"no name", PROX_ERROR_MALFORMED},           {"empty name", PROX_ERROR_MALFORMED},
        {"name 65 bytes", PROX_ERROR_MALFORMED},     {"name not UTF-8", PROX_ERROR_MALFORMED},
        {"address 97 bytes", PROX_ERROR_MALFORMED},  {"type 10", PROX_ERROR_MALFORMED},
        {"no type", PROX_ERROR_MALFORMED},           {"stay 4", PROX_ERROR_MALFORMED},
        {"stay 1441", PROX_ERROR_MALFORMED},         {"seed 15 bytes", PROX_ERROR_MALFORMED},
        {"no seed", PROX_ERROR_MALFORMED},           {"no key id", PROX_ERROR_MALFORMED},
        {"key id with space", PROX_ERROR_MALFORMED},
    };
    g_autofree char *name65 = g_strnfill(65, 'n');
    g_autofree char *address97 = g_strnfill(97, 'a');
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        descriptor_init(&d, seed);
        switch (i) {
        case 0:
            d.version = 2;
            break;
        case 1:
            d.has_version = FALSE;
            break;
        case 2:
            d.name = NULL;
            break;
        case 3:
            d.name = (char *)"";
            break;
        case 4:
            d.name = name65;
            break;
        case 5:
            d.name = (char *)"caf\xe9";
            break;
        case 6:
            d.address = address97;
            break;
        case 7:
            d.type = (VenueDescriptor__Type)10;
            break;
        case 8:
            d.has_type = FALSE;
            break;
        case 9:
            d.default_stay_minutes = 4;
            break;
        case 10:
            d.default_stay_minutes = 1441;
            break;
        case 11:
            d.seed.len = 15;
            break;
        case 12:
            d.has_seed = FALSE;
            break;
        case 13:
            d.key_id = NULL;
            break;
        case 14:
            d.key_id = (char *)"test authority";
            break;
        }
        g_autofree char *url = sign_descriptor(signer, &d);
        ProxVenue *bad = NULL;
        g_autoptr(GError) err = NULL;
        g_assert_false(prox_venue_parse_url(url, keyring, &bad, &err));
        g_assert_null(bad);
        if (!g_error_matches(err, PROX_ERROR, cases[i].code))
            g_error("%s: expected code %d, got %s", cases[i].what, cases[i].code,
                    err != NULL ? err->message : "success");
    }

    /* Non-canonical encodings of a valid descriptor, correctly signed: an unknown field, a
     * field repeated (last one wins in protobuf), trailing bytes in the SignedVenue. */
    descriptor_init(&d, seed);
    gsize len = venue_descriptor__get_packed_size(&d);
    g_autofree guint8 *buf = g_malloc(len + 8);
    venue_descriptor__pack(&d, buf);
    const guint8 unknown[] = {0x48, 0x01};               /* field 9 varint 1 */
    const guint8 repeated[] = {0x28, 0x1e};              /* default_stay_minutes = 30 again */
    const guint8 overlong_prefix[] = {0x08, 0x81, 0x00}; /* version 1 as a 2-byte varint */
    memcpy(buf + len, unknown, sizeof unknown);
    g_autofree char *with_unknown = sign_descriptor_bytes(signer, buf, len + 2, NULL, 0);
    assert_parse_fails(with_unknown, keyring, PROX_ERROR_MALFORMED);
    memcpy(buf + len, repeated, sizeof repeated);
    g_autofree char *with_repeat = sign_descriptor_bytes(signer, buf, len + 2, NULL, 0);
    assert_parse_fails(with_repeat, keyring, PROX_ERROR_MALFORMED);
    g_assert_cmpuint(buf[0], ==, 0x08);
    g_assert_cmpuint(buf[1], ==, 0x01);
    g_autofree guint8 *overlong = g_malloc(len + 1);
    memcpy(overlong, overlong_prefix, sizeof overlong_prefix);
    memcpy(overlong + 3, buf + 2, len - 2);
    g_autofree char *with_overlong = sign_descriptor_bytes(signer, overlong, len + 1, NULL, 0);
    assert_parse_fails(with_overlong, keyring, PROX_ERROR_MALFORMED);
    const guint8 extra[] = {0x18, 0x01}; /* SignedVenue field 3 */
    g_autofree char *with_extra = sign_descriptor_bytes(signer, buf, len, extra, sizeof extra);
    assert_parse_fails(with_extra, keyring, PROX_ERROR_MALFORMED);
    /* Same bytes without the addition: accepted (the failures above are the additions). */
    g_autofree char *plain = sign_descriptor_bytes(signer, buf, len, NULL, 0);
    g_autoptr(ProxVenue) plain_venue = NULL;
    g_assert_true(prox_venue_parse_url(plain, keyring, &plain_venue, NULL));
}

/* ---- hashes ---- */

static void test_location_hash(void)
{
    guint8 id[PROX_LOCATION_ID_LEN];
    for (guint i = 0; i < sizeof id; i++)
        id[i] = (guint8)i;
    guint8 got[PROX_LOCATION_HASH_LEN];
    prox_venue_location_hash(id, got);
    guint8 want[32];
    sha256_domain("PROXD-VENUE-WARNING-V1", id, sizeof id, want);
    g_assert_cmpmem(got, sizeof got, want, sizeof want);
    /* Fixed answer (python3 hashlib.sha256(b"PROXD-VENUE-WARNING-V1\0" + bytes(range(32)))). */
    g_autofree char *hex = prox_hex_dup(got, sizeof got);
    g_assert_cmpstr(hex, ==, "ca8a1e58ff0798636f306b72973d92e412b869eb184a5d10819a8f701d7801a9");
    /* Without the domain it would be plain SHA-256 of the id: not what we publish. */
    g_autofree char *plain = g_compute_checksum_for_data(G_CHECKSUM_SHA256, id, sizeof id);
    g_assert_cmpstr(plain, !=, hex);
    id[31] ^= 1;
    guint8 other[32];
    prox_venue_location_hash(id, other);
    g_assert_true(memcmp(other, got, 32) != 0);
}

/* ---- warnings ---- */

static ProxVenueWarning venue_warning(const guint8 location_id[PROX_LOCATION_ID_LEN], gint64 start,
                                      gint64 end)
{
    ProxVenueWarning w = {
        .kind = PROX_VENUE_WARNING_VENUE, .start = start, .end = end, .transmission_risk_level = 5};
    prox_venue_location_hash(location_id, w.location_hash);
    return w;
}

static ProxTek beacon_tek(gint64 day_start)
{
    ProxTek tek = {.rolling_start = prox_tek_rolling_start(day_start),
                   .rolling_period = PROX_TEK_ROLLING_PERIOD};
    for (guint i = 0; i < PROX_KEY_LEN; i++)
        tek.key[i] = (guint8)(0xb0 + i + (guint)(day_start / DAY));
    return tek;
}

static ProxVenueWarning vehicle_warning(const ProxTek *tek, gint64 start, gint64 end)
{
    ProxVenueWarning w = {.kind = PROX_VENUE_WARNING_SAME_VEHICLE,
                          .beacon_tek = *tek,
                          .start = start,
                          .end = end,
                          .transmission_risk_level = 4};
    return w;
}

/* The row form: a warning's subject out and back in, for both kinds; a row whose subject
 * length does not fit its kind, or an unknown kind, gives nothing. */
static void test_warning_subject(void)
{
    ProxVenueWarning bus = {.kind = PROX_VENUE_WARNING_SAME_VEHICLE,
                            .beacon_tek = {.rolling_start = 2650000, .rolling_period = 144}};
    memset(bus.beacon_tek.key, 0xb5, PROX_KEY_LEN);
    ProxVenueWarning venue = {.kind = PROX_VENUE_WARNING_VENUE};
    memset(venue.location_hash, 0x7e, PROX_LOCATION_HASH_LEN);
    const ProxVenueWarning *both[] = {&bus, &venue};
    for (guint i = 0; i < G_N_ELEMENTS(both); i++) {
        ProxVenueWarningSubject s = prox_venue_warning_subject(both[i]);
        ProxVenueWarning back = {0};
        g_assert_true(prox_venue_warning_set_subject(&back, both[i]->kind, s.subject, s.subject_len,
                                                     s.rolling_start, s.rolling_period));
        g_assert_cmpint(back.kind, ==, both[i]->kind);
        g_assert_cmpmem(&back.beacon_tek, sizeof back.beacon_tek, &both[i]->beacon_tek,
                        sizeof both[i]->beacon_tek);
        g_assert_cmpmem(back.location_hash, PROX_LOCATION_HASH_LEN, both[i]->location_hash,
                        PROX_LOCATION_HASH_LEN);
    }
    ProxVenueWarningSubject v = prox_venue_warning_subject(&venue);
    g_assert_cmpuint(v.subject_len, ==, PROX_LOCATION_HASH_LEN);
    g_assert_cmpuint(v.rolling_start, ==, 0);
    g_assert_cmpuint(v.rolling_period, ==, 0);

    ProxVenueWarning out = {0};
    uint8_t subject[PROX_LOCATION_HASH_LEN] = {0};
    g_assert_false(prox_venue_warning_set_subject(&out, PROX_VENUE_WARNING_SAME_VEHICLE, subject,
                                                  PROX_LOCATION_HASH_LEN, 0, 0));
    g_assert_false(prox_venue_warning_set_subject(&out, PROX_VENUE_WARNING_VENUE, subject,
                                                  PROX_KEY_LEN, 0, 0));
    g_assert_false(prox_venue_warning_set_subject(&out, 3, subject, PROX_KEY_LEN, 0, 0));
    g_assert_false(prox_venue_warning_set_subject(&out, PROX_VENUE_WARNING_VENUE, NULL, 0, 0, 0));
    g_assert_cmpint(out.kind, ==, 0);
}

static void test_warning_check(void)
{
    guint8 id[PROX_LOCATION_ID_LEN] = {1};
    ProxTek tek = beacon_tek(T0);
    ProxVenueWarning good[] = {
        venue_warning(id, T0, T0 + 1),
        venue_warning(id, T0, T0 + DAY),
        vehicle_warning(&tek, T0 + 3600, T0 + 7200),
        vehicle_warning(&tek, T0 - 3600, T0 + 1),              /* overlaps the first second */
        vehicle_warning(&tek, T0 + DAY - 1, T0 + 2 * DAY - 1), /* and the last */
    };
    for (guint i = 0; i < G_N_ELEMENTS(good); i++) {
        g_autoptr(GError) error = NULL;
        g_assert_true(prox_venue_warning_check(&good[i], "warning", &error));
        g_assert_no_error(error);
    }

    ProxVenueWarning bad[14];
    bad[0] = venue_warning(id, T0, T0);           /* end == start */
    bad[1] = venue_warning(id, T0, T0 - 60);      /* end < start */
    bad[2] = venue_warning(id, T0, T0 + DAY + 1); /* over 24 h */
    bad[3] = venue_warning(id, T0, T0 + 60);
    bad[3].transmission_risk_level = 0;
    bad[4] = venue_warning(id, T0, T0 + 60);
    bad[4].transmission_risk_level = 9;
    bad[5] = venue_warning(id, T0, T0 + 60);
    bad[5].kind = (ProxVenueWarningKind)0;
    bad[6] = venue_warning(id, T0, T0 + 60);
    bad[6].kind = (ProxVenueWarningKind)3;
    bad[7] = vehicle_warning(&tek, T0, T0 + 60);
    bad[7].beacon_tek.rolling_period = 0;
    bad[8] = vehicle_warning(&tek, T0, T0 + 60);
    bad[8].beacon_tek.rolling_period = 145;
    bad[9] = vehicle_warning(&tek, T0 - 3600, T0);            /* ends as the key starts */
    bad[10] = vehicle_warning(&tek, T0 + DAY, T0 + DAY + 60); /* starts as it ends */
    bad[11] = vehicle_warning(&tek, T0 + 2 * DAY, T0 + 2 * DAY + 60);
    bad[12] = venue_warning(id, -60, 60);
    bad[13] = vehicle_warning(&tek, T0, T0 + 60);
    bad[13].beacon_tek.rolling_start = 0x80000000u;
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) error = NULL;
        g_assert_false(prox_venue_warning_check(&bad[i], "warning 7", &error));
        g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
        g_assert_nonnull(strstr(error->message, "warning 7"));
    }
}

/* ---- venue matching ---- */

static ProxCheckIn checkin(const guint8 location_id[PROX_LOCATION_ID_LEN], gint64 arrived,
                           gint64 departed)
{
    ProxCheckIn c = {.id = 1, .arrived = arrived, .departed = departed};
    memcpy(c.location_id, location_id, PROX_LOCATION_ID_LEN);
    c.planned_departure = arrived + 3600;
    return c;
}

static GArray *match_one(const ProxCheckIn *c, const ProxVenueWarning *w, gint64 now)
{
    GArray *out = g_array_new(FALSE, FALSE, sizeof(ProxVenueExposure));
    const gint64 ids[] = {42};
    prox_venue_match_checkins(c, 1, w, ids, 1, PROX_VENUE_DEFAULT_MIN_MINUTES, now, out);
    return out;
}

static void test_match_checkins(void)
{
    guint8 here[PROX_LOCATION_ID_LEN];
    guint8 elsewhere[PROX_LOCATION_ID_LEN];
    memset(here, 0x11, sizeof here);
    memset(elsewhere, 0x22, sizeof elsewhere);
    const gint64 ws = T0 + 12 * 3600; /* the F0 was there 12:00-13:00 */
    const gint64 we = ws + 3600;
    ProxVenueWarning w = venue_warning(here, ws, we);
    const gint64 now = T0 + 2 * DAY;

    /* 15 minutes of overlap (12:45-13:15 visit). */
    ProxCheckIn c = checkin(here, we - 900, we + 900);
    g_autoptr(GArray) got = match_one(&c, &w, now);
    g_assert_cmpuint(got->len, ==, 1);
    ProxVenueExposure *e = &g_array_index(got, ProxVenueExposure, 0);
    g_assert_cmpint(e->id, ==, 0);
    g_assert_cmpint(e->warning_id, ==, 42);
    g_assert_cmpint(e->kind, ==, PROX_VENUE_WARNING_VENUE);
    g_assert_cmpint(e->start, ==, we - 900);
    g_assert_cmpint(e->end, ==, we);
    g_assert_cmpuint(e->minutes, ==, 15);
    g_assert_cmpint(e->day, ==, T0);
    g_assert_cmpint(e->transmission_risk_level, ==, 5);
    g_assert_cmpint(e->detected_at, ==, now);

    /* 5 minutes: nothing. */
    c = checkin(here, ws - 3600, ws + 300);
    g_autoptr(GArray) five = match_one(&c, &w, now);
    g_assert_cmpuint(five->len, ==, 0);

    /* Exactly 10 minutes counts; a second less does not. */
    c = checkin(here, ws - 3600, ws + 600);
    g_autoptr(GArray) ten = match_one(&c, &w, now);
    g_assert_cmpuint(ten->len, ==, 1);
    g_assert_cmpuint(g_array_index(ten, ProxVenueExposure, 0).minutes, ==, 10);
    c = checkin(here, ws - 3600, ws + 599);
    g_autoptr(GArray) almost = match_one(&c, &w, now);
    g_assert_cmpuint(almost->len, ==, 0);

    /* Inside the window entirely. */
    c = checkin(here, ws + 60, ws + 60 + 1200);
    g_autoptr(GArray) inside = match_one(&c, &w, now);
    g_assert_cmpuint(inside->len, ==, 1);
    g_assert_cmpuint(g_array_index(inside, ProxVenueExposure, 0).minutes, ==, 20);

    /* Another place at the same time, or the same place another day: nothing. */
    c = checkin(elsewhere, ws, we);
    g_autoptr(GArray) other_place = match_one(&c, &w, now);
    g_assert_cmpuint(other_place->len, ==, 0);
    c = checkin(here, ws + DAY, we + DAY);
    g_autoptr(GArray) other_day = match_one(&c, &w, now);
    g_assert_cmpuint(other_day->len, ==, 0);

    /* An open check-in counts up to now: 12:50 arrival, now 13:02 gives 10 minutes... */
    c = checkin(here, ws + 3000, 0);
    g_autoptr(GArray) open_short = match_one(&c, &w, ws + 3000 + 599);
    g_assert_cmpuint(open_short->len, ==, 0);
    g_autoptr(GArray) open_now = match_one(&c, &w, ws + 3000 + 720);
    g_assert_cmpuint(open_now->len, ==, 1);
    e = &g_array_index(open_now, ProxVenueExposure, 0);
    g_assert_cmpint(e->end, ==, ws + 3000 + 720 - 120); /* capped at the window's end */
    g_assert_cmpuint(e->minutes, ==, 10);
    /* ...and an open check-in arriving after now (clock moved back) never matches. */
    c = checkin(here, ws + 600, 0);
    g_autoptr(GArray) future = match_one(&c, &w, ws);
    g_assert_cmpuint(future->len, ==, 0);

    /* Several check-ins and warnings: each overlapping pair; vehicle warnings ignored. */
    ProxTek tek = beacon_tek(T0);
    ProxVenueWarning ws_list[] = {w, vehicle_warning(&tek, ws, we),
                                  venue_warning(elsewhere, ws, we)};
    const gint64 ids[] = {7, 8, 9};
    ProxCheckIn cs[] = {checkin(here, ws, ws + 1800), checkin(elsewhere, ws + 1800, we),
                        checkin(here, T0, T0 + 600)};
    g_autoptr(GArray) many = g_array_new(FALSE, FALSE, sizeof(ProxVenueExposure));
    prox_venue_match_checkins(cs, 3, ws_list, ids, 3, 10, now, many);
    g_assert_cmpuint(many->len, ==, 2);
    g_assert_cmpint(g_array_index(many, ProxVenueExposure, 0).warning_id, ==, 7);
    g_assert_cmpuint(g_array_index(many, ProxVenueExposure, 0).minutes, ==, 30);
    g_assert_cmpint(g_array_index(many, ProxVenueExposure, 1).warning_id, ==, 9);
    g_assert_cmpint(g_array_index(many, ProxVenueExposure, 1).start, ==, ws + 1800);
}

/* ---- same vehicle ---- */

typedef struct {
    GArray *sightings; /* ProxSighting */
    GArray *scans;     /* ProxScanInstance */
} Log;

static void log_init(Log *log)
{
    log->sightings = g_array_new(FALSE, FALSE, sizeof(ProxSighting));
    log->scans = g_array_new(FALSE, FALSE, sizeof(ProxScanInstance));
}

static void log_clear(Log *log)
{
    g_array_unref(log->sightings);
    g_array_unref(log->scans);
}

/* A scan at `t` (4 s long, `gap` since the previous one) that heard the RPI `tek` sent at
 * `sent` (NULL tek: only some other device). */
static void log_scan(Log *log, gint64 t, int32_t gap, const ProxTek *tek, gint64 sent)
{
    ProxScanInstance scan = {
        .id = log->scans->len + 1, .start = t, .end = t + 4, .seconds_since_last_scan = gap};
    g_array_append_val(log->scans, scan);
    ProxSighting s = {.scan_instance_id = scan.id,
                      .first_seen = t + 1,
                      .last_seen = t + 3,
                      .report_count = 3,
                      .rssi_count = 3,
                      .rssi_min = -80,
                      .rssi_max = -70,
                      .rssi_mean = -75};
    if (tek != NULL) {
        uint8_t rpik[PROX_KEY_LEN];
        prox_rpik_derive(tek->key, rpik);
        prox_rpi_compute(rpik, prox_interval_number(sent), &s.rpi);
    } else {
        memset(s.rpi.bytes, 0x77, PROX_RPI_LEN);
    }
    g_array_append_val(log->sightings, s);
}

static gboolean match_log(const ProxVenueWarning *w, const Log *log, guint min_minutes,
                          ProxVenueExposure *out)
{
    return prox_venue_match_same_vehicle(w, 99, (const ProxSighting *)(void *)log->sightings->data,
                                         log->sightings->len,
                                         (const ProxScanInstance *)(void *)log->scans->data,
                                         log->scans->len, min_minutes, T0 + 3 * DAY, out);
}

static void test_same_vehicle(void)
{
    const ProxTek tek = beacon_tek(T0);
    const gint64 ws = T0 + 8 * 3600; /* the F0 rode 08:00-09:00 */
    const gint64 we = ws + 3600;
    ProxVenueWarning w = vehicle_warning(&tek, ws, we);
    ProxVenueExposure e;

    /* A rider heard the beacon every 5 minutes from 08:10 to 08:40 (30 minutes), with a scan
     * before boarding that heard only strangers. */
    Log log;
    log_init(&log);
    log_scan(&log, ws + 300, 300, NULL, 0);
    for (gint64 t = ws + 600; t <= ws + 2400; t += 300)
        log_scan(&log, t, 300, &tek, t);
    memset(&e, 0, sizeof e);
    g_assert_true(match_log(&w, &log, 10, &e));
    /* 30 minutes between the first and last scan, plus the first one's 300 s credit. */
    g_assert_cmpuint(e.minutes, ==, 35);
    g_assert_cmpint(e.warning_id, ==, 99);
    g_assert_cmpint(e.kind, ==, PROX_VENUE_WARNING_SAME_VEHICLE);
    g_assert_cmpint(e.start, ==, ws + 300);
    g_assert_cmpint(e.end, ==, ws + 2400 + 3);
    g_assert_cmpint(e.day, ==, T0);
    g_assert_cmpint(e.transmission_risk_level, ==, 4);
    g_assert_cmpint(e.detected_at, ==, T0 + 3 * DAY);
    g_assert_true(match_log(&w, &log, 35, &e));
    g_assert_false(match_log(&w, &log, 36, &e));

    /* The credit is capped at 300 s and at the time since the window started. */
    Log capped;
    log_init(&capped);
    log_scan(&capped, ws + 60, 1000, &tek, ws + 60);
    log_scan(&capped, ws + 660, 600, &tek, ws + 660);
    g_assert_true(match_log(&w, &capped, 0, &e));
    g_assert_cmpuint(e.minutes, ==, 11); /* 600 + 60 */
    g_assert_cmpint(e.start, ==, ws);
    log_clear(&capped);
    log_init(&capped);
    log_scan(&capped, ws + 1200, 1000, &tek, ws + 1200);
    log_scan(&capped, ws + 1500, 300, &tek, ws + 1500);
    g_assert_true(match_log(&w, &capped, 0, &e));
    g_assert_cmpuint(e.minutes, ==, 10); /* 300 + 300 */
    g_assert_false(match_log(&w, &capped, 11, &e));
    log_clear(&capped);

    /* The same RPIs logged another day (the beacon's TEK of that day differs, and the times
     * are outside the window): nothing. */
    const ProxTek next_day = beacon_tek(T0 + DAY);
    Log other;
    log_init(&other);
    for (gint64 t = ws + DAY + 600; t <= ws + DAY + 2400; t += 300)
        log_scan(&other, t, 300, &next_day, t);
    g_assert_false(match_log(&w, &other, 0, &e));
    log_clear(&other);
    /* This day's TEK heard outside the window (the morning trip): nothing. */
    log_init(&other);
    for (gint64 t = ws - 3 * 3600; t <= ws - 3 * 3600 + 1800; t += 300)
        log_scan(&other, t, 300, &tek, t);
    g_assert_false(match_log(&w, &other, 0, &e));
    log_clear(&other);
    /* A rider of the next trip: boarded right after the window ended. */
    log_init(&other);
    for (gint64 t = we; t <= we + 1800; t += 300)
        log_scan(&other, t, 300, &tek, t);
    g_assert_false(match_log(&w, &other, 0, &e));
    log_clear(&other);
    /* RPIs from hours later replayed into the window: not the window's intervals. */
    log_init(&other);
    for (gint64 t = ws + 600; t <= ws + 2400; t += 300)
        log_scan(&other, t, 300, &tek, t + 4 * 3600);
    g_assert_false(match_log(&w, &other, 0, &e));
    log_clear(&other);
    /* One interval of clock skew is tolerated at either edge of the window: a beacon clock
     * 10 minutes behind (first scan hears the interval before the window)... */
    log_init(&other);
    for (gint64 t = ws + 30; t <= ws + 1830; t += 300)
        log_scan(&other, t, 300, &tek, t - 600);
    g_assert_true(match_log(&w, &other, 10, &e));
    g_assert_cmpuint(e.minutes, ==, 30); /* 1800 s + a 30 s credit (since the window start) */
    log_clear(&other);
    /* ...or ahead (the last scan hears the interval after it), but not two intervals. */
    log_init(&other);
    for (gint64 t = we - 1830; t <= we - 30; t += 300)
        log_scan(&other, t, 300, &tek, t + 600);
    g_assert_true(match_log(&w, &other, 10, &e));
    g_assert_cmpuint(e.minutes, ==, 35);
    log_clear(&other);
    log_init(&other);
    log_scan(&other, ws + 30, 300, &tek, ws - 1200);
    log_scan(&other, we - 30, 300, &tek, we + 600);
    g_assert_false(match_log(&w, &other, 0, &e));
    log_clear(&other);

    /* Short rides stay below the threshold: 08:10-08:15 = 5 + 5 minutes < 11. */
    Log brief;
    log_init(&brief);
    log_scan(&brief, ws + 600, 300, &tek, ws + 600);
    log_scan(&brief, ws + 900, 300, &tek, ws + 900);
    g_assert_false(match_log(&w, &brief, PROX_VENUE_DEFAULT_MIN_MINUTES + 1, &e));
    g_assert_true(match_log(&w, &brief, PROX_VENUE_DEFAULT_MIN_MINUTES, &e));
    log_clear(&brief);

    /* Venue warnings and invalid warnings never match. */
    guint8 id[PROX_LOCATION_ID_LEN] = {3};
    ProxVenueWarning venue = venue_warning(id, ws, we);
    g_assert_false(match_log(&venue, &log, 0, &e));
    ProxVenueWarning broken = w;
    broken.transmission_risk_level = 0;
    g_assert_false(match_log(&broken, &log, 0, &e));
    log_clear(&log);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/venue/types", test_types);
    g_test_add_func("/venue/warning-subject", test_warning_subject);
    g_test_add_func("/venue/url/round-trip", test_round_trip);
    g_test_add_func("/venue/url/unpinned-signer", test_unpinned_signer);
    g_test_add_func("/venue/url/create-rejects", test_create_rejects);
    g_test_add_func("/venue/url/truncations-and-flips", test_truncations_and_flips);
    g_test_add_func("/venue/url/rejects", test_url_rejects);
    g_test_add_func("/venue/url/signed-but-invalid", test_signed_but_invalid);
    g_test_add_func("/venue/location-hash", test_location_hash);
    g_test_add_func("/venue/warning-check", test_warning_check);
    g_test_add_func("/venue/match/checkins", test_match_checkins);
    g_test_add_func("/venue/match/same-vehicle", test_same_vehicle);
    return g_test_run();
}
