/* Growing structs (strix/error.h): every options struct refuses a non-zero reserved word with
 * -EINVAL and changes nothing, every struct the library fills gets its reserved words zeroed,
 * and the *_INIT macros (designated initializers in C) give structs every create accepts. */
#include <errno.h>
#include <string.h>

#include "testutil.h"

#include <strix.h>

#define NRES 4 /* the reserved words of every struct, as the headers declare them */

static int ok_call(sx_retrier *r, void *arg)
{
	(void)r;
	(void)arg;
	return 0;
}

static int fan_call(sx_breaker *stop, size_t i, void *arg)
{
	(void)stop;
	(void)i;
	(void)arg;
	return 0;
}

static int actor_run(void *arg)
{
	(void)arg;
	return 0;
}

static void actor_stop(int err, void *arg)
{
	(void)err;
	(void)arg;
}

static void test_reserved_sizes_are_the_documented_ones(void **state)
{
	(void)state;
	assert_int_equal(sizeof(((sx_pool_opts *)0)->reserved), NRES * sizeof(uint64_t));
	assert_int_equal(sizeof(((sx_wheel_opts *)0)->reserved), NRES * sizeof(uint64_t));
	assert_int_equal(sizeof(((sx_fanout_opts *)0)->reserved), NRES * sizeof(uint64_t));
	assert_int_equal(sizeof(((sx_ratelimit_opts *)0)->reserved), NRES * sizeof(uint64_t));
	assert_int_equal(sizeof(((sx_circuit_opts *)0)->reserved), NRES * sizeof(uint64_t));
	assert_int_equal(sizeof(((sx_pipeline_opts *)0)->reserved), NRES * sizeof(uint64_t));
	assert_int_equal(sizeof(((sx_group_opts *)0)->reserved), NRES * sizeof(uint64_t));
	assert_int_equal(sizeof(((sx_retry_policy *)0)->reserved), NRES * sizeof(uint64_t));
	assert_int_equal(sizeof(((sx_pool_counters *)0)->reserved), NRES * sizeof(uint64_t));
	assert_int_equal(sizeof(((sx_worker_counters *)0)->reserved), NRES * sizeof(uint64_t));
	assert_int_equal(sizeof(((sx_circuit_metrics *)0)->reserved), NRES * sizeof(uint64_t));
	assert_int_equal(sizeof(((sx_actor_info *)0)->reserved), NRES * sizeof(uint64_t));
}

/* Each create, with each reserved word set in turn: -EINVAL, *out untouched; then the clean
 * struct creates. */
static void test_creates_refuse_a_set_reserved_word(void **state)
{
	void *const sentinel = (void *)&sentinel;

	(void)state;
	for (unsigned i = 0; i < NRES; i++) {
		sx_pool_opts po = SX_POOL_OPTS_INIT;
		sx_wheel_opts wo = SX_WHEEL_OPTS_INIT;
		sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;
		sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT;
		sx_pipeline_opts plo = SX_PIPELINE_OPTS_INIT;
		sx_group_opts go = SX_GROUP_OPTS_INIT;
		sx_retry_policy rp = SX_RETRY_POLICY_INIT;
		sx_pool *pool = sentinel;
		sx_wheel *w = sentinel;
		sx_ratelimit *rl = sentinel;
		sx_ratelimit_keyed *kl = sentinel;
		sx_circuit *c = sentinel;
		sx_pipeline *pl = sentinel;
		sx_group *g = sentinel;

		po.reserved[i] = 1;
		wo.reserved[i] = UINT64_MAX;
		ro.reserved[i] = 1;
		co.reserved[i] = 1;
		plo.reserved[i] = 1;
		go.reserved[i] = 1;
		rp.reserved[i] = 1;
		assert_int_equal(sx_pool_create(&po, &pool), -EINVAL);
		assert_ptr_equal(pool, sentinel);
		assert_int_equal(sx_wheel_create(&wo, &w), -EINVAL);
		assert_ptr_equal(w, sentinel);
		assert_int_equal(sx_ratelimit_create(&ro, &rl), -EINVAL);
		assert_ptr_equal(rl, sentinel);
		assert_int_equal(sx_ratelimit_keyed_create(&ro, 4, &kl), -EINVAL);
		assert_ptr_equal(kl, sentinel);
		assert_int_equal(sx_circuit_create(&co, &c), -EINVAL);
		assert_ptr_equal(c, sentinel);
		assert_int_equal(sx_pipeline_create(&plo, &pl), -EINVAL);
		assert_ptr_equal(pl, sentinel);
		assert_int_equal(sx_group_create(&go, &g), -EINVAL);
		assert_ptr_equal(g, sentinel);
		assert_int_equal(sx_retry_policy_check(&rp), -EINVAL);
		assert_int_equal(sx_retry(ok_call, NULL, &rp, NULL), -EINVAL);
		go.reserved[i] = 0;
		go.backoff = &rp; /* a group's loop policy is checked the same way */
		assert_int_equal(sx_group_create(&go, &g), -EINVAL);
		assert_ptr_equal(g, sentinel);
	}
}

static void test_fanout_and_policy_users_refuse_a_set_reserved_word(void **state)
{
	sx_pool_opts po = SX_POOL_OPTS_INIT;
	sx_fanout_opts fo = SX_FANOUT_OPTS_INIT;
	sx_retry_policy rp = SX_RETRY_POLICY_INIT;
	sx_pipeline *pl;
	sx_pool *pool;

	(void)state;
	po.workers = 2;
	assert_int_equal(sx_pool_create(&po, &pool), 0);
	assert_int_equal(sx_pipeline_create(NULL, &pl), 0);
	for (unsigned i = 0; i < NRES; i++) {
		fo.reserved[i] = 1;
		assert_int_equal(sx_fanout_map(pool, 8, fan_call, NULL, &fo), -EINVAL);
		fo.reserved[i] = 0;
		rp.reserved[i] = 1;
		assert_int_equal(sx_pipeline_add_retry(pl, &rp, 0), -EINVAL);
		rp.reserved[i] = 0;
	}
	assert_int_equal(sx_fanout_map(pool, 8, fan_call, NULL, &fo), 0);
	assert_int_equal(sx_pipeline_add_retry(pl, &rp, 0), 0);
	sx_pipeline_destroy(pl);
	sx_pool_shutdown(pool, SX_DRAIN);
	sx_pool_destroy(pool);
}

/* all_zero(s.reserved): every reserved word of s is zero. */
#define all_zero(r) all_zero_n((r), sizeof(r) / sizeof((r)[0]))
static bool all_zero_n(const uint64_t *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (r[i] != 0)
			return false;
	return true;
}

/* Structs the library fills come back with zeroed reserved words whatever they held. */
static void test_filled_structs_zero_their_reserved_words(void **state)
{
	sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT;
	sx_pool_counters pc;
	sx_worker_counters wc[2];
	sx_circuit_metrics m;
	sx_actor_info info;
	sx_circuit *c;
	sx_pool *pool;
	sx_group *g;

	(void)state;
	assert_int_equal(sx_pool_create(NULL, &pool), 0);
	memset(&pc, 0xa5, sizeof(pc));
	memset(wc, 0xa5, sizeof(wc));
	assert_int_equal(sx_pool_stats(pool, &pc, wc, 1), 0);
	assert_true(all_zero(pc.reserved));
	assert_true(all_zero(pc.total.reserved));
	assert_true(all_zero(wc[0].reserved));
	sx_pool_shutdown(pool, SX_DRAIN);
	sx_pool_destroy(pool);

	assert_int_equal(sx_circuit_create(&co, &c), 0);
	memset(&m, 0xa5, sizeof(m));
	assert_int_equal(sx_circuit_snapshot(c, &m), 0);
	assert_true(all_zero(m.reserved));
	sx_circuit_destroy(c);

	assert_int_equal(sx_group_create(NULL, &g), 0);
	assert_int_equal(sx_group_add(g, actor_run, actor_stop, NULL, NULL), 0);
	memset(&info, 0xa5, sizeof(info));
	assert_int_equal(sx_group_actor(g, 0, &info), 0);
	assert_true(all_zero(info.reserved));
	sx_group_destroy(g);
}

/* Zero-filled structs and the *_INIT macros both create (the defaults are the same objects). */
static void test_zeroed_and_init_structs_create(void **state)
{
	sx_wheel_opts wz = { 0 }, wi = SX_WHEEL_OPTS_INIT;
	sx_ratelimit_opts rz = { 0 }, ri = SX_RATELIMIT_OPTS_INIT;
	sx_circuit_opts cz = { 0 }, ci = SX_CIRCUIT_OPTS_INIT;
	sx_retry_policy pz = { 0 }, pi = SX_RETRY_POLICY_INIT;
	sx_ratelimit *rl;
	sx_circuit *c;
	sx_wheel *w;

	(void)state;
	assert_int_equal(sx_wheel_create(&wz, &w), 0);
	sx_wheel_destroy(w);
	assert_int_equal(sx_wheel_create(&wi, &w), 0);
	sx_wheel_destroy(w);
	assert_int_equal(sx_ratelimit_create(&rz, &rl), 0);
	sx_ratelimit_destroy(rl);
	assert_int_equal(sx_ratelimit_create(&ri, &rl), 0);
	sx_ratelimit_destroy(rl);
	assert_int_equal(sx_circuit_create(&cz, &c), 0);
	sx_circuit_destroy(c);
	assert_int_equal(sx_circuit_create(&ci, &c), 0);
	sx_circuit_destroy(c);
	assert_int_equal(sx_retry_policy_check(&pz), 0);
	assert_int_equal(sx_retry_policy_check(&pi), 0);
	assert_int_equal(ri.period_ns, INT64_C(1000000000));
	assert_int_equal(ci.window_size, 100);
	assert_int_equal(ci.half_open_permits, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reserved_sizes_are_the_documented_ones),
		cmocka_unit_test(test_creates_refuse_a_set_reserved_word),
		cmocka_unit_test(test_fanout_and_policy_users_refuse_a_set_reserved_word),
		cmocka_unit_test(test_filled_structs_zero_their_reserved_words),
		cmocka_unit_test(test_zeroed_and_init_structs_create),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
