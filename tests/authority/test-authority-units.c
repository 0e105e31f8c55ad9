/* test-authority-units.c - the authority tools' shared code without processes: codes, the
 * upload rules at their edges, rate limiting with injected time, clock and date parsing, and
 * the database's pepper, permissions, schema version (and migration) and code states, the
 * shared GAEN key JSON parser's policies, check-in risk. */
#include "authority-clock.h"
#include "authority-code.h"
#include "authority-db.h"
#include "authority-ingest.h"
#include "authority-publish.h"
#include "authority-ratelimit.h"
#include "authority-test-util.h"
#include "authority-upload.h"
#include "authority-venue.h"
#include "gaen-keys-json.h"

#include <sodium.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

static void test_code(void)
{
    char code[AUTHORITY_CODE_LEN + 1];
    char display[AUTHORITY_CODE_DISPLAY_LEN + 1];
    char normal[AUTHORITY_CODE_LEN + 1];
    guint counts[32] = {0};
    for (int i = 0; i < 2000; i++) {
        authority_code_generate(code);
        g_assert_cmpuint(strlen(code), ==, AUTHORITY_CODE_LEN);
        for (int c = 0; c < AUTHORITY_CODE_LEN; c++) {
            const char *p = strchr(AUTHORITY_CODE_ALPHABET, code[c]);
            g_assert_nonnull(p);
            counts[p - AUTHORITY_CODE_ALPHABET]++;
        }
        authority_code_format(code, display);
        g_assert_cmpuint(strlen(display), ==, 14);
        g_assert_true(authority_code_normalize(display, normal));
        g_assert_cmpstr(normal, ==, code);
    }
    /* 24000 letters: each of 32 expected 750 times; a broken generator is far outside. */
    for (int i = 0; i < 32; i++) {
        g_assert_cmpuint(counts[i], >, 550);
        g_assert_cmpuint(counts[i], <, 950);
    }
    g_assert_true(authority_code_normalize("abcd efgh-jkLM", normal));
    g_assert_cmpstr(normal, ==, "ABCDEFGHJKLM");
    const char *const bad[] = {"",
                               "ABCD-EFGH-JKL",
                               "ABCD-EFGH-JKLMN",
                               "ABCD-EFGH-JKL0",
                               "ABCD-EFGH-JKLI",
                               "ABCD-EFGH-JKLO",
                               "ABCD-EFGH-JKL1",
                               "ABCD_EFGH_JKLM",
                               "ABCD-EFGH-JKL\xc3\xa9"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
        g_assert_false(authority_code_normalize(bad[i], normal));

    uint8_t p1[AUTHORITY_PEPPER_LEN] = {1};
    uint8_t p2[AUTHORITY_PEPPER_LEN] = {2};
    uint8_t h1[AUTHORITY_CODE_HASH_LEN];
    uint8_t h2[AUTHORITY_CODE_HASH_LEN];
    uint8_t h3[AUTHORITY_CODE_HASH_LEN];
    authority_code_hash("ABCDEFGHJKLM", p1, h1);
    authority_code_hash("ABCDEFGHJKLM", p2, h2);
    authority_code_hash("ABCDEFGHJKLN", p1, h3);
    g_assert_cmpmem(h1, sizeof h1, h1, sizeof h1);
    g_assert_true(memcmp(h1, h2, sizeof h1) != 0);
    g_assert_true(memcmp(h1, h3, sizeof h1) != 0);
}

static AuthorityUpload *parse(const char *keys, GError **error)
{
    g_autofree char *body =
        g_strdup_printf("{\"code\":\"ABCD-EFGH-JKLM\",\"temporaryExposureKeys\":[%s]}", keys);
    return authority_upload_parse(body, strlen(body), TEST_NOW, TRUE, error);
}

static void expect_reason(const char *keys, AuthorityRejectReason reason)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(AuthorityUpload) upload = parse(keys, &error);
    g_assert_null(upload);
    g_assert_error(error, AUTHORITY_REJECT, (gint)reason);
}

static void test_upload_rules(void)
{
    g_autoptr(GError) error = NULL;
    /* The window: [today - 14 days, current interval], by start and by end. */
    const uint32_t now_i = TEST_NOW / 600;
    struct {
        uint32_t start, period;
        gboolean ok;
    } window[] = {
        {TEST_TODAY_START - 2016, 144, TRUE},
        {TEST_TODAY_START - 2017, 144, FALSE},
        {TEST_TODAY_START - 2017, 1, FALSE},
        {now_i, 1, TRUE},
        {now_i, 2, FALSE},
        {now_i + 1, 1, FALSE},
        {TEST_TODAY_START, now_i + 1 - TEST_TODAY_START, TRUE},
        {TEST_TODAY_START, now_i + 2 - TEST_TODAY_START, FALSE},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(window); i++) {
        uint8_t key[PROX_KEY_LEN] = {(uint8_t)i};
        g_autofree char *k = test_key_json(key, window[i].start, window[i].period);
        g_autoptr(AuthorityUpload) upload = parse(k, &error);
        g_assert_cmpint(upload != NULL, ==, window[i].ok);
        if (!window[i].ok) {
            g_assert_true(error->code == AUTHORITY_REJECT_KEY_TOO_OLD ||
                          error->code == AUTHORITY_REJECT_KEY_IN_FUTURE);
            g_clear_error(&error);
        } else {
            g_assert_cmpstr(upload->code, ==, "ABCDEFGHJKLM");
            g_assert_cmpuint(upload->keys->len, ==, 1);
        }
    }
    /* A device clock up to 5 minutes ahead: 4 minutes before the next interval by the
     * server's clock, a key reaching into it is taken; 6 minutes before, not. */
    for (int ahead = 0; ahead < 2; ahead++) {
        uint8_t key[PROX_KEY_LEN] = {0x5e};
        g_autofree char *k = test_key_json(key, TEST_TODAY_START, now_i + 2 - TEST_TODAY_START);
        g_autofree char *body =
            g_strdup_printf("{\"code\":\"ABCD-EFGH-JKLM\",\"temporaryExposureKeys\":[%s]}", k);
        gint64 server_now = TEST_NOW + 600 - (ahead ? 240 : 360);
        g_autoptr(AuthorityUpload) upload =
            authority_upload_parse(body, strlen(body), server_now, TRUE, &error);
        g_assert_cmpint(upload != NULL, ==, ahead);
        if (!ahead) {
            g_assert_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_KEY_IN_FUTURE);
            g_clear_error(&error);
        }
    }
    /* Defaults and optional fields. */
    g_autoptr(AuthorityUpload) full = parse(
        "{\"key\":\"AAECAwQFBgcICQoLDA0ODw==\",\"rollingStartNumber\":2649744,"
        "\"transmissionRisk\":8,\"reportType\":2,\"daysSinceOnsetOfSymptoms\":-14,\"extra\":[]}",
        &error);
    g_assert_no_error(error);
    const ProxDiagnosisKey *k = &g_array_index(full->keys, ProxDiagnosisKey, 0);
    g_assert_cmpuint(k->tek.rolling_period, ==, 144);
    g_assert_cmpint(k->transmission_risk_level, ==, 8);
    g_assert_cmpint(k->report_type, ==, PROX_REPORT_CONFIRMED_CLINICAL_DIAGNOSIS);
    g_assert_true(k->has_days_since_onset);
    g_assert_cmpint(k->days_since_onset, ==, -14);
    g_assert_cmpuint(k->tek.key[15], ==, 15);

    expect_reason("{\"key\":\"AAECAwQFBgcICQoLDA0ODw==\",\"rollingStartNumber\":2649744.5}",
                  AUTHORITY_REJECT_BAD_ROLLING_START);
    expect_reason("{\"key\":\"AAECAwQFBgcICQoLDA0ODw==\",\"rollingStartNumber\":-1}",
                  AUTHORITY_REJECT_BAD_ROLLING_START);
    expect_reason("{\"key\":\"AAECAwQFBgcICQoLDA0ODw=\",\"rollingStartNumber\":2649744}",
                  AUTHORITY_REJECT_BAD_KEY_DATA);
    expect_reason("{\"key\":\"AAECAwQFBgcICQoLDA0OD===\",\"rollingStartNumber\":2649744}",
                  AUTHORITY_REJECT_BAD_KEY_DATA);
    expect_reason("{\"key\":null,\"rollingStartNumber\":2649744}", AUTHORITY_REJECT_BAD_KEY_DATA);
    expect_reason("{\"key\":\"AAECAwQFBgcICQoLDA0ODw==\",\"rollingStartNumber\":2649744,"
                  "\"reportType\":\"WHATEVER\"}",
                  AUTHORITY_REJECT_BAD_REPORT_TYPE);

    /* Without a code (import): a code member is ignored, none is needed. */
    const char *body = "{\"temporaryExposureKeys\":[{\"key\":\"AAECAwQFBgcICQoLDA0ODw==\","
                       "\"rollingStartNumber\":2649744}]}";
    g_autoptr(AuthorityUpload) import =
        authority_upload_parse(body, strlen(body), TEST_NOW, FALSE, &error);
    g_assert_no_error(error);
    g_assert_null(import->code);
    g_assert_null(authority_upload_parse(body, strlen(body), TEST_NOW, TRUE, &error));
    g_assert_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_MISSING_CODE);
    g_clear_error(&error);
    /* An embedded NUL is not JSON. */
    g_assert_null(authority_upload_parse("{}\0{}", 5, TEST_NOW, FALSE, &error));
    g_assert_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_MALFORMED_JSON);
    g_clear_error(&error);

    /* Days since onset, clamped to GAEN's range. */
    ProxTek tek = {.rolling_start = 18402 * 144, .rolling_period = 144};
    g_assert_cmpint(authority_days_since_onset(&tek, 18400), ==, 2);
    g_assert_cmpint(authority_days_since_onset(&tek, 18402), ==, 0);
    g_assert_cmpint(authority_days_since_onset(&tek, 18410), ==, -8);
    g_assert_cmpint(authority_days_since_onset(&tek, 18380), ==, 14);
    g_assert_cmpint(authority_days_since_onset(&tek, 18430), ==, -14);

    /* Every reason has a distinct name and a 4xx status (503 only for our own failure). */
    g_autoptr(GHashTable) names = g_hash_table_new(g_str_hash, g_str_equal);
    for (int r = AUTHORITY_REJECT_NOT_FOUND; r <= AUTHORITY_REJECT_UNAVAILABLE; r++) {
        g_assert_true(g_hash_table_add(names, (gpointer)authority_reject_name(r)));
        guint status = authority_reject_http_status(r);
        if (r == AUTHORITY_REJECT_UNAVAILABLE)
            g_assert_cmpuint(status, ==, 503);
        else
            g_assert_true(status >= 400 && status < 500);
    }
    g_autofree char *json = authority_reject_json(AUTHORITY_REJECT_CODE_USED, "say \"hi\"");
    g_assert_cmpstr(json, ==, "{\"error\":\"say \\\"hi\\\"\",\"code\":\"code_used\"}");
}

static void test_rate_limit(void)
{
    g_autoptr(AuthorityRateLimit) limit = authority_rate_limit_new(2.0, 3, 4);
    guint wait = 0;
    gint64 t = 1000000000;
    for (int i = 0; i < 3; i++)
        g_assert_true(authority_rate_limit_take(limit, "a", t, &wait));
    g_assert_false(authority_rate_limit_take(limit, "a", t, &wait));
    g_assert_cmpuint(wait, ==, 1);
    /* Other clients are not affected. */
    g_assert_true(authority_rate_limit_take(limit, "b", t, &wait));
    /* 2 tokens a second: after 0.5 s, one more. */
    g_assert_true(authority_rate_limit_take(limit, "a", t + 500000, &wait));
    g_assert_false(authority_rate_limit_take(limit, "a", t + 500000, &wait));
    /* Full buckets are forgotten: b refilled by now, a not. */
    g_assert_cmpuint(authority_rate_limit_prune(limit, t + 500000), ==, 1);
    g_assert_cmpuint(authority_rate_limit_prune(limit, t + 5000000), ==, 0);
    /* More clients than max_clients: memory stays bounded, newcomers still get served. */
    for (int i = 0; i < 100; i++) {
        g_autofree char *client = g_strdup_printf("c%d", i);
        g_assert_true(authority_rate_limit_take(limit, client, t + 6000000, &wait));
        g_assert_cmpuint(authority_rate_limit_prune(limit, t + 6000000), <=, 4);
    }
    /* Slow rates report long waits. */
    g_autoptr(AuthorityRateLimit) slow = authority_rate_limit_new(0.01, 1, 10);
    g_assert_true(authority_rate_limit_take(slow, "x", t, &wait));
    g_assert_false(authority_rate_limit_take(slow, "x", t, &wait));
    g_assert_cmpuint(wait, ==, 100);
    /* Disabled. */
    g_autoptr(AuthorityRateLimit) off = authority_rate_limit_new(0, 1, 10);
    for (int i = 0; i < 100; i++)
        g_assert_true(authority_rate_limit_take(off, "x", t, &wait));
}

static void test_time_parsing(void)
{
    gint64 v = 0;
    g_autoptr(GError) error = NULL;
    g_assert_true(authority_clock_parse_time("@1590000000", &v, &error));
    g_assert_cmpint(v, ==, TEST_NOW);
    g_assert_true(authority_clock_parse_time("2020-05-20T18:40:00Z", &v, &error));
    g_assert_cmpint(v, ==, TEST_NOW);
    g_assert_true(authority_clock_parse_time("2020-05-20T20:40:00+02:00", &v, &error));
    g_assert_cmpint(v, ==, TEST_NOW);
    const char *const bad[] = {"@", "@-5", "@12x", "1590000000", "2020-05-20", "@ 5"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_false(authority_clock_parse_time(bad[i], &v, &error));
        g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
        g_clear_error(&error);
    }
    g_assert_true(authority_parse_duration("24h", &v, &error));
    g_assert_cmpint(v, ==, 86400);
    g_assert_true(authority_parse_duration("90m", &v, &error));
    g_assert_cmpint(v, ==, 5400);
    g_assert_true(authority_parse_duration("7d", &v, &error));
    g_assert_cmpint(v, ==, 604800);
    const char *const bad_d[] = {"", "h", "0h", "-1h", "24", "24x", "1.5h", " 5m"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad_d); i++) {
        g_assert_false(authority_parse_duration(bad_d[i], &v, &error));
        g_clear_error(&error);
    }
    g_assert_true(authority_parse_day("2020-05-17", &v, &error));
    g_assert_cmpint(v, ==, 18399);
    const char *const bad_day[] = {"2020-5-17", "2020-02-30", "2020-05-17x", "1969-12-31",
                                   "17.05.2020"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad_day); i++) {
        g_assert_false(authority_parse_day(bad_day[i], &v, &error));
        g_clear_error(&error);
    }
    /* Clock sources: fixed, wall, simulated (PROX_SIM_CLOCK). */
    AuthorityClock clock;
    g_assert_true(authority_clock_init(&clock, "@1590000000", &error));
    g_assert_cmpint(authority_clock_now(&clock), ==, TEST_NOW);
    g_assert_false(authority_clock_init(&clock, "yesterday", &error));
    g_clear_error(&error);
    g_unsetenv("PROX_SIM_CLOCK");
    g_assert_true(authority_clock_init(&clock, NULL, &error));
    g_assert_cmpint(ABS(authority_clock_now(&clock) - g_get_real_time() / G_USEC_PER_SEC), <=, 2);
    /* a world that started an hour ago at TEST_NOW and runs 60 times faster: 60 h later */
    g_autofree char *spec = g_strdup_printf("%" G_GINT64_FORMAT ":%d:60",
                                            g_get_real_time() / G_USEC_PER_SEC - 3600, TEST_NOW);
    g_setenv("PROX_SIM_CLOCK", spec, TRUE);
    g_assert_true(authority_clock_init(&clock, NULL, &error));
    g_assert_cmpint(ABS(authority_clock_now(&clock) - (TEST_NOW + 60 * 3600)), <=, 120);
    /* --now wins over it */
    g_assert_true(authority_clock_init(&clock, "@5", &error));
    g_assert_cmpint(authority_clock_now(&clock), ==, 5);
    g_setenv("PROX_SIM_CLOCK", "1:2", TRUE);
    g_assert_false(authority_clock_init(&clock, NULL, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT);
    g_unsetenv("PROX_SIM_CLOCK");
}

static void test_db(void)
{
    g_autofree char *dir = test_tmpdir_new();
    g_autofree char *path = g_build_filename(dir, "a.db", NULL);
    g_autofree char *pepper = g_strconcat(path, ".pepper", NULL);
    g_autoptr(GError) error = NULL;
    AuthorityDb *db = authority_db_open(path, &error);
    g_assert_no_error(error);

    /* Code states. */
    g_assert_true(authority_db_code_insert(db, "ABCDEFGHJKLM", 18399, PROX_REPORT_SELF_REPORT,
                                           TEST_NOW, TEST_NOW + 100, &error));
    AuthorityCodeState state;
    AuthorityCodeCase c;
    g_assert_true(authority_db_code_claim(db, "ABCDEFGHJKLN", TEST_NOW, &state, &c, &error));
    g_assert_cmpint(state, ==, AUTHORITY_CODE_UNKNOWN);
    g_assert_true(authority_db_code_claim(db, "ABCDEFGHJKLM", TEST_NOW + 100, &state, &c, &error));
    g_assert_cmpint(state, ==, AUTHORITY_CODE_EXPIRED);
    g_assert_true(authority_db_code_claim(db, "ABCDEFGHJKLM", TEST_NOW + 99, &state, &c, &error));
    g_assert_cmpint(state, ==, AUTHORITY_CODE_VALID);
    g_assert_cmpint(c.onset_day, ==, 18399);
    g_assert_cmpint(c.report_type, ==, PROX_REPORT_SELF_REPORT);
    g_assert_true(authority_db_code_claim(db, "ABCDEFGHJKLM", TEST_NOW + 99, &state, &c, &error));
    g_assert_cmpint(state, ==, AUTHORITY_CODE_USED);
    /* A code collision is an error, not an overwrite. */
    g_assert_false(authority_db_code_insert(db, "ABCDEFGHJKLM", 18399, PROX_REPORT_SELF_REPORT,
                                            TEST_NOW, TEST_NOW + 100, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_STORE);
    g_clear_error(&error);

    /* An upload through the ingest path: one transaction, code consumed, DSOS from onset. */
    g_assert_true(authority_db_code_insert(db, "ABCDEFGHJKLP", 18399, PROX_REPORT_CONFIRMED_TEST,
                                           TEST_NOW, TEST_NOW + 100, &error));
    AuthorityUpload upload = {.code = (char *)"ABCDEFGHJKLP"};
    upload.keys = g_array_new(FALSE, TRUE, sizeof(ProxDiagnosisKey));
    ProxDiagnosisKey key = {.tek = {.rolling_start = 18401 * 144, .rolling_period = 144}};
    key.tek.key[0] = 7;
    g_array_append_val(upload.keys, key);
    guint inserted = 0;
    g_assert_true(authority_db_exec(db, "BEGIN IMMEDIATE", &error));
    g_assert_true(authority_ingest_upload(db, &upload, TEST_NOW, &inserted, &error));
    g_assert_true(authority_db_exec(db, "COMMIT", &error));
    g_assert_cmpuint(inserted, ==, 1);
    g_assert_cmpint(test_db_int(path, "SELECT days_since_onset FROM keys"), ==, 2);
    g_assert_cmpint(test_db_int(path, "SELECT report_type FROM keys"), ==, 1);
    g_assert_true(authority_db_exec(db, "BEGIN IMMEDIATE", &error));
    g_assert_false(authority_ingest_upload(db, &upload, TEST_NOW, &inserted, &error));
    g_assert_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_CODE_USED);
    g_clear_error(&error);
    g_assert_true(authority_db_exec(db, "ROLLBACK", &error));
    g_array_unref(upload.keys);
    authority_db_close(db);

    /* Reopening works; a wrong or missing pepper does not. */
    db = authority_db_open(path, &error);
    g_assert_no_error(error);
    authority_db_close(db);
    g_autofree char *saved = NULL;
    gsize saved_len = 0;
    g_assert_true(g_file_get_contents(pepper, &saved, &saved_len, NULL));
    g_assert_cmpint(g_unlink(pepper), ==, 0);
    g_assert_null(authority_db_open(path, &error));
    g_assert_nonnull(strstr(error->message, "is missing"));
    g_clear_error(&error);
    g_assert_false(g_file_test(pepper, G_FILE_TEST_EXISTS));
    g_assert_true(g_file_set_contents_full(pepper, "01234567890123456789012345678901", 32,
                                           G_FILE_SET_CONTENTS_NONE, 0600, NULL));
    g_assert_null(authority_db_open(path, &error));
    g_assert_nonnull(strstr(error->message, "is not the pepper"));
    g_clear_error(&error);
    g_assert_true(g_file_set_contents_full(pepper, saved, (gssize)saved_len,
                                           G_FILE_SET_CONTENTS_NONE, 0604, NULL));
    g_assert_cmpint(chmod(pepper, 0604), ==, 0);
    g_assert_null(authority_db_open(path, &error));
    g_clear_error(&error);
    g_assert_cmpint(chmod(pepper, 0600), ==, 0);

    /* Permissions of the database itself. */
    g_assert_cmpint(chmod(path, 0644), ==, 0);
    g_assert_null(authority_db_open(path, &error));
    g_assert_nonnull(strstr(error->message, "accessible by others"));
    g_clear_error(&error);
    g_assert_cmpint(chmod(path, 0640), ==, 0);
    db = authority_db_open(path, &error);
    g_assert_no_error(error);
    authority_db_close(db);

    /* A newer schema, and someone else's sqlite file, are refused. */
    sqlite3 *raw = NULL;
    g_assert_cmpint(sqlite3_open(path, &raw), ==, SQLITE_OK);
    g_assert_cmpint(sqlite3_exec(raw, "PRAGMA user_version = 99", NULL, NULL, NULL), ==, SQLITE_OK);
    sqlite3_close(raw);
    g_assert_null(authority_db_open(path, &error));
    g_assert_nonnull(strstr(error->message, "newer"));
    g_clear_error(&error);
    g_autofree char *other = g_build_filename(dir, "other.db", NULL);
    g_assert_true(g_file_set_contents_full(other, "", 0, G_FILE_SET_CONTENTS_NONE, 0600, NULL));
    g_assert_cmpint(sqlite3_open(other, &raw), ==, SQLITE_OK);
    g_assert_cmpint(sqlite3_exec(raw, "CREATE TABLE t (x)", NULL, NULL, NULL), ==, SQLITE_OK);
    sqlite3_close(raw);
    g_assert_null(authority_db_open(other, &error));
    g_assert_nonnull(strstr(error->message, "something else"));
    g_clear_error(&error);
    test_tmpdir_free(g_steal_pointer(&dir));
}

static void test_export_names(void)
{
    gboolean temporary = FALSE;
    g_assert_true(authority_publish_is_export_name("1590000000-00000001-0001.zip", &temporary));
    g_assert_false(temporary);
    g_assert_true(
        authority_publish_is_export_name("1590000000-00000001-0001.zip.aB3dE9", &temporary));
    g_assert_true(temporary);
    const char *const no[] = {"index.txt",
                              "1590000000-00000001-0001.zi",
                              "1590000000-0000001-00001.zip",
                              "1590000000-00000001-0001.zip.ab",
                              "x590000000-00000001-0001.zip",
                              "1590000000-00000001-0001.zip.a-cdef"};
    for (size_t i = 0; i < G_N_ELEMENTS(no); i++)
        g_assert_false(authority_publish_is_export_name(no[i], NULL));
}

/* One parser, two policies (review debt D3): the same key read for an upload and for a key
 * file, differing only where the policy says. */
static void test_gaen_keys_json_policy(void)
{
    enum { DOMAIN_CODE_BASE = 100 };
    GaenKeysJsonPolicy strict = {
        .domain = g_quark_from_static_string("test-strict"),
        .allow_revoked = TRUE,
        .reject_unknown_members = TRUE,
        .null_is_absent = FALSE,
        .days_since_onset_min = G_MININT32,
        .days_since_onset_max = G_MAXINT32,
    };
    GaenKeysJsonPolicy lenient = {
        .domain = g_quark_from_static_string("test-lenient"),
        .allow_revoked = FALSE,
        .reject_unknown_members = FALSE,
        .null_is_absent = TRUE,
        .cli_report_names = TRUE,
        .days_since_onset_min = -14,
        .days_since_onset_max = 14,
    };
    for (int i = 0; i < GAEN_KEYS_JSON_N_PROBLEMS; i++) {
        strict.codes[i] = DOMAIN_CODE_BASE + i;
        lenient.codes[i] = DOMAIN_CODE_BASE + 50 + i;
    }
    static const struct {
        const char *json;
        int strict_problem;  /* -1: accepted */
        int lenient_problem; /* -1: accepted */
    } cases[] = {
        {"{\"key\":\"AAECAwQFBgcICQoLDA0ODw==\",\"rollingStartNumber\":5}", -1, -1},
        {"{\"key\":\"AAECAwQFBgcICQoLDA0ODw==\",\"rollingStartNumber\":5,\"reportType\":"
         "\"REVOKED\"}",
         -1, GAEN_KEYS_JSON_BAD_REPORT_TYPE},
        {"{\"key\":\"AAECAwQFBgcICQoLDA0ODw==\",\"rollingStartNumber\":5,\"reportType\":5}", -1,
         GAEN_KEYS_JSON_BAD_REPORT_TYPE},
        {"{\"key\":\"AAECAwQFBgcICQoLDA0ODw==\",\"rollingStartNumber\":5,\"reportType\":"
         "\"self-report\"}",
         GAEN_KEYS_JSON_BAD_REPORT_TYPE, -1},
        {"{\"key\":\"AAECAwQFBgcICQoLDA0ODw==\",\"rollingStartNumber\":5,\"padding\":\"x\"}",
         GAEN_KEYS_JSON_BAD_KEY, -1},
        {"{\"key\":\"AAECAwQFBgcICQoLDA0ODw==\",\"rollingStartNumber\":5,\"rollingPeriod\":null}",
         GAEN_KEYS_JSON_BAD_ROLLING_PERIOD, -1},
        {"{\"key\":\"AAECAwQFBgcICQoLDA0ODw==\",\"rollingStartNumber\":5,"
         "\"daysSinceOnsetOfSymptoms\":20}",
         -1, GAEN_KEYS_JSON_BAD_DAYS_SINCE_ONSET},
        {"{\"key\":\"AAECAwQFBgcICQoLDA0ODw==\",\"rollingStartNumber\":5,\"rollingPeriod\":0}",
         GAEN_KEYS_JSON_BAD_ROLLING_PERIOD, GAEN_KEYS_JSON_BAD_ROLLING_PERIOD},
        {"{\"key\":\"AAECAwQFBgcICQoLDA0O\",\"rollingStartNumber\":5}", GAEN_KEYS_JSON_BAD_KEY_DATA,
         GAEN_KEYS_JSON_BAD_KEY_DATA},
        {"{\"key\":\"AAECAwQFBgcICQoLDA0ODw==\"}", GAEN_KEYS_JSON_BAD_ROLLING_START,
         GAEN_KEYS_JSON_BAD_ROLLING_START},
        {"{\"key\":\"AAECAwQFBgcICQoLDA0ODw==\",\"rollingStartNumber\":5,"
         "\"transmissionRisk\":9}",
         GAEN_KEYS_JSON_BAD_TRANSMISSION_RISK, GAEN_KEYS_JSON_BAD_TRANSMISSION_RISK},
        {"7", GAEN_KEYS_JSON_BAD_KEY, GAEN_KEYS_JSON_BAD_KEY},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(JsonParser) parser = json_parser_new();
        g_assert_true(json_parser_load_from_data(parser, cases[i].json, -1, NULL));
        const GaenKeysJsonPolicy *policies[] = {&strict, &lenient};
        const int expected[] = {cases[i].strict_problem, cases[i].lenient_problem};
        for (int p = 0; p < 2; p++) {
            ProxDiagnosisKey key;
            g_autoptr(GError) error = NULL;
            gboolean ok = gaen_keys_json_parse_key(json_parser_get_root(parser), 3, policies[p],
                                                   &key, &error);
            g_test_message("case %zu policy %d: %s", i, p, ok ? "ok" : error->message);
            if (expected[p] < 0) {
                g_assert_true(ok);
                g_assert_cmpuint(key.tek.rolling_start, ==, 5);
                g_assert_cmpuint(key.tek.rolling_period, ==, 144);
            } else {
                g_assert_false(ok);
                g_assert_error(error, policies[p]->domain, policies[p]->codes[expected[p]]);
                g_assert_true(g_str_has_prefix(error->message, "key 3"));
            }
        }
    }
}

/* A schema 1 database (before buses and venues) is migrated in place, keeping its rows. */
static void test_db_migration(void)
{
    g_autofree char *dir = test_tmpdir_new();
    g_autofree char *path = g_build_filename(dir, "authority.db", NULL);
    g_autoptr(GError) error = NULL;
    AuthorityDb *db = authority_db_open(path, &error);
    g_assert_no_error(error);
    g_assert_true(authority_db_code_insert(db, "ABCDEFGHJKLM", 18399, PROX_REPORT_CONFIRMED_TEST,
                                           TEST_NOW, TEST_NOW + 100, &error));
    authority_db_close(db);
    /* Back to schema 1. */
    sqlite3 *raw = NULL;
    g_assert_cmpint(sqlite3_open(path, &raw), ==, SQLITE_OK);
    g_assert_cmpint(
        sqlite3_exec(raw,
                     "DROP TABLE venue_counts;"
                     "DROP TABLE venues; DROP TABLE venue_warnings; DROP TABLE checkins;"
                     "ALTER TABLE publish_runs DROP COLUMN warnings;"
                     "ALTER TABLE export_files DROP COLUMN warning_count;"
                     "PRAGMA user_version = 1",
                     NULL, NULL, NULL),
        ==, SQLITE_OK);
    sqlite3_close(raw);
    g_assert_cmpint(test_db_int(path, "PRAGMA user_version"), ==, 1);
    db = authority_db_open(path, &error);
    g_assert_no_error(error);
    authority_db_close(db);
    g_assert_cmpint(test_db_int(path, "PRAGMA user_version"), ==, AUTHORITY_DB_SCHEMA_VERSION);
    g_assert_cmpint(test_db_int(path, "SELECT count(*) FROM codes"), ==, 1);
    g_assert_cmpint(test_db_int(path, "SELECT count(*) FROM venues"), ==, 0);
    g_assert_cmpint(test_db_int(path, "SELECT count(*) FROM checkins"), ==, 0);
    g_assert_cmpint(test_db_int(path, "SELECT count(warnings) FROM publish_runs"), ==, 0);
    g_assert_cmpint(test_db_int(path, "SELECT count(*) FROM venue_counts"), ==, 0);
    test_tmpdir_free(g_steal_pointer(&dir));
}

/* A schema 2 database (buses and venues, before venue counts) gains venue_counts and keeps
 * its venues, check-ins and codes; counts then add up. */
static void test_db_migration_venue_counts(void)
{
    g_autofree char *dir = test_tmpdir_new();
    g_autofree char *path = g_build_filename(dir, "authority.db", NULL);
    g_autoptr(GError) error = NULL;
    AuthorityDb *db = authority_db_open(path, &error);
    g_assert_no_error(error);
    g_assert_true(authority_db_code_insert(db, "ABCDEFGHJKLM", 18399, PROX_REPORT_CONFIRMED_TEST,
                                           TEST_NOW, TEST_NOW + 100, &error));
    ProxVenue venue = {
        .name = (char *)"Market", .address = (char *)"", .type = 4, .default_stay_minutes = 60};
    memset(venue.location_id, 0x5a, sizeof venue.location_id);
    gint64 id = 0;
    g_assert_true(authority_venue_insert(db, &venue, TEST_NOW, &id, &error));
    AuthorityCheckin checkin = {.start = TEST_NOW - 7200, .end = TEST_NOW - 3600};
    memset(checkin.location_id, 0x5a, sizeof checkin.location_id);
    guint inserted = 0;
    g_assert_true(authority_checkins_insert(db, &checkin, 1, PROX_REPORT_CONFIRMED_TEST, TEST_NOW,
                                            AUTHORITY_KEY_SOURCE_UPLOAD, &inserted, &error));
    g_assert_no_error(error);
    authority_db_close(db);
    /* Back to schema 2. */
    sqlite3 *raw = NULL;
    g_assert_cmpint(sqlite3_open(path, &raw), ==, SQLITE_OK);
    g_assert_cmpint(
        sqlite3_exec(raw, "DROP TABLE venue_counts; PRAGMA user_version = 2", NULL, NULL, NULL), ==,
        SQLITE_OK);
    sqlite3_close(raw);
    g_assert_cmpint(test_db_int(path, "PRAGMA user_version"), ==, 2);
    g_assert_cmpint(test_db_int(path, "SELECT count(*) FROM sqlite_schema WHERE name = "
                                      "'venue_counts'"),
                    ==, 0);

    db = authority_db_open(path, &error);
    g_assert_no_error(error);
    g_assert_nonnull(db);
    g_assert_cmpint(test_db_int(path, "PRAGMA user_version"), ==, 3);
    g_assert_cmpint(AUTHORITY_DB_SCHEMA_VERSION, ==, 3);
    g_assert_cmpint(test_db_int(path, "SELECT count(*) FROM codes"), ==, 1);
    g_assert_cmpint(test_db_int(path, "SELECT count(*) FROM venues"), ==, 1);
    g_assert_cmpint(test_db_int(path, "SELECT count(*) FROM checkins"), ==, 1);
    g_assert_cmpint(test_db_int(path, "SELECT count(*) FROM venue_counts"), ==, 0);
    AuthorityVenueCount count = {.hour = 1589997600, .count = 1};
    memset(count.location_hash, 0xa5, sizeof count.location_hash);
    g_assert_true(authority_db_exec(db, "BEGIN", &error));
    g_assert_true(authority_venue_count_add(db, &count, &error));
    g_assert_true(authority_venue_count_add(db, &count, &error));
    g_assert_true(authority_db_exec(db, "COMMIT", &error));
    g_assert_no_error(error);
    g_autoptr(GArray) counts = authority_venue_counts_list(db, 0, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(counts->len, ==, 1);
    g_assert_cmpint(g_array_index(counts, AuthorityVenueCount, 0).count, ==, 2);
    g_assert_cmpint(g_array_index(counts, AuthorityVenueCount, 0).hour, ==, 1589997600);
    /* The schema refuses what the parser would: an hour off the hour, a short hash. */
    g_assert_cmpint(sqlite3_exec(authority_db_sqlite(db),
                                 "INSERT INTO venue_counts VALUES (zeroblob(32), 1589997601, 1)",
                                 NULL, NULL, NULL),
                    !=, SQLITE_OK);
    g_assert_cmpint(sqlite3_exec(authority_db_sqlite(db),
                                 "INSERT INTO venue_counts VALUES (zeroblob(31), 1589997600, 1)",
                                 NULL, NULL, NULL),
                    !=, SQLITE_OK);
    authority_db_close(db);
    /* Opening again migrates nothing more. */
    db = authority_db_open(path, &error);
    g_assert_no_error(error);
    authority_db_close(db);
    g_assert_cmpint(test_db_int(path, "SELECT sum(count) FROM venue_counts"), ==, 2);
    test_tmpdir_free(g_steal_pointer(&dir));
}

/* The count body's rules at their edges, with `now` on and off the hour. */
static void test_venue_count_rules(void)
{
    static const char hex[] = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    const struct {
        gint64 now;
        gint64 hour;
        int reason; /* -1: accepted */
    } cases[] = {
        {1589997600, 1589997600, -1}, /* now exactly on the hour: that hour is current */
        {1589997600, 1590001200, AUTHORITY_REJECT_HOUR_IN_FUTURE},
        {1590001199, 1589997600, -1},
        /* A device clock up to 5 minutes ahead may already be in the next hour. */
        {1590001199, 1590001200, -1},
        {1590000900, 1590001200, -1},
        {1590000899, 1590001200, AUTHORITY_REJECT_HOUR_IN_FUTURE},
        {1590001200, 1590001200, -1},
        {1589997600, 1589997600 - 14 * 86400, -1},
        {1590001199, 1589997600 - 14 * 86400, -1},
        {1589997600, 1589997600 - 14 * 86400 - 3600, AUTHORITY_REJECT_HOUR_TOO_OLD},
        {1590001200, 1589997600 - 14 * 86400, AUTHORITY_REJECT_HOUR_TOO_OLD},
        {1589997600, 1589997600 + 1800, AUTHORITY_REJECT_BAD_HOUR},
        {1589997600, -1800, AUTHORITY_REJECT_BAD_HOUR},
        {1589997600, G_MININT64, AUTHORITY_REJECT_BAD_HOUR}, /* 2^63 % 3600 = 1808 */
        {1589997600, -3600 * G_GINT64_CONSTANT(1000000000000), AUTHORITY_REJECT_HOUR_TOO_OLD},
        {1589997600, 3600 * G_GINT64_CONSTANT(1000000000000), AUTHORITY_REJECT_HOUR_IN_FUTURE},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *body = g_strdup_printf(
            "{\"hour\":%" G_GINT64_FORMAT ",\"locationHash\":\"%s\"}", cases[i].hour, hex);
        AuthorityVenueCount count;
        g_autoptr(GError) error = NULL;
        gboolean ok = authority_venue_count_parse(body, strlen(body), cases[i].now, &count, &error);
        g_test_message("case %zu: %s", i, ok ? "accepted" : error->message);
        if (cases[i].reason < 0) {
            g_assert_no_error(error);
            g_assert_true(ok);
            g_assert_cmpint(count.hour, ==, cases[i].hour);
            g_assert_cmpint(count.count, ==, 1);
            g_assert_cmpuint(count.location_hash[0], ==, 0x00);
            g_assert_cmpuint(count.location_hash[31], ==, 0xff);
        } else {
            g_assert_false(ok);
            g_assert_error(error, AUTHORITY_REJECT, cases[i].reason);
        }
    }
    /* The cap is checked before parsing. */
    g_autofree char *big = g_strnfill(AUTHORITY_VENUE_COUNT_MAX_BODY + 1, ' ');
    AuthorityVenueCount count;
    g_autoptr(GError) error = NULL;
    g_assert_false(authority_venue_count_parse(big, strlen(big), TEST_NOW, &count, &error));
    g_assert_error(error, AUTHORITY_REJECT, AUTHORITY_REJECT_BODY_TOO_LARGE);
    /* New reasons have names and statuses. */
    g_assert_cmpstr(authority_reject_name(AUTHORITY_REJECT_UNKNOWN_MEMBER), ==, "unknown_member");
    g_assert_cmpstr(authority_reject_name(AUTHORITY_REJECT_BAD_LOCATION_HASH), ==,
                    "bad_location_hash");
    g_assert_cmpstr(authority_reject_name(AUTHORITY_REJECT_BAD_HOUR), ==, "bad_hour");
    g_assert_cmpstr(authority_reject_name(AUTHORITY_REJECT_HOUR_IN_FUTURE), ==, "hour_in_future");
    g_assert_cmpstr(authority_reject_name(AUTHORITY_REJECT_HOUR_TOO_OLD), ==, "hour_too_old");
    g_assert_cmpuint(authority_reject_http_status(AUTHORITY_REJECT_HOUR_TOO_OLD), ==, 400);
    g_assert_cmpuint(authority_reject_http_status(AUTHORITY_REJECT_UNAVAILABLE), ==, 503);
}

static void test_checkin_risk(void)
{
    g_assert_cmpint(authority_checkin_risk(PROX_REPORT_CONFIRMED_TEST), ==, 7);
    g_assert_cmpint(authority_checkin_risk(PROX_REPORT_CONFIRMED_CLINICAL_DIAGNOSIS), ==, 5);
    g_assert_cmpint(authority_checkin_risk(PROX_REPORT_SELF_REPORT), ==, 3);
    g_assert_cmpint(authority_checkin_risk(PROX_REPORT_RECURSIVE), ==, 1);
    g_assert_cmpint(authority_checkin_risk(PROX_REPORT_UNKNOWN), ==, 7);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_assert_cmpint(sodium_init(), >=, 0);
    g_test_add_func("/authority/units/code", test_code);
    g_test_add_func("/authority/units/upload-rules", test_upload_rules);
    g_test_add_func("/authority/units/rate-limit", test_rate_limit);
    g_test_add_func("/authority/units/time-parsing", test_time_parsing);
    g_test_add_func("/authority/units/db", test_db);
    g_test_add_func("/authority/units/export-names", test_export_names);
    g_test_add_func("/authority/units/gaen-keys-json-policy", test_gaen_keys_json_policy);
    g_test_add_func("/authority/units/db-migration", test_db_migration);
    g_test_add_func("/authority/units/db-migration-venue-counts", test_db_migration_venue_counts);
    g_test_add_func("/authority/units/venue-count-rules", test_venue_count_rules);
    g_test_add_func("/authority/units/checkin-risk", test_checkin_risk);
    return g_test_run();
}
