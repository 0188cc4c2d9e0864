#!/usr/bin/python3
"""Write the seed corpus of fuzz/fuzz_pipeline_parse.c to fuzz/corpus/pipeline_parse/.

Usage: fuzz/make_corpus_pipeline_parse.py

One description per file: the header's example, every stage with every key,
canonical forms, and a set of broken ones (each kind of error the parser
reports: cut short, bad units, out-of-order and repeated stages, unknown keys,
values out of range, stray bytes). Output is deterministic.
"""

import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus", "pipeline_parse")

VALID = {
    "header_example": "rate(1000/s, burst=100) | bulkhead(16, wait=10ms) | timeout(p99 x 2, min=100ms, max=10s)\n"
                      "    | retry(3, base=50ms, cap=2s, budget=10%) | breaker(count=100, failure=50%, slow=80%@1s, "
                      "open=30s,\n    probes=5)",
    "every_stage": "rate(10/s, per=key, buckets=5, keys=64) | rate(1000/s, burst=100) | bulkhead(16, wait=10ms) | "
                   "limit(aimd, initial=10, min=2, max=50, priority=1, slow=500ms, backoff=0.8, smoothing=0.3, "
                   "queue=6, tolerance=0.2, probe=10s) | timeout(p99.5 x 1.5, min=100ms, max=10s) | retry(5, base=10ms, cap=1s, mult=1.5, "
                   "jitter=none, budget=12.5%, budget_window=30s, budget_min=3/s, attempt_timeout=200ms, growth=2, "
                   "classify=http, seed=42) | breaker(time=60s, min_calls=20, failure=25%, slow=90%@2s, open=5s, "
                   "probes=3, half_open_max=1min) | hedge(2, delay=p95, min_delay=1ms, threads=2, queue=8)",
    "timeout_fixed": "timeout(fixed=2s)",
    "timeout_short": "timeout(1.5s)",
    "rate_per_key": "rate(50/100ms, per=key)",
    "rate_per_min": "rate(60/min)",
    "breaker_consecutive": "breaker(consecutive=5, open=30s)",
    "breaker_count": "breaker(count=10, failure=50%)",
    "hedge_fixed": "retry(3, budget=none) | hedge(1, delay=10ms, threads=2)",
    "limit_gradient": "limit(gradient, max=100)",
    "whitespace": "  retry(3)\t|\n\rbreaker(consecutive=2)  ",
    "dense": "bulkhead(4,wait=1us)|timeout(p50x3,min=1ms,max=1s)|retry(2,budget=none)",
}

BROKEN = {
    "empty": "",
    "cut_in_value": "retry(3, base=50",
    "cut_in_key": "retry(3, bas",
    "no_unit": "retry(3, base=50)",
    "space_before_unit": "retry(3, base=50 ms)",
    "bad_unit": "retry(3, base=50sec)",
    "unknown_key": "retry(3, bas=50ms)",
    "unknown_stage": "foo(1)",
    "out_of_order": "bulkhead(16) | retry(3) | timeout(2s)",
    "repeated": "retry(3) | retry(4)",
    "rate_no_period": "rate(100)",
    "rate_zero_period": "rate(100/0s)",
    "two_modes": "breaker(count=10, time=60s)",
    "slow_no_at": "breaker(slow=80%1s)",
    "min_over_max": "timeout(p99 x 2, min=1s, max=100ms)",
    "no_pipe": "bulkhead(16) retry(3)",
    "trailing_pipe": "bulkhead(16) |",
    "too_many_digits": "retry(1234567890123456789)",
    "huge_duration": "retry(3, base=9999999999h)",
    "non_ascii": "bulkhead(\xff)",
    "nul_inside": "retry(3)\x00| breaker(count=5)",
    "policy_refuses": "bulkhead(0)",
    "hedge_too_many": "hedge(9, delay=1ms)",
    "percentile_no_number": "hedge(1, delay=p)",
    "comma_then_close": "retry(3,)",
    "long": "retry(3" + ", seed=1" * 700 + ")",
}


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    for name, text in list(VALID.items()) + list(BROKEN.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(text.encode("latin-1"))


if __name__ == "__main__":
    main()
