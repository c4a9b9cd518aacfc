/*
 * The default allocator of sanitizer builds: the C library's aligned_alloc/free, which ASan and
 * LSan intercept, so leaks and overflows of strix's own memory are reported. Release builds use
 * alloc_jemalloc.c instead.
 */
#include <stdlib.h>

#include <strix/pool.h>

#include "base/base.h"

static __thread uint64_t nallocs __attribute__((tls_model("initial-exec")));

uint64_t sx_allocations(void)
{
	return nallocs;
}

static void *libc_alloc(void *ctx, size_t size, size_t align)
{
	(void)ctx;
	nallocs++;
	return aligned_alloc(align, (size + align - 1) / align * align);
}

static void libc_free(void *ctx, void *ptr, size_t size, size_t align)
{
	(void)ctx;
	(void)size;
	(void)align;
	free(ptr);
}

const sx_allocator sx_allocator_default = { libc_alloc, libc_free, NULL };
