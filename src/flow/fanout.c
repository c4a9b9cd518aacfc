/*
 * Fan-out: `nlanes` intrusive pool tasks share one index counter. A lane claims a few indices
 * with a fetch-and-add (claim()), checks the stop breaker (one load) before each call, runs it,
 * and goes on; after LANE_BATCH calls it resubmits itself (to its worker's LIFO slot, so it
 * usually runs next on the same core, while other work queued there still gets its turn). A lane ends when the indices run out or
 * the stop breaker has tripped; the last lane to end settles the fan-out's promise. So at most
 * nlanes calls are ever in flight, and the memory is the fan-out state plus one small struct per
 * lane, one allocation, whatever n is.
 *
 * The stop breaker is the promise's own chain breaker (a child of the caller's breaker, if one
 * was given), so sx_promise_cancel, the caller's breaker, the timeout (an inline timer that trips
 * it with -ETIMEDOUT) and a failing call (fail-fast) all stop the lanes the same way.
 *
 * Lifetime: the promise owns the state (freed by its cleanup). The lanes hold the promise's
 * pending reference until the last one settles it; the timer, while armed, holds one more, so
 * its callback never touches freed memory. Errors: the first call error is kept with one CAS;
 * a shutdown that discards queued lanes is kept apart, and the breaker keeps its own code, so the
 * precedence is decided once, by the last lane, from three stable words.
 */
#include <errno.h>

#include <strix/fanout.h>
#include <strix/timer.h>

#include "flow/flow.h"

#define LANE_BATCH 16u

struct fan;

struct lane {
	sx_task task;
	struct fan *f;
};

struct fan {
	sx_pool *pool;
	sx_promise *p;
	sx_breaker *stop;
	sx_fanout_fn fn;
	void *arg;
	const sx_fanout_task *tasks;
	size_t n;
	int *errors;
	unsigned flags;
	unsigned nlanes;
	bool timed;
	sx_timer timer;
	SX__ALIGNED uint64_t next;  /* the next index to claim */
	SX__ALIGNED uint32_t live;  /* lanes not yet ended */
	int task_err;               /* the first error a call returned */
	int shut_err;               /* -ESHUTDOWN: the pool discarded or refused a lane */
	struct lane lanes[];
};

static size_t fan_size(unsigned nlanes)
{
	return sizeof(struct fan) + (size_t)nlanes * sizeof(struct lane);
}

static void fan_free(void *arg)
{
	struct fan *f = arg;

	sx__dfree(f, fan_size(f->nlanes), SX__CACHELINE);
}

static void finish(struct fan *f)
{
	int rc = ck_pr_load_int(&f->task_err);

	if (rc == 0)
		rc = ck_pr_load_int(&f->shut_err);
	if (rc == 0)
		rc = sx_breaker_err(f->stop);
	if (f->errors != NULL) {
		/* Indices nobody claimed: only left when the stop breaker tripped. */
		uint64_t from = ck_pr_load_64(&f->next);
		int why = sx_breaker_err(f->stop);

		for (size_t j = from < f->n ? (size_t)from : f->n; j < f->n; j++)
			f->errors[j] = why;
	}
	if (f->timed && sx_timer_cancel(&f->timer) == 0)
		sx_promise_release(f->p); /* the timer's reference; the pending one is still held */
	sx__promise_settle(f->p, rc); /* may free f: the last thing we do */
}

static void lanes_end(struct fan *f, uint32_t k)
{
	if (ck_pr_faa_32(&f->live, (uint32_t)-k) == k)
		finish(f);
}

static void stop_shut(struct fan *f, int err)
{
	ck_pr_cas_int(&f->shut_err, 0, err);
	sx__breaker_trip_err(f->stop, err);
}

/*
 * Claim the next indices for a lane: [*first, return) with one fetch-and-add, at most `most`.
 * A lane takes a share of what is left (a quarter of its even share, at most `most`, at least
 * one), so lanes on different workers do not pull the counter's line across for every call, and
 * the shares still even out near the end (guided scheduling). The share is read from a plain
 * load: a stale read only changes its size. Returns *first when nothing is left (*first >= n).
 */
static uint64_t claim(struct fan *f, uint64_t most, uint64_t *first)
{
	uint64_t next = ck_pr_load_64(&f->next);
	uint64_t c = next < f->n ? (f->n - next) / (4 * (uint64_t)f->nlanes) : 1;
	uint64_t i;

	c = c == 0 ? 1 : c > most ? most : c;
	i = ck_pr_faa_64(&f->next, c);
	*first = i;
	return i >= f->n ? i : i + c < f->n ? i + c : f->n;
}

static void lane_run(sx_task *t)
{
	struct lane *l = SX_CONTAINER_OF(t, struct lane, task);
	struct fan *f = l->f;
	unsigned k = 0;

	while (k < LANE_BATCH) {
		uint64_t i, end = claim(f, LANE_BATCH - k, &i);

		if (i >= f->n)
			goto end;
		for (; i < end; i++, k++) {
			int rc;

			if (sx_breaker_done(f->stop)) {
				/* This lane's claimed indices: nobody else will tell them. */
				while (f->errors != NULL && i < end)
					f->errors[i++] = sx_breaker_err(f->stop);
				goto end;
			}
			rc = f->tasks != NULL ? f->tasks[i].fn(f->stop, f->tasks[i].arg)
			                      : f->fn(f->stop, (size_t)i, f->arg);
			if (f->errors != NULL)
				f->errors[i] = rc;
			if (rc != 0) {
				ck_pr_cas_int(&f->task_err, 0, rc);
				if (!(f->flags & SX_FANOUT_NO_FAIL_FAST))
					sx__breaker_trip_err(f->stop, -ECANCELED);
			}
		}
	}
	if (sx_pool_submit_task(f->pool, &l->task) == 0)
		return;
	stop_shut(f, -ESHUTDOWN);
end:
	lanes_end(f, 1);
}

/* SX_CANCEL shutdown discarded a queued lane. */
static void lane_cancel(sx_task *t, int err)
{
	struct fan *f = SX_CONTAINER_OF(t, struct lane, task)->f;

	(void)err;
	stop_shut(f, -ESHUTDOWN);
	lanes_end(f, 1);
}

static void on_timeout(void *arg, int status)
{
	struct fan *f = arg;

	sx__breaker_trip_err(f->stop, status == 0 ? -ETIMEDOUT : status);
	sx_promise_release(f->p); /* the timer's reference: may free f */
}

static int check(sx_pool *pool, size_t n, const sx_fanout_opts *o)
{
	if (pool == NULL || (uint64_t)n > SX_FANOUT_MAX_TASKS)
		return -EINVAL;
	if (o != NULL && (o->limit > SX_FANOUT_MAX_LIMIT || (o->flags & ~SX_FANOUT_NO_FAIL_FAST) ||
	    !SX__RESERVED_CLEAR(o)))
		return -EINVAL;
	return 0;
}

static int start(sx_pool *pool, size_t n, sx_fanout_fn fn, void *arg,
    const sx_fanout_task *tasks, const sx_fanout_opts *opts, sx_promise **out)
{
	static const sx_fanout_opts defaults = SX_FANOUT_OPTS_INIT;
	const sx_fanout_opts *o = opts != NULL ? opts : &defaults;
	unsigned limit = o->limit != 0 ? o->limit : sx_pool_workers(pool), nlanes, k;
	struct fan *f;
	sx_promise *p;
	int rc;

	nlanes = n < limit ? (unsigned)n : limit;
	f = sx__zalloc(fan_size(nlanes), SX__CACHELINE);
	if (f == NULL)
		return -ENOMEM;
	f->pool = pool;
	f->fn = fn;
	f->arg = arg;
	f->tasks = tasks;
	f->n = n;
	f->errors = o->errors;
	f->flags = o->flags;
	f->nlanes = nlanes;
	if ((rc = sx__promise_deferred(pool, o->breaker, fan_free, f, &p)) != 0) {
		fan_free(f);
		return rc;
	}
	f->p = p;
	f->stop = sx__promise_breaker(p);
	if (nlanes == 0) { /* n == 0: nothing to run, nothing failed */
		sx__promise_settle(p, 0);
		*out = p;
		return 0;
	}
	if (o->timeout_ns > 0) { /* 0 and < 0: no timeout */
		sx__promise_ref(p); /* the timer's */
		rc = sx_timer_add(pool, o->timeout_ns, SX_TIMER_INLINE, on_timeout, f, &f->timer);
		if (rc != 0) {
			sx_promise_release(p); /* the timer's */
			goto fail;
		}
		f->timed = true;
	}
	f->live = nlanes;
	for (k = 0; k < nlanes; k++) {
		f->lanes[k].task.run = lane_run;
		f->lanes[k].task.cancel = lane_cancel;
		f->lanes[k].f = f;
		if ((rc = sx_pool_submit_task(pool, &f->lanes[k].task)) != 0)
			break;
	}
	if (k == 0) {
		if (f->timed && sx_timer_cancel(&f->timer) == 0)
			sx_promise_release(p);
		goto fail;
	}
	if (k < nlanes) { /* some lanes run: the others end now, and their failure with them */
		stop_shut(f, rc);
		lanes_end(f, nlanes - k);
	}
	*out = p;
	return 0;
fail:
	f->live = 0;
	sx__promise_settle(p, rc);
	sx_promise_release(p); /* frees f */
	return rc;
}

static int map_check(sx_pool *pool, size_t n, sx_fanout_fn fn, const sx_fanout_opts *opts)
{
	if (n > 0 && fn == NULL)
		return -EINVAL;
	return check(pool, n, opts);
}

static int exec_check(sx_pool *pool, const sx_fanout_task *tasks, size_t n,
    const sx_fanout_opts *opts)
{
	int rc = check(pool, n, opts);

	if (rc != 0)
		return rc;
	if (n > 0 && tasks == NULL)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (tasks[i].fn == NULL)
			return -EINVAL;
	return 0;
}

int sx_fanout_map_async(sx_pool *pool, size_t n, sx_fanout_fn fn, void *arg,
    const sx_fanout_opts *opts, sx_promise **out)
{
	int rc = map_check(pool, n, fn, opts);

	if (rc == 0 && out == NULL)
		rc = -EINVAL;
	return rc != 0 ? rc : start(pool, n, fn, arg, NULL, opts, out);
}

int sx_fanout_exec_async(sx_pool *pool, const sx_fanout_task *tasks, size_t n,
    const sx_fanout_opts *opts, sx_promise **out)
{
	int rc = exec_check(pool, tasks, n, opts);

	if (rc == 0 && out == NULL)
		rc = -EINVAL;
	return rc != 0 ? rc : start(pool, n, NULL, NULL, tasks, opts, out);
}

/* The blocking forms: start, then wait for the promise to settle (helping on a worker). */
static int run_blocking(sx_pool *pool, size_t n, sx_fanout_fn fn, void *arg,
    const sx_fanout_task *tasks, const sx_fanout_opts *opts)
{
	sx_promise *p;
	int rc;

	if (n == 0)
		return 0;
	if ((rc = start(pool, n, fn, arg, tasks, opts, &p)) != 0)
		return rc;
	rc = sx__promise_join(p);
	sx_promise_release(p);
	return rc;
}

int sx_fanout_map(sx_pool *pool, size_t n, sx_fanout_fn fn, void *arg,
    const sx_fanout_opts *opts)
{
	int rc = map_check(pool, n, fn, opts);

	return rc != 0 ? rc : run_blocking(pool, n, fn, arg, NULL, opts);
}

int sx_fanout_exec(sx_pool *pool, const sx_fanout_task *tasks, size_t n,
    const sx_fanout_opts *opts)
{
	int rc = exec_check(pool, tasks, n, opts);

	return rc != 0 ? rc : run_blocking(pool, n, NULL, NULL, tasks, opts);
}
