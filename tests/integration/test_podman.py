#!/usr/bin/env python3
"""Podman end to end: stratafs as containers-storage's overlay mount_program,
as root and rootless, with a private configuration and local images only.

Everything Podman reads comes from a temporary directory: storage.conf and
containers.conf through CONTAINERS_STORAGE_CONF and CONTAINERS_CONF, graph
and run roots, HOME, XDG_RUNTIME_DIR, TMPDIR, the network config dir and the
events log.  /etc/containers is never touched.  Images are made here: a
busybox-static rootfs imported with `podman import`, a multi-layer image
from `podman build` (whiteouts of lower files, directories deleted and made
again), and a hand-written docker-archive whose layers carry `.wh.NAME` and
`.wh..wh..opq` markers the way pulled images do (`podman build` itself
writes only `.wh.NAME`: its diffs list every deleted child).

Four private Podmans (setups), each with its own store: `root`, `rootless`
(the user `stratafs-test`, created if missing, with /etc/subuid and
/etc/subgid ranges; /dev/fuse is made 0666 for the run and restored), and
`root-fm`/`rootless-fm`, stores with force_mask = "shared".  Scenarios,
each a TAP line:
  info       `podman info` names stratafs and shows its --version output
  run        write, append to a lower file, delete lower files, rm -rf an
             image directory and mkdir over it, rename, symlink, hardlinks,
             fifo, setuid kept on copy-up, chmod, chown
  build      `podman build` of RUN and COPY layers, then run the image
  opaque     `podman load` of layers with .wh. and .wh..wh..opq markers
  diff       `podman diff` shows the A/C/D entries expected
  export     `podman cp` out of and into a stopped container, `podman export`
  commit     `podman commit`, run the committed image
  mount      `podman mount`/`umount`, `podman image mount` (read-only);
             rootless inside `podman unshare`
  keep-id    rootless `--userns=keep-id` (and --user 0): owners inside and
             on disk
  uidmap     rootless `--uidmap 0:1:1000`: owners inside (ids outside the
             map as the overflow id) and on disk
  volatile   `run --rm` passes `volatile`, seen in the daemon's argv; the
             daemon's stdio is /dev/null, not Podman's pipe
  restart    `start -a` five times in a row (each an unmount and at once a
             new mount of the same upper and workdir), `podman restart`
  force-mask (the -fm setups) xattr_permissions=2 reaches the daemon,
             owners and modes shown from user.containers.override_stat,
             changes recorded there and shown again after a remount
After every scenario no daemon or mount of the setup may be left, and a
last line per setup sums that up.  Every podman command runs with a
timeout: a daemon that keeps Podman's stderr pipe open makes Podman hang,
which is reported as such.  Diagnostics of a failure: each podman command
of the scenario with its exit status, stdout and stderr, the related
processes (ps) and the mounts of the setup (the rootless ones from the
pause process's namespace).

Options: --mode root|rootless, --only REGEX (scenario names), --keep (leave
the temporary directory), --mount-program PATH (run against another
program, e.g. /usr/bin/fuse-overlayfs, to check the harness), --wrap (a
wrapper script as mount_program logs every argv; shown on failure),
--debug (with --wrap: run the daemon with -d, its output in the log)."""
import argparse
import glob
import hashlib
import io
import json
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import stat
import subprocess
import tarfile
import tempfile
import time

import tap
from tap import Tap, require_root_fuse, skip_all, stratafs_bin

USER = "stratafs-test"
CMD_TIMEOUT = 60        # one podman command (they take about a second)
BUILD_TIMEOUT = 180
DEADLINE = 900          # the whole run; later scenarios fail as not run
SETTLE = 10             # seconds a daemon may take to exit after its unmount

T0 = time.monotonic()


# ---------------------------------------------------------------------------
# processes and mounts seen from outside


def proc_argv(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
    except OSError:
        return None


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def daemons(under, prog_names=("stratafs",)):
    """Live (non-zombie) mount-program daemons whose argv names a path
    under `under`: {pid: argv}."""
    found = {}
    for pid in all_pids():
        argv = proc_argv(pid)
        if not argv or proc_state(pid) in (None, "Z"):
            continue
        if os.path.basename(argv[0]) not in prog_names:
            continue
        if any(under in a for a in argv[1:]):
            found[pid] = argv
    return found


def mountinfo_lines(under, pid="self"):
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            return [ln.rstrip("\n") for ln in f if under in ln.split()[4]]
    except OSError:
        return []


def mount_options(argv):
    """The -o value of a mount program's argv, split on commas."""
    for i, a in enumerate(argv):
        if a == "-o" and i + 1 < len(argv):
            return argv[i + 1].split(",")
        if a.startswith("-o") and len(a) > 2:
            return a[2:].split(",")
    return []


def ps_state():
    r = subprocess.run(["ps", "-eo", "pid,ppid,user,stat,etime,args"],
                       capture_output=True, text=True)
    keep = [ln for ln in r.stdout.splitlines()[1:]
            if re.search(r"stratafs|fuse-overlayfs|podman|conmon|runc|catatonit", ln)
            and "test_podman.py" not in ln]
    return [r.stdout.splitlines()[0]] + keep if r.stdout else keep


def elf_is_static(path):
    """True if the ELF file has no PT_INTERP program header."""
    with open(path, "rb") as f:
        h = f.read(64)
        if h[:4] != b"\x7fELF" or h[4] != 2:
            return False
        order = "little" if h[5] == 1 else "big"
        phoff = int.from_bytes(h[0x20:0x28], order)
        phentsize = int.from_bytes(h[0x36:0x38], order)
        phnum = int.from_bytes(h[0x38:0x3a], order)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            if int.from_bytes(f.read(4), order) == 3:
                return False
    return True


# ---------------------------------------------------------------------------
# images made here


ROOTFS_FILES = {
    "data/keep": "keep\n",
    "data/gone": "gone\n",
    "data/sub/s": "s\n",
    "olddir/o2": "o2\n",
    "olddir/inner/o": "o\n",
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\n",
}


def make_rootfs_tar(dest, busybox, fifo=True):
    """A rootfs of busybox-static (one binary, one symlink per applet) and
    a few data files, owned by 0:0 but misc/own5 and misc/own1001, as an
    uncompressed tar."""
    tmp = tempfile.mkdtemp(prefix="rootfs-", dir=os.path.dirname(dest))
    os.chmod(tmp, 0o755)
    try:
        for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "run", "root",
                  "data/sub", "olddir/inner"):
            os.makedirs(os.path.join(tmp, d), exist_ok=True)
        os.chmod(os.path.join(tmp, "tmp"), 0o1777)
        shutil.copy(busybox, os.path.join(tmp, "bin/busybox"))
        os.chmod(os.path.join(tmp, "bin/busybox"), 0o755)
        applets = subprocess.run([busybox, "--list"], capture_output=True,
                                 text=True, check=True).stdout.split()
        for a in applets:
            if a != "busybox" and "/" not in a:
                os.symlink("busybox", os.path.join(tmp, "bin", a))
        for p, data in ROOTFS_FILES.items():
            with open(os.path.join(tmp, p), "w") as f:
                f.write(data)
        misc = os.path.join(tmp, "misc")
        os.makedirs(misc)
        with open(os.path.join(misc, "hl1"), "w") as f:
            f.write("h\n")
        os.link(os.path.join(misc, "hl1"), os.path.join(misc, "hl2"))
        os.symlink("hl1", os.path.join(misc, "sym"))
        if fifo:
            os.mkfifo(os.path.join(misc, "fifo"))
        with open(os.path.join(misc, "suid"), "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(os.path.join(misc, "suid"), 0o4755)
        for n, owner in (("own5", 5), ("own1001", 1001)):
            with open(os.path.join(misc, n), "w") as f:
                f.write(n + "\n")
            os.chown(os.path.join(misc, n), owner, owner)

        def owner(ti):
            if not ti.name.startswith("misc/own"):
                ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            ti.mtime = 1700000000
            return ti

        with tarfile.open(dest, "w", format=tarfile.GNU_FORMAT) as tf:
            for name in sorted(os.listdir(tmp)):
                tf.add(os.path.join(tmp, name), arcname=name, filter=owner)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def layer_tar(entries):
    """An uncompressed layer tar from (path, content-or-None-for-dir) in
    order; whiteout names are plain empty files, mode 0 as Docker writes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for path, data in entries:
            ti = tarfile.TarInfo(path)
            ti.mtime = 1700000000
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                raw = data.encode()
                ti.size = len(raw)
                ti.mode = 0 if os.path.basename(path).startswith(".wh.") else 0o644
                tf.addfile(ti, io.BytesIO(raw))
    return buf.getvalue()


OPAQUE_LAYERS = [
    [("olddir", None), ("olddir/.wh..wh..opq", ""), ("olddir/fresh", "fresh\n"),
     ("data", None), ("data/.wh.gone", ""),
     ("data/sub", None), ("data/sub/.wh..wh..opq", ""), ("data/sub/t", "t\n"),
     ("bin", None), ("bin/.wh.vi", ""),
     ("mid", None), ("mid/f", "f\n")],
    [("olddir", None), ("olddir/third", "third\n"),
     ("data", None), ("data/.wh.keep", ""),
     ("mid", None), ("mid/.wh..wh..opq", ""), ("mid/g", "g\n"),
     ("newdir", None), ("newdir/.wh..wh..opq", ""), ("newdir/n", "n\n")],
]


def make_docker_archive(dest, base_tar, tag):
    """A docker-archive (what `podman save` writes) of the base rootfs and
    the OPAQUE_LAYERS on top, loadable with `podman load`."""
    with open(base_tar, "rb") as f:
        layers = [f.read()] + [layer_tar(e) for e in OPAQUE_LAYERS]
    diff_ids = ["sha256:" + hashlib.sha256(b).hexdigest() for b in layers]
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(),
                                                       platform.machine())
    config = json.dumps({
        "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
    }).encode()
    cfg_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"{d[7:]}/layer.tar" for d in diff_ids]
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": [tag],
                            "Layers": names}]).encode()
    with tarfile.open(dest, "w") as tf:
        for name, raw in [(cfg_name, config), ("manifest.json", manifest)] + \
                list(zip(names, layers)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(raw), 0o644, 1700000000
            tf.addfile(ti, io.BytesIO(raw))


CONTAINERFILE = """\
FROM localhost/sbase:latest
RUN mkdir -p /layer/dir && echo one > /layer/dir/old1 && echo keep > /layer/keep && echo gone > /layer/gone1
RUN echo two > /layer/dir/old2 && rm /layer/gone1 /data/gone /bin/vi && echo appended >> /layer/keep
RUN rm -rf /layer/dir && mkdir /layer/dir && echo new > /layer/dir/new && cat /layer/keep > /layer/copy
RUN rm -rf /olddir && mkdir /olddir && echo fresh > /olddir/fresh && rm -rf /data/sub
COPY hello /olddir/hello
"""


# ---------------------------------------------------------------------------
# one podman setup (root or rootless)


class Result:
    def __init__(self, argv, rc, out, err, hung, secs):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err
        self.hung, self.secs = hung, secs

    @property
    def ok(self):
        return self.rc == 0 and not self.hung

    def describe(self, limit=4000):
        def cut(s):
            return s if len(s) <= limit else s[:limit] + f"\n[... {len(s) - limit} more]"
        head = "$ " + " ".join(self.argv)
        status = "HUNG (killed after timeout)" if self.hung else f"rc={self.rc}"
        return (f"{head}\n{status} in {self.secs:.1f}s\n--- stdout\n{cut(self.out)}"
                f"\n--- stderr\n{cut(self.err)}")


class Setup:
    """One private Podman: its configuration files, store, runroot, HOME
    and XDG_RUNTIME_DIR under top/name, run as root or as `user`.  With
    force_mask the store uses containers-storage's force_mask = "shared"
    (modes and owners kept in user.containers.override_stat, the mount
    program gets xattr_permissions=2)."""

    def __init__(self, name, top, prog, user=None, wrap=False, debug=False,
                 force_mask=False):
        self.name = name
        self.force_mask = force_mask
        self.dir = os.path.join(top, name)
        self.prog = prog
        self.user = user                  # pwd entry or None for root
        self.log = []                     # Results of the current scenario
        self.hung = []
        self.cleaned = False
        self.copied_in = False
        os.makedirs(self.dir)
        for d in ("home", "run", "tmp", "graph", "runroot", "networks", "ctx"):
            os.makedirs(os.path.join(self.dir, d))
        os.chmod(os.path.join(self.dir, "run"), 0o700)
        self.graph = os.path.join(self.dir, "graph")
        self.wraplog = None
        mount_program = prog
        if wrap:
            self.wraplog = os.path.join(self.dir, "mount-program.log")
            mount_program = os.path.join(self.dir, "mount-program")
            with open(mount_program, "w") as f:
                f.write(WRAPPER.format(prog=prog, log=self.wraplog,
                                       debug="1" if debug else ""))
            os.chmod(mount_program, 0o755)
            open(self.wraplog, "w").close()
            os.chmod(self.wraplog, 0o666)
        self.mount_program = mount_program
        nofile = _hard_limit("RLIMIT_NOFILE")
        # podman lowers its own RLIMIT_NPROC to 32768 and, without
        # CAP_SYS_RESOURCE, runc cannot set a container's above that
        nproc = min(_hard_limit("RLIMIT_NPROC"), 32768)
        with open(os.path.join(self.dir, "storage.conf"), "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\n'
                    f'graphroot = "{self.graph}"\n'
                    f'runroot = "{self.dir}/runroot"\n'
                    f'rootless_storage_path = "{self.graph}"\n'
                    f'[storage.options.overlay]\n'
                    f'mount_program = "{mount_program}"\n'
                    + ('mountopt = "nodev"\n' if user is None else "")
                    + ('force_mask = "shared"\n' if force_mask else ""))
        with open(os.path.join(self.dir, "containers.conf"), "w") as f:
            f.write(f'[containers]\n'
                    f'default_ulimits = ["nofile={nofile}:{nofile}", '
                    f'"nproc={nproc}:{nproc}"]\n'
                    f'[network]\nnetwork_config_dir = "{self.dir}/networks"\n'
                    f'[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n'
                    f'events_logger = "file"\n'
                    f'events_logfile_path = "{self.dir}/events.log"\n'
                    + (f'tmp_dir = "{self.dir}/libpod-tmp"\n' if user is None else ""))
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": os.path.join(self.dir, "home"),
            "TMPDIR": os.path.join(self.dir, "tmp"),
            "LANG": "C.UTF-8",
            "CONTAINERS_STORAGE_CONF": os.path.join(self.dir, "storage.conf"),
            "CONTAINERS_CONF": os.path.join(self.dir, "containers.conf"),
        }
        # a sanitizer run (tap.py): the mount program's reports go to the
        # run's log directory like every other daemon's
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
            if k in os.environ:
                self.env[k] = os.environ[k]
        self.prefix = []
        # containers-storage cannot set its override xattr on a fifo
        make_rootfs_tar(os.path.join(self.dir, "rootfs.tar"), BUSYBOX,
                        fifo=not force_mask)
        if user is not None:
            # rootless podman puts its runroot and tmp_dir under here
            self.env["XDG_RUNTIME_DIR"] = os.path.join(self.dir, "run")
            self.prefix = ["setpriv", f"--reuid={user.pw_uid}",
                           f"--regid={user.pw_gid}", "--init-groups"]
            for dirpath, dirs, files in os.walk(self.dir):
                for n in [dirpath] + [os.path.join(dirpath, x) for x in dirs + files]:
                    os.lchown(n, user.pw_uid, user.pw_gid)
        if len(self.runroot()) > 50:
            raise RuntimeError(f"runroot {self.runroot()} is longer than podman's 50 characters")

    def runroot(self):
        if self.user is None:
            return os.path.join(self.dir, "runroot")
        return os.path.join(self.env["XDG_RUNTIME_DIR"], "containers")

    # -- running things --------------------------------------------------

    def run(self, argv, timeout=CMD_TIMEOUT, record=True):
        """argv as this setup's user, with its environment; never raises on
        failure or hang.  Output goes to files, so a daemon that inherits
        them cannot make us wait."""
        full = self.prefix + list(argv)
        out = tempfile.TemporaryFile()
        err = tempfile.TemporaryFile()
        t0 = time.monotonic()
        hung = False
        p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             env=self.env, cwd=self.dir, start_new_session=True)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            hung = True
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
        secs = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        r = Result(argv, p.returncode, out.read().decode(errors="replace"),
                   err.read().decode(errors="replace"), hung, secs)
        if record:
            self.log.append(r)
        if hung:
            self.hung.append(r)
        return r

    def podman(self, *args, timeout=CMD_TIMEOUT, record=True):
        args = list(args)
        if args[:1] == ["run"] and "--pull=never" not in args:
            args.insert(1, "--pull=never")      # never a registry
        return self.run(["podman"] + args, timeout=timeout, record=record)

    # -- what is left ---------------------------------------------------

    def pause_pid(self):
        if self.user is None:
            return None
        for p in glob.glob(os.path.join(self.dir, "run", "libpod", "tmp", "pause.pid")) + \
                glob.glob(os.path.join(self.dir, "libpod-tmp", "pause.pid")):
            try:
                with open(p) as f:
                    pid = int(f.read().strip())
                if proc_argv(pid):
                    return pid
            except (OSError, ValueError):
                pass
        return None

    def mounts(self):
        lines = mountinfo_lines(self.graph)
        pp = self.pause_pid()
        if pp:
            lines += [f"(userns of pause pid {pp}) {ln}"
                      for ln in mountinfo_lines(self.graph, pp)]
        return lines

    def fstype(self):
        """The mount table type: the program's basename, as libfuse sets it."""
        return "fuse." + os.path.basename(self.prog)

    def prog_names(self):
        return (os.path.basename(self.prog), os.path.basename(self.mount_program))

    def leftovers(self, wait=SETTLE):
        """Daemons and mounts of this setup still present after `wait`
        seconds: [] when clean."""
        end = time.monotonic() + wait
        while True:
            d = daemons(self.graph, self.prog_names())
            m = [ln for ln in self.mounts() if "fuse" in ln]
            if (not d and not m) or time.monotonic() >= end:
                break
            time.sleep(0.1)
        return [f"daemon {pid}: {' '.join(a)}" for pid, a in d.items()] + \
               [f"mount: {ln}" for ln in m]

    def diag(self, extra=()):
        lines = list(extra)
        for r in self.log:
            lines.append(r.describe())
        lines.append("--- processes")
        lines += ps_state()
        lines.append(f"--- mounts under {self.graph}")
        lines += self.mounts() or ["(none)"]
        if self.wraplog and os.path.exists(self.wraplog):
            with open(self.wraplog, errors="replace") as f:
                tail = f.read()[-6000:]
            lines.append(f"--- {self.wraplog} (tail)")
            lines.append(tail)
        return "\n".join(lines)

    # -- teardown --------------------------------------------------------

    def cleanup(self):
        self.cleaned = True
        for args in (["rm", "-a", "-f", "-t", "0"], ["rmi", "-a", "-f"],
                     ["system", "reset", "-f"]):
            self.podman(*args, timeout=60, record=False)
        pids = list(daemons(self.dir, self.prog_names()))
        pp = self.pause_pid()
        if pp:
            pids.append(pp)
        for pid in all_pids():
            argv = proc_argv(pid)
            if argv and os.path.basename(argv[0]) == "conmon" and \
                    any(self.dir in a for a in argv):
                pids.append(pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for ln in reversed(mountinfo_lines(self.dir)):
            subprocess.run(["umount", "-l", ln.split()[4]], capture_output=True)


WRAPPER = """#!/bin/sh
# mount_program wrapper of test_podman.py --wrap: logs argv, runs {prog}
echo "$(date +%T.%N) pid=$$ uid=$(id -u) cwd=$(pwd) argv: $*" >> {log}
if [ -n "{debug}" ] && [ "$1" = "-o" ] && [ $# -eq 3 ]; then
    "{prog}" -d "$@" >> {log} 2>&1 </dev/null &
    for i in $(seq 200); do
        grep -q " $3 " /proc/self/mountinfo && exit 0
        kill -0 $! 2>/dev/null || exit 1
        sleep 0.05
    done
    exit 1
fi
exec "{prog}" "$@"
"""


def _hard_limit(name):
    h = resource.getrlimit(getattr(resource, name))[1]
    return h if h != resource.RLIM_INFINITY else 1048576


# ---------------------------------------------------------------------------
# the scenarios: each returns (ok, [diagnostic lines]) and runs podman
# through the Setup


RUN_SCRIPT = r"""
set -e
echo data > /tmp/new; cat /tmp/new
echo more >> /data/keep; cat /data/keep
rm /data/gone; test ! -e /data/gone && echo gone-ok
rm /bin/vi; test ! -e /bin/vi && echo vi-gone
ls /bin | grep -qx vi && echo vi-listed || echo vi-not-listed
rm -rf /olddir; test ! -e /olddir && echo olddir-gone
mkdir /olddir; echo x > /olddir/x; echo olddir: $(ls -A /olddir)
rm -rf /data/sub; mkdir /data/sub; echo sub: $(ls -A /data/sub)
mv /tmp/new /tmp/renamed; cat /tmp/renamed; test ! -e /tmp/new && echo renamed
ln -s /data/keep /tmp/link; cat /tmp/link
chmod 600 /data/keep; stat -c %a /data/keep
chown 5:6 /tmp/renamed; stat -c %u:%g /tmp/renamed
echo data: $(ls -A /data)
echo hl: $(stat -c %h /misc/hl1) $(stat -c %i /misc/hl1 /misc/hl2 | uniq | wc -l)
touch /misc/suid; stat -c %a /misc/suid
test -p /misc/fifo && echo fifo
readlink /misc/sym; cat /misc/sym
echo markers: $(find / -xdev -name '.wh.*' | wc -l)
"""
RUN_EXPECT = ["data", "keep", "more", "gone-ok", "vi-gone", "vi-not-listed",
              "olddir-gone", "olddir: x", "sub:", "data", "renamed", "keep", "more",
              "600", "5:6", "data: keep sub", "hl: 2 1", "4755", "fifo", "hl1", "h",
              "markers: 0"]


def sc_info(s):
    r = s.podman("info", "--format", "json")
    if not r.ok:
        return False, ["podman info failed"]
    info = json.loads(r.out)
    store = info.get("store", {})
    mp = store.get("graphOptions", {}).get("overlay.mount_program", {})
    v = subprocess.run([s.mount_program, "--version"], capture_output=True,
                       text=True, timeout=30)
    want = (v.stdout.strip() or v.stderr.strip())
    problems = []
    if store.get("graphDriverName") != "overlay":
        problems.append(f"graphDriverName {store.get('graphDriverName')!r}")
    if mp.get("Executable") != s.mount_program:
        problems.append(f"mount_program Executable {mp.get('Executable')!r}")
    if not want or want.splitlines()[0] not in (mp.get("Version") or ""):
        problems.append(f"Version {mp.get('Version')!r}, {s.mount_program} "
                        f"--version says {want!r}")
    if store.get("graphRoot") != s.graph:
        problems.append(f"graphRoot {store.get('graphRoot')!r}")
    return not problems, problems


def check_lines(r, expect, skip=None):
    """r ran and printed exactly the lines expect (blank lines and those
    matching the regex skip left out)."""
    got = [ln.strip() for ln in r.out.split("\n") if ln.strip() != ""]
    if skip:
        got = [ln for ln in got if not re.match(skip, ln)]
    if not r.ok:
        return False, [f"container failed; expected output {expect}"]
    if got != expect:
        return False, [f"expected lines {expect}", f"got      lines {got}"]
    return True, []


def sc_run(s):
    r = s.podman("run", "--rm", "--network", "none", "localhost/sbase",
                 "sh", "-c", RUN_SCRIPT)
    return check_lines(r, RUN_EXPECT)


BUILT_SCRIPT = r"""
echo layer: $(ls -A /layer)
echo dir: $(ls -A /layer/dir)
echo olddir: $(ls -A /olddir)
echo data: $(ls -A /data)
cat /layer/keep /layer/copy /layer/dir/new /olddir/fresh /olddir/hello /data/keep
test -e /bin/vi && echo vi-present || echo vi-gone
test -e /layer/gone1 && echo gone1-present || echo gone1-gone
echo markers: $(find / -xdev -name '.wh.*' | wc -l)
rm -rf /layer; mkdir /layer; echo layer-after: $(ls -A /layer)
"""
BUILT_EXPECT = ["layer: copy dir keep", "dir: new", "olddir: fresh hello", "data: keep",
                "keep", "appended", "keep", "appended", "new", "fresh", "hello", "keep",
                "vi-gone", "gone1-gone", "markers: 0", "layer-after:"]


def layer_markers(s):
    """Names of .wh.* markers found in the layers' diff dirs of the store."""
    found = set()
    for dirpath, dirs, files in os.walk(os.path.join(s.graph, "overlay")):
        for n in files:
            if n.startswith(".wh."):
                rel = dirpath.split("/diff", 1)[-1] if "/diff" in dirpath else dirpath
                found.add(os.path.join(rel or "/", n))
    return found


def sc_build(s):
    for name, text in (("Containerfile", CONTAINERFILE), ("hello", "hello\n")):
        with open(os.path.join(s.dir, "ctx", name), "w") as f:
            f.write(text)
        if s.user is not None:
            os.chown(os.path.join(s.dir, "ctx", name), s.user.pw_uid, s.user.pw_gid)
    r = s.podman("build", "--pull=never", "--network", "none", "-t",
                 "localhost/layered", "-f", os.path.join(s.dir, "ctx", "Containerfile"),
                 os.path.join(s.dir, "ctx"), timeout=BUILD_TIMEOUT)
    if not r.ok:
        return False, ["podman build failed"]
    marks = layer_markers(s)
    need = {"/layer/.wh.gone1", "/bin/.wh.vi", "/data/.wh.gone"}
    if not need <= marks:
        return False, [f"the build's layers lack the markers {sorted(need - marks)}; "
                       f"found {sorted(marks)}"]
    r = s.podman("run", "--rm", "--network", "none", "localhost/layered",
                 "sh", "-c", BUILT_SCRIPT)
    ok, d = check_lines(r, BUILT_EXPECT)
    return ok, d + [f"markers in the layers: {sorted(marks)}"]


OPAQUE_SCRIPT = r"""
echo olddir: $(ls -A /olddir)
echo data: $(ls -A /data)
echo sub: $(ls -A /data/sub)
echo mid: $(ls -A /mid)
echo newdir: $(ls -A /newdir)
cat /olddir/fresh /olddir/third /data/sub/t /mid/g /newdir/n
test -e /bin/vi && echo vi-present || echo vi-gone
test -e /bin/busybox && echo busybox-present
for p in /olddir/o2 /olddir/inner /data/keep /data/gone /data/sub/s /mid/f \
         /olddir/.wh..wh..opq /data/.wh.keep /bin/.wh.vi; do
    test -e "$p" && echo "visible: $p"
    ls -d "$p" 2>/dev/null
done
echo markers: $(find / -xdev -name '.wh.*' | wc -l)
rm /olddir/fresh; echo 4 > /olddir/fourth; echo olddir2: $(ls -A /olddir)
rm -rf /data/sub; mkdir /data/sub; echo sub2: $(ls -A /data/sub)
rm -rf /mid; mkdir /mid; echo mid2: $(ls -A /mid)
"""
OPAQUE_EXPECT = ["olddir: fresh third", "data: sub", "sub: t", "mid: g", "newdir: n",
                 "fresh", "third", "t", "g", "n", "vi-gone", "busybox-present",
                 "markers: 0", "olddir2: fourth third", "sub2:", "mid2:"]


def sc_opaque(s):
    arch = os.path.join(s.dir, "opaque.tar")
    make_docker_archive(arch, os.path.join(s.dir, "rootfs.tar"), "localhost/opaque:latest")
    if s.user is not None:
        os.chown(arch, s.user.pw_uid, s.user.pw_gid)
    r = s.podman("load", "-i", arch)
    if not r.ok:
        return False, ["podman load failed"]
    marks = layer_markers(s)
    need = {"/olddir/.wh..wh..opq", "/data/sub/.wh..wh..opq", "/mid/.wh..wh..opq",
            "/data/.wh.keep"}
    if not need <= marks:
        return False, [f"the loaded layers lack the markers {sorted(need - marks)}; "
                       f"found {sorted(marks)}"]
    r = s.podman("run", "--rm", "--network", "none", "localhost/opaque:latest",
                 "sh", "-c", OPAQUE_SCRIPT)
    return check_lines(r, OPAQUE_EXPECT)


DIFF_SCRIPT = ("echo new > /newfile; echo changed > /data/keep; rm /data/gone; "
               "rm -rf /data/sub; rm -rf /olddir; mkdir /olddir; echo n > /olddir/n; "
               "mkdir /newdir; echo i > /newdir/i")
DIFF_EXPECT = {"A /newfile", "C /data/keep", "D /data/gone", "D /data/sub",
               "A /olddir/n", "D /olddir/o2", "D /olddir/inner", "A /newdir",
               "A /newdir/i"}
# podman's own mount points and what holds them may show as changes too
DIFF_NOISE = re.compile(r"^[AC] /(etc|run|dev|proc|sys|tmp)(/|$)")


# The container's name must not be hex: `podman diff dc` once took "dc" for
# the prefix of an image ID (dc...) and showed that image's changes.
DC = "diff-ctr"


def make_dc(s):
    """The stopped container DC with DIFF_SCRIPT's changes, made once;
    diff, export, commit and mount use it.  None or a failure message."""
    if s.podman("container", "exists", DC).rc == 0:
        return None
    r = s.podman("run", "--name", DC, "--network", "none", "localhost/sbase",
                 "sh", "-c", DIFF_SCRIPT)
    return None if r.ok else f"the container {DC} making the changes failed"


def sc_diff(s):
    err = make_dc(s)
    if err:
        return False, [err]
    left = s.leftovers()
    if left:
        return False, ["after the container exited:"] + left
    r = s.podman("diff", DC)
    if not r.ok:
        return False, ["podman diff failed"]
    got = {ln.strip() for ln in r.out.splitlines() if ln.strip()}
    missing = DIFF_EXPECT - got
    extra = {ln for ln in got - DIFF_EXPECT
             if not DIFF_NOISE.match(ln) and ln not in ("C /data", "C /olddir")}
    d = []
    if missing:
        d.append(f"missing from podman diff: {sorted(missing)}")
    if extra:
        d.append(f"unexpected in podman diff: {sorted(extra)}")
    return not d, d


COMMITTED_SCRIPT = r"""
cat /newfile /data/keep /olddir/n /newdir/i
test -e /copied && cat /copied
echo data: $(ls -A /data)
echo olddir: $(ls -A /olddir)
echo markers: $(find / -xdev -name '.wh.*' | wc -l)
"""
COMMITTED_EXPECT = ["new", "changed", "n", "i", "data: keep", "olddir: n", "markers: 0"]


def sc_export(s):
    """podman cp out of and into the stopped container and podman export:
    both mount it through the mount program."""
    out = os.path.join(s.dir, "tmp", "cp-out")
    src = os.path.join(s.dir, "tmp", "cp-in")
    with open(src, "w") as f:
        f.write("copied in\n")
    if s.user is not None:
        os.chown(src, s.user.pw_uid, s.user.pw_gid)
    err = make_dc(s)
    if err:
        return False, [err]
    d = []
    r = s.podman("cp", f"{DC}:/data/keep", out)
    try:
        with open(out) as f:
            got = f.read()
    except OSError as e:
        got = str(e)
    if not r.ok or got != "changed\n":
        d.append(f"podman cp {DC}:/data/keep: got {got!r}")
    r = s.podman("cp", src, f"{DC}:/copied")
    if not r.ok:
        d.append(f"podman cp into {DC} failed")
    s.copied_in = r.ok
    tarpath = os.path.join(s.dir, "tmp", "export.tar")
    r = s.podman("export", "-o", tarpath, DC)
    names = set()
    if r.ok:
        with tarfile.open(tarpath) as tf:
            names = {m.name.lstrip("./").rstrip("/") for m in tf.getmembers()}
    else:
        d.append("podman export failed")
    want = {"newfile", "copied", "data/keep", "olddir/n", "newdir/i", "bin/busybox"}
    gone = {"data/gone", "data/sub", "olddir/o2", "olddir/inner"}
    if names:
        if not want <= names:
            d.append(f"export lacks {sorted(want - names)}")
        if names & gone:
            d.append(f"export has deleted {sorted(names & gone)}")
        wh = sorted(n for n in names if ".wh." in n)
        if wh:
            d.append(f"export has markers {wh}")
    return not d, d


def sc_commit(s):
    err = make_dc(s)
    if err:
        return False, [err]
    r = s.podman("commit", DC, "localhost/committed")
    if not r.ok:
        return False, ["podman commit failed"]
    r = s.podman("run", "--rm", "--network", "none", "localhost/committed",
                 "sh", "-c", COMMITTED_SCRIPT)
    expect = list(COMMITTED_EXPECT)
    if s.copied_in:             # the export scenario copied a file in
        expect[4:4] = ["copied in"]
    return check_lines(r, expect)


MOUNT_SCRIPT = r"""
set -e
m=$(podman mount diff-ctr)
echo "merged=$m"
cat "$m/newfile" "$m/data/keep"
echo data: $(ls -A "$m/data")
echo type: $(awk -v m="$m" '$5 == m { for (i = 7; i <= NF; i++) if ($i == "-") { print $(i+1); exit } }' /proc/self/mountinfo)
podman umount diff-ctr
echo after: $(awk -v m="$m" '$5 == m' /proc/self/mountinfo | wc -l)
i=$(podman image mount localhost/sbase)
echo "merged=$i"
echo image: $(ls -A "$i/data")
echo image-opts: $(awk -v m="$i" '$5 == m { print $6 }' /proc/self/mountinfo | cut -d, -f1)
touch "$i/data/x" 2>/dev/null && echo image-writable || echo image-readonly
podman image umount localhost/sbase
echo image-after: $(awk -v m="$i" '$5 == m' /proc/self/mountinfo | wc -l)
"""


def sc_mount(s):
    err = make_dc(s)
    if err:
        return False, [err]
    argv = ["sh", "-c", MOUNT_SCRIPT]
    r = s.run(argv if s.user is None else ["podman", "unshare"] + argv)
    ok, d = check_lines(r, ["new", "changed", "data: keep", f"type: {s.fstype()}",
                            "after: 0", "image: gone keep sub", "image-opts: ro",
                            "image-readonly", "image-after: 0"],
                        skip=r"merged=|diff-ctr$|[0-9a-f]{64}$")
    if not ok:
        return ok, d
    left = s.leftovers()
    if left:
        return False, ["after podman umount:"] + left
    return True, []


def subid_start(path, user):
    with open(path) as f:
        for ln in f:
            parts = ln.strip().split(":")
            if len(parts) == 3 and parts[0] in (user.pw_name, str(user.pw_uid)):
                return int(parts[1])
    return None


def upper_owner(s, name, path):
    r = s.podman("inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", name)
    if not r.ok:
        return None, "podman inspect failed"
    p = os.path.join(r.out.strip(), path.lstrip("/"))
    try:
        st = os.lstat(p)
    except OSError as e:
        return None, f"{p}: {e}"
    return (st.st_uid, st.st_gid), p


KEEPID_SCRIPT = r"""
id -u; id -g
stat -c %u:%g / /bin/busybox /data/keep /misc/own5 /misc/own1001
touch /tmp/mine; mkdir /tmp/mydir
stat -c %u:%g /tmp/mine /tmp/mydir
echo x >> /data/keep 2>/dev/null && echo wrote-root-file || echo denied
"""


def sc_keepid(s):
    u = s.user
    r = s.podman("run", "--name", "kid", "--userns=keep-id", "--network", "none",
                 "localhost/sbase", "sh", "-c", KEEPID_SCRIPT)
    me = f"{u.pw_uid}:{u.pw_gid}"
    ok, d = check_lines(r, [str(u.pw_uid), str(u.pw_gid), "0:0", "0:0", "0:0",
                            "5:5", "1001:1001", me, me, "denied"])
    if not ok:
        return ok, d
    r = s.podman("run", "--rm", "--userns=keep-id", "--user", "0", "--network", "none",
                 "localhost/sbase", "sh", "-c",
                 "id -u; touch /tmp/r; chown 5:5 /misc/own1001; "
                 "stat -c %u:%g /tmp/r /misc/own1001 /misc/own5")
    ok, d = check_lines(r, ["0", "0:0", "5:5", "5:5"])
    if not ok:
        return ok, d
    # on disk the container's ids are kept: uid U of the container is uid U
    # of podman's namespace, i.e. host uid subuid_start + U - 1
    su = subid_start("/etc/subuid", u)
    sg = subid_start("/etc/subgid", u)
    want = (su + u.pw_uid - 1, sg + u.pw_gid - 1)
    for path in ("/tmp/mine", "/tmp/mydir"):
        got, where = upper_owner(s, "kid", path)
        if got != want:
            return False, [f"{where}: host owner {got}, expected {want} (container "
                           f"{me} = podman-namespace {me} = host subid range)"]
    left = s.leftovers()
    return not left, left


UIDMAP_SCRIPT = r"""
id -u; id -g
stat -c %u:%g / /bin/busybox /data/keep /misc/own5 /misc/own1001
touch /tmp/u; stat -c %u:%g /tmp/u
touch /tmp/five; chown 5:6 /tmp/five; stat -c %u:%g /tmp/five
echo x >> /data/keep && cat /data/keep; stat -c %u:%g /data/keep
"""


def sc_uidmap(s):
    u = s.user
    r = s.podman("run", "--name", "umap", "--uidmap", "0:1:1000", "--gidmap", "0:1:1000",
                 "--network", "none", "localhost/sbase", "sh", "-c", UIDMAP_SCRIPT)
    # own1001 lies outside the 1000 ids mapped: the overflow id
    ok, d = check_lines(r, ["0", "0", "0:0", "0:0", "0:0", "5:5", "65534:65534",
                            "0:0", "5:6", "keep", "x", "0:0"])
    if not ok:
        return ok, d
    # container uid N is podman-namespace uid N+1, stored on disk as N
    # (podman namespace), i.e. host uid: 0 -> the user, N -> subuid+N-1
    su = subid_start("/etc/subuid", u)
    sg = subid_start("/etc/subgid", u)
    for path, want in (("/tmp/u", (u.pw_uid, u.pw_gid)),
                       ("/tmp/five", (su + 4, sg + 5)),
                       ("/data/keep", (u.pw_uid, u.pw_gid))):
        got, where = upper_owner(s, "umap", path)
        if got != want:
            return False, [f"{where}: host owner {got}, expected {want}"]
    left = s.leftovers()
    return not left, left


def sc_volatile(s):
    r = s.podman("run", "-d", "--rm", "--name", "vol", "--network", "none",
                 "localhost/sbase", "sleep", "120")
    if not r.ok:
        return False, ["podman run -d --rm failed"]
    r = s.podman("inspect", "--format", "{{.GraphDriver.Data.MergedDir}}", "vol")
    merged = r.out.strip()
    if not r.ok or not merged:
        return False, ["podman inspect failed"]
    d = {}
    end = time.monotonic() + 10
    while time.monotonic() < end:
        d = {p: a for p, a in daemons(s.graph, s.prog_names()).items()
             if merged in a}
        if d:
            break
        time.sleep(0.1)
    problems = []
    if not d:
        problems.append(f"no daemon found for {merged}")
    for pid, argv in d.items():
        opts = mount_options(argv)
        if "volatile" not in opts:
            problems.append(f"pid {pid}: no 'volatile' in {opts}")
        problems += [f"pid {pid}: holds {fd}" for fd in held_pipes(pid)]
    r = s.podman("stop", "-t", "0", "vol")
    if not r.ok:
        problems.append("podman stop failed")
    # --rm: the container goes away by itself
    end = time.monotonic() + 20
    while time.monotonic() < end:
        r = s.podman("container", "exists", "vol", record=False)
        if r.rc == 1:
            break
        time.sleep(0.3)
    else:
        problems.append("the --rm container is still there 20 s after stop")
    problems += s.leftovers()
    return not problems, problems + [f"daemon argv: {' '.join(a)}" for a in d.values()]


def sc_restart(s):
    """Unmount and mount again at once, as `podman start` after an exit and
    `podman restart` do: the daemon of the old mount may still be on its
    way out while the new one takes the same upper and workdir."""
    r = s.podman("create", "--name", "rs", "--network", "none", "localhost/sbase",
                 "sh", "-c", "echo x >> /count; wc -l < /count")
    if not r.ok:
        return False, ["podman create failed"]
    problems = []
    for i in range(1, 6):
        r = s.podman("start", "-a", "rs")
        if not r.ok or r.out.strip() != str(i):
            problems.append(f"start {i}: rc={r.rc} output {r.out.strip()!r}, "
                            f"expected {i}")
            break
    if s.podman("rm", "rs").rc != 0:
        problems.append("podman rm failed")
    # restart of a running container (podman 4.3 mostly keeps its mount)
    r = s.podman("run", "-d", "--name", "rs2", "--network", "none", "localhost/sbase",
                 "sh", "-c", "echo x >> /count; sleep 60")
    if not r.ok:
        return False, problems + ["podman run -d failed"]
    for i in range(2, 5):
        r = s.podman("restart", "-t", "0", "rs2")
        if not r.ok:
            problems.append(f"podman restart {i - 1} failed")
            break
        r = s.podman("exec", "rs2", "sh", "-c", "wc -l < /count")
        if r.out.strip() != str(i):
            problems.append(f"after restart {i - 1}: /count has {r.out.strip()!r} "
                            f"lines, expected {i}")
            break
    if s.podman("rm", "-f", "-t", "0", "rs2").rc != 0:
        problems.append("podman rm -f failed")
    return not problems, problems


def held_pipes(pid):
    """fds 0-2 of a daemon that are not /dev/null: a pipe there would be
    Podman's and make it hang."""
    bad = []
    for fd in (0, 1, 2):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if t != "/dev/null":
            bad.append(f"fd {fd} -> {t}")
    return bad


FM_WRITE_SCRIPT = r"""
touch /tmp/new; chmod 4711 /tmp/new; stat -c '%a %u:%g' /tmp/new
mkdir /tmp/d; chmod 1700 /tmp/d; chown 7:8 /tmp/d; stat -c '%a %u:%g' /tmp/d
echo x >> /data/keep; chmod 600 /data/keep; stat -c '%a %u:%g' /data/keep
"""
FM_WRITE_EXPECT = {"tmp/new": (0, 0, 0o4711), "tmp/d": (7, 8, 0o1700),
                   "data/keep": (0, 0, 0o600)}


def override_stat(path):
    """(uid, gid, mode) from user.containers.override_stat, or None."""
    try:
        v = os.getxattr(path, "user.containers.override_stat", follow_symlinks=False)
    except OSError:
        return None
    uid, gid, mode = v.decode().split(":")[:3]
    return int(uid), int(gid), int(mode, 8)


def sc_forcemask(s):
    """force_mask: the layers hold forced modes and the real ones in
    user.containers.override_stat; the daemon (xattr_permissions=2) must
    show the recorded ones and record changes there."""
    r = s.podman("run", "-d", "--name", "fm", "--network", "none",
                 "localhost/sbase", "sleep", "120")
    if not r.ok:
        return False, ["podman run -d failed"]
    problems = []
    r = s.podman("inspect", "--format",
                 "{{.GraphDriver.Data.MergedDir}} {{.GraphDriver.Data.UpperDir}}", "fm")
    merged, upper = (r.out.split() + ["", ""])[:2]
    d = {p: a for p, a in daemons(s.graph, s.prog_names()).items() if merged and merged in a}
    opts = [o for a in d.values() for o in mount_options(a)]
    if "xattr_permissions=2" not in opts:
        problems.append(f"no xattr_permissions=2 in the daemon's options {opts}")
    r = s.podman("image", "inspect", "--format", "{{.GraphDriver.Data.UpperDir}}",
                 "localhost/sbase")
    layer = r.out.strip()
    paths = ["tmp", "data/keep", "misc/suid", "bin/busybox", "data"]
    r = s.podman("exec", "fm", "stat", "-c", "%a %u:%g", *["/" + p for p in paths])
    shown = r.out.split("\n")
    for i, p in enumerate(paths):
        want = override_stat(os.path.join(layer, p))
        if want is None:
            problems.append(f"{layer}/{p}: no override_stat xattr (force_mask not in effect)")
            continue
        w = f"{want[2]:o} {want[0]}:{want[1]}"
        got = shown[i].strip() if i < len(shown) else ""
        if got != w:
            problems.append(f"/{p}: shown {got!r}, the layer's override_stat says {w!r}")
    r = s.podman("exec", "fm", "sh", "-c", FM_WRITE_SCRIPT)
    want_lines = [f"{m:o} {u}:{g}" for (u, g, m) in FM_WRITE_EXPECT.values()]
    got_lines = [ln.strip() for ln in r.out.splitlines() if ln.strip()]
    if got_lines != want_lines:
        problems.append(f"after the changes: shown {got_lines}, expected {want_lines}")
    for p, want in FM_WRITE_EXPECT.items():
        got = override_stat(os.path.join(upper, p))
        if got != want:
            problems.append(f"{upper}/{p}: override_stat {got}, expected {want}")
    # a new mount (stop, start) shows what was recorded
    s.podman("stop", "-t", "0", "fm")
    left = s.leftovers()
    if left:
        problems += ["after podman stop:"] + left
    if s.podman("start", "fm").ok:
        r = s.podman("exec", "fm", "stat", "-c", "%a %u:%g",
                     *["/" + p for p in FM_WRITE_EXPECT])
        got_lines = [ln.strip() for ln in r.out.splitlines() if ln.strip()]
        if got_lines != want_lines:
            problems.append(f"after a remount: shown {got_lines}, expected {want_lines}")
    else:
        problems.append("podman start failed")
    if s.podman("rm", "-f", "-t", "0", "fm").rc != 0:
        problems.append("podman rm -f failed")
    return not problems, problems


# (key, title, function, which setups: "all", "rootless" or "force_mask")
SCENARIOS = [
    ("info", "podman info shows overlay with mount_program {prog} and its --version",
     sc_info, "all"),
    ("run", "run --rm: write, append, delete lower files, rm -rf and mkdir over "
     "image dirs, rename, symlink, hardlinks, fifo, setuid, chmod, chown", sc_run, "all"),
    ("build", "podman build of RUN layers (whiteouts, re-created dirs), run the image",
     sc_build, "all"),
    ("opaque", "podman load of layers with .wh. and .wh..wh..opq markers, run and "
     "change it", sc_opaque, "all"),
    ("diff", "podman diff of a changed container shows A/C/D", sc_diff, "all"),
    ("export", "podman cp out of and into a stopped container, podman export",
     sc_export, "all"),
    ("commit", "podman commit, run the committed image", sc_commit, "all"),
    ("mount", "podman mount / umount and image mount{unshare}", sc_mount, "all"),
    ("keep-id", "--userns=keep-id: owners inside and on disk", sc_keepid, "rootless"),
    ("uidmap", "--uidmap 0:1:1000: owners inside and on disk", sc_uidmap, "rootless"),
    ("volatile", "run --rm passes volatile to the daemon; daemon exits on stop",
     sc_volatile, "all"),
    ("restart", "start -a five times in a row (unmount, mount again at once), "
     "restart a running container three times", sc_restart, "all"),
    ("force-mask", "force_mask store: xattr_permissions=2 reaches the daemon, modes "
     "and owners from user.containers.override_stat, changes recorded there",
     sc_forcemask, "force_mask"),
]


# ---------------------------------------------------------------------------
# setting up the machine for rootless runs


def ensure_user():
    """The unprivileged user, with subordinate id ranges; (pwd, notes)."""
    notes = []
    try:
        u = pwd.getpwnam(USER)
    except KeyError:
        r = subprocess.run(["useradd", "--system", "-M", "-d", "/nonexistent",
                            "-s", "/usr/sbin/nologin", "-U", USER],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"useradd {USER}: {r.stderr.strip()}")
        u = pwd.getpwnam(USER)
        notes.append(f"created user {USER} ({u.pw_uid})")
    for path in ("/etc/subuid", "/etc/subgid"):
        if subid_start(path, u) is not None:
            continue
        top = 100000
        if os.path.exists(path):
            with open(path) as f:
                for ln in f:
                    parts = ln.strip().split(":")
                    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                        top = max(top, int(parts[1]) + int(parts[2]))
        with open(path, "a") as f:
            f.write(f"{USER}:{top}:65536\n")
        notes.append(f"added {USER}:{top}:65536 to {path}")
    return u, notes


class Machine:
    """What the run changes outside its temporary directory, to put back."""

    def __init__(self):
        self.fuse_mode = None
        self.created = [d for d in ("/var/lib/containers", "/run/containers")
                        if not os.path.exists(d)]

    def open_fuse(self):
        self.fuse_mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
        os.chmod("/dev/fuse", 0o666)

    def restore(self):
        if self.fuse_mode is not None:
            os.chmod("/dev/fuse", self.fuse_mode)
        # root podman writes its blob-info cache and netavark state there
        for d in self.created:
            shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------


def run_setup(t, s, only):
    """The scenarios for this setup, one TAP line each, then one for what is
    left; then the setup's cleanup."""
    rootless = s.user is not None
    r = s.podman("import", "--change", "ENV=PATH=/bin", "--change", 'CMD=["/bin/sh"]',
                 os.path.join(s.dir, "rootfs.tar"), "localhost/sbase:latest")
    base_ok = r.ok
    base_diag = s.diag(["podman import of the busybox rootfs failed"]) if not base_ok else ""
    for key, title, fn, where in SCENARIOS:
        if (where == "force_mask") != s.force_mask:
            continue
        if where == "rootless" and not rootless:
            continue
        if only and not re.search(only, key):
            continue
        name = f"{s.name}: {key}: " + title.format(
            prog=os.path.basename(s.prog), unshare=" (in podman unshare)" if rootless else "")
        if not base_ok:
            t.ok(False, name, base_diag)
            continue
        if time.monotonic() - T0 > DEADLINE:
            t.ok(False, name, f"not run: the run passed its {DEADLINE} s deadline")
            continue
        s.log = []
        hung_before = len(s.hung)
        try:
            ok, d = fn(s)
        except Exception:
            import traceback
            ok, d = False, traceback.format_exc().splitlines()
        if len(s.hung) > hung_before:
            ok = False
            d = [f"podman HUNG: {' '.join(h.argv)}" for h in s.hung[hung_before:]] + d
        if ok:
            left = s.leftovers()
            if left:
                ok, d = False, ["left behind after the scenario:"] + left
        t.ok(ok, name, "" if ok else s.diag(d))
    left = s.leftovers(wait=2)
    t.ok(not left and not s.hung, f"{s.name}: no daemon or mount left, podman never hung",
         "\n".join(left + [f"HUNG: {h.describe()}" for h in s.hung]))
    s.cleanup()


BUSYBOX = shutil.which("busybox")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meson", action="store_true")
    ap.add_argument("--mode", choices=("root", "rootless", "both"), default="both")
    ap.add_argument("--only", default="", help="regex on scenario names")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--mount-program", default=None)
    ap.add_argument("--wrap", action="store_true")
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args()

    require_root_fuse()
    missing = [x for x in ("podman", "runc", "conmon", "newuidmap", "newgidmap",
                           "setpriv", "busybox") if shutil.which(x) is None]
    if missing:
        skip_all(f"not installed: {' '.join(missing)} (bash contrib/deps.sh)")
    if not elf_is_static(os.path.realpath(BUSYBOX)):
        skip_all(f"{BUSYBOX} is not statically linked (install busybox-static)")
    if tap.WRAPPED and not args.mount_program:
        skip_all("the daemon would run under STRATAFS_WRAPPER (valgrind): too slow"
                 " for podman's mount and container timeouts; not run wrapped")
    prog = os.path.abspath(args.mount_program or stratafs_bin())
    if not os.access(prog, os.X_OK):
        skip_all(f"{prog} is not built")

    t = Tap()
    # short: podman refuses a runroot over 50 characters, and rootless its
    # runroot is XDG_RUNTIME_DIR/containers; the refusal shows only in the
    # cleanup process conmon starts (exit 125), so containers stay mounted
    top = tempfile.mkdtemp(prefix="sfs-pm-", dir="/tmp")
    os.chmod(top, 0o755)
    machine = Machine()
    setups = []
    kw = dict(wrap=args.wrap, debug=args.debug)
    try:
        if args.mode in ("root", "both"):
            for name, fm in (("root", False), ("root-fm", True)):
                s = Setup(name, top, prog, force_mask=fm, **kw)
                setups.append(s)
                run_setup(t, s, args.only)
        if args.mode in ("rootless", "both"):
            user, prog = rootless_prepare(t, top, prog, machine)
            for name, fm in (("rootless", False), ("rootless-fm", True)):
                if user is None:
                    break
                s = Setup(name, top, prog, user=user, force_mask=fm, **kw)
                setups.append(s)
                run_setup(t, s, args.only)
    finally:
        for s in setups:
            if not s.cleaned:
                s.cleanup()
        machine.restore()
        if args.keep:
            print(f"# kept {top}", flush=True)
        else:
            for s in setups:
                for ln in reversed(mountinfo_lines(s.dir)):
                    subprocess.run(["umount", "-l", ln.split()[4]], capture_output=True)
            shutil.rmtree(top, ignore_errors=True)
    print(f"# {time.monotonic() - T0:.0f} s", flush=True)
    t.done()


def rootless_prepare(t, top, prog, machine):
    """The test user, /dev/fuse open to it, and a mount program it can
    execute: (user or None after a failure line, program path)."""
    try:
        user, notes = ensure_user()
    except Exception as e:
        t.ok(False, "rootless: test user and subordinate ids", str(e))
        return None, prog
    for n in notes:
        print(f"# {n}", flush=True)
    machine.open_fuse()
    # the daemon runs as the user (root of its namespace): a build tree under
    # a private home may not let it execute the program; then a copy is used
    probe = subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                            "--init-groups", prog, "--version"], capture_output=True)
    if probe.returncode != 0:
        copy = os.path.join(top, os.path.basename(prog))
        shutil.copy(prog, copy)
        os.chmod(copy, 0o755)
        print(f"# {prog} not executable by {USER}: using a copy, {copy}", flush=True)
        prog = copy
    return user, prog


if __name__ == "__main__":
    main()
