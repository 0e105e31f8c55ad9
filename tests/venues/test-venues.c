/* test-venues.c - buses and venues end to end (docs/venues.md), on loopback with real
 * processes: prox-authority, prox-keyserver, proxd in the fake radio world, prox-tool and
 * proxctl.
 *
 * /venues/same-vehicle: a beacon mid-bus; f0 rides at the front and `back` at the back,
 *   16 m apart (out of each other's radio range, 8 m from the beacon), 23:00-23:30; `next`
 *   rides the same bus 23:40-23:55. After midnight f0 reports; the operator traces the
 *   published keys against the beacon's log; the authority publishes the warning; `back`
 *   gets a same-vehicle exposure (and no close-contact one), `next` gets nothing.
 * /venues/checkin: a registered venue's poster; f0 stayed 22:00-22:30, v15 22:15-23:00
 *   (15 minutes together), v5 22:25-23:00 (5 minutes). f0 reports with the check-in; after
 *   publish v15 gets a venue exposure, v5 does not.
 * /venues/forged: a poster signed by an unknown key and malformed payloads are refused with
 *   a clear message and store nothing; a malformed warnings file imports nothing.
 *
 * Nothing sleeps: every wait is on a D-Bus signal, a property, a reply, a process or a file.
 */
#define G_LOG_DOMAIN "proxd-test"

#include <json-glib/json-glib.h>
#include <string.h>

#include "e2e-util.h"
#include "harness.h"

#define SPEED 80.0
/* Day D = 2026-01-15 (UTC); HARNESS_SIM_EPOCH is D 08:00. */
#define MIDNIGHT_D (HARNESS_SIM_EPOCH - 8 * 3600)
#define AT(h, m) (MIDNIGHT_D + (h)*3600 + (m)*60)
#define ONSET "2026-01-15"

/* The authority with its key server running, and the configuration of a device that syncs
 * from it and reports to it. */
static void authority_setup(E2eAuthority *a, Harness *h, char **config)
{
    e2e_authority_init(a, h);
    e2e_authority_start_keyserver(a, NULL);
    *config = e2e_authority_device_config(a, E2E_CONFIG_SYNC | E2E_CONFIG_REPORT);
}

/* proxctl ARGS on d: the exit status in *status, returns stdout and stderr together. */
static char *proxctl(HarnessDaemon *d, const char *const *args, int *status)
{
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    *status = e2e_proxctl(d, args, &out, &err);
    char *both = g_strconcat(out, err, NULL);
    g_test_message("proxctl %s -> %d: %s", args[0], *status, both);
    return both;
}

/* f0 reports through proxctl (--yes: every key and check-in). */
static void report(E2eAuthority *a, HarnessDaemon *f0)
{
    g_autofree char *code = e2e_authority_issue_code(a, ONSET, 0, NULL);
    const char *args[] = {"report", "--code", code, "--yes", NULL};
    int status = -1;
    g_autofree char *out = proxctl(f0, args, &status);
    g_assert_cmpint(status, ==, 0);
}

typedef struct {
    guint count;
    char *kind;
    guint minutes;
} VenueWatch;

static void on_venue_exposure(ProxdDbusManager1 *proxy, GVariant *exposure, gpointer p)
{
    VenueWatch *w = p;
    w->count++;
    g_free(w->kind);
    w->kind = NULL;
    g_variant_lookup(exposure, "kind", "s", &w->kind);
    g_variant_lookup(exposure, "minutes", "u", &w->minutes);
}

static guint venue_exposures(HarnessDaemon *d, const char *kind)
{
    g_autoptr(GVariant) list = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(proxd_dbus_manager1_call_get_venue_exposures_sync(
        d->proxy, 0, G_DBUS_CALL_FLAGS_NONE, E2E_TIMEOUT_MS, &list, NULL, &error));
    g_assert_no_error(error);
    guint n = 0;
    GVariantIter iter;
    GVariant *entry;
    g_variant_iter_init(&iter, list);
    while ((entry = g_variant_iter_next_value(&iter)) != NULL) {
        const char *k = NULL;
        if (g_variant_lookup(entry, "kind", "&s", &k) && g_strcmp0(k, kind) == 0)
            n++;
        g_variant_unref(entry);
    }
    return n;
}

static void test_same_vehicle(void)
{
    g_autoptr(Harness) h = harness_new_at("bus-trips.json", SPEED, AT(23, 0));
    E2eAuthority auth;
    g_autofree char *config = NULL;
    authority_setup(&auth, h, &config);

    harness_start_fake(h);
    HarnessDaemon *bus = harness_start_proxd(h, "bus", 0, "beacon", NULL);
    HarnessDaemon *f0 = harness_start_proxd(h, "f0", 1, "person", config);
    HarnessDaemon *back = harness_start_proxd(h, "back", 2, "person", config);
    HarnessDaemon *next = harness_start_proxd(h, "next", 3, "person", config);
    VenueWatch back_watch = {0}, next_watch = {0};
    g_signal_connect(back->proxy, "venue-exposure-detected", G_CALLBACK(on_venue_exposure),
                     &back_watch);
    g_signal_connect(next->proxy, "venue-exposure-detected", G_CALLBACK(on_venue_exposure),
                     &next_watch);

    /* Both trips played out, and f0's key of day D is over. */
    harness_wait_sim_time(h, AT(24, 5));

    /* f0 and back never heard each other: 16 m apart under this radio model. */
    g_autoptr(GVariant) back_heard = harness_sightings(back);
    g_assert_cmpuint(g_variant_n_children(back_heard), >, 0); /* the beacon */
    g_autofree char *truth = NULL;
    g_assert_true(g_file_get_contents(h->truth_path, &truth, NULL, NULL));
    g_assert_null(strstr(truth, "\"from\":\"f0\",\"to\":\"back\""));
    g_assert_null(strstr(truth, "\"from\":\"back\",\"to\":\"f0\""));
    g_assert_nonnull(strstr(truth, "\"from\":\"bus\",\"to\":\"back\""));
    g_assert_nonnull(strstr(truth, "\"from\":\"bus\",\"to\":\"next\""));

    report(&auth, f0);
    g_strfreev(e2e_authority_publish(&auth, 0));

    /* The operator traces the published lists against the beacon's log. The beacon keeps
     * running: its store is read alongside (WAL). */
    g_autofree char *bus_db = g_build_filename(bus->state_dir, "proxd.db", NULL);
    g_autofree char *warnings = g_build_filename(h->dir, "warnings.json", NULL);
    g_auto(GStrv) lists = e2e_authority_lists(&auth);
    g_assert_cmpuint(g_strv_length(lists), >, 0);
    g_autoptr(GPtrArray) trace = g_ptr_array_new();
    const char *trace_args[] = {g_getenv("PROX_TOOL"),
                                "beacon",
                                "trace",
                                "--store",
                                bus_db,
                                "--key",
                                auth.pub,
                                "--out",
                                warnings};
    for (gsize i = 0; i < G_N_ELEMENTS(trace_args); i++)
        g_ptr_array_add(trace, (gpointer)trace_args[i]);
    for (guint i = 0; lists[i] != NULL; i++) {
        g_ptr_array_add(trace, (gpointer) "--keys");
        g_ptr_array_add(trace, lists[i]);
    }
    g_ptr_array_add(trace, NULL);
    g_autofree char *trace_out = e2e_run_ok(h, (const char *const *)trace->pdata);
    g_test_message("trace: %s", trace_out);

    /* One window, covering the ride (23:00-23:30, to the beacon's scan resolution). */
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;
    json_parser_load_from_file(parser, warnings, &error);
    g_assert_no_error(error);
    JsonArray *list = json_object_get_array_member(
        json_node_get_object(json_parser_get_root(parser)), "warnings");
    g_assert_cmpuint(json_array_get_length(list), ==, 1);
    JsonObject *w = json_array_get_object_element(list, 0);
    g_assert_cmpstr(json_object_get_string_member(w, "kind"), ==, "same-vehicle");
    gint64 start = json_object_get_int_member(w, "start");
    gint64 end = json_object_get_int_member(w, "end");
    g_assert_cmpint(start, >=, AT(23, 0) - 600);
    g_assert_cmpint(start, <=, AT(23, 5));
    g_assert_cmpint(end, >=, AT(23, 25));
    g_assert_cmpint(end, <=, AT(23, 35));

    const char *import[] = {
        g_getenv("PROX_AUTHORITY"), "warning", "import", "--db", auth.db, warnings, NULL};
    g_free(e2e_run_ok(h, import));
    g_strfreev(e2e_authority_publish(&auth, 0));

    g_autoptr(GVariant) back_result = e2e_sync_complete(back);
    g_autoptr(GVariant) next_result = e2e_sync_complete(next);
    /* VenueExposureDetected is emitted before the Sync() reply. */
    g_assert_cmpuint(back_watch.count, ==, 1);
    g_assert_cmpstr(back_watch.kind, ==, "same-vehicle");
    g_assert_cmpuint(back_watch.minutes, >=, 10);
    g_assert_cmpuint(next_watch.count, ==, 0);
    g_assert_cmpuint(venue_exposures(back, "same-vehicle"), ==, 1);
    g_assert_cmpuint(venue_exposures(next, "same-vehicle"), ==, 0);
    /* Never in radio range of f0: no close-contact risk for back. */
    const char *risk = NULL;
    g_assert_true(g_variant_lookup(back_result, "risk-level", "&s", &risk));
    g_assert_cmpstr(risk, ==, "low");

    /* proxctl lists it as its own tier. */
    const char *exposures[] = {"exposures", NULL};
    int status = -1;
    g_autofree char *listing = proxctl(back, exposures, &status);
    g_assert_cmpint(status, ==, 0);
    g_assert_nonnull(strstr(listing, "same vehicle") ? listing : strstr(listing, "same-vehicle"));

    g_signal_handlers_disconnect_by_data(back->proxy, &back_watch);
    g_signal_handlers_disconnect_by_data(next->proxy, &next_watch);
    g_free(back_watch.kind);
    g_free(next_watch.kind);
    harness_stop_proxd(bus);
    harness_stop_proxd(f0);
    harness_stop_proxd(back);
    harness_stop_proxd(next);
    e2e_authority_clear(&auth);
}

/* `prox-authority venue register` with the given signing key; returns the URL. */
static char *register_venue(Harness *h, E2eAuthority *a, const char *secret_key, const char *out)
{
    const char *argv[] = {g_getenv("PROX_AUTHORITY"),
                          "venue",
                          "register",
                          "--db",
                          a->db,
                          "--key",
                          secret_key,
                          "--name",
                          "Phở Hòa, Hàng Bạc",
                          "--address",
                          "12 Hàng Bạc, Hoàn Kiếm, Hà Nội",
                          "--type",
                          "restaurant",
                          "--stay",
                          "60",
                          "--out",
                          out,
                          NULL};
    g_free(e2e_run_ok(h, argv));
    g_autofree char *url_path = g_build_filename(out, "url.txt", NULL);
    char *url = NULL;
    g_assert_true(g_file_get_contents(url_path, &url, NULL, NULL));
    g_strstrip(url);
    g_assert_true(g_str_has_prefix(url, "proxd://checkin/v1/"));
    g_autofree char *png = g_build_filename(out, "poster.png", NULL);
    g_autofree char *svg = g_build_filename(out, "poster.svg", NULL);
    g_assert_true(g_file_test(png, G_FILE_TEST_IS_REGULAR));
    g_assert_true(g_file_test(svg, G_FILE_TEST_IS_REGULAR));
    return url;
}

/* Checks d in at `url` now, then sets the check-in's times. */
static void visit(HarnessDaemon *d, const char *url, gint64 arrived, gint64 departed)
{
    const char *checkin[] = {"checkin", url, NULL};
    int status = -1;
    g_autofree char *out = proxctl(d, checkin, &status);
    g_assert_cmpint(status, ==, 0);
    g_assert_nonnull(strstr(out, "Phở Hòa"));

    g_autoptr(GVariant) list = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(proxd_dbus_manager1_call_get_check_ins_sync(d->proxy, 1, G_DBUS_CALL_FLAGS_NONE,
                                                              E2E_TIMEOUT_MS, &list, NULL, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(g_variant_n_children(list), ==, 1);
    g_autoptr(GVariant) entry = g_variant_get_child_value(list, 0);
    gint64 id = 0;
    g_assert_true(g_variant_lookup(entry, "id", "x", &id));
    g_assert_true(proxd_dbus_manager1_call_edit_check_in_sync(
        d->proxy, id, (guint64)arrived, (guint64)departed, G_DBUS_CALL_FLAGS_NONE, E2E_TIMEOUT_MS,
        NULL, &error));
    g_assert_no_error(error);
    /* proxctl checkin opened the check-in (CheckedIn went true while the test waited for
     * it); the edit closed it: the property follows. */
    g_assert_true(
        harness_wait_property(d, "CheckedIn", g_variant_new_boolean(FALSE), E2E_TIMEOUT_MS));
}

static void test_checkin(void)
{
    g_autoptr(Harness) h = harness_new_at("venue-visits.json", SPEED, AT(23, 15));
    E2eAuthority auth;
    g_autofree char *config = NULL;
    authority_setup(&auth, h, &config);
    g_autofree char *poster = g_build_filename(h->dir, "poster", NULL);
    g_autofree char *url = register_venue(h, &auth, auth.sec, poster);
    /* Small enough for a readable QR at 15 cm (docs/venues.md §2). */
    g_assert_cmpuint(strlen(url), <=, 400);

    harness_start_fake(h);
    HarnessDaemon *f0 = harness_start_proxd(h, "f0", 0, "person", config);
    HarnessDaemon *v15 = harness_start_proxd(h, "v15", 1, "person", config);
    HarnessDaemon *v5 = harness_start_proxd(h, "v5", 2, "person", config);
    VenueWatch w15 = {0}, w5 = {0};
    g_signal_connect(v15->proxy, "venue-exposure-detected", G_CALLBACK(on_venue_exposure), &w15);
    g_signal_connect(v5->proxy, "venue-exposure-detected", G_CALLBACK(on_venue_exposure), &w5);

    visit(f0, url, AT(22, 0), AT(22, 30));
    visit(v15, url, AT(22, 15), AT(23, 0));
    visit(v5, url, AT(22, 25), AT(23, 0));

    /* After midnight f0's key of day D can be reported, with the check-in. */
    harness_wait_sim_time(h, AT(24, 5));
    g_autoptr(GVariant) preview = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(proxd_dbus_manager1_call_preview_report_sync(
        f0->proxy, G_DBUS_CALL_FLAGS_NONE, E2E_TIMEOUT_MS, &preview, NULL, &error));
    g_assert_no_error(error);
    g_autoptr(GVariant) checkins =
        g_variant_lookup_value(preview, "checkins", G_VARIANT_TYPE("aa{sv}"));
    g_assert_nonnull(checkins);
    g_assert_cmpuint(g_variant_n_children(checkins), ==, 1);
    report(&auth, f0);
    g_strfreev(e2e_authority_publish(&auth, 0));

    g_autoptr(GVariant) r15 = e2e_sync_complete(v15);
    g_autoptr(GVariant) r5 = e2e_sync_complete(v5);
    g_assert_cmpuint(w15.count, ==, 1);
    g_assert_cmpstr(w15.kind, ==, "venue");
    g_assert_cmpuint(w15.minutes, ==, 15);
    g_assert_cmpuint(w5.count, ==, 0);
    g_assert_cmpuint(venue_exposures(v15, "venue"), ==, 1);
    g_assert_cmpuint(venue_exposures(v5, "venue"), ==, 0);
    g_assert_cmpuint(proxd_dbus_manager1_get_venue_exposures(v15->proxy), ==, 1);

    g_signal_handlers_disconnect_by_data(v15->proxy, &w15);
    g_signal_handlers_disconnect_by_data(v5->proxy, &w5);
    g_free(w15.kind);
    g_free(w5.kind);
    harness_stop_proxd(f0);
    harness_stop_proxd(v15);
    harness_stop_proxd(v5);
    e2e_authority_clear(&auth);
}

static void assert_checkin_refused(HarnessDaemon *d, const char *url, const char *reason)
{
    const char *checkin[] = {"checkin", url, NULL};
    int status = -1;
    g_autofree char *out = proxctl(d, checkin, &status);
    g_assert_cmpint(status, !=, 0);
    if (strstr(out, reason) == NULL) {
        g_test_message("expected \"%s\" in: %s", reason, out);
        g_assert_not_reached();
    }
    g_autoptr(GVariant) list = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(proxd_dbus_manager1_call_get_check_ins_sync(d->proxy, 14, G_DBUS_CALL_FLAGS_NONE,
                                                              E2E_TIMEOUT_MS, &list, NULL, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(g_variant_n_children(list), ==, 0);
    g_assert_false(proxd_dbus_manager1_get_checked_in(d->proxy));
}

static void test_forged(void)
{
    g_autoptr(Harness) h = harness_new_at("venue-visits.json", SPEED, AT(12, 0));
    E2eAuthority auth;
    g_autofree char *config = NULL;
    authority_setup(&auth, h, &config);

    /* A second key nobody pinned: a forger's. */
    g_autofree char *forger_dir = g_build_filename(h->dir, "forger", NULL);
    g_assert_cmpint(g_mkdir_with_parents(forger_dir, 0700), ==, 0);
    const char *keygen[] = {g_getenv("PROX_AUTHORITY"),
                            "init-key",
                            "--key-id",
                            E2E_KEY_ID,
                            "--key-version",
                            E2E_KEY_VERSION,
                            "--dir",
                            forger_dir,
                            NULL};
    g_free(e2e_run_ok(h, keygen));
    g_autofree char *forger_sec =
        g_build_filename(forger_dir, E2E_KEY_ID "-" E2E_KEY_VERSION ".sec", NULL);
    g_autofree char *poster = g_build_filename(h->dir, "forged-poster", NULL);
    g_autofree char *forged = register_venue(h, &auth, forger_sec, poster);

    harness_start_fake(h);
    HarnessDaemon *d = harness_start_proxd(h, "v15", 1, "person", config);
    assert_checkin_refused(d, forged, "not signed by a known health authority");

    /* Malformed payloads: each refused with a reason, nothing stored. */
    g_autofree char *truncated = g_strndup(forged, strlen(forged) - 7);
    g_autofree char *flipped = g_strdup(forged);
    gsize mid = strlen(flipped) - 20;
    flipped[mid] = flipped[mid] == 'A' ? 'B' : 'A';
    g_autofree char *huge = g_strnfill(2000, 'A');
    g_autofree char *oversized = g_strconcat("proxd://checkin/v1/", huge, NULL);
    const char *bad[] = {truncated,
                         flipped,
                         oversized,
                         "proxd://checkin/v1/",
                         "https://example.org/",
                         "proxd://checkin/v1/!!!!"};
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        const char *checkin[] = {"checkin", bad[i], NULL};
        int status = -1;
        g_autofree char *out = proxctl(d, checkin, &status);
        g_assert_cmpint(status, !=, 0);
        g_assert_cmpuint(strlen(g_strstrip(out)), >, 0);
    }

    /* A malformed warnings file: refused, nothing imported, nothing published. */
    const char *bad_warnings[] = {
        "{\"warnings\": [{\"kind\": \"same-vehicle\", \"beaconKey\": \"AAAA\", "
        "\"rollingStartIntervalNumber\": 2946672, \"rollingPeriod\": 144, \"start\": 1768464000, "
        "\"end\": 1768465800, \"transmissionRisk\": 5}]}",
        "{\"warnings\": [{\"kind\": \"bus\"}]}",
        "{\"warnings\": [{\"kind\": \"same-vehicle\", \"beaconKey\": "
        "\"AAAAAAAAAAAAAAAAAAAAAA==\", \"rollingStartIntervalNumber\": 2946672, "
        "\"rollingPeriod\": 144, \"start\": 1768465800, \"end\": 1768464000, "
        "\"transmissionRisk\": 5}]}",
        "not json",
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad_warnings); i++) {
        g_autofree char *path = g_build_filename(h->dir, "bad-warnings.json", NULL);
        g_assert_true(g_file_set_contents(path, bad_warnings[i], -1, NULL));
        const char *import[] = {
            g_getenv("PROX_AUTHORITY"), "warning", "import", "--db", auth.db, path, NULL};
        g_autofree char *out = NULL;
        g_autofree char *err = NULL;
        int status = e2e_run(h, import, -1, &out, &err);
        g_test_message("warning import #%u -> %d: %s%s", i, status, out, err);
        g_assert_cmpint(status, !=, 0);
        g_assert_cmpuint(strlen(err), >, 0);
    }
    g_strfreev(e2e_authority_publish(&auth, 0));
    g_autoptr(GVariant) result = e2e_sync_complete(d);
    g_autoptr(GVariant) added = g_variant_lookup_value(result, "warnings-added", NULL);
    g_assert_nonnull(added);
    g_assert_cmpuint(g_variant_is_of_type(added, G_VARIANT_TYPE_UINT64)
                         ? g_variant_get_uint64(added)
                         : g_variant_get_uint32(added),
                     ==, 0);

    harness_stop_proxd(d);
    e2e_authority_clear(&auth);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/venues/same-vehicle", test_same_vehicle);
    g_test_add_func("/venues/checkin", test_checkin);
    g_test_add_func("/venues/forged", test_forged);
    return g_test_run();
}
