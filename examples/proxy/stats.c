/*
 * The counters, the --stats JSON written at exit and the /metrics text (the Prometheus text
 * exposition format: # HELP and # TYPE lines, then one sample per line).
 *
 * Counters are striped: a stripe per worker (and one shared by threads outside the pool), each
 * on its own cache lines, so counting is a relaxed atomic add on a line only its worker writes.
 * Readers sum the stripes; a sum read while requests run is a snapshot, not an instant. At exit
 * the pool has stopped first, so the file's counts are final and add up.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy.h"

static _Atomic uint64_t *stripes;  /* (workers + 1) stripes of `stride` words */
static size_t stride;              /* words per stripe: counters, then attempts and failures */
static unsigned n_stripes, n_ups;

int px_stats_init(unsigned workers, unsigned n_up)
{
	size_t words = PX_NCOUNTERS + 2 * (size_t)n_up;

	stride = (words + 7) / 8 * 8; /* whole cache lines */
	n_stripes = workers + 1;
	n_ups = n_up;
	stripes = aligned_alloc(64, n_stripes * stride * sizeof(*stripes));
	if (stripes == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n_stripes * stride; i++)
		atomic_init(&stripes[i], 0);
	return 0;
}

void px_stats_fini(void)
{
	free(stripes);
	stripes = NULL;
}

static _Atomic uint64_t *stripe(void)
{
	int w = px_slot();

	return &stripes[(w >= 0 ? (size_t)w : (size_t)n_stripes - 1) * stride];
}

void px_count(enum px_counter k, uint64_t n)
{
	atomic_fetch_add_explicit(&stripe()[k], n, memory_order_relaxed);
}

void px_count_up(unsigned up, bool failure)
{
	atomic_fetch_add_explicit(&stripe()[PX_NCOUNTERS + 2 * up + (failure ? 1 : 0)], 1,
	    memory_order_relaxed);
}

static uint64_t sum(size_t word)
{
	uint64_t s = 0;

	for (unsigned i = 0; i < n_stripes; i++)
		s += atomic_load_explicit(&stripes[i * stride + word], memory_order_relaxed);
	return s;
}

uint64_t px_counter_sum(enum px_counter k)
{
	return sum(k);
}

static uint64_t up_attempts(unsigned i)
{
	return sum(PX_NCOUNTERS + 2 * i);
}

static uint64_t up_failures(unsigned i)
{
	return sum(PX_NCOUNTERS + 2 * i + 1);
}

/* ---- --stats --------------------------------------------------------------------------------- */

int px_stats_write(const char *path)
{
	char tmp[4096];
	FILE *f;
	int rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	if ((f = fopen(tmp, "w")) == NULL)
		return -errno;
	fprintf(f, "{\"requests\": %llu, \"responses\": {\"2xx\": %llu, \"3xx\": %llu, "
	    "\"4xx\": %llu, \"5xx\": %llu}, \"unanswered\": %llu,\n",
	    (unsigned long long)sum(PX_REQUESTS), (unsigned long long)sum(PX_2XX),
	    (unsigned long long)sum(PX_3XX), (unsigned long long)sum(PX_4XX),
	    (unsigned long long)sum(PX_5XX), (unsigned long long)sum(PX_UNANSWERED));
	fprintf(f, " \"attempts\": %llu, \"retries\": %llu, \"retries_refused\": %llu, "
	    "\"circuit_rejects\": %llu, \"bulkhead_rejects\": %llu,\n",
	    (unsigned long long)sum(PX_ATTEMPTS), (unsigned long long)sum(PX_RETRIES),
	    (unsigned long long)sum(PX_RETRIES_REFUSED), (unsigned long long)sum(PX_CIRCUIT_REJECTS),
	    (unsigned long long)sum(PX_BULKHEAD_REJECTS));
	fprintf(f, " \"rate_limited\": %llu, \"client_limited\": %llu, \"overloaded\": %llu, "
	    "\"timeouts\": %llu,\n",
	    (unsigned long long)sum(PX_RATE_LIMITED), (unsigned long long)sum(PX_CLIENT_LIMITED),
	    (unsigned long long)sum(PX_OVERLOADED),
	    (unsigned long long)sum(PX_TIMEOUTS));
	fprintf(f, " \"upstream_errors\": {\"connect\": %llu, \"reset\": %llu, \"timeout\": %llu, "
	    "\"status\": %llu, \"bad_response\": %llu},\n",
	    (unsigned long long)sum(PX_ERR_CONNECT), (unsigned long long)sum(PX_ERR_RESET),
	    (unsigned long long)sum(PX_ERR_TIMEOUT), (unsigned long long)sum(PX_ERR_STATUS),
	    (unsigned long long)sum(PX_ERR_BAD_RESPONSE));
	fprintf(f, " \"connections\": %llu, \"stale_reuses\": %llu, \"retry_budget_tokens\": %llu,\n",
	    (unsigned long long)sum(PX_CONNECTIONS), (unsigned long long)sum(PX_STALE),
	    (unsigned long long)sx_retry_budget_tokens(&px.budget));
	fprintf(f, " \"upstreams\": [");
	for (unsigned i = 0; i < n_ups; i++)
		fprintf(f, "%s\n  {\"address\": \"%s\", \"attempts\": %llu, \"failures\": %llu, "
		    "\"circuit_opens\": %llu, \"circuit\": \"%s\"}", i > 0 ? "," : "",
		    px.cfg.up_name[i], (unsigned long long)up_attempts(i),
		    (unsigned long long)up_failures(i),
		    (unsigned long long)px_upstream_opens(px_upstream_at(i)),
		    sx_circuit_state_name(px_upstream_state(px_upstream_at(i))));
	fprintf(f, "]}\n");
	if (ferror(f))
		rc = -EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

/* ---- /metrics ------------------------------------------------------------------------------- */

struct out {
	char *p;
	size_t cap, n;
	bool full;
};

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (o->full)
		return;
	va_start(ap, fmt);
	k = vsnprintf(o->p + o->n, o->cap - o->n, fmt, ap);
	va_end(ap);
	if (k < 0 || (size_t)k >= o->cap - o->n)
		o->full = true;
	else
		o->n += (size_t)k;
}

static void counter(struct out *o, const char *name, const char *help, enum px_counter k)
{
	put(o, "# HELP strix_proxy_%s %s\n# TYPE strix_proxy_%s counter\nstrix_proxy_%s %llu\n",
	    name, help, name, name, (unsigned long long)sum(k));
}

static const char *const classes[] = { "2xx", "3xx", "4xx", "5xx" };
static const char *const kinds[] = { "connect", "reset", "timeout", "status", "bad_response" };

size_t px_metrics_size(void)
{
	/* the proxy's own figures, then strix's (sx_metrics_render): per upstream a circuit and a
	 * bulkhead, per shard a pool */
	return 8192 + 1536 * (size_t)n_ups + 4096 + 2560 * (size_t)n_ups + 1536 * px.n_shards;
}

size_t px_metrics(char *buf, size_t cap)
{
	struct out o = { buf, cap, 0, false };
	uint64_t ended, inflight;

	counter(&o, "requests_total", "Request heads received.", PX_REQUESTS);
	put(&o, "# HELP strix_proxy_responses_total Final responses sent, by status class.\n"
	    "# TYPE strix_proxy_responses_total counter\n");
	for (unsigned i = 0; i < 4; i++)
		put(&o, "strix_proxy_responses_total{class=\"%s\"} %llu\n", classes[i],
		    (unsigned long long)sum(PX_2XX + i));
	counter(&o, "unanswered_total", "Requests that ended without a response.", PX_UNANSWERED);
	counter(&o, "attempts_total", "Attempts made on upstreams.", PX_ATTEMPTS);
	counter(&o, "retries_total", "Attempts that were retries.", PX_RETRIES);
	counter(&o, "retries_refused_total", "Retries the retry budget refused.",
	    PX_RETRIES_REFUSED);
	counter(&o, "circuit_rejects_total", "Upstreams skipped: circuit open.", PX_CIRCUIT_REJECTS);
	counter(&o, "bulkhead_rejects_total", "Upstreams skipped: bulkhead full.",
	    PX_BULKHEAD_REJECTS);
	counter(&o, "rate_limited_total", "Requests refused by the rate limit (429).",
	    PX_RATE_LIMITED);
	counter(&o, "client_limited_total", "Requests refused by the per-client rate limit (429).",
	    PX_CLIENT_LIMITED);
	counter(&o, "overloaded_total", "Requests refused by --max-inflight (503).", PX_OVERLOADED);
	counter(&o, "timeouts_total", "Attempts and requests ended by a time limit.", PX_TIMEOUTS);
	put(&o, "# HELP strix_proxy_upstream_errors_total Failed attempts, by kind.\n"
	    "# TYPE strix_proxy_upstream_errors_total counter\n");
	for (unsigned i = 0; i < 5; i++)
		put(&o, "strix_proxy_upstream_errors_total{kind=\"%s\"} %llu\n", kinds[i],
		    (unsigned long long)sum(PX_ERR_CONNECT + i));
	counter(&o, "connections_total", "Client connections accepted.", PX_CONNECTIONS);
	/* Ended before begun: a request ends after it began, so the later sum is never the smaller. */
	ended = sum(PX_ENDED);
	inflight = px.cfg.max_inflight > 0 ?
	    atomic_load_explicit(&px.inflight, memory_order_relaxed) : sum(PX_BEGUN) - ended;
	put(&o, "# HELP strix_proxy_inflight Requests in flight.\n# TYPE strix_proxy_inflight gauge\n"
	    "strix_proxy_inflight %llu\n", (unsigned long long)inflight);
	put(&o, "# HELP strix_proxy_client_connections Client connections open.\n"
	    "# TYPE strix_proxy_client_connections gauge\nstrix_proxy_client_connections %u\n",
	    atomic_load_explicit(&px.clients, memory_order_relaxed));
	put(&o, "# HELP strix_proxy_retry_budget_tokens Retry budget tokens left.\n"
	    "# TYPE strix_proxy_retry_budget_tokens gauge\nstrix_proxy_retry_budget_tokens %llu\n",
	    (unsigned long long)sx_retry_budget_tokens(&px.budget));
	put(&o, "# HELP strix_proxy_upstream_attempts_total Attempts per upstream.\n"
	    "# TYPE strix_proxy_upstream_attempts_total counter\n");
	for (unsigned i = 0; i < n_ups; i++)
		put(&o, "strix_proxy_upstream_attempts_total{upstream=\"%s\"} %llu\n",
		    px.cfg.up_name[i], (unsigned long long)up_attempts(i));
	put(&o, "# HELP strix_proxy_upstream_failures_total Failed attempts per upstream.\n"
	    "# TYPE strix_proxy_upstream_failures_total counter\n");
	for (unsigned i = 0; i < n_ups; i++)
		put(&o, "strix_proxy_upstream_failures_total{upstream=\"%s\"} %llu\n",
		    px.cfg.up_name[i], (unsigned long long)up_failures(i));
	put(&o, "# HELP strix_proxy_circuit_opens_total Times an upstream's circuit opened.\n"
	    "# TYPE strix_proxy_circuit_opens_total counter\n");
	for (unsigned i = 0; i < n_ups; i++)
		put(&o, "strix_proxy_circuit_opens_total{upstream=\"%s\"} %llu\n", px.cfg.up_name[i],
		    (unsigned long long)px_upstream_opens(px_upstream_at(i)));
	put(&o, "# HELP strix_proxy_circuit_state An upstream's circuit state (1: the current one).\n"
	    "# TYPE strix_proxy_circuit_state gauge\n");
	for (unsigned i = 0; i < n_ups; i++) {
		int st = px_upstream_state(px_upstream_at(i));

		for (int s = SX_CIRCUIT_CLOSED; s <= SX_CIRCUIT_METRICS_ONLY; s++)
			put(&o, "strix_proxy_circuit_state{upstream=\"%s\",state=\"%s\"} %d\n",
			    px.cfg.up_name[i], sx_circuit_state_name(s), s == st);
	}
	/* strix's own figures of the shards' pools, the circuits, bulkheads and the budget */
	if (!o.full && px.metrics != NULL) {
		size_t len;

		if (sx_metrics_render(px.metrics, SX_METRICS_PROMETHEUS, o.p + o.n, o.cap - o.n,
		    &len) != 0)
			o.full = true;
		else
			o.n += len;
	}
	return o.full ? 0 : o.n;
}
