/**
 * @file
 * <strix/error.h>: the declarations of the errors module (group strix_error).
 *
 * @defgroup strix_error Errors
 * @ingroup strix
 *
 * strix error convention.
 *
 * Every strix function that can fail returns 0 on success or a negative code: the negated errno
 * where one fits (-EINVAL, -ENOMEM, -EAGAIN, -ECANCELED, -ETIMEDOUT, -ESHUTDOWN, -EINTR,
 * -EDEADLK), or one of the library codes below for conditions errno has no name for. A call that
 * fails changes nothing, and a callback passed to a call that fails is never invoked.
 *
 * Library codes live far below any errno value so the two ranges never meet.
 * @{
 */
#ifndef STRIX_ERROR_H
#define STRIX_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/** Marks the public ABI: strix is built with -fvisibility=hidden and a version script. */
#define SX_API __attribute__((visibility("default")))

/**
 * @par Growing structs
 * Within one major version (the soname libstrix.so.0 for every 0.x release) the ABI only grows,
 * so a program built against an older release runs on a newer library:
 *
 * - Options structs (sx_*_opts, sx_retry_policy), which the caller fills and the library reads,
 *   and the structs the library fills for the caller (sx_pool_counters, sx_worker_counters,
 *   sx_circuit_metrics, sx_actor_info) end in `uint64_t reserved[4]`. A later release carves
 *   new fields out of that space, keeping the struct's size and every existing field's offset,
 *   and gives each new field a zero that means the old behaviour. The reserved words must be
 *   zero: every *_INIT macro and `= {0}` leave them so, and a function given an options struct
 *   whose reserved words are not all zero returns -EINVAL (a program that sets a field this
 *   release does not have learns it at once, instead of being ignored). Filled structs get
 *   their reserved words set to zero.
 * - In C the *_INIT macros name the fields they set (designated initializers), so they stay
 *   right whatever is added; in C++ they list every field in order instead.
 * - Caller storage the library keeps using after the call (sx_task, sx_timer, sx_wheel_timer,
 *   sx_fanout_task, sx_backoff, sx_retry_budget, sx_call, sx_ctx, sx_pipeline_step_arg) and the
 *   tables the caller supplies (sx_allocator, sx_clock, sx_interceptor) keep their size and
 *   layout for the whole major version.
 */
/** 1 in C, where the *_INIT macros use designated initializers; 0 in C++, where they list every
 * field in order (C++ before C++20 has no designated initializers, and g++ warns about the fields
 * a C++20 designated list leaves out). */
#ifndef __cplusplus
#define SX_DESIGNATED_INIT 1
#else
#define SX_DESIGNATED_INIT 0
#endif

#define SX_EBASE           (-10000) /**< the library codes are below this */
#define SX_ECIRCUIT_OPEN   (SX_EBASE - 1)  /**< circuit breaker is open: call not attempted */
#define SX_ERATE_LIMITED   (SX_EBASE - 2)  /**< rate limiter refused the call */
#define SX_EREJECTED       (SX_EBASE - 3)  /**< a policy (bulkhead, budget) rejected the call */
#define SX_ESIGNAL         (SX_EBASE - 4)  /**< ended by an OS signal */
#define SX_ELAST           (SX_EBASE - 4)  /**< lowest library code in use */

/**
 * sx_strerror - a human-readable, constant description of a strix return code.
 *
 * Accepts 0, any negated errno value and every SX_E* code. An unknown code yields
 * "unknown error". The returned string is static: never free it.
 * Never blocks; wait-free; callable from any thread and from a signal handler.
 */
SX_API const char *sx_strerror(int code);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_ERROR_H */
