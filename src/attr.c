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
 * st_nlink of a directory merged from several layers is 1, as the kernel
 * overlayfs reports it: counting subdirectories across layers would cost
 * a full merge per stat, and 1 tells find(1) not to trust the count.
 */
#include <fcntl.h>

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
		     uint32_t layer, uint32_t stack_n)
{
	st->st_ino = strata_map_ino(fs, layer, st->st_ino);
	if (S_ISDIR(st->st_mode) && stack_n > 1)
		st->st_nlink = 1;
}

int strata_getattr(struct strata_fs *fs, struct strata_inode *in,
		   struct stat *st)
{
	g_autofree char *name = NULL;
	struct strata_stack *s;
	uint32_t layer;
	int dirfd, r;

	if (S_ISDIR(in->type)) {
		s = strata_inode_stack(in);
		r = strata_do_fstatat(s->e[0].fd, "", st,
				      AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		if (r == 0)
			strata_fix_stat(fs, st, s->e[0].layer, s->n);
		strata_stack_unref(s);
		return r;
	}
	r = strata_inode_where(fs, in, &s, &dirfd, &name, &layer);
	if (r < 0)
		return r;
	r = strata_do_fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW);
	if (r == 0)
		strata_fix_stat(fs, st, layer, 1);
	strata_stack_unref(s);
	return r;
}
