// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * uidmapping=/gidmapping=: the parser and the mapping in both directions,
 * with the map Podman passes for --userns=keep-id and the values measured
 * with fuse-overlayfs for it.
 */
#include "unit-util.h"

#include "stratafs/idmap.h"

#define KEEPID ":0:1:1001:1001:0:1:1002:1002:64535"

static void test_keepid_map(void **state)
{
	struct strata_idmap m = { .overflow = 65534 };
	g_autofree char *err = NULL;
	uint32_t v;

	assert_int_equal(strata_idmap_parse(&m, KEEPID, &err), 0);
	assert_null(err);
	assert_int_equal(m.ranges->len, 3);
	/* measured with fuse-overlayfs: on disk 0 shows as 1, 1001 as 0 */
	assert_int_equal(strata_idmap_show(&m, 0), 1);
	assert_int_equal(strata_idmap_show(&m, 1001), 0);
	assert_int_equal(strata_idmap_show(&m, 1002), 1002);
	assert_int_equal(strata_idmap_show(&m, 1002 + 64534), 1002 + 64534);
	/* uid 0 creating a file stores 1001; chown to 1 stores 0 */
	assert_true(strata_idmap_store(&m, 0, &v));
	assert_int_equal(v, 1001);
	assert_true(strata_idmap_store(&m, 1, &v));
	assert_int_equal(v, 0);
	assert_true(strata_idmap_store(&m, 5000, &v));
	assert_int_equal(v, 5000);
	strata_idmap_clear(&m);
}

static void test_unmapped_ids(void **state)
{
	struct strata_idmap m = { .overflow = 65534 };
	g_autofree char *err = NULL;
	uint32_t v = 7;

	assert_int_equal(strata_idmap_parse(&m, "0:1000:1:1:100000:65536", &err),
			 0);
	assert_int_equal(strata_idmap_show(&m, 0), 1000);
	assert_int_equal(strata_idmap_show(&m, 65536), 165535);
	/* outside every triple: the overflow id shows */
	assert_int_equal(strata_idmap_show(&m, 65537), 65534);
	assert_int_equal(strata_idmap_show(&m, 99999), 65534);
	/* and nothing can be stored for a shown id outside */
	assert_false(strata_idmap_store(&m, 5, &v));
	assert_int_equal(v, 7);
	assert_true(strata_idmap_store(&m, 100000, &v));
	assert_int_equal(v, 1);
	strata_idmap_clear(&m);
}

static void test_no_map_is_identity(void **state)
{
	struct strata_idmap m = { .overflow = 65534 };
	uint32_t v;

	assert_int_equal(strata_idmap_show(&m, 12345), 12345);
	assert_true(strata_idmap_store(&m, 12345, &v));
	assert_int_equal(v, 12345);
}

static void test_first_triple_wins(void **state)
{
	struct strata_idmap m = { .overflow = 65534 };
	g_autofree char *err = NULL;

	assert_int_equal(strata_idmap_parse(&m, "0:10:5:2:20:5", &err), 0);
	assert_int_equal(strata_idmap_show(&m, 2), 12);
	strata_idmap_clear(&m);
}

static void test_parse_errors(void **state)
{
	static const char *const bad[] = {
		"",	   ":",	       "0:1",	    "0:1:2:3",	"a:1:1",
		"0:b:1",   "0:1:c",    "0:1:0",	    "-1:0:1",	"0:0:1:",
		"4294967295:0:2", "0:4294967295:2", "0:1:99999999999",
		"0::1",	   " 0:1:1",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		struct strata_idmap m = { .overflow = 65534 };
		g_autofree char *err = NULL;
		int r = strata_idmap_parse(&m, bad[i], &err);

		if (r != -EINVAL || err == NULL || strchr(err, '\n'))
			fail_msg("'%s' gave %d (%s)", bad[i], r,
				 err ? err : "no message");
		assert_true(m.ranges == NULL || m.ranges->len == 0);
		strata_idmap_clear(&m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keepid_map),
		cmocka_unit_test(test_unmapped_ids),
		cmocka_unit_test(test_no_map_is_identity),
		cmocka_unit_test(test_first_triple_wins),
		cmocka_unit_test(test_parse_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
