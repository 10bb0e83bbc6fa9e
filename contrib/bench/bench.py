#!/usr/bin/env python3
"""Benchmark stratafs against the kernel overlayfs and fuse-overlayfs.

    sudo python3 contrib/bench/bench.py [--quick] [--runs N] [--only REGEX] [--fixtures DIR]

Python 3 standard library only.  Must run as root.  See contrib/bench/README.md.
"""

import argparse
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

# Full sizes; --quick divides most of them by 10.
FULL = dict(tree_files=51000, tree_layers=8, bigdir_entries=100000, bigdir_layers=4,
            deep_layers=128, deep_files=10000, create_files=20000, rm_files=20000,
            chmod_files=10000, bigfile_mib=1024, rand_reads=20000,
            tar_mb=500, tar_files=28700, par_procs=4)


def scaled(quick):
    s = dict(FULL)
    if quick:
        for k in ("tree_files", "bigdir_entries", "deep_files", "create_files", "rm_files",
                  "chmod_files", "bigfile_mib", "rand_reads", "tar_mb", "tar_files"):
            s[k] = FULL[k] // 10
        # the untar dominates the quick run time: 1/20 keeps --quick under 3 minutes
        s["tar_mb"], s["tar_files"] = FULL["tar_mb"] // 20, FULL["tar_files"] // 20
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

    def ensure(self, name, builder):
        d = self.path(name)
        marker = os.path.join(d, ".complete-" + FIXTURE_VERSION)
        # the marker lives in the fixture dir but outside every layer
        want = repr(sorted(self.s.items())).encode()
        try:
            with open(marker, "rb") as f:
                if f.read() == want:  # built with the same sizes: reuse
                    return d
        except OSError:
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
        return self.ensure("one", b), ["0"], "hello"

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
        return self.ensure("deep", b), [str(i) for i in range(n)], "hello"

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
        return self.ensure("tree", b), [str(i) for i in range(n)]

    # one directory of bigdir_entries entries merged from bigdir_layers layers
    def bigdir(self):
        n, ne = self.s["bigdir_layers"], self.s["bigdir_entries"]

        def b(d):
            for L in range(n):
                dd = os.path.join(d, str(L), "dir")
                os.makedirs(dd)
                for i in range(L, ne, n):
                    write_file(os.path.join(dd, "entry_%07d" % i), b"")
        return self.ensure("bigdir", b), [str(i) for i in range(n)]

    # one lower with a dir of max(rm, chmod) small files
    def small(self):
        nf = max(self.s["rm_files"], self.s["chmod_files"])

        def b(d):
            dd = os.path.join(d, "0", "d")
            os.makedirs(dd)
            for i in range(nf):
                write_file(os.path.join(dd, "f%06d" % i), b"y" * 64)
        return self.ensure("small", b), ["0"]

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
        return self.ensure("bigfile", b), ["0"]

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
        d = self.ensure("tarball", b)
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


def vm_hwm_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


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
        return vm_hwm_kib(self.pid) if self.pid else None

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
            while os.path.exists("/proc/%d" % self.pid) and time.monotonic() < deadline:
                try:
                    if os.waitpid(self.pid, os.WNOHANG)[0]:
                        break
                except ChildProcessError:
                    pass
                time.sleep(0.01)
            if os.path.exists("/proc/%d" % self.pid):
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


# ---------------------------------------------------------------- workloads
# Each workload: (name, description, fixture-fn, cold, timed-fn(mnt, ctx) -> (note|None)).
# The mount itself is not timed, except by the mount workloads.

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


def w_copyup(mnt, ctx):
    fd = os.open(os.path.join(mnt, "big.bin"), os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"!")
    os.close(fd)


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
    return [
        ("mount-1-lower", one, False, None),
        ("mount-%d-lowers" % s["deep_layers"], deep, False, None),
        ("stat-tree-%d-files-%d-layers-cold" % (s["tree_files"], s["tree_layers"]), tree, True, w_walk_stat),
        ("scandir-%d-entries-%d-layers-cold" % (s["bigdir_entries"], s["bigdir_layers"]), bigdir, True, w_scandir),
        ("stat-%d-bottom-of-%d-layers-cold" % (s["deep_files"], s["deep_layers"]), deep, True, w_stat_bottom),
        ("create-write4k-%d-files" % s["create_files"], one, False, w_create),
        ("rm-rf-%d-lower-files" % s["rm_files"], small, False, w_rm),
        ("randread-4k-x%d-%dMiB-cold" % (s["rand_reads"], s["bigfile_mib"]), bigf, True, w_randread),
        ("seqread-%dMiB-cold" % s["bigfile_mib"], bigf, True, w_seqread),
        ("copyup-%dMiB-append-1-byte-cold" % s["bigfile_mib"], bigf, True, w_copyup),
        ("chmod-copyup-%d-lower-files" % s["chmod_files"], small, False, w_chmod),
        ("untar-%dMB-%d-files" % (s["tar_mb"], s["tar_files"]), one, False, w_untar),
        ("parallel-build-%dproc-%d-files-cold" % (s["par_procs"], s["tree_files"]), tree, True, w_parallel),
    ]


# ---------------------------------------------------------------- driver

def one_run(system, wl, ctx, rundir):
    name, fix, cold, fn = wl
    parent, lowers, probe = fix()[:3]
    m = Mount(system, parent, lowers, rundir)
    try:
        if fn is None:  # the mount workload
            t = m.mount(probe)
            return t, None, m.hwm()
        m.mount(probe)
        if cold:
            drop_caches()
        t0 = time.perf_counter()
        note = fn(m.mnt, ctx)
        t = time.perf_counter() - t0
        hwm = m.hwm()
        return t, note, hwm
    finally:
        m.cleanup()


def fmt_t(t):
    if t is None:
        return "-"
    return "%.0f ms" % (t * 1000) if t < 1 else "%.2f s" % t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1/10 sizes, 2 runs (unless --runs)")
    ap.add_argument("--runs", type=int, help="runs per system and workload (default 5, --quick 2)")
    ap.add_argument("--only", help="regex on workload names")
    ap.add_argument("--fixtures", default="/var/tmp/stratafs-bench", help="cache dir")
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
    if a.only:
        wls = [w for w in wls if re.search(a.only, w[0])]
    if not wls:
        sys.exit("no workload matches --only")
    if any(w[0].startswith("untar") for w in wls):
        ctx["tarball"] = fx.tarball()
    for w in wls:  # build fixtures before any timing
        w[1]()

    started = datetime.datetime.now()
    rows = []
    try:
        for wl in wls:
            name = wl[0]
            res = {sy: [] for sy in SYSTEMS}
            notes = {sy: [] for sy in SYSTEMS}
            hwm = {sy: [] for sy in SYSTEMS}
            err = {}
            for r in range(runs):
                for sy in SYSTEMS:
                    if sy in err:
                        continue
                    rd = os.path.join(root, "runs", sy.replace("-", ""))
                    try:
                        t, note, h = one_run(sy, wl, ctx, rd)
                        res[sy].append(t)
                        notes[sy].append((t, note))
                        if h:
                            hwm[sy].append(h)
                        log("%-45s %-15s run %d: %s %s" % (name, sy, r + 1, fmt_t(t), note or ""))
                    except Exception as e:  # report and continue
                        err[sy] = str(e).replace("|", "/").replace("\n", " ")[:160]
                        log("%-45s %-15s run %d: FAIL %s" % (name, sy, r + 1, err[sy]))
                        if os.environ.get("BENCH_DEBUG"):
                            traceback.print_exc()
            rows.append((name, res, notes, hwm, err))
    finally:
        kill_strays(root)
        shutil.rmtree(os.path.join(root, "runs"), ignore_errors=True)

    # ---- report
    def med(sy, res):
        return statistics.median(res[sy]) if res[sy] else None

    lines = []
    lines.append("stratafs benchmark, %s, %s, %d run(s) per system (median), %s" % (
        started.strftime("%Y-%m-%d %H:%M"), "QUICK mode: sizes scaled down to 1/10 (untar 1/20)" if a.quick else "full sizes",
        runs, "%d CPUs, kernel %s" % (os.cpu_count(), os.uname().release)))
    lines.append("")
    lines.append("| workload | kernel | fuse-overlayfs | stratafs | stratafs/kernel | stratafs/fuse-overlayfs "
                 "| stratafs VmHWM | fuse-overlayfs VmHWM |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, res, notes, hwm, err in rows:
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
        rk = "%.2f" % (ms / mk) if ms and mk else "-"
        rf = "%.2f" % (ms / mf) if ms and mf else "-"
        hs = "%.1f MiB" % (max(hwm["stratafs"]) / 1024) if hwm["stratafs"] else "-"
        hf = "%.1f MiB" % (max(hwm["fuse-overlayfs"]) / 1024) if hwm["fuse-overlayfs"] else "-"
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (name, *cells, rk, rf, hs, hf))
    lines.append("")
    lines.append("Times are medians of the timed part only (mount/unmount excluded except for the "
                 "mount-* rows); ratio > 1 means stratafs is slower. VmHWM is the daemon's peak RSS "
                 "read before unmount (max over runs).")
    text = "\n".join(lines) + "\n"
    print(text)
    out = a.out or os.path.join(HERE, "results-%s%s.md" % (started.strftime("%Y-%m-%d"),
                                                             "-quick" if a.quick else ""))
    with open(out, "a" if os.path.exists(out) else "w") as f:
        f.write(text + "\n")
    log("written to %s" % out)


if __name__ == "__main__":
    main()
