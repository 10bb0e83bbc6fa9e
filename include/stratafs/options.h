/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Command line and -o option parsing, compatible with how fuse-overlayfs is
 * called by users, by mount.fuse3 and by containers-storage.  Pure string
 * handling: no system calls, so every rule is unit-tested.
 */
#ifndef STRATAFS_OPTIONS_H
#define STRATAFS_OPTIONS_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "stratafs/idmap.h"

/* The kernel overlayfs's limit and containers-storage's maxDepth. */
#define STRATA_MAX_LOWER 500

/* Entry and attribute timeout unless timeout= is given, in seconds.  The
 * union changes only through the mount, and the kernel updates what it
 * caches for every change made through it, so the cache may live long, as
 * the kernel overlayfs's own dentries do.  timeout=1 is fuse-overlayfs's
 * default. */
#define STRATA_DEFAULT_TIMEOUT 86400.0

/* How long a reader that has just served a request polls the FUSE device
 * for the next one before it sleeps, in microseconds, unless spin= is
 * given (loop.c). */
#define STRATA_DEFAULT_SPIN_US 50
#define STRATA_MAX_SPIN_US 100000

struct strata_options {
	GPtrArray *lowerdirs; /* char *, top first, unescaped */
	char *upperdir;
	char *workdir;
	char *source;	  /* first positional of two; ignored */
	char *mountpoint;

	bool foreground;
	bool debug;
	bool help;
	bool version;
	bool read_only;
	bool threaded;
	double timeout;
	int spin_us;

	/* fuse-overlayfs's options */
	struct strata_idmap uidmap;
	struct strata_idmap gidmap;
	int64_t squash_uid; /* -1: none; squash_to_root sets 0 */
	int64_t squash_gid;
	bool static_nlink;
	bool noacl;
	bool noxattrs;
	bool writeback;
	bool fsync;	      /* fsync=1 (default); volatile clears it */
	int xattr_permissions; /* 0, 1 (privileged xattr), 2 (user xattr) */
	char *context;	      /* SELinux label for the mount */

	char *fsname;
	char *subtype;
	/* options handed to libfuse's mount code, e.g. "nosuid", "allow_other" */
	GPtrArray *fuse_opts;
	/* one-line warnings for the caller to print (unknown options...) */
	GPtrArray *warnings;
};

void strata_options_init(struct strata_options *o);
void strata_options_clear(struct strata_options *o);

/*
 * Parse argv.  Returns 0, or -EINVAL with *err set to a one-line message
 * (without the program name) that the caller prints and frees.
 */
int strata_options_parse(struct strata_options *o, int argc, char **argv,
			 char **err);

/* Apply one -o list ("a=b,c,..."), as given after -o. */
int strata_options_apply_list(struct strata_options *o, const char *list,
			      char **err);

/*
 * Split an -o list on commas.  A backslash escapes the next character
 * (the backslash stays, so "\:" survives for lowerdir); double quotes
 * group a value that may contain commas (context="a,b"); empty items are
 * dropped.  Returns a NULL-terminated vector, or NULL with *err set.
 */
char **strata_split_optlist(const char *list, char **err);

/*
 * Split a lowerdir value on unescaped colons.  "\:" gives ':' and "\\"
 * gives '\'.  Appends to @out.  Empty items are an error.
 */
int strata_split_lowerdir(const char *value, GPtrArray *out, char **err);

#endif
