/* prox-tool.c - offline proxd tool: derive IDs, inspect and sign key lists, benchmarks, bus
 * beacon trip logs and tracing. */
#define G_LOG_DOMAIN "prox-tool"

#include "prox-tool.h"

#include <locale.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
} ProxToolCommand;

static const ProxToolCommand commands[] = {
    {"derive", prox_tool_derive_main, "print the RPI and AEM of a TEK for a range of intervals"},
    {"export", prox_tool_export_main,
     "key-list files: verify, dump, sign, keygen (see 'prox-tool export --help')"},
    {"bench", prox_tool_bench_main, "benchmarks (see 'prox-tool bench --help')"},
    {"beacon", prox_tool_beacon_main,
     "bus beacon operators: trip log, trace F0 keys into warnings (see 'prox-tool beacon "
     "--help')"},
};

static void print_usage(FILE *out)
{
    fprintf(out, "Usage: prox-tool COMMAND [OPTION...]\n\n"
                 "Offline tool for proxd: GAEN key derivation, key-list (export.zip) inspection,\n"
                 "signing and verification, benchmarks, and a bus beacon's trip log and tracing.\n"
                 "It never touches the network; only 'beacon' reads a proxd store (never\n"
                 "changing what it recorded).\n\nCommands:\n");
    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'prox-tool COMMAND --help' for the options of a command.\n"
                 "Exit status: 0 success, 1 the operation failed, 2 bad arguments.\n");
}

int prox_tool_usage_error(const char *command, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    g_autofree char *message = g_strdup_vprintf(format, args);
    va_end(args);
    fprintf(stderr, "prox-tool %s: %s (try 'prox-tool %s --help')\n", command, message, command);
    return PROX_TOOL_EXIT_USAGE;
}

gboolean prox_tool_parse_options(GOptionContext *context, const char *command, int *argc,
                                 char ***argv)
{
    g_autoptr(GError) error = NULL;
    if (!g_option_context_parse(context, argc, argv, &error)) {
        prox_tool_usage_error(command, "%s", error->message);
        return FALSE;
    }
    return TRUE;
}

int prox_tool_fail(const char *command, const GError *error)
{
    fprintf(stderr, "prox-tool %s: %s\n", command, error->message);
    return PROX_TOOL_EXIT_FAILURE;
}

GOptionContext *prox_tool_option_context(const char *command, const char *parameters,
                                         const char *summary, const char *description,
                                         const GOptionEntry *entries)
{
    g_autofree char *prgname = g_strdup_printf("prox-tool %s", command);
    g_set_prgname(prgname);
    GOptionContext *context = g_option_context_new(parameters);
    g_option_context_set_summary(context, summary);
    g_option_context_set_description(context, description);
    g_option_context_add_main_entries(context, entries, NULL);
    return context;
}

char *prox_tool_format_utc(gint64 t)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(t);
    return dt != NULL ? g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ") : g_strdup("-");
}

int prox_tool_run_subcommand(const char *command, const char *usage,
                             const ProxToolSubcommand *subcommands, gsize n_subcommands, int argc,
                             char **argv)
{
    if (argc < 2) {
        g_autoptr(GString) names = g_string_new(NULL);
        for (gsize i = 0; i < n_subcommands; i++)
            g_string_append_printf(names, "%s%s", i > 0 ? ", " : "", subcommands[i].name);
        return prox_tool_usage_error(command, "missing subcommand (%s)", names->str);
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, stdout);
        return PROX_TOOL_EXIT_OK;
    }
    for (gsize i = 0; i < n_subcommands; i++) {
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].main(argc - 1, argv + 1);
    }
    return prox_tool_usage_error(command, "unknown subcommand '%s'", argv[1]);
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    if (argc < 2) {
        print_usage(stderr);
        return PROX_TOOL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return PROX_TOOL_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("prox-tool %s\n", PROXD_VERSION);
        return PROX_TOOL_EXIT_OK;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].main(argc - 1, argv + 1);
    }
    fprintf(stderr, "prox-tool: unknown command '%s' (try 'prox-tool --help')\n", argv[1]);
    return PROX_TOOL_EXIT_USAGE;
}
