/* keyserver-publish.c - how long publishing many keys takes, and what it costs devices
 * (a benchmark, not a test).
 *
 *   keyserver-publish-bench --db NEW.db --out DIR [--keys 1000000] [--now @T]
 *
 * Fills a new database with --keys keys spread over the last 14 days, as imports, then times
 * one publish run (default options: files of up to 100000 keys, Ed25519 signatures), and
 * verifies every file written, timing that too (what all devices together pay per key).
 * Prints keys, files, bytes and bytes per key.
 */
#define G_LOG_DOMAIN "keyserver-publish"

#include "authority-clock.h"
#include "authority-db.h"
#include "authority-publish.h"
#include "prox-export.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static double seconds_since(gint64 t0)
{
    return (double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC;
}

/* n keys, one per person-day over the 14 days before today, inserted in batches of 10000. */
static gboolean fill(AuthorityDb *db, guint n, gint64 now, GError **error)
{
    gint64 today = now / 86400;
    g_autofree ProxDiagnosisKey *batch = g_new0(ProxDiagnosisKey, 10000);
    for (guint done = 0; done < n;) {
        guint count = MIN(10000, n - done);
        for (guint i = 0; i < count; i++) {
            ProxDiagnosisKey *k = &batch[i];
            guint day = (done + i) % 14;
            randombytes_buf(k->tek.key, PROX_KEY_LEN);
            k->tek.rolling_start = (uint32_t)((today - 14 + day) * 144);
            k->tek.rolling_period = 144;
            k->transmission_risk_level = 1 + (int32_t)(day % 8);
            k->report_type = PROX_REPORT_CONFIRMED_TEST;
            k->has_days_since_onset = TRUE;
            k->days_since_onset = (int32_t)day - 10;
        }
        guint inserted = 0;
        if (!authority_db_exec(db, "BEGIN IMMEDIATE", error) ||
            !authority_db_keys_insert(db, batch, count, now - 3600, AUTHORITY_KEY_SOURCE_IMPORT,
                                      &inserted, error) ||
            !authority_db_exec(db, "COMMIT", error))
            return FALSE;
        done += count;
    }
    return TRUE;
}

static gboolean bench(const char *db_path, const char *out_dir, gint keys, gint64 now,
                      GError **error)
{
    /* An in-memory signing key: the benchmark needs no key files. */
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk);
    g_autoptr(ProxExportSigner) signer = prox_export_signer_new_ed25519("bench", "v1", sk, error);
    sodium_memzero(sk, sizeof sk);
    if (signer == NULL)
        return FALSE;
    g_autoptr(ProxExportKeyring) keyring = prox_export_keyring_new();
    if (!prox_export_keyring_add_ed25519(keyring, "bench", "v1", pk, error))
        return FALSE;
    g_autoptr(AuthorityDb) db = authority_db_open(db_path, error);
    if (db == NULL)
        return FALSE;

    gint64 t0 = g_get_monotonic_time();
    if (!fill(db, (guint)keys, now, error))
        return FALSE;
    double fill_s = seconds_since(t0);

    AuthorityPublishOptions options;
    authority_publish_options_init(&options);
    AuthorityPublishResult result;
    t0 = g_get_monotonic_time();
    if (!authority_publish(db, out_dir, &options, signer, now, &result, error))
        return FALSE;
    double publish_s = seconds_since(t0);

    /* What devices do with the files: read, verify, parse. */
    g_autofree char *index_path = g_build_filename(out_dir, AUTHORITY_INDEX_NAME, NULL);
    g_autofree char *index = NULL;
    if (!g_file_get_contents(index_path, &index, NULL, error))
        return FALSE;
    g_auto(GStrv) names = g_strsplit(g_strstrip(index), "\n", -1);
    gint64 bytes = 0;
    guint verified = 0;
    t0 = g_get_monotonic_time();
    for (guint i = 0; names[i] != NULL && names[i][0] != '\0'; i++) {
        g_autofree char *path = g_build_filename(out_dir, names[i], NULL);
        g_autoptr(ProxExport) export = NULL;
        struct stat st;
        if (!prox_export_read(path, keyring, &export, error))
            return FALSE;
        if (stat(path, &st) != 0) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "%s: %s", path, g_strerror(errno));
            return FALSE;
        }
        bytes += st.st_size;
        verified += export->keys->len;
    }
    double verify_s = seconds_since(t0);
    printf("keys %d fill_s %.2f publish_s %.2f files %u published_keys %u padding %u "
           "bytes %" G_GINT64_FORMAT " bytes_per_key %.2f verify_s %.2f verified_keys %u\n",
           keys, fill_s, publish_s, result.files_written, result.real_keys, result.padding_keys,
           bytes, (double)bytes / verified, verify_s, verified);
    if (verified != result.real_keys + result.padding_keys || result.real_keys != (guint)keys) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "verified %u keys, published %u + %u",
                    verified, result.real_keys, result.padding_keys);
        return FALSE;
    }
    return TRUE;
}

int main(int argc, char **argv)
{
    g_autofree char *db_path = NULL;
    g_autofree char *out_dir = NULL;
    g_autofree char *now_text = NULL;
    gint keys = 1000000;
    const GOptionEntry entries[] = {
        {"db", 0, 0, G_OPTION_ARG_FILENAME, &db_path, "A database path that does not exist yet",
         "DB"},
        {"out", 0, 0, G_OPTION_ARG_FILENAME, &out_dir, "Publish directory", "DIR"},
        {"keys", 0, 0, G_OPTION_ARG_INT, &keys, "Keys to publish (default 1000000)", "N"},
        {"now", 0, 0, G_OPTION_ARG_STRING, &now_text, "Current time (default real time)", "TIME"},
        {NULL},
    };
    g_autoptr(GOptionContext) context = g_option_context_new(NULL);
    g_option_context_set_summary(context, "Publish benchmark for prox-authority.");
    g_option_context_add_main_entries(context, entries, NULL);
    g_autoptr(GError) error = NULL;
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    if (!g_option_context_parse(context, &argc, &argv, &error) || db_path == NULL ||
        out_dir == NULL || keys < 1 ||
        (now_text != NULL && !authority_clock_parse_time(now_text, &now, &error))) {
        fprintf(stderr, "keyserver-publish-bench: %s\n",
                error != NULL ? error->message : "--db and --out are required");
        return 2;
    }
    if (sodium_init() < 0 || g_file_test(db_path, G_FILE_TEST_EXISTS)) {
        fprintf(stderr, "keyserver-publish-bench: %s must not exist\n", db_path);
        return 2;
    }

    if (!bench(db_path, out_dir, keys, now, &error)) {
        fprintf(stderr, "keyserver-publish-bench: %s\n", error->message);
        return 1;
    }
    return 0;
}
