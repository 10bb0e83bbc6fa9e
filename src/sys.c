// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * System call wrappers.  Each returns a non-negative result or -errno,
 * captured right after the call, retries EINTR, and traces
 * "op(args) = result" when debugging.  Every path inside a layer is one
 * component relative to a directory fd and never follows a symlink: a
 * hostile layer cannot make the daemon touch anything outside it.
 *
 * xattr calls take (dirfd, NAME) with the *xattrat calls of Linux 6.13,
 * AT_SYMLINK_NOFOLLOW for NAME and "." for the directory itself.  Before
 * 6.13 (ENOSYS, then never tried again), under a seccomp filter that
 * refuses them, or for a descriptor that is no directory, they go through
 * /proc/self/fd/N/NAME: N is resolved by the kernel to the very object we
 * hold, and the l*xattr family does not follow NAME if it is a symlink.
 * The /proc path costs about 3 us more per call (a walk through procfs).
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>

#include "stratafs/stratafs.h"

/* the same numbers on every architecture (Linux 6.13) */
#ifndef __NR_setxattrat
#define __NR_setxattrat 463
#define __NR_getxattrat 464
#define __NR_listxattrat 465
#define __NR_removexattrat 466
#endif

struct xattrat_args {
	uint64_t value;
	uint32_t size;
	uint32_t flags;
};

/* cleared at the first ENOSYS */
static int xattrat_ok = 1;

static bool use_xattrat(void)
{
	return __atomic_load_n(&xattrat_ok, __ATOMIC_RELAXED);
}

/* Did the *xattrat call answer (its result, or -errno, in *out), or must
 * the /proc path: not implemented, no directory (the object itself is
 * no directory), refused by a filter? */
static bool at_answered(long r, long *out)
{
	int e = errno;

	if (r >= 0) {
		*out = r;
		return true;
	}
	if (e == ENOSYS) {
		__atomic_store_n(&xattrat_ok, 0, __ATOMIC_RELAXED);
		return false;
	}
	if (e == ENOTDIR || e == EPERM || e == EINVAL || e == EBADF)
		return false;
	*out = -e;
	return true;
}

static const char *at_name(const char *name)
{
	return name && *name ? name : ".";
}

static unsigned int at_flags(const char *name)
{
	return name && *name ? AT_SYMLINK_NOFOLLOW : 0;
}

/* getxattrat or setxattrat (@nr) of @xname on (@dirfd, @name), with the
 * value @val of @size bytes: true with the result (or -errno) in *@out,
 * false when the /proc path must answer. */
static bool xattrat_value(long nr, int dirfd, const char *name,
			  const char *xname, const void *val, size_t size,
			  int flags, long *out)
{
	struct xattrat_args a = { (uintptr_t)val, (uint32_t)size,
				  (uint32_t)flags };
	long r;

	if (!use_xattrat())
		return false;
	do
		r = syscall(nr, dirfd, at_name(name), at_flags(name), xname, &a,
			    sizeof(a));
	while (r < 0 && errno == EINTR);
	return at_answered(r, out);
}

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
	long r;

	if (xattrat_value(__NR_getxattrat, dirfd, name, xname, buf, size, 0,
			  &r))
		goto out;
	r = proc_path(path, sizeof(path), dirfd, name);
	if (r < 0)
		return r;
	/* the directory itself is reached through the magic link, which
	 * getxattr must follow; an entry inside it must not be followed */
	if (name && *name)
		r = RETRY(lgetxattr(path, xname, buf, size));
	else
		r = RETRY(getxattr(path, xname, buf, size));
out:
	strata_dbg("getxattr(%d, \"%s\", \"%s\") = %ld", dirfd, shown(name),
		   xname, r);
	return r;
}

ssize_t strata_do_listxattr_at(int dirfd, const char *name, char *buf,
			       size_t size)
{
	char path[64 + NAME_MAX];
	long r;

	if (use_xattrat()) {
		do
			r = syscall(__NR_listxattrat, dirfd, at_name(name),
				    at_flags(name), buf, size);
		while (r < 0 && errno == EINTR);
		if (at_answered(r, &r))
			goto out;
	}
	r = proc_path(path, sizeof(path), dirfd, name);
	if (r < 0)
		return r;
	if (name && *name)
		r = RETRY(llistxattr(path, buf, size));
	else
		r = RETRY(listxattr(path, buf, size));
out:
	strata_dbg("listxattr(%d, \"%s\") = %ld", dirfd, shown(name), r);
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
	long r;

	if (xattrat_value(__NR_setxattrat, dirfd, name, xname, val, size,
			  flags, &r))
		goto out;
	r = proc_path(path, sizeof(path), dirfd, name);
	if (r < 0)
		return r;
	if (name && *name)
		r = RETRY(lsetxattr(path, xname, val, size, flags));
	else
		r = RETRY(setxattr(path, xname, val, size, flags));
out:
	strata_dbg("setxattr(%d, \"%s\", \"%s\") = %ld", dirfd, shown(name),
		   xname, r);
	return (int)r;
}

int strata_do_removexattr_at(int dirfd, const char *name, const char *xname)
{
	char path[64 + NAME_MAX];
	long r;

	if (use_xattrat()) {
		do
			r = syscall(__NR_removexattrat, dirfd, at_name(name),
				    at_flags(name), xname);
		while (r < 0 && errno == EINTR);
		if (at_answered(r, &r))
			goto out;
	}
	r = proc_path(path, sizeof(path), dirfd, name);
	if (r < 0)
		return r;
	if (name && *name)
		r = RETRY(lremovexattr(path, xname));
	else
		r = RETRY(removexattr(path, xname));
out:
	strata_dbg("removexattr(%d, \"%s\", \"%s\") = %ld", dirfd,
		   shown(name), xname, r);
	return (int)r;
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
