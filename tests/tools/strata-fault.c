/*
 * strata-fault: run a command with chosen system calls failing.
 *
 *   strata-fault [-v] RULE[,RULE...] [RULE...] -- COMMAND [ARG...]
 *
 *   RULE  = NAME[,NAME...]=ERRNO      every call of NAME fails with ERRNO
 *         | NAME[ARG&MASK==VALUE]=ERRNO   only calls whose argument number
 *                                     ARG (0-5, low 32 bits), masked with
 *                                     MASK, equals VALUE
 *   NAME  = a system call name from the table below, or #NUMBER
 *   ERRNO = a name (EPERM, ENOSYS, EOPNOTSUPP, ...) or a number
 *
 * Examples:
 *   strata-fault mknodat,mknod=EPERM -- stratafs ...
 *   strata-fault 'mknodat[2&0170000==0020000]=EPERM' -- ...  (char devices
 *                                                        only, as a daemon
 *                                                        without CAP_MKNOD)
 *   strata-fault openat2=ENOSYS -- ...
 *   strata-fault setxattr,lsetxattr,fsetxattr=EOPNOTSUPP -- ...
 *
 * How: a seccomp filter (classic BPF, no libseccomp) installed with
 * PR_SET_NO_NEW_PRIVS, then execvp.  The filter is inherited by every
 * child and survives exec, so a daemon that forks keeps it; it cannot be
 * removed.  The filter first checks that the call is a native x86_64 one:
 * anything else (i386 or x32 calls, whose numbers mean other calls) kills
 * the process, so that a fault can never be silently bypassed.  The
 * calls never reach the kernel: the filter answers with -ERRNO.
 *
 * Exit status: that of COMMAND, or 125 for bad usage or a failure to set
 * the filter up, 127 if COMMAND cannot be run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#if !defined(__x86_64__)
#error "strata-fault knows the x86_64 system call table only"
#endif

#define MAX_INSNS 4000

/* The calls a filesystem daemon makes that a test may want to fail. */
static const struct {
	const char *name;
	int nr;
} calls[] = {
#define C(n) { #n, __NR_##n }
	C(open), C(openat), C(creat), C(read), C(pread64), C(readv),
	C(preadv), C(preadv2), C(write), C(pwrite64), C(writev), C(pwritev),
	C(pwritev2), C(lseek), C(close), C(fstat), C(newfstatat), C(lstat),
	C(stat), C(statx), C(mknod), C(mknodat), C(mkdir), C(mkdirat),
	C(rmdir), C(unlink), C(unlinkat), C(rename), C(renameat),
	C(renameat2), C(link), C(linkat), C(symlink), C(symlinkat),
	C(readlink), C(readlinkat), C(chmod), C(fchmod), C(fchmodat),
	C(chown), C(fchown), C(lchown), C(fchownat), C(utimensat),
	C(truncate), C(ftruncate), C(fallocate), C(fsync), C(fdatasync),
	C(syncfs), C(sync_file_range), C(copy_file_range), C(sendfile),
	C(splice), C(ioctl), C(flock), C(fcntl), C(getdents64),
	C(setxattr), C(lsetxattr), C(fsetxattr), C(getxattr), C(lgetxattr),
	C(fgetxattr), C(listxattr), C(llistxattr), C(flistxattr),
	C(removexattr), C(lremovexattr), C(fremovexattr),
	C(name_to_handle_at), C(open_by_handle_at), C(statfs), C(fstatfs),
	C(faccessat), C(mmap), C(mount), C(umount2), C(dup), C(dup3),
#ifdef __NR_openat2
	C(openat2),
#else
	{ "openat2", 437 },
#endif
#ifdef __NR_faccessat2
	C(faccessat2),
#endif
#ifdef __NR_setxattrat
	C(setxattrat), C(getxattrat), C(listxattrat), C(removexattrat),
#else
	/* Linux 6.13: the xattr calls with an *at form */
	{ "setxattrat", 463 }, { "getxattrat", 464 },
	{ "listxattrat", 465 }, { "removexattrat", 466 },
#endif
#undef C
};

static struct sock_filter prog[MAX_INSNS];
static unsigned n_insns;
static int verbose;

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "strata-fault: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(125);
}

static void emit(struct sock_filter f)
{
	if (n_insns >= MAX_INSNS)
		die("too many rules%s", "");
	prog[n_insns++] = f;
}

static int parse_errno(const char *s)
{
	char *end;
	long v = strtol(s, &end, 0);

	if (*s && *end == '\0' && v > 0 && v < 4096)
		return (int)v;
	for (int e = 1; e < 4096; e++) {
		const char *n = strerrorname_np(e);

		if (n && strcmp(n, s) == 0)
			return e;
	}
	die("unknown errno: %s", s);
	return 0;
}

static int parse_call(const char *s)
{
	char *end;

	if (s[0] == '#') {
		long v = strtol(s + 1, &end, 0);

		if (s[1] && *end == '\0' && v >= 0 && v < 1024)
			return (int)v;
		die("bad system call number: %s", s);
	}
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++)
		if (strcmp(calls[i].name, s) == 0)
			return calls[i].nr;
	die("unknown system call (use #NUMBER): %s", s);
	return -1;
}

static unsigned long parse_num(const char *s, const char *rule)
{
	char *end;
	unsigned long v = strtoul(s, &end, 0);

	if (!*s || *end)
		die("bad number in rule %s", rule);
	if (v > 0xffffffffUL)
		die("argument values are 32-bit: %s", rule);
	return v;
}

/* One call, maybe with a condition on an argument, fails with @err. */
static void add_rule(const char *call, int err, const char *rule)
{
	char name[64];
	const char *br = strchr(call, '[');
	unsigned long mask = 0xffffffffUL, val = 0;
	int arg = -1, nr;

	if (br) {
		char cond[128], *amp, *eq;

		if (br - call >= (long)sizeof(name) ||
		    strlen(br) >= sizeof(cond) || call[strlen(call) - 1] != ']')
			die("bad condition in rule %s", rule);
		memcpy(name, call, br - call);
		name[br - call] = '\0';
		strcpy(cond, br + 1);
		cond[strlen(cond) - 1] = '\0';
		eq = strstr(cond, "==");
		if (eq == NULL)
			die("condition without == in rule %s", rule);
		*eq = '\0';
		amp = strchr(cond, '&');
		if (amp) {
			*amp = '\0';
			mask = parse_num(amp + 1, rule);
		}
		arg = (int)parse_num(cond, rule);
		if (arg > 5)
			die("argument number above 5 in rule %s", rule);
		val = parse_num(eq + 2, rule);
	} else {
		if (strlen(call) >= sizeof(name))
			die("bad rule %s", rule);
		strcpy(name, call);
	}
	nr = parse_call(name);
	if (verbose)
		fprintf(stderr, "strata-fault: %s (%d)%s -> %s\n", name, nr,
			arg >= 0 ? " (with a condition)" : "",
			strerrorname_np(err));

	emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					  offsetof(struct seccomp_data, nr)));
	if (arg < 0) {
		emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
						  nr, 0, 1));
	} else {
		/* args[] are 64-bit, little-endian: the low word first */
		emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
						  nr, 0, 4));
		emit((struct sock_filter)BPF_STMT(
			BPF_LD | BPF_W | BPF_ABS,
			offsetof(struct seccomp_data, args) + 8 * arg));
		emit((struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K,
						  (uint32_t)mask));
		emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
						  (uint32_t)val, 0, 1));
	}
	emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
					  SECCOMP_RET_ERRNO |
						  (err & SECCOMP_RET_DATA)));
}

/* "a,b[1&2==3],c=EPERM": the calls before the last '=' share the errno. */
static void add_spec(const char *spec)
{
	char *copy = strdup(spec), *eq, *p, *tok;
	int err;

	if (copy == NULL)
		die("out of memory%s", "");
	eq = strrchr(copy, '=');
	if (eq == NULL || eq == copy || eq[-1] == '=')
		die("rule without =ERRNO: %s", spec);
	*eq = '\0';
	err = parse_errno(eq + 1);
	/* split on commas outside brackets */
	for (p = tok = copy;; p++) {
		if (*p == '[') {
			p = strchr(p, ']');
			if (p == NULL)
				die("unclosed [ in rule %s", spec);
			continue;
		}
		if (*p == ',' || *p == '\0') {
			char end = *p;

			*p = '\0';
			if (*tok)
				add_rule(tok, err, spec);
			if (end == '\0')
				break;
			tok = p + 1;
		}
	}
	free(copy);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: strata-fault [-v] CALL[,CALL...]=ERRNO [...] -- "
		"COMMAND [ARG...]\n"
		"       CALL = NAME, NAME[ARG&MASK==VALUE] or #NUMBER\n");
	exit(125);
}

int main(int argc, char **argv)
{
	struct sock_fprog fprog;
	int i = 1, rules = 0;

	if (i < argc && strcmp(argv[i], "-v") == 0) {
		verbose = 1;
		i++;
	}
	/* native x86_64 calls only; x32 numbers have bit 30 set */
	emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					  offsetof(struct seccomp_data, arch)));
	emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
					  AUDIT_ARCH_X86_64, 1, 0));
	emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
					  SECCOMP_RET_KILL_PROCESS));
	emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					  offsetof(struct seccomp_data, nr)));
	emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K,
					  0x40000000, 0, 1));
	emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
					  SECCOMP_RET_KILL_PROCESS));
	for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (argv[i][0] == '-')
			usage();
		add_spec(argv[i]);
		rules++;
	}
	if (i >= argc || i + 1 >= argc || rules == 0)
		usage();
	emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
					  SECCOMP_RET_ALLOW));

	fprog.len = (unsigned short)n_insns;
	fprog.filter = prog;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) < 0)
		die("PR_SET_SECCOMP: %s", strerror(errno));
	execvp(argv[i + 1], argv + i + 1);
	fprintf(stderr, "strata-fault: %s: %s\n", argv[i + 1],
		strerror(errno));
	return 127;
}
