/*
 * test_log_read.c - zero-copy reads (batch lookup, mid-batch offsets,
 * max_bytes and KIP-74, one segment per call, HW bound, range errors, the
 * sealed-index cache) and timestamp lookups.
 */
#include "log_test_util.h"

/* Appends nb batches of nrec records; sizes[i] gets each batch's size. */
static void fill(sl_log *log, int nb, int nrec, int vlen, int64_t *sizes)
{
    for (int i = 0; i < nb; i++) {
        size_t n;
        SL_CHECK(tu_append_rc(log, nrec, vlen, 1000 * (i + 1), (uint8_t)i, NULL, &n) >= 0);
        if (sizes) sizes[i] = (int64_t)n;
    }
}

static sl_log *open_log(sl_log_config *cfg)
{
    sl_log *log;
    SL_CHECK_OK(sl_log_open(tu_path("r-0"), cfg, sl_fileio_system(), sl_clock_system(), &log));
    return log;
}

SL_TEST(read_finds_batch_of_any_offset)
{
    sl_log_config cfg = tu_config();
    cfg.index_interval_bytes = 300;
    sl_log *log = open_log(&cfg);
    fill(log, 40, 4, 60, NULL);
    uint8_t buf[65536];
    for (int64_t off = 0; off < 160; off++) {
        int64_t n = tu_read(log, off, 1, buf, sizeof buf); /* one batch */
        SL_CHECK(n > 0);
        SL_CHECK_INT(n, sl_batch_size(buf));
        SL_CHECK_INT(sl_be64(buf), off / 4 * 4); /* the batch holding off, from its start */
    }
    sl_log_close(log);
}

SL_TEST(read_mid_batch_returns_whole_batch)
{
    sl_log_config cfg = tu_config();
    sl_log *log = open_log(&cfg);
    fill(log, 3, 5, 10, NULL);
    uint8_t buf[4096];
    int64_t n = tu_read(log, 7, 1 << 20, buf, sizeof buf);
    SL_CHECK(n > 0);
    SL_CHECK_INT(sl_be64(buf), 5);
    SL_CHECK_INT(n, 2 * sl_batch_size(buf)); /* batches 5.. and 10.. */
    sl_log_close(log);
}

SL_TEST(read_max_bytes_and_kip74)
{
    sl_log_config cfg = tu_config();
    cfg.index_interval_bytes = 0; /* an entry per batch */
    sl_log *log = open_log(&cfg);
    int64_t sz[10];
    fill(log, 10, 2, 100, sz);
    uint8_t buf[65536];
    /* The first batch comes whole even when bigger than max_bytes. */
    SL_CHECK_INT(tu_read(log, 0, 1, buf, sizeof buf), sz[0]);
    SL_CHECK_INT(tu_read(log, 0, 0, buf, sizeof buf), sz[0]);
    SL_CHECK_INT(tu_read(log, 0, -5, buf, sizeof buf), sz[0]);
    /* Then only whole batches that fit. */
    SL_CHECK_INT(tu_read(log, 0, sz[0] + sz[1] - 1, buf, sizeof buf), sz[0]);
    SL_CHECK_INT(tu_read(log, 0, sz[0] + sz[1], buf, sizeof buf), sz[0] + sz[1]);
    SL_CHECK_INT(tu_read(log, 4, sz[2] + sz[3] + sz[4] + 10, buf, sizeof buf), sz[2] + sz[3] + sz[4]);
    int64_t all = 0;
    for (int i = 0; i < 10; i++) all += sz[i];
    SL_CHECK_INT(tu_read(log, 0, all, buf, sizeof buf), all);
    SL_CHECK_INT(tu_read(log, 0, all - 1, buf, sizeof buf), all - sz[9]);
    sl_log_close(log);
}

SL_TEST(read_kip74_single_huge_batch)
{
    sl_log_config cfg = tu_config();
    sl_log *log = open_log(&cfg);
    fill(log, 1, 8, 4000, NULL);
    fill(log, 1, 1, 10, NULL);
    uint8_t buf[65536];
    int64_t n = tu_read(log, 3, 1024, buf, sizeof buf);
    SL_CHECK(n > 32000);
    SL_CHECK_INT(n, sl_batch_size(buf));
    sl_log_close(log);
}

SL_TEST(read_one_segment_per_call)
{
    sl_log_config cfg = tu_config();
    cfg.segment_bytes = 1000;
    sl_log *log = open_log(&cfg);
    fill(log, 12, 1, 300, NULL);
    SL_CHECK(sl_log_segment_count(log) > 3);
    uint8_t buf[65536];
    int64_t n = tu_read(log, 0, 1 << 20, buf, sizeof buf);
    /* Stops at the end of segment 0, although more is below HW. */
    SL_CHECK(n < sl_log_size_bytes(log));
    SL_CHECK_INT(n, tu_file_size(tu_seg_path(tu_path("r-0"), 0, ".log")));
    /* Sequential reads visit every batch once, in order. */
    int64_t off = 0, batches = 0;
    while (off < sl_log_high_watermark(log)) {
        n = tu_read(log, off, 1 << 20, buf, sizeof buf);
        for (int64_t p = 0; p < n; p += sl_batch_size(buf + p)) {
            SL_CHECK_INT(sl_be64(buf + p), off);
            off++;
            batches++;
        }
    }
    SL_CHECK_INT(batches, 12);
    sl_log_close(log);
}

SL_TEST(read_range_errors)
{
    sl_log_config cfg = tu_config();
    sl_log *log = open_log(&cfg);
    uint8_t buf[4096];
    SL_CHECK_INT(tu_read(log, 0, 100, buf, sizeof buf), 0); /* empty log: offset == HW */
    SL_CHECK_INT(tu_read(log, 1, 100, buf, sizeof buf), SL_ERANGE);
    SL_CHECK_INT(tu_read(log, -1, 100, buf, sizeof buf), SL_ERANGE);
    fill(log, 2, 3, 10, NULL);
    SL_CHECK_INT(tu_read(log, 6, 100, buf, sizeof buf), 0);
    SL_CHECK_INT(tu_read(log, 7, 100, buf, sizeof buf), SL_ERANGE);
    sl_log_slice s;
    SL_CHECK_OK(sl_log_read(log, 6, 100, &s));
    SL_CHECK_INT(s.len, 0);
    SL_CHECK(s.ref == NULL);
    sl_log_slice_release(s.ref);
    sl_log_close(log);
}

SL_TEST(read_stops_at_hw_inside_segment)
{
    sl_log_config cfg = tu_config();
    cfg.hw_on_append = false;
    sl_log *log = open_log(&cfg);
    int64_t sz[4];
    fill(log, 2, 1, 50, sz);
    tu_sync(log);
    fill(log, 2, 1, 50, sz + 2);
    uint8_t buf[4096];
    SL_CHECK_INT(tu_read(log, 0, 1 << 20, buf, sizeof buf), sz[0] + sz[1]);
    SL_CHECK_INT(tu_read(log, 1, 1 << 20, buf, sizeof buf), sz[1]);
    SL_CHECK_INT(tu_read(log, 2, 1 << 20, buf, sizeof buf), 0);
    SL_CHECK_INT(tu_read(log, 3, 1 << 20, buf, sizeof buf), SL_ERANGE);
    tu_sync(log);
    SL_CHECK_INT(tu_read(log, 2, 1 << 20, buf, sizeof buf), sz[2] + sz[3]);
    sl_log_close(log);
}

/* sl_log_read_until: a read_committed fetch stops at the last stable offset, a batch start below HW, in the
 * same segment or a later one; end_offset says where the slice ends. */
SL_TEST(read_until_stops_at_a_batch_boundary)
{
    sl_log_config cfg = tu_config();
    cfg.segment_bytes = 700;
    cfg.index_interval_bytes = 0;
    sl_log *log = open_log(&cfg);
    int64_t sz[12];
    fill(log, 12, 2, 100, sz); /* batches at 0, 2, ..., 22; about 3 per segment */
    SL_CHECK(sl_log_segment_count(log) >= 3);
    sl_log_slice s;
    SL_CHECK_OK(sl_log_read_until(log, 0, 1 << 20, 4, &s));
    SL_CHECK_INT(s.len, sz[0] + sz[1]);
    SL_CHECK_INT(s.end_offset, 4);
    sl_log_slice_release(s.ref);
    SL_CHECK_OK(sl_log_read_until(log, 3, 1 << 20, 4, &s)); /* from inside the batch before the stop */
    SL_CHECK_INT(s.len, sz[1]);
    SL_CHECK_INT(s.file_off, sz[0]);
    sl_log_slice_release(s.ref);
    SL_CHECK_OK(sl_log_read_until(log, 4, 1 << 20, 4, &s)); /* at the stop: nothing, not an error */
    SL_CHECK_INT(s.len, 0);
    SL_CHECK_INT(s.end_offset, 4);
    SL_CHECK_OK(sl_log_read_until(log, 6, 1 << 20, 4, &s)); /* past it (below HW): nothing */
    SL_CHECK_INT(s.len, 0);
    /* A stop in a later segment: the read ends with its own segment, as sl_log_read does. */
    SL_CHECK_OK(sl_log_read_until(log, 0, 1 << 20, 20, &s));
    sl_log_slice r;
    SL_CHECK_OK(sl_log_read(log, 0, 1 << 20, &r));
    SL_CHECK_INT(s.len, r.len);
    SL_CHECK_INT(s.end_offset, r.end_offset);
    SL_CHECK(s.end_offset < 20);
    sl_log_slice_release(s.ref);
    sl_log_slice_release(r.ref);
    /* Every start below a stop in the last segment ends exactly at the stop, or at its segment's end. */
    for (int64_t off = 0; off < 22; off++) {
        SL_CHECK_OK(sl_log_read_until(log, off, 1 << 20, 22, &s));
        SL_CHECK(s.len > 0 && s.end_offset > off && s.end_offset <= 22);
        sl_log_slice_release(s.ref);
    }
    SL_CHECK_OK(sl_log_read_until(log, 20, 1 << 20, 22, &s));
    SL_CHECK_INT(s.len, sz[10]);
    SL_CHECK_INT(s.end_offset, 22);
    sl_log_slice_release(s.ref);
    SL_CHECK_INT(sl_log_read_until(log, 25, 1 << 20, 22, &s), SL_ERANGE); /* past HW: still a range error */
    sl_log_close(log);
}

SL_TEST(read_many_sealed_segments_evicts_indexes)
{
    sl_log_config cfg = tu_config();
    cfg.segment_bytes = 2000;
    cfg.index_interval_bytes = 200;
    sl_log *log = open_log(&cfg);
    fill(log, 300, 2, 100, NULL); /* ~40 segments, well past the index cache */
    SL_CHECK(sl_log_segment_count(log) > 20);
    uint8_t buf[65536];
    unsigned rng = 12345;
    for (int i = 0; i < 2000; i++) {
        rng = rng * 1103515245 + 12345;
        int64_t off = (int64_t)(rng >> 8) % 600;
        int64_t n = tu_read(log, off, 250, buf, sizeof buf);
        SL_CHECK(n > 0);
        SL_CHECK_INT(sl_be64(buf), off / 2 * 2);
    }
    sl_log_close(log);
    /* And again after a reopen, when every sealed index comes from its file. */
    log = open_log(&cfg);
    for (int64_t off = 599; off >= 0; off -= 7) {
        SL_CHECK(tu_read(log, off, 1, buf, sizeof buf) > 0);
        SL_CHECK_INT(sl_be64(buf), off / 2 * 2);
    }
    sl_log_close(log);
}

SL_TEST(time_lookup_record_level)
{
    sl_log_config cfg = tu_config();
    cfg.index_interval_bytes = 0;
    cfg.segment_bytes = 600;
    sl_log *log = open_log(&cfg);
    /* Batch i holds 3 records with timestamps 1000i, 1000i+1, 1000i+2. */
    for (int i = 1; i <= 10; i++) SL_CHECK(tu_append_rc(log, 3, 50, 1000 * i, 0, NULL, NULL) >= 0);
    SL_CHECK(sl_log_segment_count(log) > 2);
    int64_t off, ts;
    SL_CHECK_OK(sl_log_offset_for_time(log, 0, &off, &ts));
    SL_CHECK_INT(off, 0);
    SL_CHECK_INT(ts, 1000);
    SL_CHECK_OK(sl_log_offset_for_time(log, 1500, &off, &ts));
    SL_CHECK_INT(off, 3);
    SL_CHECK_INT(ts, 2000);
    SL_CHECK_OK(sl_log_offset_for_time(log, 7002, &off, &ts));
    SL_CHECK_INT(off, 20);
    SL_CHECK_INT(ts, 7002);
    SL_CHECK_OK(sl_log_offset_for_time(log, 7001, &off, &ts));
    SL_CHECK_INT(off, 19);
    SL_CHECK_OK(sl_log_offset_for_time(log, 10002, &off, &ts));
    SL_CHECK_INT(off, 29);
    SL_CHECK_OK(sl_log_offset_for_time(log, 10003, &off, &ts));
    SL_CHECK_INT(off, -1);
    SL_CHECK_INT(ts, -1);
    sl_log_close(log);
}

SL_TEST(time_lookup_unordered_timestamps)
{
    sl_log_config cfg = tu_config();
    cfg.index_interval_bytes = 0;
    sl_log *log = open_log(&cfg);
    static const int64_t ts_of[] = {5000, 1000, 9000, 2000, 7000};
    for (int i = 0; i < 5; i++) tu_append_rc(log, 1, 10, ts_of[i], 0, NULL, NULL);
    int64_t off, ts;
    SL_CHECK_OK(sl_log_offset_for_time(log, 3000, &off, &ts));
    SL_CHECK_INT(off, 0); /* the first batch whose max reaches 3000 */
    SL_CHECK_OK(sl_log_offset_for_time(log, 6000, &off, &ts));
    SL_CHECK_INT(off, 2);
    SL_CHECK_INT(ts, 9000);
    SL_CHECK_OK(sl_log_offset_for_time(log, 9001, &off, &ts));
    SL_CHECK_INT(off, -1);
    sl_log_close(log);
}

SL_TEST(time_lookup_respects_hw)
{
    sl_log_config cfg = tu_config();
    cfg.hw_on_append = false;
    sl_log *log = open_log(&cfg);
    tu_append_rc(log, 1, 10, 1000, 0, NULL, NULL);
    tu_sync(log);
    tu_append_rc(log, 1, 10, 5000, 0, NULL, NULL);
    int64_t off, ts;
    SL_CHECK_OK(sl_log_offset_for_time(log, 2000, &off, &ts));
    SL_CHECK_INT(off, -1);
    tu_sync(log);
    SL_CHECK_OK(sl_log_offset_for_time(log, 2000, &off, &ts));
    SL_CHECK_INT(off, 1);
    sl_log_close(log);
}

typedef struct scan_seen {
    int64_t offsets[256];
    int n;
    int stop_at; /* return 7 from the callback at this batch (0 = never) */
} scan_seen;

static int scan_cb(void *arg, const uint8_t *batch, size_t len)
{
    scan_seen *s = arg;
    SL_CHECK_INT(sl_batch_size(batch), (int64_t)len);
    SL_CHECK(s->n < 256);
    s->offsets[s->n++] = (int64_t)sl_be64(batch);
    return s->n == s->stop_at ? 7 : 0;
}

SL_TEST(scan_visits_whole_batches_in_order_across_segments)
{
    sl_log_config cfg = tu_config();
    cfg.segment_bytes = 1000;
    sl_log *log;
    SL_CHECK_OK(sl_log_open(tu_path("t-0"), &cfg, sl_fileio_system(), sl_clock_system(), &log));
    for (int i = 0; i < 40; i++) SL_CHECK_INT(tu_append(log, 2, 60, 1000 + i), 2 * i);
    SL_CHECK(sl_log_segment_count(log) > 3);
    scan_seen s = {0};
    SL_CHECK_OK(sl_log_scan(log, 0, scan_cb, &s));
    SL_CHECK_INT(s.n, 40);
    for (int i = 0; i < 40; i++) SL_CHECK_INT(s.offsets[i], 2 * i);
    /* from an offset inside a batch: that batch first */
    s = (scan_seen){0};
    SL_CHECK_OK(sl_log_scan(log, 51, scan_cb, &s));
    SL_CHECK_INT(s.n, 15);
    SL_CHECK_INT(s.offsets[0], 50);
    /* the callback stops it, and its code comes back */
    s = (scan_seen){.stop_at = 3};
    SL_CHECK_INT(sl_log_scan(log, 0, scan_cb, &s), 7);
    SL_CHECK_INT(s.n, 3);
    /* past the end: nothing */
    s = (scan_seen){0};
    SL_CHECK_OK(sl_log_scan(log, 80, scan_cb, &s));
    SL_CHECK_INT(s.n, 0);
    sl_log_close(log);
}
