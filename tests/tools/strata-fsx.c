/*
 * strata-fsx: a seeded, random data-integrity exerciser for one file.
 *
 * It keeps a model of the file (its size and every byte; bytes past the
 * size are kept zero) and applies random operations to the real file and to
 * the model alike: pwrite (also past EOF, leaving holes), pread, ftruncate,
 * fallocate in several modes, mmap reads and writes (MAP_SHARED + msync),
 * fsync, fdatasync, close-and-reopen, lseek SEEK_DATA/SEEK_HOLE and, with
 * -D, O_DIRECT reads and writes through a second descriptor (4096-aligned
 * offsets, lengths and buffers; if the O_DIRECT open fails with EINVAL, direct
 * I/O is disabled with a note, but an EINVAL from an aligned direct read or
 * write after a successful open is a failure).  Every read is
 * compared with the model, the size is checked with fstat after every
 * operation, and the whole file is verified at the end.
 *
 * The file may exist: its content, read through a read-only descriptor
 * before the file is ever opened for writing, is the initial model.  The
 * first operation is always a write and the whole file is verified right
 * after it, so a union filesystem that copies the file up on the first
 * write (or the first open for writing) has that copy checked completely.
 *
 * Exit status: 0 all good, 1 a mismatch or an unexpected error (the last
 * operations are printed), 2 bad usage or the file cannot be set up.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>

#define LOG_LEN 20
#define DIO_ALIGN 4096
#define VERIFY_CHUNK (1 << 20)

enum op {
	OP_READ,
	OP_WRITE,
	OP_MAPREAD,
	OP_MAPWRITE,
	OP_TRUNCATE,
	OP_FALLOC,
	OP_FALLOC_KEEP,
	OP_PUNCH,
	OP_ZERO,
	OP_ZERO_KEEP,
	OP_FSYNC,
	OP_FDATASYNC,
	OP_REOPEN,
	OP_SEEK_DATA,
	OP_SEEK_HOLE,
	OP_DREAD,
	OP_DWRITE,
	OP_COUNT
};

static const struct {
	const char *name;
	unsigned weight;
} optab[OP_COUNT] = {
	[OP_READ] = { "read", 20 },
	[OP_WRITE] = { "write", 20 },
	[OP_MAPREAD] = { "mapread", 8 },
	[OP_MAPWRITE] = { "mapwrite", 8 },
	[OP_TRUNCATE] = { "truncate", 3 },
	[OP_FALLOC] = { "falloc", 2 },
	[OP_FALLOC_KEEP] = { "falloc_keep", 2 },
	[OP_PUNCH] = { "punch_hole", 3 },
	[OP_ZERO] = { "zero_range", 2 },
	[OP_ZERO_KEEP] = { "zero_range_keep", 2 },
	[OP_FSYNC] = { "fsync", 1 },
	[OP_FDATASYNC] = { "fdatasync", 1 },
	[OP_REOPEN] = { "reopen", 1 },
	[OP_SEEK_DATA] = { "seek_data", 3 },
	[OP_SEEK_HOLE] = { "seek_hole", 3 },
	[OP_DREAD] = { "dio_read", 6 },
	[OP_DWRITE] = { "dio_write", 6 },
};

struct logent {
	unsigned long n;
	enum op op;
	off_t off;
	size_t len;
	off_t size_before;
	off_t size_after;
	const char *note;
};

/* Settings. */
static const char *path;
static unsigned long nops = 10000;
static uint64_t seed = 1;
static size_t maxlen = 256 * 1024;
static size_t maxop = 64 * 1024;
static bool use_mmap = true;
static bool use_dio;
static bool quiet;
static bool verbose;
static const char *dump_path;

/* State. */
static int fd = -1;
static int dfd = -1;
static uint8_t *model;  /* maxlen bytes, zero past size */
static off_t size;
static size_t pagesize;
static bool disabled[OP_COUNT];
static unsigned long counts[OP_COUNT];
static uint8_t *rbuf;   /* read buffer, VERIFY_CHUNK or maxop bytes */
static uint8_t *wbuf;   /* write pattern buffer, maxop bytes */
static uint8_t *dbuf;   /* DIO_ALIGN-aligned, dbuf_len bytes */
static size_t dbuf_len;
static unsigned long opnum;
static struct logent oplog[LOG_LEN];
static unsigned long logged;
static struct logent *cur;

/* ---- random numbers: splitmix64, so a seed means the same run anywhere. */
static uint64_t rng;

static uint64_t rnd64(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi] (inclusive). */
static uint64_t rnd_range(uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + rnd64() % (hi - lo + 1);
}

/* ---- reporting */
static void notice(const char *fmt, ...)
{
	va_list ap;

	if (quiet)
		return;
	va_start(ap, fmt);
	fputs("strata-fsx: ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
}

static void print_ent(FILE *out, const struct logent *e, const char *mark)
{
	fprintf(out, "%s%7lu %-15s off=0x%-9jx len=0x%-6zx size 0x%jx -> 0x%jx%s%s\n",
		mark, e->n, optab[e->op].name, (intmax_t)e->off, e->len,
		(intmax_t)e->size_before, (intmax_t)e->size_after,
		e->note ? "  " : "", e->note ? e->note : "");
}

static void print_log(FILE *out)
{
	unsigned long first = logged > LOG_LEN ? logged - LOG_LEN : 0;

	fprintf(out, "last %lu operations (oldest first; '>' = current):\n",
		logged - first);
	for (unsigned long i = first; i < logged; i++) {
		const struct logent *e = &oplog[i % LOG_LEN];

		print_ent(out, e, e == cur ? ">" : " ");
	}
}

static void __attribute__((noreturn, format(printf, 1, 2)))
fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "strata-fsx: FAIL at op %lu (seed %" PRIu64 ", file %s): ",
		opnum, seed, path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	print_log(stderr);
	fprintf(stderr, "strata-fsx: FAILED after %lu ops, seed %" PRIu64 "\n",
		opnum, seed);
	exit(1);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die_setup(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "strata-fsx: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* ---- the data written: non-zero, depends on the op and the file offset,
 * so that stale, shifted or zeroed data all show. */
static uint8_t pattern(unsigned long n, uint64_t pos)
{
	uint64_t v = ((uint64_t)n << 40) ^ pos;

	v *= 0x9e3779b97f4a7c15ULL;
	return (uint8_t)(1 + (v >> 56) % 255);
}

static void fill_pattern(uint8_t *buf, off_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern(opnum, (uint64_t)off + i);
}

static bool writes_data(enum op op)
{
	return op == OP_WRITE || op == OP_MAPWRITE || op == OP_DWRITE;
}

/* Which recent write would have put this byte here? */
static void explain_byte(off_t pos, uint8_t got)
{
	if (got == 0) {
		fprintf(stderr, "  the byte read is zero: a hole, a lost write or zeroed data\n");
	}
	unsigned long first = logged > LOG_LEN ? logged - LOG_LEN : 0;
	for (unsigned long i = logged; i-- > first;) {
		const struct logent *e = &oplog[i % LOG_LEN];

		if (!writes_data(e->op) || pos < e->off ||
		    pos >= e->off + (off_t)e->len)
			continue;
		if (pattern(e->n, (uint64_t)pos) == got)
			fprintf(stderr, "  the byte read matches what op %lu (%s) wrote there\n",
				e->n, optab[e->op].name);
	}
}

static void hexline(const char *label, const uint8_t *p, off_t base,
		    size_t n, const uint8_t *other)
{
	fprintf(stderr, "  %-8s 0x%09jx:", label, (intmax_t)base);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "%c%02x", other && other[i] != p[i] ? '*' : ' ', p[i]);
	fputc('\n', stderr);
}

/* Compare len bytes read at file offset off with the model. */
static void check_data(const char *what, const uint8_t *got, off_t off, size_t len)
{
	const uint8_t *exp = model + off;
	size_t i, j, ndiff = 0, last = 0;

	if (memcmp(got, exp, len) == 0)
		return;
	for (i = 0; i < len && got[i] == exp[i]; i++)
		;
	for (j = i; j < len; j++) {
		if (got[j] != exp[j]) {
			ndiff++;
			last = j;
		}
	}
	fflush(stdout);
	fprintf(stderr, "strata-fsx: %s: data mismatch at file offset 0x%jx (%jd): "
		"expected 0x%02x, got 0x%02x; %zu byte(s) differ in [0x%jx, 0x%jx], "
		"range read 0x%jx+0x%zx, model size 0x%jx\n",
		what, (intmax_t)(off + i), (intmax_t)(off + i), exp[i], got[i], ndiff,
		(intmax_t)(off + i), (intmax_t)(off + last), (intmax_t)off, len,
		(intmax_t)size);
	size_t start = i & ~(size_t)15;
	for (size_t k = start; k < len && k < start + 64; k += 16) {
		size_t n = len - k < 16 ? len - k : 16;

		hexline("expected", exp + k, off + k, n, NULL);
		hexline("got", got + k, off + k, n, exp + k);
	}
	explain_byte(off + i, got[i]);
	fail("%s returned wrong data at offset 0x%jx", what, (intmax_t)(off + i));
}

/* ---- model updates */
static void model_set_size(off_t n)
{
	if (n < size)
		memset(model + n, 0, size - n);
	size = n;
}

static void model_write(off_t off, const uint8_t *buf, size_t len)
{
	memcpy(model + off, buf, len);
	if (off + (off_t)len > size)
		size = off + len;
}

static void model_zero(off_t off, size_t len)
{
	off_t end = off + len;

	if (end > size)
		end = size;
	if (off < end)
		memset(model + off, 0, end - off);
}

/* ---- I/O helpers */
static ssize_t pread_full(int f, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(f, (char *)buf + done, len - done, off + done);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return done ? (ssize_t)done : -1;
		}
		if (r == 0)
			break;
		done += r;
	}
	return done;
}

static void pwrite_full(int f, const void *buf, size_t len, off_t off, const char *what)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pwrite(f, (const char *)buf + done, len - done, off + done);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			fail("%s at 0x%jx+0x%zx: %s", what, (intmax_t)(off + done),
			     len - done, strerror(errno));
		}
		if (r == 0)
			fail("%s at 0x%jx: wrote 0 bytes", what, (intmax_t)(off + done));
		done += r;
	}
}

static void open_main(void)
{
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		fail("open(%s, O_RDWR): %s", path, strerror(errno));
}

static void open_direct(void)
{
	if (!use_dio)
		return;
	dfd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (dfd >= 0)
		return;
	if (errno == EINVAL) {
		printf("strata-fsx: O_DIRECT open failed with EINVAL: direct I/O disabled\n");
		fflush(stdout);
		use_dio = false;
		disabled[OP_DREAD] = disabled[OP_DWRITE] = true;
		return;
	}
	fail("open(%s, O_RDWR|O_DIRECT): %s", path, strerror(errno));
}

static void check_size(void)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		fail("fstat: %s", strerror(errno));
	if (st.st_size != size)
		fail("file size is 0x%jx (%jd), the model says 0x%jx (%jd)",
		     (intmax_t)st.st_size, (intmax_t)st.st_size,
		     (intmax_t)size, (intmax_t)size);
}

/* ---- picking offsets and lengths */
static size_t pick_len(size_t max)
{
	if (max == 0)
		return 0;
	if (rnd64() % 4 == 0)
		return rnd_range(1, max < 64 ? max : 64);
	return rnd_range(1, max);
}

/* An offset in [0, maxlen): uniform, or near the current EOF. */
static off_t pick_off(void)
{
	if (rnd64() % 4 == 0) {
		int64_t o = (int64_t)size + (int64_t)rnd_range(0, 16384) - 8192;

		if (o < 0)
			o = 0;
		if (o >= (int64_t)maxlen)
			o = maxlen - 1;
		return o;
	}
	return rnd_range(0, maxlen - 1);
}

/* Clamp a length so that off + len <= maxlen. */
static size_t clamp_len(off_t off, size_t len)
{
	if (off + (off_t)len > (off_t)maxlen)
		len = maxlen - off;
	return len;
}

/* ---- the operations */
static void do_read(void)
{
	off_t off = pick_off();
	size_t len = pick_len(maxop);
	size_t expect = off < size ? (size_t)(size - off) : 0;

	if (expect > len)
		expect = len;
	cur->off = off;
	cur->len = len;
	ssize_t r = pread_full(fd, rbuf, len, off);
	if (r < 0)
		fail("pread 0x%jx+0x%zx: %s", (intmax_t)off, len, strerror(errno));
	if ((size_t)r != expect)
		fail("pread 0x%jx+0x%zx returned %zd bytes, expected %zu (model size 0x%jx)",
		     (intmax_t)off, len, r, expect, (intmax_t)size);
	check_data("pread", rbuf, off, expect);
}

static void do_write(void)
{
	off_t off = pick_off();
	size_t len = clamp_len(off, pick_len(maxop));

	cur->off = off;
	cur->len = len;
	fill_pattern(wbuf, off, len);
	pwrite_full(fd, wbuf, len, off, "pwrite");
	model_write(off, wbuf, len);
}

/* In the page that holds EOF, the bytes past EOF must read as zero. */
static void check_eof_page(const uint8_t *map, off_t map_off, size_t map_len)
{
	off_t map_end = map_off + map_len;

	if (size % pagesize == 0 || size < map_off || size >= map_end)
		return;
	off_t page_end = (size / pagesize + 1) * pagesize;
	for (off_t p = size; p < page_end && p < map_end; p++) {
		if (map[p - map_off] != 0)
			fail("mmap: byte 0x%02x at 0x%jx, past EOF 0x%jx in the last page, "
			     "is not zero", map[p - map_off], (intmax_t)p, (intmax_t)size);
	}
}

static bool mmap_failed(const char *what)
{
	if (errno == ENODEV || errno == EACCES) {
		printf("strata-fsx: %s: mmap not supported (%s): mmap disabled\n",
		       what, strerror(errno));
		fflush(stdout);
		disabled[OP_MAPREAD] = disabled[OP_MAPWRITE] = true;
		cur->note = "skipped: mmap not supported";
		return true;
	}
	fail("%s: mmap: %s", what, strerror(errno));
}

static void do_mapread(void)
{
	if (size == 0) {
		cur->note = "skipped: empty file";
		return;
	}
	off_t off = rnd_range(0, size - 1);
	size_t len = pick_len(maxop);

	if (off + (off_t)len > size)
		len = size - off;
	cur->off = off;
	cur->len = len;
	off_t pg = off - off % pagesize;
	size_t maplen = off + len - pg;
	maplen = (maplen + pagesize - 1) / pagesize * pagesize;
	uint8_t *p = mmap(NULL, maplen, PROT_READ, MAP_SHARED, fd, pg);
	if (p == MAP_FAILED) {
		mmap_failed("mapread");
		return;
	}
	check_data("mmap read", p + (off - pg), off, len);
	check_eof_page(p, pg, maplen);
	if (munmap(p, maplen) < 0)
		fail("munmap: %s", strerror(errno));
}

static void do_mapwrite(void)
{
	off_t off = pick_off();
	size_t len = clamp_len(off, pick_len(maxop));

	cur->off = off;
	cur->len = len;
	if (off + (off_t)len > size) {
		/* A mapping cannot extend the file: grow it first. */
		if (ftruncate(fd, off + len) < 0)
			fail("mapwrite: ftruncate to 0x%jx: %s",
			     (intmax_t)(off + len), strerror(errno));
		model_set_size(off + len);
	}
	off_t pg = off - off % pagesize;
	size_t maplen = off + len - pg;
	maplen = (maplen + pagesize - 1) / pagesize * pagesize;
	uint8_t *p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, pg);
	if (p == MAP_FAILED) {
		mmap_failed("mapwrite");
		return;
	}
	fill_pattern(wbuf, off, len);
	memcpy(p + (off - pg), wbuf, len);
	model_write(off, wbuf, len);
	if (msync(p, maplen, MS_SYNC) < 0)
		fail("msync: %s", strerror(errno));
	check_eof_page(p, pg, maplen);
	if (munmap(p, maplen) < 0)
		fail("munmap: %s", strerror(errno));
}

static void do_truncate(void)
{
	off_t n;

	if (rnd64() % 3 == 0) {
		int64_t o = (int64_t)size + (int64_t)rnd_range(0, 2 * maxop) - (int64_t)maxop;

		n = o < 0 ? 0 : o > (int64_t)maxlen ? (off_t)maxlen : o;
	} else {
		n = rnd_range(0, maxlen);
	}
	cur->off = n;
	if (ftruncate(fd, n) < 0)
		fail("ftruncate to 0x%jx: %s", (intmax_t)n, strerror(errno));
	model_set_size(n);
}

static void do_falloc(enum op op)
{
	static const int modes[OP_COUNT] = {
		[OP_FALLOC] = 0,
		[OP_FALLOC_KEEP] = FALLOC_FL_KEEP_SIZE,
		[OP_PUNCH] = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		[OP_ZERO] = FALLOC_FL_ZERO_RANGE,
		[OP_ZERO_KEEP] = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
	};
	off_t off = pick_off();
	size_t len = clamp_len(off, pick_len(maxop));

	cur->off = off;
	cur->len = len;
	if (fallocate(fd, modes[op], off, len) < 0) {
		if (errno == EOPNOTSUPP || errno == ENOSYS) {
			printf("strata-fsx: fallocate %s: %s: skipping it from now on\n",
			       optab[op].name, strerror(errno));
			fflush(stdout);
			disabled[op] = true;
			cur->note = "skipped: not supported";
			return;
		}
		fail("fallocate %s 0x%jx+0x%zx: %s", optab[op].name,
		     (intmax_t)off, len, strerror(errno));
	}
	switch (op) {
	case OP_FALLOC:
		if (off + (off_t)len > size)
			size = off + len;
		break;
	case OP_FALLOC_KEEP:
		break;
	case OP_PUNCH:
	case OP_ZERO_KEEP:
		model_zero(off, len);
		break;
	case OP_ZERO:
		model_zero(off, len);
		if (off + (off_t)len > size)
			size = off + len;
		break;
	default:
		break;
	}
}

static void do_sync(enum op op)
{
	if ((op == OP_FSYNC ? fsync(fd) : fdatasync(fd)) < 0)
		fail("%s: %s", optab[op].name, strerror(errno));
}

static void do_reopen(void)
{
	if (close(fd) < 0)
		fail("close: %s", strerror(errno));
	fd = -1;
	if (dfd >= 0 && close(dfd) < 0)
		fail("close (O_DIRECT fd): %s", strerror(errno));
	dfd = -1;
	open_main();
	open_direct();
}

static off_t first_nonzero(off_t from)
{
	off_t p = from;

	/* Byte by byte up to an 8-byte boundary, then a word at a time. */
	while (p < size && p % 8) {
		if (model[p])
			return p;
		p++;
	}
	while (p + 8 <= size) {
		uint64_t w;

		memcpy(&w, model + p, 8);
		if (w)
			break;
		p += 8;
	}
	for (; p < size; p++)
		if (model[p])
			return p;
	return -1;
}

/*
 * lseek SEEK_DATA/SEEK_HOLE.  A filesystem may report a hole as data, so
 * only what is sure is checked: nothing at or past EOF is data, EOF is a
 * hole, and a non-zero byte is never in a hole.
 */
static void do_seek(enum op op)
{
	int whence = op == OP_SEEK_DATA ? SEEK_DATA : SEEK_HOLE;
	off_t off;
	uint64_t k = rnd64() % 16;

	if (k == 0)
		off = size;
	else if (k == 1)
		off = size + rnd_range(1, 65536);
	else
		off = size ? (off_t)rnd_range(0, size - 1) : 0;
	cur->off = off;
	errno = 0;
	off_t r = lseek(fd, off, whence);
	int e = errno;

	if (r < 0 && e == EINVAL) {
		printf("strata-fsx: lseek %s: EINVAL: skipping it from now on\n",
		       optab[op].name);
		fflush(stdout);
		disabled[op] = true;
		cur->note = "skipped: not supported";
		return;
	}
	if (off >= size) {
		/* Beyond EOF: ENXIO.  At exactly EOF a SEEK_HOLE answer of EOF
		 * itself is tolerated. */
		if (r < 0 && e == ENXIO)
			return;
		if (off == size && whence == SEEK_HOLE && r == size)
			return;
		if (r < 0)
			fail("lseek(0x%jx, %s) at/after EOF 0x%jx: %s, expected ENXIO",
			     (intmax_t)off, optab[op].name, (intmax_t)size, strerror(e));
		fail("lseek(0x%jx, %s) at/after EOF 0x%jx returned 0x%jx, expected ENXIO",
		     (intmax_t)off, optab[op].name, (intmax_t)size, (intmax_t)r);
	}
	off_t nz = first_nonzero(off);
	if (whence == SEEK_DATA) {
		if (r < 0 && e == ENXIO) {
			if (nz >= 0)
				fail("lseek(0x%jx, SEEK_DATA): ENXIO, but byte 0x%jx is non-zero data",
				     (intmax_t)off, (intmax_t)nz);
			return;
		}
		if (r < 0)
			fail("lseek(0x%jx, SEEK_DATA): %s", (intmax_t)off, strerror(e));
		if (r < off || r >= size)
			fail("lseek(0x%jx, SEEK_DATA) returned 0x%jx, outside [offset, EOF 0x%jx)",
			     (intmax_t)off, (intmax_t)r, (intmax_t)size);
		if (nz >= 0 && r > nz)
			fail("lseek(0x%jx, SEEK_DATA) returned 0x%jx, skipping non-zero data at 0x%jx",
			     (intmax_t)off, (intmax_t)r, (intmax_t)nz);
	} else {
		if (r < 0)
			fail("lseek(0x%jx, SEEK_HOLE): %s", (intmax_t)off, strerror(e));
		if (r < off || r > size)
			fail("lseek(0x%jx, SEEK_HOLE) returned 0x%jx, outside [offset, EOF 0x%jx]",
			     (intmax_t)off, (intmax_t)r, (intmax_t)size);
		if (r < size && model[r] != 0)
			fail("lseek(0x%jx, SEEK_HOLE) returned 0x%jx, but that byte is non-zero data",
			     (intmax_t)off, (intmax_t)r);
	}
}

/* Aligned offset and length for O_DIRECT; false if the file limit is too
 * small for even one block. */
static bool pick_dio(off_t *offp, size_t *lenp)
{
	size_t blocks = maxlen / DIO_ALIGN;
	size_t maxblocks = dbuf_len / DIO_ALIGN;

	if (blocks == 0)
		return false;
	off_t off = (pick_off() / DIO_ALIGN) * DIO_ALIGN;
	if (off / DIO_ALIGN >= (off_t)blocks)
		off = (blocks - 1) * DIO_ALIGN;
	size_t n = rnd_range(1, maxblocks);
	if (off / DIO_ALIGN + n > blocks)
		n = blocks - off / DIO_ALIGN;
	*offp = off;
	*lenp = n * DIO_ALIGN;
	return true;
}

static void do_dread(void)
{
	off_t off;
	size_t len;

	if (dfd < 0 || !pick_dio(&off, &len)) {
		cur->note = "skipped";
		return;
	}
	cur->off = off;
	cur->len = len;
	size_t expect = off < size ? (size_t)(size - off) : 0;
	if (expect > len)
		expect = len;
	ssize_t r = pread_full(dfd, dbuf, len, off);
	if (r < 0 && errno == EINVAL)
		fail("O_DIRECT pread 0x%jx+0x%zx: EINVAL, although offset, length and "
		     "buffer are %d-aligned and the O_DIRECT open succeeded",
		     (intmax_t)off, len, DIO_ALIGN);
	if (r < 0)
		fail("O_DIRECT pread 0x%jx+0x%zx: %s", (intmax_t)off, len, strerror(errno));
	if ((size_t)r != expect)
		fail("O_DIRECT pread 0x%jx+0x%zx returned %zd bytes, expected %zu "
		     "(model size 0x%jx)", (intmax_t)off, len, r, expect, (intmax_t)size);
	check_data("O_DIRECT pread", dbuf, off, expect);
}

static void do_dwrite(void)
{
	off_t off;
	size_t len;

	if (dfd < 0 || !pick_dio(&off, &len)) {
		cur->note = "skipped";
		return;
	}
	cur->off = off;
	cur->len = len;
	fill_pattern(dbuf, off, len);
	ssize_t r = pwrite(dfd, dbuf, len, off);
	if (r < 0 && errno == EINVAL)
		fail("O_DIRECT pwrite 0x%jx+0x%zx: EINVAL, although offset, length and "
		     "buffer are %d-aligned and the O_DIRECT open succeeded",
		     (intmax_t)off, len, DIO_ALIGN);
	if (r >= 0 && (size_t)r < len) {
		/* Finish a short direct write through the same descriptor. */
		pwrite_full(dfd, dbuf + r, len - r, off + r, "O_DIRECT pwrite (rest)");
		r = len;
	}
	if (r < 0)
		fail("O_DIRECT pwrite 0x%jx+0x%zx: %s", (intmax_t)off, len, strerror(errno));
	model_write(off, dbuf, len);
}

/* Read the whole file and compare it with the model, size included. */
static void verify_all(const char *what)
{
	off_t off = 0;

	check_size();
	while (off < size) {
		size_t len = size - off < VERIFY_CHUNK ? (size_t)(size - off) : VERIFY_CHUNK;
		ssize_t r = pread_full(fd, rbuf, len, off);

		if (r < 0)
			fail("%s: pread 0x%jx+0x%zx: %s", what, (intmax_t)off, len,
			     strerror(errno));
		if ((size_t)r != len)
			fail("%s: pread 0x%jx+0x%zx returned %zd bytes (EOF before the "
			     "model size 0x%jx)", what, (intmax_t)off, len, r, (intmax_t)size);
		check_data(what, rbuf, off, len);
		off += len;
	}
	/* Nothing past EOF. */
	ssize_t r = pread(fd, rbuf, 1, size);
	if (r != 0)
		fail("%s: pread at EOF 0x%jx returned %zd, expected 0", what,
		     (intmax_t)size, r);
}

static enum op pick_op(void)
{
	unsigned total = 0;

	for (int i = 0; i < OP_COUNT; i++)
		if (!disabled[i])
			total += optab[i].weight;
	unsigned x = rnd64() % total;
	for (int i = 0; i < OP_COUNT; i++) {
		if (disabled[i])
			continue;
		if (x < optab[i].weight)
			return i;
		x -= optab[i].weight;
	}
	return OP_READ;
}

static void run_op(enum op op)
{
	cur = &oplog[logged % LOG_LEN];
	memset(cur, 0, sizeof(*cur));
	cur->n = opnum;
	cur->op = op;
	cur->size_before = size;
	cur->size_after = size;
	logged++;
	counts[op]++;

	switch (op) {
	case OP_READ: do_read(); break;
	case OP_WRITE: do_write(); break;
	case OP_MAPREAD: do_mapread(); break;
	case OP_MAPWRITE: do_mapwrite(); break;
	case OP_TRUNCATE: do_truncate(); break;
	case OP_FALLOC:
	case OP_FALLOC_KEEP:
	case OP_PUNCH:
	case OP_ZERO:
	case OP_ZERO_KEEP: do_falloc(op); break;
	case OP_FSYNC:
	case OP_FDATASYNC: do_sync(op); break;
	case OP_REOPEN: do_reopen(); break;
	case OP_SEEK_DATA:
	case OP_SEEK_HOLE: do_seek(op); break;
	case OP_DREAD: do_dread(); break;
	case OP_DWRITE: do_dwrite(); break;
	default: break;
	}
	cur->size_after = size;
	if (verbose)
		print_ent(stdout, cur, " ");
	check_size();
}

/* ---- setup */
static void read_initial(void)
{
	struct stat st;
	int rfd = open(path, O_RDONLY | O_CLOEXEC);

	if (rfd < 0 && errno == ENOENT) {
		int c = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

		if (c < 0)
			die_setup("cannot create %s: %s", path, strerror(errno));
		close(c);
		notice("created %s", path);
		size = 0;
		model = calloc(1, maxlen);
		if (!model)
			die_setup("out of memory");
		return;
	}
	if (rfd < 0)
		die_setup("cannot open %s: %s", path, strerror(errno));
	if (fstat(rfd, &st) < 0)
		die_setup("fstat %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		die_setup("%s is not a regular file", path);
	if ((uint64_t)st.st_size > maxlen) {
		notice("%s has 0x%jx bytes: the size limit grows to that", path,
		       (intmax_t)st.st_size);
		maxlen = st.st_size;
	}
	model = calloc(1, maxlen);
	if (!model)
		die_setup("out of memory for a %zu-byte model", maxlen);
	ssize_t r = pread_full(rfd, model, st.st_size, 0);
	if (r != st.st_size)
		die_setup("reading the initial content of %s: got %zd of %jd bytes%s%s",
			  path, r, (intmax_t)st.st_size, r < 0 ? ": " : "",
			  r < 0 ? strerror(errno) : "");
	close(rfd);
	size = st.st_size;
	if (size)
		notice("initial content: 0x%jx bytes read from %s", (intmax_t)size, path);
}

static size_t parse_size(const char *s, const char *opt)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);

	if (errno || end == s)
		die_setup("bad value for %s: %s", opt, s);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end)
		die_setup("bad value for %s: %s", opt, s);
	return v;
}

static void usage(FILE *out)
{
	fprintf(out,
"usage: strata-fsx [-N ops] [-S seed] [-l maxlen] [-o maxop] [-M] [-D] [-q] [-v]\n"
"                  [-d DUMPFILE] FILE\n"
"  -N ops      number of random operations (default 10000)\n"
"  -S seed     random seed (default 1; 0 picks one from the clock)\n"
"  -l maxlen   largest file size the operations reach (default 256K; grows to\n"
"              the size of an existing FILE)\n"
"  -o maxop    largest length of one read/write/fallocate (default 64K)\n"
"  -M          no mmap reads or writes\n"
"  -D          also O_DIRECT reads and writes (4096-aligned) through a second fd\n"
"  -q          quiet: only failures and the summary line\n"
"  -v          print every operation\n"
"  -d FILE     at the end, write the model (the expected content) to FILE\n"
"Sizes take a K, M or G suffix.  Exit: 0 ok, 1 mismatch or I/O error, 2 setup.\n");
}

int main(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "N:S:l:o:MDqvd:h")) != -1) {
		switch (c) {
		case 'N': nops = parse_size(optarg, "-N"); break;
		case 'S': seed = parse_size(optarg, "-S"); break;
		case 'l': maxlen = parse_size(optarg, "-l"); break;
		case 'o': maxop = parse_size(optarg, "-o"); break;
		case 'M': use_mmap = false; break;
		case 'D': use_dio = true; break;
		case 'q': quiet = true; break;
		case 'v': verbose = true; break;
		case 'd': dump_path = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	path = argv[optind];
	if (maxlen == 0 || maxop == 0)
		die_setup("-l and -o must be positive");
	if (seed == 0)
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
	rng = seed;
	pagesize = sysconf(_SC_PAGESIZE);

	read_initial();
	if (maxop > maxlen)
		maxop = maxlen;
	if (!use_mmap)
		disabled[OP_MAPREAD] = disabled[OP_MAPWRITE] = true;
	if (!use_dio)
		disabled[OP_DREAD] = disabled[OP_DWRITE] = true;

	rbuf = malloc(maxop > VERIFY_CHUNK ? maxop : VERIFY_CHUNK);
	wbuf = malloc(maxop);
	dbuf_len = (maxop + DIO_ALIGN - 1) / DIO_ALIGN * DIO_ALIGN;
	if (!rbuf || !wbuf || posix_memalign((void **)&dbuf, DIO_ALIGN, dbuf_len))
		die_setup("out of memory");

	open_main();
	open_direct();
	check_size();
	notice("seed %" PRIu64 ", %lu ops, maxlen 0x%zx, maxop 0x%zx%s%s", seed, nops,
	       maxlen, maxop, use_mmap ? ", mmap" : "", use_dio ? ", O_DIRECT" : "");

	for (opnum = 1; opnum <= nops; opnum++) {
		/* The first operation writes, and then everything is read back:
		 * a copy-up triggered by it is checked in full. */
		run_op(opnum == 1 ? OP_WRITE : pick_op());
		if (opnum == 1)
			verify_all("verify after the first write");
	}
	opnum = nops;

	/* Final check through a fresh descriptor. */
	cur = NULL;
	if (dfd >= 0)
		close(dfd);
	if (close(fd) < 0)
		fail("final close: %s", strerror(errno));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("final open: %s", strerror(errno));
	verify_all("final verify");
	close(fd);

	if (dump_path) {
		int o = open(dump_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (o < 0)
			die_setup("cannot create %s: %s", dump_path, strerror(errno));
		pwrite_full(o, model, size, 0, "writing the dump");
		if (close(o) < 0)
			die_setup("closing %s: %s", dump_path, strerror(errno));
	}
	if (!quiet) {
		printf("strata-fsx: op counts:");
		for (int i = 0; i < OP_COUNT; i++)
			printf(" %s=%lu%s", optab[i].name, counts[i],
			       disabled[i] ? "(disabled)" : "");
		printf("\n");
	}
	printf("strata-fsx: %lu ops, 0 mismatches, seed %" PRIu64 "\n", nops, seed);
	return 0;
}
