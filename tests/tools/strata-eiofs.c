/*
 * strata-eiofs: a tiny read-only FUSE filesystem whose reads fail, to be
 * used as a lower layer in tests of read errors.
 *
 *   strata-eiofs MOUNTPOINT [-f] [FUSE OPTIONS]
 *
 * The tree (fixed, all owned by root, mtime 2001-09-09):
 *   /good          "good data\n" x 1000 (10000 bytes), reads fine
 *   /bad           65536 bytes, every read fails with EIO
 *   /half          65536 bytes; bytes [0, 4096) read as 'h', a read that
 *                  reaches past 4096 fails with EIO
 *   /dir/          a directory holding /dir/inner ("inner\n")
 *   /baddir/       a directory whose listing fails with EIO; /baddir/x
 *                  ("x\n") can still be looked up and read
 *   /slow0../slow3 4096 bytes of 's' each; every read takes half a second
 * Files are opened with direct_io, so no read is ever served from the
 * page cache: every read of /bad reaches us and fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GOOD_LINE "good data\n"
#define GOOD_REPEAT 1000
#define BAD_SIZE 65536
#define HALF_OK 4096
#define SLOW_SIZE 4096
#define SLOW_US 500000

enum kind { K_DIR, K_GOOD, K_BAD, K_HALF, K_TEXT, K_SLOW };

struct node {
	const char *path;
	enum kind kind;
	const char *text; /* K_TEXT */
};

static const struct node nodes[] = {
	{ "/", K_DIR, NULL },
	{ "/good", K_GOOD, NULL },
	{ "/bad", K_BAD, NULL },
	{ "/half", K_HALF, NULL },
	{ "/dir", K_DIR, NULL },
	{ "/dir/inner", K_TEXT, "inner\n" },
	{ "/baddir", K_DIR, NULL },
	{ "/baddir/x", K_TEXT, "x\n" },
	{ "/slow0", K_SLOW, NULL },
	{ "/slow1", K_SLOW, NULL },
	{ "/slow2", K_SLOW, NULL },
	{ "/slow3", K_SLOW, NULL },
};

static const struct node *find(const char *path)
{
	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++)
		if (strcmp(nodes[i].path, path) == 0)
			return &nodes[i];
	return NULL;
}

static off_t size_of(const struct node *n)
{
	switch (n->kind) {
	case K_GOOD:
		return (off_t)strlen(GOOD_LINE) * GOOD_REPEAT;
	case K_BAD:
	case K_HALF:
		return BAD_SIZE;
	case K_TEXT:
		return (off_t)strlen(n->text);
	case K_SLOW:
		return SLOW_SIZE;
	default:
		return 0;
	}
}

static int eio_getattr(const char *path, struct stat *st,
		       struct fuse_file_info *fi)
{
	const struct node *n = find(path);

	(void)fi;
	if (n == NULL)
		return -ENOENT;
	memset(st, 0, sizeof(*st));
	st->st_ino = (ino_t)(n - nodes) + 1;
	st->st_mode = n->kind == K_DIR ? S_IFDIR | 0755 : S_IFREG | 0644;
	st->st_nlink = n->kind == K_DIR ? 2 : 1;
	st->st_size = size_of(n);
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_mtim.tv_sec = st->st_atim.tv_sec = st->st_ctim.tv_sec =
		1000000000;
	return 0;
}

static int eio_readdir(const char *path, void *buf, fuse_fill_dir_t fill,
		       off_t off, struct fuse_file_info *fi,
		       enum fuse_readdir_flags flags)
{
	size_t plen = strlen(path);

	(void)off;
	(void)fi;
	(void)flags;
	if (strcmp(path, "/baddir") == 0)
		return -EIO;
	if (find(path) == NULL)
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	for (size_t i = 1; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		const char *p = nodes[i].path;
		const char *rest;

		if (plen == 1)
			rest = p + 1;
		else if (strncmp(p, path, plen) == 0 && p[plen] == '/')
			rest = p + plen + 1;
		else
			continue;
		if (strchr(rest, '/') == NULL)
			fill(buf, rest, NULL, 0, 0);
	}
	return 0;
}

static int eio_open(const char *path, struct fuse_file_info *fi)
{
	const struct node *n = find(path);

	if (n == NULL)
		return -ENOENT;
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	fi->direct_io = 1;
	return 0;
}

static int eio_read(const char *path, char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	const struct node *n = find(path);
	off_t total;

	(void)fi;
	if (n == NULL)
		return -ENOENT;
	if (n->kind == K_BAD)
		return -EIO;
	if (n->kind == K_HALF && off + (off_t)size > HALF_OK)
		return -EIO;
	if (n->kind == K_SLOW)
		usleep(SLOW_US);
	total = size_of(n);
	if (off >= total)
		return 0;
	if (off + (off_t)size > total)
		size = (size_t)(total - off);
	for (size_t i = 0; i < size; i++) {
		off_t o = off + (off_t)i;

		if (n->kind == K_GOOD)
			buf[i] = GOOD_LINE[o % strlen(GOOD_LINE)];
		else if (n->kind == K_HALF)
			buf[i] = 'h';
		else if (n->kind == K_SLOW)
			buf[i] = 's';
		else
			buf[i] = n->text[o];
	}
	return (int)size;
}

static const struct fuse_operations ops = {
	.getattr = eio_getattr,
	.readdir = eio_readdir,
	.open = eio_open,
	.read = eio_read,
};

int main(int argc, char **argv)
{
	return fuse_main(argc, argv, &ops, NULL);
}
