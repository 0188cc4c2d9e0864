/*
 * test_recover.c - recovery on open, with files damaged by hand: torn and
 * corrupt tails, garbage, zeros, gaps between segments, missing or stale
 * indexes, leftovers, the recovery point and the clean-shutdown flag.
 */
#include "log_test_util.h"
#include "storage/log_int.h"

#define DIR_NAME "v-0"

static sl_log *open_cfg(sl_log_config *cfg)
{
    sl_log *log;
    SL_CHECK_OK(sl_log_open(tu_path(DIR_NAME), cfg, sl_fileio_system(), sl_clock_system(), &log));
    return log;
}

/* nb batches of 2 records; returns the byte position where each ends. */
static void fill(sl_log *log, int nb, int64_t *ends)
{
    int64_t pos = sl_log_size_bytes(log);
    for (int i = 0; i < nb; i++) {
        size_t n;
        SL_CHECK(tu_append_rc(log, 2, 40 + 10 * i, 1000 + i, (uint8_t)i, NULL, &n) >= 0);
        pos += (int64_t)n;
        if (ends) ends[i] = pos;
    }
}

/* A crash: no close, only the process's memory and fds go away. */
static void crash(sl_log *log)
{
    sl__log_free_abandoned(log);
}

static const char *seg0(void)
{
    return tu_seg_path(tu_path(DIR_NAME), 0, ".log");
}

SL_TEST(recover_torn_tail)
{
    sl_log_config cfg = tu_config();
    sl_log *log = open_cfg(&cfg);
    int64_t ends[5];
    fill(log, 5, ends);
    crash(log);
    tu_truncate(seg0(), ends[3] + 30); /* batch 4 torn in the middle */
    log = open_cfg(&cfg);
    SL_CHECK_INT(sl_log_end_offset(log), 8);
    SL_CHECK_INT(sl_log_size_bytes(log), ends[3]);
    SL_CHECK_INT(tu_file_size(seg0()), ends[3]);
    SL_CHECK_INT(tu_append(log, 1, 10, 0), 8);
    uint8_t buf[8192];
    SL_CHECK_INT(tu_read_all(log, buf, sizeof buf), sl_log_size_bytes(log));
    sl_log_close(log);
}

SL_TEST(recover_torn_header)
{
    sl_log_config cfg = tu_config();
    sl_log *log = open_cfg(&cfg);
    int64_t ends[3];
    fill(log, 3, ends);
    crash(log);
    tu_truncate(seg0(), ends[1] + 20);
    log = open_cfg(&cfg);
    SL_CHECK_INT(sl_log_end_offset(log), 4);
    SL_CHECK_INT(tu_file_size(seg0()), ends[1]);
    sl_log_close(log);
}

SL_TEST(recover_bad_crc_in_the_middle)
{
    sl_log_config cfg = tu_config();
    sl_log *log = open_cfg(&cfg);
    int64_t ends[6];
    fill(log, 6, ends);
    crash(log);
    tu_flip(seg0(), ends[2] + 70); /* inside batch 3's records */
    /* Without a recovery point, everything is checked. */
    SL_CHECK_OK(unlink(tu_path(DIR_NAME "/recovery-point")));
    log = open_cfg(&cfg);
    SL_CHECK_INT(sl_log_end_offset(log), 6);
    SL_CHECK_INT(tu_file_size(seg0()), ends[2]); /* the good batches after it are gone too */
    sl_log_close(log);
}

SL_TEST(recover_garbage_and_zeros_after_end)
{
    sl_log_config cfg = tu_config();
    sl_log *log = open_cfg(&cfg);
    int64_t ends[2];
    fill(log, 2, ends);
    crash(log);
    uint8_t junk[300];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 7 + 1);
    tu_append_file(seg0(), junk, sizeof junk);
    log = open_cfg(&cfg);
    SL_CHECK_INT(sl_log_end_offset(log), 4);
    SL_CHECK_INT(tu_file_size(seg0()), ends[1]);
    crash(log);
    memset(junk, 0, sizeof junk);
    tu_append_file(seg0(), junk, sizeof junk);
    log = open_cfg(&cfg);
    SL_CHECK_INT(sl_log_end_offset(log), 4);
    SL_CHECK_INT(tu_file_size(seg0()), ends[1]);
    sl_log_close(log);
}

SL_TEST(recover_batch_with_wrong_offset)
{
    sl_log_config cfg = tu_config();
    sl_log *log = open_cfg(&cfg);
    int64_t ends[3];
    fill(log, 3, ends);
    crash(log);
    /* BaseOffset is outside the CRC: a batch claiming the wrong offset still stops recovery. */
    uint8_t bad[8] = {0, 0, 0, 0, 0, 0, 0, 9};
    int fd = open(seg0(), O_RDWR);
    SL_CHECK_INT(pwrite(fd, bad, 8, ends[0]), 8);
    close(fd);
    SL_CHECK_OK(unlink(tu_path(DIR_NAME "/recovery-point")));
    log = open_cfg(&cfg);
    SL_CHECK_INT(sl_log_end_offset(log), 2);
    sl_log_close(log);
}

SL_TEST(recover_preallocated_crash)
{
    sl_log_config cfg = tu_config();
    cfg.preallocate_bytes = 1 << 16;
    sl_log *log = open_cfg(&cfg);
    int64_t ends[4];
    fill(log, 4, ends);
    SL_CHECK(tu_file_size(seg0()) >= ends[3] + (1 << 15));
    crash(log);
    log = open_cfg(&cfg);
    SL_CHECK_INT(sl_log_end_offset(log), 8);
    SL_CHECK_INT(sl_log_size_bytes(log), ends[3]);
    SL_CHECK_INT(tu_file_size(seg0()), ends[3]); /* trimmed; pre-allocation waits for the next append */
    SL_CHECK_INT(tu_append(log, 1, 10, 0), 8);
    /* Its batches carry timestamp 0, so the segment is "older" than segment.ms: the append rolled, and
       the new active segment is pre-allocated ahead of its data. */
    SL_CHECK_INT(sl_log_segment_count(log), 2);
    SL_CHECK(tu_file_size(tu_seg_path(tu_path(DIR_NAME), 8, ".log")) >= sl_log_size_bytes(log) - ends[3] + (1 << 15));
    sl_log_close(log);
}

SL_TEST(recover_corrupt_segment_deletes_later_ones)
{
    sl_log_config cfg = tu_config();
    cfg.segment_bytes = 400;
    sl_log *log = open_cfg(&cfg);
    fill(log, 12, NULL);
    int nseg = sl_log_segment_count(log);
    SL_CHECK(nseg >= 4);
    int64_t second = log->segs[1]->base_offset;
    crash(log);
    SL_CHECK_OK(unlink(tu_path(DIR_NAME "/recovery-point")));
    tu_flip(tu_seg_path(tu_path(DIR_NAME), second, ".log"), 100);
    log = open_cfg(&cfg);
    SL_CHECK_INT(sl_log_segment_count(log), 2);
    SL_CHECK_INT(tu_count_files(tu_path(DIR_NAME), ".log"), 2);
    SL_CHECK(sl_log_end_offset(log) >= second && sl_log_end_offset(log) < second + 4);
    uint8_t buf[8192];
    SL_CHECK_INT(tu_read_all(log, buf, sizeof buf), sl_log_size_bytes(log));
    sl_log_close(log);
}

SL_TEST(recover_gap_between_segments)
{
    sl_log_config cfg = tu_config();
    cfg.segment_bytes = 400;
    sl_log *log = open_cfg(&cfg);
    fill(log, 12, NULL);
    int64_t b1 = log->segs[1]->base_offset, b2 = log->segs[2]->base_offset;
    int nseg = sl_log_segment_count(log);
    sl_log_close(log);
    SL_CHECK_OK(unlink(tu_seg_path(tu_path(DIR_NAME), b1, ".log")));
    log = open_cfg(&cfg);
    /* Segment 0 is whole; everything after the missing one is dropped. */
    SL_CHECK_INT(sl_log_segment_count(log), 1);
    SL_CHECK_INT(sl_log_end_offset(log), b1);
    SL_CHECK_INT(tu_file_size(tu_seg_path(tu_path(DIR_NAME), b2, ".log")), -1);
    SL_CHECK(nseg > 2);
    sl_log_close(log);
}

SL_TEST(recover_missing_and_stale_indexes)
{
    sl_log_config cfg = tu_config();
    cfg.segment_bytes = 600;
    cfg.index_interval_bytes = 100;
    sl_log *log = open_cfg(&cfg);
    fill(log, 20, NULL);
    int64_t b0 = log->segs[0]->base_offset, b1 = log->segs[1]->base_offset, b2 = log->segs[2]->base_offset;
    int64_t end = sl_log_end_offset(log);
    sl_log_close(log);
    const char *dir = tu_path(DIR_NAME);
    SL_CHECK_OK(unlink(tu_seg_path(dir, b0, ".index")));
    tu_flip(tu_seg_path(dir, b1, ".index"), 70);     /* entries CRC */
    tu_truncate(tu_seg_path(dir, b2, ".index"), 10); /* torn */
    log = open_cfg(&cfg);
    SL_CHECK_INT(sl_log_end_offset(log), end);
    uint8_t buf[16384];
    SL_CHECK_INT(tu_read_all(log, buf, sizeof buf), sl_log_size_bytes(log));
    for (int64_t off = 0; off < end; off++) {
        SL_CHECK(tu_read(log, off, 1, buf, sizeof buf) > 0);
        SL_CHECK_INT(sl_be64(buf), off / 2 * 2);
    }
    sl_log_close(log);
    SL_CHECK(tu_file_size(tu_seg_path(dir, b0, ".index")) > 64); /* rewritten */
}

SL_TEST(recover_removes_leftovers)
{
    sl_log_config cfg = tu_config();
    sl_log *log = open_cfg(&cfg);
    fill(log, 2, NULL);
    sl_log_close(log);
    const char *dir = tu_path(DIR_NAME);
    int fd = open(tu_path(DIR_NAME "/00000000000000000000.index.tmp"), O_CREAT | O_WRONLY, 0644);
    close(fd);
    fd = open(tu_seg_path(dir, 777, ".index"), O_CREAT | O_WRONLY, 0644);
    close(fd);
    fd = open(tu_path(DIR_NAME "/notes.txt"), O_CREAT | O_WRONLY, 0644);
    close(fd);
    log = open_cfg(&cfg);
    SL_CHECK_INT(tu_file_size(tu_path(DIR_NAME "/00000000000000000000.index.tmp")), -1);
    SL_CHECK_INT(tu_file_size(tu_seg_path(dir, 777, ".index")), -1);
    SL_CHECK_INT(tu_file_size(tu_path(DIR_NAME "/notes.txt")), 0); /* not ours: left alone */
    sl_log_close(log);
}

SL_TEST(recover_clean_shutdown_skips_the_scan)
{
    sl_log_config cfg = tu_config();
    sl_log *log = open_cfg(&cfg);
    int64_t ends[4];
    fill(log, 4, ends);
    sl_log_close(log);
    /* Damage the CRC-covered bytes: a clean restart does not look at them... */
    tu_flip(seg0(), ends[1] + 70);
    log = open_cfg(&cfg);
    SL_CHECK_INT(sl_log_end_offset(log), 8);
    crash(log);
    /* ...a full scan does (the recovery point is gone here). */
    SL_CHECK_OK(unlink(tu_path(DIR_NAME "/recovery-point")));
    log = open_cfg(&cfg);
    SL_CHECK_INT(sl_log_end_offset(log), 4);
    sl_log_close(log);
}

SL_TEST(recover_stale_clean_flag_is_not_trusted)
{
    sl_log_config cfg = tu_config();
    sl_log *log = open_cfg(&cfg);
    int64_t ends[2];
    fill(log, 2, ends);
    sl_log_close(log);
    uint8_t junk[100];
    memset(junk, 0x33, sizeof junk);
    tu_append_file(seg0(), junk, sizeof junk); /* the size no longer matches the flag */
    log = open_cfg(&cfg);
    SL_CHECK_INT(sl_log_end_offset(log), 4);
    SL_CHECK_INT(tu_file_size(seg0()), ends[1]);
    sl_log_close(log);
}

SL_TEST(recover_point_limits_crc_checks)
{
    sl_log_config cfg = tu_config();
    cfg.segment_bytes = 400;
    sl_log *log = open_cfg(&cfg);
    fill(log, 6, NULL);
    SL_CHECK(sl_log_segment_count(log) > 1);
    tu_sync(log); /* the durable point moved to a new segment: recovery point written */
    SL_CHECK(log->ckpt.seg_base > 0);
    size_t n;
    SL_CHECK(tu_append_rc(log, 2, 40, 0, 0, NULL, &n) >= 0);
    sl__segment *a = log->segs[log->nsegs - 1];
    int64_t active = a->base_offset, pos = a->size - (int64_t)n;
    int64_t end = sl_log_end_offset(log);
    crash(log);
    tu_flip(seg0(), 100);                                              /* before it: trusted */
    tu_flip(tu_seg_path(tu_path(DIR_NAME), active, ".log"), pos + 70); /* after it: checked */
    log = open_cfg(&cfg);
    SL_CHECK_INT(sl_log_end_offset(log), end - 2);
    SL_CHECK_INT(tu_file_size(tu_seg_path(tu_path(DIR_NAME), active, ".log")), pos);
    sl_log_close(log);
}

SL_TEST(recover_torn_recovery_point_slot)
{
    sl_log_config cfg = tu_config();
    sl_log *log = open_cfg(&cfg);
    fill(log, 3, NULL);
    sl_log_close(log);
    /* Tear the newest slot: the other one (from the open) still points at a valid place. */
    sl__ckpt ck;
    int fd = open(tu_path(DIR_NAME "/recovery-point"), O_RDWR);
    SL_CHECK_OK(sl__ckpt_read(sl_fileio_system(), fd, &ck));
    SL_CHECK(ck.clean);
    uint8_t z[8] = {0};
    SL_CHECK_INT(pwrite(fd, z, 8, (int64_t)(ck.seq % 2) * SL__CKPT_SLOT_SIZE + 20), 8);
    close(fd);
    log = open_cfg(&cfg);
    SL_CHECK_INT(sl_log_end_offset(log), 6);
    sl_log_close(log);
}

SL_TEST(recover_empty_first_segment_after_truncation)
{
    sl_log_config cfg = tu_config();
    sl_log *log = open_cfg(&cfg);
    fill(log, 2, NULL);
    crash(log);
    tu_truncate(seg0(), 30);
    log = open_cfg(&cfg);
    SL_CHECK_INT(sl_log_end_offset(log), 0);
    SL_CHECK_INT(tu_file_size(seg0()), 0);
    SL_CHECK_INT(tu_append(log, 1, 10, 0), 0);
    sl_log_close(log);
}
