/*
 * Metrics exposition (strix/metrics.h). A set is an array of (kind, name, object), changed and
 * read under the set's mutex: adding, removing and rendering are cold paths (a scrape every few
 * seconds), and the lock never touches the objects' own paths, whose figures come from their
 * snapshot calls. A render first takes one snapshot per object, then writes the families from
 * those, so every sample of one object comes from the same snapshot.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <strix/adaptive.h>
#include <strix/chaos.h>
#include <strix/circuit.h>
#include <strix/hedge.h>
#include <strix/metrics.h>
#include <strix/pipeline.h>
#include <strix/pool.h>
#include <strix/ratelimit.h>
#include <strix/registry.h>
#include <strix/retry.h>
#include <strix/sem.h>

#include "guard/guard.h"

union snap {
	sx_pool_counters pool;
	sx_circuit_metrics circuit;
	struct {
		double in_use, capacity, waiting;
	} sem;
	sx_adaptive_metrics adaptive;
	sx_hedge_metrics hedge;
	sx_chaos_metrics chaos;
	double tokens;
	sx_ratelimit_metrics limiter;
	sx_pipeline_metrics pipeline;
	sx_registry_counters registry;
};

struct entry {
	int kind;
	const void *obj;
	char name[SX_METRICS_MAX_NAME + 1];
	union snap s;
};

struct sx_metrics {
	pthread_mutex_t lock;     /* cold: add, remove, render */
	struct entry *e;
	size_t n, cap;
};

int sx_metrics_create(sx_metrics **out)
{
	sx_metrics *m;

	if (out == NULL)
		return -EINVAL;
	m = sx__zalloc(sizeof(*m), SX__SMALL_ALIGN);
	if (m == NULL)
		return -ENOMEM;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		sx__dfree(m, sizeof(*m), SX__SMALL_ALIGN);
		return -ENOMEM;
	}
	*out = m;
	return 0;
}

void sx_metrics_destroy(sx_metrics *m)
{
	if (m == NULL)
		return;
	pthread_mutex_destroy(&m->lock);
	if (m->e != NULL)
		sx__dfree(m->e, m->cap * sizeof(m->e[0]), SX__SMALL_ALIGN);
	sx__dfree(m, sizeof(*m), SX__SMALL_ALIGN);
}

static bool name_ok(const char *name)
{
	size_t n = 0;

	for (; name[n] != '\0'; n++)
		if (n >= SX_METRICS_MAX_NAME || name[n] < 0x20 || name[n] > 0x7e)
			return false;
	return n > 0;
}

int sx_metrics_add(sx_metrics *m, int kind, const char *name, const void *obj)
{
	int rc = 0;

	if (m == NULL || obj == NULL || name == NULL || kind < SX_METRICS_POOL ||
	    kind > SX_METRICS_REGISTRY || !name_ok(name))
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n; i++)
		if (m->e[i].obj == obj)
			rc = -EEXIST;
	if (rc == 0 && m->n == m->cap) {
		size_t cap = m->cap != 0 ? 2 * m->cap : 8;
		struct entry *e = sx__zalloc(cap * sizeof(*e), SX__SMALL_ALIGN);

		if (e == NULL) {
			rc = -ENOMEM;
		} else {
			if (m->e != NULL) {
				memcpy(e, m->e, m->n * sizeof(*e));
				sx__dfree(m->e, m->cap * sizeof(*e), SX__SMALL_ALIGN);
			}
			m->e = e;
			m->cap = cap;
		}
	}
	if (rc == 0) {
		struct entry *e = &m->e[m->n++];

		memset(e, 0, sizeof(*e));
		e->kind = kind;
		e->obj = obj;
		strcpy(e->name, name);
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int sx_metrics_remove(sx_metrics *m, const void *obj)
{
	int rc = -ENOENT;

	if (m == NULL || obj == NULL)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n; i++)
		if (m->e[i].obj == obj) {
			memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof(m->e[0]));
			m->n--;
			rc = 0;
			break;
		}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

/* ---- the text --------------------------------------------------------------------------------- */

struct text {
	char *buf;
	size_t cap, len;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
	char *at = t->len < t->cap ? t->buf + t->len : NULL;
	size_t room = t->len < t->cap ? t->cap - t->len : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(at, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->len += (size_t)n;
}

/* A family: its kind, name, OpenMetrics type, help, the label naming the object, and how to read
 * a value from an object's snapshot. */
enum ftype { GAUGE, COUNTER, STATESET };

struct family {
	int kind;
	const char *name;
	enum ftype type;
	const char *help;
	double (*value)(const union snap *s);
};

static const char *label_of(int kind)
{
	switch (kind) {
	case SX_METRICS_POOL: return "pool";
	case SX_METRICS_CIRCUIT: return "circuit";
	case SX_METRICS_BULKHEAD: return "bulkhead";
	case SX_METRICS_ADAPTIVE: return "limit";
	case SX_METRICS_HEDGE: return "hedge";
	case SX_METRICS_CHAOS: return "chaos";
	case SX_METRICS_RETRY_BUDGET: return "budget";
	case SX_METRICS_RATELIMIT:
	case SX_METRICS_RATELIMIT_KEYED: return "limiter";
	case SX_METRICS_PIPELINE: return "pipeline";
	default: return "registry";
	}
}

#define V(fn, expr) static double fn(const union snap *s) { return (double)(expr); }
V(pool_workers, s->pool.workers)
V(pool_submitted, s->pool.submitted)
V(pool_remote, s->pool.remote)
V(pool_executed, s->pool.executed)
V(pool_stolen, s->pool.total.stolen)
V(pool_parks, s->pool.total.parks)
V(pool_timers, s->pool.timers_pending)
V(circ_calls, s->circuit.calls)
V(circ_frate, s->circuit.failure_rate)
V(circ_srate, s->circuit.slow_rate)
V(circ_rejected, s->circuit.rejected)
V(sem_in_use, s->sem.in_use)
V(sem_capacity, s->sem.capacity)
V(sem_waiting, s->sem.waiting)
V(ad_limit, s->adaptive.limit)
V(ad_inflight, s->adaptive.inflight)
V(ad_rejected, s->adaptive.rejected)
V(ad_drops, s->adaptive.drops)
V(ad_rtt, (double)s->adaptive.rtt_ns / 1e9)
V(ad_min_rtt, (double)s->adaptive.min_rtt_ns / 1e9)
V(hg_calls, s->hedge.calls)
V(hg_hedges, s->hedge.hedges)
V(hg_refused, s->hedge.refused)
V(hg_wins, s->hedge.hedge_wins)
V(hg_delay, (double)s->hedge.delay_ns / 1e9)
V(ch_draws, s->chaos.draws)
V(ch_errors, s->chaos.errors)
V(ch_delays, s->chaos.delays)
V(ch_outcomes, s->chaos.outcomes)
V(budget_tokens, s->tokens)
V(rl_available, s->limiter.available)
V(rl_burst, s->limiter.burst)
V(rl_refused, s->limiter.refused)
V(rl_delayed, s->limiter.delayed)
V(rl_keys, s->limiter.keys)
V(pl_calls, s->pipeline.calls)
V(pl_failed, s->pipeline.failed)
V(pl_rejected, s->pipeline.rejected)
V(pl_retries, s->pipeline.retries)
V(pl_timeouts, s->pipeline.timeouts)
V(pl_hedges, s->pipeline.hedges)
V(pl_fallbacks, s->pipeline.fallbacks)
V(reg_keys, s->registry.keys)
V(reg_bytes, s->registry.bytes)
V(reg_created, s->registry.created)
V(reg_evicted, s->registry.evicted)
V(reg_removed, s->registry.removed)
#undef V

static const struct family families[] = {
	{ SX_METRICS_POOL, "strix_pool_workers", GAUGE, "Workers of the pool.", pool_workers },
	{ SX_METRICS_POOL, "strix_pool_submitted", COUNTER, "Tasks accepted.", pool_submitted },
	{ SX_METRICS_POOL, "strix_pool_remote", COUNTER,
	  "Tasks submitted from outside the pool.", pool_remote },
	{ SX_METRICS_POOL, "strix_pool_executed", COUNTER, "Tasks run.", pool_executed },
	{ SX_METRICS_POOL, "strix_pool_stolen", COUNTER, "Tasks taken by stealing.", pool_stolen },
	{ SX_METRICS_POOL, "strix_pool_parks", COUNTER, "Times a worker went to sleep.", pool_parks },
	{ SX_METRICS_POOL, "strix_pool_timers_pending", GAUGE,
	  "Timers in the timer service's wheel.", pool_timers },
	{ SX_METRICS_CIRCUIT, "strix_circuit_state", STATESET, "The circuit's state.", NULL },
	{ SX_METRICS_CIRCUIT, "strix_circuit_window_calls", GAUGE,
	  "Results in the circuit's window.", circ_calls },
	{ SX_METRICS_CIRCUIT, "strix_circuit_failure_rate", GAUGE,
	  "Failed share of the window.", circ_frate },
	{ SX_METRICS_CIRCUIT, "strix_circuit_slow_rate", GAUGE, "Slow share of the window.",
	  circ_srate },
	{ SX_METRICS_CIRCUIT, "strix_circuit_rejected", COUNTER, "Calls the circuit refused.",
	  circ_rejected },
	{ SX_METRICS_BULKHEAD, "strix_bulkhead_in_use", GAUGE, "Permits in use.", sem_in_use },
	{ SX_METRICS_BULKHEAD, "strix_bulkhead_capacity", GAUGE, "Permits in all.", sem_capacity },
	{ SX_METRICS_BULKHEAD, "strix_bulkhead_waiting", GAUGE, "Waiters queued.", sem_waiting },
	{ SX_METRICS_ADAPTIVE, "strix_adaptive_limit", GAUGE, "The adaptive limit now.", ad_limit },
	{ SX_METRICS_ADAPTIVE, "strix_adaptive_in_flight", GAUGE, "Calls admitted, not ended.",
	  ad_inflight },
	{ SX_METRICS_ADAPTIVE, "strix_adaptive_rejected", COUNTER, "Calls refused at the limit.",
	  ad_rejected },
	{ SX_METRICS_ADAPTIVE, "strix_adaptive_drops", COUNTER, "Calls ended by overload.",
	  ad_drops },
	{ SX_METRICS_ADAPTIVE, "strix_adaptive_rtt_seconds", GAUGE,
	  "Average latency of the last window.", ad_rtt },
	{ SX_METRICS_ADAPTIVE, "strix_adaptive_min_rtt_seconds", GAUGE,
	  "No-load latency estimate.", ad_min_rtt },
	{ SX_METRICS_HEDGE, "strix_hedge_calls", COUNTER, "Hedged calls started.", hg_calls },
	{ SX_METRICS_HEDGE, "strix_hedge_hedges", COUNTER, "Extra attempts started.", hg_hedges },
	{ SX_METRICS_HEDGE, "strix_hedge_refused", COUNTER, "Extra attempts the budget refused.",
	  hg_refused },
	{ SX_METRICS_HEDGE, "strix_hedge_wins", COUNTER, "Calls won by an extra attempt.",
	  hg_wins },
	{ SX_METRICS_HEDGE, "strix_hedge_delay_seconds", GAUGE, "The delay before a hedge.",
	  hg_delay },
	{ SX_METRICS_CHAOS, "strix_chaos_draws", COUNTER, "Calls the injector drew for.",
	  ch_draws },
	{ SX_METRICS_CHAOS, "strix_chaos_errors", COUNTER, "Errors injected.", ch_errors },
	{ SX_METRICS_CHAOS, "strix_chaos_delays", COUNTER, "Delays injected.", ch_delays },
	{ SX_METRICS_CHAOS, "strix_chaos_outcomes", COUNTER, "Results replaced.", ch_outcomes },
	{ SX_METRICS_RETRY_BUDGET, "strix_retry_budget_tokens", GAUGE, "Whole tokens left.",
	  budget_tokens },
	{ SX_METRICS_RATELIMIT, "strix_ratelimit_available", GAUGE,
	  "Events that would pass now.", rl_available },
	{ SX_METRICS_RATELIMIT, "strix_ratelimit_burst", GAUGE, "Events admitted at once.",
	  rl_burst },
	{ SX_METRICS_RATELIMIT, "strix_ratelimit_refused", COUNTER, "Events refused.",
	  rl_refused },
	{ SX_METRICS_RATELIMIT, "strix_ratelimit_delayed", COUNTER, "Waits that had to wait.",
	  rl_delayed },
	{ SX_METRICS_RATELIMIT_KEYED, "strix_ratelimit_keyed_keys", GAUGE, "Keys held.", rl_keys },
	{ SX_METRICS_RATELIMIT_KEYED, "strix_ratelimit_keyed_refused", COUNTER,
	  "Events refused, every key's.", rl_refused },
	{ SX_METRICS_PIPELINE, "strix_pipeline_calls", COUNTER, "Calls run.", pl_calls },
	{ SX_METRICS_PIPELINE, "strix_pipeline_failed", COUNTER, "Calls that failed.", pl_failed },
	{ SX_METRICS_PIPELINE, "strix_pipeline_rejected", COUNTER, "Attempts a policy refused.",
	  pl_rejected },
	{ SX_METRICS_PIPELINE, "strix_pipeline_retries", COUNTER, "Attempts retried.",
	  pl_retries },
	{ SX_METRICS_PIPELINE, "strix_pipeline_timeouts", COUNTER, "Attempts timed out.",
	  pl_timeouts },
	{ SX_METRICS_PIPELINE, "strix_pipeline_hedges", COUNTER, "Hedged attempts started.",
	  pl_hedges },
	{ SX_METRICS_PIPELINE, "strix_pipeline_fallbacks", COUNTER, "Failures replaced.",
	  pl_fallbacks },
	{ SX_METRICS_REGISTRY, "strix_registry_keys", GAUGE, "Keys held.", reg_keys },
	{ SX_METRICS_REGISTRY, "strix_registry_bytes", GAUGE, "Bytes held by keys and table.",
	  reg_bytes },
	{ SX_METRICS_REGISTRY, "strix_registry_created", COUNTER, "Keys made.", reg_created },
	{ SX_METRICS_REGISTRY, "strix_registry_evicted", COUNTER, "Idle keys evicted.",
	  reg_evicted },
	{ SX_METRICS_REGISTRY, "strix_registry_removed", COUNTER, "Keys removed.", reg_removed },
};

static const char *const circuit_states[] = { "closed", "open", "half_open", "forced_open",
	"disabled", "metrics_only" };

static void snapshot(struct entry *e)
{
	switch (e->kind) {
	case SX_METRICS_POOL:
		(void)sx_pool_stats((sx_pool *)e->obj, &e->s.pool, NULL, 0);
		break;
	case SX_METRICS_CIRCUIT:
		(void)sx_circuit_snapshot((sx_circuit *)e->obj, &e->s.circuit);
		break;
	case SX_METRICS_BULKHEAD:
		e->s.sem.in_use = sx_sem_in_use(e->obj);
		e->s.sem.capacity = sx_sem_capacity(e->obj);
		e->s.sem.waiting = sx_sem_waiting(e->obj);
		break;
	case SX_METRICS_ADAPTIVE:
		(void)sx_adaptive_snapshot(e->obj, &e->s.adaptive);
		break;
	case SX_METRICS_HEDGE:
		(void)sx_hedge_snapshot(e->obj, &e->s.hedge);
		break;
	case SX_METRICS_CHAOS:
		(void)sx_chaos_snapshot(e->obj, &e->s.chaos);
		break;
	case SX_METRICS_RETRY_BUDGET:
		e->s.tokens = (double)sx_retry_budget_tokens(e->obj);
		break;
	case SX_METRICS_RATELIMIT:
		(void)sx_ratelimit_snapshot(e->obj, &e->s.limiter);
		break;
	case SX_METRICS_RATELIMIT_KEYED:
		(void)sx_ratelimit_keyed_snapshot(e->obj, &e->s.limiter);
		break;
	case SX_METRICS_PIPELINE:
		(void)sx_pipeline_snapshot(e->obj, &e->s.pipeline);
		break;
	default:
		(void)sx_registry_stats(e->obj, &e->s.registry);
		break;
	}
}

/* The object's label: name="value", value escaped as the formats ask (\\ and \"). */
static void label(struct text *t, const struct entry *e)
{
	put(t, "%s=\"", label_of(e->kind));
	for (const char *c = e->name; *c != '\0'; c++)
		put(t, *c == '\\' || *c == '"' ? "\\%c" : "%c", *c);
	put(t, "\"");
}

static void family(struct text *t, const struct sx_metrics *m, const struct family *f, int fmt)
{
	bool om = fmt == SX_METRICS_OPENMETRICS, any = false;
	const char *suffix = f->type == COUNTER ? "_total" : "";

	for (size_t i = 0; i < m->n && !any; i++)
		any = m->e[i].kind == f->kind;
	if (!any)
		return;
	put(t, "# TYPE %s%s %s\n", f->name, om ? "" : suffix, f->type == COUNTER ? "counter" :
	    f->type == STATESET && om ? "stateset" : "gauge");
	put(t, "# HELP %s%s %s\n", f->name, om ? "" : suffix, f->help);
	for (size_t i = 0; i < m->n; i++) {
		const struct entry *e = &m->e[i];

		if (e->kind != f->kind)
			continue;
		if (f->type == STATESET) {
			for (int s = 0; s < (int)(sizeof(circuit_states) / sizeof(circuit_states[0]));
			    s++) {
				put(t, "%s{", f->name);
				label(t, e);
				put(t, ",%s=\"%s\"} %d\n", f->name, circuit_states[s],
				    e->s.circuit.state == s);
			}
			continue;
		}
		put(t, "%s%s{", f->name, suffix);
		label(t, e);
		put(t, "} %.15g\n", f->value(&e->s));
	}
}

int sx_metrics_render(sx_metrics *m, int format, char *buf, size_t cap, size_t *len)
{
	struct text t = { buf, cap, 0 };

	if (m == NULL || len == NULL || (buf == NULL && cap > 0) ||
	    (format != SX_METRICS_OPENMETRICS && format != SX_METRICS_PROMETHEUS))
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n; i++)
		snapshot(&m->e[i]);
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
		family(&t, m, &families[i], format);
	pthread_mutex_unlock(&m->lock);
	if (format == SX_METRICS_OPENMETRICS)
		put(&t, "# EOF\n");
	*len = t.len;
	if (cap > 0 && t.len >= cap)
		buf[cap - 1] = '\0';
	return t.len < cap ? 0 : -ENOSPC;
}
