/*
 * The reactor: one per pool, started by the pool's first sx_io_register, with no thread of its
 * own. It is an epoll set holding every registered fd once, edge-triggered (EPOLLIN | EPOLLOUT |
 * EPOLLRDHUP | EPOLLET), and an eventfd (level-triggered) that wakes a poller that sleeps. The
 * pool's workers poll it through the hooks it registers (exec/exec.h, struct sx__pool_hooks): a
 * worker about to park takes the poller role and sleeps in epoll_wait; busy and searching
 * workers poll without sleeping (exec/worker.c says when). A poll records each event in its
 * registration's readiness word and claims the waits it makes ready, queueing their tasks on the
 * poller's own ring, which the poller then runs itself.
 *
 * Waits and their ends (the slot's state machine: io/io.h). Every end is one CAS on the slot's
 * state word, so readiness, a breaker, the connect timer, the shutdown and the deregistration
 * race safely and exactly one of them wins; the winner queues the slot's task. A starter that is
 * not one of the pool's workers holds the pool's submission section while it may queue
 * (sx__io_enter), so its queueing cannot be refused; the callbacks of breakers and timers and the
 * deregistration queue as any outside thread does, and when the pool no longer takes tasks they
 * run the end themselves (sx__io_deliver). The shutdown closes every slot under the reactor's
 * lock and queues the waits it claimed with sx__inject_stopping, so SX_DRAIN runs them and
 * SX_CANCEL hands them to their cancel callback, both with -ESHUTDOWN.
 *
 * Lifetime. io->live counts what may still touch a registration: each operation from its start
 * until its callback returned, and each breaker or timer callback registered for one until it
 * is withdrawn or has finished. sx_io_deregister removes the fd from the set, closes both slots
 * (claiming a pending wait with -ECANCELED), waits for live to fall to the callbacks of io on
 * its own thread's stack (a thread-local list of frames, so a callback may deregister its own
 * registration), unlinks it and retires it to the pool's epoch domain: a poller holds a read
 * section from before its epoll_wait until it has dispatched the batch, so an event returned
 * just before EPOLL_CTL_DEL never reaches freed memory; and a thread that arms or queues a wait
 * holds one until it is done with io (sx__io_enter), since that wait may end, and its callback
 * deregister io, before the starter has returned. A sleeping poller holds its section while it
 * sleeps; a thread whose retirements pile up (SX__IO_KICK) wakes it so they can go.
 *
 * Locks: r->lock, a cold-path mutex, guards the list of registrations (register, deregister,
 * the shutdown's walk, destroy). Nothing on a wait, a poll, a claim or a clear takes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io.h"

#define SX__IO_BATCH 64u   /* events one epoll_wait returns at most */
#define SX__IO_KICK 64u    /* retirements pending on a thread before it wakes a sleeping poller */

struct sx__reactor {
	sx_pool *pool;
	int epfd;
	int evfd;
	SX__ALIGNED uint32_t sleeping;  /* a poller sleeps in epoll_wait (a hint for retirements) */
	SX__ALIGNED pthread_mutex_t lock; /* cold: the list, stopping (see the top of this file) */
	sx_io *list;
	bool stopping;                  /* the shutdown closed every slot: registering fails */
};

/* ---- frames: the callbacks of registrations running on this thread ------------------------ */

struct sx__io_frame {
	sx_io *io;
	struct sx__io_frame *up;
	bool dereg;                     /* io was deregistered from inside: do not touch it */
};

static __thread struct sx__io_frame *frames;

static unsigned frames_of(const sx_io *io)
{
	unsigned n = 0;

	for (const struct sx__io_frame *f = frames; f != NULL; f = f->up)
		n += f->io == io;
	return n;
}

/* ---- the end of a wait -------------------------------------------------------------------- */

/* Run the end of s's operation with result: a plain wait's fn, or a helper's step. Its count
 * goes when it ends, unless the callback deregistered io. */
static void slot_exec(struct sx__io_slot *s, int result)
{
	sx_io *io = s->io;
	struct sx__io_frame f = { io, frames, false };
	bool ended;

	frames = &f;
	if (s->step == NULL) {
		sx_io_fn fn = s->fn;
		void *arg = s->arg;

		sx__io_op_end(io, s);
		fn(io, result, arg);
		ended = true;
	} else {
		ended = s->step(io, s, result);
	}
	frames = f.up;
	if (ended && !f.dereg)
		sx__io_live_dec(io);
}

static void slot_run(sx_task *t)
{
	struct sx__io_slot *s = SX_CONTAINER_OF(t, struct sx__io_slot, task);

	slot_exec(s, s->result);
}

/* SX_CANCEL discarded the task: the wait ends with -ESHUTDOWN whatever had claimed it, and a
 * helper's result found in its starter is dropped too (the pool is gone). */
static void slot_cancel(sx_task *t, int err)
{
	struct sx__io_slot *s = SX_CONTAINER_OF(t, struct sx__io_slot, task);

	(void)err;
	s->has_final = false;
	slot_exec(s, -ESHUTDOWN);
}

/* ---- entries and queueing ---------------------------------------------------------------- */

int sx__io_enter(sx_pool *pool, struct sx__io_entry *e)
{
	int rc = 0;

	e->pool = pool;
	e->w = sx__worker_of(pool);
	if (e->w != NULL) {
		e->c = sx__worker_cache(e->w);
	} else if ((e->c = sx__remote_enter(pool, &rc)) == NULL) {
		return rc;
	}
	sx__epoch_begin(e->c);
	return 0;
}

void sx__io_leave(struct sx__io_entry *e)
{
	sx__epoch_end(e->c);
	if (e->w == NULL)
		sx__remote_leave(e->c);
}

void sx__io_queue(struct sx__io_entry *e, struct sx__io_slot *s)
{
	if (e->w != NULL)
		sx__spawn_local(e->w, &s->task);
	else
		sx__inject(e->pool, e->c, &s->task);
}

void sx__io_deliver(sx_io *io, struct sx__io_slot *s)
{
	struct sx__io_entry e;
	int rc = sx__io_enter(io->pool, &e);

	if (rc == 0) {
		sx__io_queue(&e, s);
		sx__io_leave(&e);
		return;
	}
	/* Only claims that end a wait without readiness come here from outside the pool. */
	SX__ASSERT(s->result < 0);
	s->has_final = false;
	slot_exec(s, rc == -ESHUTDOWN ? -ESHUTDOWN : s->result);
}

/* ---- the operation's life ----------------------------------------------------------------- */

/* The state after a change of phase: SHUT and DEREG stay, TRIP goes (its owner has acted on
 * it or moved past it), the generation moves on. */
static uint32_t with_phase(uint32_t st, uint32_t phase)
{
	return ((st + SX__IO_GEN_ONE) & ~(SX__IO_PHASE | SX__IO_TRIP)) | phase;
}

/* The flag's refusal: -ECANCELED (deregistration), -ESHUTDOWN (shutdown), or 0. */
static int flag_code(uint32_t st)
{
	if (st & SX__IO_DEREG)
		return -ECANCELED;
	return (st & SX__IO_SHUT) ? -ESHUTDOWN : 0;
}

int sx__io_op_begin(sx_io *io, struct sx__io_slot *s)
{
	uint32_t st = ck_pr_load_32(&s->state);

	for (;;) {
		int rc = flag_code(st);

		if (rc != 0)
			return rc;
		if ((st & SX__IO_PHASE) != SX__IO_IDLE)
			return -EBUSY;
		if (ck_pr_cas_32_value(&s->state, st, with_phase(st, SX__IO_SETUP), &st))
			break;
	}
	sx__io_live_inc(io);
	s->cb = NULL;
	s->timer_on = false;
	s->has_final = false;
	return 0;
}

bool sx__io_trip(struct sx__io_slot *s, int code,
    bool (*mine)(struct sx__io_slot *s, const void *key), const void *key)
{
	uint32_t st = ck_pr_load_32(&s->state);

	for (;;) {
		uint32_t phase = st & SX__IO_PHASE;

		ck_pr_fence_load(); /* the state before the operation's fields it guards */
		if (phase == SX__IO_IDLE || !mine(s, key))
			return false;
		if (phase == SX__IO_ARMED) {
			if (sx__io_claim(s, st, code))
				return true;
		} else {
			if (st & SX__IO_TRIP)
				return false;
			ck_pr_store_int(&s->trip_code, code);
			if (ck_pr_cas_32(&s->state, st, st | SX__IO_TRIP))
				return false;
		}
		st = ck_pr_load_32(&s->state);
	}
}

static bool uses_breaker(struct sx__io_slot *s, const void *b)
{
	return ck_pr_load_ptr(&s->stop) == b;
}

/* The breaker tripped: end the operation if it still uses b (one that began since with another
 * breaker is not this callback's; one that uses b again may end with b's code, which is what it
 * would read). Runs on strix's notifier thread, while b is alive. */
static void stop_fired(sx_breaker *b, void *arg)
{
	struct sx__io_slot *s = arg;
	sx_io *io = s->io;

	if (sx__io_trip(s, sx_breaker_err(b), uses_breaker, b)) {
		sx__io_live_dec(io); /* this callback's; the claimed operation keeps io */
		sx__io_deliver(io, s);
		return;
	}
	sx__io_live_dec(io);
}

int sx__io_op_stop_on(sx_io *io, struct sx__io_slot *s, sx_breaker *stop)
{
	int rc;

	if (stop == NULL)
		return 0;
	ck_pr_store_ptr(&s->stop, stop);
	sx__io_live_inc(io); /* the callback's, which may run before on_done returns */
	rc = sx_breaker_on_done(stop, stop_fired, s, &s->cb);
	if (rc == 0)
		return 0;
	sx__io_live_dec(io);
	s->cb = NULL;
	return rc == -EALREADY ? 1 : rc;
}

void sx__io_op_fire(struct sx__io_slot *s, int result)
{
	uint32_t st = ck_pr_load_32(&s->state);

	SX__ASSERT((st & SX__IO_PHASE) == SX__IO_SETUP);
	s->result = result;
	/* Only flags change under the starter: keep what a shutdown or deregistration set. */
	while (!ck_pr_cas_32_value(&s->state, st, with_phase(st, SX__IO_FIRED), &st))
		;
}

bool sx__io_claim(struct sx__io_slot *s, uint32_t armed, int result)
{
	SX__ASSERT((armed & SX__IO_PHASE) == SX__IO_ARMED);
	if (!ck_pr_cas_32(&s->state, armed, with_phase(armed, SX__IO_FIRED)))
		return false;
	s->result = result;
	return true;
}

static void queue_claimed(sx_io *io, struct sx__io_slot *s, struct sx__io_entry *e)
{
	if (e != NULL)
		sx__io_queue(e, s);
	else
		sx__io_deliver(io, s);
}

int sx__io_op_arm(sx_io *io, struct sx__io_slot *s, struct sx__io_entry *e)
{
	uint32_t st, next;
	sx__tcache *c = NULL;
	bool trip;
	int rc = 0, mask;

	/* Once armed (or fired) the wait may end elsewhere at any moment, and its callback may
	 * deregister io: from the CAS on, io is read inside a read section of the pool's epoch (a
	 * starter's entry holds one; a step, which runs on a worker, opens its own first). */
	if (e == NULL) {
		sx__worker *w = sx__worker_of(io->pool);

		SX__ASSERT(w != NULL);
		c = sx__worker_cache(w);
		sx__epoch_begin(c);
	}
	st = ck_pr_load_32(&s->state);
	do {
		if ((rc = flag_code(st)) != 0)
			goto out;
		trip = (st & SX__IO_TRIP) != 0;
		next = with_phase(st, trip ? SX__IO_FIRED : SX__IO_ARMED);
	} while (!ck_pr_cas_32_value(&s->state, st, next, &st));
	if (trip) {
		s->result = ck_pr_load_int(&s->trip_code);
		queue_claimed(io, s, e);
		goto out;
	}
	/* The arming CAS before this load; the poller's readiness RMW before its load of the
	 * state: whoever comes second sees the other. */
	mask = sx__io_ready_mask(ck_pr_load_64(&io->ready), s->dir);
	if (mask != 0 && sx__io_claim(s, next, mask))
		queue_claimed(io, s, e);
out:
	if (c != NULL)
		sx__epoch_end(c);
	return rc;
}

static void withdraw_cb(sx_io *io, struct sx__io_slot *s)
{
	if (s->cb == NULL)
		return;
	/* 0: it will never run, so its count is ours to drop; -EALREADY: it drops it itself. */
	if (sx_breaker_withdraw(s->cb) == 0)
		sx__io_live_dec(io);
	s->cb = NULL;
}

/* Back to IDLE, keeping the flags (the next operation may start); the keys late callbacks
 * compare go first. */
static void to_idle(struct sx__io_slot *s)
{
	uint32_t st;

	ck_pr_store_ptr(&s->stop, NULL);
	ck_pr_store_uint(&s->op, SX__IO_OP_WAIT);
	st = ck_pr_load_32(&s->state);
	while (!ck_pr_cas_32_value(&s->state, st, with_phase(st, SX__IO_IDLE), &st))
		;
}

void sx__io_op_undo(sx_io *io, struct sx__io_slot *s)
{
	withdraw_cb(io, s);
	to_idle(s);
	sx__io_live_dec(io);
}

void sx__io_op_end(sx_io *io, struct sx__io_slot *s)
{
	withdraw_cb(io, s);
	if (s->timer_on) {
		/* As for the breaker: 0, the timer never fires; -EALREADY, its callback drops it. */
		if (sx_timer_cancel(&s->timer) == 0)
			sx__io_live_dec(io);
		s->timer_on = false;
	}
	to_idle(s);
}

/* Close s with flag (SHUT or DEREG): if a wait is armed, claim it with code in the same CAS;
 * true then (the caller queues it). */
static bool slot_close(struct sx__io_slot *s, uint32_t flag, int code)
{
	uint32_t st = ck_pr_load_32(&s->state), next;

	do {
		next = st | flag;
		if ((st & SX__IO_PHASE) == SX__IO_ARMED)
			next = with_phase(next, SX__IO_FIRED);
	} while (!ck_pr_cas_32_value(&s->state, st, next, &st));
	if ((st & SX__IO_PHASE) != SX__IO_ARMED)
		return false;
	s->result = code;
	return true;
}

/* ---- polling ------------------------------------------------------------------------------ */

static struct sx__reactor *reactor_of(sx_pool *p)
{
	return sx__pool_svc(p, SX__SVC_IO);
}

/* An epoll event as SX_IO_* events: a hang-up makes the fd readable (end of file) and a full
 * hang-up or an error both readable and writable (the I/O reports them). */
static unsigned events_of(uint32_t ev)
{
	unsigned e = 0;

	if (ev & EPOLLIN)
		e |= SX_IO_READABLE;
	if (ev & EPOLLOUT)
		e |= SX_IO_WRITABLE;
	if (ev & EPOLLRDHUP)
		e |= SX_IO_HUP | SX_IO_READABLE;
	if (ev & EPOLLHUP)
		e |= SX_IO_HUP | SX_IO_READABLE | SX_IO_WRITABLE;
	if (ev & EPOLLERR)
		e |= SX_IO_ERROR | SX_IO_READABLE | SX_IO_WRITABLE;
	return e;
}

/* Record one event of io and claim the waits it makes ready, onto w's ring. */
static unsigned on_event(sx__worker *w, sx_io *io, uint32_t ev)
{
	uint64_t old = ck_pr_load_64(&io->ready), now;
	unsigned e = events_of(ev), queued = 0;

	do
		now = (old | e) + SX__IO_TICK_ONE;
	while (!ck_pr_cas_64_value(&io->ready, old, now, &old));
	for (unsigned d = 0; d < 2; d++) {
		struct sx__io_slot *s = &io->slot[d];
		int mask = sx__io_ready_mask(now, s->dir);
		uint32_t st;

		if (mask == 0)
			continue;
		st = ck_pr_load_32(&s->state);
		if ((st & SX__IO_PHASE) == SX__IO_ARMED && sx__io_claim(s, st, mask)) {
			sx__push_polled(w, &s->task);
			queued++;
		}
	}
	return queued;
}

/* Hook poll: on w, the poller. Its read section opens before epoll_wait: an event the kernel
 * hands back may be for a registration deregistered meanwhile, whose memory the section keeps. */
static unsigned reactor_poll(sx_pool *p, sx__worker *w, bool block)
{
	struct sx__reactor *r = reactor_of(p);
	sx__tcache *c = sx__worker_cache(w);
	struct epoll_event ev[SX__IO_BATCH];
	unsigned queued = 0;
	int n;

	sx__epoch_begin(c);
	if (block)
		ck_pr_store_32(&r->sleeping, 1);
	n = epoll_wait(r->epfd, ev, SX__IO_BATCH, block ? -1 : 0);
	if (block)
		ck_pr_store_32(&r->sleeping, 0);
	for (int i = 0; i < n; i++) {
		if (ev[i].data.ptr == NULL) {
			uint64_t v;

			(void)!read(r->evfd, &v, sizeof(v)); /* drain the wake-ups */
			continue;
		}
		queued += on_event(w, ev[i].data.ptr, ev[i].events);
	}
	sx__epoch_end(c);
	if (sx__epoch_pending(c) != 0)
		(void)sx__epoch_poll(c);
	return queued;
}

/* Hook wake: any thread. A write a poller does not need is drained by the next poll. */
static void reactor_wake(sx_pool *p)
{
	uint64_t one = 1;

	(void)!write(reactor_of(p)->evfd, &one, sizeof(one));
}

/* ---- life cycle --------------------------------------------------------------------------- */

static void reactor_release(sx_pool *p, struct sx__reactor *r)
{
	if (r->epfd >= 0)
		close(r->epfd);
	if (r->evfd >= 0)
		close(r->evfd);
	pthread_mutex_destroy(&r->lock);
	sx__pfree(p, r, sizeof(*r));
}

/* sx__pool_service's start, under the pool's service lock. */
static int reactor_start(sx_pool *p, void **out)
{
	struct sx__reactor *r = sx__palloc(p, sizeof(*r));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	int rc = 0;

	if (r == NULL)
		return -ENOMEM;
	r->pool = p;
	pthread_mutex_init(&r->lock, NULL);
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	r->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->epfd < 0 || r->evfd < 0 || epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->evfd, &ev) != 0)
		rc = -errno;
	if (rc != 0) {
		reactor_release(p, r);
		return rc;
	}
	*out = r;
	return 0;
}

/* Hook stop: the shutdown began (no service can start, outside submissions are refused). Close
 * every slot; the waits that were armed end with -ESHUTDOWN, queued for the workers (SX_DRAIN
 * runs them, SX_CANCEL cancels them) or, if this thread's record cannot be had, told here. */
static void reactor_stop(sx_pool *p)
{
	struct sx__reactor *r = reactor_of(p);
	struct sx__io_slot *claimed = NULL;

	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	for (sx_io *io = r->list; io != NULL; io = io->next) {
		for (unsigned d = 0; d < 2; d++) {
			struct sx__io_slot *s = &io->slot[d];

			if (slot_close(s, SX__IO_SHUT, -ESHUTDOWN)) {
				s->stop_next = claimed;
				claimed = s;
			}
		}
	}
	pthread_mutex_unlock(&r->lock);
	/* Outside the lock: a callback told here may deregister. The claims keep io alive. */
	while (claimed != NULL) {
		struct sx__io_slot *s = claimed;

		claimed = s->stop_next;
		if (sx__inject_stopping(p, &s->task) != 0)
			slot_exec(s, -ESHUTDOWN);
	}
}

static int live_zero(void *arg, uint32_t seen)
{
	(void)arg;
	return seen / SX__IO_LIVE_ONE == 0;
}

static void io_free(sx_io *io)
{
	sx__pfree(io->pool, io, sizeof(*io));
}

static void io_retired(ck_epoch_entry_t *e)
{
	io_free(SX_CONTAINER_OF(e, sx_io, retire));
}

/* Hook free: destroy, after the shutdown. Registrations still registered are freed (their fds
 * stay open: they are the caller's); a breaker callback still running on the notifier thread
 * is waited for. */
static void reactor_free(sx_pool *p)
{
	struct sx__reactor *r = reactor_of(p);
	sx_io *io, *next;

	for (io = r->list; io != NULL; io = next) {
		next = io->next;
		if (!io->orphan) /* an orphan's deregistration waited already */
			(void)sx__wait(NULL, &io->live, SX__IO_LIVE_WAITERS, live_zero, NULL,
			    UINT64_MAX);
		io_free(io);
	}
	r->list = NULL;
	reactor_release(p, r);
}

static const struct sx__pool_hooks io_hooks = {
	.kind = SX__SVC_IO,
	.stop = reactor_stop,
	.free = reactor_free,
	.poll = reactor_poll,
	.wake = reactor_wake,
};

/* ---- registration ------------------------------------------------------------------------- */

static void slot_init(sx_io *io, unsigned dir)
{
	struct sx__io_slot *s = sx__io_slot_of(io, dir);

	s->io = io;
	s->dir = dir;
	s->task.run = slot_run;
	s->task.cancel = slot_cancel;
}

int sx_io_register(sx_pool *pool, int fd, sx_io **out)
{
	struct sx__reactor *r;
	struct epoll_event ev;
	struct stat sb;
	sx_io *io;
	int fl, rc;

	if (pool == NULL || out == NULL || fd < 0)
		return -EINVAL;
	if ((fl = fcntl(fd, F_GETFL)) < 0 || fstat(fd, &sb) != 0)
		return -errno;
	if (!(fl & O_NONBLOCK))
		return -EINVAL;
	if (!sx__pool_running(pool))
		return -ESHUTDOWN;
	r = reactor_of(pool);
	if (SX__UNLIKELY(r == NULL) &&
	    (rc = sx__pool_service(pool, &io_hooks, reactor_start, (void **)&r)) != 0)
		return rc;
	io = sx__palloc(pool, sizeof(*io));
	if (io == NULL)
		return -ENOMEM;
	io->fd = fd;
	io->sock = S_ISSOCK(sb.st_mode);
	io->r = r;
	io->pool = pool;
	slot_init(io, SX_IO_READABLE);
	slot_init(io, SX_IO_WRITABLE);
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	ev.data.ptr = io;
	pthread_mutex_lock(&r->lock);
	/* Added under the lock, once listed state is complete: the shutdown's walk sees every
	 * registration that can get an event, and one that starts after it fails here. */
	if (r->stopping)
		rc = -ESHUTDOWN;
	else if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		rc = -errno;
	else
		rc = 0;
	if (rc == 0) {
		io->next = r->list;
		if (r->list != NULL)
			r->list->prev = io;
		r->list = io;
	}
	pthread_mutex_unlock(&r->lock);
	if (rc != 0) {
		io_free(io); /* never in the set: no poller saw it */
		return rc;
	}
	*out = io;
	return 0;
}

static int dereg_done(void *arg, uint32_t seen)
{
	return seen / SX__IO_LIVE_ONE == frames_of(arg);
}

int sx_io_deregister(sx_io *io)
{
	struct sx__reactor *r;
	sx__worker *w;
	sx__tcache *c;

	if (io == NULL)
		return -EINVAL;
	r = io->r;
	/* Closed fds are gone from the set already (EBADF): nothing to undo. */
	(void)epoll_ctl(r->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	for (unsigned d = 0; d < 2; d++) {
		struct sx__io_slot *s = &io->slot[d];

		if (slot_close(s, SX__IO_DEREG, -ECANCELED))
			sx__io_deliver(io, s);
	}
	for (struct sx__io_frame *f = frames; f != NULL; f = f->up)
		if (f->io == io)
			f->dereg = true;
	/* On a worker, help through an SX_CANCEL shutdown too: the callbacks waited for may sit in
	 * this pool's queues, which stopped workers no longer run. */
	w = sx__worker_of(io->pool);
	if (w != NULL)
		(void)sx__wait_fork(w, &io->live, SX__IO_LIVE_WAITERS, dereg_done, io);
	else
		(void)sx__wait_here(&io->live, SX__IO_LIVE_WAITERS, dereg_done, io, UINT64_MAX);

	c = sx__tcache_get(io->pool);
	pthread_mutex_lock(&r->lock);
	if (c == NULL) {
		/* No record for this thread (its first one cannot be allocated): without one the
		 * memory cannot be retired, so it stays listed and destroy frees it. */
		io->orphan = true;
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	if (io->prev != NULL)
		io->prev->next = io->next;
	else
		r->list = io->next;
	if (io->next != NULL)
		io->next->prev = io->prev;
	pthread_mutex_unlock(&r->lock);
	sx__epoch_retire(c, &io->retire, io_retired);
	if (sx__epoch_pending(c) >= SX__IO_KICK && ck_pr_load_32(&r->sleeping))
		reactor_wake(io->pool);
	return 0;
}

/* ---- readiness and waits ------------------------------------------------------------------ */

int sx_io_fd(const sx_io *io)
{
	return io != NULL ? io->fd : -EINVAL;
}

sx_io_token sx_io_readiness(const sx_io *io)
{
	return io != NULL ? ck_pr_load_64(&((sx_io *)io)->ready) : 0;
}

int sx_io_clear(sx_io *io, sx_io_token seen, unsigned events)
{
	uint64_t cur;

	if (io == NULL || events == 0 || (events & ~(SX_IO_READABLE | SX_IO_WRITABLE)) != 0)
		return -EINVAL;
	cur = ck_pr_load_64(&io->ready);
	for (;;) {
		if ((cur & ~SX__IO_EVENTS) != (seen & ~SX__IO_EVENTS))
			return -EAGAIN;
		if ((cur & events) == 0 ||
		    ck_pr_cas_64_value(&io->ready, cur, cur & ~(uint64_t)events, &cur))
			return 0;
	}
}

int sx_io_wait(sx_io *io, unsigned events, sx_breaker *stop, sx_io_fn fn, void *arg)
{
	struct sx__io_slot *s;
	struct sx__io_entry e;
	int rc, mask;

	if (io == NULL || fn == NULL || (events != SX_IO_READABLE && events != SX_IO_WRITABLE))
		return -EINVAL;
	s = sx__io_slot_of(io, events);
	if ((rc = sx__io_op_begin(io, s)) != 0)
		return rc;
	s->step = NULL;
	s->fn = fn;
	s->arg = arg;
	/* The breaker's callback outside the submission section: on_done may run other callbacks
	 * of that breaker on this thread, which may submit. */
	rc = sx__io_op_stop_on(io, s, stop);
	if (rc < 0 || (rc = sx__io_enter(io->pool, &e)) != 0) {
		sx__io_op_undo(io, s);
		return rc;
	}
	if (stop != NULL && s->cb == NULL) {
		sx__io_op_fire(s, sx_breaker_err(stop)); /* tripped already */
		sx__io_queue(&e, s);
	} else if ((mask = sx__io_ready_mask(ck_pr_load_64(&io->ready), events)) != 0) {
		sx__io_op_fire(s, mask);
		sx__io_queue(&e, s);
	} else if ((rc = sx__io_op_arm(io, s, &e)) != 0) {
		sx__io_op_undo(io, s);
	}
	sx__io_leave(&e);
	return rc;
}
