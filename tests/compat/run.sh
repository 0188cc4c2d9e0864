#!/usr/bin/env bash
# Runs one compat or crash test script (ctest calls `bash tests/compat/run.sh SCRIPT`).
#
# Compat scripts (tests/compat/test_*.{sh,py,js}) each get a fresh broker:
#   1. a temp data dir, `$SLUICE_BIN broker --data DIR --listen 127.0.0.1:0`
#      (port 0: the broker picks a free port and logs it);
#   2. wait (10 s max) for the stderr line "listening on 127.0.0.1:PORT";
#   3. export SLUICE_BOOTSTRAP=127.0.0.1:PORT and run the script with its
#      interpreter (.py: /usr/bin/python3, .js: node, .sh: bash);
#   4. SIGTERM the broker by PID; it must exit 0 within 10 s.
# The test fails if the script fails, the broker dies early, or the broker does
# not exit cleanly; the broker log is printed on failure.
# A script may ask for extra broker flags with one line anywhere in it:
#   <comment char> sluice-broker-args: --default-partitions 3
#
# Crash and bench scripts (tests/crash, tests/bench) manage their own brokers: run as is.
#
# Environment (set by tests/CMakeLists.txt): SLUICE_BIN (the sluice binary),
# SLUICE_TOOLS (compiled tests/tools/*.c), SLUICE_SRC (repo root).
set -uo pipefail

script=${1:?usage: run.sh TEST_SCRIPT}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export SLUICE_SRC=${SLUICE_SRC:-$(cd "$here/../.." && pwd)}
export SLUICE_BIN=${SLUICE_BIN:-$SLUICE_SRC/build/sluice}
export SLUICE_TOOLS=${SLUICE_TOOLS:-$(dirname "$SLUICE_BIN")/tools}
# Bound on one compat script (ctest's own limit is 600 s). Crash scripts bound
# themselves (their length depends on ITER), unless this is set explicitly.
script_timeout_s=${SLUICE_TEST_TIMEOUT_S:-540}

die() {
  echo "run.sh: $*" >&2
  exit 1
}

[ -f "$script" ] || die "no such test script: $script"

case "$(basename "$(dirname "$script")")" in
  crash | bench)
    if [ -n "${SLUICE_TEST_TIMEOUT_S:-}" ]; then
      exec timeout --kill-after=10 "$SLUICE_TEST_TIMEOUT_S" bash "$script"
    fi
    exec bash "$script"
    ;;
esac

[ -x "$SLUICE_BIN" ] || die "broker binary not found or not executable: $SLUICE_BIN (build first)"

case "$script" in
  *.py) interp=(/usr/bin/python3) ;;
  *.js)
    command -v node >/dev/null || die "node not found: run scripts/deps.sh test"
    [ -d "$here/node/node_modules/kafkajs" ] || die "kafkajs not installed: run scripts/deps.sh test"
    export NODE_PATH=$here/node/node_modules
    interp=(node)
    ;;
  *.sh) interp=(bash) ;;
  *) die "unknown script type: $script" ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-compat.XXXXXX")
broker_log=$work/broker.log
broker_pid=
failed=0

cleanup() {
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -KILL "$broker_pid" 2>/dev/null
    wait "$broker_pid" 2>/dev/null
  fi
  if [ "$failed" -ne 0 ] && [ -f "$broker_log" ]; then
    echo "----- broker log ($broker_log) -----" >&2
    tail -n 200 "$broker_log" >&2
    echo "----- end of broker log -----" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'failed=1; exit 1' INT TERM

extra_args=()
args_line=$(grep -m1 -o 'sluice-broker-args:.*' "$script" | sed 's/^sluice-broker-args://' || true)
if [ -n "$args_line" ]; then
  read -r -a extra_args <<<"$args_line"
fi

mkdir -p "$work/data"
"$SLUICE_BIN" broker --data "$work/data" --listen 127.0.0.1:0 "${extra_args[@]}" \
  </dev/null >"$broker_log" 2>&1 &
broker_pid=$!

port=
for _ in $(seq 1 100); do
  port=$(grep -m1 -o 'listening on 127\.0\.0\.1:[0-9]\+' "$broker_log" 2>/dev/null | sed 's/.*://' || true)
  [ -n "$port" ] && break
  kill -0 "$broker_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  failed=1
  if ! kill -0 "$broker_pid" 2>/dev/null; then
    wait "$broker_pid"
    brc=$?
    broker_pid=
    die "broker exited with status $brc before logging 'listening on 127.0.0.1:PORT'"
  fi
  die "broker did not log 'listening on 127.0.0.1:PORT' within 10 s"
fi
export SLUICE_BOOTSTRAP=127.0.0.1:$port
echo "run.sh: broker pid $broker_pid on $SLUICE_BOOTSTRAP; running $(basename "$script")"

(cd "$work" && timeout --kill-after=10 "$script_timeout_s" "${interp[@]}" "$script")
rc=$?
if [ $rc -ne 0 ]; then
  echo "run.sh: FAIL: $(basename "$script") exited $rc" >&2
  failed=1
fi

if ! kill -0 "$broker_pid" 2>/dev/null; then
  wait "$broker_pid"
  echo "run.sh: FAIL: broker died during the test (exit status $?)" >&2
  broker_pid=
  failed=1
  exit 1
fi

kill -TERM "$broker_pid"
for _ in $(seq 1 100); do
  kill -0 "$broker_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$broker_pid" 2>/dev/null; then
  echo "run.sh: FAIL: broker still running 10 s after SIGTERM" >&2
  failed=1
  exit 1
fi
wait "$broker_pid"
brc=$?
broker_pid=
if [ $brc -ne 0 ]; then
  echo "run.sh: FAIL: broker exited with status $brc after SIGTERM (want 0)" >&2
  failed=1
fi
[ "$failed" -eq 0 ] && echo "run.sh: PASS: $(basename "$script")"
exit "$failed"
