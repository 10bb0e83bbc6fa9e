// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Opening the layer stack at mount time: each layer once, checked, with a
 * one-line error naming the problem before anything is mounted.  Also
 * builds the root of the merged view, which merges the roots of all
 * layers (markers on a layer's root directory are ignored, as the kernel
 * overlayfs ignores them).
 *
 * With an upper layer: the workdir must be writable, on the upper's
 * filesystem and apart from it; it is locked (flock) so that a second
 * mount on it fails instead of corrupting the first, and its "work"
 * subdirectory, where every new object is built before it is published
 * by rename, is emptied of what an interrupted run left.  What the upper
 * filesystem can do (xattr namespace, 0/0 mknod, RENAME_WHITEOUT,
 * RENAME_EXCHANGE) is probed there once, and each fallback logged once.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "stratafs/stratafs.h"

/*
 * The canonical path of the directory open as @fd: what the kernel names
 * it.  getcwd() after fchdir() asks the kernel for it in two cheap calls;
 * readlink() of /proc/self/fd/N costs a procfs lookup (5-9 us a layer
 * against about 2, measured over 128 layers), realpath(3) a call per
 * component.  @cwd is the caller's working directory (O_PATH, or -1 if it
 * could not be opened: one the caller cannot search, and then readlink()),
 * to which it returns at once: later relative layer paths resolve against
 * it.  Returns NULL with *r < 0 only if it cannot
 * return there.
 */
static char *fd_path(int fd, const char *path, int cwd, int *r)
{
	char link[64], buf[PATH_MAX];
	ssize_t n;

	*r = 0;
	if (cwd >= 0 && fchdir(fd) == 0) {
		const char *got = getcwd(buf, sizeof(buf));

		if (fchdir(cwd) != 0) {
			*r = -errno;
			return NULL;
		}
		if (got && buf[0] == '/')
			return strdup(buf);
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, sizeof(buf) - 1);
	if (n <= 0 || buf[0] != '/' || (size_t)n >= sizeof(buf) - 1)
		return realpath(path, NULL); /* no /proc, or not reachable */
	buf[n] = '\0';
	return strdup(buf);
}

/* The filesystem UUID of layer @l (open as @fd), asked once per st_dev:
 * @prev are the layers opened before it. */
static void layer_uuid(struct strata_layer *l, int fd,
		       const struct strata_layer *prev, uint32_t n_prev)
{
	struct {
		uint8_t len;
		uint8_t uuid[16];
	} fu;

	for (uint32_t i = 0; i < n_prev; i++) {
		if (prev[i].fd >= 0 && prev[i].dev == l->dev) {
			l->has_uuid = prev[i].has_uuid;
			memcpy(l->uuid, prev[i].uuid, 16);
			return;
		}
	}
	/* the kernel's origin xattrs name a lower filesystem by UUID */
	if (ioctl(fd, _IOR(0x15, 0, fu), &fu) == 0 && fu.len == 16) {
		memcpy(l->uuid, fu.uuid, 16);
		l->has_uuid = true;
	}
}

static int open_layer(struct strata_layer *l, const char *what,
		      const char *path, const struct strata_layer *prev,
		      uint32_t n_prev, int cwd, char **err)
{
	struct stat st;
	char *real;
	int fd, r;

	fd = strata_do_openat(AT_FDCWD, path, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0) {
		const char *why = fd == -ENOTDIR ? "not a directory"
			: fd == -ENOENT		 ? "no such directory"
			: fd == -EACCES		 ? "not readable (permission denied)"
						 : g_strerror(-fd);
		*err = g_strdup_printf("%s %s: %s", what, path, why);
		return fd;
	}
	if (faccessat(fd, ".", R_OK | X_OK, AT_EACCESS) < 0) {
		int e = errno;
		*err = g_strdup_printf("%s %s: not readable (%s)", what, path,
				       g_strerror(e));
		close(fd);
		return -e;
	}
	if (fstat(fd, &st) < 0) {
		int e = errno;
		*err = g_strdup_printf("%s %s: %s", what, path, g_strerror(e));
		close(fd);
		return -e;
	}
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	layer_uuid(l, fd, prev, n_prev);
	real = fd_path(fd, path, cwd, &r);
	if (r < 0) {
		*err = g_strdup_printf("cannot return to the working directory "
				       "after opening %s %s: %s", what, path,
				       g_strerror(-r));
		close(fd);
		return r;
	}
	if (l->upper && faccessat(fd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
		int e = errno;
		*err = g_strdup_printf("%s %s: not writable (%s)", what, path,
				       g_strerror(e));
		close(fd);
		free(real);
		return -e;
	}
	l->fd = fd;
	l->path = real ? real : g_strdup(path);
	return 0;
}

static void assign_fs_indexes(struct strata_fs *fs)
{
	fs->n_devs = 0;
	for (uint32_t i = 0; i < fs->n_layers; i++) {
		uint32_t j;

		for (j = 0; j < i; j++)
			if (fs->layers[j].dev == fs->layers[i].dev)
				break;
		fs->layers[i].fsidx = j < i ? fs->layers[j].fsidx
					    : fs->n_devs++;
	}
	/* keep the low bits of the real inode number, the fs index above */
	fs->ino_shift = 64 - g_bit_storage(fs->n_devs > 1 ? fs->n_devs - 1
							  : 1);
}

static int build_root(struct strata_fs *fs, char **err)
{
	struct strata_stack *s = strata_stack_new(fs->n_layers);
	struct strata_inode *root;
	struct stat st;
	uint32_t i = 0;
	int r;

	for (i = 0; i < fs->n_layers; i++) {
		struct strata_dir_markers m;

		s->e[i].layer = i;
		s->e[i].fd = strata_do_openat(fs->layers[i].fd, ".",
					      O_PATH | O_DIRECTORY, 0);
		if (s->e[i].fd < 0) {
			r = s->e[i].fd;
			goto fail;
		}
		/* the root is never opaque */
		r = strata_read_dir_markers(s->e[i].fd, &m, false);
		if (r < 0)
			goto fail;
		s->e[i].xwhiteouts = m.xwhiteouts;
	}
	i = 0;
	r = strata_do_fstatat(s->e[0].fd, "", &st, AT_EMPTY_PATH);
	if (r < 0)
		goto fail;

	root = strata_inode_new(S_IFDIR);
	root->ik.key = strata_map_ino(fs, 0, st.st_ino);
	root->ino = root->ik.key;
	root->name = g_strdup("");
	root->stack = s;
	g_hash_table_insert(fs->inodes, &root->ik, root);
	fs->root = root;
	return 0;
fail:
	*err = g_strdup_printf("layer %s: %s", fs->layers[i].path,
			       g_strerror(-r));
	strata_stack_unref(s);
	return r;
}

/* Is @inner the directory @outer or below it?  Both canonical. */
static bool path_within(const char *inner, const char *outer)
{
	size_t n = strlen(outer);

	if (strcmp(outer, "/") == 0)
		return true;
	return strncmp(inner, outer, n) == 0 &&
	       (inner[n] == '\0' || inner[n] == '/');
}

/* ... and strictly below it */
static bool path_below(const char *inner, const char *outer)
{
	return path_within(inner, outer) && strcmp(inner, outer) != 0;
}

static int remove_tree_at(int dirfd, const char *name, int depth);

/* Remove everything inside the directory @fd (no symlink followed). */
static int empty_dir(int fd, int depth)
{
	int dfd = dup(fd);
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (dfd < 0)
		return -errno;
	d = fdopendir(dfd);
	if (d == NULL) {
		close(dfd);
		return -errno;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		r = remove_tree_at(fd, de->d_name, depth + 1);
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

static int remove_tree_at(int dirfd, const char *name, int depth)
{
	int fd, r;

	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	if (depth > 4096)
		return -ELOOP;
	fd = strata_do_openat(dirfd, name,
			      O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd < 0)
		return fd;
	r = empty_dir(fd, depth);
	close(fd);
	if (r == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 &&
	    errno != ENOENT)
		r = -errno;
	return r;
}

int strata_remove_tree(int dirfd, const char *name)
{
	return remove_tree_at(dirfd, name, 0);
}

static void probe_xattrs(struct strata_fs *fs, int fd)
{
	static const char *const names[STRATA_NS__COUNT] = {
		"trusted.overlay.stratafs.probe",
		"user.overlay.stratafs.probe",
	};

	for (int ns = 0; ns < STRATA_NS__COUNT; ns++) {
		if (fsetxattr(fd, names[ns], "y", 1, 0) == 0) {
			fremovexattr(fd, names[ns]);
			fs->xattr_ok = true;
			fs->xattr_ns = ns;
			return;
		}
	}
	fs->xattr_ok = false;
	fs->xattr_ns = geteuid() == 0 ? STRATA_NS_TRUSTED : STRATA_NS_USER;
}

/*
 * What the upper filesystem can do, found once in the work dir, with one
 * file and one device node (each step is a metadata change on the upper
 * filesystem, at every mount): xattrs on the file; a 0/0 device (else a
 * second file) to swap it with by RENAME_EXCHANGE; then a rename of one
 * with RENAME_WHITEOUT.
 */
static void probe_upper(struct strata_fs *fs, const char *upper)
{
	int w = fs->workfd;
	bool file, second;
	int fd, mknod_err = 0;

	fd = strata_do_openat(w, "#probe", O_CREAT | O_EXCL | O_WRONLY, 0600);
	file = fd >= 0;
	if (fd >= 0) {
		probe_xattrs(fs, fd);
		close(fd);
	}
	if (mknodat(w, "#probe-wh", S_IFCHR | 0600, makedev(0, 0)) == 0) {
		fs->wh_format = STRATA_WH_CHARDEV;
		second = true;
	} else {
		mknod_err = errno;
		fs->wh_format = fs->xattr_ok ? STRATA_WH_XATTR : STRATA_WH_AUFS;
		fd = strata_do_openat(w, "#probe-wh",
				      O_CREAT | O_EXCL | O_WRONLY, 0600);
		second = fd >= 0;
		if (fd >= 0)
			close(fd);
	}
	if (fs->wh_format == STRATA_WH_XATTR)
		strata_warn("upperdir %s: cannot create 0/0 device whiteouts "
			    "(%s); writing xattr whiteouts", upper,
			    g_strerror(mknod_err));
	if (!fs->xattr_ok)
		strata_warn("upperdir %s: no trusted.* or user.* xattrs; "
			    "whiteouts and opaque directories are written "
			    "as .wh.NAME and .wh..wh..opq, which the kernel "
			    "overlayfs does not read", upper);
	fs->can_exchange = file && second &&
			   renameat2(w, "#probe", w, "#probe-wh",
				     RENAME_EXCHANGE) == 0;
	fs->can_rename_whiteout = fs->wh_format == STRATA_WH_CHARDEV && file &&
				  renameat2(w, "#probe", w, "#probe-b",
					    RENAME_WHITEOUT) == 0;
	unlinkat(w, "#probe", 0);
	unlinkat(w, "#probe-b", 0);
	unlinkat(w, "#probe-wh", 0);
	fs->can_chown = geteuid() == 0;
}

/*
 * The workdir lock.  A daemon whose mount was just unmounted still holds
 * it until it notices and exits, which takes a moment; a caller that
 * unmounts and mounts again at once (a container restart) must not fail
 * on that, so wait a little before calling the workdir in use.
 */
static int lock_workdir(int fd)
{
	for (int i = 0; i < 100; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK)
			return -1;
		g_usleep(20 * 1000);
	}
	errno = EWOULDBLOCK;
	return -1;
}

static int open_workdir(struct strata_fs *fs, const char *path,
			char **err)
{
	struct stat st;
	int r;

	fs->workdir_fd = strata_do_openat(AT_FDCWD, path,
					  O_RDONLY | O_DIRECTORY, 0);
	if (fs->workdir_fd < 0) {
		r = fs->workdir_fd;
		*err = g_strdup_printf("workdir %s: %s", path,
				       r == -ENOENT ? "no such directory"
				       : r == -ENOTDIR ? "not a directory"
						     : g_strerror(-r));
		return r;
	}
	if (faccessat(fs->workdir_fd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
		r = -errno;
		*err = g_strdup_printf("workdir %s: not writable (%s)", path,
				       g_strerror(-r));
		return r;
	}
	if (fstat(fs->workdir_fd, &st) < 0)
		return -errno;
	if (st.st_dev != fs->layers[0].dev) {
		*err = g_strdup_printf("workdir %s is not on the same "
				       "filesystem as upperdir %s", path,
				       fs->layers[0].path);
		return -EXDEV;
	}
	if (lock_workdir(fs->workdir_fd) < 0) {
		r = -errno;
		*err = g_strdup_printf(
			"workdir %s in use by another mount%s", path,
			r == -EWOULDBLOCK ? "" : " (cannot lock it)");
		return r;
	}
	if (mkdirat(fs->workdir_fd, "work", 0700) < 0 && errno != EEXIST) {
		r = -errno;
		*err = g_strdup_printf("workdir %s: cannot create work/: %s",
				       path, g_strerror(-r));
		return r;
	}
	fs->workfd = strata_do_openat(fs->workdir_fd, "work",
				      O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fs->workfd < 0) {
		r = fs->workfd;
		*err = g_strdup_printf("workdir %s/work: %s", path,
				       g_strerror(-r));
		return r;
	}
	/* leftovers of an interrupted run: never published, so garbage */
	r = empty_dir(fs->workfd, 0);
	if (r < 0) {
		*err = g_strdup_printf("workdir %s: cannot clean work/: %s",
				       path, g_strerror(-r));
		return r;
	}
	return 0;
}

/*
 * Where the layers, the workdir and the mount point may sit, from their
 * canonical paths (any of @upper, @work, @mnt may be NULL):
 *   - the upper and the workdir must not overlap a lower or each other:
 *     the daemon would see its own writes through a layer (the kernel
 *     refuses a lower inside the upper or workdir; we also refuse the
 *     reverse, which it takes);
 *   - the mount point must not be strictly inside a layer or the workdir:
 *     a lookup of its name in that layer would enter our own mount and
 *     wait for ourselves for ever.  Mounting over a layer itself is fine
 *     (the daemon holds the layer's descriptor from before the mount, as
 *     `mount -t overlay -o lowerdir=/usr,... /usr` relies on);
 *   - the upper and the workdir must not be the mount point or inside it.
 * Lowers nested in each other are allowed: they are only read.
 * Returns 0, or -EINVAL with *err set to one line.
 */
int strata_check_layout(const char *upper, const char *work,
			const char *const *lowers, uint32_t n,
			const char *mnt, char **err)
{
	if (upper && work &&
	    (path_within(work, upper) || path_within(upper, work))) {
		*err = g_strdup_printf("upperdir %s and workdir %s must be "
				       "separate directories, neither inside "
				       "the other", upper, work);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < n; i++) {
		const char *l = lowers[i];

		if (upper && (path_within(upper, l) || path_within(l, upper))) {
			*err = g_strdup_printf("upperdir %s and lowerdir %s "
					       "overlap", upper, l);
			return -EINVAL;
		}
		if (work && path_within(work, l)) {
			*err = g_strdup_printf("workdir %s is inside lowerdir "
					       "%s", work, l);
			return -EINVAL;
		}
		if (work && path_within(l, work)) {
			*err = g_strdup_printf("lowerdir %s is inside workdir "
					       "%s", l, work);
			return -EINVAL;
		}
		if (mnt && path_below(mnt, l)) {
			*err = g_strdup_printf("mount point %s is inside "
					       "lowerdir %s", mnt, l);
			return -EINVAL;
		}
	}
	if (mnt && upper && path_below(mnt, upper)) {
		*err = g_strdup_printf("mount point %s is inside upperdir %s",
				       mnt, upper);
		return -EINVAL;
	}
	if (mnt && work && path_below(mnt, work)) {
		*err = g_strdup_printf("mount point %s is inside workdir %s",
				       mnt, work);
		return -EINVAL;
	}
	if (mnt && upper && (path_within(upper, mnt) ||
			     (work && path_within(work, mnt)))) {
		*err = g_strdup_printf("upperdir %s or workdir %s is inside "
				       "the mount point %s", upper, work, mnt);
		return -EINVAL;
	}
	return 0;
}

/*
 * The same rule by identity: a layer bind-mounted elsewhere is an ancestor
 * of a mount point under the bind mount's path, which no path comparison
 * sees (and where mounts propagate, our mount then appears inside the
 * layer itself).  Walks ".." from the mount point up to the root and
 * compares each directory with the layers' roots.
 */
static int check_mount_ancestors(struct strata_fs *fs, const char *mnt,
				 char **err)
{
	struct stat cur, prev;
	int fd = strata_do_openat(AT_FDCWD, mnt, O_PATH | O_DIRECTORY, 0);
	int r = 0;

	if (fd < 0 || fstat(fd, &prev) < 0)
		goto out; /* the mount itself will report it */
	for (int depth = 0; depth < 4096 && r == 0; depth++) {
		int up = strata_do_openat(fd, "..", O_PATH | O_DIRECTORY, 0);

		close(fd);
		fd = up;
		if (fd < 0 || fstat(fd, &cur) < 0)
			break;
		if (cur.st_dev == prev.st_dev && cur.st_ino == prev.st_ino)
			break; /* "/" is its own parent */
		for (uint32_t i = 0; i < fs->n_layers; i++) {
			if (fs->layers[i].dev != cur.st_dev ||
			    fs->layers[i].ino != cur.st_ino)
				continue;
			*err = g_strdup_printf(
				"mount point %s is inside %s %s (reached "
				"through another path)", mnt,
				fs->layers[i].upper ? "upperdir" : "lowerdir",
				fs->layers[i].path);
			r = -EINVAL;
			break;
		}
		prev = cur;
	}
out:
	if (fd >= 0)
		close(fd);
	return r;
}

static int check_nesting(struct strata_fs *fs, const struct strata_options *o,
			 char **err)
{
	g_autofree char *work =
		o->upperdir && o->workdir ? realpath(o->workdir, NULL) : NULL;
	g_autofree char *mnt =
		o->mountpoint ? realpath(o->mountpoint, NULL) : NULL;
	g_autofree const char **lowers =
		g_new(const char *, fs->n_layers ? fs->n_layers : 1);
	uint32_t base = fs->has_upper ? 1 : 0;

	for (uint32_t i = base; i < fs->n_layers; i++)
		lowers[i - base] = fs->layers[i].path;
	int r = strata_check_layout(fs->has_upper ? fs->layers[0].path : NULL,
				    work, lowers, fs->n_layers - base, mnt,
				    err);

	if (r == 0 && mnt)
		r = check_mount_ancestors(fs, mnt, err);
	return r;
}

/* The id the kernel shows for an unmapped owner. */
static uint32_t read_overflow(const char *path)
{
	g_autofree char *text = NULL;
	guint64 v;

	if (!g_file_get_contents(path, &text, NULL, NULL))
		return 65534;
	v = g_ascii_strtoull(text, NULL, 10);
	return v > 0 && v < UINT32_MAX ? (uint32_t)v : 65534;
}

/* The upper (if any) and the lower layers' roots, fs->layers sized. */
static int open_layers(struct strata_fs *fs, const struct strata_options *o,
		       char **err)
{
	guint base = o->upperdir ? 1 : 0;
	int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (o->upperdir) {
		fs->has_upper = true;
		fs->layers[0].upper = true;
		r = open_layer(&fs->layers[0], "upperdir", o->upperdir,
			       NULL, 0, cwd, err);
	}
	for (guint i = 0; r == 0 && i < o->lowerdirs->len; i++)
		r = open_layer(&fs->layers[base + i], "lowerdir",
			       o->lowerdirs->pdata[i], fs->layers, base + i,
			       cwd, err);
	if (cwd >= 0)
		close(cwd);
	return r;
}

int strata_fs_open(struct strata_fs *fs, const struct strata_options *o,
		   char **err)
{
	guint n = o->lowerdirs->len;
	guint base = o->upperdir ? 1 : 0;
	int r;

	fs->workdir_fd = -1;
	fs->workfd = -1;
	if (n == 0) {
		*err = g_strdup("missing option lowerdir=DIR[:DIR...]");
		return -EINVAL;
	}
	if (n > STRATA_MAX_LOWER) {
		*err = g_strdup_printf("too many lower layers: %u (at most "
				       "%u)", n, STRATA_MAX_LOWER);
		return -EINVAL;
	}
	fs->timeout = o->timeout;
	fs->debug = o->debug;
	fs->fsync = o->fsync;
	fs->squash_uid = o->squash_uid;
	fs->squash_gid = o->squash_gid;
	fs->static_nlink = o->static_nlink;
	fs->acl = !o->noacl;
	fs->xattrs = !o->noxattrs;
	fs->writeback = o->writeback;
	fs->override_xattr = o->xattr_permissions == 1 ? STRATA_OVERRIDE_PRIV
			     : o->xattr_permissions == 2 ? STRATA_OVERRIDE_USER
							 : NULL;
	strata_idmap_copy(&fs->uidmap, &o->uidmap);
	strata_idmap_copy(&fs->gidmap, &o->gidmap);
	fs->uidmap.overflow = read_overflow("/proc/sys/kernel/overflowuid");
	fs->gidmap.overflow = read_overflow("/proc/sys/kernel/overflowgid");
	if (o->upperdir && !o->workdir) {
		*err = g_strdup("option upperdir needs workdir=DIR too");
		return -EINVAL;
	}
	fs->layers = g_new0(struct strata_layer, n + base);
	for (guint i = 0; i < n + base; i++)
		fs->layers[i].fd = -1;
	fs->n_layers = n + base;
	r = open_layers(fs, o, err);
	if (r < 0)
		return r;
	r = check_nesting(fs, o, err);
	if (r < 0)
		return r;
	if (o->upperdir) {
		r = open_workdir(fs, o->workdir, err);
		if (r < 0)
			return r;
		fs->workpath = realpath(o->workdir, NULL);
		probe_upper(fs, fs->layers[0].path);
	}
	assign_fs_indexes(fs);
	strata_table_init(fs);
	return build_root(fs, err);
}

void strata_fs_close(struct strata_fs *fs)
{
	/* the workdir lock first: a new mount may be waiting for it */
	if (fs->workfd >= 0) {
		/* the shared whiteout (whiteout.c): work/ is left empty */
		unlinkat(fs->workfd, STRATA_SHARED_WHITEOUT, 0);
		close(fs->workfd);
	}
	if (fs->workdir_fd >= 0)
		close(fs->workdir_fd);
	fs->workfd = fs->workdir_fd = -1;
	strata_table_destroy(fs);
	for (uint32_t i = 0; i < fs->n_layers; i++) {
		if (fs->layers[i].fd >= 0)
			close(fs->layers[i].fd);
		free(fs->layers[i].path);
	}
	g_clear_pointer(&fs->layers, g_free);
	fs->n_layers = 0;
	free(fs->workpath);
	fs->workpath = NULL;
	strata_idmap_clear(&fs->uidmap);
	strata_idmap_clear(&fs->gidmap);
	fs->root = NULL;
}
