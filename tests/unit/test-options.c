// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of options.c: command line shapes, -o lists, escapes,
 * quoting, generic mount options, warnings and errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "stratafs/options.h"

/* ------------------------------------------------------------------ */
/* helpers */

struct parse_result {
	struct strata_options o;
	char *err;
	int r;
};

/* Parse a NULL-terminated argument list (argv[0] is supplied). */
static int parse_v(struct parse_result *p, const char *const *args)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new();

	g_ptr_array_add(argv, (char *)"stratafs");
	for (const char *const *a = args; *a; a++)
		g_ptr_array_add(argv, (char *)*a);
	g_ptr_array_add(argv, NULL);
	strata_options_init(&p->o);
	p->err = NULL;
	p->r = strata_options_parse(&p->o, (int)argv->len - 1,
				    (char **)argv->pdata, &p->err);
	return p->r;
}

#define PARSE(p, ...) parse_v((p), (const char *const[]){ __VA_ARGS__, NULL })

static void result_clear(struct parse_result *p)
{
	strata_options_clear(&p->o);
	g_clear_pointer(&p->err, g_free);
}

/* Assert that @arr (GPtrArray of char *) holds exactly the strings given. */
static void assert_strv_v(GPtrArray *arr, const char *const *want)
{
	guint n = 0;

	while (want[n])
		n++;
	assert_non_null(arr);
	assert_int_equal(arr->len, n);
	for (guint i = 0; i < n; i++)
		assert_string_equal(arr->pdata[i], want[i]);
}

#define ASSERT_STRV(arr, ...)                                                 \
	assert_strv_v((arr), (const char *const[]){ __VA_ARGS__, NULL })
#define ASSERT_EMPTY(arr)                                                     \
	do {                                                                  \
		assert_non_null(arr);                                         \
		assert_int_equal((arr)->len, 0);                              \
	} while (0)

static void assert_vec_v(char **vec, const char *const *want)
{
	guint n = 0;

	while (want[n])
		n++;
	assert_non_null(vec);
	assert_int_equal(g_strv_length(vec), n);
	for (guint i = 0; i < n; i++)
		assert_string_equal(vec[i], want[i]);
}

#define ASSERT_VEC(vec, ...)                                                  \
	assert_vec_v((vec), (const char *const[]){ __VA_ARGS__, NULL })

static void assert_one_line(const char *s)
{
	assert_non_null(s);
	assert_true(strlen(s) > 0);
	assert_null(strchr(s, '\n'));
	assert_null(strchr(s, '\r'));
}

static bool strv_has(GPtrArray *arr, const char *s)
{
	for (guint i = 0; i < arr->len; i++)
		if (strcmp(arr->pdata[i], s) == 0)
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* command line shapes */

static void test_defaults_after_init(void **state)
{
	struct strata_options o;

	strata_options_init(&o);
	ASSERT_EMPTY(o.lowerdirs);
	ASSERT_EMPTY(o.fuse_opts);
	ASSERT_EMPTY(o.warnings);
	assert_true(o.threaded);
	assert_true(o.timeout == STRATA_DEFAULT_TIMEOUT);
	assert_false(o.foreground);
	assert_false(o.debug);
	assert_false(o.read_only);
	assert_false(o.help);
	assert_false(o.version);
	assert_null(o.upperdir);
	assert_null(o.workdir);
	assert_null(o.mountpoint);
	assert_null(o.source);
	strata_options_clear(&o);
	/* clearing twice is harmless */
	strata_options_clear(&o);
}

static void test_lowerdir_order_kept(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-o", "lowerdir=/a:/b:/c", "/mnt"), 0);
	assert_null(p.err);
	ASSERT_STRV(p.o.lowerdirs, "/a", "/b", "/c");
	assert_string_equal(p.o.mountpoint, "/mnt");
	assert_null(p.o.source);
	ASSERT_EMPTY(p.o.warnings);
	ASSERT_EMPTY(p.o.fuse_opts);
	assert_true(p.o.threaded);
	assert_false(p.o.foreground);
	assert_false(p.o.read_only);
	result_clear(&p);
}

static void test_source_mountpoint_options_after(void **state)
{
	struct parse_result p;

	/* the mount.fuse3 shape */
	assert_int_equal(PARSE(&p, "overlay", "/mnt/x", "-o",
			       "rw,nosuid,nodev,lowerdir=/l1:/l2"),
			 0);
	assert_null(p.err);
	assert_string_equal(p.o.source, "overlay");
	assert_string_equal(p.o.mountpoint, "/mnt/x");
	ASSERT_STRV(p.o.lowerdirs, "/l1", "/l2");
	ASSERT_STRV(p.o.fuse_opts, "nosuid", "nodev");
	assert_false(p.o.read_only);
	ASSERT_EMPTY(p.o.warnings);
	result_clear(&p);
}

static void test_glued_o(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-olowerdir=/g1:/g2,ro", "-f", "/m"), 0);
	ASSERT_STRV(p.o.lowerdirs, "/g1", "/g2");
	assert_true(p.o.read_only);
	assert_true(p.o.foreground);
	assert_string_equal(p.o.mountpoint, "/m");
	result_clear(&p);
}

static void test_several_o(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-o", "ro", "-o", "lowerdir=/a", "/m",
			       "-o", "nosuid", "-onodev", "-o",
			       "timeout=2.5,threaded=0"),
			 0);
	ASSERT_STRV(p.o.lowerdirs, "/a");
	assert_true(p.o.read_only);
	ASSERT_STRV(p.o.fuse_opts, "nosuid", "nodev");
	assert_true(p.o.timeout == 2.5);
	assert_false(p.o.threaded);
	result_clear(&p);
}

static void test_later_lowerdir_replaces(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-o", "lowerdir=/a:/b", "-o",
			       "lowerdir=/c", "/m"),
			 0);
	ASSERT_STRV(p.o.lowerdirs, "/c");
	result_clear(&p);
}

static void test_double_dash_ends_flags(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-o", "lowerdir=/a", "--", "-mnt"), 0);
	assert_string_equal(p.o.mountpoint, "-mnt");
	result_clear(&p);
}

static void test_strings_and_upper_work(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-o",
			       "lowerdir=/l,upperdir=/u,workdir=/w,"
			       "fsname=myfs,subtype=sub",
			       "/m"),
			 0);
	assert_string_equal(p.o.upperdir, "/u");
	assert_string_equal(p.o.workdir, "/w");
	assert_string_equal(p.o.fsname, "myfs");
	assert_string_equal(p.o.subtype, "sub");
	result_clear(&p);
}

/* ------------------------------------------------------------------ */
/* escapes and quoting */

static void test_lowerdir_escaped_colon(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-o", "lowerdir=/a\\:b:/c\\:\\:d:/e", "/m"),
			 0);
	ASSERT_STRV(p.o.lowerdirs, "/a:b", "/c::d", "/e");
	result_clear(&p);
}

static void test_lowerdir_escaped_backslash(void **state)
{
	struct parse_result p;

	/* argv holds  lowerdir=/a\\:/b\c  -> "/a\" , "/b\c" */
	assert_int_equal(PARSE(&p, "-o", "lowerdir=/a\\\\:/b\\c", "/m"), 0);
	ASSERT_STRV(p.o.lowerdirs, "/a\\", "/b\\c");
	result_clear(&p);
}

static void test_split_lowerdir_direct(void **state)
{
	g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);
	char *err = NULL;

	assert_int_equal(strata_split_lowerdir("x", out, &err), 0);
	assert_int_equal(strata_split_lowerdir("a\\:b:c\\\\:d\\\\\\:e", out,
					       &err),
			 0);
	assert_null(err);
	/* appended after what was there */
	ASSERT_STRV(out, "x", "a:b", "c\\", "d\\:e");
}

static void test_split_lowerdir_error_keeps_out(void **state)
{
	g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);
	char *err = NULL;

	g_ptr_array_add(out, g_strdup("keep"));
	assert_int_equal(strata_split_lowerdir("a:b::c", out, &err), -EINVAL);
	assert_one_line(err);
	assert_non_null(strstr(err, "empty"));
	/* the items added before the error are taken back */
	ASSERT_STRV(out, "keep");
	g_free(err);
	err = NULL;

	assert_int_equal(strata_split_lowerdir("a:", out, &err), -EINVAL);
	assert_one_line(err);
	ASSERT_STRV(out, "keep");
	g_free(err);
	err = NULL;

	assert_int_equal(strata_split_lowerdir(":a", out, &err), -EINVAL);
	assert_one_line(err);
	ASSERT_STRV(out, "keep");
	g_free(err);
}

static void test_optlist_escaped_comma(void **state)
{
	char *err = NULL;
	g_auto(GStrv) v = strata_split_optlist("a\\,b,c,lowerdir=/x\\:y", &err);

	assert_null(err);
	/* "\," loses its backslash; "\:" keeps it for lowerdir */
	ASSERT_VEC(v, "a,b", "c", "lowerdir=/x\\:y");
}

static void test_lowerdir_escaped_comma(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-o", "lowerdir=/a\\,b:/c,ro", "/m"), 0);
	ASSERT_STRV(p.o.lowerdirs, "/a,b", "/c");
	assert_true(p.o.read_only);
	result_clear(&p);
}

static void test_optlist_quoted_comma(void **state)
{
	char *err = NULL;
	g_auto(GStrv) v = strata_split_optlist(
		"ro,context=\"system_u:object_r:foo_t:s0:c1,c2\",nodev", &err);

	assert_null(err);
	assert_non_null(v);
	assert_int_equal(g_strv_length(v), 3);
	assert_string_equal(v[0], "ro");
	/* one item, whatever happens to the quotes themselves */
	assert_true(g_str_has_prefix(v[1], "context="));
	assert_non_null(strstr(v[1], "system_u:object_r:foo_t:s0:c1,c2"));
	assert_string_equal(v[2], "nodev");
}

static void test_quoted_option_is_one_item(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-o", "context=\"a,b\",lowerdir=/l", "/m"),
			 0);
	/* a quoted value is one option, comma and all */
	ASSERT_EMPTY(p.o.warnings);
	assert_string_equal(p.o.context, "a,b");
	ASSERT_STRV(p.o.lowerdirs, "/l");
	result_clear(&p);
}

static void test_optlist_empty_items(void **state)
{
	char *err = NULL;
	g_auto(GStrv) v1 = strata_split_optlist("a,,b", &err);
	g_auto(GStrv) v2 = strata_split_optlist(",,a,", &err);
	g_auto(GStrv) v3 = strata_split_optlist("", &err);
	g_auto(GStrv) v4 = strata_split_optlist(",", &err);

	assert_null(err);
	ASSERT_VEC(v1, "a", "b");
	ASSERT_VEC(v2, "a");
	assert_non_null(v3);
	assert_int_equal(g_strv_length(v3), 0);
	assert_non_null(v4);
	assert_int_equal(g_strv_length(v4), 0);
}

static void test_empty_items_in_parse(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-o", ",lowerdir=/a,,ro,", "/m"), 0);
	ASSERT_STRV(p.o.lowerdirs, "/a");
	assert_true(p.o.read_only);
	ASSERT_EMPTY(p.o.warnings);
	result_clear(&p);
}

static void test_optlist_unterminated_quote(void **state)
{
	char *err = NULL;
	char **v = strata_split_optlist("a,b=\"c,d", &err);

	assert_null(v);
	assert_one_line(err);
	assert_non_null(strstr(err, "quote"));
	g_free(err);
}

/* ------------------------------------------------------------------ */
/* generic and unknown options */

static void test_generic_options_accepted(void **state)
{
	struct parse_result p;
	/* what libfuse's mount code knows goes to it; atime and noatime
	 * both, so that the last one given wins */
	static const char *const forwarded[] = { "dev",	   "nodev", "suid",
						 "nosuid", "exec",  "noexec",
						 "atime",  "noatime" };
	static const char *const not_forwarded[] = { "ro", "rw", "relatime",
						     "lazytime" };

	assert_int_equal(PARSE(&p, "-o",
			       "rw,ro,dev,nodev,suid,nosuid,exec,noexec,atime,"
			       "noatime,relatime,lazytime,lowerdir=/l",
			       "/m"),
			 0);
	assert_null(p.err);
	ASSERT_EMPTY(p.o.warnings);
	assert_true(p.o.read_only);
	for (size_t i = 0; i < G_N_ELEMENTS(forwarded); i++)
		assert_true(strv_has(p.o.fuse_opts, forwarded[i]));
	for (size_t i = 0; i < G_N_ELEMENTS(not_forwarded); i++)
		assert_false(strv_has(p.o.fuse_opts, not_forwarded[i]));
	/* the kernel flags keep the order given: the last one wins */
	{
		guint dev = 0, nodev = 0;

		for (guint i = 0; i < p.o.fuse_opts->len; i++) {
			if (strcmp(p.o.fuse_opts->pdata[i], "dev") == 0)
				dev = i + 1;
			if (strcmp(p.o.fuse_opts->pdata[i], "nodev") == 0)
				nodev = i + 1;
		}
		assert_true(dev > 0 && nodev > dev);
	}
	result_clear(&p);
}

static void test_ro_rw(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-o", "lowerdir=/l,ro", "/m"), 0);
	assert_true(p.o.read_only);
	result_clear(&p);
	assert_int_equal(PARSE(&p, "-o", "lowerdir=/l,ro,rw", "/m"), 0);
	assert_false(p.o.read_only);
	result_clear(&p);
	assert_int_equal(PARSE(&p, "-o", "lowerdir=/l,rw,ro", "/m"), 0);
	assert_true(p.o.read_only);
	result_clear(&p);
}

static void test_unknown_option_warns_once(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-o", "lowerdir=/l,frobnicate,nosuid", "/m"),
			 0);
	assert_null(p.err);
	assert_int_equal(p.o.warnings->len, 1);
	assert_one_line(p.o.warnings->pdata[0]);
	assert_non_null(strstr(p.o.warnings->pdata[0], "frobnicate"));
	/* still applied the rest */
	ASSERT_STRV(p.o.lowerdirs, "/l");
	ASSERT_STRV(p.o.fuse_opts, "nosuid");
	result_clear(&p);
}

static void test_unknown_option_with_value(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-o", "lowerdir=/l,xino=auto,uuid=on",
			       "/m"),
			 0);
	assert_int_equal(p.o.warnings->len, 2);
	assert_one_line(p.o.warnings->pdata[0]);
	assert_one_line(p.o.warnings->pdata[1]);
	assert_non_null(strstr(p.o.warnings->pdata[0], "xino"));
	assert_non_null(strstr(p.o.warnings->pdata[1], "uuid"));
	ASSERT_EMPTY(p.o.fuse_opts);
	result_clear(&p);
}

static void test_threaded_timeout_values(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-o", "lowerdir=/l,threaded=1,timeout=0",
			       "/m"),
			 0);
	assert_true(p.o.threaded);
	assert_true(p.o.timeout == 0.0);
	result_clear(&p);
	assert_int_equal(PARSE(&p, "-s", "-o", "lowerdir=/l,threaded=true",
			       "/m"),
			 0);
	assert_true(p.o.threaded);
	result_clear(&p);
	assert_int_equal(PARSE(&p, "-o", "lowerdir=/l,threaded=false,"
				       "timeout=3600",
			       "/m"),
			 0);
	assert_false(p.o.threaded);
	assert_true(p.o.timeout == 3600.0);
	assert_int_equal(p.o.spin_us, STRATA_DEFAULT_SPIN_US);
	result_clear(&p);
	assert_int_equal(PARSE(&p, "-o", "lowerdir=/l,spin=0", "/m"), 0);
	assert_int_equal(p.o.spin_us, 0);
	result_clear(&p);
	assert_int_equal(PARSE(&p, "-o", "lowerdir=/l,spin=100000", "/m"), 0);
	assert_int_equal(p.o.spin_us, 100000);
	result_clear(&p);
}

static void test_debug_option(void **state)
{
	struct parse_result p;

	/* -o debug turns on messages but does not keep us in foreground */
	assert_int_equal(PARSE(&p, "-o", "lowerdir=/l,debug", "/m"), 0);
	assert_true(p.o.debug);
	assert_false(p.o.foreground);
	result_clear(&p);
}

/* ------------------------------------------------------------------ */
/* flags */

static void test_help_version_no_mountpoint(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "--help"), 0);
	assert_true(p.o.help);
	assert_false(p.o.version);
	assert_null(p.o.mountpoint);
	result_clear(&p);

	assert_int_equal(PARSE(&p, "-h"), 0);
	assert_true(p.o.help);
	result_clear(&p);

	assert_int_equal(PARSE(&p, "--version"), 0);
	assert_true(p.o.version);
	assert_false(p.o.help);
	assert_null(p.o.mountpoint);
	result_clear(&p);

	assert_int_equal(PARSE(&p, "-V"), 0);
	assert_true(p.o.version);
	result_clear(&p);
}

static void test_flag_d_f_s(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-d", "-o", "lowerdir=/l", "/m"), 0);
	assert_true(p.o.debug);
	assert_true(p.o.foreground);
	assert_true(p.o.threaded);
	result_clear(&p);

	assert_int_equal(PARSE(&p, "-f", "-o", "lowerdir=/l", "/m"), 0);
	assert_false(p.o.debug);
	assert_true(p.o.foreground);
	result_clear(&p);

	assert_int_equal(PARSE(&p, "-s", "-o", "lowerdir=/l", "/m"), 0);
	assert_false(p.o.threaded);
	assert_false(p.o.foreground);
	assert_false(p.o.debug);
	result_clear(&p);
}

/* ------------------------------------------------------------------ */
/* errors */

struct err_case {
	const char *args[8];
	const char *want[3]; /* substrings the message must contain */
};

static const struct err_case err_cases[] = {
	{ { "/m" }, { "lowerdir" } },
	{ { "-o", "lowerdir=/a" }, { "mount point" } },
	{ { "a", "b", "c", "-o", "lowerdir=/a" }, { "too many", "'c'" } },
	{ { "-o", "lowerdir=", "/m" }, { "lowerdir", "empty" } },
	{ { "-o", "lowerdir=a::b", "/m" }, { "lowerdir", "empty", "a::b" } },
	{ { "-o", "lowerdir=/l,ro=1", "/m" }, { "ro", "no value" } },
	{ { "-o", "lowerdir", "/m" }, { "lowerdir", "needs a value" } },
	{ { "-o", "lowerdir=/l,upperdir", "/m" }, { "upperdir", "value" } },
	{ { "-o", "lowerdir=/l,threaded=2", "/m" }, { "threaded", "2" } },
	{ { "-o", "lowerdir=/l,timeout=abc", "/m" }, { "timeout", "abc" } },
	{ { "-o", "lowerdir=/l,timeout=-1", "/m" }, { "timeout", "-1" } },
	{ { "-o", "lowerdir=/l,timeout=1s", "/m" }, { "timeout", "1s" } },
	/* found by tests/fuzz/fuzz-options: NaN passed the range check */
	{ { "-o", "lowerdir=/l,timeout=nan", "/m" }, { "timeout", "nan" } },
	{ { "-o", "lowerdir=/l,spin=-1", "/m" }, { "spin", "-1" } },
	{ { "-o", "lowerdir=/l,spin=abc", "/m" }, { "spin", "abc" } },
	{ { "-o", "lowerdir=/l,spin=100001", "/m" }, { "spin", "100001" } },
	{ { "-o", "lowerdir=/l,fsname=", "/m" }, { "fsname", "empty" } },
	{ { "-x", "-o", "lowerdir=/l", "/m" }, { "'-x'" } },
	{ { "--frob", "-o", "lowerdir=/l", "/m" }, { "'--frob'" } },
	{ { "/m", "-o" }, { "-o" } },
	{ { "-o", "lowerdir=/l,context=\"a,b", "/m" }, { "quote" } },
	{ { "-o", "lowerdir=/l,upperdir=/u", "/m" }, { "upperdir", "workdir" } },
	{ { "-o", "lowerdir=/l,workdir=/w", "/m" }, { "workdir", "upperdir" } },
	/* fuse-overlayfs's options with bad values */
	{ { "-o", "lowerdir=/l,uidmapping=0:1", "/m" }, { "uidmapping" } },
	{ { "-o", "lowerdir=/l,gidmapping=0:x:1", "/m" }, { "gidmapping" } },
	{ { "-o", "lowerdir=/l,squash_to_uid=-3", "/m" }, { "squash_to_uid" } },
	{ { "-o", "lowerdir=/l,squash_to_gid=", "/m" }, { "squash_to_gid" } },
	{ { "-o", "lowerdir=/l,fsync=yes", "/m" }, { "fsync", "yes" } },
	{ { "-o", "lowerdir=/l,xattr_permissions=3", "/m" },
	  { "xattr_permissions", "3" } },
	{ { "-o", "lowerdir=/l,static_nlink=2", "/m" }, { "static_nlink" } },
	{ { "-o", "lowerdir=/l,volatile=1", "/m" }, { "volatile" } },
	{ { "-o", "lowerdir=/l,redirect_dir=on", "/m" },
	  { "redirect_dir", "not supported" } },
	{ { "-o", "lowerdir=/l,metacopy=on", "/m" }, { "metacopy" } },
	{ { "-o", "lowerdir=/l,index=on", "/m" }, { "index" } },
	{ { "-o", "lowerdir=/l,plugins=/p.so", "/m" },
	  { "plugins", "not supported" } },
};

static void test_errors(void **state)
{
	for (size_t i = 0; i < G_N_ELEMENTS(err_cases); i++) {
		const struct err_case *c = &err_cases[i];
		struct parse_result p;

		parse_v(&p, c->args);
		if (p.r != -EINVAL || p.err == NULL)
			fail_msg("case %zu (%s %s ...): r=%d err=%s", i,
				 c->args[0], c->args[1] ? c->args[1] : "",
				 p.r, p.err ? p.err : "(null)");
		assert_one_line(p.err);
		for (size_t k = 0; k < G_N_ELEMENTS(c->want) && c->want[k];
		     k++)
			if (strstr(p.err, c->want[k]) == NULL)
				fail_msg("case %zu: message '%s' lacks '%s'", i,
					 p.err, c->want[k]);
		result_clear(&p);
	}
}

/* Every option of fuse-overlayfs 1.x, as Podman and users pass them. */
static void test_fuse_overlayfs_options(void **state)
{
	struct parse_result p;

	assert_int_equal(
		PARSE(&p, "-o",
		      "lowerdir=/l,upperdir=/u,workdir=/w,"
		      "uidmapping=:0:1:1001:1001:0:1:1002:1002:64535,"
		      "gidmapping=0:10:5,squash_to_root,static_nlink,noacl,"
		      "fsync=0,threaded=0,timeout=5,writeback=1,"
		      "xattr_permissions=2,noxattrs,redirect_dir=off,"
		      "metacopy=off,index=off,debug,context=\"x_u:y_r:z_t:s0\"",
		      "/m"),
		0);
	ASSERT_EMPTY(p.o.warnings);
	assert_int_equal(p.o.uidmap.ranges->len, 3);
	assert_int_equal(p.o.gidmap.ranges->len, 1);
	assert_int_equal(p.o.squash_uid, 0);
	assert_int_equal(p.o.squash_gid, 0);
	assert_true(p.o.static_nlink);
	assert_true(p.o.noacl);
	assert_false(p.o.fsync);
	assert_false(p.o.threaded);
	assert_true(p.o.writeback);
	assert_int_equal(p.o.xattr_permissions, 2);
	assert_true(p.o.noxattrs);
	assert_true(p.o.debug);
	assert_string_equal(p.o.context, "x_u:y_r:z_t:s0");
	/* none of them reaches libfuse */
	ASSERT_EMPTY(p.o.fuse_opts);
	result_clear(&p);
}

static void test_squash_precedence_and_volatile(void **state)
{
	struct parse_result p;

	/* squash_to_uid wins over squash_to_root, in either order */
	assert_int_equal(PARSE(&p, "-o",
			       "lowerdir=/l,squash_to_uid=7,squash_to_root,"
			       "volatile",
			       "/m"),
			 0);
	assert_int_equal(p.o.squash_uid, 7);
	assert_int_equal(p.o.squash_gid, 0);
	assert_false(p.o.fsync);
	result_clear(&p);

	assert_int_equal(PARSE(&p, "-o",
			       "lowerdir=/l,squash_to_root,squash_to_gid=9",
			       "/m"),
			 0);
	assert_int_equal(p.o.squash_uid, 0);
	assert_int_equal(p.o.squash_gid, 9);
	assert_true(p.o.fsync);
	result_clear(&p);
}

/* What fuse-overlayfs hands to libfuse (which fails on it) is tolerated. */
static void test_tolerated_options(void **state)
{
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-o",
			       "lowerdir=/l,kernel_cache,splice_read,"
			       "splice_write,splice_move,diratime,nodiratime,"
			       "max_write,max_write=65536",
			       "/m"),
			 0);
	ASSERT_EMPTY(p.o.warnings);
	ASSERT_EMPTY(p.o.fuse_opts);
	result_clear(&p);
}

static void test_apply_list_error(void **state)
{
	struct strata_options o;
	char *err = NULL;

	strata_options_init(&o);
	assert_int_equal(strata_options_apply_list(&o, "ro,threaded=maybe",
						   &err),
			 -EINVAL);
	assert_one_line(err);
	assert_non_null(strstr(err, "maybe"));
	g_free(err);
	err = NULL;
	assert_int_equal(strata_options_apply_list(&o, "lowerdir=/x,nosuid",
						   &err),
			 0);
	assert_null(err);
	ASSERT_STRV(o.lowerdirs, "/x");
	strata_options_clear(&o);
}

/* ------------------------------------------------------------------ */
/* layer count limit */

static char *many_lowers(guint n)
{
	GString *g = g_string_new("lowerdir=");

	for (guint i = 0; i < n; i++)
		g_string_append_printf(g, "%s/layer%u", i ? ":" : "", i);
	return g_string_free(g, FALSE);
}

static void test_500_lowers_accepted(void **state)
{
	g_autofree char *list = many_lowers(STRATA_MAX_LOWER);
	struct parse_result p;

	assert_int_equal(STRATA_MAX_LOWER, 500);
	assert_int_equal(PARSE(&p, "-o", list, "/m"), 0);
	assert_int_equal(p.o.lowerdirs->len, 500);
	assert_string_equal(p.o.lowerdirs->pdata[0], "/layer0");
	assert_string_equal(p.o.lowerdirs->pdata[499], "/layer499");
	result_clear(&p);
}

static void test_501_lowers_rejected(void **state)
{
	g_autofree char *list = many_lowers(STRATA_MAX_LOWER + 1);
	struct parse_result p;

	assert_int_equal(PARSE(&p, "-o", list, "/m"), -EINVAL);
	assert_one_line(p.err);
	assert_non_null(strstr(p.err, "too many"));
	assert_non_null(strstr(p.err, "501"));
	ASSERT_EMPTY(p.o.lowerdirs);
	result_clear(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_after_init),
		cmocka_unit_test(test_lowerdir_order_kept),
		cmocka_unit_test(test_source_mountpoint_options_after),
		cmocka_unit_test(test_glued_o),
		cmocka_unit_test(test_several_o),
		cmocka_unit_test(test_later_lowerdir_replaces),
		cmocka_unit_test(test_double_dash_ends_flags),
		cmocka_unit_test(test_strings_and_upper_work),
		cmocka_unit_test(test_lowerdir_escaped_colon),
		cmocka_unit_test(test_lowerdir_escaped_backslash),
		cmocka_unit_test(test_split_lowerdir_direct),
		cmocka_unit_test(test_split_lowerdir_error_keeps_out),
		cmocka_unit_test(test_optlist_escaped_comma),
		cmocka_unit_test(test_lowerdir_escaped_comma),
		cmocka_unit_test(test_optlist_quoted_comma),
		cmocka_unit_test(test_quoted_option_is_one_item),
		cmocka_unit_test(test_optlist_empty_items),
		cmocka_unit_test(test_empty_items_in_parse),
		cmocka_unit_test(test_optlist_unterminated_quote),
		cmocka_unit_test(test_generic_options_accepted),
		cmocka_unit_test(test_ro_rw),
		cmocka_unit_test(test_unknown_option_warns_once),
		cmocka_unit_test(test_unknown_option_with_value),
		cmocka_unit_test(test_threaded_timeout_values),
		cmocka_unit_test(test_debug_option),
		cmocka_unit_test(test_help_version_no_mountpoint),
		cmocka_unit_test(test_flag_d_f_s),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_fuse_overlayfs_options),
		cmocka_unit_test(test_squash_precedence_and_volatile),
		cmocka_unit_test(test_tolerated_options),
		cmocka_unit_test(test_apply_list_error),
		cmocka_unit_test(test_500_lowers_accepted),
		cmocka_unit_test(test_501_lowers_rejected),
	};

	return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
