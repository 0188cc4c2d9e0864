/*
 * fileio_fault.c - a file-I/O table that fails on purpose, for tests.
 *
 * It forwards to the system table and injects three kinds of faults:
 *   - the Nth pwrite/pwritev (counted since creation, 1-based) fails with
 *     EIO and writes nothing; the Nth fdatasync/fsync fails with EIO;
 *   - once `enospc_after` bytes were written, writes fail with ENOSPC (the
 *     write that crosses the limit is cut short, as a real disk does);
 *   - a simulated power loss (sl_fileio_fault_crash) that undoes every
 *     write, truncation or extension not yet followed by a sync of its file.
 *
 * Crash model. With record_unsynced, each mutation of a file is preceded by
 * an undo record: the file size before it and the old bytes it overwrites
 * (read back with pread). Files are keyed by (device, inode), so records
 * survive the caller closing and reopening a file; the table keeps its own
 * dup of the first fd it saw so it can still undo after the caller closed
 * it. A successful fdatasync/fsync of any fd of the file drops its records
 * (they are durable); a failed one keeps them. The crash walks each file's
 * records newest first and restores them. With seed != 0 a random prefix of
 * each file's records survives and the first dropped write is torn: a
 * random number of its leading bytes reach the disk, the rest keep their
 * old contents, and the size becomes max(old size, torn end).
 * Directory operations (create, rename, unlink) are not modelled: they are
 * treated as durable at once, which is what fsync of the directory buys.
 *
 * Thread-safe: one mutex around everything, since a sync may run on a
 * thread other than the one writing.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/alloc.h"
#include "common/fileio.h"

typedef enum { UNDO_WRITE, UNDO_SIZE } undo_kind;

typedef struct fault_undo {
    undo_kind kind;
    int64_t off;      /* WRITE: where it wrote; SIZE: the new length */
    int64_t len;      /* WRITE: bytes written */
    int64_t old_size; /* file size before the mutation */
    uint8_t *old;     /* bytes that existed at [off, off + old_len) before */
    size_t old_len;
} fault_undo;

typedef struct fault_file {
    dev_t dev;
    ino_t ino;
    int dupfd;
    fault_undo *undo;
    size_t n, cap;
} fault_file;

typedef struct fault_ctx {
    sl_fileio table; /* first: the sl_fileio pointer handed out is &ctx->table */
    pthread_mutex_t mu;
    sl_fileio_fault_cfg cfg;
    long writes, syncs;
    int64_t bytes;
    fault_file *files;
    size_t nfiles, cap;
    sl_fileio *sys;
} fault_ctx;

static fault_ctx *ctx_of(sl_fileio *io)
{
    return (fault_ctx *)io->ctx;
}

/* The tracked file behind fd, created on first use; NULL if fstat fails. */
static fault_file *file_of(fault_ctx *ctx, int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return NULL;
    for (size_t i = 0; i < ctx->nfiles; i++)
        if (ctx->files[i].dev == st.st_dev && ctx->files[i].ino == st.st_ino) return &ctx->files[i];
    if (ctx->nfiles == ctx->cap) {
        ctx->cap = ctx->cap ? ctx->cap * 2 : 16;
        ctx->files = sl_realloc(ctx->files, ctx->cap * sizeof *ctx->files);
    }
    fault_file *f = &ctx->files[ctx->nfiles++];
    memset(f, 0, sizeof *f);
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    SL_ASSERT(f->dupfd >= 0);
    return f;
}

static int64_t fd_size(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* Records the state of [off, off+len) and the size before a mutation. */
static fault_undo *undo_push(fault_ctx *ctx, int fd, undo_kind kind, int64_t off, int64_t len)
{
    fault_file *f = file_of(ctx, fd);
    if (!f) return NULL;
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->undo = sl_realloc(f->undo, f->cap * sizeof *f->undo);
    }
    fault_undo *u = &f->undo[f->n];
    memset(u, 0, sizeof *u);
    u->kind = kind;
    u->off = off;
    u->len = len;
    u->old_size = fd_size(fd);
    SL_ASSERT(u->old_size >= 0);
    int64_t keep_end = SL_MIN(off + len, u->old_size);
    if (keep_end > off) {
        u->old_len = (size_t)(keep_end - off);
        u->old = sl_malloc(u->old_len);
        ssize_t r = pread(fd, u->old, u->old_len, (off_t)off);
        SL_ASSERT(r == (ssize_t)u->old_len);
    }
    f->n++;
    return u;
}

static void undo_pop(fault_ctx *ctx, int fd)
{
    fault_file *f = file_of(ctx, fd);
    SL_ASSERT(f && f->n > 0);
    f->n--;
    sl_free(f->undo[f->n].old);
}

static void file_clear(fault_file *f)
{
    for (size_t i = 0; i < f->n; i++) sl_free(f->undo[i].old);
    f->n = 0;
}

static int f_open(sl_fileio *io, const char *path, int flags, int mode)
{
    fault_ctx *ctx = ctx_of(io);
    return ctx->sys->open(ctx->sys, path, flags, mode);
}

static int f_close(sl_fileio *io, int fd)
{
    fault_ctx *ctx = ctx_of(io);
    return ctx->sys->close(ctx->sys, fd);
}

static ssize_t f_pread(sl_fileio *io, int fd, void *buf, size_t len, int64_t off)
{
    fault_ctx *ctx = ctx_of(io);
    return ctx->sys->pread(ctx->sys, fd, buf, len, off);
}

/* The common path of pwrite and pwritev: counts, fails, records, writes. */
static ssize_t fault_write(fault_ctx *ctx, int fd, const void *buf, size_t len, int64_t off)
{
    pthread_mutex_lock(&ctx->mu);
    ssize_t n = -1;
    int err = 0;
    ctx->writes++;
    size_t allowed = len;
    if (ctx->cfg.fail_write_nth > 0 && ctx->writes == ctx->cfg.fail_write_nth) {
        err = EIO;
        goto out;
    }
    if (ctx->cfg.enospc_after >= 0) {
        int64_t room = ctx->cfg.enospc_after - ctx->bytes;
        if (room <= 0 && len > 0) {
            err = ENOSPC;
            goto out;
        }
        if ((int64_t)allowed > room) allowed = (size_t)room;
    }
    bool rec = ctx->cfg.record_unsynced && allowed > 0;
    fault_undo *u = rec ? undo_push(ctx, fd, UNDO_WRITE, off, (int64_t)allowed) : NULL;
    n = ctx->sys->pwrite(ctx->sys, fd, buf, allowed, off);
    if (n < 0) err = errno;
    if (n > 0) ctx->bytes += n;
    if (u && n <= 0)
        undo_pop(ctx, fd);
    else if (u)
        u->len = n;
out:
    pthread_mutex_unlock(&ctx->mu);
    if (err) errno = err;
    return n;
}

static ssize_t f_pwrite(sl_fileio *io, int fd, const void *buf, size_t len, int64_t off)
{
    return fault_write(ctx_of(io), fd, buf, len, off);
}

/* Gathered into one buffer so it counts and fails as one write. */
static ssize_t f_pwritev(sl_fileio *io, int fd, const struct iovec *iov, int iovcnt, int64_t off)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
    uint8_t *flat = sl_malloc(total ? total : 1);
    size_t at = 0;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(flat + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    ssize_t n = fault_write(ctx_of(io), fd, flat, total, off);
    int saved = errno;
    sl_free(flat);
    errno = saved;
    return n;
}

static int fault_sync(fault_ctx *ctx, int fd, bool data_only)
{
    pthread_mutex_lock(&ctx->mu);
    int rc = -1, err = 0;
    ctx->syncs++;
    if (ctx->cfg.fail_sync_nth > 0 && ctx->syncs == ctx->cfg.fail_sync_nth) {
        err = EIO;
        goto out;
    }
    rc = data_only ? ctx->sys->fdatasync(ctx->sys, fd) : ctx->sys->fsync(ctx->sys, fd);
    if (rc != 0) {
        err = errno;
        goto out;
    }
    if (ctx->cfg.record_unsynced) {
        fault_file *f = file_of(ctx, fd);
        if (f) file_clear(f);
    }
out:
    pthread_mutex_unlock(&ctx->mu);
    if (err) errno = err;
    return rc;
}

static int f_fdatasync(sl_fileio *io, int fd)
{
    return fault_sync(ctx_of(io), fd, true);
}
static int f_fsync(sl_fileio *io, int fd)
{
    return fault_sync(ctx_of(io), fd, false);
}

static int f_ftruncate(sl_fileio *io, int fd, int64_t len)
{
    fault_ctx *ctx = ctx_of(io);
    pthread_mutex_lock(&ctx->mu);
    fault_undo *u = NULL;
    if (ctx->cfg.record_unsynced) {
        int64_t size = fd_size(fd);
        u = undo_push(ctx, fd, UNDO_SIZE, len, size > len ? size - len : 0);
    }
    int rc = ctx->sys->ftruncate(ctx->sys, fd, len);
    int err = errno;
    if (u && rc != 0) undo_pop(ctx, fd);
    pthread_mutex_unlock(&ctx->mu);
    errno = err;
    return rc;
}

static int f_fallocate(sl_fileio *io, int fd, int64_t off, int64_t len)
{
    fault_ctx *ctx = ctx_of(io);
    pthread_mutex_lock(&ctx->mu);
    int rc = -1, err = ENOSPC;
    if (ctx->cfg.enospc_after >= 0 && ctx->bytes >= ctx->cfg.enospc_after) goto out;
    fault_undo *u = NULL;
    if (ctx->cfg.record_unsynced && fd_size(fd) < off + len) u = undo_push(ctx, fd, UNDO_SIZE, off + len, 0);
    rc = ctx->sys->fallocate(ctx->sys, fd, off, len);
    err = errno;
    if (u && rc != 0) undo_pop(ctx, fd);
out:
    pthread_mutex_unlock(&ctx->mu);
    if (rc != 0) errno = err;
    return rc;
}

static int64_t f_size(sl_fileio *io, int fd)
{
    fault_ctx *ctx = ctx_of(io);
    return ctx->sys->size(ctx->sys, fd);
}

/* Only a hint about the page cache: nothing to inject, nothing a crash could undo. */
static void f_readahead(sl_fileio *io, int fd, int64_t off, int64_t len)
{
    fault_ctx *ctx = ctx_of(io);
    ctx->sys->readahead(ctx->sys, fd, off, len);
}

static int f_unlink(sl_fileio *io, const char *path)
{
    fault_ctx *ctx = ctx_of(io);
    return ctx->sys->unlink(ctx->sys, path);
}

static int f_rename(sl_fileio *io, const char *from, const char *to)
{
    fault_ctx *ctx = ctx_of(io);
    return ctx->sys->rename(ctx->sys, from, to);
}

static int f_mkdir(sl_fileio *io, const char *path, int mode)
{
    fault_ctx *ctx = ctx_of(io);
    return ctx->sys->mkdir(ctx->sys, path, mode);
}

static int f_rmdir(sl_fileio *io, const char *path)
{
    fault_ctx *ctx = ctx_of(io);
    return ctx->sys->rmdir(ctx->sys, path);
}

sl_fileio *sl_fileio_fault_new(const sl_fileio_fault_cfg *cfg)
{
    fault_ctx *ctx = SL_NEW(fault_ctx);
    ctx->table = (sl_fileio){
        .open = f_open,
        .close = f_close,
        .pread = f_pread,
        .pwrite = f_pwrite,
        .pwritev = f_pwritev,
        .fdatasync = f_fdatasync,
        .fsync = f_fsync,
        .ftruncate = f_ftruncate,
        .fallocate = f_fallocate,
        .size = f_size,
        .readahead = f_readahead,
        .unlink = f_unlink,
        .rename = f_rename,
        .mkdir = f_mkdir,
        .rmdir = f_rmdir,
        .ctx = ctx,
    };
    pthread_mutex_init(&ctx->mu, NULL);
    ctx->sys = sl_fileio_system();
    ctx->cfg = *cfg;
    return &ctx->table;
}

static void files_free(fault_ctx *ctx)
{
    for (size_t i = 0; i < ctx->nfiles; i++) {
        file_clear(&ctx->files[i]);
        sl_free(ctx->files[i].undo);
        close(ctx->files[i].dupfd);
    }
    sl_free(ctx->files);
    ctx->files = NULL;
    ctx->nfiles = ctx->cap = 0;
}

void sl_fileio_fault_free(sl_fileio *io)
{
    if (!io) return;
    fault_ctx *ctx = ctx_of(io);
    SL_ASSERT(&ctx->table == io);
    files_free(ctx);
    pthread_mutex_destroy(&ctx->mu);
    sl_free(ctx);
}

void sl_fileio_fault_set(sl_fileio *io, const sl_fileio_fault_cfg *cfg)
{
    fault_ctx *ctx = ctx_of(io);
    pthread_mutex_lock(&ctx->mu);
    if (ctx->cfg.record_unsynced && !cfg->record_unsynced) files_free(ctx);
    ctx->cfg = *cfg;
    pthread_mutex_unlock(&ctx->mu);
}

long sl_fileio_fault_writes(sl_fileio *io)
{
    fault_ctx *ctx = ctx_of(io);
    pthread_mutex_lock(&ctx->mu);
    long n = ctx->writes;
    pthread_mutex_unlock(&ctx->mu);
    return n;
}

long sl_fileio_fault_syncs(sl_fileio *io)
{
    fault_ctx *ctx = ctx_of(io);
    pthread_mutex_lock(&ctx->mu);
    long n = ctx->syncs;
    pthread_mutex_unlock(&ctx->mu);
    return n;
}

/* xorshift32: deterministic per seed, independent of rand()'s global state. */
static uint32_t rng_next(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Puts back the bytes at [from, off+old_len) and cuts the size to `size`. */
static void undo_apply(int fd, const fault_undo *u, int64_t from, int64_t size)
{
    int64_t old_end = u->off + (int64_t)u->old_len;
    if (from < old_end) {
        ssize_t w = pwrite(fd, u->old + (from - u->off), (size_t)(old_end - from), (off_t)from);
        SL_ASSERT(w == old_end - from);
    }
    int64_t cur = fd_size(fd);
    SL_ASSERT(cur >= 0);
    if (cur != size) {
        int rc = ftruncate(fd, (off_t)size);
        SL_ASSERT(rc == 0);
    }
}

/* A SIZE record: restore the old length, then the bytes a shrink cut off. */
static void undo_size(int fd, const fault_undo *u)
{
    int rc = ftruncate(fd, (off_t)u->old_size);
    SL_ASSERT(rc == 0);
    if (u->old_len) {
        ssize_t w = pwrite(fd, u->old, u->old_len, (off_t)u->off);
        SL_ASSERT(w == (ssize_t)u->old_len);
    }
}

static void crash_file(fault_file *f, uint32_t *rng, bool random)
{
    size_t keep = random ? rng_next(rng) % (f->n + 1) : 0;
    for (size_t i = f->n; i-- > keep;) {
        const fault_undo *u = &f->undo[i];
        bool torn = random && i == keep;
        if (u->kind == UNDO_SIZE) {
            if (!torn || (rng_next(rng) & 1)) undo_size(f->dupfd, u);
            continue;
        }
        int64_t t = torn && u->len > 0 ? (int64_t)(rng_next(rng) % (uint32_t)u->len) : 0;
        undo_apply(f->dupfd, u, u->off + t, SL_MAX(u->old_size, u->off + t));
    }
}

void sl_fileio_fault_crash(sl_fileio *io, unsigned seed)
{
    fault_ctx *ctx = ctx_of(io);
    pthread_mutex_lock(&ctx->mu);
    uint32_t rng = seed ? seed : 1;
    for (int i = 0; i < 4; i++) rng_next(&rng);
    for (size_t i = 0; i < ctx->nfiles; i++) crash_file(&ctx->files[i], &rng, seed != 0);
    files_free(ctx);
    pthread_mutex_unlock(&ctx->mu);
}
