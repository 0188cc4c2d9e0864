#!/usr/bin/env bash
# librdkafka C client against a running broker: see tests/tools/sl_compat_rdkafka.c
# for the checks (produce with every codec, consume, watermarks,
# offsetsForTimes, admin CreateTopics/DescribeConfigs/CreatePartitions/
# DeleteTopics, size and topic-name errors).
set -euo pipefail
: "${SLUICE_BOOTSTRAP:?run through tests/compat/run.sh}"
tool=${SLUICE_TOOLS:?}/sl_compat_rdkafka
[ -x "$tool" ] || { echo "FAIL: $tool not built (needs librdkafka-dev: run scripts/deps.sh test)" >&2; exit 1; }
exec "$tool" "$SLUICE_BOOTSTRAP"
