#!/usr/bin/env python3
"""Rootless mounts, as a non-root user (nobody):
  - inside `unshare -Urm` (the daemon is root of a user namespace, mounts
    with mount(2) directly, as Podman runs its mount program), and
  - as a plain user through the setuid fusermount3.
Both must mount, show the merged view with whiteouts applied, read data,
and unmount with the daemon exiting.  /dev/fuse is made 0666 for the
duration, as distributions ship it."""
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import tempfile

import tap
from tap import Tap, require_root_fuse, skip_all, stratafs_bin

require_root_fuse()
for tool in ("unshare", "setpriv", "fusermount3"):
    if shutil.which(tool) is None:
        skip_all(f"{tool} not installed")
try:
    nobody = pwd.getpwnam("nobody")
except KeyError:
    skip_all("no user 'nobody'")

t = Tap()
S = stratafs_bin()
# how the scripts find the daemon (pgrep -f): under a wrapper (valgrind) the
# command line starts with the wrapper and names the real binary later
# (anchored: the script's own shell has the pattern among its arguments)
PAT = f"^{S} "
if tap.WRAPPED:
    def ere(x):
        return re.sub(r"([.\[\](){}*+?|^$\\])", r"\\\1", x)
    wrapper = os.path.basename(shlex.split(os.environ["STRATAFS_WRAPPER"])[0])
    PAT = f"^[^ ]*{ere(wrapper)}[^ ]* .* {ere(tap.real_stratafs_bin())} "
WAITS = str(int(100 * tap.SLOW))   # times 0.05 s for the daemon to exit
top = tempfile.mkdtemp(prefix="stratafs-rootless-")
for d in ("l1", "l2", "l2/dir", "l1/dir", "mnt"):
    os.makedirs(os.path.join(top, d), exist_ok=True)
with open(os.path.join(top, "l2/dir/lower"), "w") as f:
    f.write("lower\n")
with open(os.path.join(top, "l2/gone"), "w") as f:
    f.write("hidden\n")
with open(os.path.join(top, "l1/dir/upper"), "w") as f:
    f.write("upper\n")
# an AUFS whiteout: readable without privileges
open(os.path.join(top, "l1/.wh.gone"), "w").close()
for dirpath, dirs, files in os.walk(top):
    for n in dirs + files:
        os.lchown(os.path.join(dirpath, n), nobody.pw_uid, nobody.pw_gid)
os.chown(top, nobody.pw_uid, nobody.pw_gid)
os.chmod(top, 0o755)

# the binary must be reachable by nobody
probe = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                        "--clear-groups", S, "--version"], capture_output=True)
if probe.returncode != 0:
    shutil.rmtree(top, ignore_errors=True)
    skip_all(f"{S} is not executable by nobody (build tree permissions)")

mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
os.chmod("/dev/fuse", 0o666)

SCRIPT = r'''
set -e
S="$1"; top="$2"; mode="$3"; PAT="$4"; WAITS="$5"
cd "$top"
"$S" -o lowerdir=l1:l2 mnt
cat mnt/dir/lower mnt/dir/upper
ls -A mnt | tr '\n' ' '; echo
test ! -e mnt/gone && echo gone-hidden
test ! -e mnt/.wh.gone && echo marker-hidden
pgrep -u "$(id -u)" -f "$PAT" >/dev/null && echo daemon-running
if [ "$mode" = unshare ]; then umount mnt; else fusermount3 -u mnt; fi
for i in $(seq "$WAITS"); do
    pgrep -u "$(id -u)" -f "$PAT" >/dev/null || { echo daemon-exited; break; }
    sleep 0.05
done
'''

EXPECT = ["lower", "upper", "dir", "gone-hidden", "marker-hidden", "daemon-running",
          "daemon-exited"]

# The same two ways with a writable upper: copy-up, a whiteout of a lower
# file, an opaque directory re-created over a lower one, and the upper as
# the kernel would read it.
WSCRIPT = r'''
set -e
S="$1"; top="$2"; mode="$3"; PAT="$4"; WAITS="$5"
cd "$top"
rm -rf u w; mkdir u w
"$S" -o lowerdir=l1:l2,upperdir=u,workdir=w mnt
echo more >> mnt/dir/lower
rm mnt/dir/upper
rm -rf mnt/dir
mkdir mnt/dir
echo fresh > mnt/dir/new
ls -A mnt/dir | tr '\n' ' '; echo
if [ "$mode" = unshare ]; then umount mnt; else fusermount3 -u mnt; fi
for i in $(seq "$WAITS"); do
    pgrep -u "$(id -u)" -f "$PAT" >/dev/null || break
    sleep 0.05
done
# the upper: dir is opaque (user.overlay.opaque=y), its lower files gone
getfattr --absolute-names -n user.overlay.opaque --only-values u/dir && echo
ls -A u/dir | tr '\n' ' '; echo
"$S" -o lowerdir=l1:l2,upperdir=u,workdir=w mnt
ls -A mnt/dir | tr '\n' ' '; echo
cat mnt/dir/new
if [ "$mode" = unshare ]; then umount mnt; else fusermount3 -u mnt; fi
'''

try:
    for mode_name, prefix in (
            ("unshare -Urm", ["unshare", "-Urm"]),
            ("plain user via fusermount3", [])):
        argv = (["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                 "--clear-groups"] + prefix +
                ["sh", "-c", WSCRIPT, "sh", S, top, "unshare" if prefix else "user",
                  PAT, WAITS])
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60 * tap.SLOW)
        out = r.stdout.split("\n")
        ok = r.returncode == 0 and out[:5] == ["new ", "y", "new ", "new ", "fresh"]
        t.ok(ok, f"rootless ({mode_name}), writable: copy-up, whiteouts, opaque dir, "
             "kept across a remount",
             f"rc={r.returncode}\nstdout={r.stdout}\nstderr={r.stderr}")
        subprocess.run(["umount", "-l", os.path.join(top, "mnt")], capture_output=True)

    for mode_name, prefix in (
            ("unshare -Urm", ["unshare", "-Urm"]),
            ("plain user via fusermount3", [])):
        argv = (["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                 "--clear-groups"] + prefix +
                ["sh", "-c", SCRIPT, "sh", S, top, "unshare" if prefix else "user",
                  PAT, WAITS])
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60 * tap.SLOW)
        out = r.stdout.split()
        ok = r.returncode == 0 and all(e in out for e in EXPECT)
        t.ok(ok, f"rootless ({mode_name}): mount, whiteouts, read, unmount, daemon exits",
             f"rc={r.returncode}\nstdout={r.stdout}\nstderr={r.stderr}")
        subprocess.run(["umount", "-l", os.path.join(top, "mnt")], capture_output=True)

    # Started from a working directory the user cannot search (sudo -u
    # from /root does this): with absolute paths the mount works, and the
    # daemon does not need to come back to that directory.
    locked = os.path.join(top, "locked")
    os.mkdir(locked, 0o700)
    LSCRIPT = r'''
S="$1"; top="$2"
"$S" -o lowerdir="$top/l1:$top/l2,upperdir=$top/u,workdir=$top/w" "$top/mnt" || exit 1
cat "$top/mnt/dir/lower"
fusermount3 -u "$top/mnt"
'''
    subprocess.run(["sh", "-c", f"rm -rf {top}/u {top}/w && mkdir {top}/u {top}/w && "
                    f"chown {nobody.pw_uid}:{nobody.pw_gid} {top}/u {top}/w"], check=True)
    argv = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
            "--clear-groups", "sh", "-c", LSCRIPT, "sh", S, top]
    r = subprocess.run(argv, capture_output=True, text=True, cwd=locked,
                       timeout=60 * tap.SLOW)
    t.ok(r.returncode == 0 and r.stdout.split() == ["lower"],
         "rootless (plain user) from a working directory it cannot search: "
         "absolute paths mount",
         f"rc={r.returncode}\nstdout={r.stdout}\nstderr={r.stderr}")
    subprocess.run(["umount", "-l", os.path.join(top, "mnt")], capture_output=True)
finally:
    os.chmod("/dev/fuse", mode)
    shutil.rmtree(top, ignore_errors=True)
t.done()
