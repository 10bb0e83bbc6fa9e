// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Name indexes of lower directories: the per-directory choice between
 * probing names and reading listings.
 *
 * Resolving a name (lookup.c) probes every layer of the parent's stack
 * with fstatat(), plus one probe for an AUFS ".wh.NAME" where the name is
 * absent.  That is cheap in a shallow stack but, for a name that lives in
 * the bottom of 128 layers, costs 254 failing system calls.  Reading a
 * directory once instead costs one getdents64() per few hundred entries;
 * it wins where a directory sees many lookups and loses badly for one
 * stat in a huge directory.  So each lower directory of a merged one
 * starts by probing and counts what the probes that found nothing cost;
 * once that exceeds the estimated cost of listing it (from its st_size),
 * it is listed once and later lookups skip it without a system call when
 * the name is not in it.  Like renting skis until the rent paid equals
 * the price, this never costs more than twice the better choice made with
 * hindsight.  A readdir of the merged directory reads the listings anyway
 * and indexes them for free.
 *
 * Only lower layers are indexed: they do not change while mounted (the
 * kernel overlayfs makes the same assumption), so an index never goes
 * stale.  The upper layer changes under our own operations and is always
 * probed.
 *
 * An index is a sorted array of 32-bit hashes of the names the directory
 * holds, plus, for each ".wh.X", the hash of X: a name whose hash is
 * absent has neither an entry nor an AUFS whiteout there.  A hash that is
 * present only means "probe": a collision costs a system call, never a
 * wrong answer.  Four bytes per entry, against the few hundred bytes per
 * entry of a cached listing.
 *
 * Concurrency: lookups run in parallel.  Each slot moves through its
 * states with atomic compare-and-swap; the one thread that wins BUSY sizes
 * or builds the index, publishes it and then sets READY (glib atomics are
 * full barriers, so a reader that sees READY sees the index).  An index
 * is freed only with its directory inode.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "stratafs/stratafs.h"

enum {
	SLOT_COUNTING, /* probing, counting the misses */
	SLOT_BUSY,     /* one thread sizes or builds the index */
	SLOT_READY,    /* names is the index */
	SLOT_NEVER,    /* listing failed or is too costly: always probe */
};

/* misses before a directory's size is even looked at */
#define FIRST_BUDGET 8
/* a fruitless probe (one or two fstatat) against reading and hashing
 * listing bytes: about one probe per 128 bytes of st_size (measured on
 * ext4 and tmpfs; ext4 spends about 24 bytes per entry, tmpfs 20) */
#define BYTES_PER_PROBE 128
/* beyond this st_size, probing always: the index would be large and
 * the listing long, for a directory that may never be read again */
#define MAX_INDEXED_SIZE (512u << 20)

struct strata_lnames {
	uint32_t n;
	uint32_t h[];
};

struct strata_lslot {
	uint32_t layer;
	gint state;
	gint misses;
	gint budget;
	bool sized; /* budget comes from st_size (protected by BUSY) */
	struct strata_lnames *names;
};

struct strata_dcache {
	uint32_t n;
	struct strata_lslot s[]; /* ascending layer, as in the stack */
};

uint32_t strata_name_hash(const char *name, size_t len)
{
	/* FNV-1a, 64-bit, then a finalizer so that all bits of the 32 kept
	 * depend on all of the name */
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (uint32_t)h;
}

static bool is_indexed_layer(const struct strata_fs *fs, uint32_t layer)
{
	return !(fs->has_upper && layer == 0);
}

struct strata_dcache *strata_dcache_get(struct strata_fs *fs,
					struct strata_inode *dir,
					const struct strata_stack *s)
{
	struct strata_dcache *dc = g_atomic_pointer_get(&strata_dirpart(dir)->dcache);
	uint32_t n = 0;

	if (dc)
		return dc;
	for (uint32_t i = 0; i < s->n; i++)
		n += is_indexed_layer(fs, s->e[i].layer);
	if (n == 0)
		return NULL;
	dc = g_malloc0(sizeof(*dc) + n * sizeof(dc->s[0]));
	for (uint32_t i = 0; i < s->n; i++) {
		if (!is_indexed_layer(fs, s->e[i].layer))
			continue;
		dc->s[dc->n].layer = s->e[i].layer;
		dc->s[dc->n].budget = FIRST_BUDGET;
		dc->n++;
	}
	if (!g_atomic_pointer_compare_and_exchange(&strata_dirpart(dir)->dcache, NULL, dc)) {
		g_free(dc);
		dc = g_atomic_pointer_get(&strata_dirpart(dir)->dcache);
	}
	return dc;
}

void strata_dcache_free(struct strata_dcache *dc)
{
	if (!dc)
		return;
	for (uint32_t i = 0; i < dc->n; i++)
		g_free(dc->s[i].names);
	g_free(dc);
}

static struct strata_lslot *find_slot(struct strata_dcache *dc,
				      uint32_t layer)
{
	uint32_t lo = 0, hi = dc ? dc->n : 0;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (dc->s[mid].layer == layer)
			return &dc->s[mid];
		if (dc->s[mid].layer < layer)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The slot of @layer, for callers that visit layers in ascending order:
 * *cursor remembers where the last one was. */
static struct strata_lslot *next_slot(struct strata_dcache *dc,
				      uint32_t *cursor, uint32_t layer)
{
	uint32_t i = *cursor;

	while (i < dc->n && dc->s[i].layer < layer)
		i++;
	*cursor = i;
	return (i < dc->n && dc->s[i].layer == layer) ? &dc->s[i] : NULL;
}

static bool lnames_has(const struct strata_lnames *ln, uint32_t h)
{
	uint32_t lo = 0, hi = ln->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (ln->h[mid] == h)
			return true;
		if (ln->h[mid] < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

bool strata_dcache_may_have(struct strata_dcache *dc, uint32_t *cursor,
			    uint32_t layer, uint32_t h)
{
	struct strata_lslot *sl = next_slot(dc, cursor, layer);

	if (!sl || g_atomic_int_get(&sl->state) != SLOT_READY)
		return true;
	return lnames_has(sl->names, h);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Collects hashes for an index under construction. */
struct lbuild {
	uint32_t *h;
	uint32_t n, cap;
};

static void lbuild_add(struct lbuild *b, const char *name)
{
	size_t len = strlen(name);
	size_t pl = strlen(STRATA_AUFS_PREFIX);

	if (b->n + 2 > b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		b->h = g_renew(uint32_t, b->h, b->cap);
	}
	b->h[b->n++] = strata_name_hash(name, len);
	/* ".wh.X" makes X worth probing: the probe finds the marker */
	if (len > pl && strncmp(name, STRATA_AUFS_PREFIX, pl) == 0)
		b->h[b->n++] = strata_name_hash(name + pl, len - pl);
}

static struct strata_lnames *lbuild_finish(struct lbuild *b)
{
	struct strata_lnames *ln;
	uint32_t k = 0;

	qsort(b->h, b->n, sizeof(uint32_t), cmp_u32);
	for (uint32_t i = 0; i < b->n; i++)
		if (k == 0 || b->h[i] != b->h[k - 1])
			b->h[k++] = b->h[i];
	ln = g_malloc(sizeof(*ln) + k * sizeof(uint32_t));
	ln->n = k;
	if (k)
		memcpy(ln->h, b->h, k * sizeof(uint32_t));
	g_free(b->h);
	return ln;
}

/* List the real directory @fd into an index. */
static int build_index(int fd, struct strata_lnames **out)
{
	struct lbuild b = { 0 };
	struct dirent *de;
	DIR *d;
	int dfd, r = 0;

	dfd = strata_do_openat(fd, ".", O_RDONLY | O_DIRECTORY, 0);
	if (dfd < 0)
		return dfd;
	d = fdopendir(dfd);
	if (!d) {
		r = -errno;
		close(dfd);
		return r;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			r = errno ? -errno : 0;
			break;
		}
		lbuild_add(&b, de->d_name);
	}
	closedir(d);
	if (r < 0) {
		g_free(b.h);
		return r;
	}
	*out = lbuild_finish(&b);
	return 0;
}

static void publish(struct strata_lslot *sl, struct strata_lnames *ln)
{
	sl->names = ln;
	g_atomic_int_set(&sl->state, SLOT_READY);
}

void strata_dcache_miss(struct strata_dcache *dc, uint32_t layer, int fd)
{
	struct strata_lslot *sl = find_slot(dc, layer);
	struct strata_lnames *ln = NULL;
	struct stat st;
	gint m;

	if (!sl || g_atomic_int_get(&sl->state) != SLOT_COUNTING)
		return;
	m = g_atomic_int_add(&sl->misses, 1) + 1;
	if (m < g_atomic_int_get(&sl->budget))
		return;
	if (!g_atomic_int_compare_and_exchange(&sl->state, SLOT_COUNTING,
					       SLOT_BUSY))
		return;
	if (!sl->sized) {
		sl->sized = true;
		if (strata_do_fstatat(fd, "", &st, AT_EMPTY_PATH) < 0 ||
		    (uint64_t)st.st_size > MAX_INDEXED_SIZE) {
			g_atomic_int_set(&sl->state, SLOT_NEVER);
			return;
		}
		g_atomic_int_set(&sl->budget,
				 FIRST_BUDGET + st.st_size / BYTES_PER_PROBE);
		if (m < g_atomic_int_get(&sl->budget)) {
			g_atomic_int_set(&sl->state, SLOT_COUNTING);
			return;
		}
	}
	if (build_index(fd, &ln) < 0) {
		g_atomic_int_set(&sl->state, SLOT_NEVER);
		return;
	}
	publish(sl, ln);
}

void strata_dcache_feed(struct strata_dcache *dc, uint32_t layer,
			const struct strata_raw_dirent *raw, size_t n)
{
	struct strata_lslot *sl = find_slot(dc, layer);
	struct lbuild b = { 0 };

	if (!sl || !g_atomic_int_compare_and_exchange(&sl->state,
						      SLOT_COUNTING, SLOT_BUSY))
		return;
	for (size_t i = 0; i < n; i++)
		lbuild_add(&b, raw[i].name);
	publish(sl, lbuild_finish(&b));
}

size_t strata_dcache_indexed(struct strata_dcache *dc)
{
	size_t k = 0;

	for (uint32_t i = 0; dc && i < dc->n; i++)
		k += g_atomic_int_get(&dc->s[i].state) == SLOT_READY;
	return k;
}
