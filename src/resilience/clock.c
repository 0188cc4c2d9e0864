/*
 * clock.c - the resilience layer's default clock: CLOCK_MONOTONIC, read
 * from the CPU's time-stamp counter when the kernel itself keeps time with
 * it.
 *
 * Why ours: a pipeline reads the clock twice per call (before admission and
 * when the call returns), and clock_gettime through the vDSO costs ~29 ns
 * on the CI's VM, where RDTSC costs ~11 ns: the two reads were half of the
 * 5-stage pipeline's ~100 ns (bench/sl_res_bench.c prints both costs).
 *
 * When: on x86-64, when the kernel's clocksource is "tsc" -- the kernel then
 * found the counter invariant and synchronized across CPUs, and derives its
 * own CLOCK_MONOTONIC from it. Anywhere else, or with SLUICE_CLOCK=vdso in
 * the environment, it is clock_gettime(CLOCK_MONOTONIC). The choice is made
 * once, at the first reading (the only I/O: one read of a sysfs file).
 *
 * How: ticks map to CLOCK_MONOTONIC nanoseconds along a line segment
 *   ns = ns0 + (tsc - tsc0) x mult / 2^32
 * that ends `len` ticks after tsc0. The first reader past the end (one
 * thread: it takes the writer's bit of `seq`) reads a true pair
 * (clock_gettime, tsc), and starts the next segment where the current one
 * ends at that tick -- so the clock is continuous and never runs backwards
 * -- with the slope that meets the true clock at the new segment's end:
 *
 *   rate  = (true_ns - prev_true_ns) / (tsc - prev_tsc)   ns per tick, over the last segment
 *   slope = rate + (true_ns - ns_at_tsc) / len            catching up the offset over one segment
 *
 * The offset from CLOCK_MONOTONIC is then bounded by the error of one
 * segment's rate (the width of a clock_gettime/rdtsc/clock_gettime bracket,
 * the tightest of up to four, ~40 ns, over
 * the segment) and it follows NTP's slewing of CLOCK_MONOTONIC. Segments
 * double from 1 ms to 1 s. Until the first 1 ms has passed (no rate known
 * yet), readings are clock_gettime's.
 *
 *   state    UNCALIBRATED --(1 ms after the first reading)--> TSC
 *            (mode VDSO: clock_gettime always; decided at the first reading)
 *
 * Threads: the segment is published under a sequence lock (`seq` odd while
 * written); a reader that sees it change retries, a reader past the end
 * while another thread resyncs extrapolates the segment it read (the new
 * one starts on it). All fields are atomics, relaxed, ordered by seq.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "resilience/res_int.h"

#define SEG_FIRST_NS INT64_C(1000000)  /* the first segment, and the calibration before it */
#define SEG_MAX_NS INT64_C(1000000000) /* segments double up to this */

static int64_t vdso_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#if defined(__x86_64__)
#include <x86intrin.h>

/* The counter, read in order (LFENCE first, as the kernel's own reading does): for the true pairs of a
   resync, which must be tight. */
static inline uint64_t tsc_read_ordered(void)
{
    _mm_lfence();
    return __rdtsc();
}

/* The counter, unordered: for every other reading. Without the fence the CPU may read the counter before
   the loads that precede it in program order complete, so a thread that has just loaded another thread's
   reading (a cache miss: ~200 ns on the CI's VM) may read a time up to that much earlier than it; within
   one thread, readings never go back. No policy orders events across threads that finely (they take stale
   readings as they come: see the token bucket, the breaker's in-flight list, the retry budget), and the
   fence costs ~12 ns a reading here, as much as the rest of the reading. test_clock.c measures both. */
static inline uint64_t tsc_read(void) { return __rdtsc(); }

static struct {
    _Atomic uint32_t seq;             /* even: stable (0: uncalibrated); odd: being written */
    _Atomic uint64_t tsc0, len, mult; /* the segment: start tick, length in ticks, ns per tick x 2^32 */
    _Atomic int64_t ns0, seg_ns;      /* the ns at tsc0; the length in ns */
    _Atomic uint64_t true_tsc;        /* the last true pair read (clock_gettime, tsc) */
    _Atomic int64_t true_ns;
} seg;

/* A true pair: the counter between two clock_gettime readings, paired with their midpoint. The tightest
   of a few tries, so a preemption (or a slow first clock_gettime) between the readings does not skew it. */
static void true_pair(uint64_t *tsc, int64_t *ns)
{
    int64_t best = INT64_MAX;
    for (int i = 0; i < 4 && best > 2000; i++) {
        int64_t a = vdso_now();
        uint64_t t = tsc_read_ordered();
        int64_t b = vdso_now();
        if (b - a < best) {
            best = b - a;
            *tsc = t;
            *ns = a + (b - a) / 2;
        }
    }
}

static pthread_once_t mode_once = PTHREAD_ONCE_INIT;
static bool use_tsc;     /* written once, under mode_once */
static _Atomic int mode; /* 0: not decided yet; 1: clock_gettime; 2: tsc */

/* The kernel's clocksource, from sysfs: "tsc" means it trusts the counter for CLOCK_MONOTONIC itself. */
static void mode_decide(void)
{
    const char *env = getenv("SLUICE_CLOCK");
    if (env && strcmp(env, "vdso") == 0) return;
    int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[16] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    use_tsc = n >= 3 && strncmp(buf, "tsc", 3) == 0 && (n == 3 || buf[3] == '\n');
    if (!use_tsc) return;
    uint64_t tsc;
    int64_t ns;
    true_pair(&tsc, &ns);
    atomic_store(&seg.true_tsc, tsc);
    atomic_store(&seg.true_ns, ns);
}

static int mode_get(void)
{
    int m = atomic_load_explicit(&mode, memory_order_acquire);
    if (SL_LIKELY(m != 0)) return m;
    pthread_once(&mode_once, mode_decide);
    m = use_tsc ? 2 : 1;
    atomic_store_explicit(&mode, m, memory_order_release);
    return m;
}

static int64_t seg_at(uint64_t tsc0, int64_t ns0, uint64_t mult, uint64_t tsc)
{
    return ns0 + (int64_t)(((unsigned __int128)(tsc - tsc0) * mult) >> 32);
}

/* The next segment, from (tsc, start_ns) on the current line, once a true pair is read; published if this
   thread wins seq from `s` (even, stable; 0 before calibration). Returns start_ns either way. */
static int64_t resync(uint32_t s, uint64_t tsc, int64_t start_ns, int64_t prev_seg_ns)
{
    int64_t true_ns;
    uint64_t now_tsc, prev_tsc;
    true_pair(&now_tsc, &true_ns);
    prev_tsc = atomic_load_explicit(&seg.true_tsc, memory_order_relaxed);
    int64_t prev_ns = atomic_load_explicit(&seg.true_ns, memory_order_relaxed);
    if (now_tsc <= prev_tsc || true_ns <= prev_ns) return start_ns; /* a counter gone wrong: stay on the line */
    double rate = (double)(true_ns - prev_ns) / (double)(now_tsc - prev_tsc);
    int64_t seg_ns = s == 0 ? SEG_FIRST_NS : SL_MIN(2 * prev_seg_ns, SEG_MAX_NS);
    double len = (double)seg_ns / rate;
    /* start_ns is the line at tsc; true_ns was read a few ticks later, at now_tsc. */
    double offset = (double)true_ns - ((double)start_ns + rate * (double)(now_tsc - tsc));
    double slope = SL_MAX(rate / 2, SL_MIN(rate + offset / len, rate * 2));
    uint32_t expect = s;
    if (!atomic_compare_exchange_strong_explicit(&seg.seq, &expect, s + 1, memory_order_acquire,
                                                 memory_order_relaxed))
        return start_ns; /* another thread resyncs; its segment starts on this line too */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&seg.tsc0, tsc, memory_order_relaxed);
    atomic_store_explicit(&seg.ns0, start_ns, memory_order_relaxed);
    atomic_store_explicit(&seg.len, (uint64_t)len, memory_order_relaxed);
    atomic_store_explicit(&seg.mult, (uint64_t)(slope * 4294967296.0), memory_order_relaxed);
    atomic_store_explicit(&seg.seg_ns, seg_ns, memory_order_relaxed);
    atomic_store_explicit(&seg.true_tsc, now_tsc, memory_order_relaxed);
    atomic_store_explicit(&seg.true_ns, true_ns, memory_order_relaxed);
    atomic_store_explicit(&seg.seq, s + 2 != 0 ? s + 2 : 2, memory_order_release); /* 0 is uncalibrated */
    return start_ns;
}

static int64_t tsc_now(void)
{
    for (int tries = 0;; tries++) {
        uint32_t s = atomic_load_explicit(&seg.seq, memory_order_acquire);
        if (s & 1) {
            /* A writer holds it for a few stores; one preempted there is not waited for. */
            if (tries < 1000) continue;
            return vdso_now();
        }
        if (s == 0) { /* uncalibrated: the true clock, and the first reader 1 ms on calibrates */
            uint64_t tsc = tsc_read();
            int64_t ns = vdso_now();
            if (ns - atomic_load_explicit(&seg.true_ns, memory_order_relaxed) < SEG_FIRST_NS) return ns;
            return resync(0, tsc, ns, 0);
        }
        uint64_t tsc0 = atomic_load_explicit(&seg.tsc0, memory_order_relaxed);
        uint64_t len = atomic_load_explicit(&seg.len, memory_order_relaxed);
        uint64_t mult = atomic_load_explicit(&seg.mult, memory_order_relaxed);
        int64_t ns0 = atomic_load_explicit(&seg.ns0, memory_order_relaxed);
        int64_t seg_ns = atomic_load_explicit(&seg.seg_ns, memory_order_relaxed);
        uint64_t tsc = tsc_read();
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&seg.seq, memory_order_relaxed) != s) continue;
        if (tsc < tsc0) tsc = tsc0; /* read a few ticks before the segment was published: its start */
        int64_t ns = seg_at(tsc0, ns0, mult, tsc);
        if (SL_LIKELY(tsc - tsc0 < len)) return ns;
        return resync(s, tsc, ns, seg_ns);
    }
}
#endif

int64_t sl__res_clock_system(void)
{
#if defined(__x86_64__)
    if (mode_get() == 2) return tsc_now();
#endif
    return vdso_now();
}

const char *sl__res_clock_source(void)
{
#if defined(__x86_64__)
    if (mode_get() == 2) return "tsc";
#endif
    return "clock_gettime";
}
