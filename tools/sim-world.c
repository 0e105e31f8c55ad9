/* sim-world.c - private bus, fake BlueZ, proxd processes and their clean ends. */
#define G_LOG_DOMAIN "prox-sim"

#include "sim-world.h"

#include <errno.h>
#include <glib-unix.h>
#include <signal.h>
#include <string.h>

#define FAKE_CONTROL_NAME "org.proxd.FakeBluez"
#define MANAGER_PATH "/org/proxd"
#define MANAGER_IFACE "org.proxd.Manager1"
#define START_TIMEOUT_MS 20000

/* ---- finding the programs ---- */

static char *find_tool(const char *env, const char *build_path, const char *installed_path,
                       gboolean in_build_tree, GError **error)
{
    const char *override = g_getenv(env);
    const char *path = override != NULL && override[0] != '\0' ? override
                       : in_build_tree                         ? build_path
                                                               : installed_path;
    if (!g_file_test(path, G_FILE_TEST_IS_EXECUTABLE)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "%s not found (set %s to its path%s)",
                    path, env, in_build_tree ? ", or build it: ninja -C " PROX_SIM_BUILD_ROOT : "");
        return NULL;
    }
    return g_strdup(path);
}

gboolean sim_tools_find(SimTools *tools, GError **error)
{
    /* Run from the build tree (the demo script, meson test), prox-sim uses the programs
     * built next to it; installed, the installed ones. */
    g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
    g_autofree char *self_dir = self != NULL ? g_path_get_dirname(self) : NULL;
    g_autofree char *build_tools = g_canonicalize_filename(PROX_SIM_BUILD_ROOT "/tools", NULL);
    gboolean in_build_tree = self_dir != NULL && g_strcmp0(self_dir, build_tools) == 0;

    memset(tools, 0, sizeof *tools);
    tools->proxd = find_tool("PROX_SIM_PROXD", PROX_SIM_BUILD_ROOT "/daemon/proxd",
                             PROX_SIM_SBINDIR "/proxd", in_build_tree, error);
    if (tools->proxd != NULL)
        tools->fake_bluez =
            find_tool("PROX_SIM_FAKE_BLUEZ", PROX_SIM_BUILD_ROOT "/tests/fake-bluez/fake-bluez",
                      PROX_SIM_LIBEXECDIR "/proxd/fake-bluez", in_build_tree, error);
    if (tools->fake_bluez != NULL)
        tools->authority =
            find_tool("PROX_SIM_AUTHORITY", PROX_SIM_BUILD_ROOT "/tools/prox-authority",
                      PROX_SIM_BINDIR "/prox-authority", in_build_tree, error);
    if (tools->authority != NULL)
        tools->keyserver =
            find_tool("PROX_SIM_KEYSERVER", PROX_SIM_BUILD_ROOT "/tools/prox-keyserver",
                      PROX_SIM_BINDIR "/prox-keyserver", in_build_tree, error);
    if (tools->keyserver == NULL) {
        sim_tools_clear(tools);
        return FALSE;
    }
    return TRUE;
}

void sim_tools_clear(SimTools *tools)
{
    g_clear_pointer(&tools->proxd, g_free);
    g_clear_pointer(&tools->fake_bluez, g_free);
    g_clear_pointer(&tools->authority, g_free);
    g_clear_pointer(&tools->keyserver, g_free);
}

/* ---- waiting ---- */

static gboolean on_wait_timeout(gpointer user_data)
{
    *(gboolean *)user_data = TRUE;
    return G_SOURCE_REMOVE;
}

static SimProcess *unexpected_exit(SimWorld *world)
{
    for (guint i = 0; i < world->processes->len; i++) {
        SimProcess *p = g_ptr_array_index(world->processes, i);
        if (p->exited && !p->stopping)
            return p;
    }
    return NULL;
}

/* A wait of the world ends early on SIGINT/SIGTERM or when a child exits unexpectedly. */
static gboolean world_broken(gpointer p)
{
    SimWorld *world = p;
    return world->interrupted || unexpected_exit(world) != NULL;
}

/* Why a wait of the world failed. */
static gboolean wait_failed(SimWorld *world, guint timeout_ms, const char *what, GError **error)
{
    SimProcess *died = unexpected_exit(world);
    if (world->interrupted) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "interrupted while %s", what);
    } else if (died != NULL) {
        g_autofree char *tail = sim_process_log_tail(died, 15);
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "%s exited (status %d) while %s; its log (%s) ends:\n%s", died->name,
                    died->status, what, died->log_path, tail);
    } else {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "timed out after %u ms %s", timeout_ms,
                    what);
    }
    return FALSE;
}

gboolean sim_world_wait(SimWorld *world, SimCondition cond, gpointer user_data, guint timeout_ms,
                        const char *what, GError **error)
{
    return sim_launch_wait(cond, user_data, world_broken, world, timeout_ms) ||
           wait_failed(world, timeout_ms, what, error);
}

typedef struct {
    const char *path;
} FileWait;

static gboolean file_exists(gpointer p)
{
    return g_file_test(((FileWait *)p)->path, G_FILE_TEST_EXISTS);
}

static void on_dir_changed(GFileMonitor *monitor, GFile *file, GFile *other,
                           GFileMonitorEvent event, gpointer user_data)
{
    /* Waking the main context is enough: the condition looks again. */
}

gboolean sim_world_wait_file(SimWorld *world, const char *path, guint timeout_ms, GError **error)
{
    g_autofree char *dir_path = g_path_get_dirname(path);
    g_autoptr(GFile) dir = g_file_new_for_path(dir_path);
    g_autoptr(GFileMonitor) monitor =
        g_file_monitor_directory(dir, G_FILE_MONITOR_WATCH_MOVES, NULL, error);
    if (monitor == NULL)
        return FALSE;
    g_signal_connect(monitor, "changed", G_CALLBACK(on_dir_changed), NULL);
    FileWait w = {path};
    g_autofree char *what = g_strdup_printf("waiting for %s", path);
    return sim_world_wait(world, file_exists, &w, timeout_ms, what, error);
}

static gboolean flag_set(gpointer p)
{
    return *(gboolean *)p;
}

double sim_world_now(SimWorld *world)
{
    return (double)prox_sim_clock_now_us(&world->clock) / G_USEC_PER_SEC;
}

gboolean sim_world_wait_sim_time(SimWorld *world, double sim_time, GError **error)
{
    /* A timer, not a synchronisation: the scenario plays out on the shared clock. */
    double remaining = sim_time - sim_world_now(world);
    if (remaining <= 0)
        return TRUE;
    guint ms = prox_sim_clock_real_ms(&world->clock, (gint64)(remaining * G_USEC_PER_SEC));
    gboolean reached = FALSE;
    guint id = g_timeout_add(ms, on_wait_timeout, &reached);
    gboolean ok =
        sim_world_wait(world, flag_set, &reached, ms + 5000, "the simulated ride went on", error);
    if (!reached)
        g_source_remove(id);
    return ok;
}

/* ---- processes ---- */

static void on_process_exited(GObject *source, GAsyncResult *result, gpointer user_data)
{
    SimProcess *p = user_data;
    GSubprocess *sp = G_SUBPROCESS(source);
    g_subprocess_wait_finish(sp, result, NULL);
    p->exited = TRUE;
    p->status = sim_launch_status(sp);
}

/* A child of the world (`log_path` and `sp` taken), watched until it exits. sim_world_free()
 * stops the children in reverse order: the bus goes `first` in the list, to be stopped last. */
static SimProcess *process_add(SimWorld *world, const char *name, char *log_path, GSubprocess *sp,
                               gboolean first)
{
    SimProcess *p = g_new0(SimProcess, 1);
    p->name = g_strdup(name);
    p->log_path = log_path;
    p->process = sp;
    g_ptr_array_insert(world->processes, first ? 0 : -1, p);
    g_subprocess_wait_async(sp, NULL, on_process_exited, p);
    return p;
}

static void process_free(SimProcess *p)
{
    /* Only reached after the process exited (sim_world_free terminates first). */
    g_clear_object(&p->process);
    g_free(p->name);
    g_free(p->log_path);
    g_free(p);
}

static GSubprocessLauncher *launcher_new(SimWorld *world, GSubprocessFlags flags,
                                         const char *env_clock, const char *log_path)
{
    return sim_launch_launcher(flags, world->bus_address,
                               env_clock != NULL ? env_clock : world->clock_spec, log_path);
}

SimProcess *sim_world_spawn(SimWorld *world, const char *name, const char *env_clock,
                            const char *const *argv, GError **error)
{
    g_autofree char *log_path = g_strdup_printf("%s/%s.log", world->log_dir, name);
    g_autoptr(GSubprocessLauncher) l =
        launcher_new(world, G_SUBPROCESS_FLAGS_NONE, env_clock, log_path);
    GSubprocess *sp = g_subprocess_launcher_spawnv(l, argv, error);
    if (sp == NULL)
        return NULL;
    SimProcess *p = process_add(world, name, g_steal_pointer(&log_path), sp, FALSE);
    if (world->verbose) {
        g_autofree char *cmd = g_strjoinv(" ", (char **)argv);
        g_printerr("prox-sim: started %s: %s\n", name, cmd);
    }
    return p;
}

gboolean sim_world_run(SimWorld *world, const char *env_clock, const char *const *argv, char **out,
                       GError **error)
{
    g_autoptr(GSubprocessLauncher) l = launcher_new(
        world, G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE, env_clock, NULL);
    g_autoptr(GSubprocess) sp = g_subprocess_launcher_spawnv(l, argv, error);
    if (sp == NULL)
        return FALSE;
    g_autofree char *stdout_text = NULL;
    g_autofree char *stderr_text = NULL;
    if (!g_subprocess_communicate_utf8(sp, NULL, NULL, &stdout_text, &stderr_text, error))
        return FALSE;
    if (world->verbose) {
        g_autofree char *cmd = g_strjoinv(" ", (char **)argv);
        g_printerr("prox-sim: ran %s\n", cmd);
    }
    if (!g_subprocess_get_successful(sp)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s failed: %s", argv[0],
                    stderr_text != NULL ? g_strstrip(stderr_text) : "");
        return FALSE;
    }
    if (out != NULL)
        *out = g_steal_pointer(&stdout_text);
    return TRUE;
}

void sim_world_terminate(SimWorld *world, SimProcess *p)
{
    if (p == NULL || p->exited)
        return;
    /* Once only: a daemon that is already shutting down must not get a second SIGTERM. */
    gboolean signalled = p->stopping;
    p->stopping = TRUE;
    sim_launch_stop(p->process, p->name, signalled);
    /* It has exited: its exit callback (which fills in the status) is due. */
    while (!p->exited)
        g_main_context_iteration(NULL, TRUE);
}

char *sim_process_log_tail(const SimProcess *p, guint max_lines)
{
    char *tail = sim_launch_log_tail(p->log_path, max_lines, "    ");
    return tail != NULL ? tail : g_strdup("(no log)");
}

/* ---- the world ---- */

static gboolean on_signal(gpointer user_data)
{
    SimWorld *world = user_data;
    world->interrupted = TRUE;
    return G_SOURCE_CONTINUE;
}

static void daemon_free(SimDaemon *d)
{
    g_clear_object(&d->proxy);
    g_free(d->bus_name);
    g_free(d->state_dir);
    g_free(d->db_path);
    g_free(d);
}

SimWorld *sim_world_new(const char *dir, const SimTools *tools, double speed, gboolean verbose)
{
    SimWorld *world = g_new0(SimWorld, 1);
    world->dir = g_strdup(dir);
    world->log_dir = g_build_filename(dir, "logs", NULL);
    g_mkdir_with_parents(world->log_dir, 0700);
    world->tools = tools;
    world->speed = speed;
    world->verbose = verbose;
    prox_sim_clock_init_real(&world->clock);
    world->clock_spec = prox_sim_clock_format(&world->clock);
    world->scenario_path = g_build_filename(dir, "bus-ride.json", NULL);
    world->truth_path = g_build_filename(dir, "truth.jsonl", NULL);
    world->daemons = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_free);
    world->processes = g_ptr_array_new_with_free_func((GDestroyNotify)process_free);
    world->sigint_id = g_unix_signal_add(SIGINT, on_signal, world);
    world->sigterm_id = g_unix_signal_add(SIGTERM, on_signal, world);
    return world;
}

void sim_world_free(SimWorld *world)
{
    if (world == NULL)
        return;
    /* Daemons first (they commit), then the radio, the bus last. */
    for (guint i = world->processes->len; i > 0; i--)
        sim_world_terminate(world, g_ptr_array_index(world->processes, i - 1));
    g_ptr_array_free(world->daemons, TRUE);
    if (world->connection != NULL)
        g_dbus_connection_close_sync(world->connection, NULL, NULL);
    g_clear_object(&world->connection);
    g_ptr_array_free(world->processes, TRUE);
    g_source_remove(world->sigint_id);
    g_source_remove(world->sigterm_id);
    g_free(world->dir);
    g_free(world->log_dir);
    g_free(world->clock_spec);
    g_free(world->bus_address);
    g_free(world->scenario_path);
    g_free(world->truth_path);
    g_free(world);
}

gboolean sim_world_start_bus(SimWorld *world, gint64 sim_start, GError **error)
{
    /* The whole world shares this clock from here on: scenario time 0 is now. */
    gint64 real_now = g_get_real_time();
    world->clock.real_start_us = real_now;
    world->clock.sim_start_us = sim_start * G_USEC_PER_SEC;
    world->clock.speed = world->speed;
    g_free(world->clock_spec);
    world->clock_spec = prox_sim_clock_format(&world->clock);

    /* A second start (the ending's morning) replaces the stopped bus: drop what is left of
     * the old one. */
    if (world->connection != NULL)
        g_dbus_connection_close_sync(world->connection, NULL, NULL);
    g_clear_object(&world->connection);
    g_clear_pointer(&world->bus_address, g_free);
    sim_world_terminate(world, world->bus);
    world->bus = NULL;

    g_autofree char *config = sim_launch_bus_config(world->dir);
    g_autofree char *address = NULL;
    g_autoptr(GDBusConnection) connection = NULL;
    GSubprocess *sp = sim_launch_bus(world->dir, config, &address, &connection, error);
    if (sp == NULL)
        return FALSE;
    world->bus = process_add(world, "dbus-daemon", NULL, sp, TRUE);
    world->bus_address = g_steal_pointer(&address);
    world->connection = g_steal_pointer(&connection);
    return TRUE;
}

gboolean sim_world_wait_name(SimWorld *world, const char *name, GError **error)
{
    if (sim_launch_wait_name(world->connection, name, TRUE, NULL, world_broken, world,
                             START_TIMEOUT_MS))
        return TRUE;
    g_autofree char *what = g_strdup_printf("waiting for %s on the bus", name);
    return wait_failed(world, START_TIMEOUT_MS, what, error);
}

gboolean sim_world_start_fake(SimWorld *world, const char *scenario_json, guint32 seed,
                              GError **error)
{
    if (!g_file_set_contents(world->scenario_path, scenario_json, -1, error))
        return FALSE;
    g_autofree char *seed_s = g_strdup_printf("%u", seed);
    const char *argv[] = {world->tools->fake_bluez,
                          "--bus-address",
                          world->bus_address,
                          "--scenario",
                          world->scenario_path,
                          "--truth-log",
                          world->truth_path,
                          "--seed",
                          seed_s,
                          NULL};
    world->fake = sim_world_spawn(world, "fake-bluez", NULL, argv, error);
    return world->fake != NULL && sim_world_wait_name(world, FAKE_CONTROL_NAME, error);
}

static gboolean daemon_ready(const SimDaemon *d)
{
    g_autoptr(GVariant) state = g_dbus_proxy_get_cached_property(d->proxy, "State");
    g_autoptr(GVariant) advertising = g_dbus_proxy_get_cached_property(d->proxy, "Advertising");
    return state != NULL && g_strcmp0(g_variant_get_string(state, NULL), "active") == 0 &&
           advertising != NULL && g_variant_get_boolean(advertising);
}

static gboolean all_daemons_ready(gpointer p)
{
    SimWorld *world = p;
    for (guint i = 0; i < world->daemons->len; i++) {
        SimDaemon *d = g_ptr_array_index(world->daemons, i);
        if (!daemon_ready(d))
            return FALSE;
    }
    return TRUE;
}

static void on_properties_changed(GDBusProxy *proxy, GVariant *changed,
                                  const char *const *invalidated, gpointer user_data)
{
    /* Waking the wait is enough: the condition reads the proxy's cache. */
}

gboolean sim_world_start_daemons(SimWorld *world, const SimRide *ride, GError **error)
{
    for (guint i = 0; i < ride->devices->len; i++) {
        const SimDevice *dev = sim_ride_device(ride, i);
        SimDaemon *d = g_new0(SimDaemon, 1);
        d->device = dev;
        d->bus_name = g_strdup_printf("org.proxd.sim.%s", dev->name);
        d->state_dir = g_build_filename(world->dir, "devices", dev->name, NULL);
        d->db_path = g_build_filename(d->state_dir, "proxd.db", NULL);
        g_ptr_array_add(world->daemons, d);
        if (g_mkdir_with_parents(d->state_dir, 0700) != 0) {
            g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "cannot create %s: %s",
                        d->state_dir, g_strerror(errno));
            return FALSE;
        }
        /* An empty configuration file: the shipped defaults, not the host's /etc. */
        g_autofree char *config = g_build_filename(d->state_dir, "proxd.conf", NULL);
        if (!g_file_set_contents(config, "", 0, error))
            return FALSE;
        g_auto(GStrv) argv =
            sim_launch_proxd_argv(world->tools->proxd, d->bus_name, dev->adapter, d->state_dir,
                                  config, dev->beacon ? "beacon" : "person", world->verbose);
        g_autofree char *log_name = g_strdup_printf("proxd-%s", dev->name);
        d->process = sim_world_spawn(world, log_name, NULL, (const char *const *)argv, error);
        if (d->process == NULL)
            return FALSE;
    }
    for (guint i = 0; i < world->daemons->len; i++) {
        SimDaemon *d = g_ptr_array_index(world->daemons, i);
        if (!sim_world_wait_name(world, d->bus_name, error))
            return FALSE;
        d->proxy =
            g_dbus_proxy_new_sync(world->connection, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START, NULL,
                                  d->bus_name, MANAGER_PATH, MANAGER_IFACE, NULL, error);
        if (d->proxy == NULL)
            return FALSE;
        g_signal_connect(d->proxy, "g-properties-changed", G_CALLBACK(on_properties_changed), NULL);
    }
    return sim_world_wait(world, all_daemons_ready, world, START_TIMEOUT_MS,
                          "waiting for every proxd to be active and advertising", error);
}

gboolean sim_world_stop_daemons(SimWorld *world, GError **error)
{
    /* All at once: each commits its pending sightings on SIGTERM. */
    for (guint i = 0; i < world->daemons->len; i++) {
        SimDaemon *d = g_ptr_array_index(world->daemons, i);
        if (!d->process->exited) {
            d->process->stopping = TRUE;
            g_subprocess_send_signal(d->process->process, SIGTERM);
        }
    }
    for (guint i = 0; i < world->daemons->len; i++) {
        SimDaemon *d = g_ptr_array_index(world->daemons, i);
        sim_world_terminate(world, d->process);
        g_clear_object(&d->proxy);
        if (d->process->status != 0) {
            g_autofree char *tail = sim_process_log_tail(d->process, 15);
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "%s exited with status %d on SIGTERM; its log (%s) ends:\n%s",
                        d->process->name, d->process->status, d->process->log_path, tail);
            return FALSE;
        }
    }
    return TRUE;
}

gboolean sim_world_stop_radio(SimWorld *world, GError **error)
{
    sim_world_terminate(world, world->fake);
    if (world->connection != NULL)
        g_dbus_connection_close_sync(world->connection, NULL, NULL);
    g_clear_object(&world->connection);
    sim_world_terminate(world, world->bus);
    if (world->fake != NULL && world->fake->status != 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "fake-bluez exited with status %d",
                    world->fake->status);
        return FALSE;
    }
    return TRUE;
}
