/*
 * Strands: serial execution per key on a shared pool (include/strix/strand.h).
 *
 * A strand's pending tasks sit on a closable stack (base/base.h), linked through their sx_next;
 * a closed stack means idle: no turn is queued or running. Submitting pushes; a push that finds
 * the stack closed reopens it empty instead, and the submitter that reopened it owns the turn:
 * it puts its task in `rest` and queues the strand's turn (its own task record) on the pool -
 * exactly one submitter wins each idle period, so at most one turn is ever queued or running and
 * no lock is needed. Later submissions push onto the reopened stack, behind `rest`.
 *
 * The turn (one at a time, so its fields are its own) runs `rest`, oldest first. Then it tries
 * to close the empty stack (one CAS: a push that got in first keeps it open); if it cannot, it
 * takes the whole stack with one exchange, reverses it to submission order and runs that. What
 * it has not run when it has run SX_STRAND_BATCH tasks stays in `rest`, and the turn requeues
 * itself behind its worker's queued work. So a task submitted to an idle strand costs the strand
 * two atomic operations, the reopen and the close. After the closing CAS the turn never touches
 * the strand again, so a closed strand may be freed.
 *
 * sx_strand_destroy queues a marker, the strand's own `end` record, after which no submission
 * may come: the turn that reaches it has run everything before it and frees the strand. If the
 * strand is idle the marker reopens it, and the destroyer frees it at once.
 */
#include <errno.h>
#include <stdlib.h>

#include <strix/strand.h>

#include "flow/flow.h"

struct sx_strand {
	sx__link *head;      /* pending tasks, newest first; SX__CLOSED: idle */
	sx_pool *pool;
	sx__link *rest;      /* the turn's: tasks taken but not run yet, oldest first */
	sx_task turn;        /* the strand's record on the pool */
	sx_task end;         /* sx_strand_destroy's marker */
} SX__ALIGNED;

static void strand_free(sx_strand *s)
{
	sx__pfree(s->pool, s, sizeof(*s));
}

/* Never called: the marker is recognised by its address. */
static void end_run(sx_task *t)
{
	(void)t;
	abort();
}

static void turn_run(sx_task *t)
{
	sx_strand *s = SX_CONTAINER_OF(t, sx_strand, turn);
	sx__link *l = s->rest;
	unsigned ran = 0;

	s->rest = NULL;
	for (;;) {
		while (l != NULL) {
			sx__link *next = l->next;
			sx_task *task = sx__link_task(l);

			if (task == &s->end) {
				SX__ASSERT(next == NULL); /* nothing may follow sx_strand_destroy */
				strand_free(s);
				return;
			}
			if (ran == SX_STRAND_BATCH) {
				s->rest = l;
				sx__push_local(sx__worker_of(s->pool), &s->turn);
				return;
			}
			task->run(task); /* may free or resubmit itself: next was read before */
			ran++;
			l = next;
		}
		if (sx__stack_close_empty(&s->head))
			return; /* idle: s is not touched again */
		/* Not empty: only the turn takes, so this finds the pushes that kept it open. */
		l = sx__list_reverse(sx__stack_take(&s->head));
	}
}

/* SX_CANCEL discarded the queued turn, on the shutdown thread after the workers stopped: no
 * worker runs or pushes any more, and outside submitters are refused. */
static void turn_cancel(sx_task *t, int err)
{
	sx_strand *s = SX_CONTAINER_OF(t, sx_strand, turn);
	sx__link *l = s->rest;
	bool ended = false;

	(void)err;
	s->rest = NULL;
	do {
		while (l != NULL) {
			sx__link *next = l->next;
			sx_task *task = sx__link_task(l);

			if (task == &s->end)
				ended = true;
			else
				sx__cancel_task(s->pool, task);
			l = next;
		}
		l = sx__list_reverse(sx__stack_take(&s->head));
	} while (l != NULL || !sx__stack_close_empty(&s->head));
	if (ended)
		strand_free(s);
}

int sx_strand_create(sx_pool *pool, sx_strand **out)
{
	sx_strand *s;

	if (pool == NULL || out == NULL)
		return -EINVAL;
	s = sx__palloc(pool, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->head = SX__CLOSED;
	s->pool = pool;
	s->turn.run = turn_run;
	s->turn.cancel = turn_cancel;
	s->end.run = end_run;
	*out = s;
	return 0;
}

/* Push t's link; true when this push reopened an idle strand instead: t is then the first in
 * `rest` and the turn is the caller's to queue (or, for the destroy marker, the strand's to
 * free). */
static bool push(sx_strand *s, sx_task *t)
{
	sx__link *e = sx__task_link(t);

	for (;;) {
		if (sx__stack_push(&s->head, e, e))
			return false;
		if (sx__stack_reopen(&s->head)) {
			e->next = NULL;
			s->rest = e;
			return true;
		}
	}
}

/* Both submit forms: t, or with t NULL a fresh node for fn(arg). */
static int submit(sx_strand *s, sx_task *t, void (*fn)(void *), void *arg)
{
	sx__worker *w = sx__worker_of(s->pool);
	sx__tcache *c;
	int rc = 0;

	if (SX__LIKELY(w != NULL)) {
		if (t == NULL && (t = sx__node_task(sx__worker_cache(w), fn, arg)) == NULL)
			return -ENOMEM;
		if (push(s, t))
			sx__spawn_local(w, &s->turn);
		return 0;
	}
	/* Inside the submission section a shutdown cannot slip between the push and the turn. */
	if ((c = sx__remote_enter(s->pool, &rc)) == NULL)
		return rc;
	if (t == NULL && (t = sx__node_task(c, fn, arg)) == NULL)
		rc = -ENOMEM;
	else if (push(s, t))
		sx__inject(s->pool, c, &s->turn);
	sx__remote_leave(c);
	return rc;
}

int sx_strand_submit(sx_strand *strand, void (*fn)(void *), void *arg)
{
	if (SX__UNLIKELY(strand == NULL || fn == NULL))
		return -EINVAL;
	return submit(strand, NULL, fn, arg);
}

int sx_strand_submit_task(sx_strand *strand, sx_task *task)
{
	if (SX__UNLIKELY(strand == NULL || task == NULL || task->run == NULL))
		return -EINVAL;
	return submit(strand, task, NULL, NULL);
}

void sx_strand_destroy(sx_strand *strand)
{
	if (strand == NULL)
		return;
	/* Reopened: the strand was idle and holds only the marker, which nobody else can see. */
	if (push(strand, &strand->end))
		strand_free(strand);
}
