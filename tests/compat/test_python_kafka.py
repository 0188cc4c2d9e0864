#!/usr/bin/python3
"""kafka-python 2.0.2 (pure Python client) against a running broker.

Checks: KafkaAdminClient create_topics (new, existing -> 36, invalid name ->
17), describe_configs, create_partitions, delete_topics, list_topics;
KafkaProducer with acks='all', keys, null keys/values, headers, once per
compression codec kafka-python can use here (none and gzip always; snappy,
lz4, zstd when python3-snappy/-lz4/-zstandard are installed, which
`scripts/deps.sh test` does; a missing one fails the test); every future's
RecordMetadata (partition, consecutive offsets); KafkaConsumer without a group
(assign + seek_to_beginning) reading every partition back and comparing key,
value, headers and offsets; beginning/end offsets and offsets_for_times.
"""
import os
import sys
import time

try:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
    from kafka import errors
    import kafka.codec
except ImportError as e:
    sys.exit(f"FAIL: kafka-python missing ({e}): run scripts/deps.sh test")

BOOTSTRAP = os.environ["SLUICE_BOOTSTRAP"]
TOPIC = "py.data"
PARTITIONS = 3
PER_CODEC = 60
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print(f"FAIL: {msg}", file=sys.stderr)
    return cond


def codecs():
    """Every codec kafka-python supports; a missing library is a failure."""
    have = {"gzip": kafka.codec.has_gzip(), "snappy": kafka.codec.has_snappy(),
            "lz4": kafka.codec.has_lz4(), "zstd": kafka.codec.has_zstd()}
    for name, ok in have.items():
        check(ok, f"kafka-python cannot use {name}: run scripts/deps.sh test")
    return [None] + [name for name, ok in have.items() if ok]


def content(codec, seq):
    """(key, value, headers) as a pure function of (codec, seq)."""
    cname = codec or "none"
    key = None if seq % 20 == 7 else f"k-{cname}-{seq}".encode()
    value = None if seq % 20 == 13 else bytes((seq * 31 + j) % 256 for j in range(seq * 5))
    headers = [("codec", cname.encode()), ("seq", str(seq).encode()), ("empty", b"")]
    return key, value, headers


def admin_call(what, want_error, fn, *args, **kwargs):
    """Runs an admin call; kafka-python raises the broker's error as a class."""
    try:
        fn(*args, **kwargs)
    except errors.KafkaError as e:
        return check(want_error is not None and isinstance(e, want_error),
                     f"{what}: got {type(e).__name__}, want {want_error and want_error.__name__}")
    return check(want_error is None, f"{what}: succeeded, want {want_error and want_error.__name__}")


def check_admin_create(admin):
    admin_call(f"create {TOPIC}", None, admin.create_topics,
               [NewTopic(TOPIC, PARTITIONS, 1)], timeout_ms=15000)
    admin_call(f"create existing {TOPIC}", errors.TopicAlreadyExistsError, admin.create_topics,
               [NewTopic(TOPIC, PARTITIONS, 1)], timeout_ms=15000)
    admin_call("create 'bad topic!'", errors.InvalidTopicError, admin.create_topics,
               [NewTopic("bad topic!", 1, 1)], timeout_ms=15000)
    topics = admin.list_topics()
    check(TOPIC in topics, f"list_topics lacks {TOPIC}: {topics}")
    check("bad topic!" not in topics, "list_topics has 'bad topic!'")


def produce_all():
    """Returns {partition: [(offset, codec, seq)]} from the acknowledgements."""
    acked = {p: [] for p in range(PARTITIONS)}
    for codec in codecs():
        producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all",
                                 compression_type=codec, linger_ms=5, retries=0)
        futures = []
        for seq in range(PER_CODEC):
            key, value, headers = content(codec, seq)
            fut = producer.send(TOPIC, key=key, value=value, headers=headers,
                                partition=seq % PARTITIONS)
            futures.append((seq, fut))
        producer.flush(timeout=15)
        for seq, fut in futures:
            try:
                md = fut.get(timeout=15)
            except Exception as e:  # the test reports every failed send
                check(False, f"send codec={codec} seq={seq}: {e!r}")
                continue
            p = seq % PARTITIONS
            want = len(acked[p])
            if check(md.partition == p and md.offset == want,
                     f"codec={codec} seq={seq}: acked at [{md.partition}]@{md.offset}, want [{p}]@{want}"):
                acked[p].append((md.offset, codec, seq))
        producer.close(timeout=10)
        print(f"checked: produced {PER_CODEC} messages with compression {codec or 'none'}")
    return acked


def consume_all(acked):
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=1000)
    tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    want_total = sum(len(v) for v in acked.values())
    got = {p: [] for p in range(PARTITIONS)}
    deadline = time.time() + 20
    while sum(len(v) for v in got.values()) < want_total and time.time() < deadline:
        for tp, records in consumer.poll(timeout_ms=500).items():
            got[tp.partition].extend(records)
    for p in range(PARTITIONS):
        check(len(got[p]) == len(acked[p]),
              f"[{p}]: consumed {len(got[p])} records, want {len(acked[p])}")
        for rec, (offset, codec, seq) in zip(got[p], acked[p]):
            key, value, headers = content(codec, seq)
            check(rec.offset == offset, f"[{p}] record offset {rec.offset}, want {offset}")
            check((rec.key, rec.value) == (key, value),
                  f"[{p}]@{rec.offset} key/value differ (codec={codec} seq={seq})")
            check(list(rec.headers) == headers,
                  f"[{p}]@{rec.offset} headers {rec.headers}, want {headers}")
    ends = consumer.end_offsets(tps)
    begins = consumer.beginning_offsets(tps)
    for tp in tps:
        check(ends[tp] == len(acked[tp.partition]), f"end offset {tp}: {ends[tp]}")
        check(begins[tp] == 0, f"beginning offset {tp}: {begins[tp]}")
    consumer.close()
    print(f"checked: consumed and compared {want_total} records")


def check_times():
    """offsets_for_times on an uncompressed and a gzip batch of 10 records."""
    base = (int(time.time()) - 3600) * 1000
    for codec in (None, "gzip"):
        topic = f"py.times.{codec or 'none'}"
        producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=100,
                                 compression_type=codec)
        futures = [producer.send(topic, value=b"t%d " % i + b"a" * 200, partition=0,
                                 timestamp_ms=base + i * 1000) for i in range(10)]
        producer.flush(timeout=15)
        offsets = [f.get(timeout=15).offset for f in futures]
        check(offsets == list(range(10)), f"{topic}: acked offsets {offsets}")
        producer.close(timeout=10)
        consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False)
        tp = TopicPartition(topic, 0)
        for delta, want in ((-5000, 0), (0, 0), (1, 1), (3500, 4), (9000, 9), (9001, None)):
            res = consumer.offsets_for_times({tp: base + delta})[tp]
            got = res.offset if res else None
            check(got == want, f"{topic}: offsets_for_times base{delta:+}: {got}, want {want}")
        consumer.close()
    print("checked: offsets_for_times")


def config_map(resp):
    res = resp[0].resources
    check(len(res) == 1 and res[0][0] == 0, f"describe_configs: {res}")
    # v1+ entries: (name, value, read_only, config_source, is_sensitive, synonyms)
    return {e[0]: e for e in res[0][4]} if res else {}


def check_admin_rest(admin):
    t = "py.admin"
    admin_call(f"create {t}", None, admin.create_topics,
               [NewTopic(t, 2, 1, topic_configs={"retention.ms": "86400000"})], timeout_ms=15000)
    configs = config_map(admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t)]))
    ret = configs.get("retention.ms")
    check(ret is not None and ret[1] == "86400000" and ret[3] == 1,
          f"retention.ms entry {ret}: want value 86400000, source DYNAMIC_TOPIC_CONFIG (1)")
    cp = configs.get("cleanup.policy")
    check(cp is not None and cp[1] == "delete" and cp[3] == 5,
          f"cleanup.policy entry {cp}: want value delete, source DEFAULT_CONFIG (5)")
    admin_call(f"create_partitions {t} 4", None, admin.create_partitions,
               {t: NewPartitions(4)}, timeout_ms=15000)
    admin_call(f"create_partitions {t} 1", errors.InvalidPartitionsError, admin.create_partitions,
               {t: NewPartitions(1)}, timeout_ms=15000)
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None)
    parts = consumer.partitions_for_topic(t)
    check(parts == {0, 1, 2, 3}, f"{t} partitions after create_partitions: {parts}")
    consumer.close()
    admin_call(f"delete {t}", None, admin.delete_topics, [t], timeout_ms=15000)
    check(t not in admin.list_topics(), f"{t} still listed after delete")
    admin_call(f"delete missing {t}", errors.UnknownTopicOrPartitionError, admin.delete_topics,
               [t], timeout_ms=15000)
    print("checked: describe_configs, create_partitions, delete_topics")


def step(name, fn, *args):
    """Runs one part; an exception fails the test but not the later parts."""
    try:
        return fn(*args)
    except Exception as e:  # reported as a failure, with its type
        check(False, f"{name}: {type(e).__name__}: {e}")
        return None


def main():
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=15000)
    step("admin create", check_admin_create, admin)
    acked = step("produce", produce_all)
    if acked is not None:
        step("consume", consume_all, acked)
    step("timestamps", check_times)
    step("admin", check_admin_rest, admin)
    admin.close()
    if failures:
        sys.exit(f"test_python_kafka: {len(failures)} check(s) failed")
    print("test_python_kafka: all checks passed")


if __name__ == "__main__":
    main()
