// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target: uidmapping=/gidmapping= values (idmap.c).  The input up to
 * its first NUL is the value; the bytes after it, taken 4 at a time, are
 * ids to map.  Checks, besides crashes and leaks:
 *   - a failed parse leaves no range behind and says why;
 *   - an accepted map has only non-empty ranges that do not wrap, and is
 *     exactly the triples of the value (an independent reading of it);
 *   - show() and store() follow the first range that covers an id, and
 *     store(show(id)) == id when the id is mapped by a range whose shown
 *     ids no earlier range claims.
 */
#include <errno.h>

#include "fuzz-util.h"
#include "stratafs/idmap.h"

/* A plain decimal u32: digits only, no sign, no space, no overflow. */
static bool plain_u32(const char *s, uint32_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return false;
	}
	*out = (uint32_t)v;
	return true;
}

/* Our own reading of the format, to compare with idmap.c's. */
static bool model_parse(const char *s, GArray *out)
{
	g_auto(GStrv) parts = NULL;
	guint n;

	if (*s == ':')
		s++;
	parts = g_strsplit(s, ":", -1);
	n = g_strv_length(parts);
	if (n == 0 || n % 3 != 0)
		return false;
	for (guint i = 0; i < n; i += 3) {
		struct strata_idrange r;

		if (!plain_u32(parts[i], &r.ondisk) ||
		    !plain_u32(parts[i + 1], &r.shown) ||
		    !plain_u32(parts[i + 2], &r.count) || r.count == 0 ||
		    r.count - 1 > UINT32_MAX - r.ondisk ||
		    r.count - 1 > UINT32_MAX - r.shown)
			return false;
		g_array_append_val(out, r);
	}
	return true;
}

static const struct strata_idrange *first_cover(const GArray *a, uint32_t id,
						bool shown_side)
{
	for (guint i = 0; i < a->len; i++) {
		const struct strata_idrange *r =
			&g_array_index(a, struct strata_idrange, i);
		uint32_t base = shown_side ? r->shown : r->ondisk;

		if (id >= base && id - base < r->count)
			return r;
	}
	return NULL;
}

static void check_id(const struct strata_idmap *m, uint32_t id)
{
	const struct strata_idrange *r = first_cover(m->ranges, id, false);
	uint32_t shown = strata_idmap_show(m, id), back = 0;

	if (r == NULL) {
		FUZZ_CHECK(shown == m->overflow, "unmapped %u shows as %u", id,
			   shown);
	} else {
		FUZZ_CHECK(shown == r->shown + (id - r->ondisk),
			   "%u shows as %u", id, shown);
		/* the way back is the first range covering the shown id */
		if (first_cover(m->ranges, shown, true) == r) {
			FUZZ_CHECK(strata_idmap_store(m, shown, &back),
				   "shown %u not storable", shown);
			FUZZ_CHECK(back == id, "%u -> %u -> %u", id, shown,
				   back);
		}
	}
	r = first_cover(m->ranges, id, true);
	FUZZ_CHECK(strata_idmap_store(m, id, &back) == (r != NULL),
		   "store(%u) disagrees on mapped", id);
	if (r)
		FUZZ_CHECK(back == r->ondisk + (id - r->shown),
			   "store(%u) = %u", id, back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strata_idmap m = { .ranges = NULL, .overflow = 65534 };
	g_autoptr(GArray) want = g_array_new(FALSE, FALSE,
					     sizeof(struct strata_idrange));
	g_autofree char *s = fuzz_cstr(data, size);
	g_autofree char *err = NULL;
	size_t used = strlen(s) + 1;
	bool ok = model_parse(s, want);
	int r = strata_idmap_parse(&m, s, &err);

	FUZZ_CHECK((r == 0) == ok, "'%s': parse %d, model %d (%s)", s, r, ok,
		   err ? err : "");
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL && err, "r=%d", r);
		FUZZ_CHECK(m.ranges == NULL || m.ranges->len == 0,
			   "%u ranges left after a failure", m.ranges->len);
		strata_idmap_clear(&m);
		return 0;
	}
	FUZZ_CHECK(err == NULL, "message on success: %s", err);
	FUZZ_CHECK(m.ranges->len == want->len, "%u ranges, want %u",
		   m.ranges->len, want->len);
	for (guint i = 0; i < want->len; i++) {
		const struct strata_idrange *a =
			&g_array_index(m.ranges, struct strata_idrange, i);
		const struct strata_idrange *b =
			&g_array_index(want, struct strata_idrange, i);

		FUZZ_CHECK(a->ondisk == b->ondisk && a->shown == b->shown &&
			   a->count == b->count, "range %u differs", i);
	}

	/* ids: the edges of every range, and those the input gives */
	for (guint i = 0; i < want->len && i < 64; i++) {
		const struct strata_idrange *b =
			&g_array_index(want, struct strata_idrange, i);

		check_id(&m, b->ondisk);
		check_id(&m, b->ondisk + (b->count - 1));
		check_id(&m, b->shown);
		check_id(&m, b->shown + (b->count - 1));
		if (b->ondisk > 0)
			check_id(&m, b->ondisk - 1);
		if (b->ondisk + (uint64_t)b->count <= UINT32_MAX)
			check_id(&m, b->ondisk + b->count);
	}
	for (size_t off = used; off + 4 <= size && off < used + 64 * 4;
	     off += 4) {
		uint32_t id;

		memcpy(&id, data + off, 4);
		check_id(&m, id);
	}

	/* a copy maps the same */
	struct strata_idmap c;
	strata_idmap_copy(&c, &m);
	FUZZ_CHECK(c.ranges->len == m.ranges->len, "copy differs");
	strata_idmap_clear(&c);
	strata_idmap_clear(&m);
	return 0;
}
