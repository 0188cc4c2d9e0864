"""bench/report.py - turns bench/run.py's results into latest.md, latest.json and two charts.

    /usr/bin/python3 bench/report.py RESULTS.json OUTDIR   (re-renders a saved run)

The Markdown puts each Sluice figure next to what it is compared with, as a
ratio: the peers measured in the same run, librdkafka's mock broker (the
client's ceiling) and the machine's own limits (sl_limits). The goals of
issue 3 are checked at the end, met or not.
"""
import json
import os
import shutil
import subprocess
import sys


def find(rows, **kw):
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def fmt_n(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return "%.2fM" % (v / 1e6)
    if v >= 1e3:
        return "%.0fk" % (v / 1e3)
    return "%.0f" % v


def ratio(a, b):
    if not a or not b:
        return "-"
    return "%.2fx" % (a / b)


def cell(r):
    """msgs/s (MB/s), with the spread of the runs when there were several."""
    if not r:
        return "-"
    text = "%s (%.0f" % (fmt_n(r["msgs_per_s"]), r["mb_per_s"])
    runs = r.get("all_msgs_per_s") or []
    if len(runs) > 1:
        text += "; %s–%s" % (fmt_n(min(runs)), fmt_n(max(runs)))
    return text + ")"


def steal_note(rows):
    noisy = [r for r in rows if (r.get("steal_s") or 0) >= 0.2]
    if not noisy:
        return "Hypervisor steal time stayed under 0.2 s in every run."
    return "Runs with ≥ 0.2 s of hypervisor steal (another VM took the CPU; treat as noisy): " + ", ".join(
        "%s %s %s %d B %dp (%.1f s)" % (r["system"], r["mode"], r["op"], r["size"], r["partitions"], r["steal_s"])
        for r in noisy) + "."


def produce_table(rows):
    out = ["## Produce, acks=all (msgs/s; MB/s and, for Sluice, the range of its 3 runs in brackets)", "",
           "| size | partitions | Sluice durable | Sluice `--flush os` | client ceiling (mock, same partitions) | Redis `always` "
           "| Redis `no` | NATS JetStream | durable / Redis always | durable / NATS | durable / ceiling "
           "| broker CPU ms per MB (durable / os) | Redis CPU ms/MB (always) | NATS CPU ms/MB |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for size in (100, 1024):
        for parts in (1, 16):
            d = find(rows, system="sluice", mode="always", op="produce", size=size, partitions=parts)
            o = find(rows, system="sluice", mode="os", op="produce", size=size, partitions=parts)
            m = find(rows, system="mock", op="produce", size=size, partitions=parts) or \
                find(rows, system="mock", op="produce", size=size)
            ra = find(rows, system="redis", mode="aof-always", op="produce", size=size)
            rn = find(rows, system="redis", mode="aof-no", op="produce", size=size)
            na = find(rows, system="nats", op="produce", size=size)
            g = lambda r: r["msgs_per_s"] if r else None
            cpu = lambda r: ("%.2f" % r["server_cpu_ms_per_mb"]) if r and r.get("server_cpu_ms_per_mb") else "-"
            out.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |" % (
                "100 B" if size == 100 else "1 KiB", parts, cell(d), cell(o), cell(m), cell(ra), cell(rn), cell(na),
                ratio(g(d), g(ra)), ratio(g(d), g(na)), ratio(g(d), g(m)), cpu(d), cpu(o), cpu(ra), cpu(na)))
    out.append("")
    out.append("Sluice: the median of its runs. Peers: the best of four runs (1 or 2 connections, a window of 256 "
               "or 1024 messages in flight). Peers have one stream each (no partitions): their figures repeat on "
               "both rows. Ratios above 1 mean Sluice is faster. Server CPU is the server process's user + system "
               "time over the run, per MB produced.")
    out.append("")
    out.append(steal_note(rows))
    return out


def consume_table(rows, limits):
    net = (limits.get("net") or {}).get("tcp_bw", {}).get("mb_per_s")
    out = ["## Consume from a warm log (msgs/s; MB/s and the range of 3 runs in brackets)", "",
           "| size | partitions | log written `--flush always` | log written `--flush os` | MB/s / loopback TCP |",
           "|---|---|---|---|---|"]
    for size in (100, 1024):
        for parts in (1, 16):
            d = find(rows, system="sluice", mode="always", op="consume", size=size, partitions=parts)
            o = find(rows, system="sluice", mode="os", op="consume", size=size, partitions=parts)
            out.append("| %s | %d | %s | %s | %s |" % ("100 B" if size == 100 else "1 KiB", parts, cell(d), cell(o),
                                                    ratio(d["mb_per_s"] if d else None, net)))
    out.append("")
    if net:
        out.append("Loopback TCP limit of this machine (one stream, 1 MiB writes): %.0f MB/s." % net)
    return out


def latency_table(rows, limits):
    disk = limits.get("disk") or {}
    f100 = (disk.get("fsync100") or {}).get("p50_us")
    rtt = ((limits.get("net") or {}).get("tcp_rtt") or {}).get("p50_us")
    out = ["## Latency at a fixed 10k msgs/s, 100 B, send to acknowledgement (µs)", "",
           "| system | mode | p50 | p99 | p99.9 | max | p50 / fdatasync p50 |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["op"] != "latency@10k":
            continue
        durable = r["mode"] in ("always", "aof-always")
        out.append("| %s | %s | %d | %d | %d | %d | %s |" % (r["system"], r["mode"], r["p50_us"], r["p99_us"],
                                                           r["p999_us"], r["max_us"],
                                                           ratio(r["p50_us"], f100) if durable else "-"))
    out.append("")
    if f100:
        out.append("Limits: fdatasync of a 100 B append p50 %d µs, p99 %d µs; loopback round trip p50 %s µs. A "
                   "durable acknowledgement needs at least one fdatasync and one round trip; with group commit a "
                   "message that arrives during a sync waits for it and then for its own." %
                   (f100, disk["fsync100"]["p99_us"], rtt if rtt is not None else "-"))
    out.append("NATS JetStream does not fsync each message (it syncs every 2 min by default), so its latency "
               "compares with Sluice's `os` mode, not the durable one.")
    return out


def limits_section(limits):
    disk, net = limits.get("disk") or {}, limits.get("net") or {}
    out = ["## This machine's limits (sl_limits)", ""]
    if disk:
        out.append("Data directory file system: %s." % disk.get("fs", "?"))
        for k, what in (("fsync4k", "4 KiB append + fdatasync"), ("fsync100", "100 B append + fdatasync")):
            v = disk.get(k)
            if v:
                out.append("- %s: p50 %d µs, p99 %d µs, p99.9 %d µs, max %d µs (%.0f ops/s)" % (
                    what, v["p50_us"], v["p99_us"], v["p999_us"], v["max_us"], v["ops_per_s"]))
        out += ["", "| group size | synced MB/s appending | over pre-written blocks | over fallocate'd space |",
                "|---|---|---|---|"]
        app = {r["group_bytes"]: r for r in disk.get("append_bw", [])}
        ovw = {r["group_bytes"]: r for r in disk.get("overwrite_bw", [])}
        pre = {r["group_bytes"]: r for r in disk.get("prealloc_bw", [])}
        for g in sorted(app):
            c = lambda t: "%.0f" % t[g]["mb_per_s"] if g in t else "-"
            out.append("| %d KiB | %s | %s | %s |" % (g // 1024, c(app), c(ovw), c(pre)))
        out.append("")
    if net:
        out.append("- loopback TCP: %.0f MB/s one stream; round trip p50 %d µs, p99 %d µs; %.0f 100-byte writes/s" % (
            net["tcp_bw"]["mb_per_s"], net["tcp_rtt"]["p50_us"], net["tcp_rtt"]["p99_us"],
            net.get("tcp_small", {}).get("msgs_per_s", 0)))
    return out


def goals_section(res):
    rows, meta = res["rows"], res["meta"]
    g = []

    def check(what, value, goal, ok, unit="", ctx=""):
        g.append("| %s | %s%s | %s | %s | %s |" % (what, value, unit, goal, "met" if ok else "**not met**", ctx))

    disk = res["limits"].get("disk") or {}
    app_best = max((r["mb_per_s"] for r in disk.get("append_bw", [])), default=0)

    def ceiling(size, parts, r):
        m = find(rows, system="mock", op="produce", size=size, partitions=parts)
        return "%.0f%% of the client's ceiling (%s)" % (100 * r["msgs_per_s"] / m["msgs_per_s"], fmt_n(
            m["msgs_per_s"])) if m and r else ""

    def prod(mode, size, parts):
        return find(rows, system="sluice", mode=mode, op="produce", size=size, partitions=parts)

    ra = find(rows, system="redis", mode="aof-always", op="produce", size=100)
    for parts in (1, 16):
        mock = find(rows, system="mock", op="produce", size=100, partitions=parts)
        r = prod("always", 100, parts)
        if r:
            ok = r["msgs_per_s"] >= 1.5e6 and (not ra or r["msgs_per_s"] >= 4 * ra["msgs_per_s"]) and \
                (not mock or r["msgs_per_s"] >= 0.5 * mock["msgs_per_s"])
            check("produce 100 B durable, %dp" % parts, fmt_n(r["msgs_per_s"]), ">= 1.5M, >= 4x Redis always, "
                  ">= 50% of ceiling", ok, ctx=ceiling(100, parts, r))
        r = prod("always", 1024, parts)
        if r:
            check("produce 1 KiB durable, %dp" % parts, "%.0f" % r["mb_per_s"], ">= 500 MB/s",
                  r["mb_per_s"] >= 500, " MB/s", "%.0f%% of the disk's best synced append rate (%.0f MB/s)" % (
                      100 * r["mb_per_s"] / app_best, app_best) if app_best else "")
        r = prod("os", 100, parts)
        if r:
            check("produce 100 B os, %dp" % parts, fmt_n(r["msgs_per_s"]), ">= 2.2M", r["msgs_per_s"] >= 2.2e6,
                  ctx=ceiling(100, parts, r))
        r = prod("os", 1024, parts)
        if r:
            check("produce 1 KiB os, %dp" % parts, "%.0f" % r["mb_per_s"], ">= 1000 MB/s", r["mb_per_s"] >= 1000,
                  " MB/s", ceiling(1024, parts, r))
        for mode in ("always", "os"):
            r = find(rows, system="sluice", mode=mode, op="consume", size=100, partitions=parts)
            if r:
                check("consume 100 B, %dp (log of %s)" % (parts, mode), fmt_n(r["msgs_per_s"]), ">= 3M",
                      r["msgs_per_s"] >= 3e6)
            r = find(rows, system="sluice", mode=mode, op="consume", size=1024, partitions=parts)
            if r:
                check("consume 1 KiB, %dp (log of %s)" % (parts, mode), "%.0f" % r["mb_per_s"], ">= 1500 MB/s",
                      r["mb_per_s"] >= 1500, " MB/s")
    f100 = (disk.get("fsync100") or {}).get("p50_us")
    for mode, p50, p99 in (("os", 60, 150), ("always", 250, 2000)):
        r = find(rows, system="sluice", mode=mode, op="latency@10k")
        if r:
            check("latency 10k/s %s" % mode, "p50 %d, p99 %d" % (r["p50_us"], r["p99_us"]),
                  "p50 <= %d, p99 <= %d µs" % (p50, p99), r["p50_us"] <= p50 and r["p99_us"] <= p99, " µs",
                  "p50 = %.1fx the fdatasync p50 (%d µs)" % (r["p50_us"] / f100, f100) if mode == "always" and f100
                  else "")
    if "sluice_idle_rss_kib" in meta:
        check("idle RSS", "%.1f" % (meta["sluice_idle_rss_kib"] / 1024), "<= 30 MB",
              meta["sluice_idle_rss_kib"] <= 30 * 1024, " MB")
    if "startup_median_ms" in meta:
        check("start-up, empty data dir (median)", "%.1f" % meta["startup_median_ms"], "<= 20 ms",
              meta["startup_median_ms"] <= 20, " ms")
    rec = meta.get("recovery") or {}
    for temp in ("warm", "cold"):
        if temp in rec:
            check("recovery scan, %s page cache" % temp, "%.2f" % rec[temp]["gb_per_s"], ">= 1 GB/s",
                  rec[temp]["gb_per_s"] >= 1, " GB/s")
    if not g:
        return []
    return ["## Goals of issue 3", "", "| goal | measured | target | | against |", "|---|---|---|---|---|"] + g


def idempotence_table(rows):
    out = ["## Cost of exactly-once (acks=all, 100 B, `--flush always`)", "",
           "| partitions | plain msgs/s | idempotent msgs/s | idempotent / plain | transactional msgs/s "
           "| transactional / plain |", "|---|---|---|---|---|---|"]
    found = False
    for parts in (1, 16):
        p = find(rows, system="sluice", mode="always", op="produce-plain", size=100, partitions=parts)
        i = find(rows, system="sluice", mode="always", op="produce-idempotent", size=100, partitions=parts)
        t = find(rows, system="sluice", mode="always", op="produce-transactional", size=100, partitions=parts)
        if p and i:
            found = True
            out.append("| %d | %s | %s | %s | %s | %s |" % (
                parts, fmt_n(p["msgs_per_s"]), fmt_n(i["msgs_per_s"]), ratio(i["msgs_per_s"], p["msgs_per_s"]),
                fmt_n(t["msgs_per_s"]) if t else "-", ratio(t["msgs_per_s"], p["msgs_per_s"]) if t else "-"))
    out += ["", "All three run back to back on the same broker (median of the runs). Idempotent: librdkafka with "
            "`enable.idempotence=true`, 5 requests in flight per partition. Transactional: a `transactional.id` "
            "and a commit every 100 ms (`sluice bench produce --transaction-ms 100`); each commit waits for the "
            "transaction's messages and its markers to be durable. Kafka's design figure for this is about 3%."]
    return out if found else []


def resilience_section(r):
    if not r:
        return []
    return ["## Resilience pipeline: cost per call (issue 6)", "",
            "rate limit → bulkhead → timeout → retry → circuit breaker around a call that succeeds at once "
            "(`bench/sl_res_bench.c`; the empty call's own cost subtracted).", "",
            "| | measured | goal | against |", "|---|---|---|---|",
            "| 1 thread | %.1f ns/call (median of 7 runs; min %.1f) | ≤ 100 ns | Polly v8 publishes ~2 µs "
            "for a similar pipeline |" % (r["one_thread_ns"], r["one_thread_min_ns"]),
            "| heap | %.3f bytes/call, %.5f allocations/call | 0 | Polly v8 ~40 B |" % (
                r["heap_bytes_per_call"], r["allocs_per_call"]),
            "| 2 threads sharing it | %.1f ns/call per thread (min %.1f): %.2f M calls/s together | | "
            "1 thread alone: %.2f M calls/s |" % (r["two_threads_ns"], r["two_threads_min_ns"],
                                                  2e3 / r["two_threads_ns"], 1e3 / r["one_thread_ns"]),
            "", "Floors measured in the same run: a clock reading %.1f ns (%s; `clock_gettime` %.1f ns), of which "
            "a call takes two; an uncontended atomic add %.1f ns; a cache line handed between the two cores %.1f ns, "
            "paid on every shared line (the bucket, the bulkhead, the budget, the breaker's lock and window) when "
            "two threads take turns on one pipeline." % (r["clock_ns"], r["clock_source"], r["clock_gettime_ns"],
                                                          r["atomic_add_ns"], r["handoff_ns"])]


def write_markdown(res, path):
    meta = res["meta"]
    lines = ["# Sluice benchmark", "",
             "Run %s on `%s` (%s CPUs: %s; kernel %s), commit %s%s. Everything below was measured in this one run "
             "on this machine, client and server sharing its cores. Re-run with `make bench`." % (
                 meta.get("date"), meta.get("host"), meta.get("cpus"), meta.get("cpu_model"), meta.get("kernel"),
                 meta.get("commit") or "?", " (quick mode: small counts, noisy)" if meta.get("quick") else ""), ""]
    lines += produce_table(res["rows"]) + [""]
    lines += consume_table(res["rows"], res["limits"]) + [""]
    lines += latency_table(res["rows"], res["limits"]) + [""]
    lines += idempotence_table(res["rows"]) + [""]
    lines += limits_section(res["limits"]) + [""]
    lines += resilience_section(res.get("resilience")) + [""]
    if "sluice_idle_rss_kib" in meta:
        lines.append("Sluice idle RSS %.1f MB; peak RSS %.1f MB (durable run), %.1f MB (os run). Start-up median "
                     "%.1f ms (max %.1f) on an empty data directory." % (
                         meta["sluice_idle_rss_kib"] / 1024, meta.get("sluice_peak_rss_kib_always", 0) / 1024,
                         meta.get("sluice_peak_rss_kib_os", 0) / 1024, meta.get("startup_median_ms", 0),
                         meta.get("startup_max_ms", 0)))
        lines.append("")
    lines += goals_section(res) + [""]
    lines.append("Charts: [throughput.png](throughput.png), [latency.png](latency.png).")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


SERIES = (("sluice", "always", "Sluice durable"), ("sluice", "os", "Sluice os"), ("mock", "memory", "librdkafka mock"),
          ("redis", "aof-always", "Redis always"), ("redis", "aof-no", "Redis no fsync"), ("nats", "file", "NATS JS"))


def write_charts(res, out):
    if not shutil.which("gnuplot"):
        print("report: gnuplot not installed; charts skipped", file=sys.stderr)
        return
    rows = res["rows"]
    tp = os.path.join(out, "throughput.dat")
    with open(tp, "w") as f:
        f.write("workload " + " ".join('"%s"' % s[2] for s in SERIES) + "\n")
        for size in (100, 1024):
            vals = []
            for system, mode, _ in SERIES:
                r = find(rows, system=system, mode=mode, op="produce", size=size, partitions=1)
                vals.append("%.0f" % r["mb_per_s"] if r else "0")
            f.write('"produce %s" %s\n' % ("100 B" if size == 100 else "1 KiB", " ".join(vals)))
    lat = os.path.join(out, "latency.dat")
    with open(lat, "w") as f:
        f.write('system "p50" "p99"\n')
        for system, mode, label in SERIES:
            r = find(rows, system=system, mode=mode, op="latency@10k")
            if r:
                f.write('"%s" %d %d\n' % (label, max(r["p50_us"], 1), max(r["p99_us"], 1)))
    script = """
set terminal pngcairo size 1000,520 font ",11"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key outside right top
set grid ytics
set output '%(out)s/throughput.png'
set title 'Produce throughput, 1 partition/stream, acks=all (MB/s, higher is better)'
set ylabel 'MB/s'
plot for [i=2:%(ncol)d] '%(tp)s' using i:xtic(1) title columnheader(i)
set output '%(out)s/latency.png'
set title 'Latency at 10k msgs/s, 100 B, send to ack (microseconds, log scale, lower is better)'
set ylabel 'µs'
set logscale y
plot '%(lat)s' using 2:xtic(1) title 'p50', '' using 3 title 'p99'
""" % {"out": out, "tp": tp, "lat": lat, "ncol": len(SERIES) + 1}
    p = subprocess.run(["gnuplot"], input=script, text=True, stderr=subprocess.PIPE)
    if p.returncode != 0:
        print("report: gnuplot failed: " + p.stderr, file=sys.stderr)
    os.unlink(tp)
    os.unlink(lat)


def write(res, out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "latest.json"), "w") as f:
        json.dump(res, f, indent=1)
    write_markdown(res, os.path.join(out, "latest.md"))
    write_charts(res, out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: report.py RESULTS.json OUTDIR")
    with open(sys.argv[1]) as f:
        write(json.load(f), sys.argv[2])
