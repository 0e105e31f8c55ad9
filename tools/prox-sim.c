/* prox-sim.c - the simulated-world demo: a bus ride in the fake radio world with a real
 * proxd per device, what each device recorded, and a positive test the next day. */
#define G_LOG_DOMAIN "prox-sim"

#include <errno.h>
#include <gio/gio.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim-ending.h"
#include "sim-report.h"
#include "sim-scenario.h"
#include "sim-world.h"

enum {
    EXIT_OK = 0,
    EXIT_FAILED = 1, /* a step failed, or the recording / alerts were not as expected */
    EXIT_USAGE = 2,
};

/* Default speed: with ten passengers the 34 simulated minutes take about 40 s. Faster
 * means more radio reports per real second: fake-bluez delivers at least one per pair per
 * simulated second, so the D-Bus traffic grows with passengers^2 x speed (each proxd
 * receives only its own adapter's Device1 signals: bus match rules on its adapter path).
 * Twenty passengers at the default 13x cost about 15 s of CPU time in all (110 s before the
 * match rules); more passengers still get a proportionally lower default speed so a shared
 * 2-core machine keeps up with the clock. */
#define DEFAULT_SPEED 50.0
#define DEFAULT_SPEED_PASSENGERS 10
#define MIN_DEFAULT_SPEED 10.0
#define MIN_SPEED 1.0
#define MAX_SPEED 120.0

/* --verbose: let the libraries' routine messages through (see log_writer). */
static gboolean verbose_logs;

static const char summary[] =
    "Commands:\n"
    "  bus-ride    a 30-minute bus ride, time-compressed: a bus beacon and passengers,\n"
    "              each running proxd against a simulated Bluetooth radio; then what\n"
    "              each device recorded; then a positive test and the alerts it causes\n"
    "\n"
    "Run 'prox-sim bus-ride --help' for the ride's options.";

static const char ride_description[] =
    "Plays a bus ride in a simulated radio world, with no Bluetooth hardware, and shows\n"
    "what proxd records and whom it alerts.\n"
    "\n"
    "THE RIDE\n"
    "  A bus with a proxd beacon at the front (proxd --role=beacon) drives four stops in\n"
    "  30 simulated minutes (07:03 to 07:33 UTC). Passengers board at the first two stops,\n"
    "  sit 0.5 to 9 m apart, two get off early, everyone leaves at the terminus. Each\n"
    "  device is one real proxd process with its own adapter (hciN), D-Bus name\n"
    "  (org.proxd.sim.NAME) and store, on a private dbus-daemon, against fake-bluez, which\n"
    "  plays BlueZ 5.66 and the radio: positions over time, RSSI from a path-loss model\n"
    "  with noise. Every process follows one simulated clock (PROX_SIM_CLOCK) running\n"
    "  --speed times faster than real time. prox-sim waits on D-Bus until every proxd is\n"
    "  active and advertising, then follows the clock to the end of the ride; if the\n"
    "  daemons fall behind the clock (too busy a machine for the speed), the report says\n"
    "  so and the run fails.\n"
    "\n"
    "THE REPORT\n"
    "  After the ride every proxd is stopped with SIGTERM (it commits what it heard) and\n"
    "  prox-sim reads each store with libprox: for every device, the distinct IDs it heard,\n"
    "  from whom, when and for how long, the strongest signal and the rough distance it\n"
    "  means; for the beacon, occupancy per 10 minutes. Stores hold anonymous rotating IDs\n"
    "  only: names come from the fake radio's ground-truth log (fake-bluez --truth-log).\n"
    "\n"
    "THE ENDING\n"
    "  The next morning (simulated), lan, in seat 1A, tests positive. prox-authority\n"
    "  issues a one-time code, prox-keyserver listens on 127.0.0.1, and every device runs\n"
    "  proxd again on its store, on a new private bus. The evening before, lan and two\n"
    "  riders had checked in at a restaurant from its QR poster (prox-authority venue\n"
    "  register; CheckIn over D-Bus, as proxctl checkin does). lan's proxd reports through\n"
    "  PreviewReport/Report over D-Bus (as proxctl report does): her daily keys and the\n"
    "  check-in she confirms go to the key server with the code. prox-authority publishes\n"
    "  a signed key list into a directory; each proxd syncs through Sync over D-Bus (as\n"
    "  proxctl sync does; file:// here), verifies the list and runs exposure detection on\n"
    "  its own store. The passengers who sat within 2 m of lan for 20 minutes or more must\n"
    "  get a high-risk alert, those never within 4 m and lan herself must not; and then\n"
    "  bus and venue warnings: the rider who was at the restaurant with her for 15 minutes\n"
    "  must get a venue warning, the one there for 5 minutes must not; the bus operator\n"
    "  traces the published list against the beacon's store (prox-tool beacon trace), the\n"
    "  authority imports and publishes the bus's warning, every proxd syncs again, and the\n"
    "  riders aboard with lan for 15 minutes or more must get a same-vehicle warning.\n"
    "  Otherwise prox-sim exits with status 1, so the demo is also a test (meson test\n"
    "  --suite demo).\n"
    "\n"
    "EXIT STATUS\n"
    "  0  the ride was recorded as expected and the alerts were the expected ones\n"
    "  1  a step failed, or a recording or an alert was not as expected\n"
    "  2  invalid options\n"
    "\n"
    "FILES\n"
    "  Everything lives in a temporary directory, removed at the end unless --keep is\n"
    "  given or something failed: bus-ride.json (the fake-bluez scenario), truth.jsonl\n"
    "  (every radio report), devices/NAME/proxd.db (each store), logs/*.log (every\n"
    "  process), authority/ (the authority's database and keys), published/ (key lists).\n"
    "\n"
    "ENVIRONMENT\n"
    "  PROX_SIM_PROXD, PROX_SIM_FAKE_BLUEZ, PROX_SIM_AUTHORITY, PROX_SIM_KEYSERVER\n"
    "      paths of the programs to run. Default: the ones built next to prox-sim when it\n"
    "      runs from a build tree, else the installed ones (fake-bluez in\n"
    "      " PROX_SIM_LIBEXECDIR "/proxd).\n"
    "\n"
    "EXAMPLES\n"
    "  prox-sim bus-ride\n"
    "  prox-sim bus-ride --passengers 20 --keep /tmp/ride     (about 3 minutes)\n"
    "  sqlite3 /tmp/ride/devices/minh/proxd.db 'select count(*) from sightings'";

static int usage_error(const char *message)
{
    g_printerr("prox-sim: %s\nTry 'prox-sim bus-ride --help'.\n", message);
    return EXIT_USAGE;
}

static void print_cast(const SimRide *ride)
{
    g_print("Seating plan (front of the bus at the top; the beacon is by the driver):\n");
    guint max_row = 0;
    for (guint i = 1; i < ride->devices->len; i++) {
        const SimDevice *d = sim_ride_device(ride, i);
        max_row = MAX(max_row, (guint)atoi(d->seat));
    }
    g_print("        A          B            C          D\n");
    for (guint row = 1; row <= max_row; row++) {
        const char *names[4] = {"", "", "", ""};
        for (guint i = 1; i < ride->devices->len; i++) {
            const SimDevice *d = sim_ride_device(ride, i);
            if ((guint)atoi(d->seat) == row)
                names[d->seat[strlen(d->seat) - 1] - 'A'] = d->name;
        }
        g_print("  %2u  %-10s %-10s | %-10s %-10s\n", row, names[0], names[1], names[2], names[3]);
    }
    g_print("\n");
}

static void print_stop(const SimRide *ride, guint stop)
{
    g_autofree char *when = sim_format_clock(ride->epoch + ride->stops[stop].t);
    GString *on = g_string_new(NULL);
    GString *off = g_string_new(NULL);
    for (guint i = 1; i < ride->devices->len; i++) {
        const SimDevice *d = sim_ride_device(ride, i);
        GString *list = d->board_stop == stop ? on : d->leave_stop == stop ? off : NULL;
        if (list != NULL)
            g_string_append_printf(list, "%s%s", list->len > 0 ? ", " : "", d->name);
    }
    g_print("  %s  %-22s", when, ride->stops[stop].name);
    if (on->len > 0)
        g_print(" on: %s", on->str);
    if (off->len > 0)
        g_print("%s off: %s", on->len > 0 ? ";" : "", off->str);
    g_print("\n");
    g_string_free(on, TRUE);
    g_string_free(off, TRUE);
}

typedef struct {
    guint passengers;
    double speed;
    guint32 seed;
    const char *keep;
    gboolean verbose;
    gboolean no_ending;
} RideOptions;

static gboolean play(SimWorld *world, const SimRide *ride, const RideOptions *o, gint64 t0,
                     gboolean *checks_ok, GError **error)
{
    g_autofree char *scenario = sim_ride_scenario_json(ride);
    if (!sim_world_start_bus(world, ride->epoch, error) ||
        !sim_world_start_fake(world, scenario, o->seed, error) ||
        !sim_world_start_daemons(world, ride, error))
        return FALSE;
    g_autofree char *ready_at = sim_format_clock((gint64)sim_world_now(world));
    g_print("  %s  %u proxd running: %u people, 1 beacon; all advertising (%.1f s)\n", ready_at,
            world->daemons->len, o->passengers, (g_get_monotonic_time() - t0) / 1e6);
    if (sim_world_now(world) > ride->epoch + ride->stops[0].t - 10)
        g_print("         (late: this machine is busy; the first stop was partly missed - try a "
                "lower --speed)\n");
    for (guint stop = 0; stop < ride->n_stops; stop++) {
        if (!sim_world_wait_sim_time(world, ride->epoch + ride->stops[stop].t, error))
            return FALSE;
        print_stop(ride, stop);
    }
    if (!sim_world_wait_sim_time(world, ride->epoch + ride->end, error))
        return FALSE;
    g_autofree char *end_at = sim_format_clock((gint64)sim_world_now(world));
    g_print("  %s  end of the simulation: every proxd gets SIGTERM and stores what it heard\n",
            end_at);
    if (!sim_world_stop_daemons(world, error) || !sim_world_stop_radio(world, error))
        return FALSE;
    g_print("  (ride took %.1f s of real time)\n", (g_get_monotonic_time() - t0) / 1e6);

    g_autoptr(GHashTable) truth = sim_truth_load(world->truth_path, error);
    gboolean plausible = FALSE;
    if (truth == NULL || !sim_report_ride(world, ride, truth, o->verbose, &plausible, error))
        return FALSE;
    *checks_ok = plausible;

    if (!o->no_ending) {
        gboolean passed = FALSE;
        if (!sim_ending_run(world, ride, &passed, error))
            return FALSE;
        *checks_ok = *checks_ok && passed;
    }
    return TRUE;
}

static gboolean ride(const RideOptions *o, const char *dir, gboolean *checks_ok, GError **error)
{
    gint64 t0 = g_get_monotonic_time();
    g_autoptr(SimRide) ride = sim_ride_new(o->passengers, o->seed);
    SimTools tools;
    if (!sim_tools_find(&tools, error))
        return FALSE;
    g_print("== A bus ride in a simulated radio world ==\n"
            "%u passengers and a bus beacon, each running proxd; 30 simulated minutes at %gx\n"
            "speed (about %.0f s). Files: %s\n\n",
            o->passengers, o->speed, ride->end / o->speed, dir);
    print_cast(ride);

    SimWorld *world = sim_world_new(dir, &tools, o->speed, o->verbose);
    gboolean ok = play(world, ride, o, t0, checks_ok, error);
    /* Whatever happened, no process of the world outlives this. */
    sim_world_free(world);
    sim_tools_clear(&tools);
    if (ok)
        g_print("\n%s in %.1f s.\n",
                *checks_ok ? "Done: everything as expected" : "FAILED: see the lines marked above",
                (g_get_monotonic_time() - t0) / 1e6);
    return ok;
}

static int cmd_bus_ride(int argc, char **argv)
{
    int passengers = SIM_PASSENGERS_DEFAULT;
    double speed = 0; /* 0: DEFAULT_SPEED, lower for more passengers */
    gint64 seed = 1;
    g_autofree char *keep = NULL;
    gboolean verbose = FALSE, no_ending = FALSE;
    GOptionEntry entries[] = {
        {"passengers", 'n', 0, G_OPTION_ARG_INT, &passengers,
         "Passengers on the bus, 4 to 40 (default 10)", "N"},
        {"speed", 0, 0, G_OPTION_ARG_DOUBLE, &speed,
         "Simulated seconds per real second, 1 to 120 (default 50 for up to 10 passengers, "
         "the ride takes ~40 s; lower for more)",
         "X"},
        {"seed", 0, 0, G_OPTION_ARG_INT64, &seed,
         "Seed of the radio noise and of the extra passengers' stops (default 1)", "S"},
        {"keep", 0, 0, G_OPTION_ARG_FILENAME, &keep,
         "Work in DIR (created if needed) and keep everything afterwards", "DIR"},
        {"no-ending", 0, 0, G_OPTION_ARG_NONE, &no_ending,
         "Stop after the ride's report (no positive test, no key server)", NULL},
        {"verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose,
         "List every device heard, log the programs started, run proxd with --verbose", NULL},
        {NULL},
    };
    g_set_prgname("prox-sim bus-ride");
    g_autoptr(GOptionContext) context = g_option_context_new("- the bus-ride demo");
    g_option_context_add_main_entries(context, entries, NULL);
    g_option_context_set_description(context, ride_description);
    g_autoptr(GError) error = NULL;
    if (!g_option_context_parse(context, &argc, &argv, &error))
        return usage_error(error->message);
    verbose_logs = verbose;
    if (argc > 1)
        return usage_error("bus-ride takes no arguments");
    if (passengers < SIM_PASSENGERS_MIN || passengers > SIM_PASSENGERS_MAX)
        return usage_error("--passengers must be 4 to 40");
    if (speed == 0) {
        double ratio = (double)DEFAULT_SPEED_PASSENGERS / MAX(passengers, DEFAULT_SPEED_PASSENGERS);
        speed = MAX(MIN_DEFAULT_SPEED, round(DEFAULT_SPEED * ratio * ratio));
    }
    if (!isfinite(speed) || speed < MIN_SPEED || speed > MAX_SPEED)
        return usage_error("--speed must be 1 to 120");
    if (seed < 0 || seed > G_MAXUINT32)
        return usage_error("--seed must be 0 to 4294967295");

    g_autofree char *dir = NULL;
    if (keep != NULL) {
        if (g_mkdir_with_parents(keep, 0700) != 0) {
            g_printerr("prox-sim: cannot create %s: %s\n", keep, g_strerror(errno));
            return EXIT_FAILED;
        }
        dir = g_canonicalize_filename(keep, NULL);
    } else {
        dir = g_dir_make_tmp("prox-sim-XXXXXX", &error);
        if (dir == NULL) {
            g_printerr("prox-sim: %s\n", error->message);
            return EXIT_FAILED;
        }
    }

    RideOptions o = {
        .passengers = (guint)passengers,
        .speed = speed,
        .seed = (guint32)seed,
        .keep = keep,
        .verbose = verbose,
        .no_ending = no_ending,
    };
    gboolean checks_ok = FALSE;
    gboolean ran = ride(&o, dir, &checks_ok, &error);
    if (!ran)
        g_printerr("\nprox-sim: %s\n", error->message);
    if (ran && checks_ok && keep == NULL) {
        sim_launch_remove_tree(dir);
    } else if (keep == NULL) {
        g_printerr("prox-sim: files kept for a look in %s\n", dir);
    }
    return ran && checks_ok ? EXIT_OK : EXIT_FAILED;
}

/* proxd's sync and report code log each run at message level, which is right for a daemon's
 * journal and noise in the demo's report: only warnings and worse, unless --verbose. */
static GLogWriterOutput log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields,
                                   gpointer user_data)
{
    if (!verbose_logs && (level & (G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG)))
        return G_LOG_WRITER_HANDLED;
    return g_log_writer_default(level, fields, n_fields, user_data);
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    /* Children inherit a line-buffered pipe: keep our lines in order with theirs. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    g_log_set_writer_func(log_writer, NULL, NULL);
    if (argc >= 2 && strcmp(argv[1], "bus-ride") == 0)
        return cmd_bus_ride(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        g_print("prox-sim %s\n", PROXD_VERSION);
        return EXIT_OK;
    }
    gboolean help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    if (argc < 2 || help) {
        g_print("Usage:\n  prox-sim COMMAND [OPTION...]\n\n"
                "proxd's simulated-world demo: real proxd processes, a simulated Bluetooth\n"
                "radio (fake-bluez), no hardware.\n\n%s\n",
                summary);
        return help ? EXIT_OK : EXIT_USAGE;
    }
    g_printerr("prox-sim: unknown command '%s'\n%s\n", argv[1], summary);
    return EXIT_USAGE;
}
