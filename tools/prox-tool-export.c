/* prox-tool-export.c - placeholder until the subcommand lands. */
#include "prox-tool.h"

int prox_tool_export_main(int argc, char **argv)
{
    return prox_tool_usage_error(argv[0], "not built yet");
}
