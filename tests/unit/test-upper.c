// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The writable layer without a mount: opening an upper and a workdir (the
 * lock, the cleanup of leftovers, every refusal), writing whiteouts and
 * opaque markers in the kernel's formats, and copy-up (parents first,
 * data, owner, mode, xattrs, times, the st_ino kept, nothing left in work).
 */
#include "unit-util.h"

#include <sys/file.h>
#include <sys/mount.h>
#include <sys/wait.h>

struct up_fx {
	char *base;
	char *lower, *upper, *work;
	struct strata_fs fs;
	bool open;
};

static int up_setup(void **state)
{
	struct up_fx *fx = g_new0(struct up_fx, 1);

	fx->base = ut_mkdtemp();
	fx->lower = ut_path("%s/lower", fx->base);
	fx->upper = ut_path("%s/upper", fx->base);
	fx->work = ut_path("%s/work", fx->base);
	UT_CHECK(mkdir(fx->lower, 0755) == 0);
	UT_CHECK(mkdir(fx->upper, 0755) == 0);
	UT_CHECK(mkdir(fx->work, 0755) == 0);
	*state = fx;
	return 0;
}

static int up_teardown(void **state)
{
	struct up_fx *fx = *state;

	if (fx->open)
		strata_fs_close(&fx->fs);
	ut_rm_rf(fx->base);
	g_free(fx->base);
	g_free(fx->lower);
	g_free(fx->upper);
	g_free(fx->work);
	g_free(fx);
	return 0;
}

/* strata_fs_open with one lower, @upper and @work; returns its result. */
static int open_rw(struct strata_fs *fs, const char *lower, const char *upper,
		   const char *work, char **err)
{
	struct strata_options o;
	int r;

	strata_options_init(&o);
	g_ptr_array_add(o.lowerdirs, g_strdup(lower));
	o.upperdir = g_strdup(upper);
	o.workdir = work ? g_strdup(work) : NULL;
	memset(fs, 0, sizeof(*fs));
	r = strata_fs_open(fs, &o, err);
	strata_options_clear(&o);
	return r;
}

static struct strata_fs *up_open(struct up_fx *fx)
{
	g_autofree char *err = NULL;
	int r = open_rw(&fx->fs, fx->lower, fx->upper, fx->work, &err);

	fx->open = true;
	if (r != 0)
		fail_msg("strata_fs_open: %d: %s", r, err ? err : "");
	return &fx->fs;
}

static void write_file(const char *path, const char *data)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);

	UT_CHECK(fd >= 0);
	UT_CHECK(write(fd, data, strlen(data)) == (ssize_t)strlen(data));
	close(fd);
}

static void test_open_upper_layer_zero(void **state)
{
	struct up_fx *fx = *state;
	struct strata_fs *fs = up_open(fx);

	assert_true(fs->has_upper);
	assert_int_equal(fs->n_layers, 2);
	assert_true(fs->layers[0].upper);
	assert_false(fs->layers[1].upper);
	assert_true(fs->workfd >= 0);
	/* the root merges the upper and the lower */
	assert_int_equal(fs->root->stack->n, 2);
	assert_int_equal(fs->root->stack->e[0].layer, 0);
}

static void test_workdir_lock(void **state)
{
	struct up_fx *fx = *state;
	struct strata_fs second;
	g_autofree char *err = NULL;
	int r;

	up_open(fx);
	r = open_rw(&second, fx->lower, fx->upper, fx->work, &err);
	assert_int_equal(r, -EWOULDBLOCK);
	assert_non_null(strstr(err, "in use"));
	assert_null(strchr(err, '\n'));
	strata_fs_close(&second);

	/* released at close: a new mount may take it */
	strata_fs_close(&fx->fs);
	fx->open = false;
	g_clear_pointer(&err, g_free);
	r = open_rw(&second, fx->lower, fx->upper, fx->work, &err);
	assert_int_equal(r, 0);
	strata_fs_close(&second);
}

/* A daemon that is still exiting after its unmount holds the lock for a
 * moment: a mount right after it waits instead of failing. */
static void test_workdir_lock_released_soon(void **state)
{
	struct up_fx *fx = *state;
	struct strata_fs second;
	g_autofree char *err = NULL;
	int fd = open(fx->work, O_RDONLY | O_DIRECTORY);
	pid_t pid;
	int r, status;

	UT_CHECK(fd >= 0);
	pid = fork();
	if (pid == 0) {
		flock(fd, LOCK_EX);
		usleep(300 * 1000);
		_exit(0);
	}
	close(fd);
	usleep(50 * 1000); /* let the child take it */
	r = open_rw(&second, fx->lower, fx->upper, fx->work, &err);
	waitpid(pid, &status, 0);
	if (r != 0)
		fail_msg("open_rw: %d %s", r, err ? err : "");
	strata_fs_close(&second);
}

static void test_workdir_leftovers_cleaned(void **state)
{
	struct up_fx *fx = *state;
	g_autofree char *w = ut_path("%s/work", fx->work);
	g_autofree char *junk = ut_path("%s/#partial", w);
	g_autofree char *jdir = ut_path("%s/#dir", w);
	g_autofree char *jsub = ut_path("%s/#dir/f", w);
	g_autofree char *keep = ut_path("%s/index-like", fx->work);

	UT_CHECK(mkdir(w, 0700) == 0);
	write_file(junk, "half a copy");
	UT_CHECK(mkdir(jdir, 0700) == 0);
	write_file(jsub, "x");
	write_file(keep, "not ours to clean");
	up_open(fx);
	assert_int_equal(access(junk, F_OK), -1);
	assert_int_equal(access(jdir, F_OK), -1);
	/* only work/ is ours */
	assert_int_equal(access(keep, F_OK), 0);
}

static void test_refusals(void **state)
{
	struct up_fx *fx = *state;
	g_autofree char *inside = ut_path("%s/u", fx->lower);
	g_autofree char *wunder = ut_path("%s/w", fx->upper);
	struct {
		const char *what, *upper, *work, *needle;
		int err;
	} cases[] = {
		{ "no workdir", fx->upper, NULL, "workdir", -EINVAL },
		{ "missing upper", "/nonexistent-u", fx->work, "upperdir",
		  -ENOENT },
		{ "missing workdir", fx->upper, "/nonexistent-w", "workdir",
		  -ENOENT },
		{ "upper inside lower", inside, fx->work, "overlap", -EINVAL },
		{ "workdir inside upper", fx->upper, wunder, "separate",
		  -EINVAL },
	};

	UT_CHECK(mkdir(inside, 0755) == 0);
	UT_CHECK(mkdir(wunder, 0755) == 0);
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct strata_fs fs;
		g_autofree char *err = NULL;
		int r = open_rw(&fs, fx->lower, cases[i].upper, cases[i].work,
				&err);

		if (r != cases[i].err || !err ||
		    !strstr(err, cases[i].needle) || strchr(err, '\n'))
			fail_msg("%s: r=%d err=%s", cases[i].what, r,
				 err ? err : "(null)");
		strata_fs_close(&fs);
	}
}

static void test_root_workdir_other_fs(void **state)
{
	struct up_fx *fx = *state;
	g_autofree char *other = ut_path("%s/tmpfs", fx->base);
	g_autofree char *err = NULL;
	struct strata_fs fs;
	int r;

	/* a filesystem of its own for the workdir */
	UT_CHECK(mkdir(other, 0755) == 0);
	UT_CHECK(mount("tmpfs", other, "tmpfs", 0, "size=1m") == 0);
	r = open_rw(&fs, fx->lower, fx->upper, other, &err);
	umount2(other, MNT_DETACH);
	assert_int_equal(r, -EXDEV);
	assert_non_null(strstr(err, "same filesystem"));
	strata_fs_close(&fs);
}

static void test_whiteout_and_opaque_formats(void **state)
{
	struct up_fx *fx = *state;
	struct strata_fs *fs = up_open(fx);
	g_autofree char *f = ut_path("%s/f", fx->upper);
	g_autofree char *d = ut_path("%s/d", fx->upper);
	struct stat st;
	char v[4];

	write_file(f, "replaced");
	assert_int_equal(strata_whiteout_replace(fs, fs->layers[0].fd, "f"), 0);
	assert_int_equal(lstat(f, &st), 0);
	if (fs->wh_format == STRATA_WH_CHARDEV) {
		/* the kernel's own format */
		assert_true(S_ISCHR(st.st_mode));
		assert_int_equal(st.st_rdev, makedev(0, 0));
	} else {
		assert_true(S_ISREG(st.st_mode));
		assert_int_equal(st.st_size, 0);
	}
	assert_int_equal(strata_upper_state(fs->layers[0].fd, "f", &st),
			 STRATA_UPPER_WHITEOUT);

	UT_CHECK(mkdir(d, 0755) == 0);
	assert_int_equal(strata_set_opaque(fs, fs->layers[0].fd, "d"), 0);
	assert_int_equal(lgetxattr(d, strata_marker_xattr(STRATA_MARKER_OPAQUE,
							  fs->xattr_ns),
				   v, sizeof(v)),
			 1);
	assert_int_equal(v[0], 'y');
	/* as root the kernel's privileged namespace */
	if (ut_is_root())
		assert_int_equal(fs->xattr_ns, STRATA_NS_TRUSTED);

	/* a directory replaced by a whiteout, contents gone */
	g_autofree char *sub = ut_path("%s/d/inner", fx->upper);
	write_file(sub, "x");
	assert_int_equal(strata_whiteout_dir(fs, fs->layers[0].fd, "d"), 0);
	assert_int_equal(strata_upper_state(fs->layers[0].fd, "d", &st),
			 STRATA_UPPER_WHITEOUT);
	/* nothing left behind in work but the shared whiteout, of which
	 * the chardev whiteouts are links (as the kernel makes them) */
	g_autofree char *w = ut_path("%s/work", fx->work);
	g_autoptr(GDir) gd = g_dir_open(w, 0, NULL);
	const char *left;

	assert_non_null(gd);
	while ((left = g_dir_read_name(gd)) != NULL)
		assert_string_equal(left, "#whiteout");
	if (fs->wh_format == STRATA_WH_CHARDEV) {
		g_autofree char *shared = ut_path("%s/#whiteout", w);
		struct stat sst;

		UT_CHECK(lstat(shared, &sst) == 0);
		assert_true(strata_is_chardev_whiteout(&sst));
		assert_int_equal(strata_upper_state(fs->layers[0].fd, "d", &st),
				 STRATA_UPPER_WHITEOUT);
		assert_int_equal(st.st_ino, sst.st_ino);
		assert_true(sst.st_nlink >= 3); /* itself, f and d */
	}
}

static void test_copy_up_file(void **state)
{
	struct up_fx *fx = *state;
	g_autofree char *ld = ut_path("%s/a", fx->lower);
	g_autofree char *lf = ut_path("%s/a/f", fx->lower);
	g_autofree char *uf = ut_path("%s/a/f", fx->upper);
	g_autofree char *ud = ut_path("%s/a", fx->upper);
	struct timespec t[2] = { { 1000, 5 }, { 2000, 7 } };
	struct strata_fs *fs;
	struct strata_inode *a, *f;
	struct stat st, ust, dst;
	uint64_t ino;
	char buf[32];

	UT_CHECK(mkdir(ld, 0750) == 0);
	write_file(lf, "lower data");
	UT_CHECK(lsetxattr(lf, "user.k", "v", 1, 0) == 0);
	if (ut_is_root())
		UT_CHECK(lchown(lf, 1234, 5678) == 0);
	UT_CHECK(chmod(lf, 04755) == 0); /* after chown, which clears it */
	UT_CHECK(utimensat(AT_FDCWD, lf, t, AT_SYMLINK_NOFOLLOW) == 0);
	UT_CHECK(utimensat(AT_FDCWD, ld, t, AT_SYMLINK_NOFOLLOW) == 0);
	fs = up_open(fx);

	assert_int_equal(strata_lookup(fs, fs->root, "a", &a, &st), 0);
	assert_int_equal(strata_lookup(fs, a, "f", &f, &st), 0);
	ino = f->ino;
	assert_int_equal(f->layer, 1);
	assert_int_equal(strata_copy_up(fs, f, true), 0);

	/* the parent came up first, with its own attributes and times */
	assert_int_equal(lstat(ud, &dst), 0);
	assert_int_equal(dst.st_mode & 07777, 0750);
	assert_int_equal(dst.st_mtim.tv_sec, 2000);
	/* the file: data, mode incl. setuid, owner, xattr, times */
	assert_int_equal(lstat(uf, &ust), 0);
	assert_int_equal(ust.st_mode & 07777, 04755);
	assert_int_equal(ust.st_size, strlen("lower data"));
	assert_int_equal(ust.st_mtim.tv_sec, 2000);
	assert_int_equal(ust.st_mtim.tv_nsec, 7);
	if (ut_is_root()) {
		assert_int_equal(ust.st_uid, 1234);
		assert_int_equal(ust.st_gid, 5678);
	}
	assert_int_equal(lgetxattr(uf, "user.k", buf, sizeof(buf)), 1);
	/* the inode now lives in the upper and keeps its st_ino */
	assert_int_equal(f->layer, 0);
	assert_int_equal(f->ino, ino);
	assert_int_equal(strata_getattr(fs, f, &st), 0);
	assert_int_equal(st.st_ino, ino);
	/* a second copy-up is a no-op */
	assert_int_equal(strata_copy_up(fs, f, true), 0);
	strata_inode_unref(fs, f, 1);
	strata_inode_unref(fs, a, 1);

	/* after a remount the origin still gives the same st_ino */
	strata_fs_close(&fx->fs);
	fx->open = false;
	fs = up_open(fx);
	assert_int_equal(strata_lookup(fs, fs->root, "a", &a, &st), 0);
	assert_int_equal(strata_lookup(fs, a, "f", &f, &st), 0);
	assert_int_equal(f->layer, 0);
	assert_int_equal(st.st_ino, ino);
	strata_inode_unref(fs, f, 1);
	strata_inode_unref(fs, a, 1);
}

static void test_copy_up_sparse_and_special(void **state)
{
	struct up_fx *fx = *state;
	g_autofree char *ls = ut_path("%s/sparse", fx->lower);
	g_autofree char *us = ut_path("%s/sparse", fx->upper);
	g_autofree char *ll = ut_path("%s/link", fx->lower);
	g_autofree char *ul = ut_path("%s/link", fx->upper);
	g_autofree char *lp = ut_path("%s/fifo", fx->lower);
	g_autofree char *up = ut_path("%s/fifo", fx->upper);
	struct strata_fs *fs;
	struct strata_inode *in;
	struct stat st;
	char target[64];
	int fd;

	fd = open(ls, O_CREAT | O_WRONLY, 0644);
	UT_CHECK(fd >= 0);
	UT_CHECK(pwrite(fd, "end", 3, 64 << 20) == 3);
	close(fd);
	UT_CHECK(symlink("some/where", ll) == 0);
	UT_CHECK(mkfifo(lp, 0640) == 0);
	fs = up_open(fx);

	assert_int_equal(strata_lookup(fs, fs->root, "sparse", &in, &st), 0);
	assert_int_equal(strata_copy_up(fs, in, true), 0);
	strata_inode_unref(fs, in, 1);
	assert_int_equal(lstat(us, &st), 0);
	assert_int_equal(st.st_size, (64 << 20) + 3);
	/* the hole stayed a hole */
	assert_true(st.st_blocks * 512 < (1 << 20));

	assert_int_equal(strata_lookup(fs, fs->root, "link", &in, &st), 0);
	assert_int_equal(strata_copy_up(fs, in, true), 0);
	strata_inode_unref(fs, in, 1);
	assert_int_equal(readlink(ul, target, sizeof(target)), 10);
	assert_memory_equal(target, "some/where", 10);

	/* a fifo stays a fifo (fuse-overlayfs made it a regular file) */
	assert_int_equal(strata_lookup(fs, fs->root, "fifo", &in, &st), 0);
	assert_int_equal(strata_copy_up(fs, in, true), 0);
	strata_inode_unref(fs, in, 1);
	assert_int_equal(lstat(up, &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0640);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, up_setup, up_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_open_upper_layer_zero),
		T(test_workdir_lock),
		T(test_workdir_lock_released_soon),
		T(test_workdir_leftovers_cleaned),
		T(test_refusals),
		T(test_root_workdir_other_fs),
		T(test_whiteout_and_opaque_formats),
		T(test_copy_up_file),
		T(test_copy_up_sparse_and_special),
	};

	return UT_RUN_GROUP("upper", tests, NULL, NULL);
}
