/*
 * fuzz_pipeline_parse.c - sl_pipeline_parse on any bytes (a description may
 * come from a config file or a request). The input, cut at its first NUL,
 * is parsed with a simulated clock. Then:
 *
 *  - a refusal must be SL_RES_E_INVALID with "at byte N: ..." where N is
 *    within the input (never past its end);
 *  - a pipeline must describe itself canonically, and that description must
 *    parse again to the same description (the fixed point);
 *  - one call that succeeds and one that fails must run through it (stages
 *    built from the description work together), in simulated time.
 *
 * Must not crash, leak, or trip ASan/UBSan for any input; a broken
 * invariant aborts via SL_ASSERT.
 */
#include <stdlib.h>
#include <string.h>
#include "common/base.h"
#include "sluice/resilience.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX 8192

static int64_t sim_ns;
static int64_t sim_now(void *arg)
{
    (void)arg;
    return sim_ns;
}
static void sim_sleep(void *arg, int64_t ns)
{
    (void)arg;
    sim_ns += ns;
}
static const sl_res_clock sim_clock = {sim_now, sim_sleep, NULL};

static int succeed(void *arg, const sl_res_ctx *ctx)
{
    (void)arg;
    SL_ASSERT(ctx->cancel != NULL);
    return 0;
}

static int fail(void *arg, const sl_res_ctx *ctx)
{
    (void)arg, (void)ctx;
    sim_ns += 1000000;
    return 503;
}

static void check_refusal(const char *err, size_t len)
{
    SL_ASSERT(strncmp(err, "at byte ", 8) == 0);
    unsigned long at = strtoul(err + 8, NULL, 10);
    SL_ASSERT(at <= len);
}

static void check_fixed_point(sl_pipeline *p)
{
    char first[8192], second[8192], err[256];
    size_t n = sl_pipeline_describe(p, first, sizeof first);
    SL_ASSERT(n < sizeof first && strlen(first) == n);
    sl_pipeline *again = NULL;
    SL_ASSERT(sl_pipeline_parse(first, &sim_clock, &again, err, sizeof err) == 0);
    SL_ASSERT(sl_pipeline_describe(again, second, sizeof second) == n);
    SL_ASSERT(memcmp(first, second, n + 1) == 0);
    sl_pipeline_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > INPUT_MAX) return 0;
    char *desc = malloc(size + 1);
    if (!desc) return 0;
    memcpy(desc, data, size);
    desc[size] = '\0';
    size_t len = strlen(desc);
    sim_ns = 1000000000;
    char err[256] = "";
    sl_pipeline *p = NULL;
    int rc = sl_pipeline_parse(desc, &sim_clock, &p, err, sizeof err);
    if (rc != 0) {
        SL_ASSERT(rc == SL_RES_E_INVALID && p == NULL);
        check_refusal(err, len);
    } else {
        check_fixed_point(p);
        sl_pipeline_run(p, succeed, NULL, "key", 3);
        sl_pipeline_run(p, fail, NULL, "key", 3);
        sl_pipeline_free(p);
    }
    free(desc);
    return 0;
}
