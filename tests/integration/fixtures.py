#!/usr/bin/env python3
"""Layer-stack fixtures for comparing stratafs with the kernel overlayfs.

A fixture is described once, through the methods of `Fixture`, and written
twice from that description:

  root/native/L<i>   the layers stratafs mounts, with whiteouts and opaque
                     directories in the marker format under test;
  root/kernel/L<i>   the same layers with every marker converted to the form
                     the kernel reads: 0/0 character-device whiteouts and
                     trusted.overlay.opaque=y (the kernel copy is mounted
                     without userxattr).

Layer 0 is the TOP layer; `lowerdir()` lists the layers top first.

Both copies get identical names, data, modes, owners, xattrs and mtimes
(explicit, applied bottom-up after everything is written), so a correct
stratafs mount of the native copy dumps exactly like the kernel mount of the
kernel copy.

Alongside the files the builder keeps a model of what each layer holds
(`model_tree()` resolves it the way the kernel does).  The test harness checks
the kernel mount against the model, so a fixture that does not exercise what
it claims to is caught, and uses it to know which whiteout paths must be
absent.

The fixture sets at the bottom of this file are registered in `FIXTURES`.
Run `python3 fixtures.py --list` to list them,
`python3 fixtures.py NAME DIR` to build one into DIR for manual inspection,
or `python3 fixtures.py --check-copies [NAME...]` to verify that the two
copies of every layer differ only in their markers.

All operations go one path component at a time through directory fds, so
fixtures may hold paths longer than PATH_MAX.  Needs root (chown, mknod,
trusted.* xattrs).
"""

from __future__ import annotations

import errno
import os
import random
import socket
import stat
import sys
import time
from dataclasses import dataclass
from typing import Callable

NATIVE = "native"
KERNEL = "kernel"
COPIES = (NATIVE, KERNEL)

WHITEOUT_FORMATS = ("chardev", "aufs", "xattr-trusted", "xattr-user")
OPAQUE_FORMATS = ("trusted", "user", "fuseoverlayfs", "aufs")

AUFS_PREFIX = ".wh."
AUFS_OPAQUE = ".wh..wh..opq"

# Private xattr namespaces: nothing under these may show through a mount.
PRIVATE_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.",
                          "user.fuseoverlayfs.")

# The xattr each opaque format sets (aufs uses a file instead).
_OPAQUE_XATTR = {
    "trusted": "trusted.overlay.opaque",
    "user": "user.overlay.opaque",
    "fuseoverlayfs": "user.fuseoverlayfs.opaque",
}

BASE_NS = 1_600_000_000 * 10**9   # 2020-09-13
TICK_NS = 1_000_003_001           # whole seconds and odd nanoseconds

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FD_CACHE_MAX = 256

# Model kinds, as stat types name them; "wh" is a whiteout.
NONDIR_KINDS = ("reg", "lnk", "fifo", "chr", "blk", "sock")


class FixtureError(Exception):
    pass


def norm(path: str) -> str:
    """'a/b' form of a layer-relative path; '' is the layer root."""
    parts = [p for p in path.split("/") if p != ""]
    for p in parts:
        if p in (".", ".."):
            raise FixtureError(f"bad path component in {path!r}")
    return "/".join(parts)


def split(path: str) -> tuple[str, str]:
    head, _, tail = path.rpartition("/")
    return head, tail


def ancestors(path: str) -> list[str]:
    """Proper ancestors of a normalized path, outermost first, no root."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def seeded_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


class Fixture:
    """Builder of one layer stack, written as a native and a kernel copy.

    Every maker takes (layer, path, ...) with layer 0 the top and path
    relative to the layer root ('a/b'); missing parent directories are made
    (0755 root:root).  mtime is in seconds (int or float); by default each
    object gets the next of a deterministic series of timestamps.  Call
    finish() (build() does) to apply the mtimes.
    """

    def __init__(self, root: str, nlayers: int, name: str = ""):
        if nlayers < 1:
            raise FixtureError("need at least one layer")
        self.root = os.path.abspath(root)
        self.nlayers = nlayers
        self.name = name
        # model: per layer, path -> kind; dir path -> child names
        self._entries: list[dict[str, str]] = [{} for _ in range(nlayers)]
        self._children: list[dict[str, set[str]]] = [{} for _ in range(nlayers)]
        self._opaque: set[tuple[int, str]] = set()
        # xattr-whiteout bookkeeping: (layer, dir, ns) -> "x" | "y"
        self._ns_opaque: dict[tuple[int, str, str], str] = {}
        self._times: dict[str, dict[tuple[int, str], int]] = {c: {} for c in COPIES}
        self._fds: dict[tuple[str, int, str], int] = {}
        self._copy_fds: dict[str, int] = {}
        self._tick = 0
        self._finished = False
        self.whiteouts: list[tuple[int, str, str]] = []   # (layer, path, fmt)
        self.opaques: list[tuple[int, str, str]] = []     # (layer, path, fmt)
        self.markers: list[str] = []   # merged-view paths of native .wh.* names
        # objects given a private xattr (either copy): getxattr must not see it
        self.private_xattr_paths: set[str] = set()
        for c in COPIES:
            for i in range(nlayers):
                os.makedirs(self.layer_path(c, i))
        for i in range(nlayers):
            self._entries[i][""] = "dir"
            self._set_time(i, "", None)

    # ------------------------------------------------------------ paths

    def layer_path(self, copy: str, layer: int) -> str:
        return os.path.join(self.root, copy, f"L{layer}")

    def copy_root(self, copy: str) -> str:
        return os.path.join(self.root, copy)

    def lowerdir(self, copy: str = NATIVE, relative: bool = False) -> str:
        """The lowerdir= value, top layer first.  relative=True gives
        'L0:L1:...', to be used with cwd = copy_root(copy)."""
        if relative:
            return ":".join(f"L{i}" for i in range(self.nlayers))
        return ":".join(self.layer_path(copy, i) for i in range(self.nlayers))

    # -------------------------------------------------------- fd plumbing

    def _copy_fd(self, copy: str) -> int:
        fd = self._copy_fds.get(copy)
        if fd is None:
            fd = os.open(self.copy_root(copy), _DIR_FLAGS)
            self._copy_fds[copy] = fd
        return fd

    def _dirfd(self, copy: str, layer: int, dirpath: str) -> int:
        key = (copy, layer, dirpath)
        fd = self._fds.get(key)
        if fd is not None:
            return fd
        if len(self._fds) >= _FD_CACHE_MAX:
            self._close_fds()
        if dirpath == "":
            fd = os.open(f"L{layer}", _DIR_FLAGS, dir_fd=self._copy_fd(copy))
        else:
            head, tail = split(dirpath)
            fd = os.open(tail, _DIR_FLAGS, dir_fd=self._dirfd(copy, layer, head))
        self._fds[key] = fd
        return fd

    def _at(self, copy: str, layer: int, path: str) -> tuple[int, str]:
        """(directory fd, name) for a layer-relative path; the layer root
        itself is addressed through the copy directory."""
        if path == "":
            return self._copy_fd(copy), f"L{layer}"
        head, tail = split(path)
        return self._dirfd(copy, layer, head), tail

    @staticmethod
    def _proc(dfd: int, name: str) -> str:
        return f"/proc/self/fd/{dfd}/{name}"

    def _close_fds(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    # ------------------------------------------------------------- model

    def _check_layer(self, layer: int) -> None:
        if not 0 <= layer < self.nlayers:
            raise FixtureError(f"layer {layer} out of range 0..{self.nlayers - 1}")

    def _ensure_parents(self, layer: int, path: str) -> None:
        for a in ancestors(path):
            kind = self._entries[layer].get(a)
            if kind is None:
                self._mkdir(layer, a, 0o755, 0, 0, None, None)
            elif kind != "dir":
                raise FixtureError(f"L{layer}:{a} is {kind}, not a directory")

    def _add(self, layer: int, path: str, kind: str) -> str:
        self._check_layer(layer)
        if self._finished:
            raise FixtureError("fixture already finished")
        path = norm(path)
        if path == "":
            raise FixtureError("cannot create the layer root")
        if len(os.fsencode(split(path)[1])) > 255:
            raise FixtureError(f"name too long: {path!r}")
        self._ensure_parents(layer, path)
        if path in self._entries[layer]:
            raise FixtureError(f"L{layer}:{path!r} already exists")
        self._entries[layer][path] = kind
        head, tail = split(path)
        self._children[layer].setdefault(head, set()).add(tail)
        return path

    def _set_time(self, layer: int, path: str, mtime, copies=COPIES, mtime_ns=None) -> None:
        if mtime_ns is None:
            if mtime is None:
                self._tick += 1
                mtime_ns = BASE_NS + self._tick * TICK_NS
            else:
                mtime_ns = int(round(mtime * 10**9))
        for c in copies:
            self._times[c][(layer, path)] = mtime_ns

    def _meta(self, copy: str, layer: int, path: str, mode: int | None,
              uid: int, gid: int, xattrs: dict | None) -> None:
        dfd, name = self._at(copy, layer, path)
        for k, v in (xattrs or {}).items():
            os.setxattr(self._proc(dfd, name), k, v, follow_symlinks=False)
            if k.startswith(PRIVATE_XATTR_PREFIXES):
                self.private_xattr_paths.add(path)
        if (uid, gid) != (0, 0):
            os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
        if mode is not None:  # after chown, which drops setuid/setgid
            os.chmod(name, mode, dir_fd=dfd)

    # ----------------------------------------------------- object makers

    def _mkdir(self, layer, path, mode, uid, gid, xattrs, mtime, mtime_ns=None):
        path = self._add(layer, path, "dir")
        for c in COPIES:
            dfd, name = self._at(c, layer, path)
            os.mkdir(name, 0o700, dir_fd=dfd)
            self._meta(c, layer, path, mode, uid, gid, xattrs)
        self._set_time(layer, path, mtime, mtime_ns=mtime_ns)
        return path

    def dir(self, layer: int, path: str, mode: int = 0o755, uid: int = 0,
            gid: int = 0, mtime=None, xattrs: dict | None = None,
            mtime_ns: int | None = None) -> str:
        """Create a directory, or set the attributes of one that exists
        (implicitly created parents, or the layer root with path '')."""
        self._check_layer(layer)
        p = norm(path)
        if self._entries[layer].get(p) == "dir":
            for c in COPIES:
                self._meta(c, layer, p, mode, uid, gid, xattrs)
            self._set_time(layer, p, mtime, mtime_ns=mtime_ns)
            return p
        return self._mkdir(layer, p, mode, uid, gid, xattrs, mtime, mtime_ns)

    def file(self, layer: int, path: str, data: bytes | None = None,
             mode: int = 0o644, uid: int = 0, gid: int = 0, mtime=None,
             xattrs: dict | None = None, mtime_ns: int | None = None) -> str:
        """A regular file; data defaults to a line naming layer and path, so
        a file read from the wrong layer shows up as a content difference."""
        path = self._add(layer, path, "reg")
        if data is None:
            data = os.fsencode(f"L{layer}:{path}\n")
        for c in COPIES:
            dfd, name = self._at(c, layer, path)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                         os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            self._meta(c, layer, path, mode, uid, gid, xattrs)
        self._set_time(layer, path, mtime, mtime_ns=mtime_ns)
        return path

    def sparse(self, layer: int, path: str, size: int,
               data_at: dict[int, bytes] | None = None, mode: int = 0o644,
               uid: int = 0, gid: int = 0, mtime=None,
               xattrs: dict | None = None) -> str:
        path = self._add(layer, path, "reg")
        for c in COPIES:
            dfd, name = self._at(c, layer, path)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                         os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            try:
                os.ftruncate(fd, size)
                for off, chunk in (data_at or {}).items():
                    os.pwrite(fd, chunk, off)
            finally:
                os.close(fd)
            self._meta(c, layer, path, mode, uid, gid, xattrs)
        self._set_time(layer, path, mtime)
        return path

    def symlink(self, layer: int, path: str, target: str, uid: int = 0,
                gid: int = 0, mtime=None, xattrs: dict | None = None) -> str:
        """xattrs on symlinks: only trusted.* (user.* is refused by Linux)."""
        path = self._add(layer, path, "lnk")
        for c in COPIES:
            dfd, name = self._at(c, layer, path)
            os.symlink(target, name, dir_fd=dfd)
            self._meta(c, layer, path, None, uid, gid, xattrs)
        self._set_time(layer, path, mtime)
        return path

    def hardlink(self, layer: int, src: str, dst: str,
                 src_layer: int | None = None) -> str:
        """dst becomes another name of src (of src_layer, default: the same
        layer; a different layer makes a cross-layer hardlink)."""
        sl = layer if src_layer is None else src_layer
        self._check_layer(sl)
        src = norm(src)
        kind = self._entries[sl].get(src)
        if kind is None or kind in ("dir", "wh"):
            raise FixtureError(f"hardlink source L{sl}:{src!r} is {kind}")
        dst = self._add(layer, dst, kind)
        for c in COPIES:
            sfd, sname = self._at(c, sl, src)
            dfd, dname = self._at(c, layer, dst)
            os.link(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd,
                    follow_symlinks=False)
        return dst

    def fifo(self, layer: int, path: str, mode: int = 0o644, uid: int = 0,
             gid: int = 0, mtime=None, xattrs: dict | None = None) -> str:
        path = self._add(layer, path, "fifo")
        for c in COPIES:
            dfd, name = self._at(c, layer, path)
            os.mkfifo(name, 0o600, dir_fd=dfd)
            self._meta(c, layer, path, mode, uid, gid, xattrs)
        self._set_time(layer, path, mtime)
        return path

    def device(self, layer: int, path: str, kind: str, major: int, minor: int,
               mode: int = 0o600, uid: int = 0, gid: int = 0, mtime=None,
               xattrs: dict | None = None) -> str:
        """kind 'c' or 'b'.  A 0/0 character device IS a whiteout (whatever
        its mode and owner): the model records it as one."""
        if kind not in ("c", "b"):
            raise FixtureError("device kind is 'c' or 'b'")
        is_wh = kind == "c" and (major, minor) == (0, 0)
        path = self._add(layer, path, "wh" if is_wh else
                         ("chr" if kind == "c" else "blk"))
        ftype = stat.S_IFCHR if kind == "c" else stat.S_IFBLK
        for c in COPIES:
            dfd, name = self._at(c, layer, path)
            os.mknod(name, ftype | 0o600, os.makedev(major, minor), dir_fd=dfd)
            self._meta(c, layer, path, mode, uid, gid, xattrs)
        self._set_time(layer, path, mtime)
        if is_wh:
            self.whiteouts.append((layer, path, "chardev"))
        return path

    def socket(self, layer: int, path: str, mode: int = 0o755, uid: int = 0,
               gid: int = 0, mtime=None) -> str:
        """A unix socket inode (name must be short: bound via /proc)."""
        path = self._add(layer, path, "sock")
        for c in COPIES:
            dfd, name = self._at(c, layer, path)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.bind(self._proc(dfd, name))
            finally:
                s.close()
            self._meta(c, layer, path, mode, uid, gid, None)
        self._set_time(layer, path, mtime)
        return path

    def setxattr(self, layer: int, path: str, name: str, value: bytes,
                 copies=COPIES) -> None:
        """A raw xattr with no effect on the model (for corrupt markers and
        foreign private xattrs).  copies=(NATIVE,) writes the native copy
        only, for names the kernel copy must not carry."""
        self._check_layer(layer)
        path = norm(path)
        if path not in self._entries[layer]:
            raise FixtureError(f"L{layer}:{path!r} does not exist")
        for c in copies:
            dfd, n = self._at(c, layer, path)
            os.setxattr(self._proc(dfd, n), name, value, follow_symlinks=False)
        if name.startswith(PRIVATE_XATTR_PREFIXES):
            self.private_xattr_paths.add(path)

    # ------------------------------------------------------------ markers

    def _native_marker_file(self, layer: int, dirpath: str, name: str,
                            mode: int) -> None:
        """An empty regular file in the native copy only (aufs markers)."""
        if len(os.fsencode(name)) > 255:
            raise FixtureError(f"marker name too long: {name!r}")
        dfd = self._dirfd(NATIVE, layer, dirpath)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                     os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        os.close(fd)
        os.chmod(name, mode, dir_fd=dfd)
        mpath = f"{dirpath}/{name}" if dirpath else name
        self.markers.append(mpath)
        self._set_time(layer, mpath, None, copies=(NATIVE,))

    def _ns_mark(self, layer: int, dirpath: str, ns: str, value: str) -> None:
        """Set {ns}.overlay.opaque on a native dir; 'x' never downgrades 'y'."""
        key = (layer, dirpath, ns)
        if value == "x" and self._ns_opaque.get(key) == "y":
            return
        if self._ns_opaque.get(key) == value:
            return
        self._ns_opaque[key] = value
        dfd, n = self._at(NATIVE, layer, dirpath)
        os.setxattr(self._proc(dfd, n), f"{ns}.overlay.opaque",
                    value.encode(), follow_symlinks=False)

    def whiteout(self, layer: int, path: str, fmt: str = "chardev") -> str:
        """Hide path (and everything under it) in the layers below."""
        if fmt not in WHITEOUT_FORMATS:
            raise FixtureError(f"unknown whiteout format {fmt!r}")
        path = self._add(layer, path, "wh")
        head, tail = split(path)
        for c in COPIES:
            if c == KERNEL or fmt == "chardev":
                dfd, name = self._at(c, layer, path)
                os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dfd)
                self._set_time(layer, path, None, copies=(c,))
            elif fmt == "aufs":
                self._native_marker_file(layer, head, AUFS_PREFIX + tail, 0o000)
            else:  # xattr-trusted / xattr-user
                ns = fmt.split("-", 1)[1]
                dfd, name = self._at(c, layer, path)
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                             os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd)
                os.close(fd)
                os.setxattr(self._proc(dfd, name), f"{ns}.overlay.whiteout",
                            b"", follow_symlinks=False)
                self._set_time(layer, path, None, copies=(c,))
                self._ns_mark(layer, head, ns, "x")
        self.whiteouts.append((layer, path, fmt))
        return path

    def xattr_whiteout_raw(self, layer: int, path: str, ns: str = "trusted",
                           parent_x: bool = False) -> str:
        """An xattr whiteout written identically to BOTH copies (the kernel
        reads trusted.* ones itself), optionally without the parent's x."""
        path = self._add(layer, path, "wh")
        head, _ = split(path)
        for c in COPIES:
            dfd, name = self._at(c, layer, path)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                         os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd)
            os.close(fd)
            os.setxattr(self._proc(dfd, name), f"{ns}.overlay.whiteout", b"",
                        follow_symlinks=False)
            if parent_x:
                pfd, pn = self._at(c, layer, head)
                os.setxattr(self._proc(pfd, pn), f"{ns}.overlay.opaque", b"x",
                            follow_symlinks=False)
        self._set_time(layer, path, None)
        self.whiteouts.append((layer, path, f"xattr-{ns}-raw"))
        return path

    def opaque(self, layer: int, path: str, fmt: str = "trusted") -> str:
        """Make a directory opaque (created if missing): layers below
        contribute nothing to it.  On a layer root the kernel ignores it."""
        if fmt not in OPAQUE_FORMATS:
            raise FixtureError(f"unknown opaque format {fmt!r}")
        self._check_layer(layer)
        p = norm(path)
        if self._entries[layer].get(p) is None:
            self.dir(layer, p)
        elif self._entries[layer][p] != "dir":
            raise FixtureError(f"L{layer}:{p!r} is not a directory")
        if p != "":
            self._opaque.add((layer, p))
        for c in COPIES:
            if c == KERNEL or fmt == "trusted":
                dfd, n = self._at(c, layer, p)
                os.setxattr(self._proc(dfd, n), "trusted.overlay.opaque", b"y",
                            follow_symlinks=False)
                if c == NATIVE:
                    self._ns_opaque[(layer, p, "trusted")] = "y"
            elif fmt == "aufs":
                self._native_marker_file(layer, p, AUFS_OPAQUE, 0o644)
            elif fmt == "user":
                self._ns_mark(layer, p, "user", "y")
            else:
                dfd, n = self._at(c, layer, p)
                os.setxattr(self._proc(dfd, n), _OPAQUE_XATTR[fmt], b"y",
                            follow_symlinks=False)
        self.opaques.append((layer, p, fmt))
        return p

    # ------------------------------------------------------------ finish

    def finish(self) -> "Fixture":
        """Apply all mtimes, children before parents, and release fds."""
        if self._finished:
            return self
        for c in COPIES:
            items = sorted(self._times[c].items(),
                           key=lambda kv: -(kv[0][1].count("/") + (kv[0][1] != "")))
            for (layer, path), ns in items:
                dfd, name = self._at(c, layer, path)
                os.utime(name, ns=(ns, ns), dir_fd=dfd, follow_symlinks=False)
        self._close_fds()
        for fd in self._copy_fds.values():
            os.close(fd)
        self._copy_fds.clear()
        self._finished = True
        return self

    # -------------------------------------------------- model resolution

    def _resolve(self, path: str, stack: list[int]) -> tuple[str | None, list[int]]:
        """Kind of path in the merged view given its parent's layer stack,
        and its own stack if it is a directory (kernel lookup rules)."""
        sub: list[int] = []
        for i in stack:
            kind = self._entries[i].get(path)
            if kind is None:
                continue
            if kind == "wh":
                break
            if kind != "dir":
                if not sub:
                    return kind, []
                break          # a non-directory below a directory ends it
            sub.append(i)
            if (i, path) in self._opaque:
                break
        return ("dir", sub) if sub else (None, [])

    def model_tree(self) -> dict[str, tuple[str, int]]:
        """Merged view expected from the kernel: '/a/b' -> (kind, nlayers of
        its stack, 0 for non-directories).  Opaque markers on layer roots are
        ignored, as the kernel does."""
        out: dict[str, tuple[str, int]] = {"/": ("dir", self.nlayers)}
        todo = [("", list(range(self.nlayers)))]
        while todo:
            dirpath, stack = todo.pop()
            names: set[str] = set()
            for i in stack:
                names |= self._children[i].get(dirpath, set())
            for name in names:
                p = f"{dirpath}/{name}" if dirpath else name
                kind, sub = self._resolve(p, stack)
                if kind is None:
                    continue
                out["/" + p] = (kind, len(sub))
                if kind == "dir":
                    todo.append((p, sub))
        return out

    def model_errno(self, path: str) -> int | None:
        """What lstat(path) through the mount must give: 0, ENOENT or
        ENOTDIR; None when a symlink in the middle makes it unknowable
        without following it."""
        comps = norm(path).split("/") if norm(path) else []
        stack = list(range(self.nlayers))
        cur = ""
        for k, comp in enumerate(comps):
            cur = f"{cur}/{comp}" if cur else comp
            kind, stack = self._resolve(cur, stack)
            if kind is None:
                return errno.ENOENT
            if k < len(comps) - 1 and kind != "dir":
                return None if kind == "lnk" else errno.ENOTDIR
        return 0

    def hidden_paths(self) -> list[tuple[str, int]]:
        """(path, expected errno) for every whiteout and every native marker
        name the mount must not show (model says so)."""
        out = []
        for _, path, _ in self.whiteouts:
            e = self.model_errno(path)
            if e:
                out.append((path, e))
        for m in self.markers:
            e = self.model_errno(m)
            if e:
                out.append((m, e))
        return out


# ======================================================================
# Fixture sets.  Each function populates a Fixture; FIXTURES registers it.
# ======================================================================

def _whiteout_set(fx: Fixture, w: str) -> None:
    """Whiteouts of format w hiding a file, a symlink, a fifo, a hardlink
    name and a whole subtree; recreated names; whiteouts that hide nothing;
    whiteouts in a single-layer dir (kernel readdir lists those: phantoms)."""
    # L2: bottom
    fx.file(2, "file")
    fx.file(2, "keep")
    fx.symlink(2, "link", "file")
    fx.symlink(2, "keep-link", "keep")
    fx.dir(2, "dir", mode=0o750, uid=1000, gid=1000)
    fx.file(2, "dir/a")
    fx.file(2, "dir/b")
    fx.file(2, "dir/sub/c")
    fx.file(2, "dir/sub/d/e")
    fx.symlink(2, "dir/sub/l", "../a")
    fx.fifo(2, "fifo")
    fx.file(2, "hl1")
    fx.hardlink(2, "hl1", "hl2")
    for n in ("x", "y", "z"):
        fx.file(2, f"d2/{n}")
    fx.file(2, "recreated/old1")
    fx.file(2, "recreated/old2")
    fx.file(2, "refile", data=b"bottom\n")
    fx.file(2, "deep/1/2/3/target")
    fx.file(2, "deep/1/2/3/other")
    fx.file(2, "mid/a")
    fx.file(2, "mid/b")
    fx.whiteout(2, "bottom-wh", w)           # lowest layer, hides nothing
    fx.file(2, "bottom-only/f")
    fx.whiteout(2, "bottom-only/wh", w)      # single-layer dir
    # L1: middle
    for p in ("file", "link", "dir", "fifo", "hl1", "d2/x", "recreated",
              "refile", "deep/1/2/3/target", "nothing"):
        fx.whiteout(1, p, w)
    fx.file(1, "d2/new")
    fx.file(1, "deep/1/2/mid")
    # L0: top
    fx.file(0, "recreated/new")              # dir over whiteout over dir
    fx.file(0, "refile", data=b"top\n")      # file over whiteout over file
    fx.file(0, "onlytop/f")
    fx.whiteout(0, "onlytop/ghost", w)       # single-layer dir
    fx.whiteout(0, "mid/a", w)
    fx.file(0, "deep/1/top")
    fx.whiteout(0, "deep/1/2/3/other", w)
    fx.dir(0, "", mode=0o755)


def _opaque_set(fx: Fixture, o: str) -> None:
    """Opaque dirs of format o hiding lower content while showing their own;
    an opaque dir in the middle merged under a plain dir on top; an empty
    opaque dir; one on the lowest layer (no effect); a whiteout inside an
    opaque dir (kernel phantom)."""
    w = "aufs" if o == "aufs" else "chardev"
    # L2
    fx.file(2, "od/a")
    fx.file(2, "od/b")
    fx.file(2, "od/sub/c")
    fx.file(2, "od2/a")
    fx.file(2, "od2/sub/b")
    fx.file(2, "plain/a")
    fx.file(2, "nested/inner/a")
    fx.file(2, "nested/inner/b")
    fx.file(2, "nested/y")
    fx.file(2, "topopq/hidden")
    fx.file(2, "topopq/shared")
    fx.file(2, "topopq/deep/er")
    fx.file(2, "botopq/f")
    fx.opaque(2, "botopq", o)
    # L1
    fx.dir(1, "od", mode=0o700, uid=1000, gid=12345, xattrs={"user.who": b"L1"})
    fx.opaque(1, "od", o)
    fx.file(1, "od/b", data=b"L1 b\n")
    fx.file(1, "od/new")
    fx.opaque(1, "od2", o)
    fx.opaque(1, "nested/inner", o)
    fx.file(1, "nested/inner/c")
    fx.file(1, "nested/x")
    fx.file(1, "topopq/mid")
    fx.file(1, "botopq/g")
    fx.file(1, "opq-sub/d/x")
    fx.file(1, "opq-sub/f")
    # L0
    fx.file(0, "od/top")
    fx.dir(0, "topopq", mode=0o751, xattrs={"user.k": b"v"})
    fx.opaque(0, "topopq", o)
    fx.file(0, "topopq/shared", data=b"top\n")
    fx.file(0, "topopq/own")
    fx.whiteout(0, "topopq/ghost", w)
    fx.opaque(0, "opq-sub", o)
    fx.dir(0, "opq-sub/d")


def _markers_mixed(fx: Fixture) -> None:
    """Every whiteout and opaque format at once, one per layer, plus foreign
    private xattrs (fuse-overlayfs origin) that must stay hidden."""
    for n in range(1, 7):
        fx.file(4, f"a/{n}")
    for d in "bcde":
        fx.file(4, f"{d}/x")
        fx.file(4, f"{d}/y")
    fx.file(3, "c/own3")
    fx.opaque(3, "c", "fuseoverlayfs")
    fx.whiteout(3, "a/1", "xattr-user")
    fx.opaque(2, "d", "user")
    fx.file(2, "d/own2")
    fx.whiteout(2, "a/2", "xattr-trusted")
    fx.whiteout(2, "a/6", "xattr-user")
    fx.opaque(1, "b", "aufs")
    fx.file(1, "b/own1")
    fx.whiteout(1, "a/3", "aufs")
    fx.whiteout(1, "c/x", "aufs")           # in a dir opaque further down
    fx.whiteout(0, "a/4", "chardev")
    fx.opaque(0, "e", "trusted")
    fx.file(0, "e/own0")
    fx.file(0, "priv", xattrs={"user.k": b"visible"})
    fx.setxattr(0, "priv", "user.fuseoverlayfs.origin", b"\x01\x02origin",
                copies=(NATIVE,))
    fx.setxattr(0, "priv", "user.overlay.origin", b"\x00\xfb", copies=(NATIVE,))
    fx.setxattr(0, "priv", "trusted.overlay.origin", b"\x00\xfb",
                copies=(NATIVE,))
    fx.file(2, "priv2", xattrs={"user.k": b"low"})
    fx.setxattr(2, "priv2", "user.fuseoverlayfs.origin", b"o", copies=(NATIVE,))


def _root_opaque(fx: Fixture) -> None:
    """Opaque markers of every format on layer ROOTS: the kernel ignores an
    opaque layer root, so everything below stays visible."""
    fx.file(4, "base")
    fx.file(4, "shared", data=b"base\n")
    fx.file(4, "d/low")
    fx.file(3, "l3")
    fx.file(3, "d/l3")
    fx.opaque(3, "", "aufs")
    fx.file(2, "l2")
    fx.opaque(2, "", "fuseoverlayfs")
    fx.file(1, "l1")
    fx.opaque(1, "", "user")
    fx.file(0, "l0")
    fx.file(0, "shared", data=b"top\n")
    fx.opaque(0, "", "trusted")


def _filetypes(fx: Fixture) -> None:
    """Every file type, sizes, sparse, symlink flavours, special mode bits,
    owners."""
    fx.file(1, "t/regular", data=b"hello world\n")
    fx.file(1, "t/empty", data=b"")
    fx.sparse(1, "t/sparse-8M", 8 << 20,
              data_at={0: b"head" * 1024, (5 << 20) + 123: b"middle data"})
    fx.sparse(1, "t/sparse-hole-only", 3 << 20)
    fx.file(1, "t/one-meg", data=seeded_bytes(1, 1 << 20))
    fx.file(1, "t/odd-size", data=seeded_bytes(2, 131073))
    fx.symlink(1, "t/rel-link", "regular")
    fx.symlink(1, "t/rel-up", "../t/regular")
    fx.symlink(1, "t/abs-link", "/etc/hostname")
    fx.symlink(1, "t/dangling", "no/such/target")
    fx.symlink(1, "t/to-dir", "../u")
    fx.symlink(1, "t/long-target", "x/" * 1900 + "end")
    fx.symlink(1, "t/owned-link", "regular", uid=1000, gid=12345)
    fx.fifo(1, "t/fifo", mode=0o640, uid=1000, gid=1000)
    fx.device(1, "t/null", "c", 1, 3, mode=0o666)
    fx.device(1, "t/blk", "b", 7, 0, mode=0o660, gid=6)
    fx.socket(1, "t/sock")
    fx.dir(1, "t/empty-dir")
    fx.file(1, "t/hard-a")
    fx.hardlink(1, "t/hard-a", "u/hard-b")
    fx.hardlink(1, "t/hard-a", "t/hard-c")
    # modes and owners
    fx.file(1, "m/setuid", mode=0o4755)
    fx.file(1, "m/setgid", mode=0o2755, gid=12345)
    fx.file(1, "m/suid-sgid-1000", mode=0o6750, uid=1000, gid=1000)
    fx.file(1, "m/all-bits", mode=0o7777)
    fx.file(1, "m/none", mode=0o000)
    fx.file(1, "m/u1000", mode=0o600, uid=1000, gid=1000)
    fx.file(1, "m/u12345", mode=0o640, uid=12345, gid=12345)
    fx.file(1, "m/mixed", mode=0o604, uid=0, gid=12345)
    fx.dir(1, "m/sticky", mode=0o1777)
    fx.dir(1, "m/sgid-dir", mode=0o2775, uid=1000, gid=12345)
    fx.file(1, "m/sgid-dir/inside")
    fx.dir(1, "m/d000", mode=0o000)
    fx.file(1, "m/d000/hidden-from-users")
    fx.dir(1, "m/d12345", mode=0o2750, uid=12345, gid=1000)
    # top layer: the same in a merged dir, plus shadows of other types
    fx.file(0, "t/top-file", data=b"top\n", mode=0o755, uid=12345, gid=0)
    fx.symlink(0, "t/top-link", "top-file", uid=12345, gid=12345)
    fx.fifo(0, "t/top-fifo")
    fx.device(0, "t/top-tty", "c", 5, 0, mode=0o620, gid=5)
    fx.sparse(0, "t/top-sparse", 64 << 20, data_at={(64 << 20) - 5: b"tail!"})
    fx.file(0, "m/setuid", data=b"shadow\n", mode=0o4711, uid=1000)
    fx.dir(0, "m/sticky", mode=0o1770, gid=1000)
    fx.file(0, "m/sticky/mine", uid=1000, gid=1000)
    fx.dir(0, "", mode=0o711)


def _xattrs(fx: Fixture) -> None:
    """user.* and trusted.* xattrs on files, dirs and symlinks; merged dirs
    take the xattrs of their topmost layer."""
    fx.file(2, "f-low", xattrs={"user.a": b"1", "user.b": b""})
    fx.dir(2, "d", xattrs={"user.layer": b"L2", "user.only-low": b"x"})
    fx.file(2, "d/low")
    fx.file(2, "shadowed", xattrs={"user.from": b"L2"})
    fx.dir(2, "single", xattrs={"user.single": b"yes"})
    fx.file(1, "binary", xattrs={"user.bin": bytes(range(256)),
                                 "user.nul": b"\x00\x00x"})
    many = {f"user.k{n:02d}": f"value {n}".encode() for n in range(30)}
    fx.file(1, "many", xattrs=many)
    fx.file(1, "big-value", xattrs={"user.big": seeded_bytes(3, 3000)})
    fx.dir(1, "d", xattrs={"user.layer": b"L1"})
    fx.file(1, "d/mid", xattrs={"trusted.t": b"trusted value"})
    fx.symlink(1, "sym", "f-low", xattrs={"trusted.sym": b"on a symlink"})
    fx.fifo(1, "fifo", xattrs={"trusted.fifo": b"f"})
    fx.file(0, "shadowed", xattrs={})        # upper copy without xattrs
    fx.dir(0, "d", mode=0o750, xattrs={"user.layer": b"L0",
                                       "user.unicode": "\u00e9t\u00e9".encode()})
    fx.file(0, "d/top", xattrs={"user.empty": b""})
    fx.dir(0, "", xattrs={"user.root": b"top"})


def _deep_tree(fx: Fixture) -> None:
    """40 levels, merged through 3 layers, an opaque dir at level 25 in the
    middle layer and a whiteout at level 38 in the top layer."""
    chain = [f"d{k:02d}" for k in range(1, 41)]
    for k in range(1, 41):
        p = "/".join(chain[:k])
        fx.file(2, f"{p}/f{k}")
        fx.file(1, f"{p}/g{k}")
        fx.file(0, f"{p}/h{k}")
    fx.opaque(1, "/".join(chain[:25]), "trusted")
    fx.whiteout(0, "/".join(chain[:38]) + "/g38", "chardev")
    fx.whiteout(0, "/".join(chain[:10]) + "/f10", "aufs")


def _long_paths(fx: Fixture) -> None:
    """Paths longer than PATH_MAX: 16 levels of 250-byte names, 255-byte
    leaves, merged over 2 layers; a whiteout of a 255-byte name."""
    chain = [f"{k:02d}" + "x" * 248 for k in range(16)]
    leaf = "L" * 255
    for k in (4, 8, 16):
        p = "/".join(chain[:k])
        fx.file(1, f"{p}/low{k}")
        fx.file(0, f"{p}/top{k}")
    p = "/".join(chain)
    fx.file(1, f"{p}/{leaf}")
    fx.file(1, f"{p}/{'M' * 255}")
    fx.whiteout(0, f"{p}/{leaf}", "chardev")
    fx.symlink(0, f"{p}/{'S' * 255}", "../" * 16)
    fx.file(0, p + "/" + "\u00e9" * 127 + "e")   # 255 bytes of UTF-8


def _big_dir(fx: Fixture) -> None:
    """One directory of ~10,000 entries over 4 layers: shadowed names and
    whiteouts in three formats (the middle one puts x on the dir)."""
    n = lambda k: f"big/f{k:05d}"
    for k in range(0, 6000):
        fx.file(3, n(k), data=b"L3\n")
    for k in range(100):
        fx.file(3, f"big/d{k:03d}/in3")
    for k in range(4000, 8000):
        fx.file(2, n(k), data=b"L2\n")
    for k in range(0, 500):
        fx.whiteout(2, n(k), "chardev")
    for k in range(7000, 10000):
        fx.file(1, n(k), data=b"L1\n")
    for k in range(500, 1000):
        fx.whiteout(1, n(k), "xattr-trusted")
    for k in range(0, 100, 2):
        fx.file(1, f"big/d{k:03d}/in1")
    for k in range(1000, 3000, 10):
        fx.whiteout(0, n(k), "aufs")
    for k in range(5000, 5100):
        fx.file(0, n(k), data=b"L0\n")
    for k in range(10000, 10300):
        fx.file(0, n(k), data=b"L0\n")


def _type_conflicts(fx: Fixture) -> None:
    """Non-directories over directories and directories over
    non-directories: the upper object wins, the lower one is hidden; a
    directory does not merge through a non-directory in between."""
    for d in ("fod", "lod", "pod", "cod"):
        fx.file(2, f"{d}/a")
        fx.file(2, f"{d}/b/c")
    fx.file(1, "fod", data=b"file over dir\n")
    fx.symlink(1, "lod", "fod")
    fx.fifo(1, "pod")
    fx.device(1, "cod", "c", 1, 5)
    fx.file(2, "dof", data=b"lower file\n")
    fx.file(1, "dof/x")                       # dir over file: single layer
    fx.file(1, "dof/sub/y")
    fx.file(2, "sandwich/bottom")
    fx.file(1, "sandwich", data=b"middle file\n")
    fx.file(0, "sandwich/top")                # dir / file / dir
    fx.dir(0, "sandwich/sub")
    fx.file(2, "dd", data=b"bottom file\n")
    fx.file(1, "dd/mid")
    fx.file(0, "dd/top")                      # dir / dir / file: merged
    fx.file(1, "sl-target/t")
    fx.symlink(1, "sl", "sl-target")
    fx.file(0, "sl/real")                     # dir over symlink-to-dir
    fx.file(1, "ls/inner")
    fx.symlink(0, "ls", "sl-target")          # symlink over dir
    fx.file(2, "deep/a/b/c")
    fx.file(1, "deep/a", data=b"cuts the tree\n")
    fx.file(0, "deep/a2")


def _merge_many(fx: Fixture) -> None:
    """Directories merged from 3 to 5 layers; attributes from the topmost
    dir; gaps in the stack; lower-only merged dirs; single-layer dirs with
    subdirectories (real nlink)."""
    for i in range(5):
        fx.dir(i, "m", mode=(0o755, 0o700, 0o750, 0o711, 0o775)[i],
               uid=(0, 1000, 12345, 0, 1000)[i], gid=(0, 1000, 0, 12345, 1000)[i],
               xattrs={"user.layer": f"L{i}".encode()})
        fx.file(i, f"m/only{i}")
        fx.file(i, "m/s")                      # the top one wins
        fx.file(i, f"m/sub/in{i}")
        if i % 2 == 0:
            fx.file(i, f"m/gap/in{i}")
    fx.file(3, "lowers/a")
    fx.file(4, "lowers/b")
    fx.file(3, "lowers/n/x")
    fx.file(4, "lowers/n/y")
    fx.file(1, "single/x/f")
    fx.dir(1, "single/y")
    fx.dir(1, "single/z")
    fx.file(0, "three/a")
    fx.file(2, "three/b")
    fx.file(4, "three/c")
    fx.file(0, "three/deep/x")
    fx.file(2, "three/deep/y")
    fx.file(4, "three/deep/z")


NAMES = [
    "with space", " leading space", "trailing space ", "tab\there",
    "new\nline", "caf\u00e9", "cafe\u0301", "\u65e5\u672c\u8a9e",
    "emoji-\U0001F600", "-dash", "--", "...", "a:b", "a,b", "a=b",
    "back\\slash", "quote'\"", "latin1-\udce9\udcff", ".hidden", ".wh",
    "wh.x", ".whx", "x" * 255, "\u00e9" * 127 + "x", "\u65e5" * 85,
]


def _names(fx: Fixture) -> None:
    """Awkward names: spaces, control characters, unicode NFC/NFD, non-UTF-8
    bytes, 255-byte names; whiteouts of some of them."""
    for k, name in enumerate(NAMES):
        fx.file(1, name)
        fx.file(1, f"dir {k}/{name}")
    fx.file(0, "\u65e5\u672c\u8a9e", data=b"top\n")
    fx.whiteout(0, "new\nline", "chardev")
    fx.whiteout(0, "x" * 255, "chardev")
    fx.whiteout(0, "with space", "aufs")
    fx.whiteout(0, "dir 5/caf\u00e9", "aufs")
    fx.whiteout(0, "dir 17/latin1-\udce9\udcff", "xattr-trusted")
    fx.file(0, "dir 6/new name \u2603")
    fx.dir(0, "\u00e9\u00e8 dir")
    fx.file(0, "\u00e9\u00e8 dir/a")
    fx.file(1, "\u00e9\u00e8 dir/b")


def _hardlinks(fx: Fixture) -> None:
    """Hardlink groups within a layer: across dirs, with one name whited out
    (chardev and aufs) or shadowed above, hidden by an opaque dir; linked
    symlinks and fifos; a group in the top layer; one in a 1-layer dir."""
    fx.file(1, "hl/a")
    fx.hardlink(1, "hl/a", "hl/sub/b")
    fx.hardlink(1, "hl/a", "hl/c")
    fx.whiteout(0, "hl/c", "chardev")
    fx.file(1, "g2/x")
    fx.hardlink(1, "g2/x", "g2/y")
    fx.file(0, "g2/y", data=b"shadow\n")
    fx.file(1, "w/p")
    fx.hardlink(1, "w/p", "w/q")
    fx.hardlink(1, "w/p", "w/r")
    fx.whiteout(0, "w/q", "aufs")
    fx.symlink(1, "sl", "hl/a")
    fx.hardlink(1, "sl", "sl2")
    fx.fifo(1, "ff")
    fx.hardlink(1, "ff", "ff2")
    fx.file(1, "o/a")
    fx.hardlink(1, "o/a", "keep/a2")
    fx.opaque(0, "o", "trusted")
    fx.file(0, "t/a", mode=0o4750, uid=1000)
    fx.hardlink(0, "t/a", "t/b")
    fx.hardlink(0, "t/a", "top-b")
    fx.file(1, "solo/a")
    fx.hardlink(1, "solo/a", "solo/b")
    fx.file(1, "many/0")
    for k in range(1, 20):
        fx.hardlink(1, "many/0", f"many/{k}")


def _hardlinks_cross_layer(fx: Fixture) -> None:
    """The same inode in two layers (what deduplicating layer stores do):
    the kernel reports one inode number for both visible names."""
    fx.file(1, "low-name", data=b"shared inode\n")
    fx.hardlink(0, "low-name", "top-name", src_layer=1)
    fx.file(1, "d/same-path")
    fx.hardlink(0, "d/same-path", "d/same-path", src_layer=1)
    fx.file(1, "lonely")


def _corrupt_markers(fx: Fixture) -> None:
    """Markers the kernel does NOT honour, and odd ones it does."""
    values = {"bogus": b"bogus", "yes": b"yes", "empty": b"", "Y": b"Y",
              "x": b"x"}
    for tag, v in values.items():
        fx.file(1, f"o_{tag}/low")
        fx.file(0, f"o_{tag}/up")
        fx.setxattr(0, f"o_{tag}", "trusted.overlay.opaque", v)
    for tag, name in (("ubogus", "user.overlay.opaque"),
                      ("fbogus", "user.fuseoverlayfs.opaque")):
        fx.file(1, f"o_{tag}/low")
        fx.file(0, f"o_{tag}/up")
        fx.setxattr(0, f"o_{tag}", name, b"bogus", copies=(NATIVE,))
    for n in ("nz", "bd", "wm", "ne", "une", "dirwh", "lnkwh"):
        fx.file(1, f"c/{n}", data=b"low\n")
    fx.device(0, "c/nz", "c", 1, 3, mode=0o666)          # not 0/0: a device
    fx.device(0, "c/bd", "b", 0, 0)                       # block 0/0: a device
    fx.device(0, "c/wm", "c", 0, 0, mode=0o644, uid=1000)  # 0/0 chr: whiteout
    fx.file(0, "c/ne", data=b"not empty\n",
            xattrs={"trusted.overlay.whiteout": b""})     # size != 0: a file
    fx.file(0, "c/une", data=b"not empty\n")
    fx.setxattr(0, "c/une", "user.overlay.whiteout", b"", copies=(NATIVE,))
    fx.setxattr(0, "c", "user.overlay.opaque", b"x", copies=(NATIVE,))
    fx.dir(0, "c/dirwh", xattrs={"trusted.overlay.whiteout": b""})
    fx.symlink(0, "c/lnkwh", "nz", xattrs={"trusted.overlay.whiteout": b""})
    fx.setxattr(0, "c", "trusted.overlay.opaque", b"x")
    fx.file(1, "nx/a")
    fx.file(1, "nx/b")
    fx.xattr_whiteout_raw(0, "nx/a", "trusted", parent_x=False)


def _escaped_xattrs(fx: Fixture) -> None:
    """Escaped overlay xattrs (kernel >= 6.7): trusted.overlay.overlay.NAME
    in a layer shows through the mount as trusted.overlay.NAME and means
    nothing to the merge -- an escaped opaque is not opaque, an escaped
    whiteout is not a whiteout."""
    esc = "trusted.overlay.overlay."
    fx.file(1, "f", xattrs={esc + "foo": b"bar", "user.k": b"v"})
    fx.file(1, "d/low")
    fx.file(0, "d/top")
    fx.setxattr(0, "d", esc + "opaque", b"y")
    fx.file(1, "w", data=b"low\n")
    fx.file(0, "w", data=b"", xattrs={esc + "whiteout": b""})
    fx.file(0, "e/empty", data=b"", xattrs={esc + "whiteout": b""})
    fx.setxattr(0, "e", esc + "opaque", b"x")
    fx.file(1, "e/low")
    fx.symlink(0, "l", "f", xattrs={esc + "origin": b"\x00\x01"})


def _many_layers(fx: Fixture) -> None:
    """150 layers: the kernel needs relative lowerdir paths to fit its
    one-page option string; stratafs gets absolute ones."""
    n = fx.nlayers
    for i in range(n):
        fx.file(i, f"f{i:03d}")
        fx.file(i, "common")
        fx.file(i, f"d/f{i:03d}")
    for i in range(0, n - 1, 10):
        fx.whiteout(i, f"f{i + 1:03d}", "chardev")
        fx.whiteout(i, f"d/f{i + 1:03d}", "aufs")
    fx.opaque(100, "d", "trusted")


def _podman_diff_empty(fx: Fixture) -> None:
    """containers-storage's read-only 'diff:empty' stack with AUFS markers in
    the diff layer (whiteouts under a single-layer dir: kernel phantoms)."""
    fx.file(0, "etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n")
    fx.file(0, "etc/.wh-not-a-marker")
    fx.whiteout(0, "gone", "aufs")
    fx.whiteout(0, "etc/gone", "aufs")
    fx.opaque(0, "var/cache", "aufs")
    fx.file(0, "var/cache/new")
    fx.file(0, "usr/bin/tool", mode=0o755)
    fx.hardlink(0, "usr/bin/tool", "usr/bin/tool2")
    fx.symlink(0, "bin", "usr/bin")


@dataclass(frozen=True)
class FixtureSet:
    name: str
    nlayers: int
    populate: Callable[[Fixture], None]
    doc: str


def _mk(name, nlayers, fn, doc=None):
    return FixtureSet(name, nlayers, fn, (doc or fn.__doc__ or "").strip())


FIXTURES: list[FixtureSet] = (
    [_mk(f"wh-{w}", 3, (lambda w: lambda fx: _whiteout_set(fx, w))(w),
         _whiteout_set.__doc__.replace("format w", f"format {w}"))
     for w in WHITEOUT_FORMATS] +
    [_mk(f"opq-{o}", 3, (lambda o: lambda fx: _opaque_set(fx, o))(o),
         _opaque_set.__doc__.replace("format o", f"format {o}"))
     for o in OPAQUE_FORMATS] +
    [
        _mk("markers-mixed", 5, _markers_mixed),
        _mk("root-opaque", 5, _root_opaque),
        _mk("corrupt-markers", 2, _corrupt_markers),
        _mk("escaped-xattrs", 2, _escaped_xattrs),
        _mk("filetypes", 2, _filetypes),
        _mk("xattrs", 3, _xattrs),
        _mk("hardlinks", 2, _hardlinks),
        _mk("hardlinks-cross-layer", 2, _hardlinks_cross_layer),
        _mk("type-conflicts", 3, _type_conflicts),
        _mk("merge-many", 5, _merge_many),
        _mk("names", 2, _names),
        _mk("deep-tree", 3, _deep_tree),
        _mk("long-paths", 2, _long_paths),
        _mk("big-dir", 4, _big_dir),
        _mk("many-layers", 150, _many_layers),
        _mk("podman-diff-empty", 2, _podman_diff_empty),
    ]
)

BY_NAME = {f.name: f for f in FIXTURES}


def build(fset: FixtureSet | str, root: str) -> Fixture:
    """Build a fixture set into root (which must not hold native/ or
    kernel/ yet) and return the finished Fixture."""
    if isinstance(fset, str):
        fset = BY_NAME[fset]
    old = os.umask(0o022)
    try:
        fx = Fixture(root, fset.nlayers, fset.name)
        fset.populate(fx)
        return fx.finish()
    finally:
        os.umask(old)


def check_copies(fx: Fixture) -> list[str]:
    """Differences between the native and the kernel copy of every layer,
    other than the markers themselves (whiteout entries, .wh.* names,
    private xattrs): there must be none."""
    import treedump
    out = []
    wh = {"/" + p for _, p, _ in fx.whiteouts}
    for i in range(fx.nlayers):
        trees = []
        for c in COPIES:
            t = treedump.dump(fx.layer_path(c, i))
            for p in list(t):
                if p in wh or p.rsplit("/", 1)[-1].startswith(AUFS_PREFIX):
                    del t[p]
                    continue
                t[p]["xattrs"] = tuple(x for x in t[p]["xattrs"]
                                       if not x[0].startswith(PRIVATE_XATTR_PREFIXES))
            trees.append(t)
        out += [f"L{i}: {d}" for d in treedump.diff(*trees, names=COPIES)]
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check-copies"]:
        import tempfile
        bad = 0
        for f in FIXTURES:
            if argv[1:] and f.name not in argv[1:]:
                continue
            with tempfile.TemporaryDirectory(prefix="stratafs-fx-") as d:
                problems = check_copies(build(f, os.path.join(d, "fx")))
            print(f"{f.name}: {'ok' if not problems else 'DIFFERENT'}")
            for p in problems[:20]:
                print("   ", p)
            bad += bool(problems)
        return 1 if bad else 0
    if len(argv) >= 1 and argv[0] == "--list":
        for f in FIXTURES:
            print(f"{f.name:24} {f.nlayers:3} layers  {f.doc.splitlines()[0]}")
        return 0
    if len(argv) != 2:
        print("usage: fixtures.py --list | --check-copies [NAME...] | NAME DIR",
              file=sys.stderr)
        return 2
    t = time.monotonic()
    fx = build(argv[0], argv[1])
    print(f"built {fx.name} in {time.monotonic() - t:.2f}s")
    print(f"native: lowerdir={fx.lowerdir(NATIVE)}")
    print(f"kernel: lowerdir={fx.lowerdir(KERNEL)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
