/*
 * parse.c - a pipeline and its policies from a one-line description, and
 * the canonical description of a parsed pipeline back (sl_pipeline_describe).
 *
 *   rate(1000/s, burst=100) | bulkhead(16, wait=10ms) | timeout(p99 x 2, min=100ms, max=10s)
 *     | retry(3, base=50ms, cap=2s, budget=10%) | breaker(count=100, failure=50%, slow=80%@1s, open=30s)
 *
 * Grammar (bytes; `ws` is any run of space, tab, CR, LF; keys and words are
 * lower case):
 *
 *   description := ws stage (ws "|" ws stage)* ws                  (at most 4096 bytes, 8 stages)
 *   stage       := name ws "(" ws [arg (ws "," ws arg)*] ws ")"   (at most 16 args)
 *   arg         := value | key ws "=" ws value   (an unkeyed value only first, where the stage takes one)
 *   name, key   := [a-z_][a-z0-9_]*                                (at most 31 bytes)
 *   count       := [0-9]+                                          (at most 18 digits)
 *   number      := [0-9]+ ["." [0-9]+]                             (at most 18 digits in all)
 *   duration    := number unit      unit := "ns" | "us" | "ms" | "s" | "min" | "h"   (no space between)
 *   rate        := number "/" [number] unit                        1000/s, 50/100ms, 60/min
 *   percent     := number "%"                                      50%, 12.5%
 *   slow        := percent "@" duration                            80%@1s
 *   percentile  := "p" number [ws "x" ws number]                   p99, p99.9 x 1.5
 *
 * Stages, written in the order they run (each at most once; rate twice: one
 * per key, one global), and their arguments (defaults: the policy's own):
 *
 *   rate(RATE, burst=COUNT)                      token bucket; burst defaults to one second's worth (>= 1)
 *   rate(RATE, per=key, buckets=COUNT, keys=COUNT)  sliding window per key: RATE's count in RATE's period
 *   bulkhead(COUNT, wait=DURATION)
 *   limit(aimd|gradient, initial=, min=, max=, priority= COUNT, slow=DURATION, backoff=, smoothing= NUMBER,
 *         queue=COUNT, tolerance=NUMBER, probe=DURATION)
 *   timeout(DURATION) | timeout(fixed=DURATION) | timeout(PERCENTILE x K, min=DURATION, max=DURATION)
 *   retry(COUNT, base=, cap= DURATION, mult=NUMBER, jitter=full|none, budget=PERCENT|none,
 *         budget_window=DURATION, budget_min=RATE (per second, whole), attempt_timeout=DURATION,
 *         growth=NUMBER, classify=http|all, seed=COUNT)
 *   breaker(count=COUNT | time=DURATION (whole seconds) | consecutive=COUNT, min_calls=COUNT,
 *           failure=PERCENT, slow=SLOW, open=DURATION, probes=COUNT, half_open_max=DURATION)
 *   hedge(COUNT, delay=DURATION | delay=pNN, min_delay=DURATION, threads=COUNT, queue=COUNT)
 *
 * A percentile in timeout or hedge reads a latency tracker (60 s window)
 * the parser creates; the pipeline records every attempt's latency into it.
 * The policies that do not sleep get the pipeline's stage clock (see
 * sl_pipeline_stage_clock: they share the pipeline's reads of the time);
 * the bulkhead and the hedge get the clock given to sl_pipeline_parse.
 * A breaker with a count window and no min_calls gets min_calls = min(100,
 * count), so that a small window can open at all. Bounds the parser adds,
 * because a description may come from a file or a request: counts up to
 * 2^31 - 1, durations up to 2^62 ns, hedge threads up to 64 and its queue
 * up to 65536, per-key keys up to 65536, breaker count windows up to
 * 100000 calls and time windows up to 3600 s.
 *
 * Errors: SL_RES_E_INVALID and "at byte N: <stage>: <key>: expected ..., found ..."
 * where N is the 0-based byte offset in the description; a value the policy
 * itself refuses is reported at its stage's name with the policy's sentence.
 *
 * The parser is a cursor over (text, length): every read checks pos < len,
 * so it never reads past the end however the text is cut; numbers are read
 * digit by digit (no strtod: its view of the locale and of the length are
 * not ours). It first fills a description (pipeline_spec, no allocation),
 * then builds the policies from it; the pipeline owns both, and
 * sl_pipeline_describe prints the spec back with every value explicit -- a
 * fixed point: describing the parse of a description yields it again.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "resilience/compose_int.h"

#define DESC_MAX       4096
#define STAGES_MAX     8
#define ARGS_MAX       16
#define WORD_MAX       31
#define DIGITS_MAX     18
#define COUNT_MAX      2147483647LL
#define DURATION_MAX   (1LL << 62)
#define HEDGE_THREADS  64
#define HEDGE_QUEUE    65536
#define KEYS_MAX       65536
#define CB_COUNT_MAX   100000
#define CB_SECONDS_MAX 3600
#define SECOND         1000000000LL

/* ---- the description, before any policy exists ---- */

typedef struct rate_spec {
    double count;
    int64_t period_ns;
} rate_spec;

typedef struct keyed_spec {
    bool on;
    size_t at;
    rate_spec rate;
    int32_t buckets, keys;
} keyed_spec;
typedef struct bucket_spec {
    bool on;
    size_t at;
    rate_spec rate;
    int32_t burst;
} bucket_spec;
typedef struct bulkhead_spec {
    bool on;
    size_t at;
    int32_t max;
    int64_t wait_ns;
} bulkhead_spec;
typedef struct limit_spec {
    bool on;
    size_t at;
    sl_limit_config cfg;
    int32_t priority;
} limit_spec;
typedef struct timeout_spec {
    bool on;
    size_t at;
    int64_t fixed_ns;
    double percentile, k;
    int64_t min_ns, max_ns;
} timeout_spec;
typedef struct retry_spec {
    bool on;
    size_t at;
    sl_retry_config cfg;
    bool http;
} retry_spec;
typedef struct breaker_spec {
    bool on;
    size_t at;
    sl_cb_config cfg;
} breaker_spec;
typedef struct hedge_spec {
    bool on;
    size_t at;
    int32_t hedges, threads, queue;
    int64_t delay_ns, min_delay_ns;
    double percentile;
} hedge_spec;
/* A rate stage while it is read: which kind it is shows at its end. */
typedef struct rate_arg_spec {
    size_t at;
    rate_spec rate;
    bool per_key;
    int32_t burst, buckets, keys;
} rate_arg_spec;

typedef struct pipeline_spec {
    keyed_spec keyed;
    bucket_spec rate;
    bulkhead_spec bulkhead;
    limit_spec limit;
    timeout_spec timeout;
    retry_spec retry;
    breaker_spec breaker;
    hedge_spec hedge;
    rate_arg_spec rate_arg;
} pipeline_spec;

/* What a parsed pipeline owns. */
typedef struct parsed {
    pipeline_spec spec;
    sl_latency *latency;
    sl_sliding_window *keyed;
    sl_token_bucket *bucket;
    sl_bulkhead *bulkhead;
    sl_limit *limit;
    sl_retry *retry;
    sl_cb *breaker;
    sl_hedge *hedge;
    sl_pool *pool;
} parsed;

/* ---- the cursor and its errors ---- */

typedef struct cursor {
    const char *s;
    size_t len, pos;
    const char *label; /* "retry: base", for errors */
    char *err;
    size_t err_len;
} cursor;

static int fail_at(cursor *c, size_t at, const char *fmt, ...) SL_PRINTF(3, 4);
static int fail_at(cursor *c, size_t at, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sl__res_invalid(c->err, c->err_len, "at byte %zu: %s", at, msg);
}

static char peek(const cursor *c) { return c->pos < c->len ? c->s[c->pos] : '\0'; }
static char peek_at(const cursor *c, size_t ahead) { return c->pos + ahead < c->len ? c->s[c->pos + ahead] : '\0'; }
static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static bool is_word_start(char ch) { return (ch >= 'a' && ch <= 'z') || ch == '_'; }
static bool is_word(char ch) { return is_word_start(ch) || is_digit(ch); }

static void skip_ws(cursor *c)
{
    while (c->pos < c->len && (c->s[c->pos] == ' ' || c->s[c->pos] == '\t' || c->s[c->pos] == '\n' ||
                               c->s[c->pos] == '\r'))
        c->pos++;
}

/* "'x'", "the end", or "byte 0xNN" for what is at the cursor. */
static const char *found(const cursor *c, char *buf, size_t cap)
{
    char ch = peek(c);
    if (c->pos >= c->len)
        snprintf(buf, cap, "the end");
    else if (ch > ' ' && ch < 127)
        snprintf(buf, cap, "'%c'", ch);
    else
        snprintf(buf, cap, "byte 0x%02x", (unsigned)(unsigned char)ch);
    return buf;
}

static int expected(cursor *c, const char *what)
{
    char f[16];
    return fail_at(c, c->pos, "%s%sexpected %s, found %s", c->label ? c->label : "", c->label ? ": " : "", what,
                   found(c, f, sizeof f));
}

static int expect_char(cursor *c, char ch, const char *what)
{
    if (peek(c) != ch) return expected(c, what);
    c->pos++;
    return 0;
}

/* A name or key into buf; 0 when there is none at the cursor. */
static size_t word(cursor *c, char *buf)
{
    size_t n = 0;
    if (!is_word_start(peek(c))) return 0;
    while (is_word(peek(c))) {
        if (n < WORD_MAX) buf[n] = peek(c);
        n++;
        c->pos++;
    }
    buf[n < WORD_MAX ? n : WORD_MAX] = '\0';
    return n;
}

/* ---- values ---- */

typedef struct decimal {
    uint64_t mant;
    int frac; /* value = mant / 10^frac */
} decimal;

static const uint64_t pow10_table[DIGITS_MAX + 1] = {1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
    10000000ull, 100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull, 10000000000000ull,
    100000000000000ull, 1000000000000000ull, 10000000000000000ull, 100000000000000000ull, 1000000000000000000ull};

static double decimal_value(decimal d) { return (double)d.mant / (double)pow10_table[d.frac]; }

static int read_decimal(cursor *c, decimal *d, bool fraction, const char *what)
{
    size_t at = c->pos;
    int digits = 0;
    bool dot = false;
    *d = (decimal){0, 0};
    for (;;) {
        char ch = peek(c);
        if (is_digit(ch)) {
            if (++digits > DIGITS_MAX) return fail_at(c, at, "%s: a number of more than %d digits", c->label, DIGITS_MAX);
            d->mant = d->mant * 10 + (uint64_t)(ch - '0');
            d->frac += dot;
            c->pos++;
        } else if (ch == '.' && fraction && !dot && digits > 0 && is_digit(peek_at(c, 1))) {
            dot = true;
            c->pos++;
        } else {
            break;
        }
    }
    return digits == 0 ? expected(c, what) : 0;
}

static int read_count(cursor *c, int64_t max, int64_t *out, const char *what)
{
    decimal d;
    size_t at = c->pos;
    int rc = read_decimal(c, &d, false, what);
    if (rc) return rc;
    if (d.mant > (uint64_t)max) return fail_at(c, at, "%s: %llu is over %lld", c->label, (unsigned long long)d.mant, (long long)max);
    *out = (int64_t)d.mant;
    return 0;
}

static int read_count32(cursor *c, int64_t max, int32_t *out, const char *what)
{
    int64_t v = 0;
    int rc = read_count(c, max, &v, what);
    if (rc == 0) *out = (int32_t)v;
    return rc;
}

static int read_number(cursor *c, double *out, const char *what)
{
    decimal d;
    int rc = read_decimal(c, &d, true, what);
    if (rc == 0) *out = decimal_value(d);
    return rc;
}

static const struct {
    const char *name;
    int64_t ns;
} units[] = {{"ns", 1}, {"us", 1000}, {"ms", 1000000}, {"s", SECOND}, {"min", 60 * SECOND}, {"h", 3600 * SECOND}};

static int read_unit(cursor *c, int64_t *unit_ns)
{
    char w[WORD_MAX + 1];
    size_t at = c->pos;
    size_t n = word(c, w);
    for (size_t i = 0; n > 0 && i < SL_ARRAY_LEN(units); i++)
        if (strcmp(w, units[i].name) == 0) {
            *unit_ns = units[i].ns;
            return 0;
        }
    c->pos = at;
    return expected(c, "a unit (ns, us, ms, s, min, h)");
}

/* mant / 10^frac x unit, rounded to the nanosecond. */
static int scale(cursor *c, size_t at, decimal d, int64_t unit_ns, int64_t *ns)
{
    unsigned __int128 v = (unsigned __int128)d.mant * (uint64_t)unit_ns;
    uint64_t div = pow10_table[d.frac];
    v = (v + div / 2) / div;
    if (v > (unsigned __int128)DURATION_MAX) return fail_at(c, at, "%s: a duration over 2^62 ns", c->label);
    *ns = (int64_t)v;
    return 0;
}

static int read_duration(cursor *c, int64_t *ns)
{
    size_t at = c->pos;
    decimal d;
    int64_t unit;
    int rc = read_decimal(c, &d, true, "a duration (e.g. 10ms)");
    if (!rc) rc = read_unit(c, &unit);
    return rc ? rc : scale(c, at, d, unit, ns);
}

static int read_rate(cursor *c, rate_spec *r)
{
    size_t at = c->pos;
    decimal count, per = {1, 0};
    int64_t unit;
    int rc = read_decimal(c, &count, true, "a rate (e.g. 100/s)");
    if (!rc) rc = expect_char(c, '/', "'/' and a period (e.g. 100/s)");
    if (!rc && is_digit(peek(c))) rc = read_decimal(c, &per, true, "a period");
    if (!rc) rc = read_unit(c, &unit);
    if (!rc) rc = scale(c, at, per, unit, &r->period_ns);
    if (rc) return rc;
    if (r->period_ns <= 0) return fail_at(c, at, "%s: the period is 0", c->label);
    r->count = decimal_value(count);
    return 0;
}

static int read_percent(cursor *c, double *pct)
{
    int rc = read_number(c, pct, "a percentage (e.g. 50%)");
    return rc ? rc : expect_char(c, '%', "'%' after the percentage");
}

/* "pNN" then, when `scaled`, an optional "x K" (K stays as it was when absent). */
static int read_percentile(cursor *c, bool scaled, double *p, double *k)
{
    int rc = expect_char(c, 'p', "a percentile (e.g. p99)");
    if (!rc) rc = read_number(c, p, "the percentile's number (e.g. p99)");
    if (rc || !scaled) return rc;
    size_t back = c->pos;
    skip_ws(c);
    if (peek(c) != 'x' || is_word_start(peek_at(c, 1))) {
        c->pos = back;
        return 0;
    }
    c->pos++;
    skip_ws(c);
    return read_number(c, k, "a multiplier after 'x' (e.g. p99 x 2)");
}

/* One of the NULL-terminated words; its index in *which. */
static int read_choice(cursor *c, const char *const *words, int *which, const char *what)
{
    char w[WORD_MAX + 1];
    size_t at = c->pos;
    if (word(c, w) > 0)
        for (int i = 0; words[i]; i++)
            if (strcmp(w, words[i]) == 0) {
                *which = i;
                return 0;
            }
    c->pos = at;
    return expected(c, what);
}

/* ---- stages: defaults (begin), one argument (arg; key -1 = the unkeyed first value), checks (end) ---- */

#define POSITIONAL (1u << 31)
#define SEEN(key)  (1u << (key))

typedef struct stage_def {
    const char *name;
    int order;
    const char *positional; /* what an unkeyed first value is; NULL: the stage takes none */
    const char *const *keys;
    const char *key_list;
    void (*begin)(pipeline_spec *s, size_t at);
    int (*arg)(cursor *c, pipeline_spec *s, int key);
    int (*end)(cursor *c, pipeline_spec *s, size_t at, uint32_t seen);
} stage_def;

/* rate */
static const char *const rate_keys[] = {"burst", "per", "buckets", "keys", NULL};
enum { RATE_BURST, RATE_PER, RATE_BUCKETS, RATE_KEYS };

static void rate_begin(pipeline_spec *s, size_t at)
{
    s->rate_arg = (rate_arg_spec){.at = at, .burst = -1, .buckets = 10, .keys = 4096};
}

static int rate_arg(cursor *c, pipeline_spec *s, int key)
{
    static const char *const per[] = {"key", NULL};
    int which;
    switch (key) {
    case -1: return read_rate(c, &s->rate_arg.rate);
    case RATE_BURST: return read_count32(c, COUNT_MAX, &s->rate_arg.burst, "a burst (e.g. 100)");
    case RATE_PER: s->rate_arg.per_key = true; return read_choice(c, per, &which, "'key'");
    case RATE_BUCKETS: return read_count32(c, COUNT_MAX, &s->rate_arg.buckets, "a number of buckets");
    case RATE_KEYS: return read_count32(c, KEYS_MAX, &s->rate_arg.keys, "a number of keys");
    default: SL_UNREACHABLE();
    }
}

static int rate_end_per_key(cursor *c, pipeline_spec *s, size_t at, uint32_t seen)
{
    double count = s->rate_arg.rate.count;
    if (seen & SEEN(RATE_BURST)) return fail_at(c, at, "rate: burst= is for a global rate, not one per=key");
    if (s->keyed.on) return fail_at(c, at, "a second per-key 'rate' stage");
    if (count < 1 || count > COUNT_MAX || count != (double)(int64_t)count)
        return fail_at(c, at, "rate: per=key needs a whole number of calls per period (e.g. 100/s)");
    s->keyed.on = true;
    s->keyed.at = at;
    s->keyed.rate = s->rate_arg.rate;
    s->keyed.buckets = s->rate_arg.buckets;
    s->keyed.keys = s->rate_arg.keys;
    return 0;
}

static int rate_end(cursor *c, pipeline_spec *s, size_t at, uint32_t seen)
{
    if (!(seen & POSITIONAL)) return fail_at(c, at, "rate: expected the rate first (e.g. rate(100/s))");
    if (s->rate_arg.per_key) return rate_end_per_key(c, s, at, seen);
    if (seen & (SEEN(RATE_BUCKETS) | SEEN(RATE_KEYS)))
        return fail_at(c, at, "rate: buckets= and keys= are for a rate per=key");
    if (s->rate.on) return fail_at(c, at, "a second global 'rate' stage");
    double per_s = s->rate_arg.rate.count * (double)SECOND / (double)s->rate_arg.rate.period_ns;
    int32_t burst = s->rate_arg.burst;
    if (burst < 0) burst = per_s < 1 ? 1 : per_s >= (double)COUNT_MAX ? (int32_t)COUNT_MAX : (int32_t)(per_s + 0.5);
    s->rate.on = true;
    s->rate.at = at;
    s->rate.rate = s->rate_arg.rate;
    s->rate.burst = burst;
    return 0;
}

/* bulkhead */
static const char *const bulkhead_keys[] = {"wait", NULL};

static void bulkhead_begin(pipeline_spec *s, size_t at) { s->bulkhead = (bulkhead_spec){.on = true, .at = at}; }

static int bulkhead_arg(cursor *c, pipeline_spec *s, int key)
{
    if (key < 0) return read_count32(c, COUNT_MAX, &s->bulkhead.max, "the calls allowed at once (e.g. 16)");
    return read_duration(c, &s->bulkhead.wait_ns);
}

static int bulkhead_end(cursor *c, pipeline_spec *s, size_t at, uint32_t seen)
{
    (void)s;
    if (!(seen & POSITIONAL)) return fail_at(c, at, "bulkhead: expected the calls allowed at once first (e.g. bulkhead(16))");
    return 0;
}

/* limit */
static const char *const limit_keys[] = {"initial", "min", "max", "priority", "slow", "backoff", "smoothing", "queue",
                                         "tolerance", "probe", NULL};
enum { LIMIT_INITIAL, LIMIT_MIN, LIMIT_MAX, LIMIT_PRIORITY, LIMIT_SLOW, LIMIT_BACKOFF, LIMIT_SMOOTHING, LIMIT_QUEUE,
       LIMIT_TOLERANCE, LIMIT_PROBE };

static void limit_begin(pipeline_spec *s, size_t at)
{
    s->limit.on = true;
    s->limit.at = at;
    sl_limit_config_default(&s->limit.cfg);
    s->limit.priority = 0;
}

static int limit_arg(cursor *c, pipeline_spec *s, int key)
{
    static const char *const algos[] = {"aimd", "gradient", NULL};
    sl_limit_config *cfg = &s->limit.cfg;
    int which, rc;
    switch (key) {
    case -1:
        rc = read_choice(c, algos, &which, "aimd or gradient");
        cfg->algo = which == 0 ? SL_LIMIT_AIMD : SL_LIMIT_GRADIENT;
        return rc;
    case LIMIT_INITIAL: return read_count32(c, COUNT_MAX, &cfg->initial, "a limit");
    case LIMIT_MIN: return read_count32(c, COUNT_MAX, &cfg->min_limit, "a limit");
    case LIMIT_MAX: return read_count32(c, COUNT_MAX, &cfg->max_limit, "a limit");
    case LIMIT_PRIORITY: return read_count32(c, SL_LIMIT_PRIORITIES - 1, &s->limit.priority, "a priority (0..3)");
    case LIMIT_SLOW: return read_duration(c, &cfg->aimd_slow_ns);
    case LIMIT_BACKOFF: return read_number(c, &cfg->aimd_backoff, "a multiplier (e.g. 0.9)");
    case LIMIT_SMOOTHING: return read_number(c, &cfg->gradient_smoothing, "a weight (e.g. 0.2)");
    case LIMIT_QUEUE: return read_count32(c, COUNT_MAX, &cfg->gradient_queue, "a queue allowance");
    case LIMIT_TOLERANCE: return read_number(c, &cfg->gradient_tolerance, "a fraction (e.g. 0.1)");
    case LIMIT_PROBE: return read_duration(c, &cfg->gradient_probe_ns);
    default: SL_UNREACHABLE();
    }
}

static int no_end(cursor *c, pipeline_spec *s, size_t at, uint32_t seen)
{
    (void)c, (void)s, (void)at, (void)seen;
    return 0;
}

/* timeout */
static const char *const timeout_keys[] = {"fixed", "min", "max", NULL};
enum { TIMEOUT_FIXED, TIMEOUT_MIN, TIMEOUT_MAX };

static void timeout_begin(pipeline_spec *s, size_t at)
{
    sl_timeout_config d;
    sl_timeout_config_default(&d);
    s->timeout = (timeout_spec){.on = true, .at = at, .percentile = d.percentile, .k = d.k, .min_ns = d.min_ns,
                                      .max_ns = d.max_ns};
}

static int timeout_arg(cursor *c, pipeline_spec *s, int key)
{
    switch (key) {
    case -1:
        if (peek(c) == 'p') return read_percentile(c, true, &s->timeout.percentile, &s->timeout.k);
        return read_duration(c, &s->timeout.fixed_ns);
    case TIMEOUT_FIXED: return read_duration(c, &s->timeout.fixed_ns);
    case TIMEOUT_MIN: return read_duration(c, &s->timeout.min_ns);
    case TIMEOUT_MAX: return read_duration(c, &s->timeout.max_ns);
    default: SL_UNREACHABLE();
    }
}

static int timeout_end(cursor *c, pipeline_spec *s, size_t at, uint32_t seen)
{
    bool fixed = (seen & SEEN(TIMEOUT_FIXED)) || ((seen & POSITIONAL) && s->timeout.fixed_ns > 0);
    if (!(seen & (POSITIONAL | SEEN(TIMEOUT_FIXED))))
        return fail_at(c, at, "timeout: expected a duration or a percentile first (e.g. timeout(2s), timeout(p99 x 2))");
    if ((seen & POSITIONAL) && (seen & SEEN(TIMEOUT_FIXED)))
        return fail_at(c, at, "timeout: both a first value and fixed=");
    if (fixed && (seen & (SEEN(TIMEOUT_MIN) | SEEN(TIMEOUT_MAX))))
        return fail_at(c, at, "timeout: min= and max= are for an adaptive timeout (e.g. timeout(p99 x 2, max=10s))");
    if (fixed) return s->timeout.fixed_ns > 0 ? 0 : fail_at(c, at, "timeout: a fixed timeout of 0");
    const timeout_spec *t = &s->timeout;
    if (!(t->percentile > 0 && t->percentile <= 100)) return fail_at(c, at, "timeout: the percentile is not in (0, 100]");
    if (!(t->k > 0)) return fail_at(c, at, "timeout: the multiplier is 0");
    if (t->max_ns <= 0 || t->min_ns > t->max_ns) return fail_at(c, at, "timeout: min= is over max=, or max= is 0");
    return 0;
}

/* retry */
static const char *const retry_keys[] = {"base", "cap", "mult", "jitter", "budget", "budget_window", "budget_min",
                                         "attempt_timeout", "growth", "classify", "seed", NULL};
enum { RETRY_BASE, RETRY_CAP, RETRY_MULT, RETRY_JITTER, RETRY_BUDGET, RETRY_BUDGET_WINDOW, RETRY_BUDGET_MIN,
       RETRY_ATTEMPT_TIMEOUT, RETRY_GROWTH, RETRY_CLASSIFY, RETRY_SEED };

static void retry_begin(pipeline_spec *s, size_t at)
{
    s->retry = (retry_spec){.on = true, .at = at};
    sl_retry_config_default(&s->retry.cfg);
}

static int read_budget(cursor *c, sl_retry_config *cfg)
{
    static const char *const none[] = {"none", NULL};
    int which;
    if (is_word_start(peek(c))) {
        cfg->budget_ratio = 0;
        return read_choice(c, none, &which, "a percentage or none");
    }
    double pct = 0;
    int rc = read_percent(c, &pct);
    cfg->budget_ratio = pct / 100;
    return rc;
}

/* A rate that must come to a whole number per second. */
static int read_per_second(cursor *c, int32_t *out)
{
    size_t at = c->pos;
    rate_spec r;
    int rc = read_rate(c, &r);
    if (rc) return rc;
    double per_s = r.count * (double)SECOND / (double)r.period_ns;
    if (per_s > (double)COUNT_MAX || per_s != (double)(int64_t)per_s)
        return fail_at(c, at, "%s: %g per second is not a whole number up to %lld", c->label, per_s, COUNT_MAX);
    *out = (int32_t)per_s;
    return 0;
}

static int retry_arg(cursor *c, pipeline_spec *s, int key)
{
    static const char *const jitter[] = {"full", "none", NULL}, *const classify[] = {"http", "all", NULL};
    sl_retry_config *cfg = &s->retry.cfg;
    int which = 0, rc;
    int64_t seed = 0;
    switch (key) {
    case -1: return read_count32(c, COUNT_MAX, &cfg->max_attempts, "the number of attempts (e.g. 3)");
    case RETRY_BASE: return read_duration(c, &cfg->base_ns);
    case RETRY_CAP: return read_duration(c, &cfg->max_backoff_ns);
    case RETRY_MULT: return read_number(c, &cfg->multiplier, "a multiplier (e.g. 2)");
    case RETRY_JITTER:
        rc = read_choice(c, jitter, &which, "full or none");
        cfg->full_jitter = which == 0;
        return rc;
    case RETRY_BUDGET: return read_budget(c, cfg);
    case RETRY_BUDGET_WINDOW: return read_duration(c, &cfg->budget_window_ns);
    case RETRY_BUDGET_MIN: return read_per_second(c, &cfg->budget_min_per_s);
    case RETRY_ATTEMPT_TIMEOUT: return read_duration(c, &cfg->attempt_timeout_ns);
    case RETRY_GROWTH: return read_number(c, &cfg->attempt_timeout_growth, "a multiplier (e.g. 1.5)");
    case RETRY_CLASSIFY:
        rc = read_choice(c, classify, &which, "http or all");
        s->retry.http = which == 0;
        return rc;
    case RETRY_SEED:
        rc = read_count(c, INT64_MAX, &seed, "a seed");
        cfg->seed = (uint64_t)seed;
        return rc;
    default: SL_UNREACHABLE();
    }
}

/* breaker */
static const char *const breaker_keys[] = {"count", "time", "consecutive", "min_calls", "failure", "slow", "open",
                                           "probes", "half_open_max", NULL};
enum { CB_COUNT, CB_TIME, CB_CONSECUTIVE, CB_MIN_CALLS, CB_FAILURE, CB_SLOW, CB_OPEN, CB_PROBES, CB_HALF_OPEN_MAX };

static void breaker_begin(pipeline_spec *s, size_t at)
{
    s->breaker = (breaker_spec){.on = true, .at = at};
    sl_cb_config_default(&s->breaker.cfg);
}

static int read_seconds(cursor *c, int32_t *out)
{
    size_t at = c->pos;
    int64_t ns;
    int rc = read_duration(c, &ns);
    if (rc) return rc;
    if (ns % SECOND != 0 || ns < SECOND || ns > CB_SECONDS_MAX * SECOND)
        return fail_at(c, at, "%s: a time window is whole seconds, 1s..%ds", c->label, CB_SECONDS_MAX);
    *out = (int32_t)(ns / SECOND);
    return 0;
}

static int breaker_arg(cursor *c, pipeline_spec *s, int key)
{
    sl_cb_config *cfg = &s->breaker.cfg;
    int rc;
    switch (key) {
    case CB_COUNT: cfg->mode = SL_CB_COUNT_WINDOW; return read_count32(c, CB_COUNT_MAX, &cfg->window, "a number of calls");
    case CB_TIME: cfg->mode = SL_CB_TIME_WINDOW; return read_seconds(c, &cfg->window);
    case CB_CONSECUTIVE:
        cfg->mode = SL_CB_CONSECUTIVE;
        return read_count32(c, COUNT_MAX, &cfg->consecutive_failures, "a number of failures");
    case CB_MIN_CALLS: return read_count32(c, COUNT_MAX, &cfg->min_calls, "a number of calls");
    case CB_FAILURE: return read_percent(c, &cfg->failure_rate);
    case CB_SLOW:
        rc = read_percent(c, &cfg->slow_rate);
        if (!rc) rc = expect_char(c, '@', "'@' and the duration of a slow call (e.g. 80%@1s)");
        return rc ? rc : read_duration(c, &cfg->slow_ns);
    case CB_OPEN: return read_duration(c, &cfg->open_ns);
    case CB_PROBES: return read_count32(c, COUNT_MAX, &cfg->half_open_calls, "a number of calls");
    case CB_HALF_OPEN_MAX: return read_duration(c, &cfg->half_open_max_ns);
    default: SL_UNREACHABLE();
    }
}

static int breaker_end(cursor *c, pipeline_spec *s, size_t at, uint32_t seen)
{
    uint32_t modes = seen & (SEEN(CB_COUNT) | SEEN(CB_TIME) | SEEN(CB_CONSECUTIVE));
    if (modes & (modes - 1)) return fail_at(c, at, "breaker: one of count=, time= and consecutive=, not several");
    sl_cb_config *cfg = &s->breaker.cfg;
    if (cfg->mode == SL_CB_COUNT_WINDOW && !(seen & SEEN(CB_MIN_CALLS)) && cfg->min_calls > cfg->window)
        cfg->min_calls = cfg->window;
    return 0;
}

/* hedge */
static const char *const hedge_keys[] = {"delay", "min_delay", "threads", "queue", NULL};
enum { HEDGE_DELAY, HEDGE_MIN_DELAY, HEDGE_THREADS_KEY, HEDGE_QUEUE_KEY };

static void hedge_begin(pipeline_spec *s, size_t at)
{
    sl_hedge_config d;
    sl_hedge_config_default(&d);
    s->hedge = (hedge_spec){.on = true, .at = at, .hedges = d.max_hedges, .threads = 4, .queue = 64,
                            .delay_ns = 0, .min_delay_ns = d.min_delay_ns, .percentile = d.percentile};
}

static int hedge_arg(cursor *c, pipeline_spec *s, int key)
{
    switch (key) {
    case -1: return read_count32(c, COUNT_MAX, &s->hedge.hedges, "the number of hedges (e.g. 1)");
    case HEDGE_DELAY:
        s->hedge.delay_ns = 0;
        if (peek(c) == 'p') return read_percentile(c, false, &s->hedge.percentile, NULL);
        return read_duration(c, &s->hedge.delay_ns);
    case HEDGE_MIN_DELAY: return read_duration(c, &s->hedge.min_delay_ns);
    case HEDGE_THREADS_KEY: return read_count32(c, HEDGE_THREADS, &s->hedge.threads, "a number of threads");
    case HEDGE_QUEUE_KEY: return read_count32(c, HEDGE_QUEUE, &s->hedge.queue, "a queue length");
    default: SL_UNREACHABLE();
    }
}

static int hedge_end(cursor *c, pipeline_spec *s, size_t at, uint32_t seen)
{
    (void)seen;
    if (s->hedge.threads < 1) return fail_at(c, at, "hedge: threads= is at least 1");
    if (s->hedge.queue < 1) return fail_at(c, at, "hedge: queue= is at least 1");
    return 0;
}

#define STAGE(n, o, pos, k, list, b, a, e) {n, o, pos, k, list, b, a, e}
static const stage_def stages[] = {
    STAGE("rate", 0, "a rate", rate_keys, "burst, per, buckets, keys", rate_begin, rate_arg, rate_end),
    STAGE("bulkhead", 1, "a count", bulkhead_keys, "wait", bulkhead_begin, bulkhead_arg, bulkhead_end),
    STAGE("limit", 2, "aimd or gradient", limit_keys,
          "initial, min, max, priority, slow, backoff, smoothing, queue, tolerance, probe", limit_begin, limit_arg,
          no_end),
    STAGE("timeout", 3, "a duration or percentile", timeout_keys, "fixed, min, max", timeout_begin, timeout_arg,
          timeout_end),
    STAGE("retry", 4, "a count", retry_keys,
          "base, cap, mult, jitter, budget, budget_window, budget_min, attempt_timeout, growth, classify, seed",
          retry_begin, retry_arg, no_end),
    STAGE("breaker", 5, NULL, breaker_keys,
          "count, time, consecutive, min_calls, failure, slow, open, probes, half_open_max", breaker_begin,
          breaker_arg, breaker_end),
    STAGE("hedge", 6, "a count", hedge_keys, "delay, min_delay, threads, queue", hedge_begin, hedge_arg, hedge_end),
};
#define STAGE_NAMES "rate, bulkhead, limit, timeout, retry, breaker, hedge"

/* ---- the generic loop ---- */

static int find_word(const char *const *words, const char *w)
{
    for (int i = 0; words[i]; i++)
        if (strcmp(words[i], w) == 0) return i;
    return -1;
}

static void set_label(cursor *c, char *buf, size_t cap, const char *stage, const char *key)
{
    snprintf(buf, cap, "%s%s%s", stage, key ? ": " : "", key ? key : "");
    c->label = buf;
}

/* One argument of stage d; *seen collects which (bit 31: the unkeyed first value). */
static int parse_arg(cursor *c, pipeline_spec *s, const stage_def *d, bool first, uint32_t *seen)
{
    size_t at = c->pos;
    char key[WORD_MAX + 1], label[64];
    size_t n = word(c, key);
    skip_ws(c);
    if (n > 0 && peek(c) == '=') {
        int k = find_word(d->keys, key);
        if (k < 0) return fail_at(c, at, "%s: unknown key '%s' (expected %s)", d->name, key, d->key_list);
        if (*seen & SEEN(k)) return fail_at(c, at, "%s: a second '%s'", d->name, key);
        *seen |= SEEN(k);
        c->pos++;
        skip_ws(c);
        set_label(c, label, sizeof label, d->name, key);
        int rc = d->arg(c, s, k);
        c->label = NULL;
        return rc;
    }
    c->pos = at;
    set_label(c, label, sizeof label, d->name, NULL);
    int rc = first && d->positional ? 0 : expected(c, "key=value");
    if (rc == 0) {
        *seen |= POSITIONAL;
        rc = d->arg(c, s, -1);
    }
    c->label = NULL;
    return rc;
}

static int parse_args(cursor *c, pipeline_spec *s, const stage_def *d, uint32_t *seen)
{
    char label[64];
    skip_ws(c);
    if (peek(c) == ')') {
        c->pos++;
        return 0;
    }
    for (int n = 1;; n++) {
        if (n > ARGS_MAX) return fail_at(c, c->pos, "%s: more than %d arguments", d->name, ARGS_MAX);
        int rc = parse_arg(c, s, d, n == 1, seen);
        if (rc) return rc;
        skip_ws(c);
        if (peek(c) == ')') {
            c->pos++;
            return 0;
        }
        set_label(c, label, sizeof label, d->name, NULL);
        rc = expect_char(c, ',', "',' or ')'");
        c->label = NULL;
        if (rc) return rc;
        skip_ws(c);
    }
}

static int parse_stage(cursor *c, pipeline_spec *s, const stage_def **last)
{
    size_t at = c->pos;
    char name[WORD_MAX + 1];
    if (word(c, name) == 0) return expected(c, "a stage (" STAGE_NAMES ")");
    const stage_def *d = NULL;
    for (size_t i = 0; i < SL_ARRAY_LEN(stages) && !d; i++)
        if (strcmp(stages[i].name, name) == 0) d = &stages[i];
    if (!d) return fail_at(c, at, "unknown stage '%s' (expected one of " STAGE_NAMES ")", name);
    if (*last && d->order < (*last)->order)
        return fail_at(c, at, "'%s' after '%s': stages are written in the order they run (" STAGE_NAMES ")", d->name,
                       (*last)->name);
    if (*last && d->order == (*last)->order && d->order != 0) return fail_at(c, at, "a second '%s' stage", d->name);
    *last = d;
    skip_ws(c);
    int rc = expect_char(c, '(', "'(' after the stage's name");
    if (rc) return rc;
    d->begin(s, at);
    uint32_t seen = 0;
    rc = parse_args(c, s, d, &seen);
    return rc ? rc : d->end(c, s, at, seen);
}

static int parse_spec(cursor *c, pipeline_spec *s)
{
    memset(s, 0, sizeof *s);
    if (c->len > DESC_MAX) return fail_at(c, DESC_MAX, "the description is longer than %d bytes", DESC_MAX);
    const stage_def *last = NULL;
    skip_ws(c);
    for (int n = 1;; n++) {
        if (n > STAGES_MAX) return fail_at(c, c->pos, "more than %d stages", STAGES_MAX);
        int rc = parse_stage(c, s, &last);
        if (rc) return rc;
        skip_ws(c);
        if (c->pos == c->len) return 0;
        rc = expect_char(c, '|', "'|' between stages, or the end");
        if (rc) return rc;
        skip_ws(c);
    }
}

/* ---- building the policies ---- */

static void parsed_free(void *owned)
{
    parsed *o = owned;
    if (o->hedge) sl_hedge_free(o->hedge);
    if (o->pool) sl_pool_free(o->pool);
    if (o->breaker) sl_cb_free(o->breaker);
    if (o->retry) sl_retry_free(o->retry);
    if (o->limit) sl_limit_free(o->limit);
    if (o->bulkhead) sl_bulkhead_free(o->bulkhead);
    if (o->bucket) sl_token_bucket_free(o->bucket);
    if (o->keyed) sl_sliding_window_free(o->keyed);
    if (o->latency) sl_latency_free(o->latency);
    sl_free(o);
}

typedef struct builder {
    parsed *o;
    sl_pipeline *p;
    const sl_res_clock *clock; /* for the policies that sleep (bulkhead, hedge); NULL: the system's */
    sl_res_clock cfg_clock;    /* the same for config structs: zeroed for the system's */
    sl_res_clock stage;        /* for the others: sl_pipeline_stage_clock */
    char why[192];             /* a policy's own error */
} builder;

static int stage_error(builder *b, size_t at, const char *stage, int rc, char *err, size_t err_len)
{
    if (err && err_len) snprintf(err, err_len, "at byte %zu: %s: %s", at, stage, b->why);
    return rc;
}

static int build_admission(builder *b, char *err, size_t err_len)
{
    const pipeline_spec *s = &b->o->spec;
    int rc;
    if (s->keyed.on) {
        sl_sliding_window_config cfg;
        sl_sliding_window_config_default(&cfg);
        cfg.limit = (int32_t)s->keyed.rate.count;
        cfg.window_ns = s->keyed.rate.period_ns;
        cfg.buckets = s->keyed.buckets;
        cfg.max_keys = s->keyed.keys;
        cfg.clock = b->stage;
        if ((rc = sl_sliding_window_new(&cfg, &b->o->keyed, b->why, sizeof b->why)))
            return stage_error(b, s->keyed.at, "rate", rc, err, err_len);
        sl_pipeline_rate_per_key(b->p, b->o->keyed);
    }
    if (s->rate.on) {
        double per_s = s->rate.rate.count * (double)SECOND / (double)s->rate.rate.period_ns;
        if ((rc = sl_token_bucket_new(per_s, s->rate.burst, &b->stage, &b->o->bucket, b->why, sizeof b->why)))
            return stage_error(b, s->rate.at, "rate", rc, err, err_len);
        sl_pipeline_rate(b->p, b->o->bucket);
    }
    if (s->bulkhead.on) {
        if ((rc = sl_bulkhead_new(s->bulkhead.max, b->clock, &b->o->bulkhead, b->why, sizeof b->why)))
            return stage_error(b, s->bulkhead.at, "bulkhead", rc, err, err_len);
        sl_pipeline_bulkhead(b->p, b->o->bulkhead, s->bulkhead.wait_ns);
    }
    if (s->limit.on) {
        sl_limit_config cfg = s->limit.cfg;
        cfg.clock = b->stage;
        if ((rc = sl_limit_new(&cfg, &b->o->limit, b->why, sizeof b->why)))
            return stage_error(b, s->limit.at, "limit", rc, err, err_len);
        sl_pipeline_limit(b->p, b->o->limit, s->limit.priority);
    }
    return 0;
}

static void build_timeout(builder *b)
{
    const timeout_spec *t = &b->o->spec.timeout;
    sl_timeout_config cfg;
    sl_timeout_config_default(&cfg);
    cfg.fixed_ns = t->fixed_ns;
    if (t->fixed_ns == 0) {
        cfg.latency = b->o->latency;
        cfg.percentile = t->percentile;
        cfg.k = t->k;
        cfg.min_ns = t->min_ns;
        cfg.max_ns = t->max_ns;
    }
    sl_pipeline_timeout(b->p, &cfg);
}

static int build_hedge(builder *b, char *err, size_t err_len)
{
    const hedge_spec *h = &b->o->spec.hedge;
    sl_hedge_config cfg;
    sl_hedge_config_default(&cfg);
    cfg.max_hedges = h->hedges;
    cfg.delay_ns = h->delay_ns;
    cfg.latency = h->delay_ns == 0 ? b->o->latency : NULL;
    cfg.percentile = h->percentile;
    cfg.min_delay_ns = h->min_delay_ns;
    cfg.clock = b->cfg_clock;
    int rc = sl_hedge_new(&cfg, &b->o->hedge, b->why, sizeof b->why);
    if (rc) return stage_error(b, h->at, "hedge", rc, err, err_len);
    sl_pool_config pc;
    sl_pool_config_default(&pc);
    pc.core_threads = pc.max_threads = h->threads;
    pc.queue_capacity = h->queue;
    if ((rc = sl_pool_new(&pc, &b->o->pool, b->why, sizeof b->why))) return stage_error(b, h->at, "hedge", rc, err, err_len);
    sl_pipeline_hedge(b->p, b->o->hedge, b->o->pool);
    return 0;
}

static int build_calls(builder *b, char *err, size_t err_len)
{
    const pipeline_spec *s = &b->o->spec;
    int rc;
    if (s->timeout.on) build_timeout(b);
    if (s->retry.on) {
        sl_retry_config cfg = s->retry.cfg;
        cfg.classify = s->retry.http ? sl_retry_classify_http : NULL;
        cfg.clock = b->stage;
        if ((rc = sl_retry_new(&cfg, &b->o->retry, b->why, sizeof b->why)))
            return stage_error(b, s->retry.at, "retry", rc, err, err_len);
        sl_pipeline_retry(b->p, b->o->retry);
    }
    if (s->breaker.on) {
        sl_cb_config cfg = s->breaker.cfg;
        cfg.clock = b->stage;
        if ((rc = sl_cb_new(&cfg, &b->o->breaker, b->why, sizeof b->why)))
            return stage_error(b, s->breaker.at, "breaker", rc, err, err_len);
        sl_pipeline_breaker(b->p, b->o->breaker);
    }
    return s->hedge.on ? build_hedge(b, err, err_len) : 0;
}

static int build(builder *b, char *err, size_t err_len)
{
    const pipeline_spec *s = &b->o->spec;
    if ((s->timeout.on && s->timeout.fixed_ns == 0) || (s->hedge.on && s->hedge.delay_ns == 0)) {
        sl_latency_config cfg;
        sl_latency_config_default(&cfg);
        cfg.clock = b->stage;
        int rc = sl_latency_new(&cfg, &b->o->latency, b->why, sizeof b->why);
        if (rc) return stage_error(b, s->timeout.on ? s->timeout.at : s->hedge.at, "latency", rc, err, err_len);
        sl_pipeline_latency(b->p, b->o->latency);
    }
    int rc = build_admission(b, err, err_len);
    return rc ? rc : build_calls(b, err, err_len);
}

int sl_pipeline_parse(const char *desc, const sl_res_clock *clock, sl_pipeline **out, char *err, size_t err_len)
{
    *out = NULL;
    if (err && err_len) err[0] = '\0';
    cursor c = {.s = desc, .len = strnlen(desc, DESC_MAX + 1), .err = err, .err_len = err_len};
    parsed *o = SL_NEW(parsed);
    int rc = parse_spec(&c, &o->spec);
    if (rc) {
        sl_free(o);
        return rc;
    }
    sl_pipeline *p;
    sl_pipeline_new(&p);
    sl__pipeline_own(p, o, parsed_free);
    if (clock) sl_pipeline_clock(p, clock);
    builder b = {.o = o, .p = p, .clock = clock, .cfg_clock = clock ? *clock : (sl_res_clock){0}};
    sl_pipeline_stage_clock(p, &b.stage);
    rc = build(&b, err, err_len);
    if (rc) {
        sl_pipeline_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* ---- describing a parsed pipeline ---- */

typedef struct out {
    char *buf;
    size_t cap, len;
} out;

static void put(out *o, const char *fmt, ...) SL_PRINTF(2, 3);
static void put(out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool room = o->len < o->cap;
    int n = vsnprintf(room ? o->buf + o->len : NULL, room ? o->cap - o->len : 0, fmt, ap);
    va_end(ap);
    SL_ASSERT(n >= 0);
    o->len += (size_t)n;
}

/* In the largest unit that divides it: 1500ms, 2s, 1min. */
static void put_duration(out *o, int64_t ns)
{
    for (int i = (int)SL_ARRAY_LEN(units) - 1; i >= 0; i--)
        if (ns % units[i].ns == 0 && (ns != 0 || i == 0)) {
            put(o, "%lld%s", (long long)(ns / units[i].ns), units[i].name);
            return;
        }
}

static void put_rate(out *o, const rate_spec *r)
{
    put(o, "%.15g/", r->count);
    for (size_t i = 0; i < SL_ARRAY_LEN(units); i++)
        if (r->period_ns == units[i].ns) {
            put(o, "%s", units[i].name);
            return;
        }
    put_duration(o, r->period_ns);
}

static void describe_admission(out *o, const pipeline_spec *s)
{
    if (s->keyed.on) {
        put(o, "rate(");
        put_rate(o, &s->keyed.rate);
        put(o, ", per=key, buckets=%d, keys=%d) | ", s->keyed.buckets, s->keyed.keys);
    }
    if (s->rate.on) {
        put(o, "rate(");
        put_rate(o, &s->rate.rate);
        put(o, ", burst=%d) | ", s->rate.burst);
    }
    if (s->bulkhead.on) {
        put(o, "bulkhead(%d, wait=", s->bulkhead.max);
        put_duration(o, s->bulkhead.wait_ns);
        put(o, ") | ");
    }
    if (s->limit.on) {
        const sl_limit_config *l = &s->limit.cfg;
        put(o, "limit(%s, initial=%d, min=%d, max=%d, priority=%d, slow=", l->algo == SL_LIMIT_AIMD ? "aimd" : "gradient",
            l->initial, l->min_limit, l->max_limit, s->limit.priority);
        put_duration(o, l->aimd_slow_ns);
        put(o, ", backoff=%.15g, smoothing=%.15g, queue=%d, tolerance=%.15g, probe=", l->aimd_backoff,
            l->gradient_smoothing, l->gradient_queue, l->gradient_tolerance);
        put_duration(o, l->gradient_probe_ns);
        put(o, ") | ");
    }
}

static void describe_timeout(out *o, const timeout_spec *t)
{
    if (t->fixed_ns > 0) {
        put(o, "timeout(fixed=");
        put_duration(o, t->fixed_ns);
    } else {
        put(o, "timeout(p%.15g x %.15g, min=", t->percentile, t->k);
        put_duration(o, t->min_ns);
        put(o, ", max=");
        put_duration(o, t->max_ns);
    }
    put(o, ") | ");
}

static void describe_retry(out *o, const retry_spec *r)
{
    const sl_retry_config *cfg = &r->cfg;
    put(o, "retry(%d, base=", cfg->max_attempts);
    put_duration(o, cfg->base_ns);
    put(o, ", cap=");
    put_duration(o, cfg->max_backoff_ns);
    put(o, ", mult=%.15g, jitter=%s, budget=", cfg->multiplier, cfg->full_jitter ? "full" : "none");
    if (cfg->budget_ratio > 0) {
        put(o, "%.15g%%, budget_window=", cfg->budget_ratio * 100);
        put_duration(o, cfg->budget_window_ns);
        put(o, ", budget_min=%d/s", cfg->budget_min_per_s);
    } else {
        put(o, "none");
    }
    if (cfg->attempt_timeout_ns > 0) {
        put(o, ", attempt_timeout=");
        put_duration(o, cfg->attempt_timeout_ns);
        put(o, ", growth=%.15g", cfg->attempt_timeout_growth);
    }
    put(o, ", classify=%s", r->http ? "http" : "all");
    if (cfg->seed) put(o, ", seed=%llu", (unsigned long long)cfg->seed);
    put(o, ") | ");
}

static void describe_breaker(out *o, const sl_cb_config *cfg)
{
    if (cfg->mode == SL_CB_CONSECUTIVE) {
        put(o, "breaker(consecutive=%d", cfg->consecutive_failures);
    } else if (cfg->mode == SL_CB_TIME_WINDOW) {
        put(o, "breaker(time=");
        put_duration(o, (int64_t)cfg->window * SECOND);
    } else {
        put(o, "breaker(count=%d", cfg->window);
    }
    put(o, ", min_calls=%d, failure=%.15g%%, slow=%.15g%%@", cfg->min_calls, cfg->failure_rate, cfg->slow_rate);
    put_duration(o, cfg->slow_ns);
    put(o, ", open=");
    put_duration(o, cfg->open_ns);
    put(o, ", probes=%d", cfg->half_open_calls);
    if (cfg->half_open_max_ns > 0) {
        put(o, ", half_open_max=");
        put_duration(o, cfg->half_open_max_ns);
    }
    put(o, ") | ");
}

static void describe_hedge(out *o, const hedge_spec *h)
{
    put(o, "hedge(%d, delay=", h->hedges);
    if (h->delay_ns > 0)
        put_duration(o, h->delay_ns);
    else
        put(o, "p%.15g", h->percentile);
    put(o, ", min_delay=");
    put_duration(o, h->min_delay_ns);
    put(o, ", threads=%d, queue=%d) | ", h->threads, h->queue);
}

size_t sl_pipeline_describe(const sl_pipeline *p, char *buf, size_t cap)
{
    out o = {buf, cap, 0};
    if (cap) buf[0] = '\0';
    const parsed *parsed_p = sl__pipeline_owned(p);
    if (!parsed_p) return 0;
    const pipeline_spec *s = &parsed_p->spec;
    describe_admission(&o, s);
    if (s->timeout.on) describe_timeout(&o, &s->timeout);
    if (s->retry.on) describe_retry(&o, &s->retry);
    if (s->breaker.on) describe_breaker(&o, &s->breaker.cfg);
    if (s->hedge.on) describe_hedge(&o, &s->hedge);
    SL_ASSERT(o.len >= 3); /* every stage ends with " | ": drop the last one */
    o.len -= 3;
    if (o.len < cap) buf[o.len] = '\0';
    return o.len;
}
