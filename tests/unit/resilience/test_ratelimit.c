/*
 * test_ratelimit.c - the token bucket (GCRA) and the per-key sliding window:
 * exact refills and retry-after in simulated time, window edges, the
 * property that no window ever holds more than the limit (random arrivals
 * checked against every admitted timestamp), keys kept apart and their slots
 * reused, and exact counts with threads sharing one limiter.
 */
#include <pthread.h>
#include "test.h"
#include "resilience/res_int.h"

static int64_t sim_now;
static int64_t sim_time(void *arg)
{
    (void)arg;
    return sim_now;
}
static const sl_res_clock sim = {sim_time, NULL, NULL};

#define MS 1000000LL
#define S 1000000000LL

SL_TEST(token_bucket_bursts_then_refills_at_its_rate)
{
    sim_now = 5 * S;
    sl_token_bucket *tb;
    SL_CHECK_OK(sl_token_bucket_new(10, 5, &sim, &tb, NULL, 0)); /* 10/s, burst 5 */
    for (int i = 0; i < 5; i++) SL_CHECK_OK(sl_token_bucket_acquire(tb, 1, NULL));
    int64_t after;
    SL_CHECK_INT(sl_token_bucket_acquire(tb, 1, &after), SL_RES_E_RATE);
    SL_CHECK_INT(after, 100 * MS); /* one token per 100 ms */
    sim_now += 99 * MS;
    SL_CHECK_INT(sl_token_bucket_acquire(tb, 1, &after), SL_RES_E_RATE);
    SL_CHECK_INT(after, 1 * MS);
    sim_now += 1 * MS;
    SL_CHECK_OK(sl_token_bucket_acquire(tb, 1, NULL));
    /* Idle for long: the bucket holds `burst`, no more. */
    sim_now += 100 * S;
    SL_CHECK_OK(sl_token_bucket_acquire(tb, 5, NULL));
    SL_CHECK_INT(sl_token_bucket_acquire(tb, 1, &after), SL_RES_E_RATE);
    SL_CHECK_INT(sl_token_bucket_acquire(tb, 6, NULL), SL_RES_E_INVALID); /* more than a burst: never */
    SL_CHECK_INT(sl_token_bucket_acquire(tb, 3, &after), SL_RES_E_RATE);
    SL_CHECK_INT(after, 300 * MS);
    sl_token_bucket_free(tb);
    char err[128];
    SL_CHECK_INT(sl_token_bucket_new(0, 5, &sim, &tb, err, sizeof err), SL_RES_E_INVALID);
    SL_CHECK(strstr(err, "rate") != NULL);
    SL_CHECK_INT(sl_token_bucket_new(10, 0, &sim, &tb, err, sizeof err), SL_RES_E_INVALID);
}

/* Property: in any interval [t, t + d], admitted <= burst + rate x d (up to one token of rounding). */
SL_TEST(token_bucket_never_exceeds_burst_plus_rate)
{
    sim_now = 0;
    sl_token_bucket *tb;
    SL_CHECK_OK(sl_token_bucket_new(1000, 20, &sim, &tb, NULL, 0));
    static int64_t at[20000];
    int n = 0;
    uint64_t rnd = 7;
    for (int i = 0; i < 20000; i++) {
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        sim_now += (int64_t)((rnd >> 33) % (2 * MS)); /* about 1000 arrivals/s, bursty */
        if (sl_token_bucket_acquire(tb, 1, NULL) == 0) at[n++] = sim_now;
    }
    SL_CHECK(n > 5000); /* it admits, too */
    for (int i = 0; i < n; i++) {
        for (int j = i; j < n && j < i + 200; j++) {
            double allowed = 20 + (double)(at[j] - at[i]) * 1000 / 1e9 + 1;
            SL_CHECK((double)(j - i + 1) <= allowed);
        }
    }
    sl_token_bucket_free(tb);
}

static sl_sliding_window *window(int32_t limit, int64_t window_ns, int32_t buckets, int32_t max_keys)
{
    sl_sliding_window_config c;
    sl_sliding_window_config_default(&c);
    c.limit = limit, c.window_ns = window_ns, c.buckets = buckets, c.max_keys = max_keys, c.clock = sim;
    sl_sliding_window *sw;
    SL_CHECK_OK(sl_sliding_window_new(&c, &sw, NULL, 0));
    return sw;
}

SL_TEST(sliding_window_edges_and_retry_after)
{
    sim_now = 0;
    sl_sliding_window *sw = window(3, 1 * S, 10, 16); /* 3 per second, 100 ms buckets */
    int64_t after;
    SL_CHECK_OK(sl_sliding_window_acquire(sw, "c1", 2, NULL)); /* bucket 0 */
    sim_now = 150 * MS;
    SL_CHECK_OK(sl_sliding_window_acquire(sw, "c1", 2, NULL)); /* bucket 1 */
    SL_CHECK_OK(sl_sliding_window_acquire(sw, "c1", 2, NULL));
    SL_CHECK_INT(sl_sliding_window_acquire(sw, "c1", 2, &after), SL_RES_E_RATE);
    /* bucket 0 is counted until bucket 11 starts (1.1 s): the window may overlap any part of it */
    SL_CHECK_INT(after, 1100 * MS - 150 * MS);
    sim_now = 1100 * MS - 1;
    SL_CHECK_INT(sl_sliding_window_acquire(sw, "c1", 2, NULL), SL_RES_E_RATE);
    sim_now = 1100 * MS;
    SL_CHECK_OK(sl_sliding_window_acquire(sw, "c1", 2, NULL)); /* bucket 0 left; 2 in bucket 1 + this */
    SL_CHECK_INT(sl_sliding_window_acquire(sw, "c1", 2, &after), SL_RES_E_RATE);
    SL_CHECK_INT(after, 1200 * MS - 1100 * MS);
    /* Another key has its own window; so does the global one (NULL). */
    for (int i = 0; i < 3; i++) SL_CHECK_OK(sl_sliding_window_acquire(sw, "c2", 2, NULL));
    SL_CHECK_INT(sl_sliding_window_acquire(sw, "c2", 2, NULL), SL_RES_E_RATE);
    for (int i = 0; i < 3; i++) SL_CHECK_OK(sl_sliding_window_acquire(sw, NULL, 0, NULL));
    SL_CHECK_INT(sl_sliding_window_acquire(sw, NULL, 0, NULL), SL_RES_E_RATE);
    /* Long after: everything has left the window. */
    sim_now += 10 * S;
    for (int i = 0; i < 3; i++) SL_CHECK_OK(sl_sliding_window_acquire(sw, "c1", 2, NULL));
    char big[200];
    memset(big, 'k', sizeof big);
    SL_CHECK_INT(sl_sliding_window_acquire(sw, big, sizeof big, NULL), SL_RES_E_INVALID);
    sl_sliding_window_free(sw);
}

/* Property: for random arrivals on a few keys, no interval of one window length holds more than `limit`
   admitted calls of one key -- checked against every admitted timestamp. */
SL_TEST(sliding_window_never_admits_more_than_the_limit_in_any_window)
{
    sim_now = 0;
    const int64_t W = 1 * S;
    const int32_t L = 50;
    sl_sliding_window *sw = window(L, W, 7, 64);
    static int64_t at[4][40000];
    int n[4] = {0};
    uint64_t rnd = 11;
    for (int i = 0; i < 120000; i++) {
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        sim_now += (int64_t)((rnd >> 40) % (60 * 1000)); /* ~30 us apart on average: far over the limit */
        int k = (int)((rnd >> 20) % 4);
        char key[8] = {'k', (char)('0' + k)};
        if (sl_sliding_window_acquire(sw, key, 2, NULL) == 0) at[k][n[k]++] = sim_now;
    }
    for (int k = 0; k < 4; k++) {
        SL_CHECK(n[k] > 3 * L); /* each key kept being admitted */
        for (int i = 0, j = 0; i < n[k]; i++) {
            while (at[k][i] - at[k][j] >= W) j++; /* [at[j], at[i]] spans less than one window */
            SL_CHECK(i - j + 1 <= L);
        }
    }
    sl_sliding_window_free(sw);
}

SL_TEST(sliding_window_reuses_idle_key_slots_and_refuses_when_full)
{
    sim_now = 0;
    sl_sliding_window *sw = window(1, 1 * S, 4, 4);
    char key[8];
    for (int i = 0; i < 4; i++) {
        int len = snprintf(key, sizeof key, "k%d", i);
        SL_CHECK_OK(sl_sliding_window_acquire(sw, key, (size_t)len, NULL));
    }
    int64_t after;
    SL_CHECK_INT(sl_sliding_window_acquire(sw, "k9", 2, &after), SL_RES_E_RATE); /* every slot busy */
    SL_CHECK(after > 0);
    sim_now = 2 * S; /* the four keys went idle: their slots take new keys, which start empty */
    SL_CHECK_OK(sl_sliding_window_acquire(sw, "k9", 2, NULL));
    SL_CHECK_INT(sl_sliding_window_acquire(sw, "k9", 2, NULL), SL_RES_E_RATE);
    SL_CHECK_OK(sl_sliding_window_acquire(sw, "k0", 2, NULL));
    sl_sliding_window_free(sw);
    sl_sliding_window_config c;
    sl_sliding_window_config_default(&c);
    c.buckets = 0;
    char err[128];
    SL_CHECK_INT(sl_sliding_window_new(&c, &sw, err, sizeof err), SL_RES_E_INVALID);
    SL_CHECK(strstr(err, "buckets") != NULL);
}

typedef struct hammer {
    sl_token_bucket *tb;
    sl_sliding_window *sw;
    _Atomic long admitted_tb, admitted_sw;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    for (int i = 0; i < 20000; i++) {
        if (sl_token_bucket_acquire(h->tb, 1, NULL) == 0) atomic_fetch_add(&h->admitted_tb, 1);
        char key[2] = {(char)('a' + i % 3)};
        if (sl_sliding_window_acquire(h->sw, key, 1, NULL) == 0) atomic_fetch_add(&h->admitted_sw, 1);
    }
    return NULL;
}

/* Threads share one bucket and one window (real clock): exactly the burst (+ what refills while they run,
   at 1 per second) and exactly the limit per key get through. */
SL_TEST(threads_share_limiters_exactly)
{
    hammer h = {0};
    SL_CHECK_OK(sl_token_bucket_new(1, 1000, NULL, &h.tb, NULL, 0));
    sl_sliding_window_config c;
    sl_sliding_window_config_default(&c);
    c.limit = 500, c.window_ns = 60 * S;
    SL_CHECK_OK(sl_sliding_window_new(&c, &h.sw, NULL, 0));
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, hammer_main, &h);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    SL_CHECK(atomic_load(&h.admitted_tb) >= 1000 && atomic_load(&h.admitted_tb) <= 1000 + 60);
    SL_CHECK_INT(atomic_load(&h.admitted_sw), 3 * 500);
    sl_token_bucket_free(h.tb);
    sl_sliding_window_free(h.sw);
}
