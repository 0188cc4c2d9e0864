#!/usr/bin/env bash
# `make bench` end to end in its quick mode, without the peers (they are not
# test dependencies): sl_limits, the librdkafka mock ceiling, the broker in
# both flush modes (produce, consume, latency, start-up, recovery scan) and the
# report. Figures are not judged here (speed goals live in benchmarks, not
# tests); what is checked is that every run happened, lost nothing and that
# the report has every section.
set -euo pipefail
out=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-test.XXXXXX")
trap 'rm -rf "$out"' EXIT
/usr/bin/python3 "$SLUICE_SRC/bench/run.py" --quick --only limits,mock,sluice,resilience \
  --build "$(dirname "$SLUICE_BIN")" --out "$out"
/usr/bin/python3 - "$out/latest.json" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))
rows = res["rows"]
def need(**kw):
    hit = [r for r in rows if all(r.get(k) == v for k, v in kw.items())]
    assert hit, "no result for %s" % kw
    for r in hit:
        assert r.get("failed", 0) == 0, "failed messages in %s" % r
        assert r["msgs"] > 0 and r["msgs_per_s"] > 0, "empty run %s" % r
for mode in ("always", "os"):
    for size in (100, 1024):
        for parts in (1, 16):
            need(system="sluice", mode=mode, op="produce", size=size, partitions=parts)
            need(system="sluice", mode=mode, op="consume", size=size, partitions=parts)
    need(system="sluice", mode=mode, op="latency@10k")
for parts in (1, 16):
    need(system="sluice", mode="always", op="produce-plain", size=100, partitions=parts)
    need(system="sluice", mode="always", op="produce-idempotent", size=100, partitions=parts)
    need(system="sluice", mode="always", op="produce-transactional", size=100, partitions=parts)
need(system="mock", op="produce", size=100)
meta, lim = res["meta"], res["limits"]
assert meta["startup_median_ms"] > 0 and meta["sluice_idle_rss_kib"] > 0
assert meta["recovery"]["warm"]["bytes"] > 0 and meta["recovery"]["cold"]["bytes"] > 0
assert lim["disk"]["fsync4k"]["p50_us"] > 0 and lim["net"]["tcp_bw"]["mb_per_s"] > 0
if "resilience" in res:  # absent only where sl_res_bench is not built (sanitizer builds)
    r = res["resilience"]
    assert r["one_thread_ns"] > 0 and r["two_threads_ns"] > 0 and r["clock_ns"] > 0 and r["handoff_ns"] > 0, r
    assert r["refused"] <= r["calls"] // 1000, "the pipeline refused or failed calls: %s" % r
print("bench quick run: %d results, all complete" % len(rows))
PY
for section in "## Produce" "## Consume" "## Latency" "## Cost of exactly-once" "## This machine's limits" \
  "## Goals of issue 3"; do
  grep -q "^$section" "$out/latest.md" || { echo "FAIL: latest.md lacks '$section'" >&2; exit 1; }
done
if [ -x "$(dirname "$SLUICE_BIN")/bench/sl_res_bench" ]; then
  grep -q "^## Resilience pipeline" "$out/latest.md" || { echo "FAIL: latest.md lacks the resilience section" >&2; exit 1; }
fi
