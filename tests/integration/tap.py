"""Minimal TAP producer and mount helpers shared by the integration tests."""
import os
import shutil
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

    def skip(self, name, reason):
        """A check that cannot run in this configuration (TAP # SKIP)."""
        self.n += 1
        print(f"ok {self.n} - {name} # SKIP {reason}", flush=True)

    def done(self):
        check_daemon_reports(self)
        print(f"1..{self.n}", flush=True)
        sys.exit(1 if self.failed else 0)


def skip_all(reason):
    """Skip the whole test.  Standalone: exit 77, the automake convention.
    Under meson (--meson), whose TAP mode counts any non-zero exit as an
    error: exit 0, the '1..0 # SKIP' plan makes meson report a skip."""
    print(f"1..0 # SKIP {reason}", flush=True)
    sys.exit(0 if "--meson" in sys.argv else SKIP)


def leave_top(top, keep):
    """At the end of a test: remove its scratch tree, or say where it is
    kept (--keep)."""
    if keep:
        print(f"# kept {top}", flush=True)
    else:
        shutil.rmtree(top, ignore_errors=True)


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
    b = os.path.abspath(b)
    if os.environ.get("STRATAFS_WRAPPER"):
        return wrapper_script(os.path.realpath(b))
    return b


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4] == path:
                return True
    return False


def wait_mounted(path, timeout=10.0, proc=None):
    end = time.time() + timeout * SLOW
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
        if state == "Z" or not argv or not _is_daemon_argv(argv):
            continue
        if any(os.path.realpath(a.decode(errors="replace")) == os.path.realpath(mnt)
               for a in argv[1:] if a):
            pids.append(int(p))
    return pids


def wait_gone(mnt, timeout=10.0):
    end = time.time() + timeout * SLOW
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
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30 * SLOW, env=env)
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


# --- sanitizer and valgrind runs -------------------------------------------
# A detached daemon keeps no stderr, so sanitizer and valgrind reports must
# go to files, and a test must look at them.  Two environment variables
# turn this on (meson.build sets them for a -Db_sanitize build and for
# `meson test --setup valgrind`; by hand, set them yourself):
#   STRATAFS_SANITIZER_LOG_DIR  ASan/LSan/UBSan reports of every process
#       started from here go to DIR/san.PID (ASAN_OPTIONS/UBSAN_OPTIONS get
#       log_path unless they already have one); any such file is a failure.
#   STRATAFS_VALGRIND_LOG_DIR   stratafs_bin() is a script that runs the
#       daemon under valgrind (memcheck, full leak check, definite leaks are
#       errors), one log per process in DIR/vg.PID; an error in any is a
#       failure.  STRATAFS_WRAPPER, if set, is used instead (any argv prefix,
#       split like a shell would).
# Daemons started through mount(8), mount.fuse3 and as other users inherit
# the environment: the directories are world-writable (sticky).  At done()
# each test waits for the daemons it started to end and adds one TAP line
# for the reports that appeared while it ran.
#
# Which daemons are a test's own: a detached daemon is reparented away
# from the test, and the same binary may be running for someone else at
# the same time (another test suite on the same build, a mount by hand).
# Waiting for every process of the binary made a test wait its full
# timeout (8 min under valgrind) for a daemon that was not its own.  So
# with either directory set, the test puts a token in its environment,
# STRATAFS_TAP_OWNER (kept if inherited: helpers it runs, like
# contrib/stress/stress.py, count as the test), which every process it
# starts inherits; the wrapper script sets it as well, for callers that
# pass their own environment.  A process of this binary is the test's own
# when its /proc/PID/environ holds the token.  check_reports.py, at the end
# of the run, waits instead for every process of the binary that was
# started for the same log directory (own_daemon_pids(run_wide=True)).

SAN_DIR = os.environ.get("STRATAFS_SANITIZER_LOG_DIR") or None
VG_DIR = os.environ.get("STRATAFS_VALGRIND_LOG_DIR") or None
if VG_DIR and not os.environ.get("STRATAFS_WRAPPER"):
    os.environ["STRATAFS_WRAPPER"] = (
        "valgrind --leak-check=full --errors-for-leak-kinds=definite"
        " --show-leak-kinds=definite --error-exitcode=99 --num-callers=30"
        f" --log-file={VG_DIR}/vg.%p")
WRAPPED = bool(os.environ.get("STRATAFS_WRAPPER"))
# how much slower the daemon is (valgrind: ~10x startup, more on CPU work);
# the helpers here scale their waits by it, tests may too
SLOW = float(os.environ.get("STRATAFS_SLOW") or (8 if WRAPPED else 1))

SANITIZER_DEFAULTS = {
    # fast_unwind_on_malloc=0: whole allocation stacks, through libc and glib
    "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:abort_on_error=0:print_summary=1"
                    ":fast_unwind_on_malloc=0",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:print_summary=1",
}


def _log_dir_setup():
    for d in (SAN_DIR, VG_DIR):
        if d:
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o1777)
    if SAN_DIR:
        for var, opts in SANITIZER_DEFAULTS.items():
            cur = os.environ.get(var, "")
            if "log_path=" not in cur:
                os.environ[var] = ":".join(
                    x for x in (opts, cur, f"log_path={SAN_DIR}/san") if x)


def _log_files():
    out = set()
    for d, prefix in ((SAN_DIR, "san."), (VG_DIR, "vg.")):
        if d and os.path.isdir(d):
            out |= {os.path.join(d, n) for n in os.listdir(d) if n.startswith(prefix)}
    return out


OWNER_VAR = "STRATAFS_TAP_OWNER"
if SAN_DIR or VG_DIR:
    os.environ.setdefault(OWNER_VAR, f"{os.getpid()}.{os.urandom(6).hex()}")

_log_dir_setup()
_LOGS_BEFORE = _log_files()
_WRAPPER_DIR = None


def wrapper_script(real):
    """An executable script that runs real under STRATAFS_WRAPPER, for every
    way a test starts the daemon (argv, mount -t fuse.PATH, other users).
    Named stratafs, in a world-readable directory removed at exit."""
    global _WRAPPER_DIR
    import atexit
    import shlex
    import shutil
    import tempfile
    if _WRAPPER_DIR is None:
        _WRAPPER_DIR = tempfile.mkdtemp(prefix="stratafs-wrap-")
        os.chmod(_WRAPPER_DIR, 0o755)
        atexit.register(shutil.rmtree, _WRAPPER_DIR, True)
    path = os.path.join(_WRAPPER_DIR, "stratafs")
    # the variables that tell whose daemon it is (own_daemon_pids), even
    # when the caller passes the daemon an environment of its own
    marks = " ".join(f"{v}={shlex.quote(os.environ[v])}"
                     for v in (OWNER_VAR, "STRATAFS_VALGRIND_LOG_DIR",
                               "STRATAFS_SANITIZER_LOG_DIR") if os.environ.get(v))
    with open(path, "w") as f:
        f.write("#!/bin/sh\n# tap.py: the daemon under STRATAFS_WRAPPER\n"
                + (f"export {marks}\n" if marks else "")
                + f"exec {os.environ['STRATAFS_WRAPPER']} {shlex.quote(real)} \"$@\"\n")
    os.chmod(path, 0o755)
    return path


def real_stratafs_bin():
    """The stratafs binary itself, even when stratafs_bin() is a wrapper."""
    b = os.environ.get("STRATAFS")
    if not b:
        here = os.path.dirname(os.path.abspath(__file__))
        b = os.path.join(here, "..", "..", "build", "stratafs")
    return os.path.realpath(b)


def _is_daemon_argv(argv):
    """argv (bytes items, from /proc) is a stratafs process, wrapped or not."""
    if b"stratafs" in argv[0]:
        return True
    return WRAPPED and any(os.path.basename(a) == b"stratafs" for a in argv[1:])


def _owner_marks(run_wide):
    """The environment entries (bytes) of which a process of this binary
    must hold one to count as ours; None: any process of it counts."""
    if run_wide:
        marks = [f"{v}={d}" for v, d in (("STRATAFS_VALGRIND_LOG_DIR", VG_DIR),
                                         ("STRATAFS_SANITIZER_LOG_DIR", SAN_DIR)) if d]
    else:
        marks = [f"{OWNER_VAR}={os.environ[OWNER_VAR]}"] if os.environ.get(OWNER_VAR) else []
    return {m.encode() for m in marks} or None


def own_daemon_pids(real=None, run_wide=False):
    """Live processes running this build's binary, directly or wrapped,
    that this test started (see OWNER_VAR above), or with run_wide that
    any test started for the same sanitizer/valgrind log directory."""
    real = (real or real_stratafs_bin()).encode()
    marks = _owner_marks(run_wide)
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            exe = os.readlink(f"/proc/{p}/exe").encode()
            with open(f"/proc/{p}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{p}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state == "Z" or not (exe == real or (WRAPPED and real in argv)):
                continue
            if marks is not None:
                with open(f"/proc/{p}/environ", "rb") as f:
                    if marks.isdisjoint(f.read().split(b"\0")):
                        continue
        except OSError:
            continue
        pids.append(int(p))
    return pids


# the first line of each kind of memcheck error, and a fatal signal
VG_ERROR = r"^==\d+== (Invalid (read|write|free)|Mismatched free|Conditional jump" \
    r"|Use of uninitialised|Syscall param|Source and destination overlap" \
    r"|Argument '|Process terminating)|definitely lost in loss record"


def report_problems(path):
    """None if the log at path is clean, else the text worth showing."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError as e:
        return f"{path}: {e}"
    if os.path.basename(path).startswith("vg."):
        import re
        errs = [int(n) for n in re.findall(r"ERROR SUMMARY: (\d+) errors", text)]
        # a process killed with SIGKILL (test_crash) writes no summary: then
        # only the error headers count
        bad = any(errs) or re.search(VG_ERROR, text, re.M)
        if not bad:
            return None
    elif not text.strip():
        return None
    elif all("LeakSanitizer has encountered a fatal error" in l
             or "HINT:" in l for l in text.strip().splitlines()):
        # a daemon traced by strace (crashops, durability, options) cannot
        # run the leak check at exit: LSan's limitation, not a finding
        return None
    lines = text.splitlines()
    return "\n".join([f"--- {path}"] + lines[:80] +
                     ([f"... ({len(lines) - 80} more lines)"] if len(lines) > 80 else []))


def wait_own_daemons_gone(timeout=60.0, run_wide=False):
    end = time.time() + timeout * SLOW
    while time.time() < end:
        if not own_daemon_pids(run_wide=run_wide):
            return True
        time.sleep(0.2)
    return False


def _describe(pid):
    """PID and its command line, for a diagnostic."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        argv = "?"
    return f"{pid} ({argv[-300:]})"


def check_daemon_reports(t):
    """One TAP line: no sanitizer report / valgrind error from any process
    started while this test ran (nothing when neither is configured)."""
    if not (SAN_DIR or VG_DIR):
        return
    gone = wait_own_daemons_gone()
    new = sorted(_log_files() - _LOGS_BEFORE)
    problems = [p for p in (report_problems(f) for f in new) if p]
    if not gone:
        problems.append("daemons still running: "
                        + ", ".join(_describe(p) for p in own_daemon_pids()))
    if VG_DIR:
        name = f"valgrind: no error in the {len(new)} process logs of this test"
    else:
        name = "sanitizers: no report from the processes this test started"
    t.ok(not problems, name, "\n".join(problems))
