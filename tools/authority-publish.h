/* authority-publish.h - turning stored keys into signed key lists on disk (PROTOCOL.md §5).
 *
 * One publish run, under an exclusive lock on OUT/.publish.lock so prox-authority and the
 * key server's schedule never interleave:
 *  1. refuses to run when "now" is before the last run (the index must never go backwards);
 *  2. retention: forgets runs older than keep_days (their keys go with them), keys that
 *     ended more than keep_days ago unpublished, and codes that expired that long ago;
 *  3. takes the unpublished keys whose rolling period ended at least `embargo` seconds ago
 *     (a device may keep broadcasting a key's last RPI until its next rotation, up to
 *     PROX_ROTATION_MAX_SECONDS later), pads them with fake keys up to min_keys (plus a
 *     random 0..padding_jitter), shuffles,
 *     and writes them as signed export zips of at most max_keys_per_file keys each, named
 *     "<run time, 10 digits>-<run id, 8 digits>-<batch number, 4 digits>.zip" so names sort
 *     by time; each file is written to a temporary name, fsynced and renamed, then the
 *     directory is fsynced;
 *  4. records the run and marks its keys published, in one transaction;
 *  5. rewrites index.txt (oldest file first, one name a line) only when it changes, after
 *     checking every file it names is there, atomically (temporary file, fsync, rename,
 *     directory fsync);
 *  6. only then deletes files the index no longer names, and leftovers of interrupted runs.
 * A crash at any point leaves an index that names only complete files; the next run
 * repairs the rest. With nothing new, a run changes nothing.
 *
 * A run with no publishable keys and no publishable warnings writes no file: padding hides
 * how many keys a file has, not whether anyone reported since the last run.
 *
 * Venue warnings (authority-venue.h: imported ones and reported check-ins) are signed into
 * the run's first file (export field 100) and marked published in the same transaction as
 * the keys. A run with warnings but no keys writes one file without keys (and no padding:
 * fakes copy real keys' fields).
 */
#pragma once

#include "authority-db.h"
#include "prox-export.h"

G_BEGIN_DECLS

#define AUTHORITY_INDEX_NAME "index.txt"
#define AUTHORITY_LOCK_NAME ".publish.lock"
/* 1000 keys cost a device ~19 KB per file and hide any count below ~70 reporters (at 14 keys
 * each). */
#define AUTHORITY_PUBLISH_DEFAULT_MIN_KEYS 1000
/* Padding goes to min_keys plus a random 0..jitter more, so that a file's size does not say
 * whether it was padded (GAEN's reference server: 1000 and 100, too). */
#define AUTHORITY_PUBLISH_DEFAULT_PADDING_JITTER 100
#define AUTHORITY_PUBLISH_DEFAULT_KEEP_DAYS 14
#define AUTHORITY_PUBLISH_DEFAULT_EMBARGO 1200
/* ~3 MB files: small enough for a phone to fetch and verify in one go. */
#define AUTHORITY_PUBLISH_DEFAULT_MAX_KEYS_PER_FILE 100000
#define AUTHORITY_PUBLISH_MAX_FILES_PER_RUN 9999

typedef struct {
    gint min_keys;
    gint padding_jitter;
    gint keep_days;
    gint64 embargo; /* seconds */
    gint max_keys_per_file;
    char *region; /* NULL: none */
} AuthorityPublishOptions;

void authority_publish_options_init(AuthorityPublishOptions *options);
void authority_publish_options_clear(AuthorityPublishOptions *options);
/* --min-keys, --padding-jitter, --keep-days, --embargo, --max-keys-per-file, --region,
 * writing into options;
 * free with g_free. */
GOptionEntry *authority_publish_option_entries(AuthorityPublishOptions *options);
gboolean authority_publish_options_check(const AuthorityPublishOptions *options, GError **error);

typedef struct {
    guint files_written;
    guint real_keys;
    guint padding_keys;
    guint warnings; /* venue warnings signed into the run's first file */
    guint files_removed;
    gboolean index_written;
} AuthorityPublishResult;

gboolean authority_publish(AuthorityDb *db, const char *out_dir,
                           const AuthorityPublishOptions *options, const ProxExportSigner *signer,
                           gint64 now, AuthorityPublishResult *result, GError **error);

/* TRUE for names publish writes ("1589990400-00000001-0001.zip"); *temporary set for the
 * temporary names of files being written. */
gboolean authority_publish_is_export_name(const char *name, gboolean *temporary);

G_END_DECLS
