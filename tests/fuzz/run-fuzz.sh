#!/bin/sh
# run-fuzz.sh FUZZER CORPUS DICT WORKDIR: run one libFuzzer target for
# $FUZZ_SECONDS seconds (default 20).  It starts from the checked-in
# CORPUS (read only) plus WORKDIR/corpus, where it keeps what it finds, so
# that later runs in the same build dir go on from there.  A crash, leak,
# sanitizer report or broken invariant fails the run; the input is saved
# as WORKDIR/crash-* (copy it into CORPUS as a regression test once fixed).
set -eu
exe=$1 corpus=$2 dict=$3 work=$4
secs=${FUZZ_SECONDS:-20}
mkdir -p "$work/corpus"
set -- -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$work/"
[ -f "$dict" ] && set -- "$@" -dict="$dict"
echo "run-fuzz: $(basename "$exe") for ${secs}s"
exec "$exe" "$@" "$work/corpus" "$corpus"
