/*
 * fileio.c - the system file-I/O table: a thin shim over the kernel calls.
 *
 * Every function keeps POSIX semantics (-1 and errno on failure) so the
 * caller can log strerror(errno) with the path it knows. EINTR is retried
 * here, once and for all, so callers never see it. The table is a static
 * constant shared by every user: it holds no state.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/fileio.h"
#include <string.h>
#include "common/alloc.h"
#include "common/error.h"

static int sys_open(sl_fileio *io, const char *path, int flags, int mode)
{
    (void)io;
    int fd;
    do {
        fd = open(path, flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

static int sys_close(sl_fileio *io, int fd)
{
    (void)io;
    /* Linux closes the fd even when close() reports EINTR: never retry. */
    return close(fd);
}

static ssize_t sys_pread(sl_fileio *io, int fd, void *buf, size_t len, int64_t off)
{
    (void)io;
    ssize_t n;
    do {
        n = pread(fd, buf, len, (off_t)off);
    } while (n < 0 && errno == EINTR);
    return n;
}

static ssize_t sys_pwrite(sl_fileio *io, int fd, const void *buf, size_t len, int64_t off)
{
    (void)io;
    ssize_t n;
    do {
        n = pwrite(fd, buf, len, (off_t)off);
    } while (n < 0 && errno == EINTR);
    return n;
}

static ssize_t sys_pwritev(sl_fileio *io, int fd, const struct iovec *iov, int iovcnt, int64_t off)
{
    (void)io;
    ssize_t n;
    do {
        n = pwritev(fd, iov, iovcnt, (off_t)off);
    } while (n < 0 && errno == EINTR);
    return n;
}

static int sys_fdatasync(sl_fileio *io, int fd)
{
    (void)io;
    int rc;
    do {
        rc = fdatasync(fd);
    } while (rc < 0 && errno == EINTR);
    return rc;
}

static int sys_fsync(sl_fileio *io, int fd)
{
    (void)io;
    int rc;
    do {
        rc = fsync(fd);
    } while (rc < 0 && errno == EINTR);
    return rc;
}

static int sys_ftruncate(sl_fileio *io, int fd, int64_t len)
{
    (void)io;
    int rc;
    do {
        rc = ftruncate(fd, (off_t)len);
    } while (rc < 0 && errno == EINTR);
    return rc;
}

static int sys_fallocate(sl_fileio *io, int fd, int64_t off, int64_t len)
{
    (void)io;
    int rc;
    do {
        rc = fallocate(fd, 0, (off_t)off, (off_t)len);
    } while (rc < 0 && errno == EINTR);
    return rc;
}

static void sys_readahead(sl_fileio *io, int fd, int64_t off, int64_t len)
{
    (void)io;
    (void)posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
}

static int64_t sys_size(sl_fileio *io, int fd)
{
    (void)io;
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    return (int64_t)st.st_size;
}

static int sys_unlink(sl_fileio *io, const char *path)
{
    (void)io;
    return unlink(path);
}

static int sys_rename(sl_fileio *io, const char *from, const char *to)
{
    (void)io;
    return rename(from, to);
}

static int sys_mkdir(sl_fileio *io, const char *path, int mode)
{
    (void)io;
    return mkdir(path, (mode_t)mode);
}

static int sys_rmdir(sl_fileio *io, const char *path)
{
    (void)io;
    return rmdir(path);
}

static sl_fileio system_table = {
    .open = sys_open,
    .close = sys_close,
    .pread = sys_pread,
    .pwrite = sys_pwrite,
    .pwritev = sys_pwritev,
    .fdatasync = sys_fdatasync,
    .fsync = sys_fsync,
    .ftruncate = sys_ftruncate,
    .fallocate = sys_fallocate,
    .size = sys_size,
    .readahead = sys_readahead,
    .unlink = sys_unlink,
    .rename = sys_rename,
    .mkdir = sys_mkdir,
    .rmdir = sys_rmdir,
    .ctx = NULL,
};

sl_fileio *sl_fileio_system(void)
{
    return &system_table;
}

int sl_fileio_write_atomic(sl_fileio *io, const char *path, const char *tmp, const void *data, size_t len)
{
    int rc = SL_EIO;
    int fd = io->open(io, tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) return SL_EIO;
    bool ok = io->pwrite(io, fd, data, len, 0) == (ssize_t)len && io->fdatasync(io, fd) == 0;
    io->close(io, fd);
    if (!ok || io->rename(io, tmp, path) != 0) return SL_EIO;
    const char *slash = strrchr(path, '/');
    char *dir = slash ? sl_strndup(path, (size_t)(slash - path)) : sl_strdup(".");
    int dfd = io->open(io, dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY, 0);
    if (dfd >= 0) {
        rc = io->fsync(io, dfd) == 0 ? 0 : SL_EIO;
        io->close(io, dfd);
    }
    sl_free(dir);
    return rc;
}

int sl_fileio_read_all(sl_fileio *io, const char *path, size_t max, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = io->open(io, path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return errno == ENOENT ? SL_ENOENT : SL_EIO;
    int64_t size = io->size(io, fd);
    int rc = size < 0 ? SL_EIO : (uint64_t)size > max ? SL_ETOOBIG : 0;
    uint8_t *buf = rc ? NULL : sl_malloc((size_t)size + 1);
    for (int64_t done = 0; !rc && done < size;) {
        ssize_t n = io->pread(io, fd, buf + done, (size_t)(size - done), done);
        if (n <= 0) rc = SL_EIO;
        else done += n;
    }
    io->close(io, fd);
    if (rc) {
        sl_free(buf);
        return rc;
    }
    *data = buf;
    *len = (size_t)size;
    return 0;
}
