// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target: the -o option parser (options.c) and the id maps it hands
 * to idmap.c.  The input is one or more option lists separated by NUL
 * bytes, applied in order to one struct strata_options, as several -o
 * flags are.  Besides crashes and leaks it checks:
 *   - strata_split_optlist: no empty item; without quotes or backslashes
 *     it is exactly a split on commas;
 *   - strata_split_lowerdir: no empty path, at most STRATA_MAX_LOWER,
 *     escaping the result and joining it again gives the same list, and a
 *     failure leaves the caller's array as it was; without backslashes it
 *     is exactly a split on colons;
 *   - apply_list/parse: *err set exactly when they fail, and what they
 *     accepted is within the documented ranges.
 */
#include <errno.h>

#include "fuzz-util.h"
#include "stratafs/options.h"

static void check_optlist(const char *s)
{
	g_autofree char *err = NULL;
	g_auto(GStrv) items = strata_split_optlist(s, &err);

	if (items == NULL) {
		FUZZ_CHECK(err != NULL, "no message for '%s'", s);
		FUZZ_CHECK(strchr(s, '"') != NULL,
			   "failed without a quote: '%s'", s);
		return;
	}
	FUZZ_CHECK(err == NULL, "message '%s' on success", err);
	for (char **it = items; *it; it++)
		FUZZ_CHECK(**it != '\0', "empty item from '%s'", s);
	if (strpbrk(s, "\"\\") == NULL) {
		g_auto(GStrv) plain = g_strsplit(s, ",", -1);
		guint j = 0;

		for (char **p = plain; *p; p++) {
			if (**p == '\0')
				continue;
			FUZZ_CHECK(items[j] && strcmp(items[j], *p) == 0,
				   "item %u of '%s': '%s', want '%s'", j, s,
				   items[j] ? items[j] : "(end)", *p);
			j++;
		}
		FUZZ_CHECK(items[j] == NULL, "extra items from '%s'", s);
	}
}

static char *escape_lower(const char *p)
{
	GString *g = g_string_new(NULL);

	for (; *p; p++) {
		if (*p == ':' || *p == '\\')
			g_string_append_c(g, '\\');
		g_string_append_c(g, *p);
	}
	return g_string_free(g, FALSE);
}

static void check_lowerdir(const char *s)
{
	g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);
	g_autofree char *err = NULL;
	int r;

	/* a caller's array is appended to, never disturbed */
	g_ptr_array_add(out, g_strdup("sentinel"));
	r = strata_split_lowerdir(s, out, &err);
	FUZZ_CHECK(out->len >= 1 && strcmp(out->pdata[0], "sentinel") == 0,
		   "caller's entry lost");
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL && err != NULL, "r=%d err=%p", r,
			   (void *)err);
		FUZZ_CHECK(out->len == 1, "%u entries left after failure",
			   out->len);
	} else {
		FUZZ_CHECK(r == 0 && err == NULL, "r=%d err=%s", r, err);
		FUZZ_CHECK(out->len >= 2 && out->len - 1 <= STRATA_MAX_LOWER,
			   "%u lowers accepted", out->len - 1);
	}
	if (strchr(s, '\\') == NULL) {
		g_auto(GStrv) plain = g_strsplit(s, ":", -1);
		guint n = g_strv_length(plain);
		bool ok = *s != '\0' && n <= STRATA_MAX_LOWER;

		for (guint i = 0; i < n; i++)
			ok = ok && plain[i][0] != '\0';
		FUZZ_CHECK(ok == (r == 0), "'%s': r=%d, plain split says %d",
			   s, r, ok);
		for (guint i = 0; ok && i < n; i++)
			FUZZ_CHECK(strcmp(out->pdata[i + 1], plain[i]) == 0,
				   "path %u of '%s'", i, s);
	}
	if (r < 0)
		return;

	/* round trip: escape every path, join, split again */
	g_autoptr(GPtrArray) again = g_ptr_array_new_with_free_func(g_free);
	GString *joined = g_string_new(NULL);
	g_autofree char *err2 = NULL;
	g_autofree char *j = NULL;

	for (guint i = 1; i < out->len; i++) {
		g_autofree char *e = escape_lower(out->pdata[i]);

		FUZZ_CHECK(((char *)out->pdata[i])[0] != '\0',
			   "empty path %u from '%s'", i, s);
		if (i > 1)
			g_string_append_c(joined, ':');
		g_string_append(joined, e);
	}
	j = g_string_free(joined, FALSE);
	r = strata_split_lowerdir(j, again, &err2);
	FUZZ_CHECK(r == 0, "re-split of '%s' (from '%s') failed: %s", j, s,
		   err2);
	FUZZ_CHECK(again->len == out->len - 1, "re-split of '%s': %u paths, "
		   "want %u", j, again->len, out->len - 1);
	for (guint i = 0; i < again->len; i++)
		FUZZ_CHECK(strcmp(again->pdata[i], out->pdata[i + 1]) == 0,
			   "re-split path %u: '%s' != '%s'", i,
			   (char *)again->pdata[i], (char *)out->pdata[i + 1]);
}

static void check_idmap(const struct strata_idmap *m)
{
	if (m->ranges == NULL)
		return;
	for (guint i = 0; i < m->ranges->len; i++) {
		const struct strata_idrange *r =
			&g_array_index(m->ranges, struct strata_idrange, i);

		FUZZ_CHECK(r->count > 0, "empty range %u", i);
		FUZZ_CHECK((uint64_t)r->ondisk + r->count - 1 <= UINT32_MAX &&
			   (uint64_t)r->shown + r->count - 1 <= UINT32_MAX,
			   "range %u wraps", i);
	}
}

static void check_accepted(const struct strata_options *o)
{
	FUZZ_CHECK(o->lowerdirs->len <= STRATA_MAX_LOWER, "%u lowers",
		   o->lowerdirs->len);
	for (guint i = 0; i < o->lowerdirs->len; i++)
		FUZZ_CHECK(((char *)o->lowerdirs->pdata[i])[0] != '\0',
			   "empty lower %u", i);
	FUZZ_CHECK(!o->upperdir || *o->upperdir, "empty upperdir");
	FUZZ_CHECK(!o->workdir || *o->workdir, "empty workdir");
	FUZZ_CHECK(!o->context || *o->context, "empty context");
	FUZZ_CHECK(o->xattr_permissions >= 0 && o->xattr_permissions <= 2,
		   "xattr_permissions=%d", o->xattr_permissions);
	FUZZ_CHECK(o->squash_uid >= -1 && o->squash_uid < UINT32_MAX,
		   "squash_uid=%lld", (long long)o->squash_uid);
	FUZZ_CHECK(o->squash_gid >= -1 && o->squash_gid < UINT32_MAX,
		   "squash_gid=%lld", (long long)o->squash_gid);
	FUZZ_CHECK(o->timeout >= 0 && o->timeout <= 1e9, "timeout=%g",
		   o->timeout);
	check_idmap(&o->uidmap);
	check_idmap(&o->gidmap);
}

static void check_parse(const char *list)
{
	struct strata_options o;
	g_autofree char *err = NULL;
	char *argv[] = { "stratafs", "-o", (char *)list, "/mnt", NULL };
	int r;

	strata_options_init(&o);
	r = strata_options_parse(&o, 4, argv, &err);
	FUZZ_CHECK((r < 0) == (err != NULL), "parse: r=%d err=%s", r, err);
	if (r == 0) {
		check_accepted(&o);
		FUZZ_CHECK(o.lowerdirs->len > 0, "accepted without lowerdir");
		FUZZ_CHECK(!o.upperdir == !o.workdir,
			   "upperdir without workdir or back");
		FUZZ_CHECK(o.mountpoint && strcmp(o.mountpoint, "/mnt") == 0,
			   "mountpoint %s", o.mountpoint);
	}
	strata_options_clear(&o);
}

/* The NUL-separated pieces of the input as argv[1...]. */
static void check_argv(const uint8_t *data, size_t size)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
	const char *end = (const char *)data + size;
	struct strata_options o;
	g_autofree char *err = NULL;
	int r;

	g_ptr_array_add(argv, g_strdup("stratafs"));
	for (const char *p = (const char *)data; p < end && argv->len < 32;) {
		size_t len = strnlen(p, end - p);

		g_ptr_array_add(argv, g_strndup(p, len));
		p += len + 1;
	}
	strata_options_init(&o);
	r = strata_options_parse(&o, (int)argv->len, (char **)argv->pdata,
				 &err);
	FUZZ_CHECK((r < 0) == (err != NULL), "argv: r=%d err=%s", r, err);
	if (r == 0) {
		check_accepted(&o);
		if (!o.help && !o.version) {
			FUZZ_CHECK(o.lowerdirs->len > 0 && o.mountpoint,
				   "accepted without lowerdir or mount point");
			FUZZ_CHECK(!o.upperdir == !o.workdir,
				   "upperdir without workdir or back");
		}
	}
	strata_options_clear(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strata_options o;
	const char *end = (const char *)data + size;

	/* the whole input up to its first NUL, through every entry point */
	g_autofree char *first = fuzz_cstr(data, size);
	check_optlist(first);
	check_lowerdir(first);
	check_parse(first);
	check_argv(data, size);

	/* every NUL-separated list, in order, on one struct */
	strata_options_init(&o);
	for (const char *p = (const char *)data; p < end;) {
		size_t len = strnlen(p, end - p);
		g_autofree char *list = g_strndup(p, len);
		g_autofree char *err = NULL;
		int r = strata_options_apply_list(&o, list, &err);

		FUZZ_CHECK((r < 0) == (err != NULL), "apply '%s': r=%d err=%s",
			   list, r, err);
		if (r < 0)
			break;
		check_accepted(&o);
		p += len + 1;
	}
	strata_options_clear(&o);
	return 0;
}
