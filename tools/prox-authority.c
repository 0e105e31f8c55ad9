/* prox-authority.c - the health authority's command-line tool: signing key, one-time codes,
 * importing keys, venues and warnings (docs/venues.md), publishing signed key lists. Shares
 * its database with prox-keyserver. */
#define G_LOG_DOMAIN "prox-authority"

#include "authority-clock.h"
#include "authority-db.h"
#include "authority-ingest.h"
#include "authority-poster.h"
#include "authority-publish.h"
#include "authority-upload.h"
#include "authority-venue.h"
#include "prox-export.h"
#include "prox-hex.h"
#include "prox-venue.h"

#include <errno.h>
#include <json-glib/json-glib.h>
#include <glib/gstdio.h>
#include <locale.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define EXIT_OK 0
#define EXIT_FAILED 1 /* the operation ran and failed */
#define EXIT_USAGE 2  /* bad arguments */

#define DAY_SECONDS 86400
#define CODE_MAX_LIFETIME (7 * DAY_SECONDS)

static const char overview[] =
    "NAME\n"
    "  prox-authority - health authority tool for proxd exposure notification\n"
    "\n"
    "SYNOPSIS\n"
    "  prox-authority init-key --key-id ID --key-version V --dir DIR\n"
    "  prox-authority issue-code --db DB --onset YYYY-MM-DD --test-type TYPE [--expires 24h]\n"
    "  prox-authority import-keys --db DB [--test-type TYPE] [--onset YYYY-MM-DD] KEYS.json\n"
    "  prox-authority publish --db DB --key SECKEY --out DIR [--min-keys N]\n"
    "                 [--padding-jitter N] [--keep-days D] [--embargo S]\n"
    "                 [--max-keys-per-file N] [--region R]\n"
    "  prox-authority venue register --db DB --key SECKEY --name NAME [--address ADDR]\n"
    "                 --type TYPE --stay MINUTES --out DIR\n"
    "  prox-authority venue list --db DB\n"
    "  prox-authority venue counts --db DB [--since YYYY-MM-DD] [--json]\n"
    "  prox-authority warning import --db DB WARNINGS.json\n"
    "  prox-authority status --db DB\n"
    "\n"
    "DESCRIPTION\n"
    "  The authority confirms a case and gives the person a one-time code (issue-code); the\n"
    "  person's device uploads its keys of the last 14 days with that code to prox-keyserver.\n"
    "  The authority may also upload keys itself (import-keys). publish turns the stored keys\n"
    "  into signed GAEN export files plus an index.txt in a directory that any web server or\n"
    "  CDN serves as static files; devices verify the files with the public key from\n"
    "  init-key. prox-keyserver and prox-authority share the sqlite database given by --db.\n"
    "\n"
    "COMMANDS\n"
    "  init-key     create the Ed25519 signing key: DIR/ID-V.sec (secret, mode 0600) and\n"
    "               DIR/ID-V.pub (the public key file to configure on devices)\n"
    "  issue-code   print a new one-time code (XXXX-XXXX-XXXX, 60 bits) for a confirmed case:\n"
    "               usable once, until it expires; only a keyed hash is stored\n"
    "  import-keys  store keys the authority received itself (GAEN JSON, checked exactly like\n"
    "               an upload)\n"
    "  publish      write signed export files for keys whose rolling period has ended, pad to\n"
    "               a minimum count, add unpublished bus and venue warnings, delete old\n"
    "               files, update index.txt atomically\n"
    "  venue        register a QR check-in venue (signed payload, poster.svg/.png, url.txt),\n"
    "               list registered venues, show their opt-in hourly check-in counts\n"
    "  warning      import bus (same-vehicle) or venue warnings, e.g. from\n"
    "               'prox-tool beacon trace', for the next publish\n"
    "  status       counts of codes, keys, venues, warnings, venue counts and published files\n"
    "\n"
    "  Run 'prox-authority COMMAND --help' for a command's options.\n"
    "\n"
    "TIME\n"
    "  The wall clock, or a simulated world's clock when PROX_SIM_CLOCK is set\n"
    "  (\"<real_unix_start>:<sim_unix_start>:<speed>\", as for proxd). Commands that depend on\n"
    "  the date also take --now @UNIXSECONDS or --now 2020-05-20T10:00:00Z (tests).\n"
    "\n"
    "FILES\n"
    "  DB, DB-wal, DB-shm   the sqlite database (created mode 0600)\n"
    "  DB.pepper            secret that keys the code hashes (0600); keep it with the\n"
    "                       database, but out of database dumps\n"
    "  OUT/index.txt        published files, oldest first, one name a line\n"
    "  OUT/*.zip            signed key lists (GAEN export.bin + export.sig)\n"
    "\n"
    "EXIT STATUS\n"
    "  0 success; 1 the operation failed (message on stderr); 2 bad arguments.\n"
    "\n"
    "EXAMPLES\n"
    "  prox-authority init-key --key-id 310 --key-version v1 --dir /etc/prox-authority\n"
    "  prox-authority issue-code --db /var/lib/prox/authority.db --onset 2020-05-18 \\\n"
    "      --test-type confirmed-test\n"
    "  prox-authority publish --db /var/lib/prox/authority.db \\\n"
    "      --key /etc/prox-authority/310-v1.sec --out /srv/prox/keys\n"
    "  prox-authority venue register --db /var/lib/prox/authority.db \\\n"
    "      --key /etc/prox-authority/310-v1.sec --name 'Central Market' \\\n"
    "      --address '1 Market Street' --type market --stay 60 --out posters/central-market\n"
    "  prox-authority warning import --db /var/lib/prox/authority.db bus-42-warnings.json\n";

static int usage_error(const char *command, const char *format, ...) G_GNUC_PRINTF(2, 3);
static int usage_error(const char *command, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    g_autofree char *message = g_strdup_vprintf(format, args);
    va_end(args);
    fprintf(stderr, "prox-authority %s: %s (try 'prox-authority %s --help')\n", command, message,
            command);
    return EXIT_USAGE;
}

static int failed(const char *command, const GError *error)
{
    fprintf(stderr, "prox-authority %s: %s\n", command, error->message);
    return EXIT_FAILED;
}

/* Parses options; FALSE (after a one-line message) on a parse error. */
static gboolean parse(GOptionContext *context, const char *command, int *argc, char ***argv)
{
    g_autoptr(GError) error = NULL;
    if (!g_option_context_parse(context, argc, argv, &error)) {
        usage_error(command, "%s", error->message);
        return FALSE;
    }
    return TRUE;
}

/* Usage reads "prox-authority COMMAND [OPTION…] PARAMETER": main() sets the program name. */
static GOptionContext *command_context(const char *parameter, const char *summary,
                                       const char *description)
{
    GOptionContext *context = g_option_context_new(parameter);
    g_option_context_set_summary(context, summary);
    if (description != NULL)
        g_option_context_set_description(context, description);
    g_option_context_set_help_enabled(context, TRUE);
    return context;
}

/* --now, shared by the date-dependent commands. */
typedef struct {
    char *now;
} TimeOptions;

static void time_options_add(GOptionContext *context, TimeOptions *t)
{
    const GOptionEntry entries[] = {
        {"now", 0, 0, G_OPTION_ARG_STRING, &t->now,
         "Take this as the current time (@UNIXSECONDS or ISO 8601)", "TIME"},
        {NULL},
    };
    g_option_context_add_main_entries(context, entries, NULL);
}

static void time_options_clear(TimeOptions *t)
{
    g_clear_pointer(&t->now, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(TimeOptions, time_options_clear)

static gboolean time_options_now(const TimeOptions *t, gint64 *now, GError **error)
{
    AuthorityClock clock;
    if (!authority_clock_init(&clock, t->now, error))
        return FALSE;
    *now = authority_clock_now(&clock);
    return TRUE;
}

/* ---- init-key ---- */

/* Key id and version become file names: keep them to a safe alphabet. */
static gboolean file_name_safe(const char *s)
{
    if (s == NULL || s[0] == '\0' || s[0] == '.' || strlen(s) > 64)
        return FALSE;
    for (const char *p = s; *p != '\0'; p++) {
        if (!g_ascii_isalnum(*p) && *p != '.' && *p != '_' && *p != '-')
            return FALSE;
    }
    return TRUE;
}

static int cmd_init_key(int argc, char **argv)
{
    const char *command = "init-key";
    g_autofree char *key_id = NULL;
    g_autofree char *version = NULL;
    g_autofree char *dir = NULL;
    const GOptionEntry entries[] = {
        {"key-id", 0, 0, G_OPTION_ARG_STRING, &key_id,
         "Key id named in every signature (GAEN verification_key_id)", "ID"},
        {"key-version", 0, 0, G_OPTION_ARG_STRING, &version,
         "Key version named in every signature (GAEN verification_key_version)", "V"},
        {"dir", 0, 0, G_OPTION_ARG_FILENAME, &dir, "Directory for the key files", "DIR"},
        {NULL},
    };
    g_autoptr(GOptionContext) context = command_context(
        NULL, "Create the Ed25519 key that signs published key lists.",
        "Writes DIR/ID-V.sec (the secret key, mode 0600: give it to publish with --key, and\n"
        "keep it off web servers) and DIR/ID-V.pub (the public key file devices pin by id and\n"
        "version). DIR is created mode 0700 if missing. Existing files are never overwritten.\n"
        "ID and V: letters, digits, '.', '_', '-'.");
    g_option_context_add_main_entries(context, entries, NULL);
    if (!parse(context, command, &argc, &argv))
        return EXIT_USAGE;
    if (argc != 1)
        return usage_error(command, "unexpected argument '%s'", argv[1]);
    if (key_id == NULL || version == NULL || dir == NULL)
        return usage_error(command, "--key-id, --key-version and --dir are required");
    if (!file_name_safe(key_id) || !file_name_safe(version))
        return usage_error(command, "--key-id and --key-version may only use letters, digits, "
                                    "'.', '_' and '-' (and not start with '.')");
    if (g_mkdir_with_parents(dir, 0700) != 0) {
        fprintf(stderr, "prox-authority %s: cannot create %s: %s\n", command, dir,
                g_strerror(errno));
        return EXIT_FAILED;
    }
    g_autofree char *base = g_strdup_printf("%s-%s", key_id, version);
    g_autofree char *secret_name = g_strconcat(base, ".sec", NULL);
    g_autofree char *public_name = g_strconcat(base, ".pub", NULL);
    g_autofree char *secret_path = g_build_filename(dir, secret_name, NULL);
    g_autofree char *public_path = g_build_filename(dir, public_name, NULL);
    g_autoptr(GError) error = NULL;
    if (!prox_export_ed25519_keygen(key_id, version, secret_path, public_path, &error))
        return failed(command, error);
    printf("secret key: %s\npublic key: %s\n", secret_path, public_path);
    return EXIT_OK;
}

/* ---- issue-code ---- */

static int cmd_issue_code(int argc, char **argv)
{
    const char *command = "issue-code";
    g_autofree char *db_path = NULL;
    g_autofree char *onset = NULL;
    g_autofree char *test_type = NULL;
    g_autofree char *expires = NULL;
    g_auto(TimeOptions) time_options = {0};
    const GOptionEntry entries[] = {
        {"db", 0, 0, G_OPTION_ARG_FILENAME, &db_path, "The authority database", "DB"},
        {"onset", 0, 0, G_OPTION_ARG_STRING, &onset,
         "Symptom onset (or, without symptoms, test) date, UTC", "YYYY-MM-DD"},
        {"test-type", 0, 0, G_OPTION_ARG_STRING, &test_type,
         "confirmed-test, clinical or self-report", "TYPE"},
        {"expires", 0, 0, G_OPTION_ARG_STRING, &expires,
         "Lifetime: N followed by m, h or d, at most 7d (default 24h)", "DURATION"},
        {NULL},
    };
    g_autoptr(GOptionContext) context = command_context(
        NULL, "Issue a one-time code for a confirmed case and print it.",
        "The code (12 characters from 23456789ABCDEFGHJKLMNPQRSTUVWXYZ, printed as\n"
        "XXXX-XXXX-XXXX, about 60 bits) lets the person's device upload its keys once, before\n"
        "it expires. Uploaded keys get the code's test type as their report type, and their\n"
        "days since onset from the onset date. The onset must lie within the last 14 days.\n"
        "Only a keyed hash of the code is stored: it cannot be shown again.");
    g_option_context_add_main_entries(context, entries, NULL);
    time_options_add(context, &time_options);
    if (!parse(context, command, &argc, &argv))
        return EXIT_USAGE;
    if (argc != 1)
        return usage_error(command, "unexpected argument '%s'", argv[1]);
    if (db_path == NULL || onset == NULL || test_type == NULL)
        return usage_error(command, "--db, --onset and --test-type are required");

    g_autoptr(GError) error = NULL;
    ProxReportType type;
    if (!authority_report_type_parse(test_type, &type) || type == PROX_REPORT_RECURSIVE)
        return usage_error(command, "--test-type must be confirmed-test, clinical or "
                                    "self-report");
    gint64 onset_day = 0;
    gint64 lifetime = DAY_SECONDS;
    gint64 now = 0;
    if (!authority_parse_day(onset, &onset_day, &error) ||
        (expires != NULL && !authority_parse_duration(expires, &lifetime, &error)) ||
        !time_options_now(&time_options, &now, &error))
        return usage_error(command, "%s", error->message);
    if (lifetime < 60 || lifetime > CODE_MAX_LIFETIME)
        return usage_error(command, "--expires must be between 1m and 7d");
    gint64 today = now / DAY_SECONDS;
    if (onset_day > today || onset_day < today - AUTHORITY_UPLOAD_MAX_AGE_DAYS)
        return usage_error(command, "--onset %s is not within the last %d days", onset,
                           AUTHORITY_UPLOAD_MAX_AGE_DAYS);

    g_autoptr(AuthorityDb) db = authority_db_open(db_path, &error);
    if (db == NULL)
        return failed(command, &*error);
    char code[AUTHORITY_CODE_LEN + 1];
    authority_code_generate(code);
    if (!authority_db_code_insert(db, code, onset_day, type, now, now + lifetime, &error)) {
        sodium_memzero(code, sizeof code);
        return failed(command, error);
    }
    char display[AUTHORITY_CODE_DISPLAY_LEN + 1];
    authority_code_format(code, display);
    printf("%s\n", display);
    fflush(stdout);
    sodium_memzero(code, sizeof code);
    sodium_memzero(display, sizeof display);
    return EXIT_OK;
}

/* ---- import-keys ---- */

static int cmd_import_keys(int argc, char **argv)
{
    const char *command = "import-keys";
    g_autofree char *db_path = NULL;
    g_autofree char *onset = NULL;
    g_autofree char *test_type = NULL;
    g_auto(TimeOptions) time_options = {0};
    const GOptionEntry entries[] = {
        {"db", 0, 0, G_OPTION_ARG_FILENAME, &db_path, "The authority database", "DB"},
        {"test-type", 0, 0, G_OPTION_ARG_STRING, &test_type,
         "Report type of keys that name none: confirmed-test (default), clinical, "
         "self-report or recursive",
         "TYPE"},
        {"onset", 0, 0, G_OPTION_ARG_STRING, &onset,
         "Symptom onset date, for keys without daysSinceOnsetOfSymptoms", "YYYY-MM-DD"},
        {NULL},
    };
    g_autoptr(GOptionContext) context = command_context(
        "KEYS.json", "Store keys the authority received itself.",
        "KEYS.json is GAEN's upload form, as a device would send it:\n"
        "  {\"temporaryExposureKeys\": [{\"key\": \"<base64 of 16 bytes>\",\n"
        "    \"rollingStartNumber\": N, \"rollingPeriod\": 1..144, \"transmissionRisk\": 0..8,\n"
        "    \"reportType\": \"CONFIRMED_TEST\", \"daysSinceOnsetOfSymptoms\": -14..14}, ...]}\n"
        "and is checked exactly like an upload: 1 to 30 keys, 16-byte keys, periods 1..144,\n"
        "starting within the last 14 days and not in the future, no key twice. Either all\n"
        "keys are stored or none; keys the server already has are skipped.");
    g_option_context_add_main_entries(context, entries, NULL);
    time_options_add(context, &time_options);
    if (!parse(context, command, &argc, &argv))
        return EXIT_USAGE;
    if (argc != 2)
        return usage_error(command, "expected exactly one KEYS.json");
    if (db_path == NULL)
        return usage_error(command, "--db is required");

    g_autoptr(GError) error = NULL;
    ProxReportType type = PROX_REPORT_CONFIRMED_TEST;
    if (test_type != NULL && !authority_report_type_parse(test_type, &type))
        return usage_error(command, "--test-type must be confirmed-test, clinical, "
                                    "self-report or recursive");
    gint64 onset_day = 0;
    gint64 now = 0;
    if ((onset != NULL && !authority_parse_day(onset, &onset_day, &error)) ||
        !time_options_now(&time_options, &now, &error))
        return usage_error(command, "%s", error->message);

    g_autofree char *body = NULL;
    gsize len = 0;
    if (!g_file_get_contents(argv[1], &body, &len, &error))
        return failed(command, error);
    g_autoptr(AuthorityUpload) upload = authority_upload_parse(body, len, now, FALSE, &error);
    if (upload == NULL) {
        fprintf(stderr, "prox-authority %s: %s: %s (%s)\n", command, argv[1], error->message,
                authority_reject_name((AuthorityRejectReason)error->code));
        return EXIT_FAILED;
    }
    g_autoptr(AuthorityDb) db = authority_db_open(db_path, &error);
    if (db == NULL)
        return failed(command, error);
    guint inserted = 0;
    guint checkins = 0;
    if (!authority_ingest_import(db, upload, type, onset != NULL, onset_day, now, &inserted,
                                 &checkins, &error))
        return failed(command, error);
    printf("imported %u keys (%u already stored)\n", inserted, upload->keys->len - inserted);
    if (upload->checkins->len > 0)
        printf("imported %u check-ins (%u already stored)\n", checkins,
               upload->checkins->len - checkins);
    return EXIT_OK;
}

/* ---- publish ---- */

static int cmd_publish(int argc, char **argv)
{
    const char *command = "publish";
    g_autofree char *db_path = NULL;
    g_autofree char *key_path = NULL;
    g_autofree char *out_dir = NULL;
    g_auto(TimeOptions) time_options = {0};
    AuthorityPublishOptions options;
    authority_publish_options_init(&options);
    const GOptionEntry entries[] = {
        {"db", 0, 0, G_OPTION_ARG_FILENAME, &db_path, "The authority database", "DB"},
        {"key", 0, 0, G_OPTION_ARG_FILENAME, &key_path, "Signing key: the .sec file from init-key",
         "SECKEY"},
        {"out", 0, 0, G_OPTION_ARG_FILENAME, &out_dir,
         "Publish directory (what the web server serves)", "DIR"},
        {NULL},
    };
    g_autoptr(GOptionContext) context = command_context(
        NULL, "Write signed key lists and index.txt.",
        "Publishes every stored key whose rolling period ended --embargo seconds ago or more\n"
        "and that is not published yet, in signed export files named <time>-<run>-<batch>.zip\n"
        "(names sort by time). Unpublished warnings whose window ended within --keep-days go\n"
        "into the run's first file (export field 100, docs/venues.md): imported ones ('warning\n"
        "import'; a beacon's TEK only once its period ended --embargo seconds ago) and each\n"
        "check-in reported with an upload, as a VENUE warning with the risk of the code's test\n"
        "type. A run with warnings but no keys writes one file without keys. Keys are\n"
        "padded with random keys shaped like the real ones up to\n"
        "--min-keys plus a random 0..--padding-jitter. Files older than --keep-days are\n"
        "deleted with their keys. index.txt lists the files oldest first and is replaced\n"
        "atomically, only after the files it names are on disk; files it no longer names are\n"
        "deleted afterwards. Running publish again with nothing new changes nothing. Publish\n"
        "runs exclude each other (DIR/.publish.lock), also with prox-keyserver's schedule.\n"
        "The default --min-keys of 1000 costs devices ~19 KB per file and hides how many\n"
        "people (fewer than ~70) reported in a run.");
    g_option_context_add_main_entries(context, entries, NULL);
    g_autofree GOptionEntry *publish_entries = authority_publish_option_entries(&options);
    g_option_context_add_main_entries(context, publish_entries, NULL);
    time_options_add(context, &time_options);
    int status = EXIT_OK;
    g_autoptr(GError) error = NULL;
    if (!parse(context, command, &argc, &argv)) {
        status = EXIT_USAGE;
    } else if (argc != 1) {
        status = usage_error(command, "unexpected argument '%s'", argv[1]);
    } else if (db_path == NULL || key_path == NULL || out_dir == NULL) {
        status = usage_error(command, "--db, --key and --out are required");
    } else if (!authority_publish_options_check(&options, &error)) {
        status = usage_error(command, "%s", error->message);
    } else {
        gint64 now = 0;
        if (!time_options_now(&time_options, &now, &error)) {
            status = usage_error(command, "%s", error->message);
            goto out;
        }
        g_autoptr(ProxExportSigner) signer =
            prox_export_signer_load_file(key_path, NULL, NULL, &error);
        g_autoptr(AuthorityDb) db = signer != NULL ? authority_db_open(db_path, &error) : NULL;
        AuthorityPublishResult result;
        if (db == NULL || !authority_publish(db, out_dir, &options, signer, now, &result, &error)) {
            status = failed(command, error);
            goto out;
        }
        printf("published %u keys and %u padding keys in %u files; removed %u files; "
               "index %s\n",
               result.real_keys, result.padding_keys, result.files_written, result.files_removed,
               result.index_written ? "updated" : "unchanged");
        if (result.warnings > 0)
            printf("published %u warnings\n", result.warnings);
    }
out:
    authority_publish_options_clear(&options);
    return status;
}

/* ---- venue ---- */

static const char venue_types_help[] =
    "other, shop, office, school, market, bus-stop, restaurant, worship, healthcare, event";

/* "2020-05-20" for a unix time. */
static char *format_day(gint64 t)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(t);
    return dt != NULL ? g_date_time_format(dt, "%Y-%m-%d") : g_strdup("-");
}

static int cmd_venue_register(int argc, char **argv)
{
    const char *command = "venue register";
    g_autofree char *db_path = NULL;
    g_autofree char *key_path = NULL;
    g_autofree char *name = NULL;
    g_autofree char *address = NULL;
    g_autofree char *type_name = NULL;
    g_autofree char *out_dir = NULL;
    gint stay = 0;
    gboolean force = FALSE;
    g_auto(TimeOptions) time_options = {0};
    const GOptionEntry entries[] = {
        {"db", 0, 0, G_OPTION_ARG_FILENAME, &db_path, "The authority database", "DB"},
        {"key", 0, 0, G_OPTION_ARG_FILENAME, &key_path,
         "Signing key: the Ed25519 .sec file from init-key", "SECKEY"},
        {"name", 0, 0, G_OPTION_ARG_STRING, &name,
         "The venue's name as visitors see it (1..64 bytes of UTF-8)", "NAME"},
        {"address", 0, 0, G_OPTION_ARG_STRING, &address,
         "Its address (0..96 bytes of UTF-8; default none)", "ADDR"},
        {"type", 0, 0, G_OPTION_ARG_STRING, &type_name,
         "other, shop, office, school, market, bus-stop, restaurant, worship, healthcare or "
         "event",
         "TYPE"},
        {"stay", 0, 0, G_OPTION_ARG_INT, &stay,
         "Default stay: phones check out automatically after MINUTES (5..1440)", "MINUTES"},
        {"out", 0, 0, G_OPTION_ARG_FILENAME, &out_dir,
         "Write poster.svg, poster.png and url.txt into DIR (created if missing)", "DIR"},
        {"force", 0, 0, G_OPTION_ARG_NONE, &force, "Replace a poster already in DIR", NULL},
        {NULL},
    };
    g_autoptr(GOptionContext) context = command_context(
        NULL, "Register a QR check-in venue and make its poster.",
        "Signs a venue descriptor (name, address, type, default stay, a fresh 16-byte random\n"
        "seed, the key's id and version) with the authority's Ed25519 key and writes, each\n"
        "file atomically:\n"
        "  DIR/url.txt     the check-in URL, proxd://checkin/v1/<base64url of the payload>\n"
        "  DIR/poster.svg  a printable poster: the QR code 15 cm wide, the name and address\n"
        "  DIR/poster.png  the QR code alone, 1-bit, at least 1000 pixels a side\n"
        "The QR code uses error correction level M and a 4-module quiet zone. Phones that pin\n"
        "the authority's public key verify the signature before checking in, and store only\n"
        "the location id (a hash of the payload: unguessable without the poster) and times.\n"
        "The database records the venue (id, name, address, type, location id, creation\n"
        "time) for 'venue list' and the registered-venue count of 'status'.\n"
        "\n"
        "Prints the venue id, the QR version and the size of a module when the code is\n"
        "printed 15 cm wide. Refuses a DIR that already holds a poster unless --force.\n"
        "\n"
        "Exit status: 0 registered; 1 signing, the database or a file failed (nothing is\n"
        "recorded, no poster file is left); 2 bad arguments.\n"
        "\n"
        "Example:\n"
        "  prox-authority venue register --db authority.db --key 310-v1.sec \\\n"
        "      --name 'Central Market' --address '1 Market Street' --type market --stay 60 \\\n"
        "      --out posters/central-market");
    g_option_context_add_main_entries(context, entries, NULL);
    time_options_add(context, &time_options);
    if (!parse(context, command, &argc, &argv))
        return EXIT_USAGE;
    if (argc != 1)
        return usage_error(command, "unexpected argument '%s'", argv[1]);
    if (db_path == NULL || key_path == NULL || name == NULL || type_name == NULL || stay == 0 ||
        out_dir == NULL)
        return usage_error(command, "--db, --key, --name, --type, --stay and --out are required");
    ProxVenueType type;
    if (!prox_venue_type_from_string(type_name, &type))
        return usage_error(command, "--type must be one of %s", venue_types_help);
    if (stay < PROX_VENUE_STAY_MIN_MINUTES || stay > PROX_VENUE_STAY_MAX_MINUTES)
        return usage_error(command, "--stay must be %d..%d minutes", PROX_VENUE_STAY_MIN_MINUTES,
                           PROX_VENUE_STAY_MAX_MINUTES);
    if (address == NULL)
        address = g_strdup("");
    if (!g_utf8_validate(name, -1, NULL) || name[0] == '\0' || strlen(name) > PROX_VENUE_NAME_MAX)
        return usage_error(command, "--name must be 1..%d bytes of UTF-8", PROX_VENUE_NAME_MAX);
    if (!g_utf8_validate(address, -1, NULL) || strlen(address) > PROX_VENUE_ADDRESS_MAX)
        return usage_error(command, "--address must be at most %d bytes of UTF-8",
                           PROX_VENUE_ADDRESS_MAX);
    g_autoptr(GError) error = NULL;
    gint64 now = 0;
    if (!time_options_now(&time_options, &now, &error))
        return usage_error(command, "%s", error->message);

    g_autoptr(ProxExportSigner) signer = prox_export_signer_load_file(key_path, NULL, NULL, &error);
    if (signer == NULL)
        return failed(command, error);
    if (prox_export_signer_key_type(signer) != PROX_EXPORT_KEY_ED25519)
        return usage_error(command, "--key must be an Ed25519 key from init-key");
    g_autofree char *url = NULL;
    g_autoptr(ProxVenue) venue = NULL;
    if (!prox_venue_create(name, address, type, (guint)stay, signer, &url, &venue, &error))
        return failed(command, error);

    g_autoptr(AuthorityDb) db = authority_db_open(db_path, &error);
    if (db == NULL)
        return failed(command, error);
    gint64 id = 0;
    AuthorityPosterInfo info = {0};
    AuthorityPosterContent content = {
        .url = url,
        .name = venue->name,
        .address = venue->address,
        .kind = prox_venue_type_to_string(venue->type),
        .stay_minutes = venue->default_stay_minutes,
    };
    /* Recorded only when the poster is on disk; the poster stays only when recorded. */
    if (!authority_db_exec(db, "BEGIN IMMEDIATE", &error))
        return failed(command, error);
    if (!authority_venue_insert(db, venue, now, &id, &error) ||
        !authority_poster_write(out_dir, &content, force, &info, &error)) {
        sqlite3_exec(authority_db_sqlite(db), "ROLLBACK", NULL, NULL, NULL);
        return failed(command, error);
    }
    if (!authority_db_exec(db, "COMMIT", &error)) {
        sqlite3_exec(authority_db_sqlite(db), "ROLLBACK", NULL, NULL, NULL);
        const char *names[] = {AUTHORITY_POSTER_PNG_NAME, AUTHORITY_POSTER_SVG_NAME,
                               AUTHORITY_POSTER_URL_NAME};
        for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
            g_autofree char *path = g_build_filename(out_dir, names[i], NULL);
            g_unlink(path);
        }
        return failed(command, error);
    }
    char prefix[2 * 4 + 1];
    prox_hex_encode(venue->location_id, 4, prefix);
    printf("venue %" G_GINT64_FORMAT " registered: \"%s\" (%s, automatic checkout after %u min), "
           "location id %s...\n",
           id, venue->name, prox_venue_type_to_string(venue->type), venue->default_stay_minutes,
           prefix);
    printf("wrote %s/%s, %s/%s (%dx%d px) and %s/%s (%zu bytes)\n", out_dir,
           AUTHORITY_POSTER_SVG_NAME, out_dir, AUTHORITY_POSTER_PNG_NAME, info.png_size,
           info.png_size, out_dir, AUTHORITY_POSTER_URL_NAME, strlen(url));
    printf("QR code: version %d, %dx%d modules, error correction M, %d-module quiet zone\n",
           info.version, info.modules, info.modules, AUTHORITY_POSTER_QUIET_ZONE);
    char mm[G_ASCII_DTOSTR_BUF_SIZE];
    char mm_quiet[G_ASCII_DTOSTR_BUF_SIZE];
    AuthorityPosterInfo with_quiet = info;
    with_quiet.modules += 2 * AUTHORITY_POSTER_QUIET_ZONE;
    printf("printed 15 cm wide, a module is %s mm (%s mm if the 15 cm include the quiet zone)\n",
           g_ascii_formatd(mm, sizeof mm, "%.2f", authority_poster_module_mm(&info, 150.0)),
           g_ascii_formatd(mm_quiet, sizeof mm_quiet, "%.2f",
                           authority_poster_module_mm(&with_quiet, 150.0)));
    return EXIT_OK;
}

static int cmd_venue_list(int argc, char **argv)
{
    const char *command = "venue list";
    g_autofree char *db_path = NULL;
    const GOptionEntry entries[] = {
        {"db", 0, 0, G_OPTION_ARG_FILENAME, &db_path, "The authority database", "DB"},
        {NULL},
    };
    g_autoptr(GOptionContext) context = command_context(
        NULL, "List the registered venues.",
        "First line: \"N venues\". Then one line per venue, oldest first:\n"
        "  ID CREATED(YYYY-MM-DD, UTC) TYPE STAY_MINUTES LOCATION_ID_PREFIX NAME | ADDRESS\n"
        "LOCATION_ID_PREFIX is the first 8 hex digits of the location id, the value phones\n"
        "store at check-in and reports carry.\n"
        "\n"
        "Exit status: 0 listed; 1 the database cannot be read; 2 bad arguments.");
    g_option_context_add_main_entries(context, entries, NULL);
    if (!parse(context, command, &argc, &argv))
        return EXIT_USAGE;
    if (argc != 1)
        return usage_error(command, "unexpected argument '%s'", argv[1]);
    if (db_path == NULL)
        return usage_error(command, "--db is required");
    g_autoptr(GError) error = NULL;
    g_autoptr(AuthorityDb) db = authority_db_open(db_path, &error);
    if (db == NULL)
        return failed(command, error);
    g_autoptr(GArray) venues = authority_venue_list(db, &error);
    if (venues == NULL)
        return failed(command, error);
    printf("%u venues\n", venues->len);
    for (guint i = 0; i < venues->len; i++) {
        const AuthorityVenueRecord *v = &g_array_index(venues, AuthorityVenueRecord, i);
        char prefix[2 * 4 + 1];
        prox_hex_encode(v->location_id, 4, prefix);
        g_autofree char *day = format_day(v->created_at);
        const char *type = prox_venue_type_to_string(v->type);
        printf("%" G_GINT64_FORMAT " %s %s %u %s %s | %s\n", v->id, day,
               type != NULL ? type : "other", v->stay_minutes, prefix, v->name, v->address);
    }
    return EXIT_OK;
}

/* One registered venue's counts, by hour (AuthorityVenueCount, oldest first). */
typedef struct {
    const AuthorityVenueRecord *venue;
    GArray *hours;
    gint64 total;
} VenueCounts;

static void venue_counts_clear(gpointer data)
{
    g_clear_pointer(&((VenueCounts *)data)->hours, g_array_unref);
}

/* "2020-05-20T17:00:00Z" */
static char *format_hour(gint64 t)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(t);
    return dt != NULL ? g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ") : g_strdup("-");
}

static void print_venue_counts_text(const GArray *per_venue, gint64 unregistered)
{
    for (guint i = 0; i < per_venue->len; i++) {
        const VenueCounts *vc = &g_array_index(per_venue, VenueCounts, i);
        const char *type = prox_venue_type_to_string(vc->venue->type);
        printf("venue %" G_GINT64_FORMAT " %s \"%s\": %" G_GINT64_FORMAT "\n", vc->venue->id,
               type != NULL ? type : "other", vc->venue->name, vc->total);
        for (guint j = 0; j < vc->hours->len;) {
            /* One day: its total, then its hours. */
            gint64 day = g_array_index(vc->hours, AuthorityVenueCount, j).hour / DAY_SECONDS;
            guint end = j;
            gint64 day_total = 0;
            while (end < vc->hours->len &&
                   g_array_index(vc->hours, AuthorityVenueCount, end).hour / DAY_SECONDS == day)
                day_total += g_array_index(vc->hours, AuthorityVenueCount, end++).count;
            g_autofree char *day_text = format_day(day * DAY_SECONDS);
            printf("  %s: %" G_GINT64_FORMAT "\n", day_text, day_total);
            for (; j < end; j++) {
                const AuthorityVenueCount *c = &g_array_index(vc->hours, AuthorityVenueCount, j);
                printf("    %02d:00 %" G_GINT64_FORMAT "\n", (int)(c->hour % DAY_SECONDS / 3600),
                       c->count);
            }
        }
    }
    printf("unregistered: %" G_GINT64_FORMAT "\n", unregistered);
}

static void print_venue_counts_json(const GArray *per_venue, gint64 unregistered, const char *since)
{
    g_autoptr(JsonBuilder) b = json_builder_new_immutable();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "since");
    if (since != NULL)
        json_builder_add_string_value(b, since);
    else
        json_builder_add_null_value(b);
    json_builder_set_member_name(b, "venues");
    json_builder_begin_array(b);
    for (guint i = 0; i < per_venue->len; i++) {
        const VenueCounts *vc = &g_array_index(per_venue, VenueCounts, i);
        const char *type = prox_venue_type_to_string(vc->venue->type);
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "id");
        json_builder_add_int_value(b, vc->venue->id);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, vc->venue->name);
        json_builder_set_member_name(b, "type");
        json_builder_add_string_value(b, type != NULL ? type : "other");
        json_builder_set_member_name(b, "total");
        json_builder_add_int_value(b, vc->total);
        json_builder_set_member_name(b, "days");
        json_builder_begin_array(b);
        for (guint j = 0; j < vc->hours->len;) {
            gint64 day = g_array_index(vc->hours, AuthorityVenueCount, j).hour / DAY_SECONDS;
            g_autofree char *day_text = format_day(day * DAY_SECONDS);
            json_builder_begin_object(b);
            json_builder_set_member_name(b, "day");
            json_builder_add_string_value(b, day_text);
            json_builder_set_member_name(b, "hours");
            json_builder_begin_array(b);
            gint64 day_total = 0;
            for (; j < vc->hours->len &&
                   g_array_index(vc->hours, AuthorityVenueCount, j).hour / DAY_SECONDS == day;
                 j++) {
                const AuthorityVenueCount *c = &g_array_index(vc->hours, AuthorityVenueCount, j);
                g_autofree char *start = format_hour(c->hour);
                json_builder_begin_object(b);
                json_builder_set_member_name(b, "hour");
                json_builder_add_int_value(b, c->hour);
                json_builder_set_member_name(b, "start");
                json_builder_add_string_value(b, start);
                json_builder_set_member_name(b, "count");
                json_builder_add_int_value(b, c->count);
                json_builder_end_object(b);
                day_total += c->count;
            }
            json_builder_end_array(b);
            json_builder_set_member_name(b, "total");
            json_builder_add_int_value(b, day_total);
            json_builder_end_object(b);
        }
        json_builder_end_array(b);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_set_member_name(b, "unregistered");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "total");
    json_builder_add_int_value(b, unregistered);
    json_builder_end_object(b);
    json_builder_end_object(b);
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    g_autofree char *text = json_to_string(root, TRUE);
    printf("%s\n", text);
}

static int cmd_venue_counts(int argc, char **argv)
{
    const char *command = "venue counts";
    g_autofree char *db_path = NULL;
    g_autofree char *since = NULL;
    gboolean json = FALSE;
    const GOptionEntry entries[] = {
        {"db", 0, 0, G_OPTION_ARG_FILENAME, &db_path, "The authority database", "DB"},
        {"since", 0, 0, G_OPTION_ARG_STRING, &since,
         "Only hours from this day on (UTC; default: all stored)", "YYYY-MM-DD"},
        {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL},
        {NULL},
    };
    g_autoptr(GOptionContext) context = command_context(
        NULL, "Show the opt-in anonymous check-in counts of the registered venues.",
        "Devices whose owners enabled [Venues] ShareCounts send, for each check-in, the\n"
        "venue's location hash and the hour of arrival to prox-keyserver (POST\n"
        "/v1/venue-count), which stores only a count per location hash and hour. This\n"
        "matches the hashes with the registered venues (the hash of each venue's location\n"
        "id, docs/venues.md §1). Times are UTC.\n"
        "\n"
        "Text: for every registered venue, oldest first,\n"
        "  venue ID TYPE \"NAME\": TOTAL\n"
        "then for each day with counts \"  YYYY-MM-DD: TOTAL\" and its hours \"    HH:00 COUNT\";\n"
        "last \"unregistered: TOTAL\", the counts of hashes that match no registered venue\n"
        "(mistyped or forged, or venues of another authority).\n"
        "JSON: {\"since\": DAY or null, \"venues\": [{\"id\", \"name\", \"type\", \"total\",\n"
        "\"days\": [{\"day\", \"total\", \"hours\": [{\"hour\": UNIX, \"start\": ISO 8601,\n"
        "\"count\"}]}]}], \"unregistered\": {\"total\": N}}.\n"
        "\n"
        "Exit status: 0 shown; 1 the database cannot be read; 2 bad arguments.");
    g_option_context_add_main_entries(context, entries, NULL);
    if (!parse(context, command, &argc, &argv))
        return EXIT_USAGE;
    if (argc != 1)
        return usage_error(command, "unexpected argument '%s'", argv[1]);
    if (db_path == NULL)
        return usage_error(command, "--db is required");
    g_autoptr(GError) error = NULL;
    gint64 since_day = 0;
    if (since != NULL && !authority_parse_day(since, &since_day, &error))
        return usage_error(command, "--since: %s", error->message);
    g_autoptr(AuthorityDb) db = authority_db_open(db_path, &error);
    if (db == NULL)
        return failed(command, error);
    g_autoptr(GArray) venues = authority_venue_list(db, &error);
    if (venues == NULL)
        return failed(command, error);
    g_autoptr(GArray) counts = authority_venue_counts_list(
        db, since != NULL ? since_day * DAY_SECONDS : G_MININT64, &error);
    if (counts == NULL)
        return failed(command, error);

    g_autoptr(GArray) per_venue = g_array_sized_new(FALSE, TRUE, sizeof(VenueCounts), venues->len);
    g_array_set_clear_func(per_venue, venue_counts_clear);
    /* location hash -> index in per_venue */
    g_autoptr(GHashTable) by_hash =
        g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify)g_bytes_unref, NULL);
    for (guint i = 0; i < venues->len; i++) {
        const AuthorityVenueRecord *v = &g_array_index(venues, AuthorityVenueRecord, i);
        VenueCounts vc = {.venue = v,
                          .hours = g_array_new(FALSE, TRUE, sizeof(AuthorityVenueCount))};
        g_array_append_val(per_venue, vc);
        uint8_t hash[PROX_LOCATION_HASH_LEN];
        prox_venue_location_hash(v->location_id, hash);
        g_hash_table_insert(by_hash, g_bytes_new(hash, sizeof hash), GUINT_TO_POINTER(i + 1));
    }
    gint64 unregistered = 0;
    for (guint i = 0; i < counts->len; i++) {
        const AuthorityVenueCount *c = &g_array_index(counts, AuthorityVenueCount, i);
        g_autoptr(GBytes) key = g_bytes_new_static(c->location_hash, PROX_LOCATION_HASH_LEN);
        guint index = GPOINTER_TO_UINT(g_hash_table_lookup(by_hash, key));
        if (index == 0) {
            unregistered += c->count;
            continue;
        }
        VenueCounts *vc = &g_array_index(per_venue, VenueCounts, index - 1);
        g_array_append_val(vc->hours, *c);
        vc->total += c->count;
    }
    if (json)
        print_venue_counts_json(per_venue, unregistered, since);
    else
        print_venue_counts_text(per_venue, unregistered);
    return EXIT_OK;
}

/* "prox-authority GROUP SUBCOMMAND ...": dispatches to the subcommand. */
typedef struct {
    const char *name;
    int (*main)(int argc, char **argv);
} Subcommand;

static int dispatch(const char *group, const char *help, const Subcommand *subs, size_t n, int argc,
                    char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "prox-authority %s: missing subcommand (try 'prox-authority %s --help')\n",
                group, group);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(help, stdout);
        return EXIT_OK;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(argv[1], subs[i].name) == 0) {
            g_autofree char *prgname = g_strdup_printf("prox-authority %s %s", group, argv[1]);
            g_set_prgname(prgname);
            return subs[i].main(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "prox-authority %s: unknown subcommand '%s' (try 'prox-authority %s --help')\n",
            group, argv[1], group);
    return EXIT_USAGE;
}

static int cmd_venue(int argc, char **argv)
{
    static const char help[] =
        "Usage: prox-authority venue SUBCOMMAND [OPTION...]\n"
        "\n"
        "QR check-in venues (docs/venues.md): the authority signs each venue's payload; a\n"
        "phone that scans the poster verifies it with the authority's pinned public key.\n"
        "\n"
        "Subcommands:\n"
        "  register --db DB --key SECKEY --name NAME [--address ADDR] --type TYPE\n"
        "           --stay MINUTES --out DIR\n"
        "                 sign a venue, record it, write DIR/poster.svg, DIR/poster.png and\n"
        "                 DIR/url.txt\n"
        "  list --db DB   the registered venues\n"
        "  counts --db DB [--since YYYY-MM-DD] [--json]\n"
        "                 opt-in anonymous check-in counts per registered venue, day and hour\n"
        "\n"
        "Run 'prox-authority venue SUBCOMMAND --help' for the options of a subcommand.\n"
        "Exit status: 0 success, 1 the operation failed, 2 bad arguments.\n";
    static const Subcommand subs[] = {
        {"register", cmd_venue_register},
        {"list", cmd_venue_list},
        {"counts", cmd_venue_counts},
    };
    return dispatch("venue", help, subs, G_N_ELEMENTS(subs), argc, argv);
}

/* ---- warning ---- */

static int cmd_warning_import(int argc, char **argv)
{
    const char *command = "warning import";
    g_autofree char *db_path = NULL;
    g_auto(TimeOptions) time_options = {0};
    const GOptionEntry entries[] = {
        {"db", 0, 0, G_OPTION_ARG_FILENAME, &db_path, "The authority database", "DB"},
        {NULL},
    };
    g_autoptr(GOptionContext) context = command_context(
        "WARNINGS.json", "Store bus or venue warnings for the next publish.",
        "WARNINGS.json (docs/venues.md §6; 'prox-tool beacon trace' writes it):\n"
        "  {\"warnings\": [\n"
        "    {\"kind\": \"same-vehicle\", \"beaconKey\": \"<base64 of the beacon's 16-byte "
        "TEK>\",\n"
        "     \"rollingStartIntervalNumber\": N, \"rollingPeriod\": 1..144 (default 144),\n"
        "     \"start\": UNIX, \"end\": UNIX, \"transmissionRisk\": 1..8},\n"
        "    {\"kind\": \"venue\", \"locationId\": \"<64 hex>\" (or \"locationHash\"),\n"
        "     \"start\": UNIX, \"end\": UNIX, \"transmissionRisk\": 1..8}]}\n"
        "Every warning is checked: known kind and fields only, start < end <= start + 24 h,\n"
        "not ending in the future nor more than 14 days ago, a same-vehicle window that\n"
        "overlaps its TEK's validity; no warning twice. One bad warning stores none; the\n"
        "error names the warning (from 0) and the field. Warnings already stored are skipped.\n"
        "A venue warning's locationId is hashed (docs/venues.md §1) before it is stored.\n"
        "\n"
        "publish signs stored warnings into the next key list (a beacon's TEK only once its\n"
        "period is over).\n"
        "\n"
        "Exit status: 0 stored; 1 the file is invalid or the database failed; 2 bad\n"
        "arguments.\n"
        "\n"
        "Example:\n"
        "  prox-tool beacon trace --store bus-42.db --keys lists/*.zip --key 310-v1.pub \\\n"
        "      --out bus-42-warnings.json\n"
        "  prox-authority warning import --db authority.db bus-42-warnings.json");
    g_option_context_add_main_entries(context, entries, NULL);
    time_options_add(context, &time_options);
    if (!parse(context, command, &argc, &argv))
        return EXIT_USAGE;
    if (argc != 2)
        return usage_error(command, "expected exactly one WARNINGS.json");
    if (db_path == NULL)
        return usage_error(command, "--db is required");
    g_autoptr(GError) error = NULL;
    gint64 now = 0;
    if (!time_options_now(&time_options, &now, &error))
        return usage_error(command, "%s", error->message);
    g_autofree char *text = NULL;
    gsize len = 0;
    if (!g_file_get_contents(argv[1], &text, &len, &error))
        return failed(command, error);
    g_autoptr(GArray) warnings = authority_warnings_parse(text, len, now, &error);
    if (warnings == NULL) {
        fprintf(stderr, "prox-authority %s: %s: %s\n", command, argv[1], error->message);
        return EXIT_FAILED;
    }
    g_autoptr(AuthorityDb) db = authority_db_open(db_path, &error);
    if (db == NULL)
        return failed(command, error);
    guint inserted = 0;
    if (!authority_warnings_import(db, (const ProxVenueWarning *)warnings->data, warnings->len, now,
                                   &inserted, &error))
        return failed(command, error);
    guint vehicle = 0;
    for (guint i = 0; i < warnings->len; i++)
        vehicle +=
            g_array_index(warnings, ProxVenueWarning, i).kind == PROX_VENUE_WARNING_SAME_VEHICLE;
    printf("imported %u warnings (%u already stored); the file holds %u same-vehicle and %u "
           "venue warnings\n",
           inserted, warnings->len - inserted, vehicle, warnings->len - vehicle);
    return EXIT_OK;
}

static int cmd_warning(int argc, char **argv)
{
    static const char help[] =
        "Usage: prox-authority warning SUBCOMMAND [OPTION...]\n"
        "\n"
        "Bus (same-vehicle) and venue warnings (docs/venues.md): published with the keys in\n"
        "the signed key lists (export field 100). Venue warnings also come from check-ins\n"
        "that people report with their keys (prox-keyserver).\n"
        "\n"
        "Subcommands:\n"
        "  import --db DB WARNINGS.json   validate and store warnings for the next publish\n"
        "\n"
        "Run 'prox-authority warning SUBCOMMAND --help' for the options of a subcommand.\n"
        "Exit status: 0 success, 1 the operation failed, 2 bad arguments.\n";
    static const Subcommand subs[] = {
        {"import", cmd_warning_import},
    };
    return dispatch("warning", help, subs, G_N_ELEMENTS(subs), argc, argv);
}

/* ---- status ---- */

static int cmd_status(int argc, char **argv)
{
    const char *command = "status";
    g_autofree char *db_path = NULL;
    g_auto(TimeOptions) time_options = {0};
    const GOptionEntry entries[] = {
        {"db", 0, 0, G_OPTION_ARG_FILENAME, &db_path, "The authority database", "DB"},
        {NULL},
    };
    g_autoptr(GOptionContext) context = command_context(
        NULL, "Print counts of codes, keys, venues, warnings, venue counts and files.",
        "One \"name value\" pair a line, for people and scripts.");
    g_option_context_add_main_entries(context, entries, NULL);
    time_options_add(context, &time_options);
    if (!parse(context, command, &argc, &argv))
        return EXIT_USAGE;
    if (argc != 1)
        return usage_error(command, "unexpected argument '%s'", argv[1]);
    if (db_path == NULL)
        return usage_error(command, "--db is required");
    g_autoptr(GError) error = NULL;
    gint64 now = 0;
    if (!time_options_now(&time_options, &now, &error))
        return usage_error(command, "%s", error->message);
    g_autoptr(AuthorityDb) db = authority_db_open(db_path, &error);
    if (db == NULL)
        return failed(command, error);
    static const struct {
        const char *name;
        const char *sql;
    } counts[] = {
        {"codes_usable", "SELECT count(*) FROM codes WHERE used_at IS NULL AND expires_at > ?1"},
        {"codes_used", "SELECT count(*) FROM codes WHERE used_at IS NOT NULL"},
        {"keys_unpublished", "SELECT count(*) FROM keys WHERE run_id IS NULL"},
        {"keys_published", "SELECT count(*) FROM keys WHERE run_id IS NOT NULL"},
        {"publish_runs", "SELECT count(*) FROM publish_runs"},
        {"files", "SELECT count(*) FROM export_files"},
        {"last_publish", "SELECT coalesce(max(created_at), 0) FROM publish_runs"},
        {"venues", "SELECT count(*) FROM venues"},
        {"warnings_unpublished", "SELECT count(*) FROM venue_warnings WHERE run_id IS NULL"},
        {"warnings_published", "SELECT count(*) FROM venue_warnings WHERE run_id IS NOT NULL"},
        {"checkins_unpublished", "SELECT count(*) FROM checkins WHERE run_id IS NULL"},
        {"checkins_published", "SELECT count(*) FROM checkins WHERE run_id IS NOT NULL"},
        {"venue_counts", "SELECT coalesce(sum(count), 0) FROM venue_counts"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(counts); i++) {
        sqlite3_stmt *stmt = authority_db_statement(db, counts[i].sql, &error);
        if (stmt == NULL)
            return failed(command, error);
        if (sqlite3_bind_parameter_count(stmt) > 0)
            sqlite3_bind_int64(stmt, 1, now);
        if (sqlite3_step(stmt) != SQLITE_ROW) {
            authority_db_fail(db, counts[i].name, &error);
            sqlite3_reset(stmt);
            return failed(command, error);
        }
        printf("%s %" G_GINT64_FORMAT "\n", counts[i].name, (gint64)sqlite3_column_int64(stmt, 0));
        sqlite3_reset(stmt);
    }
    return EXIT_OK;
}

static const struct {
    const char *name;
    int (*main)(int argc, char **argv);
} commands[] = {
    {"init-key", cmd_init_key}, {"issue-code", cmd_issue_code}, {"import-keys", cmd_import_keys},
    {"publish", cmd_publish},   {"venue", cmd_venue},           {"warning", cmd_warning},
    {"status", cmd_status},
};

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    if (sodium_init() < 0) {
        fprintf(stderr, "prox-authority: libsodium failed to initialise\n");
        return EXIT_FAILED;
    }
    if (argc < 2) {
        fputs(overview, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(overview, stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("prox-authority %s\n", PROXD_VERSION);
        return EXIT_OK;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            g_autofree char *name = g_strconcat("prox-authority ", argv[1], NULL);
            g_set_prgname(name);
            return commands[i].main(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "prox-authority: unknown command '%s' (try 'prox-authority --help')\n",
            argv[1]);
    return EXIT_USAGE;
}
