/*
 * Fork-join on the caller's stack: sx_join and scopes (include/strix/join.h).
 *
 * A fork is an sx_task in the forking frame (sx_join's own record, or the caller's sx_job),
 * queued at the producer end of the forking worker's ring (sx__push_local), where thieves take
 * the oldest entries first and the owner takes its newest back with one fence
 * (sx__take_back) and runs the function inline. A fork that was stolen ends with one atomic
 * read-modify-write on its completion word (a waiting word, base/base.h); the forker helps
 * (sx__wait_fork) until it reads done. The finisher touches only that word's address after its
 * write, so the forker may return - and its frame vanish - the moment it reads done: the futex
 * wake that may follow uses the address alone.
 *
 * From a thread that is not one of the pool's workers, forks go to the injector inside the
 * thread's submission section (sx__remote_enter), so a shutdown either refuses them up front
 * or runs or cancels them; the forker sleeps on the word.
 */
#include <errno.h>

#include <strix/join.h>

#include "flow/flow.h"

#define J_WAITERS 1u
#define J_DONE 2u      /* sx_join's record: a ran */
#define J_CANCELLED 4u /* sx_join's record: SX_CANCEL discarded it */
#define J_STEP 2u      /* a scope's word: one child finished */

/* The one write a finisher makes: v into the word (or added to it), then the wake if somebody
 * may sleep there. */
static void publish(uint32_t *word, uint32_t v, bool add)
{
	uint32_t old = add ? ck_pr_faa_32(word, v) : ck_pr_fas_32(word, v);

	if (old & J_WAITERS)
		sx__futex_wake(word);
}

/* ---- sx_join ------------------------------------------------------------------------------- */

struct join_rec {
	sx_task task;
	void (*fn)(void *);
	void *arg;
	uint32_t state; /* 0, then J_DONE or J_CANCELLED; | J_WAITERS */
};

static void join_run(sx_task *t)
{
	struct join_rec *r = SX_CONTAINER_OF(t, struct join_rec, task);

	r->fn(r->arg);
	publish(&r->state, J_DONE, false);
}

static void join_cancel(sx_task *t, int err)
{
	(void)err;
	publish(&SX_CONTAINER_OF(t, struct join_rec, task)->state, J_CANCELLED, false);
}

static int join_ended(void *arg, uint32_t seen)
{
	(void)arg;
	return (int)(seen & (J_DONE | J_CANCELLED));
}

int sx_join(sx_pool *pool, void (*a)(void *), void *a_arg, void (*b)(void *), void *b_arg)
{
	struct join_rec r;
	sx__worker *w;
	sx__tcache *c;
	int rc;

	if (SX__UNLIKELY(pool == NULL || a == NULL || b == NULL))
		return -EINVAL;
	r.task.run = join_run;
	r.task.cancel = join_cancel;
	r.fn = a;
	r.arg = a_arg;
	r.state = 0;
	w = sx__worker_of(pool);
	if (SX__LIKELY(w != NULL)) {
		sx__push_local(w, &r.task);
		b(b_arg);
		if (SX__LIKELY(sx__take_back(w, &r.task))) {
			a(a_arg);
			return 0;
		}
		/* Stolen: it runs elsewhere, and under SX_CANCEL this worker finds it wherever it is
		 * queued, so it cannot be cancelled while we wait. */
		(void)sx__wait_fork(w, &r.state, J_WAITERS, join_ended, NULL);
		ck_pr_fence_load();
		return 0;
	}
	if ((c = sx__remote_enter(pool, &rc)) == NULL)
		return rc;
	sx__inject(pool, c, &r.task);
	sx__remote_leave(c);
	b(b_arg);
	rc = sx__wait_here(&r.state, J_WAITERS, join_ended, NULL, UINT64_MAX);
	ck_pr_fence_load();
	return (rc & J_CANCELLED) ? -ECANCELED : 0;
}

/* ---- scopes -------------------------------------------------------------------------------- */

static void job_run(sx_task *t)
{
	sx_job *j = SX_CONTAINER_OF(t, sx_job, sx_run);
	sx_scope *s = j->sx_parent;

	j->sx_fn(j->sx_arg);
	publish(&s->sx_done, J_STEP, true);
}

static void job_cancel(sx_task *t, int err)
{
	sx_scope *s = SX_CONTAINER_OF(t, sx_job, sx_run)->sx_parent;

	(void)err;
	ck_pr_inc_32(&s->sx_cancelled);
	publish(&s->sx_done, J_STEP, true);
}

int sx_scope_init(sx_scope *s, sx_pool *pool)
{
	if (s == NULL || pool == NULL)
		return -EINVAL;
	s->sx_owner = pool;
	s->sx_last = NULL;
	s->sx_spawned = 0;
	s->sx_done = 0;
	s->sx_cancelled = 0;
	s->sx_spare = 0;
	return 0;
}

int sx_scope_spawn(sx_scope *s, sx_job *job, void (*fn)(void *), void *arg)
{
	sx__worker *w;
	sx__tcache *c;
	int rc;

	if (SX__UNLIKELY(s == NULL || job == NULL || fn == NULL || s->sx_owner == NULL))
		return -EINVAL;
	if (SX__UNLIKELY(s->sx_spawned >= SX_SCOPE_MAX))
		return -EOVERFLOW;
	job->sx_run.run = job_run;
	job->sx_run.cancel = job_cancel;
	job->sx_fn = fn;
	job->sx_arg = arg;
	job->sx_parent = s;
	w = sx__worker_of(s->sx_owner);
	if (SX__LIKELY(w != NULL)) {
		job->sx_prev = s->sx_last;
		s->sx_last = job;
		s->sx_spawned++;
		sx__push_local(w, &job->sx_run);
		return 0;
	}
	if ((c = sx__remote_enter(s->sx_owner, &rc)) == NULL)
		return rc;
	job->sx_prev = s->sx_last;
	s->sx_last = job;
	s->sx_spawned++;
	sx__inject(s->sx_owner, c, &job->sx_run);
	sx__remote_leave(c);
	return 0;
}

/* The scope's word counts finished children (J_STEP each) past the waiter flag. */
static int scope_ended(void *arg, uint32_t seen)
{
	return (seen / J_STEP) >= *(const uint32_t *)arg;
}

int sx_scope_wait(sx_scope *s)
{
	uint32_t want;
	sx__worker *w;
	int rc = 0;

	if (s == NULL || s->sx_owner == NULL)
		return -EINVAL;
	want = s->sx_spawned;
	w = sx__worker_of(s->sx_owner);
	if (w != NULL) {
		/* Newest first: that is the order the ring's producer end gives them back. */
		for (sx_job *j = s->sx_last; j != NULL; j = j->sx_prev) {
			if (sx__take_back(w, &j->sx_run)) {
				j->sx_fn(j->sx_arg);
				want--;
			}
		}
		if (want != 0)
			(void)sx__wait_fork(w, &s->sx_done, J_WAITERS, scope_ended, &want);
	} else if (want != 0) {
		(void)sx__wait_here(&s->sx_done, J_WAITERS, scope_ended, &want, UINT64_MAX);
		if (ck_pr_load_32(&s->sx_cancelled) != 0)
			rc = -ECANCELED;
	}
	ck_pr_fence_load();
	/* Every child has made its last write: the scope is the owner's alone again. */
	s->sx_last = NULL;
	s->sx_spawned = 0;
	s->sx_done = 0;
	s->sx_cancelled = 0;
	return rc;
}
