/*
 * Per-thread records (base/base.h): claimed by one live thread at a time, revived after their
 * thread exits. Cold: a thread claims a record once per registry.
 */
#include <errno.h>

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
