#!/usr/bin/python3
# sluice-broker-args: --group-initial-rebalance-delay 0 --group-min-session-timeout 1000
"""kafka-python 2.0.2 consumer groups against a running broker.

Each KafkaConsumer runs in its own thread, because kafka-python blocks inside
poll() while it rejoins a group, and every call on a consumer is made from its
thread (Member.call). Auto-commit is off: each member commits synchronously
after it has processed what poll() returned.

Checks, on a topic with 4 partitions and group "pyg.group":
- member A joins alone and gets all 4 partitions, consumes phase 1 and commits;
- member B joins: A and B split the partitions (disjoint, union = all, 2 each
  with the default range assignor); phase 2 is then consumed by the owners;
- KafkaAdminClient.describe_consumer_groups: Stable, protocol type "consumer",
  protocol "range", both members with their client ids and the assignments
  the members themselves received; list_consumer_groups lists the group;
- commit() then committed(): equal to the positions and the end offsets, for
  the member's own partitions (cached by kafka-python) and the other member's
  (an OffsetFetch); list_consumer_group_offsets gives the same with metadata "";
- metadata round trip: commit({tp: OffsetAndMetadata(off, "meta-x")}) read back
  by a consumer that never joins (committed(tp, metadata=True)) and by
  list_consumer_group_offsets; a 5000-byte metadata string is refused with
  OffsetMetadataTooLargeError (12) and changes nothing;
- a consumer outside the group (assign(), generation -1) cannot commit while
  the group has members (UNKNOWN_MEMBER_ID -> CommitFailedError), and can once
  it is empty;
- A closes (LeaveGroup): B gets all 4 partitions, in less than half B's
  session timeout (so not by expiry); the time is printed;
- B closes: the group is Empty with no members and keeps protocol type
  "consumer" (as Kafka does: the first member sets it and nothing clears it);
- phase 3 is produced while the group is empty; member C joins and resumes
  from the committed offsets: its first record per partition is the committed
  offset, nothing is re-delivered and there is no gap; while C runs the group
  is Stable with one member holding all 4 partitions;
- over A, B and C every produced record was consumed exactly once, in offset
  order per partition and member;
- after C closes the group is Empty, still listed as ("pyg.group", "consumer"),
  and its offsets are the end offsets;
- delete_consumer_groups: no error; the group is then Dead with no members and
  has no offsets.
Timings printed: join (subscribe to first assignment), split (B's start to
both members holding their halves), rebalance after close.
"""
import os
import queue
import sys
import threading
import time

try:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka import ConsumerRebalanceListener, OffsetAndMetadata
    from kafka.admin import NewTopic
    from kafka import errors
except ImportError as e:
    sys.exit(f"FAIL: kafka-python missing ({e}): run scripts/deps.sh test")

BOOTSTRAP = os.environ["SLUICE_BOOTSTRAP"]
TOPIC = "pyg.split"
GROUP = "pyg.group"
PARTITIONS = 4
ALL = frozenset(range(PARTITIONS))
TPS = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
WAIT_S = 20
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print(f"FAIL: {msg}", file=sys.stderr)
    return cond


def wait_for(what, cond, timeout=WAIT_S):
    """Polls cond() until true; a timeout is a failure. Returns the seconds waited."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            check(False, f"timed out after {timeout} s waiting for {what}")
            return None
        time.sleep(0.02)
    return time.monotonic() - start


class Member(threading.Thread):
    """One KafkaConsumer in the group, polling in its own thread."""

    def __init__(self, name):
        super().__init__(name=f"member-{name}", daemon=True)
        self.name_ = name
        self.started = None
        self.assignments = []    # (monotonic time, frozenset of partitions), one per assignment
        self.revocations = []
        self.records = []        # (partition, offset, value) in the order processed
        self.commit_errors = []
        self.errors = []         # exceptions from poll(); the member keeps polling
        self.closed_at = None
        self._calls = queue.Queue()
        self._halt = threading.Event()
        self.consumer = KafkaConsumer(
            bootstrap_servers=BOOTSTRAP, group_id=GROUP, client_id=f"pyg-{name}",
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=6000, heartbeat_interval_ms=500, max_poll_interval_ms=15000,
            fetch_max_wait_ms=100, request_timeout_ms=20000, metadata_max_age_ms=5000)

    def latest(self):
        return self.assignments[-1][1] if self.assignments else None

    def call(self, fn, timeout=WAIT_S):
        """Runs fn(consumer) on this member's thread and returns its result."""
        done = threading.Event()
        box = {}
        self._calls.put((fn, done, box))
        if not done.wait(timeout):
            raise TimeoutError(f"member {self.name_}: call did not run within {timeout} s")
        if "error" in box:
            raise box["error"]
        return box["value"]

    def stop(self):
        self._halt.set()
        self.join(WAIT_S)
        check(not self.is_alive(), f"member {self.name_} did not stop")

    def run(self):
        member = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                member.revocations.append((time.monotonic(), frozenset(tp.partition for tp in revoked)))

            def on_partitions_assigned(self, assigned):
                member.assignments.append((time.monotonic(), frozenset(tp.partition for tp in assigned)))

        self.started = time.monotonic()
        self.consumer.subscribe([TOPIC], listener=Listener())
        while not self._halt.is_set():
            while not self._calls.empty():
                fn, done, box = self._calls.get()
                try:
                    box["value"] = fn(self.consumer)
                except Exception as e:  # handed back to the caller
                    box["error"] = e
                done.set()
            try:
                batch = self.consumer.poll(timeout_ms=100)
            except Exception as e:  # a failure, reported by the main thread
                self.errors.append(f"poll: {type(e).__name__}: {e}")
                time.sleep(0.1)
                continue
            if not batch:
                continue
            for tp, recs in sorted(batch.items()):
                for r in recs:
                    self.records.append((tp.partition, r.offset, r.value))
            try:
                self.consumer.commit()  # synchronous: every position this member consumed
            except Exception as e:  # a failure; the exactly-once check then fails too
                self.commit_errors.append(f"{type(e).__name__}: {e}")
        try:
            self.consumer.close()
        except Exception as e:
            self.errors.append(f"close: {type(e).__name__}: {e}")
        self.closed_at = time.monotonic()


def value_of(p, off):
    return f"p{p}-o{off}".encode()


def produce(producer, per_partition, next_off):
    futures = []
    for i in range(per_partition):
        for p in range(PARTITIONS):
            off = next_off[p] + i
            futures.append((p, off, producer.send(TOPIC, value=value_of(p, off), partition=p)))
    producer.flush(timeout=15)
    for p, off, fut in futures:
        md = fut.get(timeout=15)
        check((md.partition, md.offset) == (p, off), f"produce: acked [{md.partition}]@{md.offset}, want [{p}]@{off}")
    for p in range(PARTITIONS):
        next_off[p] += per_partition


def consumed(*members):
    return sum(len(m.records) for m in members)


def describe(admin):
    d = admin.describe_consumer_groups([GROUP])
    check(len(d) == 1 and d[0].group == GROUP, f"describe_consumer_groups returned {d}")
    return d[0]


def member_partitions(info):
    """Partitions of TOPIC in a decoded member assignment."""
    if not info.member_assignment:
        return frozenset()
    parts = set()
    for topic, ps in info.member_assignment.assignment:
        check(topic == TOPIC, f"member {info.client_id} assigned topic {topic}")
        parts.update(ps)
    return frozenset(parts)


def check_offsets(admin, want, want_meta, what):
    got = admin.list_consumer_group_offsets(GROUP)
    have = {tp.partition: (om.offset, om.metadata) for tp, om in got.items() if tp.topic == TOPIC}
    expect = {p: (want[p], want_meta.get(p, "")) for p in range(PARTITIONS)}
    check(have == expect, f"{what}: list_consumer_group_offsets {have}, want {expect}")


def check_exactly_once(members, end):
    seen = {p: [] for p in range(PARTITIONS)}
    for m in members:
        per = {p: [off for (pp, off, _) in m.records if pp == p] for p in range(PARTITIONS)}
        for p, offs in per.items():
            check(offs == sorted(offs), f"member {m.name_} consumed [{p}] out of order: {offs}")
            seen[p].extend(offs)
        for p, off, v in m.records:
            check(v == value_of(p, off), f"member {m.name_} [{p}]@{off}: value {v!r}")
    for p in range(PARTITIONS):
        check(sorted(seen[p]) == list(range(end[p])),
              f"[{p}]: consumed offsets {sorted(seen[p])}, want each of 0..{end[p] - 1} exactly once")
    print(f"checked: {sum(end.values())} records consumed exactly once across "
          + ", ".join(f"{m.name_}={len(m.records)}" for m in members))


def run(admin):
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)], timeout_ms=15000)
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    end = {p: 0 for p in range(PARTITIONS)}
    produce(producer, 10, end)

    # Phase 1: A alone gets every partition and consumes everything.
    a = Member("a")
    a.start()
    t = wait_for("A's first assignment", lambda: a.assignments)
    if t is None:
        return
    print(f"timing: kafka-python join, subscribe to first assignment: {(a.assignments[0][0] - a.started) * 1000:.0f} ms")
    check(a.latest() == ALL, f"A alone was assigned {sorted(a.latest())}, want all {PARTITIONS}")
    wait_for("A to consume phase 1", lambda: consumed(a) >= sum(end.values()))

    # B joins: the group rebalances and the two split the partitions.
    b = Member("b")
    b.start()

    def split():
        la, lb = a.latest(), b.latest()
        return (lb is not None and a.assignments[-1][0] > b.started and la and lb
                and not (la & lb) and (la | lb) == ALL)
    if wait_for("A and B to split the partitions", split) is None:
        check(False, f"assignments: A {a.assignments}, B {b.assignments}; errors A {a.errors} B {b.errors}")
        return
    split_ms = (max(a.assignments[-1][0], b.assignments[-1][0]) - b.started) * 1000
    print(f"timing: second member's start to both holding their share: {split_ms:.0f} ms")
    check(len(a.latest()) == 2 and len(b.latest()) == 2,
          f"range assignor split {sorted(a.latest())} / {sorted(b.latest())}, want 2 + 2")
    check(any(r[1] == ALL for r in a.revocations), f"A's revocations {a.revocations}: want all {PARTITIONS} revoked once")
    print(f"checked: split A={sorted(a.latest())} B={sorted(b.latest())}")

    d = describe(admin)
    check(d.state == "Stable" and d.protocol_type == "consumer" and d.protocol == "range",
          f"described {d.state}/{d.protocol_type}/{d.protocol}, want Stable/consumer/range")
    by_client = {m.client_id: m for m in d.members}
    check(sorted(by_client) == ["pyg-a", "pyg-b"], f"described members {sorted(by_client)}")
    if sorted(by_client) == ["pyg-a", "pyg-b"]:
        check(member_partitions(by_client["pyg-a"]) == a.latest()
              and member_partitions(by_client["pyg-b"]) == b.latest(),
              f"described assignments a={sorted(member_partitions(by_client['pyg-a']))} "
              f"b={sorted(member_partitions(by_client['pyg-b']))}, members hold {sorted(a.latest())} / {sorted(b.latest())}")
        check(all(m.member_id and m.client_host for m in d.members), f"member ids/hosts missing: {d.members}")
    groups = admin.list_consumer_groups()
    check((GROUP, "consumer") in groups, f"list_consumer_groups {groups} lacks ({GROUP}, consumer)")
    print("checked: describe_consumer_groups (Stable, 2 members, assignments), list_consumer_groups")

    # Phase 2: each owner consumes its partitions.
    before_a, before_b = len(a.records), len(b.records)
    produce(producer, 20, end)
    wait_for("A and B to consume phase 2", lambda: consumed(a, b) >= sum(end.values()))
    time.sleep(0.5)  # anything extra (a duplicate) would arrive now
    for m, before in ((a, before_a), (b, before_b)):
        parts = {p for p, _, _ in m.records[before:]}
        check(parts <= m.latest(), f"member {m.name_} consumed partitions {sorted(parts)} it does not own")
    check(consumed(a, b) == sum(end.values()), f"consumed {consumed(a, b)} records, produced {sum(end.values())}")

    # commit() and committed(): both members' views, then the broker's through a bystander.
    for m, other in ((a, b), (b, a)):
        got = m.call(lambda c: {tp.partition: (c.committed(tp), c.position(tp) if tp.partition in m.latest() else None)
                                for tp in TPS})
        for p, (committed, position) in got.items():
            check(committed == end[p], f"member {m.name_}: committed([{p}]) = {committed}, want {end[p]}")
            if p in m.latest():
                check(position == committed, f"member {m.name_}: position([{p}]) {position} != committed {committed}")
    check_offsets(admin, end, {}, "after commit()")
    print("checked: commit() then committed() == position == end offset, list_consumer_group_offsets")

    # Metadata round trip, committed by A on one of its partitions.
    mp = min(a.latest())
    tp = TopicPartition(TOPIC, mp)
    a.call(lambda c: c.commit({tp: OffsetAndMetadata(end[mp], "meta-x")}))
    bystander = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=GROUP, enable_auto_commit=False)
    om = bystander.committed(tp, metadata=True)
    check(om is not None and (om.offset, om.metadata) == (end[mp], "meta-x"),
          f"committed({tp}, metadata=True) = {om}, want ({end[mp]}, 'meta-x')")
    check_offsets(admin, end, {mp: "meta-x"}, "after the metadata commit")
    try:
        a.call(lambda c: c.commit({tp: OffsetAndMetadata(end[mp] - 1, "m" * 5000)}))
        check(False, "commit with 5000 bytes of metadata succeeded, want OffsetMetadataTooLargeError")
    except errors.OffsetMetadataTooLargeError:
        pass
    except Exception as e:
        check(False, f"commit with 5000 bytes of metadata: {type(e).__name__}: {e}, want OffsetMetadataTooLargeError")
    om = bystander.committed(tp, metadata=True)
    check(om is not None and (om.offset, om.metadata) == (end[mp], "meta-x"),
          f"after the refused commit: committed = {om}, want ({end[mp]}, 'meta-x')")
    print("checked: metadata 'meta-x' round trip; 5000-byte metadata refused (OffsetMetadataTooLargeError)")

    # A consumer outside the group (assign(), generation -1) may not commit
    # while the group has members: UNKNOWN_MEMBER_ID, which kafka-python
    # raises as CommitFailedError. The offset stays as it was.
    bystander.assign([tp])
    try:
        bystander.commit({tp: OffsetAndMetadata(1, "outsider")})
        check(False, "a commit from outside the group succeeded while the group has members")
    except errors.CommitFailedError:
        pass
    except Exception as e:
        check(False, f"commit from outside the running group: {type(e).__name__}: {e}, want CommitFailedError")
    check_offsets(admin, end, {mp: "meta-x"}, "after the refused outsider commit")
    print("checked: a commit from outside the running group is refused (CommitFailedError)")

    # A leaves: B must get everything without waiting for A's session to expire.
    a.stop()
    n = len(b.assignments)
    if wait_for("B to get all partitions after A closed", lambda: len(b.assignments) > n and b.latest() == ALL,
                timeout=15) is not None:
        ms = (b.assignments[-1][0] - a.closed_at) * 1000
        print(f"timing: kafka-python rebalance after close, A's close() returned to B assigned all "
              f"{PARTITIONS}: {ms:.0f} ms")
        check(ms < 3000, f"B was reassigned {ms:.0f} ms after A's close (session timeout 6000 ms): "
              "LeaveGroup did not trigger the rebalance")
    b.stop()
    d = describe(admin)
    # Kafka keeps an empty group's protocol type (GroupMetadata.protocolType is
    # set by the first member and never cleared) and reports no protocol.
    check((d.state, d.protocol_type, d.protocol, d.members) == ("Empty", "consumer", "", []),
          f"after both closed: {(d.state, d.protocol_type, d.protocol, len(d.members))}, want Empty/consumer/''/0 members")
    print("checked: A's close rebalances B onto all partitions; after both close the group is Empty")

    # Phase 3 while the group is empty; C resumes from the committed offsets.
    # Once the group is empty, a consumer outside it may commit (Kafka's
    # "simple consumer" offset storage); the same offsets, new metadata.
    bystander.commit({TopicPartition(TOPIC, p): OffsetAndMetadata(end[p], "simple") for p in range(PARTITIONS)})
    check_offsets(admin, end, {p: "simple" for p in range(PARTITIONS)}, "after the outsider commit to the empty group")
    bystander.close()
    print("checked: a consumer outside the group commits to it once it is empty")

    resume_at = dict(end)
    produce(producer, 5, end)
    producer.close(timeout=10)
    c = Member("c")
    c.start()
    wait_for("C's first assignment", lambda: c.assignments)
    if c.assignments:
        print(f"timing: kafka-python join of a member into the empty group: {(c.assignments[0][0] - c.started) * 1000:.0f} ms")
    wait_for("C to consume phase 3", lambda: len(c.records) >= sum(end.values()) - sum(resume_at.values()))
    time.sleep(0.5)
    for p in range(PARTITIONS):
        offs = [off for pp, off, _ in c.records if pp == p]
        check(offs == list(range(resume_at[p], end[p])),
              f"C consumed [{p}] offsets {offs}, want {resume_at[p]}..{end[p] - 1} (resume at the committed offset)")
    d = describe(admin)
    check(d.state == "Stable" and len(d.members) == 1 and d.members[0].client_id == "pyg-c"
          and member_partitions(d.members[0]) == ALL,
          f"with C alone: {d.state}, members {[(m.client_id, sorted(member_partitions(m))) for m in d.members]}")
    c.stop()
    check_exactly_once([a, b, c], end)
    for m in (a, b, c):
        check(not m.errors, f"member {m.name_}: {m.errors}")
        check(not m.commit_errors, f"member {m.name_}: commit errors {m.commit_errors}")

    d = describe(admin)
    check((d.state, d.protocol_type, d.protocol, d.members) == ("Empty", "consumer", "", []),
          f"after C closed: {(d.state, d.protocol_type, d.protocol, len(d.members))}, want Empty/consumer/''/0 members")
    groups = admin.list_consumer_groups()
    check((GROUP, "consumer") in groups,
          f"list_consumer_groups {groups} lacks ({GROUP}, consumer): Kafka keeps an empty group's protocol type")
    check_offsets(admin, end, {}, "after C")
    print("checked: C resumed at the committed offsets; the group is Empty and listed; offsets = end offsets")

    res = admin.delete_consumer_groups([GROUP])
    check([(g, e.errno) for g, e in res] == [(GROUP, 0)], f"delete_consumer_groups: {res}")
    d = describe(admin)
    check((d.state, d.members) == ("Dead", []), f"after delete_consumer_groups: {d.state} with {len(d.members)} members")
    left = admin.list_consumer_group_offsets(GROUP)
    check(left == {}, f"after delete_consumer_groups the group has offsets {left}")
    print("checked: delete_consumer_groups; the group is Dead without offsets")


def main():
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=15000)
    started = time.monotonic()
    try:
        run(admin)
    except Exception as e:  # reported as a failure, with its type
        check(False, f"{type(e).__name__}: {e}")
    admin.close()
    print(f"total {time.monotonic() - started:.1f} s")
    if failures:
        sys.exit(f"test_groups_python_kafka: {len(failures)} check(s) failed")
    print("test_groups_python_kafka: all checks passed")


if __name__ == "__main__":
    main()
