// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Copy-up: the first change to an object of a lower layer makes a copy of
 * it in the upper layer, which from then on is the object.
 *
 * Order and atomicity:
 *   1. the parent directories first, each by this same function (so no
 *      inode lock is ever held while another is taken);
 *   2. the copy is built in workdir/work under a temporary name: data
 *      first (FICLONE, then copy_file_range over the data extents, then a
 *      read/write loop; holes stay holes), then owner, then mode (chown
 *      clears setuid), then xattrs (writing data or chown would drop
 *      security.capability), then the st_ino it keeps, then times;
 *   3. it is published with one rename into the upper parent.
 * With fsync=1 a regular file's data is fsync'd before the rename (as the
 * kernel overlayfs does unless volatile), and the user's first fsync of
 * the object syncs the upper parents its copy-up renamed into (file.c).
 * A crash at any point leaves either no copy (the lower object shows) or
 * the complete copy; the work directory is emptied at the next mount.
 * The upper parent's times are put back after the rename, as the kernel
 * overlayfs does, so that a copy-up is invisible in the parent's mtime.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "stratafs/stratafs.h"

void strata_tmpname(struct strata_fs *fs, char *buf, size_t size)
{
	uint64_t n = __atomic_add_fetch(&fs->tmp_counter, 1, __ATOMIC_RELAXED);

	snprintf(buf, size, "#%x.%" PRIx64, (unsigned)getpid(), n);
}

bool strata_inode_is_upper(struct strata_inode *in)
{
	bool up;

	g_mutex_lock(&in->lock);
	if (S_ISDIR(in->type))
		up = in->stack->n > 0 && in->stack->e[0].layer == 0;
	else
		up = in->layer == 0;
	g_mutex_unlock(&in->lock);
	return up;
}

/* Copy [off, off+len) of @src to @dst, cheapest way first. */
static int copy_range(int src, int dst, off_t off, off_t len, bool *cfr)
{
	g_autofree char *buf = NULL;

	while (len > 0 && *cfr) {
		loff_t in = off, out = off;
		ssize_t n = copy_file_range(src, &in, dst, &out, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EXDEV || errno == EINVAL ||
			      errno == EOPNOTSUPP || errno == ENOSYS)) {
			*cfr = false; /* not between these files */
			break;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the source shrank under us */
		off += n;
		len -= n;
	}
	if (len > 0)
		buf = g_malloc(1 << 20);
	while (len > 0) {
		ssize_t n = pread(src, buf, MIN(len, 1 << 20), off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		for (ssize_t done = 0; done < n;) {
			ssize_t w = pwrite(dst, buf + done, n - done,
					   off + done);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -errno;
			done += w;
		}
		off += n;
		len -= n;
	}
	return 0;
}

int strata_copy_data(int src, int dst, off_t size)
{
	bool cfr = true;
	off_t off = 0;
	int r;

	if (size == 0)
		return 0;
	if (ioctl(dst, FICLONE, src) == 0)
		return 0;
	while (off < size) {
		off_t data = lseek(src, off, SEEK_DATA);
		off_t hole;

		if (data < 0 && errno == ENXIO)
			break; /* only a hole is left */
		if (data < 0) {
			data = off; /* no SEEK_DATA: copy it all */
			hole = size;
		} else {
			hole = lseek(src, data, SEEK_HOLE);
			if (hole < 0 || hole > size)
				hole = size;
		}
		if (data >= size)
			break;
		r = copy_range(src, dst, data, hole - data, &cfr);
		if (r < 0)
			return r;
		off = hole;
	}
	/* the size, with a trailing hole if there is one */
	return ftruncate(dst, size) < 0 ? -errno : 0;
}

/* Copy the user-visible xattrs of (sdir, sname) to (ddir, dname). */
int strata_copy_xattrs(struct strata_fs *fs, int sdir, const char *sname,
		       int ddir, const char *dname)
{
	g_autofree char *list = NULL;
	g_autofree char *val = NULL;
	size_t valsize = 0;
	ssize_t len;

	len = strata_do_listxattr_at(sdir, sname, NULL, 0);
	if (len == -ENOTSUP || len == 0)
		return 0;
	if (len < 0)
		return (int)len;
	list = g_malloc(len);
	len = strata_do_listxattr_at(sdir, sname, list, len);
	if (len < 0)
		return (int)len;
	for (char *p = list; p < list + len; p += strlen(p) + 1) {
		ssize_t n;
		int r;

		/* markers belong to their layer; escaped names are data */
		if (strata_is_marker_xattr(p))
			continue;
		n = strata_do_getxattr_at(sdir, sname, p, NULL, 0);
		if (n == -ENODATA)
			continue;
		if (n < 0)
			return (int)n;
		if ((size_t)n + 1 > valsize) {
			valsize = n + 1;
			g_free(val);
			val = g_malloc(valsize);
		}
		n = strata_do_getxattr_at(sdir, sname, p, val, n);
		if (n < 0)
			return (int)n;
		r = strata_do_setxattr_at(ddir, dname, p, val, n, 0);
		if (r == -EOPNOTSUPP || r == -EPERM) {
			/* a namespace the upper does not take (security.*
			 * labels, user.* on symlinks, trusted.* rootless):
			 * the copy goes on without it, as on the kernel */
			strata_dbg("copy-up: xattr %s not copied: %s", p,
				   g_strerror(-r));
			continue;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int strata_set_origin(struct strata_fs *fs, int dir, const char *name,
		      uint64_t ino)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64, ino);

	if (!fs->xattr_ok)
		return 0; /* st_ino then changes at the next mount */
	return strata_do_setxattr_at(
		dir, name, strata_marker_xattr(STRATA_MARKER_ORIGIN, fs->xattr_ns),
		buf, n, 0);
}

int strata_origin_fb(struct strata_fs *fs, uint32_t layer, int sdir,
		     const char *sname, unsigned char *fb)
{
	/* the kernel's struct ovl_fb: version, magic, length, flags,
	 * handle type, filesystem UUID, then the handle itself */
	struct {
		struct file_handle h;
		unsigned char bytes[MAX_HANDLE_SZ];
	} fh;
	int mnt;

	if (!fs->layers[layer].has_uuid)
		return 0;
	fh.h.handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(sdir, sname ? sname : "", &fh.h, &mnt,
			      sname ? 0 : AT_EMPTY_PATH) < 0 ||
	    fh.h.handle_bytes > 255 - 21)
		return 0; /* no file handles here: the kernel copes */
	fb[0] = 0;    /* version */
	fb[1] = 0xfb; /* magic */
	fb[2] = 21 + fh.h.handle_bytes;
	fb[3] = G_BYTE_ORDER == G_BIG_ENDIAN ? 1 : 0;
	fb[4] = (unsigned char)fh.h.handle_type;
	memcpy(fb + 5, fs->layers[layer].uuid, 16);
	memcpy(fb + 21, fh.h.f_handle, fh.h.handle_bytes);
	return fb[2];
}

int strata_set_kernel_origin(struct strata_fs *fs, int dir, const char *name,
			     uint32_t layer, int sdir, const char *sname)
{
	unsigned char fb[STRATA_ORIGIN_FB_MAX];
	int n, r;

	if (!fs->xattr_ok)
		return 0;
	n = strata_origin_fb(fs, layer, sdir, sname, fb);
	if (n == 0)
		return 0;
	r = strata_do_setxattr_at(
		dir, name, strata_marker_xattr(STRATA_MARKER_KORIGIN, fs->xattr_ns),
		fb, n, 0);
	return r < 0 ? r : 1;
}

/* Owner, mode, times of the new object @name in @dir (not its xattrs). */
int strata_set_owner_mode(struct strata_fs *fs, int dir, const char *name,
			  uid_t uid, gid_t gid, mode_t mode)
{
	int r = strata_do_fchownat(dir, name, uid, gid);

	if (r == -EPERM && !fs->can_chown)
		r = 0; /* a plain user's daemon owns what it creates */
	if (r < 0)
		return r;
	if (S_ISLNK(mode))
		return 0;
	return strata_do_fchmodat(dir, name, mode & 07777);
}

/* xattr_permissions: a copy the daemon could not chown still shows the
 * source's owner and mode, recorded in the override xattr. */
static int keep_owner_in_xattr(struct strata_fs *fs, int sdir,
			       const char *sname, const struct stat *st,
			       int wfd, const char *tmp)
{
	ssize_t n = strata_do_getxattr_at(sdir, sname, fs->override_xattr,
					  NULL, 0);

	if (n >= 0)
		return 0; /* copied with the other xattrs */
	return strata_write_override(fs, wfd, tmp, st->st_uid, st->st_gid,
				     st->st_mode);
}

/* Whether a copy carries our own record of its st_ino.  The kernel keeps
 * the origin's number, except for a lower file with several names
 * (without index=on the copy no longer shares the inode with them): that
 * copy shows its own number, and records none.  A directory always
 * records it.  Another file records it only when no kernel origin was
 * written: with one, its number is found again from the origin and its
 * name (attr.c) until a rename or link moves it (dir.c records it then).
 * A second xattr beside the origin would not fit in a 256-byte ext4
 * inode and cost every copy a 4 KiB xattr block and its write. */
static bool records_own_number(const struct stat *st, bool origin_written)
{
	if (S_ISDIR(st->st_mode))
		return true;
	return st->st_nlink <= 1 && !origin_written;
}

/* Build the copy of (sdir, name), of real stat @st, as @tmp in work. */
static int build_copy(struct strata_fs *fs, struct strata_inode *in, int sdir,
		      const char *name, const struct stat *st,
		      const char *tmp, bool data)
{
	int wfd = fs->workfd;
	struct timespec times[2] = { st->st_atim, st->st_mtim };
	int r;

	switch (st->st_mode & S_IFMT) {
	case S_IFDIR:
		r = mkdirat(wfd, tmp, 0700) < 0 ? -errno : 0;
		break;
	case S_IFREG: {
		strata_autofd src = -1;
		strata_autofd dst = strata_do_openat(
			wfd, tmp, O_CREAT | O_EXCL | O_WRONLY, 0600);

		if (dst < 0)
			return dst;
		r = 0;
		if (data && st->st_size > 0) {
			src = strata_do_openat(sdir, name,
					       O_RDONLY | O_NOFOLLOW, 0);
			r = src < 0 ? src : strata_copy_data(src, dst,
							     st->st_size);
			/* as the kernel does unless volatile: the data is on
			 * disk before the rename publishes the copy, or a
			 * crash could leave a published file without it */
			if (r == 0 && fs->fsync && fsync(dst) < 0)
				r = -errno;
		}
		break;
	}
	case S_IFLNK: {
		char target[PATH_MAX + 1];
		int n = strata_do_readlinkat(sdir, name, target,
					     sizeof(target) - 1);

		if (n < 0)
			return n;
		target[n] = '\0';
		r = symlinkat(target, wfd, tmp) < 0 ? -errno : 0;
		break;
	}
	default:
		r = mknodat(wfd, tmp, (st->st_mode & S_IFMT) | 0600,
			    st->st_rdev) < 0 ? -errno : 0;
		break;
	}
	if (r < 0)
		return r;
	r = strata_set_owner_mode(fs, wfd, tmp, st->st_uid, st->st_gid,
				  st->st_mode);
	if (r == 0)
		r = strata_copy_xattrs(fs, sdir, S_ISDIR(st->st_mode) ? NULL
								      : name,
				       wfd, tmp);
	if (r == 0 && fs->override_xattr && !S_ISLNK(st->st_mode))
		r = keep_owner_in_xattr(fs, sdir, S_ISDIR(st->st_mode) ? NULL
								       : name,
					st, wfd, tmp);
	if (r == 0)
		r = strata_set_kernel_origin(fs, wfd, tmp, in->layer, sdir,
					     S_ISDIR(st->st_mode) ? NULL
								  : name);
	if (r >= 0 && records_own_number(st, r == 1))
		r = strata_set_origin(fs, wfd, tmp, in->ino);
	if (r > 0)
		r = 0;
	if (r == 0)
		r = strata_do_utimensat(wfd, tmp, times);
	return r;
}

/* Where the object's real entry is: (dirfd, name) or the dir itself. */
static int source_of(struct strata_fs *fs, struct strata_inode *in,
		     struct strata_stack **pin, int *sdir, char **name,
		     uint32_t *layer)
{
	if (S_ISDIR(in->type)) {
		/* a directory's own fd is enough for everything but the
		 * name, which its parent gives */
		struct strata_stack *mine = strata_inode_stack(in);

		g_mutex_lock(&in->lock);
		*name = g_strdup(in->name);
		g_mutex_unlock(&in->lock);
		*sdir = mine->e[0].fd;
		*layer = mine->e[0].layer;
		*pin = mine;
		return 0;
	}
	return strata_inode_where(fs, in, pin, sdir, name, layer);
}

/* Publish work/@tmp as @name in the upper directory @udir. */
static int publish(struct strata_fs *fs, const char *tmp, int udir,
		   const char *name)
{
	struct stat pst;
	bool restore = strata_do_fstatat(udir, "", &pst, AT_EMPTY_PATH) == 0;
	int r;

	/* like the kernel: the parent holds copied-up entries, whose
	 * st_ino its readdir must look up */
	if (fs->xattr_ok)
		strata_do_setxattr_at(
			udir, NULL,
			strata_marker_xattr(STRATA_MARKER_IMPURE, fs->xattr_ns),
			"y", 1, XATTR_CREATE);
	r = strata_do_renameat2(fs->workfd, tmp, udir, name, RENAME_NOREPLACE);

	if (r == -EINVAL)
		r = strata_do_renameat2(fs->workfd, tmp, udir, name, 0);
	if (r == 0 && restore) {
		struct timespec t[2] = { pst.st_atim, pst.st_mtim };

		strata_do_utimensat(udir, NULL, t);
	}
	return r;
}

/* What the kernel cached of @in is stale after a copy-up: a directory now
 * merged shows nlink 1, a split hardlink its own st_ino and nlink. */
static void copied_up(struct strata_fs *fs, struct strata_inode *in)
{
	if (fs->notify.inval_inode)
		fs->notify.inval_inode(fs->notify.ctx, in);
}

/* After strata_inode_now_upper of a split lower hardlink. */
static void take_own_ino(struct strata_fs *fs, struct strata_inode *in)
{
	g_mutex_lock(&in->lock);
	in->ino = in->ik.key;
	g_mutex_unlock(&in->lock);
}

/* 0 if (@udir, @name) holds an object of @in's type, which @in becomes;
 * -ENOENT if nothing (or a whiteout) is there. */
static int adopt_existing(struct strata_fs *fs, struct strata_inode *in,
			  int udir, const char *name)
{
	struct stat ust;
	int state = strata_upper_state(udir, name, &ust);

	if (state < 0)
		return state;
	if (state != STRATA_UPPER_ENTRY)
		return -ENOENT;
	if ((ust.st_mode & S_IFMT) != in->type)
		return -EEXIST;
	return strata_inode_now_upper(fs, in, udir, name);
}

static int copy_up_locked(struct strata_fs *fs, struct strata_inode *in,
			  struct strata_inode *parent, bool data)
{
	g_autofree char *name = NULL;
	struct strata_stack *src = NULL, *pstack = NULL;
	char tmp[48];
	struct stat st;
	uint32_t layer;
	int sdir, r;

	r = source_of(fs, in, &src, &sdir, &name, &layer);
	if (r < 0)
		return r;
	if (S_ISDIR(in->type))
		r = strata_do_fstatat(sdir, "", &st, AT_EMPTY_PATH);
	else
		r = strata_do_fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		goto out;

	pstack = strata_inode_stack(parent);
	if (pstack->e[0].layer != 0) {
		r = -EIO; /* the parent was copied up just before */
		goto out;
	}
	strata_tmpname(fs, tmp, sizeof(tmp));
	r = build_copy(fs, in, sdir, name, &st, tmp, data);
	if (r < 0) {
		strata_remove_tree(fs->workfd, tmp);
		goto out;
	}
	/* publishing and re-keying are one step for lookups in the parent
	 * (types.h, ns_lock) */
	g_rw_lock_writer_lock(&strata_dirpart(parent)->ns_lock);
	r = publish(fs, tmp, pstack->e[0].fd, name);
	if (r == -EEXIST) {
		/* defensive: an upper entry appeared meanwhile; it is the
		 * object now, take it */
		strata_remove_tree(fs->workfd, tmp);
		r = adopt_existing(fs, in, pstack->e[0].fd, name);
		g_rw_lock_writer_unlock(&strata_dirpart(parent)->ns_lock);
		goto out;
	}
	if (r == 0)
		r = strata_inode_now_upper(fs, in, pstack->e[0].fd, name);
	else
		strata_remove_tree(fs->workfd, tmp);
	if (r == 0 && fs->fsync) {
		/* the rename is durable once the parent is synced: at the
		 * user's fsync (file.c), not here, where nobody asked */
		g_mutex_lock(&in->lock);
		in->entry_unsynced = true;
		g_mutex_unlock(&in->lock);
	}
	g_rw_lock_writer_unlock(&strata_dirpart(parent)->ns_lock);
	/* the parent's upper listing holds the copy now (and a copy of a
	 * file with several names lists its own number) */
	strata_dir_changed(parent);
	if (r == 0 && !S_ISDIR(in->type) && st.st_nlink > 1)
		take_own_ino(fs, in);
	if (r == 0 && (S_ISDIR(in->type) || st.st_nlink > 1))
		copied_up(fs, in);
out:
	strata_stack_unref(pstack);
	strata_stack_unref(src);
	return r;
}

int strata_inode_now_upper(struct strata_fs *fs, struct strata_inode *in,
			   int udir, const char *name)
{
	struct stat ust;
	int r = strata_do_fstatat(udir, name, &ust, AT_SYMLINK_NOFOLLOW);

	if (r < 0)
		return r;
	if (S_ISDIR(in->type)) {
		struct strata_stack *old, *s;
		int fd = strata_do_openat(udir, name,
					  O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);

		if (fd < 0)
			return fd;
		g_mutex_lock(&in->lock);
		old = in->stack;
		s = strata_stack_new(old->n + 1);
		s->e[0].layer = 0;
		s->e[0].fd = fd;
		for (uint32_t i = 0; i < old->n; i++) {
			s->e[i + 1] = old->e[i];
			s->e[i + 1].fd = dup(old->e[i].fd);
		}
		in->stack = s;
		in->layer = 0;
		in->gen++;
		g_mutex_unlock(&in->lock);
		strata_stack_unref(old);
	} else {
		g_mutex_lock(&in->lock);
		in->layer = 0;
		in->gen++;
		g_mutex_unlock(&in->lock);
	}
	strata_inode_rekey(fs, in, strata_map_ino(fs, 0, ust.st_ino));
	return 0;
}


int strata_copy_up(struct strata_fs *fs, struct strata_inode *in, bool data)
{
	struct strata_inode *parent;
	int r;

	if (!fs->has_upper)
		return -EROFS;
	if (strata_inode_is_upper(in))
		return 0;

	g_mutex_lock(&in->lock);
	parent = in->parent;
	if (parent)
		strata_inode_ref(parent, 1);
	g_mutex_unlock(&in->lock);
	if (parent == NULL)
		return -EIO; /* the root is always upper */

	r = strata_copy_up(fs, parent, true);
	if (r == 0) {
		g_mutex_lock(&in->cu_lock);
		if (!strata_inode_is_upper(in))
			r = copy_up_locked(fs, in, parent, data);
		g_mutex_unlock(&in->cu_lock);
	}
	strata_inode_unref(fs, parent, 1);
	return r;
}
