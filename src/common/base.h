/*
 * base.h - assertions and the few macros every Sluice file uses.
 *
 * SL_ASSERT documents an invariant: a bug if it fails, so the process dies
 * with the expression, file and line (never compiled out: the broker's data
 * is worth more than the nanoseconds). Operating errors (a full disk, a bad
 * frame) never use it; they return an SL_E* code, see error.h.
 */
#ifndef SL_COMMON_BASE_H
#define SL_COMMON_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#if defined(__GNUC__)
#define SL_LIKELY(x) __builtin_expect(!!(x), 1)
#define SL_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SL_NORETURN __attribute__((noreturn))
#define SL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define SL_UNUSED __attribute__((unused))
#else
#define SL_LIKELY(x) (x)
#define SL_UNLIKELY(x) (x)
#define SL_NORETURN
#define SL_PRINTF(f, a)
#define SL_UNUSED
#endif

SL_NORETURN void sl_panic(const char *file, int line, const char *fmt, ...) SL_PRINTF(3, 4);

#define SL_ASSERT(e)                                                        \
    do {                                                                    \
        if (SL_UNLIKELY(!(e)))                                              \
            sl_panic(__FILE__, __LINE__, "assertion failed: %s", #e);       \
    } while (0)

#define SL_UNREACHABLE() sl_panic(__FILE__, __LINE__, "unreachable")

#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Big-endian loads and stores (the Kafka wire and the on-disk batch header). */
static inline uint16_t sl_be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t sl_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t sl_be64(const uint8_t *p)
{
    return ((uint64_t)sl_be32(p) << 32) | sl_be32(p + 4);
}
static inline void sl_put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void sl_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void sl_put_be64(uint8_t *p, uint64_t v)
{
    sl_put_be32(p, (uint32_t)(v >> 32));
    sl_put_be32(p + 4, (uint32_t)v);
}

#endif
