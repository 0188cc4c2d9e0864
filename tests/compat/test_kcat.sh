#!/usr/bin/env bash
# kcat (librdkafka 2.0.2 underneath) against a running broker.
#
# Produces keyed messages with headers, once per compression codec (none,
# gzip, snappy, lz4, zstd; failing when librdkafka declines to compress because
# of what the broker advertises), to explicit partitions of an auto-created topic
# with 3 partitions; then consumes each partition from the beginning and
# compares key, value, headers, offset and partition, in order, with what was
# produced. Also: consuming from an offset inside a compressed batch, end
# offsets by `kcat -Q`, and the `kcat -L -J` metadata listing.
#
# sluice-broker-args: --default-partitions 3
set -euo pipefail

: "${SLUICE_BOOTSTRAP:?run through tests/compat/run.sh}"
command -v kcat >/dev/null || { echo "FAIL: kcat not found: run scripts/deps.sh test" >&2; exit 1; }

B=$SLUICE_BOOTSTRAP
T=kcat.codecs
T2=kcat.second
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0

fail() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}

# Messages per partition per codec: different counts so offsets differ.
count_for() { echo $(( (3 - $1) * 4 + 1 )); }

declare -A next_off=([0]=0 [1]=0 [2]=0)
for codec in none gzip snappy lz4 zstd; do
  for p in 0 1 2; do
    n=$(count_for "$p")
    in=$work/in.$codec.$p
    : >"$in"
    for i in $(seq 1 "$n"); do
      # Values carry spaces and UTF-8; a few are empty.
      if [ $((i % 5)) -eq 0 ]; then v=""; else v="value $codec p$p #$i żółw $(printf 'x%.0s' $(seq 1 $((i * 7))))"; fi
      echo "key-$codec-$p-$i:$v" >>"$in"
      echo "key-$codec-$p-$i|$v|codec=$codec,part=$p,empty=|${next_off[$p]}|$p" >>"$work/want.$p"
      next_off[$p]=$((next_off[$p] + 1))
    done
    # debug=msg makes librdkafka say when it sends a batch uncompressed
    # because the broker's ApiVersions fail its codec gate.
    if ! kcat -b "$B" -P -t "$T" -p "$p" -K: -H "codec=$codec" -H "part=$p" -H "empty=" \
        -X "compression.codec=$codec" -X acks=all -X linger.ms=50 -X debug=msg <"$in" 2>"$work/err"; then
      fail "kcat produce codec=$codec partition=$p: $(grep -v '^%7|' "$work/err")"
    fi
    if grep -q "not compressing batch" "$work/err"; then
      fail "codec=$codec partition=$p: librdkafka sent the batch uncompressed: $(grep -m1 -o 'Broker does not support.*' "$work/err")"
    fi
  done
done

fmt='%k|%s|%h|%o|%p\n'
for p in 0 1 2; do
  kcat -b "$B" -C -t "$T" -p "$p" -o beginning -e -q -f "$fmt" >"$work/got.$p" 2>"$work/err" ||
    fail "kcat consume partition $p: $(cat "$work/err")"
  if ! diff -u "$work/want.$p" "$work/got.$p" >"$work/diff.$p"; then
    fail "partition $p content differs from what was produced:"
    head -40 "$work/diff.$p" >&2
  else
    echo "ok: partition $p: $(wc -l <"$work/got.$p") messages match (5 codecs)"
  fi
done

# Start in the middle of a compressed batch: partition 0 got 13 gzip messages
# at offsets 13..25 in (most likely) one batch; offset 20 lies inside it and the
# client must get exactly the messages from 20 on.
kcat -b "$B" -C -t "$T" -p 0 -o 20 -e -q -f "$fmt" >"$work/mid" 2>"$work/err" ||
  fail "kcat consume from offset 20: $(cat "$work/err")"
if ! diff -u <(tail -n +21 "$work/want.0") "$work/mid" >"$work/diff.mid"; then
  fail "consuming partition 0 from offset 20 (inside a gzip batch) gave:"
  head -20 "$work/diff.mid" >&2
else
  echo "ok: consume from offset 20 inside a compressed batch"
fi

# End offsets (ListOffsets with timestamp -1) per partition.
fails_before=$fails
for p in 0 1 2; do
  want_end=${next_off[$p]}
  got=$(kcat -b "$B" -Q -t "$T:$p:-1" 2>"$work/err" | grep -o "offset [0-9-]*" | awk '{print $2}' || true)
  [ "$got" = "$want_end" ] || fail "kcat -Q $T:$p:-1: want offset $want_end, got '${got}' $(cat "$work/err")"
done
[ "$fails" -eq "$fails_before" ] && echo "ok: kcat -Q end offsets"

# A second topic, auto-created by the produce, then the metadata listing.
printf 'a:1\nb:2\n' | kcat -b "$B" -P -t "$T2" -K: -p 1 2>"$work/err" ||
  fail "kcat produce to $T2: $(cat "$work/err")"
kcat -b "$B" -L -J >"$work/meta.json" 2>"$work/err" || fail "kcat -L -J: $(cat "$work/err")"
if ! /usr/bin/python3 - "$work/meta.json" "$B" "$T" "$T2" <<'EOF'
import json, sys
meta = json.load(open(sys.argv[1]))
bootstrap, topics = sys.argv[2], sys.argv[3:]
host, port = bootstrap.rsplit(":", 1)
brokers = meta["brokers"]
assert len(brokers) == 1, f"want 1 broker, got {brokers}"
assert brokers[0]["name"] == f"{host}:{port}", f"broker advertised as {brokers[0]['name']}, want {bootstrap}"
node = brokers[0]["id"]
by_name = {t["topic"]: t for t in meta["topics"]}
for name in topics:
    assert name in by_name, f"topic {name} missing from metadata: {sorted(by_name)}"
    t = by_name[name]
    assert "error" not in t, f"topic {name} has error {t.get('error')}"
    parts = sorted(p["partition"] for p in t["partitions"])
    assert parts == [0, 1, 2], f"topic {name}: partitions {parts}, want [0, 1, 2]"
    for p in t["partitions"]:
        assert p["leader"] == node, f"{name}[{p['partition']}] leader {p['leader']} != {node}"
        assert [r["id"] for r in p["replicas"]] == [node], f"{name}[{p['partition']}] replicas {p['replicas']}"
        assert [r["id"] for r in p["isrs"]] == [node], f"{name}[{p['partition']}] isrs {p['isrs']}"
print(f"ok: metadata lists broker {node} at {bootstrap} and topics {topics} with 3 partitions")
EOF
then
  fail "kcat -L metadata check (listing in $work/meta.json):"
  cat "$work/meta.json" >&2
fi

got=$(kcat -b "$B" -C -t "$T2" -p 1 -o beginning -e -q -f '%k=%s %o\n' 2>"$work/err" | tr '\n' ';')
[ "$got" = "a=1 0;b=2 1;" ] || fail "topic $T2 partition 1: got '$got', want 'a=1 0;b=2 1;'"

if [ "$fails" -ne 0 ]; then
  echo "test_kcat: $fails check(s) failed" >&2
  exit 1
fi
echo "test_kcat: all checks passed"
