/*
 * clock.c - the system clock and the simulated clock behind sl_clock.
 */
#include <time.h>
#include "common/clock.h"

static int64_t sys_mono_ns(const sl_clock *clock)
{
    (void)clock;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t sys_wall_ms(const sl_clock *clock)
{
    (void)clock;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const sl_clock system_clock = {sys_mono_ns, sys_wall_ms, 0, 0};

const sl_clock *sl_clock_system(void) { return &system_clock; }

static int64_t sim_mono_ns(const sl_clock *clock) { return clock->sim_mono_ns; }
static int64_t sim_wall_ms(const sl_clock *clock) { return clock->sim_wall_ms + clock->sim_mono_ns / 1000000; }

void sl_clock_sim_init(sl_clock *clock, int64_t wall_ms)
{
    clock->mono_ns = sim_mono_ns;
    clock->wall_ms = sim_wall_ms;
    clock->sim_mono_ns = 1000000000; /* non-zero so "0 = unset" bugs show */
    clock->sim_wall_ms = wall_ms - 1000;
}

void sl_clock_sim_advance(sl_clock *clock, int64_t ns)
{
    SL_ASSERT(ns >= 0);
    clock->sim_mono_ns += ns;
}
