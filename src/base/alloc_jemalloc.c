/*
 * The default allocator: jemalloc through its non-standard API. The build links jemalloc's PIC
 * archive into strix and then hides every symbol that is not sx_*, so the application's malloc
 * stays whatever it was (glibc, or its own jemalloc/tcmalloc) - see the Makefile's prelink step.
 */
#include <jemalloc/jemalloc.h>

#include <strix/pool.h>

#include "base/base.h"

/* Every size class is 16-byte aligned already: asking for that alignment explicitly would send
 * the call down jemalloc's aligned (arena_palloc) path instead of the thread cache. */
static int flags_for(size_t align)
{
	return align <= 16 ? 0 : MALLOCX_ALIGN(align);
}

static __thread uint64_t nallocs __attribute__((tls_model("initial-exec")));

uint64_t sx_allocations(void)
{
	return nallocs;
}

static void *je_alloc(void *ctx, size_t size, size_t align)
{
	(void)ctx;
	nallocs++;
	return mallocx(size, flags_for(align));
}

static void je_free(void *ctx, void *ptr, size_t size, size_t align)
{
	(void)ctx;
	sdallocx(ptr, size, flags_for(align));
}

const sx_allocator sx_allocator_default = { je_alloc, je_free, NULL };
