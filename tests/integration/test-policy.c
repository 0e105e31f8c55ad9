/* test-policy.c - the system bus policy of dbus/org.proxd.conf, enforced by a real
 * dbus-daemon: anyone may read proxd's status; only root and members of the group "proxd"
 * may call what changes state or releases identifiers and keys (GetSightings, Sync,
 * Report, ...).
 *
 * A private dbus-daemon with Debian's system-bus defaults includes the policy file
 * (PROXD_BUS_POLICY); proxd runs as root and owns org.proxd. The calls are made by this
 * program re-executed as another user ("--client"), with its uid, gid and supplementary
 * groups set between fork and exec: nobody (65534) without groups, then nobody with the
 * group proxd. The group is created (groupadd --system) if the system lacks it. Needs
 * root: otherwise exits 77 (skipped) and says why. */
#define G_LOG_DOMAIN "proxd-test"

#include <errno.h>
#include <glib/gstdio.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "harness.h"

#define TIMEOUT_MS 20000
#define EXIT_SKIP 77
#define NOBODY 65534
#define PROXD_GROUP "proxd"
#define ACCESS_DENIED "org.freedesktop.DBus.Error.AccessDenied"

/* ---- the client: one call, as whoever we were started as ---- */

/* --client ADDRESS INTERFACE METHOD ARGS: prints "ok" or the D-Bus error name. */
static int run_client(char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GDBusConnection) c =
        g_dbus_connection_new_for_address_sync(argv[2],
                                               G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                   G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                               NULL, NULL, &error);
    if (c == NULL) {
        g_printerr("cannot connect: %s\n", error->message);
        return 1;
    }
    g_autoptr(GVariant) args = g_variant_parse(NULL, argv[5], NULL, NULL, &error);
    if (args == NULL) {
        g_printerr("bad arguments %s: %s\n", argv[5], error->message);
        return 1;
    }
    g_autoptr(GVariant) reply = g_dbus_connection_call_sync(
        c, "org.proxd", "/org/proxd", argv[3], argv[4], g_steal_pointer(&args), NULL,
        G_DBUS_CALL_FLAGS_NO_AUTO_START, TIMEOUT_MS, NULL, &error);
    if (reply != NULL) {
        g_print("ok\n");
    } else {
        g_autofree char *remote = g_dbus_error_get_remote_error(error);
        g_print("%s\n", remote != NULL ? remote : error->message);
    }
    return 0;
}

/* ---- the world: a system-like bus and proxd as root ---- */

typedef struct {
    char *dir;
    GSubprocess *bus;
    char *address;
    GSubprocess *proxd;
    char *proxd_log;
    GDBusConnection *connection;
    ProxdDbusManager1 *proxy;
    gid_t proxd_gid;
} World;

static void die_with_parent(gpointer user_data)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
}

static gid_t ensure_group(void)
{
    struct group *g = getgrnam(PROXD_GROUP);
    if (g == NULL) {
        /* As systemd-sysusers would from the package's sysusers.d file. */
        g_autoptr(GError) error = NULL;
        int status = 0;
        const char *argv[] = {"groupadd", "--system", PROXD_GROUP, NULL};
        g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL,
                                   NULL, &status, &error));
        g_assert_no_error(error);
        g_assert_true(g_spawn_check_wait_status(status, &error));
        g_test_message("created the system group %s", PROXD_GROUP);
        g = getgrnam(PROXD_GROUP);
    }
    g_assert_nonnull(g);
    return g->gr_gid;
}

static void world_start(World *w)
{
    g_autoptr(GError) error = NULL;
    w->proxd_gid = ensure_group();
    w->dir = g_dir_make_tmp("proxd-policy-XXXXXX", &error);
    g_assert_no_error(error);
    /* nobody must reach the bus socket in it. */
    g_assert_cmpint(g_chmod(w->dir, 0755), ==, 0);
    const char *policy = g_getenv("PROXD_BUS_POLICY");
    g_assert_nonnull(policy);
    g_autofree char *conf = g_build_filename(w->dir, "bus.conf", NULL);
    g_autofree char *text = harness_system_bus_conf(w->dir, policy);
    g_assert_true(g_file_set_contents(conf, text, -1, &error));
    g_autofree char *conf_arg = g_strdup_printf("--config-file=%s", conf);
    g_autoptr(GSubprocessLauncher) bl = g_subprocess_launcher_new(
        G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_SILENCE);
    g_subprocess_launcher_set_child_setup(bl, die_with_parent, NULL, NULL);
    w->bus = g_subprocess_launcher_spawn(bl, &error, "dbus-daemon", "--nofork", "--print-address=1",
                                         conf_arg, NULL);
    g_assert_no_error(error);
    g_autoptr(GDataInputStream) out = g_data_input_stream_new(g_subprocess_get_stdout_pipe(w->bus));
    w->address = g_data_input_stream_read_line(out, NULL, NULL, &error);
    g_assert_no_error(error);
    g_assert_nonnull(w->address);

    /* proxd as root owns org.proxd (the policy lets root and the proxd user do that). No
     * BlueZ on this bus: proxd waits for it, which is all a status query needs. */
    g_autofree char *config = g_build_filename(w->dir, "proxd.conf", NULL);
    g_assert_true(g_file_set_contents(config, "", -1, &error));
    g_autofree char *config_arg = g_strdup_printf("--config=%s", config);
    g_autofree char *state_arg = g_strdup_printf("--state-dir=%s/state", w->dir);
    w->proxd_log = g_build_filename(w->dir, "proxd.log", NULL);
    g_autoptr(GSubprocessLauncher) pl = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDERR_MERGE);
    g_subprocess_launcher_setenv(pl, "DBUS_SESSION_BUS_ADDRESS", w->address, TRUE);
    g_subprocess_launcher_unsetenv(pl, "PROXD_BUS_NAME");
    g_subprocess_launcher_set_stdout_file_path(pl, w->proxd_log);
    g_subprocess_launcher_set_child_setup(pl, die_with_parent, NULL, NULL);
    w->proxd = g_subprocess_launcher_spawn(pl, &error, g_getenv("PROXD"), "--session", "--verbose",
                                           config_arg, state_arg, NULL);
    g_assert_no_error(error);

    w->connection =
        g_dbus_connection_new_for_address_sync(w->address,
                                               G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                   G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                               NULL, NULL, &error);
    g_assert_no_error(error);
    w->proxy =
        proxd_dbus_manager1_proxy_new_sync(w->connection, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START,
                                           "org.proxd", "/org/proxd", NULL, &error);
    g_assert_no_error(error);
    HarnessDaemon d = {.proxy = w->proxy};
    if (!harness_wait_property(&d, "Role", g_variant_new_string("person"), TIMEOUT_MS)) {
        g_autofree char *log = NULL;
        g_file_get_contents(w->proxd_log, &log, NULL, NULL);
        g_error("proxd did not come up on the policy bus:\n%s", log);
    }
}

static void world_stop(World *w)
{
    g_autoptr(GError) error = NULL;
    g_subprocess_send_signal(w->proxd, SIGTERM);
    g_assert_true(g_subprocess_wait(w->proxd, NULL, &error));
    g_assert_true(g_subprocess_get_if_exited(w->proxd));
    g_assert_cmpint(g_subprocess_get_exit_status(w->proxd), ==, 0);
    g_clear_object(&w->proxd);
    g_clear_object(&w->proxy);
    g_dbus_connection_close_sync(w->connection, NULL, NULL);
    g_clear_object(&w->connection);
    g_subprocess_send_signal(w->bus, SIGTERM);
    g_subprocess_wait(w->bus, NULL, NULL);
    g_clear_object(&w->bus);
    if (!g_test_failed())
        harness_remove_tree(w->dir);
    g_free(w->dir);
    g_free(w->address);
    g_free(w->proxd_log);
}

/* ---- calls as another user ---- */

typedef struct {
    uid_t uid;
    gid_t gid;
    gid_t groups[1];
    size_t n_groups;
} Identity;

static void become(gpointer user_data)
{
    const Identity *id = user_data;
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    /* Groups first: after setuid there is no permission left to change them. */
    if (setgroups(id->n_groups, id->groups) != 0 || setgid(id->gid) != 0 || setuid(id->uid) != 0)
        _exit(126);
}

/* Default arguments for `method` as its introspection data lists them ("()" for none), so
 * the call gets past GDBus's argument check to whatever the bus and proxd say. */
static char *default_args(World *w, const char *method)
{
    GDBusInterfaceInfo *info = g_dbus_proxy_get_interface_info(G_DBUS_PROXY(w->proxy));
    GDBusMethodInfo *m = g_dbus_interface_info_lookup_method(info, method);
    g_assert_nonnull(m);
    GString *s = g_string_new("(");
    for (guint i = 0; m->in_args != NULL && m->in_args[i] != NULL; i++) {
        const char *sig = m->in_args[i]->signature;
        if (sig[0] == 'a')
            g_string_append_printf(s, "@%s [], ", sig);
        else if (sig[0] == 's')
            g_string_append(s, "'', ");
        else if (sig[0] == 'o')
            g_string_append(s, "objectpath '/', ");
        else if (sig[0] == 'b')
            g_string_append(s, "false, ");
        else
            g_string_append_printf(s, "@%s 0, ", sig);
    }
    if (s->len > 1)
        g_string_truncate(s, s->len - 2);
    if (s->len > 1 && m->in_args[1] == NULL)
        g_string_append(s, ",");
    g_string_append(s, ")");
    return g_string_free(s, FALSE);
}

/* The call's outcome for `id` (NULL: as root): "ok" or a D-Bus error name. */
static char *call_as(World *w, const Identity *id, const char *iface, const char *method,
                     const char *args)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GSubprocessLauncher) l =
        g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
    g_subprocess_launcher_set_child_setup(l, id != NULL ? become : die_with_parent, (gpointer)id,
                                          NULL);
    g_autofree char *self = g_file_read_link("/proc/self/exe", &error);
    g_assert_no_error(error);
    g_autoptr(GSubprocess) p = g_subprocess_launcher_spawn(l, &error, self, "--client", w->address,
                                                           iface, method, args, NULL);
    g_assert_no_error(error);
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    g_assert_true(g_subprocess_communicate_utf8(p, NULL, NULL, &out, &err, &error));
    g_assert_no_error(error);
    if (!g_subprocess_get_if_exited(p) || g_subprocess_get_exit_status(p) != 0)
        g_error("client %s.%s failed: %s", iface, method, err);
    return g_strdup(g_strstrip(out));
}

static void assert_call(World *w, const Identity *id, const char *who, const char *iface,
                        const char *method, gboolean allowed)
{
    g_autofree char *args = g_str_equal(iface, "org.proxd.Manager1")
                                ? default_args(w, method)
                                : g_strdup("('org.proxd.Manager1', 'State')");
    g_autofree char *result = call_as(w, id, iface, method, args);
    g_test_message("%-20s %s.%s%s -> %s", who, iface, method, args, result);
    if (allowed)
        g_assert_cmpstr(result, !=, ACCESS_DENIED);
    else
        g_assert_cmpstr(result, ==, ACCESS_DENIED);
}

/* Methods that change state, release identifiers or keys: root and group proxd only. */
static const char *const restricted[] = {
    "GetSightings", "Sync",          "Report",      "PreviewReport",     "CheckIn", "CheckOut",
    "EditCheckIn",  "DeleteCheckIn", "GetCheckIns", "GetVenueExposures", NULL};
/* Status: anyone. */
static const char *const status[] = {"GetEncounters", "GetExposures", NULL};

static void test_policy(void)
{
    World w = {0};
    world_start(&w);

    Identity nobody = {.uid = NOBODY, .gid = NOBODY, .n_groups = 0};
    Identity member = {.uid = NOBODY, .gid = NOBODY, .groups = {w.proxd_gid}, .n_groups = 1};
    struct {
        const char *who;
        const Identity *id;
        gboolean privileged;
    } callers[] = {
        {"nobody", &nobody, FALSE},
        {"nobody + group proxd", &member, TRUE},
        {"root", NULL, TRUE},
    };

    for (guint c = 0; c < G_N_ELEMENTS(callers); c++) {
        /* Reading status is for everyone. */
        assert_call(&w, callers[c].id, callers[c].who, "org.freedesktop.DBus.Properties", "Get",
                    TRUE);
        for (guint i = 0; status[i] != NULL; i++)
            assert_call(&w, callers[c].id, callers[c].who, "org.proxd.Manager1", status[i], TRUE);
        for (guint i = 0; restricted[i] != NULL; i++)
            assert_call(&w, callers[c].id, callers[c].who, "org.proxd.Manager1", restricted[i],
                        callers[c].privileged);
    }
    /* A privileged call really ran: GetSightings answers root and the group. */
    Identity *allowed[] = {&member, NULL};
    for (guint i = 0; i < G_N_ELEMENTS(allowed); i++) {
        g_autofree char *r =
            call_as(&w, allowed[i], "org.proxd.Manager1", "GetSightings", "(@u 14,)");
        g_assert_cmpstr(r, ==, "ok");
    }
    world_stop(&w);
}

int main(int argc, char **argv)
{
    if (argc == 6 && g_str_equal(argv[1], "--client"))
        return run_client(argv);
    if (getuid() != 0) {
        g_print("SKIP: the bus policy test needs root, to run proxd as root and to call it as "
                "other users (uid %u here)\n",
                (guint)getuid());
        return EXIT_SKIP;
    }
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/policy/status-for-all-the-rest-for-root-and-group-proxd", test_policy);
    return g_test_run();
}
