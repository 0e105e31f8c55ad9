/* sim-launch.c - private bus, children on it with the world's clock, and their ends. */
#define G_LOG_DOMAIN "sim-launch"

#include "sim-launch.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

/* ---- waiting ---- */

static gboolean on_wait_timeout(gpointer user_data)
{
    *(gboolean *)user_data = TRUE;
    return G_SOURCE_REMOVE;
}

gboolean sim_launch_wait(SimLaunchCondition cond, gpointer cond_data, SimLaunchCondition stop,
                         gpointer stop_data, guint timeout_ms)
{
    gboolean timed_out = FALSE;
    guint id = g_timeout_add(timeout_ms, on_wait_timeout, &timed_out);
    gboolean ok;
    while (!(ok = cond(cond_data)) && !timed_out && (stop == NULL || !stop(stop_data)))
        g_main_context_iteration(NULL, TRUE);
    if (!timed_out)
        g_source_remove(id);
    return ok;
}

/* An exit watch: `done` once the process exited or the watch was cancelled. */
typedef struct {
    GCancellable *cancellable;
    gboolean done;
    gboolean exited;
} ExitWatch;

static void on_exit_watched(GObject *source, GAsyncResult *result, gpointer user_data)
{
    ExitWatch *w = user_data;
    w->exited = g_subprocess_wait_finish(G_SUBPROCESS(source), result, NULL);
    w->done = TRUE;
}

static void exit_watch_start(ExitWatch *w, GSubprocess *process)
{
    w->cancellable = g_cancellable_new();
    w->done = w->exited = FALSE;
    g_subprocess_wait_async(process, w->cancellable, on_exit_watched, w);
}

static void exit_watch_finish(ExitWatch *w)
{
    /* The callback points at `w`: it must have run before `w` goes away. */
    g_cancellable_cancel(w->cancellable);
    while (!w->done)
        g_main_context_iteration(NULL, TRUE);
    g_clear_object(&w->cancellable);
}

static gboolean exit_watch_done(gpointer p)
{
    return ((ExitWatch *)p)->done;
}

/* ---- the bus ---- */

static const char bus_config[] =
    "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\"\n"
    " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
    "<busconfig>\n"
    "  <type>session</type>\n"
    "  <listen>unix:dir=%s</listen>\n"
    "  <auth>EXTERNAL</auth>\n"
    "  <policy context=\"default\">\n"
    "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
    "    <allow eavesdrop=\"true\"/>\n"
    "    <allow own=\"*\"/>\n"
    "  </policy>\n"
    "</busconfig>\n";

char *sim_launch_bus_config(const char *dir)
{
    return g_strdup_printf(bus_config, dir);
}

static void child_setup(gpointer user_data)
{
    /* Whoever started the world dies, however it dies: the world goes with it. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
}

GSubprocess *sim_launch_bus(const char *dir, const char *config, char **address,
                            GDBusConnection **connection, GError **error)
{
    g_autofree char *conf = g_build_filename(dir, "bus.conf", NULL);
    if (!g_file_set_contents(conf, config, -1, error))
        return NULL;
    g_autofree char *conf_arg = g_strdup_printf("--config-file=%s", conf);
    g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                                                 G_SUBPROCESS_FLAGS_STDERR_SILENCE);
    g_subprocess_launcher_set_child_setup(l, child_setup, NULL, NULL);
    g_autoptr(GSubprocess) bus = g_subprocess_launcher_spawn(l, error, "dbus-daemon", "--nofork",
                                                             "--print-address=1", conf_arg, NULL);
    if (bus == NULL)
        return NULL;
    g_autoptr(GDataInputStream) out = g_data_input_stream_new(g_subprocess_get_stdout_pipe(bus));
    g_autofree char *line = g_data_input_stream_read_line(out, NULL, NULL, error);
    g_autoptr(GDBusConnection) c = NULL;
    if (line == NULL) {
        if (error != NULL && *error == NULL)
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "dbus-daemon printed no address");
    } else if (connection != NULL) {
        c = g_dbus_connection_new_for_address_sync(
            line,
            G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
            NULL, NULL, error);
    }
    if (line == NULL || (connection != NULL && c == NULL)) {
        sim_launch_stop(bus, "dbus-daemon", FALSE);
        return NULL;
    }
    *address = g_steal_pointer(&line);
    if (connection != NULL)
        *connection = g_steal_pointer(&c);
    return g_steal_pointer(&bus);
}

/* ---- children ---- */

GSubprocessLauncher *sim_launch_launcher(GSubprocessFlags flags, const char *bus_address,
                                         const char *clock, const char *log_path)
{
    if (log_path != NULL)
        flags |= G_SUBPROCESS_FLAGS_STDERR_MERGE;
    GSubprocessLauncher *l = g_subprocess_launcher_new(flags);
    if (bus_address != NULL)
        g_subprocess_launcher_setenv(l, "DBUS_SESSION_BUS_ADDRESS", bus_address, TRUE);
    if (clock != NULL)
        g_subprocess_launcher_setenv(l, "PROX_SIM_CLOCK", clock, TRUE);
    g_subprocess_launcher_setenv(l, "TZ", "UTC", TRUE);
    g_subprocess_launcher_unsetenv(l, "PROXD_BUS_NAME");
    g_subprocess_launcher_unsetenv(l, "PROXD_BUS");
    g_subprocess_launcher_set_child_setup(l, child_setup, NULL, NULL);
    if (log_path != NULL)
        g_subprocess_launcher_set_stdout_file_path(l, log_path);
    return l;
}

char **sim_launch_proxd_argv(const char *proxd, const char *bus_name, guint adapter,
                             const char *state_dir, const char *config_path, const char *role,
                             gboolean verbose)
{
    GPtrArray *argv = g_ptr_array_new();
    g_ptr_array_add(argv, g_strdup(proxd));
    g_ptr_array_add(argv, g_strdup("--session"));
    if (verbose)
        g_ptr_array_add(argv, g_strdup("--verbose"));
    g_ptr_array_add(argv, g_strdup_printf("--bus-name=%s", bus_name));
    g_ptr_array_add(argv, g_strdup_printf("--adapter=hci%u", adapter));
    g_ptr_array_add(argv, g_strdup_printf("--state-dir=%s", state_dir));
    g_ptr_array_add(argv, g_strdup_printf("--config=%s", config_path));
    if (role != NULL)
        g_ptr_array_add(argv, g_strdup_printf("--role=%s", role));
    g_ptr_array_add(argv, NULL);
    return (char **)g_ptr_array_free(argv, FALSE);
}

typedef struct {
    gboolean known; /* the watcher has said whether the name has an owner */
    gboolean owned;
    gboolean want_owned;
    ExitWatch owner_exit;
    gboolean watch_owner;
    SimLaunchCondition stop;
    gpointer stop_data;
} NameWait;

static void on_name_appeared(GDBusConnection *c, const char *name, const char *owner, gpointer p)
{
    NameWait *w = p;
    w->known = w->owned = TRUE;
}

static void on_name_vanished(GDBusConnection *c, const char *name, gpointer p)
{
    NameWait *w = p;
    w->known = TRUE;
    w->owned = FALSE;
}

static gboolean name_wait_done(gpointer p)
{
    NameWait *w = p;
    return w->known && w->owned == w->want_owned;
}

static gboolean name_wait_stop(gpointer p)
{
    NameWait *w = p;
    /* The process that should own the name died. */
    if (w->watch_owner && exit_watch_done(&w->owner_exit))
        return TRUE;
    return w->stop != NULL && w->stop(w->stop_data);
}

gboolean sim_launch_wait_name(GDBusConnection *connection, const char *name, gboolean owned,
                              GSubprocess *owner, SimLaunchCondition stop, gpointer stop_data,
                              guint timeout_ms)
{
    NameWait w = {.want_owned = owned, .stop = stop, .stop_data = stop_data};
    w.watch_owner = owned && owner != NULL;
    if (w.watch_owner)
        exit_watch_start(&w.owner_exit, owner);
    guint id = g_bus_watch_name_on_connection(connection, name, G_BUS_NAME_WATCHER_FLAGS_NONE,
                                              on_name_appeared, on_name_vanished, &w, NULL);
    gboolean ok = sim_launch_wait(name_wait_done, &w, name_wait_stop, &w, timeout_ms);
    g_bus_unwatch_name(id);
    if (w.watch_owner)
        exit_watch_finish(&w.owner_exit);
    return ok;
}

/* ---- ends ---- */

int sim_launch_status(GSubprocess *process)
{
    return g_subprocess_get_if_exited(process) ? g_subprocess_get_exit_status(process)
                                               : 128 + g_subprocess_get_term_sig(process);
}

int sim_launch_stop(GSubprocess *process, const char *name, gboolean signalled)
{
    ExitWatch w;
    exit_watch_start(&w, process);
    if (!signalled)
        g_subprocess_send_signal(process, SIGTERM);
    if (!sim_launch_wait(exit_watch_done, &w, NULL, NULL, SIM_LAUNCH_EXIT_TIMEOUT_MS)) {
        g_printerr("%s: %s did not exit on SIGTERM, killing it\n", g_get_prgname(), name);
        g_subprocess_force_exit(process);
        /* SIGKILL cannot be ignored: the exit comes. */
        while (!w.done)
            g_main_context_iteration(NULL, TRUE);
    }
    gboolean exited = w.exited;
    exit_watch_finish(&w);
    return exited ? sim_launch_status(process) : 128 + SIGKILL;
}

char *sim_launch_log_tail(const char *path, guint max_lines, const char *indent)
{
    g_autofree char *text = NULL;
    if (path == NULL || !g_file_get_contents(path, &text, NULL, NULL))
        return NULL;
    g_auto(GStrv) lines = g_strsplit(g_strchomp(text), "\n", -1);
    guint n = g_strv_length(lines);
    guint from = n > max_lines ? n - max_lines : 0;
    GString *s = g_string_new(NULL);
    for (guint i = from; i < n; i++)
        g_string_append_printf(s, "%s%s\n", indent, lines[i]);
    return g_string_free(s, FALSE);
}

void sim_launch_remove_tree(const char *path)
{
    g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
    const char *name;
    while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
        g_autofree char *child = g_build_filename(path, name, NULL);
        if (g_file_test(child, G_FILE_TEST_IS_DIR) && !g_file_test(child, G_FILE_TEST_IS_SYMLINK))
            sim_launch_remove_tree(child);
        else
            g_unlink(child);
    }
    g_rmdir(path);
}
