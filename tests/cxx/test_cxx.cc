// strix's public headers from C++: <strix.h> compiles as C++17, and a C++ program that embeds
// tasks and wheel timers in its own structs (their layout seen through pool.h's C++ view of a
// task's queue link) runs them with the C library.
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
static_assert(offsetof(sx_task, run) == 2 * sizeof(void *), "run after the two private fields");
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

} // namespace

int main()
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tasks_embedded_in_cxx_structs_run_once),
		cmocka_unit_test(test_wheel_timer_in_a_cxx_struct),
	};

	return cmocka_run_group_tests_name("cxx", tests, nullptr, nullptr);
}
