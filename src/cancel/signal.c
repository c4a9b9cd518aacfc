/*
 * The signal registry: one per process, which makes OS signals trip signal breakers.
 *
 * A slot per signal (1..64) lists the breakers waiting for it, counts the holds on it and keeps
 * the disposition strix replaced. strix's handler is the signal's disposition while its slot has
 * a breaker or a hold; after the last of both goes, the old disposition is restored. Every
 * change is made under sig_lock, a cold-path lock: registering (sx__signal_attach, from
 * sx_breaker_signal), detaching (sx__signal_detach, by the first of sx_breaker_release and the
 * notifier), holding, and taking the signals that arrived.
 *
 * The handler only sets the signal's bit in the notifier's inbox and bumps its event count
 * (sx__notifier_post_signal: atomics, async-signal-safe, errno kept); the notifier thread then
 * calls sx__signal_take, which trips every breaker in the slot. So no breaker is tripped, and no
 * lock taken, in the handler.
 *
 * A registered breaker holds a reference (the registry's), dropped when it is detached.
 * A hold (sx__signal_hold, for run groups' signal actors) keeps the handler installed with no
 * breaker registered; a signal that arrives then is kept for the next breaker registered for it,
 * which trips at once, so an actor that re-arms loses no signal.
 *
 * Catchable: not SIGKILL or SIGSTOP (the kernel refuses), not the synchronous SIGSEGV, SIGBUS,
 * SIGFPE, SIGILL, SIGTRAP and SIGSYS (raised by a thread's own instruction, for that thread to
 * handle at once, not for a breaker to report later), and not 32 .. SIGRTMIN-1, which the C
 * library keeps for itself.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "cancel/breaker_impl.h"

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

	if (signo > 0 && signo <= MAXSIG)
		sx__notifier_post_signal(signo);
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

void sx__signal_detach(sx_breaker *b)
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
		sx__breaker_unref(b); /* the registry's reference */
}

/* On the notifier: trip every breaker waiting for one of these signals. */
void sx__signal_take(uint64_t bits)
{
	pthread_mutex_lock(&sig_lock);
	for (int s = 1; s <= MAXSIG; s++) {
		if (!(bits & (UINT64_C(1) << (s - 1))))
			continue;
		if (sigslots[s].n == 0 && sigslots[s].holds > 0)
			sigslots[s].queued = true;
		for (unsigned i = 0; i < sigslots[s].n; i++)
			sx__breaker_trip_word(sigslots[s].list[i], sx__breaker_code_word(SX_ESIGNAL, s));
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

/* Under sig_lock: room in sl's list for one more breaker. Returns 0, or -ENOMEM. */
static int sig_reserve(struct sigslot *sl)
{
	unsigned cap;
	sx_breaker **l;

	if (sl->n != sl->cap)
		return 0;
	cap = sl->cap ? sl->cap * 2 : 4;
	l = sx__zalloc(cap * sizeof(*l), SX__SMALL_ALIGN);
	if (l == NULL)
		return -ENOMEM;
	if (sl->n)
		memcpy(l, sl->list, sl->n * sizeof(*l));
	if (sl->list)
		sx__dfree(sl->list, sl->cap * sizeof(*l), SX__SMALL_ALIGN);
	sl->list = l;
	sl->cap = cap;
	return 0;
}

int sx__signal_attach(sx_breaker *b, uint64_t sigs)
{
	int rc = 0;

	pthread_mutex_lock(&sig_lock);
	for (int s = 1; s <= MAXSIG && rc == 0; s++) {
		struct sigslot *sl = &sigslots[s];

		if (!(sigs & (UINT64_C(1) << (s - 1))))
			continue;
		if ((rc = sig_reserve(sl)) != 0)
			break;
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
		return rc;
	}
	b->refs = 2; /* the caller's and the registry's */
	/* A signal that arrived while it was only held waited for the next breaker: this one. */
	for (int s = 1; s <= MAXSIG; s++) {
		if ((b->sigs & (UINT64_C(1) << (s - 1))) && sigslots[s].queued) {
			sigslots[s].queued = false;
			sx__breaker_trip_word(b, sx__breaker_code_word(SX_ESIGNAL, s));
			break;
		}
	}
	pthread_mutex_unlock(&sig_lock);
	return 0;
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
	if ((rc = sx__notifier_start()) != 0)
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
