#define G_LOG_DOMAIN "fake-bluez"

/* fake-bluez: a BlueZ 5.66 look-alike on a private D-Bus with a simulated radio world.
 * See README.md beside this file. */

#include <glib-unix.h>
#include <locale.h>
#include <stdlib.h>

#include "fake-bluez.h"

static gboolean on_signal(gpointer user_data)
{
    fb_world_shutdown(user_data);
    return G_SOURCE_CONTINUE;
}

int main(int argc, char **argv)
{
    g_autofree char *bus_address = NULL;
    g_autofree char *scenario_path = NULL;
    g_autofree char *truth_log = NULL;
    gint64 seed = 1;
    gint adv_delay_ms = 100;
    double max_rate = 4.0;
    gboolean verbose = FALSE;
    const GOptionEntry entries[] = {
        {"bus-address", 0, 0, G_OPTION_ARG_STRING, &bus_address,
         "D-Bus address of the bus to serve (default: the session bus)", "ADDRESS"},
        {"scenario", 0, 0, G_OPTION_ARG_FILENAME, &scenario_path,
         "JSON scenario: devices, radio parameters, positions over time", "FILE"},
        {"seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Seed of the radio noise (default 1)", "N"},
        {"truth-log", 0, 0, G_OPTION_ARG_FILENAME, &truth_log,
         "Append every report heard over the air to FILE as JSON lines", "FILE"},
        {"adv-manager-delay", 0, 0, G_OPTION_ARG_INT, &adv_delay_ms,
         "Milliseconds between Adapter1 and LEAdvertisingManager1 appearing (default 100)", "MS"},
        {"max-report-rate", 0, 0, G_OPTION_ARG_DOUBLE, &max_rate,
         "Reports per advertisement per scanner per real second before thinning (default 4)", "N"},
        {"verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Log every world event", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL}};
    g_autoptr(GOptionContext) context = g_option_context_new("- fake BlueZ radio world");
    g_autoptr(GError) error = NULL;
    FbScenario *scenario;
    ProxSimClock clock;
    FbOptions opts;
    FbWorld *world;
    guint term_id, int_id;
    int status;

    setlocale(LC_ALL, "");
    g_option_context_add_main_entries(context, entries, NULL);
    g_option_context_set_description(
        context, "Environment: PROX_SIM_CLOCK=<real_unix_start>:<sim_unix_start>:<speed>\n");
    if (!g_option_context_parse(context, &argc, &argv, &error)) {
        g_printerr("fake-bluez: %s\n", error->message);
        return 2;
    }
    if (argc > 1 || seed < 0 || adv_delay_ms < 0 || !(max_rate > 0)) {
        g_printerr("fake-bluez: bad arguments (see --help)\n");
        return 2;
    }
    if (verbose)
        g_setenv("G_MESSAGES_DEBUG", G_LOG_DOMAIN, TRUE);
    if (!prox_sim_clock_init_from_env(&clock, &error)) {
        g_printerr("fake-bluez: %s\n", error->message);
        return 2;
    }
    scenario = scenario_path != NULL ? fb_scenario_load(scenario_path, &error) : fb_scenario_new();
    if (scenario == NULL) {
        g_printerr("fake-bluez: %s\n", error->message);
        return 2;
    }
    opts = (FbOptions){
        .bus_address = bus_address,
        .scenario_path = scenario_path,
        .truth_log_path = truth_log,
        .seed = (guint64)seed,
        .adv_manager_delay_ms = (guint)adv_delay_ms,
        .max_report_rate = max_rate,
    };
    world = fb_world_new(&opts, &clock, scenario, &error);
    if (world == NULL) {
        g_printerr("fake-bluez: %s\n", error->message);
        return 1;
    }
    if (!fb_world_start(world, &error)) {
        g_printerr("fake-bluez: %s\n", error->message);
        fb_world_free(world);
        return 1;
    }
    term_id = g_unix_signal_add(SIGTERM, on_signal, world);
    int_id = g_unix_signal_add(SIGINT, on_signal, world);
    status = fb_world_run(world);
    g_source_remove(term_id);
    g_source_remove(int_id);
    fb_world_free(world);
    return status;
}
