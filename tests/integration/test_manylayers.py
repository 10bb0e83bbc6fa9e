#!/usr/bin/env python3
"""500 lower layers: the kernel overlayfs's maximum and containers-storage's
maxDepth.  Every layer adds a file, shadows a common name and whites out the
file of the layer below it; the merged view must match the kernel's on the
same layers (mounted with short relative paths: the kernel's mount data is
one page), and the option string (about 26 KB with long absolute paths, as
containers-storage builds it) must work for stratafs."""
import os
import shutil
import subprocess
import tempfile

from tap import Tap, is_mounted, mount_stratafs, require_root_fuse, unmount, wait_gone

require_root_fuse()
t = Tap()
N = 500
top = tempfile.mkdtemp(prefix="stratafs-many-")
# long layer paths, like containers-storage's l/<26 chars> links
base = os.path.join(top, "overlay-layers-with-a-long-path-like-containers-storage")
os.makedirs(base)
names = []
for i in range(N):
    # layer 0 is the top
    d = os.path.join(base, f"L{i:03d}-" + "x" * 40)
    os.makedirs(os.path.join(d, "shared"))
    with open(os.path.join(d, f"f{i:03d}"), "w") as f:
        f.write(f"layer {i}\n")
    with open(os.path.join(d, "common"), "w") as f:
        f.write(f"common from {i}\n")
    with open(os.path.join(d, "shared", f"s{i:03d}"), "w") as f:
        f.write(f"{i}")
    if i % 7 == 3 and i + 1 < N:
        # whiteout of the next layer's own file
        os.mknod(os.path.join(d, f"f{i + 1:03d}"), 0o600 | 0o020000, os.makedev(0, 0))
    names.append(d)

opts = "lowerdir=" + ":".join(names)
t.ok(len(opts) > 24000, f"option string is {len(opts)} bytes")

smnt = os.path.join(top, "s")
kmnt = os.path.join(top, "k")
os.makedirs(smnt)
os.makedirs(kmnt)


def snapshot(root):
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in files:
            p = os.path.join(dirpath, n)
            with open(p) as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


try:
    mount_stratafs(opts, smnt)
    t.ok(is_mounted(smnt), "stratafs mounts 500 layers with a long option string")
    # the kernel, through short symlinks: its mount data is one page
    short = os.path.join(top, "short")
    os.makedirs(short)
    for i, n in enumerate(names):
        os.symlink(n, os.path.join(short, str(i)))
    rel = ":".join(str(i) for i in range(N))
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "ro,lowerdir=" + rel, kmnt],
                       cwd=short, capture_output=True, text=True)
    if r.returncode != 0:
        t.ok(False, "kernel overlayfs mounts the same 500 layers", r.stderr)
    else:
        s = snapshot(smnt)
        k = snapshot(kmnt)
        t.ok(s == k, f"merged view equals the kernel's ({len(s)} files)",
             "\n".join(sorted(set(s.items()) ^ set(k.items()))[:20]))
    with open(os.path.join(smnt, "common")) as f:
        t.ok(f.read() == "common from 0\n", "the top layer's file wins")
    with open(os.path.join(smnt, f"f{N - 1:03d}")) as f:
        t.ok(f.read() == f"layer {N - 1}\n", "a file from the bottom layer is visible")
    t.ok(not os.path.exists(os.path.join(smnt, "f004")), "a whiteout 497 layers deep hides its name")
    t.ok(len(os.listdir(os.path.join(smnt, "shared"))) == N,
         "a directory merged from 500 layers lists all entries")
finally:
    unmount(smnt)
    unmount(kmnt)
    wait_gone(smnt)

shutil.rmtree(top, ignore_errors=True)
t.done()
