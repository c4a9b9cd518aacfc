/*
 * The timer service: sx_timer_add / sx_timer_cancel from any thread, on top of the single-owner
 * sx_wheel (wheel.c).
 *
 * One timer thread per pool, started by the pool's first sx_timer_add and stopped by
 * sx_pool_shutdown. Per pool rather than one shared by the process: the pool is the unit of
 * shutdown (timers end with it, with -ESHUTDOWN) and of the tick, and a pool that never uses a
 * timer never starts the thread. The thread owns the wheel; nobody else touches it.
 *
 * Timer nodes are 64 bytes, one cache line, in slabs that belong to the pool until destroy (so a
 * handle may be passed to cancel long after its timer fired: the memory is still a timer node).
 * A node is the wheel timer (32 bytes; while the node waits in the inbox its deadline in ns sits
 * there instead, and after expiry the pool task that runs the callback), the user's callback and
 * argument, one link used for the inbox or a free list, and the node's state word, changed only
 * by CAS:
 *
 *     bits 31..3: generation (bumped each time the node is recycled, so old handles go stale)
 *     bit 2:      SX_TIMER_INLINE was given
 *     bits 1..0:  FREE -> QUEUED (in the inbox) -> ARMED (in the wheel) -> fired: next gen, FREE
 *                                  \--------------------\--> CANCELLED (cancel's CAS won)
 *
 * Adding: take a node from the calling thread's free list (refilled by taking every node on the
 * pool's shared free stack with one exchange, or a new slab of 63; a thread may so hold more
 * free nodes than it needs until it exits), fill it, push it on the inbox (a
 * Treiber stack), and wake the timer thread only if the new deadline is earlier than the one it
 * sleeps towards. The thread publishes that deadline (0 while awake) before its last look at
 * the inbox; the adder pushes before reading it: one of the two sees the other (Dekker).
 *
 * Cancelling: CAS QUEUED or ARMED -> CANCELLED. A node cancelled while ARMED is pushed on the
 * inbox too (its link is free while it sits in the wheel), so the timer thread unlinks it at its
 * next wake instead of at its deadline; cancels never wake the thread. Expiry is the thread's
 * CAS ARMED -> next generation: whichever CAS comes first decides, and both sides are told.
 * A node is recycled exactly once: on its way out of the inbox when it was cancelled, or after
 * its callback was dispatched.
 *
 * The inbox is a closable stack (base/base.h) because shutdown must close it: its head becomes
 * SX__CLOSED, which a pushing CAS cannot get past, so an add either lands before the thread takes the final batch or
 * fails with -ESHUTDOWN. Nothing is lost in between.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <strix/timer.h>

#include "time/time_impl.h"

enum { N_FREE = 0, N_QUEUED = 1, N_ARMED = 2, N_CANCELLED = 3 };
#define ST_MASK 3u
#define ST_INLINE 4u
#define GEN_ONE 8u

typedef struct sx__tnode {
	union {
		sx_wheel_timer wt;  /* initialized by the add, in the wheel once armed */
		struct {
			void *wt_next;
			uint64_t deadline_ns; /* in the inbox: where wt's sx_prev goes */
		} q;
		sx_task task;       /* after expiry, when the callback goes to the pool */
	} u;
	sx_timer_fn fn;
	void *arg;
	union {
		sx__link link;            /* in the inbox (a closable stack, base/base.h) */
		struct sx__timers *svc;   /* while it is a pool task */
	} x;
	uint32_t state;             /* outside the union: it survives every reuse */
} sx__tnode;

_Static_assert(sizeof(sx__tnode) == SX__CACHELINE, "a timer node is one cache line");
_Static_assert(SX_WHEEL_TICK_MIN_NS == SX__TIMER_TICK_MIN_NS &&
    SX_WHEEL_TICK_MAX_NS == SX__TIMER_TICK_MAX_NS, "sx_pool_create checks the wheel's tick range");
_Static_assert(offsetof(sx__tnode, u.q.deadline_ns) == offsetof(sx__tnode, u.wt.sx_prev),
    "the parked deadline leaves the wheel timer's word and callback alone");

#define SLAB_NODES 64u /* the first node's place holds the slab link */
/* Deadlines saturate here (292 years). Shutdown's flush to UINT64_MAX passes every one anyway:
 * the wheel clamps what is beyond its last tick to that tick, which an advance to UINT64_MAX
 * reaches. */
#define DEADLINE_MAX (UINT64_MAX / 2)

struct sx__timers {
	sx_pool *pool;
	sx_wheel *wheel;
	pthread_t thread;
	SX__ALIGNED sx__link *inbox;
	SX__ALIGNED uint64_t sleep_until;   /* deadline the thread sleeps towards; 0 while awake */
	uint64_t pending;                   /* wheel count before it last slept (stats) */
	uint32_t wake_seq;                  /* event word (base/base.h) the thread sleeps on */
	int stopping;
	SX__ALIGNED ck_stack_t free;        /* recycled nodes, taken whole by adders */
	ck_stack_t slabs;
};

static uint32_t *state_of(sx__tnode *n)
{
	return &n->state;
}

/* ---- nodes ------------------------------------------------------------------------------- */

/* Free nodes, in the pool's stack and in per-thread lists alike, are linked through their first
 * word (a ck_stack entry), so a thread takes a whole chain from the stack in O(1). */
static sx__tnode **free_next(sx__tnode *n)
{
	return (sx__tnode **)(void *)&((ck_stack_entry_t *)(void *)n)->next;
}

/* Recycle a node whose state already carries its next generation. Any thread. */
static void node_recycle(struct sx__timers *s, sx__tnode *n)
{
	ck_stack_push_upmc(&s->free, (ck_stack_entry_t *)(void *)n);
}

static bool node_refill(struct sx__timers *s, sx__tcache *c)
{
	sx__tnode *slab = (sx__tnode *)(void *)ck_stack_batch_pop_upmc(&s->free);

	if (slab != NULL) {
		*sx__tcache_svc(c) = slab; /* every recycled node, in one exchange */
		return true;
	}
	slab = sx__palloc(s->pool, SLAB_NODES * sizeof(sx__tnode));
	if (slab == NULL)
		return false;
	ck_stack_push_upmc(&s->slabs, (ck_stack_entry_t *)(void *)slab);
	for (unsigned i = 1; i < SLAB_NODES; i++)
		*free_next(&slab[i]) = i + 1 < SLAB_NODES ? &slab[i + 1] : NULL;
	*sx__tcache_svc(c) = &slab[1];
	return true;
}

/* Hook tcache_release: give c's timer nodes back to the service (c's thread exits). */
static void timers_tcache_release(sx__tcache *c)
{
	struct sx__timers *s = sx__pool_svc(sx__tcache_pool(c), SX__SVC_TIMER);
	void **slot = sx__tcache_svc(c);
	sx__tnode *n;

	while ((n = *slot) != NULL) {
		*slot = *free_next(n);
		node_recycle(s, n);
	}
}

/* ---- the inbox --------------------------------------------------------------------------- */

/* Push n; false when the inbox is closed. */
static bool inbox_push(struct sx__timers *s, sx__tnode *n)
{
	return sx__stack_push(&s->inbox, &n->x.link, &n->x.link);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static __thread struct sx__timers *owner; /* on the timer thread: its service */

static void task_run(sx_task *t)
{
	sx__tnode *n = SX_CONTAINER_OF(t, sx__tnode, u.task);
	sx_timer_fn fn = n->fn;
	void *arg = n->arg;

	node_recycle(n->x.svc, n);
	fn(arg, 0);
}

/* SX_CANCEL shutdown discarded the task (on the thread shutting the pool down). */
static void task_cancel(sx_task *t, int err)
{
	sx__tnode *n = SX_CONTAINER_OF(t, sx__tnode, u.task);
	sx_timer_fn fn = n->fn;
	void *arg = n->arg;

	node_recycle(n->x.svc, n);
	fn(arg, err);
}

/* Make the node's one callback (its state already moved on to the next generation). */
static void dispatch(struct sx__timers *s, sx__tnode *n, uint32_t st, int status)
{
	sx_timer_fn fn = n->fn;
	void *arg = n->arg;

	if (status == 0 && !(st & ST_INLINE)) {
		n->u.task.run = task_run;
		n->u.task.cancel = task_cancel;
		n->x.svc = s;
		status = sx_pool_submit_task(s->pool, &n->u.task);
		if (status == 0)
			return;
		/* Not submitted, and the callback hears why, here: -ESHUTDOWN when the pool stopped
		 * taking tasks, -ENOMEM when this thread's per-thread record could not be allocated
		 * (the pool runs on; a later submit tries again). */
	}
	node_recycle(s, n);
	fn(arg, status);
}

/* Expiry (the wheel's callback, on the timer thread). */
static void fire_cb(sx_wheel_timer *wt)
{
	sx__tnode *n = SX_CONTAINER_OF(wt, sx__tnode, u.wt);
	uint32_t st = ck_pr_load_32(state_of(n));

	if ((st & ST_MASK) != N_ARMED || !ck_pr_cas_32(state_of(n), st, (st & ~ST_MASK) + GEN_ONE))
		return; /* cancelled: the canceller pushes it on the inbox; it is recycled there */
	dispatch(owner, n, st, ck_pr_load_int(&owner->stopping) ? -ESHUTDOWN : 0);
}

/* Take an inbox batch: arm what was added, recycle what was cancelled. */
static void take_inbox(struct sx__timers *s, sx__link *l, bool stopping)
{
	SX__ASSERT(owner == s); /* the timer thread's */
	while (l != NULL) {
		sx__tnode *n = SX_CONTAINER_OF(l, sx__tnode, x.link);
		sx__link *next = l->next; /* before the state CAS: a cancel may reuse the link */
		uint32_t st = ck_pr_load_32(state_of(n));

		if ((st & ST_MASK) == N_QUEUED) {
			if (stopping) {
				if (ck_pr_cas_32(state_of(n), st, (st & ~ST_MASK) + GEN_ONE))
					dispatch(s, n, st, -ESHUTDOWN);
				else
					goto cancelled; /* cancel won just now */
			} else if (ck_pr_cas_32(state_of(n), st, (st & ~ST_MASK) | N_ARMED)) {
				sx_wheel_add(s->wheel, &n->u.wt, n->u.q.deadline_ns);
			} else {
				goto cancelled;
			}
			l = next;
			continue;
		}
cancelled:
		/* CANCELLED, from QUEUED (never armed) or from ARMED (still in the wheel, unless it
		 * expired meanwhile and its CAS lost). */
		if (sx_wheel_timer_pending(&n->u.wt))
			sx_wheel_cancel(s->wheel, &n->u.wt);
		ck_pr_store_32(state_of(n), (ck_pr_load_32(state_of(n)) & ~ST_MASK) + GEN_ONE);
		node_recycle(s, n);
		l = next;
	}
}

/* Wake the timer thread: the sequence bump makes a wait that has not started yet return. */
static void wake(struct sx__timers *s)
{
	sx__event_bump(&s->wake_seq);
}

static void *timer_main(void *arg)
{
	struct sx__timers *s = arg;

	owner = s;
	/* Claim this thread's record in the pool now, so that submitting a callback as a task
	 * allocates nothing later. If it cannot be allocated, each dispatch tries again, and a
	 * callback that still cannot be submitted hears -ENOMEM (see dispatch). */
	(void)sx__tcache_get(s->pool);
	/* Timed sleeps end up to the thread's timer slack after their deadline (50 us by default):
	 * most of a timer's lateness. 1 ns asks for none; failure leaves the default. */
	(void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	for (;;) {
		bool stopping = ck_pr_load_int(&s->stopping) != 0;
		uint64_t next;
		uint32_t seq;

		ck_pr_store_64(&s->sleep_until, 0);
		take_inbox(s, stopping ? sx__stack_close(&s->inbox) : sx__stack_take(&s->inbox),
		    stopping);
		if (stopping) {
			/* Every timer still in the wheel gets -ESHUTDOWN (fire_cb sees stopping). */
			sx_wheel_advance_to(s->wheel, UINT64_MAX);
			return NULL;
		}
		sx_wheel_advance(s->wheel);
		next = sx_wheel_next_deadline(s->wheel);
		seq = sx__event_read(&s->wake_seq);
		ck_pr_store_64(&s->pending, sx_wheel_count(s->wheel));
		ck_pr_store_64(&s->sleep_until, next);
		ck_pr_fence_store_load(); /* publish the deadline, then look at the inbox (Dekker) */
		if (ck_pr_load_ptr(&s->inbox) != NULL || ck_pr_load_int(&s->stopping))
			continue;
		/* Not ck_ec: its timed waits back off in steps of their own (2 ms first) and would
		 * overshoot a deadline by up to one step. */
		sx__event_wait(&s->wake_seq, seq, next);
	}
}

/* ---- life cycle -------------------------------------------------------------------------- */

static const struct sx__pool_hooks timer_hooks;

/* sx__pool_service's start, under the pool's service lock: the wheel and the thread. */
static int timers_start(sx_pool *p, void **out)
{
	sx_wheel_opts wo = SX_WHEEL_OPTS_INIT;
	struct sx__timers *s = sx__palloc(p, sizeof(*s));
	int rc;

	if (s == NULL)
		return -ENOMEM;
	s->pool = p;
	wo.tick_ns = sx__pool_timer_tick(p);
	rc = sx_wheel_create(&wo, &s->wheel);
	if (rc == 0 && pthread_create(&s->thread, NULL, timer_main, s) != 0) {
		sx_wheel_destroy(s->wheel);
		rc = -EAGAIN;
	}
	if (rc != 0) {
		sx__pfree(p, s, sizeof(*s));
		return rc;
	}
	*out = s;
	return 0;
}

/* Hook stop: shutdown (no other start can begin): refuse adds, flush pending timers with
 * -ESHUTDOWN, join. */
static void timers_stop(sx_pool *p)
{
	struct sx__timers *s = sx__pool_svc(p, SX__SVC_TIMER);

	ck_pr_store_int(&s->stopping, 1);
	wake(s);
	pthread_join(s->thread, NULL);
}

/* Hook free: destroy: every slab (nodes in caches and free lists go with them). */
static void timers_free(sx_pool *p)
{
	struct sx__timers *s = sx__pool_svc(p, SX__SVC_TIMER);
	ck_stack_entry_t *e, *next;

	for (e = ck_stack_batch_pop_upmc(&s->slabs); e != NULL; e = next) {
		next = e->next;
		sx__pfree(p, e, SLAB_NODES * sizeof(sx__tnode));
	}
	sx_wheel_destroy(s->wheel);
	sx__pfree(p, s, sizeof(*s));
}

/* Hook pending: for sx_pool_stats, from any thread. */
static uint64_t timers_pending(sx_pool *p)
{
	struct sx__timers *s = sx__pool_svc(p, SX__SVC_TIMER);

	return s != NULL ? ck_pr_load_64(&s->pending) : 0;
}

static const struct sx__pool_hooks timer_hooks = {
	.kind = SX__SVC_TIMER,
	.stop = timers_stop,
	.free = timers_free,
	.pending = timers_pending,
	.tcache_release = timers_tcache_release,
};

/* ---- the API ----------------------------------------------------------------------------- */

/* sx_timer_add (when: a delay) and sx_timer_add_at (at: when is an absolute time). */
static int add(sx_pool *pool, uint64_t when, bool at, unsigned flags, sx_timer_fn fn, void *arg,
    sx_timer *timer)
{
	struct sx__timers *s;
	sx__tcache *c;
	sx__tnode *n;
	void **slot;
	uint64_t deadline, sleeping;
	uint32_t st;
	int rc;

	if (SX__UNLIKELY(pool == NULL || fn == NULL || (flags & ~SX_TIMER_INLINE)))
		return -EINVAL;
	if (SX__UNLIKELY(!sx__pool_running(pool)))
		return -ESHUTDOWN;
	s = sx__pool_svc(pool, SX__SVC_TIMER);
	if (SX__UNLIKELY(s == NULL) &&
	    (rc = sx__pool_service(pool, &timer_hooks, timers_start, (void **)&s)) != 0)
		return rc;
	c = sx__tcache_get(pool);
	if (SX__UNLIKELY(c == NULL))
		return -ENOMEM;
	slot = sx__tcache_svc(c);
	if (SX__UNLIKELY(*slot == NULL) && !node_refill(s, c))
		return -ENOMEM;
	n = *slot;
	*slot = *free_next(n);
	/* With many timers live, free nodes are cold (the timer thread recycled them): fetch the
	 * next one while this one is filled. */
	__builtin_prefetch(*slot, 1);

	deadline = at ? 0 : sx__now_ns();
	deadline = when > DEADLINE_MAX - deadline ? DEADLINE_MAX : deadline + when;
	st = ck_pr_load_32(state_of(n)) & ~ST_MASK & ~ST_INLINE;
	sx_wheel_timer_init(&n->u.wt, fire_cb);
	n->u.q.deadline_ns = deadline;
	n->fn = fn;
	n->arg = arg;
	st |= N_QUEUED | ((flags & SX_TIMER_INLINE) ? ST_INLINE : 0);
	ck_pr_store_32(state_of(n), st);
	if (timer != NULL) {
		timer->sx_node = n;
		timer->sx_svc = s;
		timer->sx_key = st & ~ST_MASK;
	}
	if (SX__UNLIKELY(!inbox_push(s, n))) {
		ck_pr_store_32(state_of(n), (st & ~ST_MASK) + GEN_ONE);
		*free_next(n) = *slot;
		*slot = n;
		if (timer != NULL)
			memset(timer, 0, sizeof(*timer)); /* cancel answers -EINVAL */
		return -ESHUTDOWN;
	}
	/* The push (a full barrier) before reading the deadline the thread sleeps towards. */
	sleeping = ck_pr_load_64(&s->sleep_until);
	if (deadline < sleeping)
		wake(s);
	return 0;
}

int sx_timer_add(sx_pool *pool, int64_t delay_ns, unsigned flags, sx_timer_fn fn, void *arg,
    sx_timer *timer)
{
	if (SX__UNLIKELY(delay_ns < 0))
		return -EINVAL;
	return add(pool, (uint64_t)delay_ns, false, flags, fn, arg, timer);
}

int sx_timer_add_at(sx_pool *pool, uint64_t abs_ns, unsigned flags, sx_timer_fn fn, void *arg,
    sx_timer *timer)
{
	return add(pool, abs_ns, true, flags, fn, arg, timer);
}

int sx_timer_cancel(const sx_timer *timer)
{
	sx__tnode *n;
	uint32_t st;

	if (timer == NULL || timer->sx_node == NULL)
		return -EINVAL;
	n = timer->sx_node;
	st = ck_pr_load_32(state_of(n));
	for (;;) {
		unsigned phase = st & ST_MASK;

		if ((st & ~ST_MASK) != timer->sx_key || phase == N_FREE || phase == N_CANCELLED)
			return -EALREADY;
		if (ck_pr_cas_32_value(state_of(n), st, (st & ~ST_MASK) | N_CANCELLED, &st))
			break;
	}
	if ((st & ST_MASK) == N_ARMED) {
		/* Let the timer thread unlink it at its next wake (it is not woken for this). If the
		 * inbox is closed, shutdown is flushing the wheel and skips cancelled nodes. */
		inbox_push(timer->sx_svc, n);
	}
	return 0;
}
