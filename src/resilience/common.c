/*
 * common.c - what every policy uses: the clock (injectable; the system
 * clock by default), error texts, cancellation tokens, a PRNG for jitter.
 */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include "resilience/res_int.h"

static int64_t system_now(void *arg)
{
    (void)arg;
    return sl__res_clock_system();
}

static void system_sleep(void *arg, int64_t ns)
{
    (void)arg;
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

void sl__res_clock_resolve(const sl_res_clock *in, sl_res_clock *out)
{
    if (in && in->now_ns) {
        *out = *in;
        if (!out->sleep_ns) out->sleep_ns = system_sleep;
        return;
    }
    *out = (sl_res_clock){system_now, system_sleep, NULL};
}

int sl__res_invalid(char *err, size_t err_len, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return SL_RES_E_INVALID;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Spins on a plain load (the line stays shared while held) for about a microsecond, then yields. */
void sl__res_lock_slow(sl__res_lock *l)
{
    for (int spins = 0;; spins++) {
        if (!atomic_load_explicit(&l->held, memory_order_relaxed) &&
            !atomic_exchange_explicit(&l->held, true, memory_order_acquire))
            return;
        if (spins < 64) cpu_relax();
        else sched_yield();
    }
}

uint64_t sl__res_rand(_Atomic uint64_t *state)
{
    uint64_t z = atomic_fetch_add_explicit(state, 0x9e3779b97f4a7c15ull, memory_order_relaxed) + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

const char *sl_res_strerror(int code)
{
    switch (code) {
    case 0: return "ok";
    case SL_RES_E_OPEN: return "circuit breaker open: the dependency is failing, calls are refused for now";
    case SL_RES_E_FULL: return "bulkhead full: too many calls to this dependency at once";
    case SL_RES_E_RATE: return "rate limited: over the allowed calls per window";
    case SL_RES_E_LIMIT: return "concurrency limit reached: the dependency is at the load it can take";
    case SL_RES_E_TIMEOUT: return "timed out";
    case SL_RES_E_CANCELLED: return "cancelled";
    case SL_RES_E_BUDGET: return "retry budget spent: retries are limited to a share of the calls";
    case SL_RES_E_ATTEMPTS: return "every attempt failed";
    case SL_RES_E_INVALID: return "invalid configuration or argument";
    case SL_RES_E_NOMEM: return "out of memory";
    default: return "unknown resilience error";
    }
}

bool sl_res_is_refusal(int code)
{
    return code == SL_RES_E_OPEN || code == SL_RES_E_FULL || code == SL_RES_E_RATE || code == SL_RES_E_LIMIT ||
           code == SL_RES_E_BUDGET;
}

void sl_res_cancel_init(sl_res_cancel *c) { atomic_init(&c->cancelled, 0); }
void sl_res_cancel_set(sl_res_cancel *c) { atomic_store_explicit(&c->cancelled, 1, memory_order_release); }
bool sl_res_cancelled(const sl_res_cancel *c)
{
    return atomic_load_explicit((_Atomic int *)&c->cancelled, memory_order_acquire) != 0;
}
