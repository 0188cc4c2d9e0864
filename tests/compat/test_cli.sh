#!/usr/bin/env bash
# The `sluice` command as a user meets it: --help texts, usage errors, the
# data-directory lock, --auto-create off, --advertise, --flush os and
# interval:MS with a real client (kcat), and a clean SIGTERM while a
# consumer is long-polling. Starts its own brokers (on free ports, in its own
# temp dirs) besides the one run.sh provides.
set -euo pipefail

: "${SLUICE_BIN:?run through tests/compat/run.sh}"
command -v kcat >/dev/null || { echo "FAIL: kcat not found: run scripts/deps.sh test" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# start NAME ARGS...: starts a broker with data in $work/NAME; sets PID and PORT.
start() {
  local name=$1
  shift
  "$SLUICE_BIN" broker --data "$work/$name" --listen 127.0.0.1:0 "$@" 2>"$work/$name.log" &
  PID=$!
  pids+=("$PID")
  for _ in $(seq 1 200); do
    PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/$name.log" 2>/dev/null | head -1 | sed 's/.*://' || true)
    [ -n "$PORT" ] && return 0
    sleep 0.05
  done
  fail "broker $name did not start: $(cat "$work/$name.log")"
  return 1
}

stop() { # stop PID: SIGTERM, expect exit 0 within 5 s
  local pid=$1 rc=0
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$pid" 2>/dev/null; then fail "broker $pid ignored SIGTERM"; kill -9 "$pid"; fi
  wait "$pid" || rc=$?
  [ "$rc" = 0 ] || fail "broker $pid exited $rc after SIGTERM"
}

# --help texts
"$SLUICE_BIN" --help | grep -q "broker" || fail "sluice --help does not list the broker command"
help=$("$SLUICE_BIN" broker --help)
for opt in --data --listen --advertise --default-partitions --auto-create --flush --max-request-bytes \
  --message-max-bytes --log-level; do
  grep -q -- "$opt" <<<"$help" || fail "sluice broker --help does not explain $opt"
done
"$SLUICE_BIN" --version | grep -q '^sluice [0-9]' || fail "sluice --version"
echo "ok: help texts"

# usage errors: exit 2 and a message naming the problem
expect_usage() {
  local want=$1 rc=0
  shift
  out=$("$SLUICE_BIN" "$@" 2>&1) || rc=$?
  [ "$rc" = 2 ] || fail "'sluice $*' exited $rc, want 2"
  grep -q -- "$want" <<<"$out" || fail "'sluice $*' said '$out', want it to mention '$want'"
}
expect_usage "unknown command" nosuch
expect_usage "--flush" broker --flush sometimes
expect_usage "--listen" broker --listen nope
expect_usage "--default-partitions" broker --default-partitions 0
expect_usage "--auto-create" broker --auto-create maybe
expect_usage "unexpected argument" broker extra
echo "ok: usage errors"

# the data directory lock
start locked
first=$PID
rc=0
out=$("$SLUICE_BIN" broker --data "$work/locked" --listen 127.0.0.1:0 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "a second broker on a held data dir exited $rc, want 1"
grep -q "in use by another sluice broker (pid $first)" <<<"$out" || fail "lock refusal says: $out"
grep -q "ready in [0-9.]* ms" "$work/locked.log" || fail "no start-up time line"
stop "$first"
echo "ok: data directory lock, start-up line"

# --auto-create off: metadata for an unknown topic does not create it
start noauto --auto-create off
if echo "k:v" | timeout 10 kcat -b "127.0.0.1:$PORT" -t never.created -P -K: -X message.timeout.ms=2000 2>/dev/null; then
  fail "produce to an unknown topic succeeded with --auto-create off"
fi
if timeout 10 kcat -b "127.0.0.1:$PORT" -L -J 2>/dev/null | grep -q never.created; then
  fail "--auto-create off created the topic"
fi
stop "$PID"
echo "ok: --auto-create off"

# --advertise: clients are told the advertised address
start adv --advertise localhost:1
timeout 10 kcat -b "127.0.0.1:$PORT" -L -J -m 5 2>/dev/null | grep -q '"name":"localhost:1"' ||
  fail "metadata does not advertise localhost:1: $(timeout 5 kcat -b 127.0.0.1:$PORT -L -J 2>&1 | head -c 300)"
stop "$PID"
echo "ok: --advertise"

# --flush os and interval:MS: same data, acks do not wait for a sync
for mode in os interval:50; do
  name=flush-${mode%%:*}
  start "$name" --flush "$mode"
  seq 1 200 | sed 's/^/k:v/' | timeout 20 kcat -b "127.0.0.1:$PORT" -t fl -P -K: -X acks=all || fail "$mode: produce"
  got=$(timeout 20 kcat -b "127.0.0.1:$PORT" -t fl -C -p 0 -o beginning -e -q -f '%s\n' | wc -l)
  [ "$got" = 200 ] || fail "$mode: consumed $got of 200"
  grep -q "flush $mode\|flush ${mode%%:*}" "$work/$name.log" || fail "$mode: start-up line does not name the mode"
  stop "$PID"
  # after a clean stop, a restart sees everything
  start "$name" --flush "$mode"
  got=$(timeout 20 kcat -b "127.0.0.1:$PORT" -t fl -C -p 0 -o beginning -e -q -f '%s\n' | wc -l)
  [ "$got" = 200 ] || fail "$mode: after restart consumed $got of 200"
  stop "$PID"
done
echo "ok: --flush os, --flush interval:50"

# SIGTERM while a consumer long-polls: answered, clean exit 0
start term
echo "k:v" | timeout 10 kcat -b "127.0.0.1:$PORT" -t lp -P -K:
timeout 20 kcat -b "127.0.0.1:$PORT" -t lp -C -p 0 -o end -X fetch.wait.max.ms=10000 -q >/dev/null 2>&1 &
consumer=$!
sleep 1
t0=$(date +%s%N)
stop "$PID"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 3000 ] || fail "SIGTERM with a parked fetch took $ms ms"
kill "$consumer" 2>/dev/null || true
wait "$consumer" 2>/dev/null || true
grep -q "stopped" "$work/term.log" || fail "no 'stopped' line"
echo "ok: SIGTERM with a parked fetch: exit 0 in $ms ms"

[ "$fails" = 0 ] || { echo "test_cli: $fails check(s) failed" >&2; exit 1; }
