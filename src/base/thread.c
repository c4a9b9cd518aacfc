/*
 * Per-thread records (base/base.h): claimed by one live thread at a time, revived after their
 * thread exits. Cold: a thread claims a record once per registry.
 */
#include <errno.h>
#include <sched.h>

#include "base/base.h"

sx__rec *sx__rec_claim(ck_stack_t *reg)
{
	ck_stack_entry_t *e;

	/* Records are never unlinked while the registry lives, so walking it needs no protection. */
	for (e = ck_pr_load_ptr(&reg->head); e != NULL; e = ck_pr_load_ptr(&e->next)) {
		sx__rec *r = SX_CONTAINER_OF(e, sx__rec, link);

		if (ck_pr_load_uint(&r->dead) && ck_pr_cas_uint(&r->dead, 1, 0))
			return r;
	}
	return NULL;
}

void sx__rec_add(ck_stack_t *reg, sx__rec *r)
{
	r->dead = 0;
	ck_stack_push_upmc(reg, &r->link);
}

void sx__rec_leave(sx__rec *r)
{
	/* The owner's writes (to the record, and to what its number indexes) come before the record
	 * is seen dead: the next owner's claim (a CAS, a full barrier) then reads them. */
	ck_pr_fence_store();
	ck_pr_store_uint(&r->dead, 1);
}

int sx__rec_bind(pthread_key_t key, sx__rec *r)
{
	if (pthread_setspecific(key, r) != 0) {
		sx__rec_leave(r);
		return -ENOMEM;
	}
	return 0;
}

/* A key's states: K_NONE (not created, or its creation failed: the next call tries again),
 * K_BUSY (a thread is creating it), K_READY. */
enum { K_NONE = 0, K_BUSY, K_READY };

int sx__key_once(int *state, pthread_key_t *key, void (*dtor)(void *))
{
	int st, rc;

	while ((st = ck_pr_load_int(state)) != K_READY) {
		if (st == K_BUSY || !ck_pr_cas_int(state, K_NONE, K_BUSY)) {
			sched_yield();
			continue;
		}
		rc = pthread_key_create(key, dtor);
		ck_pr_fence_store();
		ck_pr_store_int(state, rc == 0 ? K_READY : K_NONE);
		if (rc != 0)
			return -rc;
	}
	ck_pr_fence_load();
	return 0;
}

/* ---- thread indexes ------------------------------------------------------------------------- */

typedef struct index_rec {
	sx__rec rec;
	uint32_t index;
} index_rec;

static ck_stack_t index_all = CK_STACK_INITIALIZER;
static uint32_t index_next;
/* The records of the numbers below SX__STRIPES, the ones counters give a line of their own: in
 * static storage, so the threads a process runs at once, up to that many, allocate nothing for
 * their numbers (and a failed allocation never costs a thread its own line). */
static index_rec index_fixed[SX__STRIPES];
static pthread_key_t index_key;
static int index_key_state;

__thread uint32_t sx__thread_idx1 __attribute__((tls_model("initial-exec")));

static void index_exit(void *arg)
{
	index_rec *r = arg;

	/* A later destructor of this thread that asks again claims a number afresh. */
	sx__thread_idx1 = 0;
	sx__rec_leave(&r->rec);
}

uint32_t sx__thread_index_slow(void)
{
	sx__rec *claimed;
	index_rec *r;

	if (sx__key_once(&index_key_state, &index_key, index_exit) != 0)
		return SX__THREAD_NONE;
	if ((claimed = sx__rec_claim(&index_all)) != NULL) {
		r = SX_CONTAINER_OF(claimed, index_rec, rec);
	} else {
		/* Numbers are never given back, only handed on: 2^32 - 1 threads alive at once. One
		 * at or above SX__STRIPES is lost if its record cannot be allocated: those numbers
		 * all count on the shared line, so none is missed. */
		uint32_t n = ck_pr_faa_32(&index_next, 1);

		if (n < SX__STRIPES) {
			r = &index_fixed[n];
		} else if ((r = sx__zalloc(sizeof(*r), SX__SMALL_ALIGN)) == NULL) {
			return SX__THREAD_NONE;
		}
		r->index = n;
		sx__rec_add(&index_all, &r->rec);
	}
	if (sx__rec_bind(index_key, &r->rec) != 0)
		return SX__THREAD_NONE;
	sx__thread_idx1 = r->index + 1;
	return r->index;
}
