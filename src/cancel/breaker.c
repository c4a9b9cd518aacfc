/*
 * Breakers: a state word, a reference count, a callback list and the sources that trip it. The
 * struct, the word's bits and what this file shares with notifier.c (the notifier thread) and
 * signal.c (the signal registry) are in breaker_impl.h.
 *
 * The word (its bits: breaker_impl.h) goes from any armed value to the tripped one by one CAS.
 * The tripping thread takes a reference before its CAS and gives it up last: the trip's other
 * steps (waking futex sleepers if WAITERS was set, cancelling a timer, closing the callback list
 * with one exchange) touch the breaker after the CAS that lets its owner see the trip and
 * release it, so only that reference keeps the memory. If the breaker has callbacks or sources
 * to detach, the reference goes to the notifier's queue with it (notifier.c); otherwise it is
 * dropped, and a drop that would be the last hands the breaker to the notifier to free (freeing
 * is not async-signal-safe). Every step is an atomic or a futex system call, so tripping is
 * async-signal-safe and lock-free.
 *
 * Derived breakers (multiplex, child) read their inputs' words as well as their own: each keeps
 * a list of its ancestors (its inputs, then their ancestors, fixed at creation) and holds a
 * reference on each input, so every ancestor's memory lives as long as it does. sx_breaker_done
 * is done if its own word or an ancestor's is, so a derived breaker is done the moment the trip
 * of any ancestor has happened: the propagation that sets its own word (an input's callback on
 * the notifier) only wakes its waiters and runs its callbacks later. The first call that reads
 * the code (err, signo, wait, trip, release, on_done) of a breaker whose ancestor has tripped
 * sets its word to that ancestor's by the same CAS as a trip, so the code never changes after
 * it was first read.
 *
 * Callback nodes have two owners: the list, and the handle if the caller asked for one; each
 * drops one reference, the last frees the node. A node's state goes ARMED -> FIRED (the
 * notifier's CAS) or ARMED -> WITHDRAWN (sx_breaker_withdraw's CAS): the one CAS that wins
 * decides whether the callback runs. Withdrawn nodes stay linked until a sweep: when the list
 * has grown past twice what the last sweep left (plus 64), the registering thread takes the
 * list (CAS to empty), drops the withdrawn nodes and pushes the rest back; if the breaker
 * tripped meanwhile, it runs those itself. So no thread ever touches a node it holds no
 * reference on: reference counts, not deferred reclamation, keep the memory valid. (Lifetimes
 * users hold are reference counted, and ck_epoch is for memory a racing reader may still read.
 * A handle is held by the user for as long as they like, so an epoch cannot cover it; and no
 * list is ever walked by one thread while another frees from it: a list is only walked by the
 * thread that took it whole with one exchange, so there is no racing reader to wait for.)
 *
 * Sources:
 *   timer     (timeout, deadline) an inline timer holding a reference, cancelled by the trip
 *             itself (one CAS decides between the trip and the timer's own callback);
 * and, detached by the first of sx_breaker_release and the notifier (sx__breaker_detach):
 *   inputs    (multiplex, child)  a callback node on each input, holding a reference on the
 *             multiplex; detaching exchanges each handle out of its slot and withdraws it;
 *   signals   registered in the process-wide signal registry (signal.c), which holds a
 *             reference; detaching unregisters it there.
 */
#include <errno.h>
#include <signal.h>

#include <strix/breaker.h>
#include <strix/timer.h>

#include "cancel/breaker_impl.h"

#define SWEEP_MIN 64u

static inline sx_breaker_cb *of_link(sx__link *l)
{
	return SX_CONTAINER_OF(l, sx_breaker_cb, link);
}

/* ---- references and callback nodes ---------------------------------------------------------- */

static void cb_unref(sx_breaker_cb *n)
{
	bool zero;

	ck_pr_dec_32_zero(&n->refs, &zero);
	if (zero)
		sx__dfree(n, sizeof(*n), SX__SMALL_ALIGN);
}

/* A breaker and, for a derived one, its two arrays after it: one allocation. */
static size_t breaker_size(size_t ninputs, size_t nanc)
{
	return sizeof(sx_breaker) + ninputs * sizeof(sx_breaker_cb *) + nanc * sizeof(sx_breaker *);
}

static sx_breaker *new_sized(int kind, size_t ninputs, size_t nanc)
{
	sx_breaker *b = sx__zalloc(breaker_size(ninputs, nanc), SX__SMALL_ALIGN);

	if (b != NULL) {
		b->refs = 1;
		b->kind = kind;
		b->sweep_at = SWEEP_MIN;
		b->word = nanc > 0 ? W_DERIVED : 0;
		b->inputs = ninputs > 0 ? (sx_breaker_cb **)(b + 1) : NULL;
		b->anc = nanc > 0 ? (sx_breaker **)((sx_breaker_cb **)(b + 1) + ninputs) : NULL;
	}
	return b;
}

/* Frees b, and then each input whose last reference was b's (a list through qlink, not a
 * recursion: a chain of children may be long). */
static void free_breaker(sx_breaker *b)
{
	b->qlink.next = NULL;
	while (b != NULL) {
		sx__link *rest = b->qlink.next;

		/* Every breaker trips before its last reference goes (release trips it), and the trip
		 * closed its callbacks. */
		SX__ASSERT(sx__stack_closed(&b->cbs));
		for (size_t i = 0; i < b->ninputs; i++) {
			sx_breaker *in = b->anc[i];
			bool zero;

			ck_pr_dec_32_zero(&in->refs, &zero);
			if (zero) {
				in->qlink.next = rest;
				rest = &in->qlink;
			}
		}
		sx__dfree(b, breaker_size(b->ninputs, b->nanc), SX__SMALL_ALIGN);
		b = rest != NULL ? sx__breaker_of_qlink(rest) : NULL;
	}
}

static inline void unref(sx_breaker *b)
{
	bool zero;

	ck_pr_dec_32_zero(&b->refs, &zero);
	if (zero)
		free_breaker(b);
}

/* Internal references for other modules: they keep the memory, never trip or detach. */
void sx__breaker_ref(sx_breaker *b)
{
	ck_pr_inc_32(&b->refs);
}

void sx__breaker_unref(sx_breaker *b)
{
	unref(b);
}

/* Run the callbacks of a chain the caller owns (after the trip). */
void sx__breaker_run_chain(sx_breaker *b, sx__link *l)
{
	while (l != NULL) {
		sx_breaker_cb *n = of_link(l);

		l = l->next;
		if (ck_pr_cas_32(&n->state, CB_ARMED, CB_FIRED))
			n->fn(b, n->arg);
		cb_unref(n);
	}
}

/* ---- tripping ------------------------------------------------------------------------------- */

/* The word of b's first ancestor that has tripped (WAITERS cleared), or 0. Loads only. */
static uint32_t ancestor_word(const sx_breaker *b)
{
	for (uint32_t i = 0; i < b->nanc; i++) {
		uint32_t w = ck_pr_load_32(&b->anc[i]->word);

		if (w & W_DONE)
			return w & ~W_WAITERS;
	}
	return 0;
}

/*
 * The one trip path. Async-signal-safe. Returns true if this call tripped b with done_word;
 * false if b had tripped, or if an ancestor had (b then takes that ancestor's word: it read as
 * done already, so this is no new trip). The caller guarantees b's memory for the call only; the
 * reference taken before the CAS covers everything after it.
 */
bool sx__breaker_trip_word(sx_breaker *b, uint32_t done_word)
{
	uint32_t v = ck_pr_load_32(&b->word), aw;
	sx__link *chain;
	bool own = true;

	if (v & W_DONE)
		return false;
	if ((v & W_DERIVED) && (aw = ancestor_word(b)) != 0) {
		done_word = aw;
		own = false;
	}
	ck_pr_inc_32(&b->refs);
	do {
		if (v & W_DONE) {
			sx__notifier_unref_async(b);
			return false;
		}
	} while (!ck_pr_cas_32_value(&b->word, v, done_word, &v));
	if (v & W_WAITERS)
		sx__futex_wake(&b->word);
	/* A timer breaker's timer goes now (sx_timer_cancel is atomics only), so nothing touches
	 * the pool's timers once the trip has returned. Its reference is never the last one: our
	 * caller holds another (the user's, or the timer callback's own, which claimed the timer
	 * first and so does not come here). */
	if (b->kind == K_TIMER && ck_pr_cas_32(&b->timer_armed, 1, 0) &&
	    sx_timer_cancel(&b->timer) == 0)
		ck_pr_dec_32(&b->refs);
	chain = sx__stack_close(&b->cbs);
	if (chain != NULL || b->kind == K_INPUTS || b->kind == K_SIGNAL) {
		ck_pr_store_ptr(&b->fired, chain);
		sx__notifier_push(b); /* our reference becomes the queue's */
	} else {
		sx__notifier_unref_async(b);
	}
	return own;
}

/* b's word, after taking an ancestor's if one has tripped and b's own word has not yet. */
static uint32_t settled_word(sx_breaker *b)
{
	uint32_t w = ck_pr_load_32(&b->word), aw;

	if ((w & (W_DONE | W_DERIVED)) == W_DERIVED && (aw = ancestor_word(b)) != 0) {
		sx__breaker_trip_word(b, aw);
		w = ck_pr_load_32(&b->word);
	}
	return w;
}

int sx__breaker_trip_err(sx_breaker *b, int err)
{
	return sx__breaker_trip_word(b, sx__breaker_code_word(err, 0)) ? 0 : -EALREADY;
}

int sx_breaker_trip(sx_breaker *b)
{
	if (b == NULL)
		return -EINVAL;
	return sx__breaker_trip_err(b, -ECANCELED);
}

/* ---- sources: detach ------------------------------------------------------------------------ */

void sx__breaker_detach(sx_breaker *b)
{
	switch (b->kind) {
	case K_INPUTS:
		for (size_t i = 0; i < b->ninputs; i++) {
			sx_breaker_cb *h = ck_pr_fas_ptr(&b->inputs[i], NULL);

			/* Withdrawn before it ran: its reference on b is ours to drop. */
			if (h != NULL && sx_breaker_withdraw(h) == 0)
				unref(b);
		}
		break;
	case K_SIGNAL:
		sx__signal_detach(b);
		break;
	default:
		break;
	}
}

/* ---- creation ------------------------------------------------------------------------------- */

static sx_breaker *new_breaker(int kind)
{
	return new_sized(kind, 0, 0);
}

/* A breaker born tripped (no sources, no notifier needed). */
static int tripped(sx_breaker **out, int err)
{
	sx_breaker *b = new_breaker(K_MANUAL);

	if (b == NULL)
		return -ENOMEM;
	b->word = sx__breaker_code_word(err, 0);
	b->cbs = SX__CLOSED;
	*out = b;
	return 0;
}

int sx_breaker_create(sx_breaker **out)
{
	sx_breaker *b;
	int rc;

	if (out == NULL)
		return -EINVAL;
	if ((rc = sx__notifier_start()) != 0)
		return rc;
	b = new_breaker(K_MANUAL);
	if (b == NULL)
		return -ENOMEM;
	*out = b;
	return 0;
}

static void timer_fired(void *arg, int status)
{
	sx_breaker *b = arg;

	if (ck_pr_cas_32(&b->timer_armed, 1, 0))
		sx__breaker_trip_word(b, sx__breaker_code_word(status == 0 ? -ETIMEDOUT : status, 0));
	unref(b); /* the timer's reference */
}

static int timed(sx_pool *pool, uint64_t when, bool at, sx_breaker **out)
{
	sx_breaker *b;
	int rc;

	if ((rc = sx__notifier_start()) != 0)
		return rc;
	b = new_breaker(K_TIMER);
	if (b == NULL)
		return -ENOMEM;
	b->refs = 2; /* the caller's and the timer's */
	b->timer_armed = 1;
	rc = at ? sx_timer_add_at(pool, when, SX_TIMER_INLINE, timer_fired, b, &b->timer) :
	    sx_timer_add(pool, (int64_t)when, SX_TIMER_INLINE, timer_fired, b, &b->timer);
	if (rc != 0) {
		sx__dfree(b, breaker_size(0, 0), SX__SMALL_ALIGN);
		return rc;
	}
	*out = b;
	return 0;
}

int sx_breaker_timeout(sx_pool *pool, int64_t ns, sx_breaker **out)
{
	if (pool == NULL || out == NULL)
		return -EINVAL;
	if (ns < 0) /* no time limit: a breaker only a trip or a release ends */
		return sx_breaker_create(out);
	if (ns == 0)
		return tripped(out, -ETIMEDOUT);
	return timed(pool, (uint64_t)ns, false, out);
}

int sx_breaker_deadline(sx_pool *pool, uint64_t abs_ns, sx_breaker **out)
{
	if (pool == NULL || out == NULL)
		return -EINVAL;
	if (abs_ns <= sx__now_ns())
		return tripped(out, -ETIMEDOUT);
	return timed(pool, abs_ns, true, out);
}

static void input_tripped(sx_breaker *input, void *arg)
{
	sx_breaker *b = arg;

	sx__breaker_trip_word(b, ck_pr_load_32(&input->word) & ~W_WAITERS);
	unref(b); /* the input node's reference */
}

/* A derived breaker of n inputs: its handles and its ancestors (list's inputs, a reference on
 * each, then each input's ancestors) in the same allocation. NULL: out of memory. */
static sx_breaker *new_derived(sx_breaker *const *list, size_t n)
{
	size_t total = n, k = n;
	sx_breaker *b;

	for (size_t i = 0; i < n; i++) {
		if (total > UINT32_MAX - list[i]->nanc)
			return NULL;
		total += list[i]->nanc;
	}
	if ((b = new_sized(K_INPUTS, n, total)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		b->anc[i] = list[i];
		ck_pr_inc_32(&list[i]->refs);
		for (uint32_t j = 0; j < list[i]->nanc; j++)
			b->anc[k++] = list[i]->anc[j];
	}
	b->nanc = (uint32_t)total;
	b->ninputs = n;
	return b;
}

int sx_breaker_multiplex(sx_breaker *const *list, size_t n, sx_breaker **out)
{
	sx_breaker *b;
	int rc;

	if (out == NULL || (n > 0 && list == NULL))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (list[i] == NULL)
			return -EINVAL;
	if (n == 0)
		return tripped(out, -ECANCELED);
	if ((rc = sx__notifier_start()) != 0)
		return rc;
	b = new_derived(list, n);
	if (b == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		sx_breaker_cb *h;
		uint32_t w = ck_pr_load_32(&list[i]->word);

		if (w & W_DONE) {
			sx__breaker_trip_word(b, w & ~W_WAITERS);
			break;
		}
		ck_pr_inc_32(&b->refs);
		rc = sx_breaker_on_done(list[i], input_tripped, b, &h);
		if (rc == -EALREADY) {
			ck_pr_dec_32(&b->refs);
			sx__breaker_trip_word(b, ck_pr_load_32(&list[i]->word) & ~W_WAITERS);
			break;
		}
		if (rc != 0) {
			ck_pr_dec_32(&b->refs);
			/* Give back what was registered; b never reached the caller. */
			sx__breaker_trip_word(b, sx__breaker_code_word(-ECANCELED, 0));
			sx__breaker_detach(b);
			unref(b);
			return rc;
		}
		ck_pr_store_ptr(&b->inputs[i], h);
	}
	/* If an input tripped b while we registered, its detach on the notifier may have passed a
	 * slot before we filled it: detach again (each slot is taken once). Dekker: our slot stores
	 * come before this load; the trip's CAS comes before the notifier's slot loads. */
	ck_pr_fence_memory();
	if (ck_pr_load_32(&b->word) & W_DONE)
		sx__breaker_detach(b);
	*out = b;
	return 0;
}

int sx_breaker_child(sx_breaker *parent, sx_breaker **out)
{
	if (parent == NULL)
		return -EINVAL;
	return sx_breaker_multiplex(&parent, 1, out);
}

int sx_breaker_signal(const sigset_t *set, sx_breaker **out)
{
	uint64_t sigs = 0;
	sx_breaker *b;
	int rc = 0;

	if (set == NULL || out == NULL)
		return -EINVAL;
	for (int s = 1; s < NSIG; s++) {
		if (sigismember(set, s) != 1)
			continue;
		if (!sx__signal_catchable(s))
			return -EINVAL;
		sigs |= UINT64_C(1) << (s - 1);
	}
	if (sigs == 0)
		return tripped(out, -ECANCELED);
	if ((rc = sx__notifier_start()) != 0)
		return rc;
	b = new_breaker(K_SIGNAL);
	if (b == NULL)
		return -ENOMEM;
	if ((rc = sx__signal_attach(b, sigs)) != 0) {
		sx__dfree(b, breaker_size(0, 0), SX__SMALL_ALIGN);
		return rc;
	}
	*out = b;
	return 0;
}

/* ---- reading and waiting -------------------------------------------------------------------- */

bool sx_breaker_done(const sx_breaker *b)
{
	uint32_t w = ck_pr_load_32(&b->word);

	if (SX__LIKELY(!(w & W_DERIVED)))
		return (w & W_DONE) != 0; /* tripped, or armed with no ancestors */
	return ancestor_word(b) != 0;
}

/* err and signo take a tripped ancestor's word into b's own (see the top of this file), which is
 * why the const is cast away: reading the code fixes it. */
int sx_breaker_err(const sx_breaker *b)
{
	uint32_t w;

	if (b == NULL)
		return -EINVAL;
	w = settled_word((sx_breaker *)b);
	return (w & W_DONE) ? -(int)(w & W_CODE) : 0;
}

int sx_breaker_signo(const sx_breaker *b)
{
	uint32_t w = b != NULL ? settled_word((sx_breaker *)b) : 0;

	return (w & W_DONE) ? (int)((w >> W_SIGSHIFT) & 0x7f) : 0;
}

static int wait_done(void *arg, uint32_t seen)
{
	(void)seen; /* a derived breaker's trip may sit in an ancestor's word: settled_word looks */
	return (settled_word(arg) & W_DONE) != 0;
}

int sx_breaker_wait(sx_breaker *b, int64_t timeout_ns)
{
	int rc;

	if (b == NULL)
		return -EINVAL;
	rc = sx__wait_here(&b->word, W_WAITERS, wait_done, b, sx__deadline_in(timeout_ns));
	return rc == 1 ? 0 : rc;
}

/* ---- callbacks ------------------------------------------------------------------------------ */

/* Drop withdrawn nodes: take the list, keep the rest, push it back (or run it: tripped). */
static void sweep(sx_breaker *b)
{
	sx__link *l = sx__stack_grab(&b->cbs), *keep = NULL, *tail = NULL, *next;
	uint32_t kept = 0;

	for (; l != NULL; l = next) {
		next = l->next;
		if (ck_pr_load_32(&of_link(l)->state) == CB_WITHDRAWN) {
			cb_unref(of_link(l));
			continue;
		}
		l->next = keep;
		keep = l;
		if (tail == NULL)
			tail = l;
		kept++;
	}
	ck_pr_store_32(&b->linked, kept);
	ck_pr_store_32(&b->sweep_at, 2 * kept + SWEEP_MIN);
	if (keep != NULL && !sx__stack_push(&b->cbs, keep, tail))
		sx__breaker_run_chain(b, keep); /* tripped while we held them */
}

int sx_breaker_on_done(sx_breaker *b, void (*fn)(sx_breaker *, void *), void *arg,
    sx_breaker_cb **handle)
{
	sx_breaker_cb *n;
	int rc;

	if (b == NULL || fn == NULL)
		return -EINVAL;
	if ((settled_word(b) & W_DONE) || sx__stack_closed(&b->cbs))
		return -EALREADY;
	if ((rc = sx__notifier_start()) != 0)
		return rc;
	n = sx__zalloc(sizeof(*n), SX__SMALL_ALIGN);
	if (n == NULL)
		return -ENOMEM;
	n->fn = fn;
	n->arg = arg;
	n->refs = handle != NULL ? 2 : 1;
	if (!sx__stack_push(&b->cbs, &n->link, &n->link)) {
		sx__dfree(n, sizeof(*n), SX__SMALL_ALIGN);
		return -EALREADY;
	}
	if (handle != NULL)
		*handle = n;
	if (ck_pr_faa_32(&b->linked, 1) + 1 >= ck_pr_load_32(&b->sweep_at))
		sweep(b);
	return 0;
}

int sx_breaker_withdraw(sx_breaker_cb *handle)
{
	int rc;

	if (handle == NULL)
		return -EINVAL;
	rc = ck_pr_cas_32(&handle->state, CB_ARMED, CB_WITHDRAWN) ? 0 : -EALREADY;
	cb_unref(handle);
	return rc;
}

void sx_breaker_release(sx_breaker *b)
{
	if (b == NULL)
		return;
	sx__breaker_trip_word(b, sx__breaker_code_word(-ECANCELED, 0));
	sx__breaker_detach(b);
	unref(b);
}
