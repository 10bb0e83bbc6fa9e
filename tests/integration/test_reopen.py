#!/usr/bin/env python3
"""Opening a file whose name is gone: the object itself, not the name.

A process may hold a file that has lost its name (an O_PATH fd, an open
racing with an unlink) and open it again through /proc/self/fd.  A local
filesystem and the kernel overlayfs open that very object.  stratafs once
opened whatever its old name led to by then: a whiteout (ENXIO), nothing
(ENOENT), or the file renamed over it, so that a write meant for the old
file landed in the new one.  The stress test (contrib/stress) found it as
ENXIO from open() under parallel unlinks.

Each case runs on stratafs and, as a reference, on the kernel overlayfs
(skipped where it does not mount); both must give the expected outcome.
"""
import os
import shutil
import subprocess
import sys
import tempfile

from tap import Tap, is_mounted, mount_stratafs, require_root_fuse, unmount, wait_gone


def reopen(fd, flags=os.O_RDONLY):
    try:
        f = os.open(f"/proc/self/fd/{fd}", flags)
    except OSError as e:
        return e.strerror
    try:
        return os.pread(f, 100, 0)
    finally:
        os.close(f)


def put(path, data):
    with open(path, "w") as f:
        f.write(data)


def get(path):
    with open(path) as f:
        return f.read()


def case_replaced_upper(m):
    put(f"{m}/x", "X data")
    put(f"{m}/y", "Y data")
    fd = os.open(f"{m}/x", os.O_PATH)
    try:
        os.rename(f"{m}/y", f"{m}/x")
        got = reopen(fd)
    finally:
        os.close(fd)
    return got == b"X data", f"reopen read {got!r}, expected b'X data'"


def case_write_to_replaced(m):
    put(f"{m}/a", "A")
    put(f"{m}/b", "B")
    fd = os.open(f"{m}/a", os.O_PATH)
    try:
        os.rename(f"{m}/b", f"{m}/a")
        w = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY)
        os.pwrite(w, b"meant for the old a", 0)
        os.close(w)
    finally:
        os.close(fd)
    got = get(f"{m}/a")
    return got == "B", f"the file now named a holds {got!r}, expected 'B'"


def case_unlinked_copied_up(m):
    with open(f"{m}/low", "a") as f:
        f.write("+appended")
    fd = os.open(f"{m}/low", os.O_PATH)
    try:
        os.unlink(f"{m}/low")      # a whiteout takes the name
        got = reopen(fd)
    finally:
        os.close(fd)
    return got == b"lower\n+appended", f"reopen gave {got!r}"


def case_unlinked_upper(m):
    put(f"{m}/n", "N data")
    fd = os.open(f"{m}/n", os.O_PATH)
    try:
        os.unlink(f"{m}/n")
        got = reopen(fd, os.O_RDWR)
    finally:
        os.close(fd)
    return got == b"N data", f"reopen for read-write gave {got!r}"


def case_unlinked_lower_readonly(m):
    fd = os.open(f"{m}/low2", os.O_PATH)
    try:
        os.unlink(f"{m}/low2")
        put(f"{m}/low2", "new low2")
        got = reopen(fd)
    finally:
        os.close(fd)
    return got == b"lower 2\n", f"reopen gave {got!r}"


def case_hardlink_known_name_unlinked(m):
    """hl-a and hl-b are one upper file (nlink 2) and L holds hl-a too, so
    unlinking hl-a leaves a whiteout there.  Only hl-a was looked up."""
    fd = os.open(f"{m}/hl-a", os.O_PATH)
    try:
        os.unlink(f"{m}/hl-a")
        try:
            st = os.fstat(fd)
            got = (oct(st.st_mode), st.st_nlink)
        except OSError as e:
            got = e.strerror
        try:
            os.truncate(f"/proc/self/fd/{fd}", 2)
            tr = "ok"
        except OSError as e:
            tr = e.strerror
    finally:
        os.close(fd)
    try:
        b = get(f"{m}/hl-b")
    except OSError as e:
        b = e.strerror
    ok = got == (oct(0o100644), 1) and tr == "ok" and b == "hl"
    return ok, (f"fstat gave {got}, expected ('0o100644', 1); truncate through the fd: "
                f"{tr}; hl-b reads {b!r}, expected 'hl'")


CASES = [
    ("upper file renamed over: reopen reads the old file", case_replaced_upper),
    ("upper file renamed over: a write through a reopen does not reach the new file",
     case_write_to_replaced),
    ("copied-up lower file unlinked (whiteout at its name): reopen reads it",
     case_unlinked_copied_up),
    ("upper file unlinked: reopen for read-write works", case_unlinked_upper),
    ("lower file unlinked and its name re-created: reopen reads the lower file",
     case_unlinked_lower_readonly),
]


def main():
    require_root_fuse()
    t = Tap()
    top = tempfile.mkdtemp(prefix="stratafs-reopen-")
    try:
        L = os.path.join(top, "L")
        os.makedirs(L)
        put(f"{L}/low", "lower\n")
        put(f"{L}/low2", "lower 2\n")
        put(f"{L}/hl-a", "lower hl-a\n")
        for kind in ("stratafs", "kernel"):
            U, W, M = (os.path.join(top, kind + x) for x in ("-u", "-w", "-m"))
            for d in (U, W, M):
                os.makedirs(d)
            put(f"{U}/hl-a", "hl")
            os.link(f"{U}/hl-a", f"{U}/hl-b")
            opts = f"lowerdir={L},upperdir={U},workdir={W}"
            if kind == "kernel":
                r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, M],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    print(f"# kernel overlayfs does not mount: {r.stderr.strip()}")
                    continue
            else:
                mount_stratafs(opts, M)
            try:
                for name, fn in CASES:
                    t.run(f"{kind}: {name}", fn, M)
                t.run(f"{kind}: a hardlinked file whose looked-up name was unlinked: "
                      "fstat and truncate through a held fd",
                      case_hardlink_known_name_unlinked, M)
            finally:
                unmount(M)
                if kind == "stratafs":
                    t.ok(not is_mounted(M) and wait_gone(M), f"{kind}: unmounted, daemon gone")
            # nothing was written below
            t.ok(get(f"{L}/low") == "lower\n" and get(f"{L}/low2") == "lower 2\n",
                 f"{kind}: the lower layer is unchanged")
    finally:
        shutil.rmtree(top, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    main()
