#!/bin/bash
# Install what is missing, build, and run the whole test suite (unit tests
# and the integration tests that mount real filesystems; as root).  Ends
# with one line "N passed, M failed" from meson's summary.  As root with
# /dev/fuse present nothing may be skipped: a skipped test counts as failed.
# The suite runs twice: on the normal build, then on an AddressSanitizer +
# UndefinedBehaviorSanitizer build (build-asan) where any sanitizer report,
# also from a detached daemon, fails a test; the line counts both passes.
# STRATAFS_TEST_SANITIZE=0 runs the first pass only.
set -uo pipefail
cd "$(dirname "$0")/.."
bash contrib/deps.sh || exit 1
bash contrib/build.sh || exit 1
# where mount.fuse3 (fstab, mount -t fuse.stratafs) looks for it
meson install -C build --quiet >/dev/null || exit 1

meson test -C build --print-errorlogs "$@"
rc=$?
logs=(build/meson-logs/testlog.json)

if [ "${STRATAFS_TEST_SANITIZE:-1}" != 0 ]; then
	# the default test setup of a sanitizer build (meson.build) sends every
	# report to build-asan/meson-logs/sanitizer, which the tests check
	if [ ! -f build-asan/build.ninja ]; then
		meson setup build-asan -Db_sanitize=address,undefined \
			-Db_lundef=false >/dev/null || exit 1
	fi
	meson compile -C build-asan >/dev/null || exit 1
	# fstab mounts run the installed binary: the instrumented one during
	# this pass, the normal one again afterwards whatever happens
	trap 'meson install -C build --quiet >/dev/null' EXIT
	meson install -C build-asan --quiet >/dev/null || exit 1
	meson test -C build-asan --print-errorlogs "$@" || rc=$?
	meson install -C build --quiet >/dev/null
	trap - EXIT
	logs+=(build-asan/meson-logs/testlog.json)
fi

read -r passed failed skipped < <(python3 - "${logs[@]}" <<'PY'
import json, sys
p = f = s = 0
for line in (l for log in sys.argv[1:] for l in open(log)):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"):
        p += 1
    elif r == "SKIP":
        s += 1
    else:
        f += 1
print(p, f, s)
PY
)
# libFuzzer: a short run of each target over its seed corpus, in its own
# clang build (build-fuzz); each target counts as one test.
fuzzlog=build-fuzz/meson-logs/testlog.json
rm -f "$fuzzlog"
bash contrib/fuzz.sh || rc=1
if [ -f "$fuzzlog" ]; then
	read -r fp ff < <(python3 - "$fuzzlog" <<'PY'
import json, sys
p = f = 0
for line in open(sys.argv[1]):
    if json.loads(line)["result"] == "OK":
        p += 1
    else:
        f += 1
print(p, f)
PY
	)
	passed=$((passed + fp)) failed=$((failed + ff))
else
	echo "contrib/fuzz.sh: no fuzz run (build failed?)"
	failed=$((failed + 1))
fi

if [ "$(id -u)" -eq 0 ] && [ -e /dev/fuse ] && [ "$skipped" -gt 0 ]; then
	echo "$skipped test(s) skipped although running as root with /dev/fuse"
	failed=$((failed + skipped))
elif [ "$skipped" -gt 0 ]; then
	echo "$skipped test(s) skipped (not root or no /dev/fuse)"
fi
echo "$passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
