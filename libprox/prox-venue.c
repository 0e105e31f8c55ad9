/* prox-venue.c - buses and venues (docs/venues.md): venue QR payloads, location ids and
 * hashes, warning validation and matching. */
#define G_LOG_DOMAIN "prox-venue"

#include "prox-venue.h"

#include "prox-keys.h"
#include "prox-risk.h"
#include "venue.pb-c.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define DESCRIPTOR_VERSION 1
#define KEY_NAME_MAX 256
#define WARNING_MAX_SECONDS PROX_SECONDS_PER_DAY
/* Largest signature we accept: Ed25519 is 64 bytes, a DER ECDSA P-256 one at most 72. */
#define SIGNATURE_MAX 80
/* Base64 of PROX_VENUE_URL_MAX characters decodes to at most this many bytes. */
#define PAYLOAD_MAX (PROX_VENUE_URL_MAX / 4 * 3 + 3)

static const char *const type_names[] = {
    [PROX_VENUE_TYPE_OTHER] = "other",           [PROX_VENUE_TYPE_SHOP] = "shop",
    [PROX_VENUE_TYPE_OFFICE] = "office",         [PROX_VENUE_TYPE_SCHOOL] = "school",
    [PROX_VENUE_TYPE_MARKET] = "market",         [PROX_VENUE_TYPE_BUS_STOP] = "bus-stop",
    [PROX_VENUE_TYPE_RESTAURANT] = "restaurant", [PROX_VENUE_TYPE_WORSHIP] = "worship",
    [PROX_VENUE_TYPE_HEALTHCARE] = "healthcare", [PROX_VENUE_TYPE_EVENT] = "event",
};

const char *prox_venue_type_to_string(ProxVenueType type)
{
    if ((guint)type >= G_N_ELEMENTS(type_names))
        return NULL;
    return type_names[type];
}

gboolean prox_venue_type_from_string(const char *name, ProxVenueType *type)
{
    if (name == NULL)
        return FALSE;
    for (guint i = 0; i < G_N_ELEMENTS(type_names); i++) {
        if (strcmp(name, type_names[i]) == 0) {
            if (type != NULL)
                *type = (ProxVenueType)i;
            return TRUE;
        }
    }
    return FALSE;
}

void prox_venue_free(ProxVenue *venue)
{
    if (venue == NULL)
        return;
    g_free(venue->name);
    g_free(venue->address);
    g_free(venue->key_id);
    g_free(venue->key_version);
    sodium_memzero(venue->seed, sizeof venue->seed);
    sodium_memzero(venue->location_id, sizeof venue->location_id);
    g_free(venue);
}

/* ---- hashes (docs/venues.md §1) ---- */

static void domain_hash_init(crypto_hash_sha256_state *state, const char *domain)
{
    static const uint8_t zero = 0;
    crypto_hash_sha256_init(state);
    crypto_hash_sha256_update(state, (const uint8_t *)domain, strlen(domain));
    crypto_hash_sha256_update(state, &zero, 1);
}

static void location_id_of(const uint8_t *descriptor, size_t len, uint8_t out[PROX_LOCATION_ID_LEN])
{
    crypto_hash_sha256_state state;
    domain_hash_init(&state, PROX_VENUE_LOCATION_DOMAIN);
    crypto_hash_sha256_update(&state, descriptor, len);
    crypto_hash_sha256_final(&state, out);
}

void prox_venue_location_hash(const uint8_t location_id[PROX_LOCATION_ID_LEN],
                              uint8_t out[PROX_LOCATION_HASH_LEN])
{
    G_STATIC_ASSERT(PROX_LOCATION_HASH_LEN == crypto_hash_sha256_BYTES);
    crypto_hash_sha256_state state;
    domain_hash_init(&state, PROX_VENUE_WARNING_DOMAIN);
    crypto_hash_sha256_update(&state, location_id, PROX_LOCATION_ID_LEN);
    crypto_hash_sha256_final(&state, out);
}

/* What the authority signs: domain, 0x00, the descriptor bytes. */
static uint8_t *signature_message(const uint8_t *descriptor, size_t len, size_t *msg_len)
{
    size_t domain_len = strlen(PROX_VENUE_SIG_DOMAIN);
    *msg_len = domain_len + 1 + len;
    uint8_t *msg = g_malloc(*msg_len);
    memcpy(msg, PROX_VENUE_SIG_DOMAIN, domain_len);
    msg[domain_len] = 0;
    memcpy(msg + domain_len + 1, descriptor, len);
    return msg;
}

/* ---- field checks shared by create and parse ---- */

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

/* UTF-8 of min..max bytes without control characters (it is shown to the user). */
static gboolean text_check(const char *what, const char *text, size_t min, size_t max,
                           ProxError code, GError **error)
{
    size_t len = strlen(text);
    if (len < min || len > max) {
        g_set_error(error, PROX_ERROR, code, "venue %s is %zu bytes, not %zu..%zu", what, len, min,
                    max);
        return FALSE;
    }
    if (!g_utf8_validate(text, (gssize)len, NULL)) {
        g_set_error(error, PROX_ERROR, code, "venue %s is not valid UTF-8", what);
        return FALSE;
    }
    for (const char *p = text; *p != '\0'; p = g_utf8_next_char(p)) {
        if (g_unichar_iscntrl(g_utf8_get_char(p))) {
            g_set_error(error, PROX_ERROR, code, "venue %s contains a control character", what);
            return FALSE;
        }
    }
    return TRUE;
}

static gboolean fields_check(const char *name, const char *address, guint type, guint stay,
                             ProxError code, GError **error)
{
    if (!text_check("name", name, 1, PROX_VENUE_NAME_MAX, code, error) ||
        !text_check("address", address, 0, PROX_VENUE_ADDRESS_MAX, code, error))
        return FALSE;
    if (prox_venue_type_to_string((ProxVenueType)type) == NULL) {
        g_set_error(error, PROX_ERROR, code, "venue type %u is not a known type", type);
        return FALSE;
    }
    if (stay < PROX_VENUE_STAY_MIN_MINUTES || stay > PROX_VENUE_STAY_MAX_MINUTES) {
        g_set_error(error, PROX_ERROR, code, "venue default stay %u minutes is outside %d..%d",
                    stay, PROX_VENUE_STAY_MIN_MINUTES, PROX_VENUE_STAY_MAX_MINUTES);
        return FALSE;
    }
    return TRUE;
}

static ProxVenue *venue_new(const char *name, const char *address, ProxVenueType type, guint stay,
                            const uint8_t seed[PROX_VENUE_SEED_LEN], const char *key_id,
                            const char *key_version, const uint8_t *descriptor, size_t len)
{
    ProxVenue *venue = g_new0(ProxVenue, 1);
    venue->name = g_strdup(name);
    venue->address = g_strdup(address);
    venue->type = type;
    venue->default_stay_minutes = stay;
    memcpy(venue->seed, seed, PROX_VENUE_SEED_LEN);
    venue->key_id = g_strdup(key_id);
    venue->key_version = g_strdup(key_version);
    location_id_of(descriptor, len, venue->location_id);
    return venue;
}

/* ---- create ---- */

gboolean prox_venue_create(const char *name, const char *address, ProxVenueType type,
                           guint default_stay_minutes, const ProxExportSigner *signer, char **url,
                           ProxVenue **venue, GError **error)
{
    g_return_val_if_fail(name != NULL && signer != NULL && url != NULL, FALSE);
    *url = NULL;
    if (venue != NULL)
        *venue = NULL;
    if (address == NULL)
        address = "";
    if (!fields_check(name, address, (guint)type, default_stay_minutes, PROX_ERROR_INVALID_ARGUMENT,
                      error))
        return FALSE;
    if (prox_export_signer_key_type(signer) != PROX_EXPORT_KEY_ED25519) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                            "venue codes are signed with Ed25519 keys only (an ECDSA signature "
                            "would not fit the QR code)");
        return FALSE;
    }
    if (sodium_init() < 0) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_UNSUPPORTED,
                            "libsodium failed to initialise");
        return FALSE;
    }

    uint8_t seed[PROX_VENUE_SEED_LEN];
    randombytes_buf(seed, sizeof seed);

    VenueDescriptor desc = VENUE_DESCRIPTOR__INIT;
    desc.has_version = TRUE;
    desc.version = DESCRIPTOR_VERSION;
    desc.name = (char *)name;
    desc.address = (char *)address;
    desc.has_type = TRUE;
    desc.type = (VenueDescriptor__Type)type;
    desc.has_default_stay_minutes = TRUE;
    desc.default_stay_minutes = default_stay_minutes;
    desc.has_seed = TRUE;
    desc.seed.data = seed;
    desc.seed.len = sizeof seed;
    desc.key_id = (char *)prox_export_signer_key_id(signer);
    desc.key_version = (char *)prox_export_signer_key_version(signer);

    size_t desc_len = venue_descriptor__get_packed_size(&desc);
    uint8_t *desc_bytes = g_malloc(desc_len);
    venue_descriptor__pack(&desc, desc_bytes);

    gboolean ok = FALSE;
    uint8_t *signed_bytes = NULL;
    char *b64 = NULL;
    size_t msg_len = 0;
    g_autofree uint8_t *msg = signature_message(desc_bytes, desc_len, &msg_len);
    g_autoptr(GBytes) sig = prox_export_signer_sign(signer, msg, msg_len, error);
    if (sig == NULL)
        goto out;

    SignedVenue sv = SIGNED_VENUE__INIT;
    sv.has_descriptor = TRUE;
    sv.descriptor.data = desc_bytes;
    sv.descriptor.len = desc_len;
    sv.has_signature = TRUE;
    sv.signature.data = (uint8_t *)g_bytes_get_data(sig, &sv.signature.len);
    size_t signed_len = signed_venue__get_packed_size(&sv);
    signed_bytes = g_malloc(signed_len);
    signed_venue__pack(&sv, signed_bytes);

    size_t b64_size =
        sodium_base64_ENCODED_LEN(signed_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    b64 = g_malloc(b64_size);
    sodium_bin2base64(b64, b64_size, signed_bytes, signed_len,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *result = g_strconcat(PROX_VENUE_URL_PREFIX, b64, NULL);
    /* Readers refuse longer URLs; never print a poster nobody can check in with. */
    if (strlen(result) > PROX_VENUE_URL_MAX) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "venue code would be %zu bytes, over the limit of %d: shorten the name, "
                    "address or key id",
                    strlen(result), PROX_VENUE_URL_MAX);
        g_free(result);
        goto out;
    }
    if (venue != NULL) {
        *venue = venue_new(name, address, type, default_stay_minutes, seed, desc.key_id,
                           desc.key_version, desc_bytes, desc_len);
        (*venue)->verified = TRUE;
    }
    *url = result;
    ok = TRUE;
out:
    sodium_memzero(seed, sizeof seed);
    g_free(b64);
    g_free(signed_bytes);
    g_free(desc_bytes);
    return ok;
}

/* ---- parse ---- */

static gboolean malformed(GError **error, const char *message)
{
    g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED, "not a valid venue code: %s", message);
    return FALSE;
}

/* Unpacked protobuf must re-encode to exactly its input: no unknown fields, no repeated or
 * reordered fields, no overlong varints. One code has one encoding, so nobody can mint
 * variants of a signed poster that devices would take for different venues. */
static gboolean canonical_signed(const SignedVenue *m, const uint8_t *bytes, size_t len)
{
    if (m->base.n_unknown_fields != 0 || signed_venue__get_packed_size(m) != len)
        return FALSE;
    g_autofree uint8_t *again = g_malloc(len != 0 ? len : 1);
    signed_venue__pack(m, again);
    return memcmp(again, bytes, len) == 0;
}

static gboolean canonical_descriptor(const VenueDescriptor *m, const uint8_t *bytes, size_t len)
{
    if (m->base.n_unknown_fields != 0 || venue_descriptor__get_packed_size(m) != len)
        return FALSE;
    /* An empty descriptor field unpacks to bytes == NULL: memcmp(x, NULL, 0) is undefined. */
    if (len == 0)
        return TRUE;
    g_autofree uint8_t *again = g_malloc(len);
    venue_descriptor__pack(m, again);
    return memcmp(again, bytes, len) == 0;
}

/* Validates a descriptor; *out is the unverified venue. */
static gboolean descriptor_parse(const uint8_t *bytes, size_t len, ProxVenue **out, GError **error)
{
    VenueDescriptor *d = venue_descriptor__unpack(NULL, len, bytes);
    if (d == NULL)
        return malformed(error, "the descriptor does not parse");
    gboolean ok = FALSE;
    if (!canonical_descriptor(d, bytes, len)) {
        malformed(error, "the descriptor is not canonically encoded");
    } else if (!d->has_version || d->version != DESCRIPTOR_VERSION) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_UNSUPPORTED,
                    "venue code version %u is not supported (only %d)",
                    d->has_version ? d->version : 0, DESCRIPTOR_VERSION);
    } else if (d->name == NULL || !d->has_type || !d->has_default_stay_minutes || !d->has_seed) {
        malformed(error, "the descriptor lacks a name, type, default stay or seed");
    } else if (d->seed.len != PROX_VENUE_SEED_LEN) {
        malformed(error, "the seed is not 16 bytes");
    } else if (!key_name_valid(d->key_id) || !key_name_valid(d->key_version)) {
        malformed(error, "the key id or version is missing or not printable ASCII");
    } else if (fields_check(d->name, d->address != NULL ? d->address : "", (guint)d->type,
                            d->default_stay_minutes, PROX_ERROR_MALFORMED, error)) {
        *out =
            venue_new(d->name, d->address != NULL ? d->address : "", (ProxVenueType)d->type,
                      d->default_stay_minutes, d->seed.data, d->key_id, d->key_version, bytes, len);
        ok = TRUE;
    }
    venue_descriptor__free_unpacked(d, NULL);
    return ok;
}

gboolean prox_venue_parse_url(const char *url, const ProxExportKeyring *keyring, ProxVenue **out,
                              GError **error)
{
    g_return_val_if_fail(url != NULL && out != NULL, FALSE);
    *out = NULL;
    size_t url_len = strnlen(url, PROX_VENUE_URL_MAX + 1);
    if (url_len > PROX_VENUE_URL_MAX) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_MALFORMED,
                    "not a valid venue code: longer than %d bytes", PROX_VENUE_URL_MAX);
        return FALSE;
    }
    size_t prefix_len = strlen(PROX_VENUE_URL_PREFIX);
    if (url_len < prefix_len || memcmp(url, PROX_VENUE_URL_PREFIX, prefix_len) != 0)
        return malformed(error, "it does not start with " PROX_VENUE_URL_PREFIX);
    const char *b64 = url + prefix_len;
    size_t b64_len = url_len - prefix_len;

    uint8_t payload[PAYLOAD_MAX];
    size_t payload_len = 0;
    const char *b64_end = NULL;
    /* No ignored characters, no padding, canonical final bits (libsodium checks those). */
    if (b64_len == 0 ||
        sodium_base642bin(payload, sizeof payload, b64, b64_len, NULL, &payload_len, &b64_end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        b64_end != b64 + b64_len)
        return malformed(error, "the payload is not unpadded base64url");

    SignedVenue *sv = signed_venue__unpack(NULL, payload_len, payload);
    if (sv == NULL)
        return malformed(error, "the payload does not parse");
    g_autoptr(ProxVenue) venue = NULL;
    gboolean ok = FALSE;
    if (!canonical_signed(sv, payload, payload_len)) {
        malformed(error, "the payload is not canonically encoded");
    } else if (!sv->has_descriptor || !sv->has_signature || sv->signature.len == 0 ||
               sv->signature.len > SIGNATURE_MAX) {
        malformed(error, "the payload lacks a descriptor or a signature");
    } else if (descriptor_parse(sv->descriptor.data, sv->descriptor.len, &venue, error)) {
        ok = TRUE;
        if (keyring != NULL) {
            size_t msg_len = 0;
            g_autofree uint8_t *msg =
                signature_message(sv->descriptor.data, sv->descriptor.len, &msg_len);
            ok = prox_export_keyring_verify(keyring, venue->key_id, venue->key_version, msg,
                                            msg_len, sv->signature.data, sv->signature.len, error);
            if (!ok) {
                /* The reason (no pinned key, bad signature) stays for the log. */
                g_prefix_error(error, "venue code not signed by a known health authority: ");
                if (error != NULL && *error != NULL)
                    (*error)->code = PROX_ERROR_SIGNATURE;
            }
            venue->verified = ok;
        }
    }
    signed_venue__free_unpacked(sv, NULL);
    sodium_memzero(payload, sizeof payload);
    if (ok)
        *out = g_steal_pointer(&venue);
    return ok;
}

/* ---- warnings ---- */

ProxVenueWarningSubject prox_venue_warning_subject(const ProxVenueWarning *warning)
{
    if (warning->kind == PROX_VENUE_WARNING_SAME_VEHICLE)
        return (ProxVenueWarningSubject){warning->beacon_tek.key, PROX_KEY_LEN,
                                         warning->beacon_tek.rolling_start,
                                         warning->beacon_tek.rolling_period};
    return (ProxVenueWarningSubject){warning->location_hash, PROX_LOCATION_HASH_LEN, 0, 0};
}

gboolean prox_venue_warning_set_subject(ProxVenueWarning *warning, int kind, const void *subject,
                                        size_t subject_len, uint32_t rolling_start,
                                        uint32_t rolling_period)
{
    if (kind == PROX_VENUE_WARNING_SAME_VEHICLE && subject_len == PROX_KEY_LEN) {
        memcpy(warning->beacon_tek.key, subject, PROX_KEY_LEN);
        warning->beacon_tek.rolling_start = rolling_start;
        warning->beacon_tek.rolling_period = rolling_period;
    } else if (kind == PROX_VENUE_WARNING_VENUE && subject_len == PROX_LOCATION_HASH_LEN) {
        memcpy(warning->location_hash, subject, PROX_LOCATION_HASH_LEN);
    } else {
        return FALSE;
    }
    warning->kind = (ProxVenueWarningKind)kind;
    return TRUE;
}

gboolean prox_venue_warning_check(const ProxVenueWarning *warning, const char *what, GError **error)
{
    g_return_val_if_fail(warning != NULL, FALSE);
    if (what == NULL)
        what = "warning";
    if (warning->kind != PROX_VENUE_WARNING_SAME_VEHICLE &&
        warning->kind != PROX_VENUE_WARNING_VENUE) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT, "%s: kind %d is not known",
                    what, (int)warning->kind);
        return FALSE;
    }
    if (warning->start < 0 || warning->start >= warning->end ||
        warning->end - warning->start > WARNING_MAX_SECONDS) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "%s: window %" G_GINT64_FORMAT "..%" G_GINT64_FORMAT
                    " is not 0 <= start < end <= start + 24 h",
                    what, warning->start, warning->end);
        return FALSE;
    }
    if (warning->transmission_risk_level < 1 ||
        warning->transmission_risk_level > PROX_EXPORT_MAX_TRANSMISSION_RISK) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "%s: transmission risk level %d is outside 1..%d", what,
                    warning->transmission_risk_level, PROX_EXPORT_MAX_TRANSMISSION_RISK);
        return FALSE;
    }
    if (warning->kind == PROX_VENUE_WARNING_SAME_VEHICLE) {
        const ProxTek *tek = &warning->beacon_tek;
        if (tek->rolling_period < 1 || tek->rolling_period > PROX_MAX_ROLLING_PERIOD ||
            tek->rolling_start > (uint32_t)G_MAXINT32) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                        "%s: beacon key rolling start %u / period %u outside 0..%d / 1..%d", what,
                        tek->rolling_start, tek->rolling_period, G_MAXINT32,
                        PROX_MAX_ROLLING_PERIOD);
            return FALSE;
        }
        gint64 valid_from = prox_interval_start(tek->rolling_start);
        gint64 valid_until = prox_interval_start(tek->rolling_start + tek->rolling_period);
        if (warning->end <= valid_from || warning->start >= valid_until) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                        "%s: window does not overlap the beacon key's validity", what);
            return FALSE;
        }
    }
    return TRUE;
}

/* ---- matching ---- */

void prox_venue_match_checkins(const ProxCheckIn *checkins, guint n_checkins,
                               const ProxVenueWarning *warnings, const gint64 *warning_ids,
                               guint n_warnings, guint min_minutes, gint64 now, GArray *out)
{
    g_return_if_fail(out != NULL);
    g_return_if_fail((checkins != NULL || n_checkins == 0) &&
                     (warnings != NULL || n_warnings == 0));
    if (n_checkins == 0 || n_warnings == 0)
        return;
    /* Hash each check-in's location once. */
    g_autofree uint8_t *hashes = g_malloc_n(n_checkins, PROX_LOCATION_HASH_LEN);
    for (guint c = 0; c < n_checkins; c++)
        prox_venue_location_hash(checkins[c].location_id, hashes + c * PROX_LOCATION_HASH_LEN);

    gint64 min_seconds = (gint64)min_minutes * 60;
    for (guint w = 0; w < n_warnings; w++) {
        const ProxVenueWarning *warning = &warnings[w];
        if (warning->kind != PROX_VENUE_WARNING_VENUE)
            continue;
        for (guint c = 0; c < n_checkins; c++) {
            const ProxCheckIn *checkin = &checkins[c];
            if (memcmp(hashes + c * PROX_LOCATION_HASH_LEN, warning->location_hash,
                       PROX_LOCATION_HASH_LEN) != 0)
                continue;
            gint64 departed = checkin->departed != 0 ? checkin->departed : now;
            gint64 start = MAX(checkin->arrived, warning->start);
            gint64 end = MIN(departed, warning->end);
            /* A touching stay (zero overlap) is never an exposure, whatever min_minutes. */
            if (end <= start || end - start < min_seconds)
                continue;
            ProxVenueExposure exposure = {
                .id = 0,
                .warning_id = warning_ids != NULL ? warning_ids[w] : 0,
                .kind = PROX_VENUE_WARNING_VENUE,
                .day = prox_risk_day_of(start),
                .start = start,
                .end = end,
                .minutes = (guint)((end - start) / 60),
                .transmission_risk_level = warning->transmission_risk_level,
                .detected_at = now,
            };
            g_array_append_val(out, exposure);
        }
    }
}

static int rpi_compare(const void *a, const void *b)
{
    return memcmp(a, b, PROX_RPI_LEN);
}

static const ProxScanInstance *find_scan(const ProxScanInstance *scans, guint n_scans, gint64 id)
{
    for (guint i = 0; i < n_scans; i++) {
        if (scans[i].id == id)
            return &scans[i];
    }
    return NULL;
}

gboolean prox_venue_match_same_vehicle(const ProxVenueWarning *warning, gint64 warning_id,
                                       const ProxSighting *sightings, guint n_sightings,
                                       const ProxScanInstance *scans, guint n_scans,
                                       guint min_minutes, gint64 now, ProxVenueExposure *out)
{
    g_return_val_if_fail(warning != NULL && out != NULL, FALSE);
    g_return_val_if_fail((sightings != NULL || n_sightings == 0) && (scans != NULL || n_scans == 0),
                         FALSE);
    if (warning->kind != PROX_VENUE_WARNING_SAME_VEHICLE || n_sightings == 0 ||
        !prox_venue_warning_check(warning, NULL, NULL))
        return FALSE;

    /* The window's intervals ±1 for clock skew, within the TEK's validity: the beacon sent
     * nothing else under this key. */
    const ProxTek *tek = &warning->beacon_tek;
    gint64 first = (gint64)prox_interval_number(warning->start) - 1;
    gint64 last = (gint64)prox_interval_number(warning->end - 1) + 1;
    first = MAX(first, (gint64)tek->rolling_start);
    last = MIN(last, (gint64)tek->rolling_start + tek->rolling_period - 1);
    if (last < first)
        return FALSE;
    guint n_rpis = (guint)(last - first + 1);
    g_autofree ProxRpi *rpis = g_new(ProxRpi, n_rpis);
    uint8_t rpik[PROX_KEY_LEN];
    prox_rpik_derive(tek->key, rpik);
    for (guint done = 0; done < n_rpis;) {
        guint count = MIN(n_rpis - done, (guint)PROX_MAX_ROLLING_PERIOD);
        prox_rpi_compute_range(rpik, (uint32_t)first + done, count, rpis + done);
        done += count;
    }
    sodium_memzero(rpik, sizeof rpik);
    qsort(rpis, n_rpis, sizeof *rpis, rpi_compare);

    gboolean found = FALSE;
    gint64 first_time = 0;
    gint64 last_time = 0;
    gint64 first_credit = 0;
    gint64 presence_end = 0;
    for (guint i = 0; i < n_sightings; i++) {
        const ProxSighting *s = &sightings[i];
        if (s->first_seen < warning->start || s->first_seen >= warning->end)
            continue;
        if (bsearch(s->rpi.bytes, rpis, n_rpis, sizeof *rpis, rpi_compare) == NULL)
            continue;
        /* The scan instance's start is when we were there; a sighting whose scan we do not
         * have counts from when it was heard, without credit. */
        const ProxScanInstance *scan = find_scan(scans, n_scans, s->scan_instance_id);
        gint64 t = scan != NULL ? CLAMP(scan->start, warning->start, s->first_seen) : s->first_seen;
        gint64 gap = scan != NULL ? MAX(scan->seconds_since_last_scan, 0) : 0;
        if (!found || t < first_time) {
            first_time = t;
            first_credit =
                MIN(MIN(gap, (gint64)PROX_VENUE_SCAN_CREDIT_CAP_SECONDS), t - warning->start);
        }
        if (!found || t > last_time)
            last_time = t;
        presence_end = found ? MAX(presence_end, MIN(s->last_seen, warning->end))
                             : MIN(s->last_seen, warning->end);
        found = TRUE;
    }
    sodium_memzero(rpis, n_rpis * sizeof *rpis);
    if (!found)
        return FALSE;
    gint64 together = last_time - first_time + first_credit;
    if (together < (gint64)min_minutes * 60)
        return FALSE;
    gint64 start = first_time - first_credit;
    *out = (ProxVenueExposure){
        .id = 0,
        .warning_id = warning_id,
        .kind = PROX_VENUE_WARNING_SAME_VEHICLE,
        .day = prox_risk_day_of(start),
        .start = start,
        .end = MAX(presence_end, last_time),
        .minutes = (guint)(together / 60),
        .transmission_risk_level = warning->transmission_risk_level,
        .detected_at = now,
    };
    g_debug("Same-vehicle warning %" G_GINT64_FORMAT ": %u minutes together", warning_id,
            out->minutes);
    return TRUE;
}
