/*
 * sl_res_bench - the cost of a resilience pipeline's success path (issue 6):
 * the 5-stage pipeline rate -> bulkhead -> timeout -> retry -> breaker around a
 * call that succeeds at once, on the system clock, single-threaded and with
 * 2 threads sharing it, and the heap bytes allocated per call.
 *
 *   sl_res_bench [calls-per-thread] [description]
 *
 * Heap bytes are counted by this program's own malloc/calloc/realloc (they
 * count, then call glibc's __libc_* functions), so every allocation the
 * library makes through sl_malloc is seen, freed or not. The cost of the
 * empty call itself (through a function pointer) is measured and shown
 * apart; "pipeline" figures are per call with it subtracted.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sluice/resilience.h"

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
    sl_pipeline *p; /* NULL: the bare call */
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
    long calls = argc > 1 ? strtol(argv[1], NULL, 10) : 5000000;
    const char *desc = argc > 2 ? argv[2] : NULL;
    sl_pipeline *p = NULL;
    char err[256];
    if (!desc)
        p = five_stages();
    else if (sl_pipeline_parse(desc, NULL, &p, err, sizeof err) != 0) {
        fprintf(stderr, "sl_res_bench: %s\n", err);
        return 2;
    }
    int failures = 0;
    run(p, 1, calls / 10, &failures); /* warm up: caches, the stripes, the bucket's first tokens */
    double bare1 = run(NULL, 1, calls, &failures), bare2 = run(NULL, 2, calls, &failures);
    long long allocs0 = atomic_load(&heap_allocs), bytes0 = atomic_load(&heap_bytes);
    double one = run(p, 1, calls, &failures);
    long long allocs = atomic_load(&heap_allocs) - allocs0, bytes = atomic_load(&heap_bytes) - bytes0;
    double two = run(p, 2, calls, &failures);
    printf("pipeline: %s\n", desc ? desc : "rate -> bulkhead -> timeout(fixed 1s) -> retry -> breaker (built in code)");
    printf("1 thread:  %.1f ns/call (bare call %.1f ns)\n", one - bare1, bare1);
    printf("2 threads: %.1f ns/call per thread (bare call %.1f ns), %.1f M calls/s together\n", two - bare2, bare2,
           2e3 / two);
    printf("heap: %.3f bytes/call, %.5f allocations/call (%lld bytes, %lld allocations in %ld calls)\n",
           (double)bytes / (double)calls, (double)allocs / (double)calls, bytes, allocs, calls);
    /* A thread preempted between its clock read and the token bucket's CAS may be refused: it is a rate
       limiter seeing an old time, not a cost. More than a handful means the run measured refusals. */
    printf("refused or failed: %d of %ld calls\n", failures, 2 * calls + calls / 10);
    return failures > calls / 1000;
}
