/* test-keys.c - GAEN key schedule against the published vectors, TEK validity, metadata,
 * rotation timing, and `prox-tool derive`.
 *
 * The expected values are read from $PROX_TESTDATA/gaen/VECTORS.md at run time, so the
 * tests check the published numbers rather than a copy that could drift from them.
 */
#include "prox-hex.h"
#include "prox-keys.h"

#include <openssl/evp.h>
#include <string.h>
#include <sys/wait.h>

/* ---- VECTORS.md ---- */

typedef struct {
    uint32_t enin;
    ProxRpi rpi;
    ProxAem aem;
} VectorRow;

typedef struct {
    uint8_t tek[PROX_KEY_LEN];
    uint32_t start;
    uint32_t period;
    uint8_t rpik[PROX_KEY_LEN];
    uint8_t aemk[PROX_KEY_LEN];
    uint8_t metadata[PROX_METADATA_LEN];
    uint32_t padded_enin;
    uint8_t padded[PROX_RPI_LEN];
    GArray *rows; /* VectorRow */
} Vectors;

static Vectors vectors;

static uint32_t parse_u32(const char *text)
{
    guint64 v;
    g_autoptr(GError) error = NULL;
    g_assert_true(g_ascii_string_to_unsigned(text, 10, 0, G_MAXUINT32, &v, &error));
    g_assert_no_error(error);
    return (uint32_t)v;
}

static void parse_hex(const char *text, uint8_t *out, size_t len)
{
    if (!prox_hex_decode(text, out, len))
        g_error("VECTORS.md: \"%s\" is not %zu bytes of hex", text, len);
}

/* Splits on runs of spaces. */
static GStrv fields(const char *line)
{
    g_auto(GStrv) parts = g_strsplit(line, " ", -1);
    GPtrArray *out = g_ptr_array_new();
    for (guint i = 0; parts[i] != NULL; i++) {
        if (parts[i][0] != '\0')
            g_ptr_array_add(out, g_strdup(parts[i]));
    }
    g_ptr_array_add(out, NULL);
    return (GStrv)g_ptr_array_free(out, FALSE);
}

static void load_vectors(void)
{
    const char *dir = g_getenv("PROX_TESTDATA");
    g_assert_nonnull(dir);
    g_autofree char *path = g_build_filename(dir, "gaen", "VECTORS.md", NULL);
    g_autofree char *text = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(g_file_get_contents(path, &text, NULL, &error));
    g_assert_no_error(error);

    vectors.rows = g_array_new(FALSE, TRUE, sizeof(VectorRow));
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    unsigned seen = 0;
    int fence = 0; /* number of ``` lines passed; rows are inside the first block */
    for (guint i = 0; lines[i] != NULL; i++) {
        const char *line = lines[i];
        g_auto(GStrv) f = fields(line);
        guint n = g_strv_length(f);
        if (g_str_has_prefix(line, "```")) {
            fence++;
            continue;
        }
        if (fence == 1) {
            if (n == 0)
                continue;
            g_assert_cmpuint(n, ==, 3);
            VectorRow row;
            row.enin = parse_u32(f[0]);
            parse_hex(f[1], row.rpi.bytes, PROX_RPI_LEN);
            parse_hex(f[2], row.aem.bytes, PROX_AEM_LEN);
            g_array_append_val(vectors.rows, row);
            continue;
        }
        if (fence > 1 || n < 2)
            continue;
        if (strcmp(f[0], "TEK") == 0) {
            parse_hex(f[1], vectors.tek, PROX_KEY_LEN);
            seen |= 1;
        } else if (strcmp(f[0], "start") == 0) {
            /* start     ENIN 2642976 (unix ...), rolling period 144 */
            g_assert_cmpuint(n, >=, 3);
            g_assert_cmpstr(f[1], ==, "ENIN");
            vectors.start = parse_u32(f[2]);
            g_assert_cmpstr(f[n - 3], ==, "rolling");
            g_assert_cmpstr(f[n - 2], ==, "period");
            vectors.period = parse_u32(f[n - 1]);
            seen |= 2;
        } else if (strcmp(f[0], "RPIK") == 0) {
            parse_hex(f[1], vectors.rpik, PROX_KEY_LEN);
            seen |= 4;
        } else if (strcmp(f[0], "AEMK") == 0) {
            parse_hex(f[1], vectors.aemk, PROX_KEY_LEN);
            seen |= 8;
        } else if (strcmp(f[0], "metadata") == 0) {
            parse_hex(f[1], vectors.metadata, PROX_METADATA_LEN);
            seen |= 16;
        } else if (g_str_has_prefix(line, "padded data for ENIN ")) {
            /* padded data for ENIN 2642976 = 454e... */
            g_assert_cmpuint(n, ==, 7);
            vectors.padded_enin = parse_u32(f[4]);
            g_assert_cmpstr(f[5], ==, "=");
            parse_hex(f[6], vectors.padded, PROX_RPI_LEN);
            seen |= 32;
        }
    }
    g_assert_cmpuint(seen, ==, 63);
    g_assert_cmpint(fence, >=, 2);
    g_assert_cmpuint(vectors.rows->len, >=, 2);
}

static const VectorRow *vector_row(guint i)
{
    return &g_array_index(vectors.rows, VectorRow, i);
}

static ProxTek vector_tek(void)
{
    ProxTek tek;
    memcpy(tek.key, vectors.tek, PROX_KEY_LEN);
    tek.rolling_start = vectors.start;
    tek.rolling_period = vectors.period;
    return tek;
}

/* AES-128-ECB decryption, independent of the code under test. */
static void aes_ecb_decrypt(const uint8_t key[16], const uint8_t in[16], uint8_t out[16])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0;
    g_assert_nonnull(ctx);
    g_assert_cmpint(EVP_DecryptInit_ex(ctx, EVP_aes_128_ecb(), NULL, key, NULL), ==, 1);
    g_assert_cmpint(EVP_CIPHER_CTX_set_padding(ctx, 0), ==, 1);
    g_assert_cmpint(EVP_DecryptUpdate(ctx, out, &len, in, 16), ==, 1);
    g_assert_cmpint(len, ==, 16);
    EVP_CIPHER_CTX_free(ctx);
}

/* ---- vectors ---- */

static void test_vectors_keys(void)
{
    uint8_t rpik[PROX_KEY_LEN];
    uint8_t aemk[PROX_KEY_LEN];
    prox_rpik_derive(vectors.tek, rpik);
    prox_aemk_derive(vectors.tek, aemk);
    g_assert_cmpmem(rpik, sizeof(rpik), vectors.rpik, PROX_KEY_LEN);
    g_assert_cmpmem(aemk, sizeof(aemk), vectors.aemk, PROX_KEY_LEN);
}

/* The RPI is the encryption of the padded data: decrypting the published RPI must give the
 * published padded data, and every row must decrypt to "EN-RPI" || 0^6 || LE32(ENIN). */
static void test_vectors_padded_data(void)
{
    gboolean checked_published = FALSE;
    for (guint i = 0; i < vectors.rows->len; i++) {
        const VectorRow *row = vector_row(i);
        uint8_t plain[16];
        aes_ecb_decrypt(vectors.rpik, row->rpi.bytes, plain);
        uint8_t expected[16] = {'E', 'N', '-', 'R', 'P', 'I', 0, 0, 0, 0, 0, 0};
        expected[12] = (uint8_t)row->enin;
        expected[13] = (uint8_t)(row->enin >> 8);
        expected[14] = (uint8_t)(row->enin >> 16);
        expected[15] = (uint8_t)(row->enin >> 24);
        g_assert_cmpmem(plain, 16, expected, 16);
        if (row->enin == vectors.padded_enin) {
            g_assert_cmpmem(plain, 16, vectors.padded, 16);
            checked_published = TRUE;
        }
    }
    g_assert_true(checked_published);
}

static void test_vectors_rows(void)
{
    for (guint i = 0; i < vectors.rows->len; i++) {
        const VectorRow *row = vector_row(i);
        ProxRpi rpi;
        uint8_t aem[PROX_AEM_LEN];
        uint8_t metadata[PROX_METADATA_LEN];
        g_test_message("ENIN %u", row->enin);
        prox_rpi_compute(vectors.rpik, row->enin, &rpi);
        g_assert_cmpmem(rpi.bytes, PROX_RPI_LEN, row->rpi.bytes, PROX_RPI_LEN);
        prox_aem_crypt(vectors.aemk, &rpi, vectors.metadata, aem);
        g_assert_cmpmem(aem, PROX_AEM_LEN, row->aem.bytes, PROX_AEM_LEN);
        /* Decryption is the same operation. */
        prox_aem_crypt(vectors.aemk, &rpi, aem, metadata);
        g_assert_cmpmem(metadata, PROX_METADATA_LEN, vectors.metadata, PROX_METADATA_LEN);
        int8_t tx;
        g_assert_true(prox_metadata_decode(metadata, &tx));
        g_assert_cmpint(tx, ==, (int8_t)vectors.metadata[1]);
    }
}

/* The range function over the whole day equals the per-interval one and the vectors. */
static void test_rpi_range(void)
{
    ProxRpi range[PROX_MAX_ROLLING_PERIOD];
    g_assert_cmpuint(vectors.period, ==, PROX_MAX_ROLLING_PERIOD);
    prox_rpi_compute_range(vectors.rpik, vectors.start, vectors.period, range);
    for (uint32_t i = 0; i < vectors.period; i++) {
        ProxRpi single;
        prox_rpi_compute(vectors.rpik, vectors.start + i, &single);
        g_assert_cmpmem(range[i].bytes, PROX_RPI_LEN, single.bytes, PROX_RPI_LEN);
    }
    guint matched = 0;
    for (guint i = 0; i < vectors.rows->len; i++) {
        const VectorRow *row = vector_row(i);
        g_assert_cmpuint(row->enin - vectors.start, <, vectors.period);
        g_assert_cmpmem(range[row->enin - vectors.start].bytes, PROX_RPI_LEN, row->rpi.bytes,
                        PROX_RPI_LEN);
        matched++;
    }
    g_assert_cmpuint(matched, ==, vectors.rows->len);
}

/* Short ranges at odd starts, and across the uint32 wrap of the counter bytes. */
static void test_rpi_range_partial(void)
{
    const uint32_t starts[] = {0, 1, 2649866, 0x00ffffff, G_MAXUINT32 - 4};
    const uint32_t counts[] = {1, 2, 5, 114, 144};
    for (size_t s = 0; s < G_N_ELEMENTS(starts); s++) {
        for (size_t c = 0; c < G_N_ELEMENTS(counts); c++) {
            uint32_t count = counts[c];
            if ((uint64_t)starts[s] + count - 1 > G_MAXUINT32)
                count = G_MAXUINT32 - starts[s] + 1;
            /* One extra slot checks nothing is written past count. */
            ProxRpi range[PROX_MAX_ROLLING_PERIOD + 1];
            memset(range, 0xa5, sizeof(range));
            prox_rpi_compute_range(vectors.rpik, starts[s], count, range);
            for (uint32_t i = 0; i < count; i++) {
                ProxRpi single;
                prox_rpi_compute(vectors.rpik, starts[s] + i, &single);
                g_assert_cmpmem(range[i].bytes, PROX_RPI_LEN, single.bytes, PROX_RPI_LEN);
            }
            for (size_t b = 0; b < PROX_RPI_LEN; b++)
                g_assert_cmpuint(range[count].bytes[b], ==, 0xa5);
        }
    }
    /* count 0 writes nothing. */
    ProxRpi untouched;
    memset(&untouched, 0x3c, sizeof(untouched));
    prox_rpi_compute_range(vectors.rpik, 5, 0, &untouched);
    for (size_t b = 0; b < PROX_RPI_LEN; b++)
        g_assert_cmpuint(untouched.bytes[b], ==, 0x3c);
}

/* ---- TEK validity ---- */

static void test_rolling_start(void)
{
    const gint64 day = (gint64)vectors.start * PROX_INTERVAL_SECONDS; /* 2020-04-02 00:00Z */
    g_assert_cmpint(day, ==, 1585785600);
    g_assert_cmpuint(prox_tek_rolling_start(day), ==, vectors.start);
    g_assert_cmpuint(prox_tek_rolling_start(day + 1), ==, vectors.start);
    g_assert_cmpuint(prox_tek_rolling_start(day + 86399), ==, vectors.start);
    g_assert_cmpuint(prox_tek_rolling_start(day + 86400), ==, vectors.start + 144);
    g_assert_cmpuint(prox_tek_rolling_start(day - 1), ==, vectors.start - 144);
    g_assert_cmpuint(prox_tek_rolling_start(0), ==, 0);
    g_assert_cmpuint(prox_tek_rolling_start(86399), ==, 0);
    for (gint64 t = day - 3 * 86400; t < day + 3 * 86400; t += 599) {
        uint32_t start = prox_tek_rolling_start(t);
        g_assert_cmpuint(start % 144, ==, 0);
        g_assert_cmpint((gint64)start * 600, <=, t);
        g_assert_cmpint(t, <, ((gint64)start + 144) * 600);
    }
}

static void test_covers(void)
{
    ProxTek tek = vector_tek();
    g_assert_false(prox_tek_covers(&tek, vectors.start - 1));
    g_assert_true(prox_tek_covers(&tek, vectors.start));
    g_assert_true(prox_tek_covers(&tek, vectors.start + 143));
    g_assert_false(prox_tek_covers(&tek, vectors.start + 144));
    g_assert_false(prox_tek_covers(&tek, 0));
    g_assert_false(prox_tek_covers(&tek, G_MAXUINT32));

    /* Published keys with other periods (PROTOCOL.md §1). */
    tek.rolling_start = 2649980;
    tek.rolling_period = 1;
    g_assert_false(prox_tek_covers(&tek, 2649979));
    g_assert_true(prox_tek_covers(&tek, 2649980));
    g_assert_false(prox_tek_covers(&tek, 2649981));
    tek.rolling_start = 2649866;
    tek.rolling_period = 114;
    g_assert_true(prox_tek_covers(&tek, 2649866 + 113));
    g_assert_false(prox_tek_covers(&tek, 2649866 + 114));
    tek.rolling_period = 0;
    g_assert_false(prox_tek_covers(&tek, 2649866));

    /* No wrap-around at the top of the ENIN range. */
    tek.rolling_start = G_MAXUINT32 - 10;
    tek.rolling_period = 144;
    g_assert_true(prox_tek_covers(&tek, G_MAXUINT32));
    g_assert_true(prox_tek_covers(&tek, G_MAXUINT32 - 10));
    g_assert_false(prox_tek_covers(&tek, G_MAXUINT32 - 11));
    g_assert_false(prox_tek_covers(&tek, 0));
    g_assert_false(prox_tek_covers(&tek, 100));
}

/* ---- scripted random source ---- */

typedef struct {
    const uint32_t *values; /* little-endian 32-bit draws, repeated cyclically */
    size_t n_values;
    size_t next;
    size_t calls;
    size_t bytes;
} Script;

static void script_random(void *buf, size_t len, void *user_data)
{
    Script *s = user_data;
    uint8_t *out = buf;
    s->calls++;
    for (size_t i = 0; i < len; i++) {
        uint32_t v = s->values[(s->bytes / 4) % s->n_values];
        out[i] = (uint8_t)(v >> (8 * (s->bytes % 4)));
        s->bytes++;
    }
    s->next = s->bytes / 4;
}

static void test_tek_generate(void)
{
    const uint32_t values[] = {0x03020100, 0x07060504, 0x0b0a0908, 0x0f0e0d0c};
    Script script = {values, G_N_ELEMENTS(values), 0, 0, 0};
    ProxTek tek;
    memset(&tek, 0xee, sizeof(tek));
    prox_tek_generate(&tek, vectors.start, script_random, &script);
    for (int i = 0; i < 16; i++)
        g_assert_cmpuint(tek.key[i], ==, i);
    g_assert_cmpuint(tek.rolling_start, ==, vectors.start);
    g_assert_cmpuint(tek.rolling_period, ==, PROX_TEK_ROLLING_PERIOD);
    g_assert_cmpuint(script.bytes, ==, PROX_KEY_LEN);
}

static void test_random_system(void)
{
    uint8_t a[32] = {0};
    uint8_t b[32] = {0};
    const uint8_t zero[32] = {0};
    prox_random_system(a, sizeof(a), NULL);
    prox_random_system(b, sizeof(b), NULL);
    /* 2^-256 chance of a false failure. */
    g_assert_true(memcmp(a, zero, sizeof(a)) != 0);
    g_assert_true(memcmp(a, b, sizeof(a)) != 0);

    ProxTek t1;
    ProxTek t2;
    prox_tek_generate(&t1, 0, prox_random_system, NULL);
    prox_tek_generate(&t2, 0, prox_random_system, NULL);
    g_assert_true(memcmp(t1.key, t2.key, PROX_KEY_LEN) != 0);
}

static gpointer random_thread(gpointer data)
{
    uint8_t *out = data;
    prox_random_system(out, 16, NULL);
    return NULL;
}

/* First use from several threads at once (the sodium_init guard). */
static void test_random_system_threads(void)
{
    if (!g_test_subprocess()) {
        g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
        g_test_trap_assert_passed();
        return;
    }
    uint8_t out[8][16];
    GThread *threads[8];
    for (int i = 0; i < 8; i++)
        threads[i] = g_thread_new("random", random_thread, out[i]);
    for (int i = 0; i < 8; i++)
        g_thread_join(threads[i]);
    for (int i = 1; i < 8; i++)
        g_assert_true(memcmp(out[0], out[i], 16) != 0);
}

/* ---- rotation ---- */

#define T0 ((gint64)1585785600 + 1234)

static gint64 rotation_with(const uint32_t *values, size_t n, size_t *draws)
{
    Script script = {values, n, 0, 0, 0};
    gint64 t = prox_rotation_next(T0, script_random, &script);
    g_assert_cmpuint(script.bytes % 4, ==, 0);
    if (draws != NULL)
        *draws = script.bytes / 4;
    return t;
}

static void test_rotation_extremes(void)
{
    size_t draws;
    const uint32_t zero = 0;
    const uint32_t ones = G_MAXUINT32;
    g_assert_cmpint(rotation_with(&zero, 1, &draws), ==, T0 + 600);
    g_assert_cmpuint(draws, ==, 1);
    g_assert_cmpint(rotation_with(&ones, 1, &draws), ==, T0 + 1200);
    g_assert_cmpuint(draws, ==, 1);

    /* 601 buckets of floor(2^32 / 601) values each. */
    const uint32_t bucket = (uint32_t)((((uint64_t)1) << 32) / 601);
    const uint32_t edges[] = {bucket - 1, bucket};
    g_assert_cmpint(rotation_with(&edges[0], 1, NULL), ==, T0 + 600);
    g_assert_cmpint(rotation_with(&edges[1], 1, NULL), ==, T0 + 601);
}

/* The 2^32 mod 601 = 128 values that do not fill a bucket are redrawn, so the result is
 * exactly uniform; a later draw decides. */
static void test_rotation_rejection(void)
{
    const uint32_t bucket = (uint32_t)((((uint64_t)1) << 32) / 601);
    const uint32_t reject_start = 300 * bucket;
    g_assert_cmpuint((((uint64_t)1) << 32) % 601, ==, 128);

    size_t draws;
    const uint32_t before[] = {reject_start - 1};
    g_assert_cmpint(rotation_with(before, 1, &draws), ==, T0 + 600 + 299);
    g_assert_cmpuint(draws, ==, 1);
    const uint32_t after[] = {reject_start + 128};
    g_assert_cmpint(rotation_with(after, 1, &draws), ==, T0 + 600 + 300);
    g_assert_cmpuint(draws, ==, 1);

    const uint32_t first_rejected[] = {reject_start, 0};
    g_assert_cmpint(rotation_with(first_rejected, 2, &draws), ==, T0 + 600);
    g_assert_cmpuint(draws, ==, 2);
    const uint32_t two_rejected[] = {reject_start + 127, reject_start + 5, G_MAXUINT32};
    g_assert_cmpint(rotation_with(two_rejected, 3, &draws), ==, T0 + 1200);
    g_assert_cmpuint(draws, ==, 3);
}

/* A stuck source that only gives a rejected value still yields a time in the window. */
static void test_rotation_stuck_source(void)
{
    if (!g_test_subprocess()) {
        g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
        g_test_trap_assert_passed();
        g_test_trap_assert_stderr("*not random*");
        return;
    }
    /* The warning is the expected outcome here, not a failure. */
    g_log_set_always_fatal(G_LOG_FATAL_MASK);
    const uint32_t bucket = (uint32_t)((((uint64_t)1) << 32) / 601);
    const uint32_t stuck = 300 * bucket + 1;
    size_t draws;
    gint64 t = rotation_with(&stuck, 1, &draws);
    g_assert_cmpint(t, >=, T0 + 600);
    g_assert_cmpint(t, <=, T0 + 1200);
    g_assert_cmpuint(draws, ==, 16);
}

/* Deterministic: the same source gives the same times; all results lie in the window,
 * and both ends and the middle are reachable. */
static void test_rotation_bounds_determinism(void)
{
    GRand *r1 = g_rand_new_with_seed(42);
    GRand *r2 = g_rand_new_with_seed(42);
    guint counts[601] = {0};
    for (int i = 0; i < 200000; i++) {
        uint32_t v1 = g_rand_int(r1);
        uint32_t v2 = g_rand_int(r2);
        gint64 last = T0 + (gint64)i * 1000;
        gint64 a = rotation_with(&v1, 1, NULL) - T0 + last;
        gint64 b = rotation_with(&v2, 1, NULL) - T0 + last;
        g_assert_cmpint(a, ==, b);
        g_assert_cmpint(a - last, >=, PROX_ROTATION_MIN_SECONDS);
        g_assert_cmpint(a - last, <=, PROX_ROTATION_MAX_SECONDS);
        counts[a - last - PROX_ROTATION_MIN_SECONDS]++;
    }
    g_rand_free(r1);
    g_rand_free(r2);
    /* 200000 / 601 = 333 expected per second; each of these is > 20 sigma from 0. */
    for (int s = 0; s < 601; s++)
        g_assert_cmpuint(counts[s], >, 150);

    /* The time offset carries through for any last rotation, negative included. */
    const uint32_t zero = 0;
    Script script = {&zero, 1, 0, 0, 0};
    g_assert_cmpint(prox_rotation_next(-5000, script_random, &script), ==, -4400);
    g_assert_cmpint(prox_rotation_next(0, script_random, &script), ==, 600);
}

/* ---- metadata ---- */

static void test_metadata(void)
{
    for (int tx = -128; tx <= 127; tx++) {
        uint8_t m[PROX_METADATA_LEN];
        memset(m, 0xff, sizeof(m));
        prox_metadata_encode((int8_t)tx, m);
        g_assert_cmpuint(m[0], ==, 0x40);
        g_assert_cmpuint(m[1], ==, (uint8_t)tx);
        g_assert_cmpuint(m[2], ==, 0);
        g_assert_cmpuint(m[3], ==, 0);
        int8_t back = 0;
        g_assert_true(prox_metadata_decode(m, &back));
        g_assert_cmpint(back, ==, tx);
    }
    uint8_t m[PROX_METADATA_LEN];
    prox_metadata_encode(-20, m);
    const uint8_t expected[] = {0x40, 0xec, 0x00, 0x00};
    g_assert_cmpmem(m, sizeof(m), expected, sizeof(expected));
    g_assert_true(prox_metadata_decode(m, NULL));
}

/* Only the major version (bits 7-6) gates; minor versions and reserved bits pass. */
static void test_metadata_versions(void)
{
    for (int b0 = 0; b0 < 256; b0++) {
        uint8_t m[PROX_METADATA_LEN] = {(uint8_t)b0, 0xf6, 0x12, 0x34};
        int8_t tx = 99;
        gboolean ok = prox_metadata_decode(m, &tx);
        g_assert_cmpint(ok, ==, (b0 >> 6) == 1);
        g_assert_cmpint(tx, ==, ok ? -10 : 99);
    }
}

/* ---- broadcast_id_at ---- */

static void assert_broadcast(const ProxTek *tek, gint64 now, guint row_index)
{
    const VectorRow *row = vector_row(row_index);
    ProxBroadcastId id;
    g_assert_true(prox_broadcast_id_at(tek, now, vectors.metadata, &id));
    g_assert_cmpuint(id.enin, ==, row->enin);
    g_assert_cmpmem(id.rpi.bytes, PROX_RPI_LEN, row->rpi.bytes, PROX_RPI_LEN);
    g_assert_cmpmem(id.aem.bytes, PROX_AEM_LEN, row->aem.bytes, PROX_AEM_LEN);
}

static void assert_no_broadcast(const ProxTek *tek, gint64 now)
{
    ProxBroadcastId id;
    memset(&id, 0x77, sizeof(id));
    g_assert_false(prox_broadcast_id_at(tek, now, vectors.metadata, &id));
    const uint8_t *p = (const uint8_t *)&id;
    for (size_t i = 0; i < sizeof(id); i++)
        g_assert_cmpuint(p[i], ==, 0x77);
}

static void test_broadcast_id_at(void)
{
    ProxTek tek = vector_tek();
    const gint64 start = (gint64)vectors.start * PROX_INTERVAL_SECONDS;
    const gint64 end = start + (gint64)vectors.period * PROX_INTERVAL_SECONDS;
    for (guint i = 0; i < vectors.rows->len; i++) {
        gint64 interval = (gint64)vector_row(i)->enin * PROX_INTERVAL_SECONDS;
        assert_broadcast(&tek, interval, i);
        assert_broadcast(&tek, interval + 1, i);
        assert_broadcast(&tek, interval + 599, i);
    }
    assert_no_broadcast(&tek, start - 1);
    assert_no_broadcast(&tek, start - 600);
    assert_no_broadcast(&tek, end);
    assert_no_broadcast(&tek, end + 86400);
    assert_no_broadcast(&tek, 0);
    assert_no_broadcast(&tek, -1);
    /* A negative time must not wrap into an interval a key covers. */
    tek.rolling_start = G_MAXUINT32 - 143;
    assert_no_broadcast(&tek, -600);
}

/* ---- prox-tool derive ---- */

typedef struct {
    int status;
    char *out;
    char *err;
} ToolRun;

static void tool_run_clear(ToolRun *run)
{
    g_free(run->out);
    g_free(run->err);
}

/* Runs $PROX_TOOL derive with the NULL-terminated arguments. */
static gboolean run_derive(ToolRun *run, ...)
{
    const char *tool = g_getenv("PROX_TOOL");
    if (tool == NULL) {
        g_test_skip("PROX_TOOL not set");
        return FALSE;
    }
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_ptr_array_add(argv, (gpointer)tool);
    g_ptr_array_add(argv, (gpointer) "derive");
    va_list ap;
    va_start(ap, run);
    const char *arg;
    while ((arg = va_arg(ap, const char *)) != NULL)
        g_ptr_array_add(argv, (gpointer)arg);
    va_end(ap);
    g_ptr_array_add(argv, NULL);

    g_autoptr(GError) error = NULL;
    int wait_status = 0;
    g_assert_true(g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                               &run->out, &run->err, &wait_status, &error));
    g_assert_no_error(error);
    g_assert_true(WIFEXITED(wait_status));
    run->status = WEXITSTATUS(wait_status);
    return TRUE;
}

static void test_tool_derive_vectors(void)
{
    g_autofree char *tek = prox_hex_dup(vectors.tek, PROX_KEY_LEN);
    g_autofree char *start = g_strdup_printf("%u", vectors.start);
    ToolRun run = {0};
    if (!run_derive(&run, "--tek", tek, "--start", start, NULL))
        return;
    g_assert_cmpstr(run.err, ==, "");
    g_assert_cmpint(run.status, ==, 0);

    /* Default count: one line per interval of the day, default metadata 40080000 (the
     * vectors' metadata). */
    g_auto(GStrv) lines = g_strsplit(run.out, "\n", -1);
    g_assert_cmpuint(g_strv_length(lines), ==, PROX_TEK_ROLLING_PERIOD + 1);
    g_assert_cmpstr(lines[PROX_TEK_ROLLING_PERIOD], ==, "");
    guint matched = 0;
    for (guint i = 0; i < PROX_TEK_ROLLING_PERIOD; i++) {
        g_auto(GStrv) f = g_strsplit(lines[i], " ", -1);
        g_assert_cmpuint(g_strv_length(f), ==, 3);
        g_assert_cmpuint(parse_u32(f[0]), ==, vectors.start + i);
        g_assert_cmpuint(strlen(f[1]), ==, 32);
        g_assert_cmpuint(strlen(f[2]), ==, 8);
        for (guint r = 0; r < vectors.rows->len; r++) {
            const VectorRow *row = vector_row(r);
            if (row->enin != vectors.start + i)
                continue;
            /* Compare as text: the tool must print lowercase hex. */
            g_autofree char *rpi = prox_hex_dup(row->rpi.bytes, PROX_RPI_LEN);
            g_autofree char *aem = prox_hex_dup(row->aem.bytes, PROX_AEM_LEN);
            g_assert_cmpstr(f[1], ==, rpi);
            g_assert_cmpstr(f[2], ==, aem);
            matched++;
        }
    }
    g_assert_cmpuint(matched, ==, vectors.rows->len);
    tool_run_clear(&run);
}

static void test_tool_derive_options(void)
{
    /* Upper case is accepted too. */
    g_autofree char *tek_lower = prox_hex_dup(vectors.tek, PROX_KEY_LEN);
    g_autofree char *tek = g_ascii_strup(tek_lower, -1);
    const VectorRow *row = vector_row(1);
    g_autofree char *start = g_strdup_printf("%u", row->enin);
    ToolRun run = {0};
    if (!run_derive(&run, "--tek", tek, "--start", start, "--count", "1", NULL))
        return;
    g_assert_cmpint(run.status, ==, 0);
    g_autofree char *rpi = prox_hex_dup(row->rpi.bytes, PROX_RPI_LEN);
    g_autofree char *aem = prox_hex_dup(row->aem.bytes, PROX_AEM_LEN);
    g_autofree char *expected = g_strdup_printf("%u %s %s\n", row->enin, rpi, aem);
    g_assert_cmpstr(run.out, ==, expected);
    tool_run_clear(&run);

    /* Other metadata: the printed AEM decrypts to it. */
    g_assert_true(run_derive(&run, "-t", tek, "-s", start, "-n", "3", "-m", "40ec0000", NULL));
    g_assert_cmpint(run.status, ==, 0);
    g_auto(GStrv) lines = g_strsplit(run.out, "\n", -1);
    g_assert_cmpuint(g_strv_length(lines), ==, 4);
    for (guint i = 0; i < 3; i++) {
        g_auto(GStrv) f = g_strsplit(lines[i], " ", -1);
        ProxRpi line_rpi;
        uint8_t line_aem[PROX_AEM_LEN];
        uint8_t metadata[PROX_METADATA_LEN];
        g_assert_true(prox_hex_decode(f[1], line_rpi.bytes, PROX_RPI_LEN));
        g_assert_true(prox_hex_decode(f[2], line_aem, PROX_AEM_LEN));
        prox_aem_crypt(vectors.aemk, &line_rpi, line_aem, metadata);
        int8_t tx;
        g_assert_true(prox_metadata_decode(metadata, &tx));
        g_assert_cmpint(tx, ==, -20);
    }
    tool_run_clear(&run);

    /* The last ENIN there is. */
    g_assert_true(run_derive(&run, "--tek", tek, "--start", "4294967295", "--count", "1", NULL));
    g_assert_cmpint(run.status, ==, 0);
    g_assert_true(g_str_has_prefix(run.out, "4294967295 "));
    tool_run_clear(&run);

    g_assert_true(run_derive(&run, "--help", NULL));
    g_assert_cmpint(run.status, ==, 0);
    g_assert_nonnull(strstr(run.out, "--tek"));
    g_assert_nonnull(strstr(run.out, "ENIN RPI AEM"));
    g_assert_nonnull(strstr(run.out, "Example"));
    tool_run_clear(&run);
}

static void assert_usage_error(const char *first, ...)
{
    const char *tool = g_getenv("PROX_TOOL");
    if (tool == NULL) {
        g_test_skip("PROX_TOOL not set");
        return;
    }
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_ptr_array_add(argv, (gpointer)tool);
    g_ptr_array_add(argv, (gpointer) "derive");
    va_list ap;
    va_start(ap, first);
    for (const char *arg = first; arg != NULL; arg = va_arg(ap, const char *))
        g_ptr_array_add(argv, (gpointer)arg);
    va_end(ap);
    g_ptr_array_add(argv, NULL);

    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    g_autoptr(GError) error = NULL;
    int wait_status = 0;
    g_assert_true(g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out,
                               &err, &wait_status, &error));
    g_assert_no_error(error);
    g_autofree char *joined = g_strjoinv(" ", (char **)argv->pdata + 1);
    g_test_message("derive args: %s -> %s", joined, err);
    g_assert_true(WIFEXITED(wait_status));
    g_assert_cmpint(WEXITSTATUS(wait_status), ==, 2);
    g_assert_cmpstr(out, ==, "");
    /* Exactly one line of error. */
    g_assert_true(g_str_has_prefix(err, "prox-tool derive: "));
    g_assert_true(g_str_has_suffix(err, "\n"));
    g_assert_true(strchr(err, '\n') == err + strlen(err) - 1);
}

static void test_tool_derive_bad_args(void)
{
    const char *tek = "75c734c6dd1a782de7a965da5eb93125";
    assert_usage_error(NULL);
    assert_usage_error("--start", "2642976", NULL);
    assert_usage_error("--tek", tek, NULL);
    assert_usage_error("--tek", "75c734c6dd1a782de7a965da5eb931", "--start", "1", NULL);
    assert_usage_error("--tek", "75c734c6dd1a782de7a965da5eb9312g", "--start", "1", NULL);
    assert_usage_error("--tek", tek, "--start", "-1", NULL);
    assert_usage_error("--tek", tek, "--start", "12abc", NULL);
    assert_usage_error("--tek", tek, "--start", "4294967296", NULL);
    assert_usage_error("--tek", tek, "--start", "4294967295", "--count", "2", NULL);
    assert_usage_error("--tek", tek, "--start", "1", "--count", "0", NULL);
    assert_usage_error("--tek", tek, "--start", "1", "--count", "145", NULL);
    assert_usage_error("--tek", tek, "--start", "1", "--count", "", NULL);
    assert_usage_error("--tek", tek, "--start", "1", "--metadata", "400800", NULL);
    assert_usage_error("--tek", tek, "--start", "1", "--metadata", "4008000z", NULL);
    assert_usage_error("--tek", tek, "--start", "1", "extra", NULL);
    assert_usage_error("--tek", tek, "--start", "1", "--bogus", NULL);
    assert_usage_error("--tek", NULL);
}

static void free_vectors(void)
{
    g_array_unref(vectors.rows);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    load_vectors();
    g_test_add_func("/keys/vectors/rpik-aemk", test_vectors_keys);
    g_test_add_func("/keys/vectors/padded-data", test_vectors_padded_data);
    g_test_add_func("/keys/vectors/rows", test_vectors_rows);
    g_test_add_func("/keys/rpi-range/day", test_rpi_range);
    g_test_add_func("/keys/rpi-range/partial", test_rpi_range_partial);
    g_test_add_func("/keys/tek/rolling-start", test_rolling_start);
    g_test_add_func("/keys/tek/covers", test_covers);
    g_test_add_func("/keys/tek/generate", test_tek_generate);
    g_test_add_func("/keys/random/system", test_random_system);
    g_test_add_func("/keys/random/system-threads", test_random_system_threads);
    g_test_add_func("/keys/rotation/extremes", test_rotation_extremes);
    g_test_add_func("/keys/rotation/rejection", test_rotation_rejection);
    g_test_add_func("/keys/rotation/stuck-source", test_rotation_stuck_source);
    g_test_add_func("/keys/rotation/bounds-determinism", test_rotation_bounds_determinism);
    g_test_add_func("/keys/metadata/round-trip", test_metadata);
    g_test_add_func("/keys/metadata/versions", test_metadata_versions);
    g_test_add_func("/keys/broadcast-id-at", test_broadcast_id_at);
    g_test_add_func("/keys/tool/derive-vectors", test_tool_derive_vectors);
    g_test_add_func("/keys/tool/derive-options", test_tool_derive_options);
    g_test_add_func("/keys/tool/derive-bad-args", test_tool_derive_bad_args);
    int status = g_test_run();
    free_vectors();
    return status;
}
