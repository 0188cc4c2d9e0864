/*
 * checkpoint.c - the two-slot recovery-point file (format in checkpoint.h).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include "storage/checkpoint.h"
#include "storage/segment.h"
#include "common/log.h"
#include "common/crc32c.h"
#include "common/error.h"

#define CKPT_FLAG_CLEAN 1

static const uint8_t ckpt_magic[4] = {'S', 'L', 'R', 'P'};

int sl__ckpt_open(sl_fileio *io, const char *dir)
{
    char path[SL__PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, SL__CKPT_NAME);
    int fd = io->open(io, path, O_CREAT | O_RDWR, 0644);
    if (fd < 0) {
        int err = errno;
        SL_ERROR("storage", "cannot open %s: %s", path, strerror(err));
        return sl__io_err(err);
    }
    return fd;
}

static bool slot_decode(const uint8_t *s, sl__ckpt *ck)
{
    if (memcmp(s, ckpt_magic, 4) != 0 || sl_be16(s + 4) != 1) return false;
    if (sl_be32(s + 60) != sl_crc32c(0, s, 60)) return false;
    ck->clean = (sl_be16(s + 6) & CKPT_FLAG_CLEAN) != 0;
    ck->seq = sl_be64(s + 8);
    ck->offset = (int64_t)sl_be64(s + 16);
    ck->seg_base = (int64_t)sl_be64(s + 24);
    ck->pos = (int64_t)sl_be64(s + 32);
    return ck->offset >= ck->seg_base && ck->seg_base >= 0 && ck->pos >= 0;
}

int sl__ckpt_read(sl_fileio *io, int fd, sl__ckpt *ck)
{
    uint8_t buf[2 * SL__CKPT_SLOT_SIZE];
    memset(buf, 0, sizeof buf);
    ssize_t n = io->pread(io, fd, buf, sizeof buf, 0);
    if (n < 0) return SL_EIO;
    sl__ckpt a, b;
    bool va = slot_decode(buf, &a), vb = slot_decode(buf + SL__CKPT_SLOT_SIZE, &b);
    if (!va && !vb) return SL_ENOENT;
    *ck = va && (!vb || a.seq > b.seq) ? a : b;
    SL_ASSERT(va || vb);
    return 0;
}

int sl__ckpt_write(sl_fileio *io, int fd, sl__ckpt *ck, bool sync)
{
    SL_ASSERT(ck->offset >= ck->seg_base && ck->pos >= 0);
    uint8_t s[SL__CKPT_SLOT_SIZE];
    memset(s, 0, sizeof s);
    ck->seq++;
    memcpy(s, ckpt_magic, 4);
    sl_put_be16(s + 4, 1);
    sl_put_be16(s + 6, ck->clean ? CKPT_FLAG_CLEAN : 0);
    sl_put_be64(s + 8, ck->seq);
    sl_put_be64(s + 16, (uint64_t)ck->offset);
    sl_put_be64(s + 24, (uint64_t)ck->seg_base);
    sl_put_be64(s + 32, (uint64_t)ck->pos);
    sl_put_be32(s + 60, sl_crc32c(0, s, 60));
    SL_ASSERT(ck->seq > 0);
    int64_t at = (int64_t)(ck->seq % 2) * SL__CKPT_SLOT_SIZE;
    if (io->pwrite(io, fd, s, sizeof s, at) != (ssize_t)sizeof s) return sl__io_err(errno);
    if (sync && io->fdatasync(io, fd) != 0) return sl__io_err(errno);
    return 0;
}
