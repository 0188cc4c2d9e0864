#!/usr/bin/env bash
# sluice-broker-args: --group-initial-rebalance-delay 0 --group-min-session-timeout 1000
#
# One consumer group, four client libraries, one after the other: the offsets
# each commits are read back by the others, and each continues from there.
# Topic x.cross has 3 partitions of 20 messages ("x-p<P>-<I>" at offset I);
# group x.cross.group.
#
#  1. kcat -G (librdkafka, auto-commit, committed on close) consumes exactly
#     K1=10 messages and exits.
#  2. kafka-python reads the group's offsets (list_consumer_group_offsets):
#     exactly the per-partition counts kcat printed (sum K1), metadata "" (what
#     librdkafka commits). A KafkaConsumer in the group then consumes K2=15 more,
#     must start each partition at that committed offset, and commits what it
#     processed with metadata "py:<P>".
#  3. kafkajs admin.fetchOffsets reads those offsets and the "py:<P>" metadata;
#     confluent-kafka committed() reads the same offsets (it cannot read
#     metadata: confluent-kafka 1.7.0's TopicPartition has none), then consumes
#     K3=15 more from there and commits synchronously.
#  4. kafkajs admin.fetchOffsets reads what confluent-kafka committed (metadata
#     "" where librdkafka committed, "py:<P>" where it did not); a kafkajs
#     consumer in the group consumes the remaining 20 and commits with metadata
#     "js:<P>".
#  5. kafka-python reads the final offsets (= the end offsets) with "js:<P>",
#     and kcat -G -e in the same group then gets nothing.
# At the end, every message was consumed exactly once across the five runs, in
# offset order per partition, with the right value.
# Prints each client's join-to-first-message time where it can measure it.
set -uo pipefail

: "${SLUICE_BOOTSTRAP:?run through tests/compat/run.sh}"
command -v kcat >/dev/null || { echo "FAIL: kcat not found: run scripts/deps.sh test" >&2; exit 1; }
command -v node >/dev/null || { echo "FAIL: node not found: run scripts/deps.sh test" >&2; exit 1; }
# run.sh sets NODE_PATH for .js scripts only; kafkajs lives in tests/compat/node.
export NODE_PATH=${NODE_PATH:-${SLUICE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}/tests/compat/node/node_modules}
node -e "require('kafkajs')" 2>/dev/null ||
  { echo "FAIL: kafkajs not found (NODE_PATH=${NODE_PATH:-}): run scripts/deps.sh test" >&2; exit 1; }
/usr/bin/python3 -c "import kafka, confluent_kafka" 2>/dev/null ||
  { echo "FAIL: kafka-python or confluent-kafka missing: run scripts/deps.sh test" >&2; exit 1; }

export B=$SLUICE_BOOTSTRAP T=x.cross G=x.cross.group
P=3
PER=20
K1=10
K2=15
K3=15
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0

fail() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}

# "P=OFFSET" for each partition with something consumed so far (lines "P OFFSET VALUE").
next_offsets() {
  cat "$@" | awk '{ if (!($1 in n) || $2 + 1 > n[$1]) n[$1] = $2 + 1 } END { for (p in n) print p "=" n[p] }' | sort | paste -sd' '
}

# kafka-python's view of the group's offsets: "P=OFFSET:METADATA ..."
py_offsets() {
  /usr/bin/python3 - <<'EOF'
import os
from kafka import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers=os.environ["B"])
got = admin.list_consumer_group_offsets(os.environ["G"])
print(" ".join(f"{tp.partition}={om.offset}:{om.metadata}" for tp, om in sorted(got.items()) if tp.topic == os.environ["T"]))
admin.close()
EOF
}

# kafkajs's view (admin.fetchOffsets): "P=OFFSET:METADATA ..." (kafkajs turns "" into null; both print as "")
js_offsets() {
  node -e '
const { Kafka, logLevel } = require("kafkajs")
const admin = new Kafka({ clientId: "x-js-admin", brokers: [process.env.B], logLevel: logLevel.NOTHING }).admin()
;(async () => {
  await admin.connect()
  const res = await admin.fetchOffsets({ groupId: process.env.G, topics: [process.env.T] })
  const parts = res[0].partitions.filter(p => p.offset !== "-1").sort((a, b) => a.partition - b.partition)
  console.log(parts.map(p => `${p.partition}=${p.offset}:${p.metadata || ""}`).join(" "))
  await admin.disconnect()
})().catch(e => { console.error(e); process.exit(1) })'
}

# Offsets "P=N ..." with every partition's metadata set to M (M may contain <P>).
with_meta() {
  local out=() kv
  for kv in $1; do out+=("$kv:${2//<P>/${kv%%=*}}"); done
  echo "${out[*]}"
}

# ---- 0. the topic and its messages
/usr/bin/python3 - <<EOF || fail "create topic $T"
from kafka.admin import KafkaAdminClient, NewTopic
a = KafkaAdminClient(bootstrap_servers="$B")
a.create_topics([NewTopic("$T", $P, 1)], timeout_ms=15000)
a.close()
EOF
for p in $(seq 0 $((P - 1))); do
  seq 0 $((PER - 1)) | sed "s/^/x-p$p-/" | kcat -b "$B" -P -t "$T" -p "$p" -X acks=all 2>"$work/err" ||
    fail "kcat produce to [$p]: $(cat "$work/err")"
done
end=$(for p in $(seq 0 $((P - 1))); do echo "$p=$PER"; done | paste -sd' ')

# ---- 1. kcat -G consumes K1 messages; librdkafka commits them when it closes.
t0=$(date +%s%N)
timeout 30 kcat -b "$B" -G "$G" -q -c "$K1" -f '%p %o %s\n' -X client.id=x-kcat \
  -X auto.offset.reset=earliest -X session.timeout.ms=6000 -X heartbeat.interval.ms=500 \
  "$T" >"$work/1.kcat" 2>"$work/err" || fail "kcat -G -c $K1: exit $? $(cat "$work/err")"
echo "timing: kcat -G start to exit after $K1 messages (join, fetch, commit on close): $((($(date +%s%N) - t0) / 1000000)) ms"
[ "$(wc -l <"$work/1.kcat")" -eq "$K1" ] || fail "kcat printed $(wc -l <"$work/1.kcat") messages, want $K1"
want=$(with_meta "$(next_offsets "$work/1.kcat")" "")
got=$(py_offsets)
[ "$got" = "$want" ] && echo "ok: kafka-python reads kcat's commit: $got" ||
  fail "after kcat: kafka-python list_consumer_group_offsets '$got', want '$want' (kcat consumed: $(paste -sd, "$work/1.kcat"))"

# ---- 2. kafka-python continues in the group, K2 messages, commits with metadata.
/usr/bin/python3 - "$K2" >"$work/2.py" 2>"$work/err" <<'EOF' || fail "kafka-python consumer: $(cat "$work/err")"
import os, sys, time
from kafka import KafkaConsumer, TopicPartition, OffsetAndMetadata
want = int(sys.argv[1])
c = KafkaConsumer(bootstrap_servers=os.environ["B"], group_id=os.environ["G"], client_id="x-py",
                  enable_auto_commit=False, auto_offset_reset="earliest",
                  session_timeout_ms=6000, heartbeat_interval_ms=500, fetch_max_wait_ms=100)
c.subscribe([os.environ["T"]])
t0 = time.monotonic()
got, last, first_at = 0, {}, None
while got < want and time.monotonic() - t0 < 20:
    for tp, recs in c.poll(timeout_ms=200, max_records=1).items():
        for r in recs:
            first_at = first_at or time.monotonic()
            print(r.partition, r.offset, r.value.decode())
            last[r.partition] = r.offset
            got += 1
c.commit({TopicPartition(os.environ["T"], p): OffsetAndMetadata(off + 1, f"py:{p}") for p, off in last.items()})
c.close()
if first_at:
    print(f"timing: kafka-python subscribe to first message: {(first_at - t0) * 1000:.0f} ms", file=sys.stderr)
EOF
grep '^timing' "$work/err" || true
[ "$(wc -l <"$work/2.py")" -eq "$K2" ] || fail "kafka-python consumed $(wc -l <"$work/2.py") messages, want $K2"
# Its first message per partition must be the offset kcat committed (no re-delivery, no gap).
for kv in $(next_offsets "$work/1.kcat"); do
  p=${kv%%=*} off=${kv#*=}
  first=$(awk -v p="$p" '$1 == p { print $2; exit }' "$work/2.py")
  [ -z "$first" ] || [ "$first" = "$off" ] || fail "kafka-python started [$p] at $first, kcat committed $off"
done
after_py=$(next_offsets "$work/1.kcat" "$work/2.py")
py_meta=$(next_offsets "$work/2.py" | tr ' ' '\n' | cut -d= -f1 | paste -sd' ')

# ---- 3. kafkajs and confluent-kafka read kafka-python's commits; confluent-kafka continues.
want=""
for kv in $after_py; do
  p=${kv%%=*}
  case " $py_meta " in *" $p "*) m="py:$p" ;; *) m="" ;; esac
  want+="${want:+ }$kv:$m"
done
got=$(js_offsets)
[ "$got" = "$want" ] && echo "ok: kafkajs reads kafka-python's offsets and metadata: $got" ||
  fail "after kafka-python: kafkajs fetchOffsets '$got', want '$want'"

/usr/bin/python3 - "$K3" "$after_py" >"$work/3.ck" 2>"$work/err" <<'EOF' || fail "confluent-kafka consumer: $(cat "$work/err")"
import os, sys, time
import confluent_kafka as ck
want, expect = int(sys.argv[1]), sys.argv[2]
T = os.environ["T"]
c = ck.Consumer({"bootstrap.servers": os.environ["B"], "group.id": os.environ["G"], "client.id": "x-ck",
                 "enable.auto.commit": False, "auto.offset.reset": "earliest",
                 "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 100})
committed = c.committed([ck.TopicPartition(T, p) for p in range(3)], timeout=15)
got = " ".join(f"{tp.partition}={tp.offset}" for tp in committed if tp.offset >= 0)
if got != expect:
    print(f"confluent-kafka committed() before subscribing: '{got}', want '{expect}'", file=sys.stderr)
    sys.exit(1)
print(f"ok: confluent-kafka committed() reads '{got}'", file=sys.stderr)
c.subscribe([T])
t0 = time.monotonic()
n, last, first_at = 0, {}, None
while n < want and time.monotonic() - t0 < 20:
    m = c.poll(0.2)
    if m is None:
        continue
    if m.error():
        print(f"consume error {m.error()}", file=sys.stderr)
        sys.exit(1)
    first_at = first_at or time.monotonic()
    print(m.partition(), m.offset(), m.value().decode())
    last[m.partition()] = m.offset()
    n += 1
res = c.commit(offsets=[ck.TopicPartition(T, p, off + 1) for p, off in last.items()], asynchronous=False)
bad = [tp for tp in res if tp.error is not None]
c.close()
if first_at:
    print(f"timing: confluent-kafka subscribe to first message: {(first_at - t0) * 1000:.0f} ms", file=sys.stderr)
if bad:
    print(f"commit errors: {bad}", file=sys.stderr)
    sys.exit(1)
EOF
grep '^timing\|^ok' "$work/err" || true
[ "$(wc -l <"$work/3.ck")" -eq "$K3" ] || fail "confluent-kafka consumed $(wc -l <"$work/3.ck") messages, want $K3"
for kv in $after_py; do
  p=${kv%%=*} off=${kv#*=}
  first=$(awk -v p="$p" '$1 == p { print $2; exit }' "$work/3.ck")
  [ -z "$first" ] || [ "$first" = "$off" ] || fail "confluent-kafka started [$p] at $first, the group had committed $off"
done
after_ck=$(next_offsets "$work/1.kcat" "$work/2.py" "$work/3.ck")
ck_parts=" $(next_offsets "$work/3.ck" | tr ' ' '\n' | cut -d= -f1 | paste -sd' ') "

# ---- 4. kafkajs reads confluent-kafka's commits and consumes the rest.
want=""
for kv in $after_ck; do
  p=${kv%%=*}
  case "$ck_parts" in
    *" $p "*) m="" ;;                                   # librdkafka commits no metadata
    *) case " $py_meta " in *" $p "*) m="py:$p" ;; *) m="" ;; esac ;;
  esac
  want+="${want:+ }$kv:$m"
done
got=$(js_offsets)
[ "$got" = "$want" ] && echo "ok: kafkajs reads confluent-kafka's offsets: $got" ||
  fail "after confluent-kafka: kafkajs fetchOffsets '$got', want '$want'"

rest=$((P * PER - K1 - K2 - K3))
node -e '
const { Kafka, logLevel } = require("kafkajs")
const want = Number(process.argv[1])
const kafka = new Kafka({ clientId: "x-js", brokers: [process.env.B], logLevel: logLevel.NOTHING })
const consumer = kafka.consumer({ groupId: process.env.G, sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 100 })
const last = {}
let n = 0
let firstAt = null
;(async () => {
  await consumer.connect()
  await consumer.subscribe({ topics: [process.env.T], fromBeginning: true })
  const t0 = Date.now()
  let done
  const finished = new Promise(resolve => { done = resolve })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      if (firstAt === null) firstAt = Date.now()
      console.log(`${partition} ${message.offset} ${message.value.toString()}`)
      last[partition] = Number(message.offset)
      if (++n === want) done()
    }
  })
  const timer = setTimeout(done, 20000)
  await finished
  clearTimeout(timer)
  await consumer.commitOffsets(Object.entries(last).map(([p, off]) =>
    ({ topic: process.env.T, partition: Number(p), offset: String(off + 1), metadata: `js:${p}` })))
  await consumer.disconnect()
  if (firstAt !== null) console.error(`timing: kafkajs run() to first message: ${firstAt - t0} ms`)
})().catch(e => { console.error(e); process.exit(1) })' "$rest" >"$work/4.js" 2>"$work/err" || fail "kafkajs consumer: $(cat "$work/err")"
grep '^timing' "$work/err" || true
[ "$(wc -l <"$work/4.js")" -eq "$rest" ] || fail "kafkajs consumed $(wc -l <"$work/4.js") messages, want $rest"
for kv in $after_ck; do
  p=${kv%%=*} off=${kv#*=}
  first=$(awk -v p="$p" '$1 == p { print $2; exit }' "$work/4.js")
  [ -z "$first" ] || [ "$first" = "$off" ] || fail "kafkajs started [$p] at $first, the group had committed $off"
done

# ---- 5. kafka-python reads kafkajs's commits; kcat in the group finds nothing left.
js_parts=" $(next_offsets "$work/4.js" | tr ' ' '\n' | cut -d= -f1 | paste -sd' ') "
want=""
for kv in $end; do
  p=${kv%%=*}
  case "$js_parts" in
    *" $p "*) m="js:$p" ;;
    *) case "$ck_parts" in *" $p "*) m="" ;; *) case " $py_meta " in *" $p "*) m="py:$p" ;; *) m="" ;; esac ;; esac ;;
  esac
  want+="${want:+ }$kv:$m"
done
got=$(py_offsets)
[ "$got" = "$want" ] && echo "ok: kafka-python reads kafkajs's offsets and metadata: $got" ||
  fail "after kafkajs: kafka-python list_consumer_group_offsets '$got', want '$want'"

timeout 30 kcat -b "$B" -G "$G" -q -e -f '%p %o %s\n' -X client.id=x-kcat2 \
  -X auto.offset.reset=earliest -X session.timeout.ms=6000 -X heartbeat.interval.ms=500 \
  "$T" >"$work/5.kcat" 2>"$work/err" || fail "kcat -G -e: exit $? $(cat "$work/err")"
[ ! -s "$work/5.kcat" ] && echo "ok: kcat -G -e resumes at the end: nothing left" ||
  fail "kcat -G -e after everything was committed consumed: $(head -5 "$work/5.kcat" | paste -sd,)"

# ---- every message exactly once, in order per partition, across the clients.
for p in $(seq 0 $((P - 1))); do
  seq 0 $((PER - 1)) | awk -v p="$p" '{ print p, $1, "x-p" p "-" $1 }' >"$work/want.$p"
  cat "$work/1.kcat" "$work/2.py" "$work/3.ck" "$work/4.js" "$work/5.kcat" | awk -v p="$p" '$1 == p' >"$work/got.$p"
  if diff -u "$work/want.$p" "$work/got.$p" >"$work/diff"; then
    echo "ok: [$p]: $PER messages, each consumed once, in order ($(for f in 1.kcat 2.py 3.ck 4.js; do
      awk -v p="$p" '$1 == p' "$work/$f" | wc -l; done | paste -sd/) by kcat/kafka-python/confluent/kafkajs)"
  else
    fail "[$p]: the messages consumed across the clients differ from the log:"
    head -30 "$work/diff" >&2
  fi
done

if [ "$fails" -ne 0 ]; then
  echo "test_groups_cross: $fails check(s) failed" >&2
  exit 1
fi
echo "test_groups_cross: all checks passed"
