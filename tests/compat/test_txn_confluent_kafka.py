#!/usr/bin/python3
# sluice-broker-args: --group-initial-rebalance-delay 0 --group-min-session-timeout 1000
"""confluent-kafka-python 1.7.0 (librdkafka 2.0.2) transactions against a running broker.

Every message a test produces is recorded in a model of the log (its offset
from the delivery report, its transaction and how that ended); each
transaction that ends adds one COMMIT/ABORT marker offset to every partition
it wrote to and to no other. What a read_committed consumer must see is the
committed and non-transactional records below the last stable offset (LSO,
the first offset of the oldest open transaction, else the high watermark),
in offset order; read_uncommitted sees every record. Readers use assign() at
OFFSET_BEGINNING (their group.id is never used) and compare key, value,
headers and offset of every record.

Checks:
- content: one transactional producer per codec (none, gzip, snappy, lz4,
  zstd; debug=msg proves librdkafka really compressed), five transactions
  each over a 3-partition topic (commit on all partitions, abort on all,
  commit on two, abort on one, commit on two), keys (some null), values of
  varying size, headers (an empty and a null value among them): every
  delivery report lands at the offset the model predicts (so exactly one
  marker per partition per ended transaction), read_committed gets exactly
  the committed records in order and reaches EOF at the high watermark past
  the trailing markers, read_uncommitted gets all of them;
- an open transaction: producer A leaves one open on partitions 0 and 1, then
  a plain producer and a second transactional producer B (committed) write
  after it. While it is open: query_watermark_offsets (ListOffsets with the
  consumer's isolation level, which librdkafka 2.0.2 sends) gives the LSO
  for read_committed and the high watermark for read_uncommitted; the
  cached watermarks (from Fetch) and the statistics' hi_offset/ls_offset
  show the high watermark and Fetch's LastStableOffset; the read_committed
  consumer gets partition 2 but waits at the LSO on 0 and 1, its EOF at the
  LSO. A commits: it continues through A's, the plain and B's records. Then
  A opens another transaction, the others write after it again, A aborts:
  the consumer gets the plain and B's records but none of A's;
- consume-transform-produce: a read_committed group member consumes an
  input topic and a transactional producer writes each record transformed
  to an output topic and its offsets with send_offsets_to_transaction(...,
  consumer_group_metadata()); before commit_transaction the group's
  committed() is unchanged for read_uncommitted and blocks for
  read_committed (OffsetFetch v7 RequireStable: the broker answers
  UNSTABLE_OFFSET_COMMIT, librdkafka retries), which then returns the new
  offsets right after commit; an aborted round leaves the offsets as they
  were, the consumer rewinds to them and processes the records again. At the
  end the output, read_committed, holds each input record transformed
  exactly once in order, committed() == the input's end offsets, and
  read_uncommitted also shows the aborted round's output;
- zombie fencing: a second producer with the same transactional.id
  initialises while the first has an open transaction: the first's
  transaction is aborted (its record invisible to read_committed), the new
  one commits, and the old one's next produce and commit_transaction fail
  with librdkafka's fatal _FENCED (flush() raises it too; the delivery
  report says INVALID_PRODUCER_EPOCH), as do abort and begin_transaction;
- transaction.timeout.ms 900001 -> init_transactions raises the fatal
  INVALID_TRANSACTION_TIMEOUT; 900000 is accepted;
- transaction.timeout.ms 2000, a transaction left open: the broker aborts it
  (the LSO moves past its marker) 2.0-3.5 s after begin_transaction; its records are
  invisible to read_committed; the producer's commit_transaction then fails
  with fatal _FENCED (librdkafka's answer to INVALID_PRODUCER_EPOCH on
  EndTxn), and a new instance with the same id commits normally.
Timings printed: init_transactions, commit and abort, visibility after commit
and abort, committed() after commit, fencing, the broker's timeout abort.
"""
import json
import logging
import os
import sys
import threading
import time

try:
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError as e:
    sys.exit(f"FAIL: confluent-kafka missing ({e}): run scripts/deps.sh test")

BOOTSTRAP = os.environ["SLUICE_BOOTSTRAP"]
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
TIMEOUT_S = 15
WAIT_S = 10
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print(f"FAIL: {msg}", file=sys.stderr)
    return cond


def ms(t0, t1=None):
    return ((time.monotonic() if t1 is None else t1) - t0) * 1000


def norm_headers(h):
    return [(k, v) for k, v in (h or [])]


class Log:
    """The model of one topic: per partition the records and marker offsets in
    log order, each record with the transaction state it belongs to."""

    def __init__(self, topic, partitions):
        self.topic = topic
        self.partitions = partitions
        self.next = {p: 0 for p in range(partitions)}
        self.records = {p: [] for p in range(partitions)}  # [offset, key, value, headers, txn]

    def delivered(self, what, err, msg, key, value, headers, txn):
        """A delivery report: it must be at the next offset of its partition."""
        if not check(err is None, f"{what}: delivery failed: {err}"):
            return
        p = msg.partition()
        check(msg.offset() == self.next[p], f"{what}: delivered at [{p}]@{msg.offset()}, "
              f"the model says {self.next[p]} (one marker per ended transaction and partition)")
        self.records[p].append((msg.offset(), key, value, norm_headers(headers), txn))
        self.next[p] = msg.offset() + 1

    def ended(self, txn):
        """txn ended: one marker in every partition it wrote to."""
        for p in sorted(txn.partitions):
            self.next[p] += 1

    def hw(self, p):
        return self.next[p]

    def lso(self, p):
        opened = [r[0] for r in self.records[p] if r[4] is not None and r[4].state == "open"]
        return min(opened) if opened else self.hw(p)

    def want(self, p, committed):
        """(offset, key, value, headers) a reader must have seen."""
        if committed:
            lso = self.lso(p)
            return [r[:4] for r in self.records[p]
                    if r[0] < lso and (r[4] is None or r[4].state == "committed")]
        return [r[:4] for r in self.records[p]]


class Txn:
    def __init__(self, name):
        self.name = name
        self.state = "open"
        self.partitions = set()


class Producer:
    """A producer whose delivery reports go into a Log model."""

    def __init__(self, log, conf, name):
        self.log = log
        self.name = name
        self.refusals = 0
        self.pending = []
        conf = dict({"bootstrap.servers": BOOTSTRAP, "linger.ms": 5}, **conf)
        if "compression.codec" in conf:
            # librdkafka logs "not compressing batch" when the broker's
            # ApiVersions make it send a batch uncompressed.
            logger = logging.getLogger(f"librdkafka.{name}")
            logger.setLevel(logging.DEBUG)
            logger.propagate = False
            counter = self

            class Handler(logging.Handler):
                def emit(self, record):
                    if "not compressing batch" in record.getMessage():
                        counter.refusals += 1
            logger.addHandler(Handler(logging.DEBUG))
            self.p = ck.Producer(dict(conf, debug="msg"), logger=logger)
        else:
            self.p = ck.Producer(conf)
        self.txn = None

    def produce(self, p, key, value, headers):
        txn = self.txn

        def report(err, msg):
            self.log.delivered(f"{self.name} {key!r}", err, msg, key, value, headers, txn)
        if txn is not None:
            txn.partitions.add(p)
        self.p.produce(self.log.topic, value=value, key=key, partition=p, headers=headers, on_delivery=report)
        self.p.poll(0)

    def flush(self):
        left = self.p.flush(TIMEOUT_S)
        check(left == 0, f"{self.name}: {left} messages not delivered")

    def begin(self, name):
        self.p.begin_transaction()
        self.txn = Txn(name)
        return self.txn

    def end(self, commit):
        """flush (delivery reports to the model), then commit or abort; returns
        the time commit/abort took, in ms."""
        self.flush()
        t = time.monotonic()
        if commit:
            self.p.commit_transaction(TIMEOUT_S)
        else:
            self.p.abort_transaction(TIMEOUT_S)
        took = ms(t)
        self.txn.state = "committed" if commit else "aborted"
        self.log.ended(self.txn)
        self.txn = None
        return took


class Reader:
    """A consumer assigned to every partition of a topic from the beginning."""

    def __init__(self, log, committed, stats=False):
        self.log = log
        self.committed = committed
        self.records = {p: [] for p in range(log.partitions)}
        self.eof = {}
        self.arrivals = []  # monotonic time a record was returned by consume()
        self.stats = None
        conf = {"bootstrap.servers": BOOTSTRAP, "group.id": f"ckt.reader.{log.topic}.{committed}",
                "enable.auto.commit": False, "enable.partition.eof": True, "fetch.wait.max.ms": 100,
                "isolation.level": "read_committed" if committed else "read_uncommitted"}
        if stats:
            conf.update({"statistics.interval.ms": 100, "stats_cb": self._stats})
        self.c = ck.Consumer(conf)
        self.c.assign([ck.TopicPartition(log.topic, p, ck.OFFSET_BEGINNING) for p in range(log.partitions)])

    def _stats(self, raw):
        self.stats = json.loads(raw)

    def name(self):
        return "read_committed" if self.committed else "read_uncommitted"

    def pump(self, timeout=0.01):
        for m in self.c.consume(100, timeout):
            if m.error():
                if m.error().code() == ck.KafkaError._PARTITION_EOF:
                    self.eof[m.partition()] = m.offset()
                else:
                    check(False, f"{self.log.topic} {self.name()}: consume error {m.error()}")
                continue
            self.records[m.partition()].append((m.offset(), m.key(), m.value(), norm_headers(m.headers())))
            self.arrivals.append(time.monotonic())

    def until(self, what, cond, timeout=WAIT_S):
        t = time.monotonic()
        while not cond():
            if time.monotonic() - t > timeout:
                check(False, f"{self.log.topic} {self.name()}: timed out after {timeout} s waiting for {what}")
                return None
            self.pump()
        return ms(t)

    def complete(self, p):
        return self.records[p] == self.log.want(p, self.committed)

    def caught_up(self, parts=None):
        """Every record the model says it must see, and nothing else so far."""
        parts = range(self.log.partitions) if parts is None else parts
        return all(len(self.records[p]) >= len(self.log.want(p, self.committed)) for p in parts)

    def compare(self, what, parts=None):
        for p in (range(self.log.partitions) if parts is None else parts):
            got, want = self.records[p], self.log.want(p, self.committed)
            if got != want:
                extra = [r for r in got if r not in want]
                missing = [r for r in want if r not in got]
                check(False, f"{what}: {self.log.topic}[{p}] {self.name()} got {len(got)} records, want {len(want)}; "
                      f"unexpected {extra[:3]}, missing {missing[:3]}, offsets got {[r[0] for r in got]} "
                      f"want {[r[0] for r in want]}")

    def watermarks(self, p, cached=False):
        return self.c.get_watermark_offsets(ck.TopicPartition(self.log.topic, p), timeout=TIMEOUT_S, cached=cached)


def create_topics(admin, topics):
    fs = admin.create_topics([NewTopic(t, num_partitions=n, replication_factor=1) for t, n in topics])
    for t, fut in fs.items():
        fut.result(timeout=TIMEOUT_S)


def txn_producer(log, tid, name, **conf):
    p = Producer(log, dict({"transactional.id": tid}, **conf), name)
    t = time.monotonic()
    p.p.init_transactions(TIMEOUT_S)
    took = ms(t)
    # Without this librdkafka waits ~1 s for metadata at the first produce to the topic.
    p.p.list_topics(log.topic, timeout=TIMEOUT_S)
    return p, took


def content(codec, tx, p, i):
    key = None if i % 4 == 3 else f"{codec}/t{tx}/p{p}/{i}".encode()
    value = (f"{codec} transaction {tx} partition {p} record {i} " * (1 + i * 7)).encode()
    headers = [("codec", codec.encode()), ("tx", str(tx).encode()), ("empty", b""), ("null", None),
               ("bin", bytes([0, 255, i]))]
    return key, value, headers


def check_content(admin):
    """Five transactions per codec over 3 partitions; read back both ways."""
    log = Log("ckt.content", 3)
    create_topics(admin, [(log.topic, 3)])
    plan = [(True, [0, 1, 2], 5), (False, [0, 1, 2], 4), (True, [0, 2], 3), (False, [1], 3), (True, [1, 2], 4)]
    commit_ms, abort_ms, init_ms = [], [], []
    for codec in CODECS:
        prod, took = txn_producer(log, f"ckt-content-{codec}", f"content-{codec}", **{"compression.codec": codec})
        init_ms.append(took)
        for tx, (commit, parts, n) in enumerate(plan):
            prod.begin(f"{codec}-{tx}")
            for i in range(n):
                for p in parts:
                    prod.produce(p, *content(codec, tx, p, i))
            (commit_ms if commit else abort_ms).append(prod.end(commit))
        prod.p.poll(0)
        check(prod.refusals == 0, f"codec {codec}: librdkafka sent {prod.refusals} batch(es) UNCOMPRESSED "
              "('Broker does not support compression type')")
    n_commit = sum(1 for p in range(3) for r in log.records[p] if r[4].state == "committed")
    n_abort = sum(1 for p in range(3) for r in log.records[p] if r[4].state == "aborted")
    print(f"timing: init_transactions {min(init_ms):.1f}-{max(init_ms):.1f} ms; commit_transaction "
          f"avg {sum(commit_ms) / len(commit_ms):.1f} ms (max {max(commit_ms):.1f}), abort_transaction "
          f"avg {sum(abort_ms) / len(abort_ms):.1f} ms (max {max(abort_ms):.1f})")
    for committed in (True, False):
        r = Reader(log, committed)
        if r.until("EOF at the high watermark of every partition",
                   lambda: all(r.eof.get(p) == log.hw(p) for p in range(3))) is not None:
            r.compare("content")
        pos = {tp.partition: tp.offset for tp in r.c.position([ck.TopicPartition(log.topic, p) for p in range(3)])}
        check(pos == {p: log.hw(p) for p in range(3)},
              f"{r.name()} position() {pos}, want the high watermarks {[log.hw(p) for p in range(3)]}")
        for p in range(3):
            lo, hi = r.watermarks(p)
            check((lo, hi) == (0, log.hw(p)), f"{r.name()} watermarks [{p}] ({lo}, {hi}), want (0, {log.hw(p)})")
        r.c.close()
    print(f"checked: {len(CODECS)} codecs x {len(plan)} transactions: {n_commit} committed and {n_abort} aborted "
          f"records at the predicted offsets (high watermarks {[log.hw(p) for p in range(3)]}); read_committed "
          "got exactly the committed ones, read_uncommitted all, both positioned past the markers")


def check_open_transaction(admin):
    """read_committed waits at an open transaction; watermarks show the LSO."""
    log = Log("ckt.open", 3)
    create_topics(admin, [(log.topic, 3)])
    a, _ = txn_producer(log, "ckt-open-a", "open-a")
    b, _ = txn_producer(log, "ckt-open-b", "open-b")
    plain = Producer(log, {"acks": "all"}, "plain")
    rc, ru = Reader(log, True, stats=True), Reader(log, False)

    b.begin("base")
    for p in range(3):
        b.produce(p, f"base-{p}".encode(), b"base", [("who", b"b")])
    b.end(True)
    for r in (rc, ru):
        r.until("the base transaction", r.caught_up)

    for rnd, commit in ((1, True), (2, False)):
        for p in (0, 1):  # so the EOF at the LSO is at a new offset
            plain.produce(p, f"before{rnd}-{p}".encode(), b"before the open transaction", [])
        plain.flush()
        txa = a.begin(f"a{rnd}")
        for i in range(3):
            for p in (0, 1):
                a.produce(p, f"a{rnd}-{p}-{i}".encode(), f"open transaction {rnd}".encode(), [("who", b"a")])
        a.flush()
        for i in range(2):
            for p in (0, 2):
                plain.produce(p, f"plain{rnd}-{p}-{i}".encode(), b"plain", [("who", b"plain")])
        plain.flush()
        b.begin(f"b{rnd}")
        for i in range(2):
            b.produce(0, f"b{rnd}-{i}".encode(), b"committed after the open one", [("who", b"b")])
        b.end(True)
        lso = {p: log.lso(p) for p in range(3)}
        hw = {p: log.hw(p) for p in range(3)}
        check(lso[0] < hw[0] and lso[1] < hw[1] and lso[2] == hw[2], f"round {rnd}: model LSO {lso} HW {hw}")

        # read_uncommitted sees everything; read_committed gets partition 2 and
        # stops at the LSO of 0 and 1, with an EOF there.
        ru.until(f"round {rnd}: every record", ru.caught_up)
        ru.compare(f"round {rnd}, open")
        rc.until(f"round {rnd}: EOF at the LSO of partitions 0 and 1 and at the end of 2",
                 lambda: rc.caught_up() and rc.eof.get(0) == lso[0] and rc.eof.get(1) == lso[1]
                 and rc.eof.get(2) == hw[2])
        t = time.monotonic()
        while ms(t) < 500:  # an open transaction's records would arrive now
            rc.pump()
        rc.compare(f"round {rnd}, transaction open")
        for p in range(3):
            got_c, got_u = rc.watermarks(p), ru.watermarks(p)
            check(got_c == (0, lso[p]), f"round {rnd}: read_committed query_watermark_offsets [{p}] {got_c}, "
                  f"want (0, LSO {lso[p]})")
            check(got_u == (0, hw[p]), f"round {rnd}: read_uncommitted query_watermark_offsets [{p}] {got_u}, "
                  f"want (0, HW {hw[p]})")
            cached = rc.watermarks(p, cached=True)
            check(cached[1] == hw[p], f"round {rnd}: read_committed cached watermarks [{p}] {cached}, "
                  f"want the high watermark {hw[p]} from Fetch")
        rc.until("statistics after the last fetch", lambda: rc.stats is not None
                 and rc.stats["topics"].get(log.topic, {}).get("partitions", {}).get("0", {}).get("ls_offset") == lso[0])
        if rc.stats is not None:
            for p in range(3):
                st = rc.stats["topics"][log.topic]["partitions"][str(p)]
                check((st["hi_offset"], st["ls_offset"]) == (hw[p], lso[p]),
                      f"round {rnd}: statistics [{p}] hi_offset {st['hi_offset']} ls_offset {st['ls_offset']}, "
                      f"want Fetch's HighwaterMark {hw[p]} and LastStableOffset {lso[p]}")
        print(f"checked: round {rnd}: a transaction open at {lso}: read_committed waits there (EOF at the LSO), "
              f"query_watermark_offsets gives the LSO / the HW {hw} by isolation level, Fetch reports both")

        before = len(rc.arrivals)
        t = a.end(commit)
        ended = time.monotonic()
        check(txa.state == ("committed" if commit else "aborted"), f"a{rnd} state {txa.state}")
        took = rc.until(f"round {rnd}: the records after the {'commit' if commit else 'abort'}",
                        lambda: rc.caught_up() and all(rc.eof.get(p) == log.hw(p) for p in range(3)))
        if took is not None and len(rc.arrivals) > before:
            print(f"timing: the read_committed consumer waiting at the LSO got the first of the "
                  f"{len(rc.arrivals) - before} records behind it {ms(ended, rc.arrivals[before]):.1f} ms and the last "
                  f"{ms(ended, rc.arrivals[-1]):.1f} ms after {'commit' if commit else 'abort'}_transaction returned "
                  f"(which took {t:.1f} ms)")
        rc.compare(f"round {rnd}, after {'commit' if commit else 'abort'}")
        ru.until(f"round {rnd}: EOF at the end", lambda: all(ru.eof.get(p) == log.hw(p) for p in range(3)))
        ru.compare(f"round {rnd}, after the end")
        for p in range(3):
            check(rc.watermarks(p) == (0, log.hw(p)), f"round {rnd}: read_committed watermarks [{p}] "
                  f"{rc.watermarks(p)} after the end, want (0, {log.hw(p)})")
        aborted_seen = [r for p in range(3) for r in rc.records[p] if r[1].startswith(b"a2-")]
        check(not aborted_seen, f"read_committed delivered aborted records {aborted_seen[:3]}")
        print(f"checked: round {rnd}: after {'commit' if commit else 'abort'}_transaction the read_committed "
              f"consumer continued: {[len(rc.records[p]) for p in range(3)]} records "
              f"({'with' if commit else 'without'} the transaction's), read_uncommitted "
              f"{[len(ru.records[p]) for p in range(3)]}")
    for r in (rc, ru):
        r.c.close()


def committed_of(consumer, topic, parts, timeout=TIMEOUT_S):
    got = consumer.committed([ck.TopicPartition(topic, p) for p in parts], timeout=timeout)
    return {tp.partition: tp.offset for tp in got}


def check_consume_transform_produce(admin):
    src = Log("ckt.in", 2)
    out = Log("ckt.out", 2)
    group = "ckt.ctp"
    create_topics(admin, [(src.topic, 2), (out.topic, 2)])
    plain = Producer(src, {"acks": "all"}, "input")
    n_in = 15
    for i in range(n_in):
        for p in range(2):
            plain.produce(p, f"in-{p}-{i}".encode(), f"value {p}/{i}".encode(), [("i", str(i).encode())])
    plain.flush()

    consumer = ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False,
                            "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 100})
    consumer.subscribe([src.topic])
    prod, _ = txn_producer(out, "ckt-ctp", "ctp")
    probe_u = ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "isolation.level": "read_uncommitted"})
    logs = []

    class Lines(logging.Handler):
        def emit(self, record):
            logs.append(record.getMessage())
    lg = logging.getLogger("librdkafka.ctp-probe")
    lg.setLevel(logging.DEBUG)
    lg.propagate = False
    lg.addHandler(Lines(logging.DEBUG))
    probe_c = ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "isolation.level": "read_committed",
                           "debug": "protocol"}, logger=lg)

    committed = {0: ck.OFFSET_INVALID, 1: ck.OFFSET_INVALID}
    processed = set()
    rounds = []
    outcomes = [True, False, True]  # then commits until everything is processed
    rnd = 0
    t_end = time.monotonic() + 30
    while len(processed) < 2 * n_in and time.monotonic() < t_end:
        commit = outcomes[rnd] if rnd < len(outcomes) else True
        msgs = []
        while not msgs and time.monotonic() < t_end:
            msgs = [m for m in consumer.consume(8, 0.1) if check(not m.error(), f"ctp consume: {m.error()}")]
        if not msgs:
            break
        prod.begin(f"ctp-{rnd}")
        offsets = {}
        for m in msgs:
            prod.produce(m.partition(), m.key(), m.value().upper(), [("src", f"{m.partition()}:{m.offset()}".encode())])
            offsets[m.partition()] = m.offset() + 1
        positions = [ck.TopicPartition(src.topic, p, off) for p, off in sorted(offsets.items())]
        prod.p.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), TIMEOUT_S)
        want_after = {**committed, **offsets} if commit else dict(committed)

        # Pending: read_uncommitted's OffsetFetch does not show them; a
        # read_committed one (RequireStable) blocks until the end.
        got = committed_of(probe_u, src.topic, range(2))
        check(got == committed, f"round {rnd}: committed() (read_uncommitted) with the offsets pending {got}, "
              f"want the previous {committed}")
        stable = {}

        def fetch_stable():
            try:
                stable["offsets"] = committed_of(probe_c, src.topic, range(2), timeout=10)
            except ck.KafkaException as e:
                stable["error"] = e.args[0]
            stable["at"] = time.monotonic()
        thread = threading.Thread(target=fetch_stable)
        logs.clear()
        thread.start()
        thread.join(0.5)
        check(thread.is_alive(), f"round {rnd}: read_committed committed() returned {stable} while the "
              "transaction's offsets were pending, want it to wait (UNSTABLE_OFFSET_COMMIT)")
        took = prod.end(commit)
        ended = time.monotonic()
        thread.join(TIMEOUT_S)
        check(stable.get("offsets") == want_after, f"round {rnd}: read_committed committed() {stable}, "
              f"want {want_after} once the transaction {'committed' if commit else 'aborted'}")
        if "at" in stable:
            print(f"timing: round {rnd}: read_committed committed() returned {ms(ended, stable['at']):.1f} ms after "
                  f"{'commit' if commit else 'abort'}_transaction (took {took:.1f} ms) returned "
                  "(librdkafka retries an unstable OffsetFetch every 100 ms)")
        probe_c.poll(0.1)  # serves the debug log
        retries = [x for x in logs if "Retrying OffsetFetchRequest (v7" in x]
        check(retries, f"round {rnd}: no 'Retrying OffsetFetchRequest (v7' from librdkafka while the offsets were "
              f"pending: {logs[-5:]}")
        got = committed_of(probe_u, src.topic, range(2))
        check(got == want_after, f"round {rnd}: committed() after the end {got}, want {want_after}")
        rounds.append((commit, len(msgs), len(retries)))
        if commit:
            committed = want_after
            processed.update((m.partition(), m.offset()) for m in msgs)
        else:
            # Rewind to the committed offsets and process those records again.
            for tp in consumer.assignment():
                off = committed.get(tp.partition, ck.OFFSET_INVALID)
                consumer.seek(ck.TopicPartition(src.topic, tp.partition, off if off >= 0 else ck.OFFSET_BEGINNING))
        rnd += 1
    print(f"checked: consume-transform-produce in {len(rounds)} rounds (commit?, records, OffsetFetch v7 retries "
          f"while pending): {rounds}")
    check(len(processed) == 2 * n_in, f"processed {len(processed)} of {2 * n_in} input records")
    check(committed_of(probe_u, src.topic, range(2)) == {0: n_in, 1: n_in},
          f"final committed() {committed_of(probe_u, src.topic, range(2))}, want {n_in} on both")
    for committed_reader in (True, False):
        r = Reader(out, committed_reader)
        r.until("EOF at the end of ckt.out", lambda: all(r.eof.get(p) == out.hw(p) for p in range(2)))
        r.compare("output")
        if committed_reader:
            for p in range(2):
                srcs = [h[1] for _, _, _, hs in r.records[p] for h in hs if h[0] == "src"]
                want = [f"{p}:{o}".encode() for o in range(n_in)]
                check(srcs == want, f"ckt.out[{p}] read_committed sources {srcs}, want each input once in order")
                vals = [v for _, _, v, _ in r.records[p]]
                check(vals == [f"VALUE {p}/{i}".encode() for i in range(n_in)], f"ckt.out[{p}] values {vals}")
        else:
            aborted = sum(n for c, n, _ in rounds if not c)
            total = sum(len(r.records[p]) for p in range(2))
            check(total == 2 * n_in + aborted, f"read_uncommitted ckt.out holds {total}, want {2 * n_in} + the "
                  f"aborted round's {aborted}")
        r.c.close()
    print(f"checked: ckt.out read_committed holds each of the {2 * n_in} inputs transformed exactly once in order; "
          "committed() == the input's end; read_uncommitted also shows the aborted round")
    for c in (consumer, probe_u, probe_c):
        c.close()


def expect_fatal(what, fn, code):
    try:
        fn()
        check(False, f"{what}: succeeded, want {ck.KafkaError(code).name()}")
        return None
    except ck.KafkaException as e:
        err = e.args[0]
        check(err.code() == code and err.fatal(),
              f"{what}: {err.name()} fatal={err.fatal()} ({err.str()}), want fatal {ck.KafkaError(code).name()}")
        return err


def check_fencing(admin):
    log = Log("ckt.fence", 1)
    create_topics(admin, [(log.topic, 1)])
    old, _ = txn_producer(log, "ckt-zombie", "zombie")
    tx_old = old.begin("zombie")
    old.produce(0, b"zombie", b"written by the old instance", [])
    old.flush()
    new, took = txn_producer(log, "ckt-zombie", "new")
    tx_old.state = "aborted"  # the new instance's InitProducerId aborted it
    log.ended(tx_old)
    print(f"timing: the second instance's init_transactions (fencing and aborting the first's transaction) "
          f"took {took:.1f} ms (librdkafka retries CONCURRENT_TRANSACTIONS after 500 ms)")
    new.begin("new")
    new.produce(0, b"new", b"written by the new instance", [])
    new.end(True)
    reports = []
    old.p.produce(log.topic, value=b"zombie-2", partition=0, on_delivery=lambda err, msg: reports.append(err))
    # confluent-kafka's flush() raises the transactional producer's fatal error.
    err = expect_fatal("flush() of the fenced instance's produce", lambda: old.p.flush(TIMEOUT_S),
                       ck.KafkaError._FENCED)
    for what, fn in (("commit_transaction", lambda: old.p.commit_transaction(TIMEOUT_S)),
                     ("abort_transaction", lambda: old.p.abort_transaction(TIMEOUT_S)),
                     ("begin_transaction", old.p.begin_transaction)):
        expect_fatal(f"{what} of the fenced instance", fn, ck.KafkaError._FENCED)
    old.p.purge()
    old.p.flush(TIMEOUT_S)
    check([e.code() if e else None for e in reports] == [ck.KafkaError.INVALID_PRODUCER_EPOCH],
          f"the fenced instance's produce: delivery reports {reports}, want one INVALID_PRODUCER_EPOCH")
    for committed in (True, False):
        r = Reader(log, committed)
        r.until("EOF at the end", lambda: r.eof.get(0) == log.hw(0))
        r.compare("fencing")
        r.c.close()
    check(log.hw(0) == 4, f"ckt.fence high watermark {log.hw(0)}, want 4: zombie, ABORT, new, COMMIT")
    print(f"checked: fencing: the old instance's transaction was aborted; its next produce got "
          f"{reports[0].name() if reports and reports[0] else None}, raised as fatal "
          f"{err.name() if err else None} ({err.str() if err else ''}) by flush, commit, abort and begin")


def check_invalid_timeout():
    p = ck.Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": "ckt-bad-timeout",
                     "transaction.timeout.ms": 900001})
    err = expect_fatal("init_transactions with transaction.timeout.ms 900001", lambda: p.init_transactions(TIMEOUT_S),
                       ck.KafkaError.INVALID_TRANSACTION_TIMEOUT)
    ok = ck.Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": "ckt-max-timeout",
                      "transaction.timeout.ms": 900000})
    try:
        ok.init_transactions(TIMEOUT_S)
    except ck.KafkaException as e:
        check(False, f"init_transactions with transaction.timeout.ms 900000: {e.args[0]}")
    print(f"checked: transaction.timeout.ms 900001 -> {err.name() if err else None} ({err.str() if err else ''}); "
          "900000 accepted")


def check_timeout(admin):
    log = Log("ckt.timeout", 1)
    create_topics(admin, [(log.topic, 1)])
    timeout_ms = 2000
    prod, _ = txn_producer(log, "ckt-timeout", "timeout", **{"transaction.timeout.ms": timeout_ms})
    rc = Reader(log, True)
    began = time.monotonic()
    tx = prod.begin("left open")
    for i in range(3):
        prod.produce(0, f"t{i}".encode(), b"left open", [])
    prod.flush()
    check(rc.watermarks(0) == (0, 0), f"read_committed watermarks with the transaction open {rc.watermarks(0)}")
    aborted_at = None
    while time.monotonic() - began < 8:
        lo, hi = rc.watermarks(0)
        if hi != 0:
            aborted_at = time.monotonic()
            check(hi == 4, f"read_committed end offset after the timeout {hi}, want 4 (3 records + ABORT)")
            break
        rc.pump(0.02)
    if check(aborted_at is not None, f"the transaction left open was not aborted {ms(began):.0f} ms after it began"):
        took = ms(began, aborted_at)
        print(f"timing: transaction.timeout.ms {timeout_ms}: the broker aborted the open transaction "
              f"{took:.0f} ms after begin_transaction")
        check(timeout_ms <= took < timeout_ms + 1500,
              f"aborted {took:.0f} ms after begin_transaction, want {timeout_ms}..{timeout_ms + 1500}")
    tx.state = "aborted"
    log.ended(tx)
    err = expect_fatal("commit_transaction after the broker aborted on timeout",
                       lambda: prod.p.commit_transaction(TIMEOUT_S), ck.KafkaError._FENCED)
    again, _ = txn_producer(log, "ckt-timeout", "timeout-2", **{"transaction.timeout.ms": timeout_ms})
    again.begin("after")
    again.produce(0, b"after", b"committed by a new instance", [])
    again.end(True)
    ru = Reader(log, False)
    for r in (rc, ru):
        r.until("EOF at the end", lambda: r.eof.get(0) == log.hw(0))
        r.compare("timeout")
        r.c.close()
    print(f"checked: a transaction left open past transaction.timeout.ms is aborted by the broker; commit then "
          f"raised {err.name() if err else None}; a new instance commits (read_committed "
          f"{[x[1] for x in rc.records[0]]})")


def main():
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    started = time.monotonic()
    for step in (lambda: check_content(admin), lambda: check_open_transaction(admin),
                 lambda: check_consume_transform_produce(admin), lambda: check_fencing(admin),
                 check_invalid_timeout, lambda: check_timeout(admin)):
        try:
            step()
        except Exception as e:  # reported as a failure, with its type
            check(False, f"{type(e).__name__}: {e}")
    print(f"total {time.monotonic() - started:.1f} s")
    if failures:
        sys.exit(f"test_txn_confluent_kafka: {len(failures)} check(s) failed")
    print("test_txn_confluent_kafka: all checks passed")


if __name__ == "__main__":
    main()
