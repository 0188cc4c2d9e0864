/*
 * segment.h - one segment of a partition log (private to src/storage).
 *
 * A segment is the file <dir>/<20-digit base offset>.log holding whole
 * batches from position 0 to `size`, then (active segment only) zeros up to
 * `file_size` when pre-allocation is on, plus its index (index.h).
 *
 * Lifetime: reference counted. The log's segment list holds one reference;
 * a sync job or a read slice holds one more while it may use the fd. When a
 * segment is deleted (retention, recovery, rewind) it is marked dead, its
 * files are unlinked at once, and the fd is closed when the last reference
 * goes. All of this happens on the log's owner thread; a sync job on
 * another thread only uses fd numbers it copied while holding references.
 *
 * Indexes: the active segment's index is always in memory. A sealed
 * segment's index is loaded from its file on first use and may be dropped
 * again (the log keeps a bounded number loaded, see log.c).
 */
#ifndef SL_STORAGE_SEGMENT_H
#define SL_STORAGE_SEGMENT_H

#include <errno.h>
#include "common/base.h"
#include "common/error.h"
#include "common/fileio.h"
#include "storage/index.h"

#define SL__SEGMENT_NAME_DIGITS 20
#define SL__PATH_MAX            4096

typedef struct sl__segment {
    int64_t base_offset;
    int64_t next_offset;    /* offset after the last batch */
    int64_t size;           /* bytes of whole batches */
    int64_t file_size;      /* file length: size, plus pre-allocated zeros when active */
    int64_t max_timestamp;  /* largest batch MaxTimestamp, SL__TS_NONE when empty */
    int64_t created_ms;     /* wall clock of the first append, for segment_ms */
    int64_t last_entry_pos; /* position of the last index entry, 0 when none */
    int fd;
    int refs;
    bool dead;           /* no longer in the log; files unlinked */
    bool dirty;          /* bytes or a size change not yet fdatasync'ed (kept by log.c) */
    bool index_loaded;   /* idx holds every entry of the segment */
    bool index_on_disk;  /* the .index file describes the segment as it is */
    uint64_t index_used; /* LRU tick of the last index use */
    sl__index idx;
    sl_fileio *io;
} sl__segment;

/* SL_ENOSPC for a full disk (or quota), SL_EIO for anything else. */
static inline int sl__io_err(int errnum)
{
    return errnum == ENOSPC || errnum == EDQUOT ? SL_ENOSPC : SL_EIO;
}

/* "<dir>/<base, 20 digits><ext>"; ext is ".log", ".index", ... */
void sl__segment_path(char *buf, size_t size, const char *dir, int64_t base, const char *ext);
/* Parses a file name "<20 digits><ext>"; false if it is not one. */
bool sl__segment_parse_name(const char *name, const char *ext, int64_t *base);

/* A new empty segment file (truncating a leftover of the same name). */
int sl__segment_create(sl_fileio *io, const char *dir, int64_t base, sl__segment **out);
/* An existing segment file; size/next_offset are for the caller to set. */
int sl__segment_open(sl_fileio *io, const char *dir, int64_t base, sl__segment **out);
void sl__segment_ref(sl__segment *seg);
void sl__segment_unref(sl__segment *seg);
/* Marks the segment dead and unlinks its files; the caller then drops the list's reference. */
int sl__segment_delete(sl__segment *seg, const char *dir);

/* Records the batch just placed at `pos` (== size): index entry, size, next offset, max timestamp. */
void sl__segment_note_batch(sl__segment *seg, const uint8_t *hdr, int64_t pos, int32_t index_interval_bytes);
/* Resets the in-memory state to [0, pos) after a truncation; walks headers to recompute it. */
int sl__segment_truncate(sl__segment *seg, int64_t pos, int64_t next_offset, int32_t index_interval_bytes);

/* Zero-fills the file from file_size up to `end`. */
int sl__segment_prealloc(sl__segment *seg, int64_t end);
/* Cuts the file back to size (drops pre-allocated zeros). */
int sl__segment_trim(sl__segment *seg);

/* Writes the .index file for the segment as it is now (best effort). */
int sl__segment_write_index(sl__segment *seg, const char *dir);
/* Loads the index of a sealed segment from its file, rebuilding it from the
 * batches when the file is missing or stale. */
int sl__segment_load_index(sl__segment *seg, const char *dir, int32_t index_interval_bytes);
void sl__segment_drop_index(sl__segment *seg);

/*
 * Buffered reader of a segment for header walks: `get` makes [pos, pos+len)
 * available (len <= cap) reading ahead up to `limit`, so walking the small
 * batches of one index interval costs one pread.
 */
typedef struct sl__reader {
    sl__segment *seg;
    int64_t limit; /* never read at or past this position */
    uint8_t *buf;
    size_t cap;
    int64_t buf_pos;
    size_t buf_len;
    bool ahead;    /* sequential scan: after each refill, ask the kernel for the next buffer's worth */
} sl__reader;

void sl__reader_init(sl__reader *r, sl__segment *seg, int64_t limit, uint8_t *buf, size_t cap);
/* 0 with *p set; SL_ERANGE when [pos, pos+len) passes the limit; SL_EIO on a read error. */
int sl__reader_get(sl__reader *r, int64_t pos, size_t len, const uint8_t **p);
/* Checks the header at pos is a plausible batch that fits before the limit
 * and starts at `expect_offset` (< 0: any). 1 = yes, 0 = no, <0 = I/O error. */
int sl__reader_batch(sl__reader *r, int64_t pos, int64_t expect_offset, const uint8_t **hdr);

#endif
