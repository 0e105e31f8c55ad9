/* test-store-durability.c - a store writer killed at random points loses nothing it reported
 * as committed and never leaves a partial batch.
 *
 * The parent forks a writer that commits numbered batches of sightings and, after each
 * commit returns, writes the batch number to a pipe. The parent reads a random number of
 * reports, waits a random few microseconds (only to spread the kill point, never to wait
 * for something), SIGKILLs the writer, reads the remaining reports until EOF, then checks
 * the database. Seed: PROX_DURABILITY_SEED; iterations: PROX_DURABILITY_ITERATIONS.
 */
#include "prox-store.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define T0 ((gint64)1700006400)
#define ROWS_PER_BATCH 48
#define MAX_BATCHES 1000000 /* never reached: the parent always kills first */
#define DEFAULT_ITERATIONS 60
#define MAX_REPORTS_BEFORE_KILL 12
#define MAX_KILL_DELAY_US 4000
#define FRESH_DB_EVERY 5 /* otherwise the next writer continues the killed one's store */

static const uint8_t magic[4] = {0xd0, 0x0d, 0xbe, 0xef};

static ProxRpi batch_rpi(guint32 batch, guint16 row)
{
    ProxRpi rpi = {{0}};
    memcpy(rpi.bytes, magic, 4);
    for (guint i = 0; i < 4; i++)
        rpi.bytes[4 + i] = (uint8_t)(batch >> (8 * i));
    rpi.bytes[8] = (uint8_t)row;
    rpi.bytes[9] = (uint8_t)(row >> 8);
    return rpi;
}

static ProxRpi counter_rpi(void)
{
    ProxRpi rpi;
    memset(rpi.bytes, 0xff, sizeof rpi.bytes);
    return rpi;
}

static int row_rssi(guint16 row)
{
    return -30 - (int)(row % 60);
}

static gint64 batch_time(guint32 batch)
{
    return T0 + (gint64)batch * 10;
}

/* Child: commit batches first_batch, first_batch + 1, ... until killed. */
G_GNUC_NORETURN static void run_writer(const char *path, guint32 first_batch, int report_fd)
{
    GError *error = NULL;
    ProxStore *store = prox_store_open(path, NULL, &error);
    if (store == NULL) {
        g_printerr("writer: %s\n", error->message);
        _exit(2);
    }
    ProxSightingBatch *batch = prox_sighting_batch_new();
    ProxRpi counter = counter_rpi();
    ProxAem aem = {{1, 2, 3, 4}};
    gint64 counter_scan = 0;
    if (!prox_store_scan_begin(store, T0, &counter_scan, &error)) {
        g_printerr("writer: %s\n", error->message);
        _exit(2);
    }
    for (guint32 b = first_batch; b < first_batch + MAX_BATCHES; b++) {
        gint64 now = batch_time(b);
        gint64 scan = 0;
        if (!prox_store_scan_begin(store, now, &scan, &error)) {
            g_printerr("writer: %s\n", error->message);
            _exit(2);
        }
        for (guint16 row = 0; row < ROWS_PER_BATCH; row++) {
            ProxRpi rpi = batch_rpi(b, row);
            prox_sighting_batch_add(batch, scan, &rpi, &aem, row_rssi(row), now);
            prox_sighting_batch_add(batch, scan, &rpi, &aem, PROX_RSSI_UNKNOWN, now + 1);
            prox_sighting_batch_add(batch, scan, &rpi, &aem, row_rssi(row) - 10, now + 2);
        }
        /* Merges into an existing row: its count must equal the number of batches. */
        prox_sighting_batch_add(batch, counter_scan, &counter, &aem, -50, now);
        if (!prox_store_commit_sightings(store, batch, &error)) {
            g_printerr("writer: %s\n", error->message);
            _exit(2);
        }
        if (write(report_fd, &b, sizeof b) != (ssize_t)sizeof b)
            _exit(3);
    }
    _exit(0);
}

/* Reads one 4-byte report; FALSE at EOF. Pipe writes of 4 bytes are atomic. */
static gboolean read_report(int fd, guint32 *batch)
{
    for (;;) {
        ssize_t n = read(fd, batch, sizeof *batch);
        if (n == (ssize_t)sizeof *batch)
            return TRUE;
        if (n == 0)
            return FALSE;
        if (n < 0 && errno == EINTR)
            continue;
        g_error("reading the writer's reports: %s", n < 0 ? g_strerror(errno) : "short read");
    }
}

typedef struct {
    guint rows;
    gboolean bad; /* a row whose aggregate is not exactly what the writer wrote */
} BatchSeen;

/* Checks the store after a kill; returns the highest batch present (0 if none). */
static guint32 verify(const char *path, guint32 first_batch, guint32 last_reported,
                      gboolean reported_any)
{
    GError *error = NULL;
    ProxStore *store = prox_store_open(path, NULL, &error);
    g_assert_no_error(error);
    g_assert_true(prox_store_integrity_check(store, &error));
    g_assert_no_error(error);

    g_autoptr(GArray) sightings = NULL;
    g_assert_true(prox_store_load_sightings(store, G_MININT64, G_MAXINT64, &sightings, &error));
    g_assert_no_error(error);
    g_autoptr(GHashTable) batches = g_hash_table_new_full(NULL, NULL, NULL, g_free);
    ProxRpi counter = counter_rpi();
    guint64 counter_reports = 0;
    for (guint i = 0; i < sightings->len; i++) {
        const ProxSighting *s = &g_array_index(sightings, ProxSighting, i);
        if (memcmp(s->rpi.bytes, counter.bytes, PROX_RPI_LEN) == 0) {
            counter_reports += s->report_count;
            continue;
        }
        g_assert_cmpmem(s->rpi.bytes, 4, magic, 4);
        guint32 b = 0;
        for (guint k = 0; k < 4; k++)
            b |= (guint32)s->rpi.bytes[4 + k] << (8 * k);
        guint16 row = (guint16)(s->rpi.bytes[8] | s->rpi.bytes[9] << 8);
        BatchSeen *seen = g_hash_table_lookup(batches, GUINT_TO_POINTER(b));
        if (seen == NULL) {
            seen = g_new0(BatchSeen, 1);
            g_hash_table_insert(batches, GUINT_TO_POINTER(b), seen);
        }
        seen->rows++;
        int rssi = row_rssi(row);
        if (row >= ROWS_PER_BATCH || s->report_count != 3 || s->rssi_count != 2 ||
            s->rssi_max != rssi || s->rssi_min != rssi - 10 || s->rssi_mean != rssi - 5 ||
            s->first_seen != batch_time(b) || s->last_seen != batch_time(b) + 2)
            seen->bad = TRUE;
    }

    /* Every present batch is complete and exact, and they are 1..highest without gaps. */
    guint32 highest = 0;
    GHashTableIter iter;
    gpointer key, value;
    g_hash_table_iter_init(&iter, batches);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        guint32 b = GPOINTER_TO_UINT(key);
        const BatchSeen *seen = value;
        if (seen->rows != ROWS_PER_BATCH || seen->bad)
            g_error("batch %u is partial or wrong: %u of %u rows%s", b, seen->rows, ROWS_PER_BATCH,
                    seen->bad ? ", bad aggregate" : "");
        highest = MAX(highest, b);
    }
    g_assert_cmpuint(g_hash_table_size(batches), ==, highest);
    /* Each batch merged one report into the counter row in the same transaction. */
    g_assert_cmpuint(counter_reports, ==, highest);

    /* What the previous writers left is still there. */
    g_assert_cmpuint(highest + 1, >=, first_batch);
    /* Everything reported is there; at most the one in-flight commit beyond it. */
    if (reported_any) {
        g_assert_cmpuint(highest, >=, last_reported);
        g_assert_cmpuint(highest, <=, last_reported + 1);
    } else {
        g_assert_cmpuint(highest, <=, first_batch);
    }
    prox_store_close(store);
    return highest;
}

static void remove_store_files(const char *path)
{
    const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (guint i = 0; i < G_N_ELEMENTS(suffixes); i++) {
        g_autofree char *p = g_strconcat(path, suffixes[i], NULL);
        g_unlink(p);
    }
}

static void test_kill(void)
{
    const char *seed_env = g_getenv("PROX_DURABILITY_SEED");
    guint32 seed =
        seed_env != NULL ? (guint32)g_ascii_strtoull(seed_env, NULL, 10) : (guint32)g_random_int();
    const char *iter_env = g_getenv("PROX_DURABILITY_ITERATIONS");
    guint iterations =
        iter_env != NULL ? (guint)g_ascii_strtoull(iter_env, NULL, 10) : DEFAULT_ITERATIONS;
    g_test_message("seed %u (set PROX_DURABILITY_SEED=%u to repeat), %u iterations", seed, seed,
                   iterations);
    g_autoptr(GRand) rand = g_rand_new_with_seed(seed);

    GError *error = NULL;
    g_autofree char *dir = g_dir_make_tmp("test-store-durability-XXXXXX", &error);
    g_assert_no_error(error);
    g_autofree char *path = g_build_filename(dir, "prox.db", NULL);

    guint32 highest = 0;
    guint64 total_reports = 0;
    gint64 report_time_us = 0;
    guint kills_mid_run = 0;
    guint committed_unreported = 0; /* killed between COMMIT and the report */
    for (guint it = 0; it < iterations; it++) {
        if (it % FRESH_DB_EVERY == 0) {
            remove_store_files(path);
            highest = 0;
        }
        guint32 first_batch = highest + 1;
        guint want_reports = (guint)g_rand_int_range(rand, 0, MAX_REPORTS_BEFORE_KILL + 1);
        guint delay_us = (guint)g_rand_int_range(rand, 0, MAX_KILL_DELAY_US + 1);

        int fds[2];
        g_assert_cmpint(pipe(fds), ==, 0);
        pid_t pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
            close(fds[0]);
            run_writer(path, first_batch, fds[1]);
        }
        close(fds[1]);

        guint32 last_reported = 0;
        gboolean reported_any = FALSE;
        guint32 b = 0;
        gint64 started = g_get_monotonic_time();
        for (guint n = 0; n < want_reports; n++) {
            if (!read_report(fds[0], &b)) {
                int status = 0;
                waitpid(pid, &status, 0);
                g_error("writer ended before report %u (status %d)", n, status);
            }
            g_assert_cmpuint(b, ==, reported_any ? last_reported + 1 : first_batch);
            last_reported = b;
            reported_any = TRUE;
        }
        if (want_reports > 0) {
            report_time_us += g_get_monotonic_time() - started;
            total_reports += want_reports;
        }
        /* Only spreads the kill point over the writer's loop; the pipe is the sync. */
        if (delay_us > 0)
            g_usleep(delay_us);
        g_assert_cmpint(kill(pid, SIGKILL), ==, 0);
        int status = 0;
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        /* Commits reported between our last read and the kill. */
        while (read_report(fds[0], &b)) {
            g_assert_cmpuint(b, ==, reported_any ? last_reported + 1 : first_batch);
            last_reported = b;
            reported_any = TRUE;
            kills_mid_run++;
        }
        close(fds[0]);

        highest = verify(path, first_batch, last_reported, reported_any);
        if (highest == (reported_any ? last_reported + 1 : first_batch))
            committed_unreported++;
    }
    if (total_reports > 0)
        g_test_message("%" G_GUINT64_FORMAT " commits observed, %.2f ms per batch "
                       "(scan_begin + commit of %u sightings, synchronous=FULL)",
                       total_reports, report_time_us / 1000.0 / (double)total_reports,
                       ROWS_PER_BATCH + 1);
    g_test_message("%u commits were reported after the kill decision; %u kills fell between a "
                   "commit and its report",
                   kills_mid_run, committed_unreported);
    remove_store_files(path);
    g_rmdir(dir);
}

/* Measures what synchronous=FULL costs over NORMAL for the daemon's write pattern. */
static void test_commit_cost(void)
{
    GError *error = NULL;
    g_autofree char *dir = g_dir_make_tmp("test-store-durability-XXXXXX", &error);
    g_assert_no_error(error);
    g_autofree char *path = g_build_filename(dir, "prox.db", NULL);
    double ms[2];
    for (guint mode = 0; mode < 2; mode++) {
        remove_store_files(path);
        ProxStoreOptions opts = {.fast_sync = mode == 1};
        ProxStore *store = prox_store_open(path, &opts, &error);
        g_assert_no_error(error);
        g_autoptr(ProxSightingBatch) batch = prox_sighting_batch_new();
        ProxAem aem = {{0}};
        const guint rounds = 30;
        gint64 started = g_get_monotonic_time();
        for (guint32 b = 1; b <= rounds; b++) {
            gint64 scan = 0;
            g_assert_true(prox_store_scan_begin(store, batch_time(b), &scan, &error));
            for (guint16 row = 0; row < ROWS_PER_BATCH; row++) {
                ProxRpi rpi = batch_rpi(b, row);
                prox_sighting_batch_add(batch, scan, &rpi, &aem, -60, batch_time(b));
            }
            g_assert_true(prox_store_commit_sightings(store, batch, &error));
            g_assert_true(prox_store_scan_end(store, scan, batch_time(b) + 5, &error));
            g_assert_no_error(error);
        }
        ms[mode] = (g_get_monotonic_time() - started) / 1000.0 / rounds;
        guint64 n = 0;
        g_assert_true(prox_store_count_encounters(store, T0, T0 + 1000, &n, &error));
        g_assert_cmpuint(n, ==, rounds * ROWS_PER_BATCH);
        prox_store_close(store);
    }
    g_test_message("scan_begin + commit %u sightings + scan_end: %.2f ms with synchronous=FULL, "
                   "%.2f ms with NORMAL",
                   ROWS_PER_BATCH, ms[0], ms[1]);
    remove_store_files(path);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/store-durability/sigkill", test_kill);
    g_test_add_func("/store-durability/commit-cost", test_commit_cost);
    return g_test_run();
}
