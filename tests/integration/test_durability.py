#!/usr/bin/env python3
"""Durability of the writable union: which fsyncs reach the upper layer.

Two observers:
  - strace -f -y on the daemon: its fsync/fdatasync/syncfs calls with the
    path of each fd, and its renames, in order;
  - the ext4_sync_file_enter tracepoint (a private tracefs instance), when
    the upper is on ext4: which upper inodes the kernel was asked to sync,
    by anyone.  This one also sees the kernel overlayfs, whose fsyncs
    strace cannot see, so its lines compare stratafs with the kernel.

Checked:
  fsync=1 (default): fsync, fdatasync of a file and fsync of a directory
    (the root, a merged directory) reach the upper objects, as on the
    kernel overlayfs;
  volatile and fsync=0: nothing is synced, not even by a copy-up (the
    kernel's volatile mount syncs nothing either);
  copy-up: the copy is fsync'd in workdir/work before the rename that
    publishes it (the kernel syncs its copy too, unless volatile); after
    the user's fsync or fdatasync of a copied-up file, the upper parent
    directory (and the parents of directories copied up with it) has been
    fsync'd after the publishing rename, so the new directory entry is
    durable; the parent is synced once, not at every fsync; a copy-up the
    user never fsyncs syncs no directory.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time

from tap import (Tap, daemon_pids, is_mounted, mount_stratafs, require_root_fuse,
                 unmount, wait_gone)

require_root_fuse()
t = Tap()
top = os.path.realpath(tempfile.mkdtemp(prefix="stratafs-dur-"))
os.chmod(top, 0o755)
L = os.path.join(top, "lower")
SYNCS = ("fsync", "fdatasync", "syncfs")


def mk(rel, data=None):
    p = os.path.join(L, rel)
    if data is None:
        os.makedirs(p, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)


DATA = os.urandom(256 << 10)
for name in ("cu-file", "chm", "nofsync", "deep/sub/file", "kchm", "vol-file", "vol-chm"):
    mk(name, DATA)
mk("m/x", b"x")
mk("m2/x", b"x")


def skip_line(name, reason):
    t.n += 1
    print(f"ok {t.n} - {name} # SKIP {reason}", flush=True)


def fstype(path):
    """The type of the filesystem holding path (longest mount point)."""
    path = os.path.realpath(path)
    best, typ = "", None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            a, b = line.split(" - ", 1)
            mp = a.split()[4]
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                best, typ = mp, b.split()[0]
    return typ


# --- observers ---------------------------------------------------------------------
class Strace:
    """strace -f -y attached to every thread of the daemon of mnt."""

    def __init__(self, mnt):
        self.mnt = mnt
        self.pid = daemon_pids(mnt)[0]
        fd, self.log = tempfile.mkstemp(prefix="strace-", dir=top)
        os.close(fd)
        self.errf = open(self.log + ".err", "w+")
        self.p = subprocess.Popen(
            ["strace", "-f", "-y", "-s", "512", "-e",
             "trace=fsync,fdatasync,syncfs,rename,renameat,renameat2",
             "-o", self.log, "-p", str(self.pid)],
            stdout=subprocess.DEVNULL, stderr=self.errf)
        self.nmark = 0
        # the daemon's requests may land on any thread: wait until strace
        # has attached to all of them, then until it shows one request
        end = time.time() + 60
        while time.time() < end:
            self.errf.seek(0)
            err = self.errf.read()
            m = re.search(r"attached with (\d+) threads", err)
            ntasks = len(os.listdir(f"/proc/{self.pid}/task"))
            if (m and int(m.group(1)) >= ntasks) or err.count("attached") >= ntasks:
                break
            if self.p.poll() is not None:
                raise RuntimeError(f"strace exited: {err}")
            time.sleep(0.05)
        self.mark()

    def mark(self):
        """A rename through the mount, seen by strace: everything the
        daemon did before it returned is in the log once the mark is."""
        self.nmark += 1
        a = os.path.join(self.mnt, f"mark-a-{self.nmark}")
        b = os.path.join(self.mnt, f"mark-b-{self.nmark}")
        with open(a, "w"):
            pass
        os.rename(a, b)
        os.unlink(b)
        needle = f'"mark-b-{self.nmark}"'
        end = time.time() + 60
        while time.time() < end:
            with open(self.log) as f:
                if needle in f.read():
                    return len(self.events()) - 1
            time.sleep(0.05)
        raise RuntimeError(f"strace did not show the mark {needle}")

    def events(self):
        """[(syscall, [fd paths], [strings])] in the order they started."""
        out = []
        with open(self.log) as f:
            for line in f:
                m = re.match(r"^\d+\s+(\w+)\((.*)$", line)
                if not m:
                    continue  # "<... resumed>" and exit lines
                name, args = m.groups()
                out.append((name, re.findall(r"\d+<([^>]*)>", args),
                            re.findall(r'"((?:[^"\\]|\\.)*)"', args)))
        return out

    def stop(self):
        self.mark()
        self.p.terminate()
        self.p.wait(timeout=30)
        self.errf.close()
        return self.events()


class Ftrace:
    """ext4_sync_file_enter in a private tracefs instance."""

    def __init__(self):
        self.mounted = None
        base = "/sys/kernel/tracing"
        if not os.path.isdir(os.path.join(base, "instances")):
            base = os.path.join(top, "tracefs")
            os.makedirs(base)
            subprocess.run(["mount", "-t", "tracefs", "nodev", base], check=True,
                           capture_output=True)
            self.mounted = base
        self.inst = os.path.join(base, "instances", f"stratafs-dur-{os.getpid()}")
        os.mkdir(self.inst)
        # only the filesystem of the uppers, in a buffer of our own that
        # other fsyncs on the machine cannot overrun
        dev = os.stat(top).st_dev
        self.write("buffer_size_kb", "1024")
        self.write("events/ext4/ext4_sync_file_enter/filter",
                   f"dev == {(os.major(dev) << 20) | os.minor(dev)}")
        self.write("events/ext4/ext4_sync_file_enter/enable", "1")

    def write(self, rel, val):
        with open(os.path.join(self.inst, rel), "w") as f:
            f.write(val)

    def clear(self):
        self.write("trace", "")

    def synced(self):
        """{(major, minor, ino): set of datasync flags} since clear()."""
        out = {}
        with open(os.path.join(self.inst, "trace")) as f:
            for line in f:
                m = re.search(r"ext4_sync_file_enter: dev (\d+),(\d+) ino (\d+) "
                              r"parent \d+ datasync (\d+)", line)
                if m:
                    key = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
                    out.setdefault(key, set()).add(int(m.group(4)))
        return out

    def close(self):
        try:
            self.write("events/ext4/ext4_sync_file_enter/enable", "0")
            os.rmdir(self.inst)
        finally:
            if self.mounted:
                subprocess.run(["umount", self.mounted], capture_output=True)


def key_of(path):
    st = os.lstat(path)
    return (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)


# --- mounts ------------------------------------------------------------------------
class Mount:
    def __init__(self, kind, extra=""):
        self.kind, self.extra = kind, extra
        self.n = 0

    def __enter__(self):
        self.n += 1
        d = tempfile.mkdtemp(prefix=f"{self.kind}-", dir=top)
        self.U, self.W, self.M = (os.path.join(d, x) for x in ("upper", "work", "mnt"))
        for p in (self.U, self.W, self.M):
            os.makedirs(p)
        opts = f"lowerdir={L},upperdir={self.U},workdir={self.W}" + \
            (f",{self.extra}" if self.extra else "")
        if self.kind == "stratafs":
            mount_stratafs(opts, self.M)
        else:
            r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, self.M],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"mount -t overlay -o {opts}: {r.stderr.strip()}")
        return self

    def __exit__(self, *exc):
        unmount(self.M)
        if self.kind == "stratafs":
            wait_gone(self.M)
        return False

    def m(self, rel):
        return os.path.join(self.M, rel)

    def u(self, rel=""):
        return os.path.join(self.U, rel) if rel else self.U


def fsync_path(path, data=None, datasync=False, flags=os.O_WRONLY):
    fd = os.open(path, flags, 0o644)
    try:
        if data is not None:
            os.write(fd, data)
        (os.fdatasync if datasync else os.fsync)(fd)
    finally:
        os.close(fd)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def basic_ops(mt):
    """The syncs of part 1 and 2: a new file, the root, a merged dir."""
    fsync_path(mt.m("new"), b"data", flags=os.O_CREAT | os.O_WRONLY)
    fsync_path(mt.m("new"), b"more", datasync=True)
    fsync_dir(mt.M)
    with open(mt.m("m/new2"), "w") as f:   # copies m up: m is merged now
        f.write("y")
    fsync_dir(mt.m("m"))


def synced_list(events, path, names=("fsync",)):
    return [i for i, (n, paths, _) in enumerate(events) if n in names and paths
            and paths[0] == path]


def renamed_to(events, udir, name):
    """Index of the rename publishing name in udir, and the temp name."""
    for i, (n, paths, strs) in enumerate(events):
        if n.startswith("rename") and len(paths) >= 2 and paths[1] == udir \
                and strs and strs[-1] == name:
            return i, strs[0]
    return None, None


def fmt(events):
    return "\n".join(f"{i}: {n} {paths} {strs}" for i, (n, paths, strs) in enumerate(events))


# --- part 1: fsync=1 reaches the upper; part 2: volatile, fsync=0 do not ---------------
def part_basic(ft):
    # strace on stratafs
    with Mount("stratafs") as mt:
        st = Strace(mt.M)
        basic_ops(mt)
        ev = st.stop()
        diag = fmt(ev)
        t.ok(synced_list(ev, mt.u("new")), "fsync=1: fsync of a file reaches the upper file",
             diag)
        t.ok(synced_list(ev, mt.u("new"), ("fdatasync",)),
             "fsync=1: fdatasync of a file reaches the upper file as fdatasync", diag)
        t.ok(synced_list(ev, mt.u()), "fsync=1: fsync of the root dir reaches the upper root",
             diag)
        t.ok(synced_list(ev, mt.u("m")),
             "fsync=1: fsync of a merged directory reaches its upper dir", diag)
    for extra in ("volatile", "fsync=0"):
        with Mount("stratafs", extra) as mt:
            st = Strace(mt.M)
            basic_ops(mt)
            fsync_path(mt.m("vol-file"), b"w")          # copy-up on open, then fsync
            os.chmod(mt.m("vol-chm"), 0o600)            # copy-up alone
            ev = st.stop()
            n = [e for e in ev if e[0] in SYNCS]
            t.ok(not n and os.path.exists(mt.u("vol-file")),
                 f"{extra}: no fsync/fdatasync/syncfs reaches the upper, copy-up included",
                 fmt(ev))
    # the tracepoint: stratafs beside the kernel overlayfs
    if ft is None:
        for what in ("fsync=1", "volatile", "copy-up"):
            skip_line(f"{what}: stratafs syncs what the kernel overlayfs syncs",
                      "no ext4 upper or no tracefs")
        return
    res = {}
    for kind in ("stratafs", "kernel"):
        for extra in ("", "volatile"):
            with Mount(kind, extra) as mt:
                ft.clear()
                basic_ops(mt)
                fsync_path(mt.m("vol-file"), b"w")
                os.chmod(mt.m("vol-chm"), 0o600)
                os.chmod(mt.m("kchm"), 0o600)
                if kind == "stratafs":
                    Strace(mt.M).stop()   # a mark: the daemon's work is done
                got = ft.synced()
                res[kind, extra] = {
                    "new: fsync": 0 in got.get(key_of(mt.u("new")), ()),
                    "new: fdatasync": 1 in got.get(key_of(mt.u("new")), ()),
                    "root dir": key_of(mt.u()) in got,
                    "merged dir m": key_of(mt.u("m")) in got,
                    "copied-up file fsync'd by the user": key_of(mt.u("vol-file")) in got,
                    "copy-up by chmod": key_of(mt.u("kchm")) in got,
                }
    for extra, want in (("", True), ("volatile", False)):
        s, k = res["stratafs", extra], res["kernel", extra]
        t.ok(s == k and all(v == want for v in s.values()),
             f"{extra or 'fsync=1'}: the upper objects synced, as on the kernel overlayfs "
             f"({'all' if want else 'none'})",
             f"stratafs: {s}\nkernel:   {k}")


# --- part 3: copy-up followed by the user's fsync is durable ---------------------------
def part_copyup():
    with Mount("stratafs") as mt:
        st = Strace(mt.M)
        fsync_path(mt.m("cu-file"), b"new data")                 # a
        fsync_path(mt.m("deep/sub/file"), b"new data")           # b
        os.chmod(mt.m("chm"), 0o640)                             # c
        fsync_path(mt.m("chm"), b"w", datasync=True)
        with open(mt.m("m2/y"), "w") as f:                       # e
            f.write("y")
        fsync_path(mt.m("m2/y"))
        fsync_dir(mt.m("m2"))
        i_second = st.mark()
        fsync_path(mt.m("cu-file"), b"again")                    # d
        i_nofsync = st.mark()
        os.chmod(mt.m("nofsync"), 0o640)                         # f
        ev = st.stop()
    diag = fmt(ev)
    U = mt.u()

    # a: the copy synced before the rename, the parent after it and after the user's fsync
    ri, tmp = renamed_to(ev, U, "cu-file")
    tmp_syncs = synced_list(ev, os.path.join(mt.W, "work", tmp or "?"))
    user = [i for i in synced_list(ev, mt.u("cu-file")) if i < i_second]
    t.ok(ri is not None and tmp_syncs and tmp_syncs[0] < ri,
         "copy-up: the copy is fsync'd in workdir/work before the rename publishing it", diag)
    # before the next operation (b) publishes anything
    ri_b, _ = renamed_to(ev, U, "deep")
    parent = [i for i in synced_list(ev, U) if ri is not None and i > ri]
    t.ok(user and parent and ri_b and user[0] < parent[0] < ri_b,
         "copy-up + fsync: the upper parent dir is fsync'd after the rename, at the user's fsync",
         diag)
    # b: every directory copied up on the way has its entry synced too
    ok, why = True, []
    file_sync = [i for i in synced_list(ev, mt.u("deep/sub/file")) if i < i_second]
    for rel in ("deep/sub/file", "deep/sub", "deep"):
        ri2, tmp2 = renamed_to(ev, os.path.dirname(mt.u(rel)), os.path.basename(rel))
        after = [i for i in synced_list(ev, os.path.dirname(mt.u(rel)))
                 if ri2 is not None and file_sync and i > max(ri2, file_sync[0])]
        if not after:
            ok = False
            why.append(f"{rel}: parent not fsync'd after its publishing rename ({ri2}) "
                       f"and the user's fsync ({file_sync})")
    t.ok(ok, "copy-up of a/b/file + fsync: the parents of the file, b and a are fsync'd",
         "\n".join(why) + "\n" + diag)
    # c: copy-up by chmod, then fdatasync
    ri3, tmp3 = renamed_to(ev, U, "chm")
    tmp3_syncs = synced_list(ev, os.path.join(mt.W, "work", tmp3 or "?"))
    user3 = synced_list(ev, mt.u("chm"), ("fdatasync",))
    ri_e, _ = renamed_to(ev, U, "m2")
    after3 = [i for i in synced_list(ev, U) if user3 and ri_e and user3[0] < i < ri_e]
    t.ok(ri3 is not None and tmp3_syncs and tmp3_syncs[0] < ri3 and user3 and after3,
         "copy-up by chmod, then fdatasync: copy synced before the rename, parent after "
         "the user's fdatasync", diag)
    # e: fsyncdir of a directory copied up: its own entry in the parent too
    dsync = synced_list(ev, mt.u("m2"))
    ri4, _ = renamed_to(ev, U, "m2")
    after4 = [i for i in synced_list(ev, U) if dsync and ri4 is not None and i > ri4]
    t.ok(dsync and after4, "fsync of a merged directory copied up: its upper dir and "
         "the upper parent are fsync'd", diag)
    # d: the parent once, not at every fsync
    second = [i for i in synced_list(ev, mt.u("cu-file")) if i_second < i < i_nofsync]
    extra = [i for i in synced_list(ev, U) if i_second < i < i_nofsync]
    t.ok(second and not extra,
         "a second fsync of the copied-up file syncs the file only, not the parent again",
         diag)
    # f: no fsync of the user, no directory sync
    rif, tmpf = renamed_to(ev, U, "nofsync")
    win = [e for i, e in enumerate(ev) if i > i_nofsync and e[0] in SYNCS]
    tmp_ok = [e for e in win if e[1] and e[1][0] == os.path.join(mt.W, "work", tmpf or "?")]
    t.ok(rif is not None and len(win) == 1 and tmp_ok,
         "a copy-up the user does not fsync: the copy is synced, no directory is", diag)


ft = None
try:
    if not shutil.which("strace"):
        t.ok(False, "strace is needed (contrib/deps.sh installs it)")
    else:
        if fstype(top) == "ext4":
            try:
                ft = Ftrace()
            except (OSError, subprocess.CalledProcessError) as e:
                print(f"# no tracefs: {e}", flush=True)
        part_basic(ft)
        part_copyup()
finally:
    if ft is not None:
        ft.close()
    for d in os.listdir(top):
        mnt = os.path.join(top, d, "mnt")
        if os.path.isdir(mnt) and is_mounted(mnt):
            unmount(mnt)
    shutil.rmtree(top, ignore_errors=True)
t.done()
