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

/* Long inputs take the three-lane path: it must agree with the portable one at every length and alignment
   around the lane boundaries, and when split anywhere. */
SL_TEST(three_lanes_agree_with_sw)
{
    static uint8_t buf[20000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    static const size_t lens[] = {3071, 3072, 3073, 3080, 6143, 6144, 6151, 9216, 12289, 19990};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (size_t off = 0; off < 9; off++) {
            size_t len = lens[li];
            uint32_t hw = sl_crc32c(0, buf + off, len);
            SL_CHECK_INT(hw, sl__crc32c_sw(0, buf + off, len));
            size_t cut = len / 3 + off;
            SL_CHECK_INT(sl_crc32c(sl_crc32c(0, buf + off, cut), buf + off + cut, len - cut), hw);
        }
}
