#!/usr/bin/env python3
"""Concurrent writers in the multithreaded daemon: four processes create
files in the same directories of an 8-layer tree, each directory copied up
by whichever process gets there first, with caches dropped before each
round.  A name resolution racing with the copy-up of its directory once
made a second, stale inode for it, so that a file just created was
ENOENT to the next lstat (1 round in 4 failed).  Ten rounds, no error."""
import multiprocessing
import os
import shutil
import subprocess
import tempfile

from tap import Tap, mount_stratafs, require_root_fuse, unmount, wait_gone

require_root_fuse()
t = Tap()
top = tempfile.mkdtemp(prefix="stratafs-par-")
LAYERS, DIRS, FILES, PROCS = 8, 20, 40, 4
for L in range(LAYERS):
    for i in range(DIRS):
        d = os.path.join(top, f"l{L}", "src", f"d{i}", "s")
        os.makedirs(d, exist_ok=True)
        for j in range(L, FILES, LAYERS):
            with open(os.path.join(d, f"f{j}.c"), "w") as f:
                f.write("x")
lowers = ":".join(os.path.join(top, f"l{L}") for L in range(LAYERS))
M = os.path.join(top, "m")
os.makedirs(M)


def worker(k):
    errs = []
    for dp, dns, fns in os.walk(os.path.join(M, "src")):
        dns.sort()
        for f in sorted(fns):
            if not f.endswith(".c"):
                continue
            src = os.path.join(dp, f)
            obj = src[:-2] + f".{k}.o"
            try:
                os.lstat(src)
                with open(src) as fh:
                    fh.read()
                fd = os.open(obj, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.write(fd, b"o")
                os.close(fd)
                os.lstat(obj)
            except OSError as e:
                errs.append(f"{obj}: {e}")
    return errs


rounds_ok = 0
all_errs = []
for rnd in range(10):
    U, W = os.path.join(top, f"u{rnd}"), os.path.join(top, f"w{rnd}")
    os.makedirs(U)
    os.makedirs(W)
    subprocess.run(["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"])
    mount_stratafs(f"lowerdir={lowers},upperdir={U},workdir={W}", M)
    try:
        with multiprocessing.get_context("fork").Pool(PROCS) as pool:
            errs = [e for r in pool.map(worker, range(PROCS)) for e in r]
        made = sum(1 for dp, _, fns in os.walk(os.path.join(U, "src")) for f in fns
                   if f.endswith(".o"))
        if not errs and made == DIRS * FILES * PROCS:
            rounds_ok += 1
        all_errs += errs[:3] + ([] if made == DIRS * FILES * PROCS else [f"round {rnd}: {made} .o files"])
    finally:
        unmount(M)
        wait_gone(M)
t.ok(rounds_ok == 10, f"4 processes creating in shared copied-up directories: {rounds_ok}/10 "
     "rounds without an error", "\n".join(all_errs[:10]))
shutil.rmtree(top, ignore_errors=True)
t.done()
