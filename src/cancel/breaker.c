/*
 * Breakers: a state word, a reference count, a callback list and the sources that trip it.
 *
 * The word (32 bits): while armed 0 (DERIVED for a breaker with ancestors), WAITERS set by a
 * sleeping sx_breaker_wait; once tripped
 * DONE | signo << 16 | (-code & 0xffff), by one CAS from any armed value. The tripping thread
 * takes a reference before its CAS and gives it up last: the trip's other steps (waking futex
 * sleepers if WAITERS was set, cancelling a timer, closing the callback list with one exchange)
 * touch the breaker after the CAS that lets its owner see the trip and release it, so only that
 * reference keeps the memory. If the breaker has callbacks or sources to detach, the reference
 * goes to the notifier's queue with it (waking the notifier through an event count); otherwise
 * it is dropped, and a drop that would be the last hands the breaker to the notifier to free
 * (freeing is not async-signal-safe). Every step is an atomic or a futex system call, so
 * tripping is async-signal-safe and lock-free.
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
 * The notifier thread (one per process, started by the first breaker that needs it) runs the
 * callbacks of each tripped breaker, detaches it from its sources, and takes pending signals.
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
 * and, detached by the first of sx_breaker_release and the notifier:
 *   inputs    (multiplex, child)  a callback node on each input, holding a reference on the
 *             multiplex; detaching exchanges each handle out of its slot and withdraws it;
 *   signals   registered in the process-wide registry (under sig_lock, a cold-path lock);
 *             detaching unregisters and restores the old disposition after the last one.
 *             A hold (sx__signal_hold, for run groups' signal actors) keeps the handler
 *             installed with no breaker registered; a signal that arrives then is queued for
 *             the next breaker registered for it, so an actor that re-arms loses no signal.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <strix/breaker.h>
#include <strix/timer.h>

#include "cancel/cancel.h"

#define W_DONE    0x80000000u
#define W_WAITERS 0x40000000u
#define W_DERIVED 0x20000000u /* armed and has ancestors: a check must read theirs too */
#define W_SIGSHIFT 16
#define W_CODE    0xffffu

enum { CB_ARMED = 0, CB_FIRED = 1, CB_WITHDRAWN = 2 };
enum { K_MANUAL = 0, K_TIMER = 1, K_INPUTS = 2, K_SIGNAL = 3 };

struct sx_breaker_cb {
	struct sx_breaker_cb *next;
	void (*fn)(sx_breaker *b, void *arg);
	void *arg;
	uint32_t state;
	uint32_t refs;
};

#define CLOSED ((sx_breaker_cb *)1)
#define SWEEP_MIN 64u

struct sx_breaker {
	uint32_t word;
	uint32_t refs;
	int kind;
	uint32_t nanc;               /* ancestors (derived breakers); fixed at creation */
	sx_breaker **anc;            /* inputs first (a reference on each), then their ancestors */
	sx_breaker_cb *cbs;          /* Treiber stack; CLOSED once tripped */
	sx_breaker_cb *fired;        /* the list the trip closed, for the notifier */
	uint32_t linked;             /* nodes pushed since the last sweep (heuristic) */
	uint32_t sweep_at;
	sx_breaker *qnext;           /* notifier queue; free_breaker's list once unreachable */
	/* timer */
	sx_timer timer;
	uint32_t timer_armed;        /* 1 until the trip or the timer callback claims it (CAS) */
	/* inputs */
	size_t ninputs;
	sx_breaker_cb **inputs;      /* handles, exchanged out by detach */
	/* signals */
	uint64_t sigs;               /* bit s-1: registered for signal s (under sig_lock) */
};

/* ---- the notifier thread ------------------------------------------------------------------- */

static struct {
	struct ck_ec32 ec;         /* bumped by trips and by the signal handler */
	sx_breaker *queue;         /* tripped breakers with work for us */
	uint64_t sigpending;       /* bit s-1: signal s arrived */
	int started;
	pthread_mutex_t lock;      /* cold: only orders the thread's start */
} nt = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void run_tripped(sx_breaker *b);
static void take_signals(uint64_t bits);
static void unref(sx_breaker *b);

static void *notifier_main(void *arg)
{
	(void)arg;
	for (;;) {
		uint32_t seq = ck_ec32_value(&nt.ec);
		uint64_t sigs = ck_pr_fas_64(&nt.sigpending, 0);
		sx_breaker *q = ck_pr_fas_ptr(&nt.queue, NULL), *fifo = NULL;

		if (sigs != 0)
			take_signals(sigs); /* trips push onto the queue: taken next round */
		while (q != NULL) {     /* LIFO -> FIFO: callbacks run in trip order */
			sx_breaker *next = q->qnext;

			q->qnext = fifo;
			fifo = q;
			q = next;
		}
		while (fifo != NULL) {
			sx_breaker *b = fifo;

			fifo = b->qnext;
			run_tripped(b);
			unref(b); /* the queue's reference */
		}
		if (sigs == 0 && ck_pr_load_ptr(&nt.queue) == NULL)
			ck_ec32_wait(&nt.ec, &sx__ec_mode, seq, NULL);
	}
	return NULL;
}

static int notifier_start(void)
{
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;
	int rc = 0;

	if (SX__LIKELY(ck_pr_load_int(&nt.started)))
		return 0;
	pthread_mutex_lock(&nt.lock);
	if (!nt.started) {
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		/* The notifier never takes signals: they go to the application's threads. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		if (pthread_create(&th, &attr, notifier_main, NULL) != 0)
			rc = -EAGAIN;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_attr_destroy(&attr);
		if (rc == 0)
			ck_pr_store_int(&nt.started, 1);
	}
	pthread_mutex_unlock(&nt.lock);
	return rc;
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

/* Frees b, and then each input whose last reference was b's (a list through qnext, not a
 * recursion: a chain of children may be long). */
static void free_breaker(sx_breaker *b)
{
	b->qnext = NULL;
	while (b != NULL) {
		sx_breaker *rest = b->qnext;
		/* Nodes still listed: only possible for a breaker that never tripped, which release
		 * prevents; kept for robustness (they are dropped, never run: b is unreachable). */
		sx_breaker_cb *n = b->cbs;

		while (n != NULL && n != CLOSED) {
			sx_breaker_cb *next = n->next;

			cb_unref(n);
			n = next;
		}
		for (size_t i = 0; i < b->ninputs; i++) {
			sx_breaker *in = b->anc[i];
			bool zero;

			ck_pr_dec_32_zero(&in->refs, &zero);
			if (zero) {
				in->qnext = rest;
				rest = in;
			}
		}
		sx__dfree(b, breaker_size(b->ninputs, b->nanc), SX__SMALL_ALIGN);
		b = rest;
	}
}

static void unref(sx_breaker *b)
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
static void run_chain(sx_breaker *b, sx_breaker_cb *n)
{
	while (n != NULL) {
		sx_breaker_cb *next = n->next;

		if (ck_pr_cas_32(&n->state, CB_ARMED, CB_FIRED))
			n->fn(b, n->arg);
		cb_unref(n);
		n = next;
	}
}

/* ---- tripping ------------------------------------------------------------------------------- */

static uint32_t code_word(int err, int signo)
{
	return W_DONE | ((uint32_t)signo << W_SIGSHIFT) | ((uint32_t)-err & W_CODE);
}

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

static void queue_push(sx_breaker *b)
{
	sx_breaker *head = ck_pr_load_ptr(&nt.queue);

	do {
		b->qnext = head;
	} while (!ck_pr_cas_ptr_value(&nt.queue, head, b, &head));
	ck_ec32_inc(&nt.ec, &sx__ec_mode);
}

/* Drop a reference from code that may run in a signal handler: the last one is handed to the
 * notifier, which frees b (its run_tripped finds nothing left to do). Every breaker that can be
 * tripped by a CAS started the notifier when it was created. */
static void unref_async(sx_breaker *b)
{
	uint32_t r = ck_pr_load_32(&b->refs);

	do {
		if (r == 1) {
			queue_push(b);
			return;
		}
	} while (!ck_pr_cas_32_value(&b->refs, r, r - 1, &r));
}

/*
 * The one trip path. Async-signal-safe. Returns true if this call tripped b with done_word;
 * false if b had tripped, or if an ancestor had (b then takes that ancestor's word: it read as
 * done already, so this is no new trip). The caller guarantees b's memory for the call only; the
 * reference taken before the CAS covers everything after it.
 */
static bool trip_word(sx_breaker *b, uint32_t done_word)
{
	uint32_t v = ck_pr_load_32(&b->word), aw;
	sx_breaker_cb *chain;
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
			unref_async(b);
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
	chain = ck_pr_fas_ptr(&b->cbs, CLOSED);
	if (chain != NULL || b->kind == K_INPUTS || b->kind == K_SIGNAL) {
		ck_pr_store_ptr(&b->fired, chain);
		queue_push(b); /* our reference becomes the queue's */
	} else {
		unref_async(b);
	}
	return own;
}

/* b's word, after taking an ancestor's if one has tripped and b's own word has not yet. */
static uint32_t settled_word(sx_breaker *b)
{
	uint32_t w = ck_pr_load_32(&b->word), aw;

	if ((w & (W_DONE | W_DERIVED)) == W_DERIVED && (aw = ancestor_word(b)) != 0) {
		trip_word(b, aw);
		w = ck_pr_load_32(&b->word);
	}
	return w;
}

int sx__breaker_trip_err(sx_breaker *b, int err)
{
	return trip_word(b, code_word(err, 0)) ? 0 : -EALREADY;
}

int sx_breaker_trip(sx_breaker *b)
{
	if (b == NULL)
		return -EINVAL;
	return sx__breaker_trip_err(b, -ECANCELED);
}

/* ---- sources: signals ----------------------------------------------------------------------- */

#define MAXSIG 64

static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER; /* cold: signal registration */
static struct sigslot {
	unsigned n, cap;
	sx_breaker **list;
	unsigned holds;              /* sx__signal_hold calls not yet undone */
	bool queued;                 /* arrived while held with no breaker: for the next one */
	struct sigaction old;
} sigslots[MAXSIG + 1];

static void on_signal(int signo)
{
	int saved = errno;

	if (signo > 0 && signo <= MAXSIG) {
		ck_pr_or_64(&nt.sigpending, UINT64_C(1) << (signo - 1));
		ck_ec32_inc(&nt.ec, &sx__ec_mode);
	}
	errno = saved;
}

static bool catchable(int s)
{
	switch (s) {
	case SIGKILL: case SIGSTOP: case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL:
	case SIGTRAP: case SIGSYS:
		return false;
	default:
		/* 32 .. SIGRTMIN-1 belong to the C library (thread cancellation, setxid). */
		return s > 0 && s <= MAXSIG && !(s >= 32 && s < SIGRTMIN) && s <= SIGRTMAX;
	}
}

/* Under sig_lock. */
static void sig_remove(sx_breaker *b, int s)
{
	struct sigslot *sl = &sigslots[s];

	for (unsigned i = 0; i < sl->n; i++) {
		if (sl->list[i] == b) {
			sl->list[i] = sl->list[--sl->n];
			break;
		}
	}
	if (sl->n == 0 && sl->holds == 0)
		sigaction(s, &sl->old, NULL);
}

static void detach_signals(sx_breaker *b)
{
	bool had;

	pthread_mutex_lock(&sig_lock);
	had = b->sigs != 0;
	for (int s = 1; s <= MAXSIG; s++)
		if (b->sigs & (UINT64_C(1) << (s - 1)))
			sig_remove(b, s);
	b->sigs = 0;
	pthread_mutex_unlock(&sig_lock);
	if (had)
		unref(b); /* the registry's reference */
}

/* On the notifier: trip every breaker waiting for one of these signals. */
static void take_signals(uint64_t bits)
{
	pthread_mutex_lock(&sig_lock);
	for (int s = 1; s <= MAXSIG; s++) {
		if (!(bits & (UINT64_C(1) << (s - 1))))
			continue;
		if (sigslots[s].n == 0 && sigslots[s].holds > 0)
			sigslots[s].queued = true;
		for (unsigned i = 0; i < sigslots[s].n; i++)
			trip_word(sigslots[s].list[i], code_word(SX_ESIGNAL, s));
	}
	pthread_mutex_unlock(&sig_lock);
}

/* Under sig_lock: make sure strix's handler is s's disposition while s has a breaker or a hold.
 * Returns 0, or -EINVAL if the kernel refuses. */
static int sig_install(struct sigslot *sl, int s)
{
	struct sigaction sa;

	if (sl->n != 0 || sl->holds != 0)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigfillset(&sa.sa_mask);
	return sigaction(s, &sa, &sl->old) == 0 ? 0 : -EINVAL;
}

bool sx__signal_catchable(int s)
{
	return catchable(s);
}

int sx__signal_hold(uint64_t sigs)
{
	uint64_t taken = 0;
	int rc = 0;

	for (int s = 1; s <= MAXSIG; s++)
		if ((sigs & (UINT64_C(1) << (s - 1))) && !catchable(s))
			return -EINVAL;
	if ((rc = notifier_start()) != 0)
		return rc;
	pthread_mutex_lock(&sig_lock);
	for (int s = 1; s <= MAXSIG && rc == 0; s++) {
		if (!(sigs & (UINT64_C(1) << (s - 1))))
			continue;
		if ((rc = sig_install(&sigslots[s], s)) == 0) {
			sigslots[s].holds++;
			taken |= UINT64_C(1) << (s - 1);
		}
	}
	pthread_mutex_unlock(&sig_lock);
	if (rc != 0)
		sx__signal_unhold(taken);
	return rc;
}

void sx__signal_unhold(uint64_t sigs)
{
	pthread_mutex_lock(&sig_lock);
	for (int s = 1; s <= MAXSIG; s++) {
		struct sigslot *sl = &sigslots[s];

		if (!(sigs & (UINT64_C(1) << (s - 1))) || sl->holds == 0)
			continue;
		if (--sl->holds == 0) {
			sl->queued = false;
			if (sl->n == 0)
				sigaction(s, &sl->old, NULL);
		}
	}
	pthread_mutex_unlock(&sig_lock);
}

/* ---- sources: detach ------------------------------------------------------------------------ */

static void detach(sx_breaker *b)
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
		detach_signals(b);
		break;
	default:
		break;
	}
}

/* On the notifier, for each tripped breaker it was handed. */
static void run_tripped(sx_breaker *b)
{
	detach(b);
	run_chain(b, ck_pr_fas_ptr(&b->fired, NULL));
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
	b->word = code_word(err, 0);
	b->cbs = CLOSED;
	*out = b;
	return 0;
}

int sx_breaker_create(sx_breaker **out)
{
	sx_breaker *b;
	int rc;

	if (out == NULL)
		return -EINVAL;
	if ((rc = notifier_start()) != 0)
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
		trip_word(b, code_word(status == 0 ? -ETIMEDOUT : status, 0));
	unref(b); /* the timer's reference */
}

static int timed(sx_pool *pool, uint64_t when, bool at, sx_breaker **out)
{
	sx_breaker *b;
	int rc;

	if ((rc = notifier_start()) != 0)
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
	if (abs_ns <= sx_clock_monotonic.now_ns(NULL))
		return tripped(out, -ETIMEDOUT);
	return timed(pool, abs_ns, true, out);
}

static void input_tripped(sx_breaker *input, void *arg)
{
	sx_breaker *b = arg;

	trip_word(b, ck_pr_load_32(&input->word) & ~W_WAITERS);
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
	if ((rc = notifier_start()) != 0)
		return rc;
	b = new_derived(list, n);
	if (b == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		sx_breaker_cb *h;
		uint32_t w = ck_pr_load_32(&list[i]->word);

		if (w & W_DONE) {
			trip_word(b, w & ~W_WAITERS);
			break;
		}
		ck_pr_inc_32(&b->refs);
		rc = sx_breaker_on_done(list[i], input_tripped, b, &h);
		if (rc == -EALREADY) {
			ck_pr_dec_32(&b->refs);
			trip_word(b, ck_pr_load_32(&list[i]->word) & ~W_WAITERS);
			break;
		}
		if (rc != 0) {
			ck_pr_dec_32(&b->refs);
			/* Give back what was registered; b never reached the caller. */
			trip_word(b, code_word(-ECANCELED, 0));
			detach(b);
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
		detach(b);
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
		if (!catchable(s))
			return -EINVAL;
		sigs |= UINT64_C(1) << (s - 1);
	}
	if (sigs == 0)
		return tripped(out, -ECANCELED);
	if ((rc = notifier_start()) != 0)
		return rc;
	b = new_breaker(K_SIGNAL);
	if (b == NULL)
		return -ENOMEM;

	pthread_mutex_lock(&sig_lock);
	for (int s = 1; s <= MAXSIG && rc == 0; s++) {
		struct sigslot *sl = &sigslots[s];

		if (!(sigs & (UINT64_C(1) << (s - 1))))
			continue;
		if (sl->n == sl->cap) {
			unsigned cap = sl->cap ? sl->cap * 2 : 4;
			sx_breaker **l = sx__zalloc(cap * sizeof(*l), SX__SMALL_ALIGN);

			if (l == NULL) {
				rc = -ENOMEM;
				break;
			}
			if (sl->n)
				memcpy(l, sl->list, sl->n * sizeof(*l));
			if (sl->list)
				sx__dfree(sl->list, sl->cap * sizeof(*l), SX__SMALL_ALIGN);
			sl->list = l;
			sl->cap = cap;
		}
		if ((rc = sig_install(sl, s)) != 0)
			break;
		sl->list[sl->n++] = b;
		b->sigs |= UINT64_C(1) << (s - 1);
	}
	if (rc != 0) {
		/* Undo the signals registered so far; nothing else saw b. */
		for (int s = 1; s <= MAXSIG; s++)
			if (b->sigs & (UINT64_C(1) << (s - 1)))
				sig_remove(b, s);
		pthread_mutex_unlock(&sig_lock);
		sx__dfree(b, breaker_size(0, 0), SX__SMALL_ALIGN);
		return rc;
	}
	b->refs = 2; /* the caller's and the registry's */
	/* A signal that arrived while it was only held waited for the next breaker: this one. */
	for (int s = 1; s <= MAXSIG; s++) {
		if ((b->sigs & (UINT64_C(1) << (s - 1))) && sigslots[s].queued) {
			sigslots[s].queued = false;
			trip_word(b, code_word(SX_ESIGNAL, s));
			break;
		}
	}
	pthread_mutex_unlock(&sig_lock);
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

int sx_breaker_wait(sx_breaker *b, int64_t timeout_ns)
{
	uint64_t deadline = UINT64_MAX;

	if (b == NULL)
		return -EINVAL;
	if (timeout_ns > 0) {
		uint64_t now = sx_clock_monotonic.now_ns(NULL);

		deadline = (uint64_t)timeout_ns < UINT64_MAX - now ? now + (uint64_t)timeout_ns
		                                                   : UINT64_MAX;
	}
	for (;;) {
		uint32_t w = settled_word(b);

		if (w & W_DONE)
			return 0;
		if (timeout_ns == 0 || (timeout_ns > 0 && sx_clock_monotonic.now_ns(NULL) >= deadline))
			return -ETIMEDOUT;
		if (!(w & W_WAITERS) && !ck_pr_cas_32(&b->word, w, w | W_WAITERS))
			continue;
		sx__futex_wait_ns(&b->word, w | W_WAITERS, deadline);
	}
}

/* ---- callbacks ------------------------------------------------------------------------------ */

/* Drop withdrawn nodes: take the list, keep the rest, push it back (or run it: tripped). */
static void sweep(sx_breaker *b)
{
	sx_breaker_cb *h = ck_pr_load_ptr(&b->cbs), *keep = NULL, *tail = NULL, *n, *next;
	uint32_t kept = 0;

	do {
		if (h == NULL || h == CLOSED)
			return;
	} while (!ck_pr_cas_ptr_value(&b->cbs, h, NULL, &h));
	for (n = h; n != NULL; n = next) {
		next = n->next;
		if (ck_pr_load_32(&n->state) == CB_WITHDRAWN) {
			cb_unref(n);
			continue;
		}
		n->next = keep;
		keep = n;
		if (tail == NULL)
			tail = n;
		kept++;
	}
	ck_pr_store_32(&b->linked, kept);
	ck_pr_store_32(&b->sweep_at, 2 * kept + SWEEP_MIN);
	if (keep == NULL)
		return;
	h = ck_pr_load_ptr(&b->cbs);
	do {
		if (h == CLOSED) {
			run_chain(b, keep); /* tripped while we held them */
			return;
		}
		tail->next = h;
	} while (!ck_pr_cas_ptr_value(&b->cbs, h, keep, &h));
}

int sx_breaker_on_done(sx_breaker *b, void (*fn)(sx_breaker *, void *), void *arg,
    sx_breaker_cb **handle)
{
	sx_breaker_cb *n, *h;
	int rc;

	if (b == NULL || fn == NULL)
		return -EINVAL;
	if ((settled_word(b) & W_DONE) || ck_pr_load_ptr(&b->cbs) == CLOSED)
		return -EALREADY;
	if ((rc = notifier_start()) != 0)
		return rc;
	n = sx__zalloc(sizeof(*n), SX__SMALL_ALIGN);
	if (n == NULL)
		return -ENOMEM;
	n->fn = fn;
	n->arg = arg;
	n->refs = handle != NULL ? 2 : 1;
	h = ck_pr_load_ptr(&b->cbs);
	do {
		if (h == CLOSED) {
			sx__dfree(n, sizeof(*n), SX__SMALL_ALIGN);
			return -EALREADY;
		}
		n->next = h;
	} while (!ck_pr_cas_ptr_value(&b->cbs, h, n, &h));
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
	trip_word(b, code_word(-ECANCELED, 0));
	detach(b);
	unref(b);
}
