/* test-venue-counts.c - the opt-in anonymous venue counts end to end on the authority's side:
 * prox-keyserver's POST /v1/venue-count over HTTP on loopback (a count stored and incremented,
 * nothing but (location hash, hour, count) stored, every malformed body a 400 with its reason
 * and nothing stored, 413/415/405/404, a rate-limit bucket of its own), the body exactly as
 * proxd builds and sends it (daemon/proxd-venues.c), and `prox-authority venue counts` and
 * `status` on the stored counts of a registered venue. */
#include "authority-test-util.h"
#include "prox-export.h"
#include "prox-hex.h"
#include "prox-venue.h"
#include "proxd-venues.h"

#include <curl/curl.h>
#include <json-glib/json-glib.h>
#include <sodium.h>
#include <string.h>

#define JSON "application/json"
#define HOUR 3600
#define DAY 86400
/* The hour TEST_NOW (18:40 UTC) is in: 2020-05-20T18:00:00Z. */
#define CURRENT_HOUR 1589997600
/* The oldest hour accepted: 14 days before it. */
#define OLDEST_HOUR (CURRENT_HOUR - 14 * DAY)

typedef struct {
    char *dir;
    char *db;
    TestServer *server;
    char *count_url;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->dir = test_tmpdir_new();
    f->db = g_build_filename(f->dir, "authority.db", NULL);
    f->server = test_server_start(f->dir, f->db, "--now", TEST_NOW_ARG, "--rate", "0", NULL);
    f->count_url = g_strconcat(f->server->url, "/v1/venue-count", NULL);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    if (f->server != NULL)
        g_assert_cmpint(test_server_stop(f->server), ==, 0);
    g_free(f->count_url);
    g_free(f->db);
    test_tmpdir_free(f->dir);
}

static gint64 counts_total(Fixture *f)
{
    return test_db_int(f->db, "SELECT coalesce(sum(count), 0) FROM venue_counts");
}

static gint64 count_of(Fixture *f, const char *hex, gint64 hour)
{
    g_autofree char *sql =
        g_strdup_printf("SELECT coalesce(sum(count), 0) FROM venue_counts WHERE "
                        "hex(location_hash) = upper('%s') AND hour = %" G_GINT64_FORMAT,
                        hex, hour);
    return test_db_int(f->db, sql);
}

static char *count_body(const char *hex, gint64 hour)
{
    return g_strdup_printf("{\"locationHash\":\"%s\",\"hour\":%" G_GINT64_FORMAT "}", hex, hour);
}

static char *random_hash_hex(void)
{
    uint8_t hash[PROX_LOCATION_HASH_LEN];
    randombytes_buf(hash, sizeof hash);
    return prox_hex_dup(hash, sizeof hash);
}

/* POSTs body (of len bytes) with the content type; checks status and reason ("" for none,
 * then the answer must be {"ok":true}). */
static void post_expect_len(const char *url, const char *type, const char *body, size_t len,
                            long status, const char *reason)
{
    g_autofree char *answer = NULL;
    long got = test_http("POST", url, type, body, len, &answer, NULL);
    g_test_message("%ld %s", got, answer);
    g_assert_cmpint(got, ==, status);
    if (reason[0] != '\0') {
        g_autofree char *r = test_json_reason(answer);
        g_assert_cmpstr(r, ==, reason);
    } else {
        g_assert_cmpstr(answer, ==, "{\"ok\":true}");
    }
}

static void post_expect(Fixture *f, const char *body, long status, const char *reason)
{
    post_expect_len(f->count_url, JSON, body, strlen(body), status, reason);
}

/* Does the file hold `needle` anywhere? */
static gboolean file_contains(const char *path, const char *needle)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    if (!g_file_get_contents(path, &data, &len, NULL))
        return FALSE;
    return memmem(data, len, needle, strlen(needle)) != NULL;
}

/* ---- stored ---- */

static void test_count_stored(Fixture *f, gconstpointer data)
{
    g_autofree char *hex = random_hash_hex();
    g_autofree char *body = count_body(hex, CURRENT_HOUR);
    post_expect(f, body, 200, "");
    g_assert_cmpint(count_of(f, hex, CURRENT_HOUR), ==, 1);
    post_expect(f, body, 200, "");
    g_assert_cmpint(count_of(f, hex, CURRENT_HOUR), ==, 2);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM venue_counts"), ==, 1);

    /* The same hash in capitals is the same venue; another hour is a row of its own. */
    g_autofree char *upper = g_ascii_strup(hex, -1);
    g_autofree char *upper_body = count_body(upper, CURRENT_HOUR);
    post_expect(f, upper_body, 200, "");
    g_assert_cmpint(count_of(f, hex, CURRENT_HOUR), ==, 3);
    g_autofree char *oldest = count_body(hex, OLDEST_HOUR);
    post_expect(f, oldest, 200, "");
    g_assert_cmpint(count_of(f, hex, OLDEST_HOUR), ==, 1);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM venue_counts"), ==, 2);

    /* A charset parameter is fine; so is whitespace up to the 256-byte cap. */
    g_autofree char *other = random_hash_hex();
    g_autofree char *other_body = count_body(other, CURRENT_HOUR - HOUR);
    post_expect_len(f->count_url, "application/json; charset=utf-8", other_body, strlen(other_body),
                    200, "");
    g_autofree char *pad = g_strnfill(256 - strlen(other_body), ' ');
    g_autofree char *padded = g_strconcat(other_body, pad, NULL);
    g_assert_cmpuint(strlen(padded), ==, 256);
    post_expect(f, padded, 200, "");
    g_assert_cmpint(count_of(f, other, CURRENT_HOUR - HOUR), ==, 2);
    g_assert_cmpint(counts_total(f), ==, 6);

    /* Nothing but the hash, the hour and the count: no address, no time of receipt. */
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM pragma_table_info('venue_counts')"),
                    ==, 3);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM pragma_table_info('venue_counts') "
                                       "WHERE name IN ('location_hash', 'hour', 'count')"),
                    ==, 3);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM venue_counts WHERE hour % 3600 != 0 "
                                       "OR length(location_hash) != 32"),
                    ==, 0);
    g_autofree char *wal = g_strconcat(f->db, "-wal", NULL);
    g_assert_false(file_contains(f->db, "127.0.0.1"));
    g_assert_false(file_contains(wal, "127.0.0.1"));
    /* Counts are not uploads: no key, code or check-in appears. */
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM keys"), ==, 0);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM checkins"), ==, 0);
}

/* ---- refused ---- */

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

typedef struct {
    const char *name;
    const char *body;
    const char *reason;
} BadCount;

static const BadCount bad_counts[] = {
    {"not JSON", "{\"locationHash\":", "malformed_json"},
    {"empty body", "", "malformed_json"},
    {"an array", "[\"" HEX64 "\",1589997600]", "malformed_json"},
    {"a string", "\"" HEX64 "\"", "malformed_json"},
    {"bad hex",
     "{\"locationHash\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg\","
     "\"hour\":1589997600}",
     "bad_location_hash"},
    {"63 hex digits",
     "{\"locationHash\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\","
     "\"hour\":1589997600}",
     "bad_location_hash"},
    {"65 hex digits", "{\"locationHash\":\"" HEX64 "0\",\"hour\":1589997600}", "bad_location_hash"},
    {"empty hash", "{\"locationHash\":\"\",\"hour\":1589997600}", "bad_location_hash"},
    {"no hash", "{\"hour\":1589997600}", "bad_location_hash"},
    {"hash a number", "{\"locationHash\":12,\"hour\":1589997600}", "bad_location_hash"},
    {"hash null", "{\"locationHash\":null,\"hour\":1589997600}", "bad_location_hash"},
    {"hash an array", "{\"locationHash\":[\"" HEX64 "\"],\"hour\":1589997600}",
     "bad_location_hash"},
    {"hash base64",
     "{\"locationHash\":\"ASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4mrze8=\","
     "\"hour\":1589997600}",
     "bad_location_hash"},
    {"no hour", "{\"locationHash\":\"" HEX64 "\"}", "bad_hour"},
    {"hour a string", "{\"locationHash\":\"" HEX64 "\",\"hour\":\"1589997600\"}", "bad_hour"},
    {"hour a float", "{\"locationHash\":\"" HEX64 "\",\"hour\":1589997600.0}", "bad_hour"},
    {"hour true", "{\"locationHash\":\"" HEX64 "\",\"hour\":true}", "bad_hour"},
    {"hour null", "{\"locationHash\":\"" HEX64 "\",\"hour\":null}", "bad_hour"},
    {"hour an object", "{\"locationHash\":\"" HEX64 "\",\"hour\":{}}", "bad_hour"},
    {"hour not a multiple of 3600", "{\"locationHash\":\"" HEX64 "\",\"hour\":1589997601}",
     "bad_hour"},
    {"hour the arrival itself", "{\"locationHash\":\"" HEX64 "\",\"hour\":1590000000}", "bad_hour"},
    {"hour in minutes", "{\"locationHash\":\"" HEX64 "\",\"hour\":26499960}", "bad_hour"},
    {"next hour", "{\"locationHash\":\"" HEX64 "\",\"hour\":1590001200}", "hour_in_future"},
    {"far future", "{\"locationHash\":\"" HEX64 "\",\"hour\":1999998000}", "hour_in_future"},
    {"older than 14 days", "{\"locationHash\":\"" HEX64 "\",\"hour\":1588784400}", "hour_too_old"},
    {"zero", "{\"locationHash\":\"" HEX64 "\",\"hour\":0}", "hour_too_old"},
    {"negative", "{\"locationHash\":\"" HEX64 "\",\"hour\":-3600}", "hour_too_old"},
    {"extra member", "{\"locationHash\":\"" HEX64 "\",\"hour\":1589997600,\"deviceId\":\"abc\"}",
     "unknown_member"},
    {"padding member", "{\"locationHash\":\"" HEX64 "\",\"hour\":1589997600,\"padding\":\"\"}",
     "unknown_member"},
    {"a location id instead", "{\"locationId\":\"" HEX64 "\",\"hour\":1589997600}",
     "unknown_member"},
    {"a check-in instead",
     "{\"locationHash\":\"" HEX64 "\",\"start\":1589997600,\"end\":1590000000}", "unknown_member"},
};

static void test_count_refused(Fixture *f, gconstpointer data)
{
    /* 1590001200 is the next hour only if it is a multiple of 3600: check the table's own
     * arithmetic against the constants. */
    G_STATIC_ASSERT(CURRENT_HOUR % HOUR == 0 && CURRENT_HOUR <= TEST_NOW &&
                    TEST_NOW < CURRENT_HOUR + HOUR);
    G_STATIC_ASSERT(1590001200 == CURRENT_HOUR + HOUR && 1588784400 == OLDEST_HOUR - HOUR);
    for (size_t i = 0; i < G_N_ELEMENTS(bad_counts); i++) {
        const BadCount *c = &bad_counts[i];
        g_test_message("case: %s", c->name);
        post_expect(f, c->body, 400, c->reason);
        g_assert_cmpint(counts_total(f), ==, 0);
    }

    g_autofree char *good = count_body(HEX64, CURRENT_HOUR);
    /* Content types */
    post_expect_len(f->count_url, "text/plain", good, strlen(good), 415,
                    "unsupported_content_type");
    post_expect_len(f->count_url, NULL, good, strlen(good), 415, "unsupported_content_type");
    post_expect_len(f->count_url, "application/x-www-form-urlencoded", good, strlen(good), 415,
                    "unsupported_content_type");
    /* Over the 256-byte cap, by Content-Length and chunked */
    g_autofree char *pad = g_strnfill(257 - strlen(good), ' ');
    g_autofree char *big = g_strconcat(good, pad, NULL);
    g_assert_cmpuint(strlen(big), ==, 257);
    post_expect(f, big, 413, "body_too_large");
    g_autofree char *answer = NULL;
    g_assert_cmpint(test_http_chunked(f->count_url, JSON, big, strlen(big), &answer), ==, 413);
    g_autofree char *reason = test_json_reason(answer);
    g_assert_cmpstr(reason, ==, "body_too_large");
    g_autofree char *huge_pad = g_strnfill(1 << 20, ' ');
    g_autofree char *huge = g_strconcat(good, huge_pad, NULL);
    post_expect(f, huge, 413, "body_too_large");
    /* A NUL byte inside */
    char nul_body[] = "{\"locationHash\":\"" HEX64 "\",\"hour\":1589997600}\0";
    post_expect_len(f->count_url, JSON, nul_body, sizeof nul_body - 1, 400, "malformed_json");
    /* Methods and paths */
    g_clear_pointer(&answer, g_free);
    g_clear_pointer(&reason, g_free);
    g_assert_cmpint(test_http("GET", f->count_url, NULL, NULL, 0, &answer, NULL), ==, 405);
    reason = test_json_reason(answer);
    g_assert_cmpstr(reason, ==, "method_not_allowed");
    g_clear_pointer(&answer, g_free);
    g_clear_pointer(&reason, g_free);
    g_assert_cmpint(test_http("PUT", f->count_url, JSON, good, strlen(good), &answer, NULL), ==,
                    405);
    g_clear_pointer(&answer, g_free);
    g_autofree char *below = g_strconcat(f->count_url, "/x", NULL);
    g_assert_cmpint(test_http("POST", below, JSON, good, strlen(good), &answer, NULL), ==, 404);
    reason = test_json_reason(answer);
    g_assert_cmpstr(reason, ==, "not_found");
    g_clear_pointer(&answer, g_free);
    /* The count endpoint does not take uploads, nor the upload endpoint counts. */
    g_autofree char *upload_url = g_strconcat(f->server->url, "/v1/publish", NULL);
    g_assert_cmpint(test_http("POST", upload_url, JSON, good, strlen(good), &answer, NULL), ==,
                    400);
    g_assert_cmpint(counts_total(f), ==, 0);

    /* After all that, a good one is stored. */
    post_expect(f, good, 200, "");
    g_assert_cmpint(counts_total(f), ==, 1);
}

/* ---- rate limiting: buckets of its own ---- */

static void test_count_rate_limit(void)
{
    g_autofree char *dir = test_tmpdir_new();
    g_autofree char *db = g_build_filename(dir, "authority.db", NULL);
    TestServer *server = test_server_start(dir, db, "--now", TEST_NOW_ARG, "--rate", "0.001",
                                           "--burst", "2", "--count-burst", "3", NULL);
    g_autofree char *count_url = g_strconcat(server->url, "/v1/venue-count", NULL);
    g_autofree char *upload_url = g_strconcat(server->url, "/v1/publish", NULL);
    g_autofree char *body = count_body(HEX64, CURRENT_HOUR);
    for (int i = 0; i < 3; i++)
        post_expect_len(count_url, JSON, body, strlen(body), 200, "");
    g_autofree char *answer = NULL;
    g_autofree char *retry_after = NULL;
    g_assert_cmpint(test_http("POST", count_url, JSON, body, strlen(body), &answer, &retry_after),
                    ==, 429);
    g_autofree char *reason = test_json_reason(answer);
    g_assert_cmpstr(reason, ==, "rate_limited");
    guint64 wait = 0;
    g_assert_nonnull(retry_after);
    g_assert_true(g_ascii_string_to_unsigned(retry_after, 10, 1, 86400, &wait, NULL));
    g_assert_cmpuint(wait, >=, 900); /* one token per 1000 s (--rate, as --count-rate) */
    g_assert_cmpint(test_db_int(db, "SELECT sum(count) FROM venue_counts"), ==, 3);

    /* The counts did not use up the client's uploads: two (of --burst 2) still go through. */
    g_autofree char *code = test_issue_code(db, NULL, NULL);
    g_autofree char *upload = test_upload_body(code, 2, NULL);
    g_assert_cmpint(test_http("POST", upload_url, JSON, "{", 1, NULL, NULL), ==, 400);
    g_assert_cmpint(test_http("POST", upload_url, JSON, upload, strlen(upload), NULL, NULL), ==,
                    200);
    g_assert_cmpint(test_http("POST", upload_url, JSON, upload, strlen(upload), NULL, NULL), ==,
                    429);
    g_assert_cmpint(test_server_stop(server), ==, 0);

    /* Bad values are usage errors. */
    const char *keyserver = g_getenv("PROX_KEYSERVER");
    const char *const bad_burst[] = {keyserver, "--db", db, "--count-burst", "0", NULL};
    g_assert_cmpint(test_run(bad_burst, NULL, NULL), ==, 2);
    const char *const bad_rate[] = {keyserver, "--db", db, "--count-rate", "-2", NULL};
    g_assert_cmpint(test_run(bad_rate, NULL, NULL), ==, 2);
    g_autofree char *help = NULL;
    const char *const help_argv[] = {keyserver, "--help", NULL};
    g_assert_cmpint(test_run(help_argv, &help, NULL), ==, 0);
    g_assert_nonnull(strstr(help, "POST /v1/venue-count"));
    g_assert_nonnull(strstr(help, "--count-burst"));
    test_tmpdir_free(g_steal_pointer(&dir));
}

/* ---- what proxd sends ---- */

/* Sends the count of a check-in at `arrived` with proxd's own proxd_venues_share_count_async()
 * and waits for it. */
typedef struct {
    gboolean done;
    gboolean sent;
    GError *error;
} Sent;

static void on_count_sent(GObject *source, GAsyncResult *res, gpointer user_data)
{
    Sent *sent = user_data;
    sent->sent = g_task_propagate_boolean(G_TASK(res), &sent->error);
    sent->done = TRUE;
}

static void proxd_share_count(const char *url, const uint8_t location_id[PROX_LOCATION_ID_LEN],
                              gint64 arrived)
{
    Sent sent = {FALSE, FALSE, NULL};
    proxd_venues_share_count_async(url, location_id, arrived, NULL, on_count_sent, &sent);
    while (!sent.done)
        g_main_context_iteration(NULL, TRUE);
    g_assert_no_error(sent.error);
    g_assert_true(sent.sent);
}

static void test_count_from_proxd(Fixture *f, gconstpointer data)
{
    /* A device configured with the key server's upload URL as its [Report] URL. */
    g_autofree char *report_url = g_strconcat(f->server->url, "/v1/publish", NULL);
    g_autoptr(GError) error = NULL;
    g_autofree char *url = proxd_venues_count_url(report_url, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(url, ==, f->count_url);

    uint8_t location_id[PROX_LOCATION_ID_LEN];
    randombytes_buf(location_id, sizeof location_id);
    uint8_t hash[PROX_LOCATION_HASH_LEN];
    prox_venue_location_hash(location_id, hash);
    g_autofree char *hex = prox_hex_dup(hash, sizeof hash);
    /* Check-ins just now, at the start of this hour, earlier today and 13 days ago. */
    const gint64 arrivals[] = {TEST_NOW, CURRENT_HOUR, TEST_NOW - 5 * HOUR - 17,
                               TEST_NOW - 13 * DAY};
    for (size_t i = 0; i < G_N_ELEMENTS(arrivals); i++) {
        g_autofree char *body = proxd_venues_count_body(hash, arrivals[i]);
        g_test_message("proxd sends %s", body);
        g_assert_cmpuint(strlen(body), <=, 256);
        proxd_share_count(url, location_id, arrivals[i]);
    }
    g_assert_cmpint(count_of(f, hex, CURRENT_HOUR), ==, 2);
    g_assert_cmpint(count_of(f, hex, CURRENT_HOUR - 5 * HOUR), ==, 1);
    g_assert_cmpint(count_of(f, hex, CURRENT_HOUR - 13 * DAY), ==, 1);
    g_assert_cmpint(counts_total(f), ==, 4);
}

/* ---- prox-authority venue counts, status ---- */

/* Registers a venue; returns its location hash. */
static void register_venue(const char *dir, const char *db, const char *sec,
                           const ProxExportKeyring *keyring, const char *name, const char *type,
                           uint8_t hash[PROX_LOCATION_HASH_LEN])
{
    g_autofree char *out_dir = g_build_filename(dir, name, NULL);
    g_autofree char *err = NULL;
    int status = test_authority(NULL, &err, "venue", "register", "--db", db, "--key", sec, "--name",
                                name, "--type", type, "--stay", "60", "--out", out_dir, "--now",
                                TEST_NOW_ARG, NULL);
    if (status != 0)
        g_error("venue register failed: %s", err);
    g_autofree char *url_path = g_build_filename(out_dir, "url.txt", NULL);
    g_autofree char *url = NULL;
    g_assert_true(g_file_get_contents(url_path, &url, NULL, NULL));
    g_autoptr(ProxVenue) venue = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_venue_parse_url(g_strstrip(url), keyring, &venue, &error));
    g_assert_no_error(error);
    prox_venue_location_hash(venue->location_id, hash);
}

static void post_n(Fixture *f, const uint8_t hash[PROX_LOCATION_HASH_LEN], gint64 hour, int n)
{
    g_autofree char *hex = prox_hex_dup(hash, PROX_LOCATION_HASH_LEN);
    g_autofree char *body = count_body(hex, hour);
    for (int i = 0; i < n; i++)
        post_expect(f, body, 200, "");
}

static void test_counts_cli(Fixture *f, gconstpointer data)
{
    g_autofree char *keydir = g_build_filename(f->dir, "keys", NULL);
    g_autofree char *sec = g_build_filename(keydir, "310-v1.sec", NULL);
    g_autofree char *pub = g_build_filename(keydir, "310-v1.pub", NULL);
    g_assert_cmpint(test_authority(NULL, NULL, "init-key", "--key-id", "310", "--key-version", "v1",
                                   "--dir", keydir, NULL),
                    ==, 0);
    g_autoptr(ProxExportKeyring) keyring = prox_export_keyring_new();
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_export_keyring_add_file(keyring, NULL, NULL, pub, &error));

    /* Nothing yet. */
    g_autofree char *empty = NULL;
    g_assert_cmpint(test_authority(&empty, NULL, "venue", "counts", "--db", f->db, NULL), ==, 0);
    g_assert_cmpstr(empty, ==, "unregistered: 0\n");

    uint8_t market[PROX_LOCATION_HASH_LEN];
    uint8_t bakery[PROX_LOCATION_HASH_LEN];
    uint8_t stranger[PROX_LOCATION_HASH_LEN];
    register_venue(f->dir, f->db, sec, keyring, "Central Market", "market", market);
    register_venue(f->dir, f->db, sec, keyring, "Bakery", "shop", bakery);
    randombytes_buf(stranger, sizeof stranger);
    /* The market: 2 at 18:00 and 1 at 09:00 today, 4 at 23:00 on 2020-05-18. The bakery none.
     * 5 for a hash nobody registered. */
    post_n(f, market, CURRENT_HOUR, 2);
    post_n(f, market, CURRENT_HOUR - 9 * HOUR, 1);
    post_n(f, market, CURRENT_HOUR - 2 * DAY + 5 * HOUR, 4);
    post_n(f, stranger, CURRENT_HOUR, 3);
    post_n(f, stranger, CURRENT_HOUR - DAY, 2);

    g_autofree char *out = NULL;
    g_assert_cmpint(test_authority(&out, NULL, "venue", "counts", "--db", f->db, NULL), ==, 0);
    g_assert_cmpstr(out, ==,
                    "venue 1 market \"Central Market\": 7\n"
                    "  2020-05-18: 4\n"
                    "    23:00 4\n"
                    "  2020-05-20: 3\n"
                    "    09:00 1\n"
                    "    18:00 2\n"
                    "venue 2 shop \"Bakery\": 0\n"
                    "unregistered: 5\n");

    g_autofree char *since = NULL;
    g_assert_cmpint(test_authority(&since, NULL, "venue", "counts", "--db", f->db, "--since",
                                   "2020-05-20", NULL),
                    ==, 0);
    g_assert_cmpstr(since, ==,
                    "venue 1 market \"Central Market\": 3\n"
                    "  2020-05-20: 3\n"
                    "    09:00 1\n"
                    "    18:00 2\n"
                    "venue 2 shop \"Bakery\": 0\n"
                    "unregistered: 3\n");

    g_autofree char *json = NULL;
    g_assert_cmpint(test_authority(&json, NULL, "venue", "counts", "--db", f->db, "--json", NULL),
                    ==, 0);
    g_autoptr(JsonParser) parser = json_parser_new();
    g_assert_true(json_parser_load_from_data(parser, json, -1, &error));
    g_assert_no_error(error);
    JsonObject *root = json_node_get_object(json_parser_get_root(parser));
    g_assert_true(json_object_get_null_member(root, "since"));
    g_assert_cmpint(
        json_object_get_int_member(json_object_get_object_member(root, "unregistered"), "total"),
        ==, 5);
    JsonArray *venues = json_object_get_array_member(root, "venues");
    g_assert_cmpuint(json_array_get_length(venues), ==, 2);
    JsonObject *v1 = json_array_get_object_element(venues, 0);
    g_assert_cmpint(json_object_get_int_member(v1, "id"), ==, 1);
    g_assert_cmpstr(json_object_get_string_member(v1, "name"), ==, "Central Market");
    g_assert_cmpstr(json_object_get_string_member(v1, "type"), ==, "market");
    g_assert_cmpint(json_object_get_int_member(v1, "total"), ==, 7);
    JsonArray *days = json_object_get_array_member(v1, "days");
    g_assert_cmpuint(json_array_get_length(days), ==, 2);
    JsonObject *d0 = json_array_get_object_element(days, 0);
    g_assert_cmpstr(json_object_get_string_member(d0, "day"), ==, "2020-05-18");
    g_assert_cmpint(json_object_get_int_member(d0, "total"), ==, 4);
    JsonObject *d1 = json_array_get_object_element(days, 1);
    g_assert_cmpstr(json_object_get_string_member(d1, "day"), ==, "2020-05-20");
    g_assert_cmpint(json_object_get_int_member(d1, "total"), ==, 3);
    JsonArray *hours = json_object_get_array_member(d1, "hours");
    g_assert_cmpuint(json_array_get_length(hours), ==, 2);
    JsonObject *h1 = json_array_get_object_element(hours, 1);
    g_assert_cmpint(json_object_get_int_member(h1, "hour"), ==, CURRENT_HOUR);
    g_assert_cmpstr(json_object_get_string_member(h1, "start"), ==, "2020-05-20T18:00:00Z");
    g_assert_cmpint(json_object_get_int_member(h1, "count"), ==, 2);
    JsonObject *v2 = json_array_get_object_element(venues, 1);
    g_assert_cmpstr(json_object_get_string_member(v2, "name"), ==, "Bakery");
    g_assert_cmpint(json_object_get_int_member(v2, "total"), ==, 0);
    g_assert_cmpuint(json_array_get_length(json_object_get_array_member(v2, "days")), ==, 0);

    /* status: the venues and the counts. */
    g_autofree char *status = NULL;
    g_assert_cmpint(test_authority(&status, NULL, "status", "--db", f->db, NULL), ==, 0);
    g_assert_nonnull(strstr(status, "\nvenues 2\n"));
    g_assert_nonnull(strstr(status, "\nwarnings_unpublished 0\n"));
    g_assert_nonnull(strstr(status, "\nwarnings_published 0\n"));
    g_assert_nonnull(strstr(status, "\nvenue_counts 12\n"));

    /* Usage errors */
    g_assert_cmpint(test_authority(NULL, NULL, "venue", "counts", NULL), ==, 2);
    g_assert_cmpint(
        test_authority(NULL, NULL, "venue", "counts", "--db", f->db, "--since", "May 20", NULL), ==,
        2);
    g_assert_cmpint(test_authority(NULL, NULL, "venue", "counts", "--db", f->db, "extra", NULL), ==,
                    2);
    g_autofree char *help = NULL;
    g_assert_cmpint(test_authority(&help, NULL, "venue", "--help", NULL), ==, 0);
    g_assert_nonnull(strstr(help, "counts --db DB"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_assert_cmpint(sodium_init(), >=, 0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
    ADD("/venue-counts/stored", test_count_stored);
    ADD("/venue-counts/refused", test_count_refused);
    ADD("/venue-counts/from-proxd", test_count_from_proxd);
    ADD("/venue-counts/cli", test_counts_cli);
    g_test_add_func("/venue-counts/rate-limit", test_count_rate_limit);
    int status = g_test_run();
    curl_global_cleanup();
    return status;
}
