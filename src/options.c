// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Command line and -o option parsing.
 *
 * Callers reach us in three shapes, all accepted:
 *   stratafs -o lowerdir=A:B MNT              (users, containers-storage)
 *   stratafs SOURCE MNT -o rw,lowerdir=...    (mount.fuse3 and fstab)
 *   stratafs -oOPTS -f -d MNT                 (libfuse habits)
 * Options are table driven.  Each entry says what the option is:
 *   OURS     handled here, sets a field of struct strata_options;
 *   KERNEL   a mount flag libfuse understands: forwarded to it;
 *   SILENT   a generic mount option with nothing to do (atime policy...).
 * An option not in the table is ignored with a one-line warning, the way
 * fuse-overlayfs treats it, so that new callers keep working.
 *
 * This file makes no system calls: paths are checked by layers.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stratafs/options.h"

enum opt_kind { OPT_OURS, OPT_KERNEL, OPT_SILENT };

struct opt_def;
typedef int (*opt_fn)(struct strata_options *o, const struct opt_def *d,
		      const char *value, char **err);

enum opt_value { VAL_NONE, VAL_REQUIRED, VAL_OPTIONAL };

struct opt_def {
	const char *name;
	enum opt_kind kind;
	enum opt_value value; /* whether "name=value" is allowed/needed */
	opt_fn fn;	      /* OPT_OURS only */
};

static int set_lowerdir(struct strata_options *o, const struct opt_def *d,
			const char *value, char **err)
{
	g_autoptr(GPtrArray) dirs = g_ptr_array_new_with_free_func(g_free);
	int r = strata_split_lowerdir(value, dirs, err);

	if (r < 0)
		return r;
	/* like fuse-overlayfs, a later lowerdir= replaces an earlier one */
	g_ptr_array_unref(o->lowerdirs);
	o->lowerdirs = g_steal_pointer(&dirs);
	return 0;
}

static int set_string(char **field, const char *name, const char *value,
		      char **err)
{
	if (*value == '\0') {
		*err = g_strdup_printf("option %s: empty value", name);
		return -EINVAL;
	}
	g_free(*field);
	*field = g_strdup(value);
	return 0;
}

static int set_upperdir(struct strata_options *o, const struct opt_def *d,
			const char *value, char **err)
{
	return set_string(&o->upperdir, d->name, value, err);
}

static int set_workdir(struct strata_options *o, const struct opt_def *d,
		       const char *value, char **err)
{
	return set_string(&o->workdir, d->name, value, err);
}

static int set_fsname(struct strata_options *o, const struct opt_def *d,
		      const char *value, char **err)
{
	return set_string(&o->fsname, d->name, value, err);
}

static int set_subtype(struct strata_options *o, const struct opt_def *d,
		       const char *value, char **err)
{
	return set_string(&o->subtype, d->name, value, err);
}

static int parse_bool(const char *name, const char *value, bool *out,
		      char **err)
{
	if (strcmp(value, "1") == 0 || strcmp(value, "true") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(value, "0") == 0 || strcmp(value, "false") == 0) {
		*out = false;
		return 0;
	}
	*err = g_strdup_printf("option %s: expected 0 or 1, got '%s'", name,
			       value);
	return -EINVAL;
}

static int set_threaded(struct strata_options *o, const struct opt_def *d,
			const char *value, char **err)
{
	return parse_bool(d->name, value, &o->threaded, err);
}

static int set_timeout(struct strata_options *o, const struct opt_def *d,
		       const char *value, char **err)
{
	char *end = NULL;
	double t;

	errno = 0;
	t = g_ascii_strtod(value, &end);
	/* written so that NaN fails too: libfuse turns the timeout into
	 * whole seconds with a plain cast, undefined for NaN */
	if (errno || end == value || *end != '\0' || !(t >= 0 && t <= 1e9)) {
		*err = g_strdup_printf("option timeout: bad value '%s' "
				       "(seconds, >= 0)", value);
		return -EINVAL;
	}
	o->timeout = t;
	return 0;
}

static int set_spin(struct strata_options *o, const struct opt_def *d,
		    const char *value, char **err)
{
	char *end = NULL;
	guint64 v;

	errno = 0;
	v = g_ascii_strtoull(value, &end, 10);
	if (errno || end == value || *end != '\0' || value[0] == '-' ||
	    v > STRATA_MAX_SPIN_US) {
		*err = g_strdup_printf("option spin: bad value '%s' "
				       "(microseconds, 0 to %d)", value,
				       STRATA_MAX_SPIN_US);
		return -EINVAL;
	}
	o->spin_us = (int)v;
	return 0;
}

static int set_debug(struct strata_options *o, const struct opt_def *d,
		     const char *value, char **err)
{
	o->debug = true;
	return 0;
}

static int set_ro(struct strata_options *o, const struct opt_def *d,
		  const char *value, char **err)
{
	o->read_only = true;
	return 0;
}

static int set_rw(struct strata_options *o, const struct opt_def *d,
		  const char *value, char **err)
{
	o->read_only = false;
	return 0;
}

static int set_idmap(struct strata_options *o, const struct opt_def *d,
		     const char *value, char **err)
{
	struct strata_idmap *m = d->name[0] == 'u' ? &o->uidmap : &o->gidmap;
	g_autofree char *e = NULL;

	strata_idmap_clear(m);
	if (strata_idmap_parse(m, value, &e) < 0) {
		*err = g_strdup_printf("option %s: %s", d->name, e);
		return -EINVAL;
	}
	return 0;
}

static int parse_id(const char *name, const char *value, int64_t *out,
		    char **err)
{
	char *end = NULL;
	guint64 v;

	errno = 0;
	v = g_ascii_strtoull(value, &end, 10);
	if (errno || end == value || *end != '\0' || v >= UINT32_MAX) {
		*err = g_strdup_printf("option %s: bad id '%s'", name, value);
		return -EINVAL;
	}
	*out = (int64_t)v;
	return 0;
}

static int set_squash(struct strata_options *o, const struct opt_def *d,
		      const char *value, char **err)
{
	if (strcmp(d->name, "squash_to_root") == 0) {
		/* squash_to_uid/gid take precedence, whatever the order */
		if (o->squash_uid < 0)
			o->squash_uid = 0;
		if (o->squash_gid < 0)
			o->squash_gid = 0;
		return 0;
	}
	return parse_id(d->name, value,
			strcmp(d->name, "squash_to_uid") == 0 ? &o->squash_uid
							      : &o->squash_gid,
			err);
}

/* A flag that may also be given as flag=0|1. */
static int set_flag(struct strata_options *o, const struct opt_def *d,
		    const char *value, char **err)
{
	bool v = true;
	bool *field = strcmp(d->name, "static_nlink") == 0 ? &o->static_nlink
		: strcmp(d->name, "noacl") == 0		 ? &o->noacl
		: strcmp(d->name, "noxattrs") == 0	 ? &o->noxattrs
							 : &o->writeback;

	if (value && parse_bool(d->name, value, &v, err) < 0)
		return -EINVAL;
	*field = v;
	return 0;
}

static int set_fsync(struct strata_options *o, const struct opt_def *d,
		     const char *value, char **err)
{
	if (strcmp(d->name, "volatile") == 0) {
		o->fsync = false;
		return 0;
	}
	return parse_bool(d->name, value, &o->fsync, err);
}

static int set_xattr_permissions(struct strata_options *o,
				 const struct opt_def *d, const char *value,
				 char **err)
{
	if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0 &&
	    strcmp(value, "2") != 0) {
		*err = g_strdup_printf("option xattr_permissions: expected 0, "
				       "1 or 2, got '%s'", value);
		return -EINVAL;
	}
	o->xattr_permissions = value[0] - '0';
	return 0;
}

/* redirect_dir, metacopy, index: fuse-overlayfs implements none of them
 * and takes only "off"; so do we. */
static int set_off_only(struct strata_options *o, const struct opt_def *d,
			const char *value, char **err)
{
	if (strcmp(value, "off") == 0 ||
	    (strcmp(d->name, "redirect_dir") == 0 &&
	     strcmp(value, "nofollow") == 0))
		return 0;
	*err = g_strdup_printf("option %s=%s: not supported (only %s=off)",
			       d->name, value, d->name);
	return -EINVAL;
}

static int set_context(struct strata_options *o, const struct opt_def *d,
		       const char *value, char **err)
{
	return set_string(&o->context, d->name, value, err);
}

static int refuse(struct strata_options *o, const struct opt_def *d,
		  const char *value, char **err)
{
	*err = g_strdup_printf("option %s: not supported by stratafs",
			       d->name);
	return -EINVAL;
}

static const struct opt_def opt_table[] = {
	{ "lowerdir", OPT_OURS, VAL_REQUIRED, set_lowerdir },
	{ "upperdir", OPT_OURS, VAL_REQUIRED, set_upperdir },
	{ "workdir", OPT_OURS, VAL_REQUIRED, set_workdir },
	{ "fsname", OPT_OURS, VAL_REQUIRED, set_fsname },
	{ "subtype", OPT_OURS, VAL_REQUIRED, set_subtype },
	{ "threaded", OPT_OURS, VAL_REQUIRED, set_threaded },
	{ "timeout", OPT_OURS, VAL_REQUIRED, set_timeout },
	{ "spin", OPT_OURS, VAL_REQUIRED, set_spin },
	{ "debug", OPT_OURS, VAL_NONE, set_debug },
	{ "uidmapping", OPT_OURS, VAL_REQUIRED, set_idmap },
	{ "gidmapping", OPT_OURS, VAL_REQUIRED, set_idmap },
	{ "squash_to_root", OPT_OURS, VAL_NONE, set_squash },
	{ "squash_to_uid", OPT_OURS, VAL_REQUIRED, set_squash },
	{ "squash_to_gid", OPT_OURS, VAL_REQUIRED, set_squash },
	{ "static_nlink", OPT_OURS, VAL_OPTIONAL, set_flag },
	{ "noacl", OPT_OURS, VAL_OPTIONAL, set_flag },
	{ "noxattrs", OPT_OURS, VAL_OPTIONAL, set_flag },
	{ "writeback", OPT_OURS, VAL_OPTIONAL, set_flag },
	{ "fsync", OPT_OURS, VAL_REQUIRED, set_fsync },
	{ "volatile", OPT_OURS, VAL_NONE, set_fsync },
	{ "xattr_permissions", OPT_OURS, VAL_REQUIRED, set_xattr_permissions },
	{ "redirect_dir", OPT_OURS, VAL_REQUIRED, set_off_only },
	{ "metacopy", OPT_OURS, VAL_REQUIRED, set_off_only },
	{ "index", OPT_OURS, VAL_REQUIRED, set_off_only },
	{ "context", OPT_OURS, VAL_REQUIRED, set_context },
	{ "plugins", OPT_OURS, VAL_OPTIONAL, refuse },
	{ "ro", OPT_OURS, VAL_NONE, set_ro },
	{ "rw", OPT_OURS, VAL_NONE, set_rw },
	/* mount flags libfuse passes to mount(2) */
	{ "nosuid", OPT_KERNEL, VAL_NONE, NULL },
	{ "suid", OPT_KERNEL, VAL_NONE, NULL },
	{ "nodev", OPT_KERNEL, VAL_NONE, NULL },
	{ "dev", OPT_KERNEL, VAL_NONE, NULL },
	{ "noexec", OPT_KERNEL, VAL_NONE, NULL },
	{ "exec", OPT_KERNEL, VAL_NONE, NULL },
	{ "noatime", OPT_KERNEL, VAL_NONE, NULL },
	{ "atime", OPT_KERNEL, VAL_NONE, NULL },
	{ "sync", OPT_KERNEL, VAL_NONE, NULL },
	{ "async", OPT_KERNEL, VAL_NONE, NULL },
	{ "dirsync", OPT_KERNEL, VAL_NONE, NULL },
	{ "allow_other", OPT_KERNEL, VAL_NONE, NULL },
	{ "allow_root", OPT_KERNEL, VAL_NONE, NULL },
	{ "default_permissions", OPT_KERNEL, VAL_NONE, NULL },
	/* generic options with nothing for a FUSE daemon to do */

	{ "relatime", OPT_SILENT, VAL_NONE, NULL },
	{ "norelatime", OPT_SILENT, VAL_NONE, NULL },
	{ "strictatime", OPT_SILENT, VAL_NONE, NULL },
	{ "lazytime", OPT_SILENT, VAL_NONE, NULL },
	{ "nolazytime", OPT_SILENT, VAL_NONE, NULL },
	{ "diratime", OPT_SILENT, VAL_NONE, NULL },
	{ "nodiratime", OPT_SILENT, VAL_NONE, NULL },
	{ "defaults", OPT_SILENT, VAL_NONE, NULL },
	{ "auto", OPT_SILENT, VAL_NONE, NULL },
	{ "noauto", OPT_SILENT, VAL_NONE, NULL },
	{ "nofail", OPT_SILENT, VAL_NONE, NULL },
	{ "user", OPT_SILENT, VAL_NONE, NULL },
	{ "nouser", OPT_SILENT, VAL_NONE, NULL },
	{ "users", OPT_SILENT, VAL_NONE, NULL },
	{ "_netdev", OPT_SILENT, VAL_NONE, NULL },
	/* fuse-overlayfs hands these to libfuse, which fails on them;
	 * callers that learned them from it keep working here */
	{ "kernel_cache", OPT_SILENT, VAL_NONE, NULL },
	{ "splice_read", OPT_SILENT, VAL_NONE, NULL },
	{ "splice_write", OPT_SILENT, VAL_NONE, NULL },
	{ "splice_move", OPT_SILENT, VAL_NONE, NULL },
	{ "max_write", OPT_SILENT, VAL_OPTIONAL, NULL },
};

static const struct opt_def *find_opt(const char *name)
{
	for (size_t i = 0; i < G_N_ELEMENTS(opt_table); i++)
		if (strcmp(opt_table[i].name, name) == 0)
			return &opt_table[i];
	return NULL;
}

void strata_options_init(struct strata_options *o)
{
	memset(o, 0, sizeof(*o));
	o->lowerdirs = g_ptr_array_new_with_free_func(g_free);
	o->fuse_opts = g_ptr_array_new_with_free_func(g_free);
	o->warnings = g_ptr_array_new_with_free_func(g_free);
	o->threaded = true;
	o->timeout = STRATA_DEFAULT_TIMEOUT;
	o->spin_us = STRATA_DEFAULT_SPIN_US;
	o->fsync = true;
	o->squash_uid = -1;
	o->squash_gid = -1;
	o->uidmap.overflow = o->gidmap.overflow = 65534;
}

void strata_options_clear(struct strata_options *o)
{
	g_clear_pointer(&o->lowerdirs, g_ptr_array_unref);
	g_clear_pointer(&o->fuse_opts, g_ptr_array_unref);
	g_clear_pointer(&o->warnings, g_ptr_array_unref);
	g_clear_pointer(&o->upperdir, g_free);
	g_clear_pointer(&o->workdir, g_free);
	g_clear_pointer(&o->source, g_free);
	g_clear_pointer(&o->mountpoint, g_free);
	g_clear_pointer(&o->fsname, g_free);
	g_clear_pointer(&o->subtype, g_free);
	g_clear_pointer(&o->context, g_free);
	strata_idmap_clear(&o->uidmap);
	strata_idmap_clear(&o->gidmap);
}

char **strata_split_optlist(const char *list, char **err)
{
	g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GString) cur = g_string_new(NULL);
	bool quoted = false;

	for (const char *p = list;; p++) {
		if (*p == '\0' || (*p == ',' && !quoted)) {
			if (quoted) {
				*err = g_strdup("option list: unterminated "
						"quote");
				return NULL;
			}
			if (cur->len > 0)
				g_ptr_array_add(items,
						g_strdup(cur->str));
			g_string_truncate(cur, 0);
			if (*p == '\0')
				break;
			continue;
		}
		if (*p == '\\' && p[1] != '\0') {
			/* "\," is a literal comma; keep other escapes
			 * for the value's own parser (lowerdir "\:") */
			if (p[1] != ',')
				g_string_append_c(cur, '\\');
			g_string_append_c(cur, p[1]);
			p++;
			continue;
		}
		if (*p == '"') {
			quoted = !quoted;
			continue;
		}
		g_string_append_c(cur, *p);
	}
	g_ptr_array_add(items, NULL);
	return (char **)g_ptr_array_free(g_steal_pointer(&items), FALSE);
}

int strata_split_lowerdir(const char *value, GPtrArray *out, char **err)
{
	g_autoptr(GString) cur = g_string_new(NULL);
	guint added = 0;

	if (*value == '\0') {
		*err = g_strdup("option lowerdir: empty value");
		return -EINVAL;
	}
	for (const char *p = value;; p++) {
		if (*p == '\0' || *p == ':') {
			if (cur->len == 0) {
				*err = g_strdup_printf(
					"option lowerdir: empty path at "
					"position %u in '%s'",
					added + 1, value);
				goto fail;
			}
			g_ptr_array_add(out, g_strdup(cur->str));
			added++;
			g_string_truncate(cur, 0);
			if (*p == '\0')
				break;
			continue;
		}
		if (*p == '\\' && (p[1] == ':' || p[1] == '\\')) {
			g_string_append_c(cur, p[1]);
			p++;
			continue;
		}
		g_string_append_c(cur, *p);
	}
	if (added > STRATA_MAX_LOWER) {
		*err = g_strdup_printf("option lowerdir: too many layers: %u "
				       "(at most %u)",
				       added, STRATA_MAX_LOWER);
		goto fail;
	}
	return 0;
fail:
	g_ptr_array_remove_range(out, out->len - added, added);
	return -EINVAL;
}

static int apply_one(struct strata_options *o, const char *item, char **err)
{
	g_autofree char *name = NULL;
	const char *eq = strchr(item, '=');
	const char *value = eq ? eq + 1 : NULL;
	const struct opt_def *d;

	name = eq ? g_strndup(item, eq - item) : g_strdup(item);
	d = find_opt(name);
	if (d == NULL) {
		g_ptr_array_add(o->warnings,
				g_strdup_printf("unknown option '%s' ignored",
						name));
		return 0;
	}
	if (d->value == VAL_REQUIRED && value == NULL) {
		*err = g_strdup_printf("option %s: needs a value (%s=...)",
				       name, name);
		return -EINVAL;
	}
	if (d->value == VAL_NONE && value != NULL) {
		*err = g_strdup_printf("option %s: takes no value", name);
		return -EINVAL;
	}
	switch (d->kind) {
	case OPT_OURS:
		return d->fn(o, d, value, err);
	case OPT_KERNEL:
		g_ptr_array_add(o->fuse_opts, g_strdup(item));
		return 0;
	case OPT_SILENT:
		return 0;
	}
	return 0;
}

int strata_options_apply_list(struct strata_options *o, const char *list,
			      char **err)
{
	g_auto(GStrv) items = strata_split_optlist(list, err);

	if (items == NULL)
		return -EINVAL;
	for (char **it = items; *it; it++) {
		int r = apply_one(o, *it, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int strata_options_parse(struct strata_options *o, int argc, char **argv,
			 char **err)
{
	g_autoptr(GPtrArray) pos = g_ptr_array_new();
	bool no_more_flags = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int r;

		if (no_more_flags || a[0] != '-' || a[1] == '\0') {
			g_ptr_array_add(pos, (char *)a);
			continue;
		}
		if (strcmp(a, "--") == 0) {
			no_more_flags = true;
		} else if (strcmp(a, "-o") == 0) {
			if (i + 1 >= argc) {
				*err = g_strdup("-o: missing option list");
				return -EINVAL;
			}
			r = strata_options_apply_list(o, argv[++i], err);
			if (r < 0)
				return r;
		} else if (strncmp(a, "-o", 2) == 0) {
			r = strata_options_apply_list(o, a + 2, err);
			if (r < 0)
				return r;
		} else if (strcmp(a, "-f") == 0) {
			o->foreground = true;
		} else if (strcmp(a, "-d") == 0 ||
			   strcmp(a, "--debug") == 0) {
			o->debug = true;
			o->foreground = true;
		} else if (strcmp(a, "-s") == 0) {
			o->threaded = false;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			o->help = true;
		} else if (strcmp(a, "-V") == 0 ||
			   strcmp(a, "--version") == 0) {
			o->version = true;
		} else {
			*err = g_strdup_printf("unknown command-line flag "
					       "'%s' (see --help)", a);
			return -EINVAL;
		}
	}
	if (o->help || o->version)
		return 0;

	if (pos->len == 1) {
		o->mountpoint = g_strdup(pos->pdata[0]);
	} else if (pos->len == 2) {
		o->source = g_strdup(pos->pdata[0]);
		o->mountpoint = g_strdup(pos->pdata[1]);
	} else if (pos->len == 0) {
		*err = g_strdup("missing mount point (usage: stratafs -o "
				"lowerdir=DIR[:DIR...] MOUNTPOINT)");
		return -EINVAL;
	} else {
		*err = g_strdup_printf("too many arguments: '%s' (usage: "
				       "stratafs [SOURCE] MOUNTPOINT -o ...)",
				       (char *)pos->pdata[2]);
		return -EINVAL;
	}
	if (o->lowerdirs->len == 0) {
		*err = g_strdup("missing option lowerdir=DIR[:DIR...]");
		return -EINVAL;
	}
	if (o->upperdir && !o->workdir) {
		*err = g_strdup("option upperdir needs workdir=DIR too");
		return -EINVAL;
	}
	if (o->workdir && !o->upperdir) {
		*err = g_strdup("option workdir needs upperdir=DIR too");
		return -EINVAL;
	}
	return 0;
}
