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
int strata_do_setxattr_at(int dirfd, const char *name, const char *xname,
			  const void *val, size_t size, int flags);
int strata_do_removexattr_at(int dirfd, const char *name, const char *xname);
/* @name NULL or "": the object @dirfd itself (an O_PATH fd is fine) */
int strata_do_fchownat(int dirfd, const char *name, uid_t uid, gid_t gid);
int strata_do_fchmodat(int dirfd, const char *name, mode_t mode);
int strata_do_utimensat(int dirfd, const char *name,
			const struct timespec times[2]);
int strata_do_renameat2(int olddir, const char *oldname, int newdir,
			const char *newname, unsigned int flags);
int strata_do_unlinkat(int dirfd, const char *name, int flags);

/* whiteout.c: marker formats, read side */
enum strata_marker {
	STRATA_MARKER_OPAQUE,
	STRATA_MARKER_WHITEOUT,
	STRATA_MARKER_ORIGIN, /* ours: the st_ino a copied-up object keeps */
	STRATA_MARKER_KORIGIN, /* the kernel's: file handle of the origin */
	STRATA_MARKER_IMPURE,  /* the kernel's: holds copied-up entries */
	STRATA_MARKER__COUNT,
};
/* "trusted.overlay.opaque", "user.overlay.whiteout", ... */
const char *strata_marker_xattr(enum strata_marker m, enum strata_xattr_ns ns);
#define STRATA_AUFS_PREFIX ".wh."
#define STRATA_AUFS_OPAQUE ".wh..wh..opq"
bool strata_is_aufs_name(const char *name);
/* true for a private xattr name that must never show through the mount */
bool strata_is_private_xattr(const char *name);
/* a private name that is a marker (not an escaped user name): never
 * copied up */
bool strata_is_marker_xattr(const char *name);
/* 0/0 character device */
bool strata_is_chardev_whiteout(const struct stat *st);

enum strata_opaque_val { STRATA_OPAQUE_NONE, STRATA_OPAQUE_Y, STRATA_OPAQUE_X };
enum strata_opaque_val strata_parse_opaque(const char *val, ssize_t len);

struct strata_dir_markers {
	bool opaque;	 /* lower layers of this name are not merged */
	bool xwhiteouts; /* may contain xattr whiteouts (opaque=x) */
};
/* Read the markers of the real directory @dirfd (O_PATH is fine); the
 * marker files of an opaque directory only if @files (in the last layer
 * of a stack, or at the root, opaque means nothing: it hides nothing). */
int strata_read_dir_markers(int dirfd, struct strata_dir_markers *m,
			    bool files);
/* 1 if @name in @dirfd (lstat'ed as @st) is a whiteout of any format held
 * by the entry itself (0/0 chardev, xattr whiteout), 0 if not. */
int strata_entry_is_whiteout(int dirfd, const char *name,
			     const struct stat *st);
/* 1 if an AUFS ".wh.NAME" for @name exists in @dirfd, 0 if not. */
int strata_aufs_whiteout_exists(int dirfd, const char *name);
/* whiteout.c: write side, in the upper layer */
enum strata_upper_state {
	STRATA_UPPER_NONE,     /* nothing of that name */
	STRATA_UPPER_WHITEOUT, /* a whiteout object at the name */
	STRATA_UPPER_AUFS,     /* only a ".wh.NAME" beside it */
	STRATA_UPPER_ENTRY,    /* a real entry */
};
int strata_upper_state(int udir, const char *name, struct stat *st);
/* Make @name in @udir a whiteout, atomically replacing the non-directory
 * there if any. */
int strata_whiteout_replace(struct strata_fs *fs, int udir, const char *name);
/* Create the AUFS marker ".wh.@name" in @udir (it hides @name of the
 * layers below only, not an entry @name beside it). */
int strata_aufs_marker(int udir, const char *name);
/* Make @udir ready to hold a whiteout object moved into it (xattr
 * whiteouts: its opaque=x marker). */
int strata_whiteout_dir_prepare(struct strata_fs *fs, int udir);
/* Replace the upper directory @name (logically empty) by a whiteout. */
int strata_whiteout_dir(struct strata_fs *fs, int udir, const char *name);
/* Mark the directory (@dir, @name) opaque (@name NULL: @dir itself). */
int strata_set_opaque(struct strata_fs *fs, int dir, const char *name);
/* The whiteout in work/ that chardev whiteouts are links of; removed at
 * unmount. */
#define STRATA_SHARED_WHITEOUT "#whiteout"
/* Build a whiteout object as work/@tmp (not in the AUFS format). */
int strata_build_whiteout(struct strata_fs *fs, const char *tmp);
/* Remove the AUFS marker of @name in @udir if there is one. */
int strata_clear_aufs_whiteout(int udir, const char *name);

/* inode.c: the inode table */
struct strata_stack *strata_stack_new(uint32_t n);
struct strata_stack *strata_stack_ref(struct strata_stack *s);
void strata_stack_unref(struct strata_stack *s);
/* The entry of @layer in @s, or NULL. */
const struct strata_stack_entry *
strata_stack_find(const struct strata_stack *s, uint32_t layer);

/* A zeroed inode of @type with its locks (and directory part) set up,
 * one reference, no orphan fd: the caller fills in the rest. */
struct strata_inode *strata_inode_new(mode_t type);

void strata_table_init(struct strata_fs *fs);
void strata_table_destroy(struct strata_fs *fs);
/* Find the inode @ino or create it from the given location.  Takes one
 * reference on the result.  @stack is consumed. */
struct strata_inode *strata_inode_get(struct strata_fs *fs, uint64_t key,
				      uint64_t ino, mode_t type,
				      struct strata_inode *parent,
				      const char *name, uint32_t layer,
				      struct strata_stack *stack);
/* The same, keyed also by (@parent, @name) when @by_name. */
struct strata_inode *strata_inode_get_ex(struct strata_fs *fs, uint64_t key,
					 bool by_name, uint64_t ino,
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
/* Whether the table holds an inode of this key and type (shown inode
 * numbers of objects never copied up are their keys). */
bool strata_inode_known(struct strata_fs *fs, uint64_t key, mode_t type);
size_t strata_table_size(struct strata_fs *fs);
/* The topmost real entry of @in as (*dirfd, *name), or for a directory
 * its own fd with *name NULL; *s (a reference) keeps the fd open. */
int strata_inode_real(struct strata_fs *fs, struct strata_inode *in,
		      struct strata_stack **s, int *dirfd, char **name);
/* Remember that the kernel knows @in as (@parent, @name). */
void strata_inode_add_alias(struct strata_inode *in,
			    struct strata_inode *parent, const char *name);
/* Move @in to a new key (after a copy-up). */
void strata_inode_rekey(struct strata_fs *fs, struct strata_inode *in,
			uint64_t key);
/* An O_PATH fd of the real non-directory @in, or -errno. */
int strata_inode_open_path(struct strata_fs *fs, struct strata_inode *in);
/* The last name of @in is gone: keep @fd (consumed; may be -1) for fstat
 * and take it out of the table. */
void strata_inode_orphan(struct strata_fs *fs, struct strata_inode *in,
			 int fd);
/* One name of several moved (rename). */
void strata_inode_name_moved(struct strata_fs *fs, struct strata_inode *in,
			     struct strata_inode *olddir, const char *oldname,
			     struct strata_inode *newdir, const char *newname);
/* One name of several is gone: @in moves to another known name, or keeps
 * @anchor (an O_PATH fd of it, consumed) to be reached. */
void strata_inode_name_gone(struct strata_fs *fs, struct strata_inode *in,
			    struct strata_inode *dir, const char *name,
			    int anchor);
/* Take @in out of the table: its name is gone (unlink, rmdir). */
void strata_inode_forget_key(struct strata_fs *fs, struct strata_inode *in);
/* Point @in at a new parent/name/layer (rename, copy-up). */
void strata_inode_set_location(struct strata_fs *fs, struct strata_inode *in,
			       struct strata_inode *parent, const char *name,
			       uint32_t layer);

/* attr.c */
uint64_t strata_map_ino(const struct strata_fs *fs, uint32_t layer,
			ino_t real);
/* xattr_permissions=1 and =2: where owner and mode are kept */
#define STRATA_OVERRIDE_PRIV "security.containers.override_stat"
#define STRATA_OVERRIDE_USER "user.containers.override_stat"
/* Adjust a real stat into what the merged view shows: st_ino @ino, the
 * nlink of a directory merged from @stack_n layers, owners mapped or
 * squashed (nothing that needs a system call). */
void strata_fix_stat(const struct strata_fs *fs, struct stat *st,
		     uint64_t ino, uint32_t stack_n);
/* The on-disk ids for ids the caller gives (chown, new objects):
 * -EINVAL if an id is outside the mapping; (uid_t)-1 passes through. */
int strata_store_ids(const struct strata_fs *fs, uid_t *uid, gid_t *gid);
/* xattr_permissions: "uid:gid:mode" (mode octal, an optional ":type"
 * after it ignored) */
int strata_parse_override(const char *val, size_t len, uid_t *uid,
			  gid_t *gid, mode_t *mode);
/* Owner and mode of (@dirfd, @name) from its override xattr, if any. */
void strata_apply_override(struct strata_fs *fs, int dirfd, const char *name,
			   struct stat *st);
int strata_write_override(struct strata_fs *fs, int dirfd, const char *name,
			  uid_t uid, gid_t gid, mode_t mode);
/* The st_ino shown for the real entry @name of the directory layer
 * @dir[@i] (of a stack of @n) whose real stat is @st: its origin's if it
 * is a copy (recorded, or found by name and file handle in @dir[i+1..]),
 * else its key. */
uint64_t strata_shown_ino(struct strata_fs *fs,
			  const struct strata_stack_entry *dir, uint32_t n,
			  uint32_t i, const char *name, const struct stat *st);
int strata_getattr(struct strata_fs *fs, struct strata_inode *in,
		   struct stat *st);

/* names.c: per-directory indexes of lower names (probe or list) */
struct strata_dcache;
struct strata_raw_dirent;
uint32_t strata_name_hash(const char *name, size_t len);
/* The indexes of @dir, whose stack is @s, made if need be; NULL when @s
 * has no lower layer.  Lives as long as @dir. */
struct strata_dcache *strata_dcache_get(struct strata_fs *fs,
					struct strata_inode *dir,
					const struct strata_stack *s);
void strata_dcache_free(struct strata_dcache *dc);
/* false: the real directory of @layer holds neither the name of hash @h
 * nor its ".wh." marker (no need to probe); true: probe it.  Layers are
 * asked in ascending order, *@cursor (0 at first) keeping the place. */
bool strata_dcache_may_have(struct strata_dcache *dc, uint32_t *cursor,
			    uint32_t layer, uint32_t h);
/* A probe of the real directory @fd of @layer found nothing: count it,
 * and index the directory once the probes cost more than a listing. */
void strata_dcache_miss(struct strata_dcache *dc, uint32_t layer, int fd);
/* Index @layer from a listing read anyway (readdir). */
void strata_dcache_feed(struct strata_dcache *dc, uint32_t layer,
			const struct strata_raw_dirent *raw, size_t n);
/* How many layers of @dc are indexed (tests). */
size_t strata_dcache_indexed(struct strata_dcache *dc);

/* lookup.c: resolve names down the stack */
struct strata_found {
	struct stat st; /* of the topmost entry, already fixed */
	uint64_t key;	/* real identity of the topmost entry */
	uint32_t layer;
	struct strata_stack *stack; /* directories only */
};
/* @dc: the directory's name indexes, or NULL to probe every layer */
int strata_resolve(struct strata_fs *fs, const struct strata_stack *dir,
		   struct strata_dcache *dc, const char *name,
		   struct strata_found *out);
/* The same over @n entries of a stack (a part of one). */
int strata_resolve_in(struct strata_fs *fs,
		      const struct strata_stack_entry *dir, uint32_t n,
		      struct strata_dcache *dc, const char *name,
		      struct strata_found *out);
/* Resolve @name in @dir and return its inode with one more reference. */
int strata_lookup(struct strata_fs *fs, struct strata_inode *dir,
		  const char *name, struct strata_inode **out,
		  struct stat *st);
/* The same for a non-directory just created as @name in @dir's upper
 * directory @udir (@fd open on it, or -1), without probing the stack. */
int strata_lookup_created(struct strata_fs *fs, struct strata_inode *dir,
			  const char *name, int udir, int fd,
			  struct strata_inode **out, struct stat *st);

/* readdir.c: merged directory snapshots */
struct strata_raw_dirent {
	const char *name;
	uint64_t ino; /* real inode number */
	unsigned char type; /* DT_* */
	bool whiteout;	    /* a whiteout held by the entry itself */
	bool shown;	    /* ino is already the number shown (a copy's) */
};
struct strata_dirent {
	char *name;
	uint64_t ino; /* as shown */
	unsigned char type;
	uint64_t off; /* readdir offset of the next entry (cookie) */
};
struct strata_dirsnap {
	/* struct strata_dirent, "." and ".." first; in a snapshot of a
	 * directory (strata_readdir_snapshot) in ascending order of off */
	GArray *ents;
	GStringChunk *names;
	uint32_t version; /* of the directory when it was taken */
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
/* Index of the first entry of @s that comes after readdir offset @off. */
guint strata_dirsnap_seek(const struct strata_dirsnap *s, uint64_t off);
/* A change to the names of @dir is done: snapshots taken before are
 * stale (readdir takes a new one to go on from). */
void strata_dir_changed(struct strata_inode *dir);
uint32_t strata_dir_version(struct strata_inode *dir);
void strata_lowerlist_free(struct strata_lowerlist *ll);

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
/* Open @in for the kernel: a write open copies it up first. */
int strata_file_open(struct strata_fs *fs, struct strata_inode *in, int flags,
		     struct strata_file **out);
/* Wrap a fresh fd of the upper object @in (create). */
struct strata_file *strata_file_wrap(struct strata_inode *in, int fd);
/* The fd to read from: a read-only handle opened before a copy-up moves
 * to the copy, so that it sees what was written since (POSIX). */
int strata_file_read_fd(struct strata_fs *fs, struct strata_file *f);
/* What a read produced: @len bytes in the pipe @fd (its read end) or in
 * @mem.  strata_file_read_done() after the reply, on every path. */
struct strata_readbuf {
	int fd;
	void *mem;
	size_t len;
};
int strata_file_read(struct strata_fs *fs, struct strata_file *f,
		     size_t size, off_t off, struct strata_readbuf *rb);
void strata_file_read_done(struct strata_readbuf *rb);
void strata_file_release(struct strata_fs *fs, struct strata_file *f);
int strata_fsync(struct strata_fs *fs, struct strata_file *f, bool datasync);
int strata_fsyncdir(struct strata_fs *fs, struct strata_inode *in,
		    bool datasync);

/* attr.c: setattr */
#define STRATA_SET_MODE (1 << 0)
#define STRATA_SET_UID (1 << 1)
#define STRATA_SET_GID (1 << 2)
#define STRATA_SET_SIZE (1 << 3)
#define STRATA_SET_ATIME (1 << 4)
#define STRATA_SET_MTIME (1 << 5)
#define STRATA_SET_ATIME_NOW (1 << 6)
#define STRATA_SET_MTIME_NOW (1 << 7)
#define STRATA_SET_CTIME (1 << 8)
int strata_setattr(struct strata_fs *fs, struct strata_inode *in,
		   const struct stat *attr, int valid, struct strata_file *f,
		   struct stat *out);

/* xattr.c: write side */
int strata_setxattr(struct strata_fs *fs, struct strata_inode *in,
		    const char *xname, const void *val, size_t size,
		    int flags);
int strata_removexattr(struct strata_fs *fs, struct strata_inode *in,
		       const char *xname);

/* dir.c */
struct strata_newobj {
	mode_t mode;	    /* type and permissions */
	dev_t rdev;	    /* devices */
	const char *target; /* symlinks */
	uid_t uid;	    /* the caller */
	gid_t gid;
	int flags; /* open flags, for create */
};
/* Create @name in @dir; with @fd (regular files) also open it. */
int strata_create(struct strata_fs *fs, struct strata_inode *dir,
		  const char *name, const struct strata_newobj *req,
		  struct strata_inode **out, struct stat *st, int *fd);
int strata_link(struct strata_fs *fs, struct strata_inode *in,
		struct strata_inode *newdir, const char *newname,
		struct strata_inode **out, struct stat *st);
int strata_unlink(struct strata_fs *fs, struct strata_inode *dir,
		  const char *name);
int strata_rmdir(struct strata_fs *fs, struct strata_inode *dir,
		 const char *name);
int strata_rename(struct strata_fs *fs, struct strata_inode *olddir,
		  const char *oldname, struct strata_inode *newdir,
		  const char *newname, unsigned int flags);
int strata_readlink(struct strata_fs *fs, struct strata_inode *in,
		    char *buf, size_t size);
int strata_statfs(struct strata_fs *fs, struct statvfs *sv);
int strata_access(struct strata_fs *fs, struct strata_inode *in, int mask,
		  uid_t uid, gid_t gid, const gid_t *groups, int ngroups);

/* copyup.c */
void strata_tmpname(struct strata_fs *fs, char *buf, size_t size);
bool strata_inode_is_upper(struct strata_inode *in);
int strata_copy_data(int src, int dst, off_t size);
int strata_copy_xattrs(struct strata_fs *fs, int sdir, const char *sname,
		       int ddir, const char *dname);
int strata_set_origin(struct strata_fs *fs, int dir, const char *name,
		      uint64_t ino);
/* The kernel's origin xattr on (@dir, @name), pointing at the lower
 * object (@sdir, @sname) of @layer: 1 when written, 0 when skipped
 * (silently, where the lower filesystem gives no UUID or file handles). */
#define STRATA_ORIGIN_FB_MAX (21 + MAX_HANDLE_SZ)
/* Encode that origin into @fb (STRATA_ORIGIN_FB_MAX bytes): its length,
 * or 0 where there is none. */
/* Is @xname in the listxattr result @list of @len bytes? */
bool strata_xattr_list_has(const char *list, ssize_t len, const char *xname);
int strata_origin_fb(struct strata_fs *fs, uint32_t layer, int sdir,
		     const char *sname, unsigned char *fb);
int strata_set_kernel_origin(struct strata_fs *fs, int dir, const char *name,
			     uint32_t layer, int sdir, const char *sname);
int strata_set_owner_mode(struct strata_fs *fs, int dir, const char *name,
			  uid_t uid, gid_t gid, mode_t mode);
/* Copy @in (and its parents) up; without @data a regular file is copied
 * empty (the caller truncates it anyway).  0 if it is upper already. */
int strata_copy_up(struct strata_fs *fs, struct strata_inode *in, bool data);
/* @in now lives at (@udir, @name) in the upper layer. */
int strata_inode_now_upper(struct strata_fs *fs, struct strata_inode *in,
			   int udir, const char *name);

/* layers.c: open the layer stack */
int strata_remove_tree(int dirfd, const char *name);
/* Refuse overlapping layers and a mount point inside one (layers.c). */
int strata_check_layout(const char *upper, const char *work,
			const char *const *lowers, uint32_t n,
			const char *mnt, char **err);
int strata_fs_open(struct strata_fs *fs, const struct strata_options *o,
		   char **err);
void strata_fs_close(struct strata_fs *fs);

struct fuse_session;
/* loop.c: serve @se until it ends, with up to @max_threads threads, more
 * than one only while requests wait; a reader that has served a request
 * polls for the next one @spin_us microseconds before it sleeps.  0, or
 * the receive error. */
#define STRATA_MAX_THREADS 16
int strata_loop_run(struct fuse_session *se, int max_threads, int spin_us);

/* ops.c */
struct fuse_lowlevel_ops;
extern const struct fuse_lowlevel_ops strata_ops;
void strata_ops_notify_start(struct strata_fs *fs, struct fuse_session *se);
void strata_ops_notify_stop(struct strata_fs *fs);

#endif
