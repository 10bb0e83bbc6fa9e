#!/usr/bin/env python3
"""fuse-overlayfs's options through real mounts: uidmapping/gidmapping
(with the keep-id map Podman passes and the values measured with
fuse-overlayfs), squash_to_*, static_nlink, noxattrs, noacl, fsync=0 and
volatile (no fsync reaches the upper), xattr_permissions=2, context without
SELinux, plugins refused, threaded=0, writeback=1, fsname/subtype, and an
fstab entry mounted with `mount -T FILE` through mount.fuse3 (stratafs
installed where mount.fuse3 looks, by `meson install`)."""
import errno
import os
import shutil
import subprocess
import tempfile
import time

import tap
from tap import (Tap, daemon_pids, is_mounted, mount_stratafs, require_root_fuse,
                 stratafs_bin, unmount, wait_gone)

require_root_fuse()
t = Tap()
S = stratafs_bin()
top = tempfile.mkdtemp(prefix="stratafs-opts-")
os.chmod(top, 0o755)
L = os.path.join(top, "lower")
U = os.path.join(top, "upper")
W = os.path.join(top, "work")
M = os.path.join(top, "mnt")
for d in (L, os.path.join(L, "dir"), os.path.join(L, "dir/sub"), os.path.join(L, "pub"), M):
    os.makedirs(d, exist_ok=True)
os.chmod(os.path.join(L, "pub"), 0o1777)
for name, uid in (("root-file", 0), ("user-file", 1001), ("other-file", 60000)):
    p = os.path.join(L, name)
    with open(p, "w") as f:
        f.write(name + "\n")
    os.chown(p, uid, uid)


def fresh():
    for d in (U, W):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)


def errno_of(fn):
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0


def mounted(opts, extra=()):
    fresh()
    return mount_stratafs(opts, M, extra=extra)


def done():
    unmount(M)
    wait_gone(M)


def owner(p):
    st = os.lstat(p)
    return (st.st_uid, st.st_gid)


BASE = f"lowerdir={L},upperdir={U},workdir={W}"
KEEPID = ":0:1:1001:1001:0:1:1002:1002:64535"

# --- uidmapping/gidmapping -----------------------------------------------------
mounted(f"{BASE},uidmapping={KEEPID},gidmapping={KEEPID}")
try:
    t.ok(owner(os.path.join(M, "root-file")) == (1, 1),
         "idmap: a lower file owned by 0 shows as 1", str(owner(os.path.join(M, "root-file"))))
    t.ok(owner(os.path.join(M, "user-file")) == (0, 0),
         "idmap: a lower file owned by 1001 shows as 0")
    t.ok(owner(os.path.join(M, "other-file")) == (60000, 60000),
         "idmap: an id inside the third triple maps onto itself")
    with open(os.path.join(M, "new"), "w") as f:
        f.write("x")
    t.ok(owner(os.path.join(U, "new")) == (1001, 1001) and owner(os.path.join(M, "new")) == (0, 0),
         "idmap: a file created by uid 0 is stored as 1001", str(owner(os.path.join(U, "new"))))
    os.chown(os.path.join(M, "new"), 1, 1)
    t.ok(owner(os.path.join(U, "new")) == (0, 0) and owner(os.path.join(M, "new")) == (1, 1),
         "idmap: chown to 1 stores 0")
    t.ok(errno_of(lambda: os.chown(os.path.join(M, "new"), 70000 + 65536, -1)) == errno.EINVAL,
         "idmap: chown to an id outside the map is EINVAL")
finally:
    done()

mounted(f"{BASE},uidmapping=0:100:10,gidmapping=0:100:10")
try:
    t.ok(owner(os.path.join(M, "user-file")) == (65534, 65534),
         "idmap: an on-disk id outside the map shows as the overflow id")
finally:
    done()

# --- squash_to_root, squash_to_uid/gid ------------------------------------------
mounted(f"{BASE},squash_to_root")
try:
    t.ok(owner(os.path.join(M, "user-file")) == (0, 0) and owner(os.path.join(M, "dir")) == (0, 0),
         "squash_to_root: every file shows as 0:0")
finally:
    done()
mounted(f"{BASE},squash_to_uid=42,squash_to_gid=43,squash_to_root")
try:
    t.ok(owner(os.path.join(M, "root-file")) == (42, 43),
         "squash_to_uid/gid: every file shows as 42:43, over squash_to_root")
finally:
    done()

# --- static_nlink, noxattrs, noacl ---------------------------------------------
os.setxattr(os.path.join(L, "root-file"), "user.k", b"v")
mounted(f"{BASE},static_nlink,noxattrs")
try:
    t.ok(os.lstat(os.path.join(M, "dir")).st_nlink == 1,
         "static_nlink: a directory from one layer shows nlink 1")
    t.ok(errno_of(lambda: os.getxattr(os.path.join(M, "root-file"), "user.k")) == errno.EOPNOTSUPP
         and errno_of(lambda: os.setxattr(os.path.join(M, "root-file"), "user.j", b"1")) ==
         errno.EOPNOTSUPP, "noxattrs: xattrs are not served")
finally:
    done()
mounted(BASE)
try:
    t.ok(os.lstat(os.path.join(M, "dir")).st_nlink == 3,
         "without static_nlink the real nlink shows")
    t.ok(os.getxattr(os.path.join(M, "root-file"), "user.k") == b"v",
         "without noxattrs xattrs are served")
finally:
    done()
mounted(f"{BASE},noacl")
try:
    t.ok(errno_of(lambda: os.getxattr(os.path.join(M, "root-file"), "system.posix_acl_access"))
         == errno.EOPNOTSUPP, "noacl: ACL xattrs are not served")
finally:
    done()


# --- fsync=1 (default), fsync=0 and volatile --------------------------------------
def fsyncs_reaching_upper(opts):
    """Count fsync/fdatasync calls of the daemon while the test fsyncs a file."""
    mounted(opts)
    try:
        pid = daemon_pids(M)[0]
        tr = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync",
                               "-p", str(pid)], stderr=subprocess.PIPE, text=True)
        import time
        time.sleep(0.5)
        fd = os.open(os.path.join(M, "synced"), os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, b"data")
        os.fsync(fd)
        os.fdatasync(fd)
        os.close(fd)
        dfd = os.open(M, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
        time.sleep(0.5)
        tr.terminate()
        err = tr.communicate(timeout=10)[1]
        return sum(1 for line in err.splitlines() if "sync(" in line)
    finally:
        done()


if shutil.which("strace"):
    n1 = fsyncs_reaching_upper(BASE)
    t.ok(n1 >= 3, "fsync=1 (default): fsync, fdatasync and fsyncdir reach the upper", f"{n1} calls")
    for o in ("fsync=0", "volatile"):
        n0 = fsyncs_reaching_upper(f"{BASE},{o}")
        t.ok(n0 == 0, f"{o}: no fsync reaches the upper", f"{n0} calls")
else:
    t.ok(False, "strace is needed for the fsync tests (contrib/deps.sh installs it)")

# --- xattr_permissions=2 ---------------------------------------------------------
mounted(f"{BASE},xattr_permissions=2")
try:
    p = os.path.join(M, "pub/by-user")
    subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                    "sh", "-c", f"umask 022; echo hi > {p}"], check=True)
    real = os.lstat(os.path.join(U, "pub/by-user"))
    val = os.getxattr(os.path.join(U, "pub/by-user"), "user.containers.override_stat")
    t.ok(owner(p) == (1000, 1000) and (real.st_uid, real.st_gid) == (0, 0)
         and val.startswith(b"1000:1000:"),
         "xattr_permissions=2: a new file's owner lives in user.containers.override_stat",
         f"shown {owner(p)} real {(real.st_uid, real.st_gid)} xattr {val!r}")
    os.chown(p, 5, 6)
    os.chmod(p, 0o640)
    st = os.lstat(p)
    t.ok((st.st_uid, st.st_gid, st.st_mode & 0o7777) == (5, 6, 0o640)
         and os.lstat(os.path.join(U, "pub/by-user")).st_uid == 0,
         "xattr_permissions=2: chown and chmod change the xattr, not the file")
    t.ok("user.containers.override_stat" not in os.listxattr(p),
         "xattr_permissions=2: the xattr is not listed through the mount")
finally:
    done()

# --- context without SELinux, plugins, threaded=0, writeback=1, fsname ------------
fresh()
r = subprocess.run([S, "-o", f"{BASE},context=system_u:object_r:container_file_t:s0", M],
                   capture_output=True, text=True, timeout=30)
selinux = os.path.exists("/sys/fs/selinux/enforce")
t.ok(r.returncode == 0 and is_mounted(M) and (selinux or "context" in r.stderr),
     "context=: mounts; ignored with a warning where SELinux is off", r.stderr)
done()
r = subprocess.run([S, "-o", f"{BASE},plugins=/x.so", M], capture_output=True, text=True,
                   timeout=30)
t.ok(r.returncode != 0 and "plugins" in r.stderr and not is_mounted(M),
     "plugins=: refused with a message naming it", r.stderr)
for opts, name in ((f"{BASE},threaded=0", "threaded=0"), (f"{BASE},writeback=1", "writeback=1"),
                   (f"{BASE},writeback=1,threaded=0,timeout=0", "writeback=1 with timeout=0")):
    mounted(opts)
    try:
        p = os.path.join(M, "root-file")
        with open(p, "a") as f:
            f.write("appended\n")
        with open(p, "r+") as f:
            f.seek(2)
            f.write("X")
        data = open(p).read()
        t.ok(data == "roXt-file\nappended\n", f"{name}: append and overwrite", repr(data))
    finally:
        done()
# spin=: the default polls for the next request 50 us after each one; spin=0
# sleeps at once; neither burns CPU while nothing happens
r = subprocess.run([S, "-o", f"{BASE},spin=-5", M], capture_output=True, text=True,
                   timeout=30)
t.ok(r.returncode == 1 and "spin" in r.stderr and len(r.stderr.splitlines()) == 1
     and not is_mounted(M), "spin=-5: refused, one line naming it", r.stderr)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return int(v[11]) + int(v[12])  # utime + stime


for opts, name in ((BASE, "default spin"), (f"{BASE},spin=0", "spin=0"),
                   (f"{BASE},spin=100000", "spin=100000")):
    mounted(opts)
    try:
        pids = daemon_pids(M)
        for i in range(300):
            os.stat(os.path.join(M, "root-file"))
            open(os.path.join(M, f"spin-{i}"), "w").close()
            os.unlink(os.path.join(M, f"spin-{i}"))
        time.sleep(0.3)
        before = cpu_ticks(pids[0]) if pids else None
        time.sleep(2)
        after = cpu_ticks(pids[0]) if pids else None
        hz = os.sysconf("SC_CLK_TCK")
        t.ok(pids and after - before <= hz // 10,
             f"{name}: 900 requests answered; idle for 2 s the daemon uses no CPU",
             f"pids {pids}, CPU ticks while idle: {None if not pids else after - before}")
    finally:
        done()
mounted(f"{BASE},fsname=myunion,subtype=myoverlay")
try:
    line = [l for l in open("/proc/mounts") if l.split()[1] == M]
    t.ok(line and line[0].startswith("myunion ") and " fuse.myoverlay " in line[0],
         "fsname= and subtype= show in the mount table", "".join(line))
finally:
    done()

# --- fstab through mount.fuse3 -----------------------------------------------------
installed = shutil.which("stratafs", path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin")
if tap.WRAPPED:
    # mount.fuse3 runs the installed binary by name, not the wrapper
    t.skip("fstab: entries through mount.fuse3", "the daemon runs under "
           "STRATAFS_WRAPPER; fstab starts the installed binary unwrapped")
elif installed is None:
    t.ok(False, "fstab: stratafs is installed where mount.fuse3 finds it (meson install)")
else:
    same = open(installed, "rb").read() == open(S, "rb").read()
    t.ok(same, "fstab: the installed stratafs is this build", installed)
    fresh()
    fstab = os.path.join(top, "fstab")
    with open(fstab, "w") as f:
        f.write(f"union {M} fuse.stratafs noauto,nofail,x-systemd.automount,"
                f"x-systemd.requires=foo.mount,{BASE} 0 0\n")
        f.write(f"union-ro {M} fuse.stratafs noauto,ro,lowerdir={L} 0 0\n")
    r = subprocess.run(["mount", "-T", fstab, M], capture_output=True, text=True, timeout=30)
    ok = r.returncode == 0 and is_mounted(M)
    if ok:
        with open(os.path.join(M, "via-fstab"), "w") as f:
            f.write("x")
        ok = os.path.exists(os.path.join(U, "via-fstab"))
    t.ok(ok, "fstab: an entry with noauto,nofail,x-systemd.* mounts and writes to the upper",
         r.stderr)
    done()
    with open(fstab, "w") as f:
        f.write(f"union-ro {M} fuse.stratafs noauto,ro,lowerdir={L} 0 0\n")
    r = subprocess.run(["mount", "-T", fstab, M], capture_output=True, text=True, timeout=30)
    err = errno_of(lambda: open(os.path.join(M, "x"), "w")) if r.returncode == 0 else None
    t.ok(r.returncode == 0 and err == errno.EROFS, "fstab: ro gives a read-only mount",
         r.stderr + f" errno={err}")
    done()

shutil.rmtree(top, ignore_errors=True)
t.done()
