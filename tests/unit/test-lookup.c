// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of lookup.c (name resolution down the layer stack) and of
 * layers.c (strata_fs_open), on real layer directories under /tmp.  Also
 * checks that merged listings (readdir.c) agree with lookups, and the
 * xattr view of xattr.c.  No FUSE mount is involved.
 */
#include "unit-util.h"

#define FX(state) ((struct ut_fx *)*(state))
#define T(name) cmocka_unit_test_setup_teardown(name, ut_fx_setup, ut_fx_teardown)

static void skip_unless_root(void)
{
	if (!ut_is_root()) {
		print_message("# needs root (mknod / trusted.* xattrs)\n");
		skip();
	}
}

/* Look @name up in @dir; fails the test unless it resolves. */
static struct strata_inode *lk(struct strata_fs *fs, struct strata_inode *dir,
			       const char *name, struct stat *st)
{
	struct strata_inode *in = NULL;
	struct stat dummy;
	int r = strata_lookup(fs, dir, name, &in, st ? st : &dummy);

	if (r != 0)
		fail_msg("lookup '%s': %d (%s)", name, r, g_strerror(-r));
	assert_non_null(in);
	return in;
}

/* The error of looking @name up in @dir (0 if it resolves: then the
 * reference taken is dropped again). */
static int lk_err(struct strata_fs *fs, struct strata_inode *dir,
		  const char *name)
{
	struct strata_inode *in = NULL;
	struct stat st;
	int r = strata_lookup(fs, dir, name, &in, &st);

	if (r == 0)
		strata_inode_unref(fs, in, 1);
	return r;
}

static void assert_stack_layers(const struct strata_inode *in,
				const uint32_t *want, uint32_t n)
{
	assert_non_null(in->stack);
	assert_int_equal(in->stack->n, n);
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(in->stack->e[i].layer, want[i]);
		assert_true(in->stack->e[i].fd >= 0);
	}
}

#define ASSERT_STACK(in, ...)                                                 \
	do {                                                                  \
		const uint32_t _w[] = { __VA_ARGS__ };                        \
		assert_stack_layers((in), _w, G_N_ELEMENTS(_w));              \
	} while (0)

static void read_file(struct strata_fs *fs, struct strata_inode *in,
		      char *buf, size_t size)
{
	int fd = strata_open_real(fs, in, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		fail_msg("strata_open_real: %d", fd);
	n = read(fd, buf, size - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
}

/* ------------------------------------------------------------------ */
/* strata_fs_open */

static void test_fs_open_basic(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs = ut_fx_open(fx, 3);
	g_autofree char *real0 = realpath(fx->l[0], NULL);

	assert_int_equal(fs->n_layers, 3);
	assert_false(fs->has_upper);
	assert_int_equal(fs->n_devs, 1);
	assert_non_null(fs->root);
	assert_null(fs->root->parent);
	assert_string_equal(fs->root->name, "");
	assert_int_equal(fs->root->type, S_IFDIR);
	assert_int_equal(ut_refs(fs->root), 1);
	assert_int_equal(strata_table_size(fs), 1);
	assert_int_equal(fs->root->ino, ut_ino(fx->l[0]));
	ASSERT_STACK(fs->root, 0, 1, 2);
	assert_string_equal(fs->layers[0].path, real0);
	assert_true(fs->timeout == STRATA_DEFAULT_TIMEOUT);
	for (int i = 0; i < 3; i++) {
		assert_true(fs->layers[i].fd >= 0);
		assert_false(fs->layers[i].upper);
		assert_int_equal(fs->layers[i].fsidx, 0);
	}
}

static void test_fs_open_nonexistent(void **state)
{
	struct ut_fx *fx = FX(state);
	g_autofree char *missing = ut_path("%s/does-not-exist", fx->base);
	char *dirs[] = { fx->l[0], missing, fx->l[1] };
	g_autofree char *err = NULL;

	assert_int_equal(ut_fs_open_v(&fx->fs, dirs, 3, &err), -ENOENT);
	fx->open = true;
	assert_non_null(err);
	assert_non_null(strstr(err, missing));
	assert_null(strchr(err, '\n'));
}

static void test_fs_open_file_as_layer(void **state)
{
	struct ut_fx *fx = FX(state);
	g_autofree char *file = ut_path("%s/plain", fx->base);
	char *dirs[] = { file };
	g_autofree char *err = NULL;

	ut_write(file, "x");
	assert_int_equal(ut_fs_open_v(&fx->fs, dirs, 1, &err), -ENOTDIR);
	fx->open = true;
	assert_non_null(err);
	assert_non_null(strstr(err, file));
	assert_null(strchr(err, '\n'));
}

static void test_fs_open_no_layers(void **state)
{
	struct ut_fx *fx = FX(state);
	g_autofree char *err = NULL;

	assert_int_equal(ut_fs_open_v(&fx->fs, NULL, 0, &err), -EINVAL);
	fx->open = true;
	assert_non_null(err);
	assert_non_null(strstr(err, "lowerdir"));
}

/* Each layer's path is its canonical one (messages and the layout checks
 * use it), however it was given: through a symlink, relative to the
 * working directory, with "..".  The working directory is the caller's
 * again afterwards, or later relative paths would resolve elsewhere. */
static void test_fs_open_paths_canonical(void **state)
{
	struct ut_fx *fx = FX(state);
	g_autofree char *link = ut_path("%s/link-l0", fx->base);
	g_autofree char *cwd_before = g_get_current_dir();
	g_autofree char *cwd_after = NULL;
	char *dirs[] = { "link-l0", "l0/../l1", "./l2" };
	g_autofree char *err = NULL;
	int r;

	assert_int_equal(symlink(fx->l[0], link), 0);
	assert_int_equal(chdir(fx->base), 0);
	r = ut_fs_open_v(&fx->fs, dirs, 3, &err);
	cwd_after = g_get_current_dir();
	assert_int_equal(chdir(cwd_before), 0);
	fx->open = true;
	assert_int_equal(r, 0);
	for (int i = 0; i < 3; i++) {
		g_autofree char *real = realpath(fx->l[i], NULL);

		assert_string_equal(fx->fs.layers[i].path, real);
	}
	{
		g_autofree char *base = realpath(fx->base, NULL);

		assert_string_equal(cwd_after, base);
	}
}

static void test_fs_open_timeout_debug(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_options o;
	g_autofree char *err = NULL;

	strata_options_init(&o);
	g_ptr_array_add(o.lowerdirs, g_strdup(fx->l[0]));
	o.timeout = 7.5;
	o.debug = true;
	memset(&fx->fs, 0, sizeof(fx->fs));
	assert_int_equal(strata_fs_open(&fx->fs, &o, &err), 0);
	fx->open = true;
	assert_true(fx->fs.timeout == 7.5);
	assert_true(fx->fs.debug);
	strata_options_clear(&o);
}

/* ------------------------------------------------------------------ */
/* resolution order */

static void test_top_file_wins(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *in;
	struct stat st;
	char buf[32];

	ut_lwrite(fx, 0, "f", "top");
	ut_lwrite(fx, 1, "f", "lower!");
	ut_lwrite(fx, 2, "f", "bottom!!");
	fs = ut_fx_open(fx, 3);
	in = lk(fs, fs->root, "f", &st);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 3);
	assert_int_equal(st.st_ino, ut_lino(fx, 0, "f"));
	assert_int_equal(in->layer, 0);
	assert_int_equal(in->type, S_IFREG);
	assert_null(in->stack);
	assert_ptr_equal(in->parent, fs->root);
	assert_string_equal(in->name, "f");
	read_file(fs, in, buf, sizeof(buf));
	assert_string_equal(buf, "top");
	strata_inode_unref(fs, in, 1);
}

static void test_lower_file_shows(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *in;
	struct stat st;
	char buf[32];

	ut_lwrite(fx, 0, "other", "x");
	ut_lwrite(fx, 2, "g", "from-2");
	fs = ut_fx_open(fx, 3);
	in = lk(fs, fs->root, "g", &st);
	assert_int_equal(in->layer, 2);
	assert_int_equal(st.st_size, 6);
	assert_int_equal(st.st_ino, ut_lino(fx, 2, "g"));
	read_file(fs, in, buf, sizeof(buf));
	assert_string_equal(buf, "from-2");
	strata_inode_unref(fs, in, 1);
	assert_int_equal(lk_err(fs, fs->root, "nothing"), -ENOENT);
}

static void test_symlink_not_followed(void **state)
{
	struct ut_fx *fx = FX(state);
	g_autofree char *link = ut_lp(fx, 0, "ln");
	struct strata_fs *fs;
	struct strata_inode *in;
	struct stat st;

	ut_lmkdir(fx, 1, "ln");
	UT_CHECK(symlink("/etc", link) == 0);
	fs = ut_fx_open(fx, 2);
	in = lk(fs, fs->root, "ln", &st);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(in->type, S_IFLNK);
	assert_null(in->stack);
	strata_inode_unref(fs, in, 1);
}

static void test_xattr_whiteout_hides_lower(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *d, *g;

	ut_lmkdir(fx, 0, "d");
	ut_lsetxattr(fx, 0, "d", "user.overlay.opaque", "x");
	ut_lxwhiteout(fx, 0, "d/f");
	ut_lmkdir(fx, 1, "d");
	ut_lwrite(fx, 1, "d/f", "lower");
	ut_lwrite(fx, 1, "d/g", "lower");
	ut_lmkdir(fx, 2, "d");
	ut_lwrite(fx, 2, "d/f", "bottom");
	fs = ut_fx_open(fx, 3);
	d = lk(fs, fs->root, "d", NULL);
	/* opaque=x is not opaque: all three merge */
	ASSERT_STACK(d, 0, 1, 2);
	assert_true(d->stack->e[0].xwhiteouts);
	assert_false(d->stack->e[1].xwhiteouts);
	assert_int_equal(lk_err(fs, d, "f"), -ENOENT);
	g = lk(fs, d, "g", NULL);
	assert_int_equal(g->layer, 1);
	strata_inode_unref(fs, g, 1);
	strata_inode_unref(fs, d, 1);
}

static void test_xattr_whiteout_nonempty_is_file(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *d, *f;
	struct stat st;

	ut_lmkdir(fx, 0, "d");
	ut_lsetxattr(fx, 0, "d", "user.overlay.opaque", "x");
	ut_lwrite(fx, 0, "d/f", "data");
	ut_lsetxattr(fx, 0, "d/f", "user.overlay.whiteout", "");
	ut_lmkdir(fx, 1, "d");
	ut_lwrite(fx, 1, "d/f", "lower");
	fs = ut_fx_open(fx, 2);
	d = lk(fs, fs->root, "d", NULL);
	f = lk(fs, d, "f", &st);
	assert_int_equal(f->layer, 0);
	assert_int_equal(st.st_size, 4);
	strata_inode_unref(fs, f, 1);
	strata_inode_unref(fs, d, 1);
}

/*
 * The kernel honours an xattr whiteout only "inside a directory with the
 * overlay.opaque xattr set to x" (Documentation/filesystems/overlayfs.rst,
 * "Nesting overlayfs mounts"), and readdir.c checks regular files only in
 * such directories.  Elsewhere the empty file is an ordinary file: lookup
 * must find it, and the listing must agree.
 */
/*
 * The kernel overlayfs (measured on 6.18) honours an xattr whiteout in
 * lookup wherever it sits, but filters it from readdir only in a
 * directory marked opaque=x.  stratafs does the same: lookup says ENOENT
 * and the lower file stays hidden; the plain listing, which does not stat
 * regular files of unmarked directories, still carries the name.
 */
static void test_xattr_whiteout_without_x_kernel_semantics(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *d, *f = NULL;
	struct strata_dirsnap *snap = NULL;
	struct stat st;

	ut_lmkdir(fx, 0, "d"); /* no opaque=x */
	ut_lxwhiteout(fx, 0, "d/f");
	ut_lmkdir(fx, 1, "d");
	ut_lwrite(fx, 1, "d/f", "lower");
	fs = ut_fx_open(fx, 2);
	d = lk(fs, fs->root, "d", NULL);
	assert_false(d->stack->e[0].xwhiteouts);

	assert_int_equal(strata_lookup(fs, d, "f", &f, &st), -ENOENT);
	assert_null(f);
	assert_int_equal(strata_readdir_snapshot(fs, d, &snap), 0);
	assert_non_null(ut_snap_find(snap, "f"));
	strata_dirsnap_free(snap);
	strata_inode_unref(fs, d, 1);
}

static void test_aufs_whiteout_hides_lower(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;

	ut_lwrite(fx, 0, ".wh.f", "");
	ut_lwrite(fx, 1, "f", "lower");
	ut_lwrite(fx, 2, "f", "bottom");
	ut_lwrite(fx, 1, ".wh.g", "");
	ut_lwrite(fx, 2, "g", "bottom");
	ut_lmkdir(fx, 0, ".wh.dd");
	ut_lmkdir(fx, 1, "dd");
	fs = ut_fx_open(fx, 3);
	assert_int_equal(lk_err(fs, fs->root, "f"), -ENOENT);
	assert_int_equal(lk_err(fs, fs->root, "g"), -ENOENT);
	assert_int_equal(lk_err(fs, fs->root, "dd"), -ENOENT);
}

static void test_aufs_whiteout_below_ignored(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *in;

	ut_lwrite(fx, 0, "f", "top");
	ut_lwrite(fx, 1, ".wh.f", "");
	fs = ut_fx_open(fx, 2);
	in = lk(fs, fs->root, "f", NULL);
	assert_int_equal(in->layer, 0);
	strata_inode_unref(fs, in, 1);
}

static void test_root_chardev_whiteout_hides_lower(void **state)
{
	struct ut_fx *fx = FX(state);
	g_autofree char *w = NULL;
	g_autofree char *wd = NULL;
	struct strata_fs *fs;
	struct strata_inode *d;

	skip_unless_root();
	w = ut_lp(fx, 0, "f");
	wd = ut_lp(fx, 1, "d");
	UT_CHECK(mknod(w, S_IFCHR | 0600, makedev(0, 0)) == 0);
	ut_lwrite(fx, 1, "f", "lower");
	ut_lmkdir(fx, 0, "d");
	UT_CHECK(mknod(wd, S_IFCHR | 0600, makedev(0, 0)) == 0);
	ut_lmkdir(fx, 2, "d");
	fs = ut_fx_open(fx, 3);
	assert_int_equal(lk_err(fs, fs->root, "f"), -ENOENT);
	/* a whiteout below a directory ends its merge */
	d = lk(fs, fs->root, "d", NULL);
	ASSERT_STACK(d, 0);
	strata_inode_unref(fs, d, 1);
}

static void test_root_trusted_xattr_whiteout(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *d;

	skip_unless_root();
	ut_lmkdir(fx, 0, "d");
	ut_lsetxattr(fx, 0, "d", "trusted.overlay.opaque", "x");
	ut_lwrite(fx, 0, "d/f", "");
	ut_lsetxattr(fx, 0, "d/f", "trusted.overlay.whiteout", "");
	ut_lmkdir(fx, 1, "d");
	ut_lwrite(fx, 1, "d/f", "lower");
	fs = ut_fx_open(fx, 2);
	d = lk(fs, fs->root, "d", NULL);
	assert_true(d->stack->e[0].xwhiteouts);
	assert_int_equal(lk_err(fs, d, "f"), -ENOENT);
	strata_inode_unref(fs, d, 1);
}

/* ------------------------------------------------------------------ */
/* directories */

static void test_dir_merge(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *d, *e;
	struct stat st;

	ut_lmkdir(fx, 0, "d/sub0");
	ut_lmkdir(fx, 1, "d/sub1");
	ut_lmkdir(fx, 2, "d");
	ut_lmkdir(fx, 2, "e/x");
	ut_lmkdir(fx, 2, "e/y");
	fs = ut_fx_open(fx, 3);

	d = lk(fs, fs->root, "d", &st);
	assert_true(S_ISDIR(st.st_mode));
	ASSERT_STACK(d, 0, 1, 2);
	assert_int_equal(d->layer, 0);
	assert_int_equal(st.st_nlink, 1);
	assert_int_equal(st.st_ino, ut_lino(fx, 0, "d"));

	e = lk(fs, fs->root, "e", &st);
	ASSERT_STACK(e, 2);
	assert_int_equal(e->layer, 2);
	assert_int_equal(st.st_nlink, 4); /* ".", "..", x, y: the real one */
	assert_int_equal(st.st_ino, ut_lino(fx, 2, "e"));

	strata_inode_unref(fs, d, 1);
	strata_inode_unref(fs, e, 1);
}

static void test_dir_merge_skips_missing_layers(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *d;
	struct stat st;

	ut_lmkdir(fx, 1, "d");
	ut_lmkdir(fx, 3, "d");
	fs = ut_fx_open(fx, 4);
	d = lk(fs, fs->root, "d", &st);
	ASSERT_STACK(d, 1, 3);
	assert_int_equal(d->layer, 1);
	assert_int_equal(st.st_nlink, 1);
	/* the stack is sorted by layer: stack_find works on it */
	assert_non_null(strata_stack_find(d->stack, 3));
	assert_null(strata_stack_find(d->stack, 2));
	strata_inode_unref(fs, d, 1);
}

static void test_opaque_dir_stops_stack(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *in;
	static const struct {
		const char *name;
		const char *xattr; /* on the layer-@at copy, or NULL */
		const char *file;  /* created inside it, or NULL */
		int at;
		uint32_t want_n;
	} cases[] = {
		{ "a", "user.overlay.opaque", NULL, 0, 1 },
		{ "b", "user.fuseoverlayfs.opaque", NULL, 0, 1 },
		{ "c", NULL, ".wh..wh..opq", 0, 1 },
		{ "e", NULL, ".wh..opq", 0, 1 },
		{ "f", "user.overlay.opaque", NULL, 1, 2 },
		{ "g", NULL, ".wh..wh..opq", 1, 2 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		for (int l = 0; l < 3; l++)
			ut_lmkdir(fx, l, cases[i].name);
		if (cases[i].xattr)
			ut_lsetxattr(fx, cases[i].at, cases[i].name,
				     cases[i].xattr, "y");
		if (cases[i].file) {
			g_autofree char *rel =
				ut_path("%s/%s", cases[i].name, cases[i].file);

			ut_lwrite(fx, cases[i].at, rel, "");
		}
	}
	fs = ut_fx_open(fx, 3);
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		in = lk(fs, fs->root, cases[i].name, NULL);
		if (in->stack->n != cases[i].want_n)
			fail_msg("'%s': stack of %u, want %u", cases[i].name,
				 in->stack->n, cases[i].want_n);
		for (uint32_t k = 0; k < in->stack->n; k++)
			assert_int_equal(in->stack->e[k].layer, k);
		strata_inode_unref(fs, in, 1);
	}
}

static void test_opaque_dir_hides_lower_children(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *d;

	ut_lmkdir(fx, 0, "d");
	ut_lsetxattr(fx, 0, "d", "user.overlay.opaque", "y");
	ut_lwrite(fx, 0, "d/top", "");
	ut_lmkdir(fx, 1, "d");
	ut_lwrite(fx, 1, "d/low", "");
	fs = ut_fx_open(fx, 2);
	d = lk(fs, fs->root, "d", NULL);
	assert_int_equal(lk_err(fs, d, "low"), -ENOENT);
	assert_int_equal(lk_err(fs, d, "top"), 0);
	strata_inode_unref(fs, d, 1);
}

static void test_nondir_in_middle_stops_merge(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *d;
	struct stat st;

	ut_lmkdir(fx, 0, "d");
	ut_lwrite(fx, 1, "d", "i am a file");
	ut_lmkdir(fx, 2, "d/deep");
	fs = ut_fx_open(fx, 3);
	d = lk(fs, fs->root, "d", &st);
	ASSERT_STACK(d, 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_nlink, 2); /* a single real dir: real count */
	assert_int_equal(lk_err(fs, d, "deep"), -ENOENT);
	strata_inode_unref(fs, d, 1);
}

static void test_dir_over_file(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *d;
	struct stat st;

	ut_lmkdir(fx, 0, "d");
	ut_lwrite(fx, 1, "d", "file");
	fs = ut_fx_open(fx, 2);
	d = lk(fs, fs->root, "d", &st);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(d->type, S_IFDIR);
	ASSERT_STACK(d, 0);
	strata_inode_unref(fs, d, 1);
}

static void test_file_over_dir(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *f;
	struct stat st;

	ut_lwrite(fx, 0, "d", "file");
	ut_lmkdir(fx, 1, "d/x");
	fs = ut_fx_open(fx, 2);
	f = lk(fs, fs->root, "d", &st);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(f->type, S_IFREG);
	assert_null(f->stack);
	assert_int_equal(f->layer, 0);
	/* not a directory: nothing to look up in it */
	assert_int_equal(lk_err(fs, f, "x"), -ENOTDIR);
	strata_inode_unref(fs, f, 1);
}

static void test_nested_lookup(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *a, *b, *c;
	struct stat st;

	ut_lmkdir(fx, 0, "a/b");
	ut_lmkdir(fx, 1, "a/b");
	ut_lwrite(fx, 1, "a/b/c", "deep");
	ut_lmkdir(fx, 2, "a");
	ut_lwrite(fx, 2, "a/b", "a file under a dir: not merged");
	fs = ut_fx_open(fx, 3);
	a = lk(fs, fs->root, "a", NULL);
	ASSERT_STACK(a, 0, 1, 2);
	b = lk(fs, a, "b", NULL);
	ASSERT_STACK(b, 0, 1);
	c = lk(fs, b, "c", &st);
	assert_int_equal(c->layer, 1);
	assert_ptr_equal(c->parent, b);
	assert_ptr_equal(b->parent, a);
	assert_int_equal(st.st_size, 4);
	strata_inode_unref(fs, c, 1);
	strata_inode_unref(fs, b, 1);
	strata_inode_unref(fs, a, 1);
	assert_int_equal(strata_table_size(fs), 1);
}

/*
 * OCI image spec, layer.md "Whiteouts": "Whiteout files MUST only apply to
 * resources in lower/parent layers.  Files that are present in the same
 * layer as a whiteout file can only be hidden by whiteout files in
 * subsequent layers."  A layer holding both ".wh.d" and a new directory
 * "d" deleted the lower "d" and everything in it: the new "d" must not
 * merge with the lower one.
 */
static void test_aufs_whiteout_beside_dir_stops_merge(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *d;

	ut_lmkdir(fx, 0, "d");
	ut_lwrite(fx, 0, "d/new", "");
	ut_lwrite(fx, 0, ".wh.d", "");
	ut_lmkdir(fx, 1, "d");
	ut_lwrite(fx, 1, "d/old", "");
	fs = ut_fx_open(fx, 2);
	d = lk(fs, fs->root, "d", NULL);
	assert_int_equal(d->layer, 0);
	assert_int_equal(lk_err(fs, d, "new"), 0);
	if (d->stack->n != 1)
		fail_msg("'d' merged %u layers although layer 0 holds .wh.d; "
			 "'old' of the deleted lower 'd' shows: lookup = %d",
			 d->stack->n, lk_err(fs, d, "old"));
	assert_int_equal(lk_err(fs, d, "old"), -ENOENT);
	strata_inode_unref(fs, d, 1);
}

/* ------------------------------------------------------------------ */
/* names */

static void test_marker_names_never_resolve(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;

	ut_lwrite(fx, 0, ".wh.foo", "");
	ut_lmkdir(fx, 0, "d");
	ut_lwrite(fx, 0, "d/.wh..wh..opq", "");
	ut_lwrite(fx, 0, "d/.wh..opq", "");
	ut_lwrite(fx, 1, ".wh.bar", "data");
	fs = ut_fx_open(fx, 2);
	assert_int_equal(lk_err(fs, fs->root, ".wh.foo"), -ENOENT);
	assert_int_equal(lk_err(fs, fs->root, ".wh.bar"), -ENOENT);
	assert_int_equal(lk_err(fs, fs->root, ".wh."), -ENOENT);
	{
		struct strata_inode *d = lk(fs, fs->root, "d", NULL);

		assert_int_equal(lk_err(fs, d, ".wh..wh..opq"), -ENOENT);
		assert_int_equal(lk_err(fs, d, ".wh..opq"), -ENOENT);
		strata_inode_unref(fs, d, 1);
	}
}

static void test_name_too_long(void **state)
{
	struct ut_fx *fx = FX(state);
	g_autofree char *n255 = g_strnfill(NAME_MAX, 'n');
	g_autofree char *n256 = g_strnfill(NAME_MAX + 1, 'n');
	struct strata_fs *fs;
	struct strata_inode *in;

	assert_int_equal(NAME_MAX, 255);
	ut_lwrite(fx, 1, n255, "x");
	fs = ut_fx_open(fx, 2);
	assert_int_equal(lk_err(fs, fs->root, n256), -ENAMETOOLONG);
	in = lk(fs, fs->root, n255, NULL);
	assert_int_equal(in->layer, 1);
	strata_inode_unref(fs, in, 1);
	n255[0] = 'm';
	assert_int_equal(lk_err(fs, fs->root, n255), -ENOENT);
}

/* ------------------------------------------------------------------ */
/* listings agree with lookups */

static void test_readdir_root_snapshot(void **state)
{
	struct ut_fx *fx = FX(state);
	g_autofree char *cw = NULL;
	struct strata_fs *fs;
	struct strata_dirsnap *snap = NULL;
	g_autofree char *names = NULL;
	const struct strata_dirent *de;

	ut_lwrite(fx, 0, "a", "");
	ut_lwrite(fx, 0, ".wh.b", "");
	ut_lmkdir(fx, 0, "d");
	ut_lwrite(fx, 1, "b", "");
	ut_lwrite(fx, 1, "c", "");
	ut_lmkdir(fx, 1, "d");
	ut_lwrite(fx, 1, "a", "");
	fs = ut_fx_open(fx, 2);
	assert_int_equal(strata_readdir_snapshot(fs, fs->root, &snap), 0);
	de = &g_array_index(snap->ents, struct strata_dirent, 0);
	assert_string_equal(de->name, ".");
	assert_int_equal(de->ino, fs->root->ino);
	de = &g_array_index(snap->ents, struct strata_dirent, 1);
	assert_string_equal(de->name, "..");
	names = ut_snap_names(snap, 2);
	/* getdents order is the filesystem's: compare as a set */
	assert_int_equal(snap->ents->len, 2 + 3);
	assert_non_null(ut_snap_find(snap, "a"));
	assert_non_null(ut_snap_find(snap, "c"));
	assert_non_null(ut_snap_find(snap, "d"));
	assert_null(ut_snap_find(snap, "b"));
	assert_null(ut_snap_find(snap, ".wh.b"));
	de = ut_snap_find(snap, "a");
	assert_int_equal(de->ino, ut_lino(fx, 0, "a"));
	assert_int_equal(de->type, DT_REG);
	de = ut_snap_find(snap, "d");
	assert_int_equal(de->ino, ut_lino(fx, 0, "d"));
	assert_int_equal(de->type, DT_DIR);
	/* every listed name resolves to the inode number listed */
	for (guint i = 2; i < snap->ents->len; i++) {
		const struct strata_dirent *e =
			&g_array_index(snap->ents, struct strata_dirent, i);
		struct strata_inode *in = NULL;
		struct stat st;

		if (strata_lookup(fs, fs->root, e->name, &in, &st) != 0)
			fail_msg("'%s' listed but not found (%s)", e->name,
				 names);
		assert_int_equal(st.st_ino, e->ino);
		strata_inode_unref(fs, in, 1);
	}
	assert_int_equal(lk_err(fs, fs->root, "b"), -ENOENT);
	strata_dirsnap_free(snap);
}

static void test_readdir_opaque_x_dir(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *d;
	struct strata_dirsnap *snap = NULL;

	ut_lmkdir(fx, 0, "d");
	ut_lsetxattr(fx, 0, "d", "user.overlay.opaque", "x");
	ut_lxwhiteout(fx, 0, "d/gone");
	ut_lwrite(fx, 0, "d/empty", "");
	ut_lmkdir(fx, 1, "d");
	ut_lwrite(fx, 1, "d/gone", "x");
	ut_lwrite(fx, 1, "d/kept", "x");
	fs = ut_fx_open(fx, 2);
	d = lk(fs, fs->root, "d", NULL);
	assert_int_equal(strata_readdir_snapshot(fs, d, &snap), 0);
	assert_int_equal(snap->ents->len, 2 + 2);
	assert_non_null(ut_snap_find(snap, "empty"));
	assert_non_null(ut_snap_find(snap, "kept"));
	assert_null(ut_snap_find(snap, "gone"));
	assert_int_equal(g_array_index(snap->ents, struct strata_dirent, 0).ino,
			 d->ino);
	assert_int_equal(g_array_index(snap->ents, struct strata_dirent, 1).ino,
			 fs->root->ino);
	assert_int_equal(lk_err(fs, d, "gone"), -ENOENT);
	assert_int_equal(lk_err(fs, d, "kept"), 0);
	strata_dirsnap_free(snap);
	strata_inode_unref(fs, d, 1);
}

static void test_readdir_not_a_dir(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *f;
	struct strata_dirsnap *snap = NULL;

	ut_lwrite(fx, 0, "f", "");
	fs = ut_fx_open(fx, 1);
	f = lk(fs, fs->root, "f", NULL);
	assert_int_equal(strata_readdir_snapshot(fs, f, &snap), -ENOTDIR);
	assert_null(snap);
	strata_inode_unref(fs, f, 1);
}

/* ------------------------------------------------------------------ */
/* xattrs through the merged view */

static void test_xattrs_hide_private_names(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *d, *f;
	char buf[256];
	ssize_t n;

	ut_lmkdir(fx, 0, "d");
	ut_lsetxattr(fx, 0, "d", "user.overlay.opaque", "x");
	ut_lsetxattr(fx, 0, "d", "user.mine", "v1");
	ut_lmkdir(fx, 1, "d");
	ut_lsetxattr(fx, 1, "d", "user.lower", "no");
	ut_lwrite(fx, 1, "d/f", "");
	ut_lsetxattr(fx, 1, "d/f", "user.fuseoverlayfs.x", "p");
	ut_lsetxattr(fx, 1, "d/f", "user.file", "v2");
	fs = ut_fx_open(fx, 2);
	d = lk(fs, fs->root, "d", NULL);
	f = lk(fs, d, "f", NULL);

	/* the topmost real directory answers; markers are invisible */
	n = strata_listxattr(fs, d, NULL, 0);
	assert_int_equal(n, sizeof("user.mine"));
	n = strata_listxattr(fs, d, buf, sizeof(buf));
	assert_int_equal(n, sizeof("user.mine"));
	assert_memory_equal(buf, "user.mine", sizeof("user.mine"));
	assert_int_equal(strata_listxattr(fs, d, buf, 3), -ERANGE);
	n = strata_getxattr(fs, d, "user.mine", buf, sizeof(buf));
	assert_int_equal(n, 2);
	assert_memory_equal(buf, "v1", 2);
	/* the kernel (>= 6.7) answers ENODATA for its own names */
	assert_int_equal(strata_getxattr(fs, d, "user.overlay.opaque", buf,
					 sizeof(buf)),
			 -ENODATA);
	assert_int_equal(strata_getxattr(fs, d, "user.lower", buf,
					 sizeof(buf)),
			 -ENODATA);

	n = strata_listxattr(fs, f, buf, sizeof(buf));
	assert_int_equal(n, sizeof("user.file"));
	assert_memory_equal(buf, "user.file", sizeof("user.file"));
	assert_int_equal(strata_getxattr(fs, f, "user.fuseoverlayfs.x", buf,
					 sizeof(buf)),
			 -ENODATA);
	n = strata_getxattr(fs, f, "user.file", buf, sizeof(buf));
	assert_int_equal(n, 2);
	assert_memory_equal(buf, "v2", 2);

	strata_inode_unref(fs, f, 1);
	strata_inode_unref(fs, d, 1);
}

/* An escaped overlay name in a layer shows unescaped, as on the kernel:
 * "user.overlay.overlay.k" is the user's "user.overlay.k". */
static void test_xattrs_escaped_names(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *f;
	char buf[256];
	ssize_t n;

	ut_lwrite(fx, 0, "f", "data");
	ut_lsetxattr(fx, 0, "f", "user.overlay.overlay.k", "esc");
	ut_lsetxattr(fx, 0, "f", "user.overlay.whiteout", "");
	fs = ut_fx_open(fx, 1);
	f = lk(fs, fs->root, "f", NULL);
	n = strata_listxattr(fs, f, buf, sizeof(buf));
	assert_int_equal(n, sizeof("user.overlay.k"));
	assert_memory_equal(buf, "user.overlay.k", sizeof("user.overlay.k"));
	n = strata_getxattr(fs, f, "user.overlay.k", buf, sizeof(buf));
	assert_int_equal(n, 3);
	assert_memory_equal(buf, "esc", 3);
	/* the marker itself stays invisible */
	assert_int_equal(strata_getxattr(fs, f, "user.overlay.whiteout", buf,
					 sizeof(buf)),
			 -ENODATA);
	strata_inode_unref(fs, f, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_xattrs_escaped_names),
		T(test_fs_open_basic),
		T(test_fs_open_nonexistent),
		T(test_fs_open_file_as_layer),
		T(test_fs_open_no_layers),
		T(test_fs_open_paths_canonical),
		T(test_fs_open_timeout_debug),
		T(test_top_file_wins),
		T(test_lower_file_shows),
		T(test_symlink_not_followed),
		T(test_xattr_whiteout_hides_lower),
		T(test_xattr_whiteout_nonempty_is_file),
		T(test_xattr_whiteout_without_x_kernel_semantics),
		T(test_aufs_whiteout_hides_lower),
		T(test_aufs_whiteout_below_ignored),
		T(test_root_chardev_whiteout_hides_lower),
		T(test_root_trusted_xattr_whiteout),
		T(test_dir_merge),
		T(test_dir_merge_skips_missing_layers),
		T(test_opaque_dir_stops_stack),
		T(test_opaque_dir_hides_lower_children),
		T(test_nondir_in_middle_stops_merge),
		T(test_dir_over_file),
		T(test_file_over_dir),
		T(test_nested_lookup),
		T(test_aufs_whiteout_beside_dir_stops_merge),
		T(test_marker_names_never_resolve),
		T(test_name_too_long),
		T(test_readdir_root_snapshot),
		T(test_readdir_opaque_x_dir),
		T(test_readdir_not_a_dir),
		T(test_xattrs_hide_private_names),
	};

	return UT_RUN_GROUP("lookup", tests, NULL, NULL);
}
