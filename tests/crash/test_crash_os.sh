#!/usr/bin/env bash
# The kill -9 crash test with --flush os: acknowledgements do not wait for
# fdatasync, yet a killed process loses no page cache, so every acknowledged
# message must still be there after the restart (issue 3: correctness does
# not bend for speed, in any mode). Fewer iterations than the durable run.
export FLUSH=os ITER=${ITER:-8}
exec bash "$(dirname "$0")/test_crash_short.sh"
