/* authority-fs.c - atomic, durable file replacement. */
#define G_LOG_DOMAIN "prox-authority"

#include "authority-fs.h"

#include "prox-types.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static gboolean io_error(GError **error, const char *what, const char *path, int err)
{
    g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "%s %s: %s", what, path, g_strerror(err));
    return FALSE;
}

gboolean authority_fsync_dir(const char *dir, GError **error)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return io_error(error, "cannot open directory", dir, errno);
    if (fsync(fd) != 0) {
        int saved = errno;
        close(fd);
        return io_error(error, "cannot fsync directory", dir, saved);
    }
    close(fd);
    return TRUE;
}

gboolean authority_write_file_atomic(const char *path, const char *contents, size_t len,
                                     mode_t mode, GError **error)
{
    g_autofree char *tmp = g_strconcat(path, ".XXXXXX", NULL);
    int fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, mode);
    if (fd < 0)
        return io_error(error, "cannot create a temporary file for", path, errno);
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, contents + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = n < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            return io_error(error, "cannot write", tmp, saved);
        }
        done += (size_t)n;
    }
    /* mkstemp applies the umask; the file's readers (web server) need exactly `mode`. */
    if (fchmod(fd, mode) != 0 || fsync(fd) != 0) {
        int saved = errno;
        close(fd);
        unlink(tmp);
        return io_error(error, "cannot fsync", tmp, saved);
    }
    if (close(fd) != 0) {
        int saved = errno;
        unlink(tmp);
        return io_error(error, "cannot close", tmp, saved);
    }
    if (rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        return io_error(error, "cannot rename into place", path, saved);
    }
    g_autofree char *dir = g_path_get_dirname(path);
    return authority_fsync_dir(dir, error);
}
