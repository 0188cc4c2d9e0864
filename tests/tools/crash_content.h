/*
 * Message content of the kill -9 crash test, shared by sl_crash_producer.c
 * (which sends it) and sl_crash_verify.c (which re-derives it to compare).
 *
 * Everything is a pure function of (run, inst, seq): run = crash iteration,
 * inst = producer instance, seq = message number within that producer. So the
 * producer's log of acknowledged messages needs only those three numbers and
 * the (partition, offset) the broker acknowledged:
 *
 *   log line:  "<partition> <offset> <run> <inst> <seq>\n"
 *
 *   key     "r<run>-i<inst>-s<seq>"
 *   value   h = crash_hash(run, inst, seq); length h % 300 bytes, or
 *           4096 + h % 4096 bytes for one message in 64 (so batches cross
 *           page and sector boundaries); bytes from an xorshift stream
 *           seeded by h
 *   headers "run" = decimal run, "seq" = decimal seq, "h" = h, 8 bytes
 *           big-endian — in that order
 */
#ifndef SL_TESTS_CRASH_CONTENT_H
#define SL_TESTS_CRASH_CONTENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define CRASH_VALUE_BYTES_MAX (4096 + 4096)
#define CRASH_HEADERS         3

struct crash_msg {
    char key[48];
    size_t key_len;
    unsigned char value[CRASH_VALUE_BYTES_MAX];
    size_t value_len;
    char run_str[16];
    char seq_str[24];
    unsigned char h_be[8];
};

/* splitmix64 finalizer over the three inputs. */
static inline uint64_t crash_hash(uint32_t run, uint32_t inst, uint64_t seq)
{
    uint64_t x = seq * 0x9e3779b97f4a7c15ull ^ ((uint64_t)run << 40) ^ ((uint64_t)inst << 20);
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static inline void crash_msg_make(uint32_t run, uint32_t inst, uint64_t seq, struct crash_msg *m)
{
    uint64_t h = crash_hash(run, inst, seq);
    int n = snprintf(m->key, sizeof(m->key), "r%u-i%u-s%llu", run, inst, (unsigned long long)seq);
    m->key_len = n > 0 ? (size_t)n : 0;
    m->value_len = h % 64 == 0 ? 4096 + (size_t)(h % 4096) : (size_t)(h % 300);
    uint64_t s = h | 1;
    for (size_t i = 0; i < m->value_len; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        m->value[i] = (unsigned char)s;
    }
    snprintf(m->run_str, sizeof(m->run_str), "%u", run);
    snprintf(m->seq_str, sizeof(m->seq_str), "%llu", (unsigned long long)seq);
    for (int i = 0; i < 8; i++) m->h_be[i] = (unsigned char)(h >> (56 - 8 * i));
}

#endif
