#!/usr/bin/env python3
"""Stress a writable stratafs mount with parallel workers on shared
directories, then check the result against what the workers recorded.

    sudo python3 contrib/stress/stress.py [--procs 6] [--duration 600] [--seed N]
                                          [--threaded 0|1] [--json FILE] [--keep]

Layout.  Two lower layers, L0 (top) and L1, hold four shared directories:
d0 and d1 in both (merged), d2 in L1 only, d3 in L0 only.  In each of them:

  - worker K's own names, dN/wK.J (J < 8): regular files in L1, in L0, in
    both, a merged lower directory with files c0..c2 in it, an L1 file hidden
    by a whiteout in L0, an empty lower directory, or nothing.  Only worker
    K touches them, so it keeps an exact model of every one: type, mode,
    content, hardlinks (a file may get several own names), the names in its
    own directories (dN/wK.J/cI) -- and it knows what each operation must
    return, errors included (EXDEV for renaming a directory that has lower
    content, ENOTEMPTY, EEXIST, EISDIR, ENOTDIR, ENOENT on purpose).  Any
    other outcome is a failure.
  - shared names every worker races on: files dN/sJ (J < 6) and directories
    dN/tJ (J < 3) with files dN/tJ/fI (I < 4), partly present in the lowers.
    Workers write, truncate, rename (also across directories), link, unlink,
    chmod, read, mkdir, rmdir, rename directories and list them.  Every byte
    ever written to a shared file at offset X is PAT[X % 251], so whatever
    the interleaving, a byte reads as that or as zero (holes, truncation).

So copy-up (of files and directories, by write, truncate, chmod, link,
rename), whiteouts (unlink and rmdir of lower names) and opaque directories
(mkdir where a lower directory was removed) all happen while other workers
list, stat and modify the same directories.

Errors a race may produce, and only on shared names (checked per
operation; everything else, ESTALE included, is a failure):
  ENOENT     the name, or its shared parent directory tJ, was removed or
             renamed away by another worker in between;
  EEXIST     link(), mkdir() or open(O_EXCL) found the name created by
             another worker in between;
  ENOTEMPTY  rmdir() or a directory rename onto tJ found files in it;
  EXDEV      a directory rename found a directory with lower content (the
             kernel overlayfs without redirect_dir refuses it the same way;
             whether tJ has lower content depends on the race).
ESTALE is not accepted: a local filesystem and the kernel overlayfs never
return it; from stratafs it would mean the daemon lost track of an inode
the kernel still uses.

At the end:
  1. the merged view (a treedump walk) against the records: every worker's
     own names exactly as its model says (type, mode, size, content,
     hardlink group, nlink), the shared files hold only PAT or zero bytes
     and one of the modes the workers set, every name is one the workers
     could have made, no readdir/lstat disagreement, nlink = names found;
  2. unmount (the daemon must exit 0) and the workdir's work/ must be empty;
  3. stratafs mounted again on the same upper: the same checks, and the
     same tree as before the unmount;
  4. the kernel overlayfs mounted read-only on the same lowers and upper
     (fresh workdir) shows the same tree as stratafs;
  5. the lower layers are byte-identical to what they were.
The daemon's VmRSS and thread count are sampled every second: start,
peak and end are reported, and two checks are made:
  - no growth trend in the run: over the second half, a least-squares
    fit of RSS on time and thread count (each new thread is a step of up
    to 1 MiB: see rss_trend) may not predict more than max(4 MiB, 5 %)
    growth with time while the last quarter's mean, less the threads'
    part, also exceeds the third quarter's by half that;
  - at rest after the run (drop_caches makes the kernel forget the inodes,
    the daemon's idle threads end), VmRSS is at most 2.5 MiB above the
    start, plus 1.25 MiB for each thread more than at the start; and the
    daemon holds no descriptor (pipes aside) it did not hold at the start:
    one more would be an inode it never freed.

Exit 0 if everything passed, 1 on any failure, 2 on bad usage or setup.
Needs root, /dev/fuse and, for step 4, a kernel that mounts overlayfs
(otherwise that step is reported as skipped).  --json writes the report
(counts, errors, RSS samples, checks) for tests/integration/test_stress.py.
"""
import argparse
import errno
import hashlib
import json
import multiprocessing
import os
import queue
import random
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import tap  # noqa: E402
import treedump  # noqa: E402

# ---------------------------------------------------------------- the layout

# shared directory -> the lower layers that hold it (0 = L0, the top one)
DIRS = {"d0": (0, 1), "d1": (0, 1), "d2": (1,), "d3": (0,)}
NOWN = 8          # own slots per worker and shared directory: dN/wK.J
NCHILD = 3        # files in an own directory: dN/wK.J/cI
NSHARED = 6       # shared files per directory: dN/sJ
NSDIR = 3         # shared directories per directory: dN/tJ
NSDFILE = 4       # files in a shared directory: dN/tJ/fI
MAX_OWN = 64 * 1024
MAX_SHARED = 48 * 1024
FILE_MODES = (0o644, 0o600, 0o640, 0o755, 0o604)
DIR_MODES = (0o755, 0o700, 0o750)
SHARED_MODES = (0o644, 0o664, 0o600)
MOUNT_TIMEOUT = 20.0
EXIT_TIMEOUT = 20.0
KERNEL_PIN = "redirect_dir=off,index=off,metacopy=off"

_prnd = random.Random(251)
PAT = bytes(_prnd.randint(1, 255) for _ in range(251))
PATX = PAT * ((MAX_SHARED + 16384) // 251 + 2)


def pat(off, n):
    s = off % 251
    return PATX[s:s + n]


def bad_shared_byte(data):
    """Offset of the first byte that is neither 0 nor PAT[offset % 251]."""
    step = 251 * 16
    for o in range(0, len(data), step):
        chunk = data[o:o + step]
        exp = PATX[:len(chunk)]     # o is a multiple of 251
        if chunk == exp or not any(chunk):
            continue
        for i, b in enumerate(chunk):
            if b and b != exp[i]:
                return o + i
    return None


def ename(e):
    return errno.errorcode.get(e, str(e)) if e else "ok"


# ---------------------------------------------------------------- the model

class Ino:
    """A file of a worker's model: content and mode, shared by its names."""
    __slots__ = ("data", "mode", "id")
    _next = [0]

    def __init__(self, data=b"", mode=0o644):
        self.data = bytearray(data)
        self.mode = mode
        Ino._next[0] += 1
        self.id = Ino._next[0]


class Dir:
    __slots__ = ("mode", "lower")

    def __init__(self, mode=0o755, lower=False):
        self.mode = mode
        self.lower = lower   # has lower content: rename gives EXDEV


def own_tops(k):
    return [f"{d}/w{k}.{j}" for d in DIRS for j in range(NOWN)]


# ---------------------------------------------------------------- the layers

def build_layers(top, nprocs, seed):
    """Create L0 and L1; return the initial model of each worker."""
    rnd = random.Random(seed)
    L = [os.path.join(top, "L0"), os.path.join(top, "L1")]
    models = {k: {} for k in range(nprocs)}

    def mkfile(layer, rel, data, mode=0o644):
        p = os.path.join(L[layer], rel)
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, mode)

    def mkdir(layer, rel):
        os.makedirs(os.path.join(L[layer], rel), exist_ok=True)
        os.chmod(os.path.join(L[layer], rel), 0o755)

    for d, layers in DIRS.items():
        for ly in layers:
            mkdir(ly, d)
        bottom, topl = layers[-1], layers[0]
        both = len(layers) == 2
        for k in range(nprocs):
            m = models[k]
            for j in range(NOWN):
                rel = f"{d}/w{k}.{j}"
                cat = j % 8
                if cat in (0, 1, 2):
                    data = rnd.randbytes(rnd.randint(0, 20000))
                    ly = {0: bottom, 1: topl, 2: topl}[cat]
                    if cat == 2 and both:
                        mkfile(bottom, rel, b"shadowed " * 100)
                    mkfile(ly, rel, data)
                    m[rel] = Ino(data)
                elif cat == 3:
                    mkdir(bottom, rel)
                    m[rel] = Dir(lower=True)
                    for i in range(NCHILD):
                        ly = topl if (i == 2 and both) else bottom
                        if i == 2 and not both:
                            continue
                        if ly == topl:
                            mkdir(ly, rel)
                        data = rnd.randbytes(rnd.randint(0, 5000))
                        mkfile(ly, f"{rel}/c{i}", data)
                        m[f"{rel}/c{i}"] = Ino(data)
                elif cat == 4 and both:
                    mkfile(bottom, rel, b"hidden by a whiteout in L0\n")
                    os.mknod(os.path.join(L[topl], rel), stat.S_IFCHR | 0o600,
                             os.makedev(0, 0))
                elif cat == 5:
                    mkdir(topl, rel)
                    m[rel] = Dir(lower=True)
        # shared names: pattern bytes only
        mkfile(bottom, f"{d}/s0", pat(0, rnd.randint(0, MAX_SHARED)))
        if both:
            mkfile(topl, f"{d}/s0", pat(0, 5000) + bytes(3000) + pat(8000, 100))
            mkfile(topl, f"{d}/s2", pat(0, 7000), 0o664)
        mkfile(bottom, f"{d}/s1", pat(0, 12345))
        mkdir(bottom, f"{d}/t0")
        mkfile(bottom, f"{d}/t0/f0", pat(0, 100))
        mkfile(bottom, f"{d}/t0/f1", pat(0, 30000))
        mkdir(topl, f"{d}/t1")
        mkfile(topl, f"{d}/t1/f0", pat(0, 2000))
        if both:
            mkdir(bottom, f"{d}/t2")
            mkfile(bottom, f"{d}/t2/f0", pat(0, 10))
            mkdir(topl, f"{d}/t2")
            mkfile(topl, f"{d}/t2/f1", pat(0, 20))
    return L, models


# ---------------------------------------------------------------- the worker

class Failure(Exception):
    pass


class Worker:
    def __init__(self, k, mnt, seed, deadline, model):
        self.k = k
        self.M = mnt
        self.rnd = random.Random(seed * 1000 + k)
        self.deadline = deadline
        self.model = model
        self.counts = {}
        self.races = {}
        self.failures = []
        self.unexpected = {}
        self.log = []
        self.own_ok = True

    # ---- bookkeeping
    def p(self, rel):
        return f"{self.M}/{rel}"

    def note(self, op, desc, err):
        self.log.append(f"{op} {desc} -> {ename(err)}")
        if len(self.log) > 40:
            del self.log[:20]

    def fail(self, op, desc, what, kind=None):
        """Record an unexpected outcome; kind groups them in the summary."""
        kind = f"{op} {kind or re.sub(r'[0-9a-f]*[0-9][0-9a-f]*', 'N', what)[:70]}"
        self.unexpected[kind] = self.unexpected.get(kind, 0) + 1
        if len(self.failures) < 20:
            self.failures.append({"worker": self.k, "op": op, "what": f"{desc}: {what}",
                                  "recent": self.log[-12:], "state": self.state(desc)})

    def state(self, desc):
        """What the paths named in desc (and their parents) show right
        after a failure, for the diagnosis."""
        out = []
        for w in desc.split():
            if "/" not in w or w[:2] not in DIRS:
                continue
            for q in (w, w.rsplit("/", 1)[0]):
                try:
                    st = os.lstat(self.p(q))
                    out.append(f"{q}: mode {st.st_mode:o} ino {st.st_ino} nlink {st.st_nlink}")
                except OSError as e:
                    out.append(f"{q}: {ename(e.errno)}")
        return out

    def attempt(self, op, desc, fn):
        """Run fn, count and note it: (its result or None, errno or 0)."""
        self.counts[op] = self.counts.get(op, 0) + 1
        try:
            r, err = fn(), 0
        except OSError as e:
            r, err = None, e.errno
        self.note(op, desc, err)
        return r, err

    def call(self, op, desc, fn, expect=0):
        """An operation on own names: it must return exactly expect."""
        r, err = self.attempt(op, desc, fn)
        if err != expect:
            self.fail(op, desc, f"returned {ename(err)}, expected {ename(expect)}",
                      f"{ename(err)} (expected {ename(expect)})")
            raise Failure()
        return r

    def race(self, op, desc, fn, allowed):
        """An operation on shared names: errors in allowed are races."""
        r, err = self.attempt(op, desc, fn)
        if err and err not in allowed:
            self.fail(op, desc, f"returned {ename(err)}, not an error this "
                      f"race may give ({', '.join(ename(a) for a in allowed) or 'none'})",
                      ename(err))
        elif err:
            key = f"{op} {ename(err)}"
            self.races[key] = self.races.get(key, 0) + 1
        return r, err

    # ---- the model's views
    def files(self):
        return [p for p, n in self.model.items() if isinstance(n, Ino)]

    def dirs(self):
        return [p for p, n in self.model.items() if isinstance(n, Dir)]

    def free_slots(self, tops_only=False):
        out = [t for t in own_tops(self.k) if t not in self.model]
        if not tops_only:
            for t in self.dirs():
                out += [f"{t}/c{i}" for i in range(NCHILD) if f"{t}/c{i}" not in self.model]
        return out

    def children(self, top):
        return sorted(p.rsplit("/", 1)[1] for p in self.model if p.startswith(top + "/"))

    def nlink(self, ino):
        return sum(1 for n in self.model.values() if n is ino)

    def pick(self, seq):
        return self.rnd.choice(seq) if seq else None

    # ---- operations on own names (return False when not applicable)
    def ex_write(self):
        rnd = self.rnd
        path = self.pick(self.files()) if rnd.random() < 0.7 else None
        if path is None:
            path = self.pick(self.free_slots())
            if path is None:
                return False
            mode = rnd.choice(FILE_MODES)
            data = rnd.randbytes(rnd.randint(0, 8192))

            def create():
                fd = os.open(self.p(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
                try:
                    if os.write(fd, data) != len(data):
                        raise Failure()
                finally:
                    os.close(fd)
            self.call("own_create", path, create)
            self.model[path] = Ino(data, mode)
            return True
        ino = self.model[path]
        trunc = rnd.random() < 0.15
        size = 0 if trunc else len(ino.data)
        off = rnd.randint(0, min(size + 8192, MAX_OWN - 1))
        data = rnd.randbytes(rnd.randint(1, min(8192, MAX_OWN - off)))

        def write():
            fd = os.open(self.p(path), os.O_WRONLY | (os.O_TRUNC if trunc else 0))
            try:
                n = os.pwrite(fd, data, off)
            finally:
                os.close(fd)
            return n
        n = self.call("own_write", f"{path} @{off}+{len(data)}{' O_TRUNC' if trunc else ''}",
                      write)
        if n != len(data):
            self.fail("own_write", path, f"short write {n} of {len(data)}")
            raise Failure()
        if trunc:
            del ino.data[:]
        if off > len(ino.data):
            ino.data.extend(bytes(off - len(ino.data)))
        ino.data[off:off + len(data)] = data
        return True

    def ex_truncate(self):
        path = self.pick(self.files())
        if path is None:
            return False
        n = self.rnd.randint(0, MAX_OWN)
        self.call("own_truncate", f"{path} to {n}", lambda: os.truncate(self.p(path), n))
        d = self.model[path].data
        if n < len(d):
            del d[n:]
        else:
            d.extend(bytes(n - len(d)))
        return True

    def ex_fdops(self):
        """One descriptor: write, ftruncate, read back, fstat; rename or
        unlink+relink by name while it is open."""
        rnd = self.rnd
        path = self.pick(self.files())
        if path is None:
            return False
        ino = self.model[path]
        fd = self.call("own_open_rdwr", path, lambda: os.open(self.p(path), os.O_RDWR))
        try:
            dst = self.pick(self.free_slots()) if rnd.random() < 0.4 else None
            if dst is not None:
                self.call("own_rename_open", f"{path} -> {dst}",
                          lambda: os.rename(self.p(path), self.p(dst)))
                self.model[dst] = self.model.pop(path)
            for _ in range(rnd.randint(1, 4)):
                if rnd.random() < 0.3:
                    n = rnd.randint(0, MAX_OWN)
                    self.call("own_ftruncate", f"fd of {path} to {n}",
                              lambda: os.ftruncate(fd, n))
                    if n < len(ino.data):
                        del ino.data[n:]
                    else:
                        ino.data.extend(bytes(n - len(ino.data)))
                else:
                    off = rnd.randint(0, min(len(ino.data) + 4096, MAX_OWN - 1))
                    data = rnd.randbytes(rnd.randint(1, min(4096, MAX_OWN - off)))
                    n = self.call("own_fd_pwrite", f"fd of {path} @{off}+{len(data)}",
                                  lambda: os.pwrite(fd, data, off))
                    if n != len(data):
                        self.fail("own_fd_pwrite", path, f"short write {n}")
                        raise Failure()
                    if off > len(ino.data):
                        ino.data.extend(bytes(off - len(ino.data)))
                    ino.data[off:off + len(data)] = data
            st = self.call("own_fstat", f"fd of {path}", lambda: os.fstat(fd))
            if st.st_size != len(ino.data):
                self.fail("own_fstat", path, f"size {st.st_size}, model {len(ino.data)}")
                raise Failure()
            got = self.call("own_fd_pread", f"fd of {path}",
                            lambda: os.pread(fd, MAX_OWN + 1, 0))
            if got != bytes(ino.data):
                self.fail("own_fd_pread", path, "content differs from the model "
                          f"({len(got)} vs {len(ino.data)} bytes)")
                raise Failure()
        finally:
            os.close(fd)
        return True

    def ex_unlink(self):
        path = self.pick(self.files())
        if path is None:
            return False
        self.call("own_unlink", path, lambda: os.unlink(self.p(path)))
        del self.model[path]
        return True

    def ex_rename(self):
        src = self.pick(self.files())
        if src is None:
            return False
        if self.rnd.random() < 0.3:
            dst = self.pick([f for f in self.files() if f != src])
        else:
            dst = self.pick(self.free_slots())
        if dst is None:
            return False
        self.call("own_rename", f"{src} -> {dst}",
                  lambda: os.rename(self.p(src), self.p(dst)))
        if self.model.get(dst) is self.model[src]:
            return True     # two names of one file: rename does nothing
        self.model[dst] = self.model.pop(src)
        return True

    def ex_link(self):
        src = self.pick(self.files())
        dst = self.pick(self.free_slots())
        if src is None or dst is None:
            return False
        self.call("own_link", f"{src} -> {dst}", lambda: os.link(self.p(src), self.p(dst)))
        self.model[dst] = self.model[src]
        return True

    def ex_mkdir(self):
        path = self.pick(self.free_slots(tops_only=True))
        if path is None:
            return False
        mode = self.rnd.choice(DIR_MODES)
        self.call("own_mkdir", path, lambda: os.mkdir(self.p(path), mode))
        self.model[path] = Dir(mode)
        return True

    def ex_rmdir(self):
        path = self.pick(self.dirs())
        if path is None:
            return False
        if self.rnd.random() < 0.6:
            for c in self.children(path):
                cp = f"{path}/{c}"
                self.call("own_unlink", cp, lambda: os.unlink(self.p(cp)))
                del self.model[cp]
        full = bool(self.children(path))
        self.call("own_rmdir", path, lambda: os.rmdir(self.p(path)),
                  errno.ENOTEMPTY if full else 0)
        if not full:
            del self.model[path]
        return True

    def ex_rename_dir(self):
        src = self.pick(self.dirs())
        dst = self.pick(self.free_slots(tops_only=True))
        if src is None or dst is None:
            return False
        lower = self.model[src].lower
        self.call("own_rename_dir", f"{src} -> {dst}",
                  lambda: os.rename(self.p(src), self.p(dst)),
                  errno.EXDEV if lower else 0)
        if not lower:
            for p in [p for p in self.model if p == src or p.startswith(src + "/")]:
                self.model[dst + p[len(src):]] = self.model.pop(p)
        return True

    def ex_chmod(self):
        path = self.pick(list(self.model))
        if path is None:
            return False
        node = self.model[path]
        mode = self.rnd.choice(DIR_MODES if isinstance(node, Dir) else FILE_MODES)
        self.call("own_chmod", f"{path} {mode:o}", lambda: os.chmod(self.p(path), mode))
        node.mode = mode
        return True

    def verify(self, path, op="own_check"):
        node = self.model.get(path)
        st = self.call("own_lstat", path, lambda: os.lstat(self.p(path)),
                       0 if node is not None else errno.ENOENT)
        if node is None:
            return
        if isinstance(node, Dir):
            if not stat.S_ISDIR(st.st_mode) or stat.S_IMODE(st.st_mode) != node.mode:
                self.fail(op, path, f"mode {st.st_mode:o}, model: directory {node.mode:o}")
                raise Failure()
            names = sorted(self.call("own_listdir", path, lambda: os.listdir(self.p(path))))
            if names != self.children(path):
                self.fail(op, path, f"lists {names}, model {self.children(path)}")
                raise Failure()
            return
        want = (stat.S_IFREG | node.mode, len(node.data), self.nlink(node))
        got = (st.st_mode, st.st_size, st.st_nlink)
        if got != want:
            self.fail(op, path, f"mode/size/nlink {got[0]:o}/{got[1]}/{got[2]}, "
                      f"model {want[0]:o}/{want[1]}/{want[2]}")
            raise Failure()
        if node.mode & 0o400:
            def read():
                with open(self.p(path), "rb") as f:
                    return f.read()
            data = self.call("own_read", path, read)
            if data != bytes(node.data):
                i = next((i for i in range(min(len(data), len(node.data)))
                          if data[i] != node.data[i]), min(len(data), len(node.data)))
                self.fail(op, path, f"content differs from the model at byte {i} "
                          f"({len(data)} vs {len(node.data)} bytes)")
                raise Failure()

    def ex_check(self):
        slots = own_tops(self.k) + [p for p in self.model if "/c" in p.split("/", 1)[1]]
        self.verify(self.pick(slots))
        return True

    def ex_readdir(self):
        rnd = self.rnd
        d = rnd.choice(list(DIRS))
        pre = f"w{self.k}."
        names = self.call("own_readdir", d, lambda: os.listdir(self.p(d)))
        mine = sorted(n for n in names if n.startswith(pre))
        want = sorted(p.split("/")[1] for p in self.model
                      if p.startswith(f"{d}/{pre}") and p.count("/") == 1)
        if mine != want:
            self.fail("own_readdir", d, f"lists {mine}, model {want}")
            raise Failure()
        if len(set(names)) != len(names):
            self.fail("own_readdir", d, "a name is listed twice")
            raise Failure()
        return True

    def ex_negative(self):
        """Operations whose error is certain from the model."""
        rnd = self.rnd
        c = rnd.randrange(6)
        free = self.pick(self.free_slots(tops_only=True))
        f = self.pick(self.files())
        d = self.pick(self.dirs())
        if c == 0 and free:
            self.call("own_neg_open", free, lambda: os.open(self.p(free), os.O_RDONLY),
                      errno.ENOENT)
        elif c == 1 and d:
            self.call("own_neg_mkdir", d, lambda: os.mkdir(self.p(d)), errno.EEXIST)
        elif c == 2 and f and d:
            self.call("own_neg_link", f"{f} -> {d}",
                      lambda: os.link(self.p(f), self.p(d)), errno.EEXIST)
        elif c == 3 and d:
            self.call("own_neg_unlink", d, lambda: os.unlink(self.p(d)), errno.EISDIR)
        elif c == 4 and f:
            self.call("own_neg_rmdir", f, lambda: os.rmdir(self.p(f)), errno.ENOTDIR)
        elif c == 5 and f and d:
            self.call("own_neg_open_dir_w", d,
                      lambda: os.open(self.p(d), os.O_WRONLY), errno.EISDIR)
        else:
            return False
        return True

    # ---- operations on shared names
    def sfile(self):
        d = self.rnd.choice(list(DIRS))
        if self.rnd.random() < 0.6:
            return f"{d}/s{self.rnd.randrange(NSHARED)}", False
        return f"{d}/t{self.rnd.randrange(NSDIR)}/f{self.rnd.randrange(NSDFILE)}", True

    def sdir(self):
        return f"{self.rnd.choice(list(DIRS))}/t{self.rnd.randrange(NSDIR)}"

    def check_shared_bytes(self, path, data, op):
        bad = bad_shared_byte(data)
        if bad is not None:
            self.fail(op, path, f"byte {bad} is {data[bad]:#x}: neither zero nor the "
                      f"pattern ({PATX[bad % 251]:#x})")
            return False
        return True

    def sh_write(self):
        rnd = self.rnd
        path, in_t = self.sfile()
        excl = rnd.random() < 0.2
        flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if excl else 0) | \
            (os.O_TRUNC if rnd.random() < 0.1 else 0)
        off = rnd.randint(0, MAX_SHARED - 1)
        data = pat(off, rnd.randint(1, min(8192, MAX_SHARED - off)))
        allowed = (errno.ENOENT,) if in_t else ()
        if excl:
            allowed += (errno.EEXIST,)

        def write():
            fd = os.open(self.p(path), flags, rnd.choice(SHARED_MODES))
            try:
                return os.pwrite(fd, data, off)
            finally:
                os.close(fd)
        n, err = self.race("shared_write", f"{path} @{off}+{len(data)}", write, allowed)
        if not err and n != len(data):
            self.fail("shared_write", path, f"short write {n} of {len(data)}")
        return True

    def sh_fdops(self):
        rnd = self.rnd
        path, _ = self.sfile()
        fd, err = self.race("shared_open_rdwr", path,
                            lambda: os.open(self.p(path), os.O_RDWR), (errno.ENOENT,))
        if err:
            return True
        try:
            for _ in range(rnd.randint(1, 3)):
                if rnd.random() < 0.3:
                    n = rnd.randint(0, MAX_SHARED)
                    self.race("shared_ftruncate", path, lambda: os.ftruncate(fd, n), ())
                else:
                    off = rnd.randint(0, MAX_SHARED - 1)
                    data = pat(off, rnd.randint(1, min(4096, MAX_SHARED - off)))
                    self.race("shared_fd_pwrite", path, lambda: os.pwrite(fd, data, off), ())
            data, err = self.race("shared_fd_pread", path,
                                  lambda: os.pread(fd, MAX_SHARED + 16384, 0), ())
            if not err:
                self.check_shared_bytes(path, data, "shared_fd_pread")
        finally:
            os.close(fd)
        return True

    def sh_read(self):
        path, _ = self.sfile()
        st, err = self.race("shared_lstat", path, lambda: os.lstat(self.p(path)),
                            (errno.ENOENT,))
        if not err and (not stat.S_ISREG(st.st_mode) or
                        stat.S_IMODE(st.st_mode) not in SHARED_MODES + (0o644,)):
            self.fail("shared_lstat", path, f"mode {st.st_mode:o}")

        def read():
            with open(self.p(path), "rb") as f:
                return f.read()
        data, err = self.race("shared_read", path, read, (errno.ENOENT,))
        if not err:
            self.check_shared_bytes(path, data, "shared_read")
        return True

    def sh_truncate(self):
        path, _ = self.sfile()
        n = self.rnd.randint(0, MAX_SHARED)
        self.race("shared_truncate", f"{path} to {n}", lambda: os.truncate(self.p(path), n),
                  (errno.ENOENT,))
        return True

    def sh_unlink(self):
        path, _ = self.sfile()
        self.race("shared_unlink", path, lambda: os.unlink(self.p(path)), (errno.ENOENT,))
        return True

    def sh_rename(self):
        src, _ = self.sfile()
        dst, _ = self.sfile()
        self.race("shared_rename", f"{src} -> {dst}",
                  lambda: os.rename(self.p(src), self.p(dst)), (errno.ENOENT,))
        return True

    def sh_link(self):
        src, _ = self.sfile()
        dst, _ = self.sfile()
        self.race("shared_link", f"{src} -> {dst}",
                  lambda: os.link(self.p(src), self.p(dst)), (errno.ENOENT, errno.EEXIST))
        return True

    def sh_chmod(self):
        path, _ = self.sfile()
        mode = self.rnd.choice(SHARED_MODES)
        self.race("shared_chmod", f"{path} {mode:o}", lambda: os.chmod(self.p(path), mode),
                  (errno.ENOENT,))
        return True

    def sh_mkdir(self):
        d = self.sdir()
        self.race("shared_mkdir", d, lambda: os.mkdir(self.p(d), 0o755), (errno.EEXIST,))
        return True

    def sh_rmdir(self):
        d = self.sdir()
        if self.rnd.random() < 0.5:
            names, err = self.race("shared_listdir", d, lambda: os.listdir(self.p(d)),
                                   (errno.ENOENT,))
            for n in names or ():
                cp = f"{d}/{n}"
                self.race("shared_unlink", cp, lambda: os.unlink(self.p(cp)),
                          (errno.ENOENT,))
        self.race("shared_rmdir", d, lambda: os.rmdir(self.p(d)),
                  (errno.ENOENT, errno.ENOTEMPTY))
        return True

    def sh_rename_dir(self):
        src, dst = self.sdir(), self.sdir()
        if src == dst:
            return False
        self.race("shared_rename_dir", f"{src} -> {dst}",
                  lambda: os.rename(self.p(src), self.p(dst)),
                  (errno.ENOENT, errno.ENOTEMPTY, errno.EXDEV))
        return True

    def sh_readdir(self):
        d = self.rnd.choice(list(DIRS)) if self.rnd.random() < 0.5 else self.sdir()
        names, err = self.race("shared_readdir", d, lambda: os.listdir(self.p(d)),
                               (errno.ENOENT,) if "/" in d else ())
        if err:
            return True
        if len(set(names)) != len(names):
            self.fail("shared_readdir", d, f"a name is listed twice: {sorted(names)}")
        bad = [n for n in names if name_problem(f"{d}/{n}")]
        if bad:
            self.fail("shared_readdir", d, f"unexpected names listed: {bad}")
        return True

    OWN_OPS = [("ex_write", 14), ("ex_truncate", 4), ("ex_fdops", 5), ("ex_unlink", 6),
               ("ex_rename", 6), ("ex_link", 4), ("ex_mkdir", 4), ("ex_rmdir", 4),
               ("ex_rename_dir", 3), ("ex_chmod", 3), ("ex_check", 10),
               ("ex_readdir", 4), ("ex_negative", 3)]
    SHARED_OPS = [("sh_write", 10), ("sh_fdops", 4), ("sh_read", 8), ("sh_truncate", 3),
                  ("sh_unlink", 5), ("sh_rename", 5), ("sh_link", 3), ("sh_chmod", 2),
                  ("sh_mkdir", 4), ("sh_rmdir", 3), ("sh_rename_dir", 2),
                  ("sh_readdir", 4)]

    def run(self):
        rnd = self.rnd
        own = [n for n, _ in self.OWN_OPS]
        own_w = [w for _, w in self.OWN_OPS]
        sh = [n for n, _ in self.SHARED_OPS]
        sh_w = [w for _, w in self.SHARED_OPS]
        while time.monotonic() < self.deadline:
            try:
                if self.own_ok and rnd.random() < 0.55:
                    getattr(self, rnd.choices(own, own_w)[0])()
                else:
                    getattr(self, rnd.choices(sh, sh_w)[0])()
            except Failure:
                # The model may be wrong from here on: stop using own names.
                self.own_ok = False
            except Exception as e:
                self.fail("?", "exception", f"{e!r}\n{traceback.format_exc()}", repr(e))
                self.own_ok = False
        if self.own_ok:
            # A last full check of every own name through the mount.
            for path in own_tops(self.k) + [p for p in list(self.model) if "/c" in p]:
                try:
                    self.verify(path, "own_final_check")
                except Failure:
                    self.own_ok = False
                    break

    def result(self):
        model = {}
        for p, n in self.model.items():
            if isinstance(n, Dir):
                model[p] = {"type": "dir", "mode": n.mode}
            else:
                model[p] = {"type": "reg", "mode": n.mode, "size": len(n.data),
                            "sha256": hashlib.sha256(n.data).hexdigest(), "ino": n.id}
        return {"k": self.k, "counts": self.counts, "races": self.races,
                "failures": self.failures, "unexpected": self.unexpected,
                "own_ok": self.own_ok, "model": model}


def worker_main(k, mnt, seed, deadline, model, q):
    os.umask(0)
    w = Worker(k, mnt, seed, deadline, model)
    try:
        w.run()
    except BaseException as e:  # report, whatever happened
        w.fail("?", "worker", f"died: {e!r}", "worker died")
    q.put(w.result())


# ---------------------------------------------------------------- the checks

def name_problem(rel):
    """None if rel is a name the workers can make, else why not."""
    parts = rel.split("/")
    if parts[0] not in DIRS:
        return "not a shared directory"
    if len(parts) == 1:
        return None
    n = parts[1]
    if n.startswith("w") and "." in n:
        k, j = n[1:].split(".", 1)
        if not (k.isdigit() and j.isdigit() and int(j) < NOWN):
            return "bad own name"
        if len(parts) == 2:
            return None
        if len(parts) == 3 and parts[2] in {f"c{i}" for i in range(NCHILD)}:
            return None
        return "bad name in an own directory"
    if n in {f"s{j}" for j in range(NSHARED)} and len(parts) == 2:
        return None
    if n in {f"t{j}" for j in range(NSDIR)}:
        if len(parts) == 2:
            return None
        if len(parts) == 3 and parts[2] in {f"f{i}" for i in range(NSDFILE)}:
            return None
    return "not a name any worker makes"


def check_tree(tree, results, mnt):
    """Problems of a treedump of the merged view against the records."""
    probs = [f"dump: {e}" for e in tree.errors]
    probs += [f"readdir lists {p} but lstat says ENOENT" for p in tree.phantoms]
    owned = {}
    for r in results:
        for p, rec in r["model"].items():
            owned[p] = (r["k"], rec)
    checked_own = 0
    for path, rec in sorted(tree.items()):
        if path == "/":
            continue
        rel = path[1:]
        why = name_problem(rel)
        if why:
            probs.append(f"{rel}: {why} ({rec['type']})")
            continue
        parts = rel.split("/")
        if len(parts) == 1:
            if rec["type"] != "dir":
                probs.append(f"{rel}: a {rec['type']}, not a directory")
            continue
        n = parts[1]
        if n.startswith("w"):
            k = int(n[1:].split(".")[0])
            r = next((r for r in results if r["k"] == k), None)
            if r is None or not r["own_ok"]:
                continue   # that worker failed (reported) or never reported
            want = r["model"].get(rel)
            if want is None:
                probs.append(f"{rel}: exists ({rec['type']}), worker {k}'s record says absent")
                continue
            checked_own += 1
            if rec["type"] != want["type"] or rec["mode"] != want["mode"]:
                probs.append(f"{rel}: {rec['type']} {rec['mode']:o}, recorded "
                             f"{want['type']} {want['mode']:o}")
                continue
            if want["type"] == "reg":
                if rec["size"] != want["size"] or rec["sha256"] != want["sha256"]:
                    probs.append(f"{rel}: size {rec['size']} sha256 {rec['sha256'][:12]}, "
                                 f"recorded {want['size']} {want['sha256'][:12]}")
                group = sorted(p for p, w in r["model"].items()
                               if w.get("ino") == want["ino"])
                got = sorted(p[1:] for p in rec["links"])
                if got != group or rec["nlink"] != len(group):
                    probs.append(f"{rel}: hardlinks {got} nlink {rec['nlink']}, "
                                 f"recorded {group}")
        elif rec["type"] == "reg":
            if rec["mode"] not in SHARED_MODES:
                probs.append(f"{rel}: mode {rec['mode']:o}, no worker sets that")
            if rec["nlink"] != len(rec["links"]):
                probs.append(f"{rel}: nlink {rec['nlink']} but {len(rec['links'])} names")
            try:
                with open(os.path.join(mnt, rel), "rb") as f:
                    data = f.read()
            except OSError as e:
                probs.append(f"{rel}: cannot read: {e}")
                continue
            bad = bad_shared_byte(data)
            if bad is not None:
                probs.append(f"{rel}: byte {bad} is {data[bad]:#x}: neither zero nor "
                             f"the pattern")
            if len(data) != rec["size"]:
                probs.append(f"{rel}: read {len(data)} bytes, size {rec['size']}")
        elif rec["type"] != "dir" or n[0] != "t" or len(parts) != 2:
            probs.append(f"{rel}: unexpected {rec['type']}")
    for r in results:
        if not r["own_ok"]:
            continue
        for p in r["model"]:
            if "/" + p not in tree:
                probs.append(f"{p}: missing, worker {r['k']}'s record has it")
    return probs, checked_own


def rss_unmeasurable(exe, prefix):
    """Why the daemon's RSS says nothing about its own memory, or None.

    An AddressSanitizer build keeps freed blocks in a quarantine (256 MiB by
    default) and its RSS climbs until that fills, so a growth trend there is
    the sanitizer's; leaks in that build are LeakSanitizer's to report.  Under
    a wrapper such as valgrind the RSS is the wrapper's."""
    if prefix:
        return f"the daemon runs under {prefix[0]}: its RSS is the wrapper's"
    try:
        with open(exe, "rb") as f:
            if b"__asan_init" in f.read():
                return ("AddressSanitizer build: its quarantine grows the RSS by design; "
                        "LeakSanitizer reports leaks at exit")
    except OSError:
        pass
    return None


PER_THREAD_MAX_KIB = 2048


def rss_trend(samples, threads):
    """(ok, text) about growth of VmRSS in the second half of the run.

    The daemon adds a thread whenever its readers are all busy (src/loop.c)
    and ends idle ones only after a second without requests, so during the
    run the count only grows, up to 16.  Each thread brings its stack and a
    1 MiB request buffer, which is not resident until used, except that
    under MALLOC_PERTURB_ (meson test sets it) glibc writes every allocated
    byte: then each new thread is a 1 MiB step.  Such steps are bounded and
    no leak, so the fit is RSS = a + b * time + c * threads (least squares
    over the second half; c kept within 0..2 MiB), and the growth is b over
    the span.  Fails if that predicts more than max(4 MiB, 5 %) while the
    last quarter's mean, less c per thread added in the second half, also
    exceeds the third quarter's by half that.  If the thread count rose in
    step with time throughout (correlation above 0.95), the two cannot be
    told apart and the check has no verdict (the check at rest still has
    one)."""
    pts = [(t, v, n) for (t, v), n in zip(samples, threads) if n is not None]
    if len(pts) < 8:
        return True, f"only {len(pts)} samples: no trend check"
    half = pts[len(pts) // 2:]
    n = len(half)
    mt = sum(t for t, _, _ in half) / n
    mv = sum(v for _, v, _ in half) / n
    mn = sum(k for _, _, k in half) / n
    stt = sum((t - mt) ** 2 for t, _, _ in half)
    snn = sum((k - mn) ** 2 for _, _, k in half)
    stn = sum((t - mt) * (k - mn) for t, _, k in half)
    stv = sum((t - mt) * (v - mv) for t, v, _ in half)
    snv = sum((k - mn) * (v - mv) for _, v, k in half)
    c = 0.0
    if snn > 0 and stt > 0:
        if stn * stn > 0.9025 * stt * snn:
            return True, (f"threads {half[0][2]} to {half[-1][2]} rose in step with time "
                          f"over the second half: no trend verdict; the RSS at rest is the check")
        c = (stt * snv - stn * stv) / (stt * snn - stn * stn)
        c = min(max(c, 0.0), PER_THREAD_MAX_KIB)
    k0 = half[0][2]
    z = [(t, v - c * (k - k0)) for t, v, k in half]
    mz = sum(v for _, v in z) / n
    slope = sum((t - mt) * (v - mz) for t, v in z) / stt if stt else 0.0
    span = half[-1][0] - half[0][0]
    q3, q4 = [v for _, v in z[:n // 2]], [v for _, v in z[n // 2:]]
    m3, m4 = sum(q3) / len(q3), sum(q4) / len(q4)
    tol = max(4096.0, 0.05 * m3)
    growth = slope * span
    bad = growth > tol and m4 - m3 > tol / 2
    text = (f"second half: slope {slope * 60:+.1f} KiB/min (fit {growth:+.0f} KiB over "
            f"{span:.0f} s) beside {c:.0f} KiB per thread (threads {half[0][2]} to "
            f"{half[-1][2]}), 3rd-quarter mean {m3:.0f} KiB, 4th-quarter mean {m4:.0f} KiB "
            f"(less that per thread added), tolerance {tol:.0f} KiB")
    return not bad, text


REST_TOLERANCE_KIB = 2560
REST_PER_THREAD_KIB = 1280


def rest_check(start, rest, start_threads=None, rest_threads=None):
    """(ok, text): VmRSS at rest after the run against the start.  At rest
    the kernel has forgotten the inodes and the daemon's idle threads have
    ended, so what stays above the start is what the run left behind:
    glib's tables at their grown size, malloc's bookkeeping and leaks.
    Measured: 0.7-1.2 MiB after 60 or 180 s (with and without
    MALLOC_PERTURB_, with 2 or 17 threads in the run), 1.1-1.8 MiB after
    600 s (malloc's free chunks; the inode table empty); a leak of 10 bytes
    per operation would add 2-3.5 MiB in the 60-s run (200,000-370,000
    operations), about 30 in the 600-s one.  A thread still waiting for
    requests at rest (one that was blocked in receive when they stopped
    does not end) keeps its request buffer and stack: up to 1.25 MiB more
    each under MALLOC_PERTURB_."""
    if start is None or rest is None:
        return True, "no RSS read: no check"
    extra = max(0, rest_threads - start_threads) if start_threads and rest_threads else 0
    tol = REST_TOLERANCE_KIB + extra * REST_PER_THREAD_KIB
    grew = rest - start
    text = f"start {start} KiB, at rest {rest} KiB: {grew:+d} KiB, tolerance {tol} KiB"
    if extra:
        text += f" ({extra} thread{'s' if extra > 1 else ''} more than at the start)"
    return grew <= tol, text


def proc_status(pid):
    """(VmRSS in KiB, Threads) of pid, or (None, None)."""
    rss = threads = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
    except OSError:
        pass
    return rss, threads


def descriptors(pid):
    """The daemon's open descriptors other than pipes, as {fd: target}, or
    None.  Pipes come and go with its threads (libfuse's splice pipe and
    file.c's read pipe, per thread); every other descriptor belongs to the
    layers, the workdir, /dev/fuse, the log, or to an inode: a directory's
    layer stack, an unlinked file kept open."""
    out = {}
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if not target.startswith("pipe:"):
                out[int(fd)] = target
    except OSError:
        return None
    return out


def descriptors_check(start, rest):
    """(ok, text, diag): at rest the kernel holds no inode but the root, so
    the daemon holds what it held after mounting: a descriptor more is an
    inode (and its directory stack) the daemon never freed."""
    if start is None or rest is None:
        return True, "descriptors not readable: no check", []
    extra = sorted(set(rest.items()) - set(start.items()))
    text = f"{len(start)} at the start, {len(rest)} at rest, pipes not counted"
    return not extra, text, [f"fd {fd}: {t}" for fd, t in extra[:20]]


def rss_at_rest(pid, limit=20.0):
    """(VmRSS KiB, threads, seconds waited) of the daemon at rest after the run.

    The kernel is made to forget the mount's inodes (drop_caches 2; the
    daemon gets their FORGETs and frees them), then VmRSS and the thread
    count are read until neither has changed for 2 s: a second after the
    last request the loop ends its idle threads, and a tick later hands the
    freed memory back (src/loop.c)."""
    t0 = time.monotonic()
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")
    last, since = proc_status(pid), time.monotonic()
    while time.monotonic() - t0 < limit:
        time.sleep(0.25)
        cur = proc_status(pid)
        if cur != last:
            last, since = cur, time.monotonic()
        elif time.monotonic() - since >= 2.0:
            break
    return last[0], last[1], time.monotonic() - t0


# ---------------------------------------------------------------- mounts

def run(cmd, timeout=60):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, f"{cmd[0]} timed out"
    return p.returncode, p.stdout.decode(errors="replace").strip()


class Daemon:
    """stratafs in the foreground (its PID is the daemon's), log in a file."""

    def __init__(self, exe, opts, mnt, log, prefix=()):
        self.mnt = mnt
        self.log = log
        with open(log, "ab") as lf:
            self.proc = subprocess.Popen(list(prefix) + [exe, "-f", "-o", opts, mnt],
                                         stdin=subprocess.DEVNULL, stdout=lf,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + MOUNT_TIMEOUT
        while not tap.is_mounted(mnt):
            if self.proc.poll() is not None:
                raise RuntimeError(f"stratafs exited ({self.proc.returncode}) before "
                                   f"mounting: {self.tail()}")
            if time.monotonic() > end:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("stratafs did not mount in time")
            time.sleep(0.02)

    def tail(self, n=10):
        try:
            with open(self.log, "rb") as f:
                return " | ".join(f.read().decode(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        """Unmount and wait for the exit; returns problems."""
        probs = []
        if self.proc.poll() is not None:
            probs.append(f"stratafs died during the run (status {self.proc.returncode}): "
                         f"{self.tail()}")
        if tap.is_mounted(self.mnt):
            rc, out = run(["fusermount3", "-u", self.mnt])
            if rc != 0:
                probs.append(f"fusermount3 -u failed: {out}; lazy unmount")
                run(["umount", "-l", self.mnt])
        try:
            self.proc.wait(timeout=EXIT_TIMEOUT)
            if self.proc.returncode != 0 and not probs:
                probs.append(f"stratafs exited with status {self.proc.returncode}: "
                             f"{self.tail()}")
        except subprocess.TimeoutExpired:
            probs.append("stratafs did not exit after its unmount; killed")
            self.proc.kill()
            self.proc.wait()
        return probs


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples = []
        self.threads = []
        self.stop_ev = threading.Event()
        self.t0 = time.monotonic()

    def sample(self):
        rss, threads = proc_status(self.pid)
        if rss is not None:
            self.samples.append((time.monotonic() - self.t0, rss))
            self.threads.append(threads)

    def run(self):
        while not self.stop_ev.is_set():
            self.sample()
            self.stop_ev.wait(1.0)


def snapshot(root):
    out = {}
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        st = os.lstat(dirpath)
        out[rel] = ("dir", st.st_mode, st.st_mtime_ns)
        for n in files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            h = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
            out[os.path.join(rel, n)] = (st.st_mode, st.st_mtime_ns, h)
    return out


# ---------------------------------------------------------------- main

class Report:
    def __init__(self):
        self.checks = []
        self.info = {}

    def check(self, name, ok, diag=()):
        diag = list(diag)
        self.checks.append({"name": name, "ok": bool(ok), "diag": diag[:100],
                            "more": max(0, len(diag) - 100)})
        print(f"{'ok' if ok else 'FAIL'} - {name}", flush=True)
        for d in diag[:100]:
            print(f"    {d}", flush=True)
        if len(diag) > 100:
            print(f"    ... and {len(diag) - 100} more", flush=True)

    def skip(self, name, why):
        self.checks.append({"name": name, "ok": True, "skip": why, "diag": []})
        print(f"skip - {name}: {why}", flush=True)

    def failed(self):
        return any(not c["ok"] for c in self.checks)


def run_workers(args, mnt, models, rep, daemon):
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    deadline = time.monotonic() + args.duration
    procs = [ctx.Process(target=worker_main,
                         args=(k, mnt, args.seed, deadline, models[k], q))
             for k in range(args.procs)]
    for p in procs:
        p.start()
    results = []
    grace = max(120.0, args.duration * 0.25)
    hard_end = deadline + grace
    hung = False
    while len(results) < len(procs):
        try:
            results.append(q.get(timeout=5))
        except queue.Empty:
            if time.monotonic() > hard_end and not hung:
                # A hung daemon: kill it, the connection aborts and every
                # blocked worker gets ENOTCONN.
                hung = True
                daemon.proc.kill()
                hard_end = time.monotonic() + 60
            elif hung and time.monotonic() > hard_end:
                break
            if not any(p.is_alive() for p in procs) and q.empty():
                break
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.terminate()
            p.join()
    diag = []
    if hung:
        diag.append(f"workers still blocked {grace:.0f} s after the end: stratafs killed")
    if len(results) < len(procs):
        diag.append(f"{len(procs) - len(results)} worker(s) did not report")
    rep.check("the workers finished and reported", not diag, diag)
    return sorted(results, key=lambda r: r["k"])


def summarize(results, rep, secs):
    counts, races = {}, {}
    for r in results:
        for k, v in r["counts"].items():
            counts[k] = counts.get(k, 0) + v
        for k, v in r["races"].items():
            races[k] = races.get(k, 0) + v
    total = sum(counts.values())
    rep.info["ops_total"] = total
    rep.info["ops_per_s"] = round(total / secs, 1) if secs else 0
    rep.info["ops"] = dict(sorted(counts.items()))
    rep.info["race_errors"] = dict(sorted(races.items()))
    rep.info["race_errors_total"] = sum(races.values())
    print(f"operations: {total} in {secs:.0f} s ({rep.info['ops_per_s']}/s)", flush=True)
    for k, v in sorted(counts.items()):
        print(f"  {k:20s} {v}", flush=True)
    print(f"errors a race may give (allowed, on shared names): "
          f"{rep.info['race_errors_total']}", flush=True)
    for k, v in sorted(races.items()):
        print(f"  {k:28s} {v}", flush=True)
    fails = [f for r in results for f in r["failures"]]
    unexpected = {}
    for r in results:
        for k, v in r["unexpected"].items():
            unexpected[k] = unexpected.get(k, 0) + v
    nfail = sum(unexpected.values())
    rep.info["unexpected"] = nfail
    rep.info["unexpected_by_kind"] = dict(sorted(unexpected.items()))
    print(f"unexpected results: {nfail}", flush=True)
    for k, v in sorted(unexpected.items()):
        print(f"  {k:40s} {v}", flush=True)
    # own-name failures first: they are the ones a model says cannot happen
    fails.sort(key=lambda f: not f["op"].startswith("own"))
    rep.info["failures"] = fails
    diag = []
    for f in fails[:6]:
        diag.append(f"worker {f['worker']}: {f['op']}: {f['what']}")
        diag += [f"   recent: {x}" for x in f["recent"]]
        diag += [f"   after: {x}" for x in f.get("state", ())]
    rep.check(f"no unexpected result in {total} operations ({nfail} unexpected)",
              not nfail, diag)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, default=6)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threaded", choices=("0", "1"), default="1")
    ap.add_argument("--opts", default="", help="more -o options for stratafs")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--daemon-prefix", default="",
                    help="run the daemon under this command, e.g. 'valgrind "
                    "--leak-check=full --log-file=/tmp/vg.%%p' (the RSS is then "
                    "the wrapper's)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)

    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        print("stress: needs root and /dev/fuse", file=sys.stderr)
        return 2
    exe = tap.stratafs_bin()
    if not os.access(exe, os.X_OK):
        print(f"stress: no stratafs at {exe} (set STRATAFS)", file=sys.stderr)
        return 2
    os.umask(0)
    top = tempfile.mkdtemp(prefix="stratafs-stress-")
    os.chmod(top, 0o755)
    rep = Report()
    rep.info.update(procs=args.procs, duration=args.duration, seed=args.seed,
                    threaded=args.threaded, stratafs=exe)
    print(f"stress: {args.procs} workers, {args.duration:g} s, seed {args.seed}, "
          f"threaded={args.threaded}, {exe}, in {top}", flush=True)
    mounted = []
    daemons = []
    try:
        return run_all(args, exe, top, rep, mounted, daemons)
    except Exception:
        rep.check("the run completed", False, traceback.format_exc().splitlines())
        return 1
    finally:
        for d in daemons:
            if d.proc.poll() is None:
                d.stop()
        for m in mounted:
            tap.unmount(m)
        print(f"RESULT: {'FAIL' if rep.failed() else 'PASS'}", flush=True)
        if args.json:
            rep.info["checks"] = rep.checks
            rep.info["result"] = "FAIL" if rep.failed() else "PASS"
            with open(args.json, "w") as f:
                json.dump(rep.info, f, indent=1)
        if args.keep:
            print(f"kept {top}", flush=True)
        else:
            shutil.rmtree(top, ignore_errors=True)


def run_all(args, exe, top, rep, mounted, daemons):
    L, models = build_layers(top, args.procs, args.seed)
    before = {i: snapshot(L[i]) for i in (0, 1)}
    d = {n: os.path.join(top, n) for n in ("U", "W", "M", "W2", "K")}
    for p in d.values():
        os.makedirs(p)
    lowers = f"{L[0]}:{L[1]}"
    opts = f"lowerdir={lowers},upperdir={d['U']},workdir={d['W']},threaded={args.threaded}"
    if args.opts:
        opts += "," + args.opts
    log = os.path.join(top, "stratafs.log")

    # ---- the run
    prefix = shlex.split(args.daemon_prefix)
    daemon = Daemon(exe, opts, d["M"], log, prefix)
    daemons.append(daemon)
    mounted.append(d["M"])
    sampler = RssSampler(daemon.proc.pid)
    fds_start = descriptors(daemon.proc.pid)
    sampler.sample()
    sampler.start()
    t0 = time.monotonic()
    results = run_workers(args, d["M"], models, rep, daemon)
    secs = time.monotonic() - t0
    sampler.stop_ev.set()
    sampler.join()
    sampler.sample()
    summarize(results, rep, secs)
    rest_rss, rest_threads, rest_wait = rss_at_rest(daemon.proc.pid)

    rss = [v for _, v in sampler.samples]
    if rss:
        rep.info["rss_kib"] = {"start": rss[0], "peak": max(rss), "end": rss[-1],
                               "rest": rest_rss, "samples": len(rss)}
        print(f"daemon VmRSS: start {rss[0]} KiB, peak {max(rss)} KiB, end {rss[-1]} KiB "
              f"({len(rss)} samples); threads {sampler.threads[0]} to "
              f"{max(t or 0 for t in sampler.threads)}", flush=True)
    fds_rest = descriptors(daemon.proc.pid)
    print(f"daemon at rest (inodes dropped, idle threads ended): VmRSS {rest_rss} KiB, "
          f"{rest_threads} threads, after {rest_wait:.1f} s", flush=True)
    rep.info["rss_samples"] = [(round(t, 1), v, n) for (t, v), n in
                               zip(sampler.samples, sampler.threads)]
    ok, text = rss_trend(sampler.samples, sampler.threads)
    rep.info["rss_trend"] = text
    ok_rest, text_rest = rest_check(rss[0] if rss else None, rest_rss,
                                    sampler.threads[0] if sampler.threads else None,
                                    rest_threads)
    rep.info["rss_rest"] = text_rest
    trace = ["VmRSS KiB:threads, one a second: " +
             " ".join(f"{v}:{n}" for (_, v), n in zip(sampler.samples, sampler.threads))]
    why = rss_unmeasurable(exe, prefix)
    if why:
        rep.skip(f"daemon RSS has no growth trend in the run ({text})", why)
        rep.skip(f"daemon RSS at rest after the run is back near its start ({text_rest})", why)
    else:
        rep.check(f"daemon RSS has no growth trend in the run ({text})", ok,
                  [] if ok else trace)
        rep.check(f"daemon RSS at rest after the run is back near its start ({text_rest})",
                  ok_rest, [] if ok_rest else trace)

    ok_fd, text_fd, diag_fd = descriptors_check(fds_start, fds_rest)
    rep.check(f"daemon at rest holds no descriptor it did not hold at the start ({text_fd})",
              ok_fd, diag_fd)

    # ---- 1: the merged view against the records
    bad_workers = [r["k"] for r in results if not r["own_ok"]]
    t1 = treedump.dump(d["M"])
    probs, nown = check_tree(t1, results, d["M"])
    rep.check(f"merged view matches the records ({len(t1) - 1} names, {nown} own names "
              f"checked{', skipped workers ' + str(bad_workers) if bad_workers else ''})",
              not probs, probs)

    # ---- 2: unmount
    probs = daemon.stop()
    daemons.remove(daemon)
    work = os.path.join(d["W"], "work")
    left = os.listdir(work) if os.path.isdir(work) else []
    rep.check("unmount: the daemon exits 0 and leaves workdir/work empty",
              not probs and not left, probs + [f"left in work/: {left[:10]}"] if left else probs)

    # ---- 3: remount
    daemon = Daemon(exe, opts, d["M"], log, prefix)
    daemons.append(daemon)
    t2 = treedump.dump(d["M"])
    probs, nown2 = check_tree(t2, results, d["M"])
    probs += treedump.diff(t1, t2, names=("before unmount", "after remount"))
    rep.check(f"after a remount: the same tree, and it matches the records", not probs, probs)
    probs = daemon.stop()
    daemons.remove(daemon)
    if probs:
        rep.check("second unmount", False, probs)

    # ---- 4: the kernel overlayfs on the same upper
    rc, out = run(["mount", "-t", "overlay", "overlay", "-o",
                   f"ro,lowerdir={lowers},upperdir={d['U']},workdir={d['W2']},{KERNEL_PIN}",
                   d["K"]])
    if rc != 0:
        rep.skip("the kernel overlayfs on the upper shows the same tree",
                 f"mount -t overlay failed: {out}")
    else:
        mounted.append(d["K"])
        try:
            t3 = treedump.dump(d["K"])
            notes = []
            probs = treedump.diff(t3, t2, names=("kernel", "stratafs"), notes=notes)
        finally:
            rc, out = run(["umount", d["K"]])
            if rc == 0:
                mounted.remove(d["K"])
        rep.check("the kernel overlayfs on the upper shows the same tree", not probs,
                  probs + notes)

    # ---- 5: lowers untouched
    after = {i: snapshot(L[i]) for i in (0, 1)}
    diff = [f"L{i}/{p}" for i in (0, 1) for p in sorted(set(before[i]) | set(after[i]))
            if before[i].get(p) != after[i].get(p)]
    rep.check("the lower layers are unchanged", not diff, diff)
    return 1 if rep.failed() else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
