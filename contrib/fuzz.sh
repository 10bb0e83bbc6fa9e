#!/bin/bash
# Build the libFuzzer targets of tests/fuzz with clang, ASan and UBSan in
# ./build-fuzz, and run each for a while over its seed corpus.  Fails if
# any target crashes, leaks, trips a sanitizer or breaks an invariant; the
# input is then saved as build-fuzz/tests/fuzz/found-TARGET/crash-*
# (replay it with `build-fuzz/tests/fuzz/fuzz-TARGET FILE`, and once fixed
# copy it into tests/fuzz/corpus/TARGET/ as a regression test).
#
#   contrib/fuzz.sh                      20 s per target (what CI runs)
#   contrib/fuzz.sh --seconds 600        a long run: 10 minutes per target
#   contrib/fuzz.sh --seconds 3600 merge one target for an hour
#
# Targets: options, idmap, markers, merge.  What each runs on is kept in
# build-fuzz/tests/fuzz/found-TARGET/corpus, so later runs go on from
# there.  Ends with meson's summary of one test per target.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=20
targets=()
while [ $# -gt 0 ]; do
	case $1 in
	--seconds) seconds=$2; shift 2 ;;
	--seconds=*) seconds=${1#*=}; shift ;;
	-h|--help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) targets+=("fuzz-$1"); shift ;;
	esac
done
[ ${#targets[@]} -gt 0 ] ||
	targets=(fuzz-options fuzz-idmap fuzz-markers fuzz-merge)

if ! command -v clang >/dev/null; then
	echo "fuzz.sh: clang not found (contrib/deps.sh installs it)" >&2
	exit 1
fi
if [ ! -f build-fuzz/build.ninja ]; then
	CC=clang meson setup build-fuzz -Dfuzzing=true \
		-Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
# only the fuzz targets: the rest of the project is built by build.sh
ninja -C build-fuzz "${targets[@]/#/tests/fuzz/}" >/dev/null
FUZZ_SECONDS=$seconds meson test -C build-fuzz --no-rebuild --suite fuzz \
	--print-errorlogs "${targets[@]}"
