/*
 * clock.h - time through a table, so tests run in simulated time.
 *
 * Production code asks the clock it was given (never clock_gettime
 * directly). sl_clock_system() reads the kernel clocks; a simulated clock
 * starts at a chosen instant and moves only when a test advances it.
 */
#ifndef SL_COMMON_CLOCK_H
#define SL_COMMON_CLOCK_H

#include "common/base.h"

typedef struct sl_clock sl_clock;
struct sl_clock {
    int64_t (*mono_ns)(const sl_clock *clock);  /* monotonic, for durations and deadlines */
    int64_t (*wall_ms)(const sl_clock *clock);  /* Unix epoch milliseconds, for timestamps */
    int64_t sim_mono_ns;                        /* used by the simulated clock only */
    int64_t sim_wall_ms;
};

const sl_clock *sl_clock_system(void);
void sl_clock_sim_init(sl_clock *clock, int64_t wall_ms);
void sl_clock_sim_advance(sl_clock *clock, int64_t ns);

static inline int64_t sl_mono_ns(const sl_clock *clock) { return clock->mono_ns(clock); }
static inline int64_t sl_mono_ms(const sl_clock *clock) { return clock->mono_ns(clock) / 1000000; }
static inline int64_t sl_wall_ms(const sl_clock *clock) { return clock->wall_ms(clock); }

#endif
