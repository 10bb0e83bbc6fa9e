#!/usr/bin/env python3
"""The daemon killed (SIGKILL) in the middle of an operation, at seeded
kill points that are exact: strace stops the daemon on entry to its N-th
call of one system call and kills it there, so the call never happens.

For each operation:
  1. a baseline run, the daemon (stratafs -f -s, single-threaded) under
     strace, lists every state-changing call the daemon makes for the
     operation (between two marker lookups): the kill points;
  2. for each chosen kill point, on a fresh upper and work directory: the
     setup (with a plain mount), then the daemon under strace with a
     SIGKILL injected before that call, the operation run against it
     (it fails with ENOTCONN or similar), the dead mount dropped;
  3. stratafs remounted on the same upper and work, and checked:
     - the merged view is the old state or the new state of the operation
       (per object for rm -rf and the multi-file copy-up, which are many
       operations: each file old or new, never partial), never a mix;
     - work/ holds nothing once the remount is done;
     - the tree dump is self-consistent and no marker name shows;
     - a read-only kernel overlayfs with the upper as its top layer shows
       exactly the same tree (so the upper on disk is a valid overlay
       layer, not only something stratafs copes with);
     - the operation can then be completed through the mount.
The lower layers must be unchanged at the end.

Operations: rename of a copied-up file, rename of a lower file, rename of
an upper-only directory with content, rm -rf of a merged directory with
many entries, rm -rf of a directory then mkdir of the same name (an
opaque directory over a whiteout), and an append to every file of a lower
directory (many copy-ups, the directory's own first).

  --points N     kill points per operation (default 8; 0 = all of them)
  --seed S       seed of the choice (default 1)
  --only REGEX   operations whose name matches
  --fault RULES  run the daemon under strata-fault RULES too, separated by
                 spaces; 'mknod' stands for the mknod rule of test_faults.py (xattr
                 whiteouts, no RENAME_WHITEOUT); e.g. 'renameat2[4&2==2]=EINVAL'
                 takes RENAME_EXCHANGE away
  --keep, --meson

Needs root, /dev/fuse, strace and the kernel overlayfs.
"""
import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile

from tap import (Tap, leave_top, daemon_pids, is_mounted, require_root_fuse, skip_all,
                 stratafs_bin, unmount, wait_gone, wait_mounted)
import treedump
from test_faults import (FAULT, NO_MKNOD, XATTRAT_OFF, tree_diff, work_leftovers,
                         ALL_FIELDS)

# the calls that change something in a layer or in work/ (glibc's
# renameat2 with no flags is the renameat call)
KILL_SET = ("openat", "mkdirat", "mknodat", "renameat2", "renameat", "unlinkat",
            "linkat", "symlinkat", "fchownat", "chmod", "fchmodat", "setxattr",
            "lsetxattr", "fsetxattr", "removexattr", "lremovexattr",
            "utimensat", "ftruncate", "fallocate", "copy_file_range",
            "pwrite64", "ioctl")
MARK_BEGIN = "@@stratafs-op-begin"
MARK_END = "@@stratafs-op-end"

DEEP = ("deep", "deep/d1", "deep/d1/d2", "deep/d1/d2/d3")
N_TREE = 60
N_APPEND = 12


def write(path, data, mode="w"):
    with open(path, mode) as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def build_lowers(top):
    L0, L1 = os.path.join(top, "L0"), os.path.join(top, "L1")
    files = {"L1/a": "a content\n" * 100, "L1/b": "b content\n" * 100,
             "L1/keep": "keep\n", "L0/tree/top": "top\n",
             "L1/gone/g1": "g1\n", "L1/gone/sub/g2": "g2\n"}
    for i in range(N_TREE):
        files[f"L1/tree/f{i:03d}"] = f"tree {i}\n" * (i + 1)
    for i in range(N_TREE // 4):
        files[f"L1/tree/sub/s{i:02d}"] = f"sub {i}\n"
    for i in range(N_APPEND):
        files[f"L1/many/m{i:02d}"] = f"many {i}\n" * 1000
    files["L1/deep/d1/d2/d3/leaf"] = "leaf\n"
    for rel, data in files.items():
        p = os.path.join(top, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        write(p, data)
    for i, d in enumerate(DEEP):
        os.chmod(os.path.join(L1, d), 0o751 - i)
        os.chown(os.path.join(L1, d), 100 + i, 200 + i)
    return L0, L1, {rel.split("/", 1)[1]: data.encode() for rel, data in files.items()}


# --- the operations -------------------------------------------------------------
# Each: setup(M) with a plain mount; op, a python snippet run in a child
# against M (argv[1]); check(M, lower) -> (state, problems) after remount;
# finish(M) completes the operation; final(M) -> problems once finished.
class Op:
    name = ""
    setup_code = ""
    op_code = ""

    def check(self, M, lower):
        raise NotImplementedError

    def finish(self, M):
        pass

    def durable(self, M, state, tags):
        """Problems with operations that returned before the kill."""
        probs = []
        for t in tags:
            if t == "renamed" and state != "new":
                probs.append("the rename had returned, yet the old state shows")
            elif t.startswith("rm ") and os.path.lexists(os.path.join(M, t[3:])) and \
                    t[3:] != "gone":  # re-created by the mkdir that follows
                probs.append(f"{t[3:]} was removed, yet it is back")
            elif t == "mkdir" and not os.path.isdir(os.path.join(M, "gone")):
                probs.append("gone/ was re-created, yet it is not there")
            elif t == "new" and state != "new":
                probs.append("gone/new was written, yet it is not complete")
            elif t.startswith("many/") and \
                    not read(os.path.join(M, t)).endswith(b"+\n"):
                probs.append(f"{t} was appended to, yet the append is lost")
        return probs


def listing(M, d=""):
    p = os.path.join(M, d)
    return sorted(os.listdir(p)) if os.path.isdir(p) else None


class RenameCopiedUp(Op):
    name = "rename-copied-up"
    setup_code = "open(M + '/a', 'a').write('more\\n')"
    op_code = "os.rename(M + '/a', M + '/a2'); done('renamed')"

    def check(self, M, lower):
        want = lower["a"] + b"more\n"
        a = os.path.exists(os.path.join(M, "a"))
        a2 = os.path.exists(os.path.join(M, "a2"))
        if a and not a2 and read(os.path.join(M, "a")) == want:
            return "old", []
        if a2 and not a and read(os.path.join(M, "a2")) == want:
            return "new", []
        return "mix", [f"a {a}, a2 {a2}, listing {listing(M)}"]

    def finish(self, M):
        if os.path.exists(os.path.join(M, "a")):
            os.rename(os.path.join(M, "a"), os.path.join(M, "a2"))


class RenameLower(Op):
    name = "rename-lower"
    op_code = "os.rename(M + '/b', M + '/b2'); done('renamed')"

    def check(self, M, lower):
        b = os.path.exists(os.path.join(M, "b"))
        b2 = os.path.exists(os.path.join(M, "b2"))
        if b and not b2 and read(os.path.join(M, "b")) == lower["b"]:
            return "old", []
        if b2 and not b and read(os.path.join(M, "b2")) == lower["b"]:
            return "new", []
        return "mix", [f"b {b}, b2 {b2}"]

    def finish(self, M):
        if os.path.exists(os.path.join(M, "b")):
            os.rename(os.path.join(M, "b"), os.path.join(M, "b2"))


class RenameOver(Op):
    """Over an existing name: without RENAME_WHITEOUT no single call
    replaces it and leaves a whiteout."""
    name = "rename-copied-up-over-lower-file"
    setup_code = "open(M + '/a', 'a').write('more\\n')"
    op_code = "os.rename(M + '/a', M + '/keep'); done('renamed')"

    def check(self, M, lower):
        want = lower["a"] + b"more\n"
        a = os.path.exists(os.path.join(M, "a"))
        k = read(os.path.join(M, "keep")) if os.path.exists(
            os.path.join(M, "keep")) else None
        if a and read(os.path.join(M, "a")) == want and k is None:
            return "mix", ["the new name is gone, the old one intact"]
        if a and read(os.path.join(M, "a")) == want and k == lower["keep"]:
            return "old", []
        if not a and k == want:
            return "new", []
        return "mix", [f"a {a} ({read(os.path.join(M, 'a'))[-20:] if a else ''}), "
                       f"keep {k[-20:] if k else None}"]

    def finish(self, M):
        if os.path.exists(os.path.join(M, "a")):
            os.rename(os.path.join(M, "a"), os.path.join(M, "keep"))


class RenameDir(Op):
    name = "rename-upper-dir"
    setup_code = ("os.mkdir(M + '/ud')\n"
                  "for i in range(10): open(M + f'/ud/u{i}', 'w').write(f'u{i}\\n')")
    op_code = "os.rename(M + '/ud', M + '/ud2'); done('renamed')"
    want = [f"u{i}" for i in range(10)]

    def check(self, M, lower):
        a, b = listing(M, "ud"), listing(M, "ud2")
        ok = lambda d: all(read(os.path.join(M, d, n)) == f"{n}\n".encode()  # noqa: E731
                           for n in self.want)
        if a == self.want and b is None and ok("ud"):
            return "old", []
        if b == self.want and a is None and ok("ud2"):
            return "new", []
        return "mix", [f"ud {a}, ud2 {b}"]

    def finish(self, M):
        if os.path.exists(os.path.join(M, "ud")):
            os.rename(os.path.join(M, "ud"), os.path.join(M, "ud2"))


def subset_state(M, d, lower, prefix):
    """Every entry left under d is one of the lower's, with its content."""
    probs = []
    n = 0
    root = os.path.join(M, d)
    if not os.path.exists(root):
        return 0, []
    for dp, ds, fs in os.walk(root):
        for f in fs:
            rel = os.path.relpath(os.path.join(dp, f), M)
            n += 1
            if rel not in lower:
                probs.append(f"{rel}: not an original entry")
            elif read(os.path.join(dp, f)) != lower[rel]:
                probs.append(f"{rel}: content changed")
    return n, probs


class RmTree(Op):
    name = "rm-rf-merged-dir"
    setup_code = "open(M + '/tree/added', 'w').write('added\\n')"
    op_code = "rmtree(M + '/tree')"

    def check(self, M, lower):
        lw = dict(lower)
        lw["tree/added"] = b"added\n"
        n, probs = subset_state(M, "tree", lw, "tree")
        total = sum(1 for k in lw if k.startswith("tree/"))
        state = "old" if n == total else "new" if not os.path.exists(
            os.path.join(M, "tree")) else "partial"
        return state, probs

    def finish(self, M):
        if os.path.exists(os.path.join(M, "tree")):
            shutil.rmtree(os.path.join(M, "tree"))


class RmMkdir(Op):
    name = "rm-rf-then-mkdir"
    op_code = ("rmtree(M + '/gone'); os.mkdir(M + '/gone'); done('mkdir')\n"
               "put(M + '/gone/new', 'new\\n'); done('new')")

    def check(self, M, lower):
        p = os.path.join(M, "gone")
        if not os.path.exists(p):
            return "deleted", []
        names = set()
        for dp, ds, fs in os.walk(p):
            names.update(os.path.relpath(os.path.join(dp, f), M) for f in fs)
        if "gone/new" in names:
            if names != {"gone/new"}:
                return "mix", [f"the new directory shows lower entries: {sorted(names)}"]
            if read(os.path.join(p, "new")) not in (b"", b"new\n"):
                return "mix", ["gone/new partial"]
            return "new", []
        if not names and not os.listdir(p):
            return "empty new dir", []
        n, probs = subset_state(M, "gone", lower, "gone")
        return "old" if n == 2 else "partial", probs

    def finish(self, M):
        p = os.path.join(M, "gone")
        if os.path.exists(os.path.join(p, "new")) and os.listdir(p) == ["new"]:
            write(os.path.join(p, "new"), "new\n")
            return
        if os.path.exists(p):
            shutil.rmtree(p)
        os.mkdir(p)
        write(os.path.join(p, "new"), "new\n")


class AppendMany(Op):
    name = "append-to-every-file-of-a-lower-dir"
    op_code = ("for i in range(%d):\n"
               "    put(M + f'/many/m{i:02d}', '+\\n', 'a'); done(f'many/m{i:02d}')"
               % N_APPEND)

    def check(self, M, lower):
        probs, states = [], []
        for i in range(N_APPEND):
            rel = f"many/m{i:02d}"
            got = read(os.path.join(M, rel))
            if got == lower[rel]:
                states.append("o")
            elif got == lower[rel] + b"+\n":
                states.append("n")
            else:
                probs.append(f"{rel}: neither old nor new ({len(got)} bytes)")
        s = "".join(states)
        if "o" in s and "n" in s[s.index("o"):]:
            probs.append(f"a file changed after one that was not: {s}")
        return ("old" if "n" not in s else "new" if "o" not in s else "partial"), probs

    def finish(self, M):
        for i in range(N_APPEND):
            p = os.path.join(M, f"many/m{i:02d}")
            if not read(p).endswith(b"+\n"):
                write(p, "+\n", "a")


class DeepCreate(Op):
    """A file created at the bottom of a lower-only chain of directories:
    each parent is copied up first, each published whole or not at all."""
    name = "create-under-lower-dirs"
    op_code = "put(M + '/deep/d1/d2/d3/new', 'new\\n'); done('new')"

    def check(self, M, lower):
        probs = []
        for i, d in enumerate(DEEP):
            st = os.lstat(os.path.join(M, d))
            if (st.st_mode & 0o7777, st.st_uid, st.st_gid) != (0o751 - i, 100 + i, 200 + i):
                probs.append(f"{d}: mode {st.st_mode & 0o7777:o} owner "
                             f"{st.st_uid}:{st.st_gid}, not the lower's")
        if read(os.path.join(M, "deep/d1/d2/d3/leaf")) != b"leaf\n":
            probs.append("the leaf file changed")
        p = os.path.join(M, "deep/d1/d2/d3/new")
        if not os.path.exists(p):
            return "old", probs
        return ("new" if read(p) == b"new\n" else "new, empty"), probs

    def finish(self, M):
        write(os.path.join(M, "deep/d1/d2/d3/new"), "new\n")

    def durable(self, M, state, tags):
        return ["the file was created, yet it is not there"] \
            if "new" in tags and state != "new" else []


OPS = [RenameCopiedUp(), RenameLower(), RenameOver(), RenameDir(), RmTree(), RmMkdir(), AppendMany(), DeepCreate()]

RUNNER = r"""
import os, sys
M = sys.argv[1]
what = sys.argv[2]
code = sys.stdin.read()

def done(tag):
    # an operation that returned: it must survive the daemon's death
    sys.stdout.write(tag + "\n")
    sys.stdout.flush()

def put(path, data, mode="w"):
    with open(path, mode) as f:
        f.write(data)

def rmtree(top):
    for dp, ds, fs in os.walk(top, topdown=False):
        for f in fs:
            os.unlink(os.path.join(dp, f))
            done("rm " + os.path.relpath(os.path.join(dp, f), M))
        for d in ds:
            os.rmdir(os.path.join(dp, d))
            done("rm " + os.path.relpath(os.path.join(dp, d), M))
    os.rmdir(top)
    done("rm " + os.path.relpath(top, M))
if what == "op":
    try: os.stat(M + "/@@stratafs-op-begin")
    except OSError: pass
exec(code)
if what == "op":
    try: os.stat(M + "/@@stratafs-op-end")
    except OSError: pass
"""


# --- mounting ---------------------------------------------------------------------
class Rig:
    def __init__(self, top, L0, L1, fault):
        self.top, self.L0, self.L1 = top, L0, L1
        self.fault = fault
        self.U = os.path.join(top, "U")
        self.W = os.path.join(top, "W")
        self.M = os.path.join(top, "M")
        os.makedirs(self.M, exist_ok=True)
        self.proc = None

    def opts(self):
        return f"lowerdir={self.L0}:{self.L1},upperdir={self.U},workdir={self.W}"

    def prefix(self):
        return [FAULT] + self.fault + ["--"] if self.fault else []

    def fresh(self):
        for d in (self.U, self.W):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)

    def mount(self):
        r = subprocess.run(self.prefix() + [stratafs_bin(), "-o", self.opts(), self.M],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0 or not is_mounted(self.M):
            raise RuntimeError(f"stratafs did not mount: {r.stderr.strip()}")

    def mount_traced(self, strace_args):
        argv = (["strace", "-f", "-qq"] + strace_args + ["--"] + self.prefix()
                + [stratafs_bin(), "-f", "-s", "-o", self.opts(), self.M])
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        if not wait_mounted(self.M, timeout=30, proc=self.proc):
            self.proc.kill()
            err = self.proc.communicate()[1].decode(errors="replace")
            self.proc = None
            raise RuntimeError(f"traced stratafs did not mount: {err.strip()}")

    def run(self, what, code, timeout=120):
        return subprocess.run([sys.executable, "-c", RUNNER, self.M, what],
                              input=code, capture_output=True, text=True,
                              timeout=timeout)

    def stop_traced(self):
        """Unmount (or drop the dead mount) and reap strace; its status."""
        unmount(self.M)
        if is_mounted(self.M):
            subprocess.run(["umount", "-l", self.M], capture_output=True)
        try:
            rc = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        # the next mount needs the workdir lock: a daemon that outlived
        # strace (only on a very loaded machine) must be gone first
        if not wait_gone(self.M, 60):
            for pid in daemon_pids(self.M):
                os.kill(pid, signal.SIGKILL)
            wait_gone(self.M, 60)
        return rc

    def umount(self):
        unmount(self.M)
        if is_mounted(self.M):
            subprocess.run(["umount", "-l", self.M], capture_output=True)
            return "did not unmount"
        return None if wait_gone(self.M, 60) else "stratafs did not exit within 60 s"

    def cleanup(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        if is_mounted(self.M):
            subprocess.run(["umount", "-l", self.M], capture_output=True)


def kill_points(rig, op, log):
    """[(syscall, n)]: the daemon's n-th call of syscall is one the
    operation makes."""
    rig.fresh()
    if op.setup_code:
        rig.mount()
        r = rig.run("setup", op.setup_code)
        rig.umount()
        if r.returncode != 0:
            raise RuntimeError(f"setup failed: {r.stderr}")
    rig.mount_traced(["-o", log, "-e",
                      "trace=" + ",".join(KILL_SET + ("newfstatat",))])
    r = rig.run("op", op.op_code)
    rig.stop_traced()
    if r.returncode != 0:
        raise RuntimeError(f"the operation failed without a fault: {r.stderr}")
    counts = {}
    points = []
    inside = False
    call = re.compile(r"^\d+\s+(?:<\.\.\. )?(\w+)\(")
    with open(log) as f:
        for line in f:
            if MARK_BEGIN in line:
                inside = True
                continue
            if MARK_END in line:
                break
            m = call.match(line)
            if not m or "resumed>" in line or m.group(1) not in KILL_SET:
                continue
            s = m.group(1)
            counts[s] = counts.get(s, 0) + 1
            if inside:
                points.append((s, counts[s], line.split(None, 1)[1].strip()[:100]))
    return points


def crash_once(rig, op, point, lower, ktmp):
    """Kill at point, remount, check; returns (state, problems)."""
    sc, n, _ = point
    rig.fresh()
    if op.setup_code:
        rig.mount()
        rig.run("setup", op.setup_code)
        rig.umount()
    rig.mount_traced(["-o", "/dev/null", "-e", f"trace={sc}",
                      "-e", f"inject={sc}:signal=SIGKILL:when={n}"])
    try:
        out = rig.run("op", op.op_code, timeout=60).stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        out = out.decode() if isinstance(out, bytes) else out
    tags = [ln for ln in out.splitlines() if ln]
    rc = rig.stop_traced()
    probs = []
    killed = rc != 0
    rig.mount()
    try:
        state, p = op.check(rig.M, lower)
        probs += p
        probs += op.durable(rig.M, state, tags)
        if not killed:
            probs.append(f"the daemon was not killed (strace exit {rc})")
        left = work_leftovers(rig.W)
        if left:
            probs.append(f"left in work/ after the remount: {left}")
        tree = treedump.dump(rig.M)
        probs += [f"dump: {e}" for e in tree.errors]
        probs += [f"marker shows: {p_}" for p_ in tree if "/.wh." in p_]
    finally:
        u = rig.umount()
    if u:
        probs.append(u)
    # the kernel reads that upper the same way.  Not for the AUFS format
    # (no xattrs on the upper), which the kernel does not read; nor is
    # fuse-overlayfs a referee there: a crash may leave ".wh.NAME" beside
    # NAME in the upper, which hides only the layers below (OCI's rule,
    # stratafs's reading) but hides NAME itself for fuse-overlayfs.
    # The same for a ".wh.NAME" marker left by a crash in the middle of a
    # fallback without RENAME_EXCHANGE (it stands in for the whiteout).
    markers = [os.path.join(dp, n) for dp, ds, fs in os.walk(rig.U)
               for n in ds + fs if n.startswith(".wh.")]
    no_xattrs = any("EOPNOTSUPP" in f and "setxattr" in f for f in rig.fault)
    if markers and not no_xattrs:
        print(f"# the upper holds {len(markers)} .wh. marker(s): no kernel referee",
              flush=True)
    elif not no_xattrs:
        r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                            f"ro,lowerdir={rig.U}:{rig.L0}:{rig.L1}", ktmp],
                           capture_output=True, text=True)
        if r.returncode != 0:
            probs.append(f"the kernel does not mount the upper: {r.stderr.strip()}")
        else:
            try:
                ktree = treedump.dump(ktmp)
            finally:
                unmount(ktmp)
            d = tree_diff(ktree, tree, ALL_FIELDS, ("kernel", "stratafs"))
            probs += [f"kernel vs stratafs: {x}" for x in d[:10]]
    # and the operation can be completed
    rig.mount()
    try:
        op.finish(rig.M)
        state2, p = op.check(rig.M, lower)
        if state2 not in ("new",):
            probs.append(f"after completing the operation: {state2} {p}")
    except OSError as e:
        probs.append(f"completing the operation failed: {e}")
    finally:
        u = rig.umount()
    if u:
        probs.append(u)
    return state, probs


def snapshot(root):
    out = {}
    for dp, ds, fs in os.walk(root):
        for n in ds + fs:
            p = os.path.join(dp, n)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default="")
    ap.add_argument("--fault", default="")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--meson", action="store_true")
    args = ap.parse_args(argv)
    require_root_fuse()
    if shutil.which("strace") is None:
        skip_all("strace not installed")
    # strace (6.1 here) cannot name the *xattrat calls of Linux 6.13, so it
    # could neither count nor stop at them: the daemon makes the same
    # changes through the older xattr calls (its fallback) instead
    fault = list(XATTRAT_OFF)
    for rule in args.fault.split():
        fault += NO_MKNOD if rule == "mknod" else [rule]
    if not os.access(FAULT, os.X_OK):
        skip_all(f"not built: {FAULT}")
    top = tempfile.mkdtemp(prefix="stratafs-crashops-")
    os.chmod(top, 0o755)
    rig = None
    t = Tap()
    try:
        L0, L1, lower = build_lowers(os.path.join(top, "layers"))
        before = (snapshot(L0), snapshot(L1))
        rig = Rig(top, L0, L1, fault)
        ktmp = os.path.join(top, "K")
        os.makedirs(ktmp)
        rnd = random.Random(args.seed)
        print(f"# seed {args.seed}, {args.points or 'all'} kill points per operation"
              + (f", daemon under strata-fault {' '.join(fault)}" if fault else ""),
              flush=True)
        for op in OPS:
            if not re.search(args.only, op.name):
                continue
            try:
                points = kill_points(rig, op, os.path.join(top, "trace.log"))
            except RuntimeError as e:
                t.ok(False, f"{op.name}: baseline", str(e))
                continue
            chosen = points if not args.points or args.points >= len(points) \
                else sorted(rnd.sample(points, args.points), key=points.index)
            print(f"# {op.name}: {len(points)} kill points, testing {len(chosen)}",
                  flush=True)
            for pt in chosen:
                try:
                    state, probs = crash_once(rig, op, pt, lower, ktmp)
                except Exception as e:  # noqa: BLE001
                    state, probs = "error", [repr(e)]
                    rig.cleanup()
                label = (f"{op.name}: SIGKILL before {pt[0]} #{pt[1]} "
                         f"({pt[2]}): {state}, consistent")
                t.ok(not probs, label, "\n".join(probs))
        t.ok((snapshot(L0), snapshot(L1)) == before, "the lower layers are unchanged")
    finally:
        if rig is not None:
            rig.cleanup()
        leave_top(top, args.keep)
    print(f"1..{t.n}", flush=True)
    return 1 if t.failed and not args.meson else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
