/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Helpers shared by the unit tests: scratch directories under /tmp, files
 * with xattrs, and opening a struct strata_fs on a list of layers.
 * Everything here aborts the current test (cmocka fail) on a setup error,
 * so a test never runs on a half-built tree.
 */
#ifndef STRATAFS_UNIT_UTIL_H
#define STRATAFS_UNIT_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "stratafs/stratafs.h"

/* Fail the test with a message when a setup call fails. */
#define UT_CHECK(expr)                                                        \
	do {                                                                  \
		if (!(expr))                                                  \
			fail_msg("setup failed: %s: %s", #expr,               \
				 g_strerror(errno));                          \
	} while (0)

static inline bool ut_is_root(void)
{
	return geteuid() == 0;
}

/* A fresh directory /tmp/stratafs-unit-XXXXXX; g_free the result. */
static inline char *ut_mkdtemp(void)
{
	char *p = g_strdup("/tmp/stratafs-unit-XXXXXX");

	UT_CHECK(mkdtemp(p) != NULL);
	return p;
}

static int ut_rm_one(const char *path, const struct stat *st, int flag,
		     struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 ? -1 : 0;
	return unlink(path) < 0 ? -1 : 0;
}

/* rm -rf @path (no symlink is followed). */
static inline void ut_rm_rf(const char *path)
{
	if (path)
		nftw(path, ut_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Printf-style path builder; g_free the result. */
static inline char *ut_path(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static inline char *ut_path(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	return s;
}

/* mkdir -p */
static inline void ut_mkdir(const char *path)
{
	UT_CHECK(g_mkdir_with_parents(path, 0755) == 0);
}

/* Create (or truncate) a regular file holding @content. */
static inline void ut_write(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	size_t len = strlen(content);

	UT_CHECK(fd >= 0);
	UT_CHECK(write(fd, content, len) == (ssize_t)len);
	close(fd);
}

/* Set an xattr on @path itself (not following a symlink). */
static inline void ut_setxattr(const char *path, const char *name,
			       const char *value)
{
	UT_CHECK(lsetxattr(path, name, value, strlen(value), 0) == 0);
}

/* lstat(@path)->st_ino */
static inline ino_t ut_ino(const char *path)
{
	struct stat st;

	UT_CHECK(lstat(path, &st) == 0);
	return st.st_ino;
}

/* An O_PATH|O_DIRECTORY descriptor of @path, as the stacks hold. */
static inline int ut_open_path_dir(const char *path)
{
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);

	UT_CHECK(fd >= 0);
	return fd;
}

/*
 * Open @fs on the layers @dirs[0..n-1] (top first).  Returns what
 * strata_fs_open returns; *err is set on failure (caller frees).
 * @fs is zeroed first, so strata_fs_close is always safe afterwards.
 */
static inline int ut_fs_open_v(struct strata_fs *fs, char **dirs, guint n,
			       char **err)
{
	struct strata_options o;
	int r;

	memset(fs, 0, sizeof(*fs));
	strata_options_init(&o);
	for (guint i = 0; i < n; i++)
		g_ptr_array_add(o.lowerdirs, g_strdup(dirs[i]));
	r = strata_fs_open(fs, &o, err);
	strata_options_clear(&o);
	return r;
}

/* Same, NULL-terminated list of layer paths; fails the test on error. */
static inline void ut_fs_open(struct strata_fs *fs, ...)
{
	g_autoptr(GPtrArray) dirs = g_ptr_array_new();
	g_autofree char *err = NULL;
	const char *d;
	va_list ap;
	int r;

	va_start(ap, fs);
	while ((d = va_arg(ap, const char *)) != NULL)
		g_ptr_array_add(dirs, (char *)d);
	va_end(ap);
	r = ut_fs_open_v(fs, (char **)dirs->pdata, dirs->len, &err);
	if (r != 0)
		fail_msg("strata_fs_open: %d: %s", r, err ? err : "(no message)");
}

/* Names of a dirsnap (or part of it) joined with ',', e.g. "a,b,c". */
static inline char *ut_snap_names(const struct strata_dirsnap *s,
				  guint first)
{
	GString *g = g_string_new(NULL);

	for (guint i = first; i < s->ents->len; i++) {
		const struct strata_dirent *d =
			&g_array_index(s->ents, struct strata_dirent, i);

		if (g->len)
			g_string_append_c(g, ',');
		g_string_append(g, d->name);
	}
	return g_string_free(g, FALSE);
}

/* The entry named @name in @s, or NULL. */
static inline const struct strata_dirent *
ut_snap_find(const struct strata_dirsnap *s, const char *name)
{
	for (guint i = 0; i < s->ents->len; i++) {
		const struct strata_dirent *d =
			&g_array_index(s->ents, struct strata_dirent, i);

		if (strcmp(d->name, name) == 0)
			return d;
	}
	return NULL;
}

/*
 * Run a cmocka group, leaving out the tests named "test_root_*" unless we
 * run as root.  Those tests call skip() themselves when not root, but
 * cmocka 1.1.5 reports a skipped test as "not ok N # SKIP", which meson's
 * TAP parser counts as a failure; so they are left out of the plan, each
 * with a TAP comment saying so.
 */
static inline int ut_run_group(const char *name, const struct CMUnitTest *tests,
			       size_t n, CMFixtureFunction setup,
			       CMFixtureFunction teardown)
{
	g_autoptr(GArray) run = g_array_new(FALSE, FALSE,
					    sizeof(struct CMUnitTest));

	for (size_t i = 0; i < n; i++) {
		if (!ut_is_root() &&
		    g_str_has_prefix(tests[i].name, "test_root_")) {
			printf("# not run (needs root): %s\n", tests[i].name);
			continue;
		}
		g_array_append_val(run, tests[i]);
	}
	fflush(stdout);
	return _cmocka_run_group_tests(name,
				       (const struct CMUnitTest *)run->data,
				       run->len, setup, teardown);
}

#define UT_RUN_GROUP(name, tests, setup, teardown)                            \
	ut_run_group((name), (tests), G_N_ELEMENTS(tests), (setup), (teardown))


/*
 * A per-test tree: BASE/l0 .. BASE/l{UT_MAX_LAYERS-1}, empty directories
 * to be populated by the test, and a struct strata_fs opened on some of
 * them with ut_fx_open().  Use ut_fx_setup/ut_fx_teardown as cmocka's
 * per-test setup and teardown: the tree is removed and the fs closed
 * even when the test fails.
 */
#define UT_MAX_LAYERS 4

struct ut_fx {
	char *base;
	char *l[UT_MAX_LAYERS];
	struct strata_fs fs;
	bool open;
};

static inline int ut_fx_setup(void **state)
{
	struct ut_fx *fx = g_new0(struct ut_fx, 1);

	fx->base = ut_mkdtemp();
	for (int i = 0; i < UT_MAX_LAYERS; i++) {
		fx->l[i] = ut_path("%s/l%d", fx->base, i);
		ut_mkdir(fx->l[i]);
	}
	*state = fx;
	return 0;
}

static inline int ut_fx_teardown(void **state)
{
	struct ut_fx *fx = *state;

	if (fx == NULL)
		return 0;
	if (fx->open)
		strata_fs_close(&fx->fs);
	ut_rm_rf(fx->base);
	g_free(fx->base);
	for (int i = 0; i < UT_MAX_LAYERS; i++)
		g_free(fx->l[i]);
	g_free(fx);
	*state = NULL;
	return 0;
}

/* Open the fs on the first @n layers, top first. */
static inline struct strata_fs *ut_fx_open(struct ut_fx *fx, guint n)
{
	g_autofree char *err = NULL;
	int r;

	assert_true(n >= 1 && n <= UT_MAX_LAYERS);
	r = ut_fs_open_v(&fx->fs, fx->l, n, &err);
	fx->open = true; /* close even a half-opened fs */
	if (r != 0)
		fail_msg("strata_fs_open: %d: %s", r, err ? err : "(none)");
	return &fx->fs;
}

/* Path inside layer @layer: ut_lp(fx, 1, "d/f"); g_free the result. */
static inline char *ut_lp(struct ut_fx *fx, int layer, const char *rel)
{
	return ut_path("%s/%s", fx->l[layer], rel);
}

/* Helpers that build an entry inside a layer in one call. */
static inline void ut_lmkdir(struct ut_fx *fx, int layer, const char *rel)
{
	g_autofree char *p = ut_lp(fx, layer, rel);

	ut_mkdir(p);
}

static inline void ut_lwrite(struct ut_fx *fx, int layer, const char *rel,
			     const char *content)
{
	g_autofree char *p = ut_lp(fx, layer, rel);

	ut_write(p, content);
}

static inline void ut_lsetxattr(struct ut_fx *fx, int layer, const char *rel,
				const char *name, const char *value)
{
	g_autofree char *p = ut_lp(fx, layer, rel);

	ut_setxattr(p, name, value);
}

/* An xattr whiteout (empty file + user.overlay.whiteout) at @rel. */
static inline void ut_lxwhiteout(struct ut_fx *fx, int layer, const char *rel)
{
	ut_lwrite(fx, layer, rel, "");
	ut_lsetxattr(fx, layer, rel, "user.overlay.whiteout", "");
}

static inline ino_t ut_lino(struct ut_fx *fx, int layer, const char *rel)
{
	g_autofree char *p = ut_lp(fx, layer, rel);

	return ut_ino(p);
}

static inline uint64_t ut_refs(const struct strata_inode *in)
{
	return __atomic_load_n(&in->refs, __ATOMIC_SEQ_CST);
}

#endif
