#!/usr/bin/env bash
# Idempotent producers under faults: every acknowledged message exactly once.
#
# Two librdkafka producers with enable.idempotence=true (sl_crash_producer with
# SL_CRASH_IDEMPOTENT; acks=all, 5 requests in flight, codecs none and lz4)
# write to 4 partitions for PRODUCE_S seconds while the broker
#   - drops the connection after every FAULT_EVERY-th produce it appended
#     (--fault-drop-produce-every): the answer is lost, the client retries a
#     batch that is already in the log;
#   - is killed (kill -9) twice and restarted on the same data dir and port,
#     while the producers keep running and retry what was in flight.
# Then sl_crash_verify (SL_VERIFY_EXACTLY_ONCE) reads every partition: every
# acknowledged message at its acknowledged offset with its content, no gaps,
# and no message of a producer written twice or out of order. The broker logs
# must show that both faults fired and that retried batches were answered
# from producer state (so the test exercised what it claims to).
#
# Env: PRODUCE_S (default 12), RATE (messages/s per producer, default 3000),
# FAULT_EVERY (default 20), SLUICE_BIN, SLUICE_TOOLS. Keeps its work dir on failure.
set -uo pipefail

PRODUCE_S=${PRODUCE_S:-12}
RATE=${RATE:-3000}
FAULT_EVERY=${FAULT_EVERY:-20}
TOPIC=idem.t
PARTITIONS=4
bin=${SLUICE_BIN:?set SLUICE_BIN to the sluice binary}
tools=${SLUICE_TOOLS:?set SLUICE_TOOLS to the compiled tests/tools dir}
for t in "$bin" "$tools/sl_crash_producer" "$tools/sl_crash_verify"; do
  [ -x "$t" ] || { echo "FAIL: $t missing: build first (librdkafka-dev: scripts/deps.sh test)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-idem.XXXXXX")
broker_pid=
producer_pids=()
ok=0
cleanup() {
  for pid in "${producer_pids[@]}" $broker_pid; do
    kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  if [ "$ok" -eq 1 ]; then rm -rf "$work"; else echo "idempotent test: work dir kept: $work" >&2; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/broker.*.log; do echo "----- $f (last 20 lines) -----" >&2; tail -n 20 "$f" >&2; done
  exit 1
}

port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
B=127.0.0.1:$port

start_broker() {
  local log=$work/broker.$1.log
  "$bin" broker --data "$work/data" --listen "$B" --default-partitions "$PARTITIONS" \
    --fault-drop-produce-every "$FAULT_EVERY" </dev/null >"$log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 1 200); do
    grep -Eq "listening on $B( |$)" "$log" 2>/dev/null && return 0
    kill -0 "$broker_pid" 2>/dev/null || fail "broker start $1 exited before listening"
    sleep 0.1
  done
  fail "broker start $1 not listening within 20 s"
}

kill_broker() {
  kill -KILL "$broker_pid"
  wait "$broker_pid" 2>/dev/null
  broker_pid=
}

mkdir -p "$work/data"
start_broker 0
inst=0
for codec in none lz4; do
  SL_CRASH_IDEMPOTENT=1 "$tools/sl_crash_producer" "$B" "$TOPIC" "$PARTITIONS" 1 "$inst" "$work/acked.$inst" \
    "$codec" "$PRODUCE_S" "$RATE" 2>"$work/producer.$inst.log" &
  producer_pids+=($!)
  inst=$((inst + 1))
done
sleep 3
kill_broker
sleep 0.5
start_broker 1
sleep 3
kill_broker
sleep 0.3
start_broker 2
for pid in "${producer_pids[@]}"; do
  for _ in $(seq 1 900); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && fail "producer $pid still running 90 s after its end"
  wait "$pid" || fail "producer $pid exited with $? (see $work/producer.*.log)"
done
producer_pids=()
acked=$(cat "$work"/acked.* | wc -l)
[ "$acked" -gt 1000 ] || fail "only $acked messages acknowledged"
sort -k1,1n -k2,2n "$work"/acked.* >"$work/expected"
SL_VERIFY_EXACTLY_ONCE=1 "$tools/sl_crash_verify" "$B" "$TOPIC" "$PARTITIONS" "$work/expected" >"$work/verify.log" 2>&1 ||
  { cat "$work/verify.log" >&2; fail "verification failed"; }
kill -TERM "$broker_pid"
wait "$broker_pid" || fail "broker exited with $? after SIGTERM"
broker_pid=
drops=$(grep -h -c 'fault injection' "$work"/broker.*.log | paste -sd+ | bc)
retried=0 # each broker logs its running count at 1, 10, 100, 1000, ...: the largest per broker, summed
for f in "$work"/broker.*.log; do
  n=$(grep -o 'idempotent producers: [0-9]* retried' "$f" | awk '$3 > m {m = $3} END {print m + 0}')
  retried=$((retried + n))
done
[ "$drops" -gt 0 ] || fail "the fault hook never dropped a connection"
[ "$retried" -gt 0 ] || fail "no retried batch was answered from producer state: the test did not exercise it"
cat "$work/verify.log"
echo "idempotent test: $acked acknowledged messages, each exactly once in order; $drops connections dropped" \
  "after an append, 2 broker kill -9s; at least $retried retried batches answered from producer state"
ok=1
