/*
 * Pipelines. A call runs the layers recursively on the caller's stack (layer i wraps layers
 * i+1..n, the action innermost), so every after is the code after a nested call returned: it
 * runs exactly once for each before that succeeded by construction, with nothing to remember.
 * Each layer is a function of its own kind, set when the layer is added, that calls the next
 * layer's (the action's layer follows the last): a call costs one indirect call per layer and
 * only what its policies do, with no dispatch on the kind.
 *
 * Timeouts without a timer per call. A timeout layer must trip a breaker at the deadline while
 * the calling thread is busy inside the call, so someone else has to know the deadline; arming a
 * timer for every call would cost a timer insert and cancel each time and, at millions of calls
 * a second with second-long timeouts, keep that many cancelled nodes alive until the timer
 * thread wakes. Instead each thread has a record (allocated once, reused by later threads after
 * it exits) with one entry per nested timeout in progress:
 *
 *     entry.state: seq << 2 | IDLE / ACTIVE / CLAIMED      (exchange, CAS)
 *     entry.deadline, entry.pool, entry.b[seq & 1] (the breaker the inner layers see)
 *
 * and a watch timer on the pool's timer service (inline on the timer thread: a scan of a few
 * entries) armed for the record's earliest deadline. `armed_until` is the deadline the record's
 * pending watch will look at; a call arms a new watch only when its deadline is earlier (or
 * none is pending), so in steady state a thread arms about one timer per timeout period,
 * whatever its call rate. The watch clears armed_until, then scans; a call publishes its entry,
 * then reads armed_until (both with full fences), so either the call sees no watch and arms
 * one, or the watch sees the call. Duplicated watches are harmless: each scans and re-arms.
 *
 * The watch claims a call past its deadline with CAS ACTIVE -> CLAIMED (the seq in the word
 * makes a later call's entry a different value), trips the breaker of the claimed seq's slot,
 * b[seq & 1], then stores the seq in fired[seq & 1]: after that it never touches the entry for
 * that seq again. A call with no breaker from the caller runs under one of the thread's two
 * reusable breakers at this depth, own[seq & 1], and ends without an atomic read-modify-write:
 * it stores its seq in `done` (the watch leaves such an entry alone) and loads the word:
 * CLAIMED is a timeout (its code is returned). It leaves the word as it is, so a claim can
 * still land after that load (a watch that read `done` before the store); the word then says
 * CLAIMED for the ended call. Either way the exchange that publishes seq n + 1 returns the word
 * of seq n, and no claim of n can happen after it: a CLAIMED one marks own[n & 1] dirty, and
 * the call n + 2, the next to use that slot, first waits for fired[n & 1] to show n (the trip
 * is over: the watch is done with the breaker) and makes a new one (an allocation only after a
 * timeout). A late trip thus only hits a breaker that no call is using. A call the caller gave
 * a stop breaker to runs under a child of it and ends with CAS ACTIVE -> IDLE instead; a lost
 * CAS waits for fired to show its seq (a trip on the timer thread: a few instructions), and the
 * child goes when the call ends. Any call settles a dirty slot before it writes b[] there.
 *
 * Hedges ride on the same records. A hedge layer's call takes the entry at its depth like a
 * timeout, with h[slot] pointing at a record in its own frame and the deadline of its first
 * hedge; the watch, finding it due, claims it as it would a timeout but, seeing h[slot], queues
 * the next attempt on the pool instead of tripping anything, and hands the entry back (ACTIVE
 * with the next hedge's deadline, or IDLE). The owner ends such an entry with CAS ACTIVE ->
 * IDLE, waiting out a claim in progress, so after its end no watch touches the frame, and the
 * frame outlives every attempt because the call returns only once they have all ended. A first
 * attempt that a hedge cancelled has had its breaker tripped: when that is the thread's own[]
 * (or the enclosing timeout's, which a hedge directly inside one shares), the slot is marked
 * dirty with E_SPENT, a claim with nothing to wait for, so the next call there replaces it.
 *
 * Counting. A pipeline counts its calls and what its layers did (sx_pipeline_snapshot) in
 * striped counters (base/base.h): a call's thread adds to its own cache line with a plain store,
 * so counting costs no locked instruction and no shared write.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include <ck_pr.h>
#include <ck_stack.h>

#include <strix/adaptive.h>
#include <strix/chaos.h>
#include <strix/events.h>
#include <strix/hedge.h>
#include <strix/pipeline.h>
#include <strix/registry.h>

#include "guard/guard.h"

typedef struct layer layer;

/* A layer's code: runs l's policy around the layers inside it (l[1], ...: see next()), with the
 * action as the innermost layer. */
typedef int (*layer_fn)(const layer *l, sx_call *call, sx_call_fn fn);

struct layer {
	layer_fn run;
	unsigned flags;
	void *obj;                   /* limiter, semaphore or circuit; timeout: the pool */
	uint64_t ns;                 /* timeout; circuit: its slow-call threshold */
	sx_retry_policy retry;
	int (*fallback)(sx_call *call, int err, void *arg);
	bool (*when)(int err, void *arg);
	void *arg;
	uint64_t (*key)(const sx_call *call);
	sx__counters *hstats;        /* hedge: its policy's counters */
	sx_interceptor ic;
	sx_events *events;           /* the pipeline's event ring (NULL: none), and its source */
	const char *name;
	sx__counters *stats;         /* the pipeline's counters */
};

/* The pipeline's counters (sx__counters slots), in sx_pipeline_metrics' order. */
enum { C_CALLS, C_FAILED, C_REJECTED, C_RETRIES, C_TIMEOUTS, C_HEDGES, C_FALLBACKS, C_N };
_Static_assert(C_N <= SX__STRIPE_N, "one cache line of counters per thread");

/* l[n] is the action's layer, so that every layer's inside is the layer after it. */
struct sx_pipeline {
	unsigned n;
	int called;
	sx_pool *pool;
	sx_events *events;
	const char *name;
	layer l[SX_PIPELINE_MAX + 1];
	sx__counters stats;
};

static int run_action(const layer *l, sx_call *call, sx_call_fn fn);
static int run_rate(const layer *l, sx_call *call, sx_call_fn fn);
static int run_rate_keyed(const layer *l, sx_call *call, sx_call_fn fn);
static int run_bulkhead(const layer *l, sx_call *call, sx_call_fn fn);
static int run_bulkhead_keyed(const layer *l, sx_call *call, sx_call_fn fn);
static int run_circuit_keyed(const layer *l, sx_call *call, sx_call_fn fn);
static int run_circuit(const layer *l, sx_call *call, sx_call_fn fn);
static int run_circuit_timed(const layer *l, sx_call *call, sx_call_fn fn);
static int run_timeout(const layer *l, sx_call *call, sx_call_fn fn);
static int run_retry(const layer *l, sx_call *call, sx_call_fn fn);
static int run_fallback(const layer *l, sx_call *call, sx_call_fn fn);
static int run_interceptor(const layer *l, sx_call *call, sx_call_fn fn);
static int run_adaptive(const layer *l, sx_call *call, sx_call_fn fn);
static int run_chaos(const layer *l, sx_call *call, sx_call_fn fn);
static int run_hedge(const layer *l, sx_call *call, sx_call_fn fn);

/* A hedge layer's flags: the layer just outside it is a timeout (run_hedge may share its
 * breaker); its policy learns the delay from samples (else ns is the fixed delay); a success
 * deposits into its budget. */
#define HEDGE_IN_TIMEOUT 0x100u
#define HEDGE_SAMPLED 0x200u
#define HEDGE_DEPOSIT 0x400u

/* ---- building ------------------------------------------------------------------------------- */

int sx_pipeline_create(const sx_pipeline_opts *opts, sx_pipeline **out)
{
	sx_pipeline *pl;

	if (out == NULL || (opts != NULL && !SX__RESERVED_CLEAR(opts)))
		return -EINVAL;
	pl = sx__zalloc(sizeof(*pl), SX__CACHELINE);
	if (pl == NULL)
		return -ENOMEM;
	pl->pool = opts != NULL ? opts->pool : NULL;
	pl->l[0].run = run_action;
	pl->l[0].stats = &pl->stats;
	*out = pl;
	return 0;
}

void sx_pipeline_destroy(sx_pipeline *pl)
{
	if (pl != NULL)
		sx__dfree(pl, sizeof(*pl), SX__CACHELINE);
}

/* Append layer l, filled by the caller; ok says whether the caller's arguments were valid.
 * Nothing changes unless it returns 0. */
static int push(sx_pipeline *pl, const layer *l, bool ok)
{
	if (pl == NULL || !ok)
		return -EINVAL;
	if (ck_pr_load_int(&pl->called))
		return -EBUSY;
	if (pl->n == SX_PIPELINE_MAX)
		return -ENOSPC;
	pl->l[pl->n] = *l;
	pl->l[pl->n].events = pl->events;
	pl->l[pl->n].stats = &pl->stats;
	pl->l[pl->n++].name = pl->name;
	pl->l[pl->n].run = run_action;
	pl->l[pl->n].stats = &pl->stats;
	return 0;
}

int sx_pipeline_add_ratelimit(sx_pipeline *pl, sx_ratelimit *rl, unsigned flags)
{
	layer l = { .run = run_rate, .obj = rl, .flags = flags };

	return push(pl, &l, rl != NULL && (flags & ~SX_PIPELINE_WAIT) == 0);
}

int sx_pipeline_add_ratelimit_keyed(sx_pipeline *pl, sx_ratelimit_keyed *kl,
    uint64_t (*key)(const sx_call *call))
{
	layer l = { .run = run_rate_keyed, .obj = kl, .key = key };

	return push(pl, &l, kl != NULL && key != NULL);
}

int sx_pipeline_add_bulkhead(sx_pipeline *pl, sx_sem *sem, unsigned flags)
{
	layer l = { .run = run_bulkhead, .obj = sem, .flags = flags };

	return push(pl, &l, sem != NULL && (flags & ~SX_PIPELINE_WAIT) == 0);
}

int sx_pipeline_add_circuit(sx_pipeline *pl, sx_circuit *c)
{
	/* ns: the circuit's slow-call threshold (fixed at its create): latency is measured only
	 * when it has one. */
	layer l = { .run = run_circuit, .obj = c, .ns = c != NULL ? sx__circuit_slow_ns(c) : 0 };

	if (l.ns != 0)
		l.run = run_circuit_timed;

	return push(pl, &l, c != NULL);
}

int sx_pipeline_add_circuit_keyed(sx_pipeline *pl, sx_registry *reg,
    uint64_t (*key)(const sx_call *call))
{
	/* ns: the circuits' slow-call threshold (every key's options are the same). */
	layer l = { .run = run_circuit_keyed, .obj = reg, .key = key,
	    .ns = reg != NULL ? sx__registry_slow_ns(reg) : 0 };

	return push(pl, &l, reg != NULL && key != NULL &&
	    sx__registry_kind(reg) == SX_REGISTRY_CIRCUIT);
}

int sx_pipeline_add_bulkhead_keyed(sx_pipeline *pl, sx_registry *reg,
    uint64_t (*key)(const sx_call *call), unsigned flags)
{
	layer l = { .run = run_bulkhead_keyed, .obj = reg, .key = key, .flags = flags };

	return push(pl, &l, reg != NULL && key != NULL && (flags & ~SX_PIPELINE_WAIT) == 0 &&
	    sx__registry_kind(reg) == SX_REGISTRY_BULKHEAD);
}

int sx_pipeline_add_timeout(sx_pipeline *pl, int64_t ns)
{
	layer l = { .run = run_timeout, .ns = (uint64_t)ns, .obj = pl != NULL ? pl->pool : NULL };

	if (ns < 0) /* no limit: no layer, the same checks */
		return pl == NULL ? -EINVAL : ck_pr_load_int(&pl->called) ? -EBUSY : 0;
	return push(pl, &l, ns != 0 && pl != NULL && pl->pool != NULL);
}

int sx_pipeline_add_retry(sx_pipeline *pl, const sx_retry_policy *policy, unsigned flags)
{
	layer l = { .run = run_retry, .flags = flags };
	bool ok = sx_retry_policy_check(policy) == 0 &&
	    (flags & ~SX_PIPELINE_RETRY_CIRCUIT_OPEN) == 0;

	if (ok)
		l.retry = *policy;
	return push(pl, &l, ok);
}

int sx_pipeline_add_fallback(sx_pipeline *pl, int (*fallback)(sx_call *call, int err, void *arg),
    bool (*when)(int err, void *arg), void *arg)
{
	layer l = { .run = run_fallback, .fallback = fallback, .when = when, .arg = arg };

	return push(pl, &l, fallback != NULL);
}

int sx_pipeline_set_events(sx_pipeline *pl, sx_events *ev, const char *name)
{
	if (pl == NULL)
		return -EINVAL;
	if (ck_pr_load_int(&pl->called))
		return -EBUSY;
	pl->events = ev;
	pl->name = name;
	for (unsigned i = 0; i <= pl->n; i++) {
		pl->l[i].events = ev;
		pl->l[i].name = name;
	}
	return 0;
}

int sx_pipeline_add_adaptive(sx_pipeline *pl, sx_adaptive *al)
{
	layer l = { .run = run_adaptive, .obj = al };

	return push(pl, &l, al != NULL);
}

int sx_pipeline_add_chaos(sx_pipeline *pl, sx_chaos *ch)
{
	layer l = { .run = run_chaos, .obj = ch };

	return push(pl, &l, ch != NULL);
}

int sx_pipeline_add_hedge(sx_pipeline *pl, sx_hedge *h)
{
	layer l = { .run = run_hedge, .obj = h };

	if (h != NULL) {
		l.arg = sx__hedge_pool(h);
		l.hstats = sx__hedge_stats(h);
		l.ns = (uint64_t)sx__hedge_fixed_ns(h);
		l.flags = (l.ns == 0 ? HEDGE_SAMPLED : 0) | (sx__hedge_deposits(h) ? HEDGE_DEPOSIT : 0);
	}
	if (pl != NULL && pl->n > 0 && pl->l[pl->n - 1].run == run_timeout)
		l.flags |= HEDGE_IN_TIMEOUT;
	return push(pl, &l, h != NULL);
}

int sx_pipeline_add_interceptor(sx_pipeline *pl, const sx_interceptor *ic)
{
	layer l = { .run = run_interceptor };
	bool ok = ic != NULL && ic->before != NULL && ic->after != NULL;

	if (ok)
		l.ic = *ic;
	return push(pl, &l, ok);
}

/* ---- timeouts: per-thread records and their watch ------------------------------------------ */

#define TW_DEPTH 8u
enum { E_IDLE = 0, E_ACTIVE = 1, E_CLAIMED = 2 };
/* dirty[slot]'s value for an own[] breaker that a hedge tripped (no seq is 1: no watch to wait for) */
#define E_SPENT UINT64_C(1)
#define E_ST(s) ((unsigned)((s) & 3u))
#define E_SEQ(s) ((s) & ~UINT64_C(3))      /* seq << 2 */
#define E_SLOT(s) ((unsigned)((s) >> 2) & 1u)

typedef struct tw_entry {
	uint64_t state;       /* seq << 2 | E_* */
	uint64_t done;        /* seq << 2 of the latest call under own[] that ended (owner) */
	uint64_t fired[2];    /* per slot: seq << 2 of the latest claim tripped in full (watch) */
	uint64_t deadline;    /* CLOCK_MONOTONIC ns */
	sx_pool *pool;
	sx_breaker *b[2];     /* per slot: the breaker of its latest call (the watch trips it) */
	struct hrun *h[2];    /* per slot: its latest call's hedge (NULL: a timeout's entry) */
	sx_breaker *own[2];   /* per slot: the thread's reusable breakers at this depth (owner) */
	uint64_t dirty[2];    /* per slot: seq << 2 of a claim of own[] not yet made good (owner) */
} tw_entry;

typedef struct tw_rec {
	sx__rec rec;             /* a per-thread record of tw_all (base/base.h) */
	SX__ALIGNED uint64_t armed_until;
	unsigned depth;          /* owner only */
	SX__ALIGNED tw_entry e[TW_DEPTH];
} tw_rec;

static ck_stack_t tw_all = CK_STACK_INITIALIZER;
static pthread_key_t tw_key;
static int tw_key_state;      /* sx__key_once's */
static __thread tw_rec *tw_mine __attribute__((tls_model("initial-exec")));

static void tw_exit(void *arg)
{
	tw_rec *r = arg;

	tw_mine = NULL; /* a later destructor of this thread that calls claims a record afresh */
	sx__rec_leave(&r->rec);
}

/* This thread's record in *out: 0; -ENOMEM; or sx__key_once's error. Nothing changes on error. */
static int tw_get(tw_rec **out)
{
	sx__rec *claimed;
	tw_rec *r;
	int rc;

	if (SX__LIKELY(tw_mine != NULL)) {
		*out = tw_mine;
		return 0;
	}
	if ((rc = sx__key_once(&tw_key_state, &tw_key, tw_exit)) != 0)
		return rc;
	if ((claimed = sx__rec_claim(&tw_all)) != NULL) {
		r = SX_CONTAINER_OF(claimed, tw_rec, rec);
	} else {
		r = sx__zalloc(sizeof(*r), SX__CACHELINE);
		if (r == NULL)
			return -ENOMEM;
		sx__rec_add(&tw_all, &r->rec);
	}
	if ((rc = sx__rec_bind(tw_key, &r->rec)) != 0)
		return rc;
	tw_mine = r;
	*out = r;
	return 0;
}

static void watch(void *arg, int status);

/* tw_arm past its first look: arm a watch for deadline unless one at or before it is pending. */
static __attribute__((noinline)) int tw_arm_slow(tw_rec *r, sx_pool *pool, uint64_t deadline)
{
	uint64_t cur = ck_pr_load_64(&r->armed_until);
	int rc;

	do {
		if (cur != 0 && cur <= deadline)
			return 0; /* a watch at or before our deadline is pending */
	} while (!ck_pr_cas_64_value(&r->armed_until, cur, deadline, &cur));
	rc = sx_timer_add_at(pool, deadline, SX_TIMER_INLINE, watch, r, NULL);
	if (rc != 0)
		ck_pr_cas_64(&r->armed_until, deadline, 0);
	return rc;
}

/* Make sure a watch will look at r no later than deadline. 0, or the timer service's error. */
static inline int tw_arm(tw_rec *r, sx_pool *pool, uint64_t deadline)
{
	uint64_t cur = ck_pr_load_64(&r->armed_until);

	if (SX__LIKELY(cur != 0 && cur <= deadline))
		return 0; /* a watch at or before our deadline is pending */
	return tw_arm_slow(r, pool, deadline);
}

static uint64_t hedge_fire(tw_entry *e, uint64_t s, struct hrun *r, int err);

/* Fire entry e (state s, ACTIVE) with err, if its call has not ended yet: claim it; a timeout's
 * entry then has the breaker of its slot tripped and says the trip is over (see the top); a
 * hedge's starts its next attempt (hedge_fire, which ends the claim). Returns the deadline the
 * entry waits for now (a hedge's next), 0 for none. */
static uint64_t tw_fire(tw_entry *e, uint64_t s, int err)
{
	unsigned slot = E_SLOT(s);
	struct hrun *r;

	if (!ck_pr_cas_64(&e->state, s, E_SEQ(s) | E_CLAIMED))
		return 0;
	ck_pr_fence_load(); /* b[slot], h[slot] as the owner wrote them before publishing s */
	if ((r = ck_pr_load_ptr(&e->h[slot])) != NULL)
		return hedge_fire(e, s, r, err);
	sx__breaker_trip_err(ck_pr_load_ptr(&e->b[slot]), err);
	ck_pr_fence_release();
	ck_pr_store_64(&e->fired[slot], E_SEQ(s));
	return 0;
}

/* Whether entry e (state s) holds a call in progress: ACTIVE and not ended under own[]. */
static bool tw_running(const tw_entry *e, uint64_t s)
{
	return E_ST(s) == E_ACTIVE && ck_pr_load_64((uint64_t *)&e->done) != E_SEQ(s);
}

static bool pool_down(sx_pool *p)
{
	return !sx__pool_running(p);
}

static void watch(void *arg, int status)
{
	tw_rec *r = arg;
	uint64_t now, next = UINT64_MAX;
	sx_pool *npool = NULL;

	(void)status; /* on shutdown the entries of the pool that went down fire with -ESHUTDOWN */
	ck_pr_store_64(&r->armed_until, 0);
	ck_pr_fence_memory();
	now = sx__now_ns();
	for (unsigned i = 0; i < TW_DEPTH; i++) {
		tw_entry *e = &r->e[i];
		uint64_t s = ck_pr_load_64(&e->state);
		sx_pool *p;
		uint64_t d;

		if (!tw_running(e, s))
			continue;
		ck_pr_fence_load(); /* the deadline and pool published with s (or a later call's) */
		p = ck_pr_load_ptr(&e->pool);
		d = ck_pr_load_64(&e->deadline);
		if (pool_down(p))
			d = tw_fire(e, s, -ESHUTDOWN);
		else if (d <= now)
			d = tw_fire(e, s, -ETIMEDOUT); /* a hedge's next deadline, or 0 */
		if (d != 0 && d < next)
			next = d, npool = p;
	}
	if (npool != NULL && tw_arm(r, npool, next) != 0) {
		/* The pool refused (shutting down, or no memory for a node): fire rather than
		 * leave the call unwatched. */
		for (unsigned i = 0; i < TW_DEPTH; i++) {
			tw_entry *e = &r->e[i];
			uint64_t s = ck_pr_load_64(&e->state);

			if (tw_running(e, s) && ck_pr_load_ptr(&e->pool) == npool)
				(void)tw_fire(e, s, -ESHUTDOWN);
		}
	}
}

/* The attempt's start, read once for all its layers: a reading that may lag (base.h) by about a
 * microsecond, far below a timer's or a limiter's resolution. */
static uint64_t call_now(sx_call *call)
{
	if (call->sx_now == 0)
		call->sx_now = sx__now_lag_ns();
	return call->sx_now;
}

/* The layers inside l: l[1] (the action's layer after the last). */
static inline int next(const layer *l, sx_call *call, sx_call_fn fn)
{
	return l[1].run(l + 1, call, fn);
}

/* The code of the call's breaker if it has tripped, else 0: checked before each layer's before
 * and before the action, so that a tripped breaker ends the call there. */
static inline int stopped(const sx_call *call)
{
	return call->breaker != NULL ? sx_breaker_err(call->breaker) : 0;
}

/* An event of layer l, when the pipeline has a ring (out of line: only refusals, retries,
 * timeouts and fallbacks get here). */
static __attribute__((noinline)) void note(const layer *l, int kind, int code, uint64_t value)
{
	(void)sx_events_emit(l->events, kind, code, value, l->name);
}

/* rc ends the call before its inner layers: a policy's refusal (a library code) is counted and
 * goes to the pipeline's ring; a tripped breaker's code or bad input does not. */
static inline int refused(const layer *l, int rc)
{
	if (rc < SX_EBASE && rc != SX_ESIGNAL) {
		sx__count(l->stats, C_REJECTED);
		if (SX__UNLIKELY(l->events != NULL))
			note(l, SX_EVENT_REJECTED, rc, 0);
	}
	return rc;
}

/* Wait until the watch's trip of slot's breaker for the claim of seq (<< 2) is over. */
static void tw_wait_fired(tw_entry *e, unsigned slot, uint64_t seq)
{
	while (ck_pr_load_64(&e->fired[slot]) != seq) /* the watch is inside the trip */
		sched_yield();
	ck_pr_fence_acquire();
}

/* Before a call writes b[slot]: if own[slot] was claimed (dirty), wait until its trip is over
 * (none to wait for if a hedge spent it) and drop it; then, for a call under own[] (make), have one. On failure to make it the slot is
 * left empty (and clean): the call fails, the next one tries again. */
static __attribute__((noinline)) int tw_slot(tw_entry *e, unsigned slot, bool make)
{
	sx_breaker *b;
	int rc;

	if (e->dirty[slot] != 0) {
		if (e->dirty[slot] != E_SPENT)
			tw_wait_fired(e, slot, e->dirty[slot]);
		sx_breaker_release(e->own[slot]);
		e->own[slot] = NULL;
		e->dirty[slot] = 0;
	}
	if (make && e->own[slot] == NULL) {
		if ((rc = sx_breaker_create(&b)) != 0)
			return rc;
		e->own[slot] = b;
	}
	return 0;
}

/* The exchange that published a call found old: a claim of the call before (during it, or
 * after its own look at the word: see the top) leaves that call's slot dirty. */
static inline void tw_note(tw_entry *e, uint64_t old)
{
	if (SX__UNLIKELY(E_ST(old) == E_CLAIMED))
		e->dirty[E_SLOT(old)] = E_SEQ(old);
}

/* End entry e's call (seq s, under a child of the caller's breaker): true if the watch claimed
 * it first (its trip is over when this returns). */
static bool tw_end_child(tw_entry *e, uint64_t s)
{
	if (ck_pr_cas_64(&e->state, s | E_ACTIVE, s | E_IDLE))
		return false;
	tw_wait_fired(e, E_SLOT(s), s);
	ck_pr_store_64(&e->state, s | E_IDLE);
	return true;
}

/* End entry e's call (seq s, under own[]): a plain store and a load (see the top). True if the
 * watch has claimed it by now. The word stays as it is, CLAIMED or not, until the next call's
 * exchange, which tells that call of any claim (tw_note): the one place a claim is noted. */
static inline bool tw_end_own(tw_entry *e, uint64_t s)
{
	ck_pr_store_64(&e->done, s);
	return ck_pr_load_64(&e->state) != (s | E_ACTIVE);
}

/* Run the layers inside l under r's entry at its depth, from the call's clock reading to its
 * deadline, with child (a child of the caller's breaker, which this releases) or, if NULL, the
 * thread's reusable breaker of the call's slot. */
static inline __attribute__((always_inline)) int tw_run(const layer *l, sx_call *call,
    sx_call_fn fn, tw_rec *r, sx_breaker *child)
{
	sx_pool *pool = l->obj;
	sx_breaker *outer = call->breaker, *b = child;
	tw_entry *e = &r->e[r->depth];
	uint64_t s = E_SEQ(ck_pr_load_64(&e->state)) + 4, deadline;
	unsigned slot = E_SLOT(s);
	bool armed, fired;
	int rc;

	/* A claim of this slot's call before may still be tripping b[slot]: it must be over before
	 * b[slot] is written, whatever breaker this call runs under. */
	if (SX__UNLIKELY(e->dirty[slot] != 0 || (child == NULL && e->own[slot] == NULL)) &&
	    (rc = tw_slot(e, slot, child == NULL)) != 0) {
		sx_breaker_release(child);
		return rc;
	}
	if (child == NULL)
		b = e->own[slot];
	/* Saturating: a timeout near 2^64 ns is "never" (the timer service caps it at 2^63). */
	if (__builtin_add_overflow(call_now(call), l->ns, &deadline))
		deadline = UINT64_MAX;
	ck_pr_store_ptr(&e->b[slot], b);
	ck_pr_store_ptr(&e->h[slot], NULL);
	ck_pr_store_ptr(&e->pool, pool);
	ck_pr_store_64(&e->deadline, deadline);
	ck_pr_fence_store();
	/* Publish the entry before reading armed_until (see the top): an exchange is the full
	 * barrier, cheaper than a store and a separate fence. */
	tw_note(e, ck_pr_fas_64(&e->state, s | E_ACTIVE));
	rc = tw_arm(r, pool, deadline);
	armed = rc == 0;
	if (SX__LIKELY(armed)) {
		r->depth++;
		call->breaker = b;
		rc = next(l, call, fn);
		call->breaker = outer;
		r->depth--;
	}
	if (child != NULL) {
		fired = tw_end_child(e, s);
		sx_breaker_release(child);
	} else {
		fired = tw_end_own(e, s);
	}
	if (SX__UNLIKELY(fired && armed)) /* the watch claimed it */
		rc = outer != NULL && sx_breaker_err(outer) != 0 ? sx_breaker_err(outer) : -ETIMEDOUT;
	return rc;
}

/* run_timeout for all but its common case: a caller's breaker (checked, and a child of it made),
 * the thread's first timeout (its record), the depth limit. */
static __attribute__((noinline)) int run_timeout_slow(const layer *l, sx_call *call,
    sx_call_fn fn)
{
	sx_breaker *child = NULL;
	tw_rec *r;
	int rc;

	if ((rc = stopped(call)) != 0 || (rc = tw_get(&r)) != 0)
		return rc;
	if (r->depth == TW_DEPTH)
		return -EOVERFLOW;
	if (call->breaker != NULL && (rc = sx_breaker_child(call->breaker, &child)) != 0)
		return rc;
	return tw_run(l, call, fn, r, child);
}

/* The common case: no caller's breaker (nothing to check), and this thread's record made by an
 * earlier call. */
static int run_timeout(const layer *l, sx_call *call, sx_call_fn fn)
{
	tw_rec *r = tw_mine;

	int rc;

	if (SX__LIKELY(call->breaker == NULL && r != NULL && r->depth < TW_DEPTH))
		rc = tw_run(l, call, fn, r, NULL);
	else
		rc = run_timeout_slow(l, call, fn);
	if (SX__UNLIKELY(rc == -ETIMEDOUT)) {
		sx__count(l->stats, C_TIMEOUTS);
		if (l->events != NULL)
			note(l, SX_EVENT_TIMEOUT, rc, 0);
	}
	return rc;
}

/* ---- running -------------------------------------------------------------------------------- */

static int run_action(const layer *l, sx_call *call, sx_call_fn fn)
{
	int rc = stopped(call);

	(void)l;
	return rc != 0 ? rc : fn(call);
}

static int run_rate(const layer *l, sx_call *call, sx_call_fn fn)
{
	int rc = stopped(call);

	if (rc != 0)
		return rc;
	rc = (l->flags & SX_PIPELINE_WAIT) ? sx_ratelimit_wait(l->obj, 1, call->breaker) :
	    sx__ratelimit_try_mono(l->obj, 1, call_now(call));
	return rc != 0 ? refused(l, rc) : next(l, call, fn);
}

static int run_rate_keyed(const layer *l, sx_call *call, sx_call_fn fn)
{
	int rc = stopped(call);

	if (rc != 0 || (rc = sx_ratelimit_keyed_try(l->obj, l->key(call), 1)) != 0)
		return refused(l, rc);
	return next(l, call, fn);
}

/* A permit of sem around the inner layers. */
static inline int bulkhead_on(const layer *l, sx_sem *sem, sx_call *call, sx_call_fn fn)
{
	int rc;

	if (l->flags & SX_PIPELINE_WAIT)
		rc = sx_sem_acquire(sem, 1, call->breaker);
	else if ((rc = sx_sem_try_acquire(sem, 1)) == -EAGAIN)
		rc = SX_EREJECTED;
	if (rc != 0)
		return refused(l, rc);
	rc = next(l, call, fn);
	(void)sx_sem_release(sem, 1);
	return rc;
}

static int run_bulkhead(const layer *l, sx_call *call, sx_call_fn fn)
{
	int rc = stopped(call);

	return rc != 0 ? rc : bulkhead_on(l, l->obj, call, fn);
}

/* The keyed layers hold a reference to the key's guard for the whole call: its entry is never
 * evicted while the call runs, and the after always reaches the guard the before used. */
static int run_bulkhead_keyed(const layer *l, sx_call *call, sx_call_fn fn)
{
	sx_registry_ref *ref;
	int rc = stopped(call);

	if (rc != 0 || (rc = sx_registry_get(l->obj, l->key(call), &ref)) != 0)
		return rc;
	rc = bulkhead_on(l, sx_registry_guard(ref), call, fn);
	sx_registry_put(ref);
	return rc;
}

static int run_circuit(const layer *l, sx_call *call, sx_call_fn fn)
{
	sx_circuit_permit permit;
	int rc = stopped(call);

	if (rc != 0 || (rc = sx_circuit_acquire(l->obj, &permit)) != 0)
		return refused(l, rc);
	rc = next(l, call, fn);
	(void)sx_circuit_release(l->obj, permit, rc, 0);
	return rc;
}

/* A circuit with a slow-call threshold: the latency is measured. */
static int run_circuit_timed(const layer *l, sx_call *call, sx_call_fn fn)
{
	sx_circuit_permit permit;
	uint64_t t0;
	int rc = stopped(call);

	if (rc != 0 || (rc = sx_circuit_acquire(l->obj, &permit)) != 0)
		return refused(l, rc);
	t0 = sx__now_fast_ns();
	rc = next(l, call, fn);
	(void)sx_circuit_release(l->obj, permit, rc, (int64_t)(sx__now_fast_ns() - t0));
	return rc;
}

static int run_circuit_keyed(const layer *l, sx_call *call, sx_call_fn fn)
{
	sx_circuit_permit permit;
	sx_registry_ref *ref;
	sx_circuit *c;
	uint64_t t0 = 0;
	int rc = stopped(call);

	if (rc != 0 || (rc = sx_registry_get(l->obj, l->key(call), &ref)) != 0)
		return rc;
	c = sx_registry_guard(ref);
	if ((rc = sx_circuit_acquire(c, &permit)) == 0) {
		if (l->ns != 0)
			t0 = sx__now_fast_ns();
		rc = next(l, call, fn);
		(void)sx_circuit_release(c, permit, rc,
		    l->ns != 0 ? (int64_t)(sx__now_fast_ns() - t0) : 0);
	}
	sx_registry_put(ref);
	return rc;
}

/* The attempts after a first that failed with rc; start as run_retry read it. Out of line:
 * its backoff state is no part of the first attempt's frame. */
static __attribute__((noinline)) int retry_more(const layer *l, sx_call *call, sx_call_fn fn,
    int rc, uint64_t start)
{
	const sx_retry_policy *p = &l->retry;
	uint64_t delay;
	sx_backoff bo;
	int prc;

	(void)sx_backoff_init(&bo, p); /* checked when the layer was added */
	for (unsigned attempt = 1;; attempt++) {
		if ((rc == SX_ECIRCUIT_OPEN && !(l->flags & SX_PIPELINE_RETRY_CIRCUIT_OPEN)) ||
		    (call->breaker != NULL && sx_breaker_done(call->breaker)))
			return rc;
		if (!sx__retry_next(p, &bo, rc, attempt, start, -1, &delay))
			return rc;
		sx__count(l->stats, C_RETRIES);
		if (SX__UNLIKELY(l->events != NULL))
			note(l, SX_EVENT_RETRY, rc, attempt + 1);
		if ((prc = sx__pause(p->clock, delay, call->breaker)) != 0)
			return prc;
		call->attempt = attempt + 1;
		call->sx_now = 0;
		rc = next(l, call, fn);
		if (rc == 0) {
			if (p->budget != NULL)
				sx_retry_budget_deposit(p->budget);
			return 0;
		}
	}
}

/* No check of the breaker of its own: the retry's before does nothing, and the layer inside
 * checks it first thing (its code then ends the retry, as a tripped breaker does). */
static int run_retry(const layer *l, sx_call *call, sx_call_fn fn)
{
	const sx_retry_policy *p = &l->retry;
	uint64_t start = p->max_elapsed_ns > 0 ? sx__policy_now(p) : 0;
	int rc;

	call->attempt = 1;
	call->sx_now = 0;
	rc = next(l, call, fn);
	if (rc != 0)
		return retry_more(l, call, fn, rc, start);
	if (p->budget != NULL)
		sx_retry_budget_deposit(p->budget);
	return 0;
}

static int run_fallback(const layer *l, sx_call *call, sx_call_fn fn)
{
	int rc = stopped(call);

	if (rc != 0)
		return rc;
	rc = next(l, call, fn);
	if (rc != 0 && (l->when == NULL || l->when(rc, l->arg))) {
		sx__count(l->stats, C_FALLBACKS);
		if (SX__UNLIKELY(l->events != NULL))
			note(l, SX_EVENT_FALLBACK, rc, 0);
		rc = l->fallback(call, rc, l->arg);
	}
	return rc;
}

static int run_interceptor(const layer *l, sx_call *call, sx_call_fn fn)
{
	uint64_t token = 0;
	int rc = stopped(call);

	if (rc != 0 || (rc = l->ic.before(l->ic.self, call, &token)) != 0)
		return rc;
	rc = next(l, call, fn);
	l->ic.after(l->ic.self, call, token, rc);
	return rc;
}

/* Calls of this thread through adaptive layers: one in ADAPTIVE_TIMED is timed. */
static __thread unsigned adaptive_calls;
#define ADAPTIVE_TIMED 8u

/* An adaptive limit: admitted under it, the inner result (and, for one call in ADAPTIVE_TIMED
 * on each thread, the latency: two clock reads cost more than the rest of the layer, and a
 * window's average needs only a sample of its calls) tell it how the call went. */
static int run_adaptive(const layer *l, sx_call *call, sx_call_fn fn)
{
	uint64_t t0;
	int rc = stopped(call);

	if (rc != 0 || (rc = sx_adaptive_acquire(l->obj)) != 0)
		return refused(l, rc);
	if (SX__LIKELY(++adaptive_calls % ADAPTIVE_TIMED != 0)) {
		rc = next(l, call, fn);
		(void)sx_adaptive_release(l->obj, rc, SX_ADAPTIVE_UNTIMED);
		return rc;
	}
	t0 = sx__now_fast_ns(); /* fresh: a waiting layer outside may have taken time since call_now */
	rc = next(l, call, fn);
	(void)sx_adaptive_release(l->obj, rc, (int64_t)(sx__now_fast_ns() - t0));
	return rc;
}

/* Fault injection: one draw per attempt (one load while the injector is off). */
static int run_chaos(const layer *l, sx_call *call, sx_call_fn fn)
{
	sx_chaos_fault f;
	int rc = stopped(call);

	if (rc != 0)
		return rc;
	if (SX__LIKELY(sx_chaos_draw(l->obj, &f) == 0))
		return next(l, call, fn);
	if (f.error != 0)
		return f.error;
	if (f.latency_ns > 0 && (rc = sx__chaos_delay(l->obj, f.latency_ns, call->breaker)) != 0)
		return rc;
	rc = next(l, call, fn);
	return f.replace ? f.outcome : rc;
}

/* ---- hedges: more attempts of the inner layers beside a slow one ---------------------------- */

#define H_NONE (-1)

struct hrun;

/* One attempt of a hedged call after the first: a pool task (queued by the watch) that runs the
 * inner layers under a breaker of its own, made when it starts. */
struct hatt {
	sx_task task;
	struct hrun *r;
	unsigned k;                  /* 1 .. max_hedges: its place among the attempts started */
	sx_breaker *b;               /* its breaker, published by the attempt (the owner frees it) */
	sx_call call;
	sx_ctx ctx;                  /* a copy of the caller's (its own dtor), if it has one */
};

/* A hedged call, in the calling thread's frame: the call returns only after every attempt it
 * started has ended, so nothing outlives it. The watch writes due, started and att[started]
 * only while it holds the entry's claim; the owner reads them after ending the entry. */
struct hrun {
	const layer *l;
	sx_call_fn fn;
	sx_hedge *h;
	sx_breaker *outer;           /* the breaker the hedge layer was called under (or NULL) */
	void *arg, *last;            /* the call's, for the attempts the pool runs */
	sx_ctx *ctx;
	unsigned attempt;
	uint64_t t0, delay;          /* hedge j is due at t0 + j * delay */
	unsigned due;                /* hedges due so far, refused ones included (watch) */
	unsigned started;            /* attempts started, the first included (watch) */
	int won;                     /* the k of the attempt whose value the call returns, or H_NONE */
	int last_rc;                 /* the code of the attempt that failed last */
	uint32_t ended;              /* waiting word: SX__EVENT_STEP per attempt of the pool ended */
	struct hatt att[SX_HEDGE_MAX_HEDGES + 1]; /* att[0].b: the first attempt's breaker */
};

/* The value a losing attempt made (or a failed one left) goes: destroyed with the dtor its ctx
 * has, if any (a plain call's is dropped: it has no dtor). */
static void hedge_discard(void *out, sx_ctx *ctx)
{
	if (out != NULL && ctx != NULL && ctx->dtor != NULL) {
		ctx->dtor(out);
		ctx->dtor = NULL;
	}
}

/* The first success wins: k's, if none came before (true). The winner trips every other
 * attempt's breaker it can see; one not published yet sees won after publishing its own (both
 * sides use a full barrier between their write and their read), so none is missed. */
static bool hedge_win(struct hrun *r, unsigned k)
{
	unsigned n;

	if (!ck_pr_cas_int(&r->won, H_NONE, (int)k))
		return false;
	n = ck_pr_load_uint(&r->started);
	for (unsigned j = 0; j < n; j++) {
		sx_breaker *b = j != k ? ck_pr_load_ptr(&r->att[j].b) : NULL;

		if (b != NULL)
			sx__breaker_trip_err(b, -ECANCELED);
	}
	return true;
}

/* The end of attempt a (on a worker, or in the cancel of a shutdown): its outcome, then one
 * step of the waiting word. After that step the owner may return: nothing of the frame is
 * touched again (the wake-up passes the word's address to the kernel only, and the flag is
 * never cleared, so no later write is needed). */
static void hedge_attempt_end(struct hatt *a, int rc)
{
	struct hrun *r = a->r;

	if (rc == 0) {
		if (!hedge_win(r, a->k))
			hedge_discard(a->call.out, a->call.ctx);
	} else {
		hedge_discard(a->call.out, a->call.ctx);
		ck_pr_store_int(&r->last_rc, rc);
	}
	if (ck_pr_faa_32(&r->ended, SX__EVENT_STEP) & SX__EVENT_WAITERS)
		sx__futex_wake(&r->ended);
}

static void hedge_task(sx_task *t)
{
	struct hatt *a = SX_CONTAINER_OF(t, struct hatt, task);
	struct hrun *r = a->r;
	sx_breaker *b = NULL;
	int rc;

	a->call = (sx_call){ r->arg, r->last, NULL, NULL, r->attempt, NULL, 0 };
	if (r->ctx != NULL) {
		a->ctx = (sx_ctx){ r->ctx->arg, r->ctx->attempt, r->ctx->promise, NULL };
		a->call.ctx = &a->ctx;
	}
	rc = r->outer != NULL ? sx_breaker_child(r->outer, &b) : sx_breaker_create(&b);
	if (rc == 0) {
		(void)ck_pr_fas_ptr(&a->b, b); /* published before won is read: see hedge_win */
		if (ck_pr_load_int(&r->won) != H_NONE)
			rc = -ECANCELED;
	}
	if (rc == 0) {
		a->call.breaker = b;
		rc = next(r->l, &a->call, r->fn);
	}
	hedge_attempt_end(a, rc);
}

/* The pool shut down (SX_CANCEL) with the attempt still queued: it ends without running. */
static void hedge_task_cancelled(sx_task *t, int err)
{
	(void)err;
	hedge_attempt_end(SX_CONTAINER_OF(t, struct hatt, task), -ESHUTDOWN);
}

/* The watch, holding the claim of r's entry e (state s): hedge r->due + 1 is due (err
 * -ETIMEDOUT), or the pool went down (-ESHUTDOWN: no more hedges). Unless a value is in
 * already, the hedge asks the budget and is queued on the pool; then the entry waits for the
 * next hedge (ACTIVE again, with its deadline, which this returns) or for nothing (IDLE, 0).
 * That store ends the claim: r may be gone right after it. */
static uint64_t hedge_fire(tw_entry *e, uint64_t s, struct hrun *r, int err)
{
	sx_hedge *h = r->h;
	unsigned j = ++r->due, k = r->started;
	bool more = j < sx__hedge_max(h);
	uint64_t next = 0;

	if (err == -ETIMEDOUT && ck_pr_load_int(&r->won) == H_NONE &&
	    sx__hedge_admit(h, j) == 0) {
		struct hatt *a = &r->att[k];

		a->task = (sx_task)SX_TASK_INIT(hedge_task, hedge_task_cancelled);
		a->r = r;
		a->k = k;
		a->b = NULL;
		if (sx_pool_submit_task(sx__hedge_pool(h), &a->task) == 0) {
			ck_pr_store_uint(&r->started, k + 1);
			sx__count(r->l->stats, C_HEDGES);
		} else {
			more = false; /* the pool refused: no more hedges for this call */
		}
	}
	if (err != -ETIMEDOUT || ck_pr_load_int(&r->won) != H_NONE)
		more = false;
	if (more) {
		if (__builtin_mul_overflow(r->delay, (uint64_t)j + 1, &next) ||
		    __builtin_add_overflow(next, r->t0, &next))
			next = UINT64_MAX;
		ck_pr_store_64(&e->deadline, next);
	}
	ck_pr_fence_release();
	ck_pr_store_64(&e->state, E_SEQ(s) | (more ? E_ACTIVE : E_IDLE));
	return next;
}

/* The owner ends its entry (seq s): no hedge starts after this. A claim in progress (the watch
 * queuing a hedge: a few instructions) is waited out. Returns the attempts started. */
static unsigned hedge_stop(tw_entry *e, uint64_t s, struct hrun *r)
{
	for (;;) {
		uint64_t cur = ck_pr_load_64(&e->state);

		if (cur == (s | E_ACTIVE) && ck_pr_cas_64(&e->state, cur, s | E_IDLE))
			break;
		if (cur == (s | E_IDLE))
			break;
		sched_yield(); /* CLAIMED: the watch is inside hedge_fire */
	}
	ck_pr_fence_acquire();
	return ck_pr_load_uint(&r->started);
}

static int hedge_joined(void *arg, uint32_t seen)
{
	const struct hrun *r = arg;

	return seen / SX__EVENT_STEP + 1 >= r->started ? 1 : 0;
}

/* The first attempt ended with rc and n > 1 attempts started: settle the first's outcome, wait
 * for the others (helping the hedge's pool when on one of its workers: a hedge may be queued
 * behind this very task), and return the winner's value or the last failure. own: b0 is the
 * entry's own[slot] (spent once a hedge may have tripped it); shared: b0 is the enclosing
 * timeout's own breaker, whose entry pe is told when a hedge tripped it. */
static __attribute__((noinline)) int hedge_join(struct hrun *r, sx_call *call, int rc,
    tw_entry *e, unsigned slot, bool own, tw_entry *pe)
{
	sx_breaker *b0 = r->att[0].b;
	sx__worker *w = sx__worker_of(sx__hedge_pool(r->h));
	int won;

	if (own) {
		/* A call this thread helps run meanwhile may take this depth and slot: it makes a
		 * new breaker, and the reference held here keeps b0 for a winner that trips it. */
		sx__breaker_ref(b0);
		e->dirty[slot] = E_SPENT;
	}
	if (rc == 0) {
		if (!hedge_win(r, 0))
			hedge_discard(call->out, call->ctx), call->out = NULL;
	} else {
		ck_pr_store_int(&r->last_rc, rc);
	}
	if (sx__wait(w, &r->ended, SX__EVENT_WAITERS, hedge_joined, r, UINT64_MAX) != 1)
		(void)sx__wait(NULL, &r->ended, SX__EVENT_WAITERS, hedge_joined, r, UINT64_MAX);
	ck_pr_fence_acquire();
	won = ck_pr_load_int(&r->won);
	for (unsigned k = 1; k < r->started; k++)
		sx_breaker_release(ck_pr_load_ptr(&r->att[k].b));
	if (own)
		sx__breaker_unref(b0);
	if (won > 0) {
		struct hatt *a = &r->att[won];

		hedge_discard(call->out, call->ctx);
		call->out = a->call.out;
		if (call->ctx != NULL)
			call->ctx->dtor = a->ctx.dtor;
		if (pe != NULL) /* the winner tripped the enclosing timeout's breaker */
			pe->dirty[E_SLOT(ck_pr_load_64(&pe->state))] = E_SPENT;
	}
	return won == H_NONE ? ck_pr_load_int(&r->last_rc) : 0;
}

/* The hedge layer. The first attempt runs here, on the calling thread, under a breaker of its
 * own: the entry's reusable own[slot] when the call has no breaker, the enclosing timeout's own
 * breaker when this layer is directly inside a timeout that runs under one (nothing outside
 * sees it), else a child of the call's breaker. Its delay is an entry of the thread's timeout
 * record, watched with the timeouts (see the top): a call that ends before its delay costs an
 * exchange and a CAS on the entry and, about once per delay, a timer. */
static int run_hedge(const layer *l, sx_call *call, sx_call_fn fn)
{
	sx_hedge *h = l->obj;
	sx_pool *pool = l->arg;
	sx_breaker *outer = call->breaker, *b0 = NULL, *child = NULL;
	tw_entry *e, *pe = NULL;
	struct hrun r;
	uint64_t s, deadline;
	unsigned slot, n;
	tw_rec *rec;
	bool armed;
	int rc;

	if ((rc = stopped(call)) != 0 || (rc = tw_get(&rec)) != 0)
		return rc;
	if (rec->depth == TW_DEPTH)
		return -EOVERFLOW;
	e = &rec->e[rec->depth];
	s = E_SEQ(ck_pr_load_64(&e->state)) + 4;
	slot = E_SLOT(s);
	if (outer != NULL && (l->flags & HEDGE_IN_TIMEOUT) && rec->depth > 0) {
		tw_entry *t = &rec->e[rec->depth - 1];

		if (t->own[E_SLOT(ck_pr_load_64(&t->state))] == outer)
			pe = t, b0 = outer;
	}
	if (outer != NULL && b0 == NULL) {
		if ((rc = sx_breaker_child(outer, &child)) != 0)
			return rc;
		b0 = child;
	}
	if (SX__UNLIKELY(e->dirty[slot] != 0 || (b0 == NULL && e->own[slot] == NULL)) &&
	    (rc = tw_slot(e, slot, b0 == NULL)) != 0) {
		sx_breaker_release(child);
		return rc;
	}
	if (b0 == NULL)
		b0 = e->own[slot];
	r.l = l;
	r.fn = fn;
	r.h = h;
	r.outer = outer;
	r.arg = call->arg;
	r.last = call->last;
	r.ctx = call->ctx;
	r.attempt = call->attempt;
	r.t0 = call_now(call);
	r.delay = (l->flags & HEDGE_SAMPLED) ? (uint64_t)sx_hedge_delay_ns(h) : l->ns;
	r.due = 0;
	r.started = 1;
	r.won = H_NONE;
	r.last_rc = 0;
	r.ended = 0;
	r.att[0].b = b0;
	if (__builtin_add_overflow(r.t0, r.delay, &deadline))
		deadline = UINT64_MAX;
	ck_pr_store_ptr(&e->h[slot], &r);
	ck_pr_store_ptr(&e->pool, pool);
	ck_pr_store_64(&e->deadline, deadline);
	ck_pr_fence_store();
	tw_note(e, ck_pr_fas_64(&e->state, s | E_ACTIVE)); /* the barrier before armed_until */
	sx__count(l->hstats, SX__HEDGE_CALLS);
	armed = (rc = tw_arm(rec, pool, deadline)) == 0;
	if (SX__LIKELY(armed)) {
		rec->depth++;
		call->breaker = b0;
		rc = next(l, call, fn);
		call->breaker = outer;
		rec->depth--;
	}
	n = hedge_stop(e, s, &r); /* a watch armed before may have started hedges all the same */
	if (armed && (l->flags & HEDGE_SAMPLED))
		sx__hedge_sample(h, sx__now_fast_ns() - r.t0);
	if (SX__UNLIKELY(n > 1)) {
		rc = hedge_join(&r, call, rc, e, slot, outer == NULL, pe);
		if (rc == 0)
			sx__hedge_succeeded(h, r.won > 0);
	} else if (rc == 0 && (l->flags & HEDGE_DEPOSIT)) {
		sx__hedge_succeeded(h, false);
	}
	sx_breaker_release(child);
	return rc;
}

static inline __attribute__((always_inline)) int call_with(sx_pipeline *pl, sx_call *call,
    sx_call_fn fn)
{
	int rc;

	if (SX__UNLIKELY(!ck_pr_load_int(&pl->called)))
		ck_pr_store_int(&pl->called, 1);
	sx__count(&pl->stats, C_CALLS);
	rc = pl->l[0].run(&pl->l[0], call, fn);
	if (rc != 0)
		sx__count(&pl->stats, C_FAILED);
	return rc;
}

int sx_pipeline_snapshot(const sx_pipeline *pl, sx_pipeline_metrics *out)
{
	if (pl == NULL || out == NULL)
		return -EINVAL;
	*out = (sx_pipeline_metrics){
		.calls = sx__count_sum(&pl->stats, C_CALLS),
		.failed = sx__count_sum(&pl->stats, C_FAILED),
		.rejected = sx__count_sum(&pl->stats, C_REJECTED),
		.retries = sx__count_sum(&pl->stats, C_RETRIES),
		.timeouts = sx__count_sum(&pl->stats, C_TIMEOUTS),
		.hedges = sx__count_sum(&pl->stats, C_HEDGES),
		.fallbacks = sx__count_sum(&pl->stats, C_FALLBACKS),
	};
	return 0;
}

int sx_pipeline_call(sx_pipeline *pl, sx_call_fn fn, void *arg, sx_breaker *stop, void **out)
{
	sx_call call = { arg, NULL, NULL, stop, 1, NULL, 0 };
	int rc;

	if (SX__UNLIKELY(pl == NULL || fn == NULL))
		return -EINVAL;
	rc = call_with(pl, &call, fn);
	if (rc == 0 && out != NULL)
		*out = call.out;
	return rc;
}

int sx_pipeline_step(sx_ctx *ctx, void *last, void **out)
{
	const sx_pipeline_step_arg *a = ctx != NULL ? ctx->arg : NULL;
	sx_call call = { NULL, last, NULL, NULL, 1, ctx, 0 };
	int rc;

	if (a == NULL || a->pipeline == NULL || a->fn == NULL || out == NULL)
		return -EINVAL;
	call.arg = a->arg;
	call.breaker = sx_ctx_breaker(ctx);
	rc = call_with(a->pipeline, &call, a->fn);
	if (rc == 0) {
		*out = call.out;
	} else if (call.out != NULL && ctx->dtor != NULL) {
		ctx->dtor(call.out);
		ctx->dtor = NULL;
	}
	return rc;
}
