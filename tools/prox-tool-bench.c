/* prox-tool-bench.c - `prox-tool bench`: matching and crypto benchmarks on synthetic data. */
#define G_LOG_DOMAIN "prox-tool"

#include "prox-tool.h"

#include "prox-crypto-fast.h"
#include "prox-match.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* 2021-01-01T00:00:00Z: the workload's first day (ENIN a multiple of 144). */
#define DAY0_ENIN ((uint32_t)(1609459200 / PROX_INTERVAL_SECONDS))
#define WORKLOAD_DAYS 14
/* Keys are generated and fed in chunks of this many (generation is not timed). */
#define KEY_CHUNK 65536

static const char bench_usage[] =
    "Usage: prox-tool bench BENCHMARK [OPTION...]\n"
    "\n"
    "Benchmarks on synthetic data generated in memory; nothing is read or written.\n"
    "\n"
    "Benchmarks:\n"
    "  match    diagnosis keys against observed sightings, 1 thread and all threads\n"
    "  crypto   RPIK (HKDF) and RPI (AES) derivation rate of each implementation\n"
    "\n"
    "Run 'prox-tool bench BENCHMARK --help' for its options.\n";

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double process_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double thread_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, guint n)
{
    qsort(v, n, sizeof *v, compare_doubles);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static char *format_runs(const double *v, guint n)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < n; i++)
        g_string_append_printf(s, "%s%.0f", i ? " " : "", v[i]);
    return g_string_free(s, FALSE);
}

/* splitmix64: a tiny, good-enough generator; the workload is a pure function of the seed. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The implementation --path names (or the default); an exit code when it cannot be used. */
static int crypto_impl_from_option(const char *command, const char *path_name, ProxCryptoImpl *impl)
{
    if (path_name == NULL) {
        *impl = prox_crypto_impl_default();
        return PROX_TOOL_EXIT_OK;
    }
    ProxCryptoPath path;
    if (!prox_crypto_path_from_name(path_name, &path))
        return prox_tool_usage_error(command, "unknown --path '%s' (portable, aesni, vaes)",
                                     path_name);
    if (!prox_crypto_path_impl(path, impl)) {
        fprintf(stderr, "prox-tool %s: this CPU does not support --path %s\n", command, path_name);
        return PROX_TOOL_EXIT_FAILURE;
    }
    return PROX_TOOL_EXIT_OK;
}

/* ---- bench match: the workload ---- */

typedef struct {
    uint64_t seed;
    guint64 n_keys;
    ProxSighting *observed;
    size_t n_observed;
    /* Planted matches: key i's RPI of interval `interval` heard in observed[at]. */
    guint n_planted;
    guint64 *planted_key;
    size_t *planted_at;
    uint32_t *planted_interval;
    int8_t *planted_tx;
} Workload;

/* Key i, a pure function of (seed, i) so chunks can be regenerated for every run: 16
 * random bytes, valid for 144 intervals starting on one of 14 days, 1 in 10 not aligned
 * to 00:00 UTC (the period of every key is 144: the costliest case). */
static void workload_key(uint64_t seed, guint64 i, ProxDiagnosisKey *key)
{
    uint64_t state = seed ^ (i * 0xd1342543de82ef95ull);
    uint64_t a = next_random(&state), b = next_random(&state), c = next_random(&state);
    memset(key, 0, sizeof *key);
    memcpy(key->tek.key, &a, 8);
    memcpy(key->tek.key + 8, &b, 8);
    key->tek.rolling_start = DAY0_ENIN + (uint32_t)(c % WORKLOAD_DAYS) * PROX_TEK_ROLLING_PERIOD;
    if ((c >> 8) % 10 == 0)
        key->tek.rolling_start += (uint32_t)((c >> 16) % PROX_TEK_ROLLING_PERIOD);
    key->tek.rolling_period = PROX_TEK_ROLLING_PERIOD;
    key->transmission_risk_level = 1 + (int32_t)((c >> 32) % 8);
    key->report_type = PROX_REPORT_CONFIRMED_TEST;
}

static void random_sighting(uint64_t *rng, ProxSighting *s, gint64 heard)
{
    uint64_t a = next_random(rng), b = next_random(rng), c = next_random(rng);
    memset(s, 0, sizeof *s);
    memcpy(s->rpi.bytes, &a, 8);
    memcpy(s->rpi.bytes + 8, &b, 8);
    memcpy(s->aem.bytes, &c, 4);
    s->scan_instance_id = (gint64)((c >> 32) % 100000);
    s->first_seen = heard;
    s->last_seen = heard + (gint64)((c >> 40) % 8);
    s->report_count = 1 + (uint32_t)((c >> 48) % 6);
    s->rssi_count = s->report_count;
    s->rssi_min = (int16_t)(-90 + (int)((c >> 52) % 30));
    s->rssi_max = (int16_t)(s->rssi_min + 5);
    s->rssi_mean = (int16_t)(s->rssi_min + 2);
}

static void workload_build(Workload *w, uint64_t seed, guint64 n_keys, size_t n_observed,
                           guint n_planted)
{
    memset(w, 0, sizeof *w);
    w->seed = seed;
    w->n_keys = n_keys;
    w->n_observed = n_observed;
    w->observed = g_new(ProxSighting, MAX(n_observed, 1));
    uint64_t rng = seed ^ 0x5bd1e9955bd1e995ull;
    gint64 t0 = (gint64)DAY0_ENIN * PROX_INTERVAL_SECONDS;
    gint64 span = (gint64)(WORKLOAD_DAYS + 1) * 86400;
    for (size_t i = 0; i < n_observed; i++)
        random_sighting(&rng, &w->observed[i], t0 + (gint64)(next_random(&rng) % (uint64_t)span));

    /* Planted: distinct keys and distinct slots, spread evenly, each heard at a random
     * offset of -12..+12 intervals from its RPI's interval (the window's edges included). */
    n_planted = (guint)MIN((guint64)n_planted, MIN(n_keys, (guint64)n_observed));
    w->n_planted = n_planted;
    w->planted_key = g_new(guint64, MAX(n_planted, 1));
    w->planted_at = g_new(size_t, MAX(n_planted, 1));
    w->planted_interval = g_new(uint32_t, MAX(n_planted, 1));
    w->planted_tx = g_new(int8_t, MAX(n_planted, 1));
    ProxCryptoImpl portable = {PROX_SHA_PORTABLE, PROX_AES_PORTABLE};
    ProxRpiDeriver *d = prox_rpi_deriver_new(portable);
    for (guint p = 0; p < n_planted; p++) {
        guint64 key_stride = n_keys / n_planted, at_stride = n_observed / n_planted;
        guint64 ki = p * key_stride + next_random(&rng) % key_stride;
        size_t at = (size_t)(p * at_stride + next_random(&rng) % at_stride);
        ProxDiagnosisKey key;
        workload_key(seed, ki, &key);
        uint32_t offset = (uint32_t)(next_random(&rng) % key.tek.rolling_period);
        uint32_t interval = key.tek.rolling_start + offset;
        int delta = (int)(next_random(&rng) % 25) - PROX_MATCH_TOLERANCE_INTERVALS;
        gint64 heard = ((gint64)interval + delta) * PROX_INTERVAL_SECONDS +
                       (gint64)(next_random(&rng) % PROX_INTERVAL_SECONDS);
        int8_t tx = (int8_t)(PROX_MATCH_TX_POWER_MIN +
                             (int)(next_random(&rng) %
                                   (PROX_MATCH_TX_POWER_MAX - PROX_MATCH_TX_POWER_MIN + 1)));
        uint8_t rpik[PROX_KEY_LEN], aemk[PROX_KEY_LEN];
        uint8_t meta[PROX_METADATA_LEN] = {0x40, (uint8_t)tx, 0, 0};
        ProxSighting *s = &w->observed[at];
        random_sighting(&rng, s, heard);
        prox_crypto_rpik(PROX_SHA_PORTABLE, key.tek.key, rpik);
        prox_crypto_aemk(PROX_SHA_PORTABLE, key.tek.key, aemk);
        prox_rpi_deriver_rpis(d, rpik, interval, 1, &s->rpi);
        prox_rpi_deriver_aem(d, aemk, &s->rpi, meta, s->aem.bytes);
        w->planted_key[p] = ki;
        w->planted_at[p] = at;
        w->planted_interval[p] = interval;
        w->planted_tx[p] = tx;
    }
    prox_rpi_deriver_free(d);
}

static void workload_clear(Workload *w)
{
    g_free(w->observed);
    g_free(w->planted_key);
    g_free(w->planted_at);
    g_free(w->planted_interval);
    g_free(w->planted_tx);
}

/* Feeds every key (generated chunk by chunk, untimed); returns the wall-clock seconds
 * spent matching and, in *cpu, the CPU seconds of all threads meanwhile. */
static double workload_match(const Workload *w, ProxMatcher *m, ProxDiagnosisKey *chunk,
                             double *cpu)
{
    double spent = 0;
    *cpu = 0;
    for (guint64 base = 0; base < w->n_keys; base += KEY_CHUNK) {
        size_t n = (size_t)MIN((guint64)KEY_CHUNK, w->n_keys - base);
        for (size_t i = 0; i < n; i++)
            workload_key(w->seed, base + i, &chunk[i]);
        double c = process_cpu_seconds(), t = now_seconds();
        prox_matcher_feed(m, chunk, n, (guint)base);
        spent += now_seconds() - t;
        *cpu += process_cpu_seconds() - c;
    }
    return spent;
}

static gboolean same_sighting(const ProxSighting *a, const ProxSighting *b)
{
    return memcmp(a->rpi.bytes, b->rpi.bytes, PROX_RPI_LEN) == 0 &&
           memcmp(a->aem.bytes, b->aem.bytes, PROX_AEM_LEN) == 0 &&
           a->scan_instance_id == b->scan_instance_id && a->first_seen == b->first_seen &&
           a->last_seen == b->last_seen && a->report_count == b->report_count;
}

static gboolean same_results(GArray *a, GArray *b)
{
    if (a->len != b->len)
        return FALSE;
    for (guint i = 0; i < a->len; i++) {
        const ProxMatchedSighting *x = &g_array_index(a, ProxMatchedSighting, i);
        const ProxMatchedSighting *y = &g_array_index(b, ProxMatchedSighting, i);
        if (x->key_index != y->key_index || !same_sighting(&x->sighting, &y->sighting) ||
            memcmp(x->key.tek.key, y->key.tek.key, PROX_KEY_LEN) != 0 ||
            x->rpi_interval != y->rpi_interval || x->tx_power != y->tx_power ||
            memcmp(x->metadata, y->metadata, PROX_METADATA_LEN) != 0)
            return FALSE;
    }
    return TRUE;
}

/* Planted matches found (each exactly as planted); *unexpected counts any other match. */
static guint workload_check(const Workload *w, GArray *results, guint *unexpected)
{
    guint found = 0, p = 0;
    *unexpected = 0;
    /* Both are ordered by key index (planted keys are increasing). */
    for (guint i = 0; i < results->len; i++) {
        const ProxMatchedSighting *r = &g_array_index(results, ProxMatchedSighting, i);
        while (p < w->n_planted && w->planted_key[p] < r->key_index)
            p++;
        if (p < w->n_planted && w->planted_key[p] == r->key_index &&
            same_sighting(&r->sighting, &w->observed[w->planted_at[p]]) &&
            r->rpi_interval == w->planted_interval[p] && r->tx_power == w->planted_tx[p]) {
            found++;
            p++;
        } else {
            (*unexpected)++;
        }
    }
    return found;
}

/* One core's OpenSSL EVP AES-128-ECB rate in 144-block calls (one key's worth of RPIs),
 * timed with `clock`. */
static double evp_ecb_calls_per_second(double seconds, double (*clock)(void))
{
    uint8_t key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    uint8_t in[PROX_MAX_ROLLING_PERIOD * 16] = {0}, out[sizeof in];
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), NULL, key, NULL);
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    guint64 calls = 0;
    double t0 = clock(), t;
    do {
        for (int i = 0; i < 256; i++) {
            int len;
            EVP_EncryptUpdate(ctx, out, &len, in, (int)sizeof in);
            in[0] ^= out[0]; /* chain, so that no call can be skipped */
        }
        calls += 256;
        t = clock() - t0;
    } while (t < seconds);
    EVP_CIPHER_CTX_free(ctx);
    return (double)calls / t;
}

static int bench_match(int argc, char **argv)
{
    const char *command = "bench match";
    gint64 n_keys = 200000, n_observed = 100000, seed = 1, threads = 0, repeat = 5, planted = 1000;
    g_autofree char *path_name = NULL;
    const GOptionEntry entries[] = {
        {"keys", 'k', 0, G_OPTION_ARG_INT64, &n_keys, "Diagnosis keys to match (default 200000)",
         "N"},
        {"observed", 'o', 0, G_OPTION_ARG_INT64, &n_observed,
         "Observed sightings, each a distinct RPI (default 100000)", "M"},
        {"threads", 't', 0, G_OPTION_ARG_INT64, &threads,
         "Threads of the all-threads runs (default: online CPUs)", "T"},
        {"seed", 's', 0, G_OPTION_ARG_INT64, &seed, "Workload seed (default 1)", "S"},
        {"planted", 'p', 0, G_OPTION_ARG_INT64, &planted,
         "Planted matches (default 1000, at most min(N, M))", "K"},
        {"repeat", 'r', 0, G_OPTION_ARG_INT64, &repeat,
         "Timed runs per configuration; medians are reported (default 5)", "R"},
        {"path", 0, 0, G_OPTION_ARG_STRING, &path_name,
         "Crypto path: portable, aesni or vaes (default: the fastest this CPU supports, or "
         "PROX_CRYPTO_PATH)",
         "PATH"},
        {NULL},
    };
    g_autoptr(GOptionContext) context = prox_tool_option_context(
        command, NULL, "Benchmark exposure matching on a synthetic workload.",
        "Builds, in memory, N random diagnosis keys spread over 14 days (rolling period 144,\n"
        "1 in 10 not aligned to 00:00 UTC) and M observed sightings of random RPIs, K of\n"
        "which are planted: the RPI of a key's random interval, heard -12..+12 intervals from\n"
        "it, with an AEM carrying a TX power in -50..+20 dBm. It then matches all N keys\n"
        "against the M sightings R times on 1 thread and R times on T threads (keys fed in\n"
        "chunks of 65536; only matching is timed, not key generation), checks after every\n"
        "run that each planted match was found exactly as planted and nothing else, and\n"
        "that the results of all runs are identical.\n"
        "\n"
        "It also measures one core's OpenSSL EVP AES-128-ECB rate in calls of 144 blocks\n"
        "(one key's RPIs): aes_bound_keys_per_s, the key rate if AES through OpenSSL were\n"
        "the only cost; the VAES path computes its AES faster than that.\n"
        "\n"
        "Output: the workload, each run's keys/s (wall clock), the medians, the keys matched\n"
        "per CPU-second of all threads (equal to the 1-thread rate when the threads scale\n"
        "perfectly and nothing else competes for the cores), and as the last line exactly\n"
        "  RESULT keys_per_s_1t=<n> keys_per_s_all=<n> aes_bound_keys_per_s=<n> "
        "matched=<found>/<planted>\n"
        "\n"
        "Exit status: 0 every planted match found in every run; 1 a planted match was\n"
        "missed, a spurious match reported or the runs disagree; 2 bad arguments.\n"
        "\n"
        "Environment: PROX_CRYPTO_PATH=portable|aesni|vaes and\n"
        "PROX_CRYPTO_SHA=portable|shani|avx512 force an implementation (--path wins).\n"
        "\n"
        "Example:\n"
        "  prox-tool bench match --keys 200000 --observed 100000\n"
        "  /usr/bin/time -v prox-tool bench match --keys 1000000 --observed 1000000 --repeat 1",
        entries);
    if (!prox_tool_parse_options(context, command, &argc, &argv))
        return PROX_TOOL_EXIT_USAGE;
    if (argc != 1)
        return prox_tool_usage_error(command, "unexpected argument '%s'", argv[1]);
    if (n_keys < 1 || n_keys > G_MAXUINT32)
        return prox_tool_usage_error(command, "--keys must be 1..%u", G_MAXUINT32);
    if (n_observed < 1 || n_observed >= G_MAXUINT32)
        return prox_tool_usage_error(command, "--observed must be 1..%u", G_MAXUINT32 - 1);
    if (threads < 0 || threads > 1024)
        return prox_tool_usage_error(command, "--threads must be 0..1024");
    if (repeat < 1 || repeat > 1000)
        return prox_tool_usage_error(command, "--repeat must be 1..1000");
    if (planted < 1 || planted > G_MAXUINT32)
        return prox_tool_usage_error(command, "--planted must be at least 1");
    ProxCryptoImpl impl;
    int status = crypto_impl_from_option(command, path_name, &impl);
    if (status != PROX_TOOL_EXIT_OK)
        return status;
    guint all_threads = threads > 0 ? (guint)threads : MAX(1, g_get_num_processors());

    Workload w;
    workload_build(&w, (uint64_t)seed, (guint64)n_keys, (size_t)n_observed, (guint)planted);
    printf("workload: %" G_GINT64_FORMAT " keys over %d days (period 144), %" G_GINT64_FORMAT
           " observed sightings, %u planted matches, seed %" G_GINT64_FORMAT "\n",
           n_keys, WORKLOAD_DAYS, n_observed, w.n_planted, seed);
    printf("crypto: SHA-256 %s, AES %s; threads: 1 and %u\n", prox_crypto_sha_name(impl.sha),
           prox_crypto_aes_name(impl.aes), all_threads);

    ProxDiagnosisKey *chunk = g_new(ProxDiagnosisKey, KEY_CHUNK);
    guint counts[2] = {1, all_threads};
    double rates[2][1000], cpu_rates[1000], medians[2] = {0, 0};
    guint min_found = w.n_planted;
    gboolean ok = TRUE;
    GArray *first = NULL;
    for (int c = 0; c < 2; c++) {
        g_autoptr(GError) error = NULL;
        double tb = now_seconds();
        g_autoptr(ProxMatcher) m =
            prox_matcher_new(w.observed, w.n_observed, counts[c], &impl, &error);
        if (m == NULL) {
            fprintf(stderr, "prox-tool %s: %s\n", command, error->message);
            ok = FALSE;
            break;
        }
        double build = now_seconds() - tb;
        for (guint r = 0; r < (guint)repeat; r++) {
            double cpu;
            double spent = workload_match(&w, m, chunk, &cpu);
            GArray *results = prox_matcher_finish(m);
            guint unexpected;
            guint found = workload_check(&w, results, &unexpected);
            min_found = MIN(min_found, found);
            if (found < w.n_planted || unexpected > 0) {
                fprintf(stderr,
                        "prox-tool %s: %u thread(s), run %u: found %u of %u planted, %u "
                        "unexpected match(es)\n",
                        command, counts[c], r + 1, found, w.n_planted, unexpected);
                ok = FALSE;
            }
            if (first == NULL) {
                first = results;
            } else {
                if (!same_results(first, results)) {
                    fprintf(stderr, "prox-tool %s: results differ between runs\n", command);
                    ok = FALSE;
                }
                g_array_unref(results);
            }
            rates[c][r] = (double)n_keys / spent;
            cpu_rates[r] = (double)n_keys / cpu;
        }
        ProxMatchStats st;
        prox_matcher_get_stats(m, &st);
        g_autofree char *runs = format_runs(rates[c], (guint)repeat);
        medians[c] = median(rates[c], (guint)repeat);
        printf("%u thread%s: index of %" G_GINT64_FORMAT " sightings built in %.1f ms; keys/s "
               "median %.0f (runs: %s); per CPU-second %.0f; filter passes %.3f per key\n",
               counts[c], counts[c] > 1 ? "s" : "", n_observed, build * 1e3, medians[c], runs,
               median(cpu_rates, (guint)repeat),
               st.keys ? (double)st.candidates / (double)st.keys : 0.0);
        if (c == 0 && all_threads == 1) {
            medians[1] = medians[0];
            break;
        }
    }
    if (first != NULL)
        g_array_unref(first);
    g_free(chunk);

    double evp[1000];
    for (guint r = 0; r < (guint)repeat; r++)
        evp[r] = evp_ecb_calls_per_second(0.2, now_seconds);
    double aes_bound = median(evp, (guint)repeat);
    printf("OpenSSL EVP AES-128-ECB, 144 blocks a call, 1 core: %.2f GB/s = %.0f keys/s\n",
           aes_bound * PROX_MAX_ROLLING_PERIOD * 16 / 1e9, aes_bound);
    if (medians[0] > 0)
        printf("all threads / 1 thread: %.2fx\n", medians[1] / medians[0]);
    printf("RESULT keys_per_s_1t=%.0f keys_per_s_all=%.0f aes_bound_keys_per_s=%.0f "
           "matched=%u/%u\n",
           medians[0], medians[1], aes_bound, min_found, w.n_planted);
    workload_clear(&w);
    return ok ? PROX_TOOL_EXIT_OK : PROX_TOOL_EXIT_FAILURE;
}

/* ---- bench crypto ---- */

static int bench_crypto(int argc, char **argv)
{
    const char *command = "bench crypto";
    gint64 n_keys = 100000, repeat = 5;
    const GOptionEntry entries[] = {
        {"keys", 'k', 0, G_OPTION_ARG_INT64, &n_keys, "Keys per run (default 100000)", "N"},
        {"repeat", 'r', 0, G_OPTION_ARG_INT64, &repeat,
         "Timed runs per implementation; medians are reported (default 5)", "R"},
        {NULL},
    };
    g_autoptr(GOptionContext) context = prox_tool_option_context(
        command, NULL, "Benchmark each RPIK and RPI implementation this CPU supports.",
        "For every SHA-256 implementation: RPIK = HKDF-SHA256(TEK, \"EN-RPIK\") of N random\n"
        "keys, 32 a call. For every AES implementation: the 144 RPIs of N keys. One thread,\n"
        "timed by its CPU time (other load on the machine does not count); medians of R\n"
        "runs, in keys per second. Matching costs about one of each a key plus the lookups;\n"
        "see 'prox-tool bench match'.\n"
        "\n"
        "Exit status: 0 done, 2 bad arguments.",
        entries);
    if (!prox_tool_parse_options(context, command, &argc, &argv))
        return PROX_TOOL_EXIT_USAGE;
    if (argc != 1)
        return prox_tool_usage_error(command, "unexpected argument '%s'", argv[1]);
    if (n_keys < 16 || n_keys > 100000000)
        return prox_tool_usage_error(command, "--keys must be 16..100000000");
    if (repeat < 1 || repeat > 1000)
        return prox_tool_usage_error(command, "--repeat must be 1..1000");

    size_t n = (size_t)n_keys;
    uint8_t(*teks)[PROX_KEY_LEN] = g_malloc(n * PROX_KEY_LEN);
    uint8_t(*rpiks)[PROX_KEY_LEN] = g_malloc(n * PROX_KEY_LEN);
    uint64_t rng = 42;
    for (size_t i = 0; i < n; i++) {
        uint64_t a = next_random(&rng), b = next_random(&rng);
        memcpy(teks[i], &a, 8);
        memcpy(teks[i] + 8, &b, 8);
    }
    double runs[1000];
    for (int s = 0; s < PROX_SHA_N_IMPLS; s++) {
        ProxCryptoImpl impl = {(ProxShaImpl)s, PROX_AES_PORTABLE};
        if (!prox_crypto_sha_supported(impl.sha)) {
            printf("RPIK  SHA-256 %-8s not supported by this CPU\n",
                   prox_crypto_sha_name(impl.sha));
            continue;
        }
        ProxRpiDeriver *d = prox_rpi_deriver_new(impl);
        for (guint r = 0; r < (guint)repeat; r++) {
            double t = thread_cpu_seconds();
            for (size_t i = 0; i < n; i += PROX_RPI_DERIVER_BATCH)
                prox_rpi_deriver_rpiks(d, (const uint8_t(*)[PROX_KEY_LEN])teks[i],
                                       MIN(PROX_RPI_DERIVER_BATCH, n - i), rpiks + i);
            runs[r] = (double)n / (thread_cpu_seconds() - t);
        }
        double med = median(runs, (guint)repeat);
        printf("RPIK  SHA-256 %-8s %10.0f keys/s  %7.1f ns/key\n", prox_crypto_sha_name(impl.sha),
               med, 1e9 / med);
        prox_rpi_deriver_free(d);
    }
    ProxRpi rpis[PROX_MAX_ROLLING_PERIOD];
    for (int a = 0; a < PROX_AES_N_IMPLS; a++) {
        ProxCryptoImpl impl = {PROX_SHA_PORTABLE, (ProxAesImpl)a};
        if (!prox_crypto_aes_supported(impl.aes)) {
            printf("RPIs  AES %-12s not supported by this CPU\n", prox_crypto_aes_name(impl.aes));
            continue;
        }
        ProxRpiDeriver *d = prox_rpi_deriver_new(impl);
        for (guint r = 0; r < (guint)repeat; r++) {
            double t = thread_cpu_seconds();
            for (size_t i = 0; i < n; i++)
                prox_rpi_deriver_rpis(d, rpiks[i], DAY0_ENIN, PROX_MAX_ROLLING_PERIOD, rpis);
            runs[r] = (double)n / (thread_cpu_seconds() - t);
        }
        double med = median(runs, (guint)repeat);
        printf("RPIs  AES %-12s %10.0f keys/s  %7.1f ns/key (144 blocks with key schedule)\n",
               prox_crypto_aes_name(impl.aes), med, 1e9 / med);
        prox_rpi_deriver_free(d);
    }
    for (guint r = 0; r < (guint)repeat; r++)
        runs[r] = evp_ecb_calls_per_second(0.2, thread_cpu_seconds);
    double med = median(runs, (guint)repeat);
    printf("OpenSSL EVP AES-128-ECB, one key, 144 blocks a call: %10.0f calls/s  %7.1f ns/call\n",
           med, 1e9 / med);
    g_free(teks);
    g_free(rpiks);
    return PROX_TOOL_EXIT_OK;
}

int prox_tool_bench_main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(bench_usage, stdout);
        return PROX_TOOL_EXIT_OK;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(bench_usage, stdout);
        return PROX_TOOL_EXIT_OK;
    }
    if (strcmp(argv[1], "match") == 0)
        return bench_match(argc - 1, argv + 1);
    if (strcmp(argv[1], "crypto") == 0)
        return bench_crypto(argc - 1, argv + 1);
    fprintf(stderr, "prox-tool bench: unknown benchmark '%s' (try 'prox-tool bench --help')\n",
            argv[1]);
    return PROX_TOOL_EXIT_USAGE;
}
