// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * strata_check_layout: where the layers, the workdir and the mount point
 * may sit.  A pure function of canonical paths, so every case is one call.
 * The cases that matter most: a mount point strictly inside a layer (the
 * daemon would look up its own mount and hang, which the kernel overlayfs
 * does not, so the kernel takes it) and the upper or workdir overlapping a
 * lower (the daemon would see its own writes through the lower).
 */
#include "unit-util.h"

/* 0 if accepted; else -EINVAL and @needle in the one-line message */
static int layout(const char *upper, const char *work, const char *l1,
		  const char *l2, const char *mnt, const char *needle)
{
	const char *lowers[2] = { l1, l2 };
	g_autofree char *err = NULL;
	int r = strata_check_layout(upper, work, lowers, l2 ? 2 : 1, mnt,
				    &err);

	if (r == 0) {
		assert_null(err);
		return 0;
	}
	assert_int_equal(r, -EINVAL);
	assert_non_null(err);
	assert_null(strchr(err, '\n'));
	if (needle && strstr(err, needle) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", err, needle);
	return r;
}

static void test_accepted(void **state)
{
	assert_int_equal(layout(NULL, NULL, "/l", NULL, "/m", NULL), 0);
	assert_int_equal(layout("/c/u", "/c/w", "/l", "/l2", "/c/m", NULL), 0);
	/* a prefix that is not a parent directory */
	assert_int_equal(layout("/lx", "/lw", "/l", NULL, "/lm", NULL), 0);
	/* mounting over a layer itself: the daemon holds it from before */
	assert_int_equal(layout(NULL, NULL, "/l", NULL, "/l", NULL), 0);
	assert_int_equal(layout("/u", "/w", "/l", NULL, "/l", NULL), 0);
	/* lowers nested in each other are only read */
	assert_int_equal(layout(NULL, NULL, "/l", "/l/sub", "/m", NULL), 0);
	/* a lower inside the mount point is hidden by it, held from before */
	assert_int_equal(layout(NULL, NULL, "/m/l", NULL, "/m", NULL), 0);
	/* no mount point known (a /dev/fd/N mount) */
	assert_int_equal(layout("/u", "/w", "/l", NULL, NULL, NULL), 0);
}

static void test_mount_point_inside_a_layer(void **state)
{
	assert_int_equal(layout(NULL, NULL, "/l", NULL, "/l/m", "inside lowerdir"),
			 -EINVAL);
	assert_int_equal(layout(NULL, NULL, "/x", "/l", "/l/a/b/m",
				"inside lowerdir /l"), -EINVAL);
	/* the root as a lower holds every mount point */
	assert_int_equal(layout(NULL, NULL, "/", NULL, "/m", "inside lowerdir"),
			 -EINVAL);
	assert_int_equal(layout("/u", "/w", "/l", NULL, "/u/m",
				"inside upperdir"), -EINVAL);
	assert_int_equal(layout("/u", "/w", "/l", NULL, "/w/m",
				"inside workdir"), -EINVAL);
}

static void test_upper_work_lower_overlap(void **state)
{
	assert_int_equal(layout("/l/u", "/w", "/l", NULL, "/m", "overlap"),
			 -EINVAL);
	assert_int_equal(layout("/u", "/w", "/u/l", NULL, "/m", "overlap"),
			 -EINVAL);
	assert_int_equal(layout("/l", "/w", "/l", NULL, "/m", "overlap"),
			 -EINVAL);
	assert_int_equal(layout("/u", "/w", "/x", "/", "/m", "overlap"),
			 -EINVAL);
	assert_int_equal(layout("/u", "/l/w", "/l", NULL, "/m",
				"workdir /l/w is inside lowerdir"), -EINVAL);
	assert_int_equal(layout("/u", "/w", "/w/l", NULL, "/m",
				"inside workdir"), -EINVAL);
	assert_int_equal(layout("/u", "/u/w", "/l", NULL, "/m", "separate"),
			 -EINVAL);
	assert_int_equal(layout("/w/u", "/w", "/l", NULL, "/m", "separate"),
			 -EINVAL);
}

static void test_upper_or_work_in_mount_point(void **state)
{
	assert_int_equal(layout("/m/u", "/w", "/l", NULL, "/m",
				"inside the mount point"), -EINVAL);
	assert_int_equal(layout("/m", "/w", "/l", NULL, "/m",
				"inside the mount point"), -EINVAL);
	assert_int_equal(layout("/u", "/m/w", "/l", NULL, "/m",
				"inside the mount point"), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_mount_point_inside_a_layer),
		cmocka_unit_test(test_upper_work_lower_overlap),
		cmocka_unit_test(test_upper_or_work_in_mount_point),
	};

	return UT_RUN_GROUP("layout", tests, NULL, NULL);
}
