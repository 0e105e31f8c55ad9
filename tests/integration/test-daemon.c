/* test-daemon.c - proxd as a process: command line and configuration errors, one instance
 * per bus name, SIGHUP reload, robustness against malformed and foreign advertisements,
 * and the system bus policy (org.proxd.conf) enforced by a real dbus-daemon. */
#define G_LOG_DOMAIN "proxd-test"

#include <errno.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "bluez-generated.h"
#include "harness.h"
#include "prox-payload.h"
#include "prox-store.h"

#define TIMEOUT_MS 20000

typedef struct {
    int status;
    char *out;
} Run;

static void run_clear(Run *r)
{
    g_free(r->out);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Run, run_clear)

/* Runs argv to completion (stdout and stderr together), on the test bus of `h` if any. */
static void run_on(Run *r, Harness *h, const char *const *argv)
{
    g_autoptr(GError) error = NULL;
    GSubprocessFlags flags = G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE;
    g_autoptr(GSubprocessLauncher) launcher =
        h != NULL ? harness_launcher(h, flags) : g_subprocess_launcher_new(flags);
    g_autoptr(GSubprocess) p = g_subprocess_launcher_spawnv(launcher, argv, &error);
    g_assert_no_error(error);
    g_assert_true(g_subprocess_communicate_utf8(p, NULL, NULL, &r->out, NULL, &error));
    g_assert_no_error(error);
    g_assert_true(g_subprocess_get_if_exited(p));
    r->status = g_subprocess_get_exit_status(p);
}

static void run(Run *r, const char *const *argv)
{
    run_on(r, NULL, argv);
}

/* ---- command line ---- */

static void test_usage(void)
{
    const char *proxd = g_getenv("PROXD");
    g_autofree char *dir = g_dir_make_tmp("proxd-usage-XXXXXX", NULL);
    g_autofree char *bad_conf = g_build_filename(dir, "bad.conf", NULL);
    g_autofree char *bad_conf_arg = g_strdup_printf("--config=%s", bad_conf);
    g_assert_true(g_file_set_contents(
        bad_conf, "[Scanning]\nIntervalMinSeconds=300\nIntervalMaxSeconds=200\n", -1, NULL));

    g_auto(Run) help = {0};
    run(&help, (const char *const[]){proxd, "--help", NULL});
    g_assert_cmpint(help.status, ==, 0);
    g_assert_nonnull(strstr(help.out, "--role"));
    g_assert_nonnull(strstr(help.out, "SIGHUP"));

    g_auto(Run) role = {0};
    run(&role, (const char *const[]){proxd, "--role=driver", NULL});
    g_assert_cmpint(role.status, ==, 2);
    g_assert_nonnull(strstr(role.out, "person or beacon"));

    g_auto(Run) adapter = {0};
    run(&adapter, (const char *const[]){proxd, "--adapter=wlan0", NULL});
    g_assert_cmpint(adapter.status, ==, 2);

    g_auto(Run) missing = {0};
    run(&missing, (const char *const[]){proxd, "--config=/nonexistent/proxd.conf", NULL});
    g_assert_cmpint(missing.status, ==, 2);
    g_assert_nonnull(strstr(missing.out, "/nonexistent/proxd.conf"));

    g_auto(Run) bad = {0};
    run(&bad, (const char *const[]){proxd, bad_conf_arg, NULL});
    g_assert_cmpint(bad.status, ==, 2);
    g_assert_nonnull(strstr(bad.out, "IntervalMinSeconds"));

    g_auto(Run) sim = {0};
    g_autoptr(GSubprocessLauncher) launcher =
        g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE);
    g_subprocess_launcher_setenv(launcher, "PROX_SIM_CLOCK", "yesterday", TRUE);
    g_autoptr(GSubprocess) p =
        g_subprocess_launcher_spawn(launcher, NULL, proxd, "--session", NULL);
    g_assert_nonnull(p);
    g_assert_true(g_subprocess_communicate_utf8(p, NULL, NULL, &sim.out, NULL, NULL));
    g_assert_cmpint(g_subprocess_get_exit_status(p), ==, 2);
    g_assert_nonnull(strstr(sim.out, "PROX_SIM_CLOCK"));

    g_unlink(bad_conf);
    g_rmdir(dir);
}

/* ---- one instance per name ---- */

static void test_name_taken(void)
{
    g_autoptr(Harness) h = harness_new("two-devices.json", 1);
    HarnessDaemon *alice = harness_start_proxd(h, "alice", 0, "person", NULL);
    g_assert_true(harness_wait_property(alice, "State", g_variant_new_string("bluez-unavailable"),
                                        TIMEOUT_MS));

    g_autofree char *state_dir = g_build_filename(h->dir, "second", NULL);
    g_autofree char *state_arg = g_strdup_printf("--state-dir=%s", state_dir);
    g_autofree char *name_arg = g_strdup_printf("--bus-name=%s", alice->bus_name);
    g_autofree char *config_arg = g_strdup_printf("--config=%s", alice->config_path);
    g_auto(Run) second = {0};
    run_on(&second, h,
           (const char *const[]){g_getenv("PROXD"), "--session", name_arg, state_arg, config_arg,
                                 NULL});
    g_assert_cmpint(second.status, ==, 1);
    g_assert_nonnull(strstr(second.out, "another proxd"));
}

/* ---- SIGHUP ---- */

static void test_sighup_reload(void)
{
    g_autoptr(Harness) h = harness_new("two-devices.json", 10);
    harness_start_fake(h);
    /* No --role: the role comes from the file, which SIGHUP re-reads. */
    HarnessDaemon *alice = harness_start_proxd(h, "alice", 0, NULL, "[General]\nRole=person\n");
    g_assert_true(
        harness_wait_property(alice, "Advertising", g_variant_new_boolean(TRUE), TIMEOUT_MS));
    g_assert_cmpstr(proxd_dbus_manager1_get_role(alice->proxy), ==, "person");

    g_assert_true(g_file_set_contents(alice->config_path, "[General]\nRole=beacon\n", -1, NULL));
    g_subprocess_send_signal(alice->process, SIGHUP);
    g_assert_true(harness_wait_property(alice, "Role", g_variant_new_string("beacon"), TIMEOUT_MS));
    /* A beacon scans continuously. */
    g_assert_true(
        harness_wait_property(alice, "Scanning", g_variant_new_boolean(TRUE), TIMEOUT_MS));

    /* A broken file is refused and the running configuration kept. */
    g_assert_true(g_file_set_contents(alice->config_path, "[General]\nRole=bus\n", -1, NULL));
    g_subprocess_send_signal(alice->process, SIGHUP);
    g_assert_true(
        harness_wait_file_contains(alice->log_path, "configuration not reloaded", TIMEOUT_MS));
    g_assert_cmpstr(proxd_dbus_manager1_get_role(alice->proxy), ==, "beacon");
    g_assert_nonnull(g_subprocess_get_identifier(alice->process));
}

/* ---- malformed and foreign advertisements ---- */

typedef struct {
    GDBusObjectManager *om;
    const char *path;
} IfaceWait;

static gboolean has_adv_manager(gpointer p)
{
    IfaceWait *w = p;
    g_autoptr(GDBusInterface) iface =
        g_dbus_object_manager_get_interface(w->om, w->path, "org.bluez.LEAdvertisingManager1");
    return iface != NULL;
}

typedef struct {
    gboolean done;
    GError *error;
    GVariant *reply;
} CallWait;

static void on_call_done(GObject *source, GAsyncResult *result, gpointer user_data)
{
    CallWait *w = user_data;
    w->reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &w->error);
    w->done = TRUE;
}

static gboolean call_done(gpointer p)
{
    return ((CallWait *)p)->done;
}

/* Calls asynchronously and runs the main loop meanwhile (the fake calls back into us). */
static GVariant *call_and_wait(Harness *h, const char *name, const char *path, const char *iface,
                               const char *method, GVariant *params)
{
    CallWait w = {0};
    g_dbus_connection_call(h->connection, name, path, iface, method, params, NULL,
                           G_DBUS_CALL_FLAGS_NONE, TIMEOUT_MS, NULL, on_call_done, &w);
    g_assert_true(harness_wait(call_done, &w, TIMEOUT_MS));
    g_assert_no_error(w.error);
    return w.reply;
}

static GVariant *bytes_variant(const guint8 *data, gsize len)
{
    return g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, data, len, 1);
}

static void test_malformed_advertisements(void)
{
    /* The beacon scans continuously: every report reaches it. */
    static const char beacon_config[] = "[Scanning]\nCommitSeconds=5\n";
    g_autoptr(Harness) h = harness_new("two-devices.json", 10);
    harness_start_fake(h);
    HarnessDaemon *alice = harness_start_proxd(h, "alice", 0, "beacon", beacon_config);
    HarnessDaemon *bob = harness_start_proxd(h, "bob", 1, "person", NULL);
    g_assert_true(
        harness_wait_property(bob, "Advertising", g_variant_new_boolean(TRUE), TIMEOUT_MS));

    /* A third device (a bare adapter next to alice) broadcasts FD6F service data of the wrong
     * length, plus another service's data, from this process. */
    g_autoptr(GError) error = NULL;
    g_autoptr(GDBusObjectManager) om = g_dbus_object_manager_client_new_sync(
        h->connection, G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_DO_NOT_AUTO_START, "org.bluez", "/", NULL,
        NULL, NULL, NULL, &error);
    g_assert_no_error(error);
    g_autoptr(GVariant) added = harness_fake_call(h, "AddAdapter", g_variant_new("(u)", 2));
    IfaceWait iw = {om, "/org/bluez/hci2"};
    g_assert_true(harness_wait(has_adv_manager, &iw, TIMEOUT_MS));

    static const guint8 short_data[10] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6};
    static const guint8 other_data[5] = {1, 2, 3, 4, 5};
    const char *const uuids[] = {PROX_SERVICE_UUID, NULL};
    GVariantBuilder sd;
    g_variant_builder_init(&sd, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&sd, "{sv}", PROX_SERVICE_UUID,
                          bytes_variant(short_data, sizeof short_data));
    g_variant_builder_add(&sd, "{sv}", "0000feaa-0000-1000-8000-00805f9b34fb",
                          bytes_variant(other_data, sizeof other_data));
    g_autoptr(BluezLeAdvertisement1) ad = bluez_le_advertisement1_skeleton_new();
    bluez_le_advertisement1_set_type_(ad, "broadcast");
    bluez_le_advertisement1_set_service_uuids(ad, uuids);
    bluez_le_advertisement1_set_service_data(ad, g_variant_builder_end(&sd));
    g_assert_true(g_dbus_interface_skeleton_export(G_DBUS_INTERFACE_SKELETON(ad), h->connection,
                                                   "/test/malformed", &error));
    g_assert_no_error(error);
    g_autoptr(GVariant) registered =
        call_and_wait(h, "org.bluez", "/org/bluez/hci2", "org.bluez.LEAdvertisingManager1",
                      "RegisterAdvertisement",
                      g_variant_new("(o@a{sv})", "/test/malformed",
                                    g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0)));

    /* Alice's scanner gets the malformed reports, then more of bob's. */
    g_assert_cmpuint(harness_wait_reports(h, 0, 2, 10), >, 0);
    double after_malformed = harness_sim_now(h);
    g_assert_cmpuint(harness_wait_reports(h, 0, 1, 10), >, 0);
    g_assert_nonnull(g_subprocess_get_identifier(alice->process));
    g_assert_cmpstr(proxd_dbus_manager1_get_state(alice->proxy), ==, "active");

    g_autoptr(GVariant) bob_ad = harness_fake_advertisement(bob);
    g_autofree char *bob_rpi = harness_advert_rpi_hex(bob_ad);
    harness_stop_proxd(alice);

    g_autofree char *path = g_build_filename(alice->state_dir, "proxd.db", NULL);
    g_autoptr(ProxStore) store = prox_store_open(path, NULL, &error);
    g_assert_no_error(error);
    g_autoptr(GArray) sightings = NULL;
    g_assert_true(prox_store_load_sightings(store, 0, G_MAXINT64, &sightings, &error));
    g_assert_no_error(error);
    gboolean bob_after = FALSE;
    for (guint i = 0; i < sightings->len; i++) {
        const ProxSighting *s = &g_array_index(sightings, ProxSighting, i);
        g_autofree char *hex = harness_hex(s->rpi.bytes, PROX_RPI_LEN);
        /* Nothing of the malformed advertisement was taken for an identifier. */
        g_assert_false(g_str_has_prefix(hex, "deadbeef"));
        if (g_str_equal(hex, bob_rpi) && s->last_seen >= (gint64)after_malformed - 1)
            bob_after = TRUE;
    }
    g_assert_true(bob_after);
    g_dbus_interface_skeleton_unexport(G_DBUS_INTERFACE_SKELETON(ad));
}

/* ---- the system bus policy ---- */

#define NOBODY_UID 65534
#define NOBODY_GID 65534

static void run_as(Run *r, const char *address, gboolean nobody, const char *const *args)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    if (nobody) {
        g_ptr_array_add(argv, (char *)"setpriv");
        g_ptr_array_add(argv, (char *)"--reuid=65534");
        g_ptr_array_add(argv, (char *)"--regid=65534");
        g_ptr_array_add(argv, (char *)"--clear-groups");
    }
    for (guint i = 0; args[i] != NULL; i++)
        g_ptr_array_add(argv, (char *)args[i]);
    g_ptr_array_add(argv, NULL);
    g_autoptr(GSubprocessLauncher) launcher =
        g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE);
    g_subprocess_launcher_setenv(launcher, "DBUS_SESSION_BUS_ADDRESS", address, TRUE);
    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocess) p =
        g_subprocess_launcher_spawnv(launcher, (const char *const *)argv->pdata, &error);
    g_assert_no_error(error);
    g_assert_true(g_subprocess_communicate_utf8(p, NULL, NULL, &r->out, NULL, &error));
    g_assert_no_error(error);
    r->status = g_subprocess_get_exit_status(p);
}

static void test_bus_policy(void)
{
    g_autofree char *setpriv = g_find_program_in_path("setpriv");
    if (getuid() != 0 || setpriv == NULL) {
        g_test_skip("needs root and setpriv to act as another user");
        return;
    }
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = g_dir_make_tmp("proxd-policy-XXXXXX", &error);
    g_assert_no_error(error);
    g_assert_cmpint(g_chmod(dir, 0755), ==, 0);
    g_autofree char *conf = g_build_filename(dir, "bus.conf", NULL);
    g_autofree char *text = harness_system_bus_conf(dir, g_getenv("PROXD_BUS_POLICY"));
    g_assert_true(g_file_set_contents(conf, text, -1, &error));
    g_autofree char *conf_arg = g_strdup_printf("--config-file=%s", conf);
    g_autofree char *proxd_conf = g_build_filename(dir, "proxd.conf", NULL);
    g_assert_true(g_file_set_contents(proxd_conf, "", -1, &error));
    g_assert_cmpint(g_chmod(proxd_conf, 0644), ==, 0);
    g_autofree char *proxd_conf_arg = g_strdup_printf("--config=%s", proxd_conf);

    /* A system-like bus that includes proxd's policy file. */
    g_autoptr(GSubprocess) bus =
        g_subprocess_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error,
                         "dbus-daemon", "--nofork", "--print-address=1", conf_arg, NULL);
    g_assert_no_error(error);
    g_autoptr(GDataInputStream) out = g_data_input_stream_new(g_subprocess_get_stdout_pipe(bus));
    g_autofree char *address = g_data_input_stream_read_line(out, NULL, NULL, &error);
    g_assert_no_error(error);
    g_assert_nonnull(address);

    /* proxd as root may own org.proxd. */
    g_autofree char *state_dir = g_build_filename(dir, "state", NULL);
    g_autofree char *state_arg = g_strdup_printf("--state-dir=%s", state_dir);
    g_autoptr(GSubprocessLauncher) launcher =
        g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDERR_SILENCE);
    g_subprocess_launcher_setenv(launcher, "DBUS_SESSION_BUS_ADDRESS", address, TRUE);
    g_autoptr(GSubprocess) proxd = g_subprocess_launcher_spawn(
        launcher, &error, g_getenv("PROXD"), "--session", proxd_conf_arg, state_arg, NULL);
    g_assert_no_error(error);
    g_autoptr(GDBusConnection) c =
        g_dbus_connection_new_for_address_sync(address,
                                               G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                   G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                               NULL, NULL, &error);
    g_assert_no_error(error);
    g_autoptr(ProxdDbusManager1) proxy = proxd_dbus_manager1_proxy_new_sync(
        c, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START, "org.proxd", "/org/proxd", NULL, &error);
    g_assert_no_error(error);
    g_assert_true(harness_wait_property(&(HarnessDaemon){.proxy = proxy}, "Role",
                                        g_variant_new_string("person"), TIMEOUT_MS));

    const char *proxctl = g_getenv("PROXCTL");
    /* Anyone: status and counts. */
    g_auto(Run) status = {0};
    run_as(&status, address, TRUE, (const char *const[]){proxctl, "--session", "status", NULL});
    g_assert_cmpint(status.status, ==, 0);
    g_assert_true(g_str_has_prefix(status.out, "proxd: "));
    g_auto(Run) counts = {0};
    run_as(&counts, address, TRUE,
           (const char *const[]){proxctl, "--session", "encounters", "--json", NULL});
    g_assert_cmpint(counts.status, ==, 0);
    /* Identifiers: root (or the proxd group) only. */
    g_auto(Run) ids = {0};
    run_as(&ids, address, TRUE,
           (const char *const[]){proxctl, "--session", "encounters", "--json", "--debug", NULL});
    g_assert_cmpint(ids.status, ==, 1);
    g_assert_nonnull(strstr(ids.out, "permission denied"));
    g_auto(Run) root_ids = {0};
    run_as(&root_ids, address, FALSE,
           (const char *const[]){proxctl, "--session", "encounters", "--json", "--debug", NULL});
    g_assert_cmpint(root_ids.status, ==, 0);
    g_assert_nonnull(strstr(root_ids.out, "\"sightings\""));
    /* Check-ins are private: root (or the proxd group) only. Exposures still answer
     * anyone, with the venue tier as a count. */
    g_auto(Run) checkins = {0};
    run_as(&checkins, address, TRUE, (const char *const[]){proxctl, "--session", "checkins", NULL});
    g_assert_cmpint(checkins.status, ==, 1);
    g_assert_nonnull(strstr(checkins.out, "permission denied"));
    g_auto(Run) checkout = {0};
    run_as(&checkout, address, TRUE, (const char *const[]){proxctl, "--session", "checkout", NULL});
    g_assert_cmpint(checkout.status, ==, 1);
    g_assert_nonnull(strstr(checkout.out, "permission denied"));
    g_auto(Run) root_checkins = {0};
    run_as(&root_checkins, address, FALSE,
           (const char *const[]){proxctl, "--session", "checkins", NULL});
    g_assert_cmpint(root_checkins.status, ==, 0);
    g_auto(Run) exposures = {0};
    run_as(&exposures, address, TRUE,
           (const char *const[]){proxctl, "--session", "exposures", NULL});
    g_assert_cmpint(exposures.status, ==, 0);
    g_assert_nonnull(strstr(exposures.out, "details need root or the proxd group"));
    /* Nobody else may take the name. */
    g_autofree char *other_state = g_build_filename(dir, "other", NULL);
    g_assert_cmpint(g_mkdir(other_state, 0700), ==, 0);
    g_assert_cmpint(chown(other_state, NOBODY_UID, NOBODY_GID), ==, 0);
    g_autofree char *other_arg = g_strdup_printf("--state-dir=%s", other_state);
    g_auto(Run) impostor = {0};
    run_as(&impostor, address, TRUE,
           (const char *const[]){g_getenv("PROXD"), "--session", proxd_conf_arg,
                                 "--bus-name=org.proxd.impostor", other_arg, NULL});
    g_assert_cmpint(impostor.status, ==, 1);
    g_assert_nonnull(strstr(impostor.out, "cannot own"));

    g_subprocess_send_signal(proxd, SIGTERM);
    g_assert_true(g_subprocess_wait(proxd, NULL, &error));
    g_assert_cmpint(g_subprocess_get_exit_status(proxd), ==, 0);
    g_subprocess_send_signal(bus, SIGTERM);
    g_subprocess_wait(bus, NULL, NULL);
    g_clear_object(&proxy);
    g_dbus_connection_close_sync(c, NULL, NULL);

    harness_remove_tree(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/daemon/usage-errors", test_usage);
    g_test_add_func("/daemon/one-instance-per-name", test_name_taken);
    g_test_add_func("/daemon/sighup-reloads-config", test_sighup_reload);
    g_test_add_func("/daemon/malformed-advertisements", test_malformed_advertisements);
    g_test_add_func("/daemon/bus-policy", test_bus_policy);
    return g_test_run();
}
