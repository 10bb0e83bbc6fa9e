/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Internal interfaces of stratafs, grouped by the file that owns them.
 * Every fallible function returns 0 (or a non-negative result) or -errno.
 * Only ops.c sees fuse_req_t; everything here is callable from unit tests.
 */
#ifndef STRATAFS_STRATAFS_H
#define STRATAFS_STRATAFS_H

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <errno.h>
#include <unistd.h>
#include <stdarg.h>
#include <sys/statvfs.h>

#include "stratafs/options.h"
#include "stratafs/types.h"

/* glib 2.74 has no g_autofd: our own, preserving errno. */
static inline void strata_close_fdp(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
#define strata_autofd __attribute__((cleanup(strata_close_fdp))) int

/* log.c */
void strata_log_init(bool debug, bool to_syslog);
bool strata_log_debug_enabled(void);
void strata_err(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void strata_warn(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void strata_dbg(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* sys.c: system call wrappers; each returns a result >= 0 or -errno */
int strata_do_openat(int dirfd, const char *name, int flags, mode_t mode);
int strata_do_fstatat(int dirfd, const char *name, struct stat *st,
		      int flags);
int strata_do_readlinkat(int dirfd, const char *name, char *buf,
			 size_t size);
/* xattrs of @name inside the directory @dirfd (an O_PATH fd is fine);
 * @name NULL means the directory itself.  Symlinks are not followed. */
ssize_t strata_do_getxattr_at(int dirfd, const char *name,
			      const char *xname, void *buf, size_t size);
ssize_t strata_do_listxattr_at(int dirfd, const char *name, char *buf,
			       size_t size);
int strata_do_fstatvfs(int fd, struct statvfs *sv);

/* whiteout.c: marker formats, read side */
enum strata_marker {
	STRATA_MARKER_OPAQUE,
	STRATA_MARKER_WHITEOUT,
	STRATA_MARKER__COUNT,
};
enum strata_xattr_ns { STRATA_NS_TRUSTED, STRATA_NS_USER, STRATA_NS__COUNT };
/* "trusted.overlay.opaque", "user.overlay.whiteout", ... */
const char *strata_marker_xattr(enum strata_marker m, enum strata_xattr_ns ns);
#define STRATA_AUFS_PREFIX ".wh."
#define STRATA_AUFS_OPAQUE ".wh..wh..opq"
bool strata_is_aufs_name(const char *name);
/* true for a private xattr name that must never show through the mount */
bool strata_is_private_xattr(const char *name);
/* 0/0 character device */
bool strata_is_chardev_whiteout(const struct stat *st);

enum strata_opaque_val { STRATA_OPAQUE_NONE, STRATA_OPAQUE_Y, STRATA_OPAQUE_X };
enum strata_opaque_val strata_parse_opaque(const char *val, ssize_t len);

struct strata_dir_markers {
	bool opaque;	 /* lower layers of this name are not merged */
	bool xwhiteouts; /* may contain xattr whiteouts (opaque=x) */
};
/* Read the markers of the real directory @dirfd (O_PATH is fine). */
int strata_read_dir_markers(int dirfd, struct strata_dir_markers *m);
/* 1 if @name in @dirfd (lstat'ed as @st) is a whiteout of any format held
 * by the entry itself (0/0 chardev, xattr whiteout), 0 if not. */
int strata_entry_is_whiteout(int dirfd, const char *name,
			     const struct stat *st);
/* 1 if an AUFS ".wh.NAME" for @name exists in @dirfd, 0 if not. */
int strata_aufs_whiteout_exists(int dirfd, const char *name);

/* inode.c: the inode table */
struct strata_stack *strata_stack_new(uint32_t n);
struct strata_stack *strata_stack_ref(struct strata_stack *s);
void strata_stack_unref(struct strata_stack *s);
/* The entry of @layer in @s, or NULL. */
const struct strata_stack_entry *
strata_stack_find(const struct strata_stack *s, uint32_t layer);

void strata_table_init(struct strata_fs *fs);
void strata_table_destroy(struct strata_fs *fs);
/* Find the inode @ino or create it from the given location.  Takes one
 * reference on the result.  @stack is consumed. */
struct strata_inode *strata_inode_get(struct strata_fs *fs, uint64_t ino,
				      mode_t type,
				      struct strata_inode *parent,
				      const char *name, uint32_t layer,
				      struct strata_stack *stack);
void strata_inode_ref(struct strata_inode *in, uint64_t n);
void strata_inode_unref(struct strata_fs *fs, struct strata_inode *in,
			uint64_t n);
struct strata_stack *strata_inode_stack(struct strata_inode *in);
/* The real directory fd of @in's parent in @in's layer, plus name: where
 * the object is.  Returns the parent stack (reference, keeps the fd
 * alive) to be released with strata_stack_unref. */
int strata_inode_where(struct strata_fs *fs, struct strata_inode *in,
		       struct strata_stack **pstack, int *dirfd, char **name,
		       uint32_t *layer);
size_t strata_table_size(struct strata_fs *fs);

/* attr.c */
uint64_t strata_map_ino(const struct strata_fs *fs, uint32_t layer,
			ino_t real);
/* Adjust a real stat into what the merged view shows. */
void strata_fix_stat(const struct strata_fs *fs, struct stat *st,
		     uint32_t layer, uint32_t stack_n);
int strata_getattr(struct strata_fs *fs, struct strata_inode *in,
		   struct stat *st);

/* lookup.c: resolve names down the stack */
struct strata_found {
	struct stat st; /* of the topmost entry, already fixed */
	uint32_t layer;
	struct strata_stack *stack; /* directories only */
};
int strata_resolve(struct strata_fs *fs, const struct strata_stack *dir,
		   const char *name, struct strata_found *out);
/* Resolve @name in @dir and return its inode with one more reference. */
int strata_lookup(struct strata_fs *fs, struct strata_inode *dir,
		  const char *name, struct strata_inode **out,
		  struct stat *st);

/* readdir.c: merged directory snapshots */
struct strata_raw_dirent {
	const char *name;
	uint64_t ino; /* real inode number */
	unsigned char type; /* DT_* */
	bool whiteout;	    /* a whiteout held by the entry itself */
};
struct strata_dirent {
	char *name;
	uint64_t ino; /* as shown */
	unsigned char type;
};
struct strata_dirsnap {
	GArray *ents; /* struct strata_dirent, "." and ".." first */
	GStringChunk *names;
};
/* Merge pure listings, topmost first: layer i has n[i] entries in
 * raw[i] and real layer number layers[i].  No system calls. */
struct strata_dirsnap *strata_merge_listings(const struct strata_fs *fs,
					     uint32_t nlayers,
					     const uint32_t *layers,
					     struct strata_raw_dirent **raw,
					     const size_t *n);
int strata_readdir_snapshot(struct strata_fs *fs, struct strata_inode *dir,
			    struct strata_dirsnap **out);
void strata_dirsnap_free(struct strata_dirsnap *s);

/* xattr.c */
ssize_t strata_getxattr(struct strata_fs *fs, struct strata_inode *in,
			const char *xname, void *buf, size_t size);
ssize_t strata_listxattr(struct strata_fs *fs, struct strata_inode *in,
			 char *buf, size_t size);
/* Drop private names from a listxattr buffer in place; new length. */
size_t strata_filter_xattr_list(char *buf, size_t len);

/* file.c */
int strata_open_real(struct strata_fs *fs, struct strata_inode *in,
		     int flags);
int strata_readlink(struct strata_fs *fs, struct strata_inode *in,
		    char *buf, size_t size);
int strata_statfs(struct strata_fs *fs, struct statvfs *sv);
int strata_access(struct strata_fs *fs, struct strata_inode *in, int mask,
		  uid_t uid, gid_t gid, const gid_t *groups, int ngroups);

/* layers.c: open the layer stack */
int strata_fs_open(struct strata_fs *fs, const struct strata_options *o,
		   char **err);
void strata_fs_close(struct strata_fs *fs);

/* ops.c */
struct fuse_lowlevel_ops;
extern const struct fuse_lowlevel_ops strata_ops;

#endif
