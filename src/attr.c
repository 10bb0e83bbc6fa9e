// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Attributes as the merged view shows them.
 *
 * st_ino: the real inode number of the object's topmost entry.  When all
 * layers sit on one filesystem that number is unique as it is (hardlinks
 * share it, remounts keep it), which is also what the kernel overlayfs
 * reports.  When the layers span several filesystems, the top bits of
 * st_ino carry the index of the filesystem (in order of first appearance
 * in the layer list, so a remount of the same layers gives the same
 * numbers), the way the kernel's xino does.
 *
 * A copied-up object keeps the st_ino of its origin: copyup.c records it
 * in an xattr of the copy (STRATA_MARKER_ORIGIN), which a kernel overlayfs
 * mounted on the same upper hides and ignores.
 *
 * st_nlink of a directory merged from several layers is 1, as the kernel
 * overlayfs reports it: counting subdirectories across layers would cost
 * a full merge per stat, and 1 tells find(1) not to trust the count.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "stratafs/stratafs.h"

uint64_t strata_map_ino(const struct strata_fs *fs, uint32_t layer,
			ino_t real)
{
	uint64_t fsidx;

	if (fs->n_devs <= 1)
		return real;
	fsidx = fs->layers[layer].fsidx;
	return ((uint64_t)real & ((UINT64_C(1) << fs->ino_shift) - 1)) |
	       (fsidx << fs->ino_shift);
}

void strata_fix_stat(const struct strata_fs *fs, struct stat *st,
		     uint64_t ino, uint32_t stack_n)
{
	st->st_ino = ino;
	if (S_ISDIR(st->st_mode) && (stack_n > 1 || fs->static_nlink))
		st->st_nlink = 1;
	st->st_uid = strata_idmap_show(&fs->uidmap, st->st_uid);
	st->st_gid = strata_idmap_show(&fs->gidmap, st->st_gid);
	if (fs->squash_uid >= 0)
		st->st_uid = (uid_t)fs->squash_uid;
	if (fs->squash_gid >= 0)
		st->st_gid = (gid_t)fs->squash_gid;
}

int strata_store_ids(const struct strata_fs *fs, uid_t *uid, gid_t *gid)
{
	uint32_t v;

	if (uid && *uid != (uid_t)-1) {
		if (!strata_idmap_store(&fs->uidmap, *uid, &v))
			return -EINVAL;
		*uid = v;
	}
	if (gid && *gid != (gid_t)-1) {
		if (!strata_idmap_store(&fs->gidmap, *gid, &v))
			return -EINVAL;
		*gid = v;
	}
	return 0;
}

/* The copy's origin, found by its name in the layers below the copy:
 * the first entry there, if its file handle is the one the copy records
 * (a renamed or linked copy records its number instead, dir.c). */
static uint64_t origin_by_name(struct strata_fs *fs,
			       const struct strata_stack_entry *dir,
			       uint32_t n, uint32_t i, const char *name,
			       const unsigned char *rec, ssize_t len)
{
	unsigned char fb[STRATA_ORIGIN_FB_MAX];
	struct stat lst;

	for (uint32_t j = i + 1; j < n; j++) {
		int r = strata_do_fstatat(dir[j].fd, name, &lst,
					  AT_SYMLINK_NOFOLLOW);

		if (r == -ENOENT)
			continue;
		/* a lower file with several names: its copy shows its own
		 * number (copyup.c) */
		if (r < 0 || S_ISDIR(lst.st_mode) || lst.st_nlink > 1 ||
		    strata_origin_fb(fs, dir[j].layer, dir[j].fd, name, fb) !=
			    len ||
		    memcmp(fb, rec, len) != 0)
			return 0;
		return strata_map_ino(fs, dir[j].layer, lst.st_ino);
	}
	return 0;
}

uint64_t strata_shown_ino(struct strata_fs *fs,
			  const struct strata_stack_entry *dir, uint32_t n,
			  uint32_t i, const char *name, const struct stat *st)
{
	uint32_t layer = dir[i].layer;
	uint64_t key = strata_map_ino(fs, layer, st->st_ino);
	const char *ours =
		strata_marker_xattr(STRATA_MARKER_ORIGIN, fs->xattr_ns);
	const char *kern =
		strata_marker_xattr(STRATA_MARKER_KORIGIN, fs->xattr_ns);
	unsigned char rec[STRATA_ORIGIN_FB_MAX];
	char list[256];
	char buf[24];
	ssize_t len;
	uint64_t v;

	/* only the upper holds copies; only we write the origin there */
	if (!fs->has_upper || layer != 0 || !fs->xattr_ok)
		return key;
	/* one call answers the common case, an object that is no copy */
	len = strata_do_listxattr_at(dir[i].fd, name, list, sizeof(list));
	if (len == 0 || len == -ENOTSUP || len == -EOPNOTSUPP ||
	    len == -ENOENT)
		return key;
	if (len < 0 || strata_xattr_list_has(list, len, ours)) {
		ssize_t m = strata_do_getxattr_at(dir[i].fd, name, ours, buf,
						  sizeof(buf) - 1);

		if (m > 0) {
			buf[m] = '\0';
			return g_ascii_strtoull(buf, NULL, 10) ?: key;
		}
	}
	/* directories always record theirs */
	if (S_ISDIR(st->st_mode) || i + 1 >= n ||
	    (len > 0 && !strata_xattr_list_has(list, len, kern)))
		return key;
	len = strata_do_getxattr_at(dir[i].fd, name, kern, rec, sizeof(rec));
	if (len < 21)
		return key;
	v = origin_by_name(fs, dir, n, i, name, rec, len);
	return v ? v : key;
}

static int getattr_nondir(struct strata_fs *fs, struct strata_inode *in,
			  struct stat *st);

int strata_getattr(struct strata_fs *fs, struct strata_inode *in,
		   struct stat *st)
{
	struct strata_stack *s;
	int r;

	if (S_ISDIR(in->type)) {
		s = strata_inode_stack(in);
		r = strata_do_fstatat(s->e[0].fd, "", st,
				      AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		if (r == 0) {
			strata_apply_override(fs, s->e[0].fd, NULL, st);
			strata_fix_stat(fs, st, in->ino, s->n);
		}
		strata_stack_unref(s);
		return r;
	}
	g_mutex_lock(&in->cu_lock); /* no unlink or rename of it meanwhile */
	r = getattr_nondir(fs, in, st);
	g_mutex_unlock(&in->cu_lock);
	return r;
}

/* A non-directory reached by its name, or by the fd kept for it once the
 * name is gone; a name that holds another type (a whiteout) is gone. */
static int stat_name(int dirfd, const char *name, const struct strata_inode *in,
		     struct stat *st)
{
	int r = strata_do_fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW);

	if (r == 0 && (st->st_mode & S_IFMT) != in->type)
		r = -ENOENT;
	return r;
}

static int getattr_nondir(struct strata_fs *fs, struct strata_inode *in,
			  struct stat *st)
{
	g_autofree char *name = NULL;
	struct strata_stack *s;
	uint32_t layer;
	int dirfd, r;

	g_mutex_lock(&in->lock);
	dirfd = in->orphan_fd;
	if (!in->unlinked && dirfd >= 0) {
		/* a name may still lead there; the anchor if it does not */
		g_mutex_unlock(&in->lock);
		r = strata_inode_where(fs, in, &s, &dirfd, &name, &layer);
		if (r == 0) {
			r = stat_name(dirfd, name, in, st);
			strata_stack_unref(s);
			if (r == 0) {
				strata_fix_stat(fs, st, in->ino, 1);
				return 0;
			}
			g_clear_pointer(&name, g_free);
		}
		g_mutex_lock(&in->lock);
		dirfd = in->orphan_fd;
	} else if (!in->unlinked) {
		dirfd = -1;
	}
	g_mutex_unlock(&in->lock);
	if (dirfd >= 0) {
		/* no name any more: the object itself, kept open */
		r = strata_do_fstatat(dirfd, "", st,
				      AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		if (r == 0)
			strata_fix_stat(fs, st, in->ino, 1);
		return r;
	}
	r = strata_inode_where(fs, in, &s, &dirfd, &name, &layer);
	if (r < 0)
		return r;
	r = stat_name(dirfd, name, in, st);
	if (r == 0) {
		strata_apply_override(fs, dirfd, name, st);
		strata_fix_stat(fs, st, in->ino, 1);
	}
	strata_stack_unref(s);
	return r;
}

static int set_size(struct strata_fs *fs, struct strata_inode *in,
		    const char *name, struct strata_file *f, off_t size)
{
	int fd, r;

	if (f && f->upper && (fcntl(f->fd, F_GETFL) & O_ACCMODE) != O_RDONLY)
		return ftruncate(f->fd, size) < 0 ? -errno : 0;
	if (name == NULL)
		return -EISDIR;
	/* not by name: it may hold a whiteout or another file by now */
	fd = strata_open_real(fs, in, O_WRONLY);
	if (fd < 0)
		return fd;
	r = ftruncate(fd, size) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/* xattr_permissions: the owner and mode as currently shown, on disk ids */
static int current_override(struct strata_fs *fs, int dirfd,
			    const char *name, struct stat *st)
{
	int r = strata_do_fstatat(dirfd, name ? name : "", st,
				  AT_SYMLINK_NOFOLLOW |
					  (name ? 0 : AT_EMPTY_PATH));

	if (r == 0)
		strata_apply_override(fs, dirfd, name, st);
	return r;
}

static int override_ids(struct strata_fs *fs, struct strata_inode *in,
			int dirfd, const char *name, uid_t uid, gid_t gid)
{
	struct stat st;
	int r = current_override(fs, dirfd, name, &st);

	if (r < 0)
		return r;
	return strata_write_override(fs, dirfd, name,
				     uid == (uid_t)-1 ? st.st_uid : uid,
				     gid == (gid_t)-1 ? st.st_gid : gid,
				     st.st_mode);
}

static int override_mode(struct strata_fs *fs, struct strata_inode *in,
			 int dirfd, const char *name, mode_t mode)
{
	struct stat st;
	int r = current_override(fs, dirfd, name, &st);

	if (r < 0)
		return r;
	return strata_write_override(fs, dirfd, name, st.st_uid, st.st_gid,
				     mode);
}

int strata_setattr(struct strata_fs *fs, struct strata_inode *in,
		   const struct stat *attr, int valid, struct strata_file *f,
		   struct stat *out)
{
	g_autofree char *name = NULL;
	struct strata_stack *s = NULL;
	bool data = !((valid & STRATA_SET_SIZE) && attr->st_size == 0);
	int dirfd, r;

	if (!fs->has_upper)
		return -EROFS;
	r = strata_copy_up(fs, in, data);
	if (r < 0)
		return r;
	r = strata_inode_real(fs, in, &s, &dirfd, &name);
	if (r < 0)
		return r;
	if (valid & (STRATA_SET_UID | STRATA_SET_GID)) {
		uid_t uid = (valid & STRATA_SET_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & STRATA_SET_GID) ? attr->st_gid : (gid_t)-1;

		r = strata_store_ids(fs, &uid, &gid);
		if (r == 0 && fs->override_xattr)
			r = override_ids(fs, in, dirfd, name, uid, gid);
		else if (r == 0)
			r = strata_do_fchownat(dirfd, name, uid, gid);
		if (r < 0)
			goto out;
	}
	if (valid & STRATA_SET_MODE) {
		if (S_ISLNK(in->type)) {
			r = -EOPNOTSUPP;
			goto out;
		}
		if (fs->override_xattr)
			r = override_mode(fs, in, dirfd, name,
					  attr->st_mode & 07777);
		else
			r = strata_do_fchmodat(dirfd, name,
					       attr->st_mode & 07777);
		if (r < 0)
			goto out;
	}
	if (valid & STRATA_SET_SIZE) {
		r = set_size(fs, in, name, f, attr->st_size);
		if (r < 0)
			goto out;
	}
	if (valid & (STRATA_SET_ATIME | STRATA_SET_MTIME |
		     STRATA_SET_ATIME_NOW | STRATA_SET_MTIME_NOW)) {
		struct timespec t[2] = { { .tv_nsec = UTIME_OMIT },
					 { .tv_nsec = UTIME_OMIT } };

		if (valid & STRATA_SET_ATIME_NOW)
			t[0].tv_nsec = UTIME_NOW;
		else if (valid & STRATA_SET_ATIME)
			t[0] = attr->st_atim;
		if (valid & STRATA_SET_MTIME_NOW)
			t[1].tv_nsec = UTIME_NOW;
		else if (valid & STRATA_SET_MTIME)
			t[1] = attr->st_mtim;
		r = strata_do_utimensat(dirfd, name, t);
		if (r < 0)
			goto out;
	}
	r = strata_getattr(fs, in, out);
out:
	strata_stack_unref(s);
	return r;
}

int strata_parse_override(const char *val, size_t len, uid_t *uid,
			  gid_t *gid, mode_t *mode)
{
	char buf[64];
	char *p, *end;
	unsigned long u, g, m;

	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, val, len);
	buf[len] = '\0';
	p = buf;
	errno = 0;
	u = strtoul(p, &end, 10);
	if (end == p || *end != ':' || errno)
		return -EINVAL;
	p = end + 1;
	g = strtoul(p, &end, 10);
	if (end == p || *end != ':' || errno)
		return -EINVAL;
	p = end + 1;
	m = strtoul(p, &end, 8);
	if (end == p || (*end != '\0' && *end != ':') || errno ||
	    u > UINT32_MAX - 1 || g > UINT32_MAX - 1 || m > 07777)
		return -EINVAL;
	*uid = (uid_t)u;
	*gid = (gid_t)g;
	*mode = (mode_t)m;
	return 0;
}

void strata_apply_override(struct strata_fs *fs, int dirfd, const char *name,
			   struct stat *st)
{
	char val[64];
	ssize_t n;
	uid_t uid;
	gid_t gid;
	mode_t mode;

	if (fs->override_xattr == NULL)
		return;
	n = strata_do_getxattr_at(dirfd, name, fs->override_xattr, val,
				  sizeof(val));
	/* a bogus value is ignored: the real owner and mode show */
	if (n <= 0 || strata_parse_override(val, n, &uid, &gid, &mode) < 0)
		return;
	st->st_uid = uid;
	st->st_gid = gid;
	st->st_mode = (st->st_mode & S_IFMT) | mode;
}

int strata_write_override(struct strata_fs *fs, int dirfd, const char *name,
			  uid_t uid, gid_t gid, mode_t mode)
{
	char val[64];
	int n = snprintf(val, sizeof(val), "%u:%u:%o", (unsigned)uid,
			 (unsigned)gid, (unsigned)(mode & 07777));

	return strata_do_setxattr_at(dirfd, name, fs->override_xattr, val, n,
				     0);
}
