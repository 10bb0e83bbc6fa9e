#!/usr/bin/env python3
"""Fault injection: every fallback and error path of the writable union,
each on a real mount, checking the merged view and the upper layer's
on-disk format, and comparing with the kernel overlayfs where it can read
the result.

One scenario of changes (unlink of lower files, of copied-up files and of
a symlink; rm -rf of merged directories; a directory re-created where one
was deleted; a file re-created over a whiteout; renames of a lower file
and of an upper-only directory; appends, a fifo, an EXDEV rename) runs
once on the kernel overlayfs (the reference: outcomes, the merged tree,
which names are whiteouts and which directories opaque in its upper) and
then on stratafs under each fault:

  default          no fault: chardev whiteouts, trusted.overlay.* xattrs
  mknod-eperm      mknod of character devices fails with EPERM (a daemon
                   without CAP_MKNOD): xattr whiteouts, their directory
                   marked overlay.opaque=x, no device in the upper
  no-xattr         the setxattr family fails with EOPNOTSUPP: chardev
                   whiteouts, .wh..wh..opq opaque markers, no overlay xattr
  no-xattr-mknod   both: .wh.NAME whiteouts and .wh..wh..opq, no device,
                   no xattr (the AUFS format, which fuse-overlayfs reads)
  ramfs            a real upper filesystem without xattrs (ramfs), also
                   without RENAME_WHITEOUT
  openat2-enosys   openat2 fails with ENOSYS: nothing changes
  xattrat-enosys   the *xattrat calls (Linux 6.13) fail with ENOSYS, as on
                   an older kernel: xattrs go through /proc/self/fd
  xattrat-eperm    they fail with EPERM, as under a seccomp filter that
                   does not know them: the same
  no-rename-whiteout, no-exchange, no-exchange-xattr-whiteouts
                   renameat2 refuses RENAME_WHITEOUT or RENAME_EXCHANGE
                   (EINVAL, as a filesystem without them): the two-step
                   fallbacks
For each: the scenario's outcomes (errnos) equal the kernel's; the merged
tree equals the kernel's (type, mode, owner, nlink, size, content, link
target, xattrs; not times); the upper holds whiteouts at exactly the
kernel's whiteout paths and opaque directories at exactly the kernel's, in
the format the fault calls for, and nothing else of the overlay
machinery; work/ is empty; the warning line is printed where the format
changes; a stratafs remount without the fault shows the same tree (all
fields, times too); and where the kernel reads the format, a read-only
kernel overlayfs with the upper as its top lower layer shows it too
(elsewhere fuse-overlayfs, if installed, does: all but directory nlink).

Then the error paths:
  ENOSPC during copy-up (size-limited tmpfs upper): the error reaches the
  caller, nothing partial in upper or work, the file still reads its old
  content, the lower is intact, and once space is freed the same copy-up
  succeeds; ENOSPC for lack of inodes while the parents of a deep file are
  copied up: nothing partial either.
  EIO from a lower (strata-eiofs, tests/tools): reads through the union
  give EIO, never other data or a crash; copy-up of a failing file gives
  EIO and leaves nothing in upper or work; a failing directory listing
  gives EIO; the other files read and copy up; the daemon unmounts and
  exits 0.

  --only REGEX   run only the cases whose name matches
  --keep         keep the temporary directory
  --meson        exit 0 on failure and skip (the TAP lines carry the verdict)

Needs root, /dev/fuse, an x86_64 strata-fault (STRATA_FAULT) and
strata-eiofs (STRATA_EIOFS), built in build/tests/tools by default.
"""
import argparse
import errno
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

from tap import (Tap, leave_top, is_mounted, require_root_fuse, skip_all, stratafs_bin,
                 unmount, wait_gone, wait_mounted)
import treedump

HERE = os.path.dirname(os.path.abspath(__file__))


def tool(env, name):
    p = os.environ.get(env) or os.path.join(HERE, "..", "..", "build", "tests",
                                            "tools", name)
    return os.path.abspath(p)


FAULT = tool("STRATA_FAULT", "strata-fault")
EIOFS = tool("STRATA_EIOFS", "strata-eiofs")

CHR = "0020000"
# character-device mknod only: mknodat(dirfd, path, mode, dev) and
# mknod(path, mode, dev); fifos and regular files still work
NO_MKNOD = [f"mknodat[2&0170000=={CHR}],mknod[1&0170000=={CHR}]=EPERM"]
NO_XATTR = ["setxattr,lsetxattr,fsetxattr,setxattrat=EOPNOTSUPP"]
XATTRAT_OFF = ["setxattrat,getxattrat,listxattrat,removexattrat=ENOSYS"]

# name -> (strata-fault rules, upper on ramfs, whiteout format, opaque
#          format, warning expected on stderr, kernel reads the upper)
MODES = {
    "default": ([], False, "chr", "xattr", None, True),
    "mknod-eperm": (NO_MKNOD, False, "xattr", "xattr",
                    "cannot create 0/0 device whiteouts", True),
    "no-xattr": (NO_XATTR, False, "chr", "aufs", "no trusted.* or user.* xattrs",
                 False),
    "no-xattr-mknod": (NO_XATTR + NO_MKNOD, False, "aufs", "aufs",
                       "no trusted.* or user.* xattrs", False),
    "ramfs": ([], True, "chr", "aufs", "no trusted.* or user.* xattrs", False),
    "openat2-enosys": (["openat2=ENOSYS"], False, "chr", "xattr", None, True),
    "xattrat-enosys": (XATTRAT_OFF, False, "chr", "xattr", None, True),
    "xattrat-eperm": (["setxattrat,getxattrat,listxattrat,removexattrat=EPERM"],
                      False, "chr", "xattr", None, True),
    # renameat2(olddirfd, old, newdirfd, new, flags): RENAME_EXCHANGE is 2,
    # RENAME_WHITEOUT 4, as an upper filesystem without them answers
    "no-rename-whiteout": (["renameat2[4&4==4]=EINVAL"], False, "chr", "xattr",
                           None, True),
    "no-exchange": (["renameat2[4&2==2]=EINVAL"], False, "chr", "xattr", None,
                    True),
    "no-exchange-xattr-whiteouts": (["renameat2[4&2==2]=EINVAL"] + NO_MKNOD, False,
                                    "xattr", "xattr",
                                    "cannot create 0/0 device whiteouts", True),
}

WH_XATTRS = ("trusted.overlay.whiteout", "user.overlay.whiteout")
OPQ_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


def errno_of(fn, *a):
    try:
        fn(*a)
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    return "ok"


def write(path, data, mode="w"):
    with open(path, mode) as f:
        f.write(data)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# --- the layers and the scenario ------------------------------------------------
def build_lowers(top):
    L0, L1 = os.path.join(top, "L0"), os.path.join(top, "L1")
    files = {
        "L1/f_del": "del\n", "L1/f_cu_del": "cu_del\n", "L1/f_ren": "ren\n",
        "L1/f_app": "app\n", "L1/keep": "keep\n", "L1/x_over": "old x\n",
        "L1/merged/m1": "m1\n", "L0/merged/m2": "m2\n", "L0/merged/m0": "m0\n",
        "L1/gone/g1": "g1\n", "L1/gone/sub/g2": "g2\n",
        "L1/lowdir/ld": "ld\n", "L0/top_ren": "top\n",
    }
    for i in range(24):
        files[f"L1/tree/f{i:02d}"] = f"tree {i}\n" * (i + 1)
    files["L0/tree/top"] = "tree top\n"
    files["L1/tree/sub/a"] = "a\n"
    files["L0/tree/sub/b"] = "b\n"
    for rel, data in files.items():
        p = os.path.join(top, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        write(p, data)
    os.symlink("keep", os.path.join(L1, "lnk"))
    os.chmod(os.path.join(L1, "gone"), 0o750)
    return L0, L1


def scenario(M):
    """The changes; returns [(step, outcome)] (outcome 'ok' or errno name)."""
    j = lambda *p: os.path.join(M, *p)  # noqa: E731
    out = []

    def step(name, fn, *a):
        out.append((name, errno_of(fn, *a)))

    step("unlink lower file", os.unlink, j("f_del"))
    step("append, then unlink", lambda: (write(j("f_cu_del"), "more\n", "a"),
                                         os.unlink(j("f_cu_del"))))
    step("rename lower file", os.rename, j("f_ren"), j("f_ren2"))
    step("rename top-lower file into a merged dir", os.rename, j("top_ren"),
         j("merged", "top_ren"))
    step("append to lower file", write, j("f_app"), "appended\n", "a")
    step("rm -rf merged dir", shutil.rmtree, j("tree"))
    step("rm -rf lower dir", shutil.rmtree, j("gone"))
    step("mkdir where a dir was deleted", os.mkdir, j("gone"), 0o700)
    step("file in the new opaque dir", write, j("gone", "new"), "new\n")
    step("unlink in merged dir (bottom)", os.unlink, j("merged", "m1"))
    step("unlink in merged dir (top)", os.unlink, j("merged", "m2"))
    step("create in merged dir", write, j("merged", "m3"), "m3\n")
    step("unlink lower symlink", os.unlink, j("lnk"))
    step("unlink, then re-create a file", lambda: (
        os.unlink(j("x_over")), write(j("x_over"), "new x\n")))
    step("mkdir new dir", os.mkdir, j("newdir"))
    step("file in new dir", write, j("newdir", "a"), "a\n")
    step("rename upper-only dir", os.rename, j("newdir"), j("newdir2"))
    step("rename dir with lower content", os.rename, j("lowdir"), j("lowdir2"))
    step("mkfifo", os.mkfifo, j("fifo"), 0o640)
    step("mkdir then rmdir", lambda: (os.mkdir(j("dd")), os.rmdir(j("dd"))))
    step("rmdir non-empty merged dir", os.rmdir, j("merged"))
    step("rename copied-up file over lower file", os.rename, j("f_app"),
         j("keep"))
    step("chmod lower dir", os.chmod, j("lowdir"), 0o711)
    step("symlink", os.symlink, "merged/m3", j("sym"))
    step("hardlink of a lower file", os.link, j("merged", "m0"), j("m0link"))
    return out


# --- reading an upper layer raw -------------------------------------------------
def xattrs_of(p):
    try:
        names = os.listxattr(p, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for n in names:
        try:
            out[n] = os.getxattr(p, n, follow_symlinks=False)
        except OSError:
            pass
    return out


def upper_facts(U):
    """What the overlay machinery left in U: whiteouts by format, opaque
    dirs by format, other overlay xattrs, stray markers."""
    f = {"wh_chr": set(), "wh_xattr": set(), "wh_aufs": set(),
         "opq_xattr": set(), "opq_aufs": set(), "opq_x": set(),
         "overlay_xattrs": set(), "devices": set(), "bad": []}
    for dirpath, dirs, files in os.walk(U):
        rdir = os.path.relpath(dirpath, U)
        rdir = "" if rdir == "." else rdir
        xs = xattrs_of(dirpath)
        for n in OPQ_XATTRS:
            if xs.get(n) == b"y" and rdir:
                f["opq_xattr"].add(rdir)
            elif xs.get(n) == b"x":
                f["opq_x"].add(rdir)
        f["overlay_xattrs"].update(n for n in xs if ".overlay." in n)
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            rel = os.path.join(rdir, n)
            st = os.lstat(p)
            if n in (".wh..wh..opq", ".wh..opq"):
                f["opq_aufs"].add(rdir)
                continue
            if n.startswith(".wh."):
                f["wh_aufs"].add(os.path.join(rdir, n[4:]))
                if not stat.S_ISREG(st.st_mode) or st.st_size:
                    f["bad"].append(f"{rel}: a .wh. marker that is not an "
                                    "empty file")
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                f["devices"].add(rel)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    f["wh_chr"].add(rel)
            if n in dirs:
                continue
            fx = xattrs_of(p)
            f["overlay_xattrs"].update(x for x in fx if ".overlay." in x)
            if any(x in fx for x in WH_XATTRS):
                if stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    f["wh_xattr"].add(rel)
                else:
                    f["bad"].append(f"{rel}: whiteout xattr on a non-empty "
                                    "or non-regular file")
    return f


def work_leftovers(W):
    out = []
    for dirpath, dirs, files in os.walk(W):
        for n in dirs + files:
            rel = os.path.relpath(os.path.join(dirpath, n), W)
            if n in files or os.sep in rel:
                out.append(rel)
    return out


# --- comparing trees ------------------------------------------------------------
def project(tree, fields):
    return {p: {k: v for k, v in r.items() if k in fields}
            for p, r in tree.items()}


VIEW_FIELDS = ("type", "mode", "uid", "gid", "nlink", "size", "sha256",
               "target", "rdev", "xattrs", "links")
ALL_FIELDS = VIEW_FIELDS + ("mtime_ns",)


def tree_diff(a, b, fields, names):
    pa, pb = project(a, fields), project(b, fields)
    out = []
    for p in sorted(set(pa) | set(pb)):
        if p not in pa:
            out.append(f"{p}: only in {names[1]}: {pb[p]}")
        elif p not in pb:
            out.append(f"{p}: only in {names[0]}: {pa[p]}")
        elif pa[p] != pb[p]:
            d = {k: (pa[p].get(k), pb[p].get(k)) for k in fields
                 if pa[p].get(k) != pb[p].get(k)}
            out.append(f"{p}: {names[0]} vs {names[1]}: {d}")
    for t, n in ((a, names[0]), (b, names[1])):
        out += [f"{n}: inconsistent dump: {e}" for e in t.errors]
    return out


# --- mounting ---------------------------------------------------------------------
class Ctx:
    def __init__(self, top, args):
        self.top = top
        self.args = args
        self.mounts = []
        self.n = 0

    def dir(self, name):
        self.n += 1
        p = os.path.join(self.top, f"{name}-{self.n}")
        os.makedirs(p)
        return p

    def stratafs(self, opts, mnt, rules=(), check=True):
        argv = [stratafs_bin(), "-o", opts, mnt]
        if rules:
            argv = [FAULT] + list(rules) + ["--"] + argv
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if check and (r.returncode != 0 or not is_mounted(mnt)):
            raise RuntimeError(f"stratafs did not mount (rc {r.returncode}): "
                               f"{r.stderr.strip()}")
        if is_mounted(mnt):
            self.mounts.append(mnt)
        return r

    def kernel(self, opts, mnt, ro=False):
        o = opts + (",ro" if ro else "")
        r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", o, mnt],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"mount -t overlay failed: {r.stderr.strip()}")
        self.mounts.append(mnt)

    def tmpfs(self, mnt, opts, kind="tmpfs"):
        subprocess.run(["mount", "-t", kind, "-o", opts, kind, mnt], check=True)
        self.mounts.append(mnt)

    def umount(self, mnt, stratafs=True):
        """None, or why the unmount was not clean."""
        unmount(mnt)
        if mnt in self.mounts:
            self.mounts.remove(mnt)
        if is_mounted(mnt):
            subprocess.run(["umount", "-l", mnt], capture_output=True)
            return f"{mnt} did not unmount"
        if stratafs and not wait_gone(mnt, 60):
            return f"stratafs of {mnt} did not exit after the unmount"
        return None

    def cleanup(self):
        for m in reversed(self.mounts):
            unmount(m)
            if is_mounted(m):
                subprocess.run(["umount", "-l", m], capture_output=True)
        self.mounts = []


# --- the reference ----------------------------------------------------------------
def reference(ctx, L0, L1):
    """The scenario on the kernel overlayfs: outcomes, tree, upper facts."""
    d = ctx.dir("kernel")
    U, W, M = (os.path.join(d, x) for x in "UWM")
    for x in (U, W, M):
        os.makedirs(x)
    ctx.kernel(f"lowerdir={L0}:{L1},upperdir={U},workdir={W}", M)
    try:
        outcomes = scenario(M)
        tree = treedump.dump(M)
    finally:
        ctx.umount(M, stratafs=False)
    return outcomes, tree, upper_facts(U)


# --- one fault mode ----------------------------------------------------------------
def run_mode(t, ctx, name, ref, L0, L1):
    rules, on_ramfs, wh_fmt, opq_fmt, warning, kernel_reads = MODES[name]
    ref_out, ref_tree, ref_facts = ref
    d = ctx.dir(name)
    if on_ramfs:
        ctx.tmpfs(d, "mode=0755", kind="ramfs")
    U, W, M = (os.path.join(d, x) for x in "UWM")
    for x in (U, W, M):
        os.makedirs(x)
    opts = f"lowerdir={L0}:{L1},upperdir={U},workdir={W}"
    tag = f"{name}:"

    r = ctx.stratafs(opts, M, rules)
    warn_ok = (warning is None and "warning" not in r.stderr.lower()
               and "cannot" not in r.stderr) or \
        (warning is not None and warning in r.stderr)
    t.ok(warn_ok, f"{tag} mount {'warns: ' + warning if warning else 'with no warning'}",
         f"stderr: {r.stderr.strip()!r}")
    try:
        outcomes = scenario(M)
        tree = treedump.dump(M)
    finally:
        problem = ctx.umount(M)
    diffs = [f"{a}: kernel {b}, stratafs {c}" for (a, b), (_, c)
             in zip(ref_out, outcomes) if b != c]
    t.ok(not diffs and not problem, f"{tag} the scenario's outcomes equal the kernel's "
         "and the daemon exits at unmount", "\n".join(diffs + [problem or ""]))
    diffs = tree_diff(ref_tree, tree, VIEW_FIELDS, ("kernel", "stratafs"))
    t.ok(not diffs, f"{tag} merged tree equals the kernel's", "\n".join(diffs[:40]))

    # the upper layer's format
    f = upper_facts(U)
    want_wh = ref_facts["wh_chr"]
    want_opq = ref_facts["opq_xattr"]
    got_wh = f["wh_" + wh_fmt]
    other_wh = set().union(*(f[k] for k in ("wh_chr", "wh_xattr", "wh_aufs")
                             if k != "wh_" + wh_fmt))
    got_opq = f["opq_" + opq_fmt]
    other_opq = f["opq_aufs" if opq_fmt == "xattr" else "opq_xattr"]
    why = []
    if got_wh != want_wh:
        why.append(f"{wh_fmt} whiteouts at {sorted(got_wh)}, the kernel's "
                   f"at {sorted(want_wh)}")
    if other_wh:
        why.append(f"whiteouts in another format: {sorted(other_wh)}")
    if got_opq != want_opq:
        why.append(f"{opq_fmt} opaque dirs {sorted(got_opq)}, the kernel's "
                   f"{sorted(want_opq)}")
    if other_opq:
        why.append(f"opaque dirs in another format: {sorted(other_opq)}")
    if wh_fmt != "chr" and f["devices"]:
        why.append(f"device nodes in the upper: {sorted(f['devices'])}")
    if wh_fmt == "xattr":
        parents = {os.path.dirname(p) for p in got_wh}
        unmarked = sorted(p for p in parents if p not in f["opq_x"]
                          and p not in f["opq_xattr"])
        if unmarked:
            why.append(f"dirs holding xattr whiteouts without opaque=x: {unmarked}")
    if opq_fmt == "aufs" and f["overlay_xattrs"]:
        why.append(f"overlay xattrs on an upper without xattrs: "
                   f"{sorted(f['overlay_xattrs'])}")
    why += f["bad"]
    left = work_leftovers(W)
    if left:
        why.append(f"left in the workdir: {left}")
    t.ok(not why, f"{tag} upper: whiteouts ({wh_fmt}) and opaque dirs ({opq_fmt}) "
         "exactly where the kernel put its own, nothing else; work/ empty",
         "\n".join(why))

    # readers of that upper: stratafs again (no fault), the kernel
    ctx.stratafs(opts, M)
    try:
        again = treedump.dump(M)
    finally:
        problem = ctx.umount(M)
    diffs = tree_diff(tree, again, ALL_FIELDS, ("before", "after remount"))
    t.ok(not diffs and not problem, f"{tag} a remount without the fault shows the same "
         "tree, times included", "\n".join(diffs[:40] + [problem or ""]))
    if kernel_reads:
        ctx.kernel(f"lowerdir={U}:{L0}:{L1}", M, ro=True)
        try:
            ktree = treedump.dump(M)
        finally:
            ctx.umount(M, stratafs=False)
        diffs = tree_diff(ktree, tree, ALL_FIELDS, ("kernel on the upper", "stratafs"))
        t.ok(not diffs, f"{tag} the kernel overlayfs reads the upper as stratafs "
             "showed it (times included)", "\n".join(diffs[:40]))
    elif shutil.which("fuse-overlayfs"):
        # the AUFS markers are the format fuse-overlayfs reads
        r = subprocess.run(["fuse-overlayfs", "-o", f"lowerdir={U}:{L0}:{L1}", M],
                           capture_output=True, text=True, timeout=60)
        if r.returncode == 0 and is_mounted(M):
            ctx.mounts.append(M)
            try:
                ftree = treedump.dump(M)
            finally:
                ctx.umount(M, stratafs=False)
            # fuse-overlayfs counts a merged directory's nlink its own way
            fields = tuple(f_ for f_ in VIEW_FIELDS if f_ != "nlink")
            diffs = tree_diff(ftree, tree, fields, ("fuse-overlayfs on the upper",
                                                    "stratafs"))
            t.ok(not diffs, f"{tag} fuse-overlayfs reads the upper as stratafs showed it",
                 "\n".join(diffs[:40]))
        else:
            t.ok(False, f"{tag} fuse-overlayfs mounts the upper", r.stderr)
    if on_ramfs:
        ctx.umount(d, stratafs=False)
    return True


# --- ENOSPC -------------------------------------------------------------------------
def case_enospc(t, ctx, L0, L1):
    d = ctx.dir("enospc")
    L = os.path.join(d, "L")
    big = os.urandom(3 << 20)
    os.makedirs(os.path.join(L, "a", "b", "c", "d"))
    write(os.path.join(L, "big"), big, "wb")
    write(os.path.join(L, "small"), "small\n")
    write(os.path.join(L, "a", "b", "c", "d", "deep"), "deep\n")
    lower_sha = sha(os.path.join(L, "big"))
    S = os.path.join(d, "S")
    os.makedirs(S)
    ctx.tmpfs(S, "size=4m,nr_inodes=64,mode=0755")
    U, W, M = os.path.join(S, "U"), os.path.join(S, "W"), os.path.join(d, "M")
    for x in (U, W, M):
        os.makedirs(x)
    # 2 MiB of filler beside the layers: the 3 MiB copy cannot fit
    write(os.path.join(S, "filler"), b"\0" * (2 << 20), "wb")
    ctx.stratafs(f"lowerdir={L},upperdir={U},workdir={W}", M)
    try:
        try:
            with open(os.path.join(M, "big"), "r+b") as fh:
                fh.write(b"NEW")
            e = "ok"
        except OSError as ex:
            e = errno.errorcode.get(ex.errno)
        t.ok(e == "ENOSPC", "ENOSPC: a copy-up that does not fit fails with ENOSPC",
             f"got {e}")
        listing = sorted(os.listdir(M))
        t.ok(sha(os.path.join(M, "big")) == lower_sha and listing == ["a", "big", "small"],
             "ENOSPC: the file still reads its old content, no other name shows",
             f"listing {listing}")
        t.ok(not os.path.lexists(os.path.join(U, "big")) and not work_leftovers(W)
             and os.listdir(U) == [],
             "ENOSPC: nothing in the upper, work/ empty",
             f"upper {os.listdir(U)}, work {work_leftovers(W)}")
        os.unlink(os.path.join(S, "filler"))
        with open(os.path.join(M, "big"), "r+b") as fh:
            fh.write(b"NEW")
        t.ok(sha(os.path.join(M, "big")) == hashlib.sha256(b"NEW" + big[3:]).hexdigest()
             and sha(os.path.join(U, "big")) == sha(os.path.join(M, "big")),
             "ENOSPC: once space is freed the same copy-up succeeds")
        # out of inodes while the parents of a deep file are copied up
        n = 0
        fill = os.path.join(S, "inodes")
        os.makedirs(fill)
        while True:
            try:
                open(os.path.join(fill, str(n)), "w").close()
                n += 1
            except OSError as ex:
                if ex.errno != errno.ENOSPC:
                    raise
                break
        os.unlink(os.path.join(fill, "0"))
        os.unlink(os.path.join(fill, "1"))  # room for two of the 5 objects
        e = errno_of(write, os.path.join(M, "a", "b", "c", "d", "deep"), "x", "a")
        left = work_leftovers(W)
        up = sorted(os.path.relpath(os.path.join(dp, n_), U)
                    for dp, ds, fs in os.walk(U) for n_ in ds + fs)
        okdirs = all(up_ in ("a", "a/b", "a/b/c", "a/b/c/d", "big") for up_ in up)
        t.ok(e == "ENOSPC" and not left and okdirs,
             "ENOSPC (no inodes) copying up the parents of a deep file: the error "
             "reaches the caller, only complete parent dirs in the upper, work/ empty",
             f"errno {e}, upper {up}, work {left}")
        t.ok(open(os.path.join(M, "a", "b", "c", "d", "deep")).read() == "deep\n"
             and os.path.isdir(os.path.join(M, "a", "b", "c")),
             "ENOSPC (no inodes): the deep file and its parents read as before")
        shutil.rmtree(fill)
        write(os.path.join(M, "a", "b", "c", "d", "deep"), "x", "a")
        t.ok(open(os.path.join(M, "a", "b", "c", "d", "deep")).read() == "deep\nx",
             "ENOSPC (no inodes): once inodes are freed the copy-up succeeds")
    finally:
        problem = ctx.umount(M)
    t.ok(problem is None and sha(os.path.join(L, "big")) == lower_sha
         and open(os.path.join(L, "a", "b", "c", "d", "deep")).read() == "deep\n",
         "ENOSPC: the lower layer is intact and the daemon exits at unmount",
         problem)
    ctx.umount(S, stratafs=False)
    return True


# --- EIO ------------------------------------------------------------------------------
def case_eio(t, ctx):
    d = ctx.dir("eio")
    E, U, W, M = (os.path.join(d, x) for x in ("E", "U", "W", "M"))
    for x in (E, U, W, M):
        os.makedirs(x)
    r = subprocess.run([EIOFS, E], capture_output=True, text=True, timeout=30)
    if r.returncode != 0 or not wait_mounted(E):
        t.ok(False, "EIO: strata-eiofs mounts", r.stderr)
        return
    ctx.mounts.append(E)
    log = os.path.join(d, "daemon.log")
    with open(log, "wb") as lf:
        daemon = subprocess.Popen([stratafs_bin(), "-f", "-o",
                                   f"lowerdir={E},upperdir={U},workdir={W}", M],
                                  stdout=subprocess.DEVNULL, stderr=lf)
    if not wait_mounted(M, proc=daemon):
        daemon.kill()
        daemon.wait()
        t.ok(False, "EIO: stratafs mounts over strata-eiofs", open(log).read())
        return
    ctx.mounts.append(M)
    good = b"good data\n" * 1000
    try:
        def read(p, n=-1):
            with open(os.path.join(M, p), "rb", buffering=0) as fh:
                return fh.read(n) if n >= 0 else fh.readall()

        t.ok(errno_of(read, "bad") == "EIO", "EIO: reading a failing lower file "
             "through the union gives EIO")
        t.ok(read("half", 4096) == b"h" * 4096,
             "EIO: a file failing past 4 KiB: its first 4 KiB read")
        try:
            got = f"{len(read('half'))} bytes and no error"
        except OSError as ex:
            got = errno.errorcode.get(ex.errno)
        size = os.stat(os.path.join(M, "half")).st_size
        t.ok(got == "EIO" and size == 65536, "EIO: reading all of a file failing past "
             "4 KiB gives EIO, not a short file, and its size stays 65536",
             f"got {got}, size {size}")
        with open(os.path.join(M, "half"), "rb", buffering=0) as fh:
            first = fh.read(65536)
            second = errno_of(fh.read, 65536)
        t.ok(first == b"h" * 4096 and second == "EIO", "EIO: read(2) of the whole file "
             "returns the 4 KiB before the bad page, the next read(2) EIO (as a local "
             "disk's bad block)", f"first read {len(first)} bytes, then {second!r}")
        t.ok(read("good") == good and read("dir/inner") == b"inner\n",
             "EIO: the other files read their content")
        for f in ("bad", "half"):
            e = errno_of(lambda: open(os.path.join(M, f), "r+b").close())
            t.ok(e == "EIO" and not os.path.lexists(os.path.join(U, f))
                 and not work_leftovers(W),
                 f"EIO: copy-up of '{f}' fails with EIO, nothing in upper or work",
                 f"errno {e}, upper {os.listdir(U)}, work {work_leftovers(W)}")
        t.ok(errno_of(read, "bad") == "EIO" and os.stat(os.path.join(M, "bad")).st_size
             == 65536, "EIO: after the failed copy-up the file is still the lower one")
        e = errno_of(os.listdir, os.path.join(M, "baddir"))
        t.ok(e == "EIO", "EIO: listing a directory whose lower listing fails gives EIO",
             f"got {e}")
        t.ok(read("baddir/x") == b"x\n", "EIO: a file in that directory still reads")
        write(os.path.join(M, "good"), b"more\n", "ab")
        write(os.path.join(M, "dir", "new"), "new\n")
        t.ok(read("good") == good + b"more\n" and read("dir/new") == b"new\n"
             and open(os.path.join(U, "good"), "rb").read() == good + b"more\n",
             "EIO: copy-up and create beside the failing files work")
        os.unlink(os.path.join(M, "bad"))
        t.ok(not os.path.lexists(os.path.join(M, "bad")),
             "EIO: a failing file can be deleted (no data copy needed)")
        # Reads stuck on a slow lower: the watcher adds reader threads; a
        # second after requests stop, the threads it added are gone again.
        def nthreads():
            return len(os.listdir(f"/proc/{daemon.pid}/task"))

        time.sleep(1.5)  # the requests above have stopped
        before = nthreads()
        got = {}

        def slow(i):
            got[i] = read(f"slow{i}")

        readers = [threading.Thread(target=slow, args=(i,)) for i in range(4)]
        for r in readers:
            r.start()
        peak = before
        while any(r.is_alive() for r in readers):
            peak = max(peak, nthreads())
            time.sleep(0.02)
        for r in readers:
            r.join()
        deadline = time.monotonic() + 10
        after = nthreads()
        while after > before and time.monotonic() < deadline:
            time.sleep(0.1)
            after = nthreads()
        t.ok(all(got.get(i) == b"s" * 4096 for i in range(4)) and peak >= before + 2
             and after == before,
             "threads: reads blocked on a slow lower add reader threads, which end "
             "once requests stop", f"threads {before} before, {peak} at most during "
             f"the reads, {after} after; read {[len(got.get(i, b'')) for i in range(4)]}")
        t.ok(daemon.poll() is None, "EIO: the daemon is alive after all of it")
    finally:
        unmount(M)
        try:
            rc = daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            rc = daemon.wait()
        if M in ctx.mounts:
            ctx.mounts.remove(M)
        ctx.umount(E, stratafs=False)
    t.ok(rc == 0, "EIO: the daemon exits 0 at unmount", f"rc {rc}: {open(log).read()}")
    return True


# --- main -------------------------------------------------------------------------------
def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--meson", action="store_true")
    args = ap.parse_args(argv)
    require_root_fuse()
    for p in (stratafs_bin(), FAULT, EIOFS):
        if not os.access(p, os.X_OK):
            skip_all(f"not built: {p} (set STRATAFS, STRATA_FAULT, STRATA_EIOFS)")
    top = tempfile.mkdtemp(prefix="stratafs-faults-")
    os.chmod(top, 0o755)
    ctx = Ctx(top, args)
    t = Tap()
    only = re.compile(args.only)
    try:
        L0, L1 = build_lowers(ctx.dir("lowers"))
        ref = None
        for name in MODES:
            if not only.search(name):
                continue
            if ref is None:
                try:
                    ref = reference(ctx, L0, L1)
                except RuntimeError as e:
                    skip_all(f"the kernel overlayfs does not mount here: {e}")
            t.run(f"{name}: ran", run_mode, t, ctx, name, ref, L0, L1)
        if only.search("enospc"):
            t.run("enospc: ran", case_enospc, t, ctx, L0, L1)
        if only.search("eio"):
            t.run("eio: ran", case_eio, t, ctx)
    finally:
        ctx.cleanup()
        leave_top(top, args.keep)
    print(f"1..{t.n}", flush=True)
    return 1 if t.failed and not args.meson else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
