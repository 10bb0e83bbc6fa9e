// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Opening the layer stack at mount time: each layer once, checked, with a
 * one-line error naming the problem before anything is mounted.  Also
 * builds the root of the merged view, which merges the roots of all
 * layers (markers on a layer's root directory are ignored, as the kernel
 * overlayfs ignores them).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stratafs/stratafs.h"

static int open_layer(struct strata_layer *l, const char *what,
		      const char *path, char **err)
{
	struct stat st;
	char *real;
	int fd;

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
	real = realpath(path, NULL);
	l->fd = fd;
	l->path = real ? real : g_strdup(path);
	l->dev = st.st_dev;
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
		r = strata_read_dir_markers(s->e[i].fd, &m);
		if (r < 0)
			goto fail;
		s->e[i].xwhiteouts = m.xwhiteouts;
	}
	i = 0;
	r = strata_do_fstatat(s->e[0].fd, "", &st, AT_EMPTY_PATH);
	if (r < 0)
		goto fail;

	root = g_new0(struct strata_inode, 1);
	root->ino = strata_map_ino(fs, 0, st.st_ino);
	root->type = S_IFDIR;
	root->refs = 1;
	g_mutex_init(&root->lock);
	root->name = g_strdup("");
	root->stack = s;
	g_hash_table_insert(fs->inodes, &root->ino, root);
	fs->root = root;
	return 0;
fail:
	*err = g_strdup_printf("layer %s: %s", fs->layers[i].path,
			       g_strerror(-r));
	strata_stack_unref(s);
	return r;
}

int strata_fs_open(struct strata_fs *fs, const struct strata_options *o,
		   char **err)
{
	guint n = o->lowerdirs->len;
	int r;

	if (o->upperdir) {
		*err = g_strdup("option upperdir: writable mounts are not "
				"implemented yet; mount lowerdir= only");
		return -ENOTSUP;
	}
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
	fs->layers = g_new0(struct strata_layer, n);
	for (guint i = 0; i < n; i++)
		fs->layers[i].fd = -1;
	fs->n_layers = n;
	for (guint i = 0; i < n; i++) {
		r = open_layer(&fs->layers[i], "lowerdir",
			       o->lowerdirs->pdata[i], err);
		if (r < 0)
			return r;
	}
	assign_fs_indexes(fs);
	strata_table_init(fs);
	return build_root(fs, err);
}

void strata_fs_close(struct strata_fs *fs)
{
	strata_table_destroy(fs);
	for (uint32_t i = 0; i < fs->n_layers; i++) {
		if (fs->layers[i].fd >= 0)
			close(fs->layers[i].fd);
		free(fs->layers[i].path);
	}
	g_clear_pointer(&fs->layers, g_free);
	fs->n_layers = 0;
	fs->root = NULL;
}
