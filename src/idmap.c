// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Id mapping of uidmapping=/gidmapping= (see idmap.h).  The first triple
 * that covers an id wins, in both directions.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stratafs/idmap.h"

static int parse_u32(const char *s, uint32_t *out)
{
	char *end = NULL;
	guint64 v;

	if (*s == '\0' || !g_ascii_isdigit(*s))
		return -EINVAL;
	errno = 0;
	v = g_ascii_strtoull(s, &end, 10);
	if (errno || *end != '\0' || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

int strata_idmap_parse(struct strata_idmap *m, const char *s, char **err)
{
	g_auto(GStrv) parts = NULL;
	guint n, i, start = 0;

	if (m->ranges == NULL)
		m->ranges = g_array_new(FALSE, FALSE,
					sizeof(struct strata_idrange));
	if (*s == ':')
		s++; /* Podman's leading ':' */
	parts = g_strsplit(s, ":", -1);
	n = g_strv_length(parts);
	if (n == 0 || n % 3 != 0) {
		*err = g_strdup_printf("id mapping '%s': expected triples "
				       "ONDISK:SHOWN:COUNT", s);
		return -EINVAL;
	}
	for (i = start; i < n; i += 3) {
		struct strata_idrange r;

		if (parse_u32(parts[i], &r.ondisk) < 0 ||
		    parse_u32(parts[i + 1], &r.shown) < 0 ||
		    parse_u32(parts[i + 2], &r.count) < 0 || r.count == 0 ||
		    (uint64_t)r.ondisk + r.count - 1 > UINT32_MAX ||
		    (uint64_t)r.shown + r.count - 1 > UINT32_MAX) {
			*err = g_strdup_printf("id mapping '%s': bad triple "
					       "'%s:%s:%s'", s, parts[i],
					       parts[i + 1], parts[i + 2]);
			g_array_set_size(m->ranges, 0);
			return -EINVAL;
		}
		g_array_append_val(m->ranges, r);
	}
	return 0;
}

void strata_idmap_clear(struct strata_idmap *m)
{
	g_clear_pointer(&m->ranges, g_array_unref);
}

void strata_idmap_copy(struct strata_idmap *dst, const struct strata_idmap *src)
{
	dst->overflow = src->overflow;
	dst->ranges = src->ranges ? g_array_copy(src->ranges) : NULL;
}

uint32_t strata_idmap_show(const struct strata_idmap *m, uint32_t id)
{
	if (m->ranges == NULL || m->ranges->len == 0)
		return id;
	for (guint i = 0; i < m->ranges->len; i++) {
		const struct strata_idrange *r =
			&g_array_index(m->ranges, struct strata_idrange, i);

		if (id >= r->ondisk && id - r->ondisk < r->count)
			return r->shown + (id - r->ondisk);
	}
	return m->overflow;
}

bool strata_idmap_store(const struct strata_idmap *m, uint32_t id,
			uint32_t *out)
{
	if (m->ranges == NULL || m->ranges->len == 0) {
		*out = id;
		return true;
	}
	for (guint i = 0; i < m->ranges->len; i++) {
		const struct strata_idrange *r =
			&g_array_index(m->ranges, struct strata_idrange, i);

		if (id >= r->shown && id - r->shown < r->count) {
			*out = r->ondisk + (id - r->shown);
			return true;
		}
	}
	return false;
}
