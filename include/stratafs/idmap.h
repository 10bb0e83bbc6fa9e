/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * uidmapping=/gidmapping= as fuse-overlayfs defines them (and Podman
 * passes them): triples ONDISK:SHOWN:COUNT joined by ':', possibly with a
 * leading ':'.  A file owned by ONDISK+k on disk shows as SHOWN+k; what is
 * stored (chown, new files) goes the other way.  An id outside every
 * triple shows as the overflow id.  Pure functions, unit-tested.
 */
#ifndef STRATAFS_IDMAP_H
#define STRATAFS_IDMAP_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

struct strata_idrange {
	uint32_t ondisk;
	uint32_t shown;
	uint32_t count;
};

struct strata_idmap {
	GArray *ranges; /* struct strata_idrange; NULL: identity */
	uint32_t overflow; /* shown for an unmapped on-disk id */
};

/* Parse @s into @m (which must be empty).  0, or -EINVAL with *err. */
int strata_idmap_parse(struct strata_idmap *m, const char *s, char **err);
void strata_idmap_clear(struct strata_idmap *m);
void strata_idmap_copy(struct strata_idmap *dst, const struct strata_idmap *src);
/* on disk -> shown; the overflow id if unmapped */
uint32_t strata_idmap_show(const struct strata_idmap *m, uint32_t id);
/* shown -> on disk; false if unmapped */
bool strata_idmap_store(const struct strata_idmap *m, uint32_t id,
			uint32_t *out);

#endif
