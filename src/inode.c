// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The inode table.
 *
 * Identity: an inode of the merged view is keyed by the real identity of
 * its topmost entry (attr.c: the real inode number, tagged with the
 * filesystem it lives on when the layers span several).  Two names that
 * reach the same real file (hardlinks) therefore share one inode, and a
 * name looked up twice gets the same inode back.  A copy-up moves the
 * inode to its new key; the st_ino it shows (ino) stays.  Two lower
 * hardlinks stop sharing an inode once one of them is copied up, as on
 * the kernel overlayfs without index=on.  The FUSE node id is the
 * inode's address (1 for the root), so the request path needs no table
 * lookup at all; the table is only consulted when a name is resolved.
 *
 * Lifetime: refs counts the kernel's lookups (decremented by forget) plus
 * internal references: each child holds its parent, each open handle
 * holds its inode.  The count drops to zero only under table_lock, and a
 * lookup takes its reference under the same lock, so a lookup can never
 * pick up an inode that is being freed.
 *
 * Directories hold a stack of O_PATH descriptors, one per layer in which
 * they exist.  Non-directories hold no descriptor: they are reached by
 * name through their parent's stack, so the number of open descriptors
 * grows with the directories the kernel caches, not with the files.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "stratafs/stratafs.h"

struct strata_stack *strata_stack_new(uint32_t n)
{
	struct strata_stack *s =
		g_malloc0(sizeof(*s) + n * sizeof(struct strata_stack_entry));

	s->refs = 1;
	s->n = n;
	for (uint32_t i = 0; i < n; i++)
		s->e[i].fd = -1;
	return s;
}

struct strata_stack *strata_stack_ref(struct strata_stack *s)
{
	g_atomic_int_inc(&s->refs);
	return s;
}

void strata_stack_unref(struct strata_stack *s)
{
	if (s == NULL || !g_atomic_int_dec_and_test(&s->refs))
		return;
	for (uint32_t i = 0; i < s->n; i++)
		if (s->e[i].fd >= 0)
			close(s->e[i].fd);
	g_free(s);
}

const struct strata_stack_entry *
strata_stack_find(const struct strata_stack *s, uint32_t layer)
{
	/* entries are sorted by layer, topmost (smallest) first */
	uint32_t lo = 0, hi = s->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (s->e[mid].layer == layer)
			return &s->e[mid];
		if (s->e[mid].layer < layer)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static guint ikey_hash(gconstpointer p)
{
	const struct strata_ikey *k = p;
	uint64_t v = k->key ^ (uint64_t)(uintptr_t)k->parent;

	if (k->name)
		v ^= g_str_hash(k->name);
	return (guint)(v ^ (v >> 32));
}

static gboolean ikey_equal(gconstpointer a, gconstpointer b)
{
	const struct strata_ikey *x = a, *y = b;

	return x->key == y->key && x->parent == y->parent &&
	       g_strcmp0(x->name, y->name) == 0;
}

void strata_table_init(struct strata_fs *fs)
{
	g_mutex_init(&fs->table_lock);
	/* the key points into the inode itself: no separate allocation */
	fs->inodes = g_hash_table_new(ikey_hash, ikey_equal);
}

static void aliases_free(struct strata_fs *fs, GPtrArray *a)
{
	if (a == NULL)
		return;
	for (guint i = 0; i < a->len; i++) {
		struct strata_alias *al = a->pdata[i];

		if (fs)
			strata_inode_unref(fs, al->parent, 1);
		g_free(al->name);
		g_free(al);
	}
	g_ptr_array_free(a, TRUE);
}

G_STATIC_ASSERT(sizeof(struct strata_inode) % 8 == 0);

struct strata_inode *strata_inode_new(mode_t type)
{
	bool dir = S_ISDIR(type);
	struct strata_inode *in = g_malloc0(
		sizeof(*in) + (dir ? sizeof(struct strata_dirpart) : 0));

	in->type = type & S_IFMT;
	in->refs = 1;
	in->orphan_fd = -1;
	g_mutex_init(&in->lock);
	g_mutex_init(&in->cu_lock);
	if (dir)
		g_rw_lock_init(&strata_dirpart(in)->ns_lock);
	return in;
}

static void inode_free(struct strata_inode *in)
{
	g_free(in->ik.name);
	strata_stack_unref(in->stack);
	if (S_ISDIR(in->type)) {
		struct strata_dirpart *d = strata_dirpart(in);

		strata_dcache_free(d->dcache);
		strata_lowerlist_free(d->lowerlist);
		g_rw_lock_clear(&d->ns_lock);
	}
	if (in->orphan_fd > 0)
		close(in->orphan_fd);
	g_free(in->name);
	g_mutex_clear(&in->lock);
	g_mutex_clear(&in->cu_lock);
	g_free(in);
}

void strata_table_destroy(struct strata_fs *fs)
{
	GHashTableIter it;
	gpointer v;

	if (fs->inodes == NULL)
		return;
	/* at teardown nobody else runs: free everything, parents included */
	g_hash_table_iter_init(&it, fs->inodes);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		aliases_free(NULL, ((struct strata_inode *)v)->aliases);
		inode_free(v);
	}
	g_clear_pointer(&fs->inodes, g_hash_table_destroy);
	g_mutex_clear(&fs->table_lock);
}

struct strata_inode *strata_inode_get(struct strata_fs *fs, uint64_t key,
				      uint64_t ino, mode_t type,
				      struct strata_inode *parent,
				      const char *name, uint32_t layer,
				      struct strata_stack *stack)
{
	return strata_inode_get_ex(fs, key, false, ino, type, parent, name,
				   layer, stack);
}

struct strata_inode *strata_inode_get_ex(struct strata_fs *fs, uint64_t key,
					 bool by_name, uint64_t ino,
					 mode_t type,
					 struct strata_inode *parent,
					 const char *name, uint32_t layer,
					 struct strata_stack *stack)
{
	struct strata_ikey probe = {
		.key = key,
		.parent = by_name ? parent : NULL,
		.name = by_name ? (char *)name : NULL,
	};
	struct strata_inode *in, *fresh;

	g_mutex_lock(&fs->table_lock);
	in = g_hash_table_lookup(fs->inodes, &probe);
	if (in && (in->type & S_IFMT) == (type & S_IFMT)) {
		/* under table_lock: see the file comment */
		__atomic_fetch_add(&in->refs, 1, __ATOMIC_SEQ_CST);
		g_mutex_unlock(&fs->table_lock);
		strata_stack_unref(stack);
		return in;
	}
	g_mutex_unlock(&fs->table_lock);

	/* build outside the lock, then insert unless someone beat us */
	fresh = strata_inode_new(type);
	fresh->ik.key = key;
	/* the key's parent is the inode's own parent: its reference */
	fresh->ik.parent = probe.parent;
	fresh->ik.name = g_strdup(probe.name);
	fresh->ino = ino;
	fresh->parent = parent;
	fresh->name = g_strdup(name);
	fresh->layer = layer;
	fresh->stack = stack;

	g_mutex_lock(&fs->table_lock);
	in = g_hash_table_lookup(fs->inodes, &probe);
	if (in && (in->type & S_IFMT) == fresh->type) {
		__atomic_fetch_add(&in->refs, 1, __ATOMIC_SEQ_CST);
		g_mutex_unlock(&fs->table_lock);
		inode_free(fresh);
		return in;
	}
	/* A stale entry of another type under the same number cannot
	 * happen with immutable layers; replace it to stay consistent. */
	g_hash_table_replace(fs->inodes, &fresh->ik, fresh);
	if (parent)
		strata_inode_ref(parent, 1);
	g_mutex_unlock(&fs->table_lock);
	return fresh;
}

void strata_inode_ref(struct strata_inode *in, uint64_t n)
{
	__atomic_fetch_add(&in->refs, n, __ATOMIC_SEQ_CST);
}

void strata_inode_unref(struct strata_fs *fs, struct strata_inode *in,
			uint64_t n)
{
	while (in) {
		struct strata_inode *parent;
		uint64_t old = __atomic_load_n(&in->refs, __ATOMIC_SEQ_CST);

		/* fast path: not the last references, no lock needed */
		if (old > n) {
			if (__atomic_compare_exchange_n(
				    &in->refs, &old, old - n, false,
				    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
				return;
			continue; /* lost a race, retry */
		}

		g_mutex_lock(&fs->table_lock);
		if (__atomic_sub_fetch(&in->refs, n, __ATOMIC_SEQ_CST) > 0 ||
		    in == fs->root) {
			g_mutex_unlock(&fs->table_lock);
			return;
		}
		if (g_hash_table_lookup(fs->inodes, &in->ik) == in)
			g_hash_table_remove(fs->inodes, &in->ik);
		g_mutex_unlock(&fs->table_lock);

		parent = in->parent;
		aliases_free(fs, g_steal_pointer(&in->aliases));
		inode_free(in);
		/* drop the reference the child held on its parent */
		in = parent;
		n = 1;
	}
}

struct strata_stack *strata_inode_stack(struct strata_inode *in)
{
	struct strata_stack *s;

	g_mutex_lock(&in->lock);
	s = in->stack ? strata_stack_ref(in->stack) : NULL;
	g_mutex_unlock(&in->lock);
	return s;
}

int strata_inode_where(struct strata_fs *fs, struct strata_inode *in,
		       struct strata_stack **pstack, int *dirfd, char **name,
		       uint32_t *layer)
{
	const struct strata_stack_entry *e;
	struct strata_stack *s = NULL;
	struct strata_inode *parent;

	g_mutex_lock(&in->lock);
	if (in->parent == NULL) {
		g_mutex_unlock(&in->lock);
		return -EINVAL; /* the root has no parent directory */
	}
	/* lock order forbids taking the parent's lock under the child's:
	 * pin the parent, unlock, then read its stack */
	*name = g_strdup(in->name);
	*layer = in->layer;
	parent = in->parent;
	strata_inode_ref(parent, 1);
	g_mutex_unlock(&in->lock);

	s = strata_inode_stack(parent);
	strata_inode_unref(fs, parent, 1);
	e = s ? strata_stack_find(s, *layer) : NULL;
	if (e == NULL) {
		strata_stack_unref(s);
		g_clear_pointer(name, g_free);
		return -ESTALE;
	}
	*dirfd = e->fd;
	*pstack = s;
	return 0;
}

bool strata_inode_known(struct strata_fs *fs, uint64_t key, mode_t type)
{
	struct strata_ikey probe = { .key = key };
	struct strata_inode *in;
	bool known;

	g_mutex_lock(&fs->table_lock);
	in = g_hash_table_lookup(fs->inodes, &probe);
	/* the shown number is the key unless the object is a copy */
	known = in && in->type == (type & S_IFMT) && in->ino == key;
	g_mutex_unlock(&fs->table_lock);
	return known;
}

size_t strata_table_size(struct strata_fs *fs)
{
	size_t n;

	g_mutex_lock(&fs->table_lock);
	n = g_hash_table_size(fs->inodes);
	g_mutex_unlock(&fs->table_lock);
	return n;
}

void strata_inode_rekey(struct strata_fs *fs, struct strata_inode *in,
			uint64_t key)
{
	g_mutex_lock(&fs->table_lock);
	if (g_hash_table_lookup(fs->inodes, &in->ik) == in)
		g_hash_table_remove(fs->inodes, &in->ik);
	/* an upper object is known by its real identity alone */
	in->ik.key = key;
	in->ik.parent = NULL;
	g_clear_pointer(&in->ik.name, g_free);
	/* an inode already under the new key (a stale alias) loses it: the
	 * copy-up just made this one the object at that identity */
	g_hash_table_replace(fs->inodes, &in->ik, in);
	g_mutex_unlock(&fs->table_lock);
}

void strata_inode_forget_key(struct strata_fs *fs, struct strata_inode *in)
{
	g_mutex_lock(&fs->table_lock);
	if (g_hash_table_lookup(fs->inodes, &in->ik) == in)
		g_hash_table_remove(fs->inodes, &in->ik);
	g_mutex_unlock(&fs->table_lock);
}

void strata_inode_set_location(struct strata_fs *fs, struct strata_inode *in,
			       struct strata_inode *parent, const char *name,
			       uint32_t layer)
{
	struct strata_inode *old;

	strata_inode_ref(parent, 1);
	g_mutex_lock(&in->lock);
	old = in->parent;
	in->parent = parent;
	g_free(in->name);
	in->name = g_strdup(name);
	in->layer = layer;
	g_mutex_unlock(&in->lock);
	if (old)
		strata_inode_unref(fs, old, 1);
}

void strata_inode_add_alias(struct strata_inode *in,
			    struct strata_inode *parent, const char *name)
{
	struct strata_alias *al;

	g_mutex_lock(&in->lock);
	if (in->aliases == NULL) {
		/* the name the inode is reached by is one of them */
		in->aliases = g_ptr_array_new();
		if (in->parent && !(in->parent == parent &&
				    strcmp(in->name, name) == 0)) {
			al = g_new(struct strata_alias, 1);
			al->parent = in->parent;
			al->name = g_strdup(in->name);
			strata_inode_ref(in->parent, 1);
			g_ptr_array_add(in->aliases, al);
		}
	}
	for (guint i = 0; i < in->aliases->len; i++) {
		al = in->aliases->pdata[i];
		if (al->parent == parent && strcmp(al->name, name) == 0) {
			g_mutex_unlock(&in->lock);
			return;
		}
	}
	/* a bound: beyond it the entry timeout ends stale bindings */
	if (in->aliases->len < 64) {
		al = g_new(struct strata_alias, 1);
		al->parent = parent;
		al->name = g_strdup(name);
		strata_inode_ref(parent, 1);
		g_ptr_array_add(in->aliases, al);
	}
	g_mutex_unlock(&in->lock);
}


int strata_inode_open_path(struct strata_fs *fs, struct strata_inode *in)
{
	g_autofree char *name = NULL;
	struct strata_stack *s;
	uint32_t layer;
	int dirfd, r;

	r = strata_inode_where(fs, in, &s, &dirfd, &name, &layer);
	if (r < 0)
		return r;
	r = strata_do_openat(dirfd, name, O_PATH | O_NOFOLLOW, 0);
	strata_stack_unref(s);
	return r;
}

void strata_inode_orphan(struct strata_fs *fs, struct strata_inode *in,
			 int fd)
{
	g_mutex_lock(&in->lock);
	in->unlinked = true;
	if (in->orphan_fd < 0 && fd >= 0) {
		in->orphan_fd = fd;
		fd = -1;
	}
	g_mutex_unlock(&in->lock);
	if (fd >= 0)
		close(fd);
	strata_inode_forget_key(fs, in);
}

static struct strata_alias *find_alias(struct strata_inode *in,
				       struct strata_inode *parent,
				       const char *name, guint *idx)
{
	for (guint i = 0; in->aliases && i < in->aliases->len; i++) {
		struct strata_alias *al = in->aliases->pdata[i];

		if (al->parent == parent && strcmp(al->name, name) == 0) {
			*idx = i;
			return al;
		}
	}
	return NULL;
}

void strata_inode_name_moved(struct strata_fs *fs, struct strata_inode *in,
			     struct strata_inode *olddir, const char *oldname,
			     struct strata_inode *newdir, const char *newname)
{
	struct strata_alias *al;
	struct strata_inode *drop = NULL;
	guint i;

	strata_inode_set_location(fs, in, newdir, newname, 0);
	g_mutex_lock(&in->lock);
	al = find_alias(in, olddir, oldname, &i);
	if (al) {
		drop = al->parent;
		al->parent = newdir;
		strata_inode_ref(newdir, 1);
		g_free(al->name);
		al->name = g_strdup(newname);
	}
	g_mutex_unlock(&in->lock);
	if (drop)
		strata_inode_unref(fs, drop, 1);
}

void strata_inode_name_gone(struct strata_fs *fs, struct strata_inode *in,
			    struct strata_inode *dir, const char *name,
			    int anchor)
{
	struct strata_alias *al, *next = NULL;
	bool was_location;
	guint i;

	g_mutex_lock(&in->lock);
	al = find_alias(in, dir, name, &i);
	if (al)
		g_ptr_array_remove_index_fast(in->aliases, i);
	was_location = in->parent == dir && strcmp(in->name, name) == 0;
	if (was_location && in->aliases && in->aliases->len > 0)
		next = in->aliases->pdata[0];
	if (was_location && next == NULL && in->orphan_fd < 0) {
		/* no other name known: the object itself, kept open */
		in->orphan_fd = anchor;
		anchor = -1;
	}
	g_mutex_unlock(&in->lock);
	if (next)
		strata_inode_set_location(fs, in, next->parent, next->name,
					  in->layer);
	if (al) {
		strata_inode_unref(fs, al->parent, 1);
		g_free(al->name);
		g_free(al);
	}
	if (anchor >= 0)
		close(anchor);
}

int strata_inode_real(struct strata_fs *fs, struct strata_inode *in,
		      struct strata_stack **s, int *dirfd, char **name)
{
	uint32_t layer;

	if (S_ISDIR(in->type)) {
		*s = strata_inode_stack(in);
		*dirfd = (*s)->e[0].fd;
		*name = NULL;
		return 0;
	}
	return strata_inode_where(fs, in, s, dirfd, name, &layer);
}
