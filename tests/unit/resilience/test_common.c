/*
 * test_common.c - the resilience layer's shared pieces: clocks, error texts,
 * cancellation tokens, the jitter PRNG.
 */
#include "test.h"
#include "resilience/res_int.h"

static int64_t sim_now;
static int64_t sim_time(void *arg)
{
    (void)arg;
    return sim_now;
}
static void sim_sleep(void *arg, int64_t ns)
{
    (void)arg;
    sim_now += ns;
}

SL_TEST(clock_defaults_to_the_system_and_honours_a_simulated_one)
{
    sl_res_clock c;
    sl__res_clock_resolve(NULL, &c);
    int64_t a = sl__res_now(&c);
    sl__res_sleep(&c, 1000000);
    SL_CHECK(sl__res_now(&c) - a >= 1000000);
    sl_res_clock sim = {sim_time, sim_sleep, NULL};
    sl__res_clock_resolve(&sim, &c);
    sim_now = 5;
    sl__res_sleep(&c, 10);
    SL_CHECK_INT(sl__res_now(&c), 15);
}

SL_TEST(errors_have_texts_and_refusals_are_told_apart)
{
    for (int code = SL_RES_E_NOMEM; code <= SL_RES_E_OPEN; code++)
        SL_CHECK(strcmp(sl_res_strerror(code), "unknown resilience error") != 0);
    SL_CHECK(sl_res_is_refusal(SL_RES_E_OPEN) && sl_res_is_refusal(SL_RES_E_RATE));
    SL_CHECK(!sl_res_is_refusal(SL_RES_E_TIMEOUT) && !sl_res_is_refusal(0) && !sl_res_is_refusal(503));
    char err[64];
    SL_CHECK_INT(sl__res_invalid(err, sizeof err, "window: %d is below 1", 0), SL_RES_E_INVALID);
    SL_CHECK_STR(err, "window: 0 is below 1");
}

SL_TEST(cancellation_and_rand)
{
    sl_res_cancel c;
    sl_res_cancel_init(&c);
    SL_CHECK(!sl_res_cancelled(&c));
    sl_res_cancel_set(&c);
    SL_CHECK(sl_res_cancelled(&c));
    _Atomic uint64_t st = 42;
    int buckets[8] = {0};
    for (int i = 0; i < 8000; i++) buckets[sl__res_rand(&st) % 8]++;
    for (int i = 0; i < 8; i++) SL_CHECK(buckets[i] > 800 && buckets[i] < 1200); /* roughly uniform */
}
