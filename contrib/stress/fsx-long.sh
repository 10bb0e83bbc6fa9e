#!/bin/sh
# The long data-integrity run: strata-fsx (tests/tools/strata-fsx.c) with
# 100,000 operations (or $1) per run on each file of tests/integration/
# test_fsx.py -- lower files copied up by the first write (3 MiB of data,
# 16 MiB sparse), with mmap, O_DIRECT, truncate, fallocate/punch hole,
# SEEK_DATA/SEEK_HOLE, and new files -- each checked against strata-fsx's
# in-memory model during the run, at its end, and in the upper layer after
# the unmount.  The CI test (meson test fsx) runs 20,000 per file.
#
#   sudo sh contrib/stress/fsx-long.sh [OPS] [test_fsx.py options...]
#   sudo sh contrib/stress/fsx-long.sh 100000 --against kernel   # reference run
#
# Needs a build in build/ (meson setup build && ninja -C build).  Prints the
# TAP lines of test_fsx.py and a last line "fsx-long: N runs x OPS ops,
# M failed"; exits non-zero if any run failed.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
ops=${1:-100000}
[ $# -gt 0 ] && shift
: "${STRATAFS:=$top/build/stratafs}"
: "${STRATA_FSX:=$top/build/tests/tools/strata-fsx}"
export STRATAFS STRATA_FSX
out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
python3 "$top/tests/integration/test_fsx.py" --ops "$ops" "$@" | tee "$out" || rc=$?
runs=$(grep -c '^ok .*ops, seed\|^not ok .*ops, seed' "$out" || true)
bad=$(grep -c '^not ok' "$out" || true)
echo "fsx-long: $runs runs x $ops ops, $bad failed"
[ "$rc" -eq 0 ] && [ "$bad" -eq 0 ]
