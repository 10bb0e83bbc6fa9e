// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The FUSE glue: the only file that sees fuse_req_t.  Every handler
 * decodes its request, calls one core function and replies exactly once
 * on every path.
 *
 * Node ids are inode addresses (FUSE_ROOT_ID for the root); a node id the
 * kernel holds always has at least the reference its lookup took, so the
 * handlers can use it without a table lookup.
 */
#include <fuse_lowlevel.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "stratafs/stratafs.h"

static struct strata_fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct strata_inode *node(struct strata_fs *fs, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return fs->root;
	return (struct strata_inode *)(uintptr_t)ino;
}

static fuse_ino_t nodeid(struct strata_fs *fs, struct strata_inode *in)
{
	return in == fs->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
}

static struct strata_file *fh(struct fuse_file_info *fi)
{
	return (struct strata_file *)(uintptr_t)fi->fh;
}

/*
 * Kernel notifications: after a copy-up the attributes the kernel cached
 * for an inode may be stale (a directory now merged, a split hardlink).
 * Invalidating attributes only (offset < 0) takes no lock in the kernel,
 * so it is safe from inside any request.
 */
static struct fuse_session *notify_se;

static void notify_inode(void *ctx, struct strata_inode *in)
{
	if (notify_se)
		fuse_lowlevel_notify_inval_inode(notify_se, nodeid(ctx, in), -1,
						 0);
}

void strata_ops_notify_start(struct strata_fs *fs, struct fuse_session *se)
{
	notify_se = se;
	fs->notify.inval_inode = notify_inode;
	fs->notify.ctx = fs;
}

void strata_ops_notify_stop(struct strata_fs *fs)
{
	notify_se = NULL;
	memset(&fs->notify, 0, sizeof(fs->notify));
}

/*
 * Open handles, so that those still open when the mount goes away are
 * freed: the kernel sends RELEASE asynchronously and drops it if the
 * unmount wins the race (found by LeakSanitizer).  Handle -> its kind.
 */
enum { HANDLE_FILE = 1, HANDLE_DIR };

struct dirhandle;
static void dirhandle_free(struct dirhandle *h);

static void handle_add(struct strata_fs *fs, void *h, int kind)
{
	g_mutex_lock(&fs->handles_lock);
	if (!fs->handles)
		fs->handles = g_hash_table_new(g_direct_hash, g_direct_equal);
	g_hash_table_insert(fs->handles, h, GINT_TO_POINTER(kind));
	g_mutex_unlock(&fs->handles_lock);
}

static void handle_del(struct strata_fs *fs, void *h)
{
	g_mutex_lock(&fs->handles_lock);
	if (fs->handles)
		g_hash_table_remove(fs->handles, h);
	g_mutex_unlock(&fs->handles_lock);
}

/* The session ends: free what the kernel never released. */
static void op_destroy(void *userdata)
{
	struct strata_fs *fs = userdata;
	GHashTable *t;
	GHashTableIter it;
	gpointer h, kind;

	g_mutex_lock(&fs->handles_lock);
	t = g_steal_pointer(&fs->handles);
	g_mutex_unlock(&fs->handles_lock);
	if (!t)
		return;
	g_hash_table_iter_init(&it, t);
	while (g_hash_table_iter_next(&it, &h, &kind)) {
		if (GPOINTER_TO_INT(kind) == HANDLE_FILE)
			strata_file_release(fs, h);
		else
			dirhandle_free(h);
	}
	g_hash_table_destroy(t);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct strata_fs *fs = userdata;

	/* hand file data to the kernel by splicing from the backing fd */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	/* the kernel clears setuid/setgid on write, truncate and chown
	 * (SETATTR); we add the one case it leaves (sgid_killed_mode) */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	/* writeback=1: the kernel caches writes (fuse-overlayfs's option) */
	if (fs->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* ACLs enforced by the kernel, which needs default_permissions:
	 * on when running as root (main.c adds it), off with noacl */
	if (fs->acl && geteuid() == 0 && (conn->capable & FUSE_CAP_POSIX_ACL))
		conn->want |= FUSE_CAP_POSIX_ACL;
	strata_dbg("init: %u layers, %u filesystems", fs->n_layers,
		   fs->n_devs);
}

static void fill_entry(struct strata_fs *fs, struct fuse_entry_param *e,
		       struct strata_inode *in, const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->ino = in ? nodeid(fs, in) : 0;
	if (st)
		e->attr = *st;
	e->attr_timeout = fs->timeout;
	e->entry_timeout = fs->timeout;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct strata_fs *fs = req_fs(req);
	struct fuse_entry_param e;
	struct strata_inode *in;
	struct stat st;
	int r = strata_lookup(fs, node(fs, parent), name, &in, &st);

	if (r == -ENOENT) {
		/* a negative entry the kernel may cache: ino 0 */
		fill_entry(fs, &e, NULL, NULL);
		fuse_reply_entry(req, &e);
		return;
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fill_entry(fs, &e, in, &st);
	if (fuse_reply_entry(req, &e) != 0)
		strata_inode_unref(fs, in, 1); /* the kernel did not get it */
}

/*
 * After the kernel forgets many inodes (memory pressure, drop_caches),
 * give the freed memory back: malloc keeps freed small blocks for reuse,
 * so without a trim the daemon's RSS would stay at its peak.  Checked per
 * forget, trimmed once per 1,024 inodes gone since the last look.
 */
#define TRIM_EVERY 1024

static void maybe_trim(struct strata_fs *fs)
{
	size_t cur = strata_table_size(fs);
	size_t mark = __atomic_load_n(&fs->trim_mark, __ATOMIC_RELAXED);

	if (cur > mark) {
		__atomic_store_n(&fs->trim_mark, cur, __ATOMIC_RELAXED);
	} else if (mark - cur >= TRIM_EVERY &&
		   __atomic_compare_exchange_n(&fs->trim_mark, &mark, cur,
					       false, __ATOMIC_SEQ_CST,
					       __ATOMIC_SEQ_CST)) {
		malloc_trim(0);
	}
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct strata_fs *fs = req_fs(req);

	strata_inode_unref(fs, node(fs, ino), nlookup);
	maybe_trim(fs);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	struct strata_fs *fs = req_fs(req);

	for (size_t i = 0; i < count; i++)
		strata_inode_unref(fs, node(fs, forgets[i].ino),
				   forgets[i].nlookup);
	maybe_trim(fs);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct strata_fs *fs = req_fs(req);
	struct strata_inode *in = node(fs, ino);
	struct stat st;
	int r;

	if (fi && !S_ISDIR(in->type)) {
		/* fstat of an open file: it may have no name any more */
		r = fstat(strata_file_read_fd(fs, fh(fi)), &st) < 0 ? -errno
								     : 0;
		if (r == 0) {
			strata_fix_stat(fs, &st, in->ino, 1);
			g_mutex_lock(&in->lock);
			if (in->unlinked)
				st.st_nlink = 0;
			g_mutex_unlock(&in->lock);
		}
	} else {
		r = strata_getattr(fs, in, &st);
	}

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, fs->timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct strata_fs *fs = req_fs(req);
	char buf[PATH_MAX + 1];
	int r = strata_readlink(fs, node(fs, ino), buf, sizeof(buf));

	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (r >= (int)sizeof(buf)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	buf[r] = '\0';
	fuse_reply_readlink(req, buf);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct strata_fs *fs = req_fs(req);
	struct strata_file *f = NULL;
	int r = strata_file_open(fs, node(fs, ino), fi->flags, &f);

	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)f;
	/* The union changes only through this mount (lower layers are
	 * immutable while mounted, as for the kernel overlayfs), and the
	 * kernel drops cached pages itself when it sees size or mtime
	 * change (FUSE_CAP_AUTO_INVAL_DATA): keep the page cache across
	 * opens. */
	fi->keep_cache = 1;
	/* close(2) needs nothing from us: locks are the kernel's (no
	 * getlk/setlk) and writes reached the real file at WRITE */
	fi->noflush = !fs->writeback;
	handle_add(fs, f, HANDLE_FILE);
	if (fuse_reply_open(req, fi) != 0) {
		handle_del(fs, f);
		strata_file_release(fs, f);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fuse_bufvec buf;
	struct strata_readbuf rb;
	int r;

	(void)ino;
	r = strata_file_read(req_fs(req), fh(fi), size, off, &rb);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (rb.mem || rb.len == 0) {
		fuse_reply_buf(req, rb.mem, rb.len);
	} else {
		/* libfuse splices the pipe on to the kernel */
		buf = (struct fuse_bufvec)FUSE_BUFVEC_INIT(rb.len);
		buf.buf[0].flags = FUSE_BUF_IS_FD;
		buf.buf[0].fd = rb.fd;
		fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
	}
	strata_file_read_done(&rb);
}

/*
 * Setgid without group execute.  A write or truncation by a caller that
 * is neither root nor in the file's group clears it on a local filesystem
 * (Linux 6.x, setattr_should_drop_sgid), and the kernel overlayfs passes
 * that on.  The FUSE client, unless the filesystem takes handle_killpriv
 * (libfuse 3.14 cannot do its v2, and v1 would leave us every case),
 * clears setuid and setgid-with-group-execute itself through SETATTR, but
 * only those: this one is ours.  Root is taken as holding CAP_FSETID.
 */
static bool req_in_group(fuse_req_t req, const struct fuse_ctx *c, gid_t gid)
{
	gid_t small[32], *g = small;
	bool in = false;
	int n;

	if (c->gid == gid)
		return true;
	n = fuse_req_getgroups(req, G_N_ELEMENTS(small), small);
	if (n > (int)G_N_ELEMENTS(small)) {
		g = g_new(gid_t, n);
		n = fuse_req_getgroups(req, n, g);
	}
	for (int i = 0; i < n && !in; i++)
		in = g[i] == gid;
	if (g != small)
		g_free(g);
	return in;
}

/* The mode @in must get before the caller of @req changes its data, or
 * 0 if it keeps its mode. */
static mode_t sgid_killed_mode(fuse_req_t req, struct strata_fs *fs,
			       struct strata_inode *in, int fd)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct stat st;

	if (c->uid == 0 || !S_ISREG(in->type))
		return 0;
	/* the common case in one fstat: no setgid on the real file (with
	 * xattr_permissions the mode shown is the xattr's) */
	if (!fs->override_xattr && fd >= 0 &&
	    (fstat(fd, &st) < 0 || !(st.st_mode & S_ISGID)))
		return 0;
	if (strata_getattr(fs, in, &st) < 0 ||
	    (st.st_mode & (S_ISGID | S_IXGRP)) != S_ISGID ||
	    req_in_group(req, c, st.st_gid))
		return 0;
	return (st.st_mode & 07777 & ~S_ISGID) | S_IFREG;
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	struct strata_fs *fs = req_fs(req);
	struct stat st;
	mode_t mode;
	ssize_t r;

	mode = sgid_killed_mode(req, fs, fh(fi)->in, fh(fi)->fd);
	if (mode) {
		st.st_mode = mode;
		if (strata_setattr(fs, fh(fi)->in, &st, STRATA_SET_MODE,
				   fh(fi), &st) == 0 &&
		    fs->notify.inval_inode)
			fs->notify.inval_inode(fs->notify.ctx, fh(fi)->in);
	}
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = fh(fi)->fd;
	out.buf[0].pos = off;
	r = fuse_buf_copy(&out, in, 0);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_write(req, (size_t)r);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	handle_del(req_fs(req), fh(fi));
	strata_file_release(req_fs(req), fh(fi));
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	fuse_reply_err(req, -strata_fsync(req_fs(req), fh(fi), datasync));
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	struct strata_fs *fs = req_fs(req);

	fuse_reply_err(req, -strata_fsyncdir(fs, node(fs, ino), datasync));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
			 off_t off, off_t len, struct fuse_file_info *fi)
{
	int r = fallocate(fh(fi)->fd, mode, off, len);

	fuse_reply_err(req, r < 0 ? errno : 0);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	off_t r = lseek(strata_file_read_fd(req_fs(req), fh(fi)), off,
			whence);

	if (r < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, r);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in,
			       off_t off_in, struct fuse_file_info *fi_in,
			       fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len,
			       int flags)
{
	loff_t oi = off_in, oo = off_out;
	ssize_t r = copy_file_range(strata_file_read_fd(req_fs(req),
							fh(fi_in)),
				    &oi, fh(fi_out)->fd, &oo, len, flags);

	if (r < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_write(req, (size_t)r);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

/* An open directory: its listing as of the first read, of the last read
 * from offset 0 (a rewinddir, or the kernel refilling its cache after a
 * change made through the mount, must see the directory as it is now),
 * or of the first read after a change of its names.  Taken at the first
 * read, not at opendir: when the kernel's readdir cache answers, no
 * listing is read at all.  Offsets are hashes of names (readdir.c), so a
 * new snapshot goes on where the last one stopped. */
struct dirhandle {
	struct strata_dirsnap *snap;
	bool read; /* a readdir was served from snap */
};

static void dirhandle_free(struct dirhandle *h)
{
	strata_dirsnap_free(h->snap);
	g_free(h);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct strata_fs *fs = req_fs(req);
	struct dirhandle *h = g_new0(struct dirhandle, 1);

	fi->fh = (uint64_t)(uintptr_t)h;
	/* The kernel may cache listings, also of a writable union: it fills
	 * one cache from the reads of several opens, which is safe because
	 * an offset means the same name in every snapshot (readdir.c), and
	 * it drops the cache at the next read from offset 0 after any
	 * change made through the mount (the directory's version). */
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	handle_add(fs, h, HANDLE_DIR);
	if (fuse_reply_open(req, fi) != 0) {
		handle_del(fs, h);
		dirhandle_free(h);
	}
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, struct fuse_file_info *fi, bool plus)
{
	struct strata_fs *fs = req_fs(req);
	struct dirhandle *h = (void *)(uintptr_t)fi->fh;
	struct strata_inode *dir = node(fs, ino);
	struct strata_dirsnap *snap;
	g_autofree char *buf = NULL;
	size_t used = 0;

	if (!h->snap || (off == 0 && h->read) ||
	    h->snap->version != strata_dir_version(dir)) {
		struct strata_dirsnap *fresh = NULL;
		int r = strata_readdir_snapshot(fs, dir, &fresh);

		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
		strata_dirsnap_free(h->snap);
		h->snap = fresh;
	}
	h->read = true;
	snap = h->snap;
	buf = g_malloc(size);

	for (guint i = strata_dirsnap_seek(snap, (uint64_t)off);
	     i < snap->ents->len; i++) {
		struct strata_dirent *d =
			&g_array_index(snap->ents, struct strata_dirent, i);
		size_t need;

		if (!plus) {
			struct stat st = { .st_ino = d->ino,
					   .st_mode = DTTOIF(d->type) };

			need = fuse_add_direntry(req, buf + used, size - used,
						 d->name, &st, (off_t)d->off);
			if (need > size - used)
				break;
			used += need;
			continue;
		}

		struct fuse_entry_param e;
		struct strata_inode *in = NULL;
		struct stat st;

		if (strcmp(d->name, ".") == 0 || strcmp(d->name, "..") == 0 ||
		    strata_inode_known(fs, d->ino, DTTOIF(d->type))) {
			/* no lookup for these: node id 0 tells the kernel
			 * "no attributes for this one", so it creates no
			 * entry and keeps what it has.  An object we already
			 * have an inode for is one the kernel holds: a walk
			 * over a warm tree costs no lookups (and if the
			 * kernel lacks this name of it, it looks it up) */
			fill_entry(fs, &e, NULL, NULL);
			e.attr.st_ino = d->ino;
			e.attr.st_mode = DTTOIF(d->type);
		} else {
			int r = strata_lookup(fs, dir, d->name, &in, &st);

			if (r < 0)
				continue; /* vanished: leave it out */
			fill_entry(fs, &e, in, &st);
		}
		need = fuse_add_direntry_plus(req, buf + used, size - used,
					      d->name, &e, (off_t)d->off);
		if (need > size - used) {
			if (in)
				strata_inode_unref(fs, in, 1);
			break;
		}
		used += need;
	}
	fuse_reply_buf(req, buf, used);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	handle_del(req_fs(req), (void *)(uintptr_t)fi->fh);
	dirhandle_free((void *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct strata_fs *fs = req_fs(req);
	struct statvfs sv;
	int r = strata_statfs(fs, &sv);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_statfs(req, &sv);
}

static void reply_xattr_result(fuse_req_t req, ssize_t r, const char *buf,
			       size_t size)
{
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else if (size == 0)
		fuse_reply_xattr(req, r);
	else
		fuse_reply_buf(req, buf, r);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct strata_fs *fs = req_fs(req);
	g_autofree char *buf = size ? g_malloc(size) : NULL;
	ssize_t r = strata_getxattr(fs, node(fs, ino), name, buf, size);

	reply_xattr_result(req, r, buf, size);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct strata_fs *fs = req_fs(req);
	g_autofree char *buf = size ? g_malloc(size) : NULL;
	ssize_t r = strata_listxattr(fs, node(fs, ino), buf, size);

	reply_xattr_result(req, r, buf, size);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct strata_fs *fs = req_fs(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	gid_t groups[64];
	int n = fuse_req_getgroups(req, G_N_ELEMENTS(groups), groups);
	int r;

	if (n < 0)
		n = 0;
	if (n > (int)G_N_ELEMENTS(groups))
		n = G_N_ELEMENTS(groups);
	r = strata_access(fs, node(fs, ino), mask, ctx->uid, ctx->gid, groups,
			  n);
	fuse_reply_err(req, -r);
}

static void reply_new_entry(fuse_req_t req, struct strata_fs *fs, int r,
			    struct strata_inode *in, const struct stat *st)
{
	struct fuse_entry_param e;

	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fill_entry(fs, &e, in, st);
	if (fuse_reply_entry(req, &e) != 0)
		strata_inode_unref(fs, in, 1);
}

static void newobj_init(fuse_req_t req, struct strata_newobj *o, mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	memset(o, 0, sizeof(*o));
	o->mode = mode;
	o->uid = ctx->uid;
	o->gid = ctx->gid;
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	struct strata_fs *fs = req_fs(req);
	struct strata_newobj o;
	struct strata_inode *in = NULL;
	struct stat st;
	int r;

	newobj_init(req, &o, mode);
	o.rdev = rdev;
	r = strata_create(fs, node(fs, parent), name, &o, &in, &st, NULL);
	reply_new_entry(req, fs, r, in, &st);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct strata_fs *fs = req_fs(req);
	struct strata_newobj o;
	struct strata_inode *in = NULL;
	struct stat st;
	int r;

	newobj_init(req, &o, S_IFDIR | (mode & 07777));
	r = strata_create(fs, node(fs, parent), name, &o, &in, &st, NULL);
	reply_new_entry(req, fs, r, in, &st);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	struct strata_fs *fs = req_fs(req);
	struct strata_newobj o;
	struct strata_inode *in = NULL;
	struct stat st;
	int r;

	newobj_init(req, &o, S_IFLNK | 0777);
	o.target = link;
	r = strata_create(fs, node(fs, parent), name, &o, &in, &st, NULL);
	reply_new_entry(req, fs, r, in, &st);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct strata_fs *fs = req_fs(req);
	struct strata_newobj o;
	struct strata_inode *in = NULL;
	struct fuse_entry_param e;
	struct strata_file *f;
	struct stat st;
	int fd = -1, r;

	newobj_init(req, &o, S_IFREG | (mode & 07777));
	o.flags = fi->flags;
	r = strata_create(fs, node(fs, parent), name, &o, &in, &st, &fd);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	f = strata_file_wrap(in, fd);
	fi->fh = (uint64_t)(uintptr_t)f;
	fi->noflush = !fs->writeback; /* as in op_open */
	fill_entry(fs, &e, in, &st);
	handle_add(fs, f, HANDLE_FILE);
	if (fuse_reply_create(req, &e, fi) != 0) {
		handle_del(fs, f);
		strata_file_release(fs, f);
		strata_inode_unref(fs, in, 1);
	}
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	struct strata_fs *fs = req_fs(req);
	struct strata_inode *in = NULL;
	struct stat st;
	int r = strata_link(fs, node(fs, ino), node(fs, newparent), newname,
			    &in, &st);

	reply_new_entry(req, fs, r, in, &st);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct strata_fs *fs = req_fs(req);

	fuse_reply_err(req, -strata_unlink(fs, node(fs, parent), name));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct strata_fs *fs = req_fs(req);

	fuse_reply_err(req, -strata_rmdir(fs, node(fs, parent), name));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	struct strata_fs *fs = req_fs(req);
	int r = strata_rename(fs, node(fs, parent), name, node(fs, newparent),
			      newname, flags);

	fuse_reply_err(req, -r);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	static const struct {
		int fuse, ours;
	} map[] = {
		{ FUSE_SET_ATTR_MODE, STRATA_SET_MODE },
		{ FUSE_SET_ATTR_UID, STRATA_SET_UID },
		{ FUSE_SET_ATTR_GID, STRATA_SET_GID },
		{ FUSE_SET_ATTR_SIZE, STRATA_SET_SIZE },
		{ FUSE_SET_ATTR_ATIME, STRATA_SET_ATIME },
		{ FUSE_SET_ATTR_MTIME, STRATA_SET_MTIME },
		{ FUSE_SET_ATTR_ATIME_NOW, STRATA_SET_ATIME_NOW },
		{ FUSE_SET_ATTR_MTIME_NOW, STRATA_SET_MTIME_NOW },
		{ FUSE_SET_ATTR_CTIME, STRATA_SET_CTIME },
	};
	struct strata_fs *fs = req_fs(req);
	struct stat st;
	int valid = 0, r;

	for (size_t i = 0; i < G_N_ELEMENTS(map); i++)
		if (to_set & map[i].fuse)
			valid |= map[i].ours;
	if ((valid & (STRATA_SET_SIZE | STRATA_SET_MODE)) == STRATA_SET_SIZE) {
		mode_t mode = sgid_killed_mode(req, fs, node(fs, ino), -1);

		if (mode) {
			attr->st_mode = mode;
			valid |= STRATA_SET_MODE;
		}
	}
	r = strata_setattr(fs, node(fs, ino), attr, valid, fi ? fh(fi) : NULL,
			   &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, fs->timeout);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct strata_fs *fs = req_fs(req);

	fuse_reply_err(req, -strata_setxattr(fs, node(fs, ino), name, value,
					     size, flags));
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct strata_fs *fs = req_fs(req);

	fuse_reply_err(req, -strata_removexattr(fs, node(fs, ino), name));
}

const struct fuse_lowlevel_ops strata_ops = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.flush = op_flush,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.access = op_access,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.create = op_create,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.setattr = op_setattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.write_buf = op_write_buf,
	.fsync = op_fsync,
	.fsyncdir = op_fsyncdir,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
	.copy_file_range = op_copy_file_range,
};
