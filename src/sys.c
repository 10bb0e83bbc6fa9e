// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * System call wrappers.  Each returns a non-negative result or -errno,
 * captured right after the call, retries EINTR, and traces
 * "op(args) = result" when debugging.  Every path inside a layer is one
 * component relative to a directory fd and never follows a symlink: a
 * hostile layer cannot make the daemon touch anything outside it.
 *
 * xattr calls have no *at form before Linux 6.13 and do not work on O_PATH
 * descriptors, so they go through /proc/self/fd/N/NAME: N is resolved by
 * the kernel to the very directory we hold, and the l*xattr family does
 * not follow NAME if it is a symlink.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "stratafs/stratafs.h"

#define RETRY(expr)                                                           \
	({                                                                    \
		long _r;                                                      \
		do                                                            \
			_r = (long)(expr);                                    \
		while (_r < 0 && errno == EINTR);                             \
		_r < 0 ? -errno : _r;                                         \
	})

static const char *shown(const char *name)
{
	return name ? name : "";
}

int strata_do_openat(int dirfd, const char *name, int flags, mode_t mode)
{
	int r = RETRY(openat(dirfd, name, flags | O_CLOEXEC, mode));

	strata_dbg("openat(%d, \"%s\", %#x) = %d", dirfd, name, flags, r);
	return r;
}

int strata_do_fstatat(int dirfd, const char *name, struct stat *st,
		      int flags)
{
	int r = RETRY(fstatat(dirfd, name, st, flags));

	strata_dbg("fstatat(%d, \"%s\", %#x) = %d", dirfd, name, flags, r);
	return r;
}

int strata_do_readlinkat(int dirfd, const char *name, char *buf,
			 size_t size)
{
	int r = RETRY(readlinkat(dirfd, name, buf, size));

	strata_dbg("readlinkat(%d, \"%s\") = %d", dirfd, name, r);
	return r;
}

static int proc_path(char *buf, size_t size, int dirfd, const char *name)
{
	int n;

	if (name && *name)
		n = snprintf(buf, size, "/proc/self/fd/%d/%s", dirfd, name);
	else
		n = snprintf(buf, size, "/proc/self/fd/%d", dirfd);
	return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}

ssize_t strata_do_getxattr_at(int dirfd, const char *name,
			      const char *xname, void *buf, size_t size)
{
	char path[64 + NAME_MAX];
	ssize_t r = proc_path(path, sizeof(path), dirfd, name);

	if (r < 0)
		return r;
	/* the directory itself is reached through the magic link, which
	 * getxattr must follow; an entry inside it must not be followed */
	if (name && *name)
		r = RETRY(lgetxattr(path, xname, buf, size));
	else
		r = RETRY(getxattr(path, xname, buf, size));
	strata_dbg("getxattr(%d, \"%s\", \"%s\") = %zd", dirfd, shown(name),
		   xname, r);
	return r;
}

ssize_t strata_do_listxattr_at(int dirfd, const char *name, char *buf,
			       size_t size)
{
	char path[64 + NAME_MAX];
	ssize_t r = proc_path(path, sizeof(path), dirfd, name);

	if (r < 0)
		return r;
	if (name && *name)
		r = RETRY(llistxattr(path, buf, size));
	else
		r = RETRY(listxattr(path, buf, size));
	strata_dbg("listxattr(%d, \"%s\") = %zd", dirfd, shown(name), r);
	return r;
}

int strata_do_fstatvfs(int fd, struct statvfs *sv)
{
	return RETRY(fstatvfs(fd, sv));
}

int strata_do_setxattr_at(int dirfd, const char *name, const char *xname,
			  const void *val, size_t size, int flags)
{
	char path[64 + NAME_MAX];
	int r = proc_path(path, sizeof(path), dirfd, name);

	if (r < 0)
		return r;
	if (name && *name)
		r = RETRY(lsetxattr(path, xname, val, size, flags));
	else
		r = RETRY(setxattr(path, xname, val, size, flags));
	strata_dbg("setxattr(%d, \"%s\", \"%s\") = %d", dirfd, shown(name),
		   xname, r);
	return r;
}

int strata_do_removexattr_at(int dirfd, const char *name, const char *xname)
{
	char path[64 + NAME_MAX];
	int r = proc_path(path, sizeof(path), dirfd, name);

	if (r < 0)
		return r;
	if (name && *name)
		r = RETRY(lremovexattr(path, xname));
	else
		r = RETRY(removexattr(path, xname));
	strata_dbg("removexattr(%d, \"%s\", \"%s\") = %d", dirfd,
		   shown(name), xname, r);
	return r;
}

int strata_do_fchownat(int dirfd, const char *name, uid_t uid, gid_t gid)
{
	int r = RETRY(fchownat(dirfd, name ? name : "", uid, gid,
			       AT_SYMLINK_NOFOLLOW |
				       (name && *name ? 0 : AT_EMPTY_PATH)));

	strata_dbg("fchownat(%d, \"%s\", %u, %u) = %d", dirfd, shown(name),
		   (unsigned)uid, (unsigned)gid, r);
	return r;
}

int strata_do_fchmodat(int dirfd, const char *name, mode_t mode)
{
	char path[64 + NAME_MAX];
	int r;

	/* fchmodat cannot refuse to follow a symlink; through /proc, N is
	 * the directory we hold and NAME is never a symlink here (callers
	 * skip symlinks, whose mode cannot change) */
	r = proc_path(path, sizeof(path), dirfd, name);
	if (r < 0)
		return r;
	r = RETRY(chmod(path, mode));
	strata_dbg("chmod(%d, \"%s\", %o) = %d", dirfd, shown(name), mode, r);
	return r;
}

int strata_do_utimensat(int dirfd, const char *name,
			const struct timespec times[2])
{
	char path[64 + NAME_MAX];
	int r;

	if (name && *name) {
		r = RETRY(utimensat(dirfd, name, times, AT_SYMLINK_NOFOLLOW));
	} else {
		r = proc_path(path, sizeof(path), dirfd, NULL);
		if (r == 0)
			r = RETRY(utimensat(AT_FDCWD, path, times, 0));
	}
	strata_dbg("utimensat(%d, \"%s\") = %d", dirfd, shown(name), r);
	return r;
}

int strata_do_renameat2(int olddir, const char *oldname, int newdir,
			const char *newname, unsigned int flags)
{
	int r = RETRY(renameat2(olddir, oldname, newdir, newname, flags));

	strata_dbg("renameat2(%d, \"%s\", %d, \"%s\", %#x) = %d", olddir,
		   oldname, newdir, newname, flags, r);
	return r;
}

int strata_do_unlinkat(int dirfd, const char *name, int flags)
{
	int r = RETRY(unlinkat(dirfd, name, flags));

	strata_dbg("unlinkat(%d, \"%s\", %#x) = %d", dirfd, name, flags, r);
	return r;
}
