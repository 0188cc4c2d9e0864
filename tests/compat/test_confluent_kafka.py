#!/usr/bin/python3
"""confluent-kafka-python 1.7.0 (on librdkafka 2.0.2) against a running broker.

Checks: AdminClient create_topics (with configs; existing -> TOPIC_ALREADY_EXISTS;
invalid name -> TOPIC_EXCEPTION), list_topics (broker, partitions, leaders),
describe_configs (value, source, is_default), create_partitions (grow; shrink ->
INVALID_PARTITIONS), delete_topics (then gone; again -> UNKNOWN_TOPIC_OR_PART);
Producer with acks=all per codec (none, gzip, snappy, lz4, zstd) with keys,
null keys/values and headers, every delivery report ok with consecutive offsets;
Consumer reading every partition back through assign() at OFFSET_BEGINNING
(confluent-kafka insists on a group.id, but assign() with explicit offsets
and auto-commit off uses no group API) compared field by field; watermarks
and offsets_for_times.
"""
import logging
import os
import sys
import time

try:
    import confluent_kafka as ck
    from confluent_kafka.admin import (AdminClient, ConfigResource, NewPartitions, NewTopic)
except ImportError as e:
    sys.exit(f"FAIL: confluent-kafka missing ({e}): run scripts/deps.sh test")

BOOTSTRAP = os.environ["SLUICE_BOOTSTRAP"]
TOPIC = "ck.data"
PARTITIONS = 3
PER_CODEC = 80
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
TIMEOUT_S = 15
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print(f"FAIL: {msg}", file=sys.stderr)
    return cond


def content(codec, seq):
    key = None if seq % 20 == 7 else f"k-{codec}-{seq}".encode()
    value = None if seq % 20 == 13 else bytes((seq * 17 + j) % 256 for j in range(seq * 9))
    headers = [("codec", codec.encode()), ("seq", str(seq).encode()), ("bin", bytes([0, 255, seq % 256]))]
    return key, value, headers


def admin_result(what, futures, want_code):
    """Waits for every future of one admin call; want_code None = success."""
    for name, fut in futures.items():
        try:
            fut.result(timeout=TIMEOUT_S)
            check(want_code is None, f"{what} {name}: succeeded, want {want_code}")
        except ck.KafkaException as e:
            code = e.args[0].code()
            check(code == want_code, f"{what} {name}: {e.args[0]}, want {want_code}")


def check_create(admin):
    admin_result("create", admin.create_topics(
        [NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)],
        operation_timeout=TIMEOUT_S), None)
    admin_result("create existing", admin.create_topics(
        [NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)]),
        ck.KafkaError.TOPIC_ALREADY_EXISTS)
    admin_result("create invalid", admin.create_topics(
        [NewTopic("bad topic!", num_partitions=1, replication_factor=1)]),
        ck.KafkaError.TOPIC_EXCEPTION)
    md = admin.list_topics(timeout=TIMEOUT_S)
    check(len(md.brokers) == 1, f"list_topics: brokers {md.brokers}")
    node = next(iter(md.brokers.values()))
    check(f"{node.host}:{node.port}" == BOOTSTRAP, f"broker advertised as {node.host}:{node.port}")
    check(md.controller_id == node.id, f"controller {md.controller_id}, broker {node.id}")
    t = md.topics.get(TOPIC)
    if check(t is not None and t.error is None, f"list_topics: {TOPIC} missing or in error"):
        check(sorted(t.partitions) == list(range(PARTITIONS)), f"{TOPIC} partitions {sorted(t.partitions)}")
        for p in t.partitions.values():
            check(p.leader == node.id and p.replicas == [node.id] and p.isrs == [node.id],
                  f"{TOPIC}[{p.id}] leader {p.leader} replicas {p.replicas} isrs {p.isrs}")
    check("bad topic!" not in md.topics, "list_topics has 'bad topic!'")
    print("checked: create_topics, list_topics")


class RefusalCounter(logging.Handler):
    """Counts librdkafka's "not compressing batch" debug lines: it sends a
    batch uncompressed when the broker's ApiVersions fail its codec gate."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record):
        if "not compressing batch" in record.getMessage():
            self.count += 1


def compressing_producer(conf):
    """A Producer with debug=msg logging into a RefusalCounter."""
    counter = RefusalCounter()
    logger = logging.getLogger(f"librdkafka.{id(counter)}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(counter)
    return ck.Producer(dict(conf, debug="msg"), logger=logger), counter


def produce_all():
    acked = {p: [] for p in range(PARTITIONS)}
    for codec in CODECS:
        reports = []
        producer, refusals = compressing_producer({"bootstrap.servers": BOOTSTRAP, "acks": "all",
                                                   "compression.codec": codec, "linger.ms": 5})
        for seq in range(PER_CODEC):
            key, value, headers = content(codec, seq)
            producer.produce(TOPIC, value=value, key=key, partition=seq % PARTITIONS, headers=headers,
                             on_delivery=lambda err, msg, seq=seq: reports.append((seq, err, msg)))
            producer.poll(0)
        left = producer.flush(TIMEOUT_S)
        check(left == 0, f"codec {codec}: {left} messages not delivered")
        producer.poll(0)
        check(refusals.count == 0, f"codec {codec}: librdkafka sent {refusals.count} batch(es) "
              "UNCOMPRESSED ('Broker does not support compression type')")
        for seq, err, msg in sorted(reports, key=lambda r: r[0]):
            p = seq % PARTITIONS
            if not check(err is None, f"codec {codec} seq {seq}: {err}"):
                continue
            want = len(acked[p])
            if check(msg.partition() == p and msg.offset() == want,
                     f"codec {codec} seq {seq}: at [{msg.partition()}]@{msg.offset()}, want [{p}]@{want}"):
                acked[p].append((want, codec, seq))
        print(f"checked: produced {PER_CODEC} messages with compression {codec}")
    return acked


def consumer_new():
    return ck.Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "sluice-compat-assign-only",
                        "enable.auto.commit": False, "enable.partition.eof": True})


def consume_all(acked):
    consumer = consumer_new()
    consumer.assign([ck.TopicPartition(TOPIC, p, ck.OFFSET_BEGINNING) for p in range(PARTITIONS)])
    got = {p: [] for p in range(PARTITIONS)}
    eof = set()
    deadline = time.time() + 30
    while len(eof) < PARTITIONS and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == ck.KafkaError._PARTITION_EOF:
                if len(got[msg.partition()]) >= len(acked[msg.partition()]):
                    eof.add(msg.partition())
            else:
                check(False, f"consume: {msg.error()}")
            continue
        got[msg.partition()].append(msg)
    for p in range(PARTITIONS):
        check(len(got[p]) == len(acked[p]), f"[{p}]: consumed {len(got[p])}, want {len(acked[p])}")
        for msg, (offset, codec, seq) in zip(got[p], acked[p]):
            key, value, headers = content(codec, seq)
            check(msg.offset() == offset, f"[{p}] offset {msg.offset()}, want {offset}")
            check((msg.key(), msg.value()) == (key, value), f"[{p}]@{offset} key/value differ")
            check((msg.headers() or []) == headers, f"[{p}]@{offset} headers {msg.headers()}, want {headers}")
        lo, hi = consumer.get_watermark_offsets(ck.TopicPartition(TOPIC, p), timeout=TIMEOUT_S)
        check((lo, hi) == (0, len(acked[p])), f"[{p}] watermarks {lo},{hi}, want 0,{len(acked[p])}")
    consumer.close()
    print(f"checked: consumed and compared {sum(len(v) for v in acked.values())} messages, watermarks")


def check_times():
    topic = "ck.times"
    base = (int(time.time()) - 3600) * 1000
    producer, refusals = compressing_producer({"bootstrap.servers": BOOTSTRAP, "acks": "all",
                                               "linger.ms": 100, "compression.codec": "lz4"})
    # Compressible values: librdkafka sends a batch uncompressed when
    # compression would not make it smaller.
    for i in range(10):
        producer.produce(topic, value=b"t%d " % i + b"a" * 200, partition=0, timestamp=base + i * 1000)
    check(producer.flush(TIMEOUT_S) == 0, f"{topic}: not delivered")
    producer.poll(0)
    check(refusals.count == 0, f"{topic}: librdkafka sent the lz4 batch UNCOMPRESSED")
    consumer = consumer_new()
    for delta, want in ((-5000, 0), (0, 0), (1, 1), (3500, 4), (9000, 9), (9001, -1)):
        # One partition per call: a request naming a partition twice is invalid.
        r = consumer.offsets_for_times([ck.TopicPartition(topic, 0, base + delta)], timeout=TIMEOUT_S)[0]
        check(r.error is None and r.offset == want,
              f"offsets_for_times lz4 batch base{delta:+}: {r.offset} {r.error}, want {want}")
    consumer.close()
    print("checked: offsets_for_times")


def check_admin(admin):
    t = "ck.admin"
    admin_result("create", admin.create_topics(
        [NewTopic(t, num_partitions=2, replication_factor=1,
                  config={"retention.ms": "86400000", "retention.bytes": "1073741824"})]), None)
    res = admin.describe_configs([ConfigResource("topic", t)])
    for _, fut in res.items():
        configs = fut.result(timeout=TIMEOUT_S)
        for name, value, default, source in (
                ("retention.ms", "86400000", False, ck.admin.ConfigSource.DYNAMIC_TOPIC_CONFIG),
                ("retention.bytes", "1073741824", False, ck.admin.ConfigSource.DYNAMIC_TOPIC_CONFIG),
                ("cleanup.policy", "delete", True, ck.admin.ConfigSource.DEFAULT_CONFIG)):
            e = configs.get(name)
            check(e is not None and e.value == value and e.is_default == default
                  and e.source in (source, source.value),
                  f"describe_configs {name}: {e and (e.value, e.is_default, e.source)}, "
                  f"want {(value, default, source.value)}")
    admin_result("create_partitions", admin.create_partitions([NewPartitions(t, 5)]), None)
    md = admin.list_topics(topic=t, timeout=TIMEOUT_S)
    check(t in md.topics and len(md.topics[t].partitions) == 5, f"{t} partitions after grow")
    admin_result("shrink", admin.create_partitions([NewPartitions(t, 3)]), ck.KafkaError.INVALID_PARTITIONS)
    admin_result("delete", admin.delete_topics([t], operation_timeout=TIMEOUT_S), None)
    check(t not in admin.list_topics(timeout=TIMEOUT_S).topics, f"{t} listed after delete")
    admin_result("delete again", admin.delete_topics([t]), ck.KafkaError.UNKNOWN_TOPIC_OR_PART)
    print("checked: describe_configs, create_partitions, delete_topics")


def step(name, fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # reported as a failure, with its type
        check(False, f"{name}: {type(e).__name__}: {e}")
        return None


def main():
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    step("create", check_create, admin)
    acked = step("produce", produce_all)
    if acked is not None:
        step("consume", consume_all, acked)
    step("timestamps", check_times)
    step("admin", check_admin, admin)
    if failures:
        sys.exit(f"test_confluent_kafka: {len(failures)} check(s) failed")
    print("test_confluent_kafka: all checks passed")


if __name__ == "__main__":
    main()
