#!/usr/bin/env bash
# kill -9 of the broker under a consuming group: acknowledged commits survive.
#
# One data dir and one port for the whole run; the broker runs with
# --group-initial-rebalance-delay 0 --group-min-session-timeout 1000 and
# --default-partitions 6. A producer (sl_group_member produce) writes keyed
# messages at RATE/s to a 6-partition topic for the whole run and logs every
# acknowledged (partition, offset, seq); three members of one group
# (sl_group_member consume, range, session 3000 ms, heartbeat 500 ms) log
# every processed message and commit synchronously (rd_kafka_commit), logging
# whether the commit succeeded: M1 and M2 right after each message, M3 every
# 10 messages (so a rejoin makes the group process some messages again).
# Then CYCLES times:
#   1. after a random 1-2 s the broker gets kill -9 and restarts on the same
#      data dir and port (members and producer keep running) 0.3 s later; in
#      the last cycle only after session.timeout.ms + 1.5 s, so that the
#      members' sessions run out in librdkafka and they must rejoin;
#   2. committed offsets are intact: for every partition, the highest offset
#      whose commit returned success before the restart is <= what OffsetFetch
#      (sl_group_member committed, i.e. rd_kafka_committed) returns now;
#   3. the group re-forms: every member again holds an assignment of one common
#      generation covering all 6 partitions (or, if the broker kept the group,
#      no member saw a rebalance for a session timeout); prints the time;
#   4. consumption resumes: every partition has a message processed and a
#      commit acknowledged after the restart (prints the times).
# At the end the producer stops, the group drains, the members close, and the
# logs must show: every acknowledged message processed (none skipped), and no
# member ever processed an offset below a commit that had been acknowledged
# before the assignment it was processing under (duplicates come only from
# after the last acknowledged commit; they are counted and printed). Finally
# the broker must stop cleanly on SIGTERM.
#
# Env: CYCLES (default 3), SEED (random sleeps), RATE (messages/s, default
# 200), SLUICE_BIN, SLUICE_TOOLS (set by ctest). Keeps its work dir on failure.
set -uo pipefail

CYCLES=${CYCLES:-3}
RATE=${RATE:-200}
SEED=${SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$SEED
TOPIC=gcrash.t
GROUP=gcrash.g
PARTS=6
SESSION_MS=3000
HEARTBEAT_MS=500
bin=${SLUICE_BIN:?set SLUICE_BIN to the sluice binary}
tools=${SLUICE_TOOLS:?set SLUICE_TOOLS to the compiled tests/tools dir}
tool=$tools/sl_group_member

for t in "$bin" "$tool"; do
  [ -x "$t" ] || { echo "FAIL: $t missing: build first (librdkafka-dev: scripts/deps.sh test)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-groups-crash.XXXXXX")
broker_pid=
declare -A pid=()
ok=0
fails=0

cleanup() {
  local n
  for n in "${!pid[@]}"; do kill -KILL "${pid[$n]}" 2>/dev/null && wait "${pid[$n]}" 2>/dev/null; done
  [ -n "$broker_pid" ] && kill -KILL "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
  if [ "$ok" -eq 1 ]; then
    rm -rf "$work"
  else
    echo "groups crash test: work dir kept for inspection: $work (SEED=$SEED)" >&2
  fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
B=127.0.0.1:$port
echo "groups crash test: $CYCLES broker kills, seed $SEED, $RATE msgs/s, broker $B, data $work/data"

fail() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}

show_log() {
  echo "----- $1 (last 30 lines) -----" >&2
  tail -n 30 "$1" >&2
}

die() {
  fail "$*"
  local f
  for f in "$work"/broker.*.log; do :; done
  show_log "$f"
  exit 1
}

now() { "$tool" now; }

# Starts the broker on the fixed port; waits up to 20 s for it to listen.
start_broker() {
  local log=$work/broker.$1.log
  "$bin" broker --data "$work/data" --listen "$B" --default-partitions "$PARTS" \
    --group-initial-rebalance-delay 0 --group-min-session-timeout 1000 </dev/null >"$log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 1 400); do
    grep -Eq "listening on $B( |$)" "$log" 2>/dev/null && return 0
    kill -0 "$broker_pid" 2>/dev/null || die "broker start $1 exited before listening on $B"
    sleep 0.05
  done
  die "broker start $1 not listening on $B within 20 s"
}

# Complete lines only: a process killed mid-write may leave a partial last line.
complete_lines() {
  local f
  for f in "$@"; do
    [ -s "$f" ] || continue
    if [ -z "$(tail -c 1 "$f")" ]; then cat "$f"; else sed '$d' "$f"; fi
  done
}

# state SINCE_MS LOG...: "OK <gen> <latest assign ms>" when each member's latest
# rebalance event is an ASSIGN later than SINCE_MS, all of one generation,
# owning every partition once; "SAME <gen>" when the same holds for
# assignments none of which changed after SINCE_MS; else "WAIT why".
state() {
  local since=$1
  shift
  awk -v since="$since" -v topic="$TOPIC" -v parts="$PARTS" '
    BEGIN { for (i = 1; i < ARGC; i++) file[i] = ARGV[i] }
    $2 == "ASSIGN" { kind[FILENAME] = "A"; gen[FILENAME] = $3; list[FILENAME] = $6; ts[FILENAME] = $1 }
    $2 == "REVOKE" || $2 == "EXIT" { kind[FILENAME] = $2 }
    ($2 == "ASSIGN" || $2 == "REVOKE") && $1 > since { moved++ }
    END {
      for (i = 1; i < ARGC; i++) {
        f = file[i]
        if (kind[f] != "A") { print "WAIT", f, "has no current assignment"; exit }
        if (gen[f] != gen[file[1]]) { print "WAIT generations differ:", gen[f], gen[file[1]]; exit }
        if (ts[f] <= since) stale++
        n = split(list[f], a, ",")
        for (j = 1; j <= n; j++) if (a[j] != "-") { own[a[j]]++; total++ }
        if (ts[f] > maxts) maxts = ts[f]
      }
      for (p = 0; p < parts; p++)
        if (own[topic ":" p] != 1) { print "WAIT partition", p, "owned", own[topic ":" p] + 0, "times"; exit }
      if (total != parts) { print "WAIT", total, "owned partitions, want", parts; exit }
      if (stale == 0) print "OK", gen[file[1]], maxts
      else if (moved == 0) print "SAME", gen[file[1]]
      else print "WAIT", stale, "members still on their assignment from before"
    }' "$@"
}

logs=("$work/M1.log" "$work/M2.log" "$work/M3.log")

# reform SINCE_MS FROM_MS: waits (30 s max) until `state SINCE_MS` is OK, or
# SAME for a session timeout + 2 s; sets REFORM to a description, with the
# time from FROM_MS.
reform() {
  local since=$1 from=$2 st deadline
  deadline=$((from + 30000))
  while :; do
    st=$(state "$since" "${logs[@]}")
    case "$st" in
      OK*)
        read -r _ gen at <<<"$st"
        REFORM="re-formed in $((at - from)) ms (generation $gen)"
        return 0
        ;;
      SAME*)
        if [ "$(now)" -gt $((from + SESSION_MS + 2000)) ]; then
          REFORM="kept its members and assignment (generation ${st#SAME }), no rebalance"
          return 0
        fi
        ;;
    esac
    [ "$(now)" -lt "$deadline" ] || die "the group did not re-form within 30 s: $st"
    sleep 0.05
  done
}

# resumed SINCE_MS: waits (20 s max) until every partition has a message
# processed and a commit acknowledged after SINCE_MS; sets RESUMED to when the
# last partition got its first of each, from SINCE_MS.
resumed() {
  local since=$1 st deadline=$(($1 + 20000))
  while :; do
    st=$(complete_lines "${logs[@]}" | awk -v since="$since" -v parts="$PARTS" '
      $1 <= since { next }
      $2 == "MSG" && !($5 in first) { first[$5] = $1; if ($1 > last) last = $1 }
      $2 == "COMMIT" && $4 == "OK" {
        n = split($5, a, ",")
        for (j = 1; j <= n; j++) {
          split(a[j], f, ":")
          if (!(f[2] in committed)) { committed[f[2]] = $1; if ($1 > lastc) lastc = $1 }
        }
      }
      END {
        if (length(first) == parts && length(committed) == parts)
          print last - since " ms (messages), " lastc - since " ms (acknowledged commits)"
        else print "WAIT"
      }')
    [ "$st" != WAIT ] && { RESUMED=$st; return 0; }
    [ "$(now)" -lt "$deadline" ] ||
      die "consumption and commits did not resume on every partition within 20 s of the restart"
    sleep 0.1
  done
}

# acked_commits BEFORE_MS: "<partition> <offset>" per partition, the highest
# offset of a commit that returned success before BEFORE_MS.
acked_commits() {
  complete_lines "${logs[@]}" | awk -v before="$1" '
    $2 == "COMMIT" && $4 == "OK" && $1 < before {
      n = split($5, a, ",")
      for (j = 1; j <= n; j++) { split(a[j], f, ":"); if (!(f[2] in c) || f[3] + 0 > c[f[2]]) c[f[2]] = f[3] + 0 }
    }
    END { for (p in c) print p, c[p] }' | sort -n
}

# check_committed CYCLE BEFORE_MS: acknowledged commits <= OffsetFetch now;
# sets COMMITTED to a description.
check_committed() {
  local c=$1 before=$2
  acked_commits "$before" >"$work/acked_commits.$c"
  "$tool" committed -b "$B" -g "$GROUP" -t "$TOPIC" -p "$PARTS" >"$work/committed.$c" 2>"$work/committed.$c.err" ||
    die "cycle $c: OffsetFetch after the restart failed: $(tail -n 3 "$work/committed.$c.err")"
  local bad
  bad=$(awk 'NR == FNR { acked[$1] = $2; next } { got[$2] = $3 }
    END { for (p in acked) if (!(p in got) || got[p] + 0 < acked[p] + 0)
            print "partition " p ": committed " acked[p] " (acknowledged), OffsetFetch after restart " (p in got ? got[p] : "nothing") }' \
    "$work/acked_commits.$c" "$work/committed.$c")
  [ "$(wc -l <"$work/acked_commits.$c")" -gt 0 ] || fail "cycle $c: no commit had been acknowledged before the kill"
  if [ -n "$bad" ]; then
    fail "cycle $c: acknowledged commits lost by the kill -9:"
    echo "$bad" >&2
  fi
  COMMITTED="$(wc -l <"$work/acked_commits.$c") partitions' acknowledged commits intact"
  COMMITTED="$COMMITTED (highest $(awk '{ s = s sep $1 ":" $2; sep = " " } END { print s }' "$work/acked_commits.$c"))"
}

mkdir -p "$work/data"
start_broker 0
"$tool" produce -b "$B" -t "$TOPIC" -p "$PARTS" -r "$RATE" -o "$work/acked" 2>"$work/producer.err" &
pid[producer]=$!
for _ in $(seq 1 100); do
  [ "$(awk '{ p[$1] = 1 } END { print length(p) }' "$work/acked" 2>/dev/null)" = "$PARTS" ] && break
  sleep 0.1
done
[ "$(awk '{ p[$1] = 1 } END { print length(p) }' "$work/acked" 2>/dev/null)" = "$PARTS" ] ||
  die "the producer got no acknowledgement from all $PARTS partitions of $TOPIC in 10 s"

t_join=$(now)
for i in 1 2 3; do
  : >"$work/M$i.log"
  "$tool" consume -b "$B" -g "$GROUP" -t "$TOPIC" -c "M$i" -s "$SESSION_MS" -H "$HEARTBEAT_MS" -a range \
    -C $((i == 3 ? 10 : 1)) -M sync \
    -o "$work/M$i.log" 2>"$work/M$i.err" &
  pid[M$i]=$!
done
reform "$t_join" "$t_join"
echo "group: 3 members joined: $REFORM"

for c in $(seq 1 "$CYCLES"); do
  ms=$((1000 + RANDOM % 1001))
  sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
  kill -KILL "$broker_pid"
  wait "$broker_pid" 2>/dev/null
  broker_pid=
  t_kill=$(now)
  down_ms=$([ "$c" -eq "$CYCLES" ] && echo $((SESSION_MS + 1500)) || echo 300)
  sleep "$((down_ms / 1000)).$(printf '%03d' $((down_ms % 1000)))"
  t_start=$(now)
  start_broker "$c"
  t_up=$(now)
  check_committed "$c" "$t_up"
  reform "$t_kill" "$t_up"
  resumed "$t_up"
  echo "cycle $c: broker killed after ${ms} ms, down $((t_start - t_kill)) ms, listening $((t_up - t_start)) ms" \
    "after its start; $COMMITTED;" \
    "group $REFORM after the restart; consumption resumed on all partitions after $RESUMED"
done

kill -TERM "${pid[producer]}"
wait "${pid[producer]}" || fail "producer exited with an error"
unset "pid[producer]"
echo "producer stopped: $(tail -n 1 "$work/producer.err")"

# missing: acknowledged messages never processed (complete log lines only).
missing() {
  complete_lines "${logs[@]}" | awk 'NR == FNR { want[$1 " " $2] = 1; next }
    $2 == "MSG" { seen[$5 " " $6] = 1 }
    END { for (k in want) if (!(k in seen)) n++; print n + 0 }' "$work/acked" -
}
deadline=$(($(now) + 30000))
until [ "$(missing)" -eq 0 ]; do
  [ "$(now)" -lt "$deadline" ] || { fail "$(missing) acknowledged messages still unprocessed 30 s after the producer stopped"; break; }
  sleep 0.2
done
for n in M1 M2 M3; do kill -TERM "${pid[$n]}"; done
for n in M1 M2 M3; do
  rc=0
  for _ in $(seq 1 150); do kill -0 "${pid[$n]}" 2>/dev/null || break; sleep 0.1; done
  kill -0 "${pid[$n]}" 2>/dev/null && { fail "$n still running 15 s after SIGTERM"; kill -KILL "${pid[$n]}"; }
  wait "${pid[$n]}" || rc=$?
  unset "pid[$n]"
  [ "$rc" -eq 0 ] || fail "$n exited $rc after SIGTERM"
done

# The whole history, merged by time (an ASSIGN before anything else of the same
# ms, so a commit is only held against assignments that surely came after it):
# every processed offset must be >= the highest commit acknowledged before the
# assignment it was processed under; every acknowledged message processed.
for i in 1 2 3; do
  complete_lines "$work/M$i.log" | awk -v m="M$i" '{ print $1, ($2 == "ASSIGN" ? 0 : 1), m, $0 }'
done | sort -s -k1,1n -k2,2n >"$work/history"
read -r n_acked processed missing dups below unacked < <(awk '
  NR == FNR { want[$1 " " $2] = 1; nacked++; next }
  { m = $3; $1 = $2 = $3 = ""; $0 = substr($0, 4) }
  $2 == "COMMIT" && $4 == "OK" {
    n = split($5, a, ",")
    for (j = 1; j <= n; j++) { split(a[j], f, ":"); if (f[3] + 0 > acked[f[2]] + 0) acked[f[2]] = f[3] + 0 }
  }
  $2 == "ASSIGN" {
    n = split($6, a, ",")
    for (j = 1; j <= n; j++) { split(a[j], f, ":"); floor[m, f[2]] = acked[f[2]] + 0 }
  }
  $2 == "MSG" {
    processed++
    k = $5 " " $6
    if (!(k in want)) unacked++
    if (++seen[k] > 1) dups++
    if ($6 + 0 < floor[m, $5] && ++below <= 5)
      print m " processed partition " $5 " offset " $6 " although offset " floor[m, $5] \
        " had been committed (acknowledged) before its assignment" > "/dev/stderr"
  }
  END {
    for (k in want) if (!(k in seen) && ++missing <= 5) print "never processed: partition/offset " k > "/dev/stderr"
    print nacked + 0, processed + 0, missing + 0, dups + 0, below + 0, unacked + 0
  }' "$work/acked" "$work/history")
[ "$missing" -eq 0 ] || fail "$missing of $n_acked acknowledged messages were never processed (skipped)"
[ "$below" -eq 0 ] || fail "$below messages processed again below an acknowledged commit (a commit was lost)"
[ "$n_acked" -gt 0 ] || fail "no message was acknowledged: nothing was tested"
echo "group: $n_acked acknowledged, $processed processed, missing $missing, duplicates $dups" \
  "(all after the last acknowledged commit: $([ "$below" -eq 0 ] && echo yes || echo "no, $below below")) and" \
  "$unacked messages the producer never saw acknowledged (retries after a kill)"

kill -TERM "$broker_pid"
for _ in $(seq 1 100); do
  kill -0 "$broker_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$broker_pid" 2>/dev/null && die "broker still running 10 s after SIGTERM"
wait "$broker_pid"
rc=$?
broker_pid=
[ "$rc" -eq 0 ] || fail "broker exited $rc after SIGTERM (want 0)"
[ "$fails" -eq 0 ] || exit 1
ok=1
echo "groups crash test: $CYCLES broker kills, $n_acked acknowledged messages all processed, every acknowledged commit intact"
