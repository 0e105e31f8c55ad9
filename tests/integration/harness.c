/* harness.c - private bus + fake BlueZ + proxd processes for the integration tests. */
#define G_LOG_DOMAIN "proxd-test"

#include "harness.h"

#include <stdarg.h>
#include <string.h>

#include "sim-launch.h"

#define FAKE_CONTROL_NAME "org.proxd.FakeBluez"
#define FAKE_CONTROL_PATH "/org/proxd/FakeBluez"
#define FAKE_CONTROL_IFACE "org.proxd.FakeBluez1"
#define START_TIMEOUT_MS 10000
#define WAIT_REPORTS_TIMEOUT_MS 20000

static const char *env_or_fail(const char *name)
{
    const char *value = g_getenv(name);
    if (value == NULL || value[0] == '\0')
        g_error("environment variable %s is not set (run through meson test)", name);
    return value;
}

char *harness_hex(const guint8 *bytes, gsize len)
{
    GString *s = g_string_sized_new(len * 2);
    for (gsize i = 0; i < len; i++)
        g_string_append_printf(s, "%02x", bytes[i]);
    return g_string_free(s, FALSE);
}

/* ---- waiting ---- */

gboolean harness_wait(HarnessCondition cond, gpointer user_data, guint timeout_ms)
{
    return sim_launch_wait(cond, user_data, NULL, NULL, timeout_ms);
}

/* Fails at once when `process` (may be NULL), which should own the name, exits. */
static gboolean wait_name(Harness *h, const char *name, gboolean owned, GSubprocess *process,
                          guint timeout_ms)
{
    return sim_launch_wait_name(h->connection, name, owned, process, NULL, NULL, timeout_ms);
}

typedef struct {
    HarnessDaemon *d;
    const char *property;
    GVariant *value;
} PropertyWait;

static gboolean property_matches(gpointer p)
{
    PropertyWait *w = p;
    g_autoptr(GVariant) current =
        g_dbus_proxy_get_cached_property(G_DBUS_PROXY(w->d->proxy), w->property);
    return current != NULL && g_variant_equal(current, w->value);
}

gboolean harness_wait_property(HarnessDaemon *d, const char *property, GVariant *value,
                               guint timeout_ms)
{
    g_autoptr(GVariant) v = g_variant_ref_sink(value);
    PropertyWait w = {d, property, v};
    return harness_wait(property_matches, &w, timeout_ms);
}

typedef struct {
    const char *path;
    const char *needle;
} FileWait;

static gboolean file_contains(gpointer p)
{
    FileWait *w = p;
    g_autofree char *text = NULL;
    return g_file_get_contents(w->path, &text, NULL, NULL) && strstr(text, w->needle) != NULL;
}

static void on_file_changed(GFileMonitor *monitor, GFile *file, GFile *other,
                            GFileMonitorEvent event, gpointer user_data)
{
    /* Waking the main context is all that is needed: the condition re-reads the file. */
}

gboolean harness_wait_file_contains(const char *path, const char *needle, guint timeout_ms)
{
    g_autoptr(GFile) file = g_file_new_for_path(path);
    g_autoptr(GFileMonitor) monitor = g_file_monitor_file(file, G_FILE_MONITOR_NONE, NULL, NULL);
    if (monitor != NULL)
        g_signal_connect(monitor, "changed", G_CALLBACK(on_file_changed), NULL);
    FileWait w = {path, needle};
    return harness_wait(file_contains, &w, timeout_ms);
}

static gboolean never(gpointer p)
{
    return FALSE;
}

void harness_wait_sim_time(Harness *h, double sim_time)
{
    double remaining = (sim_time - harness_sim_now(h)) / h->speed;
    if (remaining > 0)
        harness_wait(never, NULL, (guint)(remaining * 1000.0) + 1);
}

/* ---- processes ---- */

GSubprocessLauncher *harness_launcher(Harness *h, GSubprocessFlags flags)
{
    return sim_launch_launcher(flags, h->bus_address, h->sim_clock, NULL);
}

static GSubprocess *spawn(Harness *h, const char *log_path, const char *const *argv)
{
    g_autoptr(GSubprocessLauncher) launcher =
        sim_launch_launcher(G_SUBPROCESS_FLAGS_NONE, h->bus_address, h->sim_clock, log_path);
    g_autoptr(GError) error = NULL;
    g_subprocess_launcher_setenv(launcher, "G_DEBUG", "fatal-criticals", TRUE);
    GSubprocess *p = g_subprocess_launcher_spawnv(launcher, argv, &error);
    g_assert_no_error(error);
    return p;
}

/* SIGTERM, wait (SIGKILL after a grace period). Returns the exit status, 128 + the signal
 * when a signal ended it. */
static int terminate(GSubprocess *p, const char *name)
{
    return p != NULL ? sim_launch_stop(p, name, FALSE) : 0;
}

static void print_log(const char *title, const char *path)
{
    g_autofree char *text = sim_launch_log_tail(path, G_MAXUINT, "");
    if (text != NULL)
        g_printerr("---- %s (%s) ----\n%s\n", title, path, text);
}

/* ---- harness ---- */

static void daemon_free(HarnessDaemon *d);

Harness *harness_new(const char *scenario, double speed)
{
    return harness_new_at(scenario, speed, HARNESS_SIM_EPOCH);
}

Harness *harness_new_at(const char *scenario, double speed, gint64 sim_start)
{
    Harness *h = g_new0(Harness, 1);
    g_autoptr(GError) error = NULL;

    h->dir = g_dir_make_tmp("proxd-it-XXXXXX", &error);
    g_assert_no_error(error);
    g_test_message("test directory: %s", h->dir);
    h->scenario_path = g_build_filename(env_or_fail("PROXD_SCENARIOS"), scenario, NULL);
    h->truth_path = g_build_filename(h->dir, "truth.jsonl", NULL);
    h->speed = speed;
    gint64 real_now = g_get_real_time();
    char speed_s[G_ASCII_DTOSTR_BUF_SIZE];
    h->sim_clock =
        g_strdup_printf("%" G_GINT64_FORMAT ".%06" G_GINT64_FORMAT ":%" G_GINT64_FORMAT ":%s",
                        real_now / G_USEC_PER_SEC, real_now % G_USEC_PER_SEC, sim_start,
                        g_ascii_dtostr(speed_s, sizeof speed_s, speed));
    h->daemons = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_free);

    /* A private bus (not GTestDBus: its watcher process outlives a failed test and keeps
     * meson's output pipe open). Anything goes on it, like on a session bus. */
    g_autofree char *config = sim_launch_bus_config(h->dir);
    h->bus = sim_launch_bus(h->dir, config, &h->bus_address, &h->connection, &error);
    g_assert_no_error(error);
    return h;
}

double harness_sim_now(Harness *h)
{
    g_auto(GStrv) parts = g_strsplit(h->sim_clock, ":", 3);
    double real_start = g_ascii_strtod(parts[0], NULL);
    double sim_start = g_ascii_strtod(parts[1], NULL);
    return sim_start + ((double)g_get_real_time() / G_USEC_PER_SEC - real_start) * h->speed;
}

void harness_start_fake(Harness *h)
{
    harness_start_fake_args(h, NULL);
}

void harness_start_fake_args(Harness *h, const char *const *extra_args)
{
    g_autofree char *log = g_strdup_printf("%s/fake-bluez-%u.log", h->dir, ++h->fake_starts);
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    const char *const args[] = {
        env_or_fail("FAKE_BLUEZ"), "--scenario", h->scenario_path, "--seed", "1", NULL};
    for (guint i = 0; args[i] != NULL; i++)
        g_ptr_array_add(argv, (gpointer)args[i]);
    if (!h->no_truth_log) {
        g_ptr_array_add(argv, (gpointer) "--truth-log");
        g_ptr_array_add(argv, h->truth_path);
    }
    for (guint i = 0; extra_args != NULL && extra_args[i] != NULL; i++)
        g_ptr_array_add(argv, (gpointer)extra_args[i]);
    g_ptr_array_add(argv, NULL);
    g_assert_null(h->fake);
    h->fake = spawn(h, log, (const char *const *)argv->pdata);
    if (!wait_name(h, FAKE_CONTROL_NAME, TRUE, h->fake, START_TIMEOUT_MS) ||
        !wait_name(h, "org.bluez", TRUE, h->fake, START_TIMEOUT_MS)) {
        print_log("fake-bluez", log);
        g_error("fake-bluez did not come up");
    }
}

void harness_stop_fake(Harness *h)
{
    int status = terminate(h->fake, "fake-bluez");
    g_clear_object(&h->fake);
    g_assert_cmpint(status, ==, 0);
    g_assert_true(wait_name(h, "org.bluez", FALSE, NULL, START_TIMEOUT_MS));
}

static void on_daemon_properties(GDBusProxy *proxy, GVariant *changed,
                                 const char *const *invalidated, gpointer user_data)
{
    HarnessDaemon *d = user_data;
    gboolean value;
    if (g_variant_lookup(changed, "Advertising", "b", &value) && value)
        d->advertising_at = g_get_monotonic_time();
    if (g_variant_lookup(changed, "Scanning", "b", &value) && value)
        d->scanning_at = g_get_monotonic_time();
}

HarnessDaemon *harness_start_proxd(Harness *h, const char *name, guint adapter, const char *role,
                                   const char *config)
{
    HarnessDaemon *d = g_new0(HarnessDaemon, 1);
    g_autoptr(GError) error = NULL;
    d->harness = h;
    d->name = g_strdup(name);
    d->adapter = adapter;
    d->bus_name = g_strdup_printf("org.proxd.%s", name);
    d->state_dir = g_build_filename(h->dir, name, NULL);
    d->log_path = g_strdup_printf("%s/proxd-%s.log", h->dir, name);
    d->config_path = g_strdup_printf("%s/proxd-%s.conf", h->dir, name);
    g_file_set_contents(d->config_path, config != NULL ? config : "", -1, &error);
    g_assert_no_error(error);

    g_auto(GStrv) argv = sim_launch_proxd_argv(env_or_fail("PROXD"), d->bus_name, adapter,
                                               d->state_dir, d->config_path, role, TRUE);
    d->process = spawn(h, d->log_path, (const char *const *)argv);
    if (!wait_name(h, d->bus_name, TRUE, d->process, START_TIMEOUT_MS)) {
        print_log(d->name, d->log_path);
        g_error("proxd %s did not come up", name);
    }
    d->proxy =
        proxd_dbus_manager1_proxy_new_sync(h->connection, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START,
                                           d->bus_name, "/org/proxd", NULL, &error);
    g_assert_no_error(error);
    g_signal_connect(d->proxy, "g-properties-changed", G_CALLBACK(on_daemon_properties), d);
    if (proxd_dbus_manager1_get_advertising(d->proxy))
        d->advertising_at = g_get_monotonic_time();
    if (proxd_dbus_manager1_get_scanning(d->proxy))
        d->scanning_at = g_get_monotonic_time();
    g_ptr_array_add(h->daemons, d);
    return d;
}

void harness_stop_proxd(HarnessDaemon *d)
{
    if (d->process == NULL)
        return;
    int status = terminate(d->process, d->name);
    g_clear_object(&d->process);
    if (status != 0)
        print_log(d->name, d->log_path);
    g_assert_cmpint(status, ==, 0);
}

static void daemon_free(HarnessDaemon *d)
{
    g_clear_object(&d->proxy);
    g_clear_object(&d->process);
    g_free(d->name);
    g_free(d->bus_name);
    g_free(d->state_dir);
    g_free(d->log_path);
    g_free(d->config_path);
    g_free(d);
}

void harness_remove_tree(const char *path)
{
    sim_launch_remove_tree(path);
}

void harness_free(Harness *h)
{
    if (h == NULL)
        return;
    gboolean failed = g_test_failed();
    for (guint i = 0; i < h->daemons->len; i++) {
        HarnessDaemon *d = g_ptr_array_index(h->daemons, i);
        if (d->process != NULL && terminate(d->process, d->name) != 0)
            failed = TRUE;
        g_clear_object(&d->process);
    }
    if (h->fake != NULL)
        terminate(h->fake, "fake-bluez");
    g_clear_object(&h->fake);
    if (failed) {
        for (guint i = 0; i < h->daemons->len; i++) {
            HarnessDaemon *d = g_ptr_array_index(h->daemons, i);
            print_log(d->name, d->log_path);
        }
        for (guint i = 1; i <= h->fake_starts; i++) {
            g_autofree char *log = g_strdup_printf("%s/fake-bluez-%u.log", h->dir, i);
            print_log("fake-bluez", log);
        }
    }
    g_ptr_array_free(h->daemons, TRUE);
    g_dbus_connection_close_sync(h->connection, NULL, NULL);
    g_clear_object(&h->connection);
    terminate(h->bus, "dbus-daemon");
    g_clear_object(&h->bus);
    g_free(h->bus_address);
    if (!failed)
        harness_remove_tree(h->dir);
    else
        g_printerr("test files kept in %s\n", h->dir);
    g_free(h->dir);
    g_free(h->scenario_path);
    g_free(h->truth_path);
    g_free(h->sim_clock);
    g_free(h);
}

/* ---- the fake's control interface ---- */

GVariant *harness_fake_call(Harness *h, const char *method, GVariant *parameters)
{
    g_autoptr(GError) error = NULL;
    GVariant *reply = g_dbus_connection_call_sync(
        h->connection, FAKE_CONTROL_NAME, FAKE_CONTROL_PATH, FAKE_CONTROL_IFACE, method, parameters,
        NULL, G_DBUS_CALL_FLAGS_NONE, 10000, NULL, &error);
    g_assert_no_error(error);
    return reply;
}

GVariant *harness_fake_advertisement(HarnessDaemon *d)
{
    g_autofree char *owner = g_dbus_proxy_get_name_owner(G_DBUS_PROXY(d->proxy));
    if (owner == NULL)
        return NULL;
    g_autoptr(GVariant) reply = harness_fake_call(d->harness, "ListAdvertisements", NULL);
    g_autoptr(GVariant) list = g_variant_get_child_value(reply, 0);
    for (gsize i = 0; i < g_variant_n_children(list); i++) {
        g_autoptr(GVariant) ad = g_variant_get_child_value(list, i);
        const char *ad_owner = NULL;
        gboolean registered = FALSE;
        g_variant_lookup(ad, "Owner", "&s", &ad_owner);
        g_variant_lookup(ad, "Registered", "b", &registered);
        if (registered && g_strcmp0(ad_owner, owner) == 0)
            return g_steal_pointer(&ad);
    }
    return NULL;
}

void harness_run_clear(HarnessRun *r)
{
    g_free(r->out);
    g_free(r->err);
}

void harness_proxctl(HarnessRun *r, Harness *h, const char *bus_name, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_ptr_array_add(argv, (char *)env_or_fail("PROXCTL"));
    g_ptr_array_add(argv, (char *)"--session");
    g_autofree char *name_arg = g_strdup_printf("--bus-name=%s", bus_name);
    g_ptr_array_add(argv, name_arg);
    va_list ap;
    va_start(ap, bus_name);
    const char *arg;
    while ((arg = va_arg(ap, const char *)) != NULL)
        g_ptr_array_add(argv, (char *)arg);
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocessLauncher) launcher =
        harness_launcher(h, G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
    g_autoptr(GSubprocess) p =
        g_subprocess_launcher_spawnv(launcher, (const char *const *)argv->pdata, &error);
    g_assert_no_error(error);
    g_assert_true(g_subprocess_communicate_utf8(p, NULL, NULL, &r->out, &r->err, &error));
    g_assert_no_error(error);
    r->status = g_subprocess_get_exit_status(p);
    g_test_message("proxctl -> %d\n%s%s", r->status, r->out, r->err);
}

typedef struct {
    gboolean done;
    guint visible;
} ReportsWait;

static void on_reports(GObject *source, GAsyncResult *result, gpointer user_data)
{
    ReportsWait *w = user_data;
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reply =
        g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);
    g_assert_no_error(error);
    g_variant_get(reply, "(u)", &w->visible);
    w->done = TRUE;
}

static gboolean reports_done(gpointer p)
{
    return ((ReportsWait *)p)->done;
}

guint harness_wait_reports(Harness *h, guint scanner, guint advertiser, guint count)
{
    ReportsWait w = {FALSE, 0};
    g_dbus_connection_call(h->connection, FAKE_CONTROL_NAME, FAKE_CONTROL_PATH, FAKE_CONTROL_IFACE,
                           "WaitReports", g_variant_new("(uuu)", scanner, advertiser, count),
                           G_VARIANT_TYPE("(u)"), G_DBUS_CALL_FLAGS_NONE, WAIT_REPORTS_TIMEOUT_MS,
                           NULL, on_reports, &w);
    g_assert_true(harness_wait(reports_done, &w, WAIT_REPORTS_TIMEOUT_MS));
    return w.visible;
}

gboolean harness_new_rpi_on_air(HarnessDaemon *d, const char *old_rpi)
{
    g_autoptr(GVariant) ad = harness_fake_advertisement(d);
    gboolean active = FALSE;
    if (ad == NULL || !g_variant_lookup(ad, "Active", "b", &active) || !active)
        return FALSE;
    g_autofree char *rpi = harness_advert_rpi_hex(ad);
    return rpi != NULL && g_strcmp0(rpi, old_rpi) != 0;
}

typedef struct {
    HarnessDaemon *d;
    const char *old_rpi;
} OnAirWait;

static gboolean new_rpi_on_air(gpointer p)
{
    OnAirWait *w = p;
    return harness_new_rpi_on_air(w->d, w->old_rpi);
}

static void on_fake_changed(GDBusConnection *c, const char *sender, const char *path,
                            const char *iface, const char *signal, GVariant *params, gpointer p)
{
    /* Waking the wait is enough: the condition asks the fake. */
}

gboolean harness_wait_new_rpi_on_air(HarnessDaemon *d, const char *old_rpi, guint timeout_ms)
{
    GDBusConnection *conn = d->harness->connection;
    guint sub = g_dbus_connection_signal_subscribe(
        conn, FAKE_CONTROL_NAME, FAKE_CONTROL_IFACE, "AdvertisementChanged", NULL, NULL,
        G_DBUS_SIGNAL_FLAGS_NONE, on_fake_changed, NULL, NULL);
    OnAirWait w = {d, old_rpi};
    gboolean ok = harness_wait(new_rpi_on_air, &w, timeout_ms);
    g_dbus_connection_signal_unsubscribe(conn, sub);
    return ok;
}

GVariant *harness_fake_device(Harness *h, guint adapter)
{
    g_autoptr(GVariant) reply = harness_fake_call(h, "ListDevices", NULL);
    g_autoptr(GVariant) list = g_variant_get_child_value(reply, 0);
    for (gsize i = 0; i < g_variant_n_children(list); i++) {
        g_autoptr(GVariant) dev = g_variant_get_child_value(list, i);
        guint32 index = G_MAXUINT32;
        g_variant_lookup(dev, "Adapter", "u", &index);
        if (index == adapter)
            return g_steal_pointer(&dev);
    }
    return NULL;
}

char *harness_advert_rpi_hex(GVariant *advert)
{
    g_autoptr(GVariant) sd = g_variant_lookup_value(advert, "ServiceData", G_VARIANT_TYPE("a{sv}"));
    if (sd == NULL)
        return NULL;
    g_autoptr(GVariant) data = g_variant_lookup_value(sd, "0000fd6f-0000-1000-8000-00805f9b34fb",
                                                      G_VARIANT_TYPE_BYTESTRING);
    if (data == NULL)
        return NULL;
    gsize len;
    const guint8 *bytes = g_variant_get_fixed_array(data, &len, 1);
    return len >= 16 ? harness_hex(bytes, 16) : NULL;
}

GVariant *harness_sightings(HarnessDaemon *d)
{
    g_autoptr(GError) error = NULL;
    GVariant *sightings = NULL;
    proxd_dbus_manager1_call_get_sightings_sync(d->proxy, 14, G_DBUS_CALL_FLAGS_NONE, 10000,
                                                &sightings, NULL, &error);
    g_assert_no_error(error);
    return sightings;
}

/* A system-like bus: Debian's system.conf defaults (deny method calls and ownership,
 * allow replies), listening in a directory (%s), including a policy file (%s). */
static const char system_bus_conf[] =
    "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\"\n"
    " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
    "<busconfig>\n"
    "  <type>system</type>\n"
    "  <listen>unix:dir=%s</listen>\n"
    "  <auth>EXTERNAL</auth>\n"
    /* Debian's system.conf defaults: deny method calls and ownership, allow replies. */
    "  <policy context=\"default\">\n"
    "    <allow user=\"*\"/>\n"
    "    <deny own=\"*\"/>\n"
    "    <deny send_type=\"method_call\"/>\n"
    "    <allow send_type=\"signal\"/>\n"
    "    <allow send_requested_reply=\"true\" send_type=\"method_return\"/>\n"
    "    <allow send_requested_reply=\"true\" send_type=\"error\"/>\n"
    "    <allow receive_type=\"method_call\"/>\n"
    "    <allow receive_type=\"method_return\"/>\n"
    "    <allow receive_type=\"error\"/>\n"
    "    <allow receive_type=\"signal\"/>\n"
    "    <allow send_destination=\"org.freedesktop.DBus\" "
    "send_interface=\"org.freedesktop.DBus\"/>\n"
    "  </policy>\n"
    "  <include>%s</include>\n"
    "</busconfig>\n";

char *harness_system_bus_conf(const char *listen_dir, const char *policy_file)
{
    return g_strdup_printf(system_bus_conf, listen_dir, policy_file);
}
