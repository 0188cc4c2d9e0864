/*
 * log_sync.c - group commit and the rewind after a failed sync.
 *
 *   owner thread                 any thread              owner thread
 *   prepare: capture dirty  -->  run: fdatasync each --> finish(rc)
 *   segments (+refs), end        fd (+ fsync dir)        rc == 0: durable = end
 *                                                        rc != 0: rewind to durable
 *
 * One job at a time per log. prepare clears the dirty flags of what it
 * captured; appends made while the job runs set them again and are covered
 * by the next job. The job holds a reference on each captured segment, so
 * a roll, retention or rewind meanwhile cannot close an fd the sync thread
 * is about to use.
 *
 * Why rewind: after fdatasync fails, Linux may have dropped the dirty pages
 * (they are marked clean), so what the page cache serves may not be on
 * disk, and a retry of the same produce would otherwise be appended *after*
 * bytes that were never acknowledged. Cutting the log back to the durable
 * point (ftruncate + fdatasync, deleting segments created since) keeps the
 * log equal to what was acknowledged. If that fails too, the log is marked
 * failed: reads go on, appends return SL_EIO.
 */
#include <stdio.h>
#include <string.h>
#include "storage/log_int.h"
#include "common/log.h"
#include "common/alloc.h"

struct sl_log_sync_job {
    sl_log *log;
    sl_fileio *io;
    sl__logpos end;
    int dir_fd; /* -1: the directory needs no fsync */
    int n;
    sl__segment **segs; /* referenced */
    int *fds;           /* copies of segs[i]->fd, all the sync thread touches */
};

sl_log_sync_job *sl_log_sync_prepare(sl_log *log)
{
    SL_ASSERT(log && log->ndirty >= 0);
    if (log->job || log->failed || (log->ndirty == 0 && !log->dir_dirty)) return NULL;
    int n = log->ndirty;
    size_t bytes = sizeof(sl_log_sync_job) + (size_t)n * (sizeof(sl__segment *) + sizeof(int));
    sl_log_sync_job *job = sl_calloc(1, bytes);
    job->segs = (sl__segment **)(job + 1);
    job->fds = (int *)(job->segs + n);
    int k = 0;
    for (int i = log->nsegs - 1; i >= 0 && k < n; i--) {
        sl__segment *seg = log->segs[i];
        if (!seg->dirty) continue;
        seg->dirty = false;
        sl__segment_ref(seg);
        job->segs[k] = seg;
        job->fds[k] = seg->fd;
        k++;
    }
    SL_ASSERT(k == n);
    log->ndirty = 0;
    job->n = n;
    job->log = log;
    job->io = log->io;
    job->dir_fd = log->dir_dirty ? log->dir_fd : -1;
    log->dir_dirty = false;
    job->end = sl__log_end(log);
    log->job = job;
    return job;
}

int sl_log_sync_run(sl_log_sync_job *job)
{
    SL_ASSERT(job && job->n >= 0);
    sl_fileio *io = job->io;
    for (int i = 0; i < job->n; i++)
        if (io->fdatasync(io, job->fds[i]) != 0) return sl__io_err(errno);
    if (job->dir_fd >= 0 && io->fsync(io, job->dir_fd) != 0) return sl__io_err(errno);
    return 0;
}

int64_t sl_log_sync_job_end_offset(const sl_log_sync_job *job)
{
    return job->end.offset;
}

void sl__log_sync_job_free(sl_log_sync_job *job)
{
    for (int i = 0; i < job->n; i++) sl__segment_unref(job->segs[i]);
    sl_free(job);
}

static void advance(sl_log *log, sl__logpos end)
{
    if (end.offset > log->durable.offset) log->durable = end;
    if (!log->cfg.hw_on_append && log->hw.offset < log->durable.offset) log->hw = log->durable;
    /* A cheap, unsynced recovery point whenever the durable point enters a
     * new segment or moves far: it bounds what recovery has to CRC. */
    const sl__logpos *d = &log->durable;
    if (d->seg_base != log->ckpt.seg_base || d->pos - log->ckpt.pos >= SL__CKPT_EVERY_BYTES)
        sl__log_checkpoint(log, *d, false, false);
    SL_ASSERT(log->hw.offset <= sl__log_end(log).offset);
}

/* Cuts the tail of seg (now active) back to pos, in memory and on disk. */
static int truncate_active(sl_log *log, sl__segment *seg, int64_t pos, int64_t offset)
{
    sl_fileio *io = log->io;
    SL_ASSERT(seg == sl__log_active(log) && pos >= 0 && pos <= seg->size);
    if (!seg->index_loaded) {
        int rc = sl__segment_load_index(seg, log->dir, log->cfg.index_interval_bytes);
        if (rc) return rc;
    }
    if (pos < seg->file_size) {
        if (io->ftruncate(io, seg->fd, pos) != 0) return sl__io_err(errno);
        seg->file_size = pos;
    }
    if (pos < seg->size) {
        int64_t old = seg->size;
        char path[SL__PATH_MAX];
        sl__segment_path(path, sizeof path, log->dir, seg->base_offset, ".index");
        io->unlink(io, path);
        int rc = sl__segment_truncate(seg, pos, offset, log->cfg.index_interval_bytes);
        log->total_size -= old - seg->size;
        if (rc) return rc;
    }
    SL_ASSERT(seg->size == pos && seg->file_size == pos && seg->next_offset == offset);
    if (seg->created_ms == 0) seg->created_ms = sl_wall_ms(log->clock);
    if (io->fdatasync(io, seg->fd) != 0) return sl__io_err(errno);
    if (seg->dirty) {
        seg->dirty = false;
        log->ndirty--;
    }
    return 0;
}

static int rewind_to(sl_log *log, sl__logpos to)
{
    int64_t pos;
    sl__segment *seg = sl__log_locate(log, to, &pos);
    while (sl__log_active(log) != seg) {
        int rc = sl__log_drop_segment(log, log->nsegs - 1);
        if (rc) return rc;
    }
    int rc = truncate_active(log, seg, pos, to.offset);
    if (rc) return rc;
    if (log->io->fsync(log->io, log->dir_fd) != 0) return sl__io_err(errno);
    log->dir_dirty = false;
    SL_ASSERT(sl__log_end(log).offset == to.offset);
    return 0;
}

void sl_log_sync_finish(sl_log *log, sl_log_sync_job *job, int rc)
{
    SL_ASSERT(job && log->job == job && job->log == log);
    log->job = NULL;
    if (rc == 0) {
        advance(log, job->end);
        sl__log_sync_job_free(job);
        return;
    }
    int64_t end = sl__log_end(log).offset;
    SL_ERROR("storage", "log %s: fdatasync failed: %s; dropping the %lld unsynced offset(s) [%lld, %lld)", log->dir,
             sl_strerror(rc), (long long)(end - log->durable.offset), (long long)log->durable.offset, (long long)end);
    /* What the job covered is not known to be on disk: sync it again later. */
    for (int i = 0; i < job->n; i++)
        if (!job->segs[i]->dead) sl__log_dirty(log, job->segs[i]);
    if (job->dir_fd >= 0) log->dir_dirty = true;
    sl__log_sync_job_free(job);
    int rrc = rewind_to(log, log->durable);
    if (rrc) {
        log->failed = true;
        SL_ERROR("storage", "log %s: cannot cut the log back to offset %lld: %s; the log is read-only now", log->dir,
                 (long long)log->durable.offset, sl_strerror(rrc));
    }
    sl__log_hints_clear(log);
    sl__logpos e = sl__log_end(log);
    if (log->cfg.hw_on_append || log->hw.offset > e.offset) log->hw = e;
    SL_ASSERT(log->hw.offset <= e.offset);
}
