/*
 * The breaker module's shared internals: struct sx_breaker and its callback node, the word's
 * bits, the kinds of source, and the functions its three files call across one another:
 *
 *   breaker.c   breakers: their words, references, the trip, ancestors, creation, reading and
 *               waiting, callbacks (sx__breaker_*);
 *   notifier.c  the process's notifier thread and its queue of tripped breakers (sx__notifier_*);
 *   signal.c    the process's signal registry (sx__signal_*).
 *
 * Included by those three files only. The layers above include cancel/cancel.h, which names
 * struct sx_breaker without defining it: no code outside this module reads a breaker's fields.
 * Helpers on the trip path (async-signal-safe, lock-free) are inline here, so that a trip calls
 * no function across the files that it would not call within one.
 */
#ifndef STRIX_SRC_CANCEL_BREAKER_IMPL_H
#define STRIX_SRC_CANCEL_BREAKER_IMPL_H

#include "cancel/cancel.h"

/*
 * The word (32 bits): while armed 0, or DERIVED for a breaker with ancestors, plus WAITERS once
 * a sleeping sx_breaker_wait has set it; once tripped DONE | signo << SIGSHIFT | (-code & CODE),
 * set by one CAS from any armed value and never changed again.
 */
#define W_DONE    0x80000000u
#define W_WAITERS 0x40000000u
#define W_DERIVED 0x20000000u /* armed and has ancestors: a check must read theirs too */
#define W_SIGSHIFT 16
#define W_CODE    0xffffu

/* A callback node's state: ARMED -> FIRED (the notifier's CAS) or ARMED -> WITHDRAWN
 * (sx_breaker_withdraw's CAS); the one CAS that wins decides whether the callback runs. */
enum { CB_ARMED = 0, CB_FIRED = 1, CB_WITHDRAWN = 2 };
/* What may trip a breaker besides sx_breaker_trip and release, and so what the trip and the
 * notifier must undo: nothing, a timer, callbacks on inputs, the signal registry. */
enum { K_MANUAL = 0, K_TIMER = 1, K_INPUTS = 2, K_SIGNAL = 3 };

struct sx_breaker_cb {
	sx__link link;               /* in the breaker's stack of callbacks */
	void (*fn)(sx_breaker *b, void *arg);
	void *arg;
	uint32_t state;
	uint32_t refs;               /* the list's and the handle's (if the caller asked for one) */
};

struct sx_breaker {
	uint32_t word;
	uint32_t refs;
	int kind;
	uint32_t nanc;               /* ancestors (derived breakers); fixed at creation */
	sx_breaker **anc;            /* inputs first (a reference on each), then their ancestors */
	sx__link *cbs;               /* closable stack (base/base.h) of sx_breaker_cb; closed by the trip */
	sx__link *fired;             /* the list the trip closed, for the notifier */
	uint32_t linked;             /* nodes pushed since the last sweep (heuristic) */
	uint32_t sweep_at;
	sx__link qlink;              /* in the notifier queue; free_breaker's list once unreachable */
	/* timer */
	sx_timer timer;
	uint32_t timer_armed;        /* 1 until the trip or the timer callback claims it (CAS) */
	/* inputs */
	size_t ninputs;
	sx_breaker_cb **inputs;      /* handles, exchanged out by detach */
	/* signals */
	uint64_t sigs;               /* bit s-1: registered for signal s (under signal.c's lock) */
};

static inline sx_breaker *sx__breaker_of_qlink(sx__link *l)
{
	return SX_CONTAINER_OF(l, sx_breaker, qlink);
}

/* The tripped word for code err (a negative errno) and signal signo (0: none). */
static inline uint32_t sx__breaker_code_word(int err, int signo)
{
	return W_DONE | ((uint32_t)signo << W_SIGSHIFT) | ((uint32_t)-err & W_CODE);
}

/* ---- breaker.c ------------------------------------------------------------------------------ */

/*
 * The one trip path: set b's word to done_word unless b, or an ancestor, has tripped (then b
 * takes that ancestor's word: no new trip). True if this call tripped b with done_word.
 * Async-signal-safe and lock-free. The caller guarantees b's memory for the call only.
 */
bool sx__breaker_trip_word(sx_breaker *b, uint32_t done_word);
/* Detach a tripped breaker from its sources (inputs, signals). Called by sx_breaker_release, by
 * the notifier and by sx_breaker_multiplex; the first call detaches each source, a later one
 * finds it gone. */
void sx__breaker_detach(sx_breaker *b);
/* Run the callbacks of a chain the caller owns (after the trip), dropping the list's reference
 * on each node. */
void sx__breaker_run_chain(sx_breaker *b, sx__link *l);

/* ---- notifier.c ----------------------------------------------------------------------------- */

/*
 * What the trip path and the signal handler hand the notifier, and whether its thread runs.
 * Changed by atomics only (async-signal-safe). Hidden, so the other files reach it by a
 * pc-relative address, as they would a static, and not through the GOT.
 */
struct sx__notifier {
	struct ck_ec32 ec;           /* bumped by every push and by the signal handler */
	sx__link *queue;             /* stack of tripped breakers with work for it (never closed) */
	uint64_t sigpending;         /* bit s-1: signal s arrived */
	int started;                 /* its thread runs: set once, never cleared */
};

extern struct sx__notifier sx__notifier __attribute__((visibility("hidden")));

/* Hand b, with a reference the caller gives up, to the notifier, and wake it. Async-signal-safe. */
void sx__notifier_push(sx_breaker *b);
/* Start the notifier thread if no one has: 0, or -EAGAIN. Cold (a lock). */
int sx__notifier_launch(void);

/* Start the notifier if it has not started: 0, or -EAGAIN. Every breaker that a CAS can trip
 * calls this when it is created, so that a trip always finds the thread running. */
static inline int sx__notifier_start(void)
{
	if (SX__LIKELY(ck_pr_load_int(&sx__notifier.started)))
		return 0;
	return sx__notifier_launch();
}

/* Drop a reference from code that may run in a signal handler: the last one is handed to the
 * notifier, which frees b (its run_tripped finds nothing left to do). Every breaker that can be
 * tripped by a CAS started the notifier when it was created. On the trip path: inline. */
static inline void sx__notifier_unref_async(sx_breaker *b)
{
	uint32_t r = ck_pr_load_32(&b->refs);

	do {
		if (r == 1) {
			sx__notifier_push(b);
			return;
		}
	} while (!ck_pr_cas_32_value(&b->refs, r, r - 1, &r));
}

/* From the signal handler: signal signo (1..64) arrived; the notifier takes it next round. */
static inline void sx__notifier_post_signal(int signo)
{
	ck_pr_or_64(&sx__notifier.sigpending, UINT64_C(1) << (signo - 1));
	ck_ec32_inc(&sx__notifier.ec, &sx__ec_mode);
}

/* ---- signal.c ------------------------------------------------------------------------------- */

/*
 * Register b, a new K_SIGNAL breaker nobody else has seen, for the signals in sigs (bit s-1,
 * each catchable): 0, with b holding the registry's reference as well as the caller's (refs 2),
 * and tripped already if a signal held for the next breaker was waiting; or -ENOMEM, -EINVAL
 * (the kernel refused a disposition), with nothing left registered: the caller frees b.
 * Cold (the registry lock).
 */
int sx__signal_attach(sx_breaker *b, uint64_t sigs);
/* Unregister b from every signal it waits for, restoring a disposition after its last breaker
 * and hold, and drop the registry's reference if it held one. Cold (the registry lock). */
void sx__signal_detach(sx_breaker *b);
/* On the notifier: the signals in bits (bit s-1) arrived; trip every breaker waiting for one. */
void sx__signal_take(uint64_t bits);

#endif /* STRIX_SRC_CANCEL_BREAKER_IMPL_H */
