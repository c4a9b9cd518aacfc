/*
 * The pool's epoch domain (exec/exec.h, sx__epoch_begin): one ck_epoch_t per pool, one record
 * per thread in that thread's sx__tcache.
 *
 * Deferred frees are collected with ck_epoch_poll_deferred and run here rather than inside
 * Concurrency Kit, so that the one annotation ThreadSanitizer needs sits in one place: the
 * scan that finds every reader gone runs in libck, which the sanitizer does not see, so each
 * section's end releases on the pool's epoch and every batch of frees acquires it before it
 * runs (base/base.h, SX__TSAN_ACQUIRE).
 *
 * ck_epoch_call takes its epoch snapshot without a fence; the unlink a retirement follows must
 * be visible before that snapshot on weakly ordered machines, hence the full fence in retire.
 */
#include "exec/exec.h"

void sx__epoch_register(sx__tcache *c)
{
	SX__ASSERT(!c->epoch_on);
	ck_epoch_register(&c->pool->epoch, &c->erec, c);
	c->epoch_on = true;
}

/* Run every entry of a list ck_epoch_poll_deferred collected (a ck_stack, newest first). */
static unsigned run_due(sx_pool *p, ck_stack_t *due)
{
	ck_stack_entry_t *s = CK_STACK_FIRST(due), *next;
	unsigned n = 0;

	if (s == NULL)
		return 0;
	SX__TSAN_ACQUIRE(&p->epoch);
	for (; s != NULL; s = next) {
		ck_epoch_entry_t *e = SX_CONTAINER_OF(s, ck_epoch_entry_t, stack_entry);

		next = CK_STACK_NEXT(s);
		e->function(e);
		n++;
	}
	return n;
}

bool sx__epoch_poll(sx__tcache *c)
{
	ck_stack_t due = CK_STACK_INITIALIZER;
	bool moved;

	if (!c->epoch_on || ck_pr_load_uint(&c->erec.n_pending) == 0)
		return false;
	moved = ck_epoch_poll_deferred(&c->erec, &due);
	return run_due(c->pool, &due) > 0 || moved;
}

void sx__epoch_retire(sx__tcache *c, ck_epoch_entry_t *e, ck_epoch_cb_t *fn)
{
	if (SX__UNLIKELY(!c->epoch_on))
		sx__epoch_register(c);
	ck_pr_fence_memory(); /* the unlink before the snapshot ck_epoch_call takes (see above) */
	ck_epoch_call(&c->erec, e, fn);
	(void)sx__epoch_poll(c);
}

void sx__epoch_barrier(sx__tcache *c)
{
	if (!c->epoch_on)
		return;
	ck_epoch_synchronize(&c->erec);
	SX__TSAN_ACQUIRE(&c->pool->epoch);
	ck_epoch_reclaim(&c->erec);
}

void sx__epoch_fini(sx_pool *p)
{
	ck_stack_entry_t *e;

	/* Every thread is gone or done with the pool: whatever is pending is due. */
	SX__TSAN_ACQUIRE(&p->epoch);
	for (e = CK_STACK_FIRST(&p->epoch.records); e != NULL; e = CK_STACK_NEXT(e)) {
		ck_epoch_record_t *r = SX_CONTAINER_OF(e, ck_epoch_record_t, record_next);

		ck_epoch_reclaim(r);
	}
}
