// strix's public headers from C++: <strix.h> compiles as C++17 (tools/check-headers.sh compiles
// each header alone too), every *_OPTS_INIT initializes its struct, zero-filled options mean the
// defaults, and a C++ program that embeds tasks and wheel timers in its own structs (the same
// layout C sees: no C++-only view of a task) runs them with the C library.
#include <atomic>
#include <cerrno>
#include <csetjmp>
#include <cstdarg>
#include <cstddef>
#include <cstdint>

extern "C" {
#include <cmocka.h>
}

#include <strix.h>

static_assert(sizeof(sx_task) == 4 * sizeof(void *), "sx_task: link, chain tail, run, cancel");
static_assert(offsetof(sx_task, sx_next) == 0, "the queue link first");
static_assert(offsetof(sx_task, run) == 2 * sizeof(void *), "run after the two private fields");
static_assert(sizeof(((sx_pool_opts *)nullptr)->spin_ns) == 8 &&
    sizeof(((sx_circuit_opts *)nullptr)->open_ns) == 8, "durations are int64_t");
static_assert(sizeof(sx_wheel_timer) == 32, "a wheel timer is 32 bytes");

namespace {

struct job {
	sx_task task;
	std::atomic<int> *done;
	int id;
	int ran;
};

void job_run(sx_task *t)
{
	job *j = SX_CONTAINER_OF(t, job, task);

	j->ran++;
	j->done->fetch_add(1, std::memory_order_relaxed);
}

// Intrusive tasks submitted from C++ run once each on the C pool.
void test_tasks_embedded_in_cxx_structs_run_once(void **)
{
	constexpr int n = 10000;
	static job jobs[n];
	std::atomic<int> done{0};
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p = nullptr;

	o.workers = 2;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	for (int i = 0; i < n; i++) {
		jobs[i].task = sx_task SX_TASK_INIT(job_run, nullptr);
		jobs[i].done = &done;
		jobs[i].id = i;
		jobs[i].ran = 0;
		assert_int_equal(sx_pool_submit_task(p, &jobs[i].task), 0);
	}
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(done.load(), n);
	for (int i = 0; i < n; i++)
		assert_int_equal(jobs[i].ran, 1);
	assert_int_equal(sx_pool_shutdown(p, SX_DRAIN), 0);
	sx_pool_destroy(p);
}

struct request {
	sx_wheel_timer timeout;
	int fired;
};

uint64_t vnow;

uint64_t vclock_now(void *)
{
	return vnow;
}

void expired(sx_wheel_timer *t)
{
	SX_CONTAINER_OF(t, request, timeout)->fired++;
}

// A wheel timer embedded in a C++ struct fires once, at its deadline, on a virtual clock.
void test_wheel_timer_in_a_cxx_struct(void **)
{
	const sx_clock clock = { vclock_now, nullptr, nullptr };
	sx_wheel_opts o = SX_WHEEL_OPTS_INIT;
	sx_wheel *w = nullptr;
	request r{};

	vnow = 0;
	o.clock = &clock;
	assert_int_equal(sx_wheel_create(&o, &w), 0);
	sx_wheel_timer_init(&r.timeout, expired);
	assert_int_equal(sx_wheel_add(w, &r.timeout, 5000000), 0);
	vnow = 4999999;
	assert_int_equal(sx_wheel_advance(w), 0);
	vnow = 5000000;
	assert_int_equal(sx_wheel_advance(w), 1);
	assert_int_equal(r.fired, 1);
	assert_int_equal(sx_wheel_cancel(w, &r.timeout), -ENOENT);
	sx_wheel_destroy(w);
}

std::atomic<int> sem_calls{0}, sem_err{1};

void sem_cb(sx_sem *, int err, void *)
{
	sem_err.store(err);
	sem_calls.fetch_add(1);
}

int fails(void *)
{
	return -EIO;
}

void no_op(int, void *)
{
}

// Every *_OPTS_INIT is a valid C++ initializer and its struct creates its object; a
// value-initialized (zero) struct does too, zero meaning the defaults; the void destroys and
// the negative-errno results read the same from C++.
void test_options_and_lifetimes_from_cxx(void **)
{
	sx_pool_opts po = SX_POOL_OPTS_INIT;
	sx_wheel_opts wo = SX_WHEEL_OPTS_INIT;
	sx_fanout_opts fo = SX_FANOUT_OPTS_INIT;
	sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;
	sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT, cz{};
	sx_pipeline_opts plo = SX_PIPELINE_OPTS_INIT;
	sx_group_opts go = SX_GROUP_OPTS_INIT;
	sx_retry_policy rp = SX_RETRY_POLICY_INIT;
	sx_pool *p = nullptr;
	sx_wheel *w = nullptr;
	sx_ratelimit *rl = nullptr;
	sx_circuit *c = nullptr;
	sx_pipeline *pl = nullptr;
	sx_group *g = nullptr;
	sx_sem *s = nullptr;

	po.workers = 2;
	po.spin_ns = SX_SPIN_NONE;
	assert_int_equal(sx_pool_create(&po, &p), 0);
	assert_int_equal(sx_wheel_create(&wo, &w), 0);
	sx_wheel_destroy(w);
	assert_int_equal(sx_ratelimit_create(&ro, &rl), 0); /* rate 0: no limit */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(sx_ratelimit_try(rl, 1), 0);
	sx_ratelimit_destroy(rl);
	assert_int_equal(sx_circuit_create(&co, &c), 0);
	sx_circuit_destroy(c);
	assert_int_equal(sx_circuit_create(&cz, &c), 0);
	sx_circuit_destroy(c);
	assert_int_equal(sx_retry_policy_check(&rp), 0);
	fo.timeout_ns = -1; /* no timeout */
	assert_int_equal(sx_fanout_map(p, 0, nullptr, nullptr, &fo), 0);
	plo.pool = p;
	assert_int_equal(sx_pipeline_create(&plo, &pl), 0);
	assert_int_equal(sx_pipeline_add_timeout(pl, -1), 0);
	sx_pipeline_destroy(pl);
	go.shutdown_ns = -1;
	assert_int_equal(sx_group_create(&go, &g), 0);
	assert_int_equal(sx_group_cause(g, nullptr, nullptr), -ENOENT);
	assert_true(sx_group_add(g, fails, no_op, nullptr, nullptr) >= 0);
	assert_int_equal(sx_group_run(g), -EIO);
	assert_int_equal(sx_group_cause(g, nullptr, nullptr), 0);
	sx_group_destroy(g);
	// A semaphore destroyed with a waiter queued: the waiter hears -ESHUTDOWN, once.
	assert_int_equal(sx_sem_create(p, 0, &s), 0);
	assert_int_equal(sx_sem_acquire_async(s, 1, nullptr, sem_cb, nullptr), 0);
	sx_sem_destroy(s);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(sem_calls.load(), 1);
	assert_int_equal(sem_err.load(), -ESHUTDOWN);
	sx_pool_destroy(p);
}

// Every header gives its functions C linkage: these calls link only if the names are the C ones.
void test_every_module_links_from_cxx(void **)
{
	assert_string_equal(sx_version(), STRIX_VERSION_STRING);
	assert_string_equal(sx_strerror(0), sx_strerror(0));
	assert_int_equal(sx_retry_policy_check(nullptr), -EINVAL);
	assert_int_equal(sx_join(nullptr, nullptr, nullptr, nullptr, nullptr), -EINVAL);
	assert_int_equal(sx_scope_init(nullptr, nullptr), -EINVAL);
	assert_int_equal(sx_strand_create(nullptr, nullptr), -EINVAL);
	assert_int_equal(sx_io_register(nullptr, 0, nullptr), -EINVAL);
	assert_int_equal(sx_io_token_events(sx_io_readiness(nullptr)), 0u);
}

} // namespace

int main()
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tasks_embedded_in_cxx_structs_run_once),
		cmocka_unit_test(test_wheel_timer_in_a_cxx_struct),
		cmocka_unit_test(test_options_and_lifetimes_from_cxx),
		cmocka_unit_test(test_every_module_links_from_cxx),
	};

	return cmocka_run_group_tests_name("cxx", tests, nullptr, nullptr);
}
