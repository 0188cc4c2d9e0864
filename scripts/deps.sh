#!/usr/bin/env bash
# Installs the Debian packages that building and testing Sluice need.
#
# Usage: scripts/deps.sh build|test|demo|fuzz|bench
#
# Every profile includes `build`. The script is idempotent and cheap when
# everything is present: it asks dpkg first and only when something is missing
# runs `apt-get update` (once) and one `apt-get install`. A package counts as
# present when it is installed or when an installed package provides it (the
# NodeSource `nodejs` package provides `npm`, and installing Debian's `npm`
# beside it would remove that nodejs). It prints one line per action.
#
# Works on a fresh Debian 12 as root with empty apt lists; uses sudo otherwise.
set -euo pipefail

usage() {
  echo "usage: $0 build|test|demo|fuzz|bench" >&2
  exit 2
}

[ $# -eq 1 ] || usage
profile=$1

# zlib, snappy, lz4, zstd: the broker decompresses batches to answer ListOffsets by timestamp.
build_pkgs=(build-essential cmake pkg-config clang librdkafka-dev zlib1g-dev libsnappy-dev liblz4-dev
  libzstd-dev python3)
# python3-snappy/-lz4/-zstandard let kafka-python use those codecs too.
test_pkgs=(kcat python3-kafka python3-confluent-kafka python3-snappy python3-lz4 python3-zstandard
  nodejs npm)
fuzz_pkgs=(libfuzzer-14-dev)
# Peers the benchmarks compare against, and the plotter for their reports.
# gnuplot-nox: the plain `gnuplot` package pulls in Qt.
bench_pkgs=(redis-server nats-server gnuplot-nox)

case "$profile" in
  build) wanted=("${build_pkgs[@]}") ;;
  test) wanted=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  # The demo drives the broker with the same clients the tests use.
  demo) wanted=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  fuzz) wanted=("${build_pkgs[@]}" "${fuzz_pkgs[@]}") ;;
  bench) wanted=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) usage ;;
esac

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ "$(id -u)" -eq 0 ]; then
  sudo_cmd=()
else
  command -v sudo >/dev/null || { echo "deps: not root and no sudo; run as root" >&2; exit 1; }
  sudo_cmd=(sudo)
fi

# Names provided by installed packages ("Provides: npm" and the like), one a line.
provided=$(dpkg-query -W -f='${Status}\t${Provides}\n' 2>/dev/null |
  awk -F'\t' '$1 == "install ok installed" && $2 != "" { print $2 }' |
  tr ',' '\n' | sed -e 's/^ *//' -e 's/ .*//' | sort -u)

is_present() {
  local status
  status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] && return 0
  grep -qxF "$1" <<<"$provided"
}

missing=()
for p in "${wanted[@]}"; do
  if is_present "$p"; then
    echo "deps: present  $p"
  else
    echo "deps: missing  $p"
    missing+=("$p")
  fi
done

# apt's own output goes to a log that is shown only when a step fails.
apt_log=$(mktemp "${TMPDIR:-/tmp}/sluice-deps.XXXXXX")
trap 'rm -f "$apt_log"' EXIT
run_apt() {
  if ! "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive "$@" >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    echo "deps: FAILED: $*" >&2
    exit 1
  fi
}

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: apt-get update"
  run_apt apt-get update -q
  echo "deps: apt-get install ${missing[*]}"
  run_apt apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# kafkajs for the Node compat test comes from npm, pinned by the lock file.
# Re-install when node_modules is absent or older than the lock.
if [ "$profile" = test ] || [ "$profile" = demo ]; then
  node_dir="$repo_root/tests/compat/node"
  stamp="$node_dir/node_modules/.package-lock.json"
  if [ ! -d "$node_dir/node_modules" ] || [ "$node_dir/package-lock.json" -nt "$stamp" ]; then
    echo "deps: npm ci in tests/compat/node"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  else
    echo "deps: present  tests/compat/node/node_modules"
  fi
fi

echo "deps: $profile ready"
