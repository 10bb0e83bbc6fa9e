/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Core types of stratafs: the filesystem, its layers and the inode table.
 *
 * Layer numbering: fs->layers[0] is the topmost layer (the upper layer when
 * there is one, otherwise the first lowerdir given); a larger index is a
 * lower layer.  Every "layer" field in this file is such an index.
 *
 * Locking (lock order, outermost first):
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

#include "stratafs/options.h"

struct strata_layer {
	int fd;		/* root directory, O_RDONLY|O_DIRECTORY; immutable */
	char *path;	/* canonical absolute path, for messages */
	dev_t dev;	/* st_dev of the root */
	uint32_t fsidx; /* index of dev among the distinct devs, for st_ino */
	bool upper;
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

struct strata_inode {
	/* Immutable after creation. */
	uint64_t ino;  /* st_ino we report; key of fs->inodes */
	mode_t type;   /* S_IFMT bits */

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
	/* Directories only: the real directories, topmost first. */
	struct strata_stack *stack;
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

	struct strata_inode *root;

	/* ino -> struct strata_inode *, protected by table_lock. */
	GMutex table_lock;
	GHashTable *inodes;
};

#endif
