/*
 * Waiting, on Linux futexes: the sleep and wake under the waiting word and the event word
 * (base/base.h), and the operations of ck_ec, the event counts workers park on and wait_idle
 * blocks on. ck_ec brings its protocol (a waiter flag so that an increment makes a system call
 * only when somebody sleeps); the platform brings waiting and waking, here.
 */
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"

static int ec_gettime(const struct ck_ec_ops *ops, struct timespec *out)
{
	(void)ops;
	return clock_gettime(CLOCK_MONOTONIC, out);
}

/* Sleep while *addr == expected, until woken or the absolute CLOCK_MONOTONIC deadline (NULL:
 * none). May return early (signals, spurious wake-ups): callers re-check. */
static void futex_wait(const uint32_t *addr, uint32_t expected, const struct timespec *deadline)
{
	/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, which is what ck_ec gives. */
	syscall(SYS_futex, addr, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, deadline,
	    NULL, FUTEX_BITSET_MATCH_ANY);
}

void sx__futex_wait_ns(const uint32_t *addr, uint32_t expected, uint64_t until_ns)
{
	struct timespec ts;

	if (until_ns == UINT64_MAX) {
		futex_wait(addr, expected, NULL);
		return;
	}
	ts.tv_sec = (time_t)(until_ns / 1000000000u);
	ts.tv_nsec = (long)(until_ns % 1000000000u);
	futex_wait(addr, expected, &ts);
}

void sx__futex_wake(const uint32_t *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, NULL, NULL, 0);
}

static void ec_wait32(const struct ck_ec_wait_state *state, const uint32_t *addr,
    uint32_t expected, const struct timespec *deadline)
{
	(void)state;
	futex_wait(addr, expected, deadline);
}

static void ec_wake32(const struct ck_ec_ops *ops, const uint32_t *addr)
{
	(void)ops;
	sx__futex_wake(addr);
}

static const struct ck_ec_ops ec_ops = {
	.gettime = ec_gettime,
	.wait32 = ec_wait32,
	.wake32 = ec_wake32,
	/* Callers spin on their own terms before waiting; ck_ec's extra spin would only add
	 * latency-free CPU burn. */
	.busy_loop_iter = 1,
	/* Without a deadline of its own a wait still sleeps with timeouts, ck_ec's backstop
	 * against wake-ups lost by single-producer increments. Every mode here is multi-producer
	 * (an increment is an atomic RMW that sees the waiter flag and wakes), so none is lost,
	 * and the timeouts only cost: a sleep whose timer is the CPU's earliest makes the kernel
	 * program the timer hardware to sleep and again to cancel it on wake-up, microseconds per
	 * wake-up in a VM. A first timeout of one second is not the earliest timer, and after it
	 * ck_ec sleeps without one. Every caller here waits without a deadline. */
	.initial_wait_ns = 1000000000u,
};

const struct ck_ec_mode sx__ec_mode = {
	.ops = &ec_ops,
	.single_producer = false,
};
