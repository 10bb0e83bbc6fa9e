// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Extended attributes through the mount.  The topmost real entry answers;
 * the overlay's own marker names (whiteout.c: strata_is_private_xattr) are
 * invisible: listxattr drops them and getxattr answers EOPNOTSUPP, as the
 * kernel overlayfs does for its own namespace.
 */
#include <string.h>

#include "stratafs/stratafs.h"

size_t strata_filter_xattr_list(char *buf, size_t len)
{
	size_t out = 0;

	for (size_t i = 0; i < len;) {
		size_t l = strnlen(buf + i, len - i);

		if (i + l >= len)
			break; /* unterminated tail: drop it */
		if (!strata_is_private_xattr(buf + i)) {
			memmove(buf + out, buf + i, l + 1);
			out += l + 1;
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

ssize_t strata_getxattr(struct strata_fs *fs, struct strata_inode *in,
			const char *xname, void *buf, size_t size)
{
	if (strata_is_private_xattr(xname))
		return -EOPNOTSUPP;
	return WITH_REAL(fs, in,
			 strata_do_getxattr_at(dirfd, name, xname, buf, size));
}

ssize_t strata_listxattr(struct strata_fs *fs, struct strata_inode *in,
			 char *buf, size_t size)
{
	g_autofree char *tmp = NULL;
	ssize_t r;

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
	if (size == 0)
		return r;
	if ((size_t)r > size)
		return -ERANGE;
	memcpy(buf, tmp, r);
	return r;
}
