#!/usr/bin/env python3
"""The stress run of contrib/stress/stress.py, shortened for CI: six worker
processes for 60 seconds on shared directories of a multithreaded stratafs
mount (copy-up, whiteouts, opaque directories, renames, links, readdir),
then the merged view against what the workers recorded, a remount, the
kernel overlayfs on the resulting upper, and the daemon's memory (no RSS
trend net of its threads; at rest, RSS near the start and no descriptor
more).  One TAP line per check of stress.py; the operation counts are TAP
comments.  First, stress.py's memory and descriptor checks on made-up
samples: what they pass and fail.

  --duration SECONDS   default 60 (the bench run is 600: see stress.py)
  --procs N            default 6
  --seed N             default 1
  --meson              exit 0 on skip (meson's TAP mode)
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

from tap import Tap, require_root_fuse, skip_all, stratafs_bin

HERE = os.path.dirname(os.path.abspath(__file__))
STRESS = os.path.join(HERE, "..", "..", "contrib", "stress", "stress.py")


def load_stress():
    spec = importlib.util.spec_from_file_location("stress", STRESS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def check_memory_checks(t):
    """stress.py's memory and descriptor checks on made-up runs of 60
    samples: what they must pass and what they must fail."""
    st = load_stress()
    ts = [float(i) for i in range(61)]
    # a little noise, the same every time
    noise = [(i * 7919) % 97 - 48 for i in range(61)]

    def trend(rss, thr):
        return st.rss_trend(list(zip(ts, [v + e for v, e in zip(rss, noise)])), thr)

    # the CI run that failed the old check: 3 threads until 45 s, then 4
    # more, each a 1 MiB step under MALLOC_PERTURB_ (6 -> about 9.5 MiB)
    ci_thr = [3 if i < 45 else min(3 + (i - 44), 7) for i in range(61)]
    ok, text = trend([6000 + 1024 * (n - 3) for n in ci_thr], ci_thr)
    t.ok(ok and "per thread" in text,
         "memory check: 1 MiB steps with new threads late in the run are no trend", text)

    # a leak of 300 KiB a second at a steady thread count fails
    thr = [5] * 61
    ok, text = trend([4000 + 300 * i for i in range(61)], thr)
    t.ok(not ok, "memory check: steady growth at a steady thread count fails", text)

    # the same leak with the thread steps of the first case fails too
    ok, text = trend([6000 + 1024 * (n - 3) + 300 * i for i, n in enumerate(ci_thr)], ci_thr)
    t.ok(not ok, "memory check: steady growth beside thread steps fails", text)

    # threads rising with time all through the second half: no verdict
    thr = [2 + min(i // 2, 30) for i in range(61)]
    ok, text = trend([3000 + 200 * i for i in range(61)], thr)
    t.ok(ok and "no trend verdict" in text,
         "memory check: threads rising in step with time give no verdict", text)

    # at rest: level with the start plus what the tables keep passes,
    # more than the tolerance fails, no reading is no verdict
    ok1, text1 = st.rest_check(3100, 4000)
    ok2, text2 = st.rest_check(3100, 3100 + st.REST_TOLERANCE_KIB + 1)
    ok3, _ = st.rest_check(3100, None)
    t.ok(ok1 and not ok2 and ok3,
         "memory check: RSS at rest within the tolerance passes, beyond it fails",
         f"{text1}\n{text2}")
    # a thread left waiting at rest is allowed its buffer, not more
    tol = st.REST_TOLERANCE_KIB + st.REST_PER_THREAD_KIB
    ok1, text1 = st.rest_check(3100, 3100 + tol, 2, 3)
    ok2, text2 = st.rest_check(3100, 3100 + tol + 1, 2, 3)
    t.ok(ok1 and not ok2, "memory check: at rest, a thread more is allowed its buffer only",
         f"{text1}\n{text2}")

    # descriptors: the same set passes; a directory's stack left over fails
    start = {3: "/w", 4: "/u", 5: "/l0", 11: "/dev/fuse"}
    ok1, _, _ = st.descriptors_check(start, dict(start))
    ok2, text2, diag2 = st.descriptors_check(start, {**start, 12: "/u/d0"})
    ok3, _, _ = st.descriptors_check(start, None)
    t.ok(ok1 and not ok2 and diag2 == ["fd 12: /u/d0"] and ok3,
         "descriptor check: one more than at the start fails and is named", text2)


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--procs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--meson", action="store_true")
    args = ap.parse_args(argv)
    require_root_fuse()
    if not os.access(stratafs_bin(), os.X_OK):
        skip_all(f"no stratafs at {stratafs_bin()}")

    t = Tap()
    check_memory_checks(t)
    fd, js = tempfile.mkstemp(prefix="stratafs-stress-", suffix=".json")
    os.close(fd)
    try:
        cmd = [sys.executable, STRESS, "--duration", str(args.duration),
               "--procs", str(args.procs), "--seed", str(args.seed), "--json", js]
        print(f"# {' '.join(cmd)}", flush=True)
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=args.duration + 200,
                               env=dict(os.environ, STRATAFS=stratafs_bin()))
            out, rc = p.stdout.decode(errors="replace"), p.returncode
        except subprocess.TimeoutExpired as e:
            out, rc = (e.stdout or b"").decode(errors="replace"), None
        try:
            with open(js) as f:
                rep = json.load(f)
        except (OSError, ValueError):
            rep = None
        if rep is None or rc is None:
            t.ok(False, "stress.py ran and wrote its report",
                 f"exit status {rc}\n{out[-4000:]}")
            t.done()
        for line in out.splitlines():
            if line.startswith("  ") or line.startswith("operations") or \
                    line.startswith("daemon VmRSS") or line.startswith("daemon at rest") or \
                    line.startswith("errors a race") or \
                    line.startswith("unexpected results"):
                print(f"# {line}", flush=True)
        failed_before = t.failed
        for c in rep["checks"]:
            if c.get("skip"):
                print(f"ok {t.n + 1} - {c['name']} # SKIP {c['skip']}", flush=True)
                t.n += 1
                continue
            diag = "\n".join(c["diag"]) + (f"\n... and {c['more']} more" if c.get("more")
                                           else "")
            t.ok(c["ok"], c["name"], diag)
        t.ok(rc == (1 if t.failed > failed_before else 0),
             f"stress.py exit status {rc} agrees with its checks")
    finally:
        os.unlink(js)
    t.done()


if __name__ == "__main__":
    main(sys.argv[1:])
