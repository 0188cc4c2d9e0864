/*
 * test_segment.c - segment files: names, pre-allocation and trim, batch
 * bookkeeping and index entries, truncation, the buffered header reader,
 * and references keeping a deleted segment's fd open.
 */
#include <unistd.h>
#include "log_test_util.h"
#include "storage/segment.h"

SL_TEST(segment_names)
{
    char buf[256];
    sl__segment_path(buf, sizeof buf, "/d", 42, ".log");
    SL_CHECK_STR(buf, "/d/00000000000000000042.log");
    int64_t base;
    SL_CHECK(sl__segment_parse_name("00000000000000000042.log", ".log", &base));
    SL_CHECK_INT(base, 42);
    SL_CHECK(sl__segment_parse_name("09223372036854775807.index", ".index", &base));
    SL_CHECK_INT(base, INT64_MAX);
    SL_CHECK(!sl__segment_parse_name("99999999999999999999.log", ".log", &base));
    SL_CHECK(!sl__segment_parse_name("0000000000000000042.log", ".log", &base));
    SL_CHECK(!sl__segment_parse_name("0000000000000000004x.log", ".log", &base));
    SL_CHECK(!sl__segment_parse_name("00000000000000000042.index", ".log", &base));
    SL_CHECK(!sl__segment_parse_name("00000000000000000042.log.tmp", ".log", &base));
}

/* Writes n batches to the segment the way append does; returns their ends. */
static void write_batches(sl__segment *seg, int n, int32_t interval, int64_t *ends)
{
    uint8_t buf[4096];
    for (int i = 0; i < n; i++) {
        size_t len = tu_batch(buf, sizeof buf, 2, 100, 1000 * i, (uint8_t)i);
        sl_put_be64(buf, (uint64_t)seg->next_offset);
        SL_CHECK_INT(pwrite(seg->fd, buf, len, seg->size), len);
        sl__segment_note_batch(seg, buf, seg->size, interval);
        ends[i] = seg->size;
    }
}

SL_TEST(segment_batches_index_and_truncate)
{
    sl__segment *seg;
    SL_CHECK_OK(sl__segment_create(sl_fileio_system(), sl_test_tmpdir(), 10, &seg));
    int64_t ends[10];
    write_batches(seg, 10, 400, ends);
    SL_CHECK_INT(seg->next_offset, 30);
    SL_CHECK_INT(seg->max_timestamp, 9001);
    /* One entry per >= 400 bytes (batches are ~190 bytes): every other batch start. */
    SL_CHECK(seg->idx.n >= 3 && seg->idx.n <= 5);
    for (uint32_t i = 0; i < seg->idx.n; i++) {
        const sl__index_entry *e = &seg->idx.e[i];
        SL_CHECK_INT(e->position, ends[e->rel_offset / 2 - 1]);
    }
    sl__index saved = seg->idx;
    uint32_t nsaved = seg->idx.n;
    (void)saved;
    SL_CHECK_OK(sl__segment_truncate(seg, ends[4], 20, 400));
    SL_CHECK_INT(seg->size, ends[4]);
    SL_CHECK_INT(seg->next_offset, 20);
    SL_CHECK_INT(seg->max_timestamp, 4001);
    SL_CHECK(seg->idx.n < nsaved);
    /* Disagreeing offsets are corruption, not a crash. */
    SL_CHECK_INT(sl__segment_truncate(seg, ends[2], 99, 400), SL_ECORRUPT);
    sl__segment_unref(seg);
}

SL_TEST(segment_prealloc_and_trim)
{
    sl__segment *seg;
    SL_CHECK_OK(sl__segment_create(sl_fileio_system(), sl_test_tmpdir(), 0, &seg));
    SL_CHECK_OK(sl__segment_prealloc(seg, 5 << 20)); /* more than one pwritev's worth */
    SL_CHECK_INT(seg->file_size, 5 << 20);
    SL_CHECK_INT(tu_file_size(tu_seg_path(sl_test_tmpdir(), 0, ".log")), 5 << 20);
    uint8_t buf[4096];
    SL_CHECK_INT(pread(seg->fd, buf, sizeof buf, (5 << 20) - 4096), 4096);
    for (size_t i = 0; i < sizeof buf; i++) SL_CHECK(buf[i] == 0);
    int64_t ends[1];
    write_batches(seg, 1, 4096, ends);
    SL_CHECK_INT(seg->file_size, 5 << 20);
    SL_CHECK_OK(sl__segment_trim(seg));
    SL_CHECK_INT(tu_file_size(tu_seg_path(sl_test_tmpdir(), 0, ".log")), ends[0]);
    sl__segment_unref(seg);
}

SL_TEST(segment_reader)
{
    sl__segment *seg;
    SL_CHECK_OK(sl__segment_create(sl_fileio_system(), sl_test_tmpdir(), 0, &seg));
    int64_t ends[6];
    write_batches(seg, 6, 0, ends);
    uint8_t buf[256];
    sl__reader r;
    sl__reader_init(&r, seg, seg->size, buf, sizeof buf);
    const uint8_t *h;
    SL_CHECK_INT(sl__reader_batch(&r, 0, 0, &h), 1);
    SL_CHECK_INT(sl__reader_batch(&r, 0, 5, &h), 0); /* wrong expected offset */
    SL_CHECK_INT(sl__reader_batch(&r, ends[0], 2, &h), 1);
    SL_CHECK_INT(sl__reader_batch(&r, ends[0] + 1, -1, &h), 0); /* not a batch start */
    SL_CHECK_INT(sl__reader_batch(&r, ends[5], -1, &h), 0);     /* at the limit */
    SL_CHECK_INT(sl__reader_get(&r, ends[5] - 10, 20, &h), SL_ERANGE);
    sl__reader_init(&r, seg, seg->size + 1000, buf, sizeof buf); /* limit past the file */
    SL_CHECK_INT(sl__reader_get(&r, ends[5] + 10, 20, &h), SL_EIO);
    sl__segment_unref(seg);
}

SL_TEST(segment_reference_outlives_delete)
{
    sl__segment *seg;
    SL_CHECK_OK(sl__segment_create(sl_fileio_system(), sl_test_tmpdir(), 7, &seg));
    int64_t ends[1];
    write_batches(seg, 1, 0, ends);
    sl__segment_ref(seg);
    SL_CHECK_OK(sl__segment_delete(seg, sl_test_tmpdir()));
    SL_CHECK(seg->dead);
    sl__segment_unref(seg);
    uint8_t b;
    SL_CHECK_INT(pread(seg->fd, &b, 1, 0), 1); /* still open for the holder */
    SL_CHECK_INT(tu_file_size(tu_seg_path(sl_test_tmpdir(), 7, ".log")), -1);
    sl__segment_unref(seg);
}
