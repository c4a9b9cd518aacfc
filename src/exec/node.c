/*
 * Task nodes for the fn + arg form of sx_pool_submit.
 *
 * Nodes live in slabs taken from the pool's allocator and are never returned to it before
 * destroy. Each thread that submits or runs tasks keeps two local lists in its sx__tcache:
 * `free` (nodes to hand out) and an outbox (nodes released after their task ran). A node is
 * usually freed by a different thread than the one that took it (submitter vs. worker), so
 * outboxes fill where tasks run and free lists drain where tasks are submitted. Full outboxes
 * travel to pool->spare as one chain (one CAS per SX__NODE_BATCH nodes); an empty free list
 * takes every chain there with one exchange. Only when spare is empty too does a thread
 * allocate a new slab. So the steady state costs no allocator call and no atomic per task.
 *
 * spare is a ck_stack used push-many / pop-all (push_upmc + batch_pop_upmc), which has no ABA
 * problem: a pop never reads a node's next pointer before owning the whole list.
 */
#include "exec/exec.h"

typedef struct sx__slab {
	ck_stack_entry_t link;
} SX__ALIGNED sx__slab;

static sx__node *node_of_link(ck_stack_entry_t *e)
{
	return SX_CONTAINER_OF(sx__link_task(e), sx__node, task);
}

/* Take every chain in pool->spare into c->free. Returns false when spare was empty. */
static bool take_spare(sx__tcache *c)
{
	ck_stack_entry_t *e = ck_stack_batch_pop_upmc(&c->pool->spare);

	if (e == NULL)
		return false;
	while (e != NULL) {
		sx__node *head = node_of_link(e);
		sx__node *tail = SX_CONTAINER_OF(head->task.sx_chain_tail, sx__node, task);

		e = e->next;
		tail->free_next = c->free;
		c->free = head;
		c->nfree += head->nfree;
	}
	return true;
}

static bool new_slab(sx__tcache *c)
{
	sx__slab *slab = c->pool->alloc.alloc(c->pool->alloc.ctx, SX__SLAB_BYTES, SX__CACHELINE);
	sx__node *nodes;

	if (slab == NULL)
		return false;
	nodes = (sx__node *)(void *)(slab + 1);
	for (unsigned i = 0; i < SX__SLAB_NODES; i++) {
		nodes[i].free_next = (i + 1 < SX__SLAB_NODES) ? &nodes[i + 1] : c->free;
	}
	c->free = &nodes[0];
	c->nfree += SX__SLAB_NODES;
	ck_stack_push_upmc(&c->pool->slabs, &slab->link);
	return true;
}

/* sx__node_refill - the slow half of sx__node_get (exec/exec.h): c->free is empty. Returns false
 * when every source is empty and the allocator failed. */
bool sx__node_refill(sx__tcache *c)
{
	if (c->out_head != NULL) {
		/* Reuse what this thread released itself before looking further. */
		c->free = c->out_head;
		c->nfree = c->nout;
		c->out_head = c->out_tail = NULL;
		c->nout = 0;
		return true;
	}
	return take_spare(c) || new_slab(c);
}

static void export_outbox(sx__tcache *c)
{
	sx__node *head = c->out_head;

	head->task.sx_chain_tail = &c->out_tail->task;
	head->nfree = c->nout;
	ck_stack_push_upmc(&c->pool->spare, sx__task_link(&head->task));
	c->out_head = c->out_tail = NULL;
	c->nout = 0;
}

/* sx__node_outbox_full - the slow half of sx__node_put (exec/exec.h): the outbox reached
 * SX__NODE_BATCH nodes. Reuse it locally if this thread has no free nodes, else export it. */
void sx__node_outbox_full(sx__tcache *c)
{
	if (c->free == NULL) {
		c->free = c->out_head;
		c->nfree = c->nout;
		c->out_head = c->out_tail = NULL;
		c->nout = 0;
	} else {
		export_outbox(c);
	}
}

/* sx__tcache_release - hand every node c holds to pool->spare (its owner is going away). */
void sx__tcache_release(sx__tcache *c)
{
	if (c->out_head != NULL)
		export_outbox(c);
	if (c->free != NULL) {
		sx__node *tail = c->free;

		while (tail->free_next != NULL)
			tail = tail->free_next;
		c->out_head = c->free;
		c->out_tail = tail;
		c->nout = c->nfree;
		c->free = NULL;
		c->nfree = 0;
		export_outbox(c);
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
