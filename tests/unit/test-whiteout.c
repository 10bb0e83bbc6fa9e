// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of whiteout.c: marker names and values, and the markers read
 * from real directories under /tmp.  user.* xattrs work unprivileged on
 * ext4/tmpfs; trusted.* xattrs and 0/0 device nodes need root, and those
 * cases are skipped otherwise.
 */
#include "unit-util.h"

/* The scratch directory of the whole group. */
static char *tmproot;
static unsigned counter;

static int group_setup(void **state)
{
	tmproot = ut_mkdtemp();
	return 0;
}

static int group_teardown(void **state)
{
	ut_rm_rf(tmproot);
	g_clear_pointer(&tmproot, g_free);
	return 0;
}

/* A fresh empty directory for one test; g_free the result. */
static char *fresh_dir(void)
{
	char *p = ut_path("%s/t%u", tmproot, counter++);

	ut_mkdir(p);
	return p;
}

static void skip_unless_root(void)
{
	if (!ut_is_root()) {
		print_message("# needs root (trusted.* xattrs / mknod)\n");
		skip();
	}
}

/* Markers of the directory @path (marker files too if @files), asserting
 * that the read succeeds. */
static struct strata_dir_markers markers_of_files(const char *path,
						  bool files)
{
	struct strata_dir_markers m;
	int fd = ut_open_path_dir(path);

	/* garbage in, so that the function must set both fields */
	memset(&m, 0xff, sizeof(m));
	assert_int_equal(strata_read_dir_markers(fd, &m, files), 0);
	close(fd);
	return m;
}

static struct strata_dir_markers markers_of(const char *path)
{
	return markers_of_files(path, true);
}

/* ------------------------------------------------------------------ */
/* pure functions */

static void test_parse_opaque(void **state)
{
	assert_int_equal(strata_parse_opaque("y", 1), STRATA_OPAQUE_Y);
	assert_int_equal(strata_parse_opaque("x", 1), STRATA_OPAQUE_X);
	assert_int_equal(strata_parse_opaque("n", 1), STRATA_OPAQUE_NONE);
	assert_int_equal(strata_parse_opaque("yes", 3), STRATA_OPAQUE_NONE);
	assert_int_equal(strata_parse_opaque("", 0), STRATA_OPAQUE_NONE);
	assert_int_equal(strata_parse_opaque("bogus", 5), STRATA_OPAQUE_NONE);
	assert_int_equal(strata_parse_opaque("Y", 1), STRATA_OPAQUE_NONE);
	/* the length counts, not the terminator */
	assert_int_equal(strata_parse_opaque("y", 2), STRATA_OPAQUE_NONE);
	assert_int_equal(strata_parse_opaque("x", 2), STRATA_OPAQUE_NONE);
	assert_int_equal(strata_parse_opaque("yx", 1), STRATA_OPAQUE_Y);
	assert_int_equal(strata_parse_opaque("xy", 1), STRATA_OPAQUE_X);
	assert_int_equal(strata_parse_opaque("y", 0), STRATA_OPAQUE_NONE);
	assert_int_equal(strata_parse_opaque("y", -ENODATA),
			 STRATA_OPAQUE_NONE);
}

static void test_private_xattr(void **state)
{
	static const char *const priv[] = {
		"trusted.overlay.opaque", "trusted.overlay.whiteout",
		"trusted.overlay.redirect", "user.overlay.opaque",
		"user.overlay.whiteout", "user.overlay.",
		"user.fuseoverlayfs.opaque", "user.fuseoverlayfs.override_stat",
		"user.stratafs.anything",
	};
	static const char *const pub[] = {
		"user.foo", "security.capability", "security.selinux",
		"trusted.foo", "user.overlayx", "user.overlay",
		"user.fuseoverlayfsx.a", "user.stratafs", "system.posix_acl_access",
		"", "overlay.opaque", "USER.overlay.opaque",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(priv); i++)
		if (!strata_is_private_xattr(priv[i]))
			fail_msg("'%s' should be private", priv[i]);
	for (size_t i = 0; i < G_N_ELEMENTS(pub); i++)
		if (strata_is_private_xattr(pub[i]))
			fail_msg("'%s' should not be private", pub[i]);
}

static void test_aufs_name(void **state)
{
	assert_true(strata_is_aufs_name(".wh.foo"));
	assert_true(strata_is_aufs_name(".wh."));
	assert_true(strata_is_aufs_name(".wh..wh..opq"));
	assert_true(strata_is_aufs_name(".wh..opq"));
	assert_false(strata_is_aufs_name(".wh"));
	assert_false(strata_is_aufs_name("wh.foo"));
	assert_false(strata_is_aufs_name(".whfoo"));
	assert_false(strata_is_aufs_name("a.wh.b"));
	assert_false(strata_is_aufs_name(".WH.foo"));
	assert_false(strata_is_aufs_name(""));
	assert_string_equal(STRATA_AUFS_PREFIX, ".wh.");
	assert_string_equal(STRATA_AUFS_OPAQUE, ".wh..wh..opq");
}

static void test_chardev_whiteout(void **state)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFCHR | 0;
	st.st_rdev = makedev(0, 0);
	assert_true(strata_is_chardev_whiteout(&st));
	st.st_mode = S_IFCHR | 0644;
	assert_true(strata_is_chardev_whiteout(&st));

	st.st_rdev = makedev(1, 3);
	assert_false(strata_is_chardev_whiteout(&st));
	st.st_rdev = makedev(0, 1);
	assert_false(strata_is_chardev_whiteout(&st));
	st.st_rdev = makedev(1, 0);
	assert_false(strata_is_chardev_whiteout(&st));

	/* 0/0 but not a character device */
	st.st_rdev = makedev(0, 0);
	st.st_mode = S_IFREG | 0644;
	assert_false(strata_is_chardev_whiteout(&st));
	st.st_mode = S_IFBLK | 0644;
	assert_false(strata_is_chardev_whiteout(&st));
	st.st_mode = S_IFIFO | 0644;
	assert_false(strata_is_chardev_whiteout(&st));
}

static void test_marker_xattr_table(void **state)
{
	assert_string_equal(
		strata_marker_xattr(STRATA_MARKER_OPAQUE, STRATA_NS_TRUSTED),
		"trusted.overlay.opaque");
	assert_string_equal(
		strata_marker_xattr(STRATA_MARKER_OPAQUE, STRATA_NS_USER),
		"user.overlay.opaque");
	assert_string_equal(
		strata_marker_xattr(STRATA_MARKER_WHITEOUT, STRATA_NS_TRUSTED),
		"trusted.overlay.whiteout");
	assert_string_equal(
		strata_marker_xattr(STRATA_MARKER_WHITEOUT, STRATA_NS_USER),
		"user.overlay.whiteout");
	/* every marker name is private */
	for (int m = 0; m < STRATA_MARKER__COUNT; m++)
		for (int ns = 0; ns < STRATA_NS__COUNT; ns++)
			assert_true(strata_is_private_xattr(
				strata_marker_xattr(m, ns)));
}

/* ------------------------------------------------------------------ */
/* directory markers on a real filesystem */

static void test_markers_none(void **state)
{
	g_autofree char *d = fresh_dir();
	g_autofree char *f = ut_path("%s/file", d);
	struct strata_dir_markers m;

	ut_write(f, "x");
	ut_setxattr(d, "user.foo", "y");
	m = markers_of(d);
	assert_false(m.opaque);
	assert_false(m.xwhiteouts);
}

static void test_markers_user_overlay_opaque_y(void **state)
{
	g_autofree char *d = fresh_dir();
	struct strata_dir_markers m;

	ut_setxattr(d, "user.overlay.opaque", "y");
	m = markers_of(d);
	assert_true(m.opaque);
	assert_false(m.xwhiteouts);
}

static void test_markers_fuseoverlayfs_opaque_y(void **state)
{
	g_autofree char *d = fresh_dir();
	struct strata_dir_markers m;

	ut_setxattr(d, "user.fuseoverlayfs.opaque", "y");
	m = markers_of(d);
	assert_true(m.opaque);
	assert_false(m.xwhiteouts);
}

static void test_root_markers_trusted_opaque_y(void **state)
{
	g_autofree char *d = NULL;
	struct strata_dir_markers m;

	skip_unless_root();
	d = fresh_dir();
	ut_setxattr(d, "trusted.overlay.opaque", "y");
	m = markers_of(d);
	assert_true(m.opaque);
	assert_false(m.xwhiteouts);
}

static void test_root_markers_trusted_opaque_x(void **state)
{
	g_autofree char *d = NULL;
	struct strata_dir_markers m;

	skip_unless_root();
	d = fresh_dir();
	ut_setxattr(d, "trusted.overlay.opaque", "x");
	m = markers_of(d);
	assert_false(m.opaque);
	assert_true(m.xwhiteouts);
}

static void test_markers_aufs_opaque(void **state)
{
	g_autofree char *d = fresh_dir();
	g_autofree char *f = ut_path("%s/.wh..wh..opq", d);
	struct strata_dir_markers m;

	ut_write(f, "");
	m = markers_of(d);
	assert_true(m.opaque);
	assert_false(m.xwhiteouts);
}

static void test_markers_fuseoverlayfs_opq_file(void **state)
{
	g_autofree char *d = fresh_dir();
	g_autofree char *f = ut_path("%s/.wh..opq", d);
	struct strata_dir_markers m;

	ut_write(f, "");
	m = markers_of(d);
	assert_true(m.opaque);
	assert_false(m.xwhiteouts);
}

/* in the last layer of a stack, or at the root, an opaque marker hides
 * nothing: the marker files are not looked for; the xattrs still count */
static void test_markers_no_files(void **state)
{
	g_autofree char *d = fresh_dir();
	g_autofree char *f = ut_path("%s/.wh..wh..opq", d);
	g_autofree char *g = ut_path("%s/.wh..opq", d);
	g_autofree char *x = fresh_dir();
	struct strata_dir_markers m;

	ut_write(f, "");
	ut_write(g, "");
	m = markers_of_files(d, false);
	assert_false(m.opaque);
	assert_false(m.xwhiteouts);
	ut_setxattr(x, "user.overlay.opaque", "x");
	m = markers_of_files(x, false);
	assert_false(m.opaque);
	assert_true(m.xwhiteouts);
}

static void test_markers_aufs_opaque_any_type(void **state)
{
	/* the marker's presence counts, whatever it is */
	g_autofree char *d = fresh_dir();
	g_autofree char *f = ut_path("%s/.wh..wh..opq", d);
	struct strata_dir_markers m;

	ut_mkdir(f);
	m = markers_of(d);
	assert_true(m.opaque);
}

static void test_markers_x_is_not_opaque(void **state)
{
	g_autofree char *d = fresh_dir();
	struct strata_dir_markers m;

	ut_setxattr(d, "user.overlay.opaque", "x");
	m = markers_of(d);
	assert_false(m.opaque);
	assert_true(m.xwhiteouts);
}

static void test_markers_x_and_aufs_opaque(void **state)
{
	g_autofree char *d = fresh_dir();
	g_autofree char *f = ut_path("%s/.wh..wh..opq", d);
	struct strata_dir_markers m;

	ut_setxattr(d, "user.overlay.opaque", "x");
	ut_write(f, "");
	m = markers_of(d);
	assert_true(m.opaque);
	assert_true(m.xwhiteouts);
}

static void test_markers_fuseoverlayfs_x_ignored(void **state)
{
	g_autofree char *d = fresh_dir();
	struct strata_dir_markers m;

	ut_setxattr(d, "user.fuseoverlayfs.opaque", "x");
	m = markers_of(d);
	assert_false(m.opaque);
	assert_false(m.xwhiteouts);
}

static void test_markers_bogus_values(void **state)
{
	static const char *const vals[] = { "bogus", "yes", "n", "Y", "xx",
					    "yyyyyyyyyyyyyyyyyyyyyyyy", "" };

	for (size_t i = 0; i < G_N_ELEMENTS(vals); i++) {
		g_autofree char *d = fresh_dir();
		struct strata_dir_markers m;

		ut_setxattr(d, "user.overlay.opaque", vals[i]);
		ut_setxattr(d, "user.fuseoverlayfs.opaque", vals[i]);
		m = markers_of(d);
		if (m.opaque || m.xwhiteouts)
			fail_msg("value '%s': opaque=%d xwhiteouts=%d",
				 vals[i], m.opaque, m.xwhiteouts);
	}
}

static void test_markers_many_xattrs(void **state)
{
	/* More names than fit the first 4096-byte listxattr buffer.  ext4
	 * cannot hold that many, tmpfs (Linux >= 6.6) can. */
	char d[] = "/dev/shm/stratafs-unit-XXXXXX";
	struct strata_dir_markers m;
	size_t listed = 0;

	if (mkdtemp(d) == NULL) {
		print_message("# no /dev/shm\n");
		skip();
	}
	for (int i = 0; i < 40; i++) {
		g_autofree char *n = ut_path("user.padding-%02d-%0200d", i, 0);

		if (lsetxattr(d, n, "1", 1, 0) < 0) {
			rmdir(d);
			print_message("# tmpfs without user xattrs\n");
			skip();
		}
		listed += strlen(n) + 1;
	}
	assert_true(listed > 4096);
	ut_setxattr(d, "user.overlay.opaque", "y");
	m = markers_of(d);
	rmdir(d);
	assert_true(m.opaque);
	assert_false(m.xwhiteouts);
}

/* ------------------------------------------------------------------ */
/* entries that are whiteouts */

static int is_whiteout(const char *dir, const char *name)
{
	g_autofree char *p = ut_path("%s/%s", dir, name);
	struct stat st;
	int fd = ut_open_path_dir(dir);
	int r;

	UT_CHECK(lstat(p, &st) == 0);
	r = strata_entry_is_whiteout(fd, name, &st);
	close(fd);
	return r;
}

static void test_xattr_whiteout_empty_file(void **state)
{
	g_autofree char *d = fresh_dir();
	g_autofree char *f = ut_path("%s/gone", d);

	ut_write(f, "");
	ut_setxattr(f, "user.overlay.whiteout", "");
	assert_int_equal(is_whiteout(d, "gone"), 1);
}

static void test_xattr_whiteout_any_value(void **state)
{
	g_autofree char *d = fresh_dir();
	g_autofree char *f = ut_path("%s/gone", d);

	ut_write(f, "");
	ut_setxattr(f, "user.overlay.whiteout", "y");
	assert_int_equal(is_whiteout(d, "gone"), 1);
}

static void test_xattr_whiteout_nonempty_file(void **state)
{
	g_autofree char *d = fresh_dir();
	g_autofree char *f = ut_path("%s/kept", d);

	ut_write(f, "data");
	ut_setxattr(f, "user.overlay.whiteout", "");
	assert_int_equal(is_whiteout(d, "kept"), 0);
}

static void test_xattr_whiteout_on_directory(void **state)
{
	g_autofree char *d = fresh_dir();
	g_autofree char *sub = ut_path("%s/sub", d);

	ut_mkdir(sub);
	ut_setxattr(sub, "user.overlay.whiteout", "");
	assert_int_equal(is_whiteout(d, "sub"), 0);
}

static void test_plain_entries_not_whiteouts(void **state)
{
	g_autofree char *d = fresh_dir();
	g_autofree char *e = ut_path("%s/empty", d);
	g_autofree char *f = ut_path("%s/full", d);
	g_autofree char *l = ut_path("%s/link", d);
	g_autofree char *o = ut_path("%s/other", d);

	ut_write(e, "");
	ut_write(f, "abc");
	ut_write(o, "");
	ut_setxattr(o, "user.overlay.opaque", "y"); /* wrong marker */
	UT_CHECK(symlink("empty", l) == 0);
	assert_int_equal(is_whiteout(d, "empty"), 0);
	assert_int_equal(is_whiteout(d, "full"), 0);
	assert_int_equal(is_whiteout(d, "link"), 0);
	assert_int_equal(is_whiteout(d, "other"), 0);
}

static void test_root_trusted_xattr_whiteout(void **state)
{
	g_autofree char *d = NULL;
	g_autofree char *f = NULL;

	skip_unless_root();
	d = fresh_dir();
	f = ut_path("%s/gone", d);
	ut_write(f, "");
	ut_setxattr(f, "trusted.overlay.whiteout", "");
	assert_int_equal(is_whiteout(d, "gone"), 1);
}

static void test_root_chardev_whiteout_real(void **state)
{
	g_autofree char *d = NULL;
	g_autofree char *w = NULL;
	g_autofree char *n = NULL;

	skip_unless_root();
	d = fresh_dir();
	w = ut_path("%s/gone", d);
	n = ut_path("%s/null", d);
	UT_CHECK(mknod(w, S_IFCHR | 0600, makedev(0, 0)) == 0);
	UT_CHECK(mknod(n, S_IFCHR | 0600, makedev(1, 3)) == 0);
	assert_int_equal(is_whiteout(d, "gone"), 1);
	assert_int_equal(is_whiteout(d, "null"), 0);
}

static void test_aufs_whiteout_exists(void **state)
{
	g_autofree char *d = fresh_dir();
	g_autofree char *w = ut_path("%s/.wh.gone", d);
	g_autofree char *wd = ut_path("%s/.wh.gonedir", d);
	g_autofree char *plain = ut_path("%s/plain", d);
	g_autofree char *longname = NULL;
	int fd;

	ut_write(w, "");
	ut_mkdir(wd);
	ut_write(plain, "");
	fd = ut_open_path_dir(d);
	assert_int_equal(strata_aufs_whiteout_exists(fd, "gone"), 1);
	assert_int_equal(strata_aufs_whiteout_exists(fd, "gonedir"), 1);
	assert_int_equal(strata_aufs_whiteout_exists(fd, "plain"), 0);
	assert_int_equal(strata_aufs_whiteout_exists(fd, "missing"), 0);
	assert_int_equal(strata_aufs_whiteout_exists(fd, "gon"), 0);
	/* a name so long that ".wh.NAME" cannot exist */
	longname = g_strnfill(NAME_MAX - 2, 'a');
	assert_int_equal(strata_aufs_whiteout_exists(fd, longname), 0);
	close(fd);
}

static void test_aufs_whiteout_dangling_symlink(void **state)
{
	/* found by lstat, so a dangling symlink marker still counts */
	g_autofree char *d = fresh_dir();
	g_autofree char *w = ut_path("%s/.wh.gone", d);
	int fd;

	UT_CHECK(symlink("/nonexistent/target", w) == 0);
	fd = ut_open_path_dir(d);
	assert_int_equal(strata_aufs_whiteout_exists(fd, "gone"), 1);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_opaque),
		cmocka_unit_test(test_private_xattr),
		cmocka_unit_test(test_aufs_name),
		cmocka_unit_test(test_chardev_whiteout),
		cmocka_unit_test(test_marker_xattr_table),
		cmocka_unit_test(test_markers_none),
		cmocka_unit_test(test_markers_no_files),
		cmocka_unit_test(test_markers_user_overlay_opaque_y),
		cmocka_unit_test(test_markers_fuseoverlayfs_opaque_y),
		cmocka_unit_test(test_root_markers_trusted_opaque_y),
		cmocka_unit_test(test_root_markers_trusted_opaque_x),
		cmocka_unit_test(test_markers_aufs_opaque),
		cmocka_unit_test(test_markers_fuseoverlayfs_opq_file),
		cmocka_unit_test(test_markers_aufs_opaque_any_type),
		cmocka_unit_test(test_markers_x_is_not_opaque),
		cmocka_unit_test(test_markers_x_and_aufs_opaque),
		cmocka_unit_test(test_markers_fuseoverlayfs_x_ignored),
		cmocka_unit_test(test_markers_bogus_values),
		cmocka_unit_test(test_markers_many_xattrs),
		cmocka_unit_test(test_xattr_whiteout_empty_file),
		cmocka_unit_test(test_xattr_whiteout_any_value),
		cmocka_unit_test(test_xattr_whiteout_nonempty_file),
		cmocka_unit_test(test_xattr_whiteout_on_directory),
		cmocka_unit_test(test_plain_entries_not_whiteouts),
		cmocka_unit_test(test_root_trusted_xattr_whiteout),
		cmocka_unit_test(test_root_chardev_whiteout_real),
		cmocka_unit_test(test_aufs_whiteout_exists),
		cmocka_unit_test(test_aufs_whiteout_dangling_symlink),
	};

	return UT_RUN_GROUP("whiteout", tests, group_setup,
					   group_teardown);
}
