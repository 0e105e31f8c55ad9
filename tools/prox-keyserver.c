/* prox-keyserver.c - the health authority's upload server (PROTOCOL.md §6).
 *
 * POST /v1/publish takes a one-time code and a device's keys (and optionally the venue
 * check-ins the person chose to report, docs/venues.md §6), checks everything, and stores
 * them and consumes the code in one transaction (authority-ingest.c). POST /v1/venue-count
 * takes an opt-in, anonymous check-in count (location hash, hour) and adds one to it, storing
 * nothing about the sender. GET /healthz says it is alive. Optionally publishes signed key
 * lists on a schedule, with the same code as `prox-authority publish`. Meant to run behind a
 * TLS-terminating reverse proxy (docs/keyserver.md). Logs never contain keys, codes, location
 * hashes or client addresses.
 */
#define G_LOG_DOMAIN "prox-keyserver"

#include "authority-clock.h"
#include "authority-db.h"
#include "authority-fs.h"
#include "authority-ingest.h"
#include "authority-publish.h"
#include "authority-ratelimit.h"
#include "authority-upload.h"
#include "authority-venue.h"
#include "prox-export.h"

#include <glib-unix.h>
#include <libsoup/soup.h>
#include <locale.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define EXIT_OK 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2

#define UPLOAD_PATH "/v1/publish"
#define COUNT_PATH "/v1/venue-count"
#define HEALTH_PATH "/healthz"
#define BODY_KEY "prox-body"
/* Bounds the rate limiter's memory; an IPv6 client counts per /64. */
#define RATE_LIMIT_MAX_CLIENTS 100000
#define RATE_LIMIT_PRUNE_SECONDS 60
/* How long SIGTERM waits for uploads in flight and a running publish. */
#define DRAIN_TIMEOUT_SECONDS 10

typedef struct {
    GByteArray *data;
    size_t max; /* the endpoint's cap */
    gboolean too_large;
} RequestBody;

typedef struct {
    GMainLoop *loop;
    SoupServer *server;
    AuthorityClock clock;
    AuthorityIngest *ingest;
    AuthorityRateLimit *limit;       /* POST /v1/publish */
    AuthorityRateLimit *count_limit; /* POST /v1/venue-count: a bucket of its own */
    GInetAddress *trusted_proxy;
    char *port_file;
    guint inflight; /* uploads and counts handed to the writer and not yet answered */
    gboolean draining;
    int exit_status;

    /* scheduled publishing */
    char *db_path;
    char *publish_dir;
    AuthorityPublishOptions publish_options;
    ProxExportSigner *signer;
    gboolean publish_running;
} Server;

/* ---- Answers ---- */

static void respond_json(SoupServerMessage *msg, guint status, char *json)
{
    soup_server_message_set_status(msg, status, NULL);
    SoupMessageHeaders *headers = soup_server_message_get_response_headers(msg);
    soup_message_headers_replace(headers, "Cache-Control", "no-store");
    soup_server_message_set_response(msg, "application/json", SOUP_MEMORY_TAKE, json, strlen(json));
}

static void respond_reject(SoupServerMessage *msg, AuthorityRejectReason reason,
                           const char *message)
{
    g_info("%s %s: rejected (%s)", soup_server_message_get_method(msg),
           g_uri_get_path(soup_server_message_get_uri(msg)), authority_reject_name(reason));
    respond_json(msg, authority_reject_http_status(reason), authority_reject_json(reason, message));
}

static void respond_error(SoupServerMessage *msg, const GError *error)
{
    if (error->domain == AUTHORITY_REJECT)
        respond_reject(msg, (AuthorityRejectReason)error->code, error->message);
    else
        respond_reject(msg, AUTHORITY_REJECT_UNAVAILABLE, "the server cannot handle this now");
}

/* ---- Client addresses ---- */

/* The address to rate-limit: the peer, or X-Real-IP when the peer is our trusted proxy.
 * IPv6 addresses are cut to their /64, which one subscriber usually owns whole. */
static char *client_key(Server *srv, SoupServerMessage *msg)
{
    GSocketAddress *peer = soup_server_message_get_remote_address(msg);
    GInetAddress *address = G_IS_INET_SOCKET_ADDRESS(peer)
                                ? g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(peer))
                                : NULL;
    g_autoptr(GInetAddress) forwarded = NULL;
    if (address != NULL && srv->trusted_proxy != NULL &&
        g_inet_address_equal(address, srv->trusted_proxy)) {
        const char *real =
            soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "X-Real-IP");
        forwarded = real != NULL ? g_inet_address_new_from_string(real) : NULL;
        if (forwarded != NULL)
            address = forwarded;
    }
    if (address == NULL)
        return g_strdup("unknown");
    if (g_inet_address_get_family(address) == G_SOCKET_FAMILY_IPV6) {
        guint8 bytes[16];
        memcpy(bytes, g_inet_address_to_bytes(address), sizeof bytes);
        memset(bytes + 8, 0, 8);
        g_autoptr(GInetAddress) prefix = g_inet_address_new_from_bytes(bytes, G_SOCKET_FAMILY_IPV6);
        return g_inet_address_to_string(prefix);
    }
    return g_inet_address_to_string(address);
}

/* ---- Request bodies (both POST endpoints) ---- */

static void request_body_free(gpointer data)
{
    RequestBody *body = data;
    g_byte_array_unref(body->data);
    g_free(body);
}

/* Collects the body ourselves so that nothing past the cap is ever kept in memory. */
static void on_got_chunk(SoupServerMessage *msg, GBytes *chunk, gpointer data)
{
    RequestBody *body = data;
    gsize len = 0;
    const guint8 *bytes = g_bytes_get_data(chunk, &len);
    if (body->too_large || len > body->max - body->data->len) {
        body->too_large = TRUE;
        return;
    }
    g_byte_array_append(body->data, bytes, (guint)len);
}

static void respond_too_large(SoupServerMessage *msg, size_t max)
{
    /* The client may still send the body: it is read and dropped, then we hang up. */
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Connection",
                                 "close");
    g_autofree char *message = g_strdup_printf("body is larger than %zu bytes", max);
    respond_reject(msg, AUTHORITY_REJECT_BODY_TOO_LARGE, message);
}

/* After the headers, before the body: everything that can be refused without reading it,
 * for a POST to `expected` of at most max bytes of JSON, rate-limited by `limit`. */
static void post_early(Server *srv, SoupServerMessage *msg, const char *path, const char *expected,
                       AuthorityRateLimit *limit, size_t max)
{
    soup_message_body_set_accumulate(soup_server_message_get_request_body(msg), FALSE);
    SoupMessageHeaders *request = soup_server_message_get_request_headers(msg);
    SoupMessageHeaders *response = soup_server_message_get_response_headers(msg);
    if (strcmp(path, expected) != 0) {
        respond_reject(msg, AUTHORITY_REJECT_NOT_FOUND, "no such resource");
        return;
    }
    if (srv->draining) {
        soup_message_headers_replace(response, "Connection", "close");
        respond_reject(msg, AUTHORITY_REJECT_UNAVAILABLE, "the server is shutting down");
        return;
    }
    if (strcmp(soup_server_message_get_method(msg), SOUP_METHOD_POST) != 0) {
        soup_message_headers_replace(response, "Allow", "POST");
        respond_reject(msg, AUTHORITY_REJECT_METHOD_NOT_ALLOWED, "use POST");
        return;
    }
    g_autofree char *client = client_key(srv, msg);
    guint retry_after = 0;
    if (!authority_rate_limit_take(limit, client, g_get_monotonic_time(), &retry_after)) {
        g_autofree char *value = g_strdup_printf("%u", retry_after);
        soup_message_headers_replace(response, "Retry-After", value);
        respond_reject(msg, AUTHORITY_REJECT_RATE_LIMITED, "too many requests; retry later");
        return;
    }
    const char *type = soup_message_headers_get_content_type(request, NULL);
    if (type == NULL || g_ascii_strcasecmp(type, "application/json") != 0) {
        respond_reject(msg, AUTHORITY_REJECT_UNSUPPORTED_CONTENT_TYPE,
                       "Content-Type must be application/json");
        return;
    }
    if (soup_message_headers_get_encoding(request) == SOUP_ENCODING_CONTENT_LENGTH &&
        soup_message_headers_get_content_length(request) > (goffset)max) {
        respond_too_large(msg, max);
        return;
    }
    RequestBody *body = g_new0(RequestBody, 1);
    body->data = g_byte_array_new();
    body->max = max;
    g_object_set_data_full(G_OBJECT(msg), BODY_KEY, body, request_body_free);
    g_signal_connect(msg, "got-chunk", G_CALLBACK(on_got_chunk), body);
}

/* The body collected by post_early(), or NULL after answering. */
static RequestBody *post_body(SoupServerMessage *msg)
{
    RequestBody *body = g_object_get_data(G_OBJECT(msg), BODY_KEY);
    if (body == NULL) {
        respond_reject(msg, AUTHORITY_REJECT_UNAVAILABLE, "request body was not collected");
        return NULL;
    }
    if (body->too_large) {
        respond_too_large(msg, body->max);
        return NULL;
    }
    return body;
}

/* Lives until both the writer has stored the request and libsoup has finished the message
 * (answered it, or lost the connection), whichever comes last. */
typedef struct {
    Server *srv;
    SoupServerMessage *msg; /* our reference, until stored */
    gboolean stored;
    gboolean finished;
} PendingUpload;

static void on_upload_finished(SoupServerMessage *msg, gpointer data)
{
    PendingUpload *pending = data;
    g_signal_handlers_disconnect_by_data(msg, pending);
    pending->finished = TRUE;
    pending->srv->inflight--;
    if (pending->stored)
        g_free(pending);
}

/* Pauses msg until pending_answer(). */
static PendingUpload *pending_new(Server *srv, SoupServerMessage *msg)
{
    PendingUpload *pending = g_new0(PendingUpload, 1);
    pending->srv = srv;
    pending->msg = g_object_ref(msg);
    g_signal_connect(msg, "finished", G_CALLBACK(on_upload_finished), pending);
    srv->inflight++;
    soup_server_message_pause(msg);
    return pending;
}

/* The writer's outcome: the error's answer, or 200 with json (taken). */
static void pending_answer(PendingUpload *pending, const GError *error, char *json)
{
    SoupServerMessage *msg = pending->msg;
    pending->stored = TRUE;
    if (pending->finished) {
        g_free(json);
        g_free(pending);
        g_object_unref(msg);
        return;
    }
    if (error != NULL) {
        g_free(json);
        respond_error(msg, error);
    } else {
        respond_json(msg, SOUP_STATUS_OK, json);
    }
    /* May finish the message, and free pending, before returning. */
    soup_server_message_unpause(msg);
    g_object_unref(msg);
}

/* ---- POST /v1/publish ---- */

static void upload_early(SoupServer *soup, SoupServerMessage *msg, const char *path,
                         GHashTable *query, gpointer data)
{
    Server *srv = data;
    post_early(srv, msg, path, UPLOAD_PATH, srv->limit, AUTHORITY_UPLOAD_MAX_BODY);
}

static void upload_stored(guint inserted, guint checkins, const GError *error, gpointer data)
{
    if (error == NULL)
        g_info("upload stored: %u new keys, %u new check-ins", inserted, checkins);
    pending_answer(data, error,
                   g_strdup_printf("{\"inserted\":%u,\"checkins\":%u}", inserted, checkins));
}

static void upload_handler(SoupServer *soup, SoupServerMessage *msg, const char *path,
                           GHashTable *query, gpointer data)
{
    Server *srv = data;
    RequestBody *body = post_body(msg);
    if (body == NULL)
        return;
    g_autoptr(GError) error = NULL;
    gint64 now = authority_clock_now(&srv->clock);
    AuthorityUpload *upload =
        authority_upload_parse((const char *)body->data->data, body->data->len, now, TRUE, &error);
    if (upload == NULL) {
        respond_error(msg, error);
        return;
    }
    authority_ingest_submit(srv->ingest, upload, now, upload_stored, pending_new(srv, msg));
}

/* ---- POST /v1/venue-count ---- */

static void count_early(SoupServer *soup, SoupServerMessage *msg, const char *path,
                        GHashTable *query, gpointer data)
{
    Server *srv = data;
    post_early(srv, msg, path, COUNT_PATH, srv->count_limit, AUTHORITY_VENUE_COUNT_MAX_BODY);
}

static void count_stored(const GError *error, gpointer data)
{
    /* Never the location hash or the hour: a log must not say where someone was, when. */
    if (error == NULL)
        g_debug("venue count stored");
    pending_answer(data, error, g_strdup("{\"ok\":true}"));
}

static void count_handler(SoupServer *soup, SoupServerMessage *msg, const char *path,
                          GHashTable *query, gpointer data)
{
    Server *srv = data;
    RequestBody *body = post_body(msg);
    if (body == NULL)
        return;
    g_autoptr(GError) error = NULL;
    AuthorityVenueCount count;
    if (!authority_venue_count_parse((const char *)body->data->data, body->data->len,
                                     authority_clock_now(&srv->clock), &count, &error)) {
        respond_error(msg, error);
        return;
    }
    authority_ingest_submit_count(srv->ingest, &count, count_stored, pending_new(srv, msg));
}

/* ---- GET /healthz, everything else ---- */

static void health_handler(SoupServer *soup, SoupServerMessage *msg, const char *path,
                           GHashTable *query, gpointer data)
{
    if (strcmp(path, HEALTH_PATH) != 0) {
        respond_reject(msg, AUTHORITY_REJECT_NOT_FOUND, "no such resource");
        return;
    }
    const char *method = soup_server_message_get_method(msg);
    if (strcmp(method, SOUP_METHOD_GET) != 0 && strcmp(method, SOUP_METHOD_HEAD) != 0) {
        soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Allow",
                                     "GET, HEAD");
        respond_reject(msg, AUTHORITY_REJECT_METHOD_NOT_ALLOWED, "use GET");
        return;
    }
    respond_json(msg, SOUP_STATUS_OK, g_strdup("{\"status\":\"ok\"}"));
}

static void default_handler(SoupServer *soup, SoupServerMessage *msg, const char *path,
                            GHashTable *query, gpointer data)
{
    respond_reject(msg, AUTHORITY_REJECT_NOT_FOUND, "no such resource");
}

/* ---- Scheduled publishing ---- */

typedef struct {
    Server *srv;
    gboolean ok;
    AuthorityPublishResult result;
    GError *error;
} PublishJob;

static gboolean publish_done(gpointer data)
{
    PublishJob *job = data;
    if (job->ok)
        g_message("publish: %u keys and %u padding keys in %u files; %u files removed; "
                  "index %s",
                  job->result.real_keys, job->result.padding_keys, job->result.files_written,
                  job->result.files_removed, job->result.index_written ? "updated" : "unchanged");
    else
        g_warning("publish failed: %s", job->error->message);
    job->srv->publish_running = FALSE;
    g_clear_error(&job->error);
    g_free(job);
    return G_SOURCE_REMOVE;
}

/* Runs off the main loop so uploads are answered while files are signed and written. */
static gpointer publish_thread(gpointer data)
{
    PublishJob *job = data;
    Server *srv = job->srv;
    gint64 now = authority_clock_now(&srv->clock);
    g_autoptr(AuthorityDb) db = NULL;
    job->ok = (db = authority_db_open(srv->db_path, &job->error)) != NULL &&
              authority_publish(db, srv->publish_dir, &srv->publish_options, srv->signer, now,
                                &job->result, &job->error);
    g_clear_pointer(&db, authority_db_close);
    g_main_context_invoke(NULL, publish_done, job);
    return NULL;
}

static gboolean publish_tick(gpointer data)
{
    Server *srv = data;
    if (srv->draining)
        return G_SOURCE_REMOVE;
    if (srv->publish_running) {
        g_message("publish: previous run still busy; skipping this one");
        return G_SOURCE_CONTINUE;
    }
    PublishJob *job = g_new0(PublishJob, 1);
    job->srv = srv;
    srv->publish_running = TRUE;
    g_thread_unref(g_thread_new("publish", publish_thread, job));
    return G_SOURCE_CONTINUE;
}

/* The first run, as soon as the server is up. */
static gboolean publish_first(gpointer data)
{
    publish_tick(data);
    return G_SOURCE_REMOVE;
}

/* ---- Life cycle ---- */

static gboolean prune_tick(gpointer data)
{
    Server *srv = data;
    authority_rate_limit_prune(srv->limit, g_get_monotonic_time());
    authority_rate_limit_prune(srv->count_limit, g_get_monotonic_time());
    return G_SOURCE_CONTINUE;
}

static gboolean drain_check(gpointer data)
{
    Server *srv = data;
    if (srv->inflight == 0 && !srv->publish_running) {
        g_main_loop_quit(srv->loop);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static gboolean drain_timeout(gpointer data)
{
    Server *srv = data;
    g_warning("shutting down with %u uploads unanswered%s", srv->inflight,
              srv->publish_running ? " and a publish run in progress" : "");
    g_main_loop_quit(srv->loop);
    return G_SOURCE_REMOVE;
}

/* SIGTERM/SIGINT: refuse new uploads, finish the ones in flight, then stop. */
static gboolean on_signal(gpointer data)
{
    Server *srv = data;
    if (srv->draining)
        return G_SOURCE_CONTINUE;
    g_message("shutting down");
    srv->draining = TRUE;
    g_timeout_add(20, drain_check, srv);
    g_timeout_add_seconds(DRAIN_TIMEOUT_SECONDS, drain_timeout, srv);
    return G_SOURCE_CONTINUE;
}

/* "ADDR:PORT" with a numeric IPv4 address or a bracketed IPv6 one ("[::1]:8080"). */
static GSocketAddress *parse_listen(const char *text, GError **error)
{
    const char *colon = strrchr(text, ':');
    g_autofree char *host = NULL;
    if (colon != NULL && text[0] == '[' && colon > text && colon[-1] == ']')
        host = g_strndup(text + 1, (gsize)(colon - text - 2));
    else if (colon != NULL && strchr(text, ':') == colon)
        host = g_strndup(text, (gsize)(colon - text));
    guint64 port = 0;
    g_autoptr(GInetAddress) address = host != NULL ? g_inet_address_new_from_string(host) : NULL;
    if (address == NULL || !g_ascii_string_to_unsigned(colon + 1, 10, 0, 65535, &port, NULL)) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "--listen \"%s\" is not ADDRESS:PORT (127.0.0.1:8080, [::1]:8080)", text);
        return NULL;
    }
    return g_inet_socket_address_new(address, (guint16)port);
}

static guint16 bound_port(SoupServer *soup)
{
    GSList *listeners = soup_server_get_listeners(soup);
    guint16 port = 0;
    if (listeners != NULL) {
        g_autoptr(GSocketAddress) local = g_socket_get_local_address(listeners->data, NULL);
        if (local != NULL && G_IS_INET_SOCKET_ADDRESS(local))
            port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(local));
    }
    g_slist_free(listeners);
    return port;
}

static const char description[] =
    "prox-keyserver receives the keys of confirmed cases from their devices.\n"
    "\n"
    "HTTP API\n"
    "  POST /v1/publish   Content-Type: application/json, at most 65536 bytes:\n"
    "      {\"code\": \"XXXX-XXXX-XXXX\", \"temporaryExposureKeys\": [{\"key\": BASE64,\n"
    "       \"rollingStartNumber\": N, \"rollingPeriod\": 1..144, \"transmissionRisk\": 0..8}],\n"
    "       \"checkins\": [{\"locationId\": HEX64, \"start\": UNIX, \"end\": UNIX}]}\n"
    "    The code must exist, be unused and unexpired; 1 to 30 keys of 16 bytes, starting\n"
    "    within the last 14 days and not covering any interval after the current one, no key\n"
    "    twice. Keys get the report type and days since onset of the code's case. The\n"
    "    optional checkins (venue check-ins the person confirmed, docs/venues.md) are at\n"
    "    most 60, each start < end <= start + 24 h, not in the future, starting within the\n"
    "    last 14 days; publish turns each into a VENUE warning. Keys, check-ins and code use\n"
    "    are stored in one transaction. 200 {\"inserted\": N, \"checkins\": M} (new keys and\n"
    "    check-ins). Every refusal stores nothing and is a 4xx (503 when\n"
    "    storage fails) with {\"error\": MESSAGE, \"code\": REASON}, REASON one of\n"
    "    malformed_json, missing_code, missing_keys, no_keys, too_many_keys, bad_key,\n"
    "    bad_key_data, bad_rolling_start, bad_rolling_period, bad_transmission_risk,\n"
    "    bad_report_type, bad_days_since_onset, key_in_future, key_too_old, duplicate_key,\n"
    "    bad_checkins, too_many_checkins, bad_checkin, bad_location_id, bad_checkin_time,\n"
    "    checkin_in_future, checkin_too_old, duplicate_checkin,\n"
    "    invalid_code (403), code_expired (410), code_used (409), body_too_large (413),\n"
    "    unsupported_content_type (415), rate_limited (429, with Retry-After),\n"
    "    method_not_allowed (405), not_found (404), unavailable (503).\n"
    "  POST /v1/venue-count   Content-Type: application/json, at most 256 bytes:\n"
    "      {\"locationHash\": HEX64, \"hour\": UNIX}\n"
    "    An opt-in, anonymous check-in count ([Venues] ShareCounts on the device): hour is a\n"
    "    multiple of 3600, not after the current hour, at most 14 days before it; exactly\n"
    "    these two members. Adds one to the count of (locationHash, hour) and stores nothing\n"
    "    else (no address, no time of receipt). 200 {\"ok\": true}. Refusals as above, REASON\n"
    "    one of malformed_json, unknown_member, bad_location_hash, bad_hour, hour_in_future,\n"
    "    hour_too_old, body_too_large (413), unsupported_content_type (415), rate_limited\n"
    "    (429), method_not_allowed, not_found, unavailable.\n"
    "  GET /healthz       200 {\"status\": \"ok\"}\n"
    "\n"
    "Each client address (IPv6: its /64) gets --burst requests to /v1/publish at once and\n"
    "--rate more a second; /v1/venue-count has buckets of its own (--count-burst,\n"
    "--count-rate; by default the same numbers), so counts never use up a client's uploads.\n"
    "Behind a reverse proxy, pass its address as --trusted-proxy so that its X-Real-IP\n"
    "header names the client.\n"
    "\n"
    "With --publish-dir, publishes signed key lists at start and every --publish-interval\n"
    "seconds, exactly like 'prox-authority publish' (which may also run meanwhile).\n"
    "\n"
    "Time is the wall clock, or a simulated world's when PROX_SIM_CLOCK is set\n"
    "(\"<real_unix_start>:<sim_unix_start>:<speed>\", as for proxd), or fixed with --now.\n"
    "\n"
    "SIGTERM or SIGINT: stop taking uploads, answer those in flight, wait for a publish run,\n"
    "exit 0. Exit status 1 when the server cannot start, 2 for bad arguments.\n";

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    if (sodium_init() < 0) {
        fprintf(stderr, "prox-keyserver: libsodium failed to initialise\n");
        return EXIT_FAILED;
    }
    g_autofree char *db_path = NULL;
    g_autofree char *listen = NULL;
    g_autofree char *port_file = NULL;
    g_autofree char *trusted_proxy = NULL;
    g_autofree char *publish_dir = NULL;
    g_autofree char *signing_key = NULL;
    g_autofree char *now_option = NULL;
    double rate = 1.0;
    gint burst = 10;
    /* -1: as --rate / --burst */
    double count_rate = -1;
    gint count_burst = -1;
    gint publish_interval = 3600;
    gboolean version = FALSE;
    Server srv = {0};
    authority_publish_options_init(&srv.publish_options);
    const GOptionEntry entries[] = {
        {"db", 0, 0, G_OPTION_ARG_FILENAME, &db_path, "The authority database (required)", "DB"},
        {"listen", 0, 0, G_OPTION_ARG_STRING, &listen,
         "Address and port to listen on; port 0 picks a free one (default 127.0.0.1:8080)",
         "ADDR:PORT"},
        {"port-file", 0, 0, G_OPTION_ARG_FILENAME, &port_file,
         "Write the port listened on to FILE once ready (atomically; removed at exit)", "FILE"},
        {"rate", 0, 0, G_OPTION_ARG_DOUBLE, &rate,
         "Uploads a second each client may make over time; 0 disables (default 1)", "R"},
        {"burst", 0, 0, G_OPTION_ARG_INT, &burst, "Uploads a client may make at once (default 10)",
         "N"},
        {"count-rate", 0, 0, G_OPTION_ARG_DOUBLE, &count_rate,
         "Venue counts a second each client may send over time; 0 disables (default: --rate)", "R"},
        {"count-burst", 0, 0, G_OPTION_ARG_INT, &count_burst,
         "Venue counts a client may send at once (default: --burst)", "N"},
        {"trusted-proxy", 0, 0, G_OPTION_ARG_STRING, &trusted_proxy,
         "Take the client address from X-Real-IP when the peer is ADDR", "ADDR"},
        {"publish-dir", 0, 0, G_OPTION_ARG_FILENAME, &publish_dir,
         "Publish key lists into DIR on a schedule", "DIR"},
        {"publish-interval", 0, 0, G_OPTION_ARG_INT, &publish_interval,
         "Seconds between publish runs (default 3600)", "SECONDS"},
        {"signing-key", 0, 0, G_OPTION_ARG_FILENAME, &signing_key,
         "Signing key (.sec from prox-authority init-key), with --publish-dir", "SECKEY"},
        {"now", 0, 0, G_OPTION_ARG_STRING, &now_option,
         "Take this as the current time, always (tests): @UNIXSECONDS or ISO 8601", "TIME"},
        {"version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL},
        {NULL},
    };
    g_autoptr(GOptionContext) context = g_option_context_new(NULL);
    g_option_context_set_summary(context, "Key upload server of the health authority.");
    g_option_context_set_description(context, description);
    g_option_context_add_main_entries(context, entries, NULL);
    g_autofree GOptionEntry *publish_entries =
        authority_publish_option_entries(&srv.publish_options);
    GOptionGroup *group = g_option_group_new("publish", "Options of scheduled publishing",
                                             "Show publish options", NULL, NULL);
    g_option_group_add_entries(group, publish_entries);
    g_option_context_add_group(context, group);

    g_autoptr(GError) error = NULL;
    const char *bad = NULL;
    g_autofree char *bad_owned = NULL;
    g_autoptr(GSocketAddress) address = NULL;
    if (!g_option_context_parse(context, &argc, &argv, &error)) {
        bad = error->message;
    } else if (version) {
        printf("prox-keyserver %s\n", PROXD_VERSION);
        return EXIT_OK;
    } else if (argc != 1) {
        bad = bad_owned = g_strdup_printf("unexpected argument '%s'", argv[1]);
    } else if (db_path == NULL) {
        bad = "--db is required";
    } else if (rate < 0 || burst < 1) {
        bad = "--rate must be >= 0 and --burst >= 1";
    } else if ((count_rate < 0 && count_rate != -1) || (count_burst < 1 && count_burst != -1)) {
        bad = "--count-rate must be >= 0 and --count-burst >= 1";
    } else if ((publish_dir == NULL) != (signing_key == NULL)) {
        bad = "--publish-dir and --signing-key go together";
    } else if (publish_interval < 1) {
        bad = "--publish-interval must be at least 1 second";
    } else if (!authority_publish_options_check(&srv.publish_options, &error) ||
               !authority_clock_init(&srv.clock, now_option, &error) ||
               (address = parse_listen(listen != NULL ? listen : "127.0.0.1:8080", &error)) ==
                   NULL) {
        bad = error->message;
    } else if (trusted_proxy != NULL &&
               (srv.trusted_proxy = g_inet_address_new_from_string(trusted_proxy)) == NULL) {
        bad = "--trusted-proxy is not an IP address";
    }
    if (bad != NULL) {
        fprintf(stderr, "prox-keyserver: %s (try 'prox-keyserver --help')\n", bad);
        authority_publish_options_clear(&srv.publish_options);
        return EXIT_USAGE;
    }

    srv.exit_status = EXIT_FAILED;
    srv.db_path = db_path;
    srv.publish_dir = publish_dir;
    srv.port_file = port_file;
    srv.loop = g_main_loop_new(NULL, FALSE);
    srv.limit = authority_rate_limit_new(rate, burst, RATE_LIMIT_MAX_CLIENTS);
    srv.count_limit =
        authority_rate_limit_new(count_rate >= 0 ? count_rate : rate,
                                 count_burst >= 1 ? count_burst : burst, RATE_LIMIT_MAX_CLIENTS);
    if (signing_key != NULL &&
        (srv.signer = prox_export_signer_load_file(signing_key, NULL, NULL, &error)) == NULL)
        goto out;
    /* Opens (creating or migrating) the database once before taking any request. */
    srv.ingest = authority_ingest_new(db_path, g_main_context_default(), &error);
    if (srv.ingest == NULL)
        goto out;
    srv.server = soup_server_new("server-header", NULL, NULL);
    soup_server_add_early_handler(srv.server, UPLOAD_PATH, upload_early, &srv, NULL);
    soup_server_add_handler(srv.server, UPLOAD_PATH, upload_handler, &srv, NULL);
    soup_server_add_early_handler(srv.server, COUNT_PATH, count_early, &srv, NULL);
    soup_server_add_handler(srv.server, COUNT_PATH, count_handler, &srv, NULL);
    soup_server_add_handler(srv.server, HEALTH_PATH, health_handler, &srv, NULL);
    soup_server_add_handler(srv.server, NULL, default_handler, &srv, NULL);
    if (!soup_server_listen(srv.server, address, 0, &error))
        goto out;
    guint16 port = bound_port(srv.server);
    if (port_file != NULL) {
        g_autofree char *text = g_strdup_printf("%u\n", port);
        if (!authority_write_file_atomic(port_file, text, strlen(text), 0644, &error))
            goto out;
    }
    char *where =
        g_inet_address_to_string(g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(address)));
    g_message("listening on %s port %u", where, port);
    g_free(where);

    g_unix_signal_add(SIGTERM, on_signal, &srv);
    g_unix_signal_add(SIGINT, on_signal, &srv);
    g_timeout_add_seconds(RATE_LIMIT_PRUNE_SECONDS, prune_tick, &srv);
    if (publish_dir != NULL) {
        g_idle_add(publish_first, &srv);
        g_timeout_add_seconds((guint)publish_interval, publish_tick, &srv);
    }
    g_main_loop_run(srv.loop);
    srv.exit_status = EXIT_OK;

out:
    if (error != NULL)
        fprintf(stderr, "prox-keyserver: %s\n", error->message);
    if (srv.publish_running) {
        /* Timed out waiting for it: the run holds the lock, and an interrupted run leaves
         * nothing the next one does not repair; exiting is safe, freeing what it uses not. */
        if (port_file != NULL)
            unlink(port_file);
        return srv.exit_status;
    }
    if (srv.server != NULL) {
        soup_server_disconnect(srv.server);
        g_object_unref(srv.server);
    }
    authority_ingest_free(srv.ingest);
    /* Answers of the last stored uploads have nowhere to go now; free them. */
    while (g_main_context_iteration(NULL, FALSE))
        ;
    if (port_file != NULL && srv.exit_status == EXIT_OK)
        unlink(port_file);
    g_clear_pointer(&srv.signer, prox_export_signer_free);
    g_clear_object(&srv.trusted_proxy);
    authority_rate_limit_free(srv.limit);
    authority_rate_limit_free(srv.count_limit);
    authority_publish_options_clear(&srv.publish_options);
    g_main_loop_unref(srv.loop);
    return srv.exit_status;
}
