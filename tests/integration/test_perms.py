#!/usr/bin/env python3
"""Permissions through a root mount of stratafs (allow_other and
default_permissions, which stratafs adds as root; once as it comes, with
POSIX ACLs, and once with noacl), used by an unprivileged user
(`stratafs-test`, created if missing), beside the kernel overlayfs on the
same lower layer and a plain directory holding the same tree.

Each check runs on the four and must have the same outcome on each: the
user's errno or result, and the resulting mode, owner and xattrs.  Most
checks also name the outcome expected, so that a mistake shared by all
four cannot pass either.  The objects come in three states: `.lo` only in
the lower layer, `.cu` copied up (a chmod to its own mode as root, through
the mount) and `.up` created through the mount.

  read/write/list what the modes forbid (0600 files, 0700 dirs), create or
  delete in a 0755 root dir; chown (EPERM), chmod and utimes of others'
  files, trusted.* and security.capability xattrs (EPERM), user.* on own
  files; the sticky bit; setgid dropped by chmod from a non-member and
  inherited from a setgid directory; setuid/setgid cleared by writes and
  truncates of non-owners and of owners, and by chown, kept on root's
  writes; security.capability kept by copy-up (the upper file holds it)
  and dropped by a write, a truncate and a chown, as on the kernel.
"""
import errno
import os
import pickle
import pwd
import shutil
import stat
import struct
import subprocess
import sys
import tempfile

from tap import (Tap, mount_stratafs, require_root_fuse, skip_all, unmount,
                 wait_gone, is_mounted)

require_root_fuse()
USER = "stratafs-test"
OTHER = 60123          # a second unprivileged owner, no passwd entry needed
STATES = ("lo", "cu", "up")


def ensure_user():
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pass
    r = subprocess.run(["useradd", "--system", "-M", "-d", "/nonexistent",
                        "-s", "/usr/sbin/nologin", "-U", USER],
                       capture_output=True, text=True)
    if r.returncode != 0:
        skip_all(f"cannot create user {USER}: {r.stderr.strip()}")
    return pwd.getpwnam(USER)


pw = ensure_user()
UID, GID = pw.pw_uid, pw.pw_gid
if OTHER in (UID, GID):
    OTHER += 1

t = Tap()
top = tempfile.mkdtemp(prefix="stratafs-perms-")
os.chmod(top, 0o755)
L = os.path.join(top, "lower")
PLAIN = os.path.join(top, "plain")


def as_user(fn, *args, uid=None, gid=None):
    """Run fn(*args) in a child with the user's ids and no capabilities;
    return ('ok', value) or the errno's name."""
    uid = UID if uid is None else uid
    gid = GID if gid is None else gid
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            try:
                res = ("ok", fn(*args))
            except OSError as e:
                res = errno.errorcode.get(e.errno, str(e.errno))
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                res = ("exception", repr(e))
            os.write(wfd, pickle.dumps(res))
        finally:
            os._exit(0)
    os.close(wfd)
    data = b""
    while True:
        chunk = os.read(rfd, 65536)
        if not chunk:
            break
        data += chunk
    os.close(rfd)
    os.waitpid(pid, 0)
    return pickle.loads(data) if data else ("exception", "child died")


def as_root(fn, *args):
    try:
        return ("ok", fn(*args))
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def cap_blob(version, permitted, effective=True, rootid=0):
    """A struct vfs_cap_data (v2) or vfs_ns_cap_data (v3), little endian."""
    magic = 0x02000000 if version == 2 else 0x03000000
    blob = struct.pack("<IIIII", magic | (1 if effective else 0),
                       permitted & 0xffffffff, 0, permitted >> 32, 0)
    return blob + (struct.pack("<I", rootid) if version == 3 else b"")


CAP2 = cap_blob(2, 1 << 10)                 # cap_net_bind_service+ep
CAP3 = cap_blob(3, (1 << 12) | (1 << 13))   # cap_net_admin,cap_net_raw+ep, rootid 0
# a v3 blob of rootid 0 set by the initial namespace's root is stored as v2
CAP3_STORED = cap_blob(2, (1 << 12) | (1 << 13))

# --- the tree: (name, kind, mode, uid, gid, data or children, xattrs) -----------
# The children of a directory: (name, mode, uid, gid).
OBJECTS = [
    ("secret", "f", 0o600, 0, 0, b"secret\n", {"user.k": b"v"}),
    ("readonly", "f", 0o644, 0, 0, b"readonly\n", {"user.k": b"v"}),
    ("mine", "f", 0o644, "U", "G", b"mine\n", {"user.k": b"v"}),
    ("mine-rootgrp", "f", 0o755, "U", 0, b"mine\n", {}),
    ("private", "d", 0o700, 0, 0, [("f", 0o644, 0, 0)], {}),
    ("rodir", "d", 0o755, 0, 0, [("f", 0o666, 0, 0), ("g", 0o666, "U", "G")], {}),
    ("sticky", "d", 0o1777, 0, 0, [("root-f", 0o666, 0, 0), ("other-f", 0o666, "O", "O"),
                                   ("own-f", 0o644, "U", "G")], {}),
    ("sticky-own", "d", 0o1777, "U", "G", [("other-f", 0o666, "O", "O")], {}),
    ("sgid-dir", "d", 0o2777, 0, "O", [], {}),
    ("suid-rw", "f", 0o6777, 0, 0, b"suid\n", {}),
    ("suid-rw2", "f", 0o6777, 0, 0, b"suid\n", {}),
    ("suid-rw3", "f", 0o6777, 0, 0, b"suid\n", {}),
    ("sgid-nox", "f", 0o2666, 0, 0, b"sgid\n", {}),
    ("sgid-nox-grp", "f", 0o2666, 0, "G", b"sgid\n", {}),
    ("sgid-nox-tr", "f", 0o2666, 0, 0, b"sgid\n", {}),
    ("sgid-nox-grp-tr", "f", 0o2666, 0, "G", b"sgid\n", {}),
    ("suid-own", "f", 0o6775, "U", "G", b"own\n", {}),
    ("suid-own2", "f", 0o6775, "U", "G", b"own\n", {}),
    ("suid-own3", "f", 0o4755, "U", "G", b"own\n", {}),
    ("cap", "f", 0o755, 0, 0, b"cap\n", {"security.capability": CAP2}),
    ("cap3", "f", 0o755, 0, 0, b"cap\n", {"security.capability": CAP3}),
    ("cap-w", "f", 0o755, 0, 0, b"cap\n", {"security.capability": CAP2}),
    ("cap-t", "f", 0o755, 0, 0, b"cap\n", {"security.capability": CAP2}),
    ("cap-c", "f", 0o755, 0, 0, b"cap\n", {"security.capability": CAP2}),
    ("cap-u", "f", 0o777, 0, 0, b"cap\n", {"security.capability": CAP2}),
]


def ident(v):
    return {"U": UID, "G": GID, "O": OTHER}.get(v, v)


def make_obj(base, name, kind, mode, uid, gid, payload, xattrs):
    """Create one object as root in base (a lower, a plain dir, a mount)."""
    p = os.path.join(base, name)
    if kind == "d":
        os.mkdir(p)
        for cname, cmode, cuid, cgid in payload:
            c = os.path.join(p, cname)
            with open(c, "wb") as f:
                f.write(cname.encode() + b"\n")
            os.chown(c, ident(cuid), ident(cgid))
            os.chmod(c, cmode)
    else:
        with open(p, "wb") as f:
            f.write(payload)
    os.chown(p, ident(uid), ident(gid))
    os.chmod(p, mode)  # after chown, which clears setuid/setgid
    for k, v in xattrs.items():
        os.setxattr(p, k, v)


def build_lower():
    os.makedirs(L)
    os.chmod(L, 0o755)
    for name, kind, mode, uid, gid, payload, xattrs in OBJECTS:
        for st in ("lo", "cu"):
            make_obj(L, f"{name}.{st}", kind, mode, uid, gid, payload, xattrs)


def prepare(base, plain=False):
    """Put the .cu objects in the upper (chmod to their own mode, as
    root) and create the .up ones; on a plain dir copy the .lo/.cu too."""
    if plain:
        os.makedirs(base)
        os.chmod(base, 0o755)
    for name, kind, mode, uid, gid, payload, xattrs in OBJECTS:
        if plain:
            for st in ("lo", "cu"):
                make_obj(base, f"{name}.{st}", kind, mode, uid, gid, payload, xattrs)
        else:
            os.chmod(os.path.join(base, f"{name}.cu"), mode)
        make_obj(base, f"{name}.up", kind, mode, uid, gid, payload, xattrs)


# --- targets -----------------------------------------------------------------------
class Target:
    def __init__(self, name, kind, extra=""):
        self.name, self.kind, self.extra = name, kind, extra
        d = os.path.join(top, name)
        self.U, self.W, self.M = d + "-upper", d + "-work", d + "-mnt"

    def mount(self):
        for p in (self.U, self.W, self.M):
            os.makedirs(p)
        os.chmod(self.U, 0o755)
        opts = f"lowerdir={L},upperdir={self.U},workdir={self.W}" + \
            (f",{self.extra}" if self.extra else "")
        if self.kind == "stratafs":
            mount_stratafs(opts, self.M)
        else:
            r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, self.M],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"mount -t overlay: {r.stderr.strip()}")

    def umount(self):
        unmount(self.M)
        if self.kind == "stratafs":
            wait_gone(self.M)

    def upper(self, rel):
        return os.path.join(self.U, rel)


class Plain:
    name, kind = "plain", "plain"
    M = PLAIN

    def mount(self):
        pass

    def umount(self):
        pass


S = Target("stratafs", "stratafs")
# POSIX ACLs make the kernel check permissions even without
# default_permissions; with noacl that option alone must do it
SN = Target("stratafs-noacl", "stratafs", "noacl")
K = Target("kernel", "kernel")
P = Plain()
ALL = (S, SN, K, P)


def state_of(path):
    """What a check compares after the operation: mode, owner, xattrs."""
    try:
        st = os.lstat(path)
    except OSError as e:
        return errno.errorcode[e.errno]
    try:
        xs = {k: os.getxattr(path, k, follow_symlinks=False)
              for k in sorted(os.listxattr(path, follow_symlinks=False))}
    except OSError as e:
        xs = errno.errorcode[e.errno]
    cap = as_root(os.getxattr, path, "security.capability")
    return (oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid, xs, cap)


def check(name, op, rels=(), targets=ALL, expect=None, upper_of=None,
          expect_upper=None):
    """Run op(target) on every target; compare its result, the state of
    each path in rels after it and (upper_of) the upper file's
    security.capability.  expect: the result required of op."""
    outs = {}
    for tg in targets:
        try:
            res = op(tg)
        except Exception as e:  # noqa: BLE001 - a harness error is a failure
            res = ("exception", repr(e))
        after = tuple(state_of(os.path.join(tg.M, r)) for r in rels)
        up = None
        if upper_of is not None and tg.kind != "plain":
            up = as_root(os.getxattr, tg.upper(upper_of), "security.capability")
        outs[tg.name] = (res, after, up)
    # the result and the states on all; the upper's xattr on the overlays
    first = outs[targets[0].name]
    same = all(o[:2] == first[:2] for o in outs.values()) and \
        all(outs[tg.name][2] == first[2] for tg in targets if tg.kind != "plain")
    good = (expect is None or first[0] == expect) and \
        (expect_upper is None or first[2] == expect_upper)
    diag = "\n".join(f"{k}: {v}" for k, v in outs.items())
    if expect is not None:
        diag += f"\nexpected result: {expect}"
    if expect_upper is not None:
        diag += f"\nexpected in the upper: {expect_upper}"
    return t.ok(same and good, name, diag)


# --- user operations (run in the child) ---------------------------------------------
def read(p):
    with open(p, "rb") as f:
        return f.read()


def write(p, data=b"x"):
    fd = os.open(p, os.O_WRONLY)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def append(p, data=b"x"):
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def create(p):
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.close(fd)
    return oct(stat.S_IMODE(os.lstat(p).st_mode))


def created_ids(p, mkdir=False):
    if mkdir:
        os.mkdir(p, 0o755)
    else:
        create(p)
    st = os.lstat(p)
    return (st.st_uid, st.st_gid, oct(stat.S_IMODE(st.st_mode)))


def setx(p, name, value):
    os.setxattr(p, name, value)
    return os.getxattr(p, name)


def user(fn, *rel_and_args):
    """An op for check(): fn(mount/rel, *args) as the user."""
    rel, args = rel_and_args[0], rel_and_args[1:]
    return lambda tg: as_user(fn, os.path.join(tg.M, rel), *args)


def root(fn, *rel_and_args):
    rel, args = rel_and_args[0], rel_and_args[1:]
    return lambda tg: as_root(fn, os.path.join(tg.M, rel), *args)


def two(fn, rel1, rel2):
    return lambda tg: as_user(fn, os.path.join(tg.M, rel1), os.path.join(tg.M, rel2))


OK0 = ("ok", None)


def checks_for(s):
    """The checks on the objects of state s."""
    f = lambda n: f"{n}.{s}"  # noqa: E731
    # modes forbid: read, write, list, search, create, delete
    check(f"{s}: 0600 root file: read is EACCES", user(read, f("secret")),
          [f("secret")], expect="EACCES")
    check(f"{s}: 0600 root file: write-open is EACCES", user(write, f("secret")),
          [f("secret")], expect="EACCES")
    check(f"{s}: 0600 root file: user.* getxattr is EACCES",
          user(os.getxattr, f("secret"), "user.k"), expect="EACCES")
    check(f"{s}: 0600 root file: access(R_OK) is false",
          user(os.access, f("secret"), os.R_OK), expect=("ok", False))
    check(f"{s}: 0644 root file: read works", user(read, f("readonly")),
          expect=("ok", b"readonly\n"))
    check(f"{s}: 0644 root file: write-open is EACCES", user(write, f("readonly")),
          [f("readonly")], expect="EACCES")
    check(f"{s}: 0644 root file: truncate is EACCES",
          user(os.truncate, f("readonly"), 0), [f("readonly")], expect="EACCES")
    check(f"{s}: 0700 root dir: listing is EACCES", user(os.listdir, f("private")),
          expect="EACCES")
    check(f"{s}: 0700 root dir: stat of an entry is EACCES",
          lambda tg: as_user(lambda p: os.lstat(p).st_size,
                             os.path.join(tg.M, f("private"), "f")), expect="EACCES")
    check(f"{s}: 0700 root dir: open of an entry is EACCES",
          user(read, f("private") + "/f"), expect="EACCES")
    check(f"{s}: 0700 root dir: create inside is EACCES",
          user(create, f("private") + "/new"), expect="EACCES")
    check(f"{s}: 0755 root dir: create inside is EACCES",
          user(create, f("rodir") + "/new"), expect="EACCES")
    check(f"{s}: 0755 root dir: mkdir inside is EACCES",
          user(os.mkdir, f("rodir") + "/newd"), expect="EACCES")
    check(f"{s}: 0755 root dir: unlink of a 0666 entry is EACCES",
          user(os.unlink, f("rodir") + "/f"), [f("rodir") + "/f"], expect="EACCES")
    check(f"{s}: 0755 root dir: unlink of an own entry is EACCES",
          user(os.unlink, f("rodir") + "/g"), [f("rodir") + "/g"], expect="EACCES")
    check(f"{s}: 0755 root dir: rename out of it is EACCES",
          two(os.rename, f("rodir") + "/g", f("sticky") + "/moved"),
          [f("rodir") + "/g"], expect="EACCES")
    check(f"{s}: 0666 file in a 0755 root dir: write works",
          user(write, f("rodir") + "/f"), [f("rodir") + "/f"], expect=("ok", 1))
    check(f"{s}: link to a root 0600 file is EPERM (protected_hardlinks)",
          two(os.link, f("secret"), f("sticky") + "/hl"), [f("secret")])
    # owners, modes, times
    check(f"{s}: chown of an own file to root is EPERM",
          user(os.chown, f("mine"), 0, -1), [f("mine")], expect="EPERM")
    check(f"{s}: chgrp of an own file to a foreign group is EPERM",
          user(os.chown, f("mine"), -1, 0), [f("mine")], expect="EPERM")
    check(f"{s}: chown of root's file to the user is EPERM",
          user(os.chown, f("readonly"), UID, GID), [f("readonly")], expect="EPERM")
    check(f"{s}: chmod of root's file is EPERM",
          user(os.chmod, f("readonly"), 0o666), [f("readonly")], expect="EPERM")
    check(f"{s}: utimes of root's file to given times is EPERM",
          user(os.utime, f("readonly"), (1, 1)), [f("readonly")], expect="EPERM")
    check(f"{s}: chmod g+s of an own file of a foreign group drops setgid",
          user(os.chmod, f("mine-rootgrp"), 0o2755), [f("mine-rootgrp")], expect=OK0)
    # xattrs
    check(f"{s}: setxattr trusted.* on an own file is EPERM",
          user(os.setxattr, f("mine"), "trusted.t", b"1"), [f("mine")], expect="EPERM")
    check(f"{s}: setxattr security.capability on an own file is EPERM",
          user(os.setxattr, f("mine"), "security.capability", CAP2), [f("mine")],
          expect="EPERM")
    check(f"{s}: setxattr user.* on an own file works",
          user(setx, f("mine"), "user.new", b"val"), [f("mine")], expect=("ok", b"val"))
    check(f"{s}: removexattr user.* on an own file works",
          user(os.removexattr, f("mine"), "user.k"), [f("mine")], expect=OK0)
    check(f"{s}: setxattr user.* on root's 0644 file is EACCES",
          user(os.setxattr, f("readonly"), "user.new", b"v"), [f("readonly")],
          expect="EACCES")
    check(f"{s}: removexattr user.* on root's 0644 file is EACCES",
          user(os.removexattr, f("readonly"), "user.k"), [f("readonly")], expect="EACCES")
    # the sticky bit
    check(f"{s}: sticky dir: unlink of root's file is EPERM",
          user(os.unlink, f("sticky") + "/root-f"), [f("sticky") + "/root-f"],
          expect="EPERM")
    check(f"{s}: sticky dir: unlink of another user's file is EPERM",
          user(os.unlink, f("sticky") + "/other-f"), [f("sticky") + "/other-f"],
          expect="EPERM")
    check(f"{s}: sticky dir: rename of another user's file is EPERM",
          two(os.rename, f("sticky") + "/other-f", f("sticky") + "/renamed"),
          [f("sticky") + "/other-f"], expect="EPERM")
    check(f"{s}: sticky dir: rename over another user's file is EPERM",
          two(os.rename, f("sticky") + "/own-f", f("sticky") + "/other-f"),
          [f("sticky") + "/other-f", f("sticky") + "/own-f"], expect="EPERM")
    check(f"{s}: sticky dir: writing another user's 0666 file works",
          user(write, f("sticky") + "/other-f"), [f("sticky") + "/other-f"],
          expect=("ok", 1))
    check(f"{s}: sticky dir: unlink of an own file works",
          user(os.unlink, f("sticky") + "/own-f"), [f("sticky") + "/own-f"], expect=OK0)
    check(f"{s}: sticky dir: create works",
          user(create, f("sticky") + "/new"), [f("sticky") + "/new"], expect=("ok", "0o644"))
    check(f"{s}: sticky dir owned by the user: unlink of another's file works",
          user(os.unlink, f("sticky-own") + "/other-f"), [f("sticky-own") + "/other-f"],
          expect=OK0)
    check(f"{s}: setgid dir: a new file takes the dir's group",
          user(created_ids, f("sgid-dir") + "/nf"), expect=("ok", (UID, OTHER, "0o644")))
    check(f"{s}: setgid dir: a new dir takes the group and the setgid bit",
          user(created_ids, f("sgid-dir") + "/nd", True),
          expect=("ok", (UID, OTHER, "0o2755")))
    # setuid/setgid cleared on change, as on a local filesystem
    check(f"{s}: 06777 root file written by the user: setuid and setgid cleared",
          user(write, f("suid-rw")), [f("suid-rw")], expect=("ok", 1))
    check(f"{s}: 06777 root file truncated by the user: setuid and setgid cleared",
          user(os.truncate, f("suid-rw2"), 2), [f("suid-rw2")], expect=OK0)
    check(f"{s}: 06777 root file written by root: bits kept",
          root(append, f("suid-rw3")), [f("suid-rw3")], expect=("ok", 1))
    check(f"{s}: 02666 root file (setgid, no group x) written by a non-member: setgid cleared",
          user(write, f("sgid-nox")), [f("sgid-nox")], expect=("ok", 1))
    check(f"{s}: 02666 root file truncated by a non-member: setgid cleared",
          user(os.truncate, f("sgid-nox-tr"), 1), [f("sgid-nox-tr")], expect=OK0)
    check(f"{s}: 02666 file of the user's group truncated by a member: setgid kept",
          user(os.truncate, f("sgid-nox-grp-tr"), 1), [f("sgid-nox-grp-tr")], expect=OK0)
    check(f"{s}: 02666 file of the user's group written by the user (a member): setgid kept",
          user(write, f("sgid-nox-grp")), [f("sgid-nox-grp")], expect=("ok", 1))
    check(f"{s}: 06775 own file written by the owner: cleared",
          user(append, f("suid-own")), [f("suid-own")], expect=("ok", 1))
    check(f"{s}: 06775 own file truncated by the owner: cleared",
          user(os.truncate, f("suid-own2"), 0), [f("suid-own2")], expect=OK0)
    check(f"{s}: 04755 own file chowned by the owner to itself: setuid cleared",
          user(os.chown, f("suid-own3"), UID, GID), [f("suid-own3")], expect=OK0)
    # security.capability: kept by copy-up, dropped by a change of the data
    # or the owner.  The plain dir has no upper; its line compares the rest.
    check(f"{s}: security.capability (v2) survives chmod (copy-up) into the upper",
          root(os.chmod, f("cap"), 0o750), [f("cap")], upper_of=f("cap"), expect=OK0,
          expect_upper=("ok", CAP2))
    check(f"{s}: security.capability (v3, rootid 0) survives chmod (copy-up)",
          root(os.chmod, f("cap3"), 0o750), [f("cap3")], upper_of=f("cap3"), expect=OK0,
          expect_upper=("ok", CAP3_STORED))
    check(f"{s}: security.capability dropped by root's write, also in the upper",
          root(append, f("cap")), [f("cap")], upper_of=f("cap"), expect=("ok", 1),
          expect_upper="ENODATA")
    check(f"{s}: security.capability dropped by root's first write (copy-up on open)",
          root(append, f("cap-w")), [f("cap-w")], upper_of=f("cap-w"), expect=("ok", 1),
          expect_upper="ENODATA")
    check(f"{s}: security.capability dropped by root's truncate",
          root(os.truncate, f("cap-t"), 1), [f("cap-t")], upper_of=f("cap-t"), expect=OK0,
          expect_upper="ENODATA")
    check(f"{s}: security.capability dropped by root's chown",
          root(os.chown, f("cap-c"), 0, 0), [f("cap-c")], upper_of=f("cap-c"), expect=OK0,
          expect_upper="ENODATA")
    check(f"{s}: security.capability dropped by the user's write",
          user(write, f("cap-u")), [f("cap-u")], upper_of=f("cap-u"), expect=("ok", 1),
          expect_upper="ENODATA")


def lower_snapshot():
    out = []
    for d, dirs, files in os.walk(L):
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            out.append((p, state_of(p), read(p) if os.path.isfile(p) else None))
    return out


def main():
    if "\toverlay\n" not in open("/proc/filesystems").read():
        skip_all("no overlay filesystem in this kernel")
    build_lower()
    before = lower_snapshot()
    mounted = []
    try:
        for tg in ALL:
            tg.mount()
            mounted.append(tg)
        for tg in (S, SN, K):
            prepare(tg.M)
        prepare(PLAIN, plain=True)
        # the .cu objects really are in the upper, the others not yet
        for tg in (S, SN, K):
            t.ok(os.path.exists(tg.upper("secret.cu")) and os.path.exists(tg.upper("cap.up"))
                 and not os.path.exists(tg.upper("secret.lo")),
                 f"{tg.name}: the .cu and .up objects are in the upper, the .lo not")
        for s in STATES:
            checks_for(s)
    finally:
        for tg in mounted:
            tg.umount()
    t.ok(not any(is_mounted(tg.M) for tg in (S, SN, K)), "the mounts are gone")
    t.ok(lower_snapshot() == before, "the lower layer is unchanged")


try:
    main()
finally:
    for tg in (S, SN, K):
        if is_mounted(tg.M):
            unmount(tg.M)
    shutil.rmtree(top, ignore_errors=True)
t.done()
