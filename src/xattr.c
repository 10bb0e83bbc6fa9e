// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Extended attributes through the mount.  The topmost real entry answers.
 *
 * The overlay's own names never show: listxattr drops them and getxattr
 * answers ENODATA, as the kernel overlayfs (>= 6.7) does.  Like the kernel,
 * the user still has a namespace of that name: "trusted.overlay.NAME" seen
 * through the mount is stored in a layer as "trusted.overlay.overlay.NAME"
 * (escaped), and means nothing to the merge; the same for user.overlay.*.
 * Names of other overlay implementations (user.fuseoverlayfs.*) and our
 * own (*.stratafs.*) are simply hidden.
 */
#include <string.h>

#include "stratafs/stratafs.h"

static const char *const escapable[] = { "trusted.overlay.", "user.overlay." };
#define ESCAPE "overlay."

/*
 * The real name behind a name a user asks for: *real is the escaped name,
 * or @xname itself (not allocated).  -ENODATA for a hidden private name.
 */
static int real_xattr_name(const char *xname, char **real)
{
	*real = NULL;
	for (size_t i = 0; i < G_N_ELEMENTS(escapable); i++) {
		size_t n = strlen(escapable[i]);

		if (strncmp(xname, escapable[i], n) == 0) {
			*real = g_strconcat(escapable[i], ESCAPE, xname + n,
					    NULL);
			return 0;
		}
	}
	return strata_is_private_xattr(xname) ? -ENODATA : 0;
}

/*
 * How a real name shows: -1 hidden, 0 as it is, or n > 0: unescaped, its
 * first n bytes (the "P.overlay." prefix) kept and the escape after them
 * dropped.
 */
static int shown_xattr_name(const char *real)
{
	for (size_t i = 0; i < G_N_ELEMENTS(escapable); i++) {
		size_t n = strlen(escapable[i]);

		if (strncmp(real, escapable[i], n) == 0)
			return strncmp(real + n, ESCAPE, strlen(ESCAPE)) == 0
				       ? (int)n
				       : -1; /* a marker */
	}
	return strata_is_private_xattr(real) ? -1 : 0;
}

size_t strata_filter_xattr_list(char *buf, size_t len)
{
	size_t out = 0;

	/* the output never outgrows the input: rewrite in place */
	for (size_t i = 0; i < len;) {
		size_t l = strnlen(buf + i, len - i);
		int how;

		if (i + l >= len)
			break; /* unterminated tail: drop it */
		how = shown_xattr_name(buf + i);
		if (how == 0) {
			memmove(buf + out, buf + i, l + 1);
			out += l + 1;
		} else if (how > 0) {
			size_t skip = how + strlen(ESCAPE);

			memmove(buf + out, buf + i, how);
			memmove(buf + out + how, buf + i + skip, l + 1 - skip);
			out += l + 1 - strlen(ESCAPE);
		}
		i += l + 1;
	}
	return out;
}

/* Run @fn on the real entry of @in: (dirfd, name) or (dirfd, NULL). */
#define WITH_REAL(fs, in, call)                                               \
	({                                                                    \
		ssize_t _r;                                                   \
		if (S_ISDIR((in)->type)) {                                    \
			struct strata_stack *_s = strata_inode_stack(in);     \
			int dirfd = _s->e[0].fd;                              \
			const char *name = NULL;                              \
			_r = (call);                                          \
			strata_stack_unref(_s);                               \
		} else {                                                      \
			g_autofree char *_n = NULL;                           \
			struct strata_stack *_s;                              \
			uint32_t _layer;                                      \
			int dirfd;                                            \
			_r = strata_inode_where(fs, in, &_s, &dirfd, &_n,     \
						&_layer);                     \
			if (_r == 0) {                                        \
				const char *name = _n;                        \
				_r = (call);                                  \
				strata_stack_unref(_s);                       \
			}                                                     \
		}                                                             \
		_r;                                                           \
	})

/* noxattrs, noacl: names the mount does not serve */
static int served(struct strata_fs *fs, const char *xname)
{
	if (!fs->xattrs)
		return -EOPNOTSUPP;
	if (!fs->acl && g_str_has_prefix(xname, "system.posix_acl_"))
		return -EOPNOTSUPP;
	return 0;
}

/* The kernel asks for security.capability before each write: its
 * absence is remembered per inode (cap_seq). */
static bool is_cap(const char *xname)
{
	return strcmp(xname, "security.capability") == 0;
}

/* Forget a remembered absence: @xname is about to change. */
static void cap_changing(struct strata_inode *in, const char *xname)
{
	int seq;

	if (!is_cap(xname))
		return;
	do
		seq = g_atomic_int_get(&in->cap_seq);
	while (!g_atomic_int_compare_and_exchange(&in->cap_seq, seq,
						  (seq + 2) & ~1));
}

ssize_t strata_getxattr(struct strata_fs *fs, struct strata_inode *in,
			const char *xname, void *buf, size_t size)
{
	g_autofree char *real = NULL;
	int r = served(fs, xname);

	if (r < 0)
		return r;
	r = real_xattr_name(xname, &real);
	if (r < 0)
		return r;
	if (real)
		xname = real;
	if (is_cap(xname)) {
		int seq = g_atomic_int_get(&in->cap_seq);
		ssize_t n;

		if (seq & 1)
			return -ENODATA;
		n = WITH_REAL(fs, in, strata_do_getxattr_at(dirfd, name, xname,
							    buf, size));
		if (n == -ENODATA)
			g_atomic_int_compare_and_exchange(&in->cap_seq, seq,
							  seq | 1);
		return n;
	}
	return WITH_REAL(fs, in,
			 strata_do_getxattr_at(dirfd, name, xname, buf, size));
}

static size_t drop_acl_names(char *buf, size_t len)
{
	size_t out = 0;

	for (size_t i = 0; i < len;) {
		size_t l = strlen(buf + i);

		if (!g_str_has_prefix(buf + i, "system.posix_acl_")) {
			memmove(buf + out, buf + i, l + 1);
			out += l + 1;
		}
		i += l + 1;
	}
	return out;
}

ssize_t strata_listxattr(struct strata_fs *fs, struct strata_inode *in,
			 char *buf, size_t size)
{
	g_autofree char *tmp = NULL;
	ssize_t r;

	if (!fs->xattrs)
		return -EOPNOTSUPP;
	/* The real list may be longer than what we show (private names),
	 * so always fetch it whole, then filter, then fit it to @size. */
	for (;;) {
		r = WITH_REAL(fs, in,
			      strata_do_listxattr_at(dirfd, name, NULL, 0));
		if (r <= 0)
			return r;
		g_free(tmp);
		tmp = g_malloc(r);
		r = WITH_REAL(fs, in,
			      strata_do_listxattr_at(dirfd, name, tmp, r));
		if (r != -ERANGE)
			break; /* grew meanwhile: retry */
	}
	if (r < 0)
		return r;
	r = strata_filter_xattr_list(tmp, r);
	if (!fs->acl)
		r = drop_acl_names(tmp, r);
	if (size == 0)
		return r;
	if ((size_t)r > size)
		return -ERANGE;
	memcpy(buf, tmp, r);
	return r;
}

/* The upper real object of @in, after copying it up. */
static int upper_of(struct strata_fs *fs, struct strata_inode *in,
		    struct strata_stack **s, int *dirfd, char **name)
{
	int r;

	if (!fs->has_upper)
		return -EROFS;
	r = strata_copy_up(fs, in, true);
	return r < 0 ? r : strata_inode_real(fs, in, s, dirfd, name);
}

int strata_setxattr(struct strata_fs *fs, struct strata_inode *in,
		    const char *xname, const void *val, size_t size,
		    int flags)
{
	g_autofree char *real = NULL;
	g_autofree char *name = NULL;
	struct strata_stack *s = NULL;
	int dirfd, r;

	r = served(fs, xname);
	if (r < 0)
		return r;
	r = real_xattr_name(xname, &real);
	if (r < 0)
		return -EPERM; /* another overlay's private name */
	r = upper_of(fs, in, &s, &dirfd, &name);
	if (r < 0)
		return r;
	cap_changing(in, xname);
	r = strata_do_setxattr_at(dirfd, name, real ? real : xname, val, size,
				  flags);
	cap_changing(in, xname);
	strata_stack_unref(s);
	return r;
}

int strata_removexattr(struct strata_fs *fs, struct strata_inode *in,
		       const char *xname)
{
	g_autofree char *real = NULL;
	g_autofree char *name = NULL;
	struct strata_stack *s = NULL;
	char probe;
	int dirfd, r;

	r = served(fs, xname);
	if (r < 0)
		return r;
	r = real_xattr_name(xname, &real);
	if (r < 0)
		return r;
	/* nothing to remove: say so without copying up */
	r = (int)strata_getxattr(fs, in, xname, &probe, 0);
	if (r < 0)
		return r;
	r = upper_of(fs, in, &s, &dirfd, &name);
	if (r < 0)
		return r;
	cap_changing(in, xname);
	r = strata_do_removexattr_at(dirfd, name, real ? real : xname);
	cap_changing(in, xname);
	strata_stack_unref(s);
	return r;
}
