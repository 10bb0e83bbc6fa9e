#!/usr/bin/env python3
"""Dump a mounted tree into comparable records, and diff two dumps.

dump(mountpoint) returns a Tree: a dict mapping '/a/b' ('/' is the root) to a
record dict with these keys:

  type      reg dir lnk fifo chr blk sock
  mode      permission bits including setuid/setgid/sticky (an int)
  uid gid nlink mtime_ns
  xattrs    sorted tuple of (name, value) pairs
  size      non-directories only
  sha256    regular files only (content read through the mount)
  target    symlinks only
  rdev      devices only, as (major, minor)
  links     non-directories only: the sorted tuple of every dumped path that
            shares this entry's (st_dev, st_ino) -- its hardlink group

Inode numbers themselves are not compared (two mounts never agree on them),
only the grouping they induce.

The walk never follows symlinks and goes one component at a time through
directory fds, so it handles paths longer than PATH_MAX.

Besides the records a Tree carries:

  phantoms  names readdir listed but lstat said ENOENT.  The kernel overlayfs
            does this for whiteouts it does not filter out of readdir (in a
            directory that is not merged, e.g. single-layer or opaque, and
            for xattr whiteouts in a directory without the 'x' marker).
            Comparisons treat a phantom as absent and note it.
  errors    self-consistency failures: two entries that share an inode but
            cannot be hardlinks (a directory, nlink too small, different
            attributes), readdir d_type or d_ino disagreeing with lstat.

Run as a script: `treedump.py MNT` prints a dump, `treedump.py A B` diffs.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import sys

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | \
    getattr(os, "O_NOATIME", 0)

# errors listxattr on a symlink (or special file) may legitimately give
_XATTR_TOLERATED = (errno.ENOTSUP, errno.EPERM, errno.ENODATA)

FIELDS = ("type", "mode", "uid", "gid", "nlink", "size", "sha256", "target",
          "rdev", "xattrs", "mtime_ns", "links")


class Tree(dict):
    """path -> record, plus .phantoms, .errors and .mountpoint."""

    def __init__(self, mountpoint: str):
        super().__init__()
        self.mountpoint = mountpoint
        self.phantoms: list[str] = []
        self.errors: list[str] = []
        self.inodes: dict[str, tuple[int, int]] = {}   # path -> (dev, ino)


def printable(s: str | bytes) -> str:
    """One-line, terminal-safe rendering of a path or name: control
    characters and undecodable bytes become escapes."""
    b = s if isinstance(s, bytes) else os.fsencode(s)
    out = []
    for ch in b.decode("utf-8", "backslashreplace"):
        o = ord(ch)
        if o < 0x20 or o == 0x7f:
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch)
    return "".join(out)


def display(path: str, keep: int = 24) -> str:
    """printable(), with every path component longer than 2*keep bytes cut
    to its head and tail, for messages about very long paths."""
    out = []
    for comp in path.split("/"):
        p = printable(comp)
        if len(p) > 2 * keep:
            p = f"{p[:keep]}...[{len(os.fsencode(comp))}B]...{p[-8:]}"
        out.append(p)
    if len(out) > 6 and sum(len(p) for p in out) > 200:
        out = out[:3] + [f"...{len(out) - 5} more levels..."] + out[-2:]
    return "/".join(out)


def type_name(st_mode: int) -> str:
    return {
        stat.S_IFREG: "reg", stat.S_IFDIR: "dir", stat.S_IFLNK: "lnk",
        stat.S_IFIFO: "fifo", stat.S_IFCHR: "chr", stat.S_IFBLK: "blk",
        stat.S_IFSOCK: "sock",
    }.get(stat.S_IFMT(st_mode), f"?{stat.S_IFMT(st_mode):o}")


def _xattrs(proc_path: str) -> tuple:
    try:
        names = os.listxattr(proc_path, follow_symlinks=False)
    except OSError as e:
        if e.errno in _XATTR_TOLERATED:
            return ()
        return (("<listxattr error>", errno.errorcode.get(e.errno, str(e.errno))),)
    out = []
    for n in names:
        try:
            v = os.getxattr(proc_path, n, follow_symlinks=False)
        except OSError as e:
            v = f"<getxattr error {errno.errorcode.get(e.errno, e.errno)}>"
        out.append((n, v))
    return tuple(sorted(out))


def _sha256(dfd: int, name: str) -> str:
    h = hashlib.sha256()
    fd = os.open(name, _FILE_FLAGS, dir_fd=dfd)
    try:
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def _record(dfd: int, name: str, st: os.stat_result, content: bool) -> dict:
    t = type_name(st.st_mode)
    rec = {
        "type": t,
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "nlink": st.st_nlink,
        "mtime_ns": st.st_mtime_ns,
        "xattrs": _xattrs(f"/proc/self/fd/{dfd}/{name}"),
    }
    if t != "dir":
        rec["size"] = st.st_size
    if t == "reg" and content:
        try:
            rec["sha256"] = _sha256(dfd, name)
        except OSError as e:
            rec["sha256"] = f"<read error {errno.errorcode.get(e.errno, e.errno)}>"
    elif t == "lnk":
        rec["target"] = os.readlink(name, dir_fd=dfd)
    elif t in ("chr", "blk"):
        rec["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
    return rec


def _join(parent: str, name: str) -> str:
    return "/" + name if parent == "/" else f"{parent}/{name}"


def _walk(tree: Tree, dfd: int, dpath: str, content: bool) -> None:
    subdirs = []
    with os.scandir(dfd) as it:
        entries = list(it)
    for ent in entries:
        path = _join(dpath, ent.name)
        try:
            st = os.stat(ent.name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            tree.phantoms.append(path)
            continue
        rec = _record(dfd, ent.name, st, content)
        tree[path] = rec
        tree.inodes[path] = (st.st_dev, st.st_ino)
        if ent.inode() != st.st_ino:
            tree.errors.append(f"{display(path)}: readdir d_ino {ent.inode()}"
                               f" != st_ino {st.st_ino}")
        try:
            d_dir = ent.is_dir(follow_symlinks=False)
            d_lnk = ent.is_symlink()
        except OSError:
            d_dir, d_lnk = stat.S_ISDIR(st.st_mode), stat.S_ISLNK(st.st_mode)
        if d_dir != stat.S_ISDIR(st.st_mode) or d_lnk != stat.S_ISLNK(st.st_mode):
            tree.errors.append(f"{display(path)}: readdir d_type disagrees with"
                               f" lstat type {rec['type']}")
        if rec["type"] == "dir":
            subdirs.append((ent.name, path))
    for name, path in subdirs:
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
        except OSError as e:
            tree.errors.append(f"{display(path)}: cannot open directory: {e.strerror}")
            continue
        try:
            _walk(tree, fd, path, content)
        finally:
            os.close(fd)


def _check_inodes(tree: Tree) -> None:
    groups: dict[tuple[int, int], list[str]] = {}
    for path, key in tree.inodes.items():
        groups.setdefault(key, []).append(path)
    for key, paths in groups.items():
        paths.sort()
        recs = [tree[p] for p in paths]
        if len(paths) > 1:
            shown = ", ".join(display(p) for p in paths)
            if any(r["type"] == "dir" for r in recs):
                tree.errors.append(f"distinct entries share inode {key[1]}"
                                   f" (a directory among them): {shown}")
            else:
                nl = recs[0]["nlink"]
                if nl < len(paths):
                    tree.errors.append(f"{len(paths)} names share inode {key[1]}"
                                       f" but nlink is {nl}: {shown}")
                fields = ("type", "mode", "uid", "gid", "nlink", "size",
                          "sha256", "target", "rdev", "xattrs", "mtime_ns")
                for f in fields:
                    vals = {repr(r.get(f)) for r in recs}
                    if len(vals) > 1:
                        tree.errors.append(f"names sharing inode {key[1]} differ"
                                           f" in {f}: {shown}")
        for p in paths:
            if tree[p]["type"] != "dir":
                tree[p]["links"] = tuple(paths)


def dump(mountpoint: str, content: bool = True) -> Tree:
    """Walk mountpoint without following symlinks; see the module doc."""
    tree = Tree(mountpoint)
    fd = os.open(mountpoint, _DIR_FLAGS)
    try:
        st = os.fstat(fd)
        pfd = os.open(os.path.dirname(os.path.abspath(mountpoint)) or "/", _DIR_FLAGS)
        try:
            rec = _record(pfd, os.path.basename(os.path.abspath(mountpoint)), st, content)
        finally:
            os.close(pfd)
        tree["/"] = rec
        tree.inodes["/"] = (st.st_dev, st.st_ino)
        _walk(tree, fd, "/", content)
    finally:
        os.close(fd)
    _check_inodes(tree)
    tree.phantoms.sort()
    return tree


def fmt_value(field: str, v) -> str:
    if v is None:
        return "(none)"
    if field == "mode":
        return f"{v:#o}"
    if field == "xattrs":
        return "{" + ", ".join(f"{n}={_short(val)}" for n, val in v) + "}"
    if field == "links":
        return "[" + ", ".join(display(p) for p in v) + "]"
    if field == "target":
        return printable(v) if len(v) <= 80 else printable(v[:77]) + "..."
    if field == "rdev":
        return f"{v[0]}:{v[1]}"
    return str(v)


def _short(v) -> str:
    if isinstance(v, bytes):
        r = repr(v)
        return r if len(r) <= 40 else r[:37] + "..."
    return printable(str(v))


def diff(a: Tree, b: Tree, names: tuple[str, str] = ("kernel", "stratafs"),
         notes: list[str] | None = None) -> list[str]:
    """Human-readable differences between two dumps.  Phantoms are treated
    as absent; if notes is a list, a line per phantom is appended to it.
    Each tree's self-consistency errors are reported as differences too.
    Entries below a missing or retyped directory are folded into one line."""
    an, bn = names
    out: list[str] = []
    if notes is not None:
        for t, n in ((a, an), (b, bn)):
            for p in t.phantoms:
                notes.append(f"phantom in {n} (readdir lists it, lstat gives"
                             f" ENOENT; treated as absent): {display(p)}")
    for t, n in ((a, an), (b, bn)):
        for e in t.errors:
            out.append(f"[{n}] {e}")
    folded: dict[str, list] = {}   # root of a folded subtree -> [line idx, count]

    def folded_under(p: str):
        q = p
        while q != "/":
            q = q.rsplit("/", 1)[0] or "/"
            if q in folded:
                return q
        return None

    for p in sorted(set(a) | set(b)):
        top = folded_under(p)
        if top is not None:
            folded[top][1] += 1
            continue
        ra, rb = a.get(p), b.get(p)
        if ra is None or rb is None:
            side, r = (bn, rb) if ra is None else (an, ra)
            out.append(f"only in {side}: {display(p)} ({r['type']})")
            if r["type"] == "dir":
                folded[p] = [len(out) - 1, 0]
            continue
        if ra["type"] != rb["type"]:
            out.append(f"{display(p)}: type {an}={ra['type']} {bn}={rb['type']}")
            if "dir" in (ra["type"], rb["type"]):
                folded[p] = [len(out) - 1, 0]
            continue
        for f in FIELDS:
            va, vb = ra.get(f), rb.get(f)
            if va != vb:
                out.append(f"{display(p)}: {f} {an}={fmt_value(f, va)}"
                           f" {bn}={fmt_value(f, vb)}")
    for idx, count in folded.values():
        if count:
            out[idx] += f" and {count} entries below it"
    return out


def _main(argv: list[str]) -> int:
    if len(argv) == 1:
        t = dump(argv[0])
        for p in sorted(t):
            r = t[p]
            print(display(p), " ".join(f"{f}={fmt_value(f, r[f])}"
                                         for f in FIELDS if f in r))
        for p in t.phantoms:
            print("phantom", display(p))
        for e in t.errors:
            print("error", e)
        return 0
    if len(argv) == 2:
        notes: list[str] = []
        lines = diff(dump(argv[0]), dump(argv[1]), names=("a", "b"), notes=notes)
        for n in notes:
            print("note:", n)
        for line in lines:
            print(line)
        return 1 if lines else 0
    print("usage: treedump.py MNT | treedump.py MNT_A MNT_B", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
