/*
 * test_fileio.c - the system file-I/O table and the fault table: Nth
 * write/sync failures, ENOSPC after N bytes, and crash simulation (undo of
 * unsynced writes, truncations and extensions; torn writes with a seed).
 */
#include <errno.h>
#include <fcntl.h>
#include "test.h"
#include "common/fileio.h"
#include <unistd.h>
#include "common/alloc.h"
#include "common/error.h"

/* Two rotating buffers, so one call can take two paths. */
static char *path_in(const char *name)
{
    static char buf[2][512];
    static int which;
    which ^= 1;
    snprintf(buf[which], sizeof buf[which], "%s/%s", sl_test_tmpdir(), name);
    return buf[which];
}

static int open_rw(sl_fileio *io, const char *name)
{
    int fd = io->open(io, path_in(name), O_CREAT | O_RDWR, 0644);
    SL_CHECK(fd >= 0);
    return fd;
}

static void check_content(sl_fileio *io, int fd, const char *want, size_t n)
{
    char buf[256];
    SL_CHECK_INT(io->size(io, fd), n);
    SL_CHECK_INT(io->pread(io, fd, buf, sizeof buf, 0), n);
    SL_CHECK_MEM(buf, want, n);
}

SL_TEST(fileio_system_basics)
{
    sl_fileio *io = sl_fileio_system();
    SL_CHECK_OK(io->mkdir(io, path_in("d"), 0755));
    SL_CHECK_INT(io->mkdir(io, path_in("d"), 0755), -1);
    SL_CHECK_INT(errno, EEXIST);
    int fd = open_rw(io, "f");
    SL_CHECK_INT(io->pwrite(io, fd, "hello", 5, 0), 5);
    struct iovec iov[2] = {{(void *)" wor", 4}, {(void *)"ld", 2}};
    SL_CHECK_INT(io->pwritev(io, fd, iov, 2, 5), 6);
    SL_CHECK_OK(io->fdatasync(io, fd));
    SL_CHECK_OK(io->fsync(io, fd));
    check_content(io, fd, "hello world", 11);
    SL_CHECK_OK(io->ftruncate(io, fd, 5));
    check_content(io, fd, "hello", 5);
    SL_CHECK_OK(io->fallocate(io, fd, 0, 4096));
    SL_CHECK_INT(io->size(io, fd), 4096);
    SL_CHECK_OK(io->close(io, fd));
    SL_CHECK_OK(io->rename(io, path_in("f"), path_in("g")));
    SL_CHECK_OK(io->unlink(io, path_in("g")));
    SL_CHECK_INT(io->unlink(io, path_in("g")), -1);
    SL_CHECK_INT(errno, ENOENT);
    SL_CHECK_OK(io->rmdir(io, path_in("d")));
}

SL_TEST(fileio_fault_nth_write_and_sync)
{
    sl_fileio_fault_cfg cfg = {.fail_write_nth = 2, .fail_sync_nth = 1, .enospc_after = -1};
    sl_fileio *io = sl_fileio_fault_new(&cfg);
    int fd = open_rw(io, "f");
    SL_CHECK_INT(io->pwrite(io, fd, "aa", 2, 0), 2);
    SL_CHECK_INT(io->pwrite(io, fd, "bb", 2, 2), -1);
    SL_CHECK_INT(errno, EIO);
    SL_CHECK_INT(io->pwrite(io, fd, "cc", 2, 2), 2);
    SL_CHECK_INT(io->fdatasync(io, fd), -1);
    SL_CHECK_INT(errno, EIO);
    SL_CHECK_OK(io->fdatasync(io, fd));
    SL_CHECK_INT(sl_fileio_fault_writes(io), 3);
    SL_CHECK_INT(sl_fileio_fault_syncs(io), 2);
    check_content(io, fd, "aacc", 4);
    /* Re-arm relative to the counters. */
    cfg.fail_write_nth = sl_fileio_fault_writes(io) + 1;
    sl_fileio_fault_set(io, &cfg);
    struct iovec iov[1] = {{(void *)"x", 1}};
    SL_CHECK_INT(io->pwritev(io, fd, iov, 1, 0), -1);
    SL_CHECK_INT(io->pwritev(io, fd, iov, 1, 0), 1);
    io->close(io, fd);
    sl_fileio_fault_free(io);
}

SL_TEST(fileio_fault_enospc)
{
    sl_fileio_fault_cfg cfg = {.enospc_after = 10};
    sl_fileio *io = sl_fileio_fault_new(&cfg);
    int fd = open_rw(io, "f");
    SL_CHECK_INT(io->pwrite(io, fd, "0123456", 7, 0), 7);
    SL_CHECK_INT(io->pwrite(io, fd, "789abc", 6, 7), 3); /* cut short at the limit */
    SL_CHECK_INT(io->pwrite(io, fd, "x", 1, 10), -1);
    SL_CHECK_INT(errno, ENOSPC);
    SL_CHECK_INT(io->fallocate(io, fd, 0, 100), -1);
    SL_CHECK_INT(errno, ENOSPC);
    check_content(io, fd, "0123456789", 10);
    io->close(io, fd);
    sl_fileio_fault_free(io);
}

SL_TEST(fileio_fault_crash_undoes_unsynced)
{
    sl_fileio_fault_cfg cfg = {.enospc_after = -1, .record_unsynced = true};
    sl_fileio *io = sl_fileio_fault_new(&cfg);
    int a = open_rw(io, "a"), b = open_rw(io, "b");
    SL_CHECK_INT(io->pwrite(io, a, "synced", 6, 0), 6);
    SL_CHECK_OK(io->fdatasync(io, a));
    SL_CHECK_INT(io->pwrite(io, a, "SY", 2, 0), 2);    /* overwrite */
    SL_CHECK_INT(io->pwrite(io, a, "+tail", 5, 6), 5); /* extend */
    SL_CHECK_INT(io->pwrite(io, b, "never synced", 12, 0), 12);
    SL_CHECK_OK(io->ftruncate(io, b, 5));
    /* The caller closing its fd does not make the bytes durable. */
    SL_CHECK_OK(io->close(io, b));
    sl_fileio_fault_crash(io, 0);
    check_content(io, a, "synced", 6);
    b = open_rw(io, "b");
    SL_CHECK_INT(io->size(io, b), 0);
    io->close(io, a);
    io->close(io, b);
    sl_fileio_fault_free(io);
}

SL_TEST(fileio_fault_crash_undoes_truncate)
{
    sl_fileio_fault_cfg cfg = {.enospc_after = -1, .record_unsynced = true};
    sl_fileio *io = sl_fileio_fault_new(&cfg);
    int fd = open_rw(io, "f");
    SL_CHECK_INT(io->pwrite(io, fd, "0123456789", 10, 0), 10);
    SL_CHECK_OK(io->fsync(io, fd));
    SL_CHECK_OK(io->ftruncate(io, fd, 4));
    SL_CHECK_OK(io->fallocate(io, fd, 0, 64));
    sl_fileio_fault_crash(io, 0);
    check_content(io, fd, "0123456789", 10);
    io->close(io, fd);
    sl_fileio_fault_free(io);
}

SL_TEST(fileio_fault_crash_seeded_prefix)
{
    /* Each write is "a prefix survives, the next is torn": the result is
     * always some prefix of the byte stream, synced part included. */
    static const char stream[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
    for (unsigned seed = 1; seed <= 40; seed++) {
        sl_fileio_fault_cfg cfg = {.enospc_after = -1, .record_unsynced = true};
        sl_fileio *io = sl_fileio_fault_new(&cfg);
        char name[32];
        snprintf(name, sizeof name, "f%u", seed);
        int fd = open_rw(io, name);
        SL_CHECK_INT(io->pwrite(io, fd, stream, 8, 0), 8);
        SL_CHECK_OK(io->fdatasync(io, fd));
        for (int off = 8; off < 46; off += 6)
            SL_CHECK_INT(io->pwrite(io, fd, stream + off, (size_t)SL_MIN(6, 46 - off), off), SL_MIN(6, 46 - off));
        sl_fileio_fault_crash(io, seed);
        int64_t size = io->size(io, fd);
        SL_CHECK(size >= 8 && size <= 46);
        char buf[64];
        SL_CHECK_INT(io->pread(io, fd, buf, sizeof buf, 0), size);
        SL_CHECK_MEM(buf, stream, (size_t)size);
        io->close(io, fd);
        sl_fileio_fault_free(io);
    }
}

SL_TEST(fileio_fault_crash_seeded_overwrite_keeps_old_bytes)
{
    /* A torn overwrite: each byte is either the old or the new one, and
     * new bytes only form a prefix of the write. */
    for (unsigned seed = 1; seed <= 40; seed++) {
        sl_fileio_fault_cfg cfg = {.enospc_after = -1, .record_unsynced = true};
        sl_fileio *io = sl_fileio_fault_new(&cfg);
        int fd = open_rw(io, "f");
        SL_CHECK_INT(io->pwrite(io, fd, "oooooooooo", 10, 0), 10);
        SL_CHECK_OK(io->fdatasync(io, fd));
        SL_CHECK_INT(io->pwrite(io, fd, "NNNNNN", 6, 2), 6);
        sl_fileio_fault_crash(io, seed);
        char buf[16];
        SL_CHECK_INT(io->pread(io, fd, buf, sizeof buf, 0), 10);
        int n = 0;
        while (n < 6 && buf[2 + n] == 'N') n++;
        for (int i = 2 + n; i < 10; i++) SL_CHECK(buf[i] == 'o');
        SL_CHECK(buf[0] == 'o' && buf[1] == 'o');
        io->close(io, fd);
        sl_fileio_fault_free(io);
    }
}

SL_TEST(write_atomic_then_read_all)
{
    sl_fileio *io = sl_fileio_system();
    char *path = sl_asprintf("%s/f", sl_test_tmpdir()), *tmp = sl_asprintf("%s.tmp", path);
    uint8_t *data;
    size_t len;
    SL_CHECK_INT(sl_fileio_read_all(io, path, 100, &data, &len), SL_ENOENT);
    SL_CHECK_OK(sl_fileio_write_atomic(io, path, tmp, "hello", 5));
    SL_CHECK_OK(sl_fileio_read_all(io, path, 100, &data, &len));
    SL_CHECK_INT(len, 5);
    SL_CHECK_MEM(data, "hello", 5);
    sl_free(data);
    SL_CHECK_OK(sl_fileio_write_atomic(io, path, tmp, "bye", 3)); /* replaces it whole */
    SL_CHECK_OK(sl_fileio_read_all(io, path, 100, &data, &len));
    SL_CHECK_INT(len, 3);
    SL_CHECK_MEM(data, "bye", 3);
    sl_free(data);
    SL_CHECK_INT(sl_fileio_read_all(io, path, 2, &data, &len), SL_ETOOBIG);
    SL_CHECK(data == NULL);
    SL_CHECK(access(tmp, F_OK) != 0); /* the temp file was renamed away */
    char *bad = sl_asprintf("%s/no/such/dir/f", sl_test_tmpdir()), *badtmp = sl_asprintf("%s.tmp", bad);
    SL_CHECK_INT(sl_fileio_write_atomic(io, bad, badtmp, "x", 1), SL_EIO);
    sl_free(bad);
    sl_free(badtmp);
    sl_free(path);
    sl_free(tmp);
}
