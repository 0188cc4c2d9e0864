#!/usr/bin/python3
"""bench/run.py - the whole benchmark: Sluice, its peers and this machine's limits, in one run.

    /usr/bin/python3 bench/run.py [--quick] [--build DIR] [--out DIR] [--only sluice,mock,redis,nats,limits,resilience]

`make bench` runs it. Every figure is measured in this run, on this machine:

1. limits   sl_limits: fdatasync latency of small appends, synced write bandwidth
            by group size, loopback TCP bandwidth and round trip.
2. mock     `sluice bench produce --bootstrap mock`: librdkafka into its own in-process
            mock broker (memory only) -- what the client itself can push (best of 3; the
            mock broker's threads share the two cores with the client, so a real broker
            in another process can come out ahead of it).
3. sluice   the broker in its default durable mode (--flush always) and in --flush os:
            produce 100 B and 1 KiB to 1 and 16 partitions (acks=all), consume the same
            log back (warm, from the page cache) -- each the median of 3 runs --, latency
            at a fixed 10k msgs/s with linger 0; the broker's CPU time per MB from /proc;
            idle RSS; start-up; recovery scan speed after kill -9.
4. redis    Redis Streams (XADD, pipelined) with appendfsync always and no.
5. nats     NATS JetStream, file storage, async publish with acks.
6. resilience  sl_res_bench: the 5-stage resilience pipeline's cost per call on its success
            path (1 and 2 threads) and heap bytes per call, with its floors (a clock reading,
            an atomic add, a cache-line hand-over) measured in the same run.
Peers get the best of four runs (1 or 2 connections, a window of 256 or 1024).
Every run records the hypervisor's steal time over it: on a shared VM a run
with seconds of steal is noise, and the report says so.

Peers run on 127.0.0.1 from their own temporary directory and are stopped by
PID. Results: bench/results/latest.{md,json} and throughput.png / latency.png
(gnuplot). The Markdown prints every Sluice figure next to the peers' and the
limits it chases, as ratios.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def last_json(text):
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("no JSON line in output:\n" + text[-2000:])


def run_tool(args, timeout=600):
    """Runs a measuring tool; its human line goes to our log, its JSON comes back."""
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    human = [l for l in p.stdout.splitlines() if l and not l.startswith("{")]
    for l in human:
        log("    " + l)
    if p.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (" ".join(args), p.returncode, p.stderr.strip()[-2000:]))
    return last_json(p.stdout)


def cpu_seconds(pid):
    """utime + stime of a process and its threads, in seconds (/proc/PID/stat fields 14, 15)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Server:
    """A server process on 127.0.0.1 whose output is read until a ready line; stopped by PID."""

    def __init__(self, name, args, ready_re, cwd=None, timeout=20):
        self.name = name
        self.lines = []
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
        self.ready = threading.Event()
        self.match = None
        self.thread = threading.Thread(target=self._read, args=(re.compile(ready_re),), daemon=True)
        self.thread.start()
        if not self.ready.wait(timeout):
            self.kill()
            raise RuntimeError("%s did not become ready in %d s:\n%s" % (name, timeout, "\n".join(self.lines[-20:])))

    def _read(self, ready_re):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            m = ready_re.search(line)
            if m and not self.ready.is_set():
                self.match = m
                self.ready.set()
        self.ready.set()

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(5)
        return self.proc.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)


class Bench:
    def __init__(self, opts):
        self.o = opts
        self.build = os.path.abspath(opts.build)
        self.sluice = os.path.join(self.build, "sluice")
        self.tools = os.path.join(self.build, "bench")
        self.tmp = tempfile.mkdtemp(prefix="sluice-bench.", dir=opts.tmp)
        self.results = {"rows": [], "limits": {}, "meta": {}}
        q = opts.quick
        self.n100 = 300_000 if q else 5_000_000
        self.n1k = 100_000 if q else 1_500_000
        self.peer100 = 100_000 if q else 1_000_000
        self.peer1k = 50_000 if q else 500_000
        self.lat_seconds = 1 if q else 5
        self.reps = 1 if q else 3  # Sluice's throughput figures: the median of this many runs

    def row(self, **kw):
        self.results["rows"].append(kw)
        return kw

    # ---- limits ---------------------------------------------------------------------------
    def limits(self):
        log("== limits of this machine")
        d = os.path.join(self.tmp, "limits")
        os.makedirs(d)
        secs = "2" if self.o.quick else "10"
        self.results["limits"]["disk"] = run_tool([os.path.join(self.tools, "sl_limits"), "disk", "--dir", d,
                                                   "--seconds", secs, "--json"])
        self.results["limits"]["net"] = run_tool([os.path.join(self.tools, "sl_limits"), "net", "--seconds",
                                                  "1" if self.o.quick else "3", "--json"])

    # ---- the resilience pipeline ----------------------------------------------------------
    def resilience(self):
        log("== resilience pipeline (sl_res_bench)")
        exe = os.path.join(self.tools, "sl_res_bench")
        if not os.path.exists(exe):
            log("   %s is not built (a sanitizer build leaves it out); skipped" % exe)
            return
        self.results["resilience"] = run_tool([exe, "200000" if self.o.quick else "2000000"])

    # ---- the client's ceiling -------------------------------------------------------------
    def mock(self):
        log("== librdkafka mock broker (the client's ceiling)")
        for size, n in ((100, self.n100), (1024, self.n1k)):
            for parts in (1, 16):
                runs = []
                for _ in range(self.reps):  # a ceiling: the best of the runs
                    runs.append(run_tool([self.sluice, "bench", "produce", "--bootstrap", "mock", "--size",
                                          str(size), "--count", str(n), "--partitions", str(parts), "--json"]))
                r = max(runs, key=lambda x: x["msgs_per_s"])
                self.row(system="mock", mode="memory", op="produce", size=size, partitions=parts, runs=len(runs),
                         all_msgs_per_s=[x["msgs_per_s"] for x in runs], **pick(r))

    # ---- sluice ---------------------------------------------------------------------------
    def start_sluice(self, flush, data):
        return Server("sluice", [self.sluice, "broker", "--data", data, "--listen", "127.0.0.1:0", "--flush", flush,
                                 "--default-partitions", "1", "--log-level", "info"],
                      r"listening on 127\.0\.0\.1:(\d+)")

    def sluice_runs(self):
        for flush in ("always", "os"):
            log("== sluice, --flush %s" % flush)
            data = os.path.join(self.tmp, "sluice-" + flush)
            srv = self.start_sluice(flush, data)
            addr = "127.0.0.1:" + srv.match.group(1)
            time.sleep(0.2)
            if flush == "always":
                self.results["meta"]["sluice_idle_rss_kib"] = rss_kib(srv.pid)
            try:
                self.sluice_workloads(srv, addr, flush, data)
            finally:
                rc = srv.stop()
            if rc != 0:
                raise RuntimeError("sluice broker exited %s on SIGTERM:\n%s" % (rc, "\n".join(srv.lines[-20:])))
            for line in srv.lines:
                if "flusher:" in line:
                    log("    broker: " + line.split("flusher: ", 1)[1])
            # Data directories stay until the end: deleting gigabytes here made the file system discard
            # their blocks while the next system was being measured (fdatasync stalls of tens of ms).

    def sluice_workloads(self, srv, addr, flush, data):
        bench = [self.sluice, "bench"]
        # Latency first, on a quiet machine: after the throughput runs the kernel is still writing back
        # gigabytes of dirty pages, and that (not the broker) made a 1.5 ms p99 in `os` mode.
        quiesce(self.tmp)
        r = run_tool(bench + ["produce", "--bootstrap", addr, "--topic", "lat", "--size", "100", "--rate", "10000",
                              "--seconds", str(self.lat_seconds), "--count", "100000000", "--linger-ms", "0",
                              "--json"])
        self.row(system="sluice", mode=flush, op="latency@10k", size=100, partitions=1, **pick(r))
        for size, n in ((100, self.n100), (1024, self.n1k)):
            for parts in (1, 16):
                prods, cons = [], []
                for rep in range(self.reps):
                    topic = "t-%d-%d-%d" % (size, parts, rep)
                    quiesce(self.tmp)
                    c0, st0 = cpu_seconds(srv.pid), steal_seconds()
                    r = run_tool(bench + ["produce", "--bootstrap", addr, "--topic", topic, "--size", str(size),
                                          "--count", str(n), "--partitions", str(parts), "--json"])
                    cpu, r["steal_s"] = cpu_seconds(srv.pid) - c0, round(steal_seconds() - st0, 2)
                    mb = r["msgs"] * size / 1e6
                    r["server_cpu_ms_per_mb"] = round(cpu * 1000 / mb, 3) if mb else None
                    prods.append(r)
                    st0 = steal_seconds()
                    r = run_tool(bench + ["consume", "--bootstrap", addr, "--topic", topic, "--size", str(size),
                                          "--count", str(n), "--partitions", str(parts), "--json"])
                    r["steal_s"] = round(steal_seconds() - st0, 2)
                    cons.append(r)
                for op, runs in (("produce", prods), ("consume", cons)):
                    r = median_run(runs)
                    self.row(system="sluice", mode=flush, op=op, size=size, partitions=parts, runs=len(runs),
                             all_msgs_per_s=[x["msgs_per_s"] for x in runs],
                             server_cpu_ms_per_mb=r.get("server_cpu_ms_per_mb"), steal_s=r["steal_s"], **pick(r))
        if flush == "always":
            self.idempotence_cost(addr)
        self.results["meta"]["sluice_peak_rss_kib_" + flush] = rss_kib(srv.pid, "VmHWM")

    def idempotence_cost(self, addr):
        """Issue 5: what enable.idempotence, and transactions committed every 100 ms, cost against plain
        acks=all (same size, same partitions, same broker, back to back)."""
        bench = [self.sluice, "bench", "produce", "--bootstrap", addr, "--size", "100", "--count", str(self.n100)]
        kinds = (("plain", []), ("idempotent", ["--set", "enable.idempotence=true"]),
                 ("transactional", ["--transaction-ms", "100"]))
        for parts in (1, 16):
            for kind, extra in kinds:
                runs = []
                for rep in range(self.reps):
                    quiesce(self.tmp)
                    runs.append(run_tool(bench + ["--topic", "idem-%d-%s-%d" % (parts, kind, rep), "--partitions",
                                                  str(parts), "--json"] + extra))
                r = median_run(runs)
                self.row(system="sluice", mode="always", op="produce-" + kind, size=100, partitions=parts,
                         runs=len(runs), all_msgs_per_s=[x["msgs_per_s"] for x in runs], **pick(r))

    def startup(self):
        log("== sluice start-up")
        p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "startup.py"), self.sluice,
                            "5" if self.o.quick else "20"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        m = re.search(r"median ([\d.]+) ms, max ([\d.]+) ms", p.stdout)
        if p.returncode != 0 or not m:
            raise RuntimeError("startup.py failed:\n" + p.stdout)
        log("    " + p.stdout.strip().splitlines()[-1])
        self.results["meta"]["startup_median_ms"] = float(m.group(1))
        self.results["meta"]["startup_max_ms"] = float(m.group(2))

    def recovery(self):
        """kill -9 after writing, drop the recovery point so the whole log is scanned, restart."""
        log("== sluice recovery scan")
        data = os.path.join(self.tmp, "sluice-recovery")
        srv = self.start_sluice("os", data)
        addr = "127.0.0.1:" + srv.match.group(1)
        n = 300_000 if self.o.quick else 1_500_000
        run_tool([self.sluice, "bench", "produce", "--bootstrap", addr, "--topic", "rec", "--size", "1024",
                  "--count", str(n), "--json"])
        srv.kill()
        part = os.path.join(data, "rec-0")
        os.unlink(os.path.join(part, "recovery-point"))
        subprocess.run(["sync"], check=True)
        out = {}
        for temp in ("warm", "cold"):
            if temp == "cold":
                for name in os.listdir(part):
                    fd = os.open(os.path.join(part, name), os.O_RDONLY)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    os.close(fd)
            srv = self.start_sluice("os", data)
            srv.kill()  # unclean again, so the next start scans too
            if os.path.exists(os.path.join(part, "recovery-point")):
                os.unlink(os.path.join(part, "recovery-point"))
            m = None
            for line in srv.lines:
                m = re.search(r"rec-0: open, .* (\d+) bytes CRC-checked in (\d+) ms", line) or m
            if not m:
                raise RuntimeError("no recovery line in the broker log:\n" + "\n".join(srv.lines[-20:]))
            nbytes, ms = int(m.group(1)), max(int(m.group(2)), 1)
            out[temp] = {"bytes": nbytes, "ms": ms, "gb_per_s": round(nbytes / ms / 1e6, 2)}
            log("    %s page cache: %d MB CRC-checked in %d ms: %.2f GB/s" % (temp, nbytes // 10**6, ms,
                                                                          nbytes / ms / 1e6))
        self.results["meta"]["recovery"] = out

    # ---- peers ----------------------------------------------------------------------------
    def peer_run(self, system, mode, addr, srv, size, n, extra=()):
        """The peer's best of 1 or 2 connections and a window of 256 or 1024 unacknowledged messages."""
        best = None
        for conns, window in (("1", "256"), ("2", "256"), ("1", "1024"), ("2", "1024")):
            quiesce(self.tmp)
            c0, st0 = cpu_seconds(srv.pid), steal_seconds()
            r = run_tool([os.path.join(self.tools, "sl_peergen"), system, "--addr", addr, "--size", str(size),
                          "--count", str(n), "--connections", conns, "--window", window, "--seconds", "20",
                          "--json"] + list(extra))
            cpu, r["steal_s"] = cpu_seconds(srv.pid) - c0, round(steal_seconds() - st0, 2)
            mb = r["msgs"] * size / 1e6
            r["server_cpu_ms_per_mb"] = round(cpu * 1000 / mb, 3) if mb else None
            if best is None or r["msgs_per_s"] > best["msgs_per_s"]:
                best = r
        self.row(system=system, mode=mode, op="produce", size=size, partitions=1,
                 server_cpu_ms_per_mb=best["server_cpu_ms_per_mb"], connections=best.get("connections"),
                 window=best.get("window"), steal_s=best["steal_s"], **pick(best))

    def peer_latency(self, system, mode, addr):
        quiesce(self.tmp)
        r = run_tool([os.path.join(self.tools, "sl_peergen"), system, "--addr", addr, "--size", "100", "--rate",
                      "10000", "--seconds", str(self.lat_seconds), "--count", "100000000", "--json"])
        self.row(system=system, mode=mode, op="latency@10k", size=100, partitions=1, **pick(r))

    def redis(self):
        exe = shutil.which("redis-server")
        if not exe:
            log("== redis: redis-server not installed (scripts/deps.sh bench installs it); skipped")
            return
        for fsync in ("always", "no"):
            log("== redis streams, appendfsync %s" % fsync)
            d = os.path.join(self.tmp, "redis-" + fsync)
            os.makedirs(d)
            port = free_port()
            srv = Server("redis", [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--appendonly", "yes",
                                   "--appendfsync", fsync, "--save", "", "--daemonize", "no"],
                         r"Ready to accept connections")
            addr = "127.0.0.1:%d" % port
            try:
                self.peer_latency("redis", "aof-" + fsync, addr)
                self.peer_run("redis", "aof-" + fsync, addr, srv, 100, self.peer100)
                self.peer_run("redis", "aof-" + fsync, addr, srv, 1024, self.peer1k)
            finally:
                srv.stop()

    def nats(self):
        exe = shutil.which("nats-server")
        if not exe:
            log("== nats: nats-server not installed (scripts/deps.sh bench installs it); skipped")
            return
        log("== nats jetstream, file storage")
        d = os.path.join(self.tmp, "nats")
        os.makedirs(d)
        port = free_port()
        srv = Server("nats", [exe, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", d], r"Server is ready")
        addr = "127.0.0.1:%d" % port
        try:
            self.peer_latency("nats", "file", addr)
            self.peer_run("nats", "file", addr, srv, 100, self.peer100)
            self.peer_run("nats", "file", addr, srv, 1024, self.peer1k)
        finally:
            srv.stop()

    def run(self):
        only = set(self.o.only.split(",")) if self.o.only else {"limits", "mock", "sluice", "redis", "nats",
                                                                "resilience"}
        meta = self.results["meta"]
        meta.update(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    host=platform.node(), cpus=os.cpu_count(), kernel=platform.release(), quick=self.o.quick,
                    cpu_model=cpu_model(), commit=git_commit())
        try:
            if "limits" in only:
                self.limits()
            if "mock" in only:
                self.mock()
            if "sluice" in only:
                self.sluice_runs()
                self.startup()
                self.recovery()
            if "redis" in only:
                self.redis()
            if "nats" in only:
                self.nats()
            if "resilience" in only:
                self.resilience()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return self.results


def steal_seconds():
    """CPU time the hypervisor gave to others (/proc/stat 'steal'), summed over CPUs: a noisy-neighbour flag."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) / TICK if len(fields) > 8 else 0.0


def median_run(runs):
    return sorted(runs, key=lambda r: r["msgs_per_s"])[len(runs) // 2]


def quiesce(*dirs):
    """Before a measurement: write back what earlier runs left dirty, and drop their pages from the page
    cache (they stay on disk). Without the drop, a full run's ~25 GB fills this machine's memory and later
    runs pay for reclaiming it: the broker's CPU per MB tripled and 1 KiB produce fell from 1.1 GB/s to
    0.56 GB/s. (Deleting the files instead made the file system discard their blocks mid-run.)"""
    os.sync()
    for d in dirs:
        for root, _, files in os.walk(d):
            for name in files:
                try:
                    fd = os.open(os.path.join(root, name), os.O_RDONLY)
                except OSError:
                    continue
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                os.close(fd)
    time.sleep(1)


def pick(r):
    keys = ("msgs", "seconds", "msgs_per_s", "mb_per_s", "p50_us", "p99_us", "p999_us", "max_us", "failed")
    return {k: r[k] for k in keys if k in r}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def git_commit():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True).stdout.strip()
    except OSError:
        return ""


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run of a minute or so")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--tmp", default=None, help="where data directories go (default: $TMPDIR)")
    ap.add_argument("--only", default="", help="comma-separated: limits,mock,sluice,redis,nats,resilience")
    opts = ap.parse_args()
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import report  # noqa: E402  (bench/report.py: the Markdown table and the charts)

    results = Bench(opts).run()
    os.makedirs(opts.out, exist_ok=True)
    report.write(results, opts.out)
    log("results: %s/latest.md (and latest.json, throughput.png, latency.png)" % opts.out)
