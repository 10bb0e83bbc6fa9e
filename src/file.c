// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Files: opening the real object, open handles, symlink targets, statfs,
 * access, fsync.
 *
 * A handle opened for writing always points at the upper copy (the open
 * copies the file up first; with O_TRUNC without its data).  A read-only
 * handle opened on a lower file keeps its fd until the file is copied up
 * (the inode's gen changes); its next read reopens the copy, so it sees
 * what was written since, as POSIX wants and the overlay2 page lists as a
 * limitation of overlayfs.  The old fd is kept open until release, since
 * another thread may still be reading from it.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <string.h>
#include <sys/statvfs.h>

#include "stratafs/stratafs.h"

/*
 * Open the object an orphaned inode kept (the O_PATH fd taken when its
 * name was unlinked or renamed over) through its /proc magic link, which
 * leads to exactly that object: O_NOFOLLOW would refuse the link itself.
 * Never for writing into a lower layer: a write open copies up first, and
 * an object that still lives below could only be reached here by mistake.
 */
static int open_orphan(int ofd, uint32_t layer, int flags)
{
	char proc[64];

	if (layer != 0 && ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)))
		return -ENOENT;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", ofd);
	return strata_do_openat(AT_FDCWD, proc, flags & ~O_NOFOLLOW, 0);
}

int strata_open_real(struct strata_fs *fs, struct strata_inode *in,
		     int flags)
{
	g_autofree char *name = NULL;
	struct strata_stack *s;
	uint32_t layer;
	bool unlinked;
	int dirfd, ofd, r;

	/* the caller's access mode and a few harmless flags; never follow
	 * a symlink in a layer, never become a controlling terminal.  Not
	 * O_DIRECT: the kernel does the caller's direct I/O, and libfuse's
	 * buffers are not aligned for the real file's */
	flags &= O_ACCMODE | O_NONBLOCK | O_DIRECTORY | O_NOATIME | O_TRUNC |
		 O_APPEND | O_SYNC | O_DSYNC;
	flags |= O_NOFOLLOW | O_NOCTTY;
	if (S_ISDIR(in->type)) {
		s = strata_inode_stack(in);
		r = strata_do_openat(s->e[0].fd, ".", flags, 0);
		strata_stack_unref(s);
		return r;
	}
	/*
	 * A file whose name was unlinked or renamed over is still open to
	 * the kernel (an open racing with the unlink, or a reopen through
	 * /proc/PID/fd): its old name now holds a whiteout, another file or
	 * nothing, so the kept O_PATH fd is what leads to it.  orphan_fd is
	 * closed only when the inode is freed, and the caller holds it.
	 */
	g_mutex_lock(&in->cu_lock); /* no unlink or rename of it meanwhile */
	g_mutex_lock(&in->lock);
	ofd = in->orphan_fd;
	unlinked = in->unlinked;
	layer = in->layer;
	g_mutex_unlock(&in->lock);
	if (ofd >= 0 && unlinked) {
		r = open_orphan(ofd, layer, flags);
		goto out;
	}
	r = strata_inode_where(fs, in, &s, &dirfd, &name, &layer);
	if (r < 0)
		goto out;
	r = strata_do_openat(dirfd, name, flags, 0);
	if (r == -EPERM && (flags & O_NOATIME))
		r = strata_do_openat(dirfd, name, flags & ~O_NOATIME, 0);
	strata_stack_unref(s);
	if (ofd >= 0 && (r == -ENOENT || r == -ENXIO)) {
		/* a hardlinked object lost the name it was known by and no
		 * other name is known: that name holds nothing or a
		 * whiteout.  (Where it holds another object, that one was
		 * opened: the kept fd of a hardlinked object may be of a
		 * lower object copied up since, so it cannot win.) */
		r = open_orphan(ofd, layer, flags);
	}
out:
	g_mutex_unlock(&in->cu_lock);
	return r;
}

int strata_readlink(struct strata_fs *fs, struct strata_inode *in,
		    char *buf, size_t size)
{
	g_autofree char *name = NULL;
	struct strata_stack *s;
	uint32_t layer;
	int dirfd, r;

	if (!S_ISLNK(in->type))
		return -EINVAL;
	r = strata_inode_where(fs, in, &s, &dirfd, &name, &layer);
	if (r < 0)
		return r;
	r = strata_do_readlinkat(dirfd, name, buf, size);
	strata_stack_unref(s);
	return r;
}

int strata_statfs(struct strata_fs *fs, struct statvfs *sv)
{
	/* the top layer's filesystem: where writes would go */
	int r = strata_do_fstatvfs(fs->layers[0].fd, sv);

	if (r == 0)
		sv->f_namemax = NAME_MAX;
	return r;
}

static bool in_groups(gid_t gid, gid_t pgid, const gid_t *groups,
		      int ngroups)
{
	if (gid == pgid)
		return true;
	for (int i = 0; i < ngroups; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

int strata_access(struct strata_fs *fs, struct strata_inode *in, int mask,
		  uid_t uid, gid_t gid, const gid_t *groups, int ngroups)
{
	struct stat st;
	mode_t bits;
	int r = strata_getattr(fs, in, &st);

	if (r < 0)
		return r;
	if (mask == F_OK)
		return 0;
	if ((mask & W_OK) && !fs->has_upper)
		return -EROFS;
	if (uid == 0) {
		/* root may read and write anything, and execute what
		 * anyone may execute */
		if ((mask & X_OK) && !S_ISDIR(st.st_mode) &&
		    !(st.st_mode & 0111))
			return -EACCES;
		return 0;
	}
	if (st.st_uid == uid)
		bits = (st.st_mode >> 6) & 7;
	else if (in_groups(st.st_gid, gid, groups, ngroups))
		bits = (st.st_mode >> 3) & 7;
	else
		bits = st.st_mode & 7;
	return (mask & ~bits & 7) ? -EACCES : 0;
}

struct strata_file *strata_file_wrap(struct strata_inode *in, int fd)
{
	struct strata_file *f = g_new0(struct strata_file, 1);

	f->fd = fd;
	f->oldfd = -1;
	f->in = in;
	strata_inode_ref(in, 1);
	g_mutex_init(&f->lock);
	g_mutex_lock(&in->lock);
	f->gen = in->gen;
	f->upper = S_ISDIR(in->type) ? in->stack->e[0].layer == 0
				     : in->layer == 0;
	g_mutex_unlock(&in->lock);
	return f;
}

int strata_file_open(struct strata_fs *fs, struct strata_inode *in, int flags,
		     struct strata_file **out)
{
	bool write = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
	int fd, r;

	if (write) {
		if (!fs->has_upper)
			return -EROFS;
		r = strata_copy_up(fs, in, !(flags & O_TRUNC));
		if (r < 0)
			return r;
	}
	if (fs->writeback && (flags & O_ACCMODE) == O_WRONLY) {
		/* the kernel's cache may read to fill partial pages, and it
		 * computes append offsets itself */
		flags = (flags & ~O_ACCMODE) | O_RDWR;
	}
	if (fs->writeback)
		flags &= ~O_APPEND;
	fd = strata_open_real(fs, in, flags);
	if (fd < 0)
		return fd;
	*out = strata_file_wrap(in, fd);
	return 0;
}

int strata_file_read_fd(struct strata_fs *fs, struct strata_file *f)
{
	uint32_t gen;
	int fd;

	g_mutex_lock(&f->lock);
	if (f->upper) {
		fd = f->fd;
		g_mutex_unlock(&f->lock);
		return fd;
	}
	g_mutex_lock(&f->in->lock);
	gen = f->in->gen;
	g_mutex_unlock(&f->in->lock);
	if (gen != f->gen && f->oldfd < 0) {
		int nfd = strata_open_real(fs, f->in, O_RDONLY);

		if (nfd >= 0) {
			f->oldfd = f->fd;
			f->fd = nfd;
			f->gen = gen;
			f->upper = true;
		}
	}
	fd = f->fd;
	g_mutex_unlock(&f->lock);
	return fd;
}

/*
 * Reading.  A short READ reply means end of file to the FUSE client (it
 * even shrinks its cached size to it), so a real file that fails part way
 * through a request must fail the whole request, as a local filesystem's
 * read of a bad block fails: the kernel then retries page by page and the
 * caller gets the data before the bad page and EIO at it.  Handing libfuse
 * the fd would not do: it splices what it can and replies short on error.
 * So the data first goes into a pipe of this thread's (splice: page
 * references, no copy) until the request is full, EOF or an error, and
 * only a pipe that holds everything is handed to libfuse, which splices it
 * on to the kernel.  A real file that cannot splice is read into memory.
 */
struct readpipe {
	int fd[2];
	size_t cap;
};

static pthread_key_t readpipe_key;
static pthread_once_t readpipe_once = PTHREAD_ONCE_INIT;

static void readpipe_close(struct readpipe *p)
{
	if (p->fd[0] >= 0) {
		close(p->fd[0]);
		close(p->fd[1]);
	}
	p->fd[0] = p->fd[1] = -1;
	p->cap = 0;
}

static void readpipe_free(void *v)
{
	readpipe_close(v);
	g_free(v);
}

static void readpipe_key_init(void)
{
	if (pthread_key_create(&readpipe_key, readpipe_free) != 0)
		abort();
}

/* This thread's pipe, empty and able to hold @size bytes (plus the pages
 * an unaligned range straddles), or NULL. */
static struct readpipe *readpipe_get(size_t size)
{
	struct readpipe *p;
	size_t want = size + 2 * 4096;
	int r;

	pthread_once(&readpipe_once, readpipe_key_init);
	p = pthread_getspecific(readpipe_key);
	if (!p) {
		p = g_new0(struct readpipe, 1);
		p->fd[0] = p->fd[1] = -1;
		pthread_setspecific(readpipe_key, p);
	}
	if (p->fd[0] < 0) {
		if (pipe2(p->fd, O_CLOEXEC) < 0) {
			p->fd[0] = p->fd[1] = -1;
			return NULL;
		}
		p->cap = 65536;
	}
	if (p->cap < want) {
		r = fcntl(p->fd[1], F_SETPIPE_SZ, (int)want);
		if (r < 0)
			return NULL;
		p->cap = (size_t)r;
	}
	return p;
}

int strata_file_read(struct strata_fs *fs, struct strata_file *f,
		     size_t size, off_t off, struct strata_readbuf *rb)
{
	int fd = strata_file_read_fd(fs, f);
	struct readpipe *p = readpipe_get(size);
	loff_t pos = off;
	size_t got = 0;
	ssize_t n;

	memset(rb, 0, sizeof(*rb));
	rb->fd = -1;
	if (!p)
		rb->mem = g_malloc(size ? size : 1);
	while (got < size) {
		n = p ? splice(fd, &pos, p->fd[1], NULL, size - got,
			       SPLICE_F_MOVE)
		      : pread(fd, (char *)rb->mem + got, size - got,
			      off + (off_t)got);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0)
			break;
		if (errno == EINTR)
			continue;
		if (p && got == 0 && (errno == EINVAL || errno == ENOSYS)) {
			/* this file cannot splice: read it into memory */
			p = NULL;
			rb->mem = g_malloc(size ? size : 1);
			continue;
		}
		n = -errno;
		if (p)
			readpipe_close(p); /* drop the part read */
		g_free(rb->mem);
		rb->mem = NULL;
		return (int)n;
	}
	if (p)
		rb->fd = p->fd[0];
	rb->len = got;
	return 0;
}

void strata_file_read_done(struct strata_readbuf *rb)
{
	struct readpipe *p;
	int left = 0;

	g_free(rb->mem);
	rb->mem = NULL;
	if (rb->fd < 0)
		return;
	/* a reply that failed part way leaves data in the pipe: the next
	 * read must not send it */
	if (ioctl(rb->fd, FIONREAD, &left) < 0 || left > 0) {
		p = pthread_getspecific(readpipe_key);
		if (p)
			readpipe_close(p);
	}
	rb->fd = -1;
}

void strata_file_release(struct strata_fs *fs, struct strata_file *f)
{
	close(f->fd);
	if (f->oldfd >= 0)
		close(f->oldfd);
	strata_inode_unref(fs, f->in, 1);
	g_mutex_clear(&f->lock);
	g_free(f);
}

/* fsync the upper directory of @dir, if it has one. */
static int fsync_upper_dir(struct strata_inode *dir, bool datasync)
{
	struct strata_stack *s = strata_inode_stack(dir);
	int fd, r = 0;

	if (s->e[0].layer == 0) {
		fd = strata_do_openat(s->e[0].fd, ".", O_RDONLY | O_DIRECTORY,
				      0);
		if (fd < 0)
			r = fd;
		else {
			r = (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? -errno
								      : 0;
			close(fd);
		}
	}
	strata_stack_unref(s);
	return r;
}

/*
 * A copy-up publishes its object by a rename into the upper parent, and
 * the parents copied up with it likewise: the user who fsyncs the object
 * expects it to survive a crash, the name included, so the first fsync
 * syncs each upper parent such a rename went into (once; entry_unsynced).
 */
static int sync_published(struct strata_fs *fs, struct strata_inode *in)
{
	struct strata_inode *cur = in, *parent;
	bool pending;
	int r = 0;

	strata_inode_ref(cur, 1);
	for (;;) {
		g_mutex_lock(&cur->lock);
		pending = cur->entry_unsynced;
		parent = cur->parent;
		if (pending && parent)
			strata_inode_ref(parent, 1);
		g_mutex_unlock(&cur->lock);
		if (!pending || !parent)
			break;
		r = fsync_upper_dir(parent, false);
		if (r == 0) {
			g_mutex_lock(&cur->lock);
			cur->entry_unsynced = false;
			g_mutex_unlock(&cur->lock);
		}
		strata_inode_unref(fs, cur, 1);
		cur = parent;
		if (r < 0)
			break;
	}
	strata_inode_unref(fs, cur, 1);
	return r;
}

int strata_fsync(struct strata_fs *fs, struct strata_file *f, bool datasync)
{
	int r;

	if (!fs->fsync)
		return 0;
	r = datasync ? fdatasync(f->fd) : fsync(f->fd);
	if (r < 0)
		return -errno;
	return sync_published(fs, f->in);
}

int strata_fsyncdir(struct strata_fs *fs, struct strata_inode *in,
		    bool datasync)
{
	int r;

	if (!fs->fsync || !fs->has_upper)
		return 0;
	r = fsync_upper_dir(in, datasync);
	return r < 0 ? r : sync_published(fs, in);
}
