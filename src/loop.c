// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The request loop: one thread while requests come one at a time, more
 * while they wait.
 *
 * libfuse's multithreaded loop keeps every worker blocked in read() on
 * /dev/fuse, and the kernel hands each request to the worker that has
 * waited longest, so a serial workload (ls -l, a build's stat storm, tar)
 * wakes a different, cache-cold thread for every request: measured here,
 * twice the daemon's CPU time per lookup of a single-threaded loop.  A
 * single thread, though, serializes everything behind one slow request
 * (a copy-up, a cold read, a blocking lock).
 *
 * So threads take turns as "readers" (blocked in receive, or serving a
 * request they received), and:
 *   - a reader serves the request it got itself, then reads again: the
 *     serial case costs what the single-threaded loop costs;
 *   - before serving a request that may wait indefinitely (a lock held
 *     by another process), a lone reader makes sure another thread is
 *     reading;
 *   - a watcher (the thread that called strata_loop_run) looks every
 *     2 ms while requests flow: requests pending, no thread blocked in
 *     receive and none received since the last look mean the readers
 *     are all stuck, and it adds one (a quick request that turned slow,
 *     say a lookup on a cold disk);
 *   - a reader that finds others reading and nothing pending leaves the
 *     role and sleeps until it is needed;
 *   - when requests stop (none for a second), idle threads end, and a
 *     tick later the watcher hands the memory freed meanwhile back to
 *     the system (malloc_trim; ops.c trims during a long stream of
 *     forgets, this catches the rest).  Each thread that had ever served
 *     used to keep its stack, buffers and pipe: the daemon's RSS after
 *     the kernel forgot a 51,000-file tree grew by 0.3-1.8 MiB over four
 *     walks, more when a slow disk had added threads; now it stays level
 *     (parallel walks: 6.2-7.2 MiB after each forget before, 4.0-4.3
 *     after; without this trim, 5.4-6.0).
 * At most max_threads threads exist.
 *
 * A thread that must stay alert to be woken for the reader role waits on
 * lp->cond; "roles" counts readers, including those being woken.
 */
#include <fcntl.h>
#include <linux/fuse.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "stratafs/stratafs.h"

#define MAX_ARENAS 4		/* malloc arenas, see limit_arenas() */
#define WATCH_TICK_US 2000	/* while requests flow */
#define WATCH_IDLE_US 200000	/* while nothing happens */
#define ACTIVE_US 1000000	/* "requests flow": one in the last second */

struct strata_loop {
	struct fuse_session *se;
	int fd;
	int max_threads;
	sigset_t block; /* the exit signals, left to the watcher */

	GMutex lock;
	GCond cond;	  /* idle threads wait for the reader role */
	GCond tick;	  /* the watcher's timer */
	pthread_t *threads; /* nthreads of them, protected by lock */
	int nthreads;
	int idle;	  /* waiting on cond, protected by lock */
	int wake;	  /* reader roles handed to idle threads, by lock */
	int retire;	  /* idle threads asked to end, by lock */
	bool exiting;	  /* protected by lock */
	int error;	  /* first receive error, by lock */

	int readers;	  /* atomic: threads holding the reader role */
	int blocked;	  /* atomic: threads inside receive */
	int64_t last_req; /* atomic: monotonic time of the last request */
	uint64_t nreq;	  /* atomic: requests received */
	int spin_us;	  /* see receive() */
};

/* A request that may wait for as long as another process likes (a lock
 * held elsewhere): before serving it, a lone reader makes sure someone
 * else reads.  Every other request is served by the reader that got it;
 * if it turns out slow, the watcher adds a reader within a tick.  (Handing
 * off before every write or create cost two thread switches a request:
 * untar spent most of its time in futex calls.) */
static bool may_block(const struct fuse_buf *buf)
{
	const struct fuse_in_header *in;

	if ((buf->flags & FUSE_BUF_IS_FD) || buf->size < sizeof(*in))
		return false; /* spliced: a large write */
	in = buf->mem;
	return in->opcode == FUSE_SETLKW;
}

static bool pending(struct strata_loop *lp)
{
	struct pollfd p = { .fd = lp->fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void *worker(void *data);

/* Give the reader role to an idle thread, or to a new one.  Called with
 * lp->lock held; the role is counted before the thread wakes. */
static void add_reader_locked(struct strata_loop *lp)
{
	sigset_t old;
	int r;

	if (lp->exiting)
		return;
	if (lp->idle > lp->wake) {
		lp->wake++;
		__atomic_add_fetch(&lp->readers, 1, __ATOMIC_SEQ_CST);
		g_cond_signal(&lp->cond);
		return;
	}
	if (lp->nthreads >= lp->max_threads)
		return;
	__atomic_add_fetch(&lp->readers, 1, __ATOMIC_SEQ_CST);
	pthread_sigmask(SIG_BLOCK, &lp->block, &old);
	r = pthread_create(&lp->threads[lp->nthreads], NULL, worker, lp);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		__atomic_sub_fetch(&lp->readers, 1, __ATOMIC_SEQ_CST);
		strata_warn("cannot start a worker thread: %s", g_strerror(r));
		return;
	}
	lp->nthreads++;
}

static void add_reader(struct strata_loop *lp)
{
	g_mutex_lock(&lp->lock);
	add_reader_locked(lp);
	g_mutex_unlock(&lp->lock);
}

/* Take the calling thread out of lp->threads (lock held). */
static void drop_thread_locked(struct strata_loop *lp)
{
	pthread_t self = pthread_self();

	for (int i = 0; i < lp->nthreads; i++) {
		if (pthread_equal(lp->threads[i], self)) {
			lp->threads[i] = lp->threads[--lp->nthreads];
			return;
		}
	}
}

/* Leave the reader role (surplus) and sleep until handed it again.
 * Returns false when the thread is to end: the loop ends, or the thread
 * was retired (it has left lp->threads and is detached: nobody joins
 * it). */
static bool rest(struct strata_loop *lp)
{
	bool go = true;

	g_mutex_lock(&lp->lock);
	/* readers changes under lock only: two surplus readers that saw
	 * each other must not both leave, or nobody would read, and once
	 * requests had stopped for a second the watcher would not look */
	if (__atomic_load_n(&lp->readers, __ATOMIC_SEQ_CST) <= 1) {
		g_mutex_unlock(&lp->lock);
		return true;
	}
	__atomic_sub_fetch(&lp->readers, 1, __ATOMIC_SEQ_CST);
	lp->idle++;
	for (;;) {
		if (lp->exiting) {
			go = false;
			break;
		}
		if (lp->wake > 0) {
			lp->wake--;
			break;
		}
		if (lp->retire > 0) {
			lp->retire--;
			drop_thread_locked(lp);
			pthread_detach(pthread_self());
			go = false;
			break;
		}
		g_cond_wait(&lp->cond, &lp->lock);
	}
	lp->idle--;
	g_mutex_unlock(&lp->lock);
	return go;
}

static void end_loop(struct strata_loop *lp, int err)
{
	g_mutex_lock(&lp->lock);
	if (!lp->exiting && err < 0 && err != -ENODEV)
		lp->error = err;
	lp->exiting = true;
	g_cond_broadcast(&lp->cond);
	g_cond_signal(&lp->tick);
	g_mutex_unlock(&lp->lock);
	fuse_session_exit(lp->se);
}

/* The next request.  With spin_us (option spin=), a reader that finds
 * the device empty right after serving a request polls it for that long
 * before it sleeps in poll(): a caller that sends its next request within
 * microseconds (tar, cp -r, rm -rf) then finds the daemon awake, without
 * the wake-up of a sleeping thread on another CPU, which costs more than
 * the request itself in a VM (quick benchmark, 50 us: creates 492 -> 366
 * ms, untar 1.28 -> 0.88 s).  An idle daemon does not spin. */
static int receive(struct strata_loop *lp, struct fuse_buf *buf)
{
	gint64 until = 0;

	for (;;) {
		int r = fuse_session_receive_buf(lp->se, buf);
		struct pollfd p = { .fd = lp->fd, .events = POLLIN };
		gint64 now;

		if (r != -EAGAIN || lp->spin_us <= 0)
			return r;
		now = g_get_monotonic_time();
		if (until == 0)
			until = now + lp->spin_us;
		if (now < until)
			continue;
		poll(&p, 1, -1);
	}
}

static void free_buf(void *p)
{
	free(((struct fuse_buf *)p)->mem);
}

static void *worker(void *data)
{
	struct strata_loop *lp = data;
	struct fuse_buf buf;
	int r;

	/* cancelled (at the end) only while blocked in receive */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	memset(&buf, 0, sizeof(buf));
	pthread_cleanup_push(free_buf, &buf);
	for (;;) {
		if (fuse_session_exited(lp->se))
			break;
		__atomic_add_fetch(&lp->blocked, 1, __ATOMIC_SEQ_CST);
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		r = receive(lp, &buf);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		__atomic_sub_fetch(&lp->blocked, 1, __ATOMIC_SEQ_CST);
		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r <= 0) {
			end_loop(lp, r);
			break;
		}
		__atomic_store_n(&lp->last_req, g_get_monotonic_time(),
				 __ATOMIC_RELAXED);
		__atomic_add_fetch(&lp->nreq, 1, __ATOMIC_RELAXED);
		if (__atomic_load_n(&lp->readers, __ATOMIC_SEQ_CST) == 1 &&
		    may_block(&buf))
			add_reader(lp);
		fuse_session_process_buf(lp->se, &buf);
		if (__atomic_load_n(&lp->readers, __ATOMIC_SEQ_CST) > 1 &&
		    !pending(lp) && !rest(lp))
			break;
	}
	pthread_cleanup_pop(1);
	return NULL;
}

/* glibc gives threads their own malloc arenas, up to 8 per CPU, and each
 * arena keeps its own free memory: RSS after the kernel forgot a tree grew
 * with every reader thread that had ever served (walk and forget of
 * 51,000 files, 4 rounds: 4.0 to 5.4 MiB with 5 threads; with 2 arenas
 * flat at 3.8-4.0 MiB).  So as many arenas as CPUs, at most MAX_ARENAS.
 * The mmap threshold is fixed too: glibc raises it each time a mapped
 * block is freed, and a retired thread's 1 MiB request buffer then came
 * back inside the heap, pinning pages (main arena in use 213 KiB -> 1.1
 * MiB between two forgets; with the threshold fixed, flat).  Unless the
 * user tuned glibc's malloc.  Before any thread starts. */
static void limit_arenas(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (getenv("MALLOC_ARENA_MAX") || getenv("GLIBC_TUNABLES"))
		return;
	mallopt(M_ARENA_MAX, (int)CLAMP(n, 1, MAX_ARENAS));
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
}

int strata_loop_run(struct fuse_session *se, int max_threads, int spin_us)
{
	struct strata_loop lp;
	uint64_t seen = 0;
	bool was_active = false, trim = false;
	int n;

	limit_arenas();
	memset(&lp, 0, sizeof(lp));
	lp.se = se;
	lp.fd = fuse_session_fd(se);
	lp.spin_us = spin_us;
	/* reads that find nothing return at once, to spin on; the sleep
	 * is poll()'s (receive) */
	if (lp.spin_us > 0)
		fcntl(lp.fd, F_SETFL, fcntl(lp.fd, F_GETFL) | O_NONBLOCK);
	lp.max_threads = max_threads > 0 ? max_threads : 1;
	lp.threads = g_new0(pthread_t, lp.max_threads);
	g_mutex_init(&lp.lock);
	g_cond_init(&lp.cond);
	g_cond_init(&lp.tick);
	sigemptyset(&lp.block);
	sigaddset(&lp.block, SIGTERM);
	sigaddset(&lp.block, SIGINT);
	sigaddset(&lp.block, SIGHUP);
	sigaddset(&lp.block, SIGQUIT);

	g_mutex_lock(&lp.lock);
	add_reader_locked(&lp);
	while (!lp.exiting && !fuse_session_exited(se)) {
		gint64 now = g_get_monotonic_time();
		bool active = now - __atomic_load_n(&lp.last_req,
						    __ATOMIC_RELAXED) <
			      ACTIVE_US;

		if (active) {
			lp.retire = 0;
		} else if (was_active) {
			/* requests stopped: the idle threads end */
			lp.retire = lp.idle - lp.wake;
			if (lp.retire > 0)
				g_cond_broadcast(&lp.cond);
			trim = true;
		} else if (trim) {
			/* a tick later, when they have gone */
			trim = false;
			g_mutex_unlock(&lp.lock);
			malloc_trim(0);
			g_mutex_lock(&lp.lock);
		}
		was_active = active;

		g_cond_wait_until(&lp.tick, &lp.lock,
				  now + (active ? WATCH_TICK_US
						: WATCH_IDLE_US));
		/* requests wait, nobody reads and none was taken since the
		 * last tick: all readers are stuck on slow requests */
		if (active && !lp.exiting &&
		    __atomic_load_n(&lp.blocked, __ATOMIC_SEQ_CST) == 0 &&
		    __atomic_load_n(&lp.nreq, __ATOMIC_RELAXED) == seen &&
		    pending(&lp))
			add_reader_locked(&lp);
		seen = __atomic_load_n(&lp.nreq, __ATOMIC_RELAXED);
	}
	lp.exiting = true;
	g_cond_broadcast(&lp.cond);
	n = lp.nthreads;
	g_mutex_unlock(&lp.lock);

	/* threads blocked in receive leave by cancellation, the others
	 * see exiting; no thread is started any more */
	for (int i = 0; i < n; i++)
		pthread_cancel(lp.threads[i]);
	for (int i = 0; i < n; i++)
		pthread_join(lp.threads[i], NULL);
	g_free(lp.threads);
	g_cond_clear(&lp.cond);
	g_cond_clear(&lp.tick);
	g_mutex_clear(&lp.lock);
	return lp.error;
}
