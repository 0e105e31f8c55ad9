/* authority-fs.h - crash-safe file replacement for files that web servers and tests read
 * while we write them (index.txt, the key server's port file). */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* Writes contents to a temporary file in path's directory, fsyncs it, renames it over path
 * and fsyncs the directory: a reader sees the old file or the new one, never a part, and the
 * new one survives a power cut once this returns. */
gboolean authority_write_file_atomic(const char *path, const char *contents, size_t len,
                                     mode_t mode, GError **error);

/* fsync of a directory, so renames and unlinks in it are durable. */
gboolean authority_fsync_dir(const char *dir, GError **error);

G_END_DECLS
