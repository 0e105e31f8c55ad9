/* prox-tool.h - subcommands of the offline prox-tool, one file each. */
#pragma once

#include <glib.h>

/* Exit codes shared by every subcommand. */
#define PROX_TOOL_EXIT_OK 0
#define PROX_TOOL_EXIT_FAILURE 1 /* the operation ran and failed (e.g. bad signature) */
#define PROX_TOOL_EXIT_USAGE 2   /* bad arguments: one-line error on stderr */

/* Each takes argv starting at its own name (argv[0] = "derive", ...). */
int prox_tool_derive_main(int argc, char **argv);
int prox_tool_export_main(int argc, char **argv);
int prox_tool_bench_main(int argc, char **argv);
int prox_tool_beacon_main(int argc, char **argv);

/* Prints "prox-tool: <message>" and a hint to use --help on stderr; returns
 * PROX_TOOL_EXIT_USAGE so callers can `return prox_tool_usage_error(...)`. */
int prox_tool_usage_error(const char *command, const char *format, ...) G_GNUC_PRINTF(2, 3);

/* Parses argv with a GOptionContext whose help describes the subcommand;
 * on a parse error prints a one-line message and returns FALSE. */
gboolean prox_tool_parse_options(GOptionContext *context, const char *command, int *argc,
                                 char ***argv);

/* Reports a failed operation ("prox-tool COMMAND: message") on stderr; returns
 * PROX_TOOL_EXIT_FAILURE so callers can `return prox_tool_fail(...)`. */
int prox_tool_fail(const char *command, const GError *error);

/* A GOptionContext for a subcommand: --help shows "Usage: prox-tool COMMAND PARAMETERS"
 * (COMMAND as "export verify") rather than the bare subcommand. PARAMETERS may be NULL. */
GOptionContext *prox_tool_option_context(const char *command, const char *parameters,
                                         const char *summary, const char *description,
                                         const GOptionEntry *entries);

/* "2020-05-22T15:00:00Z", or "-" for a time GDateTime cannot represent. */
char *prox_tool_format_utc(gint64 t);

typedef struct {
    const char *name;
    int (*main)(int argc, char **argv);
} ProxToolSubcommand;

/* Runs the subcommand argv[1] names of COMMAND (argv[0]), passing it argv from its own name;
 * --help, -h and help print USAGE on stdout. A missing or unknown subcommand is a usage
 * error. */
int prox_tool_run_subcommand(const char *command, const char *usage,
                             const ProxToolSubcommand *subcommands, gsize n_subcommands, int argc,
                             char **argv);
