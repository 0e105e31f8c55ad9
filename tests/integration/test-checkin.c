/* test-checkin.c - venue check-ins on a real proxd (docs/venues.md §3, §5): a QR code signed
 * by a test authority key pinned in the daemon's configuration is accepted, a forged or
 * tampered one refused with the reason; checkout, the automatic checkout at the planned
 * departure (on the simulated clock, also when it passed while proxd was stopped), edit
 * validation, delete, the beacon role's refusal, a venue warning already stored matching a
 * check-in once its times are corrected, and proxctl's output for all of it.
 *
 * Nothing sleeps to synchronise: every wait is for a property change or a signal.
 */
#define G_LOG_DOMAIN "proxd-test"

#include <json-glib/json-glib.h>
#include <string.h>

#include "harness.h"
#include "prox-export.h"
#include "prox-store.h"
#include "prox-venue.h"

#define TIMEOUT_MS 20000
/* Simulated seconds per real second: a 5-minute stay is over in 5 s. */
#define SPEED 60.0
#define STAY_SHORT 5
#define STAY_LONG 90

typedef struct {
    Harness *h;
    char *sec; /* the pinned authority key */
    char *pub;
    char *forger_sec; /* a key nobody pinned */
    char *config;
    ProxExportSigner *signer;
    ProxExportSigner *forger;
} World;

static void world_init(World *w, const char *scenario)
{
    g_autoptr(GError) error = NULL;
    w->h = harness_new(scenario, SPEED);
    w->sec = g_build_filename(w->h->dir, "authority.sec", NULL);
    w->pub = g_build_filename(w->h->dir, "authority.pub", NULL);
    w->forger_sec = g_build_filename(w->h->dir, "forger.sec", NULL);
    g_autofree char *forger_pub = g_build_filename(w->h->dir, "forger.pub", NULL);
    g_assert_true(prox_export_ed25519_keygen("310", "v1", w->sec, w->pub, &error));
    g_assert_no_error(error);
    /* Same key id and version: only the signature tells them apart. */
    g_assert_true(prox_export_ed25519_keygen("310", "v1", w->forger_sec, forger_pub, &error));
    g_assert_no_error(error);
    w->signer = prox_export_signer_load_ed25519(w->sec, &error);
    g_assert_no_error(error);
    w->forger = prox_export_signer_load_ed25519(w->forger_sec, &error);
    g_assert_no_error(error);
    /* PinnedKeys without a URL: venue codes verify, no key-list sync runs. */
    w->config = g_strdup_printf("[Sync]\nPinnedKeys=%s\n", w->pub);
}

static void world_clear(World *w)
{
    prox_export_signer_free(w->signer);
    prox_export_signer_free(w->forger);
    g_free(w->sec);
    g_free(w->pub);
    g_free(w->forger_sec);
    g_free(w->config);
    harness_free(w->h);
}

static char *venue_url(ProxExportSigner *signer, const char *name, guint stay, ProxVenue **venue)
{
    g_autoptr(GError) error = NULL;
    char *url = NULL;
    g_assert_true(prox_venue_create(name, "Lindenstrasse 4, 3012 Bern", PROX_VENUE_TYPE_SHOP, stay,
                                    signer, &url, venue, &error));
    g_assert_no_error(error);
    g_assert_true(g_str_has_prefix(url, PROX_VENUE_URL_PREFIX));
    return url;
}

static void assert_dbus_error(GError *error, const char *name, const char *message_part)
{
    g_assert_nonnull(error);
    g_autofree char *remote = g_dbus_error_get_remote_error(error);
    g_dbus_error_strip_remote_error(error);
    g_test_message("%s: %s", remote, error->message);
    g_assert_cmpstr(remote, ==, name);
    if (message_part != NULL)
        g_assert_nonnull(strstr(error->message, message_part));
}

static GVariant *checkin(HarnessDaemon *d, const char *url, GError **error)
{
    GVariant *out = NULL;
    proxd_dbus_manager1_call_check_in_sync(d->proxy, url, G_DBUS_CALL_FLAGS_NONE, TIMEOUT_MS, &out,
                                           NULL, error);
    return out;
}

static GVariant *checkins(HarnessDaemon *d)
{
    g_autoptr(GError) error = NULL;
    GVariant *out = NULL;
    g_assert_true(proxd_dbus_manager1_call_get_check_ins_sync(d->proxy, 0, G_DBUS_CALL_FLAGS_NONE,
                                                              TIMEOUT_MS, &out, NULL, &error));
    g_assert_no_error(error);
    return out;
}

static GVariant *checkin_by_id(HarnessDaemon *d, gint64 id)
{
    g_autoptr(GVariant) list = checkins(d);
    for (gsize i = 0; i < g_variant_n_children(list); i++) {
        g_autoptr(GVariant) e = g_variant_get_child_value(list, i);
        gint64 e_id = 0;
        if (g_variant_lookup(e, "id", "x", &e_id) && e_id == id)
            return g_steal_pointer(&e);
    }
    return NULL;
}

static guint64 lookup_t(GVariant *dict, const char *key)
{
    guint64 v = 0;
    g_assert_true(g_variant_lookup(dict, key, "t", &v));
    return v;
}

static gboolean edit(HarnessDaemon *d, gint64 id, gint64 arrived, gint64 departed, GError **error)
{
    return proxd_dbus_manager1_call_edit_check_in_sync(d->proxy, id, (guint64)arrived,
                                                       (guint64)departed, G_DBUS_CALL_FLAGS_NONE,
                                                       TIMEOUT_MS, NULL, error);
}

/* ---- proxctl ---- */

/* ---- tests ---- */

/* A valid code checks in; forged, tampered and foreign codes are refused with the reason;
 * checkout; nothing but the location id and times is stored. */
static void test_checkin_checkout(void)
{
    World w;
    world_init(&w, "venue-visits.json");
    harness_start_fake(w.h);
    HarnessDaemon *d = harness_start_proxd(w.h, "v15", 1, "person", w.config);
    g_assert_true(harness_wait_property(d, "CheckedIn", g_variant_new_boolean(FALSE), TIMEOUT_MS));
    g_autoptr(GError) error = NULL;

    /* Forged: same key id, another key. */
    g_autofree char *forged = venue_url(w.forger, "Bakery Lindenhof", STAY_LONG, NULL);
    g_assert_null(checkin(d, forged, &error));
    assert_dbus_error(error, "org.proxd.Error.InvalidVenue",
                      "not signed by a known health authority");
    g_clear_error(&error);

    /* Tampered: one character of the payload changed. */
    g_autoptr(ProxVenue) venue = NULL;
    g_autofree char *url = venue_url(w.signer, "Bakery Lindenhof", STAY_LONG, &venue);
    g_autofree char *tampered = g_strdup(url);
    gsize pos = strlen(PROX_VENUE_URL_PREFIX) + 12;
    tampered[pos] = tampered[pos] == 'A' ? 'B' : 'A';
    g_assert_null(checkin(d, tampered, &error));
    assert_dbus_error(error, "org.proxd.Error.InvalidVenue", NULL);
    g_clear_error(&error);
    g_assert_null(checkin(d, "https://example.org/checkin", &error));
    assert_dbus_error(error, "org.proxd.Error.InvalidVenue", NULL);
    g_clear_error(&error);
    g_autoptr(GVariant) none = checkins(d);
    g_assert_cmpuint(g_variant_n_children(none), ==, 0);

    /* Valid. */
    gint64 before = (gint64)harness_sim_now(w.h);
    g_autoptr(GVariant) r = checkin(d, url, &error);
    g_assert_no_error(error);
    gint64 id = 0;
    const char *name = NULL, *address = NULL, *type = NULL;
    guint32 stay = 0;
    g_assert_true(g_variant_lookup(r, "id", "x", &id));
    g_assert_true(g_variant_lookup(r, "name", "&s", &name));
    g_assert_true(g_variant_lookup(r, "address", "&s", &address));
    g_assert_true(g_variant_lookup(r, "type", "&s", &type));
    g_assert_true(g_variant_lookup(r, "stay-minutes", "u", &stay));
    g_assert_cmpstr(name, ==, "Bakery Lindenhof");
    g_assert_cmpstr(address, ==, "Lindenstrasse 4, 3012 Bern");
    g_assert_cmpstr(type, ==, "shop");
    g_assert_cmpuint(stay, ==, STAY_LONG);
    gint64 arrived = (gint64)lookup_t(r, "arrived");
    gint64 planned = (gint64)lookup_t(r, "planned-departure");
    g_assert_cmpint(arrived, >=, before - 1);
    g_assert_cmpint(planned, ==, arrived + STAY_LONG * 60);
    g_assert_true(harness_wait_property(d, "CheckedIn", g_variant_new_boolean(TRUE), TIMEOUT_MS));
    g_assert_true(
        harness_wait_property(d, "CheckOutAt", g_variant_new_uint64((guint64)planned), TIMEOUT_MS));

    g_autoptr(GVariant) stored = checkin_by_id(d, id);
    g_assert_nonnull(stored);
    g_assert_cmpint((gint64)lookup_t(stored, "arrived"), ==, arrived);
    g_assert_cmpint((gint64)lookup_t(stored, "departed"), ==, 0);
    g_autofree char *prefix = harness_hex(venue->location_id, 4);
    const char *location = NULL;
    g_assert_true(g_variant_lookup(stored, "location", "&s", &location));
    g_assert_cmpstr(location, ==, prefix);

    /* The store holds no name or address: look at the bytes of the database. */
    harness_stop_proxd(d);
    g_autofree char *db = g_build_filename(d->state_dir, "proxd.db", NULL);
    g_autofree char *bytes = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(db, &bytes, &len, NULL));
    g_assert_null(g_strstr_len(bytes, (gssize)len, "Lindenhof"));
    g_assert_null(g_strstr_len(bytes, (gssize)len, "Lindenstrasse"));
    d = harness_start_proxd(w.h, "v15", 1, "person", w.config);
    g_assert_true(harness_wait_property(d, "CheckedIn", g_variant_new_boolean(TRUE), TIMEOUT_MS));

    gint64 closed = 0;
    g_assert_true(proxd_dbus_manager1_call_check_out_sync(d->proxy, G_DBUS_CALL_FLAGS_NONE,
                                                          TIMEOUT_MS, &closed, NULL, &error));
    g_assert_no_error(error);
    g_assert_cmpint(closed, ==, id);
    g_assert_true(harness_wait_property(d, "CheckedIn", g_variant_new_boolean(FALSE), TIMEOUT_MS));
    g_assert_true(harness_wait_property(d, "CheckOutAt", g_variant_new_uint64(0), TIMEOUT_MS));
    g_autoptr(GVariant) after = checkin_by_id(d, id);
    g_assert_cmpint((gint64)lookup_t(after, "departed"), >=, arrived);
    g_assert_false(proxd_dbus_manager1_call_check_out_sync(d->proxy, G_DBUS_CALL_FLAGS_NONE,
                                                           TIMEOUT_MS, &closed, NULL, &error));
    assert_dbus_error(error, "org.proxd.Error.NotCheckedIn", NULL);
    world_clear(&w);
}

static gboolean checkin_closed(gpointer p)
{
    HarnessDaemon *d = p;
    return !proxd_dbus_manager1_get_checked_in(d->proxy) &&
           proxd_dbus_manager1_get_check_out_at(d->proxy) == 0;
}

/* The planned departure closes the check-in by itself, at exactly that time; a second
 * check-in closes the first; a departure that passed while proxd was stopped is applied
 * at startup. */
static void test_auto_checkout(void)
{
    World w;
    world_init(&w, "venue-visits.json");
    HarnessDaemon *d = harness_start_proxd(w.h, "v15", 1, "person", w.config);
    g_autoptr(GError) error = NULL;

    g_autofree char *url = venue_url(w.signer, "Kiosk", STAY_SHORT, NULL);
    g_autoptr(GVariant) r = checkin(d, url, &error);
    g_assert_no_error(error);
    gint64 id = 0;
    g_variant_lookup(r, "id", "x", &id);
    gint64 planned = (gint64)lookup_t(r, "planned-departure");
    g_assert_true(harness_wait_property(d, "CheckedIn", g_variant_new_boolean(TRUE), TIMEOUT_MS));
    /* The timer runs on the simulated clock: 5 minutes are 5 s here. */
    g_assert_true(harness_wait(checkin_closed, d, TIMEOUT_MS));
    g_assert_cmpfloat(harness_sim_now(w.h), >=, (double)planned);
    g_autoptr(GVariant) closed = checkin_by_id(d, id);
    g_assert_cmpint((gint64)lookup_t(closed, "departed"), ==, planned);

    /* Checking in elsewhere closes the open one at the new arrival. */
    g_autofree char *long_url = venue_url(w.signer, "Library", STAY_LONG, NULL);
    g_autoptr(GVariant) first = checkin(d, long_url, &error);
    g_assert_no_error(error);
    gint64 first_id = 0;
    g_variant_lookup(first, "id", "x", &first_id);
    g_autoptr(GVariant) second = checkin(d, url, &error);
    g_assert_no_error(error);
    gint64 second_arrived = (gint64)lookup_t(second, "arrived");
    gint64 second_planned = (gint64)lookup_t(second, "planned-departure");
    g_autoptr(GVariant) first_now = checkin_by_id(d, first_id);
    g_assert_cmpint((gint64)lookup_t(first_now, "departed"), ==, second_arrived);
    g_assert_true(harness_wait_property(d, "CheckOutAt",
                                        g_variant_new_uint64((guint64)second_planned), TIMEOUT_MS));

    /* Stopped past the planned departure: closed at startup, at the planned time. */
    harness_stop_proxd(d);
    harness_wait_sim_time(w.h, (double)second_planned + 60);
    d = harness_start_proxd(w.h, "v15", 1, "person", w.config);
    g_assert_true(harness_wait(checkin_closed, d, TIMEOUT_MS));
    g_autoptr(GVariant) list = checkins(d);
    g_assert_cmpuint(g_variant_n_children(list), ==, 3);
    g_autoptr(GVariant) newest = g_variant_get_child_value(list, 0);
    g_assert_cmpint((gint64)lookup_t(newest, "departed"), ==, second_planned);
    world_clear(&w);
}

/* Corrections follow docs/venues.md §3: arrival < departure <= now, at most 24 h. */
static void test_edit_and_delete(void)
{
    World w;
    world_init(&w, "venue-visits.json");
    HarnessDaemon *d = harness_start_proxd(w.h, "v15", 1, "person", w.config);
    g_autoptr(GError) error = NULL;
    g_autofree char *url = venue_url(w.signer, "Cafe", STAY_LONG, NULL);
    g_autoptr(GVariant) r = checkin(d, url, &error);
    g_assert_no_error(error);
    gint64 id = 0;
    g_variant_lookup(r, "id", "x", &id);
    gint64 arrived = (gint64)lookup_t(r, "arrived");

    /* Open: an earlier arrival keeps it open. */
    g_assert_true(edit(d, id, arrived - 1800, 0, &error));
    g_assert_no_error(error);
    g_autoptr(GVariant) open = checkin_by_id(d, id);
    g_assert_cmpint((gint64)lookup_t(open, "arrived"), ==, arrived - 1800);
    g_assert_cmpint((gint64)lookup_t(open, "departed"), ==, 0);
    g_assert_true(harness_wait_property(d, "CheckedIn", g_variant_new_boolean(TRUE), TIMEOUT_MS));

    gint64 now = (gint64)harness_sim_now(w.h);
    const struct {
        gint64 arrived, departed;
        const char *why;
    } bad[] = {
        {arrived - 3600, arrived - 7200, "after the arrival"},
        {arrived - 3600, arrived - 3600, "after the arrival"},
        {arrived - 3600, now + 7200, "future"},
        {arrived - 2 * 86400, arrived - 3600, "24 hours"},
        {now + 3600, now + 7200, "future"},
        {0, arrived - 60, "arrival"},
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_clear_error(&error);
        g_assert_false(edit(d, id, bad[i].arrived, bad[i].departed, &error));
        assert_dbus_error(error, "org.proxd.Error.InvalidArgument", bad[i].why);
    }
    g_clear_error(&error);
    g_assert_false(edit(d, id + 100, arrived - 3600, arrived - 60, &error));
    assert_dbus_error(error, "org.proxd.Error.NotFound", NULL);
    g_clear_error(&error);

    /* A valid departure closes it. */
    g_assert_true(edit(d, id, arrived - 3600, arrived - 60, &error));
    g_assert_no_error(error);
    g_assert_true(harness_wait(checkin_closed, d, TIMEOUT_MS));
    g_autoptr(GVariant) edited = checkin_by_id(d, id);
    g_assert_cmpint((gint64)lookup_t(edited, "arrived"), ==, arrived - 3600);
    g_assert_cmpint((gint64)lookup_t(edited, "departed"), ==, arrived - 60);
    /* Closed stays closed. */
    g_assert_false(edit(d, id, arrived - 3600, 0, &error));
    assert_dbus_error(error, "org.proxd.Error.InvalidArgument", "departure");
    g_clear_error(&error);

    g_assert_true(proxd_dbus_manager1_call_delete_check_in_sync(
        d->proxy, id, G_DBUS_CALL_FLAGS_NONE, TIMEOUT_MS, NULL, &error));
    g_assert_no_error(error);
    g_assert_null(checkin_by_id(d, id));
    g_assert_false(proxd_dbus_manager1_call_delete_check_in_sync(
        d->proxy, id, G_DBUS_CALL_FLAGS_NONE, TIMEOUT_MS, NULL, &error));
    assert_dbus_error(error, "org.proxd.Error.NotFound", NULL);
    world_clear(&w);
}

/* A beacon refuses check-ins; without a pinned key nothing can be verified. */
static void test_refusals(void)
{
    World w;
    world_init(&w, "venue-visits.json");
    g_autoptr(GError) error = NULL;
    g_autofree char *url = venue_url(w.signer, "Cafe", STAY_LONG, NULL);
    HarnessDaemon *beacon = harness_start_proxd(w.h, "f0", 0, "beacon", w.config);
    g_assert_null(checkin(beacon, url, &error));
    assert_dbus_error(error, "org.proxd.Error.WrongRole", "beacon");
    g_clear_error(&error);
    HarnessDaemon *unpinned = harness_start_proxd(w.h, "v5", 2, "person", NULL);
    g_assert_null(checkin(unpinned, url, &error));
    assert_dbus_error(error, "org.proxd.Error.NotConfigured", "PinnedKeys");
    world_clear(&w);
}

typedef struct {
    guint count;
    char *kind;
    guint minutes;
} VenueWatch;

static void on_venue_exposure(ProxdDbusManager1 *proxy, GVariant *exposure, gpointer user_data)
{
    VenueWatch *v = user_data;
    v->count++;
    g_free(v->kind);
    g_variant_lookup(exposure, "kind", "s", &v->kind);
    g_variant_lookup(exposure, "minutes", "u", &v->minutes);
}

static gboolean venue_signalled(gpointer p)
{
    return ((VenueWatch *)p)->count > 0;
}

/* A venue warning that arrived before the check-in's times were right is matched when they
 * are corrected: 15 minutes of overlap signal VenueExposureDetected once. */
static void test_warning_matches_corrected_checkin(void)
{
    World w;
    world_init(&w, "venue-visits.json");
    HarnessDaemon *d = harness_start_proxd(w.h, "v15", 1, "person", w.config);
    g_autoptr(GError) error = NULL;
    VenueWatch watch = {0};
    g_signal_connect(d->proxy, "venue-exposure-detected", G_CALLBACK(on_venue_exposure), &watch);

    g_autoptr(ProxVenue) venue = NULL;
    g_autofree char *url = venue_url(w.signer, "Choir rehearsal", STAY_LONG, &venue);
    g_autoptr(GVariant) r = checkin(d, url, &error);
    g_assert_no_error(error);
    gint64 id = 0;
    g_variant_lookup(r, "id", "x", &id);
    gint64 now = (gint64)lookup_t(r, "arrived");

    /* The key list with the warning (as a sync imports it): [now-3h, now-1h45]. */
    ProxVenueWarning warning = {.kind = PROX_VENUE_WARNING_VENUE,
                                .start = now - 3 * 3600,
                                .end = now - 3 * 3600 + 75 * 60,
                                .transmission_risk_level = 5};
    prox_venue_location_hash(venue->location_id, warning.location_hash);
    g_autofree char *db = g_build_filename(d->state_dir, "proxd.db", NULL);
    {
        g_autoptr(ProxStore) store = prox_store_open(db, NULL, &error);
        g_assert_no_error(error);
        gint64 batch = 0;
        guint64 keys = 0, added = 0;
        g_assert_true(prox_store_import_batch_full(store, "test", "venues-1", now, NULL, 0,
                                                   &warning, 1, &batch, &keys, &added, &error));
        g_assert_no_error(error);
        g_assert_cmpuint(added, ==, 1);
    }
    g_assert_cmpuint(watch.count, ==, 0);
    /* The person was there from 4 h ago to 2 h 45 ago: 15 minutes inside the window. */
    edit(d, id, now - 4 * 3600, now - 3 * 3600 + 15 * 60, &error);
    g_assert_no_error(error);
    g_assert_true(harness_wait(venue_signalled, &watch, TIMEOUT_MS));
    g_assert_cmpuint(watch.count, ==, 1);
    g_assert_cmpstr(watch.kind, ==, "venue");
    g_assert_cmpuint(watch.minutes, ==, 15);
    g_assert_true(harness_wait_property(d, "VenueExposures", g_variant_new_uint32(1), TIMEOUT_MS));

    g_autoptr(GVariant) exposures = NULL;
    g_assert_true(proxd_dbus_manager1_call_get_venue_exposures_sync(
        d->proxy, 0, G_DBUS_CALL_FLAGS_NONE, TIMEOUT_MS, &exposures, NULL, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(g_variant_n_children(exposures), ==, 1);
    g_autoptr(GVariant) e = g_variant_get_child_value(exposures, 0);
    g_assert_cmpint((gint64)lookup_t(e, "start"), ==, warning.start);
    g_assert_cmpint((gint64)lookup_t(e, "end"), ==, warning.start + 15 * 60);

    /* Once per warning: another correction signals nothing new. */
    g_assert_true(edit(d, id, now - 4 * 3600, now - 3 * 3600 + 20 * 60, &error));
    g_assert_no_error(error);
    g_autoptr(GVariant) again = checkins(d); /* a round trip: the signal would be before it */
    g_assert_cmpuint(watch.count, ==, 1);

    /* proxctl shows it as a tier of its own. */
    g_auto(HarnessRun) text = {0};
    harness_proxctl(&text, d->harness, d->bus_name, "exposures", NULL);
    g_assert_cmpint(text.status, ==, 0);
    g_assert_nonnull(strstr(text.out, "Venue and bus exposures"));
    g_assert_nonnull(strstr(
        text.out, "You visited a place at the same time as someone who later tested positive"));
    g_auto(HarnessRun) json = {0};
    harness_proxctl(&json, d->harness, d->bus_name, "exposures", "--json", NULL);
    g_assert_cmpint(json.status, ==, 0);
    g_autoptr(JsonParser) parser = json_parser_new();
    g_assert_true(json_parser_load_from_data(parser, json.out, -1, NULL));
    JsonObject *o = json_node_get_object(json_parser_get_root(parser));
    JsonArray *venues = json_object_get_array_member(o, "venue_exposures");
    g_assert_cmpuint(json_array_get_length(venues), ==, 1);
    JsonObject *v = json_array_get_object_element(venues, 0);
    g_assert_cmpstr(json_object_get_string_member(v, "kind"), ==, "venue");
    g_assert_cmpint(json_object_get_int_member(v, "minutes"), ==, 15);
    g_free(watch.kind);
    world_clear(&w);
}

static void test_proxctl(void)
{
    World w;
    world_init(&w, "venue-visits.json");
    harness_start_fake(w.h);
    HarnessDaemon *d = harness_start_proxd(w.h, "v15", 1, "person", w.config);
    g_autoptr(ProxVenue) venue = NULL;
    g_autofree char *url = venue_url(w.signer, "Bakery Lindenhof", STAY_LONG, &venue);
    g_autofree char *forged = venue_url(w.forger, "Bakery Lindenhof", STAY_LONG, NULL);

    g_auto(HarnessRun) bad = {0};
    harness_proxctl(&bad, d->harness, d->bus_name, "checkin", forged, NULL);
    g_assert_cmpint(bad.status, ==, 1);
    g_assert_cmpstr(bad.out, ==, "");
    /* One line: the parser's reason. */
    g_assert_true(g_str_has_prefix(bad.err, "proxctl: checkin: "));
    g_assert_nonnull(strstr(bad.err, "not signed by a known health authority"));
    g_assert_true(g_str_has_suffix(bad.err, "\n"));
    g_assert_cmpuint((gsize)(strchr(bad.err, '\n') - bad.err), ==, strlen(bad.err) - 1);

    g_auto(HarnessRun) usage = {0};
    harness_proxctl(&usage, d->harness, d->bus_name, "checkin", NULL);
    g_assert_cmpint(usage.status, ==, 2);

    g_auto(HarnessRun) in = {0};
    harness_proxctl(&in, d->harness, d->bus_name, "checkin", url, NULL);
    g_assert_cmpint(in.status, ==, 0);
    g_assert_true(g_str_has_prefix(in.out, "Checked in at Bakery Lindenhof\n"));
    g_assert_nonnull(strstr(in.out, "Lindenstrasse 4, 3012 Bern"));
    g_assert_nonnull(strstr(in.out, "default stay 90 minutes"));
    g_assert_nonnull(strstr(in.out, "Automatic checkout at "));

    g_auto(HarnessRun) status = {0};
    harness_proxctl(&status, d->harness, d->bus_name, "status", NULL);
    g_assert_nonnull(strstr(status.out, "Checked in:   yes, automatic checkout at "));

    g_auto(HarnessRun) list = {0};
    harness_proxctl(&list, d->harness, d->bus_name, "checkins", "--json", NULL);
    g_assert_cmpint(list.status, ==, 0);
    g_autoptr(JsonParser) parser = json_parser_new();
    g_assert_true(json_parser_load_from_data(parser, list.out, -1, NULL));
    JsonArray *items = json_object_get_array_member(
        json_node_get_object(json_parser_get_root(parser)), "checkins");
    g_assert_cmpuint(json_array_get_length(items), ==, 1);
    JsonObject *item = json_array_get_object_element(items, 0);
    gint64 id = json_object_get_int_member(item, "id");
    g_assert_true(json_object_get_null_member(item, "departed"));
    g_autofree char *prefix = harness_hex(venue->location_id, 4);
    g_assert_cmpstr(json_object_get_string_member(item, "location"), ==, prefix);
    g_autofree char *id_s = g_strdup_printf("%" G_GINT64_FORMAT, id);

    g_auto(HarnessRun) out = {0};
    harness_proxctl(&out, d->harness, d->bus_name, "checkout", NULL);
    g_assert_cmpint(out.status, ==, 0);
    g_autofree char *expect_out = g_strdup_printf("Checked out (check-in %s).\n", id_s);
    g_assert_cmpstr(out.out, ==, expect_out);
    g_auto(HarnessRun) again = {0};
    harness_proxctl(&again, d->harness, d->bus_name, "checkout", NULL);
    g_assert_cmpint(again.status, ==, 1);
    g_assert_cmpstr(again.err, ==, "proxctl: checkout: not checked in anywhere\n");

    /* The simulated day starts at 08:00 UTC (TZ=UTC): 07:10 to 07:40 is in the past. */
    g_auto(HarnessRun) edit_ok = {0};
    harness_proxctl(&edit_ok, d->harness, d->bus_name, "checkin-edit", id_s, "--arrived", "07:10",
                    "--departed", "07:40", NULL);
    g_assert_cmpint(edit_ok.status, ==, 0);
    g_assert_nonnull(strstr(edit_ok.out, "07:10"));
    g_assert_nonnull(strstr(edit_ok.out, "07:40"));
    g_auto(HarnessRun) edit_bad = {0};
    harness_proxctl(&edit_bad, d->harness, d->bus_name, "checkin-edit", id_s, "--departed", "23:59",
                    NULL);
    g_assert_cmpint(edit_bad.status, ==, 1);
    g_assert_nonnull(strstr(edit_bad.err, "future"));
    g_auto(HarnessRun) edit_usage = {0};
    harness_proxctl(&edit_usage, d->harness, d->bus_name, "checkin-edit", id_s, "--arrived", "7h",
                    NULL);
    g_assert_cmpint(edit_usage.status, ==, 2);

    g_auto(HarnessRun) text = {0};
    harness_proxctl(&text, d->harness, d->bus_name, "checkins", NULL);
    g_assert_cmpint(text.status, ==, 0);
    g_assert_nonnull(strstr(text.out, "07:10"));
    g_assert_nonnull(strstr(text.out, prefix));

    g_auto(HarnessRun) del = {0};
    harness_proxctl(&del, d->harness, d->bus_name, "checkin-delete", id_s, NULL);
    g_assert_cmpint(del.status, ==, 0);
    g_auto(HarnessRun) del_again = {0};
    harness_proxctl(&del_again, d->harness, d->bus_name, "checkin-delete", id_s, NULL);
    g_assert_cmpint(del_again.status, ==, 1);
    g_auto(HarnessRun) empty = {0};
    harness_proxctl(&empty, d->harness, d->bus_name, "checkins", NULL);
    g_assert_nonnull(strstr(empty.out, "No check-ins"));
    world_clear(&w);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/checkin/checkin-checkout", test_checkin_checkout);
    g_test_add_func("/checkin/auto-checkout", test_auto_checkout);
    g_test_add_func("/checkin/edit-and-delete", test_edit_and_delete);
    g_test_add_func("/checkin/refusals", test_refusals);
    g_test_add_func("/checkin/warning-matches-corrected-checkin",
                    test_warning_matches_corrected_checkin);
    g_test_add_func("/checkin/proxctl", test_proxctl);
    return g_test_run();
}
