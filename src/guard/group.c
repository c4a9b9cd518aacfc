/*
 * Run groups and loops: include/strix/group.h.
 *
 * One thread per actor, plus the caller of run, which coordinates: it waits for the event that
 * starts the shutdown, runs the interrupts in order, waits for the actors to end (up to the
 * deadline), marks the ones still running stuck and joins the rest. Nothing here is a hot path;
 * what matters is that no actor, signal or thread is lost, and that the coordinator never sleeps
 * through an event. So every event (an actor ending, a loop's stop tripping) bumps one event word,
 * g->events, after the state it announces is stored, and the coordinator re-reads that state after
 * reading the word and before sleeping on it: a bump between the two makes the futex wait return
 * at once.
 *
 * Lifetime: g->refs is 1 for the owner plus 1 per actor thread still running (plus 1 for a
 * loop's stop callback while it is registered). An actor thread's last act is dropping its
 * reference, so a group destroyed with stuck actors is freed by the last of them.
 *
 * Built-in actors (signals, breaker) wait on a multiplex of their source and a manual breaker,
 * intr, that their interrupt trips; a signal actor's source is a fresh signal breaker per run, and
 * a hold on its signals (cancel/signal.c) keeps strix's handler installed from the start of run until the
 * actor's thread ends, so that a loop's actor misses no signal while it restarts.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include <strix/breaker.h>
#include <strix/group.h>

#include "guard/guard.h"

enum { G_IDLE = 0, G_RUNNING, G_DONE };
enum { A_USER = 0, A_SIGNALS, A_BREAKER };

struct actor {
	int (*execute)(void *arg);
	void (*interrupt)(int err, void *arg);
	void (*on_failure)(int err, void *arg);
	void *arg;
	sx_group *g;
	unsigned index;
	int kind;
	uint64_t sigs;          /* A_SIGNALS: bit s-1 for signal s */
	sx_breaker *src;        /* A_BREAKER: the user's breaker (our reference) */
	sx_breaker *intr;       /* built-ins: tripped by their interrupt */
	bool held;              /* A_SIGNALS: the hold is taken (owner before start, then thread) */
	/* owner only */
	pthread_t thread;
	bool started, joined;
	/* shared (atomics); written by the actor's thread unless noted */
	uint32_t state;         /* enum sx_actor_state (RUNNING -> STUCK: the coordinator) */
	uint32_t stuck, gave_up;
	int err, signo;
	uint64_t runs, failures;
};

struct sx_group {
	sx_group_opts opts;
	sx_retry_policy backoff;
	struct actor **actors;
	unsigned n, cap;
	sx_breaker *stop;       /* a loop's stop; NULL for a group */
	sx_breaker *quit;       /* a loop's actors stop restarting: a child of stop that the
	                           coordinator also trips when the loop ends otherwise */
	uint32_t phase;         /* G_IDLE -> G_RUNNING -> G_DONE (G_IDLE again if setup failed) */
	uint32_t events;        /* event word (base/base.h): bumped after every event */
	uint32_t live;          /* actor threads running */
	uint32_t refs;
	int first;              /* the actor that ended the group; -1 none */
	int last;               /* loop: the actor whose end left no thread running */
};

/* The loop's default: 1 ms doubling to 1 s, equal jitter (never less than half), no limit. */
static const sx_retry_policy default_backoff = {
	.backoff = SX_BACKOFF_EXPONENTIAL,
	.base_ns = 1000000,
	.factor = 2.0,
	.cap_ns = 1000000000,
	.jitter = SX_JITTER_EQUAL,
	.seed = 0x5eed,
};

/* ---- lifetime ------------------------------------------------------------------------------- */

static void group_free(sx_group *g)
{
	for (unsigned i = 0; i < g->n; i++) {
		struct actor *a = g->actors[i];

		sx_breaker_release(a->intr);
		if (a->src != NULL)
			sx__breaker_unref(a->src);
		sx__dfree(a, sizeof(*a), SX__SMALL_ALIGN);
	}
	if (g->actors != NULL)
		sx__dfree(g->actors, g->cap * sizeof(*g->actors), SX__SMALL_ALIGN);
	sx_breaker_release(g->quit);
	sx__dfree(g, sizeof(*g), SX__SMALL_ALIGN);
}

static void group_unref(sx_group *g)
{
	if (ck_pr_faa_32(&g->refs, (uint32_t)-1) == 1)
		group_free(g);
}

static void bump(sx_group *g)
{
	sx__event_bump(&g->events);
}

int sx_group_create(const sx_group_opts *opts, sx_group **out)
{
	static const sx_group_opts defaults = SX_GROUP_OPTS_INIT;
	sx_group *g;

	if (opts == NULL)
		opts = &defaults;
	if (out == NULL || (opts->flags & ~(unsigned)(SX_GROUP_REVERSE | SX_GROUP_SEQUENTIAL)) ||
	    !SX__RESERVED_CLEAR(opts) ||
	    (opts->backoff != NULL && sx_retry_policy_check(opts->backoff) != 0))
		return -EINVAL;
	g = sx__zalloc(sizeof(*g), SX__SMALL_ALIGN);
	if (g == NULL)
		return -ENOMEM;
	g->opts = *opts;
	g->backoff = opts->backoff != NULL ? *opts->backoff : default_backoff;
	g->opts.backoff = &g->backoff;
	g->refs = 1;
	g->first = -1;
	g->last = -1;
	*out = g;
	return 0;
}

void sx_group_destroy(sx_group *g)
{
	if (g == NULL)
		return;
	/* Stuck actors' threads: nobody will join them; the last one frees the group. */
	for (unsigned i = 0; i < g->n; i++)
		if (g->actors[i]->started && !g->actors[i]->joined)
			(void)pthread_detach(g->actors[i]->thread); /* started, never joined: cannot fail */
	group_unref(g);
}

/* ---- adding --------------------------------------------------------------------------------- */

static int add(sx_group *g, const struct actor *proto)
{
	struct actor *a;

	if (ck_pr_load_32(&g->phase) != G_IDLE)
		return -EBUSY;
	if (g->n == g->cap) {
		unsigned cap = g->cap ? g->cap * 2 : 8;
		struct actor **l = sx__zalloc(cap * sizeof(*l), SX__SMALL_ALIGN);

		if (l == NULL)
			return -ENOMEM;
		if (g->n)
			memcpy(l, g->actors, g->n * sizeof(*l));
		if (g->actors != NULL)
			sx__dfree(g->actors, g->cap * sizeof(*l), SX__SMALL_ALIGN);
		g->actors = l;
		g->cap = cap;
	}
	a = sx__zalloc(sizeof(*a), SX__SMALL_ALIGN);
	if (a == NULL)
		return -ENOMEM;
	*a = *proto;
	a->g = g;
	a->index = g->n;
	if (a->kind != A_USER) {
		int rc = sx_breaker_create(&a->intr);

		if (rc != 0) {
			sx__dfree(a, sizeof(*a), SX__SMALL_ALIGN);
			return rc;
		}
		a->arg = a;
	}
	if (a->src != NULL)
		sx__breaker_ref(a->src);
	g->actors[g->n++] = a;
	return (int)a->index;
}

int sx_group_add(sx_group *g, int (*execute)(void *arg), void (*interrupt)(int err, void *arg),
    void (*on_failure)(int err, void *arg), void *arg)
{
	struct actor proto = { .execute = execute, .interrupt = interrupt,
	    .on_failure = on_failure, .arg = arg, .kind = A_USER };

	if (g == NULL || execute == NULL || interrupt == NULL)
		return -EINVAL;
	return add(g, &proto);
}

/* Built-in actors: wait for the source or the interrupt, whichever comes first. */
static int builtin_execute(void *arg)
{
	struct actor *a = arg;
	sx_breaker *in[2], *sig = NULL, *mux;
	int rc = 0;

	if (a->kind == A_SIGNALS) {
		sigset_t set;

		sigemptyset(&set);
		for (int s = 1; s <= 64; s++)
			if (a->sigs & (UINT64_C(1) << (s - 1)))
				sigaddset(&set, s);
		if ((rc = sx_breaker_signal(&set, &sig)) != 0)
			return rc;
	}
	in[0] = sig != NULL ? sig : a->src;
	in[1] = a->intr;
	if ((rc = sx_breaker_multiplex(in, 2, &mux)) == 0) {
		sx_breaker_wait(mux, -1);
		rc = sx_breaker_err(mux);
		ck_pr_store_int(&a->signo, rc == SX_ESIGNAL ? sx_breaker_signo(mux) : 0);
		sx_breaker_release(mux);
	}
	sx_breaker_release(sig);
	return rc;
}

static void builtin_interrupt(int err, void *arg)
{
	(void)err;
	sx_breaker_trip(((struct actor *)arg)->intr);
}

int sx_group_add_signals(sx_group *g, const int *sigs, size_t n)
{
	static const int defaults[] = { SIGINT, SIGTERM };
	struct actor proto = { .execute = builtin_execute, .interrupt = builtin_interrupt,
	    .kind = A_SIGNALS };

	if (g == NULL || (sigs == NULL && n > 0))
		return -EINVAL;
	if (sigs == NULL) {
		sigs = defaults;
		n = 2;
	}
	for (size_t i = 0; i < n; i++) {
		if (!sx__signal_catchable(sigs[i]))
			return -EINVAL;
		proto.sigs |= UINT64_C(1) << (sigs[i] - 1);
	}
	if (proto.sigs == 0)
		return -EINVAL;
	return add(g, &proto);
}

int sx_group_add_breaker(sx_group *g, sx_breaker *b)
{
	struct actor proto = { .execute = builtin_execute, .interrupt = builtin_interrupt,
	    .kind = A_BREAKER, .src = b };

	if (g == NULL || b == NULL)
		return -EINVAL;
	return add(g, &proto);
}

/* ---- actor threads -------------------------------------------------------------------------- */

static int run_once(struct actor *a)
{
	int err = a->execute(a->arg);

	ck_pr_store_int(&a->err, err);
	sx__stat_add(&a->runs, 1);
	if (err != 0) {
		sx__stat_add(&a->failures, 1);
		if (a->on_failure != NULL)
			a->on_failure(err, a->arg);
	}
	return err;
}

/* A loop's actors restart no more: stop tripped (checked first: quit follows it through the
 * notifier) or run tripped quit. */
static bool halted(const sx_group *g)
{
	return sx_breaker_done(g->stop) || sx_breaker_done(g->quit);
}

/* Restart a until the loop's stop trips or the backoff policy gives up. */
static void loop_body(struct actor *a)
{
	sx_group *g = a->g;
	const sx_retry_policy *p = &g->backoff;
	uint64_t streak_start = 0, delay;
	unsigned streak = 0;
	sx_backoff bo;

	sx_backoff_init(&bo, p);
	while (!halted(g)) {
		uint64_t t0 = sx__policy_now(p);
		int err = run_once(a);

		if (halted(g))
			break;
		if (err == 0) {
			if (streak != 0) {
				streak = 0;
				sx_backoff_init(&bo, p);
			}
			continue;
		}
		if (streak++ == 0)
			streak_start = t0;
		if (!sx__retry_next(p, &bo, err, streak, streak_start, -1, &delay)) {
			ck_pr_store_32(&a->gave_up, 1);
			break;
		}
		if (sx__pause(p->clock, delay, g->quit) != 0)
			break;
	}
}

static void *actor_main(void *arg)
{
	struct actor *a = arg;
	sx_group *g = a->g;

	if (g->stop != NULL)
		loop_body(a);
	else
		run_once(a);
	if (a->held) {
		a->held = false;
		sx__signal_unhold(a->sigs);
	}
	/* The end, announced: the cause, the state, the count, then the event. */
	if (g->stop == NULL)
		ck_pr_cas_int(&g->first, -1, (int)a->index);
	ck_pr_fas_32(&a->state, SX_ACTOR_ENDED);
	if (ck_pr_faa_32(&g->live, (uint32_t)-1) == 1)
		ck_pr_store_int(&g->last, (int)a->index);
	bump(g);
	group_unref(g);
	return NULL;
}

/* ---- the coordinator ------------------------------------------------------------------------ */

/* The conditions the coordinator waits for (a: the actor concerned, or NULL). */
static bool actor_ended(sx_group *g, const struct actor *a)
{
	(void)g;
	return ck_pr_load_32(&a->state) == SX_ACTOR_ENDED;
}

static bool all_ended(sx_group *g, const struct actor *a)
{
	(void)a;
	return ck_pr_load_32(&g->live) == 0;
}

/* Whether the shutdown should start: an actor ended (group), stop tripped or no thread is left
 * (loop). The actor that leaves none stores g->last after its decrement (only it knows it was
 * the last), then bumps: until that store, no thread is left but the loop is not due yet. */
static bool shutdown_due(sx_group *g, const struct actor *a)
{
	(void)a;
	if (g->stop == NULL)
		return ck_pr_load_int(&g->first) >= 0;
	return sx_breaker_done(g->stop) ||
	    (g->n > 0 && ck_pr_load_32(&g->live) == 0 && ck_pr_load_int(&g->last) >= 0);
}

/* Wait until cond(g, a) holds or the deadline passes (UINT64_MAX: none); whether it holds. */
static bool wait_for(sx_group *g, bool (*cond)(sx_group *, const struct actor *),
    const struct actor *a, uint64_t deadline)
{
	for (;;) {
		uint32_t e = sx__event_read(&g->events);

		if (cond(g, a))
			return true;
		if (deadline != UINT64_MAX && sx__now_ns() >= deadline)
			return false;
		sx__event_wait(&g->events, e, deadline);
	}
}

/* Interrupt every started actor with err, in order, and wait for them (up to the deadline);
 * mark the ones left running stuck; join the rest. */
static void shut_down(sx_group *g, int err)
{
	uint64_t deadline = UINT64_MAX;

	if (g->opts.shutdown_ns > 0 && __builtin_add_overflow(sx__now_ns(),
	    (uint64_t)g->opts.shutdown_ns, &deadline))
		deadline = UINT64_MAX - 1; /* saturated: far, but still a deadline */
	for (unsigned k = 0; k < g->n; k++) {
		unsigned i = (g->opts.flags & SX_GROUP_REVERSE) ? g->n - 1 - k : k;
		struct actor *a = g->actors[i];

		if (!a->started)
			continue;
		a->interrupt(err, a->arg);
		if (g->opts.flags & SX_GROUP_SEQUENTIAL)
			wait_for(g, actor_ended, a, deadline);
	}
	if (!wait_for(g, all_ended, NULL, deadline)) {
		for (unsigned i = 0; i < g->n; i++) {
			struct actor *a = g->actors[i];

			if (a->started &&
			    ck_pr_cas_32(&a->state, SX_ACTOR_RUNNING, SX_ACTOR_STUCK)) {
				ck_pr_store_32(&a->stuck, 1);
				if (g->opts.on_stuck != NULL)
					g->opts.on_stuck(g, i, g->opts.ctx);
			}
		}
	}
	for (unsigned i = 0; i < g->n; i++) {
		struct actor *a = g->actors[i];

		if (a->started && !a->joined && actor_ended(g, a)) {
			(void)pthread_join(a->thread, NULL); /* it has ended or is ending */
			a->joined = true;
		}
	}
}

/* Give back the holds of actors from..n-1 (whose threads will not run). */
static void unhold_from(sx_group *g, unsigned from)
{
	for (unsigned i = from; i < g->n; i++) {
		struct actor *a = g->actors[i];

		if (a->held) {
			a->held = false;
			sx__signal_unhold(a->sigs);
		}
	}
}

/* Take the signal actors' holds before any thread starts. */
static int hold_signals(sx_group *g)
{
	for (unsigned i = 0; i < g->n; i++) {
		struct actor *a = g->actors[i];
		int rc;

		if (a->kind == A_SIGNALS && (rc = sx__signal_hold(a->sigs)) != 0) {
			unhold_from(g, 0);
			return rc;
		}
		a->held = a->kind == A_SIGNALS;
	}
	return 0;
}

static void stop_tripped(sx_breaker *b, void *arg)
{
	sx_group *g = arg;

	(void)b;
	bump(g);
	group_unref(g); /* the callback's reference */
}

/* Start every actor's thread; returns 0 or -EAGAIN (the rest are not started). */
static int start_actors(sx_group *g)
{
	for (unsigned i = 0; i < g->n; i++) {
		struct actor *a = g->actors[i];

		ck_pr_store_32(&a->state, SX_ACTOR_RUNNING);
		ck_pr_inc_32(&g->refs);
		ck_pr_inc_32(&g->live);
		if (pthread_create(&a->thread, NULL, actor_main, a) != 0) {
			ck_pr_dec_32(&g->live);
			ck_pr_dec_32(&g->refs);
			ck_pr_store_32(&a->state, SX_ACTOR_IDLE);
			unhold_from(g, i);
			return -EAGAIN;
		}
		a->started = true;
	}
	return 0;
}

static int run(sx_group *g, sx_breaker *stop)
{
	sx_breaker_cb *cb = NULL;
	bool stopped = false;
	int rc, err;

	if (!ck_pr_cas_32(&g->phase, G_IDLE, G_RUNNING))
		return -EBUSY;
	g->stop = stop;
	if ((stop == NULL && g->n == 0) || (stop != NULL && sx_breaker_done(stop))) {
		ck_pr_store_32(&g->phase, G_DONE);
		return 0;
	}
	if ((rc = hold_signals(g)) != 0)
		goto undo;
	if (stop != NULL) {
		if ((rc = sx_breaker_child(stop, &g->quit)) != 0) {
			unhold_from(g, 0);
			goto undo;
		}
		ck_pr_inc_32(&g->refs); /* the callback's */
		if ((rc = sx_breaker_on_done(stop, stop_tripped, g, &cb)) != 0) {
			ck_pr_dec_32(&g->refs);
			unhold_from(g, 0);
			sx_breaker_release(g->quit);
			g->quit = NULL;
			if (rc != -EALREADY)
				goto undo;
			ck_pr_store_32(&g->phase, G_DONE); /* stop tripped meanwhile: nothing starts */
			return 0;
		}
	}
	if ((rc = start_actors(g)) != 0) {
		ck_pr_cas_int(&g->first, -1, -2); /* nobody ended the group: cause reads -1 */
		err = rc;
	} else {
		wait_for(g, shutdown_due, NULL, UINT64_MAX);
		if (stop != NULL && sx_breaker_done(stop)) {
			stopped = true;
			err = sx_breaker_err(stop);
		} else {
			/* A group's first return, or the loop actor that gave up last (both set
			 * before shutdown_due held). */
			int who;

			if (stop != NULL)
				ck_pr_store_int(&g->first, ck_pr_load_int(&g->last));
			who = ck_pr_load_int(&g->first);
			err = who >= 0 ? ck_pr_load_int(&g->actors[who]->err) : 0;
		}
	}
	if (g->quit != NULL)
		sx_breaker_trip(g->quit); /* no more restarts, whatever ended the loop */
	shut_down(g, err);
	if (cb != NULL && sx_breaker_withdraw(cb) == 0)
		group_unref(g); /* withdrawn before it ran: its reference is ours to drop */
	ck_pr_store_32(&g->phase, G_DONE);
	return stopped ? 0 : err;

undo:
	ck_pr_store_32(&g->phase, G_IDLE);
	return rc;
}

int sx_group_run(sx_group *g)
{
	if (g == NULL)
		return -EINVAL;
	return run(g, NULL);
}

int sx_loop_run(sx_group *g, sx_breaker *stop)
{
	if (g == NULL || stop == NULL)
		return -EINVAL;
	return run(g, stop);
}

int sx_group_wait(sx_group *g, int64_t timeout_ns)
{
	uint64_t deadline = UINT64_MAX;

	if (g == NULL)
		return -EINVAL;
	if (ck_pr_load_32(&g->phase) == G_RUNNING)
		return -EBUSY;
	if (timeout_ns >= 0 && __builtin_add_overflow(sx__now_ns(),
	    (uint64_t)timeout_ns, &deadline))
		deadline = UINT64_MAX - 1;
	if (!wait_for(g, all_ended, NULL, deadline))
		return -ETIMEDOUT;
	for (unsigned i = 0; i < g->n; i++) {
		struct actor *a = g->actors[i];

		if (a->started && !a->joined) {
			(void)pthread_join(a->thread, NULL); /* it has ended or is ending */
			a->joined = true;
		}
	}
	return 0;
}

/* ---- read-outs ------------------------------------------------------------------------------ */

int sx_group_cause(const sx_group *g, int *err, int *signo)
{
	int i;

	if (g == NULL)
		return -EINVAL;
	i = ck_pr_load_int(&g->first);
	if (i < 0)
		return -ENOENT;
	if (err != NULL)
		*err = ck_pr_load_int(&g->actors[i]->err);
	if (signo != NULL)
		*signo = ck_pr_load_int(&g->actors[i]->signo);
	return i;
}

int sx_group_actor(const sx_group *g, unsigned actor, sx_actor_info *out)
{
	const struct actor *a;

	if (g == NULL || out == NULL)
		return -EINVAL;
	if (actor >= g->n)
		return -ENOENT;
	a = g->actors[actor];
	memset(out->reserved, 0, sizeof(out->reserved));
	out->state = (int)ck_pr_load_32(&a->state);
	out->err = ck_pr_load_int(&a->err);
	out->signo = ck_pr_load_int(&a->signo);
	out->stuck = ck_pr_load_32(&a->stuck) != 0;
	out->gave_up = ck_pr_load_32(&a->gave_up) != 0;
	out->runs = ck_pr_load_64(&a->runs);
	out->failures = ck_pr_load_64(&a->failures);
	return 0;
}
