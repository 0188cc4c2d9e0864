#!/usr/bin/python3
# sluice-broker-args: --group-initial-rebalance-delay 0 --group-min-session-timeout 1000
"""confluent-kafka-python 1.7.0 (librdkafka 2.0.2) consumer groups against a running broker.

The members share this thread: librdkafka runs the group protocol in its own
threads and only delivers the rebalance callbacks and messages from poll(),
so polling every member in turn is enough. Auto-commit is off; each member
commits synchronously (commit(offsets=..., asynchronous=False)) after it has
processed a batch from consume().

Checks, on a topic with 4 partitions and group "ckg.group":
- on_assign/on_revoke record every assignment with its generation and member
  id (read from consumer_group_metadata(), see below); member A joins alone
  and gets all 4 partitions, consumes phase 1 and commits;
- member B joins: A's partitions are revoked and the two split them (disjoint,
  union = all, 2 + 2 with librdkafka's default range assignor) in one new
  generation, the same for both;
- AdminClient.list_groups(): the group is Stable with protocol type
  "consumer", protocol "range", both members with their member ids (equal to
  the members' own), client ids, and assignments (the member assignment bytes
  decoded here) equal to what on_assign delivered;
- phase 2 is consumed by the owners; commit(asynchronous=False) returns no
  error per partition; committed() of all 4 partitions (own and the other
  member's) equals position() and the end offsets;
- A.close() sends LeaveGroup: B's next on_assign holds all 4 partitions in a
  higher generation, sooner than B's session timeout (6 s) could expire A; the
  time from close() to that on_assign is printed;
- after B closes the group is Empty with no members and keeps protocol type
  "consumer" (as Kafka does); phase 3 is produced while it is empty; member C resumes from the committed offsets (its first message
  per partition is the committed offset, no re-delivery, no gap), and the
  group is Stable with one member holding everything;
- a member in another process (session.timeout.ms 2000) joins C's group and
  gets half the partitions, then is killed with SIGKILL (no LeaveGroup): the
  broker expires it and C gets all partitions back within the session timeout
  + 3 s (the time is printed);
- over A, B and C every produced message was consumed exactly once, in offset
  order per partition; after C closes the group is Empty and still listed.

Limitations of this client version, which is why these are not checked here:
confluent-kafka 1.7.0's TopicPartition has no `metadata` field (it arrived in
later releases), so commit metadata cannot be written or read through it
(test_groups_python_kafka.py, test_groups_kafkajs.js and test_groups_cross.sh
cover metadata); its AdminClient has list_groups() (ListGroups + DescribeGroups)
but not list_consumer_groups/describe_consumer_groups/delete_consumer_groups,
and the Python binding exposes no generation id: the generation and member id
are read from the bytes of consumer_group_metadata(), librdkafka 2.0.2's
"CGMDv2:" serialization (int32 generation in host order, then the group id
and member id, NUL-terminated); another format fails the test.
Timings printed: join, split, rebalance after close, expiry of a killed member.
"""
import os
import struct
import subprocess
import sys
import time

try:
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError as e:
    sys.exit(f"FAIL: confluent-kafka missing ({e}): run scripts/deps.sh test")

BOOTSTRAP = os.environ["SLUICE_BOOTSTRAP"]
TOPIC = "ckg.split"
GROUP = "ckg.group"
PARTITIONS = 4
ALL = frozenset(range(PARTITIONS))
SESSION_TIMEOUT_MS = 6000
TIMEOUT_S = 15
WAIT_S = 20
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print(f"FAIL: {msg}", file=sys.stderr)
    return cond


def group_metadata(consumer):
    """(generation, member id) from librdkafka's serialized group metadata."""
    raw = consumer.consumer_group_metadata()
    magic = b"CGMDv2:"
    if not check(isinstance(raw, bytes) and raw.startswith(magic),
                 f"consumer_group_metadata() is not librdkafka 2.0.2's CGMDv2 format: {raw!r}"):
        return None, None
    gen = struct.unpack_from("=i", raw, len(magic))[0]
    rest = raw[len(magic) + 4:].split(b"\0")
    group, member = rest[0].decode(), rest[1].decode()
    check(group == GROUP, f"consumer_group_metadata() names group {group!r}")
    return gen, member


class Member:
    def __init__(self, name):
        self.name = name
        self.events = []     # ("assign"|"revoke", monotonic time, frozenset, generation, member id)
        self.records = []    # (partition, offset, value)
        self.commit_errors = []
        self.closed_at = None
        self.consumer = ck.Consumer({
            "bootstrap.servers": BOOTSTRAP, "group.id": GROUP, "client.id": f"ckg-{name}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 500,
            "max.poll.interval.ms": 15000, "fetch.wait.max.ms": 100,
            "topic.metadata.refresh.interval.ms": 5000})
        self.started = time.monotonic()
        self.consumer.subscribe([TOPIC], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer, parts):
        gen, member = group_metadata(consumer)
        self.events.append(("assign", time.monotonic(), frozenset(tp.partition for tp in parts), gen, member))

    def _on_revoke(self, consumer, parts):
        gen, member = group_metadata(consumer)
        self.events.append(("revoke", time.monotonic(), frozenset(tp.partition for tp in parts), gen, member))

    def assigns(self):
        return [e for e in self.events if e[0] == "assign"]

    def latest(self):
        a = self.assigns()
        return a[-1][2] if a else None

    def generation(self):
        a = self.assigns()
        return a[-1][3] if a else None

    def member_id(self):
        a = self.assigns()
        return a[-1][4] if a else None

    def step(self):
        """One poll: processes a batch, then commits it synchronously."""
        msgs = self.consumer.consume(num_messages=100, timeout=0.02)
        last = {}
        for m in msgs:
            if m.error():
                check(False, f"member {self.name}: consume error {m.error()}")
                continue
            self.records.append((m.partition(), m.offset(), m.value()))
            last[m.partition()] = m.offset()
        if last:
            res = self.consumer.commit(offsets=[ck.TopicPartition(TOPIC, p, off + 1) for p, off in last.items()],
                                       asynchronous=False)
            for tp in res or []:
                if tp.error is not None:
                    self.commit_errors.append(f"[{tp.partition}]@{tp.offset}: {tp.error}")

    def close(self):
        self.close_started = time.monotonic()
        self.consumer.close()
        self.closed_at = time.monotonic()


def poll_until(what, members, cond, timeout=WAIT_S):
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            check(False, f"timed out after {timeout} s waiting for {what}")
            return False
        for m in members:
            m.step()
    return True


def value_of(p, off):
    return f"ck-p{p}-o{off}".encode()


def produce(producer, per_partition, end):
    reports = []
    for i in range(per_partition):
        for p in range(PARTITIONS):
            producer.produce(TOPIC, value=value_of(p, end[p] + i), partition=p,
                             on_delivery=lambda err, msg: reports.append((err, msg)))
    check(producer.flush(TIMEOUT_S) == 0, "produce: messages not delivered")
    for err, msg in reports:
        if check(err is None, f"produce: {err}"):
            check(msg.value() == value_of(msg.partition(), msg.offset()),
                  f"produce: {msg.value()!r} acked at [{msg.partition()}]@{msg.offset()}")
    for p in range(PARTITIONS):
        end[p] += per_partition


def decode_assignment(raw):
    """ConsumerProtocol MemberAssignment: version, [topic, [partition]], user data."""
    if not raw:
        return frozenset()
    parts = set()
    pos = 2
    (ntopics,) = struct.unpack_from(">i", raw, pos)
    pos += 4
    for _ in range(ntopics):
        (tlen,) = struct.unpack_from(">h", raw, pos)
        topic = raw[pos + 2:pos + 2 + tlen].decode()
        pos += 2 + tlen
        (n,) = struct.unpack_from(">i", raw, pos)
        ps = struct.unpack_from(f">{n}i", raw, pos + 4)
        pos += 4 + 4 * n
        check(topic == TOPIC, f"assignment names topic {topic}")
        parts.update(ps)
    return frozenset(parts)


def group_info(admin):
    groups = admin.list_groups(GROUP, timeout=TIMEOUT_S)
    check(len(groups) == 1 and groups[0].id == GROUP and groups[0].error is None,
          f"list_groups({GROUP}): {[(g.id, g.error) for g in groups]}")
    return groups[0] if groups else None


def check_exactly_once(members, end):
    seen = {p: [] for p in range(PARTITIONS)}
    for m in members:
        for p in range(PARTITIONS):
            offs = [off for pp, off, _ in m.records if pp == p]
            check(offs == sorted(offs), f"member {m.name} consumed [{p}] out of order")
            seen[p].extend(offs)
        for p, off, v in m.records:
            check(v == value_of(p, off), f"member {m.name} [{p}]@{off}: value {v!r}")
    for p in range(PARTITIONS):
        check(sorted(seen[p]) == list(range(end[p])),
              f"[{p}]: consumed offsets {sorted(seen[p])}, want each of 0..{end[p] - 1} exactly once")
    print(f"checked: {sum(end.values())} messages consumed exactly once across "
          + ", ".join(f"{m.name}={len(m.records)}" for m in members))


KILLED_MEMBER = r"""
import sys, confluent_kafka as ck
c = ck.Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "client.id": "ckg-killed",
                 "enable.auto.commit": False, "session.timeout.ms": int(sys.argv[4]),
                 "heartbeat.interval.ms": 300})
c.subscribe([sys.argv[3]], on_assign=lambda cons, parts: print("assigned", len(parts), flush=True))
while True:
    c.poll(0.1)
"""


def check_session_expiry(c):
    """A member killed with SIGKILL sends no LeaveGroup: the broker must expire
    it after its session timeout and give its partitions back to C."""
    session_ms = 2000
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MEMBER, BOOTSTRAP, GROUP, TOPIC, str(session_ms)],
                            stdout=subprocess.PIPE, text=True)
    try:
        n = len(c.assigns())
        if not poll_until("C to share the partitions with a member in another process", [c],
                          lambda: len(c.assigns()) > n and len(c.latest()) == PARTITIONS // 2):
            return
        line = proc.stdout.readline().strip()
        check(line == f"assigned {PARTITIONS // 2}", f"the other process printed {line!r}")
        n = len(c.assigns())
        proc.kill()
        killed = time.monotonic()
        if poll_until("C to get all partitions back after the other member was killed", [c],
                      lambda: len(c.assigns()) > n and c.latest() == ALL, timeout=15):
            ms = (c.assigns()[-1][1] - killed) * 1000
            print(f"timing: member killed with SIGKILL (session.timeout.ms {session_ms}): "
                  f"survivor reassigned all {PARTITIONS} after {ms:.0f} ms")
            check(ms < session_ms + 3000, f"reassigned {ms:.0f} ms after the kill, want < session timeout + 3 s")
    finally:
        proc.kill()
        proc.wait()
    print("checked: a killed member is expired after its session timeout and C gets everything back")


def run(admin):
    for _, fut in admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)]).items():
        fut.result(timeout=TIMEOUT_S)
    producer = ck.Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "linger.ms": 5})
    end = {p: 0 for p in range(PARTITIONS)}
    produce(producer, 10, end)

    a = Member("a")
    if not poll_until("A's first assignment", [a], lambda: a.assigns()):
        return
    print(f"timing: librdkafka join, subscribe to first on_assign: {(a.assigns()[0][1] - a.started) * 1000:.0f} ms")
    check(a.latest() == ALL, f"A alone assigned {sorted(a.latest())}")
    gen1 = a.generation()
    check(isinstance(gen1, int) and gen1 >= 1, f"A's first generation {gen1}")
    poll_until("A to consume phase 1", [a], lambda: len(a.records) >= sum(end.values()))

    b = Member("b")

    def split():
        la, lb = a.latest(), b.latest()
        return (lb is not None and a.assigns()[-1][1] > b.started and la and lb
                and not (la & lb) and (la | lb) == ALL)
    if not poll_until("A and B to split the partitions", [a, b], split):
        check(False, f"events: A {a.events}, B {b.events}")
        return
    split_ms = (max(a.assigns()[-1][1], b.assigns()[-1][1]) - b.started) * 1000
    print(f"timing: second member's subscribe to both on_assign'ed: {split_ms:.0f} ms")
    check(len(a.latest()) == 2 and len(b.latest()) == 2, f"split {sorted(a.latest())} / {sorted(b.latest())}, want 2 + 2")
    check(a.generation() == b.generation() and a.generation() > gen1,
          f"split generations A {a.generation()} B {b.generation()}, want equal and > {gen1}")
    check(a.member_id() and b.member_id() and a.member_id() != b.member_id(),
          f"member ids A {a.member_id()!r} B {b.member_id()!r}")
    revokes = [e for e in a.events if e[0] == "revoke"]
    check(len(revokes) == 1 and revokes[0][2] == ALL and revokes[0][3] == gen1,
          f"A's on_revoke calls {[(sorted(e[2]), e[3]) for e in revokes]}, want all partitions of generation {gen1} once")
    print(f"checked: split A={sorted(a.latest())} B={sorted(b.latest())} in generation {a.generation()}")

    g = group_info(admin)
    if g is not None:
        check(g.state == "Stable" and g.protocol_type == "consumer" and g.protocol == "range",
              f"list_groups: {g.state}/{g.protocol_type}/{g.protocol}, want Stable/consumer/range")
        got = {m.id: (m.client_id, decode_assignment(m.assignment)) for m in g.members}
        want = {a.member_id(): ("ckg-a", a.latest()), b.member_id(): ("ckg-b", b.latest())}
        check(got == want, f"list_groups members {got}, want {want}")
        check(all(m.client_host for m in g.members), "list_groups: a member without client_host")
    listed = [x.id for x in admin.list_groups(timeout=TIMEOUT_S)]
    check(GROUP in listed, f"list_groups() lists {listed}, lacks {GROUP}")
    print("checked: list_groups (Stable, range, member ids, client ids, decoded assignments)")

    before = {a.name: len(a.records), b.name: len(b.records)}
    produce(producer, 20, end)
    poll_until("A and B to consume phase 2", [a, b], lambda: len(a.records) + len(b.records) >= sum(end.values()))
    t = time.monotonic()
    while time.monotonic() - t < 0.5:  # a duplicate would arrive now
        a.step()
        b.step()
    check(len(a.records) + len(b.records) == sum(end.values()),
          f"consumed {len(a.records) + len(b.records)}, produced {sum(end.values())}")
    for m in (a, b):
        parts = {p for p, _, _ in m.records[before[m.name]:]}
        check(parts <= m.latest(), f"member {m.name} consumed partitions {sorted(parts)} it does not own")
        committed = m.consumer.committed([ck.TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=TIMEOUT_S)
        got = {tp.partition: (tp.offset, tp.error) for tp in committed}
        check(got == {p: (end[p], None) for p in range(PARTITIONS)},
              f"member {m.name}: committed() {got}, want the end offsets {end}")
        pos = {tp.partition: tp.offset for tp in m.consumer.position([ck.TopicPartition(TOPIC, p) for p in m.latest()])}
        check(pos == {p: end[p] for p in m.latest()}, f"member {m.name}: position() {pos}, want {end}")
    print("checked: commit(asynchronous=False) then committed() == position() == end offsets")

    # A leaves; B must be rebalanced at once, not after A's session timeout.
    n = len(b.assigns())
    gen2 = b.generation()
    a.close()
    if poll_until("B to get all partitions after A closed", [b],
                  lambda: len(b.assigns()) > n and b.latest() == ALL, timeout=15):
        after_close = (b.assigns()[-1][1] - a.closed_at) * 1000
        print(f"timing: librdkafka rebalance after close: A.close() took {(a.closed_at - a.close_started) * 1000:.0f} ms; "
              f"from its return to B's on_assign with all {PARTITIONS}: {after_close:.0f} ms")
        check(after_close < SESSION_TIMEOUT_MS / 2,
              f"B was reassigned {after_close:.0f} ms after A's close: LeaveGroup did not trigger the rebalance")
        check(b.generation() > gen2, f"B's generation after A left: {b.generation()}, want > {gen2}")
        kinds = [(e[0], sorted(e[2])) for e in b.events]
        want = [("assign", sorted(b.assigns()[0][2])), ("revoke", sorted(b.assigns()[0][2])), ("assign", sorted(ALL))]
        check(kinds == want, f"B's callbacks {kinds}, want {want}")
    b.close()
    g = group_info(admin)
    if g is not None:
        # Kafka keeps the protocol type of a group whose members all left.
        check((g.state, g.protocol_type, g.protocol, len(g.members)) == ("Empty", "consumer", "", 0),
              f"after both closed: {(g.state, g.protocol_type, g.protocol, len(g.members))}, want Empty/consumer/''/0")
    print("checked: close() rebalances the other member at once; then the group is Empty")

    resume_at = dict(end)
    produce(producer, 5, end)
    c = Member("c")
    poll_until("C to consume phase 3", [c], lambda: len(c.records) >= sum(end.values()) - sum(resume_at.values()))
    if c.assigns():
        print(f"timing: librdkafka join into the empty group: {(c.assigns()[0][1] - c.started) * 1000:.0f} ms")
    t = time.monotonic()
    while time.monotonic() - t < 0.5:
        c.step()
    for p in range(PARTITIONS):
        offs = [off for pp, off, _ in c.records if pp == p]
        check(offs == list(range(resume_at[p], end[p])),
              f"C consumed [{p}] offsets {offs}, want {resume_at[p]}..{end[p] - 1} (resume at the committed offset)")
    g = group_info(admin)
    if g is not None:
        got = [(m.id, m.client_id, sorted(decode_assignment(m.assignment))) for m in g.members]
        check(g.state == "Stable" and got == [(c.member_id(), "ckg-c", sorted(ALL))],
              f"with C alone: {g.state} {got}")
    check_session_expiry(c)
    c.close()
    check_exactly_once([a, b, c], end)
    for m in (a, b, c):
        check(not m.commit_errors, f"member {m.name}: commit errors {m.commit_errors}")
    g = group_info(admin)
    if g is not None:
        check((g.state, g.protocol_type, g.protocol, len(g.members)) == ("Empty", "consumer", "", 0),
              f"after C closed: {(g.state, g.protocol_type, g.protocol, len(g.members))}, want Empty/consumer/''/0")
    listed = [x.id for x in admin.list_groups(timeout=TIMEOUT_S)]
    check(GROUP in listed, f"list_groups() lists {listed}, lacks the empty {GROUP}")
    probe = ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": GROUP, "enable.auto.commit": False})
    got = {tp.partition: tp.offset for tp in
           probe.committed([ck.TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=TIMEOUT_S)}
    check(got == end, f"committed offsets after C: {got}, want {end}")
    probe.close()
    print("checked: C resumed at the committed offsets; the group is Empty and listed")


def main():
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    started = time.monotonic()
    try:
        run(admin)
    except Exception as e:  # reported as a failure, with its type
        check(False, f"{type(e).__name__}: {e}")
    print(f"total {time.monotonic() - started:.1f} s")
    if failures:
        sys.exit(f"test_groups_confluent_kafka: {len(failures)} check(s) failed")
    print("test_groups_confluent_kafka: all checks passed")


if __name__ == "__main__":
    main()
