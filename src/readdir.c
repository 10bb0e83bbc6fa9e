// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Merged directory listings.
 *
 * A directory's first read takes a snapshot: every real directory of the
 * stack is read top to bottom and merged into one array, which readdir
 * then serves by index (the offset of entry i is i + 1), so a listing
 * stays consistent however slowly the caller reads it.  A directory
 * read a second time keeps its lower directories read and merged (struct
 * strata_lowerlist: they do not change while mounted); the upper one,
 * which our own operations change, is read at every snapshot and merged
 * over them.  The merge itself (strata_merge_listings)
 * makes no system calls and is unit-tested on its own:
 *   - the topmost entry of a name wins, lower ones are dropped;
 *   - a whiteout hides the name in its own layer and all below;
 *   - ".wh.NAME" hides NAME in the layers below its own; ".wh.*" names
 *     never show, nor do the opaque markers ".wh..wh..opq", ".wh..opq".
 * Opaque directories need no rule here: the stack already ends at them.
 *
 * Reading a layer costs one getdents stream, plus an fstatat only for
 * entries that may be whiteouts: character devices, entries of unknown
 * type, and regular files in a directory marked opaque=x.
 */
#include <fcntl.h>
#include <string.h>

#include "stratafs/stratafs.h"

void strata_dirsnap_free(struct strata_dirsnap *s)
{
	if (s == NULL)
		return;
	g_array_unref(s->ents);
	g_string_chunk_free(s->names);
	g_free(s);
}

static struct strata_dirsnap *dirsnap_new(void)
{
	struct strata_dirsnap *s = g_new0(struct strata_dirsnap, 1);

	s->ents = g_array_new(FALSE, FALSE, sizeof(struct strata_dirent));
	s->names = g_string_chunk_new(4096);
	return s;
}

static void dirsnap_add(struct strata_dirsnap *s, const char *name,
			uint64_t ino, unsigned char type)
{
	struct strata_dirent d = {
		.name = g_string_chunk_insert(s->names, name),
		.ino = ino,
		.type = type,
	};

	g_array_append_val(s->ents, d);
}

static bool is_opaque_marker(const char *name)
{
	return strcmp(name, STRATA_AUFS_OPAQUE) == 0 ||
	       strcmp(name, ".wh..opq") == 0;
}

struct strata_dirsnap *strata_merge_listings(const struct strata_fs *fs,
					     uint32_t nlayers,
					     const uint32_t *layers,
					     struct strata_raw_dirent **raw,
					     const size_t *n)
{
	struct strata_dirsnap *snap = dirsnap_new();
	/* names decided by a higher layer: shown, or hidden by a whiteout.
	 * Keys point into the callers' raw arrays, which outlive us. */
	g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GPtrArray) aufs = g_ptr_array_new();

	for (uint32_t l = 0; l < nlayers; l++) {
		g_ptr_array_set_size(aufs, 0);
		for (size_t i = 0; i < n[l]; i++) {
			const struct strata_raw_dirent *r = &raw[l][i];

			if (strcmp(r->name, ".") == 0 ||
			    strcmp(r->name, "..") == 0)
				continue;
			if (strata_is_aufs_name(r->name)) {
				if (!is_opaque_marker(r->name))
					g_ptr_array_add(
						aufs,
						(char *)r->name +
							strlen(STRATA_AUFS_PREFIX));
				continue;
			}
			if (!g_hash_table_add(seen, (char *)r->name))
				continue; /* a higher layer decided */
			if (r->whiteout)
				continue;
			dirsnap_add(snap, r->name,
				    r->shown ? r->ino
					     : strata_map_ino(fs, layers[l],
							      r->ino),
				    r->type);
		}
		/* ".wh.X" hides X only in the layers below its own */
		for (guint i = 0; i < aufs->len; i++)
			g_hash_table_add(seen, aufs->pdata[i]);
	}
	return snap;
}

/* Read one real directory into @out (names stored in @names). */
static int read_layer(const struct strata_stack_entry *e, GArray *out,
		      GStringChunk *names)
{
	int fd = strata_do_openat(e->fd, ".", O_RDONLY | O_DIRECTORY, 0);
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (d == NULL) {
		r = -errno;
		close(fd);
		return r;
	}
	for (;;) {
		struct strata_raw_dirent raw = { 0 };
		unsigned char t;

		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			r = errno ? -errno : 0;
			break;
		}
		t = de->d_type;
		raw.ino = de->d_ino;
		if (t == DT_CHR || t == DT_UNKNOWN ||
		    (t == DT_REG && e->xwhiteouts)) {
			struct stat st;

			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			r = strata_do_fstatat(e->fd, de->d_name, &st,
					      AT_SYMLINK_NOFOLLOW);
			if (r == -ENOENT)
				continue; /* vanished under us */
			if (r < 0)
				break;
			t = IFTODT(st.st_mode);
			r = strata_entry_is_whiteout(e->fd, de->d_name, &st);
			if (r < 0)
				break;
			raw.whiteout = r > 0;
			r = 0;
		}
		raw.type = t;
		raw.name = g_string_chunk_insert(names, de->d_name);
		g_array_append_val(out, raw);
	}
	closedir(d);
	return r;
}

/* An impure upper directory (copy-up published into it, or a copy moved
 * in) lists copies under the numbers stat shows, their origins', as the
 * kernel's readdir does; one xattr read per entry, only there. */
static void shown_inos(struct strata_fs *fs, const struct strata_stack *s,
		       uint32_t i, GArray *list)
{
	int dirfd = s->e[i].fd;
	char y;

	if (!fs->has_upper || !fs->xattr_ok ||
	    strata_do_getxattr_at(dirfd, NULL,
				  strata_marker_xattr(STRATA_MARKER_IMPURE,
						      fs->xattr_ns),
				  &y, 1) <= 0)
		return;
	for (guint k = 0; k < list->len; k++) {
		struct strata_raw_dirent *r =
			&g_array_index(list, struct strata_raw_dirent, k);
		struct stat st = { .st_ino = r->ino,
				   .st_mode = DTTOIF(r->type) };

		if (r->whiteout || strcmp(r->name, ".") == 0 ||
		    strcmp(r->name, "..") == 0)
			continue;
		r->ino = strata_shown_ino(fs, s->e, s->n, i, r->name, &st);
		r->shown = true;
	}
}

void strata_dir_changed(struct strata_inode *dir)
{
	__atomic_add_fetch(&strata_dirpart(dir)->ns_version, 1, __ATOMIC_SEQ_CST);
}

uint32_t strata_dir_version(struct strata_inode *dir)
{
	return __atomic_load_n(&strata_dirpart(dir)->ns_version, __ATOMIC_SEQ_CST);
}

/* 64 bits of a name: FNV-1a, then splitmix64's finish to spread them. */
static uint64_t name_hash64(const char *s)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= UINT64_C(0x100000001b3);
	}
	h ^= h >> 30;
	h *= UINT64_C(0xbf58476d1ce4e5b9);
	h ^= h >> 27;
	h *= UINT64_C(0x94d049bb133111eb);
	h ^= h >> 31;
	return h;
}

static int cmp_off(const void *a, const void *b)
{
	const struct strata_dirent *x = a, *y = b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return strcmp(x->name, y->name);
}

/*
 * Readdir offsets that mean the same in every snapshot of a directory: a
 * name's offset is a hash of the name (".": 1, "..": 2), and a snapshot
 * lists its names in that order.  Going on from offset X lists the names
 * that hash above X, whichever snapshot answers, so:
 *   - the kernel's readdir cache (FOPEN_CACHE_DIR), which one listing
 *     fills from the reads of several opens, one after another, gets
 *     each name once however their snapshots differ;
 *   - a reader that goes on after the directory changed (a new snapshot,
 *     do_readdir in ops.c) sees every name that was there all along
 *     exactly once, as on a local filesystem.
 * Two names of one hash (about 1 in 2^62 per pair) take the next free
 * values, in name order.
 */
static void assign_offsets(struct strata_dirsnap *snap)
{
	GArray *a = snap->ents;
	struct strata_dirent *d = (struct strata_dirent *)a->data;

	for (guint i = 0; i < a->len; i++)
		d[i].off = i < 2 ? i + 1 : (name_hash64(d[i].name) >> 2) + 3;
	if (a->len > 2)
		qsort(d + 2, a->len - 2, sizeof(*d), cmp_off);
	for (guint i = 3; i < a->len; i++)
		if (d[i].off <= d[i - 1].off)
			d[i].off = d[i - 1].off + 1;
}

guint strata_dirsnap_seek(const struct strata_dirsnap *s, uint64_t off)
{
	const struct strata_dirent *d =
		(const struct strata_dirent *)s->ents->data;
	guint lo = 0, hi = s->ents->len;

	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;

		if (d[mid].off <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The merged listing of the lower directories of a stack: raw entries
 * with the numbers they show (shown), no whiteouts, no ".wh." names; one
 * layer of input to the merge with the upper's live listing. */
struct strata_lowerlist {
	uint32_t n;	  /* lower directories it was read from */
	uint32_t *layers; /* their layers */
	GArray *raw;	  /* struct strata_raw_dirent */
	GStringChunk *names;
};

void strata_lowerlist_free(struct strata_lowerlist *ll)
{
	if (ll == NULL)
		return;
	g_free(ll->layers);
	g_array_unref(ll->raw);
	g_string_chunk_free(ll->names);
	g_free(ll);
}

static bool lowerlist_fits(const struct strata_lowerlist *ll,
			   const struct strata_stack_entry *e, uint32_t n)
{
	if (ll->n != n)
		return false;
	for (uint32_t i = 0; i < n; i++)
		if (ll->layers[i] != e[i].layer)
			return false;
	return true;
}

/* Read and merge the lower directories @e[0..n) of @dir, indexing them
 * for lookups on the way. */
static int lowerlist_read(struct strata_fs *fs, struct strata_inode *dir,
			  const struct strata_stack *s,
			  const struct strata_stack_entry *e, uint32_t n,
			  struct strata_lowerlist **out)
{
	g_autofree GArray **lists = g_new0(GArray *, n);
	g_autofree struct strata_raw_dirent **raw =
		g_new0(struct strata_raw_dirent *, n);
	g_autofree size_t *cnt = g_new0(size_t, n);
	struct strata_lowerlist *ll = g_new0(struct strata_lowerlist, 1);
	GStringChunk *names = g_string_chunk_new(4096);
	int r = 0;

	ll->n = n;
	ll->layers = g_new0(uint32_t, n ? n : 1);
	for (uint32_t i = 0; i < n && r == 0; i++) {
		lists[i] = g_array_new(FALSE, FALSE,
				       sizeof(struct strata_raw_dirent));
		r = read_layer(&e[i], lists[i], names);
		raw[i] = (struct strata_raw_dirent *)lists[i]->data;
		cnt[i] = lists[i]->len;
		ll->layers[i] = e[i].layer;
	}
	if (r == 0) {
		struct strata_dcache *dc = strata_dcache_get(fs, dir, s);
		struct strata_dirsnap *m;

		/* the lower listings are read: index them for lookups */
		for (uint32_t i = 0; dc && i < n; i++)
			strata_dcache_feed(dc, ll->layers[i], raw[i], cnt[i]);
		m = strata_merge_listings(fs, n, ll->layers, raw, cnt);
		ll->raw = g_array_sized_new(FALSE, FALSE,
					    sizeof(struct strata_raw_dirent),
					    m->ents->len);
		ll->names = g_string_chunk_new(4096);
		for (guint i = 0; i < m->ents->len; i++) {
			const struct strata_dirent *d =
				&g_array_index(m->ents, struct strata_dirent, i);
			struct strata_raw_dirent rd = {
				.name = g_string_chunk_insert(ll->names,
							      d->name),
				.ino = d->ino,
				.type = d->type,
				.shown = true,
			};

			g_array_append_val(ll->raw, rd);
		}
		strata_dirsnap_free(m);
	}
	for (uint32_t i = 0; i < n; i++)
		if (lists[i])
			g_array_unref(lists[i]);
	g_string_chunk_free(names);
	if (r < 0) {
		g_free(ll->layers);
		g_free(ll);
		return r;
	}
	*out = ll;
	return 0;
}

/* The merged lower listing of @dir (stack @s, whose lower directories are
 * @e[0..n)): kept on the inode from its second read on (a directory the
 * kernel lists once from its cache costs no memory here).  *@own is set
 * when the caller must free it. */
static int lowerlist_get(struct strata_fs *fs, struct strata_inode *dir,
			 const struct strata_stack *s,
			 const struct strata_stack_entry *e, uint32_t n,
			 struct strata_lowerlist **out, bool *own)
{
	struct strata_lowerlist *ll =
		g_atomic_pointer_get(&strata_dirpart(dir)->lowerlist);
	int r;

	*own = false;
	if (ll && lowerlist_fits(ll, e, n)) {
		*out = ll;
		return 0;
	}
	r = lowerlist_read(fs, dir, s, e, n, &ll);
	if (r < 0)
		return r;
	if (__atomic_fetch_add(&strata_dirpart(dir)->lower_reads, 1, __ATOMIC_RELAXED) == 0) {
		*own = true;
	} else if (!g_atomic_pointer_compare_and_exchange(&strata_dirpart(dir)->lowerlist,
							  NULL, ll)) {
		struct strata_lowerlist *kept =
			g_atomic_pointer_get(&strata_dirpart(dir)->lowerlist);

		if (lowerlist_fits(kept, e, n)) {
			strata_lowerlist_free(ll);
			ll = kept; /* another reader was first */
		} else {
			*own = true;
		}
	}
	*out = ll;
	return 0;
}

int strata_readdir_snapshot(struct strata_fs *fs, struct strata_inode *dir,
			    struct strata_dirsnap **out)
{
	struct strata_stack *s;
	GStringChunk *names = NULL;
	GArray *upper = NULL;
	struct strata_lowerlist *ll = NULL;
	struct strata_raw_dirent *raw[2];
	uint32_t layers[2];
	size_t n[2];
	uint32_t nl = 0, up, version;
	bool own = false;
	int r = 0;

	if (!S_ISDIR(dir->type))
		return -ENOTDIR;
	/* before reading: a change during the read makes it stale */
	version = strata_dir_version(dir);
	s = strata_inode_stack(dir);
	/* the upper directory is read live: it changes under our own
	 * operations; the lowers come merged from the inode */
	up = fs->has_upper && s->n > 0 && s->e[0].layer == 0 ? 1 : 0;
	if (up) {
		names = g_string_chunk_new(4096);
		upper = g_array_new(FALSE, FALSE,
				    sizeof(struct strata_raw_dirent));
		r = read_layer(&s->e[0], upper, names);
		if (r == 0)
			shown_inos(fs, s, 0, upper);
		raw[nl] = (struct strata_raw_dirent *)upper->data;
		n[nl] = upper->len;
		layers[nl++] = 0;
	}
	if (r == 0 && s->n > up) {
		r = lowerlist_get(fs, dir, s, s->e + up, s->n - up, &ll, &own);
		if (r == 0) {
			raw[nl] = (struct strata_raw_dirent *)ll->raw->data;
			n[nl] = ll->raw->len;
			layers[nl++] = s->e[up].layer;
		}
	}
	if (r == 0) {
		struct strata_dirsnap *snap;
		struct strata_dirent dots[2] = {
			{ .name = ".", .ino = dir->ino, .type = DT_DIR },
			{ .name = "..", .ino = dir->ino, .type = DT_DIR },
		};

		g_mutex_lock(&dir->lock);
		if (dir->parent)
			dots[1].ino = dir->parent->ino;
		g_mutex_unlock(&dir->lock);

		if (up) {
			snap = strata_merge_listings(fs, nl, layers, raw, n);
		} else {
			/* merged already: no name can repeat */
			snap = dirsnap_new();
			for (size_t i = 0; nl && i < n[0]; i++)
				dirsnap_add(snap, raw[0][i].name,
					    raw[0][i].ino, raw[0][i].type);
		}
		dots[0].name = g_string_chunk_insert(snap->names, ".");
		dots[1].name = g_string_chunk_insert(snap->names, "..");
		g_array_prepend_vals(snap->ents, dots, 2);
		assign_offsets(snap);
		snap->version = version;
		*out = snap;
	}
	if (own)
		strata_lowerlist_free(ll);
	if (upper)
		g_array_unref(upper);
	if (names)
		g_string_chunk_free(names);
	strata_stack_unref(s);
	return r;
}
