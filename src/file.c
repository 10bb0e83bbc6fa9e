// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Files: opening the real object, symlink targets, statfs and access.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/statvfs.h>

#include "stratafs/stratafs.h"

int strata_open_real(struct strata_fs *fs, struct strata_inode *in,
		     int flags)
{
	g_autofree char *name = NULL;
	struct strata_stack *s;
	uint32_t layer;
	int dirfd, r;

	/* the caller's access mode and a few harmless flags; never follow
	 * a symlink in a layer, never become a controlling terminal */
	flags &= O_ACCMODE | O_NONBLOCK | O_DIRECT | O_DIRECTORY | O_NOATIME;
	flags |= O_NOFOLLOW | O_NOCTTY;
	if (S_ISDIR(in->type)) {
		s = strata_inode_stack(in);
		r = strata_do_openat(s->e[0].fd, ".", flags, 0);
		strata_stack_unref(s);
		return r;
	}
	r = strata_inode_where(fs, in, &s, &dirfd, &name, &layer);
	if (r < 0)
		return r;
	r = strata_do_openat(dirfd, name, flags, 0);
	if (r == -EPERM && (flags & O_NOATIME))
		r = strata_do_openat(dirfd, name, flags & ~O_NOATIME, 0);
	strata_stack_unref(s);
	return r;
}

int strata_readlink(struct strata_fs *fs, struct strata_inode *in,
		    char *buf, size_t size)
{
	g_autofree char *name = NULL;
	struct strata_stack *s;
	uint32_t layer;
	int dirfd, r;

	if (!S_ISLNK(in->type))
		return -EINVAL;
	r = strata_inode_where(fs, in, &s, &dirfd, &name, &layer);
	if (r < 0)
		return r;
	r = strata_do_readlinkat(dirfd, name, buf, size);
	strata_stack_unref(s);
	return r;
}

int strata_statfs(struct strata_fs *fs, struct statvfs *sv)
{
	/* the top layer's filesystem: where writes would go */
	int r = strata_do_fstatvfs(fs->layers[0].fd, sv);

	if (r == 0)
		sv->f_namemax = NAME_MAX;
	return r;
}

static bool in_groups(gid_t gid, gid_t pgid, const gid_t *groups,
		      int ngroups)
{
	if (gid == pgid)
		return true;
	for (int i = 0; i < ngroups; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

int strata_access(struct strata_fs *fs, struct strata_inode *in, int mask,
		  uid_t uid, gid_t gid, const gid_t *groups, int ngroups)
{
	struct stat st;
	mode_t bits;
	int r = strata_getattr(fs, in, &st);

	if (r < 0)
		return r;
	if (mask == F_OK)
		return 0;
	if ((mask & W_OK) && !fs->has_upper)
		return -EROFS;
	if (uid == 0) {
		/* root may read and write anything, and execute what
		 * anyone may execute */
		if ((mask & X_OK) && !S_ISDIR(st.st_mode) &&
		    !(st.st_mode & 0111))
			return -EACCES;
		return 0;
	}
	if (st.st_uid == uid)
		bits = (st.st_mode >> 6) & 7;
	else if (in_groups(st.st_gid, gid, groups, ngroups))
		bits = (st.st_mode >> 3) & 7;
	else
		bits = st.st_mode & 7;
	return (mask & ~bits & 7) ? -EACCES : 0;
}
