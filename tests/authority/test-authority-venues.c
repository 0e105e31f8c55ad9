/* test-authority-venues.c - buses and venues on the authority's side (docs/venues.md §6), as
 * processes: `prox-authority venue register/list` (a URL that parses and verifies with the
 * authority's key, a PNG and an SVG that decode, forged payloads refused), `warning import`
 * (every validation rule), `publish` signing warnings into the lists (read back with
 * prox_export_read), and `prox-tool beacon trip-log/trace` on a beacon store built here with
 * libprox: a beacon with its own TEK that heard an F0's RPIs on two rides. */
#include "authority-test-util.h"
#include "prox-export.h"
#include "prox-hex.h"
#include "prox-keys.h"
#include "prox-risk.h"
#include "prox-store.h"
#include "prox-venue.h"

#include <json-glib/json-glib.h>
#include <sodium.h>
#include <string.h>

/* 2020-05-20T00:00:00Z, the day of TEST_NOW (18:40 UTC). */
#define DAY0 1589932800
#define HOUR 3600

typedef TestAuthorityFixture Fixture;

static guint count_lines(const char *s)
{
    guint n = 0;
    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

static char *read_text(const char *dir, const char *name)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    char *text = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(g_file_get_contents(path, &text, NULL, &error));
    return text;
}

/* ---- venue register ---- */

static guint32 be32(const guint8 *p)
{
    return (guint32)p[0] << 24 | (guint32)p[1] << 16 | (guint32)p[2] << 8 | p[3];
}

typedef struct {
    GString *text;
    gboolean saw_svg_root;
    guint paths;
} SvgScan;

static void svg_start(GMarkupParseContext *context, const char *element, const char **names,
                      const char **values, gpointer data, GError **error)
{
    SvgScan *scan = data;
    if (strcmp(element, "svg") == 0 &&
        g_markup_parse_context_get_element_stack(context)->next == NULL)
        scan->saw_svg_root = TRUE;
    if (strcmp(element, "path") == 0)
        scan->paths++;
}

static void svg_text(GMarkupParseContext *context, const char *text, gsize len, gpointer data,
                     GError **error)
{
    g_string_append_len(((SvgScan *)data)->text, text, (gssize)len);
}

static char *register_venue(Fixture *f, const char *dir, const char *name, const char *address,
                            char **out)
{
    g_autofree char *path = g_build_filename(f->dir, dir, NULL);
    g_autofree char *err = NULL;
    int status = test_authority(out, &err, "venue", "register", "--db", f->db, "--key", f->sec,
                                "--name", name, "--address", address, "--type", "restaurant",
                                "--stay", "90", "--out", path, "--now", TEST_NOW_ARG, NULL);
    if (status != 0)
        g_error("venue register failed: %s", err);
    return g_steal_pointer(&path);
}

static void test_venue_register(Fixture *f, gconstpointer data)
{
    const char *name = "Phở Hòa & <Sons>";
    const char *address = "12 Lý Thường Kiệt, Hà Nội";
    g_autofree char *out = NULL;
    g_autofree char *dir = register_venue(f, "poster", name, address, &out);
    g_test_message("%s", out);
    g_assert_nonnull(strstr(out, "venue 1 registered"));
    g_assert_nonnull(strstr(out, "QR code: version "));
    g_assert_nonnull(strstr(out, "printed 15 cm wide, a module is "));

    /* url.txt: one line that parses and verifies with the authority's public key. */
    g_autofree char *url_line = read_text(dir, "url.txt");
    g_assert_true(g_str_has_suffix(url_line, "\n"));
    g_assert_cmpuint(count_lines(url_line), ==, 1);
    g_autofree char *url = g_strndup(url_line, strlen(url_line) - 1);
    g_assert_true(g_str_has_prefix(url, PROX_VENUE_URL_PREFIX));
    g_assert_cmpuint(strlen(url), <=, PROX_VENUE_URL_MAX);
    g_autoptr(ProxVenue) venue = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(prox_venue_parse_url(url, f->keyring, &venue, &error));
    g_assert_no_error(error);
    g_assert_true(venue->verified);
    g_assert_cmpstr(venue->name, ==, name);
    g_assert_cmpstr(venue->address, ==, address);
    g_assert_cmpint(venue->type, ==, PROX_VENUE_TYPE_RESTAURANT);
    g_assert_cmpuint(venue->default_stay_minutes, ==, 90);
    g_assert_cmpstr(venue->key_id, ==, "310");
    g_assert_cmpstr(venue->key_version, ==, "v1");

    /* The database knows the venue by its location id. */
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM venues"), ==, 1);
    g_autofree char *hex = prox_hex_dup(venue->location_id, PROX_LOCATION_ID_LEN);
    g_autofree char *sql = g_strdup_printf(
        "SELECT count(*) FROM venues WHERE hex(location_id) = upper('%s') AND type = 6 AND "
        "stay_minutes = 90 AND created_at = %d",
        hex, TEST_NOW);
    g_assert_cmpint(test_db_int(f->db, sql), ==, 1);

    /* The PNG: signature, IHDR of a square of at least 1000 pixels, 1-bit grayscale. */
    g_autofree char *png_path = g_build_filename(dir, "poster.png", NULL);
    g_autofree char *png = NULL;
    gsize png_len = 0;
    g_assert_true(g_file_get_contents(png_path, &png, &png_len, NULL));
    g_assert_cmpuint(png_len, >, 33);
    g_assert_cmpmem(png, 8, "\x89PNG\r\n\x1a\n", 8);
    const guint8 *ihdr = (const guint8 *)png + 8;
    g_assert_cmpuint(be32(ihdr), ==, 13);
    g_assert_cmpmem(ihdr + 4, 4, "IHDR", 4);
    guint32 width = be32(ihdr + 8);
    guint32 height = be32(ihdr + 12);
    g_assert_cmpuint(width, ==, height);
    g_assert_cmpuint(width, >=, 1000);
    g_assert_cmpuint(ihdr[16], ==, 1); /* bit depth */
    g_assert_cmpuint(ihdr[17], ==, 0); /* grayscale */
    g_autofree char *size = g_strdup_printf("(%ux%u px)", width, height);
    g_assert_nonnull(strstr(out, size));
    /* The module count printed matches a QR version: 17 + 4 * version. */
    int version = 0;
    int modules = 0;
    const char *qr = strstr(out, "QR code: version ");
    g_assert_cmpint(sscanf(qr, "QR code: version %d, %dx", &version, &modules), ==, 2);
    g_assert_cmpint(modules, ==, 17 + 4 * version);
    g_assert_cmpuint(width % (guint)(modules + 8), ==, 0); /* 4-module quiet zone each side */

    /* The SVG: well-formed, the name and address as text, the code as a path. */
    g_autofree char *svg = read_text(dir, "poster.svg");
    SvgScan scan = {.text = g_string_new(NULL)};
    GMarkupParser parser = {.start_element = svg_start, .text = svg_text};
    GMarkupParseContext *context = g_markup_parse_context_new(&parser, 0, &scan, NULL);
    g_assert_true(g_markup_parse_context_parse(context, svg, -1, &error));
    g_assert_true(g_markup_parse_context_end_parse(context, &error));
    g_assert_no_error(error);
    g_markup_parse_context_free(context);
    g_assert_true(scan.saw_svg_root);
    g_assert_cmpuint(scan.paths, ==, 1);
    g_assert_nonnull(strstr(scan.text->str, name));
    g_assert_nonnull(strstr(scan.text->str, address));
    g_string_free(scan.text, TRUE);

    /* Files are mode 0644 and nothing temporary is left. */
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    guint files = 0;
    for (const char *n; (n = g_dir_read_name(d)) != NULL;)
        files++;
    g_assert_cmpuint(files, ==, 3);

    /* A second venue: a different seed, so a different location id. */
    g_autofree char *dir2 = register_venue(f, "poster2", name, address, NULL);
    g_autofree char *url2 = read_text(dir2, "url.txt");
    g_assert_cmpstr(url2, !=, url_line);
    g_autofree char *list = NULL;
    g_assert_cmpint(test_authority(&list, NULL, "venue", "list", "--db", f->db, NULL), ==, 0);
    g_assert_true(g_str_has_prefix(list, "2 venues\n"));
    g_assert_cmpuint(count_lines(list), ==, 3);
    g_autofree char *prefix = g_strndup(hex, 8);
    g_assert_nonnull(strstr(list, prefix));
    g_autofree char *status = NULL;
    g_assert_cmpint(test_authority(&status, NULL, "status", "--db", f->db, NULL), ==, 0);
    g_assert_nonnull(strstr(status, "\nvenues 2\n"));
}

static void test_venue_refusals(Fixture *f, gconstpointer data)
{
    g_autofree char *dir = g_build_filename(f->dir, "poster", NULL);
    const char *const bad[][16] = {
        {"venue", "register", "--db", f->db, "--key", f->sec, "--name", "A", "--type", "shop",
         "--stay", "4", "--out", dir, NULL},
        {"venue", "register", "--db", f->db, "--key", f->sec, "--name", "A", "--type", "bar",
         "--stay", "60", "--out", dir, NULL},
        {"venue", "register", "--db", f->db, "--key", f->sec, "--name", "", "--type", "shop",
         "--stay", "60", "--out", dir, NULL},
        {"venue", "register", "--db", f->db, "--key", f->sec, "--name",
         "0123456789012345678901234567890123456789012345678901234567890123456789", "--type", "shop",
         "--stay", "60", "--out", dir, NULL},
        {"venue", "register", "--db", f->db, "--name", "A", "--type", "shop", "--stay", "60",
         "--out", dir, NULL},
        {"venue", "register", "--db", f->db, "--key", f->sec, "--name", "A", "--type", "shop",
         "--stay", "60", "--out", dir, "extra", NULL},
        {"venue", NULL},
        {"venue", "frobnicate", NULL},
        {"venue", "list", NULL},
        {"warning", NULL},
        {"warning", "import", "--db", f->db, NULL},
        {"warning", "import", "--db", f->db, "--now", "soon", "x.json", NULL},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        g_ptr_array_add(argv, (gpointer)g_getenv("PROX_AUTHORITY"));
        for (size_t j = 0; bad[i][j] != NULL; j++)
            g_ptr_array_add(argv, (gpointer)bad[i][j]);
        g_ptr_array_add(argv, NULL);
        g_autofree char *err = NULL;
        g_assert_cmpint(test_run((const char *const *)argv->pdata, NULL, &err), ==, 2);
        g_assert_true(g_str_has_prefix(err, "prox-authority"));
        g_assert_cmpuint(count_lines(err), ==, 1);
    }
    g_assert_false(g_file_test(dir, G_FILE_TEST_EXISTS));

    /* A directory that already holds a poster: refused, nothing recorded, files untouched. */
    g_autofree char *first = register_venue(f, "poster", "One", "", NULL);
    g_autofree char *url_before = read_text(first, "url.txt");
    g_autofree char *err = NULL;
    g_assert_cmpint(test_authority(NULL, &err, "venue", "register", "--db", f->db, "--key", f->sec,
                                   "--name", "Two", "--type", "shop", "--stay", "60", "--out",
                                   first, NULL),
                    ==, 1);
    g_assert_nonnull(strstr(err, "already exists"));
    g_autofree char *url_after = read_text(first, "url.txt");
    g_assert_cmpstr(url_before, ==, url_after);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM venues"), ==, 1);
    /* --force replaces it. */
    g_assert_cmpint(test_authority(NULL, NULL, "venue", "register", "--db", f->db, "--key", f->sec,
                                   "--name", "Two", "--type", "shop", "--stay", "60", "--out",
                                   first, "--force", NULL),
                    ==, 0);
    g_autofree char *url_forced = read_text(first, "url.txt");
    g_assert_cmpstr(url_before, !=, url_forced);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM venues"), ==, 2);

    /* Help on every new command. */
    const char *const help[][3] = {
        {"venue", "--help", NULL},   {"venue", "register", "--help"}, {"venue", "list", "--help"},
        {"warning", "--help", NULL}, {"warning", "import", "--help"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(help); i++) {
        g_autofree char *text = NULL;
        const char *argv[] = {g_getenv("PROX_AUTHORITY"), help[i][0], help[i][1], help[i][2], NULL};
        g_assert_cmpint(test_run(argv, &text, NULL), ==, 0);
        g_assert_nonnull(strstr(text, "Usage:"));
        g_assert_nonnull(strstr(text, "Exit status"));
    }
}

/* base64url without padding <-> bytes */
static guint8 *b64url_decode(const char *text, gsize *len)
{
    g_autofree char *b64 = g_strdup(text);
    g_strdelimit(b64, "-", '+');
    g_strdelimit(b64, "_", '/');
    g_autofree char *padded = g_strnfill((4 - strlen(b64) % 4) % 4, '=');
    g_autofree char *full = g_strconcat(b64, padded, NULL);
    return g_base64_decode(full, len);
}

static char *b64url_encode(const guint8 *data, gsize len)
{
    char *b64 = g_base64_encode(data, len);
    g_strdelimit(b64, "+", '-');
    g_strdelimit(b64, "/", '_');
    char *eq = strchr(b64, '=');
    if (eq != NULL)
        *eq = '\0';
    return b64;
}

static void test_venue_forged(Fixture *f, gconstpointer data)
{
    g_autofree char *dir = register_venue(f, "poster", "Bakery", "3 Main St", NULL);
    g_autofree char *line = read_text(dir, "url.txt");
    g_autofree char *url = g_strndup(line, strlen(line) - 1);
    gsize len = 0;
    g_autofree guint8 *payload = b64url_decode(url + strlen(PROX_VENUE_URL_PREFIX), &len);
    g_assert_cmpuint(len, >, 64);

    /* Any byte changed: the signature no longer verifies (or the payload no longer parses, or
     * names a version that does not exist). */
    for (gsize i = 0; i < len; i++) {
        g_autofree guint8 *forged = g_memdup2(payload, len);
        forged[i] ^= 0x01;
        g_autofree char *b64 = b64url_encode(forged, len);
        g_autofree char *forged_url = g_strconcat(PROX_VENUE_URL_PREFIX, b64, NULL);
        g_autoptr(ProxVenue) venue = NULL;
        g_autoptr(GError) error = NULL;
        g_assert_false(prox_venue_parse_url(forged_url, f->keyring, &venue, &error));
        g_assert_null(venue);
        g_test_message("byte %zu: %s (%d)", i, error->message, error->code);
        g_assert_true(g_error_matches(error, PROX_ERROR, PROX_ERROR_SIGNATURE) ||
                      g_error_matches(error, PROX_ERROR, PROX_ERROR_MALFORMED) ||
                      g_error_matches(error, PROX_ERROR, PROX_ERROR_UNSUPPORTED));
        /* The last byte is the signature's: that one must fail as a signature. */
        if (i == len - 1)
            g_assert_error(error, PROX_ERROR, PROX_ERROR_SIGNATURE);
    }

    /* A genuine payload of another authority (a key not pinned): refused too. */
    g_autofree char *other_keys = g_build_filename(f->dir, "other", NULL);
    g_assert_cmpint(test_authority(NULL, NULL, "init-key", "--key-id", "999", "--key-version", "v1",
                                   "--dir", other_keys, NULL),
                    ==, 0);
    g_autofree char *other_sec = g_build_filename(other_keys, "999-v1.sec", NULL);
    g_autofree char *other_dir = g_build_filename(f->dir, "other-poster", NULL);
    g_autofree char *other_db = g_build_filename(f->dir, "other.db", NULL);
    g_assert_cmpint(test_authority(NULL, NULL, "venue", "register", "--db", other_db, "--key",
                                   other_sec, "--name", "Fake", "--type", "shop", "--stay", "30",
                                   "--out", other_dir, NULL),
                    ==, 0);
    g_autofree char *other_line = read_text(other_dir, "url.txt");
    g_autofree char *other_url = g_strndup(other_line, strlen(other_line) - 1);
    g_autoptr(ProxVenue) venue = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_false(prox_venue_parse_url(other_url, f->keyring, &venue, &error));
    g_assert_error(error, PROX_ERROR, PROX_ERROR_SIGNATURE);
    /* It is a well-formed payload: inspection without a keyring reads it, unverified. */
    g_clear_error(&error);
    g_assert_true(prox_venue_parse_url(other_url, NULL, &venue, &error));
    g_assert_false(venue->verified);
}

/* ---- warning import ---- */

static int import_warnings(Fixture *f, const char *json, const char *now, char **out, char **err)
{
    g_autofree char *path = g_build_filename(f->dir, "warnings.json", NULL);
    g_assert_true(g_file_set_contents(path, json, -1, NULL));
    return test_authority(out, err, "warning", "import", "--db", f->db, "--now",
                          now != NULL ? now : TEST_NOW_ARG, path, NULL);
}

/* The beacon TEK of 2020-05-20 in the examples. */
#define TEK_B64 "\"AAECAwQFBgcICQoLDA0ODw==\""
#define TEK_RS "2649888"
#define VEHICLE(start, end, extra)                                                                 \
    "{\"kind\":\"same-vehicle\",\"beaconKey\":" TEK_B64 ",\"rollingStartIntervalNumber\":" TEK_RS  \
    ",\"rollingPeriod\":144,\"start\":" #start ",\"end\":" #end ",\"transmissionRisk\":5" extra    \
    "}"
#define HASH_A "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""
#define VENUE(start, end)                                                                          \
    "{\"kind\":\"venue\",\"locationHash\":" HASH_A ",\"start\":" #start ",\"end\":" #end           \
    ",\"transmissionRisk\":7}"

static void test_warning_import_validation(Fixture *f, gconstpointer data)
{
    /* DAY0 + 8 h = 1589961600 */
    static const struct {
        const char *json;
        const char *needle;
    } bad[] = {
        {"{\"warnings\":[", "not valid JSON"},
        {"[]", "not a JSON object"},
        {"{}", "\"warnings\" is missing"},
        {"{\"warnings\":[]}", "expected 1..10000"},
        {"{\"warnings\":[" VEHICLE(1589961600, 1589963400, "") "],\"extra\":1}",
         "unknown top-level field \"extra\""},
        {"{\"warnings\":[1]}", "warning 0: not a JSON object"},
        {"{\"warnings\":[{\"kind\":\"bus\"}]}", "warning 0: kind \"bus\""},
        {"{\"warnings\":[{\"start\":1}]}", "warning 0: kind is missing"},
        {"{\"warnings\":[" VEHICLE(1589961600, 1589963400, ",\"colour\":\"red\"") "]}",
         "warning 0: unknown field \"colour\""},
        {"{\"warnings\":[" VENUE(1589961600, 1589963400) "," VEHICLE(
             1589961600, 1589963400, ",\"locationHash\":" HASH_A) "]}",
         "warning 1: unknown field \"locationHash\" for kind same-vehicle"},
        {"{\"warnings\":[{\"kind\":\"same-vehicle\",\"beaconKey\":\"AAEC\","
         "\"rollingStartIntervalNumber\":" TEK_RS ",\"start\":1589961600,\"end\":1589963400,"
         "\"transmissionRisk\":5}]}",
         "warning 0: beaconKey is missing or not the base64 of 16 bytes"},
        {"{\"warnings\":[{\"kind\":\"same-vehicle\",\"beaconKey\":" TEK_B64
         ",\"start\":1589961600,\"end\":1589963400,\"transmissionRisk\":5}]}",
         "warning 0: rollingStartIntervalNumber is missing"},
        {"{\"warnings\":[{\"kind\":\"same-vehicle\",\"beaconKey\":" TEK_B64
         ",\"rollingStartIntervalNumber\":" TEK_RS ",\"rollingPeriod\":145,\"start\":1589961600,"
         "\"end\":1589963400,\"transmissionRisk\":5}]}",
         "warning 0: rollingPeriod 145 outside 1..144"},
        {"{\"warnings\":[{\"kind\":\"same-vehicle\",\"beaconKey\":" TEK_B64
         ",\"rollingStartIntervalNumber\":" TEK_RS ",\"start\":\"1589961600\","
         "\"end\":1589963400,\"transmissionRisk\":5}]}",
         "warning 0: start is not an integer"},
        {"{\"warnings\":[{\"kind\":\"venue\",\"locationHash\":" HASH_A
         ",\"start\":1589961600,\"end\":1589963400,\"transmissionRisk\":9}]}",
         "warning 0: transmissionRisk 9 outside 1..8"},
        {"{\"warnings\":[{\"kind\":\"venue\",\"locationHash\":" HASH_A
         ",\"start\":1589961600,\"end\":1589963400}]}",
         "warning 0: transmissionRisk is missing"},
        {"{\"warnings\":[{\"kind\":\"venue\",\"locationHash\":\"abc\",\"start\":1589961600,"
         "\"end\":1589963400,\"transmissionRisk\":7}]}",
         "warning 0: locationHash is not 64 hex digits"},
        {"{\"warnings\":[{\"kind\":\"venue\",\"locationId\":" HASH_A ",\"locationHash\":" HASH_A
         ",\"start\":1589961600,\"end\":1589963400,\"transmissionRisk\":7}]}",
         "warning 0: give exactly one of locationId and locationHash"},
        {"{\"warnings\":[" VENUE(1589963400, 1589961600) "]}", "warning 0"},
        {"{\"warnings\":[" VENUE(1589961600, 1590048001) "]}", "warning 0"},
        /* a window outside the beacon TEK's day */
        {"{\"warnings\":[" VEHICLE(1590055200, 1590057000, "") "]}", "warning 0"},
        {"{\"warnings\":[" VENUE(1589999000, 1590000060) "]}", "warning 0: ends in the future"},
        {"{\"warnings\":[" VENUE(1588700000, 1588701000) "]}",
         "warning 0: ended more than 14 days ago"},
        {"{\"warnings\":[" VENUE(1589961600, 1589963400) "," VEHICLE(
             1589961600, 1589963400, "") "," VENUE(1589961600, 1589963400) "]}",
         "warnings 0 and 2 are the same"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *err = NULL;
        g_test_message("case %zu: %s", i, bad[i].json);
        g_assert_cmpint(import_warnings(f, bad[i].json, NULL, NULL, &err), ==, 1);
        if (strstr(err, bad[i].needle) == NULL)
            g_error("case %zu: \"%s\" does not mention \"%s\"", i, err, bad[i].needle);
        g_assert_cmpuint(count_lines(err), ==, 1);
    }
    /* A file is checked before the database is even opened. */
    g_assert_false(g_file_test(f->db, G_FILE_TEST_EXISTS));

    /* Valid: both kinds, a locationId (stored as its hash); again: nothing new. */
    const char *good = "{\"warnings\":[" VEHICLE(1589961600, 1589963400, "") "," VENUE(
        1589961600,
        1589963400) ",{\"kind\":\"venue\",\"locationId\":" HASH_A
                    ",\"start\":1589961600,\"end\":1589963400,\"transmissionRisk\":3}]}";
    g_autofree char *out = NULL;
    g_assert_cmpint(import_warnings(f, good, NULL, &out, NULL), ==, 0);
    g_assert_nonnull(strstr(out, "imported 3 warnings (0 already stored)"));
    g_free(out);
    g_assert_cmpint(import_warnings(f, good, NULL, &out, NULL), ==, 0);
    g_assert_nonnull(strstr(out, "imported 0 warnings (3 already stored)"));
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM venue_warnings"), ==, 3);
    uint8_t id[PROX_LOCATION_ID_LEN];
    uint8_t hash[PROX_LOCATION_HASH_LEN];
    memset(id, 0xaa, sizeof id);
    prox_venue_location_hash(id, hash);
    g_autofree char *hash_hex = prox_hex_dup(hash, sizeof hash);
    g_autofree char *sql = g_strdup_printf(
        "SELECT count(*) FROM venue_warnings WHERE kind = 2 AND hex(subject) = upper('%s') "
        "AND transmission_risk = 3",
        hash_hex);
    g_assert_cmpint(test_db_int(f->db, sql), ==, 1);
}

/* ---- publish ---- */

static int publish(Fixture *f, gint64 now, char **out)
{
    g_autofree char *now_arg = g_strdup_printf("@%" G_GINT64_FORMAT, now);
    g_autofree char *err = NULL;
    int status =
        test_authority(out, &err, "publish", "--db", f->db, "--key", f->sec, "--out", f->out,
                       "--now", now_arg, "--min-keys", "20", "--padding-jitter", "0", NULL);
    if (status != 0)
        g_test_message("publish: %s", err);
    return status;
}

/* The files of the index, read and verified. */
static GPtrArray *read_index(Fixture *f)
{
    g_autofree char *index = read_text(f->out, "index.txt");
    g_auto(GStrv) names = g_strsplit(g_strstrip(index), "\n", -1);
    GPtrArray *exports = g_ptr_array_new_with_free_func((GDestroyNotify)prox_export_free);
    for (guint i = 0; names[i] != NULL && names[i][0] != '\0'; i++) {
        g_autofree char *zip = g_build_filename(f->out, names[i], NULL);
        ProxExport *export = NULL;
        g_autoptr(GError) error = NULL;
        g_assert_true(prox_export_read(zip, f->keyring, &export, &error));
        g_assert_no_error(error);
        g_ptr_array_add(exports, export);
    }
    return exports;
}

static const ProxVenueWarning *find_warning(const ProxExport *export, ProxVenueWarningKind kind,
                                            gint64 start, gint64 end)
{
    for (guint i = 0; i < export->venue_warnings->len; i++) {
        const ProxVenueWarning *w = &g_array_index(export->venue_warnings, ProxVenueWarning, i);
        if (w->kind == kind && w->start == start && w->end == end)
            return w;
    }
    return NULL;
}

static void test_publish_warnings(Fixture *f, gconstpointer data)
{
    /* Keys of yesterday, a venue warning of this morning and a bus warning of today. */
    g_autofree char *code = test_issue_code(f->db, NULL, NULL);
    uint8_t key[PROX_KEY_LEN];
    randombytes_buf(key, sizeof key);
    g_autofree char *k = test_key_json(key, TEST_TODAY_START - 144, 144);
    g_autofree char *keys_path = g_build_filename(f->dir, "keys.json", NULL);
    g_autofree char *keys_json = g_strdup_printf("{\"temporaryExposureKeys\":[%s]}", k);
    g_assert_true(g_file_set_contents(keys_path, keys_json, -1, NULL));
    g_assert_cmpint(test_authority(NULL, NULL, "import-keys", "--db", f->db, "--now", TEST_NOW_ARG,
                                   keys_path, NULL),
                    ==, 0);
    const char *json = "{\"warnings\":[" VEHICLE(1589961600, 1589963400,
                                                 "") "," VENUE(1589961600, 1589963400) "]}";
    g_assert_cmpint(import_warnings(f, json, NULL, NULL, NULL), ==, 0);

    /* Now: the keys and the venue warning; the bus's TEK of today is still in use. */
    g_autofree char *out = NULL;
    g_assert_cmpint(publish(f, TEST_NOW, &out), ==, 0);
    g_assert_nonnull(strstr(out, "published 1 keys and 19 padding keys in 1 files"));
    g_assert_nonnull(strstr(out, "published 1 warnings"));
    g_autoptr(GPtrArray) exports = read_index(f);
    g_assert_cmpuint(exports->len, ==, 1);
    const ProxExport *e = exports->pdata[0];
    g_assert_cmpuint(e->keys->len, ==, 20);
    g_assert_cmpuint(e->venue_warnings->len, ==, 1);
    const ProxVenueWarning *w = find_warning(e, PROX_VENUE_WARNING_VENUE, 1589961600, 1589963400);
    g_assert_nonnull(w);
    g_assert_cmpint(w->transmission_risk_level, ==, 7);
    uint8_t hash[PROX_LOCATION_HASH_LEN];
    memset(hash, 0xaa, sizeof hash);
    g_assert_cmpmem(w->location_hash, sizeof hash, hash, sizeof hash);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM venue_warnings WHERE run_id IS NULL"),
                    ==, 1);

    /* Nothing new: nothing written. */
    g_clear_pointer(&out, g_free);
    g_assert_cmpint(publish(f, TEST_NOW + 60, &out), ==, 0);
    g_assert_nonnull(strstr(out, "in 0 files"));

    /* After midnight and the embargo: the bus warning alone, in a file without keys. */
    gint64 later = DAY0 + 86400 + 1200;
    g_clear_pointer(&out, g_free);
    g_assert_cmpint(publish(f, later, &out), ==, 0);
    g_assert_nonnull(strstr(out, "published 0 keys and 0 padding keys in 1 files"));
    g_ptr_array_unref(g_steal_pointer(&exports));
    exports = read_index(f);
    g_assert_cmpuint(exports->len, ==, 2);
    e = exports->pdata[1];
    g_assert_cmpuint(e->keys->len, ==, 0);
    g_assert_cmpuint(e->venue_warnings->len, ==, 1);
    w = find_warning(e, PROX_VENUE_WARNING_SAME_VEHICLE, 1589961600, 1589963400);
    g_assert_nonnull(w);
    static const uint8_t tek[PROX_KEY_LEN] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    g_assert_cmpmem(w->beacon_tek.key, PROX_KEY_LEN, tek, PROX_KEY_LEN);
    g_assert_cmpuint(w->beacon_tek.rolling_start, ==, TEST_TODAY_START);
    g_assert_cmpuint(w->beacon_tek.rolling_period, ==, 144);
    g_assert_cmpint(w->transmission_risk_level, ==, 5);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM venue_warnings WHERE run_id IS NULL"),
                    ==, 0);
    g_autofree char *status = NULL;
    g_assert_cmpint(test_authority(&status, NULL, "status", "--db", f->db, NULL), ==, 0);
    g_assert_nonnull(strstr(status, "\nwarnings_published 2\n"));

    /* 14 days later the runs are forgotten with their warnings. */
    g_clear_pointer(&out, g_free);
    g_assert_cmpint(publish(f, later + 15 * 86400, &out), ==, 0);
    g_assert_cmpint(test_db_int(f->db, "SELECT count(*) FROM venue_warnings"), ==, 0);
}

/* ---- beacon trip log and trace ---- */

typedef struct {
    ProxTek beacon_tek;
    ProxTek f0_tek;
    ProxRpi f0_rpi_0800; /* what the beacon heard from F0 at 08:00 */
} BeaconWorld;

/* One scan of 10 s at t: two strangers' fresh RPIs, and F0's when aboard. */
static void beacon_scan(ProxStore *store, gint64 t, const ProxTek *f0, gboolean f0_aboard,
                        ProxRpi *f0_rpi)
{
    g_autoptr(GError) error = NULL;
    gint64 scan = 0;
    g_assert_true(prox_store_scan_begin(store, t, &scan, &error));
    g_autoptr(ProxSightingBatch) batch = prox_sighting_batch_new();
    for (int i = 0; i < 2; i++) {
        ProxRpi rpi;
        ProxAem aem;
        randombytes_buf(&rpi, sizeof rpi);
        randombytes_buf(&aem, sizeof aem);
        prox_sighting_batch_add(batch, scan, &rpi, &aem, -70, t + 1 + i);
    }
    if (f0_aboard) {
        uint8_t metadata[PROX_METADATA_LEN];
        prox_metadata_encode(-8, metadata);
        ProxBroadcastId id;
        g_assert_true(prox_broadcast_id_at(f0, t + 2, metadata, &id));
        prox_sighting_batch_add(batch, scan, &id.rpi, &id.aem, -60, t + 2);
        prox_sighting_batch_add(batch, scan, &id.rpi, &id.aem, -61, t + 5);
        if (f0_rpi != NULL)
            *f0_rpi = id.rpi;
    }
    g_assert_true(prox_store_commit_sightings(store, batch, &error));
    g_assert_true(prox_store_scan_end(store, scan, t + 10, &error));
}

/* The beacon scans every 5 minutes 07:30-09:30 and 11:50-12:20; F0 rides 08:00-08:40 and
 * 12:00-12:10. */
static char *build_beacon_store(Fixture *f, BeaconWorld *world)
{
    g_autofree char *path = g_build_filename(f->dir, "beacon.db", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(ProxStore) store = prox_store_open(path, NULL, &error);
    g_assert_no_error(error);
    g_assert_true(prox_store_get_or_create_tek(store, DAY0 + 7 * HOUR, prox_random_system, NULL,
                                               &world->beacon_tek, &error));
    prox_tek_generate(&world->f0_tek, prox_tek_rolling_start(DAY0 + 7 * HOUR), prox_random_system,
                      NULL);
    for (gint64 t = DAY0 + 7 * HOUR + 1800; t <= DAY0 + 9 * HOUR + 1800; t += 300) {
        gboolean aboard = t >= DAY0 + 8 * HOUR && t <= DAY0 + 8 * HOUR + 2400;
        beacon_scan(store, t, &world->f0_tek, aboard,
                    t == DAY0 + 8 * HOUR ? &world->f0_rpi_0800 : NULL);
    }
    for (gint64 t = DAY0 + 11 * HOUR + 3000; t <= DAY0 + 12 * HOUR + 1200; t += 300) {
        gboolean aboard = t >= DAY0 + 12 * HOUR && t <= DAY0 + 12 * HOUR + 600;
        beacon_scan(store, t, &world->f0_tek, aboard, NULL);
    }
    return g_steal_pointer(&path);
}

/* F0's key, as the authority published it. */
static char *write_f0_list(Fixture *f, const ProxTek *tek)
{
    g_autofree char *path = g_build_filename(f->dir, "f0.zip", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(ProxExportSigner) signer = prox_export_signer_load_file(f->sec, NULL, NULL, &error);
    g_assert_no_error(error);
    ProxDiagnosisKey keys[2] = {
        {.tek = *tek,
         .transmission_risk_level = 0,
         .report_type = PROX_REPORT_CONFIRMED_TEST,
         .has_days_since_onset = TRUE,
         .days_since_onset = 1},
    };
    /* and a key nobody heard */
    prox_tek_generate(&keys[1].tek, tek->rolling_start, prox_random_system, NULL);
    keys[1].report_type = PROX_REPORT_CONFIRMED_TEST;
    ProxExportMeta meta = {
        .start_timestamp = DAY0,
        .end_timestamp = TEST_NOW,
        .batch_num = 1,
        .batch_size = 1,
    };
    g_assert_true(prox_export_write(path, &meta, keys, 2, signer, &error));
    g_assert_no_error(error);
    return g_steal_pointer(&path);
}

static JsonObject *json_object_of(JsonParser *parser, const char *text)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(json_parser_load_from_data(parser, text, -1, &error));
    JsonNode *root = json_parser_get_root(parser);
    g_assert_true(JSON_NODE_HOLDS_OBJECT(root));
    return json_node_get_object(root);
}

static void test_beacon_trip_log(Fixture *f, gconstpointer data)
{
    BeaconWorld world;
    g_autofree char *store = build_beacon_store(f, &world);

    g_autofree char *out = NULL;
    g_assert_cmpint(
        test_prox_tool(&out, NULL, "beacon", "trip-log", "--store", store, "--json", NULL), ==, 0);
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *log = json_object_of(parser, out);
    JsonArray *intervals = json_object_get_array_member(log, "intervals");
    /* 07:30 .. 09:30 (13 intervals) and 11:50 .. 12:20 (4) */
    g_assert_cmpuint(json_array_get_length(intervals), ==, 17);
    g_assert_cmpint(json_object_get_int_member(log, "intervalsInService"), ==, 17);
    guint64 total = 0;
    for (guint i = 0; i < json_array_get_length(intervals); i++) {
        JsonObject *it = json_array_get_object_element(intervals, i);
        gint64 start = json_object_get_int_member(it, "start");
        gint64 rpis = json_object_get_int_member(it, "distinctRpis");
        total += (guint64)rpis;
        g_assert_false(json_object_has_member(it, "rpis"));
        g_assert_cmpint(json_object_get_int_member(it, "interval"), ==, start / 600);
        /* two scans of 10 s, except the last of each ride */
        gint64 scan_seconds = json_object_get_int_member(it, "scanSeconds");
        g_assert_true(scan_seconds == 20 || scan_seconds == 10);
        /* two strangers a scan; F0's one RPI in the intervals she rode */
        gboolean ride = (start >= DAY0 + 8 * HOUR && start < DAY0 + 8 * HOUR + 2400 + 600) ||
                        (start >= DAY0 + 12 * HOUR && start < DAY0 + 12 * HOUR + 1200);
        g_assert_cmpint(rpis, ==, scan_seconds / 10 * 2 + (ride ? 1 : 0));
    }
    g_assert_cmpint(json_object_get_int_member(log, "rpisHeard"), ==, (gint64)total);

    /* --rpis: F0's RPI of 08:00 is listed under its interval; text form too. */
    g_autofree char *rpi_hex = prox_hex_dup(world.f0_rpi_0800.bytes, PROX_RPI_LEN);
    g_autofree char *text = NULL;
    g_assert_cmpint(test_prox_tool(&text, NULL, "beacon", "trip-log", "--store", store, "--rpis",
                                   "--since", "2020-05-20T08:00:00Z", "--until", "@1589962200",
                                   NULL),
                    ==, 0);
    g_autofree char *line =
        g_strdup_printf("%u 2020-05-20T08:00:00Z 20 5\n", (guint)((DAY0 + 8 * HOUR) / 600));
    g_assert_nonnull(strstr(text, line));
    g_autofree char *listed = g_strdup_printf("\n  rpi %s\n", rpi_hex);
    g_assert_nonnull(strstr(text, listed));
    g_assert_nonnull(strstr(text, "# 1 intervals in service, 5 RPIs heard"));
    g_autofree char *without = NULL;
    g_assert_cmpint(test_prox_tool(&without, NULL, "beacon", "trip-log", "--store", store, NULL),
                    ==, 0);
    g_assert_null(strstr(without, rpi_hex));

    /* Bad arguments, missing stores. */
    static const char *const bad[][10] = {
        {"beacon", NULL},
        {"beacon", "frobnicate", NULL},
        {"beacon", "trip-log", NULL},
        {"beacon", "trip-log", "--store", "x.db", "--since", "yesterday", NULL},
        {"beacon", "trip-log", "--store", "x.db", "--since", "@20", "--until", "@10", NULL},
        {"beacon", "trace", "--store", "x.db", "--key", "k.pub", NULL},
        {"beacon", "trace", "--store", "x.db", "--keys", "a.zip", NULL},
        {"beacon", "trace", "--keys", "a.zip", "--key", "k.pub", NULL},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        g_ptr_array_add(argv, (gpointer)g_getenv("PROX_TOOL"));
        for (size_t j = 0; bad[i][j] != NULL; j++)
            g_ptr_array_add(argv, (gpointer)bad[i][j]);
        g_ptr_array_add(argv, NULL);
        g_autofree char *err = NULL;
        g_assert_cmpint(test_run((const char *const *)argv->pdata, NULL, &err), ==, 2);
        g_assert_cmpuint(count_lines(err), ==, 1);
    }
    g_autofree char *missing = g_build_filename(f->dir, "missing.db", NULL);
    g_autofree char *err = NULL;
    g_assert_cmpint(test_prox_tool(NULL, &err, "beacon", "trip-log", "--store", missing, NULL), ==,
                    1);
    g_assert_false(g_file_test(missing, G_FILE_TEST_EXISTS));
    static const char *const help[][2] = {
        {"--help", NULL}, {"trip-log", "--help"}, {"trace", "--help"}};
    for (size_t i = 0; i < G_N_ELEMENTS(help); i++) {
        g_autofree char *h = NULL;
        g_assert_cmpint(test_prox_tool(&h, NULL, "beacon", help[i][0], help[i][1], NULL), ==, 0);
        g_assert_nonnull(strstr(h, "Exit status"));
    }
}

static void test_beacon_trace(Fixture *f, gconstpointer data)
{
    BeaconWorld world;
    g_autofree char *store = build_beacon_store(f, &world);
    g_autofree char *list = write_f0_list(f, &world.f0_tek);
    g_autofree char *json_path = g_build_filename(f->dir, "bus.json", NULL);

    g_autofree char *out = NULL;
    g_assert_cmpint(test_prox_tool(&out, NULL, "beacon", "trace", "--store", store, "--keys", list,
                                   "--key", f->pub, "--out", json_path, NULL),
                    ==, 0);
    g_test_message("%s", out);
    g_assert_nonnull(strstr(out, "verified 1 key lists: 2 keys"));
    /* 9 scans on the first ride (08:00 .. 08:40), 3 on the second */
    g_assert_nonnull(strstr(out, "matched 12 sightings of 1 keys"));
    g_assert_nonnull(strstr(out, "2 windows"));
    g_assert_nonnull(strstr(out, "window 1: 2020-05-20T08:00:02Z .. 2020-05-20T08:40:05Z"));
    g_assert_nonnull(strstr(out, "window 2: 2020-05-20T12:00:02Z .. 2020-05-20T12:10:05Z"));
    g_assert_nonnull(strstr(out, "wrote 2 warnings"));
    /* The summary never shows key material. */
    g_autofree char *beacon_b64 = g_base64_encode(world.beacon_tek.key, PROX_KEY_LEN);
    g_assert_null(strstr(out, beacon_b64));

    ProxRiskParameters params;
    prox_risk_parameters_default(&params);
    ProxDiagnosisKey f0 = {.tek = world.f0_tek,
                           .report_type = PROX_REPORT_CONFIRMED_TEST,
                           .has_days_since_onset = TRUE,
                           .days_since_onset = 1};
    int32_t risk = prox_risk_transmission_risk_level(&params, f0.report_type,
                                                     prox_risk_key_infectiousness(&params, &f0));
    g_assert_cmpint(risk, >=, 1);

    g_autofree char *json = read_text(f->dir, "bus.json");
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *root = json_object_of(parser, json);
    JsonArray *warnings = json_object_get_array_member(root, "warnings");
    g_assert_cmpuint(json_array_get_length(warnings), ==, 2);
    const gint64 expect[2][2] = {
        {DAY0 + 8 * HOUR + 2, DAY0 + 8 * HOUR + 2405},
        {DAY0 + 12 * HOUR + 2, DAY0 + 12 * HOUR + 605},
    };
    for (guint i = 0; i < 2; i++) {
        JsonObject *w = json_array_get_object_element(warnings, i);
        g_assert_cmpstr(json_object_get_string_member(w, "kind"), ==, "same-vehicle");
        g_assert_cmpstr(json_object_get_string_member(w, "beaconKey"), ==, beacon_b64);
        g_assert_cmpint(json_object_get_int_member(w, "rollingStartIntervalNumber"), ==,
                        world.beacon_tek.rolling_start);
        g_assert_cmpint(json_object_get_int_member(w, "rollingPeriod"), ==,
                        world.beacon_tek.rolling_period);
        g_assert_cmpint(json_object_get_int_member(w, "start"), ==, expect[i][0]);
        g_assert_cmpint(json_object_get_int_member(w, "end"), ==, expect[i][1]);
        g_assert_cmpint(json_object_get_int_member(w, "transmissionRisk"), ==, risk);
    }

    /* The authority takes the file as is, and publishes the warnings once the beacon's TEK
     * of that day is over; devices read them back from the signed list. */
    g_autofree char *import_out = NULL;
    g_assert_cmpint(test_authority(&import_out, NULL, "warning", "import", "--db", f->db, "--now",
                                   TEST_NOW_ARG, json_path, NULL),
                    ==, 0);
    g_assert_nonnull(strstr(import_out, "imported 2 warnings"));
    g_assert_cmpint(publish(f, DAY0 + 86400 + 1200, NULL), ==, 0);
    g_autoptr(GPtrArray) exports = read_index(f);
    g_assert_cmpuint(exports->len, ==, 1);
    const ProxExport *e = exports->pdata[0];
    g_assert_cmpuint(e->venue_warnings->len, ==, 2);
    for (guint i = 0; i < 2; i++) {
        const ProxVenueWarning *w =
            find_warning(e, PROX_VENUE_WARNING_SAME_VEHICLE, expect[i][0], expect[i][1]);
        g_assert_nonnull(w);
        g_assert_cmpmem(w->beacon_tek.key, PROX_KEY_LEN, world.beacon_tek.key, PROX_KEY_LEN);
        g_assert_cmpint(w->transmission_risk_level, ==, risk);
    }

    /* JSON on stdout without --out; a list signed by another key stops everything. */
    g_autofree char *stdout_json = NULL;
    g_autofree char *summary = NULL;
    g_assert_cmpint(test_prox_tool(&stdout_json, &summary, "beacon", "trace", "--store", store,
                                   "--key", f->pub, list, NULL),
                    ==, 0);
    g_assert_cmpstr(stdout_json, ==, json);
    g_assert_nonnull(strstr(summary, "2 windows"));
    g_autofree char *other_keys = g_build_filename(f->dir, "other", NULL);
    g_assert_cmpint(test_authority(NULL, NULL, "init-key", "--key-id", "999", "--key-version", "v1",
                                   "--dir", other_keys, NULL),
                    ==, 0);
    g_autofree char *other_pub = g_build_filename(other_keys, "999-v1.pub", NULL);
    g_autofree char *err = NULL;
    g_autofree char *bad_out = g_build_filename(f->dir, "bad.json", NULL);
    g_assert_cmpint(test_prox_tool(NULL, &err, "beacon", "trace", "--store", store, "--keys", list,
                                   "--key", other_pub, "--out", bad_out, NULL),
                    ==, 1);
    g_assert_nonnull(strstr(err, "f0.zip"));
    g_assert_false(g_file_test(bad_out, G_FILE_TEST_EXISTS));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_assert_cmpint(sodium_init(), >=, 0);
#define ADD(path, fn)                                                                              \
    g_test_add(path, Fixture, NULL, test_authority_fixture_setup, fn,                              \
               test_authority_fixture_teardown)
    ADD("/authority/venues/register", test_venue_register);
    ADD("/authority/venues/refusals", test_venue_refusals);
    ADD("/authority/venues/forged", test_venue_forged);
    ADD("/authority/warnings/import-validation", test_warning_import_validation);
    ADD("/authority/warnings/publish", test_publish_warnings);
    ADD("/authority/beacon/trip-log", test_beacon_trip_log);
    ADD("/authority/beacon/trace", test_beacon_trace);
    return g_test_run();
}
