/* proxd-main.c - command line, bus name, signals and the main loop of proxd. */
#define G_LOG_DOMAIN "proxd"

#include <errno.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <gio/gio.h>
#include <locale.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxd-clock.h"
#include "proxd-config.h"
#include "proxd-manager.h"
#include "proxd-sync.h"
#include "prox-store.h"

#define PROXD_DEFAULT_BUS_NAME "org.proxd"
#define STORE_FILE "proxd.db"

enum {
    EXIT_OK = 0,
    EXIT_RUNTIME = 1, /* cannot start or lost the bus */
    EXIT_USAGE = 2,
};

typedef struct {
    GMainLoop *loop;
    ProxdConfig *config;
    ProxdManager *manager;
    const char *bus_name;
    int exit_code;
} Daemon;

static const char description[] =
    "proxd advertises this device's rotating Exposure Notification identifiers (GAEN v1.2)\n"
    "over Bluetooth LE and records the identifiers of devices nearby, through BlueZ's D-Bus\n"
    "API. What it hears stays in a local sqlite store; status is published on the D-Bus\n"
    "name org.proxd (object /org/proxd, interface org.proxd.Manager1), which proxctl reads.\n"
    "\n"
    "Roles:\n"
    "  person   scans a few seconds every 3 to 5 minutes and raises exposure alerts\n"
    "  beacon   (a bus or a venue) scans continuously and counts occupancy per hour\n"
    "\n"
    "Configuration:\n"
    "  " PROXD_SYSCONFDIR "/proxd/proxd.conf, a key file with groups [General] (Role,\n"
    "  Adapter, StateDirectory, RetentionDays), [Advertising] (Enabled, TxPower),\n"
    "  [Scanning] (ScanSeconds, IntervalMinSeconds, IntervalMaxSeconds,\n"
    "  BeaconScanInstanceSeconds, CommitSeconds, RssiCorrection, CalibrationConfidence) and\n"
    "  [Risk] (risk scoring parameters), [Sync] (URL, PinnedKeys, IntervalSeconds: key-list\n"
    "  download) and [Report] (URL: key server for positive tests). Command-line options\n"
    "  override the file.\n"
    "\n"
    "Signals:\n"
    "  SIGTERM, SIGINT  store pending sightings, withdraw the advertisement, stop scanning, exit\n"
    "                   (while stopping, a second is ignored and a third forces the exit)\n"
    "  SIGHUP           reload the configuration file (StateDirectory and RetentionDays need\n"
    "                   a restart)\n"
    "\n"
    "Environment:\n"
    "  STATE_DIRECTORY  default state directory (set by systemd's StateDirectory=)\n"
    "  PROXD_BUS        \"session\" has the same effect as --session\n"
    "  PROXD_BUS_NAME   default for --bus-name\n"
    "  PROX_SIM_CLOCK   \"<real_start>:<sim_start>:<speed>\": follow a simulated clock (tests\n"
    "                   and demos); all timers run in simulated time\n"
    "\n"
    "Exit status: 0 after a clean shutdown, 1 when proxd cannot run (store, bus, name\n"
    "already owned), 2 for invalid options or configuration.";

/* DBus RequestName / ReleaseName replies. */
#define REQUEST_NAME_PRIMARY_OWNER 1
#define REQUEST_NAME_EXISTS 3
#define REQUEST_NAME_ALREADY_OWNER 4
#define NAME_FLAG_DO_NOT_QUEUE 4

/* Asks the bus for `name` and says precisely why when it is refused. */
static gboolean request_name(GDBusConnection *connection, const char *name, GError **error)
{
    g_autoptr(GError) local = NULL;
    g_autoptr(GVariant) reply = g_dbus_connection_call_sync(
        connection, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
        "RequestName", g_variant_new("(su)", name, NAME_FLAG_DO_NOT_QUEUE), G_VARIANT_TYPE("(u)"),
        G_DBUS_CALL_FLAGS_NONE, -1, NULL, &local);
    if (reply == NULL) {
        g_autofree char *remote = g_dbus_error_get_remote_error(local);
        g_dbus_error_strip_remote_error(local);
        if (g_strcmp0(remote, "org.freedesktop.DBus.Error.AccessDenied") == 0)
            g_set_error(error, G_DBUS_ERROR, G_DBUS_ERROR_ACCESS_DENIED,
                        "cannot own %s: the bus policy does not allow this user (run proxd as "
                        "the proxd user, see org.proxd.conf): %s",
                        name, local->message);
        else
            g_set_error(error, G_DBUS_ERROR, G_DBUS_ERROR_FAILED, "cannot own %s: %s", name,
                        local->message);
        return FALSE;
    }
    guint32 result;
    g_variant_get(reply, "(u)", &result);
    if (result == REQUEST_NAME_PRIMARY_OWNER || result == REQUEST_NAME_ALREADY_OWNER)
        return TRUE;
    g_set_error(error, G_DBUS_ERROR, G_DBUS_ERROR_ADDRESS_IN_USE,
                "cannot own %s: another proxd is running on this bus", name);
    return FALSE;
}

static void on_name_lost(GDBusConnection *connection, const char *sender, const char *path,
                         const char *iface, const char *signal, GVariant *params,
                         gpointer user_data)
{
    Daemon *d = user_data;
    const char *name;
    g_variant_get(params, "(&s)", &name);
    if (g_strcmp0(name, d->bus_name) != 0)
        return;
    g_critical("lost the bus name %s; exiting", name);
    d->exit_code = EXIT_RUNTIME;
    g_main_loop_quit(d->loop);
}

static gboolean on_start(gpointer user_data)
{
    Daemon *d = user_data;
    proxd_manager_start(d->manager);
    return G_SOURCE_REMOVE;
}

static gboolean on_quit_signal(gpointer user_data)
{
    Daemon *d = user_data;
    g_main_loop_quit(d->loop);
    return G_SOURCE_CONTINUE;
}

/* ---- signals during shutdown ----
 *
 * Once the main loop has ended, GLib's signal sources no longer run (and removing them gives
 * SIGTERM back its default action, death with status 143): from then on plain handlers
 * keep the shutdown going. The signal that started it is the first; a second is noted and
 * ignored (pending sightings are being stored, the advertisement withdrawn); a third forces
 * the exit with the signal's default action. */

static volatile sig_atomic_t shutdown_signals = 1;

static void write_stderr(const char *text)
{
    /* Async-signal-safe; nothing to do if stderr is gone. */
    ssize_t ignored = write(STDERR_FILENO, text, strlen(text));
    (void)ignored;
}

static void on_shutdown_signal(int signum)
{
    int saved_errno = errno;
    if (++shutdown_signals < 3) {
        write_stderr("proxd: already stopping (storing pending sightings); a third signal "
                     "forces the exit\n");
    } else {
        write_stderr("proxd: forced exit: pending sightings may be lost\n");
        signal(signum, SIG_DFL);
        raise(signum);
    }
    errno = saved_errno;
}

/* Replaces GLib's sources for SIGTERM, SIGINT and SIGHUP with handlers that last until the
 * process exits. */
static void catch_signals_for_shutdown(guint *sigterm_id, guint *sigint_id, guint *sighup_id)
{
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    /* Blocked while the handlers change hands: none is lost or fatal in between. */
    sigprocmask(SIG_BLOCK, &set, &old);
    g_clear_handle_id(sigterm_id, g_source_remove);
    g_clear_handle_id(sigint_id, g_source_remove);
    g_clear_handle_id(sighup_id, g_source_remove);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_shutdown_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    /* A reload makes no sense any more. */
    action.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &action, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static gboolean on_sighup(gpointer user_data)
{
    Daemon *d = user_data;
    g_autoptr(GError) error = NULL;
    if (!proxd_config_reload(d->config, &error))
        g_warning("configuration not reloaded, keeping the current one: %s", error->message);
    return G_SOURCE_CONTINUE;
}

static void on_connection_closed(GDBusConnection *connection, gboolean remote_peer_vanished,
                                 GError *error, gpointer user_data)
{
    Daemon *d = user_data;
    g_critical("the bus connection closed%s%s; exiting", error != NULL ? ": " : "",
               error != NULL ? error->message : "");
    d->exit_code = EXIT_RUNTIME;
    g_main_loop_quit(d->loop);
}

#define PROXD_STORE_CACHE_KIB 1024

static ProxStoreOptions store_options(const ProxdSettings *settings)
{
    /* The daemon's own connection records sightings and answers status queries: a small
     * page cache keeps its resident memory low. Key-list imports open their own. */
    return (ProxStoreOptions){.retention_days = settings->retention_days,
                              .cache_kib = PROXD_STORE_CACHE_KIB};
}

static gint64 sync_clock_now(gpointer user_data)
{
    return proxd_clock_now(user_data);
}

/* The key-list sync of [Sync], on this (the main) thread's context; NULL with no error when
 * no URL is configured. */
static ProxdSync *create_sync(const ProxdSettings *settings, ProxdClock *clock, GError **error)
{
    if (settings->sync_url == NULL) {
        g_message("key-list sync disabled ([Sync] URL is empty)");
        return NULL;
    }
    ProxExportKeyring *keyring =
        proxd_sync_keyring_load((const char *const *)settings->sync_pinned_keys, error);
    if (keyring == NULL)
        return NULL;
    g_autofree char *db_path = g_build_filename(settings->state_dir, STORE_FILE, NULL);
    ProxdSyncOptions options = {
        .url = settings->sync_url,
        .db_path = db_path,
        /* An import's connection lives only while it runs: sqlite's default page cache,
         * sized for the key index. */
        .store_options = {.retention_days = settings->retention_days},
        .interval = settings->sync_interval,
        .risk = &settings->risk,
        .confidence = settings->calibration_confidence,
    };
    ProxdSync *sync = proxd_sync_new(&options, keyring, error);
    if (sync == NULL)
        return NULL;
    proxd_sync_set_clock(sync, sync_clock_now, clock);
    g_message("key-list sync from %s", settings->sync_url);
    return sync;
}

static ProxStore *open_store(const ProxdSettings *settings, GError **error)
{
    if (g_mkdir_with_parents(settings->state_dir, 0700) != 0) {
        int saved = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot create state directory %s: %s", settings->state_dir, g_strerror(saved));
        return NULL;
    }
    g_autofree char *path = g_build_filename(settings->state_dir, STORE_FILE, NULL);
    ProxStoreOptions opts = store_options(settings);
    ProxStore *store = prox_store_open(path, &opts, error);
    if (store != NULL)
        g_message("store: %s (retention %u days)", path, settings->retention_days);
    return store;
}

int main(int argc, char **argv)
{
    g_autofree char *config_path = NULL;
    g_autofree char *role = NULL;
    g_autofree char *adapter = NULL;
    g_autofree char *state_dir = NULL;
    g_autofree char *bus_name = NULL;
    gboolean session = FALSE;
    gboolean verbose = FALSE;
    gboolean version = FALSE;
    g_autoptr(GError) error = NULL;

    setlocale(LC_ALL, "");

    const GOptionEntry entries[] = {
        {"config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path,
         "Configuration file (default " PROXD_SYSCONFDIR "/proxd/proxd.conf)", "FILE"},
        {"role", 'r', 0, G_OPTION_ARG_STRING, &role,
         "person or beacon; overrides [General] Role (default person)", "ROLE"},
        {"adapter", 'a', 0, G_OPTION_ARG_STRING, &adapter,
         "Bluetooth adapter to use, e.g. hci1; overrides [General] Adapter (default: the first "
         "powered adapter)",
         "hciN"},
        {"state-dir", 's', 0, G_OPTION_ARG_FILENAME, &state_dir,
         "Directory of the store (" STORE_FILE "); overrides [General] StateDirectory (default "
         "$STATE_DIRECTORY, else " PROXD_LOCALSTATEDIR "/lib/proxd)",
         "DIR"},
        {"session", 0, 0, G_OPTION_ARG_NONE, &session,
         "Use the session bus instead of the system bus (tests, simulations); BlueZ must be on "
         "the same bus",
         NULL},
        {"bus-name", 0, 0, G_OPTION_ARG_STRING, &bus_name,
         "Well-known name to own (default " PROXD_DEFAULT_BUS_NAME
         "); several simulated devices sharing one bus need one each",
         "NAME"},
        {"verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Log debug messages", NULL},
        {"version", 'V', 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL},
        {NULL},
    };

    g_autoptr(GOptionContext) context =
        g_option_context_new("- Bluetooth LE exposure notification service");
    g_option_context_add_main_entries(context, entries, NULL);
    g_option_context_set_description(context, description);
    if (!g_option_context_parse(context, &argc, &argv, &error)) {
        g_printerr("proxd: %s\nTry 'proxd --help'.\n", error->message);
        return EXIT_USAGE;
    }
    if (argc > 1) {
        g_printerr("proxd: unexpected argument '%s'\nTry 'proxd --help'.\n", argv[1]);
        return EXIT_USAGE;
    }
    if (version) {
        g_print("proxd %s\n", PROXD_VERSION);
        return EXIT_OK;
    }
    if (verbose)
        g_log_set_debug_enabled(TRUE);
    if (!session && g_strcmp0(g_getenv("PROXD_BUS"), "session") == 0)
        session = TRUE;
    if (bus_name == NULL)
        bus_name = g_strdup(g_getenv("PROXD_BUS_NAME"));
    if (bus_name == NULL || bus_name[0] == '\0') {
        g_free(bus_name);
        bus_name = g_strdup(PROXD_DEFAULT_BUS_NAME);
    }
    if (!g_dbus_is_name(bus_name) || g_dbus_is_unique_name(bus_name)) {
        g_printerr("proxd: --bus-name=%s is not a valid well-known bus name\n", bus_name);
        return EXIT_USAGE;
    }

    ProxdOverrides overrides = {.role = role, .adapter = adapter, .state_dir = state_dir};
    g_autoptr(ProxdConfig) config = proxd_config_new(config_path, &overrides, &error);
    if (config == NULL) {
        g_printerr("proxd: %s\n", error->message);
        return EXIT_USAGE;
    }
    const ProxdSettings *settings = proxd_config_get(config);

    g_autoptr(ProxdClock) clock = proxd_clock_new(&error);
    if (clock == NULL) {
        g_printerr("proxd: %s\n", error->message);
        return EXIT_USAGE;
    }

    g_autoptr(ProxStore) store = open_store(settings, &error);
    if (store == NULL) {
        g_critical("cannot open the store: %s", error->message);
        return EXIT_RUNTIME;
    }

    g_autoptr(ProxdSync) sync = create_sync(settings, clock, &error);
    if (sync == NULL && error != NULL) {
        g_critical("cannot set up the key-list sync: %s", error->message);
        return EXIT_USAGE;
    }

    g_autoptr(GDBusConnection) connection =
        g_bus_get_sync(session ? G_BUS_TYPE_SESSION : G_BUS_TYPE_SYSTEM, NULL, &error);
    if (connection == NULL) {
        g_critical("cannot connect to the %s bus: %s", session ? "session" : "system",
                   error->message);
        return EXIT_RUNTIME;
    }
    g_dbus_connection_set_exit_on_close(connection, FALSE);

    g_message("proxd %s, role %s, %s bus", PROXD_VERSION, proxd_role_to_string(settings->role),
              session ? "session" : "system");

    g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
    Daemon d = {.loop = loop, .config = config, .bus_name = bus_name, .exit_code = EXIT_OK};

    g_autoptr(ProxdManager) manager =
        proxd_manager_new(connection, config, clock, store, sync, &error);
    if (manager == NULL) {
        g_critical("cannot export the advertisement object: %s", error->message);
        return EXIT_RUNTIME;
    }
    d.manager = manager;
    proxd_manager_load(manager);
    if (!g_dbus_interface_skeleton_export(G_DBUS_INTERFACE_SKELETON(manager), connection,
                                          PROXD_MANAGER_OBJECT_PATH, &error)) {
        g_critical("cannot export %s: %s", PROXD_MANAGER_OBJECT_PATH, error->message);
        return EXIT_RUNTIME;
    }

    gulong closed_id = g_signal_connect(connection, "closed", G_CALLBACK(on_connection_closed), &d);
    guint sigterm_id = g_unix_signal_add(SIGTERM, on_quit_signal, &d);
    guint sigint_id = g_unix_signal_add(SIGINT, on_quit_signal, &d);
    guint sighup_id = g_unix_signal_add(SIGHUP, on_sighup, &d);
    guint lost_id = g_dbus_connection_signal_subscribe(
        connection, "org.freedesktop.DBus", "org.freedesktop.DBus", "NameLost",
        "/org/freedesktop/DBus", bus_name, G_DBUS_SIGNAL_FLAGS_NONE, on_name_lost, &d, NULL);
    if (!request_name(connection, bus_name, &error)) {
        g_critical("%s", error->message);
        g_dbus_connection_signal_unsubscribe(connection, lost_id);
        g_source_remove(sigterm_id);
        g_source_remove(sigint_id);
        g_source_remove(sighup_id);
        g_signal_handler_disconnect(connection, closed_id);
        return EXIT_RUNTIME;
    }
    g_message("owns %s on the bus; starting", bus_name);
    g_idle_add(on_start, &d);

    g_main_loop_run(loop);

    /* Shutdown: store what is pending and leave BlueZ tidy before the name goes. Signals
     * from here on cannot cut it short (a third one can). */
    catch_signals_for_shutdown(&sigterm_id, &sigint_id, &sighup_id);
    /* Logged once the handlers above are in place: a signal sent after this line is seen. */
    g_message("stopping");
    proxd_manager_shutdown(manager);
    if (sync != NULL) {
        /* A run holds its own store connection in a worker thread: let it end first. */
        proxd_sync_cancel(sync);
        while (proxd_sync_is_running(sync))
            g_main_context_iteration(NULL, TRUE);
    }
    g_dbus_connection_signal_unsubscribe(connection, lost_id);
    g_dbus_interface_skeleton_unexport(G_DBUS_INTERFACE_SKELETON(manager));
    g_signal_handler_disconnect(connection, closed_id);
    if (!g_dbus_connection_is_closed(connection) &&
        !g_dbus_connection_flush_sync(connection, NULL, &error))
        g_debug("flushing the bus connection: %s", error->message);
    g_message("stopped");
    return d.exit_code;
}
