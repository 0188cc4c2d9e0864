#!/usr/bin/env bash
# kill -9 crash test: acknowledged means durable.
#
# One data dir and one port for the whole run. Each iteration:
#   1. two sl_crash_producer instances (codecs none and lz4) produce acks=all
#      as fast as they can to 4 partitions, logging every acknowledged message;
#   2. after a random 0.3-1.5 s the broker gets SIGKILL, then the producers;
#   3. the broker is restarted on the same data dir (recovery);
#   4. sl_crash_verify reads every partition from the beginning and checks that
#      every message acknowledged in ANY iteration so far sits at its
#      acknowledged offset with identical key, value and headers, that offsets
#      have no gaps and that no offset was acknowledged twice.
# Finally the broker must stop cleanly on SIGTERM.
#
# Env: ITER (default 20; e.g. ITER=200 for the long run), SEED (random sleeps),
# RATE (messages/s per producer, default 40000, 0 = unlimited: the cap keeps
# the data, and so each verification, small enough for the short run),
# VERIFY_EVERY (default 1, or 10 when ITER > 50; the last iteration is always verified),
# FLUSH (the broker's --flush mode, default always: a kill -9 loses no page
# cache, so acknowledged messages must survive in every mode),
# SLUICE_BIN, SLUICE_TOOLS (set by ctest). Keeps its work dir on failure.
set -uo pipefail

ITER=${ITER:-20}
VERIFY_EVERY=${VERIFY_EVERY:-$((ITER > 50 ? 10 : 1))}
RATE=${RATE:-40000}
FLUSH=${FLUSH:-always}
SEED=${SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$SEED
TOPIC=crash.t
PARTITIONS=4
bin=${SLUICE_BIN:?set SLUICE_BIN to the sluice binary}
tools=${SLUICE_TOOLS:?set SLUICE_TOOLS to the compiled tests/tools dir}

for t in "$bin" "$tools/sl_crash_producer" "$tools/sl_crash_verify"; do
  [ -x "$t" ] || { echo "FAIL: $t missing: build first (librdkafka-dev: scripts/deps.sh test)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-crash.XXXXXX")
broker_pid=
producer_pids=()
ok=0

cleanup() {
  for pid in "${producer_pids[@]}" $broker_pid; do
    kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  if [ "$ok" -eq 1 ]; then
    rm -rf "$work"
  else
    echo "crash test: work dir kept for inspection: $work (SEED=$SEED)" >&2
  fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
B=127.0.0.1:$port
echo "crash test: $ITER iterations, --flush $FLUSH, seed $SEED, rate $RATE/s per producer, broker $B, data $work/data"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

show_log() {
  echo "----- $1 (last 40 lines) -----" >&2
  tail -n 40 "$1" >&2
}

# Starts the broker on the fixed port; waits up to 20 s for it to listen.
start_broker() {
  local log=$work/broker.$1.log
  "$bin" broker --data "$work/data" --listen "$B" --default-partitions "$PARTITIONS" --flush "$FLUSH" \
    </dev/null >"$log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 1 200); do
    grep -Eq "listening on $B( |$)" "$log" 2>/dev/null && return 0
    if ! kill -0 "$broker_pid" 2>/dev/null; then
      show_log "$log"
      fail "broker start $1 exited before listening on $B"
    fi
    sleep 0.1
  done
  show_log "$log"
  fail "broker start $1 not listening on $B within 20 s"
}

# Complete lines only: a producer killed mid-write may leave a partial last line.
complete_lines() {
  local f
  for f in "$@"; do
    [ -s "$f" ] || continue
    if [ -z "$(tail -c 1 "$f")" ]; then cat "$f"; else sed '$d' "$f"; fi
  done
}

mkdir -p "$work/data"
start_broker 0
total=0
for i in $(seq 1 "$ITER"); do
  producer_pids=()
  inst=0
  for codec in none lz4; do
    "$tools/sl_crash_producer" "$B" "$TOPIC" "$PARTITIONS" "$i" "$inst" "$work/acked.$i.$inst" "$codec" 30 "$RATE" \
      2>"$work/producer.$i.$inst.log" &
    producer_pids+=($!)
    inst=$((inst + 1))
  done
  ms=$((300 + RANDOM % 1201))
  sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
  kill -KILL "$broker_pid"
  wait "$broker_pid" 2>/dev/null
  broker_pid=
  sleep 0.2
  for pid in "${producer_pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  producer_pids=()
  acked=$(complete_lines "$work"/acked."$i".* | wc -l)
  total=$((total + acked))
  start_broker "$i"
  line="iteration $i: killed after ${ms} ms, acked $acked (total $total)"
  if [ $((i % VERIFY_EVERY)) -eq 0 ] || [ "$i" -eq "$ITER" ]; then
    complete_lines "$work"/acked.* | sort -k1,1n -k2,2n >"$work/expected"
    if ! "$tools/sl_crash_verify" "$B" "$TOPIC" "$PARTITIONS" "$work/expected" >"$work/verify.$i.log" 2>&1; then
      echo "$line" >&2
      cat "$work/verify.$i.log" >&2
      show_log "$work/broker.$i.log"
      fail "iteration $i: acknowledged messages missing or altered after kill -9 and restart"
    fi
    line="$line, all present"
  fi
  echo "$line"
done

[ "$total" -gt 0 ] || fail "no message was acknowledged in $ITER iterations: nothing was tested"

kill -TERM "$broker_pid"
for _ in $(seq 1 100); do
  kill -0 "$broker_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$broker_pid" 2>/dev/null && fail "broker still running 10 s after SIGTERM"
wait "$broker_pid"
rc=$?
broker_pid=
[ "$rc" -eq 0 ] || fail "broker exited $rc after SIGTERM (want 0)"

ok=1
echo "crash test: $ITER iterations, $total acknowledged messages, all present"
