#!/usr/bin/env python3
"""The end of a sanitizer or valgrind run: fail if any process left a
report.  Each integration test already checks the reports that appear while
it runs (tap.py); this catches the rest: unit tests, tests that do not use
tap.Tap, daemons that outlived their test.

Reads STRATAFS_SANITIZER_LOG_DIR and/or STRATAFS_VALGRIND_LOG_DIR (see
tap.py).  Waits for the daemons of this build (STRATAFS) that were started
for the same log directory to end (not those of another run), then
prints one TAP line per directory.  Every log it has looked at is moved to
DIR/checked/ (clean) or DIR/reported/ (with a problem), so that the next
run starts empty and no report is counted twice.  Without either variable
it checks nothing and skips."""
import os
import sys
import time

import tap
from tap import Tap, skip_all

if not (tap.SAN_DIR or tap.VG_DIR):
    skip_all("neither STRATAFS_SANITIZER_LOG_DIR nor STRATAFS_VALGRIND_LOG_DIR is set")

t = Tap()
gone = tap.wait_own_daemons_gone(run_wide=True)
t.ok(gone, "no daemon of this build is left running",
     "pids " + ", ".join(tap._describe(p) for p in tap.own_daemon_pids(run_wide=True)))
stamp = time.strftime("%Y%m%d-%H%M%S")
for d, kind in ((tap.SAN_DIR, "sanitizer report"), (tap.VG_DIR, "valgrind error")):
    if not d:
        continue
    files = sorted(f for f in tap._log_files() if os.path.dirname(f) == d)
    problems = []
    for f in files:
        p = tap.report_problems(f)
        dest = os.path.join(d, "reported" if p else "checked", stamp)
        os.makedirs(dest, exist_ok=True)
        os.rename(f, os.path.join(dest, os.path.basename(f)))
        if p:
            problems.append(p.replace(f, os.path.join(dest, os.path.basename(f)), 1))
    t.ok(not problems, f"no {kind} in {d} ({len(files)} logs)", "\n".join(problems))
# the lines above are the whole verdict: done() must not check again
tap.SAN_DIR = tap.VG_DIR = None
t.done()
