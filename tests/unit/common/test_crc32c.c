/* Tests for src/common/crc32c.c: known vectors, hardware == software. */
#include "test.h"
#include "common/crc32c.h"

uint32_t sl__crc32c_sw(uint32_t crc, const void *data, size_t len);

SL_TEST(known_vectors)
{
    /* The standard check value of CRC-32C and the RFC 3720 (iSCSI) vectors. */
    SL_CHECK_INT(sl_crc32c(0, "123456789", 9), 0xE3069283u);
    uint8_t zeros[32] = {0}, ones[32];
    memset(ones, 0xff, sizeof ones);
    SL_CHECK_INT(sl_crc32c(0, zeros, 32), 0x8A9136AAu);
    SL_CHECK_INT(sl_crc32c(0, ones, 32), 0x62A8AB43u);
    SL_CHECK_INT(sl_crc32c(0, "", 0), 0);
}

SL_TEST(incremental_and_sw_agree)
{
    uint8_t buf[1000];
    for (int i = 0; i < 1000; i++) buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t len = 0; len < 1000; len += 37) {
        for (size_t off = 0; off < 9; off++) {
            if (off > len) continue;
            uint32_t whole = sl_crc32c(0, buf + off, len - off);
            size_t half = (len - off) / 2;
            uint32_t parts = sl_crc32c(sl_crc32c(0, buf + off, half), buf + off + half, len - off - half);
            SL_CHECK_INT(whole, parts);
            SL_CHECK_INT(whole, sl__crc32c_sw(0, buf + off, len - off));
        }
    }
}
