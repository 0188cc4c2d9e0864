/*
 * sl_res_bench - the cost of a resilience pipeline's success path (issue 6):
 * the 5-stage pipeline rate -> bulkhead -> timeout -> retry -> breaker around a
 * call that succeeds at once, on the default clock, single-threaded and with
 * 2 threads sharing it, and the heap bytes allocated per call. Beside it, in
 * the same run, the floors it stands on: one reading of the clock (and of
 * clock_gettime), one uncontended atomic read-modify-write, and one hand-over
 * of a cache line between two threads (what every shared counter pays when
 * two threads take turns on it).
 *
 *   sl_res_bench [calls-per-run] [description]
 *
 * Each figure is taken over several runs (7 single-threaded, 5 with two
 * threads): the minimum and the median are printed, since a shared VM's
 * noise only ever adds. The last line is the same as JSON (bench/run.py).
 *
 * Heap bytes are counted by this program's own malloc/calloc/realloc (they
 * count, then call glibc's __libc_* functions), so every allocation the
 * library makes through sl_malloc is seen, freed or not. The cost of the
 * empty call itself (through a function pointer) is measured and
 * subtracted.
 */
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sluice/resilience.h"
#include "resilience/res_int.h"

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static _Atomic long long heap_allocs, heap_bytes;

void *malloc(size_t n)
{
    atomic_fetch_add_explicit(&heap_allocs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&heap_bytes, (long long)n, memory_order_relaxed);
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t size)
{
    atomic_fetch_add_explicit(&heap_allocs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&heap_bytes, (long long)(n * size), memory_order_relaxed);
    return __libc_calloc(n, size);
}
void *realloc(void *p, size_t n)
{
    atomic_fetch_add_explicit(&heap_allocs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&heap_bytes, (long long)n, memory_order_relaxed);
    return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int ok_call(void *arg, const sl_res_ctx *ctx)
{
    (void)ctx;
    atomic_fetch_add_explicit((_Atomic long *)arg, 1, memory_order_relaxed);
    return 0;
}

typedef struct worker {
    alignas(64) sl_pipeline *p; /* NULL: the bare call; a line of its own, so threads share only the policies */
    long calls;
    _Atomic long done;
    int64_t ns;
    int failures;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    sl_res_call_fn fn = ok_call;
    int64_t t0 = now_ns();
    for (long i = 0; i < w->calls; i++) {
        int rc = w->p ? sl_pipeline_run(w->p, fn, (void *)&w->done, NULL, 0) : fn((void *)&w->done, NULL);
        w->failures += rc != 0;
    }
    w->ns = now_ns() - t0;
    return NULL;
}

/* Runs `threads` workers at once; ns per call (the slowest thread's). */
static double run(sl_pipeline *p, int threads, long calls, int *failures)
{
    worker w[2];
    pthread_t t[2];
    for (int i = 0; i < threads; i++) {
        w[i] = (worker){.p = p, .calls = calls};
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    int64_t worst = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        worst = w[i].ns > worst ? w[i].ns : worst;
        *failures += w[i].failures;
    }
    return (double)worst / (double)calls;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct figure {
    double min, median;
} figure;

/* `reps` runs of the pipeline and of the bare call, alternated; the pipeline's cost net of the bare call's. */
static figure measure(sl_pipeline *p, int threads, long calls, int reps, int *failures)
{
    double net[9];
    for (int r = 0; r < reps; r++) {
        double bare = run(NULL, threads, calls, failures);
        net[r] = run(p, threads, calls, failures) - bare;
    }
    qsort(net, (size_t)reps, sizeof net[0], cmp_double);
    return (figure){net[0], net[reps / 2]};
}

/* ---- the floors ---- */

static double clock_cost(bool ours)
{
    const long n = 2000000;
    volatile int64_t sink = 0;
    int64_t t0 = now_ns();
    for (long i = 0; i < n; i++) sink += ours ? sl__res_clock_system() : now_ns();
    (void)sink;
    return (double)(now_ns() - t0) / (double)n;
}

static double rmw_cost(void)
{
    const long n = 5000000;
    static _Atomic long counter;
    int64_t t0 = now_ns();
    for (long i = 0; i < n; i++) atomic_fetch_add(&counter, 1);
    return (double)(now_ns() - t0) / (double)n;
}

/* Two threads take turns on one counter (odd values are the second's): each turn moves the line over. */
static _Atomic long turn;
static const long turns = 400000;
static void *take_turns(void *arg)
{
    long mine = (long)(intptr_t)arg;
    for (long v = mine; v < turns; v += 2) {
        for (int spins = 0; atomic_load_explicit(&turn, memory_order_acquire) != v; spins++)
            if (spins > 100000) sched_yield(); /* one core between us (taskset, a loaded machine) */
        atomic_store_explicit(&turn, v + 1, memory_order_release);
    }
    return NULL;
}

static double handoff_cost(void)
{
    pthread_t t;
    atomic_store(&turn, 0);
    int64_t t0 = now_ns();
    pthread_create(&t, NULL, take_turns, (void *)(intptr_t)1);
    take_turns((void *)(intptr_t)0);
    pthread_join(t, NULL);
    return (double)(now_ns() - t0) / (double)turns;
}

static sl_pipeline *five_stages(void)
{
    sl_pipeline *p;
    sl_token_bucket *tb;
    sl_bulkhead *bh;
    sl_retry *r;
    sl_cb *cb;
    sl_retry_config rc;
    sl_cb_config cc;
    sl_timeout_config tc;
    sl_res_clock stage;
    sl_pipeline_new(&p);
    sl_pipeline_stage_clock(p, &stage);
    if (sl_token_bucket_new(1e9, 1000000000, &stage, &tb, NULL, 0) || sl_bulkhead_new(64, NULL, &bh, NULL, 0))
        exit(1);
    sl_retry_config_default(&rc);
    rc.clock = stage;
    sl_cb_config_default(&cc);
    cc.clock = stage;
    if (sl_retry_new(&rc, &r, NULL, 0) || sl_cb_new(&cc, &cb, NULL, 0)) exit(1);
    sl_timeout_config_default(&tc);
    tc.fixed_ns = 1000000000;
    sl_pipeline_rate(p, tb);
    sl_pipeline_bulkhead(p, bh, 0);
    sl_pipeline_timeout(p, &tc);
    sl_pipeline_retry(p, r);
    sl_pipeline_breaker(p, cb);
    return p; /* the policies live as long as the program */
}

int main(int argc, char **argv)
{
    long calls = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
    const char *desc = argc > 2 ? argv[2] : NULL;
    sl_pipeline *p = NULL;
    char err[256];
    if (calls < 1000) {
        fprintf(stderr, "sl_res_bench: calls-per-run must be at least 1000\n");
        return 2;
    }
    if (!desc)
        p = five_stages();
    else if (sl_pipeline_parse(desc, NULL, &p, err, sizeof err) != 0) {
        fprintf(stderr, "sl_res_bench: %s\n", err);
        return 2;
    }
    int failures = 0;
    run(p, 1, calls / 10, &failures); /* warm up: caches, the stripes, the bucket's first tokens, the clock */
    double clk = clock_cost(true), cgt = clock_cost(false), rmw = rmw_cost(), hand = handoff_cost();
    long long allocs0 = atomic_load(&heap_allocs), bytes0 = atomic_load(&heap_bytes);
    figure one = measure(p, 1, calls, 7, &failures);
    long long allocs = atomic_load(&heap_allocs) - allocs0, bytes = atomic_load(&heap_bytes) - bytes0;
    figure two = measure(p, 2, calls / 2, 5, &failures);
    long total = calls / 10 + 7 * 2 * calls + 5 * 2 * 2 * (calls / 2);
    double per_call = (double)bytes / (double)(7 * calls), allocs_per_call = (double)allocs / (double)(7 * calls);
    printf("pipeline: %s\n", desc ? desc : "rate -> bulkhead -> timeout(fixed 1s) -> retry -> breaker (built in code)");
    printf("1 thread:  %.1f ns/call (median of 7 runs of %ld; min %.1f)\n", one.median, calls, one.min);
    printf("2 threads: %.1f ns/call per thread (median of 5; min %.1f), %.2f M calls/s together\n", two.median,
           two.min, 2e3 / two.median);
    printf("heap: %.3f bytes/call, %.5f allocations/call (%lld bytes, %lld allocations in %ld calls)\n", per_call,
           allocs_per_call, bytes, allocs, 7 * calls);
    printf("floors: clock reading %.1f ns (%s; clock_gettime %.1f ns), atomic add %.1f ns, cache line hand-over "
           "between 2 threads %.1f ns\n", clk, sl__res_clock_source(), cgt, rmw, hand);
    /* A thread preempted between its clock read and the token bucket's CAS may be refused: it is a rate
       limiter seeing an old time, not a cost. More than a handful means the run measured refusals. */
    printf("refused or failed: %d of %ld calls\n", failures, total);
    printf("{\"one_thread_ns\": %.2f, \"one_thread_min_ns\": %.2f, \"two_threads_ns\": %.2f, "
           "\"two_threads_min_ns\": %.2f, \"heap_bytes_per_call\": %.4f, \"allocs_per_call\": %.6f, "
           "\"clock_ns\": %.2f, \"clock_source\": \"%s\", \"clock_gettime_ns\": %.2f, \"atomic_add_ns\": %.2f, "
           "\"handoff_ns\": %.2f, \"refused\": %d, \"calls\": %ld}\n",
           one.median, one.min, two.median, two.min, per_call, allocs_per_call, clk, sl__res_clock_source(), cgt,
           rmw, hand, failures, total);
    return failures > total / 1000;
}
