#!/usr/bin/env python3
"""Differential test: stratafs against the kernel overlayfs, as TAP.

For every fixture set (fixtures.py) this builds the native and the kernel
copy of the layers in a fresh directory under $TMPDIR (default /tmp), mounts

  the kernel copy:  mount -t overlay overlay -o ro,lowerdir=... MNT_K
  the native copy:  $STRATAFS -f -o lowerdir=... MNT_S

dumps both trees (treedump.py), and reports two TAP lines per fixture:

  <name>: tree     the stratafs dump equals the kernel dump (kernel phantoms
                   count as absent); also fails if the kernel mount does not
                   match the fixture's own model (a harness problem, marked
                   "harness:"), or if the daemon fails to mount or to exit
                   after `fusermount3 -u`;
  <name>: markers  through stratafs every whiteout path and every native
                   .wh.* name gives the errno the model expects (ENOENT), no
                   .wh.* name is listed, no trusted.overlay.*, user.overlay.*
                   or user.fuseoverlayfs.* xattr is listed that the kernel
                   does not list, getxattr of those names answers what the
                   kernel answers (ENODATA), and readdir lists nothing that
                   lstat denies.

Needs root, /dev/fuse and a kernel that mounts overlayfs; otherwise prints
"1..0 # SKIP reason" and exits with --skip-status (default 77; meson's TAP
protocol counts any non-zero status as an error, so meson.build passes
--meson).  Exits 1 when a test failed (0 with --meson).

Options:
  --only REGEX           run the fixture sets whose name matches (repeatable)
  --list                 list fixture sets and exit
  --keep                 keep the fixture directories (printed as diagnostics)
  --against stratafs     (default) compare stratafs with the kernel
  --against kernel-self  harness self-check: the second mount is another
                         kernel mount of the kernel copy; expects no diffs
  --against kernel-native  mount the NATIVE copy with the kernel (shows what
                         the kernel itself makes of each marker format)
  --self-check           same as --against kernel-self
  --skip-status N        exit status when skipping
  --meson                exit 0 when skipping and when tests fail (meson's
                         TAP protocol turns any non-zero exit into ERROR;
                         the TAP lines already carry the verdict)
  --tmpfs                build each fixture on a private tmpfs mounted on its
                         temp dir (fast where the disk is slow to create
                         files; also STRATAFS_IT_TMPFS=1)
  --fixture-timeout S    kill a stratafs that has not finished a fixture in
                         S seconds (default 180), so a hung daemon fails the
                         fixture instead of hanging the run
  -v                     tracebacks for harness exceptions

Environment: STRATAFS (default <repo>/build/stratafs), TMPDIR,
STRATAFS_IT_TMPFS.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fixtures  # noqa: E402
import tap as taplib  # noqa: E402  (sanitizer/valgrind set-up, stratafs_bin)
import treedump  # noqa: E402
from treedump import display, printable  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOUNT_TIMEOUT = 10.0 * taplib.SLOW   # SLOW: a daemon under valgrind (tap.py)
EXIT_TIMEOUT = 10.0 * taplib.SLOW
KERNEL_OPTS_MAX = 3900      # the kernel takes one page of mount data
MAX_DIAG_LINES = 60


# ------------------------------------------------------------------ mounts

def _unescape_mountinfo(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def is_mounted(path: str) -> bool:
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ")
            if len(fields) > 4 and _unescape_mountinfo(fields[4]) == path:
                return True
    return False


def run(cmd: list[str], cwd: str | None = None, timeout: float = 60) -> tuple[int, str]:
    try:
        p = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, f"{cmd[0]} timed out after {timeout:.0f} s"
    return p.returncode, p.stdout.decode(errors="replace").strip()


def kernel_mount(fx: fixtures.Fixture, copy: str, mnt: str) -> str:
    """Mount one copy of fx with the kernel overlayfs, read-only.  Uses
    layer paths relative to the copy directory when the absolute ones would
    not fit the kernel's option page or contain separators."""
    lowers = fx.lowerdir(copy)
    cwd = None
    if len(lowers) + 20 > KERNEL_OPTS_MAX or re.search(r"[,:\\]", fx.copy_root(copy)):
        lowers, cwd = fx.lowerdir(copy, relative=True), fx.copy_root(copy)
    rc, out = run(["mount", "-t", "overlay", "overlay", "-o",
                   f"ro,lowerdir={lowers}", mnt], cwd=cwd)
    if rc != 0:
        raise RuntimeError(f"kernel mount of the {copy} copy failed ({rc}): {out}")
    return "relative lowerdir" if cwd else "absolute lowerdir"


def kernel_umount(mnt: str) -> list[str]:
    problems = []
    if not is_mounted(mnt):
        return problems
    rc, out = run(["umount", mnt])
    if rc != 0:
        problems.append(f"umount {mnt} failed: {out}; lazy unmount")
        run(["umount", "-l", mnt])
    return problems


class Daemon:
    """A stratafs started in the foreground with its output in a log."""

    def __init__(self, exe: str, fx: fixtures.Fixture, mnt: str, log: str):
        self.mnt = mnt
        self.log = log
        self.aborted = 0.0
        self.cmd = [exe, "-f", "-o", f"lowerdir={fx.lowerdir(fixtures.NATIVE)}", mnt]
        with open(log, "wb") as lf:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                         stdout=lf, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def wait_mounted(self) -> None:
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while time.monotonic() < deadline:
            if is_mounted(self.mnt):
                return
            if self.proc.poll() is not None:
                if is_mounted(self.mnt):
                    raise RuntimeError(f"stratafs -f exited (status "
                                       f"{self.proc.returncode}) although its mount"
                                       " is live: -f must keep it in the foreground")
                raise RuntimeError(f"stratafs exited with status "
                                   f"{self.proc.returncode} before the mount appeared")
            time.sleep(0.02)
        raise RuntimeError(f"no mount at {self.mnt} after {MOUNT_TIMEOUT:.0f} s")

    def abort(self, after: float) -> None:
        """Watchdog: kill a daemon that stopped answering.  Its /dev/fuse fd
        closes with it, which aborts the connection, so whatever blocks on
        the mount fails with ENOTCONN instead of hanging the test."""
        if self.proc.poll() is None:
            self.aborted = after
            self.proc.kill()

    def stop(self) -> list[str]:
        """Unmount and reap; returns problems (an empty list if clean)."""
        problems = []
        if self.aborted:
            problems.append(f"fixture not done after {self.aborted:.0f} s:"
                            " stratafs killed (hung?)")
        was_running = self.proc.poll() is None
        if is_mounted(self.mnt):
            rc, out = run(["fusermount3", "-u", self.mnt])
            if rc != 0:
                problems.append(f"fusermount3 -u failed ({rc}): {out}; lazy unmount")
                run(["umount", "-l", self.mnt])
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"stratafs did not exit within {EXIT_TIMEOUT:.0f} s"
                                " of its unmount; killed")
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                return problems
        if was_running and self.proc.returncode != 0 and not problems:
            problems.append(f"stratafs exited with status {self.proc.returncode}"
                            " after unmount")
        return problems

    def log_tail(self, n: int = 20) -> list[str]:
        try:
            with open(self.log, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return []
        return [f"stratafs: {line}" for line in lines[-n:]]


# ------------------------------------------------------------------ checks

def lstat_errno(mnt: str, path: str) -> int:
    """lstat mnt/path one component at a time (no PATH_MAX limit, no
    following of symlinks in the middle); 0 or the errno."""
    comps = [c for c in path.split("/") if c]
    try:
        fd = os.open(mnt, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        return e.errno
    try:
        for c in comps[:-1]:
            nfd = os.open(c, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW |
                          os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nfd
        if comps:
            os.stat(comps[-1], dir_fd=fd, follow_symlinks=False)
        return 0
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


def ename(e: int | None) -> str:
    return "success" if e == 0 else errno.errorcode.get(e, str(e))


def check_model(fx: fixtures.Fixture, tree: treedump.Tree) -> list[str]:
    """The kernel mount must show exactly what the fixture's model says."""
    model = fx.model_tree()
    out = []
    for p in sorted(set(model) | set(tree)):
        m, r = model.get(p), tree.get(p)
        if m is None:
            out.append(f"harness: kernel shows {display(p)} ({r['type']}),"
                       " the model hides it")
        elif r is None:
            out.append(f"harness: kernel hides {display(p)}, the model has"
                       f" a {m[0]}")
        elif m[0] != r["type"]:
            out.append(f"harness: {display(p)} is a {r['type']} in the kernel,"
                       f" a {m[0]} in the model")
        elif m[0] == "dir" and (r["nlink"] == 1) != (m[1] > 1):
            # kernel fact: a merged dir reports nlink 1, a dir of one layer
            # (only one layer has it, or the top one is opaque) its real one
            out.append(f"harness: {display(p)} is a dir of {m[1]} layer(s)"
                       f" with nlink {r['nlink']} in the kernel")
    return out


def check_hidden(fx: fixtures.Fixture, mnt: str, who: str) -> list[str]:
    out = []
    for path, want in fx.hidden_paths():
        got = lstat_errno(mnt, path)
        if got != want:
            out.append(f"{who}: lstat /{display(path)} gave {ename(got)},"
                       f" expected {ename(want)}")
    return out


PROBED_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque",
                 "user.fuseoverlayfs.opaque", "trusted.overlay.whiteout",
                 "user.overlay.whiteout", "trusted.overlay.origin",
                 "user.overlay.origin", "user.fuseoverlayfs.origin",
                 "trusted.overlay.foo")


def _getxattr(root: str, path: str, name: str):
    target = os.path.join(root, path) if path else root
    try:
        return os.getxattr(target, name, follow_symlinks=False)
    except OSError as e:
        return ename(e.errno)


def check_private(fx: fixtures.Fixture, mnt: str, tree: treedump.Tree,
                  mnt_k: str, tree_k: treedump.Tree, who: str,
                  phantoms_fail: bool = True) -> list[str]:
    """Through mnt: no .wh.* name; no private xattr (trusted.overlay.*,
    user.overlay.*, user.fuseoverlayfs.*) listed unless the kernel lists it
    too (it shows escaped trusted.overlay.overlay.* xattrs unescaped);
    getxattr of private names answers what the kernel answers (ENODATA);
    no phantom unless the mount is a kernel one."""
    out = []
    for p in sorted(tree):
        base = p.rsplit("/", 1)[-1]
        if base.startswith(fixtures.AUFS_PREFIX):
            out.append(f"{who}: shows marker name {display(p)}")
        kernel_names = {n for n, _ in tree_k[p]["xattrs"]} if p in tree_k else set()
        for name, _ in tree[p]["xattrs"]:
            if name.startswith(fixtures.PRIVATE_XATTR_PREFIXES) and name not in kernel_names:
                out.append(f"{who}: {display(p)} lists xattr {name}")
    if phantoms_fail:
        for p in tree.phantoms:
            out.append(f"{who}: readdir lists {display(p)} but lstat gives ENOENT")
    # getxattr of private names on every object that carries a marker or a
    # private xattr in some layer, compared with the kernel's answer
    probes = {path for _, path, _ in fx.opaques}
    probes |= {path.rpartition("/")[0] for _, path, _ in fx.whiteouts}  # x
    probes |= fx.private_xattr_paths
    for path in sorted(probes):
        key = "/" + path if path else "/"
        if key not in tree or key not in tree_k:
            continue
        if len(os.fsencode(os.path.join(mnt, path))) >= 4000:
            continue
        for n in PROBED_XATTRS:
            vk, vs = _getxattr(mnt_k, path, n), _getxattr(mnt, path, n)
            if vk != vs:
                out.append(f"{who}: getxattr({display(key)}, {n}) gave {vs!r},"
                           f" the kernel {vk!r}")
    return out


# ------------------------------------------------------------------ driver

class Result:
    def __init__(self, name: str):
        self.name = name
        self.tree_problems: list[str] = []
        self.tree_notes: list[str] = []
        self.marker_problems: list[str] = []
        self.summary = ""


def run_fixture(fset: fixtures.FixtureSet, args, exe: str) -> Result:
    res = Result(fset.name)
    base = tempfile.mkdtemp(prefix=f"stratafs-it-{fset.name}-")
    if args.tmpfs:
        rc, out = run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=2g",
                       "stratafs-it", base])
        if rc != 0:
            os.rmdir(base)
            res.tree_problems.append(f"cannot mount a tmpfs: {out}")
            res.marker_problems.append(f"cannot mount a tmpfs: {out}")
            return res
    mnt_k = os.path.join(base, "mnt-kernel")
    mnt_s = os.path.join(base, "mnt-other")
    os.mkdir(mnt_k)
    os.mkdir(mnt_s)
    other = {"stratafs": "stratafs", "kernel-self": "kernel#2",
             "kernel-native": "kernel(native)"}[args.against]
    daemon = None
    watchdog = None
    cleanup_problems: list[str] = []
    t0 = time.monotonic()
    try:
        fx = fixtures.build(fset, os.path.join(base, "layers"))
        t_build = time.monotonic() - t0
        how = kernel_mount(fx, fixtures.KERNEL, mnt_k)
        if args.against == "stratafs":
            daemon = Daemon(exe, fx, mnt_s, os.path.join(base, "stratafs.log"))
            watchdog = threading.Timer(args.fixture_timeout, daemon.abort,
                                       args=(args.fixture_timeout,))
            watchdog.daemon = True
            watchdog.start()
            daemon.wait_mounted()
        elif args.against == "kernel-self":
            kernel_mount(fx, fixtures.KERNEL, mnt_s)
        else:
            kernel_mount(fx, fixtures.NATIVE, mnt_s)
        tk = treedump.dump(mnt_k)
        ts = treedump.dump(mnt_s)
        notes: list[str] = []
        res.tree_problems += check_model(fx, tk)
        res.tree_problems += treedump.diff(tk, ts, names=("kernel", other), notes=notes)
        res.tree_notes += notes
        res.marker_problems += check_hidden(fx, mnt_k, "harness: kernel")
        res.marker_problems += check_hidden(fx, mnt_s, other)
        res.marker_problems += check_private(fx, mnt_s, ts, mnt_k, tk, other,
                                             phantoms_fail=daemon is not None)
        res.summary = (f"{len(tk)} entries, {len(fx.hidden_paths())} hidden paths,"
                       f" {len(tk.phantoms)} kernel phantoms; build {t_build:.2f}s,"
                       f" kernel {how}")
    except Exception as e:  # a failure to build or mount fails both lines
        msg = f"{type(e).__name__}: {e}"
        res.tree_problems.append(msg)
        res.marker_problems.append(msg)
        if args.verbose:
            res.tree_notes += traceback.format_exc().splitlines()
    finally:
        if watchdog is not None:
            watchdog.cancel()
        if daemon is not None:
            cleanup_problems += daemon.stop()
        else:
            cleanup_problems += kernel_umount(mnt_s)
        cleanup_problems += kernel_umount(mnt_k)
    res.tree_problems += cleanup_problems
    if daemon is not None and (res.tree_problems or res.marker_problems):
        res.tree_notes += daemon.log_tail()
    if res.summary:
        res.summary += f", total {time.monotonic() - t0:.2f}s"
    if args.keep or is_mounted(mnt_k) or is_mounted(mnt_s):
        res.tree_notes.append(f"fixture kept in {base}")
    elif args.tmpfs:
        run(["umount", base])
        os.rmdir(base)
    else:
        shutil.rmtree(base, ignore_errors=True)
    return res


def category(line: str) -> str:
    """A coarse kind for a problem line, for the per-test summary."""
    for pat, fmt in ((r"harness:", "harness (fixture/model vs kernel)"),
                     (r"only in ([^:]+):", "only in {0}"),
                     (r"\[([^]]+)\] ", "self-consistency errors in {0}"),
                     (r".*?: (\w+) kernel[^=]*=", "{0} differs"),
                     (r"\S+: lstat .* gave (\S+), expected (\S+)",
                      "lstat gave {0}, expected {1}"),
                     (r"\S+: shows marker name", "marker names visible"),
                     (r"\S+: .* lists xattr", "private xattrs listed"),
                     (r"\S+: getxattr", "getxattr of private names differs"),
                     (r"\S+: readdir lists", "phantoms (readdir lists, lstat ENOENT)")):
        m = re.match(pat, line)
        if m:
            return fmt.format(*m.groups())
    return "other"


class Tap:
    def __init__(self, total: int):
        self.n = 0
        self.failed = 0
        print(f"1..{total}", flush=True)

    def report(self, ok: bool, name: str, problems: list[str], notes: list[str]) -> None:
        self.n += 1
        if not ok:
            self.failed += 1
        print(f"{'ok' if ok else 'not ok'} {self.n} - {name}")
        lines = []
        if len(problems) > 10:
            counts: dict[str, int] = {}
            for p in problems:
                c = category(p)
                counts[c] = counts.get(c, 0) + 1
            lines += [f"summary: {n} x {c}" for c, n in
                      sorted(counts.items(), key=lambda kv: -kv[1])]
        lines += problems[:MAX_DIAG_LINES]
        if len(problems) > MAX_DIAG_LINES:
            lines.append(f"... and {len(problems) - MAX_DIAG_LINES} more")
        for line in lines + notes[:MAX_DIAG_LINES]:
            print(f"# {printable(line)}")
        sys.stdout.flush()


def skip(reason: str, status: int) -> int:
    print(f"1..0 # SKIP {reason}", flush=True)
    return status


def overlay_works(tmp: str) -> str | None:
    """None if a read-only two-layer kernel overlay with trusted.* and
    user.* xattrs can be made here, else why not."""
    d = tempfile.mkdtemp(prefix="stratafs-it-probe-", dir=tmp)
    try:
        for sub in ("a", "b", "m"):
            os.mkdir(os.path.join(d, sub))
        try:
            os.setxattr(os.path.join(d, "a"), "trusted.overlay.opaque", b"y")
            os.setxattr(os.path.join(d, "a"), "user.probe", b"1")
        except OSError as e:
            return f"{tmp} does not take trusted.*/user.* xattrs ({e.strerror})"
        rc, out = run(["mount", "-t", "overlay", "overlay", "-o",
                       f"ro,lowerdir={d}/a:{d}/b", f"{d}/m"])
        if rc != 0:
            return f"mount -t overlay fails: {out}"
        run(["umount", f"{d}/m"])
        return None
    except (OSError, subprocess.SubprocessError) as e:
        return f"cannot probe overlayfs: {e}"
    finally:
        if not is_mounted(os.path.join(d, "m")):
            shutil.rmtree(d, ignore_errors=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--against", default="stratafs",
                    choices=("stratafs", "kernel-self", "kernel-native"))
    ap.add_argument("--self-check", action="store_true")
    ap.add_argument("--skip-status", type=int, default=77)
    ap.add_argument("--meson", action="store_true",
                    help="exit 0 on skip and on failures: TAP carries them")
    ap.add_argument("--tmpfs", action="store_true",
                    default=os.environ.get("STRATAFS_IT_TMPFS", "") not in ("", "0"))
    ap.add_argument("--fixture-timeout", type=float, default=180.0 * taplib.SLOW)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.self_check:
        args.against = "kernel-self"
    if args.meson:
        args.skip_status = 0

    sets = [f for f in fixtures.FIXTURES
            if not args.only or any(re.search(r, f.name) for r in args.only)]
    if args.list:
        for f in sets:
            print(f.name)
        return 0
    if not sets:
        print("no fixture set matches", file=sys.stderr)
        return 2

    if os.geteuid() != 0:
        return skip("needs root", args.skip_status)
    exe = taplib.stratafs_bin()   # $STRATAFS or build/stratafs, maybe wrapped
    if args.against == "stratafs":
        if not os.path.exists("/dev/fuse"):
            return skip("no /dev/fuse", args.skip_status)
        if shutil.which("fusermount3") is None:
            return skip("no fusermount3", args.skip_status)
    why = overlay_works(tempfile.gettempdir())
    if why:
        return skip(why, args.skip_status)
    if args.against == "stratafs" and not os.access(exe, os.X_OK):
        print("1..0")
        print(f"Bail out! stratafs binary not found or not executable: {exe}"
              " (set STRATAFS)", flush=True)
        return 1

    # one more line under a sanitizer or valgrind run: no report from the
    # daemons this test started (tap.py; the foreground daemons' exit
    # status already shows valgrind errors, this names the log)
    checks_reports = bool(taplib.SAN_DIR or taplib.VG_DIR)
    tap = Tap(2 * len(sets) + checks_reports)
    print(f"# comparing {args.against} against the kernel overlayfs"
          f" ({os.uname().release}); stratafs = {exe}", flush=True)
    t0 = time.monotonic()
    for fset in sets:
        res = run_fixture(fset, args, exe)
        tap.report(not res.tree_problems, f"{fset.name}: tree",
                   res.tree_problems, res.tree_notes + ([res.summary] if res.summary else []))
        tap.report(not res.marker_problems, f"{fset.name}: markers",
                   res.marker_problems, [])
    if checks_reports:
        class Line:
            def ok(self, cond, name, diag=None):
                tap.report(cond, name, (diag or "").splitlines(), [])
        taplib.check_daemon_reports(Line())
    print(f"# {tap.n - tap.failed}/{tap.n} passed in {time.monotonic() - t0:.1f}s",
          flush=True)
    return 1 if tap.failed and not args.meson else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
