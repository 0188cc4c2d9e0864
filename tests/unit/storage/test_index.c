/*
 * test_index.c - the sparse offset/time index: lookups, truncation, and
 * its file (round trip, and every way a file can be missing or damaged).
 */
#include <fcntl.h>
#include <unistd.h>
#include "test.h"
#include "storage/index.h"
#include "common/error.h"

static void fill(sl__index *idx)
{
    /* Entries at positions 100, 200, ... with offsets 10, 20, ... and
     * ts_before 1000, 1000, 3000, 3000, 5000, ... */
    for (uint32_t i = 1; i <= 10; i++) sl__index_push(idx, 10 * i, 100 * i, 1000 + 2000 * ((i - 1) / 2));
}

SL_TEST(index_floor_lookups)
{
    sl__index idx;
    sl__index_init(&idx);
    SL_CHECK_INT(sl__index_floor_offset(&idx, 5), -1);
    fill(&idx);
    SL_CHECK_INT(sl__index_floor_offset(&idx, 5), -1);
    SL_CHECK_INT(sl__index_floor_offset(&idx, 10), 0);
    SL_CHECK_INT(sl__index_floor_offset(&idx, 19), 0);
    SL_CHECK_INT(sl__index_floor_offset(&idx, 20), 1);
    SL_CHECK_INT(sl__index_floor_offset(&idx, 1000), 9);
    SL_CHECK_INT(sl__index_floor_position(&idx, 99), -1);
    SL_CHECK_INT(sl__index_floor_position(&idx, 100), 0);
    SL_CHECK_INT(sl__index_floor_position(&idx, 550), 4);
    /* ts_before < ts: the last entry all of whose predecessors are older. */
    SL_CHECK_INT(sl__index_floor_time(&idx, 1000), -1);
    SL_CHECK_INT(sl__index_floor_time(&idx, 1001), 1);
    SL_CHECK_INT(sl__index_floor_time(&idx, 3000), 1);
    SL_CHECK_INT(sl__index_floor_time(&idx, 3001), 3);
    SL_CHECK_INT(sl__index_floor_time(&idx, INT64_MAX), 9);
    sl__index_deinit(&idx);
}

SL_TEST(index_truncate)
{
    sl__index idx;
    sl__index_init(&idx);
    fill(&idx);
    sl__index_truncate(&idx, 501);
    SL_CHECK_INT(idx.n, 5);
    sl__index_truncate(&idx, 500);
    SL_CHECK_INT(idx.n, 4);
    sl__index_truncate(&idx, 0);
    SL_CHECK_INT(idx.n, 0);
    sl__index_push(&idx, 1, 1, 0); /* usable again */
    SL_CHECK_INT(idx.n, 1);
    sl__index_deinit(&idx);
}

static const char *path(void)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/00000000000000000042.index", sl_test_tmpdir());
    return buf;
}

SL_TEST(index_file_round_trip)
{
    sl_fileio *io = sl_fileio_system();
    sl__index idx, back;
    sl__index_init(&idx);
    sl__index_init(&back);
    fill(&idx);
    sl__index_meta m = {42, 142, 1234, 99999, idx.n, 0}, r;
    SL_CHECK_OK(sl__index_write(io, path(), &m, &idx));
    SL_CHECK_OK(sl__index_read_meta(io, path(), &r));
    SL_CHECK_INT(r.base_offset, 42);
    SL_CHECK_INT(r.next_offset, 142);
    SL_CHECK_INT(r.log_size, 1234);
    SL_CHECK_INT(r.max_timestamp, 99999);
    SL_CHECK_INT(r.count, 10);
    SL_CHECK_OK(sl__index_read(io, path(), &r, &back));
    SL_CHECK_INT(back.n, idx.n);
    SL_CHECK_MEM(back.e, idx.e, idx.n * sizeof *idx.e);
    sl__index_deinit(&idx);
    sl__index_deinit(&back);
}

SL_TEST(index_file_damage_is_detected)
{
    sl_fileio *io = sl_fileio_system();
    sl__index idx, back;
    sl__index_init(&idx);
    sl__index_init(&back);
    sl__index_meta r;
    SL_CHECK_INT(sl__index_read_meta(io, path(), &r), SL_ENOENT);
    fill(&idx);
    sl__index_meta m = {42, 142, 1234, 99999, idx.n, 0};
    SL_CHECK_OK(sl__index_write(io, path(), &m, &idx));
    int fd = open(path(), O_RDWR);
    uint8_t b = 0x77;
    /* A damaged entry passes the header check, fails the entries CRC. */
    SL_CHECK_INT(pwrite(fd, &b, 1, SL__INDEX_HEADER_SIZE + 5), 1);
    SL_CHECK_OK(sl__index_read_meta(io, path(), &r));
    SL_CHECK_INT(sl__index_read(io, path(), &r, &back), SL_ECORRUPT);
    SL_CHECK_INT(back.n, 0);
    /* A damaged header. */
    SL_CHECK_INT(pwrite(fd, &b, 1, 20), 1);
    SL_CHECK_INT(sl__index_read_meta(io, path(), &r), SL_ECORRUPT);
    /* A torn file (the write renamed a new file into place: reopen). */
    close(fd);
    SL_CHECK_OK(sl__index_write(io, path(), &m, &idx));
    fd = open(path(), O_RDWR);
    SL_CHECK_OK(sl__index_read_meta(io, path(), &r));
    SL_CHECK_OK(ftruncate(fd, 100));
    SL_CHECK_INT(sl__index_read_meta(io, path(), &r), SL_ECORRUPT);
    SL_CHECK_OK(ftruncate(fd, 10));
    SL_CHECK_INT(sl__index_read_meta(io, path(), &r), SL_ECORRUPT);
    close(fd);
    sl__index_deinit(&idx);
}
