/*
 * The notifier thread: one per process, started by the first breaker (or signal hold) that
 * needs it, which does for tripped breakers what a trip may not do itself. A trip must be
 * async-signal-safe and lock-free (it runs in signal handlers and on the timer thread), so it
 * only changes the word, wakes sleepers and closes the callback list; running the callbacks,
 * detaching the breaker from its sources (withdrawing from its inputs, unregistering its
 * signals) and freeing it are left to this thread.
 *
 * Its state (struct sx__notifier, breaker_impl.h) is written with atomics only:
 *   queue       a stack of tripped breakers with work for it, never closed: a push is one CAS
 *               loop (sx__notifier_push). Each breaker comes with a reference its pusher gave up:
 *               the trip's own reference when the breaker has callbacks or sources to detach,
 *               or the last one, handed over by sx__notifier_unref_async because freeing is not
 *               async-signal-safe. The thread takes the whole stack with one exchange and owns
 *               what it took, so no node is read by one thread while another frees it.
 *   sigpending  a bit per signal that arrived, set by the signal registry's handler (signal.c);
 *               taken with one exchange and handed to sx__signal_take, whose trips push onto
 *               the queue for the next round.
 *   ec          an event count every push and every signal bumps. The thread reads it before it
 *               looks at the queue and the signals, and sleeps on that value only if both were
 *               empty, so nothing that arrives after its look is missed.
 *   started     set once by sx__notifier_launch (under start_lock, which only orders the start)
 *               and read without a lock by sx__notifier_start, inline on every creation path.
 *
 * For each breaker it takes, oldest first (so callbacks run in trip order), the thread detaches
 * its sources, then runs the callbacks the trip closed, then drops the queue's reference.
 * It blocks every signal: they belong to the application's threads.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>

#include "cancel/breaker_impl.h"

struct sx__notifier sx__notifier;

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER; /* cold: orders the start only */

/* For each tripped breaker it was handed. */
static void run_tripped(sx_breaker *b)
{
	sx__breaker_detach(b);
	sx__breaker_run_chain(b, ck_pr_fas_ptr(&b->fired, NULL));
}

static void *notifier_main(void *arg)
{
	(void)arg;
	for (;;) {
		uint32_t seq = ck_ec32_value(&sx__notifier.ec);
		uint64_t sigs = ck_pr_fas_64(&sx__notifier.sigpending, 0);
		/* Oldest first: callbacks run in trip order. */
		sx__link *fifo = sx__list_reverse(sx__stack_take(&sx__notifier.queue));

		if (sigs != 0)
			sx__signal_take(sigs); /* trips push onto the queue: taken next round */
		while (fifo != NULL) {
			sx_breaker *b = sx__breaker_of_qlink(fifo);

			fifo = fifo->next;
			run_tripped(b);
			sx__breaker_unref(b); /* the queue's reference */
		}
		if (sigs == 0 && ck_pr_load_ptr(&sx__notifier.queue) == NULL)
			ck_ec32_wait(&sx__notifier.ec, &sx__ec_mode, seq, NULL);
	}
	return NULL;
}

int sx__notifier_launch(void)
{
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;
	int rc = 0;

	pthread_mutex_lock(&start_lock);
	if (!sx__notifier.started) {
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
			ck_pr_store_int(&sx__notifier.started, 1);
	}
	pthread_mutex_unlock(&start_lock);
	return rc;
}

void sx__notifier_push(sx_breaker *b)
{
	(void)sx__stack_push(&sx__notifier.queue, &b->qlink, &b->qlink); /* never closed */
	ck_ec32_inc(&sx__notifier.ec, &sx__ec_mode);
}
