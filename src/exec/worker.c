/*
 * The worker loop: where a worker finds its next task, how it steals, and how it sleeps.
 *
 * Order of search (sx__worker_main -> next_local, then find_work):
 *   1. every 61st task, the injector first, so outside submissions cannot starve behind a worker
 *      that keeps spawning (61: prime, as in Go's scheduler);
 *   2. the LIFO slot, unless lifo_cap tasks in a row came from it - then its task is moved to the
 *      ring's tail and the ring's head runs, so a task that respawns itself cannot starve the ring;
 *   3. the local ring (FIFO from the owner's side);
 *   4. the injector;
 *   5. searching: steal half of another worker's ring (or its LIFO slot), random victim order,
 *      then the injector again; spin like that for up to spin_ns (the budget adapts: see
 *      spin_paid), then park.
 *
 * Steal-half on ck_ring's fields. ck_ring (SPMC) keeps c_head (consumer position, advanced by
 * CAS) and p_tail (producer position, written only by the owner). A thief snapshots c_head then
 * p_tail, copies the first ceil(n/2) slots of the victim into its own (unpublished) slots, and
 * claims them all with one CAS on the victim's c_head, then publishes its own p_tail. If the CAS
 * fails, someone else consumed first; the copies are discarded. The copy may read a slot that the
 * owner is rewriting after a wrap-around; that can only happen when c_head has moved, so the CAS
 * fails and the torn value is never used (the same reasoning as ck_ring_trydequeue_spmc).
 * The owner may also take slots back from its end (sx__untake, for a waiting worker that runs
 * the child it queued); it takes one back only beyond every claim a thief's snapshot could still
 * make with an unchanged c_head, or by CAS on c_head when it is the last slot, so a slot it then
 * rewrites is never inside a claim that can succeed.
 *
 * Injector. Outside threads push single tasks on an intrusive ck_stack; a full ring moves half of
 * itself there as one batch (an array of task pointers; a chain through the tasks if no batch can
 * be allocated). A worker takes the whole stack with one exchange, restores FIFO order (reversing
 * the entries; a chain pushed back earlier, its head marked with sx_chain_tail, is spliced as it
 * is, so each entry is reversed at most once), runs the oldest task, moves up to half a ring into
 * its own ring, and pushes the rest back as one chain with one CAS. No producer can stall another
 * (unlike ck_ring MPMC's reserve/commit).
 *
 * Parking (no lost wake-ups). pool->idle counts parked and searching workers; pool->parked is a
 * bitmap. A worker parks by: reading its event count, setting its bit, moving itself from the
 * searching count to the parked one (atomic RMW), then re-checking every queue (and its retire
 * flag, which a resizer sets before it reads the parked count: the same Dekker pairing). A submitter pushes, then (after a full barrier)
 * reads pool->idle; if nobody searches and somebody sleeps it claims a sleeper by clearing its bit
 * and bumps that sleeper's event count. Either the submitter sees the parker's decrement, or the
 * parker's re-check sees the task: both sides order their write before their read with an atomic
 * RMW (Dekker). A searching worker that finds work and was the last searcher wakes another one if
 * more work is visible (in the injector or any worker's ring or LIFO slot), so work spreads
 * without a storm of wake-ups, and tasks queued behind one that blocks do not wait for it.
 *
 * The poller (only once a service that polls, the I/O reactor, has started: pool->poll_hooks).
 * There is no I/O thread: a worker about to park claims the poller role (pool->poller, by CAS;
 * at most one holder) and sleeps in the service's poll (epoll_wait on the reactor's set, which
 * also holds an eventfd) instead of on its event count, so readiness that arrives while the pool
 * idles wakes a worker that runs the waiting task itself: no hop through another thread. The
 * role is claimed before the parked bit is set, and a waker that clears a parked bit reads the
 * role after that RMW, so a waker that claims the poller sees that it is one and calls the wake
 * hook (the eventfd) as well as bumping its event count. What a poll ends goes to the poller's
 * own ring (sx__push_polled); the poller then unparks and searches as usual, finding those
 * first. Busy workers see readiness too: every SX__INJECT_EVERY tasks, where the injector is
 * checked, a worker that can claim the role polls without sleeping - unless any poll returned
 * less than SX__BUSY_POLL_NS ago: each poll is a system call, a microsecond or more, which every
 * SX__INJECT_EVERY tasks of a few tens of nanoseconds would make a large share of the work; the
 * gap bounds that share, and the lateness it adds in a pool whose workers are all busy. A
 * searching worker polls every SX__SPIN_CLOCK_EVERY rounds (every round in a pool that never
 * parks). With no polling service this costs one load per SX__INJECT_EVERY tasks and one on
 * parking.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sched.h>
#include <time.h>

#include "exec/exec.h"

__thread sx__worker *sx__self __attribute__((tls_model("initial-exec")));

#define SX__INJECT_EVERY 61u
#define SX__BUSY_POLL_NS 20000u

static sx_task *task_of(ck_stack_entry_t *e)
{
	return sx__link_task(e);
}

static bool stopping(const sx_pool *p)
{
	int s = ck_pr_load_int(&p->state);

	return s == SX__CANCELLING || s == SX__STOPPED;
}

/* ---- injector ---------------------------------------------------------------------------- */

/*
 * Push the FIFO chain head..tail (linked through sx_next) as one entry. ck_stack offers
 * single-entry pushes only; this is the same CAS loop as ck_stack_push_upmc with the chain's tail
 * linked to the old top instead of the entry itself. Pops are all batch pops, so no ABA.
 */
void sx__inj_push_chain(sx_pool *p, sx_task *head, sx_task *tail)
{
	ck_stack_entry_t *top = ck_pr_load_ptr(&p->inj.head);

	head->sx_chain_tail = (head == tail) ? NULL : tail;
	sx__task_link(tail)->next = top;
	ck_pr_fence_store();
	while (!ck_pr_cas_ptr_value(&p->inj.head, top, sx__task_link(head), &top)) {
		sx__task_link(tail)->next = top;
		ck_pr_fence_store();
	}
}

static unsigned ring_free_slots(const sx__worker *w)
{
	return w->ring.mask - ck_ring_size(&w->ring);
}

/* ---- batches ------------------------------------------------------------------------------ */

/* Never called: its address marks an injector entry as a batch. */
void sx__batch_run(sx_task *t)
{
	(void)t;
	abort();
}

/* An empty batch for worker w; NULL only if the allocator fails. */
static sx__batch *batch_get(sx__worker *w)
{
	sx__batch *b;

	if (w->empty == NULL) {
		ck_stack_entry_t *e = ck_stack_batch_pop_upmc(&w->pool->spare_batches);

		while (e != NULL) {
			b = SX_CONTAINER_OF(task_of(e), sx__batch, task);
			e = e->next;
			b->next = w->empty;
			w->empty = b;
			w->nempty++;
		}
	}
	b = w->empty;
	if (b != NULL) {
		w->empty = b->next;
		w->nempty--;
	} else {
		b = w->pool->alloc.alloc(w->pool->alloc.ctx, SX__BATCH_BYTES, SX__CACHELINE);
		if (b == NULL)
			return NULL;
		ck_stack_push_upmc(&w->pool->batches, &b->reg);
	}
	b->task.sx_chain_tail = NULL;
	b->task.run = sx__batch_run;
	b->task.cancel = NULL;
	b->start = b->n = 0;
	return b;
}

static void batch_put(sx__worker *w, sx__batch *b)
{
	if (w->nempty < SX__BATCH_KEEP) {
		b->next = w->empty;
		w->empty = b;
		w->nempty++;
	} else {
		ck_stack_push_upmc(&w->pool->spare_batches, sx__task_link(&b->task));
	}
}

/* Destroy: free every batch the pool allocated (all are idle by then). */
void sx__free_batches(sx_pool *p)
{
	ck_stack_entry_t *e, *next;

	for (e = ck_stack_batch_pop_upmc(&p->batches); e != NULL; e = next) {
		next = e->next;
		p->alloc.free(p->alloc.ctx, SX_CONTAINER_OF(e, sx__batch, reg), SX__BATCH_BYTES,
		    SX__CACHELINE);
	}
}

/* ---- injector ----------------------------------------------------------------------------- */

static void take(sx__worker *w, sx_task *t, sx_task **first, unsigned *room)
{
	if (*first == NULL) {
		*first = t;
	} else {
		ck_ring_enqueue_spmc(&w->ring, w->buf, t);
		(*room)--;
	}
}

/* Take the whole injector; return its oldest task and queue up to half a ring locally. */
static sx_task *inj_grab(sx__worker *w)
{
	sx_pool *p = w->pool;
	ck_stack_entry_t *e;
	sx_task *head = NULL, *tail = NULL, *t, *first = NULL;
	unsigned room, taken = 0;

	if (ck_pr_load_ptr(&p->inj.head) == NULL)
		return NULL;
	e = ck_stack_batch_pop_upmc(&p->inj);
	if (e == NULL)
		return NULL;

	/* Stack order is newest first; rebuild oldest first. Chains are already oldest first. */
	while (e != NULL) {
		sx_task *last;

		t = task_of(e);
		last = (t->sx_chain_tail != NULL) ? t->sx_chain_tail : t;
		t->sx_chain_tail = NULL;
		e = sx__task_link(last)->next;
		sx__task_link(last)->next = (head != NULL) ? sx__task_link(head) : NULL;
		if (tail == NULL)
			tail = last;
		head = t;
	}

	/* Run the oldest task, queue up to half a ring behind it. A batch hands out its items in
	 * order and may stay, partly consumed, at the head of what goes back. */
	room = ring_free_slots(w);
	if (room > p->ring_size / 2)
		room = p->ring_size / 2;
	for (t = head; t != NULL;) {
		ck_stack_entry_t *ne = sx__task_link(t)->next;
		sx_task *next = (ne != NULL) ? task_of(ne) : NULL;

		if (sx__is_batch(t)) {
			sx__batch *b = SX_CONTAINER_OF(t, sx__batch, task);

			while (b->start < b->n && (first == NULL || room > 0)) {
				take(w, b->items[b->start++], &first, &room);
				taken++;
			}
			if (b->start < b->n)
				break;
			batch_put(w, b);
		} else {
			if (first != NULL && room == 0)
				break;
			take(w, t, &first, &room);
			taken++;
		}
		t = next;
	}
	if (t != NULL)
		sx__inj_push_chain(p, t, tail);
	sx__stat_add(&w->stats.injected, taken);
	return first;
}

/* ---- local ring -------------------------------------------------------------------------- */

/*
 * Full ring: move the older half to the injector with one CAS on our own c_head - as one batch
 * of pointers, or, if no batch can be allocated, as a chain linked through the tasks.
 */
void sx__ring_overflow(sx__worker *w)
{
	const unsigned mask = w->ring.mask;
	unsigned c = ck_pr_load_uint(&w->ring.c_head);
	unsigned k = (w->ring.p_tail - c) / 2;
	sx__batch *b = batch_get(w);

	if (b != NULL && k > SX__BATCH_CAP)
		k = SX__BATCH_CAP;
	if (k == 0 || !ck_pr_cas_uint(&w->ring.c_head, c, c + k)) {
		if (b != NULL)
			batch_put(w, b);
		return; /* thieves made room */
	}
	/* The claimed slots are ours now: only the owner ever writes a slot. */
	if (b != NULL) {
		for (unsigned i = 0; i < k; i++)
			b->items[i] = w->buf[(c + i) & mask].value;
		b->n = k;
		ck_stack_push_upmc(&w->pool->inj, sx__task_link(&b->task));
	} else {
		sx_task *head = w->buf[c & mask].value, *prev = head;

		for (unsigned i = 1; i < k; i++) {
			sx_task *t = w->buf[(c + i) & mask].value;

			sx__task_link(prev)->next = sx__task_link(t);
			prev = t;
		}
		sx__inj_push_chain(w->pool, head, prev);
	}
	sx__stat_add(&w->stats.overflowed, k);
	ck_pr_fence_atomic_load();
	sx__notify(w->pool);
}

static sx_task *ring_pop(sx__worker *w)
{
	sx_task *t;

	return ck_ring_dequeue_spmc(&w->ring, w->buf, &t) ? t : NULL;
}

/*
 * Steal about half of v's ring into w's, which must be empty: the copies go to w's slots from
 * p_tail on, up to half a ring of them, and into a ring holding tasks they could overwrite
 * some that are still queued (only its owner fills it, and the owner is here, so empty stays
 * empty). Returns the first stolen task, to run at once; NULL if v had nothing.
 */
/* CAS races a steal may lose to other thieves (or the owner's take-back) before it gives v up. */
#define SX__STEAL_TRIES 4

static sx_task *sx__ring_steal_half(sx__worker *w, sx__worker *v)
{
	const unsigned vmask = v->ring.mask, wmask = w->ring.mask;
	const ck_ring_buffer_t *vbuf;

	SX__ASSERT(ck_ring_size(&w->ring) == 0);
	for (int tries = 0; tries < SX__STEAL_TRIES; tries++) {
		unsigned c = ck_pr_load_uint(&v->ring.c_head);
		unsigned p, n, k, wp;
		sx_task *first;

		ck_pr_fence_load();
		p = ck_pr_load_uint(&v->ring.p_tail);
		n = p - c;
		if (n == 0)
			return NULL;
		if (n > vmask)
			continue; /* c_head moved between the two loads */
		k = n - n / 2;
		ck_pr_fence_load(); /* slot contents (and a new incarnation's buffer) after p_tail */
		vbuf = ck_pr_load_ptr(&v->buf);
		first = ck_pr_load_ptr(&vbuf[c & vmask].value);
		wp = w->ring.p_tail;
		for (unsigned i = 1; i < k; i++) {
			ck_pr_store_ptr(&w->buf[(wp + i - 1) & wmask].value,
			    ck_pr_load_ptr(&vbuf[(c + i) & vmask].value));
		}
		/* The copies must be read before the claim makes the slots reusable. */
		ck_pr_fence_load_atomic();
		if (ck_pr_cas_uint(&v->ring.c_head, c, c + k)) {
			ck_pr_fence_store();
			ck_pr_store_uint(&w->ring.p_tail, wp + k - 1);
			sx__stat_add(&w->stats.stolen, k);
			sx__stat_add(&w->stats.steals, 1);
			return first;
		}
	}
	return NULL;
}

/*
 * The LIFO slot holds the task its owner will run next, usually within nanoseconds (a
 * continuation it just scheduled). Taking it at once would bounce every hop of a chain between
 * cores, so a thief only takes it from an owner that makes no progress: one that has not finished
 * a task while the thief waited about SX__LIFO_PATIENCE pauses with the slot still full (the
 * owner is in a long task, or spinning, as ping-pong's sender does). Go's scheduler waits the
 * same way (3 us) before stealing runnext; a few hundred nanoseconds are enough here.
 */
#define SX__LIFO_PATIENCE 8u

static bool owner_stuck(const sx__worker *v)
{
	uint64_t done = ck_pr_load_64(&v->stats.executed);

	for (unsigned i = 0; i < SX__LIFO_PATIENCE; i++) {
		ck_pr_stall();
		if (ck_pr_load_ptr(&v->lifo) == NULL || ck_pr_load_64(&v->stats.executed) != done)
			return false;
	}
	return true;
}

/*
 * One sweep over the other slots, from a random one. A victim whose ring looks non-empty is
 * stolen from inside a read section of the pool's epoch domain, opened before the steal's own
 * snapshot of the ring, so the buffer it may read stays allocated until it ends (struct
 * sx__worker); an empty ring costs no section. Slots without a thread have empty rings and
 * LIFO slots and cost a look each.
 */
static sx_task *steal_any(sx__worker *w)
{
	sx_pool *p = w->pool;
	unsigned n = ck_pr_load_uint(&p->nslots), start;
	sx_task *t = NULL;

	if (n < 2)
		return NULL;
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	start = (unsigned)(w->rng % n);
	for (unsigned i = 0; i < n; i++) {
		sx__worker *v = sx__slot(p, (start + i) % n);

		if (v == w)
			continue;
		sx__stat_add(&w->stats.steal_attempts, 1);
		if (ck_ring_size(&v->ring) != 0) {
			sx__epoch_begin(&w->cache);
			t = sx__ring_steal_half(w, v);
			sx__epoch_end(&w->cache);
		}
		if (t == NULL && ck_pr_load_ptr(&v->lifo) != NULL && owner_stuck(v)) {
			t = ck_pr_fas_ptr(&v->lifo, NULL);
			if (t != NULL) {
				sx__stat_add(&w->stats.stolen, 1);
				sx__stat_add(&w->stats.steals, 1);
			}
		}
		if (t != NULL)
			break;
	}
	return t;
}

/* ---- idle accounting and parking --------------------------------------------------------- */

static bool work_visible(const sx_pool *p)
{
	if (ck_pr_load_ptr(&p->inj.head) != NULL)
		return true;
	for (unsigned i = 0, n = ck_pr_load_uint(&p->nslots); i < n; i++) {
		const sx__worker *v = sx__slot(p, i);

		if (ck_ring_size(&v->ring) != 0 || ck_pr_load_ptr(&v->lifo) != NULL)
			return true;
	}
	return false;
}

/* After claiming v's parked bit: v may sleep in the poll rather than on its event count. v set
 * the role before its bit, which the claim (an RMW) read, so the load below sees it. */
static inline void kick_if_poller(sx_pool *p, const sx__worker *v)
{
	const struct sx__pool_hooks *ph = ck_pr_load_ptr(&p->poll_hooks);

	if (ph == NULL)
		return;
	ck_pr_fence_atomic_load();
	if (ck_pr_load_32(&p->poller) == v->index + 1)
		ph->wake(p);
}

/*
 * Holding one unit taken from the parked count (moved to searching, on behalf of the worker
 * claimed): claim a parked worker by clearing its bit - prefer's first, when given - and wake
 * it. The worker structs stay until destroy, so the one a bit names may be woken even if it
 * has left its park meanwhile (a spurious wake-up, which it tolerates).
 */
static void claim_parked(sx_pool *p, sx__worker *prefer)
{
	sx__worker *v;

	if (prefer != NULL && ck_pr_btr_64(&p->parked[prefer->index / 64], prefer->index % 64)) {
		v = prefer;
		goto wake;
	}
	for (unsigned wi = 0; wi < p->nbitmap; wi++) {
		uint64_t bits = ck_pr_load_64(&p->parked[wi]);

		while (bits != 0) {
			unsigned b = (unsigned)__builtin_ctzll(bits);
			uint64_t mask = UINT64_C(1) << b;

			if (ck_pr_btr_64(&p->parked[wi], b)) {
				v = sx__slot(p, wi * 64 + b);
				goto wake;
			}
			bits &= ~mask;
		}
	}
	/* No bit to claim: every would-be sleeper is un-parking itself and will search. */
	ck_pr_add_32(&p->idle, SX__IDLE_PARK);
	return;
wake:
	ck_ec32_inc(&v->ec, &sx__ec_mode);
	kick_if_poller(p, v);
}

/*
 * Wake one parked worker if nobody is searching. Callers have published their task and ordered
 * that before this call's first load (an atomic RMW or a full fence). Lock-free.
 */
void sx__notify(sx_pool *p)
{
	uint32_t st = ck_pr_load_32(&p->idle);

	for (;;) {
		if (SX__IDLE_SEARCHING(st) != 0 || SX__IDLE_PARKED(st) == 0)
			return;
		if (ck_pr_cas_32_value(&p->idle, st, st + SX__IDLE_UNPARK, &st))
			break;
	}
	claim_parked(p, NULL);
}

/*
 * The caller stored v's retire flag and fenced. v parks by setting its bit, counting itself
 * parked (RMWs), then reading the flag; so either v sees the flag, or this load of the parked
 * count sees v counted. If any worker is counted parked, one is claimed - v by preference; when
 * v's bit cannot be had, v is awake and sees the flag, and whoever is claimed instead searches
 * (a spurious wake-up, never a lost one).
 */
void sx__wake_worker(sx_pool *p, sx__worker *v)
{
	uint32_t st = ck_pr_load_32(&p->idle);

	for (;;) {
		if (SX__IDLE_PARKED(st) == 0)
			return;
		if (ck_pr_cas_32_value(&p->idle, st, st + SX__IDLE_UNPARK, &st))
			break;
	}
	claim_parked(p, v);
}

void sx__wake_all(sx_pool *p)
{
	const struct sx__pool_hooks *ph = ck_pr_load_ptr(&p->poll_hooks);

	for (unsigned i = 0, n = ck_pr_load_uint(&p->nalloc); i < n; i++)
		ck_ec32_inc(&sx__slot(p, i)->ec, &sx__ec_mode);
	/* The caller's state store first (Dekker with the poller's claim, then its state load): a
	 * poller that claims the role after this load sees the state before it sleeps. */
	ck_pr_fence_memory();
	if (ph != NULL && ck_pr_load_32(&p->poller) != 0)
		ph->wake(p);
}

/* ---- the poller role --------------------------------------------------------------------- */

static bool claim_poller(sx__worker *w)
{
	uint32_t *role = &w->pool->poller;

	return ck_pr_load_32(role) == 0 && ck_pr_cas_32(role, 0, w->index + 1);
}

static void release_poller(sx__worker *w)
{
	SX__ASSERT(ck_pr_load_32(&w->pool->poller) == w->index + 1);
	ck_pr_fence_store();
	ck_pr_store_32(&w->pool->poller, 0);
}

/* The parallelism hint after tasks went to w's own ring (no fence): w runs them itself if
 * nobody comes. */
static void polled_hint(sx_pool *p)
{
	uint32_t st = ck_pr_load_32(&p->idle);

	if (SX__IDLE_SEARCHING(st) == 0 && SX__IDLE_PARKED(st) != 0)
		sx__notify(p);
}

/* A poll that does not sleep, if w can take the role (nobody else polls now). Returns how
 * many tasks it queued on w's ring. */
static unsigned poll_now(sx__worker *w, const struct sx__pool_hooks *ph)
{
	unsigned n;

	if (!claim_poller(w))
		return 0;
	n = ph->poll(w->pool, w, false);
	ck_pr_store_64(&w->pool->polled_at, sx__now_ns());
	release_poller(w);
	return n;
}

/* The run loop's poll, every SX__INJECT_EVERY tasks, at most once per SX__BUSY_POLL_NS. */
static unsigned poll_busy(sx__worker *w, const struct sx__pool_hooks *ph)
{
	if (sx__now_ns() - ck_pr_load_64(&w->pool->polled_at) < SX__BUSY_POLL_NS)
		return 0;
	return poll_now(w, ph);
}

static void become_searching(sx__worker *w)
{
	if (!w->searching) {
		w->searching = true;
		ck_pr_add_32(&w->pool->idle, SX__IDLE_SEARCHING_ONE);
	}
}

static void leave_searching(sx__worker *w)
{
	uint32_t old;

	if (!w->searching)
		return;
	w->searching = false;
	old = ck_pr_faa_32(&w->pool->idle, (uint32_t)-SX__IDLE_SEARCHING_ONE);
	ck_pr_fence_atomic_load();
	if (SX__IDLE_SEARCHING(old) == 1 && work_visible(w->pool))
		sx__notify(w->pool);
}

/* Tell wait_idle waiters this worker found nothing to do. Once per idle period. */
static void signal_idle(sx__worker *w)
{
	sx_pool *p = w->pool;

	if (w->went_idle)
		return;
	w->went_idle = true;
	ck_pr_fence_store_load(); /* our executed count before the waiter count (Dekker) */
	if (ck_pr_load_uint(&p->idle_waiters) != 0)
		ck_ec32_inc(&p->idle_ec, &sx__ec_mode);
}

/* Whether w was asked to retire (sx_pool_resize, the end of a block in place). */
static inline bool retire_asked(const sx__worker *w)
{
	return ck_pr_load_int(&w->retire) != 0;
}

/* Returns true if it un-parked itself, false if a waker claimed it (and counted it). */
static bool unannounce(sx__worker *w, uint64_t *word, unsigned bit)
{
	if (ck_pr_btr_64(word, bit)) {
		ck_pr_add_32(&w->pool->idle, SX__IDLE_UNPARK);
		return true;
	}
	return false;
}

/*
 * Sleep until claimed by a waker or the pool stops - as the poller, in the poll hook, when w
 * can take the role; then also until the poll queues tasks on w's ring. On return the worker is
 * searching; true if it polled tasks onto its own ring (the caller takes them from there).
 */
static bool park(sx__worker *w)
{
	sx_pool *p = w->pool;
	uint64_t *word = &p->parked[w->index / 64];
	unsigned bit = w->index % 64;
	const struct sx__pool_hooks *ph = ck_pr_load_ptr(&p->poll_hooks);
	bool polls = ph != NULL && claim_poller(w), got = false;
	uint32_t seq = ck_ec32_value(&w->ec);

	ck_pr_bts_64(word, bit); /* after the role: a waker that clears the bit sees it (RMW) */
	/* We were searching: move from one count to the other in one RMW. */
	ck_pr_add_32(&p->idle, SX__IDLE_PARK);
	w->searching = false;
	ck_pr_fence_atomic_load();
	if (work_visible(p) || stopping(p) || retire_asked(w)) {
		if (!unannounce(w, word, bit))
			sx__stat_add(&w->stats.wakeups, 1);
		goto out;
	}
	sx__stat_add(&w->stats.parks, 1);
	for (;;) {
		if ((ck_pr_load_64(word) & (UINT64_C(1) << bit)) == 0) {
			sx__stat_add(&w->stats.wakeups, 1);
			break;
		}
		if (stopping(p) || retire_asked(w)) {
			if (!unannounce(w, word, bit))
				sx__stat_add(&w->stats.wakeups, 1);
			break;
		}
		if (polls) {
			unsigned n = ph->poll(p, w, true);

			ck_pr_store_64(&p->polled_at, sx__now_ns());
			if (n == 0)
				continue; /* woken (the bit tells by whom), or nothing for a task */
			got = true;
			if (!unannounce(w, word, bit))
				sx__stat_add(&w->stats.wakeups, 1);
			break;
		}
		ck_ec32_wait(&w->ec, &sx__ec_mode, seq, NULL);
		seq = ck_ec32_value(&w->ec);
	}
out:
	if (polls)
		release_poller(w);
	w->searching = true;
	return got;
}

/* The longest pause (in ck_pr_stall calls) a searching worker makes between steal rounds. */
#define SX__SEARCH_PAUSE_MAX 64u
/* Search rounds between two clock reads of the spin budget (a read costs more than a round). */
#define SX__SPIN_CLOCK_EVERY 32u

/*
 * The spin budget adapts, as an adaptive mutex's spin does: a worker spins before parking only
 * while spinning pays. Work that turned up during a spin, or soon after the worker parked
 * (within the pool's spin_ns, so a full spin would have caught it), doubles the budget, up to
 * spin_ns; a park that lasted longer than spin_ns, a spin that could not have caught anything,
 * halves it, and below spin_ns / SX__SPIN_FLOOR_DIV it is 0: the worker parks as soon as a
 * search fails. A worker that keeps spinning in vain costs more than the CPU it burns: the
 * kernel's fair scheduler counts that time against it, so when work arrives from a thread on its
 * CPU the woken worker no longer preempts that thread and waits until it sleeps, which makes
 * every wake-up of a mostly idle pool slower. Bursty work keeps the full budget, and with it
 * hand-offs without a wake-up.
 */
#define SX__SPIN_FLOOR_DIV 64u

static void spin_paid(sx__worker *w)
{
	uint64_t cap = (uint64_t)w->pool->spin_ns, b = w->spin_budget;

	b = b < cap / 8 ? cap / 8 : b * 2;
	w->spin_budget = b < cap ? b : cap;
}

static void spin_wasted(sx__worker *w)
{
	w->spin_budget /= 2;
	if (w->spin_budget < (uint64_t)w->pool->spin_ns / SX__SPIN_FLOOR_DIV)
		w->spin_budget = 0;
}

/* Search until a task turns up (spinning, then parking), or the pool stops or w is asked to
 * retire (NULL). */
static sx_task *find_work(sx__worker *w)
{
	sx_pool *p = w->pool;
	uint64_t spin_start = 0;
	unsigned round = 0, pause = 1;
	bool adapt = p->spin_ns > 0;

	become_searching(w);
	for (;;) {
		const struct sx__pool_hooks *ph;
		sx_task *t;

		if (stopping(p) || retire_asked(w))
			break;
		t = steal_any(w);
		if (t == NULL)
			t = inj_grab(w);
		/* A pool that never parks polls every round, others every few (with the clock). */
		if (t == NULL && SX__UNLIKELY((ph = ck_pr_load_ptr(&p->poll_hooks)) != NULL) &&
		    (p->spin_ns == SX_SPIN_FOREVER || round % SX__SPIN_CLOCK_EVERY == 0) &&
		    poll_now(w, ph) > 0)
			t = ring_pop(w);
		if (t != NULL) {
			if (adapt && round != 0)
				spin_paid(w);
			leave_searching(w);
			return t;
		}
		signal_idle(w);
		/* Back off between rounds: every round reads the lines other workers write per task
		 * (their ring ends, LIFO slots, executed counts), which costs them a miss each. */
		for (unsigned i = 0; i < pause; i++)
			ck_pr_stall();
		if (pause < SX__SEARCH_PAUSE_MAX)
			pause *= 2;
		if (p->spin_ns == SX_SPIN_FOREVER)
			continue;
		if (adapt && w->spin_budget != 0) {
			if (round++ % SX__SPIN_CLOCK_EVERY != 0)
				continue;
			if (spin_start == 0) {
				spin_start = sx__now_ns();
				continue;
			}
			if (sx__now_ns() - spin_start < w->spin_budget) {
				sched_yield();
				continue;
			}
		}
		if (adapt) {
			uint64_t parked_at = sx__now_ns();
			bool got = park(w);

			if (sx__now_ns() - parked_at < (uint64_t)p->spin_ns)
				spin_paid(w);
			else
				spin_wasted(w);
			if (got && (t = ring_pop(w)) != NULL) {
				leave_searching(w);
				return t;
			}
		} else if (park(w) && (t = ring_pop(w)) != NULL) {
			leave_searching(w);
			return t;
		}
		spin_start = 0;
		round = 0;
	}
	leave_searching(w);
	return NULL;
}

/* ---- the loop ---------------------------------------------------------------------------- */

/*
 * The next task from w's own queues, or every SX__INJECT_EVERY tasks the injector's. NULL: all
 * of them are empty - or, only when `retire` is given (w's own loop, never a waiting task that
 * helps), w was asked to retire: then *retire is set and w's queues may still hold tasks, which
 * the caller must not search other workers with (a steal fills only an empty ring).
 */
static sx_task *next_local(sx__worker *w, bool *retire)
{
	sx_task *t;

	if (SX__UNLIKELY(--w->inject_in == 0)) {
		const struct sx__pool_hooks *ph = ck_pr_load_ptr(&w->pool->poll_hooks);

		w->inject_in = SX__INJECT_EVERY;
		if (SX__UNLIKELY(retire != NULL && retire_asked(w))) {
			*retire = true;
			return NULL;
		}
		/* A busy worker's look at readiness: what it ends queues behind this worker's tasks. */
		if (SX__UNLIKELY(ph != NULL) && poll_busy(w, ph) > 0)
			polled_hint(w->pool);
		t = inj_grab(w);
		if (t != NULL)
			return t;
	}
	if (ck_pr_load_ptr(&w->lifo) != NULL) {
		t = ck_pr_fas_ptr(&w->lifo, NULL);
		if (t != NULL) {
			if (w->lifo_streak < w->pool->lifo_cap) {
				w->lifo_streak++;
				sx__stat_add(&w->stats.lifo_runs, 1);
				return t;
			}
			sx__ring_push(w, t); /* its turn comes after what the ring holds */
		}
	}
	w->lifo_streak = 0;
	t = ring_pop(w);
	if (t == NULL)
		t = inj_grab(w);
	return t;
}

/* Run t and count it: the one place a worker runs a task (its loop, and nested, run_nested). */
static inline void run_counted(sx__worker *w, sx_task *t)
{
	w->went_idle = false;
	t->run(t);
	sx__stat_add(&w->stats.executed, 1);
}

void *sx__worker_main(void *arg)
{
	sx__worker *w = arg;

	sx__self = w;
	for (;;) {
		bool retire = false;
		sx_task *t;

		/* SX_CANCEL stops a worker between two tasks, whatever is still queued. */
		if (SX__UNLIKELY(stopping(w->pool)))
			break;
		t = next_local(w, &retire);
		/* Asked to retire, w goes straight to committing: its queues may hold tasks. */
		if (t == NULL && !retire)
			t = find_work(w);
		if (t == NULL) {
			if (stopping(w->pool))
				break;
			/* Asked to retire: commit to it (1 -> 2), unless a resizer took the request
			 * back first (1 -> 0); then work on, from w's own queues first (only a
			 * worker whose queues are empty may search, and steal). */
			if (ck_pr_cas_int(&w->retire, 1, 2))
				break;
			continue;
		}
		run_counted(w, t);
	}
	/* Retiring while the pool goes on (a stopping pool cancels or has drained what is queued
	 * here): what is still queued on w goes to the others. */
	if (!stopping(w->pool) && ck_pr_load_int(&w->retire) == 2) {
		sx__hand_off(w);
		sx__worker_retired(w);
		/* Its last task may have been the pool's last: wait_idle waiters hear it from the
		 * worker that ran it, which may be this one, leaving before it ever searched. */
		signal_idle(w);
	}
	sx__self = NULL;
	return NULL;
}

void sx__hand_off(sx__worker *w)
{
	const unsigned mask = w->ring.mask;
	sx_task *head = NULL, *tail = NULL;

	SX__ASSERT(w == sx__self);
	if (ck_pr_load_ptr(&w->lifo) != NULL)
		head = tail = ck_pr_fas_ptr(&w->lifo, NULL);
	for (;;) {
		unsigned c = ck_pr_load_uint(&w->ring.c_head), n = w->ring.p_tail - c;

		if (n == 0)
			break;
		/* Claim every slot at once, as a thief would; only the owner adds to the ring, so
		 * once this succeeds it stays empty. */
		if (!ck_pr_cas_uint(&w->ring.c_head, c, c + n))
			continue;
		for (unsigned i = 0; i < n; i++) {
			sx_task *t = w->buf[(c + i) & mask].value;

			if (tail != NULL)
				sx__task_link(tail)->next = sx__task_link(t);
			else
				head = t;
			tail = t;
		}
		break;
	}
	if (head == NULL)
		return;
	/* The LIFO task first: it was to run next. */
	sx__inj_push_chain(w->pool, head, tail);
	ck_pr_fence_atomic_load();
	sx__notify(w->pool);
}

/* Every task submitted has finished, observed at one instant: completions are summed before
 * submissions, both monotone, and a task is counted submitted before it can be completed. */
bool sx__quiescent(sx_pool *p)
{
	uint64_t done = 0, sub = 0;
	ck_stack_entry_t *e;

	/* Every slot ever allocated, live or not: the counters of a retired worker stay in its slot
	 * (a slot allocated between the two sums only adds to the submissions). */
	for (unsigned i = 0, n = ck_pr_load_uint(&p->nalloc); i < n; i++)
		done += ck_pr_load_64(&sx__slot(p, i)->stats.executed);
	ck_pr_fence_load();
	for (unsigned i = 0, n = ck_pr_load_uint(&p->nalloc); i < n; i++)
		sub += ck_pr_load_64(&sx__slot(p, i)->cache.submitted);
	for (e = ck_pr_load_ptr(&p->caches.head); e != NULL; e = ck_pr_load_ptr(&e->next))
		sub += ck_pr_load_64(&SX_CONTAINER_OF(e, sx__tcache, rec.link)->submitted);
	return done == sub;
}

/*
 * Take t back out of w's queues if it is where w put it last: its LIFO slot, or the producer end
 * of its ring. True: t is ours to run, exactly as if it had been popped. Owner only.
 *
 * The ring end, on ck_ring's indices (a Chase-Lev take, adapted to steal-half). Lower p_tail by
 * one, then (a full fence between them) read c_head. A thief that snapshots (c_head, p_tail) =
 * (c, p) claims slots [c, c + k), k = n - n/2, n = p - c, with one CAS from c; so a snapshot
 * taken before the lowering can still claim our slot if its c is today's c_head and its p was
 * high enough: taking slots back from the end leaves c_head where it was, and an old snapshot
 * stays valid. Hence the bound: untake_p is the highest p_tail any thief could have seen with
 * today's c_head (p_tail only grows between two untakes, so when c_head has moved since we last
 * looked it is the p_tail we start from; otherwise the highest one since). The slot is ours at
 * once if it lies beyond the longest claim such a snapshot allows; when it is the only slot left,
 * one CAS on c_head decides between us and the thieves; otherwise we leave it (the caller runs
 * the task inline and its entry stays behind, as before).
 */
bool sx__untake(sx__worker *w, sx_task *t)
{
	unsigned tail, head, n, k;

	SX__ASSERT(w == sx__self);
	if (ck_pr_load_ptr(&w->lifo) == t)
		return ck_pr_cas_ptr(&w->lifo, t, NULL); /* thieves may take the slot too */
	tail = w->ring.p_tail;
	if (tail == ck_pr_load_uint(&w->ring.c_head) ||
	    ck_pr_load_ptr(&w->buf[(tail - 1) & w->ring.mask].value) != t)
		return false;
	ck_pr_fas_uint(&w->ring.p_tail, tail - 1); /* a store and a full fence (xchg: cheaper) */
	head = ck_pr_load_uint(&w->ring.c_head);
	if (head != w->untake_c || (int)(tail - w->untake_p) > 0)
		w->untake_p = tail;
	w->untake_c = head;
	n = w->untake_p - head;
	k = n - n / 2;
	if ((int)(tail - 1 - head) >= (int)k)
		return true;
	if (head == tail - 1 && ck_pr_cas_uint(&w->ring.c_head, head, tail)) {
		ck_pr_store_uint(&w->ring.p_tail, tail);
		return true;
	}
	ck_pr_store_uint(&w->ring.p_tail, tail); /* a thief has it, or might */
	return false;
}

/* Run t on w's stack, nested in whatever w is waiting for, and count it. */
static void run_nested(sx__worker *w, sx_task *t)
{
	w->help_depth++;
	run_counted(w, t);
	w->help_depth--;
}

/* A waiting worker runs one task: its own queues first, then the injector, then another
 * worker's. 1: it ran one; 0: nothing to run (or nested too deep); -ESHUTDOWN: SX_CANCEL is
 * stopping w (unless through_cancel: a fork's waiter helps on). */
static int help_one(sx__worker *w, bool through_cancel)
{
	sx_task *t;

	SX__ASSERT(w == sx__self);
	if (SX__UNLIKELY(stopping(w->pool)) && !through_cancel)
		return -ESHUTDOWN;
	/* Each task run here nests on this stack; past SX__HELP_MAX_DEPTH the worker only waits
	 * (other workers steal from its queues meanwhile). */
	if (w->help_depth >= SX__HELP_MAX_DEPTH)
		return 0;
	t = next_local(w, NULL);
	if (t == NULL)
		t = steal_any(w);
	if (t == NULL)
		return 0;
	run_nested(w, t);
	return 1;
}

int sx__help_one(sx__worker *w)
{
	return help_one(w, false);
}

bool sx__take_back(sx__worker *w, sx_task *t)
{
	if (!sx__untake(w, t))
		return false;
	sx__stat_add(&w->stats.executed, 1);
	return true;
}

bool sx__run_if_queued(sx__worker *w, sx_task *t)
{
	if (!sx__untake(w, t))
		return false;
	run_nested(w, t);
	return true;
}

static int wait_loop(sx__worker *w, uint32_t *word, uint32_t flag, sx__wait_fn done, void *arg,
    uint64_t deadline, bool through_cancel)
{
	unsigned idle = 0;

	SX__ASSERT(w == NULL || w == sx__self);
	for (;;) {
		uint32_t seen = ck_pr_load_32(word);
		int rc = done(arg, seen);
		uint64_t until = deadline;

		if (rc != 0)
			return rc;
		if (deadline != UINT64_MAX && sx__now_ns() >= deadline)
			return -ETIMEDOUT;
		if (w != NULL) {
			int ran = help_one(w, through_cancel);

			if (ran < 0)
				return ran;
			if (ran > 0) {
				idle = 0;
				continue;
			}
		}
		if (++idle < SX__WAIT_SPINS) {
			ck_pr_stall();
			continue;
		}
		/* New tasks do not wake a helping worker: it sleeps in slices and looks again. */
		if (w != NULL) {
			uint64_t slice = sx__now_ns() + SX__HELP_SLICE_NS;

			until = slice < deadline ? slice : deadline;
		}
		sx__doze(word, seen, flag, until);
	}
}

int sx__wait(sx__worker *w, uint32_t *word, uint32_t flag, sx__wait_fn done, void *arg,
    uint64_t deadline)
{
	return wait_loop(w, word, flag, done, arg, deadline, false);
}

int sx__wait_fork(sx__worker *w, uint32_t *word, uint32_t flag, sx__wait_fn done, void *arg)
{
	SX__ASSERT(w != NULL);
	return wait_loop(w, word, flag, done, arg, UINT64_MAX, true);
}

int sx__wait_here(uint32_t *word, uint32_t flag, sx__wait_fn done, void *arg, uint64_t deadline)
{
	sx__worker *w = sx__self;
	int rc = sx__wait(w, word, flag, done, arg, deadline);

	if (rc == -ESHUTDOWN && w != NULL)
		rc = sx__wait(NULL, word, flag, done, arg, deadline);
	return rc;
}
