/*
 * log.h - one partition's log: a directory of segment files holding Kafka
 * v2 record batches byte for byte, with sparse offset/time indexes, group
 * commit, zero-copy reads, retention and crash recovery.
 *
 * The on-disk format, the recovery algorithm and the durability rules are
 * in docs/internals/storage.md. In short:
 *   <dir>/<20-digit base offset>.log    batches, pre-allocated with zeros
 *   <dir>/<20-digit base offset>.index  offset+time index of a sealed segment
 *   <dir>/recovery-point                last verified durable position, clean flag
 *
 * Threads: every function runs on the owner's (broker loop) thread, except
 * sl_log_sync_run, which may run on any thread and touches only the file
 * descriptors captured in its job.
 *
 * Offsets: start <= high watermark <= end. Readers see [start, HW). With
 * hw_on_append HW follows the end after every append; without it HW is the
 * durable offset, advanced by sl_log_sync_finish.
 */
#ifndef SL_STORAGE_LOG_H
#define SL_STORAGE_LOG_H

#include "common/base.h"
#include "common/clock.h"
#include "common/fileio.h"
#include "storage/batch.h"

#define SL_LOG_SEGMENT_BYTES_MAX     ((int64_t)INT32_MAX) /* index positions are 32-bit */
#define SL_LOG_PREALLOCATE_BYTES_MAX ((int64_t)1 << 30)
#define SL_LOG_APPEND_BYTES_MAX      ((size_t)1 << 30) /* one append's blob */

typedef struct sl_log_config {
    int64_t segment_bytes;        /* roll when the active segment would pass this (segment.bytes, 1 GiB) */
    int64_t segment_ms;           /* roll when the active segment's first append is older (segment.ms, 7 days) */
    int64_t retention_bytes;      /* -1 = unlimited (retention.bytes) */
    int64_t retention_ms;         /* -1 = unlimited (retention.ms, 7 days) */
    int32_t index_interval_bytes; /* a sparse index entry every this many bytes (4096); 0 = every batch */
    int64_t preallocate_bytes;    /* keep the active segment zero-filled this far past its end; 0 = off */
    int64_t preallocate_rate_max; /* ...but only while it appends fewer bytes/s than this; 0 = at any rate */
    bool hw_on_append;            /* true: HW = end after each append; false: HW = durable end */
} sl_log_config;

void sl_log_config_default(sl_log_config *cfg);
/* SL_EINVAL (with a reason in *why) for values out of range. */
int sl_log_config_check(const sl_log_config *cfg, const char **why);

typedef struct sl_log sl_log;

/*
 * Opens (creating the directory if needed) and recovers the log in `dir`.
 * io and clock must outlive the log. SL_ECORRUPT or SL_EIO with a logged
 * message on failure; SL_EINVAL for a bad config.
 */
int sl_log_open(const char *dir, const sl_log_config *cfg, sl_fileio *io, const sl_clock *clock, sl_log **out);
/* Syncs everything, trims pre-allocation, writes indexes and the clean flag,
 * frees. No sync job may be outstanding; slices may be (they keep their
 * segment open until released). */
void sl_log_close(sl_log *log);
/* Closes without syncing and deletes the directory (DeleteTopics). The
 * directory is first renamed to "<dir>.deleted" so a crash mid-way leaves
 * nothing that looks like a partition; a broker starting up should remove
 * such leftovers. */
int sl_log_remove(sl_log *log);
int sl_log_set_config(sl_log *log, const sl_log_config *cfg);

/*
 * Appends batches checked by sl_batches_validate, with one write. Patches
 * each batch's BaseOffset (consecutive from the log end) and
 * PartitionLeaderEpoch (0) in the caller's buffer, rolls first if needed
 * and updates the in-memory index. On a write failure the log is unchanged
 * and SL_EIO or SL_ENOSPC is returned; SL_EIO too once the log has failed.
 */
int sl_log_append(sl_log *log, uint8_t *batches, size_t len, const sl_batches_info *info, int64_t *base_offset_out);

const char *sl_log_dir(const sl_log *log);       /* its directory */
int64_t sl_log_start_offset(const sl_log *log);
int64_t sl_log_end_offset(const sl_log *log);     /* next offset to assign (LEO) */
int64_t sl_log_high_watermark(const sl_log *log); /* readers see offsets < HW */
int64_t sl_log_durable_offset(const sl_log *log); /* offsets below it survive a power loss */
int64_t sl_log_size_bytes(const sl_log *log);     /* bytes of batches in all segments */
int sl_log_segment_count(const sl_log *log);
bool sl_log_failed(const sl_log *log); /* a rewind failed: appends return SL_EIO */

/*
 * Group commit: prepare (owner thread) captures every segment with unsynced
 * bytes, holding references so a roll or retention cannot close them, and
 * the end they cover; run (any thread) fdatasyncs them (and the directory
 * when files were created or deleted); finish (owner thread) advances the
 * durable point if rc == 0, else rewinds the log to the last durable point
 * (unacknowledged bytes must not reappear after a client retries); if the
 * rewind fails too the log is failed. finish frees the job.
 */
typedef struct sl_log_sync_job sl_log_sync_job;
sl_log_sync_job *sl_log_sync_prepare(sl_log *log); /* NULL: nothing unsynced, a job is out, or failed */
int sl_log_sync_run(sl_log_sync_job *job);
int64_t sl_log_sync_job_end_offset(const sl_log_sync_job *job);
void sl_log_sync_finish(sl_log *log, sl_log_sync_job *job, int rc);

/*
 * Zero-copy read of whole batches from the one containing `offset`,
 * stopping before HW, at the end of that segment, and before max_bytes --
 * but always at least the first batch (KIP-74). len 0 when offset == HW;
 * SL_ERANGE when offset < start or > HW. A non-empty slice holds a segment
 * reference until sl_log_slice_release(ref); the fd stays valid until then.
 */
typedef struct sl_log_slice {
    int fd;
    int64_t file_off;
    int64_t len;
    void *ref;
    int64_t end_offset; /* the offset after its last batch (== offset when empty) */
} sl_log_slice;
int sl_log_read(sl_log *log, int64_t offset, int64_t max_bytes, sl_log_slice *out);
/* The same, stopping before `until` (<= HW, and the base offset of a batch, or HW): a read_committed
 * fetch stops at the last stable offset. len 0 when offset >= until. */
int sl_log_read_until(sl_log *log, int64_t offset, int64_t max_bytes, int64_t until, sl_log_slice *out);
void sl_log_slice_release(void *ref);

/* Calls fn on every whole batch from the one containing `from` (or the log start) up to HW, in order,
 * reading 4 MiB at a time through the log's fileio. Stops at fn's first non-zero return, which it
 * returns; SL_EIO/SL_ECORRUPT when the log cannot be read. For rebuilding state kept in a log. */
typedef int (*sl_log_scan_fn)(void *arg, const uint8_t *batch, size_t len);
int sl_log_scan(sl_log *log, int64_t from, sl_log_scan_fn fn, void *arg);

/* ListOffsets by timestamp: the first record (below HW) of the first batch
 * whose MaxTimestamp >= ts_ms with a timestamp >= ts_ms (the batch's base
 * offset and MaxTimestamp for compressed batches); -1/-1 when none. */
int sl_log_offset_for_time(sl_log *log, int64_t ts_ms, int64_t *offset_out, int64_t *ts_out);

/* Deletes whole sealed segments below HW that are past retention_ms (by
 * their largest MaxTimestamp) or beyond retention_bytes, oldest first.
 * Returns the number deleted or an SL_E code. */
int sl_log_enforce_retention(sl_log *log);
/* Deletes whole sealed segments that end at or below `offset` (and below HW), oldest first: the
 * compaction of an internal topic whose state from `offset` on supersedes everything before it.
 * Returns the number deleted or an SL_E code. */
int sl_log_delete_before(sl_log *log, int64_t offset);

#endif
