/*
 * B9 circuit / pipeline, and ratelimit.
 *
 * circuit: every thread makes n calls through one shared circuit (acquire, an empty call, release
 * with success), closed all along. strix's sx_circuit against the way a C service usually does
 * it: a mutex around the state and a ring of the last results (the peer here is that, written
 * plainly, since Debian ships no circuit breaker library for C). ns_per_task is the wall time of
 * the run divided by the calls of one thread (so with 2 threads it shows what contention adds).
 *
 * pipeline: n calls of an empty action through rate limit, timeout, retry, circuit and bulkhead
 * (outermost first), from one thread; pipeline6 and policy/<layer>: other lists of layers
 * (strix_pipeline_of), hedging among them (a fixed delay no call reaches: its idle cost). allocs_per_call: allocations strix's default
 * allocator made on the calling threads during the timed calls, per call.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <strix.h>

#include "workloads.h"

static uint64_t now_ns(void)
{
	return sx_clock_monotonic.now_ns(NULL);
}

/* ---- the mutex peer ------------------------------------------------------------------------- */

typedef struct mutex_circuit {
	pthread_mutex_t lock;
	int open;
	unsigned pos, count, failures;
	unsigned char ring[100];
} mutex_circuit;

static int mc_acquire(mutex_circuit *c)
{
	int open;

	pthread_mutex_lock(&c->lock);
	open = c->open;
	pthread_mutex_unlock(&c->lock);
	return open ? SX_ECIRCUIT_OPEN : 0;
}

static void mc_release(mutex_circuit *c, int result)
{
	unsigned char failed = result != 0;

	pthread_mutex_lock(&c->lock);
	if (c->count == 100)
		c->failures -= c->ring[c->pos];
	else
		c->count++;
	c->ring[c->pos] = failed;
	c->failures += failed;
	c->pos = (c->pos + 1) % 100;
	if (c->count == 100 && c->failures * 2 >= c->count)
		c->open = 1;
	pthread_mutex_unlock(&c->lock);
}

/* ---- the runs ------------------------------------------------------------------------------- */

struct circ_run {
	sx_circuit *strix;
	mutex_circuit *mutex;
	sx_ratelimit *rl;   /* ratelimit/<threads>: this instead of a circuit */
	uint64_t n;
	unsigned go, ready;
	uint64_t allocs, failed;
};

static void *circ_thread(void *arg)
{
	struct circ_run *r = arg;
	uint64_t a0, failed = 0;

	__atomic_add_fetch(&r->ready, 1, __ATOMIC_ACQ_REL);
	while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE))
		;
	a0 = sx_allocations();
	if (r->rl != NULL) {
		for (uint64_t i = 0; i < r->n; i++)
			failed += sx_ratelimit_try(r->rl, 1) != 0;
	} else if (r->strix != NULL) {
		for (uint64_t i = 0; i < r->n; i++) {
			sx_circuit_permit p;

			if (sx_circuit_acquire(r->strix, &p) != 0 ||
			    sx_circuit_release(r->strix, p, 0, 0) != 0)
				failed++;
		}
	} else {
		for (uint64_t i = 0; i < r->n; i++) {
			if (mc_acquire(r->mutex) != 0)
				failed++;
			else
				mc_release(r->mutex, 0);
		}
	}
	__atomic_add_fetch(&r->allocs, sx_allocations() - a0, __ATOMIC_ACQ_REL);
	__atomic_add_fetch(&r->failed, failed, __ATOMIC_ACQ_REL);
	return NULL;
}

/* Start `threads` threads on r, time them from a common start to the last one's end. */
static void run_threads(struct circ_run *r, unsigned threads, bench_out *o)
{
	pthread_t t[8];
	uint64_t t0;

	for (unsigned i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, circ_thread, r);
	while (__atomic_load_n(&r->ready, __ATOMIC_ACQUIRE) != threads)
		;
	t0 = now_ns();
	__atomic_store_n(&r->go, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	o->seconds = (double)(now_ns() - t0) / 1e9;
	o->tasks = r->n;
}

static int circuit_run(bool strix, unsigned threads, uint64_t n, double *allocs, bench_out *o)
{
	sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT;
	mutex_circuit mc;
	struct circ_run r;

	memset(&r, 0, sizeof(r));
	memset(&mc, 0, sizeof(mc));
	pthread_mutex_init(&mc.lock, NULL);
	r.n = n;
	if (strix && sx_circuit_create(&co, &r.strix) != 0) {
		snprintf(o->err, sizeof(o->err), "sx_circuit_create failed");
		return -1;
	}
	r.mutex = &mc;
	run_threads(&r, threads, o);
	*allocs = (double)r.allocs / (double)(n * threads);
	sx_circuit_destroy(r.strix);
	pthread_mutex_destroy(&mc.lock);
	if (r.failed != 0) {
		snprintf(o->err, sizeof(o->err), "%llu calls refused by a closed circuit",
		    (unsigned long long)r.failed);
		return -1;
	}
	return 0;
}

int strix_ratelimit(unsigned threads, uint64_t n, double *false_refusals, bench_out *o)
{
	sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;
	struct circ_run r;

	memset(&r, 0, sizeof(r));
	r.n = n;
	/* One event per ns, the most a limiter takes, and the largest burst: the threads cannot
	 * outrun it, so every refusal would be false; the cost of the check is what is measured. */
	ro.rate = 1000000000;
	ro.burst = SX_RATELIMIT_MAX_BURST;
	if (sx_ratelimit_create(&ro, &r.rl) != 0) {
		snprintf(o->err, sizeof(o->err), "sx_ratelimit_create failed");
		return -1;
	}
	run_threads(&r, threads, o);
	sx_ratelimit_destroy(r.rl);
	*false_refusals = (double)r.failed;
	if (r.failed != 0) {
		snprintf(o->err, sizeof(o->err), "%llu calls refused by a limiter that cannot be "
		    "outrun", (unsigned long long)r.failed);
		return -1;
	}
	return 0;
}

int strix_circuit(unsigned threads, uint64_t n, double *allocs, bench_out *o)
{
	return circuit_run(true, threads, n, allocs, o);
}

int mutex_circuit_bench(unsigned threads, uint64_t n, double *allocs, bench_out *o)
{
	return circuit_run(false, threads, n, allocs, o);
}

static int empty_action(sx_call *call)
{
	(void)call;
	return 0;
}

/* A pipeline of the layers `layers` names, outermost first: r rate limit, t total timeout, h
 * hedge (after 1 s: never reached, even by a preempted call), y retry, c circuit, b bulkhead, a adaptive limit, x fault
 * injection switched off. None of them refuses or fails (the cost of the checks is what is
 * measured). */
int strix_pipeline_of(const char *layers, uint64_t n, double *allocs, bench_out *o)
{
	sx_pool_opts po = SX_POOL_OPTS_INIT;
	sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;
	sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT;
	sx_retry_policy rp = SX_RETRY_POLICY_INIT;
	sx_pipeline_opts plo = SX_PIPELINE_OPTS_INIT;
	sx_adaptive_opts ao = SX_ADAPTIVE_OPTS_INIT;
	sx_chaos_opts xo = SX_CHAOS_OPTS_INIT;
	sx_hedge_opts ho = SX_HEDGE_OPTS_INIT;
	sx_hedge *h = NULL;
	sx_pool *pool = NULL;
	sx_ratelimit *rl = NULL;
	sx_circuit *c = NULL;
	sx_sem *sem = NULL;
	sx_adaptive *al = NULL;
	sx_chaos *ch = NULL;
	sx_pipeline *pl = NULL;
	uint64_t t0, a0, failed = 0;
	int rc = -1;

	po.workers = 1;
	ro.rate = 1000000000; /* never limits */
	ro.burst = SX_RATELIMIT_MAX_BURST;
	rp.max_attempts = 3;
	rp.backoff = SX_BACKOFF_EXPONENTIAL;
	rp.base_ns = 1000000;
	ao.initial_limit = 64;
	xo.error_rate = 0.5;
	xo.disabled = true;
	ho.delay_ns = 1000000000;
	if (sx_pool_create(&po, &pool) != 0 || sx_hedge_create(pool, &ho, &h) != 0 ||
	    sx_ratelimit_create(&ro, &rl) != 0 ||
	    sx_circuit_create(&co, &c) != 0 || sx_sem_create(NULL, 64, &sem) != 0 ||
	    sx_adaptive_create(&ao, &al) != 0 || sx_chaos_create(&xo, &ch) != 0)
		goto out;
	plo.pool = pool;
	if (sx_pipeline_create(&plo, &pl) != 0)
		goto out;
	for (const char *k = layers; *k != '\0'; k++) {
		int e = *k == 'r' ? sx_pipeline_add_ratelimit(pl, rl, 0) :
		    *k == 't' ? sx_pipeline_add_timeout(pl, 1000000000) :
		    *k == 'h' ? sx_pipeline_add_hedge(pl, h) :
		    *k == 'y' ? sx_pipeline_add_retry(pl, &rp, 0) :
		    *k == 'c' ? sx_pipeline_add_circuit(pl, c) :
		    *k == 'b' ? sx_pipeline_add_bulkhead(pl, sem, 0) :
		    *k == 'a' ? sx_pipeline_add_adaptive(pl, al) :
		    *k == 'x' ? sx_pipeline_add_chaos(pl, ch) : -1;

		if (e != 0)
			goto out;
	}
	for (int i = 0; i < 10000; i++) /* warm: the thread's timeout record and breakers */
		failed += sx_pipeline_call(pl, empty_action, NULL, NULL, NULL) != 0;
	a0 = sx_allocations();
	t0 = now_ns();
	for (uint64_t i = 0; i < n; i++)
		failed += sx_pipeline_call(pl, empty_action, NULL, NULL, NULL) != 0;
	o->seconds = (double)(now_ns() - t0) / 1e9;
	*allocs = (double)(sx_allocations() - a0) / (double)n;
	o->tasks = n;
	rc = failed == 0 ? 0 : -1;
out:
	if (rc != 0)
		snprintf(o->err, sizeof(o->err), "pipeline set-up failed or %llu calls failed",
		    (unsigned long long)failed);
	sx_pipeline_destroy(pl);
	if (sem != NULL)
		sx_sem_destroy(sem);
	sx_chaos_destroy(ch);
	sx_adaptive_destroy(al);
	sx_circuit_destroy(c);
	sx_ratelimit_destroy(rl);
	sx_hedge_destroy(h);
	sx_pool_destroy(pool);
	return rc;
}

/* B9's five policies: rate limit, timeout, retry, circuit, bulkhead. */
int strix_pipeline(uint64_t n, double *allocs, bench_out *o)
{
	return strix_pipeline_of("rtycb", n, allocs, o);
}
