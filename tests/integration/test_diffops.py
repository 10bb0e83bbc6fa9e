#!/usr/bin/env python3
"""Seeded random differential test of the write path, as TAP.

One three-layer lower stack, in the kernel's marker format (0/0 character
device whiteouts, trusted.overlay.opaque=y), is built once and serves as
the read-only lowers of every mount.  For each seed:

  MNT_A  mount -t overlay overlay -o lowerdir=L0:L1:L2,upperdir=UA,workdir=WA
  MNT_B  $STRATAFS -f -o lowerdir=L0:L1:L2,upperdir=UB,workdir=WB
         (with --self-check: a second kernel overlay, so the harness can be
          validated without stratafs; it must report no mismatch)

random.Random(seed) draws a sequence of operations (create with and without
O_EXCL, pwrite, append, truncate, ftruncate, read, pread, open O_TRUNC,
unlink, mkdir, rmdir, rename with and without RENAME_NOREPLACE /
RENAME_EXCHANGE, symlink, readlink, link, chmod, chown, utimensat with
explicit times, mkfifo, set/get/remove/listxattr, stat, lstat, listdir, and
two that hold an fd: read through an O_RDONLY fd opened before a write
copies the file up, and fstat/read of an open file after unlink) over a
fixed pool of paths: names of the lowers, whiteout names, new names in
merged, opaque, lower-only and new directories, and names that cannot exist.
Each operation runs on A and then on B; the two outcomes (value or errno)
must be equal.  The argument choice depends only on the seed and on the
state of mount A, so a seed replays the same sequence against any stratafs.

Four TAP lines per seed:

  seed S: ops                      every operation gave the same outcome
                                   (stops after --max-mismatches)
  seed S: final tree               treedump of A == treedump of B
  seed S: kernel on stratafs upper both mounts gone, the kernel mounts UA and
                                   UB (read-only, fresh workdirs): the two
                                   views are equal -- the layers stratafs
                                   wrote are interchangeable with the kernel's
  seed S: stratafs remount         stratafs mounted again on UB/WB shows what
                                   the kernel shows on UA (persistence)

and a last line: the lower layers were not modified.

What is compared.  st_ino is never compared across mounts; instead a stat
reports which other pool paths share its inode (within one mount).  Times:
atime and ctime are ignored.  mtime is normalised: a value older than the
start of the seed (the lowers' fixture times, copied up or not, and the
explicit past times this test sets with utimensat) is compared exactly; a
newer one is the filesystem's "now", which differs between any two mounts,
so it compares as the token "new".  This catches a lost mtime on copy-up as
well as a missing update, without comparing clocks.  The same normalisation
applies to the tree dumps.  Directory st_size is not compared (it is the
backing filesystem's business; treedump leaves it out as well).  readdir
order is sorted away; names readdir lists but lstat denies (kernel phantoms)
are treated as absent.

The kernel mounts pin the options whose defaults depend on the kernel's
configuration (redirect_dir=off, index=off, metacopy=off): with them, a
rename of a directory that has lower content fails with EXDEV, and a
hardlinked lower file is copied up alone (its other names keep the lower
inode and data).  These are the semantics stratafs must match.

Needs root, /dev/fuse (not with --self-check) and a kernel that mounts an
overlay with an upper; otherwise prints "1..0 # SKIP reason".  It also
skips while stratafs refuses upperdir ("not implemented").

An operation of several steps (open, write, fstat, close...) that fails
names the step: "EIO at fstat".  The first failing step wins; an error of
close (FUSE flush) is reported only if everything before it worked.

With --shrink, the first mismatch of each seed is reduced by delta
debugging: subsets of the operations before it are replayed on fresh mounts
until a minimal sequence is found after which that operation still gives
the same two outcomes; the sequence is printed under the ops line.

Usage:
  sudo python3 tests/integration/test_diffops.py              # 8 seeds x 300
  sudo python3 tests/integration/test_diffops.py --self-check # kernel vs kernel
  sudo python3 tests/integration/test_diffops.py --seed 42 --ops 5000 -v
  sudo python3 tests/integration/test_diffops.py --seed 3 --shrink
Options: --seed N (repeatable), --ops M, --max-mismatches K (per seed,
default 10), -v (print every operation and both outcomes), --shrink,
--shrink-budget N (replays per shrink, default 400), --stratafs-opts O (more
-o options, e.g. timeout=0 to rule out the FUSE attribute cache),
--exclude REGEX (leave matching paths out of the pool, to look past a known
bug; the default sequences change),
--seed-timeout S (kill a stratafs that has not finished a phase in S
seconds: its mount then fails with ENOTCONN instead of hanging), --keep
(keep the temp dirs), --meson (exit 0 on skip and on failure: meson's TAP
protocol turns a non-zero exit into ERROR).
Environment: STRATAFS (default <repo>/build/stratafs), TMPDIR.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import hashlib
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fixtures  # noqa: E402
import tap  # noqa: E402
import treedump  # noqa: E402

DEFAULT_SEEDS = (1, 2, 3, 4, 5, 6, 7, 8)
DEFAULT_OPS = 300
MAX_MISMATCHES = 10
MOUNT_TIMEOUT = 10.0 * tap.SLOW   # SLOW: a daemon under valgrind (tap.py)
EXIT_TIMEOUT = 10.0 * tap.SLOW
KERNEL_PIN = "redirect_dir=off,index=off,metacopy=off"
MAX_DIAG = 40

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
AT_FDCWD = -100


# ================================================================ lowers

def populate(fx: fixtures.Fixture) -> None:
    """The lower stack; layer 0 is the top."""
    # L2, the bottom layer
    fx.file(2, "f1", data=b"bottom f1\n" * 7)
    fx.file(2, "f2", data=b"bottom f2, shadowed by L0\n")
    fx.file(2, "empty", data=b"")
    fx.file(2, "big", data=fixtures.seeded_bytes(11, 100_000))
    fx.symlink(2, "sym", "f1")
    fx.symlink(2, "dsym", "d")
    fx.symlink(2, "dangling", "no/such/target")
    fx.fifo(2, "fifo", mode=0o640)
    fx.file(2, "hl1", data=b"hardlinked pair in L2\n")
    fx.hardlink(2, "hl1", "hl2")
    fx.file(2, "xf", data=b"has xattrs\n",
            xattrs={"user.a": b"1", "user.b": b"", "user.bin": bytes(range(40))})
    fx.file(2, "suid", data=b"#!/bin/true\n", mode=0o4755)
    fx.file(2, "sgid", data=b"sgid\n", mode=0o2755, gid=1000)
    fx.file(2, "owned", data=b"owned by 1000\n", mode=0o600, uid=1000, gid=1000)
    fx.file(2, "d/a")
    fx.file(2, "d/b")
    fx.file(2, "d/sub/c")
    fx.file(2, "d/sub/deep/e")
    fx.dir(2, "m", mode=0o700, xattrs={"user.layer": b"L2"})
    fx.file(2, "m/low")
    fx.file(2, "m/shared", data=b"L2 shared\n")
    fx.file(2, "opq/hidden")
    fx.file(2, "opq/sub/x")
    fx.file(2, "gone", data=b"whited out in L1\n")
    fx.file(2, "gonedir/x")
    fx.file(2, "em/gone")
    fx.file(2, "low-only/f")
    fx.dir(2, "low-only/inner")
    fx.dir(2, "emptylow", mode=0o750, uid=1000)
    # L1, the middle layer
    fx.file(1, "f3", data=b"middle f3\n")
    fx.file(1, "m/mid")
    fx.file(1, "m/shared", data=b"L1 shared\n")
    fx.dir(1, "m", mode=0o755, uid=1000, gid=1000, xattrs={"user.layer": b"L1"})
    fx.dir(1, "opq", mode=0o751)
    fx.opaque(1, "opq", "trusted")
    fx.file(1, "opq/own")
    fx.whiteout(1, "gone", "chardev")
    fx.whiteout(1, "gonedir", "chardev")
    fx.dir(1, "em")
    fx.whiteout(1, "em/gone", "chardev")     # em: merged and logically empty
    fx.file(1, "d/mid")
    fx.dir(1, "xd", xattrs={"user.dir": b"yes"})
    fx.file(1, "xd/in", xattrs={"user.k": b"v"})
    # L0, the top lower layer
    fx.file(0, "f2", data=b"top f2\n")
    fx.file(0, "m/top")
    fx.file(0, "d/sub/top")
    fx.whiteout(0, "d/b", "chardev")
    fx.file(0, "ldir/x")
    fx.file(0, "t1", data=b"hardlinked pair in L0\n", mode=0o640)
    fx.hardlink(0, "t1", "t2")
    fx.dir(0, "emptytop")


NEW_DIRS = ("", "d", "d/sub", "m", "opq", "em", "emptylow", "emptytop", "ldir",
            "low-only", "nd", "nd/ne", "gonedir", "dsym", "xd")
EXTRA = ("nd", "nd/ne", "nd2", "f1/x", "nodir/x", "fifo/x", "gone/x",
         "N" * 255, "N" * 256)


def make_pool(fx: fixtures.Fixture) -> list[str]:
    """Every path an operation may name, in a fixed order."""
    names = {p.lstrip("/") for p in fx.model_tree()} - {""}
    names |= {p for _, p, _ in fx.whiteouts}
    names |= {"opq/hidden", "opq/sub", "opq/sub/x"}
    for d in NEW_DIRS:
        for n in ("n0", "n1"):
            names.add(f"{d}/{n}" if d else n)
    names |= set(EXTRA)
    return sorted(names)


# ============================================================ operations

_libc = ctypes.CDLL(None, use_errno=True)


def renameat2(src: str, dst: str, flags: int) -> None:
    r = _libc.renameat2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst),
                        ctypes.c_uint(flags))
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), src)


def ename(e: int) -> str:
    return errno.errorcode.get(e, str(e))


def type_of(mode: int) -> str:
    return treedump.type_name(mode)


class Ctx:
    """One mount as seen by the operations."""

    def __init__(self, root: str, pool: list[str], new_after: int):
        self.root = root
        self.pool = pool
        self.new_after = new_after     # mtimes >= this are "new"

    def p(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def mtime(self, ns: int):
        return ns if ns < self.new_after else "new"

    def norm_stat(self, st: os.stat_result, rel: str) -> dict:
        t = type_of(st.st_mode)
        r = {"type": t, "mode": oct(stat.S_IMODE(st.st_mode)),
             "uid": st.st_uid, "gid": st.st_gid, "nlink": st.st_nlink,
             "mtime": self.mtime(st.st_mtime_ns)}
        if t != "dir":
            r["size"] = st.st_size
        same = []
        for q in self.pool:
            if q == rel:
                continue
            try:
                sq = os.lstat(self.p(q))
            except OSError:
                continue
            if (sq.st_dev, sq.st_ino) == (st.st_dev, st.st_ino):
                same.append(q)
        if same:
            r["same_inode_as"] = same
        return r


def _s(label: str, fn, *args, **kw):
    """Call one step of a multi-step operation; an OSError it raises names
    the step (the first step of an operation, usually open, is unnamed)."""
    try:
        return fn(*args, **kw)
    except OSError as e:
        e.step = label
        raise


def _open(path: str, flags: int, mode: int = 0o644) -> int:
    return os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, mode)


def _writeall(fd: int, data: bytes, off: int | None = None) -> int:
    n = 0
    view = memoryview(data)
    while view:
        k = os.write(fd, view) if off is None else os.pwrite(fd, view, off + n)
        if k == 0:
            break
        n += k
        view = view[k:]
    return n


def _content(data: bytes):
    if len(data) <= 48:
        return data
    return f"{len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:16]}"


def _readall(fd: int) -> bytes:
    chunks = []
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def _using(fd: int, fn, label: str = "close"):
    """fn(fd), then close fd.  The first error wins: a failing step is
    reported as such, a failing close (FUSE flush) only if all else worked."""
    try:
        r = fn(fd)
    except BaseException:
        try:
            os.close(fd)
        except OSError:
            pass
        raise
    _s(label, os.close, fd)
    return r


def op_create(c: Ctx, a: dict):
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if a["excl"] else 0)
    fd = _open(c.p(a["path"]), flags, a["mode"])
    return _using(fd, lambda fd: _s("write", _writeall, fd, a["data"]) if a["data"] else 0)


def op_write(c: Ctx, a: dict):
    fd = _open(c.p(a["path"]), os.O_WRONLY)
    return _using(fd, lambda fd: _s("pwrite", _writeall, fd, a["data"], a["off"]))


def op_append(c: Ctx, a: dict):
    fd = _open(c.p(a["path"]), os.O_WRONLY | os.O_APPEND)
    return _using(fd, lambda fd: (_s("write", _writeall, fd, a["data"]),
                                  _s("lseek", os.lseek, fd, 0, os.SEEK_CUR)))


def op_truncate(c: Ctx, a: dict):
    os.truncate(c.p(a["path"]), a["size"])
    return 0


def op_ftruncate(c: Ctx, a: dict):
    def body(fd):
        _s("ftruncate", os.ftruncate, fd, a["size"])
        return _s("fstat", os.fstat, fd).st_size
    return _using(_open(c.p(a["path"]), os.O_RDWR), body)


def op_read(c: Ctx, a: dict):
    fd = _open(c.p(a["path"]), os.O_RDONLY)
    return _using(fd, lambda fd: _content(_s("read", _readall, fd)))


def op_pread(c: Ctx, a: dict):
    """Read a range through a read-write fd (an fd that forced copy-up)."""
    fd = _open(c.p(a["path"]), os.O_RDWR)
    return _using(fd, lambda fd: _content(_s("pread", os.pread, fd, a["len"], a["off"])))


def op_heldfd(c: Ctx, a: dict):
    """An O_RDONLY fd opened before a write through another fd (which
    copies the file up): the kernel makes the old fd see the new data."""
    def body(fd1):
        before = _s("pread before", os.pread, fd1, 64, 0)
        fd2 = _s("open O_WRONLY", _open, c.p(a["path"]), os.O_WRONLY)
        n = _using(fd2, lambda fd2: _s("pwrite", _writeall, fd2, a["data"], 0),
                   "close O_WRONLY")
        after = _s("pread after", os.pread, fd1, 64, 0)
        return n, _content(before), _content(after), _s("fstat", os.fstat, fd1).st_size
    return _using(_open(c.p(a["path"]), os.O_RDONLY), body)


def op_unlinkopen(c: Ctx, a: dict):
    """fstat and read of an open file after its name is removed."""
    def body(fd):
        _s("unlink", os.unlink, c.p(a["path"]))
        st = _s("fstat", os.fstat, fd)
        return st.st_nlink, st.st_size, _content(_s("pread", os.pread, fd, 64, 0))
    return _using(_open(c.p(a["path"]), os.O_RDONLY), body)


def op_otrunc(c: Ctx, a: dict):
    return _using(_open(c.p(a["path"]), os.O_WRONLY | os.O_TRUNC), lambda fd: 0)


def op_unlink(c: Ctx, a: dict):
    os.unlink(c.p(a["path"]))
    return 0


def op_mkdir(c: Ctx, a: dict):
    os.mkdir(c.p(a["path"]), a["mode"])
    return 0


def op_rmdir(c: Ctx, a: dict):
    os.rmdir(c.p(a["path"]))
    return 0


def op_rename(c: Ctx, a: dict):
    if a["flags"] == 0:
        os.rename(c.p(a["src"]), c.p(a["dst"]))
    else:
        renameat2(c.p(a["src"]), c.p(a["dst"]), a["flags"])
    return 0


def op_symlink(c: Ctx, a: dict):
    os.symlink(a["target"], c.p(a["path"]))
    return 0


def op_readlink(c: Ctx, a: dict):
    return os.readlink(c.p(a["path"]))


def op_link(c: Ctx, a: dict):
    os.link(c.p(a["src"]), c.p(a["dst"]), follow_symlinks=False)
    return 0


def op_chmod(c: Ctx, a: dict):
    os.chmod(c.p(a["path"]), a["mode"])
    return 0


def op_chown(c: Ctx, a: dict):
    os.chown(c.p(a["path"]), a["uid"], a["gid"], follow_symlinks=a["follow"])
    return 0


def op_utime(c: Ctx, a: dict):
    os.utime(c.p(a["path"]), ns=(a["atime"], a["mtime"]),
             follow_symlinks=a["follow"])
    return 0


def op_mkfifo(c: Ctx, a: dict):
    os.mkfifo(c.p(a["path"]), a["mode"])
    return 0


def op_setxattr(c: Ctx, a: dict):
    os.setxattr(c.p(a["path"]), a["name"], a["value"], a["flags"],
                follow_symlinks=a["follow"])
    return 0


def op_getxattr(c: Ctx, a: dict):
    return _content(os.getxattr(c.p(a["path"]), a["name"],
                                follow_symlinks=a["follow"]))


def op_removexattr(c: Ctx, a: dict):
    os.removexattr(c.p(a["path"]), a["name"], follow_symlinks=a["follow"])
    return 0


def op_listxattr(c: Ctx, a: dict):
    return sorted(os.listxattr(c.p(a["path"]), follow_symlinks=a["follow"]))


def op_stat(c: Ctx, a: dict):
    return c.norm_stat(os.stat(c.p(a["path"])), a["path"])


def op_lstat(c: Ctx, a: dict):
    return c.norm_stat(os.lstat(c.p(a["path"])), a["path"])


def op_listdir(c: Ctx, a: dict):
    """Sorted (name, type) pairs; names lstat denies (phantoms) are left out."""
    base = c.p(a["path"])
    out = []
    for n in sorted(os.listdir(base)):
        try:
            out.append((n, type_of(os.lstat(os.path.join(base, n)).st_mode)))
        except FileNotFoundError:
            pass
    return out


# name -> (function, weight)
OPS = {
    "create": (op_create, 9), "write": (op_write, 8), "append": (op_append, 5),
    "truncate": (op_truncate, 4), "ftruncate": (op_ftruncate, 2),
    "read": (op_read, 6), "pread": (op_pread, 2), "otrunc": (op_otrunc, 3),
    "heldfd": (op_heldfd, 2), "unlinkopen": (op_unlinkopen, 2),
    "unlink": (op_unlink, 7), "mkdir": (op_mkdir, 6), "rmdir": (op_rmdir, 5),
    "rename": (op_rename, 11), "symlink": (op_symlink, 3),
    "readlink": (op_readlink, 2), "link": (op_link, 4), "chmod": (op_chmod, 4),
    "chown": (op_chown, 3), "utime": (op_utime, 3), "mkfifo": (op_mkfifo, 2),
    "setxattr": (op_setxattr, 4), "getxattr": (op_getxattr, 3),
    "removexattr": (op_removexattr, 3), "listxattr": (op_listxattr, 2),
    "stat": (op_stat, 3), "lstat": (op_lstat, 3), "listdir": (op_listdir, 4),
}
_OP_NAMES = list(OPS)
_OP_WEIGHTS = [OPS[n][1] for n in _OP_NAMES]

NONDIR = ("reg", "lnk", "fifo", "chr", "blk", "sock")
XATTR_NAMES = ("user.a", "user.b", "user.bin", "user.k", "user.dir",
               "user.layer", "user.new", "user.n2", "user.new", "user.n2",
               "trusted.t", "trusted.overlay.opaque", "trusted.overlay.foo")
OWNERS = ((0, 0), (1000, 1000), (1000, 0), (0, 1000), (12345, 54321), (-1, 1000),
          (1000, -1))
MODES = (0o644, 0o600, 0o755, 0o700, 0o4755, 0o2755, 0o1777, 0o640, 0o000,
         0o6711, 0o444)
SIZES = (0, 1, 7, 100, 4095, 4096, 4097, 70_000, 100_000, 200_000)
PAST_NS = (978_307_200 * 10**9, 1_500_000_000 * 10**9)   # 2001 .. 2017


class Generator:
    """Draws operations.  The choice of a path prefers names whose current
    type (on the reference mount A, scanned before each draw) suits the
    operation, so most operations do something; the rest hit any pool
    name and produce errors."""

    def __init__(self, rng: random.Random, pool: list[str], ref_root: str):
        self.rng = rng
        self.pool = pool
        self.ref = ref_root
        self.types: dict[str, str | None] = {}

    def scan(self) -> None:
        for q in self.pool:
            try:
                self.types[q] = type_of(os.lstat(os.path.join(self.ref, q)).st_mode)
            except OSError:
                self.types[q] = None

    def pick(self, want=None, prefer: float = 0.85) -> str:
        """want: a tuple of types, "missing" or "any" (existing)."""
        r = self.rng
        if want is not None and r.random() < prefer:
            if want == "missing":
                cands = [q for q in self.pool if self.types[q] is None]
            elif want == "any":
                cands = [q for q in self.pool if self.types[q] is not None]
            else:
                cands = [q for q in self.pool if self.types[q] in want]
            if cands:
                return r.choice(cands)
        return r.choice(self.pool)

    def data(self) -> bytes:
        r = self.rng
        n = r.choice((0, 1, 5, 100, 1000, 4096, 5000, 70_000))
        return r.randbytes(n)

    def target_for(self, link: str) -> str:
        """A relative symlink target that stays inside the mount."""
        r = self.rng
        if r.random() < 0.2:
            return "no-such-target"
        dest = r.choice(self.pool)
        return os.path.relpath(dest, os.path.dirname(link) or ".")

    def pick_xattr(self) -> str:
        """Mostly a path that carries some xattr on mount A."""
        if self.rng.random() < 0.6:
            cands = []
            for q in self.pool:
                try:
                    if os.listxattr(os.path.join(self.ref, q), follow_symlinks=False):
                        cands.append(q)
                except OSError:
                    pass
            if cands:
                return self.rng.choice(cands)
        return self.pick("any")

    def xattr_name(self, path: str, follow: bool) -> str:
        """Mostly a name the path carries on mount A, else any."""
        r = self.rng
        if r.random() < 0.7:
            try:
                names = sorted(os.listxattr(os.path.join(self.ref, path),
                                            follow_symlinks=follow))
            except OSError:
                names = []
            if names:
                return r.choice(names)
        return r.choice(XATTR_NAMES)

    def next(self) -> tuple[str, dict]:
        self.scan()
        r = self.rng
        name = r.choices(_OP_NAMES, _OP_WEIGHTS)[0]
        follow = r.random() < 0.5
        if name == "create":
            a = {"path": self.pick("missing", 0.7), "excl": r.random() < 0.5,
                 "mode": r.choice(MODES), "data": self.data() if r.random() < 0.5 else b""}
        elif name == "write":
            a = {"path": self.pick(("reg",)), "data": self.data() or b"x",
                 "off": r.choice((0, 0, 1, 4096, r.randrange(0, 120_000)))}
        elif name == "append":
            a = {"path": self.pick(("reg",)), "data": self.data() or b"y"}
        elif name in ("truncate", "ftruncate"):
            a = {"path": self.pick(("reg",)), "size": r.choice(SIZES)}
        elif name == "read":
            a = {"path": self.pick(("reg",))}
        elif name == "pread":
            a = {"path": self.pick(("reg",)), "off": r.choice((0, 3, 4096, 99_000)),
                 "len": r.choice((10, 5000))}
        elif name == "otrunc":
            a = {"path": self.pick(("reg",))}
        elif name == "heldfd":
            a = {"path": self.pick(("reg",)), "data": r.randbytes(r.choice((1, 30, 5000)))}
        elif name == "unlinkopen":
            a = {"path": self.pick(("reg",))}
        elif name == "unlink":
            a = {"path": self.pick(NONDIR)}
        elif name == "mkdir":
            a = {"path": self.pick("missing"), "mode": r.choice((0o755, 0o700, 0o1777,
                                                                0o2750, 0o555))}
        elif name == "rmdir":
            a = {"path": self.pick(("dir",))}
        elif name == "rename":
            flags = r.choices((0, RENAME_NOREPLACE, RENAME_EXCHANGE), (6, 2, 2))[0]
            src = self.pick(("dir",) if r.random() < 0.3 else "any")
            dst = self.pick("any" if flags == RENAME_EXCHANGE or r.random() < 0.4
                            else "missing", 0.8)
            a = {"src": src, "dst": dst, "flags": flags}
        elif name == "symlink":
            path = self.pick("missing")
            a = {"path": path, "target": self.target_for(path)}
        elif name == "readlink":
            a = {"path": self.pick(("lnk",))}
        elif name == "link":
            a = {"src": self.pick(NONDIR), "dst": self.pick("missing")}
        elif name == "chmod":
            a = {"path": self.pick("any"), "mode": r.choice(MODES)}
        elif name == "chown":
            uid, gid = r.choice(OWNERS)
            a = {"path": self.pick("any"), "uid": uid, "gid": gid, "follow": follow}
        elif name == "utime":
            a = {"path": self.pick("any"), "atime": r.randrange(*PAST_NS),
                 "mtime": r.randrange(*PAST_NS), "follow": follow}
        elif name == "mkfifo":
            a = {"path": self.pick("missing"), "mode": r.choice((0o644, 0o600, 0o666))}
        elif name == "setxattr":
            fl = r.choices((0, os.XATTR_CREATE, os.XATTR_REPLACE), (3, 1, 1))[0]
            a = {"path": self.pick("any"), "name": r.choice(XATTR_NAMES),
                 "value": r.randbytes(r.choice((0, 3, 100))), "flags": fl,
                 "follow": follow}
        elif name in ("getxattr", "removexattr"):
            path = self.pick_xattr()
            a = {"path": path, "name": self.xattr_name(path, follow), "follow": follow}
        elif name == "listxattr":
            a = {"path": self.pick("any"), "follow": follow}
        elif name in ("stat", "lstat"):
            a = {"path": self.pick("any")}
        elif name == "listdir":
            a = {"path": "" if r.random() < 0.15 else self.pick(("dir",))}
        else:
            raise AssertionError(name)
        return name, a


def describe(name: str, a: dict) -> str:
    parts = []
    for k, v in a.items():
        if k == "data" or k == "value":
            v = f"<{len(v)} bytes>"
        elif k in ("mode",):
            v = oct(v)
        elif k == "flags" and name == "rename":
            v = {0: "0", RENAME_NOREPLACE: "NOREPLACE", RENAME_EXCHANGE: "EXCHANGE"}[v]
        elif k == "flags":
            v = {0: "0", os.XATTR_CREATE: "CREATE", os.XATTR_REPLACE: "REPLACE"}[v]
        elif isinstance(v, str):
            v = treedump.display(v)
        parts.append(f"{k}={v}")
    return f"{name}({', '.join(parts)})"


def run_op(c: Ctx, name: str, a: dict):
    try:
        return ("ok", OPS[name][0](c, a))
    except OSError as e:
        where = getattr(e, "step", None)
        return ("err", ename(e.errno) + (f" at {where}" if where else ""))


def show(res) -> str:
    kind, v = res
    if kind == "err":
        return v
    s = "ok" if v == 0 else f"ok {v!r}"
    return s if len(s) <= 400 else s[:397] + "..."


# ================================================================ mounts

def run(cmd: list[str], timeout: float = 60) -> tuple[int, str]:
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, f"{cmd[0]} timed out"
    return p.returncode, p.stdout.decode(errors="replace").strip()


def kernel_mount(lowers: str, upper: str, work: str, mnt: str, ro: bool = False) -> None:
    opts = f"lowerdir={lowers},upperdir={upper},workdir={work},{KERNEL_PIN}"
    if ro:
        opts = "ro," + opts
    rc, out = run(["mount", "-t", "overlay", "overlay", "-o", opts, mnt])
    if rc != 0:
        raise RuntimeError(f"kernel overlay mount on {mnt} failed ({rc}): {out}")


def kernel_umount(mnt: str) -> list[str]:
    if not tap.is_mounted(mnt):
        return []
    rc, out = run(["umount", mnt])
    if rc == 0:
        return []
    run(["umount", "-l", mnt])
    return [f"umount {mnt} failed: {out}; lazy unmount"]


class Daemon:
    """stratafs in the foreground, output in a log file."""

    def __init__(self, exe: str, opts: str, mnt: str, log: str):
        self.mnt = mnt
        self.log = log
        self.killed_after = 0.0
        with open(log, "ab") as lf:
            self.proc = subprocess.Popen([exe, "-f", "-o", opts, mnt],
                                         stdin=subprocess.DEVNULL, stdout=lf,
                                         stderr=subprocess.STDOUT,
                                         start_new_session=True)
        end = time.monotonic() + MOUNT_TIMEOUT
        while not tap.is_mounted(mnt):
            if self.proc.poll() is not None:
                raise RuntimeError(f"stratafs exited with status {self.proc.returncode}"
                                   f" before mounting: {self.tail(5)}")
            if time.monotonic() > end:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"stratafs did not mount within {MOUNT_TIMEOUT:.0f} s")
            time.sleep(0.02)

    def kill(self, after: float) -> None:
        """Watchdog: a killed daemon aborts its connection, so whatever
        blocks on the mount fails with ENOTCONN instead of hanging."""
        if self.proc.poll() is None:
            self.killed_after = after
            self.proc.kill()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> list[str]:
        problems = []
        if self.killed_after:
            problems.append(f"stratafs killed by the watchdog after"
                            f" {self.killed_after:g} s (hung?)")
        elif self.proc.poll() is not None:
            problems.append(f"stratafs died during the run (status"
                            f" {self.proc.returncode})")
        if tap.is_mounted(self.mnt):
            rc, out = run(["fusermount3", "-u", self.mnt])
            if rc != 0:
                problems.append(f"fusermount3 -u failed: {out}; lazy unmount")
                run(["umount", "-l", self.mnt])
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=EXIT_TIMEOUT)
                if self.proc.returncode != 0:
                    problems.append(f"stratafs exited with status"
                                    f" {self.proc.returncode} after unmount")
            except subprocess.TimeoutExpired:
                problems.append("stratafs did not exit after its unmount; killed")
                self.proc.kill()
                self.proc.wait()
        return problems

    def tail(self, n: int = 15) -> str:
        try:
            with open(self.log, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-n:])


class Side:
    """Mount B: stratafs, or a second kernel overlay in self-check mode."""

    def __init__(self, args, exe: str, lowers: str, log: str):
        self.self_check = args.self_check
        self.extra = args.stratafs_opts
        self.exe = exe
        self.lowers = lowers
        self.log = log
        self.daemon: Daemon | None = None
        self.mnt = ""

    def mount(self, upper: str, work: str, mnt: str) -> None:
        self.mnt = mnt
        if self.self_check:
            kernel_mount(self.lowers, upper, work, mnt)
        else:
            opts = f"lowerdir={self.lowers},upperdir={upper},workdir={work}"
            if self.extra:
                opts += "," + self.extra
            self.daemon = Daemon(self.exe, opts, mnt, self.log)

    def alive(self) -> bool:
        return self.daemon is None or self.daemon.alive()

    def umount(self) -> list[str]:
        if self.daemon is not None:
            d, self.daemon = self.daemon, None
            return d.stop()
        return kernel_umount(self.mnt)


# ================================================================ checks

def normalize(tree: treedump.Tree, new_after: int) -> treedump.Tree:
    """mtime as in the operations: exact if older than the seed, else "new"."""
    for rec in tree.values():
        if rec["mtime_ns"] >= new_after:
            rec["mtime_ns"] = "new"
    return tree


def dump(mnt: str, new_after: int) -> treedump.Tree:
    return normalize(treedump.dump(mnt), new_after)


def tree_diff(a: treedump.Tree, b: treedump.Tree, names) -> tuple[list[str], list[str]]:
    notes: list[str] = []
    lines = treedump.diff(a, b, names=names, notes=notes)
    return lines, notes


# xattrs of an upper dir whose value is random per mount
_RANDOM_XATTRS = ("trusted.overlay.uuid",)


def raw_upper_diff(ua: str, ub: str, new_after: int, names) -> list[str]:
    """The two upper directories themselves (diagnostic only: two correct
    implementations could store the same view differently)."""
    try:
        trees = [dump(u, new_after) for u in (ua, ub)]
    except OSError as e:
        return [f"cannot dump the upper dirs: {e}"]
    for t in trees:
        for rec in t.values():
            rec["xattrs"] = tuple((n, "<random>" if n in _RANDOM_XATTRS else v)
                                  for n, v in rec["xattrs"])
    return treedump.diff(*trees, names=names)


def clip(lines: list[str], n: int = MAX_DIAG) -> list[str]:
    if len(lines) <= n:
        return lines
    return lines[:n] + [f"... and {len(lines) - n} more"]


# ================================================================ driver

class SeedResult:
    def __init__(self):
        self.ops = (False, ["not run"])
        self.tree = (False, ["not run"])
        self.kernel_upper = (False, ["not run"])
        self.remount = (False, ["not run"])
        self.stats = ""
        self.trace: list = []
        self.first_bad: int | None = None
        self.first_outcomes: tuple = ()


def run_ops(args, seed: int, pool: list[str], ca: Ctx, cb: Ctx, side: Side,
            bname: str, res: "SeedResult") -> tuple[bool, list[str], str]:
    """Draw and run the operations; res.trace gets every operation run and
    res.first_bad the index of the first mismatch (for --shrink)."""
    rng = random.Random(seed)
    gen = Generator(rng, pool, ca.root)
    mismatches: list[str] = []
    counts = {"ok": 0, "err": 0}
    for i in range(args.ops):
        name, a = gen.next()
        res.trace.append((name, a))
        ra = run_op(ca, name, a)
        rb = run_op(cb, name, a)
        counts[ra[0]] += 1
        if args.verbose:
            mark = "" if ra == rb else "   <-- MISMATCH"
            print(f"# [{seed}:{i}] {describe(name, a)}: kernel={show(ra)}"
                  f" {bname}={show(rb)}{mark}", flush=True)
        if ra != rb:
            if res.first_bad is None:
                res.first_bad, res.first_outcomes = i, (ra, rb)
            mismatches.append(f"op {i}: {describe(name, a)}: kernel={show(ra)}"
                              f" {bname}={show(rb)}")
            if len(mismatches) >= args.max_mismatches:
                mismatches.append(f"stopped after {len(mismatches)} mismatches"
                                  f" at op {i} of {args.ops}")
                break
        if not side.alive():
            mismatches.append(f"{bname} died at op {i}; stopping")
            break
    stats = (f"{len(res.trace)} ops, {counts['ok']} succeeded and {counts['err']}"
             " failed on the kernel")
    return not mismatches, mismatches, stats


# ============================================================ shrinking

def workdirs(sd: str, names) -> dict[str, str]:
    """Make the directories of one run under sd.  Mount points of the
    operations sit two private levels deep (sd/mnt-a/jail/mnt): symlink
    targets are relative and computed lexically, so after a directory is
    renamed to a shallower place a target can climb at most two levels
    above the mount root; it then lands in a directory of its own side,
    empty on both sides, instead of somewhere shared or outside the test."""
    d = {}
    for k in names:
        if k in ("mnt-a", "mnt-b"):
            d[k] = os.path.join(sd, k, "jail", "mnt")
            os.makedirs(d[k])
        else:
            d[k] = os.path.join(sd, k)
            os.mkdir(d[k])
    return d


def replay(args, base: str, lowers: str, pool: list[str], exe: str,
           ops: list) -> tuple[int | None, list]:
    """Run ops on a fresh pair of mounts; (index of the first mismatch or
    None, the outcome pairs up to it)."""
    sd = tempfile.mkdtemp(prefix="replay-", dir=base)
    d = workdirs(sd, ("mnt-a", "mnt-b", "up-a", "up-b", "work-a", "work-b"))
    new_after = time.time_ns() - 2 * 10**9
    side = Side(args, exe, lowers, os.path.join(sd, "stratafs.log"))
    watchdog = None
    out = []
    try:
        kernel_mount(lowers, d["up-a"], d["work-a"], d["mnt-a"])
        side.mount(d["up-b"], d["work-b"], d["mnt-b"])
        if side.daemon is not None:
            watchdog = threading.Timer(args.seed_timeout, side.daemon.kill,
                                       args=(args.seed_timeout,))
            watchdog.daemon = True
            watchdog.start()
        ca = Ctx(d["mnt-a"], pool, new_after)
        cb = Ctx(d["mnt-b"], pool, new_after)
        for i, (name, a) in enumerate(ops):
            ra, rb = run_op(ca, name, a), run_op(cb, name, a)
            out.append((ra, rb))
            if ra != rb:
                return i, out
        return None, out
    finally:
        if watchdog is not None:
            watchdog.cancel()
        side.umount()
        kernel_umount(d["mnt-a"])
        if not tap.is_mounted(d["mnt-a"]) and not tap.is_mounted(d["mnt-b"]):
            shutil.rmtree(sd, ignore_errors=True)


def shrink(args, base: str, lowers: str, pool: list[str], exe: str,
           trace: list, bad: int, want: tuple, bname: str) -> list[str]:
    """Delta debugging: the smallest subsequence of the operations before
    trace[bad] after which trace[bad] is the first operation to mismatch,
    with the same two outcomes as in the full run (want), or, if a fresh
    replay of the full prefix does not give exactly those, with any."""
    last = trace[bad]
    trials = 0
    exact = True

    def reproduces(cand: list) -> bool:
        nonlocal trials
        trials += 1
        i, outs = replay(args, base, lowers, pool, exe, cand + [last])
        return i == len(cand) and (not exact or outs[-1] == want)

    cur = list(range(bad))
    if not reproduces([trace[k] for k in cur]):
        exact = False
        if not reproduces([trace[k] for k in cur]):
            return [f"shrink: op {bad} does not mismatch again on a fresh replay"
                    " (timing or cache dependent?)"]
    n = 2
    while cur and trials < args.shrink_budget:
        chunk = max(1, -(-len(cur) // n))
        for start in range(0, len(cur), chunk):
            cand = cur[:start] + cur[start + chunk:]
            if reproduces([trace[k] for k in cand]):
                cur = cand
                n = max(n - 1, 2)
                break
            if trials >= args.shrink_budget:
                break
        else:
            if chunk == 1:
                break
            n = min(len(cur), n * 2)
    _, outs = replay(args, base, lowers, pool, exe, [trace[k] for k in cur] + [last])
    budget = ", budget exhausted" if trials >= args.shrink_budget else ""
    how = "" if exact else "; a different mismatch than in the full run"
    lines = [f"shrunk: op {bad} needs {len(cur)} of the {bad} operations before it"
             f" ({trials} replays{budget}{how}):"]
    for k, (ra, rb) in zip(cur + [bad], outs):
        name, a = trace[k]
        tail = f"-> both {show(ra)}" if ra == rb else \
            f"-> kernel={show(ra)} {bname}={show(rb)}   <-- MISMATCH"
        lines.append(f"  [{k}] {describe(name, a)} {tail}")
    return lines


def run_seed(args, seed: int, base: str, lowers: str, pool: list[str], exe: str) -> SeedResult:
    res = SeedResult()
    bname = "kernel#2" if args.self_check else "stratafs"
    sd = os.path.join(base, f"seed-{seed}")
    os.makedirs(sd)
    new_after = time.time_ns() - 2 * 10**9   # filesystem clocks are coarse
    d = workdirs(sd, ("mnt-a", "mnt-b", "up-a", "up-b", "work-a", "work-b",
                      "work-a2", "work-b2", "mnt-a2", "mnt-b2"))
    side = Side(args, exe, lowers, os.path.join(sd, "stratafs.log"))
    mounted_a: list[str] = []
    watchdog = None
    t0 = time.monotonic()
    try:
        # ---- phase 1 and 2: the operations, then the live trees
        kernel_mount(lowers, d["up-a"], d["work-a"], d["mnt-a"])
        mounted_a.append(d["mnt-a"])
        try:
            side.mount(d["up-b"], d["work-b"], d["mnt-b"])
        except Exception as e:
            msg = f"{bname} mount failed: {e}"
            res.ops = res.tree = res.kernel_upper = res.remount = (False, [msg])
            return res
        if side.daemon is not None:
            watchdog = threading.Timer(args.seed_timeout, side.daemon.kill,
                                       args=(args.seed_timeout,))
            watchdog.daemon = True
            watchdog.start()
        ca = Ctx(d["mnt-a"], pool, new_after)
        cb = Ctx(d["mnt-b"], pool, new_after)
        ok, lines, res.stats = run_ops(args, seed, pool, ca, cb, side, bname, res)
        res.ops = (ok, lines)
        try:
            ta = dump(d["mnt-a"], new_after)
            tb = dump(d["mnt-b"], new_after)
            lines, notes = tree_diff(ta, tb, ("kernel", bname))
            res.tree = (not lines, lines + [f"note: {n}" for n in notes])
            res.stats += f"; {len(ta)} entries in the final tree"
        except OSError as e:
            res.tree = (False, [f"dump failed: {e}"])
        if watchdog is not None:
            watchdog.cancel()
        problems = side.umount()
        problems += kernel_umount(d["mnt-a"])
        mounted_a.clear()
        if problems:
            ok, lines = res.tree
            res.tree = (False, lines + problems)

        # ---- phase 3: the kernel reads both uppers
        try:
            kernel_mount(lowers, d["up-a"], d["work-a2"], d["mnt-a2"], ro=True)
            mounted_a.append(d["mnt-a2"])
            ka = dump(d["mnt-a2"], new_after)
        except Exception as e:
            res.kernel_upper = res.remount = (False, [f"kernel remount of its own"
                                                      f" upper failed: {e}"])
            return res
        try:
            kernel_mount(lowers, d["up-b"], d["work-b2"], d["mnt-b2"], ro=True)
            mounted_a.append(d["mnt-b2"])
            kb = dump(d["mnt-b2"], new_after)
            lines, notes = tree_diff(ka, kb, ("kernel", f"kernel-on-{bname}-upper"))
            raw = raw_upper_diff(d["up-a"], d["up-b"], new_after,
                                 ("kernel upper", f"{bname} upper"))
            notes += [f"upper dirs differ: {x}" for x in clip(raw, 20)]
            res.kernel_upper = (not lines, lines + [f"note: {n}" for n in notes])
        except Exception as e:
            res.kernel_upper = (False, [f"{e}"])
        for m in (d["mnt-b2"],):
            problems = kernel_umount(m)
            if problems:
                res.kernel_upper = (False, res.kernel_upper[1] + problems)

        # ---- phase 4: B mounted again on its own upper and workdir
        try:
            side.mount(d["up-b"], d["work-b"], d["mnt-b"])
            if side.daemon is not None:
                watchdog = threading.Timer(args.seed_timeout, side.daemon.kill,
                                           args=(args.seed_timeout,))
                watchdog.daemon = True
                watchdog.start()
            tb2 = dump(d["mnt-b"], new_after)
            lines, notes = tree_diff(ka, tb2, ("kernel", f"{bname}-remounted"))
            res.remount = (not lines, lines + [f"note: {n}" for n in notes])
        except Exception as e:
            res.remount = (False, [f"{e}"])
        if watchdog is not None:
            watchdog.cancel()
        problems = side.umount()
        if problems:
            res.remount = (False, res.remount[1] + problems)
        return res
    finally:
        if watchdog is not None:
            watchdog.cancel()
        side.umount()
        for m in mounted_a:
            kernel_umount(m)
        for m in (d["mnt-a"], d["mnt-b"], d["mnt-a2"], d["mnt-b2"]):
            kernel_umount(m)
        res.stats += f"; {time.monotonic() - t0:.1f}s"
        if side.daemon is None and not args.self_check:
            log = os.path.join(sd, "stratafs.log")
            if not all(x[0] for x in (res.ops, res.tree, res.kernel_upper, res.remount)):
                try:
                    with open(log, "rb") as f:
                        tail = f.read().decode(errors="replace").splitlines()[-10:]
                    res.stats += "".join(f"\nstratafs log: {t}" for t in tail)
                except OSError:
                    pass
        if not args.keep and not any(tap.is_mounted(m) for m in
                                     (d["mnt-a"], d["mnt-b"], d["mnt-a2"], d["mnt-b2"])):
            shutil.rmtree(sd, ignore_errors=True)


def mounts_under(base: str) -> list[str]:
    """Mount points at or below base (never rmtree into a live mount)."""
    base = os.path.realpath(base)
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)),
                        line.split(" ")[4])
            if mp == base or mp.startswith(base + "/"):
                out.append(mp)
    return out


def overlay_works(tmp: str) -> str | None:
    """None if a kernel overlay with an upper dir and user.*/trusted.*
    xattrs works in tmp, else why not."""
    d = tempfile.mkdtemp(prefix="stratafs-diffops-probe-", dir=tmp)
    m = os.path.join(d, "m")
    try:
        for sub in ("l", "u", "w", "m"):
            os.mkdir(os.path.join(d, sub))
        try:
            os.setxattr(os.path.join(d, "l"), "trusted.overlay.opaque", b"y")
            os.setxattr(os.path.join(d, "u"), "user.probe", b"1")
        except OSError as e:
            return f"{tmp} does not take trusted.*/user.* xattrs ({e.strerror})"
        try:
            kernel_mount(f"{d}/l", f"{d}/u", f"{d}/w", m)
        except RuntimeError as e:
            return f"the kernel overlay does not mount with an upper: {e}"
        try:
            with open(os.path.join(m, "f"), "w") as f:
                f.write("x")
            os.unlink(os.path.join(m, "f"))
        except OSError as e:
            return f"the kernel overlay with an upper is not writable: {e}"
        return None
    finally:
        kernel_umount(m)
        if not tap.is_mounted(m):
            shutil.rmtree(d, ignore_errors=True)


def stratafs_refuses_upper(exe: str, tmp: str) -> str | None:
    """The daemon's answer to an upperdir while its write path is missing:
    the reason to skip, or None if it mounts (or fails otherwise: that is
    then reported by the tests themselves)."""
    d = tempfile.mkdtemp(prefix="stratafs-diffops-probe-", dir=tmp)
    m = os.path.join(d, "m")
    try:
        for sub in ("l", "u", "w", "m"):
            os.mkdir(os.path.join(d, sub))
        try:
            p = subprocess.run([exe, "-o", f"lowerdir={d}/l,upperdir={d}/u,"
                                f"workdir={d}/w", m], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            return None
        err = p.stderr.decode(errors="replace").strip()
        if p.returncode != 0 and "not implemented" in err:
            return f"stratafs does not support upperdir yet ({err.splitlines()[-1]})"
        return None
    finally:
        if tap.is_mounted(m):
            run(["fusermount3", "-u", m])
            tap.wait_gone(m)
        if not tap.is_mounted(m):
            shutil.rmtree(d, ignore_errors=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, action="append", default=[])
    ap.add_argument("--ops", type=int, default=DEFAULT_OPS)
    ap.add_argument("--max-mismatches", type=int, default=MAX_MISMATCHES)
    ap.add_argument("--self-check", action="store_true",
                    help="kernel against kernel: validates the harness")
    ap.add_argument("--seed-timeout", type=float, default=120.0 * tap.SLOW)
    ap.add_argument("--shrink", action="store_true",
                    help="reduce each seed's first mismatch to a minimal sequence")
    ap.add_argument("--shrink-budget", type=int, default=400,
                    help="at most this many replays per shrink")
    ap.add_argument("--stratafs-opts", default="",
                    help="more -o options for stratafs, e.g. timeout=0")
    ap.add_argument("--exclude", metavar="REGEX",
                    help="leave pool paths matching REGEX out (triage: hide"
                         " a known bug to find the next one)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--meson", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    # a daemon under valgrind (tap.py) is slow: two seeds unless told
    seeds = args.seed or list(DEFAULT_SEEDS[:2] if tap.WRAPPED else DEFAULT_SEEDS)

    if os.geteuid() != 0:
        tap.skip_all("needs root")
    if not args.self_check and not os.path.exists("/dev/fuse"):
        tap.skip_all("no /dev/fuse")
    tmp = tempfile.gettempdir()
    why = overlay_works(tmp)
    if why:
        tap.skip_all(why)
    exe = tap.stratafs_bin()
    if not args.self_check:
        if not os.access(exe, os.X_OK):
            print("1..0")
            print(f"Bail out! stratafs binary not found or not executable: {exe}"
                  " (set STRATAFS)", flush=True)
            return 1
        why = stratafs_refuses_upper(exe, tmp)
        if why:
            tap.skip_all(why)

    # SIGTERM (meson's timeout) and SIGHUP raise SystemExit, so the finally
    # clauses still unmount everything
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    t_start = time.monotonic()
    base = tempfile.mkdtemp(prefix="stratafs-diffops-", dir=tmp)
    t = tap.Tap()
    who = "kernel#2 (self-check)" if args.self_check else f"stratafs = {exe}"
    print(f"# diffops: kernel overlayfs ({os.uname().release}) against {who};"
          f" seeds {seeds}, {args.ops} ops each", flush=True)
    old_umask = os.umask(0o022)
    try:
        fx = fixtures.Fixture(os.path.join(base, "layers"), 3, "diffops")
        populate(fx)
        fx.finish()
        lowers = fx.lowerdir(fixtures.KERNEL)
        pool = make_pool(fx)
        if args.exclude:
            pool = [q for q in pool if not re.search(args.exclude, q)]
        before = [treedump.dump(fx.layer_path(fixtures.KERNEL, i)) for i in range(3)]
        print(f"# lowers: {len(fx.model_tree())} merged entries, pool of"
              f" {len(pool)} paths; {base}", flush=True)
        for seed in seeds:
            r = run_seed(args, seed, base, lowers, pool, exe)
            if args.shrink and r.first_bad is not None:
                r.ops = (r.ops[0], r.ops[1] + shrink(
                    args, base, lowers, pool, exe, r.trace, r.first_bad, r.first_outcomes,
                    "kernel#2" if args.self_check else "stratafs"))
            stats = r.stats.splitlines()
            t.ok(r.ops[0], f"seed {seed}: ops",
                 "\n".join(clip(r.ops[1], MAX_DIAG + 60) + stats[1:]))
            print(f"# seed {seed}: {stats[0] if stats else ''}", flush=True)
            t.ok(r.tree[0], f"seed {seed}: final tree", "\n".join(clip(r.tree[1])))
            t.ok(r.kernel_upper[0], f"seed {seed}: kernel on "
                 f"{'kernel#2' if args.self_check else 'stratafs'} upper",
                 "\n".join(clip(r.kernel_upper[1])))
            if r.kernel_upper[0] and r.kernel_upper[1]:
                for line in clip(r.kernel_upper[1], 20):
                    print(f"# {treedump.printable(line)}")
            t.ok(r.remount[0], f"seed {seed}: "
                 f"{'kernel#2' if args.self_check else 'stratafs'} remount",
                 "\n".join(clip(r.remount[1])))
        after = [treedump.dump(fx.layer_path(fixtures.KERNEL, i)) for i in range(3)]
        changed = []
        for i in range(3):
            changed += [f"L{i}: {x}" for x in
                        treedump.diff(before[i], after[i], names=("before", "after"))]
        t.ok(not changed, "lower layers unchanged", "\n".join(clip(changed)))
    finally:
        os.umask(old_umask)
        live = mounts_under(base)
        for m in sorted(live, key=len, reverse=True):
            kernel_umount(m)
        live = mounts_under(base)
        if args.keep or live:
            print(f"# kept {base}" + (f" (still mounted: {live})" if live else ""),
                  flush=True)
        else:
            shutil.rmtree(base, ignore_errors=True)
    tap.check_daemon_reports(t)
    print(f"1..{t.n}")
    print(f"# {t.n - t.failed}/{t.n} passed in {time.monotonic() - t_start:.1f}s",
          flush=True)
    return 1 if t.failed and not args.meson else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
