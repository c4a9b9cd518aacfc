/*
 * base: what every layer above may use. Compiler macros, the futex operations (futex.c) and the
 * event-count mode built on them, the default allocator's zeroing helpers (the allocator itself is
 * alloc_jemalloc.c or alloc_libc.c, chosen by the build), single-writer counters.
 * Includes no other internal header. Nothing here is public API.
 */
#ifndef STRIX_SRC_BASE_H
#define STRIX_SRC_BASE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <ck_ec.h>
#include <ck_pr.h>

#include <strix/pool.h>

#define SX__CACHELINE 64
#define SX__ALIGNED __attribute__((aligned(SX__CACHELINE)))
#define SX__LIKELY(x) __builtin_expect(!!(x), 1)
#define SX__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Debug checks are compiled always and folded away unless SX_DEBUG is 1 (jemalloc's style). */
#ifndef SX_DEBUG
#define SX_DEBUG 0
#endif

/* futex.c */
extern const struct ck_ec_mode sx__ec_mode;
struct timespec;
void sx__futex_wait(const uint32_t *addr, uint32_t expected, const struct timespec *deadline);
void sx__futex_wait_ns(const uint32_t *addr, uint32_t expected, uint64_t until_ns);
void sx__futex_wake(const uint32_t *addr);

/* The alignment of strix's small allocations: every jemalloc size class has it already, so asking
 * for it keeps jemalloc on its thread-cache path (a larger one goes down its aligned path). */
#define SX__SMALL_ALIGN 16u

/*
 * Zeroed memory from the default allocator, for what no pool's allocator owns (breakers,
 * promises, fan-outs, semaphores, limiters, wheels). Ask for SX__SMALL_ALIGN, or SX__CACHELINE
 * only for structs with cache-line aligned members.
 */
static inline void *sx__zalloc(size_t size, size_t align)
{
	void *p = sx_allocator_default.alloc(sx_allocator_default.ctx, size, align);

	if (p != NULL)
		memset(p, 0, size);
	return p;
}

static inline void sx__dfree(void *p, size_t size, size_t align)
{
	sx_allocator_default.free(sx_allocator_default.ctx, p, size, align);
}

static inline void sx__stat_add(uint64_t *ctr, uint64_t n)
{
	/* Single writer: a plain read of our own counter, an atomic store so readers never tear. */
	ck_pr_store_64(ctr, *ctr + n);
}

#endif /* STRIX_SRC_BASE_H */
