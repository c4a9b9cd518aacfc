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

static void tcache_exit(void *arg)
{
	sx__tcache *c = arg;

	/* The thread is going away: give its nodes back, run what its epoch record holds that is
	 * due (the rest waits for the record's next owner, or destroy), then let another thread
	 * claim the record. */
	sx__tcache_release(c);
	for (unsigned k = 0; k < SX__SVC_KINDS; k++) {
		const struct sx__pool_hooks *h = ck_pr_load_ptr(&c->pool->hooks[k]);

		if (h != NULL && h->tcache_release != NULL)
			h->tcache_release(c);
	}
	(void)sx__epoch_poll(c);
	sx__rec_leave(&c->rec);
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
	if (p->workers != NULL) {
		for (unsigned i = 0; i < p->nworkers; i++)
			sx__pfree(p, p->workers[i].buf, sizeof(ck_ring_buffer_t) * p->ring_size);
		sx__pfree(p, p->workers, sizeof(sx__worker) * p->nworkers);
	}
	sx__pfree(p, p->parked, sizeof(uint64_t) * p->nbitmap);
}

static int init_workers(sx_pool *p)
{
	p->workers = sx__palloc(p, sizeof(sx__worker) * p->nworkers);
	p->parked = sx__palloc(p, sizeof(uint64_t) * p->nbitmap);
	if (p->workers == NULL || p->parked == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < p->nworkers; i++) {
		sx__worker *w = &p->workers[i];

		w->buf = sx__palloc(p, sizeof(ck_ring_buffer_t) * p->ring_size);
		if (w->buf == NULL)
			return -ENOMEM;
		ck_ring_init(&w->ring, p->ring_size);
		ck_ec32_init(&w->ec, 0);
		w->pool = p;
		w->index = i;
		w->inject_in = 1;
		w->spin_budget = p->spin_ns > 0 ? (uint64_t)p->spin_ns : 0;
		w->rng = 0x9e3779b97f4a7c15ull * (i + 1);
		w->cache.pool = p;
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

/* Stop and join the first n workers (create's failure path and shutdown). */
static void stop_and_join(sx_pool *p, unsigned n, int final_state)
{
	ck_pr_store_int(&p->state, final_state);
	ck_pr_fence_store_atomic();
	sx__wake_all(p);
	for (unsigned i = 0; i < n; i++)
		pthread_join(p->workers[i].thread, NULL);
}

static int start_workers(sx_pool *p)
{
	for (unsigned i = 0; i < p->nworkers; i++) {
		sx__worker *w = &p->workers[i];
		pthread_attr_t attr;
		int rc;

		pthread_attr_init(&attr);
		pin_worker(p, w, &attr);
		rc = pthread_create(&w->thread, &attr, sx__worker_main, w);
		pthread_attr_destroy(&attr);
		if (rc != 0) {
			stop_and_join(p, i, SX__STOPPED);
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
	p->ring_size = opts->ring_size != 0 ? opts->ring_size : SX_POOL_DEFAULT_RING;
	p->spin_ns = opts->spin_ns != SX_SPIN_DEFAULT ? opts->spin_ns : SX__DEFAULT_SPIN_NS;
	p->lifo_cap = opts->lifo_cap != 0 ? opts->lifo_cap : SX__DEFAULT_LIFO_CAP;
	p->flags = opts->flags;
	p->on_cancel = opts->on_cancel;
	p->nbitmap = (p->nworkers + 63) / 64;
	p->idle = p->nworkers * SX__IDLE_UNPARKED_ONE;
	ck_ec32_init(&p->idle_ec, 0);
	ck_epoch_init(&p->epoch);
	p->timer_tick_ns = opts->timer_tick_ns; /* 0: the wheel's default */
	sx__blocking_init(p, opts);
	pthread_mutex_init(&p->svc_lock, NULL);

	rc = init_workers(p);
	if (rc == 0 && pthread_key_create(&p->key, tcache_exit) != 0)
		rc = -EAGAIN;
	else if (rc == 0 && (rc = start_workers(p)) != 0)
		pthread_key_delete(p->key);
	if (rc != 0) {
		free_memory(p);
		pthread_mutex_destroy(&p->svc_lock);
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

	if (SX__IDLE_SEARCHING(st) == 0 && SX__IDLE_UNPARKED(st) < p->nworkers)
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

	for (unsigned i = 0; i < p->nworkers; i++) {
		sx__worker *w = &p->workers[i];
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
		stop_and_join(pool, pool->nworkers, SX__STOPPED);
	} else {
		stop_and_join(pool, pool->nworkers, SX__CANCELLING);
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
	out->workers = pool->nworkers;
	for (unsigned i = 0; i < pool->nworkers; i++) {
		const sx__worker *w = &pool->workers[i];

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
	return pool != NULL ? pool->nworkers : 0;
}
