/*
 * test_checkpoint.c - the two-slot recovery-point file.
 */
#include <unistd.h>
#include "test.h"
#include "storage/checkpoint.h"
#include "common/error.h"

SL_TEST(checkpoint_slots_alternate_and_survive_a_torn_write)
{
    sl_fileio *io = sl_fileio_system();
    int fd = sl__ckpt_open(io, sl_test_tmpdir());
    SL_CHECK(fd >= 0);
    sl__ckpt ck = {0}, r;
    SL_CHECK_INT(sl__ckpt_read(io, fd, &r), SL_ENOENT);
    ck = (sl__ckpt){0, 100, 50, 4096, false};
    SL_CHECK_OK(sl__ckpt_write(io, fd, &ck, true));
    SL_CHECK_INT(ck.seq, 1);
    ck.offset = 200;
    ck.pos = 8192;
    ck.clean = true;
    SL_CHECK_OK(sl__ckpt_write(io, fd, &ck, false));
    SL_CHECK_OK(sl__ckpt_read(io, fd, &r));
    SL_CHECK_INT(r.seq, 2);
    SL_CHECK_INT(r.offset, 200);
    SL_CHECK_INT(r.seg_base, 50);
    SL_CHECK_INT(r.pos, 8192);
    SL_CHECK(r.clean);
    /* Tear slot 0 (seq 2): slot 1 (seq 1) is what remains. */
    uint8_t junk[10] = {1, 2, 3};
    SL_CHECK_INT(pwrite(fd, junk, sizeof junk, 30), (ssize_t)sizeof junk);
    SL_CHECK_OK(sl__ckpt_read(io, fd, &r));
    SL_CHECK_INT(r.seq, 1);
    SL_CHECK_INT(r.offset, 100);
    SL_CHECK(!r.clean);
    SL_CHECK_INT(pwrite(fd, junk, sizeof junk, SL__CKPT_SLOT_SIZE + 30), (ssize_t)sizeof junk);
    SL_CHECK_INT(sl__ckpt_read(io, fd, &r), SL_ENOENT);
    io->close(io, fd);
}
