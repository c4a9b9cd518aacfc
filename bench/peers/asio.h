/*
 * Boost.Asio (Boost 1.74, header-only) as an in-process peer: a boost::asio::thread_pool of the
 * same worker count, handlers given to it or to strands on it with boost::asio::post.
 */
#ifndef STRIX_BENCH_PEERS_ASIO_H
#define STRIX_BENCH_PEERS_ASIO_H

#include "../workloads.h"

#ifdef __cplusplus
extern "C" {
#endif

/* B1, B1r, B5, B6 through the shared harness: submit posts fn(arg) to the pool's executor (from
 * a pool thread or from outside, the same call); wait_idle returns once every posted task,
 * including those posted by tasks, has finished, and leaves the pool running. */
extern const bench_pool_api bench_asio_api;

/* B4 chain: n dependent hops, each handler posts the next one to the pool. */
int asio_chain(unsigned workers, uint64_t n, bench_out *o);

/* yield: BENCH_YIELD_TASKS handlers posted from outside, each posting itself again (to the back
 * of the pool's queue) n / BENCH_YIELD_TASKS times; ns_per_task per re-post. */
int asio_yield(unsigned workers, uint64_t n, bench_out *o);

/* n empty handlers posted from one pool thread, round-robin to `strands` strands
 * (make_strand(pool)); each checks that its strand runs its handlers one at a time and in the
 * order they were posted. ns_per_task = o->seconds / n. */
int asio_strand_spawn(unsigned workers, uint64_t n, unsigned strands, bench_out *o);

/* strand_pingpong: two strands on one pool hand a token back and forth, rounds round trips
 * after rounds/100 warmup round trips; one sample per hand-off (post on one strand -> start of
 * the handler on the other), 2 * rounds samples in h; o->tasks = samples recorded. */
int asio_strand_pingpong(unsigned workers, uint64_t rounds, bench_hist *h, bench_out *o);

#ifdef __cplusplus
}
#endif

#endif
