#!/usr/bin/env bash
# sluice-broker-args: --group-initial-rebalance-delay 0 --group-min-session-timeout 1000
#
# `sluice groups` (src/cli/groups.c) against the broker, with kcat -G as the
# real group consumer. Topic groups.t has 3 partitions with 10, 8 and 12
# messages ("p<P>-<I>" at offset I); group groups.g.
#
#  1. usage: --help explains every option, bad usage exits 2 naming the problem;
#     a broker that is down and unknown groups/topics exit 1 with a clear message.
#  2. kcat -G consumes exactly K=7 messages and exits (committing them): list
#     shows the group (Empty, protocol type consumer, 0 members); describe shows
#     exactly the partitions kcat read, committed = what it printed + 1, log end
#     = what was produced, lag = the difference, and the total.
#  3. member m1 (kcat -G, 100 ms auto-commit) consumes the rest and commits it;
#     then it is frozen (SIGSTOP; its 10 s session keeps it in the group) and 8
#     more messages are produced. describe shows m1 on all 3 partitions with
#     committed 10/8/12, log end 13/8/17, lag 3/0/5, total 8; reset-offsets and
#     delete refuse while it is there. Then m1 continues, commits, and leaves.
#  4. a second group with 2 members on a 1-partition topic: describe lists the
#     member without partitions on a row of its own; list shows 2 members.
#  5. reset-offsets: --dry-run changes nothing; --to-latest, --to-offset on one
#     partition, --to-offset past the end (clamped, with a note), --to-earliest;
#     each checked with describe, and kcat -G in the group then starts exactly at
#     the reset offset.
#  6. delete: the empty group goes, disappears from list, describe and a second
#     delete say it does not exist.
set -uo pipefail

: "${SLUICE_BOOTSTRAP:?run through tests/compat/run.sh}"
: "${SLUICE_BIN:?run through tests/compat/run.sh}"
# run.sh runs this script from a temp dir: a relative SLUICE_BIN is relative to the repo root.
[[ "$SLUICE_BIN" == /* ]] || SLUICE_BIN=${SLUICE_SRC:?}/$SLUICE_BIN
command -v kcat >/dev/null || { echo "FAIL: kcat not found: run scripts/deps.sh test" >&2; exit 1; }
/usr/bin/python3 -c "import kafka" 2>/dev/null || { echo "FAIL: kafka-python missing: run scripts/deps.sh test" >&2; exit 1; }

B=$SLUICE_BOOTSTRAP
T=groups.t
T1=groups.one
G=groups.g
G2=groups.g2
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
fails=0
fail() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}
# ok MESSAGE: printed only if no check failed since the previous ok.
section_fails=0
ok() {
  [ "$fails" = "$section_fails" ] && echo "ok: $*"
  section_fails=$fails
}

KCAT_GROUP=(-X session.timeout.ms=2000 -X heartbeat.interval.ms=500 -X auto.offset.reset=earliest)

# grp ARGS...: runs `sluice groups`, output in $out, exit status in $rc.
grp() {
  rc=0
  out=$("$SLUICE_BIN" groups "$@" 2>&1) || rc=$?
}

# describe_row TOPIC PARTITION: that row of the last describe ($out), fields from the partition on.
describe_row() { awk -v t="$1" -v p="$2" '$1 == t && $2 == p { $1 = ""; $2 = ""; sub(/^ +/, ""); print }' <<<"$out"; }
header() { awk -v k="$1" '$1 == k { print $2; exit }' <<<"$out"; }
total_lag() { awk '$1 == "total" && $2 == "lag" { print $3 }' <<<"$out"; }

# wait_for SECONDS DESCRIPTION COMMAND...: retries COMMAND every 0.2 s until it succeeds.
wait_for() {
  local secs=$1 what=$2
  shift 2
  for _ in $(seq 1 $((secs * 5))); do
    "$@" && return 0
    sleep 0.2
  done
  fail "waited ${secs}s for $what; last output: $out"
  return 1
}

# ---- 1. usage, help, errors that need no group
"$SLUICE_BIN" --help | grep -q "groups" || fail "sluice --help does not list the groups command"
help=$("$SLUICE_BIN" groups --help) || fail "sluice groups --help exited $?"
for opt in list describe delete reset-offsets --bootstrap --timeout --topic --to-earliest --to-latest --to-offset \
  --partition --dry-run SLUICE_BOOTSTRAP; do
  grep -q -- "$opt" <<<"$help" || fail "sluice groups --help does not explain $opt"
done
expect_usage() { # WANT ARGS...: exit 2 and a message containing WANT
  local want=$1
  shift
  grp "$@"
  [ "$rc" = 2 ] || fail "'sluice groups $*' exited $rc, want 2 ($out)"
  grep -q -- "$want" <<<"$out" || fail "'sluice groups $*' said '$out', want it to mention '$want'"
}
expect_usage "usage: sluice groups"
expect_usage "unknown command 'lst'" lst
expect_usage "describe needs a GROUP" describe
expect_usage "unexpected argument 'x'" list x
expect_usage "reset-offsets needs --topic" reset-offsets "$G" --to-earliest
expect_usage "needs one of --to-earliest" reset-offsets "$G" --topic "$T"
expect_usage "only one of" reset-offsets "$G" --topic "$T" --to-earliest --to-latest
expect_usage "invalid --to-offset '-3'" reset-offsets "$G" --topic "$T" --to-offset -3
expect_usage "invalid --partition 'x'" reset-offsets "$G" --topic "$T" --to-latest --partition x
expect_usage "invalid --timeout '0'" --timeout 0 list
expect_usage "--topic only applies to reset-offsets" describe "$G" --topic "$T"
expect_usage "--dry-run only applies to reset-offsets" delete "$G" --dry-run
expect_usage "unknown option '--nope'" list --nope
expect_usage "option '--bootstrap' needs a value" list --bootstrap
ok "help and usage errors"

t0=$(date +%s%N)
grp --bootstrap 127.0.0.1:1 list
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" = 1 ] || fail "list with the broker down exited $rc, want 1 ($out)"
grep -q "cannot reach the broker at 127.0.0.1:1: .*Connection refused" <<<"$out" ||
  fail "list with the broker down said: $out"
[ "$ms" -lt 5000 ] || fail "list with the broker down took $ms ms"
grp --bootstrap 127.0.0.1:1 describe "$G"
[ "$rc" = 1 ] && grep -q "cannot reach the broker at 127.0.0.1:1" <<<"$out" ||
  fail "describe with the broker down: exit $rc: $out"
ok "broker down: exit 1 in $ms ms: $(head -1 <<<"$out")"

grp list
[ "$rc" = 0 ] && grep -q "no consumer groups" <<<"$out" || fail "list on a fresh broker: exit $rc: $out"
grp describe nosuch.group
[ "$rc" = 1 ] && grep -q "group 'nosuch.group' does not exist" <<<"$out" ||
  fail "describe of an unknown group: exit $rc: $out"
grp delete nosuch.group
[ "$rc" = 1 ] && grep -q "group 'nosuch.group' does not exist" <<<"$out" ||
  fail "delete of an unknown group: exit $rc: $out"
ok "unknown group: $(head -1 <<<"$out")"

# ---- topics and messages
/usr/bin/python3 - <<EOF || fail "create topics"
from kafka.admin import KafkaAdminClient, NewTopic
a = KafkaAdminClient(bootstrap_servers="$B")
a.create_topics([NewTopic("$T", 3, 1), NewTopic("$T1", 1, 1)], timeout_ms=15000)
a.close()
EOF
declare -A end=([0]=10 [1]=8 [2]=12)
produce() { # PARTITION FROM TO: values p<P>-<FROM..TO>
  seq "$2" "$3" | sed "s/^/p$1-/" | kcat -b "$B" -P -t "$T" -p "$1" -X acks=all 2>"$work/err" ||
    fail "kcat produce to $T [$1]: $(cat "$work/err")"
}
for p in 0 1 2; do produce "$p" 0 $((end[$p] - 1)); done

grp reset-offsets "$G" --topic nope.topic --to-latest
[ "$rc" = 1 ] && grep -q "topic 'nope.topic' does not exist" <<<"$out" || fail "reset on an unknown topic: exit $rc: $out"
grp reset-offsets "$G" --topic "$T" --partition 3 --to-latest
[ "$rc" = 1 ] && grep -q "has no partition 3 (it has 3" <<<"$out" || fail "reset of partition 3: exit $rc: $out"
ok "reset-offsets: unknown topic and partition refused"

# ---- 2. kcat -G consumes K messages and commits them on exit
K=7
timeout 30 kcat -b "$B" -G "$G" -q -c "$K" -f '%p %o %s\n' -X client.id=groups-k "${KCAT_GROUP[@]}" "$T" \
  >"$work/k.out" 2>"$work/err" || fail "kcat -G -c $K: exit $?: $(cat "$work/err")"
[ "$(wc -l <"$work/k.out")" = "$K" ] || fail "kcat printed $(wc -l <"$work/k.out") messages, want $K"
declare -A committed=()
while read -r p o _; do
  [ -z "${committed[$p]:-}" ] || [ $((o + 1)) -gt "${committed[$p]}" ] && committed[$p]=$((o + 1))
done <"$work/k.out"

grp list
[ "$rc" = 0 ] || fail "list: exit $rc: $out"
[ "$(awk -v g="$G" '$1 == g { print $2, $4 }' <<<"$out")" = "Empty 0" ] ||
  fail "list after kcat left: want '$G Empty ... 0', got: $out"
ok "list shows $G: Empty, 0 members"
# Kafka keeps a group's protocol type when its last member leaves (GroupMetadata.protocolType is
# set by the first member and never cleared); only a group that never had members has "".
[ "$(awk -v g="$G" '$1 == g { print $3 }' <<<"$out")" = "consumer" ] ||
  fail "list: protocol type of $G after its consumer left is not 'consumer' as Kafka reports it: $out"
ok "list shows $G's protocol type 'consumer' after its consumer left"

grp describe "$G"
[ "$rc" = 0 ] || fail "describe $G: exit $rc: $out"
[ "$(header state)" = Empty ] && [ "$(header members)" = 0 ] || fail "describe $G header: $out"
want_total=0
for p in 0 1 2; do
  got=$(describe_row "$T" "$p")
  if [ -n "${committed[$p]:-}" ]; then
    lag=$((end[$p] - committed[$p]))
    want_total=$((want_total + lag))
    want="- - - ${committed[$p]} ${end[$p]} $lag"
  else
    want="" # no commit, no member: no row
  fi
  [ "$got" = "$want" ] || fail "describe $G, $T [$p] after kcat read $K: got '$got', want '$want'"
done
[ "$(total_lag)" = "$want_total" ] || fail "describe $G: total lag $(total_lag), want $want_total: $out"
ok "after kcat -G -c $K (committed $(for p in "${!committed[@]}"; do echo -n "[$p]=${committed[$p]} "; done)): describe shows committed, log end, lag, total lag $want_total"

# ---- 3. an active member, frozen with a known lag
# No `timeout` wrapper: SIGSTOP/SIGCONT must reach kcat itself (the cleanup trap kills it). kcat's
# -X puts auto.commit.interval.ms and enable.auto.commit on the legacy topic config, so m1
# auto-commits every 5 s (librdkafka's default) and commits what it consumed when it closes.
kcat -b "$B" -G "$G" -q -u -f '%p %o %s\n' -X client.id=groups-m1 -X session.timeout.ms=10000 \
  -X heartbeat.interval.ms=500 -X auto.offset.reset=earliest "$T" >"$work/m1.out" 2>"$work/m1.err" &
m1=$!
pids+=("$m1")
caught_up() { # every partition assigned to m1, committed = log end
  grp describe "$G"
  [ "$(header state)" = Stable ] || return 1
  for p in 0 1 2; do
    [[ "$(describe_row "$T" "$p")" =~ ^groups-m1-[^\ ]+\ groups-m1\ [^\ ]+\ ${end[$p]}\ ${end[$p]}\ 0$ ]] || return 1
  done
}
wait_for 20 "member m1 to join and commit everything" caught_up
kill -STOP "$m1"
produce 0 10 12
produce 2 12 16
end[0]=13
end[2]=17
grp describe "$G"
[ "$rc" = 0 ] || fail "describe $G with m1: exit $rc: $out"
[ "$(header state)" = Stable ] && [ "$(header members)" = 1 ] || fail "describe $G with m1, header: $out"
member=$(describe_row "$T" 0 | awk '{ print $1 }')
[[ "$member" == groups-m1-* ]] || fail "describe $G: $T [0] member '$member', want m1's member id: $out"
for p in 0 1 2; do
  c=$((p == 0 ? 10 : p == 1 ? 8 : 12))
  got=$(describe_row "$T" "$p" | awk '{ $3 = "HOST"; print }')
  want="$member groups-m1 HOST $c ${end[$p]} $((end[$p] - c))"
  [ "$got" = "$want" ] || fail "describe $G with m1 frozen, $T [$p]: got '$got', want '$want'"
done
[ "$(total_lag)" = 8 ] || fail "describe $G with m1 frozen: total lag '$(total_lag)', want 8: $out"
ok "active member: 3 partitions, committed 10/8/12, log end 13/8/17, lag 3/0/5, total 8"

grp reset-offsets "$G" --topic "$T" --to-earliest
[ "$rc" = 1 ] && grep -q "group '$G' has 1 active member (state Stable); stop its consumers" <<<"$out" ||
  fail "reset-offsets with an active member: exit $rc: $out"
grp reset-offsets "$G" --topic "$T" --to-earliest --dry-run
[ "$rc" = 1 ] || fail "reset-offsets --dry-run with an active member: exit $rc, want 1: $out"
grp delete "$G"
[ "$rc" = 1 ] && grep -q "group '$G' still has 1 active member; stop them first" <<<"$out" ||
  fail "delete with an active member: exit $rc: $out"
grp describe "$G"
for p in 0 1 2; do
  c=$((p == 0 ? 10 : p == 1 ? 8 : 12))
  [ "$(describe_row "$T" "$p" | awk '{ print $4 }')" = "$c" ] || fail "refused reset changed $T [$p]: $out"
done
ok "reset-offsets and delete refuse while m1 is a member"

kill -CONT "$m1"
m1_read_all() { out=$(wc -l <"$work/m1.out") && [ "$out" = $((30 - K + 8)) ]; }
wait_for 20 "m1 to read the 8 new messages" m1_read_all
kill -TERM "$m1"
wait "$m1" 2>/dev/null
is_empty() { grp describe "$G" && [ "$(header state)" = Empty ] && [ "$(header members)" = 0 ]; }
wait_for 10 "$G to be Empty after m1 left" is_empty
for p in 0 1 2; do
  [ "$(describe_row "$T" "$p")" = "- - - ${end[$p]} ${end[$p]} 0" ] || fail "after m1 left, $T [$p]: $out"
done
# m1 started where kcat -G -c $K stopped: together they read every message once.
sort -n -k1,1 -k2,2 "$work/k.out" "$work/m1.out" | awk '{ print $1, $2 }' >"$work/all"
for p in 0 1 2; do seq 0 $((end[$p] - 1)) | sed "s/^/$p /"; done >"$work/want.all"
diff -q "$work/want.all" "$work/all" >/dev/null || fail "kcat -c $K and m1 did not read each message once: $(diff "$work/want.all" "$work/all" | head -5)"
ok "m1 resumed at the committed offsets, caught up and left"

# ---- 4. a member without partitions
npids=()
for i in 1 2; do
  kcat -b "$B" -G "$G2" -q -X client.id=groups-n$i "${KCAT_GROUP[@]}" "$T1" >/dev/null 2>"$work/n$i.err" &
  pids+=($!)
  npids+=($!)
done
two_members() {
  grp describe "$G2"
  [ "$(header state)" = Stable ] && [ "$(header members)" = 2 ] || return 1
  [ "$(awk -v t="$T1" '$1 == t && $2 == 0 && $3 != "-"' <<<"$out" | wc -l)" = 1 ] &&
    [ "$(awk '$1 == "-" && $2 == "-" && $6 == "-" && $7 == "-" && $8 == "-"' <<<"$out" | wc -l)" = 1 ]
}
wait_for 20 "$G2 to be Stable with one member on $T1 [0] and one without partitions" two_members
clients=$(awk -v t="$T1" '($1 == t || $1 == "-") && $3 ~ /^groups-n/ { print $4 }' <<<"$out" | sort | paste -sd' ')
[ "$clients" = "groups-n1 groups-n2" ] || fail "describe $G2: client ids '$clients': $out"
grp list
[ "$(awk -v g="$G2" '$1 == g { print $2, $3, $4 }' <<<"$out")" = "Stable consumer 2" ] || fail "list with $G2 active: $out"
[ "$(awk -v g="$G" '$1 == g { print $2, $4 }' <<<"$out")" = "Empty 0" ] || fail "list: $G: $out"
kill -TERM "${npids[@]}"
wait "${npids[@]}" 2>/dev/null
ok "member without partitions has its own row; list shows $G2 Stable with 2 members"

# ---- 5. reset-offsets
reset_row() { awk -v t="$T" -v p="$1" '$1 == t && $2 == p { print $3, $4, $5, $6 }' <<<"$out"; }
grp reset-offsets "$G" --topic "$T" --to-earliest --dry-run
[ "$rc" = 0 ] || fail "reset --dry-run: exit $rc: $out"
for p in 0 1 2; do
  [ "$(reset_row "$p")" = "0 ${end[$p]} ${end[$p]} 0" ] || fail "reset --dry-run --to-earliest, $T [$p]: $out"
done
grep -q "dry run: nothing committed" <<<"$out" || fail "reset --dry-run does not say nothing was committed: $out"
grp describe "$G"
for p in 0 1 2; do
  [ "$(describe_row "$T" "$p")" = "- - - ${end[$p]} ${end[$p]} 0" ] || fail "--dry-run changed $T [$p]: $out"
done
ok "reset --dry-run prints old -> new and commits nothing"

grp reset-offsets "$G" --topic "$T" --partition 2 --to-offset 6
[ "$rc" = 0 ] && grep -q "committed" <<<"$out" || fail "reset --partition 2 --to-offset 6: exit $rc: $out"
[ "$(reset_row 2)" = "0 17 17 6" ] && [ -z "$(reset_row 0)" ] || fail "reset --partition 2 --to-offset 6 printed: $out"
grp describe "$G"
[ "$(describe_row "$T" 2)" = "- - - 6 17 11" ] && [ "$(describe_row "$T" 0)" = "- - - 13 13 0" ] &&
  [ "$(total_lag)" = 11 ] || fail "describe after reset of [2] to 6: $out"
timeout 30 kcat -b "$B" -G "$G" -q -c 3 -f '%p %o %s\n' "${KCAT_GROUP[@]}" "$T" >"$work/r.out" 2>"$work/err" ||
  fail "kcat -G after the reset: $(cat "$work/err")"
[ "$(paste -sd, "$work/r.out")" = "2 6 p2-6,2 7 p2-7,2 8 p2-8" ] ||
  fail "after reset of [2] to 6, kcat -G consumed: $(paste -sd, "$work/r.out"), want 2 6 p2-6,2 7 p2-7,2 8 p2-8"
ok "reset [2] to 6: describe shows it, kcat -G resumes exactly at offset 6"

wait_for 10 "$G to be Empty after kcat left" is_empty
grp reset-offsets "$G" --topic "$T" --partition 1 --to-offset 99
[ "$rc" = 0 ] && grep -q "note: $T\[1\]: offset 99 is past the log end 8; using 8" <<<"$out" &&
  [ "$(reset_row 1)" = "0 8 8 8" ] || fail "reset [1] --to-offset 99 (clamped): exit $rc: $out"
grp reset-offsets "$G" --topic "$T" --to-earliest
[ "$rc" = 0 ] && [ "$(reset_row 0)" = "0 13 13 0" ] && [ "$(reset_row 2)" = "0 17 9 0" ] ||
  fail "reset --to-earliest: exit $rc: $out"
grp describe "$G"
[ "$(describe_row "$T" 0)" = "- - - 0 13 13" ] && [ "$(total_lag)" = 38 ] || fail "describe after --to-earliest: $out"
grp reset-offsets "$G" --topic "$T" --to-latest
[ "$rc" = 0 ] || fail "reset --to-latest: exit $rc: $out"
grp describe "$G"
[ "$(describe_row "$T" 1)" = "- - - 8 8 0" ] && [ "$(total_lag)" = 0 ] || fail "describe after --to-latest: $out"
ok "reset: clamped --to-offset with a note, --to-earliest (total lag 38), --to-latest (0)"

# ---- 6. delete
grp delete "$G"
[ "$rc" = 0 ] && grep -q "deleted group '$G'" <<<"$out" || fail "delete of the empty $G: exit $rc: $out"
grp list
[ "$rc" = 0 ] && ! awk -v g="$G" '$1 == g { f = 1 } END { exit !f }' <<<"$out" || fail "$G still listed after delete: $out"
grp describe "$G"
[ "$rc" = 1 ] && grep -q "group '$G' does not exist" <<<"$out" || fail "describe after delete: exit $rc: $out"
grp delete "$G"
[ "$rc" = 1 ] && grep -q "group '$G' does not exist" <<<"$out" || fail "second delete: exit $rc: $out"
ok "delete: gone from list; describe and a second delete say it does not exist"

[ "$fails" = 0 ] || { echo "test_cli_groups: $fails check(s) failed" >&2; exit 1; }
echo "test_cli_groups: all checks passed"
