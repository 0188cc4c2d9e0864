#!/usr/bin/env bash
# Source rules (STYLE.md #15), run by `make test`:
#  - banned calls anywhere in src/, tests/, fuzz/: sscanf strcpy strcat sprintf vsprintf atoi atol gets
#  - raw malloc/calloc/realloc/free/strdup in src/ only inside src/common/alloc.c
#  - no TODO/FIXME/XXX in committed code
#  - size ratchet: .c files <= 1500 lines (generated gen_* exempt); functions <= 70 lines unless
#    listed with a reason in scripts/size-ratchet.txt, whose list may only shrink.
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 scripts/check_source.py "$@"
