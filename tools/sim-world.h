/* sim-world.h - the processes of a simulated world: a private dbus-daemon, fake-bluez
 * playing a scenario, one proxd per device, all on one PROX_SIM_CLOCK; plus the
 * authority's programs for the demo's ending.
 *
 * Every wait iterates the main context until a D-Bus signal, a process exit or a file
 * change makes its condition true (the timeout only bounds failures); the one timer is
 * waiting for the simulated clock to reach a time. Every child gets PR_SET_PDEATHSIG, and
 * sim_world_free() terminates whatever is still running, so no path leaves processes
 * behind. SIGINT/SIGTERM to prox-sim end the current wait with an error.
 */
#pragma once

#include <gio/gio.h>

#include "prox-sim-clock.h"
#include "sim-launch.h"
#include "sim-scenario.h"

G_BEGIN_DECLS

/* Programs prox-sim runs, found next to it in a build tree or where meson installs them;
 * each can be overridden from the environment (PROX_SIM_PROXD, PROX_SIM_FAKE_BLUEZ,
 * PROX_SIM_AUTHORITY, PROX_SIM_KEYSERVER). */
typedef struct {
    char *proxd;
    char *fake_bluez;
    char *authority;
    char *keyserver;
} SimTools;

gboolean sim_tools_find(SimTools *tools, GError **error);
void sim_tools_clear(SimTools *tools);

typedef struct {
    char *name;
    char *log_path;
    GSubprocess *process;
    gboolean stopping; /* SIGTERM sent: its exit is not a failure */
    gboolean exited;
    int status; /* exit status, or 128 + signal; valid when exited */
} SimProcess;

typedef struct {
    const SimDevice *device; /* borrowed from the ride */
    char *bus_name;
    char *state_dir;
    char *db_path;
    SimProcess *process;
    GDBusProxy *proxy; /* org.proxd.Manager1 */
} SimDaemon;

typedef struct {
    char *dir;
    char *log_dir;
    const SimTools *tools;
    gboolean verbose;
    double speed;
    ProxSimClock clock;
    char *clock_spec; /* PROX_SIM_CLOCK of every process of the world */

    SimProcess *bus;
    char *bus_address;
    GDBusConnection *connection;
    SimProcess *fake;
    char *scenario_path;
    char *truth_path;
    GPtrArray *daemons;   /* SimDaemon */
    GPtrArray *processes; /* SimProcess, every child ever started (owned) */

    gboolean interrupted;
    guint sigint_id, sigterm_id;
} SimWorld;

/* A world in `dir` (must exist). The simulated clock starts when the bus is started. */
SimWorld *sim_world_new(const char *dir, const SimTools *tools, double speed, gboolean verbose);
/* Terminates every child still running (SIGTERM, SIGKILL after a grace period). */
void sim_world_free(SimWorld *world);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SimWorld, sim_world_free)

/* A private dbus-daemon; starts the simulated clock at `sim_start` (unix seconds). Again
 * after sim_world_stop_radio(), a new bus (and clock) replaces the old one. */
gboolean sim_world_start_bus(SimWorld *world, gint64 sim_start, GError **error);
/* fake-bluez playing `scenario_json`, with a truth log; waits for its control name. */
gboolean sim_world_start_fake(SimWorld *world, const char *scenario_json, guint32 seed,
                              GError **error);
/* One proxd per device of the ride, each on its own adapter, bus name and state dir;
 * waits until every one is active and advertising. */
gboolean sim_world_start_daemons(SimWorld *world, const SimRide *ride, GError **error);
/* Simulated unix seconds now. */
double sim_world_now(SimWorld *world);
/* Waits until the simulated clock reaches `sim_time`; fails if a child exits meanwhile. */
gboolean sim_world_wait_sim_time(SimWorld *world, double sim_time, GError **error);
/* SIGTERM to every proxd (they commit what they heard), waits, checks clean exits. */
gboolean sim_world_stop_daemons(SimWorld *world, GError **error);
/* SIGTERM to fake-bluez and the bus (the truth log is complete afterwards). */
gboolean sim_world_stop_radio(SimWorld *world, GError **error);

/* Starts a program of the world with the world's clock and bus in its environment
 * (`env_clock` replaces the clock when not NULL); output goes to log_dir/NAME.log. */
SimProcess *sim_world_spawn(SimWorld *world, const char *name, const char *env_clock,
                            const char *const *argv, GError **error);
/* Runs a program to its end; *out (optional) gets its stdout. Fails on a non-zero exit,
 * with the program's stderr in the message. */
gboolean sim_world_run(SimWorld *world, const char *env_clock, const char *const *argv, char **out,
                       GError **error);
/* Sends SIGTERM and waits for the exit (SIGKILL after a grace period). */
void sim_world_terminate(SimWorld *world, SimProcess *p);

typedef gboolean (*SimCondition)(gpointer user_data);
/* Iterates the main context until `cond` holds; errors on timeout, interruption, or when
 * a child of the world exited unexpectedly (`what` names the wait in the message). */
gboolean sim_world_wait(SimWorld *world, SimCondition cond, gpointer user_data, guint timeout_ms,
                        const char *what, GError **error);
/* Waits until `path` exists. */
gboolean sim_world_wait_file(SimWorld *world, const char *path, guint timeout_ms, GError **error);
/* Waits until `name` has an owner on the world's bus. */
gboolean sim_world_wait_name(SimWorld *world, const char *name, GError **error);

/* The last `max_lines` lines of a child's log, for error messages. */
char *sim_process_log_tail(const SimProcess *p, guint max_lines);

G_END_DECLS
