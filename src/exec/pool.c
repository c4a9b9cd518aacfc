/*
 * The pool's life cycle and its submission paths.
 *
 * Submission from a worker of the same pool (the local path) puts the task in the worker's LIFO
 * slot with one exchange; the task it displaces goes to the local ring. Submission from any other
 * thread (the remote path) goes through that thread's sx__tcache (found via the pool's pthread
 * key) and the injector. Shutdown must not miss a remote submission that is half way through:
 * each remote submit raises its tcache's `busy` flag, fences, and only then reads the pool state;
 * shutdown changes the state, fences, and waits until no tcache is busy (Dekker again). After that
 * no task can enter the injector any more.
 *
 * Locks: none on any submission path. The only blocking is in create/shutdown/destroy (thread
 * start and join), in wait_idle (a futex wait), and pool->svc_lock, a cold-path mutex that
 * orders the lazy start of the pool's services (the timer thread, time/timer.c; the reactor,
 * io/reactor.c) against shutdown. The services are higher layers': this file reaches them only
 * through pool->hooks (exec.h).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#include "exec/exec.h"

#define SX__DEFAULT_SPIN_NS 50000LL
#define SX__DEFAULT_LIFO_CAP 4u
#define SX__LIFO_CAP_MAX 1024u

void *sx__palloc(sx_pool *p, size_t size)
{
	void *ptr = p->alloc.alloc(p->alloc.ctx, size, SX__CACHELINE);

	if (ptr != NULL)
		memset(ptr, 0, size);
	return ptr;
}

void sx__pfree(sx_pool *p, void *ptr, size_t size)
{
	if (ptr != NULL)
		p->alloc.free(p->alloc.ctx, ptr, size, SX__CACHELINE);
}

static int check_opts(const sx_pool_opts *o)
{
	if (o->workers > SX_POOL_MAX_WORKERS || !SX__RESERVED_CLEAR(o))
		return -EINVAL;
	if (o->max_workers > SX_POOL_MAX_WORKERS ||
	    (o->max_workers != 0 && o->workers > o->max_workers))
		return -EINVAL;
	if (o->ring_size != 0 && (o->ring_size < SX_POOL_MIN_RING ||
	    o->ring_size > SX_POOL_MAX_RING || (o->ring_size & (o->ring_size - 1)) != 0))
		return -EINVAL;
	if (o->spin_ns < 0 && o->spin_ns != SX_SPIN_NONE && o->spin_ns != SX_SPIN_FOREVER)
		return -EINVAL;
	if ((o->flags & ~SX_POOL_PIN) != 0 || o->lifo_cap > SX__LIFO_CAP_MAX)
		return -EINVAL;
	if (o->allocator != NULL && (o->allocator->alloc == NULL || o->allocator->free == NULL))
		return -EINVAL;
	if (o->timer_tick_ns != 0 && (o->timer_tick_ns < SX__TIMER_TICK_MIN_NS ||
	    o->timer_tick_ns > SX__TIMER_TICK_MAX_NS))
		return -EINVAL;
	return sx__blocking_check(o);
}

void sx__tcache_give_back(sx__tcache *c)
{
	sx__tcache_release(c);
	for (unsigned k = 0; k < SX__SVC_KINDS; k++) {
		const struct sx__pool_hooks *h = ck_pr_load_ptr(&c->pool->hooks[k]);

		if (h != NULL && h->tcache_release != NULL)
			h->tcache_release(c);
	}
}

static void tcache_exit(void *arg)
{
	sx__tcache *c = arg;

	/* The thread is going away: give its nodes back, run what its epoch record holds that is
	 * due (the rest waits for the record's next owner, or destroy), then let another thread
	 * claim the record. */
	sx__tcache_give_back(c);
	(void)sx__epoch_poll(c);
	sx__rec_leave(&c->rec);
}

/* ---- worker slots ------------------------------------------------------------------------ */

/* A ring buffer with its header line in front (struct sx__ringbuf). */
static ck_ring_buffer_t *ring_buf_new(sx_pool *p)
{
	struct sx__ringbuf *h = sx__palloc(p, SX__CACHELINE + sizeof(ck_ring_buffer_t) *
	    p->ring_size);

	if (h == NULL)
		return NULL;
	h->pool = p;
	return (ck_ring_buffer_t *)(void *)((char *)h + SX__CACHELINE);
}

static struct sx__ringbuf *ring_buf_head(ck_ring_buffer_t *buf)
{
	return (struct sx__ringbuf *)(void *)((char *)buf - SX__CACHELINE);
}

static void ring_buf_free(sx_pool *p, ck_ring_buffer_t *buf)
{
	sx__pfree(p, ring_buf_head(buf), SX__CACHELINE + sizeof(ck_ring_buffer_t) * p->ring_size);
}

/* The epoch callback of a retired buffer: no thief can read it any more. */
static void ring_buf_reclaim(ck_epoch_entry_t *e)
{
	struct sx__ringbuf *h = SX_CONTAINER_OF(e, struct sx__ringbuf, entry);

	ring_buf_free(h->pool, (ck_ring_buffer_t *)(void *)((char *)h + SX__CACHELINE));
}

void sx__worker_retired(sx__worker *w)
{
	sx_pool *p = w->pool;

	SX__ASSERT(ck_ring_size(&w->ring) == 0 && ck_pr_load_ptr(&w->lifo) == NULL);
	while (w->empty != NULL) {
		sx__batch *b = w->empty;

		w->empty = b->next;
		ck_stack_push_upmc(&p->spare_batches, sx__task_link(&b->task));
	}
	w->nempty = 0;
	ck_pr_inc_64(&p->retired);
	sx__tcache_give_back(&w->cache);
	/* The ring stays empty from here on; the slot keeps pointing at the buffer (a thief that
	 * saw it non-empty may still read it) until a later incarnation replaces it. */
	w->buf_owned = false;
	sx__epoch_retire(&w->cache, &ring_buf_head(w->buf)->entry, ring_buf_reclaim);
}

/*
 * Slot i ready for a new thread (under resize_lock, or at create): allocated the first time,
 * given a fresh ring buffer later (its positions and counters carry on). 0 or -ENOMEM.
 */
static int slot_prepare(sx_pool *p, unsigned i)
{
	sx__worker *w = p->slots[i];
	ck_ring_buffer_t *buf = ring_buf_new(p);

	if (buf == NULL)
		return -ENOMEM;
	if (w == NULL) {
		w = sx__palloc(p, sizeof(*w));
		if (w == NULL) {
			ring_buf_free(p, buf);
			return -ENOMEM;
		}
		ck_ring_init(&w->ring, p->ring_size);
		ck_ec32_init(&w->ec, 0);
		w->pool = p;
		w->index = i;
		w->rng = 0x9e3779b97f4a7c15ull * (i + 1);
		w->cache.pool = p;
		w->buf = buf;
		ck_pr_store_ptr(&p->slots[i], w);
		SX__ASSERT(i == p->nalloc);
		ck_pr_store_uint(&p->nalloc, i + 1);
	} else {
		SX__ASSERT(w->life == SX__SLOT_NONE && !w->buf_owned);
		/* A new incarnation: the owner-private state starts afresh. */
		w->lifo_streak = 0;
		w->searching = w->went_idle = false;
		w->help_depth = 0;
		w->blocked = 0;
		w->uncounted = false;
		w->comp = NULL;
		ck_pr_store_int(&w->retire, 0);
		/* The previous incarnation retired the old buffer; its record is ours now (the
		 * thread was joined): run what is due. */
		(void)sx__epoch_poll(&w->cache);
		ck_pr_store_ptr(&w->buf, buf);
	}
	w->inject_in = 1;
	w->spin_budget = p->spin_ns > 0 ? (uint64_t)p->spin_ns : 0;
	w->buf_owned = true;
	return 0;
}

static void free_memory(sx_pool *p)
{
	ck_stack_entry_t *e, *next;

	for (unsigned k = 0; k < SX__SVC_KINDS; k++) {
		if (p->hooks[k] != NULL) {
			p->hooks[k]->free(p);
			p->svc[k] = NULL;
		}
	}
	/* After the services: what they retired may be freed now, and the records go with the
	 * workers and caches below. */
	sx__epoch_fini(p);
	for (e = ck_stack_batch_pop_upmc(&p->slabs); e != NULL; e = next) {
		next = e->next;
		sx__pfree(p, e, SX__SLAB_BYTES);
	}
	sx__free_batches(p);
	sx__free_mags(p);
	for (e = ck_stack_batch_pop_upmc(&p->caches); e != NULL; e = next) {
		next = e->next;
		sx__pfree(p, SX_CONTAINER_OF(e, sx__tcache, rec.link), sizeof(sx__tcache));
	}
	if (p->slots != NULL) {
		for (unsigned i = 0; i < p->nalloc; i++) {
			sx__worker *w = p->slots[i];

			if (w->buf_owned)
				ring_buf_free(p, w->buf);
			sx__pfree(p, w, sizeof(*w));
		}
		sx__pfree(p, p->slots, sizeof(sx__worker *) * p->max_workers);
	}
	sx__pfree(p, p->parked, sizeof(uint64_t) * p->nbitmap);
}

static int init_workers(sx_pool *p)
{
	p->slots = sx__palloc(p, sizeof(sx__worker *) * p->max_workers);
	p->parked = sx__palloc(p, sizeof(uint64_t) * p->nbitmap);
	if (p->slots == NULL || p->parked == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < p->nworkers; i++) {
		int rc = slot_prepare(p, i);

		if (rc != 0)
			return rc;
	}
	return 0;
}

static void pin_worker(sx_pool *p, sx__worker *w, pthread_attr_t *attr)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;

	if (!(p->flags & SX_POOL_PIN) || ncpu < 1)
		return;
	CPU_ZERO(&set);
	CPU_SET((int)(w->index % (unsigned)ncpu), &set);
	pthread_attr_setaffinity_np(attr, sizeof(set), &set);
}

/*
 * Stop and join every worker thread (create's failure path and shutdown): close the slots to
 * new threads, wait for joins other threads make without the lock, take every remaining thread
 * as ours to join, then set the final state, wake everyone and join.
 */
static void stop_and_join(sx_pool *p, int final_state)
{
	unsigned n;

	pthread_mutex_lock(&p->resize_lock);
	p->resize_closed = true;
	for (;;) {
		bool busy = false;

		for (unsigned i = 0; i < p->nalloc; i++)
			busy |= p->slots[i]->life == SX__SLOT_JOINING;
		if (!busy)
			break;
		pthread_cond_wait(&p->joined, &p->resize_lock);
	}
	n = p->nalloc;
	for (unsigned i = 0; i < n; i++)
		if (p->slots[i]->life != SX__SLOT_NONE)
			p->slots[i]->life = SX__SLOT_JOINING;
	pthread_mutex_unlock(&p->resize_lock);

	ck_pr_store_int(&p->state, final_state);
	ck_pr_fence_store_atomic();
	sx__wake_all(p);
	for (unsigned i = 0; i < n; i++)
		if (p->slots[i]->life == SX__SLOT_JOINING)
			pthread_join(p->slots[i]->thread, NULL);
	pthread_mutex_lock(&p->resize_lock);
	for (unsigned i = 0; i < n; i++)
		if (p->slots[i]->life == SX__SLOT_JOINING)
			p->slots[i]->life = SX__SLOT_NONE;
	pthread_mutex_unlock(&p->resize_lock);
}

/* Start slot i's thread (prepared: slot_prepare); counted live from here. Under resize_lock,
 * or at create. 0 or -EAGAIN. */
static int slot_start(sx_pool *p, unsigned i)
{
	sx__worker *w = p->slots[i];
	pthread_attr_t attr;
	int rc;

	w->life = SX__SLOT_LIVE;
	if (i + 1 > p->nslots)
		ck_pr_store_uint(&p->nslots, i + 1);
	pthread_attr_init(&attr);
	pin_worker(p, w, &attr);
	rc = pthread_create(&w->thread, &attr, sx__worker_main, w);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		/* Never ran: its buffer is still its own, and nobody queued anything on it. */
		w->life = SX__SLOT_NONE;
		return -EAGAIN;
	}
	ck_pr_store_uint(&p->nworkers, p->nworkers + 1);
	return 0;
}

static int start_workers(sx_pool *p)
{
	unsigned n = p->nworkers;

	p->nworkers = 0;
	for (unsigned i = 0; i < n; i++) {
		if (slot_start(p, i) != 0) {
			stop_and_join(p, SX__STOPPED);
			return -EAGAIN;
		}
	}
	return 0;
}

int sx_pool_create(const sx_pool_opts *opts, sx_pool **out)
{
	static const sx_pool_opts defaults = SX_POOL_OPTS_INIT;
	const sx_allocator *a;
	sx_pool *p;
	long ncpu;
	int rc;

	if (out == NULL)
		return -EINVAL;
	if (opts == NULL)
		opts = &defaults;
	rc = check_opts(opts);
	if (rc != 0)
		return rc;
	a = opts->allocator != NULL ? opts->allocator : &sx_allocator_default;
	p = a->alloc(a->ctx, sizeof(*p), SX__CACHELINE);
	if (p == NULL)
		return -ENOMEM;
	memset(p, 0, sizeof(*p));
	p->alloc = *a;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	p->nworkers = opts->workers != 0 ? opts->workers : (ncpu > 0 ? (unsigned)ncpu : 1u);
	if (p->nworkers > SX_POOL_MAX_WORKERS)
		p->nworkers = SX_POOL_MAX_WORKERS;
	if (opts->max_workers != 0) {
		p->max_workers = opts->max_workers;
		if (p->nworkers > p->max_workers)
			p->nworkers = p->max_workers; /* more CPUs than the cap: the cap wins */
	} else {
		p->max_workers = 4 * p->nworkers > SX_POOL_DEFAULT_MAX_WORKERS ?
		    4 * p->nworkers : SX_POOL_DEFAULT_MAX_WORKERS;
		if (p->max_workers > SX_POOL_MAX_WORKERS)
			p->max_workers = SX_POOL_MAX_WORKERS;
	}
	p->target = p->nworkers;
	p->ring_size = opts->ring_size != 0 ? opts->ring_size : SX_POOL_DEFAULT_RING;
	p->spin_ns = opts->spin_ns != SX_SPIN_DEFAULT ? opts->spin_ns : SX__DEFAULT_SPIN_NS;
	p->lifo_cap = opts->lifo_cap != 0 ? opts->lifo_cap : SX__DEFAULT_LIFO_CAP;
	p->flags = opts->flags;
	p->on_cancel = opts->on_cancel;
	p->nbitmap = (p->max_workers + 63) / 64;
	p->idle = 0;
	ck_ec32_init(&p->idle_ec, 0);
	ck_epoch_init(&p->epoch);
	p->timer_tick_ns = opts->timer_tick_ns; /* 0: the wheel's default */
	sx__blocking_init(p, opts);
	pthread_mutex_init(&p->svc_lock, NULL);
	pthread_mutex_init(&p->resize_lock, NULL);
	pthread_cond_init(&p->joined, NULL);

	rc = init_workers(p);
	if (rc == 0 && pthread_key_create(&p->key, tcache_exit) != 0)
		rc = -EAGAIN;
	else if (rc == 0 && (rc = start_workers(p)) != 0)
		pthread_key_delete(p->key);
	if (rc != 0) {
		free_memory(p);
		pthread_mutex_destroy(&p->svc_lock);
		pthread_mutex_destroy(&p->resize_lock);
		pthread_cond_destroy(&p->joined);
		a->free(a->ctx, p, sizeof(*p), SX__CACHELINE);
		return rc;
	}
	*out = p;
	return 0;
}

/* ---- submission -------------------------------------------------------------------------- */

static sx__tcache *tcache_claim(sx_pool *p)
{
	sx__rec *r = sx__rec_claim(&p->caches);
	sx__tcache *c;

	/* Cold: once per thread and pool. */
	if (r != NULL) {
		c = SX_CONTAINER_OF(r, sx__tcache, rec);
	} else {
		c = sx__palloc(p, sizeof(*c));
		if (c == NULL)
			return NULL;
		c->pool = p;
		sx__rec_add(&p->caches, &c->rec);
	}
	return sx__rec_bind(p->key, &c->rec) == 0 ? c : NULL;
}

/* The calling thread's record for p: its worker's, or its own as an outside thread (claimed on
 * first use). NULL only when that first claim cannot allocate. */
sx__tcache *sx__tcache_get(sx_pool *p)
{
	sx__worker *w = sx__worker_of(p);
	sx__tcache *c;

	if (w != NULL)
		return &w->cache;
	c = pthread_getspecific(p->key);
	return SX__LIKELY(c != NULL) ? c : tcache_claim(p);
}

/* The parallelism hint after a local push (no fence): this worker runs the task itself if
 * nobody comes. */
static inline void local_hint(sx_pool *p)
{
	uint32_t st = ck_pr_load_32(&p->idle);

	if (SX__IDLE_SEARCHING(st) == 0 && SX__IDLE_PARKED(st) != 0)
		sx__notify(p);
}

/*
 * An empty LIFO slot takes the task with an exchange: only the owner ever fills the slot and
 * thieves only empty it (an exchange with NULL), so filling an empty slot cannot lose a task,
 * and the exchange is also the full barrier between the slot and local_hint's load of
 * pool->idle. Without it a worker that parks at that moment (its decrement of idle, then its
 * look at every queue) and this worker (its slot, then its look at idle) could each miss the
 * other's write: the task would then wait for this worker to come back to its loop, forever if
 * the task it runs waits for the one it just handed off (a ping-pong between workers). A full
 * slot keeps its task and the new one goes to the ring with plain stores, a parker sees the
 * full slot: a spawning loop costs no atomic read-modify-write per task, and a chain (each task
 * spawning its successor from the slot it was taken from) hands off through the slot.
 */
void sx__spawn_local(sx__worker *w, sx_task *t)
{
	t->sx_chain_tail = NULL;
	sx__stat_add(&w->cache.submitted, 1);
	if (ck_pr_load_ptr(&w->lifo) == NULL) {
		(void)ck_pr_fas_ptr(&w->lifo, t); /* NULL: thieves never fill the slot */
		ck_pr_fence_atomic_load();
	} else {
		sx__ring_push(w, t);
	}
	local_hint(w->pool);
}

void sx__push_local(sx__worker *w, sx_task *t)
{
	t->sx_chain_tail = NULL;
	sx__stat_add(&w->cache.submitted, 1);
	sx__ring_push(w, t);
	local_hint(w->pool);
}

void sx__push_polled(sx__worker *w, sx_task *t)
{
	t->sx_chain_tail = NULL;
	sx__stat_add(&w->cache.submitted, 1);
	sx__ring_push(w, t);
}

sx__tcache *sx__remote_enter(sx_pool *p, int *rc)
{
	sx__tcache *c = pthread_getspecific(p->key);

	if (SX__UNLIKELY(c == NULL) && (c = tcache_claim(p)) == NULL) {
		*rc = -ENOMEM;
		return NULL;
	}
	ck_pr_fas_uint(&c->busy, 1);
	ck_pr_fence_atomic_load(); /* our busy flag before the state load */
	if (SX__UNLIKELY(ck_pr_load_int(&p->state) != SX__RUNNING) && !sx__blocking_admits(p)) {
		sx__remote_leave(c);
		*rc = -ESHUTDOWN;
		return NULL;
	}
	return c;
}

void sx__remote_leave(sx__tcache *c)
{
	ck_pr_fence_store();
	ck_pr_store_uint(&c->busy, 0);
}

void sx__inject(sx_pool *p, sx__tcache *c, sx_task *t)
{
	t->sx_chain_tail = NULL;
	sx__stat_add(&c->submitted, 1);
	ck_stack_push_upmc(&p->inj, sx__task_link(t));
	ck_pr_fence_atomic_load(); /* the push (an RMW) before reading idle state */
	sx__notify(p);
}

/* The shutdown thread is not busy in a submission: it is the one that waits for those, later. */
int sx__inject_stopping(sx_pool *p, sx_task *t)
{
	sx__tcache *c = sx__tcache_get(p);

	SX__ASSERT(sx__worker_of(p) == NULL && !sx__pool_running(p));
	if (c == NULL)
		return -ENOMEM;
	sx__inject(p, c, t);
	return 0;
}

sx_task *sx__node_task(sx__tcache *c, void (*fn)(void *), void *arg)
{
	sx__node *n = sx__node_get(c);

	if (SX__UNLIKELY(n == NULL))
		return NULL;
	n->fn = fn;
	n->arg = arg;
	n->task.run = sx__node_task_run;
	n->task.cancel = NULL;
	return &n->task;
}

/*
 * Remote path, shared by both submit forms. With t == NULL the task is a fresh fn-form node
 * taken from the thread's cache, running fn(arg).
 */
static int remote_submit(sx_pool *p, sx_task *t, void (*fn)(void *), void *arg)
{
	int rc = 0;
	sx__tcache *c = sx__remote_enter(p, &rc);

	if (c == NULL)
		return rc;
	if (t == NULL && (t = sx__node_task(c, fn, arg)) == NULL)
		rc = -ENOMEM;
	else
		sx__inject(p, c, t);
	sx__remote_leave(c);
	return rc;
}

int sx_pool_submit(sx_pool *pool, void (*fn)(void *arg), void *arg)
{
	sx__worker *w;
	sx_task *t;

	if (SX__UNLIKELY(pool == NULL || fn == NULL))
		return -EINVAL;
	w = sx__worker_of(pool);
	if (w == NULL)
		return remote_submit(pool, NULL, fn, arg);
	t = sx__node_task(&w->cache, fn, arg);
	if (SX__UNLIKELY(t == NULL))
		return -ENOMEM;
	sx__spawn_local(w, t);
	return 0;
}

/* The intrusive submissions: from outside the injector, on a worker of pool `local` (inlined
 * with its constant argument, so each public form compiles to its own direct path). */
static inline int task_submit(sx_pool *pool, sx_task *task,
    void (*local)(sx__worker *w, sx_task *t))
{
	sx__worker *w;

	if (SX__UNLIKELY(pool == NULL || task == NULL || task->run == NULL))
		return -EINVAL;
	w = sx__worker_of(pool);
	if (w == NULL)
		return remote_submit(pool, task, NULL, NULL);
	local(w, task);
	return 0;
}

int sx_pool_submit_task(sx_pool *pool, sx_task *task)
{
	return task_submit(pool, task, sx__spawn_local);
}

int sx_pool_yield_task(sx_pool *pool, sx_task *task)
{
	return task_submit(pool, task, sx__push_local);
}

/* ---- waiting, shutdown, destroy ---------------------------------------------------------- */

/* Block until quiescent (or, with stop_on_cancel, cancelled). For wait_idle and SX_DRAIN. */
static int wait_quiescent(sx_pool *p, bool stop_on_cancel)
{
	int rc = 0;

	ck_pr_inc_uint(&p->idle_waiters);
	ck_pr_fence_atomic_load();
	for (;;) {
		uint32_t seq = ck_ec32_value(&p->idle_ec);

		if (sx__quiescent(p))
			break;
		if (stop_on_cancel && ck_pr_load_int(&p->state) >= SX__CANCELLING) {
			rc = -ESHUTDOWN;
			break;
		}
		ck_ec32_wait(&p->idle_ec, &sx__ec_mode, seq, NULL);
	}
	ck_pr_dec_uint(&p->idle_waiters);
	return rc;
}

int sx_pool_wait_idle(sx_pool *pool)
{
	if (pool == NULL)
		return -EINVAL;
	if (sx__worker_of(pool) != NULL)
		return -EDEADLK;
	if (ck_pr_load_int(&pool->cancelled) != 0)
		return -ESHUTDOWN;
	return wait_quiescent(pool, true);
}

static void wait_submitters(sx_pool *p)
{
	ck_stack_entry_t *e;

	ck_pr_fence_store_load();
	for (e = ck_pr_load_ptr(&p->caches.head); e != NULL; e = ck_pr_load_ptr(&e->next)) {
		sx__tcache *c = SX_CONTAINER_OF(e, sx__tcache, rec.link);

		while (ck_pr_load_uint(&c->busy) != 0)
			sched_yield(); /* a submit takes nanoseconds; it may be descheduled */
	}
}

void sx__cancel_task(sx_pool *p, sx_task *t)
{
	if (t->run == sx__node_task_run) {
		sx__node *n = SX_CONTAINER_OF(t, sx__node, task);

		if (p->on_cancel != NULL)
			p->on_cancel(n->fn, n->arg, -ECANCELED);
	} else if (t->cancel != NULL) {
		t->cancel(t, -ECANCELED);
	}
	p->cancelled_tasks++;
}

/* After the workers are joined: hand every queued task to its cancel callback. */
static void cancel_queued(sx_pool *p)
{
	ck_stack_entry_t *e, *next;

	for (unsigned i = 0; i < p->nalloc; i++) {
		sx__worker *w = p->slots[i];
		sx_task *t;

		if ((t = w->lifo) != NULL) {
			w->lifo = NULL;
			sx__cancel_task(p, t);
		}
		while (ck_ring_dequeue_spmc(&w->ring, w->buf, &t))
			sx__cancel_task(p, t);
	}
	/* The injector is one linked list through the tasks' links, chains included; batches hold arrays. */
	for (e = ck_stack_batch_pop_upmc(&p->inj); e != NULL; e = next) {
		sx_task *t = sx__link_task(e);

		next = e->next;
		if (sx__is_batch(t)) {
			sx__batch *b = SX_CONTAINER_OF(t, sx__batch, task);

			while (b->start < b->n)
				sx__cancel_task(p, b->items[b->start++]);
		} else {
			sx__cancel_task(p, t);
		}
	}
}

int sx__pool_service(sx_pool *p, const struct sx__pool_hooks *h,
    int (*start)(sx_pool *p, void **svc), void **out)
{
	unsigned k = h->kind;
	void *svc;
	int rc = 0;

	SX__ASSERT(k < SX__SVC_KINDS);
	pthread_mutex_lock(&p->svc_lock);
	svc = p->svc[k];
	if (svc == NULL) {
		if (p->svc_closed || !sx__pool_running(p))
			rc = -ESHUTDOWN;
		else
			rc = start(p, &svc);
		if (rc == 0) {
			ck_pr_store_ptr(&p->hooks[k], h);
			ck_pr_fence_store();
			ck_pr_store_ptr(&p->svc[k], svc);
			if (h->poll != NULL) {
				/* Workers that park from now on take the poller role; wake one that
				 * sleeps already so the role is taken even if nothing else happens. */
				ck_pr_store_ptr(&p->poll_hooks, h);
				ck_pr_fence_store_load();
				sx__notify(p);
			}
		}
	}
	pthread_mutex_unlock(&p->svc_lock);
	*out = rc == 0 ? svc : NULL;
	return rc;
}

/* Close the pool to a service start, then stop the services that started, in the order of
 * their kinds: svc_lock orders the two, so a start either took the lock first (and is stopped
 * here) or sees svc_closed. */
static void stop_service(sx_pool *p)
{
	const struct sx__pool_hooks *h[SX__SVC_KINDS];

	pthread_mutex_lock(&p->svc_lock);
	p->svc_closed = true;
	memcpy(h, p->hooks, sizeof(h));
	pthread_mutex_unlock(&p->svc_lock);
	for (unsigned k = 0; k < SX__SVC_KINDS; k++)
		if (h[k] != NULL)
			h[k]->stop(p);
}

int sx_pool_shutdown(sx_pool *pool, int mode)
{
	int next;

	if (pool == NULL || (mode != SX_DRAIN && mode != SX_CANCEL))
		return -EINVAL;
	if (sx__worker_of(pool) != NULL || sx__blocking_mine(pool))
		return -EDEADLK;
	next = (mode == SX_DRAIN) ? SX__DRAINING : SX__CANCELLING;
	if (!ck_pr_cas_int(&pool->state, SX__RUNNING, next))
		return -ESHUTDOWN;
	ck_pr_store_int(&pool->cancelled, mode == SX_CANCEL);
	stop_service(pool);
	wait_submitters(pool);
	if (mode == SX_DRAIN) {
		wait_quiescent(pool, false);
		stop_and_join(pool, SX__STOPPED);
	} else {
		stop_and_join(pool, SX__CANCELLING);
		cancel_queued(pool);
		ck_pr_store_int(&pool->state, SX__STOPPED);
		/* Wake wait_idle callers so they see the cancellation. */
		ck_ec32_inc(&pool->idle_ec, &sx__ec_mode);
	}
	return 0;
}

void sx_pool_destroy(sx_pool *pool)
{
	sx_allocator a;

	if (pool == NULL)
		return;
	if (ck_pr_load_int(&pool->state) == SX__RUNNING)
		sx_pool_shutdown(pool, SX_DRAIN);
	/* Nodes sitting in worker caches belong to slabs; the slabs are freed whole. */
	pthread_key_delete(pool->key);
	a = pool->alloc;
	free_memory(pool);
	pthread_mutex_destroy(&pool->svc_lock);
	pthread_mutex_destroy(&pool->resize_lock);
	pthread_cond_destroy(&pool->joined);
	a.free(a.ctx, pool, sizeof(*pool), SX__CACHELINE);
}

static void add_stats(sx_worker_counters *sum, const sx_worker_counters *s)
{
	sum->executed += ck_pr_load_64(&s->executed);
	sum->stolen += ck_pr_load_64(&s->stolen);
	sum->steals += ck_pr_load_64(&s->steals);
	sum->steal_attempts += ck_pr_load_64(&s->steal_attempts);
	sum->parks += ck_pr_load_64(&s->parks);
	sum->wakeups += ck_pr_load_64(&s->wakeups);
	sum->injected += ck_pr_load_64(&s->injected);
	sum->overflowed += ck_pr_load_64(&s->overflowed);
	sum->lifo_runs += ck_pr_load_64(&s->lifo_runs);
}

int sx_pool_stats(sx_pool *pool, sx_pool_counters *out, sx_worker_counters *per_worker, unsigned n)
{
	const struct sx__pool_hooks *h;
	ck_stack_entry_t *e;

	if (pool == NULL || out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->workers = ck_pr_load_uint(&pool->nworkers);
	out->slots = ck_pr_load_uint(&pool->nalloc);
	out->retired = ck_pr_load_64(&pool->retired);
	out->max_workers = pool->max_workers;
	for (unsigned i = 0; i < out->slots; i++) {
		const sx__worker *w = sx__slot(pool, i);

		if (per_worker != NULL && i < n) {
			memset(&per_worker[i], 0, sizeof(per_worker[i]));
			add_stats(&per_worker[i], &w->stats);
		}
		add_stats(&out->total, &w->stats);
		out->submitted += ck_pr_load_64(&w->cache.submitted);
	}
	for (e = ck_pr_load_ptr(&pool->caches.head); e != NULL; e = ck_pr_load_ptr(&e->next))
		out->remote += ck_pr_load_64(&SX_CONTAINER_OF(e, sx__tcache, rec.link)->submitted);
	out->submitted += out->remote;
	out->executed = out->total.executed;
	out->cancelled = ck_pr_load_64(&pool->cancelled_tasks);
	h = ck_pr_load_ptr(&pool->hooks[SX__SVC_TIMER]);
	out->timers_pending = h != NULL ? h->pending(pool) : 0;
	sx__blocking_stats(pool, out);
	return 0;
}

int sx_pool_worker_index(const sx_pool *pool)
{
	sx__worker *w = sx__worker_of(pool);

	return w != NULL ? (int)w->index : -1;
}

unsigned sx_pool_workers(const sx_pool *pool)
{
	return pool != NULL ? ck_pr_load_uint(&pool->nworkers) : 0;
}

/* ---- resizing and blocking in place -------------------------------------------------------- */

/* Under resize_lock: lower nslots past the slots at the top that have no thread. */
static void trim_nslots(sx_pool *p)
{
	unsigned n = p->nslots;

	while (n > 0 && p->slots[n - 1]->life == SX__SLOT_NONE)
		n--;
	if (n != p->nslots)
		ck_pr_store_uint(&p->nslots, n);
}

/* Under resize_lock: a slot that ended its thread is ours (joined): run what its epoch record
 * has that is due (its ring buffer, once no thief can read it). */
static void slot_joined(sx_pool *p, sx__worker *w)
{
	(void)p;
	w->life = SX__SLOT_NONE;
	(void)sx__epoch_poll(&w->cache);
}

/* Under resize_lock: join, without waiting, the retired workers whose threads have ended, and
 * run what is due on the records of the slots without a thread. */
static void reap(sx_pool *p)
{
	for (unsigned i = 0; i < p->nalloc; i++) {
		sx__worker *w = p->slots[i];

		if (w->life == SX__SLOT_RETIRING && pthread_tryjoin_np(w->thread, NULL) == 0)
			slot_joined(p, w);
		else if (w->life == SX__SLOT_NONE && sx__epoch_pending(&w->cache) != 0)
			(void)sx__epoch_poll(&w->cache);
	}
	trim_nslots(p);
}

/*
 * Under resize_lock, from a thread outside the pool: join every retiring worker, without the
 * lock (each finishes its current task first; others may resize meanwhile, shutdown waits).
 */
static void join_retiring(sx_pool *p)
{
	uint64_t mine[(SX_POOL_MAX_WORKERS + 63) / 64] = { 0 };
	unsigned n = p->nalloc;
	bool any = false;

	for (unsigned i = 0; i < n; i++) {
		if (p->slots[i]->life == SX__SLOT_RETIRING) {
			p->slots[i]->life = SX__SLOT_JOINING;
			mine[i / 64] |= UINT64_C(1) << (i % 64);
			any = true;
		}
	}
	if (!any)
		return;
	pthread_mutex_unlock(&p->resize_lock);
	for (unsigned i = 0; i < n; i++)
		if (mine[i / 64] & (UINT64_C(1) << (i % 64)))
			pthread_join(p->slots[i]->thread, NULL);
	pthread_mutex_lock(&p->resize_lock);
	for (unsigned i = 0; i < n; i++)
		if (mine[i / 64] & (UINT64_C(1) << (i % 64)))
			slot_joined(p, p->slots[i]);
	trim_nslots(p);
	pthread_cond_broadcast(&p->joined);
}

/* Under resize_lock: workers grow_one could add now: free slots, and retiring workers (told to
 * stay, or joined once they committed to leaving). */
static unsigned free_slots(const sx_pool *p)
{
	unsigned n = p->max_workers - p->nalloc;

	for (unsigned i = 0; i < p->nalloc; i++)
		n += p->slots[i]->life == SX__SLOT_NONE || p->slots[i]->life == SX__SLOT_RETIRING;
	return n;
}

/*
 * Under resize_lock: one more worker - a retiring one that has not begun to exit, told to stay
 * (its retire flag taken back by CAS before it commits to leaving, sx__worker_main), or else a
 * new thread in the lowest free slot; *out (if not NULL) gets it. 0, -EAGAIN (no free slot,
 * or no thread), -ENOMEM.
 */
static int grow_one(sx_pool *p, sx__worker **out)
{
	unsigned i = 0;
	int rc;

	for (i = 0; i < p->nalloc; i++) {
		sx__worker *w = p->slots[i];

		if (w->life == SX__SLOT_RETIRING && ck_pr_cas_int(&w->retire, 1, 0)) {
			w->life = SX__SLOT_LIVE;
			ck_pr_store_uint(&p->nworkers, p->nworkers + 1);
			if (out != NULL)
				*out = w;
			return 0;
		}
	}
	i = 0;
	while (i < p->nalloc && p->slots[i]->life != SX__SLOT_NONE)
		i++;
	/* Every slot taken: a worker that committed to retiring runs no task any more, only its
	 * own hand-off and exit (no lock), so joining it here cannot deadlock, even on a worker. */
	for (unsigned j = 0; i == p->max_workers && j < p->nalloc; j++) {
		sx__worker *w = p->slots[j];

		if (w->life == SX__SLOT_RETIRING && ck_pr_load_int(&w->retire) == 2) {
			pthread_join(w->thread, NULL);
			slot_joined(p, w);
			i = j;
		}
	}
	if (i == p->max_workers)
		return -EAGAIN;
	rc = slot_prepare(p, i);
	if (rc == 0 && (rc = slot_start(p, i)) != 0) {
		/* Its ring was never filled, so no thief read the buffer. */
		ring_buf_free(p, p->slots[i]->buf);
		p->slots[i]->buf_owned = false;
		trim_nslots(p);
	}
	if (rc == 0 && out != NULL)
		*out = p->slots[i];
	return rc;
}

/* Whether w may be asked to retire: it runs, takes tasks, and was not asked already. */
static bool retirable(const sx__worker *w)
{
	return w != NULL && w->life == SX__SLOT_LIVE && !w->uncounted &&
	    ck_pr_load_int(&w->retire) == 0;
}

/* Under resize_lock: the live worker of the highest slot that may retire, other than avoid. */
static sx__worker *pick_retiree(const sx_pool *p, const sx__worker *avoid)
{
	for (unsigned i = p->nslots; i-- > 0;) {
		sx__worker *w = p->slots[i];

		if (w != avoid && retirable(w))
			return w;
	}
	return NULL;
}

/* Under resize_lock: ask w to retire: it finishes its current task, stops taking new ones,
 * hands what is queued on it to the others, and exits (worker.c, sx__worker_main). */
static void retire_one(sx_pool *p, sx__worker *w)
{
	w->life = SX__SLOT_RETIRING;
	ck_pr_store_uint(&p->nworkers, p->nworkers - 1);
	ck_pr_fas_int(&w->retire, 1);
	ck_pr_fence_atomic_load(); /* the flag before the parked count (sx__wake_worker) */
	sx__wake_worker(p, w);
}

int sx_pool_resize(sx_pool *pool, unsigned workers)
{
	sx__worker *self;
	int rc = 0;

	if (pool == NULL || workers == 0 || workers > pool->max_workers)
		return -EINVAL;
	self = sx__worker_of(pool);
	pthread_mutex_lock(&pool->resize_lock);
	if (!sx__pool_running(pool) || pool->resize_closed) {
		pthread_mutex_unlock(&pool->resize_lock);
		return -ESHUTDOWN;
	}
	reap(pool);
	if (workers > pool->nworkers) {
		/* Retirements still under way hold their slots: outside the pool, wait for them. */
		if (free_slots(pool) < workers - pool->nworkers && self == NULL)
			join_retiring(pool);
		if (pool->resize_closed)
			rc = -ESHUTDOWN;
		else if (free_slots(pool) < workers - pool->nworkers)
			rc = -EAGAIN;
		while (rc == 0 && pool->nworkers < workers)
			rc = grow_one(pool, NULL);
	} else {
		while (pool->nworkers > workers) {
			sx__worker *w = pick_retiree(pool, NULL);

			if (w == NULL)
				break;
			retire_one(pool, w);
		}
		if (self == NULL)
			join_retiring(pool);
	}
	pool->target = rc == 0 ? workers : pool->nworkers;
	pthread_mutex_unlock(&pool->resize_lock);
	return rc;
}

/* On w, before it blocks: its queue goes to the others, it stops counting as a worker, and a
 * compensating worker starts in its place when a slot is free. */
static void block_begin(sx_pool *p, sx__worker *w)
{
	sx__hand_off(w);
	pthread_mutex_lock(&p->resize_lock);
	if (w->life == SX__SLOT_LIVE && ck_pr_load_int(&w->retire) == 0 && sx__pool_running(p) &&
	    !p->resize_closed) {
		w->uncounted = true;
		ck_pr_store_uint(&p->nworkers, p->nworkers - 1);
		reap(p);
		if (grow_one(p, &w->comp) != 0)
			w->comp = NULL;
	}
	pthread_mutex_unlock(&p->resize_lock);
}

/* On w, back from blocking: it counts again, and one worker beyond the count asked for
 * retires - its compensator by preference. */
static void block_end(sx_pool *p, sx__worker *w)
{
	pthread_mutex_lock(&p->resize_lock);
	if (w->uncounted) {
		w->uncounted = false;
		if (w->life == SX__SLOT_LIVE)
			ck_pr_store_uint(&p->nworkers, p->nworkers + 1);
		if (sx__pool_running(p) && !p->resize_closed && p->nworkers > p->target) {
			sx__worker *v = retirable(w->comp) && w->comp != w ? w->comp :
			    pick_retiree(p, w);

			if (v != NULL)
				retire_one(p, v);
		}
		reap(p);
	}
	w->comp = NULL;
	pthread_mutex_unlock(&p->resize_lock);
}

int sx_pool_block_in_place(sx_pool *pool, void (*fn)(void *arg), void *arg)
{
	sx__worker *w;

	if (pool == NULL || fn == NULL)
		return -EINVAL;
	w = sx__worker_of(pool);
	if (w == NULL) {
		fn(arg);
		return 0;
	}
	if (w->blocked++ == 0)
		block_begin(pool, w);
	fn(arg);
	if (--w->blocked == 0)
		block_end(pool, w);
	return 0;
}
