// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Layer markers, read side.  Every format a real layer may hold is read:
 *
 *   whiteout  a 0/0 character device (kernel overlayfs, fuse-overlayfs);
 *             an empty regular file with {trusted,user}.overlay.whiteout
 *             (kernel >= 6.7, composefs);
 *             a file ".wh.NAME" beside NAME (OCI/AUFS, containers-storage).
 *   opaque    {trusted,user}.overlay.opaque = "y";
 *             user.fuseoverlayfs.opaque = "y" (fuse-overlayfs, rootless);
 *             an entry ".wh..wh..opq" (OCI/AUFS) or ".wh..opq"
 *             (fuse-overlayfs 1.10-1.14) inside the directory.
 *   opaque=x  the directory is not opaque but may hold xattr whiteouts.
 *
 * Any other opaque value is "not opaque", as the kernel reads it.  Marker
 * xattr names come from one table, indexed by marker and namespace.
 *
 * Write side: what the kernel overlayfs writes, so that an upper layer of
 * ours means the same to it: a 0/0 character device where mknod is
 * allowed, else an xattr whiteout in the namespace probed at mount (and
 * opaque=x on its directory, so that the kernel's readdir hides it), else
 * (no xattrs at all) ".wh.NAME".  Opaque: overlay.opaque=y, or
 * ".wh..wh..opq" without xattrs.  Every replacement is one rename.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "stratafs/stratafs.h"

static const char *const marker_xattr[STRATA_MARKER__COUNT]
				      [STRATA_NS__COUNT] = {
	[STRATA_MARKER_OPAQUE] = { "trusted.overlay.opaque",
				   "user.overlay.opaque" },
	[STRATA_MARKER_WHITEOUT] = { "trusted.overlay.whiteout",
				     "user.overlay.whiteout" },
	/* in the kernel's private namespace, so that a kernel overlayfs
	 * mounted on our upper hides and ignores it */
	[STRATA_MARKER_ORIGIN] = { "trusted.overlay.stratafs.ino",
				   "user.overlay.stratafs.ino" },
	[STRATA_MARKER_KORIGIN] = { "trusted.overlay.origin",
				    "user.overlay.origin" },
	[STRATA_MARKER_IMPURE] = { "trusted.overlay.impure",
				   "user.overlay.impure" },
};

#define FUSEOVERLAYFS_OPAQUE "user.fuseoverlayfs.opaque"
#define FUSEOVERLAYFS_OPQ_DEV ".wh..opq"

/* Prefixes of xattrs that belong to the overlay machinery, not the user. */
static const char *const private_prefixes[] = {
	"trusted.overlay.",
	"user.overlay.",
	"user.fuseoverlayfs.",
	"trusted.stratafs.",
	"user.stratafs.",
	/* xattr_permissions: owner and mode of the object, ours to show */
	"user.containers.override_stat",
	"security.containers.override_stat",
};

const char *strata_marker_xattr(enum strata_marker m, enum strata_xattr_ns ns)
{
	return marker_xattr[m][ns];
}

bool strata_is_aufs_name(const char *name)
{
	return strncmp(name, STRATA_AUFS_PREFIX,
		       sizeof(STRATA_AUFS_PREFIX) - 1) == 0;
}

bool strata_is_private_xattr(const char *name)
{
	for (size_t i = 0; i < G_N_ELEMENTS(private_prefixes); i++)
		if (g_str_has_prefix(name, private_prefixes[i]))
			return true;
	return false;
}

bool strata_is_marker_xattr(const char *name)
{
	/* escaped user names, and the owner and mode of xattr_permissions,
	 * are the object's own: they travel with it on copy-up */
	static const char *const own[] = {
		"trusted.overlay.overlay.", "user.overlay.overlay.",
		"user.containers.override_stat",
		"security.containers.override_stat",
		"user.fuseoverlayfs.override_stat",
		"security.fuseoverlayfs.override_stat",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(own); i++)
		if (g_str_has_prefix(name, own[i]))
			return false;
	return strata_is_private_xattr(name);
}

bool strata_is_chardev_whiteout(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

enum strata_opaque_val strata_parse_opaque(const char *val, ssize_t len)
{
	if (len == 1 && val[0] == 'y')
		return STRATA_OPAQUE_Y;
	if (len == 1 && val[0] == 'x')
		return STRATA_OPAQUE_X;
	return STRATA_OPAQUE_NONE;
}

/* Is @xname listed in the listxattr buffer @list? */
bool strata_xattr_list_has(const char *list, ssize_t len, const char *xname)
{
	for (const char *p = list; p < list + len; p += strlen(p) + 1)
		if (strcmp(p, xname) == 0)
			return true;
	return false;
}

static int read_opaque_xattr(int dirfd, const char *xname,
			     enum strata_opaque_val *v)
{
	char val[8];
	ssize_t r = strata_do_getxattr_at(dirfd, NULL, xname, val,
					  sizeof(val));

	if (r == -ENODATA || r == -ERANGE) {
		/* gone meanwhile, or longer than any valid value */
		*v = STRATA_OPAQUE_NONE;
		return 0;
	}
	if (r < 0)
		return (int)r;
	*v = strata_parse_opaque(val, r);
	return 0;
}

int strata_read_dir_markers(int dirfd, struct strata_dir_markers *m,
			    bool files)
{
	static const char *const names[] = {
		"trusted.overlay.opaque", "user.overlay.opaque",
		FUSEOVERLAYFS_OPAQUE,
	};
	char list[4096];
	g_autofree char *big = NULL;
	const char *buf = list;
	ssize_t len;
	struct stat st;
	int r;

	memset(m, 0, sizeof(*m));
	/* one listxattr answers the common case of no marker at all */
	len = strata_do_listxattr_at(dirfd, NULL, list, sizeof(list));
	if (len == -ERANGE) {
		len = strata_do_listxattr_at(dirfd, NULL, NULL, 0);
		if (len >= 0) {
			big = g_malloc(len + 1);
			len = strata_do_listxattr_at(dirfd, NULL, big, len);
			buf = big;
		}
	}
	if (len == -ENOTSUP || len == -EOPNOTSUPP)
		len = 0;
	if (len < 0)
		return (int)len;

	for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
		enum strata_opaque_val v = STRATA_OPAQUE_NONE;

		if (!strata_xattr_list_has(buf, len, names[i]))
			continue;
		r = read_opaque_xattr(dirfd, names[i], &v);
		if (r < 0)
			return r;
		if (v == STRATA_OPAQUE_Y)
			m->opaque = true;
		/* "x" is the kernel's own format; fuse-overlayfs has none */
		else if (v == STRATA_OPAQUE_X && i < 2)
			m->xwhiteouts = true;
	}
	if (!m->opaque && files) {
		r = strata_do_fstatat(dirfd, STRATA_AUFS_OPAQUE, &st,
				      AT_SYMLINK_NOFOLLOW);
		if (r == 0)
			m->opaque = true;
		else if (r != -ENOENT)
			return r;
	}
	if (!m->opaque && files) {
		r = strata_do_fstatat(dirfd, FUSEOVERLAYFS_OPQ_DEV, &st,
				      AT_SYMLINK_NOFOLLOW);
		if (r == 0)
			m->opaque = true;
		else if (r != -ENOENT)
			return r;
	}
	return 0;
}

int strata_entry_is_whiteout(int dirfd, const char *name,
			     const struct stat *st)
{
	if (strata_is_chardev_whiteout(st))
		return 1;
	/* xattr whiteout: only an empty regular file can be one */
	if (S_ISREG(st->st_mode) && st->st_size == 0) {
		for (int ns = 0; ns < STRATA_NS__COUNT; ns++) {
			ssize_t r = strata_do_getxattr_at(
				dirfd, name,
				marker_xattr[STRATA_MARKER_WHITEOUT][ns],
				NULL, 0);
			if (r >= 0)
				return 1;
			if (r != -ENODATA && r != -ENOTSUP && r != -EPERM &&
			    r != -EACCES)
				return (int)r;
		}
	}
	return 0;
}

int strata_aufs_whiteout_exists(int dirfd, const char *name)
{
	char wh[NAME_MAX + 1];
	struct stat st;
	int r;

	if (snprintf(wh, sizeof(wh), STRATA_AUFS_PREFIX "%s", name) >=
	    (int)sizeof(wh))
		return 0; /* no such marker can exist */
	r = strata_do_fstatat(dirfd, wh, &st, AT_SYMLINK_NOFOLLOW);
	if (r == 0)
		return 1;
	return r == -ENOENT ? 0 : r;
}

int strata_upper_state(int udir, const char *name, struct stat *st)
{
	int r = strata_do_fstatat(udir, name, st, AT_SYMLINK_NOFOLLOW);

	if (r == 0) {
		r = strata_entry_is_whiteout(udir, name, st);
		if (r < 0)
			return r;
		return r ? STRATA_UPPER_WHITEOUT : STRATA_UPPER_ENTRY;
	}
	if (r != -ENOENT)
		return r;
	r = strata_aufs_whiteout_exists(udir, name);
	if (r < 0)
		return r;
	return r ? STRATA_UPPER_AUFS : STRATA_UPPER_NONE;
}

/*
 * Whiteouts are hard links of one 0/0 device in work/, as the kernel
 * overlayfs makes them: allocating an inode for each is what makes
 * deleting many lower files slow (on ext4 the inode allocator dominates
 * `rm -rf`), and a link is a whiteout like any other to every reader.
 * When the shared one is missing (first use; work/ is emptied at mount)
 * or full (EMLINK), a fresh one replaces it atomically; where links fail
 * otherwise, each whiteout gets its own device node.
 */

static int mknod_whiteout(int dirfd, const char *name)
{
	return mknodat(dirfd, name, S_IFCHR | 0000, makedev(0, 0)) < 0
		       ? -errno
		       : 0;
}

static int link_whiteout(struct strata_fs *fs, const char *tmp)
{
	char fresh[48];
	int r;

	for (int tries = 0; tries < 2; tries++) {
		if (linkat(fs->workfd, STRATA_SHARED_WHITEOUT, fs->workfd, tmp, 0) == 0)
			return 0;
		r = -errno;
		if (r != -ENOENT && r != -EMLINK)
			break;
		strata_tmpname(fs, fresh, sizeof(fresh));
		r = mknod_whiteout(fs->workfd, fresh);
		if (r < 0)
			return r;
		r = strata_do_renameat2(fs->workfd, fresh, fs->workfd,
					STRATA_SHARED_WHITEOUT, 0);
		if (r < 0) {
			strata_do_unlinkat(fs->workfd, fresh, 0);
			break;
		}
	}
	return mknod_whiteout(fs->workfd, tmp);
}

int strata_build_whiteout(struct strata_fs *fs, const char *tmp)
{
	int fd, r;

	if (fs->wh_format == STRATA_WH_CHARDEV)
		return link_whiteout(fs, tmp);
	fd = strata_do_openat(fs->workfd, tmp, O_CREAT | O_EXCL | O_WRONLY,
			      0000);
	if (fd < 0)
		return fd;
	close(fd);
	r = strata_do_setxattr_at(
		fs->workfd, tmp,
		marker_xattr[STRATA_MARKER_WHITEOUT][fs->xattr_ns], "", 0, 0);
	if (r < 0)
		strata_do_unlinkat(fs->workfd, tmp, 0);
	return r;
}

/* The kernel's readdir hides xattr whiteouts only in a directory marked
 * opaque=x: mark the upper directory unless it is opaque already. */
static int mark_xwhiteouts(struct strata_fs *fs, int udir)
{
	const char *x = marker_xattr[STRATA_MARKER_OPAQUE][fs->xattr_ns];
	char val[4];
	ssize_t n = strata_do_getxattr_at(udir, NULL, x, val, sizeof(val));

	if (n >= 0 || (n != -ENODATA && n != -ERANGE))
		return n < 0 ? (int)n : 0;
	return strata_do_setxattr_at(udir, NULL, x, "x", 1, 0);
}

int strata_whiteout_dir_prepare(struct strata_fs *fs, int udir)
{
	return fs->wh_format == STRATA_WH_XATTR ? mark_xwhiteouts(fs, udir) : 0;
}

int strata_aufs_marker(int udir, const char *name)
{
	char wh[NAME_MAX + 1];
	int fd;

	if (snprintf(wh, sizeof(wh), STRATA_AUFS_PREFIX "%s", name) >=
	    (int)sizeof(wh))
		return -ENAMETOOLONG;
	fd = strata_do_openat(udir, wh, O_CREAT | O_WRONLY, 0000);
	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

int strata_clear_aufs_whiteout(int udir, const char *name)
{
	char wh[NAME_MAX + 1];
	int r;

	if (snprintf(wh, sizeof(wh), STRATA_AUFS_PREFIX "%s", name) >=
	    (int)sizeof(wh))
		return 0;
	r = strata_do_unlinkat(udir, wh, 0);
	return r == -ENOENT ? 0 : r;
}

int strata_whiteout_replace(struct strata_fs *fs, int udir, const char *name)
{
	char tmp[48];
	int r;

	if (fs->wh_format == STRATA_WH_AUFS) {
		/* marker first: a crash in between still hides the name */
		r = strata_aufs_marker(udir, name);
		if (r == 0) {
			r = strata_do_unlinkat(udir, name, 0);
			r = r == -ENOENT ? 0 : r;
		}
		return r;
	}
	if (fs->wh_format == STRATA_WH_XATTR) {
		r = mark_xwhiteouts(fs, udir);
		if (r < 0)
			return r;
	}
	strata_tmpname(fs, tmp, sizeof(tmp));
	r = strata_build_whiteout(fs, tmp);
	if (r < 0)
		return r;
	r = strata_do_renameat2(fs->workfd, tmp, udir, name, 0);
	if (r < 0)
		strata_do_unlinkat(fs->workfd, tmp, 0);
	return r;
}

int strata_whiteout_dir(struct strata_fs *fs, int udir, const char *name)
{
	char old[48];
	int r;

	strata_tmpname(fs, old, sizeof(old));
	if (fs->wh_format != STRATA_WH_AUFS && fs->can_exchange) {
		/* one atomic step: the whiteout takes the directory's
		 * place, the directory lands in work */
		if (fs->wh_format == STRATA_WH_XATTR) {
			r = mark_xwhiteouts(fs, udir);
			if (r < 0)
				return r;
		}
		r = strata_build_whiteout(fs, old);
		if (r < 0)
			return r;
		r = strata_do_renameat2(fs->workfd, old, udir, name,
					RENAME_EXCHANGE);
		if (r < 0) {
			strata_do_unlinkat(fs->workfd, old, 0);
			return r;
		}
		return strata_remove_tree(fs->workfd, old);
	}
	/* two steps: move the directory out, then put the whiteout.  A
	 * ".wh.NAME" marker made first (it hides only the layers below its
	 * own, so not the directory beside it) keeps the lower NAME hidden
	 * in between, also after a crash; it goes once the whiteout is in */
	if (fs->wh_format != STRATA_WH_AUFS) {
		r = strata_aufs_marker(udir, name);
		if (r < 0)
			return r;
	}
	r = strata_do_renameat2(udir, name, fs->workfd, old, 0);
	if (r < 0) {
		if (fs->wh_format != STRATA_WH_AUFS)
			strata_clear_aufs_whiteout(udir, name);
		return r;
	}
	r = strata_whiteout_replace(fs, udir, name);
	if (r == 0 && fs->wh_format != STRATA_WH_AUFS)
		strata_clear_aufs_whiteout(udir, name);
	strata_remove_tree(fs->workfd, old);
	return r;
}

int strata_set_opaque(struct strata_fs *fs, int dir, const char *name)
{
	strata_autofd fd = -1;
	int r;

	if (fs->xattr_ok)
		return strata_do_setxattr_at(
			dir, name, marker_xattr[STRATA_MARKER_OPAQUE][fs->xattr_ns],
			"y", 1, 0);
	fd = name ? strata_do_openat(dir, name, O_PATH | O_DIRECTORY |
							O_NOFOLLOW, 0)
		  : dup(dir);
	if (fd < 0)
		return name ? fd : -errno;
	r = strata_do_openat(fd, STRATA_AUFS_OPAQUE, O_CREAT | O_WRONLY,
			     0000);
	if (r < 0)
		return r;
	close(r);
	return 0;
}
