#!/usr/bin/env bash
# Idempotent producers of confluent-kafka (librdkafka underneath) and kafkajs
# against a broker that drops the connection after every 7th appended produce
# (--fault-drop-produce-every 7), so both clients retry batches that were in
# fact written. Each produces N keyed messages to 3 partitions with
# idempotence on; every message must be acknowledged, and reading the topic
# back (kcat) must show each key exactly once, in order per partition. The
# broker log must show connections dropped and retries answered from producer
# state, or the test did not test anything.
#
# sluice-broker-args: --fault-drop-produce-every 7 --default-partitions 3 --log-level info
set -euo pipefail
: "${SLUICE_BOOTSTRAP:?run through tests/compat/run.sh}"
B=$SLUICE_BOOTSTRAP
N=3000
command -v kcat >/dev/null || { echo "FAIL: kcat not found: run scripts/deps.sh test" >&2; exit 1; }
export NODE_PATH=${NODE_PATH:-$SLUICE_SRC/tests/compat/node/node_modules}
fails=0

# Reads topic $1 back and checks keys "<prefix>-<i>", i = 0..N-1, each once, increasing per partition.
check_topic() {
  local topic=$1 prefix=$2 out
  out=$(kcat -b "$B" -C -t "$topic" -o beginning -e -q -f '%p %k\n')
  if ! printf '%s\n' "$out" | /usr/bin/python3 -c '
import sys
prefix, n = sys.argv[1], int(sys.argv[2])
seen, last, bad = {}, {}, 0
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    p, k = line.split(" ", 1)
    i = int(k.rsplit("-", 1)[1])
    if i in seen:
        bad += 1
        print("duplicate %s in partition %s (first in %s)" % (k, p, seen[i]), file=sys.stderr)
    seen[i] = p
    if i <= last.get(p, -1):
        bad += 1
        print("out of order: %s after %d in partition %s" % (k, last[p], p), file=sys.stderr)
    last[p] = i
missing = [i for i in range(n) if i not in seen]
if missing:
    bad += 1
    print("%d missing, first %s" % (len(missing), missing[:5]), file=sys.stderr)
print("%s: %d messages, each once, in order per partition" % (prefix, len(seen)) if not bad else "%s: %d problems" % (prefix, bad))
sys.exit(1 if bad else 0)
' "$prefix" "$N"; then
    echo "FAIL: $topic" >&2
    fails=$((fails + 1))
  fi
}

/usr/bin/python3 - "$B" "$N" <<'PY' || { echo "FAIL: confluent-kafka producer" >&2; fails=$((fails + 1)); }
import sys
try:
    import confluent_kafka as ck
except ImportError as e:
    sys.exit("FAIL: confluent-kafka missing (%s): run scripts/deps.sh test" % e)
b, n = sys.argv[1], int(sys.argv[2])
p = ck.Producer({"bootstrap.servers": b, "enable.idempotence": True, "linger.ms": 5, "batch.num.messages": 50,
                 "message.timeout.ms": 60000})
errors = []
acked = [0]
def dr(err, msg):
    if err:
        errors.append(str(err))
    else:
        acked[0] += 1
for i in range(n):
    p.produce("idem.ck", key=b"ck-%d" % i, value=b"v", partition=i % 3, on_delivery=dr)
    p.poll(0)
left = p.flush(60)
if left or errors or acked[0] != n:
    sys.exit("FAIL: confluent-kafka: %d acked of %d, %d left, errors %s" % (acked[0], n, left, errors[:3]))
print("confluent-kafka: %d idempotent messages acknowledged" % n)
PY
check_topic idem.ck ck

node - "$B" "$N" <<'JS' || { echo "FAIL: kafkajs producer" >&2; fails=$((fails + 1)); }
const { Kafka, logLevel } = require('kafkajs')
const [broker, n] = [process.argv[2], parseInt(process.argv[3], 10)]
const kafka = new Kafka({ clientId: 'idem', brokers: [broker], logLevel: logLevel.NOTHING,
                          retry: { initialRetryTime: 50, retries: 20 } })
;(async () => {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  let acked = 0
  for (let i = 0; i < n; i += 50) {
    const messages = []
    for (let j = i; j < Math.min(n, i + 50); j++) messages.push({ key: `js-${j}`, value: 'v', partition: j % 3 })
    const res = await producer.send({ topic: 'idem.js', acks: -1, messages })
    acked += messages.length
    if (!res.every(r => r.errorCode === 0)) throw new Error('error in ' + JSON.stringify(res))
  }
  await producer.disconnect()
  if (acked !== n) throw new Error(`acked ${acked} of ${n}`)
  console.log(`kafkajs: ${n} idempotent messages acknowledged`)
})().catch(e => { console.error('FAIL: kafkajs:', e.message); process.exit(1) })
JS
check_topic idem.js js

# run.sh runs this script in its work dir, next to the broker's log
drops=$(grep -c 'fault injection' broker.log || true)
retried=$(grep -c 'retried batch' broker.log || true)
[ "$drops" -gt 0 ] || { echo "FAIL: the broker dropped no connection: nothing was retried" >&2; fails=$((fails + 1)); }
[ "$retried" -gt 0 ] || { echo "FAIL: no retry was answered from producer state" >&2; fails=$((fails + 1)); }
[ "$fails" -eq 0 ] || exit 1
echo "test_idempotent_clients: all checks passed ($drops connections dropped after an append)"
