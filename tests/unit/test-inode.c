// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of inode.c (stacks, the inode table, reference counts) and
 * attr.c (inode numbers, stat fix-ups), first on a synthetic table, then
 * through lookups on real layers under /tmp.
 */
#include <malloc.h>

#include "unit-util.h"

#define FX(state) ((struct ut_fx *)*(state))
#define T(name) cmocka_unit_test_setup_teardown(name, ut_fx_setup, ut_fx_teardown)

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

/* A table with a hand-made root (no layers, no fds). */
static void synth_init(struct strata_fs *fs)
{
	struct strata_inode *root = strata_inode_new(S_IFDIR);

	memset(fs, 0, sizeof(*fs));
	fs->n_devs = 1;
	strata_table_init(fs);
	root->ino = 1000;
	root->ik.key = 1000;
	root->name = g_strdup("");
	root->stack = strata_stack_new(0);
	g_hash_table_insert(fs->inodes, &root->ik, root);
	fs->root = root;
}

/* ------------------------------------------------------------------ */
/* stacks */

static void test_stack_new_ref_unref(void **state)
{
	struct strata_stack *s = strata_stack_new(3);
	int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);

	assert_non_null(s);
	assert_int_equal(s->n, 3);
	assert_int_equal(s->refs, 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(s->e[i].fd, -1);
	s->e[1].fd = fd;
	assert_ptr_equal(strata_stack_ref(s), s);
	assert_int_equal(s->refs, 2);
	strata_stack_unref(s);
	/* still open: one reference left */
	assert_int_equal(fcntl(fd, F_GETFD), FD_CLOEXEC);
	strata_stack_unref(s);
	/* the last reference closed the descriptor */
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
	strata_stack_unref(NULL);
}

static void test_stack_find(void **state)
{
	struct strata_stack *s = strata_stack_new(4);
	static const uint32_t layers[] = { 0, 2, 5, 9 };

	for (int i = 0; i < 4; i++)
		s->e[i].layer = layers[i];
	for (int i = 0; i < 4; i++)
		assert_ptr_equal(strata_stack_find(s, layers[i]), &s->e[i]);
	assert_null(strata_stack_find(s, 1));
	assert_null(strata_stack_find(s, 3));
	assert_null(strata_stack_find(s, 6));
	assert_null(strata_stack_find(s, 10));
	strata_stack_unref(s);

	s = strata_stack_new(0);
	assert_null(strata_stack_find(s, 0));
	strata_stack_unref(s);

	s = strata_stack_new(1);
	s->e[0].layer = 7;
	assert_ptr_equal(strata_stack_find(s, 7), &s->e[0]);
	assert_null(strata_stack_find(s, 0));
	strata_stack_unref(s);
}

/* ------------------------------------------------------------------ */
/* the table, synthetic */

static void test_inode_get_new_and_existing(void **state)
{
	struct strata_fs fs;
	struct strata_inode *a, *a2, *b;

	synth_init(&fs);
	assert_int_equal(strata_table_size(&fs), 1);

	a = strata_inode_get(&fs, 42, 42, S_IFREG | 0644, fs.root, "a", 1, NULL);
	assert_non_null(a);
	assert_int_equal(a->ino, 42);
	assert_int_equal(a->type, S_IFREG); /* permission bits dropped */
	assert_int_equal(ut_refs(a), 1);
	assert_ptr_equal(a->parent, fs.root);
	assert_string_equal(a->name, "a");
	assert_int_equal(a->layer, 1);
	assert_null(a->stack);
	assert_int_equal(ut_refs(fs.root), 2); /* the child's reference */
	assert_int_equal(strata_table_size(&fs), 2);

	/* same number and type: the same inode, one more reference, and
	 * the stack passed in is consumed */
	a2 = strata_inode_get(&fs, 42, 42, S_IFREG, fs.root, "other", 0,
			      strata_stack_new(2));
	assert_ptr_equal(a2, a);
	assert_int_equal(ut_refs(a), 2);
	assert_string_equal(a->name, "a");
	assert_int_equal(ut_refs(fs.root), 2);
	assert_int_equal(strata_table_size(&fs), 2);

	b = strata_inode_get(&fs, 43, 43, S_IFDIR | 0755, fs.root, "b", 0,
			     strata_stack_new(1));
	assert_ptr_not_equal(b, a);
	assert_non_null(b->stack);
	assert_int_equal(b->stack->n, 1);
	assert_int_equal(ut_refs(fs.root), 3);
	assert_int_equal(strata_table_size(&fs), 3);

	strata_inode_unref(&fs, a, 1);
	assert_int_equal(ut_refs(a), 1);
	assert_int_equal(strata_table_size(&fs), 3);
	strata_inode_unref(&fs, a, 1);
	assert_int_equal(strata_table_size(&fs), 2);
	assert_int_equal(ut_refs(fs.root), 2);
	strata_inode_unref(&fs, b, 1);
	assert_int_equal(strata_table_size(&fs), 1);
	assert_int_equal(ut_refs(fs.root), 1);
	strata_table_destroy(&fs);
	assert_null(fs.inodes);
}

/* Most of the table is files: they do not carry what only a directory
 * needs (a walk of 51,000 files: peak RSS 17.2 -> 12.0 MiB). */
static void test_inode_file_is_compact(void **state)
{
	size_t with_dir = sizeof(struct strata_inode) +
			  sizeof(struct strata_dirpart);
	struct strata_fs fs;
	struct strata_inode *f, *d;

	synth_init(&fs);
	f = strata_inode_get(&fs, 50, 50, S_IFREG, fs.root, "f", 1, NULL);
	d = strata_inode_get(&fs, 51, 51, S_IFDIR, fs.root, "d", 1,
			     strata_stack_new(1));
	assert_true(sizeof(struct strata_inode) <= 112);
	assert_true(malloc_usable_size(f) < with_dir);
	assert_true(malloc_usable_size(d) >= with_dir);
	/* the directory part is there, set up: its lock and counters */
	g_rw_lock_writer_lock(&strata_dirpart(d)->ns_lock);
	g_rw_lock_writer_unlock(&strata_dirpart(d)->ns_lock);
	assert_int_equal(strata_dirpart(d)->ns_version, 0);
	assert_null(strata_dirpart(d)->dcache);
	assert_int_equal(f->orphan_fd, -1);
	strata_inode_unref(&fs, f, 1);
	strata_inode_unref(&fs, d, 1);
	assert_int_equal(strata_table_size(&fs), 1);
	strata_table_destroy(&fs);
}

static void test_inode_unref_many(void **state)
{
	struct strata_fs fs;
	struct strata_inode *a;

	synth_init(&fs);
	a = strata_inode_get(&fs, 7, 7, S_IFREG, fs.root, "a", 0, NULL);
	strata_inode_ref(a, 4);
	assert_int_equal(ut_refs(a), 5);
	strata_inode_unref(&fs, a, 3);
	assert_int_equal(ut_refs(a), 2);
	assert_int_equal(strata_table_size(&fs), 2);
	/* a forget of all remaining lookups at once */
	strata_inode_unref(&fs, a, 2);
	assert_int_equal(strata_table_size(&fs), 1);
	assert_int_equal(ut_refs(fs.root), 1);
	strata_table_destroy(&fs);
}

static void test_inode_unref_cascades_to_parents(void **state)
{
	struct strata_fs fs;
	struct strata_inode *d, *e, *f;

	synth_init(&fs);
	d = strata_inode_get(&fs, 10, 10, S_IFDIR, fs.root, "d", 0,
			     strata_stack_new(0));
	e = strata_inode_get(&fs, 11, 11, S_IFDIR, d, "e", 0, strata_stack_new(0));
	f = strata_inode_get(&fs, 12, 12, S_IFREG, e, "f", 0, NULL);
	assert_int_equal(strata_table_size(&fs), 4);
	/* the kernel forgets d and e first: the children keep them */
	strata_inode_unref(&fs, d, 1);
	strata_inode_unref(&fs, e, 1);
	assert_int_equal(strata_table_size(&fs), 4);
	assert_int_equal(ut_refs(d), 1);
	assert_int_equal(ut_refs(e), 1);
	/* forgetting the leaf frees the whole chain, but not the root */
	strata_inode_unref(&fs, f, 1);
	assert_int_equal(strata_table_size(&fs), 1);
	assert_int_equal(ut_refs(fs.root), 1);
	strata_table_destroy(&fs);
}

static void test_inode_root_never_freed(void **state)
{
	struct strata_fs fs;
	struct strata_inode *root;

	synth_init(&fs);
	root = fs.root;
	strata_inode_unref(&fs, root, 1);
	assert_int_equal(strata_table_size(&fs), 1);
	assert_ptr_equal(fs.root, root);
	assert_int_equal(ut_refs(root), 0);
	/* and it is found again by number */
	assert_ptr_equal(strata_inode_get(&fs, 1000, 1000, S_IFDIR, NULL, "", 0,
					  NULL),
			 root);
	assert_int_equal(ut_refs(root), 1);
	strata_table_destroy(&fs);
}

static void test_inode_get_type_mismatch(void **state)
{
	struct strata_fs fs;
	struct strata_inode *a, *b;

	synth_init(&fs);
	a = strata_inode_get(&fs, 5, 5, S_IFREG, fs.root, "a", 0, NULL);
	b = strata_inode_get(&fs, 5, 5, S_IFLNK, fs.root, "a", 0, NULL);
	assert_ptr_not_equal(a, b);
	assert_int_equal(b->type, S_IFLNK);
	assert_int_equal(strata_table_size(&fs), 2);
	/* the stale one is unreachable by number but still freed by its
	 * last reference, without removing its successor */
	strata_inode_unref(&fs, a, 1);
	assert_int_equal(strata_table_size(&fs), 2);
	assert_ptr_equal(strata_inode_get(&fs, 5, 5, S_IFLNK, fs.root, "a", 0,
					  NULL),
			 b);
	strata_inode_unref(&fs, b, 2);
	assert_int_equal(strata_table_size(&fs), 1);
	assert_int_equal(ut_refs(fs.root), 1);
	strata_table_destroy(&fs);
}

static void test_table_destroy_frees_all(void **state)
{
	struct strata_fs fs;
	struct strata_inode *d;

	synth_init(&fs);
	d = strata_inode_get(&fs, 10, 10, S_IFDIR, fs.root, "d", 0,
			     strata_stack_new(0));
	strata_inode_get(&fs, 11, 11, S_IFREG, d, "x", 0, NULL);
	strata_inode_get(&fs, 12, 12, S_IFREG, fs.root, "y", 0, NULL);
	/* valgrind checks that this frees everything */
	strata_table_destroy(&fs);
	assert_null(fs.inodes);
	strata_table_destroy(&fs); /* idempotent */
}

static void test_inode_stack_ref(void **state)
{
	struct strata_fs fs;
	struct strata_inode *f;
	struct strata_stack *s;

	synth_init(&fs);
	s = strata_inode_stack(fs.root);
	assert_ptr_equal(s, fs.root->stack);
	assert_int_equal(s->refs, 2);
	strata_stack_unref(s);
	assert_int_equal(fs.root->stack->refs, 1);
	f = strata_inode_get(&fs, 8, 8, S_IFREG, fs.root, "f", 0, NULL);
	assert_null(strata_inode_stack(f));
	strata_inode_unref(&fs, f, 1);
	strata_table_destroy(&fs);
}

/* ------------------------------------------------------------------ */
/* attr.c, synthetic */

static void test_map_ino(void **state)
{
	struct strata_layer ls[3] = {
		{ .fd = -1, .fsidx = 0 },
		{ .fd = -1, .fsidx = 1 },
		{ .fd = -1, .fsidx = 2 },
	};
	struct strata_fs one = { .layers = ls, .n_layers = 3, .n_devs = 1,
				 .ino_shift = 63 };
	struct strata_fs two = { .layers = ls, .n_layers = 2, .n_devs = 2,
				 .ino_shift = 63 };
	struct strata_fs three = { .layers = ls, .n_layers = 3, .n_devs = 3,
				   .ino_shift = 62 };

	/* one filesystem: unchanged, all 64 bits */
	assert_int_equal(strata_map_ino(&one, 0, 123), 123);
	assert_int_equal(strata_map_ino(&one, 2, UINT64_MAX), UINT64_MAX);
	/* several: the fs index in the top bits */
	assert_int_equal(strata_map_ino(&two, 0, 123), 123);
	assert_int_equal(strata_map_ino(&two, 1, 123),
			 123 | (UINT64_C(1) << 63));
	assert_int_equal(strata_map_ino(&three, 2, 5), 5 | (UINT64_C(2) << 62));
	assert_int_equal(strata_map_ino(&three, 1, 5), 5 | (UINT64_C(1) << 62));
	/* high bits of the real number are dropped, not mixed in */
	assert_int_equal(strata_map_ino(&two, 0, UINT64_MAX),
			 UINT64_MAX >> 1);
}

static void test_fix_stat(void **state)
{
	struct strata_fs fs = { .squash_uid = -1, .squash_gid = -1 };
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFDIR | 0755;
	st.st_nlink = 5;
	st.st_ino = 77;
	strata_fix_stat(&fs, &st, 78, 1);
	assert_int_equal(st.st_nlink, 5);
	assert_int_equal(st.st_ino, 78); /* the shown number replaces it */
	strata_fix_stat(&fs, &st, 78, 2);
	assert_int_equal(st.st_nlink, 1);

	st.st_mode = S_IFREG | 0644;
	st.st_nlink = 3;
	strata_fix_stat(&fs, &st, 78, 2);
	assert_int_equal(st.st_nlink, 3); /* hardlink count kept */
}

/* ------------------------------------------------------------------ */
/* real layers */

static void test_hardlinks_share_inode(void **state)
{
	struct ut_fx *fx = FX(state);
	g_autofree char *a = ut_lp(fx, 0, "a");
	g_autofree char *b = ut_lp(fx, 0, "b");
	struct strata_fs *fs;
	struct strata_inode *ia, *ib;
	struct stat sa, sb;

	ut_write(a, "shared");
	UT_CHECK(link(a, b) == 0);
	ut_lwrite(fx, 1, "b", "lower b");
	fs = ut_fx_open(fx, 2);
	ia = lk(fs, fs->root, "a", &sa);
	assert_int_equal(ut_refs(ia), 1);
	assert_int_equal(ut_refs(fs->root), 2);
	ib = lk(fs, fs->root, "b", &sb);
	assert_ptr_equal(ib, ia);
	assert_int_equal(ut_refs(ia), 2);
	assert_int_equal(ut_refs(fs->root), 2);
	assert_int_equal(sa.st_ino, sb.st_ino);
	assert_int_equal(sa.st_nlink, 2);
	assert_int_equal(strata_table_size(fs), 2);

	strata_inode_unref(fs, ia, 2);
	assert_int_equal(strata_table_size(fs), 1);
	assert_int_equal(ut_refs(fs->root), 1);
}

static void test_lookup_twice_same_inode(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *d1, *d2, *f1, *f2;

	ut_lmkdir(fx, 0, "d");
	ut_lmkdir(fx, 1, "d");
	ut_lwrite(fx, 1, "d/f", "x");
	fs = ut_fx_open(fx, 2);
	d1 = lk(fs, fs->root, "d", NULL);
	d2 = lk(fs, fs->root, "d", NULL);
	assert_ptr_equal(d1, d2);
	assert_int_equal(ut_refs(d1), 2);
	f1 = lk(fs, d1, "f", NULL);
	f2 = lk(fs, d2, "f", NULL);
	assert_ptr_equal(f1, f2);
	assert_int_equal(ut_refs(f1), 2);
	assert_int_equal(ut_refs(d1), 3); /* two lookups + the child */
	assert_int_equal(strata_table_size(fs), 3);

	strata_inode_unref(fs, d1, 2);
	assert_int_equal(strata_table_size(fs), 3); /* f keeps d */
	strata_inode_unref(fs, f1, 1);
	assert_int_equal(strata_table_size(fs), 3);
	strata_inode_unref(fs, f1, 1);
	assert_int_equal(strata_table_size(fs), 1);
	assert_int_equal(ut_refs(fs->root), 1);
}

static void test_unref_frees_but_root_stays(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *root, *f;

	ut_lwrite(fx, 0, "f", "x");
	fs = ut_fx_open(fx, 1);
	root = fs->root;
	f = lk(fs, root, "f", NULL);
	assert_int_equal(strata_table_size(fs), 2);
	strata_inode_unref(fs, f, 1);
	assert_int_equal(strata_table_size(fs), 1);
	assert_ptr_equal(fs->root, root);
	/* the kernel's forget of the root itself frees nothing */
	strata_inode_unref(fs, root, 1);
	assert_int_equal(strata_table_size(fs), 1);
	assert_ptr_equal(fs->root, root);
	/* and it keeps working */
	f = lk(fs, root, "f", NULL);
	assert_int_equal(strata_table_size(fs), 2);
	strata_inode_unref(fs, f, 1);
	assert_int_equal(strata_table_size(fs), 1);
}

static void test_st_ino_is_real(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *f, *d, *g;
	struct stat st;

	ut_lwrite(fx, 1, "f", "x");
	ut_lmkdir(fx, 1, "d");
	ut_lmkdir(fx, 2, "d");
	ut_lwrite(fx, 2, "d/g", "x");
	fs = ut_fx_open(fx, 3);
	assert_int_equal(fs->n_devs, 1);
	assert_int_equal(fs->root->ino, ut_ino(fx->l[0]));

	f = lk(fs, fs->root, "f", &st);
	assert_int_equal(st.st_ino, ut_lino(fx, 1, "f"));
	assert_int_equal(f->ino, st.st_ino);
	d = lk(fs, fs->root, "d", &st);
	assert_int_equal(st.st_ino, ut_lino(fx, 1, "d"));
	assert_int_equal(d->ino, st.st_ino);
	g = lk(fs, d, "g", &st);
	assert_int_equal(st.st_ino, ut_lino(fx, 2, "d/g"));
	assert_int_equal(g->ino, st.st_ino);
	strata_inode_unref(fs, g, 1);
	strata_inode_unref(fs, d, 1);
	strata_inode_unref(fs, f, 1);
}

static void test_getattr(void **state)
{
	struct ut_fx *fx = FX(state);
	g_autofree char *fp = NULL;
	struct strata_fs *fs;
	struct strata_inode *f, *d, *e;
	struct stat st, real;

	ut_lwrite(fx, 1, "f", "12345");
	ut_lmkdir(fx, 0, "d");
	ut_lmkdir(fx, 1, "d/sub");
	ut_lmkdir(fx, 1, "e/sub");
	fs = ut_fx_open(fx, 2);

	f = lk(fs, fs->root, "f", NULL);
	fp = ut_lp(fx, 1, "f");
	UT_CHECK(lstat(fp, &real) == 0);
	assert_int_equal(strata_getattr(fs, f, &st), 0);
	assert_int_equal(st.st_ino, real.st_ino);
	assert_int_equal(st.st_size, 5);
	assert_int_equal(st.st_mode, real.st_mode);
	assert_int_equal(st.st_nlink, 1);

	d = lk(fs, fs->root, "d", NULL);
	assert_int_equal(strata_getattr(fs, d, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_ino, ut_lino(fx, 0, "d"));
	assert_int_equal(st.st_nlink, 1); /* merged */

	e = lk(fs, fs->root, "e", NULL);
	assert_int_equal(strata_getattr(fs, e, &st), 0);
	assert_int_equal(st.st_nlink, 3); /* single: real */

	assert_int_equal(strata_getattr(fs, fs->root, &st), 0);
	assert_int_equal(st.st_ino, fs->root->ino);
	assert_int_equal(st.st_nlink, 1); /* merged from two roots */

	strata_inode_unref(fs, e, 1);
	strata_inode_unref(fs, d, 1);
	strata_inode_unref(fs, f, 1);
}

static void test_getattr_single_root(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct stat st;

	ut_lmkdir(fx, 0, "a");
	fs = ut_fx_open(fx, 1);
	assert_int_equal(strata_getattr(fs, fs->root, &st), 0);
	assert_int_equal(st.st_nlink, 3);
}

static void test_inode_where(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_fs *fs;
	struct strata_inode *d, *f;
	struct strata_stack *s = NULL;
	char *name = NULL;
	uint32_t layer = 99;
	int dirfd = -1;
	struct stat st, real;
	g_autofree char *rp = NULL;

	ut_lmkdir(fx, 0, "d");
	ut_lmkdir(fx, 2, "d");
	ut_lwrite(fx, 2, "d/f", "x");
	fs = ut_fx_open(fx, 3);
	d = lk(fs, fs->root, "d", NULL);
	f = lk(fs, d, "f", NULL);
	assert_int_equal(strata_inode_where(fs, f, &s, &dirfd, &name, &layer),
			 0);
	assert_string_equal(name, "f");
	assert_int_equal(layer, 2);
	assert_ptr_equal(s, d->stack);
	assert_int_equal(fstatat(dirfd, "", &st, AT_EMPTY_PATH), 0);
	rp = ut_lp(fx, 2, "d");
	UT_CHECK(stat(rp, &real) == 0);
	assert_int_equal(st.st_ino, real.st_ino);
	strata_stack_unref(s);
	g_free(name);
	/* the root has no parent */
	assert_int_equal(strata_inode_where(fs, fs->root, &s, &dirfd, &name,
					    &layer),
			 -EINVAL);
	strata_inode_unref(fs, f, 1);
	strata_inode_unref(fs, d, 1);
}

static void test_two_filesystems(void **state)
{
	/* /dev/shm is a tmpfs, /tmp is not (on this kind of test host):
	 * inode numbers get the filesystem index in the top bit */
	struct ut_fx *fx = FX(state);
	char shm[] = "/dev/shm/stratafs-unit-XXXXXX";
	struct stat s1, s2;
	g_autofree char *f = NULL;
	g_autofree char *err = NULL;
	char *dirs[3];
	struct strata_inode *in;
	struct stat st;
	int r;

	if (mkdtemp(shm) == NULL) {
		print_message("# no /dev/shm\n");
		skip();
	}
	UT_CHECK(stat(shm, &s1) == 0 && stat(fx->l[0], &s2) == 0);
	if (s1.st_dev == s2.st_dev) {
		rmdir(shm);
		print_message("# /dev/shm and /tmp on one filesystem\n");
		skip();
	}
	f = ut_path("%s/f", shm);
	ut_write(f, "x");
	dirs[0] = fx->l[0];
	dirs[1] = shm;
	dirs[2] = fx->l[1];
	r = ut_fs_open_v(&fx->fs, dirs, 3, &err);
	fx->open = true;
	if (r == 0) {
		assert_int_equal(fx->fs.n_devs, 2);
		assert_int_equal(fx->fs.layers[0].fsidx, 0);
		assert_int_equal(fx->fs.layers[1].fsidx, 1);
		assert_int_equal(fx->fs.layers[2].fsidx, 0);
		assert_int_equal(fx->fs.ino_shift, 63);
		r = strata_lookup(&fx->fs, fx->fs.root, "f", &in, &st);
		if (r == 0) {
			assert_int_equal(st.st_ino, (uint64_t)ut_ino(f) |
							    (UINT64_C(1) << 63));
			assert_int_equal(in->ino, st.st_ino);
			strata_inode_unref(&fx->fs, in, 1);
		}
	}
	unlink(f);
	rmdir(shm);
	assert_int_equal(r, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stack_new_ref_unref),
		cmocka_unit_test(test_stack_find),
		cmocka_unit_test(test_inode_get_new_and_existing),
		cmocka_unit_test(test_inode_file_is_compact),
		cmocka_unit_test(test_inode_unref_many),
		cmocka_unit_test(test_inode_unref_cascades_to_parents),
		cmocka_unit_test(test_inode_root_never_freed),
		cmocka_unit_test(test_inode_get_type_mismatch),
		cmocka_unit_test(test_table_destroy_frees_all),
		cmocka_unit_test(test_inode_stack_ref),
		cmocka_unit_test(test_map_ino),
		cmocka_unit_test(test_fix_stat),
		T(test_hardlinks_share_inode),
		T(test_lookup_twice_same_inode),
		T(test_unref_frees_but_root_stays),
		T(test_st_ino_is_real),
		T(test_getattr),
		T(test_getattr_single_root),
		T(test_inode_where),
		T(test_two_filesystems),
	};

	return UT_RUN_GROUP("inode", tests, NULL, NULL);
}
