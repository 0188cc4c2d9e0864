#!/usr/bin/env bash
# Transactions with librdkafka 2.0.2 (C), through tests/tools/sl_txn.c, and
# kcat 1.7.1 as a second reader. Every topic is read back in full and compared
# with what must be there, line by line ("<partition> <offset> <value>"):
#   a. commit and abort, once per codec (none, gzip, snappy, lz4, zstd; the
#      librdkafka debug log must not say it sent a batch uncompressed): 9
#      transactions of 6 messages over 3 partitions, pattern commit, commit,
#      abort. read_committed (sl_txn consume and kcat -X
#      isolation.level=read_committed) = the 6 committed transactions, in
#      order per partition; read_uncommitted (both readers) = all 9; each
#      committed message sits at the same offset in both;
#   a2. interleaving: six producers at once on one 3-partition topic, 30
#      transactions of 9 messages each, patterns ca, cca, a, c, acc, caa:
#      per producer, read_committed = exactly its committed transactions in
#      order, read_uncommitted = all of them;
#   b. the last stable offset (sl_txn lso, partition 0): with T1 open and a
#      plain message behind it, LSO = T1's first offset and HW = the end; a
#      read_committed reader gets nothing for 1 s, then T1 and the plain
#      message right after commit_transaction; with T2 open the same, and after
#      its abort only the plain message behind it; read_uncommitted gets all
#      (prints how long after the commit/abort the reader had the messages);
#   c. fencing (sl_txn fence): B's init_transactions aborts A's open
#      transaction; A's next produce and commit fail with a fatal _FENCED;
#      read_committed holds only B's messages, read_uncommitted A's too, and
#      A's late message is nowhere;
#   d. the transaction timeout (sl_txn timeout, transaction.timeout.ms 2000):
#      the broker aborts the open transaction (prints when), the producer's
#      commit then fails (prints the error), a new transaction commits;
#      read_committed holds only the new one;
#   e. offsets in a transaction (sl_txn offsets): send_offsets_to_transaction's
#      offset is invisible to OffsetFetch while open, visible after commit,
#      never after an abort;
#   f. init_transactions: transaction.timeout.ms 900000 is accepted, 900001
#      gets INVALID_TRANSACTION_TIMEOUT (fatal).
#
# sluice-broker-args: --default-partitions 3
set -uo pipefail

: "${SLUICE_BOOTSTRAP:?run through tests/compat/run.sh}"
tool=${SLUICE_TOOLS:?}/sl_txn
[ -x "$tool" ] || { echo "FAIL: $tool not built (needs librdkafka-dev: run scripts/deps.sh test)" >&2; exit 1; }
command -v kcat >/dev/null || { echo "FAIL: kcat not found: run scripts/deps.sh test" >&2; exit 1; }
B=$SLUICE_BOOTSTRAP
PARTS=3
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-txn-rdkafka.XXXXXX")
fails=0
ok=0
cleanup() {
  if [ "$ok" -eq 1 ]; then rm -rf "$work"; else echo "txn rdkafka: files kept in $work" >&2; fi
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}

# run NAME ARGS...: runs sl_txn, output in $work/NAME.out (shown), stderr in $work/NAME.err.
run() {
  local name=$1
  shift
  "$tool" "$@" >"$work/$name.out" 2>"$work/$name.err"
  local rc=$?
  sed "s/^/  /" "$work/$name.out"
  if [ $rc -ne 0 ]; then
    fail "sl_txn $1 exited $rc:"
    tail -n 5 "$work/$name.err" | sed "s/^/  /" >&2
  fi
  return $rc
}

# read_topic TOPIC ISOLATION: both readers' "<partition> <offset> <value>", sorted, in
# $work/TOPIC.ISOLATION and $work/TOPIC.ISOLATION.kcat; fails when they differ.
read_topic() {
  local topic=$1 iso=$2 f=$work/$1.$2
  "$tool" consume "$B" "$topic" "$iso" 2>"$f.err" | sort -k1,1n -k2,2n >"$f" ||
    fail "sl_txn consume $topic $iso: $(tail -n 3 "$f.err")"
  kcat -b "$B" -C -t "$topic" -X isolation.level="$iso" -o beginning -e -q -f '%p %o %s\n' 2>"$f.kcat.err" |
    sort -k1,1n -k2,2n >"$f.kcat" || fail "kcat $topic $iso: $(tail -n 3 "$f.kcat.err")"
  if ! diff -u "$f" "$f.kcat" >"$f.kdiff"; then
    fail "$topic $iso: kcat and sl_txn read different things (- sl_txn, + kcat):"
    head -n 20 "$f.kdiff" >&2
    return
  fi
  echo "ok: $topic $iso: kcat reads the same $(wc -l <"$f") messages at the same offsets"
}

# expect_values NAME GOT_FILE WANT_FILE: GOT's "<partition> <value>" lines (offset order) must equal WANT's.
expect_values() {
  local name=$1 got=$2 want=$3
  if ! cut -d' ' -f1,3 "$got" | diff -u "$want" - >"$work/diff"; then
    fail "$name: not what was expected (- expected, + seen):"
    head -n 30 "$work/diff" >&2
    return
  fi
  echo "ok: $name: $(wc -l <"$want") messages as expected"
}

# ---- a. commit and abort, once per codec ----
NTXN=9
NMSG=6
PATTERN=cca
for p in $(seq 0 $((PARTS - 1))); do
  for i in $(seq 0 $((NTXN - 1))); do
    for j in $(seq "$p" "$PARTS" $((NMSG - 1))); do
      echo "$p txn$i-msg$j" >>"$work/want.all"
      [ "${PATTERN:$((i % ${#PATTERN})):1}" = c ] && echo "$p txn$i-msg$j" >>"$work/want.committed"
    done
  done
done
want_lines=$(for i in $(seq 0 $((NTXN - 1))); do
  [ "${PATTERN:$((i % ${#PATTERN})):1}" = c ] && echo "txn $i commit ok" || echo "txn $i abort ok"
done)

# commit_abort CODEC: the transactions to topic txn.CODEC, then both isolation levels read back.
commit_abort() {
  local codec=$1 t=txn.$1
  echo "a. $NTXN transactions of $NMSG messages, pattern $PATTERN, compression $codec"
  SL_TXN_COMPRESSION=$codec SL_RDKAFKA_DEBUG=msg run "produce.$codec" produce "$B" "$t" "$t.tx" "$NTXN" "$NMSG" "$PATTERN"
  [ "$(sed 's/ [0-9]* ms$//' "$work/produce.$codec.out")" = "$want_lines" ] ||
    fail "$t: produce outcomes differ from the pattern"
  ! grep -m1 'not compressing' "$work/produce.$codec.err" || fail "$t: librdkafka sent batches uncompressed"
  read_topic "$t" read_committed
  read_topic "$t" read_uncommitted
  expect_values "$t read_committed (the committed transactions)" "$work/$t.read_committed" "$work/want.committed"
  expect_values "$t read_uncommitted (all, aborted included)" "$work/$t.read_uncommitted" "$work/want.all"
  grep -F -x -f "$work/$t.read_committed" "$work/$t.read_uncommitted" >"$work/$t.same" || true
  cmp -s "$work/$t.same" "$work/$t.read_committed" ||
    fail "$t: read_committed messages are not at the offsets read_uncommitted shows them at"
}

for codec in none gzip snappy lz4 zstd; do commit_abort "$codec"; done

# ---- a2. interleaved transactions of six producers ----
echo "a2. six transactional producers at once, 30 transactions of 9 messages each, interleaved in 3 partitions"
PATTERNS=(ca cca a c acc caa)
pids=()
for k in "${!PATTERNS[@]}"; do
  "$tool" produce "$B" inter.t "inter.$k" 30 9 "${PATTERNS[$k]}" "p$k" >"$work/inter.$k.out" 2>"$work/inter.$k.err" &
  pids+=($!)
done
for k in "${!pids[@]}"; do
  wait "${pids[$k]}" || fail "inter.$k: sl_txn produce exited $? ($(tail -n 2 "$work/inter.$k.err"))"
done
read_topic inter.t read_committed
read_topic inter.t read_uncommitted
for k in "${!PATTERNS[@]}"; do
  pat=${PATTERNS[$k]}
  for p in $(seq 0 $((PARTS - 1))); do
    for i in $(seq 0 29); do
      for j in $(seq "$p" "$PARTS" 8); do
        echo "$p p$k$i-msg$j" >>"$work/want.inter.$k.ru"
        [ "${pat:$((i % ${#pat})):1}" = c ] && echo "$p p$k$i-msg$j" >>"$work/want.inter.$k.rc"
      done
    done
  done
  touch "$work/want.inter.$k.rc"
  for iso in read_committed read_uncommitted; do
    grep " p${k}[0-9]*-msg" "$work/inter.t.$iso" >"$work/inter.t.$iso.$k"
  done
  expect_values "inter.t read_committed, producer $k ($pat)" "$work/inter.t.read_committed.$k" "$work/want.inter.$k.rc"
  expect_values "inter.t read_uncommitted, producer $k ($pat)" "$work/inter.t.read_uncommitted.$k" "$work/want.inter.$k.ru"
done
for iso in read_committed read_uncommitted; do
  want_n=$(cat "$work"/want.inter.*."$([ $iso = read_committed ] && echo rc || echo ru)" | wc -l)
  got_n=$(wc -l <"$work/inter.t.$iso")
  [ "$got_n" -eq "$want_n" ] || fail "inter.t $iso: $got_n messages, want $want_n (some belong to no producer)"
done

# ---- b. the last stable offset ----
echo "b. read_committed stops at the last stable offset"
run lso lso "$B" lso.t lso.tx && grep -qx 'lso: ok' "$work/lso.out" || fail "lso: no 'lso: ok' line"
printf '0 %s\n' lso-T0-m0 lso-T0-m1 lso-T0-m2 lso-T1-m0 lso-T1-m1 lso-T1-m2 lso-plain-1 lso-plain-2 >"$work/want.lso.rc"
printf '0 %s\n' lso-T0-m0 lso-T0-m1 lso-T0-m2 lso-T1-m0 lso-T1-m1 lso-T1-m2 lso-plain-1 lso-T2-m0 lso-T2-m1 \
  lso-T2-m2 lso-plain-2 >"$work/want.lso.ru"
read_topic lso.t read_committed
read_topic lso.t read_uncommitted
expect_values "lso.t read_committed (T2 aborted)" "$work/lso.t.read_committed" "$work/want.lso.rc"
expect_values "lso.t read_uncommitted" "$work/lso.t.read_uncommitted" "$work/want.lso.ru"

# ---- c. fencing ----
echo "c. a second instance fences the first"
run fence fence "$B" fence.t fence.tx
grep -q '^fence: A commit_transaction -> _FENCED fatal=1' "$work/fence.out" ||
  fail "fence: A's commit did not fail with a fatal _FENCED"
for who in A B; do
  for j in $(seq 0 5); do echo "$((j % PARTS)) fence$who-m$j"; done
done | sort -s -k1,1n >"$work/want.fence.ru"
grep ' fenceB-' "$work/want.fence.ru" >"$work/want.fence.rc"
read_topic fence.t read_committed
read_topic fence.t read_uncommitted
expect_values "fence.t read_committed (B only)" "$work/fence.t.read_committed" "$work/want.fence.rc"
expect_values "fence.t read_uncommitted (A's aborted, then B's)" "$work/fence.t.read_uncommitted" "$work/want.fence.ru"

# ---- d. the transaction timeout ----
echo "d. a transaction open past transaction.timeout.ms is aborted by the broker"
run timeout timeout "$B" timeout.t timeout.tx 2000
grep -q '^timeout: commit_transaction after the abort -> ' "$work/timeout.out" ||
  fail "timeout: no failed commit after the broker's abort"
for name in timeout timeout-after; do
  for j in $(seq 0 5); do echo "$((j % PARTS)) $name-m$j"; done
done | sort -s -k1,1n >"$work/want.timeout.ru"
grep ' timeout-after-' "$work/want.timeout.ru" >"$work/want.timeout.rc"
read_topic timeout.t read_committed
read_topic timeout.t read_uncommitted
expect_values "timeout.t read_committed (only the transaction after the timeout)" \
  "$work/timeout.t.read_committed" "$work/want.timeout.rc"
expect_values "timeout.t read_uncommitted (the timed-out one too)" "$work/timeout.t.read_uncommitted" \
  "$work/want.timeout.ru"

# ---- e. offsets in a transaction ----
echo "e. send_offsets_to_transaction: visible at commit only"
run offsets offsets "$B" txn.none offsets.group offsets.tx && grep -qx 'offsets: ok' "$work/offsets.out" ||
  fail "offsets: no 'offsets: ok' line"

# ---- f. init_transactions and transaction.timeout.ms ----
echo "f. transaction.timeout.ms limits"
run init-max init "$B" init.max 900000
run init-over init "$B" init.over 900001
[ "$(cat "$work/init-max.out")" = "init ok" ] || fail "init with 900000: want 'init ok'"
grep -q '^init INVALID_TRANSACTION_TIMEOUT fatal=1' "$work/init-over.out" ||
  fail "init with 900001: want INVALID_TRANSACTION_TIMEOUT (fatal)"

if [ "$fails" -ne 0 ]; then
  echo "txn rdkafka: $fails checks failed" >&2
  exit 1
fi
echo "txn rdkafka: all checks passed"
ok=1
