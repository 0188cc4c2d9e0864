/*
 * test_log_sync.c - group commit, failures and crashes, with the fault
 * file-I/O table: failing writes (EIO, ENOSPC) leave the log unchanged and
 * appendable; a failing fdatasync rewinds to the durable point; a failing
 * rewind makes the log read-only; simulated power losses (seeds 1..50)
 * never lose a synced batch and never leave a gap.
 */
#include <pthread.h>
#include "log_test_util.h"
#include "storage/log_int.h"

static sl_log *open_io(const char *name, sl_log_config *cfg, sl_fileio *io)
{
    sl_log *log;
    SL_CHECK_OK(sl_log_open(tu_path(name), cfg, io, sl_clock_system(), &log));
    return log;
}

static sl_fileio *fault_io(bool record)
{
    sl_fileio_fault_cfg fc = {.enospc_after = -1, .record_unsynced = record};
    return sl_fileio_fault_new(&fc);
}

SL_TEST(sync_prepare_when_nothing_to_do)
{
    sl_log_config cfg = tu_config();
    sl_log *log = open_io("s-0", &cfg, sl_fileio_system());
    SL_CHECK(sl_log_sync_prepare(log) == NULL);
    tu_append(log, 1, 10, 0);
    sl_log_sync_job *job = sl_log_sync_prepare(log);
    SL_CHECK(job != NULL);
    SL_CHECK(sl_log_sync_prepare(log) == NULL); /* one job at a time */
    SL_CHECK_OK(sl_log_sync_run(job));
    sl_log_sync_finish(log, job, 0);
    SL_CHECK(sl_log_sync_prepare(log) == NULL);
    sl_log_close(log);
}

static void *run_thread(void *job)
{
    return (void *)(intptr_t)sl_log_sync_run(job);
}

SL_TEST(sync_run_on_another_thread_across_roll_and_retention)
{
    sl_log_config cfg = tu_config();
    cfg.segment_bytes = 400;
    cfg.retention_bytes = 0;
    sl_log *log = open_io("s-0", &cfg, sl_fileio_system());
    for (int i = 0; i < 3; i++) tu_append(log, 1, 300, 0);
    sl_log_sync_job *job = sl_log_sync_prepare(log);
    SL_CHECK(job != NULL);
    /* While the job is out: roll and delete the segments it holds. */
    for (int i = 0; i < 3; i++) tu_append(log, 1, 300, 0);
    SL_CHECK(sl_log_enforce_retention(log) >= 3);
    pthread_t t;
    SL_CHECK_OK(pthread_create(&t, NULL, run_thread, job));
    void *ret;
    SL_CHECK_OK(pthread_join(t, &ret));
    SL_CHECK_INT((intptr_t)ret, 0);
    sl_log_sync_finish(log, job, 0);
    SL_CHECK(sl_log_durable_offset(log) >= 3);
    SL_CHECK_INT(tu_sync(log), 0);
    SL_CHECK_INT(sl_log_durable_offset(log), 6);
    sl_log_close(log);
}

SL_TEST(append_write_eio_leaves_log_unchanged)
{
    sl_fileio *io = fault_io(false);
    sl_log_config cfg = tu_config();
    cfg.preallocate_bytes = 8192;
    sl_log *log = open_io("s-0", &cfg, io);
    tu_append(log, 2, 10, 0);
    int64_t size = sl_log_size_bytes(log);
    sl_fileio_fault_cfg fc = {.enospc_after = -1, .fail_write_nth = sl_fileio_fault_writes(io) + 1};
    sl_fileio_fault_set(io, &fc);
    SL_CHECK_INT(tu_append_rc(log, 3, 10, 0, 1, NULL, NULL), SL_EIO);
    SL_CHECK_INT(sl_log_end_offset(log), 2);
    SL_CHECK_INT(sl_log_high_watermark(log), 2);
    SL_CHECK_INT(sl_log_size_bytes(log), size);
    SL_CHECK(!sl_log_failed(log));
    SL_CHECK_INT(tu_append(log, 3, 10, 0), 2); /* still appendable, same offsets */
    uint8_t buf[4096];
    SL_CHECK_INT(tu_read_all(log, buf, sizeof buf), sl_log_size_bytes(log));
    sl_log_close(log);
    sl_fileio_fault_free(io);
}

SL_TEST(append_enospc_leaves_log_unchanged)
{
    sl_fileio *io = fault_io(false);
    sl_log_config cfg = tu_config();
    sl_log *log = open_io("s-0", &cfg, io);
    tu_append(log, 2, 100, 0);
    int64_t size = sl_log_size_bytes(log);
    sl_fileio_fault_cfg fc = {.enospc_after = 50}; /* the next write is cut short, then ENOSPC */
    sl_fileio_fault_set(io, &fc);
    SL_CHECK_INT(tu_append_rc(log, 2, 100, 0, 1, NULL, NULL), SL_ENOSPC);
    SL_CHECK_INT(sl_log_end_offset(log), 2);
    SL_CHECK_INT(tu_file_size(tu_seg_path(tu_path("s-0"), 0, ".log")), size); /* the partial bytes were cut */
    fc.enospc_after = -1;
    sl_fileio_fault_set(io, &fc);
    SL_CHECK_INT(tu_append(log, 2, 100, 0), 2);
    sl_log_close(log);
    sl_fileio_fault_free(io);
    /* A clean reopen sees exactly the two good batches. */
    log = open_io("s-0", &cfg, sl_fileio_system());
    SL_CHECK_INT(sl_log_end_offset(log), 4);
    sl_log_close(log);
}

SL_TEST(sync_failure_rewinds_to_durable)
{
    sl_fileio *io = fault_io(false);
    sl_log_config cfg = tu_config();
    cfg.hw_on_append = false;
    cfg.segment_bytes = 500;
    cfg.preallocate_bytes = 1000;
    sl_log *log = open_io("s-0", &cfg, io);
    const char *dir = tu_path("s-0");
    tu_append(log, 2, 100, 0);
    SL_CHECK_INT(tu_sync(log), 0);
    int64_t durable_size = sl_log_size_bytes(log);
    for (int i = 0; i < 5; i++) tu_append(log, 2, 150, 0); /* across rolls */
    SL_CHECK(sl_log_segment_count(log) > 1);
    sl_fileio_fault_cfg fc = {.enospc_after = -1, .fail_sync_nth = sl_fileio_fault_syncs(io) + 1};
    sl_fileio_fault_set(io, &fc);
    SL_CHECK(tu_sync(log) != 0);
    SL_CHECK(!sl_log_failed(log));
    SL_CHECK_INT(sl_log_end_offset(log), 2);
    SL_CHECK_INT(sl_log_durable_offset(log), 2);
    SL_CHECK_INT(sl_log_high_watermark(log), 2);
    /* The durable point is the end of segment 0, i.e. the start of segment 2,
     * which is kept (empty); the segments after it are deleted. */
    SL_CHECK_INT(sl_log_segment_count(log), 2);
    SL_CHECK_INT(sl_log_size_bytes(log), durable_size);
    SL_CHECK_INT(tu_count_files(dir, ".log"), 2);
    SL_CHECK_INT(tu_file_size(tu_seg_path(dir, 0, ".log")), durable_size);
    SL_CHECK_INT(tu_file_size(tu_seg_path(dir, 2, ".log")), 0);
    /* The retry gets the offsets the failed produce had. */
    SL_CHECK_INT(tu_append(log, 2, 150, 0), 2);
    SL_CHECK_INT(tu_sync(log), 0);
    SL_CHECK_INT(sl_log_high_watermark(log), 4);
    sl_log_close(log);
    sl_fileio_fault_free(io);
}

SL_TEST(sync_failure_in_hw_on_append_mode)
{
    sl_fileio *io = fault_io(false);
    sl_log_config cfg = tu_config();
    sl_log *log = open_io("s-0", &cfg, io);
    tu_append(log, 2, 100, 0);
    tu_sync(log);
    tu_append(log, 2, 100, 0);
    SL_CHECK_INT(sl_log_high_watermark(log), 4);
    sl_fileio_fault_cfg fc = {.enospc_after = -1, .fail_sync_nth = sl_fileio_fault_syncs(io) + 1};
    sl_fileio_fault_set(io, &fc);
    SL_CHECK(tu_sync(log) != 0);
    SL_CHECK_INT(sl_log_end_offset(log), 2);
    SL_CHECK_INT(sl_log_high_watermark(log), 2);
    sl_log_close(log);
    sl_fileio_fault_free(io);
}

SL_TEST(sync_failure_then_rewind_failure_is_read_only)
{
    sl_fileio *io = fault_io(false);
    sl_log_config cfg = tu_config();
    sl_log *log = open_io("s-0", &cfg, io);
    tu_append(log, 2, 100, 0);
    tu_sync(log);
    tu_append(log, 2, 100, 0);
    sl_log_sync_job *job = sl_log_sync_prepare(log);
    sl_fileio_fault_cfg fc = {.enospc_after = -1, .fail_sync_nth = sl_fileio_fault_syncs(io) + 1};
    sl_fileio_fault_set(io, &fc);
    int rc = sl_log_sync_run(job);
    SL_CHECK_INT(rc, SL_EIO);
    fc.fail_sync_nth = sl_fileio_fault_syncs(io) + 1; /* the rewind's fdatasync fails too */
    sl_fileio_fault_set(io, &fc);
    sl_log_sync_finish(log, job, rc);
    SL_CHECK(sl_log_failed(log));
    SL_CHECK_INT(tu_append_rc(log, 1, 10, 0, 0, NULL, NULL), SL_EIO);
    SL_CHECK(sl_log_sync_prepare(log) == NULL);
    uint8_t buf[4096];
    SL_CHECK(tu_read(log, 0, 1 << 20, buf, sizeof buf) > 0); /* reads go on */
    sl_log_close(log);
    sl_fileio_fault_free(io);
}

/* Appends and syncs at random, crashes, reopens, compares. */
static void crash_once(unsigned seed, bool prealloc)
{
    enum { N = 40 };
    static uint8_t copies[N][2048];
    size_t lens[N];
    char name[32];
    snprintf(name, sizeof name, "c-%u-%d", seed, prealloc);
    sl_fileio *io = fault_io(true);
    sl_log_config cfg = tu_config();
    cfg.hw_on_append = false;
    cfg.segment_bytes = 1500;
    cfg.index_interval_bytes = 256;
    cfg.preallocate_bytes = prealloc ? 4096 : 0;
    sl_log *log = open_io(name, &cfg, io);
    unsigned rng = seed * 2654435761u;
    int64_t acked = 0;
    for (int i = 0; i < N; i++) {
        rng = rng * 1103515245 + 12345;
        int64_t base = tu_append_rc(log, 1, 20 + (int)(rng >> 16) % 300, i, (uint8_t)i, copies[i], &lens[i]);
        SL_CHECK_INT(base, i);
        if ((rng >> 8) % 4 == 0) {
            SL_CHECK_INT(tu_sync(log), 0);
            acked = sl_log_durable_offset(log);
        }
    }
    /* Sometimes a sync is in flight (run, not finished) at the crash. */
    sl_log_sync_job *job = (rng >> 4) % 2 ? sl_log_sync_prepare(log) : NULL;
    if (job) SL_CHECK_OK(sl_log_sync_run(job));
    sl_fileio_fault_crash(io, seed);
    sl__log_free_abandoned(log);
    log = open_io(name, &cfg, io);
    int64_t end = sl_log_end_offset(log);
    SL_CHECK(end >= acked && end <= N);
    if (job) SL_CHECK_INT(end, N);
    static uint8_t got[N * 2048];
    int64_t n = tu_read_all(log, got, sizeof got);
    size_t pos = 0;
    for (int64_t i = 0; i < end; i++) {
        SL_CHECK((size_t)n - pos >= lens[i]);
        SL_CHECK_MEM(got + pos, copies[i], lens[i]);
        pos += lens[i];
    }
    SL_CHECK_INT(pos, n);
    SL_CHECK_INT(tu_append(log, 1, 10, 0), end);
    sl_log_close(log);
    sl_fileio_fault_free(io);
}

SL_TEST(crash_seeds_keep_synced_batches)
{
    for (unsigned seed = 1; seed <= 50; seed++) crash_once(seed, false);
}

SL_TEST(crash_seeds_keep_synced_batches_preallocated)
{
    for (unsigned seed = 1; seed <= 50; seed++) crash_once(seed, true);
}

SL_TEST(crash_drops_exactly_the_unsynced_tail)
{
    sl_fileio *io = fault_io(true);
    sl_log_config cfg = tu_config();
    cfg.preallocate_bytes = 4096;
    sl_log *log = open_io("s-0", &cfg, io);
    for (int i = 0; i < 5; i++) tu_append(log, 1, 50, 0);
    tu_sync(log);
    for (int i = 0; i < 5; i++) tu_append(log, 1, 50, 0);
    sl_fileio_fault_crash(io, 0);
    sl__log_free_abandoned(log);
    log = open_io("s-0", &cfg, io);
    SL_CHECK_INT(sl_log_end_offset(log), 5);
    sl_log_close(log);
    sl_fileio_fault_free(io);
}
