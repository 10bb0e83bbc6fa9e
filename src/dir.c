// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Namespace changes: create, mkdir, mknod, symlink, link, unlink, rmdir,
 * rename.  All happen in the upper layer, with the kernel overlayfs's
 * results:
 *   - a name is created directly in the upper directory, unless a
 *     whiteout holds it there: then the object is built in work and
 *     renamed over the whiteout (a directory made that way is opaque, so
 *     the deleted lower directory does not merge back in);
 *   - removing a name that a lower layer also holds leaves a whiteout;
 *     a lower-only object is never copied up just to be deleted;
 *   - rmdir needs the merged directory to be empty (whiteouts only);
 *   - rename of a directory that has lower content is EXDEV, as on the
 *     kernel without redirect_dir.
 * New objects belong to the caller: created by the daemon, then chown'ed
 * to the caller's ids (the group of a setgid parent, as a local fs does).
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "stratafs/stratafs.h"

/* Copy @dir up and return its stack, whose e[0] is then the upper. */
static int upper_stack(struct strata_fs *fs, struct strata_inode *dir,
		       struct strata_stack **out)
{
	struct strata_stack *s;
	int r;

	if (!fs->has_upper)
		return -EROFS;
	if (!S_ISDIR(dir->type))
		return -ENOTDIR;
	r = strata_copy_up(fs, dir, true);
	if (r < 0)
		return r;
	s = strata_inode_stack(dir);
	if (s->n == 0 || s->e[0].layer != 0) {
		strata_stack_unref(s);
		return -EIO;
	}
	*out = s;
	return 0;
}

/* Does a lower layer hold @name visibly below the upper of @dir? */
static int lower_positive(struct strata_fs *fs, struct strata_inode *dir,
			  const struct strata_stack *s, const char *name)
{
	struct strata_found f;
	uint32_t skip = (s->n > 0 && s->e[0].layer == 0) ? 1 : 0;
	int r;

	if (s->n == skip)
		return 0;
	r = strata_resolve_in(fs, s->e + skip, s->n - skip,
			      strata_dcache_get(fs, dir, s), name, &f);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	strata_stack_unref(f.stack);
	return 1;
}

/* Fails with EEXIST if @name shows in @dir. */
static int must_not_exist(struct strata_fs *fs, struct strata_inode *dir,
			  const char *name)
{
	struct strata_stack *s = strata_inode_stack(dir);
	struct strata_found f;
	int r = strata_resolve(fs, s, strata_dcache_get(fs, dir, s), name, &f);

	strata_stack_unref(s);
	if (r == 0) {
		strata_stack_unref(f.stack);
		return -EEXIST;
	}
	return r == -ENOENT ? 0 : r;
}

static gid_t new_gid(const struct stat *parent, gid_t caller, mode_t *mode)
{
	if (!(parent->st_mode & S_ISGID))
		return caller;
	if (S_ISDIR(*mode))
		*mode |= S_ISGID; /* setgid directories propagate */
	return parent->st_gid;
}

/* Create the object described by @req as (@dir, @name); file fd in *fd. */
static int make_object(struct strata_fs *fs, int dir, const char *name,
		       const struct strata_newobj *req, int *fd)
{
	mode_t type = req->mode & S_IFMT;
	int r;

	switch (type) {
	case S_IFDIR:
		return mkdirat(dir, name, 0700) < 0 ? -errno : 0;
	case S_IFLNK:
		return symlinkat(req->target, dir, name) < 0 ? -errno : 0;
	case S_IFREG:
		if (fd == NULL)
			return mknodat(dir, name, S_IFREG | 0600, 0) < 0
				       ? -errno
				       : 0;
		r = strata_do_openat(dir, name,
				     O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW |
					     (req->flags & (O_APPEND |
							    O_NONBLOCK)),
				     0600);
		if (r < 0)
			return r;
		*fd = r;
		return 0;
	default:
		return mknodat(dir, name, type | 0600, req->rdev) < 0 ? -errno
								      : 0;
	}
}

/* Give the new (@dir, @name) its owner and mode; @fd: open on it, or -1. */
static int finish_object(struct strata_fs *fs, int dir, const char *name,
			 int fd, const struct strata_newobj *req,
			 const struct stat *pst)
{
	mode_t mode = req->mode;
	uid_t uid = req->uid;
	gid_t gid = req->gid;
	int r = strata_store_ids(fs, &uid, &gid);

	if (r < 0) {
		/* a caller outside the mapping: stored as the overflow ids,
		 * as the kernel shows unmapped owners */
		uid = fs->uidmap.overflow;
		gid = fs->gidmap.overflow;
	}
	/* the group of a setgid parent is already on disk */
	gid = (pst->st_mode & S_ISGID) ? pst->st_gid : gid;
	new_gid(pst, gid, &mode);
	if (fs->override_xattr && !S_ISLNK(mode)) {
		/* xattr_permissions: the daemon keeps the file, the xattr
		 * says whose it is (as fuse-overlayfs, real mode 0755) */
		r = strata_do_fchmodat(dir, name, 0755);
		if (r == 0)
			r = strata_write_override(fs, dir, name, uid, gid, mode);
		return r;
	}
	if (fd >= 0) {
		/* through the open file: no path to walk again */
		r = fchown(fd, uid, gid) < 0 ? -errno : 0;
		if (r == -EPERM && !fs->can_chown)
			r = 0; /* a plain user's daemon owns what it makes */
		if (r == 0 && (mode & 07777) != 0600)
			r = fchmod(fd, mode & 07777) < 0 ? -errno : 0;
		return r;
	}
	return strata_set_owner_mode(fs, dir, name, uid, gid, mode);
}

/* Make (@udir, @name) in the upper layer with its owner and mode (and
 * opaque if @opaque); on failure nothing of it is left, and -EEXIST means
 * something was already there (and is left alone). */
static int make_in_upper(struct strata_fs *fs, int udir, const char *name,
			 const struct strata_newobj *req, int *fd,
			 const struct stat *pst, bool opaque)
{
	int r = make_object(fs, udir, name, req, fd);

	if (r < 0)
		return r;
	r = finish_object(fs, udir, name, fd ? *fd : -1, req, pst);
	if (r == 0 && opaque)
		r = strata_set_opaque(fs, udir, name);
	if (r < 0) {
		if (fd && *fd >= 0)
			close(*fd);
		if (fd)
			*fd = -1;
		strata_remove_tree(udir, name);
	}
	return r;
}

/* The directory @in moves to @name of the directory stack @to. */
static int opaque_if_lower(struct strata_fs *fs, struct strata_inode *in,
			   struct strata_inode *todir,
			   const struct strata_stack *to, const char *name)
{
	struct strata_stack *s;
	int r;

	if (!S_ISDIR(in->type))
		return 0;
	r = lower_positive(fs, todir, to, name);
	if (r <= 0)
		return r;
	s = strata_inode_stack(in);
	r = strata_set_opaque(fs, s->e[0].fd, NULL);
	strata_stack_unref(s);
	return r;
}

/* A copied-up object (its st_ino is its origin's) moved or linked to
 * (@udir, @name): mark @udir impure, as the kernel does, so that its
 * readdir shows the same inode number as stat; and record the number on
 * a non-directory, which is found from its name only until it moves
 * (attr.c; directories record theirs at copy-up). */
static void mark_impure(struct strata_fs *fs, int udir, const char *name,
			struct strata_inode *in)
{
	uint64_t ino;
	bool copied;

	g_mutex_lock(&in->lock);
	copied = in->ino != in->ik.key;
	ino = in->ino;
	g_mutex_unlock(&in->lock);
	if (!copied || !fs->xattr_ok)
		return;
	strata_do_setxattr_at(
		udir, NULL,
		strata_marker_xattr(STRATA_MARKER_IMPURE, fs->xattr_ns), "y", 1,
		XATTR_CREATE);
	if (!S_ISDIR(in->type))
		strata_set_origin(fs, udir, name, ino);
}

/* Without RENAME_EXCHANGE: the whiteout (@udir, @name) out, the directory
 * work/@tmp in.  A ".wh.NAME" marker (which hides only the layers below
 * its own) keeps the lower NAME hidden in between, also after a crash. */
static int replace_whiteout_by_dir(struct strata_fs *fs, int udir,
				   const char *name, const char *tmp)
{
	int r = fs->wh_format == STRATA_WH_AUFS ? 0
						 : strata_aufs_marker(udir, name);

	if (r < 0)
		return r;
	r = strata_do_unlinkat(udir, name, 0);
	if (r < 0) {
		/* the whiteout is still there */
		if (fs->wh_format != STRATA_WH_AUFS)
			strata_clear_aufs_whiteout(udir, name);
		return r;
	}
	/* from here on the marker is the whiteout: it stays on failure */
	r = strata_do_renameat2(fs->workfd, tmp, udir, name, 0);
	if (r == 0 && fs->wh_format != STRATA_WH_AUFS)
		strata_clear_aufs_whiteout(udir, name);
	return r;
}

static int do_create(struct strata_fs *fs, struct strata_inode *dir,
		     const char *name, const struct strata_newobj *req,
		     struct strata_inode **out, struct stat *st, int *fd)
{
	struct strata_stack *s = NULL;
	struct stat pst, ust;
	char tmp[48];
	int state, udir, r;

	if (fd)
		*fd = -1;
	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	if (strata_is_aufs_name(name))
		return -EINVAL; /* a marker name cannot be created */
	/* The kernel looked the name up before it asked: EEXIST here is a
	 * race, so the parent is copied up before the check. */
	r = upper_stack(fs, dir, &s);
	if (r < 0)
		return r;
	udir = s->e[0].fd;
	r = strata_do_fstatat(udir, "", &pst, AT_EMPTY_PATH);
	if (r < 0)
		goto out;
	if (s->n == 1) {
		/* nothing below this directory: no lower name to hide, so
		 * only a whiteout left in it needs the careful way, and
		 * O_EXCL (or mkdir) finds anything that is there */
		r = make_in_upper(fs, udir, name, req, fd, &pst, false);
		if (r == 0)
			goto created;
		if (r != -EEXIST)
			goto out;
	}
	state = strata_upper_state(udir, name, &ust);
	if (state < 0) {
		r = state;
		goto out;
	}
	if (state == STRATA_UPPER_ENTRY) {
		r = -EEXIST;
		goto out;
	}
	if (state == STRATA_UPPER_NONE) {
		/* nothing in the upper hides the lower layers */
		r = lower_positive(fs, dir, s, name);
		if (r != 0) {
			r = r > 0 ? -EEXIST : r;
			goto out;
		}
	}

	if (state != STRATA_UPPER_WHITEOUT) {
		/* the common case: straight into the upper directory */
		r = make_in_upper(fs, udir, name, req, fd, &pst,
				  state == STRATA_UPPER_AUFS &&
					  S_ISDIR(req->mode));
		if (r < 0)
			goto out;
		if (state == STRATA_UPPER_AUFS)
			strata_clear_aufs_whiteout(udir, name);
	} else {
		/* over a whiteout: build in work, then swap it in */
		strata_tmpname(fs, tmp, sizeof(tmp));
		r = make_object(fs, fs->workfd, tmp, req, fd);
		if (r == 0)
			r = finish_object(fs, fs->workfd, tmp, fd ? *fd : -1,
					  req, &pst);
		if (r == 0 && S_ISDIR(req->mode))
			r = strata_set_opaque(fs, fs->workfd, tmp);
		if (r == 0 && S_ISDIR(req->mode)) {
			/* a directory cannot be renamed over a file */
			r = strata_do_renameat2(fs->workfd, tmp, udir, name,
						RENAME_EXCHANGE);
			if (r == 0)
				strata_do_unlinkat(fs->workfd, tmp, 0);
			else if (r == -EINVAL && !fs->can_exchange)
				r = replace_whiteout_by_dir(fs, udir, name,
							    tmp);
		} else if (r == 0) {
			r = strata_do_renameat2(fs->workfd, tmp, udir, name,
						0);
		}
		if (r < 0) {
			if (fd && *fd >= 0)
				close(*fd);
			if (fd)
				*fd = -1;
			strata_remove_tree(fs->workfd, tmp);
			goto out;
		}
	}
created:
	r = strata_lookup_created(fs, dir, name, udir, fd ? *fd : -1, out, st);
	if (r < 0 && fd && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
out:
	strata_stack_unref(s);
	return r;
}

static int do_link(struct strata_fs *fs, struct strata_inode *in,
		   struct strata_inode *newdir, const char *newname,
		   struct strata_inode **out, struct stat *st)
{
	g_autofree char *name = NULL;
	struct strata_stack *s = NULL, *src = NULL;
	struct stat ust;
	char tmp[48];
	uint32_t layer;
	int sdir, state, r;

	if (S_ISDIR(in->type))
		return -EPERM;
	if (strlen(newname) > NAME_MAX)
		return -ENAMETOOLONG;
	if (strata_is_aufs_name(newname))
		return -EINVAL;
	r = must_not_exist(fs, newdir, newname);
	if (r < 0)
		return r;
	r = strata_copy_up(fs, in, true);
	if (r < 0)
		return r;
	r = upper_stack(fs, newdir, &s);
	if (r < 0)
		return r;
	r = strata_inode_where(fs, in, &src, &sdir, &name, &layer);
	if (r < 0)
		goto out;
	state = strata_upper_state(s->e[0].fd, newname, &ust);
	if (state < 0) {
		r = state;
		goto out;
	}
	if (state == STRATA_UPPER_WHITEOUT) {
		strata_tmpname(fs, tmp, sizeof(tmp));
		r = linkat(sdir, name, fs->workfd, tmp, 0) < 0 ? -errno : 0;
		if (r == 0) {
			r = strata_do_renameat2(fs->workfd, tmp, s->e[0].fd,
						newname, 0);
			if (r < 0)
				strata_do_unlinkat(fs->workfd, tmp, 0);
		}
	} else {
		r = linkat(sdir, name, s->e[0].fd, newname, 0) < 0 ? -errno
								   : 0;
		if (r == 0 && state == STRATA_UPPER_AUFS)
			strata_clear_aufs_whiteout(s->e[0].fd, newname);
	}
	if (r == 0) {
		mark_impure(fs, s->e[0].fd, newname, in);
		r = strata_lookup(fs, newdir, newname, out, st);
	}
out:
	strata_stack_unref(src);
	strata_stack_unref(s);
	return r;
}

/* The object a removal is about, looked up (a reference is taken). */
static int removal_target(struct strata_fs *fs, struct strata_inode *dir,
			  const char *name, bool want_dir,
			  struct strata_inode **in, struct stat *st)
{
	int r = strata_lookup(fs, dir, name, in, st);

	if (r < 0)
		return r;
	if (want_dir && !S_ISDIR((*in)->type))
		r = -ENOTDIR;
	else if (!want_dir && S_ISDIR((*in)->type))
		r = -EISDIR;
	if (r < 0)
		strata_inode_unref(fs, *in, 1);
	return r;
}

/* 1 if the merged directory @in shows no entry, 0 if it does. */
static int merged_empty(struct strata_fs *fs, struct strata_inode *in)
{
	struct strata_dirsnap *snap = NULL;
	int r = strata_readdir_snapshot(fs, in, &snap);

	if (r < 0)
		return r;
	r = snap->ents->len <= 2; /* "." and ".." */
	strata_dirsnap_free(snap);
	return r;
}

/*
 * The upper directory of @dir has just received an xattr whiteout, so it
 * carries overlay.opaque=x now (whiteout.c).  Its stack was built before
 * and says it holds none: replace it by one that says so, or readdir and
 * rmdir's emptiness check would count the whiteout as an entry.
 */
static void note_xwhiteouts(struct strata_fs *fs, struct strata_inode *dir)
{
	struct strata_stack *old = NULL, *s;

	if (fs->wh_format != STRATA_WH_XATTR)
		return;
	g_mutex_lock(&dir->lock);
	if (dir->stack->n > 0 && dir->stack->e[0].layer == 0 &&
	    !dir->stack->e[0].xwhiteouts) {
		s = strata_stack_new(dir->stack->n);
		for (uint32_t i = 0; i < s->n; i++) {
			s->e[i] = dir->stack->e[i];
			s->e[i].fd = dup(dir->stack->e[i].fd);
		}
		s->e[0].xwhiteouts = true;
		old = dir->stack;
		dir->stack = s;
	}
	g_mutex_unlock(&dir->lock);
	if (old)
		strata_stack_unref(old);
}

/* Remove (@s upper, @name), holding the inode @in, as unlink or rmdir. */
static int remove_name(struct strata_fs *fs, struct strata_inode *dir,
		       const char *name, struct strata_inode *in,
		       const struct stat *st)
{
	struct strata_stack *s = NULL;
	bool upper = strata_inode_is_upper(in);
	int orphan = -1;
	int wh, r;

	r = upper_stack(fs, dir, &s);
	if (r < 0)
		return r;
	if (!S_ISDIR(in->type)) {
		/* an open by name waits until the inode knows its name is
		 * gone (types.h, cu_lock) */
		g_mutex_lock(&in->cu_lock);
		orphan = strata_inode_open_path(fs, in);
	}
	wh = lower_positive(fs, dir, s, name);
	if (wh < 0) {
		r = wh;
		goto out;
	}
	if (S_ISDIR(in->type) && upper) {
		if (wh)
			r = strata_whiteout_dir(fs, s->e[0].fd, name);
		else {
			char tmp[48];

			/* out of sight in one rename, then cleared */
			strata_tmpname(fs, tmp, sizeof(tmp));
			r = strata_do_renameat2(s->e[0].fd, name, fs->workfd,
						tmp, 0);
			if (r == 0)
				strata_remove_tree(fs->workfd, tmp);
		}
	} else if (upper && !wh) {
		r = strata_do_unlinkat(s->e[0].fd, name, 0);
	} else {
		/* lower only (never copied up to be deleted), or an upper
		 * file replaced by a whiteout in one rename (not by
		 * RENAME_WHITEOUT: that allocates an inode per whiteout,
		 * where strata_whiteout_replace links a shared one) */
		r = strata_whiteout_replace(fs, s->e[0].fd, name);
	}
	if (r < 0)
		goto out;
	if (wh)
		note_xwhiteouts(fs, dir);

	if (S_ISDIR(in->type) || st->st_nlink <= 1) {
		/* the last name of the object is gone */
		strata_inode_orphan(fs, in, orphan);
	} else {
		/* a hardlinked one keeps its identity for its other names */
		strata_inode_name_gone(fs, in, dir, name, orphan);
	}
	orphan = -1;
out:
	if (!S_ISDIR(in->type))
		g_mutex_unlock(&in->cu_lock);
	if (orphan >= 0)
		close(orphan);
	strata_stack_unref(s);
	return r;
}

static int do_unlink(struct strata_fs *fs, struct strata_inode *dir,
		     const char *name)
{
	struct strata_inode *in;
	struct stat st;
	int r;

	if (!fs->has_upper)
		return -EROFS;
	r = removal_target(fs, dir, name, false, &in, &st);
	if (r < 0)
		return r;
	r = remove_name(fs, dir, name, in, &st);
	strata_inode_unref(fs, in, 1);
	return r;
}

static int do_rmdir(struct strata_fs *fs, struct strata_inode *dir,
		    const char *name)
{
	struct strata_inode *in;
	struct stat st;
	int r;

	if (!fs->has_upper)
		return -EROFS;
	r = removal_target(fs, dir, name, true, &in, &st);
	if (r < 0)
		return r;
	r = merged_empty(fs, in);
	if (r == 0)
		r = -ENOTEMPTY;
	else if (r > 0)
		r = remove_name(fs, dir, name, in, &st);
	strata_inode_unref(fs, in, 1);
	return r;
}

/* A directory that only the upper layer holds may move. */
static bool movable(struct strata_inode *in)
{
	bool ok;

	if (!S_ISDIR(in->type))
		return true;
	g_mutex_lock(&in->lock);
	ok = in->stack->n == 1 && in->stack->e[0].layer == 0;
	g_mutex_unlock(&in->lock);
	return ok;
}

static int rename_checks(struct strata_fs *fs, struct strata_inode *src,
			 struct strata_inode *dst, unsigned int flags)
{
	if (dst == NULL)
		return (flags & RENAME_EXCHANGE) ? -ENOENT : 0;
	if (flags & RENAME_NOREPLACE)
		return -EEXIST;
	if (flags & RENAME_EXCHANGE)
		return 0;
	if (S_ISDIR(src->type) && !S_ISDIR(dst->type))
		return -ENOTDIR;
	if (!S_ISDIR(src->type) && S_ISDIR(dst->type))
		return -EISDIR;
	return 0;
}

/* The overlay's own checks, in the kernel's order: a directory that
 * cannot move first, then the emptiness of the one it replaces. */
static int rename_fs_checks(struct strata_fs *fs, struct strata_inode *src,
			    struct strata_inode *dst, bool exchange)
{
	int r;

	if (!movable(src) || (exchange && !movable(dst)))
		return -EXDEV;
	if (dst && !exchange && S_ISDIR(dst->type)) {
		r = merged_empty(fs, dst);
		if (r <= 0)
			return r < 0 ? r : -ENOTEMPTY;
	}
	return 0;
}

/* Empty the upper part of the logically empty directory @in (only
 * whiteouts and markers are left there) so a rename may replace it. */
static int clear_upper_dir(struct strata_fs *fs, struct strata_inode *in)
{
	struct strata_stack *s = strata_inode_stack(in);
	char tmp[48];
	int r = 0;

	if (s->e[0].layer == 0) {
		int fd = strata_do_openat(s->e[0].fd, ".",
					  O_RDONLY | O_DIRECTORY, 0);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *de;

		if (d == NULL) {
			if (fd >= 0)
				close(fd);
			strata_stack_unref(s);
			return -EIO;
		}
		while ((de = readdir(d)) != NULL && r == 0) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			strata_tmpname(fs, tmp, sizeof(tmp));
			r = strata_do_renameat2(s->e[0].fd, de->d_name,
						fs->workfd, tmp, 0);
			if (r == 0)
				strata_remove_tree(fs->workfd, tmp);
		}
		closedir(d);
	}
	strata_stack_unref(s);
	return r;
}

/* Hold the cu_lock of the non-directories among @a and @b (in address
 * order) while their names change (types.h, cu_lock). */
static void lock_names(struct strata_inode *a, struct strata_inode *b,
		       bool lock)
{
	struct strata_inode *v[2] = { a, b };

	if (v[0] && v[1] && v[0] > v[1]) {
		v[0] = b;
		v[1] = a;
	}
	for (int i = 0; i < 2; i++) {
		struct strata_inode *in = v[lock ? i : 1 - i];

		if (!in || S_ISDIR(in->type) || (i == 1 && v[0] == v[1]))
			continue;
		if (lock)
			g_mutex_lock(&in->cu_lock);
		else
			g_mutex_unlock(&in->cu_lock);
	}
}

static int do_rename(struct strata_fs *fs, struct strata_inode *olddir,
		     const char *oldname, struct strata_inode *newdir,
		     const char *newname, unsigned int flags)
{
	struct strata_inode *src = NULL, *dst = NULL;
	struct strata_stack *os = NULL, *ns = NULL;
	struct stat sst, dst_st, ust;
	bool exchange = flags & RENAME_EXCHANGE;
	int src_wh, dst_lower, state, r, dst_orphan = -1;
	bool locked = false;

	if (!fs->has_upper)
		return -EROFS;
	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if ((flags & RENAME_NOREPLACE) && exchange)
		return -EINVAL;
	if (strlen(newname) > NAME_MAX)
		return -ENAMETOOLONG;
	if (strata_is_aufs_name(newname))
		return -EINVAL;
	r = strata_lookup(fs, olddir, oldname, &src, &sst);
	if (r < 0)
		return r;
	r = strata_lookup(fs, newdir, newname, &dst, &dst_st);
	if (r == -ENOENT) {
		dst = NULL;
		r = 0;
	}
	if (r < 0)
		goto out;
	r = rename_checks(fs, src, dst, flags);
	if (r < 0)
		goto out;
	if (src == dst && !exchange)
		goto out; /* two names of one file: nothing to do */
	r = rename_fs_checks(fs, src, dst, exchange);
	if (r < 0)
		goto out;
	r = strata_copy_up(fs, src, true);
	if (r == 0 && exchange)
		r = strata_copy_up(fs, dst, true);
	if (r == 0)
		r = upper_stack(fs, olddir, &os);
	if (r == 0)
		r = upper_stack(fs, newdir, &ns);
	if (r < 0)
		goto out;
	lock_names(src, dst, true);
	locked = true;

	if (exchange) {
		/* each directory lands where the other was: opaque if a lower
		 * layer holds that name, so that it does not merge there */
		r = opaque_if_lower(fs, src, newdir, ns, newname);
		if (r == 0)
			r = opaque_if_lower(fs, dst, olddir, os, oldname);
		if (r < 0)
			goto out;
		r = strata_do_renameat2(os->e[0].fd, oldname, ns->e[0].fd,
					newname, RENAME_EXCHANGE);
		if (r == 0) {
			mark_impure(fs, ns->e[0].fd, newname, src);
			mark_impure(fs, os->e[0].fd, oldname, dst);
			strata_inode_name_moved(fs, src, olddir, oldname,
						newdir, newname);
			strata_inode_name_moved(fs, dst, newdir, newname,
						olddir, oldname);
		}
		goto out;
	}

	src_wh = lower_positive(fs, olddir, os, oldname);
	dst_lower = lower_positive(fs, newdir, ns, newname);
	if (src_wh < 0 || dst_lower < 0) {
		r = src_wh < 0 ? src_wh : dst_lower;
		goto out;
	}
	if (dst && S_ISDIR(dst->type)) {
		r = clear_upper_dir(fs, dst);
		if (r < 0)
			goto out;
	}
	if (dst && !S_ISDIR(dst->type))
		dst_orphan = strata_inode_open_path(fs, dst);
	state = strata_upper_state(ns->e[0].fd, newname, &ust);
	if (state < 0) {
		r = state;
		goto out;
	}
	/* a directory moved where a lower one was must not merge with it;
	 * like the kernel, one moved into a merged directory is marked
	 * opaque too, so that a lower directory of that name added later
	 * does not merge into it either */
	if (S_ISDIR(src->type) &&
	    (dst_lower || state == STRATA_UPPER_WHITEOUT ||
	     state == STRATA_UPPER_AUFS || ns->n > 1)) {
		struct strata_stack *ss = strata_inode_stack(src);

		r = strata_set_opaque(fs, ss->e[0].fd, NULL);
		strata_stack_unref(ss);
		if (r < 0)
			goto out;
	}

	if (state == STRATA_UPPER_WHITEOUT && S_ISDIR(src->type) &&
	    fs->can_exchange) {
		/* swap with the whiteout, which then sits at the old
		 * name: kept if the old name needs one, else removed */
		r = strata_do_renameat2(os->e[0].fd, oldname, ns->e[0].fd,
					newname, RENAME_EXCHANGE);
		if (r == 0 && !src_wh)
			r = strata_do_unlinkat(os->e[0].fd, oldname, 0);
	} else if (src_wh && !fs->can_rename_whiteout && fs->can_exchange &&
		   fs->wh_format != STRATA_WH_AUFS && !S_ISDIR(src->type) &&
		   dst == NULL && (state == STRATA_UPPER_NONE ||
				   state == STRATA_UPPER_WHITEOUT)) {
		/* no RENAME_WHITEOUT: a rename and then a whiteout would
		 * show the lower object at the old name in between (after
		 * a crash, for good: its stale data, with the st_ino of the
		 * copy).  Put a whiteout at the new name first, where it
		 * hides nothing, then swap it with the object in one step:
		 * the kernel's format at every moment. */
		r = strata_whiteout_dir_prepare(fs, os->e[0].fd);
		if (r == 0 && state == STRATA_UPPER_NONE)
			r = strata_whiteout_replace(fs, ns->e[0].fd, newname);
		if (r == 0)
			r = strata_do_renameat2(os->e[0].fd, oldname,
						ns->e[0].fd, newname,
						RENAME_EXCHANGE);
	} else {
		unsigned int rf = 0;

		if (state == STRATA_UPPER_WHITEOUT && S_ISDIR(src->type)) {
			r = strata_do_unlinkat(ns->e[0].fd, newname, 0);
			if (r < 0)
				goto out;
		}
		bool marker;

		if (src_wh && fs->can_rename_whiteout)
			rf = RENAME_WHITEOUT;
		/* An AUFS marker hides only the layers below its own: made
		 * first, beside the object, it takes effect with the rename,
		 * in one step.  In the AUFS format it is the whiteout; in
		 * the others it stands in until the whiteout proper is in
		 * (a crash in between must not show the lower object). */
		marker = src_wh && !rf;
		r = marker ? strata_aufs_marker(os->e[0].fd, oldname) : 0;
		if (r == 0)
			r = strata_do_renameat2(os->e[0].fd, oldname,
						ns->e[0].fd, newname, rf);
		if (r < 0 && marker)
			strata_clear_aufs_whiteout(os->e[0].fd, oldname);
		if (r == 0 && marker && fs->wh_format != STRATA_WH_AUFS) {
			r = strata_whiteout_replace(fs, os->e[0].fd, oldname);
			if (r == 0)
				strata_clear_aufs_whiteout(os->e[0].fd,
							   oldname);
		}
	}
	if (r < 0)
		goto out;
	if (src_wh)
		note_xwhiteouts(fs, olddir);
	if (state == STRATA_UPPER_AUFS)
		strata_clear_aufs_whiteout(ns->e[0].fd, newname);
	mark_impure(fs, ns->e[0].fd, newname, src);
	if (dst && (S_ISDIR(dst->type) || dst_st.st_nlink <= 1))
		strata_inode_orphan(fs, dst, dst_orphan);
	else if (dst)
		strata_inode_name_gone(fs, dst, newdir, newname, dst_orphan);
	dst_orphan = -1;
	strata_inode_name_moved(fs, src, olddir, oldname, newdir, newname);
out:
	if (locked)
		lock_names(src, dst, false);
	if (dst_orphan >= 0)
		close(dst_orphan);
	strata_stack_unref(os);
	strata_stack_unref(ns);
	if (dst)
		strata_inode_unref(fs, dst, 1);
	strata_inode_unref(fs, src, 1);
	return r;
}

/*
 * The entry points: each leaves the directories whose names it may have
 * changed with a new version (readdir.c), also on failure (a failure part
 * way may have changed something).
 */
int strata_create(struct strata_fs *fs, struct strata_inode *dir,
		  const char *name, const struct strata_newobj *req,
		  struct strata_inode **out, struct stat *st, int *fd)
{
	int r = do_create(fs, dir, name, req, out, st, fd);

	strata_dir_changed(dir);
	return r;
}

int strata_link(struct strata_fs *fs, struct strata_inode *in,
		struct strata_inode *newdir, const char *newname,
		struct strata_inode **out, struct stat *st)
{
	int r = do_link(fs, in, newdir, newname, out, st);

	strata_dir_changed(newdir);
	return r;
}

int strata_unlink(struct strata_fs *fs, struct strata_inode *dir,
		  const char *name)
{
	int r = do_unlink(fs, dir, name);

	strata_dir_changed(dir);
	return r;
}

int strata_rmdir(struct strata_fs *fs, struct strata_inode *dir,
		 const char *name)
{
	int r = do_rmdir(fs, dir, name);

	strata_dir_changed(dir);
	return r;
}

int strata_rename(struct strata_fs *fs, struct strata_inode *olddir,
		  const char *oldname, struct strata_inode *newdir,
		  const char *newname, unsigned int flags)
{
	int r = do_rename(fs, olddir, oldname, newdir, newname, flags);

	strata_dir_changed(olddir);
	strata_dir_changed(newdir);
	return r;
}
