/*
 * log_int.h - the partition log's state, shared by log.c (lifecycle,
 * append, roll, retention), recover.c (open-time recovery), log_read.c
 * (reads, time lookups) and log_sync.c (group commit, rewind). Private to
 * src/storage.
 *
 * Positions. A point in the log is an offset plus where it falls on disk
 * (segment base and byte position). A point at the end of a sealed segment
 * is the same point as the start of the next one; sl__log_locate resolves
 * either spelling to the segment that holds the offset.
 *
 * Invariants (checked by SL_ASSERTs where they are relied on):
 *   - segs[] is sorted by base offset, non-empty, and contiguous:
 *     segs[i]->next_offset == segs[i+1]->base_offset; segs[nsegs-1] is active;
 *   - start <= durable <= end and start <= hw <= end, all at batch boundaries;
 *   - !hw_on_append implies hw <= durable;
 *   - ndirty counts the segments with dirty set; nloaded counts the sealed
 *     segments whose index is in memory (<= SL__INDEX_CACHE after each call).
 */
#ifndef SL_STORAGE_LOG_INT_H
#define SL_STORAGE_LOG_INT_H

#include "storage/log.h"
#include "storage/segment.h"
#include "storage/checkpoint.h"

#define SL__READ_HINTS       4 /* remembered end points of recent reads */
#define SL__INDEX_CACHE      8 /* sealed segments with their index in memory */
#define SL__CKPT_EVERY_BYTES ((int64_t)16 << 20)
#define SL__PREALLOC_STEP    ((int64_t)1 << 20) /* most zeros written by one extension (+ the append) */
#define SL__RATE_WINDOW_MS   100                 /* append rate measured over windows this long */

typedef struct sl__logpos {
    int64_t offset;
    int64_t seg_base;
    int64_t pos;
} sl__logpos;

typedef struct sl__read_hint {
    sl__segment *seg; /* NULL = unused; never a dead segment */
    int64_t offset;
    int64_t pos;
} sl__read_hint;

struct sl_log {
    char *dir;
    int dir_fd;
    int ckpt_fd;
    sl_fileio *io;
    const sl_clock *clock;
    sl_log_config cfg;
    sl__segment **segs;
    int nsegs, cap;
    int ndirty;
    int nloaded;
    uint64_t index_tick;
    int64_t total_size; /* sum of segs[i]->size */
    bool dir_dirty;     /* files created or deleted since the last directory fsync */
    bool failed;
    bool prealloc_failing; /* the last pre-allocation failed (logged once) */
    bool append_failing;   /* the last append failed (logged once) */
    bool rate_fast;        /* the last whole rate window appended more than preallocate_rate_max */
    int64_t rate_window_start_ms;
    int64_t rate_window_bytes;
    sl__logpos durable;
    sl__logpos hw;
    sl__ckpt ckpt;        /* as last written */
    sl_log_sync_job *job; /* the outstanding sync job, if any */
    sl__read_hint hints[SL__READ_HINTS];
    int next_hint;
};

static inline sl__segment *sl__log_active(const sl_log *log)
{
    return log->segs[log->nsegs - 1];
}

static inline sl__logpos sl__log_end(const sl_log *log)
{
    const sl__segment *a = sl__log_active(log);
    return (sl__logpos){a->next_offset, a->base_offset, a->size};
}

/* Index in segs of the segment holding offset (the last with base <= offset). */
int sl__log_find(const sl_log *log, int64_t offset);
/* The segment and byte position of a point. */
sl__segment *sl__log_locate(const sl_log *log, sl__logpos at, int64_t *pos);
void sl__log_dirty(sl_log *log, sl__segment *seg);
/* Makes sure seg's index is in memory, evicting the least recently used sealed one. */
int sl__log_index(sl_log *log, sl__segment *seg);
/* Evicts sealed indexes down to the cache bound (never `keep`). */
void sl__log_index_trim(sl_log *log, const sl__segment *keep);
/* Deletes segs[i] (files unlinked, list reference dropped). */
int sl__log_drop_segment(sl_log *log, int i);
void sl__log_hints_clear(sl_log *log);
void sl__log_push_segment(sl_log *log, sl__segment *seg);
/* Writes the recovery point at `at`; `sync` for the durable writes of open/close. */
int sl__log_checkpoint(sl_log *log, sl__logpos at, bool clean, bool sync);

/* Keeps zero-filled space ahead of the active segment's end (after an append of len bytes). */
void sl__log_prealloc(sl_log *log, sl__segment *a, size_t len);

int sl__log_recover(sl_log *log);
/* Drops the references a sync job holds and frees it (log_sync.c). */
void sl__log_sync_job_free(sl_log_sync_job *job);

/* Test hook: frees the log as a crashed process would leave it -- no write,
 * no sync, no trim, no checkpoint; only closes fds and frees memory. */
void sl__log_free_abandoned(sl_log *log);

#endif
