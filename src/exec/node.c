/*
 * Task nodes for the fn + arg form of sx_pool_submit, and the magazines that hold the free ones.
 *
 * Nodes live in slabs taken from the pool's allocator and are never returned to it before
 * destroy. Each thread that submits or runs tasks keeps two magazines in its sx__tcache (see
 * struct sx__mag): `cur` to hand nodes out, `out` to put released ones in. A node is usually
 * released by a different thread than the one that took it (submitter vs. worker), so `out`
 * fills where tasks run and `cur` drains where tasks are submitted. A full `out` travels to
 * pool->full_mags (one CAS per SX__NODE_BATCH nodes); an empty `cur` first swaps with a
 * non-empty `out`, then takes every full magazine on full_mags with one exchange (keeping the
 * rest on a private list). Only when all of them are empty does a thread allocate a new slab.
 * So the steady state costs no allocator call and no atomic per task, and, since a magazine is
 * an array, a node's hand-out never waits on the memory of the node before it.
 *
 * Every pool-wide stack here is push-one / pop-all (push_upmc + batch_pop_upmc): a pop never
 * reads an entry's link before owning the whole list, so there is no ABA problem.
 *
 * If no empty magazine can be allocated for a release, the node goes to pool->loose, linked
 * through its task's queue link; a refill that finds nothing else takes those back first.
 */
#include "exec/exec.h"

typedef struct sx__slab {
	ck_stack_entry_t link;
} SX__ALIGNED sx__slab;

/* Keep at most this many empty magazines per thread; the rest go to the pool. */
#define SX__MAG_KEEP 2u
/* The longest walk mag_empty makes to hand the pool's empty magazines back (see there). */
#define SX__MAG_WALK 32u

static sx__mag *mag_of(ck_stack_entry_t *e)
{
	return SX_CONTAINER_OF(e, sx__mag, link);
}

/*
 * An empty magazine for c: one it emptied itself, a spare it took from the pool, the pool's, or a
 * new one (NULL if the allocator fails). Taking from the pool takes them all with one exchange;
 * then c keeps one and hands the rest back in one push, which needs the list's end: a walk over
 * one cold line per magazine. After a burst the pool may hold thousands, so the walk stops after
 * SX__MAG_WALK: c then keeps the rest as spares, and each spare it uses gives one more back to
 * the pool (one push), so a thread that took many does not keep them from the others for long.
 */
static sx__mag *mag_empty(sx__tcache *c)
{
	ck_stack_entry_t *e = c->empty, *back, *last;
	unsigned k = 0;
	sx__mag *m;

	if (e != NULL) {
		c->empty = e->next;
		c->nempty--;
	} else if ((e = c->spare) != NULL) {
		if ((back = e->next) != NULL) {
			c->spare = back->next;
			ck_stack_push_upmc(&c->pool->empty_mags, back);
		} else {
			c->spare = NULL;
		}
	} else if ((e = ck_stack_batch_pop_upmc(&c->pool->empty_mags)) != NULL &&
	    e->next != NULL) {
		for (last = e->next; last->next != NULL && ++k < SX__MAG_WALK; last = last->next)
			;
		if (last->next == NULL)
			(void)sx__stack_push(&c->pool->empty_mags.head, e->next, last);
		else
			c->spare = e->next;
	}
	if (e != NULL) {
		m = mag_of(e);
	} else {
		m = c->pool->alloc.alloc(c->pool->alloc.ctx, sizeof(sx__mag), SX__CACHELINE);
		if (m == NULL)
			return NULL;
		ck_stack_push_upmc(&c->pool->mags, &m->reg);
	}
	m->n = 0;
	return m;
}

/* c no longer needs the empty magazine m. */
static void mag_retire(sx__tcache *c, sx__mag *m)
{
	if (c->nempty < SX__MAG_KEEP) {
		m->link.next = c->empty;
		c->empty = &m->link;
		c->nempty++;
	} else {
		ck_stack_push_upmc(&c->pool->empty_mags, &m->link);
	}
}

/* A full magazine from c's private list or the pool's (taken whole); NULL when none. */
static sx__mag *mag_full(sx__tcache *c)
{
	sx__mag *m;

	if (c->full == NULL)
		c->full = ck_stack_batch_pop_upmc(&c->pool->full_mags);
	if (c->full == NULL)
		return NULL;
	m = mag_of(c->full);
	c->full = c->full->next;
	return m;
}

/* Fill m (empty) from pool->loose; false when loose was empty. What does not fit goes back. */
static bool take_loose(sx__tcache *c, sx__mag *m)
{
	ck_stack_entry_t *e = ck_stack_batch_pop_upmc(&c->pool->loose), *next;

	if (e == NULL)
		return false;
	for (; e != NULL; e = next) {
		next = e->next;
		if (m->n < SX__NODE_BATCH)
			m->nodes[m->n++] = SX_CONTAINER_OF(sx__link_task(e), sx__node, task);
		else
			ck_stack_push_upmc(&c->pool->loose, e);
	}
	return true;
}

/* Fill m (empty) with a new slab's nodes, the lowest address handed out first. */
static bool new_slab(sx__tcache *c, sx__mag *m)
{
	sx__slab *slab = c->pool->alloc.alloc(c->pool->alloc.ctx, SX__SLAB_BYTES, SX__CACHELINE);
	sx__node *nodes;

	if (slab == NULL)
		return false;
	nodes = (sx__node *)(void *)(slab + 1);
	for (unsigned i = 0; i < SX__SLAB_NODES; i++)
		m->nodes[i] = &nodes[SX__SLAB_NODES - 1 - i];
	m->n = SX__SLAB_NODES;
	ck_stack_push_upmc(&c->pool->slabs, &slab->link);
	return true;
}

/* sx__node_refill - the slow half of sx__node_get (exec/exec.h): c->cur is missing or empty.
 * Returns c->cur, now holding nodes, or NULL when every source is empty and the allocator
 * failed (c is then unchanged but for magazines moved between its lists). */
sx__mag *sx__node_refill(sx__tcache *c)
{
	sx__mag *m = c->cur;

	/* Reuse what this thread released itself before looking further. */
	if (c->out != NULL && c->out->n > 0) {
		c->cur = c->out;
		c->out = m;
		return c->cur;
	}
	if ((m = mag_full(c)) != NULL) {
		if (c->cur != NULL)
			mag_retire(c, c->cur);
		c->cur = m;
		return m;
	}
	if ((m = c->cur) == NULL && (m = mag_empty(c)) == NULL)
		return NULL;
	if (!take_loose(c, m) && !new_slab(c, m)) {
		if (c->cur == NULL)
			mag_retire(c, m);
		return NULL;
	}
	c->cur = m;
	return m;
}

/* sx__node_put_slow - the slow half of sx__node_put (exec/exec.h): c->out is missing or full. */
void sx__node_put_slow(sx__tcache *c, sx__node *n)
{
	sx__mag *m = c->out;

	if (m != NULL) {
		if (c->cur != NULL && c->cur->n == 0) {
			/* Nothing to hand out here: keep the full one for this thread's next gets. */
			c->out = c->cur;
			c->cur = m;
			m = c->out;
			m->nodes[m->n++] = n;
			return;
		}
		ck_stack_push_upmc(&c->pool->full_mags, &m->link);
		c->out = NULL;
	}
	if ((m = mag_empty(c)) == NULL) {
		ck_stack_push_upmc(&c->pool->loose, sx__task_link(&n->task));
		return;
	}
	m->nodes[m->n++] = n;
	c->out = m;
}

static void hand_back(sx__tcache *c, sx__mag *m)
{
	if (m == NULL)
		return;
	if (m->n > 0)
		ck_stack_push_upmc(&c->pool->full_mags, &m->link);
	else
		ck_stack_push_upmc(&c->pool->empty_mags, &m->link);
}

/* Push every entry of the NULL-terminated list l onto s. */
static void push_each(ck_stack_t *s, ck_stack_entry_t *l)
{
	ck_stack_entry_t *next;

	for (; l != NULL; l = next) {
		next = l->next;
		ck_stack_push_upmc(s, l);
	}
}

/* sx__tcache_release - hand every magazine c holds to the pool (its owner is going away). */
void sx__tcache_release(sx__tcache *c)
{
	hand_back(c, c->cur);
	hand_back(c, c->out);
	c->cur = c->out = NULL;
	push_each(&c->pool->full_mags, c->full);
	push_each(&c->pool->empty_mags, c->empty);
	push_each(&c->pool->empty_mags, c->spare);
	c->full = c->empty = c->spare = NULL;
	c->nempty = 0;
}

/* Destroy: free every magazine the pool allocated (the slabs are freed whole, elsewhere). */
void sx__free_mags(sx_pool *p)
{
	ck_stack_entry_t *e, *next;

	for (e = ck_stack_batch_pop_upmc(&p->mags); e != NULL; e = next) {
		next = e->next;
		p->alloc.free(p->alloc.ctx, SX_CONTAINER_OF(e, sx__mag, reg), sizeof(sx__mag),
		    SX__CACHELINE);
	}
}

/* The run function of every fn-form task: release the node first (so tasks that fn spawns
 * reuse it while it is hot in cache), then call fn. Always runs on a worker. */
void sx__node_task_run(sx_task *t)
{
	sx__node *n = SX_CONTAINER_OF(t, sx__node, task);
	void (*fn)(void *) = n->fn;
	void *arg = n->arg;

	sx__node_put(&sx__self->cache, n);
	fn(arg);
}
