/*
 * Semaphores. One 64-bit word `state` carries everything the fast paths need:
 *
 *   bits  0..31  permits in use
 *   bits 32..60  waiters queued (counted from before their push until granted or cancelled)
 *   bit  61      TOKEN: some thread is dispatching
 *   bit  62      PENDING: somebody asked the dispatching thread to look once more
 *   bit  63      CLOSED: sx_sem_destroy has run; the dispatch cancels every waiter (-ESHUTDOWN)
 *
 * try_acquire and release are one CAS on it while no waiter is queued. A waiter counts itself in
 * (CAS), pushes its node on `inbox` (a ck_stack: one CAS) and dispatches. Dispatching needs the
 * TOKEN; a thread that finds it taken sets PENDING instead and returns, and the holder, before
 * it drops the TOKEN, clears PENDING and goes round again, so no request to dispatch is lost and
 * nobody ever waits for the holder. The holder moves the inbox (taken whole, newest first) in
 * reverse onto its FIFO list, then grants from the head while the head's n fits: one CAS adds n
 * to the permits in use and takes the waiter out of the count, so the permits are the waiter's
 * from that moment on. It stops at the first waiter that does not fit: that is the FIFO rule,
 * and the reason try_acquire fails while the count of waiters is not zero.
 *
 * Leaving: a waiter's outcome is settled on its own state word, and the thread that settles it
 * takes it out of the count first, so that an owner who sees the outcome (and returns, and may
 * destroy the semaphore) finds the count without it. That thread first sets HELD on the
 * waiter's word (one CAS: the dispatch granting the head, or cancelling it because its breaker
 * has tripped; or the breaker's callback), then changes the count (a grant: the permits and the
 * count in one CAS), then stores the outcome. A callback that finds HELD set by the dispatch
 * only marks the outcome cancelled and leaves the rest to it: the dispatch gives back the
 * permits it reserved (or the count), stores the outcome without HELD and tells. Owners wait
 * while HELD is set. Waiters the dispatch settled are told after the TOKEN is dropped.
 * A cancelled waiter stays on the FIFO list (out of the count) until the dispatch meets it at
 * the head (the breaker's callback dispatches, so a cancelled head never blocks the waiters
 * behind it), or until enough have piled up behind a head that still waits, when one pass sweeps
 * them out; sx_sem_destroy drops what is left.
 *
 * Destroy sets CLOSED (one CAS) and dispatches: from then on the dispatch grants nothing and
 * cancels every waiter it meets with -ESHUTDOWN (w->err). The creator's reference goes at that
 * CAS if no permit is in use, else with the release that gives back the last permit (both are
 * CASes on `state`, so exactly one of them sees CLOSED with nothing in use).
 *
 * Lifetimes: a waiter node is reference counted (the queue, the blocking caller, the breaker
 * callback, the scheduled task: each holds one) and holds a reference on the semaphore, so the
 * breaker's callback, which dispatches, never touches a freed semaphore.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <ck_pr.h>
#include <ck_stack.h>

#include <strix/sem.h>
#include <strix/timer.h>

#include "guard/guard.h"

#define USE_MASK UINT64_C(0xffffffff)
#define WAIT_SHIFT 32
#define WAIT_ONE (UINT64_C(1) << WAIT_SHIFT)
#define WAIT_MASK ((uint64_t)SX_SEM_MAX_WAITERS << WAIT_SHIFT)
#define TOKEN (UINT64_C(1) << 61)
#define PENDING (UINT64_C(1) << 62)
#define CLOSED (UINT64_C(1) << 63)
#define IN_USE(s) ((uint32_t)((s) & USE_MASK))
#define NWAIT(s) ((uint32_t)(((s) & WAIT_MASK) >> WAIT_SHIFT))

_Static_assert((WAIT_MASK & (TOKEN | PENDING | CLOSED | USE_MASK)) == 0, "state fields overlap");

/* A waiter's state word: an outcome (set once), a flag for a sleeping owner, and HELD: the
 * thread that set it (the dispatch granting or cancelling the waiter, or its breaker's callback)
 * is taking the waiter out of the count and will set the outcome; see "Leaving" at the top. */
enum { W_WAIT = 0, W_GRANTED = 1, W_CANCELLED = 2, W_OUTCOME = 3, W_SLEEP = 4, W_HELD = 8 };

typedef struct waiter {
	ck_stack_entry_t link;    /* in sem->inbox */
	struct waiter *next;      /* in the dispatcher's FIFO list, then in its list of grants */
	sx_task task;             /* asynchronous waiters: runs fn on the pool */
	sx_sem *sem;
	sx_breaker *stop;
	sx_breaker_cb *handle;    /* the callback on stop; withdrawn once (grant, or the last unref) */
	sx_sem_fn fn;             /* NULL: a blocking waiter */
	void *arg;
	uint32_t n;
	uint32_t state;           /* W_* */
	uint32_t old;             /* the state word its outcome replaced (dispatch, for telling) */
	uint32_t refs;
	int err;                  /* what fn receives; queued: -ESHUTDOWN once destroy cancelled it */
} waiter;

struct sx_sem {
	SX__ALIGNED uint64_t state;
	uint32_t cap;
	uint32_t refs;            /* the creator's, and one per waiter node */
	sx_pool *pool;
	uint64_t ncancelled;      /* waiters cancelled by their breaker (atomic) */
	SX__ALIGNED ck_stack_t inbox;
	/* The TOKEN holder's own (the CAS that takes the TOKEN orders them). */
	SX__ALIGNED waiter *head;
	waiter *tail;
	uint64_t qlen;            /* waiters on the FIFO list */
	uint64_t nswept;          /* cancelled waiters the dispatch dropped */
};

static void dispatch(sx_sem *s);

static void sem_unref(sx_sem *s)
{
	if (ck_pr_faa_32(&s->refs, (uint32_t)-1) == 1)
		sx__dfree(s, sizeof(*s), SX__CACHELINE);
}

static bool fits(uint64_t st, uint32_t n, const sx_sem *s)
{
	return (uint64_t)IN_USE(st) + n <= ck_pr_load_32(&s->cap);
}

static bool bad_n(uint32_t n)
{
	return n == 0 || n > SX_SEM_MAX_CAPACITY;
}

int sx_sem_create(sx_pool *pool, uint32_t capacity, sx_sem **out)
{
	sx_sem *s;

	if (out == NULL || capacity > SX_SEM_MAX_CAPACITY)
		return -EINVAL;
	s = sx__zalloc(sizeof(*s), SX__CACHELINE);
	if (s == NULL)
		return -ENOMEM;
	s->cap = capacity;
	s->refs = 1;
	s->pool = pool;
	ck_stack_init(&s->inbox);
	*out = s;
	return 0;
}

void sx_sem_destroy(sx_sem *s)
{
	uint64_t st;

	if (s == NULL)
		return;
	ck_pr_inc_32(&s->refs); /* ours, while the dispatch below runs */
	st = ck_pr_load_64(&s->state);
	while (!ck_pr_cas_64_value(&s->state, st, st | CLOSED, &st))
		;
	/* The creator's reference: now, or with the release of the last permit in use. */
	if (IN_USE(st) == 0)
		sem_unref(s);
	/* Cancel the queued waiters (-ESHUTDOWN) and drop the cancelled ones still queued. */
	dispatch(s);
	sem_unref(s);
}

uint32_t sx_sem_capacity(const sx_sem *s)
{
	return s == NULL ? 0 : ck_pr_load_32(&s->cap);
}

uint32_t sx_sem_in_use(const sx_sem *s)
{
	return s == NULL ? 0 : IN_USE(ck_pr_load_64(&s->state));
}

uint32_t sx_sem_waiting(const sx_sem *s)
{
	return s == NULL ? 0 : NWAIT(ck_pr_load_64(&s->state));
}

int sx_sem_try_acquire(sx_sem *s, uint32_t n)
{
	uint64_t st;

	if (s == NULL || bad_n(n))
		return -EINVAL;
	st = ck_pr_load_64(&s->state);
	for (;;) {
		if (NWAIT(st) != 0 || !fits(st, n, s))
			return -EAGAIN;
		if (ck_pr_cas_64_value(&s->state, st, st + n, &st))
			return 0;
	}
}

/* ---- waiter nodes ---- */

static waiter *w_new(sx_sem *s, uint32_t n, sx_sem_fn fn, void *arg, uint32_t refs)
{
	waiter *w = sx__zalloc(sizeof(*w), SX__SMALL_ALIGN);

	if (w == NULL)
		return NULL;
	w->sem = s;
	w->n = n;
	w->fn = fn;
	w->arg = arg;
	w->refs = refs;
	ck_pr_inc_32(&s->refs);
	return w;
}

static void w_unref(waiter *w)
{
	sx_sem *s = w->sem;

	if (ck_pr_faa_32(&w->refs, (uint32_t)-1) != 1)
		return;
	/* Nobody withdrew the callback yet (it cancelled this waiter, or never ran): free it. */
	if (w->handle != NULL)
		(void)sx_breaker_withdraw(w->handle);
	if (w->stop != NULL)
		sx__breaker_unref(w->stop);
	sx__dfree(w, sizeof(*w), SX__SMALL_ALIGN);
	sem_unref(s);
}


/* What a waiter that was not granted is told: -ESHUTDOWN if sx_sem_destroy cancelled it, else
 * its breaker's code. */
static int w_code(const waiter *w)
{
	int err = ck_pr_load_int(&w->err);

	return err != 0 ? err : sx_breaker_err(w->stop);
}

/* ---- asynchronous delivery ---- */

static void cb_run(sx_task *t)
{
	waiter *w = SX_CONTAINER_OF(t, waiter, task);

	w->fn(w->sem, w->err, w->arg);
	w_unref(w);
}

/* Run fn with err where it stands (the pool refused or discarded the task): permits that were
 * granted go back first, so the callback never holds permits it was told it does not have. */
static void cb_inline(waiter *w, int err)
{
	if (w->err == 0)
		(void)sx_sem_release(w->sem, w->n);
	w->fn(w->sem, err, w->arg);
	w_unref(w);
}

static void cb_cancel(sx_task *t, int err)
{
	cb_inline(SX_CONTAINER_OF(t, waiter, task), err);
}

/* Queue fn(sem, err, arg) on the pool. Takes a reference for the task; on failure gives it back
 * and returns the pool's code (the caller decides whether fn still has to run). */
static int schedule(waiter *w, int err)
{
	int rc;

	w->err = err;
	w->task.run = cb_run;
	w->task.cancel = cb_cancel;
	ck_pr_inc_32(&w->refs);
	rc = sx_pool_submit_task(w->sem->pool, &w->task);
	if (rc != 0)
		ck_pr_dec_32(&w->refs); /* the caller holds one: never the last */
	return rc;
}

/* Deliver an outcome that was decided after the call returned: fn runs whatever happens. */
static void deliver(waiter *w, int err)
{
	int rc = schedule(w, err);

	if (rc != 0) {
		ck_pr_inc_32(&w->refs);
		cb_inline(w, rc);
	}
}

/* Tell the owner of w the outcome just settled (old: the word it replaced): wake a blocking
 * owner, or schedule the callback. */
static void tell(waiter *w, uint32_t old, int err)
{
	if (w->fn != NULL)
		deliver(w, err);
	else if (old & W_SLEEP)
		sx__futex_wake(&w->state);
}

/* ---- dispatch ---- */

static void leave(sx_sem *s)
{
	ck_pr_sub_64(&s->state, WAIT_ONE);
}

/* Take the head off the FIFO list. TOKEN holder only. */
static void unlink_head(sx_sem *s)
{
	s->head = s->head->next;
	if (s->head == NULL)
		s->tail = NULL;
	s->qlen--;
}

/* Drop every cancelled waiter from the FIFO list once they are half of it or more (so each
 * pass removes at least half of what it walks: O(1) amortized per waiter). TOKEN holder only. */
static void sweep(sx_sem *s)
{
	int64_t pending = (int64_t)(ck_pr_load_64(&s->ncancelled) - s->nswept);
	waiter *w, *prev = NULL, *next;

	if (pending <= 0 || (uint64_t)pending * 2 < s->qlen)
		return;
	for (w = s->head; w != NULL; w = next) {
		next = w->next;
		if ((ck_pr_load_32(&w->state) & W_OUTCOME) != W_CANCELLED) {
			prev = w;
			continue;
		}
		if (prev == NULL)
			s->head = next;
		else
			prev->next = next;
		if (s->tail == w)
			s->tail = prev;
		s->qlen--;
		s->nswept++;
		w_unref(w);
	}
}

/* TOKEN holder: take in new waiters, then grant from the head while it fits; granted waiters
 * are appended to *ready (told later, outside the TOKEN). */
static void drain(sx_sem *s, waiter **ready, waiter **ready_tail)
{
	sx__link *e = sx__list_reverse(ck_stack_batch_pop_upmc(&s->inbox)); /* oldest first */
	waiter **end = s->tail != NULL ? &s->tail->next : &s->head, *w;
	uint64_t st;

	for (; e != NULL; e = e->next) {
		w = SX_CONTAINER_OF(e, waiter, link);
		w->next = NULL;
		*end = w;
		end = &w->next;
		s->tail = w;
		s->qlen++;
	}
	sweep(s);
	while ((w = s->head) != NULL) {
		uint32_t ws = ck_pr_load_32(&w->state), old;
		bool stopped = w->stop != NULL && sx_breaker_done(w->stop), reserved = false;
		bool granted = false, shut = false;

		if ((ws & W_OUTCOME) != W_WAIT || (ws & W_HELD)) {
			/* Cancelled, or being cancelled by its callback (which counts it out). */
			unlink_head(s);
			s->nswept++;
			w_unref(w);
			continue;
		}
		if (!stopped && (ck_pr_load_64(&s->state) & CLOSED))
			stopped = shut = true; /* destroyed: cancelled like a tripped breaker */
		if (!stopped && !fits(ck_pr_load_64(&s->state), w->n, s))
			return;
		if (!ck_pr_cas_32(&w->state, ws, ws | W_HELD))
			continue; /* its owner went to sleep, or its callback came: look again */
		if (shut)
			ck_pr_store_int(&w->err, -ESHUTDOWN); /* before the outcome shows */
		if (stopped) {
			/* A breaker that has tripped wins even if its callback has not run yet. */
			leave(s);
		} else {
			st = ck_pr_load_64(&s->state);
			while (!(st & CLOSED) && fits(st, w->n, s)) {
				if (ck_pr_cas_64_value(&s->state, st, st + w->n - WAIT_ONE, &st)) {
					reserved = true;
					break;
				}
			}
		}
		ws = ck_pr_load_32(&w->state);
		while ((ws & W_OUTCOME) == W_WAIT) {
			if (!stopped && !reserved) {
				/* The capacity shrank meanwhile (or destroy came: it goes round
				 * again, PENDING): it goes on waiting at the head. */
				if (ck_pr_cas_32_value(&w->state, ws, ws & ~(uint32_t)W_HELD, &ws))
					return;
			} else if (reserved) {
				if ((granted = ck_pr_cas_32_value(&w->state, ws, W_GRANTED, &ws)))
					break;
			} else {
				break; /* stopped */
			}
		}
		if (granted) {
			old = ws; /* the word it replaced */
		} else {
			/* Cancelled: by us (stopped), or by its callback while we held it, which left
			 * the count and the telling to us. */
			if (reserved)
				ck_pr_sub_64(&s->state, w->n);
			else if (!stopped)
				leave(s);
			old = ck_pr_fas_32(&w->state, W_CANCELLED);
		}
		w->old = old;
		unlink_head(s);
		w->next = NULL;
		if (*ready_tail != NULL)
			(*ready_tail)->next = w;
		else
			*ready = w;
		*ready_tail = w;
	}
}

/* Tell a waiter the dispatch settled (granted, or cancelled because its breaker had tripped);
 * drops the queue's reference. Outside the TOKEN. */
static void grant(waiter *w)
{
	if ((ck_pr_load_32(&w->state) & W_OUTCOME) == W_CANCELLED) {
		tell(w, w->old, w_code(w));
		w_unref(w);
		return;
	}
	if (w->handle != NULL) {
		sx_breaker_cb *h = w->handle;

		w->handle = NULL;
		if (sx_breaker_withdraw(h) == 0)
			w_unref(w); /* the callback will never run: its reference */
	}
	tell(w, w->old, 0);
	w_unref(w);
}

static void dispatch(sx_sem *s)
{
	waiter *ready = NULL, *ready_tail = NULL, *next;
	uint64_t st = ck_pr_load_64(&s->state);

	for (;;) {
		if (!(st & TOKEN)) {
			if (ck_pr_cas_64_value(&s->state, st, st | TOKEN, &st))
				break;
		} else if ((st & PENDING) || ck_pr_cas_64_value(&s->state, st, st | PENDING, &st)) {
			return; /* the holder goes round once more */
		}
	}
	for (;;) {
		drain(s, &ready, &ready_tail);
		st = ck_pr_load_64(&s->state);
		for (;;) {
			uint64_t to = (st & PENDING) ? st & ~PENDING : st & ~TOKEN;

			if (ck_pr_cas_64_value(&s->state, st, to, &st))
				break;
		}
		if (!(st & PENDING))
			break;
	}
	/* s may be freed once the last of these is told: do not touch it afterwards. */
	for (; ready != NULL; ready = next) {
		next = ready->next;
		grant(ready);
	}
}

/* sx_sem_release when the first look finds waiters, CLOSED, or a CAS to retry. */
static __attribute__((noinline)) int release_slow(sx_sem *s, uint32_t n)
{
	bool ref = false;
	uint64_t st;

	st = ck_pr_load_64(&s->state);
	do {
		if (IN_USE(st) < n) {
			if (ref)
				sem_unref(s);
			return -EINVAL;
		}
		/* Waiters to dispatch: keep s while we do, taken while our permits still keep it
		 * (a destroy may free it once they are back). */
		if (NWAIT(st) != 0 && !ref) {
			ck_pr_inc_32(&s->refs);
			ref = true;
		}
	} while (!ck_pr_cas_64_value(&s->state, st, st - n, &st));
	if (NWAIT(st) != 0)
		dispatch(s);
	if ((st & CLOSED) && IN_USE(st) == n)
		sem_unref(s); /* destroyed while permits were held: this was the last of them */
	if (ref)
		sem_unref(s);
	return 0;
}

int sx_sem_release(sx_sem *s, uint32_t n)
{
	uint64_t st;

	if (s == NULL || n == 0)
		return -EINVAL;
	/* No waiter to dispatch and not destroyed: giving the permits back is all (one CAS). */
	st = ck_pr_load_64(&s->state);
	if (SX__LIKELY((st & (WAIT_MASK | CLOSED)) == 0 && IN_USE(st) >= n) &&
	    ck_pr_cas_64(&s->state, st, st - n))
		return 0;
	return release_slow(s, n);
}

int sx_sem_set_capacity(sx_sem *s, uint32_t capacity)
{
	if (s == NULL || capacity > SX_SEM_MAX_CAPACITY)
		return -EINVAL;
	/* An exchange, not a store: it must be ordered before the load of the waiter count (a waiter
	 * counting itself in at the same time dispatches after, and sees the new capacity). */
	(void)ck_pr_fas_32(&s->cap, capacity);
	if (NWAIT(ck_pr_load_64(&s->state)) != 0)
		dispatch(s);
	return 0;
}

/* ---- waiting ---- */

/* The breaker's callback: cancel the waiter unless it was granted, then let the dispatch drop it
 * (it may be the head that the others wait behind). */
static void on_stop(sx_breaker *b, void *arg)
{
	waiter *w = arg;
	sx_sem *s = w->sem;
	uint32_t st = ck_pr_load_32(&w->state), old;

	while ((st & W_OUTCOME) == W_WAIT) {
		if (!(st & W_HELD)) {
			if (!ck_pr_cas_32_value(&w->state, st, st | W_HELD, &st))
				continue;
			/* Out of the count before the outcome shows: an owner that returns finds it
			 * gone (sx_sem_waiting right after a timed-out acquire does not count it). */
			leave(s);
			ck_pr_inc_64(&s->ncancelled);
			old = ck_pr_fas_32(&w->state, W_CANCELLED);
			tell(w, old, sx_breaker_err(b));
			dispatch(s);
			break;
		}
		/* The dispatch holds it: it finishes the count and tells the owner. */
		if (ck_pr_cas_32_value(&w->state, st, W_CANCELLED | (st & (W_HELD | W_SLEEP)), &st))
			break;
	}
	w_unref(w);
}

/*
 * Queue w (holding the queue's reference, and the caller's for a blocking waiter): count it in,
 * watch stop, push, dispatch. Returns 0 once queued; 1 if stop had tripped (w is not queued and
 * still holds what it held on entry); or an error (w is freed).
 */
static int enqueue(waiter *w, sx_breaker *stop)
{
	sx_sem *s = w->sem;
	uint64_t st = ck_pr_load_64(&s->state);
	int rc;

	do {
		if (NWAIT(st) >= SX_SEM_MAX_WAITERS) {
			w->refs = 1;
			w_unref(w);
			return -EAGAIN;
		}
	} while (!ck_pr_cas_64_value(&s->state, st, st + WAIT_ONE, &st));
	if (stop != NULL) {
		/* The grant reads stop, possibly after the caller has released it: keep it. */
		sx__breaker_ref(stop);
		w->stop = stop;
		w->refs++; /* the callback's; w is not shared yet */
		rc = sx_breaker_on_done(stop, on_stop, w, &w->handle);
		if (rc != 0) {
			w->refs--;
			leave(s);
			if (rc == -EALREADY)
				return 1;
			w->refs = 1;
			w_unref(w);
			return rc;
		}
	}
	ck_stack_push_upmc(&s->inbox, &w->link);
	dispatch(s);
	return 0;
}

/* HELD: the outcome (or the count behind it) is being settled; wait it out too. */
static int settled(void *arg, uint32_t st)
{
	(void)arg;
	return (st & W_OUTCOME) != W_WAIT && !(st & W_HELD);
}

/* Wait until w has an outcome; on a worker, run other tasks meanwhile. Drops the caller's
 * reference. */
static int wait_outcome(waiter *w)
{
	uint32_t st;
	int rc;

	(void)sx__wait_here(&w->state, W_SLEEP, settled, NULL, UINT64_MAX);
	st = ck_pr_load_32(&w->state);
	rc = (st & W_OUTCOME) == W_GRANTED ? 0 : w_code(w);
	w_unref(w);
	return rc;
}

int sx_sem_acquire(sx_sem *s, uint32_t n, sx_breaker *stop)
{
	waiter *w;
	int rc;

	if (s == NULL || bad_n(n))
		return -EINVAL;
	if (stop != NULL && sx_breaker_done(stop))
		return sx_breaker_err(stop);
	if (sx_sem_try_acquire(s, n) == 0)
		return 0;
	w = w_new(s, n, NULL, NULL, 2); /* the queue's and ours */
	if (w == NULL)
		return -ENOMEM;
	rc = enqueue(w, stop);
	if (rc == 1) {
		w->refs = 1;
		w_unref(w);
		return sx_breaker_err(stop);
	}
	return rc != 0 ? rc : wait_outcome(w);
}

int sx_sem_acquire_async(sx_sem *s, uint32_t n, sx_breaker *stop, sx_sem_fn fn, void *arg)
{
	waiter *w;
	int rc;

	if (s == NULL || fn == NULL || bad_n(n) || s->pool == NULL)
		return -EINVAL;
	w = w_new(s, n, fn, arg, 1);
	if (w == NULL)
		return -ENOMEM;
	if (stop != NULL && sx_breaker_done(stop)) {
		rc = 1;
	} else if (sx_sem_try_acquire(s, n) == 0) {
		rc = schedule(w, 0);
		if (rc != 0)
			(void)sx_sem_release(s, n);
		w_unref(w);
		return rc;
	} else {
		rc = enqueue(w, stop);
		if (rc != 1)
			return rc;
	}
	/* stop has tripped: the outcome is its code, delivered like any other. */
	w->state = W_CANCELLED;
	rc = schedule(w, sx_breaker_err(stop));
	w_unref(w);
	return rc;
}

size_t sx__sem_bytes(void)
{
	return sizeof(struct sx_sem);
}
