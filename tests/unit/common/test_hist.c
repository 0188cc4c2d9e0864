/* Tests for src/common/hist.c: exact small values, bounded relative error, merge, percentiles. */
#include "test.h"
#include "common/hist.h"

SL_TEST(small_values_are_exact)
{
    static sl_hist h;
    sl_hist_init(&h);
    for (uint64_t v = 1; v <= 10; v++) sl_hist_record(&h, v);
    SL_CHECK_INT(h.total, 10);
    SL_CHECK_INT(sl_hist_percentile(&h, 50), 5);
    SL_CHECK_INT(sl_hist_percentile(&h, 100), 10);
    SL_CHECK_INT(sl_hist_percentile(&h, 0), 1);
    SL_CHECK(sl_hist_mean(&h) > 5.49 && sl_hist_mean(&h) < 5.51);
}

SL_TEST(percentiles_within_the_bucket_error)
{
    static sl_hist h;
    sl_hist_init(&h);
    /* 1..1,000,000 uniformly: the p-th percentile is ~p * 10,000. */
    for (uint64_t v = 1; v <= 1000000; v++) sl_hist_record(&h, v);
    double ps[] = {1, 10, 50, 90, 99, 99.9};
    for (size_t i = 0; i < SL_ARRAY_LEN(ps); i++) {
        double want = ps[i] * 10000.0, got = (double)sl_hist_percentile(&h, ps[i]);
        SL_CHECK(got >= want * 0.99 && got <= want * (1.0 + 1.0 / SL_HIST_SUB) + 1);
    }
    SL_CHECK_INT(sl_hist_percentile(&h, 100), 1000000);
    SL_CHECK_INT(h.min, 1);
}

SL_TEST(huge_values_and_merge)
{
    static sl_hist a, b;
    sl_hist_init(&a);
    sl_hist_init(&b);
    sl_hist_record(&a, 0);
    sl_hist_record(&b, UINT64_MAX);
    sl_hist_record(&b, (uint64_t)1 << 40);
    sl_hist_merge(&a, &b);
    SL_CHECK_INT(a.total, 3);
    SL_CHECK_INT(a.min, 0);
    SL_CHECK(a.max == UINT64_MAX);
    SL_CHECK(sl_hist_percentile(&a, 100) == UINT64_MAX);
    uint64_t p50 = sl_hist_percentile(&a, 50);
    SL_CHECK(p50 >= (uint64_t)1 << 40 && p50 <= ((uint64_t)1 << 40) + ((uint64_t)1 << 36));
    static sl_hist empty;
    sl_hist_init(&empty);
    SL_CHECK_INT(sl_hist_percentile(&empty, 99), 0);
}
