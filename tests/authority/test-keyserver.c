/* test-keyserver.c - prox-keyserver over HTTP on loopback: uploads that are stored, every kind
 * of refusal (each a 4xx with its JSON reason, and nothing stored), venue check-ins (stored,
 * published as VENUE warnings, each bad one refusing the upload), rate limiting, racing
 * uploads with one code, scheduled publishing, the simulated clock, clean shutdown. */
#include "authority-test-util.h"
#include "prox-export.h"
#include "prox-hex.h"
#include "prox-venue.h"

#include <curl/curl.h>
#include <sodium.h>
#include <string.h>

#define JSON "application/json"

typedef struct {
    char *dir;
    char *db;
    TestServer *server;
    char *upload_url;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->dir = test_tmpdir_new();
    f->db = g_build_filename(f->dir, "authority.db", NULL);
    /* Rate limiting off except in its own test. */
    f->server = test_server_start(f->dir, f->db, "--now", TEST_NOW_ARG, "--rate", "0", NULL);
    f->upload_url = g_strconcat(f->server->url, "/v1/publish", NULL);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    if (f->server != NULL)
        g_assert_cmpint(test_server_stop(f->server), ==, 0);
    g_free(f->upload_url);
    g_free(f->db);
    test_tmpdir_free(f->dir);
}

static gint64 keys_stored(Fixture *f)
{
    return test_db_int(f->db, "SELECT count(*) FROM keys");
}

static gint64 code_used(Fixture *f)
{
    return test_db_int(f->db, "SELECT count(*) FROM codes WHERE used_at IS NOT NULL");
}

/* POSTs body as JSON and checks status and reason ("" for none). */
static void post_expect(Fixture *f, const char *body, long status, const char *reason)
{
    g_autofree char *answer = NULL;
    long got = test_http("POST", f->upload_url, JSON, body, strlen(body), &answer, NULL);
    g_test_message("%ld %s", got, answer);
    g_assert_cmpint(got, ==, status);
    if (reason[0] != '\0') {
        g_autofree char *r = test_json_reason(answer);
        g_assert_cmpstr(r, ==, reason);
    }
}

static void test_upload_good(Fixture *f, gconstpointer data)
{
    g_autofree char *code = test_issue_code(f->db, NULL, NULL);
    uint8_t keys[14 * PROX_KEY_LEN];
    g_autofree char *body = test_upload_body(code, 14, keys);
    g_autofree char *answer = NULL;
    g_assert_cmpint(test_http("POST", f->upload_url, JSON, body, strlen(body), &answer, NULL), ==,
                    200);
    g_assert_cmpint(test_json_int(answer, "inserted"), ==, 14);
    g_assert_cmpint(keys_stored(f), ==, 14);
    g_assert_cmpint(code_used(f), ==, 1);
    /* The code's case decides report type (confirmed test) and days since onset (onset
     * 2020-05-17 = day 18399; the keys are of days 18388..18401). */
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM keys WHERE report_type = 1 AND "
                                       "source = 0 AND transmission_risk = 4 AND "
                                       "uploaded_at = 1590000000"),
                    ==, 14);
    g_assert_cmpint(test_db_int(f->db, "SELECT min(days_since_onset) FROM keys"), ==, -11);
    g_assert_cmpint(test_db_int(f->db, "SELECT max(days_since_onset) FROM keys"), ==, 2);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM keys WHERE days_since_onset = "
                                       "rolling_start / 144 - 18399"),
                    ==, 14);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM keys WHERE run_id IS NULL"), ==, 14);

    /* The same code again: refused, nothing more stored. */
    g_autofree char *again = test_upload_body(code, 3, NULL);
    post_expect(f, again, 409, "code_used");
    g_assert_cmpint(keys_stored(f), ==, 14);
}

/* Limits that are just inside the rules pass. */
static void test_upload_edges(Fixture *f, gconstpointer data)
{
    uint32_t now_interval = TEST_NOW / 600;
    uint8_t k[3][PROX_KEY_LEN];
    randombytes_buf(k, sizeof k);
    /* today's key cut short at the current interval; the oldest accepted start; 30 keys */
    g_autofree char *k0 =
        test_key_json(k[0], TEST_TODAY_START, now_interval + 1 - TEST_TODAY_START);
    g_autofree char *k1 = test_key_json(k[1], TEST_TODAY_START - 14 * 144, 144);
    g_autofree char *k2 = test_key_json(k[2], now_interval, 1);
    g_autofree char *code = test_issue_code(f->db, NULL, NULL);
    /* Codes are accepted in any case. */
    g_autofree char *lower = g_ascii_strdown(code, -1);
    g_autofree char *body = g_strdup_printf(
        "{\"code\":\"%s\",\"temporaryExposureKeys\":[%s,%s,%s],\"padding\":\"xyz\"}", lower, k0, k1,
        k2);
    post_expect(f, body, 200, "");
    g_assert_cmpint(keys_stored(f), ==, 3);

    g_autofree char *code30 = test_issue_code(f->db, NULL, NULL);
    GString *s = g_string_new(NULL);
    g_string_append_printf(s, "{\"code\":\"%s\",\"temporaryExposureKeys\":[", code30);
    for (int i = 0; i < 30; i++) {
        uint8_t key[PROX_KEY_LEN];
        randombytes_buf(key, sizeof key);
        g_autofree char *kj = test_key_json(key, TEST_TODAY_START - 144 + (uint32_t)i, 1);
        g_string_append_printf(s, "%s%s", i ? "," : "", kj);
    }
    g_string_append(s, "]}");
    g_autofree char *body30 = g_string_free(s, FALSE);
    post_expect(f, body30, 200, "");
    g_assert_cmpint(keys_stored(f), ==, 33);
}

typedef struct {
    const char *name;
    const char *keys; /* the temporaryExposureKeys member, or a whole body if starting '!' */
    long status;
    const char *reason;
} BadCase;

#define KEY_A "\"AAECAwQFBgcICQoLDA0ODw==\""
#define KEY_B "\"EBESExQVFhcYGRobHB0eHw==\""
#define KEY(k, start, period)                                                                      \
    "{\"key\":" k ",\"rollingStartNumber\":" #start ",\"rollingPeriod\":" #period "}"

/* TEST_TODAY_START = 2649888, now interval 2650000, oldest start 2647872. */
static const BadCase bad_cases[] = {
    {"not json", "!{\"code\":", 400, "malformed_json"},
    {"not an object", "![1,2,3]", 400, "malformed_json"},
    {"empty body", "!", 400, "malformed_json"},
    {"no keys member", "!{\"code\":\"@CODE@\"}", 400, "missing_keys"},
    {"keys not an array", "{}", 400, "missing_keys"},
    {"zero keys", "[]", 400, "no_keys"},
    {"key not an object", "[1]", 400, "bad_key"},
    {"15-byte key", "[{\"key\":\"AAECAwQFBgcICQoLDA0O\",\"rollingStartNumber\":2649744}]", 400,
     "bad_key_data"},
    {"17-byte key", "[{\"key\":\"AAECAwQFBgcICQoLDA0ODxA=\",\"rollingStartNumber\":2649744}]", 400,
     "bad_key_data"},
    {"key not base64", "[{\"key\":\"AAECAwQFBgcICQoLDA0O!w==\",\"rollingStartNumber\":2649744}]",
     400, "bad_key_data"},
    {"no start", "[{\"key\":" KEY_A "}]", 400, "bad_rolling_start"},
    {"start a string", "[{\"key\":" KEY_A ",\"rollingStartNumber\":\"2649744\"}]", 400,
     "bad_rolling_start"},
    {"period 0", "[" KEY(KEY_A, 2649744, 0) "]", 400, "bad_rolling_period"},
    {"period 145", "[" KEY(KEY_A, 2649744, 145) "]", 400, "bad_rolling_period"},
    {"start in the future", "[" KEY(KEY_A, 2650001, 1) "]", 400, "key_in_future"},
    {"today's full key", "[" KEY(KEY_A, 2649888, 144) "]", 400, "key_in_future"},
    {"one interval too long", "[" KEY(KEY_A, 2649888, 114) "]", 400, "key_in_future"},
    {"older than 14 days", "[" KEY(KEY_A, 2647871, 144) "]", 400, "key_too_old"},
    {"duplicate keys", "[" KEY(KEY_A, 2649744, 144) "," KEY(KEY_A, 2649600, 144) "]", 400,
     "duplicate_key"},
    {"transmission risk 9",
     "[{\"key\":" KEY_A ",\"rollingStartNumber\":2649744,\"transmissionRisk\":9}]", 400,
     "bad_transmission_risk"},
    {"report type revoked",
     "[{\"key\":" KEY_A ",\"rollingStartNumber\":2649744,\"reportType\":\"REVOKED\"}]", 400,
     "bad_report_type"},
    {"days since onset 15",
     "[{\"key\":" KEY_A ",\"rollingStartNumber\":2649744,\"daysSinceOnsetOfSymptoms\":15}]", 400,
     "bad_days_since_onset"},
    {"one bad key among good", "[" KEY(KEY_A, 2649744, 144) "," KEY(KEY_B, 2649600, 145) "]", 400,
     "bad_rolling_period"},
    {"no code", "!{\"temporaryExposureKeys\":[" KEY(KEY_A, 2649744, 144) "]}", 400, "missing_code"},
    {"code not a string", "!{\"code\":12,\"temporaryExposureKeys\":[" KEY(KEY_A, 2649744, 144) "]}",
     400, "missing_code"},
    {"malformed code",
     "!{\"code\":\"ABC\",\"temporaryExposureKeys\":[" KEY(KEY_A, 2649744, 144) "]}", 403,
     "invalid_code"},
    {"code never issued",
     "!{\"code\":\"2345-6789-ABCD\",\"temporaryExposureKeys\":[" KEY(KEY_A, 2649744, 144) "]}", 403,
     "invalid_code"},
};

/* Each refusal: its status and reason, no key stored, the code still usable. */
static void test_upload_refused(Fixture *f, gconstpointer data)
{
    g_autofree char *code = test_issue_code(f->db, NULL, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
        const BadCase *c = &bad_cases[i];
        g_test_message("case: %s", c->name);
        g_autofree char *body = NULL;
        if (c->keys[0] == '!') {
            g_auto(GStrv) parts = g_strsplit(c->keys + 1, "@CODE@", -1);
            body = g_strjoinv(code, parts);
        } else {
            body = g_strdup_printf("{\"code\":\"%s\",\"temporaryExposureKeys\":%s}", code, c->keys);
        }
        post_expect(f, body, c->status, c->reason);
        g_assert_cmpint(keys_stored(f), ==, 0);
        g_assert_cmpint(code_used(f), ==, 0);
    }
    /* 31 keys */
    GString *s = g_string_new("[");
    for (int i = 0; i < 31; i++) {
        uint8_t key[PROX_KEY_LEN];
        randombytes_buf(key, sizeof key);
        g_autofree char *kj = test_key_json(key, TEST_TODAY_START - 144 + (uint32_t)i, 1);
        g_string_append_printf(s, "%s%s", i ? "," : "", kj);
    }
    g_string_append(s, "]");
    g_autofree char *keys31 = g_string_free(s, FALSE);
    g_autofree char *body31 =
        g_strdup_printf("{\"code\":\"%s\",\"temporaryExposureKeys\":%s}", code, keys31);
    post_expect(f, body31, 400, "too_many_keys");
    g_assert_cmpint(keys_stored(f), ==, 0);
    g_assert_cmpint(code_used(f), ==, 0);

    /* After all that, the code still works. */
    g_autofree char *good = test_upload_body(code, 2, NULL);
    post_expect(f, good, 200, "");
    g_assert_cmpint(keys_stored(f), ==, 2);
}

static void test_upload_code_expired(Fixture *f, gconstpointer data)
{
    /* Issued two days before the server's now, valid for 24 h. */
    g_autofree char *code = test_issue_code(f->db, "@1589827200", "24h");
    g_autofree char *body = test_upload_body(code, 5, NULL);
    post_expect(f, body, 410, "code_expired");
    g_assert_cmpint(keys_stored(f), ==, 0);
    g_assert_cmpint(code_used(f), ==, 0);
    /* One that expires one second after now still works. */
    g_autofree char *code2 = test_issue_code(f->db, "@1589999941", "1m");
    g_autofree char *body2 = test_upload_body(code2, 5, NULL);
    post_expect(f, body2, 200, "");
}

static void test_upload_http_refusals(Fixture *f, gconstpointer data)
{
    g_autofree char *code = test_issue_code(f->db, NULL, NULL);
    g_autofree char *body = test_upload_body(code, 2, NULL);
    g_autofree char *answer = NULL;
    g_autofree char *reason = NULL;

    g_assert_cmpint(
        test_http("POST", f->upload_url, "text/plain", body, strlen(body), &answer, NULL), ==, 415);
    reason = test_json_reason(answer);
    g_assert_cmpstr(reason, ==, "unsupported_content_type");
    g_clear_pointer(&answer, g_free);
    g_clear_pointer(&reason, g_free);
    g_assert_cmpint(test_http("POST", f->upload_url, NULL, body, strlen(body), &answer, NULL), ==,
                    415);
    g_clear_pointer(&answer, g_free);
    /* A charset parameter is fine. */
    g_autofree char *code2 = test_issue_code(f->db, NULL, NULL);
    g_autofree char *body2 = test_upload_body(code2, 2, NULL);
    g_assert_cmpint(test_http("POST", f->upload_url, "application/json; charset=utf-8", body2,
                              strlen(body2), &answer, NULL),
                    ==, 200);
    g_clear_pointer(&answer, g_free);

    g_assert_cmpint(test_http("GET", f->upload_url, NULL, NULL, 0, &answer, NULL), ==, 405);
    reason = test_json_reason(answer);
    g_assert_cmpstr(reason, ==, "method_not_allowed");
    g_clear_pointer(&answer, g_free);
    g_clear_pointer(&reason, g_free);

    g_autofree char *other = g_strconcat(f->server->url, "/v1/other", NULL);
    g_assert_cmpint(test_http("GET", other, NULL, NULL, 0, &answer, NULL), ==, 404);
    reason = test_json_reason(answer);
    g_assert_cmpstr(reason, ==, "not_found");
    g_clear_pointer(&answer, g_free);
    g_clear_pointer(&reason, g_free);
    g_autofree char *below = g_strconcat(f->server->url, "/v1/publish/x", NULL);
    g_assert_cmpint(test_http("POST", below, JSON, body, strlen(body), &answer, NULL), ==, 404);
    g_clear_pointer(&answer, g_free);

    g_autofree char *health = g_strconcat(f->server->url, "/healthz", NULL);
    g_assert_cmpint(test_http("GET", health, NULL, NULL, 0, &answer, NULL), ==, 200);
    g_assert_cmpstr(answer, ==, "{\"status\":\"ok\"}");
    g_assert_cmpint(keys_stored(f), ==, 2);
    g_assert_cmpint(code_used(f), ==, 1);
}

/* A valid upload padded past the cap would be accepted if the cap were not enforced. */
static char *padded_body(const char *code, size_t total)
{
    g_autofree char *keys = test_upload_body(code, 2, NULL);
    /* keys is {"code":...,"temporaryExposureKeys":[...]}: add a padding member. */
    size_t base = strlen(keys) + strlen(",\"padding\":\"\"");
    g_assert_cmpuint(total, >, base);
    g_autofree char *pad = g_strnfill(total - base, 'x');
    keys[strlen(keys) - 1] = '\0';
    char *body = g_strdup_printf("%s,\"padding\":\"%s\"}", keys, pad);
    g_assert_cmpuint(strlen(body), ==, total);
    return body;
}

static void test_upload_oversized(Fixture *f, gconstpointer data)
{
    g_autofree char *code = test_issue_code(f->db, NULL, NULL);
    g_autofree char *big = padded_body(code, 65537);
    post_expect(f, big, 413, "body_too_large");
    g_autofree char *answer = NULL;
    g_assert_cmpint(test_http_chunked(f->upload_url, JSON, big, strlen(big), &answer), ==, 413);
    g_autofree char *reason = test_json_reason(answer);
    g_assert_cmpstr(reason, ==, "body_too_large");
    g_autofree char *huge = padded_body(code, 1 << 20);
    post_expect(f, huge, 413, "body_too_large");
    g_assert_cmpint(keys_stored(f), ==, 0);
    g_assert_cmpint(code_used(f), ==, 0);
    /* Exactly at the cap, padded as devices do: accepted, also chunked. */
    g_autofree char *fits = padded_body(code, 65536);
    g_clear_pointer(&answer, g_free);
    g_assert_cmpint(test_http_chunked(f->upload_url, JSON, fits, strlen(fits), &answer), ==, 200);
    g_assert_cmpint(keys_stored(f), ==, 2);
}

static size_t append_answer(char *data, size_t size, size_t n, void *user_data)
{
    g_string_append_len(user_data, data, (gssize)(size * n));
    return size * n;
}

/* Several uploads racing with one code: exactly one wins, and only its keys are stored. */
static void test_upload_race(Fixture *f, gconstpointer data)
{
    enum { N = 12, KEYS = 3 };
    g_autofree char *code = test_issue_code(f->db, NULL, NULL);
    CURLM *multi = curl_multi_init();
    CURL *easy[N];
    GString *answers[N];
    char *bodies[N];
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    for (int i = 0; i < N; i++) {
        bodies[i] = test_upload_body(code, KEYS, NULL);
        answers[i] = g_string_new(NULL);
        easy[i] = curl_easy_init();
        curl_easy_setopt(easy[i], CURLOPT_URL, f->upload_url);
        curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, bodies[i]);
        curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, answers[i]);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, append_answer);
        curl_multi_add_handle(multi, easy[i]);
    }
    int running = 1;
    while (running > 0) {
        curl_multi_perform(multi, &running);
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    int ok = 0;
    int used = 0;
    for (int i = 0; i < N; i++) {
        long status = 0;
        curl_easy_getinfo(easy[i], CURLINFO_RESPONSE_CODE, &status);
        if (status == 200)
            ok++;
        else if (status == 409)
            used++;
        curl_multi_remove_handle(multi, easy[i]);
        curl_easy_cleanup(easy[i]);
        g_string_free(answers[i], TRUE);
        g_free(bodies[i]);
    }
    curl_slist_free_all(headers);
    curl_multi_cleanup(multi);
    g_assert_cmpint(ok, ==, 1);
    g_assert_cmpint(used, ==, N - 1);
    g_assert_cmpint(keys_stored(f), ==, KEYS);
}

/* A case reporting twice (two codes, overlapping keys): keys are stored once. */
static void test_upload_repeat_keys(Fixture *f, gconstpointer data)
{
    uint8_t k[2][PROX_KEY_LEN];
    randombytes_buf(k, sizeof k);
    g_autofree char *ka = test_key_json(k[0], TEST_TODAY_START - 144, 144);
    g_autofree char *kb = test_key_json(k[1], TEST_TODAY_START - 288, 144);
    g_autofree char *c1 = test_issue_code(f->db, NULL, NULL);
    g_autofree char *c2 = test_issue_code(f->db, NULL, NULL);
    g_autofree char *b1 =
        g_strdup_printf("{\"code\":\"%s\",\"temporaryExposureKeys\":[%s]}", c1, ka);
    g_autofree char *b2 =
        g_strdup_printf("{\"code\":\"%s\",\"temporaryExposureKeys\":[%s,%s]}", c2, ka, kb);
    g_autofree char *answer = NULL;
    g_assert_cmpint(test_http("POST", f->upload_url, JSON, b1, strlen(b1), &answer, NULL), ==, 200);
    g_assert_cmpint(test_json_int(answer, "inserted"), ==, 1);
    g_clear_pointer(&answer, g_free);
    g_assert_cmpint(test_http("POST", f->upload_url, JSON, b2, strlen(b2), &answer, NULL), ==, 200);
    g_assert_cmpint(test_json_int(answer, "inserted"), ==, 1);
    g_assert_cmpint(keys_stored(f), ==, 2);
    g_assert_cmpint(code_used(f), ==, 2);
}

/* ---- venue check-ins (docs/venues.md §6) ---- */

#define DAY 86400

/* An upload with 2 keys and the given "checkins" member (raw JSON). */
static char *checkin_body(const char *code, const char *checkins)
{
    g_autofree char *base = test_upload_body(code, 2, NULL);
    base[strlen(base) - 1] = '\0';
    return g_strdup_printf("%s,\"checkins\":%s}", base, checkins);
}

static char *checkin_json(const uint8_t id[PROX_LOCATION_ID_LEN], gint64 start, gint64 end)
{
    g_autofree char *hex = prox_hex_dup(id, PROX_LOCATION_ID_LEN);
    return g_strdup_printf("{\"locationId\":\"%s\",\"start\":%" G_GINT64_FORMAT
                           ",\"end\":%" G_GINT64_FORMAT "}",
                           hex, start, end);
}

static gint64 checkins_stored(Fixture *f)
{
    return test_db_int(f->db, "SELECT count(*) FROM checkins");
}

/* Valid check-ins are stored with the upload, then published as VENUE warnings. */
static void test_checkins_stored_and_published(Fixture *f, gconstpointer data)
{
    uint8_t ids[3][PROX_LOCATION_ID_LEN];
    randombytes_buf(ids, sizeof ids);
    const gint64 windows[3][2] = {
        {TEST_NOW - DAY, TEST_NOW - DAY + 3600},
        /* the edges: 24 h long, ending now; starting exactly 14 days ago */
        {TEST_NOW - DAY, TEST_NOW},
        {TEST_NOW - 14 * DAY, TEST_NOW - 14 * DAY + 600},
    };
    GString *list = g_string_new("[");
    for (int i = 0; i < 3; i++) {
        g_autofree char *c = checkin_json(ids[i], windows[i][0], windows[i][1]);
        g_string_append_printf(list, "%s%s", i ? "," : "", c);
    }
    g_string_append(list, "]");
    g_autofree char *checkins = g_string_free(list, FALSE);
    g_autofree char *code = test_issue_code(f->db, NULL, NULL);
    g_autofree char *body = checkin_body(code, checkins);
    g_autofree char *answer = NULL;
    g_assert_cmpint(test_http("POST", f->upload_url, JSON, body, strlen(body), &answer, NULL), ==,
                    200);
    g_assert_cmpint(test_json_int(answer, "inserted"), ==, 2);
    g_assert_cmpint(test_json_int(answer, "checkins"), ==, 3);
    g_assert_cmpint(checkins_stored(f), ==, 3);
    /* With the code's report type (confirmed test), unpublished. */
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM checkins WHERE report_type = 1 AND "
                                       "source = 0 AND run_id IS NULL AND uploaded_at = "
                                       "1590000000"),
                    ==, 3);
    /* No checkins member, or an empty one: fine. */
    g_autofree char *code2 = test_issue_code(f->db, NULL, NULL);
    g_autofree char *body2 = checkin_body(code2, "[]");
    g_clear_pointer(&answer, g_free);
    g_assert_cmpint(test_http("POST", f->upload_url, JSON, body2, strlen(body2), &answer, NULL), ==,
                    200);
    g_assert_cmpint(test_json_int(answer, "checkins"), ==, 0);
    g_assert_cmpint(checkins_stored(f), ==, 3);

    /* Publish: each check-in becomes a VENUE warning with its location hash, window and the
     * risk of a confirmed test. */
    g_autofree char *keydir = g_build_filename(f->dir, "keys", NULL);
    g_autofree char *sec = g_build_filename(keydir, "310-v1.sec", NULL);
    g_autofree char *pub = g_build_filename(keydir, "310-v1.pub", NULL);
    g_autofree char *out = g_build_filename(f->dir, "pub", NULL);
    g_assert_cmpint(test_authority(NULL, NULL, "init-key", "--key-id", "310", "--key-version", "v1",
                                   "--dir", keydir, NULL),
                    ==, 0);
    g_autofree char *printed = NULL;
    g_assert_cmpint(test_authority(&printed, NULL, "publish", "--db", f->db, "--key", sec, "--out",
                                   out, "--now", TEST_NOW_ARG, "--min-keys", "0",
                                   "--padding-jitter", "0", NULL),
                    ==, 0);
    g_assert_nonnull(strstr(printed, "published 3 warnings"));
    g_autofree char *index_path = g_build_filename(out, "index.txt", NULL);
    g_autofree char *index = NULL;
    g_assert_true(g_file_get_contents(index_path, &index, NULL, NULL));
    g_auto(GStrv) names = g_strsplit(g_strstrip(index), "\n", -1);
    g_assert_cmpuint(g_strv_length(names), ==, 1);
    g_autoptr(ProxExportKeyring) keyring = prox_export_keyring_new();
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_export_keyring_add_file(keyring, NULL, NULL, pub, &error));
    g_autofree char *zip = g_build_filename(out, names[0], NULL);
    g_autoptr(ProxExport) export = NULL;
    g_assert_true(prox_export_read(zip, keyring, &export, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(export->keys->len, ==, 4);
    g_assert_cmpuint(export->venue_warnings->len, ==, 3);
    for (int i = 0; i < 3; i++) {
        uint8_t hash[PROX_LOCATION_HASH_LEN];
        prox_venue_location_hash(ids[i], hash);
        gboolean found = FALSE;
        for (guint k = 0; k < export->venue_warnings->len; k++) {
            const ProxVenueWarning *w = &g_array_index(export->venue_warnings, ProxVenueWarning, k);
            if (memcmp(w->location_hash, hash, sizeof hash) != 0)
                continue;
            found = TRUE;
            g_assert_cmpint(w->kind, ==, PROX_VENUE_WARNING_VENUE);
            g_assert_cmpint(w->start, ==, windows[i][0]);
            g_assert_cmpint(w->end, ==, windows[i][1]);
            g_assert_cmpint(w->transmission_risk_level, ==, 7);
        }
        g_assert_true(found);
    }
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM checkins WHERE run_id IS NOT NULL"),
                    ==, 3);
}

/* Each bad check-in refuses the whole upload: 400 with its reason, nothing stored. */
static void test_checkins_refused(Fixture *f, gconstpointer data)
{
    uint8_t id[PROX_LOCATION_ID_LEN];
    randombytes_buf(id, sizeof id);
    g_autofree char *good = checkin_json(id, TEST_NOW - DAY, TEST_NOW - DAY + 600);
    /* Later than a device clock 5 minutes ahead could make it. */
    g_autofree char *future = checkin_json(id, TEST_NOW - 600, TEST_NOW + 301);
    g_autofree char *long_stay = checkin_json(id, TEST_NOW - DAY - 2, TEST_NOW - 1);
    g_autofree char *too_old = checkin_json(id, TEST_NOW - 14 * DAY - 1, TEST_NOW - 14 * DAY + 600);
    g_autofree char *backwards = checkin_json(id, TEST_NOW - 600, TEST_NOW - 1200);
    g_autofree char *empty = checkin_json(id, TEST_NOW - 600, TEST_NOW - 600);
    GString *many = g_string_new("[");
    for (int i = 0; i < 61; i++) {
        uint8_t other[PROX_LOCATION_ID_LEN];
        randombytes_buf(other, sizeof other);
        g_autofree char *c = checkin_json(other, TEST_NOW - DAY, TEST_NOW - DAY + 600);
        g_string_append_printf(many, "%s%s", i ? "," : "", c);
    }
    g_string_append(many, "]");
    g_autofree char *too_many = g_string_free(many, FALSE);
    g_autofree char *hex = prox_hex_dup(id, PROX_LOCATION_ID_LEN);
    g_autofree char *bad_hex = g_strdup(hex);
    bad_hex[10] = 'g';
    g_autofree char *short_hex = g_strndup(hex, 63);
    const struct {
        const char *name;
        char *checkins;
        const char *reason;
    } cases[] = {
        {"too many", g_strdup(too_many), "too_many_checkins"},
        {"in the future", g_strdup_printf("[%s,%s]", good, future), "checkin_in_future"},
        {"longer than 24 h", g_strdup_printf("[%s]", long_stay), "bad_checkin_time"},
        {"older than 14 days", g_strdup_printf("[%s]", too_old), "checkin_too_old"},
        {"end before start", g_strdup_printf("[%s]", backwards), "bad_checkin_time"},
        {"empty stay", g_strdup_printf("[%s]", empty), "bad_checkin_time"},
        {"bad hex",
         g_strdup_printf("[{\"locationId\":\"%s\",\"start\":%d,\"end\":%d}]", bad_hex,
                         TEST_NOW - 600, TEST_NOW - 60),
         "bad_location_id"},
        {"63 hex digits",
         g_strdup_printf("[{\"locationId\":\"%s\",\"start\":%d,\"end\":%d}]", short_hex,
                         TEST_NOW - 600, TEST_NOW - 60),
         "bad_location_id"},
        {"no location id",
         g_strdup_printf("[{\"start\":%d,\"end\":%d}]", TEST_NOW - 600, TEST_NOW - 60),
         "bad_location_id"},
        {"start missing",
         g_strdup_printf("[{\"locationId\":\"%s\",\"end\":%d}]", hex, TEST_NOW - 60),
         "bad_checkin_time"},
        {"start a string",
         g_strdup_printf("[{\"locationId\":\"%s\",\"start\":\"%d\",\"end\":%d}]", hex,
                         TEST_NOW - 600, TEST_NOW - 60),
         "bad_checkin_time"},
        {"not an object", g_strdup("[1]"), "bad_checkin"},
        {"not an array", g_strdup("{}"), "bad_checkins"},
        {"twice", g_strdup_printf("[%s,%s]", good, good), "duplicate_checkin"},
    };
    g_autofree char *code = test_issue_code(f->db, NULL, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_test_message("case: %s", cases[i].name);
        g_autofree char *body = checkin_body(code, cases[i].checkins);
        post_expect(f, body, 400, cases[i].reason);
        g_assert_cmpint(checkins_stored(f), ==, 0);
        g_assert_cmpint(keys_stored(f), ==, 0);
        g_assert_cmpint(code_used(f), ==, 0);
        g_free(cases[i].checkins);
    }
    /* The code still works, with the good check-in. */
    g_autofree char *list = g_strdup_printf("[%s]", good);
    g_autofree char *body = checkin_body(code, list);
    post_expect(f, body, 200, "");
    g_assert_cmpint(checkins_stored(f), ==, 1);
    /* The same check-in reported again (another code): stored once. */
    g_autofree char *code2 = test_issue_code(f->db, NULL, NULL);
    g_autofree char *again = checkin_body(code2, list);
    g_autofree char *answer = NULL;
    g_assert_cmpint(test_http("POST", f->upload_url, JSON, again, strlen(again), &answer, NULL), ==,
                    200);
    g_assert_cmpint(test_json_int(answer, "checkins"), ==, 0);
    g_assert_cmpint(checkins_stored(f), ==, 1);
}

static void test_rate_limit(void)
{
    g_autofree char *dir = test_tmpdir_new();
    g_autofree char *db = g_build_filename(dir, "authority.db", NULL);
    TestServer *server =
        test_server_start(dir, db, "--now", TEST_NOW_ARG, "--rate", "0.001", "--burst", "3", NULL);
    g_autofree char *url = g_strconcat(server->url, "/v1/publish", NULL);
    g_autofree char *health = g_strconcat(server->url, "/healthz", NULL);
    for (int i = 0; i < 3; i++)
        g_assert_cmpint(test_http("POST", url, JSON, "{", 1, NULL, NULL), ==, 400);
    g_autofree char *answer = NULL;
    g_autofree char *retry_after = NULL;
    g_assert_cmpint(test_http("POST", url, JSON, "{", 1, &answer, &retry_after), ==, 429);
    g_autofree char *reason = test_json_reason(answer);
    g_assert_cmpstr(reason, ==, "rate_limited");
    g_assert_nonnull(retry_after);
    guint64 wait = 0;
    g_assert_true(g_ascii_string_to_unsigned(retry_after, 10, 1, 86400, &wait, NULL));
    g_assert_cmpuint(wait, >=, 900); /* one token per 1000 s */
    /* Even a valid upload is refused now, and stores nothing. */
    g_autofree char *code = test_issue_code(db, NULL, NULL);
    g_autofree char *body = test_upload_body(code, 2, NULL);
    g_assert_cmpint(test_http("POST", url, JSON, body, strlen(body), NULL, NULL), ==, 429);
    g_assert_cmpint(test_db_int(db, "SELECT count(*) FROM keys"), ==, 0);
    /* The health check is not limited. */
    g_assert_cmpint(test_http("GET", health, NULL, NULL, 0, NULL, NULL), ==, 200);
    g_assert_cmpint(test_server_stop(server), ==, 0);
    test_tmpdir_free(g_steal_pointer(&dir));
}

static void test_scheduled_publish(void)
{
    g_autofree char *dir = test_tmpdir_new();
    g_autofree char *db = g_build_filename(dir, "authority.db", NULL);
    g_autofree char *keydir = g_build_filename(dir, "keys", NULL);
    g_autofree char *out = g_build_filename(dir, "pub", NULL);
    g_autofree char *sec = g_build_filename(keydir, "310-v1.sec", NULL);
    g_autofree char *pub = g_build_filename(keydir, "310-v1.pub", NULL);
    g_assert_cmpint(test_authority(NULL, NULL, "init-key", "--key-id", "310", "--key-version", "v1",
                                   "--dir", keydir, NULL),
                    ==, 0);
    g_autofree char *code = test_issue_code(db, NULL, NULL);
    uint8_t keys[4 * PROX_KEY_LEN];
    g_autofree char *body = test_upload_body(code, 4, keys);

    TestServer *server = test_server_start(dir, db, "--now", TEST_NOW_ARG, "--publish-dir", out,
                                           "--signing-key", sec, "--publish-interval", "1",
                                           "--min-keys", "10", "--padding-jitter", "0", NULL);
    g_autofree char *url = g_strconcat(server->url, "/v1/publish", NULL);
    g_assert_cmpint(test_http("POST", url, JSON, body, strlen(body), NULL, NULL), ==, 200);
    /* Wait for a run to publish the keys. */
    g_autofree char *index_path = g_build_filename(out, "index.txt", NULL);
    g_autofree char *index = NULL;
    for (int i = 0; i < 1000; i++) {
        g_clear_pointer(&index, g_free);
        if (g_file_get_contents(index_path, &index, NULL, NULL) && index[0] != '\0')
            break;
        g_usleep(10000);
    }
    g_assert_nonnull(index);
    g_assert_cmpstr(index, !=, "");
    g_assert_cmpint(test_server_stop(server), ==, 0);

    g_auto(GStrv) lines = g_strsplit(g_strstrip(index), "\n", -1);
    g_assert_cmpuint(g_strv_length(lines), ==, 1);
    g_autoptr(ProxExportKeyring) keyring = prox_export_keyring_new();
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_export_keyring_add_file(keyring, NULL, NULL, pub, &error));
    g_autofree char *zip = g_build_filename(out, lines[0], NULL);
    g_autoptr(ProxExport) export = NULL;
    g_assert_true(prox_export_read(zip, keyring, &export, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(export->keys->len, ==, 10);
    for (int k = 0; k < 4; k++) {
        gboolean found = FALSE;
        for (guint i = 0; i < export->keys->len; i++)
            found |= memcmp(g_array_index(export->keys, ProxDiagnosisKey, i).tek.key,
                            keys + k * PROX_KEY_LEN, PROX_KEY_LEN) == 0;
        g_assert_true(found);
    }
    g_assert_cmpint(test_db_int(db, "SELECT count(*) FROM keys WHERE run_id IS NOT NULL"), ==, 4);
    test_tmpdir_free(g_steal_pointer(&dir));
}

/* A simulated world's clock (PROX_SIM_CLOCK, which proxd and the fake radio follow too). */
static void test_sim_clock(void)
{
    g_autofree char *dir = test_tmpdir_new();
    g_autofree char *db = g_build_filename(dir, "authority.db", NULL);
    gint64 real = g_get_real_time() / G_USEC_PER_SEC;
    g_autofree char *code = test_issue_code(db, NULL, "7d");
    g_autofree char *body = test_upload_body(code, 14, NULL);

    /* Ten days after TEST_NOW, the oldest of these keys is too old. */
    g_autofree char *later = g_strdup_printf("%" G_GINT64_FORMAT ":%d:1", real, TEST_NOW + 864000);
    g_setenv("PROX_SIM_CLOCK", later, TRUE);
    TestServer *server = test_server_start(dir, db, "--rate", "0", NULL);
    g_autofree char *url = g_strconcat(server->url, "/v1/publish", NULL);
    g_autofree char *answer = NULL;
    g_assert_cmpint(test_http("POST", url, JSON, body, strlen(body), &answer, NULL), ==, 400);
    g_autofree char *reason = test_json_reason(answer);
    g_assert_cmpstr(reason, ==, "key_too_old");
    g_assert_cmpint(test_server_stop(server), ==, 0);

    /* In a world whose clock reads TEST_NOW they are fine. */
    g_autofree char *then = g_strdup_printf("%" G_GINT64_FORMAT ":%d:1", real, TEST_NOW);
    g_setenv("PROX_SIM_CLOCK", then, TRUE);
    server = test_server_start(dir, db, "--rate", "0", NULL);
    g_free(url);
    url = g_strconcat(server->url, "/v1/publish", NULL);
    g_assert_cmpint(test_http("POST", url, JSON, body, strlen(body), NULL, NULL), ==, 200);
    g_assert_cmpint(test_server_stop(server), ==, 0);
    g_assert_cmpint(test_db_int(db, "SELECT count(*) FROM keys"), ==, 14);
    g_assert_cmpint(test_db_int(db, "SELECT abs(max(uploaded_at) - 1590000000) < 60 FROM keys"), ==,
                    1);
    /* prox-authority follows it too. */
    g_assert_cmpint(test_authority(NULL, NULL, "issue-code", "--db", db, "--onset", "2020-05-19",
                                   "--test-type", "clinical", NULL),
                    ==, 0);
    g_assert_cmpint(test_db_int(db, "SELECT abs(max(issued_at) - 1590000000) < 60 FROM codes"), ==,
                    1);

    /* A malformed one is a usage error. */
    g_setenv("PROX_SIM_CLOCK", "soon", TRUE);
    const char *const argv[] = {g_getenv("PROX_KEYSERVER"), "--db", db, NULL};
    g_assert_cmpint(test_run(argv, NULL, NULL), ==, 2);
    g_unsetenv("PROX_SIM_CLOCK");
    test_tmpdir_free(g_steal_pointer(&dir));
}

static void test_bad_arguments(void)
{
    const char *server = g_getenv("PROX_KEYSERVER");
    const char *const cases[][6] = {
        {server, NULL},
        {server, "--db", "x.db", "--listen", "localhost:80", NULL},
        {server, "--db", "x.db", "--publish-dir", "out", NULL},
        {server, "--db", "x.db", "--now", "yesterday", NULL},
        {server, "--db", "x.db", "extra", NULL},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *err = NULL;
        g_assert_cmpint(test_run(cases[i], NULL, &err), ==, 2);
        /* one line */
        g_assert_nonnull(strchr(err, '\n'));
        g_assert_cmpstr(strchr(err, '\n') + 1, ==, "");
    }
    g_autofree char *out = NULL;
    const char *const help[] = {server, "--help", NULL};
    g_assert_cmpint(test_run(help, &out, NULL), ==, 0);
    g_assert_nonnull(strstr(out, "POST /v1/publish"));
    g_assert_nonnull(strstr(out, "--port-file"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_assert_cmpint(sodium_init(), >=, 0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
    ADD("/keyserver/upload/good", test_upload_good);
    ADD("/keyserver/upload/edges", test_upload_edges);
    ADD("/keyserver/upload/refused", test_upload_refused);
    ADD("/keyserver/upload/code-expired", test_upload_code_expired);
    ADD("/keyserver/upload/http-refusals", test_upload_http_refusals);
    ADD("/keyserver/upload/oversized", test_upload_oversized);
    ADD("/keyserver/upload/race", test_upload_race);
    ADD("/keyserver/upload/repeat-keys", test_upload_repeat_keys);
    ADD("/keyserver/checkins/stored-and-published", test_checkins_stored_and_published);
    ADD("/keyserver/checkins/refused", test_checkins_refused);
    g_test_add_func("/keyserver/rate-limit", test_rate_limit);
    g_test_add_func("/keyserver/scheduled-publish", test_scheduled_publish);
    g_test_add_func("/keyserver/sim-clock", test_sim_clock);
    g_test_add_func("/keyserver/bad-arguments", test_bad_arguments);
    int status = g_test_run();
    curl_global_cleanup();
    return status;
}
