/*
 * test_clock.c - the default clock (src/resilience/clock.c): it is
 * CLOCK_MONOTONIC, whichever way it is read. Each case runs in its own
 * process, so each starts uncalibrated and crosses the first segments
 * (1, 2, 4 ... ms) while it checks.
 *
 * "Is CLOCK_MONOTONIC" is checked by sandwiches: ours, then clock_gettime,
 * then ours again; clock_gettime must fall between the two readings of
 * ours, give or take the tolerance (the TSC line's offset, ~40 ns in steady
 * state, bounded here at 20 us so that a loaded CI machine cannot fail it).
 * A preemption between the reads only widens the sandwich.
 */
#include <pthread.h>
#include <time.h>
#include "test.h"
#include "resilience/res_int.h"

#define US INT64_C(1000)
#define MS INT64_C(1000000)
#define TOLERANCE_NS (20 * US)

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct reader {
    int64_t run_ns;
    long reads, backwards, outside;
    int64_t worst_ns; /* the largest distance of clock_gettime outside a sandwich */
} reader;

/* Reads for run_ns: ours never decreases, and every 64th reading is a sandwich around clock_gettime. */
static void *read_for(void *arg)
{
    reader *r = arg;
    int64_t end = mono_ns() + r->run_ns, last = sl__res_clock_system();
    for (long i = 0;; i++) {
        int64_t a = sl__res_clock_system();
        r->reads++;
        r->backwards += a < last;
        last = a;
        if (i % 64) continue;
        int64_t m = mono_ns(), b = sl__res_clock_system();
        r->backwards += b < a;
        last = b;
        int64_t off = m < a ? a - m : m > b ? m - b : 0;
        if (off > r->worst_ns) r->worst_ns = off;
        r->outside += off > TOLERANCE_NS;
        if (m >= end) return NULL;
    }
}

static void check_reader(const reader *r)
{
    printf("%ld readings, %ld backwards, worst distance from CLOCK_MONOTONIC %lld ns (source %s)\n", r->reads,
           r->backwards, (long long)r->worst_ns, sl__res_clock_source());
    SL_CHECK(r->reads > 1000);
    SL_CHECK_INT(r->backwards, 0);
    SL_CHECK_INT(r->outside, 0);
}

SL_TEST(the_source_is_named)
{
    const char *src = sl__res_clock_source();
    SL_CHECK(strcmp(src, "tsc") == 0 || strcmp(src, "clock_gettime") == 0);
#if !defined(__x86_64__)
    SL_CHECK(strcmp(src, "clock_gettime") == 0);
#endif
}

/* From the first reading through calibration and segments of 1 ms .. 512 ms (about 1.1 s). */
SL_TEST(follows_clock_monotonic_through_calibration_and_resyncs)
{
    reader r = {.run_ns = 1100 * MS};
    read_for(&r);
    check_reader(&r);
}

/* Two threads racing for every resync: each sees its own readings never go back, and both stay on time. */
SL_TEST(two_threads_race_for_resyncs_and_stay_monotonic)
{
    reader r[2] = {{.run_ns = 600 * MS}, {.run_ns = 600 * MS}};
    pthread_t t;
    SL_CHECK_OK(pthread_create(&t, NULL, read_for, &r[1]));
    read_for(&r[0]);
    SL_CHECK_OK(pthread_join(t, NULL));
    check_reader(&r[0]);
    check_reader(&r[1]);
}

/* A reading taken after another thread's (through a release/acquire handoff) is not earlier than it by more
   than the CPU's out-of-order window. */
static _Atomic int64_t handed;
static _Atomic bool stop;
static void *hand_over(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) atomic_store(&handed, sl__res_clock_system());
    return NULL;
}

SL_TEST(a_reading_after_another_threads_is_at_most_a_cache_miss_earlier)
{
    pthread_t t;
    atomic_store(&handed, sl__res_clock_system());
    SL_CHECK_OK(pthread_create(&t, NULL, hand_over, NULL));
    long behind = 0;
    int64_t worst = 0, end = mono_ns() + 300 * MS;
    while (mono_ns() < end) {
        int64_t theirs = atomic_load(&handed), mine = sl__res_clock_system();
        if (mine < theirs) {
            behind++;
            worst = SL_MAX(worst, theirs - mine);
        }
    }
    atomic_store(&stop, true);
    SL_CHECK_OK(pthread_join(t, NULL));
    printf("behind another thread's earlier reading: %ld times, by at most %lld ns\n", behind, (long long)worst);
    /* The counter is read without a fence (clock.c): up to a cache miss's latency early, never microseconds. */
    SL_CHECK(worst <= 5 * US);
}
