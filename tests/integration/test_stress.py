#!/usr/bin/env python3
"""The stress run of contrib/stress/stress.py, shortened for CI: six worker
processes for 60 seconds on shared directories of a multithreaded stratafs
mount (copy-up, whiteouts, opaque directories, renames, links, readdir),
then the merged view against what the workers recorded, a remount, the
kernel overlayfs on the resulting upper, and the daemon's RSS trend.  One
TAP line per check of stress.py; the operation counts are TAP comments.

  --duration SECONDS   default 60 (the bench run is 600: see stress.py)
  --procs N            default 6
  --seed N             default 1
  --meson              exit 0 on skip (meson's TAP mode)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from tap import Tap, require_root_fuse, skip_all, stratafs_bin

HERE = os.path.dirname(os.path.abspath(__file__))
STRESS = os.path.join(HERE, "..", "..", "contrib", "stress", "stress.py")


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
                    line.startswith("daemon VmRSS") or line.startswith("errors a race") or \
                    line.startswith("unexpected results"):
                print(f"# {line}", flush=True)
        for c in rep["checks"]:
            if c.get("skip"):
                print(f"ok {t.n + 1} - {c['name']} # SKIP {c['skip']}", flush=True)
                t.n += 1
                continue
            diag = "\n".join(c["diag"]) + (f"\n... and {c['more']} more" if c.get("more")
                                           else "")
            t.ok(c["ok"], c["name"], diag)
        t.ok(rc == (1 if t.failed else 0), f"stress.py exit status {rc} agrees with its checks")
    finally:
        os.unlink(js)
    t.done()


if __name__ == "__main__":
    main(sys.argv[1:])
