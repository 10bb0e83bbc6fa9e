#!/usr/bin/env python3
"""Benchmark stratafs against the kernel overlayfs and fuse-overlayfs.

    sudo python3 contrib/bench/bench.py [--quick] [--runs N] [--only REGEX] [--fixtures DIR]

Python 3 standard library only.  Must run as root.  See contrib/bench/README.md.
"""

import argparse
import ast
import datetime
import multiprocessing
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time
import traceback
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
STRATAFS = os.path.join(REPO, "build", "stratafs")
FUSE_OVERLAYFS = "/usr/bin/fuse-overlayfs"
SYSTEMS = ["kernel", "fuse-overlayfs", "stratafs"]
FIXTURE_VERSION = "1"
# a run is noted when the hypervisor's steal (all CPUs) exceeds this share of its time
# (and more than one clock tick)
STEAL_NOTE = 0.10
MEMORY_ROUNDS = 4  # the first walk + drop, then 3 repeats

# Full sizes; --quick divides most of them by 10.
FULL = dict(tree_files=51000, tree_layers=8, bigdir_entries=100000, bigdir_layers=4,
            deep_layers=128, deep_files=10000, create_files=20000, rm_files=20000,
            chmod_files=10000, bigfile_mib=1024, rand_reads=20000,
            tar_mb=500, tar_files=28700, par_procs=4, wide_entries=20000, wide_layers=4)


def scaled(quick):
    s = dict(FULL)
    if quick:
        for k in ("tree_files", "bigdir_entries", "deep_files", "create_files", "rm_files",
                  "chmod_files", "bigfile_mib", "rand_reads", "tar_mb", "tar_files"):
            s[k] = FULL[k] // 10
        # the untar dominates the quick run time: 1/20 keeps --quick under 3 minutes
        s["tar_mb"], s["tar_files"] = FULL["tar_mb"] // 20, FULL["tar_files"] // 20
        # fuse-overlayfs copies each file up before removing it: 1/40 for the same reason
        # (chmod shares the fixture directory, which rm -rf removes whole: same count)
        s["rm_files"] = s["chmod_files"] = FULL["rm_files"] // 40
        # wide_entries stays at full size: one lstat is cheap, and the point of that
        # workload is what a 20,000-entry directory costs
    # the rm -rf workload removes the whole fixture directory of max(rm, chmod) files
    assert s["rm_files"] >= s["chmod_files"]
    return s


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (os.path.basename(cmd[0]), r.returncode,
                                                (r.stderr or r.stdout).strip()[:200]))
    return r


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


# ---------------------------------------------------------------- fixtures

def write_file(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if data:
            os.write(fd, data)
    finally:
        os.close(fd)


class Fixtures:
    """Read-only lower layers, built once under ROOT/<full|quick>/ and reused."""

    def __init__(self, root, sizes, quick):
        self.base = os.path.join(root, "quick" if quick else "full")
        self.s = sizes
        os.makedirs(self.base, exist_ok=True)

    def path(self, *p):
        return os.path.join(self.base, *p)

    def ensure(self, name, builder, keys):
        """Build fixture name unless its marker says it was built with the same sizes[keys]."""
        d = self.path(name)
        marker = os.path.join(d, ".complete-" + FIXTURE_VERSION)
        # the marker lives in the fixture dir but outside every layer; it holds all the sizes,
        # but only the keys this fixture depends on are compared, so adding a size (or a
        # workload) does not rebuild the other fixtures
        want = repr(sorted(self.s.items())).encode()
        try:
            with open(marker, "rb") as f:
                got = dict(ast.literal_eval(f.read().decode()))
            if all(got.get(k) == self.s[k] for k in keys):  # built with the same sizes: reuse
                return d
        except (OSError, ValueError, SyntaxError, TypeError):
            pass
        if os.path.exists(d):
            shutil.rmtree(d)
        os.makedirs(d)
        log("building fixture %s ..." % d)
        t = time.monotonic()
        builder(d)
        write_file(marker, want)
        log("  done in %.1f s" % (time.monotonic() - t))
        return d

    # one lower with a few files
    def one(self):
        def b(d):
            os.makedirs(os.path.join(d, "0", "etc"))
            write_file(os.path.join(d, "0", "hello"), b"hello\n")
            for i in range(100):
                write_file(os.path.join(d, "0", "etc", "f%03d" % i), b"x" * 100)
        return self.ensure("one", b, []), ["0"], "hello"

    # 128 layers "0" (top) .. "127" (bottom); deep_files files only in the bottom
    def deep(self):
        n, nf = self.s["deep_layers"], self.s["deep_files"]

        def b(d):
            for L in range(n):
                ld = os.path.join(d, str(L))
                os.makedirs(os.path.join(ld, "files"))
                write_file(os.path.join(ld, "layer%d" % L), b"l\n")
                os.makedirs(os.path.join(ld, "etc", "l%d" % L))
            bot = os.path.join(d, str(n - 1), "files")
            for i in range(nf):
                write_file(os.path.join(bot, "f%05d" % i), b"bottom\n")
            write_file(os.path.join(d, str(n - 1), "hello"), b"hello\n")
        return self.ensure("deep", b, ["deep_layers", "deep_files"]), [str(i) for i in range(n)], "hello"

    # tree of tree_files files over tree_layers layers, shared directory structure
    def tree(self):
        n, nf = self.s["tree_layers"], self.s["tree_files"]
        per = nf // n

        def b(d):
            for L in range(n):
                for i in range(per):
                    top, sub = i % 17, (i // 17) % 23
                    dd = os.path.join(d, str(L), "src", "m%02d" % top, "s%02d" % sub)
                    if i < 17 * 23:
                        os.makedirs(dd, exist_ok=True)
                    write_file(os.path.join(dd, "l%d_%06d.c" % (L, i)), b"int x;\n" * 20)
            # remainder into the top layer so the total is exact
            for i in range(nf - per * n):
                write_file(os.path.join(d, "0", "src", "extra%d.c" % i), b"int y;\n")
        return self.ensure("tree", b, ["tree_layers", "tree_files"]), [str(i) for i in range(n)]

    # one directory of bigdir_entries entries merged from bigdir_layers layers
    def bigdir(self):
        n, ne = self.s["bigdir_layers"], self.s["bigdir_entries"]

        def b(d):
            for L in range(n):
                dd = os.path.join(d, str(L), "dir")
                os.makedirs(dd)
                for i in range(L, ne, n):
                    write_file(os.path.join(dd, "entry_%07d" % i), b"")
        return self.ensure("bigdir", b, ["bigdir_layers", "bigdir_entries"]), [str(i) for i in range(n)]

    # wide_layers layers that all hold "dir"; only the bottom one has entries in it
    def wide(self):
        n, ne = self.s["wide_layers"], self.s["wide_entries"]

        def b(d):
            for L in range(n):
                os.makedirs(os.path.join(d, str(L), "dir"))
            dd = os.path.join(d, str(n - 1), "dir")
            for i in range(ne):
                write_file(os.path.join(dd, "f%05d" % i), b"")
        return self.ensure("wide", b, ["wide_layers", "wide_entries"]), [str(i) for i in range(n)]

    # one lower with a dir of max(rm, chmod) small files
    def small(self):
        nf = max(self.s["rm_files"], self.s["chmod_files"])

        def b(d):
            dd = os.path.join(d, "0", "d")
            os.makedirs(dd)
            for i in range(nf):
                write_file(os.path.join(dd, "f%06d" % i), b"y" * 64)
        return self.ensure("small", b, ["rm_files", "chmod_files"]), ["0"]

    # one lower with a big file
    def bigfile(self):
        mib = self.s["bigfile_mib"]

        def b(d):
            os.makedirs(os.path.join(d, "0"))
            rnd = random.Random(1)
            blocks = [rnd.randbytes(1 << 20) for _ in range(8)]
            with open(os.path.join(d, "0", "big.bin"), "wb") as f:
                for i in range(mib):
                    f.write(blocks[i % 8])
        return self.ensure("bigfile", b, ["bigfile_mib"]), ["0"]

    # tarball (outside the layers) of tar_files files totalling ~tar_mb MB
    def tarball(self):
        nf, mb = self.s["tar_files"], self.s["tar_mb"]

        def b(d):
            rnd = random.Random(2)
            pool = rnd.randbytes(1 << 20)
            avg = mb * 1000 * 1000 // nf
            sizes = [int(rnd.expovariate(1.0 / avg)) for _ in range(nf)]
            k = mb * 1000 * 1000 / max(1, sum(sizes))
            import io
            with tarfile.open(os.path.join(d, "t.tar"), "w", format=tarfile.GNU_FORMAT) as t:
                dirs = set()
                for i, sz in enumerate(sizes):
                    sz = min(int(sz * k), len(pool))
                    dn = "usr/lib/p%03d/d%02d" % (i % 211, (i // 211) % 13)
                    parts = dn.split("/")
                    for j in range(1, len(parts) + 1):
                        p = "/".join(parts[:j])
                        if p not in dirs:
                            dirs.add(p)
                            ti = tarfile.TarInfo(p)
                            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1700000000
                            t.addfile(ti)
                    ti = tarfile.TarInfo("%s/file%05d" % (dn, i))
                    ti.size, ti.mode, ti.mtime = sz, 0o644, 1700000000
                    off = rnd.randrange(0, len(pool) - sz + 1)
                    t.addfile(ti, io.BytesIO(pool[off:off + sz]))
        d = self.ensure("tarball", b, ["tar_files", "tar_mb"])
        return os.path.join(d, "t.tar")


# ---------------------------------------------------------------- mounting

def proc_pids_with(arg):
    """PIDs (not us) whose command line contains arg as a whole argument or option substring."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) in (b"stratafs", b"fuse-overlayfs") and \
                any(arg.encode() in a for a in argv[1:]):
            out.append(int(p))
    return out


def vm_kib(pid, field="VmHWM"):
    """A field of /proc/PID/status in KiB (VmHWM: peak RSS, VmRSS: current RSS)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def alive(pid):
    """pid exists and has not exited: a daemon that forked away from the mount command is
    reaped by PID 1, which on some machines takes a second or more, so a zombie counts as gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def is_mounted(mnt):
    mnt = os.path.realpath(mnt)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4] == mnt:
                return True
    return False


class Mount:
    """A fresh upper/work/mnt for one system and one run."""

    def __init__(self, system, layer_parent, lowers, rundir):
        self.system, self.parent, self.lowers = system, layer_parent, lowers
        self.dir = rundir
        if os.path.exists(rundir):
            shutil.rmtree(rundir)
        for s in ("u", "w", "m"):
            os.makedirs(os.path.join(rundir, s))
        self.upper, self.work, self.mnt = (os.path.join(rundir, s) for s in ("u", "w", "m"))
        self.pid = None
        self.mounted = False

    def cmd(self):
        if self.system == "kernel":
            # relative lower paths (cwd = layer parent): mount data is limited to one page
            opts = "lowerdir=%s,upperdir=%s,workdir=%s" % (":".join(self.lowers), self.upper, self.work)
            return ["mount", "-t", "overlay", "overlay", "-o", opts, self.mnt]
        lowers = ":".join(os.path.join(self.parent, l) for l in self.lowers)
        opts = "lowerdir=%s,upperdir=%s,workdir=%s" % (lowers, self.upper, self.work)
        exe = STRATAFS if self.system == "stratafs" else FUSE_OVERLAYFS
        return [exe, "-o", opts, self.mnt]

    def mount(self, probe=None):
        """Mount; returns seconds from spawning the mount command until lstat(probe) answers."""
        parent_dev = os.stat(self.dir).st_dev
        t0 = time.perf_counter()
        r = subprocess.run(self.cmd(), cwd=self.parent, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("mount failed: exit %d: %s" % (r.returncode, r.stderr.strip()[:200]))
        self.mounted = True
        target = os.path.join(self.mnt, probe) if probe else self.mnt
        deadline = time.monotonic() + 30
        while True:
            try:
                st = os.lstat(target)
                if st.st_dev != parent_dev or self.system == "kernel":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mount did not answer within 30 s")
            time.sleep(0.0005)
        t = time.perf_counter() - t0
        if self.system != "kernel":
            pids = proc_pids_with(self.mnt)
            self.pid = pids[0] if pids else None
        return t

    def hwm(self):
        return vm_kib(self.pid) if self.pid else None

    def umount(self):
        if self.mounted or is_mounted(self.mnt):
            if self.system == "kernel":
                r = subprocess.run(["umount", self.mnt], capture_output=True)
            else:
                r = subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True)
            if r.returncode != 0 and is_mounted(self.mnt):
                subprocess.run(["umount", "-l", self.mnt], capture_output=True)
            self.mounted = False
        if self.pid:
            deadline = time.monotonic() + 10
            while alive(self.pid) and time.monotonic() < deadline:
                try:
                    if os.waitpid(self.pid, os.WNOHANG)[0]:
                        break
                except ChildProcessError:
                    pass
                time.sleep(0.01)
            if alive(self.pid):
                log("warning: daemon %d still alive after unmount, killing" % self.pid)
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except OSError:
                    pass
        for p in proc_pids_with(self.mnt):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass

    def cleanup(self):
        try:
            self.umount()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def kill_strays(root):
    for p in proc_pids_with(root):
        log("killing stray daemon %d" % p)
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    runs = os.path.join(root, "runs")
    if os.path.isdir(runs):
        with open("/proc/self/mountinfo") as f:
            mps = [l.split()[4] for l in f]
        for mp in reversed(mps):
            if mp.startswith(os.path.realpath(runs) + "/"):
                log("unmounting stray %s" % mp)
                subprocess.run(["umount", "-l", mp], capture_output=True)


def mount_runs_fs(root, upper_fs):
    """The run directories (upper, work, mount point of every run) go on
    a fresh ext4 with a journal, loop-mounted at ROOT/runs.  The reason is
    measured: an ext4 without a journal (this machine's root filesystem)
    will not reuse an inode deleted less than 60 s ago (300 s while its
    inode table block is dirty) and scans past each such inode on every
    allocation, so creating files after a run deleted thousands costs
    about 1 ms per file, for whichever system comes next (the kernel's
    overlayfs went from 75 us to 900-1150 us per create).  --upper-fs root
    keeps the run directories on ROOT's filesystem."""
    runs = os.path.join(root, "runs")
    os.makedirs(runs, exist_ok=True)
    if upper_fs == "root":
        return None
    img = os.path.join(root, "runs.img")
    if is_mounted(runs):
        subprocess.run(["umount", runs], capture_output=True)
    if os.path.exists(img):
        os.unlink(img)
    with open(img, "wb") as f:
        f.truncate(24 << 30)
    run(["mkfs.ext4", "-q", "-F", "-i", "65536", "-E",
         "lazy_itable_init=0,lazy_journal_init=0", img])
    run(["mount", "-o", "loop", img, runs])
    log("run directories on a journaled ext4 loop image (%s)" % img)
    return img


def umount_runs_fs(root, img):
    if img is None:
        return
    runs = os.path.join(root, "runs")
    subprocess.run(["umount", runs], capture_output=True)
    try:
        os.unlink(img)
    except OSError:
        pass


# ---------------------------------------------------------------- workloads
# Each workload: (name, fixture thunk, mode, timed-fn(mnt, ctx) -> (note|None)).
# mode "cold": caches dropped after the mount; "warm": fn runs once untimed first, on the
# same mount; None: neither. The mount itself is not timed, except by the mount workloads.

def w_walk_stat(mnt, ctx):
    n = 0
    for dp, dns, fns in os.walk(mnt):
        for f in fns:
            os.lstat(os.path.join(dp, f))
            n += 1
    if n != ctx["s"]["tree_files"]:
        raise RuntimeError("saw %d files, expected %d" % (n, ctx["s"]["tree_files"]))


def w_scandir(mnt, ctx):
    with os.scandir(os.path.join(mnt, "dir")) as it:
        n = sum(1 for _ in it)
    if n != ctx["s"]["bigdir_entries"]:
        raise RuntimeError("listed %d entries, expected %d" % (n, ctx["s"]["bigdir_entries"]))


def w_stat_bottom(mnt, ctx):
    d = os.path.join(mnt, "files")
    for i in range(ctx["s"]["deep_files"]):
        os.lstat(os.path.join(d, "f%05d" % i))


def w_stat_wide(mnt, ctx):
    # one name in the middle of the bottom layer's 20,000-entry directory
    st = os.lstat(os.path.join(mnt, "dir", "f%05d" % (ctx["s"]["wide_entries"] // 2)))
    if not (st.st_mode & 0o170000 == 0o100000):
        raise RuntimeError("not a regular file")


def w_create(mnt, ctx):
    d = os.path.join(mnt, "new")
    os.mkdir(d)
    buf = b"c" * 4096
    for i in range(ctx["s"]["create_files"]):
        fd = os.open(os.path.join(d, "n%06d" % i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, buf)
        os.close(fd)


def w_rm(mnt, ctx):
    run(["rm", "-rf", os.path.join(mnt, "d")])
    if os.path.exists(os.path.join(mnt, "d")):
        raise RuntimeError("d still exists after rm -rf")


def w_randread(mnt, ctx):
    n = ctx["s"]["rand_reads"]
    blocks = ctx["s"]["bigfile_mib"] * 256
    rnd = random.Random(3)
    offs = [rnd.randrange(blocks) * 4096 for _ in range(n)]
    fd = os.open(os.path.join(mnt, "big.bin"), os.O_RDONLY)
    try:
        t0 = time.perf_counter()
        for o in offs:
            if len(os.pread(fd, 4096, o)) != 4096:
                raise RuntimeError("short read")
        t = time.perf_counter() - t0
    finally:
        os.close(fd)
    return "%.0f IOPS" % (n / t)


def w_seqread(mnt, ctx):
    t0 = time.perf_counter()
    total = 0
    with open(os.path.join(mnt, "big.bin"), "rb", buffering=0) as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            total += len(b)
    t = time.perf_counter() - t0
    if total != ctx["s"]["bigfile_mib"] << 20:
        raise RuntimeError("read %d bytes" % total)
    return "%.0f MiB/s" % (total / t / (1 << 20))


def w_seqwrite(mnt, ctx):
    # a new file in 1 MiB writes, fsync'd before close (the fsync is timed)
    size = ctx["s"]["bigfile_mib"] << 20
    buf = random.Random(4).randbytes(1 << 20)
    t0 = time.perf_counter()
    fd = os.open(os.path.join(mnt, "seq.bin"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        done = 0
        while done < size:
            done += os.write(fd, buf[:min(len(buf), size - done)])
        os.fsync(fd)
        if os.fstat(fd).st_size != size:
            raise RuntimeError("size %d after writing %d" % (os.fstat(fd).st_size, size))
    finally:
        os.close(fd)
    t = time.perf_counter() - t0
    return "%.0f MiB/s" % (size / t / (1 << 20))


def w_copyup(mnt, ctx):
    # the copy-up is made durable too: the kernel's own copy-up fsyncs the copy
    p = os.path.join(mnt, "big.bin")
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"!")
        os.fsync(fd)
    finally:
        os.close(fd)
    if os.lstat(p).st_size != (ctx["s"]["bigfile_mib"] << 20) + 1:
        raise RuntimeError("size %d after the append" % os.lstat(p).st_size)


def w_chmod(mnt, ctx):
    d = os.path.join(mnt, "d")
    for i in range(ctx["s"]["chmod_files"]):
        os.chmod(os.path.join(d, "f%06d" % i), 0o600)


def w_untar(mnt, ctx):
    run(["tar", "-xf", ctx["tarball"], "-C", mnt])


def _par_worker(mnt, k, nproc, q):
    try:
        n = 0
        buf = b"o" * 4096
        for dp, dns, fns in os.walk(os.path.join(mnt, "src")):
            dns.sort()
            for j, f in enumerate(sorted(fns)):
                if not f.endswith(".c") or zlib.crc32(f.encode()) % nproc != k:
                    continue
                p = os.path.join(dp, f)
                os.lstat(p)
                with open(p, "rb") as fh:
                    fh.read()
                n += 1
                if n % 4 == 0:  # "compile" one in four sources
                    fd = os.open(p[:-2] + ".o", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    os.write(fd, buf)
                    os.close(fd)
                    os.lstat(p[:-2] + ".o")
        q.put((k, n, None))
    except Exception as e:  # noqa
        q.put((k, 0, "%s: %s" % (type(e).__name__, e)))


def w_parallel(mnt, ctx):
    nproc = ctx["s"]["par_procs"]
    ctxm = multiprocessing.get_context("fork")
    q = ctxm.Queue()
    ps = [ctxm.Process(target=_par_worker, args=(mnt, k, nproc, q)) for k in range(nproc)]
    for p in ps:
        p.start()
    res = [q.get(timeout=600) for _ in ps]
    for p in ps:
        p.join()
    errs = [e for _, _, e in res if e]
    if errs:
        raise RuntimeError(errs[0])
    n = sum(r[1] for r in res)
    if n != ctx["s"]["tree_files"]:
        raise RuntimeError("workers read %d files, expected %d" % (n, ctx["s"]["tree_files"]))


def workloads(fx, s):
    """List of (name, fixture thunk, cold, fn). A fixture thunk returns (parent, lowers, probe)."""
    one = lambda: fx.one()
    deep = lambda: fx.deep()
    tree = lambda: fx.tree() + ("src",)
    bigdir = lambda: fx.bigdir() + ("dir",)
    small = lambda: fx.small() + ("d",)
    bigf = lambda: fx.bigfile() + ("big.bin",)
    wide = lambda: fx.wide() + ("dir",)
    tr = "%d-files-%d-layers" % (s["tree_files"], s["tree_layers"])
    bd = "%d-entries-%d-layers" % (s["bigdir_entries"], s["bigdir_layers"])
    return [
        ("mount-1-lower", one, None, None),
        ("mount-%d-lowers" % s["deep_layers"], deep, None, None),
        ("stat-tree-%s-cold" % tr, tree, "cold", w_walk_stat),
        ("stat-tree-%s-warm" % tr, tree, "warm", w_walk_stat),
        ("scandir-%s-cold" % bd, bigdir, "cold", w_scandir),
        ("scandir-%s-warm" % bd, bigdir, "warm", w_scandir),
        ("stat-%d-bottom-of-%d-layers-cold" % (s["deep_files"], s["deep_layers"]), deep, "cold", w_stat_bottom),
        ("stat-1-name-in-%d-entry-dir-cold" % s["wide_entries"], wide, "cold", w_stat_wide),
        ("create-write4k-%d-files" % s["create_files"], one, None, w_create),
        ("rm-rf-%d-lower-files" % s["rm_files"], small, None, w_rm),
        ("randread-4k-x%d-%dMiB-cold" % (s["rand_reads"], s["bigfile_mib"]), bigf, "cold", w_randread),
        ("seqread-%dMiB-cold" % s["bigfile_mib"], bigf, "cold", w_seqread),
        ("seqwrite-%dMiB" % s["bigfile_mib"], one, None, w_seqwrite),
        ("copyup-%dMiB-append-1-byte-cold" % s["bigfile_mib"], bigf, "cold", w_copyup),
        ("chmod-copyup-%d-lower-files" % s["chmod_files"], small, None, w_chmod),
        ("untar-%dMB-%d-files" % (s["tar_mb"], s["tar_files"]), one, None, w_untar),
        ("parallel-build-%dproc-%d-files-cold" % (s["par_procs"], s["tree_files"]), tree, "cold", w_parallel),
    ]


# Goals of issue 5, checked on the medians: (workload name prefix, goal, test).
# r_fuse / r_kernel are the ratios stratafs/other, t the stratafs median in seconds.
GOALS = [
    # stratafs faster than fuse-overlayfs on every workload
    ("", "faster than fuse-overlayfs", lambda m: m["r_fuse"] < 1),
    # ... and at least 2x faster on the cold metadata workloads
    ("stat-tree-", "2x faster than fuse-overlayfs", lambda m: m["r_fuse"] <= 0.5, "cold"),
    ("scandir-", "2x faster than fuse-overlayfs", lambda m: m["r_fuse"] <= 0.5, "cold"),
    ("create-write4k-", "2x faster than fuse-overlayfs", lambda m: m["r_fuse"] <= 0.5),
    ("rm-rf-", "2x faster than fuse-overlayfs", lambda m: m["r_fuse"] <= 0.5),
    ("untar-", "2x faster than fuse-overlayfs", lambda m: m["r_fuse"] <= 0.5),
    ("mount-128-", "2x faster than fuse-overlayfs", lambda m: m["r_fuse"] <= 0.5),
    # against the kernel
    ("stat-tree-", "within 1.5x of the kernel", lambda m: m["r_kernel"] <= 1.5),  # cold and warm
    ("scandir-", "within 1.5x of the kernel", lambda m: m["r_kernel"] <= 1.5, "warm"),
    ("scandir-", "within 2x of the kernel", lambda m: m["r_kernel"] <= 2, "cold"),
    ("rm-rf-", "within 1.5x of the kernel", lambda m: m["r_kernel"] <= 1.5),
    ("untar-", "within 1.5x of the kernel", lambda m: m["r_kernel"] <= 1.5),
    ("seqread-", "within 1.25x of the kernel", lambda m: m["r_kernel"] <= 1.25),
    ("randread-", "within 1.25x of the kernel", lambda m: m["r_kernel"] <= 1.25),
    ("seqwrite-", "within 1.25x of the kernel", lambda m: m["r_kernel"] <= 1.25),
    ("copyup-", "within 1.1x of the kernel", lambda m: m["r_kernel"] <= 1.1),
    ("create-write4k-", "within 3x of the kernel", lambda m: m["r_kernel"] <= 3),
    ("mount-128-", "ready in under 5 ms", lambda m: m["t"] < 0.005),
]


def goals_for(name):
    """The goals that apply to workload name: list of (goal text, test)."""
    out = []
    for g in GOALS:
        prefix, text, test = g[:3]
        suffix = g[3] if len(g) > 3 else None
        if name.startswith(prefix) and (suffix is None or name.endswith("-" + suffix)):
            out.append((text, test))
    return out


# ---------------------------------------------------------------- driver

def cpu_steal():
    """Seconds of CPU time the hypervisor gave to others (all CPUs), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def one_run(system, wl, ctx, rundir):
    """(seconds, note, VmHWM KiB, host steal seconds during the timed part)"""
    name, fix, mode, fn = wl
    parent, lowers, probe = fix()[:3]
    m = Mount(system, parent, lowers, rundir)
    try:
        if fn is None:  # the mount workload
            s0 = cpu_steal()
            t = m.mount(probe)
            return t, None, m.hwm(), cpu_steal() - s0
        m.mount(probe)
        if mode == "warm":
            fn(m.mnt, ctx)  # untimed first pass fills the caches
        if mode == "cold":
            drop_caches()
        else:
            os.sync()  # earlier runs' dirty data is not flushed inside the timed part
        s0 = cpu_steal()
        t0 = time.perf_counter()
        note = fn(m.mnt, ctx)
        t = time.perf_counter() - t0
        steal = cpu_steal() - s0
        hwm = m.hwm()
        return t, note, hwm, steal
    finally:
        m.cleanup()


def fmt_t(t):
    if t is None:
        return "-"
    if t < 0.01:
        return "%.2f ms" % (t * 1000)
    return "%.0f ms" % (t * 1000) if t < 1 else "%.2f s" % t


def fmt_ratio(r):
    return "%.2f" % r if r >= 0.1 else "%.2g" % r  # 0.0032, not 0.00


def fmt_kib(k):
    return "-" if k is None else "%.1f MiB" % (k / 1024)


# ---------------------------------------------------------------- memory

def rss_settled(pid, limit=10.0):
    """VmRSS once it has stopped changing for 1 s (or after limit seconds): the kernel's
    FORGETs after drop_caches reach the daemon asynchronously."""
    t0 = time.monotonic()
    last, since = vm_kib(pid, "VmRSS"), time.monotonic()
    while time.monotonic() - t0 < limit:
        time.sleep(0.2)
        cur = vm_kib(pid, "VmRSS")
        if cur != last:
            last, since = cur, time.monotonic()
        elif time.monotonic() - since >= 1.0:
            break
    return last, time.monotonic() - t0


def fuse_inodes():
    """Active fuse_inode slab objects, machine-wide: shows that the kernel did forget."""
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                if line.startswith("fuse_inode "):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def drop_inodes():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")


def memory_run(system, fx, ctx, rundir, rounds):
    """RSS of the daemon over rounds of (cold walk + lstat of the tree, drop the inodes)."""
    parent, lowers, probe = fx.tree() + ("src",)
    m = Mount(system, parent, lowers, rundir)
    try:
        m.mount(probe)
        if not m.pid:
            raise RuntimeError("daemon pid not found")
        drop_caches()
        start, _ = rss_settled(m.pid, 3.0)
        res = {"start": start, "walk": [], "drop": [], "settle": []}
        for r in range(rounds):
            w_walk_stat(m.mnt, ctx)
            res["walk"].append(vm_kib(m.pid, "VmRSS"))
            fi = fuse_inodes()
            drop_inodes()
            rss, waited = rss_settled(m.pid)
            res["drop"].append(rss)
            res["settle"].append(waited)
            log("%-45s %-15s round %d: RSS start %s, after walk %s, after drop %s (settled in %.1f s); "
                "fuse_inode slab objects (all mounts) %s -> %s"
                % ("memory", system, r + 1, fmt_kib(start), fmt_kib(res["walk"][-1]),
                   fmt_kib(rss), waited, fi, fuse_inodes()))
        res["hwm"] = m.hwm()
        return res
    finally:
        m.cleanup()


def memory_goals(mem, hwm_stat, hwm_from):
    """(goal, measured, met) rows for the memory goals of issue 5."""
    out = []
    st, fo = mem.get("stratafs"), mem.get("fuse-overlayfs")
    hs, hf = hwm_stat.get("stratafs"), hwm_stat.get("fuse-overlayfs")
    if hs and hf:
        out.append(("peak RSS at most half of fuse-overlayfs's (%s)" % hwm_from,
                    "%s vs %s (%.2f)" % (fmt_kib(hs), fmt_kib(hf), hs / hf), hs <= hf / 2))
    if st and not isinstance(st, str):
        grow = max(0, st["walk"][0] - st["start"])
        back = st["drop"][0] - st["start"]
        # "near": within 20 % of what the walk added, or 512 KiB (the allocator keeps some)
        out.append(("RSS back near its start after the kernel forgets the inodes",
                    "start %s, +%s after the walk, %+.1f MiB after the drop" % (
                        fmt_kib(st["start"]), fmt_kib(grow), back / 1024),
                    back <= max(512, grow * 0.2)))
        creep = st["drop"][-1] - st["drop"][0]
        out.append(("no growth across repeated walks (RSS after drop, last round vs first)",
                    "%s -> %s" % (fmt_kib(st["drop"][0]), fmt_kib(st["drop"][-1])),
                    creep <= max(256, grow * 0.05)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="1/10 sizes (untar 1/20, rm/chmod 1/40), 2 runs (unless --runs)")
    ap.add_argument("--runs", type=int, help="runs per system and workload (default 5, --quick 2)")
    ap.add_argument("--only", help="regex on workload names")
    ap.add_argument("--memory-rounds", type=int, default=MEMORY_ROUNDS,
                    help="walk + drop rounds of the memory workload (default %d)" % MEMORY_ROUNDS)
    ap.add_argument("--fixtures", default="/var/tmp/stratafs-bench", help="cache dir")
    ap.add_argument("--upper-fs", choices=("loop", "root"), default="loop",
                    help="where upper/work dirs live: a fresh journaled ext4 loop image "
                    "(default) or the fixtures' filesystem (see mount_runs_fs)")
    ap.add_argument("--out", help="markdown output file (default contrib/bench/results-DATE[-quick].md)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench.py: must run as root")
    runs = a.runs or (2 if a.quick else 5)
    if not os.path.exists(FUSE_OVERLAYFS):
        log("installing fuse-overlayfs ...")
        subprocess.run(["apt-get", "install", "-y", "fuse-overlayfs"], check=False)
    if not os.access(STRATAFS, os.X_OK):
        log("building stratafs ...")
        if not os.path.isdir(os.path.join(REPO, "build")):
            run(["meson", "setup", "build"], cwd=REPO)
        run(["meson", "compile", "-C", "build"], cwd=REPO)
    for mod in ("overlay", "fuse"):
        try:
            subprocess.run(["modprobe", mod], capture_output=True)
        except OSError:
            pass

    root = os.path.abspath(a.fixtures)
    os.makedirs(root, exist_ok=True)
    kill_strays(root)
    s = scaled(a.quick)
    fx = Fixtures(root, s, a.quick)
    ctx = {"s": s}
    wls = workloads(fx, s)
    memname = "memory-tree-%d-files-%d-layers" % (s["tree_files"], s["tree_layers"])
    do_memory = not a.only or re.search(a.only, memname)
    if a.only:
        wls = [w for w in wls if re.search(a.only, w[0])]
    if not wls and not do_memory:
        sys.exit("no workload matches --only")
    if any(w[0].startswith("untar") for w in wls):
        ctx["tarball"] = fx.tarball()
    for w in wls:  # build fixtures before any timing
        w[1]()
    if do_memory:
        fx.tree()

    started = datetime.datetime.now()
    t_start = time.monotonic()
    rows = []
    mem = {}
    runs_img = mount_runs_fs(root, a.upper_fs)
    try:
        for wl in wls:
            name = wl[0]
            t_wl = time.monotonic()
            res = {sy: [] for sy in SYSTEMS}
            notes = {sy: [] for sy in SYSTEMS}
            hwm = {sy: [] for sy in SYSTEMS}
            steal = {sy: [] for sy in SYSTEMS}
            err = {}
            for r in range(runs):
                for sy in SYSTEMS:
                    if sy in err:
                        continue
                    rd = os.path.join(root, "runs", sy.replace("-", ""))
                    try:
                        t, note, h, st = one_run(sy, wl, ctx, rd)
                        res[sy].append(t)
                        steal[sy].append(st)
                        notes[sy].append((t, note))
                        if h:
                            hwm[sy].append(h)
                        log("%-45s %-15s run %d: %s %s%s" % (name, sy, r + 1, fmt_t(t), note or "",
                                                             " (host steal %.2f s)" % st if st else ""))
                    except Exception as e:  # report and continue
                        err[sy] = str(e).replace("|", "/").replace("\n", " ")[:160]
                        log("%-45s %-15s run %d: FAIL %s" % (name, sy, r + 1, err[sy]))
                        if os.environ.get("BENCH_DEBUG"):
                            traceback.print_exc()
            rows.append((name, res, notes, hwm, err, steal))
            log("%-45s wall %.1f s (all systems and runs, mounts included)" % (name, time.monotonic() - t_wl))
        if do_memory:
            t_wl = time.monotonic()
            for sy in ("fuse-overlayfs", "stratafs"):
                try:
                    mem[sy] = memory_run(sy, fx, ctx, os.path.join(root, "runs", sy.replace("-", "")),
                                         a.memory_rounds)
                except Exception as e:  # report and continue
                    mem[sy] = str(e).replace("|", "/").replace("\n", " ")[:160]
                    log("%-45s %-15s FAIL %s" % (memname, sy, mem[sy]))
                    if os.environ.get("BENCH_DEBUG"):
                        traceback.print_exc()
            log("%-45s wall %.1f s" % (memname, time.monotonic() - t_wl))
    finally:
        kill_strays(root)
        shutil.rmtree(os.path.join(root, "runs"), ignore_errors=True)
        umount_runs_fs(root, runs_img)

    # ---- report
    def med(sy, res):
        return statistics.median(res[sy]) if res[sy] else None

    lines = []
    lines.append("stratafs benchmark, %s, %s, %d run(s) per system (median), %s" % (
        started.strftime("%Y-%m-%d %H:%M"), "QUICK mode: sizes scaled down to 1/10 (untar 1/20, rm and chmod 1/40, 20000-entry dir kept)" if a.quick else "full sizes",
        runs, "%d CPUs, kernel %s" % (os.cpu_count(), os.uname().release)))
    lines.append("")
    lines.append("Lower layers on the filesystem of %s; upper and work directories %s." % (
        root, "on a fresh journaled ext4 loop image" if runs_img else "beside them"))
    lines.append("")
    lines.append("| workload | kernel | fuse-overlayfs | stratafs | stratafs/kernel | stratafs/fuse-overlayfs "
                 "| stratafs VmHWM | fuse-overlayfs VmHWM | goals |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    goal_rows = []  # (workload, goal, measured, met or None)
    hwm_stat = {}
    stolen = []  # notes on runs the hypervisor slowed
    # steal is counted in clock ticks: one tick alone says little about a short run
    tick = 1 / os.sysconf("SC_CLK_TCK")
    for name, res, notes, hwm, err, steal in rows:
        hit = {sy: [i for i, st in enumerate(steal[sy]) if st > max(STEAL_NOTE * res[sy][i], 1.5 * tick)]
               for sy in SYSTEMS}
        n_hit = sum(len(v) for v in hit.values())
        if n_hit:
            clean = []
            for sy in SYSTEMS:
                kept = [t for i, t in enumerate(res[sy]) if i not in hit[sy]]
                clean.append("%s %s" % (sy, fmt_t(statistics.median(kept)) if kept else "-"))
            stolen.append("- %s: %d of %d runs lost more than %d %% of their time to host steal (up to %.2f s); "
                          "medians of the other runs: %s" % (
                              name, n_hit, sum(len(res[sy]) for sy in SYSTEMS), STEAL_NOTE * 100,
                              max(max(steal[sy]) for sy in SYSTEMS if steal[sy]), ", ".join(clean)))
        cells = []
        for sy in SYSTEMS:
            if sy in err:
                cells.append("fail: " + err[sy])
            else:
                m = med(sy, res)
                c = fmt_t(m)
                nt = min(notes[sy], key=lambda x: abs(x[0] - m))[1] if notes[sy] else None
                if nt:  # throughput of the run closest to the median
                    c += " (%s)" % nt
                cells.append(c)
        mk, mf, ms = (med(sy, res) if sy not in err else None for sy in SYSTEMS)
        rk = fmt_ratio(ms / mk) if ms and mk else "-"
        rf = fmt_ratio(ms / mf) if ms and mf else "-"
        hs = "%.1f MiB" % (max(hwm["stratafs"]) / 1024) if hwm["stratafs"] else "-"
        hf = "%.1f MiB" % (max(hwm["fuse-overlayfs"]) / 1024) if hwm["fuse-overlayfs"] else "-"
        if name.startswith("stat-tree-") and name.endswith("-cold"):
            hwm_stat = {sy: max(hwm[sy]) for sy in ("stratafs", "fuse-overlayfs") if hwm[sy]}
        gcell = []
        for text, test in goals_for(name):
            vals = {"t": ms, "r_kernel": ms / mk if ms and mk else None,
                    "r_fuse": ms / mf if ms and mf else None}
            try:
                met = bool(test(vals))
            except TypeError:  # a system failed or did not run: no median to compare
                met = None
            verdict = {True: "met", False: "NOT met", None: "n/a"}[met]
            gcell.append("%s: %s" % (text, verdict))
            measured = {"ready in under 5 ms": fmt_t(ms)}.get(
                text, "%s x" % (rk if "kernel" in text else rf))
            goal_rows.append((name, text, measured, met))
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, *cells, rk, rf, hs, hf, "; ".join(gcell)))
    if rows:
        lines.append("")
        lines.append("Times are medians of the timed part only (mount/unmount excluded except for the "
                     "mount-* rows); ratio > 1 means stratafs is slower. VmHWM is the daemon's peak RSS "
                     "read before unmount (max over runs).")
        if stolen:
            lines.append("")
            lines.append("Host steal (`/proc/stat`: CPU time the hypervisor gave to other guests) during the "
                         "timed part; such runs are slower for reasons outside the systems compared:")
            lines.append("")
            lines.extend(stolen)
    else:
        lines = lines[:1]

    if mem:
        files = s["tree_files"]
        lines.append("")
        lines.append("Memory (%s): daemon VmRSS on a mount of the %d-file, %d-layer tree: at the start, "
                     "after a cold walk + lstat of every file, and after `echo 2 > /proc/sys/vm/drop_caches` "
                     "(the kernel forgets the inodes); then %d more rounds of walk + drop on the same mount."
                     % (memname, files, s["tree_layers"], a.memory_rounds - 1))
        lines.append("")
        hdr = ["daemon", "start", "after walk", "per 100,000 inodes", "after drop"]
        hdr += ["round %d walk / drop" % (r + 1) for r in range(1, a.memory_rounds)]
        hdr += ["VmHWM"]
        lines.append("| " + " | ".join(hdr) + " |")
        lines.append("|---|" + "---:|" * (len(hdr) - 1))
        for sy in ("fuse-overlayfs", "stratafs"):
            r = mem.get(sy)
            if r is None:
                continue
            if isinstance(r, str):
                lines.append("| %s | fail: %s |%s" % (sy, r, " |" * (len(hdr) - 2)))
                continue
            per = (r["walk"][0] - r["start"]) * 100000 / files
            cells = [sy, fmt_kib(r["start"]), fmt_kib(r["walk"][0]), fmt_kib(per), fmt_kib(r["drop"][0])]
            cells += ["%s / %s" % (fmt_kib(w), fmt_kib(d)) for w, d in zip(r["walk"][1:], r["drop"][1:])]
            cells += [fmt_kib(r["hwm"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("\"per 100,000 inodes\" = (after walk - start) * 100000 / %d files. \"after drop\" is read "
                     "once VmRSS has not changed for 1 s (at most 10 s after the drop)." % files)
    hwm_from = "VmHWM of stat-tree-cold"
    if not hwm_stat:  # stat-tree-cold not run: its peak RSS comes from the memory rounds
        hwm_stat = {sy: r["hwm"] for sy, r in mem.items() if not isinstance(r, str) and r["hwm"]}
        hwm_from = "VmHWM of the memory rounds"
    for text, measured, met in memory_goals(mem, hwm_stat, hwm_from):
        goal_rows.append((memname if mem else "stat-tree-cold", text, measured, met))

    if goal_rows:
        lines.append("")
        nmet = sum(1 for g in goal_rows if g[3])
        lines.append("Goals of issue 5 (on the medians above): %d of %d met, %d not met, %d n/a." % (
            nmet, len(goal_rows), sum(1 for g in goal_rows if g[3] is False),
            sum(1 for g in goal_rows if g[3] is None)))
        lines.append("")
        lines.append("| workload | goal | stratafs | met |")
        lines.append("|---|---|---|---|")
        for name, text, measured, met in goal_rows:
            lines.append("| %s | %s | %s | %s |" % (name, text, measured,
                                                   {True: "yes", False: "**no**", None: "n/a"}[met]))
    lines.append("")
    lines.append("Wall time of this benchmark: %.0f s." % (time.monotonic() - t_start))
    text = "\n".join(lines) + "\n"
    print(text)
    out = a.out or os.path.join(HERE, "results-%s%s.md" % (started.strftime("%Y-%m-%d"),
                                                             "-quick" if a.quick else ""))
    with open(out, "a" if os.path.exists(out) else "w") as f:
        f.write(text + "\n")
    log("written to %s" % out)


if __name__ == "__main__":
    main()
