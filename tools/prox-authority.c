/* prox-authority.c - the health authority's command-line tool: signing key, one-time codes,
 * importing keys, publishing signed key lists. Shares its database with prox-keyserver. */
#define G_LOG_DOMAIN "prox-authority"

#include "authority-clock.h"
#include "authority-db.h"
#include "authority-ingest.h"
#include "authority-publish.h"
#include "authority-upload.h"
#include "prox-export.h"

#include <errno.h>
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
    "               a minimum count, delete old files, update index.txt atomically\n"
    "  status       counts of codes, keys and published files\n"
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
    "      --key /etc/prox-authority/310-v1.sec --out /srv/prox/keys\n";

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
    if (!authority_ingest_import(db, upload, type, onset != NULL, onset_day, now, &inserted,
                                 &error))
        return failed(command, error);
    printf("imported %u keys (%u already stored)\n", inserted, upload->keys->len - inserted);
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
        "(names sort by time), padded with random keys shaped like the real ones up to\n"
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
    }
out:
    authority_publish_options_clear(&options);
    return status;
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
    g_autoptr(GOptionContext) context =
        command_context(NULL, "Print counts of codes, keys and published files.",
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
    {"publish", cmd_publish},   {"status", cmd_status},
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
