#!/usr/bin/env bash
# Exactly-once consume-transform-produce under crashes, with librdkafka 2.0.2
# (tests/tools/sl_txn.c).
#
# `sl_txn fill` writes N messages "in-<seq>" (idempotent, acks=all) to the
# 4-partition topic ctp.in. Then `sl_txn ctp` (group ctp.group, static member,
# read_committed, one transaction per batch of up to BATCH inputs: an output
# "<in partition>:<in offset>:<in value>" per input to ctp.out, the consumer's
# position sent with send_offsets_to_transaction, commit) runs again and again
# until it exits 0: it went idle with the group's committed offsets equal to
# the input's end offsets. Each run may _exit at random (SL_TXN_CRASH_PCT) at
# one of four points: after begin (before-produce), after its outputs are in
# the log (after-produce), after send_offsets (after-offsets), right after the
# commit (after-commit). Runs 1-4 are each restricted to one of those points at
# 50% per transaction, so every point is hit; later runs use CRASH_PCT at every
# point. Meanwhile the broker is killed (kill -9) BROKER_KILLS times, when the
# committed progress passes 1/3 and 2/3 of N, and restarted on the same data
# dir and port. A restarted ctp's init_transactions aborts what the crashed one
# left open, and it resumes from the committed offsets.
#
# Checks, after the last run:
#   - the read_committed output holds every input exactly once (no duplicate,
#     none missing, none invented), its value intact, in the partition it maps
#     to, and in input order per input partition; kcat with
#     isolation.level=read_committed reads the same;
#   - the group's committed offsets (sl_group_member committed) equal the
#     input's end offsets, partition by partition;
#   - every crash point was hit, no ctp run failed otherwise (exit 1), the
#     broker was killed BROKER_KILLS times and stops cleanly at the end;
#   - the test can fail: the read_uncommitted output must contain duplicates
#     (the aborted transactions' outputs) whenever a run crashed after producing.
#     Observed with the defaults (seed 24629): 4000 inputs, 17 ctp runs (16
#     crashes: 6 before-produce, 3 after-produce, 2 after-offsets, 5
#     after-commit), 2 broker kills, read_committed 4000 outputs each once,
#     read_uncommitted 4200 (200 duplicates), 10 s in all.
#
# Env: N (default 4000), BATCH (40), CRASH_PCT (3, per crash point per
# transaction), BROKER_KILLS (2), LIMIT_S (60: bound on the ctp runs), SEED,
# SLUICE_BIN, SLUICE_TOOLS. Keeps its work dir on failure.
set -uo pipefail

N=${N:-4000}
BATCH=${BATCH:-40}
CRASH_PCT=${CRASH_PCT:-3}
BROKER_KILLS=${BROKER_KILLS:-2}
LIMIT_S=${LIMIT_S:-60}
SEED=${SEED:-$RANDOM}
PARTS=4
IDLE_MS=1500
IN=ctp.in
OUT=ctp.out
GROUP=ctp.group
TXN_ID=ctp.tx
POINTS=(before-produce after-produce after-offsets after-commit)
bin=${SLUICE_BIN:?set SLUICE_BIN to the sluice binary}
tools=${SLUICE_TOOLS:?set SLUICE_TOOLS to the compiled tests/tools dir}
for t in "$bin" "$tools/sl_txn" "$tools/sl_group_member"; do
  [ -x "$t" ] || { echo "FAIL: $t missing: build first (librdkafka-dev: scripts/deps.sh test)" >&2; exit 1; }
done
command -v kcat >/dev/null || { echo "FAIL: kcat not found: run scripts/deps.sh test" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-txn-ctp.XXXXXX")
broker_pid=
ctp_pid=
starts=0
ok=0
cleanup() {
  local pid
  for pid in $ctp_pid $broker_pid; do
    kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  if [ "$ok" -eq 1 ]; then rm -rf "$work"; else echo "txn ctp test: work dir kept: $work" >&2; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
  echo "FAIL: $*" >&2
  local f
  for f in "$work"/broker.*.log; do echo "----- $f (last 15 lines) -----" >&2; tail -n 15 "$f" >&2; done
  exit 1
}

port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
B=127.0.0.1:$port

start_broker() {
  local log=$work/broker.$starts.log
  "$bin" broker --data "$work/data" --listen "$B" --default-partitions "$PARTS" \
    --group-initial-rebalance-delay 0 </dev/null >"$log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 1 200); do
    grep -Eq "listening on $B( |$)" "$log" 2>/dev/null && { starts=$((starts + 1)); return 0; }
    kill -0 "$broker_pid" 2>/dev/null || fail "broker start $starts exited before listening"
    sleep 0.1
  done
  fail "broker start $starts not listening within 20 s"
}

kill_broker() {
  kill -KILL "$broker_pid"
  wait "$broker_pid" 2>/dev/null
  broker_pid=
}

# Input messages whose transaction committed so far (the ctp logs' "commit <n>" lines).
progress() {
  cat "$work"/ctp.*.log 2>/dev/null | awk '$1 == "commit" {s += $2} END {print s + 0}'
}

# Runs ctp once (run $1, crash point $2 or "" for any, percentage $3), killing the broker
# when the progress passes the next threshold; sets rc to the ctp's exit status.
run_ctp() {
  local run=$1 point=$2 pct=$3
  SL_TXN_CRASH_PCT=$pct SL_TXN_CRASH_POINT=$point SL_TXN_SEED=$((SEED * 1000 + run)) \
    "$tools/sl_txn" ctp "$B" "$IN" "$OUT" "$GROUP" "$TXN_ID" "$BATCH" "$IDLE_MS" \
    >"$work/ctp.$run.log" 2>"$work/ctp.$run.err" &
  ctp_pid=$!
  while kill -0 "$ctp_pid" 2>/dev/null; do
    if [ "$kills" -lt "$BROKER_KILLS" ] && [ "$(progress)" -ge $((N * (kills + 1) / (BROKER_KILLS + 1))) ]; then
      kill_broker
      kills=$((kills + 1))
      echo "broker kill -9 #$kills at $(progress) committed inputs (ctp run $run)"
      sleep 0.3
      start_broker
    fi
    [ "$(date +%s)" -lt "$deadline" ] || fail "inputs not all processed within LIMIT_S=$LIMIT_S s ($(progress) of $N)"
    sleep 0.1
  done
  wait "$ctp_pid"
  rc=$?
  ctp_pid=
}

mkdir -p "$work/data"
start_broker
t0=$(date +%s)
"$tools/sl_txn" fill "$B" "$IN" "$N" >"$work/fill.log" 2>&1 || { cat "$work/fill.log" >&2; fail "fill"; }
deadline=$(($(date +%s) + LIMIT_S))
kills=0
runs=0
crashes=0
behind=0
rc=1
while [ "$rc" -ne 0 ]; do
  runs=$((runs + 1))
  if [ "$runs" -le ${#POINTS[@]} ]; then
    run_ctp "$runs" "${POINTS[$((runs - 1))]}" 50
  else
    run_ctp "$runs" "" "$CRASH_PCT"
  fi
  case $rc in
    0) ;;
    42) crashes=$((crashes + 1)) ;;
    3) behind=$((behind + 1)) ;;
    *) cat "$work/ctp.$runs.log" "$work/ctp.$runs.err" >&2; fail "ctp run $runs exited $rc (see above)" ;;
  esac
done
ctp_s=$(($(date +%s) - t0))
[ "$kills" -eq "$BROKER_KILLS" ] || fail "the broker was killed $kills times, want $BROKER_KILLS (the input ran out first)"
for point in "${POINTS[@]}"; do
  n=$(cat "$work"/ctp.*.log | grep -c "^crash $point$")
  [ "$n" -gt 0 ] || fail "no ctp run crashed at $point"
  crash_counts="${crash_counts:-}${crash_counts:+, }$n $point"
done
echo "ctp: $runs runs in $ctp_s s: $crashes crashes ($crash_counts), $behind idle short of the end," \
  "$(cat "$work"/ctp.*.log | grep -c '^abort') aborts after an error, $kills broker kill -9s"

"$tools/sl_txn" consume "$B" "$IN" read_uncommitted >"$work/in" 2>"$work/in.err" || fail "reading $IN: $(tail -n 3 "$work/in.err")"
"$tools/sl_txn" consume "$B" "$OUT" read_committed >"$work/out.rc" 2>"$work/out.rc.err" ||
  fail "reading $OUT read_committed: $(tail -n 3 "$work/out.rc.err")"
"$tools/sl_txn" consume "$B" "$OUT" read_uncommitted >"$work/out.ru" 2>"$work/out.ru.err" ||
  fail "reading $OUT read_uncommitted: $(tail -n 3 "$work/out.ru.err")"
"$tools/sl_group_member" committed -b "$B" -g "$GROUP" -t "$IN" -p "$PARTS" >"$work/committed" 2>"$work/committed.err" ||
  fail "committed offsets of $GROUP: $(tail -n 3 "$work/committed.err")"

/usr/bin/python3 - "$work" "$N" "$PARTS" "$IN" <<'PY' || fail "exactly-once verification (above)"
import collections, sys
work, n, parts, in_topic = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def rows(name):
    return [l.rstrip('\n').split(' ', 2) for l in open(work + '/' + name) if l.strip()]
bad = []
inputs = {(int(p), int(o)): v for p, o, v in rows('in')}
if len(inputs) != n:
    bad.append('input: %d messages, want %d' % (len(inputs), n))
ends = collections.Counter(p for p, _ in inputs)
def outputs(name):
    got = collections.defaultdict(list)   # (in partition, in offset) -> [(out partition, out offset, in value)]
    for p, o, v in rows(name):
        ip, io, iv = v.split(':', 2)
        got[(int(ip), int(io))].append((int(p), int(o), iv))
    return got
rc = outputs('out.rc')
for key, outs in sorted(rc.items()):
    if key not in inputs:
        bad.append('output for input %s that does not exist' % (key,))
    elif len(outs) != 1:
        bad.append('input %s in %d committed outputs: %s' % (key, len(outs), outs))
    elif outs[0][2] != inputs[key] or outs[0][0] != key[0] % parts:
        bad.append('input %s = %r: output %s, want value %r in partition %d' % (key, inputs[key], outs[0], inputs[key], key[0] % parts))
missing = sorted(set(inputs) - set(rc))
if missing:
    bad.append('%d inputs without a committed output, first %s' % (len(missing), missing[:5]))
last = {}
for (ip, io), outs in sorted(rc.items(), key=lambda kv: (kv[1][0][0], kv[1][0][1])):
    if io <= last.get(ip, -1):
        bad.append('input partition %d: offset %d output after offset %d' % (ip, io, last[ip]))
    last[ip] = io
committed = {}
for line in open(work + '/committed'):
    t, p, o = line.split()
    if t == in_topic:
        committed[int(p)] = int(o)
for p in range(parts):
    if committed.get(p) != ends[p]:
        bad.append('partition %d: committed offset %s, want the end offset %d' % (p, committed.get(p), ends[p]))
ru = outputs('out.ru')
total = sum(len(v) for v in ru.values())
print('read_committed: %d outputs, %d distinct inputs; read_uncommitted: %d outputs (%d duplicates from aborted '
      'transactions); committed offsets %s = end offsets' % (sum(len(v) for v in rc.values()), len(rc), total,
      total - len(ru), [committed.get(p) for p in range(parts)]))
open(work + '/ru_dups', 'w').write('%d\n' % (total - len(ru)))
for b in bad[:20]:
    print('  ' + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

produced_crashes=$(cat "$work"/ctp.*.log | grep -c -E '^crash (after-produce|after-offsets)$')
dups=$(cat "$work/ru_dups")
[ "$produced_crashes" -eq 0 ] || [ "$dups" -gt 0 ] ||
  fail "$produced_crashes runs crashed with outputs in the log, yet read_uncommitted shows no duplicate: the check above proves nothing"
kcat -b "$B" -C -t "$OUT" -X isolation.level=read_committed -o beginning -e -q -f '%p %o %s\n' 2>"$work/kcat.err" |
  sort -k1,1n -k2,2n >"$work/out.kcat" || fail "kcat: $(tail -n 3 "$work/kcat.err")"
sort -k1,1n -k2,2n "$work/out.rc" | diff -q - "$work/out.kcat" >/dev/null ||
  fail "kcat read_committed of $OUT differs from sl_txn's ($(wc -l <"$work/out.kcat") vs $(wc -l <"$work/out.rc") lines)"
kill -TERM "$broker_pid"
wait "$broker_pid" || fail "broker exited with $? after SIGTERM"
broker_pid=
echo "txn ctp test: $N inputs each exactly once in the read_committed output after $crashes ctp crashes and" \
  "$kills broker kill -9s; kcat agrees; $dups aborted duplicates visible read_uncommitted (seed $SEED)"
ok=1
