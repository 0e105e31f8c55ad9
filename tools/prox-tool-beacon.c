/* prox-tool-beacon.c - `prox-tool beacon`: a bus beacon operator's tools (docs/venues.md §6):
 * the trip log of a beacon's store, and tracing published F0 keys through it into
 * same-vehicle warnings for the authority. */
#define G_LOG_DOMAIN "prox-tool"

#include "prox-tool.h"

#include "prox-export.h"
#include "prox-hex.h"
#include "prox-match.h"
#include "prox-risk.h"
#include "prox-store.h"
#include "prox-venue.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

/* Matches less than this apart belong to one window (docs/venues.md §6). */
#define TRACE_JOIN_GAP_SECONDS (20 * 60)

static const char beacon_usage[] =
    "Usage: prox-tool beacon SUBCOMMAND [OPTION...]\n"
    "\n"
    "Tools for the operator of a bus beacon: a proxd in beacon role that logs the rotating\n"
    "IDs (RPIs) it hears (docs/venues.md). Both read the beacon's store (its proxd.db) and\n"
    "never change what it recorded.\n"
    "\n"
    "Subcommands:\n"
    "  trip-log --store DB [--since T] [--until T] [--json] [--rpis]\n"
    "        per 10-minute interval in service: scan seconds and distinct RPIs heard\n"
    "  trace --store DB --keys LIST.zip... --key PUBKEY [--out FILE]\n"
    "        match published F0 keys against the beacon's log and write the same-vehicle\n"
    "        warnings JSON for 'prox-authority warning import'\n"
    "\n"
    "Run 'prox-tool beacon SUBCOMMAND --help' for the options of a subcommand.\n"
    "Exit status: 0 success, 1 the operation failed (the reason is printed), 2 bad arguments.\n";

/* "@UNIXSECONDS" or ISO 8601 with a zone ("2020-05-20T08:00:00Z"). */
static gboolean parse_time(const char *option, const char *text, gint64 *out, GError **error)
{
    if (text[0] == '@') {
        gint64 v = 0;
        if (g_ascii_string_to_signed(text + 1, 10, 0, G_MAXINT64 / 2, &v, NULL)) {
            *out = v;
            return TRUE;
        }
    } else {
        g_autoptr(GDateTime) dt = g_date_time_new_from_iso8601(text, NULL);
        if (dt != NULL) {
            *out = g_date_time_to_unix(dt);
            return TRUE;
        }
    }
    g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                "%s \"%s\" is not @UNIXSECONDS or an ISO 8601 time with a zone", option, text);
    return FALSE;
}

/* --since/--until, as a half-open range [since, until). */
static gboolean parse_range(const char *since_text, const char *until_text, gint64 *since,
                            gint64 *until, GError **error)
{
    *since = 0;
    *until = G_MAXINT64 / 2;
    if ((since_text != NULL && !parse_time("--since", since_text, since, error)) ||
        (until_text != NULL && !parse_time("--until", until_text, until, error)))
        return FALSE;
    if (*until <= *since) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                            "--until must be after --since");
        return FALSE;
    }
    return TRUE;
}

/* The beacon's store; never created here (a typo must not make an empty log). */
static ProxStore *store_open_existing(const char *path, GError **error)
{
    if (!g_file_test(path, G_FILE_TEST_IS_REGULAR)) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_NOT_FOUND, "%s: no such store", path);
        return NULL;
    }
    return prox_store_open(path, NULL, error);
}

/* ---- trip-log ---- */

typedef struct {
    GHashTable *by_interval; /* ENIN -> GHashTable of hex RPI (set) */
} RpiCollector;

static gboolean collect_rpi(const ProxSighting *sighting, gpointer data)
{
    RpiCollector *c = data;
    gpointer key = GUINT_TO_POINTER(prox_interval_number(sighting->first_seen));
    GHashTable *set = g_hash_table_lookup(c->by_interval, key);
    if (set == NULL) {
        set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_hash_table_insert(c->by_interval, key, set);
    }
    g_hash_table_add(set, prox_hex_dup(sighting->rpi.bytes, PROX_RPI_LEN));
    return TRUE;
}

static int compare_strings(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The sorted RPIs of one interval (NULL-terminated; the strings belong to the set). */
static const char **interval_rpis(RpiCollector *c, uint32_t interval, guint *n)
{
    GHashTable *set = g_hash_table_lookup(c->by_interval, GUINT_TO_POINTER(interval));
    *n = 0;
    if (set == NULL)
        return g_new0(const char *, 1);
    const char **list = (const char **)g_hash_table_get_keys_as_array(set, n);
    qsort(list, *n, sizeof *list, compare_strings);
    return list;
}

static int beacon_trip_log(int argc, char **argv)
{
    const char *command = "beacon trip-log";
    g_autofree char *store_path = NULL;
    g_autofree char *since_text = NULL;
    g_autofree char *until_text = NULL;
    gboolean json = FALSE;
    gboolean rpis = FALSE;
    const GOptionEntry entries[] = {
        {"store", 's', 0, G_OPTION_ARG_FILENAME, &store_path, "The beacon's store (proxd.db)",
         "DB"},
        {"since", 0, 0, G_OPTION_ARG_STRING, &since_text,
         "Start of the period (default: everything kept)", "TIME"},
        {"until", 0, 0, G_OPTION_ARG_STRING, &until_text, "End of the period, exclusive", "TIME"},
        {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON instead of text", NULL},
        {"rpis", 0, 0, G_OPTION_ARG_NONE, &rpis,
         "Also list the RPIs heard in each interval (for the operator only)", NULL},
        {NULL},
    };
    g_autoptr(GOptionContext) context = prox_tool_option_context(
        command, "", "Print a beacon's trip log.",
        "For each 10-minute interval (GAEN ENIntervalNumber) in which the beacon was in\n"
        "service, i.e. scanning, during [--since, --until): the seconds of it covered by scans\n"
        "and the number of distinct RPIs first heard in it. An RPI is one phone for 10 to 20\n"
        "minutes and cannot be linked to the next one, so counts are occupancy, not people\n"
        "tracked. TIME is @UNIXSECONDS or ISO 8601 with a zone (2020-05-20T08:00:00Z).\n"
        "\n"
        "Text output: '#' lines describe the log; then one line per interval:\n"
        "  ENIN START_UTC SCAN_SECONDS DISTINCT_RPIS\n"
        "With --rpis each is followed by the RPIs first heard in it, one per line, indented:\n"
        "  \"  rpi <32 hex digits>\". They are the beacon's raw log: keep them with the\n"
        "operator.\n"
        "\n"
        "--json prints {\"store\": DB, \"since\": T, \"until\": T, \"intervals\": [{\"interval\":\n"
        "ENIN, \"start\": UNIX, \"scanSeconds\": N, \"distinctRpis\": N[, \"rpis\": [HEX...]]}],\n"
        "\"intervalsInService\": N, \"rpisHeard\": N} (rpisHeard: the sum over intervals).\n"
        "\n"
        "Exit status: 0 printed; 1 the store is missing or cannot be read; 2 bad arguments.\n"
        "\n"
        "Example:\n"
        "  prox-tool beacon trip-log --store /var/lib/proxd/proxd.db --since 2020-05-20T00:00:00Z "
        "\\\n      --until 2020-05-21T00:00:00Z",
        entries);
    if (!prox_tool_parse_options(context, command, &argc, &argv))
        return PROX_TOOL_EXIT_USAGE;
    if (argc != 1)
        return prox_tool_usage_error(command, "unexpected argument '%s'", argv[1]);
    if (store_path == NULL)
        return prox_tool_usage_error(command, "--store DB is required");
    g_autoptr(GError) error = NULL;
    gint64 since = 0;
    gint64 until = 0;
    if (!parse_range(since_text, until_text, &since, &until, &error))
        return prox_tool_usage_error(command, "%s", error->message);

    g_autoptr(ProxStore) store = store_open_existing(store_path, &error);
    if (store == NULL)
        return prox_tool_fail(command, error);
    g_autoptr(GArray) log = NULL;
    if (!prox_store_load_trip_log(store, since, until, &log, &error))
        return prox_tool_fail(command, error);
    RpiCollector collector = {
        .by_interval = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                             (GDestroyNotify)g_hash_table_unref),
    };
    if (rpis &&
        !prox_store_foreach_sighting(store, since, until, collect_rpi, &collector, &error)) {
        g_hash_table_unref(collector.by_interval);
        return prox_tool_fail(command, error);
    }

    guint64 heard = 0;
    for (guint i = 0; i < log->len; i++)
        heard += g_array_index(log, ProxTripInterval, i).distinct_rpis;
    if (json) {
        g_autoptr(JsonBuilder) b = json_builder_new();
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "store");
        json_builder_add_string_value(b, store_path);
        json_builder_set_member_name(b, "since");
        json_builder_add_int_value(b, since);
        json_builder_set_member_name(b, "until");
        json_builder_add_int_value(b, until);
        json_builder_set_member_name(b, "intervals");
        json_builder_begin_array(b);
        for (guint i = 0; i < log->len; i++) {
            const ProxTripInterval *t = &g_array_index(log, ProxTripInterval, i);
            json_builder_begin_object(b);
            json_builder_set_member_name(b, "interval");
            json_builder_add_int_value(b, t->interval);
            json_builder_set_member_name(b, "start");
            json_builder_add_int_value(b, prox_interval_start(t->interval));
            json_builder_set_member_name(b, "scanSeconds");
            json_builder_add_int_value(b, t->scan_seconds);
            json_builder_set_member_name(b, "distinctRpis");
            json_builder_add_int_value(b, t->distinct_rpis);
            if (rpis) {
                guint n = 0;
                g_autofree const char **list = interval_rpis(&collector, t->interval, &n);
                json_builder_set_member_name(b, "rpis");
                json_builder_begin_array(b);
                for (guint k = 0; k < n; k++)
                    json_builder_add_string_value(b, list[k]);
                json_builder_end_array(b);
            }
            json_builder_end_object(b);
        }
        json_builder_end_array(b);
        json_builder_set_member_name(b, "intervalsInService");
        json_builder_add_int_value(b, log->len);
        json_builder_set_member_name(b, "rpisHeard");
        json_builder_add_int_value(b, (gint64)heard);
        json_builder_end_object(b);
        g_autoptr(JsonNode) root = json_builder_get_root(b);
        g_autofree char *text = json_to_string(root, TRUE);
        printf("%s\n", text);
    } else {
        g_autofree char *from = prox_tool_format_utc(since);
        g_autofree char *to =
            until >= G_MAXINT64 / 2 ? g_strdup("now") : prox_tool_format_utc(until);
        printf("# trip log of %s, %s .. %s\n", store_path, since == 0 ? "start" : from, to);
        printf("# interval start_utc scan_seconds distinct_rpis\n");
        for (guint i = 0; i < log->len; i++) {
            const ProxTripInterval *t = &g_array_index(log, ProxTripInterval, i);
            g_autofree char *start = prox_tool_format_utc(prox_interval_start(t->interval));
            printf("%u %s %u %u\n", t->interval, start, t->scan_seconds, t->distinct_rpis);
            if (rpis) {
                guint n = 0;
                g_autofree const char **list = interval_rpis(&collector, t->interval, &n);
                for (guint k = 0; k < n; k++)
                    printf("  rpi %s\n", list[k]);
            }
        }
        printf("# %u intervals in service, %" G_GUINT64_FORMAT " RPIs heard (summed over "
               "intervals)\n",
               log->len, heard);
    }
    g_hash_table_unref(collector.by_interval);
    return PROX_TOOL_EXIT_OK;
}

/* ---- trace ---- */

typedef struct {
    gint64 start;
    gint64 end;
    int32_t risk;
    guint sightings;
    GHashTable *keys; /* key_index set */
} TraceWindow;

static void trace_window_clear(gpointer data)
{
    g_clear_pointer(&((TraceWindow *)data)->keys, g_hash_table_unref);
}

static int compare_match_time(gconstpointer a, gconstpointer b)
{
    const ProxMatchedSighting *x = a;
    const ProxMatchedSighting *y = b;
    gint64 ax = MIN(x->sighting.first_seen, x->sighting.last_seen);
    gint64 ay = MIN(y->sighting.first_seen, y->sighting.last_seen);
    return ax < ay ? -1 : ax > ay;
}

/* The transmission risk a matched key carries: CWA's level for its report type and days
 * since onset (0: revoked, or not infectious that day). */
static int32_t key_risk(const ProxRiskParameters *params, const ProxDiagnosisKey *key)
{
    if (key->report_type == PROX_REPORT_REVOKED)
        return 0;
    return prox_risk_transmission_risk_level(params, key->report_type,
                                             prox_risk_key_infectiousness(params, key));
}

static void json_add_warning(JsonBuilder *b, const ProxVenueWarning *w)
{
    g_autofree char *key = g_base64_encode(w->beacon_tek.key, PROX_KEY_LEN);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "kind");
    json_builder_add_string_value(b, "same-vehicle");
    json_builder_set_member_name(b, "beaconKey");
    json_builder_add_string_value(b, key);
    json_builder_set_member_name(b, "rollingStartIntervalNumber");
    json_builder_add_int_value(b, w->beacon_tek.rolling_start);
    json_builder_set_member_name(b, "rollingPeriod");
    json_builder_add_int_value(b, w->beacon_tek.rolling_period);
    json_builder_set_member_name(b, "start");
    json_builder_add_int_value(b, w->start);
    json_builder_set_member_name(b, "end");
    json_builder_add_int_value(b, w->end);
    json_builder_set_member_name(b, "transmissionRisk");
    json_builder_add_int_value(b, w->transmission_risk_level);
    json_builder_end_object(b);
}

static int beacon_trace(int argc, char **argv)
{
    const char *command = "beacon trace";
    g_autofree char *store_path = NULL;
    g_auto(GStrv) list_paths = NULL;
    g_auto(GStrv) key_paths = NULL;
    g_autofree char *out_path = NULL;
    g_autofree char *since_text = NULL;
    g_autofree char *until_text = NULL;
    gint risk_override = 0;
    gint threads = 0;
    const GOptionEntry entries[] = {
        {"store", 's', 0, G_OPTION_ARG_FILENAME, &store_path, "The beacon's store (proxd.db)",
         "DB"},
        {"keys", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &list_paths,
         "A published key list (repeat, or name more lists after the options)", "LIST.zip"},
        {"key", 'k', 0, G_OPTION_ARG_FILENAME_ARRAY, &key_paths,
         "Trusted public key of the authority (repeat for several)", "PUBKEY"},
        {"out", 'o', 0, G_OPTION_ARG_FILENAME, &out_path,
         "Write the warnings JSON to FILE (default: standard output)", "FILE"},
        {"since", 0, 0, G_OPTION_ARG_STRING, &since_text,
         "Only the beacon's log from TIME (default: everything kept)", "TIME"},
        {"until", 0, 0, G_OPTION_ARG_STRING, &until_text, "Only the log before TIME", "TIME"},
        {"risk", 0, 0, G_OPTION_ARG_INT, &risk_override,
         "Transmission risk 1..8 for every warning (default: from the matched keys)", "N"},
        {"threads", 0, 0, G_OPTION_ARG_INT, &threads, "Matcher threads (default: one per CPU)",
         "N"},
        {NULL},
    };
    g_autoptr(GOptionContext) context = prox_tool_option_context(
        command, "[LIST.zip...]", "Find when F0 cases rode with a beacon; write warnings.",
        "1. Verifies every key list (--keys and the LIST.zip arguments) against the trusted\n"
        "   --key files exactly as devices do; one list that fails stops everything.\n"
        "2. Matches their keys against the RPIs the beacon heard with the device matcher\n"
        "   (same derivation, ±2 h tolerance and metadata checks as a phone). Revoked keys\n"
        "   and keys not infectious on their day (CWA's days-since-onset mapping) are left\n"
        "   out.\n"
        "3. Merges the matched sightings of all keys into windows: a sighting less than 20\n"
        "   minutes after the window's last one joins it.\n"
        "4. Pairs each window with the beacon's own TEK valid then (a window that spans\n"
        "   midnight UTC becomes one warning per TEK) and writes the warnings JSON of\n"
        "   docs/venues.md §6, for 'prox-authority warning import':\n"
        "     {\"warnings\": [{\"kind\": \"same-vehicle\", \"beaconKey\": BASE64,\n"
        "       \"rollingStartIntervalNumber\": N, \"rollingPeriod\": 144, \"start\": UNIX,\n"
        "       \"end\": UNIX, \"transmissionRisk\": 1..8}]}\n"
        "   A window's transmission risk is the highest of its keys' (CWA's level for the\n"
        "   key's report type and infectiousness), unless --risk is given.\n"
        "The summary (lists, keys, matches, one line per window) goes to standard output, or\n"
        "to standard error when the JSON does. The JSON holds the beacon's TEKs for the\n"
        "windows' days: publishing them lets riders' phones find the beacon's RPIs in their\n"
        "own logs; nothing else about the bus is in it. The file is written atomically.\n"
        "\n"
        "Exit status: 0 written (also with no window: an empty list); 1 a list does not\n"
        "verify, the store cannot be read or the file cannot be written; 2 bad arguments.\n"
        "\n"
        "Example:\n"
        "  prox-tool beacon trace --store bus-42.db --key 310-v1.pub --out bus-42.json \\\n"
        "      --keys lists/1590000000-00000001-0001.zip lists/1590086400-00000002-0001.zip",
        entries);
    if (!prox_tool_parse_options(context, command, &argc, &argv))
        return PROX_TOOL_EXIT_USAGE;
    if (store_path == NULL)
        return prox_tool_usage_error(command, "--store DB is required");
    if (key_paths == NULL || key_paths[0] == NULL)
        return prox_tool_usage_error(command, "--key PUBKEY is required");
    g_autoptr(GPtrArray) lists = g_ptr_array_new();
    for (guint i = 0; list_paths != NULL && list_paths[i] != NULL; i++)
        g_ptr_array_add(lists, list_paths[i]);
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-')
            return prox_tool_usage_error(command, "unknown option '%s'", argv[i]);
        g_ptr_array_add(lists, argv[i]);
    }
    if (lists->len == 0)
        return prox_tool_usage_error(command, "give at least one key list (--keys LIST.zip)");
    if (risk_override != 0 && (risk_override < 1 || risk_override > 8))
        return prox_tool_usage_error(command, "--risk must be 1..8");
    if (threads < 0 || threads > 256)
        return prox_tool_usage_error(command, "--threads must be 0..256");
    g_autoptr(GError) error = NULL;
    gint64 since = 0;
    gint64 until = 0;
    if (!parse_range(since_text, until_text, &since, &until, &error))
        return prox_tool_usage_error(command, "%s", error->message);
    FILE *summary = out_path != NULL ? stdout : stderr;

    /* 1. the lists */
    g_autoptr(ProxExportKeyring) keyring = prox_export_keyring_new();
    for (guint i = 0; key_paths[i] != NULL; i++) {
        if (!prox_export_keyring_add_file(keyring, NULL, NULL, key_paths[i], &error))
            return prox_tool_fail(command, error);
    }
    g_autoptr(GArray) keys = g_array_new(FALSE, FALSE, sizeof(ProxDiagnosisKey));
    guint skipped_revoked = 0;
    for (guint i = 0; i < lists->len; i++) {
        const char *path = lists->pdata[i];
        g_autoptr(ProxExport) export = NULL;
        if (!prox_export_read(path, keyring, &export, &error)) {
            g_prefix_error(&error, "%s: ", path);
            return prox_tool_fail(command, error);
        }
        for (guint k = 0; k < export->keys->len; k++) {
            const ProxDiagnosisKey *key = &g_array_index(export->keys, ProxDiagnosisKey, k);
            if (key->report_type == PROX_REPORT_REVOKED)
                skipped_revoked++;
            else
                g_array_append_val(keys, *key);
        }
    }

    /* 2. the beacon's log x the keys */
    g_autoptr(ProxStore) store = store_open_existing(store_path, &error);
    if (store == NULL)
        return prox_tool_fail(command, error);
    g_autoptr(GArray) sightings = NULL;
    g_autoptr(GArray) teks = NULL;
    if (!prox_store_load_sightings(store, since, until, &sightings, &error) ||
        !prox_store_load_teks(store, 0, &teks, &error))
        return prox_tool_fail(command, error);
    g_autoptr(GArray) matches = NULL;
    if (sightings->len > 0 && keys->len > 0) {
        matches =
            prox_match((const ProxSighting *)sightings->data, sightings->len,
                       (const ProxDiagnosisKey *)keys->data, keys->len, (guint)threads, &error);
        if (matches == NULL)
            return prox_tool_fail(command, error);
    } else {
        matches = g_array_new(FALSE, FALSE, sizeof(ProxMatchedSighting));
    }

    /* 3. windows */
    ProxRiskParameters params;
    prox_risk_parameters_default(&params);
    g_array_sort(matches, compare_match_time);
    g_autoptr(GArray) windows = g_array_new(FALSE, TRUE, sizeof(TraceWindow));
    g_array_set_clear_func(windows, trace_window_clear);
    guint not_infectious = 0;
    g_autoptr(GHashTable) matched_keys = g_hash_table_new(g_direct_hash, g_direct_equal);
    for (guint i = 0; i < matches->len; i++) {
        const ProxMatchedSighting *m = &g_array_index(matches, ProxMatchedSighting, i);
        int32_t risk = risk_override != 0 ? risk_override : key_risk(&params, &m->key);
        if (risk <= 0) {
            not_infectious++;
            continue;
        }
        gint64 first = MIN(m->sighting.first_seen, m->sighting.last_seen);
        gint64 last = MAX(m->sighting.first_seen, m->sighting.last_seen);
        TraceWindow *w =
            windows->len > 0 ? &g_array_index(windows, TraceWindow, windows->len - 1) : NULL;
        if (w == NULL || first - w->end >= TRACE_JOIN_GAP_SECONDS) {
            TraceWindow fresh = {
                .start = first,
                .end = last,
                .keys = g_hash_table_new(g_direct_hash, g_direct_equal),
            };
            g_array_append_val(windows, fresh);
            w = &g_array_index(windows, TraceWindow, windows->len - 1);
        }
        w->end = MAX(w->end, last);
        w->risk = MAX(w->risk, risk);
        w->sightings++;
        g_hash_table_add(w->keys, GUINT_TO_POINTER(m->key_index));
        g_hash_table_add(matched_keys, GUINT_TO_POINTER(m->key_index));
    }

    /* 4. one warning per (window, beacon TEK) */
    g_autoptr(GArray) warnings = g_array_new(FALSE, FALSE, sizeof(ProxVenueWarning));
    guint uncovered = 0;
    fprintf(summary,
            "verified %u key lists: %u keys (%u revoked left out); the beacon's log: %u "
            "sightings, %u own TEKs\n",
            lists->len, keys->len, skipped_revoked, sightings->len, teks->len);
    fprintf(summary,
            "matched %u sightings of %u keys (%u more, of keys not infectious then, left out); "
            "%u windows\n",
            matches->len - not_infectious, g_hash_table_size(matched_keys), not_infectious,
            windows->len);
    for (guint i = 0; i < windows->len; i++) {
        TraceWindow *w = &g_array_index(windows, TraceWindow, i);
        /* A single report still marks a moment aboard: give the window one second. */
        if (w->end <= w->start)
            w->end = w->start + 1;
        guint parts = 0;
        for (guint t = 0; t < teks->len; t++) {
            const ProxTek *tek = &g_array_index(teks, ProxTek, t);
            gint64 tek_start = prox_interval_start(tek->rolling_start);
            gint64 tek_end = prox_interval_start(tek->rolling_start + tek->rolling_period);
            ProxVenueWarning warning = {
                .kind = PROX_VENUE_WARNING_SAME_VEHICLE,
                .beacon_tek = *tek,
                .start = MAX(w->start, tek_start),
                .end = MIN(w->end, tek_end),
                .transmission_risk_level = w->risk,
            };
            if (warning.end <= warning.start)
                continue;
            g_autofree char *what = g_strdup_printf("window %u", i + 1);
            if (!prox_venue_warning_check(&warning, what, &error))
                return prox_tool_fail(command, error);
            g_array_append_val(warnings, warning);
            parts++;
        }
        g_autofree char *from = prox_tool_format_utc(w->start);
        g_autofree char *to = prox_tool_format_utc(w->end);
        fprintf(summary,
                "window %u: %s .. %s (%" G_GINT64_FORMAT " min), %u sightings of %u keys, "
                "risk %d, %u warnings%s\n",
                i + 1, from, to, (w->end - w->start + 59) / 60, w->sightings,
                g_hash_table_size(w->keys), w->risk, parts,
                parts == 0 ? " (no beacon TEK covers it: left out)" : "");
        uncovered += parts == 0;
    }

    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "warnings");
    json_builder_begin_array(b);
    for (guint i = 0; i < warnings->len; i++)
        json_add_warning(b, &g_array_index(warnings, ProxVenueWarning, i));
    json_builder_end_array(b);
    json_builder_end_object(b);
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    g_autofree char *text = json_to_string(root, TRUE);
    g_autofree char *file_text = g_strconcat(text, "\n", NULL);
    if (out_path != NULL) {
        if (!g_file_set_contents_full(out_path, file_text, -1,
                                      G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE,
                                      0644, &error))
            return prox_tool_fail(command, error);
        fprintf(summary, "wrote %u warnings to %s\n", warnings->len, out_path);
    } else {
        fputs(file_text, stdout);
        fprintf(summary, "%u warnings\n", warnings->len);
    }
    if (uncovered > 0)
        fprintf(stderr, "prox-tool %s: %u windows had no beacon TEK (the store's TEKs expired?)\n",
                command, uncovered);
    return PROX_TOOL_EXIT_OK;
}

int prox_tool_beacon_main(int argc, char **argv)
{
    static const ProxToolSubcommand subcommands[] = {
        {"trip-log", beacon_trip_log},
        {"trace", beacon_trace},
    };
    return prox_tool_run_subcommand("beacon", beacon_usage, subcommands, G_N_ELEMENTS(subcommands),
                                    argc, argv);
}
