/*
 * test_log.c - the partition log's lifecycle, append, roll, HW, retention
 * and configuration (reads: test_log_read.c; sync: test_log_sync.c;
 * recovery: test_recover.c).
 */
#include "log_test_util.h"

SL_TEST(log_open_new_empty)
{
    sl_log_config cfg = tu_config();
    sl_log *log;
    SL_CHECK_OK(sl_log_open(tu_path("t-0"), &cfg, sl_fileio_system(), sl_clock_system(), &log));
    SL_CHECK_INT(sl_log_start_offset(log), 0);
    SL_CHECK_INT(sl_log_end_offset(log), 0);
    SL_CHECK_INT(sl_log_high_watermark(log), 0);
    SL_CHECK_INT(sl_log_segment_count(log), 1);
    SL_CHECK_INT(tu_file_size(tu_seg_path(tu_path("t-0"), 0, ".log")), 0);
    sl_log_close(log);
    SL_CHECK(tu_file_size(tu_path("t-0/recovery-point")) > 0);
}

SL_TEST(log_append_read_roundtrip)
{
    sl_log_config cfg = tu_config();
    sl_log *log;
    SL_CHECK_OK(sl_log_open(tu_path("t-0"), &cfg, sl_fileio_system(), sl_clock_system(), &log));
    static uint8_t want[1 << 16];
    size_t wlen = 0;
    for (int i = 0; i < 10; i++) {
        size_t n;
        int64_t base = tu_append_rc(log, 3, 50 + i, 1000 + i, (uint8_t)i, want + wlen, &n);
        SL_CHECK_INT(base, 3 * i);
        wlen += n;
    }
    SL_CHECK_INT(sl_log_end_offset(log), 30);
    SL_CHECK_INT(sl_log_high_watermark(log), 30);
    SL_CHECK_INT(sl_log_size_bytes(log), wlen);
    static uint8_t got[1 << 16];
    SL_CHECK_INT(tu_read(log, 0, 1 << 20, got, sizeof got), wlen);
    SL_CHECK_MEM(got, want, wlen);
    /* Patched in place: consecutive BaseOffsets, leader epoch 0, CRCs intact. */
    size_t pos = 0;
    for (int i = 0; i < 10; i++) {
        sl_batch_header h;
        SL_CHECK_OK(sl_batch_header_parse(got + pos, wlen - pos, &h));
        SL_CHECK_INT(h.BaseOffset, 3 * i);
        SL_CHECK_INT(h.PartitionLeaderEpoch, 0);
        pos += (size_t)sl_batch_size(got + pos);
    }
    sl_batches_info info;
    SL_CHECK_INT(sl_batches_validate(got, wlen, 1 << 20, &info), SL_BATCH_OK);
    SL_CHECK_INT(info.total_offsets, 30);
    sl_log_close(log);
}

SL_TEST(log_offsets_across_rolls)
{
    sl_log_config cfg = tu_config();
    cfg.segment_bytes = 1000;
    sl_log *log;
    const char *dir = tu_path("t-0");
    SL_CHECK_OK(sl_log_open(dir, &cfg, sl_fileio_system(), sl_clock_system(), &log));
    for (int i = 0; i < 20; i++) SL_CHECK_INT(tu_append(log, 2, 200, 1000), 2 * i);
    SL_CHECK(sl_log_segment_count(log) >= 5);
    SL_CHECK_INT(tu_count_files(dir, ".log"), sl_log_segment_count(log));
    /* Every sealed segment is under segment_bytes and has an index file. */
    SL_CHECK_INT(tu_count_files(dir, ".index"), sl_log_segment_count(log) - 1);
    int64_t bases[64];
    int nb = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strlen(e->d_name) == 24 && strcmp(e->d_name + 20, ".log") == 0) bases[nb++] = strtoll(e->d_name, 0, 10);
    closedir(d);
    for (int i = 0; i < nb; i++) {
        SL_CHECK(bases[i] % 2 == 0 && bases[i] < 40);
        int64_t size = tu_file_size(tu_seg_path(dir, bases[i], ".log"));
        SL_CHECK(size <= 1000 || bases[i] == sl_log_end_offset(log));
    }
    sl_log_close(log);
}

SL_TEST(log_big_append_into_empty_segment)
{
    sl_log_config cfg = tu_config();
    cfg.segment_bytes = 100;
    sl_log *log;
    SL_CHECK_OK(sl_log_open(tu_path("t-0"), &cfg, sl_fileio_system(), sl_clock_system(), &log));
    SL_CHECK_INT(tu_append(log, 5, 500, 0), 0); /* bigger than a segment: written whole */
    SL_CHECK_INT(tu_append(log, 5, 500, 0), 5); /* rolls first */
    SL_CHECK_INT(sl_log_segment_count(log), 2);
    sl_log_close(log);
}

SL_TEST(log_roll_by_time)
{
    sl_clock clock;
    sl_clock_sim_init(&clock, 1700000000000);
    sl_log_config cfg = tu_config();
    cfg.segment_ms = 1000;
    sl_log *log;
    SL_CHECK_OK(sl_log_open(tu_path("t-0"), &cfg, sl_fileio_system(), &clock, &log));
    tu_append(log, 1, 10, 0);
    sl_clock_sim_advance(&clock, 999 * 1000000LL);
    tu_append(log, 1, 10, 0);
    SL_CHECK_INT(sl_log_segment_count(log), 1);
    sl_clock_sim_advance(&clock, 1 * 1000000LL);
    tu_append(log, 1, 10, 0);
    SL_CHECK_INT(sl_log_segment_count(log), 2);
    sl_log_close(log);
}

SL_TEST(log_hw_on_append_mode)
{
    sl_log_config cfg = tu_config();
    sl_log *log;
    SL_CHECK_OK(sl_log_open(tu_path("t-0"), &cfg, sl_fileio_system(), sl_clock_system(), &log));
    tu_append(log, 4, 10, 0);
    SL_CHECK_INT(sl_log_high_watermark(log), 4);
    SL_CHECK_INT(sl_log_durable_offset(log), 0);
    SL_CHECK_INT(tu_sync(log), 0);
    SL_CHECK_INT(sl_log_durable_offset(log), 4);
    SL_CHECK_INT(sl_log_high_watermark(log), 4);
    sl_log_close(log);
}

SL_TEST(log_hw_durable_mode)
{
    sl_log_config cfg = tu_config();
    cfg.hw_on_append = false;
    sl_log *log;
    uint8_t buf[4096];
    SL_CHECK_OK(sl_log_open(tu_path("t-0"), &cfg, sl_fileio_system(), sl_clock_system(), &log));
    tu_append(log, 4, 10, 0);
    SL_CHECK_INT(sl_log_end_offset(log), 4);
    SL_CHECK_INT(sl_log_high_watermark(log), 0);
    SL_CHECK_INT(tu_read(log, 0, 1 << 20, buf, sizeof buf), 0);
    SL_CHECK_INT(tu_read(log, 1, 1 << 20, buf, sizeof buf), SL_ERANGE);
    sl_log_sync_job *job = sl_log_sync_prepare(log);
    SL_CHECK(job != NULL);
    SL_CHECK_INT(sl_log_sync_job_end_offset(job), 4);
    tu_append(log, 2, 10, 0); /* appended while the sync runs: not covered */
    SL_CHECK_OK(sl_log_sync_run(job));
    sl_log_sync_finish(log, job, 0);
    SL_CHECK_INT(sl_log_high_watermark(log), 4);
    SL_CHECK_INT(sl_log_durable_offset(log), 4);
    int64_t n = tu_read(log, 0, 1 << 20, buf, sizeof buf);
    sl_batch_header h;
    SL_CHECK_OK(sl_batch_header_parse(buf, (size_t)n, &h));
    SL_CHECK_INT(n, sl_batch_size(buf)); /* only the synced batch */
    SL_CHECK_INT(tu_sync(log), 0);
    SL_CHECK_INT(sl_log_high_watermark(log), 6);
    /* Switching modes: HW follows the end from then on. */
    tu_append(log, 1, 10, 0);
    SL_CHECK_INT(sl_log_high_watermark(log), 6);
    cfg.hw_on_append = true;
    SL_CHECK_OK(sl_log_set_config(log, &cfg));
    SL_CHECK_INT(sl_log_high_watermark(log), 7);
    sl_log_close(log);
}

SL_TEST(log_retention_by_time)
{
    sl_clock clock;
    int64_t t0 = 1700000000000;
    sl_clock_sim_init(&clock, t0);
    sl_log_config cfg = tu_config();
    cfg.segment_bytes = 600;
    cfg.retention_ms = 10000;
    sl_log *log;
    uint8_t buf[4096];
    SL_CHECK_OK(sl_log_open(tu_path("t-0"), &cfg, sl_fileio_system(), &clock, &log));
    for (int i = 0; i < 12; i++) {
        tu_append(log, 1, 200, sl_wall_ms(&clock));
        sl_clock_sim_advance(&clock, 1000 * 1000000LL);
    }
    /* Two 270-byte batches per segment: segment k holds t0+2k s and t0+(2k+1) s. */
    SL_CHECK_INT(sl_log_segment_count(log), 6);
    /* now = t0+12 s: only segment 0 (newest t0+1 s) is more than 10 s old. */
    SL_CHECK_INT(sl_log_enforce_retention(log), 1);
    SL_CHECK_INT(sl_log_start_offset(log), 2);
    sl_clock_sim_advance(&clock, 5000 * 1000000LL); /* t0+17 s: up to t0+6.99 s expires */
    SL_CHECK_INT(sl_log_enforce_retention(log), 2);
    int64_t start = sl_log_start_offset(log);
    SL_CHECK_INT(start, 6);
    SL_CHECK_INT(tu_read(log, start - 1, 1 << 20, buf, sizeof buf), SL_ERANGE);
    SL_CHECK(tu_read(log, start, 1 << 20, buf, sizeof buf) > 0);
    /* Long after everything expired: the active segment stays. */
    sl_clock_sim_advance(&clock, 100000 * 1000000LL);
    sl_log_enforce_retention(log);
    SL_CHECK_INT(sl_log_segment_count(log), 1);
    SL_CHECK_INT(sl_log_end_offset(log), 12);
    SL_CHECK_INT(tu_count_files(tu_path("t-0"), ".log"), 1);
    sl_log_close(log);
}

SL_TEST(log_retention_by_size)
{
    sl_log_config cfg = tu_config();
    cfg.segment_bytes = 1000;
    cfg.retention_bytes = 2500;
    sl_log *log;
    SL_CHECK_OK(sl_log_open(tu_path("t-0"), &cfg, sl_fileio_system(), sl_clock_system(), &log));
    for (int i = 0; i < 30; i++) tu_append(log, 1, 250, sl_wall_ms(sl_clock_system()));
    int64_t before = sl_log_size_bytes(log);
    SL_CHECK(before > 5000);
    SL_CHECK(sl_log_enforce_retention(log) > 0);
    int64_t after = sl_log_size_bytes(log);
    /* At least retention_bytes kept, less than one more segment beyond it. */
    SL_CHECK(after >= 2500 && after < 2500 + 1000);
    SL_CHECK_INT(sl_log_enforce_retention(log), 0);
    sl_log_close(log);
}

SL_TEST(log_retention_waits_for_hw)
{
    sl_log_config cfg = tu_config();
    cfg.hw_on_append = false;
    cfg.segment_bytes = 500;
    cfg.retention_bytes = 0;
    sl_log *log;
    SL_CHECK_OK(sl_log_open(tu_path("t-0"), &cfg, sl_fileio_system(), sl_clock_system(), &log));
    for (int i = 0; i < 6; i++) tu_append(log, 1, 300, 0);
    SL_CHECK_INT(sl_log_enforce_retention(log), 0); /* nothing is below HW yet */
    tu_sync(log);
    SL_CHECK_INT(sl_log_enforce_retention(log), 5);
    SL_CHECK_INT(sl_log_start_offset(log), 5);
    SL_CHECK_INT(sl_log_durable_offset(log), 6);
    sl_log_close(log);
}

SL_TEST(log_reopen_after_clean_close)
{
    sl_log_config cfg = tu_config();
    cfg.segment_bytes = 700;
    cfg.preallocate_bytes = 4096;
    const char *dir = tu_path("t-0");
    sl_log *log;
    static uint8_t before[1 << 16], after[1 << 16];
    SL_CHECK_OK(sl_log_open(dir, &cfg, sl_fileio_system(), sl_clock_system(), &log));
    for (int i = 0; i < 9; i++) tu_append(log, 3, 100, 5000 + i);
    int nseg = sl_log_segment_count(log);
    int64_t active = sl_log_end_offset(log) - 3;
    SL_CHECK_INT(tu_file_size(tu_seg_path(dir, active, ".log")), 700); /* pre-allocated up to segment_bytes */
    int64_t n1 = tu_read_all(log, before, sizeof before);
    SL_CHECK_INT(n1, sl_log_size_bytes(log));
    sl_log_close(log);
    SL_CHECK(tu_file_size(tu_seg_path(dir, active, ".log")) < 700); /* trimmed */
    SL_CHECK_OK(sl_log_open(dir, &cfg, sl_fileio_system(), sl_clock_system(), &log));
    SL_CHECK_INT(sl_log_segment_count(log), nseg);
    SL_CHECK_INT(sl_log_end_offset(log), 27);
    SL_CHECK_INT(sl_log_high_watermark(log), 27);
    SL_CHECK_INT(sl_log_durable_offset(log), 27);
    SL_CHECK_INT(tu_read_all(log, after, sizeof after), n1);
    SL_CHECK_MEM(after, before, (size_t)n1);
    SL_CHECK_INT(tu_append(log, 1, 10, 0), 27);
    sl_log_close(log);
}

SL_TEST(log_preallocation_trimmed_on_close)
{
    sl_log_config cfg = tu_config();
    cfg.preallocate_bytes = 1 << 16;
    const char *dir = tu_path("t-0");
    sl_log *log;
    SL_CHECK_OK(sl_log_open(dir, &cfg, sl_fileio_system(), sl_clock_system(), &log));
    SL_CHECK_INT(tu_file_size(tu_seg_path(dir, 0, ".log")), 0); /* an idle partition pre-allocates nothing */
    tu_append(log, 2, 100, 0); /* the first append does, in steps of min(half, 1 MiB) */
    int64_t data = sl_log_size_bytes(log);
    SL_CHECK(tu_file_size(tu_seg_path(dir, 0, ".log")) >= data + (1 << 15));
    /* Many appends keep the zero-filled space ahead of the end. */
    for (int i = 0; i < 200; i++) tu_append(log, 2, 500, 0);
    data = sl_log_size_bytes(log);
    SL_CHECK(tu_file_size(tu_seg_path(dir, 0, ".log")) >= data + (1 << 15));
    sl_log_close(log);
    SL_CHECK_INT(tu_file_size(tu_seg_path(dir, 0, ".log")), data);
}

/* A fast-appending log stops zero-filling (the file grows with its data); a slow one goes back to it. */
SL_TEST(log_preallocation_only_while_slow)
{
    sl_log_config cfg = tu_config();
    cfg.preallocate_bytes = 1 << 16;
    cfg.preallocate_rate_max = 1 << 20; /* 1 MiB/s */
    sl_clock clock;
    sl_clock_sim_init(&clock, 1700000000000);
    const char *dir = tu_path("t-0");
    sl_log *log;
    SL_CHECK_OK(sl_log_open(dir, &cfg, sl_fileio_system(), &clock, &log));
    /* ~10 KiB every 1 ms: ~10 MB/s. The first window still pre-allocates. */
    for (int i = 0; i < 400; i++) {
        tu_append(log, 10, 1000, 0);
        sl_clock_sim_advance(&clock, 1000000);
    }
    int64_t data = sl_log_size_bytes(log);
    SL_CHECK_INT(tu_file_size(tu_seg_path(dir, 0, ".log")), data); /* the zeros ahead were used up, none added */
    /* ~1 KiB every 50 ms: 20 KB/s; once the fast window is over, zero-filling resumes. */
    for (int i = 0; i < 10; i++) {
        tu_append(log, 1, 1000, 0);
        sl_clock_sim_advance(&clock, 50 * 1000000LL);
    }
    data = sl_log_size_bytes(log);
    SL_CHECK(tu_file_size(tu_seg_path(dir, 0, ".log")) >= data + (1 << 15));
    sl_log_close(log);
    SL_CHECK_INT(tu_file_size(tu_seg_path(dir, 0, ".log")), data);
    cfg.preallocate_rate_max = -1;
    const char *why = NULL;
    SL_CHECK_INT(sl_log_config_check(&cfg, &why), SL_EINVAL);
}

SL_TEST(log_config_checks)
{
    sl_log_config cfg = tu_config();
    const char *why = NULL;
    SL_CHECK_OK(sl_log_config_check(&cfg, &why));
    cfg.segment_bytes = 0;
    SL_CHECK_INT(sl_log_config_check(&cfg, &why), SL_EINVAL);
    SL_CHECK(why != NULL);
    sl_log *log;
    SL_CHECK_INT(sl_log_open(tu_path("t-0"), &cfg, sl_fileio_system(), sl_clock_system(), &log), SL_EINVAL);
    cfg = tu_config();
    SL_CHECK_OK(sl_log_open(tu_path("t-0"), &cfg, sl_fileio_system(), sl_clock_system(), &log));
    cfg.retention_ms = -2;
    SL_CHECK_INT(sl_log_set_config(log, &cfg), SL_EINVAL);
    cfg = tu_config();
    cfg.preallocate_bytes = SL_LOG_PREALLOCATE_BYTES_MAX + 1;
    SL_CHECK_INT(sl_log_set_config(log, &cfg), SL_EINVAL);
    cfg = tu_config();
    cfg.segment_bytes = 200;
    SL_CHECK_OK(sl_log_set_config(log, &cfg));
    tu_append(log, 1, 300, 0);
    tu_append(log, 1, 300, 0);
    SL_CHECK_INT(sl_log_segment_count(log), 2);
    sl_log_close(log);
}

SL_TEST(log_remove_deletes_directory)
{
    sl_log_config cfg = tu_config();
    cfg.segment_bytes = 300;
    sl_log *log;
    const char *dir = tu_path("t-0");
    SL_CHECK_OK(sl_log_open(dir, &cfg, sl_fileio_system(), sl_clock_system(), &log));
    for (int i = 0; i < 5; i++) tu_append(log, 1, 200, 0);
    SL_CHECK_OK(sl_log_remove(log));
    SL_CHECK_INT(tu_file_size(dir), -1);
    SL_CHECK_INT(tu_file_size(tu_path("t-0.deleted")), -1);
}

SL_TEST(log_slice_outlives_segment_deletion)
{
    sl_log_config cfg = tu_config();
    cfg.segment_bytes = 300;
    cfg.retention_bytes = 0;
    sl_log *log;
    SL_CHECK_OK(sl_log_open(tu_path("t-0"), &cfg, sl_fileio_system(), sl_clock_system(), &log));
    for (int i = 0; i < 4; i++) tu_append(log, 1, 200, 0);
    sl_log_slice s;
    SL_CHECK_OK(sl_log_read(log, 0, 1 << 20, &s));
    SL_CHECK_INT(sl_log_enforce_retention(log), 3);
    uint8_t buf[1024];
    SL_CHECK_INT(pread(s.fd, buf, (size_t)s.len, s.file_off), s.len); /* the fd is still open */
    SL_CHECK_INT(sl_be64(buf), 0);
    sl_log_slice_release(s.ref);
    sl_log_close(log);
}
