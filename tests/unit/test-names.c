// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of names.c: the per-directory name indexes that let a
 * lookup skip lower layers that do not hold the name.  An index must
 * never change an answer, only the number of system calls: every test
 * here checks resolutions against the expected ones, with and without
 * indexes in place.
 */
#include "unit-util.h"

#define FX(state) ((struct ut_fx *)*(state))
#define T(name) cmocka_unit_test_setup_teardown(name, ut_fx_setup, ut_fx_teardown)

static int lk_err(struct strata_fs *fs, struct strata_inode *dir,
		  const char *name, struct stat *st)
{
	struct strata_inode *in = NULL;
	struct stat dummy;
	int r = strata_lookup(fs, dir, name, &in, st ? st : &dummy);

	if (r == 0)
		strata_inode_unref(fs, in, 1);
	return r;
}

static struct strata_inode *lk_dir(struct strata_fs *fs,
				   struct strata_inode *dir, const char *name)
{
	struct strata_inode *in = NULL;
	struct stat st;

	assert_int_equal(strata_lookup(fs, dir, name, &in, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	return in;
}

static void test_hash(void **state)
{
	(void)state;
	assert_int_equal(strata_name_hash("abc", 3), strata_name_hash("abc", 3));
	assert_int_not_equal(strata_name_hash("abc", 3),
			     strata_name_hash("abd", 3));
	assert_int_not_equal(strata_name_hash("ab", 2),
			     strata_name_hash("abc", 3));
	/* the length counts, not a terminating NUL */
	assert_int_equal(strata_name_hash("abcdef", 3),
			 strata_name_hash("abc", 3));
}

/* Files in the bottom of three layers; the two above hold the directory
 * but not the names: after enough fruitless probes both are indexed,
 * the bottom (where every probe succeeds) is not, and answers stay. */
static void test_index_after_misses(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_inode *d;
	struct strata_fs *fs;
	struct stat st;
	char name[32];

	ut_lmkdir(fx, 0, "d");
	ut_lmkdir(fx, 1, "d");
	ut_lmkdir(fx, 2, "d");
	for (int i = 0; i < 400; i++) {
		g_autofree char *p = NULL;

		snprintf(name, sizeof(name), "d/f%03d", i);
		p = ut_lp(fx, 2, name);
		ut_write(p, "bottom");
	}
	ut_lwrite(fx, 0, "d/top", "top");
	fs = ut_fx_open(fx, 3);
	d = lk_dir(fs, fs->root, "d");
	assert_int_equal(strata_dcache_indexed(strata_dirpart(d)->dcache), 0);
	for (int i = 0; i < 400; i++) {
		snprintf(name, sizeof(name), "f%03d", i);
		assert_int_equal(lk_err(fs, d, name, &st), 0);
		assert_int_equal(st.st_size, 6);
	}
	/* layers 0 and 1 paid (a one-block directory's budget is small) */
	assert_int_equal(strata_dcache_indexed(strata_dirpart(d)->dcache), 2);
	/* indexed layers still answer for what they hold */
	assert_int_equal(lk_err(fs, d, "top", &st), 0);
	assert_int_equal(st.st_size, 3);
	assert_int_equal(lk_err(fs, d, "f399", &st), 0);
	assert_int_equal(lk_err(fs, d, "nope", NULL), -ENOENT);
	strata_inode_unref(fs, d, 1);
}

/* A directory looked up a few times only is never listed. */
static void test_few_lookups_no_index(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_inode *d;
	struct strata_fs *fs;

	ut_lmkdir(fx, 0, "d");
	ut_lmkdir(fx, 1, "d");
	ut_lwrite(fx, 1, "d/f", "x");
	fs = ut_fx_open(fx, 2);
	d = lk_dir(fs, fs->root, "d");
	for (int i = 0; i < 4; i++)
		assert_int_equal(lk_err(fs, d, "f", NULL), 0);
	assert_int_equal(strata_dcache_indexed(strata_dirpart(d)->dcache), 0);
	strata_inode_unref(fs, d, 1);
}

/* d in three layers: "gone" in the two lower ones under an AUFS
 * whiteout in the top one, "mid" in the two lower ones, "low" in the
 * bottom one. */
static void gone_mid_low(struct ut_fx *fx)
{
	ut_lmkdir(fx, 0, "d");
	ut_lmkdir(fx, 1, "d");
	ut_lmkdir(fx, 2, "d");
	ut_lwrite(fx, 0, "d/.wh.gone", "");
	ut_lwrite(fx, 1, "d/gone", "mid");
	ut_lwrite(fx, 2, "d/gone", "bottom");
	ut_lwrite(fx, 1, "d/mid", "mid");
	ut_lwrite(fx, 2, "d/mid", "bottom");
	ut_lwrite(fx, 2, "d/low", "bottom");
}

/* A readdir indexes every lower layer at once; an AUFS ".wh.X" in an
 * indexed layer still hides X below it, and a name present in an
 * indexed layer is still found there. */
static void test_readdir_feeds_index(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_dirsnap *snap = NULL;
	struct strata_inode *d;
	struct strata_fs *fs;
	struct stat st;

	gone_mid_low(fx);
	fs = ut_fx_open(fx, 3);
	d = lk_dir(fs, fs->root, "d");
	assert_int_equal(strata_readdir_snapshot(fs, d, &snap), 0);
	strata_dirsnap_free(snap);
	assert_int_equal(strata_dcache_indexed(strata_dirpart(d)->dcache), 3);
	assert_int_equal(lk_err(fs, d, "gone", NULL), -ENOENT);
	assert_int_equal(lk_err(fs, d, "mid", &st), 0);
	assert_int_equal(st.st_size, 3);
	assert_int_equal(lk_err(fs, d, "low", &st), 0);
	assert_int_equal(st.st_size, 6);
	assert_int_equal(lk_err(fs, d, "absent", NULL), -ENOENT);
	strata_inode_unref(fs, d, 1);
}

/* The same tree resolved before and after indexing gives the same
 * answers for every name, present or not, in every combination of the
 * three layers. */
static void test_same_answers(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_dirsnap *snap = NULL;
	struct strata_inode *d;
	struct strata_fs *fs;
	int before[64][2], after[64][2];
	struct stat st;
	char name[32];

	for (int l = 0; l < 3; l++)
		ut_lmkdir(fx, l, "d");
	/* name n%d lives in the layers of the bits of its number; bit 3
	 * adds an AUFS whiteout in layer 1 */
	for (int i = 0; i < 16; i++) {
		for (int l = 0; l < 3; l++) {
			g_autofree char *rel = NULL;

			if (!(i & (1 << l)))
				continue;
			rel = g_strdup_printf("d/n%d", i);
			ut_lwrite(fx, l, rel, l == 0 ? "a" : l == 1 ? "bb" : "ccc");
		}
		if (i & 8) {
			g_autofree char *rel = g_strdup_printf("d/.wh.n%d", i);

			ut_lwrite(fx, 1, rel, "");
		}
	}
	fs = ut_fx_open(fx, 3);
	d = lk_dir(fs, fs->root, "d");
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		before[i][0] = lk_err(fs, d, name, &st);
		before[i][1] = before[i][0] == 0 ? (int)st.st_size : -1;
	}
	assert_int_equal(strata_readdir_snapshot(fs, d, &snap), 0);
	strata_dirsnap_free(snap);
	assert_int_equal(strata_dcache_indexed(strata_dirpart(d)->dcache), 3);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		after[i][0] = lk_err(fs, d, name, &st);
		after[i][1] = after[i][0] == 0 ? (int)st.st_size : -1;
		assert_int_equal(before[i][0], after[i][0]);
		assert_int_equal(before[i][1], after[i][1]);
	}
	/* spot checks of the expected answers themselves */
	assert_int_equal(after[0][0], -ENOENT);	 /* nowhere */
	assert_int_equal(after[4][1], 3);	 /* bottom only */
	assert_int_equal(after[6][1], 2);	 /* middle wins */
	assert_int_equal(after[12][0], -ENOENT); /* .wh. in 1 hides 2 */
	assert_int_equal(after[13][1], 1);	 /* top beats the marker */
	strata_inode_unref(fs, d, 1);
}

/* The upper layer changes under our own operations: never indexed. */
static void test_upper_never_indexed(void **state)
{
	struct strata_fs fs = { .has_upper = true };
	struct strata_inode *dir = strata_inode_new(S_IFDIR);
	struct strata_stack *s = strata_stack_new(3);
	struct strata_dcache *dc;
	struct strata_raw_dirent raw[] = { { .name = "x" } };
	uint32_t cur = 0;

	(void)state;
	for (uint32_t i = 0; i < 3; i++) {
		s->e[i].layer = i;
		s->e[i].fd = -1;
	}
	dc = strata_dcache_get(&fs, dir, s);
	assert_non_null(dc);
	assert_ptr_equal(dc, strata_dirpart(dir)->dcache);
	assert_ptr_equal(strata_dcache_get(&fs, dir, s), dc);
	strata_dcache_feed(dc, 0, raw, 1);
	strata_dcache_feed(dc, 1, raw, 1);
	assert_int_equal(strata_dcache_indexed(dc), 1);
	/* layer 0: always probe; layer 1: only names it holds */
	assert_true(strata_dcache_may_have(dc, &cur, 0,
					   strata_name_hash("y", 1)));
	assert_true(strata_dcache_may_have(dc, &cur, 1,
					   strata_name_hash("x", 1)));
	cur = 0;
	assert_false(strata_dcache_may_have(dc, &cur, 1,
					    strata_name_hash("y", 1)));
	/* layer 2 not indexed yet */
	assert_true(strata_dcache_may_have(dc, &cur, 2,
					   strata_name_hash("y", 1)));
	strata_dcache_free(dc);
	strata_stack_unref(s);

	/* a stack of the upper alone has nothing to index */
	s = strata_stack_new(1);
	s->e[0].layer = 0;
	s->e[0].fd = -1;
	strata_dirpart(dir)->dcache = NULL;
	assert_null(strata_dcache_get(&fs, dir, s));
	strata_stack_unref(s);
	g_rw_lock_clear(&strata_dirpart(dir)->ns_lock);
	g_mutex_clear(&dir->lock);
	g_mutex_clear(&dir->cu_lock);
	g_free(dir);
}

static gint cmp_name_p(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of a snapshot, sorted and joined by spaces. */
static char *snap_names(struct strata_dirsnap *snap)
{
	g_autoptr(GPtrArray) v = g_ptr_array_new();

	for (guint i = 0; i < snap->ents->len; i++)
		g_ptr_array_add(v, g_array_index(snap->ents,
						 struct strata_dirent, i)
					   .name);
	g_ptr_array_sort(v, cmp_name_p);
	g_ptr_array_add(v, NULL);
	return g_strjoinv(" ", (char **)v->pdata);
}

/* A directory read twice keeps its lower directories read and merged:
 * the third listing comes from what the inode keeps (a name added to a
 * lower layer behind the mount's back does not show, as the lowers do
 * not change while mounted), with the same merge of whiteouts.  One read
 * keeps nothing (the kernel caches most listings itself). */
static void test_lower_listing_kept(void **state)
{
	struct ut_fx *fx = FX(state);
	struct strata_dirsnap *snap = NULL;
	g_autofree char *first = NULL, *second = NULL;
	struct strata_inode *d;
	struct strata_fs *fs;

	gone_mid_low(fx);
	fs = ut_fx_open(fx, 3);
	d = lk_dir(fs, fs->root, "d");
	assert_null(strata_dirpart(d)->lowerlist);
	assert_int_equal(strata_readdir_snapshot(fs, d, &snap), 0);
	first = snap_names(snap);
	strata_dirsnap_free(snap);
	assert_null(strata_dirpart(d)->lowerlist);
	assert_string_equal(first, ". .. low mid");
	assert_int_equal(strata_readdir_snapshot(fs, d, &snap), 0);
	strata_dirsnap_free(snap);
	assert_non_null(strata_dirpart(d)->lowerlist);
	ut_lwrite(fx, 2, "d/later", "x");
	assert_int_equal(strata_readdir_snapshot(fs, d, &snap), 0);
	second = snap_names(snap);
	strata_dirsnap_free(snap);
	assert_string_equal(second, first);
	strata_inode_unref(fs, d, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash),
		T(test_index_after_misses),
		T(test_few_lookups_no_index),
		T(test_readdir_feeds_index),
		T(test_same_answers),
		T(test_lower_listing_kept),
		cmocka_unit_test(test_upper_never_indexed),
	};

	return UT_RUN_GROUP("names", tests, NULL, NULL);
}
