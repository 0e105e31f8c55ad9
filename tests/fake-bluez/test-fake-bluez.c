#define G_LOG_DOMAIN "fake-bluez"

/* Tests of the fake BlueZ radio world: its pure parts (clock, scenario, radio model,
 * addresses) directly, and the fake-bluez program as a client would see it, on a private
 * dbus-daemon. Every wait is on an event (a signal, a reply, a bus name) with a deadline. */

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <signal.h>
#include <sys/prctl.h>
#include <string.h>

#include "bdaddr.h"
#include "bt-uuid.h"
#include "radio.h"
#include "scenario.h"
#include "prox-sim-clock.h"

#define FD6F "0000fd6f-0000-1000-8000-00805f9b34fb"
#define ADV_PATH "/org/proxd/test/advertisement0"
#define HCI0 "/org/bluez/hci0"
#define HCI1 "/org/bluez/hci1"
#define SIM_EPOCH 1700000000.0
#define WAIT_MS 10000

/* --- waiting on events with a deadline ----------------------------------------------------- */

typedef struct {
    gboolean expired;
    guint source;
} Deadline;

static gboolean on_deadline(gpointer user_data)
{
    Deadline *d = user_data;

    d->expired = TRUE;
    d->source = 0;
    return G_SOURCE_REMOVE;
}

static void deadline_start(Deadline *d, guint ms)
{
    d->expired = FALSE;
    d->source = g_timeout_add(ms, on_deadline, d);
}

/* Runs one main-loop iteration (it blocks until some event or the deadline). */
static gboolean deadline_iterate(Deadline *d)
{
    if (d->expired)
        return FALSE;
    g_main_context_iteration(NULL, TRUE);
    return TRUE;
}

static void deadline_end(Deadline *d)
{
    g_clear_handle_id(&d->source, g_source_remove);
}

#define WAIT_FOR(cond, ms, what)                                                                   \
    G_STMT_START                                                                                   \
    {                                                                                              \
        Deadline dl_;                                                                              \
        deadline_start(&dl_, (ms));                                                                \
        while (!(cond)) {                                                                          \
            if (!deadline_iterate(&dl_))                                                           \
                g_error("timed out after %u ms waiting for %s", (guint)(ms), (what));              \
        }                                                                                          \
        deadline_end(&dl_);                                                                        \
    }                                                                                              \
    G_STMT_END

/* --- the test's advertisement object ------------------------------------------------------- */

static const char advertisement_xml[] = "<node><interface name='org.bluez.LEAdvertisement1'>"
                                        "<method name='Release'/>"
                                        "<property name='Type' type='s' access='read'/>"
                                        "<property name='ServiceUUIDs' type='as' access='read'/>"
                                        "<property name='ServiceData' type='a{sv}' access='read'/>"
                                        "<property name='Discoverable' type='b' access='read'/>"
                                        "</interface></node>";

typedef struct {
    GDBusConnection *conn;
    char *path;
    guint registration;
    char *type;
    gboolean discoverable; /* exported only when TRUE */
    GVariant *service_data;
    guint reads;    /* GetAll round trips (counted on Type) */
    guint releases; /* Release() calls received */
    gboolean replied;
    GError *error;
} TestAdvert;

static GVariant *service_data_of(guint8 seed, gsize len)
{
    guint8 bytes[32];
    GVariantBuilder b;

    g_assert_cmpuint(len, <=, sizeof bytes);
    for (gsize i = 0; i < len; i++)
        bytes[i] = (guint8)(seed + i);
    g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
    g_variant_builder_add(&b, "{sv}", FD6F,
                          g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, bytes, len, 1));
    return g_variant_ref_sink(g_variant_builder_end(&b));
}

static void advert_method(GDBusConnection *conn, const char *sender, const char *path,
                          const char *iface, const char *method, GVariant *params,
                          GDBusMethodInvocation *invocation, gpointer user_data)
{
    TestAdvert *ad = user_data;

    if (g_str_equal(method, "Release"))
        ad->releases++;
    g_dbus_method_invocation_return_value(invocation, NULL);
}

static GVariant *advert_get(GDBusConnection *conn, const char *sender, const char *path,
                            const char *iface, const char *name, GError **error, gpointer user_data)
{
    TestAdvert *ad = user_data;
    static const char *const uuids[] = {FD6F, NULL};

    if (g_str_equal(name, "Type")) {
        ad->reads++;
        return g_variant_new_string(ad->type);
    }
    if (g_str_equal(name, "ServiceUUIDs"))
        return g_variant_new_strv(uuids, -1);
    if (g_str_equal(name, "ServiceData"))
        return g_variant_ref(ad->service_data);
    if (g_str_equal(name, "Discoverable") && ad->discoverable)
        return g_variant_new_boolean(TRUE);
    g_set_error(error, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS, "No such property");
    return NULL;
}

static TestAdvert *advert_new(GDBusConnection *conn, const char *path, GVariant *service_data)
{
    static const GDBusInterfaceVTable vtable = {advert_method, advert_get, NULL, {0}};
    g_autoptr(GDBusNodeInfo) node = g_dbus_node_info_new_for_xml(advertisement_xml, NULL);
    TestAdvert *ad = g_new0(TestAdvert, 1);

    ad->conn = g_object_ref(conn);
    ad->path = g_strdup(path);
    ad->type = g_strdup("broadcast");
    ad->service_data = service_data;
    ad->registration =
        g_dbus_connection_register_object(conn, path, node->interfaces[0], &vtable, ad, NULL, NULL);
    g_assert_cmpuint(ad->registration, !=, 0);
    return ad;
}

static void advert_free(TestAdvert *ad)
{
    if (!g_dbus_connection_is_closed(ad->conn))
        g_dbus_connection_unregister_object(ad->conn, ad->registration);
    g_object_unref(ad->conn);
    g_variant_unref(ad->service_data);
    g_clear_error(&ad->error);
    g_free(ad->type);
    g_free(ad->path);
    g_free(ad);
}

static void on_register_reply(GObject *source, GAsyncResult *res, gpointer user_data)
{
    TestAdvert *ad = user_data;
    g_autoptr(GVariant) reply =
        g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &ad->error);

    ad->replied = TRUE;
}

/* RegisterAdvertisement, with the main loop running: the fake reads the object back first.
 * Returns the error (owned by ad) or NULL. */
static const GError *advert_register(TestAdvert *ad, const char *adapter_path)
{
    g_clear_error(&ad->error);
    ad->replied = FALSE;
    g_dbus_connection_call(
        ad->conn, "org.bluez", adapter_path, "org.bluez.LEAdvertisingManager1",
        "RegisterAdvertisement",
        g_variant_new("(o@a{sv})", ad->path, g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0)),
        NULL, G_DBUS_CALL_FLAGS_NONE, WAIT_MS, NULL, on_register_reply, ad);
    WAIT_FOR(ad->replied, WAIT_MS, "the RegisterAdvertisement reply");
    return ad->error;
}

static void advert_change_service_data(TestAdvert *ad, GVariant *service_data)
{
    GVariantBuilder changed;

    g_variant_unref(ad->service_data);
    ad->service_data = service_data;
    g_variant_builder_init(&changed, G_VARIANT_TYPE_VARDICT);
    g_variant_builder_add(&changed, "{sv}", "ServiceData", service_data);
    g_dbus_connection_emit_signal(
        ad->conn, NULL, ad->path, "org.freedesktop.DBus.Properties", "PropertiesChanged",
        g_variant_new("(sa{sv}as)", "org.bluez.LEAdvertisement1", &changed, NULL), NULL);
}

/* Children die with the test, even when it aborts on a failed assertion. */
static void die_with_parent(gpointer user_data)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
}

/* --- fixture: private bus, the fake, an object-manager client ------------------------------ */

typedef struct {
    GSubprocess *bus;
    gboolean bus_exited;
    char *address;
    char *clock_spec;
    char *tmpdir;
    char *truth_path;
    GSubprocess *fake;
    gboolean fake_exited;
    int fake_status;
    GDBusConnection *conn;
    GDBusObjectManager *om;
    guint control_watch;
    gboolean control_up;
    guint signal_sub;
    GVariant *last_adv_event; /* last AdvertisementChanged payload */
    guint adv_events;
    char *last_removed_reason;
    guint removed_events;
    guint rssi_changes;
    guint service_data_changes;
    guint manager_added;           /* LEAdvertisingManager1 interface-added on hci0 */
    gboolean manager_at_first_add; /* hci0 already had the manager when first seen */
    gboolean hci0_seen;
    const char *scenario; /* file in tests/scenarios; NULL: two-devices.json */
} Fixture;

static GDBusConnection *connect_bus(Fixture *f)
{
    g_autoptr(GError) error = NULL;
    GDBusConnection *conn =
        g_dbus_connection_new_for_address_sync(f->address,
                                               G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                   G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                               NULL, NULL, &error);

    g_assert_no_error(error);
    return conn;
}

static void on_control_appeared(GDBusConnection *c, const char *name, const char *owner,
                                gpointer user_data)
{
    ((Fixture *)user_data)->control_up = TRUE;
}

static void on_control_vanished(GDBusConnection *c, const char *name, gpointer user_data)
{
    ((Fixture *)user_data)->control_up = FALSE;
}

static void on_control_signal(GDBusConnection *c, const char *sender, const char *path,
                              const char *iface, const char *member, GVariant *params,
                              gpointer user_data)
{
    Fixture *f = user_data;

    if (g_str_equal(member, "AdvertisementChanged")) {
        g_clear_pointer(&f->last_adv_event, g_variant_unref);
        g_variant_get(params, "(@a{sv})", &f->last_adv_event);
        f->adv_events++;
    } else if (g_str_equal(member, "AdvertisementRemoved")) {
        g_free(f->last_removed_reason);
        g_variant_get(params, "(usos)", NULL, NULL, NULL, &f->last_removed_reason);
        f->removed_events++;
    }
}

static void on_props_changed(GDBusObjectManagerClient *om, GDBusObjectProxy *object,
                             GDBusProxy *proxy, GVariant *changed, const char *const *invalidated,
                             gpointer user_data)
{
    Fixture *f = user_data;

    if (!g_str_equal(g_dbus_proxy_get_interface_name(proxy), "org.bluez.Device1"))
        return;
    if (g_variant_lookup_value(changed, "RSSI", NULL) != NULL) {
        g_variant_unref(g_variant_lookup_value(changed, "RSSI", NULL));
        f->rssi_changes++;
    }
    if (g_variant_lookup_value(changed, "ServiceData", NULL) != NULL) {
        g_variant_unref(g_variant_lookup_value(changed, "ServiceData", NULL));
        f->service_data_changes++;
    }
}

static gboolean has_iface(GDBusObject *object, const char *name)
{
    g_autoptr(GDBusInterface) iface = g_dbus_object_get_interface(object, name);

    return iface != NULL;
}

static void on_object_added(GDBusObjectManager *om, GDBusObject *object, gpointer user_data)
{
    Fixture *f = user_data;

    if (g_str_equal(g_dbus_object_get_object_path(object), HCI0) && !f->hci0_seen) {
        f->hci0_seen = TRUE;
        f->manager_at_first_add = has_iface(object, "org.bluez.LEAdvertisingManager1");
    }
}

static void on_interface_added(GDBusObjectManager *om, GDBusObject *object, GDBusInterface *iface,
                               gpointer user_data)
{
    Fixture *f = user_data;
    GDBusInterfaceInfo *info = g_dbus_interface_get_info(iface);
    const char *name =
        info != NULL ? info->name : g_dbus_proxy_get_interface_name(G_DBUS_PROXY(iface));

    if (g_str_equal(g_dbus_object_get_object_path(object), HCI0) &&
        g_str_equal(name, "org.bluez.LEAdvertisingManager1"))
        f->manager_added++;
}

static void on_fake_exited(GObject *source, GAsyncResult *res, gpointer user_data)
{
    Fixture *f = user_data;

    g_subprocess_wait_finish(G_SUBPROCESS(source), res, NULL);
    f->fake_status = g_subprocess_get_if_exited(G_SUBPROCESS(source))
                         ? g_subprocess_get_exit_status(G_SUBPROCESS(source))
                         : -1;
    f->fake_exited = TRUE;
}

static void fake_start(Fixture *f)
{
    g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_NONE);
    g_autofree char *scenario =
        g_test_build_filename(G_TEST_DIST, "..", "scenarios",
                              f->scenario != NULL ? f->scenario : "two-devices.json", NULL);
    g_autofree char *program = NULL;
    g_autoptr(GError) error = NULL;

    program = g_strdup(g_getenv("FAKE_BLUEZ"));
    if (program == NULL)
        program = g_test_build_filename(G_TEST_BUILT, "fake-bluez", NULL);
    g_subprocess_launcher_setenv(launcher, "PROX_SIM_CLOCK", f->clock_spec, TRUE);
    g_subprocess_launcher_set_child_setup(launcher, die_with_parent, NULL, NULL);
    f->fake = g_subprocess_launcher_spawn(launcher, &error, program, "--bus-address", f->address,
                                          "--scenario", scenario, "--seed", "7", "--truth-log",
                                          f->truth_path, "--adv-manager-delay", "200", NULL);
    g_assert_no_error(error);
    f->fake_exited = FALSE;
    g_subprocess_wait_async(f->fake, NULL, on_fake_exited, f);
    WAIT_FOR(f->control_up, WAIT_MS, "the fake's control name");
}

static void fake_kill(Fixture *f, int sig)
{
    g_subprocess_send_signal(f->fake, sig);
    WAIT_FOR(f->fake_exited, WAIT_MS, "fake-bluez to exit");
    WAIT_FOR(!f->control_up, WAIT_MS, "the fake's names to vanish");
    g_clear_object(&f->fake);
}

/* A sim clock at SIM_EPOCH now, running `speed` times real time. */
static void set_clock(Fixture *f, double speed)
{
    ProxSimClock clock = {g_get_real_time(), (gint64)(SIM_EPOCH * G_USEC_PER_SEC), speed};

    g_free(f->clock_spec);
    f->clock_spec = prox_sim_clock_format(&clock);
}

static const char bus_config[] =
    "<busconfig><type>session</type><listen>unix:tmpdir=/tmp</listen>"
    "<policy context='default'><allow send_destination='*' eavesdrop='true'/>"
    "<allow eavesdrop='true'/><allow own='*'/></policy></busconfig>\n";

static void on_bus_exited(GObject *source, GAsyncResult *res, gpointer user_data)
{
    g_subprocess_wait_finish(G_SUBPROCESS(source), res, NULL);
    ((Fixture *)user_data)->bus_exited = TRUE;
}

/* A private dbus-daemon with no activatable services; never the system bus. */
static void bus_start(Fixture *f)
{
    g_autofree char *config = g_build_filename(f->tmpdir, "bus.conf", NULL);
    g_autofree char *config_arg = g_strconcat("--config-file=", config, NULL);
    g_autoptr(GDataInputStream) out = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new(
        G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_SILENCE);

    g_assert_true(g_file_set_contents(config, bus_config, -1, &error));
    g_subprocess_launcher_set_child_setup(launcher, die_with_parent, NULL, NULL);
    f->bus = g_subprocess_launcher_spawn(launcher, &error, "dbus-daemon", "--nofork",
                                         "--print-address=1", config_arg, NULL);
    g_assert_no_error(error);
    g_subprocess_wait_async(f->bus, NULL, on_bus_exited, f);
    /* The daemon prints its address once it listens. */
    out = g_data_input_stream_new(g_subprocess_get_stdout_pipe(f->bus));
    f->address = g_data_input_stream_read_line(out, NULL, NULL, &error);
    g_assert_no_error(error);
    g_assert_nonnull(f->address);
    g_unlink(config);
}

static void bus_stop(Fixture *f)
{
    g_subprocess_send_signal(f->bus, SIGTERM);
    WAIT_FOR(f->bus_exited, WAIT_MS, "dbus-daemon to exit");
    g_clear_object(&f->bus);
}

static void fixture_setup_speed(Fixture *f, double speed)
{
    g_autoptr(GError) error = NULL;

    f->tmpdir = g_dir_make_tmp("fake-bluez-test-XXXXXX", &error);
    g_assert_no_error(error);
    bus_start(f);
    f->truth_path = g_build_filename(f->tmpdir, "truth.jsonl", NULL);
    set_clock(f, speed);
    f->conn = connect_bus(f);
    f->control_watch = g_bus_watch_name_on_connection(
        f->conn, "org.proxd.FakeBluez", G_BUS_NAME_WATCHER_FLAGS_NONE, on_control_appeared,
        on_control_vanished, f, NULL);
    f->signal_sub = g_dbus_connection_signal_subscribe(
        f->conn, NULL, "org.proxd.FakeBluez1", NULL, "/org/proxd/FakeBluez", NULL,
        G_DBUS_SIGNAL_FLAGS_NONE, on_control_signal, f, NULL);
    /* Made before the fake runs, so it sees every object arrive. */
    f->om = g_dbus_object_manager_client_new_sync(f->conn, G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_NONE,
                                                  "org.bluez", "/", NULL, NULL, NULL, NULL, &error);
    g_assert_no_error(error);
    g_signal_connect(f->om, "interface-proxy-properties-changed", G_CALLBACK(on_props_changed), f);
    g_signal_connect(f->om, "object-added", G_CALLBACK(on_object_added), f);
    g_signal_connect(f->om, "interface-added", G_CALLBACK(on_interface_added), f);
    fake_start(f);
}

static void fixture_setup(Fixture *f, gconstpointer data)
{
    fixture_setup_speed(f, 1.0);
}

static void fixture_setup_fast(Fixture *f, gconstpointer data)
{
    fixture_setup_speed(f, 20.0);
}

/* alice (hci0) and bob (hci1) on LE-only controllers with legacy advertising. */
static void fixture_setup_legacy(Fixture *f, gconstpointer data)
{
    f->scenario = "legacy-le.json";
    fixture_setup_speed(f, 1.0);
}

static GVariant *control(Fixture *f, const char *method, GVariant *params);

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    if (f->fake != NULL) {
        /* A clean exit (status 0) also means no leak report under AddressSanitizer. */
        g_variant_unref(control(f, "Quit", NULL));
        WAIT_FOR(f->fake_exited, WAIT_MS, "fake-bluez to quit");
        g_assert_cmpint(f->fake_status, ==, 0);
        WAIT_FOR(!f->control_up, WAIT_MS, "the fake's names to vanish");
        g_clear_object(&f->fake);
    }
    g_signal_handlers_disconnect_by_data(f->om, f);
    g_clear_object(&f->om);
    g_dbus_connection_signal_unsubscribe(f->conn, f->signal_sub);
    g_bus_unwatch_name(f->control_watch);
    g_dbus_connection_close_sync(f->conn, NULL, NULL);
    g_clear_object(&f->conn);
    bus_stop(f);
    g_unlink(f->truth_path);
    g_rmdir(f->tmpdir);
    g_clear_pointer(&f->last_adv_event, g_variant_unref);
    g_free(f->last_removed_reason);
    g_free(f->truth_path);
    g_free(f->tmpdir);
    g_free(f->clock_spec);
    g_free(f->address);
}

/* --- client helpers ----------------------------------------------------------------------- */

static GVariant *call(GDBusConnection *conn, const char *dest, const char *path, const char *iface,
                      const char *method, GVariant *params, GError **error)
{
    return g_dbus_connection_call_sync(conn, dest, path, iface, method, params, NULL,
                                       G_DBUS_CALL_FLAGS_NONE, WAIT_MS, NULL, error);
}

static void call_ok(GDBusConnection *conn, const char *path, const char *iface, const char *method,
                    GVariant *params)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reply = call(conn, "org.bluez", path, iface, method, params, &error);

    g_assert_no_error(error);
}

static GVariant *control(Fixture *f, const char *method, GVariant *params)
{
    g_autoptr(GError) error = NULL;
    GVariant *reply = call(f->conn, "org.proxd.FakeBluez", "/org/proxd/FakeBluez",
                           "org.proxd.FakeBluez1", method, params, &error);

    g_assert_no_error(error);
    return reply;
}

static double sim_time(Fixture *f)
{
    g_autoptr(GVariant) reply = control(f, "GetSimTime", NULL);
    double t;

    g_variant_get(reply, "(d)", &t);
    return t;
}

typedef struct {
    gboolean done;
    guint visible;
} ReportWait;

static void on_wait_reports(GObject *source, GAsyncResult *res, gpointer user_data)
{
    ReportWait *w = user_data;
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reply =
        g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);

    g_assert_no_error(error);
    g_variant_get(reply, "(u)", &w->visible);
    w->done = TRUE;
}

/* Waits for `count` more over-the-air reports from hci<advertiser> at hci<scanner>, running
 * the main loop so that every D-Bus signal the fake sent before its reply is handled. */
static guint wait_reports(Fixture *f, guint scanner, guint advertiser, guint count)
{
    ReportWait w = {FALSE, 0};

    g_dbus_connection_call(
        f->conn, "org.proxd.FakeBluez", "/org/proxd/FakeBluez", "org.proxd.FakeBluez1",
        "WaitReports", g_variant_new("(uuu)", scanner, advertiser, count), G_VARIANT_TYPE("(u)"),
        G_DBUS_CALL_FLAGS_NONE, WAIT_MS, NULL, on_wait_reports, &w);
    WAIT_FOR(w.done, WAIT_MS, "radio reports");
    return w.visible;
}

/* The registration (owner, path) as ListAdvertisements shows it, or NULL. */
static GVariant *find_registration(Fixture *f, const char *owner, const char *path)
{
    g_autoptr(GVariant) reply = control(f, "ListAdvertisements", NULL);
    g_autoptr(GVariant) list = g_variant_get_child_value(reply, 0);

    for (gsize i = 0; i < g_variant_n_children(list); i++) {
        GVariant *ad = g_variant_get_child_value(list, i);
        const char *o = NULL, *p = NULL;

        g_variant_lookup(ad, "Owner", "&s", &o);
        g_variant_lookup(ad, "Path", "&o", &p);
        if (g_str_equal(o, owner) && g_str_equal(p, path))
            return ad;
        g_variant_unref(ad);
    }
    return NULL;
}

static char *lookup_string(GVariant *dict, const char *key)
{
    char *value = NULL;

    g_assert_true(g_variant_lookup(dict, key, "s", &value));
    return value;
}

static gboolean lookup_bool(GVariant *dict, const char *key)
{
    gboolean value = FALSE;

    g_assert_true(g_variant_lookup(dict, key, "b", &value));
    return value;
}

static void assert_remote_error(const GError *error, const char *name)
{
    g_autofree char *remote = NULL;

    g_assert_nonnull(error);
    remote = g_dbus_error_get_remote_error(error);
    g_assert_cmpstr(remote, ==, name);
}

static gboolean is_nrpa_string(const char *text)
{
    FbBdaddr addr;

    return fb_bdaddr_parse(text, &addr) && fb_bdaddr_is_nrpa(&addr);
}

static GVariant *proxy_prop(Fixture *f, const char *path, const char *iface, const char *name)
{
    g_autoptr(GDBusInterface) proxy = g_dbus_object_manager_get_interface(f->om, path, iface);

    if (proxy == NULL)
        return NULL;
    return g_dbus_proxy_get_cached_property(G_DBUS_PROXY(proxy), name);
}

static char *prop_string(Fixture *f, const char *path, const char *iface, const char *name)
{
    g_autoptr(GVariant) v = proxy_prop(f, path, iface, name);

    return v != NULL ? g_variant_dup_string(v, NULL) : NULL;
}

static int prop_byte(Fixture *f, const char *path, const char *iface, const char *name)
{
    g_autoptr(GVariant) v = proxy_prop(f, path, iface, name);

    return v != NULL ? g_variant_get_byte(v) : -1;
}

static gboolean prop_string_is(Fixture *f, const char *path, const char *iface, const char *name,
                               const char *expected)
{
    g_autofree char *v = prop_string(f, path, iface, name);

    return g_strcmp0(v, expected) == 0;
}

static gboolean prop_bool(Fixture *f, const char *path, const char *iface, const char *name,
                          gboolean expected)
{
    g_autoptr(GVariant) v = proxy_prop(f, path, iface, name);

    return v != NULL && g_variant_get_boolean(v) == expected;
}

static gboolean has_interface(Fixture *f, const char *path, const char *iface)
{
    g_autoptr(GDBusInterface) proxy = g_dbus_object_manager_get_interface(f->om, path, iface);

    return proxy != NULL;
}

/* How many Device1 objects the adapter has; the first one's path in *first. */
static guint count_devices(Fixture *f, const char *adapter_path, char **first)
{
    g_autofree char *prefix = g_strconcat(adapter_path, "/dev_", NULL);
    GList *objects = g_dbus_object_manager_get_objects(f->om);
    guint n = 0;

    for (GList *l = objects; l; l = l->next) {
        const char *path = g_dbus_object_get_object_path(l->data);

        if (g_str_has_prefix(path, prefix) && has_iface(l->data, "org.bluez.Device1")) {
            if (n++ == 0 && first != NULL) {
                g_free(*first);
                *first = g_strdup(path);
            }
        }
    }
    g_list_free_full(objects, g_object_unref);
    return n;
}

static gboolean truth_has(Fixture *f, const char *needle)
{
    g_autofree char *text = NULL;

    return g_file_get_contents(f->truth_path, &text, NULL, NULL) && strstr(text, needle) != NULL;
}

/* Simulated time of the last report `to` heard that reached D-Bus, from the truth log. */
static double last_visible_report(Fixture *f, const char *to)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    double last = -1;

    g_assert_true(g_file_get_contents(f->truth_path, &text, NULL, NULL));
    lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i] != NULL; i++) {
        g_autoptr(JsonParser) parser = json_parser_new();
        JsonObject *o;

        if (*lines[i] == '\0')
            continue;
        g_assert_true(json_parser_load_from_data(parser, lines[i], -1, NULL));
        o = json_node_get_object(json_parser_get_root(parser));
        if (g_str_equal(json_object_get_string_member(o, "to"), to) &&
            json_object_get_boolean_member(o, "visible"))
            last = MAX(last, json_object_get_double_member(o, "t"));
    }
    g_assert_cmpfloat(last, >, 0);
    return last;
}

static gboolean has_public_device(Fixture *f, const char *adapter_path, const char *address)
{
    g_autofree char *path = NULL;
    FbBdaddr addr;

    g_assert_true(fb_bdaddr_parse(address, &addr));
    path = fb_bdaddr_device_path(adapter_path, &addr);
    return prop_string_is(f, path, "org.bluez.Device1", "AddressType", "public");
}

static void set_filter(GDBusConnection *conn, const char *adapter_path, gboolean duplicate,
                       gboolean discoverable)
{
    static const char *const uuids[] = {FD6F, NULL};
    GVariantBuilder b;

    g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
    g_variant_builder_add(&b, "{sv}", "Transport", g_variant_new_string("le"));
    g_variant_builder_add(&b, "{sv}", "UUIDs", g_variant_new_strv(uuids, -1));
    g_variant_builder_add(&b, "{sv}", "DuplicateData", g_variant_new_boolean(duplicate));
    if (discoverable)
        g_variant_builder_add(&b, "{sv}", "Discoverable", g_variant_new_boolean(TRUE));
    call_ok(conn, adapter_path, "org.bluez.Adapter1", "SetDiscoveryFilter",
            g_variant_new("(a{sv})", &b));
}

static void set_property(GDBusConnection *conn, const char *path, const char *iface,
                         const char *name, GVariant *value, GError **error)
{
    g_autoptr(GVariant) reply = call(conn, "org.bluez", path, "org.freedesktop.DBus.Properties",
                                     "Set", g_variant_new("(ssv)", iface, name, value), error);
}

static void wait_adapters_ready(Fixture *f)
{
    WAIT_FOR(has_interface(f, HCI0, "org.bluez.LEAdvertisingManager1") &&
                 has_interface(f, HCI1, "org.bluez.LEAdvertisingManager1"),
             WAIT_MS, "both adapters with their advertising managers");
}

/* Registers the usual FD6F broadcast on hci0 and waits until it is on the air. */
static TestAdvert *register_default(Fixture *f, GDBusConnection *conn)
{
    TestAdvert *ad = advert_new(conn, ADV_PATH, service_data_of(0x10, 20));
    guint events = f->adv_events;

    g_assert_no_error(advert_register(ad, HCI0));
    WAIT_FOR(f->adv_events > events, WAIT_MS, "the advertisement on the air");
    return ad;
}

/* --- pure parts ---------------------------------------------------------------------------- */

static void test_sim_clock(void)
{
    ProxSimClock c, d;
    g_autofree char *spec = NULL;
    g_autoptr(GError) error = NULL;

    g_assert_true(prox_sim_clock_parse("1000.5:2000:10", &c, &error));
    g_assert_no_error(error);
    g_assert_cmpint(c.real_start_us, ==, 1000500000);
    g_assert_cmpint(c.sim_start_us, ==, 2000000000);
    /* 2 real seconds after the start, 20 simulated seconds have passed. */
    g_assert_cmpint(prox_sim_clock_at_us(&c, 1002500000), ==, 2020000000);
    g_assert_cmpuint(prox_sim_clock_real_ms(&c, 30 * G_USEC_PER_SEC), ==, 3000);
    g_assert_cmpuint(prox_sim_clock_real_ms(&c, 1), ==, 1);
    spec = prox_sim_clock_format(&c);
    g_assert_true(prox_sim_clock_parse(spec, &d, NULL));
    g_assert_cmpint(d.real_start_us, ==, c.real_start_us);
    g_assert_cmpint(d.sim_start_us, ==, c.sim_start_us);
    g_assert_cmpfloat(d.speed, ==, c.speed);
    for (guint i = 0; i < 6; i++) {
        static const char *const bad[] = {"", "1:2", "1:2:0", "1:2:-1", "a:2:1", "1:2:3:4"};

        g_assert_false(prox_sim_clock_parse(bad[i], &d, NULL));
    }
    g_setenv(PROX_SIM_CLOCK_ENV, "", TRUE);
    g_assert_true(prox_sim_clock_init_from_env(&d, NULL));
    g_assert_cmpfloat(d.speed, ==, 1.0);
    g_unsetenv(PROX_SIM_CLOCK_ENV);
}

static void test_scenario_and_radio(void)
{
    static const char json[] =
        "{\"min_rssi\": -90, \"defaults\": {\"tx_power\": -60, \"noise_sigma\": 0},"
        " \"devices\": ["
        "  {\"name\": \"a\", \"adapter\": 0, \"waypoints\": [{\"t\": 0, \"x\": 0, \"y\": 0}]},"
        "  {\"name\": \"b\", \"adapter\": 3, \"role\": \"beacon\", \"path_loss_exponent\": 3,"
        "   \"controller\": \"le-legacy\","
        "   \"waypoints\": [{\"t\": 10, \"x\": 0, \"y\": 0}, {\"t\": 20, \"x\": 10, \"y\": 0}]}]}";
    g_autoptr(GError) error = NULL;
    g_autoptr(FbScenario) s = fb_scenario_parse(json, -1, &error);
    g_autoptr(GRand) rng = g_rand_new_with_seed(1);
    FbSimDevice *a, *b;
    double x, y, sum = 0, sum2 = 0;
    int rssi;

    g_assert_no_error(error);
    a = fb_scenario_find_name(s, "a");
    b = fb_scenario_find_adapter(s, 3);
    g_assert_nonnull(a);
    g_assert_nonnull(b);
    g_assert_cmpstr(b->role, ==, "beacon");
    g_assert_false(a->legacy_advertising);
    g_assert_true(b->legacy_advertising);
    g_assert_cmpfloat(s->min_rssi, ==, -90);
    fb_sim_device_position(b, 0, &x, &y);
    g_assert_cmpfloat(x, ==, 0);
    fb_sim_device_position(b, 15, &x, &y);
    g_assert_cmpfloat_with_epsilon(x, 5.0, 1e-9);
    fb_sim_device_position(b, 99, &x, &y);
    g_assert_cmpfloat(x, ==, 10);
    /* n = (2 + 3) / 2; at 10 m: -60 - 25 = -85. */
    g_assert_cmpfloat_with_epsilon(fb_radio_mean_rssi(a, b, 10), -85.0, 1e-9);
    g_assert_true(fb_radio_sample(a, b, 10, s->min_rssi, rng, &rssi));
    g_assert_cmpint(rssi, ==, -85);
    g_assert_false(fb_radio_sample(a, b, 100, s->min_rssi, rng, &rssi));
    /* The noise is N(0, σ²). */
    for (int i = 0; i < 20000; i++) {
        double z = fb_radio_gaussian(rng);

        sum += z;
        sum2 += z * z;
    }
    g_assert_cmpfloat(fabs(sum / 20000), <, 0.05);
    g_assert_cmpfloat(fabs(sum2 / 20000 - 1), <, 0.05);

    for (guint i = 0; i < 5; i++) {
        static const char *const bad[] = {
            "{\"devices\": [{\"name\": \"a\", \"adapter\": 0, \"controller\": \"bredr\", "
            "\"waypoints\": [{\"t\": 0, \"x\": 0, \"y\": 0}]}]}",
            "{\"devices\": [{\"name\": \"a\", \"adapter\": 0, \"wayponts\": []}]}",
            "{\"devices\": [{\"name\": \"a\", \"adapter\": 0, \"waypoints\": "
            "[{\"t\": 5, \"x\": 0, \"y\": 0}, {\"t\": 1, \"x\": 0, \"y\": 0}]}]}",
            "{\"devices\": [{\"name\": \"a\", \"adapter\": 0, \"waypoints\": [{\"t\": 0, "
            "\"x\": 0, \"y\": 0}]}, {\"name\": \"b\", \"adapter\": 0, \"waypoints\": [{\"t\": "
            "0, \"x\": 0, \"y\": 0}]}]}",
            "{\"devices\": 3}"};
        g_autoptr(GError) e = NULL;
        g_autoptr(FbScenario) none = fb_scenario_parse(bad[i], -1, &e);

        g_assert_null(none);
        g_assert_nonnull(e);
    }
}

static void test_addresses_and_uuids(void)
{
    g_autoptr(GRand) rng = g_rand_new_with_seed(3);
    char uuid[FB_UUID_STRLEN], text[18];
    FbBdaddr a, b;

    for (int i = 0; i < 1000; i++) {
        fb_bdaddr_random_nrpa(rng, &a, &b);
        g_assert_cmpint(b.b[0] & 0xc0, ==, 0);
        g_assert_true(fb_bdaddr_is_nrpa(&b));
        g_assert_false(fb_bdaddr_equal(&a, &b));
        a = b;
    }
    g_assert_true(fb_bdaddr_parse("00:1B:DC:0A:11:CE", &a));
    g_assert_cmpstr(fb_bdaddr_to_string(&a, text), ==, "00:1B:DC:0A:11:CE");
    g_assert_false(fb_bdaddr_parse("00:1B:DC:0A:11", &a));
    g_assert_cmpuint(fb_uuid_normalise("FD6F", uuid), ==, 2);
    g_assert_cmpstr(uuid, ==, FD6F);
    g_assert_cmpuint(fb_uuid_normalise("0x1234abcd", uuid), ==, 4);
    g_assert_cmpuint(fb_uuid_normalise(FD6F, uuid), ==, 2);
    g_assert_cmpuint(fb_uuid_normalise("12345678-1234-1234-1234-123456789abc", uuid), ==, 16);
    g_assert_cmpuint(fb_uuid_normalise("fd6", uuid), ==, 0);
}

/* --- the fake on the bus ------------------------------------------------------------------- */

static void test_manager_appears_late(Fixture *f, gconstpointer data)
{
    g_autoptr(GVariant) supported = NULL;
    g_autoptr(GVariant) active = NULL;
    g_autoptr(GVariant) includes = NULL;
    g_autofree const char **inc = NULL;

    WAIT_FOR(f->hci0_seen, WAIT_MS, "hci0's Adapter1");
    g_assert_true(has_interface(f, HCI0, "org.bluez.Adapter1"));
    g_assert_false(f->manager_at_first_add);
    WAIT_FOR(f->manager_added == 1, WAIT_MS, "LEAdvertisingManager1 on hci0");
    supported = proxy_prop(f, HCI0, "org.bluez.LEAdvertisingManager1", "SupportedInstances");
    active = proxy_prop(f, HCI0, "org.bluez.LEAdvertisingManager1", "ActiveInstances");
    includes = proxy_prop(f, HCI0, "org.bluez.LEAdvertisingManager1", "SupportedIncludes");
    g_assert_cmpuint(g_variant_get_byte(supported), ==, 5);
    g_assert_cmpuint(g_variant_get_byte(active), ==, 0);
    inc = g_variant_get_strv(includes, NULL);
    g_assert_true(g_strv_contains(inc, "tx-power"));
    g_assert_true(prop_bool(f, HCI0, "org.bluez.Adapter1", "Powered", TRUE));
    g_assert_true(prop_bool(f, HCI0, "org.bluez.Adapter1", "Discovering", FALSE));
}

static void test_register_and_refresh(Fixture *f, gconstpointer data)
{
    const char *me = g_dbus_connection_get_unique_name(f->conn);
    g_autoptr(GVariant) reg = NULL;
    g_autoptr(GVariant) sd = NULL;
    g_autofree char *addr1 = NULL, *addr2 = NULL;
    TestAdvert *ad, *bad;
    const GError *err;
    guint events;

    wait_adapters_ready(f);
    ad = advert_new(f->conn, ADV_PATH, service_data_of(0x10, 20));
    g_assert_no_error(advert_register(ad, HCI0));
    /* The properties were read back over D-Bus before the reply. */
    g_assert_cmpuint(ad->reads, ==, 1);
    WAIT_FOR(f->last_adv_event != NULL, WAIT_MS, "AdvertisementChanged");
    reg = find_registration(f, me, ADV_PATH);
    g_assert_nonnull(reg);
    g_assert_true(lookup_bool(reg, "Registered"));
    g_assert_true(lookup_bool(reg, "Active"));
    g_assert_false(lookup_bool(reg, "FromPublicAddress"));
    addr1 = lookup_string(reg, "Address");
    g_assert_true(is_nrpa_string(addr1));
    sd = g_variant_lookup_value(reg, "ServiceData", G_VARIANT_TYPE_VARDICT);
    g_assert_true(g_variant_equal(sd, ad->service_data));
    WAIT_FOR(prop_byte(f, HCI0, "org.bluez.LEAdvertisingManager1", "ActiveInstances") == 1, WAIT_MS,
             "ActiveInstances 1");
    g_assert_cmpint(prop_byte(f, HCI0, "org.bluez.LEAdvertisingManager1", "SupportedInstances"), ==,
                    4);

    /* A ServiceData change refreshes the advertisement: new data, new random address. */
    events = f->adv_events;
    advert_change_service_data(ad, service_data_of(0x40, 20));
    WAIT_FOR(f->adv_events > events, WAIT_MS, "the refresh");
    g_clear_pointer(&reg, g_variant_unref);
    g_clear_pointer(&sd, g_variant_unref);
    reg = find_registration(f, me, ADV_PATH);
    addr2 = lookup_string(reg, "Address");
    g_assert_true(is_nrpa_string(addr2));
    g_assert_cmpstr(addr1, !=, addr2);
    sd = g_variant_lookup_value(reg, "ServiceData", G_VARIANT_TYPE_VARDICT);
    g_assert_true(g_variant_equal(sd, ad->service_data));

    /* The same object twice, a broadcast with flags, data that does not fit in 31 bytes. */
    err = advert_register(ad, HCI0);
    g_assert_true(g_dbus_error_is_remote_error(err));
    assert_remote_error(err, "org.bluez.Error.AlreadyExists");
    bad = advert_new(f->conn, "/org/proxd/test/bad", service_data_of(0, 20));
    bad->discoverable = TRUE;
    err = advert_register(bad, HCI0);
    g_assert_nonnull(err);
    assert_remote_error(err, "org.bluez.Error.Failed");
    bad->discoverable = FALSE;
    g_variant_unref(bad->service_data);
    bad->service_data = service_data_of(0, 28);
    err = advert_register(bad, HCI0);
    g_assert_nonnull(err);
    assert_remote_error(err, "org.bluez.Error.Failed");
    advert_free(bad);

    call_ok(f->conn, HCI0, "org.bluez.LEAdvertisingManager1", "UnregisterAdvertisement",
            g_variant_new("(o)", ADV_PATH));
    WAIT_FOR(f->removed_events == 1, WAIT_MS, "AdvertisementRemoved");
    g_assert_cmpstr(f->last_removed_reason, ==, "unregistered");
    g_assert_null(find_registration(f, me, ADV_PATH));
    g_assert_cmpuint(ad->releases, ==, 0);
    advert_free(ad);
}

static guint lookup_uint(GVariant *dict, const char *key)
{
    guint32 value = 0;

    g_assert_true(g_variant_lookup(dict, key, "u", &value));
    return value;
}

/* A legacy controller has one random address for advertising and scanning and cannot change
 * it while it scans: registering fails there, and new data keeps the old address. */
static void test_legacy_controller(Fixture *f, gconstpointer data)
{
    const char *me = g_dbus_connection_get_unique_name(f->conn);
    g_autoptr(GVariant) devices = control(f, "ListDevices", NULL);
    g_autoptr(GVariant) list = g_variant_get_child_value(devices, 0);
    g_autoptr(GVariant) reg = NULL;
    g_autoptr(GVariant) sd = NULL;
    g_autofree char *addr1 = NULL, *addr2 = NULL, *addr3 = NULL;
    TestAdvert *ad, *other;
    const GError *err;
    guint events;

    for (gsize i = 0; i < g_variant_n_children(list); i++) {
        g_autoptr(GVariant) dev = g_variant_get_child_value(list, i);
        g_autofree char *controller = lookup_string(dev, "Controller");
        g_assert_cmpstr(controller, ==, "le-legacy");
    }
    wait_adapters_ready(f);

    /* While hci0 scans (anyone's discovery session), a registration is refused with what
     * bluetoothd 5.66 answers on btvirt -L, after reading the object back. */
    call_ok(f->conn, HCI0, "org.bluez.Adapter1", "StartDiscovery", NULL);
    WAIT_FOR(prop_bool(f, HCI0, "org.bluez.Adapter1", "Discovering", TRUE), WAIT_MS,
             "Discovering on hci0");
    ad = advert_new(f->conn, ADV_PATH, service_data_of(0x10, 20));
    err = advert_register(ad, HCI0);
    assert_remote_error(err, "org.bluez.Error.Failed");
    g_assert_true(strstr(err->message, "Failed to register advertisement") != NULL);
    g_assert_cmpuint(ad->reads, ==, 1);
    g_assert_null(find_registration(f, me, ADV_PATH));
    g_assert_cmpint(prop_byte(f, HCI0, "org.bluez.LEAdvertisingManager1", "ActiveInstances"), ==,
                    0);
    /* The other adapter does not scan: it takes one. */
    other = advert_new(f->conn, "/org/proxd/test/other", service_data_of(0x20, 20));
    g_assert_no_error(advert_register(other, HCI1));

    /* With discovery stopped it works, from a fresh random address. */
    call_ok(f->conn, HCI0, "org.bluez.Adapter1", "StopDiscovery", NULL);
    WAIT_FOR(prop_bool(f, HCI0, "org.bluez.Adapter1", "Discovering", FALSE), WAIT_MS,
             "Discovering false on hci0");
    events = f->adv_events;
    g_assert_no_error(advert_register(ad, HCI0));
    WAIT_FOR(f->adv_events > events, WAIT_MS, "the advertisement on the air");
    reg = find_registration(f, me, ADV_PATH);
    addr1 = lookup_string(reg, "Address");
    g_assert_true(is_nrpa_string(addr1));

    /* Scanning again, the registration stays on the air; new data (an in-place refresh) goes
     * out from the old address. */
    call_ok(f->conn, HCI0, "org.bluez.Adapter1", "StartDiscovery", NULL);
    WAIT_FOR(prop_bool(f, HCI0, "org.bluez.Adapter1", "Discovering", TRUE), WAIT_MS,
             "Discovering on hci0 again");
    events = f->adv_events;
    advert_change_service_data(ad, service_data_of(0x40, 20));
    WAIT_FOR(f->adv_events > events, WAIT_MS, "the refresh");
    g_clear_pointer(&reg, g_variant_unref);
    reg = find_registration(f, me, ADV_PATH);
    addr2 = lookup_string(reg, "Address");
    g_assert_cmpstr(addr2, ==, addr1);
    sd = g_variant_lookup_value(reg, "ServiceData", G_VARIANT_TYPE_VARDICT);
    g_assert_true(g_variant_equal(sd, ad->service_data));
    g_assert_cmpuint(lookup_uint(reg, "Refreshes"), ==, 1);
    g_assert_cmpuint(lookup_uint(reg, "KeptAddress"), ==, 1);

    /* Not scanning, a refresh moves to a new address, but only after the new data went out
     * from the old one: counted too. */
    call_ok(f->conn, HCI0, "org.bluez.Adapter1", "StopDiscovery", NULL);
    WAIT_FOR(prop_bool(f, HCI0, "org.bluez.Adapter1", "Discovering", FALSE), WAIT_MS,
             "Discovering false on hci0 again");
    events = f->adv_events;
    advert_change_service_data(ad, service_data_of(0x60, 20));
    WAIT_FOR(f->adv_events > events, WAIT_MS, "the second refresh");
    g_clear_pointer(&reg, g_variant_unref);
    reg = find_registration(f, me, ADV_PATH);
    addr3 = lookup_string(reg, "Address");
    g_assert_true(is_nrpa_string(addr3));
    g_assert_cmpstr(addr3, !=, addr1);
    g_assert_cmpuint(lookup_uint(reg, "KeptAddress"), ==, 2);

    call_ok(f->conn, HCI0, "org.bluez.LEAdvertisingManager1", "UnregisterAdvertisement",
            g_variant_new("(o)", ADV_PATH));
    call_ok(f->conn, HCI1, "org.bluez.LEAdvertisingManager1", "UnregisterAdvertisement",
            g_variant_new("(o)", "/org/proxd/test/other"));
    advert_free(other);
    advert_free(ad);
}

/* The default (dual-mode) controller registers while it scans, and a refresh while it scans
 * moves to a new address. */
static void test_dual_controller_while_scanning(Fixture *f, gconstpointer data)
{
    const char *me = g_dbus_connection_get_unique_name(f->conn);
    g_autoptr(GVariant) reg = NULL;
    g_autofree char *addr1 = NULL, *addr2 = NULL;
    TestAdvert *ad;
    guint events;

    wait_adapters_ready(f);
    call_ok(f->conn, HCI0, "org.bluez.Adapter1", "StartDiscovery", NULL);
    WAIT_FOR(prop_bool(f, HCI0, "org.bluez.Adapter1", "Discovering", TRUE), WAIT_MS,
             "Discovering on hci0");
    ad = register_default(f, f->conn);
    reg = find_registration(f, me, ADV_PATH);
    addr1 = lookup_string(reg, "Address");
    events = f->adv_events;
    advert_change_service_data(ad, service_data_of(0x40, 20));
    WAIT_FOR(f->adv_events > events, WAIT_MS, "the refresh");
    g_clear_pointer(&reg, g_variant_unref);
    reg = find_registration(f, me, ADV_PATH);
    addr2 = lookup_string(reg, "Address");
    g_assert_cmpstr(addr2, !=, addr1);
    g_assert_cmpuint(lookup_uint(reg, "KeptAddress"), ==, 0);
    call_ok(f->conn, HCI0, "org.bluez.Adapter1", "StopDiscovery", NULL);
    call_ok(f->conn, HCI0, "org.bluez.LEAdvertisingManager1", "UnregisterAdvertisement",
            g_variant_new("(o)", ADV_PATH));
    advert_free(ad);
}

static void test_discovery(Fixture *f, gconstpointer data)
{
    const char *me = g_dbus_connection_get_unique_name(f->conn);
    g_autoptr(GVariant) reg = NULL;
    g_autoptr(GVariant) rssi = NULL;
    g_autoptr(GVariant) sd = NULL;
    g_autofree char *dev = NULL, *addr = NULL, *dev_addr = NULL, *needle = NULL;
    g_autofree char *truth = NULL, *expected_path = NULL;
    FbBdaddr bdaddr;
    guint rssi_before, sd_before;
    TestAdvert *ad;

    wait_adapters_ready(f);
    ad = register_default(f, f->conn);
    reg = find_registration(f, me, ADV_PATH);
    addr = lookup_string(reg, "Address");

    /* Plain discovery: our broadcast has no discoverable flags, so no Device1. */
    call_ok(f->conn, HCI1, "org.bluez.Adapter1", "StartDiscovery", NULL);
    WAIT_FOR(prop_bool(f, HCI1, "org.bluez.Adapter1", "Discovering", TRUE), WAIT_MS,
             "Discovering on hci1");
    g_assert_cmpuint(wait_reports(f, 1, 0, 5), ==, 0);
    g_assert_cmpuint(count_devices(f, HCI1, NULL), ==, 0);

    /* With the filter proxd uses, Device1 objects appear with service data and RSSI. */
    set_filter(f->conn, HCI1, TRUE, FALSE);
    WAIT_FOR(count_devices(f, HCI1, &dev) == 1, WAIT_MS, "a Device1 on hci1");
    /* Keyed by the advertiser's current random address. */
    g_assert_true(fb_bdaddr_parse(addr, &bdaddr));
    expected_path = fb_bdaddr_device_path(HCI1, &bdaddr);
    g_assert_cmpstr(dev, ==, expected_path);
    dev_addr = prop_string(f, dev, "org.bluez.Device1", "Address");
    g_assert_cmpstr(dev_addr, ==, addr);
    g_assert_true(prop_string_is(f, dev, "org.bluez.Device1", "AddressType", "random"));
    g_assert_true(prop_string_is(f, dev, "org.bluez.Device1", "Adapter", HCI1));
    g_assert_true(prop_bool(f, dev, "org.bluez.Device1", "Paired", FALSE));
    g_assert_true(prop_bool(f, dev, "org.bluez.Device1", "Connected", FALSE));
    g_assert_null(proxy_prop(f, dev, "org.bluez.Device1", "TxPower"));
    rssi = proxy_prop(f, dev, "org.bluez.Device1", "RSSI");
    g_assert_nonnull(rssi);
    /* 1.5 m apart: -59 - 20 log10(1.5) = -62.5 dBm, noise σ 2 dB. */
    g_assert_cmpint(g_variant_get_int16(rssi), >, -75);
    g_assert_cmpint(g_variant_get_int16(rssi), <, -50);
    sd = proxy_prop(f, dev, "org.bluez.Device1", "ServiceData");
    g_assert_true(g_variant_equal(sd, ad->service_data));

    /* DuplicateData: RSSI and ServiceData are signalled on every report. */
    rssi_before = f->rssi_changes;
    sd_before = f->service_data_changes;
    g_assert_cmpuint(wait_reports(f, 1, 0, 4), ==, 4);
    g_assert_cmpuint(f->rssi_changes - rssi_before, >=, 4);
    g_assert_cmpuint(f->service_data_changes - sd_before, >=, 4);
    /* Without it, unchanged service data is not signalled again; RSSI still is. */
    set_filter(f->conn, HCI1, FALSE, FALSE);
    g_assert_cmpuint(wait_reports(f, 1, 0, 1), ==, 1);
    rssi_before = f->rssi_changes;
    sd_before = f->service_data_changes;
    g_assert_cmpuint(wait_reports(f, 1, 0, 4), ==, 4);
    g_assert_cmpuint(f->rssi_changes - rssi_before, >=, 4);
    g_assert_cmpuint(f->service_data_changes - sd_before, ==, 0);

    /* The ground truth names both ends and the address heard. */
    needle = g_strdup_printf("\"from\":\"alice\",\"to\":\"bob\",\"from_adapter\":0,"
                             "\"to_adapter\":1,\"address\":\"%s\"",
                             addr);
    WAIT_FOR(truth_has(f, needle), WAIT_MS, "the truth log");

    /* Stopping the last session drops the non-connectable devices at once. */
    call_ok(f->conn, HCI1, "org.bluez.Adapter1", "StopDiscovery", NULL);
    WAIT_FOR(count_devices(f, HCI1, NULL) == 0, WAIT_MS, "Device1 removal");
    WAIT_FOR(prop_bool(f, HCI1, "org.bluez.Adapter1", "Discovering", FALSE), WAIT_MS,
             "Discovering false");
    advert_free(ad);
}

static void test_discoverable_leak(Fixture *f, gconstpointer data)
{
    const char *me = g_dbus_connection_get_unique_name(f->conn);
    g_autofree char *public_addr = NULL, *dev = NULL, *addr = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reg = NULL;
    g_autoptr(GDBusConnection) other = connect_bus(f);
    TestAdvert *ad;

    wait_adapters_ready(f);
    public_addr = prop_string(f, HCI0, "org.bluez.Adapter1", "Address");
    ad = register_default(f, f->conn);
    set_filter(f->conn, HCI1, TRUE, FALSE);
    call_ok(f->conn, HCI1, "org.bluez.Adapter1", "StartDiscovery", NULL);

    /* A settings panel makes hci0 discoverable: the broadcast leaks the public address. */
    set_property(f->conn, HCI0, "org.bluez.Adapter1", "Discoverable", g_variant_new_boolean(TRUE),
                 &error);
    g_assert_no_error(error);
    WAIT_FOR(f->last_adv_event != NULL && lookup_bool(f->last_adv_event, "FromPublicAddress"),
             WAIT_MS, "the advertisement to go out from the public address");
    reg = find_registration(f, me, ADV_PATH);
    addr = lookup_string(reg, "Address");
    g_assert_cmpstr(addr, ==, public_addr);
    g_assert_true(lookup_bool(reg, "FromPublicAddress"));
    /* Scanners see it too. */
    WAIT_FOR(has_public_device(f, HCI1, public_addr), WAIT_MS, "a public-address Device1 on hci1");

    set_property(f->conn, HCI0, "org.bluez.Adapter1", "Discoverable", g_variant_new_boolean(FALSE),
                 &error);
    g_assert_no_error(error);
    WAIT_FOR(!lookup_bool(f->last_adv_event, "FromPublicAddress"), WAIT_MS,
             "a random address again");
    g_clear_pointer(&reg, g_variant_unref);
    g_free(addr);
    reg = find_registration(f, me, ADV_PATH);
    addr = lookup_string(reg, "Address");
    g_assert_true(is_nrpa_string(addr));

    /* Any client's discovery filter with Discoverable=true has the same effect on hci0. */
    set_filter(other, HCI0, TRUE, TRUE);
    call_ok(other, HCI0, "org.bluez.Adapter1", "StartDiscovery", NULL);
    WAIT_FOR(prop_bool(f, HCI0, "org.bluez.Adapter1", "Discoverable", TRUE), WAIT_MS,
             "Discoverable from a discovery filter");
    WAIT_FOR(lookup_bool(f->last_adv_event, "FromPublicAddress"), WAIT_MS,
             "the leak from the filter");
    call_ok(other, HCI0, "org.bluez.Adapter1", "StopDiscovery", NULL);
    WAIT_FOR(prop_bool(f, HCI0, "org.bluez.Adapter1", "Discoverable", FALSE), WAIT_MS,
             "Discoverable back to false");
    WAIT_FOR(!lookup_bool(f->last_adv_event, "FromPublicAddress"), WAIT_MS,
             "a random address after the filter's discovery");
    g_dbus_connection_close_sync(other, NULL, NULL);
    advert_free(ad);
}

static void test_client_disconnect(Fixture *f, gconstpointer data)
{
    GDBusConnection *client = connect_bus(f);
    TestAdvert *ad;

    wait_adapters_ready(f);
    ad = register_default(f, client);
    set_filter(client, HCI1, TRUE, FALSE);
    call_ok(client, HCI1, "org.bluez.Adapter1", "StartDiscovery", NULL);
    WAIT_FOR(count_devices(f, HCI1, NULL) == 1, WAIT_MS, "a Device1 on hci1");

    /* The client leaves the bus: its registration and its discovery session go with it. */
    g_dbus_connection_close_sync(client, NULL, NULL);
    WAIT_FOR(f->removed_events == 1, WAIT_MS, "the registration to be dropped");
    g_assert_cmpstr(f->last_removed_reason, ==, "disconnected");
    WAIT_FOR(prop_bool(f, HCI1, "org.bluez.Adapter1", "Discovering", FALSE), WAIT_MS,
             "hci1 to stop discovering");
    WAIT_FOR(count_devices(f, HCI1, NULL) == 0, WAIT_MS, "hci1's devices to go");
    WAIT_FOR(prop_byte(f, HCI0, "org.bluez.LEAdvertisingManager1", "ActiveInstances") == 0, WAIT_MS,
             "ActiveInstances 0");
    g_assert_cmpuint(ad->releases, ==, 0);
    advert_free(ad);
    g_object_unref(client);
}

static void test_device_expiry(Fixture *f, gconstpointer data)
{
    g_autofree char *dev = NULL;
    double last, gone;
    TestAdvert *ad;

    wait_adapters_ready(f);
    ad = register_default(f, f->conn);
    set_filter(f->conn, HCI1, TRUE, FALSE);
    call_ok(f->conn, HCI1, "org.bluez.Adapter1", "StartDiscovery", NULL);
    WAIT_FOR(count_devices(f, HCI1, &dev) == 1, WAIT_MS, "a Device1 on hci1");

    /* bob walks 1 km away: nothing more is heard, and the device goes 30 s (sim) after the
     * last report that reached it (from the ground truth); the upper bound only allows for
     * a slow, loaded machine (20 sim s per real s). */
    g_variant_unref(control(f, "SetPosition", g_variant_new("(sdd)", "bob", 1000.0, 0.0)));
    WAIT_FOR(count_devices(f, HCI1, NULL) == 0, 5000, "the device to expire");
    gone = sim_time(f);
    last = last_visible_report(f, "bob");
    g_test_message("device expired %.2f s (sim) after it was last seen", gone - last);
    g_assert_cmpfloat(gone - last, >=, 30.0);
    g_assert_cmpfloat(gone - last, <=, 45.0);
    g_assert_true(prop_bool(f, HCI1, "org.bluez.Adapter1", "Discovering", TRUE));

    /* Back in range, a new Device1 appears for the same address. */
    g_variant_unref(control(f, "SetPosition", g_variant_new("(sdd)", "bob", 2.0, 0.0)));
    WAIT_FOR(count_devices(f, HCI1, NULL) == 1, WAIT_MS, "the device to come back");
    advert_free(ad);
}

static void test_power_and_unplug(Fixture *f, gconstpointer data)
{
    const char *me = g_dbus_connection_get_unique_name(f->conn);
    g_autofree char *before = NULL, *after = NULL;
    g_autoptr(GVariant) reg = NULL;
    g_autoptr(GVariant) list = NULL;
    g_autoptr(GVariant) children = NULL;
    g_autoptr(GError) error = NULL;
    TestAdvert *ad;

    wait_adapters_ready(f);
    ad = register_default(f, f->conn);
    reg = find_registration(f, me, ADV_PATH);
    before = lookup_string(reg, "Address");

    /* Power off: off air but still registered; power on: on air with a new address. */
    g_variant_unref(control(f, "SetPowered", g_variant_new("(ub)", 0, FALSE)));
    WAIT_FOR(!lookup_bool(f->last_adv_event, "Active"), WAIT_MS, "the advertisement off air");
    WAIT_FOR(prop_bool(f, HCI0, "org.bluez.Adapter1", "Powered", FALSE), WAIT_MS, "Powered false");
    set_property(f->conn, HCI0, "org.bluez.Adapter1", "Powered", g_variant_new_boolean(TRUE),
                 &error);
    g_assert_no_error(error);
    WAIT_FOR(lookup_bool(f->last_adv_event, "Active"), WAIT_MS, "the advertisement on air");
    g_clear_pointer(&reg, g_variant_unref);
    reg = find_registration(f, me, ADV_PATH);
    after = lookup_string(reg, "Address");
    g_assert_cmpstr(before, !=, after);
    g_assert_cmpuint(ad->releases, ==, 0);

    /* Power off ends discovery and forgets the filter: after power on, plain discovery
     * yields no device for our flag-less broadcast. */
    set_filter(f->conn, HCI1, TRUE, FALSE);
    call_ok(f->conn, HCI1, "org.bluez.Adapter1", "StartDiscovery", NULL);
    WAIT_FOR(count_devices(f, HCI1, NULL) == 1, WAIT_MS, "a Device1 on hci1");
    g_variant_unref(control(f, "SetPowered", g_variant_new("(ub)", 1, FALSE)));
    WAIT_FOR(count_devices(f, HCI1, NULL) == 0, WAIT_MS, "hci1's devices gone at power off");
    WAIT_FOR(prop_bool(f, HCI1, "org.bluez.Adapter1", "Discovering", FALSE), WAIT_MS,
             "Discovering false at power off");
    g_variant_unref(control(f, "SetPowered", g_variant_new("(ub)", 1, TRUE)));
    call_ok(f->conn, HCI1, "org.bluez.Adapter1", "StartDiscovery", NULL);
    g_assert_cmpuint(wait_reports(f, 1, 0, 3), ==, 0);

    /* rfkill: powering on fails while blocked. */
    g_variant_unref(control(f, "SetBlocked", g_variant_new("(ub)", 1, TRUE)));
    set_property(f->conn, HCI1, "org.bluez.Adapter1", "Powered", g_variant_new_boolean(TRUE),
                 &error);
    g_assert_nonnull(error);
    assert_remote_error(error, "org.bluez.Error.Blocked");
    g_clear_error(&error);

    /* Unplug hci0: Release() on the advertisement, objects gone; replug: fresh adapter. */
    g_variant_unref(control(f, "RemoveAdapter", g_variant_new("(u)", 0)));
    WAIT_FOR(ad->releases == 1, WAIT_MS, "Release() on unplug");
    WAIT_FOR(!has_interface(f, HCI0, "org.bluez.Adapter1"), WAIT_MS, "hci0 to go away");
    g_assert_cmpstr(f->last_removed_reason, ==, "released");
    g_variant_unref(control(f, "AddAdapter", g_variant_new("(u)", 0)));
    WAIT_FOR(has_interface(f, HCI0, "org.bluez.Adapter1"), WAIT_MS, "hci0 back");
    WAIT_FOR(has_interface(f, HCI0, "org.bluez.LEAdvertisingManager1"), WAIT_MS,
             "hci0's advertising manager back");
    list = control(f, "ListAdvertisements", NULL);
    g_assert_cmpstr(g_variant_get_type_string(list), ==, "(aa{sv})");
    g_assert_cmpuint(g_variant_n_children(list), ==, 1);
    children = g_variant_get_child_value(list, 0);
    g_assert_cmpuint(g_variant_n_children(children), ==, 0);
    advert_free(ad);
}

static void test_restart(Fixture *f, gconstpointer data)
{
    g_autoptr(GVariant) list = NULL;
    g_autoptr(GVariant) children = NULL;
    TestAdvert *ad;

    wait_adapters_ready(f);
    ad = register_default(f, f->conn);
    set_filter(f->conn, HCI1, TRUE, FALSE);
    call_ok(f->conn, HCI1, "org.bluez.Adapter1", "StartDiscovery", NULL);
    WAIT_FOR(count_devices(f, HCI1, NULL) == 1, WAIT_MS, "a Device1 on hci1");

    /* bluetoothd crashes: every object disappears, no Release(). */
    fake_kill(f, SIGKILL);
    WAIT_FOR(!has_interface(f, HCI0, "org.bluez.Adapter1") && count_devices(f, HCI1, NULL) == 0,
             WAIT_MS, "the objects to disappear");
    g_assert_cmpuint(ad->releases, ==, 0);

    /* It comes back with nothing registered and nobody discovering. */
    fake_start(f);
    wait_adapters_ready(f);
    list = control(f, "ListAdvertisements", NULL);
    children = g_variant_get_child_value(list, 0);
    g_assert_cmpuint(g_variant_n_children(children), ==, 0);
    g_assert_cmpint(prop_byte(f, HCI0, "org.bluez.LEAdvertisingManager1", "ActiveInstances"), ==,
                    0);
    g_assert_true(prop_bool(f, HCI1, "org.bluez.Adapter1", "Discovering", FALSE));
    g_assert_cmpuint(count_devices(f, HCI1, NULL), ==, 0);

    /* A clean stop (SIGTERM) releases what is registered. */
    g_assert_no_error(advert_register(ad, HCI0));
    fake_kill(f, SIGTERM);
    WAIT_FOR(ad->releases == 1, WAIT_MS, "Release() at shutdown");
    g_assert_cmpint(f->fake_status, ==, 0);
    advert_free(ad);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/fake-bluez/sim-clock", test_sim_clock);
    g_test_add_func("/fake-bluez/scenario-radio", test_scenario_and_radio);
    g_test_add_func("/fake-bluez/addresses-uuids", test_addresses_and_uuids);
    g_test_add("/fake-bluez/manager-appears-late", Fixture, NULL, fixture_setup,
               test_manager_appears_late, fixture_teardown);
    g_test_add("/fake-bluez/register-refresh", Fixture, NULL, fixture_setup,
               test_register_and_refresh, fixture_teardown);
    g_test_add("/fake-bluez/legacy-controller", Fixture, NULL, fixture_setup_legacy,
               test_legacy_controller, fixture_teardown);
    g_test_add("/fake-bluez/dual-controller-while-scanning", Fixture, NULL, fixture_setup,
               test_dual_controller_while_scanning, fixture_teardown);
    g_test_add("/fake-bluez/discovery", Fixture, NULL, fixture_setup, test_discovery,
               fixture_teardown);
    g_test_add("/fake-bluez/discoverable-leak", Fixture, NULL, fixture_setup,
               test_discoverable_leak, fixture_teardown);
    g_test_add("/fake-bluez/client-disconnect", Fixture, NULL, fixture_setup,
               test_client_disconnect, fixture_teardown);
    g_test_add("/fake-bluez/device-expiry", Fixture, NULL, fixture_setup_fast, test_device_expiry,
               fixture_teardown);
    g_test_add("/fake-bluez/power-unplug", Fixture, NULL, fixture_setup, test_power_and_unplug,
               fixture_teardown);
    g_test_add("/fake-bluez/restart", Fixture, NULL, fixture_setup, test_restart, fixture_teardown);
    return g_test_run();
}
