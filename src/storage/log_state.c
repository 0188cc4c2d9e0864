/*
 * log_state.c - bookkeeping shared by the log's files: the sorted segment
 * list, positions, dirty tracking, the bounded cache of sealed-segment
 * indexes, read hints and the recovery point.
 *
 * Index memory is bounded: the active segment's index is always loaded
 * (it is appended to); at most SL__INDEX_CACHE sealed segments keep theirs
 * in memory, evicted least-recently-used. An evicted index is re-read from
 * its .index file on the next lookup in that segment.
 */
#include <string.h>
#include <unistd.h>
#include "storage/log_int.h"
#include "common/log.h"
#include "common/alloc.h"

int sl__log_find(const sl_log *log, int64_t offset)
{
    int lo = 0, hi = log->nsegs; /* answer: lo - 1 */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (log->segs[mid]->base_offset <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    SL_ASSERT(lo == 0 || log->segs[lo - 1]->base_offset <= offset);
    return lo - 1;
}

sl__segment *sl__log_locate(const sl_log *log, sl__logpos at, int64_t *pos)
{
    int i = sl__log_find(log, at.offset);
    SL_ASSERT(i >= 0);
    sl__segment *seg = log->segs[i];
    if (seg->base_offset == at.seg_base) {
        *pos = at.pos;
    } else if (at.offset == seg->base_offset) {
        *pos = 0; /* recorded as the end of the previous segment */
    } else {
        SL_ASSERT(at.offset == seg->next_offset); /* recorded as the start of a segment since deleted */
        *pos = seg->size;
    }
    SL_ASSERT(*pos >= 0 && *pos <= seg->size);
    return seg;
}

void sl__log_dirty(sl_log *log, sl__segment *seg)
{
    if (seg->dirty) return;
    seg->dirty = true;
    log->ndirty++;
    SL_ASSERT(log->ndirty <= log->nsegs);
}

void sl__log_index_trim(sl_log *log, const sl__segment *keep)
{
    while (log->nloaded > SL__INDEX_CACHE) {
        sl__segment *victim = NULL;
        for (int i = 0; i < log->nsegs - 1; i++) {
            sl__segment *seg = log->segs[i];
            if (seg->index_loaded && seg != keep && (!victim || seg->index_used < victim->index_used)) victim = seg;
        }
        if (!victim) return;
        if (!victim->index_on_disk) sl__segment_write_index(victim, log->dir);
        sl__segment_drop_index(victim);
        log->nloaded--;
    }
    SL_ASSERT(log->nloaded >= 0);
}

int sl__log_index(sl_log *log, sl__segment *seg)
{
    seg->index_used = ++log->index_tick;
    if (seg->index_loaded) return 0;
    SL_ASSERT(seg != sl__log_active(log) && !seg->dead);
    int rc = sl__segment_load_index(seg, log->dir, log->cfg.index_interval_bytes);
    if (rc) return rc;
    log->nloaded++;
    sl__log_index_trim(log, seg);
    return 0;
}

void sl__log_hints_clear(sl_log *log)
{
    memset(log->hints, 0, sizeof log->hints);
    log->next_hint = 0;
}

int sl__log_drop_segment(sl_log *log, int i)
{
    SL_ASSERT(i >= 0 && i < log->nsegs);
    sl__segment *seg = log->segs[i];
    int rc = sl__segment_delete(seg, log->dir);
    if (rc) return rc;
    if (seg->dirty) {
        seg->dirty = false;
        log->ndirty--;
    }
    bool was_active = i == log->nsegs - 1;
    if (seg->index_loaded && !was_active) log->nloaded--;
    memmove(&log->segs[i], &log->segs[i + 1], (size_t)(log->nsegs - i - 1) * sizeof *log->segs);
    log->nsegs--;
    /* A sealed segment that becomes active no longer counts against the cache. */
    if (was_active && log->nsegs > 0 && sl__log_active(log)->index_loaded) log->nloaded--;
    log->total_size -= seg->size;
    log->dir_dirty = true;
    sl__log_hints_clear(log);
    sl__segment_unref(seg);
    SL_ASSERT(log->ndirty >= 0 && log->nloaded >= 0);
    return 0;
}

void sl__log_push_segment(sl_log *log, sl__segment *seg)
{
    SL_ASSERT(log->nsegs == 0 || sl__log_active(log)->next_offset == seg->base_offset);
    if (log->nsegs == log->cap) {
        log->cap = log->cap ? log->cap * 2 : 8;
        log->segs = sl_realloc(log->segs, (size_t)log->cap * sizeof *log->segs);
    }
    log->segs[log->nsegs++] = seg;
    log->total_size += seg->size;
    if (seg->dirty) log->ndirty++;
}

int sl__log_checkpoint(sl_log *log, sl__logpos at, bool clean, bool sync)
{
    SL_ASSERT(at.offset >= at.seg_base && at.pos >= 0);
    sl__ckpt ck = log->ckpt;
    ck.offset = at.offset;
    ck.seg_base = at.seg_base;
    ck.pos = at.pos;
    ck.clean = clean;
    int rc = sl__ckpt_write(log->io, log->ckpt_fd, &ck, sync);
    if (rc) {
        SL_WARN("storage", "log %s: cannot write the recovery point: %s (the next open will scan more)", log->dir,
                sl_strerror(rc));
        return rc;
    }
    log->ckpt = ck;
    return 0;
}

void sl__log_free_abandoned(sl_log *log)
{
    if (!log) return;
    if (log->job) sl__log_sync_job_free(log->job);
    log->job = NULL;
    for (int i = 0; i < log->nsegs; i++) sl__segment_unref(log->segs[i]);
    sl_free(log->segs);
    if (log->dir_fd >= 0) log->io->close(log->io, log->dir_fd);
    if (log->ckpt_fd >= 0) log->io->close(log->io, log->ckpt_fd);
    sl_free(log->dir);
    sl_free(log);
}
