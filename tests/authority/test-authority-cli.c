/* test-authority-cli.c - prox-authority as a process: signing key, codes, imports, and
 * publish (signed, padded, withheld until rolled over, ordered, idempotent, retained 14 days,
 * and never an index naming a file that is not complete on disk). */
#include "authority-test-util.h"
#include "prox-export.h"

#include <sodium.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

typedef TestAuthorityFixture Fixture;

/* ---- helpers ---- */

/* Writes a GAEN key file with the given keys and imports it at `now`. */
static int import_keys(Fixture *f, const char *now, const char *keys_json, char **err)
{
    g_autofree char *path = g_build_filename(f->dir, "import.json", NULL);
    g_autofree char *text = g_strdup_printf("{\"temporaryExposureKeys\":[%s]}", keys_json);
    g_assert_true(g_file_set_contents(path, text, -1, NULL));
    return test_authority(NULL, err, "import-keys", "--db", f->db, "--now", now, path, NULL);
}

/* n random keys, one a day ending at today's start (as of TEST_NOW), wrapping after 14 days,
 * as JSON and bytes. */
static char *random_keys(guint n, uint8_t *bytes)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < n; i++) {
        randombytes_buf(bytes + i * PROX_KEY_LEN, PROX_KEY_LEN);
        guint day = (n - i - 1) % 14 + 1; /* days before today, 14 at most */
        g_autofree char *k =
            test_key_json(bytes + i * PROX_KEY_LEN, TEST_TODAY_START - day * 144, 144);
        g_string_append_printf(s, "%s%s", i ? "," : "", k);
    }
    return g_string_free(s, FALSE);
}

static int publish(Fixture *f, gint64 now, const char *min_keys, char **out)
{
    g_autofree char *now_arg = g_strdup_printf("@%" G_GINT64_FORMAT, now);
    return test_authority(out, NULL, "publish", "--db", f->db, "--key", f->sec, "--out", f->out,
                          "--now", now_arg, "--min-keys", min_keys, "--padding-jitter", "0", NULL);
}

/* The index, checked the way a device would use it: every name it lists exists and
 * verifies, names are in ascending (time) order, no name twice. Returns the names. */
static GStrv check_index(Fixture *f, guint *total_keys)
{
    g_autofree char *path = g_build_filename(f->out, "index.txt", NULL);
    g_autofree char *text = NULL;
    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    g_assert_true(text[0] == '\0' || g_str_has_suffix(text, "\n"));
    GStrv names = g_strsplit(text, "\n", -1);
    guint n = g_strv_length(names);
    if (n > 0) {
        g_assert_cmpstr(names[n - 1], ==, ""); /* after the last newline */
        g_free(names[n - 1]);
        names[n - 1] = NULL;
    }
    *total_keys = 0;
    for (guint i = 0; names[i] != NULL; i++) {
        if (i > 0)
            g_assert_cmpstr(names[i - 1], <, names[i]);
        g_autofree char *zip = g_build_filename(f->out, names[i], NULL);
        g_autoptr(ProxExport) export = NULL;
        g_autoptr(GError) error = NULL;
        g_assert_true(prox_export_read(zip, f->keyring, &export, &error));
        g_assert_no_error(error);
        g_assert_cmpstr(export->signer_key_id, ==, "310");
        g_assert_cmpstr(export->signature_algorithm, ==, PROX_EXPORT_ALGORITHM_ED25519);
        *total_keys += export->keys->len;
    }
    return names;
}

static ProxExport *read_export(Fixture *f, const char *name)
{
    g_autofree char *zip = g_build_filename(f->out, name, NULL);
    ProxExport *export = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_export_read(zip, f->keyring, &export, &error));
    return export;
}

static const ProxDiagnosisKey *find_key(const ProxExport *export, const uint8_t *key)
{
    for (guint i = 0; i < export->keys->len; i++) {
        const ProxDiagnosisKey *k = &g_array_index(export->keys, ProxDiagnosisKey, i);
        if (memcmp(k->tek.key, key, PROX_KEY_LEN) == 0)
            return k;
    }
    return NULL;
}

static int compare_strings(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names, sizes, modification times and inodes of everything in the publish directory. */
static char *dir_state(Fixture *f)
{
    g_autoptr(GDir) dir = g_dir_open(f->out, 0, NULL);
    g_assert_nonnull(dir);
    g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
    const char *name;
    while ((name = g_dir_read_name(dir)) != NULL) {
        g_autofree char *path = g_build_filename(f->out, name, NULL);
        struct stat st;
        g_assert_cmpint(stat(path, &st), ==, 0);
        g_ptr_array_add(lines, g_strdup_printf("%s %lld %lld.%09ld %llu", name,
                                               (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                                               st.st_mtim.tv_nsec, (unsigned long long)st.st_ino));
    }
    g_ptr_array_sort(lines, compare_strings);
    g_ptr_array_add(lines, NULL);
    return g_strjoinv("\n", (char **)lines->pdata);
}

/* ---- tests ---- */

static void test_help(void)
{
    g_autofree char *out = NULL;
    g_assert_cmpint(test_authority(&out, NULL, "--help", NULL), ==, 0);
    for (const char *const *s = (const char *const[]){"NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS",
                                                      "FILES", "EXIT STATUS", "EXAMPLES", NULL};
         *s != NULL; s++)
        g_assert_nonnull(strstr(out, *s));
    const char *commands[] = {"init-key", "issue-code", "import-keys", "publish", "status"};
    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
        g_autofree char *help = NULL;
        g_assert_cmpint(test_authority(&help, NULL, commands[i], "--help", NULL), ==, 0);
        g_assert_nonnull(strstr(help, "Usage:"));
    }
    /* Bad arguments: exit 2 with one line on stderr. */
    const char *const bad[][4] = {
        {"frobnicate", NULL},
        {"issue-code", NULL},
        {"issue-code", "--db", "x.db", NULL},
        {"publish", "--bogus", NULL},
        {"import-keys", "--db", "x.db", NULL},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *err = NULL;
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        g_ptr_array_add(argv, (gpointer)g_getenv("PROX_AUTHORITY"));
        for (size_t j = 0; bad[i][j] != NULL; j++)
            g_ptr_array_add(argv, (gpointer)bad[i][j]);
        g_ptr_array_add(argv, NULL);
        g_assert_cmpint(test_run((const char *const *)argv->pdata, NULL, &err), ==, 2);
        g_assert_true(g_str_has_prefix(err, "prox-authority"));
        g_assert_cmpstr(strchr(err, '\n') + 1, ==, "");
    }
    g_assert_false(g_file_test("x.db", G_FILE_TEST_EXISTS));
}

static void test_init_key(Fixture *f, gconstpointer data)
{
    struct stat st;
    g_assert_cmpint(stat(f->sec, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 0777, ==, 0600);
    g_assert_cmpint(stat(f->pub, &st), ==, 0);
    mode_t mask = umask(022);
    umask(mask);
    g_assert_cmpint(st.st_mode & 0777, ==, 0644 & ~mask); /* for devices and web servers */
    g_autofree char *id = NULL;
    g_autofree char *version = NULL;
    uint8_t pk[PROX_ED25519_PUBLIC_KEY_LEN];
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_export_ed25519_public_load(f->pub, &id, &version, pk, &error));
    g_assert_cmpstr(id, ==, "310");
    g_assert_cmpstr(version, ==, "v1");
    /* Never overwrites. */
    g_autofree char *before = NULL;
    g_assert_true(g_file_get_contents(f->sec, &before, NULL, NULL));
    g_autofree char *keydir = g_path_get_dirname(f->sec);
    g_assert_cmpint(test_authority(NULL, NULL, "init-key", "--key-id", "310", "--key-version", "v1",
                                   "--dir", keydir, NULL),
                    ==, 1);
    g_autofree char *after = NULL;
    g_assert_true(g_file_get_contents(f->sec, &after, NULL, NULL));
    g_assert_cmpstr(before, ==, after);
    g_assert_cmpint(test_authority(NULL, NULL, "init-key", "--key-id", "a/b", "--key-version", "v1",
                                   "--dir", keydir, NULL),
                    ==, 2);
}

static void test_issue_code_cli(Fixture *f, gconstpointer data)
{
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (int i = 0; i < 50; i++) {
        char *code = test_issue_code(f->db, NULL, NULL);
        g_assert_cmpuint(strlen(code), ==, 14);
        for (int c = 0; c < 14; c++) {
            if (c == 4 || c == 9)
                g_assert_cmpint(code[c], ==, '-');
            else
                g_assert_nonnull(strchr("23456789ABCDEFGHJKLMNPQRSTUVWXYZ", code[c]));
        }
        g_assert_true(g_hash_table_add(seen, code));
    }
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM codes"), ==, 50);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM codes WHERE expires_at = "
                                       "1590086400 AND issued_at = 1590000000 AND "
                                       "onset_day = 18399 AND report_type = 1 AND "
                                       "length(hash) = 32 AND used_at IS NULL"),
                    ==, 50);
    /* Only hashes are stored: no code appears in the database files, with or without dashes. */
    g_autofree char *db_bytes = NULL;
    gsize db_len = 0;
    g_assert_true(g_file_get_contents(f->db, &db_bytes, &db_len, NULL));
    GHashTableIter iter;
    gpointer key;
    g_hash_table_iter_init(&iter, seen);
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
        char plain[13];
        const char *code = key;
        memcpy(plain, code, 4);
        memcpy(plain + 4, code + 5, 4);
        memcpy(plain + 8, code + 10, 4);
        plain[12] = '\0';
        g_assert_null(memmem(db_bytes, db_len, plain, 12));
        g_assert_null(memmem(db_bytes, db_len, code, 14));
    }
    struct stat st;
    g_assert_cmpint(stat(f->db, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 0777, ==, 0600);
    g_autofree char *pepper = g_strconcat(f->db, ".pepper", NULL);
    g_assert_cmpint(stat(pepper, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 0777, ==, 0600);
    g_assert_cmpint(st.st_size, ==, 32);

    /* Onset, type and lifetime are checked. */
    const char *const bad[][2] = {
        {"--onset", "2020-05-21"}, /* future */
        {"--onset", "2020-05-05"}, /* 15 days ago */
        {"--onset", "2020-02-30"}, {"--test-type", "antigen"}, {"--expires", "8d"},
        {"--expires", "0h"},       {"--expires", "24"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        const char *onset = strcmp(bad[i][0], "--onset") == 0 ? bad[i][1] : "2020-05-17";
        const char *type = strcmp(bad[i][0], "--test-type") == 0 ? bad[i][1] : "clinical";
        const char *expires = strcmp(bad[i][0], "--expires") == 0 ? bad[i][1] : "24h";
        g_assert_cmpint(test_authority(NULL, NULL, "issue-code", "--db", f->db, "--onset", onset,
                                       "--test-type", type, "--expires", expires, "--now",
                                       TEST_NOW_ARG, NULL),
                        ==, 2);
    }
    g_assert_cmpint(test_authority(NULL, NULL, "issue-code", "--db", f->db, "--onset", "2020-05-06",
                                   "--test-type", "self-report", "--expires", "90m", "--now",
                                   TEST_NOW_ARG, NULL),
                    ==, 0);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM codes WHERE report_type = 3 AND "
                                       "expires_at = 1590005400"),
                    ==, 1);
}

static void test_import(Fixture *f, gconstpointer data)
{
    /* The GAEN sample keys: 2020-05-20, rolled over by 18:40. */
    g_autofree char *sample =
        g_build_filename(g_getenv("PROX_TESTDATA"), "gaen", "ens-keys.json", NULL);
    g_autofree char *out = NULL;
    g_assert_cmpint(test_authority(&out, NULL, "import-keys", "--db", f->db, "--now", TEST_NOW_ARG,
                                   sample, NULL),
                    ==, 0);
    g_assert_cmpstr(out, ==, "imported 2 keys (0 already stored)\n");
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM keys WHERE source = 1 AND "
                                       "report_type = 1 AND days_since_onset IS NULL"),
                    ==, 2);
    g_clear_pointer(&out, g_free);
    g_assert_cmpint(test_authority(&out, NULL, "import-keys", "--db", f->db, "--now", TEST_NOW_ARG,
                                   sample, NULL),
                    ==, 0);
    g_assert_cmpstr(out, ==, "imported 0 keys (2 already stored)\n");

    /* Checked like an upload: a day later... the sample is still fine; 15 days later, not. */
    g_autofree char *err = NULL;
    g_assert_cmpint(test_authority(NULL, &err, "import-keys", "--db", f->db, "--now", "@1591300000",
                                   sample, NULL),
                    ==, 1);
    g_assert_nonnull(strstr(err, "key_too_old"));

    /* A file with one bad key stores none of its keys. */
    uint8_t bytes[3 * PROX_KEY_LEN];
    g_autofree char *good = random_keys(3, bytes);
    g_autofree char *bad_key = test_key_json(bytes, TEST_TODAY_START - 144, 145);
    g_autofree char *mixed = g_strdup_printf("%s,%s", good, bad_key);
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(import_keys(f, TEST_NOW_ARG, mixed, &err), ==, 1);
    g_assert_nonnull(strstr(err, "bad_rolling_period"));
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM keys"), ==, 2);

    /* Report type and days since onset: from the file, else from the options. */
    uint8_t k[2][PROX_KEY_LEN];
    randombytes_buf(k, sizeof k);
    g_autofree char *b0 = g_base64_encode(k[0], PROX_KEY_LEN);
    g_autofree char *b1 = g_base64_encode(k[1], PROX_KEY_LEN);
    g_autofree char *keys = g_strdup_printf(
        "{\"key\":\"%s\",\"rollingStartNumber\":%u,\"reportType\":\"SELF_REPORT\","
        "\"daysSinceOnsetOfSymptoms\":-3},{\"key\":\"%s\",\"rollingStartNumber\":%u}",
        b0, TEST_TODAY_START - 144, b1, TEST_TODAY_START - 288);
    g_autofree char *path = g_build_filename(f->dir, "typed.json", NULL);
    g_autofree char *text = g_strdup_printf("{\"temporaryExposureKeys\":[%s]}", keys);
    g_assert_true(g_file_set_contents(path, text, -1, NULL));
    g_assert_cmpint(test_authority(NULL, NULL, "import-keys", "--db", f->db, "--now", TEST_NOW_ARG,
                                   "--test-type", "clinical", "--onset", "2020-05-15", path, NULL),
                    ==, 0);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM keys WHERE report_type = 3 AND "
                                       "days_since_onset = -3 AND rolling_period = 144"),
                    ==, 1);
    /* day 18400 - onset day 18397 */
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM keys WHERE report_type = 2 AND "
                                       "days_since_onset = 3"),
                    ==, 1);
}

static void test_publish_contents(Fixture *f, gconstpointer data)
{
    uint8_t bytes[14 * PROX_KEY_LEN];
    g_autofree char *keys = random_keys(14, bytes);
    g_assert_cmpint(import_keys(f, TEST_NOW_ARG, keys, NULL), ==, 0);
    g_autofree char *out = NULL;
    g_assert_cmpint(publish(f, TEST_NOW, "100", &out), ==, 0);
    g_assert_cmpstr(out, ==,
                    "published 14 keys and 86 padding keys in 1 files; removed 0 "
                    "files; index updated\n");
    guint total = 0;
    g_auto(GStrv) names = check_index(f, &total);
    g_assert_cmpuint(g_strv_length(names), ==, 1);
    g_assert_cmpstr(names[0], ==, "1590000000-00000001-0001.zip");
    g_assert_cmpuint(total, ==, 100);

    g_autoptr(ProxExport) export = read_export(f, names[0]);
    g_assert_cmpint(export->batch_num, ==, 1);
    g_assert_cmpint(export->batch_size, ==, 1);
    g_assert_cmpint(export->end_timestamp, ==, TEST_NOW);
    g_assert_cmpuint(export->n_revised, ==, 0);
    /* Every real key, exactly as stored. */
    for (int i = 0; i < 14; i++) {
        const ProxDiagnosisKey *k = find_key(export, bytes + i * PROX_KEY_LEN);
        g_assert_nonnull(k);
        g_assert_cmpuint(k->tek.rolling_start, ==, TEST_TODAY_START - (14 - i) * 144);
        g_assert_cmpuint(k->tek.rolling_period, ==, 144);
        g_assert_cmpint(k->transmission_risk_level, ==, 4);
        g_assert_cmpint(k->report_type, ==, PROX_REPORT_CONFIRMED_TEST);
    }
    /* The padding: distinct random key data, every other field copied from a real key. */
    g_autoptr(GHashTable) data_seen = g_hash_table_new(g_bytes_hash, g_bytes_equal);
    g_autoptr(GPtrArray) owned = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    for (guint i = 0; i < export->keys->len; i++) {
        const ProxDiagnosisKey *k = &g_array_index(export->keys, ProxDiagnosisKey, i);
        GBytes *b = g_bytes_new(k->tek.key, PROX_KEY_LEN);
        g_ptr_array_add(owned, b);
        g_assert_true(g_hash_table_add(data_seen, b));
        guint day = (TEST_TODAY_START - k->tek.rolling_start) / 144;
        g_assert_cmpuint(k->tek.rolling_start % 144, ==, 0);
        g_assert_cmpuint(day, >=, 1);
        g_assert_cmpuint(day, <=, 14);
        g_assert_cmpuint(k->tek.rolling_period, ==, 144);
        g_assert_cmpint(k->transmission_risk_level, ==, 4);
        g_assert_cmpint(k->report_type, ==, PROX_REPORT_CONFIRMED_TEST);
        g_assert_false(k->has_days_since_onset);
    }
    /* Published keys are marked; another key list signed by another key does not verify. */
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM keys WHERE run_id = 1"), ==, 14);
    g_autoptr(ProxExportKeyring) other = prox_export_keyring_new();
    uint8_t pk[32];
    uint8_t sk[64];
    crypto_sign_keypair(pk, sk);
    g_assert_true(prox_export_keyring_add_ed25519(other, "310", "v1", pk, NULL));
    g_autofree char *zip = g_build_filename(f->out, names[0], NULL);
    g_autoptr(ProxExport) forged = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_false(prox_export_read(zip, other, &forged, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_SIGNATURE);

    /* Above the minimum there is no padding. */
    uint8_t more[20 * PROX_KEY_LEN];
    g_autofree char *keys20 = random_keys(20, more);
    g_assert_cmpint(import_keys(f, "@1590000100", keys20, NULL), ==, 0);
    g_clear_pointer(&out, g_free);
    g_assert_cmpint(publish(f, TEST_NOW + 100, "10", &out), ==, 0);
    g_assert_cmpstr(out, ==,
                    "published 20 keys and 0 padding keys in 1 files; removed 0 "
                    "files; index updated\n");

    /* With jitter, padded sizes vary within [min, min + jitter]. */
    g_autoptr(GHashTable) sizes = g_hash_table_new(g_direct_hash, g_direct_equal);
    for (int run = 0; run < 6; run++) {
        uint8_t one[PROX_KEY_LEN];
        g_autofree char *k = random_keys(1, one);
        g_autofree char *t = g_strdup_printf("@%d", TEST_NOW + 200 + run);
        g_assert_cmpint(import_keys(f, t, k, NULL), ==, 0);
        g_assert_cmpint(test_authority(NULL, NULL, "publish", "--db", f->db, "--key", f->sec,
                                       "--out", f->out, "--now", t, "--min-keys", "50",
                                       "--padding-jitter", "20", NULL),
                        ==, 0);
        guint listed = 0;
        g_auto(GStrv) all = check_index(f, &listed);
        g_autoptr(ProxExport) e = read_export(f, all[g_strv_length(all) - 1]);
        g_assert_cmpuint(e->keys->len, >=, 50);
        g_assert_cmpuint(e->keys->len, <=, 70);
        g_hash_table_add(sizes, GUINT_TO_POINTER(e->keys->len));
    }
    /* six draws from 21 sizes all equal: probability 21^-5 */
    g_assert_cmpuint(g_hash_table_size(sizes), >, 1);
}

/* A key is published only after its rolling period ended (plus the embargo). */
static void test_publish_withheld(Fixture *f, gconstpointer data)
{
    uint32_t now_interval = TEST_NOW / 600;
    uint8_t k[2][PROX_KEY_LEN];
    randombytes_buf(k, sizeof k);
    /* Today's key, cut short at the current interval: ends at (now_interval + 1) * 600. */
    g_autofree char *today =
        test_key_json(k[0], TEST_TODAY_START, now_interval + 1 - TEST_TODAY_START);
    g_autofree char *yesterday = test_key_json(k[1], TEST_TODAY_START - 144, 144);
    g_autofree char *both = g_strdup_printf("%s,%s", today, yesterday);
    g_assert_cmpint(import_keys(f, TEST_NOW_ARG, both, NULL), ==, 0);
    gint64 end = (gint64)(now_interval + 1) * 600;

    g_assert_cmpint(publish(f, TEST_NOW, "5", NULL), ==, 0);
    guint total = 0;
    g_auto(GStrv) n1 = check_index(f, &total);
    g_assert_cmpuint(g_strv_length(n1), ==, 1);
    g_autoptr(ProxExport) e1 = read_export(f, n1[0]);
    g_assert_nonnull(find_key(e1, k[1]));
    g_assert_null(find_key(e1, k[0]));

    /* At its end time and until the 1200 s embargo has passed: still withheld. */
    g_autofree char *out = NULL;
    g_assert_cmpint(publish(f, end, "5", &out), ==, 0);
    g_assert_cmpstr(out, ==,
                    "published 0 keys and 0 padding keys in 0 files; removed 0 files; "
                    "index unchanged\n");
    g_assert_cmpint(publish(f, end + 1199, "5", NULL), ==, 0);
    g_auto(GStrv) n2 = check_index(f, &total);
    g_assert_cmpuint(g_strv_length(n2), ==, 1);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM keys WHERE run_id IS NULL"), ==, 1);

    g_assert_cmpint(publish(f, end + 1200, "5", NULL), ==, 0);
    g_auto(GStrv) n3 = check_index(f, &total);
    g_assert_cmpuint(g_strv_length(n3), ==, 2);
    g_assert_cmpstr(n3[0], ==, n1[0]);
    g_autoptr(ProxExport) e3 = read_export(f, n3[1]);
    const ProxDiagnosisKey *late = find_key(e3, k[0]);
    g_assert_nonnull(late);
    g_assert_cmpuint(late->tek.rolling_period, ==, now_interval + 1 - TEST_TODAY_START);
    g_assert_null(find_key(e3, k[1]));

    /* With --embargo 0 the end time itself is enough. */
    uint8_t k2[PROX_KEY_LEN];
    randombytes_buf(k2, sizeof k2);
    uint32_t later_interval = (uint32_t)((end + 1200) / 600);
    g_autofree char *cut =
        test_key_json(k2, TEST_TODAY_START, later_interval + 1 - TEST_TODAY_START);
    g_autofree char *import_now = g_strdup_printf("@%" G_GINT64_FORMAT, end + 1200);
    g_assert_cmpint(import_keys(f, import_now, cut, NULL), ==, 0);
    g_autofree char *t1 =
        g_strdup_printf("@%" G_GINT64_FORMAT, (gint64)(later_interval + 1) * 600 - 1);
    g_autofree char *t2 = g_strdup_printf("@%" G_GINT64_FORMAT, (gint64)(later_interval + 1) * 600);
    g_assert_cmpint(test_authority(NULL, NULL, "publish", "--db", f->db, "--key", f->sec, "--out",
                                   f->out, "--now", t1, "--embargo", "0", NULL),
                    ==, 0);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM keys WHERE run_id IS NULL"), ==, 1);
    g_assert_cmpint(test_authority(NULL, NULL, "publish", "--db", f->db, "--key", f->sec, "--out",
                                   f->out, "--now", t2, "--embargo", "0", NULL),
                    ==, 0);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM keys WHERE run_id IS NULL"), ==, 0);
}

static void test_publish_idempotent(Fixture *f, gconstpointer data)
{
    uint8_t bytes[5 * PROX_KEY_LEN];
    g_autofree char *keys = random_keys(5, bytes);
    g_assert_cmpint(import_keys(f, TEST_NOW_ARG, keys, NULL), ==, 0);
    g_assert_cmpint(publish(f, TEST_NOW, "20", NULL), ==, 0);
    g_autofree char *before = dir_state(f);
    g_autofree char *out = NULL;
    for (int i = 0; i < 3; i++) {
        g_clear_pointer(&out, g_free);
        g_assert_cmpint(publish(f, TEST_NOW + 60 * i, "20", &out), ==, 0);
        g_assert_cmpstr(out, ==,
                        "published 0 keys and 0 padding keys in 0 files; removed 0 "
                        "files; index unchanged\n");
        g_autofree char *after = dir_state(f);
        g_assert_cmpstr(before, ==, after);
    }
    /* An empty database publishes an empty index, once. */
    Fixture g = *f;
    g.db = g_build_filename(f->dir, "empty.db", NULL);
    g.out = g_build_filename(f->dir, "empty-pub", NULL);
    g_assert_cmpint(publish(&g, TEST_NOW, "20", NULL), ==, 0);
    guint total = 0;
    g_auto(GStrv) names = check_index(&g, &total);
    g_assert_cmpuint(g_strv_length(names), ==, 0);
    g_autofree char *empty_before = dir_state(&g);
    g_assert_cmpint(publish(&g, TEST_NOW, "20", NULL), ==, 0);
    g_autofree char *empty_after = dir_state(&g);
    g_assert_cmpstr(empty_before, ==, empty_after);
    g_free(g.db);
    g_free(g.out);
}

/* Runs over 16 days: the index is checked after every step, files sort by time, and files
 * older than 14 days leave the index and the disk, with their keys. */
static void test_publish_sequence(Fixture *f, gconstpointer data)
{
    GPtrArray *history = g_ptr_array_new_with_free_func(g_free);
    for (int day = 0; day < 16; day++) {
        gint64 now = TEST_NOW + (gint64)day * 86400;
        g_autofree char *now_arg = g_strdup_printf("@%" G_GINT64_FORMAT, now);
        /* Three keys of the days before `now`'s day. */
        GString *s = g_string_new(NULL);
        for (int i = 0; i < 3; i++) {
            uint8_t key[PROX_KEY_LEN];
            randombytes_buf(key, sizeof key);
            g_autofree char *kj =
                test_key_json(key, TEST_TODAY_START + (uint32_t)(day - i - 1) * 144, 144);
            g_string_append_printf(s, "%s%s", i ? "," : "", kj);
        }
        g_autofree char *keys = g_string_free(s, FALSE);
        g_assert_cmpint(import_keys(f, now_arg, keys, NULL), ==, 0);
        g_assert_cmpint(publish(f, now, "7", NULL), ==, 0);
        guint total = 0;
        g_auto(GStrv) names = check_index(f, &total);
        g_assert_cmpuint(g_strv_length(names), ==, MIN(day + 1, 15));
        g_ptr_array_add(history, g_strdup(names[g_strv_length(names) - 1]));
    }
    gint64 last = TEST_NOW + 15 * 86400;
    guint total = 0;
    g_auto(GStrv) names = check_index(f, &total);
    /* The run of day 0 is older than 14 days at day 15: gone, from disk too. */
    g_assert_cmpstr(names[0], ==, history->pdata[1]);
    g_autofree char *gone = g_build_filename(f->out, history->pdata[0], NULL);
    g_assert_false(g_file_test(gone, G_FILE_TEST_EXISTS));
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM publish_runs"), ==, 15);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM keys"), ==, 45);
    g_assert_cmpint(test_db_int(f->db, "SELECT min(created_at) FROM publish_runs"), ==,
                    TEST_NOW + 86400);

    /* A run split into several files: batch numbers, one size, index order. */
    GString *s = g_string_new(NULL);
    for (int i = 0; i < 25; i++) {
        uint8_t key[PROX_KEY_LEN];
        randombytes_buf(key, sizeof key);
        g_autofree char *kj =
            test_key_json(key, TEST_TODAY_START + 15 * 144 - (uint32_t)(i % 14 + 1) * 144, 144);
        g_string_append_printf(s, "%s%s", i ? "," : "", kj);
    }
    g_autofree char *keys = g_string_free(s, FALSE);
    /* Same time as the last run: allowed, and sorts after it by run id. */
    g_autofree char *now_arg = g_strdup_printf("@%" G_GINT64_FORMAT, last);
    g_assert_cmpint(import_keys(f, now_arg, keys, NULL), ==, 0);
    g_assert_cmpint(test_authority(NULL, NULL, "publish", "--db", f->db, "--key", f->sec, "--out",
                                   f->out, "--now", now_arg, "--min-keys", "30", "--padding-jitter",
                                   "0", "--max-keys-per-file", "10", NULL),
                    ==, 0);
    g_auto(GStrv) split = check_index(f, &total);
    guint n = g_strv_length(split);
    g_assert_cmpuint(n, ==, 15 + 3);
    guint split_keys = 0;
    for (guint b = 0; b < 3; b++) {
        g_autoptr(ProxExport) e = read_export(f, split[n - 3 + b]);
        g_assert_cmpint(e->batch_num, ==, (int)b + 1);
        g_assert_cmpint(e->batch_size, ==, 3);
        split_keys += e->keys->len;
        g_assert_cmpuint(e->keys->len, <=, 10);
    }
    g_assert_cmpuint(split_keys, ==, 30);

    /* Days later, nothing new: only retention works, the index shrinks, files go. */
    for (int day = 16; day < 32; day++) {
        g_assert_cmpint(publish(f, TEST_NOW + (gint64)day * 86400 + 3600, "7", NULL), ==, 0);
        g_auto(GStrv) left = check_index(f, &total);
        (void)left;
    }
    g_auto(GStrv) none = check_index(f, &total);
    g_assert_cmpuint(g_strv_length(none), ==, 0);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM keys"), ==, 0);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM export_files"), ==, 0);
    g_autoptr(GDir) dir = g_dir_open(f->out, 0, NULL);
    const char *name;
    while ((name = g_dir_read_name(dir)) != NULL)
        g_assert_true(strcmp(name, "index.txt") == 0 || strcmp(name, ".publish.lock") == 0);
    g_ptr_array_unref(history);
}

/* What a crash can leave behind is cleaned up; what an operator breaks is refused. */
static void test_publish_recovery(Fixture *f, gconstpointer data)
{
    uint8_t bytes[4 * PROX_KEY_LEN];
    g_autofree char *keys = random_keys(4, bytes);
    g_assert_cmpint(import_keys(f, TEST_NOW_ARG, keys, NULL), ==, 0);
    g_assert_cmpint(publish(f, TEST_NOW, "8", NULL), ==, 0);
    g_autofree char *index_path = g_build_filename(f->out, "index.txt", NULL);
    g_autofree char *index = NULL;
    g_assert_true(g_file_get_contents(index_path, &index, NULL, NULL));

    /* Leftovers: a half-written zip, an index temporary, a zip of a run that never committed,
     * and an unrelated file that is not ours to touch. */
    const char *const junk[] = {"1590000000-00000002-0001.zip.Ab12Cd", "index.txt.Zq9xY1",
                                "1590000000-00000002-0001.zip", "README"};
    for (size_t i = 0; i < G_N_ELEMENTS(junk); i++) {
        g_autofree char *p = g_build_filename(f->out, junk[i], NULL);
        g_assert_true(g_file_set_contents(p, "partial", -1, NULL));
    }
    /* A lost index (crash between commit and rename) comes back. */
    g_assert_cmpint(g_unlink(index_path), ==, 0);
    g_autofree char *out = NULL;
    g_assert_cmpint(publish(f, TEST_NOW + 10, "8", &out), ==, 0);
    g_assert_cmpstr(out, ==,
                    "published 0 keys and 0 padding keys in 0 files; removed 1 files; "
                    "index updated\n");
    g_autofree char *rebuilt = NULL;
    g_assert_true(g_file_get_contents(index_path, &rebuilt, NULL, NULL));
    g_assert_cmpstr(rebuilt, ==, index);
    for (size_t i = 0; i < G_N_ELEMENTS(junk); i++) {
        g_autofree char *p = g_build_filename(f->out, junk[i], NULL);
        g_assert_cmpint(g_file_test(p, G_FILE_TEST_EXISTS), ==, strcmp(junk[i], "README") == 0);
    }

    /* The clock going back is refused and changes nothing. */
    g_autofree char *before = dir_state(f);
    g_autofree char *err = NULL;
    g_assert_cmpint(test_authority(NULL, &err, "publish", "--db", f->db, "--key", f->sec, "--out",
                                   f->out, "--now", "@1589999999", NULL),
                    ==, 1);
    g_assert_nonnull(strstr(err, "before the last publish run"));
    g_autofree char *after = dir_state(f);
    g_assert_cmpstr(before, ==, after);

    /* A published file deleted by hand: publish refuses to write an index naming it. */
    g_auto(GStrv) lines = g_strsplit(g_strstrip(index), "\n", -1);
    g_autofree char *zip = g_build_filename(f->out, lines[0], NULL);
    g_assert_cmpint(g_unlink(zip), ==, 0);
    uint8_t more[PROX_KEY_LEN * 2];
    g_autofree char *keys2 = random_keys(2, more);
    g_assert_cmpint(import_keys(f, "@1590000020", keys2, NULL), ==, 0);
    g_clear_pointer(&err, g_free);
    g_assert_cmpint(publish(f, TEST_NOW + 20, "8", NULL), ==, 1);
    g_autofree char *still = NULL;
    g_assert_true(g_file_get_contents(index_path, &still, NULL, NULL));
    g_assert_cmpstr(still, ==, rebuilt);

    /* A wrong signing key file is refused before anything is written. */
    g_assert_cmpint(test_authority(NULL, NULL, "publish", "--db", f->db, "--key", f->pub, "--out",
                                   f->out, "--now", "@1590000030", NULL),
                    ==, 1);
}

/* Key file permissions are enforced: a secret key readable by others is refused. */
static void test_publish_key_permissions(Fixture *f, gconstpointer data)
{
    g_assert_cmpint(chmod(f->sec, 0644), ==, 0);
    g_autofree char *err = NULL;
    g_assert_cmpint(test_authority(NULL, &err, "publish", "--db", f->db, "--key", f->sec, "--out",
                                   f->out, "--now", TEST_NOW_ARG, NULL),
                    ==, 1);
    g_assert_false(g_file_test(f->out, G_FILE_TEST_EXISTS));
}

static void test_status(Fixture *f, gconstpointer data)
{
    g_autofree char *code = test_issue_code(f->db, NULL, NULL);
    uint8_t bytes[3 * PROX_KEY_LEN];
    g_autofree char *keys = random_keys(3, bytes);
    g_assert_cmpint(import_keys(f, TEST_NOW_ARG, keys, NULL), ==, 0);
    g_assert_cmpint(publish(f, TEST_NOW, "5", NULL), ==, 0);
    g_autofree char *out = NULL;
    g_assert_cmpint(
        test_authority(&out, NULL, "status", "--db", f->db, "--now", TEST_NOW_ARG, NULL), ==, 0);
    g_assert_cmpstr(out, ==,
                    "codes_usable 1\ncodes_used 0\nkeys_unpublished 0\n"
                    "keys_published 3\npublish_runs 1\nfiles 1\n"
                    "last_publish 1590000000\nvenues 0\nwarnings_unpublished 0\n"
                    "warnings_published 0\ncheckins_unpublished 0\ncheckins_published 0\n"
                    "venue_counts 0\n");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_assert_cmpint(sodium_init(), >=, 0);
#define ADD(path, fn)                                                                              \
    g_test_add(path, Fixture, NULL, test_authority_fixture_setup, fn,                              \
               test_authority_fixture_teardown)
    g_test_add_func("/authority/help", test_help);
    ADD("/authority/init-key", test_init_key);
    ADD("/authority/issue-code", test_issue_code_cli);
    ADD("/authority/import-keys", test_import);
    ADD("/authority/publish/contents", test_publish_contents);
    ADD("/authority/publish/withheld", test_publish_withheld);
    ADD("/authority/publish/idempotent", test_publish_idempotent);
    ADD("/authority/publish/sequence", test_publish_sequence);
    ADD("/authority/publish/recovery", test_publish_recovery);
    ADD("/authority/publish/key-permissions", test_publish_key_permissions);
    ADD("/authority/status", test_status);
    return g_test_run();
}
