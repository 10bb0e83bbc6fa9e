// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Fuzz target: the readdir merge (strata_merge_listings, readdir.c).
 *
 * The input is text, one entry per line, so that seeds are readable:
 *   -          starts the next layer down (the first layer is implicit)
 *   O          the current layer's directory is opaque (overlay.opaque=y)
 *   fNAME      a regular file NAME; d dir, l symlink, c char device (not a
 *              whiteout), b block device, p fifo, s socket, u unknown type
 *   wNAME      a 0/0 character-device whiteout
 *   xNAME      an xattr whiteout (empty regular file with overlay.whiteout)
 *   any other first byte: type (byte & 15), whiteout flag (byte & 16)
 * NAME may be anything but a newline, including ".", "..", ".wh.X",
 * ".wh..wh..opq", duplicates and the empty name.
 *
 * Like the daemon's directory stack (lookup.c), the harness ends the stack
 * at the first opaque layer (O, or an entry ".wh..wh..opq" / ".wh..opq");
 * the merge itself has no opaque rule.  Then it merges, once on one
 * device and once with layers on three devices (st_ino carrying the
 * device index), and compares with its own per-name reading of the rules
 * in readdir.c: a name shows iff the topmost layer that has it (first
 * entry of that layer) holds a non-whiteout, and no ".wh.NAME" stands in a
 * layer above that one; it shows with that entry's type and st_ino.
 * So: no duplicates, no whiteout or ".wh." name shown, nothing from below
 * an opaque layer, everything shown exists in a layer, nothing lost.
 */
#include <sys/stat.h>

#include "fuzz-util.h"
#include "stratafs/stratafs.h"

#define MAX_LAYERS 32

struct layer {
	GArray *ents; /* struct strata_raw_dirent */
	GHashTable *first; /* name -> its first entry, filled after parse */
	bool opaque;
};

static unsigned char type_of(char c, bool *whiteout)
{
	*whiteout = false;
	switch (c) {
	case 'f': return DT_REG;
	case 'd': return DT_DIR;
	case 'l': return DT_LNK;
	case 'c': return DT_CHR;
	case 'b': return DT_BLK;
	case 'p': return DT_FIFO;
	case 's': return DT_SOCK;
	case 'u': return DT_UNKNOWN;
	case 'w': *whiteout = true; return DT_CHR;
	case 'x': *whiteout = true; return DT_REG;
	default:
		*whiteout = (c & 16) != 0;
		return (unsigned char)(c & 15);
	}
}

static bool is_opaque_name(const char *n)
{
	return strcmp(n, ".wh..wh..opq") == 0 || strcmp(n, ".wh..opq") == 0;
}

/* Parse the input into layers; names live in @names. */
static uint32_t parse(const char *text, struct layer *L, GStringChunk *names)
{
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
	uint32_t nl = 1;

	L[0].ents = g_array_new(FALSE, FALSE, sizeof(struct strata_raw_dirent));
	for (char **p = lines; *p; p++) {
		struct strata_raw_dirent r = { 0 };
		struct layer *cur = &L[nl - 1];

		if (**p == '\0')
			continue;
		if (**p == '-') {
			if (nl == MAX_LAYERS)
				break;
			L[nl].ents = g_array_new(
				FALSE, FALSE, sizeof(struct strata_raw_dirent));
			nl++;
			continue;
		}
		if (**p == 'O') {
			cur->opaque = true;
			continue;
		}
		r.type = type_of(**p, &r.whiteout);
		r.name = g_string_chunk_insert(names, *p + 1);
		/* unique, and with top bits set now and then, which the
		 * three-device mapping must mask */
		r.ino = (((uint64_t)nl << 32) | cur->ents->len) + 1;
		r.ino |= (uint64_t)(cur->ents->len & 3) << 62;
		if (is_opaque_name(r.name))
			cur->opaque = true;
		g_array_append_val(cur->ents, r);
	}
	return nl;
}

static void index_layer(struct layer *l)
{
	l->first = g_hash_table_new(g_str_hash, g_str_equal);
	for (guint i = 0; i < l->ents->len; i++) {
		struct strata_raw_dirent *r =
			&g_array_index(l->ents, struct strata_raw_dirent, i);

		if (!g_hash_table_contains(l->first, r->name))
			g_hash_table_insert(l->first, (char *)r->name, r);
	}
}

static const struct strata_raw_dirent *find_in(const struct layer *l,
					       const char *name)
{
	return g_hash_table_lookup(l->first, name);
}

static uint64_t want_ino(const struct strata_fs *fs, uint32_t layer,
			 uint64_t ino)
{
	if (fs->n_devs <= 1)
		return ino;
	return (ino & ((UINT64_C(1) << 62) - 1)) |
	       ((uint64_t)(layer % 3) << 62);
}

static void check_merge(const struct strata_fs *fs, const struct layer *L,
			uint32_t nl)
{
	struct strata_raw_dirent *raw[MAX_LAYERS];
	uint32_t ids[MAX_LAYERS];
	size_t n[MAX_LAYERS];
	struct strata_dirsnap *snap;
	g_autoptr(GHashTable) got = g_hash_table_new(g_str_hash, g_str_equal);
	guint expected = 0;

	for (uint32_t l = 0; l < nl; l++) {
		raw[l] = (struct strata_raw_dirent *)L[l].ents->data;
		n[l] = L[l].ents->len;
		ids[l] = l;
	}
	snap = strata_merge_listings(fs, nl, ids, raw, n);

	/* what is shown: no duplicate, never a marker */
	for (guint i = 0; i < snap->ents->len; i++) {
		const struct strata_dirent *d =
			&g_array_index(snap->ents, struct strata_dirent, i);

		FUZZ_CHECK(g_hash_table_insert(got, d->name, (gpointer)d),
			   "'%s' listed twice", d->name);
		FUZZ_CHECK(!g_str_has_prefix(d->name, ".wh."),
			   "marker '%s' listed", d->name);
		FUZZ_CHECK(strcmp(d->name, ".") && strcmp(d->name, ".."),
			   "'%s' from a layer listed", d->name);
	}

	/* every name of every layer, decided on its own */
	for (uint32_t l = 0; l < nl; l++) {
		for (guint i = 0; i < L[l].ents->len; i++) {
			const char *name = g_array_index(
				L[l].ents, struct strata_raw_dirent, i).name;
			const struct strata_raw_dirent *top = NULL;
			const struct strata_dirent *d;
			uint32_t tl = 0;

			if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
			    g_str_has_prefix(name, ".wh."))
				continue;
			for (uint32_t k = 0; k < nl; k++) {
				g_autofree char *wh =
					g_strconcat(".wh.", name, NULL);

				top = find_in(&L[k], name);
				if (top) {
					tl = k;
					break;
				}
				if (find_in(&L[k], wh))
					break; /* hidden below layer k */
			}
			d = g_hash_table_lookup(got, name);
			if (top == NULL || top->whiteout) {
				FUZZ_CHECK(d == NULL,
					   "'%s' shown but whited out", name);
				continue;
			}
			FUZZ_CHECK(d != NULL, "'%s' (layer %u) lost", name, tl);
			FUZZ_CHECK(d->type == top->type,
				   "'%s': type %u, want %u (layer %u)", name,
				   d->type, top->type, tl);
			FUZZ_CHECK(d->ino == want_ino(fs, tl, top->ino),
				   "'%s': ino %#llx, want layer %u's", name,
				   (unsigned long long)d->ino, tl);
			if (tl == l && top == &g_array_index(L[l].ents,
						struct strata_raw_dirent, i))
				expected++;
		}
	}
	/* and nothing else: every shown name was counted once above */
	FUZZ_CHECK(snap->ents->len == expected, "%u listed, %u expected",
		   snap->ents->len, expected);
	strata_dirsnap_free(snap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct layer L[MAX_LAYERS] = { 0 };
	struct strata_layer reals[MAX_LAYERS] = { 0 };
	struct strata_fs one = { .n_devs = 1 };
	struct strata_fs three = { .n_devs = 3, .layers = reals };
	g_autofree char *text = fuzz_cstr(data, size);
	GStringChunk *names = g_string_chunk_new(256);
	uint32_t nl = parse(text, L, names);
	uint32_t used = 0;

	for (uint32_t i = 0; i < MAX_LAYERS; i++)
		reals[i].fsidx = i % 3;
	for (uint32_t i = 0; i < nl; i++)
		index_layer(&L[i]);
	/* as layers.c computes it for three devices */
	three.ino_shift = 64 - g_bit_storage(three.n_devs - 1);
	/* the directory stack ends at the first opaque layer */
	while (used < nl && !L[used++].opaque)
		;
	check_merge(&one, L, used);
	check_merge(&three, L, used);

	for (uint32_t i = 0; i < nl; i++) {
		g_hash_table_unref(L[i].first);
		g_array_unref(L[i].ents);
	}
	g_string_chunk_free(names);
	return 0;
}
