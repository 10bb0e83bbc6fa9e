#!/usr/bin/env python3
"""Data integrity of the writable union: strata-fsx (tests/tools) on files of
a stratafs mount with lowerdir=L0:L1,upperdir=U,workdir=W.

Runs, each one TAP line and each on a fresh upper and work directory:
  - a 3 MiB lower file of random data, copied up by the first write (plain,
    with O_DIRECT, without mmap);
  - a 16 MiB sparse lower file with two 64 KiB data islands, in a directory
    that both lowers have (the parent is copied up too);
  - new files created through the mount (in the root, and in a lower-only
    directory).
A run passes if strata-fsx finds no mismatch, and, after the unmount, the
upper file holds exactly what strata-fsx expects (its model, dumped with -d)
and the lower layers are byte-identical to what they were (sha256 of every
file; no name added or removed).  A last line checks the lowers once more.

  --against kernel   the same runs on the kernel overlayfs: validates
                     strata-fsx and this harness, no stratafs involved
  --ops N            operations per run (default 20000; the long run,
                     contrib/stress/fsx-long.sh, uses 100000)
  --run-timeout S    seconds one strata-fsx run may take (default 240, or
                     10 ms per operation if that is more)
  --only REGEX       only the runs whose name matches
  --keep             keep the temporary directory
  --meson            exit 0 on skip and failure: the TAP lines carry the
                     verdict (meson's TAP mode counts any other exit as an error)

The daemon is $STRATAFS (default build/stratafs), the tool $STRATA_FSX
(default build/tests/tools/strata-fsx).  Needs root and /dev/fuse (for the
kernel run: root and overlayfs).  If stratafs refuses upperdir= or the mount
is read-only, the whole test is skipped: stratafs has no writable mode yet.
"""
import argparse
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

from tap import (Tap, leave_top, is_mounted, mount_stratafs, probe_writable, require_root_fuse, skip_all,
                 stratafs_bin, unmount, wait_gone)

MiB = 1 << 20
KiB = 1 << 10
RUN_TIMEOUT = 240


def fsx_bin():
    b = os.environ.get("STRATA_FSX")
    if not b:
        here = os.path.dirname(os.path.abspath(__file__))
        b = os.path.join(here, "..", "..", "build", "tests", "tools", "strata-fsx")
    return os.path.abspath(b)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(MiB)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def snapshot(root):
    """Every name under root, with the sha256 of regular files."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        out[rel] = "dir"
        for n in files:
            p = os.path.join(dirpath, n)
            out[os.path.join(rel, n)] = sha256_file(p) if os.path.isfile(p) else "other"
    return out


def build_layers(top):
    """L0 is the top lower layer, L1 the bottom one."""
    rnd = random.Random(20240601)
    L0 = os.path.join(top, "L0")
    L1 = os.path.join(top, "L1")
    for d in (L0, L1, os.path.join(L0, "d"), os.path.join(L1, "d"),
              os.path.join(L1, "lonely")):
        os.makedirs(d, exist_ok=True)
    # 3 MiB of random data, in the bottom layer only.
    with open(os.path.join(L1, "big.bin"), "wb") as f:
        f.write(rnd.randbytes(3 * MiB))
    # 16 MiB, sparse: data islands at 1 MiB (aligned) and 9 MiB + 12345.
    sp = os.path.join(L0, "d", "sparse.bin")
    with open(sp, "wb") as f:
        f.truncate(16 * MiB)
        f.seek(1 * MiB)
        f.write(rnd.randbytes(64 * KiB))
        f.seek(9 * MiB + 12345)
        f.write(rnd.randbytes(64 * KiB))
    # The bottom layer's sparse.bin is shadowed; d is a merged directory.
    with open(os.path.join(L1, "d", "sparse.bin"), "wb") as f:
        f.write(b"shadowed: must never be read through the mount\n" * 100)
    with open(os.path.join(L1, "d", "below"), "w") as f:
        f.write("from L1\n")
    with open(os.path.join(L0, "d", "above"), "w") as f:
        f.write("from L0\n")
    st = os.stat(sp)
    return L0, L1, st.st_blocks * 512


class Target:
    """Mounts the union, stratafs or the kernel overlayfs."""

    def __init__(self, kind, top, L0, L1):
        self.kind = kind
        self.top = top
        self.L0, self.L1 = L0, L1
        self.U = os.path.join(top, "U")
        self.W = os.path.join(top, "W")
        self.M = os.path.join(top, "M")
        os.makedirs(self.M, exist_ok=True)

    def fresh(self):
        for d in (self.U, self.W):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)

    def opts(self):
        return f"lowerdir={self.L0}:{self.L1},upperdir={self.U},workdir={self.W}"

    def mount(self):
        if self.kind == "kernel":
            r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                                self.opts(), self.M],
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                raise RuntimeError(f"mount -t overlay failed: {r.stderr.strip()}")
        else:
            mount_stratafs(self.opts(), self.M)

    def umount(self):
        """Unmount; returns a problem string or None."""
        unmount(self.M)
        if is_mounted(self.M):
            subprocess.run(["umount", "-l", self.M], capture_output=True)
            return "the mount did not go away with a plain unmount"
        if self.kind != "kernel" and not wait_gone(self.M, timeout=60):
            return "stratafs did not exit within 60 s of the unmount"
        return None




def bail_out(why):
    print("1..0")
    print(f"Bail out! {why}", flush=True)
    return 1


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", choices=("stratafs", "kernel"), default="stratafs")
    ap.add_argument("--ops", type=int, default=20000)
    ap.add_argument("--run-timeout", type=float, default=None)
    ap.add_argument("--only", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--meson", action="store_true")
    args = ap.parse_args(argv)
    global RUN_TIMEOUT
    RUN_TIMEOUT = args.run_timeout or max(RUN_TIMEOUT, args.ops / 100)

    if args.against == "kernel":
        if os.geteuid() != 0:
            skip_all("needs root")
    else:
        require_root_fuse()
        if not os.access(stratafs_bin(), os.X_OK):
            return bail_out(f"stratafs binary not found or not executable: "
                            f"{stratafs_bin()} (set STRATAFS)")
    fsx = fsx_bin()
    if not os.access(fsx, os.X_OK):
        return bail_out(f"strata-fsx not found or not executable: {fsx} "
                        f"(set STRATA_FSX)")

    top = tempfile.mkdtemp(prefix="stratafs-fsx-")
    os.chmod(top, 0o755)
    try:
        return run_all(args, fsx, top)
    finally:
        leave_top(top, args.keep)


def run_all(args, fsx, top):
    L0, L1, sparse_alloc = build_layers(top)
    tgt = Target(args.against, top, L0, L1)

    why = probe_writable(tgt)
    if why is not None:
        why = " ".join(why.split())
        if args.against == "kernel":
            skip_all(f"the kernel overlayfs does not mount writable here: {why}")
        if "upperdir" not in why and "Read-only" not in why:
            return bail_out(f"stratafs does not mount with upperdir: {why}")
        print(f"# {why}", flush=True)
        skip_all("stratafs has no writable mode yet")

    before = {"L0": snapshot(L0), "L1": snapshot(L1)}
    t = Tap()
    print(f"# target: {args.against}; {args.ops} ops per run; "
          f"sparse lower file allocates {sparse_alloc // KiB} KiB of 16 MiB", flush=True)

    # name, file in the mount, seed, -l, extra flags
    N = args.ops
    runs = [
        ("lower 3 MiB file, copy-up, mmap", "big.bin", 1, "4M", []),
        ("lower 3 MiB file, copy-up, mmap + O_DIRECT", "big.bin", 2, "4M", ["-D"]),
        ("lower 3 MiB file, copy-up, no mmap", "big.bin", 3, "4M", ["-M"]),
        ("sparse 16 MiB lower file, copy-up, mmap", "d/sparse.bin", 4, "16M", []),
        ("sparse 16 MiB lower file, copy-up, O_DIRECT", "d/sparse.bin", 5, "16M", ["-D"]),
        ("new file in the root, mmap", "new.bin", 6, "1M", []),
        ("new file in a lower-only directory, mmap + O_DIRECT", "lonely/new.bin", 7,
         "1M", ["-D"]),
    ]
    for name, rel, seed, maxlen, extra in runs:
        if args.only and not re.search(args.only, name):
            continue
        t.run(f"{name}: {N} ops, seed {seed}{' ' + ' '.join(extra) if extra else ''}",
              one_run, tgt, fsx, rel, seed, maxlen, extra, N, before)

    after = {"L0": snapshot(L0), "L1": snapshot(L1)}
    t.ok(after == before, "the lower layers are byte-identical to before (sha256)",
         snapshot_diff(before, after))
    print(f"1..{t.n}", flush=True)
    return 1 if t.failed and not args.meson else 0


def snapshot_diff(a, b):
    out = []
    for layer in a:
        for k in sorted(set(a[layer]) | set(b[layer])):
            if a[layer].get(k) != b[layer].get(k):
                out.append(f"{layer}/{k}: {a[layer].get(k)} -> {b[layer].get(k)}")
    return "\n".join(out)


def one_run(tgt, fsx, rel, seed, maxlen, extra, nops, before):
    tgt.fresh()
    dump = os.path.join(tgt.top, "model.dump")
    if os.path.exists(dump):
        os.unlink(dump)
    tgt.mount()
    argv = [fsx, "-N", str(nops), "-S", str(seed), "-l", maxlen, "-d", dump] + \
        extra + [os.path.join(tgt.M, rel)]
    t0 = time.monotonic()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        out = r.stdout + r.stderr
        rc = r.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") + \
            (e.stderr or b"").decode(errors="replace")
        rc = None
    finally:
        secs = time.monotonic() - t0
        problem = tgt.umount()

    diag = [" ".join(argv), out.rstrip()]
    if rc is None:
        return False, "\n".join(diag + [f"strata-fsx did not finish in {RUN_TIMEOUT} s"])
    summary = f"strata-fsx: {nops} ops, 0 mismatches, seed {seed}"
    if rc == 0:
        for line in out.splitlines():
            if line != summary:
                print(f"# {line}", flush=True)
    print(f"# {rel}: {secs:.1f} s", flush=True)
    if rc != 0 or summary not in out.splitlines():
        return False, "\n".join(diag + [f"exit status {rc}"])
    if problem:
        return False, "\n".join(diag + [problem])

    # What the mount wrote must be in the upper layer, and only there.
    up = os.path.join(tgt.U, rel)
    if not os.path.isfile(up):
        return False, f"no {rel} in the upper layer after the run"
    with open(dump, "rb") as f:
        want = f.read()
    with open(up, "rb") as f:
        got = f.read()
    if got != want:
        first = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]),
                     min(len(got), len(want)))
        return False, (f"upper {rel} differs from strata-fsx's model after the unmount: "
                       f"size {len(got)} vs {len(want)}, first difference at {first}")
    now = {"L0": snapshot(tgt.L0), "L1": snapshot(tgt.L1)}
    if now != before:
        return False, "a lower layer changed:\n" + snapshot_diff(before, now)
    return True, None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
