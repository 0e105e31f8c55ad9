/* sim-launch.h - launching the processes of a simulated world: a private dbus-daemon and
 * children on it (fake-bluez, proxd, the authority's programs) that share one simulated
 * clock (PROX_SIM_CLOCK) and die with their parent (PR_SET_PDEATHSIG). prox-sim's world
 * (tools/sim-world.c) and the integration tests' harness (tests/integration/harness.c) both
 * build on it.
 *
 * Nothing here sleeps: every wait iterates the default main context until a D-Bus signal or
 * a process exit makes its condition true; timeouts only bound failures.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* How long a child gets to exit on SIGTERM before it is killed. */
#define SIM_LAUNCH_EXIT_TIMEOUT_MS 10000

typedef gboolean (*SimLaunchCondition)(gpointer user_data);

/* Iterates the default main context until `cond` holds (TRUE). FALSE when `stop` (may be
 * NULL) holds first, or after `timeout_ms`. */
gboolean sim_launch_wait(SimLaunchCondition cond, gpointer cond_data, SimLaunchCondition stop,
                         gpointer stop_data, guint timeout_ms);

/* ---- the bus ---- */

/* A session-like bus configuration listening in `dir`: anyone may own any name and send
 * (and eavesdrop) anything. */
char *sim_launch_bus_config(const char *dir);
/* Starts a dbus-daemon with `config` (configuration text, written to dir/bus.conf); *address
 * gets the address it listens on and *connection (optional) a message-bus connection to it.
 * The daemon dies with this process. */
GSubprocess *sim_launch_bus(const char *dir, const char *config, char **address,
                            GDBusConnection **connection, GError **error);

/* ---- children ---- */

/* A launcher for a child of the world: DBUS_SESSION_BUS_ADDRESS=`bus_address` (NULL: this
 * process's), PROX_SIM_CLOCK=`clock` (NULL: this process's), TZ=UTC, no PROXD_BUS_NAME or
 * PROXD_BUS (the world's proxd are told their name and bus explicitly), SIGTERM when this
 * process dies. With a `log_path`, stdout and stderr go to that file. */
GSubprocessLauncher *sim_launch_launcher(GSubprocessFlags flags, const char *bus_address,
                                         const char *clock, const char *log_path);

/* proxd's command line in a world: on the session bus (the world's) as `bus_name`, on
 * hci<adapter>, with `state_dir` and the configuration file `config_path`; `role` NULL
 * leaves the role to the configuration. Free with g_strfreev(). */
char **sim_launch_proxd_argv(const char *proxd, const char *bus_name, guint adapter,
                             const char *state_dir, const char *config_path, const char *role,
                             gboolean verbose);

/* Waits until `name` has an owner on `connection` (`owned`) or has none (!`owned`). FALSE
 * after `timeout_ms`, when `stop` (may be NULL) holds, or when `owner` (may be NULL), the
 * process that should own the name, exits first. */
gboolean sim_launch_wait_name(GDBusConnection *connection, const char *name, gboolean owned,
                              GSubprocess *owner, SimLaunchCondition stop, gpointer stop_data,
                              guint timeout_ms);

/* ---- ends ---- */

/* An exited child's status: its exit status, or 128 + the signal that ended it. */
int sim_launch_status(GSubprocess *process);
/* Stops a child: SIGTERM (unless `signalled`: the caller sent it already), waits for its
 * exit, SIGKILL after SIM_LAUNCH_EXIT_TIMEOUT_MS (saying so on stderr, as `name`). Returns
 * its status (sim_launch_status()). */
int sim_launch_stop(GSubprocess *process, const char *name, gboolean signalled);

/* The last `max_lines` lines of a log file (G_MAXUINT: all), each after `indent`; NULL when
 * the file cannot be read. */
char *sim_launch_log_tail(const char *path, guint max_lines, const char *indent);
/* rm -r `path` (a world's directory); symbolic links are removed, not followed. */
void sim_launch_remove_tree(const char *path);

G_END_DECLS
