/*
 * The perf programs' only contact with the constructors' signatures, so the same programs build
 * against older and newer libraries (perf/results/callgrind.txt compares them).
 *
 * sx_pool_create and sx_wheel_create take (opts, out); older revisions took (out, opts). Each
 * argument below is picked by _Generic on the type of the function the headers declare, so the
 * call matches either order and the programs build against both.
 */
#ifndef STRIX_PERF_API_H
#define STRIX_PERF_API_H

#include <strix.h>

/* fn(out, opts) or fn(opts, out), whichever fn is; out_first is fn's type in the first form. */
#define PERF_CREATE_(fn, out_first, out, opts)                                                  \
	(fn)(_Generic(&(fn), out_first: (out), default: (opts)),                                \
	    _Generic(&(fn), out_first: (opts), default: (out)))

static inline int perf_pool_create(sx_pool **out, const sx_pool_opts *opts)
{
	return PERF_CREATE_(sx_pool_create, int (*)(sx_pool **, const sx_pool_opts *), out, opts);
}

static inline int perf_wheel_create(sx_wheel **out, const sx_wheel_opts *opts)
{
	return PERF_CREATE_(sx_wheel_create, int (*)(sx_wheel **, const sx_wheel_opts *), out,
	    opts);
}

#endif
