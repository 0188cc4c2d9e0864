/*
 * fileio.h - every file operation of the data path goes through this table.
 *
 * The functions have POSIX semantics (return -1 and set errno on failure),
 * so the system table is a thin shim and callers log strerror(errno). Tests
 * swap in the fault table (sl_fileio_fault_new) to make the Nth write or
 * sync fail, to fill the disk after N bytes, and to simulate a crash that
 * drops every byte written since the last fdatasync of its file.
 */
#ifndef SL_COMMON_FILEIO_H
#define SL_COMMON_FILEIO_H

#include <sys/types.h>
#include <sys/uio.h>
#include "common/base.h"

typedef struct sl_fileio sl_fileio;
struct sl_fileio {
    int (*open)(sl_fileio *io, const char *path, int flags, int mode);
    int (*close)(sl_fileio *io, int fd);
    ssize_t (*pread)(sl_fileio *io, int fd, void *buf, size_t len, int64_t off);
    ssize_t (*pwrite)(sl_fileio *io, int fd, const void *buf, size_t len, int64_t off);
    ssize_t (*pwritev)(sl_fileio *io, int fd, const struct iovec *iov, int iovcnt, int64_t off);
    int (*fdatasync)(sl_fileio *io, int fd);
    int (*fsync)(sl_fileio *io, int fd);               /* also used on directories */
    int (*ftruncate)(sl_fileio *io, int fd, int64_t len);
    /* Reserve [off, off+len) so later writes there do not extend the file. */
    int (*fallocate)(sl_fileio *io, int fd, int64_t off, int64_t len);
    int64_t (*size)(sl_fileio *io, int fd);            /* -1 on error */
    /* A hint: start reading [off, off+len) into the page cache in the background. Never fails. */
    void (*readahead)(sl_fileio *io, int fd, int64_t off, int64_t len);
    int (*unlink)(sl_fileio *io, const char *path);
    int (*rename)(sl_fileio *io, const char *from, const char *to);
    int (*mkdir)(sl_fileio *io, const char *path, int mode);
    int (*rmdir)(sl_fileio *io, const char *path);     /* an empty directory */
    void *ctx;                                         /* implementation state */
};

/* The kernel's file I/O. The returned table is shared and immutable. */
sl_fileio *sl_fileio_system(void);

/* Replaces `path` with `len` bytes, crash-safely: written to `tmp`, fdatasync'ed, renamed over path, the
   directory fsync'ed. 0 or SL_EIO (errno tells why). */
int sl_fileio_write_atomic(sl_fileio *io, const char *path, const char *tmp, const void *data, size_t len);
/* Reads a whole file of at most `max` bytes into fresh memory (*data, caller frees with sl_free).
   0, SL_ENOENT (no such file), SL_ETOOBIG (larger than max) or SL_EIO. */
int sl_fileio_read_all(sl_fileio *io, const char *path, size_t max, uint8_t **data, size_t *len);

/* Fault-injecting table over the system one (for tests). */
typedef struct sl_fileio_fault_cfg {
    long fail_write_nth;    /* the Nth pwrite/pwritev (1-based) fails with EIO; 0 = never */
    long fail_sync_nth;     /* the Nth fdatasync/fsync fails with EIO; 0 = never */
    int64_t enospc_after;   /* writes fail with ENOSPC once this many bytes were written; -1 = never */
    bool record_unsynced;   /* remember unsynced writes so sl_fileio_fault_crash can drop them */
} sl_fileio_fault_cfg;

sl_fileio *sl_fileio_fault_new(const sl_fileio_fault_cfg *cfg);
void sl_fileio_fault_free(sl_fileio *io);
void sl_fileio_fault_set(sl_fileio *io, const sl_fileio_fault_cfg *cfg);
/* Counts since creation. */
long sl_fileio_fault_writes(sl_fileio *io);
long sl_fileio_fault_syncs(sl_fileio *io);
/*
 * Simulates a power loss: undoes unsynced writes of every file. With
 * seed != 0 a random prefix of each file's unsynced writes survives and the
 * next one is torn at a random byte, as a real disk may do.
 */
void sl_fileio_fault_crash(sl_fileio *io, unsigned seed);

#endif
