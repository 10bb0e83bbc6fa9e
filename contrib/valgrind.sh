#!/bin/bash
# The integration scenarios with every stratafs process (the detached
# daemons included) under valgrind memcheck: full leak check, definite
# leaks count as errors.  One log per process in
# build/meson-logs/valgrind/vg.PID; each test fails on an error in the logs
# of the processes it started (tests/integration/tap.py), and a last check
# fails on any error left in the directory.  Not part of contrib/test.sh:
# it takes far longer than the sanitizer pass (see the README).
#   bash contrib/valgrind.sh              # the default scenarios below
#   bash contrib/valgrind.sh parallel     # not by default: over 13 min unfinished
#   bash contrib/valgrind.sh cli write    # chosen meson tests
# Ends with one line "valgrind: N passed, M failed in S s".
set -uo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null ||
	{ echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
bash contrib/build.sh || exit 1

tests=("$@")
[ ${#tests[@]} -gt 0 ] ||
	tests=(cli write options rootless manylayers diffops compare-kernel)
dir=$PWD/build/meson-logs/valgrind
start=$(date +%s)
# the valgrind test setup (meson.build) sets STRATAFS_VALGRIND_LOG_DIR
meson test -C build --setup valgrind --print-errorlogs "${tests[@]}"
rc=$?
STRATAFS=$PWD/build/stratafs STRATAFS_VALGRIND_LOG_DIR=$dir \
	python3 tests/integration/check_reports.py || rc=1

read -r passed failed < <(python3 - build/meson-logs/testlog-valgrind.json <<'PY'
import json, sys
p = f = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r == "OK":
        p += 1
    else:
        f += 1
print(p, f)
PY
)
[ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1   # the last check
echo "valgrind: $passed passed, $failed failed in $(( $(date +%s) - start )) s"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
