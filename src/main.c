// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * stratafs: argv -> options -> layers -> FUSE session -> loop -> teardown.
 *
 * Everything that can be wrong with the command line or the layers is
 * found before mounting and reported as one line on stderr with exit
 * status 1.  Without -f the daemon detaches only once the mount is live,
 * and the detached daemon keeps no stdio open (callers read stderr to
 * EOF).  The daemon exits when its mount goes away.
 */
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "stratafs/stratafs.h"

static void usage(FILE *out)
{
	fprintf(out,
"usage: stratafs [SOURCE] MOUNTPOINT -o lowerdir=DIR[:DIR...][,OPTIONS]\n"
"\n"
"Mount the union of the lower directories (the first listed is the top)\n"
"at MOUNTPOINT, with the semantics of the kernel overlayfs.\n"
"\n"
"  -o OPTIONS       comma-separated mount options (below)\n"
"  -f               stay in the foreground\n"
"  -d, --debug      debug output (implies -f)\n"
"  -s               single-threaded (same as -o threaded=0)\n"
"  -h, --help       this text\n"
"  -V, --version    print the version\n"
"\n"
"Options:\n"
"  lowerdir=A:B:C   read-only layers, top first (at most %d); '\\:'\n"
"                   is a colon inside a path\n"
"  upperdir=DIR     writable layer: every change goes there\n"
"  workdir=DIR      empty dir on the upper's filesystem, for atomic changes\n"
"  uidmapping=D:S:N[:D:S:N...], gidmapping=...\n"
"                   id mapping: on-disk D+k shows as S+k (as fuse-overlayfs)\n"
"  squash_to_root, squash_to_uid=UID, squash_to_gid=GID\n"
"                   show every file as owned by 0 or by UID/GID\n"
"  static_nlink     directories show nlink 1\n"
"  noacl, noxattrs  serve no POSIX ACLs / no extended attributes\n"
"  fsync=0|1        pass fsync on to the upper (default 1); volatile = fsync=0\n"
"  xattr_permissions=0|1|2\n"
"                   keep owner and mode in {security,user}.containers.\n"
"                   override_stat (for a daemon that cannot chown)\n"
"  threaded=0|1     multithreaded request loop (default 1)\n"
"  timeout=SECONDS  kernel entry/attribute cache timeout (default 86400)\n"
"  spin=US          poll for the next request this long before sleeping\n"
"                   (default %d; 0: sleep at once)\n"
"  writeback=0|1    kernel write cache (default 0)\n"
"  redirect_dir=off, metacopy=off, index=off   accepted (only off)\n"
"  context=LABEL    SELinux label (ignored where SELinux is off)\n"
"  fsname=NAME      source name shown in the mount table\n"
"  subtype=NAME     type shown as fuse.NAME (default stratafs)\n"
"  ro, rw, nosuid, nodev, noexec, noatime, allow_other, allow_root,\n"
"  default_permissions, and the other generic mount options\n"
"\n"
"Unknown options are ignored with a warning.  See stratafs(1).\n",
		STRATA_MAX_LOWER, STRATA_DEFAULT_SPIN_US);
}

/* libfuse splits -o on commas: escape them (and backslashes) in values */
static char *fuse_escape(const char *s)
{
	GString *out = g_string_new(NULL);

	for (; *s; s++) {
		if (*s == ',' || *s == '\\')
			g_string_append_c(out, '\\');
		g_string_append_c(out, *s);
	}
	return g_string_free(out, FALSE);
}

static void raise_fd_limit(void)
{
	struct rlimit rl;

	/* directories hold one descriptor per layer they exist in */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int check_mountpoint(const char *path, char **err)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		int e = errno;
		*err = g_strdup_printf("mount point %s: %s", path,
				       e == ENOENT ? "no such directory"
						   : g_strerror(e));
		return -e;
	}
	if (!S_ISDIR(st.st_mode)) {
		*err = g_strdup_printf("mount point %s: not a directory", path);
		return -ENOTDIR;
	}
	return 0;
}

static GPtrArray *fuse_argv(const struct strata_options *o, bool read_only)
{
	GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
	g_autofree char *fsname =
		fuse_escape(o->fsname ? o->fsname
				      : o->source ? o->source : "stratafs");
	g_autofree char *subtype =
		fuse_escape(o->subtype ? o->subtype : "stratafs");
	GString *opts = g_string_new(NULL);

	g_string_append_printf(opts, "fsname=%s,subtype=%s", fsname, subtype);
	if (read_only)
		g_string_append(opts, ",ro");
	/* as root, behave like a system filesystem: everyone may use it and
	 * the kernel checks permissions (fuse-overlayfs does the same) */
	if (geteuid() == 0)
		g_string_append(opts, ",allow_other,default_permissions");
	/* libfuse mounts nosuid,nodev unless told otherwise; as root, match
	 * the kernel overlayfs (setuid binaries of an image must work).  A
	 * user's nosuid/nodev below still wins: later flags override. */
	if (geteuid() == 0)
		g_string_append(opts, ",suid,dev");
	/* an SELinux label means something only where SELinux runs */
	if (o->context && access("/sys/fs/selinux/enforce", F_OK) == 0) {
		g_autofree char *ctx = fuse_escape(o->context);

		g_string_append_printf(opts, ",context=%s", ctx);
	}
	for (guint i = 0; i < o->fuse_opts->len; i++) {
		const char *f = o->fuse_opts->pdata[i];

		if (geteuid() == 0 && (strcmp(f, "allow_other") == 0 ||
				       strcmp(f, "default_permissions") == 0))
			continue;
		g_string_append_printf(opts, ",%s", f);
	}
	g_ptr_array_add(a, g_strdup("stratafs"));
	g_ptr_array_add(a, g_strdup("-o"));
	g_ptr_array_add(a, g_string_free(opts, FALSE));
	if (o->debug)
		g_ptr_array_add(a, g_strdup("-d"));
	return a;
}

static int run(struct strata_options *o)
{
	struct strata_fs fs = { .workfd = -1, .workdir_fd = -1 };
	struct fuse_session *se = NULL;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	g_autoptr(GPtrArray) fargv = NULL;
	g_autofree char *err = NULL;
	g_autofree char *mnt = NULL;
	bool read_only;
	int r;

	r = check_mountpoint(o->mountpoint, &err);
	if (r < 0)
		goto fail;
	mnt = realpath(o->mountpoint, NULL);
	raise_fd_limit();
	r = strata_fs_open(&fs, o, &err);
	if (r < 0)
		goto fail;

	read_only = o->read_only || !fs.has_upper;
	fargv = fuse_argv(o, read_only);
	args.argc = fargv->len;
	args.argv = (char **)fargv->pdata;
	se = fuse_session_new(&args, &strata_ops, sizeof(strata_ops), &fs);
	/* libfuse rewrites args into a fresh copy when it parses them */
	if (args.allocated)
		fuse_opt_free_args(&args);
	/* before fuse_daemonize, whose parent process ends in _exit() */
	g_clear_pointer(&fargv, g_ptr_array_unref);
	if (se == NULL) {
		err = g_strdup("cannot create the FUSE session");
		r = -EINVAL;
		goto fail;
	}
	if (fuse_set_signal_handlers(se) != 0) {
		err = g_strdup("cannot set signal handlers");
		r = -EINVAL;
		goto fail;
	}
	if (fuse_session_mount(se, mnt) != 0) {
		err = g_strdup_printf("cannot mount on %s", mnt);
		r = -EIO;
		goto fail_handlers;
	}

	if (!o->foreground) {
		/* the mount is live: detach; from now on no stderr */
		strata_log_init(o->debug, true);
		fuse_daemonize(0);
	}

	strata_ops_notify_start(&fs, se);
	if (o->threaded) {
		r = strata_loop_run(se, STRATA_MAX_THREADS, o->spin_us);
	} else {
		r = fuse_session_loop(se);
	}
	strata_ops_notify_stop(&fs);
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
	strata_fs_close(&fs);
	/* unmounted from outside or by a signal: both are a normal end */
	return 0;

fail_handlers:
	fuse_remove_signal_handlers(se);
fail:
	if (se)
		fuse_session_destroy(se);
	strata_fs_close(&fs);
	strata_err("%s", err);
	return 1;
}

int main(int argc, char **argv)
{
	struct strata_options o;
	g_autofree char *err = NULL;
	int r;

	strata_log_init(false, false);
	strata_options_init(&o);
	r = strata_options_parse(&o, argc, argv, &err);
	if (r < 0) {
		strata_err("%s", err);
		strata_options_clear(&o);
		return 1;
	}
	if (o.help) {
		usage(stdout);
		strata_options_clear(&o);
		return 0;
	}
	if (o.version) {
		printf("stratafs version %s\n", STRATAFS_VERSION);
		printf("FUSE library version %s\n", fuse_pkgversion());
		strata_options_clear(&o);
		return 0;
	}
	strata_log_init(o.debug, false);
	/* descriptors a caller leaked to us would stay open as long as the
	 * daemon lives (a pipe its reader waits on to end); a mount point
	 * given as /dev/fd/N is the one exception */
	if (!g_str_has_prefix(o.mountpoint, "/dev/fd/"))
		close_range(3, ~0U, 0);
	for (guint i = 0; i < o.warnings->len; i++)
		strata_warn("warning: %s", (char *)o.warnings->pdata[i]);
	if (o.context && access("/sys/fs/selinux/enforce", F_OK) != 0)
		strata_warn("warning: option context ignored: SELinux is not "
			    "enabled");

	r = run(&o);
	strata_options_clear(&o);
	return r;
}
