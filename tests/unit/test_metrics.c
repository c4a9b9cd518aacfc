/* Metrics exposition: every kind of object rendered with its figures in both formats, the
 * stateset, escaping, the buffer contract (-ENOSPC with the length needed), add/remove rules,
 * bad input. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../testutil.h"

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

#define MS 1000000ull
#define SEC 1000000000ull

static char text[65536];

static const char *render(sx_metrics *m, int fmt)
{
	size_t len = 0;

	assert_int_equal(sx_metrics_render(m, fmt, text, sizeof(text), &len), 0);
	assert_int_equal(len, strlen(text));
	return text;
}

static void has(const char *t, const char *line)
{
	char want[512];

	snprintf(want, sizeof(want), "%s\n", line);
	if (strstr(t, want) == NULL) {
		fprintf(stderr, "missing line: %s\n--- text:\n%s", line, t);
		fail();
	}
}

static void lacks(const char *t, const char *part)
{
	assert_null(strstr(t, part));
}

/* Every line a comment (# TYPE, # HELP, # EOF) or `name{labels} value`, and every sample's
 * family announced by a # TYPE line before it. */
static void well_formed(const char *t)
{
	char fam[128] = "";
	const char *line = t;

	while (*line != '\0') {
		const char *end = strchr(line, '\n');
		char buf[512];

		assert_non_null(end);
		assert_true((size_t)(end - line) < sizeof(buf));
		memcpy(buf, line, (size_t)(end - line));
		buf[end - line] = '\0';
		if (strncmp(buf, "# TYPE ", 7) == 0) {
			assert_int_equal(sscanf(buf + 7, "%127s", fam), 1);
		} else if (strncmp(buf, "# HELP ", 7) == 0) {
			assert_int_equal(strncmp(buf + 7, fam, strlen(fam)), 0);
		} else if (strcmp(buf, "# EOF") == 0) {
			assert_int_equal(end[1], '\0'); /* the last line */
		} else {
			char *brace = strchr(buf, '{'), *close = strrchr(buf, '}');
			double v;

			assert_non_null(brace);
			assert_non_null(close);
			assert_int_equal(strncmp(buf, fam, strlen(fam)), 0);
			assert_int_equal(sscanf(close + 1, " %lf", &v), 1);
		}
		line = end + 1;
	}
}

static void test_every_kind(void **state)
{
	sx_pool *pool = tu_pool(2);
	sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT;
	sx_circuit *c;
	sx_sem *sem;
	sx_adaptive *al;
	sx_hedge *h;
	sx_chaos *ch;
	sx_chaos_opts cho = SX_CHAOS_OPTS_INIT;
	sx_chaos_fault f;
	sx_retry_budget b;
	sx_metrics *m;
	const char *t;

	(void)state;
	assert_int_equal(sx_circuit_create(&co, &c), 0);
	assert_int_equal(sx_circuit_force(c, SX_CIRCUIT_FORCED_OPEN), 0);
	assert_int_equal(sx_sem_create(NULL, 8, &sem), 0);
	assert_int_equal(sx_sem_try_acquire(sem, 3), 0);
	assert_int_equal(sx_adaptive_create(NULL, &al), 0);
	assert_int_equal(sx_adaptive_acquire(al), 0);
	assert_int_equal(sx_hedge_create(pool, NULL, &h), 0);
	cho.error_rate = 1.0;
	assert_int_equal(sx_chaos_create(&cho, &ch), 0);
	assert_int_equal(sx_chaos_draw(ch, &f), 1);
	assert_int_equal(sx_retry_budget_init(&b, 12, 0.5), 0);

	assert_int_equal(sx_metrics_create(&m), 0);
	t = render(m, SX_METRICS_OPENMETRICS);
	assert_string_equal(t, "# EOF\n"); /* nothing listed */
	assert_int_equal(sx_metrics_add(m, SX_METRICS_POOL, "main", pool), 0);
	assert_int_equal(sx_metrics_add(m, SX_METRICS_CIRCUIT, "db \"primary\"", c), 0);
	assert_int_equal(sx_metrics_add(m, SX_METRICS_BULKHEAD, "db", sem), 0);
	assert_int_equal(sx_metrics_add(m, SX_METRICS_ADAPTIVE, "api", al), 0);
	assert_int_equal(sx_metrics_add(m, SX_METRICS_HEDGE, "reads", h), 0);
	assert_int_equal(sx_metrics_add(m, SX_METRICS_CHAOS, "staging", ch), 0);
	assert_int_equal(sx_metrics_add(m, SX_METRICS_RETRY_BUDGET, "retries", &b), 0);

	t = render(m, SX_METRICS_OPENMETRICS);
	well_formed(t);
	has(t, "# TYPE strix_pool_workers gauge");
	has(t, "strix_pool_workers{pool=\"main\"} 2");
	has(t, "# TYPE strix_pool_submitted counter");
	assert_non_null(strstr(t, "strix_pool_submitted_total{pool=\"main\"} "));
	has(t, "# TYPE strix_circuit_state stateset");
	has(t, "strix_circuit_state{circuit=\"db \\\"primary\\\"\",strix_circuit_state=\"closed\"} 0");
	has(t, "strix_circuit_state{circuit=\"db \\\"primary\\\"\",strix_circuit_state=\"forced_open\"} 1");
	has(t, "strix_bulkhead_in_use{bulkhead=\"db\"} 3");
	has(t, "strix_bulkhead_capacity{bulkhead=\"db\"} 8");
	has(t, "strix_adaptive_limit{limit=\"api\"} 20");
	has(t, "strix_adaptive_in_flight{limit=\"api\"} 1");
	has(t, "strix_hedge_calls_total{hedge=\"reads\"} 0");
	has(t, "strix_hedge_delay_seconds{hedge=\"reads\"} 0.001");
	has(t, "strix_chaos_draws_total{chaos=\"staging\"} 1");
	has(t, "strix_chaos_errors_total{chaos=\"staging\"} 1");
	has(t, "strix_retry_budget_tokens{budget=\"retries\"} 12");
	assert_int_equal(strcmp(t + strlen(t) - 6, "# EOF\n"), 0);

	t = render(m, SX_METRICS_PROMETHEUS);
	well_formed(t);
	has(t, "# TYPE strix_pool_submitted_total counter");
	has(t, "# TYPE strix_circuit_state gauge");
	lacks(t, "stateset");
	lacks(t, "# EOF");

	/* Removed: no longer rendered; the others stay. */
	assert_int_equal(sx_metrics_remove(m, c), 0);
	assert_int_equal(sx_metrics_remove(m, c), -ENOENT);
	t = render(m, SX_METRICS_OPENMETRICS);
	lacks(t, "strix_circuit");
	has(t, "strix_bulkhead_in_use{bulkhead=\"db\"} 3");

	sx_metrics_destroy(m);
	sx_chaos_destroy(ch);
	sx_hedge_destroy(h);
	assert_int_equal(sx_adaptive_release(al, 0, 1), 0);
	sx_adaptive_destroy(al);
	assert_int_equal(sx_sem_release(sem, 3), 0);
	sx_sem_destroy(sem);
	sx_circuit_destroy(c);
	sx_pool_destroy(pool);
}

/* Fails while *arg is non-zero, counting it down. */
static int fails_first(sx_call *call)
{
	unsigned *left = call->arg;

	return *left > 0 ? (--*left, -EIO) : 0;
}

static int replace(sx_call *call, int err, void *arg)
{
	(void)call;
	(void)err;
	(void)arg;
	return 0;
}

/* Limiters, keyed limiters, pipelines and registries, their figures exact on a virtual clock:
 * the counters a dashboard reads to see refusals, retries and fallbacks. */
static void test_limiters_pipelines_registries(void **state)
{
	sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;
	sx_retry_policy rp = SX_RETRY_POLICY_INIT;
	sx_pipeline_opts po = SX_PIPELINE_OPTS_INIT;
	sx_registry_opts rg = SX_REGISTRY_OPTS_INIT;
	sx_ratelimit *rl, *prl;
	sx_ratelimit_keyed *kl;
	sx_pipeline *pl;
	sx_registry *reg;
	sx_registry_ref *ref;
	sx_metrics *m;
	unsigned left;
	const char *t;

	(void)state;
	tu_vnow = 10 * SEC;
	ro.rate = 4;
	ro.clock = &tu_vclock;
	assert_int_equal(sx_ratelimit_create(&ro, &rl), 0);
	for (int i = 0; i < 7; i++)
		(void)sx_ratelimit_try(rl, 1);               /* 4 admitted, 3 refused */
	assert_int_equal(sx_ratelimit_keyed_create(&ro, 100, &kl), 0);
	for (uint64_t k = 0; k < 3; k++)
		for (int i = 0; i < 5; i++)
			(void)sx_ratelimit_keyed_try(kl, k, 1); /* 3 keys, 1 refused each */
	/* A pipeline: fallback, retry (3 attempts, virtual waits), a limiter of 2 a second. */
	ro.rate = 2;
	assert_int_equal(sx_ratelimit_create(&ro, &prl), 0);
	rp.max_attempts = 3;
	rp.backoff = SX_BACKOFF_CONSTANT;
	rp.base_ns = MS;
	rp.clock = &tu_vclock;
	assert_int_equal(sx_pipeline_create(&po, &pl), 0);
	assert_int_equal(sx_pipeline_add_fallback(pl, replace, NULL, NULL), 0);
	assert_int_equal(sx_pipeline_add_retry(pl, &rp, 0), 0);
	assert_int_equal(sx_pipeline_add_ratelimit(pl, prl, 0), 0);
	left = 1;   /* one failure, then success: a retry */
	assert_int_equal(sx_pipeline_call(pl, fails_first, &left, NULL, NULL), 0);
	left = 9;   /* the limiter is empty: a refusal, retried twice, refused twice more, replaced */
	assert_int_equal(sx_pipeline_call(pl, fails_first, &left, NULL, NULL), 0);
	rg.kind = SX_REGISTRY_BULKHEAD;
	rg.permits = 2;
	assert_int_equal(sx_registry_create(NULL, &rg, &reg), 0);
	for (uint64_t k = 0; k < 4; k++) {
		assert_int_equal(sx_registry_get(reg, k, &ref), 0);
		sx_registry_put(ref);
	}
	assert_int_equal(sx_registry_remove(reg, 3), 0);

	assert_int_equal(sx_metrics_create(&m), 0);
	assert_int_equal(sx_metrics_add(m, SX_METRICS_RATELIMIT, "login", rl), 0);
	assert_int_equal(sx_metrics_add(m, SX_METRICS_RATELIMIT_KEYED, "per-client", kl), 0);
	assert_int_equal(sx_metrics_add(m, SX_METRICS_PIPELINE, "upstream", pl), 0);
	assert_int_equal(sx_metrics_add(m, SX_METRICS_REGISTRY, "per-route", reg), 0);
	assert_int_equal(sx_metrics_add(m, 12, "x", reg), -EINVAL);
	t = render(m, SX_METRICS_OPENMETRICS);
	well_formed(t);
	has(t, "# TYPE strix_ratelimit_refused counter");
	has(t, "strix_ratelimit_refused_total{limiter=\"login\"} 3");
	has(t, "strix_ratelimit_delayed_total{limiter=\"login\"} 0");
	has(t, "strix_ratelimit_available{limiter=\"login\"} 0");
	has(t, "strix_ratelimit_burst{limiter=\"login\"} 4");
	has(t, "strix_ratelimit_keyed_keys{limiter=\"per-client\"} 3");
	has(t, "strix_ratelimit_keyed_refused_total{limiter=\"per-client\"} 3");
	has(t, "strix_pipeline_calls_total{pipeline=\"upstream\"} 2");
	has(t, "strix_pipeline_failed_total{pipeline=\"upstream\"} 0");
	has(t, "strix_pipeline_rejected_total{pipeline=\"upstream\"} 3");
	has(t, "strix_pipeline_retries_total{pipeline=\"upstream\"} 3");
	has(t, "strix_pipeline_timeouts_total{pipeline=\"upstream\"} 0");
	has(t, "strix_pipeline_hedges_total{pipeline=\"upstream\"} 0");
	has(t, "strix_pipeline_fallbacks_total{pipeline=\"upstream\"} 1");
	has(t, "strix_registry_keys{registry=\"per-route\"} 3");
	has(t, "strix_registry_created_total{registry=\"per-route\"} 4");
	has(t, "strix_registry_removed_total{registry=\"per-route\"} 1");
	has(t, "strix_registry_evicted_total{registry=\"per-route\"} 0");
	assert_non_null(strstr(t, "strix_registry_bytes{registry=\"per-route\"} "));
	/* Half a second later the login limiter has two events again. */
	tu_vadvance(SEC / 2);
	t = render(m, SX_METRICS_PROMETHEUS);
	well_formed(t);
	has(t, "# TYPE strix_pipeline_calls_total counter");
	has(t, "strix_ratelimit_available{limiter=\"login\"} 2");

	sx_metrics_destroy(m);
	sx_registry_destroy(reg);
	sx_pipeline_destroy(pl);
	sx_ratelimit_destroy(prl);
	sx_ratelimit_keyed_destroy(kl);
	sx_ratelimit_destroy(rl);
}

/* A buffer too small: -ENOSPC, the length the text needs, a NUL-terminated prefix; then the
 * whole text with len + 1 bytes. Size queries with no buffer at all. */
static void test_buffer_contract(void **state)
{
	sx_retry_budget b;
	sx_metrics *m;
	char small[16], *big;
	size_t len = 0, len2 = 0;

	(void)state;
	assert_int_equal(sx_retry_budget_init(&b, 5, 0.0), 0);
	assert_int_equal(sx_metrics_create(&m), 0);
	assert_int_equal(sx_metrics_add(m, SX_METRICS_RETRY_BUDGET, "b", &b), 0);
	assert_int_equal(sx_metrics_render(m, SX_METRICS_OPENMETRICS, NULL, 0, &len), -ENOSPC);
	assert_true(len > sizeof(small));
	assert_int_equal(sx_metrics_render(m, SX_METRICS_OPENMETRICS, small, sizeof(small), &len2),
	    -ENOSPC);
	assert_int_equal(len2, len);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	big = test_malloc(len + 1);
	assert_int_equal(sx_metrics_render(m, SX_METRICS_OPENMETRICS, big, len, &len2), -ENOSPC);
	assert_int_equal(sx_metrics_render(m, SX_METRICS_OPENMETRICS, big, len + 1, &len2), 0);
	assert_int_equal(strlen(big), len);
	assert_int_equal(strncmp(big, "# TYPE strix_retry_budget_tokens gauge\n", 39), 0);
	test_free(big);
	sx_metrics_destroy(m);
}

static void test_add_rules_and_bad_input(void **state)
{
	sx_retry_budget b;
	sx_metrics *m;
	char name[SX_METRICS_MAX_NAME + 2];
	size_t len;

	(void)state;
	assert_int_equal(sx_retry_budget_init(&b, 5, 0.0), 0);
	assert_int_equal(sx_metrics_create(NULL), -EINVAL);
	assert_int_equal(sx_metrics_create(&m), 0);
	assert_int_equal(sx_metrics_add(NULL, SX_METRICS_RETRY_BUDGET, "b", &b), -EINVAL);
	assert_int_equal(sx_metrics_add(m, 0, "b", &b), -EINVAL);
	assert_int_equal(sx_metrics_add(m, 99, "b", &b), -EINVAL);
	assert_int_equal(sx_metrics_add(m, SX_METRICS_RETRY_BUDGET, NULL, &b), -EINVAL);
	assert_int_equal(sx_metrics_add(m, SX_METRICS_RETRY_BUDGET, "b", NULL), -EINVAL);
	assert_int_equal(sx_metrics_add(m, SX_METRICS_RETRY_BUDGET, "", &b), -EINVAL);
	assert_int_equal(sx_metrics_add(m, SX_METRICS_RETRY_BUDGET, "a\nb", &b), -EINVAL);
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';          /* one byte too long */
	assert_int_equal(sx_metrics_add(m, SX_METRICS_RETRY_BUDGET, name, &b), -EINVAL);
	name[SX_METRICS_MAX_NAME] = '\0';       /* the longest */
	assert_int_equal(sx_metrics_add(m, SX_METRICS_RETRY_BUDGET, name, &b), 0);
	assert_int_equal(sx_metrics_add(m, SX_METRICS_RETRY_BUDGET, "again", &b), -EEXIST);
	assert_int_equal(sx_metrics_remove(NULL, &b), -EINVAL);
	assert_int_equal(sx_metrics_remove(m, NULL), -EINVAL);
	assert_int_equal(sx_metrics_render(NULL, 0, text, sizeof(text), &len), -EINVAL);
	assert_int_equal(sx_metrics_render(m, 7, text, sizeof(text), &len), -EINVAL);
	assert_int_equal(sx_metrics_render(m, 0, NULL, 5, &len), -EINVAL);
	assert_int_equal(sx_metrics_render(m, 0, text, sizeof(text), NULL), -EINVAL);
	sx_metrics_destroy(m);
	sx_metrics_destroy(NULL);
}

/* Many objects: the set grows past its first array; samples keep the order of adding. */
static void test_many_objects_in_order(void **state)
{
	static sx_retry_budget b[40];
	sx_metrics *m;
	const char *t, *prev = NULL;
	char name[16], line[64];
	unsigned i;

	(void)state;
	assert_int_equal(sx_metrics_create(&m), 0);
	for (i = 0; i < 40; i++) {
		assert_int_equal(sx_retry_budget_init(&b[i], i + 1, 0.0), 0);
		snprintf(name, sizeof(name), "b%u", i);
		assert_int_equal(sx_metrics_add(m, SX_METRICS_RETRY_BUDGET, name, &b[i]), 0);
	}
	t = render(m, SX_METRICS_OPENMETRICS);
	for (i = 0; i < 40; i++) {
		const char *at;

		snprintf(line, sizeof(line), "{budget=\"b%u\"} %u\n", i, i + 1);
		at = strstr(t, line);
		assert_non_null(at);
		assert_true(prev == NULL || at > prev);
		prev = at;
	}
	sx_metrics_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_kind),
		cmocka_unit_test(test_limiters_pipelines_registries),
		cmocka_unit_test(test_buffer_contract),
		cmocka_unit_test(test_add_rules_and_bad_input),
		cmocka_unit_test(test_many_objects_in_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
