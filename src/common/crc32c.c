/*
 * crc32c.c - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
 *
 * Record batches are checksummed on every produce and on recovery, so this
 * is on the hot path. x86-64 CPUs with SSE4.2 compute it with the crc32
 * instruction, 8 bytes at a time; elsewhere a slicing-by-8 table does 8
 * bytes per step. The tables are built on first use (thread-safe via
 * pthread_once) so the binary carries no 12 KiB of constants.
 *
 * Three streams at once. The crc32 instruction takes 3 cycles but a new
 * one can start every cycle, so one dependent chain uses a third of the
 * unit (it was 13% of the broker's CPU at 700 MB/s of 1 KiB messages).
 * Inputs of at least 3 * LANE bytes are cut into three lanes computed
 * side by side, then joined: the register after "A then B" is
 * shift(reg after A) ^ (reg of B started from 0), where shift advances a
 * register over LANE zero bytes. shift is linear over GF(2), so it is four
 * table lookups (shift_table, built from the 32 unit vectors at init).
 */
#include <pthread.h>
#include <string.h>
#include "common/crc32c.h"

#define POLY 0x82F63B78u

#define LANE 1024 /* bytes per lane: the join costs 8 lookups per 3 KiB */

static uint32_t table[8][256];
static uint32_t shift_table[4][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;
static int have_hw;

static void init_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (POLY & (0u - (c & 1)));
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
    /* shift(1 << bit) for each bit: run the register over LANE zero bytes. */
    uint32_t unit[32];
    for (int bit = 0; bit < 32; bit++) {
        uint32_t c = 1u << bit;
        for (int k = 0; k < LANE; k++) c = (c >> 8) ^ table[0][c & 0xff];
        unit[bit] = c;
    }
    for (int t = 0; t < 4; t++)
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t v = 0;
            for (int j = 0; j < 8; j++)
                if (b & (1u << j)) v ^= unit[8 * t + j];
            shift_table[t][b] = v;
        }
#if defined(__x86_64__)
    __builtin_cpu_init();
    have_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len && ((uintptr_t)p & 7)) {
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
        len--;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint32_t lo = (uint32_t)w ^ crc, hi = (uint32_t)(w >> 32);
        crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
              table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
              table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    return crc;
}

#if defined(__x86_64__)
static inline uint32_t shift_lane(uint32_t c)
{
    return shift_table[0][c & 0xff] ^ shift_table[1][(c >> 8) & 0xff] ^ shift_table[2][(c >> 16) & 0xff] ^
           shift_table[3][c >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = crc;
    while (len && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        len--;
    }
    while (len >= 3 * LANE) {
        uint64_t c1 = 0, c2 = 0;
        for (size_t i = 0; i < LANE; i += 8) {
            uint64_t w0, w1, w2;
            memcpy(&w0, p + i, 8);
            memcpy(&w1, p + LANE + i, 8);
            memcpy(&w2, p + 2 * LANE + i, 8);
            c = __builtin_ia32_crc32di(c, w0);
            c1 = __builtin_ia32_crc32di(c1, w1);
            c2 = __builtin_ia32_crc32di(c2, w2);
        }
        c = shift_lane(shift_lane((uint32_t)c) ^ (uint32_t)c1) ^ (uint32_t)c2;
        p += 3 * LANE;
        len -= 3 * LANE;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        len -= 8;
    }
    while (len--) c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return (uint32_t)c;
}
#endif

uint32_t sl_crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&table_once, init_tables);
    crc = ~crc;
#if defined(__x86_64__)
    if (have_hw) return ~crc_hw(crc, data, len);
#endif
    return ~crc_sw(crc, data, len);
}

/* For tests: the portable path, whatever the CPU. */
uint32_t sl__crc32c_sw(uint32_t crc, const void *data, size_t len);
uint32_t sl__crc32c_sw(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&table_once, init_tables);
    return ~crc_sw(~crc, data, len);
}
