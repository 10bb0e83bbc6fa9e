"""Minimal TAP producer and mount helpers shared by the integration tests."""
import os
import subprocess
import sys
import time
import traceback

SKIP = 77


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        if cond:
            print(f"ok {self.n} - {name}", flush=True)
        else:
            self.failed += 1
            print(f"not ok {self.n} - {name}", flush=True)
            for line in (diag or "").splitlines():
                print(f"# {line}", flush=True)
        return cond

    def run(self, name, fn, *args):
        """Run fn; an exception is a failure with its traceback."""
        try:
            r = fn(*args)
        except Exception:
            return self.ok(False, name, traceback.format_exc())
        if isinstance(r, tuple):
            return self.ok(r[0], name, r[1])
        return self.ok(bool(r), name)

    def done(self):
        print(f"1..{self.n}", flush=True)
        sys.exit(1 if self.failed else 0)


def skip_all(reason):
    """Skip the whole test.  Standalone: exit 77, the automake convention.
    Under meson (--meson), whose TAP mode counts any non-zero exit as an
    error: exit 0, the '1..0 # SKIP' plan makes meson report a skip."""
    print(f"1..0 # SKIP {reason}", flush=True)
    sys.exit(0 if "--meson" in sys.argv else SKIP)


def require_root_fuse():
    if os.geteuid() != 0:
        skip_all("needs root")
    if not os.path.exists("/dev/fuse"):
        skip_all("no /dev/fuse")


def stratafs_bin():
    b = os.environ.get("STRATAFS")
    if not b:
        here = os.path.dirname(os.path.abspath(__file__))
        b = os.path.join(here, "..", "..", "build", "stratafs")
    return os.path.abspath(b)


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4] == path:
                return True
    return False


def wait_mounted(path, timeout=10.0, proc=None):
    end = time.time() + timeout
    while time.time() < end:
        if is_mounted(path):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def daemon_pids(mnt):
    """PIDs of live (non-zombie) stratafs processes whose argv names mnt."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{p}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or not argv or b"stratafs" not in argv[0]:
            continue
        if any(os.path.realpath(a.decode(errors="replace")) == os.path.realpath(mnt)
               for a in argv[1:] if a):
            pids.append(int(p))
    return pids


def wait_gone(mnt, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if not daemon_pids(mnt):
            return True
        time.sleep(0.05)
    return False


def unmount(mnt):
    """Unmount whatever is on mnt, FUSE or not; never raises."""
    for cmd in (["fusermount3", "-u", mnt], ["umount", mnt], ["umount", "-l", mnt]):
        if not is_mounted(mnt):
            return
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def mount_stratafs(opts, mnt, extra=(), env=None, foreground=False):
    """Mount stratafs (daemonized unless foreground); returns the Popen or
    CompletedProcess.  Raises if the mount does not appear."""
    argv = [stratafs_bin()] + list(extra) + ["-o", opts, mnt]
    if foreground:
        p = subprocess.Popen(argv[:1] + ["-f"] + argv[1:],
                             stderr=subprocess.PIPE, env=env)
        if not wait_mounted(mnt, proc=p):
            p.kill()
            raise RuntimeError(f"stratafs did not mount: {p.stderr.read().decode()}")
        return p
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    if r.returncode != 0 or not is_mounted(mnt):
        raise RuntimeError(f"stratafs failed rc={r.returncode}: {r.stderr}")
    return r


def probe_writable(tgt):
    """None if tgt (an object with fresh/mount/umount and M) mounts
    writable, else the reason, for a skip."""
    tgt.fresh()
    try:
        tgt.mount()
    except RuntimeError as e:
        return str(e)
    try:
        p = os.path.join(tgt.M, ".probe")
        try:
            with open(p, "w") as f:
                f.write("x")
            os.unlink(p)
        except OSError as e:
            return f"writing in the mount fails: {e}"
    finally:
        tgt.umount()
    return None
