#!/usr/bin/env python3
"""Command line behaviour: version/help, every bad input (one line on
stderr, non-zero exit, nothing mounted), daemonizing only once the mount is
live without keeping stderr open, exiting on every kind of unmount, the
call shapes of users, mount.fuse3 and containers-storage, and EROFS."""
import errno
import os
import shutil
import subprocess
import tempfile
import time

from tap import (Tap, daemon_pids, is_mounted, mount_stratafs,
                 require_root_fuse, stratafs_bin, unmount, wait_gone)

require_root_fuse()
t = Tap()
S = stratafs_bin()
top = tempfile.mkdtemp(prefix="stratafs-cli-")
os.chmod(top, 0o755)


def mk(path, data=None):
    p = os.path.join(top, path)
    if data is None:
        os.makedirs(p, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(data)
    return p


A = mk("a")
B = mk("b")
mk("a/top", "from a\n")
mk("b/top", "from b\n")
mk("b/bottom", "only b\n")
MNT = mk("mnt")


def run(*argv, **kw):
    return subprocess.run([S] + list(argv), capture_output=True, text=True,
                          timeout=30, **kw)


# --- version and help --------------------------------------------------------
r = run("--version")
t.ok(r.returncode == 0 and r.stdout.startswith("stratafs version "),
     "--version exits 0 and prints the version on stdout", r.stdout + r.stderr)
r = run("--help")
t.ok(r.returncode == 0 and "lowerdir=" in r.stdout, "--help exits 0 and shows the options")


# --- bad input ---------------------------------------------------------------
afile = mk("afile", "x")
unreadable = mk("unreadable")
os.chmod(unreadable, 0o000)
many = ":".join([A] * 501)

bad = [
    ("no arguments", [], "mount point"),
    ("missing lowerdir", [MNT], "lowerdir"),
    ("lowerdir does not exist", ["-o", f"lowerdir={top}/nope", MNT], f"{top}/nope"),
    ("lowerdir is a file", ["-o", f"lowerdir={afile}", MNT], "not a directory"),
    ("lowerdir with a newline stays one line", ["-o", f"lowerdir={top}/x\ny", MNT], "x?y"),
    ("mount point missing", ["-o", f"lowerdir={A}", f"{top}/nomnt"], "nomnt"),
    ("mount point is a file", ["-o", f"lowerdir={A}", afile], "not a directory"),
    ("empty lowerdir item", ["-o", f"lowerdir={A}::{B}", MNT], "empty"),
    ("empty lowerdir value", ["-o", "lowerdir=", MNT], "lowerdir"),
    ("malformed threaded", ["-o", f"lowerdir={A},threaded=7", MNT], "threaded"),
    ("malformed timeout", ["-o", f"lowerdir={A},timeout=abc", MNT], "timeout"),
    ("value on a flag", ["-o", f"lowerdir={A},ro=1", MNT], "ro"),
    ("too many layers", ["-o", f"lowerdir={many}", MNT], "too many"),
    ("unknown command-line flag", ["-x", "-o", f"lowerdir={A}", MNT], "-x"),
    ("too many positionals", ["-o", f"lowerdir={A}", "s", MNT, "extra"], "extra"),
    ("upperdir without workdir", ["-o", f"lowerdir={A},upperdir={B}", MNT], "workdir"),
]
for name, argv, needle in bad:
    r = run(*argv)
    lines = r.stderr.splitlines()
    good = (r.returncode != 0 and len(lines) == 1 and needle in lines[0]
            and lines[0].startswith("stratafs: ") and not is_mounted(MNT))
    t.ok(good, f"bad input: {name}: one line naming '{needle}', exit != 0",
         f"rc={r.returncode} stderr={r.stderr!r}")
    unmount(MNT)

# An unreadable lower is only unreadable to a non-root caller.
r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                    S, "-o", f"lowerdir={unreadable}", MNT],
                   capture_output=True, text=True, timeout=30)
t.ok(r.returncode != 0 and len(r.stderr.splitlines()) == 1 and
     "not readable" in r.stderr and unreadable in r.stderr,
     "bad input: unreadable lowerdir is refused naming it", r.stderr)
unmount(MNT)

# The layers were not written to by any of the failed attempts.
t.ok(sorted(os.listdir(A)) == ["top"] and sorted(os.listdir(B)) == ["bottom", "top"],
     "failed mounts leave the layers untouched")


# --- unknown options: warning naming it, then go on ---------------------------
r = run("-o", f"lowerdir={A},bogus_opt=3,another", MNT)
t.ok(r.returncode == 0 and is_mounted(MNT) and "bogus_opt" in r.stderr
     and "another" in r.stderr and len(r.stderr.splitlines()) == 2,
     "unknown options: one warning line each, mount proceeds", r.stderr)
unmount(MNT)
wait_gone(MNT)

# Generic mount options and empty items are accepted silently.
generic = "rw,,ro,dev,nodev,suid,nosuid,exec,noexec,atime,noatime,relatime,lazytime"
r = run("-o", f"{generic},lowerdir={A}:{B},", MNT)
t.ok(r.returncode == 0 and r.stderr == "" and is_mounted(MNT),
     "generic mount options and empty items accepted silently", r.stderr)
unmount(MNT)
wait_gone(MNT)


# --- daemonizing -------------------------------------------------------------
def daemonize_and_stderr():
    # Podman reads the program's stderr to EOF: the daemon must not keep it.
    p = subprocess.Popen([S, "-o", f"lowerdir={A}:{B}", MNT],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        return False, "stdout/stderr still open after the parent returned"
    if p.returncode != 0:
        return False, f"rc={p.returncode} {err!r}"
    # usable as soon as the command returned
    if not is_mounted(MNT):
        return False, "not mounted when the command returned"
    with open(os.path.join(MNT, "top")) as f:
        data = f.read()
    if data != "from a\n":
        return False, f"read {data!r}"
    pids = daemon_pids(MNT)
    if len(pids) != 1:
        return False, f"daemon pids {pids}"
    fds = {os.readlink(f"/proc/{pids[0]}/fd/{n}") for n in (0, 1, 2)}
    if fds != {"/dev/null"}:
        return False, f"daemon stdio is {fds}"
    return True, ""


for how in (["fusermount3", "-u"], ["umount"], ["umount", "-l"]):
    t.run("daemonizes once live, keeps no stdio", daemonize_and_stderr)
    subprocess.run(how + [MNT], check=False)
    t.ok(wait_gone(MNT) and not is_mounted(MNT),
         f"daemon exits after {' '.join(how)}", f"pids {daemon_pids(MNT)}")
    unmount(MNT)

# A descriptor the caller leaks to the daemon is not kept open by it.
def leaked_fd_closed():
    r, w = os.pipe()
    p = subprocess.run([S, "-o", f"lowerdir={A}", MNT], pass_fds=(w,),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    os.close(w)
    import select
    ready = select.select([r], [], [], 5)[0]
    eof = bool(ready) and os.read(r, 1) == b""
    os.close(r)
    return p.returncode == 0 and eof, f"rc={p.returncode} eof={eof}"


t.run("a descriptor leaked by the caller is closed by the daemon", leaked_fd_closed)
unmount(MNT)
wait_gone(MNT)

# Foreground mode stays attached and exits when unmounted.
p = subprocess.Popen([S, "-f", "-o", f"lowerdir={A}", MNT], stderr=subprocess.PIPE)
deadline = time.time() + 10
while not is_mounted(MNT) and time.time() < deadline and p.poll() is None:
    time.sleep(0.02)
t.ok(is_mounted(MNT) and p.poll() is None, "-f mounts and stays in the foreground")
subprocess.run(["fusermount3", "-u", MNT])
try:
    rc = p.wait(timeout=10)
except subprocess.TimeoutExpired:
    p.kill()
    rc = None
t.ok(rc == 0, "-f process exits 0 after unmount", f"rc={rc}")


# --- call shapes -------------------------------------------------------------
def check_view(expect_top="from a\n"):
    with open(os.path.join(MNT, "top")) as f:
        a = f.read()
    with open(os.path.join(MNT, "bottom")) as f:
        b = f.read()
    return a == expect_top and b == "only b\n" and sorted(os.listdir(MNT)) == ["bottom", "top"]


def shape(argv, cwd=None, expect_top="from a\n"):
    r = subprocess.run([S] + argv, capture_output=True, text=True, cwd=cwd, timeout=30)
    try:
        if r.returncode != 0:
            return False, r.stderr
        return check_view(expect_top), r.stderr
    finally:
        unmount(MNT)
        wait_gone(MNT)


t.run("shape: -o lowerdir=A:B MNT", shape, ["-o", f"lowerdir={A}:{B}", MNT])
t.run("shape: SOURCE MNT -o OPTS (mount.fuse3)", shape,
      ["mysource", MNT, "-o", f"rw,lowerdir={A}:{B},dev,suid"])
t.run("shape: -oOPTS glued, -o twice", shape, [f"-olowerdir={B}", "-o", f"lowerdir={A}:{B}", MNT])
t.run("shape: relative lowerdirs resolved at startup", shape, ["-o", "lowerdir=a:./b", "mnt"], top)
os.symlink(A, os.path.join(top, "link-a"))
t.run("shape: lowerdir that is a symlink to a directory", shape,
      ["-o", f"lowerdir={top}/link-a:{B}", MNT])
colon = mk("with:colon")
mk("with:colon/top", "colon\n")
t.run("shape: \\: escapes a colon in a path", shape,
      ["-o", f"lowerdir={colon.replace(':', chr(92) + ':')}:{B}", MNT], None, "colon\n")

# mount(8) with mount.fuse3, the way fstab entries are mounted
r = subprocess.run(["mount", "-t", f"fuse.{S}", "demo-src", MNT, "-o",
                    f"lowerdir={A}:{B},nosuid"], capture_output=True, text=True, timeout=30)
ok = r.returncode == 0 and is_mounted(MNT) and check_view()
line = ""
with open("/proc/mounts") as f:
    for l in f:
        if l.split()[1] == MNT:
            line = l
t.ok(ok and " fuse.stratafs " in line and line.startswith("demo-src "),
     "mount -t fuse.PATH SOURCE DIR -o ... works and shows as fuse.stratafs",
     r.stderr + line)
unmount(MNT)
wait_gone(MNT)


# --- read-only: every write gets EROFS ---------------------------------------
mount_stratafs(f"lowerdir={A}:{B}", MNT)


def erofs(fn):
    try:
        fn()
    except OSError as e:
        return e.errno == errno.EROFS, f"errno {e.errno}"
    return False, "no error"


t.run("read-only: open for write gives EROFS",
      erofs, lambda: open(os.path.join(MNT, "top"), "a"))
t.run("read-only: create gives EROFS",
      erofs, lambda: open(os.path.join(MNT, "new"), "w"))
t.run("read-only: mkdir gives EROFS", erofs, lambda: os.mkdir(os.path.join(MNT, "d")))
t.run("read-only: unlink gives EROFS", erofs, lambda: os.unlink(os.path.join(MNT, "top")))
t.run("read-only: chmod gives EROFS", erofs, lambda: os.chmod(os.path.join(MNT, "top"), 0o600))
t.run("read-only: setxattr gives EROFS", erofs,
      lambda: os.setxattr(os.path.join(MNT, "top"), "user.x", b"1"))
sv = os.statvfs(MNT)
t.ok(sv.f_namemax == 255, "statfs reports NAME_MAX 255", str(sv))
unmount(MNT)
wait_gone(MNT)

os.chmod(unreadable, 0o755)
shutil.rmtree(top, ignore_errors=True)
t.done()
