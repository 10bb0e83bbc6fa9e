// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of the pure parts of readdir.c (strata_merge_listings) and
 * xattr.c (strata_filter_xattr_list): hand-built inputs, no filesystem.
 */
#include "unit-util.h"

/* A filesystem whose layers all live on one device: inode numbers are
 * shown as they are. */
static const struct strata_fs one_dev_fs = { .n_devs = 1 };
static const uint32_t layer_ids[] = { 0, 1, 2, 3 };

#define RAW(n, i, t) { .name = (n), .ino = (i), .type = (t) }
#define WHT(n, i) { .name = (n), .ino = (i), .type = DT_CHR, .whiteout = true }
#define LAYER(arr) (arr), G_N_ELEMENTS(arr)

/* Merge up to 4 layers given as (array, count) pairs. */
static struct strata_dirsnap *merge(const struct strata_fs *fs, uint32_t nl,
				    ...)
{
	struct strata_raw_dirent *raw[4];
	size_t n[4];
	va_list ap;

	assert_true(nl <= 4);
	va_start(ap, nl);
	for (uint32_t i = 0; i < nl; i++) {
		raw[i] = va_arg(ap, struct strata_raw_dirent *);
		n[i] = va_arg(ap, size_t);
	}
	va_end(ap);
	return strata_merge_listings(fs, nl, layer_ids, raw, n);
}

static void assert_names(const struct strata_dirsnap *s, const char *want)
{
	g_autofree char *got = ut_snap_names(s, 0);

	assert_string_equal(got, want);
}

static void assert_entry(const struct strata_dirsnap *s, const char *name,
			 uint64_t ino, unsigned char type)
{
	const struct strata_dirent *d = ut_snap_find(s, name);

	if (d == NULL)
		fail_msg("'%s' missing from the listing", name);
	assert_int_equal(d->ino, ino);
	assert_int_equal(d->type, type);
}

/* ------------------------------------------------------------------ */
/* strata_merge_listings */

static void test_merge_single_layer(void **state)
{
	struct strata_raw_dirent l0[] = {
		RAW(".", 2, DT_DIR), RAW("..", 2, DT_DIR), RAW("a", 10, DT_REG),
		RAW("b", 11, DT_DIR), RAW("c", 12, DT_LNK),
	};
	struct strata_dirsnap *s = merge(&one_dev_fs, 1, LAYER(l0));

	assert_names(s, "a,b,c");
	assert_entry(s, "a", 10, DT_REG);
	assert_entry(s, "b", 11, DT_DIR);
	assert_entry(s, "c", 12, DT_LNK);
	strata_dirsnap_free(s);
}

static void test_merge_empty(void **state)
{
	struct strata_raw_dirent l0[] = { RAW(".", 2, DT_DIR),
					   RAW("..", 2, DT_DIR) };
	struct strata_dirsnap *s = merge(&one_dev_fs, 2, LAYER(l0), l0,
					 (size_t)0);

	assert_non_null(s);
	assert_int_equal(s->ents->len, 0);
	strata_dirsnap_free(s);
	strata_dirsnap_free(NULL);
}

static void test_merge_topmost_wins(void **state)
{
	struct strata_raw_dirent l0[] = { RAW("shared", 100, DT_REG),
					  RAW("top", 101, DT_REG) };
	struct strata_raw_dirent l1[] = { RAW("shared", 200, DT_DIR),
					  RAW("mid", 201, DT_REG) };
	struct strata_raw_dirent l2[] = { RAW("mid", 300, DT_LNK),
					  RAW("shared", 301, DT_LNK),
					  RAW("bottom", 302, DT_FIFO) };
	struct strata_dirsnap *s =
		merge(&one_dev_fs, 3, LAYER(l0), LAYER(l1), LAYER(l2));

	assert_names(s, "shared,top,mid,bottom");
	assert_entry(s, "shared", 100, DT_REG);
	assert_entry(s, "top", 101, DT_REG);
	assert_entry(s, "mid", 201, DT_REG);
	assert_entry(s, "bottom", 302, DT_FIFO);
	strata_dirsnap_free(s);
}

static void test_merge_whiteout_hides_own_and_below(void **state)
{
	struct strata_raw_dirent l0[] = { RAW("keep", 1, DT_REG),
					  WHT("gone", 2) };
	struct strata_raw_dirent l1[] = { RAW("gone", 3, DT_REG),
					  WHT("gone2", 4),
					  RAW("other", 5, DT_REG) };
	struct strata_raw_dirent l2[] = { RAW("gone", 6, DT_DIR),
					  RAW("gone2", 7, DT_REG) };
	struct strata_dirsnap *s =
		merge(&one_dev_fs, 3, LAYER(l0), LAYER(l1), LAYER(l2));

	assert_names(s, "keep,other");
	strata_dirsnap_free(s);
}

static void test_merge_whiteout_in_top_hides_lower_layers(void **state)
{
	/* whited out in layer 0, present in 1 and 2: stays hidden */
	struct strata_raw_dirent l0[] = { WHT("x", 1) };
	struct strata_raw_dirent l1[] = { RAW("x", 2, DT_DIR),
					  RAW("y", 3, DT_REG) };
	struct strata_raw_dirent l2[] = { RAW("x", 4, DT_REG),
					  RAW("z", 5, DT_REG) };
	struct strata_dirsnap *s =
		merge(&one_dev_fs, 3, LAYER(l0), LAYER(l1), LAYER(l2));

	assert_names(s, "y,z");
	assert_null(ut_snap_find(s, "x"));
	strata_dirsnap_free(s);
}

static void test_merge_whiteout_below_does_not_hide_above(void **state)
{
	struct strata_raw_dirent l0[] = { RAW("x", 1, DT_REG) };
	struct strata_raw_dirent l1[] = { WHT("x", 2) };
	struct strata_dirsnap *s = merge(&one_dev_fs, 2, LAYER(l0), LAYER(l1));

	assert_names(s, "x");
	assert_entry(s, "x", 1, DT_REG);
	strata_dirsnap_free(s);
}

static void test_merge_aufs_hides_below_only(void **state)
{
	struct strata_raw_dirent l0[] = { RAW("a", 1, DT_REG) };
	/* ".wh.b" beside "b" in the same layer: "b" of this layer shows,
	 * "b" and "c" of the layers below do not */
	struct strata_raw_dirent l1[] = { RAW(".wh.b", 2, DT_REG),
					  RAW("b", 3, DT_DIR),
					  RAW(".wh.c", 4, DT_REG),
					  RAW("d", 5, DT_REG) };
	struct strata_raw_dirent l2[] = { RAW("b", 6, DT_REG),
					  RAW("c", 7, DT_REG),
					  RAW("e", 8, DT_REG) };
	struct strata_raw_dirent l3[] = { RAW("c", 9, DT_REG),
					  RAW("b", 10, DT_REG) };
	struct strata_dirsnap *s = merge(&one_dev_fs, 4, LAYER(l0), LAYER(l1),
					 LAYER(l2), LAYER(l3));

	assert_names(s, "a,b,d,e");
	assert_entry(s, "b", 3, DT_DIR);
	strata_dirsnap_free(s);
}

static void test_merge_aufs_after_name_in_same_layer(void **state)
{
	/* the order inside a layer does not matter */
	struct strata_raw_dirent l0[] = { RAW("b", 3, DT_REG),
					  RAW(".wh.b", 2, DT_REG) };
	struct strata_raw_dirent l1[] = { RAW("b", 6, DT_DIR) };
	struct strata_raw_dirent m0[] = { RAW(".wh.b", 2, DT_REG),
					  RAW("b", 3, DT_REG) };
	struct strata_dirsnap *s = merge(&one_dev_fs, 2, LAYER(l0), LAYER(l1));
	struct strata_dirsnap *t = merge(&one_dev_fs, 2, LAYER(m0), LAYER(l1));

	assert_names(s, "b");
	assert_entry(s, "b", 3, DT_REG);
	assert_names(t, "b");
	assert_entry(t, "b", 3, DT_REG);
	strata_dirsnap_free(s);
	strata_dirsnap_free(t);
}

static void test_merge_aufs_names_never_shown(void **state)
{
	struct strata_raw_dirent l0[] = {
		RAW(".wh..wh..opq", 1, DT_REG), RAW(".wh..opq", 2, DT_CHR),
		RAW(".wh.x", 3, DT_REG), RAW(".wh.", 4, DT_REG),
		RAW("visible", 5, DT_REG), RAW(".whnot", 6, DT_REG),
	};
	struct strata_raw_dirent l1[] = { RAW(".wh.y", 7, DT_REG),
					  RAW(".opq", 8, DT_REG),
					  RAW(".wh..opq", 9, DT_REG) };
	struct strata_dirsnap *s = merge(&one_dev_fs, 2, LAYER(l0), LAYER(l1));

	/* ".opq" in the lower layer is not hidden by the marker ".wh..opq" */
	assert_names(s, "visible,.whnot,.opq");
	strata_dirsnap_free(s);
}

static void test_merge_dots_skipped(void **state)
{
	struct strata_raw_dirent l0[] = { RAW("..", 1, DT_DIR),
					  RAW("f", 2, DT_REG),
					  RAW(".", 3, DT_DIR) };
	struct strata_raw_dirent l1[] = { RAW(".", 4, DT_DIR),
					  RAW("..", 5, DT_DIR),
					  RAW(".hidden", 6, DT_REG),
					  RAW("...", 7, DT_REG) };
	struct strata_dirsnap *s = merge(&one_dev_fs, 2, LAYER(l0), LAYER(l1));

	assert_names(s, "f,.hidden,...");
	strata_dirsnap_free(s);
}

static void test_merge_duplicates_in_one_layer(void **state)
{
	struct strata_raw_dirent l0[] = { RAW("a", 1, DT_REG),
					  RAW("a", 2, DT_DIR),
					  RAW("b", 3, DT_REG) };
	struct strata_raw_dirent l1[] = { RAW("c", 4, DT_REG),
					  RAW("c", 5, DT_REG),
					  RAW("a", 6, DT_REG) };
	struct strata_dirsnap *s = merge(&one_dev_fs, 2, LAYER(l0), LAYER(l1));

	assert_names(s, "a,b,c");
	assert_entry(s, "a", 1, DT_REG);
	assert_entry(s, "c", 4, DT_REG);
	strata_dirsnap_free(s);
}

static void test_merge_order_first_appearance(void **state)
{
	struct strata_raw_dirent l0[] = { RAW("m", 1, DT_REG),
					  RAW("c", 2, DT_REG) };
	struct strata_raw_dirent l1[] = { RAW("z", 3, DT_REG),
					  RAW("c", 4, DT_REG),
					  RAW("a", 5, DT_REG) };
	struct strata_raw_dirent l2[] = { RAW("a", 6, DT_REG),
					  RAW("b", 7, DT_REG),
					  RAW("m", 8, DT_REG) };
	struct strata_dirsnap *s =
		merge(&one_dev_fs, 3, LAYER(l0), LAYER(l1), LAYER(l2));

	assert_names(s, "m,c,z,a,b");
	strata_dirsnap_free(s);
}

static void test_merge_real_layer_numbers(void **state)
{
	/* layers[] maps a listing to its real layer: the inode number is
	 * tagged with that layer's filesystem index */
	struct strata_layer ls[3] = {
		{ .fd = -1, .fsidx = 0 },
		{ .fd = -1, .fsidx = 0 },
		{ .fd = -1, .fsidx = 1 },
	};
	struct strata_fs fs = { .layers = ls, .n_layers = 3, .n_devs = 2,
				.ino_shift = 63 };
	struct strata_raw_dirent l0[] = { RAW("top", 5, DT_REG) };
	struct strata_raw_dirent l1[] = { RAW("low", 6, DT_REG),
					  RAW("top", 7, DT_REG) };
	struct strata_raw_dirent *raw[] = { l0, l1 };
	size_t n[] = { 1, 2 };
	const uint32_t real[] = { 0, 2 };
	struct strata_dirsnap *s = strata_merge_listings(&fs, 2, real, raw, n);

	assert_names(s, "top,low");
	assert_entry(s, "top", 5, DT_REG);
	assert_entry(s, "low", UINT64_C(6) | (UINT64_C(1) << 63), DT_REG);
	strata_dirsnap_free(s);
}

static void test_merge_names_owned_by_snapshot(void **state)
{
	/* the snapshot must not point into the callers' arrays */
	char n1[] = "alpha";
	char n2[] = "beta";
	struct strata_raw_dirent l0[] = { RAW(n1, 1, DT_REG),
					  RAW(n2, 2, DT_REG) };
	struct strata_dirsnap *s = merge(&one_dev_fs, 1, LAYER(l0));

	memset(n1, 'X', strlen(n1));
	memset(n2, 'Y', strlen(n2));
	assert_names(s, "alpha,beta");
	strata_dirsnap_free(s);
}

static void test_merge_many_names(void **state)
{
	/* a listing larger than one string chunk */
	enum { N = 3000 };
	struct strata_raw_dirent *l0 = g_new0(struct strata_raw_dirent, N);
	struct strata_raw_dirent *l1 = g_new0(struct strata_raw_dirent, N);
	char **names = g_new0(char *, 2 * N);
	struct strata_dirsnap *s;

	for (int i = 0; i < N; i++) {
		names[i] = g_strdup_printf("entry-%05d", i);
		names[N + i] = g_strdup_printf("entry-%05d", i + N / 2);
		l0[i] = (struct strata_raw_dirent)RAW(names[i], i + 1, DT_REG);
		l1[i] = (struct strata_raw_dirent)RAW(names[N + i], 100000 + i,
						      DT_REG);
		if (i % 10 == 0)
			l0[i].whiteout = true;
	}
	s = merge(&one_dev_fs, 2, l0, (size_t)N, l1, (size_t)N);
	/* layer 0: N - N/10 shown; layer 1: the N/2 names above N */
	assert_int_equal(s->ents->len, N - N / 10 + N / 2);
	assert_null(ut_snap_find(s, "entry-00010"));
	assert_entry(s, "entry-00011", 12, DT_REG);
	assert_entry(s, "entry-04000", 100000 + 4000 - N / 2, DT_REG);
	strata_dirsnap_free(s);
	for (int i = 0; i < 2 * N; i++)
		g_free(names[i]);
	g_free(names);
	g_free(l0);
	g_free(l1);
}

/* ------------------------------------------------------------------ */
/* strata_filter_xattr_list */

static void test_filter_xattr_list(void **state)
{
	static const char in[] = "user.a\0trusted.overlay.opaque\0"
				 "security.selinux\0user.overlay.whiteout\0"
				 "user.fuseoverlayfs.opaque\0user.stratafs.x\0"
				 "user.overlayx\0user.b";
	static const char want[] = "user.a\0security.selinux\0"
				   "user.overlayx\0user.b";
	char buf[sizeof(in)];
	size_t n;

	memcpy(buf, in, sizeof(in));
	/* sizeof includes the final NUL of "user.b" */
	n = strata_filter_xattr_list(buf, sizeof(in));
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
}

static void test_filter_xattr_list_unescapes(void **state)
{
	static const char in[] = "trusted.overlay.overlay.a\0user.x\0"
				 "user.overlay.overlay.opaque\0"
				 "trusted.overlay.origin";
	static const char want[] = "trusted.overlay.a\0user.x\0"
				   "user.overlay.opaque";
	char buf[sizeof(in)];

	memcpy(buf, in, sizeof(in));
	assert_int_equal(strata_filter_xattr_list(buf, sizeof(in)),
			 sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
}

static void test_filter_xattr_list_all_private(void **state)
{
	char buf[] = "user.overlay.opaque\0trusted.overlay.whiteout";

	assert_int_equal(strata_filter_xattr_list(buf, sizeof(buf)), 0);
}

static void test_filter_xattr_list_none_private(void **state)
{
	static const char in[] = "user.a\0user.b\0security.capability";
	char buf[sizeof(in)];

	memcpy(buf, in, sizeof(in));
	assert_int_equal(strata_filter_xattr_list(buf, sizeof(in)), sizeof(in));
	assert_memory_equal(buf, in, sizeof(in));
}

static void test_filter_xattr_list_empty(void **state)
{
	char buf[1] = { 'z' };

	assert_int_equal(strata_filter_xattr_list(buf, 0), 0);
	assert_int_equal(buf[0], 'z');
}

static void test_filter_xattr_list_unterminated_tail(void **state)
{
	/* the last name has no NUL within len: dropped, never overrun */
	char *buf = g_malloc(20);
	size_t n;

	memcpy(buf, "user.a\0user.tailtail", 20);
	n = strata_filter_xattr_list(buf, 20);
	assert_int_equal(n, 7);
	assert_memory_equal(buf, "user.a\0", 7);
	g_free(buf);

	buf = g_malloc(25);
	memcpy(buf, "user.overlay.x\0user.keep", 25);
	n = strata_filter_xattr_list(buf, 24); /* cut before the NUL */
	assert_int_equal(n, 0);
	g_free(buf);

	buf = g_malloc(5);
	memcpy(buf, "user.", 5);
	assert_int_equal(strata_filter_xattr_list(buf, 5), 0);
	g_free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge_single_layer),
		cmocka_unit_test(test_merge_empty),
		cmocka_unit_test(test_merge_topmost_wins),
		cmocka_unit_test(test_merge_whiteout_hides_own_and_below),
		cmocka_unit_test(test_merge_whiteout_in_top_hides_lower_layers),
		cmocka_unit_test(test_merge_whiteout_below_does_not_hide_above),
		cmocka_unit_test(test_merge_aufs_hides_below_only),
		cmocka_unit_test(test_merge_aufs_after_name_in_same_layer),
		cmocka_unit_test(test_merge_aufs_names_never_shown),
		cmocka_unit_test(test_merge_dots_skipped),
		cmocka_unit_test(test_merge_duplicates_in_one_layer),
		cmocka_unit_test(test_merge_order_first_appearance),
		cmocka_unit_test(test_merge_real_layer_numbers),
		cmocka_unit_test(test_merge_names_owned_by_snapshot),
		cmocka_unit_test(test_merge_many_names),
		cmocka_unit_test(test_filter_xattr_list),
		cmocka_unit_test(test_filter_xattr_list_unescapes),
		cmocka_unit_test(test_filter_xattr_list_all_private),
		cmocka_unit_test(test_filter_xattr_list_none_private),
		cmocka_unit_test(test_filter_xattr_list_empty),
		cmocka_unit_test(test_filter_xattr_list_unterminated_tail),
	};

	return UT_RUN_GROUP("readdir", tests, NULL, NULL);
}
