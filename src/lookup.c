// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Resolve one name in a merged directory, top layer to bottom, with the
 * kernel overlayfs's rules:
 *   - the topmost entry of the name wins;
 *   - a whiteout (any format, whiteout.c) ends the search: the name does
 *     not exist below it;
 *   - a non-directory hides everything below it;
 *   - directories of the same name merge, until one is opaque or a
 *     non-directory (or whiteout) of the name is met below, or the layer
 *     of a directory also holds ".wh.NAME" (it deleted the lower NAME);
 *   - an xattr whiteout counts in any directory, as the kernel's lookup
 *     reads it (its readdir only filters them where opaque=x is set:
 *     readdir.c).
 * Marker names (".wh.*") never resolve.
 *
 * Each probe is one fstatat() per layer of the parent's stack, plus one
 * for an AUFS ".wh.NAME" where the name is absent and layers remain below
 * (in the last layer it would hide nothing); a lower layer whose
 * directory is indexed (names.c) and does not hold the name is skipped
 * without a system call.
 */
#include <fcntl.h>
#include <string.h>

#include "stratafs/stratafs.h"

int strata_resolve(struct strata_fs *fs, const struct strata_stack *dir,
		   struct strata_dcache *dc, const char *name,
		   struct strata_found *out)
{
	return strata_resolve_in(fs, dir->e, dir->n, dc, name, out);
}

int strata_resolve_in(struct strata_fs *fs,
		      const struct strata_stack_entry *dir, uint32_t n,
		      struct strata_dcache *dc, const char *name,
		      struct strata_found *out)
{
	g_autofree struct strata_stack_entry *ents =
		g_new(struct strata_stack_entry, n ? n : 1);
	uint32_t nd = 0;
	bool found = false;
	int found_dirfd = -1;
	uint32_t found_i = 0;
	size_t len = strlen(name);
	uint32_t h, cursor = 0;
	int r = 0;

	memset(out, 0, sizeof(*out));
	if (len > NAME_MAX)
		return -ENAMETOOLONG;
	if (strata_is_aufs_name(name))
		return -ENOENT;
	h = dc ? strata_name_hash(name, len) : 0;

	for (uint32_t i = 0; i < n; i++) {
		const struct strata_stack_entry *e = &dir[i];
		struct strata_dir_markers m;
		struct stat st;
		int fd;

		if (dc && !strata_dcache_may_have(dc, &cursor, e->layer, h))
			continue;
		r = strata_do_fstatat(e->fd, name, &st, AT_SYMLINK_NOFOLLOW);
		if (r == -ENOENT) {
			/* in the last layer a ".wh.NAME" would hide nothing */
			r = i + 1 < n ? strata_aufs_whiteout_exists(e->fd, name)
				      : 0;
			if (r < 0)
				goto fail;
			if (r > 0)
				break;
			if (dc)
				strata_dcache_miss(dc, e->layer, e->fd);
			continue;
		}
		if (r < 0)
			goto fail;
		r = strata_entry_is_whiteout(e->fd, name, &st);
		if (r < 0)
			goto fail;
		if (r > 0)
			break;
		if (!found) {
			out->st = st;
			out->layer = e->layer;
			found_dirfd = e->fd;
			found_i = i;
			found = true;
			if (!S_ISDIR(st.st_mode))
				break;
		} else if (!S_ISDIR(st.st_mode)) {
			break; /* a non-directory below ends the merge */
		}

		fd = strata_do_openat(e->fd, name,
				      O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
		if (fd < 0) {
			r = fd;
			goto fail;
		}
		ents[nd].layer = e->layer;
		ents[nd].fd = fd;
		ents[nd].xwhiteouts = false;
		nd++;
		r = strata_read_dir_markers(fd, &m, i + 1 < n);
		if (r < 0)
			goto fail;
		ents[nd - 1].xwhiteouts = m.xwhiteouts;
		if (m.opaque)
			break;
		if (i + 1 == n)
			break;
		/* ".wh.NAME" beside a directory NAME: the layer deleted the
		 * lower NAME and made a new one; nothing below merges */
		r = strata_aufs_whiteout_exists(e->fd, name);
		if (r < 0)
			goto fail;
		if (r > 0)
			break;
	}
	if (!found) {
		r = -ENOENT;
		goto fail;
	}
	if (S_ISDIR(out->st.st_mode)) {
		out->stack = strata_stack_new(nd);
		memcpy(out->stack->e, ents, nd * sizeof(*ents));
	}
	out->key = strata_map_ino(fs, out->layer, out->st.st_ino);
	strata_apply_override(fs, found_dirfd, name, &out->st);
	strata_fix_stat(fs, &out->st,
			strata_shown_ino(fs, dir, n, found_i, name, &out->st),
			S_ISDIR(out->st.st_mode) ? nd : 1);
	return 0;
fail:
	for (uint32_t i = 0; i < nd; i++)
		close(ents[i].fd);
	return r;
}

int strata_lookup(struct strata_fs *fs, struct strata_inode *dir,
		  const char *name, struct strata_inode **out,
		  struct stat *st)
{
	struct strata_found f;
	struct strata_stack *s;
	bool by_name;
	int r;

	if (!S_ISDIR(dir->type))
		return -ENOTDIR;
	g_rw_lock_reader_lock(&strata_dirpart(dir)->ns_lock);
	s = strata_inode_stack(dir);
	r = strata_resolve(fs, s, strata_dcache_get(fs, dir, s), name, &f);
	strata_stack_unref(s);
	if (r < 0) {
		g_rw_lock_reader_unlock(&strata_dirpart(dir)->ns_lock);
		return r;
	}
	/* a lower file with several names, in a union that can copy it
	 * up: one inode per name (types.h, struct strata_ikey) */
	by_name = fs->has_upper && f.layer != 0 && !S_ISDIR(f.st.st_mode) &&
		  f.st.st_nlink > 1;
	*out = strata_inode_get_ex(fs, f.key, by_name, f.st.st_ino,
				   f.st.st_mode, dir, name, f.layer, f.stack);
	g_rw_lock_reader_unlock(&strata_dirpart(dir)->ns_lock);
	*st = f.st;
	/* an upper file with several names: an unlink or rename of one must
	 * know where the others are */
	if (fs->has_upper && f.layer == 0 && !S_ISDIR(f.st.st_mode) &&
	    f.st.st_nlink > 1)
		strata_inode_add_alias(*out, dir, name);
	return 0;
}

int strata_lookup_created(struct strata_fs *fs, struct strata_inode *dir,
			  const char *name, int udir, int fd,
			  struct strata_inode **out, struct stat *st)
{
	struct strata_stack *stack = NULL;
	struct stat rst;
	uint64_t key;
	int r;

	r = fd >= 0 ? (fstat(fd, &rst) < 0 ? -errno : 0)
		    : strata_do_fstatat(udir, name, &rst, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return r;
	if (S_ISDIR(rst.st_mode)) {
		/* its stack is the new upper directory alone: it was made
		 * where no lower directory shows, or opaque */
		r = strata_do_openat(udir, name,
				     O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
		if (r < 0)
			return r;
		stack = strata_stack_new(1);
		stack->e[0].layer = 0;
		stack->e[0].fd = r;
		stack->e[0].xwhiteouts = false;
	} else if (rst.st_nlink > 1) {
		return strata_lookup(fs, dir, name, out, st);
	}
	/* what strata_resolve would find: an upper object of one name,
	 * no origin, no whiteout */
	key = strata_map_ino(fs, 0, rst.st_ino);
	strata_apply_override(fs, udir, name, &rst);
	strata_fix_stat(fs, &rst, key, 1);
	g_rw_lock_reader_lock(&strata_dirpart(dir)->ns_lock);
	*out = strata_inode_get_ex(fs, key, false, rst.st_ino, rst.st_mode,
				   dir, name, 0, stack);
	g_rw_lock_reader_unlock(&strata_dirpart(dir)->ns_lock);
	if (stack == NULL && S_ISREG(rst.st_mode))
		g_atomic_int_set(&(*out)->cap_seq, 1); /* no capability yet */
	*st = rst;
	return 0;
}
