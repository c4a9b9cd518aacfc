/*
 * The side pool: threads for blocking work (sx_pool_spawn_blocking), so that a blocking call
 * never holds one of the pool's workers. A service of the pool (kind SX__SVC_BLOCKING, exec.h),
 * started by the first spawn; pool.c reaches it through its hooks (stop at shutdown, free at
 * destroy) and the four sx__blocking_* calls of exec.h.
 *
 * Queue: a bounded FIFO of task pointers, base's sequenced ring (sx__ring_*: producers claim
 * cells by a CAS on `enq`, the side threads take them by a CAS on `deq`). The top bit of `enq`
 * closes the queue: a spawn that claimed its cell before the close is accepted and
 * will be drained or cancelled; one after it gets -ESHUTDOWN. Nothing is allocated per task
 * (the fn form takes a node from the caller's magazines, as sx_pool_submit does).
 *
 * Waiting side threads: `idle` counts threads that wait and were not claimed yet, `tokens` is
 * a futex word of wake-ups handed out. A spawn queues its task, fences, and claims one waiter
 * (idle - 1) and posts a token (tokens + 1, wake); a thread about to wait raises idle, fences,
 * and looks at the queue again (Dekker: either the spawn sees the waiter or the waiter sees the
 * task). Every waiter is either still counted in idle or has a token coming, so one that wants
 * to leave (work appeared, its idle time ran out) first withdraws from idle; when a spawn
 * claimed it already, it waits for that token instead.
 *
 * Threads: `nthreads` counts the threads that may take work, never more than max (a spawn
 * reserves a count with a CAS before it starts a thread). A spawn that claimed no waiter
 * starts a thread if the count allows; otherwise a running thread takes the task when it is
 * done. A thread whose idle time ran out stops counting, fences and looks at the queue once
 * more (Dekker with a spawn that saw the full count): work there makes it count again and stay,
 * if the cap allows. Each thread has a slot of `th` (LIVE while it runs, DONE once it no longer
 * touches the side pool); a slot is joined and reused by the next thread start, and every slot
 * is joined at shutdown.
 *
 * Locks: `lock` is a cold-path mutex, taken only to start a thread (slot reuse, pthread_create,
 * joins of retired threads) and by the stop hook, which it orders against thread starts. The
 * submission path takes no lock unless it starts a thread.
 */
#include <errno.h>
#include <sched.h>

#include "exec/exec.h"

#define BL_MASK (SX_POOL_BLOCKING_QUEUE - 1u)

_Static_assert((SX_POOL_BLOCKING_QUEUE & BL_MASK) == 0, "the queue is a power of two");

enum { TH_FREE = 0, TH_LIVE = 1, TH_DONE = 2 };

struct bl_cell {
	uint64_t seq;
	sx_task *task;
};

struct bl_thread {
	pthread_t thread;
	struct sx__blocking *b;
	int state;                /* TH_*: written by the slot's thread (DONE) and under lock */
};

struct sx__blocking {
	sx_pool *pool;
	unsigned max;
	int64_t idle_ns;
	struct bl_cell *cells;    /* SX_POOL_BLOCKING_QUEUE */
	struct bl_thread *th;     /* max slots */
	SX__ALIGNED uint64_t enq; /* SX__RING_CLOSED | next cell to fill */
	SX__ALIGNED uint64_t deq; /* next cell to take */
	SX__ALIGNED uint32_t idle;   /* waiting threads no spawn has claimed yet */
	uint32_t tokens;             /* futex word: wake-ups posted, not yet taken */
	SX__ALIGNED unsigned nthreads; /* threads that may take work (<= max) */
	int mode;                    /* 0 while the pool runs; SX_DRAIN or SX_CANCEL once it stops */
	pthread_mutex_t lock;        /* cold: thread starts, and stop */
	bool stopping;               /* under lock: no thread starts any more */
};

/* The side pool the calling thread is a thread of (NULL: none). */
static __thread struct sx__blocking *bl_self;

/* ---- the queue --------------------------------------------------------------------------- */

static int bl_push(struct sx__blocking *b, sx_task *t)
{
	uint64_t pos;
	int rc = sx__ring_claim(&b->enq, b->cells, sizeof(*b->cells), BL_MASK, &pos);

	if (rc != 0)
		return rc;
	b->cells[pos & BL_MASK].task = t;
	sx__ring_publish(b->cells, sizeof(*b->cells), BL_MASK, pos);
	return 0;
}

/* The oldest published task, or NULL (empty, or its producer has not published it yet). */
static sx_task *bl_pop(struct sx__blocking *b)
{
	uint64_t pos;
	sx_task *t;

	if (!sx__ring_take(&b->deq, b->cells, sizeof(*b->cells), BL_MASK, &pos))
		return NULL;
	t = b->cells[pos & BL_MASK].task;
	sx__ring_release(b->cells, sizeof(*b->cells), BL_MASK, pos);
	return t;
}

/* Tasks claimed by a spawn and not yet taken (published or about to be). */
static uint64_t bl_queued(struct sx__blocking *b)
{
	return sx__ring_count(&b->deq, &b->enq);
}

/* ---- waking and waiting ------------------------------------------------------------------ */

/* Take one from a counter that is not 0: true then. */
static bool bl_take(uint32_t *ctr)
{
	uint32_t v = ck_pr_load_32(ctr);

	while (v != 0)
		if (ck_pr_cas_32_value(ctr, v, v - 1, &v))
			return true;
	return false;
}

static void bl_post(struct sx__blocking *b)
{
	ck_pr_inc_32(&b->tokens);
	sx__futex_wake(&b->tokens);
}

static void *bl_main(void *arg);

/* Start a thread if the cap allows: true if one started. Cold: takes the lock. */
static bool bl_grow(struct sx__blocking *b)
{
	unsigned n = ck_pr_load_uint(&b->nthreads);
	struct bl_thread *slot = NULL;
	int rc;

	do {
		if (n >= b->max)
			return false;
	} while (!ck_pr_cas_uint_value(&b->nthreads, n, n + 1, &n));
	/* The cold-path lock: a thread start (slot reuse, joins, pthread_create) against the stop
	 * hook, which joins every slot. */
	pthread_mutex_lock(&b->lock);
	while (!b->stopping) {
		for (unsigned i = 0; i < b->max && slot == NULL; i++) {
			int st = ck_pr_load_int(&b->th[i].state);

			if (st == TH_DONE)
				pthread_join(b->th[i].thread, NULL);
			if (st != TH_LIVE)
				slot = &b->th[i];
		}
		if (slot != NULL)
			break;
		/* Every slot is held: one by a thread that has stopped counting and is about to mark
		 * its slot done (a few instructions). */
		sched_yield();
	}
	rc = -1;
	if (slot != NULL) {
		ck_pr_store_int(&slot->state, TH_LIVE);
		slot->b = b;
		rc = pthread_create(&slot->thread, NULL, bl_main, slot);
		if (rc != 0)
			ck_pr_store_int(&slot->state, TH_FREE);
	}
	pthread_mutex_unlock(&b->lock);
	if (rc != 0)
		ck_pr_dec_uint(&b->nthreads);
	return rc == 0;
}

/* A thread whose idle time ran out: true if it leaves, false if work came and it stays. */
static bool bl_retire(struct sx__blocking *b)
{
	unsigned n;

	ck_pr_dec_uint(&b->nthreads);
	ck_pr_fence_atomic_load(); /* uncounted before looking at the queue (Dekker with spawn) */
	if (bl_queued(b) == 0)
		return true;
	n = ck_pr_load_uint(&b->nthreads);
	do {
		if (n >= b->max)
			return true; /* a spawn started a thread in our place */
	} while (!ck_pr_cas_uint_value(&b->nthreads, n, n + 1, &n));
	return false;
}

/* Wait for work: true to look at the queue again, false to leave (retired: *retired is set
 * and the thread no longer counts; or the pool stops and, under SX_DRAIN, the queue is empty). */
static bool bl_wait(struct sx__blocking *b, bool *retired)
{
	uint64_t until = sx__deadline_in(b->idle_ns);

	ck_pr_inc_32(&b->idle);
	ck_pr_fence_atomic_load(); /* counted as waiting before looking at the queue */
	for (;;) {
		uint32_t tok = ck_pr_load_32(&b->tokens);
		int mode = ck_pr_load_int(&b->mode);
		bool late;

		if (mode != 0)
			return mode == SX_DRAIN && bl_queued(b) != 0;
		if (tok != 0 && ck_pr_cas_32(&b->tokens, tok, tok - 1))
			return true;
		late = sx__now_ns() >= until;
		if (bl_queued(b) != 0 || late) {
			if (bl_take(&b->idle)) {
				if (!late || bl_queued(b) != 0)
					return true;
				*retired = bl_retire(b);
				return !*retired;
			}
			/* A spawn claimed this waiter: a token is on the way (if another waiter
			 * takes it, this one is counted in idle in that one's place: wait a new
			 * idle time before trying to leave again). */
			until = sx__deadline_in(b->idle_ns);
		}
		if (tok == 0)
			sx__futex_wait_ns(&b->tokens, 0, until);
	}
}

static void bl_run(struct sx__blocking *b, sx__tcache *c, sx_task *t)
{
	(void)b;
	if (t->run == sx__node_task_run) {
		/* The fn form: the node goes back to this thread's magazines (without a record it
		 * stays in its slab, which destroy frees whole). */
		sx__node *n = SX_CONTAINER_OF(t, sx__node, task);
		void (*fn)(void *) = n->fn;
		void *arg = n->arg;

		if (c != NULL)
			sx__node_put(c, n);
		fn(arg);
		return;
	}
	t->run(t);
}

static void *bl_main(void *arg)
{
	struct bl_thread *me = arg;
	struct sx__blocking *b = me->b;
	sx__tcache *c = sx__tcache_get(b->pool);
	bool retired = false;

	bl_self = b;
	for (;;) {
		sx_task *t;

		if (ck_pr_load_int(&b->mode) == SX_CANCEL)
			break;
		t = bl_pop(b);
		if (t != NULL) {
			bl_run(b, c, t);
			continue;
		}
		if (!bl_wait(b, &retired))
			break;
		if (bl_queued(b) != 0 && ck_pr_load_32(&b->tokens) == 0)
			sched_yield(); /* a producer has claimed a cell and not published it yet */
	}
	if (!retired)
		ck_pr_dec_uint(&b->nthreads); /* the pool stops */
	bl_self = NULL;
	ck_pr_fence_store();
	ck_pr_store_int(&me->state, TH_DONE); /* last touch of the side pool */
	return NULL;
}

/* ---- the service ------------------------------------------------------------------------- */

static void bl_stop(sx_pool *p);
static void bl_free(sx_pool *p);

static const struct sx__pool_hooks bl_hooks = {
	.kind = SX__SVC_BLOCKING,
	.stop = bl_stop,
	.free = bl_free,
};

static int bl_start(sx_pool *p, void **svc)
{
	struct sx__blocking *b = sx__palloc(p, sizeof(*b));

	if (b == NULL)
		return -ENOMEM;
	b->pool = p;
	b->max = p->blocking_max;
	b->idle_ns = p->blocking_idle_ns;
	b->cells = sx__palloc(p, sizeof(struct bl_cell) * SX_POOL_BLOCKING_QUEUE);
	b->th = sx__palloc(p, sizeof(struct bl_thread) * b->max);
	if (b->cells == NULL || b->th == NULL) {
		sx__pfree(p, b->cells, sizeof(struct bl_cell) * SX_POOL_BLOCKING_QUEUE);
		sx__pfree(p, b->th, sizeof(struct bl_thread) * b->max);
		sx__pfree(p, b, sizeof(*b));
		return -ENOMEM;
	}
	sx__ring_init(b->cells, sizeof(*b->cells), SX_POOL_BLOCKING_QUEUE);
	pthread_mutex_init(&b->lock, NULL);
	*svc = b;
	return 0;
}

/*
 * sx_pool_shutdown (svc_closed is set, the pool's state has left RUNNING): close the queue,
 * wake every waiting thread, start threads for what is queued (SX_DRAIN), join every thread,
 * then settle what is left on this thread: SX_DRAIN runs it (when no thread could run it),
 * SX_CANCEL hands it to its cancel callback.
 */
static void bl_stop(sx_pool *p)
{
	struct sx__blocking *b = sx__pool_svc(p, SX__SVC_BLOCKING);
	int mode = ck_pr_load_int(&p->cancelled) ? SX_CANCEL : SX_DRAIN;
	uint64_t e = ck_pr_load_64(&b->enq);
	sx_task *t;

	while (!ck_pr_cas_64_value(&b->enq, e, e | SX__RING_CLOSED, &e))
		;
	ck_pr_store_int(&b->mode, mode);
	ck_pr_fence_store_atomic();
	bl_post(b);
	if (mode == SX_DRAIN)
		for (uint64_t q = bl_queued(b); q > 0 && bl_grow(b); q--)
			;
	pthread_mutex_lock(&b->lock);
	b->stopping = true;
	pthread_mutex_unlock(&b->lock);
	for (unsigned i = 0; i < b->max; i++) {
		if (ck_pr_load_int(&b->th[i].state) != TH_FREE) {
			pthread_join(b->th[i].thread, NULL);
			b->th[i].state = TH_FREE;
		}
	}
	/* Every thread is gone: what was claimed is published (a producer publishes before its
	 * spawn returns, and every spawn that claimed a cell ran before the close). */
	while (bl_queued(b) != 0) {
		while ((t = bl_pop(b)) == NULL)
			sched_yield();
		if (mode == SX_CANCEL) {
			sx__cancel_task(p, t);
		} else {
			bl_self = b; /* what it submits is taken while the pool drains */
			bl_run(b, sx__tcache_get(p), t);
			bl_self = NULL;
		}
	}
}

static void bl_free(sx_pool *p)
{
	struct sx__blocking *b = sx__pool_svc(p, SX__SVC_BLOCKING);

	pthread_mutex_destroy(&b->lock);
	sx__pfree(p, b->cells, sizeof(struct bl_cell) * SX_POOL_BLOCKING_QUEUE);
	sx__pfree(p, b->th, sizeof(struct bl_thread) * b->max);
	sx__pfree(p, b, sizeof(*b));
}

/* ---- pool.c's calls ---------------------------------------------------------------------- */

int sx__blocking_check(const sx_pool_opts *o)
{
	if (o->blocking_max_threads > SX_POOL_BLOCKING_MAX_THREADS || o->blocking_idle_ns < 0)
		return -EINVAL;
	return 0;
}

void sx__blocking_init(sx_pool *p, const sx_pool_opts *o)
{
	p->blocking_max = o->blocking_max_threads != 0 ? o->blocking_max_threads
	                                               : SX_POOL_BLOCKING_DEFAULT_THREADS;
	p->blocking_idle_ns = o->blocking_idle_ns != 0 ? o->blocking_idle_ns
	                                               : SX_POOL_BLOCKING_DEFAULT_IDLE_NS;
}

bool sx__blocking_mine(const sx_pool *p)
{
	struct sx__blocking *b = bl_self;

	return b != NULL && b->pool == p;
}

bool sx__blocking_admits(const sx_pool *p)
{
	return sx__blocking_mine(p) && ck_pr_load_int(&p->state) == SX__DRAINING;
}

void sx__blocking_stats(sx_pool *p, sx_pool_counters *out)
{
	struct sx__blocking *b = sx__pool_svc(p, SX__SVC_BLOCKING);

	if (b == NULL)
		return;
	out->blocking_threads = ck_pr_load_uint(&b->nthreads);
	out->blocking_queued = bl_queued(b);
}

/* ---- submission -------------------------------------------------------------------------- */

int sx__blocking_submit(sx_pool *p, sx_task *t)
{
	struct sx__blocking *b = sx__pool_svc(p, SX__SVC_BLOCKING);
	void *svc;
	int rc;

	if (SX__UNLIKELY(b == NULL)) {
		if ((rc = sx__pool_service(p, &bl_hooks, bl_start, &svc)) != 0)
			return rc;
		b = svc;
	}
	if ((rc = bl_push(b, t)) != 0)
		return rc;
	ck_pr_fence_memory(); /* the task queued before reading idle (Dekker with bl_wait) */
	if (bl_take(&b->idle)) {
		bl_post(b);
		return 0;
	}
	(void)bl_grow(b);
	return 0;
}

int sx_pool_spawn_blocking(sx_pool *pool, void (*fn)(void *arg), void *arg)
{
	sx__tcache *c;
	sx_task *t;
	int rc;

	if (SX__UNLIKELY(pool == NULL || fn == NULL))
		return -EINVAL;
	if ((c = sx__tcache_get(pool)) == NULL || (t = sx__node_task(c, fn, arg)) == NULL)
		return -ENOMEM;
	t->sx_chain_tail = NULL;
	if ((rc = sx__blocking_submit(pool, t)) != 0)
		sx__node_put(c, SX_CONTAINER_OF(t, sx__node, task));
	return rc;
}

int sx_pool_spawn_blocking_task(sx_pool *pool, sx_task *task)
{
	if (SX__UNLIKELY(pool == NULL || task == NULL || task->run == NULL))
		return -EINVAL;
	task->sx_chain_tail = NULL;
	return sx__blocking_submit(pool, task);
}
