#!/usr/bin/env bash
# Fails when src/kafka/gen_* differ from what scripts/gen_codecs.py makes of
# src/kafka/schema/*.sch (someone edited a schema or the generator without
# regenerating, or edited a generated file by hand).
set -euo pipefail
: "${SLUICE_SRC:?SLUICE_SRC must point at the repository root}"
exec /usr/bin/python3 "$SLUICE_SRC/scripts/gen_codecs.py" --check
