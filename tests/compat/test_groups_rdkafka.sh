#!/usr/bin/env bash
# Consumer groups with librdkafka's high-level consumer (rd_kafka_subscribe),
# driven through tests/tools/sl_group_member.c, whose event logs (one flushed
# line per assignment, revocation, processed message and commit, with the
# generation and a CLOCK_MONOTONIC time in ms) are what every check reads.
#
# A producer writes keyed messages with a sequence number to a 6-partition
# topic (auto-created through --default-partitions 6) at PRODUCE_RATE/s for
# the whole test and logs every acknowledged (partition, offset, seq). Three
# groups consume it at the same time:
#   A: 3 dynamic members, range, commit (sync) after every message (A3, the
#      one to be SIGKILLed, every 10 messages);
#   B: 2 dynamic members, roundrobin, async commits every 5 messages;
#   S: 3 static members (group.instance.id), range, commit_message after each.
# Checks:
#   a. A's 3 members settle with every partition owned by exactly one member,
#      2 each (prints the join time: first member started -> settled);
#   b. SIGKILL of an A member (no LeaveGroup): the 2 survivors own all 6
#      partitions (3 each) within session.timeout.ms + REBALANCE_MARGIN_MS
#      (prints kill -> survivors' assignments cover the topic);
#   c. SIGTERM of another A member (rd_kafka_consumer_close -> LeaveGroup):
#      the last one owns all 6 in less than session.timeout.ms (prints it);
#   e. SIGKILL of static member S2 and its restart with the same instance id
#      within the session timeout: it gets the same partitions back in the
#      same generation, and S1/S3 log no revocation or assignment for longer
#      than a session timeout after the kill;
#   d. bookkeeping, per group, after the producer stopped and the groups
#      drained: no partition assigned to two members in one generation, no
#      message processed by two members in one generation (S2 and its restart
#      count as one member: the same instance id), every acknowledged message
#      processed (missing must be 0) with the key it was produced with, no
#      offset processed below a commit acknowledged before the assignment it
#      was processed under (no acknowledged commit lost in a rebalance), and
#      the duplicates (at-least-once redelivery) counted and printed;
#   f. publish/subscribe: each of the three groups received every message.
#
# sluice-broker-args: --group-initial-rebalance-delay 0 --group-min-session-timeout 1000 --default-partitions 6
set -uo pipefail

: "${SLUICE_BOOTSTRAP:?run through tests/compat/run.sh}"
tool=${SLUICE_TOOLS:?}/sl_group_member
[ -x "$tool" ] || { echo "FAIL: $tool not built (needs librdkafka-dev: run scripts/deps.sh test)" >&2; exit 1; }

B=$SLUICE_BOOTSTRAP
TOPIC=groups.t
PARTS=6
SESSION_MS=3000     # groups A and B
HEARTBEAT_MS=500
STATIC_SESSION_MS=6000
REBALANCE_MARGIN_MS=${REBALANCE_MARGIN_MS:-3000}
PRODUCE_RATE=${PRODUCE_RATE:-100}
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-groups.XXXXXX")
declare -A pid=()
fails=0
ok=0

cleanup() {
  local n
  for n in "${!pid[@]}"; do kill -KILL "${pid[$n]}" 2>/dev/null && wait "${pid[$n]}" 2>/dev/null; done
  if [ "$ok" -eq 1 ]; then rm -rf "$work"; else echo "groups: logs kept in $work" >&2; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}

die() {
  fail "$*"
  local f
  for f in "$work"/*.err; do
    [ -s "$f" ] && { echo "----- $f (last 15 lines) -----" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}

now() { "$tool" now; }

# member NAME GROUP ARGS...: starts a consumer logging to $work/NAME.log.
member() {
  local name=$1 group=$2
  shift 2
  : >"$work/$name.log"
  "$tool" consume -b "$B" -g "$group" -t "$TOPIC" -c "$name" -o "$work/$name.log" "$@" 2>"$work/$name.err" &
  pid[$name]=$!
}

# term NAME: SIGTERM (rd_kafka_consumer_close: revocation, then LeaveGroup).
term() { kill -TERM "${pid[$1]}" 2>/dev/null; }

# reap NAME: after `term`, the member must exit 0 within 15 s, logging its EXIT.
reap() {
  local name=$1 rc=0
  for _ in $(seq 1 150); do kill -0 "${pid[$name]}" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "${pid[$name]}" 2>/dev/null; then
    fail "$name still running 15 s after SIGTERM (rd_kafka_consumer_close hangs)"
    kill -KILL "${pid[$name]}"
  fi
  wait "${pid[$name]}" || rc=$?
  unset "pid[$name]"
  [ "$rc" -eq 0 ] || fail "$name exited $rc after SIGTERM"
  grep -q ' EXIT signal ' "$work/$name.log" || fail "$name logged no EXIT after SIGTERM"
}

# crash NAME: SIGKILL.
crash() {
  kill -KILL "${pid[$1]}"
  wait "${pid[$1]}" 2>/dev/null
  unset "pid[$1]"
}

# assignment MINGEN LOG...: "OK <gen> <latest assign ms> <count,count,...>" when
# each member's latest rebalance event is an ASSIGN of one common generation
# > MINGEN and together they own every partition exactly once; else "WAIT why".
assignment() {
  local mingen=$1
  shift
  awk -v mingen="$mingen" -v topic="$TOPIC" -v parts="$PARTS" '
    BEGIN { for (i = 1; i < ARGC; i++) file[i] = ARGV[i] }
    $2 == "ASSIGN" { kind[FILENAME] = "A"; gen[FILENAME] = $3; cnt[FILENAME] = $5; list[FILENAME] = $6; ts[FILENAME] = $1 }
    $2 == "REVOKE" || $2 == "EXIT" { kind[FILENAME] = $2 }
    END {
      for (i = 1; i < ARGC; i++) {
        f = file[i]
        if (kind[f] != "A") { print "WAIT", f, "has no current assignment"; exit }
        if (gen[f] + 0 <= mingen + 0) { print "WAIT", f, "still in generation", gen[f]; exit }
        if (gen[f] != gen[file[1]]) { print "WAIT generations differ:", gen[f], gen[file[1]]; exit }
        n = split(list[f], a, ",")
        for (j = 1; j <= n; j++) if (a[j] != "-") { own[a[j]]++; total++ }
        if (ts[f] > maxts) maxts = ts[f]
        counts = counts (i > 1 ? "," : "") cnt[f]
      }
      for (p = 0; p < parts; p++)
        if (own[topic ":" p] != 1) { print "WAIT partition", p, "owned", own[topic ":" p] + 0, "times"; exit }
      if (total != parts) { print "WAIT", total, "owned partitions, want", parts; exit }
      print "OK", gen[file[1]], maxts, counts
    }' "$@"
}

# settle TIMEOUT_MS MINGEN NAME...: waits for `assignment`; sets GEN, AT_MS, COUNTS.
settle() {
  local timeout=$1 mingen=$2 deadline st logs=()
  shift 2
  for n in "$@"; do logs+=("$work/$n.log"); done
  deadline=$(($(now) + timeout))
  while :; do
    st=$(assignment "$mingen" "${logs[@]}")
    if [ "${st%% *}" = OK ]; then
      read -r _ GEN AT_MS COUNTS <<<"$st"
      return 0
    fi
    [ "$(now)" -lt "$deadline" ] || die "members $* did not settle within $timeout ms: $st"
    sleep 0.05
  done
}

# ---- start: producer (creates the topic), then the three groups ----

"$tool" produce -b "$B" -t "$TOPIC" -p "$PARTS" -r "$PRODUCE_RATE" -o "$work/acked" 2>"$work/producer.err" &
pid[producer]=$!
for _ in $(seq 1 100); do
  [ "$(awk '{ p[$1] = 1 } END { print length(p) }' "$work/acked" 2>/dev/null)" = "$PARTS" ] && break
  sleep 0.1
done
[ "$(awk '{ p[$1] = 1 } END { print length(p) }' "$work/acked")" = "$PARTS" ] ||
  die "the producer got no acknowledgement from all $PARTS partitions of $TOPIC in 10 s"
echo "ok: producer running at $PRODUCE_RATE msgs/s to $TOPIC ($PARTS partitions)"

dyn=(-s "$SESSION_MS" -H "$HEARTBEAT_MS")
t_join=$(now)
# A3, the member to be SIGKILLed, commits every 10 messages: what it processed
# after its last commit must be processed again by the survivors.
for i in 1 2 3; do member "A$i" grp.a "${dyn[@]}" -a range -C $((i == 3 ? 10 : 1)) -M sync; done
for i in 1 2; do member "B$i" grp.b "${dyn[@]}" -a roundrobin -C 5 -M async; done
for i in 1 2 3; do
  member "S$i" grp.s -i "static-$i" -s "$STATIC_SESSION_MS" -H "$HEARTBEAT_MS" -a range -C 1 -M message
done

# a. three members settle, two partitions each
settle 20000 -1 A1 A2 A3
join_ms=$((AT_MS - t_join))
[ "$COUNTS" = "2,2,2" ] || fail "a: A's members own $COUNTS partitions, want 2,2,2"
echo "ok: a. group A: 3 members joined in $join_ms ms (generation $GEN), partitions per member $COUNTS"
gen_a=$GEN
settle 20000 -1 B1 B2
echo "ok: group B (roundrobin): 2 members settled, generation $GEN, partitions $COUNTS"
sleep 1.5

# b. SIGKILL: no LeaveGroup; the coordinator must expire the session
crash A3
t_kill=$(now)
settle $((SESSION_MS + REBALANCE_MARGIN_MS + 5000)) "$gen_a" A1 A2
kill_ms=$((AT_MS - t_kill))
gen_b=$GEN
[ "$COUNTS" = "3,3" ] || fail "b: survivors own $COUNTS partitions, want 3,3"
[ "$kill_ms" -le $((SESSION_MS + REBALANCE_MARGIN_MS)) ] ||
  fail "b: rebalance after SIGKILL took $kill_ms ms > session.timeout.ms $SESSION_MS + $REBALANCE_MARGIN_MS"
echo "ok: b. rebalance after SIGKILL: $kill_ms ms (session.timeout.ms $SESSION_MS), generation $gen_b, partitions $COUNTS"
[ "$kill_ms" -ge $((SESSION_MS - HEARTBEAT_MS - 200)) ] ||
  echo "note: b. faster than the session timeout: the member was expired before its session ran out"
sleep 1

# c. graceful close: LeaveGroup, the partitions move at once
stop_at=$(now)
term A2
settle $((SESSION_MS + 5000)) "$gen_b" A1
leave_ms=$((AT_MS - stop_at))
reap A2
[ "$COUNTS" = 6 ] || fail "c: the last member owns $COUNTS partitions, want 6"
[ "$leave_ms" -lt "$SESSION_MS" ] ||
  fail "c: rebalance after a graceful leave took $leave_ms ms, not less than session.timeout.ms $SESSION_MS"
echo "ok: c. rebalance after graceful leave (LeaveGroup): $leave_ms ms, generation $GEN"

# e. static membership: a restart within the session timeout is no rebalance
settle 20000 -1 S1 S2 S3
gen_s=$GEN
s_counts=$COUNTS
s2_parts=$(awk '$2 == "ASSIGN" { l = $6 } END { print l }' "$work/S2.log")
crash S2
t_kill=$(now)
member S2b grp.s -i static-2 -s "$STATIC_SESSION_MS" -H "$HEARTBEAT_MS" -a range -C 1 -M message
deadline=$((t_kill + STATIC_SESSION_MS))
until grep -q ' ASSIGN ' "$work/S2b.log"; do
  [ "$(now)" -lt "$deadline" ] || die "e: the restarted static member got no assignment within $STATIC_SESSION_MS ms"
  sleep 0.05
done
read -r s2b_ms s2b_gen s2b_parts < <(awk '$2 == "ASSIGN" { print $1, $3, $6; exit }' "$work/S2b.log")
[ "$s2b_parts" = "$s2_parts" ] || fail "e: the restarted static member got $s2b_parts, it had $s2_parts"
[ "$s2b_gen" = "$gen_s" ] || fail "e: the restarted static member joined generation $s2b_gen, the group was in $gen_s"
# Longer than a session timeout: the old member id must not expire into a rebalance either.
sleep "$(awk -v ms=$((t_kill + STATIC_SESSION_MS + 2000 - $(now))) 'BEGIN { print (ms > 0 ? ms : 0) / 1000 }')"
for n in S1 S2b S3; do
  ev=$(awk -v t="$t_kill" -v n="$n" '$1 > t && ($2 == "ASSIGN" || $2 == "REVOKE") { c++ }
    END { print c + 0 - (n == "S2b") }' "$work/$n.log")
  [ "$ev" -eq 0 ] || fail "e: $n logged $ev unexpected assignment/revocation events after the static restart"
done
settle 1000 $((gen_s - 1)) S1 S2b S3
[ "$GEN" = "$gen_s" ] || fail "e: static group moved from generation $gen_s to $GEN"
echo "ok: e. static member restart: assigned $((s2b_ms - t_kill)) ms after the SIGKILL, same partitions" \
  "($s2_parts), same generation $gen_s, no rebalance on the others for $((STATIC_SESSION_MS + 2000)) ms" \
  "(partitions per member $s_counts)"

# d, f. stop producing, let every group drain, close the members
term producer
wait "${pid[producer]}" || fail "producer exited with an error"
unset "pid[producer]"
acked=$(wc -l <"$work/acked")
echo "ok: producer stopped: $(tail -n 1 "$work/producer.err")"

# bookkeeping VERBOSE NAME=LOG...: the logs of one group merged by time (an
# ASSIGN before anything else of the same ms); NAME is the member's identity
# (a restarted static member keeps it). Prints
#   "acked processed missing dups samegen overlap badkey below unacked":
# acknowledged messages, MSG lines, acknowledged messages never processed,
# repeats of an already processed offset, offsets processed by two members in
# one generation, partitions assigned to two members in one generation, keys
# other than produced, offsets processed below a commit acknowledged before the
# assignment they were processed under (a lost commit), and processed offsets
# the producer never saw acknowledged. With VERBOSE 1 the first violations of
# each kind go to stderr.
bookkeeping() {
  local verbose=$1 a
  shift
  for a in "$@"; do
    awk -v m="${a%%=*}" '{ print $1, ($2 == "ASSIGN" ? 0 : 1), m, $0 }' "${a#*=}"
  done | sort -s -k1,1n -k2,2n | awk -v verbose="$verbose" '
    function say(msg) { if (verbose) print msg > "/dev/stderr" }
    NR == FNR { want[$1 " " $2] = "k" $3; nacked++; next }
    { id = $3; $1 = $2 = $3 = ""; $0 = substr($0, 4) }
    $2 == "COMMIT" && $4 == "OK" {
      n = split($5, a, ",")
      for (j = 1; j <= n; j++) { split(a[j], f, ":"); if (f[3] + 0 > acked[f[2]] + 0) acked[f[2]] = f[3] + 0 }
    }
    $2 == "ASSIGN" {
      n = split($6, a, ",")
      for (j = 1; j <= n; j++) {
        if (a[j] == "-") continue
        split(a[j], f, ":")
        floor[id, f[2]] = acked[f[2]] + 0
        k = $3 " " a[j]
        if ((k in owner) && owner[k] != id && ++overlap <= 5)
          say("generation " $3 ": " a[j] " assigned to " owner[k] " and " id)
        owner[k] = id
      }
    }
    $2 == "MSG" {
      processed++
      k = $5 " " $6
      if (!(k in want)) unacked++
      else if ($7 != want[k] && ++badkey <= 5) say("partition/offset " k ": key " $7 ", produced " want[k])
      if (++seen[k] > 1) dups++
      if ($6 + 0 < floor[id, $5] && ++below <= 5)
        say(id " processed partition " $5 " offset " $6 " below offset " floor[id, $5] \
          ", committed (acknowledged) before its assignment")
      gk = $3 " " k
      if ((gk in by) && by[gk] != id && ++samegen <= 5)
        say("generation " $3 ": partition/offset " k " processed by " by[gk] " and " id)
      by[gk] = id
    }
    END {
      for (k in want) if (!(k in seen) && ++missing <= 5) say("never processed: partition/offset " k)
      print nacked + 0, processed + 0, missing + 0, dups + 0, samegen + 0, overlap + 0, badkey + 0, below + 0, \
        unacked + 0
    }' "$work/acked" -
}

# shellcheck disable=SC2034 # read through `declare -n members`
group_a=(A1="$work/A1.log" A2="$work/A2.log" A3="$work/A3.log")
# shellcheck disable=SC2034
group_b=(B1="$work/B1.log" B2="$work/B2.log")
# shellcheck disable=SC2034
group_s=(S1="$work/S1.log" S2="$work/S2.log" S2="$work/S2b.log" S3="$work/S3.log")
deadline=$(($(now) + 30000))
while :; do
  missing=0
  for g in group_a group_b group_s; do
    declare -n members=$g
    read -r _ _ m _ < <(bookkeeping 0 "${members[@]}")
    missing=$((missing + m))
  done
  [ "$missing" -eq 0 ] && break
  [ "$(now)" -lt "$deadline" ] || { fail "d: $missing acknowledged messages still unprocessed 30 s after the producer stopped"; break; }
  sleep 0.2
done
for n in A1 B1 B2 S1 S2b S3; do term "$n"; done
for n in A1 B1 B2 S1 S2b S3; do reap "$n"; done

for g in A:group_a B:group_b S:group_s; do
  declare -n members=${g#*:}
  read -r n_acked processed missing dups samegen overlap badkey below unacked < <(bookkeeping 1 "${members[@]}")
  name=${g%%:*}
  [ "$overlap" -eq 0 ] || fail "d: group $name: $overlap partitions assigned to two members in one generation"
  [ "$samegen" -eq 0 ] || fail "d: group $name: $samegen messages processed by two members in one generation"
  [ "$missing" -eq 0 ] || fail "d/f: group $name: $missing of $n_acked acknowledged messages never processed"
  [ "$badkey" -eq 0 ] || fail "d: group $name: $badkey messages with another key than produced"
  [ "$below" -eq 0 ] || fail "d: group $name: $below messages processed below an acknowledged commit (commit lost)"
  [ "$n_acked" -gt 0 ] || fail "d: nothing was acknowledged by the broker"
  echo "ok: d/f. group $name: $n_acked acknowledged, $processed processed, missing $missing," \
    "duplicates $dups (none below an acknowledged commit: $([ "$below" -eq 0 ] && echo yes || echo no)," \
    "processed twice in one generation: $samegen)$([ "$unacked" -gt 0 ] &&
      echo ", $unacked processed without an acknowledgement")"
done

echo "groups: join (3 members) ${join_ms} ms; rebalance after SIGKILL ${kill_ms} ms" \
  "(session.timeout.ms $SESSION_MS); after graceful leave ${leave_ms} ms;" \
  "static restart reassigned in $((s2b_ms - t_kill)) ms without a rebalance"
[ "$fails" -eq 0 ] || exit 1
ok=1
echo "groups: all checks passed ($acked messages)"
