#!/usr/bin/env python3
"""Copy-up atomicity when the daemon dies: SIGKILL stratafs while it copies
up a 256 MiB lower file, remount on the same upper and work directories, and
check that nothing partial is left.

The lower file (L1/data/big.bin) carries a pattern: 4 KiB block i holds the
16 bytes <u64 i, u64 magic> 256 times.  Each iteration, on a fresh upper and
work directory:
  1. mount stratafs in the foreground (-f) with lowerdir=L0:L1,upperdir=U,
     workdir=W;
  2. start a writer that opens the merged file O_WRONLY (the daemon copies
     the file up) and then overwrites one byte in the middle or appends one
     byte (O_APPEND), then closes;
  3. once the writer is about to call open(), wait a seeded random delay
     (0-300 ms, spread evenly over the iterations) and SIGKILL the daemon;
  4. `umount -l` the dead mount, reap the writer, and look at U and W as the
     crash left them (printed as '#' lines);
  5. remount stratafs on the same U and W and check:
     - the merged file is exactly the old content (sha256 equal to the lower
       file) or exactly the new one (old + the change), never truncated,
       partial or empty; if the writer had finished (close() returned)
       before the kill, it must be the new content;
     - no partial file under the file's name in U, neither right after the
       crash nor after the remount: if present, it has the full size and
       the old or the new content;
     - W holds nothing but empty directories directly under it once the
       remount is done (no leftover temporary files in W/work or W).
An iteration without a kill comes first (the baseline: the new content, and
how long the copy-up takes).  Two more iterations kill at a chosen stage of
a writer that waits between stages: after open() returned (the copy-up is
complete, nothing written: the old content) and after the write returned
but before close() (old or new).  The last line checks that the lower
layers are byte-identical to before.

  --against kernel   the harness on the kernel overlayfs, which has no daemon
                     to kill: the writer is SIGKILLed instead (the kernel
                     aborts a copy-up on a fatal signal).  Also checks the
                     checkers themselves on hand-made bad states (no mount).
  --iterations N     kill iterations (default 10)
  --seed S           seed of the delays and the changes (default 1)
  --size-mib N       size of the lower file (default 256)
  --max-delay-ms D   kill delays spread over 0-D ms (default 300)
  --keep, --meson    as in the other tests

Needs root and /dev/fuse (kernel: root and overlayfs).  If stratafs refuses
upperdir= or the mount is read-only, the test is skipped: stratafs has no
writable mode yet.
"""
import argparse
import hashlib
import os
import random
import select
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time

from tap import (Tap, leave_top, is_mounted, mount_stratafs, probe_writable, require_root_fuse, skip_all,
                 stratafs_bin, unmount, wait_gone, wait_mounted)

MiB = 1 << 20
BLOCK = 4096
MAGIC = 0x5346415441525453  # "STRATAFS" little-endian
REL = os.path.join("data", "big.bin")
APPEND_BYTE = 0xA5

WRITER = r"""
import os, sys
path, mode, off, val = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
step = sys.argv[5] == "1"   # wait for a byte (or EOF) on stdin after each stage
os.write(1, b"R")
fd = os.open(path, os.O_WRONLY | (os.O_APPEND if mode == "append" else 0))
os.write(1, b"O")
if step:
    sys.stdin.buffer.read(1)
if mode == "append":
    n = os.write(fd, bytes([val]))
else:
    n = os.pwrite(fd, bytes([val]), off)
if n != 1:
    sys.exit(3)
os.write(1, b"W")
if step:
    sys.stdin.buffer.read(1)
os.close(fd)
os.write(1, b"C")
"""
STAGES = {"R": "about to open", "O": "opened (copy-up done), not written",
          "W": "wrote the byte, not closed", "C": "closed"}


# --- the pattern -------------------------------------------------------------
def pattern_chunk(c):
    """The c-th MiB of the lower file."""
    first = c * (MiB // BLOCK)
    return b"".join(struct.pack("<QQ", i, MAGIC) * (BLOCK // 16)
                    for i in range(first, first + MiB // BLOCK))


class Content:
    """The old content and the two possible new ones, as sha256 and size."""

    def __init__(self, size_mib):
        self.size = size_mib * MiB
        self.ovw_off = self.size // 2 + 7 * BLOCK + 13
        c_ovw = self.ovw_off // MiB
        h_old = hashlib.sha256()
        h_ovw = hashlib.sha256()
        for c in range(size_mib):
            b = pattern_chunk(c)
            h_old.update(b)
            if c == c_ovw:
                i = self.ovw_off % MiB
                self.ovw_old = b[i]
                self.ovw_new = b[i] ^ 0xFF
                b = b[:i] + bytes([self.ovw_new]) + b[i + 1:]
            h_ovw.update(b)
        self.old_sha = h_old.hexdigest()
        h_app = h_old.copy()
        h_app.update(bytes([APPEND_BYTE]))
        self.new = {"overwrite": (self.size, h_ovw.hexdigest()),
                    "append": (self.size + 1, h_app.hexdigest())}

    def write_lower(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            for c in range(self.size // MiB):
                f.write(pattern_chunk(c))

    def change(self, mode):
        return (self.ovw_off, self.ovw_new) if mode == "overwrite" else (0, APPEND_BYTE)

    def classify(self, path, mode):
        """('old' | 'new' | 'missing' | 'bad', detail)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return "missing", "no such file"
        if not stat.S_ISREG(st.st_mode):
            return "bad", f"not a regular file (mode {st.st_mode:o})"
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while True:
                b = f.read(MiB)
                if not b:
                    break
                h.update(b)
        d = h.hexdigest()
        new_size, new_sha = self.new[mode]
        if st.st_size == self.size and d == self.old_sha:
            return "old", "old content"
        if st.st_size == new_size and d == new_sha:
            return "new", "new content"
        return "bad", self.explain(path, st.st_size)

    def explain(self, path, size):
        """Where a file stops matching the old content."""
        parts = [f"size {size} (old {self.size})"]
        with open(path, "rb") as f:
            for c in range((size + MiB - 1) // MiB):
                got = f.read(MiB)
                want = pattern_chunk(c) if c < self.size // MiB else b""
                if got[:len(want)] == want[:len(got)] and len(got) <= len(want):
                    continue
                i = next((k for k in range(min(len(got), len(want)))
                          if got[k] != want[k]), min(len(got), len(want)))
                off = c * MiB + i
                rest = got[i:]
                parts.append(f"first byte unlike the old content at {off} "
                             f"(block {off // BLOCK})")
                if rest and rest.count(0) == len(rest):
                    parts.append("zeros from there to the end of that MiB")
                break
        if size < self.size:
            parts.append("truncated" if size else "empty")
        return "; ".join(parts)


# --- the checkers ------------------------------------------------------------
def list_tree(root):
    """[(relpath, kind, size)] of everything under root."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        for n in sorted(dirs) + sorted(files):
            p = os.path.join(dirpath, n)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            kind = ("dir" if stat.S_ISDIR(st.st_mode) else
                    "file" if stat.S_ISREG(st.st_mode) else
                    "whiteout" if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 else
                    f"mode {st.st_mode:o}")
            out.append((os.path.relpath(p, root), kind, st.st_size))
    return out


def fmt_tree(entries):
    if not entries:
        return "empty"
    return ", ".join(f"{p}/" if k == "dir" else f"{p} ({k}, {s} bytes)"
                     for p, k, s in entries)


def work_leftovers(W):
    """What may not be in the work directory once a mount is up: anything but
    empty directories directly under W."""
    return [(p, k, s) for p, k, s in list_tree(W)
            if k != "dir" or os.sep in p]


def upper_problem(content, U, mode):
    """None if U holds no partial file under the file's name, else why."""
    p = os.path.join(U, REL)
    if not os.path.lexists(p):
        return None
    cls, detail = content.classify(p, mode)
    if cls in ("old", "new"):
        return None
    return f"partial file in the upper layer under {REL}: {detail}"


# --- mounting and killing ----------------------------------------------------
class Target:
    def __init__(self, kind, top, L0, L1):
        self.kind = kind
        self.top = top
        self.L0, self.L1 = L0, L1
        self.U = os.path.join(top, "U")
        self.W = os.path.join(top, "W")
        self.M = os.path.join(top, "M")
        os.makedirs(self.M, exist_ok=True)
        self.fg = None
        self.log = os.path.join(top, "daemon.log")

    def fresh(self):
        for d in (self.U, self.W):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)

    def opts(self):
        return f"lowerdir={self.L0}:{self.L1},upperdir={self.U},workdir={self.W}"

    def mount(self, foreground=False):
        """Foreground: keep the daemon's Popen to kill it later."""
        if self.kind == "kernel":
            r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                                self.opts(), self.M],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError(f"mount -t overlay failed: {r.stderr.strip()}")
            return
        if not foreground:
            mount_stratafs(self.opts(), self.M)
            return
        with open(self.log, "wb") as log:
            self.fg = subprocess.Popen([stratafs_bin(), "-f", "-o", self.opts(), self.M],
                                       stdout=subprocess.DEVNULL, stderr=log)
        if not wait_mounted(self.M, proc=self.fg):
            self.fg.kill()
            self.fg.wait()
            raise RuntimeError(f"stratafs -f did not mount: {self.daemon_log()}")

    def daemon_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read().strip()[-2000:]
        except OSError:
            return ""

    def crash(self, writer):
        """stratafs: SIGKILL the daemon.  Kernel: SIGKILL the writer."""
        if self.kind == "kernel":
            writer.send_signal(signal.SIGKILL)
        else:
            self.fg.send_signal(signal.SIGKILL)
            self.fg.wait(timeout=30)
            self.fg = None

    def drop_dead_mount(self):
        subprocess.run(["umount", "-l", self.M], capture_output=True)
        return not is_mounted(self.M)

    def umount(self):
        unmount(self.M)
        if is_mounted(self.M):
            subprocess.run(["umount", "-l", self.M], capture_output=True)
            return "the mount did not go away with a plain unmount"
        if self.kind != "kernel" and not wait_gone(self.M):
            return "stratafs did not exit within 10 s of the unmount"
        return None

    def cleanup(self):
        if self.fg is not None:
            self.fg.kill()
            self.fg.wait()
            self.fg = None
        if is_mounted(self.M):
            subprocess.run(["umount", "-l", self.M], capture_output=True)




def start_writer(tgt, content, mode, step=False):
    """Start the writer and wait until it is about to call open()."""
    off, val = content.change(mode)
    w = subprocess.Popen([sys.executable, "-c", WRITER, os.path.join(tgt.M, REL),
                          mode, str(off), str(val), "1" if step else "0"],
                         stdin=subprocess.PIPE if step else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    w.stages = ""
    if not wait_stage(w, "R", 30):
        w.kill()
        w.wait()
        raise RuntimeError(f"the writer did not start: {w.stderr.read().decode()}")
    return w


def wait_stage(w, want, timeout):
    """Read the writer's stage bytes until `want` (True) or EOF/timeout."""
    end = time.monotonic() + timeout
    while want not in w.stages:
        r, _, _ = select.select([w.stdout], [], [], max(0.0, end - time.monotonic()))
        if not r:
            return False
        b = os.read(w.stdout.fileno(), 1)
        if not b:
            return False
        w.stages += b.decode(errors="replace")
    return True


def finish_writer(w, timeout=60):
    """Let a stepped writer go on, reap it; returns (stages reached, exit
    status, last stderr line)."""
    if w.stdin is not None:
        w.stdin.close()
    try:
        w.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        w.kill()
        w.wait()
    w.stages += w.stdout.read().decode(errors="replace")
    err = w.stderr.read().decode(errors="replace").strip().splitlines()
    return w.stages, w.returncode, (err[-1] if err else "")


def stage_text(stages):
    return STAGES.get(stages[-1:], repr(stages))


# --- the iterations ----------------------------------------------------------
def baseline(tgt, content, mode):
    """No kill: the writer completes, the content is the new one after a
    remount, and how long the copy-up took."""
    tgt.fresh()
    tgt.mount(foreground=True)
    problems = []
    try:
        t0 = time.monotonic()
        w = start_writer(tgt, content, mode)
        wait_stage(w, "O", 120)
        copy_ms = (time.monotonic() - t0) * 1000
        stages, rc, err = finish_writer(w, timeout=120)
        total_ms = (time.monotonic() - t0) * 1000
        if rc != 0:
            problems.append(f"writer failed (rc {rc}, reached: {stage_text(stages)}): {err}")
        print(f"# baseline ({mode}): open O_WRONLY (the copy-up) took {copy_ms:.0f} ms, "
              f"open-to-close {total_ms:.0f} ms", flush=True)
    finally:
        if tgt.kind == "kernel":
            p = tgt.umount()
        else:
            unmount(tgt.M)
            try:
                tgt.fg.wait(timeout=10)
                p = None if tgt.fg.returncode == 0 else \
                    f"stratafs -f exited with {tgt.fg.returncode}: {tgt.daemon_log()}"
            except subprocess.TimeoutExpired:
                p = "stratafs -f did not exit within 10 s of the unmount"
                tgt.fg.kill()
                tgt.fg.wait()
            tgt.fg = None
    if p:
        problems.append(p)
    tgt.mount()
    try:
        cls, detail = content.classify(os.path.join(tgt.M, REL), mode)
        if cls != "new":
            problems.append(f"merged file after the remount: {cls}: {detail}")
        left = work_leftovers(tgt.W)
        if left:
            problems.append(f"left in the work directory: {fmt_tree(left)}")
        up = upper_problem(content, tgt.U, mode)
        if up:
            problems.append(up)
    finally:
        p = tgt.umount()
    if p:
        problems.append(p)
    return not problems, "\n".join(problems)


def guarded(fn, tgt, *args):
    """Run an iteration; on an exception leave no daemon or mount behind."""
    try:
        return fn(tgt, *args)
    except BaseException:
        tgt.cleanup()
        raise


def crash_iteration(tgt, content, mode, delay_ms, info, at_stage=None):
    """Kill after delay_ms from the writer's open(), or (at_stage "O" or "W")
    once the writer has reached that stage and waits."""
    tgt.fresh()
    tgt.mount(foreground=True)
    problems = []
    w = start_writer(tgt, content, mode, step=at_stage is not None)
    if at_stage is None:
        time.sleep(delay_ms / 1000)
    elif at_stage == "W" and wait_stage(w, "O", 120):
        w.stdin.write(b"g")     # go on past the open
        w.stdin.flush()
    if at_stage is not None and not wait_stage(w, at_stage, 120):
        problems.append(f"the writer did not reach '{STAGES[at_stage]}' "
                        f"(reached: {stage_text(w.stages)})")
    done_before_kill = w.poll() == 0
    tgt.crash(w)
    # Reap the writer (the dead connection fails its request, or the kernel
    # aborts its copy-up), then drop the dead mount.
    stages, rc, err = finish_writer(w)
    if not tgt.drop_dead_mount():
        problems.append("umount -l of the dead mount failed")
    reached = stage_text(stages)
    info["reached"] = reached
    if done_before_kill:
        info["reached"] = "closed, before the kill"

    # The state the crash left.
    up = upper_problem(content, tgt.U, mode)
    if up:
        problems.append("right after the crash: " + up)
    w_crash = list_tree(tgt.W)
    u_crash = list_tree(tgt.U)
    print(f"#   writer: {info['reached']} (rc {rc}{': ' + err if err and rc else ''})",
          flush=True)
    print(f"#   after the kill: U: {fmt_tree(u_crash)}", flush=True)
    print(f"#   after the kill: W: {fmt_tree(w_crash)}", flush=True)

    # Remount on the same upper and work directories.
    try:
        tgt.mount()
    except RuntimeError as e:
        problems.append(f"remount on the same upper/work fails: {e}")
        return False, "\n".join(problems)
    try:
        cls, detail = content.classify(os.path.join(tgt.M, REL), mode)
        info["result"] = cls
        if cls not in ("old", "new"):
            problems.append(f"merged file after the remount: {cls}: {detail}")
        elif done_before_kill and cls != "new":
            problems.append("the writer had closed the file before the kill, "
                            f"but the merged file holds the {cls} content")
        elif at_stage == "O" and cls != "old":
            problems.append("killed before the writer wrote anything, "
                            f"but the merged file holds the {cls} content")
        w_after = list_tree(tgt.W)
        print(f"#   after the remount: W: {fmt_tree(w_after)}", flush=True)
        left = work_leftovers(tgt.W)
        if left:
            problems.append(f"left in the work directory after the remount: "
                            f"{fmt_tree(left)}")
        up = upper_problem(content, tgt.U, mode)
        if up:
            problems.append("after the remount: " + up)
    finally:
        p = tgt.umount()
    if p:
        problems.append(p)
    return not problems, "\n".join(problems)


# --- the harness checked on hand-made states (no mount) ------------------------
def harness_selftest(t, content, top, lower_file):
    d = os.path.join(top, "selftest")
    os.makedirs(d)
    f = os.path.join(d, "f")

    def copy_lower(extra=b"", truncate=None, zero_tail=0):
        shutil.copyfile(lower_file, f)
        with open(f, "r+b") as fh:
            if zero_tail:
                fh.seek(content.size - zero_tail)
                fh.write(bytes(zero_tail))
            if truncate is not None:
                fh.truncate(truncate)
            fh.seek(0, 2)
            fh.write(extra)

    copy_lower()
    t.ok(content.classify(f, "append")[0] == "old", "harness: a copy of the lower is 'old'")
    copy_lower(extra=bytes([APPEND_BYTE]))
    t.ok(content.classify(f, "append")[0] == "new", "harness: lower + appended byte is 'new'")
    copy_lower()
    with open(f, "r+b") as fh:
        fh.seek(content.ovw_off)
        fh.write(bytes([content.ovw_new]))
    t.ok(content.classify(f, "overwrite")[0] == "new",
         "harness: lower with the byte overwritten is 'new'")
    for name, kw in (("truncated to half", {"truncate": content.size // 2}),
                     ("empty", {"truncate": 0}),
                     ("full size, last MiB zero", {"zero_tail": MiB}),
                     ("one byte short", {"truncate": content.size - 1})):
        copy_lower(**kw)
        cls, detail = content.classify(f, "append")
        t.ok(cls == "bad", f"harness: a copy {name} is caught", f"{cls}: {detail}")
        print(f"#   {detail}", flush=True)
    # upper and work checkers
    U = os.path.join(d, "U")
    os.makedirs(os.path.dirname(os.path.join(U, REL)))
    t.ok(upper_problem(content, U, "append") is None, "harness: no upper file is fine")
    copy_lower(truncate=content.size // 3)
    os.rename(f, os.path.join(U, REL))
    t.ok(upper_problem(content, U, "append") is not None,
         "harness: a partial upper file is caught")
    W = os.path.join(d, "W")
    os.makedirs(os.path.join(W, "work"))
    os.makedirs(os.path.join(W, "index"))
    ok_empty = not work_leftovers(W)
    with open(os.path.join(W, "work", "#1f"), "w") as fh:
        fh.write("x")
    caught_work = bool(work_leftovers(W))
    os.unlink(os.path.join(W, "work", "#1f"))
    os.makedirs(os.path.join(W, "work", "#20"))
    caught_dir = bool(work_leftovers(W))
    os.rmdir(os.path.join(W, "work", "#20"))
    open(os.path.join(W, ".tmp-copyup"), "w").close()
    caught_top = bool(work_leftovers(W))
    t.ok(ok_empty and caught_work and caught_dir and caught_top,
         "harness: work check passes empty dirs, catches a file or a dir in W/work "
         "and a file in W",
         f"empty ok {ok_empty}, file in work {caught_work}, dir in work {caught_dir}, "
         f"file in W {caught_top}")
    shutil.rmtree(d)


# --- main --------------------------------------------------------------------
def bail_out(why):
    print("1..0")
    print(f"Bail out! {why}", flush=True)
    return 1


def snapshot(root):
    out = {}
    for dirpath, dirs, files in os.walk(root):
        out[os.path.relpath(dirpath, root)] = "dir"
        for n in files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", choices=("stratafs", "kernel"), default="stratafs")
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--max-delay-ms", type=float, default=300.0)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--meson", action="store_true")
    args = ap.parse_args(argv)

    if args.against == "kernel":
        if os.geteuid() != 0:
            skip_all("needs root")
    else:
        require_root_fuse()
        if not os.access(stratafs_bin(), os.X_OK):
            return bail_out(f"stratafs binary not found or not executable: "
                            f"{stratafs_bin()} (set STRATAFS)")

    top = tempfile.mkdtemp(prefix="stratafs-crash-")
    os.chmod(top, 0o755)
    tgt = None
    try:
        L0 = os.path.join(top, "L0")
        L1 = os.path.join(top, "L1")
        os.makedirs(os.path.join(L0, "data"))
        with open(os.path.join(L0, "data", "note"), "w") as f:
            f.write("top layer\n")
        tgt = Target(args.against, top, L0, L1)

        # Probe before the 256 MiB are written: a skip should be cheap.
        os.makedirs(L1)
        why = probe_writable(tgt)
        if why is not None:
            why = " ".join(why.split())
            if args.against == "kernel":
                skip_all(f"the kernel overlayfs does not mount writable here: {why}")
            if "upperdir" not in why and "Read-only" not in why:
                return bail_out(f"stratafs does not mount with upperdir: {why}")
            print(f"# {why}", flush=True)
            skip_all("stratafs has no writable mode yet")

        t0 = time.monotonic()
        content = Content(args.size_mib)
        lower_file = os.path.join(L1, REL)
        content.write_lower(lower_file)
        before = {"L0": snapshot(L0), "L1": snapshot(L1)}
        print(f"# target: {args.against}; lower file {content.size // MiB} MiB, "
              f"written in {time.monotonic() - t0:.1f} s; seed {args.seed}", flush=True)

        t = Tap()
        if args.against == "kernel":
            harness_selftest(t, content, top, lower_file)

        rnd = random.Random(args.seed)
        n = args.iterations
        # Evenly spread over 0-300 ms, in a seeded order.
        delays = [(i + rnd.random()) * args.max_delay_ms / n for i in range(n)]
        rnd.shuffle(delays)
        modes = [rnd.choice(("overwrite", "append")) for _ in range(n)]

        t.run("baseline, no kill: the writer's change is there after a remount "
              "(overwrite)", guarded, baseline, tgt, content, "overwrite")
        t.run("baseline, no kill: the writer's change is there after a remount "
              "(append)", guarded, baseline, tgt, content, "append")
        what = "the daemon" if args.against == "stratafs" else "the writer"
        tally = {}
        for i in range(n):
            info = {}
            print(f"# iteration {i + 1}: {modes[i]}, SIGKILL {what} after "
                  f"{delays[i]:.0f} ms", flush=True)
            ok = t.run(f"crash {i + 1}: {modes[i]}, SIGKILL {what} after {delays[i]:.0f} ms: "
                       f"merged file old or new, nothing partial, work dir clean",
                       guarded, crash_iteration, tgt, content, modes[i], delays[i], info)
            key = f"{info.get('reached', '?')} -> {info.get('result', '?')}"
            tally[key] = tally.get(key, 0) + 1
            if not ok and args.against == "stratafs":
                log = tgt.daemon_log()
                if log:
                    print("# daemon stderr: " + log.replace("\n", "\n# "), flush=True)
        # Kills at a chosen stage: after open() returned (the copy-up is
        # complete, nothing written yet: must be the old content), and after
        # the write returned but before close (old or new: the byte may
        # still sit in the kernel's page cache when the daemon dies).
        for stage, mode in (("O", "overwrite"), ("W", "append")):
            info = {}
            label = {"O": "after open() returned, before the write",
                     "W": "after the write returned, before close()"}[stage]
            print(f"# stage kill: {mode}, SIGKILL {what} {label}", flush=True)
            t.run(f"crash at a stage: {mode}, SIGKILL {what} {label}: "
                  f"merged file {'old' if stage == 'O' else 'old or new'}, "
                  f"nothing partial, work dir clean",
                  guarded, crash_iteration, tgt, content, mode, 0, info, stage)
            key = f"{info.get('reached', '?')} -> {info.get('result', '?')}"
            tally[key] = tally.get(key, 0) + 1
        for k, v in sorted(tally.items()):
            print(f"# outcome: writer {k}: {v}x", flush=True)

        after = {"L0": snapshot(L0), "L1": snapshot(L1)}
        same = after == before and content.classify(lower_file, "append")[0] == "old"
        t.ok(same, "the lower layers are unchanged (the lower file's sha256 too)")
        print(f"1..{t.n}", flush=True)
        print(f"# {time.monotonic() - t0:.1f} s", flush=True)
        return 1 if t.failed and not args.meson else 0
    finally:
        if tgt is not None:
            tgt.cleanup()
        leave_top(top, args.keep)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
