/*
 * test_latency.c - the rolling latency histogram (src/resilience/latency.c):
 * percentiles against known distributions, rotation in simulated time (also
 * with writers in different epochs at once), the cache, Prometheus text
 * parsed back, and exact counts from several threads.
 */
#include <math.h>
#include <pthread.h>
#include "test.h"
#include "resilience/res_int.h"

#define MS INT64_C(1000000)
#define S INT64_C(1000000000)

/* Simulated time: one clock per thread, so threads can stand in different epochs at once. */
static _Thread_local int64_t sim_now;
static int64_t sim_time(void *arg)
{
    (void)arg;
    return sim_now;
}

static sl_latency *new_sim(int64_t window_ns, int32_t slices)
{
    sl_latency_config cfg;
    sl_latency_config_default(&cfg);
    cfg.window_ns = window_ns;
    cfg.slices = slices;
    cfg.clock = (sl_res_clock){sim_time, NULL, NULL};
    sl_latency *lat;
    char err[128];
    SL_CHECK_OK(sl_latency_new(&cfg, &lat, err, sizeof err));
    return lat;
}

/* |got - want| within the tracker's resolution: never below, at most 1/32 + 32 ns above. */
static void check_close(int64_t got, double want)
{
    if (!(got >= want - 0.5 && got <= want * (1.0 + 1.0 / 32) + 32))
        sl_test_fail(__FILE__, __LINE__, "percentile %lld, want %.0f (+3.1%%)", (long long)got, want);
}

SL_TEST(latency_config_is_checked)
{
    sl_latency_config cfg;
    sl_latency_config_default(&cfg);
    SL_CHECK_INT(cfg.window_ns, 60 * S);
    SL_CHECK_INT(cfg.slices, 6);
    SL_CHECK_INT(cfg.refresh_ns, MS);
    sl_latency *lat = (sl_latency *)1;
    char err[128];
    cfg.slices = 1;
    SL_CHECK_INT(sl_latency_new(&cfg, &lat, err, sizeof err), SL_RES_E_INVALID);
    SL_CHECK(lat == NULL);
    SL_CHECK_STR(err, "latency slices: 1 is outside 2..64");
    cfg.slices = 65;
    SL_CHECK_INT(sl_latency_new(&cfg, &lat, err, sizeof err), SL_RES_E_INVALID);
    cfg.slices = 4;
    cfg.window_ns = 4 * MS - 1;
    SL_CHECK_INT(sl_latency_new(&cfg, &lat, err, sizeof err), SL_RES_E_INVALID);
    SL_CHECK(strstr(err, "less than 1 ms per slice") != NULL);
    cfg.window_ns = 4 * MS;
    cfg.refresh_ns = -1;
    SL_CHECK_INT(sl_latency_new(&cfg, &lat, NULL, 0), SL_RES_E_INVALID);
    cfg.refresh_ns = 0;
    SL_CHECK_OK(sl_latency_new(&cfg, &lat, NULL, 0));
    sl_latency_free(lat);
}

SL_TEST(latency_empty_window)
{
    sim_now = 0;
    sl_latency *lat = new_sim(60 * S, 6);
    SL_CHECK_INT(sl_latency_percentile(lat, 99), -1);
    SL_CHECK_INT(sl_latency_percentile_cached(lat, 99), -1);
    SL_CHECK_INT(sl_latency_count(lat), 0);
    sl_latency_free(lat);
}

SL_TEST(latency_percentiles_within_resolution)
{
    sim_now = 5 * S;
    sl_latency *lat = new_sim(60 * S, 6);
    /* 1 us .. 100 ms uniformly, shuffled: the p-th percentile is p x 1,000 us. */
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        int v = (int)(((int64_t)i * 7919) % n) + 1;
        sl_latency_record(lat, (int64_t)v * 1000);
    }
    SL_CHECK_INT(sl_latency_count(lat), n);
    double ps[] = {1, 10, 50, 90, 99, 99.9};
    for (size_t i = 0; i < SL_ARRAY_LEN(ps); i++) check_close(sl_latency_percentile(lat, ps[i]), ps[i] * n * 10.0);
    SL_CHECK_INT(sl_latency_percentile(lat, 0), 1000);
    SL_CHECK_INT(sl_latency_percentile(lat, 100), (int64_t)n * 1000);
    /* A long tail: 99% at 2 ms, 1% at 900 ms. */
    sl_latency_free(lat);
    lat = new_sim(60 * S, 6);
    for (int i = 0; i < 9900; i++) sl_latency_record(lat, 2 * MS + i % 7);
    for (int i = 0; i < 100; i++) sl_latency_record(lat, 900 * MS);
    check_close(sl_latency_percentile(lat, 50), 2 * MS + 6);
    check_close(sl_latency_percentile(lat, 98.9), 2 * MS + 6);
    SL_CHECK_INT(sl_latency_percentile(lat, 99.5), 900 * MS);
    sl_latency_free(lat);
}

SL_TEST(latency_constant_small_and_huge_values)
{
    sim_now = 0;
    sl_latency *lat = new_sim(60 * S, 6);
    for (int i = 0; i < 1000; i++) sl_latency_record(lat, 5 * MS);
    SL_CHECK_INT(sl_latency_percentile(lat, 50), 5 * MS); /* the bucket's top clamped to the max */
    SL_CHECK_INT(sl_latency_percentile(lat, 99.9), 5 * MS);
    sl_latency_free(lat);
    lat = new_sim(60 * S, 6);
    sl_latency_record(lat, 100);
    SL_CHECK_INT(sl_latency_percentile(lat, 50), 100);
    sl_latency_record(lat, -5); /* a clock going backwards counts as 0 */
    SL_CHECK_INT(sl_latency_percentile(lat, 0), 0);
    sl_latency_record(lat, 1000 * S); /* past the top (2^37 ns): counted at the top */
    SL_CHECK_INT(sl_latency_percentile(lat, 100), (INT64_C(1) << 37) - 1);
    SL_CHECK_INT(sl_latency_count(lat), 3);
    sl_latency_free(lat);
}

SL_TEST(latency_window_rotates_in_simulated_time)
{
    sim_now = 0;
    sl_latency *lat = new_sim(60 * S, 6); /* slices of 10 s; 7 in the ring */
    for (int i = 0; i < 100; i++) sl_latency_record(lat, 1 * MS);
    sim_now = 30 * S;
    for (int i = 0; i < 100; i++) sl_latency_record(lat, 10 * MS);
    SL_CHECK_INT(sl_latency_count(lat), 200);
    check_close(sl_latency_percentile(lat, 25), 1 * MS); /* the top of 1 ms's bucket */
    SL_CHECK_INT(sl_latency_percentile(lat, 75), 10 * MS); /* the max */
    /* The first hundred (epoch 0) stay while the window reaches epoch 0: until 70 s. */
    sim_now = 70 * S - 1;
    SL_CHECK_INT(sl_latency_count(lat), 200);
    sim_now = 70 * S;
    SL_CHECK_INT(sl_latency_count(lat), 100);
    SL_CHECK_INT(sl_latency_percentile(lat, 1), 10 * MS);
    sim_now = 100 * S;
    SL_CHECK_INT(sl_latency_count(lat), 0);
    SL_CHECK_INT(sl_latency_percentile(lat, 50), -1);
    sl_latency_free(lat);
}

SL_TEST(latency_ring_slots_are_reused_without_clearing)
{
    sim_now = 0;
    sl_latency *lat = new_sim(6 * S, 2); /* slices of 3 s, ring of 3 */
    for (int i = 0; i < 50; i++) sl_latency_record(lat, 7 * MS);
    /* Epoch 3 lands in epoch 0's slot: the old counts must not show. */
    sim_now = 9 * S;
    sl_latency_record(lat, 1 * MS);
    SL_CHECK_INT(sl_latency_count(lat), 1);
    SL_CHECK_INT(sl_latency_percentile(lat, 100), 1 * MS);
    /* Epochs 4 and 5 in the other slots; epoch 3 still in the window at 17.9 s (epoch 5). */
    sim_now = 12 * S;
    sl_latency_record(lat, 2 * MS);
    sim_now = 15 * S;
    sl_latency_record(lat, 3 * MS);
    sim_now = 18 * S - 1;
    SL_CHECK_INT(sl_latency_count(lat), 3);
    SL_CHECK_INT(sl_latency_percentile(lat, 0), 1 * MS);
    /* A long idle time, then a value in the same bucket as the old ones. */
    sim_now = 3000 * S;
    sl_latency_record(lat, 7 * MS);
    SL_CHECK_INT(sl_latency_count(lat), 1);
    sl_latency_free(lat);
}

SL_TEST(latency_cache_refreshes_after_refresh_ns_or_rotation)
{
    sim_now = 0;
    sl_latency *lat = new_sim(60 * S, 6);
    for (int i = 0; i < 100; i++) sl_latency_record(lat, 1 * MS);
    SL_CHECK_INT(sl_latency_percentile_cached(lat, 99), 1 * MS);
    for (int i = 0; i < 1000; i++) sl_latency_record(lat, 50 * MS);
    SL_CHECK_INT(sl_latency_percentile_cached(lat, 99), 1 * MS); /* cached */
    SL_CHECK_INT(sl_latency_percentile(lat, 99), 50 * MS);      /* not cached */
    sim_now = MS - 1;
    SL_CHECK_INT(sl_latency_percentile_cached(lat, 99), 1 * MS);
    sim_now = MS;
    SL_CHECK_INT(sl_latency_percentile_cached(lat, 99), 50 * MS);
    /* Five percentiles: the fifth is computed at each call, the four others stay cached. */
    for (int i = 0; i < 5; i++) SL_CHECK(sl_latency_percentile_cached(lat, 1.0 + i) > 0);
    for (int i = 0; i < 2000; i++) sl_latency_record(lat, 500 * 1000);
    check_close(sl_latency_percentile_cached(lat, 5), 500 * 1000); /* p99, p1, p2, p3 hold the cache */
    check_close(sl_latency_percentile_cached(lat, 3), 1 * MS);      /* cached before the 500 us calls */
    sl_latency_free(lat);

    /* A rotation refreshes at once, however long refresh_ns is. */
    sl_latency_config cfg;
    sl_latency_config_default(&cfg);
    cfg.refresh_ns = 3600 * S;
    cfg.clock = (sl_res_clock){sim_time, NULL, NULL};
    sim_now = 0;
    SL_CHECK_OK(sl_latency_new(&cfg, &lat, NULL, 0));
    sl_latency_record(lat, 4 * MS);
    SL_CHECK_INT(sl_latency_percentile_cached(lat, 50), 4 * MS);
    sl_latency_record(lat, 9 * MS);
    sl_latency_record(lat, 9 * MS);
    sim_now = 10 * S - 1;
    SL_CHECK_INT(sl_latency_percentile_cached(lat, 50), 4 * MS);
    sim_now = 10 * S;
    SL_CHECK_INT(sl_latency_percentile_cached(lat, 50), 9 * MS);
    sl_latency_free(lat);
}

/* ---- Prometheus ---- */

typedef struct prom_parsed {
    int buckets;
    double le[64];
    long long cum[64];
    double sum;
    long long count;
    int type_lines;
} prom_parsed;

/* Parses `name_bucket{<labels>le="X"} N`, `name_sum{<labels>} X`, `name_count{<labels>} N`. */
static void prom_parse(const char *text, const char *name, const char *labels, prom_parsed *p)
{
    memset(p, 0, sizeof *p);
    char bucket[128], sum[128], count[128], type[128];
    const char *l = labels ? labels : "";
    snprintf(bucket, sizeof bucket, "%s_bucket{%s%sle=\"", name, l, l[0] ? "," : "");
    snprintf(sum, sizeof sum, l[0] ? "%s_sum{%s} " : "%s_sum%s ", name, l);
    snprintf(count, sizeof count, l[0] ? "%s_count{%s} " : "%s_count%s ", name, l);
    snprintf(type, sizeof type, "# TYPE %s histogram\n", name);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        SL_CHECK(end != NULL); /* every line ends with a newline */
        char *rest;
        if (strncmp(line, type, strlen(type)) == 0) {
            p->type_lines++;
        } else if (strncmp(line, bucket, strlen(bucket)) == 0) {
            const char *v = line + strlen(bucket);
            SL_CHECK(p->buckets < 64);
            p->le[p->buckets] = strncmp(v, "+Inf", 4) == 0 ? INFINITY : strtod(v, &rest);
            const char *q = strstr(v, "\"} ");
            SL_CHECK(q && q < end);
            p->cum[p->buckets++] = strtoll(q + 3, &rest, 10);
            SL_CHECK(rest == end);
        } else if (strncmp(line, sum, strlen(sum)) == 0) {
            p->sum = strtod(line + strlen(sum), &rest);
            SL_CHECK(rest == end);
        } else if (strncmp(line, count, strlen(count)) == 0) {
            p->count = strtoll(line + strlen(count), &rest, 10);
            SL_CHECK(rest == end);
        } else {
            sl_test_fail(__FILE__, __LINE__, "unexpected line: %.*s", (int)(end - line), line);
        }
        line = end + 1;
    }
}

static void check_prom(sl_latency *lat, const char *labels, const int64_t *values, int n)
{
    char buf[8192];
    size_t len = sl_latency_prometheus(lat, "dep_latency_seconds", labels, buf, sizeof buf);
    SL_CHECK(len < sizeof buf && strlen(buf) == len);
    prom_parsed p;
    prom_parse(buf, "dep_latency_seconds", labels, &p);
    SL_CHECK_INT(p.type_lines, 1);
    SL_CHECK(p.buckets >= 20 && p.buckets <= 40);
    SL_CHECK(isinf(p.le[p.buckets - 1]));
    SL_CHECK_INT(p.cum[p.buckets - 1], n);
    SL_CHECK_INT(p.count, n);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)values[i] / 1e9;
    SL_CHECK(fabs(p.sum - sum) < 1e-9 * (n + 1));
    for (int b = 0; b < p.buckets; b++) {
        if (b > 0) SL_CHECK(p.le[b] > p.le[b - 1] && p.cum[b] >= p.cum[b - 1]);
        long long want = 0; /* the values chosen sit well inside their bounds: exact counts */
        for (int i = 0; i < n; i++) want += (double)values[i] / 1e9 <= p.le[b];
        if (p.cum[b] != want)
            sl_test_fail(__FILE__, __LINE__, "le=%g: %lld, want %lld", p.le[b], p.cum[b], want);
    }
}

SL_TEST(latency_prometheus_text_parses_back)
{
    sim_now = 0;
    sl_latency *lat = new_sim(60 * S, 6);
    /* Each value sits inside one of the exported bounds' ranges with its whole internal bucket (1 ms itself
       would not: its bucket ends at 1.0158 ms, so it shows under le="0.002"; see latency.c). */
    int64_t values[] = {900, 1500 * 1000, 3 * MS, 3 * MS, 950 * 1000, 70 * MS, 7 * S, 150 * S, 42};
    for (size_t i = 0; i < SL_ARRAY_LEN(values); i++) sl_latency_record(lat, values[i]);
    /* 150 s is past the top: it is kept as 137.4 s, which is what the sum and the buckets show. */
    values[7] = (INT64_C(1) << 37) - 1;
    check_prom(lat, "dep=\"payments\",region=\"eu\"", values, (int)SL_ARRAY_LEN(values));
    check_prom(lat, NULL, values, (int)SL_ARRAY_LEN(values));
    check_prom(lat, "", values, (int)SL_ARRAY_LEN(values));
    /* Truncation: the length needed, as snprintf. */
    char small[40];
    size_t need = sl_latency_prometheus(lat, "x", NULL, NULL, 0);
    SL_CHECK_INT(sl_latency_prometheus(lat, "x", NULL, small, sizeof small), need);
    SL_CHECK_INT(strlen(small), sizeof small - 1);
    SL_CHECK(strncmp(small, "# TYPE x histogram\nx_bucket{le=\"0.0000", 38) == 0);
    sl_latency_free(lat);
    lat = new_sim(60 * S, 6);
    check_prom(lat, "a=\"b\"", values, 0);
    sl_latency_free(lat);
}

/* ---- threads ---- */

typedef struct rec_job {
    sl_latency *lat;
    int id, epochs, per_epoch;
    int64_t slice_ns;
    pthread_barrier_t *barrier;
} rec_job;

static void *record_real(void *arg)
{
    rec_job *j = arg;
    for (int i = 0; i < j->per_epoch; i++) sl_latency_record(j->lat, (int64_t)(j->id + 1) * 1000 + i % 3);
    return NULL;
}

SL_TEST(latency_threads_count_exactly)
{
    sl_latency_config cfg;
    sl_latency_config_default(&cfg); /* the system clock; a 60 s window holds the whole test */
    sl_latency *lat;
    SL_CHECK_OK(sl_latency_new(&cfg, &lat, NULL, 0));
    enum { T = 4, N = 100000 };
    pthread_t th[T];
    rec_job jobs[T];
    for (int t = 0; t < T; t++) {
        jobs[t] = (rec_job){.lat = lat, .id = t, .per_epoch = N};
        SL_CHECK_OK(pthread_create(&th[t], NULL, record_real, &jobs[t]));
    }
    /* Readers run while the writers write. */
    for (int i = 0; i < 20; i++) {
        SL_CHECK(sl_latency_count(lat) <= (int64_t)T * N);
        (void)sl_latency_percentile_cached(lat, 99);
    }
    for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
    SL_CHECK_INT(sl_latency_count(lat), (int64_t)T * N);
    SL_CHECK_INT(sl_latency_percentile(lat, 0), 1000);
    SL_CHECK_INT(sl_latency_percentile(lat, 100), 4002);
    check_close(sl_latency_percentile(lat, 50), 2002);
    sl_latency_free(lat);
}

/* Each thread walks through the epochs on its own simulated clock, the threads at most two epochs apart,
   so writers of different epochs (and the first writer of each epoch into each word) race for real. */
static void *record_epochs(void *arg)
{
    rec_job *j = arg;
    for (int e = 0; e < j->epochs; e++) {
        if (e % 3 == 0) pthread_barrier_wait(j->barrier);
        sim_now = e * j->slice_ns + j->id;
        for (int i = 0; i < j->per_epoch; i++) sl_latency_record(j->lat, (int64_t)(e % 5 + 1) * 1000 + j->id);
    }
    return NULL;
}

SL_TEST(latency_threads_rotate_exactly)
{
    enum { T = 4, EPOCHS = 31, PER = 3000, SLICES = 3 };
    sim_now = 0;
    sl_latency *lat = new_sim(SLICES * 10 * MS, SLICES); /* slices of 10 ms, a ring of 4 */
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, T);
    pthread_t th[T];
    rec_job jobs[T];
    for (int t = 0; t < T; t++) {
        jobs[t] = (rec_job){.lat = lat, .id = t, .epochs = EPOCHS, .per_epoch = PER, .slice_ns = 10 * MS,
                            .barrier = &barrier};
        SL_CHECK_OK(pthread_create(&th[t], NULL, record_epochs, &jobs[t]));
    }
    for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&barrier);
    /* At the last epoch, the window holds it and the SLICES before it, exactly. */
    sim_now = (EPOCHS - 1) * 10 * MS;
    SL_CHECK_INT(sl_latency_count(lat), (int64_t)T * PER * (SLICES + 1));
    int64_t lo = INT64_MAX, hi = 0;
    for (int e = EPOCHS - 1 - SLICES; e < EPOCHS; e++) {
        lo = SL_MIN(lo, (int64_t)(e % 5 + 1) * 1000);
        hi = SL_MAX(hi, (int64_t)(e % 5 + 1) * 1000 + T - 1);
    }
    SL_CHECK_INT(sl_latency_percentile(lat, 0), lo);
    SL_CHECK_INT(sl_latency_percentile(lat, 100), hi);
    /* The Prometheus sum is exact too. */
    char buf[8192];
    sl_latency_prometheus(lat, "l", NULL, buf, sizeof buf);
    int64_t sum = 0;
    for (int e = EPOCHS - 1 - SLICES; e < EPOCHS; e++)
        for (int t = 0; t < T; t++) sum += (int64_t)PER * ((e % 5 + 1) * 1000 + t);
    char want[64];
    snprintf(want, sizeof want, "\nl_sum 0.%09lld\n", (long long)sum);
    SL_CHECK(strstr(buf, want) != NULL);
    sl_latency_free(lat);
}
