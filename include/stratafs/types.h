/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Core types of stratafs: the filesystem, its layers and the inode table.
 *
 * Layer numbering: fs->layers[0] is the topmost layer (the upper layer when
 * there is one, otherwise the first lowerdir given); a larger index is a
 * lower layer.  Every "layer" field in this file is such an index.
 *
 * Locking (lock order, outermost first):
 *   0. strata_inode.cu_lock of the inode being copied up, then
 *      strata_inode.ns_lock of its parent directory
 *   1. strata_inode.lock of a parent directory
 *   2. strata_inode.lock of a child
 *   3. strata_fs.table_lock          (innermost, held only for table updates)
 * No lock is held across a reply to the kernel.  Reference counts are
 * atomic; the transition of an inode's count to zero happens under
 * table_lock so that a concurrent lookup can never resurrect a freed inode.
 */
#ifndef STRATAFS_TYPES_H
#define STRATAFS_TYPES_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "stratafs/idmap.h"
#include "stratafs/options.h"

enum strata_xattr_ns { STRATA_NS_TRUSTED, STRATA_NS_USER, STRATA_NS__COUNT };

struct strata_layer {
	int fd;		/* root directory, O_RDONLY|O_DIRECTORY; immutable */
	char *path;	/* canonical absolute path, for messages */
	dev_t dev;	/* st_dev of the root */
	ino_t ino;	/* st_ino of the root */
	uint32_t fsidx; /* index of dev among the distinct devs, for st_ino */
	bool upper;
	bool has_uuid;	/* uuid is the filesystem's (FS_IOC_GETFSUUID) */
	uint8_t uuid[16];
};

/* One real directory in the stack of a merged directory. */
struct strata_stack_entry {
	uint32_t layer;
	int fd; /* O_PATH|O_DIRECTORY of the real directory */
	/* the real dir carries overlay.opaque=x: it may hold xattr whiteouts */
	bool xwhiteouts;
};

/*
 * The real directories that make up one merged directory, topmost first.
 * Immutable once built; shared by reference so a reader can use the fds
 * without holding the owning inode's lock.
 */
struct strata_stack {
	gint refs;
	uint32_t n;
	struct strata_stack_entry e[];
};

/*
 * The identity of an inode in fs->inodes: the real identity of its
 * topmost entry (attr.c), alone for most objects.  A lower file with
 * several names in a writable union is one inode per name (parent and
 * name join the key), as on the kernel overlayfs without index=on: a
 * copy-up through one name must not change what the others show.
 */
struct strata_ikey {
	uint64_t key;
	struct strata_inode *parent; /* NULL, or with name */
	char *name;
};

struct strata_inode {
	/*
	 * ik: the key in fs->inodes; it changes when the object is copied
	 * up (under table_lock).  ino: the st_ino shown, which never
	 * changes: a copied-up object keeps the number of its origin.
	 */
	struct strata_ikey ik;
	uint64_t ino;

	/* Kernel lookups plus internal references (children, open handles). */
	uint64_t refs; /* atomic */

	GMutex lock;
	/*
	 * Where the object lives: parent directory (a reference is held),
	 * name in it, and the topmost layer holding it.  Non-directories are
	 * reached as openat(parent stack fd of @layer, @name): they hold no
	 * file descriptor of their own, so caching many files costs no fds.
	 * Protected by lock.  The root has parent == NULL and name "".
	 */
	struct strata_inode *parent;
	char *name;
	uint32_t layer;
	mode_t type;   /* S_IFMT bits, immutable */
	/* Directories only: the real directories, topmost first. */
	struct strata_stack *stack;
	/* Upper non-directories with several names: the names (struct
	 * strata_alias) the kernel has looked up, so that unlink or rename
	 * of one can move the inode to another. */
	GPtrArray *aliases;
	/* the last name is gone (unlink/rmdir/rename over it); a
	 * non-directory then keeps an O_PATH fd of its real object, so that
	 * fstat of a file still open goes on working */
	int orphan_fd;
	bool unlinked;
	/* published by a copy-up whose rename into the upper parent no
	 * fsync has covered yet: the next fsync through this object, or
	 * through a directory below it, syncs that parent (protected by lock;
	 * only with fsync=1) */
	bool entry_unsynced;
	/* bumped by each copy-up, so read-only handles opened before it
	 * switch to the copy (protected by lock) */
	uint32_t gen;
	/* security.capability known absent (bit 0), and a count bumped by
	 * every set or removal of it (xattr.c), so that a lookup that
	 * raced with one cannot cache a stale absence: the kernel asks for
	 * it before every write and chown of a file (atomic) */
	int cap_seq;

	/* Serializes copy-up of this inode; taken without any other inode
	 * lock held (parents are copied up first, each under its own).
	 * For a non-directory also held across a change of its name
	 * (dir.c: the real unlink or rename and the update of
	 * parent/name/orphan_fd) and by an open through its name (file.c),
	 * which would otherwise find a whiteout, nothing, or the file
	 * renamed over it. */
	GMutex cu_lock;
	/* A directory is followed, in the same allocation, by its struct
	 * strata_dirpart (strata_dirpart()); other objects, most of the
	 * table, do not pay for it.  Keep this struct a multiple of 8
	 * bytes. */
};

/* What only a directory has (strata_inode_new() allocates it). */
struct strata_dirpart {
	/* A name resolution in this directory (reader) never straddles
	 * the publishing of a copied-up child and the move of its inode to
	 * the new key (writer), or it would make a second, stale inode for
	 * the child.  The kernel orders namespace operations itself;
	 * copy-up is the one change it does not see as one. */
	GRWLock ns_lock;
	/* Indexes of the lower directories' names, made on the first
	 * lookup (names.c); set once (atomic), freed with the inode. */
	struct strata_dcache *dcache;
	/* The merged listing of the lower directories of the stack, kept
	 * from the second time they are read (readdir.c; the kernel caches
	 * listings, so most directories are read once); the lowers do not
	 * change while mounted, nor does the lower part of a directory's
	 * stack, so it never goes stale; set once (atomic), freed with the
	 * inode.  lower_reads counts the reads (atomic). */
	struct strata_lowerlist *lowerlist;
	uint32_t lower_reads;
	/* bumped after every change of its names made through us
	 * (readdir.c; atomic) */
	uint32_t ns_version;
};

/* The directory part of @in, which must be a directory. */
static inline struct strata_dirpart *strata_dirpart(struct strata_inode *in)
{
	g_assert(S_ISDIR(in->type));
	return (struct strata_dirpart *)(in + 1);
}

struct strata_alias {
	struct strata_inode *parent; /* a reference is held */
	char *name;
};

/* Telling the kernel that what it cached is stale (set up by ops.c). */
struct strata_notify {
	void (*inval_inode)(void *ctx, struct strata_inode *in);
	void *ctx;
};

/* How whiteouts are written to the upper layer, best first. */
enum strata_wh_format {
	STRATA_WH_CHARDEV, /* 0/0 character device (mknod allowed) */
	STRATA_WH_XATTR,   /* empty file + overlay.whiteout, parent opaque=x */
	STRATA_WH_AUFS,	   /* ".wh.NAME" (no mknod, no xattrs) */
};

/* An open file. */
struct strata_file {
	int fd;
	int oldfd;		 /* the lower fd after a switch, or -1 */
	struct strata_inode *in; /* a reference is held */
	uint32_t gen;		 /* in->gen when fd was opened */
	bool upper;		 /* fd is on the upper layer */
	GMutex lock;		 /* protects fd, gen, upper (reopen) */
};

struct strata_options;

struct strata_fs {
	struct strata_layer *layers;
	uint32_t n_layers;
	bool has_upper;
	uint32_t n_devs;	/* distinct st_dev among the layers */
	uint32_t ino_shift;	/* bits of st_ino kept from the real inode */

	double timeout;		/* entry and attr timeout, seconds */
	bool debug;

	/* What the merged view shows and stores (fuse-overlayfs options). */
	struct strata_idmap uidmap, gidmap;
	int64_t squash_uid, squash_gid; /* -1: not squashed */
	bool static_nlink;
	bool acl;	  /* POSIX ACLs (not noacl) */
	bool xattrs;	  /* extended attributes (not noxattrs) */
	bool writeback;	  /* the kernel's writeback cache */
	/* xattr_permissions: owner and mode kept in this xattr (NULL: the
	 * real owner and mode), for a daemon that cannot chown */
	const char *override_xattr;

	/* Writable unions: layers[0] is the upper layer.  Probed once at
	 * mount (layers.c), never changed afterwards. */
	int workdir_fd;		/* the workdir, flock'ed while mounted */
	int workfd;		/* workdir/work: temps built before publishing */
	char *workpath;
	bool xattr_ok;		/* the upper holds xattrs of xattr_ns */
	enum strata_xattr_ns xattr_ns; /* namespace of markers we write */
	enum strata_wh_format wh_format;
	bool can_rename_whiteout; /* renameat2(RENAME_WHITEOUT) */
	bool can_exchange;	  /* renameat2(RENAME_EXCHANGE) */
	bool can_chown;		  /* CAP_CHOWN: owners survive copy-up */
	bool fsync;		  /* pass fsync/fsyncdir on (default) */
	uint64_t tmp_counter;	  /* atomic: unique temp names */
	struct strata_notify notify;

	struct strata_inode *root;

	/* open file and directory handles (ops.c), freed at the end of
	 * the session if the kernel never released them */
	GMutex handles_lock;
	GHashTable *handles;

	/* table size when the memory of freed inodes was last given back
	 * (ops.c), atomic */
	size_t trim_mark;

	/* ino -> struct strata_inode *, protected by table_lock. */
	GMutex table_lock;
	GHashTable *inodes;
};

#endif
