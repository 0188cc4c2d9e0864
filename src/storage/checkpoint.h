/*
 * checkpoint.h - the recovery point of a partition log (private to
 * src/storage).
 *
 * <dir>/recovery-point says "every batch before this position was synced
 * and verified": recovery re-checks CRCs only from there on. It also holds
 * the clean-shutdown flag, set by sl_log_close after everything was synced
 * and trimmed, and cleared (durably) by sl_log_open before any append.
 *
 * The file has two 64-byte slots written alternately (sequence number
 * parity), so a torn write of one slot leaves the other; the valid slot
 * with the highest sequence wins. Runtime updates are plain pwrites, not
 * synced: a lost update only makes the next recovery scan a little more.
 *
 *   slot, 64 bytes, big-endian
 *     0  4  magic "SLRP"
 *     4  2  version (1)
 *     6  2  flags: bit 0 = clean shutdown
 *     8  8  sequence number
 *    16  8  offset: the next offset after the verified prefix
 *    24  8  base offset of the segment holding that position
 *    32  8  position in that segment
 *    40 20  zero
 *    60  4  CRC-32C of bytes 0..59
 */
#ifndef SL_STORAGE_CHECKPOINT_H
#define SL_STORAGE_CHECKPOINT_H

#include "common/base.h"
#include "common/fileio.h"

#define SL__CKPT_NAME      "recovery-point"
#define SL__CKPT_SLOT_SIZE 64

typedef struct sl__ckpt {
    uint64_t seq;
    int64_t offset;
    int64_t seg_base;
    int64_t pos;
    bool clean;
} sl__ckpt;

/* Opens (creating if absent) the file; returns the fd or an SL_E code. */
int sl__ckpt_open(sl_fileio *io, const char *dir);
/* The newest valid slot; SL_ENOENT when there is none. */
int sl__ckpt_read(sl_fileio *io, int fd, sl__ckpt *ck);
/* Writes ck with seq+1 into the other slot (ck->seq is updated); syncs when asked. */
int sl__ckpt_write(sl_fileio *io, int fd, sl__ckpt *ck, bool sync);

#endif
